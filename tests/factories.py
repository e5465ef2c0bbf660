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


def make_asset(
    campaign: Campaign | None = None,
    *,
    workspace: Workspace | None = None,
    image: bytes | None = None,
    review_status: str = "pending",
    starred: bool = False,
    **generation_fields: Any,
) -> Any:
    """A succeeded generation and its asset, written directly (no backend, no worker).

    With `image`, the file and its WebP thumbnail are stored for real (as ingest does); without,
    the asset names files that do not exist (enough for pages that only link to them).
    """
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from generation import imaging
    from generation.models import Asset, Generation

    workspace = workspace or (campaign.workspace if campaign else None)
    assert workspace is not None, "give a campaign or a workspace"
    now = timezone.now()
    fields: dict[str, Any] = {
        "backend": "preview",
        "model": "flux-2-pro",
        "prompt": "A leather bag on an oak table, golden hour, 50 mm",
        "width": 1024,
        "height": 1024,
        "seed": next(_seq),
        "state": "succeeded",
        "estimated_cost": "0.0300",
        "queued_at": now,
        "submitted_at": now,
        "running_at": now,
        "ingesting_at": now,
        "finished_at": now,
    }
    if campaign is not None:
        fields.update(campaign=campaign, brand=campaign.brand)
    fields.update(generation_fields)
    generation = Generation.objects.create(workspace=workspace, **fields)
    base = f"generations/{workspace.code}/{generation.code}"
    if image is not None:
        info, thumbnail = imaging.inspect_and_thumbnail(
            image, max_pixels=64_000_000, max_side=512
        )
        file_name = default_storage.save(
            f"{base}/image.{info.extension}", ContentFile(image)
        )
        thumb_name = default_storage.save(f"{base}/thumb.webp", ContentFile(thumbnail))
        width, height, fmt = info.width, info.height, info.format
        content_type, size, sha = info.content_type, info.byte_size, info.sha256
    else:
        file_name, thumb_name = f"{base}/image.png", f"{base}/thumb.webp"
        width, height, fmt = generation.width, generation.height, "png"
        content_type, size, sha = "image/png", 1000, f"{generation.pk:064x}"
    return Asset.objects.create(
        workspace=workspace,
        generation=generation,
        campaign_id=generation.campaign_id,
        batch_id=generation.batch_id,
        file=file_name,
        thumbnail=thumb_name,
        width=width,
        height=height,
        format=fmt,
        content_type=content_type,
        byte_size=size,
        sha256=sha,
        review_status=review_status,
        starred=starred,
        cost=generation.actual_cost
        if generation.actual_cost is not None
        else generation.estimated_cost,
    )
