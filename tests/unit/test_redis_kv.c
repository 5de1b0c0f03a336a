/* The kv on Redis (src/store/redis_kv.c, redis_kv_feed.c) and the security state it shares across
 * nodes (src/server/shared_state.c), against a real redis-server: staged writes and their barrier,
 * the start-up scan, binary keys, two nodes on one Redis (a change on one applied on the other,
 * with the ACL event that makes sockets re-check), two deployments on two dbs of one Redis that do
 * not hear each other's notices, hostile data written into sluice's keys by hand, and Redis going
 * away and coming back. The notice format is tested without Redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "deps.h"
#include "redis_server.h"

#include <sluice/apikey.h>
#include <sluice/broker.h>

#include "api/ctx.h"
#include "security/acl.h"
#include "security/apply.h"
#include "server/shared_state.h"
#include "store/redis_conn.h"
#include "store/redis_kv.h"

#include <sys/time.h>

static test_redis redis;
static int redis_ok;
static uv_loop_t loop;
static uv_timer_t tick;

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void on_tick(uv_timer_t *t)
{
    (void)t; /* only so that a loop turn never blocks for long */
}

/* Runs the loop until cond(ud) holds; 0 when it did not within the (generous) deadline. */
static int run_until(int (*cond)(void *), void *ud)
{
    uint64_t end = now_ms() + TEST_REDIS_WAIT_MS;
    while (!cond(ud)) {
        if (now_ms() > end)
            return 0;
        uv_run(&loop, UV_RUN_ONCE);
    }
    return 1;
}

static int flag_set(void *ud)
{
    return *(int *)ud != 0;
}

static int rconn_is_up(void *ud)
{
    return sl__rconn_up(ud);
}

/* ---- one node ----------------------------------------------------------------------------------
 */

typedef struct node {
    sl__redis_url url;
    sl__rconn *conn;
    sl__kv *kv;
    sl_ctx *ctx;
    sl_broker *broker;
    sl_apikey_store *keys;
    sl__shared_state *ss;
    /* ACL_CHANGED events seen */
    int events, removed_events;
    char last_principal[SL_PRINCIPAL_MAX + 1];
    /* the raw feed (nodes without shared state) */
    int changes, reloads;
    char last_key[600];
    size_t last_klen;
    char last_val[600];
    long last_vlen; /* -1: deleted */
} node;

static void on_event(void *ud, const sl_event *ev)
{
    node *n = ud;
    if (ev->kind != SL_EVENT_ACL_CHANGED)
        return;
    n->events++;
    n->removed_events += ev->removed;
    snprintf(n->last_principal, sizeof n->last_principal, "%s", ev->principal);
}

static void node_conn_db(node *n, int db)
{
    char url[128];
    test_redis_url(&redis, url, sizeof url);
    if (db != 0)
        snprintf(url + strlen(url), sizeof url - strlen(url), "/%d", db);
    sl_status st = {0};
    assert_int_equal(sl__redis_url_parse(url, &n->url, &st), SL_OK);
    sl__rconn_opts o = {.addr = &n->url.shards[0], .what = "test", .timeout_ms = 2000};
    assert_int_equal(sl__rconn_new(&n->conn, &loop, &o), SL_OK);
    assert_true(run_until(rconn_is_up, n->conn));
    assert_int_equal(sl__redis_kv_new(&n->kv, &loop, &n->url.shards[0], n->conn, "t", &st), SL_OK);
}

static void node_conn(node *n)
{
    node_conn_db(n, 0);
}

/* A node with the shared security state: a context, a broker and an API key store on the kv. */
static void node_up(node *n)
{
    memset(n, 0, sizeof *n);
    node_conn(n);
    sl_status st = {0};
    sl_ctx_options co = {.mode = SL_MODE_ACL};
    assert_int_equal(sl_ctx_new(&n->ctx, &co), SL_OK);
    sl_ctx_set_listener(n->ctx, on_event, n);
    assert_int_equal(sl_broker_new(&n->broker, NULL), SL_OK);
    static const char *const pats[] = {"jobs.*"};
    assert_int_equal(sl_broker_set_role(n->broker, "worker", SL_ROLE_WRITE, pats, 1), SL_OK);
    assert_int_equal(sl_apikey_store_open(&n->keys, NULL, &st), SL_OK);
    int rc = sl__shared_state_attach(&n->ss, n->ctx, n->broker, n->keys, n->kv, &st);
    if (rc != SL_OK)
        fail_msg("attach: %s", st.message);
}

