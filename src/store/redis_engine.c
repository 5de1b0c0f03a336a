/* The Redis engine: every request is one EVALSHA of the engine's Lua scripts
 * (src/store/redis_scripts.lua and redis_append.lua, compiled in at build time; the layout's
 * version is checked on every shard as the last step of each (re)connect, before the connection
 * counts as up and so before any request can reach that shard) on the shard that holds the
 * channel, so each queue and topic rule is one atomic step for every node sharing those Redis
 * servers. Replies are decoded by src/store/redis_codec.c; requests complete in submission order
 * from a FIFO, even when shards answer out of order. Events (writes and deletions of watched
 * channels, creations and deletions of any channel) arrive over each shard's subscription
 * connection (redis_engine_shards.c, which also creates and frees the engine); this file runs the
 * requests.
 *
 * Keys (P is the prefix, default "sluice"; {id} is the channel id inside a hash tag, so every key
 * of a channel lives in one slot and on one shard):
 *   P:format          string: the layout's version (1); a newer one is refused at start
 *   P:channels        set: the ids of the channels on this shard
 *   P:{id}:meta       hash: the settings: name, description, dead_letter, kind (0 queue, 1 topic),
 *                     visibility, mode, claim_timeout, max_attempts, max_messages, rcount and rage
 *                     (retention by count and age), presence, join_leave, backoff (steps separated
 *                     by spaces), dedup_window, cursor_idle, epoch; and seq, the last id handed out
 *   P:{id}:s          stream: the messages, entry id `<seq>-0`; fields t (timestamp),
 *                     e (expires_at, only when set), s sender, d data, m metadata,
 *                     c correlation_id, r reply_to, p recipient_id, o origin, x dead_reason
 *                     (each only when present)
 *   P:{id}:ready      zset (queues): claimable now; member the 16-hex-digit id, score the seq
 *   P:{id}:timed      zset (queues): claimed until the lease ends (with a holder in :own) or
 *                     waiting until a nack delay or not_before passes (without); score that time
 *   P:{id}:att        hash (queues): id -> attempts so far (claims made)
 *   P:{id}:own        hash (queues): id -> the holder of its live claim
 *   P:{id}:cur        hash (topics): reader -> the seq its cursor last returned
 *   P:{id}:used       zset (topics): reader -> when its cursor was last used (idle ones dropped)
 *   P:{id}:dd         hash: idempotency key -> the seq its first write got
 *   P:{id}:ddx        zset: idempotency key -> when it is forgotten
 *   P:{id}:pres       hash: presence: client id -> its user (a socket subscribed on some node)
 *   P:{id}:presx      zset: presence: client id -> when the entry expires unless set again
 *                     (both keys expire a minute after the newest entry would)
 * Pub/sub (S is the shard's scope, sl__redis_scope: P on db 0, "P@N" on db N, since Redis hands
 * a PUBLISH to the subscribers of every db; the scripts are given it): S:ev:{id} carries the
 * messages each write stored ("w" + NUL-separated tokens, redis_codec.h), "d" when the channel is
 * dropped, and "j" / "l" + NUL + client + NUL + user when a presence entry comes or goes
 * (channels with join_leave); S:ctl carries "c <id>" and "d <id>" for every creation and
 * deletion.
 *
 * Writes: APPEND runs a script of its own (redis_append.lua), and the APPEND requests for one
 * channel submitted during one loop turn are coalesced into one run of it, sent just before the
 * loop waits for I/O (a uv_prepare handle); any other request sends the open batches first, so
 * Redis executes everything in submission order. Each request is still answered on its own.
 *
 * Dead letters: a queue and its dead-letter queue hash to shards independently. When both are on
 * the same shard the claim's (or terminate's) script moves the dead messages in the same atomic
 * step. Otherwise the script removes them and returns them, and the engine appends them to the
 * dead-letter queue with a second script on its shard before the request completes (a crash of
 * this node or of that shard between the two loses them: dead_rc says SL_EUNAVAIL). */
#include "store/redis_engine_internal.h"

#include "store/redis_codec.h"

#include "core/message.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A claim or read asks for at most this many messages in one script run. */
#define LIMIT_MAX 100000

