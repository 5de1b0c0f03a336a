/* What the files behind redis_conn.h share: redis_url.c (the engine URL, the shard ring),
 * redis_link.c (the link: one hiredis connection on the loop with its state machine, and the
 * completions owed from the loop), redis_conn.c (the command connection, and the link's per-kind
 * hooks) and redis_sub.c (the subscription connection). Nothing here is part of the public API. */
#ifndef SLUICE_STORE_REDIS_CONN_INTERNAL_H
#define SLUICE_STORE_REDIS_CONN_INTERNAL_H

#include <stddef.h>

#include <hiredis/async.h>
#include <netdb.h>
#include <uv.h>

#include "store/redis_conn.h"

/* Room for sl__redis_addr_name of any shard. */
#define NAME_MAX_LEN (SL__REDIS_HOST_MAX + 32)

/* ---- redis_link.c ---------------------------------------------------------------------------- */

typedef enum { L_IDLE, L_RESOLVING, L_CONNECTING, L_UP } lstate;
enum { KIND_CMD, KIND_SUB };

typedef struct rlink {
    int kind;
    uv_loop_t *loop;
    sl__redis_addr addr; /* user and password owned */
    char name[NAME_MAX_LEN];
    char *what;
    char *role; /* NULL: none */
    unsigned timeout_ms;
    unsigned connect_timeout_ms;
    redisAsyncContext *ac;
    lstate state;
    uv_timer_t timer;
    uv_getaddrinfo_t *gai; /* the resolve in flight, if any */
    struct addrinfo *ai;   /* resolved addresses; ai_next is the next one to try */
    struct addrinfo *ai_next;
    unsigned backoff_ms;
    int down_logged; /* the outage was logged since the last "connected" */
    int closing;
    int refs; /* handles and requests still open; the struct goes with the last */
    sl__rconn_state_fn on_state;
    void *state_ud;
    const sl__logsink *log; /* borrowed; NULL: stderr */
} rlink;

/* A completion owed to a caller, delivered from the loop (a zero timer), not from the call that
 * caused it. */
typedef struct later {
    struct later *next;
    sl__rconn_fn fn;         /* commands */
    sl__rsub_ready_fn ready; /* subscriptions */
    void *ud;
    int rc;
} later;

typedef struct later_q {
    later *head, *tail;
    uv_timer_t kick;
} later_q;

/* Sets l up, idle, for addr (copied, credentials included), with one reference: SL_OK or
 * SL_ENOMEM. role may be NULL; connect_timeout_ms 0: timeout_ms. */
int sl__rlink_init(rlink *l, int kind, uv_loop_t *loop, const sl__redis_addr *addr,
                   const char *what, const char *role, unsigned timeout_ms,
                   unsigned connect_timeout_ms);
/* Starts resolving and connecting, under the link's timer. */
void sl__rlink_start(rlink *l);
/* The link is up: backoff reset, "connected" logged after an outage. */
void sl__rlink_up(rlink *l);
/* Drops the connection and retries after the backoff; callers' callbacks run from here. */
void sl__rlink_drop(rlink *l, const char *why);
/* Reads what the socket already holds; 1 when the link is still the same and not closing. */
int sl__rlink_drain(rlink *l);
/* The link's timer (retry, connect deadline, the probe tick while up). */
void sl__rlink_on_timer(uv_timer_t *t);
/* Queues AUTH and SELECT as the link's configuration asks. */
void sl__rlink_send_prelude(rlink *l);
/* Marks l closing, frees its context and closes its timer (which releases a reference). */
void sl__rlink_close(rlink *l);
/* Drops a reference; the last one frees the struct (sl__rlink_free_struct). */
void sl__rlink_release(rlink *l);
/* Frees what sl__rlink_init allocated. */
void sl__rlink_clear(rlink *l);
void sl__rlater_push(later_q *q, later *n);
/* The oldest completion, or NULL. */
later *sl__rlater_pop(later_q *q);

/* ---- redis_conn.c and redis_sub.c: the link's per-kind hooks -------------------------------- */

/* Queues the handshake behind the connect: the prelude, then PING (commands) or every channel and
 * the probe (subscriptions); its last reply makes the link up. */
void sl__rlink_send_handshake(rlink *l);
void sl__rlink_tick(rlink *l);        /* the timer while up (redis_sub.c) */
void sl__rlink_on_down(rlink *l);     /* the link dropped (redis_sub.c) */
void sl__rlink_free_struct(rlink *l); /* the last reference went */

/* ---- redis_sub.c: a subscription's side of the two hooks that differ per kind ---------------- */

/* (Re)subscribes every channel that is wanted, then the probe channel. */
void sl__rsub_handshake(sl__rsub *s);
/* Frees what the subscription connection owns, and s itself. */
void sl__rsub_free_struct(sl__rsub *s);

#endif
