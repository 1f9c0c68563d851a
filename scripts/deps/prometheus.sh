# Debian's prometheus package, for its promtool: tests/e2e/dashboards.rs checks
# deploy/prometheus/alerts.yaml (`promtool check rules`), runs its unit tests
# (`promtool test rules deploy/prometheus/alerts.test.yaml`) and checks the dashboard's queries.
# The package also ships the Prometheus server, and its postinst starts it (invoke-rc.d without
# systemd, deb-systemd-invoke with it), which here would leave a server running on :9090, the
# broker's default operations port. Both ask /usr/sbin/policy-rc.d first: for the install, one
# that answers 101 ("forbidden") stands in for whatever is there, which is put back afterwards.
# The unit is also disabled, so that a machine with an init system does not start it at boot.
if ! command -v promtool >/dev/null; then
  (
    log "installing prometheus (for promtool; its server is not started)"
    policy=/usr/sbin/policy-rc.d
    saved=$(mktemp)
    had_policy=0
    if [ -e "$policy" ]; then
      as_root cp -p "$policy" "$saved"
      had_policy=1
    fi
    restore_policy() {
      if [ "$had_policy" -eq 1 ]; then as_root cp -p "$saved" "$policy"; else as_root rm -f "$policy"; fi
      rm -f "$saved"
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# scripts/deps/prometheus.sh: no service starts while it installs prometheus\nexit 101\n' |
      as_root tee "$policy" >/dev/null
    as_root chmod 0755 "$policy"
    apt_install prometheus
    as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then as_root systemctl disable --quiet prometheus.service || true; fi
    command -v promtool >/dev/null || { log "prometheus is installed but promtool is not on PATH"; exit 1; }
  )
fi
