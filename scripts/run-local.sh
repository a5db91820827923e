#!/usr/bin/env bash
# `make run`: the whole stack on this machine without Docker. Ctrl-C stops everything.
# Consul: the agent at CONSUL_HTTP_ADDR if set, else `consul agent -dev` from PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
GATEWAY_PORT=${GATEWAY_PORT:-8080}
pids=()

cleanup() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if [[ -z "${CONSUL_HTTP_ADDR:-}" ]]; then
  if ! command -v consul >/dev/null; then
    echo "make run needs Consul: set CONSUL_HTTP_ADDR to a running agent, or put 'consul' on PATH" >&2
    exit 1
  fi
  consul agent -dev -log-level=warn & pids+=($!)
  export CONSUL_HTTP_ADDR=http://127.0.0.1:8500
fi
for _ in $(seq 100); do
  "$BIN/python" -c "import urllib.request as u; u.urlopen(\"$CONSUL_HTTP_ADDR/v1/status/leader\", timeout=1)" 2>/dev/null && break
  sleep 0.1
done
"$BIN/python" -c "import urllib.request as u; u.urlopen(\"$CONSUL_HTTP_ADDR/v1/status/leader\", timeout=2)" 2>/dev/null || { echo "no Consul agent answers at $CONSUL_HTTP_ADDR" >&2; exit 1; }

start() {  # start NAME PORT
  SERVICE_NAME=$1 SERVICE_PORT=$2 SERVICE_ADDRESS=127.0.0.1 SERVICE_BIND=127.0.0.1 \
    "$BIN/gunicorn" -c services/gunicorn.conf.py & pids+=($!)
}
start catalog 8101
start catalog 8102
start quote 8201
start echo 8301
GATEWAY_PORT=$GATEWAY_PORT GATEWAY_BIND=127.0.0.1 "$BIN/gunicorn" -c gateway/gunicorn.conf.py & pids+=($!)
echo "gateway on http://127.0.0.1:$GATEWAY_PORT  (try: curl localhost:$GATEWAY_PORT/catalog/items)"
echo "admin API on http://127.0.0.1:${GATEWAY_ADMIN_PORT:-9090}/_gateway/routes"
wait -n "${pids[@]}"
