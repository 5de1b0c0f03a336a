/* The JWT keyring (security/jwt_keys.h): HS256 secrets and the RSA, ECDSA and EdDSA public keys of
 * an upstream identity provider, each with its kid and the one algorithm it verifies, and the
 * public-key half of signature checking. PEM input is taken strictly (one "PUBLIC KEY" block, a
 * key that fits its algorithm and passes OpenSSL's check); security/jwt.c does everything a token
 * needs before and after the key is chosen. */
#include <sluice/jwt.h>

#include "security/jwt_internal.h"
#include "security/jwt_json.h"
#include "security/jwt_keys.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* The JWS "alg" names (RFC 7518 section 3.1, RFC 8037 section 3.1), in ALG_* bit order. */
static const struct {
    const char *name;
    unsigned alg;
} alg_names[] = {{"HS256", ALG_HS256}, {"ES256", ALG_ES256}, {"EdDSA", ALG_EDDSA},
                 {"RS256", ALG_RS256}, {"RS384", ALG_RS384}, {"RS512", ALG_RS512},
                 {"PS256", ALG_PS256}, {"ES384", ALG_ES384}};

unsigned sl__jwt_alg_of_name(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (strlen(alg_names[i].name) == len && memcmp(alg_names[i].name, s, len) == 0)
            return alg_names[i].alg;
    return 0;
}

int sl__jwt_keyring_new_cap(sl_jwt_keyring **out, size_t cap)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (cap == 0 || cap > SL__JWT_KEYRING_CAP_MAX)
        return SL_EINVAL;
    *out = calloc(1, sizeof **out + cap * sizeof(jwt_key));
    if (*out == NULL)
        return SL_ENOMEM;
    (*out)->cap = cap;
    return SL_OK;
}

int sl_jwt_keyring_new(sl_jwt_keyring **out)
{
    return sl__jwt_keyring_new_cap(out, KEYRING_MAX);
}

void sl_jwt_keyring_free(sl_jwt_keyring *kr)
{
    if (kr == NULL)
        return;
    for (size_t i = 0; i < kr->n; i++) {
        free(kr->keys[i].kid);
        sl__hmac256_free(kr->keys[i].hk);
        EVP_PKEY_CTX_free(kr->keys[i].vctx);
        EVP_PKEY_free(kr->keys[i].pk);
    }
    free(kr->vmemo);
    OPENSSL_cleanse(kr, sizeof *kr + kr->cap * sizeof(jwt_key));
    free(kr);
}

size_t sl_jwt_keyring_size(const sl_jwt_keyring *kr)
{
    return kr ? kr->n : 0;
}

/* kid NULL: the default key. */
jwt_key *sl__jwt_keyring_find(sl_jwt_keyring *kr, const char *kid, size_t kidlen)
{
    for (size_t i = 0; i < kr->n; i++) {
        jwt_key *k = &kr->keys[i];
        if (kid == NULL ? k->kid == NULL
                        : k->kid != NULL && k->kidlen == kidlen && memcmp(k->kid, kid, kidlen) == 0)
            return k;
    }
    return NULL;
}

int sl_jwt_keyring_has_kid(const sl_jwt_keyring *kr, const char *kid, size_t kidlen)
{
    return kr != NULL && sl__jwt_keyring_find((sl_jwt_keyring *)kr, kid, kidlen) != NULL;
}

