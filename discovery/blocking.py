"""One Consul blocking query, asked again and again: the loop every watch thread runs.

Index handling follows Consul's "Blocking Queries" implementation notes
(https://developer.hashicorp.com/consul/api-docs/features/blocking#implementation-details):
reset to 0 when the index goes backwards, never go below 1, back off with jitter on errors,
and rate-limit the requests (:class:`discovery.pacing.Pacer`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from discovery.backoff import Backoff
from discovery.pacing import Pacer
from discovery.registration import CONSUL_ERRORS

# Ask with the index seen last; answer with (X-Consul-Index, body).
Query = Callable[[int], tuple[str | int | None, object]]
# Given (index, body); returns True to be called again with the next answer even if the
# index has not moved (the watcher is holding back removals and must look again).
Handler = Callable[[int, object], bool]


def next_index(previous: int, returned: int) -> int:
    """The index for the next blocking call, per Consul's index-reset rules."""
    if returned < previous:
        return 0
    return max(returned, 1)


@dataclass(frozen=True)
class Hooks:
    """What a loop reports to its owner besides the answers themselves."""

    on_success: Callable[[int], None]
    on_error: Callable[[BaseException], None]
    # The index went backwards: Consul restarted and lost its state.
    on_reset: Callable[[], None]


def follow(
    stop: threading.Event,
    query: Query,
    handle: Handler,
    hooks: Hooks,
    pacer: Pacer | None = None,
) -> None:
    """Run *query* until *stop* is set, calling *handle* whenever the answer may have changed.

    With a *pacer*, successive requests start at least its ``min_interval`` apart.
    """
    # A short cap: after an outage the watcher is back within ~2 s of Consul.
    index, seen, backoff, again = 0, 0, Backoff(base=0.05, cap=2.0), False
    pacer = pacer or Pacer(0.0)
    while not stop.is_set():
        if (delay := pacer.delay()) > 0 and stop.wait(delay):
            return
        pacer.started()
        try:
            raw_index, result = query(index)
        except CONSUL_ERRORS as exc:
            hooks.on_error(exc)
            # Ask without blocking next time: an agent that restarted has a lower index
            # and would hold a query for the old one until its wait ran out.
            index = 0
            stop.wait(backoff.next_delay())
            continue
        backoff.reset()
        returned = int(raw_index or 0)
        if returned < seen:
            hooks.on_reset()
        if returned != index or index == 0 or again:
            again = handle(returned, result)
        index = seen = next_index(index, returned)
        hooks.on_success(index)
