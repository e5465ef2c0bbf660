"""The cast every view test uses, in the healthchecks style.

alice: admin of the Acme workspace; eddie: editor; alex: approver; bob: viewer;
carol: admin of another workspace (the outsider, who must get 404 for everything of Acme's).
"""

from __future__ import annotations

from django.test import TestCase

from studio.models import Role
from tests.factories import make_brand, make_campaign, make_member, make_workspace


class StudioTestCase(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        cls.workspace = make_workspace("Acme")
        cls.alice = make_member(cls.workspace, Role.ADMIN, "alice")
        cls.eddie = make_member(cls.workspace, Role.EDITOR, "eddie")
        cls.alex = make_member(cls.workspace, Role.APPROVER, "alex")
        cls.bob = make_member(cls.workspace, Role.VIEWER, "bob")
        cls.other_workspace = make_workspace("Globex")
        cls.carol = make_member(cls.other_workspace, Role.ADMIN, "carol")
        cls.brand = make_brand(cls.workspace, name="Acme Coffee")
        cls.campaign = make_campaign(cls.brand, name="Autumn launch")
