"""The operator page: admins only, this workspace's numbers only, and never a key in the HTML."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from generation import breaker, caps, crypto
from generation.backends.base import ErrorClass
from generation.models import Generation, GenerationState, ProviderAccount
from generation.operator.services import percentile, safe_url
from tests.base import StudioTestCase

S = GenerationState
ENV_KEY = "bfl_env_secret_key_AAAA1111"
ACCOUNT_KEY = "fal_account_secret_key_ZZZZ9999"


class OperatorTestCase(StudioTestCase):
    url = reverse("generation:operator")

    def setUp(self) -> None:
        super().setUp()
        self.prefix = f"test-operator-{uuid.uuid4().hex[:10]}"
        overrides = override_settings(
            ENGINE_REDIS_PREFIX=self.prefix,
            BFL_API_KEY=ENV_KEY,
            BFL_API_URL="https://user:pw@api.eu.bfl.ai/?token=abc",
            STUDIO_PUBLIC_URL="",
        )
        overrides.enable()
        self.addCleanup(overrides.disable)
        env = override_settings(
            **{"FAL_KEY": "", "REPLICATE_API_TOKEN": "", "COMFYUI_URL": ""}
        )
        env.enable()
        self.addCleanup(env.disable)
        self.addCleanup(self._clear_redis)

    def _clear_redis(self) -> None:
        client = caps.redis_client()
        if client is not None and (keys := list(client.scan_iter(f"{self.prefix}:*"))):
            client.delete(*keys)

    def account(self, workspace: Any = None, **fields: Any) -> ProviderAccount:
        account = ProviderAccount(
            workspace=workspace or self.workspace,
            backend=fields.pop("backend", "fal"),
            label=fields.pop("label", "Team fal"),
            **fields,
        )
        account.set_api_key(ACCOUNT_KEY)
        account.save()
        return account

    def generation(self, backend: str, state: str, **fields: Any) -> Generation:
        now = timezone.now()
        values: dict[str, Any] = {
            "workspace": self.workspace,
            "backend": backend,
            "model": "flux-2-pro",
            "prompt": "x",
            "width": 64,
            "height": 64,
            "state": state,
            "queued_at": now - timedelta(minutes=5),
            "submitted_at": now - timedelta(minutes=5),
            "finished_at": now - timedelta(minutes=4),
            "estimated_cost": Decimal("0.03"),
        }
        values.update(fields)
        return Generation.objects.create(**values)


class AccessTests(OperatorTestCase):
    def test_admins_see_the_page(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "<h1>Operator</h1>", html=True)
        self.assertContains(response, 'id="backend-bfl"')
        self.assertContains(response, 'id="model-table"')
        # The nav link, for admins.
        self.assertContains(response, f'href="{self.url}"')

    def test_everyone_else_gets_403_and_no_nav_link(self) -> None:
        for user in (self.eddie, self.alex, self.bob):
            with self.subTest(user.username):
                self.client.force_login(user)
                self.assertEqual(self.client.get(self.url).status_code, 403)
                add = reverse("generation:operator-account-add")
                self.assertEqual(
                    self.client.post(
                        add, {"backend": "fal", "api_key": "k" * 12}
                    ).status_code,
                    403,
                )
                home = self.client.get(reverse("home"))
                self.assertNotContains(home, f'href="{self.url}"')
        self.assertEqual(ProviderAccount.objects.count(), 0)

    def test_anonymous_users_are_sent_to_log_in(self) -> None:
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 302)
        self.assertIn(reverse("login"), response["Location"])

    def test_another_workspace_sees_only_its_own_accounts_and_numbers(self) -> None:
        self.account(label="Acme fal")
        self.generation("bfl", S.SUCCEEDED, actual_cost=Decimal("1.2345"))
        self.client.force_login(self.carol)
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, "Acme fal")
        self.assertNotContains(response, "1.2345")
        self.assertContains(response, "No workspace accounts")

    def test_an_outsider_cannot_disable_an_account(self) -> None:
        account = self.account()
        self.client.force_login(self.carol)
        url = reverse("generation:operator-account-disable", args=[account.code])
        self.assertEqual(self.client.post(url).status_code, 404)
        self.assertEqual(self.client.get(url).status_code, 405)
        account.refresh_from_db()
        self.assertTrue(account.enabled)


class ContentTests(OperatorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.client.force_login(self.alice)

    def test_no_key_ever_reaches_the_page(self) -> None:
        account = self.account()
        response = self.client.get(self.url)
        html = response.content.decode()
        self.assertNotIn(ENV_KEY, html)
        self.assertNotIn(ACCOUNT_KEY, html)
        self.assertNotIn(account.api_key_encrypted, html)
        self.assertNotIn("AAAA1111", html)  # not even the environment key's tail
        self.assertIn("…9999", html)  # a workspace account's last four, as promised
        # Credentials in a base URL are cut off too.
        self.assertNotIn("user:pw", html)
        self.assertNotIn("token=abc", html)
        self.assertIn("https://api.eu.bfl.ai/", html)
        self.assertIn("BFL_API_KEY", html)  # where the environment's key comes from

    def test_configuration_state_per_backend(self) -> None:
        self.account(base_url="https://fal.example/queue")
        response = self.client.get(self.url)
        rows = {s.name: s for s in response.context["statuses"]}
        self.assertEqual(
            (rows["bfl"].configured, rows["bfl"].source, rows["bfl"].key_present),
            (True, "environment", True),
        )
        self.assertEqual(
            (rows["fal"].configured, rows["fal"].source, rows["fal"].key_hint),
            (True, "workspace account", "…9999"),
        )
        self.assertEqual(rows["fal"].base_url, "https://fal.example/queue")
        self.assertEqual(
            (rows["replicate"].configured, rows["replicate"].key_present),
            (False, False),
        )
        self.assertEqual(rows["preview"].source, "built in")
        self.assertFalse(rows["bfl"].webhooks_on)

    def test_success_rate_latency_and_spend(self) -> None:
        now = timezone.now()
        for seconds in (2, 4, 6, 8, 100):
            self.generation(
                "bfl",
                S.SUCCEEDED,
                submitted_at=now - timedelta(seconds=seconds + 10),
                finished_at=now - timedelta(seconds=10),
                actual_cost=Decimal("0.0450"),
            )
        self.generation("bfl", S.FAILED, actual_cost=None)
        self.generation("bfl", S.MODERATED)  # says nothing about BFL's health
        # A generation that fell back from BFL to fal: BFL's failure counts against BFL.
        self.generation(
            "fal",
            S.SUCCEEDED,
            actual_cost=None,
            estimated_cost=Decimal("0.0300"),
            route=[
                {"backend": "bfl", "outcome": "chosen", "at": now.isoformat()},
                {
                    "backend": "bfl",
                    "outcome": "failed",
                    "error_class": "provider_error",
                    "at": now.isoformat(),
                    "cost": "0.0100",
                },
                {"backend": "fal", "outcome": "chosen", "at": now.isoformat()},
            ],
        )
        # Old and other-workspace generations stay out.
        self.generation(
            "bfl",
            S.FAILED,
            finished_at=now - timedelta(days=30),
            queued_at=now - timedelta(days=60),
        )
        self.generation(
            "bfl", S.SUCCEEDED, workspace=self.other_workspace, actual_cost=Decimal("9")
        )
        response = self.client.get(self.url)
        rows = {s.name: s for s in response.context["statuses"]}
        bfl = rows["bfl"]
        self.assertEqual((bfl.succeeded, bfl.failed, bfl.fell_back), (5, 1, 1))
        self.assertAlmostEqual(bfl.success_rate, 5 / 7)
        self.assertEqual((bfl.p50, bfl.p95, bfl.latency_samples), (6.0, 100.0, 5))
        # 5 × 0.045 reported, the failed one cost nothing, the abandoned attempt 0.01.
        self.assertEqual(bfl.spend_month, Decimal("0.2350"))
        self.assertEqual(rows["fal"].spend_month, Decimal("0.0300"))  # its estimate
        self.assertEqual(response.context["total_spend"], Decimal("0.2650"))
        self.assertContains(response, "$0.2650")
        self.assertContains(response, "71%")

    def test_open_breakers_show_when_they_let_a_probe_through(self) -> None:
        for _ in range(5):
            breaker.record_failure("bfl:env", ErrorClass.NETWORK, "connection refused")
        response = self.client.get(self.url)
        self.assertContains(response, 'id="open-breakers"')
        self.assertContains(
            response, "circuit breaker open, lets one probe through <time"
        )
        self.assertContains(response, "connection refused")
        bfl = {s.name: s for s in response.context["statuses"]}["bfl"]
        self.assertEqual([b.state for b in bfl.breakers], ["open"])
        self.assertIsNotNone(bfl.breakers[0].until)

    def test_the_status_table_refreshes_as_a_partial(self) -> None:
        response = self.client.get(
            self.url, headers={"HX-Request": "true", "HX-Target": "backend-status"}
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'id="backend-status"')
        self.assertNotContains(response, "<html")
        self.assertNotContains(response, 'id="provider-accounts"')
        self.assertIn("HX-Request", response["Vary"])

    def test_adding_an_account_encrypts_the_key_and_replaces_the_enabled_one(
        self,
    ) -> None:
        old = self.account()
        response = self.client.post(
            reverse("generation:operator-account-add"),
            {"backend": "fal", "label": "New fal", "api_key": "fal_new_key_QQQQ4321"},
            headers={"HX-Request": "true"},
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'id="provider-accounts"')
        self.assertNotContains(response, "<html")
        self.assertNotContains(response, "fal_new_key_QQQQ4321")
        self.assertContains(response, "…4321")
        new = ProviderAccount.objects.get(label="New fal")
        self.assertTrue(new.enabled)
        self.assertEqual(crypto.decrypt(new.api_key_encrypted), "fal_new_key_QQQQ4321")
        self.assertNotIn("QQQQ", new.api_key_encrypted)
        old.refresh_from_db()
        self.assertFalse(old.enabled)

    def test_an_invalid_form_is_shown_again_without_the_key(self) -> None:
        response = self.client.post(
            reverse("generation:operator-account-add"),
            {"backend": "fal", "api_key": "", "base_url": "not a url at all"},
            headers={"HX-Request": "true"},
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "This backend needs a key.")
        self.assertEqual(ProviderAccount.objects.count(), 0)
        response = self.client.post(
            reverse("generation:operator-account-add"),
            {"backend": "nope", "api_key": "secret_value_1234"},
        )
        self.assertEqual(response.status_code, 200)  # the full page, with the error
        self.assertNotContains(response, "secret_value_1234")

    def test_without_htmx_it_redirects_back(self) -> None:
        response = self.client.post(
            reverse("generation:operator-account-add"),
            {"backend": "replicate", "api_key": "r8_abcdefgh1234"},
        )
        self.assertRedirects(response, self.url)
        self.assertTrue(ProviderAccount.objects.get(backend="replicate").enabled)

    def test_disabling_an_account(self) -> None:
        account = self.account()
        url = reverse("generation:operator-account-disable", args=[account.code])
        response = self.client.post(url, headers={"HX-Request": "true"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "disabled")
        account.refresh_from_db()
        self.assertFalse(account.enabled)
        self.assertRedirects(self.client.post(url), self.url)

    def test_the_model_table_says_which_backend_serves_which_model(self) -> None:
        response = self.client.get(self.url)
        self.assertContains(response, "fal-ai/flux-2-pro")
        self.assertContains(response, "@cf/black-forest-labs/flux-2-dev")
        self.assertContains(response, "black-forest-labs/flux-2-max")


class HelperTests(StudioTestCase):
    def test_percentile_is_nearest_rank(self) -> None:
        values = [float(v) for v in range(1, 101)]
        self.assertEqual(percentile(values, 50), 50.0)
        self.assertEqual(percentile(values, 95), 95.0)
        self.assertEqual(percentile([3.0], 95), 3.0)
        self.assertIsNone(percentile([], 50))

    def test_safe_url_drops_credentials(self) -> None:
        self.assertEqual(
            safe_url("https://u:p@host.example:8443/v1?key=1#x"),
            "https://host.example:8443/v1",
        )
        self.assertEqual(safe_url(""), "")
