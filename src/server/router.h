/* The HTTP API of sluiced: a route table mapping (method, path) to an operation of the registry and
 * a handler. Dispatch is the same for every route: match, decode the resource, authenticate,
 * authorise the route's operation, then run the handler. Handlers never check access themselves.
 * The router does no I/O: it turns an sl_http_request into an sl__response, so tests drive it
 * directly. */
#ifndef SLUICE_SERVER_ROUTER_H
#define SLUICE_SERVER_ROUTER_H

#include <jansson.h>
#include <sluice/authn.h>
#include <sluice/revocation.h>
#include <sluice/sluice.h>

#include "net/http.h"

typedef struct sl__response {
    int status;
    char headers[512]; /* extra header lines, "Name: value\r\n" */
    char *body;        /* malloc'd JSON, or NULL */
    size_t body_len;
    char principal[SL_PRINCIPAL_MAX + 1]; /* who asked, for the access log; "" unknown */
    const char *content_type; /* static text; NULL: application/json when there is a body */
} sl__response;
void sl__response_clear(sl__response *r);

/* A path prefix's authentication mode (config auth_mode): which kinds of credential the
 * requests under it may present (sl_authn_mode_parse). */
typedef struct sl__auth_mode {
    const char *prefix; /* "/channels": matches /channels and /channels/..., not /channelsx */
    unsigned mode;
} sl__auth_mode;

typedef struct sl__router {
    sl_ctx *ctx;                     /* borrowed */
    sl_authn authn;                  /* keys and revocation store borrowed; /revoke writes there */
    struct sl_broker *broker;        /* borrowed; NULL: the token broker's routes answer 404 */
    struct sl_apikey_store *apikeys; /* borrowed; NULL: the API key routes answer 404 */
    char broker_prefix[64];          /* broker routes live under this path prefix ("" default) */
    unsigned long handled;           /* handlers run: lets tests prove denials never reach one */
    const sl__auth_mode *modes;      /* borrowed; the longest matching prefix decides */
    size_t nmodes;
    /* the server API and the audit read route (server/routes_server.c, routes_audit.c) */
    struct sl__wss_server *wss; /* borrowed; NULL: the /server routes answer 404 */
    struct sl_audit_log *audit; /* borrowed; NULL: GET /audit answers 404 */
    const char *audit_path;     /* borrowed: the file audit writes to */
    uv_loop_t *loop;            /* GET /audit reads the file on this loop's thread pool */
    struct sl__audit_reader *audit_reader; /* owned by routes_audit.c (sl__audit_routes_free) */
    struct sl__log *log;                   /* borrowed; NULL: denials and errors are not logged */
    /* Finished jobs kept for the next requests (a job is 4.5 KiB: past malloc's per-thread cache,
     * it cost a large-chunk allocation, often a consolidation, and a free every request). */
    struct sl__job *spare;
    unsigned nspare;
} sl__router;

/* Frees what the router keeps between requests (its spare jobs); the borrowed parts are the
 * caller's. Call once no request is in progress, before the router's memory goes. */
void sl__router_clear(sl__router *r);

/* The mode of the longest prefix in r->modes that path[0..len) falls under; 0 (every kind) when
 * none does. Used when the listener itself sets no mode (sl_http_request.accept 0). */
unsigned sl__router_mode(const sl__router *r, const char *path, size_t len);

/* One request on its way through the pipeline; it may wait for the revocation store or for an
 * asynchronous handler. */
typedef struct sl__job sl__job;
struct sl__chop;

typedef struct sl__route {
    const char *method;
    const char *path; /* "/channels/{id}/acknowledge": {x} captures one segment */
    sl_op op;
    /* Synchronous handler: fills resp or returns an error with st. */
    int (*handler)(sl__router *r, const sl_identity *who, const sl_http_request *req,
                   const char *resource, sl__response *resp, sl_status *st);
    /* Or an asynchronous one, which ends the job with sl__job_finish, now or later. */
    void (*start)(sl__job *job);
    /* Or a channel operation: prepare fills the channel API request from the HTTP request (bad
     * input is an error with the job's status filled), render builds the response from its
     * outcome once the channel API answered. */
    int (*prepare)(sl__job *job, struct sl__chop *op);
    int (*render)(sl__job *job, struct sl__chop *op);
    /* For operations whose resource is in the body: fills res (NUL-terminated, cap bytes) after
     * authentication, before authorisation. */
    int (*resolve)(struct sl__router *r, const sl_http_request *req, const sl_identity *who,
                   char *res, size_t cap, sl_status *st);
    int broker; /* 1: the path is under the router's broker_prefix */
} sl__route;

/* The route table (static storage). */
const sl__route *sl__router_routes(size_t *n);

/* Fills v, the authenticators' view of req (valid while req is). */
void sl__authn_view(const sl_http_request *req, sl_authn_request *v);

/* Called once per request with its response; the router frees resp after the call returns. */
typedef void (*sl__router_done_fn)(void *ud, sl_http_request *req, sl__response *resp);

/* Runs req through the pipeline (authenticate with revocation, authorise, handler) and calls done
 * exactly once: before returning when nothing waits (no revocation store, or a synchronous one),
 * else later from the loop (Redis). */
void sl__router_serve(sl__router *r, sl_http_request *req, sl__router_done_fn done, void *ud);

/* Synchronous form for tests: fills resp. Never fails: every error becomes a JSON error response
 * (an asynchronous wait here is answered 500). */
void sl__router_handle(sl__router *r, const sl_http_request *req, sl__response *resp);

/* Ends an asynchronous handler's job: rc SL_OK with its response filled, or an error. */
void sl__job_finish(sl__job *job, int rc);

/* What an asynchronous handler outside router.c reads of its job (all borrowed from the job,
 * valid until sl__job_finish): the router, the authenticated caller, the request, the decoded
 * resource (NULL: none), the response to fill and the status an error's message goes in. */
sl__router *sl__job_router(sl__job *job);
const sl_identity *sl__job_who(sl__job *job);
const sl_http_request *sl__job_request(sl__job *job);
const char *sl__job_resource(sl__job *job);
sl__response *sl__job_response(sl__job *job);
sl_status *sl__job_status(sl__job *job);

/* Fills resp with status and o rendered compactly; takes o's reference (a failed render becomes
 * 500). For handlers that live outside router.c. */
void sl__response_json(sl__response *resp, int status, json_t *o);

/* HTTP status and headers for an error code (401 carries WWW-Authenticate). */
void sl__response_error(sl__response *resp, int code, const char *message);

/* 200 {"status":"ok"}. */
void sl__response_ok(sl__response *resp);

#endif
