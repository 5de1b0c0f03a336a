/* The Redis revocation store: hiredis's asynchronous client on the libuv loop. Records are
 * `<prefix>:tb:revoked:<token id>` (the reason) and `<prefix>:tb:user_revoked_at:<user>` (the
 * cut-off, decimal seconds), both written with SET ... EX so Redis expires them. A check pipelines
 * two GETs (one round trip); anything but a nil or a well-formed value counts as revoked. The store
 * fails closed: until a connection has answered PING, and from the moment it is lost or a reply is
 * overdue, every call answers SL_EUNAVAIL at once while a backoff timer reconnects by itself.
 *
 * Watching: a successful SET is followed by a PUBLISH of "t <id>" or "u <cut-off> <user>" on
 * `<prefix>:tb:revocations`, and the write is answered only then. While a watcher is set, a second
 * connection (same backoff, probed every second since it has no replies to time out) subscribes
 * to that channel; each confirmed subscription tells the watcher to resync, and each message,
 * this server's own included, becomes one event. That is the only path events take, so a local
 * revocation is reported once, never also from the revoking call.
 *
 * Lifetime: a pending operation (rop) is owned by hiredis's reply callbacks, which hiredis calls
 * exactly once each, with a NULL reply when the context is freed; the store also keeps its rops in
 * a FIFO (send order = reply order) for the overdue check and for failing them early on free. The
 * store itself is released only by its timers' close callbacks, so hiredis callbacks that run
 * while a context is being freed always find it. */
#include <sluice/revocation.h>

#include "core/map.h"
#include "store/redis_conn.h"
#include "store/redis_internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX (SL_REVOCATION_PREFIX_MAX + 32 + SL_PRINCIPAL_MAX)
#define MSG_MAX SL__REDIS_MSG_MAX

typedef enum {
    R_IDLE,       /* no context; the retry timer runs (unless a watch link nobody needs) */
    R_CONNECTING, /* TCP connect and PING / SUBSCRIBE in flight; the connect timer runs */
    R_CONNECTED,  /* answering (commands) / subscribed (watch) */
} rstate;

typedef struct rop rop;
typedef struct redis_store redis_store;

/* One hiredis connection with its own state, backoff and timer. The store has two: commands
 * (GET/SET/PUBLISH) and, while a watcher is set, the subscription, which hiredis cannot share
 * with commands (a subscribed RESP2 connection accepts nothing else). */
typedef struct rlink {
    redis_store *s;
    int watch; /* 1: the subscription */
    redisAsyncContext *ac;
    rstate state;
    /* retry (R_IDLE), connect timeout (R_CONNECTING), probe (watch link, R_CONNECTED) */
    uv_timer_t timer;
    unsigned backoff_ms;
    int down_logged; /* "unavailable" was logged since the last "connected" */
    int probe_out;   /* watch: a probe has not been answered yet */
} rlink;

struct redis_store {
    sl_revocation_store base;
    uv_loop_t *loop;
    char *host;
    int port;
    char prefix[SL_REVOCATION_PREFIX_MAX + 1];
    char channel[SL_REVOCATION_PREFIX_MAX + 32]; /* <prefix>:tb:revocations */
    rlink cmd, sub;
    uv_timer_t watchdog; /* fires when the oldest pending reply is overdue */
    int handles_open;
    rop *head, *tail;
    /* Checks of this loop turn waiting to be sent, one per pair of keys (the others with the
     * same keys follow it), and the index of them by their keys; sent by `prep` just before the
     * loop waits for I/O. */
    rop *pending, *pending_tail; /* in arrival order: answers keep it */
    sl__map *joinable;
    uv_prepare_t prep;
    /* malformed watch messages: logged at most once a second, with a count */
    unsigned ignored;
    int ignored_logged;
    uint64_t ignored_logged_at;
};

enum { OP_CHECK, OP_WRITE };

struct rop {
    rop *prev, *next;
    redis_store *s;
    int linked; /* in the store's FIFO */
    int done;   /* cb has been called */
    int kind;
    int waiting;   /* replies still to come */
    int has_token; /* checks: the first reply is the token's */
    int seen;      /* replies seen */
    int status;    /* worst answer so far: SL_ETOKEN > SL_EUNAVAIL > SL_OK */
    uint64_t deadline;
    double issued_at;
    sl_revocation_cb cb;
    void *ud;
    char reason[SL_REVOCATION_REASON_MAX + 1];
    char msg[MSG_MAX + 1]; /* writes: what to PUBLISH once the SET succeeded */
    /* checks: the keys (the token's, empty when none; the user's), and the checks that share
     * this one's GETs (it leads them: their answers come with its replies) */
    char tkey[KEY_MAX], ukey[KEY_MAX];
    rop *followers, *ftail, *fnext;
    rop *pnext; /* in the store's pending list, not sent yet */
};

