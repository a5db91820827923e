"""Tells a check that has not run yet from one that ran and failed, as Consul reports them.

After Consul lost its state, instances register again and their checks start critical with
an empty Output until they run. The watcher holds back such an instance's removal for the
resync grace, but must not hold one whose check ran and failed. Output alone cannot tell:
Consul's agent writes a result that keeps the status (critical, then critical) only after
``check_update_interval`` (5 minutes by default; agent/local/state.go ``UpdateCheck``), so a
first failing run leaves Output "" in the catalog for minutes. What Consul does give:

- a check written since it was registered has ``ModifyIndex > CreateIndex``: it ran (a status
  change, or the deferred write of a new output);
- an interval check runs first within one ``Interval`` of its registration (a random stagger,
  ``lib.RandomStagger`` in agent/checks/check.go; intervals under 1 s count as 1 s) and gives
  up after its ``Timeout`` (10 s by default), both listed with the check. A passing first run
  is written at once, so a check still critical that long after it appeared has run and
  failed.

:class:`FirstRuns` times that from when the watcher first saw the check (a registration is
known by its CreateIndex), which is never before Consul registered it. A TTL check has no
interval (the application reports it), so it is held for the whole grace, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from discovery.durations import parse_duration
from discovery.model import PASSING, Check, Instance

MIN_INTERVAL = 1.0  # checks.MinInterval
DEFAULT_TIMEOUT = 10.0  # Consul's default Timeout of HTTP, TCP and gRPC checks
# For the result of a passing first run to reach the catalog and the watcher.
MARGIN = 1.0


def first_run_within(check: Check) -> float | None:
    """Seconds after registration by which Consul has run *check* once, or None if unknown."""
    if not check.interval:
        return None
    try:
        interval = max(parse_duration(check.interval), MIN_INTERVAL)
        timeout = parse_duration(check.timeout) if check.timeout else DEFAULT_TIMEOUT
    except ValueError:
        return None
    return interval + timeout + MARGIN


class FirstRuns:
    """When the watcher first saw each failing check while a resync is held."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # tests pass a fake clock
        # (instance, check, CreateIndex) -> first seen; emptied when the hold ends.
        self._seen: dict[tuple[str, str, int], float] = {}

    def waiting(self, instance: Instance) -> float | None:
        """If every failing check of *instance* may still await its first run, the time to
        look again (``inf`` when no bound is known); None once one of them has run."""
        now = self.clock()
        due = 0.0
        failing = [c for c in instance.checks if c.status != PASSING]
        for check in failing:
            if check.output or check.modify_index > check.create_index:
                return None
            first = self._seen.setdefault((instance.id, check.check_id, check.create_index), now)
            bound = first_run_within(check)
            if bound is not None and now - first >= bound:
                return None
            due = max(due, float("inf") if bound is None else first + bound)
        return due if failing else None

    def clear(self) -> None:
        """Forget everything: the hold ended."""
        self._seen.clear()
