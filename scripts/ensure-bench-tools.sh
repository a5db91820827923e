#!/usr/bin/env bash
# `make bench` needs wrk (the load generator) and nginx (the baseline proxy): install Debian's
# packages when either is missing. Installing needs root; nothing is done when both are there.
set -euo pipefail

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "make bench needs ${missing[*]}: run 'apt-get install -y ${missing[*]}' as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; a failed install gets one update and a retry.
apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
}
