"""Prompt template services: immutable versions, validation, numbering, diffs."""

from __future__ import annotations

import json
import threading
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.test import TransactionTestCase

from campaigns.models import PromptTemplate, TemplateVersion
from campaigns.prompt_templates import (
    prompt_template_create,
    template_version_create,
    template_version_diff,
    template_version_render,
)
from campaigns.prompting import BrandKit, PromptError
from studio.models import Role
from tests.base import StudioTestCase
from tests.factories import (
    make_brand,
    make_campaign,
    make_member,
    make_template,
    make_workspace,
)

SLOTS = [{"name": "product", "role": "product", "required": True}]


def create(case: StudioTestCase, **overrides: Any) -> PromptTemplate:
    fields: dict[str, Any] = {
        "brand": case.brand,
        "campaign": case.campaign,
        "name": "Hero shot",
        "description": "Autumn hero",
        "kind": "text",
        "body": "The {product} from {ref:product} on a {surface}",
        "reference_slots": SLOTS,
        "parameters": {"model": "flux-2-pro", "width": 1024, "height": 768},
        "change_note": "First version",
        "author": case.eddie,
    }
    fields.update(overrides)
    return prompt_template_create(**fields)


def new_version(
    template: PromptTemplate, author: Any, **overrides: Any
) -> TemplateVersion:
    latest = template.latest_version
    assert latest is not None
    fields: dict[str, Any] = {
        "template": template,
        "kind": latest.kind,
        "body": latest.body,
        "reference_slots": latest.reference_slots,
        "parameters": latest.parameters,
        "change_note": "",
        "author": author,
    }
    fields.update(overrides)
    return template_version_create(**fields)


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict


class TemplateCreateTests(StudioTestCase):
    def test_it_creates_the_template_with_version_1(self) -> None:
        template = create(self)
        self.assertEqual(
            (template.workspace, template.brand, template.campaign),
            (self.workspace, self.brand, self.campaign),
        )
        self.assertEqual(template.created_by, self.eddie)
        [version] = template.versions.all()
        self.assertEqual(version.number, 1)
        self.assertEqual(version.workspace, self.workspace)
        self.assertEqual(version.author, self.eddie)
        self.assertEqual(version.variables, ["product", "surface"])
        self.assertEqual(version.reference_slots, SLOTS)
        self.assertEqual(
            version.parameters, {"model": "flux-2-pro", "width": 1024, "height": 768}
        )
        self.assertEqual(version.change_note, "First version")
        self.assertIsNotNone(version.created_at)

    def test_text_bodies_are_trimmed_with_unix_line_endings(self) -> None:
        template = create(self, body="  line {a}\r\nline two \n\n", reference_slots=[])
        self.assertEqual(template.latest_version.body, "line {a}\nline two")

    def test_json_bodies_are_stored_pretty_printed_in_authored_order(self) -> None:
        body = '{"scene": "a {place}", "colors": ["#1A1A2E"], "subjects": [{"description": "{ref:product}"}]}'
        version = create(self, kind="json", body=body).latest_version
        self.assertEqual(
            version.body, json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        )
        self.assertEqual(
            list(json.loads(version.body)), ["scene", "colors", "subjects"]
        )
        self.assertEqual(version.variables, ["place"])

    def test_it_rejects_unbalanced_braces_and_unknown_references(self) -> None:
        with self.assertRaises(ValidationError) as ctx:
            create(self, body="A {product} } on {ref:logo}")
        self.assertEqual(
            field_errors(ctx.exception)["body"],
            [
                "Line 1, column 13: “}” has no matching “{” (write }} for a literal brace).",
                "{ref:logo} names no reference slot of this template (slots: product).",
            ],
        )
        self.assertFalse(PromptTemplate.objects.exists())

    def test_it_rejects_invalid_json_with_its_position(self) -> None:
        with self.assertRaises(ValidationError) as ctx:
            create(self, kind="json", body='{\n  "scene": "x",\n}')
        self.assertEqual(
            field_errors(ctx.exception)["body"],
            [
                "Invalid JSON at line 2, column 15: Illegal trailing comma before end of object."
            ],
        )

    def test_it_validates_reference_slots(self) -> None:
        slots = [
            {"name": "product", "role": "product"},
            {"name": "product", "role": "style"},
            {"name": "2nd", "role": "style"},
            {"name": "hat", "role": "costume"},
        ]
        with self.assertRaises(ValidationError) as ctx:
            create(self, reference_slots=slots)
        errors = field_errors(ctx.exception)
        self.assertEqual(
            errors["reference_slots"],
            [
                "The slot name “product” is used twice.",
                "“2nd” is not a valid slot name: use letters, digits and _, starting with a letter.",
                "Slot “hat”: “costume” is not a reference role (product, character, style, background, logo, pose).",
            ],
        )

    def test_it_caps_reference_slots_at_what_flux_takes(self) -> None:
        slots = [{"name": f"s{i}", "role": "style"} for i in range(9)]
        with self.assertRaises(ValidationError) as ctx:
            create(self, body="x", reference_slots=slots)
        self.assertIn(
            "At most 8 reference slots",
            field_errors(ctx.exception)["reference_slots"][0],
        )

    def test_it_validates_parameters(self) -> None:
        with self.assertRaises(ValidationError) as ctx:
            create(
                self,
                parameters={"model": "", "width": 1000, "height": True, "seed": -1},
            )
        self.assertEqual(
            field_errors(ctx.exception)["parameters"],
            [
                "“model” must be a model name such as “flux-2-pro”.",
                "“width” must be a whole number of pixels, at least 64 and a multiple of 16.",
                "“height” must be a whole number of pixels, at least 64 and a multiple of 16.",
                "“seed” must be a whole number, 0 or more.",
            ],
        )
        with self.assertRaises(ValidationError) as ctx:
            create(self, parameters={"width": 4096, "height": 4096})
        self.assertIn("megapixels", field_errors(ctx.exception)["parameters"][0])

    def test_the_campaign_must_belong_to_the_brand(self) -> None:
        other_campaign = make_campaign(
            make_brand(self.workspace, name="Other"), name="Other launch"
        )
        with self.assertRaises(ValidationError) as ctx:
            create(self, campaign=other_campaign)
        self.assertEqual(
            field_errors(ctx.exception),
            {"campaign": ["“Other launch” is a campaign of another brand."]},
        )

    def test_a_name_is_required(self) -> None:
        with self.assertRaises(ValidationError) as ctx:
            create(self, name="  ")
        self.assertIn("name", field_errors(ctx.exception))


