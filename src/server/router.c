/* Routes of the HTTP API and their handlers. Each handler parses its parameters (hostile input gets
 * a 400 that says what is wrong), calls the channel API with the caller's identity, and renders
 * JSON. Access was decided before the handler ran, by the dispatcher, from the route's registered
 * operation. */
#include "server/router.h"

#include "api/ctx.h"
#include "core/jsonspan.h"
#include "core/msgjson.h"
#include "security/workspace.h"
#include "security/invoke.h" /* (B) */
#include "server/reqlog.h"   /* (B, issue 14) */
#include "server/console.h"  /* (D, issue 14) */

/* (C) */
#include "server/routes_audit.h"
#include "server/routes_server.h"
/* (A14) */
#include "core/metrics.h"
#include "server/routes_metrics.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sluice/apikey.h>
#include <sluice/authz.h>
#include <sluice/broker.h>

struct sl__job {
    sl__router *r;
    sl_http_request *req;
    const sl__route *route;
    const char *res; /* resource, or NULL */
    char resource[SL_CHANNEL_ID_MAX + 1];
    sl_identity who;
    sl_authn_request view; /* what the authenticators see of req */
    sl_status st;
    sl__response resp;
    sl__router_done_fn done;
    void *ud;
    /* channel routes: the request to the channel API and what its inputs borrow */
    sl__chop chop;
    json_t *body;
    const char **ids;
    sl_write w;
    sl_channel_opts opts;
    char item[1][SL__MSGID_LEN + 1];
    char after[128];
    /* envelope and batch writes */
    sl_write *ws;
    char (*items)[SL__MSGID_LEN + 1];
    char *meta; /* the metadata texts, each NUL-terminated */
    double t0;  /* (A14) arrival (the clock read authentication uses too) */
};

#define MAX_IDS 10000  /* message ids per acknowledge / nack / remove */
#define MAX_LIMIT 1000 /* messages per read */
#define MAX_BATCH 1000 /* messages per batch write (bytes: the server's body limit) */
#define MAX_FIELD 255  /* correlation_id, reply_to, recipient_id */
#define MAX_SEGMENTS 4

void sl__response_clear(sl__response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

void sl__response_json(sl__response *resp, int status, json_t *o)
{
    resp->status = status;
    resp->body = json_dumps(o, JSON_COMPACT);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    json_decref(o);
    if (resp->body == NULL) {
        resp->status = 500;
        resp->body = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
        resp->body_len = resp->body ? strlen(resp->body) : 0;
    }
}

void sl__response_error(sl__response *resp, int code, const char *message)
{
    free(resp->body);
    resp->body = NULL;
    resp->headers[0] = '\0';
    resp->content_type = NULL; /* (A14) */
    int status = sl_err_http_status(code);
    const char *msg = message && *message ? message : sl_strerror(code);
    if (code == SL_EUNAVAIL) {
        snprintf(resp->headers, sizeof resp->headers, "Retry-After: 1\r\n");
    } else if (code == SL_EUNAUTH) {
        snprintf(resp->headers, sizeof resp->headers,
                 "WWW-Authenticate: Bearer realm=\"sluice\"\r\n");
    } else if (code == SL_ETOKEN || code == SL_EEXPIRED) {
        /* RFC 6750 §3: the description is one of our fixed strings, never the token. */
        snprintf(resp->headers, sizeof resp->headers,
                 "WWW-Authenticate: Bearer realm=\"sluice\", error=\"invalid_token\", "
                 "error_description=\"%s\"\r\n",
                 msg);
    }
    json_t *o = json_pack("{s:s, s:s}", "error", sl_err_name(code), "message", msg);
    sl__response_json(resp, status, o);
}

static int fail(sl_status *st, int code, const char *msg)
{
    return sl_status_set(st, code, "%s", msg);
}

/* ---- parameters ------------------------------------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into dst (size cap). plus_space: '+' means ' ' (query strings). Returns
 * the decoded length or -1 for a bad escape, a NUL byte, or output longer than cap - 1. */
long sl__pct_decode(const char *src, size_t n, char *dst, size_t cap, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(src[i + 1]), l = hexval(src[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        } else if (plus_space && c == '+') {
            c = ' ';
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (long)o;
}

int sl__http_query_get(const sl_http_request *req, const char *name, char *buf, size_t cap)
{
    const char *q = req->query, *end = req->query + req->query_len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        char key[64];
        long kl = sl__pct_decode(q, (size_t)(kend - q), key, sizeof key, 1);
        if (kl == (long)nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : stop;
            return sl__pct_decode(v, (size_t)(stop - v), buf, cap, 1) < 0 ? -1 : 1;
        }
        q = stop + 1;
    }
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !*s)
        *out = 1;
    else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_body(const sl_http_request *req, json_t **out, sl_status *st)
{
    json_error_t e;
    if (req->body_len == 0)
        return fail(st, SL_EJSON, "a JSON body is required");
    *out = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return fail(st, SL_EJSON, "the body must be a JSON object");
    }
    return SL_OK;
}

static int is_pattern(const char *s)
{
    return sl_pattern_valid(s, strlen(s));
}

static int is_name(const char *s)
{
    return sl_principal_valid(s, strlen(s));
}

/* The array body[key] as a new array of borrowed strings (valid while body lives; the caller frees
 * the array). Absent or null: *out NULL, *n 0, unless required. Every element must be a string
 * passing ok (when given); at most max of them. */
static int string_list(json_t *body, const char *key, size_t max, int required,
                       int (*ok)(const char *), const char *what, const char ***out, size_t *n,
                       sl_status *st)
{
    json_t *arr = json_object_get(body, key);
    *out = NULL;
    *n = 0;
    if ((arr == NULL || json_is_null(arr)) && !required)
        return SL_OK;
    if (!json_is_array(arr) || (required && json_array_size(arr) == 0) ||
        json_array_size(arr) > max)
        return sl_status_set(st, SL_EINVAL, "%s must be %s array of at most %zu %s", key,
                             required ? "a non-empty" : "an", max, what);
    size_t len = json_array_size(arr);
    const char **v = calloc(len ? len : 1, sizeof *v);
    if (v == NULL)
        return fail(st, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++)
        if ((v[i] = json_string_value(json_array_get(arr, i))) == NULL || (ok && !ok(v[i]))) {
            free(v);
            return sl_status_set(st, SL_EINVAL, "%s must be an array of %s", key, what);
        }
    *out = v;
    *n = len;
    return SL_OK;
}

static int is_message_id(const char *s)
{
    return strlen(s) <= 64;
}

/* {"message_ids":[...]}: borrowed strings (valid while body lives); the caller frees the array. */
static int parse_ids(json_t *body, const char ***ids, size_t *n, sl_status *st)
{
    if (!json_is_array(json_object_get(body, "message_ids")))
        return fail(st, SL_EINVAL, "message_ids must be an array of message ids");
    return string_list(body, "message_ids", MAX_IDS, 0, is_message_id, "message ids", ids, n, st);
}

/* ---- rendering ------------------------------------------------------------------------------- */

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
    /* part C: a workspace's channel under the caller's own name */
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I}", "id", sl__ws_name(c->id), "name",
                     c->name, "description", c->description, "kind",
                     c->kind == SL_KIND_TOPIC ? "topic" : "queue", "visibility",
                     c->visibility == SL_VIS_PUBLIC ? "public" : "private", "options", opts,
                     "depth", (json_int_t)c->depth);
}

static void ok_status(sl__response *resp)
{
    sl__response_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

/* field is one of the fixed names of r_count (plain ASCII): the answer of every acknowledge, so
 * it is written directly rather than built as a tree and dumped. */
static int ok_count(sl__response *resp, const char *field, size_t n)
{
    char body[96];
    int k = snprintf(body, sizeof body, "{\"status\":\"ok\",\"%s\":%zu}", field, n);
    if (k < 0 || (size_t)k >= sizeof body || (resp->body = malloc((size_t)k + 1)) == NULL) {
        sl__response_json(resp, 200, json_pack("{s:s, s:I}", "status", "ok", field, (json_int_t)n));
        return SL_OK;
    }
    memcpy(resp->body, body, (size_t)k + 1);
    resp->body_len = (size_t)k;
    resp->status = 200;
    return SL_OK;
}

/* ---- handlers -------------------------------------------------------------------------------- */

typedef const sl_http_request req_t;

static int h_health(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                    sl__response *resp, sl_status *st)
{
    ok_status(resp);
    return SL_OK;
}

/* ---- channel routes: prepare a channel API request, render its outcome ------------------- */

static int p_list(sl__job *job, sl__chop *op)
{
    return SL_OK;
}

static int r_list(sl__job *job, sl__chop *op)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < op->ninfos; i++)
        json_array_append_new(arr, info_json(&op->infos[i]));
    sl__response_json(&job->resp, 200, json_pack("{s:o}", "channels", arr));
    return SL_OK;
}

static int p_simple(sl__job *job, sl__chop *op)
{
    return SL_OK;
}

static int r_info(sl__job *job, sl__chop *op)
{
    sl__response_json(&job->resp, 200, info_json(&op->info));
    return SL_OK;
}

