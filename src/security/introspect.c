/* The RFC 7662 introspection authenticator: libcurl's multi interface driven by the server's libuv
 * loop (src/net/curl_uv.c, shared with the JWKS client), an answer cache keyed by the SHA-256 of
 * the token (introspect_cache.c; introspect_internal.h holds the struct both files use), and a
 * table of requests in flight so that concurrent calls for one token share one request. Every way
 * the endpoint can fail to give a well-formed answer ends in SL_EUNAVAIL, which is never cached; a
 * well-formed answer (active or not) is cached for at most the configured ttl and never past the
 * token's exp.
 *
 * Lifetime: a request (ireq) is owned by the in-flight list until curl reports it done; it is
 * detached from curl and the list before any of its callbacks run, so a callback may start new
 * requests or free the authenticator. User callbacks never run inside a curl callback: they run
 * after curl_multi_socket_action has returned, or from authenticate itself. Freeing closes the
 * curl driver, which stops delivering finished transfers at once, so the struct can go with it. */
#include <sluice/introspect.h>

#include "net/curl_uv.h"
#include "security/introspect_internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Reasons are fixed texts: nothing the endpoint sent, nothing of the token. */
static const char R_BADTOKEN[] = "invalid token";
static const char R_INACTIVE[] = "token inactive";
static const char R_NOSUB[] = "token has no valid subject";
static const char R_BADCLAIM[] = "token has malformed claims";
static const char R_EXPIRED[] = "token expired";
static const char R_UNAVAIL[] = "introspection endpoint unavailable";
static const char R_BUSY[] = "too many introspection requests";
static const char R_CLOSED[] = "introspection closed";
static const char R_NOMEM[] = "out of memory";

typedef struct waiter {
    sl_introspect_cb cb;
    void *ud;
    struct waiter *next;
} waiter;

typedef struct ireq {
    sl_introspect *i;
    struct ireq *prev, *next;
    uint8_t key[KEY_LEN];
    CURL *easy;
    waiter *head, **tail;
    char *body; /* the form, with the token: wiped before it is freed */
    size_t body_len, body_cap;
    char *resp;
    size_t resp_len, resp_cap;
} ireq;

typedef sl__introspect_result result;
static void workspace_of(const sl_introspect *i, result *r);

/* ---- small helpers -------------------------------------------------------------------------- */

static double now_of(const sl_introspect *i)
{
    return i->clock(i->clock_ud);
}

static void logf_(sl_introspect *i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(sl_introspect *i, const char *fmt, ...)
{
    if (i->log == NULL)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    i->log(i->log_ud, line);
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-encodes src into dst (room for 3 * len bytes); returns the bytes written. Encoding every
 * reserved byte is valid application/x-www-form-urlencoded and leaves nothing to interpretation. */
static size_t pct_encode(char *dst, const char *src, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)src[k];
        if (is_unreserved(c)) {
            dst[n++] = (char)c;
        } else {
            dst[n++] = '%';
            dst[n++] = hex[c >> 4];
            dst[n++] = hex[c & 15];
        }
    }
    return n;
}

static void wipe_free(void *p, size_t len)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}

static void wipe_str(char *s)
{
    if (s != NULL)
        wipe_free(s, strlen(s));
}

/* Bearer tokens are b64token-ish (RFC 6750): printable ASCII without space. Anything else cannot
 * be a token the endpoint issued, so it is not worth a round trip. */
static int token_plausible(const char *t, size_t len)
{
    if (t == NULL || len == 0 || len > SL_INTROSPECT_TOKEN_MAX)
        return 0;
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)t[k] < 0x21 || (unsigned char)t[k] > 0x7e)
            return 0;
    return 1;
}

static int jti_valid(const char *s, size_t len)
{
    if (len == 0 || len > SL_TOKEN_ID_MAX)
        return 0;
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)s[k] < 0x21 || (unsigned char)s[k] > 0x7e)
            return 0;
    return 1;
}