static void on_raw_change(void *ud, const char *table, const void *key, size_t klen,
                          const void *val, size_t vlen)
{
    node *n = ud;
    if (key == NULL) {
        n->reloads++;
        return;
    }
    if (strcmp(table, SL__KV_ACL) != 0)
        return;
    n->changes++;
    n->last_klen = klen < sizeof n->last_key ? klen : sizeof n->last_key;
    memcpy(n->last_key, key, n->last_klen);
    n->last_vlen = val ? (long)vlen : -1;
    if (val)
        memcpy(n->last_val, val, vlen < sizeof n->last_val ? vlen : sizeof n->last_val);
}

static void node_down(node *n)
{
    if (n->kv)
        n->kv->ops->free(n->kv);
    sl__shared_state_free(n->ss);
    if (n->conn)
        sl__rconn_free(n->conn);
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    sl_ctx_free(n->ctx);
    sl_broker_free(n->broker);
    sl_apikey_store_close(n->keys);
    sl__redis_url_clear(&n->url);
    memset(n, 0, sizeof *n);
}

/* ---- barrier helpers ----------------------------------------------------------------------------
 */

typedef struct waitrc {
    int done, rc;
} waitrc;

static void on_barrier(void *ud, int rc)
{
    waitrc *w = ud;
    w->done = 1;
    w->rc = rc;
}

static int barrier(sl__kv *kv)
{
    waitrc w = {0};
    kv->ops->barrier(kv, on_barrier, &w);
    assert_true(run_until(flag_set, &w.done));
    return w.rc;
}

static int ctx_sync(sl_ctx *ctx)
{
    waitrc w = {0};
    sl__ctx_sync(ctx, on_barrier, &w);
    assert_true(run_until(flag_set, &w.done));
    return w.rc;
}

typedef struct scanned {
    int n;
    char keys[16][64];
    size_t klens[16];
    char vals[16][64];
} scanned;

static int on_scan(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    scanned *s = ud;
    if (s->n == 16 || klen >= 64 || vlen >= 64)
        return SL_EINVAL;
    memcpy(s->keys[s->n], key, klen);
    s->klens[s->n] = klen;
    memcpy(s->vals[s->n], val, vlen);
    s->vals[s->n][vlen] = '\0';
    s->n++;
    return SL_OK;
}

/* ---- setup
 * ---------------------------------------------------------------------------------------
 */

static int group_setup(void **state)
{
    (void)state;
    redis_ok = test_redis_start(&redis) == 0;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&tick, NULL);
    /* Bounded: after a failed test its node's connections are still there, retrying. */
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
        test_redis_sleep_ms(10);
    uv_loop_close(&loop);
    test_redis_stop(&redis);
    return 0;
}

static int each_setup(void **state)
{
    (void)state;
    if (redis_ok) {
        redisReply *r = test_redis_cmd(&redis, "FLUSHALL");
        freeReplyObject(r);
    }
    return 0;
}

/* ---- the notice --------------------------------------------------------------------------------
 */

typedef struct items {
    int n;
    const char *table[8];
    size_t klen[8];
    char key[8][16];
} items;

static int on_item(void *ud, const sl__redis_kv_notice_item *it)
{
    items *s = ud;
    s->table[s->n] = it->table;
    s->klen[s->n] = it->klen;
    if (it->klen)
        memcpy(s->key[s->n], it->key, it->klen < 16 ? it->klen : 16);
    s->n++;
    return 0;
}

