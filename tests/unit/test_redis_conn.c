/* The Redis connection module (src/store/redis_conn.h): the engine URL parser and the shard ring
 * without I/O, then command and subscription connections against real redis-servers that the
 * test starts on free loopback ports (tests/unit/redis_server.h): pipelining, AUTH, SELECT, name
 * resolution, a killed and a stopped server, EVALSHA falling back to EVAL, counted
 * subscriptions and their resubscription after a restart, and freeing with work pending (the
 * sanitizers' leak check is the assertion there). No assertion is about time: the loop runs until
 * the awaited state or a generous deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "deps.h"
#include "redis_server.h"

#include <uv.h>

#include "store/redis_conn.h"

static test_redis R;
static int have_redis;

#define NEED_REDIS() NEED_DEP(have_redis, "redis-server (scripts/deps installs it)")

/* ---- the loop ----------------------------------------------------------------------------- */

static void tick(uv_timer_t *t)
{
    (void)t;
}

typedef int (*cond_fn)(void *);

/* Runs the loop until cond(ud) or the deadline; returns cond's last value. A ref'd timer keeps
 * the loop turning (the connections' retry timers do not keep a loop alive on their own). */
static int run_until(uv_loop_t *loop, cond_fn cond, void *ud, long ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    uint64_t end = uv_now(loop) + (uint64_t)ms;
    int ok;
    while (!(ok = cond(ud)) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static int never(void *ud)
{
    (void)ud;
    return 0;
}

static int conn_up(void *ud)
{
    return sl__rconn_up(ud);
}

static int sub_up(void *ud)
{
    return sl__rsub_up(ud);
}

/* After the connections are freed: every handle closes and the loop ends empty. */
static void finish_loop(uv_loop_t *loop)
{
    for (int i = 0; i < 100 && uv_loop_alive(loop); i++)
        uv_run(loop, UV_RUN_NOWAIT);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- command results ---------------------------------------------------------------------- */

typedef struct res {
    int calls;
    int rc;
    int type;
    long long integer;
    char str[256];
    int *order; /* shared counter: the completion's position */
    int pos;
} res;

static int in_cmd_call; /* set around sl__rconn_cmd: completions must not run inside it */

static void on_res(void *ud, int rc, const redisReply *reply)
{
    res *r = ud;
    assert_int_equal(in_cmd_call, 0);
    r->calls++;
    r->rc = rc;
    r->type = reply ? reply->type : -1;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        r->integer = reply->integer;
    if (reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
                  reply->type == REDIS_REPLY_ERROR))
        snprintf(r->str, sizeof r->str, "%.*s", (int)reply->len, reply->str);
    if (r->order)
        r->pos = (*r->order)++;
}

static int res_done(void *ud)
{
    return ((res *)ud)->calls > 0;
}

static void cmd(sl__rconn *c, res *r, int argc, const char *const *argv)
{
    memset(r, 0, sizeof *r);
    in_cmd_call = 1;
    sl__rconn_cmd(c, argc, argv, NULL, on_res, r);
    in_cmd_call = 0;
}

/* Runs one command to completion. */
static res run_cmd(uv_loop_t *loop, sl__rconn *c, int argc, const char *const *argv)
{
    res r;
    cmd(c, &r, argc, argv);
    assert_true(run_until(loop, res_done, &r, TEST_REDIS_WAIT_MS));
    assert_int_equal(r.calls, 1);
    return r;
}

typedef struct states {
    int up, down, last;
} states;

static void on_state(void *ud, int up)
{
    states *s = ud;
    if (up)
        s->up++;
    else
        s->down++;
    s->last = up;
}

static int went_down(void *ud)
{
    return ((states *)ud)->down > 0;
}

/* The timeout of a connection whose test is not about timeouts: a command or handshake on a loaded
 * machine, behind 64 MiB of other commands in test_large_writes, may take longer than the default
 * 5 s without anything being wrong. */
#define PATIENT_MS TEST_REDIS_WAIT_MS

static sl__rconn *conn_url(uv_loop_t *loop, const char *url, unsigned timeout_ms, states *st)
{
    sl__redis_url u;
    sl_status status;
    assert_int_equal(sl__redis_url_parse(url, &u, &status), SL_OK);
    sl__rconn_opts o = {.addr = &u.shards[0],
                        .what = "test",
                        .timeout_ms = timeout_ms,
                        .on_state = st ? on_state : NULL,
                        .state_ud = st};
    sl__rconn *c;
    assert_int_equal(sl__rconn_new(&c, loop, &o), SL_OK);
    sl__redis_url_clear(&u); /* the connection copied what it needs */
    return c;
}

static sl__rconn *conn_to(uv_loop_t *loop, const test_redis *srv, unsigned timeout_ms, states *st)
{
    char url[128];
    test_redis_url(srv, url, sizeof url);
    return conn_url(loop, url, timeout_ms, st);
}

/* ---- the URL ------------------------------------------------------------------------------ */

static void test_url_valid(void **state)
{
    (void)state;
    sl__redis_url u;
    sl_status st;
    char name[300];
    assert_int_equal(sl__redis_url_parse("redis://127.0.0.1", &u, &st), SL_OK);
    assert_int_equal(u.n, 1);
    assert_string_equal(u.shards[0].host, "127.0.0.1");
    assert_int_equal(u.shards[0].port, 6379);
    assert_int_equal(u.shards[0].db, 0);
    assert_null(u.shards[0].user);
    assert_null(u.shards[0].password);
    sl__redis_url_clear(&u);

    assert_int_equal(
        sl__redis_url_parse("REDIS://alice:p%40ss:w@rd/x@Cache.Example:7000/15", &u, &st), SL_OK);
    assert_string_equal(u.shards[0].host, "cache.example");
    assert_int_equal(u.shards[0].port, 7000);
    assert_int_equal(u.shards[0].db, 15);
    assert_string_equal(u.shards[0].user, "alice");
    assert_string_equal(u.shards[0].password, "p@ss:w@rd/x");
    sl__redis_addr_name(&u.shards[0], name, sizeof name);
    assert_string_equal(name, "cache.example:7000/15");
    sl__redis_url_clear(&u);

    assert_int_equal(sl__redis_url_parse("redis://:pw%2C1@[::1]:6380/", &u, &st), SL_OK);
    assert_string_equal(u.shards[0].host, "::1");
    assert_null(u.shards[0].user);
    assert_string_equal(u.shards[0].password, "pw,1");
    assert_int_equal(u.shards[0].db, 0);
    sl__redis_addr_name(&u.shards[0], name, sizeof name);
    assert_string_equal(name, "[::1]:6380/0");
    sl__redis_url_clear(&u);

    assert_int_equal(sl__redis_url_parse("redis://a:1, redis://b:2/1 ,redis://a:1/1", &u, &st),
                     SL_OK);
    assert_int_equal(u.n, 3);
    assert_string_equal(u.shards[1].host, "b");
    assert_int_equal(u.shards[1].port, 2);
    assert_int_equal(u.shards[2].db, 1);
    sl__redis_url_clear(&u);
    sl__redis_url_clear(&u); /* twice is harmless */
}

static void test_url_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "redis://",
        "redis:/host",
        "http://host:6379",
        "rediss://host:6379",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:99999999999999999999",
        "redis://host:",
        "redis://host:-1",
        "redis://host:12a",
        "redis://host/16",
        "redis://host/-1",
        "redis://host/1/2",
        "redis://host?db=1",
        "redis://ho st",
        "redis://host,",
        ",redis://host",
        "redis://a,,redis://b",
        "redis://a:1,redis://A:1",
        "redis://[::1",
        "redis://[zz::1]:1",
        "redis://[]:1",
        "redis://::1:6379",
        "redis://user@host",
        "redis://user:@host",
        "redis://:%zz@host",
        "redis://:%4@host",
        "redis://:a%00b@host",
        "redis://:secret-pw,@host",
        "redis://:pw@",
        "redis://:pw@:6379",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl__redis_url u = {(sl__redis_addr *)1, 7};
        sl_status st = {0};
        int rc = sl__redis_url_parse(bad[i], &u, &st);
        if (rc != SL_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_null(u.shards);
        assert_int_equal(u.n, 0);
        assert_int_equal(st.code, SL_EINVAL);
        assert_true(st.message[0] != '\0');
        /* the reason never repeats a password */
        assert_null(strstr(st.message, "secret"));
        assert_null(strstr(st.message, "pw"));
    }
    sl__redis_url u;
    sl_status st;
    assert_int_equal(sl__redis_url_parse(NULL, &u, &st), SL_EINVAL);
    /* a host name at the limit, and one past it */
    char longhost[300 + 16];
    memcpy(longhost, "redis://", 8);
    memset(longhost + 8, 'h', 255);
    longhost[8 + 255] = '\0';
    assert_int_equal(sl__redis_url_parse(longhost, &u, &st), SL_OK);
    sl__redis_url_clear(&u);
    longhost[8 + 255] = 'h';
    longhost[8 + 256] = '\0';
    assert_int_equal(sl__redis_url_parse(longhost, &u, &st), SL_EINVAL);
    /* 64 shards, then 65 */
    char many[65 * 32];
    size_t off = 0;
    for (int i = 0; i < 65; i++)
        off += (size_t)snprintf(many + off, sizeof many - off, "%sredis://h:%d", i ? "," : "",
                                1000 + i);
    assert_int_equal(sl__redis_url_parse(many, &u, &st), SL_EINVAL);
    *strrchr(many, ',') = '\0';
    assert_int_equal(sl__redis_url_parse(many, &u, &st), SL_OK);
    assert_int_equal(u.n, 64);
    sl__redis_url_clear(&u);
}

/* ---- pub/sub channel names ------------------------------------------------------------------ */

/* db 0 keeps the names of every earlier release; any other db has names of its own, and no
 * prefix on one db shares a name with another prefix on another (no prefix holds '@'). */
static void test_channel_names(void **state)
{
    (void)state;
    char b[SL__REDIS_SCOPE_MAX + 32];
    assert_int_equal(sl__redis_scope(b, sizeof b, "sluice", 0), 6);
    assert_string_equal(b, "sluice");
    assert_int_equal(sl__redis_scope(b, sizeof b, "sluice", 15), 9);
    assert_string_equal(b, "sluice@15");
    assert_int_equal(sl__redis_channel(b, sizeof b, "sluice", 0, "ev", "orders"), 18);
    assert_string_equal(b, "sluice:ev:{orders}");
    assert_int_equal(sl__redis_channel(b, sizeof b, "sluice", 3, "ev", "orders"), 20);
    assert_string_equal(b, "sluice@3:ev:{orders}");
    assert_true(sl__redis_channel(b, sizeof b, "sluice", 0, "ctl", NULL) > 0);
    assert_string_equal(b, "sluice:ctl");
    assert_true(sl__redis_channel(b, sizeof b, "sluice", 1, "kv", NULL) > 0);
    assert_string_equal(b, "sluice@1:kv");
    assert_true(sl__redis_channel(b, sizeof b, "a:b", 2, "tb:revocations", NULL) > 0);
    assert_string_equal(b, "a:b@2:tb:revocations");
    /* The longest prefix on the highest db fits the scope's room. */
    char p64[65];
    memset(p64, 'p', 64);
    p64[64] = '\0';
    assert_int_equal(sl__redis_scope(b, SL__REDIS_SCOPE_MAX + 1, p64, 15), SL__REDIS_SCOPE_MAX);
    /* Refused, leaving "": '@' in the prefix (its scope would be another's), empty or too long
     * prefixes, dbs outside 0..15, no name, no room. */
    static const struct {
        const char *prefix;
        int db;
        const char *name;
        size_t size;
    } bad[] = {
        {"a@1", 0, "ctl", sizeof b}, {"", 0, "ctl", sizeof b},   {NULL, 0, "ctl", sizeof b},
        {"a", -1, "ctl", sizeof b},  {"a", 16, "ctl", sizeof b}, {"a", 0, "", sizeof b},
        {"a", 0, NULL, sizeof b},    {"sluice", 1, "ctl", 12},   {"sluice", 1, "ctl", 8},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        strcpy(b, "x");
        if (sl__redis_channel(b, bad[i].size, bad[i].prefix, bad[i].db, bad[i].name, NULL) != -1 ||
            b[0] != '\0')
            fail_msg("case %zu: '%s'", i, b);
    }
    char p65[66];
    memset(p65, 'p', 65);
    p65[65] = '\0';
    assert_int_equal(sl__redis_scope(b, sizeof b, p65, 0), -1);
    assert_string_equal(b, "");
    /* Exactly the room the name needs, and one byte less. */
    assert_int_equal(sl__redis_channel(b, 21, "sluice", 3, "ev", "orders"), 20);
    assert_int_equal(sl__redis_channel(b, 20, "sluice", 3, "ev", "orders"), -1);
    assert_string_equal(b, "");
}

/* ---- the ring ----------------------------------------------------------------------------- */

static sl__redis_ring *ring_of(const char *url, sl__redis_url *u)
{
    sl_status st;
    assert_int_equal(sl__redis_url_parse(url, u, &st), SL_OK);
    sl__redis_ring *r;
    assert_int_equal(sl__redis_ring_new(&r, u), SL_OK);
    return r;
}

static void shard_name(const sl__redis_url *u, size_t i, char *buf)
{
    sl__redis_addr_name(&u->shards[i], buf, 300);
}

static void test_ring(void **state)
{
    (void)state;
    enum { N = 10000 };
    sl__redis_url u3, u3b, u4;
    sl__redis_ring *r3 = ring_of("redis://a:1,redis://b:1,redis://c:1", &u3);
    /* the same shards listed in another order */
    sl__redis_ring *r3b = ring_of("redis://c:1,redis://a:1,redis://b:1", &u3b);
    sl__redis_ring *r4 = ring_of("redis://a:1,redis://b:1,redis://c:1,redis://d:1", &u4);
    size_t per3[3] = {0}, per4[4] = {0}, moved = 0;
    for (int i = 0; i < N; i++) {
        char id[32], n3[300], n3b[300], n4[300];
        snprintf(id, sizeof id, "chan-%d", i);
        size_t s3 = sl__redis_ring_shard(r3, id);
        assert_int_equal(s3, sl__redis_ring_shard(r3, id)); /* deterministic */
        size_t s4 = sl__redis_ring_shard(r4, id);
        assert_true(s3 < 3 && s4 < 4);
        per3[s3]++;
        per4[s4]++;
        shard_name(&u3, s3, n3);
        shard_name(&u3b, sl__redis_ring_shard(r3b, id), n3b);
        assert_string_equal(n3, n3b);
        shard_name(&u4, s4, n4);
        if (strcmp(n3, n4) != 0) {
            moved++;
            /* a channel that moves goes to the new shard, never between two old ones */
            assert_string_equal(n4, "d:1/0");
        }
    }
    for (int i = 0; i < 3; i++)
        assert_true(per3[i] > N / 10);
    for (int i = 0; i < 4; i++)
        assert_true(per4[i] > N / 10);
    assert_true(moved >= N * 15 / 100 && moved <= N * 35 / 100);
    /* one shard takes everything */
    sl__redis_url u1;
    sl__redis_ring *r1 = ring_of("redis://solo", &u1);
    assert_int_equal(sl__redis_ring_shard(r1, "x"), 0);
    sl__redis_ring_free(r1);
    sl__redis_url_clear(&u1);
    sl__redis_ring_free(r3);
    sl__redis_ring_free(r3b);
    sl__redis_ring_free(r4);
    sl__redis_url_clear(&u3);
    sl__redis_url_clear(&u3b);
    sl__redis_url_clear(&u4);
    sl__redis_ring_free(NULL);
}

/* ---- commands ----------------------------------------------------------------------------- */

static void test_commands(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    states st = {0};
    sl__rconn *c = conn_to(&loop, &R, PATIENT_MS, &st);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    assert_int_equal(st.up, 1);
    res r = run_cmd(&loop, c, 3, (const char *[]){"SET", "rc:k", "v1"});
    assert_int_equal(r.rc, SL_OK);
    assert_string_equal(r.str, "OK");
    /* binary arguments with their lengths */
    res b;
    memset(&b, 0, sizeof b);
    const char *argv[] = {"SET", "rc:bin", "a\0b"};
    const size_t lens[] = {3, 6, 3};
    sl__rconn_cmd(c, 3, argv, lens, on_res, &b);
    assert_true(run_until(&loop, res_done, &b, TEST_REDIS_WAIT_MS));
    r = run_cmd(&loop, c, 2, (const char *[]){"STRLEN", "rc:bin"});
    assert_int_equal(r.integer, 3);
    r = run_cmd(&loop, c, 2, (const char *[]){"GET", "rc:k"});
    assert_int_equal(r.type, REDIS_REPLY_STRING);
    assert_string_equal(r.str, "v1");
    /* an error reply is a reply: the caller judges it */
    r = run_cmd(&loop, c, 1, (const char *[]){"NOSUCHCOMMAND"});
    assert_int_equal(r.rc, SL_OK);
    assert_int_equal(r.type, REDIS_REPLY_ERROR);
    sl__rconn_free(c);
    finish_loop(&loop);
    assert_int_equal(st.down, 0);
}

static void test_pipeline(void **state)
{
    (void)state;
    NEED_REDIS();
    enum { N = 1000 };
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl__rconn *c = conn_to(&loop, &R, PATIENT_MS, NULL);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    res d = run_cmd(&loop, c, 2, (const char *[]){"DEL", "rc:counter"});
    assert_int_equal(d.rc, SL_OK);
    static res rs[N];
    int order = 0;
    for (int i = 0; i < N; i++) {
        cmd(c, &rs[i], 2, (const char *[]){"INCR", "rc:counter"});
        rs[i].order = &order;
    }
    for (int i = 0; i < N; i++)
        assert_true(run_until(&loop, res_done, &rs[i], TEST_REDIS_WAIT_MS));
    for (int i = 0; i < N; i++) {
        assert_int_equal(rs[i].calls, 1);
        assert_int_equal(rs[i].rc, SL_OK);
        assert_int_equal(rs[i].integer, i + 1); /* executed in order */
        assert_int_equal(rs[i].pos, i);         /* completed in order */
    }
    sl__rconn_free(c);
    finish_loop(&loop);
}

/* A reply is overdue when Redis has answered nothing for the timeout while commands wait, not when
 * one command has waited that long behind others Redis is still working through (nginx's
 * proxy_read_timeout has the same meaning). Ten pipelined BLPOPs that each block 250 ms take
 * 2.5 s in all against a 1 s timeout: before, the fifth was "overdue" at 1 s and the link was
 * dropped with the rest failing; the gap between two replies (250 ms) is far inside the timeout. */
static void test_overdue_means_no_progress(void **state)
{
    (void)state;
    NEED_REDIS();
    enum { N = 10 };
    uv_loop_t loop;
    uv_loop_init(&loop);
    states st = {0};
    sl__rconn *c = conn_to(&loop, &R, 1000, &st);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    res rs[N];
    for (int i = 0; i < N; i++)
        cmd(c, &rs[i], 3, (const char *[]){"BLPOP", "rc:never-pushed", "0.25"});
    for (int i = 0; i < N; i++)
        assert_true(run_until(&loop, res_done, &rs[i], TEST_REDIS_WAIT_MS));
    for (int i = 0; i < N; i++) {
        assert_int_equal(rs[i].calls, 1);
        assert_int_equal(rs[i].rc, SL_OK); /* BLPOP's timeout answers a nil */
    }
    assert_int_equal(st.down, 0);
    sl__rconn_free(c);
    finish_loop(&loop);
}

/* Commands far larger than the socket takes in one write (64 MiB in all, queued in one loop
 * turn): what the direct write at the end of the turn leaves goes out as the socket drains. */
static void test_large_writes(void **state)
{
    (void)state;
    NEED_REDIS();
    enum { N = 16, SIZE = 4 << 20 };
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl__rconn *c = conn_to(&loop, &R, PATIENT_MS, NULL);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    char *big = malloc(SIZE);
    assert_non_null(big);
    memset(big, 'z', SIZE);
    static res rs[N];
    memset(rs, 0, sizeof rs);
    for (int i = 0; i < N; i++) {
        const char *argv[] = {"APPEND", "rc:big", big};
        const size_t lens[] = {6, 6, SIZE};
        sl__rconn_cmd(c, 3, argv, lens, on_res, &rs[i]);
    }
    for (int i = 0; i < N; i++) {
        assert_true(run_until(&loop, res_done, &rs[i], TEST_REDIS_WAIT_MS));
        assert_int_equal(rs[i].rc, SL_OK);
        assert_int_equal(rs[i].integer, (long long)(i + 1) * SIZE);
    }
    res d = run_cmd(&loop, c, 2, (const char *[]){"DEL", "rc:big"});
    assert_int_equal(d.integer, 1);
    free(big);
    sl__rconn_free(c);
    finish_loop(&loop);
}

/* stderr into a file while a test runs, to read what was logged. */
static int capture_start(char *path, int *saved)
{
    snprintf(path, 64, "/tmp/sluice-rconn-log-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    *saved = dup(2);
    dup2(fd, 2);
    close(fd);
    return 0;
}

static char *capture_end(const char *path, int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    return buf;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* INFO's total_connections_received, asked over admin (whose own connection it counts once). */
static long long conns_received(redisContext *admin)
{
    redisReply *r = redisCommand(admin, "INFO stats");
    long long n = -1;
    const char *at =
        r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "total_connections_received:") : NULL;
    if (at != NULL)
        n = strtoll(at + strlen("total_connections_received:"), NULL, 10);
    freeReplyObject(r);
    return n;
}

typedef struct conns_want {
    redisContext *admin;
    long long n;
} conns_want;

static int conns_reached(void *ud)
{
    conns_want *w = ud;
    return conns_received(w->admin) >= w->n;
}

static void test_auth(void **state)
{
    (void)state;
    NEED_REDIS();
    test_redis P = {.password = "s3cret-pass"};
    assert_int_equal(test_redis_start(&P), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* AUTH password */
    sl__rconn *c = conn_to(&loop, &P, PATIENT_MS, NULL);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    res r = run_cmd(&loop, c, 3, (const char *[]){"SET", "rc:auth", "1"});
    assert_string_equal(r.str, "OK");
    sl__rconn_free(c);
    /* AUTH user password (Redis 6 ACL form; "default" is the requirepass user) */
    char url[160];
    snprintf(url, sizeof url, "redis://default:s3cret-pass@127.0.0.1:%d", P.port);
    c = conn_url(&loop, url, PATIENT_MS, NULL);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    r = run_cmd(&loop, c, 2, (const char *[]){"GET", "rc:auth"});
    assert_string_equal(r.str, "1");
    sl__rconn_free(c);
    /* a wrong password: never up, commands fail closed, one log line, no password in it */
    char path[64];
    int saved;
    capture_start(path, &saved);
    snprintf(url, sizeof url, "redis://:wrong-pass-xyz@127.0.0.1:%d", P.port);
    states st = {0};
    redisContext *adm = test_redis_admin(&P);
    assert_non_null(adm);
    c = conn_url(&loop, url, PATIENT_MS, &st);
    /* Several attempts with the backoff, as the server counts them (a fixed wait could pass
     * without one on a loaded machine). */
    conns_want three = {adm, conns_received(adm) + 3};
    int attempts = run_until(&loop, conns_reached, &three, TEST_REDIS_WAIT_MS);
    redisFree(adm);
    int up = sl__rconn_up(c);
    cmd(c, &r, 2, (const char *[]){"GET", "rc:auth"});
    int done_at_once = r.calls;
    assert_true(run_until(&loop, res_done, &r, TEST_REDIS_WAIT_MS));
    sl__rconn_free(c);
    finish_loop(&loop);
    char *log = capture_end(path, saved);
    assert_true(attempts);
    assert_false(up);
    assert_int_equal(st.up, 0);
    assert_int_equal(done_at_once, 0);
    assert_int_equal(r.rc, SL_EUNAVAIL);
    assert_int_equal(r.type, -1);
    assert_int_equal(count_of(log, "AUTH refused"), 1);
    assert_null(strstr(log, "wrong-pass"));
    assert_null(strstr(log, "s3cret"));
    test_redis_stop(&P);
}

static void test_select_and_localhost(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[128];
    /* a host name, resolved on the thread pool ("localhost" may come first as ::1, where this
     * server does not listen: the next address is tried) */
    snprintf(url, sizeof url, "redis://localhost:%d/3", R.port);
    sl__rconn *c = conn_url(&loop, url, PATIENT_MS, NULL);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    res r = run_cmd(&loop, c, 3, (const char *[]){"SET", "rc:db3", "three"});
    assert_string_equal(r.str, "OK");
    sl__rconn_free(c);
    finish_loop(&loop);
    redisReply *g = test_redis_cmd(&R, "GET rc:db3");
    assert_non_null(g);
    assert_int_equal(g->type, REDIS_REPLY_NIL); /* not in db 0 */
    freeReplyObject(g);
    redisContext *a = test_redis_admin(&R);
    assert_non_null(a);
    freeReplyObject(redisCommand(a, "SELECT 3"));
    g = redisCommand(a, "GET rc:db3");
    assert_non_null(g);
    assert_int_equal(g->type, REDIS_REPLY_STRING);
    assert_string_equal(g->str, "three");
    freeReplyObject(g);
    redisFree(a);
    /* a name that does not resolve: never up, fails closed */
    uv_loop_init(&loop);
    c = conn_url(&loop, "redis://no-such-host.invalid:6379", 0, NULL);
    res f;
    cmd(c, &f, 1, (const char *[]){"PING"});
    assert_int_equal(f.calls, 0);
    assert_true(run_until(&loop, res_done, &f, TEST_REDIS_WAIT_MS));
    assert_int_equal(f.rc, SL_EUNAVAIL);
    assert_false(sl__rconn_up(c));
    sl__rconn_free(c);
    finish_loop(&loop);
}

static void test_killed_and_restarted(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    states st = {0};
    sl__rconn *c = conn_to(&loop, &R, PATIENT_MS, &st);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    /* a command the server holds until it dies */
    res blocked;
    cmd(c, &blocked, 3, (const char *[]){"BLPOP", "rc:never", "0"});
    run_until(&loop, never, NULL, 50);
    assert_int_equal(blocked.calls, 0);
    test_redis_signal(&R, SIGKILL);
    assert_true(run_until(&loop, res_done, &blocked, TEST_REDIS_WAIT_MS));
    assert_int_equal(blocked.rc, SL_EUNAVAIL);
    assert_true(run_until(&loop, went_down, &st, TEST_REDIS_WAIT_MS));
    assert_false(sl__rconn_up(c));
    res r;
    cmd(c, &r, 1, (const char *[]){"PING"});
    assert_int_equal(r.calls, 0);
    assert_true(run_until(&loop, res_done, &r, TEST_REDIS_WAIT_MS));
    assert_int_equal(r.rc, SL_EUNAVAIL);
    /* back by itself */
    assert_int_equal(test_redis_start(&R), 0);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    assert_int_equal(st.up, 2);
    assert_int_equal(st.down, 1);
    r = run_cmd(&loop, c, 1, (const char *[]){"PING"});
    assert_int_equal(r.rc, SL_OK);
    assert_string_equal(r.str, "PONG");
    sl__rconn_free(c);
    finish_loop(&loop);
}

static void test_stopped_server(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    states st = {0};
    sl__rconn *c = conn_to(&loop, &R, 1000, &st);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    test_redis_signal(&R, SIGSTOP);
    res r;
    cmd(c, &r, 1, (const char *[]){"PING"});
    assert_true(run_until(&loop, res_done, &r, TEST_REDIS_WAIT_MS));
    test_redis_signal(&R, SIGCONT);
    assert_int_equal(r.rc, SL_EUNAVAIL);
    assert_int_equal(st.down, 1);
    /* Back by itself. The resumed server works through what queued while it was stopped, and on a
     * loaded machine a PING can take longer than this connection's 1 s: then it is sent again. */
    uint64_t end = uv_now(&loop) + TEST_REDIS_WAIT_MS;
    do {
        assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
        r = run_cmd(&loop, c, 1, (const char *[]){"PING"});
    } while (r.rc != SL_OK && uv_now(&loop) < end);
    assert_int_equal(r.rc, SL_OK);
    sl__rconn_free(c);
    finish_loop(&loop);
}

typedef struct logwait {
    const char *path, *needle;
} logwait;

static int log_has(void *ud)
{
    logwait *w = ud;
    fflush(stderr);
    FILE *f = fopen(w->path, "r");
    if (f == NULL)
        return 0;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, w->needle) != NULL;
}

static void test_unreachable(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A port bound here and not listened on: refused, and nobody else can take it meanwhile (a free
     * port given back could be another test's server's by the time the connection tries it). */
    int held = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_true(held >= 0);
    assert_int_equal(bind(held, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(held, (struct sockaddr *)&a, &alen), 0);
    int port = ntohs(a.sin_port);
    char url[64], path[64];
    int saved;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    capture_start(path, &saved);
    /* a connect timeout longer than the test's deadline: the refusal itself is noticed */
    sl__rconn *c = conn_url(&loop, url, 600000, NULL);
    res r;
    cmd(c, &r, 1, (const char *[]){"PING"});
    int at_once = r.calls;
    int refused = run_until(&loop, log_has, &(logwait){path, "refused"}, TEST_REDIS_WAIT_MS);
    int done = run_until(&loop, res_done, &r, TEST_REDIS_WAIT_MS);
    int up = sl__rconn_up(c);
    sl__rconn_free(c);
    finish_loop(&loop);
    char *log = capture_end(path, saved);
    close(held);
    assert_int_equal(at_once, 0); /* never inside the call */
    assert_true(done);
    assert_int_equal(r.rc, SL_EUNAVAIL);
    assert_false(up);
    assert_true(refused);
    assert_int_equal(count_of(log, "unavailable"), 1); /* once per outage, not per attempt */
}

/* ---- scripts ------------------------------------------------------------------------------ */

static const char SCRIPT[] = "return ARGV[1] .. ':' .. KEYS[1]";

static void test_eval(void **state)
{
    (void)state;
    NEED_REDIS();
    sl__rscript s;
    sl__rscript_init(&s, SCRIPT);
    redisReply *load = test_redis_cmd(&R, "SCRIPT LOAD %s", SCRIPT);
    assert_non_null(load);
    assert_string_equal(load->str, s.sha); /* the SHA-1 Redis computes */
    freeReplyObject(load);
    redisReply *fl = test_redis_cmd(&R, "SCRIPT FLUSH");
    freeReplyObject(fl);

    uv_loop_t loop;
    uv_loop_init(&loop);
    sl__rconn *c = conn_to(&loop, &R, PATIENT_MS, NULL);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    for (int round = 0; round < 3; round++) {
        /* not cached (round 0), cached (1), flushed again (2) */
        if (round == 2)
            freeReplyObject(test_redis_cmd(&R, "SCRIPT FLUSH"));
        res rs[3];
        for (int i = 0; i < 3; i++) {
            memset(&rs[i], 0, sizeof rs[i]);
            char arg[16];
            snprintf(arg, sizeof arg, "a%d", i);
            /* argv is the caller's stack: copied */
            const char *argv[] = {"key", arg};
            sl__rconn_eval(c, &s, 1, 2, argv, NULL, on_res, &rs[i]);
        }
        for (int i = 0; i < 3; i++) {
            assert_true(run_until(&loop, res_done, &rs[i], TEST_REDIS_WAIT_MS));
            char want[16];
            snprintf(want, sizeof want, "a%d:key", i);
            assert_int_equal(rs[i].calls, 1);
            assert_int_equal(rs[i].rc, SL_OK);
            assert_int_equal(rs[i].type, REDIS_REPLY_STRING);
            assert_string_equal(rs[i].str, want);
        }
        redisReply *ex = test_redis_cmd(&R, "SCRIPT EXISTS %s", s.sha);
        assert_non_null(ex);
        assert_int_equal(ex->element[0]->integer, 1);
        freeReplyObject(ex);
    }
    /* binary arguments */
    res b;
    memset(&b, 0, sizeof b);
    const char *argv[] = {"k\0z", "x"};
    const size_t lens[] = {3, 1};
    sl__rconn_eval(c, &s, 1, 2, argv, lens, on_res, &b);
    assert_true(run_until(&loop, res_done, &b, TEST_REDIS_WAIT_MS));
    assert_int_equal(b.rc, SL_OK);
    assert_int_equal(memcmp(b.str, "x:k", 3), 0);
    /* a script error is the caller's reply */
    sl__rscript bad;
    sl__rscript_init(&bad, "return redis.call('NOSUCH')");
    memset(&b, 0, sizeof b);
    sl__rconn_eval(c, &bad, 0, 0, NULL, NULL, on_res, &b);
    assert_true(run_until(&loop, res_done, &b, TEST_REDIS_WAIT_MS));
    assert_int_equal(b.rc, SL_OK);
    assert_int_equal(b.type, REDIS_REPLY_ERROR);
    assert_null(strstr(b.str, "NOSCRIPT"));
    sl__rconn_free(c);
    finish_loop(&loop);
}

/* ---- freeing with work pending ------------------------------------------------------------ */

static sl__rconn *free_me;

static void on_res_free(void *ud, int rc, const redisReply *reply)
{
    on_res(ud, rc, reply);
    if (free_me) {
        sl__rconn *c = free_me;
        free_me = NULL;
        sl__rconn_free(c);
    }
}

static void test_free_pending(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl__rconn *c = conn_to(&loop, &R, PATIENT_MS, NULL);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    res rs[20];
    for (int i = 0; i < 10; i++)
        cmd(c, &rs[i], 3, (const char *[]){"BLPOP", "rc:never", "0"});
    sl__rscript s;
    sl__rscript_init(&s, SCRIPT);
    for (int i = 10; i < 20; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        sl__rconn_eval(c, &s, 1, 2, (const char *[]){"k", "v"}, NULL, on_res, &rs[i]);
    }
    run_until(&loop, never, NULL, 20);
    sl__rconn_free(c);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rs[i].calls, 1);
        assert_int_equal(rs[i].rc, SL_EUNAVAIL);
    }
    for (int i = 10; i < 20; i++)
        assert_int_equal(rs[i].calls, 1);
    finish_loop(&loop);

    /* freed while down, with failures still to deliver */
    uv_loop_init(&loop);
    c = conn_url(&loop, "redis://127.0.0.1:1", 0, NULL);
    res d;
    cmd(c, &d, 1, (const char *[]){"PING"});
    sl__rconn_free(c);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, SL_EUNAVAIL);
    finish_loop(&loop);

    /* freed from inside a completion, other commands pending behind it */
    uv_loop_init(&loop);
    c = conn_to(&loop, &R, PATIENT_MS, NULL);
    assert_true(run_until(&loop, conn_up, c, TEST_REDIS_WAIT_MS));
    res first, rest[5];
    memset(&first, 0, sizeof first);
    free_me = c;
    sl__rconn_cmd(c, 1, (const char *[]){"PING"}, NULL, on_res_free, &first);
    for (int i = 0; i < 5; i++)
        cmd(c, &rest[i], 3, (const char *[]){"BLPOP", "rc:never", "0"});
    assert_true(run_until(&loop, res_done, &first, TEST_REDIS_WAIT_MS));
    assert_int_equal(first.rc, SL_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rest[i].calls, 1);
        assert_int_equal(rest[i].rc, SL_EUNAVAIL);
    }
    finish_loop(&loop);
}