static const char MALFORMED[] = "malformed revocation record";

static void link_schedule_retry(rlink *l);
static void link_start(rlink *l);
static void on_watchdog(uv_timer_t *t);
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

/* ---- the pending FIFO and the overdue watchdog ---------------------------------------------- */

static void watchdog_arm(redis_store *s)
{
    if (s->base.closing)
        return;
    if (s->head == NULL) {
        uv_timer_stop(&s->watchdog);
        return;
    }
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->watchdog, on_watchdog, s->head->deadline > now ? s->head->deadline - now : 0,
                   0);
}

static void op_link(redis_store *s, rop *op)
{
    op->prev = s->tail;
    op->next = NULL;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    op->linked = 1;
    if (s->head == op)
        watchdog_arm(s);
}

static void op_unlink(rop *op)
{
    redis_store *s = op->s;
    if (!op->linked)
        return;
    int was_head = s->head == op;
    if (op->prev)
        op->prev->next = op->next;
    else
        s->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        s->tail = op->prev;
    op->linked = 0;
    if (was_head)
        watchdog_arm(s);
}

static const char *status_reason(const rop *op)
{
    if (op->status == SL_ETOKEN)
        return op->reason;
    if (op->status == SL_EUNAVAIL)
        return "revocation store unavailable";
    return NULL;
}

/* ---- connection management (both links) ----------------------------------------------------- */

/* Detaches and frees l's context (if any): hiredis calls every pending reply callback with NULL,
 * which answers SL_EUNAVAIL (commands) or is ignored (watch). Safe inside hiredis callbacks, where
 * hiredis defers the free until the callback returns. */
static void link_free_context(rlink *l)
{
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->state = R_IDLE;
    l->probe_out = 0;
    if (ac != NULL) {
        ac->data = NULL; /* our connect/disconnect callbacks ignore a detached context */
        redisAsyncFree(ac);
    }
}

/* Drops l's context and retries unless the store is closing (or, for the watch link, nobody
 * watches any more — a callback run by the free may have removed the watcher). */
static void link_drop(rlink *l, const char *why)
{
    redis_store *s = l->s;
    link_free_context(l);
    if (s->base.closing)
        return;
    if (l->watch && s->base.watch == NULL) {
        uv_timer_stop(&l->timer);
        return;
    }
    if (!l->down_logged) {
        if (l->watch)
            sl_revocation_logf(&s->base,
                               "revocation store: redis %s:%d watch subscription unavailable (%s); "
                               "revocation events are missed until it is back, then resynced",
                               s->host, s->port, why);
        else
            sl_revocation_logf(&s->base,
                               "revocation store: redis %s:%d unavailable (%s); checks fail "
                               "closed until it is back",
                               s->host, s->port, why);
        l->down_logged = 1;
    }
    link_schedule_retry(l);
}

/* The watch link when nobody watches: no context, no timer, a fresh backoff for next time. */
static void link_stop(rlink *l)
{
    link_free_context(l);
    uv_timer_stop(&l->timer);
    l->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MIN_MS;
    l->down_logged = 0;
}

static void on_watchdog(uv_timer_t *t)
{
    redis_store *s = t->data;
    if (s->head == NULL || s->base.closing)
        return;
    if (s->head->deadline > uv_now(s->loop)) {
        watchdog_arm(s);
        return;
    }
    link_drop(&s->cmd, "reply timed out");
}

/* A subscribed connection carries no replies to time out, so the watch link asks for one: a
 * repeated SUBSCRIBE of the channel it is already on, which Redis confirms without changing
 * anything (and hiredis matches to the channel's callback, unlike PING). One still unanswered at
 * the next tick means the connection went silent (a hung Redis, a dead peer without a reset). */
static void watch_probe(rlink *l)
{
    redis_store *s = l->s;
    if (l->probe_out) {
        link_drop(l, "probe timed out");
        return;
    }
    if (redisAsyncCommand(l->ac, on_sub_reply, s, "SUBSCRIBE %s", s->channel) != REDIS_OK) {
        link_drop(l, "cannot send a probe");
        return;
    }
    l->probe_out = 1;
}

