/* Token revocation stores: a small interface the request path asks "is this token (or every token
 * of this user issued up to now) revoked?", with three implementations — an in-process memory
 * store, the same kept durable in the embedded kv (the embedded store), and a Redis store
 * (hiredis, asynchronous on the libuv loop) shared by several servers. Because Redis answers
 * later, and an embedded write's answer waits for the kv, every operation reports through a
 * callback; the memory store, embedded checks and every early answer (invalid argument, store
 * unreachable) call back synchronously, before the function returns, so callers must handle both.
 * A store can also be watched (sl_revocation_set_watch): it reports every revocation it learns of
 * — written through it, or (Redis) by another server — so that long-lived sessions can be cut
 * without polling. docs/REVOCATION.md describes keys, expiry, fail-closed behaviour, recovery and
 * the watch channel.
 *
 * Rules shared by all stores:
 * - A token id is revoked until its record expires: the token's remaining lifetime (at least 1 s)
 *   capped at max_ttl. max_ttl must be at least the longest token lifetime, else a revocation can
 *   lapse while the token is still valid: check sl_revocation_max_ttl() against the issuer's
 *   longest lifetime at startup.
 * - A user cut-off revokes every token of that user issued at or before the revocation time
 *   (issued_at <= cut-off, so an unknown issued_at of 0 is revoked too); it expires after max_ttl.
 * - Fail closed: a store that cannot answer reports SL_EUNAVAIL (the transport's 503), a stored
 *   record it cannot read counts as revoked.
 *
 * Threading: one loop thread; nothing here is thread-safe. */
#ifndef SLUICE_REVOCATION_H
#define SLUICE_REVOCATION_H

#include <stddef.h>
#include <uv.h>

#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_REVOCATION_DEFAULT_MAX_TTL 86400.0 /* seconds: 24 h */
#define SL_REVOCATION_REASON_MAX 255          /* bytes */
#define SL_REVOCATION_PREFIX_MAX 64           /* bytes of a Redis key prefix */
/* Redis store timing (milliseconds). Connect: one attempt's resolve, connect and PING (or, for
 * the watch subscription, SUBSCRIBE). Command: Redis answered nothing this long while calls wait
 * drops the connection, and they answer SL_EUNAVAIL. */
#define SL_REVOCATION_REDIS_CONNECT_TIMEOUT_MS 1000
#define SL_REVOCATION_REDIS_COMMAND_TIMEOUT_MS 1000
#define SL_REVOCATION_REDIS_BACKOFF_MIN_MS 100  /* first retry; doubles per failure ... */
#define SL_REVOCATION_REDIS_BACKOFF_MAX_MS 2000 /* ... up to this */
/* The watch subscription is probed this often; a probe unanswered by the next one drops it. */
#define SL_REVOCATION_REDIS_WATCH_PROBE_MS 1000

typedef struct sl_revocation_store sl_revocation_store;
struct sl__kv; /* the durable table store (internal: src/store/kv.h) */

/* The answer to one operation, called exactly once per call (never for a NULL cb):
 *   SL_OK       not revoked / written
 *   SL_ETOKEN   (checks) revoked; reason is the stored reason, or a fixed text for a user cut-off
 *               or a record that could not be read
 *   SL_EUNAVAIL the store cannot answer now (unreachable, timed out, closing): refuse the request
 *   SL_EINVAL   an argument failed validation (see sl_revocation_id_valid); nothing was asked.
 *               For a check this still means "refuse": the token names an id or user that no
 *               revocation could have been written for (401 invalid_token suits it)
 *   SL_ENOMEM   out of memory; nothing was asked
 *   SL_ESTORAGE (embedded store, writes) the revocation is in force in this process but the kv
 *               could not make it durable (disk full, I/O error): report the write as failed
 *               (507); the kv retries it with its next commit
 * reason is NULL unless status is SL_ETOKEN or SL_EUNAVAIL; it has no control bytes (UTF-8 is
 * not checked), at most SL_REVOCATION_REASON_MAX bytes (what the revoker wrote, or a fixed text)
 * and is valid only during the call. The callback may run synchronously inside the call that
 * started it. */
typedef void (*sl_revocation_cb)(void *ud, int status, const char *reason);

/* Optional log sink: one line per state change or failed write, without newline ("revocation
 * store: redis 127.0.0.1:6379 unavailable (connect: Connection refused); ..."); never a token id,
 * reason or secret. The sink must not keep the pointer. */
