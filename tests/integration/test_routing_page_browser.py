"""The routing page in a real headless Chromium: it loads, updates itself, and shows a kill.

The page is opened once with the admin token in its fragment; the test then only reads what
the page renders while the page polls the gateway on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from registry.launcher import ConsulDouble
from tests.integration.browser import headless_chromium, page_rows
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for

pytestmark = pytest.mark.integration
TOKEN = "browser-test-token-9d2e"


def test_the_page_turns_a_killed_instance_critical(
    start_service: StartService,
    start_gateway: Callable[..., Process],
    consul: ConsulDouble,
    tmp_path: Any,
) -> None:
    victim, survivor = start_service("catalog"), start_service("catalog")
    wait_for(lambda: len(passing_ids(consul.addr, "catalog")) == 2, 15, "two passing catalogs")
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN)
    gateway = start_gateway(GATEWAY_ADMIN_TOKEN_FILE=str(token_file))

    with headless_chromium() as driver:
        driver.get(f"{gateway.admin_url}/_gateway/#token={TOKEN}")

        def row(proc: Process) -> dict[str, Any] | None:
            rows = page_rows(driver, "catalog")
            return next((r for r in rows if r["address"] == f"127.0.0.1:{proc.port}"), None)

        shown = wait_for(lambda: (r := row(victim)) and r["status"] == "passing" and r, 20,
                         "the page to show the instance passing")  # fmt: skip
        assert shown["routed"] == "true"
        assert "token" not in driver.current_url  # the page took it out of the address bar

        victim.kill()
        dead = wait_for(lambda: (r := row(victim)) and r["status"] == "critical" and r, 30,
                        "the page to show the killed instance critical")  # fmt: skip
        assert dead["routed"] == "false"
        assert any(cell.startswith("no: critical in Consul") for cell in dead["cells"])
        alive = row(survivor)
        assert alive is not None and alive["status"] == "passing" and alive["routed"] == "true"