static void on_link_timer(uv_timer_t *t)
{
    rlink *l = t->data;
    if (l->s->base.closing)
        return;
    if (l->state == R_IDLE)
        link_start(l);
    else if (l->state == R_CONNECTING)
        link_drop(l, l->watch ? "subscribe timed out" : "connect timed out");
    else if (l->watch)
        watch_probe(l);
}

static void link_schedule_retry(rlink *l)
{
    if (l->s->base.closing)
        return;
    uv_timer_start(&l->timer, on_link_timer, l->backoff_ms, 0);
    l->backoff_ms *= 2;
    if (l->backoff_ms > SL_REVOCATION_REDIS_BACKOFF_MAX_MS)
        l->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MAX_MS;
}

/* l answered: PONG (commands) or the SUBSCRIBE confirmation (watch). */
static void link_up(rlink *l)
{
    redis_store *s = l->s;
    uv_timer_stop(&l->timer);
    l->state = R_CONNECTED;
    l->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MIN_MS;
    l->down_logged = 0;
    if (l->watch) {
        l->probe_out = 0;
        uv_timer_start(&l->timer, on_link_timer, SL_REVOCATION_REDIS_WATCH_PROBE_MS,
                       SL_REVOCATION_REDIS_WATCH_PROBE_MS);
        sl_revocation_logf(&s->base, "revocation store: redis %s:%d watch subscription active",
                           s->host, s->port);
    } else {
        sl_revocation_logf(&s->base, "revocation store: redis %s:%d connected", s->host, s->port);
    }
}

/* The connection counts only once Redis has answered: a stopped (SIGSTOP) server still completes
 * TCP handshakes from its listen backlog. */
static void on_pong(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_store *s = privdata;
    redisReply *reply = r;
    if (reply == NULL || s->base.closing || s->cmd.ac != ac)
        return; /* being freed: handled there */
    if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
        link_up(&s->cmd);
        return;
    }
    char why[160];
    snprintf(why, sizeof why, "PING answered %.100s",
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpectedly");
    link_drop(&s->cmd, why);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    rlink *l = cac->data;
    if (l == NULL || l->s->base.closing)
        return;
    redis_store *s = l->s;
    redisAsyncContext *ac = l->ac; /* == cac; the non-const one */
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns. */
        char why[160];
        snprintf(why, sizeof why, "connect: %.120s", cac->c.errstr);
        l->ac = NULL;
        uv_timer_stop(&l->timer);
        link_drop(l, why);
        return;
    }
    redisEnableKeepAlive(&ac->c);
    /* Not dropped here when the command cannot be queued: hiredis still uses the context after
     * this callback, so the connect timer cleans up instead. */
    if (l->watch)
        redisAsyncCommand(ac, on_sub_reply, s, "SUBSCRIBE %s", s->channel);
    else
        redisAsyncCommand(ac, on_pong, s, "PING");
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    rlink *l = cac->data;
    if (l == NULL)
        return; /* detached by link_free_context: already handled */
    /* hiredis frees the context when this returns; pending replies were failed before. */
    char why[160];
    snprintf(why, sizeof why, "connection lost: %.120s",
             cac->c.errstr[0] ? cac->c.errstr : "closed");
    l->ac = NULL;
    /* A lost connection retries quickly; one that never got to answer keeps backing off. */
    if (l->state == R_CONNECTED)
        l->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MIN_MS;
    link_drop(l, why);
}

static void link_start(rlink *l)
{
    redis_store *s = l->s;
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (ac == NULL) {
        link_drop(l, "out of memory");
        return;
    }
    if (ac->err) {
        char why[160];
        snprintf(why, sizeof why, "connect: %.120s", ac->errstr ? ac->errstr : "error");
        redisAsyncFree(ac);
        link_drop(l, why);
        return;
    }
    if (sl__redis_uv_attach(ac, s->loop) != 0) {
        redisAsyncFree(ac);
        link_drop(l, "cannot attach to the loop");
        return;
    }
    ac->data = l;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;
    l->state = R_CONNECTING;
    uv_timer_start(&l->timer, on_link_timer, SL_REVOCATION_REDIS_CONNECT_TIMEOUT_MS, 0);
}

