#!/usr/bin/env bash
# The authorise contract's cost (issue 12, docs/POLICY.md): authorised PUT req/s with the built-in
# ACL regime against the HTTP policy regime with a warm cache (the policy's TTL 60 s: after the
# first request every decision is a cache hit) and a cold one (TTL 0: every request asks the
# policy service), in the same run, rounds interleaved so each policy row has its ACL baseline
# next to it. sluiced on core 0, wrk and the policy service (Python, tests/unit/policy_server.py) on
# core 1. Then the cache's decisions/s against the ACL regime's (bench/bench_authz_cache.c).
# Prints every round, the medians of ROUNDS runs and the ratios to the ACL regime (the target: the
# warm policy regime costs at most 5 % of the ACL's throughput). Exits non-zero, saying why, when
# anything could not be measured (a failed request, no figure, a server that did not start, a warm
# run in which the policy service was asked more than a handful of times).
#   bench/policy.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${CONNS:-50}
[ -n "${SLUICE_BENCH_NO_DEPS:-}" ] || scripts/deps --bench
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=ON >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
BIN=build-bench
PORT=18080
PPORT=18181
TMP=$(mktemp -d /tmp/sluice-policy-bench.XXXXXX)
export SLUICE_BENCH_TOKEN
SLUICE_BENCH_TOKEN=$($BIN/sluice token create --sub bench --role admin --ttl 2h)
PIDS=()
cleanup() { stop_pids; rm -rf "$TMP"; }
trap cleanup EXIT

# serve MODE TTL: sluiced (memory engine) under MODE (acl | policy) with the policy service
# answering TTL; the topic "bench" created. Leaves both running (PIDS).
serve() {
  local mode=$1 ttl=$2
  taskset -c 1 /usr/bin/python3 tests/unit/policy_server.py "$PPORT" "$ttl" 2>"$TMP/policy.err" &
  PIDS+=($!)
  cat >"$TMP/sluice.conf" <<CONF
authz = $mode
admin = bench
authz_policy_url = http://127.0.0.1:$PPORT/v1/data/sluice/allow
authz_policy_timeout = 5
authz_policy_concurrency = 64
authz_cache_ttl_max = 60
[channel bench]
kind = topic
visibility = public
retention_max_count = 100000
CONF
  taskset -c 0 $BIN/sluiced --listen 127.0.0.1:$PORT --engine memory --config "$TMP/sluice.conf" \
    2>"$TMP/sluiced.err" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$PORT/healthz" "sluiced (see $TMP/sluiced.err)"
  wait_http "http://127.0.0.1:$PPORT/" "the policy service (see $TMP/policy.err)"
}

# asked: stops both and sets ASKED to how many questions the policy service answered (it prints
# the count when stopped). Not called as $(asked): a subshell cannot wait for this shell's
# children, and would read the count before the service wrote it.
asked() {
  stop_pids
  ASKED=$(awk '/questions/ {print $2}' "$TMP/policy.err")
}

put() { wrk_rate "$1" -s bench/put.lua "http://127.0.0.1:$PORT"; }

declare -a A W C
for i in $(seq "$ROUNDS"); do
  serve acl 60
  a=$(put "round $i acl")
  asked
  serve policy 60
  w=$(put "round $i policy, warm cache")
  asked
  n=$ASKED
  # One question per distinct (identity, operation, resource) within the TTL: here one, plus
  # the few a first burst of concurrent requests may ask before the answer is cached.
  [ "${n:-0}" -ge 1 ] && [ "$n" -le "$CONNS" ] ||
    die "round $i: the warm run asked the policy service $n times: the cache did not work"
  serve policy 0
  c=$(put "round $i policy, cold (ttl 0)")
  asked
  n=$ASKED
  [ "${n:-0}" -ge 1 ] || die "round $i: the cold run never asked the policy service"
  echo "  round $i: acl $a  policy warm $w  policy cold $c ($n questions)"
  A+=("$a"); W+=("$w"); C+=("$c")
done
am=$(printf '%s\n' "${A[@]}" | median)
wm=$(printf '%s\n' "${W[@]}" | median)
cm=$(printf '%s\n' "${C[@]}" | median)
echo "acl regime           authorised PUT req/s runs: ${A[*]}  median $am"
echo "policy, warm cache   authorised PUT req/s runs: ${W[*]}  median $wm  ratio $(ratio "$wm" "$am")"
echo "policy, cold (ttl 0) authorised PUT req/s runs: ${C[*]}  median $cm  ratio $(ratio "$cm" "$am")"
taskset -c 0 $BIN/bench_authz_cache
