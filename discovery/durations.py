"""Go-style durations ("500ms", "10s", "1m30s"), the format Consul uses for every interval."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Return the duration in seconds, or raise ValueError if *text* is not a Go duration."""
    text = text.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"{text!r} is not a duration such as 500ms, 10s or 1m30s")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds the way Consul accepts them: whole milliseconds, e.g. ``1500ms``."""
    return f"{max(0, round(seconds * 1000))}ms"
