/* The channel commands of a WebSocket session (docs/WEBSOCKET.md): subscribe (with its position
 * and recovery from the stream, a `$` channel's subscription token checked first, a policy
 * regime asked first where one governs), unsubscribe, sub_refresh, publish (in flight beside the
 * session's next commands), history and presence. Each runs through the channel API or
 * sl__channel_enter with the session's identity and answers from its outcome; the session's
 * lifetime, output and waits are wsession.c's (server/ws_session.h). */
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "core/metrics.h"
#include "net/centrifuge.h"
#include "server/hub.h"
#include "server/ws_session.h"
#include "security/workspace.h"

/* The `$` subscribe goes on with the policy regime's answer at hand (its first check was
 * decided before the token was: an answer the regime gave with TTL 0 is gone by now). */
static void on_sub_prepared(void *ud)
{
    sess *s = ud;
    sl__cf_command *c = sl__sess_take_command(s);
    if (!s->gone && s->state == ST_CONNECTED)
        sl__sess_cmd_subscribe(s, c, s->sub_tok);
    sl__sess_identity_free(&s->sub_tok);
    sl__cf_command_clear(c);
    free(c);
    if (!s->gone && !s->busy)
        sl__sess_run_queue(s);
    sl__sess_unref(s);
}

/* 1 when the regime is being asked first (c taken over, tok copied), else 0. */
static int policy_first(sess *s, sl__cf_command *c, const sl_identity *tok)
{
    if (!sl__authz_needs(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, (const char *const *)&c->channel,
                         1) ||
        (s->sub_tok = sl__sess_identity_dup(tok)) == NULL)
        return 0;
    sl__cf_command *p = sl__sess_hold_command(s, c);
    if (p == NULL) {
        sl__sess_identity_free(&s->sub_tok);
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
    sl__cf_command *c = sl__sess_take_command(s);
    if (status == SL_OK && sl__sess_expired_now(who, sl__sess_now(s)))
        status = SL_EEXPIRED;
    if (!s->gone && s->state == ST_CONNECTED) {
        if (status == SL_OK && c->method == SL__CF_SUBSCRIBE && policy_first(s, c, who))
            ; /* on_sub_prepared goes on */
        else if (status == SL_OK && c->method == SL__CF_SUBSCRIBE)
            sl__sess_cmd_subscribe(s, c, who);
        else if (status == SL_OK)
            sl__sess_cmd_sub_refresh(s, c, who);
        else if (status == SL_EFORBIDDEN)
            sl__sess_close(s, SL__CF_DISC_INVALID_TOKEN, NULL);
        else
            sl__sess_reply_error(s, c->id,
                                 status == SL_EEXPIRED   ? SL__CF_ERR_TOKEN_EXPIRED
                                 : status == SL_EUNAVAIL ? SL__CF_ERR_INTERNAL
                                                         : SL__CF_ERR_PERMISSION_DENIED,
                                 NULL);
    }
    sl__cf_command_clear(c);
    free(c);
    if (!s->gone)
        sl__sess_run_queue(s);
    sl__sess_unref(s);
}

/* Takes c over and checks its subscription token; later commands wait until the answer. */
static void check_sub_token(sess *s, sl__cf_command *c)
{
    sl__cf_command *p = sl__sess_hold_command(s, c);
    if (p == NULL)
        return;
    sl_authn_subscription_run(s->srv->authn, p->token, s->who.principal, sl__ws_name(p->channel),
                              sl__sess_now(s), on_sub_token, s);
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
void sl__sess_cmd_subscribe(sess *s, sl__cf_command *c, const sl_identity *tok)
{
    sl__wss_server *srv = s->srv;
    if (sl__sess_find_sub(s, c->channel, NULL)) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_ALREADY_SUBSCRIBED, NULL);
        return;
    }
    if (s->nsubs >= srv->lim.max_subscriptions) {
        sl__sess_close(s, SL__CF_DISC_CHANNEL_LIMIT, NULL);
        return;
    }
    const sl_channel_info *info = NULL;
    sl_status st = {0};
    int rc = sl__channel_enter(srv->ctx, &s->who, SL_OP_CHANNEL_READ, c->channel, &info, &st);
    if (rc != SL_OK) {
        sl__sess_reply_rc(s, c->id, rc);
        return;
    }
    if (sl__ws_name(c->channel)[0] == '$' && tok == NULL) {
        check_sub_token(s, c);
        return;
    }
    int recover = c->recover && info->kind == SL_KIND_TOPIC;
    uint64_t offset = c->offset;
    wait *w = sl__wait_new(s, c, SL_OP_CHANNEL_READ, c->channel);
    if (w == NULL)
        return;
    if (tok && sl_identity_copy(&w->tok, tok) != SL_OK) {
        sl__sess_reply_error(s, w->cmd.id, SL__CF_ERR_INTERNAL, NULL);
        sl__wait_free(w);
        return;
    }
    if (recover) {
        /* One more than the cap tells "too many to recover". */
        sl__msgid_format(offset, w->after);
        w->op.read = (sl_read){.limit = srv->lim.history_max + 1,
                               .after = w->after,
                               .max_bytes = sl__sess_reply_room(s)};
    } else {
        w->op.position = 1;
    }
    /* The channel's feed is watched first (a shared engine), so nothing published after the
     * position is read can be missed; the session waits from here on. */
    w->cont = subscribe_cont;
    w->op.done = sl__wait_done;
    w->op.ud = w;
    s->busy = 1;
    sl__sess_ref(s);
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
        sl__sess_reply_rc(s, w->cmd.id, rc);
    sl__wait_free(w);
    if (!s->gone && !s->busy)
        sl__sess_run_queue(s);
    sl__sess_unref(s);
}

