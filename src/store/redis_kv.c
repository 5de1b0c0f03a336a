/* The kv on Redis (store/redis_kv.h): staged writes sent as one Lua script per loop turn (or per
 * barrier) that also publishes the change notice, the barriers that wait for them, the reloads a
 * failed batch calls for once Redis answers again, and the synchronous scan used at start. The
 * change feed that turns notices into current values, and the asynchronous table load, are
 * redis_kv_feed.c's (redis_kv_internal.h: what the two files share).
 *
 * Lifetime: every request handed to the connection (a batch, a fetch of one value, a table load,
 * a probe) is a heap object on the kv's pending list, because the connection calls back after the
 * kv may be gone (sl__rconn_free fails what is pending, and the kv is freed first). Freeing the kv
 * detaches them (their kv becomes NULL) and answers their owners; a detached request only frees
 * itself when its reply comes. The kv's own memory goes with the close callback of its last libuv
 * handle. */
#include "store/redis_kv_internal.h"

#include <hiredis/hiredis.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define PROBE_MS 1000
#define SCAN_TIMEOUT_S 5

/* Writes in order, then one notice naming each change, in one atomic step. Every key is checked
 * first: a script that failed half way would leave half its writes (Redis does not roll back), so
 * a key of the wrong type refuses the whole batch before anything is written. ARGV: the notice
 * channel, then per KEYS[i] the op ('p' put, 'd' del, 'x' del_prefix), the table, the field and
 * (put) the value. */
static const char script_body[] =
    "local seen = {}\n"
    "for i = 1, #KEYS do\n"
    "  local k = KEYS[i]\n"
    "  if not seen[k] then\n"
    "    seen[k] = true\n"
    "    local t = redis.call('TYPE', k)['ok']\n"
    "    if t ~= 'hash' and t ~= 'none' then\n"
    "      return redis.error_reply('WRONGTYPE ' .. k .. ' is not a hash')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local notice = {}\n"
    "local a = 2\n"
    "for i = 1, #KEYS do\n"
    "  local op, tbl, f = ARGV[a], ARGV[a + 1], ARGV[a + 2]\n"
    "  if op == 'p' then\n"
    "    redis.call('HSET', KEYS[i], f, ARGV[a + 3])\n"
    "    a = a + 4\n"
    "  else\n"
    "    a = a + 3\n"
    "    if op == 'd' then\n"
    "      redis.call('HDEL', KEYS[i], f)\n"
    "    else\n"
    "      if f == '' then\n"
    "        redis.call('DEL', KEYS[i])\n"
    "      else\n"
    "        for _, h in ipairs(redis.call('HKEYS', KEYS[i])) do\n"
    "          if string.sub(h, 1, #f) == f then redis.call('HDEL', KEYS[i], h) end\n"
    "        end\n"
    "      end\n"
    "      f = ''\n"
    "    end\n"
    "  end\n"
    "  notice[#notice + 1] = #tbl .. ':' .. tbl .. #f .. ':' .. f\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[1], table.concat(notice))\n"
    "return #KEYS\n";

static sl__rscript script;
static int script_ready;

static const sl__kv_ops rkv_ops;

/* ---- staging and the group send ---------------------------------------------------------------
 */

static void flush(rkv *kv);

static void on_check(uv_check_t *h)
{
    flush(h->data);
}

static void on_idle(uv_idle_t *h)
{
    (void)h; /* only there so the poll does not block while a batch waits */
}

static void arm(rkv *kv)
{
    if (kv->armed)
        return;
    kv->armed = 1;
    uv_check_start(&kv->check, on_check);
    uv_idle_start(&kv->idle, on_idle);
}

static void disarm(rkv *kv)
{
    if (!kv->armed)
        return;
    kv->armed = 0;
    uv_check_stop(&kv->check);
    uv_idle_stop(&kv->idle);
}

