"""POST /batches: the request's body to a batch plan (generation.batches.plan) and a dispatched batch,
through the same service as the studio's batch page."""

from __future__ import annotations

import random

from django.shortcuts import get_object_or_404

from api import lookups
from api.auth import require
from api.problems import Problem
from api.schemas import BatchIn
from api.tokens import Caller
from campaigns.models import Campaign, TemplateVersion
from generation.batches import services as batch_services
from generation.batches.spec import (
    FIXED,
    MATRIX,
    RANDOM,
    ROWS,
    BatchSpec,
    Row,
    Seeds,
    Size,
    Target,
)
from generation.batches.targets import max_batch_size
from generation.models import Batch
from studio.models import Role


def batch_spec(payload: BatchIn, version: TemplateVersion) -> BatchSpec:
    """The batch plan of a request: a matrix (in the version's variable order) or rows, seeds,
    targets, sizes and reference slots; a target that does not parse is a 422 problem."""
    try:
        targets = tuple(Target.parse(t) for t in payload.targets)
    except ValueError as exc:
        raise Problem(422, "validation", str(exc)) from exc
    order = list(version.variables)
    if payload.matrix is not None:
        names = sorted(
            payload.matrix,
            key=lambda n: order.index(n) if n in order else len(order),
        )
        matrix = tuple((n, tuple(payload.matrix[n])) for n in names)
        rows: tuple[Row, ...] = ()
        mode = MATRIX
    else:
        matrix, mode = (), ROWS
        rows = tuple(Row(i + 2, dict(r)) for i, r in enumerate(payload.rows or ()))
    seeds = (
        Seeds(mode=FIXED, values=tuple(payload.seeds.values))
        if payload.seeds.values is not None
        else Seeds(
            mode=RANDOM,
            count=payload.seeds.count or 1,
            rng_seed=random.randint(0, 2**31),
        )
    )
    return BatchSpec(
        mode=mode,
        matrix=matrix,
        rows=rows,
        seeds=seeds,
        targets=targets,
        sizes=tuple(Size(s.width, s.height) for s in payload.sizes),
        references={k: str(v) for k, v in payload.references.items()},
        merge_brand=payload.merge_brand,
    )


def batch_from_request(caller: Caller, payload: BatchIn) -> Batch:
    """Create and dispatch the batch a POST /batches body asks for."""
    require(caller, Role.EDITOR)
    campaign = get_object_or_404(
        Campaign, workspace=caller.workspace, code=payload.campaign
    )
    version = get_object_or_404(
        TemplateVersion.objects.select_related("template"),
        workspace=caller.workspace,
        code=payload.template_version,
    )
    lookups.references(caller, list(payload.references.values()))
    spec = batch_spec(payload, version)
    if spec.count > max_batch_size():
        raise Problem(
            422,
            "validation",
            f"That is {spec.count} variants; a batch makes at most {max_batch_size()}.",
        )
    return batch_services.batch_create(
        campaign=campaign,
        version=version,
        spec=spec,
        user=caller.user,
        name=payload.name,
    )
