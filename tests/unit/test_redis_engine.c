/* The Redis engine as several nodes see it, against real redis-servers the test starts on free
 * loopback ports (tests/unit/redis_server.h): two engines on one loop and one Redis play two
 * sluiced nodes. A write on either reaches a watch on both, once each and in order; creations and
 * deletions on one reach the other's listener; claims are exclusive across both. Redis killed:
 * requests fail with SL_EUNAVAIL; restarted: the same engine works again by itself. SCRIPT FLUSH
 * is invisible (NOSCRIPT is handled below). Hostile data written by hand with a synchronous
 * hiredis connection (keys of the wrong type, garbage settings, a stream entry missing fields,
 * garbage on an event channel) gives SL_EFORMAT, never a crash, and other channels keep working.
 * Two shards: channels land on both, a dead letter crosses shards, and one shard down fails only
 * its channels. Deployments with one prefix on dbs 0, 1 and 2 of one Redis hear only their own
 * events, each db on channel names of its own. The codec's pure decoders are checked on a few
 * replies built by hand. Events are awaited with a generous bound, never timed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deps.h"
#include "redis_server.h"

#include "core/message.h"
#include "store/engine.h"
#include "store/redis_codec.h"
#include "store/redis_engine.h"

#include <uv.h>

#define PREFIX "node"

static test_redis R1, R2;
typedef struct node node;
static node *OPEN[4]; /* closed by teardown when a test failed half-way */
static int HAVE_REDIS;
static uv_loop_t LOOP;

/* ---- the loop ------------------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Turns the loop until cond(ud) holds or the deadline passes; returns cond's last value. */
static int spin(int (*cond)(void *), void *ud)
{
    uv_timer_t t;
    int late = 0;
    uv_timer_init(&LOOP, &t);
    t.data = &late;
    uv_timer_start(&t, on_deadline, TEST_REDIS_WAIT_MS, 0);
    while (!cond(ud) && !late)
        uv_run(&LOOP, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&LOOP, UV_RUN_NOWAIT);
    return cond(ud);
}

static int conn_up(void *ud)
{
    sl_engine *e = ud;
    const sl__redis_url *u = sl__redis_engine_url(e);
    for (size_t i = 0; i < u->n; i++)
        if (!sl__rconn_up(sl__redis_engine_conn(e, i)) || !sl__rsub_up(sl__redis_engine_sub(e, i)))
            return 0;
    return 1;
}

/* ---- events --------------------------------------------------------------------------------- */

struct node {
    sl_engine *e;
    char log[8192]; /* "W ch data id;" "C ch;" "D ch;" in arrival order */
    int resyncs;
};

static void on_event(void *ud, const sl_event *ev)
{
    node *n = ud;
    char line[256];
    if (ev->kind == SL_EVENT_WRITE)
        snprintf(line, sizeof line, "W %s %s %s;", ev->channel, ev->message->data, ev->message->id);
    else if (ev->kind == SL_EVENT_JOIN || ev->kind == SL_EVENT_LEAVE)
        snprintf(line, sizeof line, "%c %s %s %s;", ev->kind == SL_EVENT_JOIN ? 'J' : 'L',
                 ev->channel, ev->client, ev->principal);
    else
        snprintf(line, sizeof line, "%c %s;", ev->kind == SL_EVENT_CHANNEL_CREATED ? 'C' : 'D',
                 ev->channel);
    if (strlen(n->log) + strlen(line) < sizeof n->log)
        strcat(n->log, line);
}

static void on_resync(void *ud)
{
    ((node *)ud)->resyncs++;
}

static int watch(node *n, const char *ch);

static void node_open(node *n, const char *url)
{
    memset(n, 0, sizeof *n);
    sl__redis_engine_opts o = {.url = url, .prefix = PREFIX, .timeout_ms = TEST_REDIS_WAIT_MS};
    sl_status st = {0};
    assert_int_equal(sl__redis_engine_new(&n->e, &LOOP, &o, &st), SL_OK);
    n->e->listener = on_event;
    n->e->resync = on_resync;
    n->e->listener_ud = n;
    for (int i = 0; i < 4; i++)
        if (OPEN[i] == NULL) {
            OPEN[i] = n;
            break;
        }
    assert_true(spin(conn_up, n->e));
    /* Subscriptions are confirmed in order: once this one is, so is the control channel's. */
    assert_int_equal(watch(n, "_"), SL_OK);
    n->e->ops->unwatch(n->e, "_");
}

static void node_close(node *n)
{
    for (int i = 0; i < 4; i++)
        if (OPEN[i] == n)
            OPEN[i] = NULL;
    if (n->e)
        n->e->ops->free(n->e);
    n->e = NULL;
    /* Its handles close on the loop; the other node's keep it alive (teardown runs it out). */
    for (int i = 0; i < 8; i++)
        uv_run(&LOOP, UV_RUN_NOWAIT);
}

typedef struct waitrc {
    int done, rc;
} waitrc;

static void on_ready(void *ud, int rc)
{
    waitrc *w = ud;
    w->done = 1;
    w->rc = rc;
}

static int is_done(void *ud)
{
    return ((waitrc *)ud)->done;
}

static int watch(node *n, const char *ch)
{
    waitrc w = {0};
    n->e->ops->watch(n->e, ch, on_ready, &w);
    assert_true(spin(is_done, &w));
    return w.rc;
}

typedef struct logwant {
    node *n;
    const char *want;
} logwant;

static int log_has(void *ud)
{
    logwant *l = ud;
    return strstr(l->n->log, l->want) != NULL;
}

/* Waits until n's log contains want. */
static void expect_log(node *n, const char *want)
{
    logwant l = {n, want};
    if (!spin(log_has, &l))
        fail_msg("waited for \"%s\", have \"%s\"", want, n->log);
}

/* ---- requests ------------------------------------------------------------------------------- */

static int create(sl_engine *e, const char *id, sl_kind kind)
{
    sl_channel_info info = {.id = (char *)id,
                            .name = (char *)id,
                            .description = (char *)"",
                            .dead_letter = (char *)"",
                            .kind = kind,
                            .claim_timeout = 30};
    sl__eop op = {.kind = SL__EOP_CREATE, .channel = id, .create = &info};
    return sl__engine_call(e, &op);
}

static int drop(sl_engine *e, const char *id)
{
    sl__eop op = {.kind = SL__EOP_DROP, .channel = id};
    return sl__engine_call(e, &op);
}

static int put(sl_engine *e, const char *ch, const char *data, char *id)
{
    sl_message m = {.timestamp = 1000, .data = (char *)data, .sender_id = (char *)"s"};
    char ids[1][SL__MSGID_LEN + 1];
    sl__eop op = {
        .kind = SL__EOP_APPEND, .channel = ch, .msgs = &m, .nmsgs = 1, .now = 1000, .ids_out = ids};
    int rc = sl__engine_call(e, &op);
    if (rc == SL_OK && id)
        strcpy(id, ids[0]);
    return rc;
}

