#!/bin/sh
# Start a Consul agent (server or client) of the Swarm stack with its ACL tokens.
#
# Consul reads tokens from its config, not from files of their own, and a token on the command
# line is visible in /proc to every user of the node. So this writes the tokens from the Swarm
# secrets mounted under /run/secrets into an HCL file on the task's tmpfs, readable by Consul's
# user only, then runs the image's own entrypoint with it. A server also gets the management
# token as acl.tokens.initial_management: ACLs are bootstrapped with the secret made up front.
set -eu
umask 077
tokens=/tmp/acl-tokens.hcl
agent=$(cat /run/secrets/consul_agent_token)
{
  echo 'acl {'
  echo '  tokens {'
  printf '    agent = "%s"\n' "$agent"
  if [ -r /run/secrets/consul_management_token ]; then
    printf '    initial_management = "%s"\n' "$(cat /run/secrets/consul_management_token)"
  fi
  echo '  }'
  echo '}'
} >"$tokens"
# A client agent's node ID, derived from the Swarm node's ID (stack.yml): the data dir is on
# tmpfs, and without it every start would make a new ID while the node name stays the same.
if [ -n "${CONSUL_SWARM_NODE_ID:-}" ]; then
  hex=$(printf 'consul-agent:%s' "$CONSUL_SWARM_NODE_ID" | sha256sum | cut -c1-32)
  node_id="$(echo "$hex" | cut -c1-8)-$(echo "$hex" | cut -c9-12)-$(echo "$hex" | cut -c13-16)"
  node_id="$node_id-$(echo "$hex" | cut -c17-20)-$(echo "$hex" | cut -c21-32)"
  set -- -node-id="$node_id" "$@"
fi
exec docker-entrypoint.sh agent -config-file="$tokens" "$@"
