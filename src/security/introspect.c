/* The RFC 7662 introspection authenticator: libcurl's multi interface driven by the server's libuv
 * loop (one uv_poll_t per socket curl asks us to watch, one uv_timer_t for curl's timeout), an
 * answer cache keyed by the SHA-256 of the token, and a table of requests in flight so that
 * concurrent calls for one token share one request. Every way the endpoint can fail to give a
 * well-formed answer ends in SL_EUNAVAIL, which is never cached; a well-formed answer (active or
 * not) is cached for at most the configured ttl and never past the token's exp.
 *
 * Lifetime: a request (ireq) is owned by the in-flight list until curl reports it done; it is
 * detached from curl and the list before any of its callbacks run, so a callback may start new
 * requests or free the authenticator. User callbacks never run inside a curl callback: they run
 * after curl_multi_socket_action has returned, or from authenticate itself. The struct is released
 * only by the close callbacks of its handles (timer and polls), so loop callbacks that are already
 * queued always find it. */
#include <sluice/introspect.h>

#include "security/introspect_internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_LEN 32 /* SHA-256 */

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

/* A cached answer. sub and jti point into the same allocation, after the struct. */
typedef struct centry {
    uint8_t key[KEY_LEN];
    struct centry *hnext;         /* bucket chain */
    struct centry *older, *newer; /* insertion order, for eviction */
    double until;                 /* cached until, on the authenticator's clock */
    int status;
    const char *reason;
    double iat, exp;
    char *sub, *jti, *scope; /* scope: the answer's OAuth scope ("" when none) */
} centry;

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

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    sl_introspect *i;
    struct sock_ctx *prev, *next;
} sock_ctx;

typedef sl__introspect_result result;

struct sl_introspect {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    size_t handles_open; /* the timer and every poll: the struct goes with the last one */
    int closing;
    sl_clock_fn clock;
    void *clock_ud;
    char *url;
    char *ca_file;
    struct curl_slist *headers; /* holds the Basic credentials: wiped on free */
    double ttl;                 /* <= 0: no caching */
    size_t cache_max;
    long timeout_ms, connect_timeout_ms;
    size_t max_inflight;
    centry **buckets;
    size_t nbuckets; /* power of two */
    size_t ncached;
    centry *oldest, *newest;
    ireq *reqs;
    size_t ninflight;
    sock_ctx *socks;
    sl_introspect_stats stats;
    sl_introspect_log_fn log;
    void *log_ud;
    int failing; /* the last request failed: log only the transitions */
};

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

/* ---- the cache ------------------------------------------------------------------------------ */

static size_t bucket_of(const sl_introspect *i, const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof h); /* a SHA-256 is already uniform */
    return (size_t)(h & (i->nbuckets - 1));
}

static centry **cache_slot(sl_introspect *i, const uint8_t *key)
{
    centry **p = &i->buckets[bucket_of(i, key)];
    while (*p != NULL && memcmp((*p)->key, key, KEY_LEN) != 0)
        p = &(*p)->hnext;
    return p;
}

static void cache_remove(sl_introspect *i, centry *e)
{
    centry **p = cache_slot(i, e->key);
    if (*p == e)
        *p = e->hnext;
    if (e->older)
        e->older->newer = e->newer;
    else
        i->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        i->newest = e->older;
    i->ncached--;
    free(e);
}

void sl_introspect_cache_clear(sl_introspect *i)
{
    if (i == NULL)
        return;
    while (i->oldest != NULL)
        cache_remove(i, i->oldest);
}

/* The live entry for key, or NULL; an expired one is dropped on the way. */
static centry *cache_get(sl_introspect *i, const uint8_t *key, double now)
{
    if (i->ttl <= 0)
        return NULL;
    centry *e = *cache_slot(i, key);
    if (e != NULL && e->until <= now) {
        cache_remove(i, e);
        e = NULL;
    }
    return e;
}

