"""A Consul HTTP API test double: a small reference implementation of the agent, health and
catalog endpoints that the product and py-consul use, with Consul's documented semantics.

Run it with ``python -m tests.consul_double --port 8500``; start it from tests with
``tests.consul_double.launcher.run_consul_double``. Standard library only.
"""
