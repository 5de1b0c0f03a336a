/* The JWKS client (include/sluice/jwks.h): one fetch at a time on the loop through curl_uv, the
 * current keyring swapped in whole when a fetch yields a usable set, and a timer for the next
 * refresh. A fetch has up to two steps: OIDC discovery (when the key set's URL is not configured,
 * or after the discovered one failed) and the key set itself. Callers that need a fetch wait on a
 * list that the fetch's end answers. Nothing the provider sends reaches a log line except numbers
 * (HTTP status, key counts) and the kids of skipped keys, which are public.
 *
 * Lifetime: sl_jwks_free answers the waiters, abandons the fetch and closes the curl driver (which
 * delivers nothing afterwards) and the timer; the struct goes with the timer's close callback. */
#include <sluice/jwks.h>

#include "net/curl_uv.h"
#include "security/jwks.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define URL_MAX 2048
#define DISCOVERY_PATH "/.well-known/openid-configuration"

typedef struct waiter {
    sl_jwks_cb cb;
    void *ud;
    struct waiter *next;
} waiter;

enum { STEP_NONE, STEP_DISCOVERY, STEP_KEYS };

struct sl_jwks {
    sl__curl_uv *cu;
    uv_timer_t timer; /* the next refresh or retry */
    int closing;
    sl_clock_fn clock;
    void *clock_ud;
    char *url;    /* configured key set URL, or NULL */
    char *issuer; /* discovery: the issuer, and its configuration URL */
    char *discovery_url;
    char *keys_url; /* the key set's URL in use (configured or discovered); NULL: discover */
    int allow_http;
    char *ca_file;
    double refresh_min, refresh_max, unknown_kid_interval, max_stale;
    long timeout_ms;
    size_t max_waiting;

    sl_jwt_keyring *keys;     /* the last good set, or NULL */
    double fresh_until;       /* end of its HTTP cache lifetime */
    unsigned char digest[32]; /* of the document it came from: log only what changes */
    int stale_logged;

    /* the fetch under way */
    CURL *easy;
    int step;
    sl__curl_body body;
    char cache_control[256], expires[64], date[64];
    double last_forced; /* when the last fetch for an unknown kid (or no keys) started */
    unsigned failures;  /* in a row */
    waiter *head, **tail;
    size_t nwaiting;

    sl_jwks_stats stats;
    sl_jwks_log_fn log;
    void *log_ud;
};

static double now_of(const sl_jwks *j)
{
    return j->clock(j->clock_ud);
}