/* ---- subscriptions ------------------------------------------------------------------------ */

typedef struct subrec {
    states st;
    int msgs;
    char chan[64];
    char last[64];
    size_t last_len;
} subrec;

static void on_msg(void *ud, const char *channel, size_t clen, const char *msg, size_t mlen)
{
    subrec *s = ud;
    s->msgs++;
    snprintf(s->chan, sizeof s->chan, "%.*s", (int)clen, channel);
    memcpy(s->last, msg, mlen < sizeof s->last ? mlen : sizeof s->last);
    s->last_len = mlen;
}

static void on_sub_state(void *ud, int up)
{
    on_state(&((subrec *)ud)->st, up);
}

typedef struct ready {
    int calls, rc;
} ready;

static void on_ready(void *ud, int rc)
{
    ready *r = ud;
    r->calls++;
    r->rc = rc;
}

static int ready_done(void *ud)
{
    return ((ready *)ud)->calls > 0;
}

static int got_msgs_1(void *ud)
{
    return ((subrec *)ud)->msgs >= 1;
}

static sl__rsub *sub_to(uv_loop_t *loop, const test_redis *srv, subrec *rec)
{
    char url[128];
    test_redis_url(srv, url, sizeof url);
    sl__redis_url u;
    sl_status st;
    assert_int_equal(sl__redis_url_parse(url, &u, &st), SL_OK);
    sl__rsub_opts o = {.addr = &u.shards[0],
                       .what = "test",
                       .on_msg = on_msg,
                       .on_state = on_sub_state,
                       .ud = rec};
    sl__rsub *s;
    assert_int_equal(sl__rsub_new(&s, loop, &o), SL_OK);
    sl__redis_url_clear(&u);
    return s;
}

