/* Centrifugo protocol sessions over WebSocket (docs/WEBSOCKET.md, "Session"). A session moves from
 * handshake to connected once a token has passed the authenticator chain and the revocation store;
 * every later command is run through the channel API or sl_authorize with the session's identity,
 * so the registry decides access, never this file. Authenticators and revocation stores may answer
 * asynchronously: while one is running, parsed commands wait in the session's queue and run in
 * order afterwards. Timers (handshake, ping/pong, expiry) are one periodic sweep over all sessions
 * rather than a timer per connection, which keeps an idle session small.
 *
 * Lifetime: a session is freed when its socket is gone and no callback still refers to it
 * (`refs`); every entry point holds a reference while it works, because closing a socket can end
 * it from inside the call. */
#include "server/wsession.h"

#include <jansson.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "core/message.h"
#include "core/msgjson.h"
#include "net/centrifuge.h"
#include "net/ws.h"
#include "server/hub.h"
#include "server/params.h"
#include "server/router.h"
#include "security/workspace.h"
#include "core/metrics.h" /* (A14) */

#define SWEEP_MS 200
#define ERROR_WINDOW 10.0 /* seconds over which max_errors is counted */
#define VERSION "0.1.0"
#define RPC_MAX_LIMIT 1000
/* Bytes kept free in a reply's budget for its envelope around the message text. */
#define REPLY_ENVELOPE 4096
#define RPC_MAX_IDS 10000
#define RPC_MAX_BATCH 1000 /* messages per queue.batch, as over HTTP */
/* Publications a session may have waiting for the channel API at once. One at a time, a publisher
 * on a shared engine would get one round trip to Redis per loop iteration, and a busy iteration
 * (fanning out to thousands of sockets) makes that far slower than a client publishes. */
#define MAX_IN_FLIGHT 32
/* Commands read but not yet started. The socket is not read while any wait, so only the frames
 * of the read already done can add to them: the bound is for a client that packs a read full. */
#define QUEUE_MAX (8 * SL__CF_MAX_COMMANDS)

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
    /* part C, workspaces: the workspace an operator's connect asked to work in ("" none), and
     * the workspace whose connections limit counts this session ("" none) */
    char cross[SL_WORKSPACE_MAX + 1];
    char counted[SL_WORKSPACE_MAX + 1];
    /* Publications in flight (at most MAX_IN_FLIGHT), oldest first: their replies go out in this
     * order, whatever order the channel API answers them in. Any other command waits until none
     * is in flight, so that it sees their effects. */
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
    sl_identity sub_tok; /* (A) a `$` subscribe's verified token while a policy regime is asked */
    char *url_token;     /* ?token= until connect */
    /* Who the upgrade request's own credential (an RFC 9421 signature, a client certificate)
     * named, so a connect without a token is that identity (source SL_SOURCE_NONE: none). */
    sl_identity upgrade_who;
    char client[17];
    sl_identity who;
    sl__hub_sub **subs;
    size_t nsubs, subcap;
    double deadline; /* handshake: connect by then */
    double next_ping, pong_due;
    double win_start, err_start;
    unsigned win_cmds, errs;
    /* (C) for the server API: the peer's address and when the socket opened */
    char remote[64];
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
    sl__map *published; /* (C) channel id -> uint64_t: writes this node was told of */
};

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

static double now_of(const sess *s)
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
    sl_identity_clear(&s->upgrade_who);
    sl_identity_clear(&s->who);
    sl_identity_clear(&s->sub_tok);
    free(s->subs);
    sl__cf_buf_free(&s->peer.out);
    free(s);
}

static void ref(sess *s)
{
    s->refs++;
}

static void unref(sess *s)
{
    if (--s->refs == 0 && s->gone)
        sess_free(s);
}

/* Schedules the pending batch. A closed session sends nothing more: what a command appended
 * after the close is dropped with the session. */
static void touch(sess *s)
{
    if (s->state != ST_CLOSED)
        sl__hub_peer_touch(s->srv->hub, &s->peer);
}

static void sub_free(sl__hub_sub *sub)
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
        sub_free(s->subs[i]);
    }
    if (s->srv->ctx->metrics) /* (A14) */
        s->srv->ctx->metrics->ws_subscribed -= (int64_t)s->nsubs;
    s->nsubs = 0;
    free(s->subs);
    s->subs = NULL;
    s->subcap = 0;
}

/* Ends the session with a Centrifugo disconnect code: what is already batched goes out first. */
static void close_with(sess *s, int code, const char *reason)
{
    if (s->state == ST_CLOSED)
        return;
    s->state = ST_CLOSED;
    sl__metrics_ws_disconnect(s->srv->ctx->metrics, code); /* (A14) */
    drop_all(s);
    sl__cf_buf batch = s->peer.out;
    sl__cf_buf_init(&s->peer.out);
    sl__hub_peer_detach(s->srv->hub, &s->peer);
    ref(s);
    if (s->conn && batch.len)
        sl_ws_send_text(s->conn, batch.data, batch.len);
    sl__cf_buf_free(&batch);
    if (s->conn)
        sl_ws_close(s->conn, code, reason ? reason : sl__cf_code_message(code));
    unref(s);
}

static void peer_flush(sl__hub_peer *p, const char *data, size_t len)
{
    sess *s = (sess *)p;
    if (s->state == ST_CLOSED || s->conn == NULL)
        return;
    if (s->srv->ctx->metrics) /* (A14) */
        s->srv->ctx->metrics->ws_bytes_out += len;
    ref(s);
    if (s->slow || (len > 0 && sl_ws_queue_text(s->conn, data, len) == SL_ELIMIT))
        close_with(s, SL__CF_DISC_SLOW, NULL);
    else
        sl_ws_flush(s->conn);
    unref(s);
}

static void peer_queue(sl__hub_peer *p, sl_ws_frame *f)
{
    sess *s = (sess *)p;
    if (s->state == ST_CLOSED || s->conn == NULL || s->slow)
        return;
    int rc = SL_OK;
    if (s->srv->ctx->metrics) /* (A14) */
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
    sub_free(s->subs[i]);
    s->subs[i] = s->subs[--s->nsubs];
    if (s->srv->ctx->metrics) /* (A14) */
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

/* Reads from the socket again unless commands still wait (run_queue resumes once they have run)
 * or the hub's batches are over budget (the hub resumes once they are out). */
static void resume_reading(sess *s)
{
    if (s->conn == NULL || s->state == ST_CLOSED || s->nqueue > 0)
        return;
    if (sl__hub_busy(s->srv->hub)) {
        sl__hub_hold(s->srv->hub, &s->peer);
        return;
    }
    sl_ws_pause(s->conn, 0);
}

static void peer_resume(sl__hub_peer *p)
{
    resume_reading((sess *)p);
}

static const sl__hub_peer_ops peer_ops = {
    .flush = peer_flush, .queue = peer_queue, .dropped = peer_dropped, .resume = peer_resume};

static void reply_error(sess *s, uint32_t id, int code, const char *message)
{
    sl__cf_reply_error(&s->peer.out, id, code, message);
    touch(s);
    if (code == SL__CF_ERR_TOO_MANY_REQUESTS)
        return; /* the rate limit answers for itself; it must not also count as misbehaviour */
    double now = now_of(s);
    if (now - s->err_start >= ERROR_WINDOW) {
        s->err_start = now;
        s->errs = 0;
    }
    if (++s->errs > s->srv->lim.max_errors)
        close_with(s, SL__CF_DISC_TOO_MANY_ERRORS, NULL);
}

/* An error of the channel API or the pipeline, answered with its Centrifugo code and the code's
 * standard message: a status message may name channels the caller cannot see. */
static void reply_rc(sess *s, uint32_t id, int rc)
{
    reply_error(s, id, sl__cf_error_from_errno(rc), NULL);
}

/* A reply over the byte bound (ws_max_outgoing, or the server's read_max_bytes when lower): error
 * 106 rather than closing the socket with 3008. */
static void reply_too_big(sess *s, uint32_t id)
{
    size_t bound = s->srv->lim.max_outgoing, cap = sl_ctx_read_max_bytes(s->srv->ctx);
    int by_cap = cap > 0 && cap < bound;
    char msg[128];
    snprintf(msg, sizeof msg, "reply would exceed %zu bytes (%s): ask for fewer",
             by_cap ? cap : bound, by_cap ? "read_max_bytes" : "ws_max_outgoing");
    reply_error(s, id, SL__CF_ERR_LIMIT_EXCEEDED, msg);
}

static uint32_t ttl_until(double exp, double now)
{
    double t = ceil(exp - now);
    return t < 1 ? 1 : t > 4e9 ? 4000000000u : (uint32_t)t;
}

/* ---- subscriptions -------------------------------------------------------------------------- */

static sl__hub_sub *find_sub(sess *s, const char *channel, size_t *idx)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i]->channel, channel) == 0) {
            if (idx)
                *idx = i;
            return s->subs[i];
        }
    return NULL;
}

static void unsubscribe_at(sess *s, size_t i, int push_code, const char *reason)
{
    sl__hub_sub *sub = s->subs[i];
    if (push_code) {
        sl__cf_push_unsubscribe(&s->peer.out, sub->channel, push_code, reason);
        touch(s);
    }
    sl__hub_unsubscribe(s->srv->hub, sub);
    remove_sub_at(s, i);
}

/* After the identity or the ACL changed: subscriptions no longer allowed end with push 2000; those
 * a policy regime could not decide on (an outage) with 2500, which clients answer by subscribing
 * again. A subscription the regime was not asked about (made while it was being asked) keeps its
 * own decision, taken when it subscribed. */