static int stage(rkv *kv, int kind, const char *table, const void *key, size_t klen,
                 const void *val, size_t vlen)
{
    int t = table ? sl__redis_kv_table_index(table, strlen(table)) : -1;
    if (t < 0 || (kind != OP_DELPREFIX && (klen == 0 || klen > SL__REDIS_KV_KEY_MAX)) ||
        (kind == OP_DELPREFIX && klen > SL__REDIS_KV_KEY_MAX))
        return SL_EINVAL;
    if (kv->nops == kv->capops) {
        size_t nc = kv->capops ? 2 * kv->capops : 16;
        stop *nv = realloc(kv->ops, nc * sizeof *nv);
        if (nv == NULL)
            return SL_ENOMEM;
        kv->ops = nv;
        kv->capops = nc;
    }
    stop o = {.kind = kind, .table = t, .klen = klen, .vlen = vlen};
    o.key = malloc(klen ? klen : 1);
    o.val = kind == OP_PUT ? malloc(vlen ? vlen : 1) : NULL;
    if (o.key == NULL || (kind == OP_PUT && o.val == NULL)) {
        free(o.key);
        free(o.val);
        return SL_ENOMEM;
    }
    if (klen)
        memcpy(o.key, key, klen);
    if (kind == OP_PUT && vlen)
        memcpy(o.val, val, vlen);
    kv->ops[kv->nops++] = o;
    kv->writes[t]++;
    arm(kv);
    return SL_OK;
}

static int rkv_put(sl__kv *b, const char *table, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    return stage((rkv *)b, OP_PUT, table, key, klen, val, vlen);
}

static int rkv_del(sl__kv *b, const char *table, const void *key, size_t klen)
{
    return stage((rkv *)b, OP_DEL, table, key, klen, NULL, 0);
}

static int rkv_del_prefix(sl__kv *b, const char *table, const void *prefix, size_t plen)
{
    return stage((rkv *)b, OP_DELPREFIX, table, prefix, plen, NULL, 0);
}

static void ops_clear(rkv *kv)
{
    for (size_t i = 0; i < kv->nops; i++) {
        free(kv->ops[i].key);
        free(kv->ops[i].val);
    }
    kv->nops = 0;
}

static void reload_dirty(rkv *kv);

void sl__rkv_probe_stop(rkv *kv)
{
    if (kv->probing) {
        uv_timer_stop(&kv->probe);
        kv->probing = 0;
    }
}

static void batch_done(void *ud, int rc, const redisReply *reply)
{
    pend *p = ud;
    rkv *kv = p->kv;
    int result = SL_OK;
    if (rc != SL_OK)
        result = SL_EUNAVAIL;
    else if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        result = SL_ESTORAGE;
    if (kv != NULL) {
        if (result != SL_OK) {
            sl__logsink_printf(
                kv->log, SL__SINK_WARN, "redis kv: a batch of %s failed: %s%s", "security state",
                result == SL_EUNAVAIL ? "Redis is unavailable" : "Redis refused it: ",
                result == SL_EUNAVAIL ? "" : (reply && reply->str ? reply->str : "?"));
            kv->failed_seq = p->seq;
            kv->failed_rc = result;
            sl__rkv_mark_dirty(kv, p->tables);
        }
        kv->done_seq = p->seq;
        pend_unlink(p);
        if (result == SL_OK && kv->dirty)
            reload_dirty(kv);
    }
    /* A barrier fails when any batch it waited for failed, not only the last one. */
    for (waiter *w = p->waiters, *next; w; w = next) {
        next = w->next;
        int wrc = kv == NULL ? SL_EUNAVAIL : kv->failed_seq >= w->lo ? kv->failed_rc : SL_OK;
        if (w->fn)
            w->fn(w->ud, wrc);
        free(w);
    }
    pend_free(p);
}

/* Sends everything staged as one script; NULL when nothing is staged (or out of memory, when the
 * staged writes are dropped and their tables reloaded, as for a failed batch). */