static long long numsub(const char *channel)
{
    redisReply *r = test_redis_cmd(&R, "PUBSUB NUMSUB %s", channel);
    assert_non_null(r);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    return n;
}

static void publish(const char *channel, const char *msg)
{
    freeReplyObject(test_redis_cmd(&R, "PUBLISH %s %s", channel, msg));
}

/* Publishes until the subscriber got one message (a subscription confirmed on our side is live
 * on the server, but this keeps the test independent of that reasoning). */
static void expect_message(uv_loop_t *loop, subrec *rec, const char *channel, const char *msg)
{
    rec->msgs = 0;
    publish(channel, msg);
    assert_true(run_until(loop, got_msgs_1, rec, TEST_REDIS_WAIT_MS));
    assert_string_equal(rec->chan, channel);
    assert_int_equal(rec->last_len, strlen(msg));
    assert_int_equal(memcmp(rec->last, msg, rec->last_len), 0);
}

typedef struct numsub_want {
    const char *channel;
    long long n;
} numsub_want;

static int numsub_is(void *ud)
{
    numsub_want *w = ud;
    return numsub(w->channel) == w->n;
}

static void test_subscribe(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    subrec rec = {0};
    sl__rsub *s = sub_to(&loop, &R, &rec);
    assert_true(run_until(&loop, sub_up, s, TEST_REDIS_WAIT_MS));
    assert_int_equal(rec.st.up, 1);
    ready r1 = {0}, r2 = {0}, rp = {0};
    sl__rsub_add(s, "rc:ch1", on_ready, &r1);
    assert_int_equal(r1.calls, 0);
    assert_true(run_until(&loop, ready_done, &r1, TEST_REDIS_WAIT_MS));
    assert_int_equal(r1.rc, SL_OK);
    assert_int_equal(numsub("rc:ch1"), 1);
    expect_message(&loop, &rec, "rc:ch1", "hello");
    /* counted: a second add is ready at once (from the loop), one remove keeps it */
    sl__rsub_add(s, "rc:ch1", on_ready, &r2);
    assert_int_equal(r2.calls, 0);
    assert_true(run_until(&loop, ready_done, &r2, TEST_REDIS_WAIT_MS));
    assert_int_equal(r2.rc, SL_OK);
    sl__rsub_add(s, "rc:ch1", NULL, NULL);
    sl__rsub_remove(s, "rc:ch1");
    sl__rsub_remove(s, "rc:ch1");
    expect_message(&loop, &rec, "rc:ch1", "still");
    sl__rsub_remove(s, "rc:ch1");
    assert_true(run_until(&loop, numsub_is, &(numsub_want){"rc:ch1", 0}, TEST_REDIS_WAIT_MS));
    sl__rsub_remove(s, "rc:ch1"); /* one too many: ignored */
    /* the probe channel is not the caller's */
    sl__rsub_add(s, "__sluice:rsub:probe", on_ready, &rp);
    assert_true(run_until(&loop, ready_done, &rp, TEST_REDIS_WAIT_MS));
    assert_int_equal(rp.rc, SL_EINVAL);

    /* add, remove before the confirmation, add again: subscribed */
    ready a = {0}, b = {0};
    sl__rsub_add(s, "rc:ch2", on_ready, &a);
    sl__rsub_remove(s, "rc:ch2");
    sl__rsub_add(s, "rc:ch2", on_ready, &b);
    assert_true(run_until(&loop, ready_done, &b, TEST_REDIS_WAIT_MS));
    assert_true(run_until(&loop, ready_done, &a, TEST_REDIS_WAIT_MS));
    assert_int_equal(b.rc, SL_OK);
    expect_message(&loop, &rec, "rc:ch2", "two");
    /* remove (UNSUBSCRIBE in flight) then add again at once: subscribed again */
    ready c = {0};
    sl__rsub_remove(s, "rc:ch2");
    sl__rsub_add(s, "rc:ch2", on_ready, &c);
    assert_true(run_until(&loop, ready_done, &c, TEST_REDIS_WAIT_MS));
    assert_int_equal(c.rc, SL_OK);
    expect_message(&loop, &rec, "rc:ch2", "again");
    assert_int_equal(numsub("rc:ch2"), 1);
    /* add then remove before the confirmation: ends unsubscribed */
    ready d = {0};
    sl__rsub_add(s, "rc:ch3", on_ready, &d);
    sl__rsub_remove(s, "rc:ch3");
    assert_true(run_until(&loop, ready_done, &d, TEST_REDIS_WAIT_MS));
    assert_true(run_until(&loop, numsub_is, &(numsub_want){"rc:ch3", 0}, TEST_REDIS_WAIT_MS));
    /* a probe tick or two pass without dropping anything */
    run_until(&loop, never, NULL, 2500);
    assert_true(sl__rsub_up(s));
    assert_int_equal(rec.st.down, 0);
    /* freed with a subscription waiting for its confirmation */
    ready e = {0};
    sl__rsub_add(s, "rc:ch4", on_ready, &e);
    sl__rsub_free(s);
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.rc, SL_EUNAVAIL);
    finish_loop(&loop);
}

