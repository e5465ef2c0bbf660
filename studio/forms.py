from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from studio.models import Role


def form_field[F: forms.Field](form: forms.BaseForm, name: str, kind: type[F]) -> F:
    """form.fields[name] as the field class it is declared as, to set its choices or queryset per
    request (`fields` holds plain Fields as far as the types know). A renamed or retyped field is a
    clear error here rather than an attribute silently set on the wrong field."""
    field = form.fields[name]
    if not isinstance(field, kind):
        raise TypeError(f"{type(form).__name__}.{name} is not a {kind.__name__}")
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
