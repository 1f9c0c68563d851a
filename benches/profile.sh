#!/usr/bin/env bash
# Profiles the broker (`ssobridge serve`, started by loginbench on core 0 with its upstream
# `ssobridge simulator` on core 1) under complete logins: where the broker's CPU time goes.
#
# usage: benches/profile.sh [SECONDS] [CONCURRENCY]     (default 15 s of samples, 16 logins in flight)
#        ALG=ES256 benches/profile.sh                   (the client's ID token algorithm; default RS256)
#        UPSTREAM=in-process benches/profile.sh          (profile `ssobridge demo` instead, simulator included)
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
upstream=${UPSTREAM:-simulator}
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

# loginbench starts the broker on core 0 and everything else on core 1; logins for longer than
# the recording (1 s of warm-up, what-is-kept, 2 s to settle, then perf).
"$bin/loginbench" --upstream "$upstream" --concurrency "$concurrency" --alg "$alg" --in-flight 0 \
  --no-token-phase --duration-secs $((seconds + 12)) >"$out/loginbench.log" 2>&1 &
bench=$!
trap 'kill "$bench" 2>/dev/null || true' EXIT
server=
for _ in $(seq 100); do
  server=$(sed -n 's/^  broker pid: //p' "$out/loginbench.log")
  [ -n "$server" ] && grep -q '^complete logins' "$out/loginbench.log" && break
  sleep 0.2
done
[ -n "$server" ] || { echo "profile.sh: the broker did not start" >&2; cat "$out/loginbench.log" >&2; exit 1; }
sleep 3
taskset -c 1 perf record -e cpu-clock -F 400 --call-graph dwarf,65528 -p "$server" -o "$out/perf.data" \
  -- sleep "$seconds" 2>"$out/perf-record.log"
wait "$bench" || true
sed -n '/^complete logins/,/^$/p' "$out/loginbench.log"

perf script -i "$out/perf.data" --no-inline 2>/dev/null \
  | python3 benches/perf-summary.py --folded "$out/perf.folded" --top 25 | tee "$out/report.txt"
python3 benches/flamegraph.py "$out/perf.folded" --title "ssobridge serve, ${alg} ID tokens, ${concurrency} logins in flight" \
  >"$out/flamegraph.svg"
echo "report: $out/report.txt; folded stacks: $out/perf.folded; flame graph: $out/flamegraph.svg"
