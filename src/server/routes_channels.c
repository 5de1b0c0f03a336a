/* The channel routes of the HTTP API (/channels...): each route is a pair, a prepare that fills the
 * channel API request (sl__chop) from the HTTP request, answering hostile input with a 400 that
 * says what is wrong, and a render that builds the response from the request's outcome once the
 * channel API answered. Reads, PUT writes, envelope and batch writes (data and metadata taken from
 * the body's text as sent), acknowledge / nack / remove / extend / terminate by message ids (an
 * acknowledge's common body read without a JSON tree: ids_fast), evict, create, info, delete. The
 * router submits the request and decided access before any of this runs; what a prepare's inputs
 * borrow is kept in the job (server/job.h) until it finishes. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "server/limits.h"
#include "core/jsonspan.h"
#include "core/msgjson.h"
#include "core/numtext.h"
#include "security/workspace.h"
#include "server/job.h"
#include "server/params.h"
#include "server/routes.h"

static int is_message_id(const char *s)
{
    return strlen(s) <= 64;
}

/* {"message_ids":[...]}: borrowed strings (valid while body lives); the caller frees the array. */
static int parse_ids(json_t *body, const char ***ids, size_t *n, sl_status *st)
{
    if (!json_is_array(json_object_get(body, "message_ids")))
        return sl__fail(st, SL_EINVAL, "message_ids must be an array of message ids");
    return sl__string_list(body, "message_ids", SL__REQ_MAX_IDS, 0, is_message_id, "message ids",
                           ids, n, st);
}

static json_t *info_json(const sl_channel_info *c)
{
    json_t *backoff = json_array();
    for (size_t i = 0; backoff && i < c->nbackoff && i < SL_BACKOFF_MAX; i++)
        json_array_append_new(backoff, json_real(c->backoff[i]));
    json_t *opts = json_pack(
        "{s:s, s:f, s:I, s:s, s:I, s:I, s:f, s:b, s:b}", "security", sl_mode_name(c->mode),
        "claim_timeout", c->claim_timeout, "max_attempts", (json_int_t)c->max_attempts,
        "dead_letter", sl__ws_name(c->dead_letter), "max_messages", (json_int_t)c->max_messages,
        "retention_max_count", (json_int_t)c->retention_max_count, "retention_max_age",
        c->retention_max_age, "presence", c->presence, "join_leave", c->join_leave);
    if (opts) {
        json_object_set_new(opts, "backoff", backoff);
        json_object_set_new(opts, "dedup_window", json_real(c->dedup_window));
        json_object_set_new(opts, "cursor_idle_timeout", json_real(c->cursor_idle_timeout));
    } else {
        json_decref(backoff);
    }
    /* a workspace's channel under the caller's own name */
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I}", "id", sl__ws_name(c->id), "name",
                     c->name, "description", c->description, "kind",
                     c->kind == SL_KIND_TOPIC ? "topic" : "queue", "visibility",
                     c->visibility == SL_VIS_PUBLIC ? "public" : "private", "options", opts,
                     "depth", (json_int_t)c->depth);
}

/* field is one of the fixed names of r_count (plain ASCII): the answer of every acknowledge, so
 * it is written directly rather than built as a tree and dumped. */
static int ok_count(sl__response *resp, const char *field, size_t n)
{
    static const char pre[] = "{\"status\":\"ok\",\"";
    size_t fl = strlen(field);
    char *b = fl <= 32 ? malloc(sizeof pre - 1 + fl + 2 + 20 + 2) : NULL;
    if (b == NULL) {
        sl__response_json(resp, 200, json_pack("{s:s, s:I}", "status", "ok", field, (json_int_t)n));
        return SL_OK;
    }
    /* No printf: 0.6 % of a claim + acknowledge cycle's profile went to it here. */
    char *p = b;
    memcpy(p, pre, sizeof pre - 1);
    p += sizeof pre - 1;
    memcpy(p, field, fl);
    p += fl;
    memcpy(p, "\":", 2);
    p = sl__put_uint(p + 2, n);
    memcpy(p, "}", 2);
    resp->body = b;
    resp->body_len = (size_t)(p + 1 - b);
    resp->status = 200;
    return SL_OK;
}

