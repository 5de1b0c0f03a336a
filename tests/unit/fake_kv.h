/* A small in-memory sl__kv (store/kv.h) for tests and fuzz targets: committed entries in one
 * array sorted by (table, key), staged writes in a list applied in order at a "commit". A barrier
 * commits at once and answers (SL_OK, or fk->fail when set, which keeps the batch staged as the
 * real kv retries it), or, with fk->hold set, waits until fake_kv_release. scan sees committed
 * entries only, as the real kv's does. Static inline functions: include it in one file per binary. */
#ifndef SLUICE_TESTS_FAKE_KV_H
#define SLUICE_TESTS_FAKE_KV_H

#include <stdlib.h>
#include <string.h>

#include "store/kv.h"

typedef struct fk_item {
    const char *table; /* one of the SL__KV_* literals */
    unsigned char *key, *val;
    size_t klen, vlen;
    int op; /* staged only: 0 put, 1 del, 2 del_prefix */
} fk_item;

typedef struct fake_kv {
    sl__kv base;
    fk_item *c; /* committed, sorted */
    size_t nc;
    fk_item *s; /* staged, in order */
    size_t ns;
    int hold;       /* 1: barriers wait for fake_kv_release */
    int fail;       /* non-zero: commits fail with this code (SL_ESTORAGE) and keep the batch */
    int stage_fail; /* non-zero: put/del/del_prefix return it and stage nothing */
    struct {
        sl__kv_done_fn fn;
        void *ud;
    } w[256];
    size_t nw;
    size_t barriers; /* barrier calls, for tests that count them */
} fake_kv;

static inline const char *fk_table(const char *t)
{
    static const char *const all[] = {SL__KV_META,   SL__KV_CHANNELS, SL__KV_MESSAGES,
                                      SL__KV_CLAIMS, SL__KV_CURSORS,  SL__KV_ACL,
                                      SL__KV_BROKER, SL__KV_APIKEYS,  SL__KV_REVOCATIONS};
    for (size_t i = 0; t && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i], t) == 0)
            return all[i];
    return NULL;
}

static inline int fk_cmp(const char *ta, const void *ka, size_t kla, const char *tb, const void *kb,
                         size_t klb)
{
    int c = strcmp(ta, tb);
    if (c != 0)
        return c;
    size_t n = kla < klb ? kla : klb;
    c = n ? memcmp(ka, kb, n) : 0;
    return c != 0 ? c : (kla > klb) - (kla < klb);
}