static void link_init(redis_store *s, rlink *l, int watch)
{
    l->s = s;
    l->watch = watch;
    l->state = R_IDLE;
    l->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MIN_MS;
    uv_timer_init(s->loop, &l->timer);
    l->timer.data = l;
    /* The timers only serve the connections, whose sockets keep the loop alive while they
     * exist; they must not keep a finished server's loop running on their own. */
    uv_unref((uv_handle_t *)&l->timer);
}

/* ---- replies -------------------------------------------------------------------------------- */

static void op_worse(rop *op, int status, const char *reason)
{
    if (op->status == SL_ETOKEN)
        return;
    if (status == SL_ETOKEN) {
        op->status = SL_ETOKEN;
        snprintf(op->reason, sizeof op->reason, "%s", reason);
    } else if (status == SL_EUNAVAIL) {
        op->status = SL_EUNAVAIL;
    }
}

static int reason_ok(const char *r, size_t len)
{
    if (len > SL_REVOCATION_REASON_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)r[i] < 0x20 || r[i] == 0x7f)
            return 0;
    return 1;
}

/* Cut-offs are written as "%.3f"; accept plain decimals only (no sign, exponent, inf or nan). */
static int parse_cutoff(const char *str, size_t len, double *out)
{
    size_t i = 0, int_digits = 0, frac_digits = 0;
    while (i < len && str[i] >= '0' && str[i] <= '9')
        i++, int_digits++;
    if (i < len && str[i] == '.') {
        i++;
        while (i < len && str[i] >= '0' && str[i] <= '9')
            i++, frac_digits++;
        if (frac_digits == 0)
            return 0;
    }
    if (i != len || int_digits == 0 || int_digits > 15 || frac_digits > 9)
        return 0;
    *out = strtod(str, NULL);
    return 1;
}

int sl__redis_check_reply(const redisReply *reply, int is_token, double issued_at,
                          const char **reason)
{
    *reason = NULL;
    if (reply == NULL)
        return SL_EUNAVAIL;
    if (reply->type == REDIS_REPLY_NIL)
        return SL_OK; /* no record */
    if (reply->type == REDIS_REPLY_STRING) {
        if (is_token) {
            *reason = reply->len == 0                     ? "revoked"
                      : reason_ok(reply->str, reply->len) ? reply->str
                                                          : MALFORMED;
            return SL_ETOKEN;
        }
        double cutoff;
        if (!parse_cutoff(reply->str, reply->len, &cutoff))
            *reason = MALFORMED;
        else if (issued_at <= cutoff)
            *reason = "all tokens of the user revoked";
        return *reason ? SL_ETOKEN : SL_OK;
    }
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "WRONGTYPE", 9) != 0)
        return SL_EUNAVAIL; /* LOADING, MISCONF, ...: Redis cannot answer */
    *reason = MALFORMED;    /* a key of another type, or a reply of one */
    return SL_ETOKEN;
}

