# The Firebase Auth emulator for the firebase adapter's tests: npm firebase-tools, pinned in
# adapters/firebase/emulator/package-lock.json. Sourced by scripts/install-test-deps.sh from the
# repository root (set -euo pipefail, `log` defined). The auth emulator is plain Node: no Java.
#
# Lean install: no dev dependencies, and no optional ones (re2, a native regex module for
# Hosting rewrites, would otherwise be compiled from source: minutes, for nothing we use).
# npm ci runs only when the lock file changed since the last install (stamp in node_modules).

firebase_emulator_deps() {
  local dir=adapters/firebase/emulator
  local stamp="$dir/node_modules/.installed-lock"
  local node_major
  node_major="$(node --version | sed -E 's/^v([0-9]+).*/\1/')"
  if [ "$node_major" -lt 20 ]; then
    log "firebase-tools needs Node.js 20 or later, found $(node --version)"
    return 1
  fi
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    log "npm ci in $dir (firebase-tools)"
    (cd "$dir" && npm ci --omit=dev --omit=optional --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
  fi
}

firebase_emulator_deps
unset -f firebase_emulator_deps
