/* The in-memory store engine: every channel lives in this process and dies with it. Each message is
 * one allocation, a small header with its strings packed behind it, and is referenced from an
 * id-ordered index (binary search by id, oldest first) and, in work queues, from exactly one of two
 * heaps: `ready` (claimable now, ordered by id, so claims are FIFO even after nacks) and `timed`
 * (claimed until the lease expires, or nack-delayed until it is available again, ordered by that
 * time). A claim first moves whatever became due from `timed` to `ready`, so writing, claiming k
 * messages, acknowledging and nacking cost O(log n) per message whatever the depth. Every operation
 * reserves the memory it may need before it changes anything visible, so SL_ENOMEM leaves channels
 * as they were. Not thread-safe: the caller serialises access. */
#include "store/engine.h"

#include "core/map.h"
#include "core/message.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CLAIM_TIMEOUT 300.0
#define IDX_MIN_CAP 16
#define HEAP_MIN_CAP 16
/* Heap positions are 32-bit to keep the message header small. */
#define MAX_DEPTH ((size_t)UINT32_MAX - 1)

/* ---- messages -------------------------------------------------------------------------------- */

/* The optional strings of a message, in the order they are packed behind the header. */
static const size_t field_off[] = {
    offsetof(sl_message, sender_id), offsetof(sl_message, data),
    offsetof(sl_message, metadata),  offsetof(sl_message, correlation_id),
    offsetof(sl_message, reply_to),  offsetof(sl_message, recipient_id),
    offsetof(sl_message, origin),
};
#define NFIELDS (sizeof field_off / sizeof field_off[0])
#define IN_TIMED 0x80 /* flags: the message sits in the timed heap (else in ready) */

typedef struct reader {
    size_t claims;   /* queues: messages whose current claimer this is */
    uint64_t cursor; /* topics: sequence of the last message a cursor read returned */
    char name[];
} reader;

typedef struct msg {
    uint64_t seq; /* the id, as a number */
    double timestamp;
    double when;     /* queues, in `timed`: lease expiry when claimer != NULL, else availability */
    reader *claimer; /* queues: holder of the last claim until it is released or reclaimed */
    uint32_t hpos;   /* queues: position in its heap */
    uint32_t attempt;
    uint32_t size; /* sl_message_size: the bytes a read's byte bound counts (saturated) */
    uint8_t flags; /* bit f: field f is present (packed in strs); IN_TIMED */
    char strs[];   /* the present fields, each NUL-terminated, in field_off order */
} msg;

static char *const *cfield(const sl_message *m, size_t f)
{
    return (char *const *)((const char *)m + field_off[f]);
}

static char **field(sl_message *m, size_t f)
{
    return (char **)((char *)m + field_off[f]);
}

/* One block for the header and every string of *src. */
static msg *msg_pack(const sl_message *src, uint64_t seq)
{
    size_t len[NFIELDS], total = 0, present = 0;
    for (size_t f = 0; f < NFIELDS; f++) {
        const char *s = *cfield(src, f);
        len[f] = s ? strlen(s) + 1 : 0;
        total += len[f];
        present += s != NULL;
    }
    size_t size = offsetof(msg, strs) + total;
    /* Never below sizeof(msg), so that the header is a whole object even without strings. */
    msg *m = malloc(size < sizeof(msg) ? sizeof(msg) : size);
    if (m == NULL)
        return NULL;
    m->seq = seq;
    m->timestamp = src->timestamp;
    m->when = 0;
    m->claimer = NULL;
    m->hpos = 0;
    /* A message starts afresh in its channel, even a dead letter that was claimed elsewhere. */
    m->attempt = 0;
    m->size = total - present > UINT32_MAX ? UINT32_MAX : (uint32_t)(total - present);
    m->flags = 0;
    char *p = m->strs;
    for (size_t f = 0; f < NFIELDS; f++) {
        if (len[f] == 0)
            continue;
        memcpy(p, *cfield(src, f), len[f]);
        p += len[f];
        m->flags |= (uint8_t)(1u << f);
    }
    return m;
}

