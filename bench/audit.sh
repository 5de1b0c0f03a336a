#!/usr/bin/env bash
# GET /audit on a large audit log: how long one read takes when the log holds RECORDS records
# (default 200,000, about 270 bytes each, written by this script as a valid chain and continued by
# sluiced). Per build: the first read (nothing remembered yet), RUNS reads with nothing appended,
# and RUNS reads each after one more record was appended (POST /channels is audited). Every
# answer must say verified with the right count, or the script stops. Medians of curl's
# time_total, in ms. sluiced pinned to core 0, curl to core 1.
#   bench/audit.sh [RECORDS] [RUNS]
# Environment: BUILD (build directory, default build-bench; built when it has no sluiced);
# BASELINE (another build directory, e.g. of the commit before, measured in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RECORDS=${1:-200000}
RUNS=${2:-10}
BUILD=${BUILD:-build-bench}
PORT=18290
export SLUICE_JWT_SECRET=bench-secret-bench-secret-bench-secret-42

[ -x "$BUILD/sluiced" ] || build_release "$BUILD"
TMP=$(mktemp -d /tmp/sluice-audit-bench.XXXXXX)
PIDS=()
cleanup() { stop_pids; rm -rf "$TMP"; }
trap cleanup EXIT

# The log: a chain as the writer makes it (compact JSON, "seq" and "prev" first).
python3 - "$TMP/audit.log" "$RECORDS" <<'EOF' || die "cannot write the test log"
import hashlib, json, sys
path, n = sys.argv[1], int(sys.argv[2])
prev = "0" * 64
with open(path, "w") as f:
    for i in range(1, n + 1):
        line = json.dumps({"seq": i, "prev": prev, "ts": 1700000000.25 + i, "event": "authz.denied",
                           "principal": f"worker-{i % 977}", "operation": "channel.read",
                           "resource": f"jobs-{i % 31}", "source": "jwt",
                           "reason": "no grant for this channel", "method": "GET"},
                          separators=(",", ":"))
        f.write(line + "\n")
        prev = hashlib.sha256(line.encode()).hexdigest()
EOF

# get BIN TOKEN WANT: one GET /audit; prints its time in ms; dies unless verified with WANT checked.
get() {
  local out ms
  ms=$(taskset -c 1 curl -s -o "$TMP/answer" -w '%{time_total}' --max-time 600 \
    -H "Authorization: Bearer $2" "http://127.0.0.1:$PORT/audit?limit=10") ||
    die "$1: GET /audit failed"
  out=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); print(a.get("verified"), a.get("checked"))' \
    "$TMP/answer") || die "$1: GET /audit answered no JSON: $(head -c 300 "$TMP/answer")"
  [ "$out" = "True $3" ] || die "$1: GET /audit did not verify $3 records: $(head -c 300 "$TMP/answer")"
  awk -v s="$ms" 'BEGIN {printf "%.1f\n", s * 1000}'
}

# measure BIN: "first nothing-appended appended" medians (ms) for the build in BIN.
measure() {
  local bin=$1 tok n i t
  cp "$TMP/audit.log" "$TMP/run.log"
  taskset -c 0 "$bin/sluiced" --engine memory --listen "127.0.0.1:$PORT" --audit-log "$TMP/run.log" \
    2>>"$TMP/sluiced.err" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$PORT/healthz" "sluiced (see $TMP/sluiced.err)"
  tok=$("$bin/sluice" token create --sub bench --role admin --ttl 1h) || die "cannot mint a token"
  n=$RECORDS
  local first same=() grown=()
  first=$(get "$bin" "$tok" "$n")
  for i in $(seq "$RUNS"); do same+=("$(get "$bin" "$tok" "$n")"); done
  for i in $(seq "$RUNS"); do
    t=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" \
      -H 'Content-Type: application/json' -d "{\"id\":\"c$i\"}" "http://127.0.0.1:$PORT/channels")
    [ "$t" = 201 ] || die "$bin: POST /channels answered $t"
    n=$((n + 1))
    grown+=("$(get "$bin" "$tok" "$n")")
  done
  stop_pids
  printf '%s %s %s\n' "$first" "$(printf '%s\n' "${same[@]}" | median)" \
    "$(printf '%s\n' "${grown[@]}" | median)"
}

echo "log: $RECORDS records, $(stat -c %s "$TMP/audit.log") bytes; medians of $RUNS reads (ms)"
printf '%-40s %12s %16s %16s\n' build "first read" "nothing new" "1 record new"
for b in ${BASELINE:+"$BASELINE"} "$BUILD"; do
  read -r f s g <<<"$(measure "$b")"
  printf '%-40s %12s %16s %16s\n' "$b" "$f" "$s" "$g"
done