/* One GET reply of a check, into op->status. */
static void eval_get(rop *op, const redisReply *reply, int is_token)
{
    const char *reason;
    int status = sl__redis_check_reply(reply, is_token, op->issued_at, &reason);
    if (status != SL_OK)
        op_worse(op, status, reason);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Announces a written revocation on the watch channel, from inside the SET's reply callback: the
 * PUBLISH joins op (one more reply to wait for), so the write is answered SL_OK only once Redis
 * has taken both. 0 when it cannot be queued. */
static int op_publish(rop *op, redisAsyncContext *ac)
{
    redis_store *s = op->s;
    if (s->base.closing || s->cmd.ac != ac || s->cmd.state != R_CONNECTED)
        return 0;
    const char *argv[] = {"PUBLISH", s->channel, op->msg};
    size_t len[] = {7, strlen(s->channel), strlen(op->msg)};
    if (redisAsyncCommandArgv(ac, on_reply, op, 3, argv, len) != REDIS_OK)
        return 0;
    op->waiting++;
    /* A new command: its own deadline, and the FIFO's tail keeps the FIFO in deadline order. */
    op_unlink(op);
    op->deadline = uv_now(s->loop) + SL_REVOCATION_REDIS_COMMAND_TIMEOUT_MS;
    op_link(s, op);
    return 1;
}

static void eval_write(rop *op, redisAsyncContext *ac, const redisReply *reply)
{
    int is_set = op->seen == 0;
    int ok = reply != NULL &&
             (is_set ? reply->type == REDIS_REPLY_STATUS : reply->type == REDIS_REPLY_INTEGER);
    if (!ok) {
        if (reply && reply->type == REDIS_REPLY_ERROR && !op->s->base.closing)
            sl_revocation_logf(&op->s->base, "revocation store: redis %s failed: %.120s",
                               is_set ? "write" : "publish", reply->str);
        op_worse(op, SL_EUNAVAIL, NULL);
        return;
    }
    /* Written: other servers (and this one's watcher) learn of it only through the channel. */
    if (is_set && !op_publish(op, ac))
        op_worse(op, SL_EUNAVAIL, NULL);
}

/* Answers op and the checks that follow it, then frees them all. Everything touching the store
 * happens before the first callback, which may free the store. */
static void op_finish(rop *op)
{
    op_unlink(op);
    for (rop *f = op->followers; f; f = f->fnext)
        op_unlink(f);
    rop *f = op->followers;
    if (!op->done) {
        op->done = 1;
        op->cb(op->ud, op->status, status_reason(op));
    }
    free(op);
    while (f) {
        rop *next = f->fnext;
        if (!f->done) {
            f->done = 1;
            f->cb(f->ud, f->status, status_reason(f));
        }
        free(f);
        f = next;
    }
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rop *op = privdata;
    redisReply *reply = r;
    if (op->kind == OP_CHECK) {
        /* Each check weighs the same replies with its own issued_at (the user's cut-off). */
        int is_token = op->has_token && op->seen == 0;
        for (rop *c = op; c; c = c == op ? op->followers : c->fnext)
            if (!c->done)
                eval_get(c, reply, is_token);
    } else if (!op->done) {
        eval_write(op, ac, reply);
    }
    op->seen++;
    if (--op->waiting > 0)
        return;
    op_finish(op);
}

/* ---- the watch subscription ----------------------------------------------------------------- */

/* A watch message into ev: "t <token id>" or "u <cut-off> <user>", exactly (one space, nothing
 * after). The id or user is copied into buf (MSG_MAX + 1 bytes), where ev points. Anyone who can
 * write to this Redis can publish here, so nothing is trusted: length, NUL bytes, the cut-off's
 * syntax and the id and user validators all have to pass. */
int sl__redis_parse_message(const char *p, size_t len, sl_revocation_event *ev, char *buf)
{
    memset(ev, 0, sizeof *ev);
    if (len < 3 || len > MSG_MAX || memchr(p, '\0', len) != NULL || p[1] != ' ')
        return 0;
    if (p[0] == 't') {
        memcpy(buf, p + 2, len - 2);
        buf[len - 2] = '\0';
        if (!sl_revocation_id_valid(buf))
            return 0;
        ev->token_id = buf;
        return 1;
    }
    if (p[0] != 'u')
        return 0;
    const char *c = p + 2, *end = p + len;
    const char *sp = memchr(c, ' ', (size_t)(end - c));
    if (sp == NULL || sp - c > 25)
        return 0;
    char num[32];
    memcpy(num, c, (size_t)(sp - c));
    num[sp - c] = '\0';
    size_t ulen = (size_t)(end - sp - 1);
    memcpy(buf, sp + 1, ulen);
    buf[ulen] = '\0';
    if (!parse_cutoff(num, (size_t)(sp - c), &ev->cutoff) || !sl_principal_valid(buf, ulen))
        return 0;
    ev->user = buf;
    return 1;
}

/* A flood of garbage must not become a flood of log lines: one a second at most, with a count.
 * The payload is never logged (it may hold a token id). */
static void note_ignored(redis_store *s)
{
    s->ignored++;
    uint64_t now = uv_now(s->loop);
    if (s->ignored_logged && now - s->ignored_logged_at < 1000)
        return;
    sl_revocation_logf(&s->base,
                       "revocation store: redis %s:%d ignored %u malformed message(s) on the "
                       "watch channel",
                       s->host, s->port, s->ignored);
    s->ignored = 0;
    s->ignored_logged = 1;
    s->ignored_logged_at = now;
}

int sl__redis_sub_reply(const redisReply *reply, const redisReply **payload)
{
    *payload = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return SL__REDIS_SUB_OTHER;
    const redisReply *k = reply->element[0];
    if (k->len == 9 && memcmp(k->str, "subscribe", 9) == 0)
        return SL__REDIS_SUB_CONFIRM;
    if (k->len != 7 || memcmp(k->str, "message", 7) != 0)
        return SL__REDIS_SUB_OTHER;
    *payload = reply->element[2];
    return SL__REDIS_SUB_MESSAGE;
}

/* Every reply of the watch link: SUBSCRIBE confirmations (the first makes the link up and tells
 * the watcher to resync; later ones answer probes) and messages. hiredis routes them here by
 * channel name; a NULL reply means the context is being freed, which link_drop handles. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_store *s = privdata;
    redisReply *reply = r;
    if (reply == NULL || s->base.closing || s->sub.ac != ac)
        return;
    const redisReply *m = NULL;
    int kind = sl__redis_sub_reply(reply, &m);
    if (kind == SL__REDIS_SUB_CONFIRM) {
        if (s->sub.state == R_CONNECTING) {
            link_up(&s->sub);
            /* Whatever was published before this moment never reached us. Last: the watcher may
             * change the store. */
            sl_revocation_notify(&s->base, &(sl_revocation_event){.resync = 1});
        } else {
            s->sub.probe_out = 0;
        }
        return;
    }
    if (kind != SL__REDIS_SUB_MESSAGE || s->sub.state != R_CONNECTED)
        return;
    sl_revocation_event ev;
    char buf[MSG_MAX + 1];
    if (m->type != REDIS_REPLY_STRING || !sl__redis_parse_message(m->str, m->len, &ev, buf)) {
        note_ignored(s);
        return;
    }
    sl_revocation_notify(&s->base, &ev);
}

