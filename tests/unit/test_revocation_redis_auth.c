/* The Redis revocation store given a full Redis URL (sl_revocation_redis_new_url) against a real
 * redis-server that needs a password (--requirepass), started by tests/unit/redis_server.h on a
 * free loopback port: with the password the store connects, revokes, checks and its watch
 * subscription (which authenticates on its own connection) reports events; an ACL user with only
 * the commands, keys and channels the store documents does too; a wrong password leaves the store
 * unavailable (SL_EUNAVAIL) and no log line holds either password; a db in the URL puts the keys
 * in that db (and nowhere else) while events flow on that db's channel (ra3@3:tb:revocations). URLs
 * the store cannot use are refused with a reason that never holds the password. Events are awaited
 * with a generous bound, never timed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deps.h"
#include "redis_server.h"

#include <sluice/revocation.h>

#define PASSWORD "unit-requirepass-4d1c7e0b"
#define WRONG "unit-wrong-password-8a2f"

static test_redis R = {.password = PASSWORD};
static uv_loop_t loop;

/* ---- the loop ------------------------------------------------------------------------------- */

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred(arg) or the deadline; returns pred(arg). */
static int wait_until(int (*pred)(void *), void *arg)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    uv_update_time(&loop);
    uint64_t deadline = uv_now(&loop) + TEST_REDIS_WAIT_MS;
    while (!pred(arg) && uv_now(&loop) < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return pred(arg);
}

typedef struct answer {
    int calls, status;
} answer;

static void record(void *ud, int status, const char *reason)
{
    (void)reason;
    answer *a = ud;
    a->calls++;
    a->status = status;
}

static int answered(void *arg)
{
    return ((answer *)arg)->calls > 0;
}

static int is_ready(void *arg)
{
    return sl_revocation_ready(arg);
}

/* What the store logged, all lines joined. */
typedef struct logbuf {
    char text[8192];
    size_t len;
} logbuf;

static void log_line(void *ud, const char *line)
{
    logbuf *b = ud;
    int n = snprintf(b->text + b->len, sizeof b->text - b->len, "%s\n", line);
    if (n > 0)
        b->len += (size_t)n < sizeof b->text - b->len ? (size_t)n : sizeof b->text - b->len - 1;
}

static const char *auth_refused_in;
static int logged_auth_refused(void *arg)
{
    return strstr(((logbuf *)arg)->text, auth_refused_in) != NULL;
}

/* Watch events: the last token id, resyncs seen. */
typedef struct events {
    int resyncs, tokens;
    char last[64];
} events;

static void on_event(void *ud, const sl_revocation_event *ev)
{
    events *e = ud;
    if (ev->resync)
        e->resyncs++;
    if (ev->token_id) {
        e->tokens++;
        snprintf(e->last, sizeof e->last, "%s", ev->token_id);
    }
}

static int resynced(void *arg)
{
    return ((events *)arg)->resyncs > 0;
}

static int got_token(void *arg)
{
    return ((events *)arg)->tokens > 0;
}

static sl_revocation_store *open_url(const char *url, const char *prefix)
{
    sl_revocation_store *s = NULL;
    sl_status st;
    sl_status_clear(&st);
    assert_int_equal(sl_revocation_redis_new_url(&s, &loop, url, prefix, 60, NULL, NULL, &st),
                     SL_OK);
    assert_non_null(s);
    assert_string_equal(sl_revocation_store_name(s), "redis");
    return s;
}

static int chk(sl_revocation_store *s, const char *tid)
{
    answer a = {0};
    sl_revocation_check(s, tid, "alice", sl_wallclock(NULL), record, &a);
    assert_true(wait_until(answered, &a));
    return a.status;
}

static int rev_token(sl_revocation_store *s, const char *tid)
{
    answer a = {0};
    sl_revocation_revoke(s, tid, NULL, "test", 0, record, &a);
    assert_true(wait_until(answered, &a));
    return a.status;
}

