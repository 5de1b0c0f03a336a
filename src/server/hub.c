/* The real-time hub (see hub.h): per-channel subscriber arrays with O(1) removal, the stream epoch
 * of each channel, and batched fan-out. A publication is encoded and framed once, and that one
 * frame is queued by reference on every subscriber's connection (net/ws.h: no payload is copied per
 * subscriber); the uv_check handle flushes every dirty connection once per loop iteration, after
 * all the reads of that iteration have been handled, each with one gather write. On a shared
 * engine (several nodes) the hub also keeps what the feed delivers while a subscription reads its
 * position (replayed at the link) and checks that each subscriber gets each offset once and in
 * order; watching the channels' feeds and mirroring presence into the engine are hub_shared.c's
 * (server/hub_internal.h). */
#include "server/hub_internal.h"

#include <inttypes.h>
#include <stddef.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "core/message.h"
#include "core/metrics.h"
#include "store/engine.h"

/* The most bytes kept for pending subscriptions of one channel: past it they fail (the client
 * retries) rather than the node holding an unbounded backlog. */
#define KEPT_MAX_BYTES (4u << 20)

static sl__hub_link *link_of(const list *l, sl__hub_peer *p)
{
    return (sl__hub_link *)(void *)((char *)p + l->off);
}

static void list_push(list *l, sl__hub_peer *p)
{
    sl__hub_link *k = link_of(l, p);
    if (k->on)
        return;
    k->on = 1;
    k->next = NULL;
    k->prev = l->tail;
    if (l->tail)
        link_of(l, l->tail)->next = p;
    else
        l->head = p;
    l->tail = p;
}

static void list_remove(list *l, sl__hub_peer *p)
{
    sl__hub_link *k = link_of(l, p);
    if (!k->on)
        return;
    if (k->prev)
        link_of(l, k->prev)->next = k->next;
    else
        l->head = k->next;
    if (k->next)
        link_of(l, k->next)->prev = k->prev;
    else
        l->tail = k->prev;
    memset(k, 0, sizeof *k);
}

static sl__hub_peer *list_pop(list *l)
{
    sl__hub_peer *p = l->head;
    if (p)
        list_remove(l, p);
    return p;
}

void sl__hub_kept_clear(sl__hub_chan *c)
{
    for (size_t i = 0; i < c->nkept; i++)
        sl_ws_frame_unref(c->kept[i].frame);
    free(c->kept);
    c->kept = NULL;
    c->nkept = c->kept_bytes = 0;
    c->kept_overflow = 0;
}

static void chan_free(void *p)
{
    sl__hub_chan *c = p;
    if (c) {
        free(c->subs);
        free(c->waiters);
        sl__hub_kept_clear(c);
        free(c);
    }
}

static void on_flush(uv_check_t *handle)
{
    sl__hub *h = handle->data;
    sl__hub_peer *p;
    while ((p = list_pop(&h->dirty)) != NULL) {
        /* The batch is taken before the call: the peer may close and free itself inside. */
        sl__cf_buf batch = p->out;
        sl__cf_buf_init(&p->out);
        p->ops->flush(p, batch.data, batch.len); /* also writes the frames it queued */
        sl__cf_buf_free(&batch);
    }
    h->batched = 0;
    while ((p = list_pop(&h->held)) != NULL)
        p->ops->resume(p);
    uv_check_stop(&h->flush);
    h->flush_active = 0;
}

/* Makes sure the flush runs at the end of this loop iteration. */
static void schedule(sl__hub *h)
{
    if (!h->flush_active) {
        uv_check_start(&h->flush, on_flush);
        h->flush_active = 1;
    }
}

static void on_timer_closed(uv_handle_t *handle)
{
    free(handle);
}

void sl__hub_set_metrics(sl__hub *h, struct sl__metrics *m)
{
    h->metrics = m;
}

