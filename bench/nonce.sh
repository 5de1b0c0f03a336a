#!/usr/bin/env bash
# The one-node nonce store filling up (bench_nonce): the mean remember and the slowest ones, for
# this tree and for BASELINE (a commit, default 7cf42cd: the store before its table grew step by
# step), alternated ROUNDS times, pinned to core 1, with N nonces signed PER_SECOND a second
# (default: all in one second). The baseline's library is built in a scratch worktree and this
# tree's bench_nonce.c compiled against it (it calls the store as the baseline's header has it).
#   bench/nonce.sh [ROUNDS] [N] [PER_SECOND]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${1:-3}
N=${2:-2000000}
PER=${3:-$N}
BASELINE=${BASELINE:-7cf42cd}
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=ON >/dev/null
cmake --build build-bench -j"$(nproc)" --target bench_nonce >/dev/null
WT=build-nonce-base-$BASELINE
if [ ! -x "$WT/bench_nonce" ]; then
  rm -rf "$WT" && git worktree prune
  git worktree add --detach "$WT/src" "$BASELINE" >/dev/null 2>&1 || die "cannot check out $BASELINE"
  cmake -S "$WT/src" -B "$WT/build" -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF >/dev/null
  cmake --build "$WT/build" -j"$(nproc)" --target sluice >/dev/null
  # shellcheck disable=SC2046
  cc -O2 -std=c11 -D_GNU_SOURCE -I"$WT/src/include" -I"$WT/src/src" -Ibench bench/bench_nonce.c \
    "$WT/build/libsluice.a" -o "$WT/bench_nonce" \
    $(pkg-config --libs libuv jansson libcurl hiredis lmdb) -lssl -lcrypto -lm
fi
for r in $(seq "$ROUNDS"); do
  echo "  round $r baseline ($BASELINE): $(taskset -c 1 "$WT/bench_nonce" "$N" "$PER")"
  echo "  round $r this tree:          $(taskset -c 1 build-bench/bench_nonce "$N" "$PER")"
done