static int p_read(sl__job *job, sl__chop *op)
{
    req_t *req = job->req;
    sl_status *st = &job->st;
    sl_read *rd = &op->read;
    rd->limit = 10;
    char buf[SL_CHANNEL_ID_MAX + 1];
    int q = sl__http_query_get(req, "limit", buf, sizeof buf);
    if (q < 0)
        return fail(st, SL_EINVAL, "limit must be an integer between 1 and 1000");
    if (q > 0) {
        char *end;
        long v = strtol(buf, &end, 10);
        if (*buf == '\0' || *end || v < 1 || v > MAX_LIMIT)
            return fail(st, SL_EINVAL, "limit must be an integer between 1 and 1000");
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
            return fail(st, SL_EINVAL, "max_bytes must be a positive integer");
        rd->max_bytes = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
    }
    q = sl__http_query_get(req, "exclusive", buf, sizeof buf);
    if (q < 0 || (q > 0 && parse_bool(buf, &rd->exclusive) < 0))
        return fail(st, SL_EINVAL, "exclusive must be true or false");
    q = sl__http_query_get(req, "after", job->after, sizeof job->after);
    if (q < 0)
        return fail(st, SL_EINVAL, "after must be a message id");
    if (q > 0)
        rd->after = job->after;
    return SL_OK;
}

static int r_read(sl__job *job, sl__chop *op)
{
    /* The stored text goes out as it was written: no parse, no jansson tree per message. */
    if (sl__messages_json(&op->list, op->read.exclusive, &job->resp.body, &job->resp.body_len))
        return fail(&job->st, SL_ENOMEM, "out of memory");
    job->resp.status = 200;
    return SL_OK;
}

static int p_write(sl__job *job, sl__chop *op)
{
    if (job->req->body_len == 0)
        return fail(&job->st, SL_EJSON, "a JSON body is required");
    job->w = (sl_write){.data = job->req->body, .data_len = job->req->body_len};
    op->writes = &job->w;
    op->nwrites = 1;
    op->item_ids = job->item;
    return SL_OK;
}

static int r_write(sl__job *job, sl__chop *op)
{
    /* The hot path: no JSON library needed to render a fixed shape around a hex id. */
    char body[80];
    int n =
        snprintf(body, sizeof body, "{\"status\":\"accepted\",\"item_id\":\"%s\"}", job->item[0]);
    job->resp.status = 200;
    job->resp.body = malloc((size_t)n + 1);
    if (job->resp.body == NULL)
        return fail(&job->st, SL_ENOMEM, "out of memory");
    memcpy(job->resp.body, body, (size_t)n + 1);
    job->resp.body_len = (size_t)n;
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
    if (count > MAX_IDS)
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
static int p_ids(sl__job *job, sl__chop *op)
{
    size_t n = 0;
    if (job->route->op == SL_OP_CHANNEL_ACK &&
        ids_fast(job->req->body, job->req->body_len, &job->ids, &n)) {
        op->ids = job->ids;
        op->nids = n;
        return SL_OK;
    }
    int rc = parse_body(job->req, &job->body, &job->st);
    if (rc == SL_OK)
        rc = parse_ids(job->body, &job->ids, &n, &job->st);
    op->ids = job->ids;
    op->nids = n;
    return rc;
}

static int p_nack(sl__job *job, sl__chop *op)
{
    int rc = p_ids(job, op);
    if (rc != SL_OK)
        return rc;
    json_t *d = json_object_get(job->body, "delay");
    if (d && !json_is_number(d) && !json_is_null(d))
        return fail(&job->st, SL_EINVAL, "delay must be a number of seconds");
    op->delay = json_is_number(d) ? json_number_value(d) : 0;
    return SL_OK;
}

static int get_seconds(json_t *o, const char *key, double *out, sl_status *st);

/* {"message_ids":[...], "seconds":N}: seconds absent or 0 is the queue's claim_timeout. */
static int p_extend(sl__job *job, sl__chop *op)
{
    int rc = p_ids(job, op);
    if (rc != SL_OK)
        return rc;
    if (get_seconds(job->body, "seconds", &op->delay, &job->st) < 0)
        return job->st.code;
    return SL_OK;
}

/* {"message_ids":[...], "reason":"..."} */
static int p_terminate(sl__job *job, sl__chop *op)
{
    int rc = p_ids(job, op);
    if (rc != SL_OK)
        return rc;
    json_t *r = json_object_get(job->body, "reason");
    if (r && !json_is_null(r)) {
        if (!json_is_string(r) || json_string_length(r) != strlen(json_string_value(r)))
            return fail(&job->st, SL_EINVAL, "reason must be a string");
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

static int envelope_string(json_t *o, const char *key, const char **out, sl_status *st)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return SL_OK;
    if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)) ||
        json_string_length(v) == 0 || json_string_length(v) > MAX_FIELD)
        return sl_status_set(st, SL_EINVAL, "%s must be a string of 1..%d bytes", key, MAX_FIELD);
    *out = json_string_value(v);
    return SL_OK;
}

/* One message envelope: o is the parsed object, [s, e) its text (data and metadata are taken
 * from the text, as sent). Metadata is copied, NUL-terminated, to *meta. */
static int parse_envelope(json_t *o, const char *s, const char *e, sl_write *w, char **meta,
                          sl_status *st)
{
    if (!json_is_object(o))
        return fail(st, SL_EINVAL, "a message must be a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        int known = 0;
        for (const char *const *f = envelope_fields; *f; f++)
            known |= strcmp(*f, key) == 0;
        if (!known)
            return sl_status_set(st, SL_EINVAL, "unknown field '%.64s'", key);
    }
    const char *vs, *ve;
    if (json_object_get(o, "data") == NULL || !sl__json_member(s, e, "data", &vs, &ve))
        return fail(st, SL_EINVAL, "data is required");
    *w = (sl_write){.data = vs, .data_len = (size_t)(ve - vs)};
    json_t *m = json_object_get(o, "metadata");
    if (m && !json_is_null(m)) {
        if (!json_is_object(m) || !sl__json_member(s, e, "metadata", &vs, &ve))
            return fail(st, SL_EINVAL, "metadata must be a JSON object");
        memcpy(*meta, vs, (size_t)(ve - vs));
        (*meta)[ve - vs] = '\0';
        w->metadata = *meta;
        *meta += ve - vs + 1;
    }
    if (envelope_string(o, "correlation_id", &w->correlation_id, st) ||
        envelope_string(o, "reply_to", &w->reply_to, st) ||
        envelope_string(o, "recipient_id", &w->recipient_id, st))
        return st->code;
    json_t *k = json_object_get(o, "idempotency_key");
    if (k && !json_is_null(k)) {
        if (!json_is_string(k) || json_string_length(k) != strlen(json_string_value(k)))
            return fail(st, SL_EINVAL, "idempotency_key must be a string");
        w->idempotency_key = json_string_value(k);
    }
    if (get_seconds(o, "delay", &w->delay, st) < 0 ||
        get_seconds(o, "not_before", &w->not_before, st) < 0 ||
        get_seconds(o, "ttl", &w->ttl, st) < 0)
        return st->code;
    return SL_OK;
}

/* The body without jansson's duplicate check (message data may repeat keys, as over PUT); big
 * integers are read as reals only to validate, the data goes on as sent. */
static int parse_envelope_body(sl__job *job, size_t nmeta)
{
    req_t *req = job->req;
    json_error_t e;
    if (req->body_len == 0)
        return fail(&job->st, SL_EJSON, "a JSON body is required");
    job->body = json_loadb(req->body, req->body_len, JSON_DECODE_INT_AS_REAL, &e);
    if (job->body == NULL || !json_is_object(job->body))
        return fail(&job->st, SL_EJSON, "the body must be a JSON object");
    if ((job->meta = malloc(req->body_len + nmeta + 1)) == NULL)
        return fail(&job->st, SL_ENOMEM, "out of memory");
    return SL_OK;
}

static int p_envelope(sl__job *job, sl__chop *op)
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

static int r_envelope(sl__job *job, sl__chop *op)
{
    sl__response_json(&job->resp, 200,
             json_pack("{s:s, s:s, s:b}", "status", "accepted", "item_id", job->item[0],
                       "duplicate", op->duplicates > 0));
    return SL_OK;
}

/* {"messages":[envelope, ...]}: 1..MAX_BATCH messages, stored together or not at all. */
static int p_batch(sl__job *job, sl__chop *op)
{
    sl_status *st = &job->st;
    json_t *arr = NULL;
    const char *b = job->req->body, *be = b + job->req->body_len, *as, *ae;
    int rc = job->req->body_len ? SL_OK : fail(st, SL_EJSON, "a JSON body is required");
    if (rc == SL_OK) {
        json_error_t e;
        job->body = json_loadb(b, job->req->body_len, JSON_DECODE_INT_AS_REAL, &e);
        arr = json_object_get(job->body, "messages");
        if (job->body == NULL || !json_is_object(job->body))
            return fail(st, SL_EJSON, "the body must be a JSON object");
    }
    if (rc != SL_OK)
        return rc;
    if (json_object_size(job->body) != 1 || !json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > MAX_BATCH)
        return sl_status_set(
            st, SL_EINVAL, "the body must be {\"messages\":[...]} with 1..%d messages", MAX_BATCH);
    size_t n = json_array_size(arr);
    job->ws = calloc(n, sizeof *job->ws);
    job->items = calloc(n, sizeof *job->items);
    job->meta = malloc(job->req->body_len + n + 1);
    if (job->ws == NULL || job->items == NULL || job->meta == NULL)
        return fail(st, SL_ENOMEM, "out of memory");
    if (!sl__json_member(b, be, "messages", &as, &ae))
        return fail(st, SL_EJSON, "the body must be a JSON object");
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

static int r_batch(sl__job *job, sl__chop *op)
{
    json_t *ids = json_array();
    for (size_t i = 0; ids && i < op->nwrites; i++)
        json_array_append_new(ids, json_string(job->items[i]));
    sl__response_json(&job->resp, 200,
             json_pack("{s:s, s:o, s:I}", "status", "accepted", "item_ids", ids, "duplicates",
                       (json_int_t)op->duplicates));
    return SL_OK;
}

static int r_count(sl__job *job, sl__chop *op)
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

static int get_count(json_t *o, const char *key, size_t *out, sl_status *st)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return sl_status_set(st, SL_EINVAL, "%s must be a non-negative integer", key);
    *out = (size_t)json_integer_value(v);
    return 1;
}

