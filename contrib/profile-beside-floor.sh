#!/usr/bin/env bash
# Where a tool call's CPU goes, in wasimancer and in the floor
# (../shared/bench/floor: rmcp + extism and nothing else), under the same wrk
# load: each server in turn gets CONNS connections of `tools/call add` for 8 s
# while `perf record` samples it for 4 s (999 Hz, DWARF call stacks). Then
# contrib/perf-where.py prints the CPU µs per call by what the thread was
# doing, and the functions that cost most themselves.
#
#   contrib/profile-beside-floor.sh WASIMANCER FLOOR [CONNS=16] [sessions|stateless]
#
# Needs perf (Debian: linux-perf), wrk and the floor's binary (side-by-side.sh
# in ../shared/bench says how to build it). Both servers run with
# RUST_BACKTRACE unset: with it set, extism's per-call fuel check captures a
# backtrace in the floor.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 floor=$2 conns=${3:-16} mode=${4:-sessions}
bench=../shared/bench
out=${PROFILE_DIR:-/tmp}
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
up() { for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1/health" && return 0; sleep 0.1; done; echo "no /health on $1" >&2; return 1; }
flag=() floor_env=()
if [ "$mode" = stateless ]; then flag=(--stateless); floor_env=(FLOOR_STATELESS=1 FLOOR_JSON=1); fi
pids=(); trap 'kill "${pids[@]}" 2>/dev/null' EXIT
p1=$(port)
env -u RUST_BACKTRACE HTTP_PORT="$p1" WASIMANCER_AUTHENTICATION_TOKEN=tok "$bin" serve --headless "${flag[@]}" >"$out/profile-wasimancer.log" 2>&1 &
pids+=($!)
p2=$(port)
env -u RUST_BACKTRACE FLOOR_PORT="$p2" FLOOR_TIMEOUT_MS=30000 "${floor_env[@]}" \
  FLOOR_WASM=plugins/addition/addition.wasm FLOOR_FN=add "$floor" >"$out/profile-floor.log" 2>&1 &
pids+=($!)
up "$p1"; up "$p2"
for side in "wasimancer $p1 tok ${pids[0]}" "floor $p2 - ${pids[1]}"; do
  read -r name p token pid <<<"$side"
  [ "$token" = - ] && token=
  MCP_TOKEN=$token MCP_TOOL=add MCP_ARGS='{"left":2,"right":3}' MCP_NSESSIONS=2 MCP_THREADS=2 \
    "$bench/mcp-bench-sessions.sh" "http://127.0.0.1:$p/mcp" 8 "$conns" >"$out/profile-load-$name.log" 2>&1 &
  load=$!
  sleep 2
  perf record -F 999 --call-graph dwarf,16384 -p "$pid" -o "$out/perf-$mode-$name.data" -- sleep 4 >/dev/null 2>&1
  wait $load
  rps=$(sed -n 's/.*rps=\([0-9]*\).*/\1/p' "$out/profile-load-$name.log")
  echo "== $name ($mode, $conns connections): $rps calls/s under perf"
  contrib/perf-where.py "$out/perf-$mode-$name.data" "$rps"
done
