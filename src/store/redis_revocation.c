/* The Redis revocation store: hiredis's asynchronous client on the libuv loop. Records are
 * `<prefix>:tb:revoked:<token id>` (the reason) and `<prefix>:tb:user_revoked_at:<user>` (the
 * cut-off, decimal seconds), both written with SET ... EX so Redis expires them. A check pipelines
 * two GETs (one round trip); anything but a nil or a well-formed value counts as revoked. The store
 * fails closed: until a connection has answered PING, and from the moment it is lost or a reply is
 * overdue, every call answers SL_EUNAVAIL at once while a backoff timer reconnects by itself.
 *
 * Lifetime: a pending operation (rop) is owned by hiredis's reply callbacks, which hiredis calls
 * exactly once each, with a NULL reply when the context is freed; the store also keeps its rops in
 * a FIFO (send order = reply order) for the overdue check and for failing them early on free. The
 * store itself is released only by its timers' close callbacks, so hiredis callbacks that run
 * while a context is being freed always find it. */
#include <sluice/revocation.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX (SL_REVOCATION_PREFIX_MAX + 32 + SL_PRINCIPAL_MAX)

typedef enum {
    R_IDLE,       /* no context; the retry timer runs */
    R_CONNECTING, /* TCP connect and PING in flight; the connect timer runs */
    R_CONNECTED,  /* answering */
} rstate;

typedef struct rop rop;

typedef struct redis_store {
    sl_revocation_store base;
    uv_loop_t *loop;
    char *host;
    int port;
    char prefix[SL_REVOCATION_PREFIX_MAX + 1];
    redisAsyncContext *ac;
    rstate state;
    uv_timer_t conn_timer; /* retry (R_IDLE) or connect timeout (R_CONNECTING) */
    uv_timer_t watchdog;   /* fires when the oldest pending reply is overdue */
    unsigned backoff_ms;
    int handles_open;
    int down_logged; /* "unavailable" was logged since the last "connected" */
    rop *head, *tail;
} redis_store;

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
};

static const char MALFORMED[] = "malformed revocation record";

static void schedule_retry(redis_store *s);
static void start_connect(redis_store *s);
static void on_watchdog(uv_timer_t *t);

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

/* ---- connection management ------------------------------------------------------------------ */

/* Drops the current context (if any): hiredis calls every pending reply callback with NULL, which
 * answers SL_EUNAVAIL; then retries unless the store is closing. Safe inside hiredis callbacks,
 * where hiredis defers the free until the callback returns. */
static void drop_connection(redis_store *s, const char *why)
{
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    s->state = R_IDLE;
    if (ac != NULL) {
        ac->data = NULL; /* our connect/disconnect callbacks ignore a detached context */
        redisAsyncFree(ac);
    }
    if (s->base.closing)
        return;
    if (!s->down_logged) {
        sl_revocation_logf(&s->base,
                           "revocation store: redis %s:%d unavailable (%s); checks fail "
                           "closed until it is back",
                           s->host, s->port, why);
        s->down_logged = 1;
    }
    schedule_retry(s);
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
    drop_connection(s, "reply timed out");
}

static void on_retry_or_timeout(uv_timer_t *t)
{
    redis_store *s = t->data;
    if (s->base.closing)
        return;
    if (s->state == R_IDLE)
        start_connect(s);
    else if (s->state == R_CONNECTING)
        drop_connection(s, "connect timed out");
}

static void schedule_retry(redis_store *s)
{
    if (s->base.closing)
        return;
    uv_timer_start(&s->conn_timer, on_retry_or_timeout, s->backoff_ms, 0);
    s->backoff_ms *= 2;
    if (s->backoff_ms > SL_REVOCATION_REDIS_BACKOFF_MAX_MS)
        s->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MAX_MS;
}

/* The connection counts only once Redis has answered: a stopped (SIGSTOP) server still completes
 * TCP handshakes from its listen backlog. */
