/* The structured-field parser's cost on what every signed request brings (security/sfv.c): the
 * Signature-Input and Signature dictionaries of an hmac-sha256 request as bench_sign signs them,
 * each parsed N times the way verify() in security/httpsig.c parses them (sl__sfv_parse_dict_in
 * over stack scratch of the same sizes, then _clear). Prints the median ns per parse of each
 * header over RUNS runs, CPU time of this thread (steadier than wall time on a shared machine).
 * Usage: bench_sfv [N] [RUNS]; run pinned, e.g. `taskset -c 1`. */
#include "security/sfv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"

#define MAX_RUNS 31

static const char input[] =
    "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=1796552572;keyid=\"bench-hmac\";"
    "alg=\"hmac-sha256\";nonce=\"5237cbc11f2451b38fce40c745d37fa4\"";
static const char signature[] = /* a SHA-256-sized MAC */
    "sig1=:GzLCjLOMBUgOzMG9YP+XAptXoFyWcYuW2tfp2EiU9Uk=:";

/* Kept out of line so a profile names it; the sink keeps the parse from being optimised away. */
__attribute__((noinline)) static long parse_all(const char *s, size_t len, long n, size_t cap)
{
    long sink = 0;
    max_align_t mem[4096 / sizeof(max_align_t)];
    for (long i = 0; i < n; i++) {
        sl__sfv_dict d;
        if (sl__sfv_parse_dict_in(s, len, &d, mem, cap) < 0)
            return -1;
        sink += (long)d.n + (long)d.m[0].item.nparams;
        sl__sfv_dict_clear(&d);
    }
    return sink;
}

/* The median CPU ns per parse of runs runs of n parses. */
static double measure(const char *name, const char *s, size_t cap, long n, int runs)
{
    double cpu[MAX_RUNS];
    size_t len = strlen(s);
    for (int run = 0; run < runs; run++) {
        double c0 = bench_clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (parse_all(s, len, n, cap) < 0) {
            fprintf(stderr, "bench_sfv: %s refused\n", name);
            exit(1);
        }
        cpu[run] = (bench_clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) / (double)n * 1e9;
    }
    printf("%-16s runs (CPU ns/parse):", name);
    for (int run = 0; run < runs; run++)
        printf(" %.1f", cpu[run]);
    double med = bench_median(cpu, runs);
    printf("\n%-16s median %.1f ns per parse (%zu bytes)\n", name, med, len);
    return med;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (n <= 0 || runs <= 0 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_sfv [N] [RUNS (1..%d)]\n", MAX_RUNS);
        return 2;
    }
    /* verify()'s scratch: 4096 bytes for Signature-Input, 1024 for Signature */
    double a = measure("Signature-Input", input, 4096, n, runs);
    double b = measure("Signature", signature, 1024, n, runs);
    printf("both headers: %.1f ns\n", a + b);
    return 0;
}
