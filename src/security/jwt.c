/* JWT with HS256 (RFC 7519, RFC 7515), and RSA (RS256/384/512, PS256), ECDSA (ES256, ES384) and
 * EdDSA public keys (RFC 7518, RFC 8037) for tokens of an upstream identity provider: the keyring,
 * strict verification of bearer tokens into an sl_identity, signing, and undecoded inspection.
 * Verification is on the path of every network request, so it is built to run in well under a
 * microsecond without touching the heap except for the identity's channel scope: base64url is
 * decoded into a stack buffer, HMAC resumes from inner and outer SHA-256 states precomputed when
 * the key is added (security/hmac256.c), and the JSON of header and payload is read by a strict,
 * bounded parser written for the purpose rather than jansson, which alone costs twice the whole
 * budget (security/jwt_json.c; docs/JWT.md has the measurements). The header is necessarily read
 * before the signature is checked (it names the key); the payload is decoded only after. Error
 * descriptions are fixed strings so that nothing of a token or secret can leak through them.
 * Public-key verification costs tens of microseconds whatever we do, so it simply goes through EVP;
 * it shares everything before the signature with HS256 and branches only after the key is chosen,
 * leaving that path as it was.
 */

#include <sluice/jwt.h>

#include "security/hmac256.h"
#include "core/numtext.h"
#include "security/jwt_internal.h"
#include "security/jwt_json.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define KEYRING_MAX 16
#define KID_MAX 255
#define CHANNELS_MAX 1024
#define MAC_LEN 32
#define PK_SIG_LEN 64 /* Ed25519 (RFC 8032) */

#define E_MALFORMED "malformed token"
#define E_SIGNATURE "bad signature"
#define E_ALG "algorithm not allowed"
#define E_KID "unknown key id"
#define E_EXPIRED "token expired"
#define E_NOTYET "token not yet valid"
#define E_AUD "invalid audience"
#define E_ISS "invalid issuer"
#define E_CLAIMS "invalid claims"
#define E_KIND "wrong kind of token"

/* Token ids: 128 random bits, then 128 bits of a tag binding them to the subject, in hex. */
#define TOKEN_ID_RANDOM_HEX 32
#define TOKEN_ID_TAG_HEX (SL_JWT_TOKEN_ID_LEN - TOKEN_ID_RANDOM_HEX)

/* ---- HS256 ----------------------------------------------------------------------------------- */

int sl__jwt_hs256(const void *key, size_t keylen, const void *data, size_t len,
                  unsigned char out[32])
{
    sl__hmac256_key *k;
    if (sl__hmac256_new(&k, key, keylen) != SL_OK)
        return -1;
    int r = sl__hmac256(k, data, len, out);
    sl__hmac256_free(k);
    return r;
}

/* ---- keyring --------------------------------------------------------------------------------- */

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

/* The JWS "alg" names (RFC 7518 section 3.1, RFC 8037 section 3.1), in ALG_* bit order. */
static const struct {
    const char *name;
    unsigned alg;
} alg_names[] = {{"HS256", ALG_HS256}, {"ES256", ALG_ES256}, {"EdDSA", ALG_EDDSA},
                 {"RS256", ALG_RS256}, {"RS384", ALG_RS384}, {"RS512", ALG_RS512},
                 {"PS256", ALG_PS256}, {"ES384", ALG_ES384}};

static unsigned alg_of_name(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (strlen(alg_names[i].name) == len && memcmp(alg_names[i].name, s, len) == 0)
            return alg_names[i].alg;
    return 0;
}

typedef struct jwt_key {
    char *kid; /* NULL: the default key */
    size_t kidlen;
    sl__hmac256_key *hk; /* HS256 */
    unsigned alg;        /* the one algorithm this key verifies; a token must name exactly it */
    EVP_PKEY *pk;        /* every other algorithm: a public key only */
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
    jwt_key keys[];
};

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
        EVP_PKEY_free(kr->keys[i].pk);
    }
    OPENSSL_cleanse(kr, sizeof *kr + kr->cap * sizeof(jwt_key));
    free(kr);
}

size_t sl_jwt_keyring_size(const sl_jwt_keyring *kr)
{
    return kr ? kr->n : 0;
}

/* kid NULL: the default key. */
static jwt_key *keyring_find(sl_jwt_keyring *kr, const char *kid, size_t kidlen)
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
    return kr != NULL && keyring_find((sl_jwt_keyring *)kr, kid, kidlen) != NULL;
}