static inline unsigned char *fk_dup(const void *p, size_t n)
{
    unsigned char *d = malloc(n + 1); /* NUL-terminated: tests read values as strings */
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* Index of (table, key) in the committed array, or where it would go (*found 0). */
static inline size_t fk_find(const fake_kv *f, const char *t, const void *k, size_t kl, int *found)
{
    size_t lo = 0, hi = f->nc;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = fk_cmp(f->c[mid].table, f->c[mid].key, f->c[mid].klen, t, k, kl);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline void fk_remove(fake_kv *f, size_t i)
{
    free(f->c[i].key);
    free(f->c[i].val);
    memmove(&f->c[i], &f->c[i + 1], (f->nc - i - 1) * sizeof *f->c);
    f->nc--;
}

/* Writes straight into the committed state (what a previous run left on disk). */
static inline void fake_kv_set_raw(fake_kv *f, const char *table, const void *key, size_t klen,
                                   const void *val, size_t vlen)
{
    int found;
    table = fk_table(table);
    size_t i = fk_find(f, table, key, klen, &found);
    if (found) {
        free(f->c[i].val);
    } else {
        f->c = realloc(f->c, (f->nc + 1) * sizeof *f->c);
        memmove(&f->c[i + 1], &f->c[i], (f->nc - i) * sizeof *f->c);
        f->nc++;
        f->c[i].table = table;
        f->c[i].key = fk_dup(key, klen);
        f->c[i].klen = klen;
    }
    f->c[i].val = fk_dup(val, vlen);
    f->c[i].vlen = vlen;
}

static inline void fk_apply(fake_kv *f, const fk_item *op)
{
    if (op->op == 0) {
        fake_kv_set_raw(f, op->table, op->key, op->klen, op->val, op->vlen);
        return;
    }
    for (size_t i = 0; i < f->nc;) {
        int same = strcmp(f->c[i].table, op->table) == 0;
        int hit = op->op == 1 ? same && f->c[i].klen == op->klen &&
                                    memcmp(f->c[i].key, op->key, op->klen) == 0
                              : same && f->c[i].klen >= op->klen &&
                                    (op->klen == 0 || memcmp(f->c[i].key, op->key, op->klen) == 0);
        if (hit)
            fk_remove(f, i);
        else
            i++;
    }
}

static inline void fk_commit(fake_kv *f)
{
    for (size_t i = 0; i < f->ns; i++) {
        fk_apply(f, &f->s[i]);
        free(f->s[i].key);
        free(f->s[i].val);
    }
    free(f->s);
    f->s = NULL;
    f->ns = 0;
}

static inline int fk_stage(fake_kv *f, int op, const char *table, const void *key, size_t klen,
                           const void *val, size_t vlen)
{
    const char *t = fk_table(table);
    if (f->stage_fail)
        return f->stage_fail;
    if (t == NULL || (op != 2 && (klen < 1 || klen > 511)))
        return SL_EINVAL;
    fk_item *n = realloc(f->s, (f->ns + 1) * sizeof *n);
    if (n == NULL)
        return SL_ENOMEM;
    f->s = n;
    f->s[f->ns++] = (fk_item){t, fk_dup(key, klen), val ? fk_dup(val, vlen) : NULL, klen, vlen, op};
    return SL_OK;
}

static inline int fk_put(sl__kv *kv, const char *table, const void *key, size_t klen,
                         const void *val, size_t vlen)
{
    return fk_stage((fake_kv *)kv, 0, table, key, klen, val, vlen);
}

static inline int fk_del(sl__kv *kv, const char *table, const void *key, size_t klen)
{
    return fk_stage((fake_kv *)kv, 1, table, key, klen, NULL, 0);
}

static inline int fk_del_prefix(sl__kv *kv, const char *table, const void *prefix, size_t plen)
{
    return fk_stage((fake_kv *)kv, 2, table, prefix, plen, NULL, 0);
}

static inline int fk_scan(sl__kv *kv, const char *table, const void *prefix, size_t plen,
                          sl__kv_scan_fn fn, void *ud)
{
    fake_kv *f = (fake_kv *)kv;
    if (fk_table(table) == NULL)
        return SL_EINVAL;
    for (size_t i = 0; i < f->nc; i++) {
        const fk_item *e = &f->c[i];
        if (strcmp(e->table, table) != 0 || e->klen < plen ||
            (plen && memcmp(e->key, prefix, plen) != 0))
            continue;
        int rc = fn(ud, e->key, e->klen, e->val, e->vlen);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

/* Completes every waiting barrier with rc (committing first when rc is SL_OK). */
static inline void fake_kv_release(fake_kv *f, int rc)
{
    if (rc == SL_OK)
        fk_commit(f);
    while (f->nw > 0) {
        /* First in, first out; a callback may add barriers, which join the queue. */
        sl__kv_done_fn fn = f->w[0].fn;
        void *ud = f->w[0].ud;
        memmove(&f->w[0], &f->w[1], (f->nw - 1) * sizeof f->w[0]);
        f->nw--;
        fn(ud, rc);
    }
}

static inline void fk_barrier(sl__kv *kv, sl__kv_done_fn fn, void *ud)
{
    fake_kv *f = (fake_kv *)kv;
    f->barriers++;
    if (f->ns == 0 && f->nw == 0) {
        fn(ud, SL_OK);
        return;
    }
    if (f->hold) {
        if (f->nw < sizeof f->w / sizeof f->w[0]) {
            f->w[f->nw].fn = fn;
            f->w[f->nw++].ud = ud;
        }
        return;
    }
    if (f->fail) {
        fn(ud, f->fail);
        return;
    }
    fk_commit(f);
    fn(ud, SL_OK);
}

static inline void fk_touch(sl__kv *kv) {}

static inline void fake_kv_free(fake_kv *f)
{
    if (f == NULL)
        return;
    f->fail = 0;
    fake_kv_release(f, SL_OK); /* commits what is staged first, as the real kv does */
    for (size_t i = 0; i < f->nc; i++) {
        free(f->c[i].key);
        free(f->c[i].val);
    }
    free(f->c);
    free(f);
}

static inline void fk_free(sl__kv *kv)
{
    fake_kv_free((fake_kv *)kv);
}

static const sl__kv_ops fake_kv_ops = {
    .name = "fake",
    .free = fk_free,
    .put = fk_put,
    .del = fk_del,
    .del_prefix = fk_del_prefix,
    .scan = fk_scan,
    .barrier = fk_barrier,
    .touch = fk_touch,
};

static inline fake_kv *fake_kv_new(void)
{
    fake_kv *f = calloc(1, sizeof *f);
    if (f)
        f->base.ops = &fake_kv_ops;
    return f;
}

/* The committed value of table[key] (NUL-terminated), or NULL. */
static inline const char *fake_kv_get(const fake_kv *f, const char *table, const char *key)
{
    int found;
    size_t i = fk_find(f, fk_table(table), key, strlen(key), &found);
    return found ? (const char *)f->c[i].val : NULL;
}

/* Committed entries of table. */
static inline size_t fake_kv_count(const fake_kv *f, const char *table)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nc; i++)
        n += strcmp(f->c[i].table, table) == 0;
    return n;
}

#endif
