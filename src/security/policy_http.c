/* The HTTP policy regime (docs/POLICY.md): a regime of the authorise contract that asks
 * a policy service over HTTP, in the shape of Open Policy Agent's data API. Per resource it POSTs
 *   {"input": {"identity": {...}, "capability": "...", "resource": "...", "parameters": ...}}
 * and reads {"result": {"allow": bool, "ttl": seconds, "reason": "..."}}. Transfers run on the
 * server's loop through curl_uv (libcurl multi), at most `concurrency` at once; beyond that
 * questions wait in a bounded queue, and past its bound they are errors at once. Identical
 * questions under way at once (the same request body) are sent once and answered to every asker.
 * Anything but a 200 with that shape, or a timeout, is an error decision: the pipeline denies it
 * (503) and never caches it. The reply parser does no I/O (sl_authz_http_parse, fuzzed). */
#include <sluice/authz.h>

#include "core/map.h"
#include "net/curl_uv.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_MAX (64 * 1024) /* a decision is a few dozen bytes */

typedef struct batch {
    sl_authz_done_fn done;
    void *ud;
    sl_decision *d;
    size_t n, left;
} batch;

typedef struct waiter {
    struct waiter *next;
    batch *b;
    size_t idx;
} waiter;

typedef struct preq {
    struct preq *prev, *next; /* every question (queued or under way) */
    struct preq *qnext;       /* the queue of those waiting for a slot */
    char *body;
    size_t body_len;
    waiter *waiters;
    CURL *easy; /* NULL while queued */
    sl__curl_body resp;
} preq;

typedef struct http_regime {
    sl_regime base;
    char *url;
    long timeout_ms;
    size_t concurrency, queue_max;
    sl__curl_uv *cu;
    struct curl_slist *headers;
    sl__map *by_body; /* body -> preq* */
    preq *all;
    preq *qhead, *qtail;
    size_t active, queued;
    int closing;
} http_regime;

/* ---- the reply ------------------------------------------------------------------------------ */

static void set_error(sl_decision *d, const char *why)
{
    d->verdict = SL_VERDICT_ERROR;
    d->ttl = 0;
    snprintf(d->reason, sizeof d->reason, "%s", why);
}

