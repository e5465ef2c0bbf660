from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from studio.models import Role


class MemberAddForm(forms.Form):
    username = forms.CharField(
        max_length=150, help_text="An existing user's username or e-mail address."
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)

    def clean(self) -> dict:
        data = super().clean() or {}
        name = data.get("username", "").strip()
        user_model = get_user_model()
        user = (
            user_model.objects.filter(username=name).first()
            or user_model.objects.filter(email__iexact=name).first()
        )
        if name and user is None:
            self.add_error(
                "username",
                f"No user called “{name}”. An operator creates accounts in the admin.",
            )
        data["user"] = user
        return data


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