class TemplateVersionTests(StudioTestCase):
    def test_each_save_makes_the_next_version(self) -> None:
        template = create(self)
        v2 = new_version(
            template,
            self.alice,
            body="The {product} from {ref:product} on {surface}",
            change_note="tighter",
        )
        v3 = new_version(template, self.eddie, parameters={"model": "flux-2-flex"})
        self.assertEqual((v2.number, v3.number), (2, 3))
        self.assertEqual((v2.author, v2.change_note), (self.alice, "tighter"))
        self.assertEqual(
            list(template.versions.values_list("number", flat=True)), [3, 2, 1]
        )
        self.assertEqual(template.latest_version, v3)

    def test_older_versions_stay_readable_as_they_were(self) -> None:
        template = create(self)
        new_version(
            template, self.alice, body="Completely new {thing}", reference_slots=[]
        )
        v1 = template.versions.get(number=1)
        self.assertEqual(v1.body, "The {product} from {ref:product} on a {surface}")
        self.assertEqual(v1.variables, ["product", "surface"])
        self.assertEqual(v1.reference_slots, SLOTS)

    def test_saving_an_existing_version_is_refused(self) -> None:
        version = create(self).latest_version
        version.body = "Changed in place"
        with self.assertRaises(ValidationError):
            version.save()
        with self.assertRaises(ValidationError):
            version.delete()
        version.refresh_from_db()
        self.assertEqual(
            version.body, "The {product} from {ref:product} on a {surface}"
        )

    def test_a_version_identical_to_the_latest_is_refused(self) -> None:
        template = create(self)
        with self.assertRaises(ValidationError) as ctx:
            new_version(template, self.alice, change_note="only the note differs")
        self.assertEqual(ctx.exception.code, "unchanged")
        self.assertIn("Nothing changed since version 1", ctx.exception.messages[0])
        self.assertEqual(template.versions.count(), 1)

    def test_whitespace_only_edits_of_the_ends_count_as_no_change(self) -> None:
        template = create(self)
        with self.assertRaises(ValidationError):
            new_version(
                template,
                self.alice,
                body="The {product} from {ref:product} on a {surface}\r\n\r\n",
            )

    def test_a_stale_editor_is_refused_instead_of_overwriting(self) -> None:
        template = create(self)
        new_version(
            template,
            self.alice,
            body="Alice's {product} from {ref:product}",
            based_on=1,
        )
        with self.assertRaises(ValidationError) as ctx:
            new_version(
                template,
                self.eddie,
                body="Eddie's {product} from {ref:product}",
                based_on=1,
            )
        self.assertEqual(ctx.exception.code, "stale")
        self.assertIn(
            "Version 2 was saved by alice after you opened version 1",
            ctx.exception.messages[0],
        )
        self.assertEqual(template.versions.count(), 2)

    def test_an_invalid_new_version_is_refused_with_field_errors(self) -> None:
        template = create(self)
        with self.assertRaises(ValidationError) as ctx:
            new_version(template, self.alice, kind="json", body="{not json")
        self.assertIn("body", field_errors(ctx.exception))
        self.assertEqual(template.versions.count(), 1)

    def test_a_new_version_touches_the_template(self) -> None:
        template = create(self)
        before = PromptTemplate.objects.get(pk=template.pk).updated_at
        new_version(template, self.alice, body="Other {product} from {ref:product}")
        self.assertGreater(
            PromptTemplate.objects.get(pk=template.pk).updated_at, before
        )

    def test_factory_templates_work_with_the_services(self) -> None:
        template = make_template(self.brand, author=self.eddie)
        version = new_version(
            template, self.alice, body="A {product} on a {surface} at dusk"
        )
        self.assertEqual(version.number, 2)