/* ---- arguments ------------------------------------------------------------------------------- */

/* An argument vector whose strings are borrowed or owned (numbers formatted here). */
typedef struct args {
    const char **v;
    size_t *l;
    char **owned;
    int n, cap, nowned;
    int oom;
} args;

static void args_add(args *a, const char *s, size_t len)
{
    if (a->oom)
        return;
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 32;
        const char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (v)
            a->v = v;
        size_t *l = v ? realloc(a->l, (size_t)cap * sizeof *l) : NULL;
        char **o = l ? realloc(a->owned, (size_t)cap * sizeof *o) : NULL;
        if (l)
            a->l = l;
        if (o == NULL) {
            a->oom = 1;
            return;
        }
        a->owned = o;
        a->cap = cap;
    }
    a->v[a->n] = s;
    a->l[a->n] = len;
    a->n++;
}

static void args_str(args *a, const char *s)
{
    args_add(a, s ? s : "", s ? strlen(s) : 0);
}

/* A copy of text[0..n) (NUL-terminated) that a owns; prefix, when not 0, goes in front. */
static void args_own(args *a, char prefix, const char *text, size_t n)
{
    size_t off = prefix != 0;
    char *s = malloc(n + off + 1);
    if (s == NULL) {
        a->oom = 1;
        return;
    }
    s[0] = prefix;
    memcpy(s + off, text, n);
    s[n + off] = '\0';
    args_add(a, s, n + off);
    if (a->oom) {
        free(s);
        return;
    }
    a->owned[a->nowned++] = s;
}

static void args_fmt(args *a, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        a->oom = 1;
    else
        args_own(a, 0, buf, (size_t)n);
}

/* '@' then s, owned (any length). */
static void args_after(args *a, const char *s)
{
    args_own(a, '@', s, strlen(s));
}

static void args_num(args *a, double x)
{
    char buf[40];
    int n = sl__redis_fmt_num(buf, sizeof buf, x);
    if (n <= 0 || (size_t)n >= sizeof buf)
        a->oom = 1;
    else
        args_own(a, 0, buf, (size_t)n);
}

/* A count: whole numbers are exact doubles, so sl__redis_fmt_num's short path takes them. */
static void args_count(args *a, size_t n)
{
    args_num(a, (double)n);
}

static void args_free(args *a)
{
    for (int i = 0; i < a->nowned; i++)
        free(a->owned[i]);
    free(a->v);
    free(a->l);
    free(a->owned);
    memset(a, 0, sizeof *a);
}

/* ---- the FIFO -------------------------------------------------------------------------------- */

void sl__reng_drain(rengine *e)
{
    if (e->draining)
        return; /* a done callback submitted: the outer loop goes on */
    e->draining = 1;
    while (e->head && e->head->answered) {
        pend *p = e->head;
        e->head = p->next;
        if (e->head == NULL)
            e->tail = NULL;
        sl__eop *op = p->op;
        free(p);
        op->done(op);
    }
    e->draining = 0;
}

static pend *enqueue(rengine *e, sl__eop *op)
{
    pend *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->e = e;
    p->op = op;
    if (e->tail)
        e->tail->next = p;
    else
        e->head = p;
    e->tail = p;
    return p;
}

/* Final without completing: the caller drains once it no longer walks pends (sl__reng_drain frees
 * them). */
static void settle(pend *p, int rc)
{
    if (p->op->rc == SL_OK)
        p->op->rc = rc;
    p->answered = 1;
}

static void answer(pend *p, int rc)
{
    settle(p, rc);
    sl__reng_drain(p->e);
}

/* ---- keys and shards ------------------------------------------------------------------------- */

size_t sl__reng_shard_of(const rengine *e, const char *id)
{
    return e->nshards == 1 ? 0 : sl__redis_ring_shard(e->ring, id);
}

/* "P:{id}" into buf (SL__REDIS_PREFIX_MAX + SL_CHANNEL_ID_MAX + 8). */
static char *base_key(const rengine *e, const char *id, char *buf, size_t size)
{
    snprintf(buf, size, "%s:{%s}", e->prefix, id);
    return buf;
}

