"""Stand-ins for ``kubectl`` and ``consul``, for the test of deploy/kubernetes/consul-tokens.sh.

``fake_k8s_cli.py kubectl ARGS`` answers the kubectl calls the script makes; an ``exec`` into the
Consul server pod runs its command here, with ``consul`` on PATH being ``fake_k8s_cli.py consul``,
so the script's own shell snippets run for real. Everything they did (Secrets, policies, tokens,
every command line) is kept in the JSON file ``$FAKE_K8S_STATE``. Any call the script did not
make before fails loudly, so a change in its calls fails the test.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

BOOTSTRAP_TOKEN = "bootstrap-token-of-the-chart"
SERVER = ["consul-server-0", "-c", "consul", "--"]


def _load() -> tuple[Path, dict[str, Any]]:
    path = Path(os.environ["FAKE_K8S_STATE"])
    state = json.loads(path.read_text()) if path.exists() else {}
    for key, empty in (("argv", []), ("secrets", {}), ("policies", {}), ("tokens", [])):
        state.setdefault(key, empty)
    return path, state


def consul(args: list[str]) -> int:
    """``consul acl ...`` as run in the server pod: the bootstrap token must be in the env."""
    if os.environ.get("CONSUL_HTTP_TOKEN") != BOOTSTRAP_TOKEN:
        sys.exit("fake consul: CONSUL_HTTP_TOKEN is not the bootstrap token")
    path, state = _load()
    state["argv"].append(["consul", *args])
    opts = dict(zip(args[3::2], args[4::2], strict=True))
    policies, status = state["policies"], 0
    match args[:3]:
        case ["acl", "policy", "read"]:
            status = 0 if opts["-name"] in policies else 1
        case ["acl", "policy", "create"]:
            assert opts["-name"] not in policies, "created twice"
            policies[opts["-name"]] = opts["-rules"]
        case ["acl", "policy", "update"]:
            assert opts["-name"] in policies, "updated before it was created"
            policies[opts["-name"]] = opts["-rules"]
        case ["acl", "token", "create"]:
            assert "-secret" not in opts, "the secret must be Consul's own, never on a command line"
            assert opts.get("-format") == "json", "the script reads the secret from the JSON answer"
            secret = str(uuid.uuid4())
            state["tokens"].append({"policy": opts["-policy-name"], "secret": secret})
            # Consul's CLI prints the token as indented JSON, one field a line.
            print(json.dumps({"AccessorID": str(uuid.uuid4()), "SecretID": secret}, indent=4))
        case _:
            sys.exit(f"fake consul: unexpected call {args}")
    path.write_text(json.dumps(state))
    return status


def kubectl(args: list[str]) -> int:
    """One kubectl call."""
    path, state = _load()
    state["argv"].append(["kubectl", *args])
    path.write_text(json.dumps(state))
    match args:
        case ["get", "namespace", "flask-consul-mesh"]:
            return 0
        case ["-n", "consul", "get", "secret", "consul-bootstrap-acl-token", "-o", _]:
            print(base64.b64encode(BOOTSTRAP_TOKEN.encode()).decode())
            return 0
        case ["-n", "consul", "exec", "-i", *rest] if rest[:4] == SERVER:
            # Run the pod's command here; the fake consul is first on PATH.
            return subprocess.run(rest[4:], check=False).returncode
        case ["-n", "flask-consul-mesh", "get", "secret", name]:
            return 0 if name in state["secrets"] else 1
        case ["-n", "flask-consul-mesh", "create", "secret", "generic", name, source]:
            key = source.removeprefix("--from-file=").removesuffix("=/dev/stdin")
            path, state = _load()
            state["secrets"][name] = {key: sys.stdin.read()}
            path.write_text(json.dumps(state))
            return 0
    sys.exit(f"fake kubectl: unexpected call {args}")


if __name__ == "__main__":
    program, *arguments = sys.argv[1:]
    sys.exit(kubectl(arguments) if program == "kubectl" else consul(arguments))
