#!/usr/bin/env bash
# The Redis engine (issue 10, section 3), every figure from the same rounds of one run:
#   ceiling   redis-benchmark's own XADD rate on the same redis-server, 50 clients, as it runs by
#             default (not pipelined: each client waits for its reply, as each of wrk's 50
#             connections does) and pipelined 16 deep (-P 16: Redis' appending rate when the
#             network costs nothing). The 50 % target is judged against the default run; the
#             pipelined figure is printed beside it
#   writes    authorised PUT req/s (wrk, CONNS=50 connections, JWT, bench/put.lua) on the memory
#             engine, LMDB (durability sync), the Redis engine with one node, and two nodes on the
#             same Redis each driven by its own wrk at the same time (the sum)
#   claims    claim + acknowledge cycles/s (bench/claim_ack.lua; one cycle is two requests) on a
#             queue filled beforehand, on the same four setups
#   fan-out   `sluice bench ws`: SUBS (1000) subscribers on node B and the publisher on node A
#             (--publish-url), both nodes on the Redis engine; beside it the publisher on node B
#             (one node, Redis engine) and one memory-engine node, the in-node comparisons. Each at
#             --rate 0 (as fast as acknowledged: deliveries/s) and at RATE/s (1000: p50/p99
#             publish-to-delivery, not inflated by a backlog)
# Pinning (2 cores): every server process - the sluiced nodes (all their threads) and redis-server -
# on core 0, every client - wrk (both of them in the two-node rows), redis-benchmark, sluice bench
# ws - on core 1. So every row has the same budget: one core of servers, one of clients. The
# Redis-engine rows share core 0 between sluiced and redis-server, while redis-benchmark's ceiling
# has redis-server alone on it; the two-node rows show what a second node costs or gains on the
# same core, not scale-out across machines (which needs more cores than this machine has).
# redis-server is started by this script on a free loopback port with persistence off (--save ''
# --appendonly no): the ceiling measures Redis' CPU, not a disk, and no sluiced row waits on an
# fsync of Redis (LMDB sync does wait on its own). Keys are flushed before every setup.
# Prints every round, then the medians and the ratios: PUT redis / XADD ceiling, redis / memory,
# redis / lmdb (and the same for claim + ack). Exits non-zero, saying why, when anything could not
# be measured: a server does not start, wrk counts a failed request, the queue runs dry during
# claim + ack, a fan-out run counts errors or missing deliveries.
#   bench/redis.sh [ROUNDS] [SECONDS]
# Environment: CONNS (50), SUBS (1000), RATE (1000), XADD_N (requests per redis-benchmark run,
# 1000000 pipelined; a fifth of it unpipelined), BUILD (build directory, default build-bench),
# SLUICE_SKIP_DEPS=1 to skip scripts/deps --bench.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-3}
SECS=${2:-5}
CONNS=${CONNS:-50}
SUBS=${SUBS:-1000}
RATE=${RATE:-1000}
XADD_N=${XADD_N:-1000000}
BUILD=${BUILD:-build-bench}
[ "${SLUICE_SKIP_DEPS:-}" = 1 ] || scripts/deps --bench
for p in redis-server redis-cli redis-benchmark wrk; do
  command -v "$p" >/dev/null || die "$p is not installed (scripts/deps --bench installs it)"
done
build_release "$BUILD"
BIN=$BUILD