static int info(sl_engine *e, const char *ch, size_t *depth)
{
    sl__eop op = {.kind = SL__EOP_INFO, .channel = ch};
    int rc = sl__engine_call(e, &op);
    if (depth)
        *depth = op.info.depth;
    sl__eop_clear(&op);
    return rc;
}

static int read_all(sl_engine *e, const char *ch, size_t *n)
{
    sl__eop op = {.kind = SL__EOP_READ,
                  .channel = ch,
                  .reader = "r",
                  .after = "0000000000000000",
                  .limit = 100,
                  .max_bytes = SIZE_MAX,
                  .now = 1000};
    int rc = sl__engine_call(e, &op);
    if (n)
        *n = op.list.len;
    sl__eop_clear(&op);
    return rc;
}

static redisReply *admin(test_redis *r, const char *fmt, ...)
{
    redisContext *c = test_redis_admin(r);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(rep);
    return rep;
}

static void admin_ok(test_redis *r, const char *fmt, ...)
{
    redisContext *c = test_redis_admin(r);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(rep);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
}

/* ---- setup ---------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    HAVE_REDIS = test_redis_start(&R1) == 0 && test_redis_start(&R2) == 0;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    test_redis_stop(&R1);
    test_redis_stop(&R2);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    if (HAVE_REDIS) {
        for (int i = 0; i < 2; i++) {
            test_redis *r = i ? &R2 : &R1;
            if (r->pid <= 0 && test_redis_start(r) != 0)
                return -1;
            freeReplyObject(test_redis_cmd(r, "FLUSHALL"));
            freeReplyObject(test_redis_cmd(r, "CONFIG SET maxmemory 0"));
        }
    }
    return uv_loop_init(&LOOP) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++)
        if (OPEN[i])
            node_close(OPEN[i]);
    uv_run(&LOOP, UV_RUN_DEFAULT);
    return uv_loop_close(&LOOP) == 0 ? 0 : -1;
}

#define NEED_REDIS() NEED_DEP(HAVE_REDIS, "redis-server (scripts/deps installs it)")

/* ---- two nodes ------------------------------------------------------------------------------ */

static void test_two_nodes_events(void **state)
{
    (void)state;
    NEED_REDIS();
    char url[128];
    test_redis_url(&R1, url, sizeof url);
    static node a, b;
    node_open(&a, url);
    node_open(&b, url);
    assert_string_equal(a.e->ops->name, "redis");
    assert_true(sl__redis_engine_is(a.e));
    assert_string_equal(sl__redis_engine_prefix(a.e), PREFIX);

    /* Creations reach both listeners (this node's own included). */
    assert_int_equal(create(a.e, "t", SL_KIND_TOPIC), SL_OK);
    expect_log(&a, "C t;");
    expect_log(&b, "C t;");
    assert_int_equal(create(b.e, "t", SL_KIND_TOPIC), SL_EEXIST);

    /* Watched on both, written on both: each node hears every write once, in order. */
    assert_int_equal(watch(&a, "t"), SL_OK);
    assert_int_equal(watch(&b, "t"), SL_OK);
    a.log[0] = b.log[0] = '\0';
    assert_int_equal(put(a.e, "t", "1", NULL), SL_OK);
    assert_int_equal(put(b.e, "t", "2", NULL), SL_OK);
    assert_int_equal(put(a.e, "t", "3", NULL), SL_OK);
    const char *want = "W t 1 0000000000000001;W t 2 0000000000000002;W t 3 0000000000000003;";
    expect_log(&a, want);
    expect_log(&b, want);
    /* Once: a write after them proves nothing else was queued before it. */
    assert_int_equal(put(a.e, "t", "4", NULL), SL_OK);
    expect_log(&b, "W t 4 0000000000000004;");
    assert_string_equal(b.log, "W t 1 0000000000000001;W t 2 0000000000000002;W t 3 "
                               "0000000000000003;W t 4 0000000000000004;");

    /* Garbage published on the event channel by someone else is ignored. */
    freeReplyObject(admin(&R1, "PUBLISH node:ev:{t} %s", "w1:x"));
    freeReplyObject(admin(&R1, "PUBLISH node:ev:{t} %s", "wi16:0000000000000009"));
    freeReplyObject(admin(&R1, "PUBLISH node:ctl %s", "c bad id with spaces"));
    assert_int_equal(put(a.e, "t", "5", NULL), SL_OK);
    expect_log(&b, "W t 5 0000000000000005;");
    assert_null(strstr(b.log, "0000000000000009"));

    /* Watching is counted: one unwatch of two leaves it watched. */
    assert_int_equal(watch(&b, "t"), SL_OK);
    b.e->ops->unwatch(b.e, "t");
    assert_int_equal(put(a.e, "t", "6", NULL), SL_OK);
    expect_log(&b, "W t 6 0000000000000006;");

    /* Deletion of a watched channel: once on each node. An unwatched one: from the control
     * channel, once too. */
    a.log[0] = b.log[0] = '\0';
    assert_int_equal(drop(b.e, "t"), SL_OK);
    expect_log(&a, "D t;");
    expect_log(&b, "D t;");
    assert_int_equal(create(a.e, "u", SL_KIND_QUEUE), SL_OK);
    assert_int_equal(drop(a.e, "u"), SL_OK);
    expect_log(&b, "C u;D u;");
    assert_string_equal(b.log, "D t;C u;D u;");
    a.e->ops->unwatch(a.e, "t");
    b.e->ops->unwatch(b.e, "t");
    node_close(&a);
    node_close(&b);
}

/* ---- deployments on other dbs of one Redis ------------------------------------------------- */

static long long numsub(test_redis *r, const char *channel)
{
    redisReply *rep = admin(r, "PUBSUB NUMSUB %s", channel);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 2);
    long long n = rep->element[1]->integer;
    freeReplyObject(rep);
    return n;
}

/* Redis delivers a PUBLISH to every subscriber of the server, whatever db it SELECTed: two
 * deployments with the same prefix on db 1 and db 2 of one Redis (a1 and a2 one deployment, b the
 * other, c a third on db 0) must not hear each other's writes, creations or deletions, while the
 * nodes of one deployment still do. Each db has channel names of its own; db 0's are the names
 * every earlier release used. */
