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
import io
import json
import os
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont

from campaigns.models import Brand, Campaign, PromptTemplate, ReferenceImage
from campaigns.prompt_templates import prompt_template_create
from campaigns.references import DuplicateReference, reference_create
from campaigns.services import brand_create, brand_update, campaign_create
from studio.models import Role, Workspace
from studio.services import membership_change

DEMO_PASSWORD = (
    "studio-demo"  # dev-only demo login, printed by `make run` and in the README
)
WORKSPACE_SLUG = "demo"
WORKSPACE_NAME = "Northwind Coffee Co."
BRAND_NAME = "Northwind Roasters"
CAMPAIGN_NAME = "Autumn Blend Launch"

USERS = [
    # username, first name, role
    ("demo", "Demo Admin", Role.ADMIN),
    ("dana", "Dana", Role.EDITOR),
    ("alex", "Alex", Role.APPROVER),
    ("vera", "Vera", Role.VIEWER),
]

PALETTE = [
    {"name": "Espresso", "hex": "#3B2416"},
    {"name": "Crema", "hex": "#F3E5C8"},
    {"name": "Roast", "hex": "#8B4A2B"},
    {"name": "Harbor Blue", "hex": "#1F4E5F"},
    {"name": "Maple", "hex": "#D9822B"},
]
COLOURS = {entry["name"]: entry["hex"] for entry in PALETTE}

BRAND_FIELDS: dict[str, Any] = {
    "name": BRAND_NAME,
    "description": "Small-batch coffee roasted on the harbour since 1998. Bags, beans and a café by the docks.",
    "palette": PALETTE,
    "fonts": [
        {"family": "Fraunces", "usage": "headlines"},
        {"family": "Inter", "usage": "body copy and labels"},
        {"family": "IBM Plex Mono", "usage": "prices and small print"},
    ],
    "typography_hints": "Bold serif headlines in Espresso on Crema, short and set large; sans-serif body text; never more than two typefaces in one image.",
    "tone_of_voice": "Warm, unhurried and craft-proud; speaks like the barista who knows your order. Plain words, no hype.",
    "words_to_use": [
        "small-batch",
        "freshly roasted",
        "harbour",
        "slow mornings",
        "single origin",
    ],
    "words_to_avoid": ["cheap", "instant", "best coffee in the world", "artisanal"],
    "default_formats": [
        "instagram-square",
        "instagram-story",
        "email-header",
        "web-hero",
    ],
}

CAMPAIGN_FIELDS: dict[str, Any] = {
    "name": CAMPAIGN_NAME,
    "objective": Campaign.Objective.LAUNCH,
    "brief": (
        "Launch the limited Autumn Blend (maple, toasted hazelnut, dark cocoa notes) in the café and "
        "online. Packshots for the shop, social posts and stories for the first two weeks, an email header."
    ),
    "channels": [
        "instagram-square",
        "instagram-story",
        "email-header",
        "ecommerce-square",
    ],
    "budget_cap": Decimal("250.00"),
    "status": Campaign.Status.ACTIVE,
}

TEXT_TEMPLATE = {
    "name": "Autumn Blend packshot",
    "description": "The bag on a surface, with a headline at the top. For the shop and feed posts.",
    "kind": "text",
    "body": (
        'Product shot of {ref:product} on {surface}, {lighting}, headline "{headline}" in bold '
        "sans-serif at the top, warm autumn mood, shallow depth of field"
    ),
    "reference_slots": [{"name": "product", "role": "product", "required": True}],
    "parameters": {"model": "flux-2-pro", "width": 1024, "height": 1024},
}

JSON_TEMPLATE = {
    "name": "Social card: café moment",
    "description": "Structured prompt for a portrait social card with the mascot in the café.",
    "kind": "json",
    "body": json.dumps(
        {
            "scene": "Inside the Northwind café by the harbour on a {season} morning",
            "subjects": [
                {
                    "description": "the Northwind mascot, {ref:mascot}, holding a cup",
                    "position": "left third",
                },
                {
                    "description": "the Autumn Blend coffee bag, {ref:product}",
                    "position": "on the counter, right",
                },
            ],
            "style": "warm editorial photography, soft film grain",
            "lighting": "{lighting}",
            "composition": "portrait 4:5, subjects in the lower two thirds, space for the headline at the top",
            "text_elements": [
                {
                    "text": "{headline}",
                    "position": "top centre",
                    "style": "bold serif, Espresso on Crema",
                },
                {
                    "text": "{call_to_action}",
                    "position": "bottom",
                    "style": "small sans-serif caps",
                },
            ],
        },
        indent=2,
    ),
    "reference_slots": [
        {"name": "mascot", "role": "character", "required": True},
        {"name": "product", "role": "product", "required": True},
    ],
    "parameters": {"model": "flux-2-pro", "width": 1088, "height": 1360},
}


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
        url = settings.STUDIO_PUBLIC_URL or (
            f"http://{os.environ.get('STUDIO_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
        )
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


