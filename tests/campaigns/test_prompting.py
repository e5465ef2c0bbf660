"""The pure prompt renderer: no database, same inputs give the same bytes."""

from __future__ import annotations

import json
from typing import Any

from django.test import SimpleTestCase

from campaigns.models import Brand
from campaigns.prompting import (
    BrandColour,
    BrandFont,
    BrandKit,
    PromptError,
    check_template,
    placeholder_parts,
    render_prompt,
    template_variables,
)

KIT = BrandKit(
    name="Acme",
    palette=(BrandColour("#1A1A2E", "Midnight"), BrandColour("#FF6B6B", "Coral")),
    fonts=(BrandFont("Inter", "headlines"),),
    typography_hints="Bold geometric sans-serif headlines",
    words_to_use=("fresh",),
    words_to_avoid=("cheap", "low cost"),
)
CLAUSE = (
    "\n\nBrand palette: #1A1A2E (Midnight), #FF6B6B (Coral). "
    "Typography: Bold geometric sans-serif headlines; fonts: Inter (headlines)."
)


def render(body: str, values: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("kind", "text")
    return render_prompt(body=body, values=values or {}, **kwargs)


def problems(
    body: str, values: dict[str, Any] | None = None, **kwargs: Any
) -> list[tuple[str, str]]:
    try:
        render(body, values, **kwargs)
    except PromptError as exc:
        return [(p.code, p.name) for p in exc.problems]
    raise AssertionError("expected a PromptError")


class TextRenderingTests(SimpleTestCase):
    def test_it_fills_in_variables(self) -> None:
        r = render(
            "A {product} on a {surface}, {product} again",
            {"product": "mug", "surface": "oak table"},
        )
        self.assertEqual(r.text, "A mug on a oak table, mug again")
        self.assertEqual(r.variables, ("product", "surface"))

    def test_segments_concatenate_to_the_text_and_name_their_origin(self) -> None:
        r = render(
            "A {product} on {ref:table}",
            {"product": "mug"},
            reference_slots=[{"name": "table", "role": "background"}],
        )
        self.assertEqual("".join(s.text for s in r.segments), r.text)
        self.assertEqual(
            [(s.text, s.origin, s.name) for s in r.segments],
            [
                ("A ", "template", ""),
                ("mug", "variable", "product"),
                (" on ", "template", ""),
                ("image 1", "reference", "table"),
            ],
        )

    def test_double_braces_are_literal_braces(self) -> None:
        r = render("{{literal}} and {{{x}}} and }}{{", {"x": "v"})
        self.assertEqual(r.text, "{literal} and {v} and }{")
        self.assertEqual(r.variables, ("x",))

    def test_braces_in_values_are_not_interpreted(self) -> None:
        r = render("Say {headline}", {"headline": "{sale} }{"})
        self.assertEqual(r.text, "Say {sale} }{")

    def test_values_are_inserted_exactly_as_given(self) -> None:
        r = render("“{headline}”", {"headline": "  Autumn —  Blend  "})
        self.assertEqual(r.text, "“  Autumn —  Blend  ”")


class RenderErrorTests(SimpleTestCase):
    def test_it_names_each_missing_variable(self) -> None:
        self.assertEqual(
            problems("A {product} on a {surface}"),
            [("missing_value", "product"), ("missing_value", "surface")],
        )

    def test_it_refuses_blank_values(self) -> None:
        self.assertEqual(
            problems("A {product}", {"product": "  "}), [("empty_value", "product")]
        )

    def test_it_refuses_unknown_values(self) -> None:
        self.assertEqual(
            problems("A {product}", {"product": "mug", "colour": "red"}),
            [("unknown_value", "colour")],
        )

    def test_it_refuses_values_that_are_not_text(self) -> None:
        self.assertEqual(problems("{n} cups", {"n": 3}), [("invalid_value", "n")])

    def test_it_reports_every_problem_at_once_with_readable_messages(self) -> None:
        with self.assertRaises(PromptError) as ctx:
            render("A {product}\nwith } and {oops", {"extra": "x"})
        self.assertEqual(
            ctx.exception.messages,
            [
                "Line 2, column 6: “}” has no matching “{” (write }} for a literal brace).",
                "Line 2, column 12: “{” is never closed (write {{ for a literal brace).",
                "Missing value for {product}.",
                "Unknown variable “extra”: the template has no {extra}.",
            ],
        )
        self.assertIn("Missing value for {product}.", str(ctx.exception))

    def test_it_refuses_malformed_placeholders(self) -> None:
        with self.assertRaises(PromptError) as ctx:
            render("A { product } and {1st} and {}", {})
        self.assertEqual(
            [p.code for p in ctx.exception.problems], ["invalid_placeholder"] * 3
        )
        self.assertIn(
            "Line 1, column 3: “{ product }” is not a placeholder",
            ctx.exception.messages[0],
        )

    def test_an_empty_body_is_an_error(self) -> None:
        self.assertEqual(problems("   "), [("empty_body", "")])

    def test_an_unknown_kind_is_an_error(self) -> None:
        self.assertEqual(problems("x", kind="yaml"), [("invalid_kind", "")])


class ReferenceSlotTests(SimpleTestCase):
    SLOTS = [
        {"name": "model", "role": "character", "required": True},
        {"name": "mood", "role": "style", "required": False},
        {"name": "product", "role": "product", "required": True},
    ]

    def test_references_render_as_image_numbers_in_slot_order(self) -> None:
        r = render(
            "{ref:product} worn by {ref:model} in the style of {ref:mood}",
            reference_slots=self.SLOTS,
        )
        self.assertEqual(r.text, "image 3 worn by image 1 in the style of image 2")
        self.assertEqual(r.reference_order, ("model", "mood", "product"))

    def test_an_empty_optional_slot_moves_later_images_up(self) -> None:
        r = render(
            "{ref:product} worn by {ref:model}",
            reference_slots=self.SLOTS,
            filled_slots={"product", "model"},
        )
        self.assertEqual(r.text, "image 2 worn by image 1")
        self.assertEqual(r.reference_order, ("model", "product"))

    def test_an_unknown_reference_is_an_error(self) -> None:
        with self.assertRaises(PromptError) as ctx:
            render("{ref:logo} on {ref:model}", reference_slots=self.SLOTS)
        self.assertEqual(
            [(p.code, p.name) for p in ctx.exception.problems],
            [("unknown_reference", "logo")],
        )
        self.assertIn("slots: model, mood, product", ctx.exception.messages[0])

    def test_a_required_slot_without_an_image_is_an_error(self) -> None:
        self.assertEqual(
            problems("{ref:model}", reference_slots=self.SLOTS, filled_slots=["model"]),
            [("missing_reference", "product")],
        )

    def test_mentioning_an_unfilled_optional_slot_is_an_error(self) -> None:
        self.assertEqual(
            problems(
                "{ref:mood}",
                reference_slots=self.SLOTS,
                filled_slots=["model", "product"],
            ),
            [("unfilled_reference", "mood")],
        )

    def test_an_image_for_an_undeclared_slot_is_an_error(self) -> None:
        self.assertEqual(
            problems(
                "x",
                reference_slots=self.SLOTS,
                filled_slots=["model", "product", "hat"],
            ),
            [("unknown_reference", "hat")],
        )

    def test_a_filled_slot_the_prompt_never_mentions_gives_a_warning(self) -> None:
        r = render("{ref:model}", reference_slots=self.SLOTS)
        self.assertIn(
            "Image 2 (slot “mood”) is never mentioned in the prompt.", r.warnings
        )

    def test_slots_may_be_given_as_plain_names(self) -> None:
        self.assertEqual(
            render("{ref:b} {ref:a}", reference_slots=["a", "b"]).text,
            "image 2 image 1",
        )


class JsonRenderingTests(SimpleTestCase):
    BODY = json.dumps(
        {
            "scene": {"setting": "a {place}", "time": "golden hour"},
            "subjects": [
                {"id": 1, "description": "{product} from {ref:product}", "hero": True}
            ],
            "lighting": "soft, from the left",
            "technical": {"camera": "50 mm", "ratio": 1.5, "extra": None},
        },
        indent=2,
    )

    def test_it_renders_canonical_json_in_authored_key_order(self) -> None:
        r = render(
            self.BODY,
            {"place": "café", "product": 'the "Autumn" mug\nwith steam'},
            kind="json",
            reference_slots=["product"],
        )
        self.assertEqual(
            r.text,
            '{"scene": {"setting": "a café", "time": "golden hour"}, '
            '"subjects": [{"id": 1, "description": "the \\"Autumn\\" mug\\nwith steam from image 1", "hero": true}], '
            '"lighting": "soft, from the left", "technical": {"camera": "50 mm", "ratio": 1.5, "extra": null}}',
        )
        self.assertEqual(r.text, json.dumps(json.loads(r.text), ensure_ascii=False))
        self.assertEqual(
            json.loads(r.text)["subjects"][0]["description"],
            'the "Autumn" mug\nwith steam from image 1',
        )
        self.assertEqual("".join(s.text for s in r.segments), r.text)
        self.assertIn(("variable", "product"), [(s.origin, s.name) for s in r.segments])

    def test_it_reports_invalid_json_with_line_and_column(self) -> None:
        with self.assertRaises(PromptError) as ctx:
            render('{\n  "scene": "x",\n  "style": \n}', kind="json")
        self.assertEqual(
            ctx.exception.messages,
            ["Invalid JSON at line 4, column 1: Expecting value."],
        )

    def test_values_are_not_called_unknown_when_the_json_cannot_be_read(self) -> None:
        self.assertEqual(
            problems('{"scene": "{place}"', {"place": "x"}, kind="json"),
            [("invalid_json", "")],
        )

    def test_the_top_level_must_be_an_object(self) -> None:
        self.assertEqual(problems('["a", "b"]', kind="json"), [("not_an_object", "")])

    def test_duplicate_keys_are_an_error(self) -> None:
        self.assertEqual(
            problems('{"scene": "a", "scene": "b"}', kind="json"),
            [("duplicate_key", "scene")],
        )

    def test_placeholders_in_keys_are_an_error(self) -> None:
        self.assertEqual(
            problems('{"{thing}": "x"}', kind="json"), [("placeholder_in_key", "")]
        )

    def test_brace_errors_name_the_json_path(self) -> None:
        with self.assertRaises(PromptError) as ctx:
            render('{"subjects": [{"description": "a } b"}]}', kind="json")
        self.assertEqual(
            ctx.exception.messages,
            [
                "In subjects[0].description, character 3: “}” has no matching “{” (write }} for a literal brace)."
            ],
        )

    def test_unknown_top_level_keys_give_a_warning(self) -> None:
        r = render('{"scene": "x", "vibe": "y"}', kind="json")
        self.assertEqual(len(r.warnings), 1)
        self.assertIn("“vibe”", r.warnings[0])

    def test_missing_and_unknown_values_are_errors_as_for_text(self) -> None:
        self.assertEqual(
            problems('{"scene": "{place}"}', {"other": "x"}, kind="json"),
            [("missing_value", "place"), ("unknown_value", "other")],
        )


class BrandMergeTests(SimpleTestCase):
    def test_text_prompts_get_a_separate_brand_clause(self) -> None:
        r = render("A {product}", {"product": "mug"}, brand=KIT)
        self.assertEqual(r.text, "A mug" + CLAUSE)
        brand_text = "".join(s.text for s in r.segments if s.origin == "brand")
        self.assertEqual(brand_text, CLAUSE)
        self.assertTrue(r.brand_added)

    def test_without_a_brand_nothing_is_added(self) -> None:
        r = render("A {product}", {"product": "mug"})
        self.assertEqual(r.text, "A mug")
        self.assertFalse(r.brand_added)

    def test_colours_already_in_the_prompt_are_not_repeated(self) -> None:
        r = render("Walls in #1a1a2e (deep navy)", brand=KIT)
        self.assertIn("Brand palette: #FF6B6B (Coral).", r.text)
        self.assertEqual(r.text.lower().count("#1a1a2e"), 1)

    def test_merge_brand_false_adds_nothing_but_still_checks_words(self) -> None:
        r = render("A cheap {x}", {"x": "mug"}, brand=KIT, merge_brand=False)
        self.assertEqual(r.text, "A cheap mug")
        self.assertEqual([a.word for a in r.avoided_words], ["cheap"])
        r = render('{"scene": "x"}', kind="json", brand=KIT, merge_brand=False)
        self.assertEqual(r.text, '{"scene": "x"}')

    def test_a_kit_with_nothing_to_add_adds_nothing(self) -> None:
        r = render("A mug", brand=BrandKit(words_to_avoid=("cheap",)))
        self.assertEqual(r.text, "A mug")

    def test_json_prompts_get_a_colors_list_and_typography(self) -> None:
        r = render('{"scene": "a {place}"}', {"place": "café"}, kind="json", brand=KIT)
        self.assertEqual(
            json.loads(r.text),
            {
                "scene": "a café",
                "colors": ["#1A1A2E (Midnight)", "#FF6B6B (Coral)"],
                "typography": "Bold geometric sans-serif headlines; fonts: Inter (headlines)",
            },
        )
        brand_text = "".join(s.text for s in r.segments if s.origin == "brand")
        self.assertEqual(
            brand_text,
            ', "colors": ["#1A1A2E (Midnight)", "#FF6B6B (Coral)"], '
            '"typography": "Bold geometric sans-serif headlines; fonts: Inter (headlines)"',
        )
        self.assertEqual(r.text, json.dumps(json.loads(r.text), ensure_ascii=False))

    def test_json_colours_merge_into_an_existing_list(self) -> None:
        r = render(
            '{"palette": ["#1A1A2E (navy)", "#FFFFFF (white)"]}',
            kind="json",
            brand=BrandKit(palette=KIT.palette),
        )
        self.assertEqual(
            json.loads(r.text),
            {"palette": ["#1A1A2E (navy)", "#FFFFFF (white)", "#FF6B6B (Coral)"]},
        )

    def test_json_colours_merge_into_a_list_of_colour_objects(self) -> None:
        r = render(
            '{"colors": [{"name": "white", "hex": "#FFFFFF"}]}',
            kind="json",
            brand=BrandKit(palette=KIT.palette),
        )
        self.assertEqual(
            json.loads(r.text)["colors"],
            [
                {"name": "white", "hex": "#FFFFFF"},
                {"name": "Midnight", "hex": "#1A1A2E"},
                {"name": "Coral", "hex": "#FF6B6B"},
            ],
        )

    def test_json_colours_merge_into_a_map_and_typography_into_an_object(self) -> None:
        r = render(
            '{"colors": {"white": "#FFFFFF"}, "typography": {"headline": "serif"}}',
            kind="json",
            brand=KIT,
        )
        self.assertEqual(
            json.loads(r.text),
            {
                "colors": {
                    "white": "#FFFFFF",
                    "Midnight": "#1A1A2E",
                    "Coral": "#FF6B6B",
                },
                "typography": {
                    "headline": "serif",
                    "brand": "Bold geometric sans-serif headlines; fonts: Inter (headlines)",
                },
            },
        )

    def test_json_colours_and_typography_append_to_strings(self) -> None:
        r = render(
            '{"colors": "warm neutrals", "typography": "thin serif"}',
            kind="json",
            brand=KIT,
        )
        self.assertEqual(
            json.loads(r.text),
            {
                "colors": "warm neutrals; #1A1A2E (Midnight), #FF6B6B (Coral)",
                "typography": "thin serif; Bold geometric sans-serif headlines; fonts: Inter (headlines)",
            },
        )

    def test_a_colours_key_that_cannot_take_colours_gives_a_warning(self) -> None:
        r = render('{"colors": 3}', kind="json", brand=BrandKit(palette=KIT.palette))
        self.assertEqual(json.loads(r.text), {"colors": 3})
        self.assertIn("The brand's palette was not merged", r.warnings[0])

    def test_a_long_palette_gives_a_warning(self) -> None:
        palette = tuple(BrandColour(f"#00000{i}", f"c{i}") for i in range(6))
        self.assertIn(
            "6 colours", render("x", brand=BrandKit(palette=palette)).warnings[-1]
        )

    def test_from_brand_normalises_the_kit(self) -> None:
        brand = Brand(
            name="Acme",
            palette=[
                {"name": " Midnight ", "hex": "1a1a2e"},
                {"name": "Broken", "hex": "#12"},
                "junk",
            ],
            fonts=[{"family": "Inter", "usage": "headlines"}, {"family": " "}],
            typography_hints=" Bold headlines. ",
            words_to_use=["fresh", " ", "fresh"],
            words_to_avoid=["cheap"],
        )
        kit = BrandKit.from_brand(brand)
        self.assertEqual(kit.palette, (BrandColour("#1A1A2E", "Midnight"),))
        self.assertEqual(kit.fonts, (BrandFont("Inter", "headlines"),))
        self.assertEqual(kit.typography, "Bold headlines; fonts: Inter (headlines)")
        self.assertEqual(kit.words_to_use, ("fresh",))
        self.assertEqual(kit.words_to_avoid, ("cheap",))


class WordsTests(SimpleTestCase):
    def test_an_avoided_word_is_reported_never_appended_as_a_negative(self) -> None:
        r = render("A {product} on a table", {"product": "Cheap mug"}, brand=KIT)
        self.assertNotIn("no cheap", r.text.lower())
        self.assertFalse(r.can_dispatch)
        [avoided] = r.avoided_words
        self.assertEqual(
            (avoided.word, avoided.found, avoided.spans),
            ("cheap", ("the value of {product}",), ((2, 7),)),
        )
        self.assertEqual(
            avoided.message,
            "“cheap” is on the brand's words to avoid and appears in the value of {product}.",
        )
        with self.assertRaises(PromptError) as ctx:
            r.ensure_dispatchable()
        self.assertEqual(
            [(p.code, p.name) for p in ctx.exception.problems],
            [("avoided_word", "cheap")],
        )

    def test_only_whole_words_count(self) -> None:
        r = render("The cheapest, cheaply made, not-cheap-looking mug", brand=KIT)
        start = r.text.index("cheap-")
        self.assertEqual([a.spans for a in r.avoided_words], [((start, start + 5),)])

    def test_phrases_and_the_template_text_are_checked(self) -> None:
        r = render("A LOW   cost mug, low cost {x}", {"x": "deal"}, brand=KIT)
        self.assertEqual(
            [(a.word, a.found) for a in r.avoided_words],
            [("low cost", ("the template text",))],
        )

    def test_escaped_json_text_still_matches_whole_words(self) -> None:
        r = render(
            '{"scene": "{line}"}', {"line": "first\ncheap"}, kind="json", brand=KIT
        )
        self.assertEqual([a.word for a in r.avoided_words], ["cheap"])

    def test_a_clean_prompt_can_be_dispatched(self) -> None:
        r = render("A fresh mug", brand=KIT)
        r.ensure_dispatchable()
        self.assertTrue(r.can_dispatch)
        self.assertEqual(r.unused_words, ())

    def test_unused_words_to_use_are_listed(self) -> None:
        self.assertEqual(render("A mug", brand=KIT).unused_words, ("fresh",))

    def test_display_parts_cut_out_avoided_words(self) -> None:
        r = render(
            "A {product}!",
            {"product": "cheap mug"},
            brand=BrandKit(words_to_avoid=("cheap",)),
        )
        self.assertEqual(
            [(p.text, p.origin, p.avoided) for p in r.display_parts()],
            [
                ("A ", "template", False),
                ("cheap", "variable", True),
                (" mug", "variable", False),
                ("!", "template", False),
            ],
        )


class DeterminismTests(SimpleTestCase):
    def test_the_same_inputs_give_the_same_output(self) -> None:
        body = '{"scene": "{a} and {b}", "subjects": ["{ref:p}"]}'
        one = render(
            body, {"a": "x", "b": "y"}, kind="json", brand=KIT, reference_slots=["p"]
        )
        two = render(
            body, {"b": "y", "a": "x"}, kind="json", brand=KIT, reference_slots=["p"]
        )
        self.assertEqual(one, two)
        self.assertEqual(one.text.encode(), two.text.encode())

    def test_errors_come_in_a_stable_order(self) -> None:
        self.assertEqual(
            problems("{a}", {"z": "1", "b": "2"}), problems("{a}", {"b": "2", "z": "1"})
        )


class TemplateInspectionTests(SimpleTestCase):
    def test_template_variables_in_order_of_first_appearance(self) -> None:
        self.assertEqual(
            template_variables("{b} {a} {b} {{c}} {ref:d}", "text"), ["b", "a"]
        )
        self.assertEqual(
            template_variables('{"x": ["{b}", {"y": "{a} {b}"}]}', "json"), ["b", "a"]
        )

    def test_template_variables_is_best_effort_on_a_broken_body(self) -> None:
        self.assertEqual(template_variables("{a} } {b", "text"), ["a"])
        self.assertEqual(template_variables("{not json", "json"), [])

    def test_check_template_validates_without_values(self) -> None:
        check = check_template(
            kind="text", body="{a} {ref:p}", reference_slots=["p", "q"]
        )
        self.assertEqual((check.variables, check.references), (("a",), ("p",)))
        self.assertEqual(
            check.warnings,
            ("Reference slot “q” is never mentioned: write {ref:q} where it belongs.",),
        )
        with self.assertRaises(PromptError):
            check_template(kind="text", body="{ref:x}")

    def test_placeholder_parts_split_a_stored_body_for_display(self) -> None:
        self.assertEqual(
            placeholder_parts('{\n  "a": "{x} {{y}} {ref:p}"\n}'),
            [
                ("text", '{\n  "a": "'),
                ("var", "{x}"),
                ("text", " {{y}} "),
                ("ref", "{ref:p}"),
                ("text", '"\n}'),
            ],
        )
