/* The kv (store/kv.h) on Redis: how the security stores (ACL grants, broker role assignments, API
 * keys) share their state across sluiced nodes when the engine is Redis (docs/SCALING.md). Each
 * table is one hash, `<prefix>:kv:<table>`, whose fields are the kv's keys (binary-safe) and whose
 * values are the kv's values. Writes are staged in memory as with LMDB; at the end of the loop
 * turn (or at once for a barrier) everything staged goes out as ONE server-side script that
 * applies the writes in order and, in the same atomic step, PUBLISHes a change notice on
 * `<scope>:kv` (sl__redis_channel: `<prefix>:kv` on db 0, `<prefix>@<db>:kv` on another, since
 * Redis pub/sub ignores the db) naming every table and key it changed. So no node can see a write
 * without its notice following, and a notice never precedes its write.
 *
 * The change feed (sl__redis_kv_watch) is how the other nodes (and this one: its own notices come
 * back too) learn of a change: for each key a notice names, the kv fetches the current value and
 * hands it to the watcher, which applies it to its memory. After a subscription outage, or after
 * a batch of this node's writes failed (Redis is the truth, and what this node already holds in
 * memory may not have reached it), the watcher is told to reload whole tables instead.
 *
 * Threading: the loop's thread only. Nothing here is public API. */
#ifndef SLUICE_STORE_REDIS_KV_H
#define SLUICE_STORE_REDIS_KV_H

#include <stddef.h>

#include <uv.h>

#include "store/kv.h"
#include "store/redis_conn.h"

/* ---- the kv -----------------------------------------------------------------------------------
 */

/* Where its messages for the operator go (borrowed, outlives the kv); NULL: stderr. */
void sl__redis_kv_set_log(sl__kv *b, const struct sl__logsink *log);

/* A kv on Redis. conn is the command connection (borrowed: the Redis engine's connection to its
 * first shard, which must outlive the kv); addr (copied) is the same server, used for two things
 * the async connection cannot do: scan's synchronous connection and the change feed's own
 * subscription connection (a subscription connection delivers its messages to one owner, the
 * engine's to the engine, so the kv opens its own). prefix: the engine's key prefix (letters,
 * digits, '_', '-', '.'; at most SL__REDIS_PREFIX_MAX bytes); NULL: "sluice". SL_EINVAL (prefix)
 * with the reason in st, SL_ENOMEM. Release with (*out)->ops->free(*out) BEFORE freeing conn, then
 * run the loop so the kv's handles close.
 *
 * The kv's operations, as store/kv.h says, except:
 * - barrier: fn(ud, SL_OK) once Redis applied everything staged before the call (a batch still
 *   staged is sent at once); SL_EUNAVAIL when Redis could not be reached or did not answer in time
 *   (the connection's timeout), SL_ESTORAGE when it answered with an error (a key of the wrong
 *   type, out of memory). A failed batch is NOT retried (another node may have written the same
 *   keys since): the watcher is told to reload the tables it touched as soon as Redis answers
 *   again, which puts this node's memory back in line with Redis. Transports turn the error into
 *   an error reply (503 for SL_EUNAVAIL).
 * - scan: for loading at start, before the loop runs. It opens a synchronous hiredis connection
 *   (resolving the host name, AUTH and SELECT like the async one) with a 5 s timeout, reads the
 *   table with HGETALL and closes it: it BLOCKS the calling thread, which is only acceptable at
 *   start-up. SL_EUNAVAIL when Redis cannot be reached, SL_EFORMAT when the table's key is not a
 *   hash (the key is logged); entries are given in key order (memcmp).
 * - free: sends what is staged (nobody waits for the answer) and completes the barriers still
 *   waiting with SL_EUNAVAIL.
 * - touch: nothing (there is no sync hook on Redis). */
int sl__redis_kv_new(sl__kv **out, uv_loop_t *loop, const sl__redis_addr *addr, sl__rconn *conn,
                     const char *prefix, sl_status *st);

/* 1 when kv is a Redis kv. */
int sl__redis_kv_is(const sl__kv *kv);

