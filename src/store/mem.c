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

#include "store/kv.h"

#include "core/map.h"
#include "core/wsid.h"
#include "core/message.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#define DEFAULT_CLAIM_TIMEOUT 300.0
#define DEFAULT_DEDUP_WINDOW 120.0
#define DEFAULT_CURSOR_IDLE 86400.0
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
    offsetof(sl_message, origin),    offsetof(sl_message, dead_reason),
};
#define NFIELDS (sizeof field_off / sizeof field_off[0])
#define IN_TIMED 0x100 /* flags: the message sits in the timed heap (else in ready) */
#define FIELD_BITS 0xff

typedef struct reader {
    size_t claims;   /* queues: messages whose current claimer this is */
    uint64_t cursor; /* topics: sequence of the last message a cursor read returned */
    double used;     /* topics: when the cursor was last read (idle cursors are dropped) */
    double jused;    /* topics: the `used` the journal holds */
    char name[];
} reader;

typedef struct msg {
    uint64_t seq; /* the id, as a number */
    double timestamp;
    double when;     /* queues, in `timed`: lease expiry when claimer != NULL, else availability */
    double expires;  /* 0, or when the message expires undelivered (TTL) */
    reader *claimer; /* queues: holder of the last claim until it is released or reclaimed */
    uint32_t hpos;   /* queues: position in its heap */
    uint32_t attempt;
    uint32_t size;  /* sl_message_size: the bytes a read's byte bound counts (saturated) */
    uint16_t flags; /* bit f: field f is present (packed in strs); IN_TIMED */
    char strs[];    /* the present fields, each NUL-terminated, in field_off order */
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
    m->expires = src->expires_at > 0 ? src->expires_at : 0;
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
        m->flags |= (uint16_t)(1u << f);
    }
    return m;
}

/* A deep copy for the caller; SL_ENOMEM leaves *dst zeroed. */
static int msg_export(const msg *m, sl_message *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->timestamp = m->timestamp;
    dst->attempt = m->attempt;
    dst->expires_at = m->expires;
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
        m->flags &= (uint16_t)~IN_TIMED;
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

typedef struct mem_engine mem_engine;

/* An idempotency key, remembered for the channel's dedup_window. */
typedef struct dedup {
    struct dedup *next; /* the keys in the order they were first written, oldest first */
    uint64_t seq;       /* the id the first write got */
    double expires;
    char key[];
} dedup;

typedef struct chan {
    mem_engine *eng;
    sl_channel_info info;
    uint64_t last_seq; /* the newest id handed out; ids start at 1 and never repeat */
    idx ix;
    heap ready;       /* queues */
    heap timed;       /* queues */
    sl__map *readers; /* name -> reader: claim holders (queues), cursors (topics) */
    sl__map *dedup;   /* idempotency key -> dedup (NULL until the first key) */
    dedup *dd_head, *dd_tail;
    double next_sweep; /* topics: when idle cursors are looked for next */
} chan;

struct mem_engine {
    sl_engine base;
    sl__map *channels; /* id -> chan */
    sl__kv *kv;        /* borrowed; NULL: memory only */
    int jrc;           /* the first journal failure of the request being run (SL_OK: none) */
};

/* ---- the journal: every change written through the kv (docs/STORAGE.md) ---------------------- */

static void j_msg_put(chan *c, const msg *m);
static void j_msg_del(chan *c, uint64_t seq);
static void j_claim_put(chan *c, const msg *m);
static void j_cursor_put(chan *c, reader *r);
static void j_chan_put(chan *c);
static void j_chan_drop(mem_engine *me, const char *id);
static void j_chan_clear(chan *c);
static void j_dedup_put(chan *c, const dedup *d);
static void j_dedup_del(chan *c, const char *key);
static void j_cursor_del(chan *c, const char *name);

static int is_queue(const chan *c)
{
    return c->info.kind == SL_KIND_QUEUE;
}

static double claim_timeout(const chan *c)
{
    return c->info.claim_timeout > 0 ? c->info.claim_timeout : DEFAULT_CLAIM_TIMEOUT;
}

static double dedup_window(const chan *c)
{
    return c->info.dedup_window > 0 ? c->info.dedup_window : DEFAULT_DEDUP_WINDOW;
}

static double cursor_idle(const chan *c)
{
    return c->info.cursor_idle_timeout > 0 ? c->info.cursor_idle_timeout : DEFAULT_CURSOR_IDLE;
}

/* The redelivery delay after a message's attempt-th claim failed: the queue's backoff step, the
 * last one repeating; 0 without backoff. */
static double backoff_for(const chan *c, uint32_t attempt)
{
    size_t n = c->info.nbackoff;
    if (n == 0)
        return 0;
    if (n > SL_BACKOFF_MAX)
        n = SL_BACKOFF_MAX;
    size_t i = attempt > 0 ? attempt - 1 : 0;
    return c->info.backoff[i < n ? i : n - 1];
}

static int expired(const msg *m, double now)
{
    return m->expires > 0 && m->expires <= now;
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
    j_msg_del(c, m->seq);
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
    j_chan_clear(c);
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
    sl__map_free(c->dedup, NULL);
    for (dedup *d = c->dd_head, *next; d; d = next) {
        next = d->next;
        free(d);
    }
    sl_channel_info_clear(&c->info);
    free(c);
}

/* ---- idempotency keys ------------------------------------------------------------------------ */

/* Forgets keys whose window passed, oldest first, stopping at the first one still live: the cost
 * is the number forgotten. (A clock step back can leave an expired key behind a live one for a
 * while; it is forgotten when it reaches the front, and never matches meanwhile.) */
static void dedup_expire(chan *c, double now)
{
    while (c->dd_head && c->dd_head->expires <= now) {
        dedup *d = c->dd_head;
        c->dd_head = d->next;
        if (c->dd_head == NULL)
            c->dd_tail = NULL;
        sl__map_del(c->dedup, d->key, NULL);
        j_dedup_del(c, d->key);
        free(d);
    }
}

static const dedup *dedup_find(const chan *c, const char *key, double now)
{
    const dedup *d = c->dedup ? sl__map_get(c->dedup, key) : NULL;
    return d && d->expires > now ? d : NULL;
}

/* Remembers key for seq. SL_ENOMEM leaves nothing remembered (the message stays written: a
 * repeat would then be stored again, which is what a lost key means). */
static int dedup_add(chan *c, const char *key, uint64_t seq, double expires, int journal)
{
    if (c->dedup == NULL && sl__map_new(&c->dedup) != SL_OK)
        return SL_ENOMEM;
    dedup *d = sl__map_get(c->dedup, key);
    if (d) { /* expired but not yet forgotten: reuse it where it stands */
        d->seq = seq;
        d->expires = expires;
    } else {
        size_t n = strlen(key) + 1;
        if ((d = malloc(sizeof *d + n)) == NULL)
            return SL_ENOMEM;
        memcpy(d->key, key, n);
        d->seq = seq;
        d->expires = expires;
        d->next = NULL;
        if (sl__map_put(c->dedup, key, d, NULL) != SL_OK) {
            free(d);
            return SL_ENOMEM;
        }
        if (c->dd_tail)
            c->dd_tail->next = d;
        else
            c->dd_head = d;
        c->dd_tail = d;
    }
    if (journal)
        j_dedup_put(c, d);
    return SL_OK;
}

/* ---- topic cursors --------------------------------------------------------------------------- */

typedef struct sweep {
    double cutoff;
    reader **idle;
    size_t n, cap;
} sweep;

static int sweep_one(void *ud, const char *key, void *value)
{
    sweep *sw = ud;
    reader *r = value;
    (void)key;
    if (r->used <= sw->cutoff && sw->n < sw->cap)
        sw->idle[sw->n++] = r;
    return 0;
}

/* Drops the cursors of readers idle longer than the channel's cursor_idle_timeout. A pass visits
 * every reader, so it runs at most every eighth of the timeout: amortised O(1) per read. Out of
 * memory it simply tries again at the next read. */
static void sweep_cursors(chan *c, double now)
{
    if (now < c->next_sweep)
        return;
    double idle = cursor_idle(c);
    size_t n = sl__map_size(c->readers);
    sweep sw = {now - idle, n ? malloc(n * sizeof(reader *)) : NULL, 0, n};
    if (n && sw.idle == NULL)
        return;
    sl__map_each(c->readers, sweep_one, &sw);
    for (size_t i = 0; i < sw.n; i++) {
        j_cursor_del(c, sw.idle[i]->name);
        sl__map_del(c->readers, sw.idle[i]->name, free);
    }
    free(sw.idle);
    c->next_sweep = now + idle / 8;
}

/* Topic retention: the oldest go while there are too many or they are too old. Timestamps do not
 * decrease along a topic's ids (a message is stamped as it is appended; only a clock step back
 * breaks that), so the age test looks at the oldest only and stops at the first young message:
 * the cost is the number dropped, never the depth. */
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
    c->eng = me;
    c->info.depth = 0;
    if (c->info.epoch[0] == '\0')
        sl__epoch_new(c->info.epoch);
    j_chan_put(c);
    return SL_OK;
}

