"""The gallery's review forms, and the checks every review view shares."""

from __future__ import annotations

from uuid import UUID

from django import forms

from generation import review
from generation.models import ReviewStatus

ACTIONS = {
    "approve": ReviewStatus.APPROVED,
    "reject": ReviewStatus.REJECTED,
    "changes": ReviewStatus.CHANGES_REQUESTED,
    "reopen": ReviewStatus.PENDING,
}


class ReviewForm(forms.Form):
    status = forms.ChoiceField(choices=ReviewStatus.choices)
    comment = forms.CharField(required=False, max_length=review.MAX_COMMENT_CHARS)


class CommentForm(forms.Form):
    body = forms.CharField(
        max_length=review.MAX_COMMENT_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Comment",
    )


class FocalPointForm(forms.Form):
    x = forms.FloatField(min_value=0, max_value=100, required=False, label="x (%)")
    y = forms.FloatField(min_value=0, max_value=100, required=False, label="y (%)")


class BulkForm(forms.Form):
    action = forms.ChoiceField(
        choices=[(key, key) for key in [*ACTIONS, "star", "unstar", "tag", "untag"]]
    )
    comment = forms.CharField(required=False, max_length=review.MAX_COMMENT_CHARS)
    tag = forms.CharField(required=False, max_length=40)


def is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except (TypeError, ValueError):
        return False
    return True
