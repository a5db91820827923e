# Consul server settings for the Swarm stack (deploy/swarm/stack.yml), a Swarm config mounted as
# /consul/config/server.hcl; the image's entrypoint reads that folder. No secret is here:
# start.sh writes the ACL tokens from Swarm secrets into a file on tmpfs at start.

server = true
# Three servers: a quorum of two survives the loss of any one node. Raft elects a leader only
# once three have joined.
bootstrap_expect = 3
# Swarm's DNS answers tasks.consul-server with the address of every server task; Consul keeps
# retrying until it reaches the others, so the servers may start in any order.
retry_join = ["tasks.consul-server"]
# A task has an address on the stack's overlay network and one on docker_gwbridge; gossip and
# RPC belong on the overlay. The range is the stack's `mesh` network subnet: keep them equal.
bind_addr = "{{ GetAllInterfaces | include \"network\" \"10.42.0.0/16\" | attr \"address\" }}"
# The HTTP API on every address of the task: the overlay (other tasks) and localhost.
client_addr = "0.0.0.0"
ui_config {
  enabled = true
}
# Consul's defaults for a server, written down: it never leaves the cluster when stopped, so a
# restart keeps the Raft peer set (and the quorum of two) unchanged. Leaving would shrink it.
leave_on_terminate = false
skip_leave_on_interrupt = true

acl {
  enabled = true
  default_policy = "deny"
  # The tokens come from the file start.sh writes on every start; nothing to persist.
  enable_token_persistence = false
}
