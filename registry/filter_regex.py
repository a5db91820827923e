"""The regular expressions of ``matches`` and ``not matches``, in RE2 as Consul's are.

bexpr compiles the pattern with Go's ``regexp``, an RE2 engine: matching takes time linear in
the input, whatever the pattern. Python's ``re`` backtracks, so a pattern such as
``^(.|.)*!$`` takes time doubling with each character of the value, and the registry evaluates
filters for every client. ``google-re2`` binds the same RE2 library, so patterns that RE2
refuses (backreferences, lookaround) are refused here too, and no pattern can stall a request.
Patterns are also capped in length, since RE2's compile time and memory grow with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import re2

from .filter_parse import FilterError

#: Longest pattern accepted, in characters; far more than any filter needs.
MAX_PATTERN_CHARS = 1024
_OPTIONS = re2.Options()
# RE2 would otherwise log each bad pattern to stderr itself; the client gets the error instead.
_OPTIONS.log_errors = False

# RE2 takes a repeat count too large to parse ({4294967296}) as literal text, where Go's
# parser refuses it as it refuses any count above 1000; refuse it the same way.
_HUGE_REPEAT = re.compile(r"(?<!\\)\{(?:[0-9]{9,}(?:,[0-9]*)?|[0-9]+,[0-9]{9,})\}")
Search = Callable[[str], bool]


def compile_pattern(pattern: str) -> Search:
    """A test that ``pattern`` matches somewhere in a string; raise ``FilterError`` if bad."""
    where = f'Failed to compile regular expression "{pattern[:80]}"'
    if len(pattern) > MAX_PATTERN_CHARS:
        raise FilterError(
            f"{where}: the pattern is {len(pattern)} characters long; "
            f"the registry accepts at most {MAX_PATTERN_CHARS}"
        )
    if found := _HUGE_REPEAT.search(pattern):
        raise FilterError(f"{where}: invalid repeat count: `{found.group()}`")
    try:
        compiled: Any = re2.compile(pattern, _OPTIONS)
    except re2.error as err:
        raise FilterError(f"{where}: {_reason(err)}") from err
    return lambda text: compiled.search(text) is not None


def _reason(err: Exception) -> str:
    # The binding reports RE2's message as bytes.
    reason = err.args[0] if err.args else err
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
