#!/usr/bin/env bash
# Profiles `ssobridge demo` under complete logins: where the server's CPU time goes.
#
# usage: benches/profile.sh [SECONDS] [CONCURRENCY]     (default 15 s of samples, 16 logins in flight)
#        ALG=ES256 benches/profile.sh                   (the demo client's ID token algorithm; default RS256)
#
# Needs perf (Debian: apt-get install -y linux-perf) and the release binaries:
#   cargo build --release --bin ssobridge --bin loginbench
# (or set TARGET_DIR to another cargo target directory). Virtual machines often have no
# hardware counters: the software clock event (cpu-clock) is used, with DWARF call graphs,
# since release builds have no frame pointers. Writes the report and the folded stacks (the
# input of any flame graph tool) and a flame graph SVG (benches/flamegraph.py) to $OUT
# (default target/profile).
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${1:-15}
concurrency=${2:-16}
alg=${ALG:-RS256}
target_dir=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
bin="$target_dir/release"
out=${OUT:-target/profile}
mkdir -p "$out"

for tool in perf taskset python3; do
  command -v "$tool" >/dev/null || { echo "profile.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$bin/ssobridge" ] && [ -x "$bin/loginbench" ] || {
  echo "profile.sh: build first: cargo build --release --bin ssobridge --bin loginbench" >&2
  exit 1
}

# The server on core 0, everything else on core 1 (as loginbench --spawn does).
SSOBRIDGE_LOG=warn \
  SSOBRIDGE_RATE_LIMITS__PER_IP_PER_MINUTE=1000000000 \
  SSOBRIDGE_RATE_LIMITS__PER_CLIENT_PER_MINUTE=1000000000 \
  SSOBRIDGE_CLIENTS__DEMO__ID_TOKEN_SIGNED_RESPONSE_ALG="$alg" \
  taskset -c 0 "$bin/ssobridge" demo --port 0 >"$out/demo.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  url=$(sed -n 's/^ssobridge demo listening on //p' "$out/demo.log")
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { echo "profile.sh: the demo did not start" >&2; cat "$out/demo.log" >&2; exit 1; }

# Logins for longer than the recording: 1 s of warm-up, 2 s to settle, then perf.
taskset -c 1 "$bin/loginbench" --url "$url" --server-pid "$server" --concurrency "$concurrency" --alg "$alg" \
  --duration-secs $((seconds + 5)) >"$out/loginbench.log" 2>&1 &
bench=$!
sleep 3
taskset -c 1 perf record -e cpu-clock -F 400 --call-graph dwarf,65528 -p "$server" -o "$out/perf.data" \
  -- sleep "$seconds" 2>"$out/perf-record.log"
wait "$bench" || true
sed -n '/^complete logins/,/^$/p' "$out/loginbench.log"

perf script -i "$out/perf.data" --no-inline 2>/dev/null \
  | python3 benches/perf-summary.py --folded "$out/perf.folded" --top 25 | tee "$out/report.txt"
python3 benches/flamegraph.py "$out/perf.folded" --title "ssobridge demo, ${alg} ID tokens, ${concurrency} logins in flight" \
  >"$out/flamegraph.svg"
echo "report: $out/report.txt; folded stacks: $out/perf.folded; flame graph: $out/flamegraph.svg"
