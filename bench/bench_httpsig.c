/* The server's cost of one hmac-sha256 signed request, in process: N requests are signed
 * beforehand as bench_sign signs them (@method, @target-uri, content-digest, created, keyid, alg,
 * a nonce each; the same 200-byte body as bench/put.lua), laid out as the HTTP transport hands
 * them over (sl_http_request with wrk's headers, viewed through sl__authn_view), and then all
 * verified through the signature authenticator sluiced runs (sl__httpsig_authenticator_new over
 * the memory nonce store: Content-Digest, the signature, the nonce insert, the identity). Each run
 * starts a new nonce store, so every nonce is fresh. Prints the median ns per verification of
 * RUNS runs, wall time and this thread's CPU time (the steadier of the two on a shared machine).
 * The hardware counters are not always there (virtual machines); instructions per verification, the
 * figure that does not move with the neighbours' load, come from callgrind, which counts only
 * inside verify_all: valgrind --tool=callgrind --toggle-collect=verify_all
 * build-bench/bench_httpsig 200000 1 (Ir of the run / N). Where perf has counters (or to profile
 * with perf record), it can count only the verifying too: with PERF_CTL_FD set to the fd of perf's
 * --control fifo, the runs enable and disable the events around themselves (perf stat -D -1
 * --control fd:N ...). Usage: bench_httpsig [N] [RUNS]; run pinned, e.g. `taskset -c 1`. */
#include <sluice/httpsig.h>

#include "net/http.h"
#include "security/httpsig.h"
#include "server/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"

#define MAX_RUNS 31

static const char secret[] = "bench-hmac-secret-0123456789abcdef-0123456789";
static const char authority[] = "127.0.0.1:18080";

typedef struct req {
    sl_http_header h[6];
    char *digest, *input, *sig;
} req;

static void on_auth(void *ud, int status, const sl_identity *who, const char *why)
{
    long *ok = ud;
    if (status == SL_OK && who != NULL)
        ++*ok;
    else if (*ok >= 0) {
        fprintf(stderr, "bench_httpsig: refused: %s\n", why ? why : "?");
        *ok = -1 - *ok; /* remembered, and no more messages */
    }
}

static sl_http_header hdr(const char *name, const char *value)
{
    return (sl_http_header){name, strlen(name), value, strlen(value)};
}

/* Tells perf (PERF_CTL_FD, its --control fifo) to start or stop counting. */
static void perf_ctl(const char *cmd)
{
    const char *fd = getenv("PERF_CTL_FD");
    if (fd != NULL && *fd)
        (void)!write(atoi(fd), cmd, strlen(cmd));
}

