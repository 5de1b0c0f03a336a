/* What filing one nonce costs to hash: the memory nonce store's SipHash-2-4 (security/siphash.h)
 * against the SHA-256 it replaced (security/hmac256.h) and OpenSSL's own SipHash through EVP_MAC
 * (one context, restarted for each nonce, as a store would keep it), each over a keyid, its NUL
 * and a 32-character nonce. Prints the median CPU ns per hash of RUNS runs of N hashes.
 * Usage: bench_nonce_hash [N] [RUNS]; run pinned, e.g. `taskset -c 1`. */
#include "security/hmac256.h"
#include "security/siphash.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "bench_clock.h"

#define MAX_RUNS 31
#define NONCES 4096

static const char keyid[] = "bench-hmac";
static char nonces[NONCES][33];
static unsigned char key[SL__SIPHASH_KEY_LEN];
static EVP_MAC_CTX *evp;
static volatile uint64_t sink;

static uint64_t by_siphash(const char *nonce)
{
    return sl__siphash24_2(key, keyid, sizeof keyid, nonce, 32);
}

static uint64_t by_sha256(const char *nonce)
{
    unsigned char h[SL__SHA256_LEN];
    uint64_t d = 0;
    if (sl__sha256_2(keyid, sizeof keyid, nonce, 32, h) == 0)
        memcpy(&d, h, sizeof d);
    return d;
}

static uint64_t by_evp_siphash(const char *nonce)
{
    unsigned char out[8];
    size_t n = 0;
    uint64_t d = 0;
    if (EVP_MAC_init(evp, NULL, 0, NULL) == 1 &&
        EVP_MAC_update(evp, (const void *)keyid, sizeof keyid) == 1 &&
        EVP_MAC_update(evp, (const void *)nonce, 32) == 1 &&
        EVP_MAC_final(evp, out, &n, sizeof out) == 1)
        memcpy(&d, out, sizeof d);
    return d;
}

static void run(const char *name, uint64_t (*fn)(const char *), long n, int runs)
{
    double cpu[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        double c0 = bench_clock_s(CLOCK_THREAD_CPUTIME_ID);
        uint64_t acc = 0;
        for (long i = 0; i < n; i++)
            acc ^= fn(nonces[i % NONCES]);
        sink = acc;
        cpu[r] = (bench_clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) / (double)n * 1e9;
    }
    printf("%-28s median %6.1f ns per nonce\n", name, bench_median(cpu, runs));
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (n <= 0 || runs <= 0 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_nonce_hash [N] [RUNS <= %d]\n", MAX_RUNS);
        return 2;
    }
    srand(1);
    for (int i = 0; i < NONCES; i++)
        for (int j = 0; j < 32; j++)
            nonces[i][j] = "0123456789abcdef"[rand() % 16];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (unsigned char)rand();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    evp = mac ? EVP_MAC_CTX_new(mac) : NULL;
    size_t size = 8;
    OSSL_PARAM p[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                      OSSL_PARAM_construct_end()};
    if (evp == NULL || EVP_MAC_init(evp, key, sizeof key, p) != 1 ||
        by_evp_siphash(nonces[0]) == 0) {
        fprintf(stderr, "OpenSSL has no SIPHASH MAC here\n");
        return 1;
    }
    printf("%ld hashes of keyid \"%s\" + a 32-character nonce, %d runs\n", n, keyid, runs);
    run("SipHash-2-4 (ours)", by_siphash, n, runs);
    run("SHA-256 (before)", by_sha256, n, runs);
    run("SipHash, OpenSSL EVP_MAC", by_evp_siphash, n, runs);
    EVP_MAC_CTX_free(evp);
    EVP_MAC_free(mac);
    return 0;
}
