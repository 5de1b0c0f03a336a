/* Signed requests in the authentication chain (security/httpsig.h): the request authenticator,
 * which verifies first and only then spends the nonce (so an unsigned request cannot use up a
 * nonce someone else will send), and the one-node nonce store. A nonce is kept until its
 * signature could no longer pass the freshness check (created + the skew), which is what makes
 * forgetting it afterwards safe; a full store refuses new requests instead of forgetting early.
 * The authenticator tells the store the nonce as soon as the verifier knows it (prefetch), so the
 * memory store's slot is fetched while the body is hashed and the signature checked. */
#include "security/hmac256.h"
#include "security/httpsig.h"

#include <sluice/revocation.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* An open-addressing table (linear probing) of 16-byte slots, four to a cache line and never
 * across two: 96 bits of the nonce's digest (a collision would only refuse a fresh request, with
 * odds of about n / 2^96) and the second from which it may be forgotten (rounded up: a nonce is
 * never forgotten early). A third smaller than slots of a double and 128 bits: fewer cache and
 * TLB misses in a table of millions, where nearly every probe misses both. No allocation per nonce
 * and no periodic sweep: an expired slot is reused where a probe meets it. A table three quarters
 * filled grows into one twice its size step by step: the old one stays readable while every
 * remember moves the next MOVE_STEP of its slots (leaving the expired ones behind), so no request
 * waits for a whole table to be copied (copying 1.5 million slots at once held the loop for 160 ms:
 * docs/BENCHMARKS.md, "The nonce store"). A store at its bound prunes what expired in one pass
 * instead: it must make room or refuse now. Each insert costs O(1) amortised. */
typedef struct slot {
    uint64_t a;
    uint32_t b;
    uint32_t until; /* 0: never used; MOVED: in the old table, moved (or dropped) already */
} slot;
_Static_assert(sizeof(slot) == 16, "four slots to a cache line");

#define MOVED UINT32_MAX
#define MOVE_STEP 4 /* a move ends after an eighth of the inserts that could fill the new table */

typedef struct mem_store {
    sl__nonce_store base;
    slot *t;
    size_t cap;        /* a power of two */
    size_t filled;     /* slots of t used, live or expired */
    slot *old;         /* the table being moved into t; NULL: none */
    size_t ocap, opos; /* its size, and the next of its slots to move */
    size_t oleft;      /* its used slots not moved yet */
    size_t max;
    /* The digest prefetch computed, for the remember of the same keyid and nonce that follows
     * (valid: 1 until then): the verifier's hashing and key operation run between the two while
     * the slot's cache line is on its way, and the digest is not computed twice. */
    struct {
        int valid;
        uint64_t a;
        uint32_t b;
        char keyid[SL_HTTPSIG_KEYID_MAX + 1], nonce[SL_HTTPSIG_NONCE_MAX + 1];
    } next;
} mem_store;

#define MIN_CAP 64

/* Probes t for (a, b): 1 when a live slot holds them (a replay). Else 0, with *at where they go:
 * their own expired slot, or the first expired slot on the way, or the empty slot that ended the
 * probe. MOVED slots are passed over (they keep an old table's probe chains whole). */
static int find(const slot *t, size_t cap, uint64_t a, uint32_t b, double now, size_t *at)
{
    size_t mask = cap - 1, i = a & mask, reuse = SIZE_MAX;
    for (;; i = (i + 1) & mask) {
        const slot *e = &t[i];
        if (e->until == 0)
            break;
        if (e->until == MOVED)
            continue;
        if (e->a == a && e->b == b) {
            if (e->until > now)
                return 1;
            *at = i; /* the same nonce, forgotten: remembered again here */
            return 0;
        }
        if (reuse == SIZE_MAX && e->until <= now)
            reuse = i;
    }
    *at = reuse != SIZE_MAX ? reuse : i;
    return 0;
}

/* Moves up to n of the old table's slots into t (the live ones; the expired are dropped), and
 * frees the old table once every slot has been through. t has room: it is twice the old size. */
static void move_some(mem_store *m, double now, size_t n)
{
    while (m->old != NULL && n-- > 0) {
        slot *s = &m->old[m->opos];
        if (s->until != 0) {
            size_t at;
            if (s->until > now && !find(m->t, m->cap, s->a, s->b, now, &at)) {
                m->filled += m->t[at].until == 0;
                m->t[at] = *s;
            }
            s->until = MOVED;
            m->oleft--;
        }
        if (++m->opos == m->ocap) {
            free(m->old);
            m->old = NULL;
            m->ocap = m->opos = m->oleft = 0;
        }
    }
}

/* Starts moving t into a table twice its size (a move under way ends first). SL_ENOMEM leaves it
 * as it was. */
static int grow(mem_store *m, double now)
{
    move_some(m, now, SIZE_MAX);
    slot *t = calloc(2 * m->cap, sizeof *t);
    if (t == NULL)
        return SL_ENOMEM;
    m->old = m->t;
    m->ocap = m->cap;
    m->opos = 0;
    m->oleft = m->filled;
    m->t = t;
    m->cap *= 2;
    m->filled = 0;
    return SL_OK;
}

/* At the bound: t rebuilt from its live slots alone, at least twice their number in size (a move
 * under way ends first). SL_ENOMEM leaves it as it was. */
