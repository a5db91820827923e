"""Paths for the operator, not for clients: a service's /admin tree and its /metrics."""

from __future__ import annotations

import pytest

from gateway.policy import is_admin_path


@pytest.mark.parametrize(
    "path",
    [b"/admin/faults", b"//admin/faults", b"/%61dmin/x", b"/metrics", b"/Metrics", b"//metrics",
     b"/%6detrics", b"/metrics/", b"/metrics?x=1"],
)  # fmt: skip
def test_operator_paths_are_recognised_however_spelled(path: bytes) -> None:
    assert is_admin_path(path.partition(b"?")[0])


@pytest.mark.parametrize(
    "path", [b"/", b"/items", b"/items/metrics", b"/metricsx", b"/administrator", b"/x/admin"]
)
def test_other_paths_are_routed(path: bytes) -> None:
    assert not is_admin_path(path)
