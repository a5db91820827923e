# Consul client agent settings for the Swarm stack (deploy/swarm/stack.yml), a Swarm config
# mounted as /consul/config/agent.hcl. One agent runs on every node (`mode: global`); the
# services on a node register with it, and it forwards to the servers. No secret is here:
# start.sh writes the agent token from a Swarm secret into a file on tmpfs at start.

retry_join = ["tasks.consul-server"]
# The overlay address (see server.hcl): health checks reach the services' tasks over it.
bind_addr = "{{ GetAllInterfaces | include \"network\" \"10.42.0.0/16\" | attr \"address\" }}"
# The HTTP API on every address of the task: the node's own tasks reach it through the port
# the stack publishes in host mode, which arrives on the docker_gwbridge address.
client_addr = "0.0.0.0"

acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = false
}
