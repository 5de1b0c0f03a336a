#!/usr/bin/env bash
# Restart benchmark: how long sluiced takes to serve again with N (default 1,000,000) queued
# 200-byte messages in its data directory. Fills a queue over HTTP (wrk PUT, durability none for
# the fill only), stops the server cleanly, then starts it ROUNDS times on the same data directory
# (default durability sync) and measures, per start, the time from exec to the first answered
# claim (GET /channels/work?exclusive=true, which needs every message loaded), and the RSS then.
# Prints each round and the median. Server on core 0, wrk on core 1.
#   bench/restart.sh [ROUNDS] [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-3}
N=${2:-1000000}
CONNS=${CONNS:-50}
[ "${SLUICE_SKIP_DEPS:-}" = 1 ] || scripts/deps --bench
build_release build-bench
BIN=build-bench
PORT=18090
DATA=$(mktemp -d /tmp/sluice-restart-XXXXXX)
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
TOKEN=$($BIN/sluice token create --sub bench --role admin --ttl 2h)
export SLUICE_BENCH_TOKEN=$TOKEN
PIDS=()
cleanup() { stop_pids; rm -rf "$DATA"; }
trap cleanup EXIT

depth() {
  curl -sf "localhost:$PORT/channels/work/info" -H "Authorization: Bearer $TOKEN" |
    grep -o '"depth":[0-9]*' | cut -d: -f2
}

taskset -c 0 $BIN/sluiced --listen 127.0.0.1:$PORT --data-dir "$DATA" --durability none \
  2>/tmp/sluice-restart.err & PIDS+=($!)
wait_http "http://127.0.0.1:$PORT/healthz" "sluiced (see /tmp/sluice-restart.err)"
curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"work","kind":"queue"}' >/dev/null || die "cannot create the queue 'work'"
sed 's#/channels/bench#/channels/work#' bench/put.lua > /tmp/sluice-put-work.lua
while :; do
  d=$(depth) || die "cannot read the depth of 'work'"
  [ "$d" -ge "$N" ] && break
  SECS=5 wrk_rate "filling ($d of $N)" -s /tmp/sluice-put-work.lua "http://127.0.0.1:$PORT" >/dev/null
done
echo "queued: $(depth) messages; data directory: $(du -sh "$DATA" | cut -f1)"
stop_pids

declare -a T
for i in $(seq "$ROUNDS"); do
  t0=$(date +%s.%N)
  taskset -c 0 $BIN/sluiced --listen 127.0.0.1:$PORT --data-dir "$DATA" 2>/tmp/sluice-restart.err &
  PIDS+=($!)
  ok=
  for _ in $(seq 6000); do
    if curl -sf -o /dev/null --max-time 1 "localhost:$PORT/channels/work?exclusive=true&limit=1" \
      -H "Authorization: Bearer $TOKEN"; then ok=1; break; fi
    sleep 0.005
  done
  t1=$(date +%s.%N)
  [ -n "$ok" ] || die "round $i: sluiced did not serve within 30 s (see /tmp/sluice-restart.err)"
  rss=$(awk '/VmRSS/ {print $2}' /proc/"${PIDS[0]}"/status)
  t=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  echo "  round $i: first claim answered after $t s; RSS $((rss / 1024)) MiB"
  T+=("$t")
  stop_pids
done
echo "restart with $N queued messages: median $(printf '%s\n' "${T[@]}" | median) s to the first claim"
