/* Signed requests: HTTP Message Signatures (RFC 9421) with Content-Digest (RFC 9530), both ways.
 * The server verifies a request's Signature-Input / Signature against a keyring loaded from the
 * configuration (keyid -> algorithm, key, principal, scope, the components the key must cover);
 * the client library and the CLI sign with a secret or a private key. docs/SIGNING.md describes
 * the wire format and the policy.
 *
 * Algorithms: hmac-sha256, ed25519, ecdsa-p256-sha256. Every reason given for a refusal is fixed
 * text that may name a component, a parameter or a keyid, never key material. */
#ifndef SLUICE_HTTPSIG_H
#define SLUICE_HTTPSIG_H

#include <stddef.h>

#include <sluice/authn.h>
#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SL_HTTPSIG_HMAC_SHA256 = 1,
    SL_HTTPSIG_ED25519,
    SL_HTTPSIG_ECDSA_P256_SHA256,
} sl_httpsig_alg;

/* "hmac-sha256" | "ed25519" | "ecdsa-p256-sha256" (RFC 9421's registry names); 0 when unknown. */
sl_httpsig_alg sl_httpsig_alg_parse(const char *s);
const char *sl_httpsig_alg_name(sl_httpsig_alg a);

#define SL_HTTPSIG_KEYID_MAX 128
#define SL_HTTPSIG_NONCE_MAX 128
#define SL_HTTPSIG_DEFAULT_SKEW 300.0

/* ---- the verifier's keys -------------------------------------------------------------------- */

typedef struct sl_httpsig_keyring sl_httpsig_keyring;

/* One key as the configuration gives it (everything is copied). */
typedef struct sl_httpsig_key_opts {
    const char *keyid;
    sl_httpsig_alg alg;
    /* hmac-sha256: the shared secret's bytes; ed25519 / ecdsa-p256-sha256: a PEM public key */
    const char *material;
    size_t material_len;
    const char *principal;
    sl_role role;                /* the role the key carries; SL_ROLE_NONE: none */
    int scoped;                  /* 1: the identity is limited to channels[] */
    const char *const *channels; /* patterns, as an API key's */
    size_t nchannels;
    /* components the signature must cover besides the minimum (@method, the target, and
     * content-digest when there is a body): field names ("content-type") or derived ones */
    const char *const *components;
    size_t ncomponents;
    int nonce_optional; /* 1: a signature without a nonce is accepted (default: refused) */
    /* the workspace the key's principal belongs to ("": the default workspace) */
    char workspace[SL_WORKSPACE_MAX + 1];
} sl_httpsig_key_opts;

/* *out released with sl_httpsig_keyring_free. */
int sl_httpsig_keyring_new(sl_httpsig_keyring **out);
void sl_httpsig_keyring_free(sl_httpsig_keyring *kr);
/* SL_OK; SL_EINVAL (st says why: a bad keyid, principal, pattern, component or key) or
 * SL_EEXIST when the keyid is taken; SL_ENOMEM. */
int sl_httpsig_keyring_add(sl_httpsig_keyring *kr, const sl_httpsig_key_opts *o, sl_status *st);
size_t sl_httpsig_keyring_size(const sl_httpsig_keyring *kr);

/* Adds the keys of a key file's text (JSON; docs/SIGNING.md): {"keys": [{"keyid", "alg", "key",
 * "principal", "role"?, "channels"?, "components"?, "nonce"?, "key_encoding"?}]}. "key" is
 * "env:NAME" (the variable's value), "file:PATH" (the file's bytes without trailing newlines, as
 * every secret file) or "inline:TEXT" (tests only); key_encoding "base64" decodes an HMAC
 * secret. Reads those variables and files (I/O). SL_ECONFIG with st naming the key and field,
 * never a secret. Nothing is added on error. */
int sl_httpsig_keyring_load(sl_httpsig_keyring *kr, const char *json, size_t len, sl_status *st);

/* ---- verifying --------------------------------------------------------------------------------
 */

/* What a verified signature says (valid while the keyring is). */
typedef struct sl_httpsig_verified {
    char keyid[SL_HTTPSIG_KEYID_MAX + 1];
    char nonce[SL_HTTPSIG_NONCE_MAX + 1]; /* "" when none */
    double created, expires;              /* expires 0: none */
    const sl_httpsig_key_opts *key;       /* the key's settings (copies owned by the keyring) */
} sl_httpsig_verified;

/* Verifies the request's signature: picks the first label of Signature-Input whose keyid is in
 * kr, checks its parameters (created within max_skew of now, expires, alg, nonce when the key
 * requires one), that the covered components include what the key's policy requires, that
 * Content-Digest matches the body (before the body is used for anything), builds the signature
 * base (RFC 9421 section 2.5) and checks the signature. No I/O, no replay check (the caller
 * remembers out->nonce). Returns SL_OK; SL_EUNAUTH when the request carries neither
 * Signature-Input nor Signature (not a signed request); SL_ETOKEN with a reason in st for
 * everything else (malformed or duplicated headers, an unknown keyid, a mismatch). */
int sl_httpsig_verify(const sl_httpsig_keyring *kr, const sl_authn_request *req, double now,
                      double max_skew, sl_httpsig_verified *out, sl_status *st);

/* Checks a Content-Digest field value (RFC 9530) against body: every sha-256 / sha-512 entry must
 * match and at least one must be there (other algorithms are ignored). SL_OK, or SL_ETOKEN with
 * the reason in st. */
int sl_httpsig_check_digest(const char *value, size_t len, const char *body, size_t body_len,
                            sl_status *st);

/* ---- signing ----------------------------------------------------------------------------------
 */

typedef struct sl_httpsig_signer {
    const char *keyid;
    sl_httpsig_alg alg;
    /* hmac-sha256: the secret's bytes; ed25519 / ecdsa-p256-sha256: a PEM private key */
    const char *key;
    size_t key_len;
    /* The PEM key parsed once (sl_httpsig_signer_load), owned here; NULL: parsed at each
     * signature, which costs OpenSSL's decoders about half a millisecond. */
    struct evp_pkey_st *pkey;
} sl_httpsig_signer;

/* Parses s's private key once for all its signatures (nothing to do for hmac-sha256). SL_OK, or
 * SL_EINVAL when the key is not a PEM private key of s's algorithm. Release with
 * sl_httpsig_signer_clear. */
int sl_httpsig_signer_load(sl_httpsig_signer *s, sl_status *st);
void sl_httpsig_signer_clear(sl_httpsig_signer *s);

/* The header values that sign one request (each malloc'd, NUL-terminated; release with
 * sl_httpsig_headers_clear). content_digest is NULL for an empty body. */
typedef struct sl_httpsig_headers {
    char *content_digest;
    char *signature_input;
    char *signature;
} sl_httpsig_headers;
void sl_httpsig_headers_clear(sl_httpsig_headers *h);

/* Signs a request to scheme://authority path[?query] (query NULL or "": none) covering @method,
 * @target-uri and, with a body, content-digest (sha-256 over body), with created = now, a random
 * nonce, keyid and alg, under the label "sig1". The request must carry exactly these method,
 * target and body, and a Host field equal to authority. SL_OK; SL_EINVAL for a bad signer (st
 * says why, never the key); SL_ENOMEM. */
int sl_httpsig_sign(const sl_httpsig_signer *s, const char *method, const char *scheme,
                    const char *authority, const char *path, const char *query, const char *body,
                    size_t body_len, double now, sl_httpsig_headers *out, sl_status *st);

#ifdef __cplusplus
}
#endif
#endif
