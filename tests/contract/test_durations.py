"""Durations as Go holds them: int64 nanoseconds, so nothing above 2562047h47m16.854775807s.

Consul reads a check's ``Interval``, ``Timeout``, ``TTL`` and ``DeregisterCriticalServiceAfter``
with ``time.ParseDuration`` (``CheckType.UnmarshalJSON``, agent/structs/check_type.go), which
refuses a duration past int64 with 'time: invalid duration "<text>"' (src/time/format.go), and
the decode error is a 400 "Request decode failed: ...". Any duration it takes, a check runs
with: a check never stops running because its timer or timeout is long.
"""

from __future__ import annotations

from typing import Any

import pytest

from registry.launcher import free_port

from .helpers import Api, wait_for

pytestmark = pytest.mark.contract

DEADLINE = 15.0
#: The longest duration Go parses: 1<<63 - 1 nanoseconds.
LONGEST = "2562047h47m16.854775807s"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Interval", "99999999999h"),
        ("Interval", "2562048h"),
        ("Timeout", "2562047h47m16.854775808s"),
        ("TTL", "9223372036854775808ns"),
        ("DeregisterCriticalServiceAfter", "153722867281m"),
    ],
)
def test_a_duration_past_int64_nanoseconds_is_refused_as_go_refuses_it(
    api: Api, name: str, registered: list[str], field: str, value: str
) -> None:
    check: dict[str, Any] = {"TCP": "127.0.0.1:9", "Interval": "10s"}
    if field == "TTL":
        check = {}
    check[field] = value
    registered.append(name)
    response = api.put("/v1/agent/service/register", json={"Name": name, "Check": check})
    assert (response.status_code, response.text) == (
        400,
        f'Request decode failed: time: invalid duration "{value}"',
    )
    assert name not in api.get("/v1/agent/services").json()
    standalone = api.put("/v1/agent/check/register", json={"Name": name, **check})
    assert standalone.status_code == 400
    assert f'time: invalid duration "{value}"' in standalone.text


@pytest.mark.parametrize("kind", ["TCP", "HTTP"])
def test_a_check_with_the_longest_timeout_go_takes_still_runs(
    api: Api, name: str, registered: list[str], kind: str
) -> None:
    port = free_port()  # nothing listens there: every probe is refused at once
    target = f"127.0.0.1:{port}" if kind == "TCP" else f"http://127.0.0.1:{port}/health"
    check = {kind: target, "Interval": "1s", "Timeout": LONGEST, "Status": "passing"}
    registered.append(name)
    response = api.put("/v1/agent/service/register", json={"Name": name, "Check": check})
    assert response.status_code == 200, response.text

    def refused() -> dict[str, Any] | None:
        found = api.get("/v1/agent/checks").json().get(f"service:{name}") or {}
        return found if found.get("Status") == "critical" else None

    found = wait_for(refused, DEADLINE, f"the {kind} check of a closed port to turn critical")
    assert "connection refused" in found["Output"]


def test_a_ttl_check_with_the_longest_ttl_go_takes_keeps_taking_updates(
    api: Api, name: str, registered: list[str]
) -> None:
    registered.append(name)
    body = {"Name": name, "Check": {"TTL": LONGEST}}
    assert api.put("/v1/agent/service/register", json=body).status_code == 200
    check_id = f"service:{name}"
    for status, verb in (("passing", "pass"), ("warning", "warn"), ("passing", "pass")):
        assert api.put(f"/v1/agent/check/{verb}/{check_id}", note=status).status_code == 200
        check = api.get("/v1/agent/checks").json()[check_id]
        assert (check["Status"], check["Output"]) == (status, status)
