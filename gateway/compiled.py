"""Which modules of the proxy's hot path are compiled to C (mypyc), and whether the build is
current.

The source stays plain, typed Python (``mypy --strict``); ``make compile`` (scripts/compile.py)
and the gateway image build these modules with mypyc into extension modules beside their
sources, which Python then imports instead. Compiled, the proxy's own CPU per request drops by
about a third (``make hotpath``), since calls between its classes and their attribute reads
become C. Without a build (``make clean-compiled``) everything runs as plain Python, the same.

A compiled module older than its source would run code that is no longer there:
:func:`stale` finds those, and the test suite refuses to start on any.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = (
    "gateway.access",
    "gateway.admission",
    "gateway.answers",
    "gateway.body",
    "gateway.candidates",
    "gateway.deadlines",
    "gateway.errors",
    "gateway.forward",
    "gateway.framing",
    "gateway.front",
    "gateway.headers",
    "gateway.metrics",
    "gateway.policy",
    "gateway.pool",
    "gateway.proxy",
    "gateway.ratelimit",
    "gateway.relay",
    "gateway.reply",
    "gateway.request",
    "gateway.retry",
    "gateway.routing",
    "gateway.upstream",
    "discovery.balancer",
    "discovery.model",
    "discovery.stats",
    "discovery.tracing",
    "discovery.window",
)


def source(module: str) -> Path:
    """The ``.py`` file of *module*."""
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def built(module: str) -> list[Path]:
    """The compiled files of *module* beside its source (none when it runs as Python)."""
    path = source(module)
    return sorted(path.parent.glob(f"{path.stem}.*.so"))


def stale() -> list[str]:
    """The modules whose compiled file is older than their source."""
    return [m for m in MODULES for so in built(m) if so.stat().st_mtime < source(m).stat().st_mtime]


def running_compiled() -> bool:
    """Whether this process imports the hot path compiled (checked on one of its modules)."""
    spec = importlib.util.find_spec("gateway.front")
    return spec is not None and spec.origin is not None and spec.origin.endswith(".so")
