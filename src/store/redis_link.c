/* The link under both connection kinds (redis_conn.c, redis_sub.c): one hiredis asynchronous
 * connection on the libuv loop, with its state, backoff and timer, and the event adapter that
 * attaches hiredis to the loop.
 *
 * Both connection kinds share one link state machine: IDLE (a backoff timer retries, 100 ms
 * doubling to 2 s) -> RESOLVING (uv_getaddrinfo on the thread pool, so a slow DNS never blocks the
 * loop) -> CONNECTING (hiredis connects to one numeric address; AUTH, SELECT and a last command are
 * pipelined behind the connect, and the link counts as up only once that last command is answered:
 * a SIGSTOPped Redis still completes TCP handshakes from its listen backlog; on a command
 * connection the last is the owner's check script when it gives one, so that its answer is known
 * before any of the owner's commands can be sent) -> UP. One timer serves the link: the retry in
 * IDLE, the whole resolve + connect + handshake deadline (the owner's connect timeout) in RESOLVING
 * and CONNECTING, and on a subscription the probe while UP. The link fails closed: every command
 * submitted while it is not UP completes with SL_EUNAVAIL from a zero timer on the loop (never
 * inside the call), and dropping the link frees its hiredis context, whose pending reply callbacks
 * hiredis then runs with a NULL reply, which completes them with SL_EUNAVAIL. What differs per kind
 * (the last handshake command, the probe, what going down means, freeing) are hooks in
 * redis_conn.c and redis_sub.c. */
#include "store/redis_conn_internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 2000u
#define DEFAULT_TIMEOUT_MS 5000u

/* ==== the link: one hiredis connection with its state, backoff and timer ===================== */

void sl__rlink_release(rlink *l)
{
    if (--l->refs == 0)
        sl__rlink_free_struct(l);
}

static void link_handle_closed(uv_handle_t *h)
{
    sl__rlink_release(h->data);
}

static void log_line(const rlink *l, const char *fmt, const char *a)
{
    char tail[512];
    snprintf(tail, sizeof tail, fmt, a);
    sl__logsink_printf(l->log, SL__SINK_WARN, "%s: redis %s %s%s%s", l->what, l->name,
                       l->role ? l->role : "", l->role ? " " : "", tail);
}

/* Detaches and frees l's context (if any): hiredis calls every pending reply callback with NULL.
 * Safe inside hiredis callbacks, where hiredis defers the free until the callback returns. */
static void link_free_context(rlink *l)
{
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->state = L_IDLE;
    if (l->ai != NULL) {
        freeaddrinfo(l->ai);
        l->ai = l->ai_next = NULL;
    }
    if (ac != NULL) {
        ac->data = NULL; /* our connect/disconnect callbacks ignore a detached context */
        redisAsyncFree(ac);
    }
}

static void link_schedule_retry(rlink *l)
{
    uv_timer_start(&l->timer, sl__rlink_on_timer, l->backoff_ms, 0);
    l->backoff_ms *= 2;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
}

/* Drops the connection (failing what is pending through hiredis's NULL replies), tells the owner
 * when it was up, and retries after the backoff. Callers' callbacks run from here: read nothing
 * of l afterwards but closing. */
void sl__rlink_drop(rlink *l, const char *why)
{
    int was_up = l->state == L_UP;
    if (l->gai != NULL) {
        uv_cancel((uv_req_t *)l->gai); /* its callback finds it stale */
        l->gai = NULL;
    }
    link_free_context(l);
    if (l->closing)
        return;
    if (!l->down_logged) {
        log_line(l,
                 l->kind == KIND_SUB ? "unavailable (%s); messages are missed until it is back"
                                     : "unavailable (%s); its requests fail until it is back",
                 why);
        l->down_logged = 1;
    }
    uv_timer_stop(&l->timer);
    link_schedule_retry(l);
    sl__rlink_on_down(l);
    if (was_up && !l->closing && l->on_state != NULL)
        l->on_state(l->state_ud, 0);
}