static void subscribe_cont(sess *s, wait *w)
{
    sl__wss_server *srv = s->srv;
    sl__cf_command *c = &w->cmd;
    if (w->op.rc != SL_OK) {
        sl__sess_reply_rc(s, c->id, w->op.rc);
        return;
    }
    const sl_identity *tok = w->tok.source != SL_SOURCE_NONE ? &w->tok : NULL;
    if (sl__sess_find_sub(s, c->channel,
                          NULL)) { /* subscribed meanwhile by a command that waited less */
        sl__sess_reply_error(s, c->id, SL__CF_ERR_ALREADY_SUBSCRIBED, NULL);
        return;
    }
    const sl_channel_info *info = sl__map_get(srv->ctx->channels, c->channel);
    sl__hub_chan *hc = info ? sl__hub_chan_get(srv->hub, c->channel, info, 1) : NULL;
    if (hc == NULL) {
        sl__sess_reply_error(s, c->id, info ? SL__CF_ERR_INTERNAL : SL__CF_ERR_UNKNOWN_CHANNEL,
                             NULL);
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
            sl__sess_reply_error(s, c->id, SL__CF_ERR_UNRECOVERABLE_POSITION, NULL);
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
        sl__sess_sub_free(sub);
        free(pubs);
        sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    sub->peer = &s->peer;
    sub->client = s->client;
    sub->user = s->who.principal;
    /* The reply goes into the batch before any push the subscription can receive. */
    sl__cf_subscribe_result r = {
        .expires = token_exp > 0,
        .ttl = token_exp > 0 ? sl__sess_ttl_until(token_exp, sl__sess_now(s)) : 0,
        .recoverable = topic,
        .epoch = topic ? sl__hub_chan_epoch(hc) : NULL,
        .offset = top,
        .was_recovering = c->recover && topic,
        .recovered = c->recover && topic,
        .publications = pubs,
        .npublications = npubs,
    };
    sl__cf_reply_subscribe(&s->peer.out, c->id, &r);
    sl__sess_touch(s);
    free(pubs);
    w->prepared = 0; /* the mark is the subscription's now */
    s->marked = NULL;
    if (sl__hub_subscribe(srv->hub, hc, sub, top) != SL_OK) {
        sl__sess_sub_free(sub);
        sl__sess_close(s, SL__CF_DISC_SERVER_ERROR, NULL);
        return;
    }
    s->subs[s->nsubs++] = sub;
    if (s->srv->ctx->metrics) {
        s->srv->ctx->metrics->ws_subscriptions++;
        s->srv->ctx->metrics->ws_subscribed++;
    }
}

void sl__sess_cmd_unsubscribe(sess *s, const sl__cf_command *c)
{
    size_t i;
    if (sl__sess_find_sub(s, c->channel, &i))
        sl__sess_unsubscribe_at(s, i, 0, NULL);
    sl__cf_reply_empty(&s->peer.out, c->id, SL__CF_UNSUBSCRIBE);
    sl__sess_touch(s);
}

/* tok as for cmd_subscribe. */
void sl__sess_cmd_sub_refresh(sess *s, sl__cf_command *c, const sl_identity *tok)
{
    sl__hub_sub *sub = sl__sess_find_sub(s, c->channel, NULL);
    if (sub == NULL || sl__ws_name(c->channel)[0] != '$') {
        sl__sess_reply_error(s, c->id, sub ? SL__CF_ERR_BAD_REQUEST : SL__CF_ERR_UNKNOWN_CHANNEL,
                             NULL);
        return;
    }
    if (tok == NULL) {
        check_sub_token(s, c);
        return;
    }
    if (hold_token(sub, tok) != SL_OK) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    sl__cf_reply_refresh(&s->peer.out, c->id, SL__CF_SUB_REFRESH, NULL, NULL, true,
                         sl__sess_ttl_until(tok->expires_at, sl__sess_now(s)));
    sl__sess_touch(s);
}

static void publish_cont(sess *s, wait *w)
{
    if (w->op.rc != SL_OK) {
        sl__sess_reply_rc(s, w->cmd.id, w->op.rc);
        return;
    }
    sl__cf_reply_empty(&s->peer.out, w->cmd.id, SL__CF_PUBLISH);
    sl__sess_touch(s);
}

void sl__sess_cmd_publish(sess *s, sl__cf_command *c)
{
    wait *w = sl__wait_new(s, c, SL_OP_CHANNEL_WRITE, c->channel);
    if (w == NULL)
        return;
    w->w = (sl_write){.data = w->cmd.data, .data_len = w->cmd.data_len, .origin = s->client};
    w->op.writes = &w->w;
    w->op.nwrites = 1;
    sl__wait_fly(s, w, publish_cont);
}

/* The channel's real-time state for history and presence (authorised as a read first). */
static sl__hub_chan *enter_read(sess *s, const sl__cf_command *c, const sl_channel_info **info)
{
    sl_status st = {0};
    int rc = sl__channel_enter(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, c->channel, info, &st);
    if (rc != SL_OK) {
        sl__sess_reply_rc(s, c->id, rc);
        return NULL;
    }
    /* A `$` channel is read only through a subscription its subscription token opened. */
    if (c->channel[0] == '$' && sl__sess_find_sub(s, c->channel, NULL) == NULL) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_PERMISSION_DENIED, NULL);
        return NULL;
    }
    sl__hub_chan *hc = sl__hub_chan_get(s->srv->hub, c->channel, *info, 1);
    if (hc == NULL)
        sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
    return hc;
}

