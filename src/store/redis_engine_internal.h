/* What the Redis engine's two files share (redis_engine.c: the requests, from arguments to
 * answers in submission order; redis_engine_shards.c: the engine's life, its shards' connections
 * and the events that arrive over them): the engine, shard and pending-request types and the
 * functions that cross files. Loop thread only, like the engine. Nothing here is part of any
 * public API. */
#ifndef SLUICE_STORE_REDIS_ENGINE_INTERNAL_H
#define SLUICE_STORE_REDIS_ENGINE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store/redis_engine.h"

#include "core/map.h"

/* Room for any key or channel name the engine builds: "P:{id}:suffix", "P@N:ev:{id}". */
#define KEY_MAX (SL__REDIS_SCOPE_MAX + SL_CHANNEL_ID_MAX + 16)

typedef struct rengine rengine;

typedef struct rshard {
    rengine *e;
    size_t idx;
    sl__rconn *conn;
    sl__rsub *sub;
    int format; /* 0: not checked yet (nor connected); 1: ours; -1: a newer layout (requests fail)
                 */
    int ctl;    /* the control channel is subscribed (or being subscribed) */
    /* Its pub/sub names (sl__redis_scope: the prefix and this shard's db), which its scripts are
     * given too: the scope, and the control channel "<scope>:ctl". */
    char scope[SL__REDIS_SCOPE_MAX + 1];
    char ctlchan[SL__REDIS_SCOPE_MAX + 8];
} rshard;

/* A request in flight: in the FIFO until its turn to complete. */
typedef struct pend {
    struct pend *next;
    rengine *e;
    sl__eop *op;
    int answered; /* op->rc and the outputs are final */
    int waiting;  /* replies still to come (LIST: one per shard) */
    /* APPEND: coalesced per channel until the loop is about to wait (see batch_add) */
    struct pend *bnext;  /* the next open batch (heads only) */
    struct pend *member; /* the next request of this batch */
    struct pend *last;   /* heads: the batch's last request */
    size_t nreq;         /* heads: requests in the batch */
} pend;

struct rengine {
    sl_engine base;
    const sl__logsink *log; /* borrowed (opts); NULL: stderr */
    sl__redis_url url;
    sl__redis_ring *ring;
    rshard *shards;
    size_t nshards;
    char prefix[SL__REDIS_PREFIX_MAX + 1];
    sl__rscript script; /* every request but APPEND */
    sl__rscript append; /* APPEND: the hot path has a script of its own */
    pend *head, *tail;
    int draining;
    int freeing;            /* requests submitted from callbacks run by the free fail at once */
    sl__map *watched;       /* channel id -> count (a heap-allocated size_t) */
    pend *batches;          /* open APPEND batches, one per channel, not sent yet */
    uv_prepare_t prep;      /* sends them just before the loop waits for I/O */
    uint64_t format_logged; /* uv_now of the last "does not read back" line (0: none yet) */
};

/* ---- redis_engine.c -------------------------------------------------------------------------- */

/* The engine's submit (store/engine.h has its contract). */
void sl__reng_submit(sl_engine *base, sl__eop *op);
/* Completes, in submission order, the requests at the head of the FIFO that are answered; a
 * no-op when called from inside a completion (the outer call goes on). */
void sl__reng_drain(rengine *e);
/* Sends every open APPEND batch now. */
void sl__reng_batch_flush(rengine *e);
/* The index of the shard that holds channel id. */
size_t sl__reng_shard_of(const rengine *e, const char *id);

#endif