static int get_seconds(json_t *o, const char *key, double *out, sl_status *st)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 || !isfinite(json_number_value(v)))
        return sl_status_set(st, SL_EINVAL, "%s must be a non-negative number", key);
    *out = json_number_value(v);
    return 1;
}

static int p_evict(sl__job *job, sl__chop *op)
{
    sl_status *st = &job->st;
    int rc = parse_body(job->req, &job->body, st);
    if (rc != SL_OK)
        return rc;
    op->before = 0;
    op->max_count = SIZE_MAX;
    int b = get_seconds(job->body, "before", &op->before, st);
    int m = b < 0 ? b : get_count(job->body, "max_count", &op->max_count, st);
    if (b < 0 || m < 0)
        return st->code;
    if (b == 0 && m == 0)
        return fail(st, SL_EINVAL, "give before and/or max_count");
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

static int get_string(json_t *o, const char *key, const char **out, sl_status *st)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return sl_status_set(st, SL_EINVAL, "%s must be a string", key);
    *out = json_string_value(v);
    return 1;
}

/* Fills opts from a POST /channels body; strings borrowed from body. */
static int parse_create(json_t *body, sl_channel_opts *o, sl_status *st)
{
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        int known = 0;
        for (const char *const *f = create_fields; *f; f++)
            known |= strcmp(*f, key) == 0;
        if (!known)
            return sl_status_set(st, SL_EINVAL, "unknown field '%.64s'", key);
    }
    const char *s = NULL;
    size_t u;
    if (get_string(body, "kind", &s, st) < 0)
        return st->code;
    if (s && strcmp(s, "queue") && strcmp(s, "topic"))
        return fail(st, SL_EINVAL, "kind must be queue or topic");
    o->kind = s && !strcmp(s, "topic") ? SL_KIND_TOPIC : SL_KIND_QUEUE;
    s = NULL;
    if (get_string(body, "visibility", &s, st) < 0)
        return st->code;
    if (s && strcmp(s, "public") && strcmp(s, "private"))
        return fail(st, SL_EINVAL, "visibility must be public or private");
    /* Created over the network: public unless said otherwise, or nobody could reach it. */
    o->visibility = s && !strcmp(s, "private") ? SL_VIS_PRIVATE : SL_VIS_PUBLIC;
    s = NULL;
    if (get_string(body, "security", &s, st) < 0)
        return st->code;
    if (s && (int)(o->mode = sl_mode_parse(s)) < 0)
        return fail(st, SL_EINVAL, "security must be inherit, open, acl or token");
    if (get_string(body, "name", &o->name, st) < 0 ||
        get_string(body, "description", &o->description, st) < 0 ||
        get_string(body, "dead_letter", &o->dead_letter, st) < 0 ||
        get_seconds(body, "claim_timeout", &o->claim_timeout, st) < 0 ||
        get_seconds(body, "retention_max_age", &o->retention_max_age, st) < 0 ||
        get_count(body, "max_messages", &o->max_messages, st) < 0 ||
        get_count(body, "retention_max_count", &o->retention_max_count, st) < 0)
        return st->code;
    u = 0;
    int k = get_count(body, "max_attempts", &u, st);
    if (k < 0)
        return st->code;
    if (u > 1000000)
        return fail(st, SL_EINVAL, "max_attempts must be at most 1000000");
    o->max_attempts = (unsigned)u;
    const char *flags[] = {"presence", "join_leave"};
    int *dst[] = {&o->presence, &o->join_leave};
    for (size_t i = 0; i < 2; i++) {
        json_t *b = json_object_get(body, flags[i]);
        if (b && !json_is_boolean(b))
            return fail(st, SL_EINVAL,
                        flags[i][0] == 'p' ? "presence must be a boolean"
                                           : "join_leave must be a boolean");
        *dst[i] = json_is_true(b);
    }
    if (get_seconds(body, "dedup_window", &o->dedup_window, st) < 0 ||
        get_seconds(body, "cursor_idle_timeout", &o->cursor_idle_timeout, st) < 0)
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
                return fail(st, SL_EINVAL, "backoff steps must be non-negative numbers");
            o->backoff[i] = json_number_value(v);
        }
        o->nbackoff = json_array_size(bo);
    }
    return SL_OK;
}

static int p_create(sl__job *job, sl__chop *op)
{
    sl_status *st = &job->st;
    int rc = parse_body(job->req, &job->body, st);
    if (rc != SL_OK)
        return rc;
    const char *id = NULL;
    sl_channel_opts_init(&job->opts);
    if (get_string(job->body, "id", &id, st) < 0 || id == NULL)
        return fail(st, SL_EBADID, "id must be a channel id");
    op->channel = id;
    op->opts = &job->opts;
    return parse_create(job->body, &job->opts, st);
}

static int r_create(sl__job *job, sl__chop *op)
{
    const sl_channel_info *info = sl__map_get(job->r->ctx->channels, op->qid);
    if (info == NULL) /* deleted again before the answer */
        return fail(&job->st, SL_ENOENT, "channel not found");
    json_t *o = info_json(info);
    json_object_set_new(o, "depth", json_integer(0));
    sl__response_json(&job->resp, 201, o);
    return SL_OK;
}

static int r_ok(sl__job *job, sl__chop *op)
{
    ok_status(&job->resp);
    return SL_OK;
}

static int h_acl_put(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                     sl__response *resp, sl_status *st)
{
    json_t *body;
    int rc = parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char *role = NULL;
    const char **pats = NULL, **deny = NULL;
    size_t n = 0, ndeny = 0;
    if (get_string(body, "role", &role, st) < 0 || sl_role_parse(role) == SL_ROLE_NONE)
        rc = fail(st, SL_EINVAL, "role must be read, write or admin");
    if (rc == SL_OK)
        rc =
            string_list(body, "channels", 100000, 0, is_pattern, "channel patterns", &pats, &n, st);
    /* (B) deny patterns: win over every allow (docs/POLICY.md "Deny rules") */
    if (rc == SL_OK)
        rc = string_list(body, "deny", 100000, 0, is_pattern, "deny patterns", &deny, &ndeny, st);
    if (rc == SL_OK)
        rc = sl_acl_grant_deny(r->ctx, who, principal, sl_role_parse(role), pats, n, deny, ndeny,
                               st);
    if (rc == SL_OK) {
        json_t *chans = json_object_get(body, "channels");
        json_t *dn = json_object_get(body, "deny");
        sl__response_json(resp, 200,
                 json_pack("{s:s, s:s, s:O, s:o}", "principal", principal, "role", role, "channels",
                           json_is_array(chans) ? chans : json_null(), "deny",
                           json_is_array(dn) ? json_incref(dn) : json_array()));
    }
    free(pats);
    free(deny);
    json_decref(body);
    return rc;
}

static int h_acl_del(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                     sl__response *resp, sl_status *st)
{
    int rc = sl_acl_revoke(r->ctx, who, principal, st);
    if (rc == SL_OK)
        ok_status(resp);
    return rc;
}

static int h_acl_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                      sl__response *resp, sl_status *st)
{
    sl_acl_entry *e;
    size_t n;
    int rc = sl_acl_list(r->ctx, who, &e, &n, st);
    if (rc != SL_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *ch = json_array();
        for (size_t k = 0; k < e[i].nchannels; k++)
            json_array_append_new(ch, json_string(e[i].channels[k]));
        json_t *dn = json_array(); /* (B) */
        for (size_t k = 0; k < e[i].ndeny; k++)
            json_array_append_new(dn, json_string(e[i].deny[k]));
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:o, s:o}", "principal", e[i].principal, "role",
                                        sl_role_name(e[i].role), "channels", ch, "deny", dn));
    }
    sl_acl_entries_free(e, n);
    sl__response_json(resp, 200, json_pack("{s:o}", "entries", arr));
    return SL_OK;
}

/* ---- token revocation ------------------------------------------------------------------------ */

typedef struct revoke_req {
    const char *token_id, *user_id, *reason; /* borrowed from body */
} revoke_req;

/* {"token_id":...} or {"user_id":...}, optional "reason"; strings borrowed from body. */
static int parse_revoke(json_t *body, revoke_req *rq, sl_status *st)
{
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        if (strcmp(key, "token_id") && strcmp(key, "user_id") && strcmp(key, "reason"))
            return sl_status_set(st, SL_EINVAL, "unknown field '%.64s'", key);
    }
    memset(rq, 0, sizeof *rq);
    if (get_string(body, "token_id", &rq->token_id, st) < 0 ||
        get_string(body, "user_id", &rq->user_id, st) < 0 ||
        get_string(body, "reason", &rq->reason, st) < 0)
        return st->code;
    if (!rq->token_id == !rq->user_id)
        return fail(st, SL_EINVAL, "give exactly one of token_id and user_id");
    if (rq->token_id && !sl_revocation_id_valid(rq->token_id))
        return fail(st, SL_EINVAL, "invalid token_id");
    if (rq->user_id && !sl_principal_valid(rq->user_id, strlen(rq->user_id)))
        return fail(st, SL_EINVAL, "invalid user_id");
    if (rq->reason && strlen(rq->reason) > SL_REVOCATION_REASON_MAX)
        return fail(st, SL_EINVAL, "reason longer than 255 bytes");
    return SL_OK;
}

