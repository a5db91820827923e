"""The README read as data: its curl walkthrough and the variables it documents.

The tests in ``tests/unit/test_readme_docs.py`` and ``tests/integration/test_readme_walkthrough.py``
use these to keep the README true: the walkthrough's commands run against a real ``make run``
stack, and every documented variable must exist in the code (and the other way round).
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# An environment variable name as the project spells them: upper case with an underscore.
VARIABLE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# The readers of discovery/env.py (get_int, get_secret, ...): each takes the variable's name.
_ENV_READERS = set(re.findall(r"^def (get_\w+)\(", (ROOT / "discovery/env.py").read_text(), re.M))


@dataclass(frozen=True)
class Curl:
    """One ``$ curl ...`` line of the README and the output printed under it."""

    command: str
    method: str
    url: str
    headers: dict[str, str]
    data: str | None
    include_head: bool
    expected: str
    section: str

    @property
    def expected_status(self) -> int:
        """The status the README shows: the status line with ``-i``, else the error body's."""
        if self.include_head:
            match = re.match(r"HTTP/1\.[01] (\d{3})", self.expected)
            if not match:
                raise ValueError(f"{self.command!r}: -i output does not start with a status line")
            return int(match.group(1))
        body = self.expected_json
        if isinstance(body, dict) and isinstance(body.get("status"), int) and "error" in body:
            return int(body["status"])
        return 200

    @property
    def expected_json(self) -> Any:
        """The JSON body the README shows (None when it shows no body)."""
        text = self.expected
        if self.include_head:
            text = text.split("\n\n", 1)[1] if "\n\n" in text else ""
        text = text.strip()
        return json.loads(text) if text else None

    @property
    def expected_headers(self) -> list[str]:
        """Header names shown under a ``-i`` command, lower-cased."""
        if not self.include_head:
            return []
        head = self.expected.split("\n\n", 1)[0].splitlines()[1:]
        return [line.split(":", 1)[0].strip().lower() for line in head if ":" in line]


@dataclass
class _Block:
    section: str
    lines: list[str] = field(default_factory=list)


def sections(text: str) -> dict[str, str]:
    """The README's ``##`` sections by title (subsections stay inside their section)."""
    found: dict[str, str] = {}
    title = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            title = line[3:].strip()
            found[title] = ""
        elif title:
            found[title] += line
    return found


def curl_commands(text: str) -> list[Curl]:
    """Every ``$ curl`` command in the README's fenced blocks, with the output under it."""
    blocks: list[_Block] = []
    section, fenced = "", False
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("```"):
            fenced = not fenced
            if fenced:
                blocks.append(_Block(section))
            continue
        if fenced:
            blocks[-1].lines.append(line)
    commands: list[Curl] = []
    for block in blocks:
        current: list[str] | None = None
        for line in [*block.lines, "$ "]:
            if line.startswith("$ "):
                if current is not None:
                    commands.append(parse_curl(current[0], "\n".join(current[1:]), block.section))
                current = [line[2:]] if line.startswith("$ curl ") else None
            elif current is not None:
                current.append(line)
    return commands


def parse_curl(command: str, expected: str, section: str = "") -> Curl:
    """The request a README curl line makes. Flags outside the small set used fail loudly."""
    words = shlex.split(command)
    if words[0] != "curl":
        raise ValueError(f"not a curl command: {command!r}")
    method, url, data, include_head = "", "", None, False
    headers: dict[str, str] = {}
    rest = iter(words[1:])
    for word in rest:
        if word in ("-X", "--request"):
            method = next(rest)
        elif word in ("-H", "--header"):
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data"):
            data = next(rest)
        elif re.fullmatch(r"-[si]+", word):
            include_head = include_head or "i" in word
        elif word.startswith("-"):
            raise ValueError(f"{command!r}: the walkthrough test does not know curl's {word}")
        else:
            url = word if "://" in word else f"http://{word}"
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return Curl(
        command=command,
        method=method or ("POST" if data is not None else "GET"),
        url=url,
        headers=headers,
        data=data,
        include_head=include_head,
        expected=expected,
        section=section,
    )


def json_shape(value: Any) -> Any:
    """The keys, recursively, without the values: instance names, IDs and counts vary."""
    if isinstance(value, dict):
        return {key: json_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_shape(value[0])] if value else []
    return "value"


def table_variables(text: str) -> set[str]:
    """Variables named in the first column of the README's tables (``| `NAME` / `OTHER` |``)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names |= {n for n in re.findall(r"`([A-Z][A-Z0-9_]*)`", first) if VARIABLE.match(n)}
    return names


def env_example_variables(text: str) -> set[str]:
    """Variables ``.env.example`` documents (``# NAME=value`` or ``NAME=value`` lines)."""
    return {m for m in re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M) if VARIABLE.match(m)}


def mentioned_variables(text: str) -> set[str]:
    """Variables named in backticks or as ``NAME=`` anywhere in *text*."""
    found = set(re.findall(r"`([A-Z][A-Z0-9_]*)[=`]", text))
    found |= set(re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", text, re.M))
    return {name for name in found if VARIABLE.match(name)}


def python_variables(source: str) -> set[str]:
    """Variables a module reads: names given to env readers, or looked up in an environment.

    An environment is ``os.environ`` or a mapping named ``environ``, ``env`` or ``e`` (the
    settings parsers' parameter); a Flask ``app.config["INSTANCE_ID"]`` is not one.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        candidates: list[ast.expr] = []
        if isinstance(node, ast.Call):
            func = node.func
            reader = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if reader in _ENV_READERS or reader == "getenv":
                candidates += node.args
                if reader == "get_secret":  # NAME or NAME_FILE
                    candidates += [
                        ast.Constant(f"{a.value}_FILE")
                        for a in node.args[1:2]
                        if isinstance(a, ast.Constant) and isinstance(a.value, str)
                    ]
            elif reader == "get" and isinstance(func, ast.Attribute) and _is_env(func.value):
                candidates += node.args[:1]
        elif isinstance(node, ast.Subscript) and _is_env(node.value):
            candidates.append(node.slice)
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and _is_env(node.comparators[0])
        ):
            candidates.append(node.left)
        names |= {
            c.value
            for c in candidates
            if isinstance(c, ast.Constant) and isinstance(c.value, str) and VARIABLE.match(c.value)
        }
    return names


def _is_env(node: ast.expr) -> bool:
    return re.search(r"(^|\.)(environ|env|e)$", ast.unparse(node)) is not None


def shell_variables(source: str) -> set[str]:
    """Variables a shell script or compose file takes from its environment.

    ``${NAME:-default}``, and run-local.sh's checked ports, ``$(port NAME default)``.
    """
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-=?+][^}]*)?\}", source))
    names |= set(re.findall(r"\$\(port ([A-Z][A-Z0-9_]*) ", source))
    return {name for name in names if VARIABLE.match(name)}
