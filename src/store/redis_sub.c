/* The subscription connection (sl__rsub, store/redis_conn.h) on a link (redis_link.c): counted
 * channels, each with at most one SUBSCRIBE or UNSUBSCRIBE in flight, their adds answered once
 * Redis confirmed them (from the loop, never inside the call), every channel subscribed again on
 * each reconnect, published messages handed to the owner, and the probe that finds a connection
 * gone silent (a subscribed connection has no replies to time out). Of the link's hooks, the two
 * that differ per kind (the handshake, freeing) dispatch in redis_conn.c to sl__rsub_handshake and
 * sl__rsub_free_struct; the two only a subscription has (the tick, going down) are here. The
 * command connection is redis_conn.c's. */
#include "store/redis_conn_internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <stdlib.h>
#include <string.h>

#include "core/map.h"

/* The subscription's own channel: subscribed last on every (re)connect and again as the probe.
 * Nobody publishes on it; sl__rsub_add refuses it so that a caller cannot unsubscribe it. */
#define PROBE_CHANNEL "__sluice:rsub:probe"

typedef enum { C_DOWN, C_SUBSCRIBING, C_SUBSCRIBED, C_UNSUBSCRIBING } cstate;

typedef struct waiter {
    struct waiter *next;
    sl__rsub_ready_fn ready;
    void *ud;
} waiter;

/* One channel: at most one SUBSCRIBE or UNSUBSCRIBE of it in flight at a time, because hiredis
 * keeps one callback per channel and drops it on any UNSUBSCRIBE reply, even one that a newer
 * SUBSCRIBE already followed. */
typedef struct chan {
    struct chan *prev, *next;
    char *name;
    size_t count; /* adds not removed (those waiting for their ready included) */
    cstate st;
    waiter *wh, *wt; /* adds waiting for the confirmation */
} chan;

struct sl__rsub {
    rlink l;
    sl__rsub_msg_fn on_msg;
    void *ud;
    sl__map *by_name;
    chan *chans;
    later_q later;
    int probe_out; /* a probe has not been answered yet */
};

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

static int sub_send(sl__rsub *s, const char *verb, const char *name)
{
    const char *argv[2] = {verb, name};
    size_t lens[2] = {strlen(verb), strlen(name)};
    if (s->l.ac == NULL)
        return 0;
    return redisAsyncCommandArgv(s->l.ac, on_sub_reply, s, 2, argv, lens) == REDIS_OK;
}

static void on_kick_sub(uv_timer_t *t)
{
    sl__rsub *s = t->data;
    later *n;
    while (!s->l.closing && (n = sl__rlater_pop(&s->later)) != NULL) {
        n->ready(n->ud, n->rc);
        free(n);
    }
}

static void sub_ready_later(sl__rsub *s, sl__rsub_ready_fn ready, void *ud, int rc)
{
    if (ready == NULL)
        return;
    later *n = calloc(1, sizeof *n);
    if (n == NULL) {
        ready(ud, rc);
        return;
    }
    n->ready = ready;
    n->ud = ud;
    n->rc = rc;
    sl__rlater_push(&s->later, n);
    uv_timer_start(&s->later.kick, on_kick_sub, 0, 0);
}

static void chan_destroy(sl__rsub *s, chan *ch)
{
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        s->chans = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    sl__map_del(s->by_name, ch->name, NULL);
    waiter *w = ch->wh;
    while (w != NULL) {
        waiter *nx = w->next;
        free(w);
        w = nx;
    }
    free(ch->name);
    free(ch);
}

/* Answers every waiter of ch with rc; SL_EUNAVAIL also takes their adds back (they are not
 * kept: the caller retries). */
static void chan_answer(sl__rsub *s, chan *ch, int rc)
{
    waiter *w = ch->wh;
    ch->wh = ch->wt = NULL;
    while (w != NULL) {
        waiter *nx = w->next;
        if (rc != SL_OK && ch->count > 0)
            ch->count--;
        sub_ready_later(s, w->ready, w->ud, rc);
        free(w);
        w = nx;
    }
}

/* (Re)subscribes every channel that is wanted, then the probe channel, whose confirmation (the
 * last reply, as replies come in order) makes the link up. */
void sl__rsub_handshake(sl__rsub *s)
{
    chan *ch = s->chans;
    while (ch != NULL) {
        chan *nx = ch->next;
        if (ch->count == 0) {
            /* removed while an earlier address was being tried */
            chan_answer(s, ch, SL_OK);
            chan_destroy(s, ch);
        } else {
            ch->st = sub_send(s, "SUBSCRIBE", ch->name) ? C_SUBSCRIBING : C_DOWN;
        }
        ch = nx;
    }
    s->probe_out = 1;
    sub_send(s, "SUBSCRIBE", PROBE_CHANNEL);
}

