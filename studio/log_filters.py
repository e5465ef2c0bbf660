"""Logging filters that keep the terminal to what matters (issue 18).

- `ForbiddenOnOneLine`: Django logs every 403 through `django.request` with the PermissionDenied's
  traceback attached. A refusal is the access rules working, not a fault: it becomes one line that
  says who was refused what, and why.
- `QuietRoutineTasks`: beat's sweeps run every few seconds; the "Sending due task", "received" and
  "succeeded" INFO lines they leave would drown everything else. They are shown only when the log
  level is DEBUG. A sweep that fails still logs its ERROR.
"""

from __future__ import annotations

import logging

from django.conf import settings

# Celery's loggers for the three routine lines a periodic task leaves.
_CELERY_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class ForbiddenOnOneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Every handler's filter sees the same record: rewrite it once.
        if getattr(record, "one_line", False):
            return True
        if record.name == "django.request" and getattr(record, "status_code", 0) == 403:
            record.one_line = True
            exc = record.exc_info[1] if record.exc_info else None
            request = getattr(record, "request", None)
            user = getattr(request, "user", None)
            who = getattr(user, "username", "") or "anonymous"
            reason = str(exc) if exc is not None and str(exc) else "permission denied"
            record.msg = "Forbidden: %s for %s: %s"
            record.args = (getattr(request, "path", "?"), who, reason)
            record.exc_info = None
            record.exc_text = None
        return True


def _routine_task_names() -> tuple[str, ...]:
    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", {}) or {}
    names: list[str] = []
    for key, entry in schedule.items():
        names.append(key)
        names.append(str(entry.get("task", key)))
    return tuple(names)


class QuietRoutineTasks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.name not in _CELERY_LOGGERS:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return True
        if any(name in message for name in _routine_task_names()):
            # Demoted to DEBUG: shown only when LOG_LEVEL=DEBUG.
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True