static void reauthorize_now(sess *s)
{
    const sl_op_info *read = sl_op_lookup(SL_OP_CHANNEL_READ);
    for (size_t i = s->nsubs; i-- > 0;) {
        int rc = sl__authz_decide(s->srv->ctx, &s->who, read, s->subs[i]->channel, NULL, NULL);
        if (rc == SL_EUNAVAIL) /* the regime could not say: fail closed, the client comes back */
            unsubscribe_at(s, i, SL__CF_UNSUB_INSUFFICIENT_STATE, "authorisation unavailable");
        else if (rc != SL_OK && rc != SL__AUTHZ_ASK)
            unsubscribe_at(s, i, SL__CF_UNSUB_SERVER, "permission withdrawn");
    }
}

static void reauthorized(void *ud)
{
    sess *s = ud;
    if (!s->gone)
        reauthorize_now(s);
    unref(s);
}

/* (A) Channels under a policy regime are asked again first (one authorise_many), from the loop. */
static void reauthorize(sess *s)
{
    const char **chans = s->nsubs ? malloc(s->nsubs * sizeof *chans) : NULL;
    for (size_t i = 0; chans && i < s->nsubs; i++)
        chans[i] = s->subs[i]->channel;
    if (chans && sl__authz_needs(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, chans, s->nsubs)) {
        ref(s);
        sl__authz_prepare(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, chans, s->nsubs, reauthorized,
                          s);
    } else {
        reauthorize_now(s);
    }
    free(chans);
}

/* A credential whose exp has passed is refused with 109 even inside the verifier's clock-skew
 * leeway: the session would otherwise end moments after it began (3005), and a client reconnecting
 * with the same token would loop instead of fetching a new one. */
static int expired_now(const sl_identity *who, double now)
{
    return who->expires_at > 0 && who->expires_at <= now;
}

static void cmd_subscribe(sess *s, sl__cf_command *c, const sl_identity *tok);
static void cmd_sub_refresh(sess *s, sl__cf_command *c, const sl_identity *tok);
static void run_queue(sess *s);

/* Takes command c over (the caller's copy is left empty) as the one the session waits on until
 * a callback takes it back (take_command); later commands queue meanwhile. NULL after answering
 * an internal error. */
static sl__cf_command *hold_command(sess *s, sl__cf_command *c)
{
    sl__cf_command *p = malloc(sizeof *p);
    if (p == NULL) {
        reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return NULL;
    }
    *p = *c;
    memset(c, 0, sizeof *c);
    s->pending = p;
    s->busy = 1;
    ref(s);
    return p;
}

/* The held command, given back to the callback that owns it now (free it, then unref). */
static sl__cf_command *take_command(sess *s)
{
    sl__cf_command *c = s->pending;
    s->pending = NULL;
    s->busy = 0;
    return c;
}

/* (A) The `$` subscribe goes on with the policy regime's answer at hand (its first check was
 * decided before the token was: an answer the regime gave with TTL 0 is gone by now). */
static void on_sub_prepared(void *ud)
{
    sess *s = ud;
    sl__cf_command *c = take_command(s);
    if (!s->gone && s->state == ST_CONNECTED)
        cmd_subscribe(s, c, &s->sub_tok);
    sl_identity_clear(&s->sub_tok);
    sl__cf_command_clear(c);
    free(c);
    if (!s->gone && !s->busy)
        run_queue(s);
    unref(s);
}

/* 1 when the regime is being asked first (c taken over, tok copied), else 0. */
static int policy_first(sess *s, sl__cf_command *c, const sl_identity *tok)
{
    if (!sl__authz_needs(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, (const char *const *)&c->channel,
                         1) ||
        sl_identity_copy(&s->sub_tok, tok) != SL_OK)
        return 0;
    sl__cf_command *p = hold_command(s, c);
    if (p == NULL) {
        sl_identity_clear(&s->sub_tok);
        return 1; /* answered (internal error) */
    }
    const char *ch = p->channel;
    sl__authz_prepare(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, &ch, 1, on_sub_prepared, s);
    return 1;
}

/* The subscription token of a `$` channel answered (revocation included): the command that waited
 * for it goes on, or gets 109 when expired, 103 when it does not verify or is revoked, 100 when
 * the revocation store cannot answer; a valid token of another user or channel ends the session. */
static void on_sub_token(void *ud, int status, const sl_identity *who, const char *reason)
{
    sess *s = ud;
    sl__cf_command *c = take_command(s);
    if (status == SL_OK && expired_now(who, now_of(s)))
        status = SL_EEXPIRED;
    if (!s->gone && s->state == ST_CONNECTED) {
        if (status == SL_OK && c->method == SL__CF_SUBSCRIBE && policy_first(s, c, who))
            ; /* on_sub_prepared goes on */
        else if (status == SL_OK && c->method == SL__CF_SUBSCRIBE)
            cmd_subscribe(s, c, who);
        else if (status == SL_OK)
            cmd_sub_refresh(s, c, who);
        else if (status == SL_EFORBIDDEN)
            close_with(s, SL__CF_DISC_INVALID_TOKEN, NULL);
        else
            reply_error(s, c->id,
                        status == SL_EEXPIRED   ? SL__CF_ERR_TOKEN_EXPIRED
                        : status == SL_EUNAVAIL ? SL__CF_ERR_INTERNAL
                                                : SL__CF_ERR_PERMISSION_DENIED,
                        NULL);
    }
    sl__cf_command_clear(c);
    free(c);
    if (!s->gone)
        run_queue(s);
    unref(s);
}

/* Takes c over and checks its subscription token; later commands wait until the answer. */
static void check_sub_token(sess *s, sl__cf_command *c)
{
    sl__cf_command *p = hold_command(s, c);
    if (p == NULL)
        return;
    sl_authn_subscription_run(s->srv->authn, p->token, s->who.principal, sl__ws_name(p->channel),
                              now_of(s), on_sub_token, s);
}

/* Records the subscription token a `$` subscription holds, so that its revocation ends it. */
static int hold_token(sl__hub_sub *sub, const sl_identity *tok)
{
    char *id = tok->token_id[0] ? strdup(tok->token_id) : NULL;
    if (tok->token_id[0] && id == NULL)
        return SL_ENOMEM;
    free(sub->token_id);
    sub->token_id = id;
    sub->token_issued_at = tok->issued_at;
    sub->token_expires_at = tok->expires_at;
    return SL_OK;
}

/* At most limit publications of channel after offset `after`, through the channel API so the
 * read is authorised like any other. */
/* Message bytes a reply may still carry: what the session's outgoing bound (ws_max_outgoing) leaves
 * after the batch already pending and some room for the reply's own envelope. Replies larger than
 * that would end the session with 3008 instead of answering. */
static size_t reply_room(const sess *s)
{
    size_t used = s->peer.out.len + REPLY_ENVELOPE;
    return used < s->srv->lim.max_outgoing ? s->srv->lim.max_outgoing - used : 1;
}

/* 1 when the reply just appended to the batch from `start` on left it over ws_max_outgoing; the
 * reply is then taken out again. */
static int reply_overflowed(sess *s, size_t start)
{
    if (s->peer.out.len <= s->srv->lim.max_outgoing)
        return 0;
    sl__cf_buf_truncate(&s->peer.out, start);
    return 1;
}

/* ---- waiting for the channel API ------------------------------------------------------------ */

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

static void wait_free(wait *w)
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
        wait_free(w);
        unref(s);
    }
}

static void wait_done(sl__chop *op)
{
    wait *w = op->ud;
    sess *s = w->s;
    if (w->fly) { /* in flight (wait_fly) */
        ref(s);
        w->fly = 2;
        land(s);
        if (!s->gone && !s->busy)
            run_queue(s);
        unref(s);
        return;
    }
    s->busy = 0;
    if (!s->gone && s->state == ST_CONNECTED)
        w->cont(s, w); /* may wait again, taking the command over */
    if (w->prepared)   /* a subscription that did not get as far as linking */
        give_back_mark(s);
    wait_free(w);
    if (!s->gone && !s->busy)
        run_queue(s);
    unref(s);
}

/* A wait for command c (taken over: the caller's copy is left empty), or NULL after answering
 * an internal error. */
