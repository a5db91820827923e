"""Workers' metrics files: each worker's counts are added once, even after the worker exits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway import metrics
from gateway.metrics_share import EXITED, MetricsShare, fold_exited


def write(folder: Path, name: str, requests: list[list[Any]], known: list[str] | None) -> None:
    snap = {"known": known, "series": {"gateway_requests": requests}}
    (folder / name).write_text(json.dumps(snap))


def requests_of(share: MetricsShare) -> dict[tuple[str, str], float]:
    rows = share.gather()["series"]["gateway_requests"]
    return {(service, code): n for service, code, n in rows}


@pytest.fixture
def share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MetricsShare:
    """The end of a worker that has counted nothing itself and knows services a and b."""
    monkeypatch.setattr(metrics.Worker, "known", frozenset({"a", "b"}))
    write(tmp_path, "worker-1-aa.json", [["a", "200", 5], ["b", "200", 1]], ["a", "b"])
    write(tmp_path, "worker-2-bb.json", [["a", "200", 2], ["gone", "200", 9]], ["a", "b", "gone"])
    return MetricsShare(str(tmp_path), 3)


def test_a_scrape_adds_up_every_workers_counts_for_the_services_listed_now(
    share: MetricsShare,
) -> None:
    assert requests_of(share) == {("a", "200"): 7, ("b", "200"): 1}


def test_the_counts_of_an_exited_worker_stay_in_the_scrape(
    share: MetricsShare, tmp_path: Path
) -> None:
    fold_exited(str(tmp_path), 2)
    assert not (tmp_path / "worker-2-bb.json").exists()
    assert requests_of(share) == {("a", "200"): 7, ("b", "200"): 1}
    fold_exited(str(tmp_path), 1)
    assert [p.name for p in tmp_path.iterdir()] == [EXITED]
    assert requests_of(share) == {("a", "200"): 7, ("b", "200"): 1}


def test_a_scrape_between_the_masters_two_steps_counts_an_exited_worker_once(
    share: MetricsShare, tmp_path: Path
) -> None:
    kept = (tmp_path / "worker-2-bb.json").read_text()
    fold_exited(str(tmp_path), 2)
    (tmp_path / "worker-2-bb.json").write_text(kept)  # as if not yet removed
    assert requests_of(share) == {("a", "200"): 7, ("b", "200"): 1}


def test_an_exited_workers_counts_keep_only_the_services_its_catalog_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "worker-1-aa.json", [["old", "200", 4], ["a", "200", 1]], ["a", "old"])
    fold_exited(str(tmp_path), 1)
    write(tmp_path, "worker-2-bb.json", [["a", "200", 1]], ["a"])
    fold_exited(str(tmp_path), 2)  # by now the catalog had dropped "old"
    exited = json.loads((tmp_path / EXITED).read_text())
    assert exited["series"]["gateway_requests"] == [["a", "200", 2]]


def test_an_unreadable_file_is_skipped_not_an_error(share: MetricsShare, tmp_path: Path) -> None:
    (tmp_path / "worker-9-cc.json").write_text("{not json")
    assert requests_of(share) == {("a", "200"): 7, ("b", "200"): 1}


def test_a_worker_writes_only_when_it_counted_something(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "TALLY", metrics.Tally())
    monkeypatch.setattr(metrics.Worker, "known", None)
    share = MetricsShare(str(tmp_path), 4)
    asyncio.run(share.publish())
    written = tmp_path / share.name
    assert written.exists()
    written.write_text("{}")  # a marker: a rewrite would replace it
    asyncio.run(share.publish())
    assert written.read_text() == "{}"
    metrics.observe("a", 200, 0.001)
    asyncio.run(share.publish())
    assert json.loads(written.read_text())["series"]["gateway_requests"] == [["a", "200", 1]]
