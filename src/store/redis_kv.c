/* The kv on Redis (store/redis_kv.h): staged writes sent as one Lua script per loop turn (or per
 * barrier) that also publishes the change notice, the change feed that turns notices into current
 * values, the asynchronous table load, and the synchronous scan used at start.
 *
 * Lifetime: every request handed to the connection (a batch, a fetch of one value, a table load,
 * a probe) is a heap object on the kv's pending list, because the connection calls back after the
 * kv may be gone (sl__rconn_free fails what is pending, and the kv is freed first). Freeing the kv
 * detaches them (their kv becomes NULL) and answers their owners; a detached request only frees
 * itself when its reply comes. The kv's own memory goes with the close callback of its last libuv
 * handle. */
#include "store/redis_kv.h"

#include "store/redis_engine.h"

#include <hiredis/hiredis.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static const char *const tables[] = {SL__KV_TABLE_NAMES};
#define NTABLES (sizeof tables / sizeof tables[0])
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

static int table_index(const char *t, size_t n)
{
    for (size_t i = 0; i < NTABLES; i++)
        if (strlen(tables[i]) == n && memcmp(tables[i], t, n) == 0)
            return (int)i;
    return -1;
}

/* ---- the kv -----------------------------------------------------------------------------------
 */

enum { OP_PUT, OP_DEL, OP_DELPREFIX };

typedef struct stop {
    int kind;
    int table;
    unsigned char *key, *val;
    size_t klen, vlen;
} stop;

typedef struct waiter {
    sl__kv_done_fn fn;
    void *ud;
    uint64_t lo; /* the first batch this barrier waits for */
    struct waiter *next;
} waiter;

typedef struct rkv rkv;

enum { P_BATCH, P_FETCH, P_LOAD, P_PROBE, P_READY };
enum { SUB_NONE, SUB_PENDING, SUB_DONE };

/* A request in flight on the connection (or the subscription's ready callback). */
typedef struct pend {
    int kind;
    rkv *kv; /* NULL: the kv is gone */
    struct pend *prev, *next;
    int table;
    /* P_BATCH */
    uint64_t seq;
    unsigned tables; /* bit per table touched */
    waiter *waiters, *wtail;
    /* P_FETCH, P_LOAD: the table's write count when sent, and how often it was sent again */
    uint64_t writes;
    int tries;
    /* P_FETCH: the key; P_LOAD: the callback */
    unsigned char *key;
    size_t klen;
    sl__redis_kv_load_fn cb;
    void *ud;
} pend;

struct rkv {
    sl__kv base;
    uv_loop_t *loop;
    sl__redis_addr addr;    /* host, port, db copied; user and password owned copies */
    sl__rconn *conn;        /* borrowed */
    sl__rsub *sub;          /* owned, once watched */
    const sl__logsink *log; /* borrowed; NULL: stderr */
    char prefix[SL__REDIS_PREFIX_MAX + 1];
    char channel[SL__REDIS_PREFIX_MAX + 8]; /* <prefix>:kv */
    stop *ops;
    size_t nops, capops;
    pend *head;       /* pending requests */
    pend *last_batch; /* the newest batch in flight, or NULL */
    uint64_t next_seq, done_seq, failed_seq;
    int failed_rc;
    unsigned dirty; /* tables to reload once Redis answers again */
    sl__redis_kv_change_fn watch_fn;
    void *watch_ud;
    int subscribed;           /* SUB_*: the notice channel on the subscription connection */
    uint64_t writes[NTABLES]; /* writes staged per table, ever */
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t probe;
    int armed, probing;
    int open_handles;
};

static const sl__kv_ops rkv_ops;

static void pend_link(rkv *kv, pend *p)
{
    p->kv = kv;
    p->prev = NULL;
    p->next = kv->head;
    if (kv->head)
        kv->head->prev = p;
    kv->head = p;
}

static void pend_unlink(pend *p)
{
    if (p->kv == NULL)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        p->kv->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->kv->last_batch == p)
        p->kv->last_batch = NULL;
    p->kv = NULL;
}

static void pend_free(pend *p)
{
    free(p->key);
    free(p);
}

static void hash_key(const rkv *kv, int table, char *buf, size_t size)
{
    snprintf(buf, size, "%s:kv:%s", kv->prefix, tables[table]);
}

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
    int t = table ? table_index(table, strlen(table)) : -1;
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

static void probe_stop(rkv *kv)
{
    if (kv->probing) {
        uv_timer_stop(&kv->probe);
        kv->probing = 0;
    }
}

