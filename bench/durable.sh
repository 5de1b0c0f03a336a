#!/usr/bin/env bash
# Durable writes: authorised PUT requests/s and claim + acknowledge cycles/s of sluiced in each
# durability mode of the embedded LMDB store (sync, batch, none) against the memory engine and
# nginx `return 200`, in the same rounds, with p50/p99 latency (wrk --latency). Server (every
# thread of it: LMDB commits run on its thread pool) pinned to core 0, wrk to core 1, CONNS (50)
# connections. Every round runs nginx, then each mode on a fresh data directory: PUT for SECONDS,
# then claim + acknowledge on a queue filled beforehand. Prints every round, then medians and the
# ratios to the memory engine and to nginx.
#   bench/durable.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-3}
SECS=${2:-5}
CONNS=${CONNS:-50}
MODES=(memory sync batch none)
[ "${SLUICE_SKIP_DEPS:-}" = 1 ] || scripts/deps --bench
build_release build-bench
BIN=build-bench
PORT=18085
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
TOKEN=$($BIN/sluice token create --sub bench --role admin --ttl 2h)
export SLUICE_BENCH_TOKEN=$TOKEN
DATA=$(mktemp -d /tmp/sluice-durable-XXXXXX)
PIDS=()
cleanup() { stop_pids; rm -rf "$DATA"; }
trap cleanup EXIT

taskset -c 0 nginx -c "$PWD/bench/nginx.conf" -p /tmp & NPID=$!; PIDS+=("$NPID")
wait_http "http://127.0.0.1:18081/" "nginx"
NGINX_PID=${PIDS[0]}

mode_args() {
  case $1 in
  memory) echo "--engine memory" ;;
  *) echo "--data-dir $DATA/$1 --durability $1" ;;
  esac
}

sed 's#/channels/bench#/channels/work#' bench/put.lua > /tmp/sluice-put-work.lua
declare -A PUT CLA P50 P99 C50 C99
NG=()
for i in $(seq "$ROUNDS"); do
  n=$(WATCH=$(nginx_worker "$NPID") wrk_rate "round $i nginx" "http://127.0.0.1:18081/")
  NG+=("$n")
  line="  round $i: nginx $n"
  for m in "${MODES[@]}"; do
    rm -rf "${DATA:?}/$m"
    # shellcheck disable=SC2046
    taskset -c 0 $BIN/sluiced --listen 127.0.0.1:$PORT $(mode_args "$m") 2>/tmp/sluice-durable.err &
    SP=$!
    wait_http "http://127.0.0.1:$PORT/healthz" "sluiced $m (see /tmp/sluice-durable.err)"
    for ch in bench work; do
      curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
        -d "{\"id\":\"$ch\",\"kind\":\"queue\"}" >/dev/null || die "cannot create '$ch' ($m)"
    done
    read -r w p50 p99 <<<"$(WATCH=$SP wrk_lat "round $i $m PUT" -s bench/put.lua "http://127.0.0.1:$PORT")"
    SECS=$((SECS + 3)) wrk_rate "round $i $m filling" -s /tmp/sluice-put-work.lua \
      "http://127.0.0.1:$PORT" >/dev/null
    read -r c c50 c99 <<<"$(WATCH=$SP wrk_lat "round $i $m claim+ack" -s bench/claim_ack.lua \
      "http://127.0.0.1:$PORT")"
    depth=$(curl -sf localhost:$PORT/channels/work/info -H "Authorization: Bearer $TOKEN" |
      grep -o '"depth":[0-9]*' | cut -d: -f2)
    [ "${depth:-0}" -gt 0 ] || die "round $i $m: the queue ran dry during claim + ack"
    kill "$SP"
    wait "$SP" 2>/dev/null || true
    PUT[$m]+="$w "
    CLA[$m]+="$c "
    P50[$m]+="$p50 "
    P99[$m]+="$p99 "
    C50[$m]+="$c50 "
    C99[$m]+="$c99 "
    line+="  | $m PUT $w (p50 $p50 ms, p99 $p99 ms) claim+ack $c (p50 $c50, p99 $c99)"
  done
  echo "$line"
done
med() { printf '%s\n' $1 | median; }
nm=$(printf '%s\n' "${NG[@]}" | median)
mw=$(med "${PUT[memory]}")
mc=$(med "${CLA[memory]}")
echo "nginx return 200: median $nm req/s"
printf '%-7s %10s %8s %8s %8s %8s %12s %8s %8s %8s\n' mode "PUT/s" "p50 ms" "p99 ms" "x mem" \
  "x nginx" "claim+ack/s" "p50 ms" "p99 ms" "x mem"
for m in "${MODES[@]}"; do
  w=$(med "${PUT[$m]}")
  c=$(med "${CLA[$m]}")
  printf '%-7s %10s %8s %8s %8s %8s %12s %8s %8s %8s\n' "$m" "$w" "$(med "${P50[$m]}")" \
    "$(med "${P99[$m]}")" "$(ratio "$w" "$mw")" "$(ratio "$w" "$nm")" "$c" \
    "$(med "${C50[$m]}")" "$(med "${C99[$m]}")" "$(ratio "$c" "$mc")"
done
