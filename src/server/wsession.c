/* Centrifugo protocol sessions over WebSocket (docs/WEBSOCKET.md, "Session"). A session moves from
 * handshake to connected once a token has passed the authenticator chain and the revocation store;
 * every later command is run through the channel API or sl_authorize with the session's identity,
 * so the registry decides access, never this file. Authenticators and revocation stores may answer
 * asynchronously: while one is running, parsed commands wait in the session's queue and run in
 * order afterwards. Timers (handshake, ping/pong, expiry) are one periodic sweep over all sessions
 * rather than a timer per connection, which keeps an idle session small.
 *
 * This file holds a session's lifetime and output, its subscriptions' bookkeeping, the waits for
 * the channel API and a new session's set-up; the commands read from its socket (the rate, the
 * queue, dispatch) are ws_dispatch.c, the server (its sessions' list, the sweep, the upgrade) is
 * ws_server.c, and the commands themselves and the reactions to the context's events live in the
 * other ws_*.c files beside it (server/ws_session.h).
 *
 * Lifetime: a session is freed when its socket is gone and no callback still refers to it
 * (`refs`); every entry point holds a reference while it works, because closing a socket can end
 * it from inside the call. */
#include "server/wsession.h"

#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "core/metrics.h"
#include "net/centrifuge.h"
#include "net/ws.h"
#include "server/hub.h"
#include "server/params.h"
#include "server/router.h"
#include "server/ws_session.h"
#include "security/workspace.h"

/* An idle authenticated, subscribed connection costs at most 3 KiB of server memory (issue 13,
 * docs/WEBSOCKET.md "Memory per connection"): the transport under it ~1.7 KiB (test_idle_memory),
 * the session the rest. What a session needs only for a moment (identities, the workspace
 * asked for) lives on the heap while it is needed, so this holds on 64-bit builds. */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(sess) <= 1088, "an idle session's share of the 3 KiB per connection");
#endif

#define ERROR_WINDOW 10.0 /* seconds over which max_errors is counted */
/* Bytes kept free in a reply's budget for its envelope around the message text. */
#define REPLY_ENVELOPE 4096

void sl__wss_limits_init(sl__wss_limits *l)
{
    l->max_connections = 10000;
    l->max_subscriptions = 128;
    l->max_message = 64 * 1024;
    l->max_outgoing = 1024 * 1024;
    l->commands_per_second = 1000;
    l->max_errors = 100;
    l->handshake_timeout = 5;
    l->ping_interval = 25;
    l->pong_timeout = 10;
    l->refresh_grace = 5;
    l->history_max = 1000;
}

double sl__sess_now(const sess *s)
{
    return sl_ctx_now(s->srv->ctx);
}

/* ---- lifetime and output ------------------------------------------------------------------- */

static void sess_free(sess *s)
{
    sl__cf_commands_clear(s->queue, s->nqueue);
    free(s->queue);
    sl__cf_commands_clear(s->pending, s->pending ? 1 : 0);
    free(s->pending);
    free(s->url_token);
    free(s->cross);
    sl__sess_identity_free(&s->upgrade_who);
    sl_identity_clear(&s->who);
    sl__sess_identity_free(&s->sub_tok);
    free(s->subs);
    sl__cf_buf_free(&s->peer.out);
    free(s);
}

sl_identity *sl__sess_identity_dup(const sl_identity *who)
{
    sl_identity *id = malloc(sizeof *id);
    if (id == NULL)
        return NULL;
    sl_identity_init(id);
    if (sl_identity_copy(id, who) != SL_OK) {
        free(id);
        return NULL;
    }
    return id;
}

void sl__sess_identity_free(sl_identity **p)
{
    if (*p == NULL)
        return;
    sl_identity_clear(*p);
    free(*p);
    *p = NULL;
}

void sl__sess_ref(sess *s)
{
    s->refs++;
}

void sl__sess_unref(sess *s)
{
    if (--s->refs == 0 && s->gone)
        sess_free(s);
}

/* Schedules the pending batch. A closed session sends nothing more: what a command appended
 * after the close is dropped with the session. */