/* ---- operations ----------------------------------------------------------------------------- */

static void noop_cb(void *ud, int status, const char *reason) {}

/* A rop for cb, or NULL after answering cb (store not connected, out of memory). */
static rop *op_new(redis_store *s, int kind, sl_revocation_cb cb, void *ud)
{
    if (s->cmd.state != R_CONNECTED || s->cmd.ac == NULL) {
        if (cb)
            cb(ud, SL_EUNAVAIL, "revocation store unavailable");
        return NULL;
    }
    rop *op = calloc(1, sizeof *op);
    if (op == NULL) {
        if (cb)
            cb(ud, SL_ENOMEM, NULL);
        return NULL;
    }
    op->s = s;
    op->kind = kind;
    op->cb = cb ? cb : noop_cb;
    op->ud = ud;
    op->deadline = uv_now(s->loop) + SL_REVOCATION_REDIS_COMMAND_TIMEOUT_MS;
    return op;
}

/* Queues one command for op. argv strings are binary-safe: no formatting of ids. */
static int op_send(rop *op, int argc, const char **argv)
{
    size_t len[5];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(op->s->cmd.ac, on_reply, op, argc, argv, len) != REDIS_OK)
        return 0;
    op->waiting++;
    return 1;
}

/* After queueing: answer now if nothing was queued, else wait for the replies. */
static void op_start(rop *op, int queued_all)
{
    if (op->waiting == 0) {
        op->cb(op->ud, SL_EUNAVAIL, "revocation store unavailable");
        free(op);
        return;
    }
    if (!queued_all)
        op_worse(op, SL_EUNAVAIL, NULL);
    op_link(op->s, op);
}

/* dst = a b c, cut to cap - 1 bytes like snprintf (the keys fit: their parts are bounded); a
 * check's keys are built for every request, so without printf. */
static void join3(char *dst, size_t cap, const char *a, const char *b, const char *c)
{
    size_t n = 0;
    const char *parts[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(parts[i]);
        if (len > cap - 1 - n)
            len = cap - 1 - n;
        memcpy(dst + n, parts[i], len);
        n += len;
    }
    dst[n] = '\0';
}

/* Sends a leading check's GETs (both leave in one write: one round trip). 0 when they cannot be
 * queued. */
static int check_send(rop *op)
{
    redis_store *s = op->s;
    if (s->cmd.state != R_CONNECTED || s->cmd.ac == NULL)
        return 0;
    int ok = !op->has_token || op_send(op, 2, (const char *[]){"GET", op->tkey});
    return ok && op_send(op, 2, (const char *[]){"GET", op->ukey});
}

/* A leading check whose GETs could not all be queued: unavailable, for its followers too; answered
 * now when nothing was queued, else with the replies that were. */
static void check_failed(rop *op)
{
    for (rop *c = op; c; c = c == op ? op->followers : c->fnext)
        op_worse(c, SL_EUNAVAIL, NULL);
    if (op->waiting == 0)
        op_finish(op);
}

