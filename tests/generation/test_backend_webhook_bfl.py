"""BFL webhooks: signature verification and payload parsing, and the fake's signed deliveries."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.test import SimpleTestCase

from generation.backends.base import (
    BackendConfig,
    BackendError,
    ErrorClass,
    GenerationRequest,
    ProviderState,
)
from generation.backends.bfl import BFLBackend, sign_webhook
from tests.fakes.bfl_server import FakeBFL

SECRET = "whsec_studio"
READY = {
    "id": "gen_abc123",
    "status": "Ready",
    "result": {
        "sample": "https://delivery-eu1.bfl.ai/results/x/sample.jpeg?se=...",
        "prompt": "a cat",
        "seed": 42,
    },
    "timestamp": "2025-01-15T10:30:00Z",
}


class SignatureTests(SimpleTestCase):
    backend = BFLBackend(BackendConfig(api_key="k"))

    def parse(self, body: bytes, headers: dict[str, str], secret: str = SECRET) -> Any:
        return self.backend.parse_webhook(headers=headers, body=body, secret=secret)

    def assertRefused(
        self, body: bytes, headers: dict[str, str], secret: str = SECRET
    ) -> BackendError:
        with self.assertRaises(BackendError) as ctx:
            self.parse(body, headers, secret)
        return ctx.exception

    def test_a_valid_signature_is_accepted_and_parsed(self) -> None:
        body = json.dumps(READY).encode()
        task_id, result = self.parse(
            body, {"X-BFL-Signature": sign_webhook(body, SECRET)}
        )
        self.assertEqual(task_id, "gen_abc123")
        self.assertEqual(result.state, ProviderState.READY)
        self.assertEqual(result.result_url, READY["result"]["sample"])
        self.assertEqual(result.seed, 42)

    def test_the_signature_is_hmac_sha256_of_the_raw_body(self) -> None:
        import hashlib
        import hmac

        body = b'{"id": "t", "status": "Pending"}'
        expected = (
            "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        )
        self.assertEqual(sign_webhook(body, SECRET), expected)
        # Header names are case-insensitive; a bare hex digest is accepted too.
        self.assertEqual(
            self.parse(
                body,
                {"x-bfl-signature": expected.upper().replace("SHA256=", "sha256=")},
            )[0],
            "t",
        )
        self.assertEqual(
            self.parse(body, {"X-Bfl-Signature": expected.removeprefix("sha256=")})[0],
            "t",
        )

    def test_a_wrong_signature_is_refused(self) -> None:
        body = json.dumps(READY).encode()
        error = self.assertRefused(
            body, {"X-BFL-Signature": sign_webhook(body, "another-secret")}
        )
        self.assertEqual((error.error_class, error.status_code), (ErrorClass.AUTH, 401))

    def test_a_tampered_body_is_refused(self) -> None:
        body = json.dumps(READY).encode()
        signature = sign_webhook(body, SECRET)
        tampered = body.replace(b"delivery-eu1.bfl.ai", b"evil.example.com")
        self.assertEqual(
            self.assertRefused(tampered, {"X-BFL-Signature": signature}).error_class,
            ErrorClass.AUTH,
        )

    def test_a_missing_signature_is_refused_when_a_secret_is_set(self) -> None:
        error = self.assertRefused(json.dumps(READY).encode(), {})
        self.assertEqual(error.error_class, ErrorClass.AUTH)
        self.assertIn("no X-BFL-Signature", error.message)
        self.assertRefused(json.dumps(READY).encode(), {"X-BFL-Signature": ""})

    def test_without_a_secret_nothing_can_be_checked(self) -> None:
        task_id, result = self.parse(json.dumps(READY).encode(), {}, secret="")
        self.assertEqual((task_id, result.state), ("gen_abc123", ProviderState.READY))

    def test_failure_payloads(self) -> None:
        error_payload = {
            "id": "t1",
            "status": "Error",
            "error": "internal_error",
            "message": "GPU fell over",
        }
        body = json.dumps(error_payload).encode()
        task_id, result = self.parse(
            body, {"X-BFL-Signature": sign_webhook(body, SECRET)}
        )
        self.assertEqual((task_id, result.state), ("t1", ProviderState.FAILED))
        self.assertEqual(result.error.error_class, ErrorClass.PROVIDER_ERROR)
        self.assertIn("GPU fell over", result.error.message)

        moderated = {
            "id": "t2",
            "status": "Content Moderated",
            "details": {"Moderation Reasons": ["NSFW"]},
        }
        body = json.dumps(moderated).encode()
        _, result = self.parse(body, {"X-BFL-Signature": sign_webhook(body, SECRET)})
        self.assertEqual(result.error.error_class, ErrorClass.MODERATED)
        self.assertEqual(result.error.details["reasons"], ["NSFW"])

    def test_bad_bodies(self) -> None:
        for body in (b"not json", b"[1, 2]", b'{"status": "Ready"}'):
            with self.subTest(body=body):
                error = self.assertRefused(
                    body, {"X-BFL-Signature": sign_webhook(body, SECRET)}
                )
                self.assertEqual(
                    (error.error_class, error.status_code), (ErrorClass.BAD_RESULT, 400)
                )


class Receiver:
    """A webhook receiver on 127.0.0.1 that records what arrives and answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.arrived:
                    receiver.received.append((dict(self.headers.items()), body))
                    receiver.arrived.notify_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bfl"
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        ).start()

    def wait_for(
        self, count: int, timeout: float = 5.0
    ) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count and time.monotonic() < deadline:
                self.arrived.wait(deadline - time.monotonic())
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeWebhookTests(SimpleTestCase):
    def setUp(self) -> None:
        self.receiver = Receiver()
        self.fake = FakeBFL(latency=0.1, webhook_retry_delays=(0.1, 0.1)).start()
        self.backend = BFLBackend(self.fake.config())

    def tearDown(self) -> None:
        self.fake.stop()
        self.receiver.close()

    def count(self, name: str, expected: int) -> int:
        """The fake's counter, once it reaches `expected` (it counts after the receiver answered)."""
        deadline = time.monotonic() + 5
        while self.fake.counts[name] < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.fake.counts[name]

    def submit(self, prompt: str = "a cat") -> str:
        request = GenerationRequest(
            model="flux-2-pro",
            prompt=prompt,
            width=512,
            height=512,
            webhook_url=self.receiver.url,
            webhook_secret=SECRET,
        )
        return self.backend.submit(request).task_id

    def test_ready_is_delivered_signed_and_parses(self) -> None:
        task_id = self.submit()
        headers, body = self.receiver.wait_for(1)[0]
        parsed_id, result = self.backend.parse_webhook(
            headers=headers, body=body, secret=SECRET
        )
        self.assertEqual(parsed_id, task_id)
        self.assertEqual(result.state, ProviderState.READY)
        self.assertEqual(self.backend.fetch(result)[1], "image/jpeg")
        self.assertEqual(self.count("webhooks_sent", 1), 1)

    def test_moderation_is_delivered_too(self) -> None:
        self.submit("a poster [fake:request_moderated]")
        headers, body = self.receiver.wait_for(1)[0]
        _, result = self.backend.parse_webhook(
            headers=headers, body=body, secret=SECRET
        )
        self.assertEqual(result.error.details["moderation"], "request")

    def test_bad_and_missing_signatures_are_refused(self) -> None:
        self.fake.inject("bad_signature")
        self.fake.inject("unsigned")
        self.submit()
        self.submit()
        for headers, body in self.receiver.wait_for(2):
            with self.assertRaises(BackendError) as ctx:
                self.backend.parse_webhook(headers=headers, body=body, secret=SECRET)
            self.assertEqual(ctx.exception.error_class, ErrorClass.AUTH)

    def test_duplicates_and_retries(self) -> None:
        self.fake.inject("duplicate")
        self.submit()
        first, second = self.receiver.wait_for(2)
        self.assertEqual(first[1], second[1])
        self.receiver.status = 500
        self.submit()
        deliveries = self.receiver.wait_for(
            5
        )  # 2 above + the first try and two retries
        self.assertEqual(len(deliveries), 5)
        self.assertEqual(self.count("webhooks_failed", 3), 3)
