"""The routing page in a real headless Chromium: it loads, updates itself, and shows a kill.

The page is opened once (the token typed into its form, or given in its fragment); the tests
then only read what the page renders while it polls the gateway on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from registry.launcher import ConsulDouble
from tests.integration.browser import console_errors, headless_chromium, page_rows
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for

pytestmark = pytest.mark.integration
TOKEN = "browser-test-token-9d2e"


@pytest.fixture(scope="module")
def catalogs(start_service: StartService, consul: ConsulDouble) -> list[Process]:
    procs = [start_service("catalog"), start_service("catalog")]
    wait_for(lambda: len(passing_ids(consul.addr, "catalog")) == 2, 15, "two passing catalogs")
    return procs


@pytest.fixture(scope="module")
def gateway(
    start_gateway: Callable[..., Process],
    catalogs: list[Process],
    tmp_path_factory: pytest.TempPathFactory,
) -> Process:
    token_file = tmp_path_factory.mktemp("secrets") / "admin-token"
    token_file.write_text(TOKEN)
    return start_gateway(GATEWAY_ADMIN_TOKEN_FILE=str(token_file))


def test_the_page_asks_for_the_token_and_then_shows_the_instances(gateway: Process) -> None:
    with headless_chromium() as driver:
        driver.get(f"{gateway.admin_url}/_gateway/")
        form = wait_for(lambda: (f := driver.find_element(By.ID, "login")).is_displayed() and f,
                        20, "the page to ask for the token")  # fmt: skip
        form.find_element(By.ID, "token").send_keys(TOKEN)
        form.find_element(By.TAG_NAME, "button").click()
        rows = wait_for(lambda: page_rows(driver, "catalog"), 20, "the page to list catalog")
        assert sorted(r["status"] for r in rows) == ["passing", "passing"]
        assert not driver.find_element(By.ID, "login").is_displayed()
        # The harness starts two workers; the page adds both up once both have shared.
        wait_for(lambda: driver.find_element(By.ID, "worker").text.startswith(
            "all 2 workers added up (answered by pid "), 20, "the page to add up both workers")  # fmt: skip


def test_a_malformed_token_fragment_brings_the_form_not_a_broken_page(gateway: Process) -> None:
    with headless_chromium() as driver:
        driver.get(f"{gateway.admin_url}/_gateway/#token=%E0%A4%A")  # not a whole %-escape
        wait_for(lambda: driver.find_element(By.ID, "login").is_displayed(), 20,
                 "the page to ask for the token")  # fmt: skip
        assert "token" not in driver.current_url
        assert [e for e in console_errors(driver) if "URIError" in e] == []


def test_the_page_turns_a_killed_instance_critical(
    gateway: Process, catalogs: list[Process]
) -> None:
    victim, survivor = catalogs
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
        assert console_errors(driver) == []
