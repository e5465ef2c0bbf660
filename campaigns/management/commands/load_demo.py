"""Load the demo workspace: users, a brand kit, reference images, a campaign, two prompt templates.

    python manage.py load_demo

Idempotent: every object is looked up by a natural key first (workspace slug, username, brand
name, reference file name, campaign name, template name), so running it again creates nothing
twice; it prints the login again and resets the demo users' password to the documented one.

The password is a fixed, published development password (DEMO_PASSWORD). For that reason the
command refuses to run with DEBUG off unless --force is given: never load the demo into a
production database.

The reference images are drawn on the fly with Pillow (no files in the repository) and go
through the reference library service, exactly like an upload from the browser.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.demo_data import (
    BRAND_FIELDS,
    BRAND_NAME,
    CAMPAIGN_FIELDS,
    CAMPAIGN_NAME,
    DEMO_PASSWORD,
    JSON_TEMPLATE,
    TEXT_TEMPLATE,
    USERS,
    WORKSPACE_NAME,
    WORKSPACE_SLUG,
)
from campaigns.demo_images import REFERENCE_IMAGES
from campaigns.models import Brand, Campaign, PromptTemplate, ReferenceImage
from campaigns.prompt_templates import prompt_template_create
from campaigns.references import DuplicateReference, reference_create
from campaigns.services import brand_create, brand_update, campaign_create
from studio.models import Workspace
from studio.services import membership_change


class Command(BaseCommand):
    help = "Create (or refresh) the demo workspace, users, brand kit, references, campaign and templates."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off (the demo users have a published password: never in production).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not (
            settings.DEBUG or getattr(settings, "TESTING", False) or options["force"]
        ):
            raise CommandError(
                "load_demo creates users with a published password; it runs only with DEBUG=1 (or --force)."
            )
        with transaction.atomic():
            workspace, users = self._workspace_and_users()
            brand = self._brand(workspace, users["demo"])
        # References are stored files: each goes in through the service on its own.
        references = self._references(brand, users["demo"])
        with transaction.atomic():
            logo = references.get("logo")
            if logo is not None and brand.logo_id != logo.pk:
                brand = brand_update(brand=brand, fields={"logo": logo})
            campaign = self._campaign(brand, users["demo"])
            templates = self._templates(brand, campaign, users["demo"])
        self._report(workspace, brand, references, campaign, templates)

    # -- the pieces ----------------------------------------------------------------------------

    def _workspace_and_users(self) -> tuple[Workspace, dict[str, User]]:
        workspace, _ = Workspace.objects.get_or_create(
            slug=WORKSPACE_SLUG, defaults={"name": WORKSPACE_NAME}
        )
        users: dict[str, User] = {}
        for username, first_name, role in USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"first_name": first_name, "email": f"{username}@example.com"},
            )
            # The documented password, again on every run, so the printed login always works.
            if created or not user.check_password(DEMO_PASSWORD):
                user.set_password(DEMO_PASSWORD)
            if username == "demo":
                # The demo admin may also open Django's admin (/admin/).
                user.is_staff = user.is_superuser = True
            user.save()
            membership_change(workspace=workspace, user=user, role=role)
            users[username] = user
        return workspace, users

    def _brand(self, workspace: Workspace, user: User) -> Brand:
        brand = Brand.objects.filter(workspace=workspace, name=BRAND_NAME).first()
        if brand is None:
            brand = brand_create(workspace=workspace, user=user, fields=BRAND_FIELDS)
        return brand

    def _references(self, brand: Brand, user: User) -> dict[str, ReferenceImage]:
        made: dict[str, ReferenceImage] = {}
        for filename, role, tags, draw in REFERENCE_IMAGES:
            content = draw()
            existing = ReferenceImage.objects.filter(
                Q(original_name=filename)
                | Q(sha256=hashlib.sha256(content).hexdigest()),
                brand=brand,
            ).first()
            if existing is None:
                upload = SimpleUploadedFile(filename, content, content_type="image/png")
                try:
                    existing = reference_create(
                        brand=brand,
                        uploaded_file=upload,
                        user=user,
                        role=role,
                        tags=tags,
                    )
                except (
                    DuplicateReference
                ) as duplicate:  # the same image under another name
                    existing = duplicate.existing
            made[role] = existing
        return made

    def _campaign(self, brand: Brand, user: User) -> Campaign:
        campaign = Campaign.objects.filter(brand=brand, name=CAMPAIGN_NAME).first()
        if campaign is None:
            today = timezone.localdate()
            fields = {
                **CAMPAIGN_FIELDS,
                "starts_on": today - timedelta(days=7),
                "ends_on": today + timedelta(days=45),
            }
            campaign = campaign_create(brand=brand, user=user, fields=fields)
        return campaign

    def _templates(
        self, brand: Brand, campaign: Campaign, user: User
    ) -> list[PromptTemplate]:
        templates = []
        for spec in (TEXT_TEMPLATE, JSON_TEMPLATE):
            template = PromptTemplate.objects.filter(
                brand=brand, name=spec["name"]
            ).first()
            if template is None:
                template = prompt_template_create(
                    brand=brand,
                    campaign=campaign,
                    name=spec["name"],
                    description=spec["description"],
                    kind=spec["kind"],
                    body=spec["body"],
                    reference_slots=spec["reference_slots"],
                    parameters=spec["parameters"],
                    change_note="Demo template",
                    author=user,
                )
            templates.append(template)
        return templates

    def _report(
        self,
        workspace: Workspace,
        brand: Brand,
        references: dict[str, ReferenceImage],
        campaign: Campaign,
        templates: list[PromptTemplate],
    ) -> None:
        url = settings.STUDIO_PUBLIC_URL or settings.STUDIO_LOCAL_URL
        out = self.stdout
        out.write(
            self.style.SUCCESS(f'Demo data ready in workspace "{workspace.name}":')
        )
        out.write(
            f"  brand {brand.name} ({len(references)} reference images), campaign {campaign.name}, "
            f"{len(templates)} prompt templates"
        )
        out.write(f"  URL:    {url}/")
        out.write(
            f"  Login:  demo / {DEMO_PASSWORD}   (workspace admin; a dev-only demo password)"
        )
        out.write(
            f"  Also:   dana (editor), alex (approver), vera (viewer), password {DEMO_PASSWORD}"
        )
