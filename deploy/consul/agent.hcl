# Consul agent settings for the compose stack, mounted read-only as /consul/config/agent.hcl
# (the image's entrypoint passes -config-dir=/consul/config). The agent runs with -dev: one node,
# every record in memory. No secret is configured here: the consul-acl-init service bootstraps
# ACLs through the HTTP API (deploy/consul/acl_init.py) after every start.

# A fixed node name, so the agent token's policy (node "consul" write) names the same node
# however often the container is recreated. Without it a dev agent takes the container's
# random hostname.
node_name = "consul"

acl {
  enabled = true
  # Nothing is allowed unless a token's policy allows it: a request without a token (the
  # anonymous token) may not register, deregister or read anything but the leader's address.
  default_policy = "deny"
  # Off: a dev agent keeps its ACL state in memory, so a token persisted to the data dir
  # would outlive the token itself after a restart (and docker-compose.yml keeps the data dir
  # on a tmpfs anyway). consul-acl-init sets the agent token again
  # (PUT /v1/agent/token/agent) on every `docker compose up`.
  enable_token_persistence = false
}