static void test_dbs_do_not_share_events(void **state)
{
    (void)state;
    NEED_REDIS();
    char url[128], url1[160], url2[160];
    test_redis_url(&R1, url, sizeof url);
    snprintf(url1, sizeof url1, "%s/1", url);
    snprintf(url2, sizeof url2, "%s/2", url);
    static node a1, a2, b, c;
    node_open(&a1, url1);
    node_open(&a2, url1);
    node_open(&b, url2);
    node_open(&c, url);

    /* The same channel id in every deployment: the keys are apart (one per db). */
    assert_int_equal(create(a1.e, "t", SL_KIND_TOPIC), SL_OK);
    assert_int_equal(create(b.e, "t", SL_KIND_TOPIC), SL_OK);
    assert_int_equal(create(c.e, "t", SL_KIND_TOPIC), SL_OK);
    expect_log(&a2, "C t;");
    expect_log(&b, "C t;");
    expect_log(&c, "C t;");
    assert_int_equal(watch(&a2, "t"), SL_OK);
    assert_int_equal(watch(&b, "t"), SL_OK);
    assert_int_equal(watch(&c, "t"), SL_OK);
    /* Each db's names: db 0 keeps "P:...", db N has "P@N:...". */
    assert_int_equal(numsub(&R1, PREFIX ":ev:{t}"), 1);
    assert_int_equal(numsub(&R1, PREFIX "@1:ev:{t}"), 1);
    assert_int_equal(numsub(&R1, PREFIX "@2:ev:{t}"), 1);
    assert_int_equal(numsub(&R1, PREFIX ":ctl"), 1);
    assert_int_equal(numsub(&R1, PREFIX "@1:ctl"), 2);
    assert_int_equal(numsub(&R1, PREFIX "@2:ctl"), 1);
    a2.log[0] = b.log[0] = c.log[0] = '\0';

    /* Writes: a1's reach a2 only, b's b only, c's c only. Redis hands one subscriber its messages
     * in the order it ran the PUBLISHes, so once b and c hear their own last write, a write of
     * the other deployment would have arrived before it. */
    assert_int_equal(put(a1.e, "t", "a-1", NULL), SL_OK);
    assert_int_equal(put(b.e, "t", "b-1", NULL), SL_OK);
    assert_int_equal(put(c.e, "t", "c-1", NULL), SL_OK);
    assert_int_equal(put(a1.e, "t", "a-2", NULL), SL_OK);
    assert_int_equal(put(b.e, "t", "b-2", NULL), SL_OK);
    assert_int_equal(put(c.e, "t", "c-2", NULL), SL_OK);
    expect_log(&a2, "W t a-1 0000000000000001;W t a-2 0000000000000002;");
    expect_log(&b, "W t b-1 0000000000000001;W t b-2 0000000000000002;");
    expect_log(&c, "W t c-1 0000000000000001;W t c-2 0000000000000002;");
    assert_string_equal(a2.log, "W t a-1 0000000000000001;W t a-2 0000000000000002;");
    assert_string_equal(b.log, "W t b-1 0000000000000001;W t b-2 0000000000000002;");
    assert_string_equal(c.log, "W t c-1 0000000000000001;W t c-2 0000000000000002;");

    /* Creations and deletions, on the control channel and on the event channel. */
    a2.log[0] = b.log[0] = c.log[0] = '\0';
    assert_int_equal(create(a1.e, "only-a", SL_KIND_QUEUE), SL_OK);
    assert_int_equal(drop(a1.e, "t"), SL_OK);
    assert_int_equal(create(b.e, "only-b", SL_KIND_QUEUE), SL_OK);
    assert_int_equal(create(c.e, "only-c", SL_KIND_QUEUE), SL_OK);
    expect_log(&a2, "C only-a;D t;");
    expect_log(&b, "C only-b;");
    expect_log(&c, "C only-c;");
    assert_string_equal(a2.log, "C only-a;D t;");
    assert_string_equal(b.log, "C only-b;");
    assert_string_equal(c.log, "C only-c;");
    /* b's channel t was not dropped with a1's. */
    assert_int_equal(info(b.e, "t", NULL), SL_OK);

    a2.e->ops->unwatch(a2.e, "t");
    b.e->ops->unwatch(b.e, "t");
    c.e->ops->unwatch(c.e, "t");
    node_close(&a1);
    node_close(&a2);
    node_close(&b);
    node_close(&c);
}

/* ---- presence across nodes ------------------------------------------------------------------ */

static int pres_set(sl_engine *e, const char *ch, const char *client, const char *user, double now,
                    double ttl, size_t *count)
{
    sl__eop op = {.kind = SL__EOP_PRESENCE_SET,
                  .channel = ch,
                  .reader = client,
                  .after = user,
                  .now = now,
                  .delay = ttl};
    int rc = sl__engine_call(e, &op);
    if (count)
        *count = op.count;
    return rc;
}

static int pres_del(sl_engine *e, const char *ch, const char *client, size_t *count)
{
    sl__eop op = {.kind = SL__EOP_PRESENCE_DEL, .channel = ch, .reader = client};
    int rc = sl__engine_call(e, &op);
    if (count)
        *count = op.count;
    return rc;
}

/* The live entries as "client=user;" sorted by client, into out. */
static int pres_get(sl_engine *e, const char *ch, double now, char *out, size_t cap)
{
    sl__eop op = {.kind = SL__EOP_PRESENCE_GET, .channel = ch, .now = now};
    int rc = sl__engine_call(e, &op);
    out[0] = '\0';
    for (size_t k = 0; rc == SL_OK && k < op.list.len; k++) { /* a selection sort */
        const sl_message *best = NULL;
        for (size_t i = 0; i < op.list.len; i++) {
            const sl_message *m = &op.list.items[i];
            assert_non_null(m->origin);
            assert_non_null(m->sender_id);
            if (strstr(out, m->origin))
                continue;
            if (best == NULL || strcmp(m->origin, best->origin) < 0)
                best = m;
        }
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s=%s;", best->origin, best->sender_id);
    }
    sl__eop_clear(&op);
    return rc;
}

