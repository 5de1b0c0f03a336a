/* Where sluiced's state lives: the embedded LMDB store (its directory, durability, the audit log's
 * fsync before each commit) or the Redis engine with the kv on its first shard (a node starts
 * only once it reaches every shard), opened before anything that keeps state attaches to it; then
 * the channels and runtime grants read back from it into the context. --check-config only checks
 * what can be known without opening it. Part of sluiced only (server/sluiced.h). */
#include "server/sluiced.h"

#include "api/ctx.h"
#include "security/invoke.h"
#include "store/lmdb.h"
#include "store/redis_engine.h"
#include "store/redis_kv.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int open_redis(server *s, const sl__config *cfg, sl_status *st);

/* Where the security stores keep their state: the embedded store, or the Redis kv. */
sl__kv *sl__sluiced_state_kv(const server *s)
{
    return s->kv ? s->kv : s->rkv;
}

/* On the store's commit thread, before each commit's fsync. */
static int audit_sync(void *ud)
{
    server *s = ud;
    return sl_audit_log_sync(s->audit);
}

/* The embedded store's directory: data_dir, else ./sluice-data (docs/CONFIG.md). */
const char *sl__sluiced_data_dir(const sl__config *cfg)
{
    return cfg->data_dir ? cfg->data_dir : "sluice-data";
}

/* --check-config: what can be known of the store without opening it (opening would
 * take its lock, create it, or reach Redis). */
static int check_store(const sl__config *cfg, sl_status *st)
{
    sl__durability d;
    if (sl__durability_parse(cfg->durability, &d) != SL_OK)
        return sl_status_set(st, SL_ECONFIG, "durability must be sync, batch or none");
    struct stat sb;
    if (!strcmp(cfg->engine, "lmdb") && stat(sl__sluiced_data_dir(cfg), &sb) == 0 &&
        !S_ISDIR(sb.st_mode))
        return sl_status_set(st, SL_ECONFIG, "data_dir %s is not a directory",
                             sl__sluiced_data_dir(cfg));
    return SL_OK;
}

/* The store, opened first: every store that keeps state attaches to it. */
int sl__sluiced_open_store(server *s, const sl__config *cfg, sl_status *st)
{
    if (s->checking)
        return check_store(cfg, st);
    if (strcmp(cfg->engine, "redis") == 0)
        return open_redis(s, cfg, st);
    if (strcmp(cfg->engine, "lmdb") != 0)
        return SL_OK;
    sl__lmdb_opts o = {.dir = sl__sluiced_data_dir(cfg),
                       .loop = s->loop,
                       .batch_ms = cfg->durability_batch_ms,
                       .log = &s->sink};
    if (sl__durability_parse(cfg->durability, &o.durability) != SL_OK)
        return sl_status_set(st, SL_ECONFIG, "durability must be sync, batch or none");
    int rc = sl__lmdb_open(&s->kv, &o, st);
    if (rc == SL_OK && s->audit)
        rc = sl__lmdb_add_sync_hook(s->kv, audit_sync, s);
    return rc;
}

static void on_wait_tick(uv_timer_t *t)
{
    (void)t; /* only wakes the loop */
}

int sl__sluiced_wait(server *s, int (*done)(void *ud), void *ud, unsigned ms)
{
    uv_timer_t tick;
    uv_timer_init(s->loop, &tick);
    uv_timer_start(&tick, on_wait_tick, 20, 20);
    uint64_t deadline = uv_now(s->loop) + ms;
    while (!done(ud) && uv_now(s->loop) < deadline)
        uv_run(s->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(s->loop, UV_RUN_NOWAIT);
    return done(ud);
}

/* How many of the engine's shards answer, counted in order: all of them when it equals their
 * number. */
static size_t shards_up(sl_engine *e)
{
    size_t n = sl__redis_engine_url(e)->n, up = 0;
    while (up < n && sl__rconn_up(sl__redis_engine_conn(e, up)))
        up++;
    return up;
}

static int all_shards_up(void *ud)
{
    return shards_up(ud) == sl__redis_engine_url(ud)->n;
}

/* A node starts only once it reaches every Redis shard (at most 10 s): its configured channels
 * and grants go there. Later outages fail requests closed and heal by themselves. */
static int wait_redis(server *s, sl_engine *e, sl_status *st)
{
    if (sl__sluiced_wait(s, all_shards_up, e, 10000))
        return SL_OK;
    const sl__redis_url *u = sl__redis_engine_url(e);
    char name[SL__REDIS_HOST_MAX + 32];
    sl__redis_addr_name(&u->shards[shards_up(e)], name, sizeof name);
    return sl_status_set(st, SL_EUNAVAIL, "cannot reach the Redis engine at %s", name);
}

/* The Redis engine, connected, and the kv on its first shard for the security stores. */
static int open_redis(server *s, const sl__config *cfg, sl_status *st)
{
    sl__redis_engine_opts o = {
        .url = cfg->engine_url, .prefix = cfg->engine_prefix, .log = &s->sink};
    int rc = sl__redis_engine_new(&s->redis, s->loop, &o, st);
    if (rc == SL_OK)
        rc = wait_redis(s, s->redis, st);
    if (rc == SL_OK)
        rc = sl__redis_kv_new(&s->rkv, s->loop, &sl__redis_engine_url(s->redis)->shards[0],
                              sl__redis_engine_conn(s->redis, 0), sl__redis_engine_prefix(s->redis),
                              st);
    if (rc == SL_OK)
        sl__redis_kv_set_log(s->rkv, &s->sink);
    return rc;
}

/* Channels, then runtime grants, from the store; the configuration is applied on top. */
int sl__sluiced_use_store(server *s, const sl__config *cfg, sl_status *st)
{
    const char *data_dir = sl__sluiced_data_dir(cfg);
    if (s->redis) { /* the context owns the engine from here on */
        sl_engine *e = s->redis;
        s->redis = NULL;
        int rc = sl__ctx_use_engine(s->ctx, e, st);
        if (rc == SL_OK && (rc = sl__acl_attach(s->ctx->acl, s->rkv, st)) == SL_OK)
            rc = sl__invoke_attach(s->ctx->invoke, s->rkv, st);
        return rc;
    }
    if (s->kv == NULL)
        return SL_OK;
    sl_engine *e;
    int rc = sl__mem_engine_open(&e, s->kv, s->loop, sl_ctx_now(s->ctx), st);
    if (rc == SL_OK)
        rc = sl__ctx_use_engine(s->ctx, e, st);
    if (rc == SL_OK)
        rc = sl__acl_attach(s->ctx->acl, s->kv, st);
    if (rc == SL_OK)
        rc = sl__invoke_attach(s->ctx->invoke, s->kv, st);
    if (rc != SL_OK) { /* say which directory */
        char msg[sizeof st->message];
        snprintf(msg, sizeof msg, "%s", st->message);
        sl_status_set(st, rc, "data directory %s: %s", data_dir, msg);
    }
    return rc;
}
