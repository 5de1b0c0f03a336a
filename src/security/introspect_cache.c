/* The introspection authenticator's answer cache (introspect.c runs the requests): well-formed
 * answers, active or not, keyed by the SHA-256 of the token, in a chained hash table of a power of
 * two buckets and a list in insertion order. An entry lives until its time (the ttl, cut short by
 * the token's exp) or until the cache is full and it is the oldest; expired entries are dropped
 * when they are looked up and from the old end before every insertion. An entry keeps no token,
 * only its digest, and copies the subject, token id, scope and workspace into one allocation. */
#include "security/introspect_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef sl__introspect_result result;

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
centry *sl__introspect_cache_get(sl_introspect *i, const uint8_t *key, double now)
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

void sl__introspect_cache_put(sl_introspect *i, const uint8_t *key, const result *r, double now)
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
    memcpy(e->ws, r->who.workspace, sizeof e->ws);
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