static int mem_drop(sl_engine *e, const char *id)
{
    if (!sl__map_del(((mem_engine *)e)->channels, id, chan_free))
        return SL_ENOENT;
    j_chan_drop((mem_engine *)e, id);
    return SL_OK;
}

/* (C, issue 14) A queue's claims held: the readers are the claim holders, and they are few. */
static int add_claims(void *ud, const char *key, void *value)
{
    (void)key;
    *(size_t *)ud += ((const reader *)value)->claims;
    return 0;
}

static size_t in_flight(const chan *c)
{
    size_t n = 0;
    if (is_queue(c))
        sl__map_each(c->readers, add_claims, &n);
    return n;
}

static int mem_info(sl_engine *e, const char *id, sl_channel_info *out)
{
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    int rc = sl__channel_info_copy(out, &c->info);
    if (rc == SL_OK) {
        out->depth = c->ix.live;
        out->in_flight = in_flight(c);
    }
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
    ls->out[ls->n].in_flight = in_flight(c); /* (C, issue 14) */
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
    int delayed = is_queue(c) && m->not_before > now;
    if (idx_reserve(&c->ix) != SL_OK ||
        (is_queue(c) && heap_reserve(delayed ? &c->timed : &c->ready,
                                     (delayed ? c->timed.len : c->ready.len) + 1) != SL_OK))
        return SL_ENOMEM;
    msg *n = msg_pack(m, c->last_seq + 1);
    if (n == NULL)
        return SL_ENOMEM;
    c->last_seq++;
    idx_push(&c->ix, n);
    j_msg_put(c, n);
    if (delayed) {
        /* Waits in `timed` like a nack-delayed message: claimable from not_before on. */
        n->when = m->not_before;
        heap_push(&c->timed, 1, n);
        j_claim_put(c, n);
    } else if (is_queue(c)) {
        heap_push(&c->ready, 0, n);
    } else {
        retain(c, now);
    }
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
        msg *m = c->timed.a[0];
        double b = m->claimer ? backoff_for(c, m->attempt) : 0;
        if (b > 0) {
            /* An expired lease with backoff: claimable at expiry + the attempt's step. */
            heap_pop(&c->timed, 1);
            release_claim(c, m);
            m->when += b;
            heap_push(&c->timed, 1, m); /* the slot just freed */
            j_claim_put(c, m);
            continue;
        }
        if (heap_reserve(&c->ready, c->ready.len + 1) != SL_OK)
            return SL_ENOMEM;
        heap_pop(&c->timed, 1);
        release_claim(c, m);
        heap_push(&c->ready, 0, m);
    }
    return SL_OK;
}

/* Why a message picked from `ready` leaves instead of being claimed (NULL: it is claimed). */
static const char *leave_reason(const chan *c, const msg *m, double now)
{
    if (expired(m, now))
        return "expired";
    if (c->info.max_attempts > 0 && m->attempt >= c->info.max_attempts)
        return "max_attempts";
    return NULL;
}

