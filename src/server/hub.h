/* The real-time hub: which connections are subscribed to which channel, each channel's stream
 * epoch and presence, and the fan-out of pushes. A publication is encoded once and appended to the
 * pending batch of every subscriber; batches are flushed once per event-loop iteration (a uv_check
 * handle), so a subscriber receiving many publications in one iteration gets them in one
 * WebSocket frame. The hub knows nothing of authentication or protocol commands: the WebSocket
 * session (server/wsession.c, ws_channels.c) decides who may subscribe and owns the subscription
 * objects. */
#ifndef SLUICE_SERVER_HUB_H
#define SLUICE_SERVER_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <sluice/sluice.h>

#include "net/centrifuge.h"
#include "net/ws.h"

typedef struct sl__hub sl__hub;
typedef struct sl__hub_chan sl__hub_chan;
typedef struct sl__hub_peer sl__hub_peer;
typedef struct sl__hub_sub sl__hub_sub;

typedef struct sl__hub_peer_ops {
    /* Sends what is queued, after the rest of the batch (newline-separated replies and pushes in
     * p->out) as one more text frame. The bytes are the hub's until the call returns. The peer
     * may close (and detach) itself inside. */
    void (*flush)(sl__hub_peer *p, const char *data, size_t len);
    /* Queues a shared frame (a push) without writing, after what p->out holds so far (which the
     * peer queues first, keeping the order). Takes its own reference. Must not close the peer:
     * one that cannot take more remembers it and closes at its flush. */
    void (*queue)(sl__hub_peer *p, sl_ws_frame *f);
    /* The hub ended subscription s (its channel was deleted) after queueing the unsubscribe
     * push: the owner forgets and frees s. */
    void (*dropped)(sl__hub_peer *p, sl__hub_sub *s);
    /* The batches the peer waited for (sl__hub_hold) have been flushed: it may read again. */
    void (*resume)(sl__hub_peer *p);
} sl__hub_peer_ops;

/* A peer's place in one of the hub's lists (dirty batches, held publishers). */
typedef struct sl__hub_link {
    sl__hub_peer *prev, *next;
    int on;
} sl__hub_link;

/* Embedded in each connection. Initialise with sl__hub_peer_init; detach before freeing. */
struct sl__hub_peer {
    const sl__hub_peer_ops *ops;
    sl__cf_buf out;     /* the pending batch; empty (no memory) between iterations */
    sl__hub_link dirty; /* has a batch for the next flush */
    sl__hub_link held;  /* stopped reading until the next flush */
};

/* One connection's subscription to one channel. Owned by the connection; the hub links it into
 * the channel while subscribed. */
struct sl__hub_sub {
    sl__hub_chan *chan; /* NULL when not linked */
    sl__hub_peer *peer;
    size_t pos;                /* index in the channel's subscriber array */
    const char *client, *user; /* borrowed from the connection: presence and join/leave info */
    double token_expires_at;   /* `$` channels: the subscription token's expiry (0: none) */
    double token_issued_at;    /* `$` channels: its iat, for user cut-offs (0: unknown) */
    char *token_id;            /* `$` channels: its jti (NULL: none); owned by the subscriber */
    const char *channel;       /* the channel's id, owned by the hub (set by subscribe) */
    uint64_t next_offset;      /* the stream offset it expects next (topics; set by subscribe) */
};

/* *out owned by the caller; free with sl__hub_free (closes its handle: run the loop afterwards).
 * engine: a shared engine (engine.h: several nodes on one store) whose change feed the hub must
 * watch for the channels its subscribers use; NULL (or an engine that is not shared): every
 * publication comes from this process, nothing to watch. Borrowed; must outlive the hub. */
struct sl_engine;
int sl__hub_new(sl__hub **out, uv_loop_t *loop, struct sl_engine *engine);
void sl__hub_free(sl__hub *h);
/* Where deliveries are counted (borrowed; NULL: nowhere). */
struct sl__metrics;
void sl__hub_set_metrics(sl__hub *h, struct sl__metrics *m);

void sl__hub_peer_init(sl__hub_peer *p, const sl__hub_peer_ops *ops);
/* Forgets p's pending batch and dirty mark (its subscriptions are the owner's to unsubscribe). */
void sl__hub_peer_detach(sl__hub *h, sl__hub_peer *p);
/* Marks p's batch for the next flush after the caller appended to p->out. */
void sl__hub_peer_touch(sl__hub *h, sl__hub_peer *p);

/* Publishers' back-pressure. Fan-out work is done at once but sent once per loop iteration, so a
 * publisher that writes faster than the hub can deliver would pile up work within a single
 * iteration. sl__hub_busy says the pushes queued in this iteration come to more than
 * SL__HUB_BUDGET bytes (a shared frame counts once per subscriber it is queued for); the caller
 * then stops reading from p and sl__hub_hold(h, p) has ops->resume called after the next flush.
 * The frames are shared, so the budget bounds an iteration's work rather than memory: 32 MiB is
 * about 200,000 deliveries of a 150-byte push, some 35 ms at the rate bench/ws.sh measures;
 * 4 MiB cut deliveries under overload by a third and doubled their latency (docs/BENCHMARKS.md). */
