/* Signed requests in the authentication chain (security/httpsig.h): the request authenticator,
 * which verifies first and only then spends the nonce (so an unsigned request cannot use up a
 * nonce someone else will send), and the one-node nonce store. A nonce is kept until its
 * signature could no longer pass the freshness check (created + the skew), which is what makes
 * forgetting it afterwards safe; a full store refuses new requests instead of forgetting early.
 * The authenticator tells the store the nonce as soon as the verifier knows it (prefetch), so the
 * memory store's slot is fetched while the body is hashed and the signature checked. */
#include "security/hmac256.h"
#include "security/httpsig.h"
#include "security/siphash.h"

#include <sluice/revocation.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#define DEFAULT_MAX_NONCES 100000

/* SHA-256 of keyid, a NUL and nonce. */
static int nonce_digest(const char *keyid, const char *nonce, unsigned char h[SL__SHA256_LEN])
{
    return sl__sha256_2(keyid, strlen(keyid) + 1, nonce, strlen(nonce), h) == 0;
}

void sl__nonce_key(const char *keyid, const char *nonce, char out[SL__NONCE_KEY_LEN + 1])
{
    unsigned char h[SL__SHA256_LEN];
    if (!nonce_digest(keyid, nonce, h))
        memset(h, 0, sizeof h); /* only on allocation failure; every request then collides */
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof h; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[2 * sizeof h] = '\0';
}

/* ---- the memory nonce store ------------------------------------------------------------------ */

/* Nonces are kept in generations, one per second of `created`. A replay repeats its request's
 * signature parameters, created among them, so it is looked for in its own generation only, and
 * the requests of one second land in one table of about that second's traffic: at 60,000 signed
 * requests a second a table of 1 MiB, which the cache holds, instead of one table of every nonce
 * in the replay window (hundreds of MiB at that rate), where nearly every probe missed the cache
 * and the TLB (docs/BENCHMARKS.md, "The nonce store"). A generation is forgotten whole once the
 * latest `until` it was given has passed; the generations are swept once a second. A table is an
 * open-addressing one (linear probing) of 64-bit slots: the SipHash of keyid and nonce under a key
 * drawn when the store is made (siphash.h: a client cannot aim its nonces at one stretch of a
 * table; a collision would only refuse a fresh request, with odds of about n / 2^64), 0 for an
 * empty slot and 1 for one moved away. A table three quarters filled grows into one twice its
 * size step by step: the old one stays readable while every remember moves the next MOVE_STEP of
 * its slots, so no request waits for a whole table to be copied (copying 1.5 million slots at
 * once held the loop for 160 ms). Each insert costs O(1) amortised. */
#define EMPTY 0
#define MOVED 1
#define MOVE_STEP 4 /* a move ends after an eighth of the inserts that could fill the new table */
#define MIN_CAP 64
#define MIN_GENS 16

typedef struct table {
    uint64_t *t;
    size_t cap;        /* a power of two */
    size_t filled;     /* slots of t used */
    uint64_t *old;     /* the table being moved into t; NULL: none */
    size_t ocap, opos; /* its size, and the next of its slots to move */
    size_t oleft;      /* its used slots not moved yet */
} table;

typedef struct gen {
    int64_t created; /* the second its nonces were signed in */
    double until;    /* the latest until it was given: forgotten whole after it */
    table tab;       /* tab.t NULL: this entry of the index is unused */
} gen;

typedef struct mem_store {
    sl__nonce_store base;
    gen *gens;        /* an open-addressing index of the generations by created; no deletions */
    size_t ngen;      /* a power of two, at least twice the generations held */
    size_t live;      /* generations held */
    int64_t swept;    /* the second of the last sweep */
    int64_t newest;   /* the latest second a generation was made for */
    size_t held, max; /* nonces held (every table's, old ones' included), and the bound */
    unsigned char key[SL__SIPHASH_KEY_LEN]; /* the slots' hash key */
    /* The digest prefetch computed, for the remember of the same keyid and nonce that follows
     * (valid: 1 until then): the verifier's hashing and key operation run between the two while
     * the slot's cache line is on its way, and the digest is not computed twice. */
    struct {
        int valid;
        uint64_t d;
        char keyid[SL_HTTPSIG_KEYID_MAX + 1], nonce[SL_HTTPSIG_NONCE_MAX + 1];
    } next;
    /* The table the last remember filed into (t NULL: none), so that prefetch, when the next
     * nonce is of the same second, reaches its slot without reading the index first (one cache
     * miss less a request). Set by remember after each insert; regen, which frees tables, clears
     * it. The other frees are of tables being moved out of, which it never names: the remember
     * that starts a move files into the new table. */
    struct {
        int64_t sec;
        const uint64_t *t;
        size_t cap;
    } last;
} mem_store;

