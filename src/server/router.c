/* The HTTP API's dispatch: the one route table (every route of sluiced, with its registry
 * operation and its handler), path matching and the job each request becomes on its way through
 * the pipeline: admit (match the route, decode and validate its resource), authenticate (the
 * revocation store included), the workspace's header and rate, the resource from the body where a
 * route has one, authorise the route's operation (a pluggable regime asked first), run the handler
 * and finish (log, metrics, response). Handlers never check access themselves; they live by route
 * family in routes_channels.c, routes_tokens.c, routes_access.c, routes_apikeys.c, routes_server.c,
 * routes_audit.c, routes_metrics.c and routes_console.c, with the parameter helpers they share in
 * params.c. Also here: the response helpers (sl__response_*) and the authenticators' view of a
 * request (sl__authn_view). */
#include "server/router.h"

#include "api/ctx.h"
#include "core/metrics.h"
#include "security/workspace.h"
#include "server/console.h"
#include "server/job.h"
#include "server/params.h"
#include "server/reqlog.h"
#include "server/routes.h"
#include "server/routes_audit.h"
#include "server/routes_metrics.h"
#include "server/routes_server.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <sluice/authz.h>

/* Spare jobs a router keeps: as many as requests usually wait at once on a busy server (the memory
 * engine's end in the call; a durable or Redis engine's wait for a commit), 290 KiB at most. */
#define SPARE_JOBS_MAX 64

