"""`manage.py api_token --workspace SLUG --role ROLE --name NAME`: issue a token, print it once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.tokens import token_create
from studio.models import Role, Workspace


class Command(BaseCommand):
    help = (
        "Create an API token for a workspace and print it (it is shown only this once)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="workspace slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", required=True, help="what the token is for")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"No workspace with the slug “{options['workspace']}”.")
        try:
            issued = token_create(
                workspace=workspace,
                name=options["name"],
                role=options["role"],
                created_by=None,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        # The secret alone on stdout, so `TOKEN=$(manage.py api_token ...)` works.
        self.stdout.write(issued.secret)
        self.stderr.write(
            f"Token “{issued.token.name}” ({issued.token.role}) for {workspace.slug}: "
            "store it now, it is not shown again."
        )
