"""`manage.py brand_check`: the brand checks on any image file, for scripts and for photography
that was not generated here.

    python manage.py brand_check --workspace northwind --brand <brand uuid> poster.jpg \
        --text "Warm Up, Harbour" --reference logo.png --reference product=bag.png --json

Prints one JSON object: palette.score, text.score (when text was asked), logo.score and
product.score (when a reference of that role was given), channels.score (the brand's presets),
each 0..1 with 1 best, beside the details and the flags the brand's thresholds raise.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.models import Brand
from checks.measure import Inputs, Reference
from checks.models import BrandCheckPolicy
from checks.pixels import open_file
from checks.services import check_picture
from studio.models import Workspace

ROLES = ("logo", "product")


class Command(BaseCommand):
    help = "Check an image file against a brand: palette, text, logo and product, channel fit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("image", help="the image file to check")
        parser.add_argument("--workspace", required=True, help="workspace slug")
        parser.add_argument("--brand", required=True, help="the brand's code (UUID)")
        parser.add_argument(
            "--text",
            action="append",
            default=[],
            help="text the image should show (repeat for several strings)",
        )
        parser.add_argument(
            "--prompt",
            default="",
            help="the prompt: its quoted text and hex colours count as expected too",
        )
        parser.add_argument(
            "--reference",
            action="append",
            default=[],
            metavar="[ROLE=]FILE",
            help="a logo (default) or product=FILE reference image to look for",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"No workspace with the slug {options['workspace']!r}.")
        try:
            brand = Brand.objects.filter(
                workspace=workspace, code=options["brand"]
            ).first()
        except ValidationError:
            brand = None
        if brand is None:
            raise CommandError(
                f"No brand {options['brand']!r} in workspace {workspace.slug}."
            )
        references = []
        for item in options["reference"]:
            role, sep, path = item.partition("=")
            if not sep:
                role, path = "logo", item
            if role not in ROLES:
                raise CommandError(
                    f"--reference {item!r}: the role must be logo or product."
                )
            references.append(
                Reference(role=role, picture=self._open(path), label=path)
            )
        picture = self._open(options["image"])
        policy = BrandCheckPolicy.for_brand(brand)
        texts = options["text"] or None  # None: the prompt's quoted strings
        result = check_picture(
            picture,
            Inputs(
                palette=list(brand.palette),
                prompt=options["prompt"],
                texts=texts,
                references=references,
                formats=list(brand.default_formats),
                tolerance=policy.delta_e,
            ),
            policy,
        )
        result = {"image": options["image"], "brand": str(brand.code), **result}
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
            return
        self.stdout.write(self._summary(result))

    def _open(self, path: str) -> Any:
        try:
            return open_file(path)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc

    def _summary(self, result: dict[str, Any]) -> str:
        lines = [f"{result['image']}: {result['width']}×{result['height']}"]
        for key in ("palette", "text", "logo", "product", "channels"):
            part = result.get(key)
            if part and part.get("score") is not None:
                lines.append(f"  {key:<9}{part['score']:.2f}")
        for row in (result.get("text") or {}).get("strings", []):
            mark = "ok" if row["exact"] else "MISMATCH"
            lines.append(
                f"    {row['expected']!r} read as {row['rendered']!r} ({mark})"
            )
        raised = [name for name, on in result["flags"].items() if on]
        lines.append("  flags: " + (", ".join(raised) if raised else "none"))
        return "\n".join(lines)
