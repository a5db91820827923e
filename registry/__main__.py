"""Entry point: ``python -m registry --port 8500``, or the ``mesh-registry`` console script."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from .config import VERSION, Config, parse_args
from .server import RegistryServer


def main(argv: list[str] | None = None) -> int:
    """Run the registry until SIGTERM or SIGINT; the exit status."""
    config = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=config.log_level.upper(),
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
    )
    try:
        server = RegistryServer(config)
    except OSError as err:
        logging.getLogger("registry").error(
            "cannot listen on %s:%d: %s", config.host, config.port, err
        )
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("registry").info(
        "registry %s listening on %s:%d (acl=%s, min deregister after=%gs, reap every %gs);"
        " for development and tests, not production",
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
