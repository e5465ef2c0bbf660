"""A pack's ZIP: each asset's renditions (every preset × format, cropped, encoded, signed) made on
worker threads and streamed into the archive in asset order, then the manifests."""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from PIL import Image
from zipstream import ZipStream

from exports import c2pa_sign, naming
from exports import presets as presets_mod
from exports.crop import Plan, plan
from exports.manifest import (
    approvals_for,
    asset_record,
    described_assets,
    manifest_csv,
    manifest_json,
    readme,
)
from exports.models import ExportPack, PackState
from exports.presets import Preset
from exports.render import CONTENT_TYPES, EXTENSIONS, prepare, render, xmp_packet
from generation.models import Asset


class PackCanceled(Exception):
    pass


@dataclass
class _Job:
    """One asset's renditions, rendered off the main thread: plain data in, bytes out."""

    original: bytes
    original_type: str
    stem: str
    presets: list[Preset]
    formats: list[str]
    focal: tuple[float | None, float | None]
    max_upscale: float
    xmp: bytes
    model_label: str
    c2pa_key: c2pa_sign.SigningKey | None


def _render_job(job: _Job) -> list[tuple[Preset, Plan, str, str, bytes]]:
    """Decode, then crop/resize/encode (and sign) every preset × format of one asset."""
    # Not a `with` block: closing an image frees its pixels, and prepare() may return it as is.
    opened = Image.open(io.BytesIO(job.original))
    opened.load()
    image = prepare(opened)
    signer = job.c2pa_key.signer() if job.c2pa_key else None
    # The original's own C2PA manifest (a provider's credential) is kept as the ingredient.
    parent = (
        job.original
        if signer and c2pa_sign.has_manifest(job.original, job.original_type)
        else None
    )
    out = []
    # No presets (a pack with chosen names): every image at its own size, named without a folder.
    for preset in job.presets or [
        Preset("original", "Original size", image.width, image.height)
    ]:
        p = plan(
            image.width,
            image.height,
            preset.width,
            preset.height,
            focal_x=job.focal[0],
            focal_y=job.focal[1],
            max_upscale=job.max_upscale,
        )
        for fmt in job.formats:
            data = render(image, p, fmt, xmp=job.xmp)
            arcname = (
                f"{preset.key}/{job.stem}.{EXTENSIONS[fmt]}"
                if job.presets
                else f"{job.stem}.{EXTENSIONS[fmt]}"
            )
            if signer is not None:
                data = c2pa_sign.sign(
                    data,
                    fmt,
                    signer=signer,
                    title=arcname,
                    crop=p.box,
                    size=(p.width, p.height),
                    model_label=job.model_label,
                    original=parent,
                    original_type=job.original_type,
                )
            out.append((preset, p, fmt, arcname, data))
    return out


def zip_chunks(pack: ExportPack, flagged: list[dict[str, Any]]) -> Iterator[bytes]:
    """The ZIP, in asset order. EXPORT_BUILD_THREADS assets render at once (Pillow releases
    the GIL while decoding, resampling and encoding); at most that many plus one are held in
    memory, however many go in."""
    presets = [Preset.from_json(p) for p in pack.presets]
    assets = described_assets(pack.workspace_id, pack.asset_ids)
    approvals = approvals_for(pack.asset_ids)
    max_upscale = settings.EXPORT_MAX_UPSCALE
    c2pa_key = c2pa_sign.configured_key()
    threads = max(1, settings.EXPORT_BUILD_THREADS)
    rows: list[dict[str, Any]] = []
    zs = ZipStream(sized=False)  # stored: the images are compressed already
    names: set[str] = set()
    pending: deque[tuple[dict[str, Any], Future]] = deque()
    done = 0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="export") as pool:
        queue = iter(enumerate(assets))
        while True:
            while len(pending) < threads + 1:
                nxt = next(queue, None)
                if nxt is None:
                    break
                index, asset = nxt
                if (
                    index
                    and not ExportPack.objects.filter(
                        pk=pack.pk, state=PackState.RUNNING
                    ).exists()
                ):
                    raise PackCanceled
                common, job = _job(asset, approvals, names, presets, pack, max_upscale)
                job.c2pa_key = c2pa_key
                pending.append((common, pool.submit(_render_job, job)))
            if not pending:
                break
            common, future = pending.popleft()
            for preset, p, fmt, arcname, data in future.result():
                if p.too_small and fmt == pack.formats[0]:
                    flagged.append(
                        {
                            "asset": common["short_id"],
                            "preset": preset.key,
                            "needed": round(p.scale, 2),
                        }
                    )
                zs.add(data, arcname)
                rows.append(
                    {
                        "file": arcname,
                        **common,
                        "preset": preset.key,
                        "preset_width": preset.width,
                        "preset_height": preset.height,
                        "width": p.width,
                        "height": p.height,
                        "format": fmt,
                        "content_type": CONTENT_TYPES[fmt],
                        "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "too_small": p.too_small,
                        "scale": round(p.scale, 4),
                        "c2pa": c2pa_key is not None,
                    }
                )
                del data
                yield from zs.all_files()
            done += max(1, len(presets)) * len(pack.formats)
            ExportPack.objects.filter(pk=pack.pk, state=PackState.RUNNING).update(
                done=done
            )
    manifest = manifest_json(pack, presets, rows, flagged, max_upscale)
    zs.add(json.dumps(manifest, indent=2, ensure_ascii=False).encode(), "manifest.json")
    zs.add(manifest_csv(rows), "manifest.csv")
    zs.add(readme(pack, presets, rows, flagged, max_upscale), "README.txt")
    yield from zs.finalize()


def _job(
    asset: Asset,
    approvals: dict[int, list[dict[str, str]]],
    names: set[str],
    presets: list[Preset],
    pack: ExportPack,
    max_upscale: float,
) -> tuple[dict[str, Any], _Job]:
    g = asset.generation
    version = g.template_version
    brand = g.brand or (asset.campaign.brand if asset.campaign else None)
    stem = naming.stem(
        campaign=asset.campaign.name if asset.campaign else "",
        template=version.template.name if version else "",
        variables=g.variables or {},
        code=asset.code,
    )
    chosen_name = pack.names.get(str(asset.pk)) if pack.names else None
    if chosen_name:  # a pack with chosen names (catalog: <sku>/<shot>_<n>)
        stem = chosen_name
    if stem in names:  # two assets with the same name and short id: lengthen the id
        stem = f"{stem}-{asset.code.hex[8:16]}"
    names.add(stem)
    with asset.file.open("rb") as handle:
        original = handle.read()
    job = _Job(
        original=original,
        original_type=mimetypes.guess_type(asset.file.name or "")[0] or "image/png",
        stem=stem,
        presets=presets,
        formats=list(pack.formats),
        focal=(asset.focal_x, asset.focal_y),
        max_upscale=max_upscale,
        xmp=xmp_packet(
            model=g.model,
            backend=g.backend,
            description=g.prompt if presets_mod.embeds_prompt(brand) else None,
        ),
        model_label=f"FLUX.2 {g.model} ({g.backend})",
        c2pa_key=None,
    )
    return asset_record(asset, approvals), job
