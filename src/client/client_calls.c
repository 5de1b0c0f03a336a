/* The remote client's calls: each sl_client_* builds its request (path, query, JSON body), makes it
 * through the one HTTP exchange (client.c) and turns the reply into its results (client_reply.c):
 * the per-channel calls (writes, reads, the id operations, channel settings), and the server-level
 * ones (health, channel list, ACL, the invoke policy, the server API, the audit log). */
#include "client/client_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads an unsigned count field of a {"status":"ok",...} reply into *count (may be NULL). */
static int reply_count(buf *b, const char *field, size_t *count, sl_status *st)
{
    json_t *o = sl__client_load_object(b->p, b->len);
    json_t *v = json_object_get(o, field);
    int ok = json_is_integer(v) && json_integer_value(v) >= 0;
    if (ok && count)
        *count = (size_t)json_integer_value(v);
    json_decref(o);
    free(b->p);
    return ok ? SL_OK : sl__client_malformed(st, field);
}

/* Serialises o (consumed) into a compact JSON text; NULL when out of memory. */
static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static json_t *string_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        if (v[i] == NULL || json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* ---- per-channel calls ----------------------------------------------------------------------- */

int sl_client_write(sl_client *c, const char *channel, const char *json_data, char *item_id,
                    size_t item_id_size, sl_status *st)
{
    if (item_id && item_id_size)
        item_id[0] = '\0';
    if (json_data == NULL || *json_data == '\0')
        return sl_status_set(st, SL_EINVAL, "message data must be JSON text");
    buf b;
    int rc =
        sl__client_channel_call(c, channel, "PUT", "", NULL, json_data, strlen(json_data), &b, st);
    if (rc != SL_OK)
        return rc;
    json_t *o = sl__client_load_object(b.p, b.len);
    const char *id = json_string_value(json_object_get(o, "item_id"));
    if (id == NULL)
        rc = sl__client_malformed(st, "item_id");
    else if (item_id && item_id_size)
        snprintf(item_id, item_id_size, "%s", id);
    json_decref(o);
    free(b.p);
    return rc;
}

int sl_client_read(sl_client *c, const char *channel, const sl_read *r, sl_message_list *out,
                   sl_status *st)
{
    out->items = NULL;
    out->len = 0;
    sl_read dflt = {0};
    if (r == NULL)
        r = &dflt;
    char after[3 * 128 + 1] = "", max_bytes[40] = "", query[sizeof after + sizeof max_bytes + 64];
    if (r->after && sl__client_pct_encode(r->after, after, sizeof after) < 0)
        return sl_status_set(st, SL_EINVAL, "after must be a message id");
    if (r->max_bytes)
        snprintf(max_bytes, sizeof max_bytes, "&max_bytes=%zu", r->max_bytes);
    snprintf(query, sizeof query, "limit=%zu&exclusive=%s%s%s%s", r->limit ? r->limit : 10,
             r->exclusive ? "true" : "false", r->after ? "&after=" : "", after, max_bytes);
    buf b;
    int rc = sl__client_channel_call(c, channel, "GET", "", query, NULL, 0, &b, st);
    if (rc != SL_OK)
        return rc;
    rc = sl__client_parse_messages(b.p, b.len, out, st);
    free(b.p);
    return rc;
}

/* extra (consumed, may be NULL): more members of the body. */
static int ids_call(sl_client *c, const char *channel, const char *suffix, const char *const *ids,
                    size_t n, const double *delay, json_t *extra, const char *field, size_t *count,
                    sl_status *st)
{
    if (count)
        *count = 0;
    if (n > 0 && ids == NULL)
        return sl_status_set(st, SL_EINVAL, "message ids missing");
    json_t *arr = string_array(ids, n);
    if (arr == NULL) {
        json_decref(extra);
        return sl_status_set(st, SL_EINVAL, "message ids must be strings");
    }
    json_t *o = json_pack("{s:o}", "message_ids", arr);
    if (o && delay)
        json_object_set_new(o, "delay", json_real(*delay));
    if (o && extra)
        json_object_update(o, extra);
    json_decref(extra);
    char *body = dump(o);
    if (body == NULL)
        return sl__client_nomem(st);
    buf b;
    int rc = sl__client_channel_call(c, channel, "POST", suffix, NULL, body, strlen(body), &b, st);
    free(body);
    return rc == SL_OK ? reply_count(&b, field, count, st) : rc;
}

int sl_client_ack(sl_client *c, const char *channel, const char *const *ids, size_t n,
                  size_t *count, sl_status *st)
{
    return ids_call(c, channel, "/acknowledge", ids, n, NULL, NULL, "acknowledged", count, st);
}

int sl_client_nack(sl_client *c, const char *channel, const char *const *ids, size_t n,
                   double delay, size_t *count, sl_status *st)
{
    if (!(delay >= 0) || !isfinite(delay))
        return sl_status_set(st, SL_EINVAL, "delay must be a non-negative number of seconds");
    return ids_call(c, channel, "/nack", ids, n, &delay, NULL, "nacked", count, st);
}

int sl_client_remove(sl_client *c, const char *channel, const char *const *ids, size_t n,
                     size_t *count, sl_status *st)
{
    return ids_call(c, channel, "/remove", ids, n, NULL, NULL, "removed", count, st);
}

int sl_client_extend(sl_client *c, const char *channel, const char *const *ids, size_t n,
                     double seconds, size_t *count, sl_status *st)
{
    if (!(seconds >= 0) || !isfinite(seconds))
        return sl_status_set(st, SL_EINVAL, "seconds must be a non-negative number");
    json_t *extra = seconds > 0 ? json_pack("{s:f}", "seconds", seconds) : NULL;
    return ids_call(c, channel, "/extend", ids, n, NULL, extra, "extended", count, st);
}

int sl_client_terminate(sl_client *c, const char *channel, const char *const *ids, size_t n,
                        const char *reason, size_t *count, sl_status *st)
{
    json_t *extra = NULL;
    if (reason && (extra = json_pack("{s:s}", "reason", reason)) == NULL)
        return sl_status_set(st, SL_EINVAL, "reason must be UTF-8 text");
    return ids_call(c, channel, "/terminate", ids, n, NULL, extra, "terminated", count, st);
}

static int set_opt(json_t *o, const char *key, json_t *v)
{
    return v == NULL || json_object_set_new(o, key, v) != 0 ? -1 : 0;
}

/* Appends s[0..n) to *b (grown as needed); -1 when out of memory. */
static int put_bytes(buf *b, size_t *cap, const char *s, size_t n)
{
    if (b->len + n + 1 > *cap) {
        size_t ncap = (*cap ? *cap : 256) * 2;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL)
            return -1;
        b->p = np;
        *cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* One envelope: data and metadata spliced in as the caller's text (sent as written), the other
 * fields through jansson. */
static int put_envelope(buf *b, size_t *cap, const sl_write *w)
{
    json_t *o = json_object();
    int bad = o == NULL;
    const char *keys[] = {"correlation_id", "reply_to", "recipient_id", "idempotency_key"};
    const char *vals[] = {w->correlation_id, w->reply_to, w->recipient_id, w->idempotency_key};
    for (size_t i = 0; !bad && i < 4; i++)
        if (vals[i])
            bad = set_opt(o, keys[i], json_string(vals[i]));
    const char *nkeys[] = {"delay", "not_before", "ttl"};
    double nvals[] = {w->delay, w->not_before, w->ttl};
    for (size_t i = 0; !bad && i < 3; i++)
        if (nvals[i] != 0)
            bad = set_opt(o, nkeys[i], json_real(nvals[i]));
    char *rest = bad ? NULL : dump(o);
    if (bad)
        json_decref(o);
    if (rest == NULL)
        return -1;
    size_t rl = strlen(rest); /* "{}" or "{...}": its members go after data and metadata */
    int rc = put_bytes(b, cap, "{\"data\":", 8) || put_bytes(b, cap, w->data, w->data_len) ||
             (w->metadata && (put_bytes(b, cap, ",\"metadata\":", 12) ||
                              put_bytes(b, cap, w->metadata, strlen(w->metadata)))) ||
             (rl > 2 && put_bytes(b, cap, ",", 1)) || put_bytes(b, cap, rest + 1, rl - 1);
    free(rest);
    return rc ? -1 : 0;
}

int sl_client_write_batch(sl_client *c, const char *channel, const sl_write *w, size_t n,
                          char (*item_ids)[SL_ITEM_ID_SIZE], size_t *duplicates, sl_status *st)
{
    if (duplicates)
        *duplicates = 0;
    if (w == NULL || n == 0)
        return sl_status_set(st, SL_EINVAL, "no messages");
    for (size_t i = 0; i < n; i++)
        if (w[i].data == NULL || w[i].data_len == 0)
            return sl_status_set(st, SL_EINVAL, "message data must be JSON text");
    buf body = {0};
    size_t cap = 0;
    int bad = put_bytes(&body, &cap, "{\"messages\":[", 13);
    for (size_t i = 0; !bad && i < n; i++)
        bad = (i && put_bytes(&body, &cap, ",", 1)) || put_envelope(&body, &cap, &w[i]);
    if (bad || put_bytes(&body, &cap, "]}", 2)) {
        free(body.p);
        return sl_status_set(st, SL_EINVAL, "message fields must be UTF-8 text");
    }
    buf b;
    int rc = sl__client_channel_call(c, channel, "POST", "/batch", NULL, body.p, body.len, &b, st);
    free(body.p);
    if (rc != SL_OK)
        return rc;
    json_t *o = sl__client_load_object(b.p, b.len);
    json_t *ids = json_object_get(o, "item_ids");
    if (!json_is_array(ids) || json_array_size(ids) != n) {
        rc = sl__client_malformed(st, "item_ids");
    } else {
        for (size_t i = 0; item_ids && i < n; i++) {
            const char *id = json_string_value(json_array_get(ids, i));
            snprintf(item_ids[i], SL_ITEM_ID_SIZE, "%s", id ? id : "");
        }
        if (duplicates)
            *duplicates = sl__client_opt_size(o, "duplicates");
    }
    json_decref(o);
    free(b.p);
    return rc;
}

int sl_client_info(sl_client *c, const char *channel, sl_channel_info *info, sl_status *st)
{
    memset(info, 0, sizeof *info);
    buf b;
    int rc = sl__client_channel_call(c, channel, "GET", "/info", NULL, NULL, 0, &b, st);
    if (rc != SL_OK)
        return rc;
    rc = sl__client_parse_info(b.p, b.len, info, st);
    free(b.p);
    return rc;
}

int sl_client_create(sl_client *c, const char *channel, const sl_channel_opts *o,
                     sl_channel_info *info, sl_status *st)
{
    if (info)
        memset(info, 0, sizeof *info);
    if (channel == NULL || !sl_channel_id_valid(channel, strlen(channel)))
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    sl_channel_opts dflt;
    if (o == NULL) {
        sl_channel_opts_init(&dflt);
        dflt.visibility = SL_VIS_PUBLIC;
        o = &dflt;
    }
    json_t *j = json_object();
    int bad = j == NULL || set_opt(j, "id", json_string(channel)) ||
              set_opt(j, "kind", json_string(o->kind == SL_KIND_TOPIC ? "topic" : "queue")) ||
              set_opt(j, "visibility",
                      json_string(o->visibility == SL_VIS_PUBLIC ? "public" : "private"));
    if (!bad && o->name)
        bad = set_opt(j, "name", json_string(o->name));
    if (!bad && o->description)
        bad = set_opt(j, "description", json_string(o->description));
    if (!bad && o->mode != SL_MODE_INHERIT)
        bad = set_opt(j, "security", json_string(sl_mode_name(o->mode)));
    if (!bad && o->claim_timeout > 0)
        bad = set_opt(j, "claim_timeout", json_real(o->claim_timeout));
    if (!bad && o->max_attempts)
        bad = set_opt(j, "max_attempts", json_integer(o->max_attempts));
    if (!bad && o->dead_letter)
        bad = set_opt(j, "dead_letter", json_string(o->dead_letter));
    if (!bad && o->max_messages)
        bad = set_opt(j, "max_messages", json_integer((json_int_t)o->max_messages));
    if (!bad && o->retention_max_count)
        bad = set_opt(j, "retention_max_count", json_integer((json_int_t)o->retention_max_count));
    if (!bad && o->retention_max_age > 0)
        bad = set_opt(j, "retention_max_age", json_real(o->retention_max_age));
    if (!bad && o->dedup_window > 0)
        bad = set_opt(j, "dedup_window", json_real(o->dedup_window));
    if (!bad && o->cursor_idle_timeout > 0)
        bad = set_opt(j, "cursor_idle_timeout", json_real(o->cursor_idle_timeout));
    if (!bad && o->nbackoff > 0) {
        json_t *bo = json_array();
        for (size_t i = 0; bo && i < o->nbackoff && i < SL_BACKOFF_MAX; i++)
            json_array_append_new(bo, json_real(o->backoff[i]));
        bad = set_opt(j, "backoff", bo);
    }
    if (bad) {
        /* json_string refuses text that is not UTF-8. */
        json_decref(j);
        return sl_status_set(st, SL_EINVAL, "channel options must be UTF-8 text");
    }
    char *body = dump(j);
    if (body == NULL)
        return sl__client_nomem(st);
    const route *r = sl__client_route_for(c, channel);
    int rc;
    buf b;
    if (r == NULL)
        rc = sl_status_set(st, SL_ENOENT, "channel '%s' is not connected to a server", channel);
    else
        rc = sl__client_server_call(c, r->url, r->token, "POST", "/channels", body, strlen(body),
                                    &b, st);
    free(body);
    if (rc != SL_OK)
        return rc;
    if (info)
        rc = sl__client_parse_info(b.p, b.len, info, st);
    free(b.p);
    return rc;
}

int sl_client_delete(sl_client *c, const char *channel, sl_status *st)
{
    buf b;
    int rc = sl__client_channel_call(c, channel, "DELETE", "", NULL, NULL, 0, &b, st);
    if (rc == SL_OK)
        free(b.p);
    return rc;
}

int sl_client_clear(sl_client *c, const char *channel, size_t *count, sl_status *st)
{
    if (count)
        *count = 0;
    buf b;
    int rc = sl__client_channel_call(c, channel, "DELETE", "/messages", NULL, NULL, 0, &b, st);
    return rc == SL_OK ? reply_count(&b, "cleared", count, st) : rc;
}

int sl_client_evict(sl_client *c, const char *channel, double before, size_t max_count,
                    size_t *count, sl_status *st)
{
    if (count)
        *count = 0;
    if (!(before >= 0) || !isfinite(before))
        return sl_status_set(st, SL_EINVAL, "before must be a non-negative epoch time");
    if (before == 0 && max_count == SIZE_MAX)
        return sl_status_set(st, SL_EINVAL, "give before and/or max_count");
    json_t *o = json_object();
    if (o && before > 0)
        json_object_set_new(o, "before", json_real(before));
    if (o && max_count != SIZE_MAX)
        json_object_set_new(o, "max_count", json_integer((json_int_t)max_count));
    char *body = dump(o);
    if (body == NULL)
        return sl__client_nomem(st);
    buf b;
    int rc =
        sl__client_channel_call(c, channel, "POST", "/evict", NULL, body, strlen(body), &b, st);
    free(body);
    return rc == SL_OK ? reply_count(&b, "evicted", count, st) : rc;
}

/* ---- server-level calls ---------------------------------------------------------------------- */

int sl_client_health(sl_client *c, const char *url, const char *token, sl_status *st)
{
    buf b;
    int rc = sl__client_server_call(c, url, token, "GET", "/healthz", NULL, 0, &b, st);
    if (rc == SL_OK)
        free(b.p);
    return rc;
}

int sl_client_list(sl_client *c, const char *url, const char *token, sl_channel_info **out,
                   size_t *n, sl_status *st)
{
    *out = NULL;
    *n = 0;
    buf b;
    int rc = sl__client_server_call(c, url, token, "GET", "/channels", NULL, 0, &b, st);
    if (rc != SL_OK)
        return rc;
    rc = sl__client_parse_infos(b.p, b.len, out, n, st);
    free(b.p);
    return rc;
}

static int acl_path(const char *principal, char *path, size_t cap, sl_status *st)
{
    char enc[3 * SL_PRINCIPAL_MAX + 1];
    if (principal == NULL || !sl_principal_valid(principal, strlen(principal)) ||
        sl__client_pct_encode(principal, enc, sizeof enc) < 0)
        return sl_status_set(st, SL_EINVAL, "invalid principal");
    snprintf(path, cap, "/acl/%s", enc);
    return SL_OK;
}

int sl_client_acl_grant(sl_client *c, const char *url, const char *token, const char *principal,
                        sl_role role, const char *const *patterns, size_t n, sl_status *st)
{
    return sl_client_acl_grant_deny(c, url, token, principal, role, patterns, n, NULL, 0, st);
}

int sl_client_acl_grant_deny(sl_client *c, const char *url, const char *token,
                             const char *principal, sl_role role, const char *const *patterns,
                             size_t n, const char *const *deny, size_t ndeny, sl_status *st)
{
    char path[3 * SL_PRINCIPAL_MAX + 16];
    int rc = acl_path(principal, path, sizeof path, st);
    if (rc != SL_OK)
        return rc;
    if (role != SL_ROLE_READ && role != SL_ROLE_WRITE && role != SL_ROLE_ADMIN)
        return sl_status_set(st, SL_EINVAL, "role must be read, write or admin");
    if (n > 0 && patterns == NULL)
        return sl_status_set(st, SL_EINVAL, "channel patterns missing");
    json_t *o = json_pack("{s:s}", "role", sl_role_name(role));
    if (o == NULL)
        return sl__client_nomem(st);
    if (n > 0) {
        json_t *arr = string_array(patterns, n);
        /* json_object_set_new consumes arr even when it fails. */
        if (arr == NULL || json_object_set_new(o, "channels", arr) != 0) {
            json_decref(o);
            return sl_status_set(st, SL_EINVAL, "channel patterns must be UTF-8 text");
        }
    }
    if (ndeny > 0) {
        json_t *arr = deny ? string_array(deny, ndeny) : NULL;
        if (arr == NULL || json_object_set_new(o, "deny", arr) != 0) {
            json_decref(o);
            return sl_status_set(st, SL_EINVAL, "deny patterns must be UTF-8 text");
        }
    }
    char *body = dump(o);
    if (body == NULL)
        return sl__client_nomem(st);
    buf b;
    rc = sl__client_server_call(c, url, token, "PUT", path, body, strlen(body), &b, st);
    free(body);
    if (rc == SL_OK)
        free(b.p);
    return rc;
}

/* ---- the invoke policy ----------------------------------------------------------------------- */

static int policy_path(const char *pattern, char *path, size_t cap, sl_status *st)
{
    char enc[3 * SL_PRINCIPAL_MAX + 1];
    if (pattern == NULL || !sl_principal_valid(pattern, strlen(pattern)) ||
        sl__client_pct_encode(pattern, enc, sizeof enc) < 0)
        return sl_status_set(st, SL_EINVAL, "invalid principal pattern");
    snprintf(path, cap, "/policy/invoke/%s", enc);
    return SL_OK;
}

/* The reply body as a NUL-terminated string in *reply. */
static int reply_text(buf *b, char **reply, sl_status *st)
{
    char *t = malloc(b->len + 1);
    if (t == NULL) {
        free(b->p);
        return sl__client_nomem(st);
    }
    if (b->len)
        memcpy(t, b->p, b->len);
    t[b->len] = '\0';
    free(b->p);
    *reply = t;
    return SL_OK;
}

int sl_client_invoke_policy_list(sl_client *c, const char *url, const char *token, char **reply,
                                 sl_status *st)
{
    buf b;
    *reply = NULL;
    int rc = sl__client_server_call(c, url, token, "GET", "/policy/invoke", NULL, 0, &b, st);
    return rc == SL_OK ? reply_text(&b, reply, st) : rc;
}

int sl_client_invoke_policy_set(sl_client *c, const char *url, const char *token,
                                const char *pattern, const char *const *allow, size_t nallow,
                                const char *const *deny, size_t ndeny, int audit, char **reply,
                                sl_status *st)
{
    char path[3 * SL_PRINCIPAL_MAX + 32];
    *reply = NULL;
    int rc = policy_path(pattern, path, sizeof path, st);
    if (rc != SL_OK)
        return rc;
    json_t *a = nallow ? string_array(allow, nallow) : json_array();
    json_t *d = ndeny ? string_array(deny, ndeny) : json_array();
    json_t *o = a && d ? json_pack("{s:o, s:o, s:b}", "allow", a, "deny", d, "audit", audit) : NULL;
    if (o == NULL) {
        json_decref(a);
        json_decref(d);
        return sl_status_set(st, SL_EINVAL, "rules must be UTF-8 text");
    }
    char *body = dump(o);
    if (body == NULL)
        return sl__client_nomem(st);
    buf b;
    rc = sl__client_server_call(c, url, token, "PUT", path, body, strlen(body), &b, st);
    free(body);
    return rc == SL_OK ? reply_text(&b, reply, st) : rc;
}

int sl_client_invoke_policy_delete(sl_client *c, const char *url, const char *token,
                                   const char *pattern, sl_status *st)
{
    char path[3 * SL_PRINCIPAL_MAX + 32];
    int rc = policy_path(pattern, path, sizeof path, st);
    if (rc != SL_OK)
        return rc;
    buf b;
    rc = sl__client_server_call(c, url, token, "DELETE", path, NULL, 0, &b, st);
    if (rc == SL_OK)
        free(b.p);
    return rc;
}

int sl_client_acl_revoke(sl_client *c, const char *url, const char *token, const char *principal,
                         sl_status *st)
{
    char path[3 * SL_PRINCIPAL_MAX + 16];
    int rc = acl_path(principal, path, sizeof path, st);
    if (rc != SL_OK)
        return rc;
    buf b;
    rc = sl__client_server_call(c, url, token, "DELETE", path, NULL, 0, &b, st);
    if (rc == SL_OK)
        free(b.p);
    return rc;
}

int sl_client_acl_list(sl_client *c, const char *url, const char *token, sl_acl_entry **out,
                       size_t *n, sl_status *st)
{
    *out = NULL;
    *n = 0;
    buf b;
    int rc = sl__client_server_call(c, url, token, "GET", "/acl", NULL, 0, &b, st);
    if (rc != SL_OK)
        return rc;
    rc = sl__client_parse_acl(b.p, b.len, out, n, st);
    free(b.p);
    return rc;
}

/* ---- the server API and the audit log -------------------------------------------------------- */

/* GET path (with its query) and the reply's text. */
static int get_text(sl_client *c, const char *url, const char *token, const char *path,
                    char **reply, sl_status *st)
{
    buf b;
    *reply = NULL;
    int rc = sl__client_server_call(c, url, token, "GET", path, NULL, 0, &b, st);
    return rc == SL_OK ? reply_text(&b, reply, st) : rc;
}

/* POST o (consumed) to path and the reply's text. */
static int post_text(sl_client *c, const char *url, const char *token, const char *path, json_t *o,
                     char **reply, sl_status *st)
{
    *reply = NULL;
    char *body = dump(o);
    if (body == NULL)
        return sl_status_set(st, SL_EINVAL, "arguments must be UTF-8 text");
    buf b;
    int rc = sl__client_server_call(c, url, token, "POST", path, body, strlen(body), &b, st);
    free(body);
    return rc == SL_OK ? reply_text(&b, reply, st) : rc;
}

int sl_client_server_connections(sl_client *c, const char *url, const char *token,
                                 const char *principal, size_t limit, char **reply, sl_status *st)
{
    char enc[3 * SL_PRINCIPAL_MAX + 1], path[3 * SL_PRINCIPAL_MAX + 64];
    *reply = NULL;
    if (principal && (!sl_principal_valid(principal, strlen(principal)) ||
                      sl__client_pct_encode(principal, enc, sizeof enc) < 0))
        return sl_status_set(st, SL_EINVAL, "invalid principal");
    int n = snprintf(path, sizeof path, "/server/connections");
    if (principal)
        n += snprintf(path + n, sizeof path - (size_t)n, "?principal=%s", enc);
    if (limit)
        snprintf(path + n, sizeof path - (size_t)n, "%slimit=%zu", principal ? "&" : "?", limit);
    return get_text(c, url, token, path, reply, st);
}

int sl_client_server_disconnect(sl_client *c, const char *url, const char *token,
                                const char *principal, const char *connection, int code,
                                const char *reason, char **reply, sl_status *st)
{
    *reply = NULL;
    if (principal == NULL && connection == NULL)
        return sl_status_set(st, SL_EINVAL, "a principal or a connection is required");
    json_t *o = json_object();
    if (o && principal)
        json_object_set_new(o, "principal", json_string(principal));
    if (o && connection)
        json_object_set_new(o, "connection", json_string(connection));
    if (o && code)
        json_object_set_new(o, "code", json_integer(code));
    if (o && reason)
        json_object_set_new(o, "reason", json_string(reason));
    return post_text(c, url, token, "/server/disconnect", o, reply, st);
}

int sl_client_server_unsubscribe(sl_client *c, const char *url, const char *token,
                                 const char *principal, const char *channel, char **reply,
                                 sl_status *st)
{
    *reply = NULL;
    if (principal == NULL || channel == NULL)
        return sl_status_set(st, SL_EINVAL, "a principal and a channel are required");
    json_t *o = json_pack("{s:s, s:s}", "principal", principal, "channel", channel);
    return post_text(c, url, token, "/server/unsubscribe", o, reply, st);
}

int sl_client_server_presence(sl_client *c, const char *url, const char *token, const char *channel,
                              int stats, char **reply, sl_status *st)
{
    char enc[3 * SL_CHANNEL_ID_MAX + 1], path[3 * SL_CHANNEL_ID_MAX + 64];
    *reply = NULL;
    if (channel == NULL || !sl_channel_id_valid(channel, strlen(channel)) ||
        sl__client_pct_encode(channel, enc, sizeof enc) < 0)
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    snprintf(path, sizeof path, "/server/presence/%s%s", enc, stats ? "/stats" : "");
    return get_text(c, url, token, path, reply, st);
}

int sl_client_server_channels(sl_client *c, const char *url, const char *token, char **reply,
                              sl_status *st)
{
    return get_text(c, url, token, "/server/channels", reply, st);
}

int sl_client_audit_tail(sl_client *c, const char *url, const char *token, size_t limit,
                         char **reply, sl_status *st)
{
    char path[64] = "/audit";
    if (limit)
        snprintf(path, sizeof path, "/audit?limit=%zu", limit);
    return get_text(c, url, token, path, reply, st);
}
