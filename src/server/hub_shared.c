/* The hub on a shared engine (several nodes on one store; server/hub.h): the channels its
 * subscribers use are watched, so that the engine's feed brings their writes to this node, from
 * before a subscription reads its position (sl__hub_prepare) until the channel has neither
 * subscribers nor pending marks; and every local subscriber of a presence or join/leave channel has
 * an entry in the engine, set again on a timer, which is where presence and join/leave pushes come
 * from. The fan-out of what the feed delivers is hub.c's (server/hub_internal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "server/hub_internal.h"
#include "store/engine.h"

/* ---- presence on a shared engine ------------------------------------------------------------
 * Every node keeps an entry per local subscriber of a presence (or join/leave) channel in the
 * engine, and sets them all again every pres_ttl / 3 seconds, so a node that dies without
 * removing its entries loses them once pres_ttl passes. The engine turns new and removed entries
 * into SL_EVENT_JOIN / LEAVE for every node watching the channel: join and leave pushes come from
 * there, never from the local subscriber list. */

/* A fire-and-forget presence request: owns its strings; freed when the engine completes it (which
 * it does, also when freed), so it needs no hub. */
typedef struct pres_req {
    sl__eop op;
    char id[SL_CHANNEL_ID_MAX + 1];
    char client[SL__HUB_CLIENT_MAX + 1];
    char user[SL_PRINCIPAL_MAX + 1];
} pres_req;

static void pres_done(sl__eop *op)
{
    /* A failure is mended by the next refresh (SET) or by the entry's expiry (DEL). */
    sl__eop_clear(op);
    free(op->ud);
}

void sl__hub_pres_send(sl__hub *h, sl__eop_kind kind, const sl__hub_chan *c, const sl__hub_sub *s)
{
    pres_req *r = calloc(1, sizeof *r);
    if (r == NULL || s->client == NULL || strlen(s->client) > SL__HUB_CLIENT_MAX) {
        free(r);
        return;
    }
    snprintf(r->id, sizeof r->id, "%s", c->id);
    snprintf(r->client, sizeof r->client, "%s", s->client);
    snprintf(r->user, sizeof r->user, "%s", s->user ? s->user : "");
    r->op.kind = kind;
    r->op.channel = r->id;
    r->op.reader = r->client;
    r->op.after = r->user;
    r->op.delay = h->pres_ttl;
    r->op.now = sl_wallclock(NULL); /* every node's entries on one clock: the wall's */
    r->op.done = pres_done;
    r->op.ud = r;
    h->engine->ops->submit(h->engine, &r->op);
}

static int refresh_each(void *ud, const char *id, void *value)
{
    (void)id;
    sl__hub *h = ud;
    sl__hub_chan *c = value;
    for (size_t i = 0; pres_shared(h, c) && i < c->nsubs; i++)
        sl__hub_pres_send(h, SL__EOP_PRESENCE_SET, c, c->subs[i]);
    return SL_OK;
}

void sl__hub_presence_refresh(uv_timer_t *t)
{
    sl__hub *h = t->data;
    sl__map_each(h->chans, refresh_each, h);
}

double sl__hub_presence_ttl(void)
{
    /* Tests shorten it to see a dead node's entries go (docs/SCALING.md). */
    const char *v = getenv("SLUICE_PRESENCE_TTL");
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (v && *end == '\0' && d >= 0.3 && d <= 86400)
        return d;
    return SL__HUB_PRESENCE_TTL;
}

/* ---- watching a shared engine's feed ----------------------------------------------------------
 */

/* Ends the watch of a channel nobody uses any more (neither subscribers nor pending marks). */
void sl__hub_maybe_unwatch(sl__hub *h, sl__hub_chan *c)
{
    if (c->nsubs || c->pending || c->nwaiters)
        return;
    sl__hub_kept_clear(c);
    if (c->watch == W_WATCHED)
        h->engine->ops->unwatch(h->engine, c->id);
    if (c->watch != W_STARTING)
        c->watch = W_NONE;
}

