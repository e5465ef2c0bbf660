"""Issue 9, item 9: the operator page with stored keys that cannot be decrypted (SECRET_KEY
changed, no FIELD_ENCRYPTION_KEYS) says so per account instead of answering 500."""

from __future__ import annotations

from django.conf import settings
from django.test import override_settings

from generation.models import GenerationState
from tests.generation.test_operator_view import OperatorTestCase

S = GenerationState


class UndecryptableKeyTests(OperatorTestCase):
    def test_operator_page_names_the_account_whose_key_cannot_be_decrypted(
        self,
    ) -> None:
        account = self.account(backend="fal", label="Team fal")
        self.client.force_login(self.alice)
        # The key was encrypted under the old SECRET_KEY; the install now has another one.
        # (The old one stays a fallback, so the session still signs; encryption has no fallback.)
        with override_settings(
            SECRET_KEY="a-different-secret-key-" + "x" * 40,
            SECRET_KEY_FALLBACKS=[settings.SECRET_KEY],
            FIELD_ENCRYPTION_KEYS=[],
        ):
            r = self.client.get(self.url)
            self.assertEqual(r.status_code, 200)
            self.assertContains(r, "cannot be decrypted, enter the key again")
            self.assertContains(r, f'id="account-{account.code}"')
            # The routing map and the statuses still render for the other backends.
            self.assertContains(r, "preview")
