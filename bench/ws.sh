#!/usr/bin/env bash
# WebSocket benchmark: sluiced's /connection/websocket (Centrifugo JSON protocol, JWT on) against
# nats-server's WebSocket listener (token auth) as the baseline, both driven by the same client,
# `sluice bench ws`, in the same run. Servers pinned to core 0, the client to core 1. Measures
#   (a) fan-out, 1 publisher -> SUBS subscribers, at each rate of RATES (0 = as fast as acknowledged)
#   (b) IDLE authenticated, subscribed connections: server RSS per connection, connect rate
#   (c) connect + authenticate + close rate with CONC parallel connections
# and prints every round and the medians.
#   bench/ws.sh [ROUNDS] [SECONDS]
# Environment: SUBS (1000), RATES ("1000 10000 0"), IDLE (10000; 0 skips), HOLD (5 s), CONC (50; 0 skips),
# NATS=0 to skip the baseline, BUILD (build directory, default build-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
SUBS=${SUBS:-1000}
RATES=${RATES:-"1000 10000 0"}
IDLE=${IDLE:-10000}
HOLD=${HOLD:-5}
CONC=${CONC:-50}
NATS=${NATS:-1}
BUILD=${BUILD:-build-bench}
PORT=18180     # sluiced
NPORT=18190    # nats-server WebSocket listener
NCPORT=18191   # nats-server's own protocol port (unused, but it must listen somewhere)

scripts/deps
if [ "$NATS" = 1 ] && ! command -v nats-server >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null
  else
    echo "nats-server is not installed (apt-get install nats-server): running without the baseline" >&2
    NATS=0
  fi
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target sluiced sluice_cli >/dev/null
BIN=$BUILD

# Every socket is a descriptor, on both sides: raise the limit for the servers and the client.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 100)) ]; then
  echo "open-file limit $(ulimit -n) is below $((IDLE + 100)); run as root or raise the hard limit" >&2
  exit 1
fi

export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
NATS_TOKEN=bench-nats-token-$$
TMP=$(mktemp -d /tmp/sluice-ws-bench.XXXXXX)
cat > "$TMP/nats.conf" <<EOF
listen: 127.0.0.1:$NCPORT
max_connections: 20000
authorization { token: "$NATS_TOKEN" }
websocket {
  listen: "127.0.0.1:$NPORT"
  no_tls: true
}
EOF

SPID=; NPID=
stop_servers() {
  for p in $SPID $NPID; do kill "$p" 2>/dev/null || true; done
  for p in $SPID $NPID; do wait "$p" 2>/dev/null || true; done
  SPID=; NPID=
}
cleanup() { stop_servers; rm -rf "$TMP"; }
trap cleanup EXIT

start_sluiced() {
  taskset -c 0 "$BIN/sluiced" --config bench/ws.conf --listen 127.0.0.1:$PORT 2>>"$TMP/sluiced.err" &
  SPID=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/healthz" >/dev/null && break; sleep 0.05; done
  # The endpoint must answer the upgrade with 101 (curl then waits for more; --max-time ends it).
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H 'Connection: Upgrade' \
    -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
    "http://127.0.0.1:$PORT/connection/websocket" || true)
  if [ "$code" != 101 ]; then
    echo "sluiced does not upgrade /connection/websocket (HTTP $code); see $TMP/sluiced.err" >&2
    cat "$TMP/sluiced.err" >&2
    exit 1
  fi
}
start_nats() {
  # One core for the Go runtime too (it reads the affinity mask; GOMAXPROCS makes it explicit).
  GOMAXPROCS=1 taskset -c 0 nats-server -c "$TMP/nats.conf" 2>>"$TMP/nats.err" &
  NPID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "localhost:$NPORT" && break; sleep 0.05; done
}

# The client: pinned to core 1; sluiced gets a minted token per connection (SLUICE_JWT_SECRET),
# nats-server the shared token.
tool_sluice() { taskset -c 1 "$BIN/sluice" bench ws --url "http://127.0.0.1:$PORT" --json "$@"; }
tool_nats() { taskset -c 1 "$BIN/sluice" bench ws --proto nats --token "$NATS_TOKEN" --url "http://127.0.0.1:$NPORT" --json "$@"; }

