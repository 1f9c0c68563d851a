# Sourced by scripts/install-test-deps.sh (from the repo root, set -euo pipefail, `log` defined).
# Installs Prism (npm @stoplight/prism-cli, pinned in adapters/auth0/mock/package-lock.json),
# the OpenAPI mock / validating proxy of the Auth0 adapter's spec tests. Idempotent: `npm ci`
# runs only when the lock file changed since the last install.

auth0_install_prism() {
  local dir=adapters/auth0/mock
  local stamp="$dir/node_modules/.installed-lock"
  if [ ! -f "$dir/package-lock.json" ]; then
    log "auth0: $dir/package-lock.json is missing"
    return 1
  fi
  if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp" \
    && [ -f "$dir/node_modules/@stoplight/prism-cli/dist/index.js" ]; then
    return 0
  fi
  log "npm ci in $dir (Prism)"
  # No install scripts: Prism needs none, and none may phone home.
  (cd "$dir" && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
}

auth0_install_prism