void sl__rlink_up(rlink *l)
{
    uv_timer_stop(&l->timer);
    l->state = L_UP;
    l->backoff_ms = BACKOFF_MIN_MS;
    if (l->ai != NULL) {
        freeaddrinfo(l->ai);
        l->ai = l->ai_next = NULL;
    }
    if (l->down_logged)
        log_line(l, "%sconnected", "");
    l->down_logged = 0;
}

/* Reads what the socket already holds before a timer declares a reply overdue: timers run before
 * the loop polls for I/O, so after the process stalled (a loaded machine) a reply that did arrive
 * in time may still be unread. 1 when the link is still the same and not closing. */
int sl__rlink_drain(rlink *l)
{
    redisAsyncContext *ac = l->ac;
    if (ac == NULL)
        return 1;
    redisAsyncHandleRead(ac); /* may complete commands, or find the connection closed */
    return !l->closing && l->ac == ac;
}

void sl__rlink_on_timer(uv_timer_t *t)
{
    rlink *l = t->data;
    if (l->closing)
        return;
    if (l->state == L_IDLE) {
        sl__rlink_start(l);
    } else if (l->state != L_UP) {
        if (l->state == L_CONNECTING && (!sl__rlink_drain(l) || l->state == L_UP))
            return;
        sl__rlink_drop(l, "connect timed out");
    } else
        sl__rlink_tick(l); /* UP: the subscription's probe tick (see rsub_tick) */
}

/* ---- hiredis on the loop ---------------------------------------------------------------------
 * Our own event adapter rather than hiredis 0.14's adapters/libuv.h. That one calls uv_poll_start
 * on every command hiredis queues, and libuv's uv_poll_start removes the descriptor from epoll
 * and adds it back each time (two system calls per command); here the poll changes only when the
 * events we want change. And that one ignores a poll error:
 * libuv reports a refused or reset connect as an error status and stops polling, so with that
 * adapter a refused connect stays pending until the connect timer (and the next resolved address
 * is never tried in time). Here an error lets hiredis look at the socket, which fails the connect
 * or the connection at once. */

typedef struct uvev {
    uv_poll_t poll;
    /* Writes of a connected link wait for the end of the loop iteration (the check phase; the
     * idle handle keeps the poll before it from blocking) and are tried there directly: polling
     * for writability would cost two epoll_ctl calls each time the poll changes. Only a write the
     * socket cannot take whole polls for writability. */
    uv_check_t flush;
    uv_idle_t spin;
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    int events;
    int want_write; /* hiredis has output for a connected link, not written yet */
    int open;       /* handles not closed yet */
} uvev;

static void uvev_closed(uv_handle_t *h)
{
    uvev *e = h->data;
    if (--e->open == 0)
        free(e);
}

static void uvev_cb(uv_poll_t *h, int status, int events)
{
    uvev *e = h->data;
    if (e->ac == NULL)
        return;
    if (status < 0) {
        if (e->events & UV_WRITABLE)
            redisAsyncHandleWrite(e->ac);
        else
            redisAsyncHandleRead(e->ac);
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(e->ac);
    if (e->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(e->ac);
}

static void uvev_update(uvev *e, int add, int ev)
{
    int want = add ? e->events | ev : e->events & ~ev;
    if (want == e->events)
        return;
    e->events = want;
    if (want)
        uv_poll_start(&e->poll, want, uvev_cb);
    else
        uv_poll_stop(&e->poll);
}

static void uvev_flush_cb(uv_check_t *h)
{
    uvev *e = h->data;
    uv_check_stop(&e->flush);
    uv_idle_stop(&e->spin);
    if (e->ac == NULL || !e->want_write)
        return;
    redisAsyncHandleWrite(e->ac); /* written whole: hiredis calls del_write */
    if (e->ac != NULL && e->want_write)
        uvev_update(e, 1, UV_WRITABLE);
}

static void uvev_spin_cb(uv_idle_t *h)
{
    (void)h; /* its being active is the point: the poll before the check does not block */
}

static void uvev_add_read(void *p)
{
    uvev_update(p, 1, UV_READABLE);
}

static void uvev_del_read(void *p)
{
    uvev_update(p, 0, UV_READABLE);
}

static void uvev_add_write(void *p)
{
    uvev *e = p;
    /* Connecting: writability is how the connect is seen to complete. */
    if (!(e->ac->c.flags & REDIS_CONNECTED) || (e->events & UV_WRITABLE)) {
        uvev_update(e, 1, UV_WRITABLE);
        return;
    }
    if (!e->want_write) {
        e->want_write = 1;
        uv_check_start(&e->flush, uvev_flush_cb);
        uv_idle_start(&e->spin, uvev_spin_cb);
    }
}

static void uvev_del_write(void *p)
{
    uvev *e = p;
    e->want_write = 0;
    uvev_update(e, 0, UV_WRITABLE);
}

static void uvev_cleanup(void *p)
{
    uvev *e = p;
    e->ac->ev.data = NULL;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, uvev_closed);
    uv_close((uv_handle_t *)&e->flush, uvev_closed);
    uv_close((uv_handle_t *)&e->spin, uvev_closed);
}

int sl__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return -1;
    uvev *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return -1;
    }
    uv_check_init(loop, &e->flush);
    uv_idle_init(loop, &e->spin);
    e->poll.data = e->flush.data = e->spin.data = e;
    e->open = 3;
    e->ac = ac;
    ac->ev.data = e;
    ac->ev.addRead = uvev_add_read;
    ac->ev.delRead = uvev_del_read;
    ac->ev.addWrite = uvev_add_write;
    ac->ev.delWrite = uvev_del_write;
    ac->ev.cleanup = uvev_cleanup;
    return 0;
}

