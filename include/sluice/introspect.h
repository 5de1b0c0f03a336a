/* The token-introspection authenticator: a bearer token that is not a sluice token is posted to an
 * RFC 7662 introspection endpoint, and the endpoint's `active` and `sub` decide who the caller is.
 * Requests run asynchronously on the server's libuv loop (libcurl's multi interface), answers are
 * cached for a bounded time under the SHA-256 of the token, and the authenticator fails closed: an
 * endpoint that cannot answer (unreachable, slow, 5xx, garbage) makes every uncached token fail
 * with SL_EUNAVAIL, which the transport answers with 503 and Retry-After. docs/INTROSPECTION.md
 * describes the request, the answer's fields, the cache and the configuration.
 *
 * Threading: one loop thread; nothing here is thread-safe. */
#ifndef SLUICE_INTROSPECT_H
#define SLUICE_INTROSPECT_H

#include <stddef.h>
#include <uv.h>

#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_INTROSPECT_DEFAULT_TTL 30.0        /* seconds an answer is cached */
#define SL_INTROSPECT_MAX_TTL 300.0           /* the largest cache_ttl accepted */
#define SL_INTROSPECT_DEFAULT_CACHE 10000     /* cached answers */
#define SL_INTROSPECT_MAX_CACHE 1000000       /* the largest cache_max accepted */
#define SL_INTROSPECT_DEFAULT_TIMEOUT_MS 2000 /* whole request, and connect */
#define SL_INTROSPECT_MAX_TIMEOUT_MS 60000
#define SL_INTROSPECT_DEFAULT_INFLIGHT 256 /* distinct tokens being asked about at once */
#define SL_INTROSPECT_TOKEN_MAX 8192       /* bytes of a bearer token */
#define SL_INTROSPECT_RESPONSE_MAX 65536   /* bytes of an endpoint's answer */
#define SL_INTROSPECT_RETRY_AFTER 5        /* seconds: a suggested Retry-After for SL_EUNAVAIL */

typedef struct sl_introspect sl_introspect;

typedef struct sl_introspect_opts {
    /* The endpoint: https://...; http:// only to a loopback host (127.0.0.0/8, [::1], localhost)
     * unless allow_http is set, because the request carries the token and the client secret. */
    const char *url;
    /* HTTP Basic client authentication (RFC 7662 §2.1, RFC 6749 §2.3.1): both set, or neither.
     * Each is form-urlencoded before Basic encoding, as RFC 6749 asks. Copied; the secret is
     * wiped from memory on free and never logged. */
    const char *client_id;
    const char *client_secret;
    double cache_ttl;        /* seconds; 0: SL_INTROSPECT_DEFAULT_TTL; < 0: no caching;
                                at most SL_INTROSPECT_MAX_TTL */
    size_t cache_max;        /* answers; 0: SL_INTROSPECT_DEFAULT_CACHE */
    long timeout_ms;         /* whole request; 0: SL_INTROSPECT_DEFAULT_TIMEOUT_MS */
    long connect_timeout_ms; /* 0: timeout_ms */
    size_t max_inflight;     /* 0: SL_INTROSPECT_DEFAULT_INFLIGHT; beyond it: SL_EUNAVAIL */
    const char *ca_file;     /* PEM bundle to verify the endpoint; NULL: the system's */
    int allow_http;          /* 1: accept http:// to any host (trusted networks only) */
    /* the answer's member naming the caller's workspace (docs/POLICY.md); NULL: none.
     * Absent from an answer: the default workspace; not a workspace name: the token is refused. */
    const char *workspace_claim;
} sl_introspect_opts;

/* Zeroes o: every field at its default (url must still be set). */
void sl_introspect_opts_init(sl_introspect_opts *o);