/* ---- the change feed ------------------------------------------------------------------------ */

/* A change to table[key] made by any node: val the current value (NULL: deleted), valid during
 * the call only. key NULL (klen 0): the table may have changed in ways that were missed; reload
 * it (sl__redis_kv_load). Applying the same change twice must be harmless: a node's own notices
 * come back to it, and a value fetched after two quick changes is the later one twice. */
typedef void (*sl__redis_kv_change_fn)(void *ud, const char *table, const void *key, size_t klen,
                                       const void *val, size_t vlen);

/* Starts the change feed: opens the kv's subscription connection and subscribes `<scope>:kv`;
 * for each key a notice names, HGETs the current value (in notice order) and calls fn. Whenever
 * the subscription is (re)established, fn is called with key NULL for every table (changes made
 * while it was down, or before it first came up, were missed); so is it for the tables of a
 * failed batch once Redis answers again. A read (a notice's HGET, a load's HGETALL) goes out
 * after this node's staged writes, and is sent again when this node wrote to the table while it
 * was on its way, so an apply never undoes a change this node just made, even for a moment (a
 * revoked-then-granted principal would otherwise lose its sockets). One watcher per kv: SL_EINVAL
 * when one is set, SL_ENOMEM.
 * ud must live until the kv is freed. */
int sl__redis_kv_watch(sl__kv *kv, sl__redis_kv_change_fn fn, void *ud);

/* One entry of a loaded table; valid during the callback only. */
typedef struct sl__redis_kv_entry {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} sl__redis_kv_entry;
/* A table's entries all at once (any order): rc SL_OK, SL_EUNAVAIL (Redis did not answer),
 * SL_EFORMAT (the table's key is not a hash; logged). e NULL unless SL_OK. */
typedef void (*sl__redis_kv_load_fn)(void *ud, int rc, const sl__redis_kv_entry *e, size_t n);
/* Reads table asynchronously (HGETALL) and calls cb exactly once, from the loop (never inside this
 * call), or with SL_EUNAVAIL from free for a load still pending. SL_EINVAL (unknown table; cb is
 * not called). */
int sl__redis_kv_load(sl__kv *kv, const char *table, sl__redis_kv_load_fn cb, void *ud);

/* ---- the change notice (pure: a fuzz target drives the decoder) ------------------------------ */

/* The kv's tables, in SL__KV_TABLE_NAMES's order (store/kv.h): the one list that the kv, its
 * change feed and the notice's codec index (defined in redis_kv_notice.c, beside the codec). */
extern const char *const sl__redis_kv_tables[];
#define SL__REDIS_KV_NTABLES                                                                       \
    (sizeof((const char *const[]){SL__KV_TABLE_NAMES}) / sizeof(const char *))
/* The index in sl__redis_kv_tables of the table named t[0..n), or -1. */
int sl__redis_kv_table_index(const char *t, size_t n);

/* A notice is one or more entries, each "<n>:<table><m>:<key>" with n and m in decimal (no sign,
 * no leading zero, at most 4 digits), table one of the kv's tables, key 0..511 raw bytes (0: the
 * whole table changed, reload it). The script that writes builds it; nodes only decode it. */
#define SL__REDIS_KV_KEY_MAX 511

typedef struct sl__redis_kv_notice_item {
    const char *table; /* one of the SL__KV_* literals (static) */
    const char *key;   /* points into the notice; NULL when klen is 0 (reload the table) */
    size_t klen;
} sl__redis_kv_notice_item;

/* Calls fn for each entry of the notice p[0..len) in order, but only after the whole notice was
 * found well-formed: 1, or 0 (and no call) when it is not. fn returns 0 to go on, else stops. */
int sl__redis_kv_notice_parse(const char *p, size_t len,
                              int (*fn)(void *ud, const sl__redis_kv_notice_item *it), void *ud);
/* Appends one entry to buf (size cap, *len used so far); -1 when it does not fit or the table or
 * key is out of range. For tests: the script writes the same format. */
int sl__redis_kv_notice_add(char *buf, size_t cap, size_t *len, const char *table, const void *key,
                            size_t klen);

#endif
