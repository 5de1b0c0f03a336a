/* The engine conformance suite: one table of rule tests that every engine must pass, run on the
 * memory engine and on the durable one (LMDB, closed and loaded again before every request), and
 * later on Redis. Through engine requests, with time passed explicitly: queue claims,
 * leases, acks, nacks and dead letters; topic retention, `after` reads and cursors; clear, evict
 * and remove; errors; a 100,000-message run; and (outside sanitizer builds, which own malloc) every
 * allocation failing in turn to check that SL_ENOMEM leaves the engine consistent and leak-free.
 * Sanitised builds do not compile that test in at all; CMake builds this file a second time without
 * sanitizers (unit.test_engine_oom), so CI runs it rather than skipping it.
 * Also covers the string map and the message copy helpers the engine builds on, and the queue
 * features of docs/QUEUES.md (extend, terminate, backoff, delays, TTL, idempotency keys, idle
 * cursors), journaled through an in-memory kv and loaded back.
 * The third run is the Redis engine (src/store/redis_engine.c) against a real redis-server started
 * for the group (tests/unit/redis_server.h), flushed and given a fresh engine before every test;
 * it leaves out only what is memory-specific (the journal, allocation failures) and runs the scale
 * test at 10,000 messages. A fourth run does the same over two Redis servers (shards), where
 * channels and their dead-letter queues land apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "core/message.h"
#include "store/engine.h"
#include "store/kv.h"
#include "store/lmdb.h"

#ifndef SLUICE_NO_REDIS
#include "deps.h"
#include "redis_server.h"
#include "store/redis_engine.h"
#include <uv.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* ---- which engine: memory, or durable with a restart before every request ------------------- */

/* The conformance run: every rule test below runs a second time on the durable engine (the memory
 * engine over an LMDB store without a loop, so each request commits before it completes), and
 * there the engine is closed and loaded again from the store before every request. A rule that
 * holds in memory but not across a restart fails there. */
static sl_engine *E;
static int DURABLE;
static char DATA_DIR[64];
static sl__kv *KV;
static double LAST_NOW = 1000;
static const char *ENGINE_NAME = "memory";

static void durable_open(void)
{
    sl_status st = {0};
    sl__lmdb_opts o = {.dir = DATA_DIR};
    assert_int_equal(sl__lmdb_open(&KV, &o, &st), SL_OK);
    if (sl__mem_engine_open(&E, KV, NULL, LAST_NOW, &st) != SL_OK)
        fail_msg("loading the engine: %s", st.message);
}

static void durable_close(void)
{
    E->ops->free(E);
    E = NULL;
    KV->ops->free(KV);
    KV = NULL;
}

static int run_op(sl__eop *op)
{
    if (DURABLE) {
        /* Loaded at the request's own time (tests may turn the clock back), else the last one. */
        if (op->now > 0)
            LAST_NOW = op->now;
        durable_close();
        durable_open();
    }
    return sl__engine_call(E, op);
}

/* ---- the engine's requests as synchronous calls (the memory engine answers at once) ---------- */

static int eng_create(sl_engine *e, const sl_channel_info *info)
{
    sl__eop op = {.kind = SL__EOP_CREATE, .create = info, .channel = info->id};
    return run_op(&op);
}

static int eng_drop(sl_engine *e, const char *id)
{
    sl__eop op = {.kind = SL__EOP_DROP, .channel = id};
    return run_op(&op);
}

static int eng_info(sl_engine *e, const char *id, sl_channel_info *out)
{
    sl__eop op = {.kind = SL__EOP_INFO, .channel = id};
    int rc = run_op(&op);
    *out = op.info;
    return rc;
}

static int eng_list(sl_engine *e, sl_channel_info **out, size_t *n)
{
    sl__eop op = {.kind = SL__EOP_LIST};
    int rc = run_op(&op);
    *out = op.infos;
    *n = op.ninfos;
    return rc;
}

static int eng_append(sl_engine *e, const char *id, sl_message *m, double now, char *id_out)
{
    char ids[1][SL__MSGID_LEN + 1];
    sl__eop op = {
        .kind = SL__EOP_APPEND, .channel = id, .msgs = m, .nmsgs = 1, .now = now, .ids_out = ids};
    int rc = run_op(&op);
    if (rc == SL_OK && id_out)
        strcpy(id_out, ids[0]);
    return rc;
}

static int eng_claim(sl_engine *e, const char *id, const char *reader, size_t limit,
                     size_t max_bytes, double now, sl_message_list *out, sl_message_list *dead)
{
    sl__eop op = {.kind = SL__EOP_CLAIM,
                  .channel = id,
                  .reader = reader,
                  .limit = limit,
                  .max_bytes = max_bytes,
                  .now = now};
    int rc = run_op(&op);
    *out = op.list;
    *dead = op.dead;
    sl_channel_info_clear(&op.info); /* a dead-letter queue it created */
    return rc;
}

static int eng_ack(sl_engine *e, const char *id, const char *reader, const char *const *ids,
                   size_t n, double now, size_t *count)
{
    sl__eop op = {
        .kind = SL__EOP_ACK, .channel = id, .reader = reader, .ids = ids, .nids = n, .now = now};
    int rc = run_op(&op);
    *count = op.count;
    return rc;
}

static int eng_nack(sl_engine *e, const char *id, const char *reader, const char *const *ids,
                    size_t n, double delay, double now, size_t *count)
{
    sl__eop op = {.kind = SL__EOP_NACK,
                  .channel = id,
                  .reader = reader,
                  .ids = ids,
                  .nids = n,
                  .delay = delay,
                  .now = now};
    int rc = run_op(&op);
    *count = op.count;
    return rc;
}

static int eng_read(sl_engine *e, const char *id, const char *reader, const char *after,
                    size_t limit, size_t max_bytes, double now, sl_message_list *out)
{
    sl__eop op = {.kind = SL__EOP_READ,
                  .channel = id,
                  .reader = reader,
                  .after = after,
                  .limit = limit,
                  .max_bytes = max_bytes,
                  .now = now};
    int rc = run_op(&op);
    *out = op.list;
    return rc;
}

static int eng_clear(sl_engine *e, const char *id, size_t *count)
{
    sl__eop op = {.kind = SL__EOP_CLEAR, .channel = id};
    int rc = run_op(&op);
    *count = op.count;
    return rc;
}

static int eng_evict(sl_engine *e, const char *id, double before, size_t max_count, size_t *count)
{
    sl__eop op = {.kind = SL__EOP_EVICT, .channel = id, .before = before, .max_count = max_count};
    int rc = run_op(&op);
    *count = op.count;
    return rc;
}

static int eng_remove(sl_engine *e, const char *id, const char *const *ids, size_t n, size_t *count)
{
    sl__eop op = {.kind = SL__EOP_REMOVE, .channel = id, .ids = ids, .nids = n};
    int rc = run_op(&op);
    *count = op.count;
    return rc;
}

/* ---- allocation failure injection ------------------------------------------------------------ */

/* Plain builds replace malloc (glibc allows it) so a test can fail the n-th allocation and count
 * live blocks; sanitizer builds keep their own allocator and leave the failure test out. */
#if !SANITIZED
/* volatile: GCC assumes malloc leaves the caller's globals alone, and would cache these. */

static volatile long fail_at = -1; /* allocations until the failing one; -1: never fail */
static volatile long live_blocks;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static int should_fail(void)
{
    if (fail_at < 0)
        return 0;
    return fail_at-- == 0;
}

void *malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = __libc_malloc(n);
    live_blocks += p != NULL;
    return p;
}

void *calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = __libc_calloc(n, size);
    live_blocks += p != NULL;
    return p;
}

void *realloc(void *old, size_t n)
{
    if (old == NULL)
        return malloc(n);
    if (should_fail())
        return NULL;
    return __libc_realloc(old, n);
}

void free(void *p)
{
    live_blocks -= p != NULL;
    __libc_free(p);
}
#endif

/* ---- helpers --------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    DURABLE = 0;
    ENGINE_NAME = "memory";
    return sl__mem_engine_new(&E) == SL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    E->ops->free(E);
    E = NULL;
    return 0;
}

static int setup_durable(void **state)
{
    (void)state;
    strcpy(DATA_DIR, "/tmp/sluice-conformance-XXXXXX");
    if (mkdtemp(DATA_DIR) == NULL)
        return -1;
    DURABLE = 1;
    ENGINE_NAME = "lmdb";
    LAST_NOW = 0;
    durable_open();
    return 0;
}

static int teardown_durable(void **state)
{
    (void)state;
    durable_close();
    DURABLE = 0;
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", DATA_DIR);
    return system(cmd) == 0 ? 0 : -1;
}

#ifndef SLUICE_NO_REDIS
/* ---- the Redis run: one redis-server for the group, flushed before every test ------------- */

static test_redis REDIS, REDIS2;
static int REDIS_UP;
static int SHARDS = 1; /* the second run spreads the channels over two servers */
static uv_loop_t LOOP;

static int group_setup_redis(void **state)
{
    (void)state;
    SHARDS = 1;
    REDIS_UP = test_redis_start(&REDIS) == 0;
    return 0; /* without it each test fails or skips (NEED_DEP) */
}

static int group_setup_redis2(void **state)
{
    (void)state;
    SHARDS = 2;
    REDIS_UP = test_redis_start(&REDIS) == 0 && test_redis_start(&REDIS2) == 0;
    return 0;
}

static int group_teardown_redis(void **state)
{
    (void)state;
    test_redis_stop(&REDIS);
    if (SHARDS == 2)
        test_redis_stop(&REDIS2);
    return 0;
}

static int setup_redis(void **state)
{
    (void)state;
    DURABLE = 0;
    ENGINE_NAME = "redis";
    E = NULL;
    if (!REDIS_UP)
        return 0;
    freeReplyObject(test_redis_cmd(&REDIS, "FLUSHALL"));
    if (SHARDS == 2)
        freeReplyObject(test_redis_cmd(&REDIS2, "FLUSHALL"));
    if (uv_loop_init(&LOOP) != 0)
        return -1;
    char url[300];
    test_redis_url(&REDIS, url, sizeof url);
    if (SHARDS == 2) {
        size_t n = strlen(url);
        url[n++] = ',';
        test_redis_url(&REDIS2, url + n, sizeof url - n);
    }
    sl__redis_engine_opts o = {.url = url, .prefix = "conf"};
    sl_status st = {0};
    if (sl__redis_engine_new(&E, &LOOP, &o, &st) != SL_OK)
        return -1;
    /* Connected in the background: wait until the shard answers (a generous deadline). */
    for (int s = 0; s < SHARDS; s++)
        for (int i = 0; i < TEST_REDIS_WAIT_MS / 10 && !sl__rconn_up(sl__redis_engine_conn(E, s));
             i++) {
            uv_run(&LOOP, UV_RUN_NOWAIT);
            test_redis_sleep_ms(10);
        }
    for (int s = 0; s < SHARDS; s++)
        if (!sl__rconn_up(sl__redis_engine_conn(E, s)))
            return -1;
    return 0;
}

