/* Authentication: step 1 of the pipeline. Turns the credential a network transport received into an
 * sl_identity. Sluice JWTs are verified here; further authenticators (API keys, upstream identity
 * providers' JWTs, token introspection) plug in through sl_authenticator and are tried in the
 * configured order. Without any authenticator the server runs open and callers are anonymous. */
#ifndef SLUICE_AUTHN_H
#define SLUICE_AUTHN_H

#include <stddef.h>

#include <sluice/jwt.h>
#include <sluice/revocation.h>
#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The answer of an authenticator: status SL_OK with who (valid during the call only), SL_ETOKEN or
 * SL_EEXPIRED when it rejects the credential (reason: a short fixed text, never the credential),
 * SL_EUNAVAIL when it could not decide (its backend is unreachable: fail closed). */
typedef void (*sl_authn_cb)(void *ud, int status, const sl_identity *who, const char *reason);

/* A pluggable authenticator. authenticate must call cb exactly once, now or later from the loop. */
typedef struct sl_authenticator {
    const char *name;
    void (*authenticate)(struct sl_authenticator *a, const char *cred, size_t len, double now,
                         sl_authn_cb cb, void *ud);
    void (*free)(struct sl_authenticator *a);
} sl_authenticator;

#define SL_AUTHN_MAX 8

typedef struct sl_authn {
    sl_jwt_keyring *keys; /* borrowed; sluice tokens; NULL: not accepted */
    sl_jwt_verify_opts jwt;
    sl_authenticator *chain[SL_AUTHN_MAX]; /* borrowed; tried in order after sluice tokens */
    size_t nchain;
    sl_revocation_store *revocation; /* borrowed; NULL: nothing is ever revoked */
} sl_authn;

/* 1 when some authenticator is configured (else the server is open and callers anonymous). */
int sl_authn_enabled(const sl_authn *a);

/* Runs the chain on an Authorization header value (NULL when absent): sluice tokens first, then
 * each authenticator in order; the first to accept decides. When none accepts: SL_EUNAVAIL if one
 * could not decide, else the first rejection. No header (or not Bearer): SL_EUNAUTH. Not enabled:
 * an anonymous identity. Revocation is part of authentication: the identity the chain accepted,
 * whichever authenticator produced it, is checked against a->revocation (its token id, and its
 * principal against the user cut-off with its issued_at) before cb hears of it; a revoked one is
 * SL_ETOKEN "token revoked", an unreachable store SL_EUNAVAIL. A subscription token is never
 * accepted here. cb is called exactly once, possibly before this returns. */
void sl_authn_run(const sl_authn *a, const char *header, size_t len, double now, sl_authn_cb cb,
                  void *ud);

/* A subscription token (channels named `$...` on the WebSocket transport): a sluice JWT of the
 * subscription kind (sl_jwt_verify_subscription), whose sub is user, whose "channel" claim is
 * exactly channel, and which passes the same revocation check as every credential. cb gets SL_OK
 * with the token's identity (token_id, issued_at, expires_at); SL_EEXPIRED; SL_ETOKEN when it does
 * not verify, is of the wrong kind, is revoked, or no sluice keys are configured; SL_EFORBIDDEN
 * when it verifies but was issued for another user or channel; SL_EUNAVAIL when the revocation
 * store cannot answer. cb is called exactly once, possibly before this returns. */
void sl_authn_subscription_run(const sl_authn *a, const char *token, const char *user,
                               const char *channel, double now, sl_authn_cb cb, void *ud);

/* Extracts the token of a "Bearer <token>" header (scheme case-insensitive). NULL when it is not
 * one; *tlen receives the token length. */
const char *sl_authn_bearer_token(const char *header, size_t len, size_t *tlen);

#ifdef __cplusplus
}
#endif
#endif
