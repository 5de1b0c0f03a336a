/* The Redis engine: channels and their messages on one or more Redis servers that every sluiced
 * node shares (docs/SCALING.md). Every queue and topic rule runs as one server-side Lua script on
 * the channel's shard, so it is atomic across nodes; messages live in a Redis Stream per channel
 * whose entry ids are the channel's sequence numbers. Each write also PUBLISHes the message on the
 * channel's event channel, which is how watched channels (engine.h) reach every node's sockets. */
#ifndef SLUICE_STORE_REDIS_ENGINE_H
#define SLUICE_STORE_REDIS_ENGINE_H

#include "core/logsink.h"
#include "store/engine.h"
#include "store/redis_conn.h"

#define SL__REDIS_PREFIX_MAX 64 /* as sl__redis_prefix_valid */

typedef struct sl__redis_engine_opts {
    const char *url;     /* as sl__redis_url_parse */
    const char *prefix;  /* namespaces every key and channel: letters, digits, '_', '-', '.'; NULL:
                            "sluice" */
    unsigned timeout_ms; /* no reply for this long while commands wait fails the link; 0: 5000 */
    const sl__logsink *log; /* messages for the operator (borrowed, outlives the engine); NULL:
                               stderr */
} sl__redis_engine_opts;

/* Connects in the background: until a shard answers, its requests complete with SL_EUNAVAIL (so
 * do those in flight when it goes away), and it comes back by itself. SL_EINVAL (URL, prefix) with
 * the reason in st. *out released with (*out)->ops->free(*out); run the loop afterwards so its
 * handles close. */
int sl__redis_engine_new(sl_engine **out, uv_loop_t *loop, const sl__redis_engine_opts *o,
                         sl_status *st);

/* For the state shared beside the channels (security stores, the channel registry's change
 * notices): the engine's parsed URL, its shards' connections (index as sl__redis_url's), and its
 * key prefix. Borrowed, valid while the engine lives. NULL / 0 for another engine. */
const sl__redis_url *sl__redis_engine_url(const sl_engine *e);
sl__rconn *sl__redis_engine_conn(const sl_engine *e, size_t shard);
sl__rsub *sl__redis_engine_sub(const sl_engine *e, size_t shard);
const char *sl__redis_engine_prefix(const sl_engine *e);
/* 1 when e is a Redis engine. */
int sl__redis_engine_is(const sl_engine *e);

#endif
