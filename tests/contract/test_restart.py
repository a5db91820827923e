"""State lives in memory, like the compose stack's Consul: a restart loses every registration.

That is ``consul agent -dev`` without a data dir, or with its data dir on a tmpfs, as
docker-compose.yml mounts it. (An agent given a persistent ``-data-dir``, which the image's
entrypoint always passes, would restore the registrations it saved there: agent/agent.go
``persistService`` and ``loadServices``.) The restarted agent's index starts low again, so a
client holding an older, higher index must reset it, as the blocking-queries doc says ("Reset
the index if it goes backwards").
"""

from __future__ import annotations

import pytest
import requests

from registry.launcher import ConsulDouble

from .helpers import Api

pytestmark = pytest.mark.contract


def test_restart_loses_registrations_and_index_goes_back(fresh_double: ConsulDouble) -> None:
    with Api(fresh_double.addr) as api:
        for number in range(3):
            body = {"Name": "restart-me", "ID": f"restart-me-{number}"}
            assert api.put("/v1/agent/service/register", json=body).status_code == 200
        old_index = api.index("/v1/catalog/services")
        fresh_double.stop()
        with pytest.raises(requests.ConnectionError):
            api.get("/v1/status/leader")
        fresh_double.start()
        assert api.get("/v1/agent/services").json() == {}
        assert "restart-me" not in api.get("/v1/catalog/services").json()
        stale = api.get("/v1/catalog/services", index=str(old_index), wait="500ms")
        assert int(stale.headers["X-Consul-Index"]) < old_index
