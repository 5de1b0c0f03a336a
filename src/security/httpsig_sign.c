/* HTTP Message Signatures' signer (include/sluice/httpsig.h): the Content-Digest, Signature-Input
 * and Signature headers of a request signed with a fresh nonce, covering @method, @target-uri and,
 * with a body, content-digest; the key an HMAC secret or a PEM private key (loaded once with
 * sl_httpsig_signer_load, or per call). The C client (src/client/client.c), the benches and the
 * tests sign; the server only verifies (security/httpsig.c). */
#include <sluice/httpsig.h>

#include "security/httpsig_internal.h"
#include "security/httpsig_keys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

void sl_httpsig_headers_clear(sl_httpsig_headers *h)
{
    if (h == NULL)
        return;
    free(h->content_digest);
    free(h->signature_input);
    free(h->signature);
    memset(h, 0, sizeof *h);
}

static char *b64(const unsigned char *p, size_t n)
{
    char *o = malloc(4 * ((n + 2) / 3) + 1);
    if (o)
        EVP_EncodeBlock((unsigned char *)o, p, (int)n);
    return o;
}

/* s's PEM private key when it is one of s's algorithm (the caller frees it), else NULL. */
static EVP_PKEY *signer_pkey(const sl_httpsig_signer *s)
{
    BIO *bio = BIO_new_mem_buf(s->key, (int)s->key_len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (pk &&
        !(s->alg == SL_HTTPSIG_ED25519 ? EVP_PKEY_is_a(pk, "ED25519") : EVP_PKEY_is_a(pk, "EC"))) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    return pk;
}

int sl_httpsig_signer_load(sl_httpsig_signer *s, sl_status *st)
{
    if (s->alg == SL_HTTPSIG_HMAC_SHA256 || s->pkey != NULL)
        return SL_OK;
    if ((s->pkey = signer_pkey(s)) == NULL)
        return sl_status_set(st, SL_EINVAL, "not a PEM %s private key",
                             sl_httpsig_alg_name(s->alg));
    return SL_OK;
}

void sl_httpsig_signer_clear(sl_httpsig_signer *s)
{
    EVP_PKEY_free(s->pkey);
    s->pkey = NULL;
}

static int sign_raw(const sl_httpsig_signer *s, const char *base, size_t blen, unsigned char *sig,
                    size_t *slen, sl_status *st)
{
    if (s->alg == SL_HTTPSIG_HMAC_SHA256) {
        unsigned int n = 0;
        if (s->key_len == 0 || HMAC(EVP_sha256(), s->key, (int)s->key_len,
                                    (const unsigned char *)base, blen, sig, &n) == NULL)
            return sl_status_set(st, SL_EINVAL, "cannot sign with this secret");
        *slen = n;
        return SL_OK;
    }
    EVP_PKEY *pk = s->pkey ? s->pkey : signer_pkey(s);
    int ok = pk != NULL;
    unsigned char der[160];
    size_t dl = sizeof der;
    EVP_MD_CTX *ctx = ok ? EVP_MD_CTX_new() : NULL;
    ok = ctx &&
         EVP_DigestSignInit(ctx, NULL, s->alg == SL_HTTPSIG_ED25519 ? NULL : EVP_sha256(), NULL,
                            pk) == 1 &&
         EVP_DigestSign(ctx, s->alg == SL_HTTPSIG_ED25519 ? sig : der,
                        s->alg == SL_HTTPSIG_ED25519 ? slen : &dl, (const unsigned char *)base,
                        blen) == 1;
    EVP_MD_CTX_free(ctx);
    if (pk != s->pkey)
        EVP_PKEY_free(pk);
    if (!ok)
        return sl_status_set(st, SL_EINVAL, "not a PEM %s private key",
                             sl_httpsig_alg_name(s->alg));
    if (s->alg == SL_HTTPSIG_ECDSA_P256_SHA256) {
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
        const BIGNUM *r, *ss;
        if (es == NULL)
            return sl_status_set(st, SL_EINVAL, "ecdsa signing failed");
        ECDSA_SIG_get0(es, &r, &ss);
        ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(ss, sig + 32, 32) == 32;
        ECDSA_SIG_free(es);
        if (!ok)
            return sl_status_set(st, SL_EINVAL, "ecdsa signing failed");
        *slen = 64;
    }
    return SL_OK;
}

int sl_httpsig_sign(const sl_httpsig_signer *s, const char *method, const char *scheme,
                    const char *authority, const char *path, const char *query, const char *body,
                    size_t body_len, double now, sl_httpsig_headers *out, sl_status *st)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || !sl__httpsig_keyid_valid(s->keyid) || s->key == NULL || s->alg == 0 ||
        method == NULL || scheme == NULL || authority == NULL || path == NULL)
        return sl_status_set(st, SL_EINVAL, "a signer needs a keyid, an algorithm and a key");
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return sl_status_set(st, SL_ENOMEM, "no randomness");
    char nonce[33];
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
    int with_body = body_len > 0;
    if (with_body) {
        unsigned char h[32];
        unsigned int hl = 0;
        char *e = EVP_Digest(body, body_len, h, &hl, EVP_sha256(), NULL) == 1 ? b64(h, hl) : NULL;
        if (e && (out->content_digest = malloc(strlen(e) + 12)) != NULL)
            sprintf(out->content_digest, "sha-256=:%s:", e);
        free(e);
        if (out->content_digest == NULL)
            return sl_status_set(st, SL_ENOMEM, "out of memory");
    }
    char params[512];
    snprintf(params, sizeof params,
             "(\"@method\" \"@target-uri\"%s);created=%lld;keyid=\"%s\";alg=\"%s\";nonce=\"%s\"",
             with_body ? " \"content-digest\"" : "", (long long)floor(now), s->keyid,
             sl_httpsig_alg_name(s->alg), nonce);
    char base[1024];
    buf b = BUF_INIT(base);
    puts_(&b, "\"@method\": ");
    puts_(&b, method);
    puts_(&b, "\n\"@target-uri\": ");
    put_lower(&b, scheme, strlen(scheme));
    puts_(&b, "://");
    put_lower(&b, authority, strlen(authority));
    puts_(&b, *path ? path : "/");
    if (query && *query) {
        puts_(&b, "?");
        puts_(&b, query);
    }
    puts_(&b, "\n");
    if (with_body) {
        puts_(&b, "\"content-digest\": ");
        puts_(&b, out->content_digest);
        puts_(&b, "\n");
    }
    puts_(&b, "\"@signature-params\": ");
    puts_(&b, params);
    unsigned char sig[128];
    size_t sl = sizeof sig;
    int rc = b.bad ? sl_status_set(st, SL_ENOMEM, "request too large to sign")
                   : sign_raw(s, b.p, b.n, sig, &sl, st);
    buf_free(&b);
    if (rc != SL_OK) {
        sl_httpsig_headers_clear(out);
        return rc;
    }
    char *e = b64(sig, sl);
    out->signature_input = malloc(strlen(params) + 6);
    out->signature = e ? malloc(strlen(e) + 8) : NULL;
    if (out->signature_input == NULL || out->signature == NULL) {
        free(e);
        sl_httpsig_headers_clear(out);
        return sl_status_set(st, SL_ENOMEM, "out of memory");
    }
    sprintf(out->signature_input, "sig1=%s", params);
    sprintf(out->signature, "sig1=:%s:", e);
    free(e);
    return SL_OK;
}