/* Exports m as a dead letter carrying reason. */
static int export_dead(const msg *m, const char *reason, sl_message *dst)
{
    int rc = msg_export(m, dst);
    if (rc != SL_OK)
        return rc;
    free(dst->dead_reason);
    dst->expires_at = 0; /* a dead letter is kept until someone deals with it */
    if ((dst->dead_reason = strdup(reason)) == NULL) {
        sl_message_clear(dst);
        return SL_ENOMEM;
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
    size_t npicked = 0, nclaim = 0, ndead = 0, cap = want, bytes = 0;
    msg **picked = malloc(cap * sizeof *picked);
    int rc = picked ? SL_OK : SL_ENOMEM;
    while (rc == SL_OK && nclaim < want && c->ready.len) {
        const msg *next = c->ready.a[0];
        int leaves = leave_reason(c, next, now) != NULL;
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
        const char *why = leave_reason(c, m, now);
        if (why) {
            rc = export_dead(m, why, &dead->items[dead->len]);
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
        if (leave_reason(c, m, now)) {
            /* Not in a heap any more: take it out of the index only. */
            j_msg_del(c, m->seq);
            idx_take(&c->ix, idx_find(&c->ix, m->seq));
            free(m);
            continue;
        }
        m->attempt++;
        m->claimer = r;
        r->claims++;
        m->when = expires;
        heap_push(&c->timed, 1, m);
        j_claim_put(c, m);
    }
    out->more = c->ready.len > 0;
    free(picked);
    r->claims--;
    reader_drop_if_idle(c, r);
    chan_tidy(c);
    return SL_OK;
}

/* The queue `id` and the claimer `reader_name` (*r NULL: it holds no claims) of an operation on
 * that reader's claims. SL_ENOENT, SL_EKIND for a topic. */
static int queue_reader(sl_engine *e, const char *id, const char *reader_name, chan **c, reader **r)
{
    if ((*c = find_chan(e, id)) == NULL)
        return SL_ENOENT;
    if (!is_queue(*c))
        return SL_EKIND;
    *r = sl__map_get((*c)->readers, reader_name);
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
    chan *c;
    reader *r;
    int qrc = queue_reader(e, id, reader_name, &c, &r);
    if (qrc != SL_OK)
        return qrc;
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
    chan *c;
    reader *r;
    int qrc = queue_reader(e, id, reader_name, &c, &r);
    if (qrc != SL_OK)
        return qrc;
    if (r == NULL)
        return SL_OK;
    /* Released messages may all go to `ready` (no delay, no backoff). */
    size_t most = n < r->claims ? n : r->claims;
    if (!(delay > 0) && heap_reserve(&c->ready, c->ready.len + most) != SL_OK)
        return SL_ENOMEM;
    int own_delay = delay != 0; /* < 0: at once whatever the backoff (a transport's release) */
    r->claims++;
    for (size_t i = 0; i < n; i++) {
        size_t p;
        msg *m = live_claim(c, r, ids[i], now, &p);
        if (m == NULL)
            continue;
        heap_remove(&c->timed, 1, m);
        release_claim(c, m);
        if (!own_delay)
            delay = backoff_for(c, m->attempt);
        if (delay > 0) {
            m->when = now + delay;
            heap_push(&c->timed, 1, m); /* reuses the slot just freed */
        } else {
            m->when = 0;
            heap_push(&c->ready, 0, m);
        }
        j_claim_put(c, m);
        (*count)++;
    }
    r->claims--;
    reader_drop_if_idle(c, r);
    chan_tidy(c);
    return SL_OK;
}

/* Moves who's live leases on ids to now + seconds. Nothing allocates: each message leaves the
 * timed heap and takes the slot it freed. */
static int mem_extend(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
                      size_t n, double seconds, double now, size_t *count)
{
    *count = 0;
    chan *c;
    reader *r;
    int qrc = queue_reader(e, id, reader_name, &c, &r);
    if (qrc != SL_OK)
        return qrc;
    if (r == NULL)
        return SL_OK;
    if (!(seconds > 0))
        seconds = claim_timeout(c);
    for (size_t i = 0; i < n; i++) {
        size_t p;
        msg *m = live_claim(c, r, ids[i], now, &p);
        if (m == NULL)
            continue;
        heap_remove(&c->timed, 1, m);
        m->when = now + seconds;
        heap_push(&c->timed, 1, m);
        j_claim_put(c, m);
        (*count)++;
    }
    return SL_OK;
}

/* Takes who's live claims on ids out of the queue for good, as dead letters carrying reason.
 * Copies first (the only allocations), then unlinks: SL_ENOMEM changes nothing. */
static int mem_terminate(sl_engine *e, const char *id, const char *reader_name,
                         const char *const *ids, size_t n, const char *reason, double now,
                         size_t *count, sl_message_list *dead)
{
    *count = 0;
    memset(dead, 0, sizeof *dead);
    chan *c;
    reader *r;
    int qrc = queue_reader(e, id, reader_name, &c, &r);
    if (qrc != SL_OK)
        return qrc;
    if (r == NULL || n == 0)
        return SL_OK;
    size_t *pos = malloc(n * sizeof *pos);
    if (pos == NULL || (dead->items = calloc(n, sizeof *dead->items)) == NULL) {
        free(pos);
        return SL_ENOMEM;
    }
    int rc = SL_OK;
    size_t k = 0;
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        size_t p;
        msg *m = live_claim(c, r, ids[i], now, &p);
        int seen = 0; /* the same id twice counts once */
        for (size_t j = 0; m && j < k; j++)
            seen |= pos[j] == p;
        if (m == NULL || seen)
            continue;
        rc = export_dead(m, reason ? reason : "terminated", &dead->items[k]);
        if (rc == SL_OK)
            pos[k++] = p;
        dead->len = k;
    }
    if (rc != SL_OK) {
        sl_message_list_free(dead);
        free(pos);
        return rc;
    }
    r->claims++; /* pins r: its last release must not free it mid-loop */
    for (size_t i = 0; i < k; i++)
        unlink_at(c, pos[i]);
    r->claims--;
    reader_drop_if_idle(c, r);
    *count = k;
    free(pos);
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
    sweep_cursors(c, now);
    uint64_t from = 0; /* return messages with seq > from */
    reader *r = NULL;
    if (after) {
        if (!sl__msgid_parse(after, &from))
            return SL_EINVAL;
    } else {
        r = sl__map_get(c->readers, reader_name);
        if (r) {
            from = r->cursor;
            r->used = now;
        }
    }
    /* Ids newer than anything written find nothing; older than what is held start at the oldest;
     * ids of removed messages continue after them. All of that is the one binary search. */
    size_t start = idx_after(&c->ix, from), n = 0, p, bytes = 0;
    for (p = start; p < c->ix.hi && n < limit; p++) {
        const msg *m = c->ix.a[p].m;
        if (m == NULL || expired(m, now)) /* expired: never delivered, passed by cursors */
            continue;
        if (n > 0 && over_bound(bytes, m->size, max_bytes))
            break;
        bytes += m->size;
        n++;
    }
    /* The ends of the index never hold holes: anything left from p on is a message. */
    int more = p < c->ix.hi;
    if (n == 0) {
        /* Keep the journal's idea of when the cursor was used roughly current. */
        if (r && now - r->jused >= cursor_idle(c) / 4)
            j_cursor_put(c, r);
        chan_tidy(c);
        return SL_OK;
    }
    /* A cursor exists only once it has something to remember. It is created before the copies
     * (so that moving it cannot fail) and removed again if they fail. */
    int new_cursor = after == NULL && r == NULL;
    if (new_cursor && reader_get(c, reader_name, &r) != SL_OK)
        return SL_ENOMEM;
    if (new_cursor)
        r->used = now;
    uint64_t last = from;
    int rc = (out->items = calloc(n, sizeof *out->items)) ? SL_OK : SL_ENOMEM;
    for (p = start; rc == SL_OK && out->len < n; p++) {
        const msg *m = c->ix.a[p].m;
        if (m == NULL || expired(m, now))
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
    if (r) {
        r->cursor = last;
        j_cursor_put(c, r);
    }
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

/* Moves what a claim found past max_attempts to the dead-letter queue, creating it (as a private
 * queue) on first use, in the same step as the claim: with a kv both land in one commit, so a
 * crash cannot lose a message between its queue and its dead letter. */
static void dead_letter(mem_engine *me, sl__eop *op, chan *src)
{
    const char *dl = op->dead_letter;
    if (dl == NULL || dl[0] == '\0') {
        op->dead_rc = SL_ENOENT;
        return;
    }
    chan *d = sl__map_get(me->channels, dl);
    if (d == NULL) {
        sl_channel_info info = {
            .id = (char *)dl,
            .name = (char *)dl,
            .description = "",
            .dead_letter = "",
            .kind = SL_KIND_QUEUE,
            .visibility = src->info.visibility,
            .mode = SL_MODE_INHERIT,
            .claim_timeout = DEFAULT_CLAIM_TIMEOUT,
        };
        int rc = mem_create(&me->base, &info);
        if (rc == SL_OK) /* its settings as stored, for the caller's registry */
            rc = mem_info(&me->base, dl, &op->info);
        if (rc != SL_OK) {
            op->dead_rc = rc;
            return;
        }
        op->dead_created = 1;
    }
    for (size_t i = 0; i < op->dead.len; i++) {
        int rc = mem_append(&me->base, dl, &op->dead.items[i], op->now, NULL);
        if (rc != SL_OK)
            op->dead_rc = rc;
    }
}

/* Runs op against memory; returns its code. */
static int run(mem_engine *me, sl__eop *op)
{
    sl_engine *e = &me->base;
    switch (op->kind) {
    case SL__EOP_CREATE:
        return mem_create(e, op->create);
    case SL__EOP_DROP:
        return mem_drop(e, op->channel);
    case SL__EOP_INFO:
        return mem_info(e, op->channel, &op->info);
    case SL__EOP_LIST:
        return mem_list(e, &op->infos, &op->ninfos);
    case SL__EOP_APPEND: {
        /* A batch is stored whole or not at all: room for every message first. */
        chan *c = find_chan(e, op->channel);
        if (c == NULL)
            return SL_ENOENT;
        if (is_queue(c) && c->info.max_messages > 0 &&
            c->ix.live + op->nmsgs > c->info.max_messages)
            return SL_EFULL;
        if (op->keys)
            dedup_expire(c, op->now);
        for (size_t i = 0; i < op->nmsgs; i++) {
            const char *key = op->keys ? op->keys[i] : NULL;
            const dedup *d = key ? dedup_find(c, key, op->now) : NULL;
            if (op->dups)
                op->dups[i] = d != NULL;
            if (d) { /* a repeat: the first write's id, nothing stored */
                if (op->ids_out)
                    sl__msgid_format(d->seq, op->ids_out[i]);
                continue;
            }
            int rc = mem_append(e, op->channel, (sl_message *)&op->msgs[i], op->now,
                                op->ids_out ? op->ids_out[i] : NULL);
            if (rc != SL_OK)
                return rc;
            if (key) /* out of memory the key is lost: a repeat would be stored again */
                dedup_add(c, key, c->last_seq, op->now + dedup_window(c), 1);
        }
        op->seq = c->last_seq;
        return SL_OK;
    }
    case SL__EOP_CLAIM: {
        int rc = mem_claim(e, op->channel, op->reader, op->limit, op->max_bytes, op->now, &op->list,
                           &op->dead);
        if (op->dead.len)
            dead_letter(me, op, find_chan(e, op->channel));
        return rc;
    }
    case SL__EOP_ACK:
        return mem_ack(e, op->channel, op->reader, op->ids, op->nids, op->now, &op->count);
    case SL__EOP_NACK:
        return mem_nack(e, op->channel, op->reader, op->ids, op->nids, op->delay, op->now,
                        &op->count);
    case SL__EOP_READ: {
        int rc = mem_read(e, op->channel, op->reader, op->after, op->limit, op->max_bytes, op->now,
                          &op->list);
        if (rc == SL_OK)
            mem_position(e, op->channel, &op->seq);
        return rc;
    }
    case SL__EOP_CLEAR:
        return mem_clear(e, op->channel, &op->count);
    case SL__EOP_EVICT:
        return mem_evict(e, op->channel, op->before, op->max_count, &op->count);
    case SL__EOP_REMOVE:
        return mem_remove(e, op->channel, op->ids, op->nids, &op->count);
    case SL__EOP_POSITION:
        return mem_position(e, op->channel, &op->seq);
    case SL__EOP_SYNC:
        return SL_OK;
    case SL__EOP_EXTEND:
        return mem_extend(e, op->channel, op->reader, op->ids, op->nids, op->delay, op->now,
                          &op->count);
    case SL__EOP_TERMINATE: {
        int rc = mem_terminate(e, op->channel, op->reader, op->ids, op->nids, op->reason, op->now,
                               &op->count, &op->dead);
        if (op->dead.len)
            dead_letter(me, op, find_chan(e, op->channel));
        return rc;
    }
    case SL__EOP_PRESENCE_SET:
    case SL__EOP_PRESENCE_DEL:
    case SL__EOP_PRESENCE_GET:
        /* Presence is kept by the hub of this one process. */
        return SL_EINVAL;
    }
    return SL_EINVAL;
}

static void on_durable(void *ud, int rc)
{
    sl__eop *op = ud;
    if (rc != SL_OK && op->rc == SL_OK)
        op->rc = rc;
    op->done(op);
}

/* Memory changes at once; with a kv the answer waits until they are durable. Reads wait too, so
 * that no reply shows what a crash could still take back. */
static void mem_submit(sl_engine *e, sl__eop *op)
{
    mem_engine *me = (mem_engine *)e;
    me->jrc = SL_OK;
    op->rc = run(me, op);
    if (op->rc == SL_OK && me->jrc != SL_OK)
        op->rc = SL_ESTORAGE; /* in memory, but not staged: it would not survive a crash */
    if (me->kv == NULL)
        op->done(op);
    else
        me->kv->ops->barrier(me->kv, on_durable, op);
}

/* ---- the journal ----------------------------------------------------------------------------- */

/* Keys: channel id, NUL, then the message's seq big-endian (so keys sort by id), or the reader's
 * name for cursors. Values carry a version byte first. Messages:
 *   1 | timestamp (8, IEEE double, host order) | flags (1) | per present field: len (4) + bytes
 * Claims (the state a message has once claimed or nacked):
 *   1 | attempt (4) | when (8) | claimer name (the rest; empty: none)
 * (Version 2 adds expires (8, 0: never) after the timestamp; version 1 is still read.)
 * Cursors: 1 | seq (8), or 2 | seq (8) | last used (8). Idempotency keys (channel id, NUL, key):
 * 1 | seq (8) | expires (8). Channel settings: a JSON object with "v":1. The sequence high-water
 * mark of a channel: meta "seq:" id -> seq (8), so ids never repeat after a restart; it is only
 * written when the newest message is removed, and loading takes the larger of it and the newest
 * stored message. Host byte order is fine for values: a data directory is not moved across
 * architectures (docs/STORAGE.md). */
#define J_VERSION 1
#define J_MSG_VERSION 2
#define J_CURSOR_VERSION 2

static size_t key_seq(char *k, const char *id, uint64_t seq)
{
    size_t n = strlen(id);
    memcpy(k, id, n);
    k[n] = '\0';
    for (int i = 0; i < 8; i++)
        k[n + 1 + i] = (char)(seq >> (56 - 8 * i));
    return n + 9;
}

static size_t key_name(char *k, const char *id, const char *name)
{
    size_t n = strlen(id), m = strlen(name);
    memcpy(k, id, n);
    k[n] = '\0';
    memcpy(k + n + 1, name, m);
    return n + 1 + m;
}

static void j_check(mem_engine *me, int rc)
{
    if (rc != SL_OK && me->jrc == SL_OK)
        me->jrc = rc;
}

static void j_msg_put(chan *c, const msg *m)
{
    mem_engine *me = c->eng;
    if (me->kv == NULL)
        return;
    size_t strs = 0;
    const char *p = m->strs;
    for (size_t f = 0; f < NFIELDS; f++)
        if (m->flags & (1u << f)) {
            size_t n = strlen(p);
            strs += 4 + n;
            p += n + 1;
        }
    size_t len = 1 + 8 + 8 + 1 + strs;
    char small[512], *v = len <= sizeof small ? small : malloc(len);
    if (v == NULL) {
        j_check(me, SL_ENOMEM);
        return;
    }
    v[0] = J_MSG_VERSION;
    memcpy(v + 1, &m->timestamp, 8);
    memcpy(v + 9, &m->expires, 8);
    v[17] = (char)(m->flags & FIELD_BITS);
    char *o = v + 18;
    p = m->strs;
    for (size_t f = 0; f < NFIELDS; f++)
        if (m->flags & (1u << f)) {
            uint32_t n = (uint32_t)strlen(p);
            memcpy(o, &n, 4);
            memcpy(o + 4, p, n);
            o += 4 + n;
            p += n + 1;
        }
    char k[SL_CHANNEL_ID_MAX + 9];
    size_t kl = key_seq(k, c->info.id, m->seq);
    j_check(me, me->kv->ops->put(me->kv, SL__KV_MESSAGES, k, kl, v, len));
    if (v != small)
        free(v);
}

/* The high-water mark is the newest stored message's seq, so it is written only when that
 * message goes: one small write per emptied tail instead of one per append. */
static void j_seq_put(chan *c)
{
    mem_engine *me = c->eng;
    uint64_t hw = c->last_seq;
    char sk[SL_CHANNEL_ID_MAX + 5];
    int skl = snprintf(sk, sizeof sk, "seq:%s", c->info.id);
    j_check(me, me->kv->ops->put(me->kv, SL__KV_META, sk, (size_t)skl, &hw, 8));
}

static void j_msg_del(chan *c, uint64_t seq)
{
    mem_engine *me = c->eng;
    if (me->kv == NULL)
        return;
    char k[SL_CHANNEL_ID_MAX + 9];
    size_t kl = key_seq(k, c->info.id, seq);
    j_check(me, me->kv->ops->del(me->kv, SL__KV_MESSAGES, k, kl));
    j_check(me, me->kv->ops->del(me->kv, SL__KV_CLAIMS, k, kl));
    if (seq == c->last_seq)
        j_seq_put(c);
}

static void j_claim_put(chan *c, const msg *m)
{
    mem_engine *me = c->eng;
    if (me->kv == NULL)
        return;
    char v[1 + 4 + 8 + SL_PRINCIPAL_MAX + 1];
    size_t nl = m->claimer ? strlen(m->claimer->name) : 0;
    if (nl > SL_PRINCIPAL_MAX)
        nl = SL_PRINCIPAL_MAX;
    v[0] = J_VERSION;
    memcpy(v + 1, &m->attempt, 4);
    memcpy(v + 5, &m->when, 8);
    if (nl)
        memcpy(v + 13, m->claimer->name, nl);
    char k[SL_CHANNEL_ID_MAX + 9];
    size_t kl = key_seq(k, c->info.id, m->seq);
    j_check(me, me->kv->ops->put(me->kv, SL__KV_CLAIMS, k, kl, v, 13 + nl));
}

static void j_cursor_put(chan *c, reader *r)
{
    mem_engine *me = c->eng;
    r->jused = r->used;
    if (me->kv == NULL)
        return;
    char k[SL_CHANNEL_ID_MAX + SL_PRINCIPAL_MAX + 2], v[17];
    size_t kl = key_name(k, c->info.id, r->name);
    v[0] = J_CURSOR_VERSION;
    memcpy(v + 1, &r->cursor, 8);
    memcpy(v + 9, &r->used, 8);
    j_check(me, me->kv->ops->put(me->kv, SL__KV_CURSORS, k, kl, v, 17));
}

static void j_cursor_del(chan *c, const char *name)
{
    mem_engine *me = c->eng;
    if (me->kv == NULL)
        return;
    char k[SL_CHANNEL_ID_MAX + SL_PRINCIPAL_MAX + 2];
    size_t kl = key_name(k, c->info.id, name);
    j_check(me, me->kv->ops->del(me->kv, SL__KV_CURSORS, k, kl));
}

static void j_dedup_put(chan *c, const dedup *d)
{
    mem_engine *me = c->eng;
    if (me->kv == NULL)
        return;
    char k[SL_CHANNEL_ID_MAX + SL__IDEMPOTENCY_KEY_MAX + 2], v[17];
    size_t kl = key_name(k, c->info.id, d->key);
    v[0] = J_VERSION;
    memcpy(v + 1, &d->seq, 8);
    memcpy(v + 9, &d->expires, 8);
    j_check(me, me->kv->ops->put(me->kv, SL__KV_DEDUP, k, kl, v, 17));
}

static void j_dedup_del(chan *c, const char *key)
{
    mem_engine *me = c->eng;
    if (me->kv == NULL)
        return;
    char k[SL_CHANNEL_ID_MAX + SL__IDEMPOTENCY_KEY_MAX + 2];
    size_t kl = key_name(k, c->info.id, key);
    j_check(me, me->kv->ops->del(me->kv, SL__KV_DEDUP, k, kl));
}

static json_t *info_to_json(const sl_channel_info *i)
{
    json_t *backoff = json_array();
    for (size_t k = 0; backoff && k < i->nbackoff && k < SL_BACKOFF_MAX; k++)
        json_array_append_new(backoff, json_real(i->backoff[k]));
    json_t *o = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:I, s:I, s:I, s:f, s:b, s:b}", "v", 1, "id",
        i->id, "name", i->name, "description", i->description, "dead_letter", i->dead_letter,
        "kind", (int)i->kind, "visibility", (int)i->visibility, "mode", (int)i->mode,
        "claim_timeout", i->claim_timeout, "max_attempts", (json_int_t)i->max_attempts,
        "max_messages", (json_int_t)i->max_messages, "retention_max_count",
        (json_int_t)i->retention_max_count, "retention_max_age", i->retention_max_age, "presence",
        i->presence, "join_leave", i->join_leave);
    /* Added later, so optional when read back. */
    if (o && backoff && json_object_set_new(o, "backoff", backoff) == 0 &&
        json_object_set_new(o, "dedup_window", json_real(i->dedup_window)) == 0 &&
        json_object_set_new(o, "cursor_idle_timeout", json_real(i->cursor_idle_timeout)) == 0 &&
        json_object_set_new(o, "epoch", json_string(i->epoch)) == 0)
        return o;
    json_decref(o);
    if (o == NULL)
        json_decref(backoff);
    return NULL;
}

static void j_chan_put(chan *c)
{
    mem_engine *me = c->eng;
    if (me->kv == NULL)
        return;
    json_t *o = info_to_json(&c->info);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        j_check(me, SL_ENOMEM);
        return;
    }
    j_check(me, me->kv->ops->put(me->kv, SL__KV_CHANNELS, c->info.id, strlen(c->info.id), text,
                                 strlen(text)));
    free(text);
}

