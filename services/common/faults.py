"""Fault knobs: added latency, an error rate and a failing ``/health``, to drive chaos tests.

Set at startup with ``FAULT_LATENCY`` (a duration), ``FAULT_ERROR_RATE`` (0 to 1),
``FAULT_ERROR_STATUS`` (the status of injected errors, 500 to 599) and ``FAULT_FAIL_HEALTH``
(true/false), and changed at run time with
``PUT /admin/faults {"latency_ms": 200, "error_rate": 0.1, "error_status": 503, "fail_health": false}``.
The knobs are per process; the samples run one gunicorn worker per instance by default.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from discovery import env
from services.common.errors_json import error_reply


@dataclass
class Faults:
    """The current fault settings of this process."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    fail_health: bool = False

    @classmethod
    def from_env(cls, e: Mapping[str, str]) -> Faults:
        """Read the ``FAULT_*`` variables (from :class:`services.common.settings.ServiceSettings`)."""
        return cls(
            latency_ms=env.get_duration(e, "FAULT_LATENCY", "0s", hi=60) * 1000,
            error_rate=env.get_float(e, "FAULT_ERROR_RATE", 0.0, 0.0, 1.0),
            error_status=env.get_int(e, "FAULT_ERROR_STATUS", 500, 500, 599),
            fail_health=env.get_bool(e, "FAULT_FAIL_HEALTH", False),
        )

    def update(self, data: Any) -> list[str]:
        """Apply a JSON update; return the problems found, changing nothing if there are any."""
        if not isinstance(data, dict):
            return ["body must be a JSON object"]
        problems: list[str] = []
        changes: dict[str, object] = {}
        for key, value in data.items():
            valid = _VALID.get(key)
            if valid is not None and valid(value):
                changes[key] = value
            else:
                problems.append(f"{key}: unknown knob or invalid value {value!r}")
        if not problems:
            for key, value in changes.items():
                setattr(self, key, value)
        return problems

    def before_request(self) -> ResponseReturnValue | None:
        """Apply latency and the error rate; an injected error answers instead of the view."""
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        if self.error_rate and random.random() < self.error_rate:
            status = self.error_status
            return error_reply(status, "injected_fault", "error_rate fault (FAULT_ERROR_RATE)")
        return None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_VALID: dict[str, Callable[[Any], bool]] = {
    "latency_ms": lambda v: _number(v) and 0 <= v <= 60_000,
    "error_rate": lambda v: _number(v) and 0 <= v <= 1,
    "error_status": lambda v: _number(v) and v == int(v) and 500 <= v <= 599,
    "fail_health": lambda v: isinstance(v, bool),
}


bp = Blueprint("faults", __name__)


def _faults() -> Faults:
    faults: Faults = current_app.extensions["faults"]
    return faults


@bp.get("/admin/faults")
def show() -> ResponseReturnValue:
    """The current fault settings."""
    return jsonify(asdict(_faults()))


@bp.put("/admin/faults")
def change() -> ResponseReturnValue:
    """Change some fault settings; unknown knobs or bad values give 400 and change nothing."""
    problems = _faults().update(request.get_json(silent=True))
    if problems:
        return error_reply(400, "invalid_fault_settings", "; ".join(problems), problems=problems)
    return jsonify(asdict(_faults()))
