"""Which services the watcher reads again after its two catalog-wide watches answer."""

from __future__ import annotations

import pytest

from discovery.catalog_diff import CatalogDiff, Changes, WorkList
from discovery.fingerprints import CheckRow

NOW = 100.0


def row(service: str, index: int, status: str = "passing", node: str = "n1") -> CheckRow:
    """The check of instance ``<service>-1``; an empty *service* is a check of *node*."""
    return CheckRow(
        node=node,
        check_id=f"check-{service or node}",
        service_id=f"{service}-1" if service else "",
        service_name=service,
        status=status,
        modify_index=index,
    )


def synced(services: dict[str, int], index: int = 10) -> CatalogDiff:
    """A diff that has seen both views once: *services* maps a name to its check's index."""
    diff = CatalogDiff()
    diff.on_listing(index, {name: [] for name in services}, NOW)
    diff.on_checks(index, [row(name, i) for name, i in services.items()])
    return diff


@pytest.mark.parametrize("listing_first", [True, False])
def test_everything_is_read_once_both_views_have_answered(listing_first: bool) -> None:
    diff = CatalogDiff()

    def listing() -> Changes:
        return diff.on_listing(5, {"a": [], "consul": []}, NOW)

    def checks() -> Changes:
        return diff.on_checks(5, [row("a", 5)])

    first, last = (listing, checks) if listing_first else (checks, listing)
    assert not first().everything and not diff.ready
    assert last().everything and diff.ready
    assert diff.names == {"a"}  # Consul's own service is never routed


@pytest.mark.parametrize(
    ("rows", "dirty"),
    [
        ([row("a", 11, "critical"), row("b", 10)], {"a"}),  # a status change
        ([row("b", 10), row("a", 10)], set()),  # the same checks: nothing moved
        ([row("b", 10)], {"a"}),  # a's check is gone
        ([row("a", 10), row("b", 13, "warning"), row("c", 13)], {"b"}),  # c is not listed yet
    ],
)
def test_only_services_whose_checks_moved_are_read(rows: list[CheckRow], dirty: set[str]) -> None:
    diff = synced({"a": 10, "b": 10})
    changes = diff.on_checks(13, rows)
    assert changes.dirty == dirty and not changes.everything


def test_a_node_check_moves_every_service_on_that_node() -> None:
    diff = synced({"a": 10, "b": 10})
    diff.on_checks(10, [row("a", 10), row("b", 10, node="n2"), row("", 10)])
    diff.on_listing(10, {"a": [], "b": [], "bare": []}, NOW)
    diff.on_read("bare", ["n1"])  # an instance without checks, seen by reading the service
    changes = diff.on_checks(11, [row("a", 10), row("b", 10, node="n2"), row("", 11)])
    assert changes.dirty == {"a", "bare"}


def test_new_and_retagged_names_are_read_and_gone_names_leave() -> None:
    diff = synced({"a": 10, "b": 10})
    changes = diff.on_listing(11, {"a": ["v2"], "c": []}, NOW)
    assert changes.dirty == {"a", "c"} and not changes.everything
    assert diff.names == {"a", "c"}


@pytest.mark.parametrize("checks_first", [True, False])
def test_a_services_index_move_with_a_check_written_at_it_reads_nothing_more(
    checks_first: bool,
) -> None:
    diff = synced({"a": 10})
    # A new instance of "a" registered with its check in one write, at index 11.
    rows = [row("a", 10), CheckRow("n1", "check-a2", "a-2", "a", "passing", 11)]
    if checks_first:
        assert diff.on_checks(11, rows).dirty == {"a"}
        assert not diff.on_listing(11, {"a": []}, NOW).everything
    else:
        assert not diff.on_listing(11, {"a": []}, NOW).everything
        assert diff.probe_wanted
        assert not diff.on_probe(11).everything
        assert diff.on_checks(11, rows).dirty == {"a"}
    assert diff.deadline is None
    assert not diff.expire(NOW + 60).everything


