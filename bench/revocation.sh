#!/usr/bin/env bash
# Live revocation latency: from the answer to POST /revoke to the WebSocket close 3503 of the
# revoked token's open session (and from the request, for reference), one revocation at a time,
# RUNS revocations per setup, medians (and p90, max) side by side:
#   one node, memory store      revoke and socket on the same sluiced, --revocation memory
#   one node, Redis store       the same with --revocation redis://
#   two nodes sharing Redis     socket on node B, POST /revoke to node A (Redis pub/sub between)
# Servers and redis-server pinned to core 0, the client (bench/revocation_latency.py) to core 1.
# Exits non-zero, saying why, when a server does not start or any revocation cannot be measured.
#   bench/revocation.sh [RUNS]
# Environment: BUILD (build directory, default build-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${1:-50}
BUILD=${BUILD:-build-bench}
PORT_A=18280
PORT_B=18281
RPORT=18379
scripts/deps
build_release "$BUILD"
BIN=$BUILD
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42

TMP=$(mktemp -d /tmp/sluice-revocation-bench.XXXXXX)
PIDS=()
cleanup() { stop_pids; rm -rf "$TMP"; }
trap cleanup EXIT

printf 'broker = true\n' >"$TMP/node.conf"

# node PORT REVOCATION: starts sluiced and waits until it answers.
node() {
  taskset -c 0 "$BIN/sluiced" --engine memory --config "$TMP/node.conf" --listen "127.0.0.1:$1" --revocation "$2" \
    2>>"$TMP/sluiced-$1.err" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$1/healthz" "sluiced on port $1 (see $TMP/sluiced-$1.err)"
}

redis() {
  taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$TMP" --loglevel warning >>"$TMP/redis.log" 2>&1 &
  PIDS+=($!)
  local _
  for _ in $(seq 300); do
    [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  die "redis-server did not come up on port $RPORT (see $TMP/redis.log)"
}

# tokens PREFIX: RUNS fresh tokens, one per run, as "TOKEN_ID TOKEN" lines in $TMP/tokens.
tokens() {
  : >"$TMP/tokens"
  local i t
  for i in $(seq "$RUNS"); do
    t=$("$BIN/sluice" token create --sub "bench-$1-$i" --role read --ttl 1h --jti "$1-$i") ||
      die "cannot mint a token"
    printf '%s %s\n' "$1-$i" "$t" >>"$TMP/tokens"
  done
}

ADMIN=$("$BIN/sluice" token create --sub bench-ops --role admin --ttl 2h) || die "cannot mint the admin token"

# measure LABEL WS_PORT REVOKE_PORT: RUNS revocations; prints the row and keeps the report.
measure() {
  local label=$1 out
  tokens "$(tr -c 'a-z0-9\n' - <<<"$label" | tr -d '\n')"
  out=$(taskset -c 1 /usr/bin/python3 bench/revocation_latency.py \
    "ws://127.0.0.1:$2/connection/websocket" "http://127.0.0.1:$3" "$ADMIN" "$TMP/tokens") ||
    die "$label: the revocations could not be measured (above)"
  printf '%s\n' "$out" >"$TMP/$label.json"
  /usr/bin/python3 -c 'import json, sys
r = json.load(open(sys.argv[2]))
a, q = r["answer_to_close_ms"], r["request_to_close_ms"]
print("%-26s runs %4d  answer->close ms: median %8.3f  p90 %8.3f  max %8.3f   request->close ms: median %8.3f"
      % (sys.argv[1], r["runs"], a["median"], a["p90"], a["max"], q["median"]))' "$label" "$TMP/$label.json"
}

echo "== live revocation latency: POST /revoke answered -> WebSocket close 3503, $RUNS revocations each"
node "$PORT_A" memory
measure "one node, memory store" "$PORT_A" "$PORT_A"
stop_pids

redis
node "$PORT_A" "redis://127.0.0.1:$RPORT"
measure "one node, Redis store" "$PORT_A" "$PORT_A"
node "$PORT_B" "redis://127.0.0.1:$RPORT"
measure "two nodes sharing Redis" "$PORT_B" "$PORT_A"
stop_pids