static void j_prefix_del(mem_engine *me, const char *table, const char *id)
{
    j_check(me, me->kv->ops->del_prefix(me->kv, table, id, strlen(id) + 1));
}

static void j_chan_drop(mem_engine *me, const char *id)
{
    if (me->kv == NULL)
        return;
    j_check(me, me->kv->ops->del(me->kv, SL__KV_CHANNELS, id, strlen(id)));
    j_prefix_del(me, SL__KV_MESSAGES, id);
    j_prefix_del(me, SL__KV_CLAIMS, id);
    j_prefix_del(me, SL__KV_CURSORS, id);
    j_prefix_del(me, SL__KV_DEDUP, id);
    char sk[SL_CHANNEL_ID_MAX + 5];
    int skl = snprintf(sk, sizeof sk, "seq:%s", id);
    j_check(me, me->kv->ops->del(me->kv, SL__KV_META, sk, (size_t)skl));
}

static void j_chan_clear(chan *c)
{
    if (c->eng->kv == NULL)
        return;
    j_prefix_del(c->eng, SL__KV_MESSAGES, c->info.id);
    j_prefix_del(c->eng, SL__KV_CLAIMS, c->info.id);
    j_seq_put(c);
}

/* ---- loading what the kv holds --------------------------------------------------------------- */

