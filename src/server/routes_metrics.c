/* GET /metrics (server/routes_metrics.h). A scrape asks the engine for the channel list
 * (depths included: one request, answered from memory by the embedded engine), renders the
 * registry, then the channels: the deepest top_channels and those matching the opt-in patterns,
 * never more than SL__METRICS_MAX_CHANNELS, so the label set stays bounded whatever the number
 * of channels. Dead letters per channel are the depth of its dead-letter queue, when that is a
 * channel of the list. */
#include "server/routes_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "core/map.h"
#include "core/metrics.h"
#include "store/engine.h"
#include "store/lmdb.h"
#include "store/redis_engine.h"

#include <stdio.h>
#include <sys/stat.h>

typedef struct scrape {
    sl_ctx *ctx;
    sl__metrics_scrape_fn fn;
    void *ud;
    sl__eop op;
} scrape;

static int by_depth(const void *a, const void *b)
{
    const sl_channel_info *x = *(const sl_channel_info *const *)a;
    const sl_channel_info *y = *(const sl_channel_info *const *)b;
    if (x->depth != y->depth)
        return x->depth < y->depth ? 1 : -1;
    return strcmp(x->id, y->id);
}

static int picked_by_pattern(const sl__metrics *m, const char *id)
{
    for (size_t i = 0; i < m->npatterns; i++)
        if (sl_pattern_match(m->patterns[i], id))
            return 1;
    return 0;
}

/* The channels reported one by one, deepest first (at most SL__METRICS_MAX_CHANNELS): *out
 * malloc'd, the caller's; SL_ENOMEM. */