ulimit -n "$(ulimit -Hn)"
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
TOKEN=$("$BIN/sluice" token create --sub bench --role admin --ttl 2h)
export SLUICE_BENCH_TOKEN=$TOKEN
TMP=$(mktemp -d /tmp/sluice-redis-bench.XXXXXX)
PIDS=()  # redis-server
NODES=() # the sluiced nodes of the current setup
# stop_nodes: SIGTERM to every node, and SIGKILL to any still running 5 s later, said on stderr
# (a node that does not stop is a bug to report, but must not stall the benchmark).
stop_nodes() {
  local p _
  for p in "${NODES[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NODES[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      echo "${0##*/}: sluiced (pid $p) still running 5 s after SIGTERM; killed" >&2
      kill -9 "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  NODES=()
}
cleanup() { stop_nodes; stop_pids; rm -rf "$TMP"; }
trap cleanup EXIT

# free_port: a loopback port nobody listens on now (the kernel's choice).
free_port() {
  /usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
RPORT=$(free_port)
PA=$(free_port)
PB=$(free_port)
if [ "$PA" = "$PB" ] || [ "$PA" = "$RPORT" ] || [ "$PB" = "$RPORT" ]; then
  die "no three distinct free ports"
fi

taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$TMP" --loglevel warning >>"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do
  [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] ||
  die "redis-server did not come up on port $RPORT (see $TMP/redis.log)"
flush() { [ "$(redis-cli -p "$RPORT" flushall)" = OK ] || die "FLUSHALL failed"; }

# node PORT ENGINE-ARGS...: starts sluiced on core 0 and waits until it answers.
node() {
  local port=$1
  shift
  taskset -c 0 "$BIN/sluiced" --listen "127.0.0.1:$port" "$@" 2>>"$TMP/sluiced-$port.err" &
  NODES+=($!)
  wait_http "http://127.0.0.1:$port/healthz" "sluiced on $port (see $TMP/sluiced-$port.err)"
}
setup_args() { # SETUP: the engine arguments of a setup
  case $1 in
  memory) echo "--engine memory" ;;
  lmdb) echo "--data-dir $TMP/lmdb --durability sync" ;;
  redis | redis2) echo "--engine redis://127.0.0.1:$RPORT" ;;
  esac
}
create() { # PORT ID KIND
  curl -sf -XPOST "localhost:$1/channels" -H "Authorization: Bearer $TOKEN" \
    -d "{\"id\":\"$2\",\"kind\":\"$3\"}" >/dev/null || die "cannot create '$2' on port $1"
}
depth() { # PORT ID
  curl -sf "localhost:$1/channels/$2/info" -H "Authorization: Bearer $TOKEN" |
    grep -o '"depth":[0-9]*' | cut -d: -f2
}

# xadd ARGS...: requests/s of one redis-benchmark XADD run on core 1 (50 clients).
xadd() {
  local out rate
  out=$(taskset -c 1 redis-benchmark -p "$RPORT" -c 50 -q "$@" XADD bench:s '*' d x 2>&1) ||
    die "redis-benchmark failed:"$'\n'"$out"
  rate=$(tr '\r' '\n' <<<"$out" | awk '/requests per second/ {for (i = 1; i < NF; i++)
    if ($(i + 1) == "requests") r = $i} END {if (r != "") print r}')
  [ -n "$rate" ] || die "redis-benchmark printed no rate:"$'\n'"$out"
  redis-cli -p "$RPORT" del bench:s >/dev/null
  printf '%s\n' "$rate"
}

# wrk_both LABEL SCRIPT: wrk_lat against node A and node B at the same time (CONNS connections
# each, both wrk on core 1); prints "sum-of-rates worst-p50 worst-p99".
wrk_both() {
  local label=$1 script=$2 a b
  wrk_lat "$label node A" -s "$script" "http://127.0.0.1:$PA" >"$TMP/wa" &
  a=$!
  wrk_lat "$label node B" -s "$script" "http://127.0.0.1:$PB" >"$TMP/wb" &
  b=$!
  wait "$a" || { wait "$b" || true; die "$label: node A's wrk run failed (above)"; }
  wait "$b" || die "$label: node B's wrk run failed (above)"
  cat "$TMP/wa" "$TMP/wb" | awk '{r += $1; if ($2 > p50) p50 = $2; if ($3 > p99) p99 = $3}
    END {if (NR != 2) exit 1; printf "%.2f %.2f %.2f\n", r, p50, p99}' ||
    die "$label: a wrk run left no figure"
}

sed 's#/channels/bench#/channels/work#' bench/put.lua >"$TMP/put-work.lua"
SETUPS=(memory lmdb redis redis2)