static void logf_(sl_jwks *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(sl_jwks *j, const char *fmt, ...)
{
    if (j->log == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    j->log(j->log_ud, line);
}

static int usable(const sl_jwks *j, double now)
{
    return j->keys != NULL && now <= j->fresh_until + j->max_stale;
}

/* ---- waiters -------------------------------------------------------------------------------- */

static void answer_all(sl_jwks *j)
{
    waiter *w = j->head;
    j->head = NULL;
    j->tail = &j->head;
    j->nwaiting = 0;
    while (w != NULL) {
        waiter *next = w->next;
        /* Decided per waiter: a callback may free us (then the rest hear SL_EUNAVAIL). */
        int ok = !j->closing && usable(j, now_of(j));
        w->cb(w->ud, ok ? SL_OK : SL_EUNAVAIL, ok ? j->keys : NULL);
        free(w);
        w = next;
    }
}

/* ---- the cache lifetime of an answer -------------------------------------------------------- */

double sl__jwks_lifetime(const char *cache_control, const char *expires, const char *date,
                         double now)
{
    int any = 0;
    double max_age = -1;
    const char *p = cache_control;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *tok = p;
        while (*p && *p != ',')
            p++;
        size_t n = (size_t)(p - tok);
        while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            n--;
        if ((n == 8 && !strncasecmp(tok, "no-store", 8)) ||
            (n == 8 && !strncasecmp(tok, "no-cache", 8))) {
            return 0;
        }
        if (n >= 8 && !strncasecmp(tok, "max-age=", 8)) {
            double v = 0;
            size_t k = 8;
            if (k < n && tok[k] == '"')
                k++;
            int digits = 0;
            for (; k < n && isdigit((unsigned char)tok[k]); k++, digits++)
                v = v < 1e12 ? v * 10 + (tok[k] - '0') : v;
            if (digits > 0 && (max_age < 0 || v < max_age))
                max_age = v; /* several max-age: the shortest, the cautious reading */
            else if (digits == 0)
                return 0; /* a malformed directive: do not cache (RFC 9111 section 4.2.1) */
            any = 1;
        }
    }
    if (any)
        return max_age;
    if (*expires) {
        time_t e = curl_getdate(expires, NULL);
        if (e < 0)
            return 0; /* an invalid Expires means already expired */
        time_t d = *date ? curl_getdate(date, NULL) : -1;
        double base = d >= 0 ? (double)d : now;
        return (double)e > base ? (double)e - base : 0;
    }
    return -1;
}

/* ---- fetching ------------------------------------------------------------------------------- */

/* Keeps the value of the caching headers of the final answer. */
static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    sl_jwks *j = ud;
    size_t len = size * n;
    if (len >= 5 && !memcmp(data, "HTTP/", 5)) { /* a new answer: forget the last one's */
        j->cache_control[0] = j->expires[0] = j->date[0] = '\0';
        return len;
    }
    static const struct {
        const char *name;
        size_t off, cap;
    } want[] = {
        {"cache-control", offsetof(sl_jwks, cache_control), sizeof((sl_jwks *)0)->cache_control},
        {"expires", offsetof(sl_jwks, expires), sizeof((sl_jwks *)0)->expires},
        {"date", offsetof(sl_jwks, date), sizeof((sl_jwks *)0)->date},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        size_t nl = strlen(want[i].name);
        if (len <= nl || data[nl] != ':' || strncasecmp(data, want[i].name, nl) != 0)
            continue;
        const char *v = data + nl + 1, *end = data + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        char *dst = (char *)j + want[i].off;
        size_t have = strlen(dst), add = (size_t)(end - v);
        /* Repeated Cache-Control fields are one list (RFC 9110 section 5.3). */
        if (have > 0 && i == 0 && have + 1 < want[i].cap)
            dst[have++] = ',';
        else
            have = 0;
        if (have + add >= want[i].cap)
            add = want[i].cap - 1 - have; /* cut: a cut directive reads as malformed or shorter */
        memcpy(dst + have, v, add);
        dst[have + add] = '\0';
    }
    return len;
}

static void schedule(sl_jwks *j, double delay);

static void fetch_failed(sl_jwks *j, const char *what, const char *detail)
{
    j->stats.failures++;
    j->failures++;
    double now = now_of(j);
    if (j->failures == 1) {
        if (j->keys != NULL)
            logf_(j, "jwks: %s failed (%s); keeping the %zu keys we have", what, detail,
                  sl_jwt_keyring_size(j->keys));
        else
            logf_(j, "jwks: %s failed (%s); no keys yet: upstream JWTs get 503", what, detail);
    }
    /* A discovered key set URL that fails may have moved: discover it again next time. */
    if (j->url == NULL && j->step == STEP_KEYS) {
        free(j->keys_url);
        j->keys_url = NULL;
    }
    if (j->keys != NULL && !usable(j, now) && !j->stale_logged) {
        logf_(j,
              "jwks: keys stale for more than %.0f s: upstream JWTs get 503 until a fetch "
              "succeeds",
              j->max_stale);
        j->stale_logged = 1;
    }
    /* Retry sooner than a refresh, backing off: 1, 2, 4 ... seconds, at most refresh_min. */
    double delay = j->failures > 20 ? j->refresh_min : ldexp(1.0, (int)j->failures - 1);
    schedule(j, delay < j->refresh_min ? delay : j->refresh_min);
}

static void on_skip(void *ud, size_t index, const char *kid, const char *reason)
{
    /* A kid is public, and the parser let only printable ones through; still, bounded. */
    logf_(ud, "jwks: key %zu%s%.64s%s skipped: %s", index, kid ? " (kid " : "", kid ? kid : "",
          kid ? ")" : "", reason);
}

