"""`manage.py load_demo` creates the demo workspace once, and running it again changes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from campaigns.demo_data import DEMO_PASSWORD
from campaigns.models import (
    Brand,
    Campaign,
    PromptTemplate,
    ReferenceImage,
    Tag,
    TemplateVersion,
)
from studio.models import Membership, Role, Workspace

MODELS = (
    User,
    Workspace,
    Membership,
    Brand,
    ReferenceImage,
    Tag,
    Campaign,
    PromptTemplate,
    TemplateVersion,
)


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def _load() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_load_demo_is_idempotent_and_prints_the_login() -> None:
    first_output = _load()
    first = _counts()
    second_output = _load()
    assert _counts() == first
    for output in (first_output, second_output):
        assert f"demo / {DEMO_PASSWORD}" in output
        assert "http://" in output

    workspace = Workspace.objects.get(slug="demo")
    assert workspace.name == "Northwind Coffee Co."
    roles = dict(
        Membership.objects.filter(workspace=workspace).values_list(
            "user__username", "role"
        )
    )
    assert roles == {
        "demo": Role.ADMIN,
        "dana": Role.EDITOR,
        "alex": Role.APPROVER,
        "vera": Role.VIEWER,
    }
    for username in roles:
        assert authenticate(username=username, password=DEMO_PASSWORD) is not None, (
            username
        )

    brand = Brand.objects.get(workspace=workspace, name="Northwind Roasters")
    assert len(brand.palette) >= 3 and all(
        colour["hex"].startswith("#") for colour in brand.palette
    )
    assert brand.fonts and all(font["usage"] for font in brand.fonts)
    assert brand.typography_hints and brand.tone_of_voice
    assert brand.words_to_use and brand.words_to_avoid
    assert brand.format_objects and len(brand.format_objects) == len(
        brand.default_formats
    )

    references = ReferenceImage.objects.filter(brand=brand)
    assert set(references.values_list("role", flat=True)) >= {
        "product",
        "character",
        "style",
        "background",
        "logo",
    }
    assert all(
        ref.workspace_id == workspace.pk and ref.width > 0 and ref.file
        for ref in references
    )
    assert brand.logo is not None and brand.logo.role == "logo"

    campaign = Campaign.objects.get(brand=brand, name="Autumn Blend Launch")
    assert campaign.workspace_id == workspace.pk
    assert campaign.objective == Campaign.Objective.LAUNCH
    assert campaign.status == Campaign.Status.ACTIVE
    assert str(campaign.budget_cap) == "250.00"
    assert campaign.channel_objects and campaign.starts_on < campaign.ends_on

    templates = PromptTemplate.objects.filter(brand=brand)
    assert templates.count() == 2
    kinds = {template.latest_version.kind for template in templates}
    assert kinds == {"text", "json"}
    for template in templates:
        assert template.workspace_id == workspace.pk
        assert template.versions.count() == 1
        assert template.latest_version.reference_slots


@pytest.mark.django_db
def test_load_demo_restores_the_documented_password() -> None:
    _load()
    user = User.objects.get(username="dana")
    user.set_password("something-else-42")
    user.save()
    _load()
    assert authenticate(username="dana", password=DEMO_PASSWORD) is not None


@pytest.mark.django_db
def test_load_demo_refuses_to_run_in_production(settings) -> None:
    settings.DEBUG = False
    settings.TESTING = False
    with pytest.raises(CommandError, match="DEBUG=1"):
        call_command("load_demo", stdout=StringIO())
    assert not Workspace.objects.filter(slug="demo").exists()
