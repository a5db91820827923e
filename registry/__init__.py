"""The bundled registry: a single-node, in-memory implementation of the part of Consul's HTTP
API this project uses (agent, health, catalog, status and an ACL subset), with Consul's
documented semantics, for development and tests. Not for production.

Run it with ``python -m registry --port 8500`` (or the ``mesh-registry`` console script);
start it from tests with ``registry.launcher.run_registry``. The endpoints and parameters it
serves are listed in ``registry.endpoints``.
"""
