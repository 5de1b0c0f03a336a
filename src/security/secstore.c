/* The security stores' shared value format (security/secstore.h): versioned JSON objects in, the
 * same out, and one error for stored data this build cannot read. Decoding never trusts a stored
 * byte: jansson parses (bounded by the value's length), and messages quote only the key,
 * escaped. */
#include "security/secstore.h"

#include "core/map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *sl__secstore_object(void)
{
    json_t *o = json_object();
    if (o != NULL && json_object_set_new(o, "v", json_integer(SL__SECSTORE_VERSION)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int sl__secstore_put(sl__kv *kv, const char *table, const void *key, size_t klen, const json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        return SL_ENOMEM;
    int rc = kv->ops->put(kv, table, key, klen, text, strlen(text));
    free(text);
    return rc;
}

json_t *sl__secstore_parse(const void *val, size_t vlen, char *err, size_t errsz)
{
    json_error_t je;
    json_t *o = json_loadb(val, vlen, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL) {
        /* The position only: jansson's text can quote the value. */
        snprintf(err, errsz, "invalid JSON at byte %d", je.position);
        return NULL;
    }
    json_t *v = json_object_get(o, "v");
    if (!json_is_object(o) || !json_is_integer(v)) {
        snprintf(err, errsz, "not a versioned record");
        json_decref(o);
        return NULL;
    }
    if (json_integer_value(v) != SL__SECSTORE_VERSION) {
        snprintf(err, errsz, "record version %lld is not one this build reads",
                 (long long)json_integer_value(v));
        json_decref(o);
        return NULL;
    }
    json_object_del(o, "v");
    return o;
}

int sl__secstore_key_str(const void *key, size_t klen, char buf[SL__SECSTORE_KEY_MAX + 1])
{
    if (klen == 0 || klen > SL__SECSTORE_KEY_MAX || memchr(key, '\0', klen) != NULL)
        return -1;
    memcpy(buf, key, klen);
    buf[klen] = '\0';
    return 0;
}

int sl__secstore_eformat(sl_status *st, const char *table, const void *key, size_t klen,
                         const char *why)
{
    char shown[64 * 4 + 4];
    size_t o = 0;
    const unsigned char *k = key;
    for (size_t i = 0; i < klen && i < 64; i++) {
        if (k[i] > 0x20 && k[i] < 0x7f && k[i] != '\\' && k[i] != '\'')
            shown[o++] = (char)k[i];
        else
            o += (size_t)snprintf(shown + o, sizeof shown - o, "\\x%02x", k[i]);
    }
    if (klen > 64)
        o += (size_t)snprintf(shown + o, sizeof shown - o, "...");
    shown[o] = '\0';
    /* A decoder's reason may quote a stored field name: no control byte gets through either. */
    char reason[200];
    snprintf(reason, sizeof reason, "%s", why);
    for (char *p = reason; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return sl_status_set(st, SL_EFORMAT, "stored %s entry '%s' is unreadable: %s", table, shown,
                         reason);
}

/* ---- loading a principal-keyed table ----------------------------------------------------------
 */

typedef struct loaded {
    char *principal;
    void *value;
} loaded;

typedef struct load_state {
    const char *table;
    int (*valid_key)(const char *);
    sl__secstore_decode_fn decode;
    void (*free_value)(void *);
    loaded *v;
    size_t n, cap;
    sl_status *st;
} load_state;

static int load_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    load_state *ls = ud;
    char principal[SL__SECSTORE_KEY_MAX + 1], why[160];
    if (sl__secstore_key_str(key, klen, principal) < 0 || !ls->valid_key(principal))
        return sl__secstore_eformat(ls->st, ls->table, key, klen, "not a valid principal");
    void *value = NULL;
    int rc = ls->decode(val, vlen, &value, why, sizeof why);
    if (rc == SL_EFORMAT)
        return sl__secstore_eformat(ls->st, ls->table, key, klen, why);
    if (rc == SL_OK && ls->n == ls->cap) {
        size_t nc = ls->cap ? 2 * ls->cap : 16;
        loaded *nv = realloc(ls->v, nc * sizeof *nv);
        if (nv == NULL) {
            rc = SL_ENOMEM;
        } else {
            ls->v = nv;
            ls->cap = nc;
        }
    }
    char *p = rc == SL_OK ? strdup(principal) : NULL;
    if (rc == SL_OK && p == NULL)
        rc = SL_ENOMEM;
    if (rc != SL_OK) {
        if (value)
            ls->free_value(value);
        return sl_status_set(ls->st, rc, NULL);
    }
    ls->v[ls->n++] = (loaded){p, value};
    return SL_OK;
}

int sl__secstore_load_map(sl__kv *kv, const char *table, const char *what,
                          int (*valid_key)(const char *), sl__secstore_decode_fn decode,
                          void (*free_value)(void *), sl__map *map, sl_status *st)
{
    sl_status_clear(st);
    load_state ls = {.table = table,
                     .valid_key = valid_key,
                     .decode = decode,
                     .free_value = free_value,
                     .st = st};
    int rc = kv->ops->scan(kv, table, NULL, 0, load_one, &ls);
    if (rc != SL_OK && (st == NULL || st->code != rc))
        sl_status_set(st, rc, "cannot read the stored %s: %s", what, sl_strerror(rc));
    for (size_t i = 0; rc == SL_OK && i < ls.n; i++) {
        rc = sl__map_put(map, ls.v[i].principal, ls.v[i].value, free_value);
        if (rc != SL_OK)
            sl_status_set(st, rc, NULL);
        else
            ls.v[i].value = NULL;
    }
    for (size_t i = 0; i < ls.n; i++) {
        if (ls.v[i].value)
            free_value(ls.v[i].value);
        free(ls.v[i].principal);
    }
    free(ls.v);
    return rc;
}

/* ---- applying another node's change ---------------------------------------------------------- */

/* Decodes one entry: SL_OK with *value, or an error with st filled. */
static int decode_entry(const char *table, int (*valid_key)(const char *),
                        sl__secstore_decode_fn decode, const void *key, size_t klen,
                        const void *val, size_t vlen, char principal[SL__SECSTORE_KEY_MAX + 1],
                        void **value, sl_status *st)
{
    char why[160];
    *value = NULL;
    if (sl__secstore_key_str(key, klen, principal) < 0 || !valid_key(principal))
        return sl__secstore_eformat(st, table, key, klen, "not a valid principal");
    if (val == NULL)
        return SL_OK;
    int rc = decode(val, vlen, value, why, sizeof why);
    if (rc == SL_EFORMAT)
        return sl__secstore_eformat(st, table, key, klen, why);
    return rc == SL_OK ? SL_OK : sl_status_set(st, rc, NULL);
}

/* Puts value (owned) under principal unless map holds the same already. */
static int apply_value(sl__map *map, void (*free_value)(void *), sl__secstore_same_fn same,
                       const char *principal, void *value, sl_status *st)
{
    void *old = sl__map_get(map, principal);
    if (value == NULL) {
        if (old == NULL)
            return SL__APPLY_SAME;
        sl__map_del(map, principal, free_value);
        return SL__APPLY_REMOVED;
    }
    if (old != NULL && same(old, value)) {
        free_value(value);
        return SL__APPLY_SAME;
    }
    if (sl__map_put(map, principal, value, free_value) != SL_OK) {
        free_value(value);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    return SL__APPLY_CHANGED;
}

int sl__secstore_apply_map(sl__map *map, const char *table, int (*valid_key)(const char *),
                           sl__secstore_decode_fn decode, void (*free_value)(void *),
                           sl__secstore_same_fn same, const void *key, size_t klen, const void *val,
                           size_t vlen, char principal[SL__SECSTORE_KEY_MAX + 1], sl_status *st)
{
    sl_status_clear(st);
    void *value;
    int rc = decode_entry(table, valid_key, decode, key, klen, val, vlen, principal, &value, st);
    if (rc != SL_OK)
        return rc;
    return apply_value(map, free_value, same, principal, value, st);
}

typedef struct gone_state {
    const sl__secstore_entry *e;
    size_t n;
    char **gone;
    size_t ngone;
    int oom;
} gone_state;

/* Collects the principals map holds that the table no longer names. */
static int collect_gone(void *ud, const char *key, void *value)
{
    (void)value;
    gone_state *g = ud;
    size_t kl = strlen(key);
    for (size_t i = 0; i < g->n; i++)
        if (g->e[i].klen == kl && memcmp(g->e[i].key, key, kl) == 0)
            return 0;
    if ((g->gone[g->ngone] = strdup(key)) == NULL) {
        g->oom = 1;
        return 1;
    }
    g->ngone++;
    return 0;
}

int sl__secstore_apply_map_all(sl__map *map, const char *table, int (*valid_key)(const char *),
                               sl__secstore_decode_fn decode, void (*free_value)(void *),
                               sl__secstore_same_fn same, const sl__secstore_entry *e, size_t n,
                               sl__secstore_changed_fn changed, void *ud, sl_status *st)
{
    sl_status_clear(st);
    int count = 0;
    gone_state g = {.e = e, .n = n, .gone = calloc(sl__map_size(map) + 1, sizeof(char *))};
    if (g.gone == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    sl__map_each(map, collect_gone, &g);
    for (size_t i = 0; i < g.ngone; i++) {
        sl__map_del(map, g.gone[i], free_value);
        if (changed)
            changed(ud, g.gone[i], 1);
        count++;
        free(g.gone[i]);
    }
    free(g.gone);
    if (g.oom)
        return sl_status_set(st, SL_ENOMEM, NULL);
    sl_status bad = {0};
    for (size_t i = 0; i < n; i++) {
        char principal[SL__SECSTORE_KEY_MAX + 1];
        sl_status one;
        void *value;
        int rc = decode_entry(table, valid_key, decode, e[i].key, e[i].klen, e[i].val, e[i].vlen,
                              principal, &value, &one);
        if (rc == SL_OK && value != NULL)
            rc = apply_value(map, free_value, same, principal, value, &one);
        if (rc == SL_ENOMEM) {
            sl_status_set(st, SL_ENOMEM, NULL);
            return SL_ENOMEM;
        }
        if (rc < 0) {
            bad = one;
            continue;
        }
        if (rc != SL__APPLY_SAME) {
            count++;
            if (changed)
                changed(ud, principal, rc == SL__APPLY_REMOVED);
        }
    }
    if (bad.code != SL_OK && st != NULL)
        *st = bad;
    return count;
}