/* 1 when t holds d; else 0 and *at is the empty slot that ended the probe. MOVED slots are passed
 * over: they keep an old table's probe chains whole. */
static int find(const uint64_t *t, size_t cap, uint64_t d, size_t *at)
{
    size_t mask = cap - 1, i = d & mask;
    for (;; i = (i + 1) & mask) {
        if (t[i] == d)
            return 1;
        if (t[i] == EMPTY) {
            *at = i;
            return 0;
        }
    }
}

static int table_has(const table *tb, uint64_t d)
{
    size_t at;
    return find(tb->t, tb->cap, d, &at) || (tb->old != NULL && find(tb->old, tb->ocap, d, &at));
}

/* Moves up to n of the old table's slots into t, and frees the old table once every slot has
 * been through. t has room: it is twice the old size. */
static void move_some(table *tb, size_t n)
{
    while (tb->old != NULL && n-- > 0) {
        uint64_t *s = &tb->old[tb->opos];
        if (*s != EMPTY) {
            size_t at;
            if (!find(tb->t, tb->cap, *s, &at)) {
                tb->t[at] = *s;
                tb->filled++;
            }
            *s = MOVED;
            tb->oleft--;
        }
        if (++tb->opos == tb->ocap) {
            free(tb->old);
            tb->old = NULL;
            tb->ocap = tb->opos = tb->oleft = 0;
        }
    }
}

/* Starts moving t into a table twice its size (a move under way ends first). SL_ENOMEM leaves it
 * as it was. */
static int grow(table *tb)
{
    move_some(tb, SIZE_MAX);
    uint64_t *t = calloc(2 * tb->cap, sizeof *t);
    if (t == NULL)
        return SL_ENOMEM;
    tb->old = tb->t;
    tb->ocap = tb->cap;
    tb->opos = 0;
    tb->oleft = tb->filled;
    tb->t = t;
    tb->cap *= 2;
    tb->filled = 0;
    return SL_OK;
}

static void table_free(table *tb)
{
    free(tb->t);
    free(tb->old);
    memset(tb, 0, sizeof *tb);
}

static size_t gen_slot(int64_t created, size_t ngen)
{
    return (size_t)(uint64_t)created & (ngen - 1); /* seconds are consecutive: no clustering */
}

/* The generation of created, or NULL. */
static gen *gen_find(mem_store *m, int64_t created)
{
    for (size_t i = gen_slot(created, m->ngen);; i = (i + 1) & (m->ngen - 1)) {
        gen *g = &m->gens[i];
        if (g->tab.t == NULL)
            return NULL;
        if (g->created == created)
            return g;
    }
}

/* The nonces the generation of created holds (0: none). */
static size_t gen_held(mem_store *m, int64_t created)
{
    const gen *g = gen_find(m, created);
    return g ? g->tab.filled + g->tab.oleft : 0;
}

/* Rebuilds the index at ngen entries with the generations still live at now, freeing the others.
 * SL_ENOMEM leaves it as it was. */
static int regen(mem_store *m, size_t ngen, double now)
{
    gen *gens = calloc(ngen, sizeof *gens);
    if (gens == NULL)
        return SL_ENOMEM;
    size_t live = 0;
    for (size_t i = 0; i < m->ngen; i++) {
        gen *g = &m->gens[i];
        if (g->tab.t == NULL)
            continue;
        if (g->until <= now) {
            m->held -= g->tab.filled + g->tab.oleft;
            table_free(&g->tab);
            continue;
        }
        size_t j = gen_slot(g->created, ngen);
        while (gens[j].tab.t != NULL)
            j = (j + 1) & (ngen - 1);
        gens[j] = *g;
        live++;
    }
    free(m->gens);
    m->gens = gens;
    m->ngen = ngen;
    m->last.t = NULL;
    m->live = live;
    return SL_OK;
}