static void test_notice(void **state)
{
    (void)state;
    char buf[128];
    size_t len = 0;
    assert_int_equal(sl__redis_kv_notice_add(buf, sizeof buf, &len, SL__KV_ACL, "alice", 5), 0);
    assert_int_equal(sl__redis_kv_notice_add(buf, sizeof buf, &len, SL__KV_BROKER, "a\0b\n", 4), 0);
    assert_int_equal(sl__redis_kv_notice_add(buf, sizeof buf, &len, SL__KV_APIKEYS, NULL, 0), 0);
    assert_memory_equal(buf, "3:acl5:alice6:broker4:a\0b\n7:apikeys0:", len);
    items it = {0};
    assert_int_equal(sl__redis_kv_notice_parse(buf, len, on_item, &it), 1);
    assert_int_equal(it.n, 3);
    assert_string_equal(it.table[0], "acl");
    assert_int_equal(it.klen[0], 5);
    assert_memory_equal(it.key[0], "alice", 5);
    assert_string_equal(it.table[1], "broker");
    assert_memory_equal(it.key[1], "a\0b\n", 4);
    assert_string_equal(it.table[2], "apikeys");
    assert_int_equal(it.klen[2], 0);
    /* Out of range for the encoder. */
    assert_int_equal(sl__redis_kv_notice_add(buf, sizeof buf, &len, "nope", "k", 1), -1);
    assert_int_equal(sl__redis_kv_notice_add(buf, 4, &len, SL__KV_ACL, "k", 1), -1);

    /* Malformed notices yield nothing, not even their well-formed first entries. */
    static const char *const bad[] = {"",         "3:acl",        "3:acl5:ali", "3:acl05:alice",
                                      "3:xyz1:a", "3:acl1:a3",    "03:acl1:a",  "-3:acl1:a",
                                      "3acl1:a",  "3:acl99999:a", "0::1:a",     "3:acl1:a\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        items none = {0};
        assert_int_equal(sl__redis_kv_notice_parse(bad[i], strlen(bad[i]), on_item, &none), 0);
        assert_int_equal(none.n, 0);
    }
    char big[600];
    int n = snprintf(big, sizeof big, "3:acl512:");
    memset(big + n, 'k', 512);
    items none = {0};
    assert_int_equal(sl__redis_kv_notice_parse(big, (size_t)n + 512, on_item, &none), 0);
}

/* ---- the kv on its own --------------------------------------------------------------------------
 */

