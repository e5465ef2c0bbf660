"""Errors a page could not otherwise show: a hidden field has no place to mark.

A hidden input that fails validation (a tampered seed, a stale token, an old version number)
would leave the form invalid with nothing marked; its message is repeated among the form's
non-field errors, which every form template shows at the top.
"""

from __future__ import annotations

from collections.abc import Mapping

from django import forms


def surface_hidden_errors(
    form: forms.BaseForm, *, labels: Mapping[str, str] | None = None
) -> None:
    """Call after is_valid(): each hidden field's error becomes a non-field error naming it."""
    labels = labels or {}
    for field in form.hidden_fields():
        for message in field.errors:
            form.add_error(
                None,
                f"{labels.get(field.name, field.name)}: {message} "
                "Reload the page to get a fresh form.",
            )
