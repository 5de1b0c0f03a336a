/* The authorise contract's machinery (docs/POLICY.md): which regime governs a resource
 * (a channel's own mode, the per-pattern override, the server-wide mode), the decision cache of
 * the pluggable regime, and the asynchronous prepare step that lets the synchronous decision
 * (sl_authorize, decide() in api/authorize.c) read answers a regime gave later on the loop.
 *
 * Why a prepare step: the pipeline's callers (the router, the channel API, the WebSocket session)
 * decide synchronously in many places. Instead of making each of them asynchronous, they ask
 * sl__authz_prepare first; it asks the regime what the cache lacks and runs their continuation
 * with the answers "handed over": every decision made inside that continuation sees them, cached
 * or not (an answer with TTL 0, or an error, is used once and never stored). Nothing is handed
 * over outside the continuation, so a later request can never see an answer it did not ask for.
 *
 * The cache: key = the identity's source, principal, role, scope, workspace (and whether it was
 * crossed into), the capability,
 * the resource and the parameters; value = the decision and its expiry (the regime's TTL clamped
 * to ttl_max). A bounded LRU (a hash map plus a doubly linked list). Allow and deny are cached;
 * errors never. Any change of the rules a decision may depend on drops the whole cache
 * (sl__authz_invalidate): dropping everything is cheap and cannot miss a dependency, where
 * dropping a part would need to know what the regime looked at. A generation counter keeps an
 * answer that was under way during an invalidation out of the cache. */
#include "api/ctx.h"

#include <sluice/authz.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

typedef struct entry {
    struct entry *prev, *next; /* LRU list: head is the most recently used */
    uint64_t hash;
    size_t klen;
    double expires;
    sl_decision d;
    char key[]; /* klen bytes and a NUL */
} entry;

typedef struct override {
    char *pattern;
    sl_mode mode;
} override;

/* Answers handed over to the decisions made inside one prepare continuation. */
typedef struct frame {
    struct frame *up;
    char **keys;
    sl_decision *d;
    size_t n;
} frame;

struct sl__authz {
    /* The table: open addressing, linear probing, backward-shift deletion (as core/map.c), but
     * with a keyed hash over 8 bytes at a time: keys are long (identity, capability, resource)
     * and a hit must cost next to nothing. cap is a power of two, at most half full. */
    entry **slots;
    size_t cap;
    uint64_t seed;
    entry *head, *tail;
    size_t count, max;
    double ttl_max;
    unsigned long gen; /* bumped by every invalidation */
    sl_regime *regime; /* owned */
    override *ovr;
    size_t novr;
    frame *hand;
    unsigned long hits, misses; /* for the bench and tests */
    size_t outstanding;         /* questions the regime has not answered yet */
    uv_loop_t *loop;            /* borrowed: where the regime answers (sl__authz_wait) */
};

int sl__authz_new(sl__authz **out)
{
    sl__authz *a = calloc(1, sizeof *a);
    if (a == NULL)
        return SL_ENOMEM;
    a->max = 10000;
    a->ttl_max = 60;
    /* The seed keeps which keys collide unknown to callers choosing principals and channel ids
     * (the cache is bounded anyway; a flood could only make it slower, never wrong). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a->seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)a ^
              0x9e3779b97f4a7c15ULL;
    *out = a;
    return SL_OK;
}

static void drop_all(sl__authz *a)
{
    for (entry *e = a->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(a->slots);
    a->slots = NULL;
    a->cap = 0;
    a->head = a->tail = NULL;
    a->count = 0;
    a->gen++;
}

void sl__authz_free(sl__authz *a)
{
    if (a == NULL)
        return;
    /* The regime first: it answers what is still under way (errors), and those continuations
     * may still read the cache. */
    sl_regime *r = a->regime;
    a->regime = NULL;
    if (r)
        r->free(r);
    drop_all(a);
    for (size_t i = 0; i < a->novr; i++)
        free(a->ovr[i].pattern);
    free(a->ovr);
    free(a);
}

