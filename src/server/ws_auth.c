/* Connect and refresh of a WebSocket session: the token (from the command, the URL, or the
 * upgrade request's own credential) runs through the same authenticator chain and revocation
 * store as an HTTP request; a refresh must keep the principal and the kind of credential; the
 * workspace side (an operator's crossing, the workspace's connections limit). Until a connect
 * passes, the session runs no other command. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "net/centrifuge.h"
#include "server/ws_session.h"
#include "security/workspace.h"

/* A credential whose exp has passed is refused with 109 even inside the verifier's clock-skew
 * leeway: the session would otherwise end moments after it began (3005), and a client reconnecting
 * with the same token would loop instead of fetching a new one. */
int sl__sess_expired_now(const sl_identity *who, double now)
{
    return who->expires_at > 0 && who->expires_at <= now;
}

/* ---- connect and refresh: authentication ---------------------------------------------------- */

/* Workspaces (docs/POLICY.md): the connect option {"workspace": NAME} in the connect's
 * data, honoured for operators only; "" when absent. SL_EINVAL for a malformed one. */
static int connect_workspace(sess *s, const sl__cf_command *c)
{
    free(s->cross);
    s->cross = NULL;
    json_t *d = c->data ? json_loadb(c->data, c->data_len, 0, NULL) : NULL;
    json_t *v = json_is_object(d) ? json_object_get(d, "workspace") : NULL;
    int rc = SL_OK;
    if (v &&
        (!json_is_string(v) || !sl_workspace_valid(json_string_value(v), json_string_length(v))))
        rc = SL_EINVAL;
    else if (v && (s->cross = strdup(json_string_value(v))) == NULL)
        rc = SL_ENOMEM;
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
    if (s->cross) {
        int rc = sl__ws_cross(ctx->workspaces, fresh, s->cross, &st);
        sl__ws_cross_audit(ctx, fresh, rc);
        if (rc != SL_OK) {
            if (method == SL__CF_CONNECT)
                sl__sess_reply_error(s, s->auth_id, SL__CF_ERR_PERMISSION_DENIED, NULL);
            else
                sl__sess_close(s, SL__CF_DISC_PERMISSION_DENIED, NULL);
            return rc;
        }
    }
    if (method != SL__CF_CONNECT) {
        if (strcmp(fresh->workspace, s->who.workspace) != 0) {
            sl__sess_close(s, SL__CF_DISC_INVALID_TOKEN, NULL);
            return SL_EFORBIDDEN;
        }
        return SL_OK;
    }
    if (sl__ws_connect(ctx->workspaces, fresh->workspace, &st) != SL_OK) {
        sl__sess_close(s, SL__CF_DISC_CONNECTION_LIMIT, NULL);
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
        sl__sess_close(s, SL__CF_DISC_INVALID_TOKEN, NULL);
        return;
    }
    if (status == SL_OK && sl__sess_expired_now(who, sl__sess_now(s)))
        status = SL_EEXPIRED;
    switch (status) {
    case SL_OK:
        break;
    case SL_EUNAUTH:
        sl__sess_reply_error(s, id, SL__CF_ERR_UNAUTHORIZED, NULL);
        return;
    case SL_EEXPIRED:
        sl__sess_reply_error(s, id, SL__CF_ERR_TOKEN_EXPIRED, NULL);
        return;
    case SL_ETOKEN:
        sl__sess_close(s, SL__CF_DISC_INVALID_TOKEN, NULL);
        return;
    default: /* the authenticator or the revocation store cannot answer now: try again */
        sl__sess_reply_error(s, id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    sl_identity fresh;
    sl_identity_init(&fresh);
    if (sl_identity_copy(&fresh, who) != SL_OK) {
        sl__sess_reply_error(s, id, SL__CF_ERR_INTERNAL, NULL);
        return;
    }
    if (ws_enter(s, method, &fresh) != SL_OK) {
        sl_identity_clear(&fresh);
        return;
    }
    sl_identity_clear(&s->who);
    s->who = fresh;
    double now = sl__sess_now(s);
    int expires = s->who.expires_at > 0;
    uint32_t ttl = expires ? sl__sess_ttl_until(s->who.expires_at, now) : 0;
    if (method == SL__CF_CONNECT) {
        s->state = ST_CONNECTED;
        sl__sess_log(s, SL__LOG_DEBUG, "ws connected", 0, NULL);
        s->next_ping = now + s->srv->lim.ping_interval;
        sl__cf_connect_result r = {
            .client = s->client,
            .version = sl_version(),
            .ping = (uint32_t)s->srv->lim.ping_interval,
            .pong = true,
            .expires = expires,
            .ttl = ttl,
        };
        sl__cf_reply_connect(&s->peer.out, id, &r);
    } else {
        sl__sess_reauthorize(s); /* the new token may carry another role or scope */
        sl__cf_reply_refresh(&s->peer.out, id, SL__CF_REFRESH, s->client, sl_version(), expires,
                             ttl);
    }
    sl__sess_touch(s);
}

/* The chain answered (revocation included, as on HTTP). */
static void on_authenticated(void *ud, int status, const sl_identity *who, const char *reason)
{
    sess *s = ud;
    if (!s->gone) {
        auth_finish(s, status, who);
        sl__sess_run_queue(s);
    }
    sl__sess_unref(s);
}

/* Starts authenticating token (NULL: none) for a connect or refresh command. */
void sl__sess_authenticate(sess *s, const sl__cf_command *c, const char *token)
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
            sl__sess_reply_error(s, c->id, SL__CF_ERR_INTERNAL, NULL);
            return;
        }
        snprintf(header, len + 1, "Bearer %s", token);
    }
    sl__sess_ref(s);
    sl_authn_run(s->srv->authn, header, len, sl__sess_now(s), on_authenticated, s);
    free(header);
}

void sl__sess_cmd_connect(sess *s, const sl__cf_command *c)
{
    if (s->state == ST_CONNECTED) {
        sl__sess_close(s, SL__CF_DISC_BAD_REQUEST, "already connected");
        return;
    }
    if (connect_workspace(s, c) != SL_OK) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_BAD_REQUEST, "invalid workspace");
        return;
    }
    const char *token = c->token && *c->token ? c->token : s->url_token;
    if ((token == NULL || *token == '\0') && s->upgrade_who != NULL) {
        /* The upgrade's own credential passed the chain (revocation included). */
        s->auth_id = c->id;
        s->auth_method = c->method;
        auth_finish(s, SL_OK, s->upgrade_who);
        return;
    }
    sl__sess_authenticate(s, c, token);
    free(s->url_token);
    s->url_token = NULL;
}
