/* What the memory engine's files share (mem.c: the operations; mem_queue.c: a work queue's claims
 * and leases; mem_chan.c: a channel's structures; mem_journal.c: the journal and loading it back):
 * the message, index, heap and channel types, the small rules every file reads off a channel's
 * settings, and the functions that cross files. Not thread-safe, like the engine: the caller
 * serialises access. Nothing here is part of any public API. */
#ifndef SLUICE_STORE_MEM_INTERNAL_H
#define SLUICE_STORE_MEM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store/engine.h"
#include "store/kv.h"

#include "core/map.h"
#include "core/message.h"

#define DEFAULT_CLAIM_TIMEOUT 300.0
#define DEFAULT_DEDUP_WINDOW 120.0
#define DEFAULT_CURSOR_IDLE 86400.0

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

static inline char **field(sl_message *m, size_t f)
{
    return (char **)((char *)m + field_off[f]);
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

/* ---- heaps ----------------------------------------------------------------------------------- */

typedef struct heap {
    msg **a;
    size_t len, cap;
} heap;

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

static inline int is_queue(const chan *c)
{
    return c->info.kind == SL_KIND_QUEUE;
}

static inline double claim_timeout(const chan *c)
{
    return c->info.claim_timeout > 0 ? c->info.claim_timeout : DEFAULT_CLAIM_TIMEOUT;
}

static inline double dedup_window(const chan *c)
{
    return c->info.dedup_window > 0 ? c->info.dedup_window : DEFAULT_DEDUP_WINDOW;
}

static inline double cursor_idle(const chan *c)
{
    return c->info.cursor_idle_timeout > 0 ? c->info.cursor_idle_timeout : DEFAULT_CURSOR_IDLE;
}

/* The redelivery delay after a message's attempt-th claim failed: the queue's backoff step, the
 * last one repeating; 0 without backoff. */
static inline double backoff_for(const chan *c, uint32_t attempt)
{
    size_t n = c->info.nbackoff;
    if (n == 0)
        return 0;
    if (n > SL_BACKOFF_MAX)
        n = SL_BACKOFF_MAX;
    size_t i = attempt > 0 ? attempt - 1 : 0;
    return c->info.backoff[i < n ? i : n - 1];
}

static inline int expired(const msg *m, double now)
{
    return m->expires > 0 && m->expires <= now;
}

static inline chan *find_chan(sl_engine *e, const char *id)
{
    return sl__map_get(((mem_engine *)e)->channels, id);
}

/* 1 when a message of `size` bytes no longer fits after `used` bytes of a max_bytes bound. */
static inline int over_bound(size_t used, uint32_t size, size_t max_bytes)
{
    return size > max_bytes || used > max_bytes - size;
}

/* ---- mem_chan.c ------------------------------------------------------------------------------ */

/* sl__mem_msg_pack's block and sl__mem_msg_export's copy belong to the caller (free(),
 * sl_message_clear). */
msg *sl__mem_msg_pack(const sl_message *src, uint64_t seq);
int sl__mem_msg_export(const msg *m, sl_message *dst);
int sl__mem_idx_reserve(idx *x);
void sl__mem_idx_push(idx *x, msg *m);
size_t sl__mem_idx_after(const idx *x, uint64_t seq);
size_t sl__mem_idx_find(const idx *x, uint64_t seq);
void sl__mem_idx_take(idx *x, size_t p);
int sl__mem_heap_reserve(heap *h, size_t n);
void sl__mem_heap_push(heap *h, int timed, msg *m);
void sl__mem_heap_remove(heap *h, int timed, msg *m);
msg *sl__mem_heap_pop(heap *h, int timed);
/* *out is borrowed from the channel. */
int sl__mem_reader_get(chan *c, const char *name, reader **out);
void sl__mem_reader_drop_if_idle(chan *c, reader *r);
void sl__mem_release_claim(chan *c, msg *m);
void sl__mem_unlink_at(chan *c, size_t p);
void sl__mem_chan_tidy(chan *c);
size_t sl__mem_chan_clear(chan *c);
void sl__mem_chan_free(void *p);
void sl__mem_dedup_expire(chan *c, double now);
/* Borrowed from the channel. */
const dedup *sl__mem_dedup_find(const chan *c, const char *key, double now);
int sl__mem_dedup_add(chan *c, const char *key, uint64_t seq, double expires, int journal);
void sl__mem_sweep_cursors(chan *c, double now);
void sl__mem_retain(chan *c, double now);

/* ---- mem.c ----------------------------------------------------------------------------------- */

int sl__mem_create(sl_engine *e, const sl_channel_info *info);

/* ---- mem_queue.c: a work queue's claims and leases (the sl__eop kinds of engine.h) ----------- */

/* out and dead (claim, terminate) come back filled for the caller to free (sl_message_list_free),
 * empty on an error. */
int sl__mem_claim(sl_engine *e, const char *id, const char *reader_name, size_t limit,
                  size_t max_bytes, double now, sl_message_list *out, sl_message_list *dead);
int sl__mem_ack(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
                size_t n, double now, size_t *count);
int sl__mem_nack(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
                 size_t n, double delay, double now, size_t *count);
int sl__mem_extend(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
                   size_t n, double seconds, double now, size_t *count);
int sl__mem_terminate(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
                      size_t n, const char *reason, double now, size_t *count,
                      sl_message_list *dead);

/* ---- mem_journal.c: every change written through the kv (docs/STORAGE.md) -------------------- */

void sl__mem_j_msg_put(chan *c, const msg *m);
void sl__mem_j_msg_del(chan *c, uint64_t seq);
void sl__mem_j_claim_put(chan *c, const msg *m);
void sl__mem_j_cursor_put(chan *c, reader *r);
void sl__mem_j_chan_put(chan *c);
void sl__mem_j_chan_drop(mem_engine *me, const char *id);
void sl__mem_j_chan_clear(chan *c);
void sl__mem_j_dedup_put(chan *c, const dedup *d);
void sl__mem_j_dedup_del(chan *c, const char *key);
void sl__mem_j_cursor_del(chan *c, const char *name);
/* Loads every channel the kv holds into me (at start); SL_EFORMAT with st saying what it could not
 * read. */
int sl__mem_load(mem_engine *me, double now, sl_status *st);

#endif
