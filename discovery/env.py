"""Typed readers for environment variables that name the variable when its value is wrong.

Every component parses its settings once at startup with these helpers, so a misconfigured
process stops at once with a message such as
``SERVICE_PORT: expected an integer from 1 to 65535, got 'http'``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from discovery.durations import parse_duration
from discovery.errors import SettingsError


def get_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    """Return a non-empty string; without a default the variable is required."""
    value = env.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise SettingsError(f"{name}: required but not set")
    return default


def get_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """Return an integer in ``[lo, hi]``."""
    return int(_number(env, name, default, lo, hi, int, "an integer"))


def get_float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    """Return a number in ``[lo, hi]``."""
    return _number(env, name, default, lo, hi, float, "a number")


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    lo: float,
    hi: float,
    parse: Callable[[str], float],
    kind: str,
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise SettingsError(f"{name}: expected {kind} from {lo:g} to {hi:g}, got {raw!r}")
    return value


def get_duration(
    env: Mapping[str, str], name: str, default: str, lo: float = 0.0, hi: float = 86400.0
) -> float:
    """Return a Go-style duration (``10s``, ``500ms``) in seconds, within ``[lo, hi]``."""
    raw = env.get(name, "").strip() or default
    try:
        value = parse_duration(raw)
    except ValueError:
        raise SettingsError(
            f"{name}: expected a duration such as 500ms or 10s, got {raw!r}"
        ) from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}: must be between {lo:g}s and {hi:g}s, got {raw!r}")
    return value


def get_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Return a boolean written as true/false, 1/0, yes/no or on/off."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def get_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Return a comma-separated list, ignoring blanks: ``a, b,c`` gives ``("a", "b", "c")``."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def get_map(env: Mapping[str, str], name: str) -> dict[str, str]:
    """Return comma-separated ``key=value`` pairs as a dict."""
    result: dict[str, str] = {}
    for item in get_list(env, name):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(
                f"{name}: expected key=value pairs separated by commas, got {item!r}"
            )
        result[key.strip()] = value.strip()
    return result


def get_secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret from ``NAME``, or from the file named by ``NAME_FILE`` (Docker secrets style).

    A ``NAME_FILE`` that cannot be read, or holds only whitespace, stops startup: a service that
    silently ran without its token would fail later, further from the cause.
    """
    value = env.get(name, "").strip()
    path = env.get(f"{name}_FILE", "").strip()
    if value and path:
        raise SettingsError(f"{name} and {name}_FILE: set one of them, not both")
    if not path:
        return value or None
    try:
        with open(path, encoding="utf-8") as fh:
            secret = fh.read().strip()
    except OSError as exc:
        raise SettingsError(f"{name}_FILE: cannot read {path!r} ({exc.strerror})") from None
    if not secret:
        raise SettingsError(f"{name}_FILE: {path!r} is empty")
    return secret


def get_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return one of *choices*."""
    value = env.get(name, "").strip() or default
    if value not in choices:
        raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value
