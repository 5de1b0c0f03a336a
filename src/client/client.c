/* The remote ChannelClient: each sl_client_* call becomes one HTTP request on the client's single
 * libcurl easy handle (so the keep-alive connection is reused between calls), and each reply is
 * turned back into the types and sl_errno codes of the in-process API. The token only ever goes
 * into the Authorization header: error texts come from the server or from libcurl, are scrubbed of
 * control characters (they end up on terminals) and have any echo of the token redacted. Redirects
 * are not followed, so a token cannot be carried to another host. */
#include "client/client_internal.h"
#include "core/jsonspan.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include <sluice/httpsig.h>

#define DEFAULT_TIMEOUT_MS 30000L
#define MAX_CONNECT_TIMEOUT_MS 10000L
/* A read returns at most 1000 messages of at most 1 MiB each; anything beyond this is not a sluice
 * reply and would only exhaust memory. */
#define MAX_RESPONSE ((size_t)256 << 20)

typedef struct route {
    char *channel; /* NULL for the default route */
    char *url;     /* without trailing '/' */
    char *token;   /* NULL: anonymous */
} route;

struct sl_client {
    CURL *curl;
    char *user_agent;
    long timeout_ms;
    long last_status;
    route *routes;
    size_t nroutes, cap;
    route def;
    int has_def;
    /* signing (sl_client_set_signer): the key is owned and wiped */
    int signing;
    sl_httpsig_signer signer;
    char *sign_keyid, *sign_key;
    size_t sign_key_len;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- small helpers --------------------------------------------------------------------------- */

static void wipe_free(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = '\0';
        free(s);
    }
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int nomem(sl_status *st)
{
    return sl_status_set(st, SL_ENOMEM, "out of memory");
}

static int malformed(sl_status *st, const char *what)
{
    return sl_status_set(st, SL_EIO, "malformed response from server (%s)", what);
}

/* Bearer tokens are base64url/JWT text; anything outside visible ASCII could split the header. */
static int token_ok(const char *t)
{
    if (t == NULL)
        return 1;
    if (*t == '\0')
        return 0;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return 0;
    return 1;
}

static int url_ok(const char *u)
{
    if (u == NULL || (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0))
        return 0;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* Replaces control bytes (terminal escapes from a hostile server) and redacts the token. */
static void scrub(char *msg, const char *token)
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

long sl__client_pct_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
                    *p == ':';
        if (o + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return (long)o;
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
        scrub(st->message, token);
    return code;
}

/* ---- parsing replies ------------------------------------------------------------------------- */

static json_t *load_object(const char *body, size_t len)
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

static size_t opt_size(json_t *o, const char *key)
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
    json_t *o = load_object(body, len);
    json_t *arr = json_object_get(o, "messages");
    if (!json_is_array(arr)) {
        json_decref(o);
        return malformed(st, "expected {\"messages\":[...]}");
    }
    size_t n = json_array_size(arr);
    out->items = calloc(n ? n : 1, sizeof *out->items);
    if (out->items == NULL) {
        json_decref(o);
        return nomem(st);
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
            return malformed(st, "bad message");
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
    size_t att = opt_size(opts, "max_attempts");
    c->max_attempts = att > UINT32_MAX ? UINT32_MAX : (unsigned)att;
    c->max_messages = opt_size(opts, "max_messages");
    c->retention_max_count = opt_size(opts, "retention_max_count");
    c->retention_max_age = opt_number(opts, "retention_max_age");
    c->dedup_window = opt_number(opts, "dedup_window");
    c->cursor_idle_timeout = opt_number(opts, "cursor_idle_timeout");
    json_t *bo = json_object_get(opts, "backoff");
    for (size_t i = 0; json_is_array(bo) && i < json_array_size(bo) && i < SL_BACKOFF_MAX; i++) {
        json_t *v = json_array_get(bo, i);
        c->backoff[i] = json_is_number(v) ? json_number_value(v) : 0;
        c->nbackoff = i + 1;
    }
    c->depth = opt_size(j, "depth");
    if (opt_string(j, "id", &c->id) < 0 || opt_string(j, "name", &c->name) < 0 ||
        opt_string(j, "description", &c->description) < 0 ||
        opt_string(opts, "dead_letter", &c->dead_letter) < 0)
        return -1;
    return 0;
}

int sl__client_parse_info(const char *body, size_t len, sl_channel_info *out, sl_status *st)
{
    json_t *o = load_object(body, len);
    int bad = info_from_json(o, out);
    json_decref(o);
    if (bad) {
        sl_channel_info_clear(out);
        memset(out, 0, sizeof *out);
        return malformed(st, "bad channel info");
    }
    return SL_OK;
}

int sl__client_parse_infos(const char *body, size_t len, sl_channel_info **out, size_t *n,
                           sl_status *st)
{
    *out = NULL;
    *n = 0;
    json_t *o = load_object(body, len);
    json_t *arr = json_object_get(o, "channels");
    if (!json_is_array(arr)) {
        json_decref(o);
        return malformed(st, "expected {\"channels\":[...]}");
    }
    size_t cnt = json_array_size(arr);
    sl_channel_info *infos = calloc(cnt ? cnt : 1, sizeof *infos);
    if (infos == NULL) {
        json_decref(o);
        return nomem(st);
    }
    for (size_t i = 0; i < cnt; i++) {
        if (info_from_json(json_array_get(arr, i), &infos[i]) < 0) {
            sl_channel_infos_free(infos, i + 1);
            json_decref(o);
            return malformed(st, "bad channel info");
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
    json_t *o = load_object(body, len);
    json_t *arr = json_object_get(o, "entries");
    if (!json_is_array(arr)) {
        json_decref(o);
        return malformed(st, "expected {\"entries\":[...]}");
    }
    size_t cnt = json_array_size(arr);
    sl_acl_entry *es = calloc(cnt ? cnt : 1, sizeof *es);
    if (es == NULL) {
        json_decref(o);
        return nomem(st);
    }
    for (size_t i = 0; i < cnt; i++) {
        if (acl_from_json(json_array_get(arr, i), &es[i]) < 0) {
            sl_acl_entries_free(es, i + 1);
            json_decref(o);
            return malformed(st, "bad ACL entry");
        }
    }
    json_decref(o);
    *out = es;
    *n = cnt;
    return SL_OK;
}

/* ---- the client ------------------------------------------------------------------------------ */

int sl_client_new(sl_client **out, const char *system_id)
{
    *out = NULL;
    sl_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    const char *sys = system_id && *system_id ? system_id : "sluice-client";
    size_t n = strlen(sys) + 32;
    c->user_agent = malloc(n);
    if (c->user_agent == NULL) {
        free(c);
        return SL_ENOMEM;
    }
    /* Only printable ASCII may go into a header; anything else is dropped. */
    size_t o = (size_t)snprintf(c->user_agent, n, "sluice-client/0.1 (");
    for (const unsigned char *p = (const unsigned char *)sys; *p && o + 2 < n; p++)
        if (*p >= 0x20 && *p < 0x7f && *p != '(' && *p != ')')
            c->user_agent[o++] = (char)*p;
    c->user_agent[o++] = ')';
    c->user_agent[o] = '\0';
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    if ((c->curl = curl_easy_init()) == NULL) {
        free(c->user_agent);
        free(c);
        return SL_EINTERNAL;
    }
    *out = c;
    return SL_OK;
}

static void route_clear(route *r)
{
    free(r->channel);
    free(r->url);
    wipe_free(r->token);
    memset(r, 0, sizeof *r);
}

static void signer_clear(sl_client *c)
{
    if (c->sign_key) {
        OPENSSL_cleanse(c->sign_key, c->sign_key_len);
        free(c->sign_key);
    }
    free(c->sign_keyid);
    c->sign_key = c->sign_keyid = NULL;
    c->sign_key_len = 0;
    c->signing = 0;
    sl_httpsig_signer_clear(&c->signer);
    memset(&c->signer, 0, sizeof c->signer);
}

int sl_client_set_signer(sl_client *c, const sl_httpsig_signer *s, sl_status *st)
{
    signer_clear(c);
    if (s == NULL)
        return SL_OK;
    if (s->keyid == NULL || *s->keyid == '\0' || s->key == NULL || s->key_len == 0 ||
        s->alg < SL_HTTPSIG_HMAC_SHA256 || s->alg > SL_HTTPSIG_ECDSA_P256_SHA256)
        return sl_status_set(st, SL_EINVAL, "a signer needs a keyid, an algorithm and a key");
    /* One trial signature: a key that cannot sign is reported now, not on every request. */
    sl_httpsig_headers h;
    int rc = sl_httpsig_sign(s, "GET", "http", "localhost", "/", NULL, NULL, 0, 0, &h, st);
    sl_httpsig_headers_clear(&h);
    if (rc != SL_OK)
        return rc;
    c->sign_keyid = strdup(s->keyid);
    c->sign_key = malloc(s->key_len + 1);
    if (c->sign_keyid == NULL || c->sign_key == NULL) {
        free(c->sign_keyid);
        free(c->sign_key);
        c->sign_keyid = c->sign_key = NULL;
        return nomem(st);
    }
    memcpy(c->sign_key, s->key, s->key_len);
    c->sign_key[s->key_len] = '\0';
    c->sign_key_len = s->key_len;
    c->signer.keyid = c->sign_keyid;
    c->signer.alg = s->alg;
    c->signer.key = c->sign_key;
    c->signer.key_len = s->key_len;
    if ((rc = sl_httpsig_signer_load(&c->signer, st)) != SL_OK) {
        signer_clear(c);
        return rc;
    }
    c->signing = 1;
    return SL_OK;
}

void sl_client_free(sl_client *c)
{
    if (c == NULL)
        return;
    signer_clear(c);
    curl_easy_cleanup(c->curl);
    for (size_t i = 0; i < c->nroutes; i++)
        route_clear(&c->routes[i]);
    free(c->routes);
    route_clear(&c->def);
    free(c->user_agent);
    free(c);
}

void sl_client_set_timeout_ms(sl_client *c, long ms)
{
    c->timeout_ms = ms < 0 ? 0 : ms;
}

long sl_client_last_http_status(const sl_client *c)
{
    return c->last_status;
}

static int check_remote(const char *url, const char *token, sl_status *st)
{
    if (!url_ok(url))
        return sl_status_set(st, SL_EINVAL, "server URL must start with http:// or https://");
    if (!token_ok(token))
        return sl_status_set(st, SL_EINVAL,
                             "token is empty or has characters not allowed in a header");
    return SL_OK;
}

static int route_set(route *r, const char *channel, const char *url, const char *token)
{
    route n = {0};
    n.channel = dup_or_null(channel);
    n.url = strdup(url);
    n.token = dup_or_null(token);
    if ((channel && !n.channel) || !n.url || (token && !n.token)) {
        route_clear(&n);
        return SL_ENOMEM;
    }
    size_t l = strlen(n.url);
    while (l > 0 && n.url[l - 1] == '/')
        n.url[--l] = '\0';
    route_clear(r);
    *r = n;
    return SL_OK;
}

int sl_client_connect_remote(sl_client *c, const char *channel_id, const char *url,
                             const char *token, sl_status *st)
{
    if (channel_id && !sl_channel_id_valid(channel_id, strlen(channel_id)))
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    int rc = check_remote(url, token, st);
    if (rc != SL_OK)
        return rc;
    if (channel_id == NULL) {
        if (route_set(&c->def, NULL, url, token) != SL_OK)
            return nomem(st);
        c->has_def = 1;
        return SL_OK;
    }
    for (size_t i = 0; i < c->nroutes; i++)
        if (!strcmp(c->routes[i].channel, channel_id))
            return route_set(&c->routes[i], channel_id, url, token) == SL_OK ? SL_OK : nomem(st);
    if (c->nroutes == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        route *r = realloc(c->routes, cap * sizeof *r);
        if (r == NULL)
            return nomem(st);
        c->routes = r;
        c->cap = cap;
    }
    route *r = &c->routes[c->nroutes];
    memset(r, 0, sizeof *r);
    if (route_set(r, channel_id, url, token) != SL_OK)
        return nomem(st);
    c->nroutes++;
    return SL_OK;
}

static const route *route_for(const sl_client *c, const char *channel)
{
    for (size_t i = 0; i < c->nroutes; i++)
        if (!strcmp(c->routes[i].channel, channel))
            return &c->routes[i];
    return c->has_def ? &c->def : NULL;
}

/* ---- one HTTP exchange ----------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    int overflow;
} buf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t n = size * nmemb;
    if (n > MAX_RESPONSE - b->len) {
        b->overflow = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

typedef struct req {
    const char *base;  /* server URL, no trailing '/' */
    const char *token; /* NULL: none */
    const char *method;
    const char *path;  /* already encoded, starts with '/' */
    const char *query; /* NULL or "a=b&c=d", already encoded */
    const char *body;  /* NULL: no body */
    size_t body_len;
} req;

static int transport_error(CURLcode cc, const char *errbuf, buf *b, sl_status *st)
{
    const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(cc);
    int code;
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        code = SL_ETIMEOUT;
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        code = SL_EINVAL;
        break;
    case CURLE_OUT_OF_MEMORY:
        code = SL_ENOMEM;
        break;
    case CURLE_WRITE_ERROR:
        if (b->overflow)
            return sl_status_set(st, SL_ETOOBIG, "response from server too large");
        code = SL_ENOMEM;
        break;
    default:
        code = SL_EUNAVAIL;
    }
    sl_status_set(st, code, "cannot reach server: %s", why);
    if (st)
        scrub(st->message, NULL);
    return code;
}

/* The signature headers of one request to url (the whole URL: scheme, authority, path, query),
 * appended to *h as "Name: value" lines, Host included. */
static int sign_request(sl_client *c, const char *url, const req *q, struct curl_slist **h,
                        sl_status *st)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return sl_status_set(st, SL_EINVAL, "cannot sign a request to this url");
    char scheme[8];
    size_t sl = (size_t)(sep - url);
    if (sl >= sizeof scheme)
        return sl_status_set(st, SL_EINVAL, "cannot sign a request to this url");
    memcpy(scheme, url, sl);
    scheme[sl] = '\0';
    const char *auth = sep + 3;
    size_t al = strcspn(auth, "/?#");
    const char *path = auth + al;
    size_t pl = strcspn(path, "?#");
    char *authority = strndup(auth, al);
    char *p = strndup(path, pl);
    int rc = authority && p ? SL_OK : nomem(st);
    sl_httpsig_headers sh;
    memset(&sh, 0, sizeof sh);
    if (rc == SL_OK)
        rc = sl_httpsig_sign(&c->signer, q->method, scheme, authority, *p ? p : "/", q->query,
                             q->body, q->body ? q->body_len : 0, (double)time(NULL), &sh, st);
    const char *names[] = {"Host", "Content-Digest", "Signature-Input", "Signature"};
    const char *values[] = {authority, sh.content_digest, sh.signature_input, sh.signature};
    for (size_t i = 0; rc == SL_OK && i < 4; i++) {
        if (values[i] == NULL)
            continue;
        size_t n = strlen(names[i]) + strlen(values[i]) + 3;
        char *line = malloc(n);
        struct curl_slist *t = NULL;
        if (line) {
            snprintf(line, n, "%s: %s", names[i], values[i]);
            t = curl_slist_append(*h, line);
            free(line);
        }
        if (t == NULL)
            rc = nomem(st);
        else
            *h = t;
    }
    sl_httpsig_headers_clear(&sh);
    free(authority);
    free(p);
    return rc;
}

/* Performs the request. SL_OK for a 2xx reply, whose body (NUL-terminated, possibly empty) is left
 * in *resp for the caller to free; otherwise the mapped error and *resp is empty. */
static int perform(sl_client *c, const req *q, buf *resp, sl_status *st)
{
    memset(resp, 0, sizeof *resp);
    c->last_status = 0;
    size_t ulen = strlen(q->base) + strlen(q->path) + (q->query ? strlen(q->query) + 1 : 0) + 1;
    char *url = malloc(ulen);
    if (url == NULL)
        return nomem(st);
    snprintf(url, ulen, "%s%s%s%s", q->base, q->path, q->query ? "?" : "",
             q->query ? q->query : "");

    struct curl_slist *h = NULL, *t;
    char *auth = NULL;
    int rc = SL_OK;
    if (q->token) {
        size_t alen = strlen(q->token) + 32;
        if ((auth = malloc(alen)) == NULL) {
            free(url);
            return nomem(st);
        }
        snprintf(auth, alen, "Authorization: Bearer %s", q->token);
    }
    /* "Expect:" stops libcurl from waiting for 100-continue on larger bodies. */
    const char *fixed[] = {"Accept: application/json",
                           "Expect:", q->body ? "Content-Type: application/json" : NULL, auth};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (fixed[i] == NULL)
            continue;
        if ((t = curl_slist_append(h, fixed[i])) == NULL) {
            rc = nomem(st);
            break;
        }
        h = t;
    }
    wipe_free(auth);
    if (rc == SL_OK && c->signing)
        rc = sign_request(c, url, q, &h, st);
    if (rc != SL_OK) {
        curl_slist_free_all(h);
        free(url);
        return rc;
    }

