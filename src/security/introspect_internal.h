/* Internals of the introspection client (src/security/introspect.c) exposed to its fuzz target and
 * unit tests: the judgement of an endpoint's answer, without curl or the loop. Then what
 * introspect.c and its answer cache (introspect_cache.c) share: the authenticator's struct, a cache
 * entry and the cache's lookup and insertion. Nothing here is part of the public API. */
#ifndef SLUICE_SECURITY_INTROSPECT_INTERNAL_H
#define SLUICE_SECURITY_INTROSPECT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/introspect.h>
#include <sluice/sluice.h>

#include "net/curl_uv.h"

/* The outcome of one answer, before it is cached and delivered. */
typedef struct sl__introspect_result {
    int status;         /* SL_OK, SL_ETOKEN, SL_EEXPIRED or SL_EUNAVAIL */
    const char *reason; /* static text (never anything the endpoint sent); NULL with SL_OK */
    int cacheable;      /* SL_EUNAVAIL never is */
    double until;       /* cacheable: on the authenticator's clock */
    sl_identity who;    /* SL_OK: the subject; its scope may own channel patterns */
    const char *scope;  /* the answer's "scope" (borrowed from doc), NULL when none */
    size_t scope_len;
    struct json_t *doc; /* the parsed answer, owned */
} sl__introspect_result;

/* Releases what a judged result owns (its identity's scope and the parsed answer). */
void sl__introspect_result_clear(sl__introspect_result *r);

/* Judges the body (len bytes, need not be NUL-terminated) of an HTTP 200 answer received at now,
 * for a cache of ttl seconds; *why gets a log detail (static text) when the answer is malformed.
 * No I/O. */
void sl__introspect_judge_body(const char *body, size_t len, double now, double ttl,
                               sl__introspect_result *r, const char **why);

/* ---- introspect.c and introspect_cache.c ----------------------------------------------------- */

#define KEY_LEN 32 /* SHA-256 */

/* A cached answer. sub and jti point into the same allocation, after the struct. */
typedef struct centry {
    uint8_t key[KEY_LEN];
    struct centry *hnext;         /* bucket chain */
    struct centry *older, *newer; /* insertion order, for eviction */
    double until;                 /* cached until, on the authenticator's clock */
    int status;
    const char *reason;
    double iat, exp;
    char *sub, *jti, *scope;       /* scope: the answer's OAuth scope ("" when none) */
    char ws[SL_WORKSPACE_MAX + 1]; /* the caller's workspace ("" the default) */
} centry;

typedef struct ireq ireq; /* a request in flight (introspect.c) */

struct sl_introspect {
    sl__curl_uv *cu; /* curl on the loop */
    int closing;
    sl_clock_fn clock;
    void *clock_ud;
    char *url;
    char *ca_file;
    char *ws_claim;             /* sl_introspect_opts.workspace_claim, or NULL */
    struct curl_slist *headers; /* holds the Basic credentials: wiped on free */
    double ttl;                 /* <= 0: no caching */
    size_t cache_max;
    long timeout_ms, connect_timeout_ms;
    size_t max_inflight;
    centry **buckets;
    size_t nbuckets; /* power of two */
    size_t ncached;
    centry *oldest, *newest;
    ireq *reqs;
    size_t ninflight;
    sl_introspect_stats stats;
    sl_introspect_log_fn log;
    void *log_ud;
    int failing; /* the last request failed: log only the transitions */
};

/* The live entry for key (KEY_LEN bytes), or NULL; an expired one is dropped on the way. The entry
 * belongs to the cache: valid until the next call that changes it. */
centry *sl__introspect_cache_get(sl_introspect *i, const uint8_t *key, double now);
/* Caches a cacheable result r (copying what it keeps) until r->until, evicting as needed; without
 * a ttl, or when memory runs out, nothing is cached. */
void sl__introspect_cache_put(sl_introspect *i, const uint8_t *key, const sl__introspect_result *r,
                              double now);

#endif
