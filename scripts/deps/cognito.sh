# moto's server (PyPI) in .venv, for adapters/cognito/tests: the Cognito user pool, IAM and STS
# emulator the Cognito adapter is tested against.
# Sourced by scripts/install-test-deps.sh from the repo root (set -euo pipefail; log and
# apt_install defined there). Reinstalls only when adapters/cognito/requirements.txt changed since
# the last install (a copy of it is kept in .venv as the stamp).
cognito_requirements=adapters/cognito/requirements.txt
cognito_stamp=.venv/.cognito-requirements
if [ ! -x .venv/bin/python3 ]; then
  if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    log "installing python3-venv"
    apt_install python3 python3-venv
  fi
  log "creating .venv"
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/moto_server ] || [ ! -f "$cognito_stamp" ] || ! cmp -s "$cognito_requirements" "$cognito_stamp"; then
  log "pip install -r $cognito_requirements"
  .venv/bin/python3 -m pip install -q --disable-pip-version-check -r "$cognito_requirements"
  cp "$cognito_requirements" "$cognito_stamp"
fi
