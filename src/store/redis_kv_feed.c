/* The Redis kv's change feed (sl__redis_kv_watch, store/redis_kv.h) and its table load
 * (sl__redis_kv_load): the kv's own subscription connection on `<scope>:kv`, each notice decoded
 * (redis_kv_notice.c) and each key it names read again (HGET) for its current value, handed to the
 * watcher; whole tables reloaded when the subscription was (re)established or a notice was
 * malformed. A read goes out after this node's staged writes and is sent again when this node
 * wrote to the table meanwhile, so an apply never undoes this node's own change. The kv itself
 * (staging, batches, barriers, the probe after a failure) is redis_kv.c's; the requests here live
 * on its pending list under the same lifetime rules. */
#include "store/redis_kv_internal.h"

#include <hiredis/hiredis.h>

#include <stdlib.h>
#include <string.h>

/* ---- the change feed --------------------------------------------------------------------------
 */

static void fetch_done(void *ud, int rc, const redisReply *reply);

/* A read of this node's own tables must not overtake its own writes: what is staged goes out
 * first (replies come in order on the connection, so the read sees it), and a read answered after
 * this node wrote to the table again is sent again (see reread), so a notice or a reload never
 * puts back, even for a moment, what this node has just changed. */
static void send_fetch(rkv *kv, pend *p)
{
    sl__rkv_flush_batch(kv);
    p->writes = kv->writes[p->table];
    pend_link(kv, p);
    char hk[SL__REDIS_PREFIX_MAX + 32];
    hash_key(kv, p->table, hk, sizeof hk);
    const char *argv[] = {"HGET", hk, (const char *)p->key};
    size_t lens[] = {4, strlen(hk), p->klen};
    sl__rconn_cmd(kv->conn, 3, argv, lens, fetch_done, p);
}

/* 1 when p's answer is older than a write this node made since (bounded: a node writing the
 * table without pause gets the answer after a few tries, and its own notices follow anyway). */
static int reread(rkv *kv, pend *p)
{
    return kv->writes[p->table] != p->writes && p->tries++ < 8;
}

static void fetch_done(void *ud, int rc, const redisReply *reply)
{
    pend *p = ud;
    rkv *kv = p->kv;
    pend_unlink(p);
    if (kv != NULL && kv->watch_fn) {
        if (rc != SL_OK) {
            sl__rkv_mark_dirty(kv, 1u << p->table);
        } else if (reread(kv, p)) {
            send_fetch(kv, p);
            return;
        } else if (reply->type == REDIS_REPLY_STRING) {
            kv->watch_fn(kv->watch_ud, sl__redis_kv_tables[p->table], p->key, p->klen, reply->str,
                         (size_t)reply->len);
        } else if (reply->type == REDIS_REPLY_NIL) {
            kv->watch_fn(kv->watch_ud, sl__redis_kv_tables[p->table], p->key, p->klen, NULL, 0);
        } else {
            sl__logsink_printf(kv->log, SL__SINK_WARN,
                               "redis kv: %s:kv:%s is not a hash of strings: change ignored",
                               kv->prefix, sl__redis_kv_tables[p->table]);
        }
    }
    pend_free(p);
}

static int on_item(void *ud, const sl__redis_kv_notice_item *it)
{
    rkv *kv = ud;
    int t = sl__redis_kv_table_index(it->table, strlen(it->table));
    if (it->key == NULL) {
        kv->watch_fn(kv->watch_ud, it->table, NULL, 0, NULL, 0);
        return 0;
    }
    pend *p = calloc(1, sizeof *p);
    if (p == NULL || (p->key = malloc(it->klen)) == NULL) {
        free(p);
        sl__rkv_mark_dirty(kv, 1u << t); /* the change is not lost: a reload picks it up */
        return 0;
    }
    memcpy(p->key, it->key, it->klen);
    p->klen = it->klen;
    p->kind = P_FETCH;
    p->table = t;
    send_fetch(kv, p);
    return 0;
}

static void on_msg(void *ud, const char *channel, size_t clen, const char *msg, size_t mlen)
{
    rkv *kv = ud;
    if (kv->watch_fn == NULL || clen != strlen(kv->channel) || memcmp(channel, kv->channel, clen))
        return;
    if (!sl__redis_kv_notice_parse(msg, mlen, on_item, kv)) {
        /* Someone else published here: whatever it says, reload what it may have touched. */
        sl__logsink_printf(kv->log, SL__SINK_WARN,
                           "redis kv: a malformed notice on %s: reloading every table",
                           kv->channel);
        for (size_t t = 0; t < NTABLES; t++)
            kv->watch_fn(kv->watch_ud, sl__redis_kv_tables[t], NULL, 0, NULL, 0);
    }
}

static void reload_all(rkv *kv)
{
    kv->dirty = 0;
    sl__rkv_probe_stop(kv);
    for (size_t t = 0; kv->watch_fn && t < NTABLES; t++)
        kv->watch_fn(kv->watch_ud, sl__redis_kv_tables[t], NULL, 0, NULL, 0);
}

