/* The Redis engine's life and its shards' connections (the requests are in redis_engine.c, with
 * the key layout): creating and freeing the engine, one command and one subscription connection
 * per shard, the format check each (re)connect of a command connection runs before it counts as
 * up, and what arrives over the subscriptions: watched channels' writes and presence changes on
 * S:ev:{id}, every node's creations and deletions on S:ctl, and the resync after a subscription
 * connection comes back. S is the shard's pub/sub scope (sl__redis_scope): the prefix on db 0,
 * "P@N" on db N, because Redis delivers a PUBLISH to every db's subscribers. */
#include "store/redis_engine_internal.h"

#include "store/redis_codec.h"

#include "core/map.h"
#include "core/message.h"
#include "core/wsid.h"

#include "redis_scripts.h" /* generated: sl__redis_script_src, sl__redis_append_src */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PREFIX "sluice"

typedef struct watch_req {
    rengine *e;
    char *evchan;
    char *id;
    void (*ready)(void *ud, int rc);
    void *ud;
} watch_req;

/* ---- events ---------------------------------------------------------------------------------- */

static size_t *watch_count(rengine *e, const char *id)
{
    return sl__map_get(e->watched, id);
}

static void emit(rengine *e, sl_event_kind kind, const char *id, const sl_message *m)
{
    if (e->base.listener == NULL)
        return;
    sl_event ev = {.kind = kind, .channel = id, .message = m};
    e->base.listener(e->base.listener_ud, &ev);
}

struct one_event {
    rengine *e;
    const char *id;
};

static void deliver(void *ud, const sl_message *m, int deleted)
{
    struct one_event *oe = ud;
    if (deleted)
        emit(oe->e, SL_EVENT_CHANNEL_DELETED, oe->id, NULL);
    else
        emit(oe->e, SL_EVENT_WRITE, oe->id, m);
}

/* A presence entry came or went on a watched channel (the script's pset / pdel / pget). */
static void presence_event(rengine *e, const char *id, const char *msg, size_t mlen)
{
    char client[SL__REDIS_CLIENT_MAX + 1], user[SL_PRINCIPAL_MAX + 1];
    int join;
    if (e->base.listener == NULL ||
        sl__redis_decode_presence(msg, mlen, &join, client, user) != SL_OK)
        return;
    sl_event ev = {.kind = join ? SL_EVENT_JOIN : SL_EVENT_LEAVE,
                   .channel = id,
                   .client = client,
                   .principal = user};
    e->base.listener(e->base.listener_ud, &ev);
}

static void on_sub_msg(void *ud, const char *channel, size_t clen, const char *msg, size_t mlen)
{
    rshard *s = ud;
    rengine *e = s->e;
    char id[SL_CHANNEL_ID_MAX + 1];
    size_t ctl = strlen(s->ctlchan), plen = strlen(s->scope);
    if (clen == ctl && memcmp(channel, s->ctlchan, ctl) == 0) {
        /* "c <id>" / "d <id>": any node's creations and deletions. */
        if (mlen < 3 || (msg[0] != 'c' && msg[0] != 'd') || msg[1] != ' ' ||
            mlen - 2 > SL_CHANNEL_ID_MAX || !sl__stored_id_valid(msg + 2, mlen - 2))
            return;
        memcpy(id, msg + 2, mlen - 2);
        id[mlen - 2] = '\0';
        if (msg[0] == 'c')
            emit(e, SL_EVENT_CHANNEL_CREATED, id, NULL);
        else if (watch_count(e, id) == NULL) /* a watched one hears it on its event channel */
            emit(e, SL_EVENT_CHANNEL_DELETED, id, NULL);
        return;
    }
    /* "S:ev:{<id>}" */
    if (clen < plen + 6 || memcmp(channel, s->scope, plen) != 0 ||
        memcmp(channel + plen, ":ev:{", 5) != 0 || channel[clen - 1] != '}' ||
        clen - plen - 6 > SL_CHANNEL_ID_MAX)
        return;
    memcpy(id, channel + plen + 5, clen - plen - 6);
    id[clen - plen - 6] = '\0';
    if (watch_count(e, id) == NULL)
        return;
    if (mlen > 0 && (msg[0] == 'j' || msg[0] == 'l')) {
        presence_event(e, id, msg, mlen);
        return;
    }
    struct one_event oe = {e, id};
    /* Malformed (not ours to deliver) or out of memory: what decoded before it went out. */
    sl__redis_decode_events(msg, mlen, deliver, &oe);
}

static void on_ctl_ready(void *ud, int rc)
{
    rshard *s = ud;
    if (rc != SL_OK)
        s->ctl = 0; /* tried again when the connection comes back */
}

/* The control channel is subscribed once the connection is first up; the subscription connection
 * then keeps it across reconnections. */