/* The second of t (seconds); 0, or -1 when it is not a number an int64_t holds. */
static int second_of(double t, int64_t *sec)
{
    if (!(t > -9e15 && t < 9e15))
        return -1;
    *sec = (int64_t)floor(t);
    return 0;
}

/* Forgets the generations whose time has passed, at most once a second unless forced, and
 * shrinks the index after a burst of many seconds. */
static void sweep(mem_store *m, double now, int force)
{
    int64_t sec;
    if (second_of(now, &sec) < 0 || (sec == m->swept && !force))
        return;
    size_t live = 0, n = m->ngen;
    for (size_t i = 0; i < m->ngen; i++)
        live += m->gens[i].tab.t != NULL && m->gens[i].until > now;
    while (n > MIN_GENS && 8 * live < n)
        n /= 2;
    if (regen(m, n, now) == SL_OK)
        m->swept = sec;
}

/* The generation of created, made when there is none (NULL: no memory). One whose time has passed
 * (a sweep has not reached it yet) is emptied first: its nonces are forgotten, its slots kept. */
static gen *gen_get(mem_store *m, int64_t created, double now)
{
    gen *g = gen_find(m, created);
    if (g != NULL) {
        if (g->until <= now) {
            table *tb = &g->tab;
            m->held -= tb->filled + tb->oleft;
            free(tb->old);
            memset(tb->t, 0, tb->cap * sizeof *tb->t);
            tb->old = NULL;
            tb->filled = tb->ocap = tb->opos = tb->oleft = 0;
        }
        return g;
    }
    if (2 * (m->live + 1) > m->ngen && regen(m, 2 * m->ngen, now) != SL_OK)
        return NULL;
    size_t i = gen_slot(created, m->ngen);
    while (m->gens[i].tab.t != NULL)
        i = (i + 1) & (m->ngen - 1);
    /* A new latest second is sized for the larger of the two latest seconds before it, so a
     * steady stream of requests does not grow each second's table from the smallest size (a dozen
     * moves of every slot at 100,000 requests a second). Two, because the latest may still have
     * been filling when this one began (clients' clocks a little apart, a burst that ended in
     * it); the one before it is whole. Seconds behind the latest (a client's clock running late)
     * start small: no one can make many large tables with a few requests. */
    size_t cap = MIN_CAP;
    if (created > m->newest) {
        size_t n = 0;
        if (m->newest != INT64_MIN) {
            size_t latest = gen_held(m, m->newest), before = gen_held(m, m->newest - 1);
            n = latest > before ? latest : before;
        }
        while (4 * (n + 1) > 3 * cap && cap < m->max)
            cap *= 2;
        m->newest = created;
    }
    g = &m->gens[i];
    if ((g->tab.t = calloc(cap, sizeof *g->tab.t)) == NULL)
        return NULL;
    g->tab.cap = cap;
    g->created = created;
    g->until = 0;
    m->live++;
    return g;
}

/* What a slot holds for keyid (kl bytes) and nonce (nl): never EMPTY or MOVED. */
static uint64_t digest64(const mem_store *m, const char *keyid, size_t kl, const char *nonce,
                         size_t nl)
{
    uint64_t d = sl__siphash24_2(m->key, keyid, kl + 1, nonce, nl); /* keyid's NUL ends it */
    return d <= MOVED ? d + 2 : d;
}

static void mem_prefetch(sl__nonce_store *s, const char *keyid, const char *nonce, double created)
{
    mem_store *m = (mem_store *)s;
    size_t kl = strlen(keyid), nl = strlen(nonce);
    m->next.valid = 0;
    if (kl >= sizeof m->next.keyid || nl >= sizeof m->next.nonce)
        return;
    m->next.d = digest64(m, keyid, kl, nonce, nl);
    memcpy(m->next.keyid, keyid, kl + 1);
    memcpy(m->next.nonce, nonce, nl + 1);
    m->next.valid = 1;
    int64_t sec;
    if (second_of(created, &sec) < 0)
        return;
    if (m->last.t != NULL && m->last.sec == sec) { /* where remember's probe starts */
        __builtin_prefetch(&m->last.t[m->next.d & (m->last.cap - 1)]);
        return;
    }
    const gen *g = gen_find(m, sec);
    if (g != NULL)
        __builtin_prefetch(&g->tab.t[m->next.d & (g->tab.cap - 1)]);
}