/* Kept out of line: callgrind's --toggle-collect counts what runs inside it. */
__attribute__((noinline)) long verify_all(sl_authenticator *a, const req *reqs, long n,
                                          const char *body, size_t blen, double now)
{
    long ok = 0;
    for (long i = 0; i < n; i++) {
        sl_http_request hr;
        memset(&hr, 0, sizeof hr);
        hr.method = "PUT";
        hr.target = hr.path = "/channels/bench";
        hr.target_len = hr.path_len = strlen(hr.path);
        hr.query = "";
        hr.headers = reqs[i].h;
        hr.nheaders = sizeof reqs[i].h / sizeof *reqs[i].h;
        hr.body = body;
        hr.body_len = blen;
        sl_authn_request v;
        sl__authn_view(&hr, &v);
        a->authenticate_request(a, &v, now, on_auth, &ok);
    }
    return ok;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (n <= 0 || runs <= 0 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_httpsig [N] [RUNS (1..%d)]\n", MAX_RUNS);
        return 2;
    }
    /* bench/put.lua's body: its JSON cut to 198 bytes and closed with "} */
    static const char head[] = "{\"task\":\"compress\",\"file\":\"video-0000000001.mp4\","
                               "\"size\":1048576,\"owner\":\"worker-1\","
                               "\"tags\":[\"bench\",\"sluice\",\"json\"],\"note\":\"";
    char body[201];
    memcpy(body, head, sizeof head - 1);
    memset(body + sizeof head - 1, 'x', 198 - (sizeof head - 1));
    memcpy(body + 198, "\"}", 3);
    size_t blen = strlen(body);

    sl_httpsig_keyring *kr;
    sl_status st;
    sl_status_clear(&st);
    const char *chans[] = {"bench", "jobs.*"};
    sl_httpsig_key_opts ko = {.keyid = "bench-hmac",
                              .alg = SL_HTTPSIG_HMAC_SHA256,
                              .material = secret,
                              .material_len = strlen(secret),
                              .principal = "bench-signer",
                              .role = SL_ROLE_WRITE,
                              .scoped = 1,
                              .channels = chans,
                              .nchannels = 2};
    if (sl_httpsig_keyring_new(&kr) != SL_OK || sl_httpsig_keyring_add(kr, &ko, &st) != SL_OK) {
        fprintf(stderr, "bench_httpsig: keyring: %s\n", st.message);
        return 1;
    }
    sl_httpsig_signer s = {
        .keyid = ko.keyid, .alg = SL_HTTPSIG_HMAC_SHA256, .key = secret, .key_len = strlen(secret)};
    double now = (double)time(NULL);
    req *reqs = calloc((size_t)n, sizeof *reqs);
    if (reqs == NULL)
        return 1;
    for (long i = 0; i < n; i++) {
        sl_httpsig_headers h;
        if (sl_httpsig_sign(&s, "PUT", "http", authority, "/channels/bench", NULL, body, blen, now,
                            &h, &st) != SL_OK) {
            fprintf(stderr, "bench_httpsig: sign: %s\n", st.message);
            return 1;
        }
        req *r = &reqs[i];
        r->digest = h.content_digest;
        r->input = h.signature_input;
        r->sig = h.signature;
        /* what wrk sends (bench/signed_put.lua), in its order */
        r->h[0] = hdr("Host", authority);
        r->h[1] = hdr("Content-Type", "application/json");
        r->h[2] = hdr("Content-Digest", r->digest);
        r->h[3] = hdr("Signature-Input", r->input);
        r->h[4] = hdr("Signature", r->sig);
        r->h[5] = hdr("Content-Length", "200");
    }
    printf("%ld hmac-sha256 signed PUTs (%zu-byte body), e.g.\n  Signature-Input: %s\n", n, blen,
           reqs[0].input);

    /* wall time, and the CPU time of this thread (what a busy machine's other work takes from
     * the wall time is not in it) */
    double t[MAX_RUNS], cpu[MAX_RUNS];
    for (int run = 0; run < runs; run++) {
        sl__nonce_store *ns;
        sl_authenticator *a;
        /* bench/signed.sh's server: signature_max_nonces 20000000, signature_max_skew 300 */
        if (sl__nonce_memory_new(20000000, &ns) != SL_OK ||
            sl__httpsig_authenticator_new(kr, ns, 300, &a) != SL_OK) {
            fprintf(stderr, "bench_httpsig: out of memory\n");
            return 1;
        }
        perf_ctl("enable\n");
        double t0 = bench_clock_s(CLOCK_MONOTONIC), c0 = bench_clock_s(CLOCK_THREAD_CPUTIME_ID);
        long ok = verify_all(a, reqs, n, body, blen, now);
        t[run] = (bench_clock_s(CLOCK_MONOTONIC) - t0) / (double)n * 1e9;
        cpu[run] = (bench_clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) / (double)n * 1e9;
        perf_ctl("disable\n");
        a->free(a);
        ns->free(ns);
        if (ok != n) {
            fprintf(stderr, "bench_httpsig: %ld of %ld verified\n", ok < 0 ? -1 - ok : ok, n);
            return 1;
        }
    }
    printf("runs (wall ns/verification):");
    for (int run = 0; run < runs; run++)
        printf(" %.0f", t[run]);
    printf("\nruns (CPU ns/verification): ");
    for (int run = 0; run < runs; run++)
        printf(" %.0f", cpu[run]);
    printf("\nmedian %.0f ns wall, %.0f ns CPU per verification (authenticator: digest, "
           "signature, nonce insert)\n",
           bench_median(t, runs), bench_median(cpu, runs));

    for (long i = 0; i < n; i++) {
        free(reqs[i].digest);
        free(reqs[i].input);
        free(reqs[i].sig);
    }
    free(reqs);
    sl_httpsig_keyring_free(kr);
    return 0;
}
