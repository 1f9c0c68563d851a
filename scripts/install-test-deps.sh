#!/usr/bin/env bash
# Installs everything the tests need, idempotently, and quickly when it is already there:
# redis-server, redis-cli and openssl (Debian), the Node test peers (tests/peers, npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[deps] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; exit 1; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Debian packages, by the command each provides.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# Node peers: reinstall only when package-lock.json changed since the last install.
peers=tests/peers
stamp="$peers/node_modules/.installed-lock"
if [ -f "$peers/package-lock.json" ] && { [ ! -f "$stamp" ] || ! cmp -s "$peers/package-lock.json" "$stamp"; }; then
  log "npm ci in $peers"
  (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$peers/package-lock.json" "$stamp"
fi

# Each peer that needs more (moto, the Firebase emulator, Chromium) brings its own script.
for script in scripts/deps/*.sh; do
  [ -e "$script" ] || continue
  # shellcheck source=/dev/null
  . "$script"
done

log "ok: redis-server $(redis-server --version | awk '{print $3}'), node $(node --version)"
