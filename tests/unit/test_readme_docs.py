"""The README, `.env.example` and the settings code name the same variables, and the README's
curl walkthrough is well-formed (its commands are run by tests/integration/test_readme_walkthrough.py)."""

from __future__ import annotations

import pytest

from tests import readme_doc as doc

README = (doc.ROOT / "README.md").read_text()
ENV_EXAMPLE = (doc.ROOT / ".env.example").read_text()
# The code that reads the environment: the components' Python, the `make run` script and the
# compose file's ${...} (build arguments such as PYTHON_IMAGE exist only there).
CODE_PACKAGES = ("discovery", "gateway", "services")
CODE_FILES = ("scripts/run-local.sh", "docker-compose.yml")


def code_variables() -> dict[str, set[str]]:
    """Every variable the code reads, with the files that read it."""
    found: dict[str, set[str]] = {}
    for package in CODE_PACKAGES:
        for path in sorted((doc.ROOT / package).rglob("*.py")):
            for name in doc.python_variables(path.read_text()):
                found.setdefault(name, set()).add(str(path.relative_to(doc.ROOT)))
    for file in CODE_FILES:
        for name in doc.shell_variables((doc.ROOT / file).read_text()):
            found.setdefault(name, set()).add(file)
    return found


def test_every_variable_the_code_reads_has_a_readme_row_and_the_other_way_round() -> None:
    code = code_variables()
    tables = doc.table_variables(doc.sections(README)["Environment variables"])
    tables |= doc.table_variables(doc.sections(README)["Quick start"])
    undocumented = {name: sorted(files) for name, files in code.items() if name not in tables}
    assert not undocumented, f"read by the code but missing from the README tables: {undocumented}"
    assert not tables - code.keys(), f"README rows no code reads: {sorted(tables - code.keys())}"


def test_env_example_lists_exactly_the_variables_the_code_reads() -> None:
    code = code_variables().keys()
    listed = doc.env_example_variables(ENV_EXAMPLE)
    assert not code - listed, f"missing from .env.example: {sorted(code - listed)}"
    assert not listed - code, f".env.example variables no code reads: {sorted(listed - code)}"


def test_the_quick_start_names_only_variables_that_exist() -> None:
    named = doc.mentioned_variables(doc.sections(README)["Quick start"])
    assert named, "the quick start names no variable: the section was renamed or moved"
    assert not named - code_variables().keys(), sorted(named - code_variables().keys())


def test_the_walkthrough_commands_parse_and_show_json_or_nothing() -> None:
    commands = doc.curl_commands(README)
    walkthrough = [c for c in commands if c.section == "A walk through with curl"]
    assert len(walkthrough) >= 8, [c.command for c in commands]
    for command in commands:
        command.expected_json  # noqa: B018  (raises if the README shows broken JSON)
        assert command.expected_status in range(200, 600), command.command


# --- The extractors, on small inputs: each must be able to find a mismatch. -------------------


def test_python_variables_finds_env_reads_of_every_shape() -> None:
    source = (
        "import os\n"
        "a = env.get_int(e, 'SERVICE_PORT', 8000)\n"
        "b = os.environ['GATEWAY_PORT']\n"
        "c = 'LOG_FORMAT' in os.environ\n"
        "d = e.get('CONSUL_HTTP_ADDR', '')\n"
        "f = headers.get('X-Request-ID')\n"
        "g = payload['Service']\n"
        "h = app.config['INSTANCE_ID']\n"
    )
    assert doc.python_variables(source) == {
        "SERVICE_PORT",
        "GATEWAY_PORT",
        "LOG_FORMAT",
        "CONSUL_HTTP_ADDR",
    }


def test_shell_and_docs_extractors() -> None:
    script = (
        'P=${GATEWAY_PORT:-8080} "${RUN_BASE}" ${pids[@]} $HOME ${TMPDIR:-/tmp} $(port RUN_X 1)'
    )
    assert doc.shell_variables(script) == {"GATEWAY_PORT", "RUN_BASE", "RUN_X"}
    assert doc.env_example_variables("# A comment\n# SERVICE_PORT=8000\nLOG_LEVEL=info\n") == {
        "SERVICE_PORT",
        "LOG_LEVEL",
    }
    table = "| `GATEWAY_RATE_LIMIT` / `GATEWAY_RATE_BURST` | `0` | x `NOT_A_ROW` |\n| a | b |"
    assert doc.table_variables(table) == {"GATEWAY_RATE_LIMIT", "GATEWAY_RATE_BURST"}


@pytest.mark.parametrize(
    ("line", "method", "url", "status"),
    [
        ("curl localhost:8080/catalog/items", "GET", "http://localhost:8080/catalog/items", 200),
        ("curl -s -X PUT localhost:9090/x -d '{}'", "PUT", "http://localhost:9090/x", 200),
        ("curl -d 'hello' 'localhost:8080/echo/o?debug=1'", "POST", None, 200),
    ],
)
def test_parse_curl(line: str, method: str, url: str | None, status: int) -> None:
    command = doc.parse_curl(line, "")
    assert (command.method, command.expected_status) == (method, status)
    if url:
        assert command.url == url


def test_parse_curl_reads_status_from_the_head_or_the_error_body() -> None:
    shown = doc.parse_curl(
        "curl -si localhost:8080/x", 'HTTP/1.1 404 Not Found\nX-A: 1\n\n{"a": 1}'
    )
    assert (shown.expected_status, shown.expected_headers, shown.expected_json) == (
        404,
        ["x-a"],
        {"a": 1},
    )
    error = doc.parse_curl("curl localhost:8080/x", '{"error": "e", "detail": "d", "status": 503}')
    assert error.expected_status == 503


def test_parse_curl_refuses_flags_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="--compressed"):
        doc.parse_curl("curl --compressed localhost:8080/", "")


def test_json_shape_ignores_values_but_not_keys() -> None:
    one = {"instance": "catalog-vm-8101", "price_cents": 50, "tags": ["a"]}
    other = {"instance": "catalog-x-1", "price_cents": 7, "tags": ["b", "c"]}
    assert doc.json_shape(one) == doc.json_shape(other)
    assert doc.json_shape(one) != doc.json_shape({**one, "extra": 1})