# http_setup ROUND SETUP: PUT, then fill the queue, then claim + ack; appends to the figures.
http_setup() {
  local i=$1 s=$2 w p50 p99 c c50 c99 d out
  flush
  rm -rf "$TMP/lmdb"
  # shellcheck disable=SC2046 # the engine arguments are words without spaces
  node "$PA" $(setup_args "$s")
  if [ "$s" = redis2 ]; then
    # shellcheck disable=SC2046
    node "$PB" $(setup_args "$s")
  fi
  for ch in bench work; do create "$PA" "$ch" queue; done
  if [ "$s" = redis2 ]; then
    # Channels live in Redis: node B serves what node A created.
    [ -n "$(depth "$PB" work || true)" ] || die "round $i: node B does not see the queue node A created"
    out=$(wrk_both "round $i $s PUT" bench/put.lua)
    read -r w p50 p99 <<<"$out"
    SECS=$((SECS + 3)) wrk_both "round $i $s filling" "$TMP/put-work.lua" >/dev/null
    out=$(wrk_both "round $i $s claim+ack" bench/claim_ack.lua)
    read -r c c50 c99 <<<"$out"
  else
    out=$(wrk_lat "round $i $s PUT" -s bench/put.lua "http://127.0.0.1:$PA")
    read -r w p50 p99 <<<"$out"
    SECS=$((SECS + 3)) wrk_rate "round $i $s filling" -s "$TMP/put-work.lua" \
      "http://127.0.0.1:$PA" >/dev/null
    out=$(wrk_lat "round $i $s claim+ack" -s bench/claim_ack.lua "http://127.0.0.1:$PA")
    read -r c c50 c99 <<<"$out"
  fi
  d=$(depth "$PA" work || true)
  [ "${d:-0}" -gt 0 ] || die "round $i $s: the queue ran dry during claim + ack"
  stop_nodes
  c=$(awk -v r="$c" 'BEGIN {printf "%.2f", r / 2}')
  PUT[$s]+="$w "
  P50[$s]+="$p50 "
  P99[$s]+="$p99 "
  CLA[$s]+="$c "
  C50[$s]+="$c50 "
  C99[$s]+="$c99 "
  line+="  | $s PUT $w (p50 $p50 ms, p99 $p99 ms) claim+ack/s $c (p50 $c50, p99 $c99)"
}

