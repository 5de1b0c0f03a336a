/* Decisions per second of the authorise contract's cache (issue 12): the built-in ACL regime
 * against the policy regime answered from a warm cache (the pluggable regime is a stub that would
 * answer at once; after the first round every decision is a cache hit), through sl_authorize as
 * the pipeline calls it, on a rotating set of 1,000 channels. Prints the median of 7 runs of each
 * and their ratio. */
#include <sluice/authz.h>
#include <sluice/sluice.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"

#define ITER 2000000
#define RUNS 7
#define NCH 1000

static char chans[NCH][64];

/* The stub regime: allow for an hour (clamped by the cache to its maximum). */
static void stub_authorise(sl_regime *self, const sl_authz_query *q, sl_authz_done_fn done,
                           void *ud)
{
    (void)self;
    sl_decision *d = calloc(q->n ? q->n : 1, sizeof *d);
    for (size_t i = 0; d && i < q->n; i++)
        d[i].ttl = 3600;
    done(ud, d, d ? q->n : 0);
    free(d);
}

static void stub_free(sl_regime *self)
{
    (void)self;
}

static sl_regime stub = {"bench-stub", stub_authorise, stub_free};

static void warm(void *ud, const sl_decision *d, size_t n)
{
    (void)d;
    (void)n;
    (*(int *)ud)++;
}

static double measure(sl_ctx *ctx, const sl_identity *who)
{
    double rates[RUNS];
    for (int r = 0; r < RUNS; r++) {
        unsigned allowed = 0;
        double t = bench_now_s();
        for (unsigned i = 0; i < ITER; i++)
            allowed += sl_authorize(ctx, who, SL_OP_CHANNEL_WRITE, chans[i % NCH], NULL) == SL_OK;
        double dt = bench_now_s() - t;
        rates[r] = ITER / dt;
        if (allowed != ITER) {
            fprintf(stderr, "bench_authz_cache: %u of %u decisions allowed\n", allowed, ITER);
            exit(1);
        }
    }
    return bench_median(rates, RUNS);
}

int main(void)
{
    for (int i = 0; i < NCH; i++)
        snprintf(chans[i], sizeof chans[i], "jobs.q%04d", i);
    sl_identity who;
    sl_identity_init(&who);
    snprintf(who.principal, sizeof who.principal, "bench");
    who.source = SL_SOURCE_JWT;

    sl_ctx *acl, *pol;
    sl_ctx_options o = {.mode = SL_MODE_ACL};
    if (sl_ctx_new(&acl, &o) != SL_OK)
        return 1;
    const char *const pat[] = {"jobs.**"};
    if (sl_acl_grant(acl, NULL, "bench", SL_ROLE_WRITE, pat, 1, NULL) != SL_OK)
        return 1;
    o.mode = SL_MODE_POLICY;
    if (sl_ctx_new(&pol, &o) != SL_OK)
        return 1;
    sl_ctx_set_regime(pol, &stub);
    sl_ctx_set_authz_cache(pol, 10000, 3600);
    int answered = 0;
    for (int i = 0; i < NCH; i++) /* fill the cache: what follows are hits */
        sl_authorise(pol, &who, "channel.write", chans[i], NULL, warm, &answered);
    if (answered != NCH)
        return 1;

    double a = measure(acl, &who);
    double p = measure(pol, &who);
    printf("acl regime                decisions/s (median of %d): %.0f\n", RUNS, a);
    printf("policy regime, warm cache decisions/s (median of %d): %.0f  ratio %.2f\n", RUNS, p,
           p / a);
    sl_ctx_free(acl);
    sl_ctx_free(pol);
    return 0;
}
