#!/usr/bin/env bash
# WebSocket benchmark: sluiced's /connection/websocket (Centrifugo JSON protocol, JWT on) against
# nats-server's WebSocket listener (token auth) as the baseline, both driven by the same client,
# `sluice bench ws`, in the same run. Servers pinned to core 0, the client to core 1. Measures
#   (a) fan-out, 1 publisher -> SUBS subscribers, at each rate of RATES (0 = as fast as acknowledged)
#   (b) IDLE authenticated, subscribed connections: server RSS per connection, connect rate
#   (c) connect + authenticate + close rate with CONC parallel connections
# and prints every round and the medians. It exits non-zero, saying why, when something could not
# be measured: the baseline cannot be installed (NATS=0 measures without it, by choice), a server
# does not start, the client fails or leaves no report, idle connections never become ready, or a
# run counted errors or missing deliveries (its figures are still printed, flagged).
#   bench/ws.sh [ROUNDS] [SECONDS]
# Environment: SUBS (1000), RATES ("1000 10000 0"), IDLE (10000; 0 skips), HOLD (5 s), CONC (50; 0 skips),
# NATS=0 to skip the baseline, BUILD (build directory, default build-bench), SOURCES (local
# addresses the idle connections come from, comma-separated; default 127.0.0.1 up to 127.0.0.N,
# one for each 25,000 connections: one address reaches one port from about 28,000 ports).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-3}
SECS=${2:-10}
SUBS=${SUBS:-1000}
RATES=${RATES:-"1000 10000 0"}
IDLE=${IDLE:-10000}
HOLD=${HOLD:-5}
if [ -z "${SOURCES:-}" ]; then
  SOURCES=127.0.0.1
  for i in $(seq 2 $(( (IDLE + 24999) / 25000 ))); do SOURCES+=",127.0.0.$i"; done
fi
CONC=${CONC:-50}
NATS=${NATS:-1}
BUILD=${BUILD:-build-bench}
PORT=18180     # sluiced
NPORT=18190    # nats-server WebSocket listener
NCPORT=18191   # nats-server's own protocol port (unused, but it must listen somewhere)

scripts/deps
if [ "$NATS" = 1 ] && ! command -v nats-server >/dev/null; then
  [ "$(id -u)" -eq 0 ] ||
    die "nats-server (the baseline) is not installed and only root can apt-get install it;" \
      "install it, or run with NATS=0 to measure sluiced alone"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null ||
    die "cannot install nats-server (the baseline); run with NATS=0 to measure sluiced alone"
  command -v nats-server >/dev/null || die "nats-server is still not on PATH after installing it"
fi
build_release "$BUILD"
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
  taskset -c 0 "$BIN/sluiced" --engine memory --config bench/ws.conf --listen 127.0.0.1:$PORT \
    2>>"$TMP/sluiced.err" &
  SPID=$!
  wait_http "http://127.0.0.1:$PORT/healthz" "sluiced (see $TMP/sluiced.err)"
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
  wait_http "http://127.0.0.1:$NPORT/" "nats-server (see $TMP/nats.err)"
}

# The client: pinned to core 1; sluiced gets a minted token per connection (SLUICE_JWT_SECRET),
# nats-server the shared token.
tool_sluice() { taskset -c 1 "$BIN/sluice" bench ws --url "http://127.0.0.1:$PORT" --json "$@"; }
tool_nats() { taskset -c 1 "$BIN/sluice" bench ws --proto nats --token "$NATS_TOKEN" --url "http://127.0.0.1:$NPORT" --json "$@"; }

# run_tool SERVER LABEL ARGS...: one run of the client against SERVER, its report in $TMP/out.json.
# Dies, with the client's last words, when it fails or leaves no report.
run_tool() {
  local s=$1 label=$2 rc=0
  shift 2
  "tool_$s" "$@" >"$TMP/out.json" 2>"$TMP/tool.err" || rc=$?
  [ "$rc" -eq 0 ] || die "$label: sluice bench ws exited $rc:"$'\n'"$(tail -20 "$TMP/tool.err")"
  [ -s "$TMP/out.json" ] || die "$label: sluice bench ws left no report:"$'\n'"$(tail -20 "$TMP/tool.err")"
}