void sl__sess_touch(sess *s)
{
    if (s->state != ST_CLOSED)
        sl__hub_peer_touch(s->srv->hub, &s->peer);
}

void sl__sess_sub_free(sl__hub_sub *sub)
{
    if (sub)
        free(sub->token_id);
    free(sub);
}

/* Drops every subscription (leave pushes to the others). */
static void drop_all(sess *s)
{
    for (size_t i = 0; i < s->nsubs; i++) {
        sl__hub_unsubscribe(s->srv->hub, s->subs[i]);
        sl__sess_sub_free(s->subs[i]);
    }
    if (s->srv->ctx->metrics)
        s->srv->ctx->metrics->ws_subscribed -= (int64_t)s->nsubs;
    s->nsubs = 0;
    free(s->subs);
    s->subs = NULL;
    s->subcap = 0;
}

void sl__sess_log(sess *s, int level, const char *msg, int code, const char *reason)
{
    sl__log *log = s->srv->log;
    if (log == NULL || !sl__log_enabled(log, (sl__log_level)level))
        return;
    sl__log_field f[] = {
        {.key = "code", .type = SL__LF_INT, .num = code},
        {.key = "reason", .type = SL__LF_STR, .str = reason},
        {.key = "principal",
         .type = SL__LF_STR,
         .str = s->state == ST_CONNECTED && s->who.principal[0] ? s->who.principal : NULL},
        {.key = "client", .type = SL__LF_STR, .str = s->client[0] ? s->client : NULL},
        {.key = "remote", .type = SL__LF_STR, .str = s->remote},
    };
    size_t skip = code == 0; /* no code: start at reason */
    sl__log_write(log, (sl__log_level)level, s->rid[0] ? s->rid : NULL, msg, f + skip,
                  sizeof f / sizeof *f - skip);
}

/* Ends the session with a Centrifugo disconnect code: what is already batched goes out first. */
void sl__sess_close(sess *s, int code, const char *reason)
{
    if (s->state == ST_CLOSED)
        return;
    sl__sess_log(s, code == SL__CF_DISC_SHUTDOWN ? SL__LOG_DEBUG : SL__LOG_INFO, "ws closed", code,
                 reason ? reason : sl__cf_code_message(code));
    s->state = ST_CLOSED;
    sl__metrics_ws_disconnect(s->srv->ctx->metrics, code);
    drop_all(s);
    sl__cf_buf batch = s->peer.out;
    sl__cf_buf_init(&s->peer.out);
    sl__hub_peer_detach(s->srv->hub, &s->peer);
    sl__sess_ref(s);
    if (s->conn && batch.len)
        sl_ws_send_text(s->conn, batch.data, batch.len);
    sl__cf_buf_free(&batch);
    if (s->conn)
        sl_ws_close(s->conn, code, reason ? reason : sl__cf_code_message(code));
    sl__sess_unref(s);
}

static void peer_flush(sl__hub_peer *p, const char *data, size_t len)
{
    sess *s = (sess *)p;
    if (s->state == ST_CLOSED || s->conn == NULL)
        return;
    if (s->srv->ctx->metrics)
        s->srv->ctx->metrics->ws_bytes_out += len;
    sl__sess_ref(s);
    if (s->slow || (len > 0 && sl_ws_queue_text(s->conn, data, len) == SL_ELIMIT))
        sl__sess_close(s, SL__CF_DISC_SLOW, NULL);
    else
        sl_ws_flush(s->conn);
    sl__sess_unref(s);
}

static void peer_queue(sl__hub_peer *p, sl_ws_frame *f)
{
    sess *s = (sess *)p;
    if (s->state == ST_CLOSED || s->conn == NULL || s->slow)
        return;
    int rc = SL_OK;
    if (s->srv->ctx->metrics)
        s->srv->ctx->metrics->ws_bytes_out += p->out.len + sl_ws_frame_len(f);
    if (p->out.len > 0) { /* replies and pushes batched before this one go first */
        rc = sl_ws_queue_text(s->conn, p->out.data, p->out.len);
        sl__cf_buf_reset(&p->out);
    }
    if (rc == SL_OK)
        rc = sl_ws_queue_frame(s->conn, f);
    if (rc == SL_ELIMIT || rc == SL_ENOMEM)
        s->slow = 1; /* closing here would change the subscriber list the hub is walking */
}

