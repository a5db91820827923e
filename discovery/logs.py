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
"""

from __future__ import annotations

import logging
import logging.config
import os
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
        formatter = {"format": TEXT_FORMAT}
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
