"""The pure part of batches: matrix and CSV expansion, seeds, sizes, and planning with the real
backends' rules and prices (docs/providers.md)."""

from __future__ import annotations

from decimal import Decimal

from django.test import SimpleTestCase

from campaigns.prompting import BrandKit
from generation.backends.base import BackendConfig, ReferenceInput
from generation.backends.bfl import MODELS as BFL_MODELS
from generation.backends.bfl import BFLBackend
from generation.backends.preview.backend import PreviewBackend
from generation.batches.parsing import (
    parse_rows,
    parse_seeds,
    parse_sizes,
    parse_values,
)
from generation.batches.plan import TemplateInput, fit_size, plan_batch
from generation.batches.spec import FIXED, MAX_SEED, BatchSpec, Row, Seeds, Size, Target

BODY = 'Poster: "{headline}" above a coffee bag {scene}, warm light'
TEMPLATE = TemplateInput(kind="text", body=BODY, variables=("headline", "scene"))
BACKENDS = {
    "preview": PreviewBackend(BackendConfig()),
    "bfl": BFLBackend(BackendConfig(api_key="bfl_test_key_1234")),
}
KIT = BrandKit(words_to_avoid=("cheap",))


def spec(**overrides: object) -> BatchSpec:
    values: dict[str, object] = {
        "mode": "matrix",
        "matrix": (
            ("headline", ("Autumn blend", "Half price", "New roast")),
            ("scene", ("on marble", "in a cafe")),
        ),
        "seeds": Seeds(FIXED, values=(1, 2)),
        "targets": (Target("preview", "flux-2-pro"),),
        "sizes": (Size(1024, 1024),),
    }
    values.update(overrides)
    return BatchSpec(**values)  # type: ignore[arg-type]


