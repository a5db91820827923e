"""Command-line settings of the registry, parsed once into a frozen dataclass.

The registry takes no environment variables: everything is a flag, so ``make run`` and the tests
say exactly how they start it.

The ``--test-*`` flags exist only for tests: Consul hard-codes these values as non-user
configuration (``check_deregister_interval_min = "1m"``, ``check_reap_interval = "30s"`` in
agent/config/default.go), and the registry keeps them as defaults. ``--test-read-timeout``
shortens the registry's own 30 s socket timeout so a test can outwait it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .durations import DurationError, parse_duration

#: Reported as Config.Version by /v1/agent/self: the API level the registry follows (Consul 1.16,
#: the last MPL-licensed release), marked so nobody mistakes it for a real agent.
VERSION = "1.16.0-mesh-registry"
DESCRIPTION = """\
The bundled registry: a single-node, in-memory service registry that speaks the
part of Consul's HTTP API this project uses (agent, health, catalog, status,
and an ACL subset), with Consul's answers, status codes and blocking queries.
It is for development and tests: `make run` starts it when no Consul agent is
at hand. It keeps nothing on disk, so a restart forgets every registration (as
the compose stack's dev agent, whose data dir is a tmpfs, does), and it has no
cluster, so it is not for production; use a real Consul there. Requests it does not support are refused
(400, 405 or 501) with a reason, never silently ignored. The README section
"The bundled registry" lists what it serves."""
EPILOG = """\
examples:
  python -m registry --port 8500
  mesh-registry --port 8500 --acl-token my-management-token
  CONSUL_HTTP_ADDR=http://127.0.0.1:8500 make run    # use it like any agent"""
DATACENTER = "dc1"
NODE_ADDRESS = "127.0.0.1"
MIN_DEREGISTER_AFTER = "1m"
REAP_INTERVAL = "30s"
READ_TIMEOUT = "30s"
#: Consul's ``limits.http_max_conns_per_client`` default (agent/config/default.go).
HTTP_MAX_CONNS_PER_CLIENT = 200
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Config:
    """Everything the registry needs to start."""

    host: str = "127.0.0.1"
    port: int = 8500
    acl_enabled: bool = False
    #: The initial management token's secret (``acl.tokens.initial_management``), if any.
    acl_token: str | None = None
    node_name: str = "registry"
    datacenter: str = DATACENTER
    min_deregister_after: float = parse_duration(MIN_DEREGISTER_AFTER)
    reap_interval: float = parse_duration(REAP_INTERVAL)
    #: Seconds a socket read or write may wait for the client (``web.Handler``).
    read_timeout: float = parse_duration(READ_TIMEOUT)
    #: Concurrent connections one client address may hold; 0 for no limit, as in Consul.
    http_max_conns_per_client: int = HTTP_MAX_CONNS_PER_CLIENT
    log_level: str = "info"
    #: Consul's ``check_update_interval``; 0 (the default here) shows new output at once.
    check_update_interval: float = 0.0


def parse_args(argv: list[str] | None = None) -> Config:
    """Parse command-line flags; a malformed value exits with a message naming the flag."""
    parser = argparse.ArgumentParser(
        prog="python -m registry",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8500, help="port to listen on (default: %(default)s)"
    )
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
    parser.add_argument(
        "--node-name", default="registry", help="name of the node (default: %(default)s)"
    )
    parser.add_argument(
        "--http-max-conns-per-client",
        type=_count,
        default=HTTP_MAX_CONNS_PER_CLIENT,
        metavar="N",
        help="concurrent HTTP connections one client address may hold; more are answered 429 "
        "(Consul's limits.http_max_conns_per_client; 0 for no limit; default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="least severe log lines written to stderr (default: %(default)s)",
    )
    parser.add_argument(
        "--check-update-interval",
        type=_duration,
        default="0s",
        metavar="DURATION",
        help="hold a check's new output back from the catalog when its status does not "
        "change, as Consul's check_update_interval does (Consul: 5m; default here: %(default)s, "
        "which shows it at once)",
    )
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
    parser.add_argument(
        "--test-read-timeout",
        type=_duration,
        default=READ_TIMEOUT,
        metavar="DURATION",
        help="TEST ONLY: how long a client may stall sending its request or reading the answer",
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
        read_timeout=max(_seconds(args.test_read_timeout), 0.01),
        http_max_conns_per_client=args.http_max_conns_per_client,
        log_level=args.log_level,
        check_update_interval=_seconds(args.check_update_interval),
    )


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except DurationError as err:
        raise argparse.ArgumentTypeError(f"{err} (expected a Go duration such as 1s)") from err
    return text


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    return parse_duration(text)
