/* The WebSocket endpoint of sluiced: Centrifugo client protocol sessions (docs/WEBSOCKET.md,
 * "Session"). Each upgraded connection authenticates with a token through the same authenticator
 * chain and revocation store as HTTP, and every command is authorised through the operation
 * registry by the channel API. The server object also listens to the context (writes, channel
 * deletions, ACL changes) and to the revocation store, so that pushes and cut-offs reach open
 * sockets as the changes happen. */
#ifndef SLUICE_SERVER_WSESSION_H
#define SLUICE_SERVER_WSESSION_H

#include <stddef.h>
#include <stdint.h>
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
/* Where session lines go (docs/OPERATIONS.md, "Logs"): a connect at debug, denied commands and
 * the server closing a session at info (a shutdown's closes at debug), each with the upgrade's
 * request id. log borrowed, outliving s; NULL (the default): no lines. */
struct sl__log;
void sl__wss_server_set_log(sl__wss_server *s, struct sl__log *log);
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

/* ---- the server API's view of the sessions (server/routes_server.c; ws_view.c) ---------------
 * Only connected sessions (a connect passed) are seen; every call is scoped to one workspace
 * ("" the default one), so an administrator acts on its own workspace's connections only. */

/* One connected session, borrowed for the visitor's call. */
typedef struct sl__wss_conn_view {
    const char *id;              /* stable for the connection's life: its Centrifugo client id */
    const char *principal;       /* who connected (the caller's name, not the workspace's key) */
    const char *workspace;       /* "" the default workspace */
    const char *remote;          /* the peer's address, "IP:port" */
    const char *transport;       /* "websocket" */
    double since;                /* epoch seconds the socket was opened */
    const char *const *channels; /* subscribed channels, as the hub knows them (internal ids) */
    size_t nchannels;
} sl__wss_conn_view;
typedef int (*sl__wss_conn_fn)(void *ud, const sl__wss_conn_view *v);

/* Calls fn for each connected session of workspace ws (principal NULL: every one, else only its
 * sessions), newest first; a non-zero return from fn stops and is returned. SL_ENOMEM. */
int sl__wss_conns(sl__wss_server *s, const char *ws, const char *principal, sl__wss_conn_fn fn,
                  void *ud);
/* The principal of connection id in workspace ws, or NULL (borrowed until the loop turns). */
const char *sl__wss_conn_principal(sl__wss_server *s, const char *ws, const char *id);
/* Sessions of ws that sl__wss_disconnect would close with the same selection (nothing done). */
size_t sl__wss_count(sl__wss_server *s, const char *ws, const char *principal, const char *id);
/* Closes the connected sessions of ws selected by principal (non-NULL: all of its sessions)
 * and/or id (non-NULL: that one) with a Centrifugo disconnect: the close frame carries code
 * (3000..4999) and reason (at most 123 bytes; NULL: the code's standard text). What is already
 * batched for them goes out first. Returns how many were closed. */
size_t sl__wss_disconnect(sl__wss_server *s, const char *ws, const char *principal, const char *id,
                          int code, const char *reason);
/* Ends principal's subscriptions (in workspace ws) to channel (an internal id) with the
 * Centrifugo unsubscribe push (code 2000, reason NULL: "server unsubscribe"); the client stops
 * receiving at once. Returns how many subscriptions ended. */
size_t sl__wss_unsubscribe(sl__wss_server *s, const char *ws, const char *principal,
                           const char *channel, const char *reason);
/* Subscribers of channel (internal id) on this node, and the messages written to it that this
 * node was told of since it started (every write with a local engine; with a shared one, those
 * of the channels this node's subscribers watch). */
size_t sl__wss_subscribers(const sl__wss_server *s, const char *channel);
uint64_t sl__wss_published(const sl__wss_server *s, const char *channel);
/* The hub (presence): borrowed, lives as long as s. */
struct sl__hub *sl__wss_hub(sl__wss_server *s);

#endif