int sl__hub_new(sl__hub **out, uv_loop_t *loop, sl_engine *engine)
{
    *out = NULL;
    sl__hub *h = calloc(1, sizeof *h);
    if (h == NULL || sl__map_new(&h->chans) != SL_OK) {
        free(h);
        return SL_ENOMEM;
    }
    h->engine = engine && engine->ops->watch ? engine : NULL;
    if (h->engine) {
        h->pres_ttl = sl__hub_presence_ttl();
        if ((h->refresh = malloc(sizeof *h->refresh)) == NULL) {
            sl__map_free(h->chans, NULL);
            free(h);
            return SL_ENOMEM;
        }
        uint64_t every = (uint64_t)(h->pres_ttl * 1000 / 3);
        uv_timer_init(loop, h->refresh);
        h->refresh->data = h;
        uv_timer_start(h->refresh, sl__hub_presence_refresh, every, every);
        uv_unref((uv_handle_t *)h->refresh); /* it alone does not keep the loop running */
    }
    uv_check_init(loop, &h->flush);
    h->flush.data = h;
    h->dirty.off = offsetof(sl__hub_peer, dirty);
    h->held.off = offsetof(sl__hub_peer, held);
    sl__cf_buf_init(&h->scratch);
    *out = h;
    return SL_OK;
}

static int unwatch_each(void *ud, const char *id, void *value)
{
    sl__hub *h = ud;
    sl__hub_chan *c = value;
    if (c->watch == W_WATCHED)
        h->engine->ops->unwatch(h->engine, id);
    c->watch = W_NONE;
    for (size_t i = 0; i < c->nwaiters; i++) /* their subscriptions fail: the server is going */
        c->waiters[i].fn(c->waiters[i].ud, SL_EUNAVAIL);
    c->nwaiters = 0;
    return SL_OK;
}

static void on_handle_closed(uv_handle_t *handle)
{
    free(handle->data);
}

void sl__hub_free(sl__hub *h)
{
    if (h == NULL)
        return;
    for (watch_req *w = h->watches; w; w = w->next)
        w->h = NULL;
    if (h->engine)
        sl__map_each(h->chans, unwatch_each, h);
    sl__map_free(h->chans, chan_free);
    sl__cf_buf_free(&h->scratch);
    if (h->refresh)
        uv_close((uv_handle_t *)h->refresh, on_timer_closed);
    uv_close((uv_handle_t *)&h->flush, on_handle_closed);
}

void sl__hub_peer_init(sl__hub_peer *p, const sl__hub_peer_ops *ops)
{
    memset(p, 0, sizeof *p);
    p->ops = ops;
    sl__cf_buf_init(&p->out);
}

void sl__hub_peer_detach(sl__hub *h, sl__hub_peer *p)
{
    list_remove(&h->dirty, p);
    list_remove(&h->held, p);
    sl__cf_buf_free(&p->out);
}

int sl__hub_busy(const sl__hub *h)
{
    return h->batched > SL__HUB_BUDGET;
}

void sl__hub_hold(sl__hub *h, sl__hub_peer *p)
{
    list_push(&h->held, p);
    schedule(h); /* resumed by the flush even when nothing is batched */
}

void sl__hub_peer_touch(sl__hub *h, sl__hub_peer *p)
{
    list_push(&h->dirty, p);
    schedule(h);
}

sl__hub_chan *sl__hub_chan_get(sl__hub *h, const char *id, const sl_channel_info *info, int create)
{
    sl__hub_chan *c = sl__map_get(h->chans, id);
    if ((c && c->epoch[0]) || !create || info == NULL)
        return c;
    int fresh = c == NULL;
    if (fresh && (c = calloc(1, sizeof *c)) == NULL)
        return NULL;
    snprintf(c->id, sizeof c->id, "%s", id); /* (a watched one gets its settings now) */
    /* The channel's stream epoch (new whenever the stream starts over: created, re-created, or a
     * memory engine restarted), so clients holding an offset of another stream cannot recover
     * from this one, and a durable channel's survives restarts. */
    if (info->epoch[0])
        snprintf(c->epoch, sizeof c->epoch, "%s", info->epoch);
    else
        sl__epoch_new(c->epoch);
    c->presence = info->presence;
    c->join_leave = info->join_leave;
    c->topic = info->kind == SL_KIND_TOPIC;
    if (fresh && sl__map_put(h->chans, id, c, NULL) != SL_OK) {
        free(c);
        return NULL;
    }
    return c;
}

