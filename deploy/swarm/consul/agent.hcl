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

# A stopping agent does not leave the cluster (Consul's default for a client is to leave on
# SIGTERM and SIGINT). Leaving deregisters the node and every service on it at once; a task
# restart or an update is not the node going away. A stopped agent instead shows as failed
# (serfHealth critical, so its instances stop routing) and comes back as the same node: its
# node ID is stable (start.sh). To retire a node for good: `consul force-leave -prune NODE`.
leave_on_terminate = false
skip_leave_on_interrupt = true

acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = false
}