typedef struct loader {
    mem_engine *me;
    chan *c;
    sl_status *st;
    double now;
} loader;

static int bad(loader *l, const char *table, const char *what)
{
    return sl_status_set(l->st, SL_EFORMAT, "the store's %s table holds %s%s%s", table, what,
                         l->c ? " of channel " : "", l->c ? l->c->info.id : "");
}

static int info_from_json(const char *v, size_t len, sl_channel_info *i)
{
    json_t *o = json_loadb(v, len, 0, NULL);
    const char *id = NULL, *name = NULL, *desc = NULL, *dl = NULL, *epoch = "";
    int kind = 0, vis = 0, mode = 0, presence = 0, join_leave = 0, ver = 0;
    json_int_t max_attempts = 0, max_messages = 0, rcount = 0;
    double claim_timeout = 0, rage = 0, dwin = 0, idle = 0;
    json_t *backoff = NULL;
    int rc = json_unpack(o,
                         "{s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:F, s:I, s:I, s:I, s:F, s:b, "
                         "s:b, s?o, s?F, s?F, s?s}",
                         "v", &ver, "id", &id, "name", &name, "description", &desc, "dead_letter",
                         &dl, "kind", &kind, "visibility", &vis, "mode", &mode, "claim_timeout",
                         &claim_timeout, "max_attempts", &max_attempts, "max_messages",
                         &max_messages, "retention_max_count", &rcount, "retention_max_age", &rage,
                         "presence", &presence, "join_leave", &join_leave, "backoff", &backoff,
                         "dedup_window", &dwin, "cursor_idle_timeout", &idle, "epoch", &epoch);
    size_t nb = backoff ? json_array_size(backoff) : 0;
    for (size_t k = 0; k < nb; k++)
        if (!json_is_number(json_array_get(backoff, k)))
            rc = -1;
    if (rc != 0 || ver != 1 || (backoff && !json_is_array(backoff)) || nb > SL_BACKOFF_MAX ||
        !sl__stored_id_valid(id, strlen(id)) || kind < 0 || kind > 1 || vis < 0 || vis > 1 ||
        mode < 0 || mode > SL_MODE_POLICY || max_attempts < 0 || max_messages < 0 || rcount < 0 ||
        strlen(epoch) >= sizeof((sl_channel_info *)0)->epoch) {
        json_decref(o);
        return SL_EFORMAT;
    }
    sl_channel_info tmp = {
        .id = (char *)id,
        .name = (char *)name,
        .description = (char *)desc,
        .dead_letter = (char *)dl,
        .kind = (sl_kind)kind,
        .visibility = (sl_visibility)vis,
        .mode = (sl_mode)mode,
        .claim_timeout = claim_timeout,
        .max_attempts = (unsigned)max_attempts,
        .max_messages = (size_t)max_messages,
        .retention_max_count = (size_t)rcount,
        .retention_max_age = rage,
        .presence = presence,
        .join_leave = join_leave,
        .nbackoff = nb,
        .dedup_window = dwin,
        .cursor_idle_timeout = idle,
    };
    for (size_t k = 0; k < nb; k++)
        tmp.backoff[k] = json_number_value(json_array_get(backoff, k));
    memcpy(tmp.epoch, epoch, strlen(epoch) + 1); /* "" (older stores): a new one at load */
    rc = sl__channel_info_copy(i, &tmp);
    json_decref(o);
    return rc;
}