static void keys_received(sl_jwks *j, long code)
{
    const char *why = NULL;
    char detail[64];
    if (code != 200) {
        snprintf(detail, sizeof detail, "HTTP %ld", code);
        fetch_failed(j, "key set fetch", detail);
        return;
    }
    unsigned char digest[32];
    unsigned mdlen = 0;
    int same = EVP_Digest(j->body.p ? j->body.p : "", j->body.len, digest, &mdlen, EVP_sha256(),
                          NULL) == 1 &&
               j->keys != NULL && memcmp(digest, j->digest, sizeof digest) == 0;
    sl_jwt_keyring *kr = NULL;
    /* What was skipped is told once per document, not at every refresh. */
    int rc = sl__jwks_parse(j->body.p ? j->body.p : "", j->body.len, &kr, same ? NULL : on_skip, j,
                            &why);
    if (rc != SL_OK) {
        fetch_failed(j, "key set", why ? why : "unreadable");
        return;
    }
    double now = now_of(j);
    double life = sl__jwks_lifetime(j->cache_control, j->expires, j->date, now);
    if (life < j->refresh_min) /* also "no caching information" (-1) */
        life = j->refresh_min;
    if (life > j->refresh_max)
        life = j->refresh_max;
    if (!same || j->failures > 0 || j->stale_logged)
        logf_(j, "jwks: %zu keys from %s, refreshed in %.0f s", sl_jwt_keyring_size(kr),
              j->keys_url, life);
    sl_jwt_keyring_free(j->keys);
    j->keys = kr;
    memcpy(j->digest, digest, sizeof digest);
    j->fresh_until = now + life;
    j->failures = 0;
    j->stale_logged = 0;
    schedule(j, life);
}

static int start_step(sl_jwks *j, int step);

static void discovery_received(sl_jwks *j, long code)
{
    char detail[64];
    if (code != 200) {
        snprintf(detail, sizeof detail, "HTTP %ld", code);
        fetch_failed(j, "discovery", detail);
        return;
    }
    json_t *root =
        json_loadb(j->body.p ? j->body.p : "", j->body.len, JSON_REJECT_DUPLICATES, NULL);
    json_t *iss = json_object_get(root, "issuer"), *uri = json_object_get(root, "jwks_uri");
    const char *why = NULL;
    if (!json_is_object(root))
        why = "not a JSON object";
    else if (!json_is_string(iss) || strcmp(json_string_value(iss), j->issuer) != 0 ||
             strlen(j->issuer) != json_string_length(iss))
        why = "its issuer is not the configured one";
    else if (!json_is_string(uri) || json_string_length(uri) > URL_MAX ||
             strlen(json_string_value(uri)) != json_string_length(uri) ||
             !sl__curl_url_acceptable(json_string_value(uri), j->allow_http))
        why = "no acceptable jwks_uri (https, or http to loopback)";
    if (why == NULL) {
        free(j->keys_url);
        if ((j->keys_url = strdup(json_string_value(uri))) == NULL)
            why = "out of memory";
    }
    json_decref(root);
    if (why != NULL) {
        fetch_failed(j, "discovery", why);
        return;
    }
    if (start_step(j, STEP_KEYS) != SL_OK)
        fetch_failed(j, "key set fetch", "cannot start");
}

static void on_done(void *ud, CURL *e, CURLcode res)
{
    sl_jwks *j = ud;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    j->easy = NULL;
    int step = j->step;
    if (res != CURLE_OK)
        fetch_failed(j, step == STEP_DISCOVERY ? "discovery" : "key set fetch",
                     curl_easy_strerror(res));
    else if (step == STEP_DISCOVERY)
        discovery_received(j, code);
    else
        keys_received(j, code);
    if (j->easy == NULL) { /* the fetch is over (discovery may have started its second step) */
        j->step = STEP_NONE;
        answer_all(j);
    }
}

static int start_step(sl_jwks *j, int step)
{
    const char *url = step == STEP_DISCOVERY ? j->discovery_url : j->keys_url;
    CURL *e = curl_easy_init();
    if (e == NULL)
        return SL_ENOMEM;
    j->body.len = 0;
    j->body.max = SL__JWKS_DOC_MAX;
    j->cache_control[0] = j->expires[0] = j->date[0] = '\0';
    int ok = 1;
#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* No redirects: a Location could lead to plain http on the network, past the URL rules. */
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_USERAGENT, "sluice");
    SET(CURLOPT_TIMEOUT_MS, j->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, j->timeout_ms);
    SET(CURLOPT_MAXFILESIZE, (long)SL__JWKS_DOC_MAX);
    SET(CURLOPT_WRITEFUNCTION, sl__curl_body_write);
    SET(CURLOPT_WRITEDATA, &j->body);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, j);
    if (j->ca_file != NULL)
        SET(CURLOPT_CAINFO, j->ca_file);