/* The answer for one token, called exactly once per sl_introspect_authenticate:
 *   SL_OK       the endpoint says the token is active; *who is the caller: principal = `sub`,
 *               source SL_SOURCE_INTROSPECTION, token_id = `jti` when it is a valid revocation
 *               id, issued_at = `iat`, expires_at = `exp` (0 when absent); role and channel scope
 *               only as the answer's `scope` narrows them (sl_identity_apply_scope: a ceiling,
 *               never a grant), else role SL_ROLE_NONE and not scoped
 *   SL_ETOKEN   the token is not accepted: inactive, no valid `sub`, malformed `exp`/`iat`/`scope`,
 * or not a plausible bearer token (empty, too long, bytes outside 0x21..0x7e) SL_EEXPIRED the
 * endpoint says active but its `exp` has passed SL_EUNAVAIL the endpoint could not answer
 * (connection, timeout, non-200, malformed answer), too many requests in flight, or the
 * authenticator is closing: refuse with 503 SL_ENOMEM   out of memory who is non-NULL only for
 * SL_OK and valid only during the call (keep it with sl_identity_copy). reason is NULL for SL_OK,
 * otherwise a fixed short text (never the token or anything the endpoint sent). The callback runs
 * synchronously, before authenticate returns, for cached answers and early refusals; otherwise
 * later from the loop. */
typedef void (*sl_introspect_cb)(void *ud, int status, const sl_identity *who, const char *reason);

/* Optional log sink: one line, without newline, when the endpoint starts failing ("introspection:
 * endpoint failing (HTTP 401)") and when it answers again, never per request; never a token or
 * secret. The sink must not keep the pointer. */
typedef void (*sl_introspect_log_fn)(void *ud, const char *line);

/* Creates the authenticator on `loop` (required). clock NULL: wall clock (it decides `exp` and
 * cache expiry; curl's timeouts run on the loop's clock). SL_OK, SL_EINVAL (bad option: see
 * sl_introspect_opts), SL_EINTERNAL (libcurl could not be initialised) or SL_ENOMEM. Nothing is
 * sent until the first authenticate. *out owned by the caller. */
int sl_introspect_new(sl_introspect **out, uv_loop_t *loop, const sl_introspect_opts *o,
                      sl_clock_fn clock, void *clock_ud);

/* Asks about token[0..len) (the bearer credential, without "Bearer "). A cached answer is given at
 * once; otherwise the token is posted, and concurrent calls for the same token share one request.
 * cb must not be NULL. May be called from inside a callback. */
void sl_introspect_authenticate(sl_introspect *i, const char *token, size_t len,
                                sl_introspect_cb cb, void *ud);

/* Closes the authenticator. Every callback still pending is called with SL_EUNAVAIL before this
 * returns (calls made from those callbacks answer SL_EUNAVAIL at once); none is called afterwards.
 * May be called from inside one of its callbacks, but not from a callback this function is running.
 * Handles close through the loop: the memory is released by the loop's close callbacks, so call it
 * while the loop still runs or run the loop once more afterwards. NULL is a no-op. */
void sl_introspect_free(sl_introspect *i);

void sl_introspect_set_log(sl_introspect *i, sl_introspect_log_fn fn, void *ud);

/* Drops every cached answer (e.g. after the endpoint's policy changed). */
void sl_introspect_cache_clear(sl_introspect *i);

typedef struct sl_introspect_stats {
    size_t cached;          /* answers in the cache now (some may have expired, unread) */
    size_t inflight;        /* requests on the wire now */
    unsigned long hits;     /* answers from the cache */
    unsigned long shared;   /* calls that joined a request already in flight */
    unsigned long requests; /* requests sent */
    unsigned long failures; /* requests that ended in SL_EUNAVAIL */
} sl_introspect_stats;
void sl_introspect_get_stats(const sl_introspect *i, sl_introspect_stats *st);

/* The introspection client as a link of the authentication chain (include/sluice/authn.h). The
 * adapter borrows i, which must outlive it; release the adapter with (*out)->free(*out). */
struct sl_authenticator;
int sl_introspect_authenticator_new(sl_introspect *i, struct sl_authenticator **out);

#ifdef __cplusplus
}
#endif
#endif
