# Python test tools in .venv: schemathesis (the admin API fuzz run) and kubernetes-validate
# (tests/e2e/chart.rs: the Helm chart's manifests against the Kubernetes schemas it ships).
# Sourced by scripts/install-test-deps.sh from the repo root; reinstalls only when
# tests/requirements.txt changed since the last install.
python_requirements=tests/requirements.txt
python_stamp=.venv/.test-requirements
if [ ! -x .venv/bin/python3 ]; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    log "installing python3-venv"
    apt_install python3-venv
  fi
  log "creating .venv"
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/schemathesis ] || [ ! -f "$python_stamp" ] || ! cmp -s "$python_requirements" "$python_stamp"; then
  log "pip install -r $python_requirements"
  .venv/bin/python3 -m pip install -q --disable-pip-version-check -r "$python_requirements"
  cp "$python_requirements" "$python_stamp"
fi