static wait *wait_new(sess *s, sl__cf_command *c, sl_op op, const char *channel)
{
    wait *w = calloc(1, sizeof *w);
    if (w == NULL) {
        reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
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
static void wait_fly(sess *s, wait *w, wait_cont cont)
{
    w->cont = cont;
    w->op.done = wait_done;
    w->op.ud = w;
    w->fly = 1;
    if (s->fly_tail)
        s->fly_tail->fly_next = w;
    else
        s->fly_head = w;
    s->fly_tail = w;
    s->nfly++;
    ref(s);
    sl__channel_submit(s->srv->ctx, &w->op);
}

static void wait_submit(sess *s, wait *w, wait_cont cont)
{
    w->cont = cont;
    w->op.done = wait_done;
    w->op.ud = w;
    s->busy = 1;
    ref(s);
    sl__channel_submit(s->srv->ctx, &w->op);
}

/* Publications for a reply; infos (n entries) hold the publishers of those made over a socket. */
static void pubs_of(const sl_message_list *l, size_t n, sl__cf_pub *pubs, sl__cf_client_info *infos,
                    int reverse)
{
    for (size_t i = 0; i < n; i++) {
        const sl_message *m = &l->items[reverse ? n - 1 - i : i];
        infos[i] = (sl__cf_client_info){.client = m->origin, .user = m->sender_id};
        pubs[i] = (sl__cf_pub){.data = m->data,
                               .data_len = strlen(m->data),
                               .offset = sl__hub_offset_of(m->id),
                               .info = m->origin ? &infos[i] : NULL};
    }
}

static void subscribe_cont(sess *s, wait *w);
static void subscribe_watched(void *ud, int rc);

/* tok: NULL on arrival; for a `$` channel the same command again once its subscription token
 * passed (everything is checked anew: the channel or the grant may have changed meanwhile). The
 * stream position, and the publications missed when recovering, come from the channel API. */
static void cmd_subscribe(sess *s, sl__cf_command *c, const sl_identity *tok)
{
    sl__wss_server *srv = s->srv;
    if (find_sub(s, c->channel, NULL)) {
        reply_error(s, c->id, SL__CF_ERR_ALREADY_SUBSCRIBED, NULL);
        return;
    }
    if (s->nsubs >= srv->lim.max_subscriptions) {
        close_with(s, SL__CF_DISC_CHANNEL_LIMIT, NULL);
        return;
    }
    const sl_channel_info *info = NULL;
    sl_status st = {0};
    int rc = sl__channel_enter(srv->ctx, &s->who, SL_OP_CHANNEL_READ, c->channel, &info, &st);
    if (rc != SL_OK) {
        reply_rc(s, c->id, rc);
        return;
    }
    if (sl__ws_name(c->channel)[0] == '$' && tok == NULL) {
        check_sub_token(s, c);
        return;
    }
    int recover = c->recover && info->kind == SL_KIND_TOPIC;
    uint64_t offset = c->offset;
    wait *w = wait_new(s, c, SL_OP_CHANNEL_READ, c->channel);
    if (w == NULL)
        return;
    if (tok && sl_identity_copy(&w->tok, tok) != SL_OK) {
        reply_error(s, w->cmd.id, SL__CF_ERR_INTERNAL, NULL);
        wait_free(w);
        return;
    }
    if (recover) {
        /* One more than the cap tells "too many to recover". */
        sl__msgid_format(offset, w->after);
        w->op.read = (sl_read){
            .limit = srv->lim.history_max + 1, .after = w->after, .max_bytes = reply_room(s)};
    } else {
        w->op.position = 1;
    }
    /* The channel's feed is watched first (a shared engine), so nothing published after the
     * position is read can be missed; the session waits from here on. */
    w->cont = subscribe_cont;
    w->op.done = wait_done;
    w->op.ud = w;
    s->busy = 1;
    ref(s);
    sl__hub_prepare(srv->hub, w->op.channel, subscribe_watched, w);
}

static void subscribe_watched(void *ud, int rc)
{
    wait *w = ud;
    sess *s = w->s;
    if (rc == SL_OK && !s->gone && s->state == ST_CONNECTED) {
        w->prepared = 1;
        s->marked = w;
        sl__channel_submit(s->srv->ctx, &w->op);
        return;
    }
    if (rc == SL_OK)
        sl__hub_abandon(s->srv->hub, w->op.channel);
    s->busy = 0;
    if (!s->gone && s->state == ST_CONNECTED)
        reply_rc(s, w->cmd.id, rc);
    wait_free(w);
    if (!s->gone && !s->busy)
        run_queue(s);
    unref(s);
}

static void subscribe_cont(sess *s, wait *w)
{
    sl__wss_server *srv = s->srv;
    sl__cf_command *c = &w->cmd;
    if (w->op.rc != SL_OK) {
        reply_rc(s, c->id, w->op.rc);
        return;
    }
    const sl_identity *tok = w->tok.source != SL_SOURCE_NONE ? &w->tok : NULL;
    if (find_sub(s, c->channel, NULL)) { /* subscribed meanwhile by a command that waited less */
        reply_error(s, c->id, SL__CF_ERR_ALREADY_SUBSCRIBED, NULL);
        return;
    }
    const sl_channel_info *info = sl__map_get(srv->ctx->channels, c->channel);
    sl__hub_chan *hc = info ? sl__hub_chan_get(srv->hub, c->channel, info, 1) : NULL;
    if (hc == NULL) {
        reply_error(s, c->id, info ? SL__CF_ERR_INTERNAL : SL__CF_ERR_UNKNOWN_CHANNEL, NULL);
        return;
    }
    double token_exp = tok ? tok->expires_at : 0;
    uint64_t top = w->op.seq;
    int topic = info->kind == SL_KIND_TOPIC;
    sl_message_list *missed = &w->op.list;
    sl__cf_pub *pubs = NULL;
    size_t npubs = 0;
    if (c->recover && topic) {
        /* Recoverable only from this stream, with every publication since still held. */
        int ok = c->epoch && strcmp(c->epoch, sl__hub_chan_epoch(hc)) == 0 && c->offset <= top;
        if (ok && c->offset < top) {
            /* Stopping short of the cap with more left means the bytes would not fit a reply. */
            ok = missed->len > 0 && missed->len <= srv->lim.history_max &&
                 !(missed->more && missed->len <= srv->lim.history_max) &&
                 sl__hub_offset_of(missed->items[0].id) == c->offset + 1;
        }
        if (ok && c->offset < top && missed->len &&
            (pubs = calloc(missed->len, sizeof *pubs + sizeof(sl__cf_client_info))) == NULL)
            ok = 0;
        if (!ok) {
            reply_error(s, c->id, SL__CF_ERR_UNRECOVERABLE_POSITION, NULL);
            return;
        }
        npubs = c->offset < top ? missed->len : 0;
        pubs_of(missed, npubs, pubs, (sl__cf_client_info *)(pubs + npubs), 0);
    }
    sl__hub_sub *sub = calloc(1, sizeof *sub);
    if (sub && s->nsubs == s->subcap) {
        size_t cap = s->subcap ? s->subcap * 2 : 2;
        sl__hub_sub **v = realloc(s->subs, cap * sizeof *v);
        if (v) {
            s->subs = v;
            s->subcap = cap;
        }
    }
    if (sub == NULL || s->nsubs == s->subcap || (tok && hold_token(sub, tok) != SL_OK)) {
        sub_free(sub);
        free(pubs);
        reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    sub->peer = &s->peer;
    sub->client = s->client;
    sub->user = s->who.principal;
    /* The reply goes into the batch before any push the subscription can receive. */
    sl__cf_subscribe_result r = {
        .expires = token_exp > 0,
        .ttl = token_exp > 0 ? ttl_until(token_exp, now_of(s)) : 0,
        .recoverable = topic,
        .epoch = topic ? sl__hub_chan_epoch(hc) : NULL,
        .offset = top,
        .was_recovering = c->recover && topic,
        .recovered = c->recover && topic,
        .publications = pubs,
        .npublications = npubs,
    };
    sl__cf_reply_subscribe(&s->peer.out, c->id, &r);
    touch(s);
    free(pubs);
    w->prepared = 0; /* the mark is the subscription's now */
    s->marked = NULL;
    if (sl__hub_subscribe(srv->hub, hc, sub, top) != SL_OK) {
        sub_free(sub);
        close_with(s, SL__CF_DISC_SERVER_ERROR, NULL);
        return;
    }
    s->subs[s->nsubs++] = sub;
    if (s->srv->ctx->metrics) { /* (A14) */
        s->srv->ctx->metrics->ws_subscriptions++;
        s->srv->ctx->metrics->ws_subscribed++;
    }
}

static void cmd_unsubscribe(sess *s, const sl__cf_command *c)
{
    size_t i;
    if (find_sub(s, c->channel, &i))
        unsubscribe_at(s, i, 0, NULL);
    sl__cf_reply_empty(&s->peer.out, c->id, SL__CF_UNSUBSCRIBE);
    touch(s);
}

/* tok as for cmd_subscribe. */
static void cmd_sub_refresh(sess *s, sl__cf_command *c, const sl_identity *tok)
{
    sl__hub_sub *sub = find_sub(s, c->channel, NULL);
    if (sub == NULL || sl__ws_name(c->channel)[0] != '$') {
        reply_error(s, c->id, sub ? SL__CF_ERR_BAD_REQUEST : SL__CF_ERR_UNKNOWN_CHANNEL, NULL);
        return;
    }
    if (tok == NULL) {
        check_sub_token(s, c);
        return;
    }
    if (hold_token(sub, tok) != SL_OK) {
        reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    sl__cf_reply_refresh(&s->peer.out, c->id, SL__CF_SUB_REFRESH, NULL, NULL, true,
                         ttl_until(tok->expires_at, now_of(s)));
    touch(s);
}

static void publish_cont(sess *s, wait *w)
{
    if (w->op.rc != SL_OK) {
        reply_rc(s, w->cmd.id, w->op.rc);
        return;
    }
    sl__cf_reply_empty(&s->peer.out, w->cmd.id, SL__CF_PUBLISH);
    touch(s);
}

static void cmd_publish(sess *s, sl__cf_command *c)
{
    wait *w = wait_new(s, c, SL_OP_CHANNEL_WRITE, c->channel);
    if (w == NULL)
        return;
    w->w = (sl_write){.data = w->cmd.data, .data_len = w->cmd.data_len, .origin = s->client};
    w->op.writes = &w->w;
    w->op.nwrites = 1;
    wait_fly(s, w, publish_cont);
}

/* The channel's real-time state for history and presence (authorised as a read first). */
static sl__hub_chan *enter_read(sess *s, const sl__cf_command *c, const sl_channel_info **info)
{
    sl_status st = {0};
    int rc = sl__channel_enter(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, c->channel, info, &st);
    if (rc != SL_OK) {
        reply_rc(s, c->id, rc);
        return NULL;
    }
    /* A `$` channel is read only through a subscription its subscription token opened. */
    if (c->channel[0] == '$' && find_sub(s, c->channel, NULL) == NULL) {
        reply_error(s, c->id, SL__CF_ERR_PERMISSION_DENIED, NULL);
        return NULL;
    }
    sl__hub_chan *hc = sl__hub_chan_get(s->srv->hub, c->channel, *info, 1);
    if (hc == NULL)
        reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
    return hc;
}

static void history_read(sess *s, wait *w);
static void history_reply(sess *s, wait *w);

/* History takes two answers of the channel API: the stream's top, then the publications. */
static void cmd_history(sess *s, sl__cf_command *c)
{
    const sl_channel_info *info;
    sl__hub_chan *hc = enter_read(s, c, &info);
    if (hc == NULL)
        return;
    if (info->kind != SL_KIND_TOPIC) {
        reply_error(s, c->id, SL__CF_ERR_BAD_REQUEST, "history applies to topics");
        return;
    }
    if (c->has_since &&
        (c->since_epoch == NULL || strcmp(c->since_epoch, sl__hub_chan_epoch(hc)))) {
        reply_error(s, c->id, SL__CF_ERR_UNRECOVERABLE_POSITION, NULL);
        return;
    }
    wait *w = wait_new(s, c, SL_OP_CHANNEL_READ, c->channel);
    if (w == NULL)
        return;
    w->op.position = 1;
    wait_submit(s, w, history_read);
}

static void history_read(sess *s, wait *w)
{
    sl__cf_command *c = &w->cmd;
    if (w->op.rc != SL_OK) {
        reply_rc(s, c->id, w->op.rc);
        return;
    }
    uint64_t top = w->op.seq;
    size_t max = s->srv->lim.history_max;
    size_t limit = !c->has_limit                              ? 0
                   : c->limit < 0 || (uint64_t)c->limit > max ? max
                                                              : (size_t)c->limit;
    wait *next = wait_new(s, c, SL_OP_CHANNEL_READ, c->channel);
    if (next == NULL)
        return;
    next->limit = limit;
    next->top = top;
    /* Forward: the oldest `limit` after `since` (or from the start). Reverse: the newest `limit`
     * before `since` (or up to the top), returned newest first. */
    next->end = next->cmd.has_since ? next->cmd.since_offset : top + 1;
    uint64_t after = !next->cmd.reverse      ? (next->cmd.has_since ? next->cmd.since_offset : 0)
                     : next->end - 1 > limit ? next->end - 1 - limit
                                             : 0;
    if (limit == 0) {
        history_reply(s, next);
        wait_free(next);
        return;
    }
    sl__msgid_format(after, next->after);
    next->op.read = (sl_read){.limit = limit, .after = next->after, .max_bytes = reply_room(s)};
    wait_submit(s, next, history_reply);
}

static void history_reply(sess *s, wait *w)
{
    sl__cf_command *c = &w->cmd;
    if (w->op.rc != SL_OK) {
        reply_rc(s, c->id, w->op.rc);
        return;
    }
    const sl_channel_info *info = sl__map_get(s->srv->ctx->channels, c->channel);
    sl__hub_chan *hc = info ? sl__hub_chan_get(s->srv->hub, c->channel, info, 1) : NULL;
    if (hc == NULL) {
        reply_error(s, c->id, info ? SL__CF_ERR_INTERNAL : SL__CF_ERR_UNKNOWN_CHANNEL, NULL);
        return;
    }
    uint64_t top = w->top; /* as history began: the read's own may be newer */
    sl_message_list *l = &w->op.list;
    size_t n = 0;
    if (w->limit > 0) {
        /* Short of the limit with messages left: the byte bound stopped the read. Centrifugo
         * clients take a short history for the end of the stream, so this is an error. */
        if (l->more && l->len < w->limit) {
            reply_too_big(s, c->id);
            return;
        }
        n = l->len;
        while (c->reverse && n > 0 && sl__hub_offset_of(l->items[n - 1].id) >= w->end)
            n--;
    }
    sl__cf_pub *pubs = n ? calloc(n, sizeof *pubs + sizeof(sl__cf_client_info)) : NULL;
    if (n && pubs == NULL) {
        reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    pubs_of(l, n, pubs, (sl__cf_client_info *)(pubs + n), c->reverse);
    size_t start = s->peer.out.len;
    sl__cf_reply_history(&s->peer.out, c->id, pubs, n, sl__hub_chan_epoch(hc), top);
    free(pubs);
    if (reply_overflowed(s, start))
        reply_too_big(s, c->id);
    else
        touch(s);
}

/* The presence reply to command id from n entries (v: NULL when n is 0). */
static void presence_reply(sess *s, uint32_t id, sl__cf_method method, const sl__cf_client_info *v,
                           size_t n)
{
    if (method == SL__CF_PRESENCE) {
        sl__cf_reply_presence(&s->peer.out, id, v, n);
    } else {
        size_t users = 0;
        for (size_t i = 0; i < n; i++) { /* distinct users: first occurrence counts */
            size_t j = 0;
            while (j < i && strcmp(v[j].user, v[i].user) != 0)
                j++;
            users += j == i;
        }
        sl__cf_reply_presence_stats(&s->peer.out, id, (uint32_t)n, (uint32_t)users);
    }
    touch(s);
}

/* A shared engine answered a presence query the session held (every node's subscribers). */
static void presence_got(void *ud, int rc, const sl_message_list *l)
{
    sess *s = ud;
    sl__cf_command *c = take_command(s);
    if (!s->gone && s->state == ST_CONNECTED) {
        sl__cf_client_info *v = rc == SL_OK && l->len ? calloc(l->len, sizeof *v) : NULL;
        if (rc != SL_OK) {
            reply_rc(s, c->id, rc);
        } else if (l->len && v == NULL) {
            reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        } else {
            for (size_t i = 0; i < l->len; i++)
                v[i] = (sl__cf_client_info){.client = l->items[i].origin,
                                            .user = l->items[i].sender_id};
            presence_reply(s, c->id, c->method, v, l->len);
        }
        free(v);
    }
    sl__cf_command_clear(c);
    free(c);
    if (!s->gone)
        run_queue(s);
    unref(s);
}

static void cmd_presence(sess *s, sl__cf_command *c)
{
    const sl_channel_info *info;
    sl__hub_chan *hc = enter_read(s, c, &info);
    if (hc == NULL)
        return;
    if (!sl__hub_chan_presence(hc)) {
        reply_error(s, c->id, SL__CF_ERR_NOT_AVAILABLE, NULL);
        return;
    }
    if (sl__hub_presence_shared(s->srv->hub)) {
        /* Several nodes: the engine holds everyone's entries; the session waits for them. */
        sl__cf_command *p = hold_command(s, c);
        if (p != NULL)
            sl__hub_presence_get(s->srv->hub, p->channel, presence_got, s);
        return;
    }
    size_t n;
    sl__hub_sub *const *subs = sl__hub_chan_subs(hc, &n);
    sl__cf_client_info *v = n ? calloc(n, sizeof *v) : NULL;
    if (n && v == NULL) {
        reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (sl__cf_client_info){.client = subs[i]->client, .user = subs[i]->user};
    presence_reply(s, c->id, c->method, v, n);
    free(v);
}

/* ---- rpc: work queues over the socket ------------------------------------------------------- */

static int rpc_ids(json_t *data, const char ***ids, size_t *n)
{
    json_t *a = json_object_get(data, "ids");
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > RPC_MAX_IDS)
        return SL_EINVAL;
    *n = json_array_size(a);
    *ids = calloc(*n, sizeof **ids);
    if (*ids == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < *n; i++)
        if (((*ids)[i] = json_string_value(json_array_get(a, i))) == NULL) {
            free(*ids);
            return SL_EINVAL;
        }
    return SL_OK;
}

/* Answers a queue.claim with the claimed messages as stored ({"messages":[...],"more":B}). A
 * reply the session cannot send (out of memory, over ws_max_outgoing) gives the claims back and
 * answers an error instead, so nothing stays leased undelivered. */
static void claim_reply(sess *s, uint32_t id, const char *channel, const sl_message_list *l)
{
    char *json = NULL;
    size_t len = 0, start = s->peer.out.len;
    int rc = sl__messages_json(l, 1, &json, &len);
    if (rc == SL_OK)
        rc = sl__cf_reply_rpc(&s->peer.out, id, json, len);
    free(json);
    int over = rc == SL_OK && reply_overflowed(s, start);
    if (rc == SL_OK && !over)
        return;
    const char **ids = l->len ? calloc(l->len, sizeof *ids) : NULL;
    for (size_t i = 0; ids && i < l->len; i++)
        ids[i] = l->items[i].id;
    if (ids)
        sl__channel_release(s->srv->ctx, &s->who, channel, ids, l->len);
    free(ids);
    if (over)
        reply_too_big(s, id);
    else
        reply_error(s, id, SL__CF_ERR_INTERNAL, NULL);
}

static void rpc_cont(sess *s, wait *w)
{
    uint32_t id = w->cmd.id;
    sl__chop *op = &w->op;
    if (op->rc != SL_OK) {
        reply_rc(s, id, op->rc);
        return;
    }
    if (op->op == SL_OP_CHANNEL_READ) {
        claim_reply(s, id, op->channel, &op->list);
        touch(s);
        return;
    }
    const char *counted = op->op == SL_OP_CHANNEL_ACK         ? "acknowledged"
                          : op->op == SL_OP_CHANNEL_EXTEND    ? "extended"
                          : op->op == SL_OP_CHANNEL_TERMINATE ? "terminated"
                                                              : "nacked";
    json_t *result = NULL;
    if (op->op == SL_OP_CHANNEL_WRITE && w->ws) { /* queue.batch */
        json_t *ids = json_array();
        for (size_t i = 0; ids && i < op->nwrites; i++)
            json_array_append_new(ids, json_string(w->items[i]));
        result = ids ? json_pack("{s:o, s:I}", "ids", ids, "duplicates", (json_int_t)op->duplicates)
                     : NULL;
    } else if (op->op == SL_OP_CHANNEL_WRITE) {
        result = json_pack("{s:s, s:b}", "id", w->item[0], "duplicate", op->duplicates > 0);
    } else {
        result = json_pack("{s:I}", counted, (json_int_t)op->count);
    }
    char *out = result ? json_dumps(result, JSON_COMPACT) : NULL;
    json_decref(result);
    if (out == NULL)
        reply_error(s, id, SL__CF_ERR_INTERNAL, NULL);
    else
        sl__cf_reply_rpc(&s->peer.out, id, out, strlen(out));
    touch(s);
    free(out);
}

/* queue.write's envelope beside its data: metadata (an object), correlation_id, reply_to,
 * recipient_id, idempotency_key (strings), delay, not_before, ttl (seconds). The channel API
 * checks the values; here only their types. Strings borrow data (the wait keeps it). */
static int rpc_envelope(json_t *data, sl_write *out, char **meta)
{
    static const char *const strs[] = {"correlation_id", "reply_to", "recipient_id",
                                       "idempotency_key"};
    const char **dst[] = {&out->correlation_id, &out->reply_to, &out->recipient_id,
                          &out->idempotency_key};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(data, strs[i]);
        if (v && !json_is_null(v) &&
            (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)) ||
             json_string_length(v) > 255))
            return SL_EINVAL;
        *dst[i] = json_string_value(v);
    }
    static const char *const nums[] = {"delay", "not_before", "ttl"};
    double *ndst[] = {&out->delay, &out->not_before, &out->ttl};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(data, nums[i]);
        if (v && !json_is_null(v) && !json_is_number(v))
            return SL_EINVAL;
        *ndst[i] = json_is_number(v) ? json_number_value(v) : 0;
    }
    json_t *md = json_object_get(data, "metadata");
    if (md && !json_is_null(md)) {
        if (!json_is_object(md) || (*meta = json_dumps(md, JSON_COMPACT)) == NULL)
            return SL_EINVAL;
        out->metadata = *meta;
    }
    return SL_OK;
}

/* Fills the request of a queue.* method from its data; SL_EINVAL for a malformed one. */
static int rpc_prepare(sess *s, wait *w, const char *m)
{
    json_t *data = w->data;
    sl__chop *op = &w->op;
    if (!strcmp(m, "queue.claim")) {
        json_t *lim = json_object_get(data, "limit");
        json_int_t limit = lim ? json_integer_value(lim) : 1;
        if ((lim && !json_is_integer(lim)) || limit < 1 || limit > RPC_MAX_LIMIT)
            return SL_EINVAL;
        /* Bounded by what the reply can carry, so that nothing is claimed that the socket
         * would refuse to deliver. */
        op->op = SL_OP_CHANNEL_READ;
        op->read = (sl_read){.limit = (size_t)limit, .exclusive = 1, .max_bytes = reply_room(s)};
        return SL_OK;
    }
    if (!strcmp(m, "queue.write")) {
        json_t *d = json_object_get(data, "data");
        char *text = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (text == NULL)
            return SL_EINVAL;
        w->text = text; /* until the wait ends */
        op->op = SL_OP_CHANNEL_WRITE;
        w->w = (sl_write){.data = text, .data_len = strlen(text)};
        if (rpc_envelope(data, &w->w, &w->meta) != SL_OK)
            return SL_EINVAL;
        op->writes = &w->w;
        op->nwrites = 1;
        op->item_ids = w->item;
        return SL_OK;
    }
    if (!strcmp(m, "queue.batch")) {
        /* {"messages":[envelope, ...]}: one request, stored together or not at all. */
        json_t *arr = json_object_get(data, "messages");
        size_t n = json_array_size(arr);
        if (!json_is_array(arr) || n == 0 || n > RPC_MAX_BATCH)
            return SL_EINVAL;
        w->ws = calloc(n, sizeof *w->ws);
        w->texts = calloc(2 * n, sizeof *w->texts);
        w->items = calloc(n, sizeof *w->items);
        if (w->ws == NULL || w->texts == NULL || w->items == NULL)
            return SL_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(arr, i), *d = json_object_get(e, "data");
            w->nws = i + 1;
            char *text = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            if (!json_is_object(e) || text == NULL) {
                free(text);
                return SL_EINVAL;
            }
            w->texts[2 * i] = text;
            w->ws[i] = (sl_write){.data = text, .data_len = strlen(text)};
            if (rpc_envelope(e, &w->ws[i], &w->texts[2 * i + 1]) != SL_OK)
                return SL_EINVAL;
        }
        op->op = SL_OP_CHANNEL_WRITE;
        op->writes = w->ws;
        op->nwrites = n;
        op->item_ids = w->items;
        return SL_OK;
    }
    int ack = !strcmp(m, "queue.ack");
    size_t n = 0;
    int rc = rpc_ids(data, &w->ids, &n);
    if (rc != SL_OK)
        return rc;
    if (!strcmp(m, "queue.extend") || !strcmp(m, "queue.terminate")) {
        int ext = m[6] == 'e';
        json_t *v = json_object_get(data, ext ? "seconds" : "reason");
        if (v && (ext ? !json_is_number(v) : !json_is_string(v)))
            return SL_EINVAL;
        op->op = ext ? SL_OP_CHANNEL_EXTEND : SL_OP_CHANNEL_TERMINATE;
        op->ids = w->ids;
        op->nids = n;
        op->delay = ext && v ? json_number_value(v) : 0;
        op->reason = ext ? NULL : json_string_value(v);
        return SL_OK;
    }
    json_t *delay = json_object_get(data, "delay");
    if (!ack && delay && !json_is_number(delay))
        return SL_EINVAL;
    op->op = ack ? SL_OP_CHANNEL_ACK : SL_OP_CHANNEL_NACK;
    op->ids = w->ids;
    op->nids = n;
    op->delay = delay ? json_number_value(delay) : 0;
    return SL_OK;
}

