#!/usr/bin/env bash
# Make the Swarm secrets deploy/swarm/stack.yml needs, once, on a manager node:
#
#   deploy/swarm/secrets.sh            # creates each missing secret; existing ones are kept
#
# Every secret the stack declares `external` (its top-level `secrets:` list) gets a random
# UUID from the kernel's CSPRNG: Consul's SecretIDs must be UUIDs, and the gateway's admin
# token may be one too. The values go straight from the kernel into `docker secret create`:
# never onto disk, a command line or the terminal. Print one with a task that mounts it, e.g.
# `docker exec <gateway task> cat /run/secrets/admin_token`.
#
# Swarm secrets are immutable. To rotate one: create it under a new name, point the stack at it
# (`docker service update --secret-rm/--secret-add`), and run consul-acl-init again.
set -euo pipefail
cd "$(dirname "$0")"

DOCKER=${DOCKER:-docker}

# The names under the top-level `secrets:` key of stack.yml (two-space indented keys).
names=$(awk '/^[a-z]/ { top = $1 } top == "secrets:" && /^  [a-z_]+:$/ { sub(":", "", $1); print $1 }' stack.yml)
[[ -n $names ]] || { echo "secrets.sh: no secrets found in stack.yml" >&2; exit 1; }

for name in $names; do
  if "$DOCKER" secret inspect "$name" >/dev/null 2>&1; then
    echo "secret ${name}: kept"
  else
    tr -d '\n' </proc/sys/kernel/random/uuid | "$DOCKER" secret create "$name" - >/dev/null
    echo "secret ${name}: created"
  fi
done
