#!/usr/bin/env bash
# Bootstraps what gaffer needs on a Debian/Ubuntu machine with Python 3.11+ and git:
# uv, the virtual environment with the locked dependencies (uv.lock), and redis-server.
# As root, missing system packages are installed with apt; otherwise it stops with a one-line
# message saying what to install. Sourced by ./gaffer and scripts/test; safe to run twice.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.local/bin:$PATH"

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

APT_UPDATED=""
apt_install() {
  is_root || die "missing $*: install it with: sudo apt-get install -y $*"
  command -v apt-get >/dev/null || die "missing $* and no apt-get to install it"
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

python3 - <<'PY' || die "Python 3.11 or newer is required (python3 is $(python3 -V 2>&1))"
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
command -v git >/dev/null || apt_install git

if ! command -v uv >/dev/null; then
  say "installing uv"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  python3 -m pip install --user --quiet uv 2>/dev/null \
    || python3 -m pip install --user --quiet --break-system-packages uv \
    || die "could not install uv with pip"
  command -v uv >/dev/null || die "uv was installed but is not on PATH (~/.local/bin)"
fi

command -v redis-server >/dev/null || apt_install redis-server

cd "$ROOT"
uv sync --frozen --quiet