static void mark_dirty(rkv *kv, unsigned tables_bits);

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
            mark_dirty(kv, p->tables);
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
static pend *flush_batch(rkv *kv)
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
        mark_dirty(kv, touched);
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
        argv[a] = tables[o->table];
        lens[a++] = strlen(tables[o->table]);
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
    flush_batch(kv);
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
    pend *p = flush_batch(kv);
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

static void mark_dirty(rkv *kv, unsigned tables_bits)
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
    probe_stop(kv);
    for (size_t t = 0; kv->watch_fn && t < NTABLES; t++)
        if (d & (1u << t))
            kv->watch_fn(kv->watch_ud, tables[t], NULL, 0, NULL, 0);
}

/* ---- the change feed --------------------------------------------------------------------------
 */

static void fetch_done(void *ud, int rc, const redisReply *reply);

/* A read of this node's own tables must not overtake its own writes: what is staged goes out
 * first (replies come in order on the connection, so the read sees it), and a read answered after
 * this node wrote to the table again is sent again (see reread), so a notice or a reload never
 * puts back, even for a moment, what this node has just changed. */
static void send_fetch(rkv *kv, pend *p)
{
    flush_batch(kv);
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
            mark_dirty(kv, 1u << p->table);
        } else if (reread(kv, p)) {
            send_fetch(kv, p);
            return;
        } else if (reply->type == REDIS_REPLY_STRING) {
            kv->watch_fn(kv->watch_ud, tables[p->table], p->key, p->klen, reply->str,
                         (size_t)reply->len);
        } else if (reply->type == REDIS_REPLY_NIL) {
            kv->watch_fn(kv->watch_ud, tables[p->table], p->key, p->klen, NULL, 0);
        } else {
            sl__logsink_printf(kv->log, SL__SINK_WARN,
                               "redis kv: %s:kv:%s is not a hash of strings: change ignored",
                               kv->prefix, tables[p->table]);
        }
    }
    pend_free(p);
}

static int on_item(void *ud, const sl__redis_kv_notice_item *it)
{
    rkv *kv = ud;
    int t = table_index(it->table, strlen(it->table));
    if (it->key == NULL) {
        kv->watch_fn(kv->watch_ud, it->table, NULL, 0, NULL, 0);
        return 0;
    }
    pend *p = calloc(1, sizeof *p);
    if (p == NULL || (p->key = malloc(it->klen)) == NULL) {
        free(p);
        mark_dirty(kv, 1u << t); /* the change is not lost: a reload picks it up */
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
            kv->watch_fn(kv->watch_ud, tables[t], NULL, 0, NULL, 0);
    }
}

static void reload_all(rkv *kv)
{
    kv->dirty = 0;
    probe_stop(kv);
    for (size_t t = 0; kv->watch_fn && t < NTABLES; t++)
        kv->watch_fn(kv->watch_ud, tables[t], NULL, 0, NULL, 0);
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
    if (b == NULL || b->ops != &rkv_ops || fn == NULL || kv->watch_fn != NULL)
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
    flush_batch(kv); /* as send_fetch */
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
                           kv->prefix, tables[p->table]);
    if (res == SL_EUNAVAIL)
        mark_dirty(kv, 1u << p->table); /* try again once Redis answers */
    p->cb(p->ud, res, res == SL_OK ? e : NULL, res == SL_OK ? n : 0);
    free(e);
    pend_free(p);
}

int sl__redis_kv_load(sl__kv *b, const char *table, sl__redis_kv_load_fn cb, void *ud)
{
    rkv *kv = (rkv *)b;
    int t = b && b->ops == &rkv_ops && table ? table_index(table, strlen(table)) : -1;
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
    int t = table ? table_index(table, strlen(table)) : -1;
    if (t < 0)
        return SL_EINVAL;
    struct timeval tv = {SCAN_TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout(kv->addr.host, kv->addr.port, tv);
    if (c == NULL || c->err) {
        char name[SL__REDIS_HOST_MAX + 32];
        sl__redis_addr_name(&kv->addr, name, sizeof name);
        sl__logsink_printf(kv->log, SL__SINK_WARN, "redis kv: cannot connect to %s to load %s: %s",
                           name, tables[t], c ? c->errstr : "out of memory");
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
    flush_batch(kv); /* sent; nobody waits for it */
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
    probe_stop(kv);
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
    kv->addr = *addr;
    kv->addr.user = addr->user ? strdup(addr->user) : NULL;
    kv->addr.password = addr->password ? strdup(addr->password) : NULL;
    if ((addr->user && !kv->addr.user) || (addr->password && !kv->addr.password)) {
        free(kv->addr.user);
        free(kv->addr.password);
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
    snprintf(kv->channel, sizeof kv->channel, "%s:kv", prefix);
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