static void ctl_subscribe(rshard *s)
{
    if (s->ctl || s->sub == NULL || !sl__rsub_up(s->sub))
        return;
    s->ctl = 1;
    sl__rsub_add(s->sub, s->ctlchan, on_ctl_ready, s);
}

static void on_sub_state(void *ud, int up)
{
    rshard *s = ud;
    rengine *e = s->e;
    if (!up)
        return;
    ctl_subscribe(s);
    if (e->base.resync)
        e->base.resync(e->base.listener_ud);
}

static void unwatch_count(rengine *e, const char *id)
{
    size_t *n = watch_count(e, id);
    if (n && --*n == 0)
        sl__map_del(e->watched, id, free);
}

static void on_watch_ready(void *ud, int rc)
{
    watch_req *w = ud;
    if (rc != SL_OK)
        unwatch_count(w->e, w->id); /* nothing to unwatch for the caller */
    if (w->ready)
        w->ready(w->ud, rc);
    free(w->evchan);
    free(w->id);
    free(w);
}

/* The event channel of channel id on its shard s: "S:ev:{<id>}". 0 when it does not fit (an id
 * the engine never stores). */
static int evchan_of(const rengine *e, const rshard *s, const char *id, char *buf, size_t size)
{
    return sl__redis_channel(buf, size, e->prefix, e->url.shards[s->idx].db, "ev", id) >= 0;
}

static void r_watch(sl_engine *base, const char *channel, void (*ready)(void *ud, int rc), void *ud)
{
    rengine *e = (rengine *)base;
    if (e->freeing) {
        if (ready)
            ready(ud, SL_EUNAVAIL);
        return;
    }
    size_t *n = watch_count(e, channel);
    rshard *s = &e->shards[sl__reng_shard_of(e, channel)];
    watch_req *w = calloc(1, sizeof *w);
    char evchan[KEY_MAX];
    if (w && evchan_of(e, s, channel, evchan, sizeof evchan))
        w->evchan = strdup(evchan), w->id = strdup(channel);
    int made = w && w->evchan && w->id; /* the count only for a request that goes out */
    if (n == NULL && made && (n = calloc(1, sizeof *n)) != NULL &&
        sl__map_put(e->watched, channel, n, NULL) != SL_OK) {
        free(n);
        n = NULL;
    }
    if (!made || n == NULL) {
        if (w) {
            free(w->evchan);
            free(w->id);
            free(w);
        }
        if (ready)
            ready(ud, SL_EUNAVAIL);
        return;
    }
    ++*n;
    w->e = e;
    w->ready = ready;
    w->ud = ud;
    sl__rsub_add(s->sub, w->evchan, on_watch_ready, w);
}

static void r_unwatch(sl_engine *base, const char *channel)
{
    rengine *e = (rengine *)base;
    if (watch_count(e, channel) == NULL || e->freeing)
        return;
    rshard *s = &e->shards[sl__reng_shard_of(e, channel)];
    char evchan[KEY_MAX];
    unwatch_count(e, channel);
    if (evchan_of(e, s, channel, evchan, sizeof evchan))
        sl__rsub_remove(s->sub, evchan);
}

/* ---- the format check ------------------------------------------------------------------------ */

/* The answer of the check that each (re)connect of a shard's command connection runs before it
 * counts as up: a request is sent only once this has run, so a newer layout never gets a write. */
static void on_format(void *ud, int rc, const redisReply *r)
{
    rshard *s = ud;
    if (rc != SL_OK || r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        s->format = -1;
        sl__logsink_printf(s->e->log, SL__SINK_ERROR,
                           "engine shard %zu: its keys are in a newer layout than this build "
                           "reads: its requests fail (upgrade sluiced)",
                           s->idx);
    } else {
        s->format = 1;
    }
}

/* ---- the engine ------------------------------------------------------------------------------ */

static void on_prep_closed(uv_handle_t *h)
{
    free(h->data);
}

static void r_free(sl_engine *base)
{
    rengine *e = (rengine *)base;
    if (e == NULL)
        return;
    e->freeing = 1;
    sl__reng_batch_flush(e);
    /* Freeing the connections fails what is pending (completing in order from the FIFO). */
    for (size_t i = 0; e->shards && i < e->nshards; i++) {
        sl__rsub *sub = e->shards[i].sub;
        e->shards[i].sub = NULL;
        sl__rsub_free(sub);
    }
    for (size_t i = 0; e->shards && i < e->nshards; i++) {
        /* NULL first: a callback run by the free must not send on it. */
        sl__rconn *c = e->shards[i].conn;
        e->shards[i].conn = NULL;
        sl__rconn_free(c);
    }
    sl__reng_drain(e);
    /* What still waits (a second step never sent): fail it, in order. */
    for (pend *p = e->head; p; p = p->next) {
        if (!p->answered && p->op->rc == SL_OK)
            p->op->rc = SL_EUNAVAIL;
        p->answered = 1;
    }
    sl__reng_drain(e);
    sl__map_free(e->watched, free);
    e->watched = NULL;
    free(e->shards);
    e->shards = NULL;
    sl__redis_ring_free(e->ring);
    e->ring = NULL;
    sl__redis_url_clear(&e->url);
    /* The rest once the loop has closed the prepare handle. */
    uv_close((uv_handle_t *)&e->prep, on_prep_closed);
}