/* Just before the loop waits: the checks of this turn go out, one pair of GETs per pair of keys.
 * Every check that joined a pair arrived before it is sent, so its answer is as fresh as that of a
 * lookup of its own. */
static void on_prep(uv_prepare_t *h)
{
    redis_store *s = h->data;
    uv_prepare_stop(h);
    rop *list = s->pending;
    s->pending = s->pending_tail = NULL;
    sl__map *m;
    if (sl__map_size(s->joinable) > 0 && sl__map_new(&m) == SL_OK) {
        sl__map_free(s->joinable, NULL);
        s->joinable = m;
    }
    while (list) {
        rop *op = list;
        list = op->pnext;
        op->pnext = NULL;
        if (!check_send(op))
            check_failed(op);
    }
}

static void redis_check(sl_revocation_store *base, const char *token_id, const char *user,
                        double issued_at, sl_revocation_cb cb, void *ud)
{
    redis_store *s = (redis_store *)base;
    rop *op = op_new(s, OP_CHECK, cb, ud);
    if (op == NULL)
        return;
    op->issued_at = issued_at;
    op->has_token = token_id != NULL;
    if (token_id != NULL)
        join3(op->tkey, sizeof op->tkey, s->prefix, ":tb:revoked:", token_id);
    join3(op->ukey, sizeof op->ukey, s->prefix, ":tb:user_revoked_at:", user);
    op_link(s, op);
    /* Token ids and users hold no newline (the validators): one map key for the pair. */
    char pair[2 * KEY_MAX + 2];
    join3(pair, sizeof pair, op->tkey, "\n", op->ukey);
    rop *lead = s->joinable ? sl__map_get(s->joinable, pair) : NULL;
    if (lead != NULL) {
        if (lead->ftail)
            lead->ftail->fnext = op;
        else
            lead->followers = op;
        lead->ftail = op;
        return;
    }
    if (s->joinable == NULL || sl__map_put(s->joinable, pair, op, NULL) != SL_OK) {
        if (!check_send(op)) /* no index: a lookup of its own, now */
            check_failed(op);
        return;
    }
    if (s->pending_tail)
        s->pending_tail->pnext = op;
    else
        s->pending = op;
    s->pending_tail = op;
    uv_prepare_start(&s->prep, on_prep);
}

/* SET key value EX ttl, then (from the reply) PUBLISH msg on the watch channel. */
static void redis_set(redis_store *s, const char *key, const char *value, double ttl,
                      const char *msg, sl_revocation_cb cb, void *ud)
{
    rop *op = op_new(s, OP_WRITE, cb, ud);
    if (op == NULL)
        return;
    snprintf(op->msg, sizeof op->msg, "%s", msg);
    char ex[32];
    long long secs = (long long)ttl;
    if ((double)secs < ttl)
        secs++; /* EX is whole seconds: round up, never below 1 */
    if (secs < 1)
        secs = 1;
    snprintf(ex, sizeof ex, "%lld", secs);
    op_start(op, op_send(op, 5, (const char *[]){"SET", key, value, "EX", ex}));
}

static void redis_revoke(sl_revocation_store *base, const char *token_id, const char *reason,
                         double token_expires_at, sl_revocation_cb cb, void *ud)
{
    redis_store *s = (redis_store *)base;
    char key[KEY_MAX], msg[MSG_MAX + 1];
    snprintf(key, sizeof key, "%s:tb:revoked:%s", s->prefix, token_id);
    snprintf(msg, sizeof msg, "t %s", token_id);
    double now = sl_revocation_now(base);
    redis_set(s, key, reason, sl_revocation_token_ttl(base, token_expires_at, now), msg, cb, ud);
}

static void redis_revoke_user(sl_revocation_store *base, const char *user, sl_revocation_cb cb,
                              void *ud)
{
    redis_store *s = (redis_store *)base;
    char key[KEY_MAX], value[48], msg[MSG_MAX + 1];
    snprintf(key, sizeof key, "%s:tb:user_revoked_at:%s", s->prefix, user);
    snprintf(value, sizeof value, "%.3f", sl_revocation_now(base));
    /* The cut-off travels as written, so every watcher compares against the stored value. */
    snprintf(msg, sizeof msg, "u %s %s", value, user);
    redis_set(s, key, value, base->max_ttl, msg, cb, ud);
}

