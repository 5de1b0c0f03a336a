/* The authorise contract (docs/POLICY.md): the one question every transport's pipeline
 * asks — "may this identity perform this capability on this resource?" — and the regimes that
 * answer it. A regime answers with allow, deny or error, a TTL and a reason, now or later on the
 * loop, exactly once. The built-in regimes (open, acl, token) answer at once from the context;
 * channels under SL_MODE_POLICY ("policy") are answered by the context's pluggable regime
 * (sl_ctx_set_regime): an in-process user's own C regime, or the HTTP policy regime
 * (sl_regime_http_new) that asks an Open Policy Agent style service. Every answer of the
 * pluggable regime goes through the context's decision cache (allow and deny alike, for the TTL
 * the regime gave, clamped to the configured maximum); errors never do.
 *
 * Ownership: questions and their strings are borrowed for the duration of the call that takes
 * them (a regime that answers later copies what it needs); decisions handed to a callback are
 * borrowed for the duration of the callback. */
#ifndef SLUICE_AUTHZ_H
#define SLUICE_AUTHZ_H

#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SL_VERDICT_ALLOW = 0,
    SL_VERDICT_DENY = 1,
    SL_VERDICT_ERROR = 2, /* the regime could not decide (timeout, outage, bad answer): denies,
                             is never cached, and is reported as SL_EUNAVAIL (503) */
} sl_verdict;

#define SL_AUTHZ_REASON_MAX 200

/* One answer. ttl: seconds the answer may be reused for the same question (0: not at all);
 * reason: for logs and denials, never a secret ("" when none). */
typedef struct sl_decision {
    sl_verdict verdict;
    double ttl;
    char reason[SL_AUTHZ_REASON_MAX + 1];
} sl_decision;

/* The question, with n resources at once (authorise_many: a listing, a token for 50 channels, a
 * socket's server-side subscriptions). capability: the registry's operation name
 * ("channel.write"); resources[i]: the channel id, principal, or NULL as the caller named it;
 * parameters: a JSON object text with the operation's details, or NULL. The identity includes
 * its workspace. */
typedef struct sl_authz_query {
    const sl_identity *who;
    const char *capability;
    const char *const *resources;
    size_t n;
    const char *parameters;
} sl_authz_query;

/* Receives decisions[0..n) in the order of the query's resources; called exactly once. */
typedef void (*sl_authz_done_fn)(void *ud, const sl_decision *decisions, size_t n);

/* A regime. Embed it as the first member of your own struct. authorise decides every resource of
 * q and calls done exactly once, before returning or later from the loop of the context it was
 * set on (never from another thread). free releases the regime; a regime with questions still
 * outstanding answers them SL_VERDICT_ERROR from free (callers may be waiting). */
typedef struct sl_regime sl_regime;
struct sl_regime {
    const char *name; /* "http", "my-policy": logs and audit records */
    void (*authorise)(sl_regime *self, const sl_authz_query *q, sl_authz_done_fn done, void *ud);
    void (*free)(sl_regime *self);
};

/* Sets the regime of SL_MODE_POLICY (owned from now on: the context frees it, as it does a
 * previous one; NULL: none, so every policy decision is an error). Drops every cached decision. */
void sl_ctx_set_regime(sl_ctx *ctx, sl_regime *regime);
/* The regime set (borrowed), or NULL. */
sl_regime *sl_ctx_regime(const sl_ctx *ctx);
/* The loop an asynchronous regime answers on (borrowed; NULL: none), which the synchronous C API
 * (sl_channel_*, sl_acl_*) turns while it waits for the regime's answer. Not needed when the
 * regime answers at once. Such calls must not be made from a callback of that loop. */
struct uv_loop_s;
void sl_ctx_set_authz_loop(sl_ctx *ctx, struct uv_loop_s *loop);

/* The decision cache's bounds: at most max_entries decisions (least recently used go first;
 * 0: no caching), each for at most ttl_max seconds whatever the regime says. Default 10000 and
 * 60 s. Drops every cached decision. */
void sl_ctx_set_authz_cache(sl_ctx *ctx, size_t max_entries, double ttl_max);

/* Asks the regime that governs each resource under the context's modes (a channel's own mode, the
 * per-pattern override, the server-wide mode), through the cache: the whole pipeline's decision
 * for who, with the same checks sl_authorize makes. An unknown capability is an error decision.
 * done is called exactly once (maybe before this returns); q is borrowed for this call only. */
void sl_authorise_many(sl_ctx *ctx, const sl_authz_query *q, sl_authz_done_fn done, void *ud);
/* One resource. */
void sl_authorise(sl_ctx *ctx, const sl_identity *who, const char *capability, const char *resource,
                  const char *parameters, sl_authz_done_fn done, void *ud);

/* Drops every cached decision (the policy changed). why: for the log and the audit record. */
void sl_authz_invalidate(sl_ctx *ctx, const char *why);

/* Per channel pattern override of the server-wide regime, below a channel's own mode: channels
 * matching pattern are decided under mode (open, acl, token or policy). The longest matching
 * pattern wins; a second setting of a pattern replaces it. SL_OK, SL_EINVAL (bad pattern or
 * mode), SL_ENOMEM. Drops every cached decision. */
int sl_ctx_authz_override(sl_ctx *ctx, const char *pattern, sl_mode mode);

/* The built-in models as regimes of the contract: mode SL_MODE_OPEN, SL_MODE_ACL or SL_MODE_TOKEN
 * decided from ctx (borrowed: it must outlive the regime) as a channel under that mode would be
 * (the registry's role, the credential's scope, the ACL). They answer at once with TTL 0. For a
 * regime of one's own that falls back on one of them (plug it with sl_ctx_set_regime, or call it
 * from your authorise). *out owned by the caller (its free). SL_EINVAL for another mode,
 * SL_ENOMEM. */
int sl_regime_builtin_new(sl_regime **out, sl_ctx *ctx, sl_mode mode);

/* ---- the HTTP policy regime ------------------------------------------------------------------ */

typedef struct sl_regime_http_opts {
    const char *url;    /* the policy's data API URL, e.g. http://127.0.0.1:8181/v1/data/sluice */
    double timeout;     /* seconds per question; <= 0: 2 */
    size_t concurrency; /* questions under way at once; 0: 16 */
    size_t queue_max;   /* questions waiting beyond that; 0: 1024 (more: error at once) */
    int allow_http;     /* 1: plain http to a host that is not loopback */
    struct uv_loop_s *loop;
} sl_regime_http_opts;

/* POSTs {"input": {"identity": {...}, "capability": ..., "resource": ..., "parameters": ...}} per
 * resource and reads {"result": {"allow": bool, "ttl": seconds, "reason": "..."}}. Identical
 * questions under way at once are asked once. A non-200 status, a reply that is not that shape or
 * a timeout is an error decision. *out owned by the caller until handed to sl_ctx_set_regime
 * (release with its free). SL_EINVAL (bad URL, with the reason in st), SL_ENOMEM, SL_EINTERNAL. */
int sl_regime_http_new(sl_regime **out, const sl_regime_http_opts *opts, sl_status *st);

/* The reply parser (no I/O; fuzzed): body of a 200 reply into *d. SL_OK, or SL_EFORMAT with d an
 * error decision whose reason says what was wrong. */
int sl_authz_http_parse(const char *body, size_t len, sl_decision *d);

#ifdef __cplusplus
}
#endif

#endif
