#!/usr/bin/env bash
# Gives each component of the app its own Consul ACL token, kept in a Kubernetes Secret in the
# app's namespace, with the same policies as the compose stack (deploy/consul/acl_init.py):
#
#   catalog, echo   service "<name>" write (register itself only), node_prefix "" read
#   quote           the same, and service "catalog" read (it calls catalog)
#   gateway         service_prefix "" read, node_prefix "" read, nothing else
#
# plus a random bearer token for the gateway's admin API (Secret gateway-admin-token).
#
# Run it once after `helm install consul ...` and before `kubectl apply -k deploy/kubernetes`.
# It needs kubectl with access to both namespaces, and nothing else: the `consul` CLI runs inside
# a Consul server pod, authenticated by the bootstrap token the chart's ACL bootstrap keeps in
# the Secret <release>-bootstrap-acl-token. It prints names only, never a secret. Running it
# again changes nothing; to rotate a token, delete its Secret (and the old token in Consul),
# run it again and restart the component's pods.
set -euo pipefail

CONSUL_NAMESPACE=${CONSUL_NAMESPACE:-consul}
CONSUL_RELEASE=${CONSUL_RELEASE:-consul}
APP_NAMESPACE=${APP_NAMESPACE:-flask-consul-mesh}
SERVER_POD=${SERVER_POD:-$CONSUL_RELEASE-server-0}

kubectl get namespace "$APP_NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$APP_NAMESPACE"
BOOTSTRAP_TOKEN=$(kubectl -n "$CONSUL_NAMESPACE" get secret "$CONSUL_RELEASE-bootstrap-acl-token" \
  -o jsonpath='{.data.token}' | base64 -d)

# The consul CLI in the server pod; the bootstrap token travels on stdin, never on a command
# line.
consul_cli() {
  kubectl -n "$CONSUL_NAMESPACE" exec -i "$SERVER_POD" -c consul -- \
    sh -c 'CONSUL_HTTP_TOKEN=$(cat) exec consul "$@"' consul "$@" <<<"$BOOTSTRAP_TOKEN"
}

# create_token NAME: a token with NAME's policy; prints its secret. Consul makes the secret, and
# it comes back on stdout (the CLI's JSON answer, one field a line): it is on no command line,
# here or in the server pod.
create_token() {
  consul_cli acl token create -description "flask-consul-mesh $1" -policy-name "$1" -format json |
    sed -n 's/^ *"SecretID": *"\([^"]*\)".*/\1/p'
}

# make_secret NAME KEY VALUE: a Secret holding one file; the value goes through stdin.
make_secret() {
  printf '%s' "$3" | kubectl -n "$APP_NAMESPACE" create secret generic "$1" --from-file="$2=/dev/stdin" >/dev/null
  echo "secret $1: created"
}

# component NAME RULES: its policy (created or updated) and its token (if its Secret is missing).
component() {
  local name=$1 rules=$2 secret
  if consul_cli acl policy read -name "$name" >/dev/null 2>&1; then
    consul_cli acl policy update -name "$name" -rules "$rules" >/dev/null
  else
    consul_cli acl policy create -name "$name" -description "flask-consul-mesh $name" -rules "$rules" >/dev/null
  fi
  echo "policy $name: in place"
  if kubectl -n "$APP_NAMESPACE" get secret "consul-token-$name" >/dev/null 2>&1; then
    echo "secret consul-token-$name: exists, kept"
    return
  fi
  secret=$(create_token "$name")
  [[ -n $secret ]] || { echo "token $name: Consul returned no secret" >&2; exit 1; }
  make_secret "consul-token-$name" token "$secret"
}

NODES='node_prefix "" { policy = "read" }'
component catalog "service \"catalog\" { policy = \"write\" } $NODES"
component echo "service \"echo\" { policy = \"write\" } $NODES"
component quote "service \"quote\" { policy = \"write\" } service \"catalog\" { policy = \"read\" } $NODES"
component gateway "service_prefix \"\" { policy = \"read\" } $NODES"

if kubectl -n "$APP_NAMESPACE" get secret gateway-admin-token >/dev/null 2>&1; then
  echo "secret gateway-admin-token: exists, kept"
else
  make_secret gateway-admin-token admin-token "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
fi