typedef struct downs_more {
    states *st;
    int n;
} downs_more;

static int more_downs(void *ud)
{
    downs_more *d = ud;
    return d->st->down > d->n;
}

static sl__rsub *free_sub;

static void on_msg_free(void *ud, const char *channel, size_t clen, const char *msg, size_t mlen)
{
    on_msg(ud, channel, clen, msg, mlen);
    if (free_sub) {
        sl__rsub *s = free_sub;
        free_sub = NULL;
        sl__rsub_free(s);
    }
}

/* Freed from inside a message callback with other subscriptions live and one waiting. */
static void test_subscribe_free_in_callback(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    subrec rec = {0};
    char url[128];
    test_redis_url(&R, url, sizeof url);
    sl__redis_url u;
    sl_status st;
    assert_int_equal(sl__redis_url_parse(url, &u, &st), SL_OK);
    sl__rsub_opts o = {.addr = &u.shards[0], .what = "test", .on_msg = on_msg_free, .ud = &rec};
    sl__rsub *s;
    assert_int_equal(sl__rsub_new(&s, &loop, &o), SL_OK);
    sl__redis_url_clear(&u);
    assert_true(run_until(&loop, sub_up, s, TEST_REDIS_WAIT_MS));
    ready a = {0}, b = {0}, w = {0};
    sl__rsub_add(s, "rc:f1", on_ready, &a);
    sl__rsub_add(s, "rc:f2", on_ready, &b);
    assert_true(run_until(&loop, ready_done, &a, TEST_REDIS_WAIT_MS));
    assert_true(run_until(&loop, ready_done, &b, TEST_REDIS_WAIT_MS));
    free_sub = s;
    sl__rsub_add(s, "rc:f3", on_ready, &w);
    publish("rc:f1", "bye");
    publish("rc:f2", "never seen");
    assert_true(run_until(&loop, got_msgs_1, &rec, TEST_REDIS_WAIT_MS));
    assert_null(free_sub);
    assert_int_equal(w.calls, 1);
    finish_loop(&loop);
    assert_int_equal(rec.msgs, 1);
}