const char *sl__hub_chan_epoch(const sl__hub_chan *c)
{
    return c->epoch;
}

int sl__hub_chan_presence(const sl__hub_chan *c)
{
    return c->presence;
}

sl__hub_sub *const *sl__hub_chan_subs(const sl__hub_chan *c, size_t *n)
{
    *n = c->nsubs;
    return c->subs;
}

/* Keeps the encoded push in scratch for the pending subscriptions of c. */
static void keep(sl__hub_chan *c, sl_ws_frame *f, uint64_t offset)
{
    if (c->kept_overflow)
        return;
    kept *v = NULL;
    size_t len = sl_ws_frame_len(f);
    if (c->kept_bytes + len > KEPT_MAX_BYTES ||
        (v = realloc(c->kept, (c->nkept + 1) * sizeof *v)) == NULL) {
        c->kept_overflow = 1;
        return;
    }
    c->kept = v;
    c->kept[c->nkept++] = (kept){offset, sl_ws_frame_ref(f)};
    c->kept_bytes += len;
}

/* The frame of the push in scratch, or NULL (out of memory: the push is lost, as when a batch
 * could not grow). The caller unrefs it. */
static sl_ws_frame *scratch_frame(sl__hub *h)
{
    if (h->scratch.oom || h->scratch.len == 0)
        return NULL;
    return sl_ws_frame_text(h->scratch.data, h->scratch.len);
}

static void deliver(sl__hub *h, sl__hub_peer *p, sl_ws_frame *f)
{
    p->ops->queue(p, f);
    h->batched += sl_ws_frame_len(f);
    sl__hub_peer_touch(h, p);
}

/* Encoded once in scratch, queued on every subscriber of c except `except`. */
static void fan_out(sl__hub *h, sl__hub_chan *c, const sl__hub_sub *except)
{
    if (c->nsubs == 0 || (c->nsubs == 1 && c->subs[0] == except))
        return;
    sl_ws_frame *f = scratch_frame(h);
    if (f == NULL)
        return;
    size_t n = 0;
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i] != except) {
            deliver(h, c->subs[i]->peer, f);
            n++;
        }
    if (h->metrics)
        h->metrics->ws_deliveries += n;
    sl_ws_frame_unref(f);
}

static void join_leave(sl__hub *h, sl__hub_sub *s, int join)
{
    sl__hub_chan *c = s->chan;
    if (pres_shared(h, c)) { /* the pushes come back from the engine (sl__hub_join_leave_event) */
        sl__hub_pres_send(h, join ? SL__EOP_PRESENCE_SET : SL__EOP_PRESENCE_DEL, c, s);
        return;
    }
    if (!c->join_leave || c->nsubs < 2)
        return;
    sl__cf_client_info info = {.client = s->client, .user = s->user};
    sl__cf_buf_reset(&h->scratch);
    if (join)
        sl__cf_push_join(&h->scratch, c->id, &info);
    else
        sl__cf_push_leave(&h->scratch, c->id, &info);
    fan_out(h, c, s);
}

