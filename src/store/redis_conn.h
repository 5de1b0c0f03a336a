/* Connections to Redis for the Redis engine, the state it shares across nodes and the Redis
 * revocation store: the engine URL
 * (`redis://[user:password@]host:port[/db]`, several separated by commas: one per shard), a
 * command connection per shard and a subscription connection per shard, plus the ring that maps
 * a channel id to its shard.
 *
 * Both connection kinds use hiredis's asynchronous client on the libuv loop; the loop never waits
 * on Redis. Host names resolve through uv_getaddrinfo (the thread pool). Each (re)connect sends
 * AUTH (when a password is given) and SELECT (db != 0) before the connection counts as up. Both
 * reconnect by themselves with a capped backoff and fail closed: while a connection is down,
 * every command completes at once with SL_EUNAVAIL, and when a reply is overdue the connection is
 * dropped and every pending command completes with SL_EUNAVAIL. Commands pipeline: hiredis
 * writes every command submitted during one loop turn in one write, and replies come back in
 * order, so one connection per shard carries many requests in flight.
 *
 * Threading: everything on the loop's thread. Nothing here is public API. */
#ifndef SLUICE_STORE_REDIS_CONN_H
#define SLUICE_STORE_REDIS_CONN_H

#include "core/logsink.h"
#include <stddef.h>

#include <hiredis/hiredis.h>
#include <sluice/sluice.h>
#include <uv.h>

#include "core/metrics.h" /* sl__histo */

/* ---- the engine URL (no I/O: unit tests and a fuzz target drive it) ------------------------- */

#define SL__REDIS_HOST_MAX 255
#define SL__REDIS_SHARDS_MAX 64

typedef struct sl__redis_addr {
    char host[SL__REDIS_HOST_MAX + 1]; /* a name or an address (IPv6 in brackets in the URL) */
    int port;                          /* 6379 when the URL gives none */
    int db;                            /* SELECT; 0 when the URL gives none */
    char *user;                        /* owned; NULL: none (AUTH with the password alone) */
    char *password;                    /* owned; NULL: no AUTH. Never logged. */
} sl__redis_addr;

typedef struct sl__redis_url {
    sl__redis_addr *shards; /* owned */
    size_t n;
} sl__redis_url;

/* Parses "redis://[user:password@]host[:port][/db]" (user and password percent-decoded), or
 * several of them separated by commas, into *out (release with sl__redis_url_clear). SL_EINVAL
 * with the reason in st for anything else: another scheme, an empty host, a port outside 1..65535,
 * a db outside 0..15, more than SL__REDIS_SHARDS_MAX shards, the same shard twice. The reason never
 * contains the password. */
int sl__redis_url_parse(const char *s, sl__redis_url *out, sl_status *st);
void sl__redis_url_clear(sl__redis_url *u);
/* One "redis://[user:password@]host[:port][/db]" (a store on one Redis) into *out (release with
 * sl__redis_addr_clear; cleared on failure). SL_EINVAL with the reason in st, named by what
 * ("revocation URL: db must be 0..15"), for what sl__redis_url_parse refuses and for a list of
 * several. The reason never contains the password. */
int sl__redis_addr_parse(const char *s, const char *what, sl__redis_addr *out, sl_status *st);
/* A deep copy (user and password duplicated): SL_OK or SL_ENOMEM (dst then holds nothing). */
int sl__redis_addr_copy(sl__redis_addr *dst, const sl__redis_addr *src);
/* Frees a's user and password (the password overwritten first) and sets both to NULL. */
void sl__redis_addr_clear(sl__redis_addr *a);
/* 1 when p can namespace keys and channels (engine_prefix): 1..64 letters, digits, '_', '-', '.'.
 * (SL__REDIS_PREFIX_MAX in redis_engine.h is the same 64.) */
int sl__redis_prefix_valid(const char *p);

