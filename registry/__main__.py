"""Entry point: ``python -m registry --port 8500``."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from .config import VERSION, Config, parse_args
from .server import ConsulDoubleServer


def main(argv: list[str] | None = None) -> int:
    """Run the double until SIGTERM or SIGINT."""
    config = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
    )
    try:
        server = ConsulDoubleServer(config)
    except OSError as err:
        logging.getLogger("consul_double").error(
            "cannot listen on %s:%d: %s", config.host, config.port, err
        )
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("consul_double").info(
        "consul-double %s listening on %s:%d (acl=%s, min deregister after=%gs, reap every %gs)",
        VERSION,
        config.host,
        server.port,
        _acl_mode(config),
        config.min_deregister_after,
        config.reap_interval,
    )
    server.serve_forever()
    return 0


def _acl_mode(config: Config) -> str:
    if not config.acl_enabled:
        return "disabled"
    return "enabled, initial management token" if config.acl_token else "enabled, not bootstrapped"


if __name__ == "__main__":
    sys.exit(main())
