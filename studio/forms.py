from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from studio.models import Role


class InvitationForm(forms.Form):
    # Deliberately no account look-up here: the answer must be the same whether or not an
    # account with this address exists (docs/security.md).
    email = forms.EmailField(
        max_length=254,
        help_text="They get a link by e-mail; you also see the link here to pass on.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class InvitationSignupForm(UserCreationForm):
    """A new account for the invitee; its e-mail is the invited address."""

    class Meta(UserCreationForm.Meta):
        fields = ("username",)
