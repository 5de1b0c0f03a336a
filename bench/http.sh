#!/usr/bin/env bash
# HTTP benchmark: sluiced vs nginx (1 worker, `return 200`) under the same wrk settings, in the same
# run. Server pinned to core 0, wrk to core 1. Prints medians of ROUNDS runs and the ratio, plus
# sluiced's RSS idle and with 100,000 queued 200-byte messages.
#   bench/http.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
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

taskset -c 0 $BIN/sluiced --listen 127.0.0.1:$PORT 2>/tmp/sluice-bench.err & SPID=$!
taskset -c 0 nginx -c "$PWD/bench/nginx.conf" -p /tmp & NPID=$!
sleep 0.5
rss() { awk '/VmRSS/ {print $2}' /proc/$SPID/status; }
echo "sluiced idle RSS: $(rss) KiB"
curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"bench","kind":"topic","retention_max_count":100000}' >/dev/null
curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"work","kind":"queue"}' >/dev/null

run_wrk() { taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Fill the work queue so the claim/ack cycle never runs dry.
fill() {
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s bench/put.lua "http://127.0.0.1:$PORT" >/dev/null
}
declare -a W N C
for i in $(seq "$ROUNDS"); do
  N+=("$(run_wrk "http://127.0.0.1:18081/")")
  W+=("$(run_wrk -s bench/put.lua "http://127.0.0.1:$PORT")")
done
# The queue for claim/ack: PUT into "work" with the same body.
sed 's#/channels/bench#/channels/work#' bench/put.lua > /tmp/sluice-put-work.lua
taskset -c 1 wrk -t1 -c"$CONNS" -d"$((SECS * ROUNDS + 5))s" -s /tmp/sluice-put-work.lua "http://127.0.0.1:$PORT" >/dev/null
for i in $(seq "$ROUNDS"); do
  C+=("$(run_wrk -s bench/claim_ack.lua "http://127.0.0.1:$PORT")")
done
nm=$(printf '%s\n' "${N[@]}" | median)
wm=$(printf '%s\n' "${W[@]}" | median)
cm=$(printf '%s\n' "${C[@]}" | median)
echo "nginx return 200      req/s runs: ${N[*]}  median $nm"
echo "sluiced authorised PUT req/s runs: ${W[*]}  median $wm  ratio $(awk -v a="$wm" -v b="$nm" 'BEGIN{printf "%.2f", a/b}')"
echo "sluiced claim+ack     req/s runs: ${C[*]}  median $cm  (each cycle is 2 requests)"

# RSS with 100,000 queued 200-byte messages, in a fresh process so earlier runs leave no heap behind.
kill "$SPID"; wait "$SPID" 2>/dev/null || true
taskset -c 0 $BIN/sluiced --listen 127.0.0.1:$PORT 2>>/tmp/sluice-bench.err & SPID=$!
sleep 0.5
curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"rss","kind":"queue"}' >/dev/null
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
    while got.count(b"HTTP/1.1 200") < 1000:
        got += s.recv(1 << 20)
s.close()
PY
echo "sluiced RSS fresh: ${before} KiB; with 100,000 queued 200-byte messages: $(rss) KiB"
curl -sf localhost:$PORT/channels/rss/info -H "Authorization: Bearer $TOKEN" | grep -o '"depth":[0-9]*'