#define SL__HUB_BUDGET (32u << 20)
int sl__hub_busy(const sl__hub *h);
void sl__hub_hold(sl__hub *h, sl__hub_peer *p);

/* The real-time state of channel id, created (with a fresh random epoch) when create is set and
 * info given. NULL when absent (or out of memory). Lives until the channel is deleted. */
sl__hub_chan *sl__hub_chan_get(sl__hub *h, const char *id, const sl_channel_info *info, int create);
const char *sl__hub_chan_epoch(const sl__hub_chan *c);
int sl__hub_chan_presence(const sl__hub_chan *c);
/* The channel's subscriptions (borrowed array of n). */
sl__hub_sub *const *sl__hub_chan_subs(const sl__hub_chan *c, size_t *n);

/* A subscription starts in two steps, so that with a shared engine nothing published between
 * reading its start position and linking it is lost or sent twice:
 *   1. sl__hub_prepare: the channel is watched (its feed reaches this node) before the caller
 *      reads the stream's position; ready(ud, rc) once, SL_OK or SL_EUNAVAIL (the store cannot be
 *      reached), at once when there is nothing to watch. On SL_OK the caller holds a pending mark
 *      on the channel: while any is held, the hub keeps the publications it fans out.
 *   2. sl__hub_subscribe with the position read (top), which replays the kept publications after
 *      top to s and ends the mark; or sl__hub_abandon, which only ends it.
 * The watch ends when the channel has neither subscribers nor marks. */
typedef void (*sl__hub_ready_fn)(void *ud, int rc);
void sl__hub_prepare(sl__hub *h, const char *id, sl__hub_ready_fn ready, void *ud);
void sl__hub_abandon(sl__hub *h, const char *id);

/* Links s into c (SL_ENOMEM), ending a pending mark taken with sl__hub_prepare; s is owed every
 * publication after offset top. With join/leave enabled, pushes a join to the others. */
int sl__hub_subscribe(sl__hub *h, sl__hub_chan *c, sl__hub_sub *s, uint64_t top);
/* Unlinks s (a no-op when not linked); leave push to the others when enabled. */
void sl__hub_unsubscribe(sl__hub *h, sl__hub_sub *s);

/* Fan-out of one message written to channel (from any transport): a `pub` push to every
 * subscriber. Topics carry the message data, with the publisher's info when a socket published it
 * (the message's origin); work queues a wake-up `{"id": "<message id>"}`. */
void sl__hub_publish(sl__hub *h, const sl_event *ev);
/* The channel is gone: unsubscribe push (code 2000) to each subscriber, then ops->dropped. */
void sl__hub_channel_deleted(sl__hub *h, const char *channel);
/* The shared engine's feed was interrupted, so publications may have been missed: every topic
 * subscriber gets an unsubscribe push with code 2500 (insufficient state), after which Centrifugo
 * clients subscribe again and recover from the stream; then ops->dropped. */
void sl__hub_resync(sl__hub *h);

/* Presence with a shared engine (several nodes; without one, presence is the local subscriber
 * list and none of this applies). Each local subscriber of a channel with presence or join_leave
 * has an entry in the engine, set when it links, removed when it unlinks, set again every ttl / 3
 * seconds so that a dead node's entries go after ttl. Join and leave pushes then come only from
 * the engine's feed: the session passes SL_EVENT_JOIN / LEAVE to sl__hub_join_leave_event, which
 * pushes them to the channel's subscribers but the client concerned. */
#define SL__HUB_PRESENCE_TTL 30.0 /* seconds; SLUICE_PRESENCE_TTL overrides it (tests) */
#define SL__HUB_CLIENT_MAX 64     /* a client id's length at most (the engine's bound) */
/* The entries' lifetime: SLUICE_PRESENCE_TTL from the environment (0.3 .. 86400), else the
 * default. Read when a hub is made. */
double sl__hub_presence_ttl(void);
/* 1 when presence comes from a shared engine (sl__hub_presence_get), 0 for the local list. */
int sl__hub_presence_shared(const sl__hub *h);
void sl__hub_join_leave_event(sl__hub *h, const sl_event *ev);
/* Every node's live entries of channel: fn(ud, rc, list) once, later (from the loop) or at once
 * on failure, with one message per entry (origin the client id, sender_id the user), borrowed
 * for the call. SL_EINVAL without a shared engine; the engine's code otherwise. The request
 * does not refer to the hub: fn may run after sl__hub_free (with SL_EUNAVAIL). */
typedef void (*sl__hub_presence_fn)(void *ud, int rc, const sl_message_list *l);
void sl__hub_presence_get(sl__hub *h, const char *channel, sl__hub_presence_fn fn, void *ud);

/* A message id's sequence number (sl__msgid_parse); 0 when it is not an id. */
uint64_t sl__hub_offset_of(const char *message_id);

#endif