/* The script's first arguments for shard s: keys (base, channels, dead-letter base or none), op
 * name, the shard's pub/sub scope (for the channel names it publishes on), channel. */
static void args_head(args *a, const rengine *e, size_t s, char *kbase, char *kchan,
                      const char *dlbase, const char *opname, const char *channel)
{
    args_str(a, kbase);
    args_str(a, kchan);
    if (dlbase)
        args_str(a, dlbase);
    args_str(a, opname);
    args_str(a, e->shards[s].scope);
    args_str(a, channel ? channel : "");
}

static void shard_send(rengine *e, size_t shard_idx, const sl__rscript *script, args *a, int nkeys,
                       sl__rconn_fn fn, void *ud);

/* ---- replies --------------------------------------------------------------------------------- */

static void on_deadput(void *ud, int rc, const redisReply *r)
{
    pend *p = ud;
    sl__eop *op = p->op;
    if (rc != SL_OK) {
        op->dead_rc = SL_EUNAVAIL;
    } else if (r->type == REDIS_REPLY_ERROR) {
        op->dead_rc = sl__redis_error_code(r->str, r->len);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        op->dead_rc = SL_EFORMAT;
    } else {
        const redisReply *c = r->element[0], *made = r->element[1];
        op->dead_rc = c->type == REDIS_REPLY_INTEGER && c->integer == 0 ? SL_OK
                      : c->type == REDIS_REPLY_STRING ? sl__redis_error_code(c->str, c->len)
                                                      : SL_EFORMAT;
        if (made->type != REDIS_REPLY_NIL) {
            int irc = sl__redis_decode_info(made, &op->info);
            if (irc == SL_OK)
                op->dead_created = 1;
            else if (op->dead_rc == SL_OK)
                op->dead_rc = irc;
        }
    }
    answer(p, SL_OK);
}

/* The second step of dead letters whose queue is on another shard. */
static void dead_remote(pend *p, int visibility)
{
    rengine *e = p->e;
    sl__eop *op = p->op;
    size_t s = sl__reng_shard_of(e, op->dead_letter);
    char kb[KEY_MAX], kc[KEY_MAX], epoch[17];
    args a = {0};
    sl__epoch_new(epoch);
    snprintf(kc, sizeof kc, "%s:channels", e->prefix);
    args_head(&a, e, s, base_key(e, op->dead_letter, kb, sizeof kb), kc, NULL, "deadput",
              op->dead_letter);
    args_num(&a, op->now);
    args_str(&a, epoch);
    args_fmt(&a, "%d", visibility);
    args_fmt(&a, "%zu", op->dead.len);
    for (size_t i = 0; i < op->dead.len; i++) {
        const sl_message *m = &op->dead.items[i];
        const char *tags = "sdmcrpox";
        const char *vals[] = {m->sender_id, m->data,         m->metadata, m->correlation_id,
                              m->reply_to,  m->recipient_id, m->origin,   m->dead_reason};
        size_t n = 2;
        for (int f = 0; f < 8; f++)
            n += vals[f] ? 2 : 0;
        args_fmt(&a, "%zu", n);
        args_str(&a, "t");
        args_num(&a, m->timestamp);
        for (int f = 0; f < 8; f++)
            if (vals[f]) {
                args_add(&a, tags + f, 1);
                args_str(&a, vals[f]);
            }
    }
    if (a.oom) {
        args_free(&a);
        op->dead_rc = SL_ENOMEM;
        answer(p, SL_OK);
        return;
    }
    shard_send(e, s, &e->script, &a, 2, on_deadput, p);
    args_free(&a);
}

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_channel_info *)a)->id, ((const sl_channel_info *)b)->id);
}

static const char *op_name(sl__eop_kind k);
/* Data in Redis that does not read back (written by hand, or damaged) is reported by a fixed text
 * naming the channel (an id, already validated; nothing stored is quoted), at most once a second:
 * a request's answer only carries SL_EFORMAT. */
