/* The Redis revocation store, on the shared Redis connections of redis_conn.h. Records are
 * `<prefix>:tb:revoked:<token id>` (the reason) and `<prefix>:tb:user_revoked_at:<user>` (the
 * cut-off, decimal seconds), both written with SET ... EX so Redis expires them. A check pipelines
 * two GETs (one round trip); anything but a nil or a well-formed value counts as revoked. The store
 * fails closed: until its command connection has answered PING, and from the moment it is lost or
 * Redis has answered nothing for SL_REVOCATION_REDIS_COMMAND_TIMEOUT_MS while calls wait, every
 * call answers SL_EUNAVAIL at once (never queued) while the connection reconnects by itself with
 * its backoff. The Redis is one URL's (redis://[user:password@]host[:port][/db]): each connection
 * the store makes sends AUTH and SELECT first (redis_link.c), so the store keeps the address,
 * password included, for the watch subscription it opens later, and wipes it when freed.
 *
 * Watching: a successful SET is followed by a PUBLISH of "t <id>" or "u <cut-off> <user>" on
 * `<scope>:tb:revocations` (sl__redis_channel: the prefix on db 0, "<prefix>@<db>" on another db,
 * because Redis hands a PUBLISH to the subscribers of every db), and the write is answered only
 * then. While a watcher is set, a
 * subscription connection (sl__rsub, probed every second since it has no replies to time out)
 * carries that channel; each confirmed subscription, the first and every one made again after a
 * reconnect, tells the watcher to resync, and each message, this server's own included, becomes
 * one event. That is the only path events take, so a local revocation is reported once, never
 * also from the revoking call.
 *
 * Lifetime: a pending call (rop) waits for the completions of its commands, which the connection
 * delivers exactly once each (SL_EUNAVAIL when the connection goes, also from sl__rconn_free), so
 * freeing the connection answers every call that was sent; checks not sent yet are the store's.
 * The store's memory goes with its prepare handle's close callback, after every connection
 * callback it could receive. */
#include <sluice/revocation.h>

#include "core/map.h"
#include "store/redis_conn.h"
#include "store/redis_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX (SL_REVOCATION_PREFIX_MAX + 32 + SL_PRINCIPAL_MAX)
#define MSG_MAX SL__REDIS_MSG_MAX

_Static_assert(SL__RSUB_PROBE_MS == SL_REVOCATION_REDIS_WATCH_PROBE_MS,
               "the watch subscription is probed as documented");
_Static_assert(SL_REVOCATION_PREFIX_MAX + 3 <= SL__REDIS_SCOPE_MAX,
               "every prefix has a watch channel (sl__redis_scope takes up to 64 bytes)");

typedef struct rop rop;

/* The watch channel on the subscription connection. */
enum { W_OFF, W_ADDING, W_ON };

typedef struct redis_store {
    sl_revocation_store base;
    uv_loop_t *loop;
    sl__redis_addr addr;
    char name[SL__REDIS_HOST_MAX + 32]; /* host:port/db, for log lines */
    char prefix[SL_REVOCATION_PREFIX_MAX + 1];
    char channel[SL__REDIS_SCOPE_MAX + 32]; /* <scope>:tb:revocations */
    sl__rconn *conn;
    sl__rsub *sub; /* exactly while a watcher is set */
    int watch_state;
    /* The connections' lines go to the store's log. Each link logs its outages and the recovery
     * after one; the store adds the first "connected" of each, unless its link spoke first. */
    sl__logsink conn_sink, sub_sink;
    int conn_said, sub_said;
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
} redis_store;

enum { OP_CHECK, OP_WRITE };