static int sub_up_again(void *ud)
{
    return ((subrec *)ud)->st.up >= 2;
}

static void test_subscribe_reconnect(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    subrec rec = {0};
    sl__rsub *s = sub_to(&loop, &R, &rec);
    assert_true(run_until(&loop, sub_up, s, TEST_REDIS_WAIT_MS));
    ready r = {0};
    sl__rsub_add(s, "rc:re1", on_ready, &r);
    sl__rsub_add(s, "rc:re2", NULL, NULL);
    assert_true(run_until(&loop, ready_done, &r, TEST_REDIS_WAIT_MS));
    test_redis_signal(&R, SIGKILL);
    assert_true(run_until(&loop, went_down, &rec.st, TEST_REDIS_WAIT_MS));
    assert_int_equal(rec.st.last, 0);
    /* adds while down: answered from the loop, not kept */
    ready down = {0};
    sl__rsub_add(s, "rc:re3", on_ready, &down);
    assert_int_equal(down.calls, 0);
    assert_true(run_until(&loop, ready_done, &down, TEST_REDIS_WAIT_MS));
    assert_int_equal(down.rc, SL_EUNAVAIL);
    sl__rsub_remove(s, "rc:re2"); /* removed while down: not resubscribed */
    assert_int_equal(test_redis_start(&R), 0);
    assert_true(run_until(&loop, sub_up_again, &rec, TEST_REDIS_WAIT_MS));
    assert_int_equal(rec.st.last, 1);
    assert_true(sl__rsub_up(s));
    expect_message(&loop, &rec, "rc:re1", "after-restart");
    assert_int_equal(numsub("rc:re2"), 0);
    assert_int_equal(numsub("rc:re3"), 0);
    /* a stopped server: the probe notices */
    test_redis_signal(&R, SIGSTOP);
    /* an add the stopped server never confirms: failed when the link drops, and not kept */
    ready lost = {0};
    sl__rsub_add(s, "rc:re4", on_ready, &lost);
    downs_more dm = {&rec.st, rec.st.down};
    assert_true(run_until(&loop, more_downs, &dm, TEST_REDIS_WAIT_MS));
    test_redis_signal(&R, SIGCONT);
    assert_false(sl__rsub_up(s));
    assert_true(run_until(&loop, sub_up, s, TEST_REDIS_WAIT_MS));
    expect_message(&loop, &rec, "rc:re1", "after-stop");
    assert_true(run_until(&loop, ready_done, &lost, TEST_REDIS_WAIT_MS));
    assert_int_equal(lost.calls, 1);
    assert_int_equal(lost.rc, SL_EUNAVAIL);
    assert_int_equal(numsub("rc:re4"), 0);
    sl__rsub_free(s);
    finish_loop(&loop);
}