static void mem_remember(sl__nonce_store *s, const char *keyid, const char *nonce, double created,
                         double until, double now, sl__nonce_fn fn, void *ud)
{
    mem_store *m = (mem_store *)s;
    uint64_t d;
    int had = m->next.valid && !strcmp(m->next.keyid, keyid) && !strcmp(m->next.nonce, nonce);
    m->next.valid = 0;
    d = had ? m->next.d : digest64(m, keyid, strlen(keyid), nonce, strlen(nonce));
    sweep(m, now, 0);
    if (!(until > now)) { /* forgotten as soon as remembered: nothing to hold */
        fn(ud, SL_OK);
        return;
    }
    int64_t sec;
    if (second_of(created, &sec) < 0) {
        fn(ud, SL_EUNAVAIL);
        return;
    }
    for (int pass = 0;; pass++) {
        gen *g = gen_get(m, sec, now);
        if (g == NULL) {
            fn(ud, SL_EUNAVAIL);
            return;
        }
        table *tb = &g->tab;
        move_some(tb, MOVE_STEP);
        if (table_has(tb, d)) {
            fn(ud, SL_ETOKEN);
            return;
        }
        if (m->held + 1 > m->max) { /* full: what expired goes, or refuse */
            if (pass > 0) {
                fn(ud, SL_ELIMIT);
                return;
            }
            sweep(m, now, 1);
            continue; /* the index was rebuilt: its generation again */
        }
        if (4 * (tb->filled + 1) > 3 * tb->cap && grow(tb) != SL_OK) {
            fn(ud, SL_EUNAVAIL);
            return;
        }
        size_t at = 0; /* find sets it: d is in neither table */
        (void)find(tb->t, tb->cap, d, &at);
        tb->t[at] = d;
        tb->filled++;
        m->held++;
        m->last.sec = sec;
        m->last.t = tb->t;
        m->last.cap = tb->cap;
        if (until > g->until)
            g->until = until;
        fn(ud, SL_OK);
        return;
    }
}

static void mem_free(sl__nonce_store *s)
{
    mem_store *m = (mem_store *)s;
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->ngen; i++)
        table_free(&m->gens[i].tab);
    free(m->gens);
    free(m);
}

int sl__nonce_memory_new(size_t max, sl__nonce_store **out)
{
    mem_store *m = calloc(1, sizeof *m);
    if (m == NULL || (m->gens = calloc(MIN_GENS, sizeof *m->gens)) == NULL) {
        free(m);
        return SL_ENOMEM;
    }
    if (RAND_bytes(m->key, sizeof m->key) != 1) {
        free(m->gens);
        free(m);
        return SL_EINTERNAL;
    }
    m->ngen = MIN_GENS;
    m->max = max ? max : DEFAULT_MAX_NONCES;
    m->swept = m->newest = INT64_MIN;
    m->base.remember = mem_remember;
    m->base.prefetch = mem_prefetch;
    m->base.free = mem_free;
    *out = &m->base;
    return SL_OK;
}

size_t sl__nonce_memory_size(const sl__nonce_store *s)
{
    return ((const mem_store *)s)->held;
}

size_t sl__nonce_memory_generations(const sl__nonce_store *s, size_t *index)
{
    const mem_store *m = (const mem_store *)s;
    if (index != NULL)
        *index = m->ngen;
    return m->live;
}

void sl__nonce_memory_tables(const sl__nonce_store *s, double created, size_t *cap, size_t *old_cap)
{
    int64_t sec;
    const gen *g = second_of(created, &sec) == 0 ? gen_find((mem_store *)s, sec) : NULL;
    *cap = g ? g->tab.cap : 0;
    *old_cap = g && g->tab.old != NULL ? g->tab.ocap : 0;
}

/* ---- the authenticator ------------------------------------------------------------------------
 */

typedef struct sigauth {
    sl_authenticator base; /* first: the chain holds a pointer to it */
    const sl_httpsig_keyring *kr;
    sl__nonce_store *nonces;
    double skew;
} sigauth;

/* A verified request waiting for its nonce to be remembered. */
typedef struct pending {
    sl_identity who;
    sl_authn_cb cb;
    void *ud;
} pending;