#undef SET
    if (!ok || sl__curl_uv_add(j->cu, e) != SL_OK) {
        curl_easy_cleanup(e);
        return SL_EINTERNAL;
    }
    j->easy = e;
    j->step = step;
    j->stats.fetches++;
    return SL_OK;
}

/* Starts a fetch unless one is under way: discovery first when the key set's URL is not known. */
static int start_fetch(sl_jwks *j)
{
    if (j->easy != NULL)
        return SL_OK;
    uv_timer_stop(&j->timer);
    int rc = start_step(j, j->keys_url != NULL ? STEP_KEYS : STEP_DISCOVERY);
    if (rc != SL_OK) {
        j->step = j->keys_url != NULL ? STEP_KEYS : STEP_DISCOVERY;
        fetch_failed(j, "fetch", "cannot start");
        j->step = STEP_NONE;
    }
    return rc;
}

static void on_timer(uv_timer_t *t)
{
    start_fetch(t->data);
}

static void schedule(sl_jwks *j, double delay)
{
    if (j->closing)
        return;
    uint64_t ms = delay <= 0 ? 0 : delay > 1e9 ? (uint64_t)1e12 : (uint64_t)(delay * 1000);
    uv_timer_start(&j->timer, on_timer, ms, 0);
}

/* ---- asking for keys ------------------------------------------------------------------------ */

sl_jwt_keyring *sl_jwks_ready(sl_jwks *j, const char *kid, size_t kidlen)
{
    if (j == NULL || j->closing || !usable(j, now_of(j)) ||
        !sl_jwt_keyring_has_kid(j->keys, kid, kid ? kidlen : 0))
        return NULL;
    return j->keys;
}

void sl_jwks_wait(sl_jwks *j, const char *kid, size_t kidlen, sl_jwks_cb cb, void *ud)
{
    if (cb == NULL)
        return;
    if (j == NULL || j->closing) {
        cb(ud, SL_EUNAVAIL, NULL);
        return;
    }
    double now = now_of(j);
    sl_jwt_keyring *kr = sl_jwks_ready(j, kid, kidlen);
    if (kr != NULL) {
        cb(ud, SL_OK, kr);
        return;
    }
    if (j->easy == NULL) {
        if (now - j->last_forced < j->unknown_kid_interval) {
            /* Rate-limited: a made-up kid costs the provider nothing. */
            j->stats.throttled++;
            int ok = usable(j, now);
            cb(ud, ok ? SL_OK : SL_EUNAVAIL, ok ? j->keys : NULL);
            return;
        }
        j->last_forced = now;
        j->stats.forced++;
        if (start_fetch(j) != SL_OK) {
            int ok = usable(j, now);
            cb(ud, ok ? SL_OK : SL_EUNAVAIL, ok ? j->keys : NULL);
            return;
        }
    }
    waiter *w = j->nwaiting < j->max_waiting ? malloc(sizeof *w) : NULL;
    if (w == NULL) {
        cb(ud, SL_EUNAVAIL, NULL);
        return;
    }
    w->cb = cb;
    w->ud = ud;
    w->next = NULL;
    *j->tail = w;
    j->tail = &w->next;
    j->nwaiting++;
}

/* ---- creating and closing ------------------------------------------------------------------- */

void sl_jwks_opts_init(sl_jwks_opts *o)
{
    if (o != NULL)
        memset(o, 0, sizeof *o);
}

void sl_jwks_set_log(sl_jwks *j, sl_jwks_log_fn fn, void *ud)
{
    if (j == NULL)
        return;
    j->log = fn;
    j->log_ud = ud;
}

void sl_jwks_get_stats(const sl_jwks *j, sl_jwks_stats *st)
{
    if (st == NULL)
        return;
    memset(st, 0, sizeof *st);
    if (j == NULL)
        return;
    *st = j->stats;
    st->keys = sl_jwt_keyring_size(j->keys);
    st->waiting = j->nwaiting;
}

static double or_default(double v, double def)
{
    return v == 0 ? def : v;
}