typedef void (*sl_revocation_log_fn)(void *ud, const char *line);

/* ---- creating stores ---------------------------------------------------------------------------
 */

/* A memory store. loop (may be NULL) runs an unreferenced prune timer (every max_ttl/4, clamped to
 * 50 ms .. 60 s); with or without it, writes also prune once the store has doubled since the last
 * prune, so it cannot grow without bound. max_ttl <= 0: SL_REVOCATION_DEFAULT_MAX_TTL. clock NULL:
 * wall clock. SL_OK, SL_EINVAL (max_ttl not finite) or SL_ENOMEM. *out owned by the caller. */
int sl_revocation_memory_new(sl_revocation_store **out, uv_loop_t *loop, double max_ttl,
                             sl_clock_fn clock, void *clock_ud);

/* The embedded store: the memory store (same rules, timer and pruning) whose records live in kv
 * (borrowed: it must outlive the store), so that revocations survive a restart. Every live stored
 * record is loaded here, before *out exists, so no check can run ahead of a stored revocation;
 * records that lapsed (past their expiry, at most max_ttl after the revocation) are not loaded and
 * are purged from the kv, as are records that lapse later (on lookup and pruning). Each revoke and
 * revoke_user stages its record in the kv in the same call; its record is in force at once (the
 * watcher is told at once, as with the memory store), but its cb waits for kv->ops->barrier: SL_OK
 * once durable, SL_ESTORAGE when the kv's commit failed. So with a kv whose barrier completes
 * later, the cb of a write runs later, from the loop. kv NULL: nothing is stored (the memory
 * store under the name "embedded", for the memory engine).
 *
 * Stored: table SL__KV_REVOCATIONS, key "t:" + token id -> {"v":1,"exp":E,"reason":"..."}, key
 * "u:" + user -> {"v":1,"exp":E,"cutoff":C} (E: when the record lapses, C: the cut-off; seconds
 * since the epoch).
 *
 * st (may be NULL) says why it failed: SL_EFORMAT naming the table and key when a stored value
 * does not decode, SL_EINVAL (max_ttl not finite), SL_ENOMEM, or the kv's scan error. */
int sl_revocation_embedded_new(sl_revocation_store **out, uv_loop_t *loop, double max_ttl,
                               struct sl__kv *kv, sl_clock_fn clock, void *clock_ud, sl_status *st);

/* A Redis store on `loop` (required), on the Redis that url names:
 *   redis://[user:password@]host[:port][/db]
 * host: an IP literal ([...] for IPv6) or a name (resolved on libuv's thread pool at every connect
 * attempt); port 1..65535, default 6379; db 0..15, default 0; user and password percent-decoded
 * (encode '@', ':', ',' and '%' in them). With a password every connection the store makes (the
 * command connection, and the watch subscription's) sends AUTH password, or AUTH user password
 * (a Redis 6 ACL user), before anything else; with a db other than 0, SELECT db. The keys then
 * live in that db. Redis pub/sub ignores the db, so the watch channel's name carries it:
 * "<prefix>:tb:revocations" on db 0, "<prefix>@<db>:tb:revocations" on another, and two
 * deployments on two dbs of one Redis do not hear each other's revocations whatever their
 * prefixes. One Redis: a comma-separated list (the engine's shards) is refused. rediss:// (TLS) is
 * refused: this hiredis has no TLS.
 *
 * prefix NULL or "": "sluice", else 1..SL_REVOCATION_PREFIX_MAX bytes of printable ASCII without
 * space or '@' (which separates the db in the channel's name). Returns at once: the store connects
 * in the background and answers SL_EUNAVAIL until connected (sl_revocation_ready), and after a
 * disconnect until it has reconnected by itself; a password or db Redis refuses counts as a failed
 * connect (logged, retried with the backoff). The connection keeps the loop alive until
 * sl_revocation_store_free. Ignores SIGPIPE unless a handler is installed (hiredis writes with
 * write(2)). The store keeps a copy of the password, wiped when it is freed, and never logs it.
 *
 * SL_OK, SL_EINVAL (st, which may be NULL, says why: "revocation URL: db must be 0..15"; the
 * reason never contains the password) or SL_ENOMEM. *out owned by the caller. */
