/* The server API of sluiced (docs/OPERATIONS.md "Server API"): Centrifugo's server API in
 * sluice's terms, for backends and operators. List the live connections, disconnect one or all
 * of a principal's, unsubscribe a principal from a channel, a channel's presence and its stats,
 * per-channel statistics. The router authorises each route's registry operation before these
 * run (they check no access themselves); the changing ones write an audit record before they
 * act, so an action nobody could audit is not taken. The handlers only read the request and the
 * sessions (server/wsession.h); the response is the router's to send. */
#ifndef SLUICE_SERVER_ROUTES_SERVER_H
#define SLUICE_SERVER_ROUTES_SERVER_H

#include <stddef.h>

#include "server/router.h"

/* Bounds of the request bodies and parameters (hostile input gets 400 past them). */
#define SL__SRV_CONN_ID_MAX 64    /* a connection id's length */
#define SL__SRV_REASON_MAX 123    /* a disconnect reason: what a WebSocket close frame carries */
#define SL__SRV_LIST_DEFAULT 1000 /* connections per listing unless ?limit= */
#define SL__SRV_LIST_MAX 10000    /* ?limit= at most */
#define SL__SRV_CODE_DEFAULT 3503 /* Centrifugo's "force disconnect": clients do not reconnect */

/* POST /server/disconnect's body: {"principal":P} or {"connection":ID} (or both: that connection
 * only if it is P's), optional "code" (3000..4999) and "reason" (at most 123 bytes). Strings
 * borrow body. */
typedef struct sl__srv_disconnect {
    const char *principal, *connection, *reason;
    int code;
} sl__srv_disconnect;
/* Reads body (an object) into d: SL_EINVAL with the reason in st for anything else, including
 * members it does not know. No I/O; unit-tested. */
struct json_t;
int sl__srv_parse_disconnect(struct json_t *body, sl__srv_disconnect *d, sl_status *st);
/* POST /server/unsubscribe's body: {"principal":P,"channel":C}; strings borrow body. */
int sl__srv_parse_unsubscribe(struct json_t *body, const char **principal, const char **channel,
                              sl_status *st);

/* Route handlers (the route table in router.c). */
int sl__h_server_connections(sl__router *r, const sl_identity *who, const sl_http_request *req,
                             const char *res, sl__response *resp, sl_status *st);
int sl__h_server_disconnect(sl__router *r, const sl_identity *who, const sl_http_request *req,
                            const char *res, sl__response *resp, sl_status *st);
int sl__resolve_server_disconnect(sl__router *r, const sl_http_request *req, const sl_identity *who,
                                  char *res, size_t cap, sl_status *st);
int sl__h_server_unsubscribe(sl__router *r, const sl_identity *who, const sl_http_request *req,
                             const char *res, sl__response *resp, sl_status *st);
int sl__resolve_server_unsubscribe(sl__router *r, const sl_http_request *req,
                                   const sl_identity *who, char *res, size_t cap, sl_status *st);
void sl__start_server_presence(sl__job *job);
void sl__start_server_channels(sl__job *job);

#endif