static void on_ready(void *ud, int rc)
{
    pend *p = ud;
    rkv *kv = p->kv;
    pend_unlink(p);
    pend_free(p);
    if (kv == NULL)
        return;
    if (rc != SL_OK) {
        kv->subscribed = SUB_NONE; /* asked again when the connection is next up */
        return;
    }
    kv->subscribed = SUB_DONE;
    reload_all(kv); /* changes made before the subscription took effect were missed */
}

/* The subscription connection counts a channel only once Redis confirmed it (an add while it is
 * down is refused, not kept), and from then on subscribes it again by itself after each outage. */
static void subscribe(rkv *kv)
{
    pend *p = calloc(1, sizeof *p);
    if (p == NULL)
        return; /* tried again at the next "up" */
    p->kind = P_READY;
    pend_link(kv, p);
    kv->subscribed = SUB_PENDING;
    sl__rsub_add(kv->sub, kv->channel, on_ready, p);
}

static void on_sub_state(void *ud, int up)
{
    rkv *kv = ud;
    if (!up || kv->watch_fn == NULL)
        return;
    if (kv->subscribed == SUB_NONE)
        subscribe(kv);
    else if (kv->subscribed == SUB_DONE)
        reload_all(kv); /* subscribed again: what was published meanwhile was missed */
}

int sl__redis_kv_watch(sl__kv *b, sl__redis_kv_change_fn fn, void *ud)
{
    rkv *kv = (rkv *)b;
    if (!sl__redis_kv_is(b) || fn == NULL || kv->watch_fn != NULL)
        return SL_EINVAL;
    sl__rsub_opts o = {.addr = &kv->addr,
                       .log = kv->log,
                       .what = "security state feed",
                       .on_msg = on_msg,
                       .on_state = on_sub_state,
                       .ud = kv};
    kv->watch_fn = fn;
    kv->watch_ud = ud;
    int rc = sl__rsub_new(&kv->sub, kv->loop, &o);
    if (rc != SL_OK) {
        kv->watch_fn = NULL;
        kv->watch_ud = NULL;
        return rc;
    }
    if (sl__rsub_up(kv->sub))
        subscribe(kv);
    return SL_OK;
}

/* ---- loading a table --------------------------------------------------------------------------
 */

static void load_done(void *ud, int rc, const redisReply *reply);

static void send_load(rkv *kv, pend *p)
{
    sl__rkv_flush_batch(kv); /* as send_fetch */
    p->writes = kv->writes[p->table];
    pend_link(kv, p);
    char hk[SL__REDIS_PREFIX_MAX + 32];
    hash_key(kv, p->table, hk, sizeof hk);
    const char *argv[] = {"HGETALL", hk};
    sl__rconn_cmd(kv->conn, 2, argv, NULL, load_done, p);
}

static void load_done(void *ud, int rc, const redisReply *reply)
{
    pend *p = ud;
    rkv *kv = p->kv;
    pend_unlink(p);
    if (kv == NULL) { /* answered by free */
        pend_free(p);
        return;
    }
    if (rc == SL_OK && reread(kv, p)) {
        send_load(kv, p);
        return;
    }
    sl__redis_kv_entry *e = NULL;
    size_t n = 0;
    int res = SL_OK;
    if (rc != SL_OK) {
        res = SL_EUNAVAIL;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        res = strncmp(reply->str, "WRONGTYPE", 9) == 0 ? SL_EFORMAT : SL_EUNAVAIL;
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) {
        res = SL_EFORMAT;
    } else if (reply->elements > 0 && (e = calloc(reply->elements / 2, sizeof *e)) == NULL) {
        res = SL_ENOMEM;
    }
    for (size_t i = 0; res == SL_OK && i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            res = SL_EFORMAT;
            break;
        }
        e[n++] = (sl__redis_kv_entry){k->str, (size_t)k->len, v->str, (size_t)v->len};
    }
    if (res == SL_EFORMAT)
        sl__logsink_printf(kv->log, SL__SINK_WARN, "redis kv: %s:kv:%s is not a hash: not loaded",
                           kv->prefix, sl__redis_kv_tables[p->table]);
    if (res == SL_EUNAVAIL)
        sl__rkv_mark_dirty(kv, 1u << p->table); /* try again once Redis answers */
    p->cb(p->ud, res, res == SL_OK ? e : NULL, res == SL_OK ? n : 0);
    free(e);
    pend_free(p);
}

int sl__redis_kv_load(sl__kv *b, const char *table, sl__redis_kv_load_fn cb, void *ud)
{
    rkv *kv = (rkv *)b;
    int t = sl__redis_kv_is(b) && table ? sl__redis_kv_table_index(table, strlen(table)) : -1;
    if (t < 0 || cb == NULL)
        return SL_EINVAL;
    pend *p = calloc(1, sizeof *p);
    if (p == NULL)
        return SL_ENOMEM;
    p->kind = P_LOAD;
    p->table = t;
    p->cb = cb;
    p->ud = ud;
    send_load(kv, p);
    return SL_OK;
}