int sl_jwks_new(sl_jwks **out, uv_loop_t *loop, const sl_jwks_opts *o, sl_clock_fn clock,
                void *clock_ud)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (loop == NULL || o == NULL || (o->url == NULL && o->issuer == NULL))
        return SL_EINVAL;
    if (o->url != NULL &&
        (strlen(o->url) > URL_MAX || !sl__curl_url_acceptable(o->url, o->allow_http)))
        return SL_EINVAL;
    double rmin = or_default(o->refresh_min, SL_JWKS_DEFAULT_REFRESH_MIN);
    double rmax = or_default(o->refresh_max, SL_JWKS_DEFAULT_REFRESH_MAX);
    double ukid = or_default(o->unknown_kid_interval, SL_JWKS_DEFAULT_UNKNOWN_KID_INTERVAL);
    double stale = or_default(o->max_stale, SL_JWKS_DEFAULT_MAX_STALE);
    long tmo = o->timeout_ms ? o->timeout_ms : SL_JWKS_DEFAULT_TIMEOUT_MS;
    if (!(rmin > 0) || !(rmax >= rmin) || !isfinite(rmax) || !(ukid > 0) || !isfinite(ukid) ||
        isnan(stale) || !isfinite(stale) || tmo < 1 || tmo > 600000)
        return SL_EINVAL;
    if (!sl__curl_ready())
        return SL_EINTERNAL;
    sl_jwks *j = calloc(1, sizeof *j);
    if (j == NULL)
        return SL_ENOMEM;
    j->clock = clock ? clock : sl_wallclock;
    j->clock_ud = clock_ud;
    j->allow_http = o->allow_http;
    j->refresh_min = rmin;
    j->refresh_max = rmax;
    j->unknown_kid_interval = ukid;
    j->max_stale = stale < 0 ? 0 : stale;
    j->timeout_ms = tmo;
    j->max_waiting = o->max_waiting ? o->max_waiting : SL_JWKS_DEFAULT_MAX_WAITING;
    j->last_forced = -INFINITY;
    j->tail = &j->head;
    int rc = SL_ENOMEM;
    if ((o->url && ((j->url = strdup(o->url)) == NULL || (j->keys_url = strdup(o->url)) == NULL)) ||
        (o->ca_file && (j->ca_file = strdup(o->ca_file)) == NULL))
        goto fail;
    if (o->issuer != NULL) {
        /* The configuration lives under the issuer's path (Discovery 1.0 section 4): a trailing
         * slash of the issuer is not doubled. */
        size_t n = strlen(o->issuer);
        if (n == 0 || n > URL_MAX) {
            rc = SL_EINVAL;
            goto fail;
        }
        if ((j->issuer = strdup(o->issuer)) == NULL ||
            (j->discovery_url = malloc(n + sizeof DISCOVERY_PATH)) == NULL)
            goto fail;
        memcpy(j->discovery_url, o->issuer, n);
        if (o->issuer[n - 1] == '/')
            n--;
        memcpy(j->discovery_url + n, DISCOVERY_PATH, sizeof DISCOVERY_PATH);
        if (!sl__curl_url_acceptable(j->discovery_url, o->allow_http)) {
            rc = SL_EINVAL;
            goto fail;
        }
    }
    if ((rc = sl__curl_uv_new(&j->cu, loop, on_done, j)) != SL_OK)
        goto fail;
    uv_timer_init(loop, &j->timer);
    j->timer.data = j;
    uv_unref((uv_handle_t *)&j->timer); /* refreshes never keep a loop alive by themselves */
    start_fetch(j);                     /* a failure to start is retried by the timer */
    *out = j;
    return SL_OK;
fail:
    free(j->url);
    free(j->keys_url);
    free(j->ca_file);
    free(j->issuer);
    free(j->discovery_url);
    free(j);
    return rc;
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void sl_jwks_free(sl_jwks *j)
{
    if (j == NULL || j->closing)
        return;
    j->closing = 1;
    if (j->easy != NULL) {
        sl__curl_uv_remove(j->cu, j->easy);
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
    }
    answer_all(j); /* SL_EUNAVAIL: closing */
    sl__curl_uv_free(j->cu);
    j->cu = NULL;
    sl_jwt_keyring_free(j->keys);
    j->keys = NULL;
    free(j->body.p);
    free(j->url);
    free(j->keys_url);
    free(j->ca_file);
    free(j->issuer);
    free(j->discovery_url);
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, timer_closed);
}
