"""Word-level changes within a changed line, and the unified line diff that carries them."""

from __future__ import annotations

from django.test import SimpleTestCase

from campaigns.textdiff import unified_lines, word_changes, word_diff


class WordChangesTests(SimpleTestCase):
    def test_an_edited_line_marks_only_the_changed_words(self) -> None:
        before, after = word_changes(
            "Product shot on an oak table, warm light",
            "Product shot on a marble table, cold light",
        )
        self.assertEqual(
            before,
            (
                (False, "Product shot on "),
                (True, "an oak"),
                (False, " table, "),
                (True, "warm"),
                (False, " light"),
            ),
        )
        self.assertEqual(
            after,
            (
                (False, "Product shot on "),
                (True, "a marble"),
                (False, " table, "),
                (True, "cold"),
                (False, " light"),
            ),
        )

    def test_text_added_after_punctuation_is_marked_alone(self) -> None:
        before, after = word_changes("on a {surface}", "on a {surface}, golden hour")
        self.assertEqual(before, ((False, "on a {surface}"),))
        self.assertEqual(after, ((False, "on a {surface}"), (True, ", golden hour")))

    def test_each_side_joins_back_to_its_line(self) -> None:
        pairs = [
            ("a  b\tc", "a b c"),
            ('{"scene": "{setting}",', '{"scene": "a café by {setting}",'),
            ("Bold héadline “Autumn”", "Bold headline “Autumn Blend”!"),
        ]
        for old, new in pairs:
            before, after = word_changes(old, new)
            self.assertEqual("".join(text for _, text in before), old)
            self.assertEqual("".join(text for _, text in after), new)

    def test_unrelated_lines_get_no_word_marks(self) -> None:
        self.assertIsNone(
            word_changes("A red cat sits here", "Completely different words now")
        )


class UnifiedLinesTests(SimpleTestCase):
    def test_a_one_line_prompt_edit_carries_its_word_changes(self) -> None:
        lines = unified_lines(
            ["Packshot on an oak table, warm light"],
            ["Packshot on an oak table, golden hour light"],
            context=3,
        )
        self.assertEqual(
            [(line.kind, line.parts) for line in lines],
            [
                ("hunk", ()),
                (
                    "del",
                    (
                        (False, "Packshot on an oak table, "),
                        (True, "warm"),
                        (False, " light"),
                    ),
                ),
                (
                    "add",
                    (
                        (False, "Packshot on an oak table, "),
                        (True, "golden hour"),
                        (False, " light"),
                    ),
                ),
            ],
        )

    def test_replaced_lines_pair_in_order_and_extra_lines_have_no_marks(self) -> None:
        lines = unified_lines(
            ["keep", "first line one", "second line two"],
            ["keep", "first line 1", "second line 2", "a brand new third line"],
            context=0,
        )
        changed = [line for line in lines if line.kind in ("add", "del")]
        self.assertEqual(
            [(line.kind, line.text, bool(line.parts)) for line in changed],
            [
                ("del", "first line one", True),
                ("del", "second line two", True),
                ("add", "first line 1", True),
                ("add", "second line 2", True),
                ("add", "a brand new third line", False),
            ],
        )
        self.assertEqual(changed[1].parts[-1], (True, "two"))
        self.assertEqual(changed[3].parts[-1], (True, "2"))

    def test_pure_insertions_and_deletions_have_no_marks(self) -> None:
        lines = unified_lines(["a", "b"], ["a", "c", "b"], context=1)
        self.assertEqual(
            [(line.kind, line.text, line.parts) for line in lines[1:]],
            [("context", "a", ()), ("add", "c", ()), ("context", "b", ())],
        )


class WordDiffTests(SimpleTestCase):
    """The compare page's whole-prompt diff, moved here unchanged from the gallery."""

    def test_it_returns_same_add_and_del_runs(self) -> None:
        self.assertEqual(
            word_diff("a red bag on oak", "a blue bag on oak"),
            [("same", "a "), ("del", "red "), ("add", "blue "), ("same", "bag on oak")],
        )
