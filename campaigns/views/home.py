"""The home page: the workspace's brands, campaigns, templates and references at a glance.

It lives in campaigns, which owns what it shows; studio (the tenancy core, below campaigns) only routes
to it from the root URLconf.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from campaigns.models import Brand, Campaign, PromptTemplate, ReferenceImage
from studio.http import StudioRequest
from studio.tenancy import member_required


@require_GET
@member_required()
def home(request: StudioRequest) -> HttpResponse:
    workspace = request.workspace
    brands = Brand.objects.filter(workspace=workspace)
    context = {
        "first_brand": brands.first(),
        "first_campaign": Campaign.objects.filter(workspace=workspace).first(),
        "brands": Brand.objects.filter(workspace=workspace).all()[:12],
        "campaigns": Campaign.objects.filter(workspace=workspace).select_related(
            "brand"
        )[:8],
        "templates": PromptTemplate.objects.filter(workspace=workspace).select_related(
            "brand"
        )[:8],
        "reference_count": ReferenceImage.objects.filter(workspace=workspace).count(),
    }
    return render(request, "studio/home.html", context)
