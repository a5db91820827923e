"""Checks really run: HTTP checks at their interval, TTL expiry, and maintenance mode.

Consul: agent/checks/check.go (CheckHTTP: 2xx passing, 429 warning, else critical; CheckTTL),
api-docs/agent/check, api-docs/agent/service#enable-maintenance-mode.
"""

from __future__ import annotations

from typing import Any

import pytest

from registry.launcher import free_port

from .helpers import Api, StatusServer, wait_for

pytestmark = pytest.mark.contract

DEADLINE = 15.0


def _check(api: Api, check_id: str) -> dict[str, Any]:
    return dict(api.get("/v1/agent/checks").json().get(check_id) or {})


def _wait_status(api: Api, check_id: str, status: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        check = _check(api, check_id)
        return check if check.get("Status") == status else None

    return wait_for(probe, DEADLINE, f"check {check_id} to be {status}")


def _register(api: Api, registered: list[str], name: str, check: dict[str, Any]) -> str:
    registered.append(name)
    response = api.put("/v1/agent/service/register", json={"Name": name, "Check": check})
    assert response.status_code == 200, response.text
    return f"service:{name}"


def test_new_checks_start_critical_unless_a_status_is_given(
    api: Api, name: str, registered: list[str]
) -> None:
    for status in ("", "passing", "warning"):
        check: dict[str, Any] = {"TTL": "10m"} | ({"Status": status} if status else {})
        check_id = _register(api, registered, f"{name}-{status or 'none'}", check)
        assert _check(api, check_id)["Status"] == (status or "critical")


def test_http_check_follows_the_status_code_of_its_target(
    api: Api, name: str, registered: list[str], check_target: StatusServer
) -> None:
    url = check_target.url
    check_id = _register(api, registered, name, {"HTTP": url, "Interval": "1s", "Timeout": "2s"})
    check = _wait_status(api, check_id, "passing")
    assert check["Output"] == f"HTTP GET {url}: 200 OK Output: ok"
    assert (check["Type"], check["Interval"], check["Timeout"]) == ("http", "1s", "2s")
    check_target.status = 429
    check = _wait_status(api, check_id, "warning")
    assert check["Output"].startswith(f"HTTP GET {url}: 429 Too Many Requests")
    check_target.status = 500
    check = _wait_status(api, check_id, "critical")
    assert check["Output"].startswith(f"HTTP GET {url}: 500 Internal Server Error")
    check_target.status = 204
    _wait_status(api, check_id, "passing")


def test_http_check_without_an_answer_is_critical_and_says_why(
    api: Api, name: str, registered: list[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    check = {"HTTP": url, "Interval": "1s", "Status": "passing"}
    check_id = _register(api, registered, name, check)
    check = _wait_status(api, check_id, "critical")
    assert check["Output"].startswith(f'Get "{url}": ')
    assert "connection refused" in check["Output"]


def test_http_check_slower_than_its_timeout_is_critical(
    api: Api, name: str, registered: list[str], check_target: StatusServer
) -> None:
    check_target.delay = 3.0
    check = {"HTTP": check_target.url, "Interval": "1s", "Timeout": "500ms", "Status": "passing"}
    check_id = _register(api, registered, name, check)
    check = _wait_status(api, check_id, "critical")
    assert "Timeout exceeded" in check["Output"]


def test_ttl_check_turns_critical_when_its_ttl_expires(
    api: Api, name: str, registered: list[str]
) -> None:
    check_id = _register(api, registered, name, {"TTL": "1s", "Status": "passing"})
    assert _wait_status(api, check_id, "critical")["Output"] == "TTL expired"
    assert api.put(f"/v1/agent/check/pass/{check_id}", note="back").status_code == 200
    assert _check(api, check_id)["Output"] == "back"
    expired = _wait_status(api, check_id, "critical")
    assert expired["Output"] == "TTL expired (last output before timeout follows): back"
    update = {"Status": "warning", "Output": "slow"}
    assert api.put(f"/v1/agent/check/update/{check_id}", json=update).status_code == 200
    assert (_check(api, check_id)["Status"], _check(api, check_id)["Output"]) == ("warning", "slow")


def test_maintenance_adds_a_critical_check_until_disabled(
    api: Api, name: str, registered: list[str]
) -> None:
    _register(api, registered, name, {"TTL": "10m", "Status": "passing"})
    maintenance_id = f"_service_maintenance:{name}"
    path = f"/v1/agent/service/maintenance/{name}"
    assert api.put(path, enable="true", reason="upgrade").status_code == 200
    check = _check(api, maintenance_id)
    assert (check["Status"], check["Name"], check["Notes"]) == (
        "critical",
        "Service Maintenance Mode",
        "upgrade",
    )
    assert check["ServiceID"] == name
    assert api.get(f"/v1/health/service/{name}", passing="1").json() == []
    assert api.put(path, enable="false").status_code == 200
    assert _check(api, maintenance_id) == {}
    assert len(api.get(f"/v1/health/service/{name}", passing="1").json()) == 1
    assert api.put(path, enable="true").status_code == 200
    assert _check(api, maintenance_id)["Notes"].startswith("Maintenance mode is enabled")


def test_deregistering_a_check_keeps_its_service(
    api: Api, name: str, registered: list[str]
) -> None:
    check_id = _register(api, registered, name, {"TTL": "10m"})
    assert api.put(f"/v1/agent/check/deregister/{check_id}").status_code == 200
    assert _check(api, check_id) == {}
    assert name in api.get("/v1/agent/services").json()


def _cut(output: str) -> str:
    # CheckTTL.SetStatus: the first 4096 bytes of the UTF-8 text, and a note of what was kept;
    # Go slices inside a character, and its JSON encoder writes the broken bytes as U+FFFD.
    raw = output.encode()
    if len(raw) <= 4096:
        return output
    head = raw[:4096].decode(errors="replace")
    return f"{head} ... (captured 4096 of {len(raw)} bytes)"


@pytest.mark.parametrize(
    "output",
    ["x" * 4096, "y" * 5000, "é" * 3000, "a" + "é" * 3000],
    ids=["4-KiB", "ascii", "two-byte-characters", "cut-inside-a-character"],
)
def test_ttl_output_is_cut_to_4_kib_as_consul_cuts_it(
    api: Api, name: str, registered: list[str], output: str
) -> None:
    check_id = _register(api, registered, name, {"TTL": "10m"})
    # pass/warn/fail take the output as ?note= and cut it once, in CheckTTL.SetStatus.
    assert api.put(f"/v1/agent/check/warn/{check_id}", note=output).status_code == 200
    assert _check(api, check_id)["Output"] == _cut(output)
    # /update cuts it in AgentCheckUpdate, then SetStatus cuts that again.
    body = {"Status": "passing", "Output": output}
    assert api.put(f"/v1/agent/check/update/{check_id}", json=body).status_code == 200
    assert _check(api, check_id)["Output"] == _cut(_cut(output))
