"""Issue 9a's visible parts in a real browser: the operator page with a key that cannot be
decrypted and the providers' own error text (admins), the gallery's refusal of a NUL filter, and
the operator form refusing a private base URL. Screenshots go to var/test-artifacts/security/."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from generation.models import Generation, ProviderAccount
from studio.models import Role
from tests.e2e.test_review import Shots, _login
from tests.factories import (
    make_asset,
    make_brand,
    make_campaign,
    make_member,
    make_workspace,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@override_settings(STUDIO_PRIVATE_ENDPOINTS=[], BFL_API_URL="")
def test_operator_and_gallery_refusals(
    live_server: Any, page: Any, artifacts_dir: Any, settings: Any
) -> None:
    workspace = make_workspace("Acme")
    make_member(workspace, Role.ADMIN, "alice")
    campaign = make_campaign(make_brand(workspace, name="Acme Coffee"))
    make_asset(campaign, variables={"headline": "Half price"})
    account = ProviderAccount(workspace=workspace, backend="fal", label="Team fal")
    account.api_key_encrypted = "gAAAAA-encrypted-under-a-key-that-is-gone"
    account.api_key_last4 = "9999"
    account.save()
    now = timezone.now()
    Generation.objects.create(
        workspace=workspace,
        backend="bfl",
        model="flux-2-pro",
        prompt="x",
        width=64,
        height=64,
        state="failed",
        finished_at=now,
        error_class="provider_error",
        error_message="Provider error (HTTP 500).",
        provider_details={"error_raw": "submit: HTTP 500: upstream queue full"},
    )
    shots = Shots(page, artifacts_dir / "security")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    base = live_server.url
    _login(page, base, "alice")

    page.goto(f"{base}/operator/")
    assert page.get_by_text(
        "cannot be decrypted, enter the key again"
    ).first.is_visible()
    assert page.get_by_text("upstream queue full").is_visible()
    shots.take("operator-undecryptable-and-provider-errors")

    page.select_option("select[name=backend]", "bfl")
    page.fill("input[name=api_key]", "bfl_key_ABCD1234")
    page.fill(
        "input[name=base_url]",
        "http://127.0.0.1:8099/internal/admin/delete-everything?confirm=yes#",
    )
    page.click("text=Add account")
    page.wait_for_selector("text=cannot carry a query string")
    shots.take("operator-refuses-private-base-url")
    assert ProviderAccount.objects.filter(backend="bfl").count() == 0

    page.goto(f"{base}/campaigns/{campaign.code}/gallery/?var=headline%3DHalf%00price")
    assert page.get_by_text("contains a NUL character").is_visible()
    shots.take("gallery-refuses-nul-filter")
    assert errors == []
