"""Go duration strings, parsed and printed exactly as Consul (Go's ``time`` package) does.

Consul reads ``wait``, ``Interval``, ``Timeout``, ``TTL`` and ``DeregisterCriticalServiceAfter``
with ``time.ParseDuration`` and prints check intervals with ``Duration.String()``; both are
mirrored here, error texts included, so the registry answers bad input with Consul's words.
"""

from __future__ import annotations

NANOSECOND = 1
SECOND = 1_000_000_000
#: 1<<63: Go accumulates durations in uint64 and refuses a positive one past 1<<63 - 1.
_INT64_LIMIT = 1 << 63
#: The longest duration Go accepts, 2562047h47m16.854775807s, in nanoseconds.
MAX_DURATION_NS = _INT64_LIMIT - 1
#: The longest single wait, in seconds, the registry hands a thread or a socket. Go's timers
#: take any duration it parses; Python's waits overflow past ``threading.TIMEOUT_MAX`` (about
#: 292 years on 64-bit Linux, less elsewhere), so a longer wait is taken in pieces of a day,
#: and a probe's timeout is cut to a day.
WAIT_PIECE = 86400.0

_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # U+00B5 micro sign
    "\u03bcs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": SECOND,
    "m": 60 * SECOND,
    "h": 3600 * SECOND,
}


class DurationError(ValueError):
    """A string that Go's ``time.ParseDuration`` rejects; ``str()`` is Go's error text."""


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration string ("1.5s", "1m30s", "300ms") into integer nanoseconds.

    As ``time.ParseDuration``: the result must fit Go's int64 nanoseconds, so anything above
    2562047h47m16.854775807s is invalid, and a fraction counts through float64 as in Go.
    """
    invalid = DurationError(f'time: invalid duration "{text}"')
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or rest[0].isdigit()):
            raise invalid
        whole, rest = _take_digits(rest)
        significant = whole.lstrip("0")
        if len(significant) > 19 or (significant and int(significant) > _INT64_LIMIT):
            raise invalid  # leadingInt's overflow
        digits = ""
        if rest.startswith("."):
            digits, rest = _take_digits(rest[1:])
        if not whole and not digits:
            raise invalid
        unit_end = 0
        while unit_end < len(rest) and rest[unit_end] != "." and not rest[unit_end].isdigit():
            unit_end += 1
        unit, rest = rest[:unit_end], rest[unit_end:]
        if not unit:
            raise DurationError(f'time: missing unit in duration "{text}"')
        if unit not in _UNITS:
            raise DurationError(f'time: unknown unit "{unit}" in duration "{text}"')
        scale = _UNITS[unit]
        value = int(significant or "0")
        if value > _INT64_LIMIT // scale:
            raise invalid
        value *= scale
        fraction, divisor = _leading_fraction(digits)
        if fraction > 0:
            value += int(float(fraction) * (float(scale) / divisor))
            if value > _INT64_LIMIT:
                raise invalid
        total += value
        if total > _INT64_LIMIT:
            raise invalid
    if negative:
        return -total
    if total > _INT64_LIMIT - 1:
        raise invalid
    return total


def parse_duration(text: str) -> float:
    """Parse a Go duration string into seconds."""
    return parse_duration_ns(text) / SECOND


def format_duration(nanos: int) -> str:
    """Print nanoseconds as Go's ``Duration.String()`` does ("10s", "1m0s", "1.5s", "500ms")."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    value = abs(nanos)
    if value < 1_000:
        return f"{sign}{value}ns"
    if value < 1_000_000:
        return f"{sign}{_with_fraction(value, 3)}\u00b5s"
    if value < SECOND:
        return f"{sign}{_with_fraction(value, 6)}ms"
    seconds, fraction = divmod(value, SECOND)
    text = f"{seconds % 60}{_fraction_digits(fraction, 9)}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def _leading_fraction(digits: str) -> tuple[int, float]:
    # Go's leadingFraction: the digits as an integer and 10**count, ignoring the digits that
    # would overflow, whose precision is lost anyway.
    value, divisor = 0, 1.0
    for digit in digits:
        if value > (_INT64_LIMIT - 1) // 10:
            break
        bigger = value * 10 + int(digit)
        if bigger > _INT64_LIMIT:
            break
        value, divisor = bigger, divisor * 10
    return value, divisor


def _take_digits(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[:end], text[end:]


def _with_fraction(value: int, precision: int) -> str:
    whole, fraction = divmod(value, 10**precision)
    return f"{whole}{_fraction_digits(fraction, precision)}"


def _fraction_digits(fraction: int, precision: int) -> str:
    if not fraction:
        return ""
    return "." + f"{fraction:0{precision}d}".rstrip("0")