/* ---- which regime ------------------------------------------------------------------------- */

sl_mode sl__authz_mode(const sl_ctx *ctx, const char *id, const char *channel)
{
    if (id == NULL || channel == NULL)
        return ctx->mode;
    const sl_channel_info *ch = sl__map_get(ctx->channels, id);
    if (ch && ch->mode != SL_MODE_INHERIT)
        return ch->mode;
    const sl__authz *a = ctx->authz;
    size_t best = 0;
    sl_mode mode = ctx->mode;
    for (size_t i = 0; a && i < a->novr; i++) {
        size_t len = strlen(a->ovr[i].pattern);
        if (len > best && sl_pattern_match(a->ovr[i].pattern, channel)) {
            best = len;
            mode = a->ovr[i].mode;
        }
    }
    return mode;
}

int sl_ctx_authz_override(sl_ctx *ctx, const char *pattern, sl_mode mode)
{
    sl__authz *a = ctx->authz;
    if (pattern == NULL || !sl_pattern_valid(pattern, strlen(pattern)) || mode < SL_MODE_OPEN ||
        mode > SL_MODE_POLICY)
        return SL_EINVAL;
    for (size_t i = 0; i < a->novr; i++)
        if (strcmp(a->ovr[i].pattern, pattern) == 0) {
            a->ovr[i].mode = mode;
            drop_all(a);
            return SL_OK;
        }
    override *o = realloc(a->ovr, (a->novr + 1) * sizeof *o);
    if (o == NULL)
        return SL_ENOMEM;
    a->ovr = o;
    if ((o[a->novr].pattern = strdup(pattern)) == NULL)
        return SL_ENOMEM;
    o[a->novr++].mode = mode;
    drop_all(a);
    return SL_OK;
}

/* ---- the cache ---------------------------------------------------------------------------- */

void sl_ctx_set_regime(sl_ctx *ctx, sl_regime *regime)
{
    sl__authz *a = ctx->authz;
    sl_regime *old = a->regime;
    a->regime = regime;
    drop_all(a);
    if (old)
        old->free(old);
}

sl_regime *sl_ctx_regime(const sl_ctx *ctx)
{
    return ctx->authz->regime;
}

void sl_ctx_set_authz_loop(sl_ctx *ctx, uv_loop_t *loop)
{
    ctx->authz->loop = loop;
}

void sl__authz_wait(sl_ctx *ctx, const int *done)
{
    sl__authz *a = ctx->authz;
    while (!*done && a->outstanding && a->loop)
        uv_run(a->loop, UV_RUN_ONCE);
}

void sl_ctx_set_authz_cache(sl_ctx *ctx, size_t max_entries, double ttl_max)
{
    ctx->authz->max = max_entries;
    ctx->authz->ttl_max = ttl_max > 0 ? ttl_max : 0;
    drop_all(ctx->authz);
}

void sl__authz_invalidate(sl_ctx *ctx, const char *why)
{
    if (ctx == NULL || ctx->authz == NULL)
        return;
    (void)why; /* the audit record of the admin route carries it; a change event needs none */
    drop_all(ctx->authz);
}

void sl_authz_invalidate(sl_ctx *ctx, const char *why)
{
    sl__authz_invalidate(ctx, why);
}

void sl__authz_stats(const sl_ctx *ctx, size_t *entries, unsigned long *hits, unsigned long *misses)
{
    *entries = ctx->authz->count;
    *hits = ctx->authz->hits;
    *misses = ctx->authz->misses;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return mix(h ^ w);
}

/* The slot of key (hash h), or of the empty slot where it would go. Requires cap > 0. */
static size_t find_slot(const sl__authz *a, const char *key, size_t klen, uint64_t h)
{
    size_t mask = a->cap - 1, i = (size_t)h & mask;
    for (entry *e; (e = a->slots[i]) != NULL; i = (i + 1) & mask)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            break;
    return i;
}

static entry *table_get(const sl__authz *a, const char *key, size_t klen, uint64_t h)
{
    return a->cap ? a->slots[find_slot(a, key, klen, h)] : NULL;
}

