/* Inside the WebSocket sessions of sluiced (server/wsession.h is the outside): the session and
 * server structs, the wait a command keeps while the channel API answers, and what the session's
 * files share. wsession.c owns a session's lifetime and output, the waits and a new session;
 * ws_dispatch.c the commands read from its socket (the rate, the queue, dispatch); ws_server.c
 * the sweep and the upgrade; the commands and the reactions live beside them in ws_channels.c
 * (subscribe, publish, history, presence), ws_rpc.c (the queue.* rpc methods), ws_auth.c (connect
 * and refresh), ws_events.c (the context's events and revocations: access taken away as it happens)
 * and ws_view.c (the server API's view of the sessions). Included by those files only. */
#ifndef SLUICE_SERVER_WS_SESSION_H
#define SLUICE_SERVER_WS_SESSION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "api/ctx.h"
#include "core/message.h"
#include "net/centrifuge.h"
#include "net/ws.h"
#include "server/hub.h"
#include "server/log.h"
#include "server/wsession.h"

typedef struct sess sess;

enum { ST_HANDSHAKE = 0, ST_CONNECTED, ST_CLOSED };

struct sess {
    sl__hub_peer peer; /* first: the hub hands it back */
    sl__wss_server *srv;
    sl_ws_conn *conn; /* NULL once the socket is gone */
    sess *prev, *next;
    int state;
    int refs; /* entry points and callbacks still running or due */
    int gone; /* the socket is gone: free at refs == 0 */
    int busy; /* a credential is being checked: commands wait in `queue` */
    /* workspaces: the workspace an operator's connect asked to work in (NULL: none), and
     * the workspace whose connections limit counts this session ("" none) */
    char *cross;
    char counted[SL_WORKSPACE_MAX + 1];
    /* Publications in flight (at most MAX_IN_FLIGHT, ws_dispatch.c), oldest first: their replies go
     * out in this order, whatever order the channel API answers them in. Any other command waits
     * until none is in flight, so that it sees their effects. */
    struct wait *fly_head, *fly_tail;
    unsigned nfly;
    /* The subscribe waiting with the hub's pending mark on its channel (sl__hub_prepare), which
     * the session gives back if it goes first. */
    struct wait *marked;
    int draining; /* run_queue is running (a check that answers at once must not re-enter it) */
    int slow;     /* a push did not fit its outgoing bound: disconnected at the next flush */
    sl__cf_command *queue;
    size_t nqueue;
    uint32_t auth_id; /* id of the connect / refresh being authenticated */
    sl__cf_method auth_method;
    sl__cf_command *pending; /* the subscribe / sub_refresh whose subscription token is checked */
    /* The identities a session needs only for a moment are on the heap (an sl_identity is half a
     * kilobyte; an idle session's budget is in docs/WEBSOCKET.md, "Memory"): a `$` subscribe's
     * verified token while a policy regime is asked (else NULL), and who the upgrade request's
     * own credential (an RFC 9421 signature, a client certificate) named, so that a connect
     * without a token is that identity (NULL: none). */
    sl_identity *sub_tok;
    sl_identity *upgrade_who;
    char *url_token; /* ?token= until connect */
    char client[17];
    sl_identity who;
    sl__hub_sub **subs;
    size_t nsubs, subcap;
    double deadline; /* handshake: connect by then */
    double next_ping, pong_due;
    double win_start, err_start;
    unsigned win_cmds, errs;
    /* for the server API: the peer's address and when the socket opened */
    char remote[64];
    char rid[65]; /* the upgrade request's id (SL__REQUEST_ID_MAX), on every line of the session */
    double since;
};

struct sl__wss_server {
    uv_loop_t *loop;
    sl_ctx *ctx;
    const sl_authn *authn;
    sl_revocation_store *watched; /* authn's revocation store, watched until close */
    sl__wss_limits lim;
    sl__hub *hub;
    uv_timer_t sweep;
    sess *head;
    size_t nsessions;
    sl__map *published;  /* channel id -> uint64_t: writes this node was told of */
    struct sl__log *log; /* borrowed; NULL: sessions write no lines */
};

/* A command waiting for the channel API: the session is busy (later commands queue) until the
 * answer, which arrives once the change is durable, possibly before sl__channel_submit returns. */
typedef struct wait wait;
typedef void (*wait_cont)(sess *s, wait *w);
struct wait {
    sl__chop op;
    sess *s;
    sl__cf_command cmd; /* taken over from the caller */
    wait_cont cont;
    sl_identity tok; /* the subscription token a `$` subscribe passed with (source NONE: none) */
    json_t *data;    /* rpc: the parsed data the request's strings borrow */
    char *text;      /* rpc queue.write: the message text */
    char *meta;      /* rpc queue.write: the metadata text, or NULL */
    sl_write *ws;    /* rpc queue.batch: its messages, texts, metadata texts and ids */
    char **texts;
    size_t nws;
    char (*items)[SL__MSGID_LEN + 1];
    const char **ids;
    sl_write w;
    char item[1][SL__MSGID_LEN + 1];
    char after[SL__MSGID_LEN + 1];
    int prepared;   /* subscribe: holds the hub's pending mark on its channel (sl__hub_prepare) */
    wait *fly_next; /* the next publication in flight */
    int fly; /* 0: not in flight; 1: in flight; 2: answered, its reply waits for those before */
    uint64_t top; /* history: the stream's top when it began */
    uint64_t end; /* history: the exclusive upper bound of a reverse read */
    size_t limit; /* history */
};

/* ---- wsession.c: lifetime and output -------------------------------------------------------- */