/* A kid must be able to appear in a header: 1..255 bytes of UTF-8 without control characters. */
static int kid_valid(const char *kid, size_t len)
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
    if (kid != NULL && !kid_valid(kid, *kidlen = strlen(kid)))
        return SL_EINVAL;
    if (keyring_find((sl_jwt_keyring *)kr, kid, *kidlen) != NULL)
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
    unsigned a = alg_of_name(alg, strlen(alg));
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
    unsigned a = alg ? alg_of_name(alg, strlen(alg)) : 0;
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

/* 1 when sig (n bytes) is k's signature of data, 0 when not, -1 when OpenSSL fails. */
static int pk_verify(const jwt_key *k, const unsigned char *sig, size_t n, const char *data,
                     size_t len)
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
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    int r = -1;
    if (c != NULL && EVP_DigestVerifyInit(c, &pc, md, NULL, k->pk) == 1) {
        /* PS256 (RFC 7518 section 3.5): MGF1 with SHA-256 and a salt as long as the hash. */
        if (k->alg != ALG_PS256 ||
            (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1))
            r = EVP_DigestVerify(c, sig, n, (const unsigned char *)data, len) == 1;
    }
    EVP_MD_CTX_free(c);
    if (r != 1)
        ERR_clear_error();
    return r;
}

/* ---- base64url ------------------------------------------------------------------------------- */

/* The value of each byte in the base64url alphabet, -1 outside it, as X-macro entries so that the
 * decoder's shifted tables below are built at compile time. */
/* clang-format off */
#define B64URL_VALUES(X) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(62) X(-1) X(-1) \
    X(52) X(53) X(54) X(55) X(56) X(57) X(58) X(59) X(60) X(61) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) \
    X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(-1) X(-1) X(-1) X(-1) X(63) \
    X(-1) X(26) X(27) X(28) X(29) X(30) X(31) X(32) X(33) X(34) X(35) X(36) X(37) X(38) X(39) X(40) \
    X(41) X(42) X(43) X(44) X(45) X(46) X(47) X(48) X(49) X(50) X(51) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1)
/* clang-format on */

/* One table per position in a quad, each value pre-shifted, bit 31 set for a byte outside the
 * alphabet: a quad decodes with four loads and three ORs (measured 1.6x the plain loop). */
#define B64_D0(v) ((v) < 0 ? 0x80000000u : (uint32_t)(v) << 18),
#define B64_D1(v) ((v) < 0 ? 0x80000000u : (uint32_t)(v) << 12),
#define B64_D2(v) ((v) < 0 ? 0x80000000u : (uint32_t)(v) << 6),
#define B64_D3(v) ((v) < 0 ? 0x80000000u : (uint32_t)(v)),
static const uint32_t b64_d0[256] = {B64URL_VALUES(B64_D0)};
static const uint32_t b64_d1[256] = {B64URL_VALUES(B64_D1)};
static const uint32_t b64_d2[256] = {B64URL_VALUES(B64_D2)};
static const uint32_t b64_d3[256] = {B64URL_VALUES(B64_D3)};

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int sl__jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)in;
    unsigned char *o = out;
    size_t rem = len % 4;
    uint32_t seen = 0; /* the ORed quads: bit 31 says some byte was outside the alphabet */
    if (rem == 1)
        return -1;
    for (const unsigned char *end = s + (len - rem); s < end; s += 4, o += 3) {
        uint32_t v = b64_d0[s[0]] | b64_d1[s[1]] | b64_d2[s[2]] | b64_d3[s[3]];
        seen |= v;
        o[0] = (unsigned char)(v >> 16);
        o[1] = (unsigned char)(v >> 8);
        o[2] = (unsigned char)v;
    }
    if (rem > 0) {
        uint32_t v = b64_d0[s[0]] | b64_d1[s[1]] | (rem == 3 ? b64_d2[s[2]] : 0);
        /* Unused trailing bits must be zero, or one value would have several encodings. */
        if (v & (rem == 2 ? 0xffffu : 0xffu))
            return -1;
        seen |= v;
        *o++ = (unsigned char)(v >> 16);
        if (rem == 3)
            *o++ = (unsigned char)(v >> 8);
    }
    if (seen & 0x80000000u)
        return -1;
    *outlen = (size_t)(o - out);
    return 0;
}

