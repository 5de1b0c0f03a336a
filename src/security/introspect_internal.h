/* Internals of the introspection client (src/security/introspect.c) exposed to its fuzz target and
 * unit tests: the judgement of an endpoint's answer, without curl or the loop. Nothing here is part
 * of the public API. */
#ifndef SLUICE_SECURITY_INTROSPECT_INTERNAL_H
#define SLUICE_SECURITY_INTROSPECT_INTERNAL_H

#include <stddef.h>

#include <sluice/sluice.h>

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

#endif
