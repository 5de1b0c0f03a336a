/* What the sluice server's replies mean to the remote client: an HTTP error status and its body
 * turned into an sl_errno with a message fit for a terminal (control characters replaced, any echo
 * of the token redacted), and reply bodies turned into sluice values: messages (data and metadata
 * handed over as the text the server sent), channel infos, ACL entries. No I/O. */
#include "client/client_internal.h"
#include "core/jsonspan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int sl__client_nomem(sl_status *st)
{
    return sl_status_set(st, SL_ENOMEM, "out of memory");
}

int sl__client_malformed(sl_status *st, const char *what)
{
    return sl_status_set(st, SL_EIO, "malformed response from server (%s)", what);
}

/* Replaces control bytes (terminal escapes from a hostile server) and redacts the token. */
void sl__client_scrub(char *msg, const char *token)
{
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (token == NULL || *token == '\0')
        return;
    size_t tl = strlen(token);
    char *from = msg, *hit;
    while ((hit = strstr(from, token)) != NULL) {
        /* Same length or shorter, and the search resumes after it, so this always terminates. */
        static const char red[] = "[redacted]";
        size_t rl = tl >= sizeof red - 1 ? sizeof red - 1 : 0;
        if (rl)
            memcpy(hit, red, rl);
        else
            memset(hit, '*', rl = tl);
        memmove(hit + rl, hit + tl, strlen(hit + tl) + 1);
        from = hit + rl;
    }
}

/* ---- error mapping --------------------------------------------------------------------------- */

int sl__client_http_error(long status, const char *body, size_t len, const char *token,
                          sl_status *st)
{
    json_t *o = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *name = json_string_value(json_object_get(o, "error"));
    const char *msg = json_string_value(json_object_get(o, "message"));
    name = name ? name : "";
    int code;
    if (status == 400) {
        if (!strcmp(name, "invalid_channel_id"))
            code = SL_EBADID;
        else if (!strcmp(name, "unsupported_operation"))
            code = SL_EKIND;
        else
            code = SL_EINVAL;
    } else if (status == 401) {
        code = !strcmp(name, "invalid_token") ? SL_ETOKEN : SL_EUNAUTH;
    } else if (status == 403) {
        code = SL_EFORBIDDEN;
    } else if (status == 404) {
        code = SL_ENOENT;
    } else if (status == 405) {
        code = SL_EMETHOD;
    } else if (status == 408) {
        code = SL_ETIMEOUT;
    } else if (status == 409) {
        code = SL_EEXIST;
    } else if (status == 413) {
        code = SL_ETOOBIG;
    } else if (status == 429) {
        code = SL_EFULL;
    } else if (status == 431) {
        code = SL_EHEADERS;
    } else if (status >= 500) {
        code = SL_EUNAVAIL;
    } else {
        code = SL_EINVAL;
    }
    if (msg && *msg)
        sl_status_set(st, code, "%s", msg);
    else
        sl_status_set(st, code, "%s (HTTP %ld)", sl_strerror(code), status);
    json_decref(o);
    if (st)
        sl__client_scrub(st->message, token);
    return code;
}

/* ---- parsing replies ------------------------------------------------------------------------- */

json_t *sl__client_load_object(const char *body, size_t len)
{
    json_t *o = body ? json_loadb(body, len, 0, NULL) : NULL;
    if (o && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* Optional string member: 0 absent/null, 1 copied, -1 wrong type or no memory. */
static int opt_string(json_t *o, const char *key, char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    return (*out = strdup(json_string_value(v))) ? 1 : -1;
}

static double opt_number(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

size_t sl__client_opt_size(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return (size_t)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1.8e19)
        return (size_t)json_real_value(v);
    return 0;
}

/* ---- raw JSON spans ---------------------------------------------------------------------------
 * Message data and metadata are handed over as the text the server sent, which is the text that
 * was written: a jansson round trip would change numbers (0.1 -> 0.10000000000000001) and drop
 * duplicate keys. The reply was already parsed by jansson, so these scanners only run over valid
 * JSON and need no error handling beyond staying inside the buffer. */

typedef struct span {
    const char *p, *e; /* p == NULL: none */
} span;

/* The value of member `key` of the object spanned by obj (p NULL: none). */
static span member(span obj, const char *key)
{
    span found = {NULL, NULL};
    if (obj.p == NULL || !sl__json_member(obj.p, obj.e, key, &found.p, &found.e))
        found.p = found.e = NULL;
    return found;
}

/* The next array element at *p (just inside '[' or after the previous element). */
static span element(const char **p, const char *e)
{
    const char *s = sl__json_skip_ws(*p, e);
    if (s < e && *s == ',')
        s = sl__json_skip_ws(s + 1, e);
    if (s >= e || *s == ']')
        return (span){NULL, NULL};
    const char *v = sl__json_skip_value(s, e);
    *p = v;
    return (span){s, v};
}

static char *span_dup(span sp)
{
    size_t n = (size_t)(sp.e - sp.p);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, sp.p, n);
        s[n] = '\0';
    }
    return s;
}

