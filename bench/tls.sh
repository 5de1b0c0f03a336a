#!/usr/bin/env bash
# TLS benchmark: sluiced against nginx (1 worker) with the same certificate (ECDSA P-256, made
# here with the openssl CLI), server pinned to core 0, clients to core 1, in the same run:
#   - handshakes/s: `openssl s_time` full handshakes (-new: no session reuse, TLS 1.3) and
#     resumed ones (-reuse: the session is offered again; TLS 1.2, see handshakes()), one
#     connection at a time, against each server;
#   - TLS PUT req/s: wrk over https with bench/put.lua (keep-alive) against sluiced's authorised
#     PUT, next to nginx `return 200` over https, as bench/http.sh does over plain HTTP; and
#     sluiced's GET /healthz (no credential, no engine: the TLS transport and the router only).
# Every round runs both servers back to back; prints every round, the medians of ROUNDS runs and
# the ratios. Exits non-zero, saying why, when something could not be measured (wrk's failed
# requests, a run without a figure, a server that did not start).
#   bench/tls.sh [ROUNDS] [SECONDS]
# BIN=DIR uses binaries already built there (no Release build); SLUICE_BENCH_NO_DEPS=1 skips
# scripts/deps --bench (wrk, nginx-light and openssl must then be installed).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${CONNS:-50}
[ -n "${SLUICE_BENCH_NO_DEPS:-}" ] || scripts/deps --bench
if [ -z "${BIN:-}" ]; then
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=ON >/dev/null
  cmake --build build-bench -j"$(nproc)" >/dev/null
  BIN=build-bench
fi
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
PORT=18443   # sluiced, TLS
PLAIN=18080  # sluiced, plaintext on loopback (set-up only)
NPORT=18444  # nginx, TLS
TMP=$(mktemp -d /tmp/sluice-tls-bench.XXXXXX)
cleanup() {
  kill "${SPID:-}" "${NPID:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# The certificate both servers present: a CA and a server certificate for localhost.
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$TMP/ca.key" -out "$TMP/ca.crt" -days 2 \
  -subj "/CN=bench CA" 2>/dev/null || die "openssl cannot make the CA"
openssl req "${ec[@]}" -keyout "$TMP/srv.key" -out "$TMP/srv.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TMP/srv.ext"
openssl x509 -req -in "$TMP/srv.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" -CAcreateserial \
  -out "$TMP/srv.crt" -days 1 -extfile "$TMP/srv.ext" 2>/dev/null || die "openssl cannot sign"

cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NPORT ssl;
        ssl_certificate $TMP/srv.crt;
        ssl_certificate_key $TMP/srv.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location / { return 200; }
    }
}
EOF

TOKEN=$($BIN/sluice token create --sub bench --role admin --ttl 2h)
export SLUICE_BENCH_TOKEN=$TOKEN
taskset -c 0 "$BIN/sluiced" --engine memory --listen "127.0.0.1:$PLAIN" \
  --listen "127.0.0.1:$PORT,tls" --tls-cert "$TMP/srv.crt" --tls-key "$TMP/srv.key" \
  2>"$TMP/sluiced.err" & SPID=$!
taskset -c 0 nginx -c "$TMP/nginx.conf" -p "$TMP" 2>"$TMP/nginx.start.err" & NPID=$!
wait_http "http://127.0.0.1:$PLAIN/healthz" "sluiced (see $TMP/sluiced.err)"
for _ in $(seq 300); do
  curl -s -o /dev/null --max-time 1 --cacert "$TMP/ca.crt" "https://localhost:$NPORT/" && break
  sleep 0.1
done
curl -sf -o /dev/null --cacert "$TMP/ca.crt" "https://localhost:$NPORT/" || die "nginx over TLS did not come up"
curl -sf -o /dev/null --cacert "$TMP/ca.crt" "https://localhost:$PORT/healthz" ||
  die "sluiced over TLS does not answer"
curl -sf -XPOST "localhost:$PLAIN/channels" -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"bench","kind":"topic","retention_max_count":100000}' >/dev/null ||
  die "cannot create the topic 'bench'"

