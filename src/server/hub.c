/* The real-time hub (see hub.h): per-channel subscriber arrays with O(1) removal, the stream epoch
 * of each channel, and batched fan-out. A publication is encoded once into a scratch buffer and
 * copied into each subscriber's pending batch; the uv_check handle flushes every dirty connection
 * once per loop iteration, after all the reads of that iteration have been handled. */
#include "server/hub.h"

#include <inttypes.h>
#include <stddef.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "core/message.h"

struct sl__hub_chan {
    char id[SL_CHANNEL_ID_MAX + 1];
    char epoch[17];
    int presence, join_leave;
    sl__hub_sub **subs;
    size_t nsubs, cap;
};

/* An intrusive FIFO of peers through one of their links (off: offsetof the sl__hub_link). */
typedef struct list {
    sl__hub_peer *head, *tail;
    size_t off;
} list;

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

struct sl__hub {
    uv_check_t flush;
    int flush_active;
    sl__map *chans;     /* id -> sl__hub_chan* */
    list dirty;         /* peers with a pending batch, in the order they became dirty */
    list held;          /* peers that stopped reading until the next flush */
    size_t batched;     /* bytes fanned out since the last flush */
    sl__cf_buf scratch; /* one encoded push, shared by every subscriber */
};

static void chan_free(void *p)
{
    sl__hub_chan *c = p;
    if (c) {
        free(c->subs);
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
        if (batch.len)
            p->ops->flush(p, batch.data, batch.len);
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

int sl__hub_new(sl__hub **out, uv_loop_t *loop)
{
    *out = NULL;
    sl__hub *h = calloc(1, sizeof *h);
    if (h == NULL || sl__map_new(&h->chans) != SL_OK) {
        free(h);
        return SL_ENOMEM;
    }
    uv_check_init(loop, &h->flush);
    h->flush.data = h;
    h->dirty.off = offsetof(sl__hub_peer, dirty);
    h->held.off = offsetof(sl__hub_peer, held);
    sl__cf_buf_init(&h->scratch);
    *out = h;
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
    sl__map_free(h->chans, chan_free);
    sl__cf_buf_free(&h->scratch);
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
    if (c || !create || info == NULL)
        return c;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    snprintf(c->id, sizeof c->id, "%s", id);
    /* The channel's stream epoch (new whenever the stream starts over: created, re-created, or a
     * memory engine restarted), so clients holding an offset of another stream cannot recover
     * from this one, and a durable channel's survives restarts. */
    if (info->epoch[0])
        snprintf(c->epoch, sizeof c->epoch, "%s", info->epoch);
    else
        sl__epoch_new(c->epoch);
    c->presence = info->presence;
    c->join_leave = info->join_leave;
    if (sl__map_put(h->chans, id, c, NULL) != SL_OK) {
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

/* Encoded once in scratch, appended to every subscriber of c except `except`. */
static void fan_out(sl__hub *h, sl__hub_chan *c, const sl__hub_sub *except)
{
    if (h->scratch.oom || h->scratch.len == 0)
        return;
    for (size_t i = 0; i < c->nsubs; i++) {
        sl__hub_sub *s = c->subs[i];
        if (s == except)
            continue;
        /* A batch that cannot grow loses this push; the flush still sends what it has. */
        if (sl__cf_buf_append(&s->peer->out, h->scratch.data, h->scratch.len) == SL_OK) {
            h->batched += h->scratch.len + 1;
            sl__hub_peer_touch(h, s->peer);
        }
    }
}

static void join_leave(sl__hub *h, sl__hub_sub *s, int join)
{
    sl__hub_chan *c = s->chan;
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

int sl__hub_subscribe(sl__hub *h, sl__hub_chan *c, sl__hub_sub *s)
{
    if (c->nsubs == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        sl__hub_sub **v = realloc(c->subs, cap * sizeof *v);
        if (v == NULL)
            return SL_ENOMEM;
        c->subs = v;
        c->cap = cap;
    }
    s->chan = c;
    s->channel = c->id;
    s->pos = c->nsubs;
    c->subs[c->nsubs++] = s;
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
    }
}

uint64_t sl__hub_offset_of(const char *id)
{
    uint64_t seq = 0;
    sl__msgid_parse(id, &seq);
    return seq;
}

void sl__hub_publish(sl__hub *h, const sl_event *ev)
{
    sl__hub_chan *c = sl__map_get(h->chans, ev->channel);
    if (c == NULL || c->nsubs == 0)
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
    fan_out(h, c, NULL);
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
    sl__map_del(h->chans, channel, chan_free);
}