static void remove_sub_at(sess *s, size_t i)
{
    sl__sess_sub_free(s->subs[i]);
    s->subs[i] = s->subs[--s->nsubs];
    if (s->srv->ctx->metrics)
        s->srv->ctx->metrics->ws_subscribed--;
}

static void peer_dropped(sl__hub_peer *p, sl__hub_sub *sub)
{
    sess *s = (sess *)p;
    for (size_t i = 0; i < s->nsubs; i++)
        if (s->subs[i] == sub) {
            remove_sub_at(s, i);
            return;
        }
}

static void peer_resume(sl__hub_peer *p)
{
    sl__sess_resume_reading((sess *)p);
}

static const sl__hub_peer_ops peer_ops = {
    .flush = peer_flush, .queue = peer_queue, .dropped = peer_dropped, .resume = peer_resume};

void sl__sess_reply_error(sess *s, uint32_t id, int code, const char *message)
{
    if (code == SL__CF_ERR_PERMISSION_DENIED)
        sl__sess_log(s, SL__LOG_INFO, "denied", code,
                     message ? message : sl__cf_code_message(code));
    sl__cf_reply_error(&s->peer.out, id, code, message);
    sl__sess_touch(s);
    if (code == SL__CF_ERR_TOO_MANY_REQUESTS)
        return; /* the rate limit answers for itself; it must not also count as misbehaviour */
    double now = sl__sess_now(s);
    if (now - s->err_start >= ERROR_WINDOW) {
        s->err_start = now;
        s->errs = 0;
    }
    if (++s->errs > s->srv->lim.max_errors)
        sl__sess_close(s, SL__CF_DISC_TOO_MANY_ERRORS, NULL);
}

/* An error of the channel API or the pipeline, answered with its Centrifugo code and the code's
 * standard message: a status message may name channels the caller cannot see. */
void sl__sess_reply_rc(sess *s, uint32_t id, int rc)
{
    sl__sess_reply_error(s, id, sl__cf_error_from_errno(rc), NULL);
}

/* A reply over the byte bound (ws_max_outgoing, or the server's read_max_bytes when lower): error
 * 106 rather than closing the socket with 3008. */
void sl__sess_reply_too_big(sess *s, uint32_t id)
{
    size_t bound = s->srv->lim.max_outgoing, cap = sl_ctx_read_max_bytes(s->srv->ctx);
    int by_cap = cap > 0 && cap < bound;
    char msg[128];
    snprintf(msg, sizeof msg, "reply would exceed %zu bytes (%s): ask for fewer",
             by_cap ? cap : bound, by_cap ? "read_max_bytes" : "ws_max_outgoing");
    sl__sess_reply_error(s, id, SL__CF_ERR_LIMIT_EXCEEDED, msg);
}

uint32_t sl__sess_ttl_until(double exp, double now)
{
    double t = ceil(exp - now);
    return t < 1 ? 1 : t > 4e9 ? 4000000000u : (uint32_t)t;
}

/* ---- subscriptions -------------------------------------------------------------------------- */

sl__hub_sub *sl__sess_find_sub(sess *s, const char *channel, size_t *idx)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i]->channel, channel) == 0) {
            if (idx)
                *idx = i;
            return s->subs[i];
        }
    return NULL;
}

void sl__sess_unsubscribe_at(sess *s, size_t i, int push_code, const char *reason)
{
    sl__hub_sub *sub = s->subs[i];
    if (push_code) {
        sl__cf_push_unsubscribe(&s->peer.out, sub->channel, push_code, reason);
        sl__sess_touch(s);
    }
    sl__hub_unsubscribe(s->srv->hub, sub);
    remove_sub_at(s, i);
}

/* Takes command c over (the caller's copy is left empty) as the one the session waits on until
 * a callback takes it back (take_command); later commands queue meanwhile. NULL after answering
 * an internal error. */
sl__cf_command *sl__sess_hold_command(sess *s, sl__cf_command *c)
{
    sl__cf_command *p = malloc(sizeof *p);
    if (p == NULL) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return NULL;
    }
    *p = *c;
    memset(c, 0, sizeof *c);
    s->pending = p;
    s->busy = 1;
    sl__sess_ref(s);
    return p;
}

