/* Internals of the JWT module (src/security/jwt.c) exposed to its unit tests and benchmark: the
 * HS256 primitive behind the keyring, the strict base64url codec and the strict JSON object parser
 * that replaces jansson on the verification path (see docs/JWT.md for why). Nothing here is part of
 * the public API. */
#ifndef SLUICE_SECURITY_JWT_INTERNAL_H
#define SLUICE_SECURITY_JWT_INTERNAL_H

#include <stddef.h>

/* Nesting deeper than this is rejected by the claim parser (jansson allows 2048; no JWT needs more
 * than a handful, and a low bound keeps the recursion shallow on hostile headers). */
#define SL__JWT_JSON_MAX_DEPTH 32

/* HMAC-SHA256 of data under key, computed the way the keyring does (precomputed pad states).
 * Returns 0, or -1 when OpenSSL fails. */
int sl__jwt_hs256(const void *key, size_t keylen, const void *data, size_t len,
                  unsigned char out[32]);

/* Strict base64url without padding: only [A-Za-z0-9_-], no '=', length mod 4 != 1, unused trailing
 * bits zero. out must hold len * 3 / 4 bytes. Returns 0 and sets *outlen, or -1. */
int sl__jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);

/* 1 when text (len <= SL_JWT_MAX_LEN bytes) is a JSON object the claim parser accepts: RFC 8259
 * grammar, valid UTF-8, no "\u0000", no duplicate keys at any depth, integers within 64 bits, reals
 * finite, depth <= SL__JWT_JSON_MAX_DEPTH. Meant to agree with jansson's json_loadb(...,
 * JSON_REJECT_DUPLICATES) on everything shallower than that; the unit tests check it does. */
int sl__jwt_json_object_valid(const char *text, size_t len);

/* A keyring with room for cap keys (1..SL__JWT_KEYRING_CAP_MAX) rather than the public 16: a
 * provider's JWKS may publish more. */
#define SL__JWT_KEYRING_CAP_MAX 256
typedef struct sl_jwt_keyring sl_jwt_keyring;
int sl__jwt_keyring_new_cap(sl_jwt_keyring **out, size_t cap);

/* Adds a public key already built (from a JWK) for the JWS algorithm alg ("RS256", "ES384", ...;
 * never "HS256"). The keyring takes pk over on SL_OK only; on failure the caller still owns it.
 * Errors as for sl_jwt_keyring_add_pem (SL_EINVAL: the key does not fit alg or fails OpenSSL's
 * public-key check). */
struct evp_pkey_st;
int sl__jwt_keyring_add_pkey(sl_jwt_keyring *kr, const char *kid, const char *alg,
                             struct evp_pkey_st *pk);

/* How many public-key verifications kr has run (the memo of verified signatures spares repeats:
 * security/jwt_keys.c). */
unsigned long sl__jwt_keyring_pk_verifies(const sl_jwt_keyring *kr);

#endif
