/* The WebSocket endpoint of sluiced: Centrifugo client protocol sessions (docs/WEBSOCKET.md,
 * "Session"). Each upgraded connection authenticates with a token through the same authenticator
 * chain and revocation store as HTTP, and every command is authorised through the operation
 * registry by the channel API. The server object also listens to the context (writes, channel
 * deletions, ACL changes) and to the revocation store, so that pushes and cut-offs reach open
 * sockets as the changes happen. */
#ifndef SLUICE_SERVER_WSESSION_H
#define SLUICE_SERVER_WSESSION_H

#include <stddef.h>
#include <uv.h>

#include <sluice/authn.h>
#include <sluice/revocation.h>
#include <sluice/sluice.h>

#include "net/http.h"

#define SL__WSS_PATH "/connection/websocket"

typedef struct sl__wss_limits {
    size_t max_connections;       /* sessions; past it: close 3504 */
    size_t max_subscriptions;     /* per session; past it: close 3505 */
    size_t max_message;           /* bytes of a received message; past it: close 1009 */
    size_t max_outgoing;          /* bytes queued per session; past it: close 3008 */
    unsigned commands_per_second; /* per session; past it: error 111 */
    unsigned max_errors;          /* error replies per session per 10 s; past it: close 3509 */
    double handshake_timeout;     /* seconds to a successful connect; then close 3502 */
    double ping_interval;         /* seconds between server pings ({}) */
    double pong_timeout;          /* seconds a ping may stay unanswered; then close 3012 */
    double refresh_grace;         /* seconds past a token's expiry; then 3005 / unsubscribe 2500 */
    size_t history_max;           /* publications per history reply and per recovery */
} sl__wss_limits;
void sl__wss_limits_init(sl__wss_limits *l);

typedef struct sl__wss_server sl__wss_server;

/* ctx and authn (its keys and revocation store, which may be NULL) are borrowed. Registers itself
 * as ctx's listener and as the watcher of authn's revocation store. *out owned by the caller. */
int sl__wss_server_new(sl__wss_server **out, uv_loop_t *loop, sl_ctx *ctx, const sl_authn *authn,
                       const sl__wss_limits *lim);
/* Shutting down: closes every session (3001), stops listening to ctx and the revocation store
 * (which may be freed afterwards) and stops the sweep. Idempotent. */
void sl__wss_server_close(sl__wss_server *s);
/* Once the sessions' sockets are gone (the HTTP server closed and the loop ran): frees it; run
 * the loop once more so its handles close. NULL is a no-op. */
void sl__wss_server_free(sl__wss_server *s);

/* Handles a request for SL__WSS_PATH: upgrades it (or answers 400/426) and runs a session. */
void sl__wss_handle(sl__wss_server *s, sl_http_request *req);

/* Sessions open now. */
size_t sl__wss_sessions(const sl__wss_server *s);

#endif