# jget KEY.PATH < JSON: one number of the report (0 when the run produced no report).
jget() {
  python3 -c 'import json,sys
try:
    v=json.load(sys.stdin)
    for k in sys.argv[1].split("."): v=v[k]
except Exception:
    v=0
print(round(v) if isinstance(v, float) and abs(v) >= 100 else round(v, 1) if isinstance(v, float) else v)' "$1"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
errors() { jget errors.total; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

servers=(sluice)
if [ "$NATS" = 1 ]; then servers+=(nats); fi

echo "== (a) fan-out: 1 publisher -> $SUBS subscribers, ${SECS}s per run (1 s warm-up), $ROUNDS rounds"
start_sluiced
if [ "$NATS" = 1 ]; then start_nats; fi
for rate in $RATES; do
  for s in "${servers[@]}"; do eval "D_$s=(); P50_$s=(); P99_$s=(); MISS_$s=()"; done
  for i in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
      "tool_$s" --scenario fanout --connections "$SUBS" --rate "$rate" --duration "$SECS" \
        >"$TMP/out.json" 2>>"$TMP/tool.err" || true
      d=$(jget deliveries.per_second <"$TMP/out.json")
      p50=$(jget latency_us.p50 <"$TMP/out.json")
      p99=$(jget latency_us.p99 <"$TMP/out.json")
      miss=$(jget deliveries.missing <"$TMP/out.json")
      pubs=$(jget publications.per_second <"$TMP/out.json")
      cpu=$(jget client_cpu_percent <"$TMP/out.json")
      echo "  rate $rate round $i $s: deliveries/s $d  pubs/s $pubs  p50 ${p50}us  p99 ${p99}us  missing $miss  errors $(errors <"$TMP/out.json")  client cpu ${cpu}%"
      eval "D_$s+=($d); P50_$s+=($p50); P99_$s+=($p99); MISS_$s+=($miss)"
    done
  done
  for s in "${servers[@]}"; do
    eval "dm=\$(printf '%s\n' \"\${D_$s[@]}\" | median); p50m=\$(printf '%s\n' \"\${P50_$s[@]}\" | median); p99m=\$(printf '%s\n' \"\${P99_$s[@]}\" | median); mm=\$(printf '%s\n' \"\${MISS_$s[@]}\" | median)"
    eval "DM_$s=$dm"
    echo "rate $rate $s median: deliveries/s $dm  p50 ${p50m}us  p99 ${p99m}us  missing $mm"
  done
  if [ "$NATS" = 1 ]; then
    echo "rate $rate sluiced/nats deliveries/s: $(awk -v a="$DM_sluice" -v b="$DM_nats" 'BEGIN{printf "%.2f", b ? a/b : 0}')"
  fi
done
stop_servers

# A scenario given 0 (IDLE=0, CONC=0) is skipped.
[ "$IDLE" -gt 0 ] && {
echo "== (b) $IDLE idle authenticated, subscribed connections held ${HOLD}s (fresh server each round)"
for s in "${servers[@]}"; do eval "B_$s=(); R_$s=()"; done
for i in $(seq "$ROUNDS"); do
  for s in "${servers[@]}"; do
    if [ "$s" = sluice ]; then start_sluiced; pid=$SPID; else start_nats; pid=$NPID; fi
    sleep 0.5
    before=$(rss "$pid")
    : >"$TMP/idle.err"
    "tool_$s" --scenario idle --connections "$IDLE" --duration "$HOLD" >"$TMP/out.json" 2>"$TMP/idle.err" &
    tpid=$!
    for _ in $(seq 600); do grep -q '^ready' "$TMP/idle.err" && break; sleep 0.1; done
    sleep 1   # let the server finish what the last connects started
    held=$(rss "$pid")
    wait "$tpid" || true
    ready=$(jget connections.ready <"$TMP/out.json")
    rate=$(jget connections.connects_per_second <"$TMP/out.json")
    per=$(( (held - before) * 1024 / (ready > 0 ? ready : 1) ))
    echo "  round $i $s: RSS before ${before} KiB, held ${held} KiB, $ready connections: $per bytes/connection; connect rate $rate/s; errors $(errors <"$TMP/out.json")"
    eval "B_$s+=($per); R_$s+=($rate)"
    stop_servers
  done
done
for s in "${servers[@]}"; do
  eval "bm=\$(printf '%s\n' \"\${B_$s[@]}\" | median); rm_=\$(printf '%s\n' \"\${R_$s[@]}\" | median)"
  echo "idle $s median: $bm bytes/connection (RSS), connect rate $rm_/s"
done
}

[ "$CONC" -gt 0 ] || exit 0
echo "== (c) connect + authenticate + close, concurrency $CONC, ${SECS}s per run"
start_sluiced
if [ "$NATS" = 1 ]; then start_nats; fi
for s in "${servers[@]}"; do eval "C_$s=()"; done
for i in $(seq "$ROUNDS"); do
  for s in "${servers[@]}"; do
    "tool_$s" --scenario connect --concurrency "$CONC" --duration "$SECS" >"$TMP/out.json" 2>>"$TMP/tool.err" || true
    c=$(jget connect.per_second <"$TMP/out.json")
    p99=$(jget connect.setup_us.p99 <"$TMP/out.json")
    echo "  round $i $s: $c connects/s  setup p99 ${p99}us  errors $(errors <"$TMP/out.json")"
    eval "C_$s+=($c)"
  done
done
for s in "${servers[@]}"; do
  eval "cm=\$(printf '%s\n' \"\${C_$s[@]}\" | median)"
  eval "CM_$s=$cm"
  echo "connect $s median: $cm connects/s"
done
if [ "$NATS" = 1 ]; then
  echo "connect sluiced/nats: $(awk -v a="$CM_sluice" -v b="$CM_nats" 'BEGIN{printf "%.2f", b ? a/b : 0}')"
fi
exit 0
