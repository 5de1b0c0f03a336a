/* The Centrifugo command parser's cost on a publisher's line, in process: the line `sluice bench
 * ws` sends for every publication (`{"publish":{"channel":"bench","data":{"t":..,"s":..}},"id":N}`)
 * parsed N times a run by the general parser (net/centrifuge.c: a jansson tree, then the data's raw
 * span) and by the publish fast path (net/centrifuge_fast.c: no tree), each command then cleared.
 * Prints the median ns a line of 7 alternating runs of each: the measurement behind the fast path
 * (docs/BENCHMARKS.md, the fan-out section of issue 13).
 * Usage: bench_cf_parse [lines per run]; run pinned, e.g. `taskset -c 1 bench_cf_parse`. */
#include "net/centrifuge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"

#define RUNS 7

static const char LINE[] =
    "{\"publish\":{\"channel\":\"bench\",\"data\":{\"t\":1765000000123456,\"s\":123456}},"
    "\"id\":123456}";

static double run(int fast, long n)
{
    sl__cf_command c;
    sl_status st;
    size_t len = sizeof LINE - 1;
    double t0 = bench_now_s();
    for (long i = 0; i < n; i++) {
        int r = fast ? sl__cf_parse_publish_fast(LINE, len, &c)
                     : sl__cf_parse_line(LINE, len, &c, 1, &st);
        if (r != (fast ? 1 : 0) || c.method != SL__CF_PUBLISH) {
            fprintf(stderr, "bench_cf_parse: the %s parser did not take the line\n",
                    fast ? "fast" : "general");
            exit(1);
        }
        sl__cf_command_clear(&c);
    }
    return (bench_now_s() - t0) / (double)n * 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_cf_parse [lines per run]\n");
        return 2;
    }
    double general[RUNS], fast[RUNS];
    run(0, n / 10 + 1); /* warm the allocator and the caches */
    run(1, n / 10 + 1);
    for (int i = 0; i < RUNS; i++) {
        general[i] = run(0, n);
        fast[i] = run(1, n);
    }
    double g = bench_median(general, RUNS), f = bench_median(fast, RUNS);
    printf("general parser (jansson tree): %.0f ns a line\n", g);
    printf("publish fast path:             %.0f ns a line (%.2fx the general parser's time)\n", f,
           f / g);
    return 0;
}