int sl_revocation_redis_new_url(sl_revocation_store **out, uv_loop_t *loop, const char *url,
                                const char *prefix, double max_ttl, sl_clock_fn clock,
                                void *clock_ud, sl_status *st);

/* The same on host:port, db 0, without AUTH. */
int sl_revocation_redis_new(sl_revocation_store **out, uv_loop_t *loop, const char *host, int port,
                            const char *prefix, double max_ttl, sl_clock_fn clock, void *clock_ud);

/* Closes the store. Every callback still pending is called with SL_EUNAVAIL before this returns
 * (calls made from those callbacks answer SL_EUNAVAIL at once); none is called afterwards. May be
 * called from inside a store callback, but not from a callback this function is running. Handles
 * close through the loop: the memory is released by the loop's close callbacks, so call it while
 * the loop still runs (e.g. on the shutdown signal) or run the loop once more afterwards. NULL is
 * a no-op. */
void sl_revocation_store_free(sl_revocation_store *s);

void sl_revocation_set_log(sl_revocation_store *s, sl_revocation_log_fn fn, void *ud);

/* ---- watching revocations ----------------------------------------------------------------------
 */

/* A revocation the store learned of: written through this store, or (Redis) by another server
 * sharing the Redis. Exactly one of three shapes:
 *   token_id != NULL  this token id was revoked (user NULL, cutoff 0)
 *   user != NULL      every token of user issued at or before cutoff (seconds since the epoch,
 *                     the revoking server's clock) was revoked (token_id NULL)
 *   resync == 1       events may have been missed (the subscription was (re)made): re-check every
 *                     session with sl_revocation_check (token_id and user NULL)
 * Strings are valid only during the call and have passed sl_revocation_id_valid /
 * sl_principal_valid. An event carries no reason: ask sl_revocation_check for it. */
typedef struct sl_revocation_event {
    const char *token_id;
    const char *user;
    double cutoff;
    int resync;
} sl_revocation_event;

typedef void (*sl_revocation_watch_fn)(void *ud, const sl_revocation_event *ev);

/* Sets the store's one watcher (fn NULL removes it; a second call replaces the first). Called on
 * the loop thread only, and never after sl_revocation_store_free has been called.
 *
 * Memory and embedded stores: synchronously inside sl_revocation_revoke /
 *   sl_revocation_revoke_user, once per successful write, after the record is stored (a check
 *   from the watcher sees it) and before that call's cb. Failed writes report nothing (an
 *   embedded write whose barrier later fails with SL_ESTORAGE was reported: it is in force). Never
 * a resync: set the watcher before the first session is opened. Redis store: never synchronously
 * inside any call; always later, from the loop. Setting a watcher opens a second connection that
 * SUBSCRIBEs to `<prefix>:tb:revocations` (`<prefix>@<db>:tb:revocations` on a db other than 0:
 * see sl_revocation_redis_new_url) (removing it closes that connection); every successful
 * write PUBLISHes there whether or not anyone watches. Each message received becomes one event —
 * this server's own revocations included, which reach the watcher only that way, so each is
 * reported once, not once per path. Delivery is at most once; whenever the subscription is
 * confirmed (the first time after setting a watcher, and after every reconnect) the watcher gets a
 * resync event, so a missed event is never silent: anything revoked while the subscription was down
 * is found by the re-check. The subscription reconnects with the same backoff as the store, and a
 * probe every SL_REVOCATION_REDIS_WATCH_PROBE_MS finds a connection that went silent. Like the
 * command connection, it keeps the loop alive until the watcher is removed or the store freed.
 *
 * The watcher may call sl_revocation_check, revoke and revoke_user (with the memory store a
 * revoke from inside the watcher reports its own event at once, nested) and
 * sl_revocation_set_watch; it must not call sl_revocation_store_free. NULL store: no-op. */
void sl_revocation_set_watch(sl_revocation_store *s, sl_revocation_watch_fn fn, void *ud);

/* ---- operations ---------------------------------------------------------------------------------
 */

/* Both checks for one token in one call (one round trip for Redis): revoked when token_id has a
 * record or when issued_at <= the user's cut-off. token_id NULL or "": the token has no id, only
 * the user cut-off is checked. user is required. cb must not be NULL. */
void sl_revocation_check(sl_revocation_store *s, const char *token_id, const char *user,
                         double issued_at, sl_revocation_cb cb, void *ud);
