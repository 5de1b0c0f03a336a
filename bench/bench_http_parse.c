/* The HTTP request assembler's cost (net/http_parser.c over llhttp), in process: the benchmark's
 * authorised PUT, byte for byte as wrk sends bench/put.lua's (a 265-byte bearer token, a 200-byte
 * JSON body), fed, taken and forgotten N times a run. Prints the median ns a request of 7 runs.
 * bench/http_parse.sh builds it twice, with llhttp's SSE4.2 scanners (SLUICE_SSE42, the default
 * on x86-64) and without, and alternates the two: the measurement behind that build option.
 * Usage: bench_http_parse [requests per run]; run pinned, e.g. `taskset -c 1 bench_http_parse`. */
#include "net/http_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"

#define RUNS 7

/* wrk's request for bench/put.lua: its header order, a token of the length `sluice token create`
 * issues (the parser only scans it), the 200-byte body. */
static size_t build_request(char *out, size_t cap)
{
    char token[266], body[201];
    for (size_t i = 0; i < 265; i++)
        token[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i * 7 % 64];
    token[36] = token[200] = '.';
    token[265] = '\0';
    memset(body, 'x', 200);
    memcpy(body, "{\"task\":\"compress\",\"note\":\"", 27);
    memcpy(body + 198, "\"}", 2);
    body[200] = '\0';
    int n = snprintf(out, cap,
                     "PUT /channels/bench HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: 200\r\n\r\n%s",
                     token, body);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static double run(const char *req, size_t len, long n)
{
    sl__http_parser p;
    sl__http_parser_init(&p, 0, 0);
    size_t headers = 0;
    double t = bench_now_s();
    for (long i = 0; i < n; i++) {
        size_t used;
        if (sl__http_parser_feed(&p, req, len, &used) != SL__HTTP_REQUEST || used != len) {
            fprintf(stderr, "the request was not parsed whole\n");
            exit(1);
        }
        sl_http_request r;
        sl__http_parser_request(&p, &r);
        headers += r.nheaders;
        sl__http_parser_next(&p);
    }
    t = bench_now_s() - t;
    sl__http_parser_free(&p);
    if (headers != (size_t)n * 4) {
        fprintf(stderr, "expected 4 headers a request\n");
        exit(1);
    }
    return t / (double)n * 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char req[1024];
    size_t len = build_request(req, sizeof req);
    if (n <= 0 || len == 0)
        return 2;
    double v[RUNS];
    run(req, len, n / 10); /* warm up */
    for (int i = 0; i < RUNS; i++)
        v[i] = run(req, len, n);
    double med = bench_median(v, RUNS);
    printf("request %zu bytes  parse %.1f ns (median of %d runs of %ld; min %.1f max %.1f)\n", len,
           med, RUNS, n, v[0], v[RUNS - 1]);
    return 0;
}
