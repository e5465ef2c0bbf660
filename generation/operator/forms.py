"""The operator page's form: a workspace's credentials for one backend."""

from __future__ import annotations

import re

from django import forms

from generation.backends import registry
from generation.backends.egress import check_base_url
from generation.routing import NOT_FOR_POLICIES

REGION_RE = re.compile(r"\A[a-z][a-z0-9-]{0,31}\Z")


def _backend_choices() -> list[tuple[str, str]]:
    return [
        (name, f"{cls.label} ({name})")
        for name, cls in registry.BACKENDS.items()
        if name not in NOT_FOR_POLICIES
    ]


class ProviderAccountForm(forms.Form):
    backend = forms.ChoiceField(choices=_backend_choices)
    label = forms.CharField(max_length=120, required=False)
    # Write-only: never rendered back, not even masked (render_value=False).
    api_key = forms.CharField(
        label="API key",
        max_length=500,
        required=False,
        strip=True,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password"}
        ),
        help_text="Stored encrypted; only its last four characters are shown again.",
    )
    base_url = forms.URLField(
        label="Base URL",
        max_length=300,
        required=False,
        assume_scheme="https",
        help_text="Empty: the provider's default endpoint (or the environment's).",
    )
    region = forms.CharField(
        max_length=32, required=False, help_text="BFL: eu or us; empty for global."
    )
    max_concurrency = forms.IntegerField(
        label="Max concurrent tasks",
        min_value=1,
        max_value=1000,
        required=False,
        help_text="Empty: the studio's default for this backend.",
    )

    def clean_base_url(self) -> str:
        # SSRF rules (egress.py): https, public addresses only, no userinfo/query/fragment.
        url = (self.cleaned_data.get("base_url") or "").strip()
        raw = str(self.data.get("base_url", "")).strip()
        if url and (problem := check_base_url(raw if "://" in raw else url)):
            raise forms.ValidationError(problem)
        return url

    def clean_region(self) -> str:
        region = (self.cleaned_data.get("region") or "").strip().lower()
        if region and not REGION_RE.match(region):
            # BFL reads a URL here too: a region is a name, never a place to connect to.
            raise forms.ValidationError("A region is a name such as eu or us.")
        return region

    def clean(self) -> dict:
        data = super().clean() or {}
        backend = data.get("backend")
        needs_key = backend in registry.ENV_NAMES and backend != "comfyui"
        if needs_key and not data.get("api_key"):
            self.add_error("api_key", "This backend needs a key.")
        if backend == "comfyui" and not data.get("base_url"):
            self.add_error("base_url", "A ComfyUI account needs the server's URL.")
        return data
