"""Each check tells a good image from a bad one, on images drawn here (Pillow, DejaVu Sans)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from coloraide import Color

from checks import channel_fit, matching, palette, text
from checks.measure import Inputs, Reference, measure
from checks.pixels import decode
from tests.checks import drawing as d

# On CI (CI=1, .ci/run) a missing tesseract fails these tests instead of skipping them.
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None and not os.environ.get("CI"),
    reason="tesseract is not installed (apt-get install -y tesseract-ocr; scripts/test.sh does)",
)
OFF = ["#2E7D32", "#6A1B9A", "#00ACC1"]


def test_opencv_lab_agrees_with_coloraide_lab_d65() -> None:
    for hex_ in ("#1A1A2E", "#FF6B6B", "#F4D35E", "#00ACC1", "#808080"):
        r, g, b = (int(hex_[i : i + 2], 16) for i in (1, 3, 5))
        ours = palette.to_lab(np.array([[[r, g, b]]], np.uint8)).reshape(3)
        theirs = Color(hex_).convert("lab-d65").coords()
        assert palette.delta_e(ours, theirs) < 0.5, hex_


def test_ciede2000_matches_the_published_test_pair() -> None:
    # Sharma, Wu, Dalal (2005), pair 1: ΔE00 = 2.0425.
    assert palette.delta_e([50, 2.6772, -79.7751], [50, 0, -82.7485]) == pytest.approx(
        2.0425, abs=1e-3
    )


def test_a_scene_in_the_brand_palette_scores_high_and_an_off_palette_one_low() -> None:
    expected = palette.expected_colours(d.BRAND, "")
    good = palette.check_palette(
        decode(d.jpeg(d.painted_scene([c["hex"] for c in d.BRAND]))),
        expected,
        tolerance=10,
    )
    bad = palette.check_palette(
        decode(d.jpeg(d.painted_scene(OFF))), expected, tolerance=10
    )
    assert good["score"] > 0.9
    assert bad["score"] < 0.3
    assert all(c["present"] for c in good["expected"])
    assert not any(c["present"] for c in bad["expected"][:2])
    off = [row for row in bad["dominant"] if row["status"] == "off"]
    assert (
        sum(row["coverage"] for row in off) > 0.8
    )  # which off-brand colours, and how much
    assert {row["nearest"] for row in good["dominant"] if row["status"] == "brand"} == {
        c["hex"] for c in d.BRAND
    }


def test_hex_colours_in_the_prompt_count_as_expected() -> None:
    image = decode(d.png(d.painted_scene(OFF)))
    brand_only = palette.check_palette(
        image, palette.expected_colours(d.BRAND, ""), tolerance=10
    )
    prompt = "A poster in #2E7D32, #6A1B9A and #00ACC1"
    with_prompt = palette.check_palette(
        image, palette.expected_colours(d.BRAND, prompt), tolerance=10
    )
    assert [c["source"] for c in with_prompt["expected"]][-3:] == ["prompt"] * 3
    assert with_prompt["score"] > brand_only["score"] + 0.5


def test_neutral_white_and_black_are_not_held_against_the_palette() -> None:
    scene = d.painted_scene(["#FFFFFF", "#FF6B6B", "#111111"])
    result = palette.check_palette(
        decode(d.png(scene)), palette.expected_colours(d.BRAND, ""), tolerance=10
    )
    assert result["neutral_coverage"] > 0.3
    assert result["adherence"] > 0.9


def test_quoted_strings_come_from_plain_and_structured_prompts() -> None:
    assert text.quoted_strings(
        'A poster reading "Warm Up, Harbour" and “50 % OFF”, $4.50'
    ) == [
        "Warm Up, Harbour",
        "50 % OFF",
    ]
    structured = '{"scene": "a café sign saying \\"OPEN\\"", "text": "Autumn Blend", "colors": ["#FF6B6B"]}'
    assert text.quoted_strings(structured) == ["OPEN", "Autumn Blend"]
    assert text.quoted_strings("No quoted text here") == []


def test_edit_distance_finds_the_best_stretch_of_the_ocr_text() -> None:
    exact = text.compare("50 % OFF", "SALE\n50% off\ntoday")
    assert exact["exact"] and exact["score"] == 1.0
    typo = text.compare("Warm Up, Harbour", "menu\nWarm Up, Harbuor\n")
    assert typo["rendered"] == "warm up, harbuor"
    assert typo["score"] == pytest.approx(1 - 2 / 16, abs=1e-3)
    missing = text.compare("Warm Up, Harbour", "")
    assert missing["score"] == 0.0


@needs_tesseract
def test_ocr_tells_right_text_from_misspelled_text() -> None:
    asked = ["Warm Up, Harbour", "50 % OFF"]
    right = text.check_text(decode(d.png(d.text_poster(asked))), asked)
    wrong = text.check_text(
        decode(d.png(d.text_poster(["Wram Up, Harbor", "60 % OFF"]))), asked
    )
    assert right is not None and wrong is not None
    assert right["score"] == 1.0, right
    assert all(row["exact"] for row in right["strings"])
    assert wrong["score"] < 0.9
    assert not any(row["exact"] for row in wrong["strings"]), wrong
    assert text.check_text(decode(d.png(d.text_poster(asked))), []) is None


@needs_tesseract
def test_ocr_reads_light_text_on_a_dark_ground() -> None:
    from PIL import ImageDraw

    image = d.text_poster([])
    ImageDraw.Draw(image).rectangle((0, 0, 1200, 800), fill="#1A1A2E")
    ImageDraw.Draw(image).text(
        (80, 300), "Night Roast", font=d.font(90), fill="#F4D35E"
    )
    result = text.check_text(decode(d.png(image)), ["Night Roast"])
    assert result is not None and result["score"] == 1.0, result


def test_a_logo_pasted_into_a_scene_is_found_and_an_absent_one_is_not() -> None:
    logo = decode(d.png(d.logo()))
    scene = d.cluttered_background()
    present = decode(
        d.jpeg(d.paste(scene, d.logo(), at=(700, 420), scale=0.7, angle=25))
    )
    found = matching.find(present, logo)
    absent = matching.find(decode(d.jpeg(scene)), logo)
    assert found["found"] and found["score"] == 1.0, found
    assert not absent["found"] and absent["score"] == 0.0, absent
    # The region lies where the logo was pasted (original pixels).
    xs, ys = zip(*found["region"], strict=True)
    assert 650 < sum(xs) / 4 < 950 and 370 < sum(ys) / 4 < 680


def test_a_product_rotated_and_scaled_into_a_scene_is_found_with_its_colour() -> None:
    product = decode(d.png(d.product()))
    scene = d.cluttered_background(seed=11)
    placed = decode(
        d.jpeg(d.paste(scene, d.product(), at=(250, 200), scale=1.4, angle=-18))
    )
    found = matching.find(placed, product)
    assert found["found"], found
    colour = matching.product_colour(placed, product, found["region"])
    assert colour["delta_e"] < 5, colour
    assert not matching.find(decode(d.jpeg(scene)), product)["found"]
    # The same bag recoloured: found by its shape, but its colour is far off.
    recoloured = np.array(
        d.paste(scene, d.product(), at=(250, 200), scale=1.4, angle=-18)
    )
    green = (
        (recoloured[:, :, 1] > 100)
        & (recoloured[:, :, 0] < 80)
        & (recoloured[:, :, 2] < 80)
    )
    recoloured[green] = [200, 30, 30]
    from PIL import Image

    red = decode(d.jpeg(Image.fromarray(recoloured)))
    red_found = matching.find(red, product)
    if red_found["found"]:
        assert (
            matching.product_colour(red, product, red_found["region"])["delta_e"] > 20
        )


def test_channel_fit_flags_presets_the_image_is_too_small_for() -> None:
    result = channel_fit.check_channels(
        1024, 1024, ["instagram-square", "web-hero", "display-mrec"]
    )
    assert result is not None
    fits = {row["key"]: row["fit"] for row in result["presets"]}
    assert fits == {
        "instagram-square": "too-small",
        "web-hero": "too-small",
        "display-mrec": "crop",
    }
    big = channel_fit.check_channels(2048, 2048, ["instagram-square", "web-hero"])
    assert big is not None and big["score"] == 1.0
    assert {row["key"]: row["fit"] for row in big["presets"]} == {
        "instagram-square": "exact",
        "web-hero": "heavy-crop",
    }
    assert channel_fit.check_channels(1024, 1024, []) is None


def test_measure_gives_each_check_a_score_from_0_to_1() -> None:
    scene = d.paste(
        d.painted_scene([c["hex"] for c in d.BRAND]),
        d.logo(),
        at=(400, 300),
        scale=0.8,
        angle=10,
    )
    result = measure(
        decode(d.png(scene)),
        Inputs(
            palette=d.BRAND,
            references=[Reference("logo", decode(d.png(d.logo())))],
            formats=["instagram-square"],
        ),
    )
    assert 0.8 < result["palette"]["score"] <= 1
    assert result["text"] is None  # nothing quoted, nothing read
    assert result["logo"]["score"] == 1.0
    assert result["product"] is None
    assert result["channels"]["too_small"] == ["instagram-square"]
