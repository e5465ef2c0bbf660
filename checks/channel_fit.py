"""Channel fit: how an image of a given size serves each of the brand's channel presets.

Fitting a preset means cropping to its aspect ratio (losing `crop` of the image) and scaling the
crop to its size. The crop is "too small" when it has fewer pixels across than the preset needs
(it would be upscaled); fitting ones are "exact", or "crop" with the share lost. The score is
the share of presets the image fits without upscaling (None without presets).
"""

from __future__ import annotations

from typing import Any

from campaigns.channels import CHANNELS_BY_KEY

# More than this share cropped away is reported as a poor fit (still not "too small").
CROP_WARN = 0.25


def check_channels(width: int, height: int, keys: list[str]) -> dict[str, Any] | None:
    presets = [CHANNELS_BY_KEY[key] for key in keys if key in CHANNELS_BY_KEY]
    if not presets:
        return None
    rows = []
    for preset in presets:
        image_ratio, target_ratio = width / height, preset.width / preset.height
        if image_ratio > target_ratio:
            crop_w, crop_h = height * target_ratio, float(height)
        else:
            crop_w, crop_h = float(width), width / target_ratio
        crop = 1 - (crop_w * crop_h) / (width * height)
        scale = preset.width / crop_w
        if scale > 1.001:
            fit = "too-small"
        elif crop < 0.005:
            fit = "exact"
        else:
            fit = "crop" if crop <= CROP_WARN else "heavy-crop"
        rows.append(
            {
                "key": preset.key,
                "label": preset.label,
                "size": [preset.width, preset.height],
                "aspect": preset.aspect,
                "crop": round(crop, 3),
                "upscale": round(scale, 2) if scale > 1.001 else None,
                "fit": fit,
            }
        )
    fitting = sum(1 for row in rows if row["fit"] != "too-small")
    return {
        "score": round(fitting / len(rows), 3),
        "too_small": [row["key"] for row in rows if row["fit"] == "too-small"],
        "presets": rows,
    }
