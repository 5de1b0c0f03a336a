/* The server API's handlers (docs/OPERATIONS.md "Server API"). Access was decided by the router
 * from each route's registry operation; what is left here is input checking, the workspace scope
 * (an administrator sees and acts on its own workspace's connections and channels only), the
 * audit record of each change (written before the change: an action nobody could audit is not
 * taken) and rendering. The sessions and the hub belong to server/wsession.c; this file only
 * calls its small interface (server/wsession.h, implemented in ws_view.c). */
#include "server/routes_server.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "security/workspace.h"
#include "server/hub.h"
#include "server/params.h"
#include "server/wsession.h"

/* ---- input ------------------------------------------------------------------------------------
 */

static int conn_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SL__SRV_CONN_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int principal_ok(const char *p)
{
    return sl_principal_valid(p, strlen(p));
}

int sl__srv_parse_disconnect(json_t *body, sl__srv_disconnect *d, sl_status *st)
{
    static const char *const fields[] = {"principal", "connection", "code", "reason", NULL};
    memset(d, 0, sizeof *d);
    d->code = SL__SRV_CODE_DEFAULT;
    if (!json_is_object(body))
        return sl_status_set(st, SL_EJSON, "the body must be a JSON object");
    int rc = sl__only_fields(body, fields, st);
    if (rc != SL_OK)
        return rc;
    int p = sl__get_string(body, "principal", &d->principal, st);
    int c = sl__get_string(body, "connection", &d->connection, st);
    int why = sl__get_string(body, "reason", &d->reason, st);
    if (p < 0 || (p && !principal_ok(d->principal)))
        return sl__fail(st, SL_EINVAL, "principal must be a valid principal name");
    if (c < 0 || (c && !conn_id_valid(d->connection)))
        return sl__fail(st, SL_EINVAL,
                        "connection must be a connection id (as GET /server/connections lists)");
    if (!p && !c)
        return sl__fail(st, SL_EINVAL, "the body names a principal or a connection");
    if (why < 0 || (why && strlen(d->reason) > SL__SRV_REASON_MAX))
        return sl__fail(st, SL_EINVAL, "reason must be a string of at most 123 bytes");
    json_t *code = json_object_get(body, "code");
    if (code && !json_is_null(code)) {
        json_int_t v = json_is_integer(code) ? json_integer_value(code) : 0;
        if (v < 3000 || v > 4999)
            return sl__fail(st, SL_EINVAL,
                            "code must be an integer from 3000 to 4999 (a Centrifugo disconnect "
                            "code)");
        d->code = (int)v;
    }
    return SL_OK;
}

int sl__srv_parse_unsubscribe(json_t *body, const char **principal, const char **channel,
                              sl_status *st)
{
    static const char *const fields[] = {"principal", "channel", NULL};
    if (!json_is_object(body))
        return sl_status_set(st, SL_EJSON, "the body must be a JSON object");
    int rc = sl__only_fields(body, fields, st);
    if (rc != SL_OK)
        return rc;
    *principal = *channel = NULL;
    if (sl__get_string(body, "principal", principal, st) != 1 || !principal_ok(*principal))
        return sl__fail(st, SL_EINVAL, "principal must be a valid principal name");
    if (sl__get_string(body, "channel", channel, st) != 1 ||
        !sl_channel_id_valid(*channel, strlen(*channel)))
        return sl_status_set(st, SL_EBADID, "channel must be a valid channel id");
    return SL_OK;
}

static int need_wss(const sl__router *r, sl_status *st)
{
    return r->wss ? SL_OK
                  : sl_status_set(st, SL_ENOENT, "this server has no WebSocket endpoint running");
}

/* ---- GET /server/connections ------------------------------------------------------------------
 */

typedef struct listing {
    json_t *arr;
    size_t limit;
    int more;
} listing;

static int list_one(void *ud, const sl__wss_conn_view *v)
{
    listing *l = ud;
    if (json_array_size(l->arr) >= l->limit) {
        l->more = 1;
        return 1;
    }
    json_t *subs = json_array();
    for (size_t i = 0; subs && i < v->nchannels; i++)
        json_array_append_new(subs, json_string(sl__ws_name(v->channels[i])));
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:o}", "id", v->id, "principal", v->principal,
                  "workspace", v->workspace, "remote", v->remote, "transport", v->transport,
                  "since", v->since, "subscriptions", subs ? subs : json_array());
    if (o == NULL || json_array_append_new(l->arr, o) != 0)
        return SL_ENOMEM;
    return 0;
}

