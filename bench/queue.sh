#!/usr/bin/env bash
# Work-queue benchmark: produce → claim → acknowledge against sluiced, NATS JetStream and RabbitMQ,
# all driven by the same load tool (`sluice bench queue`, C, one process). Servers pinned to core
# 0, the tool to core 1. Each round runs the three systems one after the other, starting with a
# different one each round, so that drift on a shared machine falls on all of them; prints every
# round, the medians of ROUNDS runs, sluice's ratios to the others, and each system's durability
# beside its figures (which of them fsync before acknowledging a produce).
#   bench/queue.sh [ROUNDS] [SECONDS]
# Environment: CLIENTS (producers, and as many consumers; 8), SIZE (payload bytes; 256), BATCH
# (claim / fetch / prefetch; 32), SLUICE_ARGS (sluiced's arguments; default "--data-dir {data}",
# the embedded store with durability sync; {data} becomes a fresh directory), SLUICE_SKIP_DEPS=1 (do
# not run scripts/deps --bench). Exits non-zero, saying why, when anything could not be measured: a
# server that did not start, a run with an error, a message lost or delivered twice, a queue not
# empty at the end, or a load tool that used most of its core (then it, not the server, may be the
# bottleneck). Every server it started is stopped on exit, RabbitMQ's epmd included.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-3}
SECS=${2:-10}
CLIENTS=${CLIENTS:-8}
SIZE=${SIZE:-256}
BATCH=${BATCH:-32}
MESSAGES=${MESSAGES:-20000000} # a cap well above what SECS seconds produce
MAX_CLIENT_CPU=90              # percent of core 1
[ "${SLUICE_SKIP_DEPS:-}" = 1 ] || scripts/deps --bench
for p in nats-server /usr/lib/rabbitmq/bin/rabbitmq-server epmd taskset; do
  command -v "$p" >/dev/null || die "$p is missing (scripts/deps --bench installs it)"
done
build_release build-bench
BIN=build-bench
$BIN/sluice bench queue --help >/dev/null 2>&1 ||
  die "$BIN/sluice has no 'bench queue': libnats-dev and librabbitmq-dev were not found by cmake"

TMP=$(mktemp -d /tmp/sluice-bench-queue.XXXXXX)
PIDS=()
RMQ_PID=
EPMD_PID=
cleanup() {
  if [ -n "$RMQ_PID" ]; then
    # shellcheck source=/dev/null
    (. "$TMP/rabbitmq/env" && timeout 30 /usr/lib/rabbitmq/bin/rabbitmqctl shutdown >/dev/null 2>&1) || true
    kill "$RMQ_PID" 2>/dev/null || true
    wait "$RMQ_PID" 2>/dev/null || true
  fi
  stop_pids
  if [ -n "$EPMD_PID" ]; then
    kill "$EPMD_PID" 2>/dev/null || true
    wait "$EPMD_PID" 2>/dev/null || true
  fi
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# wait_port PORT WHAT: waits up to 60 s for a TCP listener on 127.0.0.1:PORT.
wait_port() {
  local _
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "$2 did not listen on port $1 within 60 s"
}

# sluiced: JWT on, as in production; the engine and its durability from SLUICE_ARGS.
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
TOKEN=$($BIN/sluice token create --sub bench --role admin --ttl 2h)
SPORT=$(free_port)
mkdir -p "$TMP/sluice-data"
# The default is sluiced's own: the embedded LMDB store with durability sync.
DEFAULT_SARGS='--data-dir {data}'
SLUICE_ARGS=${SLUICE_ARGS:-$DEFAULT_SARGS}
read -r -a SARGS <<<"$SLUICE_ARGS"
SARGS=("${SARGS[@]/\{data\}/$TMP/sluice-data}")
SLABEL=lmdb
SDUR=sync
if [[ " $SLUICE_ARGS " =~ --engine[=\ ]+([a-z]+) ]]; then SLABEL=${BASH_REMATCH[1]}; fi
if [[ " $SLUICE_ARGS " =~ --durability[=\ ]+([a-z]+) ]]; then SDUR=${BASH_REMATCH[1]}; fi
case $SLABEL-$SDUR in
memory-*) SLABEL=memory; SWHAT="memory engine, nothing on disk: no" ;;
*-sync) SLABEL=lmdb-sync; SWHAT="yes: each reply after its group commit's fsync" ;;
*-batch) SLABEL=lmdb-batch; SWHAT="no: written before the reply, fsync within durability_batch_ms" ;;
*) SLABEL=lmdb-none; SWHAT="no: written before the reply, fsync left to the OS" ;;
esac
taskset -c 0 $BIN/sluiced --listen "127.0.0.1:$SPORT" "${SARGS[@]}" 2>"$TMP/sluiced.err" &
PIDS+=($!)
wait_http "http://127.0.0.1:$SPORT/healthz" "sluiced (see $TMP/sluiced.err)"

