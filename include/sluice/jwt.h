/* JWT (RFC 7519) with HS256 (RFC 7515) for sluice tokens: strict verification into an sl_identity,
 * and signing. A keyring holds one or more HS256 secrets selected by `kid`, so a secret can be
 * rotated. Secrets shorter than 32 bytes are refused. For tokens of an upstream identity provider
 * it can also hold public keys, which only verify: RS256, RS384, RS512 and PS256 (RSA, at least
 * 2048 bits), ES256 (P-256), ES384 (P-384) and EdDSA (Ed25519, RFC 8037). Every key has exactly
 * one algorithm, and a token is checked only against a key of the algorithm its header names
 * ("none" is never one; an HS256 token never meets a public key: no algorithm confusion). A keyring
 * keeps keyed HMAC state for speed and is therefore not safe to use from two threads at once (the
 * server is single-threaded). */
#ifndef SLUICE_JWT_H
#define SLUICE_JWT_H

#include <stddef.h>

#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_JWT_MAX_LEN 8192 /* longer tokens are rejected before any parsing */
#define SL_JWT_SECRET_MIN 32

typedef struct sl_jwt_keyring sl_jwt_keyring;

/* *out owned by the caller; release with sl_jwt_keyring_free. */
int sl_jwt_keyring_new(sl_jwt_keyring **out);
void sl_jwt_keyring_free(sl_jwt_keyring *kr);
/* Adds an HS256 key. kid NULL: the default key, used for tokens without a "kid" header (and for
 * signing with kid NULL). A token whose kid names no key is rejected. SL_EWEAKKEY under 32 bytes;
 * SL_EEXIST for a duplicate kid; SL_EINVAL for a kid that is empty, over 255 bytes, not UTF-8 or
 * holds control characters; SL_ELIMIT beyond 16 keys. The secret is copied (as HMAC states derived
 * from it) and wiped on free. */
int sl_jwt_keyring_add_hs256(sl_jwt_keyring *kr, const char *kid, const void *secret, size_t len);
/* Add a public key for verifying "ES256" (ECDSA on P-256 with SHA-256) or "EdDSA" (Ed25519) tokens.
 * pem (len bytes, need not be NUL-terminated, holding no NUL byte) must hold exactly one PEM block,
 * "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes). SL_EINVAL
 * for anything else: a private key (refused, not reduced to its public half: it has no business on
 * the verifier), a certificate, more than one block, a key of another type or curve (P-384,
 * explicit curve parameters, Ed448, RSA...) or one failing OpenSSL's public-key check; kid rules
 * and the other errors as for sl_jwt_keyring_add_hs256. Such a key cannot sign (sl_jwt_sign:
 * SL_EINVAL). */
int sl_jwt_keyring_add_es256_pem(sl_jwt_keyring *kr, const char *kid, const char *pem, size_t len);
int sl_jwt_keyring_add_eddsa_pem(sl_jwt_keyring *kr, const char *kid, const char *pem, size_t len);
/* Add a public key for verifying tokens of the JWS algorithm alg: "RS256", "RS384", "RS512",
 * "PS256" (RSA, SL_JWT_RSA_MIN_BITS..SL_JWT_RSA_MAX_BITS), "ES256" (P-256), "ES384" (P-384) or
 * "EdDSA" (Ed25519); the key must be of that algorithm's type (SL_EINVAL otherwise, and for "HS256"
 * or any other name). PEM rules and errors as for sl_jwt_keyring_add_es256_pem. */
int sl_jwt_keyring_add_pem(sl_jwt_keyring *kr, const char *kid, const char *alg, const char *pem,
                           size_t len);
#define SL_JWT_RSA_MIN_BITS 2048
#define SL_JWT_RSA_MAX_BITS 8192
size_t sl_jwt_keyring_size(const sl_jwt_keyring *kr);
/* 1 when kr holds a key named kid (kidlen bytes; NULL: the default key), else 0. */
int sl_jwt_keyring_has_kid(const sl_jwt_keyring *kr, const char *kid, size_t kidlen);

#define SL_JWT_KID_MAX 255
/* The "kid" of a token's header, read without verifying anything (to pick the key set that will
 * verify it): SL_OK with kid NUL-terminated and *kidlen its length (0 when the header has no kid),
 * SL_ETOKEN when the token is malformed or its kid is not a valid key id. */
int sl_jwt_header_kid(const char *token, size_t len, char kid[SL_JWT_KID_MAX + 1], size_t *kidlen);

typedef struct sl_jwt_verify_opts {
    const char *audience; /* NULL: "aud" not checked */
    const char *issuer;   /* NULL: "iss" not checked */
    double leeway;        /* seconds of clock skew allowed; default 30, clamped to [0, 60] */
    int exp_optional;     /* 0 (default): a token without "exp" is rejected */
    /* an identity provider's claim naming the caller's workspace (the upstream-JWT
     * authenticator reads it; sluice's own tokens use "ws"); NULL: none */
    const char *workspace_claim;
} sl_jwt_verify_opts;
void sl_jwt_verify_opts_init(sl_jwt_verify_opts *o);