/* The resource of a revocation: whose tokens. The caller's own principal, the token it presents,
 * and any token id minted for it (sluice's ids are bound to their subject: sl_jwt_token_id_of) are
 * its own; any other token id has an unknown owner ("*"), which takes an admin. */
static int resolve_revoke(sl__router *r, const sl_http_request *req, const sl_identity *who,
                          char *res, size_t cap, sl_status *st)
{
    json_t *body;
    revoke_req rq;
    int rc = parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    rc = parse_revoke(body, &rq, st);
    if (rc == SL_OK) {
        const char *owner = rq.user_id;
        if (owner == NULL)
            owner = strcmp(rq.token_id, who->token_id) == 0 ||
                            sl_jwt_token_id_of(r->authn.keys, rq.token_id, who->principal)
                        ? who->principal
                        : "*";
        snprintf(res, cap, "%s", owner);
    }
    json_decref(body);
    return rc;
}

static void on_revoked(void *ud, int status, const char *reason)
{
    sl__job *job = ud;
    if (status == SL_OK)
        sl__response_json(&job->resp, 200, json_pack("{s:b}", "ok", 1));
    else if (status == SL_EUNAVAIL)
        sl_status_set(&job->st, status, "revocation store unavailable");
    else
        sl_status_set(&job->st, status, "%s", sl_strerror(status));
    sl__job_finish(job, status);
}

static void start_revoke(sl__job *job)
{
    sl__router *r = job->r;
    json_t *body;
    revoke_req rq;
    int rc = parse_body(job->req, &body, &job->st);
    if (rc == SL_OK && (rc = parse_revoke(body, &rq, &job->st)) == SL_OK &&
        r->authn.revocation == NULL)
        rc = fail(&job->st, SL_ENOENT, "token revocation is not enabled on this server");
    /* Written ahead: a revocation nobody could audit is not made. */
    if (rc == SL_OK)
        rc = sl__audit(r->ctx, &job->st, "token.revoke", "actor", job->who.principal, "token_id",
                       rq.token_id, "user", rq.user_id, "reason", rq.reason, "remote_addr",
                       job->req->remote_addr, NULL);
    if (rc != SL_OK) {
        json_decref(body);
        sl__job_finish(job, rc);
        return;
    }
    if (rq.user_id) {
        sl_revocation_revoke_user(r->authn.revocation, rq.user_id, on_revoked, job);
    } else {
        int own = strcmp(rq.token_id, job->who.token_id) == 0;
        sl_revocation_revoke(r->authn.revocation, rq.token_id, own ? job->who.principal : NULL,
                             rq.reason, own ? job->who.expires_at : 0, on_revoked, job);
    }
    json_decref(body); /* the store copied what it keeps */
}

/* ---- the token broker ------------------------------------------------------------------------ */

#define MAX_TOKEN_CHANNELS 1000

/* "channels" of a token request: a non-empty array of strings (ids are checked by the broker, which
 * denies invalid ones with a reason). */
static int parse_channels(json_t *body, const char ***out, size_t *n, sl_status *st)
{
    return string_list(body, "channels", MAX_TOKEN_CHANNELS, 1, NULL, "channel ids", out, n, st);
}

static int only_fields(json_t *body, const char *const *allowed, sl_status *st)
{
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        int known = 0;
        for (const char *const *f = allowed; *f; f++)
            known |= strcmp(*f, key) == 0;
        if (!known)
            return sl_status_set(st, SL_EINVAL, "unknown field '%.64s'", key);
    }
    return SL_OK;
}

static json_t *string_array(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *denials_json(const sl_broker_decision *d)
{
    json_t *a = json_array();
    for (size_t i = 0; i < d->ndenied; i++)
        json_array_append_new(a, json_pack("{s:s, s:s}", "channel", d->denied[i].channel, "reason",
                                           d->denied[i].reason));
    return a;
}

static void rfc3339(double t, char out[32])
{
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* (B) The ACL's deny rules for sub win over the broker's roles: a channel they deny is never
 * minted, and is listed among the denied channels. */
static int acl_denies(sl_ctx *ctx, const char *sub, sl_broker_decision *d)
{
    size_t kept = 0;
    for (size_t i = 0; i < d->ngranted; i++) {
        if (!sl__acl_denied(ctx->acl, sub, d->granted[i])) {
            d->granted[kept++] = d->granted[i];
            continue;
        }
        sl_broker_denial *v = realloc(d->denied, (d->ndenied + 1) * sizeof *v);
        if (v == NULL) {
            d->ngranted = kept;
            for (size_t k = i; k < d->ngranted; k++)
                free(d->granted[k]);
            return SL_ENOMEM;
        }
        d->denied = v;
        d->denied[d->ndenied].channel = d->granted[i];
        d->denied[d->ndenied++].reason = "denied by an ACL deny rule";
    }
    d->ngranted = kept;
    if (kept == 0)
        d->role = SL_ROLE_NONE;
    return SL_OK;
}

/* Under the policy mode the regime has its say on each channel the broker would grant (asked
 * before the handler ran: prepare_token_channels): a refused channel moves to the denied ones; a
 * regime that could not answer fails the whole request (503), as a decision does everywhere. */
static int policy_denies(sl_ctx *ctx, const sl_identity *who, sl_broker_decision *d)
{
    const sl_op_info *info = sl_op_lookup(SL_OP_TOKEN_ISSUE);
    size_t kept = 0;
    for (size_t i = 0; i < d->ngranted; i++) {
        int rc = sl__authz_decide(ctx, who, info, d->granted[i], NULL, NULL);
        if (rc == SL_OK) {
            d->granted[kept++] = d->granted[i];
            continue;
        }
        if (rc != SL_EFORBIDDEN) { /* SL_EUNAVAIL, or not asked: fail closed */
            for (size_t k = i; k < d->ngranted; k++)
                d->granted[kept++] = d->granted[k];
            d->ngranted = kept;
            return SL_EUNAVAIL;
        }
        sl_broker_denial *v = realloc(d->denied, (d->ndenied + 1) * sizeof *v);
        if (v == NULL) {
            for (size_t k = i; k < d->ngranted; k++)
                d->granted[kept++] = d->granted[k];
            d->ngranted = kept;
            return SL_ENOMEM;
        }
        d->denied = v;
        d->denied[d->ndenied].channel = d->granted[i];
        d->denied[d->ndenied++].reason = "denied by the authorisation policy";
    }
    d->ngranted = kept;
    if (kept == 0)
        d->role = SL_ROLE_NONE;
    return SL_OK;
}

/* Issues a token for sub (act: the delegating service, or NULL) and renders the answer. Every
 * issuance and every refused one is audited; an issuance that cannot be audited is not made. */
static int issue(sl__router *r, const sl_identity *who, const sl_http_request *req, const char *sub,
                 const char *act, const char *const *channels, size_t n, double ttl,
                 sl__response *resp, sl_status *st)
{
    if (r->broker == NULL)
        return fail(st, SL_ENOENT, "the token broker is not enabled on this server");
    sl_broker_decision d;
    int rc = sl_broker_decide(r->broker, who, sub, channels, n, &d);
    char qsub[SL__QPRINCIPAL_SIZE]; /* the subject's ACL entry is its workspace's (part C) */
    if (rc == SL_OK && sl__ws_qualify(who->workspace, sub, qsub, sizeof qsub) != SL_OK)
        rc = SL_EINVAL;
    if (rc == SL_OK) /* (B) */
        rc = acl_denies(r->ctx, qsub, &d);
    if (rc == SL_OK)
        rc = policy_denies(r->ctx, who, &d);
    if (rc != SL_OK) {
        sl_broker_decision_clear(&d);
        return sl_status_set(st, rc,
                             rc == SL_EUNAVAIL ? "the authorisation policy did not answer" : NULL);
    }
    json_t *rec = json_pack("{s:s, s:s, s:s?, s:o, s:o, s:s}", "event",
                            d.ngranted ? "token.issue" : "token.denied", "issued_to", sub,
                            "delegator", act, "channels", string_array(d.granted, d.ngranted),
                            "denied", denials_json(&d), "remote_addr", req->remote_addr);
    if (d.ngranted == 0) {
        sl__audit_json(r->ctx, NULL, rec);
        json_t *body = json_pack("{s:s, s:s, s:[], s:o}", "error", "forbidden", "message",
                                 "no requested channel may be granted", "channels_granted",
                                 "channels_denied", denials_json(&d));
        sl__response_json(resp, 403, body);
        sl_broker_decision_clear(&d);
        return SL_OK;
    }
    sl_broker_token t;
    rc = sl_broker_mint(r->broker, r->authn.keys, sub, act, &d, ttl, sl_ctx_now(r->ctx), &t);
    if (rc != SL_OK) {
        json_decref(rec);
        sl_broker_decision_clear(&d);
        return sl_status_set(st, rc, "cannot mint a token: %s", sl_strerror(rc));
    }
    char exp[32], iat[32];
    rfc3339(t.expires_at, exp);
    rfc3339(t.issued_at, iat);
    json_object_set_new(rec, "token_id", json_string(t.token_id));
    json_object_set_new(rec, "expires_at", json_string(exp));
    json_object_set_new(rec, "issued_at", json_string(iat));
    json_object_set_new(rec, "requested_by", json_string(who->principal));
    if (who->workspace[0]) /* part C */
        json_object_set_new(rec, "workspace", json_string(who->workspace));
    rc = sl__audit_json(r->ctx, st, rec);
    if (rc == SL_OK)
        sl__response_json(resp, 200,
                 json_pack("{s:s, s:s, s:s, s:o, s:o}", "token", t.token, "token_id", t.token_id,
                           "expires_at", exp, "channels_granted",
                           string_array(d.granted, d.ngranted), "channels_denied",
                           denials_json(&d)));
    size_t toklen = strlen(t.token);
    memset(t.token, 0, toklen);
    free(t.token);
    sl_broker_decision_clear(&d);
    return rc;
}

static int get_ttl(json_t *body, const char *key, double *ttl, sl_status *st)
{
    json_t *v = json_object_get(body, key);
    *ttl = 0;
    if (v == NULL || json_is_null(v))
        return SL_OK;
    if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
        return sl_status_set(st, SL_EINVAL, "%s must be a positive number of seconds", key);
    *ttl = json_number_value(v);
    return SL_OK;
}

static int h_token(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                   sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"channels", "ttl", NULL};
    json_t *body;
    int rc = parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char **chans = NULL;
    size_t n = 0;
    double ttl;
    if ((rc = only_fields(body, fields, st)) == SL_OK &&
        (rc = parse_channels(body, &chans, &n, st)) == SL_OK &&
        (rc = get_ttl(body, "ttl", &ttl, st)) == SL_OK)
        rc = issue(r, who, req, who->principal, NULL, chans, n, ttl, resp, st);
    free(chans);
    json_decref(body);
    return rc;
}

/* The resource of a delegation is the principal the token is for. */
static int resolve_delegate(sl__router *r, const sl_http_request *req, const sl_identity *who,
                            char *res, size_t cap, sl_status *st)
{
    json_t *body;
    int rc = parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char *p = NULL;
    if (get_string(body, "on_behalf_of", &p, st) < 0 || p == NULL ||
        !sl_principal_valid(p, strlen(p)))
        rc = fail(st, SL_EINVAL, "on_behalf_of must be a principal id");
    else
        snprintf(res, cap, "%s", p);
    json_decref(body);
    return rc;
}

static int h_delegate(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                      sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"on_behalf_of", "channels", "lifetime_seconds", NULL};
    json_t *body;
    int rc = parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char **chans = NULL;
    size_t n = 0;
    double ttl;
    if ((rc = only_fields(body, fields, st)) == SL_OK &&
        (rc = parse_channels(body, &chans, &n, st)) == SL_OK &&
        (rc = get_ttl(body, "lifetime_seconds", &ttl, st)) == SL_OK)
        rc = issue(r, who, req, principal, who->principal, chans, n, ttl, resp, st);
    free(chans);
    json_decref(body);
    return rc;
}

