"""Structured logs: one JSON object per line (LOG_FORMAT=json), with the context that links them.

Every log record, whoever emits it (our modules, Django, Celery, gunicorn's error log through the
root logger), goes through the stdlib `logging` module; with LOG_FORMAT=json its handler formats it
with structlog's ProcessorFormatter, which merges the context variables bound for the current
request or task:

- `request_id` (the incoming X-Request-ID when it looks like one, else a new one; echoed in the
  response), `user_id` and `workspace`, bound by `RequestContextMiddleware`;
- in Celery tasks, the same values, carried in a message header (`studio_log_context`) by the
  publisher and bound again before the task runs, plus `task`, `task_id` and `generation_id` when
  the task's first parameter is `generation_id`. So a batch dispatched by a web request leaves
  the request's id on every submit, poll and ingest line of its generations, on every worker;
- `generation_id` on a record through `extra={"generation_id": ...}` where the code knows it.

Without LOG_FORMAT=json the plain text format stays (development).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from inspect import signature
from typing import Any

import structlog
from django.http import HttpRequest, HttpResponse

HEADER = "studio_log_context"
_CONTEXT_KEYS = ("request_id", "user_id", "workspace")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


# Attributes every LogRecord has; the rest came through `extra=` and belong in the JSON object.
def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """The LOGGING dict for settings: plain text, or JSON lines."""
    formatters: dict[str, Any] = {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    }
    if log_format == "json":
        formatters["json"] = {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": [
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.stdlib.ExtraAdder(),
            ],
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(default=str),
            ],
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        # A 403 on one line without its traceback; beat's routine sweeps only at DEBUG
        # (studio/log_filters.py).
        "filters": {
            "forbidden": {"()": "studio.log_filters.ForbiddenOnOneLine"},
            "routine": {"()": "studio.log_filters.QuietRoutineTasks"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "plain",
                "filters": ["forbidden", "routine"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # django-axes announces its version at every process start.
            "axes": {"level": "WARNING"},
        },
    }


# --- web requests ---------------------------------------------------------------------------------
class RequestContextMiddleware:
    """Binds request_id at once, user_id and workspace once the later middleware resolved them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            structlog.contextvars.clear_contextvars()
        response["X-Request-ID"] = request_id
        return response

    def process_view(self, request: HttpRequest, *args: object) -> None:
        # Runs after every middleware's request phase: auth and the workspace are known.
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            structlog.contextvars.bind_contextvars(user_id=user.pk)
        workspace = getattr(request, "workspace", None)
        if workspace is not None:
            structlog.contextvars.bind_contextvars(workspace=str(workspace.code))


# --- Celery ------------------------------------------------------------------------------------------
def _publish(headers: dict[str, Any] | None = None, **kwargs: object) -> None:
    bound = structlog.contextvars.get_contextvars()
    context = {key: bound[key] for key in _CONTEXT_KEYS if key in bound}
    if context and headers is not None:
        headers[HEADER] = context


_first_parameter: dict[str, str] = {}


def _prerun(
    task_id: str = "",
    task: Any = None,
    args: tuple = (),
    kwargs: dict | None = None,
    **rest: object,
) -> None:
    structlog.contextvars.clear_contextvars()
    context = dict(getattr(task.request, HEADER, None) or {}) if task else {}
    context.update(task=getattr(task, "name", ""), task_id=task_id)
    if task is not None:
        name = task.name
        if name not in _first_parameter:
            params = list(signature(task.run).parameters)
            _first_parameter[name] = params[0] if params else ""
        if _first_parameter[name] == "generation_id":
            value = args[0] if args else (kwargs or {}).get("generation_id")
            if value is not None:
                context["generation_id"] = value
    structlog.contextvars.bind_contextvars(**context)


def _postrun(**kwargs: object) -> None:
    structlog.contextvars.clear_contextvars()


def connect_celery() -> None:
    """Carry the log context through Celery messages (called from StudioConfig.ready)."""
    from celery import signals

    signals.before_task_publish.connect(_publish, weak=False)
    signals.task_prerun.connect(_prerun, weak=False)
    signals.task_postrun.connect(_postrun, weak=False)
