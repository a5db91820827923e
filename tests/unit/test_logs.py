"""Logging settings and the configuration they produce: JSON lines, or text for a terminal."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from discovery import logs
from discovery.errors import SettingsError
from discovery.logs import LogSettings


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, LogSettings("json", "INFO", False, "quote", "quote-h-8000")),
        (
            {"LOG_FORMAT": "text", "LOG_LEVEL": "debug", "ACCESS_LOG": "yes"},
            LogSettings("text", "DEBUG", True, "quote", "quote-h-8000"),
        ),
    ],
)
def test_log_settings_are_read_once(environ: dict[str, str], expected: LogSettings) -> None:
    assert LogSettings.from_env("quote", "quote-h-8000", environ) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LOG_FORMAT", "xml"), ("LOG_FORMAT", "JSON "), ("LOG_LEVEL", "loud"), ("ACCESS_LOG", "2")],
)
def test_a_bad_log_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        LogSettings.from_env("quote", "i", {variable: value})


BUFFERS: dict[str, io.StringIO] = {}


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger wired exactly as dict_config wires the root logger, on a name of its own.

    Its handler's stream (stderr) is swapped for a buffer that :func:`written` reads.
    """
    settings: LogSettings = request.param
    config = logs.dict_config(settings)
    root = config.pop("root")
    config.pop("loggers")
    config["loggers"] = {"test.logs": {**root, "propagate": False}}
    logging.config.dictConfig(config)
    found = logging.getLogger("test.logs")
    (handler,) = found.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())
    BUFFERS[found.name] = handler.stream
    yield found
    found.handlers.clear()


def written(logger: logging.Logger) -> list[str]:
    """The lines the logger's own handler wrote (pytest adds a capturing handler too)."""
    return BUFFERS[logger.name].getvalue().splitlines()


JSON = LogSettings("json", "INFO", False, "catalog", "catalog-h-8001")
TEXT = LogSettings("text", "INFO", False, "catalog", "catalog-h-8001")


@pytest.mark.parametrize("logger", [JSON], indirect=True)
def test_json_lines_carry_component_instance_and_request_ids(logger: logging.Logger) -> None:
    token = logs.CONTEXT.set(("req-1", "4bf92f3577b34da6a3ce929d0e0e4736"))
    try:
        logger.info("served %s", "apple", extra={"status": 200})
        logger.debug("not at INFO")
    finally:
        logs.CONTEXT.reset(token)
    logger.warning("outside a request")
    first, second = (json.loads(line) for line in written(logger))
    assert first["message"] == "served apple"
    assert first["level"] == "INFO"
    assert first["component"] == "catalog"
    assert first["instance"] == "catalog-h-8001"
    assert first["request_id"] == "req-1"
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["logger"] == "test.logs"
    assert first["status"] == 200
    assert first["time"].endswith("+00:00")
    assert (second["request_id"], second["trace_id"], second["level"]) == ("-", "-", "WARNING")


@pytest.mark.parametrize("logger", [JSON], indirect=True)
def test_an_access_line_keeps_its_own_request_id(logger: logging.Logger) -> None:
    logger.info("GET /x", extra={"request_id": "own", "trace_id": "t"})
    line = json.loads(written(logger)[0])
    assert (line["request_id"], line["trace_id"]) == ("own", "t")


@pytest.mark.parametrize("logger", [JSON], indirect=True)
def test_an_exception_stays_on_one_json_line(logger: logging.Logger) -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        logger.exception("failed")
    (line,) = written(logger)
    assert "ValueError: broken" in json.loads(line)["exc_info"]


@pytest.mark.parametrize("logger", [TEXT], indirect=True)
def test_text_lines_are_for_a_terminal(logger: logging.Logger) -> None:
    logger.info("hello")
    line = written(logger)[0]
    assert line.endswith("INFO catalog catalog-h-8001 [req=- trace=-] test.logs: hello")


def test_gunicorn_loggers_follow_the_level_and_its_access_log_is_silenced() -> None:
    config = logs.dict_config(LogSettings(level="WARNING"))
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["gunicorn.error"]["level"] == "WARNING"
    assert config["loggers"]["gunicorn.access"] == {
        "level": "CRITICAL",
        "handlers": [],
        "propagate": False,
    }
    assert config["disable_existing_loggers"] is False


# A value that would forge a record if written raw: an instance ID as registered in Consul.
FORGED = "echo-1\n2030-01-01 00:00:00,000 CRITICAL gateway h:8080 [req=- trace=-] gateway: FORGED"
UNSAFE = ["\n", "\r", "\x1b[2K", "\x00", "\x7f", "\x85", "\u2028", "\u2029", "\t"]


@pytest.mark.parametrize("logger", [TEXT], indirect=True)
def test_a_text_line_escapes_a_value_that_would_start_a_record_of_its_own(
    logger: logging.Logger,
) -> None:
    logger.warning("request %s to %s failed", "r-1", FORGED)
    (line,) = logs_lines(logger)
    assert line.endswith(f"request r-1 to {FORGED.replace(chr(10), chr(92) + 'n')} failed")


@pytest.mark.parametrize("logger", [TEXT], indirect=True)
@pytest.mark.parametrize("char", UNSAFE)
def test_a_text_line_holds_no_character_that_ends_or_rewrites_a_line(
    logger: logging.Logger, char: str
) -> None:
    logger.info("upstream=%s", f"a{char}b", extra={"request_id": f"x{char}y", "trace_id": "t"})
    (line,) = logs_lines(logger)
    assert char not in line
    assert "upstream=a" in line and "[req=x" in line


@pytest.mark.parametrize("logger", [TEXT], indirect=True)
def test_a_traceback_in_a_text_log_is_indented_so_no_line_of_it_passes_for_a_record(
    logger: logging.Logger,
) -> None:
    try:
        raise ValueError(FORGED)
    except ValueError:
        logger.exception("failed")
    first, *rest = logs_lines(logger)
    assert first.endswith("test.logs: failed")
    assert rest[0] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in rest)
    # The exception's own lines stay readable, and indented as the rest.
    assert rest[-2:] == ["    ValueError: echo-1", "    " + FORGED.partition("\n")[2]]


@pytest.mark.parametrize("logger", [JSON], indirect=True)
@pytest.mark.parametrize("char", UNSAFE)
def test_a_json_line_escapes_every_character_that_ends_or_rewrites_a_line(
    logger: logging.Logger, char: str
) -> None:
    logger.info("upstream=%s", f"a{char}b")
    (line,) = logs_lines(logger)
    assert char not in line
    assert json.loads(line)["message"] == f"upstream=a{char}b"


def logs_lines(logger: logging.Logger) -> list[str]:
    """The lines written, split only at newlines (splitlines would also split at U+2028)."""
    return BUFFERS[logger.name].getvalue().removesuffix("\n").split("\n")
