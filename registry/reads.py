"""What every catalog and health read shares: its prelude, ACL checks, ``?filter=``,
``?node-meta=`` and the blocking answer.

Filters run after the store's lock is released (``answer``'s ``finish``): the query copies the
rows under the lock, so one client's filter never holds up the writes and reads of others.

Entries a token may not read are dropped, as Consul's ACL filter does for list endpoints
(agent/consul/acl.go ``aclFilter``): a service needs service:read on its name and node:read on
its node; a check needs node:read, plus service:read for a service's check. When that drops
something, the answer says so in ``X-Consul-Results-Filtered-By-ACLs: true`` (:class:`AclDrops`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from . import blocking, render
from .acl import Authorizer
from .app import App
from .errors import bad_request
from .filter_eval import Predicate, Struct, compile_filter
from .filter_parse import FilterError
from .model import Check
from .web import Request, Response

#: Set on a list answer ACLs shortened (``setResultsFilteredByACLs`` in agent/http.go).
FILTERED_HEADER = "X-Consul-Results-Filtered-By-ACLs"
#: Longest ``?filter=`` accepted, in characters; Consul sets none, but no real filter comes near.
MAX_FILTER_CHARS = 4096
T = TypeVar("T")


def prelude(app: App, request: Request) -> Authorizer:
    """Resolve the token, then check ``dc``, ``wait``/``index`` and the consistency mode."""
    authz = app.authorize(request)
    blocking.check_datacenter(request, app.config.datacenter)
    blocking.parse_wait(request)
    if request.has("stale") and request.has("consistent"):
        raise bad_request("Cannot specify ?stale with ?consistent, conflicting semantics.")
    return authz


class AclDrops:
    """Whether ACLs dropped entries from an answer, and the header that says so.

    Consul's ACL filter reports whether it removed anything (``QueryMeta.ResultsFilteredByACLs``,
    agent/consul/acl_filter.go); the header carries it only to a request that presented a
    token (``maskResultsFilteredByACLs``), so an anonymous caller learns nothing of what it
    cannot see, and it is never sent as "false". It reflects ACLs alone: ``?filter=``,
    ``?passing`` and ``?node-meta=`` narrowing an answer do not set it.
    """

    def __init__(self, app: App, request: Request) -> None:
        self.has_token = bool(app.request_secret(request))
        self.dropped = False

    def keep(self, allowed: bool) -> bool:
        """Pass *allowed* through, noting a drop."""
        self.dropped |= not allowed
        return allowed

    def headers(self) -> dict[str, str]:
        """The header to add to the answer, if any."""
        return {FILTERED_HEADER: "true"} if self.dropped and self.has_token else {}


def answer(
    app: App,
    request: Request,
    query: Callable[[], tuple[int, T]],
    finish: Callable[[T], Any] | None = None,
    drops: AclDrops | None = None,
) -> Response:
    """Run ``query`` as a blocking query, then ``finish`` on its rows with the store unlocked,
    and answer with Consul's query-meta headers (and *drops*' header from the last run)."""

    def run() -> tuple[int, T]:
        if drops is not None:
            drops.dropped = False  # a blocking query runs again on every write: keep the last
        return query()

    index, rows = blocking.run(app.store, request, run)
    body = finish(rows) if finish is not None else rows
    headers = blocking.meta_headers(request, index)
    if drops is not None:
        headers.update(drops.headers())
    return Response(body=body, headers=headers)


def kept(keep: Predicate) -> Callable[[list[Any]], list[Any]]:
    """A ``finish`` that keeps the rows the filter accepts."""
    return lambda rows: [row for row in rows if keep(row)]


def entry_filter(request: Request, schema: Struct) -> Predicate:
    """The request's ``?filter=`` for entries shaped as ``schema``; keeps all when absent.

    Consul answers a bad filter with 500 and "Failed to create boolean expression evaluator";
    the registry answers 400, since the client is at fault, with the same text. So it answers
    a filter too long (``MAX_FILTER_CHARS``) or too deep (``filter_eval.MAX_FILTER_DEPTH``) to
    evaluate safely, which Consul would take.
    """
    text = request.param("filter")
    if not text:
        return lambda entry: True
    if len(text) > MAX_FILTER_CHARS:
        raise bad_request(
            "Invalid query parameter filter: Failed to create boolean expression evaluator: "
            f"the filter is {len(text)} characters long; the registry accepts at most "
            f"{MAX_FILTER_CHARS}"
        )
    try:
        return compile_filter(text, schema)
    except FilterError as err:
        raise bad_request(
            f"Invalid query parameter filter={text!r}: "
            f"Failed to create boolean expression evaluator: {err}"
        ) from err


def node_meta_matches(request: Request) -> bool:
    """True when the node has every ``?node-meta=key:value`` pair (``ParseMetaPair``)."""
    meta = render.node_meta()
    for pair in request.query.get("node-meta", []):
        key, _, value = pair.partition(":")
        if meta.get(key) != value:
            return False
    return True


def render_checks(app: App, authz: Authorizer, checks: list[Check], drops: AclDrops) -> list[Any]:
    """The checks the token may read, as JSON."""
    return [
        render.check(c, app.node.name) for c in checks if drops.keep(can_read_check(authz, app, c))
    ]


def can_read_check(authz: Authorizer, app: App, check: Check) -> bool:
    """``filterHealthChecks``: node:read always, and service:read for a service's check."""
    if not authz.allowed("node", "read", app.node.name):
        return False
    return not check.service_id or authz.allowed("service", "read", check.service_name)


def can_read_service(authz: Authorizer, app: App, name: str) -> bool:
    """service:read on the name and node:read on the node."""
    return authz.allowed("service", "read", name) and authz.allowed("node", "read", app.node.name)
