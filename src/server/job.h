/* One HTTP request's job inside the router (server/router.c), for the files that fill a channel
 * API request from it and render its outcome (server/routes_channels.c). Everyone else reads a
 * job through router.h's sl__job_* accessors. */
#ifndef SLUICE_SERVER_JOB_H
#define SLUICE_SERVER_JOB_H

#include <jansson.h>

#include "api/ctx.h"
#include "core/message.h"
#include "server/router.h"

struct sl__job {
    sl__router *r;
    sl_http_request *req;
    const sl__route *route;
    const char *res; /* resource, or NULL */
    char resource[SL_CHANNEL_ID_MAX + 1];
    sl_identity who;
    sl_authn_request view; /* what the authenticators see of req */
    sl_status st;
    sl__response resp;
    sl__router_done_fn done;
    void *ud;
    /* channel routes: the request to the channel API and what its inputs borrow */
    sl__chop chop;
    json_t *body;
    const char **ids;
    sl_write w;
    sl_channel_opts opts;
    char item[1][SL__MSGID_LEN + 1];
    char after[128];
    /* envelope and batch writes */
    sl_write *ws;
    char (*items)[SL__MSGID_LEN + 1];
    char *meta; /* the metadata texts, each NUL-terminated */
    double t0;  /* arrival (the clock read authentication uses too) */
    sl__job *next_spare; /* in the router's spare list, once finished */
};

#endif
