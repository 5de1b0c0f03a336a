# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): fail loudly, run wrk and refuse its figure
# when any request failed, wait for a server, take medians. A benchmark that could not measure
# something says what and exits non-zero; it never prints a 0 or drops a row in its place.

# die MESSAGE...: the benchmark cannot go on.
die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

# median < numbers, one a line: the median (the mean of the middle two for an even count).
median() {
  sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit 1; print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}

# wait_http URL [WHAT]: waits up to 30 s for URL to answer at all (any HTTP status).
wait_http() {
  local _
  for _ in $(seq 300); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  die "${2:-$1} did not come up within 30 s"
}

# cpu_ticks PID: the user + system clock ticks PID has used so far (0 once it is gone).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# steal_ticks: the ticks the hypervisor has taken from this machine's CPUs so far.
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }

# nginx_worker PID: the worker process of the nginx master PID (the process that serves).
nginx_worker() { pgrep -P "$1" | head -1; }

# wrk_run OUT WRK-ARGS...: runs wrk (pinned to core 1, one thread, $CONNS connections, $SECS s)
# with its output in OUT, and says on stderr how busy everything was over the middle of the run:
# the process WATCH (the server, when the caller names it), wrk itself, and the hypervisor's
# steal. A server below ~95 % while wrk is at ~100 % was not the bottleneck: the figure is the
# load tool's. Fails as wrk fails.
wrk_run() {
  local out=$1 wp s0 s1 w0 w1 st0 st1 t0 t1 rc=0
  shift
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "$@" >"$out" 2>&1 &
  wp=$!
  if [ "$SECS" -ge 3 ]; then
    # A Lua script may prepare for a while before the load starts (signed_put.lua reads its
    # pre-signed requests): with a server to watch, the window opens once it is busy.
    local k a b
    for k in $(seq 1800); do
      [ -n "${WATCH:-}" ] || break
      a=$(cpu_ticks "$WATCH"); sleep 0.1; b=$(cpu_ticks "$WATCH")
      [ $((b - a)) -lt 5 ] || break
    done
    sleep 1
    s0=$(cpu_ticks "${WATCH:-0}"); w0=$(cpu_ticks "$wp"); st0=$(steal_ticks); t0=$(date +%s.%N)
    sleep $((SECS - 2))
    s1=$(cpu_ticks "${WATCH:-0}"); w1=$(cpu_ticks "$wp"); st1=$(steal_ticks); t1=$(date +%s.%N)
  fi
  wait "$wp" || rc=$?
  if [ -n "${t1:-}" ]; then
    local hz rate
    hz=$(getconf CLK_TCK)
    rate=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    awk -v l="$LABEL" -v hz="$hz" -v r="${rate:-0}" -v s="$((s1 - s0))" -v w="$((w1 - w0))" \
      -v st="$((st1 - st0))" -v a="$t0" -v b="$t1" -v watch="${WATCH:-}" -v ncpu="$(nproc)" \
      -v cost="${COST_OUT:-}" 'BEGIN {
        t = b - a
        printf "    %s: ", l
        if (watch != "") {
          printf "server %.0f %% CPU", 100 * s / hz / t
          if (r > 0) {
            printf " (%.1f us a request)", 1e6 * s / hz / t / r
            # COST_OUT: a file the figure is added to (for paired comparisons)
            if (cost != "") printf "%.3f ", 1e6 * s / hz / t / r >> cost
          }
          printf ", "
        }
        printf "wrk %.0f %% CPU, steal %.1f %% of the machine\n", 100 * w / hz / t, 100 * st / hz / t / ncpu
      }' >&2
  fi
  return "$rc"
}

# wrk_rate LABEL WRK-ARGS...: runs wrk (wrk_run) and prints its requests/s. Dies, showing wrk's
# output, when wrk fails, prints no rate, or counts any socket error or any response >= 400:
# such a figure would measure errors, not the server.
wrk_rate() {
  local label=$1 out rate bad
  shift
  out=$(mktemp)
  if ! LABEL=$label wrk_run "$out" "$@"; then
    die "$label: wrk failed:"$'\n'"$(cat "$out"; rm -f "$out")"
  fi
  rate=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  [ -n "$rate" ] || die "$label: wrk printed no Requests/sec:"$'\n'"$(cat "$out"; rm -f "$out")"
  bad=$(awk '/Socket errors:/ || /Non-2xx or 3xx responses:/' "$out")
  [ -z "$bad" ] || die "$label: wrk saw failed requests, so $rate req/s is not a measurement:"$'\n'"$(cat "$out"; rm -f "$out")"
  rm -f "$out"
  printf '%s\n' "$rate"
}

# wrk_lat LABEL WRK-ARGS...: "rate p50 p99" (latencies in ms) of one wrk --latency run (wrk_run),
# refused as wrk_rate's.
wrk_lat() {
  local label=$1 out res
  shift
  out=$(mktemp)
  LABEL=$label wrk_run "$out" --latency "$@" || die "$label: wrk failed:"$'\n'"$(cat "$out"; rm -f "$out")"
  if grep -qE 'Socket errors:|Non-2xx or 3xx responses:' "$out"; then
    die "$label: wrk saw failed requests:"$'\n'"$(cat "$out"; rm -f "$out")"
  fi
  res=$(awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
                        if (v ~ /s$/) return v * 1000; return v }
       /^Requests\/sec:/ {r = $2} $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
       END { if (r == "") exit 1; printf "%s %.2f %.2f\n", r, p50, p99 }' "$out") ||
    die "$label: no figure in wrk's output:"$'\n'"$(cat "$out"; rm -f "$out")"
  rm -f "$out"
  printf '%s\n' "$res"
}

# ratio A B: A/B to two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# paired "A1 A2 ..." "B1 B2 ...": the median of the rounds' own ratios Ai / Bi. On a host whose
# speed drifts between rounds this is steadier than the ratio of the two medians, which can pair
# a fast round of one server with a slow round of the other.
paired() {
  local -a a b
  read -r -a a <<<"$1"
  read -r -a b <<<"$2"
  if [ "${#a[@]}" -ne "${#b[@]}" ] || [ "${#a[@]}" -eq 0 ]; then
    echo "n/a"
    return
  fi
  for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN {print x / y}'; done |
    median | awk '{printf "%.2f", $1}'
}

# build_release DIR: a Release build of sluiced and the sluice CLI in DIR (tests off).
build_release() {
  cmake -S . -B "$1" -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF >/dev/null
  cmake --build "$1" -j"$(nproc)" --target sluiced sluice_cli >/dev/null
}

# stop_pids: ends every process in the array PIDS (started by the caller) and empties it.
stop_pids() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

# json_num FILE KEY.PATH: one number of a JSON report (e.g. `sluice bench ws --json`); fails,
# saying why, when the report is not JSON or lacks the number. Floats of 100 or more print as
# integers, smaller ones with one decimal.
json_num() {
  /usr/bin/python3 -c 'import json,sys
try:
    v=json.load(open(sys.argv[1]))
    for k in sys.argv[2].split("."): v=v[k]
    assert isinstance(v, (int, float)) and not isinstance(v, bool)
except Exception as e:
    sys.exit("%s: the report has no number %s (%s: %s)" % (sys.argv[3], sys.argv[2], type(e).__name__, e))
print(round(v) if isinstance(v, float) and abs(v) >= 100 else round(v, 1) if isinstance(v, float) else v)' "$1" "$2" "${0##*/}"
}
