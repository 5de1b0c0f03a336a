/* The context's lifetime and its small shared services: the clock, the audit sink, the engine in
 * use and the durability barrier transports answer through. */
#include "api/ctx.h"

#include "security/invoke.h"
#include "store/lmdb.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/time.h>

double sl_wallclock(void *ud_unused)
{
    (void)ud_unused;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int sl_ctx_new(sl_ctx **out, const sl_ctx_options *opts)
{
    return sl_ctx_open(out, opts, NULL);
}

/* The in-process durable context: the store without a loop, so each change commits before the
 * call that made it returns. */
static int open_data_dir(sl_ctx *ctx, const char *dir, sl_status *st)
{
    sl__lmdb_opts o = {.dir = dir};
    sl_engine *e;
    int rc = sl__lmdb_open(&ctx->kv, &o, st);
    if (rc == SL_OK)
        rc = sl__mem_engine_open(&e, ctx->kv, NULL, sl_ctx_now(ctx), st);
    if (rc == SL_OK)
        rc = sl__ctx_use_engine(ctx, e, st);
    if (rc == SL_OK)
        rc = sl__acl_attach(ctx->acl, ctx->kv, st);
    if (rc == SL_OK)
        rc = sl__invoke_attach(ctx->invoke, ctx->kv, st);
    return rc;
}

int sl_ctx_open(sl_ctx **out, const sl_ctx_options *opts, sl_status *st)
{
    sl_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    ctx->mode = opts && opts->mode != SL_MODE_INHERIT ? opts->mode : SL_MODE_OPEN;
    ctx->clock = opts && opts->clock ? opts->clock : sl_wallclock;
    ctx->clock_ud = opts ? opts->clock_ud : NULL;
    int rc = sl__mem_engine_new(&ctx->engine);
    if (rc == SL_OK)
        rc = sl__map_new(&ctx->channels);
    if (rc == SL_OK)
        rc = sl__acl_new(&ctx->acl);
    if (rc == SL_OK)
        rc = sl__invoke_new(&ctx->invoke);
    if (rc == SL_OK)
        rc = sl__authz_new(&ctx->authz);
    if (rc != SL_OK)
        sl_status_set(st, rc, NULL);
    if (rc == SL_OK && opts && opts->data_dir)
        rc = open_data_dir(ctx, opts->data_dir, st);
    if (rc != SL_OK) {
        sl_ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return SL_OK;
}

void sl_ctx_free(sl_ctx *ctx)
{
    if (ctx == NULL)
        return;
    sl__authz_free(ctx->authz); /* its regime answers what is under way while all else is here */
    ctx->authz = NULL;
    if (ctx->engine)
        ctx->engine->ops->free(ctx->engine);
    if (ctx->kv) /* after the engine, which writes through it */
        ctx->kv->ops->free(ctx->kv);
    sl__map_free(ctx->channels, sl__channel_info_free);
    sl__acl_free(ctx->acl);
    sl__invoke_free(ctx->invoke);
    free(ctx);
}

double sl_ctx_now(const sl_ctx *ctx)
{
    return ctx->now_holds ? ctx->now_held : ctx->clock(ctx->clock_ud);
}

double sl__ctx_hold_now(sl_ctx *ctx)
{
    if (ctx->now_holds++ == 0)
        ctx->now_held = ctx->clock(ctx->clock_ud);
    return ctx->now_held;
}

void sl__ctx_release_now(sl_ctx *ctx)
{
    if (ctx->now_holds > 0)
        ctx->now_holds--;
}

void sl__ctx_wait(sl_ctx *ctx, const int *done)
{
    unsigned holds = ctx->now_holds;
    ctx->now_holds = 0;
    sl__authz_wait(ctx, done);
    sl__engine_wait(ctx->engine, done);
    ctx->now_holds = holds;
}

void sl_ctx_set_clock(sl_ctx *ctx, sl_clock_fn fn, void *ud)
{
    ctx->clock = fn ? fn : sl_wallclock;
    ctx->clock_ud = ud;
}

void sl_ctx_set_mode(sl_ctx *ctx, sl_mode mode)
{
    ctx->mode = mode == SL_MODE_INHERIT ? SL_MODE_OPEN : mode;
}

sl_mode sl_ctx_mode(const sl_ctx *ctx)
{
    return ctx->mode;
}

void sl_ctx_set_read_max_bytes(sl_ctx *ctx, size_t max_bytes)
{
    ctx->read_max_bytes = max_bytes;
}

size_t sl_ctx_read_max_bytes(const sl_ctx *ctx)
{
    return ctx->read_max_bytes;
}

void sl_ctx_set_broker(sl_ctx *ctx, struct sl_broker *broker)
{
    ctx->broker = broker;
}

struct sl_broker *sl_ctx_broker(const sl_ctx *ctx)
{
    return ctx->broker;
}

void sl_ctx_set_audit(sl_ctx *ctx, sl_audit_fn fn, void *ud)
{
    ctx->audit = fn;
    ctx->audit_ud = ud;
}

int sl__audit_json(sl_ctx *ctx, sl_status *st, json_t *record)
{
    if (ctx->audit == NULL) {
        json_decref(record);
        return SL_OK;
    }
    json_t *o = json_object();
    if (o == NULL || record == NULL) {
        json_decref(o);
        json_decref(record);
        return sl_status_set(st, SL_ENOMEM, "audit record: out of memory");
    }
    json_object_set_new(o, "ts", json_real(sl_ctx_now(ctx)));
    json_object_update(o, record);
    json_decref(record);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text == NULL)
        return sl_status_set(st, SL_ENOMEM, "audit record: out of memory");
    sl_status local;
    int rc = ctx->audit(ctx->audit_ud, text, st ? st : &local);
    free(text);
    return rc;
}

int sl__audit(sl_ctx *ctx, sl_status *st, const char *event, ...)
{
    if (ctx->audit == NULL)
        return SL_OK;
    json_t *o = json_object();
    if (o == NULL)
        return sl_status_set(st, SL_ENOMEM, "audit record: out of memory");
    json_object_set_new(o, "event", json_string(event));
    va_list ap;
    va_start(ap, event);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (v)
            json_object_set_new(o, k, json_string(v));
    }
    va_end(ap);
    return sl__audit_json(ctx, st, o);
}