static int redis_ready(const sl_revocation_store *base)
{
    const redis_store *s = (const redis_store *)base;
    return s->cmd.state == R_CONNECTED && s->cmd.ac != NULL;
}

/* The subscription exists exactly while someone watches. A watcher set while the link waits to
 * retry keeps that backoff; replacing one watcher by another keeps the subscription as it is. */
static void redis_watch(sl_revocation_store *base)
{
    redis_store *s = (redis_store *)base;
    if (base->watch == NULL)
        link_stop(&s->sub);
    else if (s->sub.state == R_IDLE && !uv_is_active((uv_handle_t *)&s->sub.timer))
        link_start(&s->sub);
}

/* The store outlives every hiredis callback: it goes with the last of its timers. */
static void store_handle_closed(redis_store *s)
{
    if (--s->handles_open > 0)
        return;
    free(s->host);
    free(s);
}

static void watchdog_closed(uv_handle_t *h)
{
    store_handle_closed(h->data);
}

static void prep_closed(uv_handle_t *h)
{
    store_handle_closed(h->data);
}

static void link_timer_closed(uv_handle_t *h)
{
    store_handle_closed(((rlink *)h->data)->s);
}

static void redis_free(sl_revocation_store *base)
{
    redis_store *s = (redis_store *)base;
    /* Answer every pending call now, so that none is answered after we return; their rops stay
     * with hiredis, which frees them through the NULL replies of redisAsyncFree below. */
    while (s->head != NULL) {
        rop *op = s->head;
        op_unlink(op);
        if (!op->done) {
            op->done = 1;
            op->cb(op->ud, SL_EUNAVAIL, "revocation store closed");
        }
    }
    /* Checks never sent are with nobody else: they go now. */
    while (s->pending != NULL) {
        rop *op = s->pending;
        s->pending = op->pnext;
        op_finish(op); /* all answered above: this only frees */
    }
    s->pending_tail = NULL;
    sl__map_free(s->joinable, NULL);
    s->joinable = NULL;
    uv_close((uv_handle_t *)&s->prep, prep_closed);
    link_free_context(&s->cmd);
    link_free_context(&s->sub);
    uv_close((uv_handle_t *)&s->cmd.timer, link_timer_closed);
    uv_close((uv_handle_t *)&s->sub.timer, link_timer_closed);
    uv_close((uv_handle_t *)&s->watchdog, watchdog_closed);
}

static const sl_revocation_ops redis_ops = {
    .name = "redis",
    .check = redis_check,
    .revoke = redis_revoke,
    .revoke_user = redis_revoke_user,
    .ready = redis_ready,
    .prune = NULL,
    .free = redis_free,
    .watch = redis_watch,
};

static int prefix_valid(const char *p)
{
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++, n++)
        if (n >= SL_REVOCATION_PREFIX_MAX || *c <= 0x20 || *c >= 0x7f)
            return 0;
    return n > 0;
}

int sl_revocation_redis_new(sl_revocation_store **out, uv_loop_t *loop, const char *host, int port,
                            const char *prefix, double max_ttl, sl_clock_fn clock, void *clock_ud)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (prefix == NULL || *prefix == '\0')
        prefix = "sluice";
    if (loop == NULL || host == NULL || *host == '\0' || strlen(host) > 255 || port < 1 ||
        port > 65535 || !prefix_valid(prefix))
        return SL_EINVAL;
    redis_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    int rc = sl_revocation_store_init(&s->base, &redis_ops, max_ttl, clock, clock_ud);
    if (rc == SL_OK && (s->host = strdup(host)) == NULL)
        rc = SL_ENOMEM;
    if (rc != SL_OK) {
        free(s);
        return rc;
    }
    s->loop = loop;
    s->port = port;
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    snprintf(s->channel, sizeof s->channel, "%s:tb:revocations", prefix);
    link_init(s, &s->cmd, 0);
    link_init(s, &s->sub, 1);
    uv_timer_init(loop, &s->watchdog);
    s->watchdog.data = s;
    uv_unref((uv_handle_t *)&s->watchdog);
    uv_prepare_init(loop, &s->prep);
    s->prep.data = s;
    if (sl__map_new(&s->joinable) != SL_OK)
        s->joinable = NULL; /* every check then looks its keys up alone */
    s->handles_open = 4;
    /* hiredis writes with write(2): a Redis that goes away mid-write must not kill the process. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    link_start(&s->cmd);
    *out = &s->base;
    return SL_OK;
}
