"""Structured logs: one JSON object per line, wired up in settings.LOGGING for every logger (the
service's, Django's, Daphne's, channels-redis').

Each line carries `timestamp` (UTC, ISO 8601, milliseconds), `level`, `logger` and `message`; the
fields a call passes with `extra={...}` (e.g. `user_id`, `conversation_id`, `close_code`); `exception`
with the traceback when there is one; and `trace_id` / `span_id` while an OpenTelemetry span is active.

What a line may carry is decided by the calls: the service never logs tokens or message content. As
a second guard, extra values that are not plain JSON data (Django's `request`, for one, whose repr holds
the query string) are written as their type name only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra` (or a filter).
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return f"<{type(value).__name__}>"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + f".{int((record.created - seconds) * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = _plain(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii keeps every line one line whatever the content; default=str is a last resort.
        return json.dumps(entry, default=str)


# opentelemetry's get_current_span once imported; None when the package is not installed. Imported on
# the first record, not at start-up, so logging works (and costs one test per record) without it.
_UNSET: Any = object()
_current_span: Callable[[], Any] | None = _UNSET


def _span_getter() -> Callable[[], Any] | None:
    global _current_span
    if _current_span is _UNSET:
        try:
            from opentelemetry.trace import get_current_span
        except ImportError:
            _current_span = None
        else:
            _current_span = get_current_span
    return _current_span


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (lowercase hex, as in W3C traceparent) to records logged while a
    span is active. With tracing off the current span is OpenTelemetry's invalid one: nothing is added."""

    def filter(self, record: logging.LogRecord) -> bool:
        get_current_span = _span_getter()
        if get_current_span is not None:
            context = get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
                record.span_id = format(context.span_id, "016x")
        return True
