"""Shared pieces of the batch tests: templates with slots, library images, specs, and a test case
that runs the real engine steps in-process (own Redis key prefix, dispatcher wake-ups recorded)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from unittest import mock

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from campaigns.models import PromptTemplate, ReferenceImage, TemplateVersion
from campaigns.prompting import template_variables
from campaigns.references import reference_create
from generation import caps
from generation.batches.spec import FIXED, RANDOM, BatchSpec, Seeds, Size, Target
from generation.engine.dispatch import generation_dispatch_one
from generation.engine.ingest import generation_ingest
from generation.engine.poll import generation_poll
from generation.engine.submit import generation_submit
from generation.models import Generation
from tests.base import StudioTestCase
from tests.factories import image_bytes

HEADLINES = ("Autumn blend", "Half price", "New roast")
SCENES = ("on a marble table", "in a cosy cafe")


def make_version(
    brand: Any,
    *,
    body: str = 'Poster: "{headline}" above a coffee bag {scene}, warm light',
    kind: str = "text",
    reference_slots: Sequence[dict[str, Any]] = (),
    parameters: dict[str, Any] | None = None,
    campaign: Any = None,
    name: str | None = None,
) -> TemplateVersion:
    template = PromptTemplate.objects.create(
        workspace=brand.workspace,
        brand=brand,
        campaign=campaign,
        name=name or f"Template {uuid.uuid4().hex[:6]}",
    )
    return TemplateVersion.objects.create(
        workspace=brand.workspace,
        template=template,
        number=1,
        kind=kind,
        body=body,
        variables=template_variables(body, kind),
        reference_slots=list(reference_slots),
        parameters=dict(parameters or {}),
    )


def make_reference(
    brand: Any, *, role: str = "product", color: tuple[int, int, int] = (200, 60, 60)
) -> ReferenceImage:
    return reference_create(
        brand=brand,
        uploaded_file=SimpleUploadedFile(
            f"{role}-{uuid.uuid4().hex[:6]}.png",
            image_bytes(size=(1024, 1024), color=color),
            "image/png",
        ),
        user=None,
        role=role,
        tags=[],
    )


def matrix_spec(
    *,
    headlines: Sequence[str] = HEADLINES,
    scenes: Sequence[str] = SCENES,
    seeds: Seeds | None = None,
    targets: Sequence[str] = ("preview:flux-2-pro",),
    sizes: Sequence[Size] = (Size(1024, 1024),),
    references: dict[str, str] | None = None,
) -> BatchSpec:
    return BatchSpec(
        mode="matrix",
        matrix=(("headline", tuple(headlines)), ("scene", tuple(scenes))),
        seeds=seeds or Seeds(FIXED, values=(11, 22)),
        targets=tuple(Target.parse(t) for t in targets),
        sizes=tuple(sizes),
        references=references or {},
    )


def random_seeds(count: int = 2, rng_seed: int = 1234) -> Seeds:
    return Seeds(RANDOM, count=count, rng_seed=rng_seed)


class BatchTestCase(StudioTestCase):
    """The cast of StudioTestCase, a two-variable template, BFL configured with a test key, its
    own Redis key prefix, and the dispatcher's wake-ups recorded instead of sent."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.version = make_version(cls.brand, campaign=cls.campaign)

    def setUp(self) -> None:
        super().setUp()
        self.prefix = f"test-batch-{uuid.uuid4().hex[:10]}"
        overrides = override_settings(
            ENGINE_REDIS_PREFIX=self.prefix,
            BFL_API_KEY="bfl_test_key_1234",
            BFL_API_URL="",
        )
        overrides.enable()
        self.addCleanup(overrides.disable)
        patcher = mock.patch("generation.tasks.wake_dispatcher")
        self.woken = patcher.start()
        self.addCleanup(patcher.stop)
        self.addCleanup(self._clear_redis)

    def _clear_redis(self) -> None:
        client = caps.redis_client()
        if client is not None and (keys := list(client.scan_iter(f"{self.prefix}:*"))):
            client.delete(*keys)

    def run_generation(self, generation: Generation) -> Generation:
        """Drive one queued generation through the engine's steps in-process (synchronous
        backends finish in the submit step)."""
        generation_dispatch_one(generation_id=generation.pk)
        nxt = generation_submit(generation_id=generation.pk)
        for _ in range(20):
            Generation.objects.filter(pk=generation.pk, due_at__isnull=False).update(
                due_at=timezone.now()
            )
            if nxt.action == "submit":
                nxt = generation_submit(generation_id=generation.pk)
            elif nxt.action == "poll":
                nxt = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
            elif nxt.action == "ingest":
                nxt = generation_ingest(generation_id=generation.pk)
            else:
                break
        return Generation.objects.get(pk=generation.pk)


def make_batch_with_asset(campaign: Any, version: TemplateVersion, user: Any) -> Any:
    """A dispatched preview batch whose first generation has an image (stored directly, no
    engine run): for tests that only need the objects to exist."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from generation.batches.services import batch_create
    from generation.models import Asset

    with mock.patch("generation.tasks.wake_dispatcher"):
        batch = batch_create(
            campaign=campaign,
            version=version,
            spec=matrix_spec(headlines=("A",), scenes=("here",)),
            user=user,
        )
    generation = Generation.objects.filter(batch=batch).order_by("id").first()
    assert generation is not None
    content = image_bytes(size=(64, 64))
    base = f"generations/{campaign.workspace.code}/{generation.code}"
    file_name = default_storage.save(f"{base}/image.png", ContentFile(content))
    thumb_name = default_storage.save(f"{base}/thumb.png", ContentFile(content))
    Asset.objects.create(
        workspace=campaign.workspace,
        generation=generation,
        file=file_name,
        thumbnail=thumb_name,
        width=64,
        height=64,
        format="png",
        content_type="image/png",
        byte_size=len(content),
        sha256="0" * 64,
    )
    Generation.objects.filter(pk=generation.pk).update(
        state="succeeded", finished_at=timezone.now()
    )
    return batch
