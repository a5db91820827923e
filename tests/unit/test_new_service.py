"""The new-service generator's pure parts: which names it refuses, and its compose edit."""

from __future__ import annotations

import pytest
import yaml

from scripts.new_service import (
    ROOT,
    ScaffoldError,
    check_compose,
    check_name,
    edit_compose,
    edit_prometheus,
    edit_readme,
)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "NAME is required"),
        ("Orders", "lowercase"),
        ("order-history", "one word"),
        ("order_history", "one word"),
        ("_gateway", "reserved for the gateway"),
        ("9lives", "expected a letter"),
        ("orders!", "expected a letter"),
        ("a" * 31, "at most 30"),
        ("common", "reserved"),
        ("gateway", "reserved"),
        ("import", "reserved"),
        ("catalog", "already exists"),
    ],
)
def test_a_bad_or_taken_name_is_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(ScaffoldError, match=reason):
        check_name(name)


def test_a_fresh_one_word_name_is_accepted() -> None:
    check_name("orders")  # raises if refused


def test_the_compose_edit_adds_the_service_its_token_and_its_acl() -> None:
    text = edit_compose((ROOT / "docker-compose.yml").read_text(), "orders")
    check_compose(text, "orders")  # raises naming what is missing
    doc = yaml.safe_load(text)
    orders, catalog = doc["services"]["orders"], doc["services"]["catalog"]
    # The same shared settings, build and hardening as the sample services.
    assert orders["environment"] == catalog["environment"]
    assert orders["read_only"] is True and orders["cap_drop"] == ["ALL"]
    assert orders["build"]["args"]["SERVICE"] == "orders"
    assert doc["services"]["consul-acl-init"]["environment"]["ACL_SERVICES"].split() == [
        "catalog",
        "echo",
        "quote",
        "orders",
    ]


def test_the_compose_check_names_what_a_broken_entry_lacks() -> None:
    text = edit_compose((ROOT / "docker-compose.yml").read_text(), "orders")
    broken = text.replace("        SERVICE: orders\n", "        SERVICE: catalog\n")
    with pytest.raises(ScaffoldError, match="SERVICE build arg"):
        check_compose(broken, "orders")


def test_prometheus_scrapes_the_new_service_too() -> None:
    path = ROOT / "deploy" / "observability" / "prometheus.yml"
    jobs = yaml.safe_load(edit_prometheus(path.read_text(), "orders"))["scrape_configs"]
    (services,) = [job for job in jobs if job["job_name"] == "services"]
    assert services["dns_sd_configs"][0]["names"] == ["catalog", "quote", "echo", "orders"]
    with pytest.raises(ScaffoldError, match=r"prometheus\.yml"):
        edit_prometheus("scrape_configs: []\n", "orders")


def test_the_readme_gets_a_row_above_the_gateways() -> None:
    lines = edit_readme((ROOT / "README.md").read_text(), "orders").splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| `orders` |"))
    assert lines[row + 1].startswith("| `gateway` |")
