"""Creating a generation: the one path that inserts a row and wakes the dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from generation import (
    fair,
    imaging,
    routing,
)
from generation.backends.base import (
    RuleViolation,
)
from generation.engine import policy as engine
from generation.engine.state import _jsonable, wake_on_commit
from generation.models import (
    Generation,
)

log = logging.getLogger(__name__)


def _clean_reference_specs(
    references: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    specs = []
    for ref in references:
        spec = {
            k: str(v)
            for k, v in ref.items()
            if k in ("code", "file", "role", "sha256", "name") and v
        }
        if not (spec.get("code") or spec.get("file")):
            raise RuleViolation(
                "references",
                f"Reference {dict(ref)!r} names neither a library image nor a file.",
            )
        specs.append(spec)
    return specs


def generation_create(
    *,
    workspace: Any,
    backend: str,
    model: str,
    prompt: str,
    width: int,
    height: int,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    references: Sequence[Mapping[str, Any]] = (),
    created_by: Any = None,
    campaign: Any = None,
    brand: Any = None,
    template_version: Any = None,
    owner_key: str | None = None,
    priority: int = 0,
    dispatch: bool = True,
    fallback: Sequence[str] = (),
) -> Generation:
    """Validate, price and store one generation as `queued`; wake the dispatcher on commit.

    A request that breaks the backend's rules raises RuleViolation and NOTHING is stored: it is the
    caller's input error (a form field, a batch row, a command-line flag), shown at once with the
    rule named, and a failed row would only litter the gallery and the spend report. Likewise a
    backend with no credentials raises BackendError(AUTH) here. Failures that only the provider
    can detect (a bad key, moderation) happen later and are stored on the row.

    dispatch=False (the command line) keeps the row out of the fair queue: the caller drives it
    with generation_dispatch_one / generation_submit itself.

    `backend` is a backend name or a routing policy ("cheapest", "fastest"); `fallback` names
    the backends to fall back on, in order (generation/routing.py). The row stores the backend
    chosen, the policy asked for, the chain in reserve and the route so far.
    """
    policy = backend
    routing.check_names(policy, fallback)
    specs = _clean_reference_specs(references)
    try:
        loaded = engine.load_references(workspace_id=workspace.pk, specs=specs)
    except (engine.ReferenceMissing, imaging.ImageRejected) as exc:
        raise RuleViolation("references", str(exc)) from exc
    if brand is None and campaign is not None:
        brand = campaign.brand
    request = engine.build_request(
        model=model,
        prompt=prompt,
        width=width,
        height=height,
        seed=seed,
        params=dict(params or {}),
        references=loaded,
        brand=brand,
    )
    route = routing.plan(
        workspace_id=workspace.pk, policy=policy, request=request, fallback=fallback
    )
    backend, account, estimate = route.backend, route.account, route.estimate
    owner = owner_key or fair.owner_key_for(
        user_id=getattr(created_by, "pk", None), workspace_id=workspace.pk
    )
    account_id = account.pk if account is not None else None
    now = timezone.now()
    with transaction.atomic():
        rank = fair.next_ranks(backend=backend, account_id=account_id, owner_key=owner)[
            0
        ]
        generation = Generation(
            workspace=workspace,
            campaign=campaign,
            brand=brand,
            template_version=template_version,
            created_by=created_by,
            backend=backend,
            model=model,
            provider_account=account,
            prompt=prompt,
            params=_jsonable(dict(params or {})),
            width=width,
            height=height,
            seed=seed,
            references=specs,
            estimated_cost=estimate,
            requested_backend=policy,
            fallbacks=route.fallbacks,
            route=_jsonable(route.entries),
            owner_key=owner,
            priority=priority,
            fair_rank=rank,
            queued_at=now,
            dispatched_at=None if dispatch else now,
            due_at=None if dispatch else now,
        )
        queue_generations([generation], wake=dispatch)
    # Links the request (or command) that made it to the tasks that run it (studio/logs.py).
    log.info(
        "generation queued",
        extra={"generation_id": generation.pk, "backend": backend, "model": model},
    )
    return generation


def queue_generations(rows: list[Generation], *, wake: bool = True) -> list[Generation]:
    """Insert new generation rows (one INSERT per 500) and wake their dispatchers on commit.

    The one place generations are created: generation_create (one request, routed) and a batch's
    planned variants (generation/batches/services.py) both end here.
    """
    Generation.objects.bulk_create(rows, batch_size=500)
    if wake:
        wake_on_commit(row.cap_key for row in rows)
    return rows


def reference_file_store(*, content: bytes, name: str = "") -> dict[str, str]:
    """Store an ad-hoc reference image (command line) under a content-addressed key; answer its spec."""
    info = imaging.inspect(
        content,
        max_pixels=int(getattr(settings, "STUDIO_UPLOAD_MAX_PIXELS", 40_000_000)),
    )
    key = f"generations/inputs/{info.sha256}.{info.extension}"
    if not default_storage.exists(key):
        key = default_storage.save(key, ContentFile(content))
    return {"file": key, "sha256": info.sha256, "name": name}