int sl__h_server_connections(sl__router *r, const sl_identity *who, const sl_http_request *req,
                             const char *res, sl__response *resp, sl_status *st)
{
    (void)res;
    int rc = need_wss(r, st);
    if (rc != SL_OK)
        return rc;
    char principal[SL_PRINCIPAL_MAX + 1], num[16];
    int has = sl__http_query_get(req, "principal", principal, sizeof principal);
    if (has < 0 || (has == 1 && !principal_ok(principal)))
        return sl__fail(st, SL_EINVAL, "principal must be a valid principal name");
    listing l = {json_array(), SL__SRV_LIST_DEFAULT, 0};
    int lim = sl__http_query_get(req, "limit", num, sizeof num);
    if (lim != 0) {
        char *end = NULL;
        long v = lim == 1 ? strtol(num, &end, 10) : 0;
        if (lim < 0 || end == num || *end || v < 1 || v > SL__SRV_LIST_MAX) {
            json_decref(l.arr);
            return sl__fail(st, SL_EINVAL, "limit must be an integer from 1 to 10000");
        }
        l.limit = (size_t)v;
    }
    if (l.arr == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    rc = sl__wss_conns(r->wss, who->workspace, has == 1 ? principal : NULL, list_one, &l);
    if (rc < 0) {
        json_decref(l.arr);
        return sl_status_set(st, rc, NULL);
    }
    size_t n = json_array_size(l.arr);
    sl__response_json(
        resp, 200,
        json_pack("{s:o, s:I, s:b}", "connections", l.arr, "count", (json_int_t)n, "more", l.more));
    return SL_OK;
}

/* ---- POST /server/disconnect ------------------------------------------------------------------
 */

int sl__resolve_server_disconnect(sl__router *r, const sl_http_request *req, const sl_identity *who,
                                  char *res, size_t cap, sl_status *st)
{
    json_t *body;
    sl__srv_disconnect d;
    int rc = sl__parse_body(req, &body, st);
    if (rc == SL_OK)
        rc = sl__srv_parse_disconnect(body, &d, st);
    if (rc == SL_OK) {
        /* The operation's resource is the principal whose connections end. A connection id that
         * names nobody here is decided as "*" (an administrator's question), so that whether a
         * connection exists is told only to those allowed to act on it. */
        const char *p = d.principal;
        if (p == NULL && r->wss)
            p = sl__wss_conn_principal(r->wss, who->workspace, d.connection);
        snprintf(res, cap, "%s", p ? p : "*");
    }
    json_decref(body);
    return rc;
}

int sl__h_server_disconnect(sl__router *r, const sl_identity *who, const sl_http_request *req,
                            const char *res, sl__response *resp, sl_status *st)
{
    (void)res;
    json_t *body;
    sl__srv_disconnect d;
    int rc = need_wss(r, st);
    if (rc == SL_OK)
        rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    rc = sl__srv_parse_disconnect(body, &d, st);
    const char *ws = who->workspace;
    size_t n = rc == SL_OK ? sl__wss_count(r->wss, ws, d.principal, d.connection) : 0;
    if (rc == SL_OK && d.connection && n == 0)
        rc = sl_status_set(st, SL_ENOENT, "no such connection");
    if (rc == SL_OK) {
        const char *principal =
            d.principal ? d.principal : sl__wss_conn_principal(r->wss, ws, d.connection);
        char code[16], count[24];
        snprintf(code, sizeof code, "%d", d.code);
        snprintf(count, sizeof count, "%zu", n);
        rc = sl__audit(r->ctx, st, "server.disconnect", "actor", who->principal, "principal",
                       principal, "connection", d.connection, "code", code, "reason", d.reason,
                       "connections", count, "workspace", ws[0] ? ws : NULL, NULL);
    }
    if (rc == SL_OK) {
        n = sl__wss_disconnect(r->wss, ws, d.principal, d.connection, d.code, d.reason);
        sl__response_json(resp, 200, json_pack("{s:I}", "disconnected", (json_int_t)n));
    }
    json_decref(body);
    return rc;
}

/* ---- POST /server/unsubscribe -----------------------------------------------------------------
 */

int sl__resolve_server_unsubscribe(sl__router *r, const sl_http_request *req,
                                   const sl_identity *who, char *res, size_t cap, sl_status *st)
{
    (void)r;
    (void)who;
    json_t *body;
    const char *principal, *channel;
    int rc = sl__parse_body(req, &body, st);
    if (rc == SL_OK)
        rc = sl__srv_parse_unsubscribe(body, &principal, &channel, st);
    if (rc == SL_OK) /* the channel, as the caller names it: the workspace step qualifies it */
        snprintf(res, cap, "%s", channel);
    json_decref(body);
    return rc;
}

int sl__h_server_unsubscribe(sl__router *r, const sl_identity *who, const sl_http_request *req,
                             const char *res, sl__response *resp, sl_status *st)
{
    (void)res;
    json_t *body;
    const char *principal, *channel;
    int rc = need_wss(r, st);
    if (rc == SL_OK)
        rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    rc = sl__srv_parse_unsubscribe(body, &principal, &channel, st);
    char q[SL__QID_SIZE];
    if (rc == SL_OK && sl__ws_qualify(who->workspace, channel, q, sizeof q) != SL_OK)
        rc = sl_status_set(st, SL_EBADID, "channel must be a valid channel id");
    if (rc == SL_OK)
        rc = sl__audit(r->ctx, st, "server.unsubscribe", "actor", who->principal, "principal",
                       principal, "channel", channel, "workspace",
                       who->workspace[0] ? who->workspace : NULL, NULL);
    if (rc == SL_OK) {
        size_t n = sl__wss_unsubscribe(r->wss, who->workspace, principal, q, NULL);
        sl__response_json(resp, 200, json_pack("{s:I}", "unsubscribed", (json_int_t)n));
    }
    json_decref(body);
    return rc;
}

/* ---- GET /server/presence/{id}[/stats] --------------------------------------------------------
 */

typedef struct presence_q {
    sl__job *job;
    int stats;
    char q[SL__QID_SIZE];
} presence_q;

static void presence_end(presence_q *p, int rc)
{
    sl__job *job = p->job;
    free(p);
    sl__job_finish(job, rc);
}

/* Renders n entries (clients[i], users[i]) the way the Centrifugo commands count them: every
 * client, and distinct users. */
static void presence_render(presence_q *p, const char *const *clients, const char *const *users,
                            size_t n)
{
    sl__response *resp = sl__job_response(p->job);
    const char *name = sl__ws_name(p->q);
    if (p->stats) {
        size_t distinct = 0;
        for (size_t i = 0; i < n; i++) {
            size_t j = 0;
            while (j < i && strcmp(users[j], users[i]) != 0)
                j++;
            distinct += j == i;
        }
        sl__response_json(resp, 200,
                          json_pack("{s:s, s:I, s:I}", "channel", name, "num_clients",
                                    (json_int_t)n, "num_users", (json_int_t)distinct));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:s, s:s}", "client", clients[i], "user", sl__ws_name(users[i])));
    sl__response_json(resp, 200,
                      json_pack("{s:s, s:o}", "channel", name, "clients", arr ? arr : json_null()));
}

static void presence_got(void *ud, int rc, const sl_message_list *l)
{
    presence_q *p = ud;
    if (rc != SL_OK) {
        sl_status_set(sl__job_status(p->job), rc, "presence could not be read from the store");
        presence_end(p, rc);
        return;
    }
    const char **v = l->len ? calloc(2 * l->len, sizeof *v) : NULL;
    if (l->len && v == NULL) {
        presence_end(p, SL_ENOMEM);
        return;
    }
    for (size_t i = 0; i < l->len; i++) {
        v[i] = l->items[i].origin ? l->items[i].origin : "";
        v[l->len + i] = l->items[i].sender_id ? l->items[i].sender_id : "";
    }
    presence_render(p, v, v ? v + l->len : NULL, l->len);
    free(v);
    presence_end(p, SL_OK);
}

static void presence_looked_up(void *ud)
{
    presence_q *p = ud;
    sl__router *r = sl__job_router(p->job);
    sl_status *st = sl__job_status(p->job);
    const sl_channel_info *info = sl__map_get(r->ctx->channels, p->q);
    if (info == NULL) {
        sl_status_set(st, SL_ENOENT, "no such channel");
        presence_end(p, SL_ENOENT);
        return;
    }
    if (!info->presence) {
        sl_status_set(st, SL_EINVAL, "presence is not enabled on this channel (option presence)");
        presence_end(p, SL_EINVAL);
        return;
    }
    sl__hub *hub = sl__wss_hub(r->wss);
    if (sl__hub_presence_shared(hub)) { /* several nodes: the engine holds everyone's entries */
        sl__hub_presence_get(hub, p->q, presence_got, p);
        return;
    }
    size_t n = 0;
    sl__hub_chan *hc = sl__hub_chan_get(hub, p->q, NULL, 0);
    sl__hub_sub *const *subs = hc ? sl__hub_chan_subs(hc, &n) : NULL;
    const char **v = n ? calloc(2 * n, sizeof *v) : NULL;
    if (n && v == NULL) {
        presence_end(p, SL_ENOMEM);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = subs[i]->client;
        v[n + i] = subs[i]->user;
    }
    presence_render(p, v, v ? v + n : NULL, n);
    free(v);
    presence_end(p, SL_OK);
}

void sl__start_server_presence(sl__job *job)
{
    sl__router *r = sl__job_router(job);
    sl_status *st = sl__job_status(job);
    const sl_http_request *req = sl__job_request(job);
    int rc = need_wss(r, st);
    presence_q *p = rc == SL_OK ? calloc(1, sizeof *p) : NULL;
    if (rc == SL_OK && p == NULL)
        rc = sl_status_set(st, SL_ENOMEM, NULL);
    if (rc == SL_OK &&
        sl__ws_qualify(sl__job_who(job)->workspace, sl__job_resource(job), p->q, sizeof p->q))
        rc = sl_status_set(st, SL_EBADID, "invalid channel id");
    if (rc != SL_OK) {
        free(p);
        sl__job_finish(job, rc);
        return;
    }
    p->job = job;
    /* /server/presence/{id}/stats has one segment more than /server/presence/{id} (a channel
     * named "stats" is the latter); the path is still percent-encoded, so an id holds no '/'. */
    size_t slashes = 0;
    for (size_t i = 0; i < req->path_len; i++)
        slashes += req->path[i] == '/';
    p->stats = slashes == 4;
    /* A channel another node created a moment ago is looked up first (at once otherwise). */
    sl__channel_lookup(r->ctx, p->q, presence_looked_up, p);
}

/* ---- GET /server/channels ---------------------------------------------------------------------
 */

typedef struct channels_q {
    sl__eop eop;
    sl__job *job;
} channels_q;

static void channels_listed(sl__eop *op)
{
    channels_q *c = op->ud;
    sl__job *job = c->job;
    sl__router *r = sl__job_router(job);
    const char *ws = sl__job_who(job)->workspace;
    int rc = op->rc;
    json_t *arr = rc == SL_OK ? json_array() : NULL;
    if (rc == SL_OK && arr == NULL)
        rc = SL_ENOMEM;
    for (size_t i = 0; arr && i < op->ninfos; i++) {
        const sl_channel_info *in = &op->infos[i];
        if (!sl__ws_owns(ws, in->id))
            continue;
        int queue = in->kind == SL_KIND_QUEUE;
        const sl_channel_info *dl = queue && in->dead_letter && in->dead_letter[0]
                                        ? sl__eop_list_find(op->infos, op->ninfos, in->dead_letter)
                                        : NULL;
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:I}", "id", sl__ws_name(in->id), "kind",
            queue ? "queue" : "topic", "visibility",
            in->visibility == SL_VIS_PUBLIC ? "public" : "private", "depth", (json_int_t)in->depth,
            "subscribers", (json_int_t)(r->wss ? sl__wss_subscribers(r->wss, in->id) : 0),
            "published", (json_int_t)(r->wss ? sl__wss_published(r->wss, in->id) : 0));
        if (o == NULL)
            continue;
        json_object_set_new(o, "in_flight",
                            queue ? json_integer((json_int_t)in->in_flight) : json_null());
        json_object_set_new(o, "dead_letter",
                            queue && in->dead_letter && in->dead_letter[0]
                                ? json_string(sl__ws_name(in->dead_letter))
                                : json_null());
        json_object_set_new(o, "dead_letters",
                            dl ? json_integer((json_int_t)dl->depth) : json_null());
        json_array_append_new(arr, o);
    }
    if (rc == SL_OK)
        sl__response_json(sl__job_response(job), 200, json_pack("{s:o}", "channels", arr));
    else
        sl_status_set(sl__job_status(job), rc, "channels could not be listed");
    sl__eop_clear(op);
    free(c);
    sl__job_finish(job, rc);
}

void sl__start_server_channels(sl__job *job)
{
    sl__router *r = sl__job_router(job);
    channels_q *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sl__job_finish(job, SL_ENOMEM);
        return;
    }
    /* Straight from the engine: the route's operation (an administrator's) was authorised, and
     * the dead-letter queues, private to network callers, are what an operator needs to see. */
    c->job = job;
    c->eop.kind = SL__EOP_LIST;
    c->eop.now = sl_ctx_now(r->ctx);
    c->eop.done = channels_listed;
    c->eop.ud = c;
    r->ctx->engine->ops->submit(r->ctx->engine, &c->eop);
}
