/* The memory engine's journal (docs/STORAGE.md): with a kv, every change the operations make is
 * staged through it as they make it (messages, claims, cursors, idempotency keys, channel settings,
 * each channel's sequence high-water mark), and at start what the kv holds is loaded back into
 * channels, which makes the memory engine the durable one. A failure to stage is remembered for the
 * request being run (mem.c answers SL_ESTORAGE); what cannot be read at load is SL_EFORMAT. */
#include "store/mem_internal.h"

#include "core/wsid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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

void sl__mem_j_msg_put(chan *c, const msg *m)
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

void sl__mem_j_msg_del(chan *c, uint64_t seq)
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

void sl__mem_j_claim_put(chan *c, const msg *m)
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

void sl__mem_j_cursor_put(chan *c, reader *r)
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

void sl__mem_j_cursor_del(chan *c, const char *name)
{
    mem_engine *me = c->eng;
    if (me->kv == NULL)
        return;
    char k[SL_CHANNEL_ID_MAX + SL_PRINCIPAL_MAX + 2];
    size_t kl = key_name(k, c->info.id, name);
    j_check(me, me->kv->ops->del(me->kv, SL__KV_CURSORS, k, kl));
}

void sl__mem_j_dedup_put(chan *c, const dedup *d)
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

void sl__mem_j_dedup_del(chan *c, const char *key)
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

void sl__mem_j_chan_put(chan *c)
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

void sl__mem_j_chan_drop(mem_engine *me, const char *id)
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

void sl__mem_j_chan_clear(chan *c)
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
    rc = sl__mem_create(&l->me->base, &info);
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
    if (rc == SL_OK &&
        (sl__mem_idx_reserve(&c->ix) != SL_OK || (x = sl__mem_msg_pack(&m, seq)) == NULL))
        rc = SL_ENOMEM;
    for (size_t f = 0; f < NFIELDS; f++)
        free(owned[f]);
    if (rc == SL_EFORMAT)
        return bad(l, SL__KV_MESSAGES, "a message it cannot read");
    if (rc != SL_OK)
        return sl_status_set(l->st, rc, NULL);
    sl__mem_idx_push(&c->ix, x);
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
    size_t p = sl__mem_idx_find(&c->ix, seq);
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
        if (sl__mem_reader_get(c, name, &r) != SL_OK)
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
    if (sl__mem_reader_get(c, name, &r) != SL_OK)
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
    if (sl__mem_dedup_add(c, key, seq, expires, 0) != SL_OK)
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
        if (sl__mem_heap_reserve(&c->ready, c->ix.live - nt) != SL_OK ||
            sl__mem_heap_reserve(&c->timed, nt) != SL_OK)
            return sl_status_set(l->st, SL_ENOMEM, NULL);
        for (size_t p = c->ix.lo; p < c->ix.hi; p++) {
            msg *m = c->ix.a[p].m;
            if (m->when > 0)
                sl__mem_heap_push(&c->timed, 1, m);
            else
                sl__mem_heap_push(&c->ready, 0, m);
        }
    }
    l->c = NULL;
    return SL_OK;
}

int sl__mem_load(mem_engine *me, double now, sl_status *st)
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