static void log_format(rengine *e, const sl__eop *op)
{
    uint64_t now = uv_now(e->base.loop);
    if (e->format_logged && now - e->format_logged < 1000)
        return;
    e->format_logged = now ? now : 1;
    sl__logsink_printf(e->log, SL__SINK_ERROR,
                       "engine: %s%s: the data in Redis does not read back (a key of the wrong "
                       "type or a malformed value); the request fails",
                       op->channel ? "channel " : "the channel list",
                       op->channel ? op->channel : "");
}

static void on_reply(void *ud, int rc, const redisReply *r)
{
    pend *p = ud;
    sl__eop *op = p->op;
    int vis = -1;
    if (rc == SL_OK)
        rc = sl__redis_decode_reply(op, r, &vis);
    if (rc == SL_EFORMAT)
        log_format(p->e, op);
    if (rc != SL_OK && op->rc == SL_OK)
        op->rc = rc;
    if (--p->waiting > 0)
        return;
    if (op->kind == SL__EOP_LIST && op->rc == SL_OK && op->ninfos > 1) {
        /* Every shard's channels, sorted by id as one list. */
        qsort(op->infos, op->ninfos, sizeof *op->infos, info_cmp);
    }
    if (op->rc == SL_OK && vis >= 0 && op->dead.len > 0) {
        dead_remote(p, vis);
        return;
    }
    answer(p, SL_OK);
}

static void shard_send(rengine *e, size_t shard_idx, const sl__rscript *script, args *a, int nkeys,
                       sl__rconn_fn fn, void *ud)
{
    rshard *s = &e->shards[shard_idx];
    if (s->conn == NULL) {
        /* The engine is being freed (a second step of a request the first shard failed). */
        fn(ud, SL_EUNAVAIL, NULL);
        return;
    }
    if (s->format < 0) {
        /* A newer layout on this shard: nothing is read or written there. */
        static char text[] = "EFORMAT";
        redisReply refused = {.type = REDIS_REPLY_ERROR, .str = text, .len = sizeof text - 1};
        fn(ud, SL_OK, &refused);
        return;
    }
    sl__rconn_eval(s->conn, script, nkeys, a->n, a->v, a->l, fn, ud);
}

/* ---- requests -------------------------------------------------------------------------------- */

static const char *op_name(sl__eop_kind k)
{
    switch (k) {
    case SL__EOP_CREATE:
        return "create";
    case SL__EOP_DROP:
        return "drop";
    case SL__EOP_INFO:
        return "info";
    case SL__EOP_LIST:
        return "list";
    case SL__EOP_APPEND:
        return "append";
    case SL__EOP_CLAIM:
        return "claim";
    case SL__EOP_ACK:
        return "ack";
    case SL__EOP_NACK:
        return "nack";
    case SL__EOP_READ:
        return "read";
    case SL__EOP_CLEAR:
        return "clear";
    case SL__EOP_EVICT:
        return "evict";
    case SL__EOP_REMOVE:
        return "remove";
    case SL__EOP_POSITION:
        return "position";
    case SL__EOP_EXTEND:
        return "extend";
    case SL__EOP_TERMINATE:
        return "terminate";
    case SL__EOP_SYNC:
        return "sync";
    case SL__EOP_PRESENCE_SET:
        return "pset";
    case SL__EOP_PRESENCE_DEL:
        return "pdel";
    case SL__EOP_PRESENCE_GET:
        return "pget";
    }
    return "?";
}

static void add_ids(args *a, const sl__eop *op)
{
    for (size_t i = 0; i < op->nids; i++) {
        uint64_t seq;
        if (op->ids[i] && sl__msgid_parse(op->ids[i], &seq))
            args_add(a, op->ids[i], SL__MSGID_LEN);
    }
}