static void history_read(sess *s, wait *w);
static void history_reply(sess *s, wait *w);

/* History takes two answers of the channel API: the stream's top, then the publications. */
void sl__sess_cmd_history(sess *s, sl__cf_command *c)
{
    const sl_channel_info *info;
    sl__hub_chan *hc = enter_read(s, c, &info);
    if (hc == NULL)
        return;
    if (info->kind != SL_KIND_TOPIC) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_BAD_REQUEST, "history applies to topics");
        return;
    }
    if (c->has_since &&
        (c->since_epoch == NULL || strcmp(c->since_epoch, sl__hub_chan_epoch(hc)))) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_UNRECOVERABLE_POSITION, NULL);
        return;
    }
    wait *w = sl__wait_new(s, c, SL_OP_CHANNEL_READ, c->channel);
    if (w == NULL)
        return;
    w->op.position = 1;
    sl__wait_submit(s, w, history_read);
}

static void history_read(sess *s, wait *w)
{
    sl__cf_command *c = &w->cmd;
    if (w->op.rc != SL_OK) {
        sl__sess_reply_rc(s, c->id, w->op.rc);
        return;
    }
    uint64_t top = w->op.seq;
    size_t max = s->srv->lim.history_max;
    size_t limit = !c->has_limit                              ? 0
                   : c->limit < 0 || (uint64_t)c->limit > max ? max
                                                              : (size_t)c->limit;
    wait *next = sl__wait_new(s, c, SL_OP_CHANNEL_READ, c->channel);
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
        sl__wait_free(next);
        return;
    }
    sl__msgid_format(after, next->after);
    next->op.read =
        (sl_read){.limit = limit, .after = next->after, .max_bytes = sl__sess_reply_room(s)};
    sl__wait_submit(s, next, history_reply);
}