# handshakes PORT MODE...: connections/s of `openssl s_time` (MODE: -new, or -reuse -tls1_2) over
# SECS s of wall time (s_time's own figures are CPU time, or whole seconds). s_time does not
# resume TLS 1.3 sessions (it never reads the tickets), so resumption is measured with TLS 1.2
# session ids; the count of resumed connections ('r' in its output) must be all of them.
handshakes() {
  local port=$1 out t0 t1 n
  shift
  t0=$(date +%s.%N)
  out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$port" "$@" -time "$SECS" \
    -CAfile "$TMP/ca.crt" 2>&1) || die "s_time $* on port $port failed:"$'\n'"$out"
  t1=$(date +%s.%N)
  n=$(awk '/connections in [0-9.]+s;/ {print $1; exit}' <<<"$out")
  [ -n "$n" ] || die "s_time $* on port $port printed no count:"$'\n'"$out"
  if [ "$1" = -reuse ]; then
    local reused
    reused=$(tr -cd r <<<"$out" | wc -c)
    [ "$reused" -ge $((n - 1)) ] || die "s_time $* on port $port: only $reused of $n resumed"
  fi
  awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", n / (b - a)}'
}

# nginx's TLS rows: wrk's plain GET (the baseline the target was set against) and the very PUT
# sluiced gets (see bench/http.sh: the load tool's cost of the larger request, which it also
# encrypts, then weighs on both servers alike).
declare -a HN HS RN RS PN PP PS PH
for i in $(seq "$ROUNDS"); do
  hn=$(handshakes "$NPORT" -new)
  hs=$(handshakes "$PORT" -new)
  rn=$(handshakes "$NPORT" -reuse -tls1_2)
  rs=$(handshakes "$PORT" -reuse -tls1_2)
  pn=$(WATCH=$(nginx_worker "$NPID") wrk_rate "round $i nginx TLS" "https://localhost:$NPORT/")
  pp=$(WATCH=$(nginx_worker "$NPID") wrk_rate "round $i nginx TLS, the same PUT" -s bench/put.lua "https://localhost:$NPORT")
  ps=$(WATCH=$SPID wrk_rate "round $i sluiced TLS PUT" -s bench/put.lua "https://localhost:$PORT")
  ph=$(WATCH=$SPID wrk_rate "round $i sluiced TLS GET /healthz" "https://localhost:$PORT/healthz")
  echo "  round $i: handshakes nginx $hn sluiced $hs  resumed nginx $rn sluiced $rs  req/s nginx $pn nginx PUT $pp sluiced PUT $ps sluiced /healthz $ph"
  HN+=("$hn"); HS+=("$hs"); RN+=("$rn"); RS+=("$rs"); PN+=("$pn"); PP+=("$pp"); PS+=("$ps"); PH+=("$ph")
done
for k in HN HS RN RS PN PP PS PH; do
  declare -n arr=$k
  declare "${k}M=$(printf '%s\n' "${arr[@]}" | median)"
done
echo "full handshakes/s (TLS 1.3)   nginx median $HNM  sluiced median $HSM  ratio $(ratio "$HSM" "$HNM")"
echo "resumed handshakes/s (TLS 1.2) nginx median $RNM  sluiced median $RSM  ratio $(ratio "$RSM" "$RNM")"
echo "TLS req/s (keep-alive)        nginx return 200 median $PNM  sluiced PUT median $PSM  ratio $(ratio "$PSM" "$PNM")"
echo "TLS req/s, the same PUT       nginx return 200 median $PPM  sluiced PUT median $PSM  ratio $(ratio "$PSM" "$PPM")"
echo "  TLS PUT, paired rounds' median ratio: to nginx's GET $(paired "${PS[*]}" "${PN[*]}")  to nginx given the same PUT $(paired "${PS[*]}" "${PP[*]}")"
echo "TLS req/s, transport only     nginx return 200 median $PNM  sluiced GET /healthz median $PHM  ratio $(ratio "$PHM" "$PNM")"