# -- the reference images, drawn with Pillow ---------------------------------------------------


def _rgb(name: str) -> tuple[int, int, int]:
    value = COLOURS[name].lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _centered_text(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, fill: Any
) -> None:
    draw.text(xy, text, fill=fill, font=_font(size), anchor="mm")


def draw_packshot() -> bytes:
    """The Autumn Blend bag on a plain studio backdrop (role: product)."""
    w, h = 1024, 1024
    image = Image.new("RGB", (w, h), (236, 230, 220))
    draw = ImageDraw.Draw(image)
    # Floor and soft shadow.
    draw.rectangle([0, 760, w, h], fill=(222, 214, 202))
    draw.ellipse([300, 820, 724, 880], fill=(196, 186, 172))
    # The bag: body, folded top, side gussets.
    draw.polygon(
        [(330, 250), (694, 250), (720, 850), (304, 850)], fill=_rgb("Espresso")
    )
    draw.polygon([(330, 250), (694, 250), (680, 190), (344, 190)], fill=(84, 56, 38))
    draw.rectangle([344, 176, 680, 196], fill=(60, 38, 26))
    draw.line([(330, 250), (304, 850)], fill=(40, 24, 15), width=6)
    draw.line([(694, 250), (720, 850)], fill=(40, 24, 15), width=6)
    # Label.
    draw.rounded_rectangle([368, 380, 656, 720], radius=18, fill=_rgb("Crema"))
    draw.ellipse([472, 410, 552, 490], outline=_rgb("Harbor Blue"), width=6)
    draw.polygon([(512, 418), (526, 450), (512, 482), (498, 450)], fill=_rgb("Maple"))
    _centered_text(draw, (512, 530), "NORTHWIND", 40, _rgb("Espresso"))
    _centered_text(draw, (512, 580), "AUTUMN BLEND", 30, _rgb("Roast"))
    draw.line([(410, 615), (614, 615)], fill=_rgb("Maple"), width=4)
    _centered_text(draw, (512, 650), "maple - hazelnut - cocoa", 20, _rgb("Espresso"))
    _centered_text(draw, (512, 690), "250 g  whole bean", 18, _rgb("Roast"))
    # A few beans on the floor.
    for x, y in [(220, 880), (800, 860), (850, 900), (180, 930)]:
        draw.ellipse([x, y, x + 46, y + 32], fill=_rgb("Roast"))
        draw.line([(x + 8, y + 16), (x + 38, y + 16)], fill=_rgb("Espresso"), width=4)
    return _png(image)


def draw_mascot() -> bytes:
    """Bean, the Northwind mascot: a coffee bean with a sailor's cap (role: character)."""
    w, h = 1024, 1024
    image = Image.new("RGB", (w, h), _rgb("Crema"))
    draw = ImageDraw.Draw(image)
    # Body: a big bean with its crease.
    draw.ellipse(
        [292, 260, 732, 900], fill=_rgb("Roast"), outline=_rgb("Espresso"), width=10
    )
    draw.arc([430, 260, 600, 900], start=100, end=260, fill=_rgb("Espresso"), width=12)
    # Face.
    for x in (420, 600):
        draw.ellipse(
            [x - 42, 470, x + 42, 554], fill="white", outline=_rgb("Espresso"), width=6
        )
        draw.ellipse([x - 16, 496, x + 16, 528], fill=_rgb("Espresso"))
    draw.arc([430, 560, 594, 680], start=20, end=160, fill=_rgb("Espresso"), width=10)
    draw.ellipse([350, 590, 400, 630], fill=(214, 120, 96))
    draw.ellipse([624, 590, 674, 630], fill=(214, 120, 96))
    # Sailor's cap.
    draw.rounded_rectangle(
        [352, 200, 672, 300],
        radius=40,
        fill="white",
        outline=_rgb("Harbor Blue"),
        width=8,
    )
    draw.rectangle([352, 270, 672, 310], fill=_rgb("Harbor Blue"))
    draw.polygon([(512, 214), (526, 244), (512, 274), (498, 244)], fill=_rgb("Maple"))
    # Arms and a cup.
    draw.line([(300, 640), (200, 560)], fill=_rgb("Espresso"), width=16)
    draw.line([(724, 640), (820, 700)], fill=_rgb("Espresso"), width=16)
    draw.rounded_rectangle(
        [790, 650, 880, 760], radius=12, fill="white", outline=_rgb("Espresso"), width=6
    )
    draw.arc([860, 675, 910, 735], start=270, end=90, fill=_rgb("Espresso"), width=6)
    # Feet.
    draw.ellipse([380, 880, 480, 930], fill=_rgb("Espresso"))
    draw.ellipse([544, 880, 644, 930], fill=_rgb("Espresso"))
    _centered_text(draw, (512, 980), "Bean", 34, _rgb("Espresso"))
    return _png(image)


