"""Placeholder while this module is being written."""

from django.http import Http404


def __getattr__(name: str):  # pragma: no cover - replaced
    def view(request, *args, **kwargs):
        raise Http404

    return view