/* The caller an answer vouches for; its scope may narrow it (sl_identity_apply_scope). The
 * identity may own channel patterns: the caller clears it. */
static int identity_of(sl_identity *who, const char *sub, const char *jti, double iat, double exp,
                       const char *scope, size_t scope_len)
{
    sl_identity_init(who);
    snprintf(who->principal, sizeof who->principal, "%s", sub);
    snprintf(who->token_id, sizeof who->token_id, "%s", jti);
    who->source = SL_SOURCE_INTROSPECTION;
    who->role = SL_ROLE_NONE;
    who->issued_at = iat;
    who->expires_at = exp;
    return sl_identity_apply_scope(who, scope, scope ? scope_len : 0);
}

/* ---- judging an answer ---------------------------------------------------------------------- */

static void fail(result *r, const char *reason)
{
    r->status = SL_EUNAVAIL;
    r->reason = reason;
    r->cacheable = 0;
}

static void refuse(result *r, int status, const char *reason, double until)
{
    r->status = status;
    r->reason = reason;
    r->cacheable = 1;
    r->until = until;
}

/* An optional numeric claim: 1 absent, 0 present but not a finite number, 2 present. */
static int num_claim(json_t *obj, const char *name, double *out)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL)
        return 1;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return 0;
    *out = json_number_value(v);
    return 2;
}

/* Fills r from a completed transfer; *why gets a log detail for failures (static text). */
static void judge(sl_introspect *i, ireq *q, CURLcode res, long code, result *r, char *why,
                  size_t whylen)
{
    memset(r, 0, sizeof *r);
    if (res != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(res));
        fail(r, R_UNAVAIL);
        return;
    }
    if (code != 200) {
        /* RFC 7662 answers every token, even a bad one, with 200: anything else is the endpoint
         * refusing us (credentials, configuration) or failing, and says nothing about the token. */
        snprintf(why, whylen, "HTTP %ld", code);
        fail(r, R_UNAVAIL);
        return;
    }
    const char *detail = NULL;
    sl__introspect_judge_body(q->resp ? q->resp : "", q->resp_len, now_of(i), i->ttl, r, &detail);
    if (detail != NULL)
        snprintf(why, whylen, "%s", detail);
    workspace_of(i, r);
}

/* The workspace the configured member of an accepted answer names (r->doc); a member
 * that is not a workspace name refuses the token, for as long as the answer would be cached. */
static void workspace_of(const sl_introspect *i, result *r)
{
    const json_t *v =
        i->ws_claim && r->status == SL_OK && r->doc ? json_object_get(r->doc, i->ws_claim) : NULL;
    if (v == NULL)
        return;
    if (json_is_string(v) && sl_workspace_valid(json_string_value(v), json_string_length(v))) {
        memcpy(r->who.workspace, json_string_value(v), json_string_length(v) + 1);
        return;
    }
    sl_identity_clear(&r->who);
    r->scope = NULL;
    r->status = SL_ETOKEN;
    r->reason = R_BADCLAIM;
}