int sl__hub_subscribe(sl__hub *h, sl__hub_chan *c, sl__hub_sub *s, uint64_t top)
{
    int marked = h->engine && c->pending > 0;
    int rc = SL_OK;
    if (marked && c->kept_overflow)
        rc = SL_ENOMEM; /* publications it is owed were not kept */
    else if (h->engine && c->watch != W_WATCHED)
        rc = SL_EUNAVAIL; /* the channel went (and came back) since it was prepared: no feed */
    if (rc == SL_OK && c->nsubs == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        sl__hub_sub **v = realloc(c->subs, cap * sizeof *v);
        if (v == NULL)
            rc = SL_ENOMEM;
        else {
            c->subs = v;
            c->cap = cap;
        }
    }
    if (rc != SL_OK) {
        if (marked) {
            c->pending--;
            sl__hub_maybe_unwatch(h, c);
        }
        return rc;
    }
    s->chan = c;
    s->channel = c->id;
    s->pos = c->nsubs;
    s->next_offset = top + 1;
    c->subs[c->nsubs++] = s;
    if (marked) {
        /* What was published after its position was read, in order, after its reply. */
        for (size_t i = 0; i < c->nkept; i++) {
            if (c->kept[i].offset < s->next_offset)
                continue;
            deliver(h, s->peer, c->kept[i].frame);
            s->next_offset = c->kept[i].offset + 1;
        }
        if (--c->pending == 0)
            sl__hub_kept_clear(c);
    }
    join_leave(h, s, 1);
    return SL_OK;
}

void sl__hub_unsubscribe(sl__hub *h, sl__hub_sub *s)
{
    sl__hub_chan *c = s->chan;
    if (c == NULL)
        return;
    join_leave(h, s, 0);
    /* Swap-remove: delivery order between subscribers does not matter, only within one. */
    c->subs[s->pos] = c->subs[--c->nsubs];
    c->subs[s->pos]->pos = s->pos;
    s->chan = NULL;
    if (c->nsubs == 0) { /* keep the epoch, drop the array */
        free(c->subs);
        c->subs = NULL;
        c->cap = 0;
        if (h->engine)
            sl__hub_maybe_unwatch(h, c);
    }
}

uint64_t sl__hub_offset_of(const char *id)
{
    uint64_t seq = 0;
    sl__msgid_parse(id, &seq);
    return seq;
}

/* Ends subscription s from the hub's side: an unsubscribe push, then its owner forgets it. */
static void end_sub(sl__hub *h, sl__hub_sub *s, int code, const char *reason)
{
    sl__hub_chan *c = s->chan;
    if (pres_shared(h, c))
        sl__hub_pres_send(h, SL__EOP_PRESENCE_DEL, c, s);
    sl__cf_buf_reset(&h->scratch);
    sl__cf_push_unsubscribe(&h->scratch, c->id, code, reason);
    if (!h->scratch.oom &&
        sl__cf_buf_append(&s->peer->out, h->scratch.data, h->scratch.len) == SL_OK)
        sl__hub_peer_touch(h, s->peer);
    c->subs[s->pos] = c->subs[--c->nsubs];
    c->subs[s->pos]->pos = s->pos;
    s->chan = NULL;
    s->peer->ops->dropped(s->peer, s);
}

/* A topic publication to c's subscribers, each of which takes the offsets it is owed in order:
 * an offset it already has (replayed when it subscribed) is skipped, and from a shared engine's
 * feed a gap means publications were missed, which ends the subscription with "insufficient
 * state" so the client recovers them from the stream. */
static void fan_out_topic(sl__hub *h, sl__hub_chan *c, uint64_t offset)
{
    sl_ws_frame *f = scratch_frame(h);
    if (f == NULL)
        return;
    size_t ngap = 0;
    for (size_t i = 0; i < c->nsubs; i++) {
        sl__hub_sub *s = c->subs[i];
        if (offset < s->next_offset)
            continue;
        if (offset > s->next_offset && h->engine) {
            s->next_offset = 0; /* marked: ended below */
            ngap++;
            continue;
        }
        deliver(h, s->peer, f);
        if (h->metrics)
            h->metrics->ws_deliveries++;
        s->next_offset = offset + 1;
    }
    if (c->pending)
        keep(c, f, offset);
    sl_ws_frame_unref(f);
    for (size_t i = c->nsubs; ngap && i-- > 0;)
        if (c->subs[i]->next_offset == 0) {
            end_sub(h, c->subs[i], SL__CF_UNSUB_INSUFFICIENT_STATE, "insufficient state");
            ngap--;
        }
    if (c->nsubs == 0)
        sl__hub_maybe_unwatch(h, c);
}