static void test_round_trip(void **state)
{
    (void)state;
    NEED_DEP(redis_ok, "redis-server (scripts/deps installs it)");
    node a;
    memset(&a, 0, sizeof a);
    node_conn(&a);
    sl__kv *kv = a.kv;
    assert_true(sl__redis_kv_is(kv));
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, "bob", 3, "v-bob", 5), SL_OK);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, "alice", 5, "v-alice", 7), SL_OK);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, "carol", 5, "v-carol", 7), SL_OK);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, "a\0\xff\n", 4, "", 0), SL_OK); /* binary */
    assert_int_equal(kv->ops->put(kv, SL__KV_BROKER, "x1", 2, "1", 1), SL_OK);
    assert_int_equal(kv->ops->put(kv, SL__KV_BROKER, "x2", 2, "2", 1), SL_OK);
    assert_int_equal(kv->ops->put(kv, SL__KV_BROKER, "y1", 2, "3", 1), SL_OK);
    assert_int_equal(kv->ops->del(kv, SL__KV_ACL, "carol", 5), SL_OK);
    assert_int_equal(kv->ops->del(kv, SL__KV_ACL, "nobody", 6), SL_OK); /* missing: fine */
    assert_int_equal(kv->ops->del_prefix(kv, SL__KV_BROKER, "x", 1), SL_OK);
    /* Bad arguments are refused at once. */
    assert_int_equal(kv->ops->put(kv, "nope", "k", 1, "v", 1), SL_EINVAL);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, "k", 0, "v", 1), SL_EINVAL);
    char longkey[512];
    memset(longkey, 'k', sizeof longkey);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, longkey, 512, "v", 1), SL_EINVAL);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, longkey, 511, "v", 1), SL_OK);
    assert_int_equal(kv->ops->del(kv, SL__KV_ACL, longkey, 511), SL_OK);
    assert_int_equal(barrier(kv), SL_OK);
    /* Nothing staged or in flight: at once. */
    waitrc w = {0};
    kv->ops->barrier(kv, on_barrier, &w);
    assert_true(w.done);
    assert_int_equal(w.rc, SL_OK);

    scanned s = {0};
    assert_int_equal(kv->ops->scan(kv, SL__KV_ACL, NULL, 0, on_scan, &s), SL_OK);
    assert_int_equal(s.n, 3); /* in key order: "a\0\xff\n" < "alice" < "bob" */
    assert_int_equal(s.klens[0], 4);
    assert_memory_equal(s.keys[0], "a\0\xff\n", 4);
    assert_string_equal(s.vals[0], "");
    assert_memory_equal(s.keys[1], "alice", 5);
    assert_string_equal(s.vals[1], "v-alice");
    assert_memory_equal(s.keys[2], "bob", 3);
    scanned p = {0};
    assert_int_equal(kv->ops->scan(kv, SL__KV_ACL, "al", 2, on_scan, &p), SL_OK);
    assert_int_equal(p.n, 1);
    scanned b = {0};
    assert_int_equal(kv->ops->scan(kv, SL__KV_BROKER, NULL, 0, on_scan, &b), SL_OK);
    assert_int_equal(b.n, 1);
    assert_memory_equal(b.keys[0], "y1", 2);
    /* The layout docs/SCALING.md describes. */
    redisReply *r = test_redis_cmd(&redis, "HGET t:kv:acl alice");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "v-alice");
    freeReplyObject(r);
    /* The whole table. */
    assert_int_equal(kv->ops->del_prefix(kv, SL__KV_ACL, NULL, 0), SL_OK);
    assert_int_equal(barrier(kv), SL_OK);
    scanned none = {0};
    assert_int_equal(kv->ops->scan(kv, SL__KV_ACL, NULL, 0, on_scan, &none), SL_OK);
    assert_int_equal(none.n, 0);
    node_down(&a);
}

static int changes_at_least(void *ud)
{
    node *n = ud;
    return n->changes >= 2;
}

static int reloaded(void *ud)
{
    node *n = ud;
    return n->reloads > 0;
}

/* The raw feed between two kvs: values, deletions, binary keys. */
static void test_feed(void **state)
{
    (void)state;
    NEED_DEP(redis_ok, "redis-server (scripts/deps installs it)");
    node a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    node_conn(&a);
    node_conn(&b);
    assert_int_equal(sl__redis_kv_watch(b.kv, on_raw_change, &b), SL_OK);
    assert_int_equal(sl__redis_kv_watch(b.kv, on_raw_change, &b), SL_EINVAL);
    /* The first subscription asks for a reload: changes before it were missed. */
    assert_true(run_until(reloaded, &b));
    assert_int_equal(a.kv->ops->put(a.kv, SL__KV_ACL, "k\0\n", 3, "v1", 2), SL_OK);
    assert_int_equal(barrier(a.kv), SL_OK);
    assert_int_equal(a.kv->ops->del(a.kv, SL__KV_ACL, "k\0\n", 3), SL_OK);
    assert_int_equal(barrier(a.kv), SL_OK);
    assert_true(run_until(changes_at_least, &b));
    assert_int_equal(b.last_klen, 3);
    assert_memory_equal(b.last_key, "k\0\n", 3);
    assert_int_equal(b.last_vlen, -1); /* deleted by the time of the last notice */
    node_down(&a);
    node_down(&b);
}

static int changed(void *ud)
{
    return ((node *)ud)->changes > 0;
}

/* Two deployments with the same prefix on db 1 (a, a2) and db 2 (b) of one Redis: a change
 * notice reaches the feed of its own deployment only (Redis delivers a PUBLISH to every subscriber
 * of the server, whatever its db), on a channel name of its db's. Redis hands one subscriber its
 * messages in the order it ran the PUBLISHes, so once b hears its own change, a's would have come
 * first. */
