#!/usr/bin/env bash
# Two builds of wasimancer under the same load, alternating round by round:
# `tools/call add` in MCP sessions (../shared/bench/mcp-bench-sessions.sh,
# wrk), and the ratio A/B of their calls/s per round. For a change whose
# effect is smaller than the run-to-run noise of side-by-side.sh.
#
#   contrib/ab-binaries.sh A B [SECONDS] [ROUNDS] ["CONNECTIONS"]
#
# Defaults: 4 s, 3 rounds, "1 16". Build B from the commit before, e.g.
# `git stash; cargo build --release; cp target/release/wasimancer /tmp/before`.
# A_ARGS and B_ARGS add options to each side's `serve` (both may be the
# same binary): A_ARGS="--stateless --instances 1" B_ARGS=--stateless.
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1 b=$2 seconds=${3:-4} rounds=${4:-3} connections=${5:-"1 16"}
bench=../shared/bench
unset RUST_BACKTRACE
start() {
  # shellcheck disable=SC2086 # the extra options are words
  "$1" serve --headless --port "$2" --auth-token ab-token \
    --admin-token NO_AUTHENTICATION --no-control-socket $3 >/dev/null 2>&1 &
  echo $!
}
pid_a=$(start "$a" 38701 "${A_ARGS:-}")
pid_b=$(start "$b" 38702 "${B_ARGS:-}")
trap 'kill $pid_a $pid_b 2>/dev/null' EXIT
for port in 38701 38702; do
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.1; done
done
# calls/s and p50 µs of one round at $2 connections on port $1.
round() {
  local sessions=$(( $2 < 2 ? 1 : 2 ))
  MCP_TOKEN=ab-token MCP_TOOL=add MCP_ARGS='{"left":2,"right":3}' \
    MCP_NSESSIONS=$sessions MCP_THREADS=$sessions \
    "$bench/mcp-bench-sessions.sh" "http://127.0.0.1:$1/mcp" "$seconds" "$2" 2>/dev/null \
    | sed -n 's/^conns=.*p50_us=\([0-9]*\).*rps=\([0-9]*\) failed=\([0-9]*\).*/\2 \1 \3/p'
}
for r in $(seq "$rounds"); do
  for c in $connections; do
    read -r rps_a p50_a failed_a < <(round 38701 "$c")
    read -r rps_b p50_b failed_b < <(round 38702 "$c")
    echo "round $r, $c connections: A ${rps_a}/s p50 ${p50_a} us ($failed_a failed)," \
      "B ${rps_b}/s p50 ${p50_b} us ($failed_b failed), A/B" \
      "$(awk -v a="$rps_a" -v b="$rps_b" 'BEGIN {printf "%.3f", a / b}')"
  done
done
