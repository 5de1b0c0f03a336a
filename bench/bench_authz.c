/* Authorisation decisions per second with 10 and with 100,000 ACL patterns, to show the cost does
 * not grow with the number of rules: (a) one principal holding N patterns, (b) N principals holding
 * one pattern each. Prints the median of 7 runs for each. */
#include <sluice/sluice.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"

#define ITER 2000000
#define RUNS 7

/* Decisions per second for `who` on a rotating set of channels. */
static double measure(sl_ctx *ctx, sl_identity *ids, size_t nids, char (*chans)[64], size_t nch)
{
    double rates[RUNS];
    for (int r = 0; r < RUNS; r++) {
        unsigned allowed = 0;
        double t = bench_now_s();
        for (unsigned i = 0; i < ITER; i++)
            allowed += sl_authorize(ctx, &ids[i % nids], SL_OP_CHANNEL_WRITE, chans[i % nch],
                                    NULL) == SL_OK;
        double dt = bench_now_s() - t;
        rates[r] = ITER / dt;
        if (allowed == 0)
            fprintf(stderr, "nothing allowed?\n");
    }
    return bench_median(rates, RUNS);
}

static void run(size_t n)
{
    char(*chans)[64] = calloc(1024, 64);
    sl_status st;

    /* (a) one principal, n patterns */
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_ACL};
    sl_ctx_new(&ctx, &o);
    char **pats = calloc(n, sizeof *pats);
    for (size_t i = 0; i < n; i++) {
        pats[i] = malloc(48);
        snprintf(pats[i], 48, "tenant-%zu.*", i);
    }
    sl_acl_grant(ctx, NULL, "svc", SL_ROLE_WRITE, (const char *const *)pats, n, &st);
    for (size_t i = 0; i < 1024; i++)
        snprintf(chans[i], 64, "tenant-%zu.jobs", (i * 7919) % n);
    sl_identity one;
    sl_identity_local(&one, "svc");
    double a = measure(ctx, &one, 1, chans, 1024);
    sl_ctx_free(ctx);

    /* (b) n principals, one pattern each */
    sl_ctx_new(&ctx, &o);
    sl_identity *ids = calloc(1024, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        char p[32];
        snprintf(p, sizeof p, "user-%zu", i);
        const char *pat[] = {pats[i]};
        sl_acl_grant(ctx, NULL, p, SL_ROLE_WRITE, pat, 1, &st);
    }
    for (size_t i = 0; i < 1024; i++) {
        size_t k = (i * 7919) % n;
        char p[32];
        snprintf(p, sizeof p, "user-%zu", k);
        sl_identity_local(&ids[i], p);
        snprintf(chans[i], 64, "tenant-%zu.jobs", k);
    }
    /* identity i pairs with channel i: ITER % 1024 keeps them aligned */
    double b = measure(ctx, ids, 1024, chans, 1024);
    sl_ctx_free(ctx);
    for (size_t i = 0; i < n; i++)
        free(pats[i]);
    free(pats);
    free(ids);
    free(chans);
    printf("%7zu patterns: one principal %.2f M decisions/s; %zu principals %.2f M decisions/s\n",
           n, a / 1e6, n, b / 1e6);
}

int main(void)
{
    run(10);
    run(100000);
    return 0;
}
