"""The models and the migrations agree: a model change without its migration fails the suite."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.test import TestCase


class MigrationsTests(TestCase):
    def test_no_model_change_is_missing_a_migration(self) -> None:
        out = StringIO()
        try:
            call_command(
                "makemigrations", "--check", "--dry-run", stdout=out, stderr=out
            )
        except SystemExit as exc:  # --check exits 1 when a migration is missing
            self.fail(
                f"models changed without a migration:\n{out.getvalue()}\n(exit {exc.code})"
            )
