/* The store engine interface. An engine keeps channels (their settings) and their messages and
 * implements work-queue and topic semantics atomically, dead letters included, so that a shared
 * engine (Redis) can do the same with server-side scripts. The channel API (api/channel.c)
 * validates and authorises; the engine only stores. Ids passed in are valid channel ids; the
 * engine never sees a caller it must authorise.
 *
 * Every operation is a request (sl__eop) that the engine completes by calling op->done exactly
 * once, on the loop's thread: at once, before submit returns (the memory engine), or later from
 * the event loop once the change is durable (the LMDB engine replies after its group commit; a
 * network engine after the server answers). Nothing waits inside submit. A completed request
 * reports what every reader of the store may now see and what survives a crash: a reply built
 * from it may go out. Requests complete in the order they were submitted. */
#ifndef SLUICE_STORE_ENGINE_H
#define SLUICE_STORE_ENGINE_H

#include <sluice/sluice.h>

#include "core/message.h"

typedef struct sl_engine sl_engine;
typedef struct sl__eop sl__eop;

typedef enum {
    SL__EOP_CREATE,    /* in: info (its depth ignored). SL_EEXIST */
    SL__EOP_DROP,      /* the channel and its messages. SL_ENOENT */
    SL__EOP_INFO,      /* out: info (a copy, depth included). SL_ENOENT */
    SL__EOP_LIST,      /* out: infos/ninfos, every channel sorted by id */
    SL__EOP_APPEND,    /* in: msgs/nmsgs; out: ids, seq (of the last) */
    SL__EOP_CLAIM,     /* in: reader, limit, max_bytes; out: list, dead */
    SL__EOP_ACK,       /* in: reader, ids/nids; out: count */
    SL__EOP_NACK,      /* in: reader, ids/nids, delay; out: count */
    SL__EOP_READ,      /* in: reader, after, limit, max_bytes; out: list, seq */
    SL__EOP_CLEAR,     /* out: count */
    SL__EOP_EVICT,     /* in: before, max_count; out: count */
    SL__EOP_REMOVE,    /* in: ids/nids; out: count */
    SL__EOP_POSITION,  /* out: seq */
    SL__EOP_SYNC,      /* nothing: completes once everything submitted before it is durable */
    SL__EOP_EXTEND,    /* in: reader, ids/nids, delay (the new lease, seconds); out: count */
    SL__EOP_TERMINATE, /* in: reader, ids/nids, reason, dead_letter; out: count, dead */
    /* Presence across nodes: shared engines only (the others answer SL_EINVAL). An entry is a
     * client (a socket) of a user subscribed on some node; it lives `delay` seconds from now
     * unless set again, so a dead node's entries go by themselves. With join_leave, a new entry
     * and a removed (or expired) one reach the listeners watching the channel as SL_EVENT_JOIN /
     * SL_EVENT_LEAVE (watch above). SL_ENOENT when the channel does not exist. */
    SL__EOP_PRESENCE_SET, /* in: reader (client id), after (user), delay; out: count 1 if new */
    SL__EOP_PRESENCE_DEL, /* in: reader (client id); out: count 1 if it was there */
    SL__EOP_PRESENCE_GET, /* out: list, one message per live entry: origin the client id,
                             sender_id the user (nothing else set) */
} sl__eop_kind;

typedef void (*sl__eop_done_fn)(sl__eop *op);

/* A request. The submitter owns it and every input it points to until done is called; the
 * outputs (list, dead, info, infos) then belong to the submitter, released with
 * sl__eop_clear. Zero-initialise, then set kind, the inputs and done. */
struct sl__eop {
    sl__eop_kind kind;
    const char *channel; /* every kind but LIST and SYNC */
    double now;          /* the clock for leases, retention, delays */

    /* inputs */
    const char *reader;            /* CLAIM, ACK, NACK: the claimer; READ: the cursor's owner */
    const sl_channel_info *create; /* CREATE */
    const sl_message *msgs;        /* APPEND: copied (id and attempt ignored); a queue message
                                      with not_before > now waits until then; expires_at: TTL */
    size_t nmsgs;
    const char *const *keys; /* APPEND: NULL or nmsgs idempotency keys (NULL entries: none) */
    const char *reason;      /* TERMINATE: the dead letters' dead_reason */
    const char *const *ids;  /* ACK, NACK, REMOVE */
    size_t nids;
    size_t limit;      /* CLAIM, READ */
    size_t max_bytes;  /* CLAIM, READ: SIZE_MAX for none */
    const char *after; /* READ: NULL reads after reader's cursor (which then advances) */
    double delay;      /* NACK (0: the channel's backoff); EXTEND: the lease from now */
    double before;     /* EVICT: drop timestamps < before (<= 0: none by age) */
    size_t max_count;  /* EVICT: keep the newest max_count (SIZE_MAX: no bound) */
    /* CLAIM, TERMINATE: messages past max_attempts, expired (TTL) or terminated are moved to
     * this channel (created as a private queue when missing; "" drops them) in the same atomic
     * step, each with its dead_reason; dead_created reports a creation. */
    const char *dead_letter;

