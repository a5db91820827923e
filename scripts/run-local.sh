#!/usr/bin/env bash
# `make run`: the whole stack on this machine, without Docker. Ctrl-C stops everything.
#
# The registry is the first of these that applies:
#   1. the Consul agent at CONSUL_HTTP_ADDR, if that is set. It must answer, or nothing starts:
#      whoever set it wants that agent, and falling back would hide the mistake;
#   2. `consul agent -dev` from PATH, in memory, on RUN_REGISTRY_PORT and the three ports after
#      it (server RPC, Serf LAN, Serf WAN; no DNS, no gRPC);
#   3. the bundled registry (`python -m registry`, in memory, dev only) on RUN_REGISTRY_PORT.
# Ports, all on 127.0.0.1; give a second checkout its own and both run side by side:
#   GATEWAY_PORT           8080  the gateway
#   GATEWAY_ADMIN_PORT     9090  the gateway's admin API
#   RUN_REGISTRY_PORT      8500  the registry this script starts (unused with CONSUL_HTTP_ADDR)
#   RUN_SERVICE_PORT_BASE  8101  the first service instance; the others take the next ports
# Every folder of services/ with an app.py runs once, catalog twice (to show the balancing).
# Exit status: 0 when Ctrl-C or SIGTERM stopped everything, 1 when a component failed or had to
# be killed, 2 for a bad setting. No `wait -n` or other bash 4 features: macOS ships bash 3.2.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
STOP_TIMEOUT=20  # seconds; longer than a service's drain delay plus gunicorn's graceful timeout
READY_TIMEOUT=60 # seconds for the registry, then every instance and the gateway, to answer

say() { echo "make run: $*" >&2; }

if [[ ! -x $BIN/gunicorn ]]; then
  say "no virtualenv in .venv: run \`make install\` first, or start this with \`make run\`"
  exit 2
fi

# service_config NAME: the gunicorn config file of service NAME.
service_config() { echo "services/gunicorn.conf.py"; }

