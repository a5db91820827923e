#!/usr/bin/env bash
# Docker engine for CI on machines that reach no image registry (see ../shared/docker-in-ci.md).
#
# Usage: .ci/docker-engine.sh start|base-image|stop|status   (as root; each is idempotent)
#
#   start       Install docker.io, docker-compose and debootstrap if missing, then start dockerd
#               (vfs storage, no iptables, no IP forwarding, data root /var/lib/docker-ci) in the
#               background and wait until `docker info` answers. An engine that already answers
#               on the socket is reused.
#   base-image  Build local/python-base:bookworm (debootstrap minbase + python3, python3-venv,
#               ca-certificates, with the host's CA bundle) and `docker import` it, unless the
#               image is already present. The debootstrap rootfs is cached as a tarball under
#               /var/cache/docker-ci, so a rebuild on the same machine skips debootstrap.
#   stop        Stop the dockerd that `start` launched (found through its pid file), wait for it
#               to exit, and make sure none of its containerd, containerd-shim or docker-proxy
#               processes is left. An engine this script did not start is left alone.
#   status      Say whether an engine answers and whether it is the one `start` launched.
#
# Each step prints how long it took, e.g. "[docker-engine] base-image: 47s".
#
# Settings (environment; defaults in brackets):
#   DOCKER_CI_DATA_ROOT [/var/lib/docker-ci]   DOCKER_CI_EXEC_ROOT [/var/run/docker-ci]
#   DOCKER_CI_PID_FILE [/var/run/docker-ci.pid] DOCKER_CI_LOG_FILE [/var/log/docker-ci/dockerd.log]
#   DOCKER_CI_SOCKET [/var/run/docker.sock]    DOCKER_CI_CACHE_DIR [/var/cache/docker-ci]
#   DOCKER_CI_START_TIMEOUT [90]  DOCKER_CI_STOP_TIMEOUT [60]  (seconds)
#   DOCKER_CI_BASE_IMAGE [local/python-base:bookworm]  DEBIAN_MIRROR [http://deb.debian.org/debian]
#
# Builds must use `docker build --network host ...`: the engine gives containers no outbound
# NAT, so only host-network builds reach PyPI.
set -euo pipefail

readonly PROG=docker-engine
readonly DATA_ROOT="${DOCKER_CI_DATA_ROOT:-/var/lib/docker-ci}"
readonly EXEC_ROOT="${DOCKER_CI_EXEC_ROOT:-/var/run/docker-ci}"
readonly PID_FILE="${DOCKER_CI_PID_FILE:-/var/run/docker-ci.pid}"
readonly LOG_FILE="${DOCKER_CI_LOG_FILE:-/var/log/docker-ci/dockerd.log}"
readonly SOCKET="${DOCKER_CI_SOCKET:-/var/run/docker.sock}"
readonly CACHE_DIR="${DOCKER_CI_CACHE_DIR:-/var/cache/docker-ci}"
readonly START_TIMEOUT="${DOCKER_CI_START_TIMEOUT:-90}"
readonly STOP_TIMEOUT="${DOCKER_CI_STOP_TIMEOUT:-60}"
readonly BASE_IMAGE="${DOCKER_CI_BASE_IMAGE:-local/python-base:bookworm}"
readonly MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly SUITE=bookworm
readonly VARIANT=minbase
readonly INCLUDE=python3,python3-venv,ca-certificates
readonly HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
readonly PACKAGES=(docker.io docker-compose debootstrap)

# Every docker call in this script talks to the engine this script manages.
export DOCKER_HOST="unix://${SOCKET}"
# Debian's CLI matches the engine it ships with (API 1.41); prefer it over any other `docker`.
if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

