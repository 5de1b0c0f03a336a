/* The JWKS parser: JSON through jansson (duplicate members refused, so no key can be read two
 * ways), each JWK checked member by member and built with OpenSSL 3's EVP_PKEY_fromdata, then
 * added to a keyring whose own checks (key size, curve, OpenSSL's public-key check, one algorithm
 * per key) apply as to any configured key. A key set is a list of independent keys: one bad key
 * is skipped with a reason rather than failing the set, because providers publish keys for
 * others (encryption keys, algorithms we do not take) beside the ones that sign our tokens. Only
 * a set with no usable key at all is an error, so that the caller keeps the keys it had. */
#include "security/jwks.h"

#include "security/jwt_internal.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <stdlib.h>
#include <string.h>

/* The longest base64url member we decode: an RSA modulus of SL_JWT_RSA_MAX_BITS. */
#define B64_MAX ((SL_JWT_RSA_MAX_BITS / 8) / 3 * 4 + 4)

/* Strict base64url of a member into out (cap bytes): 0 and *n, or -1. */
static int member_b64(json_t *jwk, const char *name, unsigned char *out, size_t cap, size_t *n)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v))
        return -1;
    size_t len = json_string_length(v);
    if (len == 0 || len > B64_MAX || len / 4 * 3 + 3 > cap)
        return -1;
    return sl__jwt_b64url_decode(json_string_value(v), len, out, n);
}

/* Builds a public key of type name ("RSA", "EC", "ED25519") from params. */
static EVP_PKEY *from_params(const char *name, OSSL_PARAM *params)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    EVP_PKEY *pk = NULL;
    if (c == NULL || EVP_PKEY_fromdata_init(c) != 1 ||
        EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(c);
    return pk;
}

static EVP_PKEY *rsa_key(json_t *jwk, const char **why)
{
    unsigned char n[B64_MAX], e[16];
    size_t nl, el;
    if (member_b64(jwk, "n", n, sizeof n, &nl) < 0 || member_b64(jwk, "e", e, sizeof e, &el) < 0) {
        *why = "bad or missing n or e";
        return NULL;
    }
    /* Base64urlUInt is minimal (RFC 7518 section 2): a leading zero byte is tolerated for the
     * modulus, as some publishers add one, but it counts for nothing. */
    const unsigned char *np = n;
    while (nl > 0 && *np == 0) {
        np++;
        nl--;
    }
    if (nl * 8 < SL_JWT_RSA_MIN_BITS || nl * 8 > SL_JWT_RSA_MAX_BITS) {
        *why = "RSA key size not allowed";
        return NULL;
    }
    BIGNUM *bn = BN_bin2bn(np, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pk = NULL;
    if (bn != NULL && be != NULL && b != NULL &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(b)) != NULL)
        pk = from_params("RSA", params);
    if (pk == NULL)
        *why = "RSA key rejected";
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    BN_free(bn);
    BN_free(be);
    return pk;
}

static EVP_PKEY *ec_key(json_t *jwk, const char *crv, const char **why)
{
    size_t half = strcmp(crv, "P-256") == 0 ? 32 : 48;
    unsigned char x[64], y[64], point[1 + 2 * 48];
    size_t xl, yl;
    /* RFC 7518 section 6.2.1.2 asks for the full coordinate length, but some publishers (PyJWT
     * before 2.7 among them) drop leading zero bytes: the number is the same, so it is padded
     * back rather than refused one key in 128. */
    if (member_b64(jwk, "x", x, sizeof x, &xl) < 0 || member_b64(jwk, "y", y, sizeof y, &yl) < 0 ||
        xl > half || yl > half || xl == 0 || yl == 0) {
        *why = "bad or missing x or y";
        return NULL;
    }
    memset(point, 0, sizeof point);
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1 + (half - xl), x, xl);
    memcpy(point + 1 + half + (half - yl), y, yl);
    char group[16];
    strcpy(group, half == 32 ? "P-256" : "P-384");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * half),
        OSSL_PARAM_construct_end()};
    EVP_PKEY *pk = from_params("EC", params);
    if (pk == NULL)
        *why = "EC point rejected";
    return pk;
}

