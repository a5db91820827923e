"""Logging of every component: one JSON object a line (or plain text for a terminal).

``LOG_FORMAT`` (``json``, the default, or ``text``) and ``LOG_LEVEL`` (``INFO``) are parsed once
into :class:`LogSettings`; :func:`dict_config` turns them into a :mod:`logging.config` mapping
that gunicorn applies as its ``logconfig_dict`` (its own error and access loggers included), and
:func:`configure` applies it outside gunicorn. The JSON is written by python-json-logger.

Every line carries ``time``, ``level``, ``component`` (the service name, or ``gateway``),
``instance``, ``request_id``, ``trace_id``, ``logger`` and ``message``; the request and trace
IDs come from :data:`CONTEXT`, which the gateway and the services set per request (``-``
outside a request). An access-log line adds its fields (``method``, ``path``, ``status`` ...)
as keys of their own.

A line never ends inside a value: log lines carry what others chose (instance IDs and service
names from Consul, a client's path), and a newline in one would forge a record of its own.
JSON escapes every control character itself. The text format escapes them (:func:`escape`)
and indents each line of a traceback, so every line that starts at the margin is a record.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from discovery import env
from discovery.errors import SettingsError

FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# (request ID, trace ID) of the request being served: per thread and per asyncio task.
CONTEXT: ContextVar[tuple[str, str]] = ContextVar("log_context", default=("-", "-"))
TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(component)s %(instance)s "
    "[req=%(request_id)s trace=%(trace_id)s] %(name)s: %(message)s"
)
JSON_FIELDS = ["levelname", "component", "instance", "request_id", "trace_id", "name", "message"]


@dataclass(frozen=True)
class LogSettings:
    """How a component logs, and the names it logs under."""

    format: str = "json"
    level: str = "INFO"
    access_log: bool = False
    component: str = "-"
    instance: str = "-"

    @classmethod
    def from_env(
        cls, component: str, instance: str, environ: Mapping[str, str] | None = None
    ) -> LogSettings:
        """Read ``LOG_FORMAT``, ``LOG_LEVEL`` and ``ACCESS_LOG``."""
        e = os.environ if environ is None else environ
        level = env.get_str(e, "LOG_LEVEL", "INFO").upper()
        if level not in LEVELS:
            raise SettingsError(f"LOG_LEVEL: expected one of {', '.join(LEVELS)}, got {level!r}")
        return cls(
            format=env.get_choice(e, "LOG_FORMAT", "json", FORMATS),
            level=level,
            access_log=env.get_bool(e, "ACCESS_LOG", False),
            component=component,
            instance=instance,
        )


class ContextFilter(logging.Filter):
    """Adds component, instance and the current request and trace IDs to every record."""

    def __init__(self, component: str = "-", instance: str = "-") -> None:
        super().__init__()
        self.component, self.instance = component, instance

    def filter(self, record: logging.LogRecord) -> bool:
        record.component = self.component
        record.instance = self.instance
        if not hasattr(record, "request_id"):  # an access-log line brings its own
            record.request_id, record.trace_id = CONTEXT.get()
        return True


# What could end a line, or hide or rewrite one on a terminal: the C0 controls (newline,
# carriage return, escape...), DEL, the C1 controls (NEL among them) and Unicode's line and
# paragraph separators, which str.splitlines() and some viewers also break lines at.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
TRACEBACK_INDENT = "    "


def escape(text: str) -> str:
    """*text* on one line: control characters as ``\\n``, ``\\r``, ``\\t``, ``\\xNN``, ``\\uNNNN``."""
    if text.isprintable():  # the common case: a third of the cost of a regular expression scan
        return text
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def _indented(text: str) -> str:
    return "\n".join(TRACEBACK_INDENT + escape(line) for line in text.split("\n"))


class TextFormatter(logging.Formatter):
    """The text format: one line a record, then its traceback (if any), indented.

    The whole line is escaped once it is formatted, whichever field a value came in by. The
    traceback is formatted here too, never taken from another handler's cache unindented.
    """

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape(self.formatMessage(record))
        if record.exc_info:
            line += "\n" + _indented(self.formatException(record.exc_info))
        elif record.exc_text:
            line += "\n" + _indented(record.exc_text)
        if record.stack_info:
            line += "\n" + _indented(self.formatStack(record.stack_info))
        return line


def dict_config(settings: LogSettings) -> dict[str, Any]:
    """The :func:`logging.config.dictConfig` mapping: one stderr handler for every logger.

    gunicorn's access logger is silenced: the services and the gateway write their own access
    lines, with request and trace IDs, when ``ACCESS_LOG`` is on.
    """
    if settings.format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",  # ISO 8601 in UTC
        }
    else:
        formatter = {"()": "discovery.logs.TextFormatter", "fmt": TEXT_FORMAT}
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "main",
        "filters": ["context"],
    }
    context = {
        "()": ContextFilter,
        "component": settings.component,
        "instance": settings.instance,
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": context},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"level": settings.level, "handlers": ["main"]},
        "loggers": {
            "gunicorn.error": {"level": settings.level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


def configure(settings: LogSettings) -> None:
    """Apply :func:`dict_config` to this process (gunicorn does it itself from the config)."""
    logging.config.dictConfig(dict_config(settings))
