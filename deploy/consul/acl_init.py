"""Bootstrap Consul's ACLs for the compose stack and give each component its own token.

The ``consul-acl-init`` compose service runs this once per ``docker compose up``, before any
component starts, in one of the project's images (standard library only). Running it again is
safe, and needed after the Consul container restarts: a dev agent keeps ACLs in memory. Through
Consul's HTTP API it

1. waits for a leader (``GET /v1/status/leader``);
2. reuses the management token kept in its own state volume while Consul still knows it, else
   bootstraps (``PUT /v1/acl/bootstrap``) and keeps the new one;
3. creates or updates one policy per component: a service may register only itself
   (``service "<name>"`` write) and read nodes, plus read what ``ACL_SERVICE_READS`` names; the
   gateway may only read; the agent may write its own node;
4. creates each token, giving Consul the secret it had before when there is one, so that the
   tokens running components hold become valid again after Consul lost its state;
5. sets the agent's own token (``PUT /v1/agent/token/agent``);
6. writes each component's token into that component's volume (``<ACL_TOKENS_DIR>/<name>/
   token``, mode 0400, owned by the images' user), and a random admin token for the gateway
   into ``<ACL_TOKENS_DIR>/gateway-admin/admin-token``.

It prints names and AccessorIDs, never a SecretID. ``acl_init.py management-token`` prints the
management token, for an operator who asks for it (the Consul UI, ``consul`` CLI).

Environment: ``CONSUL_HTTP_ADDR`` (http://consul:8500), ``ACL_SERVICES`` ("catalog echo quote"),
``ACL_SERVICE_READS`` ("quote=catalog"), ``ACL_GATEWAY`` (gateway), ``ACL_STATE_DIR``
(/var/lib/consul-acl-init), ``ACL_TOKENS_DIR`` (/run/tokens), ``ACL_TOKEN_OWNER``
(10001:10001), ``ACL_INIT_TIMEOUT`` (120 seconds).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

AGENT_POLICY = "consul-agent"
ADMIN_TOKEN = "gateway-admin"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class InitError(Exception):
    """Why the init step cannot finish; printed as one line, exit status 1."""


class Consul:
    """Consul's HTTP API over urllib, never through a proxy from the environment."""

    def __init__(self, addr: str) -> None:
        self.addr = addr.rstrip("/")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, token: str = "", body: object = None) -> tuple[int, Any]:
        """Status and decoded body (JSON when it parses, else text); raises OSError if down."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.addr + path, data=data, method=method)
        if token:
            request.add_header("X-Consul-Token", token)
        try:
            with self._opener.open(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def ok(self, method: str, path: str, token: str, body: object = None) -> Any:
        """The body of a call that must answer 200."""
        status, answer = self.call(method, path, token, body)
        if status != 200:
            raise InitError(f"{method} {path} answered {status}: {answer}")
        return answer


def log(message: str) -> None:
    """One line on stdout; never pass a SecretID."""
    print(f"consul-acl-init: {message}", flush=True)


def wait_for(what: str, attempt: Any, deadline: float) -> Any:
    """Call ``attempt`` until it returns something other than None, or fail at ``deadline``."""
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            result = attempt()
        except OSError as err:  # Consul not listening yet
            result, last = None, str(err)
        if result is not None:
            return result
        time.sleep(0.5)
    raise InitError(f"gave up waiting for {what} ({last})")


def management_token(consul: Consul, state: dict[str, Any], deadline: float) -> str:
    """The stored management token if Consul knows it, else a freshly bootstrapped one."""
    stored = state.get("management", "")
    if stored:
        status, token = consul.call("GET", "/v1/acl/token/self", stored)
        if status == 200:
            log(f"management token kept (AccessorID {token['AccessorID']})")
            return str(stored)
        log("Consul no longer knows the stored management token; bootstrapping ACLs")

    def bootstrap() -> dict[str, Any] | None:
        status, answer = consul.call("PUT", "/v1/acl/bootstrap")
        if status == 200:
            return dict(answer)
        if status == 403 and "no longer allowed" in str(answer):
            raise InitError(
                "Consul's ACLs were bootstrapped, but not with a token this step kept; "
                "start over with `docker compose down -v`"
            )
        return None  # ACLs still initialising after the leader election

    token = wait_for("ACL bootstrap", bootstrap, deadline)
    state["management"] = token["SecretID"]
    log(f"bootstrapped ACLs (management token AccessorID {token['AccessorID']})")
    return str(token["SecretID"])


def desired_policies(
    node: str, services: list[str], reads: dict[str, list[str]], gateway: str
) -> dict[str, str]:
    """Policy name -> rules: one per component (named after it), and the agent's."""
    policies = {
        AGENT_POLICY: f'node "{node}" {{ policy = "write" }}\nservice_prefix "" {{ policy = "read" }}\n',
        gateway: 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\n',
    }
    for name in services:
        rules = f'service "{name}" {{ policy = "write" }}\n'
        rules += "".join(f'service "{dep}" {{ policy = "read" }}\n' for dep in reads.get(name, []))
        policies[name] = rules + 'node_prefix "" { policy = "read" }\n'
    return policies


