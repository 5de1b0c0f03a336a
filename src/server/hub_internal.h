/* Inside the real-time hub (server/hub.h is the outside): the hub and channel structs and what the
 * hub's two files share. hub.c holds the channels' subscribers, the batched fan-out and the
 * publications kept for subscriptions being prepared; hub_shared.c what a shared engine adds
 * (watching the channels' feeds, presence entries in the engine). Included by those files only. */
#ifndef SLUICE_SERVER_HUB_INTERNAL_H
#define SLUICE_SERVER_HUB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/map.h"
#include "server/hub.h"
#include "store/engine.h"

/* A publication kept for subscriptions between sl__hub_prepare and sl__hub_subscribe. */
typedef struct kept {
    uint64_t offset;
    sl_ws_frame *frame; /* the push, framed; a reference of its own */
} kept;

typedef struct waiter {
    sl__hub_ready_fn fn;
    void *ud;
} waiter;

enum { W_NONE, W_STARTING, W_WATCHED };

struct sl__hub_chan {
    char id[SL_CHANNEL_ID_MAX + 1];
    char epoch[17];
    int presence, join_leave, topic;
    sl__hub_sub **subs;
    size_t nsubs, cap;
    /* shared engines */
    int watch;       /* W_* */
    size_t pending;  /* marks held between prepare and subscribe/abandon */
    waiter *waiters; /* prepared while the watch was starting */
    size_t nwaiters;
    kept *kept; /* publications fanned out while marks are held */
    size_t nkept, kept_bytes;
    int kept_overflow; /* more than KEPT_MAX_BYTES: the pending subscriptions fail */
};

/* An intrusive FIFO of peers through one of their links (off: offsetof the sl__hub_link). */
typedef struct list {
    sl__hub_peer *head, *tail;
    size_t off;
} list;

/* An engine watch in flight; outlives the hub (the engine answers later) and so holds no
 * pointer to it once the hub is gone. */
typedef struct watch_req {
    sl__hub *h; /* NULL once the hub is freed */
    struct watch_req *next, *prev;
    char id[SL_CHANNEL_ID_MAX + 1];
} watch_req;

struct sl__hub {
    sl_engine *engine; /* shared engines only */
    watch_req *watches;
    uv_timer_t *refresh; /* shared engines: sets this node's presence entries again */
    double pres_ttl;     /* seconds a presence entry lives unless set again */
    uv_check_t flush;
    int flush_active;
    sl__map *chans;     /* id -> sl__hub_chan* */
    list dirty;         /* peers with a pending batch, in the order they became dirty */
    list held;          /* peers that stopped reading until the next flush */
    size_t batched;     /* bytes fanned out since the last flush */
    sl__cf_buf scratch; /* one encoded push, shared by every subscriber */
    /* where deliveries are counted: borrowed, or NULL */
    struct sl__metrics *metrics;
};

/* ---- hub.c ----------------------------------------------------------------------------------- */

/* Drops the publications kept for c's pending subscriptions. */
void sl__hub_kept_clear(sl__hub_chan *c);

/* ---- hub_shared.c ---------------------------------------------------------------------------- */

/* Whether c's subscribers are mirrored into the engine. */
static inline int pres_shared(const sl__hub *h, const sl__hub_chan *c)
{
    return h->engine && (c->presence || c->join_leave);
}

/* Sets (SL__EOP_PRESENCE_SET) or removes (_DEL) s's presence entry in c, without waiting. */
void sl__hub_pres_send(sl__hub *h, sl__eop_kind kind, const sl__hub_chan *c, const sl__hub_sub *s);
/* The refresh timer's callback: sets this node's presence entries again. */
void sl__hub_presence_refresh(uv_timer_t *t);
/* Ends the watch of a channel nobody uses any more (neither subscribers nor pending marks). */
void sl__hub_maybe_unwatch(sl__hub *h, sl__hub_chan *c);

#endif
