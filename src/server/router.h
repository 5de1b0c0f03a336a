/* The HTTP API of sluiced: a route table mapping (method, path) to an operation of the registry and
 * a handler. Dispatch is the same for every route: match, decode the resource, authenticate,
 * authorise the route's operation, then run the handler. Handlers never check access themselves.
 * The router does no I/O: it turns an sl_http_request into an sl__response, so tests drive it
 * directly. */
#ifndef SLUICE_SERVER_ROUTER_H
#define SLUICE_SERVER_ROUTER_H

#include <sluice/authn.h>
#include <sluice/sluice.h>

#include "net/http.h"

typedef struct sl__response {
    int status;
    char headers[512]; /* extra header lines, "Name: value\r\n" */
    char *body;        /* malloc'd JSON, or NULL */
    size_t body_len;
} sl__response;
void sl__response_clear(sl__response *r);

typedef struct sl__router {
    sl_ctx *ctx;           /* borrowed */
    sl_authn authn;        /* keys borrowed */
    unsigned long handled; /* handlers run: lets tests prove denials never reach one */
} sl__router;

typedef struct sl__route {
    const char *method;
    const char *path; /* "/channels/{id}/acknowledge": {x} captures one segment */
    sl_op op;
    int (*handler)(sl__router *r, const sl_identity *who, const sl_http_request *req,
                   const char *resource, sl__response *resp, sl_status *st);
} sl__route;

/* The route table (static storage). */
const sl__route *sl__router_routes(size_t *n);

/* Fills resp for req. Never fails: every error becomes a JSON error response. */
void sl__router_handle(sl__router *r, const sl_http_request *req, sl__response *resp);

/* HTTP status and headers for an error code (401 carries WWW-Authenticate). */
void sl__response_error(sl__response *resp, int code, const char *message);

#endif