/* ---- API keys and broker roles (administration) -----------------------------------------------
 */

static json_t *apikey_json(const sl_apikey_record *k, double now)
{
    /* Part C: a workspace's key shows its principal under the caller's own name. */
    json_t *o = json_pack("{s:s, s:s, s:f, s:f, s:b}", "id", k->id, "principal",
                          sl__ws_name(k->principal), "created_at", k->created_at, "expires_at",
                          k->expires_at, "expired", k->expires_at > 0 && k->expires_at <= now);
    if (o && k->role != SL_ROLE_NONE)
        json_object_set_new(o, "role", json_string(sl_role_name(k->role)));
    if (o && k->scoped)
        json_object_set_new(o, "channels", string_array(k->channels, k->nchannels));
    return o;
}

static int need_apikeys(sl__router *r, sl_status *st)
{
    return r->apikeys ? SL_OK : fail(st, SL_ENOENT, "API keys are not enabled on this server");
}

typedef struct apikey_audit {
    sl__router *r;
    const char *actor, *principal;
    const char *workspace; /* part C: NULL for the default workspace */
} apikey_audit;

/* A key nobody could audit is never made: its record is written before the key. */
static int audit_apikey_create(void *ud, const char *id, sl_status *st)
{
    apikey_audit *a = ud;
    return sl__audit(a->r->ctx, st, "apikey.create", "actor", a->actor, "id", id, "principal",
                     a->principal, "workspace", a->workspace, NULL);
}

static int h_apikey_create(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                           sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"principal",  "role",      "channels",
                                         "expires_in", "workspace", NULL};
    int rc = need_apikeys(r, st);
    json_t *body = NULL;
    if (rc == SL_OK)
        rc = parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char *principal = NULL, *role = NULL;
    const char **pats = NULL;
    size_t n = 0;
    double expires_in = 0;
    if ((rc = only_fields(body, fields, st)) == SL_OK &&
        (get_string(body, "principal", &principal, st) < 0 || principal == NULL ||
         !sl_principal_valid(principal, strlen(principal))))
        rc = fail(st, SL_EINVAL, "principal must be a principal id");
    if (rc == SL_OK &&
        (get_string(body, "role", &role, st) < 0 || (role && sl_role_parse(role) == SL_ROLE_NONE)))
        rc = fail(st, SL_EINVAL, "role must be read, write or admin");
    if (rc == SL_OK)
        rc = string_list(body, "channels", MAX_TOKEN_CHANNELS, 0, is_pattern, "channel patterns",
                         &pats, &n, st);
    if (rc == SL_OK)
        rc = get_ttl(body, "expires_in", &expires_in, st);
    /* Part C: a key belongs to the caller's workspace ("workspace" may only repeat it; an
     * operator addresses another one with Sluice-Workspace). */
    const char *ws = NULL;
    char qp[SL__QPRINCIPAL_SIZE];
    if (rc == SL_OK &&
        (get_string(body, "workspace", &ws, st) < 0 || (ws && strcmp(ws, who->workspace) != 0)))
        rc = fail(st, SL_EFORBIDDEN, "a key can only be made in the caller's own workspace");
    if (rc == SL_OK &&
        (sl__ws_qualify(who->workspace, principal, qp, SL_PRINCIPAL_MAX + 1) != SL_OK))
        rc = fail(st, SL_EINVAL, "principal too long for this workspace");
    double now = sl_ctx_now(r->ctx);
    char *key = NULL, id[SL_APIKEY_ID_LEN + 1];
    apikey_audit audit = {r, who->principal, principal, who->workspace[0] ? who->workspace : NULL};
    if (rc == SL_OK)
        rc = sl_apikey_create_ahead(r->apikeys, qp, sl_role_parse(role), pats, pats ? n : 0,
                                    expires_in > 0 ? now + expires_in : 0, now, audit_apikey_create,
                                    &audit, &key, id, st);
    if (rc == SL_OK)
        sl__response_json(resp, 201,
                 json_pack("{s:s, s:s, s:s}", "key", key, "id", id, "principal", principal));
    sl_apikey_key_free(key);
    free(pats);
    json_decref(body);
    return rc;
}

static int h_apikey_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                         sl__response *resp, sl_status *st)
{
    int rc = need_apikeys(r, st);
    if (rc != SL_OK)
        return rc;
    sl_apikey_reload(r->apikeys, st);
    sl_apikey_record *recs;
    size_t n;
    if ((rc = sl_apikey_list(r->apikeys, &recs, &n)) != SL_OK)
        return sl_status_set(st, rc, NULL);
    json_t *arr = json_array();
    double now = sl_ctx_now(r->ctx);
    for (size_t i = 0; i < n; i++)
        if (sl__ws_owns(who->workspace, recs[i].principal)) /* part C: its own workspace's */
            json_array_append_new(arr, apikey_json(&recs[i], now));
    sl_apikey_records_free(recs, n);
    sl__response_json(resp, 200, json_pack("{s:o}", "keys", arr));
    return SL_OK;
}

static int apikey_change(sl__router *r, const sl_identity *who, const char *id, int expire,
                         sl__response *resp, sl_status *st)
{
    int rc = need_apikeys(r, st);
    if (rc != SL_OK)
        return rc;
    sl_apikey_record rec;
    if (!sl_apikey_id_valid(id) || sl_apikey_get(r->apikeys, id, &rec) != SL_OK)
        return fail(st, SL_ENOENT, "no such API key");
    int theirs = !sl__ws_owns(who->workspace, rec.principal); /* part C: another workspace's */
    sl_apikey_record_clear(&rec);
    if (theirs)
        return fail(st, SL_ENOENT, "no such API key");
    rc = sl__audit(r->ctx, st, expire ? "apikey.expire" : "apikey.delete", "actor", who->principal,
                   "id", id, NULL);
    if (rc == SL_OK)
        rc = expire ? sl_apikey_expire(r->apikeys, id, sl_ctx_now(r->ctx), st)
                    : sl_apikey_delete(r->apikeys, id, st);
    if (rc == SL_OK)
        ok_status(resp);
    return rc;
}

static int h_apikey_expire(sl__router *r, const sl_identity *who, req_t *req, const char *id,
                           sl__response *resp, sl_status *st)
{
    return apikey_change(r, who, id, 1, resp, st);
}