def ensure_policies(consul: Consul, mgmt: str, policies: dict[str, str]) -> None:
    """Create the missing policies and put back the rules of any that changed."""
    existing = {p["Name"]: p["ID"] for p in consul.ok("GET", "/v1/acl/policies", mgmt)}
    for name, rules in policies.items():
        body = {"Name": name, "Description": "flask-consul-mesh compose stack", "Rules": rules}
        if name not in existing:
            consul.ok("PUT", "/v1/acl/policy", mgmt, body)
            log(f"policy {name}: created")
        elif consul.ok("GET", f"/v1/acl/policy/{existing[name]}", mgmt)["Rules"] != rules:
            consul.ok("PUT", f"/v1/acl/policy/{existing[name]}", mgmt, body)
            log(f"policy {name}: rules updated")
        else:
            log(f"policy {name}: unchanged")


def ensure_token(consul: Consul, mgmt: str, name: str, policy: str, secret: str) -> str:
    """The SecretID of ``name``'s token, linked to ``policy``, reusing ``secret`` if given."""
    body: dict[str, Any] = {
        "Description": f"{name} (compose stack)",
        "Policies": [{"Name": policy}],
    }
    if secret:
        status, token = consul.call("GET", "/v1/acl/token/self", secret)
        if status == 200:
            if [p.get("Name") for p in token.get("Policies", [])] == [policy]:
                log(f"token {name}: kept (AccessorID {token['AccessorID']})")
                return secret
            consul.ok("PUT", f"/v1/acl/token/{token['AccessorID']}", mgmt, body)
            log(f"token {name}: policies updated (AccessorID {token['AccessorID']})")
            return secret
        if status not in (403, 404):  # 404 "Supplied token does not exist"; 403 before 1.15
            raise InitError(f"reading token {name} answered {status}: {token}")
        body["SecretID"] = secret  # Consul lost it: make it again with the same secret
    created = consul.ok("PUT", "/v1/acl/token", mgmt, body)
    verb = "recreated with its former secret" if secret else "created"
    log(f"token {name}: {verb} (AccessorID {created['AccessorID']})")
    return str(created["SecretID"])