static void test_feed_dbs_apart(void **state)
{
    (void)state;
    NEED_DEP(redis_ok, "redis-server (scripts/deps installs it)");
    node a, a2, b;
    memset(&a, 0, sizeof a);
    memset(&a2, 0, sizeof a2);
    memset(&b, 0, sizeof b);
    node_conn_db(&a, 1);
    node_conn_db(&a2, 1);
    node_conn_db(&b, 2);
    assert_int_equal(sl__redis_kv_watch(a2.kv, on_raw_change, &a2), SL_OK);
    assert_int_equal(sl__redis_kv_watch(b.kv, on_raw_change, &b), SL_OK);
    assert_true(run_until(reloaded, &a2));
    assert_true(run_until(reloaded, &b));
    redisReply *r = test_redis_cmd(&redis, "PUBSUB NUMSUB t:kv t@1:kv t@2:kv");
    assert_non_null(r);
    assert_int_equal(r->elements, 6);
    assert_int_equal(r->element[1]->integer, 0);
    assert_int_equal(r->element[3]->integer, 1);
    assert_int_equal(r->element[5]->integer, 1);
    freeReplyObject(r);
    int reloads = b.reloads;
    assert_int_equal(a.kv->ops->put(a.kv, SL__KV_ACL, "from-a", 6, "va", 2), SL_OK);
    assert_int_equal(barrier(a.kv), SL_OK);
    assert_int_equal(b.kv->ops->put(b.kv, SL__KV_ACL, "from-b", 6, "vb", 2), SL_OK);
    assert_int_equal(barrier(b.kv), SL_OK);
    assert_true(run_until(changed, &a2));
    assert_true(run_until(changed, &b));
    assert_int_equal(a2.changes, 1);
    assert_memory_equal(a2.last_key, "from-a", 6);
    assert_int_equal(a2.last_vlen, 2);
    assert_int_equal(b.changes, 1);
    assert_memory_equal(b.last_key, "from-b", 6);
    assert_int_equal(b.reloads, reloads);
    node_down(&a);
    node_down(&a2);
    node_down(&b);
}

/* ---- two nodes --------------------------------------------------------------------------------
 */

typedef struct role_wait {
    node *n;
    const char *principal, *channel;
    sl_role want;
} role_wait;

static int has_role(void *ud)
{
    role_wait *w = ud;
    return sl__acl_role(w->n->ctx->acl, w->principal, w->channel) == w->want;
}

static int has_events(void *ud)
{
    node *n = ud;
    return n->events > 0;
}