/* The probe: a subscribed RESP2 connection answers PING with ["pong", ""], which hiredis 0.14
 * matches to no callback (it looks the reply up as a pattern subscription), so the probe is a
 * repeated SUBSCRIBE of the probe channel, which Redis confirms without changing anything. One
 * still unanswered at the next tick means the connection went silent. */
static void rsub_tick(sl__rsub *s)
{
    if (s->probe_out && (!sl__rlink_drain(&s->l) || s->l.state != L_UP))
        return;
    if (s->probe_out) {
        sl__rlink_drop(&s->l, "probe unanswered");
        return;
    }
    if (!sub_send(s, "SUBSCRIBE", PROBE_CHANNEL)) {
        sl__rlink_drop(&s->l, "cannot send a probe");
        return;
    }
    s->probe_out = 1;
}

static void rsub_on_down(sl__rsub *s)
{
    chan *ch = s->chans;
    s->probe_out = 0;
    while (ch != NULL) {
        chan *nx = ch->next;
        chan_answer(s, ch, SL_EUNAVAIL);
        if (ch->count == 0)
            chan_destroy(s, ch);
        else
            ch->st = C_DOWN;
        ch = nx;
    }
}

static void on_sub_confirm(sl__rsub *s, chan *ch)
{
    if (ch->st != C_SUBSCRIBING)
        return; /* not ours to count (hiredis shares one callback per channel) */
    chan_answer(s, ch, SL_OK);
    if (ch->count > 0) {
        ch->st = C_SUBSCRIBED;
    } else if (sub_send(s, "UNSUBSCRIBE", ch->name)) {
        ch->st = C_UNSUBSCRIBING;
    } else {
        chan_destroy(s, ch);
    }
}

static void on_unsub_confirm(sl__rsub *s, chan *ch)
{
    if (ch->st != C_UNSUBSCRIBING)
        return;
    if (ch->count > 0) {
        /* added again meanwhile; when it cannot be sent the link is going down, and the channel
         * is subscribed again on reconnect */
        ch->st = sub_send(s, "SUBSCRIBE", ch->name) ? C_SUBSCRIBING : C_DOWN;
        return;
    }
    /* Adds made and removed while it was unsubscribing: nothing to subscribe for them. */
    chan_answer(s, ch, SL_OK);
    chan_destroy(s, ch);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    sl__rsub *s = privdata;
    redisReply *reply = r;
    if (reply == NULL || s->l.closing || s->l.ac != ac)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *name = reply->element[1];
    int is_probe = strcmp(name->str, PROBE_CHANNEL) == 0;
    chan *ch = is_probe ? NULL : sl__map_get(s->by_name, name->str);
    if (strcasecmp(kind, "message") == 0) {
        const redisReply *m = reply->element[2];
        if (ch != NULL && ch->st == C_SUBSCRIBED && ch->count > 0 &&
            m->type == REDIS_REPLY_STRING && s->on_msg != NULL)
            s->on_msg(s->ud, name->str, name->len, m->str, m->len);
    } else if (strcasecmp(kind, "subscribe") == 0) {
        if (is_probe) {
            s->probe_out = 0;
            if (s->l.state == L_CONNECTING) {
                sl__rlink_up(&s->l);
                uv_timer_start(&s->l.timer, sl__rlink_on_timer, SL__RSUB_PROBE_MS,
                               SL__RSUB_PROBE_MS);
                if (s->l.on_state != NULL)
                    s->l.on_state(s->l.state_ud, 1);
            }
        } else if (ch != NULL) {
            on_sub_confirm(s, ch);
        }
    } else if (strcasecmp(kind, "unsubscribe") == 0) {
        if (ch != NULL)
            on_unsub_confirm(s, ch);
    }
}

int sl__rsub_new(sl__rsub **out, uv_loop_t *loop, const sl__rsub_opts *o)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (loop == NULL || o == NULL || o->addr == NULL || o->addr->host[0] == '\0')
        return SL_EINVAL;
    sl__rsub *s = calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    if (sl__map_new(&s->by_name) != SL_OK) {
        free(s);
        return SL_ENOMEM;
    }
    s->l.log = o->log;
    if (sl__rlink_init(&s->l, KIND_SUB, loop, o->addr, o->what, o->role, 0,
                       o->connect_timeout_ms) != SL_OK) {
        sl__map_free(s->by_name, NULL);
        free(s);
        return SL_ENOMEM;
    }
    s->on_msg = o->on_msg;
    s->ud = o->ud;
    s->l.on_state = o->on_state;
    s->l.state_ud = o->ud;
    uv_timer_init(loop, &s->later.kick);
    s->later.kick.data = s;
    s->l.refs += 1;
    sl__rlink_start(&s->l);
    *out = s;
    return SL_OK;
}