static int teardown_redis(void **state)
{
    (void)state;
    if (E == NULL)
        return 0;
    E->ops->free(E);
    E = NULL;
    uv_run(&LOOP, UV_RUN_DEFAULT);
    return uv_loop_close(&LOOP) == 0 ? 0 : -1;
}

/* Each Redis test first checks that the server is there. */
#define REDIS_TEST(f)                                                                              \
    static void redis_##f(void **state)                                                            \
    {                                                                                              \
        NEED_DEP(REDIS_UP, "redis-server (scripts/deps installs it)");                             \
        f(state);                                                                                  \
    }
#define REDIS_RULES(X)                                                                             \
    X(test_create_info_list_drop)                                                                  \
    X(test_missing_channel)                                                                        \
    X(test_wrong_kind)                                                                             \
    X(test_append_ids_and_fields)                                                                  \
    X(test_fifo_and_limits)                                                                        \
    X(test_only_claimer_acks)                                                                      \
    X(test_lease_expiry)                                                                           \
    X(test_nack)                                                                                   \
    X(test_max_attempts_dead)                                                                      \
    X(test_queue_full)                                                                             \
    X(test_topic_retention_count)                                                                  \
    X(test_topic_retention_age)                                                                    \
    X(test_topic_max_messages)                                                                     \
    X(test_topic_after)                                                                            \
    X(test_topic_cursors)                                                                          \
    X(test_clear_evict_remove)                                                                     \
    X(test_many_holes)                                                                             \
    X(test_10k)                                                                                    \
    X(test_claim_max_bytes)                                                                        \
    X(test_read_max_bytes)                                                                         \
    X(test_extend)                                                                                 \
    X(test_terminate)                                                                              \
    X(test_backoff)                                                                                \
    X(test_delayed)                                                                                \
    X(test_ttl)                                                                                    \
    X(test_idempotent)                                                                             \
    X(test_cursor_idle)                                                                            \
    X(test_retention_stops_early)
#endif

static sl_channel_info chan_info(const char *id, sl_kind kind)
{
    sl_channel_info info = {0};
    info.id = (char *)id;
    info.name = (char *)"A Channel";
    info.description = (char *)"about it";
    info.dead_letter = (char *)"x.dead";
    info.kind = kind;
    info.claim_timeout = 30;
    return info;
}

static void create(const char *id, sl_kind kind)
{
    sl_channel_info info = chan_info(id, kind);
    assert_int_equal(eng_create(E, &info), SL_OK);
}

/* Appends a message with `data`, sender "s", at time ts; id (>= 32 bytes) may be NULL. */
static int put(const char *ch, const char *data, double ts, char *id)
{
    char buf[32];
    sl_message m = {0};
    m.timestamp = ts;
    m.sender_id = strdup("s");
    m.data = strdup(data);
    if (m.sender_id == NULL || m.data == NULL) {
        sl_message_clear(&m);
        return SL_ENOMEM;
    }
    int rc = eng_append(E, ch, &m, ts, id ? id : buf);
    sl_message_clear(&m); /* the engine copied what it keeps: m stays ours either way */
    return rc;
}

static size_t depth(const char *ch)
{
    sl_channel_info info;
    assert_int_equal(eng_info(E, ch, &info), SL_OK);
    size_t d = info.depth;
    sl_channel_info_clear(&info);
    return d;
}

static size_t claim(const char *ch, const char *reader, size_t limit, double now,
                    sl_message_list *out)
{
    sl_message_list dead;
    assert_int_equal(eng_claim(E, ch, reader, limit, SIZE_MAX, now, out, &dead), SL_OK);
    assert_int_equal(dead.len, 0);
    sl_message_list_free(&dead);
    return out->len;
}

static size_t claim_n(const char *ch, const char *reader, size_t limit, double now)
{
    sl_message_list l;
    size_t n = claim(ch, reader, limit, now, &l);
    sl_message_list_free(&l);
    return n;
}

static size_t ack1(const char *ch, const char *reader, const char *id, double now)
{
    size_t n = 99;
    assert_int_equal(eng_ack(E, ch, reader, &id, 1, now, &n), SL_OK);
    return n;
}

static size_t nack1(const char *ch, const char *reader, const char *id, double delay, double now)
{
    size_t n = 99;
    assert_int_equal(eng_nack(E, ch, reader, &id, 1, delay, now, &n), SL_OK);
    return n;
}

static int read_topic(const char *ch, const char *reader, const char *after, size_t limit,
                      double now, sl_message_list *out)
{
    return eng_read(E, ch, reader, after, limit, SIZE_MAX, now, out);
}

/* The data fields of a read, joined by ',' ("" when empty). */
static const char *datas(const sl_message_list *l)
{
    static char buf[4096];
    buf[0] = '\0';
    for (size_t i = 0; i < l->len; i++) {
        if (i)
            strcat(buf, ",");
        strcat(buf, l->items[i].data);
    }
    return buf;
}

static const char *read_datas(const char *ch, const char *reader, const char *after, size_t limit,
                              double now)
{
    sl_message_list l;
    assert_int_equal(read_topic(ch, reader, after, limit, now, &l), SL_OK);
    const char *s = datas(&l);
    sl_message_list_free(&l);
    return s;
}

/* ---- channels -------------------------------------------------------------------------------- */

static void test_create_info_list_drop(void **state)
{
    (void)state;
    assert_string_equal(E->ops->name, ENGINE_NAME);
    create("b", SL_KIND_QUEUE);
    create("a", SL_KIND_TOPIC);
    sl_channel_info dup = chan_info("a", SL_KIND_QUEUE);
    assert_int_equal(eng_create(E, &dup), SL_EEXIST);

    assert_int_equal(put("b", "1", 10, NULL), SL_OK);
    sl_channel_info info;
    assert_int_equal(eng_info(E, "b", &info), SL_OK);
    assert_string_equal(info.id, "b");
    assert_string_equal(info.name, "A Channel");
    assert_string_equal(info.description, "about it");
    assert_string_equal(info.dead_letter, "x.dead");
    assert_int_equal(info.kind, SL_KIND_QUEUE);
    assert_true(info.claim_timeout == 30);
    assert_int_equal(info.depth, 1);
    sl_channel_info_clear(&info);

    sl_channel_info *all;
    size_t n;
    assert_int_equal(eng_list(E, &all, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].id, "a");
    assert_int_equal(all[0].kind, SL_KIND_TOPIC);
    assert_int_equal(all[0].depth, 0);
    assert_string_equal(all[1].id, "b");
    assert_int_equal(all[1].depth, 1);
    sl_channel_infos_free(all, n);

    assert_int_equal(eng_drop(E, "b"), SL_OK);
    assert_int_equal(eng_drop(E, "b"), SL_ENOENT);
    assert_int_equal(eng_info(E, "b", &info), SL_ENOENT);
    /* A channel created again under the same id starts empty. */
    create("b", SL_KIND_QUEUE);
    assert_int_equal(depth("b"), 0);
    assert_int_equal(eng_drop(E, "a"), SL_OK);
    assert_int_equal(eng_drop(E, "b"), SL_OK);
    assert_int_equal(eng_list(E, &all, &n), SL_OK);
    assert_int_equal(n, 0);
    sl_channel_infos_free(all, n);
}

static void test_missing_channel(void **state)
{
    (void)state;
    sl_message m = {0};
    char id[32];
    sl_message_list l, dead;
    size_t n;
    const char *ids[] = {"0000000000000001"};
    sl_channel_info info;
    assert_int_equal(eng_info(E, "nope", &info), SL_ENOENT);
    assert_int_equal(eng_drop(E, "nope"), SL_ENOENT);
    assert_int_equal(eng_append(E, "nope", &m, 1, id), SL_ENOENT);
    assert_int_equal(eng_claim(E, "nope", "r", 1, SIZE_MAX, 1, &l, &dead), SL_ENOENT);
    assert_int_equal(eng_ack(E, "nope", "r", ids, 1, 1, &n), SL_ENOENT);
    assert_int_equal(eng_nack(E, "nope", "r", ids, 1, 0, 1, &n), SL_ENOENT);
    assert_int_equal(eng_read(E, "nope", "r", NULL, 1, SIZE_MAX, 1, &l), SL_ENOENT);
    assert_int_equal(eng_clear(E, "nope", &n), SL_ENOENT);
    assert_int_equal(eng_evict(E, "nope", 0, 0, &n), SL_ENOENT);
    assert_int_equal(eng_remove(E, "nope", ids, 1, &n), SL_ENOENT);
}

static void test_wrong_kind(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    create("t", SL_KIND_TOPIC);
    assert_int_equal(put("q", "1", 1, NULL), SL_OK);
    assert_int_equal(put("t", "1", 1, NULL), SL_OK);
    sl_message_list l, dead;
    size_t n;
    const char *ids[] = {"0000000000000001"};
    assert_int_equal(eng_claim(E, "t", "r", 1, SIZE_MAX, 1, &l, &dead), SL_EKIND);
    assert_int_equal(eng_ack(E, "t", "r", ids, 1, 1, &n), SL_EKIND);
    assert_int_equal(eng_nack(E, "t", "r", ids, 1, 0, 1, &n), SL_EKIND);
    assert_int_equal(eng_read(E, "q", "r", NULL, 1, SIZE_MAX, 1, &l), SL_EKIND);
    assert_int_equal(depth("q"), 1);
    assert_int_equal(depth("t"), 1);
}

