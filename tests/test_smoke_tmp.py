from tests.base import StudioTestCase


class SmokeTests(StudioTestCase):
    def test_login_page(self) -> None:
        r = self.client.get("/login/")
        self.assertEqual(r.status_code, 200)
        self.client.force_login(self.alice)
        r = self.client.get("/")
        self.assertContains(r, "Acme")
