from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from studio.models import Role


def choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """form.fields[name] as the ChoiceField it is declared as, to set its choices per request.

    `fields` holds plain Fields as far as the types know; the check turns a renamed or retyped
    field into a clear error rather than a silently ignored `choices` attribute.
    """
    field = form.fields[name]
    if not isinstance(field, forms.ChoiceField):
        raise TypeError(f"{type(form).__name__}.{name} is not a ChoiceField")
    return field


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