static void history_reply(sess *s, wait *w)
{
    sl__cf_command *c = &w->cmd;
    if (w->op.rc != SL_OK) {
        sl__sess_reply_rc(s, c->id, w->op.rc);
        return;
    }
    const sl_channel_info *info = sl__map_get(s->srv->ctx->channels, c->channel);
    sl__hub_chan *hc = info ? sl__hub_chan_get(s->srv->hub, c->channel, info, 1) : NULL;
    if (hc == NULL) {
        sl__sess_reply_error(s, c->id, info ? SL__CF_ERR_INTERNAL : SL__CF_ERR_UNKNOWN_CHANNEL,
                             NULL);
        return;
    }
    uint64_t top = w->top; /* as history began: the read's own may be newer */
    sl_message_list *l = &w->op.list;
    size_t n = 0;
    if (w->limit > 0) {
        /* Short of the limit with messages left: the byte bound stopped the read. Centrifugo
         * clients take a short history for the end of the stream, so this is an error. */
        if (l->more && l->len < w->limit) {
            sl__sess_reply_too_big(s, c->id);
            return;
        }
        n = l->len;
        while (c->reverse && n > 0 && sl__hub_offset_of(l->items[n - 1].id) >= w->end)
            n--;
    }
    sl__cf_pub *pubs = n ? calloc(n, sizeof *pubs + sizeof(sl__cf_client_info)) : NULL;
    if (n && pubs == NULL) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    pubs_of(l, n, pubs, (sl__cf_client_info *)(pubs + n), c->reverse);
    size_t start = s->peer.out.len;
    sl__cf_reply_history(&s->peer.out, c->id, pubs, n, sl__hub_chan_epoch(hc), top);
    free(pubs);
    if (sl__sess_reply_overflowed(s, start))
        sl__sess_reply_too_big(s, c->id);
    else
        sl__sess_touch(s);
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
    sl__sess_touch(s);
}

/* A shared engine answered a presence query the session held (every node's subscribers). */
static void presence_got(void *ud, int rc, const sl_message_list *l)
{
    sess *s = ud;
    sl__cf_command *c = sl__sess_take_command(s);
    if (!s->gone && s->state == ST_CONNECTED) {
        sl__cf_client_info *v = rc == SL_OK && l->len ? calloc(l->len, sizeof *v) : NULL;
        if (rc != SL_OK) {
            sl__sess_reply_rc(s, c->id, rc);
        } else if (l->len && v == NULL) {
            sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
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
        sl__sess_run_queue(s);
    sl__sess_unref(s);
}

void sl__sess_cmd_presence(sess *s, sl__cf_command *c)
{
    const sl_channel_info *info;
    sl__hub_chan *hc = enter_read(s, c, &info);
    if (hc == NULL)
        return;
    if (!sl__hub_chan_presence(hc)) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_NOT_AVAILABLE, NULL);
        return;
    }
    if (sl__hub_presence_shared(s->srv->hub)) {
        /* Several nodes: the engine holds everyone's entries; the session waits for them. */
        sl__cf_command *p = sl__sess_hold_command(s, c);
        if (p != NULL)
            sl__hub_presence_get(s->srv->hub, p->channel, presence_got, s);
        return;
    }
    size_t n;
    sl__hub_sub *const *subs = sl__hub_chan_subs(hc, &n);
    sl__cf_client_info *v = n ? calloc(n, sizeof *v) : NULL;
    if (n && v == NULL) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (sl__cf_client_info){.client = subs[i]->client, .user = subs[i]->user};
    presence_reply(s, c->id, c->method, v, n);
    free(v);
}