class TemplateRenderTests(StudioTestCase):
    def test_it_renders_a_version_with_its_slots(self) -> None:
        version = create(self).latest_version
        rendered = template_version_render(
            version=version,
            values={"product": "mug", "surface": "table"},
            brand=BrandKit.from_brand(self.brand),
        )
        self.assertTrue(
            rendered.text.startswith(
                "The mug from image 1 on a table\n\nBrand palette: #1A1A2E (Midnight)"
            )
        )
        with self.assertRaises(PromptError):
            template_version_render(version=version, values={}, brand=None)


class TemplateDiffTests(StudioTestCase):
    def test_it_diffs_body_slots_and_parameters(self) -> None:
        template = create(
            self, body="line one\nline {two}\nline three", reference_slots=[]
        )
        v2 = new_version(
            template,
            self.alice,
            body="line one\nline {two}, changed\nline three\nline four",
            reference_slots=[{"name": "mood", "role": "style", "required": False}],
            parameters={"model": "flux-2-flex", "width": 1024, "height": 768},
        )
        body, slots, params, kind = template_version_diff(
            old=template.versions.get(number=1), new=v2
        )
        self.assertEqual(body.title, "Prompt")
        self.assertEqual(
            [
                (line.kind, line.marker + line.text, line.old_line, line.new_line)
                for line in body.lines
            ],
            [
                ("hunk", "@@ -1,3 +1,4 @@", None, None),
                ("context", " line one", 1, 1),
                ("del", "-line {two}", 2, None),
                ("add", "+line {two}, changed", None, 2),
                ("context", " line three", 3, 3),
                ("add", "+line four", None, 4),
            ],
        )
        self.assertEqual((body.added, body.removed), (2, 1))
        # The edited line carries its word-level change; the new fourth line has nothing to pair.
        self.assertEqual(
            [line.parts for line in body.lines if line.kind in ("add", "del")],
            [
                ((False, "line {two}"),),
                ((False, "line {two}"), (True, ", changed")),
                (),
            ],
        )
        self.assertEqual(
            [(line.kind, line.text) for line in slots.lines[1:]],
            [("add", "mood: style?")],
        )
        self.assertIn(
            ("del", '  "model": "flux-2-pro",'),
            [(line.kind, line.text) for line in params.lines],
        )
        self.assertIn(
            ("add", '  "model": "flux-2-flex",'),
            [(line.kind, line.text) for line in params.lines],
        )
        self.assertFalse(kind.changed)
        self.assertEqual(kind.lines, ())

    def test_a_first_version_diffs_against_nothing(self) -> None:
        v1 = create(self, body="a\nb").latest_version
        body = template_version_diff(old=None, new=v1)[0]
        self.assertEqual(
            [(line.kind, line.text) for line in body.lines],
            [("hunk", "@@ -0,0 +1,2 @@"), ("add", "a"), ("add", "b")],
        )

    def test_identical_content_has_no_changes(self) -> None:
        v1 = create(self).latest_version
        self.assertFalse(
            any(section.changed for section in template_version_diff(old=v1, new=v1))
        )


class ConcurrentVersionTests(TransactionTestCase):
    """Two editors saving at the same moment both get a version, numbered one after the other."""

    def test_concurrent_saves_get_consecutive_numbers(self) -> None:
        workspace = make_workspace()
        editor = make_member(workspace, Role.EDITOR)
        template = make_template(make_brand(workspace), author=editor)
        barrier = threading.Barrier(2)
        results: list[Any] = []

        def save(body: str) -> None:
            try:
                barrier.wait(timeout=5)
                version = template_version_create(
                    template=template,
                    kind="text",
                    body=body,
                    reference_slots=[],
                    parameters={},
                    change_note="",
                    author=editor,
                )
                results.append(version.number)
            except Exception as exc:  # collected for the assertion below
                results.append(exc)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=save, args=(f"Body {i} {{x}}",)) for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        self.assertEqual(
            sorted(r for r in results if isinstance(r, int)), [2, 3], results
        )
        self.assertEqual(
            sorted(template.versions.values_list("number", flat=True)), [1, 2, 3]
        )
