"""Command-line settings of the double, parsed once into a frozen dataclass.

The two ``--test-*`` flags exist only for tests: Consul hard-codes these values as non-user
configuration (``check_deregister_interval_min = "1m"``, ``check_reap_interval = "30s"`` in
agent/config/default.go), and the double keeps them as defaults.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .durations import DurationError, parse_duration

#: Reported as Config.Version by /v1/agent/self: the API level the double follows (Consul 1.16,
#: the last MPL-licensed release), marked so nobody mistakes it for a real agent.
VERSION = "1.16.0-consul-double"
DATACENTER = "dc1"
NODE_ADDRESS = "127.0.0.1"
MIN_DEREGISTER_AFTER = "1m"
REAP_INTERVAL = "30s"


@dataclass(frozen=True)
class Config:
    """Everything the double needs to start."""

    host: str = "127.0.0.1"
    port: int = 8500
    acl_enabled: bool = False
    #: The initial management token's secret (``acl.tokens.initial_management``), if any.
    acl_token: str | None = None
    node_name: str = "consul-double"
    datacenter: str = DATACENTER
    min_deregister_after: float = parse_duration(MIN_DEREGISTER_AFTER)
    reap_interval: float = parse_duration(REAP_INTERVAL)


def parse_args(argv: list[str] | None = None) -> Config:
    """Parse command-line flags; a malformed value exits with a message naming the flag."""
    parser = argparse.ArgumentParser(
        prog="python -m registry",
        description="Consul HTTP API test double (agent, health, catalog and status endpoints).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8500, help="port to listen on")
    parser.add_argument(
        "--acl",
        action="store_true",
        help="enable ACLs (default deny), not yet bootstrapped: PUT /v1/acl/bootstrap makes "
        "the first management token",
    )
    parser.add_argument(
        "--acl-token",
        default=None,
        help="enable ACLs (default deny) with this initial management token (implies --acl)",
    )
    parser.add_argument("--node-name", default="consul-double", help="name of the node")
    parser.add_argument(
        "--test-min-deregister-after",
        type=_duration,
        default=MIN_DEREGISTER_AFTER,
        metavar="DURATION",
        help="TEST ONLY: lowest DeregisterCriticalServiceAfter honoured (Consul: 1m)",
    )
    parser.add_argument(
        "--test-reap-interval",
        type=_duration,
        default=REAP_INTERVAL,
        metavar="DURATION",
        help="TEST ONLY: how often critical services are reaped (Consul: 30s)",
    )
    args = parser.parse_args(argv)
    if args.acl_token == "":
        parser.error("argument --acl-token: expected a non-empty token")
    return Config(
        host=args.host,
        port=args.port,
        acl_enabled=args.acl or args.acl_token is not None,
        acl_token=args.acl_token,
        node_name=args.node_name,
        min_deregister_after=_seconds(args.test_min_deregister_after),
        reap_interval=max(_seconds(args.test_reap_interval), 0.01),
    )


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except DurationError as err:
        raise argparse.ArgumentTypeError(f"{err} (expected a Go duration such as 1s)") from err
    return text


def _seconds(text: str) -> float:
    return parse_duration(text)