/* A deep copy for the caller; SL_ENOMEM leaves *dst zeroed. */
static int msg_export(const msg *m, sl_message *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->timestamp = m->timestamp;
    dst->attempt = m->attempt;
    dst->id = malloc(SL__MSGID_LEN + 1);
    if (dst->id == NULL)
        return SL_ENOMEM;
    sl__msgid_format(m->seq, dst->id);
    const char *p = m->strs;
    for (size_t f = 0; f < NFIELDS; f++) {
        if (!(m->flags & (1u << f)))
            continue;
        size_t n = strlen(p) + 1;
        char *s = malloc(n);
        if (s == NULL) {
            sl_message_clear(dst);
            return SL_ENOMEM;
        }
        memcpy(s, p, n);
        *field(dst, f) = s;
        p += n;
    }
    return SL_OK;
}

/* ---- the id-ordered index -------------------------------------------------------------------- */

/* Entries [lo, hi) in increasing seq; a removed message leaves a hole (m == NULL) that keeps its
 * seq, so binary search still works. The ends never hold holes, so a[lo] is the oldest message.
 * Holes are squeezed out once they outnumber the messages, which keeps scans and memory linear in
 * the depth at amortised O(1) per removal. */
typedef struct ent {
    uint64_t seq;
    msg *m;
} ent;

typedef struct idx {
    ent *a;
    size_t cap, lo, hi;
    size_t live; /* messages (entries that are not holes) */
} idx;

static void idx_compact(idx *x)
{
    size_t k = 0;
    for (size_t p = x->lo; p < x->hi; p++)
        if (x->a[p].m)
            x->a[k++] = x->a[p];
    x->lo = 0;
    x->hi = k;
}

/* Room for one more entry at the end. */
static int idx_reserve(idx *x)
{
    if (x->hi < x->cap)
        return SL_OK;
    if (x->live < x->cap / 2) {
        idx_compact(x); /* frees at least half the array: amortised over as many appends */
        return SL_OK;
    }
    size_t ncap = x->cap ? x->cap * 2 : IDX_MIN_CAP;
    if (ncap > SIZE_MAX / sizeof(ent))
        return SL_ENOMEM;
    ent *na = realloc(x->a, ncap * sizeof *na);
    if (na == NULL)
        return SL_ENOMEM;
    x->a = na;
    x->cap = ncap;
    return SL_OK;
}

static void idx_push(idx *x, msg *m)
{
    x->a[x->hi++] = (ent){m->seq, m};
    x->live++;
}