pend *sl__rkv_flush_batch(rkv *kv)
{
    disarm(kv);
    if (kv->nops == 0)
        return NULL;
    size_t n = kv->nops;
    size_t argc = n + 1 + 4 * n;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    char(*keys)[SL__REDIS_PREFIX_MAX + 32] = calloc(NTABLES, sizeof *keys);
    pend *p = calloc(1, sizeof *p);
    unsigned touched = 0;
    for (size_t i = 0; i < n; i++)
        touched |= 1u << kv->ops[i].table;
    if (argv == NULL || lens == NULL || keys == NULL || p == NULL) {
        sl__logsink_printf(kv->log, SL__SINK_WARN, "redis kv: out of memory sending a batch");
        free(argv);
        free(lens);
        free(keys);
        free(p);
        ops_clear(kv);
        sl__rkv_mark_dirty(kv, touched);
        return NULL;
    }
    static const char kinds[] = {'p', 'd', 'x'};
    for (size_t t = 0; t < NTABLES; t++)
        hash_key(kv, (int)t, keys[t], sizeof keys[t]);
    size_t a = 0;
    for (size_t i = 0; i < n; i++) {
        argv[a] = keys[kv->ops[i].table];
        lens[a++] = strlen(keys[kv->ops[i].table]);
    }
    argv[a] = kv->channel;
    lens[a++] = strlen(kv->channel);
    for (size_t i = 0; i < n; i++) {
        const stop *o = &kv->ops[i];
        argv[a] = &kinds[o->kind];
        lens[a++] = 1;
        argv[a] = sl__redis_kv_tables[o->table];
        lens[a++] = strlen(sl__redis_kv_tables[o->table]);
        argv[a] = (const char *)o->key;
        lens[a++] = o->klen;
        if (o->kind == OP_PUT) {
            argv[a] = (const char *)o->val;
            lens[a++] = o->vlen;
        }
    }
    p->kind = P_BATCH;
    p->seq = ++kv->next_seq;
    p->tables = touched;
    pend_link(kv, p);
    kv->last_batch = p;
    sl__rconn_eval(kv->conn, &script, (int)n, (int)a, argv, lens, batch_done, p);
    ops_clear(kv);
    free(argv);
    free(lens);
    free(keys);
    return p;
}

static void flush(rkv *kv)
{
    sl__rkv_flush_batch(kv);
}

static void add_waiter(pend *p, waiter *w)
{
    if (p->wtail)
        p->wtail->next = w;
    else
        p->waiters = w;
    p->wtail = w;
}

static void rkv_barrier(sl__kv *b, sl__kv_done_fn fn, void *ud)
{
    rkv *kv = (rkv *)b;
    uint64_t lo = kv->done_seq + 1;
    pend *p = sl__rkv_flush_batch(kv);
    if (p == NULL)
        p = kv->last_batch;
    if (p == NULL) {
        fn(ud, SL_OK); /* nothing staged or in flight */
        return;
    }
    waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        fn(ud, SL_ENOMEM);
        return;
    }
    w->fn = fn;
    w->ud = ud;
    w->lo = lo;
    add_waiter(p, w);
}

static void rkv_touch(sl__kv *b)
{
    (void)b;
}

/* ---- reloads after a failure ------------------------------------------------------------------
 */

static void probe_done(void *ud, int rc, const redisReply *reply)
{
    pend *p = ud;
    rkv *kv = p->kv;
    pend_unlink(p);
    pend_free(p);
    if (kv != NULL && rc == SL_OK && reply != NULL && reply->type != REDIS_REPLY_ERROR)
        reload_dirty(kv);
}

static void on_probe(uv_timer_t *h)
{
    rkv *kv = h->data;
    pend *p = calloc(1, sizeof *p);
    if (p == NULL)
        return;
    p->kind = P_PROBE;
    pend_link(kv, p);
    static const char *const argv[] = {"PING"};
    sl__rconn_cmd(kv->conn, 1, argv, NULL, probe_done, p);
}

void sl__rkv_mark_dirty(rkv *kv, unsigned tables_bits)
{
    kv->dirty |= tables_bits;
    if (kv->dirty && !kv->probing) {
        kv->probing = 1;
        uv_timer_start(&kv->probe, on_probe, PROBE_MS, PROBE_MS);
    }
}

/* Redis answers again: the watcher reloads what this node may hold wrongly. */
static void reload_dirty(rkv *kv)
{
    unsigned d = kv->dirty;
    kv->dirty = 0;
    sl__rkv_probe_stop(kv);
    for (size_t t = 0; kv->watch_fn && t < NTABLES; t++)
        if (d & (1u << t))
            kv->watch_fn(kv->watch_ud, sl__redis_kv_tables[t], NULL, 0, NULL, 0);
}

