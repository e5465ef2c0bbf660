"""Provider accounts, generations (the durable state machine) and the assets they produce.

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

from generation import crypto
from studio.models import Workspace


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"


class ProviderAccount(models.Model):
    """A workspace's credentials for one backend. The key is stored encrypted and never shown again."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="provider_accounts"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    backend = models.CharField(max_length=32)
    label = models.CharField(max_length=120, blank=True)
    # Fernet token (generation/crypto.py); the plaintext never touches the database.
    api_key_encrypted = models.TextField(blank=True, editable=False)
    # The last four characters, so people can tell keys apart without seeing them.
    api_key_last4 = models.CharField(max_length=4, blank=True, editable=False)
    # Empty: the backend's default (for BFL the global endpoint); e.g. https://api.eu.bfl.ai for the EU.
    base_url = models.URLField(max_length=300, blank=True)
    region = models.CharField(max_length=32, blank=True)
    # Active tasks the provider allows this account (BFL: 24 unless raised); empty: ENGINE_CONCURRENCY.
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace", "backend", "label"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "backend"],
                condition=Q(enabled=True),
                name="one_enabled_account_per_backend",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label or self.backend} ({self.masked_key})"

    def set_api_key(self, plaintext: str) -> None:
        plaintext = plaintext.strip()
        self.api_key_encrypted = crypto.encrypt(plaintext) if plaintext else ""
        self.api_key_last4 = plaintext[-4:] if len(plaintext) >= 8 else ""

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    @property
    def has_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def key_readable(self) -> bool:
        """False when the stored key cannot be decrypted with the configured keys (SECRET_KEY
        changed without FIELD_ENCRYPTION_KEYS): the admin must enter it again."""
        try:
            self.api_key  # noqa: B018
        except crypto.DecryptionError:
            return False
        return True

    @property
    def masked_key(self) -> str:
        if not self.api_key_encrypted:
            return "no key"
        return f"…{self.api_key_last4}" if self.api_key_last4 else "set"

    def rotate_key(self) -> None:
        """Re-encrypt under the current first FIELD_ENCRYPTION_KEYS key (call save() after)."""
        if self.api_key_encrypted:
            self.api_key_encrypted = crypto.reencrypt(self.api_key_encrypted)


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


def asset_upload_to(instance: Asset, filename: str) -> str:
    return (
        f"generations/{instance.workspace.code}/{instance.generation.code}/{filename}"
    )


class Asset(models.Model):
    """The stored result of one generation (written once, by ingest, with update_or_create)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="assets"
    )
    generation = models.OneToOneField(
        Generation, on_delete=models.CASCADE, related_name="asset"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    # Deterministic keys: generations/<workspace code>/<generation code>/image.<ext>, thumb.webp.
    file = models.FileField(upload_to=asset_upload_to, max_length=300)
    thumbnail = models.FileField(upload_to=asset_upload_to, max_length=300, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=8)  # "jpeg", "png", "webp", "avif"
    content_type = models.CharField(max_length=40)
    byte_size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    # Review: generation/review.py decides (roles, audit events, comments) and changes these
    # through generation/assets.py with conditional UPDATEs. Export packs and brand checks will
    # add their own rows pointing here; nothing of them lives on this model yet.
    ReviewStatus = ReviewStatus
    review_status = models.CharField(
        max_length=20,
        choices=ReviewStatus.choices,
        default=ReviewStatus.PENDING,
        db_index=True,
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    starred = models.BooleanField(default=False)
    tags = models.ManyToManyField("campaigns.Tag", blank=True, related_name="assets")
    # Focal point as fractions of the width and height from the top left (0..1); null: centre.
    # Crops for other formats keep it in frame.
    focal_x = models.FloatField(null=True, blank=True)
    focal_y = models.FloatField(null=True, blank=True)
    # Copies of the generation's campaign and batch (set by ingest, never changed), so that a
    # gallery page is an index range scan on (campaign|batch, created_at, id): constant time at
    # any depth, however many other campaigns' assets the workspace holds. Through a join the
    # planner walks the workspace's newest assets until it finds the campaign's.
    # No single-column indexes: the composite ones below start with these columns.
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    batch = models.ForeignKey(
        "Batch",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # What the image cost (the provider's charge, else the estimate), copied at ingest so the
    # gallery's cost sorts are index scans like its date sorts (a sort through the generation
    # join reads and sorts the whole scope on every page).
    cost = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The cost sorts, per scope (scanned backwards for "cheapest first").
            models.Index(
                fields=["campaign", "-cost", "-id"], name="asset_campaign_cost"
            ),
            models.Index(fields=["batch", "-cost", "-id"], name="asset_batch_cost"),
            models.Index(
                fields=["workspace", "-cost", "-id"], name="asset_workspace_cost"
            ),
            models.Index(
                fields=["workspace", "-created_at"], name="asset_workspace_recent"
            ),
            # Gallery pages and the approval progress. review_status and workspace are included
            # so that the status counts are index-only scans (the workspace filter included):
            # without them the planner reads the workspace's other campaigns' rows as well.
            models.Index(
                fields=["campaign", "-created_at", "-id"],
                include=["review_status", "workspace"],
                name="asset_campaign_scope",
            ),
            models.Index(
                fields=["batch", "-created_at", "-id"],
                include=["review_status", "workspace"],
                name="asset_batch_scope",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(focal_x__isnull=True, focal_y__isnull=True)
                    | Q(focal_x__gte=0, focal_x__lte=1, focal_y__gte=0, focal_y__lte=1)
                ),
                name="asset_focal_point_in_frame",
            )
        ]

    def __str__(self) -> str:
        return f"{self.generation.code} {self.width}×{self.height} {self.format}"

    @property
    def thumb_size(self) -> tuple[int, int]:
        """The thumbnail's pixel size (ingest fits it in ENGINE_THUMBNAIL_SIZE), for srcset."""
        side = int(getattr(settings, "ENGINE_THUMBNAIL_SIZE", 512))
        scale = min(1.0, side / max(self.width, self.height, 1))
        return max(1, round(self.width * scale)), max(1, round(self.height * scale))