static void test_presence_across_nodes(void **state)
{
    (void)state;
    NEED_REDIS();
    char url[128], got[512];
    test_redis_url(&R1, url, sizeof url);
    static node a, b;
    node_open(&a, url);
    node_open(&b, url);
    sl_channel_info ci = {.id = (char *)"p",
                          .name = (char *)"p",
                          .description = (char *)"",
                          .dead_letter = (char *)"",
                          .kind = SL_KIND_TOPIC,
                          .presence = 1,
                          .join_leave = 1};
    sl__eop cop = {.kind = SL__EOP_CREATE, .channel = "p", .create = &ci};
    assert_int_equal(sl__engine_call(a.e, &cop), SL_OK);
    assert_int_equal(watch(&b, "p"), SL_OK);
    b.log[0] = '\0';

    /* Set on one node, seen from the other; a second set of the same client is not new. */
    size_t n = 9;
    assert_int_equal(pres_set(a.e, "p", "c1", "alice", 1000, 30, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pres_set(b.e, "p", "c2", "bob", 1000, 30, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pres_set(a.e, "p", "c1", "alice", 1010, 30, &n), SL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(pres_get(b.e, "p", 1011, got, sizeof got), SL_OK);
    assert_string_equal(got, "c1=alice;c2=bob;");
    assert_int_equal(pres_get(a.e, "p", 1011, got, sizeof got), SL_OK);
    assert_string_equal(got, "c1=alice;c2=bob;");

    /* Joins reach the watcher once each (the refresh of c1 was not one). */
    expect_log(&b, "J p c1 alice;J p c2 bob;");

    /* Del: once. */
    assert_int_equal(pres_del(b.e, "p", "c2", &n), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pres_del(a.e, "p", "c2", &n), SL_OK);
    assert_int_equal(n, 0);
    expect_log(&b, "L p c2 bob;");
    assert_int_equal(pres_get(a.e, "p", 1012, got, sizeof got), SL_OK);
    assert_string_equal(got, "c1=alice;");

    /* Expiry: c1 was last set at 1010 for 30 s. Still there at 1039, gone at 1041 (its leave is
     * published once by the read that dropped it). */
    assert_int_equal(pres_set(b.e, "p", "c3", "carol", 1030, 30, NULL), SL_OK);
    assert_int_equal(pres_get(b.e, "p", 1039, got, sizeof got), SL_OK);
    assert_string_equal(got, "c1=alice;c3=carol;");
    assert_int_equal(pres_get(b.e, "p", 1041, got, sizeof got), SL_OK);
    assert_string_equal(got, "c3=carol;");
    assert_int_equal(pres_get(a.e, "p", 1042, got, sizeof got), SL_OK);
    assert_string_equal(got, "c3=carol;");
    expect_log(&b, "L p c1 alice;");
    /* A set after the expiry drops the expired entries too (a dead node's). */
    assert_int_equal(pres_set(a.e, "p", "c4", "dave", 1100, 30, NULL), SL_OK);
    expect_log(&b, "L p c3 carol;J p c4 dave;");
    /* Everything once, in order: a last event proves nothing else was queued before it. */
    assert_int_equal(pres_del(a.e, "p", "c4", NULL), SL_OK);
    expect_log(&b, "L p c4 dave;");
    assert_string_equal(b.log, "J p c1 alice;J p c2 bob;L p c2 bob;J p c3 carol;L p c1 alice;"
                               "L p c3 carol;J p c4 dave;L p c4 dave;");

    /* Without join_leave: entries but no events. A missing channel: ENOENT. Bad input: EINVAL. */
    ci.id = ci.name = (char *)"q";
    ci.join_leave = 0;
    cop = (sl__eop){.kind = SL__EOP_CREATE, .channel = "q", .create = &ci};
    assert_int_equal(sl__engine_call(a.e, &cop), SL_OK);
    assert_int_equal(watch(&b, "q"), SL_OK);
    assert_int_equal(pres_set(a.e, "q", "c9", "zed", 1000, 30, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pres_get(b.e, "q", 1000, got, sizeof got), SL_OK);
    assert_string_equal(got, "c9=zed;");
    assert_int_equal(pres_set(a.e, "nope", "c9", "zed", 1000, 30, NULL), SL_ENOENT);
    assert_int_equal(pres_get(a.e, "nope", 1000, got, sizeof got), SL_ENOENT);
    assert_int_equal(pres_set(a.e, "q", "", "zed", 1000, 30, NULL), SL_EINVAL);
    assert_int_equal(pres_del(a.e, "q", NULL, NULL), SL_EINVAL);
    assert_int_equal(put(a.e, "p", "x", NULL), SL_OK);
    expect_log(&b, "W p x 0000000000000001;");
    assert_null(strstr(b.log, "c9"));

    /* Hostile data: a user with a NUL, a pres key of the wrong type. */
    freeReplyObject(admin(&R1, "HSET node:{q}:pres c8 %b", "a\0b", (size_t)3));
    assert_int_equal(pres_get(b.e, "q", 1000, got, sizeof got), SL_EFORMAT);
    freeReplyObject(admin(&R1, "DEL node:{q}:pres"));
    freeReplyObject(admin(&R1, "SET node:{q}:pres x"));
    assert_int_equal(pres_get(b.e, "q", 1000, got, sizeof got), SL_EFORMAT);
    assert_int_equal(pres_set(b.e, "q", "c1", "u", 1000, 30, NULL), SL_EFORMAT);
    freeReplyObject(admin(&R1, "PUBLISH node:ev:{p} %b", "j\0c1", (size_t)4));
    freeReplyObject(admin(&R1, "PUBLISH node:ev:{p} %b", "l\0\0u", (size_t)4));
    /* Dropping a channel takes its presence with it. */
    assert_int_equal(drop(a.e, "q"), SL_OK);
    redisReply *r = admin(&R1, "EXISTS node:{q}:pres node:{q}:presx");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(put(a.e, "p", "y", NULL), SL_OK);
    expect_log(&b, "W p y 0000000000000002;");
    assert_null(strstr(b.log, "J p c1;"));
    b.e->ops->unwatch(b.e, "p");
    b.e->ops->unwatch(b.e, "q");
    node_close(&a);
    node_close(&b);
}

/* The memory engine keeps no presence: it says so. */
static void test_presence_mem_engine(void **state)
{
    (void)state;
    sl_engine *e;
    assert_int_equal(sl__mem_engine_new(&e), SL_OK);
    assert_int_equal(create(e, "p", SL_KIND_TOPIC), SL_OK);
    char got[64];
    assert_int_equal(pres_set(e, "p", "c1", "u", 1, 30, NULL), SL_EINVAL);
    assert_int_equal(pres_del(e, "p", "c1", NULL), SL_EINVAL);
    assert_int_equal(pres_get(e, "p", 1, got, sizeof got), SL_EINVAL);
    e->ops->free(e);
}

static void count_done(sl__eop *op)
{
    ++*(int *)op->ud;
}

static int all_done(void *ud)
{
    return *(int *)ud == 40;
}

static void test_two_nodes_exclusive_claims(void **state)
{
    (void)state;
    NEED_REDIS();
    char url[128];
    test_redis_url(&R1, url, sizeof url);
    static node a, b;
    node_open(&a, url);
    node_open(&b, url);
    enum { N = 60 };
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(put(i % 2 ? a.e : b.e, "q", "1", NULL), SL_OK);
    /* Both nodes claim at once, many requests in flight on each (not sl__engine_call, which
     * would wait for each). */
    enum { K = 40 };
    sl__eop ops[K];
    int done = 0;
    memset(ops, 0, sizeof ops);
    for (int i = 0; i < K; i++) {
        sl_engine *e = i % 2 ? a.e : b.e;
        ops[i] = (sl__eop){.kind = SL__EOP_CLAIM,
                           .channel = "q",
                           .reader = i % 2 ? "wa" : "wb",
                           .limit = 2,
                           .max_bytes = SIZE_MAX,
                           .now = 1000,
                           .done = count_done,
                           .ud = &done};
        e->ops->submit(e, &ops[i]);
    }
    spin(all_done, &done);
    assert_int_equal(done, K);
    static char seen[N + 1];
    memset(seen, 0, sizeof seen);
    int total = 0;
    for (int i = 0; i < K; i++) {
        assert_int_equal(ops[i].rc, SL_OK);
        for (size_t j = 0; j < ops[i].list.len; j++) {
            uint64_t seq;
            assert_true(sl__msgid_parse(ops[i].list.items[j].id, &seq));
            assert_true(seq >= 1 && seq <= N);
            assert_int_equal(seen[seq], 0); /* never claimed twice */
            seen[seq] = 1;
            total++;
        }
        sl__eop_clear(&ops[i]);
    }
    assert_int_equal(total, N);
    node_close(&a);
    node_close(&b);
}

/* ---- coalesced writes ----------------------------------------------------------------------- */

/* Writes submitted together run as one script per channel, yet each is answered as if alone and
 * in order: a full queue refuses only the request that does not fit, a key repeated by a later
 * request is a repeat, a claim submitted between writes sees exactly the writes before it, and a
 * watcher hears every stored message once, in order. */
static void test_coalesced_writes(void **state)
{
    (void)state;
    NEED_REDIS();
    char url[128];
    test_redis_url(&R1, url, sizeof url);
    static node a;
    node_open(&a, url);
    sl_channel_info info = {.id = (char *)"q",
                            .name = (char *)"q",
                            .description = (char *)"",
                            .dead_letter = (char *)"",
                            .kind = SL_KIND_QUEUE,
                            .claim_timeout = 30,
                            .max_messages = 4};
    sl__eop c = {.kind = SL__EOP_CREATE, .channel = "q", .create = &info};
    assert_int_equal(sl__engine_call(a.e, &c), SL_OK);
    assert_int_equal(watch(&a, "q"), SL_OK);
    a.log[0] = '\0';

    sl_message m[2] = {{.timestamp = 1, .data = (char *)"a"},
                       {.timestamp = 1, .data = (char *)"b"}};
    const char *k1[1] = {"key"};
    enum { K = 6 };
    static sl__eop ops[K];
    static char ids[K][2][SL__MSGID_LEN + 1];
    static unsigned char dups[K][2];
    int done = 0;
    memset(ops, 0, sizeof ops);
    /* 0: two messages; 1: one, keyed; 2: a claim of everything so far; 3: two (full: refused);
     * 4: one with the same key (a repeat: stored nothing); 5: one (fits) */
    size_t nm[K] = {2, 1, 0, 2, 1, 1};
    for (int i = 0; i < K; i++) {
        ops[i] = (sl__eop){.kind = i == 2 ? SL__EOP_CLAIM : SL__EOP_APPEND,
                           .channel = "q",
                           .msgs = m,
                           .nmsgs = nm[i],
                           .keys = i == 1 || i == 4 ? k1 : NULL,
                           .ids_out = ids[i],
                           .dups = dups[i],
                           .reader = "w",
                           .limit = 10,
                           .max_bytes = SIZE_MAX,
                           .now = 1,
                           .done = count_done,
                           .ud = &done};
        a.e->ops->submit(a.e, &ops[i]);
    }
    while (done < K)
        uv_run(&LOOP, UV_RUN_ONCE);
    assert_int_equal(ops[0].rc, SL_OK);
    assert_string_equal(ids[0][0], "0000000000000001");
    assert_string_equal(ids[0][1], "0000000000000002");
    assert_int_equal(ops[1].rc, SL_OK);
    assert_string_equal(ids[1][0], "0000000000000003");
    assert_int_equal(dups[1][0], 0);
    assert_int_equal(ops[2].rc, SL_OK);
    assert_int_equal(ops[2].list.len, 3); /* exactly the writes submitted before it */
    assert_int_equal(ops[3].rc, SL_EFULL);
    assert_int_equal(ops[4].rc, SL_OK);
    assert_int_equal(dups[4][0], 1);
    assert_string_equal(ids[4][0], "0000000000000003");
    assert_int_equal(ops[5].rc, SL_OK);
    assert_string_equal(ids[5][0], "0000000000000004");
    assert_int_equal(ops[5].seq, 4);
    for (int i = 0; i < K; i++)
        sl__eop_clear(&ops[i]);
    expect_log(&a, "W q a 0000000000000004;");
    assert_string_equal(a.log, "W q a 0000000000000001;W q b 0000000000000002;"
                               "W q a 0000000000000003;W q a 0000000000000004;");
    /* A delayed message is no news until it can be claimed (as with the memory engine): a
     * write after it is the next event. */
    sl__eop cl = {.kind = SL__EOP_CLEAR, .channel = "q"};
    assert_int_equal(sl__engine_call(a.e, &cl), SL_OK);
    a.log[0] = '\0';
    sl_message later = {.timestamp = 1, .data = (char *)"later", .not_before = 100};
    sl_message now = {.timestamp = 1, .data = (char *)"now"};
    char id1[1][SL__MSGID_LEN + 1];
    sl__eop d1 = {.kind = SL__EOP_APPEND,
                  .channel = "q",
                  .msgs = &later,
                  .nmsgs = 1,
                  .now = 1,
                  .ids_out = id1};
    assert_int_equal(sl__engine_call(a.e, &d1), SL_OK);
    sl__eop d2 = {
        .kind = SL__EOP_APPEND, .channel = "q", .msgs = &now, .nmsgs = 1, .now = 1, .ids_out = id1};
    assert_int_equal(sl__engine_call(a.e, &d2), SL_OK);
    expect_log(&a, "W q now 0000000000000006;");
    assert_string_equal(a.log, "W q now 0000000000000006;");
    a.e->ops->unwatch(a.e, "q");
    node_close(&a);
}

/* ---- failures ------------------------------------------------------------------------------- */

static void test_redis_down_and_back(void **state)
{
    (void)state;
    NEED_REDIS();
    char url[128];
    test_redis_url(&R1, url, sizeof url);
    static node a;
    node_open(&a, url);
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_OK);
    assert_int_equal(put(a.e, "q", "1", NULL), SL_OK);

    /* NOSCRIPT after a flush of the script cache: invisible. */
    admin_ok(&R1, "SCRIPT FLUSH");
    assert_int_equal(put(a.e, "q", "2", NULL), SL_OK);
    size_t depth = 0;
    assert_int_equal(info(a.e, "q", &depth), SL_OK);
    assert_int_equal(depth, 2);

    /* Killed: fail closed. */
    int resyncs = a.resyncs;
    test_redis_signal(&R1, SIGKILL);
    assert_int_equal(put(a.e, "q", "3", NULL), SL_EUNAVAIL);
    assert_int_equal(info(a.e, "q", NULL), SL_EUNAVAIL);
    /* Back (empty: no persistence in the test): the same engine works again by itself. */
    assert_int_equal(test_redis_start(&R1), 0);
    assert_true(spin(conn_up, a.e));
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_OK);
    assert_int_equal(put(a.e, "q", "4", NULL), SL_OK);
    /* The subscription came back too, and said so. */
    assert_true(a.resyncs > resyncs);
    assert_int_equal(watch(&a, "q"), SL_OK);
    a.log[0] = '\0';
    assert_int_equal(put(a.e, "q", "5", NULL), SL_OK);
    expect_log(&a, "W q 5 0000000000000002;");
    a.e->ops->unwatch(a.e, "q");
    node_close(&a);
}

static void test_hostile_data(void **state)
{
    (void)state;
    NEED_REDIS();
    char url[128];
    test_redis_url(&R1, url, sizeof url);
    static node a;
    node_open(&a, url);
    /* A settings key of the wrong type. */
    admin_ok(&R1, "SET node:{w}:meta x");
    assert_int_equal(info(a.e, "w", NULL), SL_EFORMAT);
    assert_int_equal(put(a.e, "w", "1", NULL), SL_EFORMAT);
    assert_int_equal(drop(a.e, "w"), SL_EFORMAT);
    /* Garbage settings. */
    admin_ok(&R1, "HSET node:{g}:meta kind 7 seq 0 name g description d dead_letter x");
    assert_int_equal(info(a.e, "g", NULL), SL_EFORMAT);
    assert_int_equal(put(a.e, "g", "1", NULL), SL_EFORMAT);
    admin_ok(&R1, "HSET node:{g}:meta kind 1 seq nope");
    assert_int_equal(put(a.e, "g", "1", NULL), SL_EFORMAT);
    admin_ok(&R1, "HSET node:{g}:meta seq 0 max_messages %s", "\x01\x02");
    assert_int_equal(put(a.e, "g", "1", NULL), SL_EFORMAT);
    admin_ok(&R1, "HSET node:{g}:meta max_messages 0 claim_timeout %s", "\x01\x02");
    assert_int_equal(read_all(a.e, "g", NULL), SL_EFORMAT);
    assert_int_equal(info(a.e, "g", NULL), SL_EFORMAT);
    admin_ok(&R1, "HSET node:{g}:meta claim_timeout 1 epoch %s", "a-much-too-long-epoch-value");
    assert_int_equal(info(a.e, "g", NULL), SL_EFORMAT);

    /* A stream entry missing its fields, and one with an unknown field. */
    assert_int_equal(create(a.e, "s", SL_KIND_TOPIC), SL_OK);
    assert_int_equal(put(a.e, "s", "1", NULL), SL_OK);
    admin_ok(&R1, "XADD node:{s}:s 5-0 z 1");
    assert_int_equal(read_all(a.e, "s", NULL), SL_EFORMAT);
    admin_ok(&R1, "XDEL node:{s}:s 5-0");
    admin_ok(&R1, "XADD node:{s}:s 6-0 t 1 d 1 q 2");
    assert_int_equal(read_all(a.e, "s", NULL), SL_EFORMAT);
    admin_ok(&R1, "XDEL node:{s}:s 6-0");
    size_t n = 0;
    assert_int_equal(read_all(a.e, "s", &n), SL_OK);
    assert_int_equal(n, 1);
    /* A message's stream of the wrong type. */
    admin_ok(&R1, "DEL node:{s}:s");
    admin_ok(&R1, "SET node:{s}:s x");
    assert_int_equal(read_all(a.e, "s", NULL), SL_EFORMAT);

    /* Queue structures of the wrong type or with garbage members. */
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_OK);
    assert_int_equal(put(a.e, "q", "1", NULL), SL_OK);
    admin_ok(&R1, "ZADD node:{q}:ready 0 zzzz");
    sl__eop op = {.kind = SL__EOP_CLAIM,
                  .channel = "q",
                  .reader = "w",
                  .limit = 10,
                  .max_bytes = SIZE_MAX,
                  .now = 1000};
    assert_int_equal(sl__engine_call(a.e, &op), SL_EFORMAT);
    sl__eop_clear(&op);
    admin_ok(&R1, "DEL node:{q}:ready");
    admin_ok(&R1, "SET node:{q}:ready x");
    memset(&op.list, 0, sizeof op.list);
    assert_int_equal(sl__engine_call(a.e, &op), SL_EFORMAT);
    sl__eop_clear(&op);

    /* The channel list of the wrong type. */
    admin_ok(&R1, "DEL node:channels");
    admin_ok(&R1, "SET node:channels x");
    sl__eop list = {.kind = SL__EOP_LIST};
    assert_int_equal(sl__engine_call(a.e, &list), SL_EFORMAT);
    sl__eop_clear(&list);

    /* Other channels still work. */
    admin_ok(&R1, "DEL node:channels");
    assert_int_equal(create(a.e, "ok", SL_KIND_QUEUE), SL_OK);
    assert_int_equal(put(a.e, "ok", "1", NULL), SL_OK);
    node_close(&a);
}

/* Redis out of memory (maxmemory reached): a write fails with SL_ESTORAGE (Redis refuses a
 * script's first write; one that already wrote may finish), reads still work. */
static void test_out_of_memory(void **state)
{
    (void)state;
    NEED_REDIS();
    char url[128];
    test_redis_url(&R1, url, sizeof url);
    static node a;
    node_open(&a, url);
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_OK);
    assert_int_equal(put(a.e, "q", "1", NULL), SL_OK);
    admin_ok(&R1, "CONFIG SET maxmemory 1");
    assert_int_equal(put(a.e, "q", "2", NULL), SL_ESTORAGE);
    size_t depth = 0;
    assert_int_equal(info(a.e, "q", &depth), SL_OK);
    assert_int_equal(depth, 1);
    admin_ok(&R1, "CONFIG SET maxmemory 0");
    assert_int_equal(put(a.e, "q", "2", NULL), SL_OK);
    node_close(&a);
}