def test_a_services_index_move_the_checks_table_never_reached_reads_everything() -> None:
    diff = synced({"a": 10, "b": 10})
    diff.on_listing(12, {"a": [], "b": []}, NOW)  # a new port for "a": no check written
    assert diff.probe_wanted
    changes = diff.on_probe(10)
    assert changes.everything and not diff.probe_wanted


def test_a_services_index_move_the_checks_table_passed_without_trace_reads_everything() -> None:
    diff = synced({"a": 10, "b": 10})
    diff.on_listing(12, {"a": [], "b": []}, NOW)
    assert not diff.on_probe(13).everything  # the checks table moved on meanwhile
    changes = diff.on_checks(13, [row("a", 10), row("b", 13, "critical")])
    assert changes.everything and changes.dirty == {"b"}


def test_an_unexplained_move_waits_at_most_until_its_deadline_when_the_probe_fails() -> None:
    diff = synced({"a": 10})
    diff.on_listing(12, {"a": []}, NOW)
    assert not diff.on_probe(None).everything and not diff.probe_wanted
    assert diff.deadline == NOW + diff.explain_wait
    assert not diff.expire(NOW + diff.explain_wait / 2).everything
    assert diff.expire(NOW + diff.explain_wait).everything
    assert diff.deadline is None


def test_deleting_an_instance_with_checks_explains_the_move_but_one_without_does_not() -> None:
    diff = synced({"a": 10, "b": 10})
    # Deleting b-1 deletes its check in the same write, at 11.
    assert diff.on_checks(11, [row("a", 10)]).dirty == {"b"}
    assert not diff.on_listing(11, {"a": [], "b": []}, NOW).everything
    # Deleting an instance without checks moves the checks index too (deleteServiceTxn),
    # but nothing in the checks tells which service lost it.
    diff.on_checks(12, [row("a", 10)])
    assert diff.on_listing(12, {"a": [], "b": []}, NOW).everything


@pytest.mark.parametrize(("gap_rows", "skipped"), [([], True), ([row("a", 11, "warning")], False)])
def test_a_move_over_indexes_no_check_explains_asks_for_a_full_read_soon(
    gap_rows: list[CheckRow], skipped: bool
) -> None:
    diff = synced({"a": 10, "b": 10})
    # 11: a new port for a-1 (no check), or a check write; 12: b-2 registered with its check.
    # The services watch saw only 12.
    for check in gap_rows:
        diff.on_checks(11, [check, row("b", 10)])
    b2 = CheckRow("n1", "check-b2", "b-2", "b", "passing", 12)
    changes = diff.on_checks(12, [*(gap_rows or [row("a", 10)]), row("b", 10), b2])
    changes.merge(diff.on_listing(12, {"a": [], "b": []}, NOW))
    assert "b" in changes.dirty and not changes.everything
    assert changes.skipped is skipped


def test_a_new_name_without_checks_over_skipped_indexes_asks_for_a_full_read_soon() -> None:
    diff = synced({"a": 10})
    changes = diff.on_listing(13, {"a": [], "bare": []}, NOW)
    assert changes.dirty == {"bare"} and diff.probe_wanted
    changes = diff.on_probe(10)  # no check write since 10: 11 and 12 were something else
    assert changes.skipped and not changes.everything


def test_an_index_going_backwards_reads_everything() -> None:
    diff = synced({"a": 10}, index=50)
    assert diff.on_listing(3, {}, NOW).everything
    assert diff.names == set()


def test_urgent_reads_come_before_a_full_read_and_leave_it() -> None:
    work = WorkList()
    work.add({"c", "a", "b"}, urgent=False)
    work.add({"b"}, urgent=True)
    work.add({"b"}, urgent=False)  # already urgent: stays so
    assert [work.pop() for _ in range(3)] == [("b", True), ("a", False), ("c", False)]
    assert not work
