/* The WebSocket server (server/wsession.h): the list of its sessions, the periodic sweep that
 * runs every session's timers (handshake deadline, ping and pong, token and subscription expiry)
 * in one pass instead of a timer per connection, and the upgrade of an HTTP request, which
 * authenticates a signed or certificate-bearing upgrade before the session opens (wsession.c)
 * and leaves a bearer token to the connect command. Its reactions to the context's events are
 * ws_events.c. */
#include "server/wsession.h"

#include <stdlib.h>

#include "api/ctx.h"
#include "net/centrifuge.h"
#include "server/hub.h"
#include "server/router.h"
#include "server/ws_session.h"

#define SWEEP_MS 200

static void sweep_one(sess *s, double now)
{
    const sl__wss_limits *l = &s->srv->lim;
    if (s->state == ST_HANDSHAKE) {
        if (now >= s->deadline)
            sl__sess_close(s, SL__CF_DISC_STALE, NULL);
        return;
    }
    if (s->state != ST_CONNECTED)
        return;
    if (s->pong_due > 0 && now >= s->pong_due) {
        sl__sess_close(s, SL__CF_DISC_NO_PONG, NULL);
        return;
    }
    if (s->who.expires_at > 0 && now >= s->who.expires_at + l->refresh_grace) {
        sl__sess_close(s, SL__CF_DISC_EXPIRED, NULL);
        return;
    }
    for (size_t i = s->nsubs; i-- > 0;) {
        double exp = s->subs[i]->token_expires_at;
        if (exp > 0 && now >= exp + l->refresh_grace) /* >= 2500: the client subscribes again */
            sl__sess_unsubscribe_at(s, i, SL__CF_UNSUB_INSUFFICIENT_STATE, "subscription expired");
    }
    if (now >= s->next_ping) {
        sl__cf_ping(&s->peer.out);
        sl__sess_touch(s);
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
        sl__sess_ref(s);
        sweep_one(s, now);
        sl__sess_unref(s);
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
    if (sl__map_new(&s->published) != SL_OK) {
        sl__hub_free(s->hub);
        free(s);
        return SL_ENOMEM;
    }
    sl__hub_set_metrics(s->hub, ctx->metrics);
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
    sl_ctx_set_listener(ctx, sl__wss_on_event, s);
    if ((s->watched = authn->revocation) != NULL)
        sl_revocation_set_watch(s->watched, sl__wss_on_revoked, s);
    *out = s;
    return SL_OK;
}

static void on_sweep_closed(uv_handle_t *h)
{
    free(h->data);
}

void sl__wss_server_set_log(sl__wss_server *s, sl__log *log)
{
    if (s != NULL)
        s->log = log;
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
        sl__sess_ref(x);
        sl__sess_close(x, SL__CF_DISC_SHUTDOWN, NULL);
        sl__sess_unref(x);
    }
}

void sl__wss_server_free(sl__wss_server *s)
{
    if (s == NULL)
        return;
    sl__wss_server_close(s);
    sl__hub_free(s->hub);
    sl__map_free(s->published, free);
    uv_close((uv_handle_t *)&s->sweep, on_sweep_closed);
}

size_t sl__wss_sessions(const sl__wss_server *s)
{
    return s->nsessions;
}

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
        sl__sess_open(u->srv, u->req, who);
    } else if (!u->is_signed) {
        /* A client certificate that names no one here: the connect command may still carry a
         * token, as on a connection without one. */
        sl__sess_open(u->srv, u->req, NULL);
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
        sl__sess_open(srv, req, NULL);
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
