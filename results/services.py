"""Importing ad results and reading them back as A/B statistics.

Rows are matched to assets through the ids they carry: an export names every file after the asset's
short id (the first 8 hex digits of its code), ad names are usually the file name, and a full asset or
generation id works too. A row that names no asset of the campaign is kept in the import's `unmatched`
list, with its line, and shown; it is never dropped silently.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from campaigns.models import Campaign
from generation.models import Asset, Batch
from results import platforms, stats
from results.models import AdResult, ResultImport, ResultMapping

_ID = re.compile(
    r"(?<![0-9a-f])([0-9a-f]{8})(?:-([0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}))?(?![0-9a-f])",
    re.IGNORECASE,
)


class ImportRefused(Exception):
    """The file or mapping cannot be imported; the message says why, for people."""


def min_impressions() -> int:
    return int(settings.RESULTS_MIN_IMPRESSIONS)


def win_threshold() -> float:
    return float(settings.RESULTS_WIN_PROBABILITY)


# --- Mappings ----------------------------------------------------------------------------------


def mapping_choices(workspace: Any) -> list[str]:
    saved = ResultMapping.objects.filter(workspace=workspace).values_list(
        "name", flat=True
    )
    return [*platforms.PRESETS, *saved]


def columns_for(
    *, workspace: Any, name: str | None, header: list[str]
) -> tuple[str, dict[str, str]]:
    """(source, role -> column): a saved mapping or preset by name, else guessed from the header."""
    if not name:
        return platforms.guess_mapping(header)
    saved = ResultMapping.objects.filter(workspace=workspace, name=name).first()
    if saved is not None:
        return saved.name, dict(saved.columns)
    if name in platforms.PRESETS:
        by_name = {platforms.normalise(c): c for c in header}
        found = {}
        for role, names in platforms.PRESETS[name].items():
            column = next((by_name[n] for n in names if n in by_name), None)
            if column:
                found[role] = column
        return name, found
    choices = ", ".join(mapping_choices(workspace))
    raise ImportRefused(f"No mapping called “{name}” (choose one of: {choices}).")


def save_mapping(
    *, workspace: Any, name: str, columns: Mapping[str, str]
) -> ResultMapping:
    name = name.strip()[:80]
    if not name or "\x00" in name:
        raise ImportRefused("Give the mapping a name.")
    if name in platforms.PRESETS:
        raise ImportRefused(f"“{name}” is a built-in preset; choose another name.")
    mapping, _ = ResultMapping.objects.update_or_create(
        workspace=workspace,
        name=name,
        defaults={"columns": {k: v for k, v in columns.items() if v}},
    )
    return mapping


# --- Matching ----------------------------------------------------------------------------------


def _asset_index(campaign: Campaign) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Full ids and 8-digit short ids of the campaign's assets (and of their generations)."""
    full: dict[str, int] = {}
    short: dict[str, list[int]] = defaultdict(list)
    for asset_id, code, generation_code in Asset.objects.filter(
        campaign=campaign
    ).values_list("id", "code", "generation__code"):
        for value in (str(code), str(generation_code)):
            full[value] = asset_id
            short[value[:8]].append(asset_id)
    return full, short


def match_asset(
    ad_name: str, full: Mapping[str, int], short: Mapping[str, list[int]]
) -> int | None:
    for match in _ID.finditer(ad_name):
        head, rest = match.group(1).lower(), match.group(2)
        if rest:
            asset_id = full.get(f"{head}-{rest.lower()}")
            if asset_id is not None:
                return asset_id
        candidates = set(short.get(head, ()))
        if len(candidates) == 1:
            return candidates.pop()
    return None


# --- Import ------------------------------------------------------------------------------------


@dataclass
class ImportOutcome:
    result_import: ResultImport
    matched_assets: set[int] = field(default_factory=set)


def preview(data: bytes) -> platforms.Table:
    try:
        return platforms.read_table(data)
    except platforms.ResultsFileError as exc:
        raise ImportRefused(str(exc)) from None


