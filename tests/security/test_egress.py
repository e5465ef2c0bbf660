"""Issue 9, item 1: no server-side requests at a workspace admin's bidding.

The exact probe: a BFL account whose base URL is an internal admin endpoint on 127.0.0.1. The form
refuses it; an account stored before the fix is refused at connect time (nothing reaches the
endpoint); a name that re-resolves to a private address after the form check (DNS rebinding) is
refused at connect time; and the connection goes to the address that was checked (pinned).
Members read a classified error, admins the provider's words.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

from django.test import override_settings
from django.urls import reverse

from generation import accounts
from generation.backends import egress, transport
from generation.backends.base import BackendError, ErrorClass, GenerationRequest
from generation.engine.failure import generation_fail
from generation.models import GenerationState, ProviderAccount
from tests.generation.test_operator_view import OperatorTestCase

S = GenerationState
PROBE_URL = "http://127.0.0.1:{port}/internal/admin/delete-everything?confirm=yes#"
PUBLIC = "93.184.215.14"


class Recorder:
    """An "internal" HTTP service on 127.0.0.1 that records every request it gets."""

    def __enter__(self) -> Recorder:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                recorder.requests.append(
                    (self.command, self.path, dict(self.headers.items()))
                )
                body = b"internal admin console: secret-token-42 deleted everything"
                self.send_response(500)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@override_settings(STUDIO_PRIVATE_ENDPOINTS=[], BFL_API_URL="", BFL_API_KEY="")
class EgressTests(OperatorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.client.force_login(self.alice)
        self.recorder = Recorder().__enter__()
        self.addCleanup(self.recorder.__exit__)

    def add_account(self, base_url: str) -> Any:
        return self.client.post(
            reverse("generation:operator-account-add"),
            {"backend": "bfl", "api_key": "bfl_key_ABCD1234", "base_url": base_url},
            headers={"HX-Request": "true"},
        )

    def test_the_probe_url_is_refused_by_the_form(self) -> None:
        r = self.add_account(PROBE_URL.format(port=self.recorder.port))
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "cannot carry a query string")
        self.assertFalse(ProviderAccount.objects.exists())
        for url, reason in [
            (f"http://127.0.0.1:{self.recorder.port}/", "private, loopback"),
            ("https://user:pw@api.example.com/", "credentials in the URL"),
            ("https://api.example.com/#frag", "fragment"),
            ("ftp://api.example.com/", "only https"),
        ]:
            with (
                self.subTest(url),
                mock.patch.object(egress, "resolve", return_value=[PUBLIC]),
            ):
                r = self.add_account(url)
                self.assertContains(r, reason)
        with mock.patch.object(egress, "resolve", return_value=["10.0.0.7"]):
            self.assertContains(
                self.add_account("https://comfy.internal.example/"), "10.0.0.7"
            )
        self.assertFalse(ProviderAccount.objects.exists())
        self.assertEqual(self.recorder.requests, [])

    def test_a_public_https_url_is_accepted(self) -> None:
        with mock.patch.object(egress, "resolve", return_value=[PUBLIC]):
            self.add_account("https://bfl-proxy.example.com/v1")
        self.assertEqual(
            ProviderAccount.objects.get().base_url, "https://bfl-proxy.example.com/v1"
        )

    def test_an_account_stored_before_the_fix_is_refused_at_connect_time(self) -> None:
        account = ProviderAccount(
            workspace=self.workspace,
            backend="bfl",
            base_url=PROBE_URL.format(port=self.recorder.port),
            enabled=True,
        )
        account.set_api_key("bfl_key_ABCD1234")
        account.save()
        backend, _ = accounts.backend_for(workspace_id=self.workspace.pk, backend="bfl")
        with self.assertRaises(BackendError) as caught:
            backend.submit(
                GenerationRequest(
                    model="flux-2-pro", prompt="a mug", width=512, height=512
                )
            )
        self.assertEqual(caught.exception.error_class, ErrorClass.INVALID_REQUEST)
        self.assertFalse(caught.exception.retryable)
        self.assertIn("private, loopback", caught.exception.message)
        self.assertEqual(
            self.recorder.requests, []
        )  # neither the key nor the prompt left

    def test_dns_rebinding_after_the_form_check_is_refused_at_connect_time(
        self,
    ) -> None:
        answers = iter([[PUBLIC], ["127.0.0.1"], ["127.0.0.1"]])
        with mock.patch.object(egress, "resolve", side_effect=lambda *a: next(answers)):
            self.add_account("https://rebind.example.com")  # checked: public
            self.assertTrue(ProviderAccount.objects.exists())
            with self.assertRaises(BackendError) as caught:
                transport.send(
                    "GET",
                    f"https://rebind.example.com:{self.recorder.port}/v1/credits",
                    "credits",
                    timeout=transport.timeouts({})[0],
                )
        self.assertIn("resolves to 127.0.0.1", caught.exception.message)
        self.assertEqual(self.recorder.requests, [])

    def test_the_connection_goes_to_the_checked_address(self) -> None:
        # "pinned.test" exists in no DNS: the request can only arrive if the socket was opened
        # to the address the check resolved (allowed here by the operator's setting).
        with (
            override_settings(STUDIO_PRIVATE_ENDPOINTS=["127.0.0.1/32"]),
            mock.patch.object(egress, "resolve", return_value=["127.0.0.1"]),
            self.assertRaises(BackendError),  # the recorder answers 500
        ):
            transport.send(
                "GET",
                f"http://pinned.test:{self.recorder.port}/ping",
                "ping",
                timeout=transport.timeouts({})[0],
            )
        self.assertEqual(len(self.recorder.requests), 1)
        self.assertEqual(
            self.recorder.requests[0][2]["Host"], f"pinned.test:{self.recorder.port}"
        )

    @override_settings(STUDIO_PRIVATE_ENDPOINTS=["127.0.0.1/32"])
    def test_members_read_a_classified_error_admins_the_provider_body(self) -> None:
        # The operator allowed the host, so the provider's 500 body comes back.
        account = ProviderAccount(
            workspace=self.workspace,
            backend="bfl",
            base_url=f"http://127.0.0.1:{self.recorder.port}",
            enabled=True,
        )
        account.set_api_key("bfl_key_ABCD1234")
        account.save()
        backend, _ = accounts.backend_for(workspace_id=self.workspace.pk, backend="bfl")
        with self.assertRaises(BackendError) as caught:
            backend.submit(
                GenerationRequest(
                    model="flux-2-pro", prompt="a mug", width=512, height=512
                )
            )
        self.assertIn("secret-token-42", caught.exception.message)
        row = self.generation("bfl", S.QUEUED, finished_at=None)
        generation_fail(generation_id=row.pk, error=caught.exception)
        row.refresh_from_db()
        self.assertEqual(row.error_message, "Provider error (HTTP 500).")
        self.assertIn("secret-token-42", row.provider_details["error_raw"])
        r = self.client.get(self.url)  # the operator page, admins only
        self.assertContains(r, "secret-token-42")
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(self.url).status_code, 403)
