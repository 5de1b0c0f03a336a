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

/* A verified TLS client certificate (mutual TLS): who the connection's peer is. */
typedef struct sl_authn_peer {
    const char *subject;     /* RFC 2253 text of the subject name */
    const char *const *sans; /* subjectAltName entries as "DNS:x", "URI:x", "email:x", "IP:x" */
    size_t nsans;
} sl_authn_peer;

/* What an authenticator may see of the request beyond a bearer credential: a signed request
 * (RFC 9421) covers the method, target, headers and body; a client certificate belongs to the
 * connection. The transport keeps everything here valid until the chain's callback has run. */
typedef struct sl_authn_request {
    const char *method;    /* "GET", "POST", ... */
    const char *scheme;    /* "http" or "https" */
    const char *authority; /* the Host header, NULL when absent */
    size_t authority_len;
    const char *path; /* raw request path, not percent-decoded */
    size_t path_len;
    const char *query; /* after '?' (without it), "" when none */
    size_t query_len;
    const char *body; /* the whole body ("" when none) */
    size_t body_len;
    /* The nth (0-based) field named name (compared case-insensitively), or NULL when there are
     * fewer; *len receives its value's length (whitespace trimmed). */
    const char *(*header)(const struct sl_authn_request *r, const char *name, size_t nth,
                          size_t *len);
    const void *impl;          /* the transport's request, for header */
    const sl_authn_peer *peer; /* a verified client certificate, or NULL */
    unsigned accept;           /* SL_AUTHN_KIND_* allowed here (the route's mode); 0: all */
} sl_authn_request;

/* What an authenticator takes. Bearer authenticators get the token of the Authorization header;
 * the others get the whole request view. */
enum {
    SL_AUTHN_KIND_BEARER = 1, /* sluice JWTs, API keys, upstream JWTs, introspected tokens */
    SL_AUTHN_KIND_SIGNED = 2, /* HTTP message signatures */
    SL_AUTHN_KIND_CERT = 4,   /* TLS client certificates */
    /* A mode, not a kind: every request is anonymous (a listener or route that takes no
     * credential, e.g. a public health check); the authoriser still decides what it may do. */
    SL_AUTHN_ANONYMOUS = 8,
};

/* A listener's or a route prefix's mode as configured: "any" (0: every kind), "bearer", "signed",
 * "cert", several joined with '+' ("signed+cert"), or "none" (SL_AUTHN_ANONYMOUS). -1 when
 * unknown. */
int sl_authn_mode_parse(const char *s);

/* A pluggable authenticator. authenticate (bearer kind) or authenticate_request (the others) must
 * call cb exactly once, now or later from the loop. A request authenticator that finds no
 * credential of its own in the request answers SL_EUNAUTH: the chain then goes on as if it were
 * not there (that answer is never the chain's reason when another authenticator had something to
 * say). */
typedef struct sl_authenticator {
    const char *name;
    unsigned kind; /* SL_AUTHN_KIND_*; 0 is read as SL_AUTHN_KIND_BEARER */
    void (*authenticate)(struct sl_authenticator *a, const char *cred, size_t len, double now,
                         sl_authn_cb cb, void *ud);
    void (*authenticate_request)(struct sl_authenticator *a, const sl_authn_request *req,
                                 double now, sl_authn_cb cb, void *ud);
    void (*free)(struct sl_authenticator *a);
} sl_authenticator;

#define SL_AUTHN_MAX 8

typedef struct sl_authn {
    sl_jwt_keyring *keys; /* borrowed; sluice tokens; NULL: not accepted */
    sl_jwt_verify_opts jwt;
    sl_authenticator *chain[SL_AUTHN_MAX]; /* borrowed; tried in order after sluice tokens */
    size_t nchain;
    sl_revocation_store *revocation; /* borrowed; NULL: nothing is ever revoked */
    struct sl__metrics *metrics;     /* internal: the server's counters, or NULL */
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

/* The same chain over a whole request (HTTP requests and WebSocket upgrades): bearer
 * authenticators get the Authorization header's token as in sl_authn_run, request authenticators
 * (signatures, client certificates) the view, each only when its kind is in req->accept (0: every
 * kind). Tried in chain order, the sluice tokens first; the first to accept decides, and its
 * identity passes the revocation check. Nothing presented that an allowed authenticator takes:
 * SL_EUNAUTH. req must stay valid until cb has run. */
void sl_authn_run_request(const sl_authn *a, const sl_authn_request *req, double now,
                          sl_authn_cb cb, void *ud);

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
