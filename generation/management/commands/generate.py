"""`manage.py generate`: one generation from a script, through the same engine code as the workers.

    python manage.py generate --backend bfl --model flux-2-pro --prompt "A red mug" \\
        --ref product=mug.png --width 1024 --height 1024 --seed 7 --out mug.jpg
    python manage.py generate --backend cheapest --fallback bfl,fal,replicate --prompt "A red mug"

`--backend` names a backend, or asks for the `cheapest` or `fastest` one able to serve the
request (generation/routing.py); `--fallback` lists the backends to fall back on, in order, when
the chosen one fails with a provider error, a network error, a timeout, a 429 beyond its retries,
a bad key or no credit. Each fallback is printed as it happens.

The command is a foreground client, not a worker: it calls the engine's service functions step by
step in this process (create, take a concurrency slot, submit, poll, ingest) and sleeps for the
countdowns the engine answers, where a worker would schedule a Celery task instead. It counts
against the same per-provider concurrency cap as the workers, and if it dies half way, the sweep
of a running worker finishes the generation.

Exit status: 0 done; 1 failed otherwise; 2 rule broken (nothing was sent); 3 bad key or no
credit; 4 moderated; 5 provider down (after the retries) or too slow; 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from generation import accounts, routing
from generation.backends.base import BackendError, ErrorClass, RuleViolation
from generation.engine import policy as engine
from generation.engine.create import generation_create, reference_file_store
from generation.engine.dispatch import generation_dispatch_one
from generation.engine.failure import generation_cancel, generation_expire
from generation.engine.ingest import generation_ingest
from generation.engine.poll import generation_poll
from generation.engine.state import Next
from generation.engine.submit import generation_submit
from generation.error_text import raw_message
from generation.imaging import ImageRejected
from generation.models import Generation, GenerationState

EXIT_FAILED, EXIT_RULE, EXIT_AUTH, EXIT_MODERATED, EXIT_DOWN, EXIT_INTERRUPTED = (
    1,
    2,
    3,
    4,
    5,
    130,
)
ROLES = ("product", "character", "style", "background", "logo", "pose")
_DOWN = {
    ErrorClass.NETWORK,
    ErrorClass.PROVIDER_ERROR,
    ErrorClass.TIMEOUT,
    ErrorClass.RATE_LIMITED,
}


class Exit(Exception):
    def __init__(self, code: int, line: str) -> None:
        super().__init__(line)
        self.code = code
        self.line = line


class Command(BaseCommand):
    _route_seen = 0  # route entries already reported
    help = "Run one generation in the foreground through the engine and write the image to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--backend",
            required=True,
            help="bfl, fal, replicate, cloudflare, comfyui, preview, ... or cheapest / fastest",
        )
        parser.add_argument(
            "--fallback",
            default="",
            metavar="NAME,NAME",
            help="backends to fall back on, in order, when the chosen one fails",
        )
        parser.add_argument(
            "--model",
            default="",
            help="studio model id, e.g. flux-2-pro (default: the backend's first)",
        )
        parser.add_argument("--prompt", required=True)
        parser.add_argument(
            "--ref",
            action="append",
            default=[],
            metavar="[ROLE=]FILE",
            help=f"reference image, in prompt order (image 1, image 2...); ROLE one of {', '.join(ROLES)}",
        )
        parser.add_argument("--width", type=int, default=1024)
        parser.add_argument("--height", type=int, default=1024)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="model parameter, e.g. steps=30 (JSON values)",
        )
        parser.add_argument(
            "--out",
            default="",
            help="output file (default: generation-<code>.<format>)",
        )
        parser.add_argument(
            "--workspace",
            default="",
            help="workspace slug (default: a 'cli' workspace)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=900.0,
            help="give up after this many seconds",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] < 2:
            # Progress lines only; -v 2 shows every HTTP request.
            logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            self._run(options)
        except Exit as exc:
            self.stderr.write(exc.line)
            sys.exit(exc.code)

    # --- steps --------------------------------------------------------------------------------

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _run(self, options: dict[str, Any]) -> None:
        workspace = self._workspace(options["workspace"])
        backend_name = options["backend"]
        fallback = routing.parse_fallback(options["fallback"])
        try:
            routing.check_names(backend_name, fallback)
            if backend_name in routing.POLICIES:
                model = options["model"] or "flux-2-pro"
            else:
                backend, _account = accounts.backend_for(
                    workspace_id=workspace.pk, backend=backend_name
                )
                model = options["model"] or self._default_model(backend)
        except LookupError as exc:
            raise Exit(
                EXIT_RULE, f"rule broken (backend): {exc.args[0] if exc.args else exc}"
            ) from exc
        references = [self._reference(value) for value in options["ref"]]
        params = dict(self._param(value) for value in options["param"])
        try:
            generation = generation_create(
                workspace=workspace,
                backend=backend_name,
                model=model,
                prompt=options["prompt"],
                width=options["width"],
                height=options["height"],
                seed=options["seed"],
                params=params,
                references=references,
                owner_key="cli",
                dispatch=False,
                fallback=fallback,
            )
        except RuleViolation as exc:
            raise Exit(EXIT_RULE, f"rule broken ({exc.rule}): {exc.message}") from exc
        except BackendError as exc:
            raise Exit(
                self._code_for(exc.error_class),
                self._reason(exc.error_class, exc.message),
            ) from exc
        chosen = f"{generation.backend}/{model}"
        if backend_name in routing.POLICIES:
            chosen += f" ({backend_name})"
        if generation.fallbacks:
            chosen += f", falling back on {', '.join(generation.fallbacks)}"
        self._say(
            f"queued {generation.code} on {chosen} {generation.width}×{generation.height}, "
            f"estimated ${generation.estimated_cost:.4f}"
        )
        try:
            self._drive(generation, deadline=time.monotonic() + options["timeout"])
        except KeyboardInterrupt:
            generation_cancel(generation_id=generation.pk)
            raise Exit(
                EXIT_INTERRUPTED, f"interrupted: generation {generation.code} canceled"
            ) from None
        generation.refresh_from_db()
        if generation.state != GenerationState.SUCCEEDED:
            raise Exit(
                self._code_for(generation.error_class), self._failure_line(generation)
            )
        self._write(generation, options["out"])

    def _drive(self, generation: Generation, *, deadline: float) -> None:
        """Follow the engine's Next answers with real sleeps until the generation is terminal."""
        gid = generation.pk
        seen = generation.state
        self._route_seen = len(generation.route)
        waiting_said = False
        while not generation_dispatch_one(generation_id=gid):
            if not waiting_said:
                self._say(
                    f"waiting for a free {generation.backend} slot (concurrency cap reached)"
                )
                waiting_said = True
            self._check_deadline(gid, deadline)
            time.sleep(engine.conf("ENGINE_CAP_RECHECK", 2.0))
        nxt = Next(action="submit")
        while True:
            self._check_deadline(gid, deadline)
            if nxt.action == "none":
                row = Generation.objects.get(pk=gid)
                seen = self._report(row, seen)
                if row.is_terminal:
                    return
                if row.state == GenerationState.QUEUED and row.dispatched_at is None:
                    nxt = (
                        Next(action="submit")
                        if generation_dispatch_one(generation_id=gid)
                        else Next()
                    )
                    if nxt.action == "none":
                        time.sleep(engine.conf("ENGINE_CAP_RECHECK", 2.0))
                    continue
                # A worker holds it (its sweep took over a stalled step): follow the row.
                time.sleep(0.5)
                continue
            if nxt.countdown > 0:
                time.sleep(nxt.countdown)
            if nxt.action == "submit":
                nxt = generation_submit(generation_id=gid)
            elif nxt.action == "poll":
                nxt = generation_poll(generation_id=gid, seq=nxt.poll_seq)
            elif nxt.action == "ingest":
                nxt = generation_ingest(generation_id=gid)
            row = Generation.objects.get(pk=gid)
            seen = self._report(row, seen, nxt)
            if row.is_terminal:
                return

    def _report(self, row: Generation, seen: str, nxt: Next | None = None) -> str:
        if len(row.route) > self._route_seen:
            for entry in row.route[self._route_seen :]:
                if entry.get("outcome") in ("failed", "skipped"):
                    self._say(
                        f"{entry['backend']} {entry['outcome']} ({entry.get('error_class')}): "
                        f"{' '.join(str(entry.get('message', '')).split())}"
                    )
                elif entry.get("outcome") == "chosen" and self._route_seen:
                    self._say(
                        f"falling back to {entry['backend']}, "
                        f"estimated ${float(entry.get('estimate') or 0):.4f}"
                    )
            self._route_seen = len(row.route)
        if row.state != seen:
            line = f"{row.state}"
            if row.state == GenerationState.SUBMITTED:
                line += f": provider task {row.provider_task_id}"
            elif row.state == GenerationState.QUEUED and row.error_message:
                line = f"retrying: {row.error_message}"
            if row.state == GenerationState.RUNNING and row.progress is not None:
                line += f" ({row.progress:.0%})"
            self._say(line)
        elif (
            nxt is not None
            and nxt.action in ("submit", "poll")
            and row.error_message
            and row.is_active
        ):
            self._say(f"retrying in {nxt.countdown:.1f} s: {row.error_message}")
        return row.state

    def _check_deadline(self, gid: int, deadline: float) -> None:
        if time.monotonic() > deadline:
            generation_expire(
                generation_id=gid, message="The command's --timeout passed."
            )

    # --- input and output -----------------------------------------------------------------------

    def _workspace(self, slug: str) -> Any:
        from studio.models import Workspace

        if slug:
            workspace = Workspace.objects.filter(slug=slug).first()
            if workspace is None:
                raise Exit(EXIT_FAILED, f"no workspace with slug {slug!r}")
            return workspace
        workspace, _ = Workspace.objects.get_or_create(
            slug="cli", defaults={"name": "Command line"}
        )
        return workspace

    def _default_model(self, backend: Any) -> str:
        models = list(backend.capabilities().models)
        return "flux-2-pro" if "flux-2-pro" in models else models[0]

    def _reference(self, value: str) -> dict[str, str]:
        role, _, path = value.partition("=")
        if not path or role not in ROLES:
            role, path = "", value
        file = Path(path)
        if not file.is_file():
            raise Exit(EXIT_RULE, f"rule broken (references): {path} is not a file")
        try:
            spec = reference_file_store(content=file.read_bytes(), name=file.name)
        except ImageRejected as exc:
            raise Exit(
                EXIT_RULE,
                f"rule broken (references): {path} is not a usable image: {exc}",
            ) from exc
        return {**spec, "role": role or "product"}

    def _param(self, value: str) -> tuple[str, Any]:
        import json

        name, sep, raw = value.partition("=")
        if not sep or not name:
            raise Exit(
                EXIT_RULE, f"rule broken (params): --param {value!r} is not NAME=VALUE"
            )
        try:
            return name, json.loads(raw)
        except ValueError:
            return name, raw

    def _write(self, generation: Generation, out: str) -> None:
        asset = generation.asset
        extension = (asset.file.name or "").rsplit(".", 1)[-1]
        target = Path(out or f"generation-{generation.code}.{extension}")
        with asset.file.open("rb") as handle:
            target.write_bytes(handle.read())
        cost = (
            generation.actual_cost
            if generation.actual_cost is not None
            else generation.estimated_cost
        )
        self._say(
            f"wrote {target} ({asset.width}×{asset.height} {asset.format}, {asset.byte_size:,} bytes), "
            f"cost ${cost:.4f}"
        )

    # --- failure lines ---------------------------------------------------------------------------

    @staticmethod
    def _code_for(error_class: str) -> int:
        if error_class == ErrorClass.MODERATED:
            return EXIT_MODERATED
        if error_class in (ErrorClass.AUTH, ErrorClass.QUOTA):
            return EXIT_AUTH
        if error_class == ErrorClass.INVALID_REQUEST:
            return EXIT_RULE
        if error_class in _DOWN:
            return EXIT_DOWN
        return EXIT_FAILED

    @staticmethod
    def _reason(error_class: str, message: str) -> str:
        if error_class == ErrorClass.AUTH:
            return f"bad key: {message}"
        if error_class == ErrorClass.QUOTA:
            return f"no credit: {message}"
        if error_class == ErrorClass.INVALID_REQUEST:
            return f"rule broken: {message}"
        if error_class in _DOWN:
            return f"provider down: {message}"
        return f"failed ({error_class or 'unknown'}): {message}"

    def _failure_line(self, generation: Generation) -> str:
        message = " ".join((raw_message(generation) or "no details").split())
        if generation.state == GenerationState.MODERATED:
            reasons = generation.moderation_reasons
            return f"moderated: {', '.join(reasons) if reasons else 'no reasons given'} ({message})"
        if generation.state == GenerationState.CANCELED:
            return "canceled"
        if generation.state == GenerationState.EXPIRED:
            return f"expired: {message}"
        if generation.error_class in _DOWN:
            tries = generation.retries + generation.rate_limited
            return f"provider down after {tries} retries: {message}"
        return self._reason(generation.error_class, message)