static int prune(mem_store *m, double now)
{
    move_some(m, now, SIZE_MAX);
    size_t live = 0;
    for (size_t i = 0; i < m->cap; i++)
        live += m->t[i].until > now;
    size_t cap = MIN_CAP;
    while (cap < 2 * (live + 1))
        cap *= 2;
    slot *t = calloc(cap, sizeof *t);
    if (t == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        const slot *s = &m->t[i];
        if (s->until <= now)
            continue;
        size_t j = s->a & (cap - 1);
        while (t[j].until != 0)
            j = (j + 1) & (cap - 1);
        t[j] = *s;
    }
    free(m->t);
    m->t = t;
    m->cap = cap;
    m->filled = live;
    return SL_OK;
}

/* The 96 bits of keyid and nonce's digest a slot holds; 0, or -1 when hashing failed. */
static int slot_key(const char *keyid, const char *nonce, uint64_t *a, uint32_t *b)
{
    unsigned char h[SL__SHA256_LEN];
    if (!nonce_digest(keyid, nonce, h))
        return -1;
    memcpy(a, h, 8);
    memcpy(b, h + 8, 4);
    return 0;
}

static void mem_prefetch(sl__nonce_store *s, const char *keyid, const char *nonce)
{
    mem_store *m = (mem_store *)s;
    size_t kl = strlen(keyid), nl = strlen(nonce);
    m->next.valid = 0;
    if (kl >= sizeof m->next.keyid || nl >= sizeof m->next.nonce ||
        slot_key(keyid, nonce, &m->next.a, &m->next.b) < 0)
        return;
    memcpy(m->next.keyid, keyid, kl + 1);
    memcpy(m->next.nonce, nonce, nl + 1);
    m->next.valid = 1;
    /* where remember's probe starts (a slot never straddles two cache lines) */
    __builtin_prefetch(&m->t[m->next.a & (m->cap - 1)]);
}

static void mem_remember(sl__nonce_store *s, const char *keyid, const char *nonce, double until,
                         double now, sl__nonce_fn fn, void *ud)
{
    mem_store *m = (mem_store *)s;
    uint64_t a;
    uint32_t b;
    if (m->next.valid && !strcmp(m->next.keyid, keyid) && !strcmp(m->next.nonce, nonce)) {
        a = m->next.a;
        b = m->next.b;
    } else if (slot_key(keyid, nonce, &a, &b) < 0) {
        m->next.valid = 0;
        fn(ud, SL_EUNAVAIL);
        return;
    }
    m->next.valid = 0;
    /* whole seconds, rounded up (so never early) and short of MOVED (so past 2106, until then) */
    uint32_t u = until <= 1 ? 1 : until >= MOVED - 1 ? MOVED - 1 : (uint32_t)ceil(until);
    move_some(m, now, MOVE_STEP);
    for (int pass = 0;; pass++) {
        size_t at;
        if (find(m->t, m->cap, a, b, now, &at) ||
            (m->old != NULL && find(m->old, m->ocap, a, b, now, &(size_t){0}))) {
            fn(ud, SL_ETOKEN);
            return;
        }
        if (m->t[at].until != 0) { /* an expired slot: reused, nothing more is held */
            m->t[at] = (slot){a, b, u};
            fn(ud, SL_OK);
            return;
        }
        if (m->filled + m->oleft + 1 > m->max) { /* full: what expired goes, or refuse */
            if (pass > 0 || prune(m, now) != SL_OK) {
                fn(ud, pass > 0 ? SL_ELIMIT : SL_EUNAVAIL);
                return;
            }
            continue;
        }
        if (4 * (m->filled + 1) > 3 * m->cap) {
            if (grow(m, now) != SL_OK) {
                fn(ud, SL_EUNAVAIL);
                return;
            }
            continue; /* its place in the new table */
        }
        m->t[at] = (slot){a, b, u};
        m->filled++;
        fn(ud, SL_OK);
        return;
    }
}

static void mem_free(sl__nonce_store *s)
{
    mem_store *m = (mem_store *)s;
    if (m == NULL)
        return;
    free(m->t);
    free(m->old);
    free(m);
}

int sl__nonce_memory_new(size_t max, sl__nonce_store **out)
{
    mem_store *m = calloc(1, sizeof *m);
    if (m == NULL || (m->t = calloc(MIN_CAP, sizeof *m->t)) == NULL) {
        free(m);
        return SL_ENOMEM;
    }
    m->cap = MIN_CAP;
    m->max = max ? max : DEFAULT_MAX_NONCES;
    m->base.remember = mem_remember;
    m->base.prefetch = mem_prefetch;
    m->base.free = mem_free;
    *out = &m->base;
    return SL_OK;
}

size_t sl__nonce_memory_size(const sl__nonce_store *s)
{
    const mem_store *m = (const mem_store *)s;
    return m->filled + m->oleft;
}

void sl__nonce_memory_tables(const sl__nonce_store *s, size_t *cap, size_t *old_cap)
{
    const mem_store *m = (const mem_store *)s;
    *cap = m->cap;
    *old_cap = m->old != NULL ? m->ocap : 0;
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
static void early(void *ud, const char *keyid, const char *nonce)
{
    sl__nonce_store *ns = ud;
    ns->prefetch(ns, keyid, nonce);
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
    s->nonces->remember(s->nonces, v.keyid, v.nonce, v.created + s->skew + 1, now, on_nonce, p);
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