static void test_two_nodes_acl(void **state)
{
    (void)state;
    NEED_DEP(redis_ok, "redis-server (scripts/deps installs it)");
    node a, b;
    node_up(&a);
    node_up(&b);
    sl_status st = {0};
    static const char *const wide[] = {"jobs.*"};
    assert_int_equal(sl_acl_grant(a.ctx, NULL, "alice", SL_ROLE_WRITE, wide, 1, &st), SL_OK);
    assert_int_equal(ctx_sync(a.ctx), SL_OK); /* the reply would wait for this */
    role_wait w = {&b, "alice", "jobs.eu", SL_ROLE_WRITE};
    assert_true(run_until(has_role, &w));
    assert_true(run_until(has_events, &b));
    assert_string_equal(b.last_principal, "alice");

    /* Narrowed on B: A applies it and tells its sockets. */
    a.events = 0;
    static const char *const narrow[] = {"jobs.us"};
    assert_int_equal(sl_acl_grant(b.ctx, NULL, "alice", SL_ROLE_READ, narrow, 1, &st), SL_OK);
    assert_int_equal(ctx_sync(b.ctx), SL_OK);
    role_wait w2 = {&a, "alice", "jobs.us", SL_ROLE_READ};
    assert_true(run_until(has_role, &w2));
    assert_int_equal(sl__acl_role(a.ctx->acl, "alice", "jobs.eu"), SL_ROLE_NONE);
    assert_true(run_until(has_events, &a));
    assert_int_equal(a.removed_events, 0);
    assert_string_equal(a.last_principal, "alice");

    /* Revoked on A: B removes it and says so. */
    b.events = b.removed_events = 0;
    assert_int_equal(sl_acl_revoke(a.ctx, NULL, "alice", &st), SL_OK);
    assert_int_equal(ctx_sync(a.ctx), SL_OK);
    role_wait w3 = {&b, "alice", "jobs.us", SL_ROLE_NONE};
    assert_true(run_until(has_role, &w3));
    assert_true(run_until(has_events, &b));
    assert_int_equal(b.removed_events, 1);
    assert_false(sl__acl_has(b.ctx->acl, "alice"));

    /* A node's own notices change nothing and emit nothing a second time. */
    sl__shared_state_stats before;
    sl__shared_state_stats_get(a.ss, &before);
    a.events = 0;
    assert_int_equal(sl_acl_grant(a.ctx, NULL, "dave", SL_ROLE_ADMIN, NULL, 0, &st), SL_OK);
    assert_int_equal(a.events, 1); /* from the call itself */
    assert_int_equal(ctx_sync(a.ctx), SL_OK);
    role_wait w4 = {&b, "dave", "x", SL_ROLE_ADMIN};
    assert_true(run_until(has_role, &w4));
    assert_int_equal(a.events, 1);

    /* A node started later loads what the others stored. */
    node c;
    node_up(&c);
    assert_int_equal(sl__acl_role(c.ctx->acl, "dave", "x"), SL_ROLE_ADMIN);
    assert_false(sl__acl_has(c.ctx->acl, "alice"));
    node_down(&c);
    node_down(&a);
    node_down(&b);
}

typedef struct broker_wait {
    node *n;
    const char *principal;
    size_t want;
} broker_wait;

static int has_roles(void *ud)
{
    broker_wait *w = ud;
    const char *const *roles;
    return sl_broker_roles_of(w->n->broker, w->principal, &roles) == w->want;
}

typedef struct key_wait {
    node *n;
    const char *key;
    int want; /* SL_OK or SL_ETOKEN */
} key_wait;

static int key_answers(void *ud)
{
    key_wait *w = ud;
    sl_identity id;
    memset(&id, 0, sizeof id);
    sl_status st = {0};
    int rc = sl_apikey_authenticate(w->n->keys, w->key, strlen(w->key), 1700000100.0, &id, &st);
    sl_identity_clear(&id);
    return rc == w->want;
}

static void test_two_nodes_broker_and_keys(void **state)
{
    (void)state;
    NEED_DEP(redis_ok, "redis-server (scripts/deps installs it)");
    node a, b;
    node_up(&a);
    node_up(&b);
    static const char *const roles[] = {"worker"};
    assert_int_equal(sl_broker_assign(a.broker, "svc", roles, 1), SL_OK);
    assert_int_equal(ctx_sync(a.ctx), SL_OK);
    broker_wait bw = {&b, "svc", 1};
    assert_true(run_until(has_roles, &bw));
    assert_int_equal(sl_broker_assign(b.broker, "svc", NULL, 0), SL_OK);
    assert_int_equal(ctx_sync(b.ctx), SL_OK);
    broker_wait bw2 = {&a, "svc", 0};
    assert_true(run_until(has_roles, &bw2));

    sl_status st = {0};
    char *key = NULL;
    char id[SL_APIKEY_ID_LEN + 1];
    assert_int_equal(sl_apikey_create(a.keys, "svc-billing", SL_ROLE_READ, NULL, 0, 0, 1700000000.0,
                                      &key, id, &st),
                     SL_OK);
    assert_int_equal(ctx_sync(a.ctx), SL_OK);
    key_wait kw = {&b, key, SL_OK};
    assert_true(run_until(key_answers, &kw));
    /* Only the hash is stored. */
    redisReply *r = test_redis_cmd(&redis, "HGET t:kv:apikeys %s", id);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_null(strstr(r->str, key + SL_APIKEY_PREFIX_LEN + SL_APIKEY_ID_LEN + 1));
    freeReplyObject(r);
    assert_int_equal(sl_apikey_delete(b.keys, id, &st), SL_OK);
    assert_int_equal(ctx_sync(b.ctx), SL_OK);
    key_wait kw2 = {&a, key, SL_ETOKEN};
    assert_true(run_until(key_answers, &kw2));
    sl_apikey_key_free(key);
    node_down(&a);
    node_down(&b);
}