/* Verifies `token` (len bytes, need not be NUL-terminated) at time `now` and fills `out`
 * (source SL_SOURCE_JWT, principal = sub, role, channel scope, jti, iat, exp). `out` must be
 * initialised; it is cleared first, and on failure it is left empty. Returns SL_OK, SL_EEXPIRED,
 * or SL_ETOKEN with a short fixed description in st that never contains the token: "malformed
 * token", "bad signature", "algorithm not allowed", "unknown key id", "token expired", "token not
 * yet valid", "invalid audience", "invalid issuer", "invalid claims" or "wrong kind of token"
 * (SL_EINVAL for a NULL out or a NaN now, SL_ENOMEM). Rules: at most SL_JWT_MAX_LEN bytes; three
 * base64url segments without padding and with zero trailing bits; header alg must be one of the
 * algorithms above, held by some key of kr, and equal to the algorithm of the key that kid (or,
 * without kid, the default key) selects -- "algorithm not allowed" otherwise, so a token can never
 * be checked against another kind of key's material; typ, if present, "JWT", no crit; duplicate
 * JSON keys rejected at any depth; the signature (HS256: 32 bytes; ES256 / ES384: 64 / 96 bytes
 * R||S with R and S in [1, n-1], not DER; EdDSA: 64 bytes; RSA: exactly the modulus' length) is
 * checked before the payload is decoded; sub required (sl_principal_valid); exp required unless
 * exp_optional; exp, nbf and iat must be numbers, honoured with leeway (exp <= now
 * - leeway is expired, nbf or iat > now + leeway not yet valid); aud a string or array of strings,
 * iss and jti (at most SL_TOKEN_ID_MAX bytes) strings; role, when present, must be
 * read|write|admin; channels, when present, an array of at most 1024 valid patterns.
 * Tokens are typed: a token with a "channel" claim is a subscription token and is refused here
 * ("wrong kind of token"), so it can never authenticate a caller. */
int sl_jwt_verify(sl_jwt_keyring *kr, const char *token, size_t len, const sl_jwt_verify_opts *o,
                  double now, sl_identity *out, sl_status *st);

/* Verifies a subscription token: the same rules, except that the "channel" claim (a valid channel
 * id) is required and copied into `channel`, and "exp" is required whatever o->exp_optional says.
 * A token without "channel" (a bearer or connection token) is refused: "wrong kind of token". */
int sl_jwt_verify_subscription(sl_jwt_keyring *kr, const char *token, size_t len,
                               const sl_jwt_verify_opts *o, double now, sl_identity *out,
                               char channel[SL_CHANNEL_ID_MAX + 1], sl_status *st);

/* Token ids bound to their subject, so a principal can prove a token id is one of its own
 * without the server keeping a list of issued tokens: 32 random hex digits followed by 32 hex
 * digits of an HMAC (under an HS256 key of kr) over the random part and sub. */
#define SL_JWT_TOKEN_ID_LEN 64
/* Fills out with a new id for sub (NUL-terminated). SL_ENOENT without an HS256 key, SL_EINVAL for
 * an invalid sub. */
int sl_jwt_token_id_new(sl_jwt_keyring *kr, const char *sub, char out[SL_JWT_TOKEN_ID_LEN + 1]);
/* 1 when token_id was made by sl_jwt_token_id_new for sub under some HS256 key of kr (compared in
 * constant time), else 0. */
int sl_jwt_token_id_of(sl_jwt_keyring *kr, const char *token_id, const char *sub);

typedef struct sl_jwt_claims {
    const char *sub;             /* required */
    sl_role role;                /* SL_ROLE_NONE: no "role" claim */
    const char *const *channels; /* with scoped = 1: the "channels" claim */
    size_t nchannels;
    int scoped;          /* 0: no "channels" claim (all channels) */
    double iat;          /* 0: omitted */
    double exp;          /* 0: omitted */
    double nbf;          /* 0: omitted */
    const char *jti;     /* NULL: omitted */
    const char *aud;     /* NULL: omitted */
    const char *iss;     /* NULL: omitted */
    const char *act_sub; /* NULL: omitted; else {"act":{"sub":...}} (RFC 8693) */
    const char *channel; /* NULL: omitted; else a subscription token for this channel */
    /* NULL or "": omitted; else the "ws" claim, the subject's workspace */
    const char *workspace;
} sl_jwt_claims;

/* Signs claims with the HS256 key named kid (NULL: the default key). *out is a NUL-terminated token
 * owned by the caller (free()), NULL on failure: SL_ENOENT when there is no such key, SL_EINVAL for
 * a public (verify-only) key, an invalid sub, act_sub, role or channel pattern, a jti over
 * SL_TOKEN_ID_MAX bytes, more than 1024 channels, a non-finite time or a string that is not UTF-8;
 * SL_ETOOBIG when the token would exceed SL_JWT_MAX_LEN. Whole-second times are written as
 * integers. */
int sl_jwt_sign(sl_jwt_keyring *kr, const char *kid, const sl_jwt_claims *c, char **out);

/* Decodes without verifying (for `sluice token inspect`): *header and *payload are JSON texts owned
 * by the caller (free()). SL_ETOKEN when not three base64url segments of JSON. */
int sl_jwt_decode_unverified(const char *token, size_t len, char **header, char **payload);

#ifdef __cplusplus
}
#endif
#endif