/* Pub/sub channel names. Keys live in the db the connection SELECTed, but Redis delivers a PUBLISH
 * to every subscriber of the server whatever its db: two deployments that share a prefix on two
 * dbs of one Redis would hear each other's events (writes pushed to the other's sockets,
 * revocations closing its sessions). So every channel name sluice publishes or subscribes, in C
 * and in the Lua scripts (which are given the scope), is built here from the prefix AND the db:
 *   scope     the prefix on db 0 (the names of every earlier release, so a db-0 cluster upgrades
 *             node by node), "<prefix>@<db>" on db 1..15
 *   channel   "<scope>:<name>", or "<scope>:<name>:{<id>}" with an id ("sluice@3:ev:{orders}")
 * No prefix holds '@' (the engine's and the revocation store's prefixes refuse it), so a scope
 * names one prefix and one db: "a" on db 1 ("a@1") is no prefix's scope on db 0. A prefix is at
 * most 64 bytes, so a scope fits SL__REDIS_SCOPE_MAX. No I/O. */
#define SL__REDIS_SCOPE_MAX (64 + 3)
/* The scope into buf: its length, or -1 (buf then holds "") when prefix is empty, longer than 64
 * bytes or holds '@', db is outside 0..15, or it does not fit. */
int sl__redis_scope(char *buf, size_t size, const char *prefix, int db);
/* The channel name into buf: its length, or -1 (buf then holds "") as sl__redis_scope, or when
 * name is empty or it does not fit. id NULL: "<scope>:<name>". */
int sl__redis_channel(char *buf, size_t size, const char *prefix, int db, const char *name,
                      const char *id);

struct redisAsyncContext;
/* Drives a hiredis asynchronous context on loop (our adapter: see redis_link.c). 0, or -1 when
 * it is already attached or out of memory. hiredis frees the adapter with the context. */
int sl__redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop);
/* "host:port/db" of a shard, for logs and as the shard's name on the ring (no credentials). */
void sl__redis_addr_name(const sl__redis_addr *a, char *buf, size_t size);
/* "redis://[user:***@|:***@]host:port/db": the address as a URL with its password masked (user
 * percent-encoded), which parses back to the same text (sl__config_format). Owned by the caller
 * (free); NULL when out of memory. */
char *sl__redis_addr_masked(const sl__redis_addr *a);

/* ---- the shard ring ---------------------------------------------------------------------------
 */

/* Consistent hashing of channel ids onto shards: each shard owns SL__REDIS_RING_POINTS points on a
 * 64-bit ring, placed by hashing its name (sl__redis_addr_name) and the point's number, and a
 * channel goes to the first point at or after the hash of its id. Adding a shard to N moves about
 * 1/(N+1) of the channels, and the order shards are listed in does not matter. */
#define SL__REDIS_RING_POINTS 160
typedef struct sl__redis_ring sl__redis_ring;
int sl__redis_ring_new(sl__redis_ring **out, const sl__redis_url *u); /* SL_ENOMEM */
void sl__redis_ring_free(sl__redis_ring *r);
/* The index (into u->shards) of the shard that holds channel id. */
size_t sl__redis_ring_shard(const sl__redis_ring *r, const char *id);

/* ---- a command connection -----------------------------------------------------------------------
 */

typedef struct sl__rconn sl__rconn;

/* A command's completion, exactly once: rc SL_OK with Redis's reply (which may be an error reply,
 * REDIS_REPLY_ERROR: the caller decides what it means), or SL_EUNAVAIL with reply NULL (the
 * connection is down, was lost, or the reply was overdue). The reply is valid during the call only.
 * Called from the loop, never from inside sl__rconn_cmd; also from sl__rconn_free for what is
 * still pending. */
typedef void (*sl__rconn_fn)(void *ud, int rc, const redisReply *reply);
/* The connection went up (1) or down (0). */
typedef void (*sl__rconn_state_fn)(void *ud, int up);

/* A server-side Lua script, sent by its SHA-1 (EVALSHA); when Redis answers NOSCRIPT (a restarted
 * or flushed Redis) the connection sends the same call again as EVAL with the body (which also
 * caches it), keeping the caller's callback, so callers never see that.
 * Initialise once with sl__rscript_init (computes the SHA-1); body is borrowed (a static string).
 */
typedef struct sl__rscript {
    const char *body;
    char sha[41];
} sl__rscript;
void sl__rscript_init(sl__rscript *s, const char *body);

