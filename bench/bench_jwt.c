/* HS256 verification cost: sluice's sl_jwt_verify against libjwt 1.10's jwt_decode (then jwt_free)
 * on the same token in the same process, each a fresh verification (no cache). Also times jansson
 * parsing the token's payload alone, the measurement behind sluice's own claim parser
 * (docs/JWT.md). Prints the median ns/op of 7 runs for each and the ratio.
 * Usage: bench_jwt [iterations per run]; run pinned, e.g. `taskset -c 1 bench_jwt`. */
#include <sluice/jwt.h>

#include <jansson.h>
#include <jwt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"

#define RUNS 7

static const char secret[] = "bench-secret-0123456789abcdef-0123456789";

/* What `sluice token create` issues: sub, role, a channel scope, iat, exp and a jti. */
static const char payload_json[] =
    "{\"sub\":\"svc-orders\",\"role\":\"write\",\"channels\":[\"orders.*\",\"jobs\"],"
    "\"iat\":1700000000,\"exp\":4102444800,\"jti\":\"0123456789abcdef0123456789abcdef\"}";

static double run_sluice(sl_jwt_keyring *kr, const char *tok, size_t len, long n)
{
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    long ok = 0;
    double t = bench_now_s();
    for (long i = 0; i < n; i++) {
        sl_identity id;
        sl_identity_init(&id);
        ok += sl_jwt_verify(kr, tok, len, &o, 1700000100.0, &id, NULL) == SL_OK;
        sl_identity_clear(&id);
    }
    t = bench_now_s() - t;
    if (ok != n)
        fprintf(stderr, "sluice rejected the token\n"), exit(1);
    return t / (double)n * 1e9;
}

static double run_libjwt(const char *tok, long n)
{
    long ok = 0;
    double t = bench_now_s();
    for (long i = 0; i < n; i++) {
        jwt_t *j = NULL;
        ok += jwt_decode(&j, tok, (const unsigned char *)secret, (int)strlen(secret)) == 0;
        jwt_free(j);
    }
    t = bench_now_s() - t;
    if (ok != n)
        fprintf(stderr, "libjwt rejected the token\n"), exit(1);
    return t / (double)n * 1e9;
}

static double run_jansson(long n)
{
    long ok = 0;
    size_t len = strlen(payload_json);
    double t = bench_now_s();
    for (long i = 0; i < n; i++) {
        json_t *j = json_loadb(payload_json, len, JSON_REJECT_DUPLICATES, NULL);
        ok += j != NULL;
        json_decref(j);
    }
    t = bench_now_s() - t;
    if (ok != n)
        fprintf(stderr, "jansson rejected the payload\n"), exit(1);
    return t / (double)n * 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0)
        n = 200000;

    sl_jwt_keyring *kr;
    if (sl_jwt_keyring_new(&kr) != SL_OK ||
        sl_jwt_keyring_add_hs256(kr, NULL, secret, strlen(secret)) != SL_OK) {
        fprintf(stderr, "keyring setup failed\n");
        return 1;
    }
    const char *chans[] = {"orders.*", "jobs"};
    sl_jwt_claims c = {.sub = "svc-orders",
                       .role = SL_ROLE_WRITE,
                       .channels = chans,
                       .nchannels = 2,
                       .scoped = 1,
                       .iat = 1700000000,
                       .exp = 4102444800,
                       .jti = "0123456789abcdef0123456789abcdef"};
    char *tok;
    if (sl_jwt_sign(kr, NULL, &c, &tok) != SL_OK) {
        fprintf(stderr, "signing failed\n");
        return 1;
    }
    size_t len = strlen(tok);
    char *hj, *pj; /* jansson must time the very payload the verifiers see */
    if (sl_jwt_decode_unverified(tok, len, &hj, &pj) != SL_OK || strcmp(pj, payload_json) != 0) {
        fprintf(stderr, "the token's payload is not payload_json\n");
        return 1;
    }
    free(hj);
    free(pj);
    printf("token (%zu bytes): %s\n", len, tok);
    printf("%ld verifications per run, median of %d runs\n", n, RUNS);

    double s[RUNS], l[RUNS], j[RUNS];
    run_sluice(kr, tok, len, n / 10); /* warm caches and the allocator */
    run_libjwt(tok, n / 10);
    for (int r = 0; r < RUNS; r++) { /* interleaved, so drift affects both alike */
        s[r] = run_sluice(kr, tok, len, n);
        l[r] = run_libjwt(tok, n);
        j[r] = run_jansson(n);
    }
    double ms = bench_median(s, RUNS), ml = bench_median(l, RUNS), mj = bench_median(j, RUNS);
    printf("sluice sl_jwt_verify         %8.1f ns/op\n", ms);
    printf("libjwt 1.10 jwt_decode       %8.1f ns/op\n", ml);
    printf("ratio libjwt/sluice          %8.2fx\n", ml / ms);
    printf("(jansson json_loadb of the payload alone: %.1f ns/op)\n", mj);

    free(tok);
    sl_jwt_keyring_free(kr);
    return 0;
}
