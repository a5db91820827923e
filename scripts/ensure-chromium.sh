#!/usr/bin/env bash
# The routing page's browser test needs a headless Chromium and its WebDriver: install Debian's
# `chromium` and `chromium-driver` when either is missing (`make test` and `make integration` run
# this script first, so a fresh machine needs nothing done by hand). Installing needs root; nothing is done when both are there.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "the routing page test needs ${missing[*]}: run 'apt-get install -y ${missing[*]}' as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; a failed install gets one update and a retry.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
