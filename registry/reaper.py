"""The background pass that deregisters services whose checks stay critical.

Consul runs ``reapServicesInternal`` every ``check_reap_interval`` (30 s) and removes a service
once one of its checks has been critical for longer than the check's
DeregisterCriticalServiceAfter, raised to ``check_deregister_interval_min`` (1 m) when lower
(agent/agent.go ``reapServices`` and ``addCheck``).
"""

from __future__ import annotations

import threading

from .agent import Agent


class Reaper:
    """Calls ``Agent.reap_once`` every ``interval`` seconds until stopped."""

    def __init__(self, agent: Agent, interval: float) -> None:
        self._agent = agent
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)

    def start(self) -> None:
        """Start the reaper thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the reaper thread."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._agent.reap_once()
