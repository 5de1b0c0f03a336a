/* The memory engine's work-queue requests (mem.c dispatches them): claiming, which leases messages
 * from `ready` after moving what became due back from `timed`, and what a claimer does with its
 * leases (acknowledge, nack, extend, terminate). Messages past max_attempts or expired leave at
 * claim time as dead letters, terminated ones at once; mem.c stores them in the dead-letter queue.
 * As everywhere in the engine, each request reserves or copies what it needs before it changes
 * anything, so SL_ENOMEM leaves the queue as it was. */
#include "store/mem_internal.h"

#include <stdlib.h>
#include <string.h>

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
            sl__mem_heap_pop(&c->timed, 1);
            sl__mem_release_claim(c, m);
            m->when += b;
            sl__mem_heap_push(&c->timed, 1, m); /* the slot just freed */
            sl__mem_j_claim_put(c, m);
            continue;
        }
        if (sl__mem_heap_reserve(&c->ready, c->ready.len + 1) != SL_OK)
            return SL_ENOMEM;
        sl__mem_heap_pop(&c->timed, 1);
        sl__mem_release_claim(c, m);
        sl__mem_heap_push(&c->ready, 0, m);
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
    int rc = sl__mem_msg_export(m, dst);
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

int sl__mem_claim(sl_engine *e, const char *id, const char *reader_name, size_t limit,
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
        sl__mem_chan_tidy(c);
        return SL_OK;
    }
    size_t want = limit < c->ready.len ? limit : c->ready.len;
    reader *r;
    if (sl__mem_reader_get(c, reader_name, &r) != SL_OK)
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
        msg *m = sl__mem_heap_pop(&c->ready, 0);
        picked[npicked++] = m;
        if (leaves) {
            ndead++;
        } else {
            nclaim++;
            bytes += m->size;
        }
    }
    if (rc == SL_OK && sl__mem_heap_reserve(&c->timed, c->timed.len + nclaim) != SL_OK)
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
            rc = sl__mem_msg_export(m, &out->items[out->len]);
            if (rc == SL_OK) {
                out->items[out->len].attempt = m->attempt + 1;
                out->items[out->len].claim_expires_at = expires;
                out->len++;
            }
        }
    }
    if (rc != SL_OK) {
        for (size_t i = 0; i < npicked; i++)
            sl__mem_heap_push(&c->ready, 0, picked[i]);
        free(picked);
        sl_message_list_free(out);
        sl_message_list_free(dead);
        r->claims--;
        sl__mem_reader_drop_if_idle(c, r);
        return rc;
    }
    /* Commit: nothing below allocates. */
    for (size_t i = 0; i < npicked; i++) {
        msg *m = picked[i];
        if (leave_reason(c, m, now)) {
            /* Not in a heap any more: take it out of the index only. */
            sl__mem_j_msg_del(c, m->seq);
            sl__mem_idx_take(&c->ix, sl__mem_idx_find(&c->ix, m->seq));
            free(m);
            continue;
        }
        m->attempt++;
        m->claimer = r;
        r->claims++;
        m->when = expires;
        sl__mem_heap_push(&c->timed, 1, m);
        sl__mem_j_claim_put(c, m);
    }
    out->more = c->ready.len > 0;
    free(picked);
    r->claims--;
    sl__mem_reader_drop_if_idle(c, r);
    sl__mem_chan_tidy(c);
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
    size_t p = sl__mem_idx_find(&c->ix, seq);
    if (p == SIZE_MAX)
        return NULL;
    msg *m = c->ix.a[p].m;
    if (m->claimer != r || !(m->flags & IN_TIMED) || !(m->when > now))
        return NULL;
    *pos = p;
    return m;
}

int sl__mem_ack(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
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
            sl__mem_unlink_at(c, p);
            (*count)++;
        }
    }
    r->claims--;
    sl__mem_reader_drop_if_idle(c, r);
    sl__mem_chan_tidy(c);
    return SL_OK;
}

int sl__mem_nack(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
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
    if (!(delay > 0) && sl__mem_heap_reserve(&c->ready, c->ready.len + most) != SL_OK)
        return SL_ENOMEM;
    int own_delay = delay != 0; /* < 0: at once whatever the backoff (a transport's release) */
    r->claims++;
    for (size_t i = 0; i < n; i++) {
        size_t p;
        msg *m = live_claim(c, r, ids[i], now, &p);
        if (m == NULL)
            continue;
        sl__mem_heap_remove(&c->timed, 1, m);
        sl__mem_release_claim(c, m);
        if (!own_delay)
            delay = backoff_for(c, m->attempt);
        if (delay > 0) {
            m->when = now + delay;
            sl__mem_heap_push(&c->timed, 1, m); /* reuses the slot just freed */
        } else {
            m->when = 0;
            sl__mem_heap_push(&c->ready, 0, m);
        }
        sl__mem_j_claim_put(c, m);
        (*count)++;
    }
    r->claims--;
    sl__mem_reader_drop_if_idle(c, r);
    sl__mem_chan_tidy(c);
    return SL_OK;
}

/* Moves who's live leases on ids to now + seconds. Nothing allocates: each message leaves the
 * timed heap and takes the slot it freed. */
int sl__mem_extend(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
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
        sl__mem_heap_remove(&c->timed, 1, m);
        m->when = now + seconds;
        sl__mem_heap_push(&c->timed, 1, m);
        sl__mem_j_claim_put(c, m);
        (*count)++;
    }
    return SL_OK;
}

/* Takes who's live claims on ids out of the queue for good, as dead letters carrying reason.
 * Copies first (the only allocations), then unlinks: SL_ENOMEM changes nothing. */
int sl__mem_terminate(sl_engine *e, const char *id, const char *reader_name, const char *const *ids,
                      size_t n, const char *reason, double now, size_t *count,
                      sl_message_list *dead)
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
        sl__mem_unlink_at(c, pos[i]);
    r->claims--;
    sl__mem_reader_drop_if_idle(c, r);
    *count = k;
    free(pos);
    sl__mem_chan_tidy(c);
    return SL_OK;
}