static void cache_put(sl_introspect *i, const uint8_t *key, const result *r, double now)
{
    if (i->ttl <= 0 || !r->cacheable || r->until <= now)
        return;
    centry *old = *cache_slot(i, key);
    if (old != NULL)
        cache_remove(i, old);
    /* Expired entries at the old end go first; then, when still full, the oldest answer, which
     * with one ttl for all is also the one closest to expiry unless an exp cut another short. */
    while (i->oldest != NULL && i->oldest->until <= now)
        cache_remove(i, i->oldest);
    while (i->ncached >= i->cache_max && i->oldest != NULL)
        cache_remove(i, i->oldest);
    size_t sublen = r->status == SL_OK ? strlen(r->who.principal) : 0;
    size_t jtilen = r->status == SL_OK ? strlen(r->who.token_id) : 0;
    size_t scopelen = r->status == SL_OK && r->scope ? r->scope_len : 0;
    centry *e = malloc(sizeof *e + sublen + 1 + jtilen + 1 + scopelen + 1);
    if (e == NULL)
        return; /* a cache that cannot grow just asks again */
    memcpy(e->key, key, KEY_LEN);
    e->until = r->until;
    e->status = r->status;
    e->reason = r->reason;
    e->iat = r->who.issued_at;
    e->exp = r->who.expires_at;
    e->sub = (char *)(e + 1);
    e->jti = e->sub + sublen + 1;
    memcpy(e->sub, r->who.principal, sublen);
    e->sub[sublen] = '\0';
    memcpy(e->jti, r->who.token_id, jtilen);
    e->jti[jtilen] = '\0';
    e->scope = e->jti + jtilen + 1;
    if (scopelen)
        memcpy(e->scope, r->scope, scopelen);
    e->scope[scopelen] = '\0';
    centry **slot = cache_slot(i, key);
    e->hnext = NULL;
    *slot = e;
    e->older = i->newest;
    e->newer = NULL;
    if (i->newest)
        i->newest->newer = e;
    else
        i->oldest = e;
    i->newest = e;
    i->ncached++;
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

static void update_ref(sl_introspect *i)
{
    /* curl's timer must keep the loop alive while a request waits on it (connect, resolve), but
     * not an idle authenticator's loop. */
    if (i->ninflight > 0)
        uv_ref((uv_handle_t *)&i->timer);
    else
        uv_unref((uv_handle_t *)&i->timer);
}

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
        curl_multi_remove_handle(i->multi, q->easy);
        curl_easy_cleanup(q->easy);
        q->easy = NULL;
    }
    update_ref(i);
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
        cache_put(i, q->key, &r, now_of(i));
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