static void test_append_ids_and_fields(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    sl_message m = {0};
    m.timestamp = 42.5;
    m.sender_id = strdup("alice");
    m.data = strdup("{\"x\":1}");
    m.metadata = strdup("{\"k\":\"v\"}");
    m.correlation_id = strdup("c-1");
    m.reply_to = strdup("replies");
    m.recipient_id = strdup("bob");
    m.attempt = 7; /* ignored: a stored message starts afresh */
    char id1[32], id2[32];
    assert_int_equal(eng_append(E, "q", &m, 42.5, id1), SL_OK);
    /* The engine copied the message; the caller's strings are untouched and still its own. */
    assert_string_equal(m.sender_id, "alice");
    assert_string_equal(m.data, "{\"x\":1}");
    sl_message_clear(&m);
    assert_int_equal(strlen(id1), 16);
    assert_int_equal(strspn(id1, "0123456789abcdef"), 16);
    /* Only the required fields: the absent ones come back NULL. */
    m.timestamp = 43;
    m.data = strdup("2");
    assert_int_equal(eng_append(E, "q", &m, 43, id2), SL_OK);
    sl_message_clear(&m);
    assert_true(strcmp(id1, id2) < 0);

    sl_message_list l;
    assert_int_equal(claim("q", "r", 10, 100, &l), 2);
    sl_message *a = &l.items[0], *b = &l.items[1];
    assert_string_equal(a->id, id1);
    assert_true(a->timestamp == 42.5);
    assert_string_equal(a->sender_id, "alice");
    assert_string_equal(a->data, "{\"x\":1}");
    assert_string_equal(a->metadata, "{\"k\":\"v\"}");
    assert_string_equal(a->correlation_id, "c-1");
    assert_string_equal(a->reply_to, "replies");
    assert_string_equal(a->recipient_id, "bob");
    assert_int_equal(a->attempt, 1);
    assert_string_equal(b->id, id2);
    assert_null(b->sender_id);
    assert_string_equal(b->data, "2");
    assert_null(b->metadata);
    assert_null(b->correlation_id);
    assert_null(b->reply_to);
    assert_null(b->recipient_id);
    sl_message_list_free(&l);

    /* Ids keep increasing across clear: they are never reused. */
    size_t n;
    assert_int_equal(eng_clear(E, "q", &n), SL_OK);
    assert_int_equal(n, 2);
    char id3[32];
    assert_int_equal(put("q", "3", 44, id3), SL_OK);
    assert_true(strcmp(id2, id3) < 0);
}

/* ---- work queues ----------------------------------------------------------------------------- */

static void test_fifo_and_limits(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    char ids[5][32];
    for (int i = 0; i < 5; i++) {
        char d[8];
        snprintf(d, sizeof d, "%d", i);
        assert_int_equal(put("q", d, 1000 + i, ids[i]), SL_OK);
    }
    sl_message_list l;
    assert_int_equal(claim("q", "w", 2, 1000, &l), 2);
    assert_string_equal(datas(&l), "0,1");
    assert_string_equal(l.items[0].id, ids[0]);
    assert_int_equal(l.items[0].attempt, 1);
    assert_true(l.items[0].claim_expires_at == 1030);
    sl_message_list_free(&l);
    assert_int_equal(claim("q", "w", 0, 1000, &l), 0);
    assert_int_equal(claim("q", "w", 10, 1000, &l), 3);
    assert_string_equal(datas(&l), "2,3,4");
    sl_message_list_free(&l);
    assert_int_equal(claim_n("q", "w", 10, 1000), 0);
    assert_int_equal(claim_n("q", "other", 10, 1000), 0);
    assert_int_equal(depth("q"), 5); /* claimed messages still count */
}

