"""Make Consul's ACL tokens for the Swarm stack from secrets made before the deploy.

In the compose stack the init step keeps its secrets in volumes; a Swarm task may land on any
node, so here every secret is made up front by ``deploy/swarm/secrets.sh`` and handed out as a
Swarm secret: each component gets its own token as a file, and this job gets them all. The
servers start with the management token as ``acl.tokens.initial_management``, and every agent
with the agent token in its config, so nothing is bootstrapped over the API. This one-shot job
(the ``consul-acl-init`` service of ``deploy/swarm/stack.yml``) then

1. waits for a leader, and for Consul to accept the management token;
2. creates or updates one policy per component (``deploy/consul/acl_init.py``'s rules), and the
   agents' policy: write on every node named ``consul-*`` (the stack's agent hostnames);
3. creates each token with its pre-made secret as SecretID (Consul's token create API takes
   one), or keeps it if Consul knows it already.

Running it again is safe (``docker service update --force <stack>_consul-acl-init``). It reuses
the compose step's module, mounted next to it, and prints AccessorIDs, never a SecretID.

Environment: ``CONSUL_HTTP_ADDR``, ``ACL_SERVICES``, ``ACL_SERVICE_READS``, ``ACL_GATEWAY`` and
``ACL_INIT_TIMEOUT`` as for ``acl_init.py``; ``ACL_SECRETS_DIR`` (/run/secrets) holds
``consul_management_token``, ``consul_agent_token`` and ``consul_token_<component>``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from acl_init import (
    AGENT_POLICY,
    Consul,
    InitError,
    _leader,
    _names,
    _reads,
    desired_policies,
    ensure_policies,
    ensure_token,
    log,
    wait_for,
)

AGENT_NODES = "consul-"  # node-name prefix of the stack's servers and agents (their hostnames)


def read_secret(folder: Path, name: str) -> str:
    """A pre-made secret; a missing or empty one names the Swarm secret to create."""
    path = folder / name
    try:
        secret = path.read_text().strip()
    except OSError as err:
        raise InitError(
            f"cannot read {path} ({err.strerror}): run deploy/swarm/secrets.sh"
        ) from None
    if not secret:
        raise InitError(f"{path} is empty: recreate the Swarm secret {name}")
    return secret


def accepts(consul: Consul, token: str) -> bool | None:
    """True once Consul knows ``token`` (ACLs come up a moment after the leader election)."""
    status, _ = consul.call("GET", "/v1/acl/token/self", token)
    return True if status == 200 else None


def run(env: dict[str, str]) -> None:
    """Everything the module docstring lists, in that order."""
    consul = Consul(env.get("CONSUL_HTTP_ADDR", "http://127.0.0.1:8500"))
    services = _names(env.get("ACL_SERVICES", ""), "ACL_SERVICES")
    reads = _reads(env.get("ACL_SERVICE_READS", ""))
    gateway = env.get("ACL_GATEWAY", "gateway")
    folder = Path(env.get("ACL_SECRETS_DIR", "/run/secrets"))
    deadline = time.monotonic() + float(env.get("ACL_INIT_TIMEOUT", "120"))

    mgmt = read_secret(folder, "consul_management_token")
    wanted = {"consul-agent": (AGENT_POLICY, read_secret(folder, "consul_agent_token"))}
    for name in [*services, gateway]:
        wanted[name] = (name, read_secret(folder, f"consul_token_{name}"))

    wait_for("a Consul leader", lambda: _leader(consul), deadline)
    wait_for(
        "Consul to accept the management token (the servers' acl.tokens.initial_management)",
        lambda: accepts(consul, mgmt),
        deadline,
    )
    policies = desired_policies("", services, reads, gateway)
    # Every agent writes its own node; nodes come and go with Swarm's, so a prefix, not a name.
    policies[AGENT_POLICY] = (
        f'node_prefix "{AGENT_NODES}" {{ policy = "write" }}\n'
        'service_prefix "" { policy = "read" }\n'
    )
    ensure_policies(consul, mgmt, policies)
    for name, (policy, secret) in wanted.items():
        ensure_token(consul, mgmt, name, policy, secret)
    log(f"tokens ready for the agents and {', '.join([*services, gateway])}")


def main() -> int:
    """Run once; one line and exit status 1 on failure."""
    try:
        run(dict(os.environ))
    except (InitError, OSError, KeyError, ValueError) as err:
        log(f"failed: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
