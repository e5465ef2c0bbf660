"""python manage.py export_pack --workspace SLUG (--campaign CODE | --batch CODE | --asset CODE ...)
[--preset KEY ...] [--format jpeg|png|webp|avif ...] [--all-statuses] --out FILE.zip

Builds the pack in this process (the same service the Celery task runs, so no worker is needed)
and copies it from storage to --out. Exit 0 with a one-line summary; non-zero with a one-line
reason: 1 for what was asked (unknown workspace or code, nothing approved, unknown preset), 3 when
the build itself failed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.models import Campaign
from exports import services
from exports.lookup import LookupFailed, find
from exports.render import FORMATS
from generation.models import Asset, Batch
from studio.models import Workspace


class Command(BaseCommand):
    help = "Export an asset pack (ZIP with every preset's renditions and a manifest)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workspace", required=True, help="workspace slug (or name)"
        )
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--campaign", help="campaign code, short id or name")
        scope.add_argument("--batch", help="batch code, short id or name")
        scope.add_argument(
            "--asset", nargs="+", action="extend", help="asset codes or short ids"
        )
        parser.add_argument(
            "--preset",
            nargs="+",
            action="extend",
            default=[],
            help="preset keys, aliases (square, story, 16x9...) or sizes like 1600x500; "
            "default: the brand's presets",
        )
        parser.add_argument(
            "--format",
            nargs="+",
            action="extend",
            default=[],
            help=f"one or more of {', '.join(FORMATS)} (default jpeg)",
        )
        parser.add_argument(
            "--all-statuses",
            action="store_true",
            help="include images that are not approved",
        )
        parser.add_argument("--out", required=True, help="the ZIP file to write")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        if out.exists() and out.is_dir():
            raise CommandError(f"--out {out} is a folder; give a file name.")
        if not out.parent.exists():
            raise CommandError(f"--out: the folder {out.parent} does not exist.")
        workspace = (
            Workspace.objects.filter(slug=options["workspace"]).first()
            or Workspace.objects.filter(name__iexact=options["workspace"]).first()
        )
        if workspace is None:
            raise CommandError(f"No workspace {options['workspace']!r}.")
        scope: dict[str, Any] = {}
        try:
            if options["campaign"]:
                scope["campaign"] = find(
                    Campaign.objects.filter(workspace=workspace).select_related(
                        "brand"
                    ),
                    options["campaign"],
                    kind="Campaign",
                    name_field="name",
                )
            elif options["batch"]:
                scope["batch"] = find(
                    Batch.objects.filter(workspace=workspace).select_related(
                        "brand", "campaign"
                    ),
                    options["batch"],
                    kind="Batch",
                    name_field="name",
                )
            else:
                assets = Asset.objects.filter(workspace=workspace)
                scope["assets"] = [
                    find(
                        assets,
                        code,
                        kind="Asset",
                        code_fields=("code", "generation__code"),
                    )
                    for code in dict.fromkeys(options["asset"])
                ]
            pack = services.export_pack_request(
                workspace=workspace,
                preset_names=options["preset"],
                formats=options["format"] or ["jpeg"],
                all_statuses=options["all_statuses"],
                dispatch=False,
                **scope,
            )
        except (LookupFailed, ValidationError) as exc:
            raise CommandError(_one_line(exc)) from exc
        try:
            built = services.export_pack_build(pack_id=pack.pk)
        except Exception as exc:
            raise CommandError(
                f"The export failed: {_one_line(exc)}", returncode=3
            ) from exc
        if built is None or not built.file:
            raise CommandError("The export did not finish.", returncode=3)
        pack = built
        with pack.file.open("rb") as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        presets = ", ".join(p["key"] for p in pack.presets)
        flagged = f"; {len(pack.flagged)} flagged too small" if pack.flagged else ""
        self.stdout.write(
            f"Exported {pack.asset_count} image{'s' if pack.asset_count != 1 else ''} × "
            f"{len(pack.presets)} preset{'s' if len(pack.presets) != 1 else ''} ({presets}) × "
            f"{'/'.join(pack.formats)} = {pack.total} files to {out} "
            f"({_size(out.stat().st_size)}, pack {pack.code.hex[:8]}){flagged}."
        )


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        text = " ".join(exc.messages)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