int sl_authz_http_parse(const char *body, size_t len, sl_decision *d)
{
    memset(d, 0, sizeof *d);
    json_t *root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *res = json_object_get(root, "result");
    json_t *allow = json_object_get(res, "allow");
    json_t *ttl = json_object_get(res, "ttl");
    json_t *reason = json_object_get(res, "reason");
    const char *why = NULL;
    if (root == NULL)
        why = "the policy's reply is not JSON";
    else if (!json_is_object(res)) /* OPA answers {} for an undefined rule: not a decision */
        why = "the policy's reply has no result object";
    else if (!json_is_boolean(allow))
        why = "the policy's result has no boolean allow";
    else if (ttl && (!json_is_number(ttl) || !isfinite(json_number_value(ttl)) ||
                     json_number_value(ttl) < 0))
        why = "the policy's ttl is not a non-negative number";
    else if (reason && !json_is_string(reason))
        why = "the policy's reason is not a string";
    if (why) {
        json_decref(root);
        set_error(d, why);
        return SL_EFORMAT;
    }
    d->verdict = json_is_true(allow) ? SL_VERDICT_ALLOW : SL_VERDICT_DENY;
    d->ttl = ttl ? json_number_value(ttl) : 0;
    if (reason) {
        /* Printable ASCII only: the reason ends up in logs and audit records. */
        const char *s = json_string_value(reason);
        size_t n = json_string_length(reason), k = 0;
        for (size_t i = 0; i < n && k < SL_AUTHZ_REASON_MAX; i++)
            d->reason[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
        d->reason[k] = '\0';
    }
    json_decref(root);
    return SL_OK;
}

/* ---- the question -----------------------------------------------------------------------------
 */

static json_t *identity_json(const sl_identity *who)
{
    json_t *channels = json_array();
    for (size_t i = 0; who->scoped && i < who->nchannels; i++)
        json_array_append_new(channels, json_string(who->channels[i]));
    return json_pack("{s:s, s:s, s:s?, s:b, s:o, s:s}", "principal", who->principal, "source",
                     sl_source_name(who->source), "role",
                     who->role == SL_ROLE_NONE ? NULL : sl_role_name(who->role), "scoped",
                     who->scoped, "channels", channels, "workspace", who->workspace);
}

/* The request body of one question, or NULL (ENOMEM). Keys sorted: identical questions give
 * identical bodies, which is how they are found under way. */
static char *question_body(const sl_authz_query *q, const char *resource)
{
    sl_identity anon;
    const sl_identity *who = q->who;
    if (who == NULL) {
        sl_identity_init(&anon);
        anon.source = SL_SOURCE_SYSTEM;
        who = &anon;
    }
    json_t *params = q->parameters ? json_loads(q->parameters, 0, NULL) : NULL;
    json_t *input =
        json_pack("{s:o, s:s, s:s?, s:o?}", "identity", identity_json(who), "capability",
                  q->capability ? q->capability : "", "resource", resource, "parameters", params);
    if (input && resource == NULL)
        json_object_set_new(input, "resource", json_null());
    if (input && params == NULL)
        json_object_set_new(input, "parameters", json_null());
    json_t *root = input ? json_pack("{s:o}", "input", input) : NULL;
    char *s = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    return s;
}

/* ---- transfers --------------------------------------------------------------------------------
 */

static void answer(batch *b, size_t idx, const sl_decision *d)
{
    b->d[idx] = *d;
    if (--b->left == 0) {
        b->done(b->ud, b->d, b->n);
        free(b->d);
        free(b);
    }
}

static void preq_unlink(http_regime *h, preq *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        h->all = p->next;
    if (p->next)
        p->next->prev = p->prev;
    sl__map_del(h->by_body, p->body, NULL);
}

/* Answers every asker of p with d and frees p (already out of every list). */
static void preq_finish(preq *p, const sl_decision *d)
{
    waiter *w = p->waiters;
    while (w) {
        waiter *next = w->next;
        answer(w->b, w->idx, d);
        free(w);
        w = next;
    }
    free(p->body);
    free(p->resp.p);
    free(p);
}

static int start(http_regime *h, preq *p)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return SL_ENOMEM;
    int ok = 1;
#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_URL, h->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, p->body);
    SET(CURLOPT_POSTFIELDSIZE, (long)p->body_len);
    SET(CURLOPT_HTTPHEADER, h->headers);
    SET(CURLOPT_USERAGENT, "sluice");
    SET(CURLOPT_TIMEOUT_MS, h->timeout_ms);
    SET(CURLOPT_MAXFILESIZE, (long)RESPONSE_MAX);
    SET(CURLOPT_WRITEFUNCTION, sl__curl_body_write);
    p->resp.max = RESPONSE_MAX;
    SET(CURLOPT_WRITEDATA, &p->resp);
    SET(CURLOPT_PRIVATE, p);
#undef SET
    if (!ok || sl__curl_uv_add(h->cu, e) != SL_OK) {
        curl_easy_cleanup(e);
        return SL_EINTERNAL;
    }
    p->easy = e;
    h->active++;
    return SL_OK;
}

/* Starts queued questions while there is a free slot; those that cannot start are errors. */
static void pump(http_regime *h)
{
    while (!h->closing && h->qhead && h->active < h->concurrency) {
        preq *p = h->qhead;
        h->qhead = p->qnext;
        if (h->qhead == NULL)
            h->qtail = NULL;
        h->queued--;
        p->qnext = NULL;
        if (start(h, p) != SL_OK) {
            sl_decision d;
            set_error(&d, "the policy request could not start");
            preq_unlink(h, p);
            preq_finish(p, &d);
        }
    }
}

static void on_done(void *ud, CURL *e, CURLcode res)
{
    http_regime *h = ud;
    preq *p = NULL;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&p);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    if (p == NULL)
        return;
    p->easy = NULL;
    h->active--;
    preq_unlink(h, p);
    sl_decision d;
    if (res == CURLE_OPERATION_TIMEDOUT)
        set_error(&d, "the policy did not answer in time");
    else if (res != CURLE_OK)
        set_error(&d, "the policy could not be reached");
    else if (code != 200)
        set_error(&d, "the policy answered with a status other than 200");
    else
        sl_authz_http_parse(p->resp.p ? p->resp.p : "", p->resp.len, &d);
    preq_finish(p, &d);
    pump(h);
}