/* ---- hostile data
 * --------------------------------------------------------------------------------
 */

static int refused_at_least(void *ud)
{
    void **p = ud;
    sl__shared_state_stats s;
    sl__shared_state_stats_get(p[0], &s);
    return s.refused >= (unsigned long)(uintptr_t)p[1];
}

static int reloads_at_least(void *ud)
{
    void **p = ud;
    sl__shared_state_stats s;
    sl__shared_state_stats_get(p[0], &s);
    return s.reloads >= (unsigned long)(uintptr_t)p[1];
}

static void test_hostile(void **state)
{
    (void)state;
    NEED_DEP(redis_ok, "redis-server (scripts/deps installs it)");
    node a;
    node_up(&a);
    sl_status st = {0};
    assert_int_equal(sl_acl_grant(a.ctx, NULL, "bob", SL_ROLE_READ, NULL, 0, &st), SL_OK);
    assert_int_equal(ctx_sync(a.ctx), SL_OK);

    /* Garbage JSON over bob's grant, with a notice naming it: refused, bob keeps his grant. */
    freeReplyObject(test_redis_cmd(&redis, "HSET t:kv:acl bob {\"v\":1,\"role\":\"god\"}"));
    freeReplyObject(test_redis_cmd(&redis, "PUBLISH t:kv 3:acl3:bob"));
    void *p[2] = {a.ss, (void *)(uintptr_t)1};
    assert_true(run_until(refused_at_least, p));
    assert_int_equal(sl__acl_role(a.ctx->acl, "bob", "any"), SL_ROLE_READ);
    freeReplyObject(test_redis_cmd(&redis, "HSET t:kv:acl bob not-json"));
    freeReplyObject(test_redis_cmd(&redis, "HSET t:kv:acl bad\x01key {\"v\":1,\"role\":\"read\"}"));
    freeReplyObject(test_redis_cmd(&redis, "PUBLISH t:kv 3:acl3:bob3:acl7:bad\x01key"));
    p[1] = (void *)(uintptr_t)3;
    assert_true(run_until(refused_at_least, p));
    assert_int_equal(sl__acl_role(a.ctx->acl, "bob", "any"), SL_ROLE_READ);
    assert_false(sl__acl_has(a.ctx->acl, "bad\x01key"));
    /* A garbage notice makes the node reload: bob's stored value is still bad, so he keeps his
     * last good grant, and the reload goes on with the rest. */
    sl__shared_state_stats before;
    sl__shared_state_stats_get(a.ss, &before);
    freeReplyObject(test_redis_cmd(&redis, "PUBLISH t:kv garbage"));
    freeReplyObject(test_redis_cmd(&redis, "PUBLISH t:kv 3:acl9999:x"));
    void *pr[2] = {a.ss, (void *)(uintptr_t)(before.reloads + 1)};
    assert_true(run_until(reloads_at_least, pr));
    assert_int_equal(sl__acl_role(a.ctx->acl, "bob", "any"), SL_ROLE_READ);

    /* The broker's hash replaced by a string: the fetch is ignored, a write refused whole. */
    freeReplyObject(test_redis_cmd(&redis, "SET t:kv:broker oops"));
    freeReplyObject(test_redis_cmd(&redis, "PUBLISH t:kv 6:broker3:svc"));
    static const char *const roles[] = {"worker"};
    assert_int_equal(sl_broker_assign(a.broker, "svc", roles, 1), SL_OK);
    assert_int_equal(sl_acl_grant(a.ctx, NULL, "erin", SL_ROLE_READ, NULL, 0, &st), SL_OK);
    assert_int_equal(barrier(a.kv), SL_ESTORAGE);
    redisReply *r = test_redis_cmd(&redis, "HGET t:kv:acl erin");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL); /* the batch was refused before any write */
    freeReplyObject(r);
    /* The scan at start says so rather than loading half. */
    scanned s = {0};
    assert_int_equal(a.kv->ops->scan(a.kv, SL__KV_BROKER, NULL, 0, on_scan, &s), SL_EFORMAT);
    sl_broker *nb;
    assert_int_equal(sl_broker_new(&nb, NULL), SL_OK);
    assert_int_equal(sl_broker_attach(nb, a.kv, &st), SL_EFORMAT);
    sl_broker_free(nb);
    freeReplyObject(test_redis_cmd(&redis, "DEL t:kv:broker"));
    sl_ctx *c2;
    sl_ctx_options co = {.mode = SL_MODE_ACL};
    assert_int_equal(sl_ctx_new(&c2, &co), SL_OK);
    assert_int_equal(sl__acl_attach(c2->acl, a.kv, &st), SL_EFORMAT); /* bob's value is bad */
    sl_ctx_free(c2);
    node_down(&a);
}