/* raw: the message object's text in the reply (p NULL when it could not be found). */
static int message_from_json(json_t *j, span raw, sl_message *m)
{
    memset(m, 0, sizeof *m);
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "id")))
        return -1;
    m->id = strdup(json_string_value(json_object_get(j, "id")));
    m->timestamp = opt_number(j, "timestamp");
    json_t *content = json_object_get(j, "content");
    json_t *data = json_is_object(content) ? json_object_get(content, "data") : NULL;
    span rdata = member(member(raw, "content"), "data");
    /* A key spelled with escapes is the only way to miss the raw text: then the parsed value. */
    m->data = !data             ? strdup("null")
              : rdata.p != NULL ? span_dup(rdata)
                                : json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *md = json_object_get(j, "metadata");
    if (json_is_object(md) && json_object_size(md) > 0) {
        span rmd = member(raw, "metadata");
        m->metadata = rmd.p ? span_dup(rmd) : json_dumps(md, JSON_COMPACT);
    }
    json_t *att = json_object_get(j, "attempt");
    if (json_is_integer(att) && json_integer_value(att) >= 0 &&
        json_integer_value(att) <= (json_int_t)UINT32_MAX)
        m->attempt = (unsigned)json_integer_value(att);
    m->claim_expires_at = opt_number(j, "claim_expires_at");
    m->expires_at = opt_number(j, "expires_at");
    if (m->id == NULL || m->data == NULL ||
        (json_is_object(md) && json_object_size(md) > 0 && m->metadata == NULL))
        return -1;
    if (opt_string(j, "sender_id", &m->sender_id) < 0 ||
        opt_string(j, "correlation_id", &m->correlation_id) < 0 ||
        opt_string(j, "reply_to", &m->reply_to) < 0 ||
        opt_string(j, "recipient_id", &m->recipient_id) < 0 ||
        opt_string(j, "dead_reason", &m->dead_reason) < 0)
        return -1;
    return 0;
}

int sl__client_parse_messages(const char *body, size_t len, sl_message_list *out, sl_status *st)
{
    out->items = NULL;
    out->len = 0;
    out->more = 0;
    json_t *o = sl__client_load_object(body, len);
    json_t *arr = json_object_get(o, "messages");
    if (!json_is_array(arr)) {
        json_decref(o);
        return sl__client_malformed(st, "expected {\"messages\":[...]}");
    }
    size_t n = json_array_size(arr);
    out->items = calloc(n ? n : 1, sizeof *out->items);
    if (out->items == NULL) {
        json_decref(o);
        return sl__client_nomem(st);
    }
    /* Walk the raw array alongside the parsed one; if its text is not where expected (a key
     * spelled with escapes), each message falls back to its parsed value. */
    span rarr = member((span){body, body + len}, "messages");
    const char *cur = rarr.p && *rarr.p == '[' ? rarr.p + 1 : NULL;
    for (size_t i = 0; i < n; i++) {
        out->len = i + 1; /* so a partly filled message is released too */
        span raw = cur ? element(&cur, rarr.e) : (span){NULL, NULL};
        if (raw.p == NULL)
            cur = NULL;
        if (message_from_json(json_array_get(arr, i), raw, &out->items[i]) < 0) {
            sl_message_list_free(out);
            json_decref(o);
            return sl__client_malformed(st, "bad message");
        }
    }
    out->more = json_is_true(json_object_get(o, "more"));
    json_decref(o);
    return SL_OK;
}