struct rop {
    redis_store *s;
    int kind;
    int waiting;   /* completions still to come */
    int has_token; /* checks: the first reply is the token's */
    int seen;      /* completions seen */
    int status;    /* worst answer so far: SL_ETOKEN > SL_EUNAVAIL > SL_OK */
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
static const char UNAVAILABLE[] = "revocation store unavailable";

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

static void on_reply(void *ud, int rc, const redisReply *reply);

/* Sends one command for op, which then waits for one more completion. argv strings are
 * binary-safe: no formatting of ids. */
static void op_send(rop *op, int argc, const char *const *argv)
{
    op->waiting++;
    sl__rconn_cmd(op->s->conn, argc, argv, NULL, on_reply, op);
}

/* A write's completion: the SET, then (sent from here) the PUBLISH that announces it, so the
 * write is answered SL_OK only once Redis has taken both. */
static void eval_write(rop *op, int is_set, const redisReply *reply)
{
    redis_store *s = op->s;
    int ok = reply != NULL &&
             (is_set ? reply->type == REDIS_REPLY_STATUS : reply->type == REDIS_REPLY_INTEGER);
    if (!ok) {
        if (reply && reply->type == REDIS_REPLY_ERROR && !s->base.closing)
            sl_revocation_logf(&s->base, "revocation store: redis %s %s failed: %.120s", s->name,
                               is_set ? "write" : "publish", reply->str);
        op_worse(op, SL_EUNAVAIL, NULL);
        return;
    }
    if (!is_set)
        return;
    /* Never once closing (freeing the connection fails what it has pending), and a PUBLISH
     * then would have no connection to go to. */
    if (s->base.closing) {
        op_worse(op, SL_EUNAVAIL, NULL);
        return;
    }
    /* Written: other servers (and this one's watcher) learn of it only through the channel. */
    op_send(op, 3, (const char *[]){"PUBLISH", s->channel, op->msg});
}

static const char *status_reason(const rop *op)
{
    if (op->status == SL_ETOKEN)
        return op->reason;
    if (op->status == SL_EUNAVAIL)
        return op->s->base.closing ? "revocation store closed" : UNAVAILABLE;
    return NULL;
}

/* Answers op and the checks that follow it, then frees them all. Nothing touches the store after
 * the first callback, which may free it (its memory stays until the loop closes its handle). */
static void op_finish(rop *op)
{
    rop *f = op->followers;
    op->cb(op->ud, op->status, status_reason(op));
    free(op);
    while (f) {
        rop *next = f->fnext;
        f->cb(f->ud, f->status, status_reason(f));
        free(f);
        f = next;
    }
}

/* One completion of op's commands: rc SL_EUNAVAIL (reply NULL) when the connection could not
 * answer. Completions come in the order the commands were sent. */
static void on_reply(void *ud, int rc, const redisReply *reply)
{
    rop *op = ud;
    int idx = op->seen++;
    if (rc != SL_OK)
        reply = NULL;
    if (op->kind == OP_CHECK) {
        /* Each check weighs the same replies with its own issued_at (the user's cut-off). */
        int is_token = op->has_token && idx == 0;
        for (rop *c = op; c; c = c == op ? op->followers : c->fnext) {
            const char *reason;
            int status = sl__redis_check_reply(reply, is_token, c->issued_at, &reason);
            if (status != SL_OK)
                op_worse(c, status, reason);
        }
    } else {
        eval_write(op, idx == 0, reply);
    }
    if (--op->waiting == 0)
        op_finish(op);
}

/* ---- the connections' log lines ------------------------------------------------------------- */

static void conn_line(void *ud, int level, const char *msg)
{
    (void)level;
    redis_store *s = ud;
    s->conn_said = 1;
    sl_revocation_logf(&s->base, "%s", msg);
}

static void sub_line(void *ud, int level, const char *msg)
{
    (void)level;
    redis_store *s = ud;
    s->sub_said = 1;
    sl_revocation_logf(&s->base, "%s", msg);
}

static void on_conn_state(void *ud, int up)
{
    redis_store *s = ud;
    if (up && !s->conn_said)
        sl_revocation_logf(&s->base, "revocation store: redis %s connected", s->name);
    s->conn_said = 1;
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

/* What a reply on a subscribed connection is. The subscription connection (redis_sub.c) sorts
 * its own replies; this reading of them stays for the fuzz target and the unit tests, which hold
 * every reply shape to it. */
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

/* A flood of garbage must not become a flood of log lines: one a second at most, with a count.
 * The payload is never logged (it may hold a token id). */
static void note_ignored(redis_store *s)
{
    s->ignored++;
    uint64_t now = uv_now(s->loop);
    if (s->ignored_logged && now - s->ignored_logged_at < 1000)
        return;
    sl_revocation_logf(&s->base,
                       "revocation store: redis %s ignored %u malformed message(s) on the watch "
                       "channel",
                       s->name, s->ignored);
    s->ignored = 0;
    s->ignored_logged = 1;
    s->ignored_logged_at = now;
}

static void on_watch_msg(void *ud, const char *channel, size_t clen, const char *msg, size_t mlen)
{
    (void)channel;
    (void)clen; /* the only channel subscribed */
    redis_store *s = ud;
    sl_revocation_event ev;
    char buf[MSG_MAX + 1];
    if (!sl__redis_parse_message(msg, mlen, &ev, buf)) {
        note_ignored(s);
        return;
    }
    sl_revocation_notify(&s->base, &ev);
}

/* Whatever was published before a confirmed subscription never reached us. Last: the watcher may
 * change the store. */
static void resync(redis_store *s)
{
    sl_revocation_notify(&s->base, &(sl_revocation_event){.resync = 1});
}

static void on_watch_ready(void *ud, int rc);

static void watch_add(redis_store *s)
{
    s->watch_state = W_ADDING;
    sl__rsub_add(s->sub, s->channel, on_watch_ready, s);
}

/* The channel's first subscription on this connection. Taken back when the connection went down
 * first: made again once it is up (now, or at its next "up"). */
static void on_watch_ready(void *ud, int rc)
{
    redis_store *s = ud;
    if (s->sub == NULL || s->base.closing)
        return; /* answered by sl__rsub_free */
    if (rc != SL_OK) {
        s->watch_state = W_OFF;
        if (sl__rsub_up(s->sub))
            watch_add(s);
        return;
    }
    s->watch_state = W_ON;
    if (!s->sub_said)
        sl_revocation_logf(&s->base, "revocation store: redis %s watch subscription connected",
                           s->name);
    s->sub_said = 1;
    resync(s);
}

/* The subscription is up: the first time, the channel is to be added; after a reconnect it has
 * been subscribed again (with every channel) before this is called. */
static void on_watch_state(void *ud, int up)
{
    redis_store *s = ud;
    if (!up || s->sub == NULL || s->base.closing)
        return;
    if (s->watch_state == W_OFF)
        watch_add(s);
    else if (s->watch_state == W_ON)
        resync(s);
}

static void watch_stop(redis_store *s)
{
    sl__rsub *sub = s->sub;
    s->sub = NULL; /* what sl__rsub_free answers finds no subscription */
    s->watch_state = W_OFF;
    sl__rsub_free(sub);
}

/* The subscription exists exactly while someone watches; replacing one watcher by another keeps
 * it as it is. */
static void redis_watch(sl_revocation_store *base)
{
    redis_store *s = (redis_store *)base;
    if (base->watch == NULL) {
        watch_stop(s);
        return;
    }
    if (s->sub != NULL)
        return;
    sl__rsub_opts o = {.addr = &s->addr,
                       .what = "revocation store",
                       .role = "watch subscription",
                       .log = &s->sub_sink,
                       .connect_timeout_ms = SL_REVOCATION_REDIS_CONNECT_TIMEOUT_MS,
                       .on_msg = on_watch_msg,
                       .on_state = on_watch_state,
                       .ud = s};
    s->sub_said = 0;
    if (sl__rsub_new(&s->sub, s->loop, &o) != SL_OK)
        sl_revocation_logf(&s->base,
                           "revocation store: redis %s watch subscription unavailable (out of "
                           "memory); revocation events are missed",
                           s->name);
}

/* ---- operations ----------------------------------------------------------------------------- */

static void noop_cb(void *ud, int status, const char *reason) {}

/* A rop for cb, or NULL after answering cb: a store that is not connected refuses at once. */
static rop *op_new(redis_store *s, int kind, sl_revocation_cb cb, void *ud)
{
    if (!sl__rconn_up(s->conn)) {
        if (cb)
            cb(ud, SL_EUNAVAIL, UNAVAILABLE);
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
    return op;
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

/* Sends a leading check's GETs (both leave in one write: one round trip), or answers it and its
 * followers SL_EUNAVAIL now when the store can no longer ask (disconnected, or freed by an answer
 * given earlier in the same turn). The extra count keeps the check alive until both are sent. */
static void check_send(rop *op)
{
    redis_store *s = op->s;
    if (s->base.closing || !sl__rconn_up(s->conn)) {
        for (rop *c = op; c; c = c == op ? op->followers : c->fnext)
            op_worse(c, SL_EUNAVAIL, NULL);
        op_finish(op);
        return;
    }
    op->waiting = 1;
    if (op->has_token)
        op_send(op, 2, (const char *[]){"GET", op->tkey});
    op_send(op, 2, (const char *[]){"GET", op->ukey});
    if (--op->waiting == 0)
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
        check_send(op);
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
        check_send(op); /* no index: a lookup of its own, now */
        return;
    }
    if (s->pending_tail)
        s->pending_tail->pnext = op;
    else
        s->pending = op;
    s->pending_tail = op;
    uv_prepare_start(&s->prep, on_prep);
}

/* SET key value EX ttl, then (from its reply) PUBLISH msg on the watch channel. */
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
    op_send(op, 5, (const char *[]){"SET", key, value, "EX", ex});
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
    return sl__rconn_up(((const redis_store *)base)->conn);
}

static void prep_closed(uv_handle_t *h)
{
    redis_store *s = h->data;
    sl__redis_addr_clear(&s->addr); /* the password is wiped */
    free(s);
}

static void redis_free(sl_revocation_store *base)
{
    redis_store *s = (redis_store *)base;
    /* Checks never sent are with nobody else: answered here. */
    while (s->pending != NULL) {
        rop *op = s->pending;
        s->pending = op->pnext;
        for (rop *c = op; c; c = c == op ? op->followers : c->fnext)
            op_worse(c, SL_EUNAVAIL, NULL);
        op_finish(op);
    }
    s->pending_tail = NULL;
    sl__map_free(s->joinable, NULL);
    s->joinable = NULL;
    if (s->sub != NULL)
        watch_stop(s);
    /* Answers every call that was sent, SL_EUNAVAIL, before it returns. */
    sl__rconn *conn = s->conn;
    s->conn = NULL;
    sl__rconn_free(conn);
    uv_close((uv_handle_t *)&s->prep, prep_closed);
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

/* No '@': it separates the prefix from the db in the watch channel's name (sl__redis_scope). */
static int prefix_valid(const char *p)
{
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++, n++)
        if (n >= SL_REVOCATION_PREFIX_MAX || *c <= 0x20 || *c >= 0x7f || *c == '@')
            return 0;
    return n > 0;
}

/* The store on *addr, whose user and password it takes over (cleared when it fails). prefix and
 * loop were checked. */
static int redis_open(sl_revocation_store **out, uv_loop_t *loop, sl__redis_addr *addr,
                      const char *prefix, double max_ttl, sl_clock_fn clock, void *clock_ud)
{
    redis_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        sl__redis_addr_clear(addr);
        return SL_ENOMEM;
    }
    int rc = sl_revocation_store_init(&s->base, &redis_ops, max_ttl, clock, clock_ud);
    if (rc != SL_OK) {
        sl__redis_addr_clear(addr);
        free(s);
        return rc;
    }
    s->loop = loop;
    s->addr = *addr; /* the watch subscription, made later, authenticates with it too */
    addr->user = addr->password = NULL;
    sl__redis_addr_name(&s->addr, s->name, sizeof s->name);
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    /* The prefix was checked (no '@', at most 64 bytes) and the db is 0..15: it fits. */
    sl__redis_channel(s->channel, sizeof s->channel, prefix, s->addr.db, "tb:revocations", NULL);
    s->conn_sink = (sl__logsink){conn_line, s};
    s->sub_sink = (sl__logsink){sub_line, s};
    sl__rconn_opts o = {.addr = &s->addr,
                        .what = "revocation store",
                        .log = &s->conn_sink,
                        .timeout_ms = SL_REVOCATION_REDIS_COMMAND_TIMEOUT_MS,
                        .connect_timeout_ms = SL_REVOCATION_REDIS_CONNECT_TIMEOUT_MS,
                        .on_state = on_conn_state,
                        .state_ud = s};
    if ((rc = sl__rconn_new(&s->conn, loop, &o)) != SL_OK) {
        sl__redis_addr_clear(&s->addr);
        free(s);
        return rc;
    }
    uv_prepare_init(loop, &s->prep);
    s->prep.data = s;
    if (sl__map_new(&s->joinable) != SL_OK)
        s->joinable = NULL; /* every check then looks its keys up alone */
    *out = &s->base;
    return SL_OK;
}

/* out, loop and prefix as every constructor checks them; the prefix defaulted. */
static int args_ok(sl_revocation_store **out, uv_loop_t *loop, const char **prefix)
{
    if (out == NULL)
        return 0;
    *out = NULL;
    if (*prefix == NULL || **prefix == '\0')
        *prefix = "sluice";
    return loop != NULL && prefix_valid(*prefix);
}

int sl_revocation_redis_new(sl_revocation_store **out, uv_loop_t *loop, const char *host, int port,
                            const char *prefix, double max_ttl, sl_clock_fn clock, void *clock_ud)
{
    if (!args_ok(out, loop, &prefix) || host == NULL || *host == '\0' ||
        strlen(host) > SL__REDIS_HOST_MAX || port < 1 || port > 65535)
        return SL_EINVAL;
    sl__redis_addr a = {.port = port};
    snprintf(a.host, sizeof a.host, "%s", host);
    return redis_open(out, loop, &a, prefix, max_ttl, clock, clock_ud);
}

int sl_revocation_redis_new_url(sl_revocation_store **out, uv_loop_t *loop, const char *url,
                                const char *prefix, double max_ttl, sl_clock_fn clock,
                                void *clock_ud, sl_status *st)
{
    if (!args_ok(out, loop, &prefix))
        return sl_status_set(st, SL_EINVAL,
                             "revocation store: a loop and a prefix of 1..%d bytes of printable "
                             "ASCII without space or '@'",
                             SL_REVOCATION_PREFIX_MAX);
    sl__redis_addr a;
    int rc = sl__redis_addr_parse(url, "revocation URL", &a, st);
    if (rc != SL_OK)
        return rc;
    rc = redis_open(out, loop, &a, prefix, max_ttl, clock, clock_ud);
    return rc == SL_OK ? SL_OK : sl_status_set(st, rc, "revocation store: %s", sl_strerror(rc));
}

int sl__revocation_redis_new_addr(sl_revocation_store **out, uv_loop_t *loop,
                                  const sl__redis_addr *addr, const char *prefix, double max_ttl,
                                  sl_clock_fn clock, void *clock_ud)
{
    if (!args_ok(out, loop, &prefix) || addr == NULL)
        return SL_EINVAL;
    sl__redis_addr a;
    if (sl__redis_addr_copy(&a, addr) != SL_OK)
        return SL_ENOMEM;
    return redis_open(out, loop, &a, prefix, max_ttl, clock, clock_ud);
}
