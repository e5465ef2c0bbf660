"""Catalog test data made in the test: a shop CSV and a ZIP of its images."""

from __future__ import annotations

import csv
import io
import zipfile

from tests.factories import image_bytes

ROLES = ("front", "side", "label")


def colour_for(index: int, role: int, version: int = 0) -> tuple[int, int, int]:
    # Distinct bytes per product, role and version: no two images are the same file.
    return (index % 256, (index // 256) * 16 + role * 4 + version, 100 + role)


def make_catalog(
    count: int, *, changed: set[int] = frozenset(), roles: tuple[str, ...] = ROLES
) -> tuple[list[list[str]], dict[str, bytes]]:
    """Rows (header first) and ZIP members for `count` products; `changed` get new names and images."""
    header = ["SKU", "Name", "Colour", "Material", *(f"image_{r}" for r in roles)]
    rows = [header]
    files: dict[str, bytes] = {}
    for i in range(count):
        version = 1 if i in changed else 0
        row = [f"SKU-{i:04d}", f"Scarf {i}" + (" v2" if version else ""), "red", "wool"]
        for r, role in enumerate(roles):
            name = f"img/{i:04d}_{role}{'_v2' if version else ''}.png"
            files[name] = image_bytes(size=(32, 32), color=colour_for(i, r, version))
            row.append(name)
        rows.append(row)
    return rows, files


def to_csv(rows: list[list[str]], *, delimiter: str = ",", bom: bool = False) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return (("\ufeff" if bom else "") + out.getvalue()).encode()


def to_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()