# port NAME DEFAULT: the value of variable NAME (DEFAULT if unset or empty), checked to be a port.
port() {
  local value=${!1:-$2}
  if [[ ! $value =~ ^[0-9]{1,5}$ ]] || ((10#$value < 1 || 10#$value > 65535)); then
    say "$1: expected a port number from 1 to 65535, got '$value'"
    exit 2
  fi
  echo $((10#$value))
}

GATEWAY_PORT=$(port GATEWAY_PORT 8080)
GATEWAY_ADMIN_PORT=$(port GATEWAY_ADMIN_PORT 9090)
RUN_REGISTRY_PORT=$(port RUN_REGISTRY_PORT 8500)
RUN_SERVICE_PORT_BASE=$(port RUN_SERVICE_PORT_BASE 8101)
# Every component logs to this terminal: readable lines unless the caller asks for JSON.
export LOG_FORMAT=${LOG_FORMAT:-text}

services=()
for app in services/*/app.py; do
  name=$(basename "$(dirname "$app")")
  services+=("$name")
  [[ $name != catalog ]] || services+=("$name")
done

# --- processes ------------------------------------------------------------------------------
pids=() names=() registry_pid='' helper='' stopping=0 forced=0 killed=0 logdir=''

# launch NAME COMMAND...: run a component in the background, in a process group of its own:
# Ctrl-C then reaches this script alone, which stops the components in order (below).
launch() {
  local name=$1
  shift
  set -m
  "$@" </dev/null &
  set +m
  pids+=("$!")
  names+=("$name")
}

# alive PID...: whether any of them still runs.
alive() {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}

# stop SIGNAL PID...: signal each, then wait for all of them; past STOP_TIMEOUT or at a second
# Ctrl-C, SIGKILL whatever is left, workers included (the whole process group). Last, SIGTERM
# to each group: a worker whose master died before it could stop it is still in there.
stop() {
  local sig=$1 pid deadline=$((SECONDS + STOP_TIMEOUT))
  shift
  for pid in "$@"; do kill -"$sig" "$pid" 2>/dev/null || true; done
  while alive "$@"; do
    if ((SECONDS >= deadline || forced)); then
      say "still running after SIG$sig; killing: $*"
      for pid in "$@"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
      killed=1
      break
    fi
    sleep 0.1
  done
  for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
}

# shutdown SIGNAL: stop the services and the gateway (they deregister), then the registry.
shutdown() {
  ((stopping)) && return
  stopping=1
  trap 'forced=1' INT TERM
  [[ -z $helper ]] || kill "$helper" 2>/dev/null || true
  ((${#pids[@]} == 0)) || stop "$1" "${pids[@]}"
  [[ -z $registry_pid ]] || stop TERM "$registry_pid"
  [[ -z $logdir ]] || rm -rf "$logdir"
}
# interrupted SIGNAL: Ctrl-C or SIGTERM. Pass it on to the gunicorns (SIGINT: they stop at
# once; SIGTERM: they deregister, drain, then stop), and exit 0 if all went as asked.
interrupted() {
  echo >&2
  say "stopping..."
  shutdown "$1"
  exit "$killed"
}
trap 'shutdown TERM' EXIT
trap 'interrupted INT' INT
trap 'interrupted TERM' TERM

# helper ARGS...: run a helper below in the background and wait for it, so that Ctrl-C does
# not have to wait for it to finish; stdin is the helper's Python source (`<&0`: else bash
# gives a background command /dev/null).
helper() {
  "$BIN/python" - "$@" <&0 &
  helper=$!
  local status=0
  wait "$helper" || status=$?
  helper=''
  return "$status"
}

# answer SECONDS PIDS URL...: wait until every URL answers 200 with something other than an
# empty list, or fail naming those that do not; fail at once when one of PIDS (comma-separated,
# may be empty) exits. Requests to CONSUL_HTTP_ADDR carry the Consul token, if one is set.
answer() {
  helper "$@" <<'PY'
import os, sys, time, urllib.request
from pathlib import Path

deadline, urls = time.monotonic() + float(sys.argv[1]), sys.argv[3:]
pids = [int(pid) for pid in sys.argv[2].split(",") if pid]
consul = os.environ.get("CONSUL_HTTP_ADDR") or "-"
token_file = os.environ.get("CONSUL_HTTP_TOKEN_FILE")
token = os.environ.get("CONSUL_HTTP_TOKEN") or (
    token_file and Path(token_file).is_file() and Path(token_file).read_text().strip()
)
while urls:
    request = urllib.request.Request(urls[0])
    if token and urls[0].startswith(consul):
        request.add_header("X-Consul-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=1) as answer:
            if answer.status == 200 and answer.read().strip() != b"[]":
                urls.pop(0)
                continue
    except OSError:
        pass
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(f"make run: process {pid} exited before {urls[0]} answered")
    if time.monotonic() >= deadline:
        sys.exit("make run: no answer from " + " ".join(urls))
    time.sleep(0.1)
PY
}

# free LABEL=PORT...: every port different from the others and free on 127.0.0.1, or fail
# naming the variable that chose it.
free() {
  helper "$@" <<'PY' || exit 2
import socket, sys

seen = {}
for arg in sys.argv[1:]:
    label, _, port = arg.rpartition("=")
    problem = None
    if not 0 < int(port) < 65536:
        problem = f"{label} gives port {port}, outside 1-65535"
    elif port in seen:
        problem = f"{label} and {seen[port]} both give port {port}"
    else:
        seen[port] = label
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
            try:
                probe.bind(("127.0.0.1", int(port)))
            except OSError as exc:
                problem = f"{label} gives port {port}, which is in use ({exc.strerror})"
    if problem:
        sys.exit(f"make run: {problem}; choose other ports (see scripts/run-local.sh)")
PY
}

# --- ports ----------------------------------------------------------------------------------
checks=("GATEWAY_PORT=$GATEWAY_PORT" "GATEWAY_ADMIN_PORT=$GATEWAY_ADMIN_PORT")
for i in "${!services[@]}"; do
  checks+=("RUN_SERVICE_PORT_BASE+$i (${services[$i]})=$((RUN_SERVICE_PORT_BASE + i))")
done
use_consul=0
if [[ -z ${CONSUL_HTTP_ADDR:-} ]]; then
  checks+=("RUN_REGISTRY_PORT=$RUN_REGISTRY_PORT")
  if command -v consul >/dev/null; then
    use_consul=1
    for i in 1 2 3; do checks+=("RUN_REGISTRY_PORT+$i (consul)=$((RUN_REGISTRY_PORT + i))"); done
  fi
fi
free "${checks[@]}"

# --- registry -------------------------------------------------------------------------------
if [[ -n ${CONSUL_HTTP_ADDR:-} ]]; then
  addr=${CONSUL_HTTP_ADDR%/}
  [[ $addr == *://* ]] || addr="http://$addr"
  if ! answer 5 '' "$addr/v1/status/leader"; then
    say "CONSUL_HTTP_ADDR is set to $CONSUL_HTTP_ADDR, but no Consul agent answers there."
    say "Start that agent, or unset CONSUL_HTTP_ADDR to run one here (consul from PATH, else the bundled registry)."
    exit 1
  fi
  banner="registry: the Consul agent at $addr (from CONSUL_HTTP_ADDR)"
else
  addr="http://127.0.0.1:$RUN_REGISTRY_PORT"
  if ((use_consul)); then
    set -m
    consul agent -dev -log-level=warn -bind=127.0.0.1 -client=127.0.0.1 \
      -http-port="$RUN_REGISTRY_PORT" -server-port=$((RUN_REGISTRY_PORT + 1)) \
      -serf-lan-port=$((RUN_REGISTRY_PORT + 2)) -serf-wan-port=$((RUN_REGISTRY_PORT + 3)) \
      -dns-port=-1 -grpc-port=-1 -grpc-tls-port=-1 </dev/null &
    set +m
    banner="registry: consul agent -dev from PATH (in memory) on $addr; for another agent, set CONSUL_HTTP_ADDR"
  else
    # It logs every request: to a file, which goes when the script stops.
    logdir=$(mktemp -d "${TMPDIR:-/tmp}/make-run.XXXXXX")
    registry_log="$logdir/registry.log"
    set -m
    "$BIN/python" -m registry --host 127.0.0.1 --port "$RUN_REGISTRY_PORT" </dev/null \
      >"$registry_log" 2>&1 &
    set +m
    banner="registry: bundled (in-memory, dev only) on $addr; for a real Consul, set CONSUL_HTTP_ADDR or put consul on PATH"
  fi
  registry_pid=$!
  if ! answer "$READY_TIMEOUT" "$registry_pid" "$addr/v1/status/leader"; then
    [[ -z ${registry_log:-} ]] || tail -n 20 "$registry_log" >&2
    exit 1
  fi
fi
export CONSUL_HTTP_ADDR=$addr
echo "$banner"

# --- services and gateway -------------------------------------------------------------------
for i in "${!services[@]}"; do
  name=${services[$i]}
  launch "$name" env SERVICE_NAME="$name" SERVICE_PORT=$((RUN_SERVICE_PORT_BASE + i)) \
    SERVICE_ADDRESS=127.0.0.1 SERVICE_BIND=127.0.0.1 \
    "$BIN/gunicorn" -c "$(service_config "$name")"
done
launch gateway env GATEWAY_PORT="$GATEWAY_PORT" GATEWAY_BIND=127.0.0.1 \
  GATEWAY_ADMIN_PORT="$GATEWAY_ADMIN_PORT" "$BIN/gunicorn" -c gateway/gunicorn.conf.py

# Ready: every instance answers, a passing instance of every service is in the registry (so
# the gateway routes to it), and the gateway answers.
urls=()
for i in "${!services[@]}"; do
  urls+=("http://127.0.0.1:$((RUN_SERVICE_PORT_BASE + i))/health")
  urls+=("$addr/v1/health/service/${services[$i]}?passing=1")
done
urls+=("http://127.0.0.1:$GATEWAY_ADMIN_PORT/_gateway/health")
pid_list=$(IFS=,; echo "${pids[*]}")
answer "$READY_TIMEOUT" "$pid_list" "${urls[@]}" || say "carrying on; the logs above say what is missing"

echo "$banner"
[[ -z ${registry_log:-} ]] || printf '%-9s %s\n' registry "log in $registry_log"
for i in "${!services[@]}"; do
  printf '%-9s http://127.0.0.1:%d\n' "${services[$i]}" $((RUN_SERVICE_PORT_BASE + i))
done
printf '%-9s http://127.0.0.1:%d   try: curl '\''localhost:%d/quote/quote?sku=apple&qty=2'\''\n' \
  gateway "$GATEWAY_PORT" "$GATEWAY_PORT"
printf '%-9s http://127.0.0.1:%d/_gateway/routes\n' admin "$GATEWAY_ADMIN_PORT"
echo "Ctrl-C stops everything."

# --- run until Ctrl-C, or until a component exits on its own --------------------------------
while :; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      status=0
      wait "${pids[$i]}" || status=$?
      say "${names[$i]} (pid ${pids[$i]}) exited with status $status; stopping the rest"
      exit 1
    fi
  done
  if [[ -n $registry_pid ]] && ! kill -0 "$registry_pid" 2>/dev/null; then
    say "the registry (pid $registry_pid) exited; stopping the rest"
    [[ -z ${registry_log:-} ]] || tail -n 20 "$registry_log" >&2
    exit 1
  fi
  # `wait`, unlike a plain sleep, returns as soon as a signal with a trap arrives.
  sleep 1 &
  helper=$!
  wait "$helper" || true
  helper=''
done