static int cmd_conn_up(void *ud)
{
    return sl__rconn_up(sl__redis_engine_conn(ud, 0));
}

static int cmd_conn_down(void *ud)
{
    return !cmd_conn_up(ud);
}

/* A newer key layout is refused, not misread, and nothing is written into it: not even by a
 * request sent the moment the command connection counts as up (as sluiced's start does), with
 * the script cache empty (the check's EVALSHA answered NOSCRIPT first: a longer handshake). */
static void test_newer_format(void **state)
{
    (void)state;
    NEED_REDIS();
    admin_ok(&R1, "SET node:format 99");
    admin_ok(&R1, "SCRIPT FLUSH");
    char url[128];
    test_redis_url(&R1, url, sizeof url);
    static node a;
    memset(&a, 0, sizeof a);
    sl__redis_engine_opts o = {.url = url, .prefix = PREFIX, .timeout_ms = TEST_REDIS_WAIT_MS};
    sl_status st = {0};
    assert_int_equal(sl__redis_engine_new(&a.e, &LOOP, &o, &st), SL_OK);
    OPEN[0] = &a;
    assert_true(spin(cmd_conn_up, a.e));
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_EFORMAT);
    redisReply *r = admin(&R1, "EXISTS node:channels node:{q}:meta");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    node_close(&a);
    /* A node opened the usual way: the same. */
    node_open(&a, url);
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_EFORMAT);
    assert_int_equal(put(a.e, "q", "1", NULL), SL_EFORMAT);
    r = admin(&R1, "EXISTS node:channels node:{q}:meta");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* The check runs again on every reconnect: the layout put back, the connection dropped by
     * Redis, and the engine works again once it is back (requests meanwhile fail closed). */
    admin_ok(&R1, "SET node:format 1");
    admin_ok(&R1, "CLIENT KILL TYPE normal");
    /* The engine sees its connection go (it reconnects after a backoff of 100 ms at least, so the
     * loop cannot miss that), refuses meanwhile, and once the connection is back the request
     * works at once: each step waits for its event, not for a number of loop turns. */
    assert_true(spin(cmd_conn_down, a.e));
    int rc = create(a.e, "q", SL_KIND_QUEUE);
    assert_true(rc == SL_EFORMAT || rc == SL_EUNAVAIL);
    assert_true(spin(cmd_conn_up, a.e));
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_OK);
    node_close(&a);
}