static void on_pong(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_store *s = privdata;
    redisReply *reply = r;
    if (reply == NULL || s->base.closing || s->ac != ac)
        return; /* being freed: handled there */
    if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
        uv_timer_stop(&s->conn_timer);
        s->state = R_CONNECTED;
        s->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MIN_MS;
        s->down_logged = 0;
        sl_revocation_logf(&s->base, "revocation store: redis %s:%d connected", s->host, s->port);
        return;
    }
    char why[160];
    snprintf(why, sizeof why, "PING answered %.100s",
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpectedly");
    drop_connection(s, why);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redis_store *s = cac->data;
    if (s == NULL || s->base.closing)
        return;
    redisAsyncContext *ac = s->ac; /* == cac; the non-const one */
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns. */
        char why[160];
        snprintf(why, sizeof why, "connect: %.120s", cac->c.errstr);
        s->ac = NULL;
        uv_timer_stop(&s->conn_timer);
        drop_connection(s, why);
        return;
    }
    redisEnableKeepAlive(&ac->c);
    /* Not dropped here when PING cannot be queued: hiredis still uses the context after this
     * callback, so the connect timer cleans up instead. */
    redisAsyncCommand(ac, on_pong, s, "PING");
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redis_store *s = cac->data;
    if (s == NULL)
        return; /* detached by drop_connection: already handled */
    /* hiredis frees the context when this returns; pending replies were failed before. */
    char why[160];
    snprintf(why, sizeof why, "connection lost: %.120s",
             cac->c.errstr[0] ? cac->c.errstr : "closed");
    s->ac = NULL;
    /* A lost connection retries quickly; one that never got to answer PING keeps backing off. */
    if (s->state == R_CONNECTED)
        s->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MIN_MS;
    drop_connection(s, why);
}

static void start_connect(redis_store *s)
{
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (ac == NULL) {
        drop_connection(s, "out of memory");
        return;
    }
    if (ac->err) {
        char why[160];
        snprintf(why, sizeof why, "connect: %.120s", ac->errstr ? ac->errstr : "error");
        redisAsyncFree(ac);
        drop_connection(s, why);
        return;
    }
    if (redisLibuvAttach(ac, s->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        drop_connection(s, "cannot attach to the loop");
        return;
    }
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    s->state = R_CONNECTING;
    uv_timer_start(&s->conn_timer, on_retry_or_timeout, SL_REVOCATION_REDIS_CONNECT_TIMEOUT_MS, 0);
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

/* One GET reply of a check, into op->status. */
static void eval_get(rop *op, const redisReply *reply, int is_token)
{
    if (reply == NULL) {
        op_worse(op, SL_EUNAVAIL, NULL);
    } else if (reply->type == REDIS_REPLY_NIL) {
        /* no record */
    } else if (reply->type == REDIS_REPLY_STRING) {
        if (is_token) {
            op_worse(op, SL_ETOKEN,
                     reply->len == 0                     ? "revoked"
                     : reason_ok(reply->str, reply->len) ? reply->str
                                                         : MALFORMED);
        } else {
            double cutoff;
            if (!parse_cutoff(reply->str, reply->len, &cutoff))
                op_worse(op, SL_ETOKEN, MALFORMED);
            else if (op->issued_at <= cutoff)
                op_worse(op, SL_ETOKEN, "all tokens of the user revoked");
        }
    } else if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "WRONGTYPE", 9) != 0) {
        op_worse(op, SL_EUNAVAIL, NULL); /* LOADING, MISCONF, ...: Redis cannot answer */
    } else {
        op_worse(op, SL_ETOKEN, MALFORMED); /* a key of another type, or a reply of one */
    }
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rop *op = privdata;
    redisReply *reply = r;
    if (!op->done) {
        if (op->kind == OP_CHECK) {
            eval_get(op, reply, op->has_token && op->seen == 0);
        } else if (reply == NULL || reply->type != REDIS_REPLY_STATUS) {
            if (reply && reply->type == REDIS_REPLY_ERROR && !op->s->base.closing)
                sl_revocation_logf(&op->s->base, "revocation store: redis write failed: %.120s",
                                   reply->str);
            op_worse(op, SL_EUNAVAIL, NULL);
        }
    }
    op->seen++;
    if (--op->waiting > 0)
        return;
    /* Everything touching the store happens before the callback, which may free the store. */
    op_unlink(op);
    if (!op->done) {
        op->done = 1;
        op->cb(op->ud, op->status, status_reason(op));
    }
    free(op);
}

