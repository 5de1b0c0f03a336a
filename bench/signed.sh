#!/usr/bin/env bash
# Signed requests (issue 11 section 4): PUT /channels/bench signed with RFC 9421 (hmac-sha256 and
# ed25519, each request with its own nonce, Content-Digest over the body) against the same PUT
# with a bearer JWT and nginx `return 200`, under the same wrk settings, in the same run (server on
# core 0, wrk on core 1), ROUNDS rounds, medians and ratios. wrk cannot sign: each signed round
# sends requests pre-signed by bench_sign, every round's before the first round starts (so no
# signing, and no writing of hundreds of MB, falls between the rows a ratio compares), dated as a
# client signing SIGNED_PER_SECOND requests a second would date them (request i created
# i / SIGNED_PER_SECOND seconds after the first; ED_PER_SECOND for ed25519, whose rows run at a
# tenth of the rate). The server's replay window, signature_max_skew, covers the whole run (an
# hour; a run is far shorter, so no nonce is forgotten during it), and the in-memory nonce store
# holds up to 20 million nonces, so nothing is refused for lack of room. Each round runs PAIRS
# pairs of a bearer and an hmac row back to back, in turn bearer first and hmac first, so that the
# host's drifts (on the shared test machines the cost of a request moves by half for seconds at a
# time) fall on both alike; the median of the pairs' hmac / bearer ratios is printed beside the
# ratio of the medians, and so is the median of the pairs' ratios of the server's CPU time a
# request. Dies, saying why, when anything could not be measured (bench/lib.sh's wrk_rate: any request refused, e.g. a replay because the pre-signed
# list ran out: raise SIGNED_PER_SECOND).
#   [SLUICED=other/sluiced] bench/signed.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${CONNS:-50}
PAIRS=${PAIRS:-3} # bearer and hmac rows, back to back, in each round
SIGNED_PER_SECOND=${SIGNED_PER_SECOND:-150000} # pre-signed hmac requests per second of a round
ED_PER_SECOND=${ED_PER_SECOND:-20000}           # and ed25519 ones
SKEW=${SKEW:-3600} # the replay window: the pre-signing and every round fit in it
[ -n "${SLUICE_BENCH_NO_DEPS:-}" ] || scripts/deps --bench
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=ON >/dev/null
cmake --build build-bench -j"$(nproc)" --target sluiced sluice_cli bench_sign >/dev/null
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
BIN=build-bench
SLUICED=${SLUICED:-$BIN/sluiced} # another build of the server to compare (the tools stay this tree's)
PORT=18080
# In memory where there is a tmpfs: each round writes two files of presigned requests (~190 MB
# each at the default rate), and on a disk their write-back would run during later rounds.
TMP=$(mktemp -d /dev/shm/sluice-signed-bench.XXXXXX 2>/dev/null || mktemp -d /tmp/sluice-signed-bench.XXXXXX)
TOKEN=$($BIN/sluice token create --sub bench --role admin --ttl 2h)
export SLUICE_BENCH_TOKEN=$TOKEN
cleanup() { kill "${SPID:-}" "${NPID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

# The keys: an hmac secret and an ed25519 key pair, both writers on every channel.
printf 'bench-signing-secret-0123456789abcdef-0123456789' > "$TMP/hmac.secret"
openssl genpkey -algorithm ed25519 -out "$TMP/ed.key" 2>/dev/null || die "openssl cannot make an ed25519 key"
openssl pkey -in "$TMP/ed.key" -pubout -out "$TMP/ed.pub" 2>/dev/null || die "openssl pkey failed"
cat > "$TMP/keys.json" <<JSON
{"keys": [
 {"keyid": "bench-hmac", "alg": "hmac-sha256", "key": "file:$TMP/hmac.secret", "principal": "bench", "role": "write"},
 {"keyid": "bench-ed", "alg": "ed25519", "key": "file:$TMP/ed.pub", "principal": "bench", "role": "write"}
]}
JSON
# The body put.lua and signed_put.lua send.
printf '%s' '{"task":"compress","file":"video-0000000001.mp4","size":1048576,"owner":"worker-1","tags":["bench","sluice","json"],"note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}' > "$TMP/body.json"
[ "$(wc -c < "$TMP/body.json")" = 200 ] || die "the body is not 200 bytes"

taskset -c 0 "$SLUICED" --listen 127.0.0.1:$PORT ${SLUICE_ARGS:---engine memory} \
  --signature-keys "$TMP/keys.json" --config <(printf 'signature_max_skew = %s\nsignature_max_nonces = 20000000\n' "$SKEW") \
  2>/tmp/sluice-bench.err & SPID=$!
taskset -c 0 nginx -c "$PWD/bench/nginx.conf" -p /tmp & NPID=$!
wait_http "http://127.0.0.1:$PORT/healthz" "sluiced (see /tmp/sluice-bench.err)"
wait_http "http://127.0.0.1:18081/" "nginx (see /tmp/sluice-bench-nginx.err)"
curl -sf -XPOST localhost:$PORT/channels -H "Authorization: Bearer $TOKEN" \
  -d '{"id":"bench","kind":"topic","retention_max_count":100000}' >/dev/null ||
  die "cannot create the topic 'bench'"
export SLUICE_SIGNED_HOST="127.0.0.1:$PORT"

# presign ALG KEYID KEYFILE PER_SECOND OUT: one round's list (on core 1, like wrk).
presign() {
  taskset -c 1 $BIN/bench_sign "$1" "$2" "$3" "127.0.0.1:$PORT" /channels/bench "$TMP/body.json" \
    $(($4 * SECS)) "$4" > "$5" || die "bench_sign $1 failed"
}
echo "pre-signing $ROUNDS rounds' requests (replay window $SKEW s)" >&2
for i in $(seq "$ROUNDS"); do
  for j in $(seq "$PAIRS"); do
    presign hmac-sha256 bench-hmac "$TMP/hmac.secret" "$SIGNED_PER_SECOND" "$TMP/hmac.$i.$j.tsv"
  done
  presign ed25519 bench-ed "$TMP/ed.key" "$ED_PER_SECOND" "$TMP/ed.$i.tsv"
done
# The server's CPU time a request in each bearer and hmac row (bench/lib.sh's wrk_run, COST_OUT).
bearer() {
  COST_OUT=$TMP/cost.b WATCH=$SPID wrk_rate "round $i.$j sluiced bearer-JWT PUT" -s bench/put.lua \
    "http://127.0.0.1:$PORT"
}
hmac() {
  COST_OUT=$TMP/cost.h SLUICE_SIGNED_FILE="$TMP/hmac.$i.$j.tsv" WATCH=$SPID \
    wrk_rate "round $i.$j sluiced hmac-sha256 signed PUT" -s bench/signed_put.lua "http://127.0.0.1:$PORT"
}

declare -a N B Q H E
for i in $(seq "$ROUNDS"); do
  n=$(WATCH=$(nginx_worker "$NPID") wrk_rate "round $i nginx" "http://127.0.0.1:18081/")
  b= h=
  for j in $(seq "$PAIRS"); do
    if [ $(((i * PAIRS + j) % 2)) = 1 ]; then # in turn: bearer first, then hmac first
      b1=$(bearer)
      h1=$(hmac)
    else
      h1=$(hmac)
      b1=$(bearer)
    fi
    B+=("$b1"); H+=("$h1"); b="$b $b1" h="$h $h1"
  done
  q=$(WATCH=$SPID wrk_rate "round $i sluiced bearer-JWT PUT (Lua request())" -s bench/put_each.lua "http://127.0.0.1:$PORT")
  e=$(SLUICE_SIGNED_FILE="$TMP/ed.$i.tsv" WATCH=$SPID \
    wrk_rate "round $i sluiced ed25519 signed PUT" -s bench/signed_put.lua "http://127.0.0.1:$PORT")
  echo "  round $i: nginx $n  bearer PUT$b (through request(): $q)  hmac PUT$h  ed25519 PUT $e"
  N+=("$n"); Q+=("$q"); E+=("$e")
done
nm=$(printf '%s\n' "${N[@]}" | median)
bm=$(printf '%s\n' "${B[@]}" | median)
qm=$(printf '%s\n' "${Q[@]}" | median)
hm=$(printf '%s\n' "${H[@]}" | median)
em=$(printf '%s\n' "${E[@]}" | median)
echo "nginx return 200           req/s runs: ${N[*]}  median $nm"
echo "sluiced bearer-JWT PUT     req/s runs: ${B[*]}  median $bm  ratio to nginx $(ratio "$bm" "$nm")"
echo "sluiced bearer PUT, request() req/s runs: ${Q[*]}  median $qm  ratio to bearer $(ratio "$qm" "$bm")"
echo "sluiced hmac-sha256 PUT    req/s runs: ${H[*]}  median $hm  ratio to bearer $(ratio "$hm" "$bm")  to bearer through request() $(ratio "$hm" "$qm")  to nginx $(ratio "$hm" "$nm")"
echo "  hmac-sha256 PUT, the median of the ${#H[@]} pairs' ratios to bearer: $(paired "${H[*]}" "${B[*]}")"
echo "  and by the server's CPU time a request (bearer's ÷ hmac's, the median of the pairs): $(paired "$(cat "$TMP/cost.b" 2>/dev/null)" "$(cat "$TMP/cost.h" 2>/dev/null)")"
echo "sluiced ed25519 PUT        req/s runs: ${E[*]}  median $em  ratio to bearer $(ratio "$em" "$bm")  to nginx $(ratio "$em" "$nm")"
