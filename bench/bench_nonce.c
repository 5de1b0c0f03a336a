/* The one-node nonce store (security/httpsig_authn.c) filling up: N signed requests' nonces
 * remembered, one after another, into a store bounded as bench/signed.sh bounds it (20,000,000),
 * PER_SECOND of them signed in each second (created) and each arriving half a second after it was
 * signed, kept for bench/signed.sh's window (300 s, so none is forgotten during the run). Prints
 * the mean cost of a remember and the four slowest single remembers: how long the event loop
 * would be held by the slowest request. bench/nonce.sh runs it against older stores too.
 * Usage: bench_nonce [N] [PER_SECOND] (default 2,000,000 and N: all signed in one second); run
 * pinned, e.g. `taskset -c 1 bench_nonce 2000000 100000`. */
#include "security/httpsig.h"

#include <stdio.h>
#include <stdlib.h>

#include "bench_clock.h"

static void count(void *ud, int status)
{
    if (status != SL_OK)
        ++*(long *)ud;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000, refused = 0;
    long per = argc > 2 ? atol(argv[2]) : n;
    sl__nonce_store *ns;
    if (n <= 0 || per <= 0 || sl__nonce_memory_new(20000000, &ns) != SL_OK)
        return 2;
    double worst[4] = {0}, t0 = bench_now_s();
    long at[4] = {0};
    char nonce[64];
    for (long i = 0; i < n; i++) {
        /* bench_sign's shape: a random-looking nonce per request */
        snprintf(nonce, sizeof nonce, "%016lx%08lx", (unsigned long)i * 0x9e3779b97f4a7c15UL,
                 (unsigned long)i);
        double created = 1e6 + (double)(i / per), now = created + 0.5, until = created + 301;
        double a = bench_now_s();
#ifdef SL__NONCE_BY_SECOND
        ns->remember(ns, "bench-hmac", nonce, created, until, now, count, &refused);
#else /* bench/nonce.sh builds this file against older stores too */
        ns->remember(ns, "bench-hmac", nonce, until, now, count, &refused);
#endif
        double d = bench_now_s() - a;
        for (int k = 0; k < 4; k++)
            if (d > worst[k]) {
                for (int j = 3; j > k; j--) {
                    worst[j] = worst[j - 1];
                    at[j] = at[j - 1];
                }
                worst[k] = d;
                at[k] = i;
                break;
            }
    }
    double total = bench_now_s() - t0;
    ns->free(ns);
    if (refused)
        return fprintf(stderr, "bench_nonce: %ld nonces refused\n", refused), 1;
    printf("%ld remembers (%ld a second): mean %.0f ns; slowest", n, per, total / (double)n * 1e9);
    for (int k = 0; k < 4; k++)
        printf(" %.2f ms (#%ld)", worst[k] * 1e3, at[k]);
    printf("\n");
    return 0;
}
