"""Generations: one image request each, the durable state machine the engine drives.

Only the service functions in generation/engine/ change a generation's state, each change
one conditional UPDATE (`WHERE state = <expected>`), so a duplicate task delivery does nothing.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from generation.models.accounts import ProviderAccount
from studio.models import Workspace


class GenerationState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTED = "submitted", "Submitted"
    RUNNING = "running", "Running"
    INGESTING = "ingesting", "Ingesting"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    MODERATED = "moderated", "Moderated"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"


ACTIVE_STATES = (
    GenerationState.QUEUED,
    GenerationState.SUBMITTED,
    GenerationState.RUNNING,
    GenerationState.INGESTING,
)
TERMINAL_STATES = (
    GenerationState.SUCCEEDED,
    GenerationState.FAILED,
    GenerationState.MODERATED,
    GenerationState.CANCELED,
    GenerationState.EXPIRED,
)
# A generation's row is in the fair queue while it is queued and no submit task holds it.
FAIR_QUEUE = Q(state=GenerationState.QUEUED, dispatched_at__isnull=True)


class GenerationQuerySet(models.QuerySet["Generation"]):
    def active(self) -> GenerationQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def terminal(self) -> GenerationQuerySet:
        return self.filter(state__in=TERMINAL_STATES)

    def for_cap(self, *, backend: str, account_id: int | None) -> GenerationQuerySet:
        return self.filter(backend=backend, provider_account_id=account_id)


class Generation(models.Model):
    State = GenerationState

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="generations"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    # Where it came from; all optional (the command line makes generations with none of them).
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generations",
    )
    brand = models.ForeignKey(
        "campaigns.Brand",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generations",
    )
    template_version = models.ForeignKey(
        "campaigns.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generations",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The variant batch that made it (generation/batches/services.py), if any.
    batch = models.ForeignKey(
        "Batch",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generations",
    )
    # The template variable values that produced the prompt: {"headline": "Half price", ...}.
    variables = models.JSONField(default=dict, blank=True)
    # "Change one thing" and retries: the generation this one was made from, and what differs
    # from it ({"headline": {"from": "...", "to": "..."}} or {"retry": true}).
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
    )
    changes = models.JSONField(default=dict, blank=True)

    # The exact request.
    backend = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    # Null: the environment's credentials (BFL_API_KEY...). Fixed at creation so every step of
    # one generation talks to the same account and counts against the same concurrency cap.
    provider_account = models.ForeignKey(
        ProviderAccount,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generations",
    )
    prompt = models.TextField()
    params = models.JSONField(default=dict, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    seed = models.BigIntegerField(null=True, blank=True)
    # [{"code": "<ReferenceImage uuid>", "role": "product"}, ...] or, for files given on the
    # command line, [{"file": "<storage key>", "role": "...", "sha256": "..."}], in prompt order
    # ("image 1" is the first).
    references = models.JSONField(default=list, blank=True)

    state = models.CharField(
        max_length=16, choices=GenerationState.choices, default=GenerationState.QUEUED
    )
    attempts = models.PositiveIntegerField(
        default=0, help_text="Submissions sent to the provider."
    )
    retries = models.PositiveIntegerField(
        default=0, help_text="Transient failures retried (network, 5xx)."
    )
    rate_limited = models.PositiveIntegerField(
        default=0, help_text="429 answers waited out."
    )
    provider_task_id = models.CharField(max_length=200, blank=True)
    poll_url = models.TextField(blank=True)
    # The provider's signed result URL, kept only between "ready" and the download (it expires
    # within minutes, BFL: 10); cleared once ingested.
    result_url = models.TextField(blank=True, editable=False)
    poll_count = models.PositiveIntegerField(default=0)
    progress = models.FloatField(null=True, blank=True)
    # When the row's next scheduled step (submit retry, poll, ingest) is due. The sweep re-drives a
    # non-terminal row whose due_at is more than ENGINE_STUCK_AFTER in the past. For a polled
    # generation this is its next poll time.
    due_at = models.DateTimeField(null=True, blank=True)

    error_class = models.CharField(max_length=20, blank=True)
    error_message = models.TextField(blank=True)
    # Provider facts worth keeping: moderation reasons, the final (upsampled) prompt, seed, raw status.
    provider_details = models.JSONField(default=dict, blank=True)

    # Routing (generation/routing.py): what the request asked for (a backend name, "cheapest" or
    # "fastest"), the candidates still in reserve in order, and every choice, failure and
    # skipped candidate so far: [{"backend", "model", "outcome", "error_class", "at", ...}].
    requested_backend = models.CharField(max_length=32, blank=True)
    fallbacks = models.JSONField(default=list, blank=True)
    route = models.JSONField(default=list, blank=True)

    estimated_cost = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("0")
    )
    actual_cost = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True
    )

    # Fair scheduling (generation/fair.py): rows wait in the fair queue ordered by
    # (-priority, fair_rank, id); fair_rank is a per-owner virtual start time, so owners take turns.
    owner_key = models.CharField(max_length=64, blank=True)
    priority = models.SmallIntegerField(default=0)
    fair_rank = models.BigIntegerField(default=0)
    # Set when the dispatcher hands the row to a submit task (it leaves the fair queue).
    dispatched_at = models.DateTimeField(null=True, blank=True)

    queued_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    ingesting_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # .update() skips auto_now: every service UPDATE sets it explicitly.
    updated_at = models.DateTimeField(auto_now=True)

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            # The dispatcher's "next in the fair queue" for one backend + account.
            models.Index(
                fields=["backend", "provider_account", "-priority", "fair_rank", "id"],
                condition=FAIR_QUEUE,
                name="generation_fair_queue",
            ),
            # An owner's last waiting row (the next row's virtual start time).
            models.Index(
                fields=["backend", "provider_account", "owner_key", "fair_rank"],
                condition=FAIR_QUEUE,
                name="generation_fair_owner",
            ),
            # The sweep: non-terminal rows whose next step is overdue.
            models.Index(
                fields=["due_at"],
                condition=Q(state__in=ACTIVE_STATES),
                name="generation_sweep",
            ),
            models.Index(
                fields=["workspace", "-queued_at"], name="generation_workspace_recent"
            ),
            # Webhooks (later) find a generation by the provider's task id.
            models.Index(
                fields=["backend", "provider_task_id"], name="generation_provider_task"
            ),
            # Routing's measured speed: a backend+model's latest succeeded generations.
            models.Index(
                fields=["backend", "model", "-finished_at"],
                condition=Q(state="succeeded"),
                name="generation_backend_speed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.backend}/{self.model} {self.code} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def cap_key(self) -> str:
        """The concurrency cap (and fair queue) this generation counts against."""
        return cap_key_for(self.backend, self.provider_account_id)

    @property
    def moderation_reasons(self) -> list[str]:
        return list(self.provider_details.get("moderation_reasons") or [])


def cap_key_for(backend: str, account_id: int | None) -> str:
    return f"{backend}:{account_id if account_id is not None else 'env'}"


def parse_cap_key(key: str) -> tuple[str, int | None]:
    backend, _, account = key.partition(":")
    return backend, (None if account in ("", "env") else int(account))