/* Adds the asker (b, idx) to the question with this body: the one under way, or a new one. */
static void ask(http_regime *h, char *body, batch *b, size_t idx)
{
    sl_decision d;
    waiter *w = calloc(1, sizeof *w);
    if (w == NULL || body == NULL) {
        free(w);
        free(body);
        set_error(&d, "out of memory");
        answer(b, idx, &d);
        return;
    }
    w->b = b;
    w->idx = idx;
    preq *p = sl__map_get(h->by_body, body);
    if (p) { /* the same question is under way: one answer for both */
        free(body);
        w->next = p->waiters;
        p->waiters = w;
        return;
    }
    if (h->closing || (h->active >= h->concurrency && h->queued >= h->queue_max) ||
        (p = calloc(1, sizeof *p)) == NULL || sl__map_put(h->by_body, body, p, NULL) != SL_OK) {
        free(p);
        free(body);
        free(w);
        set_error(&d, h->closing ? "the policy regime is closing" : "too many policy questions");
        answer(b, idx, &d);
        return;
    }
    p->body = body;
    p->body_len = strlen(body);
    p->waiters = w;
    p->next = h->all;
    if (h->all)
        h->all->prev = p;
    h->all = p;
    if (h->qtail)
        h->qtail->qnext = p;
    else
        h->qhead = p;
    h->qtail = p;
    h->queued++;
    pump(h);
}

static void http_authorise(sl_regime *self, const sl_authz_query *q, sl_authz_done_fn done,
                           void *ud)
{
    http_regime *h = (http_regime *)self;
    batch *b = calloc(1, sizeof *b);
    sl_decision *d = calloc(q->n ? q->n : 1, sizeof *d);
    if (b == NULL || d == NULL) {
        free(b);
        free(d);
        sl_decision one;
        set_error(&one, "out of memory");
        done(ud, &one, q->n ? 1 : 0); /* fewer answers than asked: the rest are errors */
        return;
    }
    b->done = done;
    b->ud = ud;
    b->d = d;
    b->n = q->n;
    b->left = q->n + 1; /* held until every question is placed, so done runs once, at the end */
    for (size_t i = 0; i < q->n; i++)
        ask(h, question_body(q, q->resources[i]), b, i);
    /* Release the hold (by hand: there is no answer n): answers now if every question was
     * answered already. */
    if (--b->left == 0) {
        b->done(b->ud, b->d, b->n);
        free(b->d);
        free(b);
    }
}

static void http_free(sl_regime *self)
{
    http_regime *h = (http_regime *)self;
    if (h == NULL)
        return;
    h->closing = 1;
    sl_decision d;
    set_error(&d, "the policy regime is closing");
    while (h->all) {
        preq *p = h->all;
        if (p->easy) {
            sl__curl_uv_remove(h->cu, p->easy);
            curl_easy_cleanup(p->easy);
            p->easy = NULL;
            h->active--;
        }
        preq_unlink(h, p);
        preq_finish(p, &d);
    }
    h->qhead = h->qtail = NULL;
    sl__curl_uv_free(h->cu);
    sl__map_free(h->by_body, NULL);
    curl_slist_free_all(h->headers);
    free(h->url);
    free(h);
}

int sl_regime_http_new(sl_regime **out, const sl_regime_http_opts *o, sl_status *st)
{
    if (o == NULL || o->url == NULL || !sl__curl_url_acceptable(o->url, o->allow_http))
        return sl_status_set(st, SL_EINVAL,
                             "authz_policy_url must be an http(s) URL without credentials, plain "
                             "http only to a loopback host");
    if (o->loop == NULL)
        return sl_status_set(st, SL_EINVAL, "the HTTP policy regime needs a loop");
    if (!sl__curl_ready())
        return sl_status_set(st, SL_EINTERNAL, "libcurl could not start");
    http_regime *h = calloc(1, sizeof *h);
    if (h == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    h->base.name = "http";
    h->base.authorise = http_authorise;
    h->base.free = http_free;
    double t = o->timeout > 0 ? o->timeout : 2;
    h->timeout_ms = (long)(t * 1000 + 0.5);
    if (h->timeout_ms < 1)
        h->timeout_ms = 1;
    h->concurrency = o->concurrency ? o->concurrency : 16;
    h->queue_max = o->queue_max ? o->queue_max : 1024;
    int rc = (h->url = strdup(o->url)) ? SL_OK : SL_ENOMEM;
    if (rc == SL_OK)
        rc = sl__map_new(&h->by_body);
    if (rc == SL_OK) {
        h->headers = curl_slist_append(NULL, "Content-Type: application/json");
        struct curl_slist *l = h->headers ? curl_slist_append(h->headers, "Expect:") : NULL;
        if (l == NULL)
            rc = SL_ENOMEM;
        else
            h->headers = l;
    }
    if (rc == SL_OK)
        rc = sl__curl_uv_new(&h->cu, o->loop, on_done, h);
    if (rc != SL_OK) {
        http_free(&h->base);
        return sl_status_set(st, rc, rc == SL_ENOMEM ? NULL : "libcurl could not start");
    }
    *out = &h->base;
    return SL_OK;
}