void sl_ctx_set_listener(sl_ctx *ctx, sl_event_fn fn, void *ud)
{
    ctx->listener = fn;
    ctx->listener_ud = ud;
}

void sl__ctx_emit(sl_ctx *ctx, const sl_event *ev)
{
    /* (A) Any grant changed, here or on another node (shared_state emits theirs): no cached
     * decision may outlive it. */
    if (ev->kind == SL_EVENT_ACL_CHANGED)
        sl__authz_invalidate(ctx, "acl");
    if (ctx->listener)
        ctx->listener(ctx->listener_ud, ev);
}

/* The settings a LIST request returned into a registry map (taken from e). SL_ENOMEM. */
static int register_all(sl__map *map, sl__eop *e)
{
    for (size_t i = 0; i < e->ninfos; i++) {
        sl_channel_info *info = malloc(sizeof *info);
        if (info == NULL || sl__map_put(map, e->infos[i].id, info, NULL) != SL_OK) {
            free(info);
            return SL_ENOMEM;
        }
        *info = e->infos[i];
        memset(&e->infos[i], 0, sizeof e->infos[i]);
    }
    return SL_OK;
}

/* ---- a shared engine's feed: other nodes' changes -------------------------------------------- */

/* A request the feed makes of the engine on its own (the registry's refresh). */
typedef struct feed_req {
    sl__eop op;
    sl_ctx *ctx;
    char id[SL_CHANNEL_ID_MAX + 1];
} feed_req;

static void feed_req_free(feed_req *r)
{
    sl__eop_clear(&r->op);
    free(r);
}

static void feed_submit(sl_ctx *ctx, sl__eop_kind kind, const char *id, sl__eop_done_fn done)
{
    feed_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return; /* the next request for the channel looks it up (channel.c) */
    r->ctx = ctx;
    r->op.kind = kind;
    if (id) {
        snprintf(r->id, sizeof r->id, "%s", id);
        r->op.channel = r->id;
    }
    r->op.done = done;
    r->op.ud = r;
    ctx->engine->ops->submit(ctx->engine, &r->op);
}

/* Another node created a channel: its settings into the registry (replacing a stale entry of
 * the same id, which a new epoch tells). */
static void feed_created(sl__eop *e)
{
    feed_req *r = e->ud;
    sl_ctx *ctx = r->ctx;
    const sl_channel_info *old = e->rc == SL_OK ? sl__map_get(ctx->channels, r->id) : NULL;
    if (e->rc == SL_OK && (old == NULL || strcmp(old->epoch, e->info.epoch) != 0)) {
        sl_channel_info *info = malloc(sizeof *info);
        if (info && sl__map_put(ctx->channels, r->id, info, sl__channel_info_free) == SL_OK) {
            *info = e->info;
            memset(&e->info, 0, sizeof e->info);
            sl__ctx_emit(
                ctx, &(sl_event){.kind = SL_EVENT_CHANNEL_CREATED, .channel = r->id, .info = info});
        } else {
            free(info);
        }
    }
    feed_req_free(r);
}

typedef struct gone_list {
    const sl__map *now;
    char **ids;
    size_t n, cap;
} gone_list;

