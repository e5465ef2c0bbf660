"""Again: retry a batch's failed generations, or re-run it as a draft with one axis changed."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from campaigns.models import Campaign
from generation import accounts, fair, routing
from generation.backends import registry
from generation.batches.common import (
    AXIS_SEEDS,
    AXIS_SIZES,
    AXIS_TARGETS,
    FIELD_BUDGET,
    RETRYABLE_STATES,
    B,
    BatchRefused,
    _unretried,
)
from generation.batches.parsing import parse_seeds, parse_values
from generation.batches.services import batch_create
from generation.batches.spec import (
    FIELD_SEEDS,
    FIELD_SIZES,
    FIELD_TARGETS,
    FIXED,
    MATRIX,
    MAX_SEED,
    NON_FIELD,
    RANDOM,
    BatchSpec,
    Seeds,
    Size,
)
from generation.batches.targets import _configured_backend
from generation.batches.variants import (
    _parse_targets,
    describe_changes,
    parse_size_choices,
)
from generation.engine.create import queue_generations
from generation.models import (
    Batch,
    Generation,
)
from generation.spend.services import campaign_budget


def batch_retry_failed(*, batch: Batch, user: Any) -> int:
    """A new generation for each failed (or expired) one not retried yet, recording its parent.

    Same request (prompt, model, size, seed, references); the budget is checked as for a new
    batch. Run twice, it retries nothing the second time. Answers how many were retried.
    """
    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        failed = list(
            _unretried(locked).filter(state__in=RETRYABLE_STATES).order_by("id")
        )
        if not failed:
            return 0
        problems = []
        for name in sorted({g.backend for g in failed}):
            if _configured_backend(workspace_id=locked.workspace_id, name=name) is None:
                problems.append(
                    f"{registry.BACKENDS[name].label if name in registry.BACKENDS else name} is not configured any more."
                )
        if problems:
            raise BatchRefused({NON_FIELD: problems})
        campaign = Campaign.objects.select_for_update().get(pk=locked.campaign_id)
        amount = sum((g.estimated_cost for g in failed), Decimal(0))
        budget = campaign_budget(campaign=campaign)
        if not budget.fits(amount):
            raise BatchRefused({FIELD_BUDGET: [budget.refusal(amount)]})
        account_ids = {
            name: accounts.enabled_account(
                workspace_id=locked.workspace_id, backend=name
            )
            for name in {g.backend for g in failed}
        }
        groups: dict[tuple[str, int | None], list[Generation]] = defaultdict(list)
        for g in failed:
            account = account_ids[g.backend]
            groups[(g.backend, account.pk if account else None)].append(g)
        now = timezone.now()
        rows = []
        for (backend, account_id), members in groups.items():
            ranks = fair.next_ranks(
                backend=backend,
                account_id=account_id,
                owner_key=locked.owner_key,
                count=len(members),
            )
            for g, rank in zip(members, ranks, strict=True):
                rows.append(
                    Generation(
                        workspace_id=g.workspace_id,
                        campaign_id=g.campaign_id,
                        brand_id=g.brand_id,
                        template_version_id=g.template_version_id,
                        created_by=user,
                        batch=locked,
                        variables=g.variables,
                        parent=g,
                        changes={"retry": True},
                        backend=g.backend,
                        model=g.model,
                        provider_account=account_ids[g.backend],
                        prompt=g.prompt,
                        params=g.params,
                        width=g.width,
                        height=g.height,
                        seed=g.seed,
                        references=g.references,
                        estimated_cost=g.estimated_cost,
                        requested_backend=g.requested_backend or g.backend,
                        route=[
                            routing.route_entry(
                                g.backend, g.model, g.estimated_cost, at=now
                            )
                        ],
                        owner_key=locked.owner_key,
                        fair_rank=rank,
                        queued_at=now,
                    )
                )
        queue_generations(rows)
        Batch.objects.filter(pk=locked.pk, state__in=[B.FINISHED, B.CANCELED]).update(
            state=B.RUNNING, finished_at=None, updated_at=now
        )
    return len(rows)


def batch_rerun_with_axis(
    *,
    batch: Batch,
    axis: str,
    text: str,
    user: Any,
    presets: Mapping[str, Size] | None = None,
) -> Batch:
    """A draft copy of `batch` with one axis replaced (values of a variable, seeds, targets or
    sizes). It records its parent and what changed; batch_dispatch sends it. Raises BatchRefused
    (errors under "values")."""
    version = batch.template_version
    if version is None:
        raise BatchRefused(
            {NON_FIELD: ["The template version of this batch no longer exists."]}
        )
    old = BatchSpec.from_json(batch.spec)
    problems: list[str] = []
    new = old
    if axis.startswith("var:") and old.mode == MATRIX:
        name = axis[4:]
        values = parse_values(text)
        if name not in dict(old.matrix):
            problems.append(f"{{{name}}} is not an axis of this batch.")
        elif not values:
            problems.append(f"Give at least one value for {{{name}}}.")
        else:
            new = dataclasses.replace(
                old,
                matrix=tuple((n, values if n == name else vs) for n, vs in old.matrix),
            )
    elif axis == AXIS_SEEDS:
        words = text.strip().lower().split()
        if len(words) == 2 and words[0] == "random" and words[1].isdigit():
            new = dataclasses.replace(
                old,
                seeds=Seeds(
                    RANDOM,
                    count=int(words[1]),
                    rng_seed=random.SystemRandom().randint(0, MAX_SEED),
                ),
            )
        else:
            seeds, seed_problems = parse_seeds(text)
            problems += seed_problems
            if not seeds and not seed_problems:
                problems.append("Give seeds (e.g. 1, 2, 3) or “random 4”.")
            new = dataclasses.replace(old, seeds=Seeds(FIXED, values=seeds))
    elif axis == AXIS_TARGETS:
        targets, target_problems = _parse_targets(text)
        problems += target_problems
        new = dataclasses.replace(old, targets=targets)
    elif axis == AXIS_SIZES:
        sizes, size_problems = parse_size_choices(text, presets or {})
        problems += size_problems
        new = dataclasses.replace(old, sizes=sizes)
    else:
        problems.append("Choose which axis to change.")
    if problems:
        raise BatchRefused({"values": problems})
    changed = describe_changes(old, new)
    if not changed:
        raise BatchRefused(
            {"values": ["Nothing changed: edit the values of the axis first."]}
        )
    try:
        return batch_create(
            campaign=batch.campaign,
            version=version,
            spec=new,
            user=user,
            name=f"{batch} · re-run"[:160],
            parent=batch,
            changed=changed,
            dispatch=False,
        )
    except BatchRefused as exc:
        keyed = {
            FIELD_SEEDS: "values",
            FIELD_TARGETS: "values",
            FIELD_SIZES: "values",
        }
        errors: dict[str, list[str]] = {}
        for key, messages in exc.errors.items():
            target = keyed.get(key, "values" if key.startswith("matrix_") else key)
            errors.setdefault(target, []).extend(messages)
        raise BatchRefused(errors) from exc
