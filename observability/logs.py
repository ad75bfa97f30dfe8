"""Log lines that say which request, session and user they belong to; JSON when asked.

BO1_LOG_FORMAT=json makes every handler configured through settings.LOGGING (and Celery's and
gunicorn's, see worker.py and gunicorn_config.py) write one JSON object per line: time, level,
logger, message, and request_id, session_id and user_id where known. The message is the log
call's own text, so the seed's messages keep their wording.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id: ContextVar[str | None] = ContextVar("bo1_request_id", default=None)
session_id: ContextVar[str | None] = ContextVar("bo1_session_id", default=None)
user_id: ContextVar[int | None] = ContextVar("bo1_user_id", default=None)
# The request being answered, to read its user once authentication has found one.
current_request: ContextVar[Any] = ContextVar("bo1_current_request", default=None)

CONTEXT_FIELDS = ("request_id", "session_id", "user_id")


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Log lines inside carry these context values (request_id, session_id, user_id)."""
    variables: dict[str, ContextVar[Any]] = {
        "request_id": request_id,
        "session_id": session_id,
        "user_id": user_id,
    }
    tokens = [(variables[name], variables[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def _request_user_id() -> int | None:
    """The id of the request's user if authentication already ran (never triggers a lookup)."""
    request = current_request.get()
    if request is None:
        return None
    user = request.__dict__.get("user")
    wrapped = getattr(user, "_wrapped", user)  # AuthenticationMiddleware's lazy object
    if wrapped is None or not getattr(wrapped, "is_authenticated", False):
        return None
    return getattr(wrapped, "pk", None)


class ContextFilter(logging.Filter):
    """Adds request_id, session_id and user_id (None when unknown) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "session_id"):
            record.session_id = session_id.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id.get() or _request_user_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None and name == "request_id":
                value = request_id.get()
            elif value is None and name == "session_id":
                value = session_id.get()
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


def json_line(message: str, logger: str, level: str = "INFO") -> str:
    """A JSON line for text a server prints itself rather than logs (e.g. Celery's notices)."""
    record = logging.LogRecord(logger, getattr(logging, level), "", 0, message, None, None)
    return JsonFormatter().format(record)


def json_logs_wanted() -> bool:
    import os

    return os.environ.get("BO1_LOG_FORMAT", "plain").strip().lower() == "json"


def use_json(loggers: tuple[str, ...] = ()) -> None:
    """Give every handler of these loggers, the root's and any other logger's the JSON formatter.

    For servers that set up logging of their own (Celery, gunicorn) after Django has.
    """
    seen: set[int] = set()
    others = [
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.handlers
    ]
    for name in ("", *loggers, *others):
        for handler in logging.getLogger(name).handlers:
            if id(handler) in seen:
                continue
            seen.add(id(handler))
            handler.setFormatter(JsonFormatter())
            if not any(isinstance(f, ContextFilter) for f in handler.filters):
                handler.addFilter(ContextFilter())