/* ---- two shards ----------------------------------------------------------------------------- */

static void test_two_shards(void **state)
{
    (void)state;
    NEED_REDIS();
    char u1[128], u2[128], url[300];
    test_redis_url(&R1, u1, sizeof u1);
    test_redis_url(&R2, u2, sizeof u2);
    snprintf(url, sizeof url, "%s,%s", u1, u2);
    static node a, b;
    node_open(&a, url);
    node_open(&b, url);
    /* Channel ids on each shard, found through the engine's own ring. */
    sl__redis_ring *ring;
    assert_int_equal(sl__redis_ring_new(&ring, sl__redis_engine_url(a.e)), SL_OK);
    char on[2][8][16];
    int non[2] = {0, 0};
    for (int i = 0; i < 200 && (non[0] < 8 || non[1] < 8); i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", i);
        size_t s = sl__redis_ring_shard(ring, id);
        if (non[s] < 8)
            strcpy(on[s][non[s]++], id);
    }
    sl__redis_ring_free(ring);
    assert_int_equal(non[0], 8);
    assert_int_equal(non[1], 8);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 8; i++)
            assert_int_equal(create(a.e, on[s][i], SL_KIND_QUEUE), SL_OK);
    /* Each shard holds its own; LIST merges them sorted. */
    redisReply *r = admin(&R1, "SCARD node:channels");
    assert_int_equal(r->integer, 8);
    freeReplyObject(r);
    r = admin(&R2, "SCARD node:channels");
    assert_int_equal(r->integer, 8);
    freeReplyObject(r);
    sl__eop list = {.kind = SL__EOP_LIST};
    assert_int_equal(sl__engine_call(b.e, &list), SL_OK);
    assert_int_equal(list.ninfos, 16);
    for (size_t i = 1; i < list.ninfos; i++)
        assert_true(strcmp(list.infos[i - 1].id, list.infos[i].id) < 0);
    sl__eop_clear(&list);

    /* A watch on either node hears writes from the other, whatever the shard. */
    assert_int_equal(watch(&b, on[1][0]), SL_OK);
    assert_int_equal(put(a.e, on[1][0], "1", NULL), SL_OK);
    char want[64];
    snprintf(want, sizeof want, "W %s 1 0000000000000001;", on[1][0]);
    expect_log(&b, want);
    b.e->ops->unwatch(b.e, on[1][0]);

    /* A dead letter across shards: the queue on shard 0, its dead-letter queue on shard 1. */
    const char *q = on[0][0], *dl = on[1][7];
    assert_int_equal(drop(a.e, dl), SL_OK);
    char id[32];
    assert_int_equal(put(a.e, q, "poison", id), SL_OK);
    sl__eop c = {.kind = SL__EOP_CLAIM,
                 .channel = q,
                 .reader = "w",
                 .limit = 1,
                 .max_bytes = SIZE_MAX,
                 .now = 1000};
    assert_int_equal(sl__engine_call(a.e, &c), SL_OK);
    assert_int_equal(c.list.len, 1);
    sl__eop_clear(&c);
    const char *ids[] = {id};
    sl__eop t = {.kind = SL__EOP_TERMINATE,
                 .channel = q,
                 .reader = "w",
                 .ids = ids,
                 .nids = 1,
                 .reason = "bad input",
                 .dead_letter = dl,
                 .now = 1001};
    assert_int_equal(sl__engine_call(a.e, &t), SL_OK);
    assert_int_equal(t.count, 1);
    assert_int_equal(t.dead_rc, SL_OK);
    assert_int_equal(t.dead_created, 1);
    assert_string_equal(t.info.id, dl);
    assert_int_equal(t.info.kind, SL_KIND_QUEUE);
    sl__eop_clear(&t);
    size_t depth = 9;
    assert_int_equal(info(b.e, q, &depth), SL_OK);
    assert_int_equal(depth, 0);
    c.channel = dl;
    c.now = 2000;
    memset(&c.list, 0, sizeof c.list);
    assert_int_equal(sl__engine_call(b.e, &c), SL_OK);
    assert_int_equal(c.list.len, 1);
    assert_string_equal(c.list.items[0].data, "poison");
    assert_string_equal(c.list.items[0].dead_reason, "bad input");
    sl__eop_clear(&c);

    /* Shard 1 down: only its channels fail. */
    test_redis_signal(&R2, SIGKILL);
    for (int i = 1; i < 8; i++) {
        assert_int_equal(put(a.e, on[0][i], "x", NULL), SL_OK);
        assert_int_equal(put(a.e, on[1][i], "x", NULL), SL_EUNAVAIL);
    }
    sl__eop l2 = {.kind = SL__EOP_LIST};
    assert_int_equal(sl__engine_call(a.e, &l2), SL_EUNAVAIL);
    sl__eop_clear(&l2);
    node_close(&a);
    node_close(&b);
    assert_int_equal(test_redis_start(&R2), 0);
}

