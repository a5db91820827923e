"""Errors carry Consul's status codes and texts (agent/agent_endpoint.go, agent/http.go)."""

from __future__ import annotations

import consul
import pytest

from .helpers import Api

pytestmark = pytest.mark.contract


def test_deregistering_an_unknown_service_is_404(api: Api, client: consul.Consul) -> None:
    response = api.put("/v1/agent/service/deregister/no-such-service")
    assert response.status_code == 404
    assert response.text.startswith('Unknown service ID "no-such-service"')
    assert client.agent.service.deregister("no-such-service") is False


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{not json", 400, "Request decode failed: "),
        (b"", 400, "Request decode failed: EOF"),
        (b'{"Port": 1}', 400, "Missing service name"),
        (b'{"Name": "x", "Port": "80"}', 400, "Request decode failed: json: cannot unmarshal"),
        (b'{"Name": "x", "Address": "0.0.0.0"}', 400, "Invalid service address"),
        (b'{"Name": "x", "Check": {"TTL": "soon"}}', 400, 'time: invalid duration "soon"'),
        (b'{"Name": "x", "Check": {"Name": "c"}}', 400, "Invalid check: TTL must be > 0"),
        (b'{"Name": "x", "Check": {"HTTP": "http://h/"}}', 400, "Invalid check: Interval must"),
        (b'{"Name": "x", "Check": {"TTL": "1s", "Status": "ok"}}', 400, "Status for checks must"),
    ],
)
def test_bad_service_registrations_get_consuls_answer(
    api: Api, body: bytes, status: int, text: str
) -> None:
    response = api.put("/v1/agent/service/register", data=body)
    assert response.status_code == status
    assert text in response.text


def test_bad_check_requests_get_consuls_answer(api: Api, name: str, registered: list[str]) -> None:
    assert api.put("/v1/agent/check/register", json={"TTL": "1s"}).text == "Missing check name"
    orphan = api.put("/v1/agent/check/register", json={"Name": "c", "TTL": "1s", "ServiceID": name})
    assert (orphan.status_code, orphan.text) == (404, f'ServiceID "{name}" does not exist')
    unknown = api.put("/v1/agent/check/pass/no-such-check")
    assert unknown.status_code == 404
    assert unknown.text.startswith('Unknown check ID "no-such-check"')
    registered.append(name)
    check = {"HTTP": "http://127.0.0.1:9/", "Interval": "10s"}
    assert api.put("/v1/agent/service/register", json={"Name": name, "Check": check}).ok
    not_ttl = api.put(f"/v1/agent/check/pass/service:{name}")
    assert not_ttl.status_code == 500
    assert "does not have associated TTL" in not_ttl.text
    bogus = api.put(f"/v1/agent/check/update/service:{name}", json={"Status": "bogus"})
    assert (bogus.status_code, bogus.text) == (400, "Invalid check status: 'bogus'")


def test_bad_maintenance_requests_get_consuls_answer(
    api: Api, name: str, registered: list[str]
) -> None:
    registered.append(name)
    assert api.put("/v1/agent/service/register", json={"Name": name}).ok
    path = f"/v1/agent/service/maintenance/{name}"
    missing = api.put(path)
    assert (missing.status_code, missing.text) == (400, "Missing value for enable")
    invalid = api.put(path, enable="maybe")
    assert (invalid.status_code, invalid.text) == (400, 'Invalid value for enable: "maybe"')
    unknown = api.put("/v1/agent/service/maintenance/no-such-service", enable="true")
    assert unknown.status_code == 404
    assert unknown.text.startswith('Unknown service ID "no-such-service"')


def test_reads_with_bad_parameters_get_consuls_answer(api: Api) -> None:
    unknown = api.get("/v1/agent/service/no-such-service")
    assert (unknown.status_code, unknown.text) == (404, "unknown service ID: no-such-service")
    passing = api.get("/v1/health/service/web", passing="maybe")
    assert (passing.status_code, passing.text) == (400, "Invalid value for ?passing")
    wait = api.get("/v1/health/service/web", index="1", wait="soon")
    assert (wait.status_code, wait.text) == (400, "Invalid wait time")
    index = api.get("/v1/catalog/services", index="-1")
    assert (index.status_code, index.text) == (400, "Invalid index")


def test_wrong_method_is_405_with_allow_header(api: Api) -> None:
    response = api.get("/v1/agent/service/register")
    assert response.status_code == 405
    assert "PUT" in response.headers["Allow"]
    assert api.put("/v1/catalog/services").status_code == 405