/* ---- the connect deadline and the role in log lines --------------------------------------- */

typedef struct lines {
    char buf[8192];
    size_t len;
} lines;

static void collect_line(void *ud, int level, const char *msg)
{
    (void)level;
    lines *l = ud;
    int n = snprintf(l->buf + l->len, sizeof l->buf - l->len, "%s\n", msg);
    if (n > 0 && (size_t)n < sizeof l->buf - l->len)
        l->len += (size_t)n;
}

typedef struct deadline_wait {
    const lines *log;
    uv_loop_t *loop;
    uint64_t not_before;
} deadline_wait;

/* Both short connect deadlines have expired, and the loop has run past the longest other timeout
 * that could have dropped a connection (the subscription's default connect deadline, 5 s). */
static int short_deadlines_seen(void *ud)
{
    deadline_wait *w = ud;
    return strstr(w->log->buf, "conn-c: redis") != NULL &&
           strstr(w->log->buf, "sub-d: redis") != NULL && uv_now(w->loop) >= w->not_before;
}

/* Against a stopped server (it completes TCP handshakes from its backlog and never answers), a
 * connection gives up after its connect deadline, which is its own option: not the command
 * timeout, and not the subscription's default. The role is named in the lines. Only lower bounds
 * are asserted (a deadline that did not pass dropped nothing); the short ones just have to come. */
