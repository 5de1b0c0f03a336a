/* The string-keyed hash map of core/map.h. Slots keep the full hash next to the key so that probes
 * rarely touch key memory and growing never rehashes strings; the table is a power of two kept at
 * most 3/4 full, which keeps linear-probe runs short. */
#include "core/map.h"

#include <sluice/error.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 8

typedef struct slot {
    uint64_t hash;
    char *key; /* NULL: empty slot */
    void *value;
} slot;

struct sl__map {
    slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t len;
};

/* FNV-1a, then a murmur3 finaliser: FNV alone leaves the low bits (the ones we index with) poorly
 * mixed for keys that differ only in their last characters ("worker-1", "worker-2"). */
static uint64_t hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

int sl__map_new(sl__map **out)
{
    sl__map *m = calloc(1, sizeof *m);
    if (m == NULL)
        return SL_ENOMEM;
    *out = m;
    return SL_OK;
}

void sl__map_free(sl__map *m, sl__map_free_fn free_value)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key == NULL)
            continue;
        free(m->slots[i].key);
        if (free_value)
            free_value(m->slots[i].value);
    }
    free(m->slots);
    free(m);
}

/* Index of key's slot, or of the empty slot where it would go. Requires cap > 0. */
static size_t find(const sl__map *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    while (m->slots[i].key != NULL && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
        i = (i + 1) & mask;
    return i;
}

void *sl__map_get(const sl__map *m, const char *key)
{
    if (m == NULL || m->len == 0)
        return NULL;
    size_t i = find(m, key, hash_key(key));
    return m->slots[i].key ? m->slots[i].value : NULL;
}

/* Moves every entry into a table of ncap slots (a power of two that holds them). */
static int rehash(sl__map *m, size_t ncap)
{
    slot *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key == NULL)
            continue;
        size_t j = (size_t)m->slots[i].hash & (ncap - 1);
        while (ns[j].key != NULL)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return SL_OK;
}

int sl__map_put(sl__map *m, const char *key, void *value, sl__map_free_fn free_prev)
{
    uint64_t h = hash_key(key);
    if (m->cap) {
        size_t i = find(m, key, h);
        if (m->slots[i].key != NULL) {
            void *prev = m->slots[i].value;
            m->slots[i].value = value;
            if (free_prev && prev != value)
                free_prev(prev);
            return SL_OK;
        }
    }
    /* Copy the key before growing so that a failure leaves the table untouched either way. */
    char *k = strdup(key);
    if (k == NULL)
        return SL_ENOMEM;
    if ((m->len + 1) * 4 > m->cap * 3 && rehash(m, m->cap ? m->cap * 2 : MIN_CAP) != SL_OK) {
        free(k);
        return SL_ENOMEM;
    }
    size_t i = find(m, key, h);
    m->slots[i] = (slot){h, k, value};
    m->len++;
    return SL_OK;
}

int sl__map_del(sl__map *m, const char *key, sl__map_free_fn free_value)
{
    if (m == NULL || m->len == 0)
        return 0;
    size_t mask = m->cap - 1;
    size_t i = find(m, key, hash_key(key));
    if (m->slots[i].key == NULL)
        return 0;
    void *value = m->slots[i].value;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->len--;
    /* Backward shift: pull later members of the probe run into the hole unless that would move
     * them before their home slot, so that every key stays reachable without tombstones. */
    for (size_t j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            i = j;
        }
    }
    /* Give memory back from maps that emptied out (maps of transient readers, say); keeping the
     * bigger table when that fails is harmless. */
    if (m->len == 0) {
        free(m->slots);
        m->slots = NULL;
        m->cap = 0;
    } else if (m->cap > MIN_CAP && m->len * 8 < m->cap) {
        rehash(m, m->cap / 2);
    }
    /* Last, because value may own the memory `key` points to. */
    if (free_value)
        free_value(value);
    return 1;
}

size_t sl__map_size(const sl__map *m)
{
    return m ? m->len : 0;
}

int sl__map_each(const sl__map *m, sl__map_iter_fn fn, void *ud)
{
    if (m == NULL)
        return 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key == NULL)
            continue;
        int rc = fn(ud, m->slots[i].key, m->slots[i].value);
        if (rc)
            return rc;
    }
    return 0;
}