/* Room for one more entry: SL_OK or SL_ENOMEM (the table unchanged). */
static int table_reserve(sl__authz *a)
{
    if ((a->count + 1) * 2 <= a->cap)
        return SL_OK;
    size_t ncap = a->cap ? a->cap * 2 : 64;
    entry **ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < a->cap; i++) {
        entry *e = a->slots[i];
        if (e == NULL)
            continue;
        size_t j = (size_t)e->hash & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = e;
    }
    free(a->slots);
    a->slots = ns;
    a->cap = ncap;
    return SL_OK;
}

/* Takes e out of the table (backward-shift: no tombstones). */
static void table_del(sl__authz *a, entry *e)
{
    size_t mask = a->cap - 1, i = find_slot(a, e->key, e->klen, e->hash);
    if (a->slots[i] != e)
        return;
    a->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; a->slots[j]; j = (j + 1) & mask) {
        size_t home = (size_t)a->slots[j]->hash & mask;
        /* Move j back into the hole at i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            a->slots[i] = a->slots[j];
            a->slots[j] = NULL;
            i = j;
        }
    }
}

/* Appends s and a separator (0x1f: no principal, id, pattern or workspace holds it). */
static void put(char *buf, size_t cap, size_t *at, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n && *at + n + 1 < cap)
        memcpy(buf + *at, s, n);
    *at += n;
    if (*at + 1 < cap)
        buf[*at] = '\x1f';
    (*at)++;
}

/* The cache key into buf (cap bytes); returns its length (>= cap: did not fit, nothing usable).
 * A scope is part of the identity: the same principal with a narrower token is another question. */
static size_t make_key(char *buf, size_t cap, const sl_identity *who, const char *capability,
                       const char *resource, const char *parameters)
{
    size_t at = 0;
    /* An operator inside a workspace it crossed into (sl_identity.crossed) keeps its own grants:
     * another identity than a member of that workspace with the same name. */
    char head[5] = {(char)('0' + who->source), (char)('0' + who->role), who->scoped ? 's' : 'u',
                    who->crossed ? 'x' : 'm', 0};
    put(buf, cap, &at, head);
    put(buf, cap, &at, who->principal);
    put(buf, cap, &at, who->workspace);
    for (size_t i = 0; who->scoped && i < who->nchannels; i++)
        put(buf, cap, &at, who->channels[i]);
    put(buf, cap, &at, capability);
    put(buf, cap, &at, resource ? resource : "\x1e"); /* NULL is not "" */
    put(buf, cap, &at, parameters);
    if (at < cap)
        buf[at] = '\0';
    return at;
}

/* The key for a question in a heap string (or NULL: ENOMEM). */
static char *key_dup(const sl_identity *who, const char *capability, const char *resource,
                     const char *parameters)
{
    char small[1024];
    size_t n = make_key(small, sizeof small, who, capability, resource, parameters);
    if (n < sizeof small)
        return strdup(small);
    char *k = malloc(n + 1);
    if (k)
        make_key(k, n + 1, who, capability, resource, parameters);
    return k;
}

