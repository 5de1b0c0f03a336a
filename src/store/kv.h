/* The durable table store: how the engine and the security stores (ACL grants, broker roles, API
 * keys, revocations) keep their state across restarts. A kv holds named tables of binary keys and
 * values, ordered by key (memcmp). Writes are staged in memory on the caller's thread and become
 * durable together at the next group commit: everything staged during one turn of the event loop
 * commits in one transaction (one fsync), and only then do the barriers waiting on it complete.
 * So a transport answers "done" only from a barrier callback, and a crash never loses what was
 * answered. The only implementation is LMDB (store/lmdb.c); the memory engine runs without one.
 *
 * Threading: every function is called on the loop's thread (or, without a loop, the only thread).
 * Commits run on libuv's thread pool; callbacks always come back on the loop's thread. */
#ifndef SLUICE_STORE_KV_H
#define SLUICE_STORE_KV_H

#include <stddef.h>

#include <sluice/sluice.h>

typedef struct sl__kv sl__kv;

/* Barrier completion: rc SL_OK when everything staged before the barrier is durable under the
 * configured mode; SL_ESTORAGE (the commit failed: disk full, I/O error) with the reason logged.
 * A failed batch is not dropped: it is retried with the next commit, so memory and disk converge
 * once there is room again; only the answer to its waiters was an error. */
typedef void (*sl__kv_done_fn)(void *ud, int rc);

/* Scan callback: key and value are valid during the call only. Return SL_OK to go on, anything
 * else stops the scan and becomes its result. */
typedef int (*sl__kv_scan_fn)(void *ud, const void *key, size_t klen, const void *val, size_t vlen);

typedef struct sl__kv_ops {
    const char *name;
    void (*free)(sl__kv *kv); /* commits what is staged (synchronously) first */
    /* Stage a write. Keys are 1..511 bytes, values any size. Copied: the caller keeps its
     * buffers. SL_ENOMEM, SL_EINVAL (key length, unknown table). */
    int (*put)(sl__kv *kv, const char *table, const void *key, size_t klen, const void *val,
               size_t vlen);
    /* Stage a delete; deleting a missing key is not an error. */
    int (*del)(sl__kv *kv, const char *table, const void *key, size_t klen);
    /* Stage the removal of every key of table that starts with prefix (plen may be 0: all). */
    int (*del_prefix)(sl__kv *kv, const char *table, const void *prefix, size_t plen);
    /* Every committed entry of table whose key starts with prefix, in key order. For loading at
     * start, before anything is staged: staged writes are not seen. */
    int (*scan)(sl__kv *kv, const char *table, const void *prefix, size_t plen, sl__kv_scan_fn fn,
                void *ud);
    /* fn(ud, rc) once everything staged before this call is durable. Immediately (before
     * returning) when nothing is staged or in flight; otherwise after the group commit. Without
     * a loop the commit runs synchronously inside this call. */
    void (*barrier)(sl__kv *kv, sl__kv_done_fn fn, void *ud);
    /* Ask for a commit although nothing is staged: another participant (the audit log) wrote
     * something that the next commit's sync hooks make durable. */
    void (*touch)(sl__kv *kv);
} sl__kv_ops;

struct sl__kv {
    const sl__kv_ops *ops;
};

/* The tables every kv has (others are SL_EINVAL). */
#define SL__KV_META "meta"               /* format version, engine epoch */
#define SL__KV_CHANNELS "channels"       /* channel id -> settings */
#define SL__KV_MESSAGES "messages"       /* channel id NUL seq(8, big-endian) -> message */
#define SL__KV_CLAIMS "claims"           /* same key -> claim state (holder, lease, attempt) */
#define SL__KV_CURSORS "cursors"         /* channel id NUL reader -> cursor */
#define SL__KV_DEDUP "dedup"             /* channel id NUL idempotency key -> id, expiry */
#define SL__KV_ACL "acl"                 /* principal -> grant */
#define SL__KV_BROKER "broker"           /* principal -> broker roles */
#define SL__KV_APIKEYS "apikeys"         /* key id -> record (hash, never the key) */
#define SL__KV_REVOCATIONS "revocations" /* token id or principal -> revocation */

#define SL__KV_INVOKE "invoke" /* principal pattern -> invoke policy (security/invoke.h) */
/* Every table above, for a kv that creates its named databases up front. */
#define SL__KV_TABLE_NAMES                                                                         \
    SL__KV_META, SL__KV_CHANNELS, SL__KV_MESSAGES, SL__KV_CLAIMS, SL__KV_CURSORS, SL__KV_DEDUP,    \
        SL__KV_ACL, SL__KV_BROKER, SL__KV_APIKEYS, SL__KV_REVOCATIONS, SL__KV_INVOKE

#endif
