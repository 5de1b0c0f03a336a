/* The metrics registry of one sluiced (docs/OPERATIONS.md "Metrics"): counters and fixed-bucket
 * histograms in plain arrays, indexed by label sets that are fixed at build time (operation,
 * status, authenticator, outcome, engine request kind, disconnect code), so a hook on the hot path
 * is an increment or two on the loop thread and never a string lookup. Every hook takes a NULL
 * registry (metrics off, in-process callers, tests) and does nothing then. The text renderer
 * (Prometheus exposition format 0.0.4) is here too, with the label escaping every caller shares;
 * figures only known at scrape time (channel depths, the store, the process) are added by the
 * scrape's collectors (server/routes_metrics.c). No I/O except the /proc reads of the process
 * figures at render time. Not thread-safe: the loop thread only. */
#ifndef SLUICE_CORE_METRICS_H
#define SLUICE_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

struct sl__mtext;

/* Latency buckets (upper bounds, seconds) of every histogram; +Inf is implied. They start at
 * 100 us: a request or an engine operation on the memory engine takes tens to hundreds of
 * microseconds, an LMDB group commit about half a millisecond on a fast disk. */
#define SL__M_NBUCKETS 16
static const double sl__m_bounds[SL__M_NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                    0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                    1,      2.5,     5,      10};

