#!/usr/bin/env bash
# Installs the Debian 12 packages that building, running and testing wsgate need.
# This is the one place that knows the package list. Quiet no-op when all are present.
#
#   deploy/install-deps.sh          check, and install what is missing (root + apt-get)
#   deploy/install-deps.sh --list   print the package list and exit
#
# WSGATE_SKIP_DEPS=1 skips the check (for other distributions, where you install the
# equivalents yourself).
#
# Debian's redis-server package starts a system service on port 6379 where an init system
# runs. Nothing in this repository uses 6379 or that service: the scripts and tests start
# their own redis-server on other ports, so it can stay running or be stopped, as you like.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libhiredis-dev libevent-dev libjansson-dev libssl-dev check
  redis-server redis-tools python3 python3-yaml python3-jwt python3-cryptography valgrind curl strace clang nginx
  chromium
)
# Node.js 20+ with npm runs the JavaScript SDK's tests (tests/run-all.sh js). Debian 12's
# nodejs is 18, which has no WebSocket, so it is not in the list: the machine's own Node.js
# is used, and the js stage says so when it is missing or too old.

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi
if [ "${WSGATE_SKIP_DEPS:-0}" = "1" ]; then
  exit 0
fi

say() { printf 'install-deps: %s\n' "$*" >&2; }

if ! command -v dpkg-query >/dev/null 2>&1; then
  say "this is not a Debian/Ubuntu system; install the equivalents of these packages yourself:"
  say "  ${PACKAGES[*]}"
  say "then run again with WSGATE_SKIP_DEPS=1"
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [ "$status" != "installed" ]; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

install_args=(install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
  say "missing packages: ${missing[*]}"
  say "install them with:"
  printf '  sudo apt-get update && sudo apt-get %s\n' "${install_args[*]}" >&2
  say "or run this script as root (sudo $0)"
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "missing packages: ${missing[*]}, and apt-get is not available to install them"
  exit 1
fi

say "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get -q "${install_args[@]}"