static EVP_PKEY *okp_key(json_t *jwk, const char **why)
{
    unsigned char x[64];
    size_t xl;
    if (member_b64(jwk, "x", x, sizeof x, &xl) < 0 || xl != 32) {
        *why = "bad or missing x";
        return NULL;
    }
    OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, x, 32),
                           OSSL_PARAM_construct_end()};
    EVP_PKEY *pk = from_params("ED25519", params);
    if (pk == NULL)
        *why = "Ed25519 key rejected";
    return pk;
}

/* The algorithm a key of this type may verify: its "alg" if it names one that suits the key, the
 * type's default when absent; NULL (and *why) otherwise. */
static const char *alg_for(json_t *jwk, const char *kty, const char *crv, const char **why)
{
    json_t *a = json_object_get(jwk, "alg");
    const char *def = !strcmp(kty, "RSA")     ? "RS256"
                      : !strcmp(kty, "OKP")   ? "EdDSA"
                      : !strcmp(crv, "P-256") ? "ES256"
                                              : "ES384";
    if (a == NULL)
        return def;
    if (!json_is_string(a)) {
        *why = "alg is not a string";
        return NULL;
    }
    static const char *const rsa[] = {"RS256", "RS384", "RS512", "PS256"};
    const char *v = json_string_value(a);
    if (!strcmp(kty, "RSA")) {
        for (size_t i = 0; i < sizeof rsa / sizeof rsa[0]; i++)
            if (!strcmp(v, rsa[i]))
                return rsa[i];
    } else if (!strcmp(v, def)) {
        return def;
    }
    *why = "alg not supported for this key";
    return NULL;
}

/* 1 when the key may verify signatures ("use" and "key_ops", RFC 7517 sections 4.2 and 4.3). */
static int for_verifying(json_t *jwk, const char **why)
{
    json_t *use = json_object_get(jwk, "use");
    if (use != NULL && !(json_is_string(use) && !strcmp(json_string_value(use), "sig"))) {
        *why = "use is not sig";
        return 0;
    }
    json_t *ops = json_object_get(jwk, "key_ops");
    if (ops != NULL) {
        size_t i;
        json_t *op;
        int verify = 0;
        if (!json_is_array(ops)) {
            *why = "key_ops is not an array";
            return 0;
        }
        json_array_foreach(ops, i, op)
        {
            if (!json_is_string(op)) {
                *why = "key_ops holds a non-string";
                return 0;
            }
            verify |= !strcmp(json_string_value(op), "verify");
        }
        if (!verify) {
            *why = "key_ops lacks verify";
            return 0;
        }
    }
    return 1;
}

/* Adds one JWK to kr: SL_OK, SL_ENOMEM, or another code with *why. kid_out gets the kid when it is
 * a valid one (for the caller's message). */