static void on_connect(const redisAsyncContext *cac, int status);
static void on_disconnect(const redisAsyncContext *cac, int status);

/* Connects to the next resolved address; when none is left, drops with why. */
static void link_connect_next(rlink *l, const char *why)
{
    char errbuf[160];
    while (l->ai_next != NULL) {
        struct addrinfo *ai = l->ai_next;
        l->ai_next = ai->ai_next;
        char ip[INET6_ADDRSTRLEN];
        const void *src = ai->ai_family == AF_INET6
                              ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                              : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        if (inet_ntop(ai->ai_family, src, ip, sizeof ip) == NULL)
            continue;
        redisAsyncContext *ac = redisAsyncConnect(ip, l->addr.port);
        if (ac == NULL) {
            why = "out of memory";
            continue;
        }
        if (ac->err) {
            snprintf(errbuf, sizeof errbuf, "connect: %.120s", ac->errstr);
            why = errbuf;
            redisAsyncFree(ac);
            continue;
        }
        if (sl__redis_uv_attach(ac, l->loop) != 0) {
            redisAsyncFree(ac);
            why = "cannot attach to the loop";
            continue;
        }
        ac->data = l;
        redisAsyncSetConnectCallback(ac, on_connect);
        redisAsyncSetDisconnectCallback(ac, on_disconnect);
        l->ac = ac;
        l->state = L_CONNECTING;
        /* Queued now, written as soon as the socket connects: one round trip to up. */
        sl__rlink_send_handshake(l);
        return;
    }
    sl__rlink_drop(l, why);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    rlink *l = req->data;
    int stale = l->gai != req;
    free(req);
    if (stale || l->closing) {
        if (res != NULL)
            freeaddrinfo(res);
        sl__rlink_release(l);
        return;
    }
    l->gai = NULL;
    l->refs--; /* not the last: the timers are open while not closing */
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot resolve the host: %.100s", uv_strerror(status));
        sl__rlink_drop(l, why);
        return;
    }
    l->ai = l->ai_next = res;
    l->state = L_CONNECTING;
    link_connect_next(l, "no address");
}

