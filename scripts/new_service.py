"""``make new-service NAME=orders``: a new sample service in one command.

Writes ``services/<name>/`` (an app factory with one example route), a unit test, the compose
service (built from the shared ``services/Dockerfile``, with its own Consul token and its
name in the ACL init step's ``ACL_SERVICES``), a row of the README's services table and its
name among the services Prometheus scrapes (``deploy/observability/prometheus.yml``).
Everything else (Dockerfile, gunicorn config, CI image list) is shared or derived.

It refuses a bad or taken name and changes nothing then; after all edits it parses
``docker-compose.yml`` and checks the new entry, and restores every file if that fails.

    python scripts/new_service.py orders [--root PATH]
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path
from string import Template

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = Path(__file__).resolve().parent / "templates"
# One word: the name is the folder and Python package (no '-'), the Consul service and its DNS
# label (no '_'), the compose service, the image and the gateway's route prefix.
NAME = re.compile(r"[a-z][a-z0-9]{0,29}")
# Names a service may not take: the shared code, the project's other components, and the
# gateway's own path prefix.
RESERVED = frozenset({"common", "gateway", "consul", "registry", "discovery", "services"})


class ScaffoldError(Exception):
    """The service cannot be generated; the message says why."""


def check_name(name: str, root: Path = ROOT) -> None:
    """Refuse a name that is malformed, reserved or taken, with a message that says why."""
    if not name:
        raise ScaffoldError("NAME is required: make new-service NAME=orders")
    if name.startswith("_"):
        raise ScaffoldError(f"{name!r}: paths under /_ are reserved for the gateway (/_gateway)")
    if name != name.lower():
        raise ScaffoldError(f"{name!r}: use lowercase only ({name.lower()!r})")
    if "-" in name or "_" in name:
        raise ScaffoldError(
            f"{name!r}: one word without '-' or '_' ({re.sub('[-_]', '', name)!r}): the name is"
            " also a Python package ('-' cannot be imported) and a DNS label ('_' is not valid)"
        )
    if not NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r}: expected a letter, then letters and digits (at most 30 in all)"
        )
    if name in RESERVED or keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r}: reserved, pick another name")
    if (root / "services" / name).exists():
        raise ScaffoldError(f"{name!r}: services/{name}/ already exists")
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    if name in compose.get("services", {}):
        raise ScaffoldError(f"{name!r}: docker-compose.yml already has a service of that name")


def _insert_before(text: str, anchor: str, new: str, where: str) -> str:
    """Insert *new* before the line that starts with *anchor* (once), or fail naming *where*."""
    match = re.search(rf"^{re.escape(anchor)}", text, re.MULTILINE)
    if match is None:
        raise ScaffoldError(f"{where}: cannot find the line {anchor.strip()!r}; add it by hand")
    return text[: match.start()] + new + text[match.start() :]


def edit_compose(text: str, name: str) -> str:
    """docker-compose.yml with service *name*, its token volume and its ACL."""
    where = "docker-compose.yml"
    acl = re.compile(r"^(\s+ACL_SERVICES:)(.*)$", re.MULTILINE)
    if acl.search(text) is None:
        raise ScaffoldError(f"{where}: cannot find consul-acl-init's ACL_SERVICES")
    text = acl.sub(lambda m: f"{m[1]}{m[2].rstrip()} {name}", text, count=1)
    mount = f"      - consul-token-{name}:/run/tokens/{name}\n"
    text = _insert_before(text, "      - consul-token-gateway:/run/tokens/gateway", mount, where)
    block = _template("compose-service.yml", name)
    text = _insert_before(text, "  gateway:\n", block + "\n", where)
    return _insert_before(text, "  consul-token-gateway:\n", f"  consul-token-{name}:\n", where)


def check_compose(text: str, name: str) -> None:
    """Parse the edited compose file and check every key the new service needs."""
    doc = yaml.safe_load(text)
    service = doc["services"][name]
    init = doc["services"]["consul-acl-init"]
    problems = [
        what
        for what, ok in (
            ("image", service.get("image") == f"flask-consul-mesh/{name}"),
            ("dockerfile", service["build"].get("dockerfile") == "services/Dockerfile"),
            ("SERVICE build arg", service["build"]["args"].get("SERVICE") == name),
            ("token mount", f"consul-token-{name}:/run/consul:ro" in service.get("volumes", [])),
            ("ACL_SERVICES", name in init["environment"]["ACL_SERVICES"].split()),
            ("init mount", f"consul-token-{name}:/run/tokens/{name}" in init["volumes"]),
            ("volume", f"consul-token-{name}" in doc["volumes"]),
        )
        if not ok
    ]
    if problems:
        raise ScaffoldError(f"docker-compose.yml: the new entry lacks {', '.join(problems)}")


def edit_readme(text: str, name: str) -> str:
    """README.md with a row for *name* in the services table, just above the gateway's."""
    row = f"| `{name}` | describe what {name} does | `GET /hello?name=` |\n"
    return _insert_before(text, "| `gateway` |", row, "README.md services table")


def edit_prometheus(text: str, name: str) -> str:
    """deploy/observability/prometheus.yml with *name* among the services Prometheus scrapes."""
    names = re.compile(r"^(\s+- names: \[)([a-z0-9, ]+)(\]\s+# the services.*)$", re.MULTILINE)
    if names.search(text) is None:
        raise ScaffoldError("deploy/observability/prometheus.yml: cannot find the services' names")
    return names.sub(lambda m: f"{m[1]}{m[2]}, {name}{m[3]}", text, count=1)


def plan(name: str, root: Path = ROOT) -> dict[Path, str]:
    """Every file to write, with its new text; nothing is written yet."""
    check_name(name, root)
    files = {
        root / "services" / name / "__init__.py": "",
        root / "services" / name / "app.py": _template("app.py", name),
        root / "tests" / "unit" / f"test_service_{name}.py": _template("test_service.py", name),
    }
    compose = edit_compose((root / "docker-compose.yml").read_text(), name)
    check_compose(compose, name)
    files[root / "docker-compose.yml"] = compose
    files[root / "README.md"] = edit_readme((root / "README.md").read_text(), name)
    prometheus = root / "deploy" / "observability" / "prometheus.yml"
    files[prometheus] = edit_prometheus(prometheus.read_text(), name)
    return files


def _template(template: str, name: str) -> str:
    return Template((TEMPLATES / f"{template}.tmpl").read_text()).substitute(name=name)


def write(files: dict[Path, str]) -> None:
    """Write every file, or none: on an error the files are restored as they were."""
    before = {path: path.read_text() if path.exists() else None for path in files}
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    except OSError:
        for path, old in before.items():
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(old)
        raise


def main(argv: list[str] | None = None) -> int:
    """Generate the service named on the command line; 0 on success, 1 with a message if not."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the new service's name, e.g. orders")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository (default: this one)"
    )
    args = parser.parse_args(argv)
    try:
        files = plan(args.name, args.root)
        write(files)
    except ScaffoldError as exc:
        print(f"new-service: {exc}", file=sys.stderr)
        return 1
    name = args.name
    print(f"new service {name}:")
    for path in files:
        print(f"  wrote {path.relative_to(args.root)}")
    print(
        "next:\n"
        f"  make unit                  # runs tests/unit/test_service_{name}.py among the rest\n"
        f"  make run                   # starts it with the others; then curl localhost:8080/{name}/hello\n"
        "  make up                    # the same in the compose stack"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
