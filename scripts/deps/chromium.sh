# Debian's Chromium, for the hosted-page browser tests (driven by playwright-core in tests/peers).
if ! command -v chromium >/dev/null; then
  log "installing chromium"
  apt_install chromium
fi
