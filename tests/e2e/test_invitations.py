"""Invitations and the login lockout in a real browser (issue 9, items 6 and 7).

An admin invites an address, sees the link, a newcomer opens it in another browser, creates an
account and lands in the workspace; then wrong passwords lock a login out with a clear page.
Screenshots go to var/test-artifacts/invitations/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from studio.models import Membership, Role
from tests.factories import make_member, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_invite_accept_and_lockout(
    live_server: Any, page: Any, browser: Any, artifacts_dir: Path
) -> None:
    shots = artifacts_dir / "invitations"
    shots.mkdir(parents=True, exist_ok=True)
    workspace = make_workspace("Northwind")
    make_member(workspace, Role.ADMIN, "admin1")
    base = live_server.url

    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "admin1")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/members/")
    page.fill("input[name=email]", "newcomer@example.com")
    page.select_option("#id_role", "approver")
    page.click("text=Send invitation")
    page.wait_for_selector("text=Invitation sent to newcomer@example.com")
    page.screenshot(path=str(shots / "01-invited.png"), full_page=True)
    message = page.inner_text("#messages")
    link = re.search(r"https?://\S+/invitations/\S+/", message).group(0)

    guest = browser.new_context()
    other = guest.new_page()
    other.goto(link)
    other.screenshot(path=str(shots / "02-accept-page.png"), full_page=True)
    other.fill("input[name=username]", "newcomer")
    other.fill("input[name=password1]", "a-long-new-passphrase-42")
    other.fill("input[name=password2]", "a-long-new-passphrase-42")
    other.click("text=Create account and join")
    other.wait_for_url(f"{base}/")
    other.wait_for_selector("text=Welcome to Northwind")
    other.screenshot(path=str(shots / "03-joined.png"), full_page=True)
    assert Membership.objects.get(user__username="newcomer").role == Role.APPROVER
    guest.close()

    locked = browser.new_context()
    login = locked.new_page()
    for _ in range(10):
        login.goto(f"{base}/login/")
        login.fill("input[name=username]", "newcomer")
        login.fill("input[name=password]", "wrong")
        login.press("input[name=password]", "Enter")
        login.wait_for_load_state()
    assert login.is_visible("#login-locked")
    login.screenshot(path=str(shots / "04-locked.png"), full_page=True)
    locked.close()

    page.goto(f"{base}/members/")
    assert page.is_visible("text=Locked out after failed logins")
    page.screenshot(path=str(shots / "05-members-locked.png"), full_page=True)