void sl__introspect_judge_body(const char *body, size_t len, double now, double ttl, result *r,
                               const char **why)
{
    memset(r, 0, sizeof *r);
    /* Duplicate keys are rejected: {"active":false,"active":true} must not be read either way. */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *active = json_is_object(root) ? json_object_get(root, "active") : NULL;
    if (!json_is_boolean(active)) {
        *why = "malformed answer";
        fail(r, R_UNAVAIL);
        json_decref(root);
        return;
    }
    double until = now + ttl;
    if (json_is_false(active)) {
        refuse(r, SL_ETOKEN, R_INACTIVE, until);
        json_decref(root);
        return;
    }
    double exp = 0, iat = 0;
    int has_exp = num_claim(root, "exp", &exp);
    int has_iat = num_claim(root, "iat", &iat);
    json_t *sub = json_object_get(root, "sub");
    json_t *jti = json_object_get(root, "jti");
    json_t *scope = json_object_get(root, "scope");
    if (has_exp == 0 || has_iat == 0 || (scope && !json_is_string(scope))) {
        refuse(r, SL_ETOKEN, R_BADCLAIM, until);
    } else if (!json_is_string(sub) || json_string_length(sub) > SL_PRINCIPAL_MAX ||
               !sl_principal_valid(json_string_value(sub), json_string_length(sub))) {
        refuse(r, SL_ETOKEN, R_NOSUB, until);
    } else if (has_exp == 2 && exp <= now) {
        refuse(r, SL_EEXPIRED, R_EXPIRED, until);
    } else {
        const char *jtis = "";
        if (json_is_string(jti) && jti_valid(json_string_value(jti), json_string_length(jti)))
            jtis = json_string_value(jti);
        r->scope = scope ? json_string_value(scope) : NULL;
        r->scope_len = scope ? json_string_length(scope) : 0;
        int rc = identity_of(&r->who, json_string_value(sub), jtis, iat, has_exp == 2 ? exp : 0,
                             r->scope, r->scope_len);
        if (rc != SL_OK) {
            sl_identity_clear(&r->who);
            r->scope = NULL;
            if (rc == SL_ENOMEM)
                fail(r, R_NOMEM);
            else
                refuse(r, SL_ETOKEN, R_BADCLAIM, until);
        } else {
            r->status = SL_OK;
            r->reason = NULL;
            r->cacheable = 1;
            r->until = has_exp == 2 && exp < until ? exp : until;
        }
    }
    r->doc = root;
}

/* ---- requests ------------------------------------------------------------------------------- */

static void req_free(ireq *q)
{
    wipe_free(q->body, q->body_cap);
    wipe_free(q->resp, q->resp_cap);
    free(q);
}

/* Takes q out of curl and the in-flight list; afterwards only its waiters remain. */
static void req_detach(sl_introspect *i, ireq *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        i->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    i->ninflight--;
    if (q->easy != NULL) {
        sl__curl_uv_remove(i->cu, q->easy);
        curl_easy_cleanup(q->easy);
        q->easy = NULL;
    }
}

/* Calls every waiter of a detached request, then frees it. The callbacks may re-enter. */
static void req_deliver(ireq *q, int status, const sl_identity *who, const char *reason)
{
    waiter *w = q->head;
    q->head = NULL;
    while (w != NULL) {
        waiter *next = w->next;
        w->cb(w->ud, status, status == SL_OK ? who : NULL, status == SL_OK ? NULL : reason);
        free(w);
        w = next;
    }
    req_free(q);
}

static void complete(sl_introspect *i, ireq *q, CURLcode res, long code)
{
    result r;
    char why[128] = "";
    judge(i, q, res, code, &r, why, sizeof why);
    req_detach(i, q);
    if (r.status == SL_EUNAVAIL) {
        i->stats.failures++;
        if (!i->failing)
            logf_(i, "introspection: endpoint failing (%s)", why);
        i->failing = 1;
    } else {
        if (i->failing)
            logf_(i, "introspection: endpoint answering again");
        i->failing = 0;
        sl__introspect_cache_put(i, q->key, &r, now_of(i));
    }
    req_deliver(q, r.status, &r.who, r.reason);
    sl__introspect_result_clear(&r);
}

void sl__introspect_result_clear(result *r)
{
    sl_identity_clear(&r->who);
    json_decref(r->doc);
    r->doc = NULL;
    r->scope = NULL;
}