# nats-server: JetStream with file storage in the temp dir, its defaults otherwise.
NPORT=$(free_port)
mkdir -p "$TMP/nats"
cat >"$TMP/nats/nats.conf" <<EOF
listen: 127.0.0.1:$NPORT
jetstream {
  store_dir: "$TMP/nats/store"
}
EOF
taskset -c 0 nats-server -c "$TMP/nats/nats.conf" >"$TMP/nats/log" 2>&1 &
PIDS+=($!)
wait_port "$NPORT" "nats-server (see $TMP/nats/log)"

# RabbitMQ: a standalone node under the temp dir (its own epmd on a free port, its own cookie in
# a temp HOME), Debian's server script called directly so that it runs as this user, not as the
# system's rabbitmq service. Erlang sees only core 0 through taskset.
RDIR=$TMP/rabbitmq
mkdir -p "$RDIR/home" "$RDIR/mnesia" "$RDIR/log"
echo "[]." >"$RDIR/enabled_plugins"
: >"$RDIR/rabbitmq.conf"
APORT=$(free_port)
EPORT=$(free_port)
DPORT=$(free_port)
cat >"$RDIR/env" <<EOF
export HOME=$RDIR/home ERL_EPMD_PORT=$EPORT RABBITMQ_NODENAME=sluicebench@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$APORT RABBITMQ_DIST_PORT=$DPORT
export RABBITMQ_MNESIA_BASE=$RDIR/mnesia RABBITMQ_LOG_BASE=$RDIR/log RABBITMQ_LOGS=-
export RABBITMQ_CONF_ENV_FILE=/dev/null RABBITMQ_CONFIG_FILE=$RDIR/rabbitmq
export RABBITMQ_ENABLED_PLUGINS_FILE=$RDIR/enabled_plugins RABBITMQ_PID_FILE=$RDIR/pid
EOF
# shellcheck source=/dev/null
(. "$RDIR/env" && exec epmd -port "$EPORT") >"$RDIR/epmd.log" 2>&1 &
EPMD_PID=$!
# shellcheck source=/dev/null
(. "$RDIR/env" && exec taskset -c 0 /usr/lib/rabbitmq/bin/rabbitmq-server) >"$RDIR/server.log" 2>&1 &
RMQ_PID=$!
started=
for _ in $(seq 60); do
  # shellcheck source=/dev/null
  if (. "$RDIR/env" && timeout 20 /usr/lib/rabbitmq/bin/rabbitmqctl await_startup >/dev/null 2>&1); then
    started=1
    break
  fi
  kill -0 "$RMQ_PID" 2>/dev/null || die "rabbitmq-server exited:"$'\n'"$(tail -20 "$RDIR/server.log")"
  sleep 1
done
[ -n "$started" ] || die "rabbitmq-server did not start (see $RDIR/server.log)"
wait_port "$APORT" "rabbitmq-server"

declare -A URL=([sluice]="http://127.0.0.1:$SPORT" [nats]="nats://127.0.0.1:$NPORT"
  [rabbitmq]="amqp://guest:guest@127.0.0.1:$APORT/")
