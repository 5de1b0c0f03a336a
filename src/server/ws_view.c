/* The server API's view of the WebSocket sessions (server/wsession.h; used by
 * server/routes_server.c): list, count, disconnect and unsubscribe connected sessions, scoped to
 * one workspace, and the per-channel figures (subscribers, writes this node was told of). */
#include <stdlib.h>
#include <string.h>

#include "server/hub.h"
#include "server/ws_session.h"

/* ---- the server API's view of the sessions -------------------------------------------------- */

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
        sl__sess_ref(x);
        sl__sess_close(x, code, reason);
        sl__sess_unref(x);
        n++;
    }
    return n;
}

size_t sl__wss_unsubscribe(sl__wss_server *s, const char *ws, const char *principal,
                           const char *channel, const char *reason)
{
    size_t n = 0, i;
    for (sess *x = s->head; x; x = x->next) {
        if (selected(x, ws, principal, NULL) && sl__sess_find_sub(x, channel, &i)) {
            sl__sess_unsubscribe_at(x, i, SL__CF_UNSUB_SERVER, reason);
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