static void test_only_claimer_acks(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    char id[32], id2[32];
    assert_int_equal(put("q", "1", 1000, id), SL_OK);
    assert_int_equal(put("q", "2", 1000, id2), SL_OK);
    assert_int_equal(claim_n("q", "a", 1, 1000), 1);
    assert_int_equal(ack1("q", "b", id, 1001), 0);
    assert_int_equal(nack1("q", "b", id, 0, 1001), 0);
    /* Unclaimed, unknown and malformed ids count nothing either. */
    assert_int_equal(ack1("q", "a", id2, 1001), 0);
    assert_int_equal(ack1("q", "a", "00000000000000ff", 1001), 0);
    assert_int_equal(ack1("q", "a", "not-an-id", 1001), 0);
    assert_int_equal(ack1("q", "a", "0000000000000001x", 1001), 0);
    assert_int_equal(depth("q"), 2);
    /* Several ids at once, with a duplicate: each message counts once. */
    const char *both[] = {id, id2, id};
    size_t n;
    assert_int_equal(eng_ack(E, "q", "a", both, 3, 1001, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ack1("q", "a", id, 1001), 0);
    assert_int_equal(depth("q"), 1);
}

static void test_lease_expiry(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    char id[32];
    assert_int_equal(put("q", "1", 1000, id), SL_OK);
    assert_int_equal(claim_n("q", "a", 10, 1000), 1); /* lease until 1030 */
    assert_int_equal(claim_n("q", "b", 10, 1029.5), 0);
    /* Expired (claim_expires_at <= now) but not reclaimed yet: a's ack no longer counts. */
    assert_int_equal(ack1("q", "a", id, 1030), 0);
    assert_int_equal(nack1("q", "a", id, 0, 1030), 0);
    sl_message_list l;
    assert_int_equal(claim("q", "b", 10, 1030, &l), 1);
    assert_string_equal(l.items[0].id, id);
    assert_int_equal(l.items[0].attempt, 2);
    assert_true(l.items[0].claim_expires_at == 1060);
    sl_message_list_free(&l);
    assert_int_equal(ack1("q", "a", id, 1031), 0);
    assert_int_equal(ack1("q", "b", id, 1031), 1);
    assert_int_equal(depth("q"), 0);
}

static void test_nack(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    char ids[3][32];
    for (int i = 0; i < 3; i++)
        assert_int_equal(put("q", i == 0 ? "0" : i == 1 ? "1" : "2", 1000, ids[i]), SL_OK);
    /* nack with a delay: invisible until it passes, while later messages stay claimable. */
    assert_int_equal(claim_n("q", "a", 1, 1000), 1);
    assert_int_equal(nack1("q", "b", ids[0], 10, 1001), 0);
    assert_int_equal(nack1("q", "a", ids[0], 10, 1001), 1);
    assert_int_equal(nack1("q", "a", ids[0], 10, 1001), 0); /* released already */
    sl_message_list l;
    assert_int_equal(claim("q", "a", 1, 1005, &l), 1);
    assert_string_equal(datas(&l), "1");
    sl_message_list_free(&l);
    assert_int_equal(claim("q", "b", 10, 1011, &l), 2);
    assert_string_equal(datas(&l), "0,2");   /* FIFO again once the delay passed */
    assert_int_equal(l.items[0].attempt, 2); /* the nack kept the count */
    sl_message_list_free(&l);

    /* nack without delay: back at its place in FIFO order at once, for anyone. */
    const char *two[] = {ids[0], ids[2]};
    size_t n;
    assert_int_equal(eng_nack(E, "q", "b", two, 2, 0, 1011, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ack1("q", "b", ids[0], 1011), 0); /* no longer b's */
    assert_int_equal(claim("q", "c", 10, 1011, &l), 2);
    assert_string_equal(datas(&l), "0,2");
    assert_int_equal(l.items[0].attempt, 3);
    sl_message_list_free(&l);
    /* Message 1's lease (from 1005) is still a's. */
    assert_int_equal(ack1("q", "a", ids[1], 1011), 1);
}

static void test_max_attempts_dead(void **state)
{
    (void)state;
    sl_channel_info info = chan_info("q", SL_KIND_QUEUE);
    info.max_attempts = 2;
    info.claim_timeout = 5;
    assert_int_equal(eng_create(E, &info), SL_OK);
    char poison[32];
    assert_int_equal(put("q", "poison", 1000, poison), SL_OK);
    assert_int_equal(put("q", "ok1", 1000, NULL), SL_OK);
    assert_int_equal(put("q", "ok2", 1000, NULL), SL_OK);
    sl_message_list l, dead;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(eng_claim(E, "q", "w", 1, SIZE_MAX, 1000 + 6 * i, &l, &dead), SL_OK);
        assert_string_equal(datas(&l), "poison");
        assert_int_equal(l.items[0].attempt, i + 1);
        assert_int_equal(dead.len, 0);
        sl_message_list_free(&l);
        sl_message_list_free(&dead);
    }
    /* The next claim would be the third: the message moves out into *dead and the claim still
     * returns `limit` messages from behind it. */
    assert_int_equal(eng_claim(E, "q", "w", 1, SIZE_MAX, 1012, &l, &dead), SL_OK);
    assert_string_equal(datas(&l), "ok1");
    assert_int_equal(dead.len, 1);
    assert_string_equal(dead.items[0].data, "poison");
    assert_string_equal(dead.items[0].id, poison);
    assert_string_equal(dead.items[0].sender_id, "s");
    assert_int_equal(dead.items[0].attempt, 2);
    sl_message_list_free(&l);
    sl_message_list_free(&dead);
    assert_int_equal(depth("q"), 2);
    assert_int_equal(ack1("q", "w", poison, 1012), 0);
}

static void test_queue_full(void **state)
{
    (void)state;
    sl_channel_info info = chan_info("q", SL_KIND_QUEUE);
    info.max_messages = 3;
    assert_int_equal(eng_create(E, &info), SL_OK);
    char ids[3][32];
    for (int i = 0; i < 3; i++)
        assert_int_equal(put("q", i == 0 ? "a" : i == 1 ? "b" : "c", 1, ids[i]), SL_OK);
    /* Refused: the caller keeps its message. */
    sl_message m = {.timestamp = 1, .data = strdup("d")};
    char id[32];
    assert_int_equal(eng_append(E, "q", &m, 1, id), SL_EFULL);
    assert_string_equal(m.data, "d");
    sl_message_clear(&m);
    assert_int_equal(depth("q"), 3);
    sl_message_list l;
    assert_int_equal(claim("q", "w", 10, 1, &l), 3);
    assert_string_equal(datas(&l), "a,b,c");
    sl_message_list_free(&l);
    assert_int_equal(put("q", "d", 1, NULL), SL_EFULL); /* claimed messages still take room */
    assert_int_equal(ack1("q", "w", ids[1], 2), 1);
    assert_int_equal(put("q", "d", 2, NULL), SL_OK);
    assert_int_equal(put("q", "e", 2, NULL), SL_EFULL);
}

/* ---- topics ---------------------------------------------------------------------------------- */

static void test_topic_retention_count(void **state)
{
    (void)state;
    sl_channel_info info = chan_info("t", SL_KIND_TOPIC);
    info.retention_max_count = 3;
    assert_int_equal(eng_create(E, &info), SL_OK);
    for (int i = 1; i <= 5; i++) {
        char d[4];
        snprintf(d, sizeof d, "%d", i);
        assert_int_equal(put("t", d, 1000 + i, NULL), SL_OK);
    }
    assert_int_equal(depth("t"), 3);
    assert_string_equal(read_datas("t", "r", NULL, 10, 1010), "3,4,5");
}

static void test_topic_retention_age(void **state)
{
    (void)state;
    sl_channel_info info = chan_info("t", SL_KIND_TOPIC);
    info.retention_max_age = 60;
    assert_int_equal(eng_create(E, &info), SL_OK);
    assert_int_equal(put("t", "a", 1000, NULL), SL_OK);
    assert_int_equal(put("t", "b", 1030, NULL), SL_OK);
    assert_int_equal(put("t", "c", 1060, NULL), SL_OK); /* 1000 is not < 1000: kept */
    assert_int_equal(depth("t"), 3);
    assert_int_equal(put("t", "d", 1070, NULL), SL_OK); /* drops a */
    assert_int_equal(depth("t"), 3);
    /* A read applies age retention at its own time first. */
    assert_string_equal(read_datas("t", NULL, "0000000000000000", 10, 1100), "c,d");
    assert_int_equal(depth("t"), 2);
    assert_string_equal(read_datas("t", "r", NULL, 10, 2000), "");
    assert_int_equal(depth("t"), 0);
}

static void test_topic_max_messages(void **state)
{
    (void)state;
    sl_channel_info info = chan_info("t", SL_KIND_TOPIC);
    info.max_messages = 2;
    assert_int_equal(eng_create(E, &info), SL_OK);
    assert_int_equal(put("t", "1", 1, NULL), SL_OK);
    assert_int_equal(put("t", "2", 1, NULL), SL_OK);
    assert_int_equal(put("t", "3", 1, NULL), SL_EFULL);
    assert_string_equal(read_datas("t", "r", NULL, 10, 1), "1,2");
    /* Count retention within the cap makes room instead of refusing. */
    info.id = (char *)"t2";
    info.retention_max_count = 2;
    assert_int_equal(eng_create(E, &info), SL_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(put("t2", i % 2 ? "odd" : "even", 1, NULL), SL_OK);
    assert_int_equal(depth("t2"), 2);
    /* Age retention frees room before the cap is checked. */
    info.id = (char *)"t3";
    info.retention_max_count = 0;
    info.retention_max_age = 10;
    assert_int_equal(eng_create(E, &info), SL_OK);
    assert_int_equal(put("t3", "1", 100, NULL), SL_OK);
    assert_int_equal(put("t3", "2", 100, NULL), SL_OK);
    assert_int_equal(put("t3", "3", 105, NULL), SL_EFULL);
    assert_int_equal(put("t3", "3", 111, NULL), SL_OK);
    assert_int_equal(depth("t3"), 1);
}

static void test_topic_after(void **state)
{
    (void)state;
    create("t", SL_KIND_TOPIC);
    char ids[5][32];
    for (int i = 0; i < 5; i++) {
        char d[4];
        snprintf(d, sizeof d, "%d", i);
        assert_int_equal(put("t", d, 1000, ids[i]), SL_OK);
    }
    assert_string_equal(read_datas("t", "r", ids[1], 2, 1000), "2,3");
    assert_string_equal(read_datas("t", "r", ids[1], 10, 1000), "2,3,4");
    assert_string_equal(read_datas("t", "r", ids[4], 10, 1000), "");
    /* Newer than anything ever written: nothing. */
    assert_string_equal(read_datas("t", "r", "ffffffffffffffff", 10, 1000), "");
    assert_string_equal(read_datas("t", "r", "0000000000000fff", 10, 1000), "");
    /* Older than anything held: from the oldest. */
    assert_string_equal(read_datas("t", "r", "0000000000000000", 3, 1000), "0,1,2");
    size_t n;
    assert_int_equal(eng_evict(E, "t", 0, 3, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(read_datas("t", "r", ids[0], 10, 1000), "2,3,4");
    /* The id of a message removed from the middle: the ones after it. */
    const char *rm = ids[3];
    assert_int_equal(eng_remove(E, "t", &rm, 1, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(read_datas("t", "r", ids[2], 10, 1000), "4");
    assert_string_equal(read_datas("t", "r", ids[3], 10, 1000), "4");
    /* Not ids at all. */
    const char *bad[] = {"",
                         "xyz",
                         "0000000000000001 ",
                         "000000000000001",
                         "00000000000000001",
                         "000000000000000A",
                         "-000000000000001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_message_list l;
        assert_int_equal(read_topic("t", "r", bad[i], 10, 1000, &l), SL_EINVAL);
    }
    /* None of this moved r's cursor. */
    assert_string_equal(read_datas("t", "r", NULL, 10, 1000), "2,4");
}

static void test_topic_cursors(void **state)
{
    (void)state;
    create("t", SL_KIND_TOPIC);
    for (int i = 0; i < 5; i++) {
        char d[4];
        snprintf(d, sizeof d, "%d", i);
        assert_int_equal(put("t", d, 1000, NULL), SL_OK);
    }
    assert_string_equal(read_datas("t", "r1", NULL, 2, 1000), "0,1");
    assert_string_equal(read_datas("t", "r1", NULL, 10, 1000), "2,3,4");
    assert_string_equal(read_datas("t", "r1", NULL, 10, 1000), "");
    assert_string_equal(read_datas("t", "r2", NULL, 3, 1000), "0,1,2");
    assert_int_equal(put("t", "5", 1000, NULL), SL_OK);
    assert_string_equal(read_datas("t", "r1", NULL, 10, 1000), "5");
    assert_string_equal(read_datas("t", "r2", NULL, 10, 1000), "3,4,5");
    /* Reading does not consume: depth is unchanged. */
    assert_int_equal(depth("t"), 6);
    /* A cleared topic keeps cursors; new messages are new to everyone. */
    size_t n;
    assert_int_equal(eng_clear(E, "t", &n), SL_OK);
    assert_int_equal(n, 6);
    assert_int_equal(put("t", "6", 1000, NULL), SL_OK);
    assert_string_equal(read_datas("t", "r1", NULL, 10, 1000), "6");
    assert_string_equal(read_datas("t", "r3", NULL, 10, 1000), "6");
    /* Cursors die with the channel. */
    assert_int_equal(eng_drop(E, "t"), SL_OK);
    create("t", SL_KIND_TOPIC);
    assert_int_equal(put("t", "a", 1000, NULL), SL_OK);
    assert_string_equal(read_datas("t", "r1", NULL, 10, 1000), "a");
}

/* ---- clear, evict, remove -------------------------------------------------------------------- */

static void test_clear_evict_remove(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    char ids[10][32];
    for (int i = 0; i < 10; i++) {
        char d[4];
        snprintf(d, sizeof d, "%d", i);
        assert_int_equal(put("q", d, 100 + i, ids[i]), SL_OK);
    }
    assert_int_equal(claim_n("q", "w", 2, 1000), 2); /* 0 and 1 are claimed */
    size_t n;
    /* remove counts found ids, claimed or not. */
    const char *rm[] = {ids[0], ids[5], "bogus", ids[0], "00000000000000aa"};
    assert_int_equal(eng_remove(E, "q", rm, 5, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ack1("q", "w", ids[0], 1000), 0);
    assert_int_equal(depth("q"), 8);
    /* evict by age: timestamps < 104 (1, 2, 3 are left of those). */
    assert_int_equal(eng_evict(E, "q", 104, SIZE_MAX, &n), SL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ack1("q", "w", ids[1], 1000), 0);
    /* then by count: keep the newest 3 of 4, 6, 7, 8, 9. */
    assert_int_equal(eng_evict(E, "q", 0, 3, &n), SL_OK);
    assert_int_equal(n, 2);
    sl_message_list l;
    assert_int_equal(claim("q", "w", 10, 1000, &l), 3);
    assert_string_equal(datas(&l), "7,8,9");
    sl_message_list_free(&l);
    assert_int_equal(eng_evict(E, "q", 0, SIZE_MAX, &n), SL_OK);
    assert_int_equal(n, 0);
    /* Both bounds in one call. */
    assert_int_equal(put("q", "10", 200, NULL), SL_OK);
    assert_int_equal(put("q", "11", 300, NULL), SL_OK);
    assert_int_equal(eng_evict(E, "q", 150, 2, &n), SL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(depth("q"), 2);
    assert_int_equal(eng_clear(E, "q", &n), SL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(eng_clear(E, "q", &n), SL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(depth("q"), 0);
    /* The queue works normally afterwards. */
    char id[32];
    assert_int_equal(put("q", "x", 1, id), SL_OK);
    assert_int_equal(claim_n("q", "w", 10, 1), 1);
    assert_int_equal(ack1("q", "w", id, 1), 1);
}

/* Removing from the middle many times leaves holes that the index must squeeze out. */
static void test_many_holes(void **state)
{
    (void)state;
    create("t", SL_KIND_TOPIC);
    enum { N = 2000 };
    static char ids[N][32];
    for (int i = 0; i < N; i++)
        assert_int_equal(put("t", "x", 1, ids[i]), SL_OK);
    size_t n, total = 0;
    for (int i = 1; i < N - 1; i++) { /* all but the ends */
        const char *id = ids[i];
        assert_int_equal(eng_remove(E, "t", &id, 1, &n), SL_OK);
        total += n;
    }
    assert_int_equal(total, N - 2);
    sl_message_list l;
    assert_int_equal(read_topic("t", "r", NULL, 10, 1, &l), SL_OK);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].id, ids[0]);
    assert_string_equal(l.items[1].id, ids[N - 1]);
    sl_message_list_free(&l);
    for (int i = 0; i < N; i++)
        assert_int_equal(put("t", "y", 1, NULL), SL_OK);
    assert_int_equal(depth("t"), N + 2);
    assert_string_equal(read_datas("t", "r", ids[N - 1], 2, 1), "y,y");
}

/* ---- scale ----------------------------------------------------------------------------------- */

static void run_scale(int N)
{
    enum { BATCH = 1000 };
    create("q", SL_KIND_QUEUE);
    char payload[201];
    memset(payload, 'p', 200);
    payload[0] = '"';
    payload[199] = '"';
    payload[200] = '\0';

    /* Large arrays are mmapped by glibc: count those (hblkhd) too. */
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++)
        assert_int_equal(put("q", payload, 1000, NULL), SL_OK);
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(depth("q"), N);
    if (!SANITIZED) {
        double per = (double)(after.uordblks + after.hblkhd - before.uordblks - before.hblkhd) / N;
        print_message("heap per queued 200-byte message: %.1f bytes (%.1f beyond the payload)\n",
                      per, per - 201);
    }

    /* Claim everything in batches, nack every 10th batch back, then drain. */
    size_t claimed = 0, acked = 0, nacked = 0;
    double now = 1000;
    const char *batch_ids[BATCH];
    for (int round = 0; claimed < (size_t)N + nacked; round++) {
        sl_message_list l;
        size_t got = claim("q", "w", BATCH, now, &l);
        assert_true(got > 0);
        for (size_t i = 0; i < got; i++)
            batch_ids[i] = l.items[i].id;
        size_t n;
        if (round % 10 == 9) {
            assert_int_equal(eng_nack(E, "q", "w", batch_ids, got, 0, now, &n), SL_OK);
            nacked += n;
        } else {
            assert_int_equal(eng_ack(E, "q", "w", batch_ids, got, now, &n), SL_OK);
            acked += n;
        }
        assert_int_equal(n, got);
        claimed += got;
        sl_message_list_free(&l);
    }
    assert_int_equal(acked, N);
    assert_int_equal(depth("q"), 0);
    assert_int_equal(claim_n("q", "w", BATCH, now), 0);
}

static void test_100k(void **state)
{
    (void)state;
    run_scale(100000);
}

#ifndef SLUICE_NO_REDIS
/* The Redis run: one round trip per message, so a tenth of it under the sanitizers. */
static void test_10k(void **state)
{
    (void)state;
    run_scale(10000);
}
#endif

#if !SANITIZED
/* ---- allocation failures --------------------------------------------------------------------- */

/* Runs op with the k-th allocation failing for k = 0, 1, ... until it succeeds. Each failure must
 * be SL_ENOMEM, with check() seeing the state from before and no block leaked. */
typedef int (*op_fn)(void);
typedef void (*check_fn)(void);

static void with_failures(op_fn op, check_fn check_unchanged)
{
    for (long k = 0;; k++) {
        long blocks = live_blocks;
        fail_at = k;
        int rc = op();
        int injected = fail_at < 0;
        fail_at = -1;
        if (!injected) {
            assert_int_equal(rc, SL_OK);
            return;
        }
        assert_int_equal(rc, SL_ENOMEM);
        assert_int_equal(live_blocks, blocks);
        check_unchanged();
    }
}

static char oom_id[32];

static void check_queue(void)
{
    /* 3 claimable, 1 claimed by w (oom_id), nothing else. */
    assert_int_equal(depth("q"), 4);
    assert_int_equal(ack1("q", "v", oom_id, 1000), 0);
}

static int op_append(void)
{
    sl_message m = {.timestamp = 1000, .data = strdup("z")};
    if (m.data == NULL)
        return SL_ENOMEM; /* the injected failure hit the caller's copy: also a valid run */
    char id[32];
    int rc = eng_append(E, "q", &m, 1000, id);
    sl_message_clear(&m);
    return rc;
}

static int op_claim(void)
{
    sl_message_list l, dead;
    int rc = eng_claim(E, "q", "v", 10, SIZE_MAX, 1000, &l, &dead);
    sl_message_list_free(&l);
    sl_message_list_free(&dead);
    return rc;
}

static int op_nack(void)
{
    size_t n;
    const char *id = oom_id;
    return eng_nack(E, "q", "w", &id, 1, 0, 1000, &n);
}

static int op_info(void)
{
    sl_channel_info info;
    int rc = eng_info(E, "q", &info);
    sl_channel_info_clear(&info);
    return rc;
}

static int op_list(void)
{
    sl_channel_info *all;
    size_t n;
    int rc = eng_list(E, &all, &n);
    if (rc == SL_OK)
        sl_channel_infos_free(all, n);
    return rc;
}

static int op_create(void)
{
    sl_channel_info info = chan_info("new", SL_KIND_QUEUE);
    return eng_create(E, &info);
}

static void check_no_new(void)
{
    sl_channel_info info;
    assert_int_equal(eng_info(E, "new", &info), SL_ENOENT);
    check_queue();
}

static int op_read(void)
{
    sl_message_list l;
    int rc = read_topic("t", "fresh", NULL, 10, 1000, &l);
    if (rc == SL_OK)
        assert_int_equal(l.len, 2);
    sl_message_list_free(&l);
    return rc;
}

static void check_topic(void)
{
    assert_int_equal(depth("t"), 2);
}

static char term_id[32];

static int op_terminate(void)
{
    const char *ids[] = {term_id};
    sl__eop op = {.kind = SL__EOP_TERMINATE,
                  .channel = "q",
                  .reader = "t",
                  .ids = ids,
                  .nids = 1,
                  .reason = "r",
                  .now = 1000};
    int rc = run_op(&op);
    sl__eop_clear(&op);
    return rc;
}

static void check_terminate(void)
{
    assert_int_equal(depth("q"), 44);
    assert_int_equal(ack1("q", "v", term_id, 1000), 0);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    long base = live_blocks;
    create("q", SL_KIND_QUEUE);
    create("t", SL_KIND_TOPIC);
    assert_int_equal(put("t", "a", 1000, NULL), SL_OK);
    assert_int_equal(put("t", "b", 1000, NULL), SL_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(put("q", "m", 1000, i == 0 ? oom_id : NULL), SL_OK);
    assert_int_equal(claim_n("q", "w", 1, 1000), 1);

    with_failures(op_info, check_queue);
    with_failures(op_list, check_queue);
    with_failures(op_create, check_no_new);
    with_failures(op_read, check_topic);
    /* The fresh reader's cursor moved only with the successful read. */
    assert_string_equal(read_datas("t", "fresh", NULL, 10, 1000), "");
    with_failures(op_claim, check_queue);
    /* The claim took all 3: only w's nacked message is left to claim. */
    with_failures(op_nack, check_queue);
    assert_int_equal(claim_n("q", "x", 10, 1000), 1);
    assert_int_equal(depth("q"), 4);
    /* A full index forces a reallocation on append at some point: fill past it. */
    for (int i = 0; i < 40; i++) {
        long blocks = live_blocks;
        size_t d = depth("q");
        for (long k = 0;; k++) {
            fail_at = k;
            int rc = op_append();
            int injected = fail_at < 0;
            fail_at = -1;
            if (!injected) {
                assert_int_equal(rc, SL_OK);
                break;
            }
            assert_int_equal(rc, SL_ENOMEM);
            assert_int_equal(depth("q"), d);
            /* Capacity reserved before the failure may stay (the ready heap's array). */
            assert_in_range(live_blocks - blocks, 0, 1);
        }
    }
    assert_int_equal(depth("q"), 44);
    /* Terminate copies its dead letters before it changes anything. */
    sl_message_list l;
    assert_int_equal(claim("q", "t", 1, 1000, &l), 1);
    strcpy(term_id, l.items[0].id);
    sl_message_list_free(&l);
    with_failures(op_terminate, check_terminate);
    assert_int_equal(depth("q"), 43);
    /* Whatever stayed was reachable: dropping the channels returns every block. */
    assert_int_equal(eng_drop(E, "q"), SL_OK);
    assert_int_equal(eng_drop(E, "t"), SL_OK);
    assert_int_equal(eng_drop(E, "new"), SL_OK);
    assert_int_equal(live_blocks, base);
}
#endif

/* ---- queue features: leases, terminate, backoff, delays, TTL, idempotency, cursors ----------- */

static int eng_extend(const char *ch, const char *reader, const char *id, double seconds,
                      double now, size_t *count)
{
    sl__eop op = {.kind = SL__EOP_EXTEND,
                  .channel = ch,
                  .reader = reader,
                  .ids = &id,
                  .nids = 1,
                  .delay = seconds,
                  .now = now};
    int rc = run_op(&op);
    *count = op.count;
    return rc;
}

/* Terminates one message; *dead receives what went to the dead letter. */
static int eng_terminate(const char *ch, const char *reader, const char *const *ids, size_t n,
                         const char *reason, double now, size_t *count, sl_message_list *dead)
{
    sl__eop op = {.kind = SL__EOP_TERMINATE,
                  .channel = ch,
                  .reader = reader,
                  .ids = ids,
                  .nids = n,
                  .reason = reason,
                  .dead_letter = "q.dead",
                  .now = now};
    int rc = run_op(&op);
    *count = op.count;
    *dead = op.dead;
    sl_channel_info_clear(&op.info); /* a dead-letter queue it created */
    return rc;
}

/* Appends with the delivery options; dup (may be NULL) says whether the key repeated. */
static int put_opts(const char *ch, const char *data, double now, double not_before,
                    double expires_at, const char *key, char *id, int *dup)
{
    sl_message m = {.timestamp = now,
                    .sender_id = (char *)"s",
                    .data = (char *)data,
                    .not_before = not_before,
                    .expires_at = expires_at};
    char ids[1][SL__MSGID_LEN + 1];
    unsigned char dups[1] = {9};
    const char *keys[1] = {key};
    sl__eop op = {.kind = SL__EOP_APPEND,
                  .channel = ch,
                  .msgs = &m,
                  .nmsgs = 1,
                  .now = now,
                  .ids_out = ids,
                  .keys = key ? keys : NULL,
                  .dups = dups};
    int rc = run_op(&op);
    if (rc == SL_OK && id)
        strcpy(id, ids[0]);
    if (rc == SL_OK && dup)
        *dup = dups[0];
    return rc;
}

static sl_message_list claim_dl(const char *ch, const char *reader, size_t limit, double now,
                                sl_message_list *out)
{
    sl__eop op = {.kind = SL__EOP_CLAIM,
                  .channel = ch,
                  .reader = reader,
                  .limit = limit,
                  .max_bytes = SIZE_MAX,
                  .dead_letter = "q.dead",
                  .now = now};
    assert_int_equal(run_op(&op), SL_OK);
    *out = op.list;
    sl_channel_info_clear(&op.info); /* a dead-letter queue it created */
    return op.dead;
}

static void test_extend(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE); /* claim_timeout 30 */
    char id[32];
    size_t n;
    assert_int_equal(put("q", "1", 1000, id), SL_OK);
    assert_int_equal(claim_n("q", "a", 1, 1000), 1); /* lease until 1030 */
    assert_int_equal(eng_extend("q", "b", id, 0, 1020, &n), SL_OK);
    assert_int_equal(n, 0); /* not b's claim */
    assert_int_equal(eng_extend("q", "a", id, 0, 1020, &n), SL_OK);
    assert_int_equal(n, 1); /* now until 1050: claim_timeout from now */
    assert_int_equal(claim_n("q", "b", 1, 1040), 0);
    assert_int_equal(eng_extend("q", "a", id, 100, 1045, &n), SL_OK);
    assert_int_equal(n, 1); /* until 1145 */
    assert_int_equal(claim_n("q", "b", 1, 1144), 0);
    assert_int_equal(ack1("q", "a", id, 1144), 1);
    /* A lease that already ran out cannot be extended. */
    assert_int_equal(put("q", "2", 1200, id), SL_OK);
    assert_int_equal(claim_n("q", "a", 1, 1200), 1);
    assert_int_equal(eng_extend("q", "a", id, 0, 1230, &n), SL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(claim_n("q", "b", 1, 1230), 1);
}

static void test_terminate(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    char ids[2][32];
    assert_int_equal(put("q", "bad", 1000, ids[0]), SL_OK);
    assert_int_equal(put("q", "good", 1000, ids[1]), SL_OK);
    assert_int_equal(claim_n("q", "a", 2, 1000), 2);
    const char *v[] = {ids[0], ids[0]};
    size_t n;
    sl_message_list dead;
    /* Only the holder; the same id twice counts once. */
    assert_int_equal(eng_terminate("q", "b", v, 1, "nope", 1001, &n, &dead), SL_OK);
    assert_int_equal(n, 0);
    sl_message_list_free(&dead);
    assert_int_equal(eng_terminate("q", "a", v, 2, "cannot parse", 1001, &n, &dead), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(dead.len, 1);
    assert_string_equal(dead.items[0].data, "bad");
    assert_string_equal(dead.items[0].dead_reason, "cannot parse");
    sl_message_list_free(&dead);
    assert_int_equal(depth("q"), 1);
    assert_int_equal(depth("q.dead"), 1);
    /* Never redelivered, even after its lease would have run out. */
    assert_int_equal(ack1("q", "a", ids[0], 1002), 0);
    assert_int_equal(nack1("q", "a", ids[1], 0, 1002), 1);
    sl_message_list l;
    assert_int_equal(claim("q", "c", 10, 5000, &l), 1);
    assert_string_equal(datas(&l), "good");
    sl_message_list_free(&l);
    /* The dead letter carries the reason to whoever reads the dead-letter queue. */
    assert_int_equal(claim("q.dead", "ops", 10, 5000, &l), 1);
    assert_string_equal(l.items[0].data, "bad");
    assert_string_equal(l.items[0].dead_reason, "cannot parse");
    sl_message_list_free(&l);
    /* Without a reason: "terminated". */
    assert_int_equal(eng_terminate("q", "c", v, 0, NULL, 5001, &n, &dead), SL_OK);
    assert_int_equal(n, 0);
    sl_message_list_free(&dead);
}

static void test_backoff(void **state)
{
    (void)state;
    sl_channel_info info = chan_info("q", SL_KIND_QUEUE); /* claim_timeout 30 */
    info.backoff[0] = 10;
    info.backoff[1] = 60;
    info.nbackoff = 2;
    assert_int_equal(eng_create(E, &info), SL_OK);
    char id[32];
    assert_int_equal(put("q", "1", 1000, id), SL_OK);
    assert_int_equal(claim_n("q", "a", 1, 1000), 1);
    /* A nack without a delay of its own waits backoff[0] after attempt 1. */
    assert_int_equal(nack1("q", "a", id, 0, 1001), 1);
    assert_int_equal(claim_n("q", "a", 1, 1010.9), 0);
    sl_message_list l;
    assert_int_equal(claim("q", "a", 1, 1011, &l), 1);
    assert_int_equal(l.items[0].attempt, 2);
    sl_message_list_free(&l);
    /* An expired lease (1041) waits backoff[1]: claimable from 1101. */
    assert_int_equal(claim_n("q", "b", 1, 1041), 0);
    assert_int_equal(claim_n("q", "b", 1, 1100.5), 0);
    assert_int_equal(claim("q", "b", 1, 1101, &l), 1);
    assert_int_equal(l.items[0].attempt, 3);
    sl_message_list_free(&l);
    /* The last step repeats; an explicit delay wins over the backoff. */
    assert_int_equal(nack1("q", "b", id, 0, 1102), 1);
    assert_int_equal(claim_n("q", "b", 1, 1161), 0);
    assert_int_equal(claim_n("q", "b", 1, 1162), 1);
    assert_int_equal(nack1("q", "b", id, 2, 1163), 1);
    assert_int_equal(claim_n("q", "b", 1, 1165), 1);
}

static void test_delayed(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    char late[32];
    assert_int_equal(put_opts("q", "late", 1000, 1100, 0, NULL, late, NULL), SL_OK);
    assert_int_equal(put("q", "now", 1000, NULL), SL_OK);
    assert_int_equal(depth("q"), 2);
    sl_message_list l;
    assert_int_equal(claim("q", "a", 10, 1000, &l), 1);
    assert_string_equal(datas(&l), "now");
    assert_int_equal(ack1("q", "a", l.items[0].id, 1000), 1);
    sl_message_list_free(&l);
    assert_int_equal(claim_n("q", "a", 10, 1099.9), 0);
    assert_int_equal(claim("q", "a", 10, 1100, &l), 1);
    assert_string_equal(l.items[0].id, late);
    assert_int_equal(l.items[0].attempt, 1);
    sl_message_list_free(&l);
}

static void test_ttl(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    char id[32];
    assert_int_equal(put_opts("q", "short", 1000, 0, 1010, NULL, id, NULL), SL_OK);
    assert_int_equal(put("q", "long", 1000, NULL), SL_OK);
    sl_message_list l;
    /* Past its TTL: never delivered, dead-lettered with the reason. */
    sl_message_list dead = claim_dl("q", "a", 10, 1010, &l);
    assert_string_equal(datas(&l), "long");
    assert_int_equal(ack1("q", "a", l.items[0].id, 1010), 1);
    assert_int_equal(dead.len, 1);
    assert_string_equal(dead.items[0].id, id);
    assert_string_equal(dead.items[0].dead_reason, "expired");
    sl_message_list_free(&l);
    sl_message_list_free(&dead);
    assert_int_equal(depth("q"), 0);
    assert_int_equal(claim("q.dead", "ops", 10, 5000, &l), 1); /* and does not expire there */
    assert_string_equal(l.items[0].dead_reason, "expired");
    assert_true(l.items[0].expires_at == 0);
    sl_message_list_free(&l);
    /* Before its TTL it is delivered, carrying its expiry. */
    assert_int_equal(put_opts("q", "fresh", 2000, 0, 2100, NULL, NULL, NULL), SL_OK);
    assert_int_equal(claim("q", "a", 10, 2000, &l), 1);
    assert_true(l.items[0].expires_at == 2100);
    sl_message_list_free(&l);

    /* Topics: expired messages are skipped by reads and passed by cursors. */
    create("t", SL_KIND_TOPIC);
    assert_int_equal(put_opts("t", "1", 1000, 0, 1005, NULL, NULL, NULL), SL_OK);
    assert_int_equal(put_opts("t", "2", 1000, 0, 0, NULL, NULL, NULL), SL_OK);
    assert_int_equal(put_opts("t", "3", 1000, 0, 1005, NULL, NULL, NULL), SL_OK);
    assert_string_equal(read_datas("t", "r", NULL, 10, 1004), "1,2,3");
    assert_string_equal(read_datas("t", "s", NULL, 10, 1005), "2");
    assert_string_equal(read_datas("t", "s", NULL, 10, 1005), "");
}

static void test_idempotent(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE); /* dedup_window 0: 120 s */
    char a[32], b[32], c[32];
    int dup = 9;
    assert_int_equal(put_opts("q", "1", 1000, 0, 0, "order-7", a, &dup), SL_OK);
    assert_int_equal(dup, 0);
    assert_int_equal(put_opts("q", "1 again", 1119, 0, 0, "order-7", b, &dup), SL_OK);
    assert_int_equal(dup, 1);
    assert_string_equal(a, b);
    assert_int_equal(depth("q"), 1);
    /* Another key, or the same key in another channel, is another message. */
    assert_int_equal(put_opts("q", "2", 1001, 0, 0, "order-8", c, &dup), SL_OK);
    assert_int_equal(dup, 0);
    assert_string_not_equal(a, c);
    create("r", SL_KIND_QUEUE);
    assert_int_equal(put_opts("r", "1", 1001, 0, 0, "order-7", NULL, &dup), SL_OK);
    assert_int_equal(dup, 0);
    /* Past the window the key is forgotten. */
    assert_int_equal(put_opts("q", "1 later", 1120, 0, 0, "order-7", b, &dup), SL_OK);
    assert_int_equal(dup, 0);
    assert_string_not_equal(a, b);
    assert_int_equal(depth("q"), 3);

    /* Within one batch: the repeat gets the first one's id. */
    sl_message m[3] = {{.timestamp = 2000, .data = (char *)"x"},
                       {.timestamp = 2000, .data = (char *)"y"},
                       {.timestamp = 2000, .data = (char *)"z"}};
    const char *keys[3] = {"k", NULL, "k"};
    char ids[3][SL__MSGID_LEN + 1];
    unsigned char dups[3];
    sl__eop op = {.kind = SL__EOP_APPEND,
                  .channel = "q",
                  .msgs = m,
                  .nmsgs = 3,
                  .now = 2000,
                  .ids_out = ids,
                  .keys = keys,
                  .dups = dups};
    assert_int_equal(run_op(&op), SL_OK);
    assert_string_equal(ids[0], ids[2]);
    assert_int_equal(dups[0] + 2 * dups[1] + 4 * dups[2], 4);
    assert_int_equal(depth("q"), 5);
}

static void test_cursor_idle(void **state)
{
    (void)state;
    sl_channel_info info = chan_info("t", SL_KIND_TOPIC);
    info.cursor_idle_timeout = 100;
    assert_int_equal(eng_create(E, &info), SL_OK);
    assert_int_equal(put("t", "1", 1000, NULL), SL_OK);
    assert_int_equal(put("t", "2", 1000, NULL), SL_OK);
    assert_string_equal(read_datas("t", "busy", NULL, 10, 1000), "1,2");
    assert_string_equal(read_datas("t", "idle", NULL, 10, 1000), "1,2");
    /* busy keeps reading (even finding nothing); idle does not. */
    assert_string_equal(read_datas("t", "busy", NULL, 10, 1060), "");
    assert_string_equal(read_datas("t", "busy", NULL, 10, 1120), "");
    /* idle's cursor was dropped: it starts from the oldest again. busy's stayed. */
    assert_string_equal(read_datas("t", "idle", NULL, 10, 1130), "1,2");
    assert_string_equal(read_datas("t", "busy", NULL, 10, 1131), "");
}

/* Retention by age stops at the first young message: behind it, even an old timestamp (a clock
 * step back) stays until the young one goes. The cost is what it drops. */
static void test_retention_stops_early(void **state)
{
    (void)state;
    sl_channel_info info = chan_info("t", SL_KIND_TOPIC);
    info.retention_max_age = 100;
    assert_int_equal(eng_create(E, &info), SL_OK);
    assert_int_equal(put("t", "old", 1000, NULL), SL_OK);
    assert_int_equal(put("t", "young", 1090, NULL), SL_OK);
    assert_int_equal(put("t", "stepped-back", 1001, NULL), SL_OK);
    assert_string_equal(read_datas("t", "r", NULL, 10, 1150), "young,stepped-back");
    assert_int_equal(depth("t"), 2);
    assert_string_equal(read_datas("t", "s", NULL, 10, 1200), "");
    assert_int_equal(depth("t"), 0);
}

/* ---- the journal: what these features keep comes back after a restart ---------------------- */

#include "store/kv.h"

/* A kv in memory: one sorted array of (table, key, value), commits at once. */
typedef struct tkv_ent {
    char table[16];
    unsigned char key[512];
    size_t klen;
    unsigned char *val;
    size_t vlen;
} tkv_ent;

typedef struct tkv {
    sl__kv base;
    tkv_ent *e;
    size_t n;
} tkv;

static int tkv_cmp(const tkv_ent *x, const char *table, const void *key, size_t klen)
{
    int c = strcmp(x->table, table);
    if (c)
        return c;
    size_t m = x->klen < klen ? x->klen : klen;
    c = memcmp(x->key, key, m);
    return c ? c : (x->klen > klen) - (x->klen < klen);
}

static size_t tkv_find(tkv *t, const char *table, const void *key, size_t klen, int *found)
{
    size_t i = 0;
    while (i < t->n && tkv_cmp(&t->e[i], table, key, klen) < 0)
        i++;
    *found = i < t->n && tkv_cmp(&t->e[i], table, key, klen) == 0;
    return i;
}

static int tkv_put(sl__kv *kv, const char *table, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    tkv *t = (tkv *)kv;
    if (klen == 0 || klen > 511)
        return SL_EINVAL;
    int found;
    size_t i = tkv_find(t, table, key, klen, &found);
    if (!found) {
        t->e = realloc(t->e, (t->n + 1) * sizeof *t->e);
        memmove(&t->e[i + 1], &t->e[i], (t->n - i) * sizeof *t->e);
        t->n++;
        memset(&t->e[i], 0, sizeof t->e[i]);
        snprintf(t->e[i].table, sizeof t->e[i].table, "%s", table);
        memcpy(t->e[i].key, key, klen);
        t->e[i].klen = klen;
    }
    free(t->e[i].val);
    t->e[i].val = malloc(vlen ? vlen : 1);
    memcpy(t->e[i].val, val, vlen);
    t->e[i].vlen = vlen;
    return SL_OK;
}

static void tkv_remove(tkv *t, size_t i)
{
    free(t->e[i].val);
    memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof *t->e);
    t->n--;
}

static int tkv_del(sl__kv *kv, const char *table, const void *key, size_t klen)
{
    tkv *t = (tkv *)kv;
    int found;
    size_t i = tkv_find(t, table, key, klen, &found);
    if (found)
        tkv_remove(t, i);
    return SL_OK;
}

static int tkv_match(const tkv_ent *x, const char *table, const void *prefix, size_t plen)
{
    return strcmp(x->table, table) == 0 && x->klen >= plen &&
           (plen == 0 || memcmp(x->key, prefix, plen) == 0);
}

static int tkv_del_prefix(sl__kv *kv, const char *table, const void *prefix, size_t plen)
{
    tkv *t = (tkv *)kv;
    for (size_t i = 0; i < t->n;)
        if (tkv_match(&t->e[i], table, prefix, plen))
            tkv_remove(t, i);
        else
            i++;
    return SL_OK;
}

static int tkv_scan(sl__kv *kv, const char *table, const void *prefix, size_t plen,
                    sl__kv_scan_fn fn, void *ud)
{
    tkv *t = (tkv *)kv;
    for (size_t i = 0; i < t->n; i++)
        if (tkv_match(&t->e[i], table, prefix, plen)) {
            int rc = fn(ud, t->e[i].key, t->e[i].klen, t->e[i].val, t->e[i].vlen);
            if (rc != SL_OK)
                return rc;
        }
    return SL_OK;
}

static void tkv_barrier(sl__kv *kv, sl__kv_done_fn fn, void *ud)
{
    (void)kv;
    fn(ud, SL_OK);
}

static void tkv_touch(sl__kv *kv)
{
    (void)kv;
}

static void tkv_free(sl__kv *kv)
{
    tkv *t = (tkv *)kv;
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].val);
    free(t->e);
    t->e = NULL;
    t->n = 0;
}

static const sl__kv_ops tkv_ops = {"test",         tkv_free, tkv_put,     tkv_del,
                                   tkv_del_prefix, tkv_scan, tkv_barrier, tkv_touch};

static size_t tkv_count(tkv *t, const char *table)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += strcmp(t->e[i].table, table) == 0;
    return n;
}

/* Replaces E by an engine loaded from kv at time now. */
static void reopen(tkv *kv, double now)
{
    E->ops->free(E);
    E = NULL;
    sl_status st = {0};
    assert_int_equal(sl__mem_engine_open(&E, &kv->base, NULL, now, &st), SL_OK);
}

static void test_journal(void **state)
{
    (void)state;
    tkv kv = {.base = {&tkv_ops}};
    E->ops->free(E);
    sl_status st = {0};
    assert_int_equal(sl__mem_engine_open(&E, &kv.base, NULL, 1000, &st), SL_OK);
    sl_channel_info info = chan_info("q", SL_KIND_QUEUE); /* claim_timeout 30 */
    info.backoff[0] = 50;
    info.nbackoff = 1;
    info.dedup_window = 500;
    assert_int_equal(eng_create(E, &info), SL_OK);
    sl_channel_info tinfo = chan_info("t", SL_KIND_TOPIC);
    tinfo.cursor_idle_timeout = 1000;
    assert_int_equal(eng_create(E, &tinfo), SL_OK);

    char keyed[32], leased[32], bad[32], id[32];
    int dup;
    assert_int_equal(put_opts("q", "keyed", 1000, 0, 0, "k1", keyed, &dup), SL_OK);
    assert_int_equal(put_opts("q", "delayed", 1000, 1300, 0, NULL, NULL, NULL), SL_OK);
    assert_int_equal(put_opts("q", "ttl", 1000, 1200, 1250, NULL, NULL, NULL), SL_OK);
    assert_int_equal(put("q", "leased", 1000, leased), SL_OK);
    assert_int_equal(put("q", "bad", 1000, bad), SL_OK);
    sl_message_list l;
    assert_int_equal(claim("q", "w", 10, 1000, &l), 3); /* keyed, leased, bad; until 1030 */
    sl_message_list_free(&l);
    assert_int_equal(ack1("q", "w", keyed, 1001), 1);
    size_t n;
    sl_message_list dead;
    const char *bads[] = {bad};
    assert_int_equal(eng_terminate("q", "w", bads, 1, "poison", 1002, &n, &dead), SL_OK);
    sl_message_list_free(&dead);
    assert_int_equal(put("t", "1", 1000, NULL), SL_OK);
    assert_int_equal(put("t", "2", 1000, NULL), SL_OK);
    assert_string_equal(read_datas("t", "r", NULL, 1, 1003), "1");
    assert_int_equal(tkv_count(&kv, SL__KV_DEDUP), 1);

    /* Restart at 1010: the lease (to 1030) survives. */
    reopen(&kv, 1010);
    sl_channel_info got;
    assert_int_equal(eng_info(E, "q", &got), SL_OK);
    assert_int_equal(got.nbackoff, 1);
    assert_true(got.backoff[0] == 50 && got.dedup_window == 500);
    sl_channel_info_clear(&got);
    assert_int_equal(eng_info(E, "t", &got), SL_OK);
    assert_true(got.cursor_idle_timeout == 1000);
    sl_channel_info_clear(&got);
    assert_int_equal(put_opts("q", "keyed again", 1010, 0, 0, "k1", id, &dup), SL_OK);
    assert_int_equal(dup, 1);
    assert_string_equal(id, keyed);
    assert_string_equal(read_datas("t", "r", NULL, 10, 1010), "2");
    assert_int_equal(claim_n("q", "x", 10, 1010), 0); /* leased, delayed or ttl-delayed */
    assert_int_equal(claim("q.dead", "ops", 10, 1010, &l), 1);
    assert_string_equal(l.items[0].dead_reason, "poison");
    sl_message_list_free(&l);

    /* Restart at 1040: the lease ran out while down, so the backoff step (50) applies. */
    reopen(&kv, 1040);
    assert_int_equal(claim_n("q", "x", 10, 1079), 0);
    assert_int_equal(claim("q", "x", 10, 1080, &l), 1);
    assert_string_equal(l.items[0].id, leased);
    assert_int_equal(l.items[0].attempt, 2);
    sl_message_list_free(&l);
    assert_int_equal(ack1("q", "x", leased, 1081), 1);
    /* The ttl message became claimable at 1200 but expired at 1250; the delayed one at 1300. */
    reopen(&kv, 1260);
    sl_message_list dl = claim_dl("q", "x", 10, 1260, &l);
    assert_int_equal(l.len, 0);
    assert_int_equal(dl.len, 1);
    assert_string_equal(dl.items[0].data, "ttl");
    assert_string_equal(dl.items[0].dead_reason, "expired");
    sl_message_list_free(&dl);
    assert_int_equal(claim("q", "x", 10, 1300, &l), 1);
    assert_string_equal(datas(&l), "delayed");
    sl_message_list_free(&l);

    /* Keys and cursors past their time are gone after a restart, and from the kv once swept. */
    reopen(&kv, 1600);
    assert_int_equal(put_opts("q", "keyed", 1600, 0, 0, "k1", id, &dup), SL_OK);
    assert_int_equal(dup, 0);
    assert_int_equal(tkv_count(&kv, SL__KV_DEDUP), 1); /* the new one */
    assert_string_equal(read_datas("t", "other", NULL, 10, 2100), "1,2");
    assert_int_equal(tkv_count(&kv, SL__KV_CURSORS), 1); /* r's was idle: dropped */
    assert_string_equal(read_datas("t", "r", NULL, 10, 2101), "1,2");

    /* Dropping a channel drops its keys. */
    assert_int_equal(eng_drop(E, "q"), SL_OK);
    assert_int_equal(tkv_count(&kv, SL__KV_DEDUP), 0);
    E->ops->free(E);
    assert_int_equal(sl__mem_engine_new(&E), SL_OK);
    tkv_free(&kv.base);
}

/* ---- the map and the copy helpers ------------------------------------------------------------ */

static int freed;
static void count_free(void *p)
{
    (void)p;
    freed++;
}

static int sum_values(void *ud, const char *key, void *value)
{
    (void)key;
    *(long *)ud += (long)(intptr_t)value;
    return 0;
}

static int stop_at_two(void *ud, const char *key, void *value)
{
    (void)key;
    (void)value;
    return ++*(int *)ud == 2 ? 7 : 0;
}

static void test_map(void **state)
{
    (void)state;
    sl__map *m;
    assert_int_equal(sl__map_new(&m), SL_OK);
    assert_null(sl__map_get(m, "a"));
    assert_int_equal(sl__map_del(m, "a", NULL), 0);
    freed = 0;
    char key[16];
    enum { N = 5000 };
    for (long i = 1; i <= N; i++) {
        snprintf(key, sizeof key, "k%ld", i);
        assert_int_equal(sl__map_put(m, key, (void *)(intptr_t)i, count_free), SL_OK);
    }
    assert_int_equal(sl__map_size(m), N);
    assert_int_equal(freed, 0);
    /* Replacing hands the previous value to free_prev. */
    assert_int_equal(sl__map_put(m, "k7", (void *)(intptr_t)70, count_free), SL_OK);
    assert_int_equal(freed, 1);
    assert_int_equal((intptr_t)sl__map_get(m, "k7"), 70);
    assert_int_equal(sl__map_size(m), N);
    /* Delete the odd keys; the even ones must all stay reachable. */
    for (long i = 1; i <= N; i += 2) {
        snprintf(key, sizeof key, "k%ld", i);
        assert_int_equal(sl__map_del(m, key, count_free), 1);
        assert_int_equal(sl__map_del(m, key, count_free), 0);
    }
    assert_int_equal(freed, 1 + N / 2);
    assert_int_equal(sl__map_size(m), N / 2);
    long sum = 0, want = 0;
    for (long i = 2; i <= N; i += 2) {
        snprintf(key, sizeof key, "k%ld", i);
        assert_int_equal((intptr_t)sl__map_get(m, key), i);
        want += i;
    }
    assert_int_equal(sl__map_each(m, sum_values, &sum), 0);
    assert_int_equal(sum, want);
    int visits = 0;
    assert_int_equal(sl__map_each(m, stop_at_two, &visits), 7);
    assert_int_equal(visits, 2);
    /* The key is copied: the caller's buffer may change. */
    strcpy(key, "mutable");
    assert_int_equal(sl__map_put(m, key, (void *)(intptr_t)1, NULL), SL_OK);
    strcpy(key, "changed");
    assert_non_null(sl__map_get(m, "mutable"));
    assert_null(sl__map_get(m, "changed"));
    freed = 0;
    sl__map_free(m, count_free);
    assert_int_equal(freed, N / 2 + 1);
    sl__map_free(NULL, NULL);
    assert_int_equal(sl__map_size(NULL), 0);
}

static void test_copy_helpers(void **state)
{
    (void)state;
    char id[] = "0000000000000001", data[] = "[1]", md[] = "{}";
    sl_message src = {.id = id,
                      .timestamp = 3,
                      .data = data,
                      .metadata = md,
                      .attempt = 2,
                      .claim_expires_at = 9};
    sl_message dst;
    assert_int_equal(sl__message_copy(&dst, &src), SL_OK);
    assert_ptr_not_equal(dst.id, src.id);
    assert_string_equal(dst.id, id);
    assert_string_equal(dst.data, data);
    assert_string_equal(dst.metadata, md);
    assert_null(dst.sender_id);
    assert_int_equal(dst.attempt, 2);
    assert_true(dst.claim_expires_at == 9);
    sl_message_clear(&dst);
    assert_null(dst.id);
    sl_message_clear(NULL);

    sl_channel_info info = chan_info("c", SL_KIND_TOPIC), copy;
    info.depth = 5;
    info.retention_max_age = 1.5;
    assert_int_equal(sl__channel_info_copy(&copy, &info), SL_OK);
    assert_string_equal(copy.id, "c");
    assert_string_equal(copy.dead_letter, "x.dead");
    assert_int_equal(copy.kind, SL_KIND_TOPIC);
    assert_int_equal(copy.depth, 5);
    assert_true(copy.retention_max_age == 1.5);
    sl_channel_info_clear(&copy);
    sl_channel_info_clear(NULL);
    sl_channel_infos_free(NULL, 3);

    sl_message_list l = {calloc(2, sizeof(sl_message)), 2, 0};
    assert_int_equal(sl__message_copy(&l.items[1], &src), SL_OK);
    sl_message_list_free(&l);
    assert_null(l.items);
    assert_int_equal(l.len, 0);
    sl_message_list_free(NULL);
}

/* ---- byte bounds ----------------------------------------------------------------------------- */

/* A message of `size` bytes as sl_message_size counts them: sender "s" plus size - 1 of data. */
static void put_sized(const char *ch, size_t size, double ts)
{
    char *data = malloc(size);
    assert_non_null(data);
    memset(data, '7', size - 1);
    data[size - 1] = '\0';
    assert_int_equal(put(ch, data, ts, NULL), SL_OK);
    free(data);
}

static void test_claim_max_bytes(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE);
    for (int i = 0; i < 5; i++)
        put_sized("q", 100, 1000);
    sl_message_list l, dead;
    /* 250 bytes hold two messages of 100: the third is neither returned nor claimed. */
    assert_int_equal(eng_claim(E, "q", "r", 10, 250, 1000, &l, &dead), SL_OK);
    assert_int_equal(l.len, 2);
    assert_int_equal(sl_message_size(&l.items[0]), 100);
    assert_true(l.more);
    assert_string_equal(l.items[0].id, "0000000000000001");
    sl_message_list_free(&l);
    sl_message_list_free(&dead);
    /* Another reader gets the third next: nothing was leased beyond the reply. */
    assert_int_equal(eng_claim(E, "q", "other", 1, 250, 1000, &l, &dead), SL_OK);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].id, "0000000000000003");
    assert_true(l.more); /* stopped at the limit with two left */
    sl_message_list_free(&l);
    sl_message_list_free(&dead);
    /* A bound below one message still returns the first: a reader never stalls. */
    assert_int_equal(eng_claim(E, "q", "r", 10, 10, 1000, &l, &dead), SL_OK);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].id, "0000000000000004");
    assert_true(l.more);
    sl_message_list_free(&l);
    sl_message_list_free(&dead);
    /* Exactly the bound fits; then nothing is left. */
    assert_int_equal(eng_claim(E, "q", "r", 10, 100, 1000, &l, &dead), SL_OK);
    assert_int_equal(l.len, 1);
    assert_false(l.more);
    sl_message_list_free(&l);
    sl_message_list_free(&dead);
    assert_int_equal(claim_n("q", "r", 10, 1000), 0);
}