/* A kid must be able to appear in a header: 1..255 bytes of UTF-8 without control characters. */
int sl__jwt_kid_valid(const char *kid, size_t len)
{
    if (len == 0 || len > KID_MAX)
        return 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)kid[i];
        size_t k =
            c < 0x80 ? (c >= 0x20 && c != 0x7f) : sl__jwt_utf8_seq((const unsigned char *)kid + i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

/* The checks every new key shares: a valid kid not yet used, and room for one more. */
static int keyring_can_add(const sl_jwt_keyring *kr, const char *kid, size_t *kidlen)
{
    *kidlen = 0;
    if (kid != NULL && !sl__jwt_kid_valid(kid, *kidlen = strlen(kid)))
        return SL_EINVAL;
    if (sl__jwt_keyring_find((sl_jwt_keyring *)kr, kid, *kidlen) != NULL)
        return SL_EEXIST;
    return kr->n == kr->cap ? SL_ELIMIT : SL_OK;
}

int sl_jwt_keyring_add_hs256(sl_jwt_keyring *kr, const char *kid, const void *secret, size_t len)
{
    if (kr == NULL || secret == NULL)
        return SL_EINVAL;
    if (len < SL_JWT_SECRET_MIN)
        return SL_EWEAKKEY;
    size_t kidlen;
    int rc = keyring_can_add(kr, kid, &kidlen);
    if (rc != SL_OK)
        return rc;
    jwt_key *k = &kr->keys[kr->n];
    memset(k, 0, sizeof *k);
    if (kid != NULL && (k->kid = strdup(kid)) == NULL)
        return SL_ENOMEM;
    k->kidlen = kidlen;
    k->alg = ALG_HS256;
    if ((rc = sl__hmac256_new(&k->hk, secret, len)) != SL_OK) {
        free(k->kid);
        k->kid = NULL;
        return rc;
    }
    kr->n++;
    kr->algs |= ALG_HS256;
    return SL_OK;
}

/* ---- public keys (RSA, ECDSA, EdDSA) --------------------------------------------------------- */

/* The key in pem, which must be exactly one PEM block of type "PUBLIC KEY" (SubjectPublicKeyInfo)
 * without headers. Anything else is refused rather than searched: a file that also holds a private
 * key means the provider's signing key has been copied where it does not belong, and silently
 * taking the public half would hide that; certificates and other blocks are not keys we were
 * asked to trust. Returns SL_OK, SL_EINVAL or SL_ENOMEM. */
static int pem_public_key(const char *pem, size_t len, EVP_PKEY **out)
{
    *out = NULL;
    /* PEM is ASCII text, and OpenSSL's reader works on C strings: past a NUL it would see a
     * different text than we were given ("-----BEGIN PUBLIC KEY\0junk-----" reads as a block). */
    if (len == 0 || len > INT_MAX || memchr(pem, '\0', len) != NULL)
        return SL_EINVAL;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (b == NULL)
        return SL_ENOMEM;
    char *name = NULL, *hdr = NULL, *name2 = NULL, *hdr2 = NULL;
    unsigned char *der = NULL, *der2 = NULL;
    long dlen = 0, dlen2 = 0;
    int rc = SL_EINVAL;
    if (PEM_read_bio(b, &name, &hdr, &der, &dlen) == 1 && strcmp(name, PEM_STRING_PUBLIC) == 0 &&
        hdr[0] == '\0' && PEM_read_bio(b, &name2, &hdr2, &der2, &dlen2) == 0) {
        const unsigned char *p = der;
        EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, dlen);
        if (pk != NULL && p == der + dlen) {
            *out = pk;
            rc = SL_OK;
        } else {
            EVP_PKEY_free(pk);
        }
    }
    OPENSSL_free(name);
    OPENSSL_free(hdr);
    OPENSSL_free(der);
    OPENSSL_free(name2);
    OPENSSL_free(hdr2);
    OPENSSL_free(der2);
    BIO_free(b);
    /* Refusals leave errors queued; they are ours to drop, not a later caller's to misread. */
    ERR_clear_error();
    return rc;
}

/* 1 when pk is a named-curve EC key on the curve nid (explicit curve parameters are refused as
 * RFC 5480 requires, even when they spell the same curve). */
static int ec_named(EVP_PKEY *pk, int nid)
{
    char group[64], enc[32];
    return EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_group_name(pk, group, sizeof group, NULL) == 1 &&
           OBJ_sn2nid(group) == nid &&
           EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof enc, NULL) ==
               1 &&
           strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP) == 0;
}

/* 1 when pk is usable for alg: a P-256 point for ES256, a P-384 one for ES384, an Ed25519 key
 * for EdDSA, an RSA key of SL_JWT_RSA_MIN_BITS..SL_JWT_RSA_MAX_BITS for the RSA algorithms (the
 * upper bound keeps one verification from costing milliseconds); and passing OpenSSL's public-key
 * check (on the curve and not the identity; for RSA an odd modulus without small factors and a
 * sane exponent). */
