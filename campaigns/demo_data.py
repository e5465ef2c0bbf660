"""The demo workspace's content: its users, brand kit, campaign and two prompt templates.

Read by `manage.py load_demo` (campaigns/management/commands/load_demo.py), which creates it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from campaigns.models import Campaign
from studio.models import Role

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

TEXT_TEMPLATE: dict[str, Any] = {
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

JSON_TEMPLATE: dict[str, Any] = {
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
