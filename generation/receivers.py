"""generation's answers to the pages of campaigns, the layer below it (campaigns/signals.py).

Connected in GenerationConfig.ready(); campaigns never imports generation.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from campaigns.signals import campaign_page, template_page
from generation.gallery.counts import (
    campaign_review_counts,
    template_version_approvals,
)


@receiver(campaign_page, dispatch_uid="generation.campaign_page")
def campaign_review_progress(
    sender: Any, campaign: Any, **kwargs: Any
) -> dict[str, Any]:
    # Approval progress of the campaign's images (campaign page).
    return {"review_counts": campaign_review_counts(campaign=campaign)}


@receiver(template_page, dispatch_uid="generation.template_page")
def template_approvals(sender: Any, template: Any, **kwargs: Any) -> dict[str, Any]:
    # Which prompts win: each version's images by review status.
    return {"approvals": template_version_approvals(template=template)}