static int pk_fits(EVP_PKEY *pk, unsigned alg)
{
    if (alg == ALG_EDDSA) {
        if (!EVP_PKEY_is_a(pk, "ED25519"))
            return 0;
    } else if (alg == ALG_ES256 || alg == ALG_ES384) {
        if (!ec_named(pk, alg == ALG_ES256 ? NID_X9_62_prime256v1 : NID_secp384r1))
            return 0;
    } else if (alg & ALG_RSA) {
        int bits = EVP_PKEY_get_bits(pk);
        if (!EVP_PKEY_is_a(pk, "RSA") || bits < SL_JWT_RSA_MIN_BITS || bits > SL_JWT_RSA_MAX_BITS)
            return 0;
    } else {
        return 0;
    }
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    int ok = c != NULL && EVP_PKEY_public_check(c) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* Adds pk (taken over on success only) for alg. */
static int keyring_add_pkey(sl_jwt_keyring *kr, const char *kid, EVP_PKEY *pk, unsigned alg)
{
    size_t kidlen;
    int rc = keyring_can_add(kr, kid, &kidlen);
    if (rc != SL_OK)
        return rc;
    if (!pk_fits(pk, alg)) {
        ERR_clear_error();
        return SL_EINVAL;
    }
    jwt_key *k = &kr->keys[kr->n];
    memset(k, 0, sizeof *k);
    if (kid != NULL && (k->kid = strdup(kid)) == NULL)
        return SL_ENOMEM;
    k->kidlen = kidlen;
    k->alg = alg;
    k->pk = pk;
    kr->n++;
    kr->algs |= alg;
    return SL_OK;
}

int sl__jwt_keyring_add_pkey(sl_jwt_keyring *kr, const char *kid, const char *alg,
                             struct evp_pkey_st *pk)
{
    if (kr == NULL || alg == NULL || pk == NULL)
        return SL_EINVAL;
    unsigned a = sl__jwt_alg_of_name(alg, strlen(alg));
    if (a == 0 || a == ALG_HS256)
        return SL_EINVAL;
    return keyring_add_pkey(kr, kid, pk, a);
}

static int keyring_add_pk(sl_jwt_keyring *kr, const char *kid, const char *pem, size_t len,
                          unsigned alg)
{
    if (kr == NULL || pem == NULL)
        return SL_EINVAL;
    size_t kidlen;
    int rc = keyring_can_add(kr, kid, &kidlen);
    if (rc != SL_OK)
        return rc;
    EVP_PKEY *pk;
    if ((rc = pem_public_key(pem, len, &pk)) != SL_OK)
        return rc;
    if ((rc = keyring_add_pkey(kr, kid, pk, alg)) != SL_OK)
        EVP_PKEY_free(pk);
    return rc;
}

int sl_jwt_keyring_add_es256_pem(sl_jwt_keyring *kr, const char *kid, const char *pem, size_t len)
{
    return keyring_add_pk(kr, kid, pem, len, ALG_ES256);
}

int sl_jwt_keyring_add_eddsa_pem(sl_jwt_keyring *kr, const char *kid, const char *pem, size_t len)
{
    return keyring_add_pk(kr, kid, pem, len, ALG_EDDSA);
}

int sl_jwt_keyring_add_pem(sl_jwt_keyring *kr, const char *kid, const char *alg, const char *pem,
                           size_t len)
{
    unsigned a = alg ? sl__jwt_alg_of_name(alg, strlen(alg)) : 0;
    if (a == 0 || a == ALG_HS256) /* a secret is not a PEM public key */
        return SL_EINVAL;
    return keyring_add_pk(kr, kid, pem, len, a);
}

/* The orders n of P-256 and P-384, big-endian (SEC 2 sections 2.4.2 and 2.5.1). */
static const unsigned char p256_order[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
static const unsigned char p384_order[48] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73};

/* 1 for a big-endian scalar of the order's length in [1, n-1]. OpenSSL checks this too; doing it
 * here keeps the rule independent of the provider and stops out-of-range values before any bignum
 * work. */
static int ec_scalar_ok(const unsigned char *v, const unsigned char *order, size_t len)
{
    unsigned char any = 0;
    for (size_t i = 0; i < len; i++)
        any |= v[i];
    return any != 0 && memcmp(v, order, len) < 0;
}

/* ECDSA signatures in JWS are R||S of half bytes each; EVP wants the DER of an ECDSA-Sig-Value.
 * Writes it to der (at most 104 bytes for P-384) and returns its length, or 0 on failure. */
static size_t ecdsa_der(const unsigned char *sig, size_t half, unsigned char der[112])
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
    size_t n = 0;
    if (es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        unsigned char *p = der;
        int len = i2d_ECDSA_SIG(es, NULL);
        if (len > 0 && len <= 112 && i2d_ECDSA_SIG(es, &p) == len)
            n = (size_t)len;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return n;
}

/* k's verification context (RSA, ECDSA), made at the first use: the padding and digest a JWS
 * algorithm names are set once. NULL when OpenSSL fails. */
static EVP_PKEY_CTX *verify_ctx(jwt_key *k, const EVP_MD *md)
{
    if (k->vctx != NULL)
        return k->vctx;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k->pk, NULL);
    int ok =
        pc != NULL && EVP_PKEY_verify_init(pc) == 1 && EVP_PKEY_CTX_set_signature_md(pc, md) == 1;
    if (ok && (k->alg & ALG_RSA))
        /* PS256 (RFC 7518 section 3.5): MGF1 with SHA-256 and a salt as long as the hash. */
        ok = k->alg != ALG_PS256
                 ? EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1
                 : EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
                       EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1 &&
                       EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1;
    if (!ok) {
        EVP_PKEY_CTX_free(pc);
        return NULL;
    }
    return k->vctx = pc;
}

