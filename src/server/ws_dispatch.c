/* A session's incoming commands (docs/WEBSOCKET.md, "Session"): the commands of each text frame,
 * held to the session's rate (and its workspace's), are run in order; while the session waits
 * (an authentication, a command on the channel API, publications in flight beyond what may go
 * beside them) the rest queue, bounded, and the socket is not read until they have run, nor while
 * the hub's batches are over budget. A command on a channel this node does not know yet, or one a
 * policy regime must be asked about, waits for that first. The commands themselves are
 * ws_auth.c, ws_channels.c and ws_rpc.c; the session's lifetime, output and waits are
 * wsession.c's (server/ws_session.h). */
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "core/metrics.h"
#include "net/centrifuge.h"
#include "net/ws.h"
#include "server/hub.h"
#include "server/ws_session.h"
#include "security/workspace.h"

/* Publications a session may have waiting for the channel API at once. One at a time, a publisher
 * on a shared engine would get one round trip to Redis per loop iteration, and a busy iteration
 * (fanning out to thousands of sockets) makes that far slower than a client publishes. */
#define MAX_IN_FLIGHT 32
/* Commands read but not yet started. The socket is not read while any wait, so only the frames
 * of the read already done can add to them: the bound is for a client that packs a read full. */
#define QUEUE_MAX (8 * SL__CF_MAX_COMMANDS)

/* Reads from the socket again unless commands still wait (run_queue resumes once they have run)
 * or the hub's batches are over budget (the hub resumes once they are out). */
void sl__sess_resume_reading(sess *s)
{
    if (s->conn == NULL || s->state == ST_CLOSED || s->nqueue > 0)
        return;
    if (sl__hub_busy(s->srv->hub)) {
        sl__hub_hold(s->srv->hub, &s->peer);
        return;
    }
    sl_ws_pause(s->conn, 0);
}

static int over_rate(sess *s)
{
    double now = sl__sess_now(s);
    if (now - s->win_start >= 1.0) {
        s->win_start = now;
        s->win_cmds = 0;
    }
    return ++s->win_cmds > s->srv->lim.commands_per_second;
}

/* 1 when the next command would be within the rate (over_rate without counting it). */
static int within_rate(const sess *s)
{
    return sl__sess_now(s) - s->win_start >= 1.0 || s->win_cmds < s->srv->lim.commands_per_second;
}

static int enters_channel(const sl__cf_command *c);
static void look_up_first(sess *s, sl__cf_command *c);

/* Workspaces: a command of a session in a workspace counts against the workspace's
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
    int rc = sl__ws_charge(s->srv->ctx->workspaces, ws, sl__sess_now(s), &st);
    if (rc != SL_OK) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_TOO_MANY_REQUESTS, st.message);
        return rc;
    }
    if (c->channel == NULL)
        return SL_OK;
    char q[SL__QID_SIZE];
    if (!sl_channel_id_valid(c->channel, strlen(c->channel)) ||
        sl__ws_qualify(ws, c->channel, q, sizeof q) != SL_OK) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_BAD_REQUEST, "invalid channel id");
        return SL_EBADID;
    }
    char *dup = strdup(q);
    if (dup == NULL) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
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
        sl__sess_reply_error(s, c->id, SL__CF_ERR_TOO_MANY_REQUESTS, NULL);
        return;
    }
    if (c->error) {
        sl__sess_reply_error(s, c->id, c->error, c->error_message);
        return;
    }
    if (s->state != ST_CONNECTED && c->method != SL__CF_CONNECT) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_UNAUTHORIZED, NULL);
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
    sl__cf_command *c = sl__sess_take_command(s);
    if (!s->gone && s->state == ST_CONNECTED)
        dispatch(s, c);
    sl__cf_command_clear(c);
    free(c);
    if (!s->gone && !s->busy)
        sl__sess_run_queue(s);
    sl__sess_unref(s);
}

/* Then a policy regime is asked (later, from the loop) before the command decides, with the
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
    sl__cf_command *p = sl__sess_hold_command(s, c);
    if (p == NULL)
        return;
    sl__channel_lookup(s->srv->ctx, p->channel, authorise_first, s);
}

static void dispatch(sess *s, sl__cf_command *c)
{
    switch (c->method) {
    case SL__CF_CONNECT:
        sl__sess_cmd_connect(s, c);
        break;
    case SL__CF_REFRESH:
        sl__sess_authenticate(s, c, c->token);
        break;
    case SL__CF_SUBSCRIBE:
        sl__sess_cmd_subscribe(s, c, NULL);
        break;
    case SL__CF_UNSUBSCRIBE:
        sl__sess_cmd_unsubscribe(s, c);
        break;
    case SL__CF_SUB_REFRESH:
        sl__sess_cmd_sub_refresh(s, c, NULL);
        break;
    case SL__CF_PUBLISH:
        sl__sess_cmd_publish(s, c);
        break;
    case SL__CF_HISTORY:
        sl__sess_cmd_history(s, c);
        break;
    case SL__CF_PRESENCE:
    case SL__CF_PRESENCE_STATS:
        sl__sess_cmd_presence(s, c);
        break;
    case SL__CF_RPC:
        sl__sess_cmd_rpc(s, c);
        break;
    default:
        sl__sess_reply_error(s, c->id, SL__CF_ERR_METHOD_NOT_FOUND, NULL);
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
void sl__sess_run_queue(sess *s)
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
        sl__sess_resume_reading(s);
    }
    s->draining = 0;
}

void sl__sess_on_text(sl_ws_conn *conn, const char *data, size_t len, void *ud)
{
    sess *s = ud;
    if (s->state == ST_CLOSED)
        return;
    if (s->srv->ctx->metrics)
        s->srv->ctx->metrics->ws_bytes_in += len;
    sl__cf_command cmds[SL__CF_MAX_COMMANDS];
    size_t n = 0;
    sl_status st = {0};
    if (sl__cf_parse_frame(data, len, cmds, SL__CF_MAX_COMMANDS, &n, &st) != SL_OK) {
        sl__sess_close(s, SL__CF_DISC_BAD_REQUEST, NULL);
        return;
    }
    sl__sess_ref(s);
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
                sl__sess_reply_error(s, cmds[i].id, SL__CF_ERR_TOO_MANY_REQUESTS, NULL);
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
    sl__sess_unref(s);
}