static int h_apikey_delete(sl__router *r, const sl_identity *who, req_t *req, const char *id,
                           sl__response *resp, sl_status *st)
{
    return apikey_change(r, who, id, 0, resp, st);
}

static int need_broker(sl__router *r, sl_status *st)
{
    return r->broker ? SL_OK
                     : fail(st, SL_ENOENT, "the token broker is not enabled on this server");
}

/* Part C: broker roles are keyed by (workspace, principal); qp: SL__QPRINCIPAL_SIZE bytes. */
static const char *broker_key(const sl_identity *who, const char *principal, char *qp)
{
    return sl__ws_qualify(who->workspace, principal, qp, SL__QPRINCIPAL_SIZE) == SL_OK ? qp
                                                                                       : principal;
}

static int roles_response(sl__router *r, const char *key, sl__response *resp)
{
    const char *principal = sl__ws_name(key); /* the caller's own name */
    const char *const *roles;
    size_t n = sl_broker_roles_of(r->broker, key, &roles);
    sl__response_json(resp, 200,
             json_pack("{s:s, s:o}", "principal", principal, "roles",
                       string_array((char *const *)roles, n)));
    return SL_OK;
}

static int h_broker_get(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                        sl__response *resp, sl_status *st)
{
    int rc = need_broker(r, st);
    char qp[SL__QPRINCIPAL_SIZE];
    return rc == SL_OK ? roles_response(r, broker_key(who, principal, qp), resp) : rc;
}

static int h_broker_put(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                        sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"roles", NULL};
    int rc = need_broker(r, st);
    json_t *body = NULL;
    if (rc == SL_OK)
        rc = parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char **roles = NULL;
    size_t n = 0;
    if ((rc = only_fields(body, fields, st)) == SL_OK &&
        !json_is_array(json_object_get(body, "roles")))
        rc = fail(st, SL_EINVAL, "roles must be an array of role names ([] for none)");
    if (rc == SL_OK)
        rc = string_list(body, "roles", 100, 0, is_name, "role names", &roles, &n, st);
    if (rc == SL_OK) {
        char *list = json_dumps(json_object_get(body, "roles"), JSON_COMPACT);
        rc = sl__audit(r->ctx, st, "broker.assign", "actor", who->principal, "principal", principal,
                       "roles", list, "workspace", who->workspace[0] ? who->workspace : NULL, NULL);
        free(list);
    }
    char qp[SL__QPRINCIPAL_SIZE];
    const char *key = broker_key(who, principal, qp);
    if (rc == SL_OK && (rc = sl_broker_assign(r->broker, key, roles, n)) != SL_OK)
        sl_status_set(st, rc, NULL);
    if (rc == SL_OK)
        sl__authz_invalidate(r->ctx, "broker"); /* (A) */
    if (rc == SL_OK)
        roles_response(r, key, resp);
    free(roles);
    json_decref(body);
    return rc;
}

static int h_broker_delete(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                           sl__response *resp, sl_status *st)
{
    int rc = need_broker(r, st);
    if (rc != SL_OK)
        return rc;
    const char *const *roles;
    char qp[SL__QPRINCIPAL_SIZE];
    const char *key = broker_key(who, principal, qp);
    if (sl_broker_roles_of(r->broker, key, &roles) == 0)
        return sl_status_set(st, SL_ENOENT, "'%s' has no broker roles", principal);
    rc = sl__audit(r->ctx, st, "broker.assign", "actor", who->principal, "principal", principal,
                   "roles", "[]", "workspace", who->workspace[0] ? who->workspace : NULL, NULL);
    if (rc == SL_OK)
        rc = sl_broker_assign(r->broker, key, NULL, 0);
    if (rc == SL_OK) {
        sl__authz_invalidate(r->ctx, "broker"); /* (A) */
        ok_status(resp);
    }
    return rc;
}

/* ---- (B) the invoke policy (administration) -------------------------------------------------- */

/* Cached decisions go, and real-time sessions re-check their subscriptions (the ACL-changed
 * event makes every socket re-authorise; removed 0, so nobody is disconnected for it). */
static void policy_changed(sl_ctx *ctx, const char *pattern)
{
    sl__authz_invalidate(ctx, "invoke policy");
    sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_ACL_CHANGED, .principal = pattern});
}

/* A workspace's invoke policies are its own: the pattern a caller names is kept under its
 * workspace (core/wsid.h), where it matches that workspace's principals only, and a listing
 * shows the caller's workspace's policies under its own names. NULL: too long to qualify. */
static const char *policy_key(const sl_identity *who, const char *pattern, char *buf)
{
    return sl__ws_qualify(who->workspace, pattern, buf, SL__QPRINCIPAL_SIZE) == SL_OK ? buf : NULL;
}

static int h_policy_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                         sl__response *resp, sl_status *st)
{
    json_t *all = sl__invoke_list(r->ctx->invoke), *a = json_array();
    if (all == NULL || a == NULL) {
        json_decref(all);
        json_decref(a);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p)
    {
        const char *key = json_string_value(json_object_get(p, "principal"));
        if (key == NULL || !sl__ws_owns(who->workspace, key))
            continue;
        json_object_set_new(p, "principal", json_string(sl__ws_name(key)));
        json_array_append(a, p);
    }
    json_decref(all);
    sl__response_json(resp, 200, json_pack("{s:o}", "policies", a));
    return SL_OK;
}

static int h_policy_put(sl__router *r, const sl_identity *who, req_t *req, const char *pattern,
                        sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"allow", "deny", "audit", NULL};
    json_t *body;
    int rc = parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char **allow = NULL, **deny = NULL;
    size_t nallow = 0, ndeny = 0;
    json_t *au = json_object_get(body, "audit");
    rc = only_fields(body, fields, st);
    if (rc == SL_OK && au != NULL && !json_is_boolean(au))
        rc = fail(st, SL_EINVAL, "audit must be true or false");
    if (rc == SL_OK)
        rc = string_list(body, "allow", 1000, 0, NULL, "rules", &allow, &nallow, st);
    if (rc == SL_OK)
        rc = string_list(body, "deny", 1000, 0, NULL, "rules", &deny, &ndeny, st);
    if (rc == SL_OK) {
        char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        rc = sl__audit(r->ctx, st, "policy.invoke.set", "actor", who->principal, "principal",
                       pattern, "policy", text, "workspace",
                       who->workspace[0] ? who->workspace : NULL, NULL);
        free(text);
    }
    char qbuf[SL__QPRINCIPAL_SIZE];
    const char *key = policy_key(who, pattern, qbuf);
    if (rc == SL_OK && key == NULL)
        rc = fail(st, SL_EINVAL, "invalid principal pattern");
    if (rc == SL_OK)
        rc = sl__invoke_set(r->ctx->invoke, key, allow, nallow, deny, ndeny, json_is_true(au), st);
    if (rc == SL_OK) {
        policy_changed(r->ctx, key);
        json_t *a = json_object_get(body, "allow"), *d = json_object_get(body, "deny");
        sl__response_json(resp, 200,
                 json_pack("{s:s, s:o, s:o, s:b}", "principal", pattern, "allow",
                           json_is_array(a) ? json_incref(a) : json_array(), "deny",
                           json_is_array(d) ? json_incref(d) : json_array(), "audit",
                           json_is_true(au)));
    }
    free(allow);
    free(deny);
    json_decref(body);
    return rc;
}

static int h_policy_delete(sl__router *r, const sl_identity *who, req_t *req, const char *pattern,
                           sl__response *resp, sl_status *st)
{
    char qbuf[SL__QPRINCIPAL_SIZE];
    const char *key = policy_key(who, pattern, qbuf);
    if (key == NULL)
        return fail(st, SL_EINVAL, "invalid principal pattern");
    int rc = sl__audit(r->ctx, st, "policy.invoke.delete", "actor", who->principal, "principal",
                       pattern, "workspace", who->workspace[0] ? who->workspace : NULL, NULL);
    if (rc != SL_OK)
        return rc;
    rc = sl__invoke_del(r->ctx->invoke, key);
    if (rc == SL_ENOENT)
        return sl_status_set(st, rc, "no invoke policy for '%s'", pattern);
    if (rc != SL_OK)
        return sl_status_set(st, rc, "the policy change could not be staged: %s", sl_strerror(rc));
    policy_changed(r->ctx, key);
    ok_status(resp);
    return SL_OK;
}

/* ---- (A, issue 12) the decision cache ---------------------------------------------------------
 */

/* POST /authz/invalidate: every cached decision is dropped (the HTTP policy changed). Audited
 * first: an invalidation that cannot be recorded is not made. */
static int h_authz_invalidate(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                              sl__response *resp, sl_status *st)
{
    (void)req;
    (void)res;
    int rc = sl__audit(r->ctx, st, "authz.invalidate", "actor", who->principal, NULL);
    if (rc != SL_OK)
        return rc;
    sl__authz_invalidate(r->ctx, "admin");
    sl__response_json(resp, 200, json_pack("{s:s}", "status", "invalidated"));
    return SL_OK;
}

/* ---- the route table and dispatch ------------------------------------------------------------ */