static void add_settings(args *a, const sl_channel_info *i, const char *epoch)
{
    args_str(a, "name");
    args_str(a, i->name);
    args_str(a, "description");
    args_str(a, i->description);
    args_str(a, "dead_letter");
    args_str(a, i->dead_letter);
    args_str(a, "kind");
    args_fmt(a, "%d", (int)i->kind);
    args_str(a, "visibility");
    args_fmt(a, "%d", (int)i->visibility);
    args_str(a, "mode");
    args_fmt(a, "%d", (int)i->mode);
    args_str(a, "claim_timeout");
    args_num(a, i->claim_timeout);
    args_str(a, "max_attempts");
    args_fmt(a, "%u", i->max_attempts);
    args_str(a, "max_messages");
    args_fmt(a, "%zu", i->max_messages);
    args_str(a, "rcount");
    args_fmt(a, "%zu", i->retention_max_count);
    args_str(a, "rage");
    args_num(a, i->retention_max_age);
    args_str(a, "presence");
    args_fmt(a, "%d", i->presence ? 1 : 0);
    args_str(a, "join_leave");
    args_fmt(a, "%d", i->join_leave ? 1 : 0);
    char backoff[SL_BACKOFF_MAX * 26 + 1] = "";
    size_t n = i->nbackoff < SL_BACKOFF_MAX ? i->nbackoff : SL_BACKOFF_MAX, len = 0;
    for (size_t k = 0; k < n; k++)
        len += (size_t)snprintf(backoff + len, sizeof backoff - len, "%s%.17g", k ? " " : "",
                                i->backoff[k]);
    args_str(a, "backoff");
    args_fmt(a, "%s", backoff);
    args_str(a, "dedup_window");
    args_num(a, i->dedup_window);
    args_str(a, "cursor_idle");
    args_num(a, i->cursor_idle_timeout);
    args_str(a, "epoch");
    args_str(a, epoch);
}

/* Small decimal numbers as static strings: no formatting per message for the common cases. */
static const char *const SMALL[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"};

/* A number argument: borrowed when it is 0, else formatted (owned by a). */
static void args_time(args *a, double x)
{
    if (x == 0)
        args_add(a, SMALL[0], 1);
    else
        args_num(a, x);
}

/* One message of an APPEND: its number of fields, key, not_before, then the fields as the stream
 * entry stores them (tag, value pairs, 't' first). now_s is the request's time, already formatted:
 * a message stamped with it (the usual case) borrows that text. */
static void add_message(args *a, const sl_message *m, const char *key, double now,
                        const char *now_s)
{
    static const char tags[] = "sdmcrpox"; /* after 't' and 'e', in the order of vals */
    const char *vals[] = {m->sender_id, m->data,         m->metadata, m->correlation_id,
                          m->reply_to,  m->recipient_id, m->origin,   m->dead_reason};
    size_t nf = 1 + (m->expires_at > 0);
    for (int f = 0; f < 8; f++)
        nf += vals[f] != NULL;
    args_add(a, SMALL[nf], strlen(SMALL[nf]));
    args_str(a, key);
    args_time(a, m->not_before);
    args_add(a, "t", 1);
    if (m->timestamp == now)
        args_str(a, now_s);
    else
        args_num(a, m->timestamp);
    if (m->expires_at > 0) {
        args_add(a, "e", 1);
        args_num(a, m->expires_at);
    }
    for (int f = 0; f < 8; f++)
        if (vals[f]) {
            args_add(a, &tags[f], 1);
            args_str(a, vals[f]);
        }
}

static void add_dead(args *a, const rengine *e, const sl__eop *op, int local)
{
    char epoch[17];
    sl__epoch_new(epoch);
    args_str(a, op->dead_letter ? op->dead_letter : "");
    args_str(a, local ? "local" : "remote");
    args_fmt(a, "%s", epoch); /* a copy: epoch does not outlive this call */
}

/* ---- coalesced writes ------------------------------------------------------------------------ */

/* The APPEND requests of one channel submitted during one loop turn run as one script (settings
 * read once, the sequence written once, one PUBLISH), each still answered as if alone. Another
 * kind of request sends every open batch first, so Redis runs everything in submission order;
 * appends to different channels touch different keys, so their batches commute. */
static void on_batch_reply(void *ud, int rc, const redisReply *r)
{
    pend *head = ud;
    rengine *e = head->e;
    int all = rc;
    if (all == SL_OK && r->type == REDIS_REPLY_ERROR)
        all = sl__redis_error_code(r->str, r->len);
    else if (all == SL_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != head->nreq))
        all = SL_EFORMAT;
    size_t i = 0;
    for (pend *m = head; m; m = m->member, i++) {
        int vis;
        int mrc = all != SL_OK ? all : sl__redis_decode_reply(m->op, r->element[i], &vis);
        if (mrc == SL_EFORMAT)
            log_format(e, m->op);
        settle(m, mrc);
    }
    sl__reng_drain(e);
}

