/* The remote ChannelClient: each sl_client_* call becomes one HTTP request on the client's single
 * libcurl easy handle (so the keep-alive connection is reused between calls), and each reply is
 * turned back into the types and sl_errno codes of the in-process API. The token only ever goes
 * into the Authorization header: error texts come from the server or from libcurl, are scrubbed of
 * control characters (they end up on terminals) and have any echo of the token redacted. Redirects
 * are not followed, so a token cannot be carried to another host. This file holds the client
 * object and the one HTTP exchange; the calls are in client_calls.c and what replies mean in
 * client_reply.c. */
#include "client/client_internal.h"

#include <curl/curl.h>
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
        return sl__client_nomem(st);
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
            return sl__client_nomem(st);
        c->has_def = 1;
        return SL_OK;
    }
    for (size_t i = 0; i < c->nroutes; i++)
        if (!strcmp(c->routes[i].channel, channel_id))
            return route_set(&c->routes[i], channel_id, url, token) == SL_OK ? SL_OK
                                                                             : sl__client_nomem(st);
    if (c->nroutes == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        route *r = realloc(c->routes, cap * sizeof *r);
        if (r == NULL)
            return sl__client_nomem(st);
        c->routes = r;
        c->cap = cap;
    }
    route *r = &c->routes[c->nroutes];
    memset(r, 0, sizeof *r);
    if (route_set(r, channel_id, url, token) != SL_OK)
        return sl__client_nomem(st);
    c->nroutes++;
    return SL_OK;
}

const route *sl__client_route_for(const sl_client *c, const char *channel)
{
    for (size_t i = 0; i < c->nroutes; i++)
        if (!strcmp(c->routes[i].channel, channel))
            return &c->routes[i];
    return c->has_def ? &c->def : NULL;
}

/* ---- one HTTP exchange ----------------------------------------------------------------------- */

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
        sl__client_scrub(st->message, NULL);
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
    int rc = authority && p ? SL_OK : sl__client_nomem(st);
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
            rc = sl__client_nomem(st);
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
        return sl__client_nomem(st);
    snprintf(url, ulen, "%s%s%s%s", q->base, q->path, q->query ? "?" : "",
             q->query ? q->query : "");

    struct curl_slist *h = NULL, *t;
    char *auth = NULL;
    int rc = SL_OK;
    if (q->token) {
        size_t alen = strlen(q->token) + 32;
        if ((auth = malloc(alen)) == NULL) {
            free(url);
            return sl__client_nomem(st);
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
            rc = sl__client_nomem(st);
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
        return sl__client_nomem(st);
    sl_status_clear(st);
    return SL_OK;
}

/* A per-channel request: route lookup, id check, path "/channels/<id><suffix>". */
int sl__client_channel_call(sl_client *c, const char *channel, const char *method,
                            const char *suffix, const char *query, const char *body,
                            size_t body_len, buf *resp, sl_status *st)
{
    if (channel == NULL || !sl_channel_id_valid(channel, strlen(channel)))
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    const route *r = sl__client_route_for(c, channel);
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

int sl__client_server_call(sl_client *c, const char *url, const char *token, const char *method,
                           const char *path, const char *body, size_t body_len, buf *resp,
                           sl_status *st)
{
    int rc = check_remote(url, token, st);
    if (rc != SL_OK)
        return rc;
    size_t l = strlen(url);
    char *base = strdup(url);
    if (base == NULL)
        return sl__client_nomem(st);
    while (l > 0 && base[l - 1] == '/')
        base[--l] = '\0';
    req q = {base, token, method, path, NULL, body, body_len};
    rc = perform(c, &q, resp, st);
    free(base);
    return rc;
}