int sl__p_list(sl__job *job, sl__chop *op)
{
    return SL_OK;
}

int sl__r_list(sl__job *job, sl__chop *op)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < op->ninfos; i++)
        json_array_append_new(arr, info_json(&op->infos[i]));
    sl__response_json(&job->resp, 200, json_pack("{s:o}", "channels", arr));
    return SL_OK;
}

int sl__p_simple(sl__job *job, sl__chop *op)
{
    return SL_OK;
}

int sl__r_info(sl__job *job, sl__chop *op)
{
    sl__response_json(&job->resp, 200, info_json(&op->info));
    return SL_OK;
}

int sl__p_read(sl__job *job, sl__chop *op)
{
    req_t *req = job->req;
    sl_status *st = &job->st;
    sl_read *rd = &op->read;
    rd->limit = 10;
    char buf[SL_CHANNEL_ID_MAX + 1];
    int q = sl__http_query_get(req, "limit", buf, sizeof buf);
    if (q < 0)
        return sl__fail(st, SL_EINVAL, "limit must be an integer between 1 and 1000");
    if (q > 0) {
        char *end;
        long v = strtol(buf, &end, 10);
        if (*buf == '\0' || *end || v < 1 || v > SL__REQ_MAX_LIMIT)
            return sl__fail(st, SL_EINVAL, "limit must be an integer between 1 and 1000");
        rd->limit = (size_t)v;
    }
    /* Any positive size is accepted; the channel API lowers it to the server's read_max_bytes. */
    q = sl__http_query_get(req, "max_bytes", buf, sizeof buf);
    if (q != 0) {
        char *end;
        errno = 0;
        unsigned long long v =
            q > 0 && buf[0] >= '0' && buf[0] <= '9' ? strtoull(buf, &end, 10) : 0;
        if (q < 0 || v == 0 || *end || errno == ERANGE)
            return sl__fail(st, SL_EINVAL, "max_bytes must be a positive integer");
        rd->max_bytes = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
    }
    q = sl__http_query_get(req, "exclusive", buf, sizeof buf);
    if (q < 0 || (q > 0 && sl__parse_bool(buf, &rd->exclusive) < 0))
        return sl__fail(st, SL_EINVAL, "exclusive must be true or false");
    q = sl__http_query_get(req, "after", job->after, sizeof job->after);
    if (q < 0)
        return sl__fail(st, SL_EINVAL, "after must be a message id");
    if (q > 0)
        rd->after = job->after;
    return SL_OK;
}

int sl__r_read(sl__job *job, sl__chop *op)
{
    /* The stored text goes out as it was written: no parse, no jansson tree per message. */
    if (sl__messages_json(&op->list, op->read.exclusive, &job->resp.body, &job->resp.body_len))
        return sl__fail(&job->st, SL_ENOMEM, "out of memory");
    job->resp.status = 200;
    return SL_OK;
}

int sl__p_write(sl__job *job, sl__chop *op)
{
    if (job->req->body_len == 0)
        return sl__fail(&job->st, SL_EJSON, "a JSON body is required");
    job->w = (sl_write){.data = job->req->body, .data_len = job->req->body_len};
    op->writes = &job->w;
    op->nwrites = 1;
    op->item_ids = job->item;
    return SL_OK;
}

int sl__r_write(sl__job *job, sl__chop *op)
{
    /* The hot path: a fixed shape around a hex id, without the JSON library or printf. */
    static const char pre[] = "{\"status\":\"accepted\",\"item_id\":\"", post[] = "\"}";
    size_t il = strlen(job->item[0]), n = sizeof pre - 1 + il + sizeof post - 1;
    job->resp.status = 200;
    char *b = job->resp.body = malloc(n + 1);
    if (b == NULL)
        return sl__fail(&job->st, SL_ENOMEM, "out of memory");
    memcpy(b, pre, sizeof pre - 1);
    memcpy(b + sizeof pre - 1, job->item[0], il);
    memcpy(b + sizeof pre - 1 + il, post, sizeof post); /* with its NUL */
    job->resp.body_len = n;
    return SL_OK;
}