static const sl__route routes[] = {
    {"GET", "/healthz", SL_OP_HEALTH, .handler = h_health},
    {"GET", "/channels", SL_OP_CHANNEL_LIST, .prepare = p_list, .render = r_list},
    {"POST", "/channels", SL_OP_CHANNEL_CREATE, .prepare = p_create, .render = r_create},
    {"GET", "/channels/{id}", SL_OP_CHANNEL_READ, .prepare = p_read, .render = r_read},
    {"PUT", "/channels/{id}", SL_OP_CHANNEL_WRITE, .prepare = p_write, .render = r_write},
    {"POST", "/channels/{id}", SL_OP_CHANNEL_WRITE, .prepare = p_write, .render = r_write},
    {"DELETE", "/channels/{id}", SL_OP_CHANNEL_DELETE, .prepare = p_simple, .render = r_ok},
    {"GET", "/channels/{id}/info", SL_OP_CHANNEL_INFO, .prepare = p_simple, .render = r_info},
    {"POST", "/channels/{id}/acknowledge", SL_OP_CHANNEL_ACK, .prepare = p_ids, .render = r_count},
    {"POST", "/channels/{id}/nack", SL_OP_CHANNEL_NACK, .prepare = p_nack, .render = r_count},
    {"DELETE", "/channels/{id}/messages", SL_OP_CHANNEL_CLEAR, .prepare = p_simple,
     .render = r_count},
    {"POST", "/channels/{id}/evict", SL_OP_CHANNEL_EVICT, .prepare = p_evict, .render = r_count},
    {"POST", "/channels/{id}/remove", SL_OP_CHANNEL_REMOVE, .prepare = p_ids, .render = r_count},
    {"POST", "/channels/{id}/extend", SL_OP_CHANNEL_EXTEND, .prepare = p_extend, .render = r_count},
    {"POST", "/channels/{id}/terminate", SL_OP_CHANNEL_TERMINATE, .prepare = p_terminate,
     .render = r_count},
    {"POST", "/channels/{id}/messages", SL_OP_CHANNEL_WRITE, .prepare = p_envelope,
     .render = r_envelope},
    {"POST", "/channels/{id}/batch", SL_OP_CHANNEL_WRITE, .prepare = p_batch, .render = r_batch},
    {"GET", "/acl", SL_OP_ACL_LIST, .handler = h_acl_list},
    {"PUT", "/acl/{principal}", SL_OP_ACL_GRANT, .handler = h_acl_put},
    {"DELETE", "/acl/{principal}", SL_OP_ACL_REVOKE, .handler = h_acl_del},
    {"POST", "/revoke", SL_OP_TOKEN_REVOKE, .start = start_revoke, .resolve = resolve_revoke,
     .broker = 1},
    {"POST", "/token", SL_OP_TOKEN_ISSUE, .handler = h_token, .broker = 1},
    {"POST", "/token/delegate", SL_OP_TOKEN_DELEGATE, .handler = h_delegate,
     .resolve = resolve_delegate, .broker = 1},
    {"POST", "/apikeys", SL_OP_APIKEY_CREATE, .handler = h_apikey_create},
    {"GET", "/apikeys", SL_OP_APIKEY_LIST, .handler = h_apikey_list},
    {"POST", "/apikeys/{id}/expire", SL_OP_APIKEY_EXPIRE, .handler = h_apikey_expire},
    {"DELETE", "/apikeys/{id}", SL_OP_APIKEY_DELETE, .handler = h_apikey_delete},
    {"GET", "/broker/principals/{principal}", SL_OP_BROKER_LIST, .handler = h_broker_get},
    {"PUT", "/broker/principals/{principal}", SL_OP_BROKER_ASSIGN, .handler = h_broker_put},
    {"DELETE", "/broker/principals/{principal}", SL_OP_BROKER_ASSIGN, .handler = h_broker_delete},
    /* (B) */
    {"GET", "/policy/invoke", SL_OP_POLICY_INVOKE_LIST, .handler = h_policy_list},
    {"PUT", "/policy/invoke/{principal}", SL_OP_POLICY_INVOKE_SET, .handler = h_policy_put},
    {"DELETE", "/policy/invoke/{principal}", SL_OP_POLICY_INVOKE_DELETE,
     .handler = h_policy_delete},
    /* (A, issue 12) */
    {"POST", "/authz/invalidate", SL_OP_AUTHZ_INVALIDATE, .handler = h_authz_invalidate},
    /* (C) the server API and the audit log (server/routes_server.c, routes_audit.c) */
    {"GET", "/server/connections", SL_OP_SERVER_CONNECTIONS, .handler = sl__h_server_connections},
    {"POST", "/server/disconnect", SL_OP_SERVER_DISCONNECT, .handler = sl__h_server_disconnect,
     .resolve = sl__resolve_server_disconnect},
    {"POST", "/server/unsubscribe", SL_OP_SERVER_UNSUBSCRIBE, .handler = sl__h_server_unsubscribe,
     .resolve = sl__resolve_server_unsubscribe},
    {"GET", "/server/presence/{id}", SL_OP_SERVER_PRESENCE, .start = sl__start_server_presence},
    {"GET", "/server/presence/{id}/stats", SL_OP_SERVER_PRESENCE,
     .start = sl__start_server_presence},
    {"GET", "/server/channels", SL_OP_SERVER_CHANNELS, .start = sl__start_server_channels},
    {"GET", "/audit", SL_OP_AUDIT_READ, .start = sl__start_audit_read},
    /* (D, issue 14) the admin console's static files */
    {"GET", "/admin", SL_OP_CONSOLE, .handler = sl__console_get},
    {"GET", "/admin/{file}", SL_OP_CONSOLE, .handler = sl__console_get},
    /* (A14) */
    {"GET", "/metrics", SL_OP_METRICS_READ, .start = sl__metrics_route_start},
};

const sl__route *sl__router_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* Matches path against a template; on success the captured (still encoded) segment, if any, is
 * returned through cap/caplen. */
static int path_match(const char *tmpl, const char *path, size_t plen, const char **cap,
                      size_t *caplen)
{
    const char *p = path, *end = path + plen;
    *cap = NULL;
    *caplen = 0;
    while (*tmpl) {
        if (*tmpl != '/' || p >= end || *p != '/')
            return 0;
        tmpl++;
        p++;
        const char *tseg_end = strchr(tmpl, '/');
        size_t tlen = tseg_end ? (size_t)(tseg_end - tmpl) : strlen(tmpl);
        const char *pseg_end = memchr(p, '/', (size_t)(end - p));
        size_t slen = pseg_end ? (size_t)(pseg_end - p) : (size_t)(end - p);
        if (tmpl[0] == '{') {
            *cap = p;
            *caplen = slen;
        } else if (tlen != slen || memcmp(tmpl, p, slen) != 0) {
            return 0;
        }
        tmpl += tlen;
        p += slen;
    }
    return p == end;
}

void sl__job_finish(sl__job *job, int rc)
{
    if (rc != SL_OK)
        sl__response_error(&job->resp, rc, job->st.message);
    /* (B) a denial or failure on the log, and who asked for the access line */
    if (job->resp.status >= 400)
        sl__reqlog_outcome(job->r->log, job->req, job->route ? sl_op_lookup(job->route->op) : NULL,
                           job->resp.status, job->st.message, job->who.principal);
    memcpy(job->resp.principal, job->who.principal, sizeof job->resp.principal);
    sl__metrics *m = job->r->ctx ? job->r->ctx->metrics : NULL; /* (A14) */
    if (m)
        sl__metrics_request(m, job->route ? (int)job->route->op : SL_OP__COUNT, job->resp.status,
                            sl_ctx_now(job->r->ctx) - job->t0);
    job->done(job->ud, job->req, &job->resp);
    sl__response_clear(&job->resp);
    sl_identity_clear(&job->who);
    sl__chop_clear(&job->chop);
    json_decref(job->body);
    free(job->ids);
    free(job->ws);
    free(job->items);
    free(job->meta);
    free(job);
}

/* (C) accessors for asynchronous handlers in other files */
sl__router *sl__job_router(sl__job *job)
{
    return job->r;
}

const sl_identity *sl__job_who(sl__job *job)
{
    return &job->who;
}

const sl_http_request *sl__job_request(sl__job *job)
{
    return job->req;
}

const char *sl__job_resource(sl__job *job)
{
    return job->res;
}

sl__response *sl__job_response(sl__job *job)
{
    return &job->resp;
}

sl_status *sl__job_status(sl__job *job)
{
    return &job->st;
}

/* The channel API answered (the change is durable): render the outcome. */
static void chop_done(sl__chop *op)
{
    sl__job *job = op->ud;
    int rc = op->rc;
    if (rc != SL_OK)
        job->st = op->st;
    else
        rc = job->route->render(job, op);
    sl__job_finish(job, rc);
}

/* A synchronous handler's answer waits until what it changed (a grant, a broker role, an API
 * key) is durable; a failure to make it so replaces the answer. */
static void sync_handler_durable(void *ud, int rc)
{
    sl__job *job = ud;
    if (rc != SL_OK)
        sl_status_set(&job->st, rc, "the change could not be made durable (is the disk full?)");
    sl__job_finish(job, rc);
}

static void run_handler(sl__job *job)
{
    job->r->handled++;
    if (job->route->start) {
        job->route->start(job);
        return;
    }
    if (job->route->prepare) {
        sl__chop *op = &job->chop;
        op->op = job->route->op;
        op->who = &job->who;
        op->channel = job->res;
        int rc = job->route->prepare(job, op);
        if (rc != SL_OK) {
            sl__job_finish(job, rc);
            return;
        }
        op->done = chop_done;
        op->ud = job;
        sl__channel_submit(job->r->ctx, op);
        return;
    }
    int rc = job->route->handler(job->r, &job->who, job->req, job->res, &job->resp, &job->st);
    /* Only a change waits: a GET (health, listings) answers at once, also while a full disk
     * holds every commit back. */
    if (rc != SL_OK || strcmp(job->route->method, "GET") == 0) {
        sl__job_finish(job, rc);
        return;
    }
    sl__ctx_sync(job->r->ctx, sync_handler_durable, job);
}