/* ---- freeing with requests in flight -------------------------------------------------------- */

static sl__eop chained;
static int nchained_done;
static sl_engine *FREEING;

static void chained_done(sl__eop *op)
{
    (void)op;
    nchained_done++;
}

/* The first completion submits another request on the engine being freed. */
static void submit_more(sl__eop *op)
{
    ++*(int *)op->ud;
    if (chained.kind == SL__EOP_INFO && chained.done == NULL) {
        chained.done = chained_done;
        chained.channel = "q";
        FREEING->ops->submit(FREEING, &chained);
    }
}

static void test_free_in_flight(void **state)
{
    (void)state;
    NEED_REDIS();
    char u1[128], u2[128], url[300];
    test_redis_url(&R1, u1, sizeof u1);
    test_redis_url(&R2, u2, sizeof u2);
    snprintf(url, sizeof url, "%s,%s", u1, u2);
    static node a;
    node_open(&a, url);
    assert_int_equal(create(a.e, "q", SL_KIND_QUEUE), SL_OK);
    enum { K = 12 };
    static sl__eop ops[K];
    sl_message m = {.timestamp = 1, .data = (char *)"1"};
    char ids[K][1][SL__MSGID_LEN + 1];
    int done = 0;
    memset(ops, 0, sizeof ops);
    memset(&chained, 0, sizeof chained);
    chained.kind = SL__EOP_INFO;
    nchained_done = 0;
    for (int i = 0; i < K; i++) {
        ops[i] = (sl__eop){.kind = i % 3 ? SL__EOP_APPEND : SL__EOP_CLAIM,
                           .channel = "q",
                           .reader = "w",
                           .limit = 5,
                           .max_bytes = SIZE_MAX,
                           .dead_letter = "q.dead",
                           .msgs = &m,
                           .nmsgs = 1,
                           .ids_out = ids[i],
                           .now = 1,
                           .done = submit_more,
                           .ud = &done};
        a.e->ops->submit(a.e, &ops[i]);
    }
    FREEING = a.e;
    node_close(&a); /* every request completes, in order, before the free returns */
    assert_int_equal(done, K);
    assert_int_equal(nchained_done, 1);
    assert_int_equal(chained.rc, SL_EUNAVAIL);
    for (int i = 0; i < K; i++) {
        assert_true(ops[i].rc == SL_OK || ops[i].rc == SL_EUNAVAIL);
        sl__eop_clear(&ops[i]);
    }
    sl__eop_clear(&chained);
}