static void cmd_rpc(sess *s, sl__cf_command *c)
{
    const char *m = c->rpc_method ? c->rpc_method : "";
    if (strcmp(m, "queue.claim") && strcmp(m, "queue.ack") && strcmp(m, "queue.nack") &&
        strcmp(m, "queue.write") && strcmp(m, "queue.extend") && strcmp(m, "queue.terminate") &&
        strcmp(m, "queue.batch")) {
        reply_error(s, c->id, SL__CF_ERR_METHOD_NOT_FOUND, NULL);
        return;
    }
    json_t *data = c->data ? json_loadb(c->data, c->data_len, 0, NULL) : NULL;
    const char *channel = json_string_value(json_object_get(data, "channel"));
    if (!json_is_object(data) || channel == NULL) {
        json_decref(data);
        reply_error(s, c->id, SL__CF_ERR_BAD_REQUEST, "data must be an object with a channel");
        return;
    }
    wait *w = wait_new(s, c, SL_OP_CHANNEL_READ, channel);
    if (w == NULL) {
        json_decref(data);
        return;
    }
    w->data = data;
    int rc = rpc_prepare(s, w, w->cmd.rpc_method);
    if (rc != SL_OK) {
        reply_rc(s, w->cmd.id, rc);
        wait_free(w);
        return;
    }
    wait_submit(s, w, rpc_cont);
}