/* ---- operations ----------------------------------------------------------------------------- */

static void noop_cb(void *ud, int status, const char *reason) {}

/* A rop for cb, or NULL after answering cb (store not connected, out of memory). */
static rop *op_new(redis_store *s, int kind, sl_revocation_cb cb, void *ud)
{
    if (s->state != R_CONNECTED || s->ac == NULL) {
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
    if (redisAsyncCommandArgv(op->s->ac, on_reply, op, argc, argv, len) != REDIS_OK)
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

static void redis_check(sl_revocation_store *base, const char *token_id, const char *user,
                        double issued_at, sl_revocation_cb cb, void *ud)
{
    redis_store *s = (redis_store *)base;
    rop *op = op_new(s, OP_CHECK, cb, ud);
    if (op == NULL)
        return;
    op->issued_at = issued_at;
    char tkey[KEY_MAX], ukey[KEY_MAX];
    int ok = 1;
    if (token_id != NULL) {
        snprintf(tkey, sizeof tkey, "%s:tb:revoked:%s", s->prefix, token_id);
        op->has_token = 1;
        ok = op_send(op, 2, (const char *[]){"GET", tkey});
    }
    snprintf(ukey, sizeof ukey, "%s:tb:user_revoked_at:%s", s->prefix, user);
    /* Both GETs leave in one write, so the check costs one round trip. */
    ok = ok && op_send(op, 2, (const char *[]){"GET", ukey});
    op_start(op, ok);
}

static void redis_set(redis_store *s, const char *key, const char *value, double ttl,
                      sl_revocation_cb cb, void *ud)
{
    rop *op = op_new(s, OP_WRITE, cb, ud);
    if (op == NULL)
        return;
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
    char key[KEY_MAX];
    snprintf(key, sizeof key, "%s:tb:revoked:%s", s->prefix, token_id);
    double now = sl_revocation_now(base);
    redis_set(s, key, reason, sl_revocation_token_ttl(base, token_expires_at, now), cb, ud);
}

static void redis_revoke_user(sl_revocation_store *base, const char *user, sl_revocation_cb cb,
                              void *ud)
{
    redis_store *s = (redis_store *)base;
    char key[KEY_MAX], value[48];
    snprintf(key, sizeof key, "%s:tb:user_revoked_at:%s", s->prefix, user);
    snprintf(value, sizeof value, "%.3f", sl_revocation_now(base));
    redis_set(s, key, value, base->max_ttl, cb, ud);
}

static int redis_ready(const sl_revocation_store *base)
{
    const redis_store *s = (const redis_store *)base;
    return s->state == R_CONNECTED && s->ac != NULL;
}

static void redis_handle_closed(uv_handle_t *h)
{
    redis_store *s = h->data;
    if (--s->handles_open > 0)
        return;
    free(s->host);
    free(s);
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
    if (s->ac != NULL) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    s->state = R_IDLE;
    uv_close((uv_handle_t *)&s->conn_timer, redis_handle_closed);
    uv_close((uv_handle_t *)&s->watchdog, redis_handle_closed);
}

static const sl_revocation_ops redis_ops = {
    .name = "redis",
    .check = redis_check,
    .revoke = redis_revoke,
    .revoke_user = redis_revoke_user,
    .ready = redis_ready,
    .prune = NULL,
    .free = redis_free,
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
    s->backoff_ms = SL_REVOCATION_REDIS_BACKOFF_MIN_MS;
    uv_timer_init(loop, &s->conn_timer);
    uv_timer_init(loop, &s->watchdog);
    s->conn_timer.data = s->watchdog.data = s;
    s->handles_open = 2;
    /* The timers only serve the connection, whose socket keeps the loop alive while it exists;
     * they must not keep a finished server's loop running on their own. */
    uv_unref((uv_handle_t *)&s->conn_timer);
    uv_unref((uv_handle_t *)&s->watchdog);
    /* hiredis writes with write(2): a Redis that goes away mid-write must not kill the process. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    start_connect(s);
    *out = &s->base;
    return SL_OK;
}
