"""gunicorn server hooks that tie an instance's Consul registration to the master process.

They run in the master, so an instance registers once, however many workers it has. Shutdown
follows the order that loses no request: on SIGTERM the instance first leaves Consul, then
keeps serving for ``SERVICE_DRAIN_DELAY`` while every watcher (the gateway, other services)
drops it, and only then lets gunicorn stop accepting and drain in-flight requests.

Use from a gunicorn config file::

    from discovery.lifecycle import on_exit, on_starting, when_ready
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from discovery.errors import RegistrationError, SettingsError
from discovery.registration import Registrar
from discovery.settings import ServiceSettings
from discovery.stop_signals import StopSignals

log = logging.getLogger(__name__)
_registrar: Registrar | None = None


def configure_logging() -> None:
    """Send the project's log records (INFO and up) to stderr, formatted like gunicorn's.

    Called from the gunicorn config files, so it runs in the master before the workers fork
    and both inherit it; without it Python drops everything below WARNING.
    """
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S %z",
    )


def on_starting(server: Any) -> None:
    """Validate the settings before anything binds; a bad variable stops startup by name."""
    try:
        ServiceSettings.from_env()
    except SettingsError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)


def when_ready(server: Any) -> None:
    """Register in Consul once the listening socket exists, and arm the drain on SIGTERM.

    gunicorn acts on signals only after this hook returns, so while the registration is
    retried SIGTERM, SIGINT and SIGQUIT end the retries themselves and the master exits.
    """
    global _registrar
    settings = ServiceSettings.from_env()
    for note in settings.consul_adjustments():
        server.log.warning("%s", note)
    registrar = Registrar(settings)
    with StopSignals() as stop:
        try:
            registered = registrar.register(stop)
        except RegistrationError as exc:
            server.log.error("%s", exc)
            sys.exit(3)
        if stop.received is not None:
            if registered:
                registrar.deregister()
            server.log.info("%s during start-up: stopping", stop.received.name)
            sys.exit(0)  # what gunicorn exits with after a SIGTERM or SIGINT
    registrar.start_keepalive()
    _registrar = registrar
    terminate = server.handle_term

    def deregister_then_terminate() -> None:
        registrar.deregister()
        server.log.info("out of Consul; draining for %.1fs before shutdown", settings.drain_delay)
        time.sleep(settings.drain_delay)
        terminate()

    # gunicorn dispatches SIGTERM to ``handle_term`` by attribute lookup on the arbiter.
    server.handle_term = deregister_then_terminate


def on_exit(server: Any) -> None:
    """Deregister on every way out (SIGINT, SIGQUIT, errors); a second call is harmless."""
    if _registrar is not None:
        _registrar.deregister()
