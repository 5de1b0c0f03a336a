#!/usr/bin/env bash
# The HTTP request assembler (net/http_parser.c over llhttp) with llhttp's SSE4.2 scanners and
# without, in process: bench_http_parse from two Release builds (SLUICE_SSE42=ON and OFF),
# alternated ROUNDS times, pinned to core 1. Prints each round and the medians' ratio.
#   bench/http_parse.sh [ROUNDS] [REQUESTS-PER-RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-5}
N=${2:-1000000}
for v in ON OFF; do
  d=build-parse-sse42-$v
  cmake -S . -B "$d" -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=ON \
    -DSLUICE_SSE42=$v >/dev/null
  cmake --build "$d" -j"$(nproc)" --target bench_http_parse >/dev/null
done
on=() off=()
for r in $(seq "$ROUNDS"); do
  a=$(taskset -c 1 build-parse-sse42-ON/bench_http_parse "$N" | awk '{print $5}')
  b=$(taskset -c 1 build-parse-sse42-OFF/bench_http_parse "$N" | awk '{print $5}')
  echo "  round $r: SSE4.2 $a ns  scalar $b ns"
  on+=("$a") off+=("$b")
done
m() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mon=$(m "${on[@]}") moff=$(m "${off[@]}")
echo "llhttp with SSE4.2  ns a request, runs: ${on[*]}  median $mon"
echo "llhttp scalar       ns a request, runs: ${off[*]}  median $moff  (SSE4.2 takes $(awk -v a="$mon" -v b="$moff" 'BEGIN {printf "%.2f", a / b}')x the time)"