# jget KEY.PATH: one number of the report in $TMP/out.json; fails (the caller's assignment with it,
# and so the script) when the report is not JSON or lacks the number.
jget() { json_num "$TMP/out.json" "$1"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# Runs whose figures are printed but cannot be trusted: errors or missing deliveries.
FLAGGED=()
flag_if() { # flag_if LABEL COUNT WHAT
  if [ "$2" != 0 ]; then FLAGGED+=("$1: $2 $3"); fi
}

servers=(sluice)
if [ "$NATS" = 1 ]; then servers+=(nats); fi

echo "== (a) fan-out: 1 publisher -> $SUBS subscribers, ${SECS}s per run (1 s warm-up), $ROUNDS rounds"
start_sluiced
if [ "$NATS" = 1 ]; then start_nats; fi
for rate in $RATES; do
  for s in "${servers[@]}"; do eval "D_$s=(); P50_$s=(); P99_$s=(); MISS_$s=()"; done
  for i in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
      label="fan-out rate $rate round $i $s"
      run_tool "$s" "$label" --scenario fanout --connections "$SUBS" --rate "$rate" --duration "$SECS"
      d=$(jget deliveries.per_second)
      p50=$(jget latency_us.p50)
      p99=$(jget latency_us.p99)
      miss=$(jget deliveries.missing)
      pubs=$(jget publications.per_second)
      cpu=$(jget client_cpu_percent)
      err=$(jget errors.total)
      flag_if "$label" "$err" errors
      flag_if "$label" "$miss" "missing deliveries"
      echo "  rate $rate round $i $s: deliveries/s $d  pubs/s $pubs  p50 ${p50}us  p99 ${p99}us  missing $miss  errors $err  client cpu ${cpu}%"
      eval "D_$s+=($d); P50_$s+=($p50); P99_$s+=($p99); MISS_$s+=($miss)"
    done
  done
  for s in "${servers[@]}"; do
    eval "dm=\$(printf '%s\n' \"\${D_$s[@]}\" | median); p50m=\$(printf '%s\n' \"\${P50_$s[@]}\" | median); p99m=\$(printf '%s\n' \"\${P99_$s[@]}\" | median); mm=\$(printf '%s\n' \"\${MISS_$s[@]}\" | median)"
    eval "DM_$s=$dm"
    echo "rate $rate $s median: deliveries/s $dm  p50 ${p50m}us  p99 ${p99m}us  missing $mm"
  done
  if [ "$NATS" = 1 ]; then
    echo "rate $rate sluiced/nats deliveries/s: $(ratio "$DM_sluice" "$DM_nats")"
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
    label="idle round $i $s"
    : >"$TMP/idle.err"
    "tool_$s" --scenario idle --connections "$IDLE" --duration "$HOLD" --source "$SOURCES" >"$TMP/out.json" 2>"$TMP/idle.err" &
    tpid=$!
    for _ in $(seq 600); do grep -q '^ready' "$TMP/idle.err" && break; sleep 0.1; done
    grep -q '^ready' "$TMP/idle.err" ||
      die "$label: the connections were not ready within 60 s:"$'\n'"$(tail -20 "$TMP/idle.err")"
    sleep 1   # let the server finish what the last connects started
    held=$(rss "$pid")
    rc=0; wait "$tpid" || rc=$?
    [ "$rc" -eq 0 ] || die "$label: sluice bench ws exited $rc:"$'\n'"$(tail -20 "$TMP/idle.err")"
    ready=$(jget connections.ready)
    rate=$(jget connections.connects_per_second)
    err=$(jget errors.total)
    [ "$ready" -gt 0 ] || die "$label: no connection was ready"
    flag_if "$label" "$err" errors
    flag_if "$label" "$((IDLE - ready))" "connections short of $IDLE"
    per=$(( (held - before) * 1024 / ready ))
    echo "  round $i $s: RSS before ${before} KiB, held ${held} KiB, $ready connections: $per bytes/connection; connect rate $rate/s; errors $err"
    eval "B_$s+=($per); R_$s+=($rate)"
    stop_servers
  done
done
for s in "${servers[@]}"; do
  eval "bm=\$(printf '%s\n' \"\${B_$s[@]}\" | median); rm_=\$(printf '%s\n' \"\${R_$s[@]}\" | median)"
  echo "idle $s median: $bm bytes/connection (RSS), connect rate $rm_/s"
done
}

if [ "$CONC" -gt 0 ]; then
echo "== (c) connect + authenticate + close, concurrency $CONC, ${SECS}s per run"
start_sluiced
if [ "$NATS" = 1 ]; then start_nats; fi
for s in "${servers[@]}"; do eval "C_$s=()"; done
for i in $(seq "$ROUNDS"); do
  for s in "${servers[@]}"; do
    label="connect round $i $s"
    run_tool "$s" "$label" --scenario connect --concurrency "$CONC" --duration "$SECS"
    c=$(jget connect.per_second)
    p99=$(jget connect.setup_us.p99)
    err=$(jget errors.total)
    flag_if "$label" "$err" errors
    echo "  round $i $s: $c connects/s  setup p99 ${p99}us  errors $err"
    eval "C_$s+=($c)"
  done
done
for s in "${servers[@]}"; do
  eval "cm=\$(printf '%s\n' \"\${C_$s[@]}\" | median)"
  eval "CM_$s=$cm"
  echo "connect $s median: $cm connects/s"
done
if [ "$NATS" = 1 ]; then
  echo "connect sluiced/nats: $(ratio "$CM_sluice" "$CM_nats")"
fi
fi

if [ ${#FLAGGED[@]} -gt 0 ]; then
  echo "FAILED: these runs counted errors, so the figures above that include them are not clean:" >&2
  printf '  %s\n' "${FLAGGED[@]}" >&2
  exit 1
fi