/* ---- connect and refresh: authentication ---------------------------------------------------- */

/* Part C, workspaces (docs/POLICY.md): the connect option {"workspace": NAME} in the connect's
 * data, honoured for operators only; "" when absent. SL_EINVAL for a malformed one. */
static int connect_workspace(sess *s, const sl__cf_command *c)
{
    s->cross[0] = '\0';
    json_t *d = c->data ? json_loadb(c->data, c->data_len, 0, NULL) : NULL;
    json_t *v = json_is_object(d) ? json_object_get(d, "workspace") : NULL;
    int rc = SL_OK;
    if (v &&
        (!json_is_string(v) || !sl_workspace_valid(json_string_value(v), json_string_length(v))))
        rc = SL_EINVAL;
    else if (v)
        snprintf(s->cross, sizeof s->cross, "%s", json_string_value(v));
    json_decref(d);
    return rc;
}

/* The workspace side of a connect or refresh (fresh: the identity that passed): an operator's
 * crossing, the same workspace on refresh, the workspace's connections limit. Answers and
 * returns an error when the session may not go on so. */
static int ws_enter(sess *s, sl__cf_method method, sl_identity *fresh)
{
    sl_ctx *ctx = s->srv->ctx;
    sl_status st = {0};
    if (s->cross[0]) {
        int rc = sl__ws_cross(ctx->workspaces, fresh, s->cross, &st);
        sl__ws_cross_audit(ctx, fresh, rc);
        if (rc != SL_OK) {
            if (method == SL__CF_CONNECT)
                reply_error(s, s->auth_id, SL__CF_ERR_PERMISSION_DENIED, NULL);
            else
                close_with(s, SL__CF_DISC_PERMISSION_DENIED, NULL);
            return rc;
        }
    }
    if (method != SL__CF_CONNECT) {
        if (strcmp(fresh->workspace, s->who.workspace) != 0) {
            close_with(s, SL__CF_DISC_INVALID_TOKEN, NULL);
            return SL_EFORBIDDEN;
        }
        return SL_OK;
    }
    if (sl__ws_connect(ctx->workspaces, fresh->workspace, &st) != SL_OK) {
        close_with(s, SL__CF_DISC_CONNECTION_LIMIT, NULL);
        return SL_EQUOTA;
    }
    snprintf(s->counted, sizeof s->counted, "%s", fresh->workspace);
    return SL_OK;
}