# Fan-out: the three setups and the two rates.
FANS=(memory-1node redis-1node redis-A-to-B)
jget() { json_num "$1" "$2"; } # FILE KEY.PATH: one number of a sluice bench ws report
# One second of warm-up (a quarter of the run when it is 2 s or shorter) left out of the figures.
WARM=$(awk -v s="$SECS" 'BEGIN {print (s > 2 ? 1 : s / 4)}')
FLAGGED=()
fan_run() { # ROUND FAN RATE URL PUBLISH-URL
  local i=$1 f=$2 rate=$3 rc=0 d p50 p99 miss err
  local label="round $i fan-out $f rate $rate"
  taskset -c 1 "$BIN/sluice" bench ws --json --scenario fanout --connections "$SUBS" \
    --rate "$rate" --duration "$SECS" --warmup "$WARM" --url "$4" --publish-url "$5" >"$TMP/ws.json" \
    2>"$TMP/ws.err" || rc=$?
  [ "$rc" -eq 0 ] || die "$label: sluice bench ws exited $rc:"$'\n'"$(tail -20 "$TMP/ws.err")"
  d=$(jget "$TMP/ws.json" deliveries.per_second)
  p50=$(jget "$TMP/ws.json" latency_us.p50)
  p99=$(jget "$TMP/ws.json" latency_us.p99)
  miss=$(jget "$TMP/ws.json" deliveries.missing)
  err=$(jget "$TMP/ws.json" errors.total)
  [ "$(jget "$TMP/ws.json" subscribers)" = "$SUBS" ] || FLAGGED+=("$label: not all $SUBS subscribed")
  [ "$miss" = 0 ] || FLAGGED+=("$label: $miss missing deliveries")
  [ "$err" = 0 ] || FLAGGED+=("$label: $err errors $(/usr/bin/python3 -c 'import json,sys
print(json.dumps(json.load(open(sys.argv[1]))["errors"]["kinds"]))' "$TMP/ws.json" || true)")
  echo "  round $i fan-out $f rate $rate: deliveries/s $d  p50 ${p50}us  p99 ${p99}us  missing $miss  errors $err"
  FD["$f/$rate"]+="$d "
  F50["$f/$rate"]+="$p50 "
  F99["$f/$rate"]+="$p99 "
}
fan_setup() { # ROUND
  local i=$1 rate
  flush
  node "$PB" --engine memory --config bench/ws.conf
  for rate in 0 "$RATE"; do
    fan_run "$i" memory-1node "$rate" "http://127.0.0.1:$PB" "http://127.0.0.1:$PB"
  done
  stop_nodes
  node "$PA" --engine "redis://127.0.0.1:$RPORT" --config bench/ws.conf
  node "$PB" --engine "redis://127.0.0.1:$RPORT" --config bench/ws.conf
  for rate in 0 "$RATE"; do
    fan_run "$i" redis-1node "$rate" "http://127.0.0.1:$PB" "http://127.0.0.1:$PB"
    fan_run "$i" redis-A-to-B "$rate" "http://127.0.0.1:$PB" "http://127.0.0.1:$PA"
  done
  stop_nodes
}

declare -A PUT P50 P99 CLA C50 C99 FD F50 F99
XP=()
X1=()
echo "== redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2) on port $RPORT, persistence off; $ROUNDS rounds of ${SECS}s, $CONNS wrk connections, $SUBS subscribers"
for i in $(seq "$ROUNDS"); do
  xp=$(xadd -n "$XADD_N" -P 16)
  x1=$(xadd -n "$((XADD_N / 5))")
  XP+=("$xp")
  X1+=("$x1")
  line="  round $i: XADD -P 16 $xp/s, XADD unpipelined $x1/s"
  for s in "${SETUPS[@]}"; do http_setup "$i" "$s"; done
  echo "$line"
  fan_setup "$i"
done

# shellcheck disable=SC2086 # the figures are a space-separated list
med() { printf '%s\n' $1 | median; }
xpm=$(printf '%s\n' "${XP[@]}" | median)
x1m=$(printf '%s\n' "${X1[@]}" | median)
echo
echo "redis-benchmark XADD (50 clients): median $xpm/s pipelined (-P 16), $x1m/s unpipelined"
mw=$(med "${PUT[memory]}")
lw=$(med "${PUT[lmdb]}")
rw=$(med "${PUT[redis]}")
mc=$(med "${CLA[memory]}")
lc=$(med "${CLA[lmdb]}")
rc_=$(med "${CLA[redis]}")
printf '%-8s %10s %7s %7s %8s %8s %8s %12s %7s %7s %8s %8s\n' setup "PUT/s" "p50 ms" "p99 ms" \
  "x XADD" "x memory" "x lmdb" "claim+ack/s" "p50 ms" "p99 ms" "x memory" "x lmdb"
for s in "${SETUPS[@]}"; do
  w=$(med "${PUT[$s]}")
  c=$(med "${CLA[$s]}")
  printf '%-8s %10s %7s %7s %8s %8s %8s %12s %7s %7s %8s %8s\n' "$s" "$w" "$(med "${P50[$s]}")" \
    "$(med "${P99[$s]}")" "$(ratio "$w" "$x1m")" "$(ratio "$w" "$mw")" "$(ratio "$w" "$lw")" "$c" \
    "$(med "${C50[$s]}")" "$(med "${C99[$s]}")" "$(ratio "$c" "$mc")" "$(ratio "$c" "$lc")"
done
echo "PUT redis 1 node / XADD: $(ratio "$rw" "$x1m"); / XADD pipelined (-P 16): $(ratio "$rw" "$xpm")"
echo "PUT redis / memory: $(ratio "$rw" "$mw"); redis / lmdb: $(ratio "$rw" "$lw"); 2 nodes / 1 node: $(ratio "$(med "${PUT[redis2]}")" "$rw")"
echo "claim+ack redis / memory: $(ratio "$rc_" "$mc"); redis / lmdb: $(ratio "$rc_" "$lc"); 2 nodes / 1 node: $(ratio "$(med "${CLA[redis2]}")" "$rc_")"
if awk -v a="$rw" -v b="$x1m" 'BEGIN {exit !(a >= 0.5 * b)}'; then
  echo "target (PUT on one Redis-engine node >= 0.50 x redis-benchmark XADD): met"
else
  echo "target (PUT on one Redis-engine node >= 0.50 x redis-benchmark XADD): NOT met"
fi
printf '%-14s %6s %14s %10s %10s\n' fan-out rate "deliveries/s" "p50 us" "p99 us"
for f in "${FANS[@]}"; do
  for rate in 0 "$RATE"; do
    printf '%-14s %6s %14s %10s %10s\n' "$f" "$rate" "$(med "${FD[$f/$rate]}")" \
      "$(med "${F50[$f/$rate]}")" "$(med "${F99[$f/$rate]}")"
  done
done

if [ ${#FLAGGED[@]} -gt 0 ]; then
  echo "FAILED: these runs counted errors or lost deliveries, so the figures that include them are not clean:" >&2
  printf '  %s\n' "${FLAGGED[@]}" >&2
  exit 1
fi