/* The same for an identity an authenticator produced (token_id, principal, issued_at). */
void sl_revocation_check_identity(sl_revocation_store *s, const sl_identity *who,
                                  sl_revocation_cb cb, void *ud);

/* Revokes one token id. user (may be NULL) is validated but not stored: it is the caller's to
 * audit. reason NULL: "revoked"; at most SL_REVOCATION_REASON_MAX bytes, no control bytes.
 * token_expires_at: the token's exp (0: none, the record lives max_ttl). cb may be NULL. */
void sl_revocation_revoke(sl_revocation_store *s, const char *token_id, const char *user,
                          const char *reason, double token_expires_at, sl_revocation_cb cb,
                          void *ud);
/* Revokes every token of `user` issued at or before now (the store's clock). cb may be NULL. */
void sl_revocation_revoke_user(sl_revocation_store *s, const char *user, sl_revocation_cb cb,
                               void *ud);

/* 1 when the store can answer now (memory: always; Redis: connected), else 0. */
int sl_revocation_ready(const sl_revocation_store *s);
/* Drops expired records now and returns how many (Redis expires its keys itself: 0). */
size_t sl_revocation_prune(sl_revocation_store *s);
double sl_revocation_max_ttl(const sl_revocation_store *s);
/* "memory", "embedded" or "redis". */
const char *sl_revocation_store_name(const sl_revocation_store *s);

/* Token ids: 1..SL_TOKEN_ID_MAX bytes of printable ASCII without space (they become Redis keys).
 * Users: sl_principal_valid. */
int sl_revocation_id_valid(const char *token_id);

/* ---- implementing a store ----------------------------------------------------------------------
 */

/* A store embeds struct sl_revocation_store as its first member and fills ops. The sl_revocation_*
 * functions validate every argument, apply defaults and only then call an op, so ops see valid
 * ids, a non-NULL reason and a positive max_ttl; cb may be NULL for revoke and revoke_user. Each op
 * must call cb exactly once (unless NULL), synchronously or later, and never after free returns. */
typedef struct sl_revocation_ops {
    const char *name;
    void (*check)(sl_revocation_store *s, const char *token_id /* NULL: none */, const char *user,
                  double issued_at, sl_revocation_cb cb, void *ud);
    void (*revoke)(sl_revocation_store *s, const char *token_id, const char *reason,
                   double token_expires_at, sl_revocation_cb cb, void *ud);
    void (*revoke_user)(sl_revocation_store *s, const char *user, sl_revocation_cb cb, void *ud);
    int (*ready)(const sl_revocation_store *s);
    size_t (*prune)(sl_revocation_store *s); /* may be NULL */
    void (*free)(sl_revocation_store *s);
    /* may be NULL: called after sl_revocation_set_watch changed s->watch (never while closing),
     * so a store can start or stop the feed its events come from */
    void (*watch)(sl_revocation_store *s);
} sl_revocation_ops;

struct sl_revocation_store {
    const sl_revocation_ops *ops;
    double max_ttl; /* seconds, > 0 */
    sl_clock_fn clock;
    void *clock_ud;
    sl_revocation_log_fn log;
    void *log_ud;
    sl_revocation_watch_fn watch; /* NULL: nobody watches */
    void *watch_ud;
    int closing; /* set by sl_revocation_store_free before ops->free */
};

/* For implementations: fills the base (defaults applied); SL_EINVAL for a non-finite max_ttl. */
int sl_revocation_store_init(sl_revocation_store *s, const sl_revocation_ops *ops, double max_ttl,
                             sl_clock_fn clock, void *clock_ud);
double sl_revocation_now(const sl_revocation_store *s);
/* Record lifetime in seconds for a token expiring at token_expires_at (0: none), seen at now:
 * remaining lifetime, at least 1, at most max_ttl. */
double sl_revocation_token_ttl(const sl_revocation_store *s, double token_expires_at, double now);
/* Logs a printf-style line through the store's sink, if any. */
void sl_revocation_logf(const sl_revocation_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Reports ev to the watcher, if any and the store is not closing. The watcher may change the
 * store (set_watch, nested revocations): read nothing of it afterwards that the call could
 * have changed. */
void sl_revocation_notify(sl_revocation_store *s, const sl_revocation_event *ev);

#ifdef __cplusplus
}
#endif
#endif
