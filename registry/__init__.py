"""A Consul HTTP API test double: a small reference implementation of the agent, health and
catalog endpoints that the product and py-consul use, with Consul's documented semantics.

Run it with ``python -m registry --port 8500``; start it from tests with
``registry.launcher.run_consul_double``. Standard library only.
"""
