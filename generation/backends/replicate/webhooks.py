"""Verifying Replicate's webhook deliveries: the Standard Webhooks scheme (docs/providers.md §3.4),
checked by the `standardwebhooks` reference library."""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks.webhooks import (
    EmptyWebhookSecretError,
    Webhook,
    WebhookVerificationError,
)

from generation.backends.base import (
    BackendError,
    ErrorClass,
)
from generation.backends.replicate.contract import WEBHOOK_TOLERANCE

# --- Webhooks (Standard Webhooks) --------------------------------------------------------------


def _refused(message: str) -> BackendError:
    return BackendError(ErrorClass.AUTH, f"webhook: {message}", status_code=401)


def verify_webhook(headers: Mapping[str, str], body: bytes, secrets: list[str]) -> None:
    """Raise AUTH unless `body` carries a fresh, valid signature by one of `secrets`.

    The Standard Webhooks reference library checks it (docs/providers.md §3.4): the three
    webhook-* headers, a timestamp within WEBHOOK_TOLERANCE of our clock (the library's fixed five
    minutes), and a `v1,` HMAC-SHA256 of "id.timestamp.body" compared in constant time.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if not all(
        (lowered.get(name) or "").strip()
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    ):
        raise _refused("signature headers missing.")
    for secret in secrets:
        try:
            Webhook(secret).verify(body, lowered, json_parse=False)
            return
        except WebhookVerificationError as exc:
            reason = str(exc)
            if "too old" in reason or "too new" in reason:
                raise _refused(
                    f"timestamp {lowered['webhook-timestamp']} is over "
                    f"{WEBHOOK_TOLERANCE} s away ({reason})."
                ) from exc
            if "Invalid Signature Headers" in reason:
                raise _refused("malformed webhook-timestamp.") from exc
        except (EmptyWebhookSecretError, ValueError):
            # A secret that is not base64, a body that is not UTF-8, a signature entry without
            # its "v1," (the library refuses those outright): this secret cannot verify it.
            continue
    raise _refused("signature does not match.")
