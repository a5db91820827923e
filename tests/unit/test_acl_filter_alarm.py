"""The ACL-filter alarm logs a change of state, never one line per read."""

from __future__ import annotations

import logging

import pytest

from discovery.acl_filter import AclFilterAlarm

STATE_ANY = "/v1/health/state/any"
LISTING = "/v1/catalog/services"


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_filtered_watch_is_warned_about_once_however_often_it_is_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="discovery")
    alarm = AclFilterAlarm("http://127.0.0.1:8500")
    for _ in range(50):
        alarm.observe(STATE_ANY, True)
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert STATE_ANY in warnings[0] and "127.0.0.1:8500" in warnings[0]
    assert alarm.filtered == [STATE_ANY]


def test_a_watch_that_stops_being_filtered_is_said_once_and_can_be_warned_about_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="discovery")
    alarm = AclFilterAlarm("http://127.0.0.1:8500")
    for filtered in (True, False, False, True, True):
        alarm.observe(STATE_ANY, filtered)
    assert len(lines(caplog, logging.WARNING)) == 2
    assert len([m for m in lines(caplog, logging.INFO) if "no longer" in m]) == 1


def test_each_watch_has_its_own_state(caplog: pytest.LogCaptureFixture) -> None:
    alarm = AclFilterAlarm("http://127.0.0.1:8500")
    alarm.observe(STATE_ANY, True)
    alarm.observe(LISTING, True)
    alarm.observe(STATE_ANY, False)
    assert alarm.filtered == [LISTING]
    assert len(lines(caplog, logging.WARNING)) == 2


def test_a_watch_never_filtered_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="discovery")
    alarm = AclFilterAlarm("http://127.0.0.1:8500")
    for _ in range(10):
        alarm.observe(STATE_ANY, False)
    assert caplog.records == []
    assert alarm.filtered == []
