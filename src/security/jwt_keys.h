/* The JWT keyring's insides, shared by the two halves of the JWT module: security/jwt_keys.c (the
 * keyring, loading public keys, checking a public-key signature) and security/jwt.c (verifying,
 * signing, token ids). Nothing here is public API; unit tests reach the keyring through
 * security/jwt_internal.h. */
#ifndef SLUICE_SECURITY_JWT_KEYS_H
#define SLUICE_SECURITY_JWT_KEYS_H

#include <stddef.h>

#include <openssl/evp.h>

#include "security/hmac256.h"

#define KEYRING_MAX 16
#define KID_MAX 255
#define PK_SIG_LEN 64 /* Ed25519 (RFC 8032) */

/* The JOSE algorithms implemented, as bits so that a keyring can say which of them it holds. */
enum {
    ALG_HS256 = 1,
    ALG_ES256 = 2,
    ALG_EDDSA = 4,
    ALG_RS256 = 8,
    ALG_RS384 = 16,
    ALG_RS512 = 32,
    ALG_PS256 = 64,
    ALG_ES384 = 128,
};
#define ALG_RSA (ALG_RS256 | ALG_RS384 | ALG_RS512 | ALG_PS256)

typedef struct jwt_key {
    char *kid; /* NULL: the default key */
    size_t kidlen;
    sl__hmac256_key *hk; /* HS256 */
    unsigned alg;        /* the one algorithm this key verifies; a token must name exactly it */
    EVP_PKEY *pk;        /* every other algorithm: a public key only */
    /* RSA and ECDSA: pk's verification context, set up (padding, digest) at its first use and
     * reused, since OpenSSL 3 fetches its algorithms again for every new one */
    EVP_PKEY_CTX *vctx;
} jwt_key;

/* Header segments (base64url, as sent) remembered with the key they name. */
#define HDR_MEMO_MAX 120

struct sl_jwt_keyring {
    size_t n, cap;
    unsigned algs; /* ALG_* of the keys held */
    /* The header segment of the last token whose header checked out, and the key it named: the
     * tokens a service sees come from few issuers, and one issuer's headers are the same bytes
     * every time, so decoding and parsing them again tells nothing new. Valid while no key is
     * added (memo_n == n). The signature and the claims are always checked. */
    char memo[HDR_MEMO_MAX];
    size_t memo_len, memo_key, memo_n;
    /* Public-key signatures this keyring verified (sl__jwt_pk_verify_memo); NULL until the first
     * one. pk_verifies counts the public-key operations actually run. */
    struct sl__jwt_vmemo *vmemo;
    unsigned long pk_verifies;
    jwt_key keys[];
};

/* The ALG_* bit of a JWS "alg" name (len bytes), or 0 when it is not one implemented. */
unsigned sl__jwt_alg_of_name(const char *s, size_t len);
/* The key of that kid (kid NULL: the default key), or NULL. Borrowed from kr. */
jwt_key *sl__jwt_keyring_find(sl_jwt_keyring *kr, const char *kid, size_t kidlen);
/* 1 when kid can appear in a header: 1..KID_MAX bytes of UTF-8 without control characters. */
int sl__jwt_kid_valid(const char *kid, size_t len);
/* Checks a token's public-key signature, remembering what verified: 1 when sig (n bytes) is k's
 * signature of token[0..dlen) (the signing input), 0 when not, -1 when OpenSSL fails. token[0..len)
 * is the whole token as received (signing input, '.', signature). A token whose exact bytes k (a
 * key of kr) verified before is not verified again: only signatures are remembered, never claims,
 * which the caller checks every time. */
int sl__jwt_pk_verify_memo(sl_jwt_keyring *kr, jwt_key *k, const char *token, size_t len,
                           size_t dlen, const unsigned char *sig, size_t n);

#endif