/* The common body of an acknowledge, {"message_ids":["<hex>",...]} and nothing else, read without
 * building a JSON tree: one allocation holds the array and the ids. Anything else (other members,
 * escapes, odd ids, too many) returns 0 and goes through the full parser, which gives the same
 * ids or the same error, so this only decides how fast an answer comes. */
static int ids_fast(const char *p, size_t len, const char ***out, size_t *n)
{
    static const char head[] = "{\"message_ids\":[";
    const char *e = p + len;
    p = sl__json_skip_ws(p, e);
    if ((size_t)(e - p) < sizeof head - 1 || memcmp(p, head, sizeof head - 1) != 0)
        return 0;
    p += sizeof head - 1;
    size_t count = 0;
    for (const char *q = p; q < e; q++)
        count += *q == '"';
    count /= 2;
    if (count > SL__REQ_MAX_IDS)
        return 0;
    const char **v = malloc((count ? count : 1) * sizeof *v + len + count);
    if (v == NULL)
        return 0;
    char *w = (char *)(v + (count ? count : 1));
    size_t k = 0;
    p = sl__json_skip_ws(p, e);
    if (p < e && *p == ']') {
        p++;
    } else {
        for (;;) {
            if (p >= e || *p != '"' || k == count)
                goto slow;
            const char *s = ++p;
            while (p < e && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                p++;
            if (p >= e || *p != '"' || p - s > 64)
                goto slow;
            v[k++] = w;
            memcpy(w, s, (size_t)(p - s));
            w += p - s;
            *w++ = '\0';
            p = sl__json_skip_ws(p + 1, e);
            if (p < e && *p == ',') {
                p = sl__json_skip_ws(p + 1, e);
                continue;
            }
            if (p < e && *p == ']') {
                p++;
                break;
            }
            goto slow;
        }
    }
    p = sl__json_skip_ws(p, e);
    if (p >= e || *p != '}' || sl__json_skip_ws(p + 1, e) != e)
        goto slow;
    *out = v;
    *n = k;
    return 1;
slow:
    free(v);
    return 0;
}

/* The ids of an acknowledge / nack / remove body; the body stays with the job (ids borrow it). */
int sl__p_ids(sl__job *job, sl__chop *op)
{
    size_t n = 0;
    if (job->route->op == SL_OP_CHANNEL_ACK &&
        ids_fast(job->req->body, job->req->body_len, &job->ids, &n)) {
        op->ids = job->ids;
        op->nids = n;
        return SL_OK;
    }
    int rc = sl__parse_body(job->req, &job->body, &job->st);
    if (rc == SL_OK)
        rc = parse_ids(job->body, &job->ids, &n, &job->st);
    op->ids = job->ids;
    op->nids = n;
    return rc;
}

int sl__p_nack(sl__job *job, sl__chop *op)
{
    int rc = sl__p_ids(job, op);
    if (rc != SL_OK)
        return rc;
    json_t *d = json_object_get(job->body, "delay");
    if (d && !json_is_number(d) && !json_is_null(d))
        return sl__fail(&job->st, SL_EINVAL, "delay must be a number of seconds");
    op->delay = json_is_number(d) ? json_number_value(d) : 0;
    return SL_OK;
}

/* {"message_ids":[...], "seconds":N}: seconds absent or 0 is the queue's claim_timeout. */
int sl__p_extend(sl__job *job, sl__chop *op)
{
    int rc = sl__p_ids(job, op);
    if (rc != SL_OK)
        return rc;
    if (sl__get_seconds(job->body, "seconds", &op->delay, &job->st) < 0)
        return job->st.code;
    return SL_OK;
}

/* {"message_ids":[...], "reason":"..."} */
int sl__p_terminate(sl__job *job, sl__chop *op)
{
    int rc = sl__p_ids(job, op);
    if (rc != SL_OK)
        return rc;
    json_t *r = json_object_get(job->body, "reason");
    if (r && !json_is_null(r)) {
        if (!json_is_string(r) || json_string_length(r) != strlen(json_string_value(r)))
            return sl__fail(&job->st, SL_EINVAL, "reason must be a string");
        op->reason = json_string_value(r);
    }
    return SL_OK;
}

/* ---- envelope writes: POST /channels/{id}/messages and /batch ----------------------------------
 */

static const char *const envelope_fields[] = {"data",       "metadata",     "correlation_id",
                                              "reply_to",   "recipient_id", "idempotency_key",
                                              "not_before", "delay",        "ttl",
                                              NULL};

/* One message envelope: o is the parsed object, [s, e) its text (data and metadata are taken
 * from the text, as sent). Metadata is copied, NUL-terminated, to *meta. */
static int parse_envelope(json_t *o, const char *s, const char *e, sl_write *w, char **meta,
                          sl_status *st)
{
    if (!json_is_object(o))
        return sl__fail(st, SL_EINVAL, "a message must be a JSON object");
    if (sl__only_fields(o, envelope_fields, st) != SL_OK)
        return SL_EINVAL;
    const char *vs, *ve;
    if (json_object_get(o, "data") == NULL || !sl__json_member(s, e, "data", &vs, &ve))
        return sl__fail(st, SL_EINVAL, "data is required");
    *w = (sl_write){.data = vs, .data_len = (size_t)(ve - vs)};
    json_t *m = json_object_get(o, "metadata");
    if (m && !json_is_null(m)) {
        if (!json_is_object(m) || !sl__json_member(s, e, "metadata", &vs, &ve))
            return sl__fail(st, SL_EINVAL, "metadata must be a JSON object");
        memcpy(*meta, vs, (size_t)(ve - vs));
        (*meta)[ve - vs] = '\0';
        w->metadata = *meta;
        *meta += ve - vs + 1;
    }
    return sl__envelope_fields(o, w, st);
}

/* The body without jansson's duplicate check (message data may repeat keys, as over PUT); big
 * integers are read as reals only to validate, the data goes on as sent. */
static int parse_envelope_body(sl__job *job, size_t nmeta)
{
    req_t *req = job->req;
    json_error_t e;
    if (req->body_len == 0)
        return sl__fail(&job->st, SL_EJSON, "a JSON body is required");
    job->body = json_loadb(req->body, req->body_len, JSON_DECODE_INT_AS_REAL, &e);
    if (job->body == NULL || !json_is_object(job->body))
        return sl__fail(&job->st, SL_EJSON, "the body must be a JSON object");
    if ((job->meta = malloc(req->body_len + nmeta + 1)) == NULL)
        return sl__fail(&job->st, SL_ENOMEM, "out of memory");
    return SL_OK;
}

int sl__p_envelope(sl__job *job, sl__chop *op)
{
    int rc = parse_envelope_body(job, 1);
    if (rc != SL_OK)
        return rc;
    char *meta = job->meta;
    const char *b = job->req->body;
    rc = parse_envelope(job->body, b, b + job->req->body_len, &job->w, &meta, &job->st);
    op->writes = &job->w;
    op->nwrites = 1;
    op->item_ids = job->item;
    return rc;
}

int sl__r_envelope(sl__job *job, sl__chop *op)
{
    sl__response_json(&job->resp, 200,
                      json_pack("{s:s, s:s, s:b}", "status", "accepted", "item_id", job->item[0],
                                "duplicate", op->duplicates > 0));
    return SL_OK;
}

/* {"messages":[envelope, ...]}: 1..SL__REQ_MAX_BATCH messages, stored together or not at all. */
int sl__p_batch(sl__job *job, sl__chop *op)
{
    sl_status *st = &job->st;
    json_t *arr = NULL;
    const char *b = job->req->body, *be = b + job->req->body_len, *as, *ae;
    int rc = job->req->body_len ? SL_OK : sl__fail(st, SL_EJSON, "a JSON body is required");
    if (rc == SL_OK) {
        json_error_t e;
        job->body = json_loadb(b, job->req->body_len, JSON_DECODE_INT_AS_REAL, &e);
        arr = json_object_get(job->body, "messages");
        if (job->body == NULL || !json_is_object(job->body))
            return sl__fail(st, SL_EJSON, "the body must be a JSON object");
    }
    if (rc != SL_OK)
        return rc;
    if (json_object_size(job->body) != 1 || !json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > SL__REQ_MAX_BATCH)
        return sl_status_set(st, SL_EINVAL,
                             "the body must be {\"messages\":[...]} with 1..%d messages",
                             SL__REQ_MAX_BATCH);
    size_t n = json_array_size(arr);
    job->ws = calloc(n, sizeof *job->ws);
    job->items = calloc(n, sizeof *job->items);
    job->meta = malloc(job->req->body_len + n + 1);
    if (job->ws == NULL || job->items == NULL || job->meta == NULL)
        return sl__fail(st, SL_ENOMEM, "out of memory");
    if (!sl__json_member(b, be, "messages", &as, &ae))
        return sl__fail(st, SL_EJSON, "the body must be a JSON object");
    /* Walk the array's text beside its parse: element i's span for its data and metadata. */
    const char *p = sl__json_skip_ws(as, ae) + 1, *meta_end;
    char *meta = job->meta;
    for (size_t i = 0; i < n; i++) {
        p = sl__json_skip_ws(p, ae);
        meta_end = sl__json_skip_value(p, ae);
        rc = parse_envelope(json_array_get(arr, i), p, meta_end, &job->ws[i], &meta, st);
        if (rc != SL_OK) {
            char why[sizeof st->message];
            snprintf(why, sizeof why, "%s", st->message);
            return sl_status_set(st, rc, "messages[%zu]: %s", i, why);
        }
        p = sl__json_skip_ws(meta_end, ae);
        if (p < ae && *p == ',')
            p++;
    }
    op->writes = job->ws;
    op->nwrites = n;
    op->item_ids = job->items;
    return SL_OK;
}

int sl__r_batch(sl__job *job, sl__chop *op)
{
    json_t *ids = json_array();
    for (size_t i = 0; ids && i < op->nwrites; i++)
        json_array_append_new(ids, json_string(job->items[i]));
    sl__response_json(&job->resp, 200,
                      json_pack("{s:s, s:o, s:I}", "status", "accepted", "item_ids", ids,
                                "duplicates", (json_int_t)op->duplicates));
    return SL_OK;
}

int sl__r_count(sl__job *job, sl__chop *op)
{
    const char *field = op->op == SL_OP_CHANNEL_ACK         ? "acknowledged"
                        : op->op == SL_OP_CHANNEL_NACK      ? "nacked"
                        : op->op == SL_OP_CHANNEL_CLEAR     ? "cleared"
                        : op->op == SL_OP_CHANNEL_EVICT     ? "evicted"
                        : op->op == SL_OP_CHANNEL_EXTEND    ? "extended"
                        : op->op == SL_OP_CHANNEL_TERMINATE ? "terminated"
                                                            : "removed";
    return ok_count(&job->resp, field, op->count);
}

int sl__p_evict(sl__job *job, sl__chop *op)
{
    sl_status *st = &job->st;
    int rc = sl__parse_body(job->req, &job->body, st);
    if (rc != SL_OK)
        return rc;
    op->before = 0;
    op->max_count = SIZE_MAX;
    int b = sl__get_seconds(job->body, "before", &op->before, st);
    int m = b < 0 ? b : sl__get_count(job->body, "max_count", &op->max_count, st);
    if (b < 0 || m < 0)
        return st->code;
    if (b == 0 && m == 0)
        return sl__fail(st, SL_EINVAL, "give before and/or max_count");
    return SL_OK;
}

static const char *const create_fields[] = {"id",
                                            "kind",
                                            "name",
                                            "description",
                                            "visibility",
                                            "security",
                                            "claim_timeout",
                                            "max_attempts",
                                            "dead_letter",
                                            "max_messages",
                                            "retention_max_count",
                                            "retention_max_age",
                                            "presence",
                                            "join_leave",
                                            "backoff",
                                            "dedup_window",
                                            "cursor_idle_timeout",
                                            NULL};

/* Fills opts from a POST /channels body; strings borrowed from body. */
static int parse_create(json_t *body, sl_channel_opts *o, sl_status *st)
{
    if (sl__only_fields(body, create_fields, st) != SL_OK)
        return SL_EINVAL;
    const char *s = NULL;
    size_t u;
    if (sl__get_string(body, "kind", &s, st) < 0)
        return st->code;
    if (s && strcmp(s, "queue") && strcmp(s, "topic"))
        return sl__fail(st, SL_EINVAL, "kind must be queue or topic");
    o->kind = s && !strcmp(s, "topic") ? SL_KIND_TOPIC : SL_KIND_QUEUE;
    s = NULL;
    if (sl__get_string(body, "visibility", &s, st) < 0)
        return st->code;
    if (s && strcmp(s, "public") && strcmp(s, "private"))
        return sl__fail(st, SL_EINVAL, "visibility must be public or private");
    /* Created over the network: public unless said otherwise, or nobody could reach it. */
    o->visibility = s && !strcmp(s, "private") ? SL_VIS_PRIVATE : SL_VIS_PUBLIC;
    s = NULL;
    if (sl__get_string(body, "security", &s, st) < 0)
        return st->code;
    if (s && (int)(o->mode = sl_mode_parse(s)) < 0)
        return sl__fail(st, SL_EINVAL, "security must be inherit, open, acl or token");
    if (sl__get_string(body, "name", &o->name, st) < 0 ||
        sl__get_string(body, "description", &o->description, st) < 0 ||
        sl__get_string(body, "dead_letter", &o->dead_letter, st) < 0 ||
        sl__get_seconds(body, "claim_timeout", &o->claim_timeout, st) < 0 ||
        sl__get_seconds(body, "retention_max_age", &o->retention_max_age, st) < 0 ||
        sl__get_count(body, "max_messages", &o->max_messages, st) < 0 ||
        sl__get_count(body, "retention_max_count", &o->retention_max_count, st) < 0)
        return st->code;
    u = 0;
    int k = sl__get_count(body, "max_attempts", &u, st);
    if (k < 0)
        return st->code;
    if (u > 1000000)
        return sl__fail(st, SL_EINVAL, "max_attempts must be at most 1000000");
    o->max_attempts = (unsigned)u;
    const char *flags[] = {"presence", "join_leave"};
    int *dst[] = {&o->presence, &o->join_leave};
    for (size_t i = 0; i < 2; i++) {
        json_t *b = json_object_get(body, flags[i]);
        if (b && !json_is_boolean(b))
            return sl__fail(st, SL_EINVAL,
                            flags[i][0] == 'p' ? "presence must be a boolean"
                                               : "join_leave must be a boolean");
        *dst[i] = json_is_true(b);
    }
    if (sl__get_seconds(body, "dedup_window", &o->dedup_window, st) < 0 ||
        sl__get_seconds(body, "cursor_idle_timeout", &o->cursor_idle_timeout, st) < 0)
        return st->code;
    json_t *bo = json_object_get(body, "backoff");
    if (bo && !json_is_null(bo)) {
        if (!json_is_array(bo) || json_array_size(bo) > SL_BACKOFF_MAX)
            return sl_status_set(st, SL_EINVAL,
                                 "backoff must be an array of at most %d numbers of seconds",
                                 SL_BACKOFF_MAX);
        for (size_t i = 0; i < json_array_size(bo); i++) {
            json_t *v = json_array_get(bo, i);
            if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
                !isfinite(json_number_value(v)))
                return sl__fail(st, SL_EINVAL, "backoff steps must be non-negative numbers");
            o->backoff[i] = json_number_value(v);
        }
        o->nbackoff = json_array_size(bo);
    }
    return SL_OK;
}

int sl__p_create(sl__job *job, sl__chop *op)
{
    sl_status *st = &job->st;
    int rc = sl__parse_body(job->req, &job->body, st);
    if (rc != SL_OK)
        return rc;
    const char *id = NULL;
    sl_channel_opts_init(&job->opts);
    if (sl__get_string(job->body, "id", &id, st) < 0 || id == NULL)
        return sl__fail(st, SL_EBADID, "id must be a channel id");
    op->channel = id;
    op->opts = &job->opts;
    return parse_create(job->body, &job->opts, st);
}

int sl__r_create(sl__job *job, sl__chop *op)
{
    const sl_channel_info *info = sl__map_get(job->r->ctx->channels, op->qid);
    if (info == NULL) /* deleted again before the answer */
        return sl__fail(&job->st, SL_ENOENT, "channel not found");
    json_t *o = info_json(info);
    json_object_set_new(o, "depth", json_integer(0));
    sl__response_json(&job->resp, 201, o);
    return SL_OK;
}

int sl__r_ok(sl__job *job, sl__chop *op)
{
    sl__response_ok(&job->resp);
    return SL_OK;
}