/* The first position in [lo, hi) whose seq is > seq (hi when none). */
static size_t idx_after(const idx *x, uint64_t seq)
{
    size_t lo = x->lo, hi = x->hi;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->a[mid].seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Position of the message with this seq, or SIZE_MAX. */
static size_t idx_find(const idx *x, uint64_t seq)
{
    size_t p = idx_after(x, seq);
    if (p > x->lo && x->a[p - 1].seq == seq && x->a[p - 1].m)
        return p - 1;
    return SIZE_MAX;
}

/* Leaves a hole at p; trims holes off both ends. Never moves other entries, so positions stay valid
 * during a scan. */
static void idx_take(idx *x, size_t p)
{
    x->a[p].m = NULL;
    x->live--;
    while (x->lo < x->hi && x->a[x->lo].m == NULL)
        x->lo++;
    while (x->hi > x->lo && x->a[x->hi - 1].m == NULL)
        x->hi--;
    if (x->lo == x->hi)
        x->lo = x->hi = 0;
}

/* After removals: squeeze out holes, give memory back once the index is mostly empty. */
static void idx_tidy(idx *x)
{
    if (x->live == 0) {
        free(x->a);
        memset(x, 0, sizeof *x);
        return;
    }
    if (x->hi - x->lo - x->live > x->live + IDX_MIN_CAP)
        idx_compact(x);
    if (x->cap > IDX_MIN_CAP && x->live < x->cap / 8) {
        idx_compact(x);
        size_t ncap = x->cap / 2;
        while (ncap / 4 > x->live && ncap / 2 >= IDX_MIN_CAP)
            ncap /= 2;
        ent *na = realloc(x->a, ncap * sizeof *na);
        if (na) { /* keeping the larger array is fine too */
            x->a = na;
            x->cap = ncap;
        }
    }
}

/* ---- heaps ----------------------------------------------------------------------------------- */

typedef struct heap {
    msg **a;
    size_t len, cap;
} heap;

/* `ready` orders by id; `timed` by due time, ties by id so that equal leases stay FIFO. */
static int heap_before(int timed, const msg *x, const msg *y)
{
    if (timed && x->when != y->when)
        return x->when < y->when;
    return x->seq < y->seq;
}

static void heap_set(heap *h, size_t i, msg *m)
{
    h->a[i] = m;
    m->hpos = (uint32_t)i;
}

static void heap_up(heap *h, int timed, size_t i)
{
    msg *m = h->a[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(timed, m, h->a[parent]))
            break;
        heap_set(h, i, h->a[parent]);
        i = parent;
    }
    heap_set(h, i, m);
}

static void heap_down(heap *h, int timed, size_t i)
{
    msg *m = h->a[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && heap_before(timed, h->a[c + 1], h->a[c]))
            c++;
        if (!heap_before(timed, h->a[c], m))
            break;
        heap_set(h, i, h->a[c]);
        i = c;
    }
    heap_set(h, i, m);
}

/* Room for n messages in all; pushes never allocate, so callers reserve before changing state. */
static int heap_reserve(heap *h, size_t n)
{
    if (n <= h->cap)
        return SL_OK;
    size_t ncap = h->cap ? h->cap * 2 : HEAP_MIN_CAP;
    if (ncap < n)
        ncap = n;
    if (ncap > SIZE_MAX / sizeof(msg *))
        return SL_ENOMEM;
    msg **na = realloc(h->a, ncap * sizeof *na);
    if (na == NULL)
        return SL_ENOMEM;
    h->a = na;
    h->cap = ncap;
    return SL_OK;
}

static void heap_push(heap *h, int timed, msg *m)
{
    if (timed)
        m->flags |= IN_TIMED;
    else
        m->flags &= (uint8_t)~IN_TIMED;
    h->a[h->len++] = m;
    heap_up(h, timed, h->len - 1);
}

static void heap_remove(heap *h, int timed, msg *m)
{
    size_t i = m->hpos;
    msg *last = h->a[--h->len];
    if (i == h->len)
        return;
    heap_set(h, i, last);
    if (i > 0 && heap_before(timed, last, h->a[(i - 1) / 2]))
        heap_up(h, timed, i);
    else
        heap_down(h, timed, i);
}

static msg *heap_pop(heap *h, int timed)
{
    msg *top = h->a[0];
    heap_remove(h, timed, top);
    return top;
}

static void heap_tidy(heap *h)
{
    if (h->len == 0) {
        free(h->a);
        memset(h, 0, sizeof *h);
    } else if (h->cap > HEAP_MIN_CAP && h->len < h->cap / 4) {
        msg **na = realloc(h->a, h->cap / 2 * sizeof *na);
        if (na) {
            h->a = na;
            h->cap /= 2;
        }
    }
}

/* ---- channels -------------------------------------------------------------------------------- */

typedef struct chan {
    sl_channel_info info;
    uint64_t last_seq; /* the newest id handed out; ids start at 1 and never repeat */
    idx ix;
    heap ready;       /* queues */
    heap timed;       /* queues */
    sl__map *readers; /* name -> reader: claim holders (queues), cursors (topics) */
} chan;

