/* The request-parameter helpers the route families share (routes_channels.c, routes_tokens.c,
 * routes_access.c, routes_apikeys.c, routes_server.c, and the router itself): percent-decoding and
 * query lookup, the JSON body as an object, and the typed getters of its members (strings without
 * NUL bytes, counts, seconds, TTLs, string lists), each answering hostile input with an error that
 * says what is wrong. No I/O; the percent-decoding and the query lookup are fuzzed
 * (fuzz/fuzz_query.c). */
#include "server/params.h"

#include "core/message.h"
#include "core/numtext.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int sl__fail(sl_status *st, int code, const char *msg)
{
    return sl_status_set(st, code, "%s", msg);
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
            int h = sl__hexval((unsigned char)src[i + 1]),
                l = sl__hexval((unsigned char)src[i + 2]);
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

int sl__parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !*s)
        *out = 1;
    else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no"))
        *out = 0;
    else
        return -1;
    return 0;
}

int sl__parse_body(const sl_http_request *req, json_t **out, sl_status *st)
{
    json_error_t e;
    *out = NULL; /* callers json_decref it on every path */
    if (req->body_len == 0)
        return sl__fail(st, SL_EJSON, "a JSON body is required");
    *out = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return sl__fail(st, SL_EJSON, "the body must be a JSON object");
    }
    return SL_OK;
}

int sl__is_pattern(const char *s)
{
    return sl_pattern_valid(s, strlen(s));
}

int sl__is_name(const char *s)
{
    return sl_principal_valid(s, strlen(s));
}

/* The array body[key] as a new array of borrowed strings (valid while body lives; the caller frees
 * the array). Absent or null: *out NULL, *n 0, unless required. Every element must be a string
 * passing ok (when given); at most max of them. */
int sl__string_list(json_t *body, const char *key, size_t max, int required,
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
        return sl__fail(st, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++)
        if ((v[i] = json_string_value(json_array_get(arr, i))) == NULL || (ok && !ok(v[i]))) {
            free(v);
            return sl_status_set(st, SL_EINVAL, "%s must be an array of %s", key, what);
        }
    *out = v;
    *n = len;
    return SL_OK;
}

int sl__get_count(json_t *o, const char *key, size_t *out, sl_status *st)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return sl_status_set(st, SL_EINVAL, "%s must be a non-negative integer", key);
    *out = (size_t)json_integer_value(v);
    return 1;
}

int sl__get_seconds(json_t *o, const char *key, double *out, sl_status *st)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 || !isfinite(json_number_value(v)))
        return sl_status_set(st, SL_EINVAL, "%s must be a non-negative number", key);
    *out = json_number_value(v);
    return 1;
}

int sl__get_string(json_t *o, const char *key, const char **out, sl_status *st)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return sl_status_set(st, SL_EINVAL, "%s must be a string", key);
    /* a NUL inside would cut the string short for every C caller: "read\u0000x" is not "read" */
    if (json_string_length(v) != strlen(json_string_value(v)))
        return sl_status_set(st, SL_EINVAL, "%s must be a string without NUL bytes", key);
    *out = json_string_value(v);
    return 1;
}

/* sl__get_string under the envelope's own message (bounded: the channel API will hold the value
 * to 1..SL__ENVELOPE_FIELD_MAX bytes, and the message says so); the message is written only on
 * a failure. */
static int envelope_string(json_t *o, const char *key, const char **out, int bounded, sl_status *st)
{
    if (sl__get_string(o, key, out, st) >= 0)
        return SL_OK;
    return bounded ? sl_status_set(st, SL_EINVAL, "%s must be a string of 1..%d bytes", key,
                                   SL__ENVELOPE_FIELD_MAX)
                   : sl_status_set(st, SL_EINVAL, "%s must be a string", key);
}

int sl__envelope_fields(json_t *o, sl_write *w, sl_status *st)
{
    if (envelope_string(o, "correlation_id", &w->correlation_id, 1, st) ||
        envelope_string(o, "reply_to", &w->reply_to, 1, st) ||
        envelope_string(o, "recipient_id", &w->recipient_id, 1, st) ||
        envelope_string(o, "idempotency_key", &w->idempotency_key, 0, st))
        return SL_EINVAL;
    if (sl__get_seconds(o, "delay", &w->delay, st) < 0 ||
        sl__get_seconds(o, "not_before", &w->not_before, st) < 0 ||
        sl__get_seconds(o, "ttl", &w->ttl, st) < 0)
        return SL_EINVAL;
    return SL_OK;
}

int sl__only_fields(json_t *body, const char *const *allowed, sl_status *st)
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

json_t *sl__string_array(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

int sl__get_ttl(json_t *body, const char *key, double *ttl, sl_status *st)
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