/* A copy of who on the heap (NULL when out of memory), and its release (*p NULL after). */
sl_identity *sl__sess_identity_dup(const sl_identity *who);
void sl__sess_identity_free(sl_identity **p);

double sl__sess_now(const sess *s);
/* A reference held while an entry point or callback works with s; the last unref of a session
 * whose socket is gone frees it. */
void sl__sess_ref(sess *s);
void sl__sess_unref(sess *s);
/* Schedules the pending batch (nothing once closed). */
void sl__sess_touch(sess *s);
void sl__sess_sub_free(sl__hub_sub *sub);
/* Ends the session with a Centrifugo disconnect code: what is already batched goes out first. */
void sl__sess_close(sess *s, int code, const char *reason);
/* A new session on the upgrade request req (ws_server.c calls it once the upgrade may go on);
 * signer (may be NULL) is the identity the upgrade request itself proved, copied. Answers req
 * with 503 when memory runs out. */
void sl__sess_open(sl__wss_server *srv, sl_http_request *req, const sl_identity *signer);
/* A line on the server's log about s (nothing without one): msg with the Centrifugo code (0:
 * none), reason, the principal once connected, the client id and the remote address. */
void sl__sess_log(sess *s, int level, const char *msg, int code, const char *reason);
/* An error reply (counted against max_errors, which ends the session past it); reply_rc: the
 * Centrifugo code of an sl_errno with its standard message; too_big: error 106 for a reply over
 * the byte bound. */
void sl__sess_reply_error(sess *s, uint32_t id, int code, const char *message);
void sl__sess_reply_rc(sess *s, uint32_t id, int rc);
void sl__sess_reply_too_big(sess *s, uint32_t id);
/* Whole seconds from now to exp, at least 1. */
uint32_t sl__sess_ttl_until(double exp, double now);
/* The subscription to channel (its index in s->subs through idx), or NULL. */
sl__hub_sub *sl__sess_find_sub(sess *s, const char *channel, size_t *idx);
/* Ends subscription i, with an unsubscribe push when push_code is not 0. */
void sl__sess_unsubscribe_at(sess *s, size_t i, int push_code, const char *reason);
/* Takes c over as the command the session waits on (later commands queue) until a callback
 * takes it back; NULL after answering an internal error. */
sl__cf_command *sl__sess_hold_command(sess *s, sl__cf_command *c);
sl__cf_command *sl__sess_take_command(sess *s);
/* Message bytes a reply may still carry; whether the reply appended from start went over the
 * outgoing bound (then it is taken out again). */
size_t sl__sess_reply_room(const sess *s);
int sl__sess_reply_overflowed(sess *s, size_t start);

/* ---- wsession.c: waiting for the channel API --------------------------------------------------
 */

void sl__wait_free(wait *w);
/* The channel API answered w's request (its op.done). */
void sl__wait_done(sl__chop *op);
/* A wait for command c (taken over), or NULL after answering an internal error. */
wait *sl__wait_new(sess *s, sl__cf_command *c, sl_op op, const char *channel);
/* Submits w's request; cont runs with the answer. submit: the session waits meanwhile; fly: it
 * goes on with its next commands (publications in flight). */
void sl__wait_submit(sess *s, wait *w, wait_cont cont);
void sl__wait_fly(sess *s, wait *w, wait_cont cont);

/* ---- ws_dispatch.c: the commands read from the socket -----------------------------------------
 */

/* The socket's text frames (its on_text): each frame's commands run or queue, in order. */
void sl__sess_on_text(sl_ws_conn *conn, const char *data, size_t len, void *ud);
/* Runs the queued commands that may start now. */
void sl__sess_run_queue(sess *s);
/* Reads from the socket again unless commands wait or the hub's batches are over budget (then the
 * hub's flush resumes it). */
void sl__sess_resume_reading(sess *s);

/* ---- ws_channels.c: the channel commands ------------------------------------------------------
 */

/* tok: NULL on arrival; the subscription token once a `$` channel's passed. */
void sl__sess_cmd_subscribe(sess *s, sl__cf_command *c, const sl_identity *tok);
void sl__sess_cmd_unsubscribe(sess *s, const sl__cf_command *c);
void sl__sess_cmd_sub_refresh(sess *s, sl__cf_command *c, const sl_identity *tok);
void sl__sess_cmd_publish(sess *s, sl__cf_command *c);
void sl__sess_cmd_history(sess *s, sl__cf_command *c);
void sl__sess_cmd_presence(sess *s, sl__cf_command *c);

/* ---- ws_rpc.c: work queues over the socket ----------------------------------------------------
 */

void sl__sess_cmd_rpc(sess *s, sl__cf_command *c);

/* ---- ws_auth.c: connect and refresh -----------------------------------------------------------
 */

void sl__sess_cmd_connect(sess *s, const sl__cf_command *c);
/* Starts authenticating token (NULL: none) for a connect or refresh command. */
void sl__sess_authenticate(sess *s, const sl__cf_command *c, const char *token);
/* A credential whose exp has passed (refused with 109 even inside the clock-skew leeway). */
int sl__sess_expired_now(const sl_identity *who, double now);

/* ---- ws_events.c: the context's events and revocations ----------------------------------------
 */

/* After the identity or the ACL changed: the session's subscriptions are decided again. */
void sl__sess_reauthorize(sess *s);
/* The context's listener and the revocation store's watcher (the server is ud). */
void sl__wss_on_event(void *ud, const sl_event *ev);
void sl__wss_on_revoked(void *ud, const sl_revocation_event *ev);

#endif