static void test_read_max_bytes(void **state)
{
    (void)state;
    create("t", SL_KIND_TOPIC);
    for (int i = 0; i < 5; i++)
        put_sized("t", 100, 1000);
    sl_message_list l;
    /* The cursor stops at the last message returned, so the next read continues there. */
    assert_int_equal(eng_read(E, "t", "r", NULL, 10, 299, 1000, &l), SL_OK);
    assert_int_equal(l.len, 2);
    assert_true(l.more);
    sl_message_list_free(&l);
    assert_int_equal(eng_read(E, "t", "r", NULL, 10, 1, 1000, &l), SL_OK);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].id, "0000000000000003");
    assert_true(l.more);
    sl_message_list_free(&l);
    assert_int_equal(eng_read(E, "t", "r", NULL, 10, 200, 1000, &l), SL_OK);
    assert_int_equal(l.len, 2);
    assert_false(l.more);
    sl_message_list_free(&l);
    /* With `after`, and the limit reached exactly at the end: nothing more. */
    assert_int_equal(eng_read(E, "t", "x", "0000000000000003", 2, SIZE_MAX, 1000, &l), SL_OK);
    assert_int_equal(l.len, 2);
    assert_false(l.more);
    sl_message_list_free(&l);
    assert_int_equal(eng_read(E, "t", "x", "0000000000000002", 2, SIZE_MAX, 1000, &l), SL_OK);
    assert_true(l.more);
    sl_message_list_free(&l);
}