/* A transfer finished (curl_uv has taken it out of curl already). */
static void on_done(void *ud, CURL *e, CURLcode res)
{
    sl_introspect *i = ud;
    ireq *q = NULL;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&q);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    if (q == NULL)
        return;
    q->easy = NULL;
    complete(i, q, res, code);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    ireq *q = ud;
    size_t len = size * n;
    if (len > SL_INTROSPECT_RESPONSE_MAX - q->resp_len)
        return 0; /* too big for an introspection answer: curl fails the transfer */
    if (q->resp_len + len > q->resp_cap) {
        size_t cap = q->resp_cap ? q->resp_cap : 1024;
        while (cap < q->resp_len + len)
            cap *= 2;
        if (cap > SL_INTROSPECT_RESPONSE_MAX)
            cap = SL_INTROSPECT_RESPONSE_MAX;
        /* Not realloc: the old buffer may hold claims, so it is wiped rather than abandoned. */
        char *p = malloc(cap);
        if (p == NULL)
            return 0;
        if (q->resp_len)
            memcpy(p, q->resp, q->resp_len);
        wipe_free(q->resp, q->resp_cap);
        q->resp = p;
        q->resp_cap = cap;
    }
    memcpy(q->resp + q->resp_len, data, len);
    q->resp_len += len;
    return len;
}

static int start_easy(sl_introspect *i, ireq *q)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return SL_ENOMEM;
    int ok = 1;
#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_URL, i->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect would carry the token elsewhere */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, q->body); /* not copied: our buffer is wiped afterwards */
    SET(CURLOPT_POSTFIELDSIZE, (long)q->body_len);
    SET(CURLOPT_HTTPHEADER, i->headers);
    SET(CURLOPT_USERAGENT, "sluice");
    SET(CURLOPT_TIMEOUT_MS, i->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, i->connect_timeout_ms);
    SET(CURLOPT_MAXFILESIZE, (long)SL_INTROSPECT_RESPONSE_MAX);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, q);
    SET(CURLOPT_PRIVATE, q);
    if (i->ca_file != NULL)
        SET(CURLOPT_CAINFO, i->ca_file);
#undef SET
    if (!ok) {
        curl_easy_cleanup(e);
        return SL_EINTERNAL;
    }
    if (sl__curl_uv_add(i->cu, e) != SL_OK) {
        curl_easy_cleanup(e);
        return SL_EINTERNAL;
    }
    q->easy = e;
    return SL_OK;
}

static ireq *req_new(sl_introspect *i, const uint8_t *key, const char *token, size_t len)
{
    static const char pre[] = "token=", post[] = "&token_type_hint=access_token";
    ireq *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->i = i;
    memcpy(q->key, key, KEY_LEN);
    q->tail = &q->head;
    q->body_cap = sizeof pre - 1 + 3 * len + sizeof post;
    if ((q->body = malloc(q->body_cap)) == NULL) {
        free(q);
        return NULL;
    }
    size_t n = sizeof pre - 1;
    memcpy(q->body, pre, n);
    n += pct_encode(q->body + n, token, len);
    memcpy(q->body + n, post, sizeof post); /* with the NUL */
    q->body_len = n + sizeof post - 1;
    return q;
}

static int add_waiter(ireq *q, sl_introspect_cb cb, void *ud)
{
    waiter *w = malloc(sizeof *w);
    if (w == NULL)
        return 0;
    w->cb = cb;
    w->ud = ud;
    w->next = NULL;
    *q->tail = w;
    q->tail = &w->next;
    return 1;
}