/* ---- the decoders, on replies built by hand ------------------------------------------------- */

typedef struct evlog {
    char buf[512];
} evlog;

static void log_event(void *ud, const sl_message *m, int deleted)
{
    evlog *l = ud;
    char line[128];
    if (deleted)
        snprintf(line, sizeof line, "D;");
    else
        snprintf(line, sizeof line, "%s %g %s %s %s;", m->id, m->timestamp, m->data,
                 m->sender_id ? m->sender_id : "-", m->origin ? m->origin : "-");
    strcat(l->buf, line);
}

static int events(const char *p, size_t len, evlog *l)
{
    l->buf[0] = '\0';
    return sl__redis_decode_events(p, len, log_event, l);
}

/* Numbers go to Redis as text that reads back as the same double, short or not. */
static void test_number_text(void **state)
{
    (void)state;
    char buf[40];
    struct {
        double x;
        const char *text;
    } fixed[] = {{0, "0"},
                 {1, "1"},
                 {42, "42"},
                 {1764921600.5, "1764921600.5"},
                 {1764921600.123456, "1764921600.123456"},
                 {0.000001, "0.000001"},
                 {120, "120"},
                 {1e-7, "9.9999999999999995e-08"},
                 {-1.5, "-1.5"}};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        assert_int_equal(sl__redis_fmt_num(buf, sizeof buf, fixed[i].x), strlen(fixed[i].text));
        assert_string_equal(buf, fixed[i].text);
    }
    /* Clock readings as sl_wallclock makes them, and arbitrary doubles: always exact. */
    unsigned long long r = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        double x = i % 2 ? (double)(1700000000 + r % 100000000) + (double)(r % 1000000) / 1e6
                         : (double)(r >> 11) * 0x1.0p-53 * 1e10;
        sl__redis_fmt_num(buf, sizeof buf, x);
        assert_true(strtod(buf, NULL) == x);
    }
}

static void test_codec(void **state)
{
    (void)state;
    evlog l;
    assert_int_equal(events("d", 1, &l), SL_OK);
    assert_string_equal(l.buf, "D;");
    const char one[] = "w\0#000000000000000a\0t\00012.5\0d\0\"x\"\0s\0a\0o\0c1";
    assert_int_equal(events(one, sizeof one - 1, &l), SL_OK);
    assert_string_equal(l.buf, "000000000000000a 12.5 \"x\" a c1;");
    /* Two messages in one payload; an empty value; a value that looks like an id. */
    const char two[] = "w\0#0000000000000001\0t\0001\0d\0#0000000000000002\0s\0\0"
                       "#0000000000000002\0t\0002\0d\0[]";
    assert_int_equal(events(two, sizeof two - 1, &l), SL_OK);
    assert_string_equal(l.buf,
                        "0000000000000001 1 #0000000000000002  -;0000000000000002 2 [] - -;");
    static const struct {
        const char *p;
        size_t n;
    } badv[] = {
#define B(s) {s, sizeof s - 1}
        B(""),
        B("w"),
        B("x"),
        B("dd"),
        B("w\0"),
        B("w\0#000000000000000A\0t\0001\0d\0001"),
        B("w\0#0000000000000001\0t\0001"),
        B("w\0#0000000000000001\0t\0001\0d\0001\0d\0002"),
        B("w\0#0000000000000001\0t\0abc\0d\0001"),
        B("w\0#0000000000000001\0t\0001\0d\0001\0z\0001"),
        B("w\0#0000000000000001\0t\0001\0d"),
        B("w\0#0000000000000001\0tt\0001\0d\0001"),
#undef B
    };
    for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++) {
        assert_int_equal(events(badv[i].p, badv[i].n, &l), SL_EFORMAT);
        assert_string_equal(l.buf, "");
    }
    /* A broken second message: the first was passed on. */
    const char half[] = "w\0#0000000000000001\0t\0001\0d\0001\0#0000000000000002\0t";
    assert_int_equal(events(half, sizeof half - 1, &l), SL_EFORMAT);
    assert_string_equal(l.buf, "0000000000000001 1 1 - -;");

    assert_int_equal(sl__redis_error_code("ERR ENOENT", 10), SL_ENOENT);
    assert_int_equal(sl__redis_error_code("EFULL", 5), SL_EFULL);
    assert_int_equal(sl__redis_error_code("WRONGTYPE x", 11), SL_EFORMAT);
    assert_int_equal(sl__redis_error_code("ERR OOM", 7), SL_ESTORAGE);
    assert_int_equal(sl__redis_error_code("OOM command not allowed", 23), SL_ESTORAGE);
    assert_int_equal(sl__redis_error_code("READONLY You can't write", 24), SL_EUNAVAIL);
    assert_int_equal(sl__redis_error_code("OOMX", 4), SL_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_nodes_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_nodes_exclusive_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalesced_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_number_text),
        cmocka_unit_test_setup_teardown(test_presence_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbs_do_not_share_events, setup, teardown),
        cmocka_unit_test(test_presence_mem_engine),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