#ifndef SLUICE_NO_REDIS
REDIS_RULES(REDIS_TEST)
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_create_info_list_drop),
        T(test_missing_channel),
        T(test_wrong_kind),
        T(test_append_ids_and_fields),
        T(test_fifo_and_limits),
        T(test_only_claimer_acks),
        T(test_lease_expiry),
        T(test_nack),
        T(test_max_attempts_dead),
        T(test_queue_full),
        T(test_topic_retention_count),
        T(test_topic_retention_age),
        T(test_topic_max_messages),
        T(test_topic_after),
        T(test_topic_cursors),
        T(test_clear_evict_remove),
        T(test_many_holes),
        T(test_100k),
#if !SANITIZED
        T(test_out_of_memory),
#endif
        T(test_claim_max_bytes),
        T(test_read_max_bytes),
        T(test_extend),
        T(test_terminate),
        T(test_backoff),
        T(test_delayed),
        T(test_ttl),
        T(test_idempotent),
        T(test_cursor_idle),
        T(test_retention_stops_early),
        T(test_journal),
#undef T
    /* The same rules on the durable engine, restarted before every request. */
#define D(f) cmocka_unit_test_setup_teardown(f, setup_durable, teardown_durable)
        D(test_create_info_list_drop),
        D(test_missing_channel),
        D(test_wrong_kind),
        D(test_append_ids_and_fields),
        D(test_fifo_and_limits),
        D(test_only_claimer_acks),
        D(test_lease_expiry),
        D(test_nack),
        D(test_max_attempts_dead),
        D(test_queue_full),
        D(test_topic_retention_count),
        D(test_topic_retention_age),
        D(test_topic_max_messages),
        D(test_topic_after),
        D(test_topic_cursors),
        D(test_clear_evict_remove),
        D(test_many_holes),
        D(test_claim_max_bytes),
        D(test_read_max_bytes),
        D(test_extend),
        D(test_terminate),
        D(test_backoff),
        D(test_delayed),
        D(test_ttl),
        D(test_idempotent),
        D(test_cursor_idle),
        D(test_retention_stops_early),
#undef D
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_copy_helpers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
#ifndef SLUICE_NO_REDIS
    /* The same rules on the Redis engine. */
    const struct CMUnitTest redis_tests[] = {
#define R(f) cmocka_unit_test_setup_teardown(redis_##f, setup_redis, teardown_redis),
        REDIS_RULES(R)
#undef R
    };
    failed += cmocka_run_group_tests_name("redis engine", redis_tests, group_setup_redis,
                                          group_teardown_redis);
    /* And over two shards, where a queue and its dead-letter queue may live apart. */
    failed += cmocka_run_group_tests_name("redis engine, two shards", redis_tests,
                                          group_setup_redis2, group_teardown_redis);
#endif
    return failed;
}
