"""Parsing what people type into the batch builder: values, seeds, sizes and CSV rows.

Each parser answers what it understood and the problems, in words, for the field it came from.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from generation.batches.spec import MAX_SEED, MAX_SEEDS, Row, Size
from studio.input_rules import NUL_MESSAGE, has_nul

_SPLIT = re.compile(r"[\s,;]+")
_SIZE = re.compile(r"\A(\d{1,5})\s*[x×X*]\s*(\d{1,5})\Z")


def parse_values(text: str) -> tuple[str, ...]:
    """One value per line (commas are part of a value); blank lines and repeats dropped."""
    lines = (line.strip() for line in (text or "").splitlines())
    return tuple(dict.fromkeys(line for line in lines if line))


def parse_seeds(text: str) -> tuple[tuple[int, ...], list[str]]:
    """Whole numbers 0..2**32-1, separated by commas, spaces or lines; repeats dropped."""
    seeds: list[int] = []
    problems: list[str] = []
    for token in _SPLIT.split((text or "").strip()):
        if not token:
            continue
        try:
            value = int(token)
        except ValueError:
            problems.append(f"“{token}” is not a whole number.")
            continue
        if not 0 <= value <= MAX_SEED:
            problems.append(
                f"Seed {value} is out of range: seeds run from 0 to {MAX_SEED:,}."
            )
            continue
        if value not in seeds:
            seeds.append(value)
    if len(seeds) > MAX_SEEDS:
        problems.append(f"At most {MAX_SEEDS} seeds per batch ({len(seeds)} given).")
    return tuple(seeds), problems


def parse_sizes(text: str) -> tuple[tuple[Size, ...], list[str]]:
    """Custom sizes "1024x768", "1024×768", separated by commas, semicolons or lines."""
    sizes: list[Size] = []
    problems: list[str] = []
    for token in re.split(r"[,;\n]+", text or ""):
        token = token.strip()
        if not token:
            continue
        match = _SIZE.match(token)
        if not match:
            problems.append(
                f"“{token}” is not a size: write width×height, e.g. 1024x768."
            )
            continue
        size = Size(int(match.group(1)), int(match.group(2)))
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes), problems


def parse_rows(
    text: str, variables: Sequence[str]
) -> tuple[tuple[Row, ...], list[str]]:
    """CSV rows, one variant each. The header (line 1) names the template's variables.

    Comma, semicolon or tab separated (sniffed from the header); quotes as in RFC 4180, so a
    value may hold the separator or a line break. Problems name their line in the file.
    """
    text = (text or "").lstrip("\ufeff")
    if has_nul(text):
        return (), [NUL_MESSAGE.format(what="The CSV")]
    if not text.strip():
        return (), [
            "Paste or upload CSV rows: a header line with the variable names, then one row per variant."
        ]
    header_line = text.splitlines()[0]
    try:
        dialect: Any = csv.Sniffer().sniff(header_line, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    problems: list[str] = []
    try:
        header = [name.strip() for name in next(reader)]
    except (StopIteration, csv.Error) as exc:
        return (), [f"Line 1: the header cannot be read ({exc})."]
    known = list(variables)
    for name in sorted({n for n in header if header.count(n) > 1}):
        problems.append(f"Line 1: the column “{name}” appears twice.")
    for name in header:
        if name and name not in known:
            listed = ", ".join(known) if known else "none"
            problems.append(
                f"Line 1: “{name}” is not a variable of this template (its variables: {listed})."
            )
        elif not name:
            problems.append("Line 1: a column has no name.")
    for name in known:
        if name not in header:
            problems.append(f"Line 1: no column for {{{name}}}.")
    if problems:
        return (), problems

    rows: list[Row] = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"Line {start}: {exc}.")
            break
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            problems.append(
                f"Line {start}: {len(record)} values for {len(header)} columns."
            )
            continue
        values = {name: cell.strip() for name, cell in zip(header, record, strict=True)}
        empty = [name for name, value in values.items() if not value]
        if empty:
            problems.append(
                f"Line {start}: "
                + ", ".join(f"{{{name}}}" for name in empty)
                + (" is empty." if len(empty) == 1 else " are empty.")
            )
            continue
        rows.append(Row(start, values))
    if not rows and not problems:
        problems.append("The CSV has a header but no rows.")
    return tuple(rows), problems