static void auth_finish(sess *s, int status, const sl_identity *who)
{
    uint32_t id = s->auth_id;
    sl__cf_method method = s->auth_method;
    s->busy = 0;
    if (s->state == ST_CLOSED)
        return;
    /* A refresh continues the same session: the same principal, vouched for by the same kind of
     * credential (a session opened with a sluice token is not taken over by an API key). */
    if (status == SL_OK && method == SL__CF_REFRESH &&
        (strcmp(who->principal, s->who.principal) || who->source != s->who.source)) {
        close_with(s, SL__CF_DISC_INVALID_TOKEN, NULL);
        return;
    }
    if (status == SL_OK && expired_now(who, now_of(s)))
        status = SL_EEXPIRED;
    switch (status) {
    case SL_OK:
        break;
    case SL_EUNAUTH:
        reply_error(s, id, SL__CF_ERR_UNAUTHORIZED, NULL);
        return;
    case SL_EEXPIRED:
        reply_error(s, id, SL__CF_ERR_TOKEN_EXPIRED, NULL);
        return;
    case SL_ETOKEN:
        close_with(s, SL__CF_DISC_INVALID_TOKEN, NULL);
        return;
    default: /* the authenticator or the revocation store cannot answer now: try again */
        reply_error(s, id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    sl_identity fresh;
    sl_identity_init(&fresh);
    if (sl_identity_copy(&fresh, who) != SL_OK) {
        reply_error(s, id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    if (ws_enter(s, method, &fresh) != SL_OK) {
        sl_identity_clear(&fresh);
        return;
    }
    sl_identity_clear(&s->who);
    s->who = fresh;
    double now = now_of(s);
    int expires = s->who.expires_at > 0;
    uint32_t ttl = expires ? ttl_until(s->who.expires_at, now) : 0;
    if (method == SL__CF_CONNECT) {
        s->state = ST_CONNECTED;
        s->next_ping = now + s->srv->lim.ping_interval;
        sl__cf_connect_result r = {
            .client = s->client,
            .version = VERSION,
            .ping = (uint32_t)s->srv->lim.ping_interval,
            .pong = true,
            .expires = expires,
            .ttl = ttl,
        };
        sl__cf_reply_connect(&s->peer.out, id, &r);
    } else {
        reauthorize(s); /* the new token may carry another role or scope */
        sl__cf_reply_refresh(&s->peer.out, id, SL__CF_REFRESH, s->client, VERSION, expires, ttl);
    }
    touch(s);
}

/* The chain answered (revocation included, as on HTTP). */
static void on_authenticated(void *ud, int status, const sl_identity *who, const char *reason)
{
    sess *s = ud;
    if (!s->gone) {
        auth_finish(s, status, who);
        run_queue(s);
    }
    unref(s);
}

/* Starts authenticating token (NULL: none) for a connect or refresh command. */
static void authenticate(sess *s, const sl__cf_command *c, const char *token)
{
    s->busy = 1;
    s->auth_id = c->id;
    s->auth_method = c->method;
    char *header = NULL;
    size_t len = 0;
    if (token && *token) {
        len = strlen(token) + 7;
        header = malloc(len + 1);
        if (header == NULL) {
            s->busy = 0;
            reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
            return;
        }
        snprintf(header, len + 1, "Bearer %s", token);
    }
    ref(s);
    sl_authn_run(s->srv->authn, header, len, now_of(s), on_authenticated, s);
    free(header);
}

static void cmd_connect(sess *s, const sl__cf_command *c)
{
    if (s->state == ST_CONNECTED) {
        close_with(s, SL__CF_DISC_BAD_REQUEST, "already connected");
        return;
    }
    if (connect_workspace(s, c) != SL_OK) {
        reply_error(s, c->id, SL__CF_ERR_BAD_REQUEST, "invalid workspace");
        return;
    }
    const char *token = c->token && *c->token ? c->token : s->url_token;
    if ((token == NULL || *token == '\0') && s->upgrade_who.source != SL_SOURCE_NONE) {
        /* The upgrade's own credential passed the chain (revocation included). */
        s->auth_id = c->id;
        s->auth_method = c->method;
        auth_finish(s, SL_OK, &s->upgrade_who);
        return;
    }
    authenticate(s, c, token);
    free(s->url_token);
    s->url_token = NULL;
}

/* ---- command dispatch ----------------------------------------------------------------------- */

static int over_rate(sess *s)
{
    double now = now_of(s);
    if (now - s->win_start >= 1.0) {
        s->win_start = now;
        s->win_cmds = 0;
    }
    return ++s->win_cmds > s->srv->lim.commands_per_second;
}

/* 1 when the next command would be within the rate (over_rate without counting it). */
static int within_rate(const sess *s)
{
    return now_of(s) - s->win_start >= 1.0 || s->win_cmds < s->srv->lim.commands_per_second;
}

static int enters_channel(const sl__cf_command *c);
static void look_up_first(sess *s, sl__cf_command *c);

/* Part C, workspaces: a command of a session in a workspace counts against the workspace's
 * commands per second, and its channel becomes the internal id at once (core/wsid.h), so the
 * hub, the registry and the channel API all see the same id; replies and pushes show the
 * caller's own name (sl__cf_push_* and sl__ws_name). Answers and returns an error when the
 * command must not run. */
static int ws_command(sess *s, sl__cf_command *c)
{
    const char *ws = s->who.workspace;
    if (c->method == SL__CF_CONNECT || ws[0] == '\0')
        return SL_OK;
    sl_status st = {0};
    int rc = sl__ws_charge(s->srv->ctx->workspaces, ws, now_of(s), &st);
    if (rc != SL_OK) {
        reply_error(s, c->id, SL__CF_ERR_TOO_MANY_REQUESTS, st.message);
        return rc;
    }
    if (c->channel == NULL)
        return SL_OK;
    char q[SL__QID_SIZE];
    if (!sl_channel_id_valid(c->channel, strlen(c->channel)) ||
        sl__ws_qualify(ws, c->channel, q, sizeof q) != SL_OK) {
        reply_error(s, c->id, SL__CF_ERR_BAD_REQUEST, "invalid channel id");
        return SL_EBADID;
    }
    char *dup = strdup(q);
    if (dup == NULL) {
        reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return SL_ENOMEM;
    }
    free(c->channel);
    c->channel = dup;
    return SL_OK;
}
static void dispatch(sess *s, sl__cf_command *c);

static void run_command(sess *s, sl__cf_command *c)
{
    /* A malformed or unknown command carries its error (and an id: the parser refuses the
     * frame otherwise); its method field means nothing then. */
    if (!c->error && c->method == SL__CF_PING) { /* the answer to our ping */
        s->pong_due = 0;
        return;
    }
    if (!c->error && c->method == SL__CF_SEND) /* no handler: accepted, ignored */
        return;
    if (over_rate(s)) {
        reply_error(s, c->id, SL__CF_ERR_TOO_MANY_REQUESTS, NULL);
        return;
    }
    if (c->error) {
        reply_error(s, c->id, c->error, c->error_message);
        return;
    }
    if (s->state != ST_CONNECTED && c->method != SL__CF_CONNECT) {
        reply_error(s, c->id, SL__CF_ERR_UNAUTHORIZED, NULL);
        return;
    }
    if (ws_command(s, c) != SL_OK)
        return;
    if (enters_channel(c) && (sl__channel_unknown(s->srv->ctx, c->channel) ||
                              sl__authz_needs(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ,
                                              (const char *const *)&c->channel, 1))) {
        look_up_first(s, c);
        return;
    }
    dispatch(s, c);
}

/* The commands that enter their channel synchronously (sl__channel_enter). */
static int enters_channel(const sl__cf_command *c)
{
    return c->channel && (c->method == SL__CF_SUBSCRIBE || c->method == SL__CF_HISTORY ||
                          c->method == SL__CF_PRESENCE || c->method == SL__CF_PRESENCE_STATS);
}

static void on_looked_up(void *ud)
{
    sess *s = ud;
    sl__cf_command *c = take_command(s);
    if (!s->gone && s->state == ST_CONNECTED)
        dispatch(s, c);
    sl__cf_command_clear(c);
    free(c);
    if (!s->gone && !s->busy)
        run_queue(s);
    unref(s);
}

/* (A) Then a policy regime is asked (later, from the loop) before the command decides, with the
 * answer at hand, in on_looked_up. */
static void authorise_first(void *ud)
{
    sess *s = ud;
    const char *ch = s->pending ? s->pending->channel : NULL;
    if (s->gone || ch == NULL) {
        on_looked_up(s);
        return;
    }
    sl__authz_prepare(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, &ch, 1, on_looked_up, s);
}

/* A channel another node may have created a moment ago: the store is asked before the command
 * runs (later commands wait), so it does not answer "unknown channel" for a channel that
 * exists. */
static void look_up_first(sess *s, sl__cf_command *c)
{
    sl__cf_command *p = hold_command(s, c);
    if (p == NULL)
        return;
    sl__channel_lookup(s->srv->ctx, p->channel, authorise_first, s);
}

static void dispatch(sess *s, sl__cf_command *c)
{
    switch (c->method) {
    case SL__CF_CONNECT:
        cmd_connect(s, c);
        break;
    case SL__CF_REFRESH:
        authenticate(s, c, c->token);
        break;
    case SL__CF_SUBSCRIBE:
        cmd_subscribe(s, c, NULL);
        break;
    case SL__CF_UNSUBSCRIBE:
        cmd_unsubscribe(s, c);
        break;
    case SL__CF_SUB_REFRESH:
        cmd_sub_refresh(s, c, NULL);
        break;
    case SL__CF_PUBLISH:
        cmd_publish(s, c);
        break;
    case SL__CF_HISTORY:
        cmd_history(s, c);
        break;
    case SL__CF_PRESENCE:
    case SL__CF_PRESENCE_STATS:
        cmd_presence(s, c);
        break;
    case SL__CF_RPC:
        cmd_rpc(s, c);
        break;
    default:
        reply_error(s, c->id, SL__CF_ERR_METHOD_NOT_FOUND, NULL);
    }
}

/* 1 when c may run now: nothing holds the session, and either c is a publication with room in
 * flight or nothing is in flight. */
static int can_start(const sess *s, const sl__cf_command *c)
{
    if (s->busy)
        return 0;
    if (s->nfly == 0)
        return 1;
    /* Only a publication that goes in flight: one answered at once (malformed, over the rate)
     * waits, so that its reply does not overtake theirs. */
    return !c->error && c->method == SL__CF_PUBLISH && s->state == ST_CONNECTED &&
           s->nfly < MAX_IN_FLIGHT && within_rate(s);
}

/* Runs queued commands until the queue is empty or an authentication makes the session wait. */
static void run_queue(sess *s)
{
    if (s->nqueue == 0 || s->draining)
        return;
    s->draining = 1;
    size_t i = 0;
    while (i < s->nqueue && can_start(s, &s->queue[i]) && s->state != ST_CLOSED) {
        run_command(s, &s->queue[i]);
        sl__cf_command_clear(&s->queue[i]);
        i++;
    }
    if (s->state == ST_CLOSED) {
        sl__cf_commands_clear(s->queue + i, s->nqueue - i);
        i = s->nqueue;
    }
    memmove(s->queue, s->queue + i, (s->nqueue - i) * sizeof *s->queue);
    s->nqueue -= i;
    if (s->nqueue == 0) {
        free(s->queue);
        s->queue = NULL;
        resume_reading(s);
    }
    s->draining = 0;
}

static void on_text(sl_ws_conn *conn, const char *data, size_t len, void *ud)
{
    sess *s = ud;
    if (s->state == ST_CLOSED)
        return;
    if (s->srv->ctx->metrics) /* (A14) */
        s->srv->ctx->metrics->ws_bytes_in += len;
    sl__cf_command cmds[SL__CF_MAX_COMMANDS];
    size_t n = 0;
    sl_status st = {0};
    if (sl__cf_parse_frame(data, len, cmds, SL__CF_MAX_COMMANDS, &n, &st) != SL_OK) {
        close_with(s, SL__CF_DISC_BAD_REQUEST, NULL);
        return;
    }
    ref(s);
    size_t i = 0;
    for (; i < n && s->nqueue == 0 && can_start(s, &cmds[i]) && s->state != ST_CLOSED; i++) {
        run_command(s, &cmds[i]);
        sl__cf_command_clear(&cmds[i]);
    }
    if (i < n && s->state != ST_CLOSED) {
        /* An authentication or a command on the channel API is running: the rest waits, in
         * order, with a bound. */
        size_t room = QUEUE_MAX > s->nqueue ? QUEUE_MAX - s->nqueue : 0;
        size_t take = n - i < room ? n - i : room;
        sl__cf_command *q = take ? realloc(s->queue, (s->nqueue + take) * sizeof *q) : NULL;
        if (q) {
            s->queue = q;
            memcpy(q + s->nqueue, cmds + i, take * sizeof *q);
            s->nqueue += take;
            i += take;
        }
        for (; i < n; i++) { /* no room: refused like any command over the rate */
            if (cmds[i].id)
                reply_error(s, cmds[i].id, SL__CF_ERR_TOO_MANY_REQUESTS, NULL);
            sl__cf_command_clear(&cmds[i]);
        }
    }
    sl__cf_commands_clear(cmds + i, n - i);
    /* Commands wait: read no more until they have run (TCP holds the client back). */
    if (s->conn && s->state != ST_CLOSED && s->nqueue > 0)
        sl_ws_pause(s->conn, 1);
    /* A publisher faster than delivery: stop reading it until this iteration's batches are out,
     * so TCP slows it down instead of memory growing. */
    if (s->conn && s->state != ST_CLOSED && sl__hub_busy(s->srv->hub)) {
        sl_ws_pause(s->conn, 1);
        sl__hub_hold(s->srv->hub, &s->peer);
    }
    unref(s);
}

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
    if (srv->ctx->metrics) /* (A14) */
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
    ref(s);
    unref(s); /* frees now unless a callback is still due */
}

/* ---- the server: sweep, events, upgrade ----------------------------------------------------- */

static void sweep_one(sess *s, double now)
{
    const sl__wss_limits *l = &s->srv->lim;
    if (s->state == ST_HANDSHAKE) {
        if (now >= s->deadline)
            close_with(s, SL__CF_DISC_STALE, NULL);
        return;
    }
    if (s->state != ST_CONNECTED)
        return;
    if (s->pong_due > 0 && now >= s->pong_due) {
        close_with(s, SL__CF_DISC_NO_PONG, NULL);
        return;
    }
    if (s->who.expires_at > 0 && now >= s->who.expires_at + l->refresh_grace) {
        close_with(s, SL__CF_DISC_EXPIRED, NULL);
        return;
    }
    for (size_t i = s->nsubs; i-- > 0;) {
        double exp = s->subs[i]->token_expires_at;
        if (exp > 0 && now >= exp + l->refresh_grace) /* >= 2500: the client subscribes again */
            unsubscribe_at(s, i, SL__CF_UNSUB_INSUFFICIENT_STATE, "subscription expired");
    }
    if (now >= s->next_ping) {
        sl__cf_ping(&s->peer.out);
        touch(s);
        if (s->pong_due == 0)
            s->pong_due = now + l->pong_timeout;
        s->next_ping = now + l->ping_interval;
    }
}

static void on_sweep(uv_timer_t *t)
{
    sl__wss_server *srv = t->data;
    double now = sl_ctx_now(srv->ctx);
    for (sess *s = srv->head, *next; s; s = next) {
        next = s->next;
        ref(s);
        sweep_one(s, now);
        unref(s);
    }
}

/* (C) One more write to channel for the server API's statistics. Bounded by the channels that
 * exist: a deleted channel's count goes with it. Best effort: out of memory, it is not counted. */
static void count_published(sl__wss_server *srv, const char *channel)
{
    uint64_t *n = channel ? sl__map_get(srv->published, channel) : NULL;
    if (n) {
        (*n)++;
    } else if (channel && (n = malloc(sizeof *n)) != NULL) {
        *n = 1;
        if (sl__map_put(srv->published, channel, n, free) != SL_OK)
            free(n);
    }
}

static void on_event(void *ud, const sl_event *ev)
{
    sl__wss_server *srv = ud;
    switch (ev->kind) {
    case SL_EVENT_WRITE:
        count_published(srv, ev->channel); /* (C) */
        sl__hub_publish(srv->hub, ev);
        break;
    case SL_EVENT_CHANNEL_DELETED:
        sl__map_del(srv->published, ev->channel, free); /* (C) */
        sl__hub_channel_deleted(srv->hub, ev->channel);
        break;
    case SL_EVENT_ACL_CHANGED: {
        /* Roles may come from patterns of any entry: re-check every subscription. */
        int acl_mode = sl_ctx_mode(srv->ctx) == SL_MODE_ACL;
        for (sess *s = srv->head, *next; s; s = next) {
            next = s->next;
            if (s->state != ST_CONNECTED)
                continue;
            ref(s);
            char qp[SL__QPRINCIPAL_SIZE]; /* grants are keyed by (workspace, principal) */
            if (ev->removed && acl_mode &&
                strcmp(sl__ws_principal(&s->who, qp), ev->principal) == 0)
                close_with(s, SL__CF_DISC_PERMISSION_DENIED, NULL);
            else
                reauthorize(s);
            unref(s);
        }
        break;
    }
    case SL_EVENT_JOIN:
    case SL_EVENT_LEAVE:
        sl__hub_join_leave_event(srv->hub, ev);
        break;
    case SL_EVENT_CHANNEL_CREATED:
        break;
    case SL_EVENT_RESYNC:
        sl__hub_resync(srv->hub);
        break;
    }
}

static void on_resync_checked(void *ud, int status, const char *reason)
{
    sess *s = ud;
    if (!s->gone && status == SL_ETOKEN)
        close_with(s, SL__CF_DISC_FORCE_NO_RECONNECT, NULL);
    unref(s);
}

/* A `$` subscription's token being re-checked after a resync; the subscription is found again by
 * channel and token id when the answer comes (it may have ended meanwhile). */
typedef struct sub_check {
    sess *s;
    char *token_id;
    char channel[SL_CHANNEL_ID_MAX + 1];
} sub_check;

static void end_held(sess *s, size_t i)
{
    unsubscribe_at(s, i, SL__CF_UNSUB_SERVER, "token revoked");
}

static void on_sub_resync_checked(void *ud, int status, const char *reason)
{
    sub_check *k = ud;
    sess *s = k->s;
    size_t i;
    sl__hub_sub *sub = s->gone ? NULL : find_sub(s, k->channel, &i);
    if (status == SL_ETOKEN && sub && sub->token_id && strcmp(sub->token_id, k->token_id) == 0)
        end_held(s, i);
    free(k->token_id);
    free(k);
    unref(s);
}

static void resync(sess *s)
{
    sl__wss_server *srv = s->srv;
    for (size_t i = 0; i < s->nsubs; i++) {
        sl__hub_sub *sub = s->subs[i];
        if (sub->token_id == NULL)
            continue;
        sub_check *k = calloc(1, sizeof *k);
        if (k == NULL || (k->token_id = strdup(sub->token_id)) == NULL) {
            free(k);
            close_with(s, SL__CF_DISC_SERVER_ERROR, NULL); /* cannot tell: fail closed */
            return;
        }
        k->s = s;
        snprintf(k->channel, sizeof k->channel, "%s", sub->channel);
        ref(s);
        sl_revocation_check(srv->authn->revocation, k->token_id, s->who.principal,
                            sub->token_issued_at, on_sub_resync_checked, k);
        if (s->state == ST_CLOSED)
            return;
    }
    ref(s);
    sl_revocation_check_identity(srv->authn->revocation, &s->who, on_resync_checked, s);
}

/* A revocation from this node or (Redis) another: sessions whose credential it covers close with
 * 3503; `$` subscriptions whose subscription token it covers end with unsubscribe 2000. */
static void on_revoked(void *ud, const sl_revocation_event *ev)
{
    sl__wss_server *srv = ud;
    for (sess *s = srv->head, *next; s; s = next) {
        next = s->next;
        if (s->state != ST_CONNECTED || s->who.source == SL_SOURCE_NONE)
            continue;
        ref(s);
        if (ev->resync) {
            resync(s);
        } else if (ev->token_id) {
            if (strcmp(ev->token_id, s->who.token_id) == 0)
                close_with(s, SL__CF_DISC_FORCE_NO_RECONNECT, NULL);
            for (size_t i = s->nsubs; s->state == ST_CONNECTED && i-- > 0;)
                if (s->subs[i]->token_id && strcmp(s->subs[i]->token_id, ev->token_id) == 0)
                    end_held(s, i);
        } else if (ev->user && strcmp(ev->user, s->who.principal) == 0) {
            if (s->who.issued_at <= ev->cutoff)
                close_with(s, SL__CF_DISC_FORCE_NO_RECONNECT, NULL);
            for (size_t i = s->nsubs; s->state == ST_CONNECTED && i-- > 0;)
                if (s->subs[i]->token_id && s->subs[i]->token_issued_at <= ev->cutoff)
                    end_held(s, i);
        }
        unref(s);
    }
}

int sl__wss_server_new(sl__wss_server **out, uv_loop_t *loop, sl_ctx *ctx, const sl_authn *authn,
                       const sl__wss_limits *lim)
{
    *out = NULL;
    sl__wss_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    if (sl__hub_new(&s->hub, loop, ctx->engine) != SL_OK) {
        free(s);
        return SL_ENOMEM;
    }
    if (sl__map_new(&s->published) != SL_OK) { /* (C) */
        sl__hub_free(s->hub);
        free(s);
        return SL_ENOMEM;
    }
    sl__hub_set_metrics(s->hub, ctx->metrics); /* (A14) */
    s->loop = loop;
    s->ctx = ctx;
    s->authn = authn;
    if (lim)
        s->lim = *lim;
    else
        sl__wss_limits_init(&s->lim);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&s->sweep);
    sl_ctx_set_listener(ctx, on_event, s);
    if ((s->watched = authn->revocation) != NULL)
        sl_revocation_set_watch(s->watched, on_revoked, s);
    *out = s;
    return SL_OK;
}

static void on_sweep_closed(uv_handle_t *h)
{
    free(h->data);
}

void sl__wss_server_close(sl__wss_server *s)
{
    if (s == NULL)
        return;
    sl_ctx_set_listener(s->ctx, NULL, NULL);
    if (s->watched)
        sl_revocation_set_watch(s->watched, NULL, NULL);
    s->watched = NULL;
    uv_timer_stop(&s->sweep);
    for (sess *x = s->head, *next; x; x = next) {
        next = x->next;
        ref(x);
        close_with(x, SL__CF_DISC_SHUTDOWN, NULL);
        unref(x);
    }
}

void sl__wss_server_free(sl__wss_server *s)
{
    if (s == NULL)
        return;
    sl__wss_server_close(s);
    sl__hub_free(s->hub);
    sl__map_free(s->published, free); /* (C) */
    uv_close((uv_handle_t *)&s->sweep, on_sweep_closed);
}

size_t sl__wss_sessions(const sl__wss_server *s)
{
    return s->nsessions;
}

static void open_session(sl__wss_server *srv, sl_http_request *req, const sl_identity *signer);

/* An upgrade request with a credential of its own (a signature, a client certificate) on its way
 * through the authentication chain. */
typedef struct upgrade_auth {
    sl__wss_server *srv;
    sl_http_request *req;
    sl_authn_request view;
    int is_signed;
} upgrade_auth;

static void on_upgrade_authenticated(void *ud, int status, const sl_identity *who,
                                     const char *reason)
{
    upgrade_auth *u = ud;
    if (status == SL_OK) {
        open_session(u->srv, u->req, who);
    } else if (!u->is_signed) {
        /* A client certificate that names no one here: the connect command may still carry a
         * token, as on a connection without one. */
        open_session(u->srv, u->req, NULL);
    } else {
        /* The same answer an HTTP request gets: 401 with the reason, 503 when undecided. */
        sl__response resp = {0};
        sl__response_error(&resp, status == SL_EUNAVAIL ? SL_EUNAVAIL : SL_ETOKEN,
                           reason ? reason : "invalid signature");
        sl_http_respond(u->req, resp.status, resp.headers, "application/json", resp.body,
                        resp.body_len);
        sl__response_clear(&resp);
    }
    free(u);
}

void sl__wss_handle(sl__wss_server *srv, sl_http_request *req)
{
    size_t len;
    int is_signed = sl_http_header_get(req, "signature-input", &len) != NULL ||
                    sl_http_header_get(req, "signature", &len) != NULL;
    unsigned allowed = req->accept ? req->accept : ~0u;
    unsigned kinds =
        (is_signed ? SL_AUTHN_KIND_SIGNED : 0u) | (req->peer ? SL_AUTHN_KIND_CERT : 0u);
    if ((kinds &= allowed) == 0) {
        open_session(srv, req, NULL);
        return;
    }
    upgrade_auth *u = calloc(1, sizeof *u);
    if (u == NULL) {
        sl_http_respond(req, 503, "Retry-After: 1\r\n", "application/json",
                        "{\"error\":\"unavailable\",\"message\":\"out of memory\"}", 49);
        return;
    }
    u->srv = srv;
    u->req = req;
    u->is_signed = (kinds & SL_AUTHN_KIND_SIGNED) != 0;
    sl__authn_view(req, &u->view);
    u->view.accept = kinds; /* a bearer token goes in the connect command */
    sl_authn_run_request(srv->authn, &u->view, sl_ctx_now(srv->ctx), on_upgrade_authenticated, u);
}

static void open_session(sl__wss_server *srv, sl_http_request *req, const sl_identity *signer)
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
    sl_identity_init(&s->upgrade_who);
    if (signer && signer->source != SL_SOURCE_NONE &&
        sl_identity_copy(&s->upgrade_who, signer) != SL_OK) {
        free(s);
        sl_http_respond(req, 503, "Retry-After: 1\r\n", "application/json",
                        "{\"error\":\"unavailable\",\"message\":\"out of memory\"}", 49);
        return;
    }
    sl__hub_peer_init(&s->peer, &peer_ops);
    double now = sl_ctx_now(srv->ctx);
    s->deadline = now + srv->lim.handshake_timeout;
    s->since = now; /* (C) */
    snprintf(s->remote, sizeof s->remote, "%s", req->remote_addr);
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
    sl_ws_callbacks cb = {.on_text = on_text, .on_close = on_close};
    if (sl_ws_accept(req, &wl, &cb, s, &s->conn) != SL_OK) {
        sess_free(s);
        return;
    }
    s->next = srv->head;
    if (srv->head)
        srv->head->prev = s;
    srv->head = s;
    srv->nsessions++;
    if (srv->ctx->metrics) { /* (A14) */
        srv->ctx->metrics->ws_connections++;
        srv->ctx->metrics->ws_sessions++;
    }
    if (srv->nsessions > srv->lim.max_connections)
        close_with(s, SL__CF_DISC_CONNECTION_LIMIT, NULL);
}

/* ---- (C) the server API's view of the sessions ---------------------------------------------- */

/* 1 when session x is connected, of workspace ws, and selected by principal and id (NULL: any). */
static int selected(const sess *x, const char *ws, const char *principal, const char *id)
{
    return x->state == ST_CONNECTED && strcmp(x->who.workspace, ws) == 0 &&
           (principal == NULL || strcmp(x->who.principal, principal) == 0) &&
           (id == NULL || strcmp(x->client, id) == 0);
}

int sl__wss_conns(sl__wss_server *s, const char *ws, const char *principal, sl__wss_conn_fn fn,
                  void *ud)
{
    for (sess *x = s->head; x; x = x->next) {
        if (!selected(x, ws, principal, NULL))
            continue;
        const char **chans = x->nsubs ? malloc(x->nsubs * sizeof *chans) : NULL;
        if (x->nsubs && chans == NULL)
            return SL_ENOMEM;
        for (size_t i = 0; i < x->nsubs; i++)
            chans[i] = x->subs[i]->channel;
        sl__wss_conn_view v = {.id = x->client,
                               .principal = x->who.principal,
                               .workspace = x->who.workspace,
                               .remote = x->remote,
                               .transport = "websocket",
                               .since = x->since,
                               .channels = chans,
                               .nchannels = x->nsubs};
        int rc = fn(ud, &v);
        free(chans);
        if (rc != 0)
            return rc;
    }
    return SL_OK;
}

const char *sl__wss_conn_principal(sl__wss_server *s, const char *ws, const char *id)
{
    for (sess *x = s->head; x; x = x->next)
        if (selected(x, ws, NULL, id))
            return x->who.principal;
    return NULL;
}

size_t sl__wss_count(sl__wss_server *s, const char *ws, const char *principal, const char *id)
{
    size_t n = 0;
    for (sess *x = s->head; x; x = x->next)
        n += selected(x, ws, principal, id);
    return n;
}

size_t sl__wss_disconnect(sl__wss_server *s, const char *ws, const char *principal, const char *id,
                          int code, const char *reason)
{
    size_t n = 0;
    for (sess *x = s->head, *next; x; x = next) {
        next = x->next; /* closing leaves x linked until its socket is gone */
        if (!selected(x, ws, principal, id))
            continue;
        ref(x);
        close_with(x, code, reason);
        unref(x);
        n++;
    }
    return n;
}

size_t sl__wss_unsubscribe(sl__wss_server *s, const char *ws, const char *principal,
                           const char *channel, const char *reason)
{
    size_t n = 0, i;
    for (sess *x = s->head; x; x = x->next) {
        if (selected(x, ws, principal, NULL) && find_sub(x, channel, &i)) {
            unsubscribe_at(x, i, SL__CF_UNSUB_SERVER, reason);
            n++;
        }
    }
    return n;
}

size_t sl__wss_subscribers(const sl__wss_server *s, const char *channel)
{
    size_t n = 0;
    sl__hub_chan *c = sl__hub_chan_get(s->hub, channel, NULL, 0);
    if (c)
        sl__hub_chan_subs(c, &n);
    return n;
}

uint64_t sl__wss_published(const sl__wss_server *s, const char *channel)
{
    const uint64_t *n = sl__map_get(s->published, channel);
    return n ? *n : 0;
}

struct sl__hub *sl__wss_hub(sl__wss_server *s)
{
    return s->hub;
}