void sl_introspect_authenticate(sl_introspect *i, const char *token, size_t len,
                                sl_introspect_cb cb, void *ud)
{
    if (cb == NULL)
        return;
    if (i == NULL || i->closing) {
        cb(ud, SL_EUNAVAIL, NULL, R_CLOSED);
        return;
    }
    if (!token_plausible(token, len)) {
        cb(ud, SL_ETOKEN, NULL, R_BADTOKEN);
        return;
    }
    uint8_t key[KEY_LEN];
    unsigned mdlen = 0;
    if (EVP_Digest(token, len, key, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != KEY_LEN) {
        cb(ud, SL_EUNAVAIL, NULL, R_UNAVAIL);
        return;
    }
    centry *e = sl__introspect_cache_get(i, key, now_of(i));
    if (e != NULL) {
        i->stats.hits++;
        if (e->status != SL_OK) {
            cb(ud, e->status, NULL, e->reason);
            return;
        }
        sl_identity who;
        if (identity_of(&who, e->sub, e->jti, e->iat, e->exp, e->scope, strlen(e->scope)) !=
            SL_OK) { /* the scope was valid when cached: only memory can fail here */
            sl_identity_clear(&who);
            cb(ud, SL_ENOMEM, NULL, R_NOMEM);
            return;
        }
        memcpy(who.workspace, e->ws, sizeof who.workspace);
        cb(ud, SL_OK, &who, NULL);
        sl_identity_clear(&who);
        return;
    }
    for (ireq *q = i->reqs; q != NULL; q = q->next) {
        if (memcmp(q->key, key, KEY_LEN) == 0) {
            if (!add_waiter(q, cb, ud)) {
                cb(ud, SL_ENOMEM, NULL, R_NOMEM);
                return;
            }
            i->stats.shared++;
            return;
        }
    }
    if (i->ninflight >= i->max_inflight) {
        cb(ud, SL_EUNAVAIL, NULL, R_BUSY);
        return;
    }
    ireq *q = req_new(i, key, token, len);
    if (q == NULL || !add_waiter(q, cb, ud)) {
        if (q != NULL)
            req_free(q);
        cb(ud, SL_ENOMEM, NULL, R_NOMEM);
        return;
    }
    q->next = i->reqs;
    if (i->reqs)
        i->reqs->prev = q;
    i->reqs = q;
    i->ninflight++;
    int rc = start_easy(i, q);
    if (rc != SL_OK) {
        req_detach(i, q);
        req_deliver(q, rc == SL_ENOMEM ? SL_ENOMEM : SL_EUNAVAIL, NULL,
                    rc == SL_ENOMEM ? R_NOMEM : R_UNAVAIL);
        return;
    }
    i->stats.requests++;
}

/* ---- creating and closing ------------------------------------------------------------------- */

void sl_introspect_opts_init(sl_introspect_opts *o)
{
    memset(o, 0, sizeof *o);
}

/* "Authorization: Basic base64(enc(id):enc(secret))", RFC 6749 §2.3.1. */
static struct curl_slist *auth_header(const char *id, const char *secret)
{
    size_t il = strlen(id), sl = strlen(secret);
    size_t plain_cap = 3 * (il + sl) + 2;
    char *plain = malloc(plain_cap);
    if (plain == NULL)
        return NULL;
    size_t n = pct_encode(plain, id, il);
    plain[n++] = ':';
    n += pct_encode(plain + n, secret, sl);
    static const char pre[] = "Authorization: Basic ";
    size_t hcap = sizeof pre + 4 * (n / 3 + 1) + 1;
    char *h = malloc(hcap);
    struct curl_slist *list = NULL;
    if (h != NULL) {
        memcpy(h, pre, sizeof pre - 1);
        EVP_EncodeBlock((unsigned char *)h + sizeof pre - 1, (unsigned char *)plain, (int)n);
        list = curl_slist_append(NULL, h);
        wipe_str(h);
    }
    wipe_free(plain, plain_cap);
    return list;
}

static void wipe_headers(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p != NULL; p = p->next)
        OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

int sl_introspect_new(sl_introspect **out, uv_loop_t *loop, const sl_introspect_opts *o,
                      sl_clock_fn clock, void *clock_ud)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (loop == NULL || o == NULL || o->url == NULL || strlen(o->url) > 2048 ||
        !sl__curl_url_acceptable(o->url, o->allow_http))
        return SL_EINVAL;
    if ((o->client_id == NULL) != (o->client_secret == NULL) ||
        (o->client_id != NULL &&
         (*o->client_id == '\0' || strlen(o->client_id) > 1024 || strlen(o->client_secret) > 1024)))
        return SL_EINVAL;
    double ttl = o->cache_ttl == 0 ? SL_INTROSPECT_DEFAULT_TTL : o->cache_ttl;
    if (isnan(ttl) || ttl > SL_INTROSPECT_MAX_TTL)
        return SL_EINVAL;
    size_t cmax = o->cache_max ? o->cache_max : SL_INTROSPECT_DEFAULT_CACHE;
    long tmo = o->timeout_ms ? o->timeout_ms : SL_INTROSPECT_DEFAULT_TIMEOUT_MS;
    long ctmo = o->connect_timeout_ms ? o->connect_timeout_ms : tmo;
    if (cmax > SL_INTROSPECT_MAX_CACHE || tmo < 1 || tmo > SL_INTROSPECT_MAX_TIMEOUT_MS ||
        ctmo < 1 || ctmo > tmo)
        return SL_EINVAL;
    if (!sl__curl_ready())
        return SL_EINTERNAL;

    sl_introspect *i = calloc(1, sizeof *i);
    if (i == NULL)
        return SL_ENOMEM;
    i->clock = clock ? clock : sl_wallclock;
    i->clock_ud = clock_ud;
    i->ttl = ttl;
    i->cache_max = cmax;
    i->timeout_ms = tmo;
    i->connect_timeout_ms = ctmo;
    i->max_inflight = o->max_inflight ? o->max_inflight : SL_INTROSPECT_DEFAULT_INFLIGHT;
    i->nbuckets = 16;
    while (i->nbuckets < cmax / 2)
        i->nbuckets *= 2;
    int rc = SL_ENOMEM;
    struct curl_slist *h = NULL;
    if ((i->url = strdup(o->url)) == NULL ||
        (o->ca_file != NULL && (i->ca_file = strdup(o->ca_file)) == NULL) ||
        (o->workspace_claim != NULL && (i->ws_claim = strdup(o->workspace_claim)) == NULL) ||
        (i->buckets = calloc(i->nbuckets, sizeof *i->buckets)) == NULL)
        goto fail;
    if (o->client_id != NULL && (i->headers = auth_header(o->client_id, o->client_secret)) == NULL)
        goto fail;
    /* "Expect:" keeps curl from waiting for a 100 Continue that some servers never send. */
    static const char *const fixed[] = {"Content-Type: application/x-www-form-urlencoded",
                                        "Accept: application/json", "Expect:"};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) {
        if ((h = curl_slist_append(i->headers, fixed[k])) == NULL)
            goto fail;
        i->headers = h;
    }
    if ((rc = sl__curl_uv_new(&i->cu, loop, on_done, i)) != SL_OK)
        goto fail;
    *out = i;
    return SL_OK;