/* Matches the route and decodes its resource; 0 (with an error response) when there is none. */
static int admit_route(sl__job *job)
{
    const sl_http_request *req = job->req;
    size_t n;
    const sl__route *rt = sl__router_routes(&n), *found = NULL;
    const char *cap = NULL;
    size_t caplen = 0;
    char allow[64] = "";
    size_t plen = strlen(job->r->broker_prefix);
    int under_prefix = req->path_len > plen && memcmp(req->path, job->r->broker_prefix, plen) == 0;
    for (size_t i = 0; i < n; i++) {
        const char *path = req->path;
        size_t len = req->path_len;
        if (rt[i].broker) {
            if (!under_prefix)
                continue;
            path += plen;
            len -= plen;
        }
        if (!path_match(rt[i].path, path, len, &cap, &caplen))
            continue;
        if (strcmp(rt[i].method, req->method) == 0) {
            found = &rt[i];
            break;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", rt[i].method);
    }
    if (found == NULL) {
        if (allow[0]) {
            sl__response_error(&job->resp, SL_EMETHOD, "method not allowed");
            snprintf(job->resp.headers, sizeof job->resp.headers, "Allow: %s\r\n", allow);
        } else {
            sl__response_error(&job->resp, SL_ENOENT, "no such route");
        }
        return 0;
    }
    job->route = found;
    const sl_op_info *op = sl_op_lookup(found->op);
    if (cap) {
        long len = sl__pct_decode(cap, caplen, job->resource, sizeof job->resource, 0);
        int principal = op->resource == SL_RES_PRINCIPAL;
        int valid = len > 0 && (principal ? sl_principal_valid(job->resource, (size_t)len)
                                          : sl_channel_id_valid(job->resource, (size_t)len));
        if (!valid) {
            sl__response_error(&job->resp, principal ? SL_EINVAL : SL_EBADID,
                               principal ? "invalid principal" : "invalid channel id");
            return 0;
        }
        job->res = job->resource;
    }
    return 1;
}

/* Part C, workspaces (docs/POLICY.md): an operator addresses a workspace with the
 * Sluice-Workspace header (anyone else: 403, audited); then the request counts against its
 * workspace's commands per second (429). */
static int ws_request(sl__router *r, sl__job *job)
{
    size_t len = 0;
    const char *h = sl_http_header_get(job->req, "sluice-workspace", &len);
    if (h != NULL) {
        char target[SL_WORKSPACE_MAX + 1];
        if (len == 0 || len > SL_WORKSPACE_MAX)
            return sl_status_set(&job->st, SL_EINVAL, "invalid workspace name");
        memcpy(target, h, len);
        target[len] = '\0';
        int rc = sl__ws_cross(r->ctx->workspaces, &job->who, target, &job->st);
        sl__ws_cross_audit(r->ctx, &job->who, rc);
        if (rc != SL_OK)
            return rc;
    }
    return sl__ws_charge(r->ctx->workspaces, job->who.workspace, sl_ctx_now(r->ctx), &job->st);
}

static void run_handler_cb(void *ud)
{
    run_handler(ud);
}

/* A token request's channels, each asked of the regime (where the policy mode governs it)
 * before the handler: policy_denies reads the answers. The body is the handler's to judge; one
 * this cannot read asks nothing here. */
static void prepare_token_channels(sl__job *job)
{
    json_t *body =
        job->req->body_len ? json_loadb(job->req->body, job->req->body_len, 0, NULL) : NULL;
    json_t *ch = json_object_get(body, "channels");
    size_t n = json_is_array(ch) ? json_array_size(ch) : 0;
    const char **v = n && n <= MAX_TOKEN_CHANNELS ? calloc(n, sizeof *v) : NULL;
    size_t m = 0;
    for (size_t i = 0; v && i < n; i++)
        if (json_is_string(json_array_get(ch, i)))
            v[m++] = json_string_value(json_array_get(ch, i));
    /* The question is borrowed for this call only: a regime answering later copied it. */
    sl__authz_prepare(job->r->ctx, &job->who, SL_OP_TOKEN_ISSUE, v, m, run_handler_cb, job);
    free(v);
    json_decref(body);
}

/* Step 2 (authorisation) with the regime's answers at hand, then the handler. */
static void on_authz_ready(void *ud)
{
    sl__job *job = ud;
    int rc = sl_authorize(job->r->ctx, &job->who, job->route->op, job->res, &job->st);
    if (rc != SL_OK) {
        sl__job_finish(job, rc);
        return;
    }
    /* Without a pluggable regime there is nothing to ask (a policy channel's decision is then
     * an error either way), so the body is not parsed twice. */
    if ((job->route->op == SL_OP_TOKEN_ISSUE || job->route->op == SL_OP_TOKEN_DELEGATE) &&
        sl_ctx_regime(job->r->ctx) != NULL)
        prepare_token_channels(job);
    else
        run_handler(job);
}

/* Step 1 (authentication, revocation included) answered: then the resource from the body,
 * authorisation, the handler. */
static void on_authenticated(void *ud, int status, const sl_identity *who, const char *reason)
{
    sl__job *job = ud;
    sl__router *r = job->r;
    if (status != SL_OK) {
        sl_status_set(&job->st, status, "%s", reason ? reason : sl_strerror(status));
        sl__job_finish(job, status);
        return;
    }
    int rc = sl_identity_copy(&job->who, who);
    if (rc != SL_OK)
        sl_status_set(&job->st, rc, NULL);
    if (rc == SL_OK)
        rc = ws_request(r, job);
    if (rc == SL_OK && job->route->resolve) {
        rc = job->route->resolve(r, job->req, &job->who, job->resource, sizeof job->resource,
                                 &job->st);
        job->res = job->resource;
    }
    if (rc != SL_OK) {
        sl__job_finish(job, rc);
        return;
    }
    /* (A) a policy regime is asked first (later, from the loop); the decision below reads it */
    const char *res = job->res;
    sl__authz_prepare(r->ctx, &job->who, job->route->op, &res, 1, on_authz_ready, job);
}

static const char *view_header(const sl_authn_request *v, const char *name, size_t nth, size_t *len)
{
    return sl_http_header_nth(v->impl, name, nth, len);
}

void sl__authn_view(const sl_http_request *req, sl_authn_request *v)
{
    memset(v, 0, sizeof *v);
    v->method = req->method;
    v->scheme = req->tls ? "https" : "http";
    v->authority = sl_http_header_get(req, "host", &v->authority_len);
    v->path = req->path;
    v->path_len = req->path_len;
    v->query = req->query;
    v->query_len = req->query_len;
    v->body = req->body ? req->body : "";
    v->body_len = req->body ? req->body_len : 0;
    v->header = view_header;
    v->impl = req;
    v->peer = req->peer;
    v->accept = req->accept;
}

unsigned sl__router_mode(const sl__router *r, const char *path, size_t len)
{
    size_t best = 0;
    unsigned mode = 0;
    for (size_t i = 0; i < r->nmodes; i++) {
        const char *p = r->modes[i].prefix;
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/') /* "/a/" is "/a" */
            n--;
        int under = n <= len && !memcmp(path, p, n) && (n == len || path[n] == '/' || n == 1);
        if (under && n >= best) {
            best = n;
            mode = r->modes[i].mode;
        }
    }
    return mode;
}

void sl__router_serve(sl__router *r, sl_http_request *req, sl__router_done_fn done, void *ud)
{
    sl__job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        sl__response resp = {0};
        sl__response_error(&resp, SL_ENOMEM, "out of memory");
        done(ud, req, &resp);
        sl__response_clear(&resp);
        return;
    }
    job->r = r;
    job->req = req;
    job->done = done;
    job->ud = ud;
    job->t0 = r->ctx ? sl_ctx_now(r->ctx) : 0; /* (A14) shared with authentication below */
    sl_identity_init(&job->who);
    if (!admit_route(job)) {
        sl__job_finish(job, SL_OK);
        return;
    }
    if (sl_op_lookup(job->route->op)->role == SL_ROLE_NONE) {
        run_handler(job);
        return;
    }
    sl__authn_view(req, &job->view);
    if (job->view.accept == 0)
        job->view.accept = sl__router_mode(r, req->path, req->path_len);
    sl_authn_run_request(&r->authn, &job->view, job->t0, on_authenticated, job);
}

typedef struct sync_result {
    sl__response *out;
    int done;
} sync_result;

static void sync_done(void *ud, sl_http_request *req, sl__response *resp)
{
    sync_result *res = ud;
    *res->out = *resp; /* take the body */
    memset(resp, 0, sizeof *resp);
    res->done = 1;
}

void sl__router_handle(sl__router *r, const sl_http_request *req, sl__response *resp)
{
    memset(resp, 0, sizeof *resp);
    sync_result res = {resp, 0};
    sl__router_serve(r, (sl_http_request *)req, sync_done, &res);
    if (!res.done) /* an asynchronous store or handler: not for this entry point */
        sl__response_error(resp, SL_EINTERNAL, "asynchronous request on a synchronous path");
}