typedef struct sl__histo {
    uint64_t b[SL__M_NBUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count;
    double sum;
} sl__histo;

static inline void sl__histo_observe(sl__histo *h, double v)
{
    size_t i = 0;
    if (v < 0) /* the wall clock stepped back */
        v = 0;
    while (i < SL__M_NBUCKETS && v > sl__m_bounds[i])
        i++;
    h->b[i]++;
    h->count++;
    h->sum += v;
}

/* HTTP statuses counted under their own label; anything else is "other". */
#define SL__M_NSTATUS 19
/* Authentication outcomes. */
enum {
    SL__M_AUTH_OK,
    SL__M_AUTH_MISSING,     /* no credential an allowed authenticator takes (401) */
    SL__M_AUTH_INVALID,     /* refused (401) */
    SL__M_AUTH_EXPIRED,     /* refused: expired (401) */
    SL__M_AUTH_REVOKED,     /* accepted, then found revoked (401) */
    SL__M_AUTH_UNAVAILABLE, /* an authenticator or the revocation store could not decide (503) */
    SL__M_AUTH_COUNT
};
/* Authenticators: sl_source values (SL_SOURCE_CERT is the last) and "none" for a refusal. */
#define SL__M_NSOURCE (SL_SOURCE_CERT + 2)
/* Revocation check outcomes. */
enum { SL__M_REV_OK, SL__M_REV_REVOKED, SL__M_REV_ERROR, SL__M_REV_COUNT };
/* Engine request kinds (store/engine.h sl__eop_kind; SL__EOP_PRESENCE_GET is the last). */
#define SL__M_NEOP 19
/* WebSocket disconnect codes counted under their own label; anything else is "other". */
#define SL__M_NDISC 21

typedef struct sl__metrics_collector {
    /* Appends families to t at scrape time (the loop thread). */
    void (*fn)(void *ud, struct sl__mtext *t);
    void *ud;
    void (*free_ud)(void *ud); /* NULL: ud is borrowed */
} sl__metrics_collector;

#define SL__M_MAX_COLLECTORS 8

typedef struct sl__metrics {
    double started;              /* wall clock at start (process_start_time_seconds) */
    size_t top_channels;         /* channels reported by depth (default 20) */
    const char *const *patterns; /* borrowed: channels always reported (opt-in), or NULL */
    size_t npatterns;
    /* HTTP requests: by operation (SL_OP__COUNT: no route matched) and status */
    uint64_t requests[SL_OP__COUNT + 1][SL__M_NSTATUS];
    sl__histo request_seconds[SL_OP__COUNT + 1];
    uint64_t authn[SL__M_NSOURCE][SL__M_AUTH_COUNT];
    uint64_t denials[SL_OP__COUNT];
    uint64_t revocation[SL__M_REV_COUNT];
    uint64_t broker[2][2]; /* [issue, delegate][issued, denied] */
    /* engine requests of the channel API: latency on the loop's clock (ms), errors by kind */
    sl__histo engine_seconds[SL__M_NEOP];
    uint64_t engine_errors[SL__M_NEOP];
    uint64_t dead_letters; /* messages moved to a dead-letter queue (or dropped there) */
    /* WebSocket */
    uint64_t ws_connections; /* sessions opened */
    int64_t ws_sessions;     /* open now */
    uint64_t ws_subscriptions;
    int64_t ws_subscribed; /* subscriptions open now */
    uint64_t ws_deliveries;
    uint64_t ws_bytes_in, ws_bytes_out;
    uint64_t ws_disconnects[SL__M_NDISC + 1];
    sl__metrics_collector collectors[SL__M_MAX_COLLECTORS];
    size_t ncollectors;
} sl__metrics;

/* started: the wall clock now. *out owned by the caller, released with sl__metrics_free. */
int sl__metrics_new(sl__metrics **out, double started);
void sl__metrics_free(sl__metrics *m);
/* Adds a collector run at every render (SL_ELIMIT past SL__M_MAX_COLLECTORS). free_ud NULL: ud
 * is borrowed; else the registry owns it and releases it with free_ud (also on failure). */
int sl__metrics_add_collector(sl__metrics *m, void (*fn)(void *ud, struct sl__mtext *t), void *ud,
                              void (*free_ud)(void *ud));

/* ---- hooks (NULL registry: nothing) -----------------------------------------------------------
 */

int sl__metrics_status_slot(int status);

/* One HTTP request answered: op SL_OP__COUNT when no route matched. */
static inline void sl__metrics_request(sl__metrics *m, int op, int status, double seconds)
{
    if (m == NULL)
        return;
    m->requests[op][sl__metrics_status_slot(status)]++;
    sl__histo_observe(&m->request_seconds[op], seconds);
    if ((op == SL_OP_TOKEN_ISSUE || op == SL_OP_TOKEN_DELEGATE) && (status < 300 || status == 403))
        m->broker[op == SL_OP_TOKEN_DELEGATE][status == 403]++;
}
/* The authentication step's verdict: who NULL unless accepted. */
void sl__metrics_authn(sl__metrics *m, int status, const sl_identity *who, const char *reason);
static inline void sl__metrics_denied(sl__metrics *m, sl_op op)
{
    if (m && (int)op >= 0 && op < SL_OP__COUNT)
        m->denials[op]++;
}
static inline void sl__metrics_revocation(sl__metrics *m, int outcome)
{
    if (m)
        m->revocation[outcome]++;
}
/* An engine request completed with rc after ms milliseconds of the loop's clock. */
void sl__metrics_engine(sl__metrics *m, int kind, int rc, double seconds);
void sl__metrics_ws_disconnect(sl__metrics *m, int code);

/* ---- the text (Prometheus exposition format 0.0.4) ------------------------------------------- */

typedef struct sl__mtext {
    char *data;
    size_t len, cap;
    int oom; /* an append failed: the text is incomplete */
} sl__mtext;

/* The # HELP and # TYPE lines of a family (help: plain text without newlines). */
void sl__mtext_family(sl__mtext *t, const char *name, const char *type, const char *help);
/* One sample: labels is NULL or pairs name, value ended by NULL; values are escaped (backslash,
 * double quote, newline; other control bytes and bytes past ASCII become U+FFFD). */
void sl__mtext_sample(sl__mtext *t, const char *name, const char *const *labels, double v);
/* A histogram's _bucket, _sum and _count samples with one optional label (lname NULL: none). */
void sl__mtext_histo(sl__mtext *t, const char *name, const char *lname, const char *lvalue,
                     const sl__histo *h);
/* Appends the escaped form of a label value. */
void sl__mtext_escape(sl__mtext *t, const char *v);
void sl__mtext_free(sl__mtext *t);

/* Renders the registry's families, the process figures and every collector's into t. SL_OK or
 * SL_ENOMEM. */
int sl__metrics_render(const sl__metrics *m, sl__mtext *t, double now);

#endif