/* ---- Redis going away -------------------------------------------------------------------------
 */

static void test_outage(void **state)
{
    (void)state;
    NEED_DEP(redis_ok, "redis-server (scripts/deps installs it)");
    node a, b;
    node_up(&a);
    node_up(&b);
    sl_status st = {0};
    /* Both feeds are up (each reloaded its tables once). */
    void *pa[2] = {a.ss, (void *)(uintptr_t)1}, *pb[2] = {b.ss, (void *)(uintptr_t)1};
    assert_true(run_until(reloads_at_least, pa));
    assert_true(run_until(reloads_at_least, pb));
    for (int i = 0; i < 50; i++) /* let any second round of start-up reloads finish */
        uv_run(&loop, UV_RUN_NOWAIT);
    sl__shared_state_stats sb;
    sl__shared_state_stats_get(b.ss, &sb);

    test_redis_signal(&redis, SIGKILL);
    assert_int_equal(sl_acl_grant(a.ctx, NULL, "frank", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    assert_int_equal(ctx_sync(a.ctx), SL_EUNAVAIL);
    assert_int_equal(sl__acl_role(a.ctx->acl, "frank", "x"), SL_ROLE_WRITE); /* in memory only */

    assert_int_equal(test_redis_start(&redis), 0); /* empty: no persistence in tests */
    /* Back: A reloads and drops the grant Redis never got; B reloads too (missed notices). */
    role_wait gone = {&a, "frank", "x", SL_ROLE_NONE};
    assert_true(run_until(has_role, &gone));
    void *pb2[2] = {b.ss, (void *)(uintptr_t)(sb.reloads + 1)};
    assert_true(run_until(reloads_at_least, pb2));
    /* Writes work again, and reach the other node. */
    assert_true(run_until(rconn_is_up, a.conn));
    int rc = SL_EUNAVAIL;
    for (int i = 0; i < 100 && rc != SL_OK; i++) {
        assert_int_equal(sl_acl_grant(a.ctx, NULL, "frank", SL_ROLE_READ, NULL, 0, &st), SL_OK);
        rc = ctx_sync(a.ctx);
    }
    assert_int_equal(rc, SL_OK);
    role_wait back = {&b, "frank", "x", SL_ROLE_READ};
    assert_true(run_until(has_role, &back));
    node_down(&a);
    node_down(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notice),
        cmocka_unit_test_setup(test_round_trip, each_setup),
        cmocka_unit_test_setup(test_feed, each_setup),
        cmocka_unit_test_setup(test_feed_dbs_apart, each_setup),
        cmocka_unit_test_setup(test_two_nodes_acl, each_setup),
        cmocka_unit_test_setup(test_two_nodes_broker_and_keys, each_setup),
        cmocka_unit_test_setup(test_hostile, each_setup),
        cmocka_unit_test_setup(test_outage, each_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
