/* GET /metrics: the Prometheus text of the context's metrics registry (core/metrics.h) plus
 * what is only known at scrape time: the channels (the top N by depth, and those matching the
 * opt-in patterns). The route is the registry operation metrics.read, authorised like every
 * other; a metrics listener (--listen HOST:PORT,metrics) calls sl__metrics_scrape itself, without
 * credentials (docs/OPERATIONS.md "Metrics"). */
#ifndef SLUICE_SERVER_ROUTES_METRICS_H
#define SLUICE_SERVER_ROUTES_METRICS_H

#include <stddef.h>

#include <sluice/sluice.h>

#include "server/router.h"

#define SL__METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Channels reported one by one at most (top_channels plus pattern matches together). */
#define SL__METRICS_MAX_CHANNELS 1000

/* The route's asynchronous handler (sl__route.start). */
void sl__metrics_route_start(sl__job *job);

/* The handler of a metrics listener (--listen HOST:PORT,metrics): GET /metrics answered without
 * credentials, anything else 404. */
void sl__metrics_listener_serve(sl_ctx *ctx, sl_http_request *req);

/* Collectors of the store's figures at scrape time (sluiced adds the one of its engine): the
 * embedded store kv (borrowed; its data file in data_dir, whose size is reported), or a Redis
 * engine (borrowed: its shards' round trips). Both must outlive the registry's renders. SL_OK,
 * SL_ENOMEM, SL_ELIMIT. */
struct sl__kv;
struct sl__metrics;
struct sl_engine;
int sl__metrics_add_lmdb(struct sl__metrics *m, struct sl__kv *kv, const char *data_dir);
int sl__metrics_add_redis(struct sl__metrics *m, struct sl_engine *e);

/* The whole text: fn(ud, rc, text, len) once, now or later from the loop; text is malloc'd and
 * the callee's (NULL when rc is not SL_OK). SL_ENOENT when ctx keeps no metrics. */
typedef void (*sl__metrics_scrape_fn)(void *ud, int rc, char *text, size_t len);
void sl__metrics_scrape(sl_ctx *ctx, sl__metrics_scrape_fn fn, void *ud);

#endif