static int load_channel(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
    loader *l = ud;
    sl_channel_info info;
    int rc = info_from_json(v, vl, &info);
    if (rc == SL_EFORMAT || (rc == SL_OK && (strlen(info.id) != kl || memcmp(info.id, k, kl)))) {
        if (rc == SL_OK)
            sl_channel_info_clear(&info);
        return bad(l, SL__KV_CHANNELS, "a channel it cannot read");
    }
    if (rc != SL_OK)
        return sl_status_set(l->st, rc, NULL);
    sl__kv *kv = l->me->kv;
    l->me->kv = NULL; /* what is loaded is not written back */
    rc = mem_create(&l->me->base, &info);
    l->me->kv = kv;
    sl_channel_info_clear(&info);
    return rc == SL_OK ? SL_OK : sl_status_set(l->st, rc, NULL);
}

/* The key's channel part must be the channel being loaded; returns the seq (0: malformed). */
static uint64_t key_seq_of(const chan *c, const void *k, size_t kl)
{
    size_t n = strlen(c->info.id);
    if (kl != n + 9 || memcmp(k, c->info.id, n + 1) != 0)
        return 0;
    const unsigned char *b = (const unsigned char *)k + n + 1;
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = seq << 8 | b[i];
    return seq;
}

static int load_message(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
    loader *l = ud;
    chan *c = l->c;
    uint64_t seq = key_seq_of(c, k, kl);
    const unsigned char *b = v;
    size_t head = vl > 0 && b[0] == J_MSG_VERSION ? 18 : 10;
    if (seq == 0 || vl < head || (b[0] != J_VERSION && b[0] != J_MSG_VERSION) ||
        (c->ix.hi > c->ix.lo && seq <= c->ix.a[c->ix.hi - 1].seq))
        return bad(l, SL__KV_MESSAGES, "a message it cannot read");
    sl_message m = {0};
    memcpy(&m.timestamp, b + 1, 8);
    if (head == 18)
        memcpy(&m.expires_at, b + 9, 8);
    unsigned flags = b[head - 1];
    size_t off = head;
    char *owned[NFIELDS] = {0};
    int rc = SL_OK;
    for (size_t f = 0; f < NFIELDS && rc == SL_OK; f++) {
        if (!(flags & (1u << f)))
            continue;
        uint32_t n;
        if (vl - off < 4 || (memcpy(&n, b + off, 4), vl - off - 4 < n) ||
            memchr(b + off + 4, '\0', n)) {
            rc = SL_EFORMAT;
            break;
        }
        if ((owned[f] = malloc(n + 1)) == NULL) {
            rc = SL_ENOMEM;
            break;
        }
        memcpy(owned[f], b + off + 4, n);
        owned[f][n] = '\0';
        *field(&m, f) = owned[f];
        off += 4 + n;
    }
    msg *x = NULL;
    if (rc == SL_OK && (off != vl || m.data == NULL))
        rc = SL_EFORMAT;
    if (rc == SL_OK && (idx_reserve(&c->ix) != SL_OK || (x = msg_pack(&m, seq)) == NULL))
        rc = SL_ENOMEM;
    for (size_t f = 0; f < NFIELDS; f++)
        free(owned[f]);
    if (rc == SL_EFORMAT)
        return bad(l, SL__KV_MESSAGES, "a message it cannot read");
    if (rc != SL_OK)
        return sl_status_set(l->st, rc, NULL);
    idx_push(&c->ix, x);
    if (seq > c->last_seq)
        c->last_seq = seq;
    return SL_OK;
}