static void batch_send(rengine *e, pend *head)
{
    const sl__eop *op0 = head->op;
    size_t shard = sl__reng_shard_of(e, op0->channel);
    char kb[KEY_MAX];
    args a = {0};
    args_str(&a, base_key(e, op0->channel, kb, sizeof kb));
    args_str(&a, e->shards[shard].scope);
    args_str(&a, op0->channel);
    args_count(&a, head->nreq);
    const char *now_s = NULL; /* the requests of one loop turn mostly share their time */
    double now = 0;
    for (pend *m = head; m; m = m->member) {
        const sl__eop *op = m->op;
        if (now_s == NULL || op->now != now) {
            args_num(&a, op->now);
            if (a.oom)
                break;
            now = op->now;
            now_s = a.v[a.n - 1];
        } else {
            args_str(&a, now_s);
        }
        args_count(&a, op->nmsgs);
        for (size_t i = 0; i < op->nmsgs; i++)
            add_message(&a, &op->msgs[i], op->keys ? op->keys[i] : NULL, now, now_s);
    }
    if (a.oom) {
        args_free(&a);
        for (pend *m = head; m; m = m->member)
            settle(m, SL_ENOMEM);
        sl__reng_drain(e);
        return;
    }
    shard_send(e, shard, &e->append, &a, 1, on_batch_reply, head);
    args_free(&a);
}

void sl__reng_batch_flush(rengine *e)
{
    pend *b = e->batches;
    if (b == NULL)
        return;
    e->batches = NULL;
    uv_prepare_stop(&e->prep);
    while (b) {
        pend *next = b->bnext;
        batch_send(e, b);
        b = next;
    }
}

static void on_prepare(uv_prepare_t *h)
{
    sl__reng_batch_flush(h->data);
}

static void batch_add(rengine *e, pend *p)
{
    for (pend *b = e->batches; b; b = b->bnext)
        if (strcmp(b->op->channel, p->op->channel) == 0) {
            b->last->member = p;
            b->last = p;
            b->nreq++;
            return;
        }
    p->last = p;
    p->nreq = 1;
    p->bnext = e->batches;
    if (e->batches == NULL)
        uv_prepare_start(&e->prep, on_prepare);
    e->batches = p;
}

