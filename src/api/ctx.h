/* The channel API layer's context: everything one sluice instance owns (clock, store engine,
 * server-wide mode, the channel registry with each channel's settings, the ACL, the audit sink).
 * Internal layout; the public API sees an opaque sl_ctx. */
#ifndef SLUICE_CORE_CTX_H
#define SLUICE_CORE_CTX_H

#include <sluice/sluice.h>

#include "core/map.h"
#include "security/acl.h"
#include "store/engine.h"

struct sl_ctx {
    struct sl__kv *kv; /* owned: the store of sl_ctx_options.data_dir, or NULL */
    sl_mode mode;
    sl_clock_fn clock;
    void *clock_ud;
    sl_engine *engine; /* owned */
    sl__map *channels; /* the channel registry: id -> sl_channel_info* (settings; depth unused) */
    sl__acl *acl;      /* owned */
    struct sl_broker *broker; /* borrowed */
    size_t read_max_bytes;    /* cap on one read's message bytes; 0: none */
    sl_audit_fn audit;
    void *audit_ud;
    sl_event_fn listener;
    void *listener_ud;
    /* borrowed: a kv that is not the engine's whose barrier sl__ctx_sync also waits for (the
     * security state shared on Redis, server/shared_state.c), or NULL */
    struct sl__kv *sync_kv;
    /* borrowed workspace operators and limits (security/workspace.h), or NULL: none */
    struct sl__workspaces *workspaces;
    /* the invoke policy (owned; security/invoke.h) */
    struct sl__invoke *invoke;
    /* the decision cache, the pluggable regime, per-pattern overrides; owned */
    struct sl__authz *authz;
    /* borrowed: the server's metrics registry (core/metrics.h), or NULL: none kept */
    struct sl__metrics *metrics;
    /* the channel request whose engine request is being submitted, until the engine answers it
     * or submit returns (api/channel.c: an answer inside submit is timed without a clock read) */
    struct sl__chop *submitting;
    /* sl__ctx_hold_now: the held time, and the holds open (0: sl_ctx_now reads the clock) */
    double now_held;
    unsigned now_holds;
};

/* Reads the clock once and makes sl_ctx_now answer that time until the matching
 * sl__ctx_release_now; a nested hold keeps the outer time. Returns the held time. A transport
 * holds the clock around the synchronous part of one request, so authentication, authorisation,
 * the channel API and the engine see one instant and the request reads the wall clock once
 * instead of six times (1.8 % of a PUT's profile, docs/BENCHMARKS.md). What completes later (a
 * durable commit, an asynchronous authoriser) reads the clock again. */
double sl__ctx_hold_now(sl_ctx *ctx);
void sl__ctx_release_now(sl_ctx *ctx);
/* Turns the loops a synchronous API call waits on (the regime's, then the engine's) until *done:
 * sl__authz_wait, then sl__engine_wait. A hold is suspended meanwhile, so the requests the loop
 * serves inside read their own time, and restored after. */
void sl__ctx_wait(sl_ctx *ctx, const int *done);

/* Replaces the context's engine (owned from now on; the old one is freed) and loads the channel
 * registry from it: how a server puts the durable engine in place before serving. Call before
 * any channel exists in the context. */
int sl__ctx_use_engine(sl_ctx *ctx, sl_engine *engine, sl_status *st);

/* fn(ud, rc) once every change made so far (channels, messages, and what the security stores
 * wrote through the engine's kv) is durable: at once with the memory engine. Transports send a
 * reply that did not come from a channel operation (a grant, a broker assignment, an API key)
 * from here, so no answer says "done" before the change would survive a crash. rc: SL_OK or
 * SL_ESTORAGE. Owns nothing; ud must live until fn runs. */
typedef void (*sl__ctx_sync_fn)(void *ud, int rc);
void sl__ctx_sync(sl_ctx *ctx, sl__ctx_sync_fn fn, void *ud);
/* Makes sl__ctx_sync also wait for kv's barrier (borrowed; NULL: none), after the engine's:
 * SL_EUNAVAIL or SL_ESTORAGE from it become the sync's rc. */
void sl__ctx_set_sync_kv(sl_ctx *ctx, struct sl__kv *kv);

/* ---- the asynchronous channel API ----------------------------------------------------------- */

