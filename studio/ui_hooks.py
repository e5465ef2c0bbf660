"""Template hooks: lower layers include templates that apps above them register in settings.

The gallery (generation) shows an "Export" button that the exports app provides, without
generation importing exports: settings.STUDIO_UI_HOOKS names the templates per slot, and the page
includes each ({% for t in ui_hooks.gallery_bulk_actions %}{% include t %}{% endfor %}).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def ui_hooks(request: HttpRequest) -> dict[str, Any]:
    return {"ui_hooks": getattr(settings, "STUDIO_UI_HOOKS", {})}
