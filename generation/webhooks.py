"""Provider webhooks in: BFL, fal and Replicate tell us when a task ends, so we need not poll.

When settings.STUDIO_PUBLIC_URL is set, every submission to a backend that calls back
(`capabilities().calls_back`) carries a callback URL of its own:

    {STUDIO_PUBLIC_URL}/webhooks/<backend>/<generation code>/<token>/

`token` is an HMAC of the generation's code under SECRET_KEY (django.utils.crypto.salted_hmac),
so it is unguessable, needs no column and no lookup to check, and a URL for one generation says
nothing about another's. BFL also gets a per-generation `webhook_secret` (another HMAC of the
code) and signs its callback with it (docs/providers.md §1.11); fal signs with its own Ed25519 key
(2.7) and Replicate with the account's `whsec_` secret (3.4), as each backend's parse_webhook
verifies. Rotating SECRET_KEY invalidates callbacks in flight; polling finishes those.

The receiver (views.webhook → `receive`) does little work on purpose: check the token (no
database), load the row by its code, verify the signature, compare the task id with the row's
(an old task after a resubmit or a re-route is ignored), and hand the result to
generation_callback, the same _on_result path as a poll answer: the conditional UPDATE
moves the row to `ingesting` once, so a duplicate delivery changes nothing. The download and
thumbnail run in the ingest task it enqueues; the provider gets its 2xx in milliseconds.

Answers: 200 applied or ignored (duplicate, late, unknown task of a known row); 401 bad signature;
403 bad token; 404 unknown generation or backend; 400 unreadable body; 503 (Retry-After) when the
row has not recorded its task id yet (the callback beat the submit's UPDATE) or the provider's
signing keys could not be fetched, so the provider delivers again.

Polling stays as the fallback: a callback can be lost (receiver down, provider retries
exhausted), and BFL documents webhooks as an addition to polling. With a callback expected, the
first poll waits `first_poll_delay`: twice the backend+model's usual duration (the engine's
EWMA) plus 5 s, at most ENGINE_WEBHOOK_POLL_DELAY (30 s; that long without history). A callback
normally lands when the task ends, so a poll before then would mostly duplicate it; after twice
the usual time a missing callback is more likely lost than late. The price of a lost callback is
that much extra latency, and the concurrency slot is held that long.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import salted_hmac

from generation.backends.base import (
    Backend,
    BackendError,
    ErrorClass,
    GenerationRequest,
)
from generation.engine import policy as engine
from generation.models import Generation

# The backends whose callbacks the studio receives (docs/providers.md §1.11, 2.7, 3.4).
WEBHOOK_BACKENDS = frozenset({"bfl", "fal", "replicate"})


def public_url() -> str:
    return str(getattr(settings, "STUDIO_PUBLIC_URL", "") or "").rstrip("/")


def token_for(code: UUID | str) -> str:
    return salted_hmac(
        "generation.webhooks.url", str(code), algorithm="sha256"
    ).hexdigest()[:40]


def bfl_secret_for(code: UUID | str) -> str:
    return salted_hmac(
        "generation.webhooks.bfl-secret", str(code), algorithm="sha256"
    ).hexdigest()


def url_for(generation: Generation) -> str:
    path = reverse(
        "generation:webhook",
        kwargs={
            "backend": generation.backend,
            "code": generation.code,
            "token": token_for(generation.code),
        },
    )
    return f"{public_url()}{path}"


def expects_callback(generation: Generation, backend: Backend) -> bool:
    return (
        bool(public_url())
        and generation.backend in WEBHOOK_BACKENDS
        and backend.capabilities().calls_back
    )


def attach(
    generation: Generation, backend: Backend, request: GenerationRequest
) -> GenerationRequest:
    """The request with this generation's callback URL (and BFL's secret), when one applies."""
    if not expects_callback(generation, backend):
        return request
    secret = bfl_secret_for(generation.code) if generation.backend == "bfl" else None
    return dataclasses.replace(
        request, webhook_url=url_for(generation), webhook_secret=secret
    )


def first_poll_delay(generation: Generation, regular: float) -> float:
    """When to poll first although a callback is expected (see the module docstring)."""
    ceiling = engine.conf("ENGINE_WEBHOOK_POLL_DELAY", 30.0)
    usual = engine.duration_estimate(generation.backend, generation.model)
    target = min(ceiling, 2 * usual + 5) if usual else ceiling
    return max(regular, target)


# --- receiving ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    status: int
    detail: str
    retry_after: int | None = None


def receive(
    *,
    backend_name: str,
    code: UUID,
    token: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Receipt:
    """Verify one callback and apply it (generation_callback); never raises."""
    from generation import accounts
    from generation.engine.poll import generation_callback

    if backend_name not in WEBHOOK_BACKENDS:
        return Receipt(404, "no webhooks for this backend")
    if not hmac.compare_digest(token.encode(), token_for(code).encode()):
        return Receipt(403, "bad token")
    generation = (
        Generation.objects.select_related("provider_account").filter(code=code).first()
    )
    if generation is None:
        return Receipt(404, "unknown generation")
    if generation.backend != backend_name:
        # Re-routed to another backend since: this door's news is no longer the row's.
        return Receipt(200, "ignored: the generation moved to another backend")
    try:
        backend = accounts.backend_for_generation(generation)
        secret = bfl_secret_for(code) if backend_name == "bfl" else ""
        task_id, result = backend.parse_webhook(
            headers=headers, body=body, secret=secret
        )
    except BackendError as exc:
        if exc.error_class == ErrorClass.AUTH:
            return Receipt(401, exc.message)
        if exc.retryable:  # e.g. fal's signing keys could not be fetched
            return Receipt(503, exc.message, retry_after=5)
        return Receipt(400, exc.message)
    except (
        Exception
    ) as exc:  # configuration (an undecryptable key): the provider may retry
        return Receipt(503, f"cannot verify: {type(exc).__name__}", retry_after=30)
    if task_id != generation.provider_task_id:
        if not generation.provider_task_id and generation.is_active:
            # The provider was faster than our own UPDATE saving its task id.
            return Receipt(503, "task id not recorded yet", retry_after=1)
        return Receipt(200, "ignored: not the generation's current task")
    nxt = generation_callback(
        generation_id=generation.pk, task_id=task_id, result=result
    )
    _enqueue(generation.pk, nxt)
    return Receipt(200, "applied" if nxt.action != "none" or nxt.wake else "ignored")


def _enqueue(generation_id: int, nxt: Any) -> None:
    """Schedule what the callback made due (an ingest, a resubmit) and wake the dispatchers of
    freed slots: messages only, nothing runs in the web request."""
    from generation import tasks

    if nxt.action == "ingest":
        tasks.generation_ingest.apply_async((generation_id,), countdown=nxt.countdown)
    elif nxt.action == "submit":
        tasks.generation_submit.apply_async((generation_id,), countdown=nxt.countdown)
    elif nxt.action == "poll":
        tasks.generation_poll.apply_async(
            (generation_id, nxt.poll_seq), countdown=nxt.countdown
        )
    for cap_key in nxt.wake:
        tasks.wake_dispatcher(cap_key)
