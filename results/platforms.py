"""Reading the ad platforms' CSV exports: encodings, preambles, totals rows, column names, numbers.

Each platform names its columns its own way (docs/ab-results.md lists the exports these presets were
written from). A mapping says which column plays which role:

    ad_name      the ad or creative name (where our short asset id travels: exports put it in file names)
    impressions  how many times the ad was shown
    clicks       link clicks (Meta "Link clicks", not "Clicks (all)", which counts likes and expands)
    conversions  the platform's conversions or "Results"
    spend        what it cost (optional)
    period       a date or reporting-start column (optional), so exports of other days add up

No Django here: views, the import service and the command share it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

ROLES = ("ad_name", "impressions", "clicks", "conversions", "spend", "period")
REQUIRED = ("ad_name", "impressions", "clicks")
ROLE_LABELS = {
    "ad_name": "Ad / creative name",
    "impressions": "Impressions",
    "clicks": "Clicks",
    "conversions": "Conversions / results",
    "spend": "Spend",
    "period": "Date / reporting start",
}
MAX_ROWS = 50_000
MAX_BYTES = 20 * 1024 * 1024

# Candidate column names per role, most specific first; compared after `normalise`.
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "Meta Ads Manager": {
        "ad_name": ("ad name",),
        "impressions": ("impressions",),
        "clicks": ("link clicks", "clicks all"),
        "conversions": ("results", "purchases", "leads", "conversions"),
        "spend": ("amount spent usd", "amount spent eur", "amount spent"),
        "period": ("reporting starts", "day"),
    },
    "Google Ads": {
        "ad_name": ("ad name", "image ad name", "ad", "asset"),
        "impressions": ("impr", "impressions"),
        "clicks": ("clicks",),
        "conversions": ("conversions", "conv", "all conv"),
        "spend": ("cost",),
        "period": ("day", "date", "week", "month"),
    },
    "LinkedIn Campaign Manager": {
        "ad_name": ("creative name", "ad name", "creative"),
        "impressions": ("impressions",),
        "clicks": ("clicks",),
        "conversions": ("conversions", "leads"),
        "spend": ("total spent", "amount spent", "spend"),
        "period": ("start date in utc", "start date", "date"),
    },
    "TikTok Ads Manager": {
        "ad_name": ("ad name",),
        "impressions": ("impression", "impressions"),
        "clicks": ("clicks destination", "clicks"),
        "conversions": ("conversions", "results"),
        "spend": ("cost", "total cost"),
        "period": ("by day", "date", "stat time day"),
    },
}
# Generic names tried for any role the chosen preset did not find.
GENERIC: dict[str, tuple[str, ...]] = {
    "ad_name": (
        "ad name",
        "creative name",
        "ad",
        "creative",
        "name",
        "file name",
        "asset",
    ),
    "impressions": ("impressions", "impr", "impression", "views"),
    "clicks": ("link clicks", "clicks", "clicks all"),
    "conversions": ("conversions", "results", "conv", "purchases", "leads"),
    "spend": ("spend", "cost", "amount spent", "total spent"),
    "period": ("day", "date", "reporting starts", "start date"),
}


class ResultsFileError(ValueError):
    """The file cannot be read as a results export (said in one line, for people)."""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (line number in the file, cells)


@dataclass(frozen=True)
class Row:
    line: int
    ad_name: str
    impressions: int
    clicks: int
    conversions: int
    spend: Decimal
    period: str


def normalise(name: str) -> str:
    """'Amount spent (USD)' -> 'amount spent usd'; 'Impr.' -> 'impr'."""
    name = name.replace("\ufeff", "").strip().lower()
    return " ".join(re.findall(r"[a-z0-9]+", name))


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ResultsFileError(
            f"The file is {len(data) // (1024 * 1024)} MB; the limit is {MAX_BYTES // (1024 * 1024)} MB."
        )
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Google Ads' "Excel CSV" is UTF-16 (with a BOM); NULs otherwise mean it is no text at all.
        raise ResultsFileError("This is not a CSV file (it holds binary data).")
    for encoding in (
        ("utf-16",)
        if data.startswith((b"\xff\xfe", b"\xfe\xff"))
        else (
            "utf-8-sig",
            "cp1252",
        )
    ):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ResultsFileError("The file is not UTF-8, UTF-16 or Windows-1252 text.")


def _known(cell: str) -> bool:
    name = normalise(cell)
    return any(name in names for names in GENERIC.values()) or any(
        name in names for preset in PRESETS.values() for names in preset.values()
    )


def read_table(data: bytes) -> Table:
    """The header and data rows, past any title lines the platform puts first (Google Ads puts a
    report name and a date range above the header) and without totals rows."""
    text = decode(data)
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            sample, delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            line = reader.line_num
            if header is None:
                if sum(_known(c) for c in cells) >= 2:
                    header = [c.replace("\ufeff", "").strip() for c in cells]
                elif line > 20:
                    break
                continue
            if not any(c.strip() for c in cells):
                continue
            first = cells[0].strip().lower() if cells else ""
            if first.startswith("total") or first in {"grand total", "totals"}:
                continue
            rows.append((line, cells))
            if len(rows) > MAX_ROWS:
                raise ResultsFileError(f"The file has more than {MAX_ROWS:,} rows.")
    except csv.Error as exc:
        raise ResultsFileError(f"Line {reader.line_num}: {exc}.") from exc
    if header is None:
        raise ResultsFileError(
            "No header row found: the file needs columns such as “Ad name”, “Impressions” and “Clicks”."
        )
    return Table(header=header, rows=rows)


def guess_mapping(header: Sequence[str]) -> tuple[str, dict[str, str]]:
    """(preset name, role -> column) that best fits the header; roles not found are left out."""
    by_name = {normalise(col): col for col in header}
    best: tuple[int, str, dict[str, str]] = (-1, "", {})
    for preset, roles in PRESETS.items():
        found = {}
        for role, names in roles.items():
            for name in names:
                if name in by_name:
                    found[role] = by_name[name]
                    break
        score = len(found) * 10 + sum(
            1 for role in found if roles[role][0] == normalise(found[role])
        )
        if score > best[0]:
            best = (score, preset, found)
    _, preset, found = best
    for role, names in GENERIC.items():
        if role in found:
            continue
        for name in names:
            if name in by_name and by_name[name] not in found.values():
                found[role] = by_name[name]
                break
    return preset, found


def check_mapping(header: Sequence[str], columns: Mapping[str, str]) -> list[str]:
    problems = []
    for role in REQUIRED:
        if not columns.get(role):
            problems.append(f"Choose the column for “{ROLE_LABELS[role]}”.")
    for role, column in columns.items():
        if role not in ROLES:
            problems.append(f"Unknown role “{role}”.")
        elif column and column not in header:
            problems.append(f"The file has no column “{column}”.")
    return problems


def _number(text: str, *, line: int, column: str) -> Decimal:
    cleaned = re.sub(r"[\s\u00a0$€£¥%]|[A-Z]{3}$", "", text.strip())
    if cleaned in {"", "-", "--", "—", "–"}:
        return Decimal(0)
    # "1,234.5" (thousands commas) or "1.234,5" / "12,5" (decimal comma).
    if "," in cleaned and "." in cleaned:
        if cleaned.rfind(",") > cleaned.rfind("."):
            cleaned = cleaned.replace(".", "").replace(",", ".")
        else:
            cleaned = cleaned.replace(",", "")
    elif "," in cleaned:
        head, _, tail = cleaned.rpartition(",")
        cleaned = (
            cleaned.replace(",", "")
            if len(tail) == 3
            else f"{head.replace(',', '')}.{tail}"
        )
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ResultsFileError(
            f"Line {line}: “{text}” in “{column}” is not a number."
        ) from None
    if value < 0 or not value.is_finite():
        raise ResultsFileError(f"Line {line}: “{text}” in “{column}” is negative.")
    return value


def rows(table: Table, columns: Mapping[str, str]) -> Iterator[Row]:
    """The table's rows through a mapping; a cell that is not a number raises with its line."""
    index = {role: table.header.index(col) for role, col in columns.items() if col}

    def cell(cells: list[str], role: str) -> str:
        i = index.get(role)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    for line, cells in table.rows:
        ad_name = cell(cells, "ad_name")[:500]
        if "\x00" in ad_name:
            raise ResultsFileError(f"Line {line}: the ad name holds a NUL character.")

        def count(role: str, cells: list[str] = cells, line: int = line) -> int:
            return int(
                _number(cell(cells, role), line=line, column=columns.get(role, role))
            )

        impressions = count("impressions")
        clicks = count("clicks")
        if clicks > impressions > 0:
            raise ResultsFileError(
                f"Line {line}: {clicks:,} clicks but only {impressions:,} impressions."
            )
        yield Row(
            line=line,
            ad_name=ad_name,
            impressions=impressions,
            clicks=clicks,
            conversions=count("conversions") if "conversions" in index else 0,
            spend=_number(
                cell(cells, "spend"), line=line, column=columns.get("spend", "")
            )
            if "spend" in index
            else Decimal(0),
            period=cell(cells, "period")[:60],
        )