static int load_claim(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
    loader *l = ud;
    chan *c = l->c;
    uint64_t seq = key_seq_of(c, k, kl);
    const unsigned char *b = v;
    if (seq == 0 || vl < 13 || vl > 13 + SL_PRINCIPAL_MAX || b[0] != J_VERSION)
        return bad(l, SL__KV_CLAIMS, "a claim it cannot read");
    size_t p = idx_find(&c->ix, seq);
    if (p == SIZE_MAX)
        return SL_OK; /* its message is gone: nothing to restore */
    msg *m = c->ix.a[p].m;
    memcpy(&m->attempt, b + 1, 4);
    memcpy(&m->when, b + 5, 8);
    /* A lease that ran out while the server was down: released, after the backoff step. */
    if (vl > 13 && !(m->when > l->now)) {
        m->when += backoff_for(c, m->attempt);
    } else if (vl > 13) {
        char name[SL_PRINCIPAL_MAX + 1];
        memcpy(name, b + 13, vl - 13);
        name[vl - 13] = '\0';
        reader *r;
        if (reader_get(c, name, &r) != SL_OK)
            return sl_status_set(l->st, SL_ENOMEM, NULL);
        m->claimer = r;
        r->claims++;
    }
    if (!(m->when > l->now))
        m->when = 0;
    return SL_OK;
}

static int load_cursor(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
    loader *l = ud;
    chan *c = l->c;
    size_t n = strlen(c->info.id);
    const unsigned char *b = v;
    int v2 = vl == 17 && b[0] == J_CURSOR_VERSION;
    if (kl <= n + 1 || kl - n - 1 > SL_PRINCIPAL_MAX || (!v2 && (vl != 9 || b[0] != J_VERSION)))
        return bad(l, SL__KV_CURSORS, "a cursor it cannot read");
    char name[SL_PRINCIPAL_MAX + 1];
    memcpy(name, (const char *)k + n + 1, kl - n - 1);
    name[kl - n - 1] = '\0';
    reader *r;
    if (reader_get(c, name, &r) != SL_OK)
        return sl_status_set(l->st, SL_ENOMEM, NULL);
    memcpy(&r->cursor, b + 1, 8);
    r->used = l->now; /* version 1 did not say: idle from now on */
    if (v2)
        memcpy(&r->used, b + 9, 8);
    r->jused = r->used;
    return SL_OK;
}

