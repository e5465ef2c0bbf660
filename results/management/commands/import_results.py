"""`manage.py import_results`: bring an ad platform's CSV export back into a campaign.

    python manage.py import_results --workspace SLUG --campaign CODE FILE.csv [--mapping NAME] [--json]

CODE is the campaign's id as the studio shows it (the full id, or its first 8 digits), or its exact
name. Without --mapping the columns are guessed from the header (presets for Meta Ads Manager, Google
Ads, LinkedIn Campaign Manager and TikTok Ads Manager). --json prints one object: `matched` (a count),
`unmatched` (the rows' ad names) and `variants` (per asset: `asset`, `impressions`, `clicks`,
`conversions`, `ctr`, `p_best`). Exit status 0 when the file was imported, 1 with a one-line reason
when it was refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.models import Campaign
from results import services
from studio.models import Workspace

_HEX = re.compile(
    r"\A[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?\Z", re.I
)


def find_campaign(workspace: Workspace, code: str) -> Campaign:
    code = code.strip()
    campaigns = Campaign.objects.filter(workspace=workspace)
    if _HEX.match(code):
        matches = [
            c
            for c in campaigns.only("id", "code")
            if str(c.code).startswith(code.lower())
        ]
        if len(matches) == 1:
            return campaigns.get(pk=matches[0].pk)
        if len(matches) > 1:
            raise CommandError(
                f"“{code}” matches {len(matches)} campaigns: give the full id."
            )
    by_name = list(campaigns.filter(name__iexact=code)[:2])
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise CommandError(
            f"Several campaigns are called “{code}”: give the campaign's id."
        )
    raise CommandError(f"No campaign “{code}” in workspace {workspace.slug}.")


class Command(BaseCommand):
    help = "Import an ad platform's results CSV into a campaign and print the A/B statistics."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE.csv")
        parser.add_argument("--workspace", required=True, metavar="SLUG")
        parser.add_argument("--campaign", required=True, metavar="CODE")
        parser.add_argument(
            "--mapping",
            metavar="NAME",
            help="a preset (Meta Ads Manager, Google Ads, LinkedIn Campaign Manager, "
            "TikTok Ads Manager) or a mapping saved in the workspace; guessed when omitted",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"No workspace with the slug “{options['workspace']}”.")
        campaign = find_campaign(workspace, options["campaign"])
        path = Path(options["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        try:
            outcome = services.import_results(
                campaign=campaign,
                user=None,
                file_name=path.name,
                data=data,
                mapping=options.get("mapping"),
            )
        except services.ImportRefused as exc:
            raise CommandError(str(exc)) from None
        results = services.campaign_results(campaign)
        summary = services.summary_json(outcome, results)
        if options["json"]:
            self.stdout.write(json.dumps(summary, ensure_ascii=False))
            return
        imported = outcome.result_import
        self.stdout.write(
            f"Imported {imported.rows} rows from {path.name} ({imported.source}): "
            f"{imported.matched} matched, {len(imported.unmatched)} unmatched"
            + (
                f", {imported.replaced} earlier rows replaced"
                if imported.replaced
                else ""
            )
            + "."
        )
        for row in imported.unmatched:
            self.stdout.write(f"  unmatched line {row['line']}: {row['ad_name']}")
        for variant in summary["variants"]:
            self.stdout.write(
                f"  {variant['asset'][:8]}  {variant['impressions']:>10,} impr  "
                f"{variant['clicks']:>8,} clicks  CTR {variant['ctr']:.2%}  "
                f"P(best) {variant['p_best']:.0%}"
            )
