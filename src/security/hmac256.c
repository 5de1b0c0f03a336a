/* HMAC-SHA256 and SHA-256 without allocations (hmac256.h). SHA256_Init/Update/Final are
 * deprecated in OpenSSL 3 but are the only way to resume a precomputed HMAC state without an
 * allocation (EVP_MD_CTX_copy and EVP_MAC_CTX_dup both allocate provider contexts). */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "security/hmac256.h"

#include <sluice/error.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#ifdef OPENSSL_NO_DEPRECATED_3_0
#define EVP_ONLY 1
#endif

struct sl__hmac256_key {
#ifdef EVP_ONLY
    EVP_MAC_CTX *mac; /* keyed once; EVP_MAC_init with a NULL key restarts it */
#else
    SHA256_CTX inner, outer; /* after absorbing key^ipad and key^opad */
#endif
};

int sl__hmac256_new(sl__hmac256_key **out, const void *secret, size_t len)
{
    sl__hmac256_key *k = calloc(1, sizeof *k);
    if (k == NULL)
        return SL_ENOMEM;
#ifdef EVP_ONLY
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    k->mac = m ? EVP_MAC_CTX_new(m) : NULL;
    EVP_MAC_free(m);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    int ok = k->mac != NULL && EVP_MAC_init(k->mac, secret, len, params) == 1;
#else
    /* RFC 2104: keys longer than a block are hashed first; shorter ones are zero-padded. */
    unsigned char block[SHA256_CBLOCK], pad[SHA256_CBLOCK];
    memset(block, 0, sizeof block);
    if (len > sizeof block)
        SHA256(secret, len, block);
    else if (len > 0)
        memcpy(block, secret, len);
    int ok = 1;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x36;
    ok &= SHA256_Init(&k->inner) == 1 && SHA256_Update(&k->inner, pad, sizeof pad) == 1;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x5c;
    ok &= SHA256_Init(&k->outer) == 1 && SHA256_Update(&k->outer, pad, sizeof pad) == 1;
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
#endif
    if (!ok) {
        sl__hmac256_free(k);
        return SL_EINTERNAL;
    }
    *out = k;
    return SL_OK;
}

void sl__hmac256_free(sl__hmac256_key *k)
{
    if (k == NULL)
        return;
#ifdef EVP_ONLY
    EVP_MAC_CTX_free(k->mac);
#endif
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

int sl__hmac256(sl__hmac256_key *k, const void *data, size_t len, unsigned char out[SL__SHA256_LEN])
{
#ifdef EVP_ONLY
    size_t n = 0;
    return EVP_MAC_init(k->mac, NULL, 0, NULL) == 1 && EVP_MAC_update(k->mac, data, len) == 1 &&
                   EVP_MAC_final(k->mac, out, &n, SL__SHA256_LEN) == 1 && n == SL__SHA256_LEN
               ? 0
               : -1;
#else
    SHA256_CTX c = k->inner;
    unsigned char ih[SHA256_DIGEST_LENGTH];
    int ok = SHA256_Update(&c, data, len) == 1 && SHA256_Final(ih, &c) == 1;
    c = k->outer;
    ok = ok && SHA256_Update(&c, ih, sizeof ih) == 1 && SHA256_Final(out, &c) == 1;
    /* The state left on the stack is the MAC itself: for a forgery, the valid signature. */
    OPENSSL_cleanse(&c, sizeof c);
    OPENSSL_cleanse(ih, sizeof ih);
    return ok ? 0 : -1;
#endif
}

int sl__sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                 unsigned char out[SL__SHA256_LEN])
{
#ifdef EVP_ONLY
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(c, a, alen) == 1 && EVP_DigestUpdate(c, b, blen) == 1 &&
             EVP_DigestFinal_ex(c, out, &n) == 1;
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
#else
    SHA256_CTX c;
    int ok = SHA256_Init(&c) == 1 && SHA256_Update(&c, a, alen) == 1 &&
             SHA256_Update(&c, b, blen) == 1 && SHA256_Final(out, &c) == 1;
    return ok ? 0 : -1;
#endif
}

int sl__sha256(const void *data, size_t len, unsigned char out[SL__SHA256_LEN])
{
    return sl__sha256_2(data, len, "", 0, out);
}
