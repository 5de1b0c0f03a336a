/* The security state shared by every sluiced node on one Redis: the ACL's runtime grants, the
 * broker's role assignments and the API keys live in the Redis kv (store/redis_kv.h) instead of
 * LMDB, and a change made on any node is applied on every node as soon as its notice arrives, so
 * the next request anywhere sees it. An ACL change another node made also reaches this node's
 * listener as SL_EVENT_ACL_CHANGED, which is what makes open WebSocket sessions re-check (or
 * lose) their subscriptions; this node's own changes emit that event from the call that made them
 * (api/channel.c), and when their notice comes back it changes nothing and emits nothing.
 *
 * Threading: the loop's thread. Nothing here is public API. */
#ifndef SLUICE_SERVER_SHARED_STATE_H
#define SLUICE_SERVER_SHARED_STATE_H

#include <sluice/apikey.h>
#include <sluice/broker.h>
#include <sluice/sluice.h>

#include "store/kv.h"

typedef struct sl__shared_state sl__shared_state;

/* Attaches the ACL of ctx, broker and keys (either may be NULL: not configured) to kv, a Redis kv
 * (sl__redis_kv_new), loading what Redis holds (a blocking read: call it at start, before the
 * loop runs); a store already attached to kv is left as it is, so the caller may attach one
 * earlier itself (sl_broker_attach, sl_apikey_store_attach) when the configuration must go on
 * top of the stored state; attach the ACL before the configuration's grants are applied, as with
 * LMDB. Then makes sl__ctx_sync wait for kv's barrier too (so a reply that says "done" waits for
 * Redis to have the change) and starts kv's change feed. Everything is borrowed: kv, ctx, broker
 * and keys must outlive *out.
 *
 * Errors, with st filled: SL_EINVAL (kv is not a Redis kv, a store is attached to another kv, kv
 * is already watched), the attach errors (SL_EFORMAT for stored data that does not decode,
 * SL_EUNAVAIL when Redis cannot be reached), SL_ENOMEM. Stores attached before the failure stay
 * attached.
 *
 * Shutdown order: free kv first (it answers its pending reads), then *out, then the rest. */
int sl__shared_state_attach(sl__shared_state **out, sl_ctx *ctx, sl_broker *broker,
                            sl_apikey_store *keys, sl__kv *kv, sl_status *st);
void sl__shared_state_free(sl__shared_state *ss);

/* How many changes from the feed were applied, refused (bad stored data, logged) and reloads
 * run, for tests and diagnostics. */
typedef struct sl__shared_state_stats {
    unsigned long applied, refused, reloads;
} sl__shared_state_stats;
void sl__shared_state_stats_get(const sl__shared_state *ss, sl__shared_state_stats *out);

/* Where refused changes are reported (borrowed; NULL, the default: stderr). */
struct sl__log;
void sl__shared_state_set_log(sl__shared_state *ss, struct sl__log *log);

#endif