class BatchState(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELED = "canceled", "Canceled"


class ReviewTally(models.Model):
    """Assets per review status of one gallery scope, kept by PostgreSQL triggers on the asset
    table (migration 0007): the gallery's status counts read a few rows instead of counting every
    asset of the campaign. Triggers, not application code, so that every write counts: ingest's
    upsert, review actions, bulk UPDATEs, cascades. Rows are never removed (a scope that lost
    its assets keeps zeros); scope ids are not foreign keys, so a deleted workspace, campaign
    or batch leaves harmless orphans instead of blocking its own deletion.
    """

    class Kind(models.TextChoices):
        WORKSPACE = "w", "Workspace"
        CAMPAIGN = "c", "Campaign"
        BATCH = "b", "Batch"

    kind = models.CharField(max_length=1, choices=Kind.choices)
    scope_id = models.BigIntegerField()
    review_status = models.CharField(max_length=20)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "scope_id", "review_status"], name="review_tally_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.scope_id} {self.review_status}={self.n}"


class Batch(models.Model):
    """A set of variants of one template version, expanded, priced and dispatched together.

    `spec` is everything the expansion needs (generation/batches/spec.py, BatchSpec.as_json): the mode
    (matrix or rows) with its values, the seeds (with the RNG seed that drew random ones), the
    backend/model targets, the sizes, the reference per slot and whether the brand kit is merged,
    so the same spec always expands to the same generations. The state is stored for lists and
    filters; the counts per generation state are always read from the generations themselves.
    """

    State = BatchState

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="batches"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="batches"
    )
    brand = models.ForeignKey(
        "campaigns.Brand", on_delete=models.CASCADE, related_name="batches"
    )
    template_version = models.ForeignKey(
        "campaigns.TemplateVersion",
        null=True,
        on_delete=models.SET_NULL,
        related_name="batches",
    )
    name = models.CharField(max_length=160, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(
        max_length=12, choices=BatchState.choices, default=BatchState.DRAFT
    )
    spec = models.JSONField(default=dict)
    size = models.PositiveIntegerField(default=0)
    estimate_total = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("0")
    )
    # {"bfl": {"count": 12, "total": "0.3600"}, "preview": {...}}
    estimate_by_backend = models.JSONField(default=dict, blank=True)
    # "Re-run with one axis changed": the batch this one copies, and what differs.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
    )
    changed = models.CharField(max_length=500, blank=True)
    # The builder form's one-time token: a double click dispatches one batch, not two.
    request_token = models.UUIDField(null=True, blank=True, editable=False)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "request_token"],
                name="unique_batch_request_token",
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="batch_recent")
        ]

    def __str__(self) -> str:
        return self.name or f"Batch {str(self.code)[:8]}"

    @property
    def is_active(self) -> bool:
        return self.state in (BatchState.QUEUED, BatchState.RUNNING)

    @property
    def owner_key(self) -> str:
        """The fair queue's owner for all of this batch's generations (generation/fair.py)."""
        return f"batch:{self.code}"


# --- Review: decisions, comments, audit trail (generation/review.py writes them) -------------


class ReviewEvent(models.Model):
    """One review decision on an asset: who, when, from → to, and why. Never edited."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    asset = models.ForeignKey(
        Asset, on_delete=models.CASCADE, related_name="review_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_status = models.CharField(max_length=20, choices=ReviewStatus.choices)
    to_status = models.CharField(max_length=20, choices=ReviewStatus.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The table keeps the name it had when review lived in campaigns (moved without a rebuild).
        db_table = "campaigns_reviewevent"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["asset", "-created_at"], name="review_event_asset")
        ]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class Comment(models.Model):
    """A note on an asset, visible to the whole workspace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "campaigns_comment"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["asset", "created_at"], name="comment_asset")]

    def __str__(self) -> str:
        return self.body[:60]
