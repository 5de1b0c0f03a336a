/* A memory engine channel's structures and the changes every operation shares (mem.c runs the
 * operations on them): messages packed into one allocation each, the id-ordered index, the `ready`
 * and `timed` heaps, claim holders and topic cursors, idempotency keys, and the removals (unlinking
 * a message, retention, idle cursors, clearing). Whatever must survive a restart is handed to the
 * journal (mem_journal.c) as it changes. Every function that can fail reserves first and leaves
 * the channel as it was on SL_ENOMEM. */
#include "store/mem_internal.h"

#include <stdlib.h>
#include <string.h>

#define IDX_MIN_CAP 16
#define HEAP_MIN_CAP 16

/* ---- messages -------------------------------------------------------------------------------- */

static char *const *cfield(const sl_message *m, size_t f)
{
    return (char *const *)((const char *)m + field_off[f]);
}

/* One block for the header and every string of *src. */
msg *sl__mem_msg_pack(const sl_message *src, uint64_t seq)
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
int sl__mem_msg_export(const msg *m, sl_message *dst)
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

/* ---- the id-ordered index (its layout: mem_internal.h) --------------------------------------- */

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
int sl__mem_idx_reserve(idx *x)
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

void sl__mem_idx_push(idx *x, msg *m)
{
    x->a[x->hi++] = (ent){m->seq, m};
    x->live++;
}

/* The first position in [lo, hi) whose seq is > seq (hi when none). */
size_t sl__mem_idx_after(const idx *x, uint64_t seq)
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
size_t sl__mem_idx_find(const idx *x, uint64_t seq)
{
    size_t p = sl__mem_idx_after(x, seq);
    if (p > x->lo && x->a[p - 1].seq == seq && x->a[p - 1].m)
        return p - 1;
    return SIZE_MAX;
}

/* Leaves a hole at p; trims holes off both ends. Never moves other entries, so positions stay valid
 * during a scan. */
void sl__mem_idx_take(idx *x, size_t p)
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
int sl__mem_heap_reserve(heap *h, size_t n)
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

void sl__mem_heap_push(heap *h, int timed, msg *m)
{
    if (timed)
        m->flags |= IN_TIMED;
    else
        m->flags &= (uint16_t)~IN_TIMED;
    h->a[h->len++] = m;
    heap_up(h, timed, h->len - 1);
}

void sl__mem_heap_remove(heap *h, int timed, msg *m)
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

msg *sl__mem_heap_pop(heap *h, int timed)
{
    msg *top = h->a[0];
    sl__mem_heap_remove(h, timed, top);
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

/* ---- claim holders, cursors, channels -------------------------------------------------------- */

int sl__mem_reader_get(chan *c, const char *name, reader **out)
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
void sl__mem_reader_drop_if_idle(chan *c, reader *r)
{
    if (is_queue(c) && r->claims == 0)
        sl__map_del(c->readers, r->name, free);
}

void sl__mem_release_claim(chan *c, msg *m)
{
    reader *r = m->claimer;
    if (r == NULL)
        return;
    m->claimer = NULL;
    r->claims--;
    sl__mem_reader_drop_if_idle(c, r);
}

/* Removes the message at index position p from every structure and frees it. */
void sl__mem_unlink_at(chan *c, size_t p)
{
    msg *m = c->ix.a[p].m;
    sl__mem_j_msg_del(c, m->seq);
    if (is_queue(c)) {
        if (m->flags & IN_TIMED)
            sl__mem_heap_remove(&c->timed, 1, m);
        else
            sl__mem_heap_remove(&c->ready, 0, m);
        sl__mem_release_claim(c, m);
    }
    sl__mem_idx_take(&c->ix, p);
    free(m);
}

void sl__mem_chan_tidy(chan *c)
{
    idx_tidy(&c->ix);
    heap_tidy(&c->ready);
    heap_tidy(&c->timed);
}

size_t sl__mem_chan_clear(chan *c)
{
    size_t n = c->ix.live;
    sl__mem_j_chan_clear(c);
    for (size_t p = c->ix.lo; p < c->ix.hi; p++) {
        msg *m = c->ix.a[p].m;
        if (m == NULL)
            continue;
        if (is_queue(c))
            sl__mem_release_claim(c, m); /* topic cursors stay: ids never repeat */
        free(m);
    }
    c->ix.live = 0;
    c->ready.len = c->timed.len = 0;
    sl__mem_chan_tidy(c);
    return n;
}

void sl__mem_chan_free(void *p)
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
void sl__mem_dedup_expire(chan *c, double now)
{
    while (c->dd_head && c->dd_head->expires <= now) {
        dedup *d = c->dd_head;
        c->dd_head = d->next;
        if (c->dd_head == NULL)
            c->dd_tail = NULL;
        sl__map_del(c->dedup, d->key, NULL);
        sl__mem_j_dedup_del(c, d->key);
        free(d);
    }
}

const dedup *sl__mem_dedup_find(const chan *c, const char *key, double now)
{
    const dedup *d = c->dedup ? sl__map_get(c->dedup, key) : NULL;
    return d && d->expires > now ? d : NULL;
}

/* Remembers key for seq. SL_ENOMEM leaves nothing remembered (the message stays written: a
 * repeat would then be stored again, which is what a lost key means). */
int sl__mem_dedup_add(chan *c, const char *key, uint64_t seq, double expires, int journal)
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
        sl__mem_j_dedup_put(c, d);
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
void sl__mem_sweep_cursors(chan *c, double now)
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
        sl__mem_j_cursor_del(c, sw.idle[i]->name);
        sl__map_del(c->readers, sw.idle[i]->name, free);
    }
    free(sw.idle);
    c->next_sweep = now + idle / 8;
}

/* Topic retention: the oldest go while there are too many or they are too old. Timestamps do not
 * decrease along a topic's ids (a message is stamped as it is appended; only a clock step back
 * breaks that), so the age test looks at the oldest only and stops at the first young message:
 * the cost is the number dropped, never the depth. */
void sl__mem_retain(chan *c, double now)
{
    size_t max_count = c->info.retention_max_count;
    double max_age = c->info.retention_max_age;
    while (c->ix.live) {
        const msg *oldest = c->ix.a[c->ix.lo].m;
        int too_many = max_count > 0 && c->ix.live > max_count;
        int too_old = max_age > 0 && oldest->timestamp < now - max_age;
        if (!too_many && !too_old)
            break;
        sl__mem_unlink_at(c, c->ix.lo);
    }
}