static int collect_gone(void *ud, const char *id, void *value)
{
    (void)value;
    gone_list *g = ud;
    if (sl__map_get(g->now, id))
        return SL_OK;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        char **v = realloc(g->ids, cap * sizeof *v);
        if (v == NULL)
            return SL_ENOMEM;
        g->ids = v;
        g->cap = cap;
    }
    if ((g->ids[g->n] = strdup(id)) == NULL)
        return SL_ENOMEM;
    g->n++;
    return SL_OK;
}

/* The feed was interrupted: the registry is rebuilt from the store, the channels that went
 * meanwhile are reported deleted, and real time is told to recover. */
static void feed_listed(sl__eop *e)
{
    feed_req *r = e->ud;
    sl_ctx *ctx = r->ctx;
    sl__map *now = NULL;
    int rc = e->rc == SL_OK ? sl__map_new(&now) : e->rc;
    if (rc == SL_OK)
        rc = register_all(now, e);
    gone_list g = {.now = now};
    if (rc == SL_OK)
        rc = sl__map_each(ctx->channels, collect_gone, &g);
    if (rc == SL_OK) {
        sl__map_free(ctx->channels, sl__channel_info_free);
        ctx->channels = now;
        now = NULL;
        for (size_t i = 0; i < g.n; i++)
            sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_CHANNEL_DELETED, .channel = g.ids[i]});
    }
    for (size_t i = 0; i < g.n; i++)
        free(g.ids[i]);
    free(g.ids);
    sl__map_free(now, sl__channel_info_free);
    if (e->rc == SL_OK) /* (not when the engine is being freed) */
        sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_RESYNC});
    feed_req_free(r);
}

static void on_feed(void *ud, const sl_event *ev)
{
    sl_ctx *ctx = ud;
    switch (ev->kind) {
    case SL_EVENT_WRITE: {
        const sl_channel_info *info = sl__map_get(ctx->channels, ev->channel);
        if (info == NULL)
            return; /* nobody here can be subscribed to a channel this node does not know */
        sl_event out = *ev;
        out.info = info;
        sl__ctx_emit(ctx, &out);
        return;
    }
    case SL_EVENT_CHANNEL_DELETED:
        sl__map_del(ctx->channels, ev->channel, sl__channel_info_free);
        sl__ctx_emit(ctx, ev);
        return;
    case SL_EVENT_JOIN:
    case SL_EVENT_LEAVE:
        sl__ctx_emit(ctx, ev); /* the transports know which of their subscribers it concerns */
        return;
    case SL_EVENT_CHANNEL_CREATED:
        feed_submit(ctx, SL__EOP_INFO, ev->channel, feed_created);
        return;
    default:
        return;
    }
}

static void on_feed_resync(void *ud)
{
    feed_submit(ud, SL__EOP_LIST, NULL, feed_listed);
}

int sl__ctx_use_engine(sl_ctx *ctx, sl_engine *engine, sl_status *st)
{
    sl__eop op = {.kind = SL__EOP_LIST};
    int rc = sl__engine_call(engine, &op);
    if (rc == SL_OK)
        rc = register_all(ctx->channels, &op);
    sl__eop_clear(&op);
    if (rc != SL_OK) {
        engine->ops->free(engine);
        return sl_status_set(st, rc, "cannot load the channels: %s", sl_strerror(rc));
    }
    ctx->engine->ops->free(ctx->engine);
    ctx->engine = engine;
    if (engine->ops->watch) {
        engine->listener = on_feed;
        engine->resync = on_feed_resync;
        engine->listener_ud = ctx;
    }
    return SL_OK;
}

typedef struct sync_req {
    sl__eop op;
    sl__kv *kv; /* ctx->sync_kv when the sync began */
    sl__ctx_sync_fn fn;
    void *ud;
} sync_req;

static void sync_kv_done(void *ud, int rc)
{
    sync_req *r = ud;
    r->fn(r->ud, rc);
    free(r);
}

static void sync_done(sl__eop *op)
{
    sync_req *r = op->ud;
    if (op->rc == SL_OK && r->kv != NULL) {
        r->kv->ops->barrier(r->kv, sync_kv_done, r);
        return;
    }
    r->fn(r->ud, op->rc);
    free(r);
}

void sl__ctx_set_sync_kv(sl_ctx *ctx, sl__kv *kv)
{
    ctx->sync_kv = kv;
}

void sl__ctx_sync(sl_ctx *ctx, sl__ctx_sync_fn fn, void *ud)
{
    sync_req *r = calloc(1, sizeof *r);
    if (r == NULL) {
        fn(ud, SL_ENOMEM);
        return;
    }
    r->op.kind = SL__EOP_SYNC;
    r->op.done = sync_done;
    r->op.ud = r;
    r->fn = fn;
    r->ud = ud;
    r->kv = ctx->sync_kv;
    ctx->engine->ops->submit(ctx->engine, &r->op);
}
