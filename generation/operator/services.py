"""What the operator page shows about each backend, for one workspace.

Configuration (the workspace's enabled account, else the environment: whether a key is present,
never the key; the base URL without any credentials in it), the last RECENT_DAYS of this
workspace's generations (success rate, p50/p95 of submitted→finished), this month's spend, and
the circuit breakers (generation/breaker.py) of the credentials it uses that are not closed.

Success rate = succeeded / (succeeded + failed + expired + failures that fell back to another
backend, read from each row's route). Moderated and canceled generations are left out: neither
says anything about the backend's health.

Spend this month follows the studio's rule (provider-reported cost where there is one, else the
estimate while queued, running or succeeded), plus the reported cost of attempts abandoned by a
fallback (kept in the route entries).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db.models import Count, DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from generation import accounts, breaker, crypto, routing, webhooks
from generation.backends import registry
from generation.backends.base import BackendConfig
from generation.models import (
    Generation,
    GenerationState,
    ProviderAccount,
    cap_key_for,
)

S = GenerationState
RECENT_DAYS = 7
LATENCY_SAMPLE = 5000
_ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=12, decimal_places=4))
_COMMITTED = (S.QUEUED, S.SUBMITTED, S.RUNNING, S.INGESTING, S.SUCCEEDED)


def safe_url(url: str) -> str:
    """A base URL fit to show: scheme, host, port and path; no user:password, query or fragment."""
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return url.split("?", 1)[0].split("@")[-1]
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class BackendStatus:
    name: str
    label: str
    configured: bool
    source: str  # "workspace account", "environment", "built in"
    key_present: bool
    key_hint: str  # "…abcd" for a workspace account's key; never the key
    key_variable: str
    base_url: str
    calls_back: bool
    webhooks_on: bool
    account: ProviderAccount | None = None
    succeeded: int = 0
    failed: int = 0
    fell_back: int = 0
    p50: float | None = None
    p95: float | None = None
    latency_samples: int = 0
    spend_month: Decimal = Decimal(0)
    breakers: list[breaker.State] = field(default_factory=list)
    # The workspace account's stored key cannot be decrypted (SECRET_KEY rotated): enter it again.
    key_unreadable: bool = False

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.fell_back

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None


def month_start(now: datetime | None = None) -> datetime:
    now = timezone.localtime(now or timezone.now())
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _configuration(workspace_id: int, name: str) -> BackendStatus:
    unreadable = False
    try:
        backend, account = accounts.backend_for(workspace_id=workspace_id, backend=name)
    except crypto.DecryptionError:
        # Shown per account instead of a 500: the account's settings without its key.
        unreadable = True
        account = accounts.enabled_account(workspace_id=workspace_id, backend=name)
        assert account is not None
        backend = accounts.build(
            name,
            BackendConfig(
                base_url=account.base_url or account.region,
                extra=dict(accounts.settings_config(name).extra),
            ),
        )
    env = accounts.settings_config(name)
    keyless = name not in registry.ENV_NAMES
    if account is not None:
        source, key_present, hint = (
            "workspace account",
            account.has_key,
            account.masked_key,
        )
        base = account.base_url or account.region or env.base_url
    else:
        source = "built in" if keyless else "environment"
        key_present, hint, base = bool(env.api_key), "", env.base_url
    return BackendStatus(
        name=name,
        label=backend.label,
        configured=backend.is_configured(),
        source=source,
        key_present=key_present,
        key_hint=hint,
        key_variable="" if keyless else routing.env_key_name(name),
        base_url=safe_url(str(getattr(backend, "base_url", "") or base or "")),
        calls_back=backend.capabilities().calls_back,
        webhooks_on=bool(webhooks.public_url()) and name in webhooks.WEBHOOK_BACKENDS,
        account=account,
        key_unreadable=unreadable,
    )


def backend_statuses(
    workspace: Any, *, now: datetime | None = None
) -> list[BackendStatus]:
    """One BackendStatus per registered backend, in registry order."""
    now = now or timezone.now()
    since = now - timedelta(days=RECENT_DAYS)
    month = month_start(now)
    statuses = {name: _configuration(workspace.pk, name) for name in registry.BACKENDS}
    mine = Generation.objects.filter(workspace=workspace)

    outcomes = (
        mine.filter(
            finished_at__gte=since, state__in=[S.SUCCEEDED, S.FAILED, S.EXPIRED]
        )
        .order_by()
        .values("backend", "state")
        .annotate(n=Count("id"))
    )
    for row in outcomes:
        status = statuses.get(row["backend"])
        if status is None:
            continue
        if row["state"] == S.SUCCEEDED:
            status.succeeded += row["n"]
        else:
            status.failed += row["n"]

    # Attempts abandoned by a fallback live only in the route of the row that moved on.
    rerouted = (
        mine.filter(queued_at__gte=min(since, month))
        .filter(route__1__isnull=False)
        .values_list("route", flat=True)
    )
    fell_back: Counter[str] = Counter()
    abandoned_cost: defaultdict[str, Decimal] = defaultdict(Decimal)
    for route in rerouted.iterator():
        for entry in route or ():
            if not isinstance(entry, dict) or entry.get("outcome") != "failed":
                continue
            at = _parse(entry.get("at"))
            if at is not None and at >= since:
                fell_back[str(entry.get("backend"))] += 1
            if entry.get("cost") and at is not None and at >= month:
                abandoned_cost[str(entry.get("backend"))] += Decimal(str(entry["cost"]))
    for name, n in fell_back.items():
        if name in statuses:
            statuses[name].fell_back = n

    durations: defaultdict[str, list[float]] = defaultdict(list)
    timings = (
        mine.filter(
            state=S.SUCCEEDED, finished_at__gte=since, submitted_at__isnull=False
        )
        .order_by("-finished_at")
        .values_list("backend", "submitted_at", "finished_at")[:LATENCY_SAMPLE]
    )
    for name, submitted, finished in timings:
        if submitted is not None and finished is not None:  # both set: filtered above
            durations[name].append((finished - submitted).total_seconds())
    for name, values in durations.items():
        if name in statuses:
            statuses[name].p50 = percentile(values, 50)
            statuses[name].p95 = percentile(values, 95)
            statuses[name].latency_samples = len(values)

    spend = (
        mine.filter(queued_at__gte=month)
        .order_by()
        .values("backend")
        .annotate(
            actual=Coalesce(Sum("actual_cost"), _ZERO),
            estimated=Coalesce(
                Sum(
                    "estimated_cost",
                    filter=Q(actual_cost__isnull=True, state__in=_COMMITTED),
                ),
                _ZERO,
            ),
        )
    )
    for spent in spend:
        if spent["backend"] in statuses:
            statuses[spent["backend"]].spend_month = (
                spent["actual"] + spent["estimated"]
            )
    for name, cost in abandoned_cost.items():
        if name in statuses:
            statuses[name].spend_month += cost

    account_ids: defaultdict[str, list[int | None]] = defaultdict(lambda: [None])
    for pk, name in ProviderAccount.objects.filter(
        workspace=workspace, enabled=True
    ).values_list("id", "backend"):
        account_ids[name].append(pk)
    for name, status in statuses.items():
        for account_id in account_ids[name]:
            current = breaker.state(cap_key_for(name, account_id))
            if not current.is_closed:
                status.breakers.append(current)
    return list(statuses.values())


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else timezone.make_aware(parsed)


def total_spend(statuses: list[BackendStatus]) -> Decimal:
    return sum((s.spend_month for s in statuses), Decimal(0))


def recent_provider_errors(workspace: Any, *, limit: int = 10) -> list[dict[str, Any]]:
    """The workspace's latest failures with the provider's own words (admins only: members
    read the classified message, generation/error_text.py)."""
    rows = (
        Generation.objects.filter(
            workspace=workspace, state__in=[S.FAILED, S.EXPIRED, S.MODERATED]
        )
        .exclude(error_class="")
        .order_by("-finished_at", "-id")
        .values("code", "backend", "error_class", "provider_details", "finished_at")[
            :limit
        ]
    )
    return [
        {
            "code": row["code"],
            "backend": row["backend"],
            "error_class": row["error_class"],
            "raw": str((row["provider_details"] or {}).get("error_raw") or ""),
            "at": row["finished_at"],
        }
        for row in rows
    ]