    /* outputs */
    int rc;
    char (*ids_out)[SL__MSGID_LEN + 1]; /* APPEND: nmsgs slots provided by the submitter */
    unsigned char *dups; /* APPEND: NULL or nmsgs slots: 1 when the key repeated (nothing stored) */
    uint64_t seq;        /* APPEND, READ, POSITION: the channel's newest seq */
    size_t count;
    sl_message_list list;   /* CLAIM, READ */
    sl_message_list dead;   /* CLAIM, TERMINATE: what went to the dead letter (or was dropped) */
    int dead_rc;            /* CLAIM, TERMINATE: SL_OK, or why the dead letters were not stored */
    int dead_created;       /* CLAIM, TERMINATE: the dead-letter queue was created for them,
                               and info holds its settings as stored */
    sl_channel_info info;   /* INFO; CLAIM, TERMINATE: the created dead-letter queue */
    sl_channel_info *infos; /* LIST */
    size_t ninfos;

    sl__eop_done_fn done;
    void *ud;
};

/* Releases an op's outputs (list, dead, info, infos); the op itself is the submitter's. */
void sl__eop_clear(sl__eop *op);

/* The channel id in the answer of an SL__EOP_LIST (v[0..n), sorted by id): a binary search. NULL
 * when it is not there. Borrowed from v. */
const sl_channel_info *sl__eop_list_find(const sl_channel_info *v, size_t n, const char *id);

typedef struct sl_engine_ops {
    const char *name;
    void (*free)(sl_engine *e);
    void (*submit)(sl_engine *e, sl__eop *op);
    /* Shared engines only (several nodes on one store; NULL for the others). While a channel is
     * watched, every write to it and its deletion, made on any node (this one included), reaches
     * e->listener once, in the order the store applied them: SL_EVENT_WRITE with channel and
     * message (its id, the stream offset, and every field; info NULL), SL_EVENT_CHANNEL_DELETED
     * with channel, SL_EVENT_JOIN / SL_EVENT_LEAVE with channel, client and principal (the
     * presence entries of SL__EOP_PRESENCE_*, when the channel has join_leave). The channel API
     * then emits none of these itself. ready(ud, rc) once, when watching: SL_OK, or SL_EUNAVAIL
     * (the store cannot be reached; nothing to unwatch then). Counted: every SL_OK watch is paired
     * with one unwatch. */
    void (*watch)(sl_engine *e, const char *channel, void (*ready)(void *ud, int rc), void *ud);
    void (*unwatch)(sl_engine *e, const char *channel);
} sl_engine_ops;

struct sl_engine {
    const sl_engine_ops *ops;
    struct uv_loop_s *loop; /* the loop completions come from; NULL: always at once */
    /* Shared engines: where the change feed goes (set by the context): the watched channels'
     * writes and deletions (above), and for every channel, SL_EVENT_CHANNEL_CREATED and
     * SL_EVENT_CHANNEL_DELETED with the channel id when any node creates or drops one. resync is
     * called when the feed was interrupted (a subscription connection came back): events may have
     * been missed, so the listener reloads what it caches (listener_ud for both). */
    sl_event_fn listener;
    void (*resync)(void *ud);
    void *listener_ud;
};

/* Submits op and waits for it: for callers that run no loop of their own (the in-process C API,
 * configuration at start, tests). Runs the engine's loop until op is done, so it must not be
 * called from a callback of that loop. Returns op->rc. */
int sl__engine_call(sl_engine *e, sl__eop *op);
/* Turns the engine's loop (not running: see above) until *done is set by a completion; at once
 * without a loop. */
void sl__engine_wait(sl_engine *e, const int *done);

/* The in-memory engine. With a kv (store/kv.h) every change is also written through it and each
 * request completes once the kv made it durable, so the channels survive restarts: that is the
 * embedded durable engine (kv on LMDB). kv NULL: memory only, completing at once. kv is borrowed
 * and must outlive the engine; loop is where the kv's completions arrive (NULL without one). now:
 * the clock when loading (a lease that ran out while the server was down is released). SL_EFORMAT
 * with st saying what could not be read. *out released with (*out)->ops->free(*out). */
struct sl__kv;
int sl__mem_engine_new(sl_engine **out);
int sl__mem_engine_open(sl_engine **out, struct sl__kv *kv, struct uv_loop_s *loop, double now,
                        sl_status *st);

#endif