typedef struct mem_engine {
    sl_engine base;
    sl__map *channels; /* id -> chan */
} mem_engine;

static int is_queue(const chan *c)
{
    return c->info.kind == SL_KIND_QUEUE;
}

static double claim_timeout(const chan *c)
{
    return c->info.claim_timeout > 0 ? c->info.claim_timeout : DEFAULT_CLAIM_TIMEOUT;
}

static chan *find_chan(sl_engine *e, const char *id)
{
    return sl__map_get(((mem_engine *)e)->channels, id);
}

static int reader_get(chan *c, const char *name, reader **out)
{
    reader *r = sl__map_get(c->readers, name);
    if (r == NULL) {
        size_t n = strlen(name) + 1;
        r = calloc(1, sizeof *r + n);
        if (r == NULL)
            return SL_ENOMEM;
        memcpy(r->name, name, n);
        if (sl__map_put(c->readers, name, r, NULL) != SL_OK) {
            free(r);
            return SL_ENOMEM;
        }
    }
    *out = r;
    return SL_OK;
}

/* Queue readers exist only while they hold claims, so passing callers do not accumulate. */
static void reader_drop_if_idle(chan *c, reader *r)
{
    if (is_queue(c) && r->claims == 0)
        sl__map_del(c->readers, r->name, free);
}

static void release_claim(chan *c, msg *m)
{
    reader *r = m->claimer;
    if (r == NULL)
        return;
    m->claimer = NULL;
    r->claims--;
    reader_drop_if_idle(c, r);
}

/* Removes the message at index position p from every structure and frees it. */
static void unlink_at(chan *c, size_t p)
{
    msg *m = c->ix.a[p].m;
    if (is_queue(c)) {
        if (m->flags & IN_TIMED)
            heap_remove(&c->timed, 1, m);
        else
            heap_remove(&c->ready, 0, m);
        release_claim(c, m);
    }
    idx_take(&c->ix, p);
    free(m);
}

static void chan_tidy(chan *c)
{
    idx_tidy(&c->ix);
    heap_tidy(&c->ready);
    heap_tidy(&c->timed);
}

static size_t chan_clear(chan *c)
{
    size_t n = c->ix.live;
    for (size_t p = c->ix.lo; p < c->ix.hi; p++) {
        msg *m = c->ix.a[p].m;
        if (m == NULL)
            continue;
        if (is_queue(c))
            release_claim(c, m); /* topic cursors stay: ids never repeat */
        free(m);
    }
    c->ix.live = 0;
    c->ready.len = c->timed.len = 0;
    chan_tidy(c);
    return n;
}

static void chan_free(void *p)
{
    chan *c = p;
    if (c == NULL)
        return;
    for (size_t i = c->ix.lo; i < c->ix.hi; i++)
        free(c->ix.a[i].m);
    free(c->ix.a);
    free(c->ready.a);
    free(c->timed.a);
    sl__map_free(c->readers, free);
    sl_channel_info_clear(&c->info);
    free(c);
}

/* Topic retention: the oldest go while there are too many or they are too old. */
static void retain(chan *c, double now)
{
    size_t max_count = c->info.retention_max_count;
    double max_age = c->info.retention_max_age;
    while (c->ix.live) {
        const msg *oldest = c->ix.a[c->ix.lo].m;
        int too_many = max_count > 0 && c->ix.live > max_count;
        int too_old = max_age > 0 && oldest->timestamp < now - max_age;
        if (!too_many && !too_old)
            break;
        unlink_at(c, c->ix.lo);
    }
}

/* ---- operations ------------------------------------------------------------------------------ */

static void mem_free(sl_engine *e)
{
    if (e == NULL)
        return;
    sl__map_free(((mem_engine *)e)->channels, chan_free);
    free(e);
}