static void on_nonce(void *ud, int status)
{
    pending *p = ud;
    switch (status) {
    case SL_OK:
        p->cb(p->ud, SL_OK, &p->who, NULL);
        break;
    case SL_ETOKEN:
        p->cb(p->ud, SL_ETOKEN, NULL, "nonce already used (replayed request)");
        break;
    case SL_ELIMIT:
        p->cb(p->ud, SL_EUNAVAIL, NULL, "replay cache full");
        break;
    default:
        p->cb(p->ud, SL_EUNAVAIL, NULL, "replay store unavailable");
        break;
    }
    sl_identity_clear(&p->who);
    free(p);
}

static int identity_of(const sl_httpsig_verified *v, sl_identity *who)
{
    const sl_httpsig_key_opts *k = v->key;
    sl_identity_init(who);
    size_t pl = strnlen(k->principal, sizeof who->principal - 1); /* what "%s" would keep */
    memcpy(who->principal, k->principal, pl);
    who->principal[pl] = '\0';
    memcpy(who->workspace, k->workspace, sizeof who->workspace);
    who->source = SL_SOURCE_SIGNATURE;
    who->role = k->role;
    who->scoped = k->scoped;
    if (k->nchannels) {
        if ((who->channels = calloc(k->nchannels, sizeof *who->channels)) == NULL)
            return SL_ENOMEM;
        for (size_t i = 0; i < k->nchannels; i++) {
            if ((who->channels[i] = strdup(k->channels[i])) == NULL) {
                sl_identity_clear(who);
                return SL_ENOMEM;
            }
            who->nchannels++;
        }
    }
    /* The keyid as the credential's id: revoking it refuses every request signed with it. */
    size_t kl = strlen(v->keyid);
    if (kl < sizeof who->token_id && sl_revocation_id_valid(v->keyid))
        memcpy(who->token_id, v->keyid, kl + 1);
    who->issued_at = v->created;
    who->expires_at = v->expires;
    return SL_OK;
}

/* The verifier knows the nonce: the store may start fetching while the signature is checked. */
static void early(void *ud, const char *keyid, const char *nonce, double created)
{
    sl__nonce_store *ns = ud;
    ns->prefetch(ns, keyid, nonce, created);
}

static void authenticate_request(sl_authenticator *a, const sl_authn_request *req, double now,
                                 sl_authn_cb cb, void *ud)
{
    sigauth *s = (sigauth *)a;
    sl_httpsig_verified v;
    sl_status st;
    sl_status_clear(&st);
    int rc = sl__httpsig_verify_early(s->kr, req, now, s->skew, s->nonces->prefetch ? early : NULL,
                                      s->nonces, &v, &st);
    if (rc != SL_OK) {
        cb(ud, rc == SL_EUNAUTH ? SL_EUNAUTH : SL_ETOKEN, NULL, st.message);
        return;
    }
    pending *p = malloc(sizeof *p); /* every field is set below (identity_of inits who) */
    if (p == NULL || identity_of(&v, &p->who) != SL_OK) {
        free(p);
        cb(ud, SL_EUNAVAIL, NULL, "out of memory");
        return;
    }
    p->cb = cb;
    p->ud = ud;
    if (v.nonce[0] == '\0') { /* the key's policy lets it go without one */
        on_nonce(p, SL_OK);
        return;
    }
    /* Past created + skew the signature is refused as too old, so the nonce can go then. */
    s->nonces->remember(s->nonces, v.keyid, v.nonce, v.created, v.created + s->skew + 1, now,
                        on_nonce, p);
}

static void destroy(sl_authenticator *a)
{
    free(a);
}

int sl__httpsig_authenticator_new(const sl_httpsig_keyring *kr, sl__nonce_store *nonces,
                                  double max_skew, sl_authenticator **out)
{
    if (kr == NULL || nonces == NULL || out == NULL || max_skew < 0)
        return SL_EINVAL;
    sigauth *s = calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    s->base.name = "signature";
    s->base.kind = SL_AUTHN_KIND_SIGNED;
    s->base.authenticate_request = authenticate_request;
    s->base.free = destroy;
    s->kr = kr;
    s->nonces = nonces;
    s->skew = max_skew > 0 ? max_skew : SL_HTTPSIG_DEFAULT_SKEW;
    *out = &s->base;
    return SL_OK;
}
