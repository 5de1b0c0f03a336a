/* The in-memory store engine: every channel lives in this process and dies with it. Each message is
 * one allocation, a small header with its strings packed behind it, and is referenced from an
 * id-ordered index (binary search by id, oldest first) and, in work queues, from exactly one of two
 * heaps: `ready` (claimable now, ordered by id, so claims are FIFO even after nacks) and `timed`
 * (claimed until the lease expires, or nack-delayed until it is available again, ordered by that
 * time). A claim first moves whatever became due from `timed` to `ready`, so writing, claiming k
 * messages, acknowledging and nacking cost O(log n) per message whatever the depth. Every operation
 * reserves the memory it may need before it changes anything visible, so SL_ENOMEM leaves channels
 * as they were. Not thread-safe: the caller serialises access. This file runs the requests, those
 * on a work queue's claims and leases through mem_queue.c; a channel's structures are in
 * mem_chan.c, the journal and loading it back in mem_journal.c, and mem_internal.h is what the four
 * share. */
#include "store/mem_internal.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

/* Heap positions are 32-bit to keep the message header small. */
#define MAX_DEPTH ((size_t)UINT32_MAX - 1)

/* ---- operations ------------------------------------------------------------------------------ */

static void mem_free(sl_engine *e)
{
    if (e == NULL)
        return;
    sl__map_free(((mem_engine *)e)->channels, sl__mem_chan_free);
    free(e);
}

int sl__mem_create(sl_engine *e, const sl_channel_info *info)
{
    mem_engine *me = (mem_engine *)e;
    if (sl__map_get(me->channels, info->id))
        return SL_EEXIST;
    chan *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    if (sl__channel_info_copy(&c->info, info) != SL_OK || sl__map_new(&c->readers) != SL_OK ||
        sl__map_put(me->channels, info->id, c, NULL) != SL_OK) {
        sl__mem_chan_free(c);
        return SL_ENOMEM;
    }
    c->eng = me;
    c->info.depth = 0;
    if (c->info.epoch[0] == '\0')
        sl__epoch_new(c->info.epoch);
    sl__mem_j_chan_put(c);
    return SL_OK;
}

static int mem_drop(sl_engine *e, const char *id)
{
    if (!sl__map_del(((mem_engine *)e)->channels, id, sl__mem_chan_free))
        return SL_ENOENT;
    sl__mem_j_chan_drop((mem_engine *)e, id);
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
        sl__mem_retain(c, now); /* expired messages must not count against max_messages */
    /* A topic's count retention makes room by dropping the oldest, so it refuses only when even
     * that leaves more than max_messages (i.e. when retention_max_count is larger or unset). */
    size_t after = c->ix.live + 1;
    if (!is_queue(c) && c->info.retention_max_count > 0 && after > c->info.retention_max_count)
        after = c->info.retention_max_count;
    if ((c->info.max_messages > 0 && after > c->info.max_messages) || c->ix.live >= MAX_DEPTH)
        return SL_EFULL;
    int delayed = is_queue(c) && m->not_before > now;
    if (sl__mem_idx_reserve(&c->ix) != SL_OK ||
        (is_queue(c) && sl__mem_heap_reserve(delayed ? &c->timed : &c->ready,
                                             (delayed ? c->timed.len : c->ready.len) + 1) != SL_OK))
        return SL_ENOMEM;
    msg *n = sl__mem_msg_pack(m, c->last_seq + 1);
    if (n == NULL)
        return SL_ENOMEM;
    c->last_seq++;
    sl__mem_idx_push(&c->ix, n);
    sl__mem_j_msg_put(c, n);
    if (delayed) {
        /* Waits in `timed` like a nack-delayed message: claimable from not_before on. */
        n->when = m->not_before;
        sl__mem_heap_push(&c->timed, 1, n);
        sl__mem_j_claim_put(c, n);
    } else if (is_queue(c)) {
        sl__mem_heap_push(&c->ready, 0, n);
    } else {
        sl__mem_retain(c, now);
    }
    if (id_out)
        sl__msgid_format(n->seq, id_out);
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
    sl__mem_retain(c, now);
    sl__mem_sweep_cursors(c, now);
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
    size_t start = sl__mem_idx_after(&c->ix, from), n = 0, p, bytes = 0;
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
            sl__mem_j_cursor_put(c, r);
        sl__mem_chan_tidy(c);
        return SL_OK;
    }
    /* A cursor exists only once it has something to remember. It is created before the copies
     * (so that moving it cannot fail) and removed again if they fail. */
    int new_cursor = after == NULL && r == NULL;
    if (new_cursor && sl__mem_reader_get(c, reader_name, &r) != SL_OK)
        return SL_ENOMEM;
    if (new_cursor)
        r->used = now;
    uint64_t last = from;
    int rc = (out->items = calloc(n, sizeof *out->items)) ? SL_OK : SL_ENOMEM;
    for (p = start; rc == SL_OK && out->len < n; p++) {
        const msg *m = c->ix.a[p].m;
        if (m == NULL || expired(m, now))
            continue;
        rc = sl__mem_msg_export(m, &out->items[out->len]);
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
        sl__mem_j_cursor_put(c, r);
    }
    out->more = more;
    sl__mem_chan_tidy(c);
    return SL_OK;
}

static int mem_clear(sl_engine *e, const char *id, size_t *count)
{
    *count = 0;
    chan *c = find_chan(e, id);
    if (c == NULL)
        return SL_ENOENT;
    *count = sl__mem_chan_clear(c);
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
                sl__mem_unlink_at(c, p);
                (*count)++;
            }
        }
    }
    if (max_count != SIZE_MAX) {
        while (c->ix.live > max_count) {
            sl__mem_unlink_at(c, c->ix.lo);
            (*count)++;
        }
    }
    sl__mem_chan_tidy(c);
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
        if (ids[i] && sl__msgid_parse(ids[i], &seq) &&
            (p = sl__mem_idx_find(&c->ix, seq)) != SIZE_MAX) {
            sl__mem_unlink_at(c, p);
            (*count)++;
        }
    }
    sl__mem_chan_tidy(c);
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
        int rc = sl__mem_create(&me->base, &info);
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
        return sl__mem_create(e, op->create);
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
            sl__mem_dedup_expire(c, op->now);
        for (size_t i = 0; i < op->nmsgs; i++) {
            const char *key = op->keys ? op->keys[i] : NULL;
            const dedup *d = key ? sl__mem_dedup_find(c, key, op->now) : NULL;
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
                sl__mem_dedup_add(c, key, c->last_seq, op->now + dedup_window(c), 1);
        }
        op->seq = c->last_seq;
        return SL_OK;
    }
    case SL__EOP_CLAIM: {
        int rc = sl__mem_claim(e, op->channel, op->reader, op->limit, op->max_bytes, op->now,
                               &op->list, &op->dead);
        if (op->dead.len)
            dead_letter(me, op, find_chan(e, op->channel));
        return rc;
    }
    case SL__EOP_ACK:
        return sl__mem_ack(e, op->channel, op->reader, op->ids, op->nids, op->now, &op->count);
    case SL__EOP_NACK:
        return sl__mem_nack(e, op->channel, op->reader, op->ids, op->nids, op->delay, op->now,
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
        return sl__mem_extend(e, op->channel, op->reader, op->ids, op->nids, op->delay, op->now,
                              &op->count);
    case SL__EOP_TERMINATE: {
        int rc = sl__mem_terminate(e, op->channel, op->reader, op->ids, op->nids, op->reason,
                                   op->now, &op->count, &op->dead);
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
        int rc = sl__mem_load(me, now, st);
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