static int add_jwk(sl_jwt_keyring *kr, json_t *jwk, const char **kid_out, const char **why)
{
    *kid_out = NULL;
    if (!json_is_object(jwk)) {
        *why = "not an object";
        return SL_EINVAL;
    }
    json_t *kidv = json_object_get(jwk, "kid");
    const char *kid = NULL;
    if (kidv != NULL) {
        if (!json_is_string(kidv) || json_string_length(kidv) == 0 ||
            json_string_length(kidv) > SL_JWT_KID_MAX ||
            strlen(json_string_value(kidv)) != json_string_length(kidv)) {
            *why = "invalid kid";
            return SL_EINVAL;
        }
        kid = json_string_value(kidv);
        for (const char *c = kid; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                *why = "invalid kid";
                return SL_EINVAL;
            }
        *kid_out = kid;
    }
    json_t *ktyv = json_object_get(jwk, "kty");
    if (!json_is_string(ktyv)) {
        *why = "no kty";
        return SL_EINVAL;
    }
    const char *kty = json_string_value(ktyv);
    if (!for_verifying(jwk, why))
        return SL_EINVAL;
    /* A shared secret from a key set would let anyone holding the set mint tokens (and HS256
     * over a public key is the classic algorithm confusion). */
    if (!strcmp(kty, "oct")) {
        *why = "symmetric keys are not taken from a key set";
        return SL_EINVAL;
    }
    /* Private parts mean the provider published its signing key: nobody's signature proves
     * anything any more, so this key is not trusted for anything. */
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
    for (size_t i = 0; i < sizeof private_members / sizeof private_members[0]; i++)
        if (json_object_get(jwk, private_members[i]) != NULL) {
            *why = "holds private or secret key material";
            return SL_EINVAL;
        }
    const char *crv = "";
    if (!strcmp(kty, "EC") || !strcmp(kty, "OKP")) {
        json_t *c = json_object_get(jwk, "crv");
        crv = json_is_string(c) ? json_string_value(c) : "";
        if (!strcmp(kty, "EC") ? strcmp(crv, "P-256") && strcmp(crv, "P-384")
                               : strcmp(crv, "Ed25519")) {
            *why = "curve not supported";
            return SL_EINVAL;
        }
    } else if (strcmp(kty, "RSA")) {
        *why = "key type not supported";
        return SL_EINVAL;
    }
    const char *alg = alg_for(jwk, kty, crv, why);
    if (alg == NULL)
        return SL_EINVAL;
    if (kid != NULL && sl_jwt_keyring_has_kid(kr, kid, strlen(kid))) {
        *why = "duplicate kid";
        return SL_EEXIST;
    }
    EVP_PKEY *pk = !strcmp(kty, "RSA")  ? rsa_key(jwk, why)
                   : !strcmp(kty, "EC") ? ec_key(jwk, crv, why)
                                        : okp_key(jwk, why);
    ERR_clear_error();
    if (pk == NULL)
        return SL_EINVAL;
    int rc = sl__jwt_keyring_add_pkey(kr, kid, alg, pk);
    ERR_clear_error();
    if (rc != SL_OK) {
        EVP_PKEY_free(pk);
        *why = rc == SL_EEXIST   ? (kid ? "duplicate kid" : "a second key without kid")
               : rc == SL_ELIMIT ? "too many keys"
               : rc == SL_ENOMEM ? "out of memory"
                                 : "key rejected (size, curve or public-key check)";
    }
    return rc;
}

int sl__jwks_parse(const char *doc, size_t len, sl_jwt_keyring **out, sl__jwks_skip_fn skip,
                   void *ud, const char **why)
{
    static const char *ignored;
    if (why == NULL)
        why = &ignored;
    *why = NULL;
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (doc == NULL || len > SL__JWKS_DOC_MAX) {
        *why = "document too large";
        return SL_EINVAL;
    }
    json_t *root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL);
    if (root == NULL) {
        *why = "not JSON";
        return SL_EINVAL;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        json_decref(root);
        *why = "no keys array";
        return SL_EINVAL;
    }
    sl_jwt_keyring *kr;
    int rc = sl__jwt_keyring_new_cap(&kr, SL__JWKS_KEYS_MAX);
    if (rc != SL_OK) {
        json_decref(root);
        *why = "out of memory";
        return rc;
    }
    size_t i;
    json_t *jwk;
    json_array_foreach(keys, i, jwk)
    {
        const char *kid = NULL, *reason = NULL;
        rc = add_jwk(kr, jwk, &kid, &reason);
        if (rc == SL_ENOMEM)
            break;
        if (rc != SL_OK && skip != NULL)
            skip(ud, i, kid, reason);
        rc = SL_OK;
    }
    json_decref(root);
    if (rc == SL_OK && sl_jwt_keyring_size(kr) == 0) {
        rc = SL_EINVAL;
        *why = "no usable key";
    } else if (rc != SL_OK) {
        *why = "out of memory";
    }
    if (rc != SL_OK) {
        sl_jwt_keyring_free(kr);
        return rc;
    }
    *out = kr;
    return SL_OK;
}