fail:
    wipe_headers(i->headers);
    free(i->buckets);
    free(i->ca_file);
    free(i->ws_claim);
    free(i->url);
    free(i);
    return rc;
}

void sl_introspect_set_log(sl_introspect *i, sl_introspect_log_fn fn, void *ud)
{
    if (i == NULL)
        return;
    i->log = fn;
    i->log_ud = ud;
}

void sl_introspect_get_stats(const sl_introspect *i, sl_introspect_stats *st)
{
    if (st == NULL)
        return;
    memset(st, 0, sizeof *st);
    if (i == NULL)
        return;
    *st = i->stats;
    st->cached = i->ncached;
    st->inflight = i->ninflight;
}

void sl_introspect_free(sl_introspect *i)
{
    if (i == NULL || i->closing)
        return;
    i->closing = 1;
    /* Answer every pending call before returning; their callbacks may call authenticate, which
     * now answers at once, so the list cannot grow while it drains. */
    while (i->reqs != NULL) {
        ireq *q = i->reqs;
        req_detach(i, q);
        req_deliver(q, SL_EUNAVAIL, NULL, R_CLOSED);
    }
    sl__curl_uv_free(i->cu); /* no transfer is reported after this */
    i->cu = NULL;
    sl_introspect_cache_clear(i);
    free(i->buckets);
    i->buckets = NULL;
    wipe_headers(i->headers);
    i->headers = NULL;
    free(i->url);
    free(i->ca_file);
    free(i->ws_claim);
    free(i);
}