static int mem_create(sl_engine *e, const sl_channel_info *info)
{
    mem_engine *me = (mem_engine *)e;
    if (sl__map_get(me->channels, info->id))
        return SL_EEXIST;
    chan *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    if (sl__channel_info_copy(&c->info, info) != SL_OK || sl__map_new(&c->readers) != SL_OK ||
        sl__map_put(me->channels, info->id, c, NULL) != SL_OK) {
        chan_free(c);
        return SL_ENOMEM;
    }
    c->info.depth = 0;
    return SL_OK;
}

static int mem_drop(sl_engine *e, const char *id)
{
    return sl__map_del(((mem_engine *)e)->channels, id, chan_free) ? SL_OK : SL_ENOENT;
}

static int mem_info(sl_engine *e, const char *id, sl_channel_info *out)
{
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    int rc = sl__channel_info_copy(out, &c->info);
    if (rc == SL_OK)
        out->depth = c->ix.live;
    return rc;
}

typedef struct {
    sl_channel_info *out;
    size_t n;
} list_state;

static int list_one(void *ud, const char *key, void *value)
{
    list_state *ls = ud;
    const chan *c = value;
    (void)key;
    if (sl__channel_info_copy(&ls->out[ls->n], &c->info) != SL_OK)
        return SL_ENOMEM;
    ls->out[ls->n++].depth = c->ix.live;
    return 0;
}

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const sl_channel_info *)a)->id, ((const sl_channel_info *)b)->id);
}

static int mem_list(sl_engine *e, sl_channel_info **out, size_t *n)
{
    sl__map *channels = ((mem_engine *)e)->channels;
    size_t total = sl__map_size(channels);
    *out = NULL;
    *n = 0;
    if (total == 0)
        return SL_OK;
    list_state ls = {calloc(total, sizeof(sl_channel_info)), 0};
    if (ls.out == NULL)
        return SL_ENOMEM;
    if (sl__map_each(channels, list_one, &ls) != 0) {
        sl_channel_infos_free(ls.out, ls.n);
        return SL_ENOMEM;
    }
    qsort(ls.out, ls.n, sizeof *ls.out, cmp_info);
    *out = ls.out;
    *n = ls.n;
    return SL_OK;
}

static int mem_append(sl_engine *e, const char *id, sl_message *m, double now, char *id_out)
{
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    if (!is_queue(c))
        retain(c, now); /* expired messages must not count against max_messages */
    /* A topic's count retention makes room by dropping the oldest, so it refuses only when even
     * that leaves more than max_messages (i.e. when retention_max_count is larger or unset). */
    size_t after = c->ix.live + 1;
    if (!is_queue(c) && c->info.retention_max_count > 0 && after > c->info.retention_max_count)
        after = c->info.retention_max_count;
    if ((c->info.max_messages > 0 && after > c->info.max_messages) || c->ix.live >= MAX_DEPTH)
        return SL_EFULL;
    if (idx_reserve(&c->ix) != SL_OK ||
        (is_queue(c) && heap_reserve(&c->ready, c->ready.len + 1) != SL_OK))
        return SL_ENOMEM;
    msg *n = msg_pack(m, c->last_seq + 1);
    if (n == NULL)
        return SL_ENOMEM;
    c->last_seq++;
    idx_push(&c->ix, n);
    if (is_queue(c))
        heap_push(&c->ready, 0, n);
    else
        retain(c, now);
    if (id_out)
        sl__msgid_format(n->seq, id_out);
    return SL_OK;
}

/* Moves every message whose lease expired or whose nack delay passed back to `ready`. Growing
 * `ready` one message at a time (amortised) rather than to the whole depth up front keeps a claim
 * cheap while most messages are in flight. Stopping early on SL_ENOMEM is harmless: a due message
 * is claimable from either heap's point of view, it just has not moved yet. */