static int info_from_json(json_t *j, sl_channel_info *c)
{
    memset(c, 0, sizeof *c);
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "id")))
        return -1;
    json_t *opts = json_object_get(j, "options");
    const char *kind = json_string_value(json_object_get(j, "kind"));
    const char *vis = json_string_value(json_object_get(j, "visibility"));
    const char *sec = json_string_value(json_object_get(opts, "security"));
    c->kind = kind && !strcmp(kind, "topic") ? SL_KIND_TOPIC : SL_KIND_QUEUE;
    c->visibility = vis && !strcmp(vis, "public") ? SL_VIS_PUBLIC : SL_VIS_PRIVATE;
    int mode = sec ? (int)sl_mode_parse(sec) : -1;
    c->mode = mode < 0 ? SL_MODE_INHERIT : (sl_mode)mode;
    c->claim_timeout = opt_number(opts, "claim_timeout");
    size_t att = sl__client_opt_size(opts, "max_attempts");
    c->max_attempts = att > UINT32_MAX ? UINT32_MAX : (unsigned)att;
    c->max_messages = sl__client_opt_size(opts, "max_messages");
    c->retention_max_count = sl__client_opt_size(opts, "retention_max_count");
    c->retention_max_age = opt_number(opts, "retention_max_age");
    c->dedup_window = opt_number(opts, "dedup_window");
    c->cursor_idle_timeout = opt_number(opts, "cursor_idle_timeout");
    json_t *bo = json_object_get(opts, "backoff");
    for (size_t i = 0; json_is_array(bo) && i < json_array_size(bo) && i < SL_BACKOFF_MAX; i++) {
        json_t *v = json_array_get(bo, i);
        c->backoff[i] = json_is_number(v) ? json_number_value(v) : 0;
        c->nbackoff = i + 1;
    }
    c->depth = sl__client_opt_size(j, "depth");
    if (opt_string(j, "id", &c->id) < 0 || opt_string(j, "name", &c->name) < 0 ||
        opt_string(j, "description", &c->description) < 0 ||
        opt_string(opts, "dead_letter", &c->dead_letter) < 0)
        return -1;
    return 0;
}

int sl__client_parse_info(const char *body, size_t len, sl_channel_info *out, sl_status *st)
{
    json_t *o = sl__client_load_object(body, len);
    int bad = info_from_json(o, out);
    json_decref(o);
    if (bad) {
        sl_channel_info_clear(out);
        memset(out, 0, sizeof *out);
        return sl__client_malformed(st, "bad channel info");
    }
    return SL_OK;
}

int sl__client_parse_infos(const char *body, size_t len, sl_channel_info **out, size_t *n,
                           sl_status *st)
{
    *out = NULL;
    *n = 0;
    json_t *o = sl__client_load_object(body, len);
    json_t *arr = json_object_get(o, "channels");
    if (!json_is_array(arr)) {
        json_decref(o);
        return sl__client_malformed(st, "expected {\"channels\":[...]}");
    }
    size_t cnt = json_array_size(arr);
    sl_channel_info *infos = calloc(cnt ? cnt : 1, sizeof *infos);
    if (infos == NULL) {
        json_decref(o);
        return sl__client_nomem(st);
    }
    for (size_t i = 0; i < cnt; i++) {
        if (info_from_json(json_array_get(arr, i), &infos[i]) < 0) {
            sl_channel_infos_free(infos, i + 1);
            json_decref(o);
            return sl__client_malformed(st, "bad channel info");
        }
    }
    json_decref(o);
    *out = infos;
    *n = cnt;
    return SL_OK;
}

static int acl_from_json(json_t *j, sl_acl_entry *e)
{
    memset(e, 0, sizeof *e);
    if (!json_is_object(j) || opt_string(j, "principal", &e->principal) <= 0)
        return -1;
    e->role = sl_role_parse(json_string_value(json_object_get(j, "role")));
    json_t *dn = json_object_get(j, "deny"); /* absent from older servers: none */
    size_t nd = json_array_size(dn);
    if (nd && (e->deny = calloc(nd, sizeof *e->deny)) == NULL)
        return -1;
    for (size_t i = 0; i < nd; i++) {
        const char *p = json_string_value(json_array_get(dn, i));
        e->ndeny = i + 1;
        if (p == NULL || (e->deny[i] = strdup(p)) == NULL)
            return -1;
    }
    json_t *ch = json_object_get(j, "channels");
    size_t n = json_array_size(ch); /* 0 for null or absent: all channels */
    if (n == 0)
        return 0;
    if ((e->channels = calloc(n, sizeof *e->channels)) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = json_string_value(json_array_get(ch, i));
        e->nchannels = i + 1;
        if (p == NULL || (e->channels[i] = strdup(p)) == NULL)
            return -1;
    }
    return 0;
}

int sl__client_parse_acl(const char *body, size_t len, sl_acl_entry **out, size_t *n, sl_status *st)
{
    *out = NULL;
    *n = 0;
    json_t *o = sl__client_load_object(body, len);
    json_t *arr = json_object_get(o, "entries");
    if (!json_is_array(arr)) {
        json_decref(o);
        return sl__client_malformed(st, "expected {\"entries\":[...]}");
    }
    size_t cnt = json_array_size(arr);
    sl_acl_entry *es = calloc(cnt ? cnt : 1, sizeof *es);
    if (es == NULL) {
        json_decref(o);
        return sl__client_nomem(st);
    }
    for (size_t i = 0; i < cnt; i++) {
        if (acl_from_json(json_array_get(arr, i), &es[i]) < 0) {
            sl_acl_entries_free(es, i + 1);
            json_decref(o);
            return sl__client_malformed(st, "bad ACL entry");
        }
    }
    json_decref(o);
    *out = es;
    *n = cnt;
    return SL_OK;
}
