"""Spend: one campaign's (against its budget), and the workspace's month by month.

Read-only; every member sees them. Amounts are "estimated while running, actual when done"
(generation/spend/services.py).
"""

from __future__ import annotations

import re
from datetime import date
from uuid import UUID

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from campaigns.models import Campaign
from generation.models import Generation
from generation.spend import services as spend
from studio.http import StudioRequest
from studio.tenancy import get_in_workspace, member_required

MONTHS_SHOWN = 12
_MONTH = re.compile(r"\A(\d{4})-(\d{2})\Z")


@require_GET
@member_required()
def campaign_spend(request: StudioRequest, code: UUID) -> HttpResponse:
    campaign = get_in_workspace(
        request, Campaign.objects.select_related("brand"), code=code
    )
    generations = Generation.objects.filter(
        campaign=campaign, workspace=request.workspace
    )
    budget = spend.campaign_budget(campaign=campaign)
    context = {
        "campaign": campaign,
        "budget": budget,
        "by_backend": spend.spend_by_backend(generations),
        "by_batch": spend.spend_by_batch(generations),
        "active": generations.active().count(),
    }
    return render(request, "generation/spend/campaign.html", context)


def _month(value: str | None) -> date:
    today = timezone.localdate()
    match = _MONTH.match(value or "")
    if match:
        year, month = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12 and 2000 <= year <= 2100:
            return date(year, month, 1)
    return today.replace(day=1)


@require_GET
@member_required()
def workspace_spend(request: StudioRequest) -> HttpResponse:
    """The last twelve months, and one month (?month=YYYY-MM) per campaign and per backend."""
    month = _month(request.GET.get("month"))
    start, end = spend.month_bounds(month)
    generations = Generation.objects.filter(workspace=request.workspace)
    first_shown = month
    for _ in range(MONTHS_SHOWN - 1):
        first_shown = (
            first_shown.replace(year=first_shown.year - 1, month=12)
            if first_shown.month == 1
            else first_shown.replace(month=first_shown.month - 1)
        )
    in_month = generations.filter(queued_at__date__gte=start, queued_at__date__lt=end)
    context = {
        "month": month,
        "months": spend.spend_by_month(
            generations.filter(
                queued_at__date__gte=first_shown, queued_at__date__lt=end
            )
        ),
        "month_total": spend.spend_of(in_month),
        "by_campaign": spend.spend_by_campaign(in_month),
        "by_backend": spend.spend_by_backend(in_month),
    }
    return render(request, "generation/spend/workspace.html", context)