def draw_swatches() -> bytes:
    """The brand's palette and type as a style board (role: style)."""
    w, h = 1200, 800
    image = Image.new("RGB", (w, h), (250, 247, 241))
    draw = ImageDraw.Draw(image)
    draw.text(
        (60, 50),
        "Northwind Roasters - style board",
        fill=_rgb("Espresso"),
        font=_font(40),
    )
    swatch_w = (w - 120 - 4 * 24) // 5
    for i, entry in enumerate(PALETTE):
        x = 60 + i * (swatch_w + 24)
        draw.rounded_rectangle(
            [x, 140, x + swatch_w, 440], radius=16, fill=entry["hex"]
        )
        draw.text((x, 460), entry["name"], fill=_rgb("Espresso"), font=_font(26))
        draw.text((x, 496), entry["hex"], fill=(110, 100, 90), font=_font(22))
    draw.text(
        (60, 580), "Aa  Fraunces - headlines", fill=_rgb("Espresso"), font=_font(44)
    )
    draw.text(
        (60, 650),
        "Aa  Inter - body copy and labels",
        fill=_rgb("Harbor Blue"),
        font=_font(30),
    )
    draw.text(
        (60, 705),
        "Aa  IBM Plex Mono - prices and small print",
        fill=_rgb("Roast"),
        font=_font(24),
    )
    return _png(image)


def draw_cafe() -> bytes:
    """The café by the harbour, empty, as a backdrop (role: background)."""
    w, h = 1536, 1024
    image = Image.new("RGB", (w, h), (228, 214, 190))
    draw = ImageDraw.Draw(image)
    # Window onto the harbour.
    draw.rectangle(
        [120, 120, 760, 560], fill=(176, 206, 219), outline=_rgb("Espresso"), width=14
    )
    draw.rectangle([127, 420, 753, 553], fill=_rgb("Harbor Blue"))
    draw.polygon([(300, 420), (420, 420), (400, 450), (320, 450)], fill="white")
    draw.line([(360, 420), (360, 320)], fill="white", width=6)
    draw.polygon([(362, 330), (362, 410), (420, 410)], fill=(245, 245, 240))
    draw.line([(440, 120), (440, 560)], fill=_rgb("Espresso"), width=10)
    # Shelves with bags and jars.
    for y in (330, 500):
        draw.rectangle([900, y, 1420, y + 16], fill=_rgb("Roast"))
        for i in range(6):
            x = 920 + i * 84
            colour = _rgb("Espresso") if i % 2 == 0 else _rgb("Maple")
            draw.rectangle([x, y - 110, x + 60, y], fill=colour)
            draw.rectangle([x + 10, y - 70, x + 50, y - 40], fill=_rgb("Crema"))
    # Counter.
    draw.rectangle([0, 700, w, h], fill=_rgb("Roast"))
    draw.rectangle([0, 680, w, 712], fill=_rgb("Espresso"))
    for x in range(60, w, 180):
        draw.line([(x, 712), (x, h)], fill=(120, 62, 36), width=4)
    # Pendant lamps.
    for x in (880, 1180, 1440):
        draw.line([(x, 0), (x, 70)], fill=_rgb("Espresso"), width=4)
        draw.pieslice([x - 50, 40, x + 50, 140], start=180, end=360, fill=_rgb("Maple"))
        draw.ellipse([x - 15, 78, x + 15, 104], fill=(255, 236, 180))
    return _png(image)


def draw_logo() -> bytes:
    """The Northwind compass-bean logo on a transparent background (role: logo)."""
    w, h = 800, 800
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([100, 60, 700, 660], fill=_rgb("Harbor Blue"))
    draw.ellipse([130, 90, 670, 630], outline=_rgb("Crema"), width=10)
    # Compass needle north (Maple) and south (Crema).
    draw.polygon([(400, 130), (450, 360), (400, 330), (350, 360)], fill=_rgb("Maple"))
    draw.polygon([(400, 590), (450, 360), (400, 390), (350, 360)], fill=_rgb("Crema"))
    draw.ellipse([376, 336, 424, 384], fill=_rgb("Espresso"))
    _centered_text(draw, (400, 720), "NORTHWIND", 64, _rgb("Espresso"))
    return _png(image)


# (file name, role, tags, how to draw it)
REFERENCE_IMAGES = [
    ("autumn-blend-bag.png", "product", ["autumn-blend", "packshot"], draw_packshot),
    ("bean-mascot.png", "character", ["mascot"], draw_mascot),
    ("style-board.png", "style", ["palette", "typography"], draw_swatches),
    ("harbour-cafe.png", "background", ["cafe", "interior"], draw_cafe),
    ("northwind-logo.png", "logo", ["logo"], draw_logo),
]