/* The held command, given back to the callback that owns it now (free it, then unref). */
sl__cf_command *sl__sess_take_command(sess *s)
{
    sl__cf_command *c = s->pending;
    s->pending = NULL;
    s->busy = 0;
    return c;
}

/* Message bytes a reply may still carry: what the session's outgoing bound (ws_max_outgoing) leaves
 * after the batch already pending and some room for the reply's own envelope. Replies larger than
 * that would end the session with 3008 instead of answering. */
size_t sl__sess_reply_room(const sess *s)
{
    size_t used = s->peer.out.len + REPLY_ENVELOPE;
    return used < s->srv->lim.max_outgoing ? s->srv->lim.max_outgoing - used : 1;
}

/* 1 when the reply just appended to the batch from `start` on left it over ws_max_outgoing; the
 * reply is then taken out again. */
int sl__sess_reply_overflowed(sess *s, size_t start)
{
    if (s->peer.out.len <= s->srv->lim.max_outgoing)
        return 0;
    sl__cf_buf_truncate(&s->peer.out, start);
    return 1;
}

/* ---- waiting for the channel API ------------------------------------------------------------ */

void sl__wait_free(wait *w)
{
    sl__chop_clear(&w->op);
    sl__cf_command_clear(&w->cmd);
    sl_identity_clear(&w->tok);
    json_decref(w->data);
    for (size_t i = 0; i < w->nws; i++)
        free(w->texts[2 * i]), free(w->texts[2 * i + 1]);
    free(w->texts);
    free(w->ws);
    free(w->items);
    free(w->text);
    free(w->meta);
    free(w->ids);
    free(w);
}

/* Ends the hub's pending mark the session's subscribe holds; while the server (and its hub)
 * still exist: the session gives it back when its socket goes, before the server can. */
static void give_back_mark(sess *s)
{
    wait *w = s->marked;
    s->marked = NULL;
    w->prepared = 0;
    sl__hub_abandon(s->srv->hub, w->op.channel);
}

/* Replies to the publications in flight that are answered, up to the first one still waiting. */
static void land(sess *s)
{
    while (s->fly_head && s->fly_head->fly == 2) {
        wait *w = s->fly_head;
        s->fly_head = w->fly_next;
        if (s->fly_head == NULL)
            s->fly_tail = NULL;
        s->nfly--;
        if (!s->gone && s->state == ST_CONNECTED)
            w->cont(s, w);
        sl__wait_free(w);
        sl__sess_unref(s);
    }
}

void sl__wait_done(sl__chop *op)
{
    wait *w = op->ud;
    sess *s = w->s;
    if (w->fly) { /* in flight (wait_fly) */
        sl__sess_ref(s);
        w->fly = 2;
        land(s);
        if (!s->gone && !s->busy)
            sl__sess_run_queue(s);
        sl__sess_unref(s);
        return;
    }
    s->busy = 0;
    if (!s->gone && s->state == ST_CONNECTED)
        w->cont(s, w); /* may wait again, taking the command over */
    if (w->prepared)   /* a subscription that did not get as far as linking */
        give_back_mark(s);
    sl__wait_free(w);
    if (!s->gone && !s->busy)
        sl__sess_run_queue(s);
    sl__sess_unref(s);
}

/* A wait for command c (taken over: the caller's copy is left empty), or NULL after answering
 * an internal error. */
wait *sl__wait_new(sess *s, sl__cf_command *c, sl_op op, const char *channel)
{
    wait *w = calloc(1, sizeof *w);
    if (w == NULL) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return NULL;
    }
    w->s = s;
    int own = channel == c->channel;
    w->cmd = *c;
    memset(c, 0, sizeof *c);
    sl_identity_init(&w->tok);
    w->op.op = op;
    w->op.who = &s->who;
    w->op.channel = own ? w->cmd.channel : channel;
    return w;
}