static int load_dedup(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
    loader *l = ud;
    chan *c = l->c;
    size_t n = strlen(c->info.id);
    const unsigned char *b = v;
    if (kl <= n + 1 || kl - n - 1 > SL__IDEMPOTENCY_KEY_MAX || vl != 17 || b[0] != J_VERSION ||
        memchr((const char *)k + n + 1, '\0', kl - n - 1))
        return bad(l, SL__KV_DEDUP, "an idempotency key it cannot read");
    char key[SL__IDEMPOTENCY_KEY_MAX + 1];
    memcpy(key, (const char *)k + n + 1, kl - n - 1);
    key[kl - n - 1] = '\0';
    uint64_t seq;
    double expires;
    memcpy(&seq, b + 1, 8);
    memcpy(&expires, b + 9, 8);
    if (!(expires > l->now)) /* its window passed while the server was down */
        return SL_OK;
    if (dedup_add(c, key, seq, expires, 0) != SL_OK)
        return sl_status_set(l->st, SL_ENOMEM, NULL);
    return SL_OK;
}

static int cmp_dedup(const void *a, const void *b)
{
    double x = (*(dedup *const *)a)->expires, y = (*(dedup *const *)b)->expires;
    return (x > y) - (x < y);
}

/* Keys load in key order; forgetting them wants expiry order. */
static int dedup_sort(chan *c)
{
    size_t n = c->dedup ? sl__map_size(c->dedup) : 0;
    if (n < 2)
        return SL_OK;
    dedup **v = malloc(n * sizeof *v);
    if (v == NULL)
        return SL_ENOMEM;
    size_t k = 0;
    for (dedup *d = c->dd_head; d && k < n; d = d->next)
        v[k++] = d;
    qsort(v, k, sizeof *v, cmp_dedup);
    for (size_t i = 0; i + 1 < k; i++)
        v[i]->next = v[i + 1];
    v[k - 1]->next = NULL;
    c->dd_head = v[0];
    c->dd_tail = v[k - 1];
    free(v);
    return SL_OK;
}

static int load_seq(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
    loader *l = ud;
    if (kl < 5 || kl - 4 > SL_CHANNEL_ID_MAX || vl != 8)
        return bad(l, SL__KV_META, "a sequence number it cannot read");
    char id[SL_CHANNEL_ID_MAX + 1];
    memcpy(id, (const char *)k + 4, kl - 4);
    id[kl - 4] = '\0';
    chan *c = find_chan(&l->me->base, id);
    uint64_t seq;
    memcpy(&seq, v, 8);
    if (c && seq > c->last_seq)
        c->last_seq = seq;
    return SL_OK;
}

/* A channel's messages, claims and cursors, then its heaps: a message claimed with a live lease
 * waits in `timed`, everything else is ready (an expired lease is as good as released). */
static int load_one(void *ud, const char *key, void *value)
{
    loader *l = ud;
    chan *c = l->c = value;
    sl__kv *kv = l->me->kv;
    char prefix[SL_CHANNEL_ID_MAX + 1];
    size_t plen = strlen(key) + 1;
    memcpy(prefix, key, plen);
    int rc = kv->ops->scan(kv, SL__KV_MESSAGES, prefix, plen, load_message, l);
    if (rc == SL_OK && is_queue(c))
        rc = kv->ops->scan(kv, SL__KV_CLAIMS, prefix, plen, load_claim, l);
    if (rc == SL_OK && !is_queue(c))
        rc = kv->ops->scan(kv, SL__KV_CURSORS, prefix, plen, load_cursor, l);
    if (rc == SL_OK)
        rc = kv->ops->scan(kv, SL__KV_DEDUP, prefix, plen, load_dedup, l);
    if (rc == SL_OK && dedup_sort(c) != SL_OK)
        rc = sl_status_set(l->st, SL_ENOMEM, NULL);
    if (rc != SL_OK)
        return rc;
    if (is_queue(c)) {
        size_t nt = 0;
        for (size_t p = c->ix.lo; p < c->ix.hi; p++)
            nt += c->ix.a[p].m->when > 0;
        if (heap_reserve(&c->ready, c->ix.live - nt) != SL_OK ||
            heap_reserve(&c->timed, nt) != SL_OK)
            return sl_status_set(l->st, SL_ENOMEM, NULL);
        for (size_t p = c->ix.lo; p < c->ix.hi; p++) {
            msg *m = c->ix.a[p].m;
            if (m->when > 0)
                heap_push(&c->timed, 1, m);
            else
                heap_push(&c->ready, 0, m);
        }
    }
    l->c = NULL;
    return SL_OK;
}

static int mem_load(mem_engine *me, double now, sl_status *st)
{
    loader l = {.me = me, .st = st, .now = now};
    if (st)
        sl_status_clear(st);
    sl__kv *kv = me->kv;
    int rc = kv->ops->scan(kv, SL__KV_CHANNELS, NULL, 0, load_channel, &l);
    if (rc == SL_OK)
        rc = kv->ops->scan(kv, SL__KV_META, "seq:", 4, load_seq, &l);
    if (rc == SL_OK)
        rc = sl__map_each(me->channels, load_one, &l);
    if (rc != SL_OK && st && st->code == SL_OK)
        sl_status_set(st, rc,
                      "cannot read the store's channels (%s): the data file is damaged; restore "
                      "it from a backup (docs/STORAGE.md)",
                      sl_strerror(rc));
    return rc;
}

static const sl_engine_ops mem_ops = {
    .name = "memory",
    .free = mem_free,
    .submit = mem_submit,
};

static const sl_engine_ops durable_ops = {
    .name = "lmdb",
    .free = mem_free,
    .submit = mem_submit,
};

int sl__mem_engine_open(sl_engine **out, sl__kv *kv, uv_loop_t *loop, double now, sl_status *st)
{
    mem_engine *me = calloc(1, sizeof *me);
    if (me == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    if (sl__map_new(&me->channels) != SL_OK) {
        free(me);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    me->base.ops = kv ? &durable_ops : &mem_ops;
    me->base.loop = kv ? loop : NULL;
    me->kv = kv;
    if (kv) {
        int rc = mem_load(me, now, st);
        if (rc != SL_OK) {
            mem_free(&me->base);
            return rc;
        }
    }
    *out = &me->base;
    return SL_OK;
}

int sl__mem_engine_new(sl_engine **out)
{
    return sl__mem_engine_open(out, NULL, NULL, 0, NULL);
}