declare -A DUR=([sluice]="$SLABEL" [nats]="" [rabbitmq]="")
declare -A SENT=()
declare -A PR CR P50 P99 E50 E99 CPU
SYSTEMS=(sluice nats rabbitmq)

# field LINE KEY: the value of KEY=... in a RESULT line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# run SYSTEM ROUND: one run of the load tool on core 1; appends its figures.
run() {
  local t=$1 i=$2 out line cpu
  if ! out=$(taskset -c 1 $BIN/sluice bench queue --target "$t" --url "${URL[$t]}" --token "$TOKEN" \
    --durability "$SLABEL" --clients "$CLIENTS" --size "$SIZE" --batch "$BATCH" \
    --messages "$MESSAGES" --seconds "$SECS" --timeout 30 2>&1); then
    die "round $i $t: the run was not clean:"$'\n'"$out"
  fi
  line=$(grep '^RESULT ' <<<"$out") || die "round $i $t: no RESULT line:"$'\n'"$out"
  cpu=$(field "$line" client_cpu)
  if [ "$cpu" -ge "$MAX_CLIENT_CPU" ]; then
    die "round $i $t: the load tool used $cpu% of its core, so it may be the bottleneck:"$'\n'"$out"
  fi
  [ -n "${DUR[$t]}" ] || DUR[$t]=$(field "$line" durability)
  [ -n "${SENT[$t]:-}" ] || SENT[$t]=$(sed -n 's/^  durability: //p' <<<"$out")
  PR[$t]+="$(field "$line" produce_rate) "
  CR[$t]+="$(field "$line" consume_rate) "
  P50[$t]+="$(field "$line" produce_p50_us) "
  P99[$t]+="$(field "$line" produce_p99_us) "
  E50[$t]+="$(field "$line" e2e_p50_us) "
  E99[$t]+="$(field "$line" e2e_p99_us) "
  CPU[$t]+="$cpu "
  printf '  round %s %-8s produce %7s/s  consume %7s/s  produce p50/p99 %s/%s us  e2e p50/p99 %s/%s us  client CPU %s%%\n' \
    "$i" "$t" "$(field "$line" produce_rate)" "$(field "$line" consume_rate)" \
    "$(field "$line" produce_p50_us)" "$(field "$line" produce_p99_us)" \
    "$(field "$line" e2e_p50_us)" "$(field "$line" e2e_p99_us)" "$cpu"
}

echo "bench/queue.sh: $ROUNDS rounds of $SECS s, $CLIENTS producers + $CLIENTS consumers, $SIZE-byte messages, batch $BATCH"
echo "  sluiced $SLUICE_ARGS; nats-server $(nats-server --version | awk '{print $NF}'); RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server)"
for i in $(seq "$ROUNDS"); do
  for k in 0 1 2; do
    run "${SYSTEMS[$(((i - 1 + k) % 3))]}" "$i"
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo "medians of $ROUNDS rounds:"
printf '  %-9s %-22s %10s %10s %16s %16s\n' system durability produce/s consume/s "produce p50/p99" "e2e p50/p99"
for t in "${SYSTEMS[@]}"; do
  printf '  %-9s %-22s %10s %10s %16s %16s\n' "$t" "${DUR[$t]}" "$(med "${PR[$t]}")" "$(med "${CR[$t]}")" \
    "$(med "${P50[$t]}")/$(med "${P99[$t]}") us" "$(med "${E50[$t]}")/$(med "${E99[$t]}") us"
done
for t in nats rabbitmq; do
  echo "  sluice / $t: produce $(ratio "$(med "${PR[sluice]}")" "$(med "${PR[$t]}")")x, consume $(ratio "$(med "${CR[sluice]}")" "$(med "${CR[$t]}")")x"
done
echo "durability (does it fsync before acknowledging a produce?):"
echo "  sluice ($SLABEL): $SWHAT"
echo "  nats: ${SENT[nats]}"
echo "  rabbitmq: ${SENT[rabbitmq]}"
echo "client CPU per run (% of core 1): sluice ${CPU[sluice]}; nats ${CPU[nats]}; rabbitmq ${CPU[rabbitmq]}"