void sl__hub_publish(sl__hub *h, const sl_event *ev)
{
    sl__hub_chan *c = sl__map_get(h->chans, ev->channel);
    if (c == NULL || (c->nsubs == 0 && c->pending == 0))
        return;
    const sl_message *m = ev->message;
    char wake[48];
    sl__cf_client_info info = {.client = m->origin, .user = m->sender_id};
    sl__cf_pub pub = {.offset = sl__hub_offset_of(m->id)};
    if (ev->info->kind == SL_KIND_TOPIC) {
        pub.info = m->origin ? &info : NULL; /* published over a socket: who did */
        pub.data = m->data;
        pub.data_len = strlen(m->data);
    } else { /* work queues: a hint to claim, never the message itself */
        int k = snprintf(wake, sizeof wake, "{\"id\":\"%s\"}", m->id);
        pub.data = wake;
        pub.data_len = (size_t)k;
    }
    sl__cf_buf_reset(&h->scratch);
    sl__cf_push_pub(&h->scratch, c->id, &pub);
    if (ev->info->kind == SL_KIND_TOPIC)
        fan_out_topic(h, c, pub.offset);
    else
        fan_out(h, c, NULL);
}

static int resync_each(void *ud, const char *id, void *value)
{
    (void)id;
    sl__hub *h = ud;
    sl__hub_chan *c = value;
    /* Only topics carry offsets; a queue's wake-ups are hints, and claims come from the store. */
    for (size_t i = c->nsubs; c->topic && i-- > 0;)
        end_sub(h, c->subs[i], SL__CF_UNSUB_INSUFFICIENT_STATE, "insufficient state");
    sl__hub_kept_clear(c);
    c->kept_overflow = c->pending > 0; /* pending subscriptions may have missed some too */
    return SL_OK;
}

void sl__hub_resync(sl__hub *h)
{
    sl__map_each(h->chans, resync_each, h);
}

void sl__hub_channel_deleted(sl__hub *h, const char *channel)
{
    sl__hub_chan *c = sl__map_get(h->chans, channel);
    if (c == NULL)
        return;
    sl__cf_buf_reset(&h->scratch);
    sl__cf_push_unsubscribe(&h->scratch, c->id, SL__CF_UNSUB_SERVER, "channel deleted");
    fan_out(h, c, NULL);
    while (c->nsubs) {
        sl__hub_sub *s = c->subs[--c->nsubs];
        s->chan = NULL;
        s->peer->ops->dropped(s->peer, s);
    }
    /* Pending subscriptions find no channel and answer from the registry; a watch still starting
     * is ended when its answer finds the channel gone. */
    for (size_t i = 0; i < c->nwaiters; i++)
        c->waiters[i].fn(c->waiters[i].ud, SL_ENOENT);
    c->nwaiters = 0;
    if (c->watch == W_WATCHED)
        h->engine->ops->unwatch(h->engine, c->id);
    sl__map_del(h->chans, channel, chan_free);
}

void sl__hub_join_leave_event(sl__hub *h, const sl_event *ev)
{
    sl__hub_chan *c = h->engine && ev->channel ? sl__map_get(h->chans, ev->channel) : NULL;
    if (c == NULL || !c->join_leave || c->nsubs == 0 || ev->client == NULL)
        return;
    sl__cf_client_info info = {.client = ev->client, .user = ev->principal ? ev->principal : ""};
    sl__cf_buf_reset(&h->scratch);
    if (ev->kind == SL_EVENT_JOIN)
        sl__cf_push_join(&h->scratch, c->id, &info);
    else
        sl__cf_push_leave(&h->scratch, c->id, &info);
    sl_ws_frame *f = scratch_frame(h);
    if (f == NULL)
        return;
    for (size_t i = 0; i < c->nsubs; i++) {
        sl__hub_sub *s = c->subs[i];
        if (s->client && strcmp(s->client, ev->client) == 0)
            continue; /* its own join or leave */
        deliver(h, s->peer, f);
    }
    sl_ws_frame_unref(f);
}
