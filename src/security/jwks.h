/* The JWKS parser (RFC 7517, RFC 7518 section 6, RFC 8037): an identity provider's published key
 * set turned into a verify-only keyring. Pure: no I/O, no clock (fuzzed by fuzz/fuzz_jwks.c).
 * Internal to sluice; the fetching and caching around it is src/security/jwks_client.c. */
#ifndef SLUICE_SECURITY_JWKS_H
#define SLUICE_SECURITY_JWKS_H

#include <stddef.h>

#include <sluice/jwt.h>

/* Largest document accepted (and fetched): far above any real key set. */
#define SL__JWKS_DOC_MAX (256 * 1024)
/* Keys kept from one document at most; further usable keys are skipped. */
#define SL__JWKS_KEYS_MAX 64

/* Told about each key that was skipped: its index in "keys", its kid (NULL when it has none or an
 * invalid one) and a fixed reason. Never told anything secret: a JWKS holds public keys only, and
 * a key carrying private parts is skipped without them being read. */
typedef void (*sl__jwks_skip_fn)(void *ud, size_t index, const char *kid, const char *reason);

/* Parses doc (len bytes, need not be NUL-terminated) into a new keyring (*out, owned by the caller:
 * sl_jwt_keyring_free). Each key becomes one keyring key for one algorithm: its "alg" when given
 * (RS256, RS384, RS512, PS256, ES256, ES384, EdDSA; it must suit the key type and curve), else
 * RS256 for RSA, ES256 / ES384 by curve for EC, EdDSA for OKP Ed25519. Skipped, with a reason:
 * "use" other than "sig"; "key_ops" without "verify"; a symmetric ("oct") key or one with private
 * parts; an unknown kty, crv or alg; bad base64url; RSA under 2048 bits; a point off its curve;
 * a duplicate or invalid kid; a key without kid when another already has none. SL_OK when at least
 * one key is usable; otherwise SL_EINVAL with *why a fixed reason ("not JSON", "no keys array",
 * "no usable key", ...), *out NULL. SL_ENOMEM. */
int sl__jwks_parse(const char *doc, size_t len, sl_jwt_keyring **out, sl__jwks_skip_fn skip,
                   void *ud, const char **why);

/* Seconds an HTTP answer may be cached by its headers (each "" when absent): Cache-Control
 * max-age (the shortest of several; no-store, no-cache or a malformed max-age: 0), else Expires
 * less Date (less now without Date; an invalid Expires: 0); -1 when they say nothing (RFC 9111
 * section 4.2.1). No I/O; lives in jwks_client.c. */
double sl__jwks_lifetime(const char *cache_control, const char *expires, const char *date,
                         double now);

#endif
