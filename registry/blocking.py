"""Blocking queries as Consul serves them (docs: api-docs/features/blocking).

- ``index`` and ``wait`` are read like ``parseWait`` (agent/http.go): a bad value is
  400 "Invalid index" / "Invalid wait time"; ``wait`` is a Go duration.
- The wait is capped at 10 minutes, defaults to 5 minutes when missing or not positive, and gets
  up to ``wait / 16`` of random jitter (``RPCQueryTimeout`` in agent/consul/rpc.go).
- Index 0, or an index older than the result's, answers at once; otherwise the query waits
  until its result's index passes the given one (``blockingquery.Query``) or the wait ends.
- ``X-Consul-Index`` is never 0: 0 is sent as 1 (``setIndex``).
- A query whose client disconnects stops waiting at once, as the request context of Consul's
  Go server is cancelled (``disconnects``); nothing is answered then.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .durations import DurationError, parse_duration
from .errors import ApiError, bad_request
from .store import Store
from .web import Request

MAX_QUERY_TIME = 600.0
DEFAULT_QUERY_TIME = 300.0
JITTER_FRACTION = 16
_UINT64_MAX = 2**64 - 1

T = TypeVar("T")


@dataclass(frozen=True)
class QueryOptions:
    """The blocking part of a request: the index seen last and the wait asked for."""

    min_index: int = 0
    max_query_time: float = 0.0


def parse_wait(request: Request) -> QueryOptions:
    """Read ``?wait=`` and ``?index=`` with Consul's errors."""
    wait = 0.0
    if raw_wait := request.param("wait"):
        try:
            wait = parse_duration(raw_wait)
        except DurationError as err:
            raise bad_request("Invalid wait time") from err
    index = 0
    if raw_index := request.param("index"):
        if not raw_index.isascii() or not raw_index.isdigit() or int(raw_index) > _UINT64_MAX:
            raise bad_request("Invalid index")
        index = int(raw_index)
    return QueryOptions(min_index=index, max_query_time=wait)


def query_timeout(wait: float, jitter: Callable[[], float] = random.random) -> float:
    """The time a blocking query may hold, jitter included."""
    if wait > MAX_QUERY_TIME:
        wait = MAX_QUERY_TIME
    elif wait <= 0:
        wait = DEFAULT_QUERY_TIME
    return wait + jitter() * (wait / JITTER_FRACTION)


def run(store: Store, request: Request, query: Callable[[], tuple[int, T]]) -> tuple[int, T]:
    """Answer ``query`` at once, or block as the request's ``index``/``wait`` ask."""
    options = parse_wait(request)
    if options.min_index == 0:
        with store.lock:
            return query()
    timeout = query_timeout(options.max_query_time)
    return store.block(query, lambda result: result[0] > options.min_index, timeout, request.cancel)


def meta_headers(request: Request, index: int) -> dict[str, str]:
    """The query-meta headers of every blocking endpoint (``setMeta``)."""
    if request.has("stale"):
        consistency = "stale"
    elif request.has("consistent"):
        consistency = "consistent"
    else:
        consistency = "leader"
    return {
        "X-Consul-Index": str(max(index, 1)),
        "X-Consul-KnownLeader": "true",
        "X-Consul-LastContact": "0",
        "X-Consul-Effective-Consistency": consistency,
    }


def check_datacenter(request: Request, datacenter: str) -> None:
    """Refuse another datacenter as a lone dev agent does (no WAN peers)."""
    dc = request.param("dc")
    if dc and dc != datacenter:
        raise ApiError(500, "No path to datacenter")