static const sl_engine_ops redis_ops = {
    .name = "redis",
    .free = r_free,
    .submit = sl__reng_submit,
    .watch = r_watch,
    .unwatch = r_unwatch,
};

int sl__redis_engine_new(sl_engine **out, uv_loop_t *loop, const sl__redis_engine_opts *o,
                         sl_status *st)
{
    *out = NULL;
    const char *prefix = o->prefix ? o->prefix : DEFAULT_PREFIX;
    if (!sl__redis_prefix_valid(prefix))
        return sl_status_set(st, SL_EINVAL,
                             "the Redis key prefix must be 1..%d letters, digits, '_', '-', '.'",
                             SL__REDIS_PREFIX_MAX);
    rengine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    int rc = sl__redis_url_parse(o->url ? o->url : "", &e->url, st);
    if (rc != SL_OK) {
        free(e);
        return rc;
    }
    e->base.ops = &redis_ops;
    e->base.loop = loop;
    uv_prepare_init(loop, &e->prep);
    e->prep.data = e;
    snprintf(e->prefix, sizeof e->prefix, "%s", prefix);
    sl__rscript_init(&e->script, sl__redis_script_src);
    sl__rscript_init(&e->append, sl__redis_append_src);
    e->nshards = e->url.n;
    e->log = o->log;
    if (sl__redis_ring_new(&e->ring, &e->url) != SL_OK || sl__map_new(&e->watched) != SL_OK ||
        (e->shards = calloc(e->nshards, sizeof *e->shards)) == NULL) {
        r_free(&e->base);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    char kc[KEY_MAX], kf[KEY_MAX];
    snprintf(kc, sizeof kc, "%s:channels", e->prefix);
    snprintf(kf, sizeof kf, "%s:format", e->prefix);
    for (size_t i = 0; i < e->nshards; i++) {
        rshard *s = &e->shards[i];
        char what[48];
        snprintf(what, sizeof what, e->nshards > 1 ? "engine shard %zu" : "engine", i);
        s->e = e;
        s->idx = i;
        /* The prefix was checked and the URL's db is 0..15: both always fit. */
        sl__redis_scope(s->scope, sizeof s->scope, e->prefix, e->url.shards[i].db);
        sl__redis_channel(s->ctlchan, sizeof s->ctlchan, e->prefix, e->url.shards[i].db, "ctl",
                          NULL);
        const char *check_argv[] = {kf, kc, "format", s->scope, ""};
        sl__rconn_opts co = {.addr = &e->url.shards[i],
                             .what = what,
                             .log = o->log,
                             .timeout_ms = o->timeout_ms,
                             .state_ud = s,
                             .check = &e->script,
                             .check_nkeys = 2,
                             .check_argc = 5,
                             .check_argv = check_argv,
                             .on_check = on_format};
        sl__rsub_opts so = {.addr = &e->url.shards[i],
                            .what = what,
                            .log = o->log,
                            .on_msg = on_sub_msg,
                            .on_state = on_sub_state,
                            .ud = s};
        if (sl__rconn_new(&s->conn, loop, &co) != SL_OK ||
            sl__rsub_new(&s->sub, loop, &so) != SL_OK) {
            r_free(&e->base);
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        ctl_subscribe(s);
    }
    *out = &e->base;
    return SL_OK;
}

int sl__redis_engine_is(const sl_engine *e)
{
    return e && e->ops == &redis_ops;
}

const sl__redis_url *sl__redis_engine_url(const sl_engine *e)
{
    return sl__redis_engine_is(e) ? &((const rengine *)e)->url : NULL;
}

sl__rconn *sl__redis_engine_conn(const sl_engine *e, size_t shard)
{
    if (!sl__redis_engine_is(e) || shard >= ((const rengine *)e)->nshards)
        return NULL;
    return ((const rengine *)e)->shards[shard].conn;
}

sl__rsub *sl__redis_engine_sub(const sl_engine *e, size_t shard)
{
    if (!sl__redis_engine_is(e) || shard >= ((const rengine *)e)->nshards)
        return NULL;
    return ((const rengine *)e)->shards[shard].sub;
}

const char *sl__redis_engine_prefix(const sl_engine *e)
{
    return sl__redis_engine_is(e) ? ((const rengine *)e)->prefix : NULL;
}