typedef struct sl__rconn_opts {
    const sl__redis_addr *addr; /* copied */
    const char *what;           /* for log lines: "engine", "engine shard 2", ... (copied) */
    const sl__logsink *log; /* where they go (borrowed, outlives the connection); NULL: stderr */
    unsigned timeout_ms;    /* no reply for this long while commands wait drops the link; 0: 5000 */
    /* The whole resolve + connect + handshake of one attempt may take this long; 0: timeout_ms. */
    unsigned connect_timeout_ms;
    sl__rconn_state_fn on_state;
    void *state_ud;
    /* Optional: a script that every (re)connect runs as its handshake's last command (as EVAL,
     * which also caches it), in place of PING. The connection counts as up only after on_check has
     * seen its reply, so nothing sent through the connection reaches Redis before the owner knows
     * the answer (the engine's layout check). on_check gets rc SL_OK and the reply (maybe an error
     * reply) with state_ud; a connection lost first calls nothing. check_argv (check_nkeys keys,
     * then the arguments) is copied. */
    const sl__rscript *check;
    int check_nkeys, check_argc;
    const char *const *check_argv;
    sl__rconn_fn on_check;
} sl__rconn_opts;

/* Starts connecting at once (in the background). *out released with sl__rconn_free, which fails
 * what is pending and closes its handles: run the loop afterwards until they are closed. */
int sl__rconn_new(sl__rconn **out, uv_loop_t *loop, const sl__rconn_opts *o);
void sl__rconn_free(sl__rconn *c);
/* 1 when connected (authenticated and selected), answering, and (with a check) the check's reply
 * was handed to on_check. */
int sl__rconn_up(const sl__rconn *c);
/* Commands answered (round trips, each with its time on the loop's clock, millisecond
 * resolution) and commands that got no answer (down, dropped or overdue). */
typedef struct sl__rconn_stats {
    unsigned long round_trips, failures;
    sl__histo seconds;
} sl__rconn_stats;
void sl__rconn_stats_get(const sl__rconn *c, sl__rconn_stats *out);
/* Sends one command; argv/lens are copied. lens NULL: strlen of each. */
void sl__rconn_cmd(sl__rconn *c, int argc, const char *const *argv, const size_t *lens,
                   sl__rconn_fn fn, void *ud);

/* EVALSHA s nkeys argv...: argv holds the nkeys keys, then the arguments. */
void sl__rconn_eval(sl__rconn *c, const sl__rscript *s, int nkeys, int argc,
                    const char *const *argv, const size_t *lens, sl__rconn_fn fn, void *ud);

/* ---- a subscription connection -------------------------------------------------------------- */

typedef struct sl__rsub sl__rsub;

/* A message published on a subscribed channel (its bytes valid during the call). */
typedef void (*sl__rsub_msg_fn)(void *ud, const char *channel, size_t clen, const char *msg,
                                size_t mlen);
/* A subscription's outcome for sl__rsub_add: SL_OK once Redis confirmed it (messages published
 * from then on arrive), SL_EUNAVAIL when the connection is down. Exactly once. */
typedef void (*sl__rsub_ready_fn)(void *ud, int rc);

typedef struct sl__rsub_opts {
    const sl__redis_addr *addr;
    const char *what;
    /* Optional: what the connection is to its owner, named in its log lines before the state
     * ("<what>: redis <addr> <role> unavailable (...)"); copied. */
    const char *role;
    const sl__logsink *log;      /* borrowed; NULL: stderr */
    unsigned connect_timeout_ms; /* resolve + connect + subscribing again; 0: 5000 */
    sl__rsub_msg_fn on_msg;
    /* Down (0), or up again (1) with every channel subscribed again: messages published while it
     * was down were missed, and the owner resynchronises. */
    sl__rconn_state_fn on_state;
    void *ud; /* for both */
} sl__rsub_opts;

/* A subscribed connection has no replies to time out: while up it is probed every
 * SL__RSUB_PROBE_MS, and a probe still unanswered at the next one drops it. */
#define SL__RSUB_PROBE_MS 1000u

int sl__rsub_new(sl__rsub **out, uv_loop_t *loop, const sl__rsub_opts *o);
void sl__rsub_free(sl__rsub *s); /* same as sl__rconn_free */
int sl__rsub_up(const sl__rsub *s);
/* Subscribes to channel (counted: the n-th add of a channel sends nothing and is ready as soon as
 * the first one is). ready may be NULL. */
void sl__rsub_add(sl__rsub *s, const char *channel, sl__rsub_ready_fn ready, void *ud);
/* Drops one count; the last one unsubscribes. */
void sl__rsub_remove(sl__rsub *s, const char *channel);

#endif
