/* Public-key JWTs (an identity provider's tokens): the cost of sl_jwt_verify for RS256, ES256 and
 * EdDSA, with a token seen before (the keyring's memo of verified signatures answers: the client
 * that sends its token with every request) and with tokens never seen (each verification runs the
 * key operation: 5,000 distinct tokens, each verified once, by a new keyring each run), against
 * libjwt 1.10's jwt_decode (then jwt_free) on the same token in the same process (libjwt has no
 * EdDSA). Medians of 7 interleaved runs, ns per verification.
 * Usage: bench_jwt_pk [iterations per run]; run pinned, e.g. `taskset -c 1 bench_jwt_pk`. */
#include <sluice/jwt.h>

#include <jwt.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "security/jwt_internal.h"

#define RUNS 7
#define FRESH 5000 /* distinct tokens, each verified once a run */
#define NOW 1700000100.0

static void die(const char *what)
{
    fprintf(stderr, "bench_jwt_pk: %s\n", what);
    exit(1);
}

static size_t b64url(const unsigned char *d, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        *o++ = a[v >> 18];
        *o++ = a[(v >> 12) & 63];
        if (i + 1 < n)
            *o++ = a[(v >> 6) & 63];
        if (i + 2 < n)
            *o++ = a[v & 63];
    }
    *o = '\0';
    return (size_t)(o - out);
}

/* A token of alg under k, whose claims name subject number i (malloc'd). ECDSA signatures are
 * turned from DER into JOSE's R || S. */
static char *make_token(EVP_PKEY *k, const char *alg, int i)
{
    char header[64], payload[256], *t = malloc(2048);
    if (t == NULL)
        die("out of memory");
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"kid\":\"k\",\"typ\":\"JWT\"}", alg);
    snprintf(payload, sizeof payload,
             "{\"sub\":\"user-%d\",\"role\":\"write\",\"iat\":1700000000,\"exp\":4102444800,"
             "\"iss\":\"https://idp.example\",\"aud\":\"sluice\",\"jti\":\"t-%d\"}",
             i, i);
    size_t n = b64url((const unsigned char *)header, strlen(header), t);
    t[n++] = '.';
    n += b64url((const unsigned char *)payload, strlen(payload), t + n);
    int ec = !strcmp(alg, "ES256");
    unsigned char sig[512], jose[64];
    size_t sl = sizeof sig;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL ||
        EVP_DigestSignInit(c, NULL, strcmp(alg, "EdDSA") ? EVP_sha256() : NULL, NULL, k) != 1 ||
        EVP_DigestSign(c, sig, &sl, (const unsigned char *)t, n) != 1)
        die("signing failed");
    EVP_MD_CTX_free(c);
    const unsigned char *s = sig;
    if (ec) {
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &s, (long)sl);
        if (es == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(es), jose, 32) != 32 ||
            BN_bn2binpad(ECDSA_SIG_get0_s(es), jose + 32, 32) != 32)
            die("ECDSA signature conversion failed");
        ECDSA_SIG_free(es);
        s = jose;
        sl = 64;
    }
    t[n++] = '.';
    b64url(s, sl, t + n);
    return t;
}

static char *pub_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    if (b == NULL || PEM_write_bio_PUBKEY(b, k) != 1)
        die("PEM export failed");
    long n = BIO_get_mem_data(b, &data);
    if ((out = malloc((size_t)n + 1)) == NULL)
        die("out of memory");
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

/* ns per verification of toks[0..m) verified in turn, n in all. */
static double run_sluice(sl_jwt_keyring *kr, char **toks, size_t m, long n)
{
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.audience = "sluice";
    o.issuer = "https://idp.example";
    long ok = 0;
    double t = bench_now_s();
    for (long i = 0; i < n; i++) {
        sl_identity id;
        sl_identity_init(&id);
        const char *tok = toks[(size_t)i % m];
        ok += sl_jwt_verify(kr, tok, strlen(tok), &o, NOW, &id, NULL) == SL_OK;
        sl_identity_clear(&id);
    }
    t = bench_now_s() - t;
    if (ok != n)
        die("sluice refused a token");
    return t / (double)n * 1e9;
}

static double run_libjwt(const char *tok, const char *pem, long n)
{
    long ok = 0;
    double t = bench_now_s();
    for (long i = 0; i < n; i++) {
        jwt_t *j = NULL;
        ok += jwt_decode(&j, tok, (const unsigned char *)pem, (int)strlen(pem)) == 0;
        jwt_free(j);
    }
    t = bench_now_s() - t;
    if (ok != n)
        die("libjwt refused the token");
    return t / (double)n * 1e9;
}

static sl_jwt_keyring *keyring(const char *alg, const char *pem)
{
    sl_jwt_keyring *kr;
    if (sl_jwt_keyring_new(&kr) != SL_OK || sl_jwt_keyring_add_pem(kr, "k", alg, pem, strlen(pem)))
        die("keyring setup failed");
    return kr;
}

static void bench_alg(const char *alg, EVP_PKEY *k, long n)
{
    char *pem = pub_pem(k);
    sl_jwt_keyring *kr = keyring(alg, pem);
    char **fresh = malloc(FRESH * sizeof *fresh);
    if (fresh == NULL)
        die("out of memory");
    for (int i = 0; i < FRESH; i++)
        fresh[i] = make_token(k, alg, i);
    int has_libjwt = strcmp(alg, "EdDSA") != 0;
    double seen[RUNS], unseen[RUNS], lj[RUNS];
    unsigned long runs = 0;
    run_sluice(kr, fresh, 1, n / 10); /* warm up */
    for (int r = 0; r < RUNS; r++) {
        seen[r] = run_sluice(kr, fresh, 1, n);
        sl_jwt_keyring *nk = keyring(alg, pem); /* nothing remembered */
        unseen[r] = run_sluice(nk, fresh, FRESH, FRESH);
        runs += sl__jwt_keyring_pk_verifies(nk);
        sl_jwt_keyring_free(nk);
        lj[r] = has_libjwt ? run_libjwt(fresh[0], pem, FRESH / 10) : 0;
    }
    if (runs != (unsigned long)RUNS * FRESH || sl__jwt_keyring_pk_verifies(kr) != 1)
        die("the memo did not do what it should: the figures would not mean what they say");
    double ms = bench_median(seen, RUNS), mu = bench_median(unseen, RUNS),
           ml = bench_median(lj, RUNS);
    printf("%-6s token seen before (memo)   %9.1f ns\n", alg, ms);
    printf("%-6s token never seen           %9.1f ns  (%.1fx the memo's)\n", alg, mu, mu / ms);
    if (has_libjwt)
        printf("%-6s libjwt 1.10 jwt_decode     %9.1f ns  (libjwt / sluice: %.2fx unseen, %.1fx "
               "seen)\n",
               alg, ml, ml / mu, ml / ms);
    else
        printf("%-6s libjwt 1.10                (no EdDSA)\n", alg);
    for (int i = 0; i < FRESH; i++)
        free(fresh[i]);
    free(fresh);
    free(pem);
    sl_jwt_keyring_free(kr);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0)
        n = 200000;
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), *ec = EVP_EC_gen("P-256"),
             *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (rsa == NULL || ec == NULL || ed == NULL)
        die("key generation failed");
    printf("%ld verifications of one token a run, %d of tokens never seen, %d of libjwt; medians "
           "of %d runs\n",
           n, FRESH, FRESH / 10, RUNS);
    bench_alg("RS256", rsa, n);
    bench_alg("ES256", ec, n);
    bench_alg("EdDSA", ed, n);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    return 0;
}