int sl__rsub_up(const sl__rsub *s)
{
    return s != NULL && s->l.state == L_UP && s->l.ac != NULL;
}

void sl__rsub_add(sl__rsub *s, const char *channel, sl__rsub_ready_fn ready, void *ud)
{
    if (channel == NULL || *channel == '\0' || strcmp(channel, PROBE_CHANNEL) == 0) {
        sub_ready_later(s, ready, ud, SL_EINVAL);
        return;
    }
    if (!sl__rsub_up(s)) {
        sub_ready_later(s, ready, ud, SL_EUNAVAIL);
        return;
    }
    chan *ch = sl__map_get(s->by_name, channel);
    int fresh = ch == NULL;
    if (fresh) {
        ch = calloc(1, sizeof *ch);
        if (ch == NULL || (ch->name = strdup(channel)) == NULL ||
            sl__map_put(s->by_name, channel, ch, NULL) != SL_OK) {
            if (ch != NULL)
                free(ch->name);
            free(ch);
            sub_ready_later(s, ready, ud, SL_EUNAVAIL);
            return;
        }
        ch->next = s->chans;
        if (s->chans)
            s->chans->prev = ch;
        s->chans = ch;
        if (!sub_send(s, "SUBSCRIBE", channel)) {
            chan_destroy(s, ch);
            sub_ready_later(s, ready, ud, SL_EUNAVAIL);
            return;
        }
        ch->st = C_SUBSCRIBING;
    }
    if (ch->st == C_SUBSCRIBED) {
        ch->count++;
        sub_ready_later(s, ready, ud, SL_OK);
        return;
    }
    waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        /* a fresh channel keeps count 0: unsubscribed again once confirmed */
        sub_ready_later(s, ready, ud, SL_EUNAVAIL);
        return;
    }
    w->ready = ready;
    w->ud = ud;
    if (ch->wt)
        ch->wt->next = w;
    else
        ch->wh = w;
    ch->wt = w;
    ch->count++;
}

void sl__rsub_remove(sl__rsub *s, const char *channel)
{
    if (s == NULL || channel == NULL)
        return;
    chan *ch = sl__map_get(s->by_name, channel);
    if (ch == NULL || ch->count == 0)
        return;
    if (--ch->count > 0)
        return;
    switch (ch->st) {
    case C_DOWN:
        chan_answer(s, ch, SL_OK);
        chan_destroy(s, ch);
        break;
    case C_SUBSCRIBED:
        if (sub_send(s, "UNSUBSCRIBE", ch->name))
            ch->st = C_UNSUBSCRIBING;
        else
            chan_destroy(s, ch); /* the link is going down: nothing to unsubscribe */
        break;
    default:
        break; /* SUBSCRIBING: unsubscribed once confirmed; UNSUBSCRIBING: already going */
    }
}

static void rsub_handle_closed(uv_handle_t *h)
{
    sl__rsub *s = h->data;
    sl__rlink_release(&s->l);
}

void sl__rsub_free(sl__rsub *s)
{
    if (s == NULL || s->l.closing)
        return;
    s->l.closing = 1;
    for (;;) {
        later *n;
        while ((n = sl__rlater_pop(&s->later)) != NULL) {
            n->ready(n->ud, n->rc);
            free(n);
        }
        if (s->chans == NULL)
            break;
        chan *ch = s->chans;
        waiter *w = ch->wh;
        ch->wh = ch->wt = NULL;
        while (w != NULL) {
            waiter *nx = w->next;
            if (w->ready != NULL)
                w->ready(w->ud, SL_EUNAVAIL);
            free(w);
            w = nx;
        }
        chan_destroy(s, ch);
    }
    sl__rlink_close(&s->l);
    uv_close((uv_handle_t *)&s->later.kick, rsub_handle_closed);
}

void sl__rsub_free_struct(sl__rsub *s)
{
    sl__map_free(s->by_name, NULL);
    sl__rlink_clear(&s->l);
    free(s);
}

/* ==== the link's hooks that only a subscription has ========================================== */

void sl__rlink_tick(rlink *l)
{
    if (l->kind == KIND_SUB)
        rsub_tick((sl__rsub *)l);
}

void sl__rlink_on_down(rlink *l)
{
    if (l->kind == KIND_SUB)
        rsub_on_down((sl__rsub *)l);
}