static int promote_due(chan *c, double now)
{
    while (c->timed.len && c->timed.a[0]->when <= now) {
        if (heap_reserve(&c->ready, c->ready.len + 1) != SL_OK)
            return SL_ENOMEM;
        msg *m = heap_pop(&c->timed, 1);
        release_claim(c, m);
        heap_push(&c->ready, 0, m);
    }
    return SL_OK;
}

/* 1 when a message of `size` bytes no longer fits after `used` bytes of a max_bytes bound. */
static int over_bound(size_t used, uint32_t size, size_t max_bytes)
{
    return size > max_bytes || used > max_bytes - size;
}

static int mem_claim(sl_engine *e, const char *id, const char *reader_name, size_t limit,
                     size_t max_bytes, double now, sl_message_list *out, sl_message_list *dead)
{
    memset(out, 0, sizeof *out);
    memset(dead, 0, sizeof *dead);
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    if (!is_queue(c))
        return SL_EKIND;
    if (promote_due(c, now) != SL_OK)
        return SL_ENOMEM;
    if (limit == 0 || c->ready.len == 0) {
        chan_tidy(c);
        return SL_OK;
    }
    size_t want = limit < c->ready.len ? limit : c->ready.len;
    reader *r;
    if (reader_get(c, reader_name, &r) != SL_OK)
        return SL_ENOMEM;
    r->claims++; /* pins r while we work */

    /* Take the candidates out of `ready` first and change nothing else until every copy exists:
     * on failure they simply go back. Messages past max_attempts are taken too (they leave). The
     * byte bound stops before the first message to claim that does not fit (the very first always
     * does), so what the reply cannot carry is never leased. */
    unsigned max_attempts = c->info.max_attempts;
    size_t npicked = 0, nclaim = 0, ndead = 0, cap = want, bytes = 0;
    msg **picked = malloc(cap * sizeof *picked);
    int rc = picked ? SL_OK : SL_ENOMEM;
    while (rc == SL_OK && nclaim < want && c->ready.len) {
        const msg *next = c->ready.a[0];
        int leaves = max_attempts > 0 && next->attempt >= max_attempts;
        if (!leaves && nclaim > 0 && over_bound(bytes, next->size, max_bytes))
            break;
        if (npicked == cap) {
            msg **np = realloc(picked, 2 * cap * sizeof *np);
            if (np == NULL) {
                rc = SL_ENOMEM;
                break;
            }
            picked = np;
            cap *= 2;
        }
        msg *m = heap_pop(&c->ready, 0);
        picked[npicked++] = m;
        if (leaves) {
            ndead++;
        } else {
            nclaim++;
            bytes += m->size;
        }
    }
    if (rc == SL_OK && heap_reserve(&c->timed, c->timed.len + nclaim) != SL_OK)
        rc = SL_ENOMEM;
    if (rc == SL_OK && nclaim && (out->items = calloc(nclaim, sizeof *out->items)) == NULL)
        rc = SL_ENOMEM;
    if (rc == SL_OK && ndead && (dead->items = calloc(ndead, sizeof *dead->items)) == NULL)
        rc = SL_ENOMEM;
    double expires = now + claim_timeout(c);
    for (size_t i = 0; rc == SL_OK && i < npicked; i++) {
        msg *m = picked[i];
        if (max_attempts > 0 && m->attempt >= max_attempts) {
            rc = msg_export(m, &dead->items[dead->len]);
            dead->len += rc == SL_OK;
        } else {
            rc = msg_export(m, &out->items[out->len]);
            if (rc == SL_OK) {
                out->items[out->len].attempt = m->attempt + 1;
                out->items[out->len].claim_expires_at = expires;
                out->len++;
            }
        }
    }
    if (rc != SL_OK) {
        for (size_t i = 0; i < npicked; i++)
            heap_push(&c->ready, 0, picked[i]);
        free(picked);
        sl_message_list_free(out);
        sl_message_list_free(dead);
        r->claims--;
        reader_drop_if_idle(c, r);
        return rc;
    }
    /* Commit: nothing below allocates. */
    for (size_t i = 0; i < npicked; i++) {
        msg *m = picked[i];
        if (max_attempts > 0 && m->attempt >= max_attempts) {
            /* Not in a heap any more: take it out of the index only. */
            idx_take(&c->ix, idx_find(&c->ix, m->seq));
            free(m);
            continue;
        }
        m->attempt++;
        m->claimer = r;
        r->claims++;
        m->when = expires;
        heap_push(&c->timed, 1, m);
    }
    out->more = c->ready.len > 0;
    free(picked);
    r->claims--;
    reader_drop_if_idle(c, r);
    chan_tidy(c);
    return SL_OK;
}

