"""Plain factory functions with keyword defaults (no factory_boy)."""

from __future__ import annotations

import io
from itertools import count
from typing import Any

from django.contrib.auth.models import User
from PIL import Image

from campaigns.models import Brand, Campaign, PromptTemplate, TemplateVersion
from studio.models import Membership, Role, Workspace

_seq = count(1)


def make_user(
    username: str | None = None, *, password: str = "pw-for-tests-1", **extra: Any
) -> User:
    username = username or f"user{next(_seq)}"
    return User.objects.create_user(
        username=username, password=password, email=f"{username}@example.com", **extra
    )


def make_workspace(name: str | None = None) -> Workspace:
    n = next(_seq)
    return Workspace.objects.create(name=name or f"Workspace {n}", slug=f"ws-{n}")


def make_member(
    workspace: Workspace, role: str = Role.EDITOR, username: str | None = None
) -> User:
    user = make_user(username)
    Membership.objects.create(workspace=workspace, user=user, role=role)
    return user


def make_brand(workspace: Workspace, **fields: Any) -> Brand:
    defaults: dict[str, Any] = {
        "name": f"Brand {next(_seq)}",
        "palette": [
            {"name": "Midnight", "hex": "#1A1A2E"},
            {"name": "Coral", "hex": "#FF6B6B"},
        ],
        "fonts": [{"family": "Inter", "usage": "headlines"}],
        "typography_hints": "Bold geometric sans-serif headlines",
        "tone_of_voice": "Warm, direct",
        "words_to_use": ["fresh"],
        "words_to_avoid": ["cheap"],
        "default_formats": ["instagram-square"],
    }
    defaults.update(fields)
    return Brand.objects.create(workspace=workspace, **defaults)


def make_campaign(brand: Brand, **fields: Any) -> Campaign:
    defaults: dict[str, Any] = {
        "name": f"Campaign {next(_seq)}",
        "channels": ["instagram-square"],
    }
    defaults.update(fields)
    return Campaign.objects.create(workspace=brand.workspace, brand=brand, **defaults)


def make_template(
    brand: Brand,
    *,
    body: str = "A {product} on a {surface}",
    kind: str = "text",
    author: User | None = None,
    **fields: Any,
) -> PromptTemplate:
    template = PromptTemplate.objects.create(
        workspace=brand.workspace,
        brand=brand,
        name=fields.pop("name", f"Template {next(_seq)}"),
        created_by=author,
        **fields,
    )
    from campaigns.prompting import template_variables

    TemplateVersion.objects.create(
        workspace=brand.workspace,
        template=template,
        number=1,
        kind=kind,
        body=body,
        variables=template_variables(body, kind),
        author=author,
    )
    return template


def image_bytes(
    fmt: str = "PNG",
    size: tuple[int, int] = (64, 48),
    mode: str = "RGB",
    color: Any = (200, 60, 60),
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()