void sl__rlink_start(rlink *l)
{
    uv_timer_start(&l->timer, sl__rlink_on_timer, l->connect_timeout_ms, 0);
    uv_getaddrinfo_t *req = malloc(sizeof *req);
    if (req == NULL) {
        sl__rlink_drop(l, "out of memory");
        return;
    }
    req->data = l;
    char port[16];
    snprintf(port, sizeof port, "%d", l->addr.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    l->state = L_RESOLVING;
    int rc = uv_getaddrinfo(l->loop, req, on_resolved, l->addr.host, port, &hints);
    if (rc != 0) {
        free(req);
        char why[160];
        snprintf(why, sizeof why, "cannot resolve the host: %.100s", uv_strerror(rc));
        sl__rlink_drop(l, why);
        return;
    }
    l->gai = req;
    l->refs++;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    rlink *l = cac->data;
    if (l == NULL || l->closing)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns (and fails the handshake's callbacks). */
        char why[160];
        snprintf(why, sizeof why, "connect: %.120s", cac->c.errstr);
        l->ac = NULL;
        link_connect_next(l, why);
        return;
    }
    redisEnableKeepAlive((redisContext *)&cac->c);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    rlink *l = cac->data;
    if (l == NULL)
        return; /* detached by link_free_context: already handled */
    char why[160];
    snprintf(why, sizeof why, "connection lost: %.120s",
             cac->c.errstr[0] ? cac->c.errstr : "closed");
    l->ac = NULL; /* hiredis frees it when this returns; pending replies were failed before */
    /* A lost connection retries quickly; one that never got to answer keeps backing off. */
    if (l->state == L_UP)
        l->backoff_ms = BACKOFF_MIN_MS;
    sl__rlink_drop(l, why);
}

/* AUTH and SELECT replies: an error drops the link (logged once per outage; the reason is the
 * error's first word, never anything sent). */
static void on_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rlink *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->closing || l->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[64];
        size_t n = strcspn(reply->str, " ");
        snprintf(why, sizeof why, "AUTH refused: %.*s", (int)(n > 32 ? 32 : n), reply->str);
        sl__rlink_drop(l, why);
    }
}

static void on_select_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rlink *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->closing || l->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "SELECT %d refused: %.100s", l->addr.db, reply->str);
        sl__rlink_drop(l, why);
    }
}

void sl__rlink_send_prelude(rlink *l)
{
    if (l->addr.password != NULL) {
        if (l->addr.user != NULL)
            redisAsyncCommand(l->ac, on_auth_reply, l, "AUTH %s %s", l->addr.user,
                              l->addr.password);
        else
            redisAsyncCommand(l->ac, on_auth_reply, l, "AUTH %s", l->addr.password);
    }
    if (l->addr.db != 0)
        redisAsyncCommand(l->ac, on_select_reply, l, "SELECT %d", l->addr.db);
}

int sl__rlink_init(rlink *l, int kind, uv_loop_t *loop, const sl__redis_addr *addr,
                   const char *what, const char *role, unsigned timeout_ms,
                   unsigned connect_timeout_ms)
{
    l->kind = kind;
    l->loop = loop;
    if (sl__redis_addr_copy(&l->addr, addr) != SL_OK ||
        (l->what = strdup(what != NULL ? what : "engine")) == NULL ||
        (role != NULL && (l->role = strdup(role)) == NULL)) {
        sl__redis_addr_clear(&l->addr);
        free(l->what);
        return SL_ENOMEM;
    }
    sl__redis_addr_name(addr, l->name, sizeof l->name);
    l->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
    l->connect_timeout_ms = connect_timeout_ms ? connect_timeout_ms : l->timeout_ms;
    l->state = L_IDLE;
    l->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    /* The link's timers serve its connection, whose socket keeps the loop alive while it exists;
     * they must not keep a finished server's loop running by themselves. */
    uv_unref((uv_handle_t *)&l->timer);
    l->refs = 1;
    /* hiredis writes with write(2): a Redis that goes away mid-write must not kill the process. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    return SL_OK;
}

void sl__rlink_close(rlink *l)
{
    l->closing = 1;
    if (l->gai != NULL) {
        uv_cancel((uv_req_t *)l->gai); /* its callback still runs, and releases its reference */
        l->gai = NULL;
    }
    link_free_context(l);
    uv_close((uv_handle_t *)&l->timer, link_handle_closed);
}

void sl__rlink_clear(rlink *l)
{
    sl__redis_addr_clear(&l->addr);
    free(l->what);
    free(l->role);
}

void sl__rlater_push(later_q *q, later *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

later *sl__rlater_pop(later_q *q)
{
    later *n = q->head;
    if (n != NULL) {
        q->head = n->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return n;
}
