"""A headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium.

Used by the routing page's browser test and by ``scripts/screenshot-routing-page.py``. The
programs come from ``scripts/ensure-chromium.sh``, which ``make test`` and ``make integration``
run before the tests (as root on a fresh machine, the way CI runs): a test installs nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# What the page shows of each instance row, read from its data attributes and cells.
ROWS_SCRIPT = """
return Array.from(document.querySelectorAll(
    'section[data-service="' + arguments[0] + '"] tbody tr')).map(tr => ({
  instance: tr.dataset.instance,
  status: tr.dataset.status,
  routed: tr.dataset.routed,
  address: (tr.querySelector('th .sub') || {}).textContent || '',
  cells: Array.from(tr.querySelectorAll('td')).map(td => td.textContent),
}));
"""


def ensure_chromium() -> tuple[str, str]:
    """The paths of chromium and chromedriver; a clear failure if either is missing."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, (
        "chromium or chromedriver is missing: run `bash scripts/ensure-chromium.sh` as root "
        "(`make test` and `make integration` do)"
    )
    return chromium, driver


@contextmanager
def headless_chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium session, quit however the caller ends; it leaves no files behind."""
    chromium, driver_path = ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="routing-page-browser-") as scratch:
        # Chromium and its driver put their profile and scratch folders in TMPDIR.
        yield from _session(chromium, driver_path, scratch, width, height)


def _session(
    chromium: str, driver_path: str, scratch: str, width: int, height: int
) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
        f"--user-data-dir={scratch}/profile",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, for get_log
    service = Service(executable_path=driver_path, env={**os.environ, "TMPDIR": scratch})
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The page's console errors so far (a script error, a blocked load, a failed fetch)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] == "SEVERE"]


def page_rows(driver: webdriver.Chrome, service: str) -> list[dict[str, Any]]:
    """The instance rows the page shows for *service*, as it rendered them last."""
    rows: list[dict[str, Any]] = driver.execute_script(ROWS_SCRIPT, service)
    return rows
