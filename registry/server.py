"""Wires the registry together: store, agent, reaper, routes and the HTTP server."""

from __future__ import annotations

import threading
import uuid

from . import endpoints
from .acl_state import AclState
from .agent import Agent
from .app import App, Router
from .config import NODE_ADDRESS, Config
from .model import Node
from .reaper import Reaper
from .store import Store
from .web import Server


class RegistryServer:
    """One running registry; ``serve_forever`` blocks until ``shutdown``."""

    def __init__(self, config: Config) -> None:
        node = Node(
            name=config.node_name,
            node_id=str(uuid.uuid4()),
            address=NODE_ADDRESS,
            datacenter=config.datacenter,
        )
        store = Store(node, config.check_update_interval)
        self.agent = Agent(store, config.min_deregister_after)
        acl = AclState(store.next_index, config.acl_token) if config.acl_enabled else None
        self.app = App(config=config, node=node, store=store, agent=self.agent, acl=acl)
        self._reaper = Reaper(self.agent, config.reap_interval)
        router = Router(
            self.app, endpoints.ROUTES, endpoints.COMMON_PARAMS, endpoints.REFUSED_PARAMS
        )
        self.http = Server(
            (config.host, config.port),
            router,
            config.read_timeout,
            config.http_max_conns_per_client,
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self.http.server_address[1])

    def serve_forever(self) -> None:
        """Serve requests and reap until ``shutdown`` is called."""
        self._reaper.start()
        try:
            self.http.serve_forever(poll_interval=0.2)
        finally:
            self._reaper.stop()
            self.agent.stop()
            self.http.server_close()

    def shutdown(self) -> None:
        """Stop serving; safe to call from a signal handler's thread."""
        threading.Thread(target=self.http.shutdown, daemon=True).start()
