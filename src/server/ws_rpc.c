/* The rpc methods of a WebSocket session: work queues over the socket (queue.claim, queue.write,
 * queue.batch, queue.ack, queue.nack, queue.extend, queue.terminate; docs/WEBSOCKET.md). The
 * method's data becomes one channel API request, answered like its HTTP route; a claim the reply
 * cannot carry is given back rather than left leased undelivered. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "core/msgjson.h"
#include "net/centrifuge.h"
#include "server/limits.h"
#include "server/params.h"
#include "server/ws_session.h"

/* ---- rpc: work queues over the socket ------------------------------------------------------- */

static int rpc_ids(json_t *data, const char ***ids, size_t *n)
{
    json_t *a = json_object_get(data, "ids");
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > SL__REQ_MAX_IDS)
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
    int over = rc == SL_OK && sl__sess_reply_overflowed(s, start);
    if (rc == SL_OK && !over)
        return;
    const char **ids = l->len ? calloc(l->len, sizeof *ids) : NULL;
    for (size_t i = 0; ids && i < l->len; i++)
        ids[i] = l->items[i].id;
    if (ids)
        sl__channel_release(s->srv->ctx, &s->who, channel, ids, l->len);
    free(ids);
    if (over)
        sl__sess_reply_too_big(s, id);
    else
        sl__sess_reply_error(s, id, SL__CF_ERR_INTERNAL, NULL);
}

static void rpc_cont(sess *s, wait *w)
{
    uint32_t id = w->cmd.id;
    sl__chop *op = &w->op;
    if (op->rc != SL_OK) {
        sl__sess_reply_rc(s, id, op->rc);
        return;
    }
    if (op->op == SL_OP_CHANNEL_READ) {
        claim_reply(s, id, op->channel, &op->list);
        sl__sess_touch(s);
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
        sl__sess_reply_error(s, id, SL__CF_ERR_INTERNAL, NULL);
    else
        sl__cf_reply_rpc(&s->peer.out, id, out, strlen(out));
    sl__sess_touch(s);
    free(out);
}

/* queue.write's envelope beside its data: metadata (an object) and the fields every transport
 * takes alike (sl__envelope_fields). Strings borrow data (the wait keeps it). */
static int rpc_envelope(json_t *data, sl_write *out, char **meta)
{
    if (sl__envelope_fields(data, out, NULL) != SL_OK)
        return SL_EINVAL;
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
        if ((lim && !json_is_integer(lim)) || limit < 1 || limit > SL__REQ_MAX_LIMIT)
            return SL_EINVAL;
        /* Bounded by what the reply can carry, so that nothing is claimed that the socket
         * would refuse to deliver. */
        op->op = SL_OP_CHANNEL_READ;
        op->read =
            (sl_read){.limit = (size_t)limit, .exclusive = 1, .max_bytes = sl__sess_reply_room(s)};
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
        if (!json_is_array(arr) || n == 0 || n > SL__REQ_MAX_BATCH)
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

void sl__sess_cmd_rpc(sess *s, sl__cf_command *c)
{
    const char *m = c->rpc_method ? c->rpc_method : "";
    if (strcmp(m, "queue.claim") && strcmp(m, "queue.ack") && strcmp(m, "queue.nack") &&
        strcmp(m, "queue.write") && strcmp(m, "queue.extend") && strcmp(m, "queue.terminate") &&
        strcmp(m, "queue.batch")) {
        sl__sess_reply_error(s, c->id, SL__CF_ERR_METHOD_NOT_FOUND, NULL);
        return;
    }
    json_t *data = c->data ? json_loadb(c->data, c->data_len, 0, NULL) : NULL;
    const char *channel = json_string_value(json_object_get(data, "channel"));
    if (!json_is_object(data) || channel == NULL) {
        json_decref(data);
        sl__sess_reply_error(s, c->id, SL__CF_ERR_BAD_REQUEST,
                             "data must be an object with a channel");
        return;
    }
    wait *w = sl__wait_new(s, c, SL_OP_CHANNEL_READ, channel);
    if (w == NULL) {
        json_decref(data);
        return;
    }
    w->data = data;
    int rc = rpc_prepare(s, w, w->cmd.rpc_method);
    if (rc != SL_OK) {
        sl__sess_reply_rc(s, w->cmd.id, rc);
        sl__wait_free(w);
        return;
    }
    sl__wait_submit(s, w, rpc_cont);
}
