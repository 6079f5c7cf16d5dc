#!/usr/bin/env bash
# What an abandoned MCP session costs: start a headless server, read its
# RSS, open N sessions that each make one call and are never used again
# (initialize, initialized, one `tools/call add`, as a client that goes
# away does), read the RSS again and print the difference per session;
# with the default --session-hibernate-after, wait until they are all
# asleep and print it again; then wait for the idle timeout (60 s here) to
# close them all and print the RSS against the idle one before. First with
# every session kept awake (--session-hibernate-after never), then as
# served by default, then with --max-sessions below N, to show the cap
# bounds it.
#
#   contrib/session-memory.sh [BINARY] [N]
#
# BINARY defaults to target/release/wasimancer (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/wasimancer}
count=${2:-1000}
port=38631
token=memory-token

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

open_sessions() {
  local n=$1 opened=0
  for _ in $(seq "$n"); do
    id=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/mcp" \
      -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"idle","version":"1"}}}' \
      | awk 'tolower($1)=="mcp-session-id:" {print $2}' | tr -d '\r')
    [ -n "$id" ] || continue
    curl -s -o /dev/null "http://127.0.0.1:$port/mcp" \
      -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' -H "mcp-session-id: $id" \
      -H 'mcp-protocol-version: 2025-11-25' \
      -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    curl -s -o /dev/null "http://127.0.0.1:$port/mcp" \
      -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' -H "mcp-session-id: $id" \
      -H 'mcp-protocol-version: 2025-11-25' \
      -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"left":1,"right":2}}}'
    opened=$((opened + 1))
  done
  echo "$opened"
}

metric() {
  curl -s "http://127.0.0.1:$port/metrics" | awk -v name="$1" '$1==name {print $2}'
}

open_now() { metric wasimancer_sessions; }

measure() {
  local max=$1 hibernate=$2
  "$binary" serve --headless --port "$port" --auth-token "$token" \
    --admin-token NO_AUTHENTICATION --no-control-socket --max-sessions "$max" \
    --session-idle-timeout 60s --session-hibernate-after "$hibernate" \
    2>/dev/null &
  local pid=$!
  trap 'kill $pid 2>/dev/null' EXIT
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.1; done
  # Warm up the allocator and the HTTP stack with a few sessions first.
  open_sessions 20 >/dev/null
  local before after opened
  before=$(rss_kib "$pid")
  opened=$(open_sessions "$count")
  after=$(rss_kib "$pid")
  local sessions
  sessions=$(open_now)
  echo "--max-sessions $max --session-hibernate-after $hibernate:" \
    "$opened of $count sessions opened, $sessions open;" \
    "RSS ${before} KiB -> ${after} KiB;" \
    "$(( (after - before) * 1024 / (opened > 0 ? opened : 1) )) bytes per session opened"
  if [ "$hibernate" != never ]; then
    # All asleep, then the allocator's few 1 s decay periods.
    until [ "$(metric wasimancer_sessions_asleep)" = "$sessions" ]; do sleep 1; done
    sleep 5
    local asleep
    asleep=$(rss_kib "$pid")
    echo "  all asleep: RSS ${asleep} KiB;" \
      "$(( (asleep - before) * 1024 / (opened > 0 ? opened : 1) )) bytes per session opened"
  fi
  # The idle timeout closes them; then give the allocator's background
  # thread a few of its 1 s decay periods to hand the pages back.
  until [ "$(open_now)" = 0 ]; do sleep 1; done
  sleep 5
  local expired
  expired=$(rss_kib "$pid")
  echo "  all expired: RSS ${expired} KiB, $(( (expired - before) * 100 / before ))% above idle (${before} KiB)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  trap - EXIT
}

measure 100000 never
measure 100000 10s
measure $((count / 4)) 10s