@transaction.atomic
def import_results(
    *,
    campaign: Campaign,
    user: Any,
    file_name: str,
    data: bytes,
    mapping: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> ImportOutcome:
    """Read, match and store one export. Rows of the same (source, period, ad name) as an earlier
    import replace it; every unmatched row is listed on the import."""
    table = preview(data)
    if columns is None:
        source, cols = columns_for(
            workspace=campaign.workspace, name=mapping, header=table.header
        )
    else:
        source, cols = (mapping or "Custom mapping"), dict(columns)
    problems = platforms.check_mapping(table.header, cols)
    if problems:
        raise ImportRefused(" ".join(problems))
    try:
        parsed = list(platforms.rows(table, cols))
    except platforms.ResultsFileError as exc:
        raise ImportRefused(str(exc)) from None

    full, short = _asset_index(campaign)
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    unmatched = []
    for row in parsed:
        asset_id = match_asset(row.ad_name, full, short)
        if asset_id is None:
            unmatched.append({"line": row.line, "ad_name": row.ad_name})
            continue
        key = (row.period, row.ad_name)
        total = totals.setdefault(
            key,
            {
                "asset_id": asset_id,
                "impressions": 0,
                "clicks": 0,
                "conversions": 0,
                "spend": Decimal(0),
            },
        )
        total["impressions"] += row.impressions
        total["clicks"] += row.clicks
        total["conversions"] += row.conversions
        total["spend"] += row.spend

    result_import = ResultImport.objects.create(
        workspace=campaign.workspace,
        campaign=campaign,
        created_by=user if getattr(user, "pk", None) else None,
        file_name=file_name[:255],
        source=source[:80],
        columns=cols,
        rows=len(parsed),
        matched=len(parsed) - len(unmatched),
        unmatched=unmatched,
    )
    replaced = 0
    for (period, ad_name), total in totals.items():
        deleted, _ = AdResult.objects.filter(
            campaign=campaign,
            source=result_import.source,
            period=period,
            ad_name=ad_name,
        ).delete()
        replaced += deleted
        AdResult.objects.create(
            workspace=campaign.workspace,
            campaign=campaign,
            result_import=result_import,
            source=result_import.source,
            period=period,
            ad_name=ad_name,
            **total,
        )
    if replaced:
        ResultImport.objects.filter(pk=result_import.pk).update(replaced=replaced)
        result_import.replaced = replaced
    return ImportOutcome(
        result_import=result_import,
        matched_assets={t["asset_id"] for t in totals.values()},
    )


# --- Reading results back ----------------------------------------------------------------------


@dataclass(frozen=True)
class VariantResult:
    asset: Asset
    impressions: int
    clicks: int
    conversions: int
    spend: Decimal
    ctr: stats.VariantStats
    conversion: stats.VariantStats | None

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.clicks if self.clicks else 0.0


@dataclass(frozen=True)
class BatchResult:
    batch: Batch | None
    variants: list[VariantResult]
    analysis: stats.Analysis
    conversion_analysis: stats.Analysis | None

    @property
    def winner(self) -> VariantResult | None:
        key = self.analysis.winner
        return next((v for v in self.variants if str(v.asset.code) == key), None)


def axes_of(asset: Asset) -> dict[str, str]:
    """The asset's place in its batch's factorial design: each variable, the seed, the model, the size."""
    generation = asset.generation
    axes = {f"var:{k}": str(v) for k, v in (generation.variables or {}).items()}
    axes["seed"] = "" if generation.seed is None else str(generation.seed)
    axes["target"] = f"{generation.backend}:{generation.model}"
    axes["size"] = f"{generation.width}×{generation.height}"
    return axes


def axis_label(axis: str) -> str:
    if axis.startswith("var:"):
        return "{" + axis[4:] + "}"
    return {"seed": "Seed", "target": "Backend and model", "size": "Size"}.get(
        axis, axis
    )


def campaign_results(campaign: Campaign) -> list[BatchResult]:
    """Totals per asset, grouped by batch, each batch analysed on its own (its variants compete)."""
    sums = (
        AdResult.objects.filter(campaign=campaign)
        .values("asset_id")
        .annotate(
            impressions=Sum("impressions"),
            clicks=Sum("clicks"),
            conversions=Sum("conversions"),
            spend=Sum("spend"),
        )
    )
    by_asset = {row["asset_id"]: row for row in sums}
    assets = Asset.objects.filter(id__in=by_asset).select_related("generation", "batch")
    groups: dict[int | None, list[Asset]] = defaultdict(list)
    for asset in assets:
        groups[asset.batch_id].append(asset)
    results = []
    for members in groups.values():
        members.sort(key=lambda a: (a.created_at, a.id))
        results.append(_batch_result(members, by_asset))
    results.sort(key=lambda r: (r.variants[0].asset.created_at, r.variants[0].asset.id))
    return results


def _batch_result(
    members: list[Asset], by_asset: Mapping[int, Mapping[str, Any]]
) -> BatchResult:
    ctr_counts = [
        stats.Counts(
            key=str(a.code),
            trials=int(by_asset[a.id]["impressions"]),
            successes=int(by_asset[a.id]["clicks"]),
            axes=axes_of(a),
        )
        for a in members
    ]
    analysis = stats.analyse(
        ctr_counts, min_trials=min_impressions(), threshold=win_threshold()
    )
    has_conversions = any(by_asset[a.id]["conversions"] for a in members)
    conversion_analysis = None
    if has_conversions:
        conversion_analysis = stats.analyse(
            [
                stats.Counts(
                    key=str(a.code),
                    trials=int(by_asset[a.id]["clicks"]),
                    successes=int(by_asset[a.id]["conversions"]),
                    axes=axes_of(a),
                )
                for a in members
            ],
            min_trials=max(1, min_impressions() // 20),
            threshold=win_threshold(),
        )
    conversion_by_key = (
        {v.key: v for v in conversion_analysis.variants} if conversion_analysis else {}
    )
    variants = [
        VariantResult(
            asset=a,
            impressions=int(by_asset[a.id]["impressions"]),
            clicks=int(by_asset[a.id]["clicks"]),
            conversions=int(by_asset[a.id]["conversions"]),
            spend=Decimal(by_asset[a.id]["spend"] or 0),
            ctr=v,
            conversion=conversion_by_key.get(v.key),
        )
        for a, v in zip(members, analysis.variants, strict=True)
    ]
    return BatchResult(
        batch=members[0].batch,
        variants=variants,
        analysis=analysis,
        conversion_analysis=conversion_analysis,
    )


def summary_json(
    outcome: ImportOutcome, results: Iterable[BatchResult]
) -> dict[str, Any]:
    """The `import_results --json` object: matched, unmatched ad names, and per asset its figures."""
    imported = outcome.result_import
    variants = []
    for batch_result in results:
        for v in batch_result.variants:
            variants.append(
                {
                    "asset": str(v.asset.code),
                    "batch": str(batch_result.batch.code)
                    if batch_result.batch
                    else None,
                    "impressions": v.impressions,
                    "clicks": v.clicks,
                    "conversions": v.conversions,
                    "ctr": round(v.ctr.rate, 6),
                    "p_best": round(v.ctr.p_best, 4),
                }
            )
    return {
        "matched": imported.matched,
        "unmatched": [row["ad_name"] for row in imported.unmatched],
        "source": imported.source,
        "replaced": imported.replaced,
        "variants": variants,
    }


def results_by_version(prompt_template: Any) -> dict[int, dict[str, Any]]:
    """Per version number of a template: its images' ad totals, CTR and conversion rate (%)."""
    rows = (
        AdResult.objects.filter(
            asset__generation__template_version__template=prompt_template
        )
        .values("asset__generation__template_version__number")
        .annotate(
            impressions=Sum("impressions"),
            clicks=Sum("clicks"),
            conversions=Sum("conversions"),
        )
    )
    result = {}
    for row in rows:
        impressions, clicks = row["impressions"] or 0, row["clicks"] or 0
        result[row["asset__generation__template_version__number"]] = {
            "impressions": impressions,
            "clicks": clicks,
            "conversions": row["conversions"] or 0,
            "ctr": 100 * clicks / impressions if impressions else 0.0,
            "conversion_rate": 100 * (row["conversions"] or 0) / clicks
            if clicks
            else 0.0,
        }
    return result


@dataclass(frozen=True)
class Round:
    number: int
    batch: Batch
    result: BatchResult | None

    @property
    def verdict(self) -> str:
        if self.result is None:
            return "no ad results yet"
        if self.result.analysis.too_early:
            return "too early to call"
        winner = self.result.winner
        if winner is None:
            return "no winner yet"
        return f"winner {str(winner.asset.code)[:8]} ({winner.ctr.rate:.2%} CTR)"


def campaign_rounds(campaign: Campaign) -> list[Round]:
    """The campaign's batches in order, each with its results' verdict: the history of rounds."""
    results = {r.batch.pk: r for r in campaign_results(campaign) if r.batch is not None}
    batches = Batch.objects.filter(campaign=campaign).order_by("created_at", "id")
    return [
        Round(number=i, batch=batch, result=results.get(batch.pk))
        for i, batch in enumerate(batches, start=1)
    ]
