/* What the Redis kv's two files share (redis_kv.c: staging, the group send, barriers, reloads after
 * a failed batch, the start-up scan, making and freeing; redis_kv_feed.c: the change feed, from a
 * notice to the current value handed to the watcher, and loading a table): the kv's structure, its
 * staged writes and pending requests, the helpers both use and the functions that cross files.
 * Loop thread only, like the kv. Nothing here is part of any public API. */
#ifndef SLUICE_STORE_REDIS_KV_INTERNAL_H
#define SLUICE_STORE_REDIS_KV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "store/redis_engine.h"
#include "store/redis_kv.h"

/* The kv's tables: one list, redis_kv.h's (the notices index it too). */
#define NTABLES SL__REDIS_KV_NTABLES

enum { OP_PUT, OP_DEL, OP_DELPREFIX };

typedef struct stop {
    int kind;
    int table;
    unsigned char *key, *val;
    size_t klen, vlen;
} stop;

typedef struct waiter {
    sl__kv_done_fn fn;
    void *ud;
    uint64_t lo; /* the first batch this barrier waits for */
    struct waiter *next;
} waiter;

typedef struct rkv rkv;

enum { P_BATCH, P_FETCH, P_LOAD, P_PROBE, P_READY };
enum { SUB_NONE, SUB_PENDING, SUB_DONE };

/* A request in flight on the connection (or the subscription's ready callback). */
typedef struct pend {
    int kind;
    rkv *kv; /* NULL: the kv is gone */
    struct pend *prev, *next;
    int table;
    /* P_BATCH */
    uint64_t seq;
    unsigned tables; /* bit per table touched */
    waiter *waiters, *wtail;
    /* P_FETCH, P_LOAD: the table's write count when sent, and how often it was sent again */
    uint64_t writes;
    int tries;
    /* P_FETCH: the key; P_LOAD: the callback */
    unsigned char *key;
    size_t klen;
    sl__redis_kv_load_fn cb;
    void *ud;
} pend;

struct rkv {
    sl__kv base;
    uv_loop_t *loop;
    sl__redis_addr addr;    /* host, port, db copied; user and password owned copies */
    sl__rconn *conn;        /* borrowed */
    sl__rsub *sub;          /* owned, once watched */
    const sl__logsink *log; /* borrowed; NULL: stderr */
    char prefix[SL__REDIS_PREFIX_MAX + 1];
    char channel[SL__REDIS_SCOPE_MAX + 8]; /* <scope>:kv (sl__redis_channel: prefix and db) */
    stop *ops;
    size_t nops, capops;
    pend *head;       /* pending requests */
    pend *last_batch; /* the newest batch in flight, or NULL */
    uint64_t next_seq, done_seq, failed_seq;
    int failed_rc;
    unsigned dirty; /* tables to reload once Redis answers again */
    sl__redis_kv_change_fn watch_fn;
    void *watch_ud;
    int subscribed;           /* SUB_*: the notice channel on the subscription connection */
    uint64_t writes[NTABLES]; /* writes staged per table, ever */
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t probe;
    int armed, probing;
    int open_handles;
};

static inline void pend_link(rkv *kv, pend *p)
{
    p->kv = kv;
    p->prev = NULL;
    p->next = kv->head;
    if (kv->head)
        kv->head->prev = p;
    kv->head = p;
}

static inline void pend_unlink(pend *p)
{
    if (p->kv == NULL)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        p->kv->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->kv->last_batch == p)
        p->kv->last_batch = NULL;
    p->kv = NULL;
}

static inline void pend_free(pend *p)
{
    free(p->key);
    free(p);
}

static inline void hash_key(const rkv *kv, int table, char *buf, size_t size)
{
    snprintf(buf, size, "%s:kv:%s", kv->prefix, sl__redis_kv_tables[table]);
}

/* ---- redis_kv.c ------------------------------------------------------------------------------ */

/* Sends everything staged as one script; NULL when nothing is staged (or out of memory, when the
 * staged writes are dropped and their tables reloaded, as for a failed batch). */
pend *sl__rkv_flush_batch(rkv *kv);
/* Marks tables (a bit per table) for the watcher to reload once Redis answers again, and probes
 * Redis until it does. */
void sl__rkv_mark_dirty(rkv *kv, unsigned tables_bits);
/* Stops the probe (nothing is left to reload, or the kv is being freed). */
void sl__rkv_probe_stop(rkv *kv);

#endif