def write_secret(path: Path, secret: str, owner: tuple[int, int]) -> None:
    """Replace ``path`` atomically with ``secret``, readable by ``owner`` only."""
    if not path.parent.is_dir():
        raise InitError(f"no volume mounted at {path.parent}; add it to consul-acl-init")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".token-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secret)
            os.fchmod(out.fileno(), 0o400)
            os.fchown(out.fileno(), *owner)
        os.replace(tmp, path)
    except PermissionError as err:
        Path(tmp).unlink(missing_ok=True)
        raise InitError(
            f"cannot write {path} for {owner[0]}:{owner[1]}: {err.strerror} "
            "(the service runs as root with the CHOWN capability)"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state file (every secret this step keeps) for root only, atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        json.dump(state, out)
    os.replace(tmp, path)


def run(env: dict[str, str]) -> None:
    """Everything the module docstring lists, in that order."""
    consul = Consul(env.get("CONSUL_HTTP_ADDR", "http://consul:8500"))
    services = _names(env.get("ACL_SERVICES", ""), "ACL_SERVICES")
    reads = _reads(env.get("ACL_SERVICE_READS", ""))
    gateway = env.get("ACL_GATEWAY", "gateway")
    state_path = Path(env.get("ACL_STATE_DIR", "/var/lib/consul-acl-init")) / "state.json"
    tokens_dir = Path(env.get("ACL_TOKENS_DIR", "/run/tokens"))
    owner = _owner(env.get("ACL_TOKEN_OWNER", "10001:10001"))
    deadline = time.monotonic() + float(env.get("ACL_INIT_TIMEOUT", "120"))

    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    wait_for("a Consul leader", lambda: _leader(consul), deadline)
    mgmt = management_token(consul, state, deadline)
    save_state(state_path, state)
    node = consul.ok("GET", "/v1/agent/self", mgmt)["Config"]["NodeName"]
    ensure_policies(consul, mgmt, desired_policies(node, services, reads, gateway))
    tokens: dict[str, str] = state.setdefault("tokens", {})
    for name, policy in [("consul-agent", AGENT_POLICY), *((n, n) for n in [*services, gateway])]:
        tokens[name] = ensure_token(consul, mgmt, name, policy, tokens.get(name, ""))
        save_state(state_path, state)
    consul.ok("PUT", "/v1/agent/token/agent", mgmt, {"Token": tokens["consul-agent"]})
    log(f"agent token set for node {node}")
    if not state.get(ADMIN_TOKEN):
        state[ADMIN_TOKEN] = secrets.token_urlsafe(32)
        save_state(state_path, state)
        log("gateway admin token created")
    for name in [*services, gateway]:
        write_secret(tokens_dir / name / "token", tokens[name], owner)
    write_secret(tokens_dir / ADMIN_TOKEN / "admin-token", state[ADMIN_TOKEN], owner)
    log(f"tokens written for {', '.join([*services, gateway])} and the gateway's admin API")


def main(argv: list[str]) -> int:
    """``acl_init.py`` runs the init step; ``acl_init.py management-token`` prints that token."""
    env = dict(os.environ)
    try:
        if argv[1:] == ["management-token"]:
            state_dir = Path(env.get("ACL_STATE_DIR", "/var/lib/consul-acl-init"))
            print(json.loads((state_dir / "state.json").read_text())["management"])
            return 0
        if argv[1:]:
            raise InitError(f"unknown arguments {argv[1:]}; expected none or management-token")
        run(env)
    except (InitError, OSError, KeyError, ValueError) as err:
        log(f"failed: {err}")
        return 1
    return 0


def _leader(consul: Consul) -> bool | None:
    status, leader = consul.call("GET", "/v1/status/leader")
    return True if status == 200 and leader else None


def _names(text: str, variable: str) -> list[str]:
    names = text.replace(",", " ").split()
    for name in names:
        if not _NAME.match(name):
            raise InitError(f"{variable}: {name!r} is not a lowercase service name")
    return names


def _reads(text: str) -> dict[str, list[str]]:
    reads: dict[str, list[str]] = {}
    for pair in text.replace(",", " ").split():
        reader, sep, target = pair.partition("=")
        if not sep:
            raise InitError(f"ACL_SERVICE_READS: expected reader=service pairs, got {pair!r}")
        reads.setdefault(reader, []).extend(_names(target.replace("+", " "), "ACL_SERVICE_READS"))
    return reads


def _owner(text: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    if not (uid.isdigit() and gid.isdigit()):
        raise InitError(f"ACL_TOKEN_OWNER: expected uid:gid such as 10001:10001, got {text!r}")
    return int(uid), int(gid)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