static void on_watched(void *ud, int rc)
{
    watch_req *w = ud;
    sl__hub *h = w->h;
    if (h) {
        if (w->prev)
            w->prev->next = w->next;
        else
            h->watches = w->next;
        if (w->next)
            w->next->prev = w->prev;
    }
    sl__hub_chan *c = h ? sl__map_get(h->chans, w->id) : NULL;
    if (c == NULL || c->watch != W_STARTING) { /* the hub or the channel went meanwhile */
        if (h && rc == SL_OK)
            h->engine->ops->unwatch(h->engine, w->id);
        free(w);
        return;
    }
    char id[SL_CHANNEL_ID_MAX + 1];
    memcpy(id, w->id, sizeof id);
    free(w);
    c->watch = rc == SL_OK ? W_WATCHED : W_NONE;
    waiter *ws = c->waiters;
    size_t n = c->nwaiters;
    c->waiters = NULL;
    c->nwaiters = 0;
    if (rc == SL_OK)
        c->pending += n;
    for (size_t i = 0; i < n; i++)
        ws[i].fn(ws[i].ud, rc);
    free(ws);
    /* The waiters may have abandoned (or the channel gone) inside their callbacks. */
    if ((c = sl__map_get(h->chans, id)) != NULL)
        sl__hub_maybe_unwatch(h, c);
}

void sl__hub_prepare(sl__hub *h, const char *id, sl__hub_ready_fn ready, void *ud)
{
    if (h->engine == NULL) {
        ready(ud, SL_OK);
        return;
    }
    sl__hub_chan *c = sl__map_get(h->chans, id);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL || sl__map_put(h->chans, id, c, NULL) != SL_OK) {
            free(c);
            ready(ud, SL_ENOMEM);
            return;
        }
        snprintf(c->id, sizeof c->id, "%s", id);
    }
    if (c->watch == W_WATCHED) {
        c->pending++;
        ready(ud, SL_OK);
        return;
    }
    waiter *v = realloc(c->waiters, (c->nwaiters + 1) * sizeof *v);
    watch_req *w = c->watch == W_NONE ? calloc(1, sizeof *w) : NULL;
    if (v)
        c->waiters = v;
    if (v == NULL || (c->watch == W_NONE && w == NULL)) {
        free(w);
        ready(ud, SL_ENOMEM);
        return;
    }
    c->waiters[c->nwaiters++] = (waiter){ready, ud};
    if (w == NULL)
        return; /* joins the watch being started */
    c->watch = W_STARTING;
    w->h = h;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->next = h->watches;
    if (w->next)
        w->next->prev = w;
    h->watches = w;
    h->engine->ops->watch(h->engine, id, on_watched, w);
}

void sl__hub_abandon(sl__hub *h, const char *id)
{
    sl__hub_chan *c = h->engine ? sl__map_get(h->chans, id) : NULL;
    if (c == NULL || c->pending == 0)
        return;
    c->pending--;
    sl__hub_maybe_unwatch(h, c);
}

int sl__hub_presence_shared(const sl__hub *h)
{
    return h->engine != NULL;
}

typedef struct pres_get {
    sl__eop op;
    char id[SL_CHANNEL_ID_MAX + 1];
    sl__hub_presence_fn fn;
    void *ud;
} pres_get;

static void pres_got(sl__eop *op)
{
    pres_get *g = op->ud;
    g->fn(g->ud, op->rc, &op->list);
    sl__eop_clear(op);
    free(g);
}

void sl__hub_presence_get(sl__hub *h, const char *channel, sl__hub_presence_fn fn, void *ud)
{
    pres_get *g = h->engine ? calloc(1, sizeof *g) : NULL;
    if (g == NULL) {
        sl_message_list none = {0};
        fn(ud, h->engine ? SL_ENOMEM : SL_EINVAL, &none);
        return;
    }
    snprintf(g->id, sizeof g->id, "%s", channel);
    g->fn = fn;
    g->ud = ud;
    g->op.kind = SL__EOP_PRESENCE_GET;
    g->op.channel = g->id;
    g->op.now = sl_wallclock(NULL);
    g->op.done = pres_got;
    g->op.ud = g;
    h->engine->ops->submit(h->engine, &g->op);
}
