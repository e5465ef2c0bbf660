"""The API admin page in a real browser: create a token (shown once), add a webhook, read its
log; the docs page loads its Swagger UI under the studio's CSP. Screenshots go to artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from api.models import ApiToken, WebhookSubscription
from api.tokens import hash_secret
from studio.models import Role
from tests.factories import make_member, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_issues_a_token_and_adds_a_webhook(
    page: Any, live_server: Any, artifacts_dir: Path
) -> None:
    workspace = make_workspace("Browser")
    make_member(workspace, Role.ADMIN, "ada")
    base = live_server.url
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/")
    page.click("text=API")
    page.fill("#token-name", "Shop pipeline")
    page.select_option("#token-role", "editor")
    page.click("text=Create token")
    secret = page.inner_text("#new-token-secret").strip()
    assert ApiToken.objects.filter(secret_hash=hash_secret(secret)).exists()
    page.screenshot(path=str(artifacts_dir / "api-token-created.png"), full_page=True)
    with override_settings(API_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        page.fill("#hook-url", "http://127.0.0.1:9/hook")
        page.click("text=Add webhook")
        page.wait_for_selector("#webhook-secret")
    assert WebhookSubscription.objects.filter(workspace=workspace).count() == 1
    page.screenshot(path=str(artifacts_dir / "api-webhook.png"), full_page=True)
    page.goto(f"{base}/api-access/")
    assert secret not in page.content()
    page.screenshot(path=str(artifacts_dir / "api-page.png"), full_page=True)
    page.goto(f"{base}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15000)
    page.screenshot(path=str(artifacts_dir / "api-docs.png"))