static void test_connect_timeout_and_role(void **state)
{
    (void)state;
    NEED_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    lines log = {{0}, 0};
    sl__logsink sink = {collect_line, &log};
    char url[128];
    test_redis_url(&R, url, sizeof url);
    sl__redis_url u;
    sl_status status;
    assert_int_equal(sl__redis_url_parse(url, &u, &status), SL_OK);
    test_redis_signal(&R, SIGSTOP);
    /* a: short command timeout, long connect deadline; c: the other way round */
    sl__rconn_opts ao = {.addr = &u.shards[0],
                         .what = "conn-a",
                         .log = &sink,
                         .timeout_ms = 200,
                         .connect_timeout_ms = 600000};
    sl__rconn_opts co = {.addr = &u.shards[0],
                         .what = "conn-c",
                         .log = &sink,
                         .timeout_ms = 600000,
                         .connect_timeout_ms = 300};
    /* b: a connect deadline past the default; d: a short one, with a role */
    sl__rsub_opts bo = {
        .addr = &u.shards[0], .what = "sub-b", .log = &sink, .connect_timeout_ms = 600000};
    sl__rsub_opts d_o = {.addr = &u.shards[0],
                         .what = "sub-d",
                         .role = "the feed",
                         .log = &sink,
                         .connect_timeout_ms = 300};
    sl__rconn *a, *c;
    sl__rsub *b, *d;
    assert_int_equal(sl__rconn_new(&a, &loop, &ao), SL_OK);
    assert_int_equal(sl__rconn_new(&c, &loop, &co), SL_OK);
    assert_int_equal(sl__rsub_new(&b, &loop, &bo), SL_OK);
    assert_int_equal(sl__rsub_new(&d, &loop, &d_o), SL_OK);
    uv_update_time(&loop);
    deadline_wait w = {&log, &loop, uv_now(&loop) + 5500};
    int seen = run_until(&loop, short_deadlines_seen, &w, TEST_REDIS_WAIT_MS);
    test_redis_signal(&R, SIGCONT);
    sl__rconn_free(a);
    sl__rconn_free(c);
    sl__rsub_free(b);
    sl__rsub_free(d);
    finish_loop(&loop);
    sl__redis_url_clear(&u);
    assert_true(seen);
    assert_non_null(strstr(log.buf, "conn-c: redis 127.0.0.1:"));
    assert_int_equal(count_of(log.buf, "/0 unavailable (connect timed out)"), 1); /* c's */
    assert_int_equal(count_of(log.buf, "/0 the feed unavailable (connect timed out)"), 1);
    assert_null(strstr(log.buf, "conn-a"));
    assert_null(strstr(log.buf, "sub-b"));
}

static int group_setup(void **state)
{
    (void)state;
    if (test_redis_start(&R) == 0)
        have_redis = 1;
    else
        fprintf(stderr, "cannot start redis-server\n");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    test_redis_stop(&R);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_valid),
        cmocka_unit_test(test_url_hostile),
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_channel_names),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_large_writes),
        cmocka_unit_test(test_overdue_means_no_progress),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_select_and_localhost),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_free_pending),
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_subscribe_free_in_callback),
        cmocka_unit_test(test_killed_and_restarted),
        cmocka_unit_test(test_stopped_server),
        cmocka_unit_test(test_connect_timeout_and_role),
        cmocka_unit_test(test_subscribe_reconnect),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