void sl__response_clear(sl__response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

void sl__response_json(sl__response *resp, int status, json_t *o)
{
    resp->status = status;
    resp->body = json_dumps(o, JSON_COMPACT);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    json_decref(o);
    if (resp->body == NULL) {
        resp->status = 500;
        resp->body = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
        resp->body_len = resp->body ? strlen(resp->body) : 0;
    }
}

void sl__response_error(sl__response *resp, int code, const char *message)
{
    free(resp->body);
    resp->body = NULL;
    resp->headers[0] = '\0';
    resp->content_type = NULL;
    int status = sl_err_http_status(code);
    const char *msg = message && *message ? message : sl_strerror(code);
    if (code == SL_EUNAVAIL) {
        snprintf(resp->headers, sizeof resp->headers, "Retry-After: 1\r\n");
    } else if (code == SL_EUNAUTH) {
        snprintf(resp->headers, sizeof resp->headers,
                 "WWW-Authenticate: Bearer realm=\"sluice\"\r\n");
    } else if (code == SL_ETOKEN || code == SL_EEXPIRED) {
        /* RFC 6750 §3: the description is one of our fixed strings, never the token. */
        snprintf(resp->headers, sizeof resp->headers,
                 "WWW-Authenticate: Bearer realm=\"sluice\", error=\"invalid_token\", "
                 "error_description=\"%s\"\r\n",
                 msg);
    }
    json_t *o = json_pack("{s:s, s:s}", "error", sl_err_name(code), "message", msg);
    sl__response_json(resp, status, o);
}

void sl__response_ok(sl__response *resp)
{
    sl__response_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static int h_health(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                    sl__response *resp, sl_status *st)
{
    sl__response_ok(resp);
    return SL_OK;
}

/* ---- the route table and dispatch ------------------------------------------------------------ */

static const sl__route routes[] = {
    {"GET", "/healthz", SL_OP_HEALTH, .handler = h_health},
    /* HEAD only where GET changes nothing (a HEAD of an exclusive read would lease messages
     * that no answer carries); the transport drops the body and keeps its length. */
    {"HEAD", "/healthz", SL_OP_HEALTH, .handler = h_health},
    /* channels (routes_channels.c) */
    {"GET", "/channels", SL_OP_CHANNEL_LIST, .prepare = sl__p_list, .render = sl__r_list},
    {"POST", "/channels", SL_OP_CHANNEL_CREATE, .prepare = sl__p_create, .render = sl__r_create},
    {"GET", "/channels/{id}", SL_OP_CHANNEL_READ, .prepare = sl__p_read, .render = sl__r_read},
    {"PUT", "/channels/{id}", SL_OP_CHANNEL_WRITE, .prepare = sl__p_write, .render = sl__r_write},
    {"POST", "/channels/{id}", SL_OP_CHANNEL_WRITE, .prepare = sl__p_write, .render = sl__r_write},
    {"DELETE", "/channels/{id}", SL_OP_CHANNEL_DELETE, .prepare = sl__p_simple, .render = sl__r_ok},
    {"GET", "/channels/{id}/info", SL_OP_CHANNEL_INFO, .prepare = sl__p_simple,
     .render = sl__r_info},
    {"POST", "/channels/{id}/acknowledge", SL_OP_CHANNEL_ACK, .prepare = sl__p_ids,
     .render = sl__r_count},
    {"POST", "/channels/{id}/nack", SL_OP_CHANNEL_NACK, .prepare = sl__p_nack,
     .render = sl__r_count},
    {"DELETE", "/channels/{id}/messages", SL_OP_CHANNEL_CLEAR, .prepare = sl__p_simple,
     .render = sl__r_count},
    {"POST", "/channels/{id}/evict", SL_OP_CHANNEL_EVICT, .prepare = sl__p_evict,
     .render = sl__r_count},
    {"POST", "/channels/{id}/remove", SL_OP_CHANNEL_REMOVE, .prepare = sl__p_ids,
     .render = sl__r_count},
    {"POST", "/channels/{id}/extend", SL_OP_CHANNEL_EXTEND, .prepare = sl__p_extend,
     .render = sl__r_count},
    {"POST", "/channels/{id}/terminate", SL_OP_CHANNEL_TERMINATE, .prepare = sl__p_terminate,
     .render = sl__r_count},
    {"POST", "/channels/{id}/messages", SL_OP_CHANNEL_WRITE, .prepare = sl__p_envelope,
     .render = sl__r_envelope},
    {"POST", "/channels/{id}/batch", SL_OP_CHANNEL_WRITE, .prepare = sl__p_batch,
     .render = sl__r_batch},
    /* access control (routes_access.c) */
    {"GET", "/acl", SL_OP_ACL_LIST, .handler = sl__h_acl_list},
    {"PUT", "/acl/{principal}", SL_OP_ACL_GRANT, .handler = sl__h_acl_put},
    {"DELETE", "/acl/{principal}", SL_OP_ACL_REVOKE, .handler = sl__h_acl_del},
    /* tokens (routes_tokens.c) */
    {"POST", "/revoke", SL_OP_TOKEN_REVOKE, .start = sl__start_revoke,
     .resolve = sl__resolve_revoke, .broker = 1},
    {"POST", "/token", SL_OP_TOKEN_ISSUE, .handler = sl__h_token, .broker = 1},
    {"POST", "/token/delegate", SL_OP_TOKEN_DELEGATE, .handler = sl__h_delegate,
     .resolve = sl__resolve_delegate, .broker = 1},
    /* API keys (routes_apikeys.c) */
    {"POST", "/apikeys", SL_OP_APIKEY_CREATE, .handler = sl__h_apikey_create},
    {"GET", "/apikeys", SL_OP_APIKEY_LIST, .handler = sl__h_apikey_list},
    {"POST", "/apikeys/{id}/expire", SL_OP_APIKEY_EXPIRE, .handler = sl__h_apikey_expire},
    {"DELETE", "/apikeys/{id}", SL_OP_APIKEY_DELETE, .handler = sl__h_apikey_delete},
    /* access control: broker roles, the invoke policy, the decision cache (routes_access.c) */
    {"GET", "/broker/principals/{principal}", SL_OP_BROKER_LIST, .handler = sl__h_broker_get},
    {"PUT", "/broker/principals/{principal}", SL_OP_BROKER_ASSIGN, .handler = sl__h_broker_put},
    {"DELETE", "/broker/principals/{principal}", SL_OP_BROKER_ASSIGN,
     .handler = sl__h_broker_delete},
    {"GET", "/policy/invoke", SL_OP_POLICY_INVOKE_LIST, .handler = sl__h_policy_list},
    {"PUT", "/policy/invoke/{principal}", SL_OP_POLICY_INVOKE_SET, .handler = sl__h_policy_put},
    {"DELETE", "/policy/invoke/{principal}", SL_OP_POLICY_INVOKE_DELETE,
     .handler = sl__h_policy_delete},
    {"POST", "/authz/invalidate", SL_OP_AUTHZ_INVALIDATE, .handler = sl__h_authz_invalidate},
    /* the server API and the audit log (routes_server.c, routes_audit.c) */
    {"GET", "/server/connections", SL_OP_SERVER_CONNECTIONS, .handler = sl__h_server_connections},
    {"POST", "/server/disconnect", SL_OP_SERVER_DISCONNECT, .handler = sl__h_server_disconnect,
     .resolve = sl__resolve_server_disconnect},
    {"POST", "/server/unsubscribe", SL_OP_SERVER_UNSUBSCRIBE, .handler = sl__h_server_unsubscribe,
     .resolve = sl__resolve_server_unsubscribe},
    {"GET", "/server/presence/{id}", SL_OP_SERVER_PRESENCE, .start = sl__start_server_presence},
    {"GET", "/server/presence/{id}/stats", SL_OP_SERVER_PRESENCE,
     .start = sl__start_server_presence},
    {"GET", "/server/channels", SL_OP_SERVER_CHANNELS, .start = sl__start_server_channels},
    {"GET", "/audit", SL_OP_AUDIT_READ, .start = sl__start_audit_read},
    /* the admin console's static files (routes_console.c) */
    {"GET", "/admin", SL_OP_CONSOLE, .handler = sl__console_get},
    {"HEAD", "/admin", SL_OP_CONSOLE, .handler = sl__console_get},
    {"GET", "/admin/{file}", SL_OP_CONSOLE, .handler = sl__console_get},
    {"HEAD", "/admin/{file}", SL_OP_CONSOLE, .handler = sl__console_get},
    /* metrics (routes_metrics.c) */
    {"GET", "/metrics", SL_OP_METRICS_READ, .start = sl__metrics_route_start},
    {"HEAD", "/metrics", SL_OP_METRICS_READ, .start = sl__metrics_route_start},
};

const sl__route *sl__router_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* Matches path against a template; on success the captured (still encoded) segment, if any, is
 * returned through cap/caplen. */
static int path_match(const char *tmpl, const char *path, size_t plen, const char **cap,
                      size_t *caplen)
{
    const char *p = path, *end = path + plen;
    *cap = NULL;
    *caplen = 0;
    while (*tmpl) {
        if (*tmpl != '/' || p >= end || *p != '/')
            return 0;
        tmpl++;
        p++;
        const char *tseg_end = strchr(tmpl, '/');
        size_t tlen = tseg_end ? (size_t)(tseg_end - tmpl) : strlen(tmpl);
        const char *pseg_end = memchr(p, '/', (size_t)(end - p));
        size_t slen = pseg_end ? (size_t)(pseg_end - p) : (size_t)(end - p);
        if (tmpl[0] == '{') {
            *cap = p;
            *caplen = slen;
        } else if (tlen != slen || memcmp(tmpl, p, slen) != 0) {
            return 0;
        }
        tmpl += tlen;
        p += slen;
    }
    return p == end;
}

void sl__job_finish(sl__job *job, int rc)
{
    if (rc != SL_OK)
        sl__response_error(&job->resp, rc, job->st.message);
    /* a denial or failure on the log, and who asked for the access line */
    if (job->resp.status >= 400)
        sl__reqlog_outcome(job->r->log, job->req, job->route ? sl_op_lookup(job->route->op) : NULL,
                           job->resp.status, job->st.message, job->who.principal);
    memcpy(job->resp.principal, job->who.principal, sizeof job->resp.principal);
    sl__metrics *m = job->r->ctx ? job->r->ctx->metrics : NULL;
    if (m) /* the clock is held during a synchronous request: its time comes from the transport */
        sl__metrics_request(m, job->route ? (int)job->route->op : SL_OP__COUNT, job->resp.status,
                            job->req->started_ns
                                ? (double)(uv_hrtime() - job->req->started_ns) / 1e9
                                : sl_ctx_now(job->r->ctx) - job->t0);
    job->done(job->ud, job->req, &job->resp);
    sl__response_clear(&job->resp);
    sl_identity_clear(&job->who);
    sl__chop_clear(&job->chop);
    json_decref(job->body);
    free(job->ids);
    free(job->ws);
    free(job->items);
    free(job->meta);
    sl__router *r = job->r;
    if (r->nspare < SPARE_JOBS_MAX) {
        job->next_spare = r->spare;
        r->spare = job;
        r->nspare++;
    } else {
        free(job);
    }
}

void sl__router_clear(sl__router *r)
{
    while (r->spare != NULL) {
        sl__job *j = r->spare;
        r->spare = j->next_spare;
        free(j);
    }
    r->nspare = 0;
}

/* accessors for asynchronous handlers in other files */
sl__router *sl__job_router(sl__job *job)
{
    return job->r;
}

const sl_identity *sl__job_who(sl__job *job)
{
    return &job->who;
}

const sl_http_request *sl__job_request(sl__job *job)
{
    return job->req;
}

const char *sl__job_resource(sl__job *job)
{
    return job->res;
}

sl__response *sl__job_response(sl__job *job)
{
    return &job->resp;
}

sl_status *sl__job_status(sl__job *job)
{
    return &job->st;
}

/* The channel API answered (the change is durable): render the outcome. */
static void chop_done(sl__chop *op)
{
    sl__job *job = op->ud;
    int rc = op->rc;
    if (rc != SL_OK)
        job->st = op->st;
    else
        rc = job->route->render(job, op);
    sl__job_finish(job, rc);
}

/* A synchronous handler's answer waits until what it changed (a grant, a broker role, an API
 * key) is durable; a failure to make it so replaces the answer. */
static void sync_handler_durable(void *ud, int rc)
{
    sl__job *job = ud;
    if (rc != SL_OK)
        sl_status_set(&job->st, rc, "the change could not be made durable (is the disk full?)");
    sl__job_finish(job, rc);
}

static void run_handler(sl__job *job)
{
    job->r->handled++;
    if (job->route->start) {
        job->route->start(job);
        return;
    }
    if (job->route->prepare) {
        sl__chop *op = &job->chop;
        op->op = job->route->op;
        op->who = &job->who;
        op->channel = job->res;
        int rc = job->route->prepare(job, op);
        if (rc != SL_OK) {
            sl__job_finish(job, rc);
            return;
        }
        op->done = chop_done;
        op->ud = job;
        sl__channel_submit(job->r->ctx, op);
        return;
    }
    int rc = job->route->handler(job->r, &job->who, job->req, job->res, &job->resp, &job->st);
    /* Only a change waits: a GET or HEAD (health, listings) answers at once, also while a full
     * disk holds every commit back. */
    if (rc != SL_OK || strcmp(job->route->method, "GET") == 0 ||
        strcmp(job->route->method, "HEAD") == 0) {
        sl__job_finish(job, rc);
        return;
    }
    sl__ctx_sync(job->r->ctx, sync_handler_durable, job);
}

/* Matches the route and decodes its resource; 0 (with an error response) when there is none. */
static int admit_route(sl__job *job)
{
    const sl_http_request *req = job->req;
    size_t n;
    const sl__route *rt = sl__router_routes(&n), *found = NULL;
    const char *cap = NULL;
    size_t caplen = 0;
    /* The methods of the routes whose path matched (for a 405's Allow), written only on a miss. */
    const sl__route *other[16];
    size_t nother = 0;
    size_t plen = strlen(job->r->broker_prefix);
    int under_prefix = req->path_len > plen && memcmp(req->path, job->r->broker_prefix, plen) == 0;
    for (size_t i = 0; i < n; i++) {
        const char *path = req->path;
        size_t len = req->path_len;
        if (rt[i].broker) {
            if (!under_prefix)
                continue;
            path += plen;
            len -= plen;
        }
        if (!path_match(rt[i].path, path, len, &cap, &caplen))
            continue;
        if (strcmp(rt[i].method, req->method) == 0) {
            found = &rt[i];
            break;
        }
        if (nother < sizeof other / sizeof *other)
            other[nother++] = &rt[i];
    }
    if (found == NULL) {
        if (nother > 0) {
            sl__response_error(&job->resp, SL_EMETHOD, "method not allowed");
            size_t used = 0, cap_h = sizeof job->resp.headers;
            used += (size_t)snprintf(job->resp.headers, cap_h, "Allow: ");
            for (size_t i = 0; i < nother && used < cap_h; i++)
                used += (size_t)snprintf(job->resp.headers + used, cap_h - used, "%s%s",
                                         i ? ", " : "", other[i]->method);
            if (used < cap_h)
                snprintf(job->resp.headers + used, cap_h - used, "\r\n");
        } else {
            sl__response_error(&job->resp, SL_ENOENT, "no such route");
        }
        return 0;
    }
    job->route = found;
    const sl_op_info *op = sl_op_lookup(found->op);
    if (cap) {
        long len = sl__pct_decode(cap, caplen, job->resource, sizeof job->resource, 0);
        int principal = op->resource == SL_RES_PRINCIPAL;
        int valid = len > 0 && (principal ? sl_principal_valid(job->resource, (size_t)len)
                                          : sl_channel_id_valid(job->resource, (size_t)len));
        if (!valid) {
            sl__response_error(&job->resp, principal ? SL_EINVAL : SL_EBADID,
                               principal ? "invalid principal" : "invalid channel id");
            return 0;
        }
        job->res = job->resource;
    }
    return 1;
}

/* Workspaces (docs/POLICY.md): an operator addresses a workspace with the
 * Sluice-Workspace header (anyone else: 403, audited); then the request counts against its
 * workspace's commands per second (429). */
static int ws_request(sl__router *r, sl__job *job)
{
    size_t len = 0;
    const char *h = sl_http_header_get(job->req, "sluice-workspace", &len);
    if (h != NULL) {
        char target[SL_WORKSPACE_MAX + 1];
        if (len == 0 || len > SL_WORKSPACE_MAX)
            return sl_status_set(&job->st, SL_EINVAL, "invalid workspace name");
        memcpy(target, h, len);
        target[len] = '\0';
        int rc = sl__ws_cross(r->ctx->workspaces, &job->who, target, &job->st);
        sl__ws_cross_audit(r->ctx, &job->who, rc);
        if (rc != SL_OK)
            return rc;
    }
    return sl__ws_charge(r->ctx->workspaces, job->who.workspace, sl_ctx_now(r->ctx), &job->st);
}

static void run_handler_cb(void *ud)
{
    run_handler(ud);
}

/* A token request's channels, each asked of the regime (where the policy mode governs it)
 * before the handler: policy_denies reads the answers. The body is the handler's to judge; one
 * this cannot read asks nothing here. */
static void prepare_token_channels(sl__job *job)
{
    json_t *body =
        job->req->body_len ? json_loadb(job->req->body, job->req->body_len, 0, NULL) : NULL;
    json_t *ch = json_object_get(body, "channels");
    size_t n = json_is_array(ch) ? json_array_size(ch) : 0;
    const char **v = n && n <= SL__MAX_TOKEN_CHANNELS ? calloc(n, sizeof *v) : NULL;
    size_t m = 0;
    for (size_t i = 0; v && i < n; i++)
        if (json_is_string(json_array_get(ch, i)))
            v[m++] = json_string_value(json_array_get(ch, i));
    /* The question is borrowed for this call only: a regime answering later copied it. */
    sl__authz_prepare(job->r->ctx, &job->who, SL_OP_TOKEN_ISSUE, v, m, run_handler_cb, job);
    free(v);
    json_decref(body);
}

/* Step 2 (authorisation) with the regime's answers at hand, then the handler. */
static void on_authz_ready(void *ud)
{
    sl__job *job = ud;
    int rc = sl_authorize(job->r->ctx, &job->who, job->route->op, job->res, &job->st);
    if (rc != SL_OK) {
        sl__job_finish(job, rc);
        return;
    }
    /* Without a pluggable regime there is nothing to ask (a policy channel's decision is then
     * an error either way), so the body is not parsed twice. */
    if ((job->route->op == SL_OP_TOKEN_ISSUE || job->route->op == SL_OP_TOKEN_DELEGATE) &&
        sl_ctx_regime(job->r->ctx) != NULL)
        prepare_token_channels(job);
    else
        run_handler(job);
}

/* Step 1 (authentication, revocation included) answered: then the resource from the body,
 * authorisation, the handler. */
static void on_authenticated(void *ud, int status, const sl_identity *who, const char *reason)
{
    sl__job *job = ud;
    sl__router *r = job->r;
    if (status != SL_OK) {
        sl_status_set(&job->st, status, "%s", reason ? reason : sl_strerror(status));
        sl__job_finish(job, status);
        return;
    }
    int rc = sl_identity_copy(&job->who, who);
    if (rc != SL_OK)
        sl_status_set(&job->st, rc, NULL);
    if (rc == SL_OK)
        rc = ws_request(r, job);
    if (rc == SL_OK && job->route->resolve) {
        rc = job->route->resolve(r, job->req, &job->who, job->resource, sizeof job->resource,
                                 &job->st);
        job->res = job->resource;
    }
    if (rc != SL_OK) {
        sl__job_finish(job, rc);
        return;
    }
    /* a policy regime is asked first (later, from the loop); the decision below reads it */
    const char *res = job->res;
    sl__authz_prepare(r->ctx, &job->who, job->route->op, &res, 1, on_authz_ready, job);
}

static const char *view_header(const sl_authn_request *v, const char *name, size_t nth, size_t *len)
{
    return sl_http_header_nth(v->impl, name, nth, len);
}

void sl__authn_view(const sl_http_request *req, sl_authn_request *v)
{
    memset(v, 0, sizeof *v);
    v->method = req->method;
    v->scheme = req->tls ? "https" : "http";
    v->authority = sl_http_header_get(req, "host", &v->authority_len);
    v->path = req->path;
    v->path_len = req->path_len;
    v->query = req->query;
    v->query_len = req->query_len;
    v->body = req->body ? req->body : "";
    v->body_len = req->body ? req->body_len : 0;
    v->header = view_header;
    v->impl = req;
    v->peer = req->peer;
    v->accept = req->accept;
}

unsigned sl__router_mode(const sl__router *r, const char *path, size_t len)
{
    size_t best = 0;
    unsigned mode = 0;
    for (size_t i = 0; i < r->nmodes; i++) {
        const char *p = r->modes[i].prefix;
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/') /* "/a/" is "/a" */
            n--;
        int under = n <= len && !memcmp(path, p, n) && (n == len || path[n] == '/' || n == 1);
        if (under && n >= best) {
            best = n;
            mode = r->modes[i].mode;
        }
    }
    return mode;
}

static void serve(sl__router *r, sl_http_request *req, sl__router_done_fn done, void *ud);

/* The clock is held for the synchronous part of the request (sl__ctx_hold_now): one read. */
void sl__router_serve(sl__router *r, sl_http_request *req, sl__router_done_fn done, void *ud)
{
    if (r->ctx == NULL) {
        serve(r, req, done, ud);
        return;
    }
    sl_ctx *ctx = r->ctx; /* the request may end, and a test free the router, inside serve */
    sl__ctx_hold_now(ctx);
    serve(r, req, done, ud);
    sl__ctx_release_now(ctx);
}

static void serve(sl__router *r, sl_http_request *req, sl__router_done_fn done, void *ud)
{
    sl__job *job = r->spare;
    if (job != NULL) {
        r->spare = job->next_spare;
        r->nspare--;
        memset(job, 0, sizeof *job);
    } else {
        job = calloc(1, sizeof *job);
    }
    if (job == NULL) {
        sl__response resp = {0};
        sl__response_error(&resp, SL_ENOMEM, "out of memory");
        done(ud, req, &resp);
        sl__response_clear(&resp);
        return;
    }
    job->r = r;
    job->req = req;
    job->done = done;
    job->ud = ud;
    job->t0 = r->ctx ? sl_ctx_now(r->ctx) : 0; /* held: shared with every stage below */
    sl_identity_init(&job->who);
    if (!admit_route(job)) {
        sl__job_finish(job, SL_OK);
        return;
    }
    if (sl_op_lookup(job->route->op)->role == SL_ROLE_NONE) {
        run_handler(job);
        return;
    }
    sl__authn_view(req, &job->view);
    if (job->view.accept == 0)
        job->view.accept = sl__router_mode(r, req->path, req->path_len);
    sl_authn_run_request(&r->authn, &job->view, job->t0, on_authenticated, job);
}

typedef struct sync_result {
    sl__response *out;
    int done;
} sync_result;

static void sync_done(void *ud, sl_http_request *req, sl__response *resp)
{
    sync_result *res = ud;
    *res->out = *resp; /* take the body */
    memset(resp, 0, sizeof *resp);
    res->done = 1;
}

void sl__router_handle(sl__router *r, const sl_http_request *req, sl__response *resp)
{
    memset(resp, 0, sizeof *resp);
    sync_result res = {resp, 0};
    sl__router_serve(r, (sl_http_request *)req, sync_done, &res);
    if (!res.done) /* an asynchronous store or handler: not for this entry point */
        sl__response_error(resp, SL_EINTERNAL, "asynchronous request on a synchronous path");
}
