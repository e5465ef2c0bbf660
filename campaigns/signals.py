"""Signals the campaigns layer sends so that layers above it can add to its pages.

campaigns sits below generation (docs/architecture.md): its pages cannot import generation, yet the
campaign page shows its images' approval progress and the template pages show which versions win.
The view sends a signal; receivers in the layers above (generation/receivers.py) answer with a dict
of extra template context, merged by `page_data`. Nobody listening: the page shows without it.
"""

from __future__ import annotations

from typing import Any, cast

from django.dispatch import Signal

# The campaign page. Keyword argument: campaign. Receivers return a dict of context.
campaign_page = Signal()
# A template's pages (detail, versions). Keyword argument: template. Receivers return a dict of
# context; generation answers {"approvals": {version number: ReviewCounts}}.
template_page = Signal()


def page_data(signal: Signal, **kwargs: Any) -> dict[str, Any]:
    """Every receiver's dict, merged (later receivers win on a clash)."""
    merged: dict[str, Any] = {}
    for _receiver, answer in signal.send(sender=None, **kwargs):
        if answer:
            # Receivers here return dicts; django-stubs types every signal reply as a str.
            merged.update(cast("dict[str, Any]", answer))
    return merged
