/* What reaches the WebSocket sessions from outside their commands: the context's events (writes
 * handed to the hub and counted for the server API, channel deletions, ACL changes that make
 * sessions re-decide their subscriptions or close) and the revocation store's (a revoked
 * credential closes its sessions; a revoked subscription token ends its `$` subscriptions; after
 * a resync every held token is asked again). Access taken away is taken away as it happens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "net/centrifuge.h"
#include "server/hub.h"
#include "server/ws_session.h"
#include "security/workspace.h"

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
            sl__sess_unsubscribe_at(s, i, SL__CF_UNSUB_INSUFFICIENT_STATE,
                                    "authorisation unavailable");
        else if (rc != SL_OK && rc != SL__AUTHZ_ASK)
            sl__sess_unsubscribe_at(s, i, SL__CF_UNSUB_SERVER, "permission withdrawn");
    }
}

static void reauthorized(void *ud)
{
    sess *s = ud;
    if (!s->gone)
        reauthorize_now(s);
    sl__sess_unref(s);
}

/* Channels under a policy regime are asked again first (one authorise_many), from the loop. */
void sl__sess_reauthorize(sess *s)
{
    const char **chans = s->nsubs ? malloc(s->nsubs * sizeof *chans) : NULL;
    for (size_t i = 0; chans && i < s->nsubs; i++)
        chans[i] = s->subs[i]->channel;
    if (chans && sl__authz_needs(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, chans, s->nsubs)) {
        sl__sess_ref(s);
        sl__authz_prepare(s->srv->ctx, &s->who, SL_OP_CHANNEL_READ, chans, s->nsubs, reauthorized,
                          s);
    } else {
        reauthorize_now(s);
    }
    free(chans);
}

/* One more write to channel for the server API's statistics. Bounded by the channels that
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

void sl__wss_on_event(void *ud, const sl_event *ev)
{
    sl__wss_server *srv = ud;
    switch (ev->kind) {
    case SL_EVENT_WRITE:
        count_published(srv, ev->channel);
        sl__hub_publish(srv->hub, ev);
        break;
    case SL_EVENT_CHANNEL_DELETED:
        sl__map_del(srv->published, ev->channel, free);
        sl__hub_channel_deleted(srv->hub, ev->channel);
        break;
    case SL_EVENT_ACL_CHANGED: {
        /* Roles may come from patterns of any entry: re-check every subscription. */
        int acl_mode = sl_ctx_mode(srv->ctx) == SL_MODE_ACL;
        for (sess *s = srv->head, *next; s; s = next) {
            next = s->next;
            if (s->state != ST_CONNECTED)
                continue;
            sl__sess_ref(s);
            char qp[SL__QPRINCIPAL_SIZE]; /* grants are keyed by (workspace, principal) */
            if (ev->removed && acl_mode &&
                strcmp(sl__ws_principal(&s->who, qp), ev->principal) == 0)
                sl__sess_close(s, SL__CF_DISC_PERMISSION_DENIED, NULL);
            else
                sl__sess_reauthorize(s);
            sl__sess_unref(s);
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
        sl__sess_close(s, SL__CF_DISC_FORCE_NO_RECONNECT, NULL);
    sl__sess_unref(s);
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
    sl__sess_unsubscribe_at(s, i, SL__CF_UNSUB_SERVER, "token revoked");
}

static void on_sub_resync_checked(void *ud, int status, const char *reason)
{
    sub_check *k = ud;
    sess *s = k->s;
    size_t i;
    sl__hub_sub *sub = s->gone ? NULL : sl__sess_find_sub(s, k->channel, &i);
    if (status == SL_ETOKEN && sub && sub->token_id && strcmp(sub->token_id, k->token_id) == 0)
        end_held(s, i);
    free(k->token_id);
    free(k);
    sl__sess_unref(s);
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
            sl__sess_close(s, SL__CF_DISC_SERVER_ERROR, NULL); /* cannot tell: fail closed */
            return;
        }
        k->s = s;
        snprintf(k->channel, sizeof k->channel, "%s", sub->channel);
        sl__sess_ref(s);
        sl_revocation_check(srv->authn->revocation, k->token_id, s->who.principal,
                            sub->token_issued_at, on_sub_resync_checked, k);
        if (s->state == ST_CLOSED)
            return;
    }
    sl__sess_ref(s);
    sl_revocation_check_identity(srv->authn->revocation, &s->who, on_resync_checked, s);
}

/* A revocation from this node or (Redis) another: sessions whose credential it covers close with
 * 3503; `$` subscriptions whose subscription token it covers end with unsubscribe 2000. */
void sl__wss_on_revoked(void *ud, const sl_revocation_event *ev)
{
    sl__wss_server *srv = ud;
    for (sess *s = srv->head, *next; s; s = next) {
        next = s->next;
        if (s->state != ST_CONNECTED || s->who.source == SL_SOURCE_NONE)
            continue;
        sl__sess_ref(s);
        if (ev->resync) {
            resync(s);
        } else if (ev->token_id) {
            if (strcmp(ev->token_id, s->who.token_id) == 0)
                sl__sess_close(s, SL__CF_DISC_FORCE_NO_RECONNECT, NULL);
            for (size_t i = s->nsubs; s->state == ST_CONNECTED && i-- > 0;)
                if (s->subs[i]->token_id && strcmp(s->subs[i]->token_id, ev->token_id) == 0)
                    end_held(s, i);
        } else if (ev->user && strcmp(ev->user, s->who.principal) == 0) {
            if (s->who.issued_at <= ev->cutoff)
                sl__sess_close(s, SL__CF_DISC_FORCE_NO_RECONNECT, NULL);
            for (size_t i = s->nsubs; s->state == ST_CONNECTED && i-- > 0;)
                if (s->subs[i]->token_id && s->subs[i]->token_issued_at <= ev->cutoff)
                    end_held(s, i);
        }
        sl__sess_unref(s);
    }
}