static void close_all(sl_revocation_store *a, sl_revocation_store *b)
{
    sl_revocation_store_free(a);
    sl_revocation_store_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A reply's integer (EXISTS), in db (SELECT first on the same connection). */
static long long exists_in(int db, const char *key)
{
    redisContext *c = test_redis_admin(&R);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "SELECT %d", db);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* One server for every test, started by the first that needs it. */
static void need_redis(void)
{
    NEED_DEP(R.pid > 0 || test_redis_start(&R) == 0, "redis-server (scripts/deps installs it)");
}

/* Two stores (two nodes) on one password-protected Redis: one revokes, the other's check sees it
 * and its watcher is told, through a subscription connection that had to authenticate too. */
static void exercise(const char *url, const char *prefix, int db)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    logbuf log = {0};
    sl_revocation_store *a = open_url(url, prefix), *b = open_url(url, prefix);
    sl_revocation_set_log(a, log_line, &log);
    sl_revocation_set_log(b, log_line, &log);
    events ev = {0};
    sl_revocation_set_watch(b, on_event, &ev);
    assert_true(wait_until(is_ready, a));
    assert_true(wait_until(is_ready, b));
    assert_true(wait_until(resynced, &ev));
    assert_int_equal(chk(b, "tok-1"), SL_OK);
    assert_int_equal(rev_token(a, "tok-1"), SL_OK);
    assert_int_equal(chk(b, "tok-1"), SL_ETOKEN);
    assert_true(wait_until(got_token, &ev));
    assert_string_equal(ev.last, "tok-1");
    char key[128];
    snprintf(key, sizeof key, "%s:tb:revoked:tok-1", prefix);
    assert_int_equal(exists_in(db, key), 1);
    if (db != 0)
        assert_int_equal(exists_in(0, key), 0);
    assert_null(strstr(log.text, PASSWORD));
    close_all(a, b);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_requirepass(void **state)
{
    (void)state;
    need_redis();
    char url[160];
    test_redis_url(&R, url, sizeof url); /* redis://:PASSWORD@127.0.0.1:PORT */
    exercise(url, "ra1", 0);
}

/* An ACL user (AUTH user password) holding only what the store needs (docs/REVOCATION.md): GET,
 * SET, PUBLISH on its keys and channel, SUBSCRIBE for the watch and the connection's probe,
 * PING. A password with '@' and ':' travels percent-encoded. */
static void test_acl_user(void **state)
{
    (void)state;
    need_redis();
    redisReply *r = test_redis_cmd(&R, "ACL SETUSER revoker on >acl-p@ss:word resetkeys ~ra2:tb:* "
                                       "resetchannels &ra2:tb:revocations &__sluice:rsub:probe "
                                       "-@all +get +set +publish +subscribe +unsubscribe +ping");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    char url[160];
    snprintf(url, sizeof url, "redis://revoker:acl-p%%40ss%%3Aword@127.0.0.1:%d", R.port);
    exercise(url, "ra2", 0);
    r = test_redis_cmd(&R, "ACL DELUSER revoker");
    freeReplyObject(r);
}

/* SELECT: the keys are in the URL's db and not in db 0; events flow on the db's own channel name
 * (Redis pub/sub ignores the db, so the name carries it). */
static void test_select_db(void **state)
{
    (void)state;
    need_redis();
    char url[160];
    snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d/3", PASSWORD, R.port);
    exercise(url, "ra3", 3);
}

/* A password Redis refuses: both connections stay down, every call answers SL_EUNAVAIL, the log
 * says AUTH was refused and holds neither the password sent nor the right one. */
static void test_wrong_password(void **state)
{
    (void)state;
    need_redis();
    assert_int_equal(uv_loop_init(&loop), 0);
    char url[160];
    snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d", WRONG, R.port);
    logbuf log = {0};
    sl_revocation_store *s = open_url(url, "ra4");
    sl_revocation_set_log(s, log_line, &log);
    events ev = {0};
    sl_revocation_set_watch(s, on_event, &ev);
    auth_refused_in = "watch subscription unavailable (AUTH refused";
    assert_true(wait_until(logged_auth_refused, &log));
    auth_refused_in = "unavailable (AUTH refused";
    assert_true(wait_until(logged_auth_refused, &log));
    assert_false(sl_revocation_ready(s));
    assert_int_equal(chk(s, "tok-1"), SL_EUNAVAIL);
    assert_int_equal(rev_token(s, "tok-1"), SL_EUNAVAIL);
    assert_int_equal(ev.resyncs, 0);
    assert_null(strstr(log.text, WRONG));
    assert_null(strstr(log.text, PASSWORD));
    /* The same with a user: AUTH user password refused. */
    sl_revocation_store *u;
    snprintf(url, sizeof url, "redis://nobody:%s@127.0.0.1:%d", WRONG, R.port);
    u = open_url(url, "ra4");
    logbuf ulog = {0};
    sl_revocation_set_log(u, log_line, &ulog);
    auth_refused_in = "unavailable (AUTH refused";
    assert_true(wait_until(logged_auth_refused, &ulog));
    assert_int_equal(chk(u, "tok-1"), SL_EUNAVAIL);
    assert_null(strstr(ulog.text, WRONG));
    close_all(s, u);
}

/* No password at all against requirepass: refused the same way (NOAUTH on PING). */
static void test_no_password(void **state)
{
    (void)state;
    need_redis();
    assert_int_equal(uv_loop_init(&loop), 0);
    char url[160];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", R.port);
    logbuf log = {0};
    sl_revocation_store *s = open_url(url, "ra5");
    sl_revocation_set_log(s, log_line, &log);
    auth_refused_in = "unavailable";
    assert_true(wait_until(logged_auth_refused, &log));
    assert_int_equal(chk(s, "tok-1"), SL_EUNAVAIL);
    assert_null(strstr(log.text, PASSWORD));
    close_all(s, NULL);
}

/* URLs the store cannot use: SL_EINVAL, nothing made, a reason without the password. */
static void test_bad_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"redis://:" WRONG "@127.0.0.1:6379,redis://127.0.0.1:6380",
         "one Redis, not a list of shards"},
        {"redis://:" WRONG "%zz@127.0.0.1:6379", "malformed percent-escape in the password"},
        {"redis://" WRONG "%4@127.0.0.1:6379", "credentials must be"},
        {"redis://u%4:" WRONG "@127.0.0.1:6379", "malformed percent-escape in the user"},
        {"redis://:" WRONG "@127.0.0.1:6379/16", "db must be 0..15"},
        {"redis://:" WRONG "@127.0.0.1:0", "port must be 1..65535"},
        {"redis://:" WRONG "@/0", "empty host"},
        {"rediss://:" WRONG "@127.0.0.1", "rediss://"},
        {"http://:" WRONG "@127.0.0.1", "expected redis://"},
        {"redis://:" WRONG "@127.0.0.1 x", "unexpected characters"},
        {"", "empty"},
    };
    assert_int_equal(uv_loop_init(&loop), 0);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sl_revocation_store *s = (sl_revocation_store *)&loop; /* must be cleared */
        sl_status st;
        sl_status_clear(&st);
        int rc = sl_revocation_redis_new_url(&s, &loop, cases[i].url, NULL, 60, NULL, NULL, &st);
        if (rc != SL_EINVAL || s != NULL || strstr(st.message, cases[i].want) == NULL ||
            strstr(st.message, WRONG) != NULL)
            fail_msg("case %zu: rc %d, reason '%s'", i, rc, st.message);
        assert_non_null(strstr(st.message, "revocation URL"));
    }
    sl_revocation_store *s = NULL;
    /* st may be NULL; the other arguments as sl_revocation_redis_new checks them */
    assert_int_equal(sl_revocation_redis_new_url(&s, &loop, NULL, NULL, 60, NULL, NULL, NULL),
                     SL_EINVAL);
    assert_int_equal(sl_revocation_redis_new_url(&s, NULL, "redis://h", NULL, 60, NULL, NULL, NULL),
                     SL_EINVAL);
    assert_int_equal(
        sl_revocation_redis_new_url(&s, &loop, "redis://h", "a b", 60, NULL, NULL, NULL),
        SL_EINVAL);
    assert_int_equal(
        sl_revocation_redis_new_url(NULL, &loop, "redis://h", NULL, 60, NULL, NULL, NULL),
        SL_EINVAL);
    assert_null(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int teardown(void **state)
{
    (void)state;
    test_redis_stop(&R);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),       cmocka_unit_test(test_requirepass),
        cmocka_unit_test(test_acl_user),       cmocka_unit_test(test_select_db),
        cmocka_unit_test(test_wrong_password), cmocka_unit_test(test_no_password),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
