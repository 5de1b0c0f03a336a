#!/usr/bin/env bash
# HTTP benchmark: sluiced vs nginx (1 worker, `return 200`) under the same wrk settings, in the same
# run. Server pinned to core 0, wrk to core 1. Every round runs nginx (a GET, then the same PUT as
# sluiced's), then the authorised PUT, then nginx again, then claim + acknowledge, so each sluiced
# row has its baseline next to it. Prints
# every round, the medians of ROUNDS runs and the ratios, plus sluiced's RSS idle and with 100,000
# queued 200-byte messages. Exits non-zero, saying why, when anything could not be measured: a
# request wrk counted as failed (socket error or status >= 400), a run without a figure, a server
# that did not start, a work queue that ran dry during claim + ack.
# sluiced runs on the memory engine unless SLUICE_ARGS says otherwise (bench/durable.sh compares
# the durability modes).
#   bench/http.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${CONNS:-50}
scripts/deps --bench
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=ON >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
BIN=build-bench
PORT=18080
TOKEN=$($BIN/sluice token create --sub bench --role admin --ttl 2h)
export SLUICE_BENCH_TOKEN=$TOKEN
cleanup() { kill "${SPID:-}" "${NPID:-}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c 0 $BIN/sluiced --listen 127.0.0.1:$PORT ${SLUICE_ARGS:---engine memory} 2>/tmp/sluice-bench.err & SPID=$!
taskset -c 0 nginx -c "$PWD/bench/nginx.conf" -p /tmp & NPID=$!
wait_http "http://127.0.0.1:$PORT/healthz" "sluiced (see /tmp/sluice-bench.err)"
wait_http "http://127.0.0.1:18081/" "nginx (see /tmp/sluice-bench-nginx.err)"
rss() { awk '/VmRSS/ {print $2}' /proc/$SPID/status; }
echo "sluiced idle RSS: $(rss) KiB"
curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"bench","kind":"topic","retention_max_count":100000}' >/dev/null ||
  die "cannot create the topic 'bench'"
curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"work","kind":"queue"}' >/dev/null || die "cannot create the queue 'work'"

# The queue for claim/ack, filled beforehand (PUT into "work" with the same body) for longer than
# all claim rounds together take, so the cycle never runs dry; checked after the rounds.
sed 's#/channels/bench#/channels/work#' bench/put.lua > /tmp/sluice-put-work.lua
SECS=$((SECS * ROUNDS + 5)) wrk_rate "filling the queue" -s /tmp/sluice-put-work.lua \
  "http://127.0.0.1:$PORT" >/dev/null

# nginx is measured twice next to the PUT: with wrk's plain GET (the baseline the targets were set
# against) and with the very PUT sluiced gets (put.lua: 200-byte body, bearer token; nginx reads
# and drops the body). The second takes the load tool's own cost of the larger request out of the
# comparison, which matters whenever wrk, not the server, is the limit.
declare -a W N P C M
NW=$(nginx_worker "$NPID")
for i in $(seq "$ROUNDS"); do
  n=$(WATCH=$NW wrk_rate "round $i nginx" "http://127.0.0.1:18081/")
  p=$(WATCH=$NW wrk_rate "round $i nginx, the same PUT" -s bench/put.lua "http://127.0.0.1:18081")
  w=$(WATCH=$SPID wrk_rate "round $i sluiced PUT" -s bench/put.lua "http://127.0.0.1:$PORT")
  m=$(WATCH=$NW wrk_rate "round $i nginx (claim + ack's baseline)" "http://127.0.0.1:18081/")
  c=$(WATCH=$SPID wrk_rate "round $i sluiced claim + ack" -s bench/claim_ack.lua "http://127.0.0.1:$PORT")
  echo "  round $i: nginx $n  nginx PUT $p  PUT $w  nginx $m  claim+ack $c"
  N+=("$n"); P+=("$p"); W+=("$w"); M+=("$m"); C+=("$c")
done
depth=$(curl -sf localhost:$PORT/channels/work/info -H "Authorization: Bearer $TOKEN" |
  grep -o '"depth":[0-9]*' | cut -d: -f2) || die "cannot read the depth of the queue 'work'"
[ "${depth:-0}" -gt 0 ] || die "the queue 'work' ran dry during claim + ack: those rounds measured empty claims"
nm=$(printf '%s\n' "${N[@]}" | median)
pm=$(printf '%s\n' "${P[@]}" | median)
wm=$(printf '%s\n' "${W[@]}" | median)
mm=$(printf '%s\n' "${M[@]}" | median)
cm=$(printf '%s\n' "${C[@]}" | median)
echo "nginx return 200       req/s runs: ${N[*]}  median $nm"
echo "nginx, the same PUT    req/s runs: ${P[*]}  median $pm"
echo "sluiced authorised PUT req/s runs: ${W[*]}  median $wm  ratio $(ratio "$wm" "$nm")  to nginx given the same PUT $(ratio "$wm" "$pm")"
echo "  paired rounds' median ratio: $(paired "${W[*]}" "${N[*]}")  to nginx given the same PUT $(paired "${W[*]}" "${P[*]}")"
echo "nginx return 200       req/s runs: ${M[*]}  median $mm  (the rounds next to claim + ack)"
echo "sluiced claim+ack      req/s runs: ${C[*]}  median $cm  ratio $(ratio "$cm" "$mm")  (each cycle is 2 requests; $depth messages left)"
echo "  paired rounds' median ratio: $(paired "${C[*]}" "${M[*]}")"

# RSS with 100,000 queued 200-byte messages, in a fresh process so earlier runs leave no heap behind.
kill "$SPID"; wait "$SPID" 2>/dev/null || true
taskset -c 0 $BIN/sluiced --listen 127.0.0.1:$PORT ${SLUICE_ARGS:---engine memory} 2>>/tmp/sluice-bench.err & SPID=$!
wait_http "http://127.0.0.1:$PORT/healthz" "sluiced (see /tmp/sluice-bench.err)"
curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"rss","kind":"queue"}' >/dev/null || die "cannot create the queue 'rss'"
before=$(rss)
/usr/bin/python3 - "$PORT" "$TOKEN" <<'PY'
import sys, socket
port, token = int(sys.argv[1]), sys.argv[2]
body = b'{"n":0,"pad":"' + b"x" * 184 + b'"}'
assert len(body) == 200
req = (b"PUT /channels/rss HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
       b"\r\nContent-Length: 200\r\n\r\n" + body)
s = socket.create_connection(("127.0.0.1", port))
for batch in range(100):
    s.sendall(req * 1000)
    got = b""
    while got.count(b"HTTP/1.1 ") < 1000:
        chunk = s.recv(1 << 20)
        if not chunk:
            sys.exit("sluiced closed the connection while filling the queue")
        got += chunk
    if got.count(b"HTTP/1.1 200") != 1000:
        sys.exit("a PUT filling the queue was refused: " + got[:300].decode(errors="replace"))
s.close()
PY
depth=$(curl -sf localhost:$PORT/channels/rss/info -H "Authorization: Bearer $TOKEN" |
  grep -o '"depth":[0-9]*' | cut -d: -f2) || die "cannot read the depth of the queue 'rss'"
[ "$depth" = 100000 ] || die "the queue 'rss' holds $depth messages, not 100000: no RSS figure"
echo "sluiced RSS fresh: ${before} KiB; with 100,000 queued 200-byte messages: $(rss) KiB"
