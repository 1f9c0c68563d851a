# Debian's nginx, for tests/e2e/topology.rs: the reverse proxy of deploy/compose.yaml, run there as a
# plain process with a generated configuration, never as the system service.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  log "installing nginx"
  apt_install nginx
fi