static int pick_channels(const sl__metrics *m, sl_channel_info *v, size_t n,
                         const sl_channel_info ***out, size_t *nout)
{
    const sl_channel_info **order = malloc((n ? n : 1) * sizeof *order);
    if (order == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = &v[i];
    if (n > 1)
        qsort(order, n, sizeof *order, by_depth);
    size_t k = 0;
    for (size_t i = 0; i < n && k < SL__METRICS_MAX_CHANNELS; i++)
        if (i < m->top_channels || picked_by_pattern(m, order[i]->id))
            order[k++] = order[i];
    *out = order;
    *nout = k;
    return SL_OK;
}

static void render_channels(const sl__metrics *m, sl__mtext *t, sl_channel_info *v, size_t n)
{
    sl__mtext_family(t, "sluice_channels", "gauge", "Channels in the store.");
    sl__mtext_sample(t, "sluice_channels", NULL, (double)n);
    const sl_channel_info **shown;
    size_t k;
    if (pick_channels(m, v, n, &shown, &k) != SL_OK) {
        t->oom = 1;
        return;
    }
    sl__mtext_family(t, "sluice_channel_depth", "gauge",
                     "Messages held, per channel: the deepest metrics_top_channels and those "
                     "matching metrics_channels.");
    for (size_t i = 0; i < k; i++) {
        const char *l[] = {"channel", shown[i]->id, "kind",
                           shown[i]->kind == SL_KIND_QUEUE ? "queue" : "topic", NULL};
        sl__mtext_sample(t, "sluice_channel_depth", l, (double)shown[i]->depth);
    }
    sl__mtext_family(t, "sluice_channel_inflight", "gauge",
                     "Messages claimed and not yet acknowledged, per queue reported above.");
    for (size_t i = 0; i < k; i++)
        if (shown[i]->kind == SL_KIND_QUEUE) {
            const char *l[] = {"channel", shown[i]->id, NULL};
            sl__mtext_sample(t, "sluice_channel_inflight", l, (double)shown[i]->in_flight);
        }
    sl__mtext_family(t, "sluice_channel_dead_letters", "gauge",
                     "Messages in the dead-letter queue of a channel reported above.");
    for (size_t i = 0; i < k; i++) {
        const char *dl = shown[i]->dead_letter;
        const sl_channel_info *d = dl && *dl ? sl__eop_list_find(v, n, dl) : NULL;
        if (d) {
            const char *l[] = {"channel", shown[i]->id, NULL};
            sl__mtext_sample(t, "sluice_channel_dead_letters", l, (double)d->depth);
        }
    }
    free(shown);
}

static void listed(sl__eop *op)
{
    scrape *s = op->ud;
    sl__metrics *m = s->ctx->metrics;
    sl__mtext t = {0};
    int rc = sl__metrics_render(m, &t, sl_ctx_now(s->ctx));
    if (rc == SL_OK && op->rc == SL_OK) {
        render_channels(m, &t, op->infos, op->ninfos);
    } else if (rc == SL_OK) { /* the store could not list: everything else still goes out */
        sl__mtext_family(&t, "sluice_channels_listing_failed", "gauge",
                         "1 when this scrape could not list the channels.");
        sl__mtext_sample(&t, "sluice_channels_listing_failed", NULL, 1);
    }
    if (t.oom)
        rc = SL_ENOMEM;
    sl__eop_clear(op);
    if (rc != SL_OK) {
        sl__mtext_free(&t);
        s->fn(s->ud, rc, NULL, 0);
    } else {
        s->fn(s->ud, SL_OK, t.data, t.len);
    }
    free(s);
}

void sl__metrics_scrape(sl_ctx *ctx, sl__metrics_scrape_fn fn, void *ud)
{
    scrape *s = ctx && ctx->metrics ? calloc(1, sizeof *s) : NULL;
    if (s == NULL) {
        fn(ud, ctx && ctx->metrics ? SL_ENOMEM : SL_ENOENT, NULL, 0);
        return;
    }
    s->ctx = ctx;
    s->fn = fn;
    s->ud = ud;
    s->op.kind = SL__EOP_LIST;
    s->op.now = sl_ctx_now(ctx);
    s->op.done = listed;
    s->op.ud = s;
    ctx->engine->ops->submit(ctx->engine, &s->op);
}

static void route_scraped(void *ud, int rc, char *text, size_t len)
{
    sl__job *job = ud;
    sl__response *resp = sl__job_response(job);
    if (rc == SL_OK) {
        resp->status = 200;
        resp->body = text;
        resp->body_len = len;
        resp->content_type = SL__METRICS_CONTENT_TYPE;
    }
    sl__job_finish(job, rc);
}

void sl__metrics_route_start(sl__job *job)
{
    sl__metrics_scrape(sl__job_router(job)->ctx, route_scraped, job);
}

/* ---- the metrics listener ------------------------------------------------------------------- */

static void listener_scraped(void *ud, int rc, char *text, size_t len)
{
    sl_http_request *req = ud;
    static const char un[] = "{\"error\":\"unavailable\",\"message\":\"metrics unavailable\"}";
    if (rc == SL_OK)
        sl_http_respond(req, 200, NULL, SL__METRICS_CONTENT_TYPE, text, len);
    else
        sl_http_respond(req, 503, "Retry-After: 1\r\n", "application/json", un, sizeof un - 1);
    free(text);
}

void sl__metrics_listener_serve(sl_ctx *ctx, sl_http_request *req)
{
    static const char nf[] = "{\"error\":\"not_found\",\"message\":\"this listener serves "
                             "GET /metrics only\"}";
    if (strcmp(req->method, "GET") != 0 || req->path_len != 8 || memcmp(req->path, "/metrics", 8))
        sl_http_respond(req, 404, NULL, "application/json", nf, sizeof nf - 1);
    else
        sl__metrics_scrape(ctx, listener_scraped, req);
}

/* ---- the stores' figures -------------------------------------------------------------------- */

typedef struct lmdb_src {
    sl__kv *kv;
    char file[]; /* DIR/data.mdb */
} lmdb_src;

static void collect_lmdb(void *ud, sl__mtext *t)
{
    const lmdb_src *src = ud;
    sl__lmdb_stats ls;
    sl__lmdb_stats_get(src->kv, &ls);
    sl__mtext_family(t, "sluice_store_commits_total", "counter", "Group commits of the store.");
    sl__mtext_sample(t, "sluice_store_commits_total", NULL, (double)ls.commits);
    sl__mtext_family(t, "sluice_store_syncs_total", "counter", "fsyncs of the store.");
    sl__mtext_sample(t, "sluice_store_syncs_total", NULL, (double)ls.syncs);
    sl__mtext_family(t, "sluice_store_commit_failures_total", "counter",
                     "Commits that failed (retried; a full disk answers 507 meanwhile).");
    sl__mtext_sample(t, "sluice_store_commit_failures_total", NULL, (double)ls.failed);
    sl__mtext_family(t, "sluice_store_map_size_bytes", "gauge", "The LMDB map size.");
    sl__mtext_sample(t, "sluice_store_map_size_bytes", NULL, (double)ls.map_size);
    struct stat fs; /* a local file's inode: nothing worth a thread */
    if (stat(src->file, &fs) == 0) {
        sl__mtext_family(t, "sluice_store_file_bytes", "gauge",
                         "Disk space the store's data file takes (allocated blocks).");
        sl__mtext_sample(t, "sluice_store_file_bytes", NULL, (double)fs.st_blocks * 512.0);
    }
    sl__mtext_family(t, "sluice_store_sync_duration_seconds", "histogram",
                     "Time of each store job that synced (a sync-mode commit with its fsync, or a "
                     "batch-mode periodic fsync).");
    sl__mtext_histo(t, "sluice_store_sync_duration_seconds", NULL, NULL, &ls.sync_seconds);
}

int sl__metrics_add_lmdb(sl__metrics *m, sl__kv *kv, const char *data_dir)
{
    size_t n = strlen(data_dir) + sizeof "/data.mdb";
    lmdb_src *src = malloc(sizeof *src + n);
    if (src == NULL)
        return SL_ENOMEM;
    src->kv = kv;
    snprintf(src->file, n, "%s/data.mdb", data_dir);
    return sl__metrics_add_collector(m, collect_lmdb, src, free);
}

/* Per shard (at most SL__REDIS_SHARDS_MAX): a bounded label set. */
static void collect_redis(void *ud, sl__mtext *t)
{
    sl_engine *e = ud;
    const sl__redis_url *u = sl__redis_engine_url(e);
    sl__rconn_stats rs[SL__REDIS_SHARDS_MAX];
    char names[SL__REDIS_SHARDS_MAX][SL__REDIS_HOST_MAX + 32];
    for (size_t i = 0; i < u->n; i++) {
        sl__rconn_stats_get(sl__redis_engine_conn(e, i), &rs[i]);
        sl__redis_addr_name(&u->shards[i], names[i], sizeof names[i]);
    }
    sl__mtext_family(t, "sluice_redis_round_trips_total", "counter",
                     "Commands the Redis engine's shard answered (the security state's included).");
    for (size_t i = 0; i < u->n; i++) {
        const char *l[] = {"shard", names[i], NULL};
        sl__mtext_sample(t, "sluice_redis_round_trips_total", l, (double)rs[i].round_trips);
    }
    sl__mtext_family(t, "sluice_redis_failures_total", "counter",
                     "Commands that got no answer from the shard (down, dropped or overdue).");
    for (size_t i = 0; i < u->n; i++) {
        const char *l[] = {"shard", names[i], NULL};
        sl__mtext_sample(t, "sluice_redis_failures_total", l, (double)rs[i].failures);
    }
    sl__mtext_family(t, "sluice_redis_round_trip_seconds", "histogram",
                     "Time from sending a command to its answer (the loop's clock: millisecond "
                     "resolution).");
    for (size_t i = 0; i < u->n; i++)
        sl__mtext_histo(t, "sluice_redis_round_trip_seconds", "shard", names[i], &rs[i].seconds);
}

int sl__metrics_add_redis(sl__metrics *m, sl_engine *e)
{
    return sl__metrics_add_collector(m, collect_redis, e, NULL);
}
