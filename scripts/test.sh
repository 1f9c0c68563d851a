#!/usr/bin/env bash
# The test command: installs every test dependency, checks formatting and lints, then runs
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --all-targets "$@"