void sl__reng_submit(sl_engine *base, sl__eop *op)
{
    rengine *e = (rengine *)base;
    memset(&op->list, 0, sizeof op->list);
    memset(&op->dead, 0, sizeof op->dead);
    memset(&op->info, 0, sizeof op->info);
    op->infos = NULL;
    op->ninfos = 0;
    op->rc = SL_OK;
    op->count = 0;
    op->seq = 0;
    op->dead_rc = SL_OK;
    op->dead_created = 0;
    pend *p = enqueue(e, op);
    if (p == NULL) {
        /* Nothing to queue behind: complete now, which keeps the order only if nothing waits. */
        op->rc = SL_ENOMEM;
        op->done(op);
        return;
    }
    if (e->freeing) {
        answer(p, SL_EUNAVAIL);
        return;
    }
    if (op->kind == SL__EOP_APPEND) {
        batch_add(e, p);
        return;
    }
    if (op->kind == SL__EOP_SYNC) {
        /* Every request before it completes first (the FIFO): nothing to send. */
        answer(p, SL_OK);
        return;
    }
    if ((op->kind == SL__EOP_PRESENCE_SET || op->kind == SL__EOP_PRESENCE_DEL) &&
        (op->reader == NULL || op->reader[0] == '\0' || strlen(op->reader) > SL__REDIS_CLIENT_MAX ||
         (op->kind == SL__EOP_PRESENCE_SET &&
          (op->after == NULL || strlen(op->after) > SL_PRINCIPAL_MAX)))) {
        answer(p, SL_EINVAL); /* it could not be read back */
        return;
    }
    /* Writes submitted before this request run before it. */
    sl__reng_batch_flush(e);
    char kc[KEY_MAX];
    snprintf(kc, sizeof kc, "%s:channels", e->prefix);
    if (op->kind == SL__EOP_LIST) {
        p->waiting = (int)e->nshards;
        for (size_t s = 0; s < e->nshards; s++) {
            args a = {0};
            args_head(&a, e, s, kc, kc, NULL, "list", "");
            if (a.oom) {
                args_free(&a);
                on_reply(p, SL_ENOMEM, NULL);
                continue;
            }
            shard_send(e, s, &e->script, &a, 2, on_reply, p);
            args_free(&a);
        }
        return;
    }
    const char *ch = op->channel;
    size_t s = sl__reng_shard_of(e, ch);
    char kb[KEY_MAX], kd[KEY_MAX];
    int dl_local = 0;
    if ((op->kind == SL__EOP_CLAIM || op->kind == SL__EOP_TERMINATE) && op->dead_letter &&
        op->dead_letter[0] && sl__reng_shard_of(e, op->dead_letter) == s)
        dl_local = 1;
    args a = {0};
    args_head(&a, e, s, base_key(e, ch, kb, sizeof kb), kc,
              dl_local ? base_key(e, op->dead_letter, kd, sizeof kd) : NULL, op_name(op->kind), ch);
    int nkeys = dl_local ? 3 : 2;
    char epoch[17];
    switch (op->kind) {
    case SL__EOP_CREATE:
        if (op->create->epoch[0])
            memcpy(epoch, op->create->epoch, sizeof epoch);
        else
            sl__epoch_new(epoch);
        add_settings(&a, op->create, epoch);
        break;
    case SL__EOP_CLAIM:
        args_num(&a, op->now);
        args_str(&a, op->reader);
        args_fmt(&a, "%zu", op->limit < LIMIT_MAX ? op->limit : (size_t)LIMIT_MAX);
        if (op->max_bytes == SIZE_MAX)
            args_str(&a, "-1");
        else
            args_fmt(&a, "%zu", op->max_bytes);
        add_dead(&a, e, op, dl_local);
        break;
    case SL__EOP_ACK:
        args_num(&a, op->now);
        args_str(&a, op->reader);
        add_ids(&a, op);
        break;
    case SL__EOP_NACK:
    case SL__EOP_EXTEND:
        args_num(&a, op->now);
        args_str(&a, op->reader);
        args_num(&a, op->delay);
        add_ids(&a, op);
        break;
    case SL__EOP_TERMINATE:
        args_num(&a, op->now);
        args_str(&a, op->reader);
        args_str(&a, op->reason ? op->reason : "terminated");
        add_dead(&a, e, op, dl_local);
        add_ids(&a, op);
        break;
    case SL__EOP_READ:
        args_num(&a, op->now);
        args_str(&a, op->reader);
        if (op->after)
            args_after(&a, op->after);
        else
            args_str(&a, "");
        args_fmt(&a, "%zu", op->limit < LIMIT_MAX ? op->limit : (size_t)LIMIT_MAX);
        if (op->max_bytes == SIZE_MAX)
            args_str(&a, "-1");
        else
            args_fmt(&a, "%zu", op->max_bytes);
        break;
    case SL__EOP_EVICT:
        args_num(&a, op->before);
        if (op->max_count == SIZE_MAX)
            args_str(&a, "-1");
        else
            args_fmt(&a, "%zu", op->max_count);
        break;
    case SL__EOP_REMOVE:
        add_ids(&a, op);
        break;
    case SL__EOP_PRESENCE_SET:
        args_num(&a, op->now);
        args_str(&a, op->reader);
        args_str(&a, op->after);
        args_num(&a, op->delay);
        break;
    case SL__EOP_PRESENCE_DEL:
        args_str(&a, op->reader);
        break;
    case SL__EOP_PRESENCE_GET:
        args_num(&a, op->now);
        break;
    default:
        break;
    }
    if (a.oom) {
        args_free(&a);
        answer(p, SL_ENOMEM);
        return;
    }
    p->waiting = 1;
    shard_send(e, s, &e->script, &a, nkeys, on_reply, p);
    args_free(&a);
}