static void unlink_entry(sl__authz *a, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        a->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        a->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(sl__authz *a, entry *e)
{
    e->next = a->head;
    e->prev = NULL;
    if (a->head)
        a->head->prev = e;
    a->head = e;
    if (a->tail == NULL)
        a->tail = e;
}

static void remove_entry(sl__authz *a, entry *e)
{
    unlink_entry(a, e);
    table_del(a, e);
    a->count--;
    free(e);
}

/* Stores d under key when it may be cached: allow or deny, a TTL, room, and no invalidation since
 * the question was asked (gen). */
static void cache_put(sl_ctx *ctx, const char *key, const sl_decision *d, unsigned long gen)
{
    sl__authz *a = ctx->authz;
    if (d->verdict == SL_VERDICT_ERROR || !(d->ttl > 0) || a->ttl_max <= 0 || a->max == 0 ||
        gen != a->gen)
        return;
    double ttl = d->ttl < a->ttl_max ? d->ttl : a->ttl_max;
    size_t klen = strlen(key);
    uint64_t h = hash_bytes(a->seed, key, klen);
    entry *e = table_get(a, key, klen, h);
    if (e == NULL) {
        while (a->count >= a->max && a->tail)
            remove_entry(a, a->tail);
        if (table_reserve(a) != SL_OK || (e = malloc(sizeof *e + klen + 1)) == NULL)
            return;
        e->hash = h;
        e->klen = klen;
        memcpy(e->key, key, klen + 1);
        a->slots[find_slot(a, key, klen, h)] = e;
        a->count++;
    } else {
        unlink_entry(a, e);
    }
    push_front(a, e);
    e->d = *d;
    e->d.ttl = ttl;
    e->expires = sl_ctx_now(ctx) + ttl;
}

/* The answer for key (klen bytes): handed over, else cached and fresh, else NULL. */
static const sl_decision *lookup(sl_ctx *ctx, const char *key, size_t klen)
{
    sl__authz *a = ctx->authz;
    for (frame *f = a->hand; f; f = f->up)
        for (size_t i = 0; i < f->n; i++)
            if (f->keys[i] && strcmp(f->keys[i], key) == 0)
                return &f->d[i];
    entry *e = a->count ? table_get(a, key, klen, hash_bytes(a->seed, key, klen)) : NULL;
    if (e == NULL) {
        a->misses++;
        return NULL;
    }
    if (e->expires <= sl_ctx_now(ctx)) {
        remove_entry(a, e);
        a->misses++;
        return NULL;
    }
    if (e != a->head) {
        unlink_entry(a, e);
        push_front(a, e);
    }
    a->hits++;
    return &e->d;
}

static const sl_decision *lookup_q(sl_ctx *ctx, const sl_identity *who, const char *capability,
                                   const char *resource, const char *parameters)
{
    char small[1024];
    size_t n = make_key(small, sizeof small, who, capability, resource, parameters);
    if (n < sizeof small)
        return lookup(ctx, small, n);
    char *k = key_dup(who, capability, resource, parameters);
    const sl_decision *d = k ? lookup(ctx, k, n) : NULL;
    free(k);
    return d;
}

const sl_decision *sl__authz_known(sl_ctx *ctx, const sl_identity *who, const char *capability,
                                   const char *resource, const char *parameters)
{
    return lookup_q(ctx, who, capability, resource, parameters);
}

/* ---- asking the pluggable regime ---------------------------------------------------------- */

typedef struct asking {
    sl_ctx *ctx;
    unsigned long gen;
    char **keys; /* n */
    size_t n;
    sl__authz_ready_fn fn;
    void *ud;
} asking;

static void asking_free(asking *q)
{
    for (size_t i = 0; q->keys && i < q->n; i++)
        free(q->keys[i]);
    free(q->keys);
    free(q);
}

static void hand_over(sl_ctx *ctx, char **keys, sl_decision *d, size_t n, sl__authz_ready_fn fn,
                      void *ud)
{
    sl__authz *a = ctx->authz;
    frame f = {a->hand, keys, d, n};
    a->hand = &f;
    fn(ud);
    a->hand = f.up;
}

static void answered(void *ud, const sl_decision *d, size_t n)
{
    asking *q = ud;
    q->ctx->authz->outstanding--;
    sl_decision *copy = calloc(q->n ? q->n : 1, sizeof *copy);
    for (size_t i = 0; copy && i < q->n; i++) {
        if (i < n && d) {
            copy[i] = d[i];
            copy[i].reason[SL_AUTHZ_REASON_MAX] = '\0';
            if (copy[i].verdict != SL_VERDICT_ALLOW && copy[i].verdict != SL_VERDICT_DENY)
                copy[i].verdict = SL_VERDICT_ERROR;
            cache_put(q->ctx, q->keys[i], &copy[i], q->gen);
            if (copy[i].ttl > q->ctx->authz->ttl_max) /* what the caller hears: the clamp */
                copy[i].ttl = q->ctx->authz->ttl_max;
        } else { /* a regime that answered fewer than it was asked failed to answer */
            copy[i].verdict = SL_VERDICT_ERROR;
            snprintf(copy[i].reason, sizeof copy[i].reason, "the regime gave no answer");
        }
    }
    /* Without memory for the hand-over the continuation decides with what the cache holds,
     * which for the uncached answers is "not asked": an error, fail closed. */
    hand_over(q->ctx, copy ? q->keys : NULL, copy, copy ? q->n : 0, q->fn, q->ud);
    free(copy);
    asking_free(q);
}

static void all_errors(sl_ctx *ctx, char **keys, size_t n, const char *why, sl__authz_ready_fn fn,
                       void *ud)
{
    sl_decision *d = calloc(n ? n : 1, sizeof *d);
    for (size_t i = 0; d && i < n; i++) {
        d[i].verdict = SL_VERDICT_ERROR;
        snprintf(d[i].reason, sizeof d[i].reason, "%s", why);
    }
    hand_over(ctx, d ? keys : NULL, d, d ? n : 0, fn, ud);
    free(d);
}

int sl__authz_needs(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *const *res, size_t n)
{
    const sl_op_info *info = sl_op_lookup(op);
    if (info == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (sl__authz_decide(ctx, who, info, res[i], NULL, NULL) == SL__AUTHZ_ASK)
            return 1;
    return 0;
}

static void prepare_p(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *const *res,
                      size_t n, const char *parameters, sl__authz_ready_fn fn, void *ud)
{
    const sl_op_info *info = sl_op_lookup(op);
    asking *q = NULL;
    const char **ask = NULL;
    size_t m = 0;
    for (size_t i = 0; info && i < n; i++) {
        if (sl__authz_decide(ctx, who, info, res[i], parameters, NULL) != SL__AUTHZ_ASK)
            continue;
        if (q == NULL) {
            q = calloc(1, sizeof *q);
            ask = calloc(n, sizeof *ask);
            if (q == NULL || ask == NULL || (q->keys = calloc(n, sizeof *q->keys)) == NULL)
                goto nomem;
        }
        if ((q->keys[m] = key_dup(who, info->name, res[i], parameters)) == NULL)
            goto nomem;
        ask[m++] = res[i];
        q->n = m;
    }
    if (q == NULL) {
        fn(ud); /* nothing to ask: the decisions inside fn are synchronous already */
        return;
    }
    q->ctx = ctx;
    q->gen = ctx->authz->gen;
    q->fn = fn;
    q->ud = ud;
    sl_regime *r = ctx->authz->regime;
    if (r == NULL) {
        all_errors(ctx, q->keys, q->n, "no policy regime is configured", fn, ud);
        asking_free(q);
        free(ask);
        return;
    }
    sl_authz_query query = {who, info->name, ask, m, parameters};
    ctx->authz->outstanding++;
    r->authorise(r, &query, answered, q); /* may answer (and free q) before it returns */
    free(ask);
    return;
nomem:
    if (q)
        all_errors(ctx, q->keys, q->n, "out of memory", fn, ud);
    else
        all_errors(ctx, NULL, 0, "out of memory", fn, ud);
    if (q)
        asking_free(q);
    free(ask);
}

void sl__authz_prepare(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *const *res,
                       size_t n, sl__authz_ready_fn fn, void *ud)
{
    /* A request looks the same decision up several times, microseconds apart: one clock read
     * for all of them (reading it each time cost more than the lookups themselves). */
    sl__ctx_hold_now(ctx);
    prepare_p(ctx, who, op, res, n, NULL, fn, ud);
    sl__ctx_release_now(ctx);
}

/* ---- the contract for callers outside the pipeline ---------------------------------------- */

typedef struct many {
    sl_ctx *ctx;
    sl_identity who;
    const sl_op_info *info;
    char **res;
    char *parameters;
    sl_decision *d; /* n answers, allocated up front so the answer never fails */
    size_t n;
    sl_authz_done_fn done;
    void *ud;
} many;

static void many_free(many *m)
{
    sl_identity_clear(&m->who);
    for (size_t i = 0; m->res && i < m->n; i++)
        free(m->res[i]);
    free(m->res);
    free(m->parameters);
    free(m->d);
    free(m);
}

static void many_ready(void *ud)
{
    many *m = ud;
    for (size_t i = 0; i < m->n; i++) {
        const char *why = NULL;
        sl_decision *d = &m->d[i];
        int rc = sl__authz_decide(m->ctx, &m->who, m->info, m->res[i], m->parameters, &why);
        d->verdict = rc == SL_OK                               ? SL_VERDICT_ALLOW
                     : rc == SL_EFORBIDDEN || rc == SL_EUNAUTH ? SL_VERDICT_DENY
                                                               : SL_VERDICT_ERROR;
        const sl_decision *known =
            lookup_q(m->ctx, &m->who, m->info->name, m->res[i], m->parameters);
        d->ttl = known && known->verdict == d->verdict ? known->ttl : 0;
        snprintf(d->reason, sizeof d->reason, "%s",
                 why                   ? why
                 : rc == SL_OK         ? ""
                 : rc == SL_EUNAUTH    ? "authentication required"
                 : rc == SL_EFORBIDDEN ? "insufficient role or scope"
                                       : "the regime could not decide");
    }
    m->done(m->ud, m->d, m->n);
    many_free(m);
}

/* Every answer an error, in one call (the contract's "exactly once"). */
static void answer_errors(size_t n, const char *why, sl_authz_done_fn done, void *ud)
{
    sl_decision one = {SL_VERDICT_ERROR, 0, ""};
    snprintf(one.reason, sizeof one.reason, "%s", why);
    sl_decision *d = calloc(n ? n : 1, sizeof *d);
    for (size_t i = 0; d && i < n; i++)
        d[i] = one;
    /* Without memory even for that, the first answer stands for all (n is then 1 or 0). */
    done(ud, d ? d : &one, d ? n : (n ? 1 : 0));
    free(d);
}

void sl_authorise_many(sl_ctx *ctx, const sl_authz_query *q, sl_authz_done_fn done, void *ud)
{
    const sl_op_info *info = q ? sl_op_by_name(q->capability) : NULL;
    size_t n = q ? q->n : 0;
    if (info == NULL) {
        answer_errors(n, "unknown capability", done, ud);
        return;
    }
    many *m = calloc(1, sizeof *m);
    int ok = m != NULL;
    if (ok) {
        sl_identity_init(&m->who);
        m->res = calloc(n ? n : 1, sizeof *m->res);
        m->d = calloc(n ? n : 1, sizeof *m->d);
        m->n = n;
        ok = m->res && m->d;
        if (ok && q->parameters)
            ok = (m->parameters = strdup(q->parameters)) != NULL;
        if (ok && q->who)
            ok = sl_identity_copy(&m->who, q->who) == SL_OK;
        for (size_t i = 0; ok && i < n; i++)
            if (q->resources[i])
                ok = (m->res[i] = strdup(q->resources[i])) != NULL;
    }
    if (!ok) {
        if (m)
            many_free(m);
        answer_errors(n, "out of memory", done, ud);
        return;
    }
    m->ctx = ctx;
    m->info = info;
    m->done = done;
    m->ud = ud;
    if (q->who == NULL) /* a NULL identity is the system, as in sl_authorize */
        m->who.source = SL_SOURCE_SYSTEM;
    prepare_p(ctx, &m->who, info->op, (const char *const *)m->res, n, m->parameters, many_ready, m);
}

void sl_authorise(sl_ctx *ctx, const sl_identity *who, const char *capability, const char *resource,
                  const char *parameters, sl_authz_done_fn done, void *ud)
{
    sl_authz_query q = {who, capability, &resource, 1, parameters};
    sl_authorise_many(ctx, &q, done, ud);
}