/* The message `sid` names if reader holds a live claim on it; else NULL. */
static msg *live_claim(chan *c, const reader *r, const char *sid, double now, size_t *pos)
{
    uint64_t seq;
    if (sid == NULL || !sl__msgid_parse(sid, &seq))
        return NULL;
    size_t p = idx_find(&c->ix, seq);
    if (p == SIZE_MAX)
        return NULL;
    msg *m = c->ix.a[p].m;
    if (m->claimer != r || !(m->flags & IN_TIMED) || !(m->when > now))
        return NULL;
    *pos = p;
    return m;
}

static int mem_ack(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
                   size_t n, double now, size_t *count)
{
    *count = 0;
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    if (!is_queue(c))
        return SL_EKIND;
    reader *r = sl__map_get(c->readers, reader_name);
    if (r == NULL)
        return SL_OK; /* holds no claims */
    r->claims++;      /* pins r: its last release must not free it mid-loop */
    for (size_t i = 0; i < n; i++) {
        size_t p;
        if (live_claim(c, r, ids[i], now, &p)) {
            unlink_at(c, p);
            (*count)++;
        }
    }
    r->claims--;
    reader_drop_if_idle(c, r);
    chan_tidy(c);
    return SL_OK;
}

static int mem_nack(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
                    size_t n, double delay, double now, size_t *count)
{
    *count = 0;
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    if (!is_queue(c))
        return SL_EKIND;
    reader *r = sl__map_get(c->readers, reader_name);
    if (r == NULL)
        return SL_OK;
    /* Released messages may all go to `ready` (delay 0). */
    size_t most = n < r->claims ? n : r->claims;
    if (!(delay > 0) && heap_reserve(&c->ready, c->ready.len + most) != SL_OK)
        return SL_ENOMEM;
    r->claims++;
    for (size_t i = 0; i < n; i++) {
        size_t p;
        msg *m = live_claim(c, r, ids[i], now, &p);
        if (m == NULL)
            continue;
        heap_remove(&c->timed, 1, m);
        release_claim(c, m);
        if (delay > 0) {
            m->when = now + delay;
            heap_push(&c->timed, 1, m); /* reuses the slot just freed */
        } else {
            heap_push(&c->ready, 0, m);
        }
        (*count)++;
    }
    r->claims--;
    reader_drop_if_idle(c, r);
    chan_tidy(c);
    return SL_OK;
}

