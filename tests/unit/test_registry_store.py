"""The registry's store: which parked blocking queries a write wakes, and when they give up.

A parked query must wake only for a write that moves an index its answer read, as Consul's memdb
watch sets do; a write to one service must not wake the watchers of another. The tests hold the
store's lock across a write and then look at what is parked, so a woken query cannot run again
and park anew in between: no timing is involved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from registry.disconnects import Cancel
from registry.model import Check, Node, Service
from registry.store import Store
from tests.polling import wait_for

DEADLINE = 10.0


def _store() -> Store:
    return Store(Node(name="node", node_id="id", address="127.0.0.1", datacenter="dc1"))


def _register(store: Store, name: str, number: int = 0) -> None:
    store.register_service(Service(service_id=f"{name}-{number}", name=name), (), ())


@contextmanager
def _parked(
    store: Store, query: Callable[[], tuple[int, object]], cancel: Cancel | None = None
) -> Iterator[dict[str, object]]:
    """Run a blocking query in a thread until it has parked; yield what it returns, later."""
    first = query()[0]
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["result"] = store.block(query, lambda r: r[0] > first, DEADLINE, cancel)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: store.parked() == 1, DEADLINE, "the query to park")
    yield outcome
    thread.join(DEADLINE)
    assert not thread.is_alive(), "the blocking query never returned"


def test_a_write_to_another_service_does_not_wake_a_query_on_one_service() -> None:
    store = _store()
    _register(store, "a")
    _register(store, "b")

    def query() -> tuple[int, object]:
        return store.service_index("a", True, with_checks=True), None

    with _parked(store, query) as outcome, store.lock:
        _register(store, "b", 1)
        store.put_check(Check(check_id="b-check", name="b", service_id="b-0", service_name="b"))
        assert store.parked() == 1, "a write to service b woke the query on service a"
        _register(store, "a", 1)
        assert store.parked() == 0, "a write to service a left its query parked"
    assert outcome["result"] == (store.service_index("a", True, True), None)


@pytest.mark.parametrize(
    ("tables", "write", "wakes"),
    [
        (("checks",), lambda s: s.put_check(Check(check_id="c", name="c")), True),
        (("checks",), lambda s: _register(s, "x"), False),
        (("services",), lambda s: _register(s, "x"), True),
        (("services",), lambda s: s.put_check(Check(check_id="c", name="c")), False),
    ],
)
def test_a_query_on_a_table_wakes_only_for_writes_to_that_table(
    tables: tuple[str, ...], write: Callable[[Store], None], wakes: bool
) -> None:
    store = _store()

    def query() -> tuple[int, object]:
        return store.table_index(*tables), None

    with _parked(store, query):
        with store.lock:
            write(store)
            assert store.parked() == (0 if wakes else 1)
        if not wakes:
            _register(store, "y")
            store.put_check(Check(check_id="other", name="other"))


def test_a_query_on_a_service_that_goes_away_wakes_on_its_extinction() -> None:
    store = _store()
    _register(store, "gone")

    def query() -> tuple[int, object]:
        exists = store.service("gone-0") is not None
        return store.service_index("gone", exists, with_checks=True), None

    with _parked(store, query), store.lock:
        store.deregister_service("gone-0")
        assert store.parked() == 0


def test_a_query_that_reads_no_index_wakes_on_any_write() -> None:
    store = _store()

    def query() -> tuple[int, object]:
        return len(store.services()), None

    with _parked(store, query), store.lock:
        _register(store, "unrelated")
        assert store.parked() == 0


def test_a_cancelled_query_returns_at_once_and_leaves_nothing_parked() -> None:
    fire: list[Callable[[], None]] = []
    disarmed: list[bool] = []

    def arm(gone: Callable[[], None]) -> Callable[[], None]:
        fire.append(gone)
        return lambda: disarmed.append(True)

    store = _store()
    cancel = Cancel(arm)

    def query() -> tuple[int, object]:
        return store.table_index("services"), None

    with _parked(store, query, cancel) as outcome:
        assert len(fire) == 1
        fire[0]()
    assert cancel.is_set()
    assert outcome["result"] == (store.table_index("services"), None)
    assert store.parked() == 0
    assert disarmed == [True]