/* 1 when sig (n bytes) is k's signature of data, 0 when not, -1 when OpenSSL fails. */
static int pk_verify(jwt_key *k, const unsigned char *sig, size_t n, const char *data, size_t len)
{
    unsigned char der[112];
    const EVP_MD *md = NULL; /* Ed25519 hashes internally (PureEdDSA): no digest may be named. */
    if (k->alg == ALG_ES256 || k->alg == ALG_ES384) {
        size_t half = k->alg == ALG_ES256 ? 32 : 48;
        const unsigned char *order = k->alg == ALG_ES256 ? p256_order : p384_order;
        if (n != 2 * half || !ec_scalar_ok(sig, order, half) ||
            !ec_scalar_ok(sig + half, order, half))
            return 0;
        if ((n = ecdsa_der(sig, half, der)) == 0)
            return -1;
        sig = der;
        md = k->alg == ALG_ES256 ? EVP_sha256() : EVP_sha384();
    } else if (k->alg & ALG_RSA) {
        /* RFC 7518 section 3.3: exactly the modulus' length, no shorter encoding. */
        if (n != (size_t)EVP_PKEY_get_size(k->pk))
            return 0;
        md = k->alg == ALG_RS384 ? EVP_sha384() : k->alg == ALG_RS512 ? EVP_sha512() : EVP_sha256();
    } else if (n != PK_SIG_LEN) {
        return 0;
    }
    int r = -1;
    if (md != NULL) { /* the digest here, then the key's own context */
        unsigned char dg[EVP_MAX_MD_SIZE];
        unsigned int dl = 0;
        EVP_PKEY_CTX *pc = verify_ctx(k, md);
        if (pc != NULL &&
            (md == EVP_sha256() ? (dl = SL__SHA256_LEN, sl__sha256(data, len, dg) == 0)
                                : EVP_Digest(data, len, dg, &dl, md, NULL) == 1))
            r = EVP_PKEY_verify(pc, sig, n, dg, dl) == 1;
    } else {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (c != NULL && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k->pk) == 1)
            r = EVP_DigestVerify(c, sig, n, (const unsigned char *)data, len) == 1;
        EVP_MD_CTX_free(c);
    }
    if (r != 1)
        ERR_clear_error();
    return r;
}

/* ---- the memo of verified public-key signatures ---------------------------------------------- */

/* A public-key verification costs 22 µs (RS256) to 118 µs (EdDSA) here, against about 12 µs for
 * a whole authorised PUT (docs/BENCHMARKS.md, "Public-key JWTs"), and a client of an identity
 * provider sends the same token with every request until it expires. The memo is a direct-mapped
 * table of the SHA-256 of whole tokens (signing input and signature, as received) that verified,
 * each with the key that verified it. A hit needs the same bytes, so the same claims and the same
 * signature, and the same key of the same keyring: keys are only ever added to a keyring, and a
 * provider's new key set is a new keyring (security/jwks.c), so a key that is gone cannot be
 * matched. What the signature covers is still decoded and checked on every request (expiry,
 * audience, issuer, revocation afterwards): the memo saves the key operation and nothing else.
 * Refusals are never remembered, so forged tokens cannot evict anything but each other's absence;
 * a valid token can evict another, which then costs one verification again. */
#define VMEMO_SLOTS 4096 /* 160 KiB, allocated at the first public-key verification */

struct sl__jwt_vmemo {
    unsigned char digest[SL__SHA256_LEN];
    uint32_t key; /* the index of the key in the keyring + 1; 0: an empty slot */
};

int sl__jwt_pk_verify_memo(sl_jwt_keyring *kr, jwt_key *k, const char *token, size_t len,
                           size_t dlen, const unsigned char *sig, size_t n)
{
    unsigned char h[SL__SHA256_LEN];
    uint32_t key = (uint32_t)(k - kr->keys) + 1;
    if (sl__sha256(token, len, h) < 0) {
        kr->pk_verifies++;
        return pk_verify(k, sig, n, token, dlen);
    }
    uint64_t at;
    memcpy(&at, h, sizeof at); /* a digest's bits are uniform: any of them index */
    struct sl__jwt_vmemo *e = kr->vmemo ? &kr->vmemo[at & (VMEMO_SLOTS - 1)] : NULL;
    if (e != NULL && e->key == key && CRYPTO_memcmp(e->digest, h, sizeof h) == 0)
        return 1;
    kr->pk_verifies++;
    int ok = pk_verify(k, sig, n, token, dlen);
    if (ok == 1) {
        if (kr->vmemo == NULL && (kr->vmemo = calloc(VMEMO_SLOTS, sizeof *kr->vmemo)) != NULL)
            e = &kr->vmemo[at & (VMEMO_SLOTS - 1)];
        if (e != NULL) { /* out of memory: nothing remembered, nothing else changes */
            memcpy(e->digest, h, sizeof h);
            e->key = key;
        }
    }
    return ok;
}

unsigned long sl__jwt_keyring_pk_verifies(const sl_jwt_keyring *kr)
{
    return kr->pk_verifies;
}