/* ---- scan (synchronous, at start) -------------------------------------------------------------
 */

typedef struct field {
    const redisReply *k, *v;
} field;

static int cmp_field(const void *a, const void *b)
{
    const redisReply *x = ((const field *)a)->k, *y = ((const field *)b)->k;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->str, y->str, n) : 0;
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* One command on the synchronous connection; NULL when Redis did not answer. */
static redisReply *sync_cmd(redisContext *c, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv(c, argc, argv, lens);
}

static int rkv_scan(sl__kv *b, const char *table, const void *prefix, size_t plen,
                    sl__kv_scan_fn fn, void *ud)
{
    rkv *kv = (rkv *)b;
    int t = table ? sl__redis_kv_table_index(table, strlen(table)) : -1;
    if (t < 0)
        return SL_EINVAL;
    struct timeval tv = {SCAN_TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout(kv->addr.host, kv->addr.port, tv);
    if (c == NULL || c->err) {
        char name[SL__REDIS_HOST_MAX + 32];
        sl__redis_addr_name(&kv->addr, name, sizeof name);
        sl__logsink_printf(kv->log, SL__SINK_WARN, "redis kv: cannot connect to %s to load %s: %s",
                           name, sl__redis_kv_tables[t], c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return SL_EUNAVAIL;
    }
    redisSetTimeout(c, tv);
    int rc = SL_OK;
    redisReply *r = NULL;
    if (kv->addr.password) {
        const char *argv[] = {"AUTH", kv->addr.user, kv->addr.password};
        if (kv->addr.user)
            r = sync_cmd(c, 3, argv, NULL);
        else
            r = sync_cmd(c, 2, (const char *[]){"AUTH", kv->addr.password}, NULL);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            sl__logsink_printf(kv->log, SL__SINK_WARN, "redis kv: Redis refused the credentials");
            rc = SL_EUNAVAIL;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (rc == SL_OK && kv->addr.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", kv->addr.db);
        r = sync_cmd(c, 2, (const char *[]){"SELECT", db}, NULL);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            rc = SL_EUNAVAIL;
        freeReplyObject(r);
        r = NULL;
    }
    char hk[SL__REDIS_PREFIX_MAX + 32];
    hash_key(kv, t, hk, sizeof hk);
    if (rc == SL_OK) {
        r = sync_cmd(c, 2, (const char *[]){"HGETALL", hk}, NULL);
        if (r == NULL) {
            rc = SL_EUNAVAIL;
        } else if (r->type == REDIS_REPLY_ERROR) {
            rc = strncmp(r->str, "WRONGTYPE", 9) == 0 ? SL_EFORMAT : SL_EUNAVAIL;
        } else if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
            rc = SL_EFORMAT;
        }
        for (size_t i = 0; rc == SL_OK && i < r->elements; i++)
            if (r->element[i]->type != REDIS_REPLY_STRING)
                rc = SL_EFORMAT;
        if (rc == SL_EFORMAT)
            sl__logsink_printf(kv->log, SL__SINK_WARN, "redis kv: %s is not a hash of strings", hk);
        else if (rc == SL_EUNAVAIL)
            sl__logsink_printf(kv->log, SL__SINK_WARN, "redis kv: Redis did not answer reading %s",
                               hk);
    }
    size_t n = rc == SL_OK ? r->elements / 2 : 0;
    field *order = n ? calloc(n, sizeof *order) : NULL;
    if (n && order == NULL)
        rc = SL_ENOMEM;
    for (size_t i = 0; rc == SL_OK && i < n; i++)
        order[i] = (field){r->element[2 * i], r->element[2 * i + 1]};
    if (rc == SL_OK && n > 1)
        qsort(order, n, sizeof *order, cmp_field);
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        const redisReply *k = order[i].k, *v = order[i].v;
        if ((size_t)k->len < plen || (plen && memcmp(k->str, prefix, plen) != 0))
            continue;
        rc = fn(ud, k->str, (size_t)k->len, v->str, (size_t)v->len);
    }
    free(order);
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* ---- making and freeing ------------------------------------------------------------------------
 */

static void on_closed(uv_handle_t *h)
{
    rkv *kv = h->data;
    if (--kv->open_handles > 0)
        return;
    free(kv->addr.user);
    free(kv->addr.password);
    free(kv->ops);
    free(kv);
}

static void rkv_free(sl__kv *b)
{
    if (b == NULL)
        return;
    rkv *kv = (rkv *)b;
    sl__rkv_flush_batch(kv); /* sent; nobody waits for it */
    /* Detach what is pending and answer its owners now. */
    for (pend *p = kv->head, *next; p; p = next) {
        next = p->next;
        p->kv = NULL;
        p->prev = p->next = NULL;
        if (p->kind == P_BATCH) {
            for (waiter *w = p->waiters; w; w = w->next) {
                if (w->fn)
                    w->fn(w->ud, SL_EUNAVAIL);
                w->fn = NULL;
            }
        } else if (p->kind == P_LOAD) {
            sl__redis_kv_load_fn cb = p->cb;
            p->cb = NULL;
            cb(p->ud, SL_EUNAVAIL, NULL, 0);
        }
    }
    kv->head = NULL;
    kv->last_batch = NULL;
    kv->watch_fn = NULL;
    if (kv->sub)
        sl__rsub_free(kv->sub);
    kv->sub = NULL;
    disarm(kv);
    sl__rkv_probe_stop(kv);
    uv_close((uv_handle_t *)&kv->check, on_closed);
    uv_close((uv_handle_t *)&kv->idle, on_closed);
    uv_close((uv_handle_t *)&kv->probe, on_closed);
}

static const sl__kv_ops rkv_ops = {
    .name = "redis",
    .free = rkv_free,
    .put = rkv_put,
    .del = rkv_del,
    .del_prefix = rkv_del_prefix,
    .scan = rkv_scan,
    .barrier = rkv_barrier,
    .touch = rkv_touch,
};

void sl__redis_kv_set_log(sl__kv *b, const sl__logsink *log)
{
    ((rkv *)b)->log = log;
}

int sl__redis_kv_new(sl__kv **out, uv_loop_t *loop, const sl__redis_addr *addr, sl__rconn *conn,
                     const char *prefix, sl_status *st)
{
    if (prefix == NULL)
        prefix = "sluice";
    if (out == NULL || loop == NULL || addr == NULL || conn == NULL)
        return sl_status_set(st, SL_EINVAL, "the Redis kv needs a loop, an address, a connection");
    if (!sl__redis_prefix_valid(prefix))
        return sl_status_set(st, SL_EINVAL,
                             "the Redis key prefix must be 1..%d letters, digits, '_', '-', '.'",
                             SL__REDIS_PREFIX_MAX);
    rkv *kv = calloc(1, sizeof *kv);
    if (kv == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    if (sl__redis_addr_copy(&kv->addr, addr) != SL_OK) {
        free(kv);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    if (!script_ready) {
        sl__rscript_init(&script, script_body);
        script_ready = 1;
    }
    kv->base.ops = &rkv_ops;
    kv->loop = loop;
    kv->conn = conn;
    snprintf(kv->prefix, sizeof kv->prefix, "%s", prefix);
    /* The prefix was checked and the address's db is 0..15: it fits. */
    sl__redis_channel(kv->channel, sizeof kv->channel, prefix, kv->addr.db, "kv", NULL);
    uv_check_init(loop, &kv->check);
    uv_idle_init(loop, &kv->idle);
    uv_timer_init(loop, &kv->probe);
    kv->check.data = kv->idle.data = kv->probe.data = kv;
    kv->open_handles = 3;
    /* The stores' barriers must not keep a loop alive that has nothing else to do. */
    uv_unref((uv_handle_t *)&kv->probe);
    *out = &kv->base;
    return SL_OK;
}

int sl__redis_kv_is(const sl__kv *kv)
{
    return kv != NULL && kv->ops == &rkv_ops;
}
