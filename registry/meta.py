"""Service metadata checked as Consul checks it: ``structs.ValidateServiceMetadata``.

agent/structs/structs.go ``validateMetadata`` and ``validateMetaPair``: at most 64 pairs; a key
is 1 to 128 characters of ``[a-zA-Z0-9_-]`` and may not start with "consul-" (reserved for
Consul itself); a value is at most 512 bytes (Go's ``len``, though the message says
characters). ``AgentRegisterService`` answers a violation with 400 "Invalid Service Meta: ..."
and the texts below. Go walks the map in random order, so with several bad pairs Consul names
any one of them; the registry names the first in the body's order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

RESERVED_PREFIX = "consul-"
MAX_PAIRS = 64
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 512
_KEY_FORMAT = re.compile(r"[a-zA-Z0-9_-]+")


def meta_problem(meta: Mapping[str, str]) -> str | None:
    """Consul's reason for refusing ``meta``, or None when it is valid."""
    if len(meta) > MAX_PAIRS:
        return f"Node metadata cannot contain more than {MAX_PAIRS} key/value pairs"
    for key, value in meta.items():
        reason = _pair_problem(key, value)
        if reason is not None:
            return f"Couldn't load metadata pair ('{key}', '{value}'): {reason}"
    return None


def _pair_problem(key: str, value: str) -> str | None:
    if key == "":
        return "Key cannot be blank"
    if not _KEY_FORMAT.fullmatch(key):
        return "Key contains invalid characters"
    if len(key) > MAX_KEY_LENGTH:
        return f"Key is too long (limit: {MAX_KEY_LENGTH} characters)"
    if key.startswith(RESERVED_PREFIX):
        return f"Key prefix '{RESERVED_PREFIX}' is reserved for internal use"
    if len(value.encode()) > MAX_VALUE_LENGTH:
        return f"Value is too long (limit: {MAX_VALUE_LENGTH} characters)"
    return None