def plan(s: BatchSpec, template: TemplateInput = TEMPLATE, **kwargs: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {
        "spec": s,
        "template": template,
        "brand": KIT,
        "backends": BACKENDS,
        "references": {},
        "max_size": 1000,
    }
    options.update(kwargs)
    return plan_batch(**options)  # type: ignore[arg-type]


class MatrixTests(SimpleTestCase):
    def test_the_matrix_is_the_cartesian_product_in_template_order(self) -> None:
        combos = [values for values, _row in spec().combinations()]
        self.assertEqual(len(combos), 6)
        self.assertEqual(combos[0], {"headline": "Autumn blend", "scene": "on marble"})
        self.assertEqual(combos[1], {"headline": "Autumn blend", "scene": "in a cafe"})
        self.assertEqual(combos[-1], {"headline": "New roast", "scene": "in a cafe"})

    def test_count_is_combinations_times_seeds_targets_and_sizes(self) -> None:
        s = spec(
            targets=(Target("preview", "flux-2-pro"), Target("bfl", "flux-2-pro")),
        )
        self.assertEqual(s.count, 3 * 2 * 2 * 2)
        result = plan(s)
        self.assertEqual(result.errors, {})
        self.assertEqual(len(result.variants), 24)
        self.assertEqual(len(result.prompts), 6)
        self.assertEqual(
            result.prompts[0][1],
            'Poster: "Autumn blend" above a coffee bag on marble, warm light',
        )

    def test_values_are_one_per_line_without_blanks_or_repeats(self) -> None:
        self.assertEqual(
            parse_values("Half price, today\n\n  New roast \nHalf price, today\n"),
            ("Half price, today", "New roast"),
        )

    def test_the_spec_survives_its_json_form(self) -> None:
        s = spec(
            seeds=Seeds("random", count=3, rng_seed=99),
            sizes=(Size(1080, 1080, "instagram-square", "Instagram"), Size(512, 768)),
            references={"product": "abc"},
        )
        self.assertEqual(BatchSpec.from_json(s.as_json()), s)


class SeedTests(SimpleTestCase):
    def test_random_seeds_come_from_the_recorded_rng_seed(self) -> None:
        seeds = Seeds("random", count=4, rng_seed=2024)
        self.assertEqual(
            seeds.resolve(), Seeds("random", count=4, rng_seed=2024).resolve()
        )
        self.assertNotEqual(
            seeds.resolve(), Seeds("random", count=4, rng_seed=7).resolve()
        )
        self.assertTrue(all(0 <= s <= MAX_SEED for s in seeds.resolve()))

    def test_every_combination_runs_with_the_same_seeds(self) -> None:
        result = plan(spec(seeds=Seeds("random", count=2, rng_seed=5)))
        by_combination: dict[int, set[int]] = {}
        for v in result.variants:
            by_combination.setdefault(v.combination, set()).add(v.seed)
        self.assertEqual(len({frozenset(s) for s in by_combination.values()}), 1)

    def test_seeds_out_of_range_or_not_numbers_are_reported(self) -> None:
        seeds, problems = parse_seeds("1, 2, -5, 4294967296, abc, 2")
        self.assertEqual(seeds, (1, 2))
        self.assertEqual(len(problems), 3)
        self.assertIn("Seed -5 is out of range", problems[0])
        self.assertIn("4,294,967,295", problems[1])
        self.assertIn("“abc” is not a whole number", problems[2])

    def test_an_out_of_range_seed_in_a_spec_is_an_error_at_seeds(self) -> None:
        result = plan(spec(seeds=Seeds(FIXED, values=(1, 2**32))))
        self.assertIn("out of range", result.errors["seeds"][0])
        self.assertEqual(result.variants, [])


class CsvTests(SimpleTestCase):
    def test_rows_follow_the_header_with_quotes_and_line_numbers(self) -> None:
        text = (
            "headline,scene\n"
            '"Half price, today",on marble\n'
            "\n"
            '"Two\nlines",in a cafe\n'
            "New roast,outside\n"
        )
        rows, problems = parse_rows(text, ["headline", "scene"])
        self.assertEqual(problems, [])
        self.assertEqual([r.line for r in rows], [2, 4, 6])
        self.assertEqual(rows[0].values["headline"], "Half price, today")
        self.assertEqual(rows[1].values["headline"], "Two\nlines")

    def test_semicolons_and_a_byte_order_mark_are_understood(self) -> None:
        rows, problems = parse_rows(
            "\ufeffscene;headline\nbeach;Sale\n", ["headline", "scene"]
        )
        self.assertEqual(problems, [])
        self.assertEqual(rows[0].values, {"headline": "Sale", "scene": "beach"})

    def test_bad_rows_are_reported_by_line(self) -> None:
        text = "headline,scene\nOk,fine\nonly one\nA,B,C\n,empty headline\nLast,row\n"
        rows, problems = parse_rows(text, ["headline", "scene"])
        self.assertEqual([r.line for r in rows], [2, 6])
        self.assertEqual(
            problems,
            [
                "Line 3: 1 values for 2 columns.",
                "Line 4: 3 values for 2 columns.",
                "Line 5: {headline} is empty.",
            ],
        )

    def test_the_header_must_name_exactly_the_variables(self) -> None:
        rows, problems = parse_rows("headline,mood\nA,B\n", ["headline", "scene"])
        self.assertEqual(rows, ())
        self.assertIn(
            "Line 1: “mood” is not a variable of this template (its variables: headline, scene).",
            problems,
        )
        self.assertIn("Line 1: no column for {scene}.", problems)

    def test_rows_mode_plans_one_combination_per_row(self) -> None:
        rows, _ = parse_rows("headline,scene\nA,here\nB,there\n", ["headline", "scene"])
        result = plan(spec(mode="rows", rows=rows))
        self.assertEqual(result.count, 2 * 2)
        self.assertEqual(len(result.variants), 4)

    def test_an_avoided_word_in_a_row_names_its_line(self) -> None:
        result = plan(
            spec(
                mode="rows",
                rows=(
                    Row(2, {"headline": "Fine", "scene": "here"}),
                    Row(3, {"headline": "Cheap deal", "scene": "there"}),
                ),
            )
        )
        self.assertEqual(len(result.errors["rows"]), 1)
        self.assertTrue(result.errors["rows"][0].startswith("Row 2 (line 3): “cheap”"))


class ValidationTests(SimpleTestCase):
    def test_an_empty_axis_is_an_error_at_its_field(self) -> None:
        result = plan(spec(matrix=(("headline", ("A",)), ("scene", ()))))
        self.assertIn(
            "Give at least one value for {scene}", result.errors["matrix_scene"][0]
        )

    def test_a_missing_or_extra_variable_is_reported(self) -> None:
        result = plan(spec(matrix=(("headline", ("A",)), ("mood", ("calm",)))))
        self.assertIn("matrix_scene", result.errors)
        self.assertIn("“mood” is not a variable", result.errors["__all__"][0])

    def test_a_word_to_avoid_in_a_value_is_reported_at_that_variable(self) -> None:
        result = plan(
            spec(matrix=(("headline", ("Cheap and cheerful",)), ("scene", ("x",))))
        )
        self.assertEqual(list(result.errors), ["matrix_headline"])
        self.assertIn(
            "“cheap” is on the brand's words to avoid",
            result.errors["matrix_headline"][0],
        )

    def test_a_word_to_avoid_in_the_template_is_reported_at_the_template(self) -> None:
        template = TemplateInput(
            kind="text",
            body="A cheap {headline} {scene}",
            variables=("headline", "scene"),
        )
        result = plan(spec(), template=template)
        self.assertEqual(list(result.errors), ["template"])

    def test_a_size_a_backend_cannot_make_is_reported_at_sizes(self) -> None:
        result = plan(
            spec(targets=(Target("bfl", "flux-2-pro"),), sizes=(Size(1000, 1000),))
        )
        self.assertEqual(list(result.errors), ["sizes"])
        self.assertIn("1000×1000 on bfl:flux-2-pro: ", result.errors["sizes"][0])
        self.assertIn("must be a multiple of 16", result.errors["sizes"][0])

    def test_too_many_references_for_the_model_are_reported_at_references(self) -> None:
        slots = tuple(
            {"name": f"r{i}", "role": "product", "required": True} for i in range(5)
        )
        body = "{headline} {scene} " + " ".join(f"{{ref:r{i}}}" for i in range(5))
        template = TemplateInput(
            kind="text",
            body=body,
            variables=("headline", "scene"),
            reference_slots=slots,
        )
        refs = {
            f"r{i}": ReferenceInput("product", b"", "image/png", 1024, 1024)
            for i in range(5)
        }
        result = plan(
            spec(targets=(Target("bfl", "flux-2-klein-4b"),)),
            template=template,
            references=refs,
        )
        self.assertEqual(list(result.errors), ["references"])
        self.assertIn(
            "takes at most 4 reference images (5 given)", result.errors["references"][0]
        )
        ok = plan(
            spec(targets=(Target("bfl", "flux-2-pro"),)),
            template=template,
            references=refs,
        )
        self.assertEqual(ok.errors, {})

    def test_an_unconfigured_backend_is_reported_at_targets(self) -> None:
        result = plan(spec(targets=(Target("fal", "flux-2-pro"),)))
        self.assertIn("not configured", result.errors["targets"][0])

    def test_a_batch_over_the_maximum_size_is_refused_with_the_numbers(self) -> None:
        result = plan(spec(), max_size=10)
        self.assertEqual(
            result.errors["__all__"],
            [
                "This batch would make 12 images; one batch makes at most 10. Remove some "
                "values, seeds, models or sizes, or split it into several batches."
            ],
        )
        self.assertEqual(result.variants, [])


class SizeTests(SimpleTestCase):
    def test_custom_sizes_are_parsed_and_bad_ones_reported(self) -> None:
        sizes, problems = parse_sizes("1024x1024, 1536×1024; 800 x 600\nwide")
        self.assertEqual([s.text for s in sizes], ["1024×1024", "1536×1024", "800×600"])
        self.assertEqual(
            problems, ["“wide” is not a size: write width×height, e.g. 1024x768."]
        )

    def test_channel_presets_are_fitted_to_what_the_model_makes(self) -> None:
        spec_ = BFL_MODELS["flux-2-pro"]
        self.assertEqual(fit_size(1080, 1080, spec_), (1088, 1088))
        self.assertEqual(fit_size(2000, 2000, spec_), (2000, 2000))
        self.assertEqual(fit_size(1080, 1920, spec_), (1088, 1920))
        w, h = fit_size(4000, 4000, spec_)
        self.assertLessEqual(w * h, spec_.max_megapixels * 1_000_000)
        self.assertEqual((w % 16, h % 16), (0, 0))

    def test_a_fitted_preset_is_listed_in_the_plan(self) -> None:
        result = plan(
            spec(
                targets=(Target("bfl", "flux-2-pro"),),
                sizes=(Size(1080, 1080, "instagram-square", "Instagram feed, square"),),
            )
        )
        self.assertEqual(result.errors, {})
        self.assertEqual({(v.width, v.height) for v in result.variants}, {(1088, 1088)})
        self.assertIn("is made at 1088×1088", result.fitted[0])


class EstimateTests(SimpleTestCase):
    """docs/providers.md §1.12: pro $0.03 for the first MP (+$0.015 each further MP and input MP),
    flex $0.05 per MP in and out; the preview backend is free."""

    def test_one_megapixel_prices(self) -> None:
        result = plan(
            spec(
                targets=(
                    Target("bfl", "flux-2-pro"),
                    Target("bfl", "flux-2-flex"),
                    Target("preview", "flux-2-pro"),
                )
            )
        )
        totals = result.by_target
        self.assertEqual(totals["bfl:flux-2-pro"].unit_cost, Decimal("0.03"))
        self.assertEqual(totals["bfl:flux-2-flex"].unit_cost, Decimal("0.05"))
        self.assertEqual(totals["preview:flux-2-pro"].unit_cost, Decimal("0"))
        self.assertEqual(totals["bfl:flux-2-pro"].total, Decimal("0.36"))
        self.assertEqual(totals["bfl:flux-2-flex"].total, Decimal("0.60"))
        self.assertEqual(result.total, Decimal("0.96"))
        self.assertEqual(result.by_backend["bfl"]["count"], 24)

    def test_bigger_sizes_and_references_cost_more_megapixels(self) -> None:
        template = TemplateInput(
            kind="text",
            body="{headline} {scene} with {ref:product}",
            variables=("headline", "scene"),
            reference_slots=({"name": "product", "role": "product"},),
        )
        refs = {"product": ReferenceInput("product", b"", "image/png", 1024, 1024)}
        result = plan(
            spec(
                targets=(Target("bfl", "flux-2-pro"), Target("bfl", "flux-2-flex")),
                sizes=(Size(2048, 1024),),
            ),
            template=template,
            references=refs,
        )
        # pro: 3¢ + 1 extra MP × 1.5¢ + 1 input MP × 1.5¢; flex: (2 + 1) × 5¢.
        self.assertEqual(result.by_target["bfl:flux-2-pro"].unit_cost, Decimal("0.06"))
        self.assertEqual(result.by_target["bfl:flux-2-flex"].unit_cost, Decimal("0.15"))