/* One channel operation on its way through the pipeline: validate, authorise through the
 * registry, look the channel up, then the engine. sl_channel_* are its synchronous forms; the
 * transports submit these and answer from done. The submitter owns the request and everything
 * its inputs point to until done runs (which may be before sl__channel_submit returns), and the
 * outputs afterwards (release with sl__chop_clear). Zero-initialise, then set op, who, channel,
 * the inputs and done. */
typedef struct sl__chop sl__chop;
typedef void (*sl__chop_done_fn)(sl__chop *op);
struct sl__chop {
    sl_op op;               /* SL_OP_CHANNEL_* */
    const sl_identity *who; /* NULL: the system */
    const char *channel;    /* every op but LIST */
    /* inputs */
    const sl_channel_opts *opts; /* CREATE (NULL: defaults) */
    const sl_write *writes;      /* WRITE: nwrites messages, stored together or not at all */
    size_t nwrites;
    sl_read read;           /* READ; read.limit 0 with position set: the position only */
    int position;           /* READ: only the channel's newest sequence number (seq) */
    const char *const *ids; /* ACK, NACK, REMOVE, EXTEND, TERMINATE */
    size_t nids;
    double delay;       /* NACK (0: the queue's backoff); EXTEND: seconds (0: claim_timeout) */
    const char *reason; /* TERMINATE: the dead letters' reason (NULL: "terminated") */
    int release;        /* NACK: give back who's own claims without authorising (see below) */
    double before;      /* EVICT */
    size_t max_count;   /* EVICT */
    /* outputs */
    int rc;
    sl_status st;
    char (*item_ids)[SL__MSGID_LEN + 1]; /* WRITE: nwrites slots, or NULL */
    size_t duplicates;      /* WRITE: how many repeated an idempotency key (stored nothing) */
    unsigned char *dups;    /* WRITE: nwrites flags, 1 for such a repeat (the layer's; read-only) */
    sl_message_list list;   /* READ */
    uint64_t seq;           /* READ: the channel's newest sequence number */
    size_t count;           /* ACK, NACK, CLEAR, EVICT, REMOVE, EXTEND, TERMINATE */
    sl_channel_info info;   /* INFO; CREATE: the settings stored */
    sl_channel_info *infos; /* LIST */
    size_t ninfos;
    sl__chop_done_fn done;
    void *ud;
    /* the layer's own */
    sl_ctx *ctx;
    const sl_channel_info *ch; /* the registry's entry, valid until start() returns */
    char epoch[17];            /* its stream epoch: the same channel at completion? */
    sl_channel_info *created;
    sl_message *msgs;
    char *datas;
    const char **keys;
    char (*eids)[SL__MSGID_LEN + 1];
    sl__eop eop;
    /* the channel as the registry and the engine know it (core/wsid.h), "" when the
     * caller's id is not valid in its workspace */
    char qid[SL_CHANNEL_ID_MAX + 1];
    uint64_t m_start; /* uv_hrtime() (ns) once submit returned unanswered, with metrics on */
};
void sl__channel_submit(sl_ctx *ctx, sl__chop *op);
void sl__chop_clear(sl__chop *op);

/* Tells the listener, if any. */
void sl__ctx_emit(sl_ctx *ctx, const sl_event *ev);

/* The first steps of every channel operation, for transports that act on a channel without a
 * channel API call of their own (a WebSocket subscription): validate the id, authorise op through
 * the registry (auditing a denial), then require the channel to exist and be visible to who.
 * *out (may be NULL) borrows the registry's settings, valid until the channel is deleted. */
int sl__channel_enter(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *id,
                      const sl_channel_info **out, sl_status *st);

/* Shared engines (several nodes): 1 when id is a valid channel id this node's registry lacks,
 * which may be a channel another node created a moment ago. sl__channel_lookup asks the store
 * and registers it when it exists, then calls fn(ud) (at once when there is nothing to ask), so a
 * transport that enters a channel synchronously (sl__channel_enter) finds it. */
int sl__channel_unknown(const sl_ctx *ctx, const char *id);
void sl__channel_lookup(sl_ctx *ctx, const char *id, void (*fn)(void *ud), void *ud);