static int mem_read(sl_engine *e, const char *id, const char *reader_name, const char *after,
                    size_t limit, size_t max_bytes, double now, sl_message_list *out)
{
    memset(out, 0, sizeof *out);
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    if (is_queue(c))
        return SL_EKIND;
    retain(c, now);
    uint64_t from = 0; /* return messages with seq > from */
    reader *r = NULL;
    if (after) {
        if (!sl__msgid_parse(after, &from))
            return SL_EINVAL;
    } else {
        r = sl__map_get(c->readers, reader_name);
        if (r)
            from = r->cursor;
    }
    /* Ids newer than anything written find nothing; older than what is held start at the oldest;
     * ids of removed messages continue after them. All of that is the one binary search. */
    size_t start = idx_after(&c->ix, from), n = 0, p, bytes = 0;
    for (p = start; p < c->ix.hi && n < limit; p++) {
        const msg *m = c->ix.a[p].m;
        if (m == NULL)
            continue;
        if (n > 0 && over_bound(bytes, m->size, max_bytes))
            break;
        bytes += m->size;
        n++;
    }
    /* The ends of the index never hold holes: anything left from p on is a message. */
    int more = p < c->ix.hi;
    if (n == 0) {
        chan_tidy(c);
        return SL_OK;
    }
    /* A cursor exists only once it has something to remember. It is created before the copies
     * (so that moving it cannot fail) and removed again if they fail. */
    int new_cursor = after == NULL && r == NULL;
    if (new_cursor && reader_get(c, reader_name, &r) != SL_OK)
        return SL_ENOMEM;
    uint64_t last = from;
    int rc = (out->items = calloc(n, sizeof *out->items)) ? SL_OK : SL_ENOMEM;
    for (p = start; rc == SL_OK && out->len < n; p++) {
        const msg *m = c->ix.a[p].m;
        if (m == NULL)
            continue;
        rc = msg_export(m, &out->items[out->len]);
        out->len += rc == SL_OK;
        last = m->seq;
    }
    if (rc != SL_OK) {
        sl_message_list_free(out);
        if (new_cursor)
            sl__map_del(c->readers, reader_name, free);
        return rc;
    }
    if (r)
        r->cursor = last;
    out->more = more;
    chan_tidy(c);
    return SL_OK;
}

static int mem_clear(sl_engine *e, const char *id, size_t *count)
{
    *count = 0;
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    *count = chan_clear(c);
    return SL_OK;
}

static int mem_evict(sl_engine *e, const char *id, double before, size_t max_count, size_t *count)
{
    *count = 0;
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    /* By age over all messages: timestamps need not follow id order (clock steps, dead letters). */
    if (before > 0) {
        for (size_t p = c->ix.lo; p < c->ix.hi; p++) {
            const msg *m = c->ix.a[p].m;
            if (m && m->timestamp < before) {
                unlink_at(c, p);
                (*count)++;
            }
        }
    }
    if (max_count != SIZE_MAX) {
        while (c->ix.live > max_count) {
            unlink_at(c, c->ix.lo);
            (*count)++;
        }
    }
    chan_tidy(c);
    return SL_OK;
}

static int mem_remove(sl_engine *e, const char *id, const char *const *ids, size_t n, size_t *count)
{
    *count = 0;
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        size_t p;
        if (ids[i] && sl__msgid_parse(ids[i], &seq) && (p = idx_find(&c->ix, seq)) != SIZE_MAX) {
            unlink_at(c, p);
            (*count)++;
        }
    }
    chan_tidy(c);
    return SL_OK;
}

static int mem_position(sl_engine *e, const char *id, uint64_t *seq)
{
    chan *c = find_chan(e, id);
    *seq = c ? c->last_seq : 0;
    return c ? SL_OK : SL_ENOENT;
}

static const sl_engine_ops mem_ops = {
    .name = "memory",
    .free = mem_free,
    .create = mem_create,
    .drop = mem_drop,
    .info = mem_info,
    .list = mem_list,
    .append = mem_append,
    .claim = mem_claim,
    .ack = mem_ack,
    .nack = mem_nack,
    .read = mem_read,
    .clear = mem_clear,
    .evict = mem_evict,
    .remove = mem_remove,
    .position = mem_position,
};

int sl__mem_engine_new(sl_engine **out)
{
    mem_engine *me = calloc(1, sizeof *me);
    if (me == NULL)
        return SL_ENOMEM;
    if (sl__map_new(&me->channels) != SL_OK) {
        free(me);
        return SL_ENOMEM;
    }
    me->base.ops = &mem_ops;
    *out = &me->base;
    return SL_OK;
}
