"""Takes the README's screenshot of the routing page: ``docs/routing-page.png``.

Starts the bundled registry, three catalog instances, two echo instances and a gateway (two
workers, whose counts the page adds up; admin token set) on loopback, then makes the page worth a look: one echo instance
answers 503 to everything (the gateway retries its GETs elsewhere and ejects it) and one catalog
instance is killed with SIGKILL (refused connections eject it, and Consul's check turns
critical). A bounded loop of requests runs meanwhile. Once the page, in headless Chromium,
shows the killed instance critical, it is saved as a PNG.

Run from the repository root: ``PYTHONPATH=. .venv/bin/python scripts/screenshot-routing-page.py
[OUTPUT]``. Every process it starts is stopped before it exits, and it leaves no files but
OUTPUT.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import requests

from registry.launcher import free_port, run_consul_double
from tests.integration.browser import headless_chromium, page_rows
from tests.integration.harness import (
    ROOT,
    SERVICE_CONF,
    Process,
    gateway_env,
    passing_ids,
    service_env,
    stop_all,
    wait_for,
)

TOKEN = "screenshot-token"
MAX_REQUESTS, MAX_SECONDS = 3000, 20.0  # the traffic loop's bounds
WIDTH = 1280


def start(name: str, conf: str, env: dict[str, str], port: int, logs: Path) -> Process:
    return Process(name, conf, env, port, logs).start()


def traffic(gateway: Process, until: float) -> int:
    """Requests to catalog and echo, until *until* or the cap.

    A connection each (no session), so that the kernel spreads them over both workers.
    """
    sent = 0
    while sent < MAX_REQUESTS and time.monotonic() < until:
        path = "/echo/" if sent % 3 == 0 else "/catalog/items"
        requests.get(f"{gateway.url}{path}", timeout=5)
        sent += 1
    return sent


def main(output: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="routing-page-shot-") as scratch:
        logs = Path(scratch)
        token_file = logs / "admin-token"
        token_file.write_text(TOKEN)
        procs: list[Process] = []
        with run_consul_double(None) as consul:
            try:
                for name, count in (("catalog", 3), ("echo", 2)):
                    for _ in range(count):
                        port = free_port()
                        env = service_env(name, port, consul.addr)
                        procs.append(
                            start(f"{name}-{port}", SERVICE_CONF, env, port, logs)
                        )  # fmt: skip
                for proc in procs:
                    proc.wait_http("/health", timeout=30)
                wait_for(lambda: len(passing_ids(consul.addr, "catalog")) == 3, 20, "catalogs")
                port = free_port()
                env = gateway_env(
                    port, consul.addr, GATEWAY_ADMIN_TOKEN_FILE=str(token_file), WEB_CONCURRENCY="2"
                )
                gateway = start(f"gateway-{port}", "gateway/gunicorn.conf.py", env, port, logs)
                procs.append(gateway)
                gateway.wait_http("/_gateway/routes", timeout=30)
                return shoot(gateway, procs, output)
            finally:
                stop_all(procs)


def shoot(gateway: Process, procs: list[Process], output: Path) -> int:
    catalogs = [p for p in procs if p.name.startswith("catalog")]
    echoes = [p for p in procs if p.name.startswith("echo")]
    with headless_chromium(WIDTH, 900) as driver:
        driver.get(f"{gateway.admin_url}/_gateway/#token={TOKEN}")
        wait_for(lambda: len(page_rows(driver, "catalog")) == 3, 20, "the page to list catalog")
        traffic(gateway, time.monotonic() + 4)
        faulty = {"error_rate": 1.0, "error_status": 503}
        requests.put(f"{echoes[1].url}/admin/faults", json=faulty, timeout=5).raise_for_status()
        victim = catalogs[2]
        victim.kill()
        sent = traffic(gateway, time.monotonic() + 4)

        def critical() -> bool:
            rows = page_rows(driver, "catalog")
            return any(r["address"].endswith(f":{victim.port}") and r["status"] == "critical"
                       for r in rows)  # fmt: skip

        wait_for(critical, MAX_SECONDS, "the page to show the killed instance critical")
        traffic(gateway, time.monotonic() + 2)
        # One more redraw of the page, so the last requests are on it.
        shown = driver.find_element("id", "status").text
        wait_for(lambda: driver.find_element("id", "status").text != shown, 5, "a redraw")
        # The whole page in one image: a viewport as tall as the page (DevTools protocol).
        height = driver.execute_script("return document.documentElement.scrollHeight")
        metrics = {"width": WIDTH, "height": int(height), "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        driver.save_screenshot(str(output))
    print(f"wrote {output} ({output.stat().st_size // 1024} KiB) after {sent} requests")
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "routing-page.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    sys.exit(main(target))
