"""Reading a shop's product CSV, the pure part: bytes in, rows with their line numbers out.

Shops export CSVs in many shapes, so this is liberal in what it reads: UTF-8 with or without a
BOM (else Windows-1252), comma, semicolon, tab or pipe separated (sniffed from the header),
quoted fields holding separators or line breaks (RFC 4180), headers in any case and with spaces
or dashes ("Image Front", "image-front"). Columns: `sku` (required; also "SKU", "product_sku"),
`name` (also "title", "product_name"), `image_<role>` (also "<role>_image"), and every other
column is an attribute. A row's line is where it starts in the file (the header is line 1).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from studio.input_rules import has_nul

MAX_ROWS = 5000
SKU_MAX = 100
NAME_MAX = 300
SKU_NAMES = ("sku", "product_sku", "article_number", "item_sku", "sku_code")
NAME_NAMES = ("name", "title", "product_name", "product_title")
_IMAGE_PREFIX = re.compile(r"\A(?:image|img|picture|photo)_(?P<role>.+)\Z")
_IMAGE_SUFFIX = re.compile(r"\A(?P<role>.+)_(?:image|img)\Z")


class CatalogFileError(Exception):
    """The file as a whole cannot be read (no header, no sku column, too many rows...)."""


@dataclass(frozen=True)
class ImageCell:
    role: str
    source: str  # a file name inside the ZIP/folder, or a URL


@dataclass(frozen=True)
class CatalogRow:
    line: int
    sku: str
    name: str
    attributes: dict[str, str]
    images: tuple[ImageCell, ...]


@dataclass
class CatalogFile:
    rows: list[CatalogRow] = field(default_factory=list)
    # (line, sku, message) for rows refused while reading.
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    image_roles: list[str] = field(default_factory=list)
    attribute_names: list[str] = field(default_factory=list)


def _key(header: str) -> str:
    return re.sub(r"[\s\-.]+", "_", header.strip().lower()).strip("_")


def image_role(header_key: str) -> str | None:
    """The role an image column holds ("image_on_model" -> "on-model"), or None."""
    if header_key in ("image", "img", "image_url", "main_image"):
        return "main"
    match = _IMAGE_PREFIX.match(header_key) or _IMAGE_SUFFIX.match(header_key)
    if not match:
        return None
    role = match.group("role").replace("_", "-")
    return None if role in ("url", "urls") else role


def decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _dialect(header_line: str) -> type[csv.Dialect]:
    """RFC 4180 quoting ("" inside quotes) with the header's separator. Only the separator is
    sniffed: from a header alone the sniffer guesses no quoting rules, and a later quoted value
    with "" in it would be misread."""
    try:
        delimiter = csv.Sniffer().sniff(header_line, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter
    return Dialect


def read_catalog(data: bytes, *, max_rows: int = MAX_ROWS) -> CatalogFile:
    """Parse the file; problems of a row go to `errors` with its line, the rest are `rows`."""
    text = decode(data).lstrip("\ufeff")
    if has_nul(text):
        raise CatalogFileError(
            "The CSV contains NUL characters: is it really a CSV file?"
        )
    if not text.strip():
        raise CatalogFileError("The CSV is empty.")
    header_line = text.splitlines()[0]
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(header_line))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise CatalogFileError(f"Line 1: the header cannot be read ({exc}).") from exc
    keys = [_key(h) for h in header]
    sku_col = next((keys.index(k) for k in SKU_NAMES if k in keys), None)
    if sku_col is None:
        raise CatalogFileError(
            "Line 1: no “sku” column (the header has: " + ", ".join(header) + ")."
        )
    name_col = next((keys.index(k) for k in NAME_NAMES if k in keys), None)
    images: list[tuple[int, str]] = []
    attributes: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, key in enumerate(keys):
        if index in (sku_col, name_col) or not key:
            continue
        if key in seen:
            raise CatalogFileError(
                f"Line 1: the column “{header[index]}” appears twice."
            )
        seen.add(key)
        role = image_role(key)
        if role is not None:
            images.append((index, role))
        else:
            attributes.append((index, key))
    result = CatalogFile(
        image_roles=[role for _, role in images],
        attribute_names=[name for _, name in attributes],
    )
    line = reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(
                (start, "", f"the CSV cannot be read from here ({exc})")
            )
            break
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(result.rows) + len(result.errors) >= max_rows:
            raise CatalogFileError(
                f"More than {max_rows:,} rows: split the file into several imports."
            )
        record += [""] * (len(header) - len(record))
        sku = record[sku_col].strip()
        if len(record) > len(header) and any(c.strip() for c in record[len(header) :]):
            result.errors.append(
                (start, sku, f"{len(record)} values for {len(header)} columns")
            )
            continue
        if not sku:
            result.errors.append((start, "", "no SKU"))
            continue
        if len(sku) > SKU_MAX:
            result.errors.append(
                (start, sku[:20], f"the SKU is over {SKU_MAX} characters")
            )
            continue
        name = record[name_col].strip() if name_col is not None else ""
        result.rows.append(
            CatalogRow(
                line=start,
                sku=sku,
                name=(name or sku)[:NAME_MAX],
                attributes={
                    key: record[index].strip()
                    for index, key in attributes
                    if record[index].strip()
                },
                images=tuple(
                    ImageCell(role, record[index].strip())
                    for index, role in images
                    if record[index].strip()
                ),
            )
        )
    return result