static void check_done(sl_introspect *i)
{
    CURLMsg *msg;
    int left;
    /* A callback may free the authenticator: stop reading curl's queue the moment it has. */
    while (!i->closing && (msg = curl_multi_info_read(i->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result; /* msg dies with the handle */
        ireq *q = NULL;
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&q);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        if (q != NULL)
            complete(i, q, res, code);
    }
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
    q->easy = e;
    /* Adding arms curl's timer (our timer function): the transfer starts from the loop. */
    if (curl_multi_add_handle(i->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        q->easy = NULL;
        return SL_EINTERNAL;
    }
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
    centry *e = cache_get(i, key, now_of(i));
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
    update_ref(i);
}

/* ---- curl on the loop ----------------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    sl_introspect *i;
    if (h->type == UV_POLL) {
        sock_ctx *sc = h->data;
        i = sc->i;
        free(sc);
    } else {
        i = h->data;
    }
    if (--i->handles_open == 0 && i->closing)
        free(i);
}

static void sock_close(sl_introspect *i, sock_ctx *sc)
{
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        i->socks = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    uv_close((uv_handle_t *)&sc->poll, handle_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx *sc = h->data;
    sl_introspect *i = sc->i;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else
        flags = ((events & UV_READABLE) ? CURL_CSELECT_IN : 0) |
                ((events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(i->multi, sc->fd, flags, &running);
    check_done(i);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    sl_introspect *i = userp;
    sock_ctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc != NULL) {
            curl_multi_assign(i->multi, s, NULL);
            sock_close(i, sc);
        }
        return 0;
    }
    if (sc == NULL) {
        if ((sc = calloc(1, sizeof *sc)) == NULL)
            return -1;
        if (uv_poll_init_socket(i->loop, &sc->poll, s) != 0) {
            free(sc);
            return -1; /* curl fails the transfer: fail closed */
        }
        sc->fd = s;
        sc->i = i;
        sc->poll.data = sc;
        sc->next = i->socks;
        if (i->socks)
            i->socks->prev = sc;
        i->socks = sc;
        i->handles_open++;
        curl_multi_assign(i->multi, s, sc);
    }
    int events =
        ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    uv_poll_start(&sc->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    sl_introspect *i = t->data;
    int running;
    curl_multi_socket_action(i->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(i);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    sl_introspect *i = userp;
    if (i->closing)
        return 0; /* the timer is about to close; curl_multi_cleanup may still call */
    if (timeout_ms < 0)
        uv_timer_stop(&i->timer);
    else /* 0 ("now") becomes the next loop iteration: never re-enter curl from its callback */
        uv_timer_start(&i->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- creating and closing ------------------------------------------------------------------- */

void sl_introspect_opts_init(sl_introspect_opts *o)
{
    memset(o, 0, sizeof *o);
}

static int host_is_loopback(const char *host)
{
    char buf[64];
    size_t n = strlen(host);
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (n >= 2 && n < sizeof buf && host[0] == '[' && host[n - 1] == ']') {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        struct in6_addr a6;
        return inet_pton(AF_INET6, buf, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    struct in_addr a4;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* http(s) only, no credentials in the URL (they belong in client_id/secret, which are never
 * logged), plain http only where nothing travels over a network. */
static int url_acceptable(const char *url, int allow_http)
{
    CURLU *u = curl_url();
    if (u == NULL)
        return 0;
    char *scheme = NULL, *host = NULL, *user = NULL;
    int ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER;
    if (ok) {
        if (strcasecmp(scheme, "https") == 0)
            ok = 1;
        else if (strcasecmp(scheme, "http") == 0)
            ok = allow_http || host_is_loopback(host);
        else
            ok = 0;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return ok;
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

static int curl_ready(void)
{
    /* Process-wide and reference-counted by curl; never undone, as other users may share it. */
    static int done;
    if (!done)
        done = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    return done;
}

int sl_introspect_new(sl_introspect **out, uv_loop_t *loop, const sl_introspect_opts *o,
                      sl_clock_fn clock, void *clock_ud)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (loop == NULL || o == NULL || o->url == NULL || strlen(o->url) > 2048 ||
        !url_acceptable(o->url, o->allow_http))
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
    if (!curl_ready())
        return SL_EINTERNAL;

    sl_introspect *i = calloc(1, sizeof *i);
    if (i == NULL)
        return SL_ENOMEM;
    i->loop = loop;
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
    if ((i->multi = curl_multi_init()) == NULL) {
        rc = SL_EINTERNAL;
        goto fail;
    }
    curl_multi_setopt(i->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(i->multi, CURLMOPT_SOCKETDATA, i);
    curl_multi_setopt(i->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(i->multi, CURLMOPT_TIMERDATA, i);
    uv_timer_init(loop, &i->timer);
    i->timer.data = i;
    i->handles_open = 1;
    update_ref(i);
    *out = i;
    return SL_OK;
fail:
    wipe_headers(i->headers);
    free(i->buckets);
    free(i->ca_file);
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
    /* Cleanup closes cached connections, which reports their sockets removed (closing polls). */
    curl_multi_cleanup(i->multi);
    i->multi = NULL;
    while (i->socks != NULL)
        sock_close(i, i->socks);
    sl_introspect_cache_clear(i);
    free(i->buckets);
    i->buckets = NULL;
    wipe_headers(i->headers);
    i->headers = NULL;
    free(i->url);
    free(i->ca_file);
    uv_close((uv_handle_t *)&i->timer, handle_closed);
}