    CURL *e = c->curl;
    /* reset keeps the connection cache, so keep-alive survives between calls. */
    curl_easy_reset(e);
    c->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    long cto = c->timeout_ms > 0 && c->timeout_ms < MAX_CONNECT_TIMEOUT_MS ? c->timeout_ms
                                                                           : MAX_CONNECT_TIMEOUT_MS;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cto);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    if (q->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
        if (strcmp(q->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
    } else if (strcmp(q->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
    }

    CURLcode cc = curl_easy_perform(e);
    /* The handle must not keep pointers to memory freed below. */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(h);
    free(url);
    if (cc != CURLE_OK) {
        rc = transport_error(cc, c->errbuf, resp, st);
    } else {
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        c->last_status = status;
        if (status < 200 || status > 299)
            rc = sl__client_http_error(status, resp->p, resp->len, q->token, st);
    }
    if (rc != SL_OK) {
        free(resp->p);
        memset(resp, 0, sizeof *resp);
        return rc;
    }
    if (resp->p == NULL && (resp->p = calloc(1, 1)) == NULL)
        return nomem(st);
    sl_status_clear(st);
    return SL_OK;
}

/* A per-channel request: route lookup, id check, path "/channels/<id><suffix>". */
static int channel_call(sl_client *c, const char *channel, const char *method, const char *suffix,
                        const char *query, const char *body, size_t body_len, buf *resp,
                        sl_status *st)
{
    if (channel == NULL || !sl_channel_id_valid(channel, strlen(channel)))
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    const route *r = route_for(c, channel);
    if (r == NULL)
        return sl_status_set(st, SL_ENOENT,
                             "channel '%s' is not connected to a server "
                             "(call sl_client_connect_remote first)",
                             channel);
    char enc[3 * SL_CHANNEL_ID_MAX + 1], path[sizeof enc + 32];
    if (sl__client_pct_encode(channel, enc, sizeof enc) < 0)
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    snprintf(path, sizeof path, "/channels/%s%s", enc, suffix);
    req q = {r->url, r->token, method, path, query, body, body_len};
    return perform(c, &q, resp, st);
}

static int server_call(sl_client *c, const char *url, const char *token, const char *method,
                       const char *path, const char *body, size_t body_len, buf *resp,
                       sl_status *st)
{
    int rc = check_remote(url, token, st);
    if (rc != SL_OK)
        return rc;
    size_t l = strlen(url);
    char *base = strdup(url);
    if (base == NULL)
        return nomem(st);
    while (l > 0 && base[l - 1] == '/')
        base[--l] = '\0';
    req q = {base, token, method, path, NULL, body, body_len};
    rc = perform(c, &q, resp, st);
    free(base);
    return rc;
}

/* Reads an unsigned count field of a {"status":"ok",...} reply into *count (may be NULL). */
static int reply_count(buf *b, const char *field, size_t *count, sl_status *st)
{
    json_t *o = load_object(b->p, b->len);
    json_t *v = json_object_get(o, field);
    int ok = json_is_integer(v) && json_integer_value(v) >= 0;
    if (ok && count)
        *count = (size_t)json_integer_value(v);
    json_decref(o);
    free(b->p);
    return ok ? SL_OK : malformed(st, field);
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
    int rc = channel_call(c, channel, "PUT", "", NULL, json_data, strlen(json_data), &b, st);
    if (rc != SL_OK)
        return rc;
    json_t *o = load_object(b.p, b.len);
    const char *id = json_string_value(json_object_get(o, "item_id"));
    if (id == NULL)
        rc = malformed(st, "item_id");
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
    int rc = channel_call(c, channel, "GET", "", query, NULL, 0, &b, st);
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
        return nomem(st);
    buf b;
    int rc = channel_call(c, channel, "POST", suffix, NULL, body, strlen(body), &b, st);
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
    int rc = channel_call(c, channel, "POST", "/batch", NULL, body.p, body.len, &b, st);
    free(body.p);
    if (rc != SL_OK)
        return rc;
    json_t *o = load_object(b.p, b.len);
    json_t *ids = json_object_get(o, "item_ids");
    if (!json_is_array(ids) || json_array_size(ids) != n) {
        rc = malformed(st, "item_ids");
    } else {
        for (size_t i = 0; item_ids && i < n; i++) {
            const char *id = json_string_value(json_array_get(ids, i));
            snprintf(item_ids[i], SL_ITEM_ID_SIZE, "%s", id ? id : "");
        }
        if (duplicates)
            *duplicates = opt_size(o, "duplicates");
    }
    json_decref(o);
    free(b.p);
    return rc;
}

int sl_client_info(sl_client *c, const char *channel, sl_channel_info *info, sl_status *st)
{
    memset(info, 0, sizeof *info);
    buf b;
    int rc = channel_call(c, channel, "GET", "/info", NULL, NULL, 0, &b, st);
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
        return nomem(st);
    const route *r = route_for(c, channel);
    int rc;
    buf b;
    if (r == NULL)
        rc = sl_status_set(st, SL_ENOENT, "channel '%s' is not connected to a server", channel);
    else
        rc = server_call(c, r->url, r->token, "POST", "/channels", body, strlen(body), &b, st);
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
    int rc = channel_call(c, channel, "DELETE", "", NULL, NULL, 0, &b, st);
    if (rc == SL_OK)
        free(b.p);
    return rc;
}

int sl_client_clear(sl_client *c, const char *channel, size_t *count, sl_status *st)
{
    if (count)
        *count = 0;
    buf b;
    int rc = channel_call(c, channel, "DELETE", "/messages", NULL, NULL, 0, &b, st);
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
        return nomem(st);
    buf b;
    int rc = channel_call(c, channel, "POST", "/evict", NULL, body, strlen(body), &b, st);
    free(body);
    return rc == SL_OK ? reply_count(&b, "evicted", count, st) : rc;
}

/* ---- server-level calls ---------------------------------------------------------------------- */

int sl_client_health(sl_client *c, const char *url, const char *token, sl_status *st)
{
    buf b;
    int rc = server_call(c, url, token, "GET", "/healthz", NULL, 0, &b, st);
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
    int rc = server_call(c, url, token, "GET", "/channels", NULL, 0, &b, st);
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
        return nomem(st);
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
        return nomem(st);
    buf b;
    rc = server_call(c, url, token, "PUT", path, body, strlen(body), &b, st);
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
        return nomem(st);
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
    int rc = server_call(c, url, token, "GET", "/policy/invoke", NULL, 0, &b, st);
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
        return nomem(st);
    buf b;
    rc = server_call(c, url, token, "PUT", path, body, strlen(body), &b, st);
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
    rc = server_call(c, url, token, "DELETE", path, NULL, 0, &b, st);
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
    rc = server_call(c, url, token, "DELETE", path, NULL, 0, &b, st);
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
    int rc = server_call(c, url, token, "GET", "/acl", NULL, 0, &b, st);
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
    int rc = server_call(c, url, token, "GET", path, NULL, 0, &b, st);
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
    int rc = server_call(c, url, token, "POST", path, body, strlen(body), &b, st);
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