/* Like wait_submit, but the session goes on with its next commands meanwhile (see fly_head). */
void sl__wait_fly(sess *s, wait *w, wait_cont cont)
{
    w->cont = cont;
    w->op.done = sl__wait_done;
    w->op.ud = w;
    w->fly = 1;
    if (s->fly_tail)
        s->fly_tail->fly_next = w;
    else
        s->fly_head = w;
    s->fly_tail = w;
    s->nfly++;
    sl__sess_ref(s);
    sl__channel_submit(s->srv->ctx, &w->op);
}

void sl__wait_submit(sess *s, wait *w, wait_cont cont)
{
    w->cont = cont;
    w->op.done = sl__wait_done;
    w->op.ud = w;
    s->busy = 1;
    sl__sess_ref(s);
    sl__channel_submit(s->srv->ctx, &w->op);
}

/* ---- the socket's end ------------------------------------------------------------------------ */

static void unlink_sess(sess *s)
{
    sl__wss_server *srv = s->srv;
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->nsessions--;
    if (srv->ctx->metrics)
        srv->ctx->metrics->ws_sessions--;
}

static void on_close(sl_ws_conn *conn, int code, void *ud)
{
    sess *s = ud;
    s->conn = NULL;
    s->state = ST_CLOSED;
    drop_all(s);
    if (s->marked)
        give_back_mark(s);
    sl__hub_peer_detach(s->srv->hub, &s->peer);
    sl__ws_disconnect(s->srv->ctx->workspaces, s->counted);
    s->counted[0] = '\0';
    unlink_sess(s);
    s->gone = 1;
    sl__sess_ref(s);
    sl__sess_unref(s); /* frees now unless a callback is still due */
}

/* ---- a new session -------------------------------------------------------------------------- */

void sl__sess_open(sl__wss_server *srv, sl_http_request *req, const sl_identity *signer)
{
    sess *s = calloc(1, sizeof *s);
    unsigned char rnd[8];
    if (s == NULL || RAND_bytes(rnd, sizeof rnd) != 1) {
        free(s);
        sl_http_respond(req, 503, "Retry-After: 1\r\n", "application/json",
                        "{\"error\":\"unavailable\",\"message\":\"out of memory\"}", 49);
        return;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(s->client + 2 * i, 3, "%02x", rnd[i]);
    s->srv = srv;
    sl_identity_init(&s->who);
    if (signer && signer->source != SL_SOURCE_NONE &&
        (s->upgrade_who = sl__sess_identity_dup(signer)) == NULL) {
        free(s);
        sl_http_respond(req, 503, "Retry-After: 1\r\n", "application/json",
                        "{\"error\":\"unavailable\",\"message\":\"out of memory\"}", 49);
        return;
    }
    sl__hub_peer_init(&s->peer, &peer_ops);
    double now = sl_ctx_now(srv->ctx);
    s->deadline = now + srv->lim.handshake_timeout;
    s->since = now;
    snprintf(s->remote, sizeof s->remote, "%s", req->remote_addr);
    snprintf(s->rid, sizeof s->rid, "%s", req->request_id);
    s->win_start = s->err_start = now;
    /* The URL token is decoded now: the request is gone after the upgrade. Never logged. */
    char *tok = malloc(SL__CF_MAX_TOKEN + 1);
    if (tok && sl__http_query_get(req, "token", tok, SL__CF_MAX_TOKEN + 1) == 1 && *tok)
        s->url_token = tok;
    else
        free(tok);
    sl_ws_limits wl;
    sl_ws_limits_init(&wl);
    wl.max_message = srv->lim.max_message;
    wl.max_outgoing = srv->lim.max_outgoing;
    sl_ws_callbacks cb = {.on_text = sl__sess_on_text, .on_close = on_close};
    if (sl_ws_accept(req, &wl, &cb, s, &s->conn) != SL_OK) {
        sess_free(s);
        return;
    }
    s->next = srv->head;
    if (srv->head)
        srv->head->prev = s;
    srv->head = s;
    srv->nsessions++;
    if (srv->ctx->metrics) {
        srv->ctx->metrics->ws_connections++;
        srv->ctx->metrics->ws_sessions++;
    }
    if (srv->nsessions > srv->lim.max_connections)
        sl__sess_close(s, SL__CF_DISC_CONNECTION_LIMIT, NULL);
}