/* Writes the encoding of n bytes (no padding, no NUL); returns its length. */
static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i > 0) {
        uint32_t v = (uint32_t)in[i] << 16 | (n - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        if (n - i == 2)
            out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    return o;
}

static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

static int str_is(const jscratch *s, jref r, const char *lit)
{
    size_t n = strlen(lit);
    return r.len == n && memcmp(s->buf + r.off, lit, n) == 0;
}

/* ---- verification ---------------------------------------------------------------------------- */

void sl_jwt_verify_opts_init(sl_jwt_verify_opts *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->leeway = 30;
}

enum { H_ALG, H_TYP, H_KID, H_CRIT, H__COUNT };
static const jname header_names[H__COUNT] = {{"alg", 3}, {"typ", 3}, {"kid", 3}, {"crit", 4}};

/* C_WS: "ws", the workspace the token's subject belongs to (docs/POLICY.md). */
enum {
    C_SUB,
    C_EXP,
    C_NBF,
    C_IAT,
    C_AUD,
    C_ISS,
    C_JTI,
    C_ROLE,
    C_CHANNELS,
    C_CHANNEL,
    C_WS,
    C__COUNT
};
static const jname claim_names[C__COUNT] = {
    {"sub", 3}, {"exp", 3},  {"nbf", 3},      {"iat", 3},     {"aud", 3}, {"iss", 3},
    {"jti", 3}, {"role", 4}, {"channels", 8}, {"channel", 7}, {"ws", 2}};

/* What a token is for: the "channel" claim makes a subscription token (one `$` channel, on the
 * WebSocket transport); without it a token is a bearer or connection token. Each is refused where
 * the other is expected, so a subscription token never authenticates a caller. */
typedef enum { KIND_ACCESS, KIND_SUBSCRIPTION } token_kind;

static int fail(sl_status *st, int code, const char *msg)
{
    return sl_status_set(st, code, "%s", msg);
}

/* The ALG_* a header's "alg" names (case-sensitively, RFC 7515 section 4.1.1), 0 for any other. */
static unsigned header_alg(const jscratch *s, const jval *v)
{
    if (v->type != JV_STRING)
        return 0;
    if (str_is(s, v->s, "HS256")) /* first: the sluice tokens' path stays one compare */
        return ALG_HS256;
    return alg_of_name(s->buf + v->s.off, v->s.len);
}

/* Splits token into its three segments at the two dots; -1 unless there are exactly two. */
static int split3(const char *t, size_t len, size_t *d1, size_t *d2)
{
    const char *a = memchr(t, '.', len);
    if (a == NULL)
        return -1;
    const char *b = memchr(a + 1, '.', len - (size_t)(a + 1 - t));
    if (b == NULL || memchr(b + 1, '.', len - (size_t)(b + 1 - t)) != NULL)
        return -1;
    *d1 = (size_t)(a - t);
    *d2 = (size_t)(b - t);
    return 0;
}

/* Checks the registered claims in v (payload parsed into s) and fills out. */
static int check_claims(const jscratch *s, const jval *v, const sl_jwt_verify_opts *o, double now,
                        token_kind kind, char *channel, size_t channel_cap, sl_identity *out,
                        sl_status *st)
{
    const jval *sub = &v[C_SUB], *aud = &v[C_AUD], *iss = &v[C_ISS], *jti = &v[C_JTI],
               *role = &v[C_ROLE], *chans = &v[C_CHANNELS], *chan = &v[C_CHANNEL];

    /* The kind first: a token of the other kind is refused whatever else it says. */
    if ((kind == KIND_ACCESS) != (chan->type == JV_ABSENT))
        return fail(st, SL_ETOKEN, E_KIND);
    if (kind == KIND_SUBSCRIPTION &&
        (chan->type != JV_STRING || chan->s.len >= channel_cap ||
         !sl_channel_id_valid(s->buf + chan->s.off, chan->s.len) || v[C_EXP].type == JV_ABSENT))
        return fail(st, SL_ETOKEN, E_CLAIMS);

    /* Shapes first: a claim of the wrong type is never silently ignored. */
    for (int c = C_EXP; c <= C_IAT; c++)
        if (v[c].type != JV_ABSENT && v[c].type != JV_NUMBER)
            return fail(st, SL_ETOKEN, E_CLAIMS);
    if ((iss->type != JV_ABSENT && iss->type != JV_STRING) ||
        (jti->type != JV_ABSENT && (jti->type != JV_STRING || jti->s.len > SL_TOKEN_ID_MAX)) ||
        (aud->type != JV_ABSENT && aud->type != JV_STRING &&
         !(aud->type == JV_ARRAY && aud->strings_only)) ||
        (chans->type != JV_ABSENT &&
         !(chans->type == JV_ARRAY && chans->strings_only && chans->s.len <= CHANNELS_MAX)))
        return fail(st, SL_ETOKEN, E_CLAIMS);
    if (sub->type != JV_STRING || !sl_principal_valid(s->buf + sub->s.off, sub->s.len))
        return fail(st, SL_ETOKEN, E_CLAIMS);
    const jval *ws = &v[C_WS];
    if (ws->type != JV_ABSENT &&
        (ws->type != JV_STRING || !sl_workspace_valid(s->buf + ws->s.off, ws->s.len)))
        return fail(st, SL_ETOKEN, E_CLAIMS);
    sl_role r = SL_ROLE_NONE;
    if (role->type != JV_ABSENT) {
        char name[8] = "";
        if (role->type == JV_STRING && role->s.len < sizeof name)
            memcpy(name, s->buf + role->s.off, role->s.len);
        if ((r = sl_role_parse(name)) == SL_ROLE_NONE)
            return fail(st, SL_ETOKEN, E_CLAIMS);
    }
    if (chans->type == JV_ARRAY)
        for (size_t i = 0; i < chans->s.len; i++) {
            jref c = s->strs[chans->s.off + i];
            if (!sl_pattern_valid(s->buf + c.off, c.len))
                return fail(st, SL_ETOKEN, E_CLAIMS);
        }

    double leeway = o->leeway;
    if (!(leeway >= 0)) /* also NaN */
        leeway = 0;
    else if (leeway > 60)
        leeway = 60;
    if (v[C_EXP].type == JV_ABSENT && !o->exp_optional)
        return fail(st, SL_ETOKEN, E_CLAIMS);
    if (v[C_EXP].type == JV_NUMBER && v[C_EXP].num <= now - leeway)
        return fail(st, SL_EEXPIRED, E_EXPIRED);
    if ((v[C_NBF].type == JV_NUMBER && v[C_NBF].num > now + leeway) ||
        (v[C_IAT].type == JV_NUMBER && v[C_IAT].num > now + leeway))
        return fail(st, SL_ETOKEN, E_NOTYET);

    if (o->issuer != NULL && (iss->type != JV_STRING || !str_is(s, iss->s, o->issuer)))
        return fail(st, SL_ETOKEN, E_ISS);
    if (o->audience != NULL) {
        int found = aud->type == JV_STRING && str_is(s, aud->s, o->audience);
        for (size_t i = 0; !found && aud->type == JV_ARRAY && i < aud->s.len; i++)
            found = str_is(s, s->strs[aud->s.off + i], o->audience);
        if (!found)
            return fail(st, SL_ETOKEN, E_AUD);
    }

    if (chans->type == JV_ARRAY && chans->s.len > 0) {
        if ((out->channels = calloc(chans->s.len, sizeof *out->channels)) == NULL)
            return fail(st, SL_ENOMEM, "out of memory");
        for (size_t i = 0; i < chans->s.len; i++) {
            jref c = s->strs[chans->s.off + i];
            char *copy = malloc((size_t)c.len + 1);
            if (copy == NULL) {
                sl_identity_clear(out);
                return fail(st, SL_ENOMEM, "out of memory");
            }
            memcpy(copy, s->buf + c.off, c.len);
            copy[c.len] = '\0';
            out->channels[out->nchannels++] = copy;
        }
    }
    out->scoped = chans->type == JV_ARRAY;
    memcpy(out->principal, s->buf + sub->s.off, sub->s.len);
    out->principal[sub->s.len] = '\0';
    if (jti->type == JV_STRING) {
        memcpy(out->token_id, s->buf + jti->s.off, jti->s.len);
        out->token_id[jti->s.len] = '\0';
    }
    if (kind == KIND_SUBSCRIPTION) {
        memcpy(channel, s->buf + chan->s.off, chan->s.len);
        channel[chan->s.len] = '\0';
    }
    if (ws->type == JV_STRING) {
        memcpy(out->workspace, s->buf + ws->s.off, ws->s.len);
        out->workspace[ws->s.len] = '\0';
    }
    out->source = SL_SOURCE_JWT;
    out->role = r;
    out->issued_at = v[C_IAT].type == JV_NUMBER ? v[C_IAT].num : 0;
    out->expires_at = v[C_EXP].type == JV_NUMBER ? v[C_EXP].num : 0;
    return SL_OK;
}

/* The header segment token[0..d1): checked, and the key it names in *key. Remembered in the
 * keyring when it checks out (see memo). s is scratch. */
static int check_header(sl_jwt_keyring *kr, const char *token, size_t d1, jscratch *s,
                        jwt_key **key, sl_status *st)
{
    if (kr->memo_len == d1 && kr->memo_n == kr->n && memcmp(kr->memo, token, d1) == 0) {
        *key = &kr->keys[kr->memo_key];
        return SL_OK;
    }
    jval h[H__COUNT];
    size_t n;
    if (sl__jwt_b64url_decode(token, d1, (unsigned char *)s->buf, &n) < 0 ||
        sl__jwt_json_parse(s, n, header_names, h, H__COUNT) < 0)
        return fail(st, SL_ETOKEN, E_MALFORMED);
    unsigned alg = header_alg(s, &h[H_ALG]);
    /* An algorithm no key here has is refused before the kid is looked at (an empty ring has no
     * key to name, and says so as it always did). */
    if (alg == 0 || (kr->n > 0 && !(kr->algs & alg)))
        return fail(st, SL_ETOKEN, E_ALG);
    /* We implement no header extension, so none may be critical (RFC 7515 section 4.1.11). */
    if ((h[H_TYP].type != JV_ABSENT &&
         !(h[H_TYP].type == JV_STRING && str_is(s, h[H_TYP].s, "JWT"))) ||
        h[H_CRIT].type != JV_ABSENT || (h[H_KID].type != JV_ABSENT && h[H_KID].type != JV_STRING))
        return fail(st, SL_ETOKEN, E_MALFORMED);
    jwt_key *k = h[H_KID].type == JV_STRING
                     ? keyring_find(kr, s->buf + h[H_KID].s.off, h[H_KID].s.len)
                     : keyring_find(kr, NULL, 0);
    if (k == NULL)
        return fail(st, SL_ETOKEN, E_KID);
    /* Each key verifies one algorithm, the one the token must name: otherwise an HS256 token
     * could be MACed with a public key's published PEM and checked against it (alg confusion). */
    if (k->alg != alg)
        return fail(st, SL_ETOKEN, E_ALG);
    *key = k;
    if (d1 <= HDR_MEMO_MAX) {
        memcpy(kr->memo, token, d1);
        kr->memo_len = d1;
        kr->memo_key = (size_t)(k - kr->keys);
        kr->memo_n = kr->n;
    }
    return SL_OK;
}

static int verify(sl_jwt_keyring *kr, const char *token, size_t len, const sl_jwt_verify_opts *o,
                  double now, token_kind kind, char *channel, size_t channel_cap, sl_identity *out,
                  sl_status *st)
{
    if (out == NULL || isnan(now)) /* a NaN clock would make every time check pass */
        return fail(st, SL_EINVAL, "invalid argument");
    sl_identity_clear(out);
    sl_jwt_verify_opts defaults;
    if (o == NULL) {
        sl_jwt_verify_opts_init(&defaults);
        o = &defaults;
    }
    size_t d1, d2, n;
    if (kr == NULL || token == NULL || len == 0 || len > SL_JWT_MAX_LEN ||
        split3(token, len, &d1, &d2) < 0)
        return fail(st, SL_ETOKEN, E_MALFORMED);

    jscratch s;
    jwt_key *k = NULL;
    int rc = check_header(kr, token, d1, &s, &k, st);
    if (rc != SL_OK)
        return rc;
    unsigned alg = k->alg;

    if (sl__jwt_b64url_decode(token + d2 + 1, len - d2 - 1, (unsigned char *)s.buf, &n) < 0)
        return fail(st, SL_ETOKEN, E_MALFORMED);
    if (alg == ALG_HS256) {
        unsigned char mac[MAC_LEN];
        if (n != MAC_LEN)
            return fail(st, SL_ETOKEN, E_SIGNATURE);
        if (sl__hmac256(k->hk, token, d2, mac) < 0)
            return fail(st, SL_EINTERNAL, "internal error");
        int bad = CRYPTO_memcmp(mac, s.buf, MAC_LEN);
        OPENSSL_cleanse(mac, sizeof mac);
        if (bad)
            return fail(st, SL_ETOKEN, E_SIGNATURE);
    } else {
        int ok = pk_verify(k, (const unsigned char *)s.buf, n, token, d2);
        if (ok < 0)
            return fail(st, SL_EINTERNAL, "internal error");
        if (!ok)
            return fail(st, SL_ETOKEN, E_SIGNATURE);
    }

    jval c[C__COUNT];
    if (sl__jwt_b64url_decode(token + d1 + 1, d2 - d1 - 1, (unsigned char *)s.buf, &n) < 0 ||
        sl__jwt_json_parse(&s, n, claim_names, c, C__COUNT) < 0)
        return fail(st, SL_ETOKEN, E_MALFORMED);
    return check_claims(&s, c, o, now, kind, channel, channel_cap, out, st);
}

int sl_jwt_verify(sl_jwt_keyring *kr, const char *token, size_t len, const sl_jwt_verify_opts *o,
                  double now, sl_identity *out, sl_status *st)
{
    return verify(kr, token, len, o, now, KIND_ACCESS, NULL, 0, out, st);
}

int sl_jwt_verify_subscription(sl_jwt_keyring *kr, const char *token, size_t len,
                               const sl_jwt_verify_opts *o, double now, sl_identity *out,
                               char channel[SL_CHANNEL_ID_MAX + 1], sl_status *st)
{
    if (channel == NULL)
        return fail(st, SL_EINVAL, "invalid argument");
    channel[0] = '\0';
    return verify(kr, token, len, o, now, KIND_SUBSCRIPTION, channel, SL_CHANNEL_ID_MAX + 1, out,
                  st);
}

int sl_jwt_header_kid(const char *token, size_t len, char kid[SL_JWT_KID_MAX + 1], size_t *kidlen)
{
    size_t d1, d2, n;
    if (kid != NULL)
        kid[0] = '\0';
    if (kidlen != NULL)
        *kidlen = 0;
    if (token == NULL || kid == NULL || kidlen == NULL || len == 0 || len > SL_JWT_MAX_LEN ||
        split3(token, len, &d1, &d2) < 0)
        return SL_ETOKEN;
    jscratch s;
    jval h[H__COUNT];
    if (sl__jwt_b64url_decode(token, d1, (unsigned char *)s.buf, &n) < 0 ||
        sl__jwt_json_parse(&s, n, header_names, h, H__COUNT) < 0)
        return SL_ETOKEN;
    if (h[H_KID].type == JV_ABSENT)
        return SL_OK;
    if (h[H_KID].type != JV_STRING || !kid_valid(s.buf + h[H_KID].s.off, h[H_KID].s.len))
        return SL_ETOKEN;
    memcpy(kid, s.buf + h[H_KID].s.off, h[H_KID].s.len);
    kid[h[H_KID].s.len] = '\0';
    *kidlen = h[H_KID].s.len;
    return SL_OK;
}

/* ---- token ids ------------------------------------------------------------------------------- */

/* The tag that binds a token id to its subject: HMAC-SHA256 under an HS256 key of the ring over a
 * message no JWT signing input can equal (':' is not in the base64url alphabet). */
static int id_tag(jwt_key *k, const char *rnd, const char *sub, unsigned char tag[MAC_LEN])
{
    char msg[16 + TOKEN_ID_RANDOM_HEX + 1 + SL_PRINCIPAL_MAX + 1];
    int n = snprintf(msg, sizeof msg, "sluice-jti:%.*s:%s", TOKEN_ID_RANDOM_HEX, rnd, sub);
    if (n < 0 || (size_t)n >= sizeof msg)
        return -1;
    return sl__hmac256(k->hk, msg, (size_t)n, tag);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int sl_jwt_token_id_new(sl_jwt_keyring *kr, const char *sub, char out[SL_JWT_TOKEN_ID_LEN + 1])
{
    out[0] = '\0';
    if (kr == NULL || sub == NULL || !sl_principal_valid(sub, strlen(sub)))
        return SL_EINVAL;
    jwt_key *k = keyring_find(kr, NULL, 0);
    for (size_t i = 0; (k == NULL || k->alg != ALG_HS256) && i < kr->n; i++)
        k = &kr->keys[i];
    if (k == NULL || k->alg != ALG_HS256)
        return SL_ENOENT;
    unsigned char rnd[TOKEN_ID_RANDOM_HEX / 2], tag[MAC_LEN];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return SL_EINTERNAL;
    hex(rnd, sizeof rnd, out);
    if (id_tag(k, out, sub, tag) < 0)
        return SL_EINTERNAL;
    hex(tag, TOKEN_ID_TAG_HEX / 2, out + TOKEN_ID_RANDOM_HEX);
    OPENSSL_cleanse(tag, sizeof tag);
    return SL_OK;
}

int sl_jwt_token_id_of(sl_jwt_keyring *kr, const char *token_id, const char *sub)
{
    if (kr == NULL || token_id == NULL || sub == NULL || strlen(token_id) != SL_JWT_TOKEN_ID_LEN ||
        !sl_principal_valid(sub, strlen(sub)))
        return 0;
    int owned = 0;
    for (size_t i = 0; i < kr->n; i++) { /* every HS256 key: ids outlive a key rotation */
        unsigned char tag[MAC_LEN];
        char want[TOKEN_ID_TAG_HEX + 1];
        if (kr->keys[i].alg != ALG_HS256 || id_tag(&kr->keys[i], token_id, sub, tag) < 0)
            continue;
        hex(tag, TOKEN_ID_TAG_HEX / 2, want);
        owned |= CRYPTO_memcmp(want, token_id + TOKEN_ID_RANDOM_HEX, TOKEN_ID_TAG_HEX) == 0;
        OPENSSL_cleanse(tag, sizeof tag);
    }
    return owned;
}

/* ---- signing --------------------------------------------------------------------------------- */

/* NumericDate: an integer when it is one (what every reader expects), else a real. */
static json_t *numeric_date(double t)
{
    if (t == floor(t) && fabs(t) < 9007199254740992.0)
        return json_integer((json_int_t)t);
    return json_real(t);
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(obj, key, v) == 0 ? 0 : -1;
}

/* The claims object, or NULL when some claim is invalid (or memory ran out). */
static json_t *claims_json(const sl_jwt_claims *c)
{
    if (c->sub == NULL || !sl_principal_valid(c->sub, strlen(c->sub)) ||
        (c->role != SL_ROLE_NONE && sl_role_parse(sl_role_name(c->role)) != c->role) ||
        (c->jti != NULL && strlen(c->jti) > SL_TOKEN_ID_MAX) ||
        (c->act_sub != NULL && !sl_principal_valid(c->act_sub, strlen(c->act_sub))) ||
        (c->channel != NULL && !sl_channel_id_valid(c->channel, strlen(c->channel))) ||
        (c->workspace && c->workspace[0] &&
         !sl_workspace_valid(c->workspace, strlen(c->workspace))) ||
        !isfinite(c->iat) || !isfinite(c->exp) || !isfinite(c->nbf) ||
        (c->scoped && (c->nchannels > CHANNELS_MAX || (c->nchannels > 0 && c->channels == NULL))))
        return NULL;
    json_t *p = json_object();
    int bad = p == NULL || set_new(p, "sub", json_string(c->sub)) < 0;
    if (!bad && c->role != SL_ROLE_NONE)
        bad = set_new(p, "role", json_string(sl_role_name(c->role))) < 0;
    if (!bad && c->scoped) {
        json_t *a = json_array();
        bad = set_new(p, "channels", a) < 0;
        for (size_t i = 0; !bad && i < c->nchannels; i++)
            bad = c->channels[i] == NULL ||
                  !sl_pattern_valid(c->channels[i], strlen(c->channels[i])) ||
                  json_array_append_new(a, json_string(c->channels[i])) < 0;
    }
    if (!bad && c->iat != 0)
        bad = set_new(p, "iat", numeric_date(c->iat)) < 0;
    if (!bad && c->nbf != 0)
        bad = set_new(p, "nbf", numeric_date(c->nbf)) < 0;
    if (!bad && c->exp != 0)
        bad = set_new(p, "exp", numeric_date(c->exp)) < 0;
    if (!bad && c->jti != NULL)
        bad = set_new(p, "jti", json_string(c->jti)) < 0; /* NULL for invalid UTF-8 */
    if (!bad && c->aud != NULL)
        bad = set_new(p, "aud", json_string(c->aud)) < 0;
    if (!bad && c->iss != NULL)
        bad = set_new(p, "iss", json_string(c->iss)) < 0;
    if (!bad && c->act_sub != NULL)
        bad = set_new(p, "act", json_pack("{s:s}", "sub", c->act_sub)) < 0;
    if (!bad && c->channel != NULL)
        bad = set_new(p, "channel", json_string(c->channel)) < 0;
    if (!bad && c->workspace && c->workspace[0])
        bad = set_new(p, "ws", json_string(c->workspace)) < 0;
    if (bad) {
        json_decref(p);
        return NULL;
    }
    return p;
}

int sl_jwt_sign(sl_jwt_keyring *kr, const char *kid, const sl_jwt_claims *c, char **out)
{
    if (out != NULL)
        *out = NULL;
    if (kr == NULL || c == NULL || out == NULL)
        return SL_EINVAL;
    jwt_key *k = keyring_find(kr, kid, kid ? strlen(kid) : 0);
    if (k == NULL)
        return SL_ENOENT;
    if (k->alg != ALG_HS256) /* public keys only verify */
        return SL_EINVAL;
    json_t *payload = claims_json(c);
    if (payload == NULL)
        return SL_EINVAL;
    json_t *header = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
    /* kid_valid() let only UTF-8 in, so json_string() can fail here only for want of memory. */
    if (header != NULL && kid != NULL && set_new(header, "kid", json_string(kid)) < 0) {
        json_decref(header);
        header = NULL;
    }
    char *hs = header ? json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char *ps = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(header);
    json_decref(payload);
    int rc = SL_OK;
    char *tok = NULL;
    if (hs == NULL || ps == NULL) {
        rc = SL_ENOMEM;
    } else {
        size_t hl = strlen(hs), pl = strlen(ps);
        size_t total = b64url_len(hl) + 1 + b64url_len(pl) + 1 + b64url_len(MAC_LEN);
        /* A token we could not verify ourselves is of no use to anyone. */
        if (total > SL_JWT_MAX_LEN)
            rc = SL_ETOOBIG;
        else if ((tok = malloc(total + 1)) == NULL)
            rc = SL_ENOMEM;
    }
    if (rc == SL_OK) {
        size_t o = b64url_encode((const unsigned char *)hs, strlen(hs), tok);
        tok[o++] = '.';
        o += b64url_encode((const unsigned char *)ps, strlen(ps), tok + o);
        unsigned char mac[MAC_LEN];
        if (sl__hmac256(k->hk, tok, o, mac) < 0) {
            rc = SL_EINTERNAL;
            free(tok);
            tok = NULL;
        } else {
            tok[o++] = '.';
            o += b64url_encode(mac, sizeof mac, tok + o);
            tok[o] = '\0';
            OPENSSL_cleanse(mac, sizeof mac);
        }
    }
    free(hs);
    free(ps);
    *out = tok;
    return rc;
}

/* ---- inspection ------------------------------------------------------------------------------ */

/* The JSON text of one segment, or NULL when it is not base64url of a JSON object. */
static char *segment_json(const char *seg, size_t len, jscratch *s)
{
    size_t n;
    char *text = malloc(len / 4 * 3 + 3);
    if (text == NULL || sl__jwt_b64url_decode(seg, len, (unsigned char *)text, &n) < 0) {
        free(text);
        return NULL;
    }
    text[n] = '\0';
    memcpy(s->buf, text, n); /* the parser decodes in place */
    if (sl__jwt_json_parse(s, n, NULL, NULL, 0) < 0) {
        free(text);
        return NULL;
    }
    return text;
}

int sl_jwt_decode_unverified(const char *token, size_t len, char **header, char **payload)
{
    if (header != NULL)
        *header = NULL;
    if (payload != NULL)
        *payload = NULL;
    size_t d1, d2, n;
    if (token == NULL || header == NULL || payload == NULL || len == 0 || len > SL_JWT_MAX_LEN ||
        split3(token, len, &d1, &d2) < 0)
        return SL_ETOKEN;
    jscratch s;
    if (sl__jwt_b64url_decode(token + d2 + 1, len - d2 - 1, (unsigned char *)s.buf, &n) < 0)
        return SL_ETOKEN;
    if ((*header = segment_json(token, d1, &s)) == NULL)
        return SL_ETOKEN;
    if ((*payload = segment_json(token + d1 + 1, d2 - d1 - 1, &s)) == NULL) {
        free(*header);
        *header = NULL;
        return SL_ETOKEN;
    }
    return SL_OK;
}