/* Gives claims back (as a nack without delay would) that a transport took for `who` but could
 * not deliver (its reply would not fit). Not authorised again: it only undoes that caller's own
 * claim, which a read-only caller could not nack itself. Copies what it needs; nothing to wait
 * for (the claims expire anyway if this fails). */
void sl__channel_release(sl_ctx *ctx, const sl_identity *who, const char *id,
                         const char *const *ids, size_t n);

/* Emits an audit record: a JSON object of "ts", "event" and the key/value string pairs that follow
 * (a NULL key ends the list; NULL values are left out). Returns the sink's verdict (SL_OK without a
 * sink), with the reason in st (may be NULL). */
int sl__audit(sl_ctx *ctx, sl_status *st, const char *event, ...);
/* The same for a record built by the caller (a jansson object, stolen): "ts" is added first. */
struct json_t;
int sl__audit_json(sl_ctx *ctx, sl_status *st, struct json_t *record);

/* 1 when who may perform op on channel; no status, no audit (for filtering listings). */
int sl__authorized_quiet(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *channel);

/* ---- the authorise contract's machinery (security/authz_cache.c) ------------ */

typedef struct sl__authz sl__authz;
int sl__authz_new(sl__authz **out);
void sl__authz_free(sl__authz *a);

/* Drops every cached decision: call it whenever a rule a decision may depend on changes (ACL
 * grants, broker roles, workspaces, deny rules, the invoke policy, the HTTP policy). why: a short
 * text for the log ("acl", "broker", "admin"). NULL ctx: nothing. */
void sl__authz_invalidate(sl_ctx *ctx, const char *why);

/* The mode that governs a channel (id NULL: a global operation): the channel's own mode (id: the
 * registry's id, qualified with its workspace), else the longest authz_override pattern matching
 * name (the caller's name for it: overrides apply in every workspace alike), else the
 * server-wide mode. */
sl_mode sl__authz_mode(const sl_ctx *ctx, const char *id, const char *name);

/* decide() of api/authorize.c: SL_OK, SL_EUNAUTH, SL_EFORBIDDEN, SL_EUNAVAIL (the regime answered
 * with an error), or SL__AUTHZ_ASK when the pluggable regime must be asked first (nothing cached
 * or handed over: see sl__authz_prepare). *why (may be NULL) gets the regime's reason, borrowed
 * until the next decision. parameters: JSON text or NULL. */
#define SL__AUTHZ_ASK 1
struct sl_decision;
int sl__authz_decide(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info,
                     const char *resource, const char *parameters, const char **why);
/* The cached or handed-over answer to the question, or NULL. */
const struct sl_decision *sl__authz_known(sl_ctx *ctx, const sl_identity *who,
                                          const char *capability, const char *resource,
                                          const char *parameters);

/* The asynchronous prepare step before synchronous decisions: 1 when deciding op for who on any
 * of res[0..n) needs the pluggable regime asked first. */
int sl__authz_needs(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *const *res,
                    size_t n);
/* Asks the regime what is missing for those decisions (once per question), caches what may be
 * cached and calls fn(ud) exactly once, at once when nothing is missing, else later from the
 * loop. During fn every decision (sl_authorize, sl__authorized_quiet, sl__channel_enter) sees the
 * answers, cached or not; after fn returns only the cache remains. who and res are borrowed for
 * this call only. An answer that is an error makes those decisions SL_EUNAVAIL. */
typedef void (*sl__authz_ready_fn)(void *ud);
void sl__authz_prepare(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *const *res,
                       size_t n, sl__authz_ready_fn fn, void *ud);
/* sl_authorize for callers without a running loop (the synchronous C API): prepares, turning the
 * engine's loop until the regime answered, then decides. Never from a loop callback: there the
 * caller prepares first, and this then decides at once. */
int sl__authorize_sync(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *resource,
                       sl_status *st);
/* Turns the regime's loop (sl_ctx_set_authz_loop) while a question is outstanding and *done is
 * not set: for the synchronous C API, before it waits for the engine. */
void sl__authz_wait(sl_ctx *ctx, const int *done);
/* Cache counters (tests, bench). */
void sl__authz_stats(const sl_ctx *ctx, size_t *entries, unsigned long *hits,
                     unsigned long *misses);

/* Frees a heap sl_channel_info (registry values). */
void sl__channel_info_free(void *info);

#endif
