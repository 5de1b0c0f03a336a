/* (A14) GET /metrics (server/routes_metrics.h). A scrape asks the engine for the channel list
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

static const sl_channel_info *find(sl_channel_info *v, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].id, id))
            return &v[i];
    return NULL;
}

static void render_channels(const sl__metrics *m, sl__mtext *t, sl_channel_info *v, size_t n)
{
    sl__mtext_family(t, "sluice_channels", "gauge", "Channels in the store.");
    sl__mtext_sample(t, "sluice_channels", NULL, (double)n);
    sl__mtext_family(t, "sluice_channel_depth", "gauge",
                     "Messages held, per channel: the deepest metrics_top_channels and those "
                     "matching metrics_channels.");
    sl__mtext_family(t, "sluice_channel_dead_letters", "gauge",
                     "Messages in a reported channel's dead-letter queue.");
    const sl_channel_info **order = n ? malloc(n * sizeof *order) : NULL;
    if (n && order == NULL) {
        t->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &v[i];
    if (n > 1)
        qsort(order, n, sizeof *order, by_depth);
    size_t shown = 0;
    for (size_t i = 0; i < n && shown < SL__METRICS_MAX_CHANNELS; i++) {
        const sl_channel_info *c = order[i];
        if (!(i < m->top_channels || picked_by_pattern(m, c->id)))
            continue;
        shown++;
        const char *l[] = {"channel", c->id, "kind", c->kind == SL_KIND_QUEUE ? "queue" : "topic",
                           NULL};
        sl__mtext_sample(t, "sluice_channel_depth", l, (double)c->depth);
        const sl_channel_info *d =
            c->dead_letter && *c->dead_letter ? find(v, n, c->dead_letter) : NULL;
        if (d) {
            const char *ld[] = {"channel", c->id, NULL};
            sl__mtext_sample(t, "sluice_channel_dead_letters", ld, (double)d->depth);
        }
    }
    free(order);
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
