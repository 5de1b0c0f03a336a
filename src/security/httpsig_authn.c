/* Signed requests in the authentication chain (security/httpsig.h): the request authenticator,
 * which verifies first and only then spends the nonce (so an unsigned request cannot use up a
 * nonce someone else will send), and the one-node nonce store. A nonce is kept until its
 * signature could no longer pass the freshness check (created + the skew), which is what makes
 * forgetting it afterwards safe; a full store refuses new requests instead of forgetting early. */
#include "security/httpsig.h"

#include <sluice/revocation.h>

#include "core/map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define DEFAULT_MAX_NONCES 100000
#define PRUNE_EVERY 10.0 /* seconds between sweeps while not full */

void sl__nonce_key(const char *keyid, const char *nonce, char out[SL__NONCE_KEY_LEN + 1])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char h[32];
    unsigned int hl = 0;
    int ok = c && EVP_DigestInit_ex(c, sl__httpsig_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(c, keyid, strlen(keyid) + 1) == 1 &&
             EVP_DigestUpdate(c, nonce, strlen(nonce)) == 1 && EVP_DigestFinal_ex(c, h, &hl) == 1;
    EVP_MD_CTX_free(c);
    if (!ok)
        memset(h, 0, sizeof h); /* only on allocation failure; every request then collides */
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof h; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[2 * sizeof h] = '\0';
}

/* ---- the memory nonce store ------------------------------------------------------------------ */

typedef struct mem_store {
    sl__nonce_store base;
    sl__map *seen; /* nonce key -> double *until */
    size_t max;
    double last_prune;
} mem_store;

typedef struct prune_ctx {
    double now;
    char (*dead)[SL__NONCE_KEY_LEN + 1];
    size_t n, cap;
} prune_ctx;

static int collect_expired(void *ud, const char *key, void *value)
{
    prune_ctx *p = ud;
    if (*(double *)value > p->now)
        return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        void *d = realloc(p->dead, cap * sizeof *p->dead);
        if (d == NULL)
            return 1; /* prune what was found so far */
        p->dead = d;
        p->cap = cap;
    }
    snprintf(p->dead[p->n++], SL__NONCE_KEY_LEN + 1, "%s", key);
    return 0;
}

static void prune(mem_store *m, double now)
{
    prune_ctx p = {now, NULL, 0, 0};
    sl__map_each(m->seen, collect_expired, &p);
    for (size_t i = 0; i < p.n; i++)
        sl__map_del(m->seen, p.dead[i], free);
    free(p.dead);
    m->last_prune = now;
}

static void mem_remember(sl__nonce_store *s, const char *keyid, const char *nonce, double until,
                         double now, sl__nonce_fn fn, void *ud)
{
    mem_store *m = (mem_store *)s;
    char k[SL__NONCE_KEY_LEN + 1];
    sl__nonce_key(keyid, nonce, k);
    double *prev = sl__map_get(m->seen, k);
    if (prev && *prev > now) {
        fn(ud, SL_ETOKEN);
        return;
    }
    if (!prev && (sl__map_size(m->seen) >= m->max || now - m->last_prune >= PRUNE_EVERY))
        prune(m, now);
    if (!prev && sl__map_size(m->seen) >= m->max) {
        fn(ud, SL_ELIMIT);
        return;
    }
    double *u = malloc(sizeof *u);
    if (u == NULL || sl__map_put(m->seen, k, u, free) != SL_OK) {
        free(u);
        fn(ud, SL_EUNAVAIL);
        return;
    }
    *u = until;
    fn(ud, SL_OK);
}

static void mem_free(sl__nonce_store *s)
{
    mem_store *m = (mem_store *)s;
    if (m == NULL)
        return;
    sl__map_free(m->seen, free);
    free(m);
}

int sl__nonce_memory_new(size_t max, sl__nonce_store **out)
{
    mem_store *m = calloc(1, sizeof *m);
    if (m == NULL || sl__map_new(&m->seen) != SL_OK) {
        free(m);
        return SL_ENOMEM;
    }
    m->max = max ? max : DEFAULT_MAX_NONCES;
    m->base.remember = mem_remember;
    m->base.free = mem_free;
    *out = &m->base;
    return SL_OK;
}

size_t sl__nonce_memory_size(const sl__nonce_store *s)
{
    return sl__map_size(((const mem_store *)s)->seen);
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
    snprintf(who->principal, sizeof who->principal, "%s", k->principal);
    memcpy(who->workspace, k->workspace, sizeof who->workspace); /* part C */
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

static void authenticate_request(sl_authenticator *a, const sl_authn_request *req, double now,
                                 sl_authn_cb cb, void *ud)
{
    sigauth *s = (sigauth *)a;
    sl_httpsig_verified v;
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_httpsig_verify(s->kr, req, now, s->skew, &v, &st);
    if (rc != SL_OK) {
        cb(ud, rc == SL_EUNAUTH ? SL_EUNAUTH : SL_ETOKEN, NULL, st.message);
        return;
    }
    pending *p = calloc(1, sizeof *p);
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