log() { printf '[%s] %s\n' "$PROG" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

# --- step timing --------------------------------------------------------------------------
STEP=""
STEP_T0=0
step_begin() { STEP=$1; STEP_T0=$SECONDS; }
step_end() { log "${STEP}: $((SECONDS - STEP_T0))s"; STEP=""; }

# --- cleanup on exit ----------------------------------------------------------------------
CLEANUP_DIRS=()
CLEANUP_FILES=()
REMOVE_POLICY_RC_D=false
on_exit() {
  local rc=$?
  if [[ -n $STEP ]]; then
    printf '[%s] %s: FAILED after %ss (exit %s)\n' "$PROG" "$STEP" "$((SECONDS - STEP_T0))" "$rc" >&2
  fi
  if [[ $REMOVE_POLICY_RC_D == true ]]; then rm -f /usr/sbin/policy-rc.d; fi
  local d
  for d in "${CLEANUP_DIRS[@]}"; do remove_tree "$d"; done
  for d in "${CLEANUP_FILES[@]}"; do rm -f "$d"; done
  exit "$rc"
}
trap on_exit EXIT

# Remove a directory tree that debootstrap may have left mounts in (proc, sys, ...).
remove_tree() {
  local dir=$1 mnt
  [[ -d $dir ]] || return 0
  # Deepest mount points first.
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$dir" 'index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}

require_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

# --- engine helpers -----------------------------------------------------------------------
engine_answers() { timeout 10 "$DOCKER" info >/dev/null 2>&1; }

# Pid of the dockerd recorded in the pid file, if that process is alive and is a dockerd.
our_dockerd_pid() {
  local pid
  [[ -s $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == dockerd ]] || return 1
  printf '%s\n' "$pid"
}

dockerd_log_tail() {
  printf '[%s] --- last 40 lines of %s ---\n' "$PROG" "$LOG_FILE" >&2
  tail -n 40 "$LOG_FILE" >&2 2>/dev/null || true
  printf '[%s] --- end of log ---\n' "$PROG" >&2
}

# All descendants of a pid (children first level by level).
descendants() {
  local parent=$1 child
  for child in $(ps -o pid= --ppid "$parent" 2>/dev/null); do
    printf '%s\n' "$child"
    descendants "$child"
  done
}

# Processes that belong to our engine even after re-parenting: the managed containerd and
# the containerd shims both name our exec root's containerd in their command line; the
# containers' processes are the shims' children.
exec_root_processes() {
  local pid
  for pid in $(pgrep -f -- "^[^ ]*containerd[^ ]* .*${EXEC_ROOT}/containerd/" 2>/dev/null || true); do
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    printf '%s\n' "$pid"
    descendants "$pid"
  done
}

# The given pids that are still running (a zombie has already exited).
alive() {
  local pid state
  for pid in "$@"; do
    state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    if [[ -n $state && $state != Z* ]]; then printf '%s\n' "$pid"; fi
  done
}

# End the given processes: SIGTERM, a grace period, then SIGKILL; fail if any survives.
end_processes() {
  local left=() i
  mapfile -t left < <(alive "$@" | sort -nu)
  ((${#left[@]} == 0)) && return 0
  log "ending leftover engine processes: ${left[*]}"
  kill -TERM "${left[@]}" 2>/dev/null || true
  for i in $(seq 1 20); do
    sleep 0.25
    mapfile -t left < <(alive "${left[@]}")
    ((${#left[@]} == 0)) && return 0
    if ((i == 12)); then kill -KILL "${left[@]}" 2>/dev/null || true; fi
  done
  die "engine processes still running: ${left[*]}"
}

# Undo the mounts a dockerd that did not shut down cleanly leaves: its network namespaces
# under the exec root and, when it made one, the bind mount of its data root on itself.
unmount_leftovers() {
  local exec_root data_root mnt
  exec_root=$(readlink -f "$EXEC_ROOT")
  data_root=$(readlink -f "$DATA_ROOT")
  while read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$exec_root" 'index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r)
  # dockerd's bind mount of the data root on itself (mountinfo: root == mount point).
  while read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$data_root" '$4 == d && $5 == d { print $5 }' /proc/self/mountinfo)
  rm -f "${EXEC_ROOT}/unmount-on-shutdown"
}

# Close every file descriptor above stderr (in the subshell that becomes dockerd).
close_inherited_fds() {
  local fd
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec ${fd}>&-" 2>/dev/null || true; fi
  done
  return 0
}

ensure_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    log "packages present: ${PACKAGES[*]}"
    return 0
  fi
  log "installing: ${missing[*]}"
  # Keep the package's own init script from starting a default dockerd during the install.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    REMOVE_POLICY_RC_D=true
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
  if [[ $REMOVE_POLICY_RC_D == true ]]; then
    rm -f /usr/sbin/policy-rc.d
    REMOVE_POLICY_RC_D=false
  fi
  command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"
  DOCKER=/usr/bin/docker
}

# --- subcommands --------------------------------------------------------------------------
cmd_start() {
  require_root
  step_begin "start: packages"
  ensure_packages
  step_end

  step_begin "start: dockerd"
  local pid started=false
  if engine_answers; then
    if pid=$(our_dockerd_pid); then
      log "reusing the running dockerd (pid ${pid}, pid file ${PID_FILE})"
    else
      log "reusing an engine that already answers on ${SOCKET} (not started by this script;" \
        "'stop' will leave it alone)"
    fi
    log "engine: $("$DOCKER" info --format \
      'server {{.ServerVersion}}, storage {{.Driver}}, data root {{.DockerRootDir}}' 2>/dev/null)"
    step_end
    return 0
  fi
  if pid=$(our_dockerd_pid); then
    log "dockerd (pid ${pid}) is running but not answering yet; waiting for it"
  else
    rm -f "$PID_FILE"
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$(dirname "$LOG_FILE")"
    printf '\n===== %s: starting dockerd =====\n' "$(date -u +%FT%TZ)" >>"$LOG_FILE"
    # setsid: the engine outlives this script and the shell that ran it. No inherited file
    # descriptor either: a lock the caller holds (`flock /tmp/docker.lock ...`) would
    # otherwise stay held by the engine for as long as it runs.
    (close_inherited_fds; exec setsid dockerd \
      --host "unix://${SOCKET}" \
      --data-root "$DATA_ROOT" \
      --exec-root "$EXEC_ROOT" \
      --pidfile "$PID_FILE" \
      --storage-driver vfs \
      --iptables=false \
      --ip-forward=false) \
      </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    started=true
    log "launched dockerd (pid ${pid}); log ${LOG_FILE}"
  fi

  local deadline=$((SECONDS + START_TIMEOUT))
  until engine_answers; do
    if [[ -z $(alive "$pid") ]]; then
      dockerd_log_tail
      [[ $started == true ]] && unmount_leftovers
      die "dockerd (pid ${pid}) exited before it answered"
    fi
    if ((SECONDS >= deadline)); then
      dockerd_log_tail
      if [[ $started == true ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 40); do
          [[ -z $(alive "$pid") ]] && break
          if ((i == 30)); then kill -KILL "$pid" 2>/dev/null || true; fi
          sleep 0.25
        done
        unmount_leftovers
      fi
      die "dockerd (pid ${pid}) did not answer \`docker info\` within ${START_TIMEOUT}s"
    fi
    sleep 0.5
  done
  [[ $(cat "$PID_FILE" 2>/dev/null || true) == "$pid" ]] \
    || die "pid file ${PID_FILE} does not hold the dockerd pid ${pid}"
  log "dockerd answering (pid ${pid}, pid file ${PID_FILE}, data root ${DATA_ROOT}," \
    "server $("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  step_end
}

cmd_base_image() {
  require_root
  step_begin "base-image"
  engine_answers || die "no Docker engine answers on ${SOCKET}; run '$0 start' first"
  if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "${BASE_IMAGE} already present"
    step_end
    return 0
  fi
  local outer_step=$STEP outer_t0=$STEP_T0
  local key tarball work rootfs
  key=$(printf '%s|%s|%s|slim' "$SUITE" "$VARIANT" "$INCLUDE" | sha256sum | cut -c1-12)
  tarball="${CACHE_DIR}/rootfs-${SUITE}-${VARIANT}-${key}.tar"
  mkdir -p "$CACHE_DIR"
  work=$(mktemp -d /var/tmp/docker-ci-rootfs.XXXXXX)
  CLEANUP_DIRS+=("$work")
  rootfs="${work}/rootfs"
  mkdir "$rootfs"

  if [[ -s $tarball ]]; then
    step_begin "base-image: unpack cached rootfs"
    log "using cached rootfs ${tarball}"
    if tar -C "$rootfs" --numeric-owner -xpf "$tarball"; then
      step_end
    else
      log "cached rootfs unreadable; removing it and running debootstrap"
      rm -f "$tarball"
      remove_tree "$rootfs"
      mkdir "$rootfs"
      STEP=""
    fi
  fi
  if [[ ! -s $tarball ]]; then
    step_begin "base-image: debootstrap"
    log "debootstrap ${VARIANT} ${SUITE} (+${INCLUDE}) from ${MIRROR}"
    if ! debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" \
      >"${work}/debootstrap.log" 2>&1; then
      tail -n 30 "${work}/debootstrap.log" >&2
      tail -n 30 "${rootfs}/debootstrap/debootstrap.log" >&2 2>/dev/null || true
      die "debootstrap failed"
    fi
    # Slim it as Debian's slim images are (vfs stores a full copy of the rootfs per layer):
    # no downloaded .debs, package lists, manuals or translations; keep the copyright files.
    rm -rf "${rootfs}/var/cache/apt/archives/"*.deb "${rootfs}/var/lib/apt/lists/"* \
      "${rootfs}/usr/share/man/"* "${rootfs}/usr/share/info/"* "${rootfs}/usr/share/groff/"* \
      "${rootfs}/usr/share/lintian/"* "${rootfs}/usr/share/linda/"*
    find "${rootfs}/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
    find "${rootfs}/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "${rootfs}/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
      -exec rm -rf {} +
    CLEANUP_FILES+=("${tarball}.tmp.$$")
    tar -C "$rootfs" --numeric-owner -cf "${tarball}.tmp.$$" .
    mv -f "${tarball}.tmp.$$" "$tarball"
    log "cached rootfs as ${tarball} ($(du -h "$tarball" | cut -f1))"
    step_end
  fi

  step_begin "base-image: import"
  # Package downloads go through a TLS-intercepting proxy that only the host bundle trusts.
  cp "$HOST_CA_BUNDLE" "${rootfs}/etc/ssl/certs/ca-certificates.crt"
  tar -C "$rootfs" --numeric-owner -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$BASE_IMAGE" >/dev/null
  step_end

  remove_tree "$work"
  STEP=$outer_step
  STEP_T0=$outer_t0
  log "built ${BASE_IMAGE} ($("$DOCKER" image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"
  step_end
}

cmd_stop() {
  require_root
  step_begin "stop"
  local pid engine=()
  if pid=$(our_dockerd_pid); then
    # Note every process of the engine now, before re-parenting hides who belongs to whom:
    # dockerd's children (containerd, docker-proxy), the shims and the containers' processes.
    mapfile -t engine < <(descendants "$pid"; exec_root_processes)
    log "stopping dockerd (pid ${pid})"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while [[ -n $(alive "$pid") ]]; do
      if ((SECONDS >= deadline)); then
        log "dockerd still running after ${STOP_TIMEOUT}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
        break
      fi
      sleep 0.25
    done
  else
    log "no dockerd started by this script is running (pid file ${PID_FILE})"
  fi
  # Also sweep up what an engine that died earlier may have left, unless some other dockerd
  # (not started by this script) runs on the same exec root.
  local more=()
  if pgrep -f -- "--exec-root ${EXEC_ROOT}( |$)" >/dev/null; then
    log "another dockerd uses ${EXEC_ROOT}; leaving it and its processes alone"
    end_processes "${engine[@]}"
  else
    mapfile -t more < <(exec_root_processes)
    end_processes "${engine[@]}" "${more[@]}"
    unmount_leftovers
  fi
  rm -f "$PID_FILE"
  log "stopped; no engine process of ours is left running"
  step_end
}

cmd_status() {
  local pid
  if pid=$(our_dockerd_pid); then
    log "dockerd started by this script is running: pid ${pid} (pid file ${PID_FILE})"
  else
    log "no dockerd started by this script is running"
  fi
  if engine_answers; then
    log "an engine answers on ${SOCKET}"
    if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
      log "${BASE_IMAGE} is present"
    else
      log "${BASE_IMAGE} is missing"
    fi
  else
    log "no engine answers on ${SOCKET}"
    return 1
  fi
}

usage() {
  sed -n '2,/^set -euo pipefail/{/^set /d;s/^# \{0,1\}//;p}' "$0"
}

main() {
  local cmd=${1:-}
  case $cmd in
    start) cmd_start ;;
    base-image) cmd_base_image ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
