/* The Redis revocation store against a real redis-server that the test starts on a free loopback
 * port (no persistence) and stops itself: revoke and check, the user cut-off, the exact keys,
 * values and TTLs, stored values that are malformed or of the wrong type (revoked), the default
 * prefix, fail-closed answers while Redis is down or hung (SIGKILL, SIGTERM, SIGSTOP), recovery on
 * the same port without recreating the store, and closing with calls in flight, also from inside a
 * callback. A synchronous hiredis connection plays the operator who inspects or plants keys.
 * Skips when redis-server is not installed (scripts/deps installs it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <sluice/revocation.h>

static const char MALFORMED[] = "malformed revocation record";

static int have_redis;
static pid_t redis_pid;
static int redis_port;
static char redis_dir[64];

/* ---- the redis-server under test ------------------------------------------------------------ */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *admin(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (c != NULL && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int start_redis(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", redis_dir, "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    redis_pid = pid;
    for (int i = 0; i < 500; i++) { /* up to 5 s */
        redisContext *c = admin();
        if (c != NULL) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            redis_pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

static void stop_redis(int sig)
{
    if (redis_pid <= 0)
        return;
    if (sig == SIGSTOP || sig == SIGCONT) {
        kill(redis_pid, sig);
        return;
    }
    kill(redis_pid, SIGCONT);
    kill(redis_pid, sig);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
}

static void at_exit_kill(void)
{
    stop_redis(SIGKILL);
}

static int group_setup(void **state)
{
    (void)state;
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-server not found (scripts/deps installs it): skipping\n");
        return 0;
    }
    snprintf(redis_dir, sizeof redis_dir, "/tmp/sluice-redis-XXXXXX");
    if (mkdtemp(redis_dir) == NULL)
        return -1;
    if ((redis_port = free_port()) <= 0)
        return -1;
    atexit(at_exit_kill);
    if (start_redis() != 0) {
        fprintf(stderr, "cannot start redis-server on 127.0.0.1:%d\n", redis_port);
        return -1;
    }
    have_redis = 1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    stop_redis(SIGKILL);
    if (redis_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", redis_dir);
    }
    return 0;
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!have_redis)                                                                           \
            skip();                                                                                \
    } while (0)

/* Runs cmd on the admin connection and returns the reply (the caller frees it). */
static redisReply *cmd(const char *fmt, ...)
{
    redisContext *c = admin();
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(r);
    return r;
}

static void assert_get(const char *key, const char *want)
{
    redisReply *r = cmd("GET %s", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

static long long ttl_of(const char *key)
{
    redisReply *r = cmd("TTL %s", key);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long t = r->integer;
    freeReplyObject(r);
    return t;
}

static void plant(const char *type, const char *key, const char *value)
{
    redisReply *r = cmd("DEL %s", key);
    freeReplyObject(r);
    if (strcmp(type, "string") == 0)
        r = cmd("SET %s %s", key, value);
    else if (strcmp(type, "list") == 0)
        r = cmd("RPUSH %s %s", key, value);
    else
        r = cmd("HSET %s f %s", key, value);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static uv_loop_t loop;

typedef struct answer {
    int calls;
    int status;
    char reason[300];
} answer;

static void record(void *ud, int status, const char *reason)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred(arg) or timeout_ms; returns pred(arg). A ticking timer keeps the loop
 * from blocking past the deadline. */
static int wait_until(int (*pred)(void *), void *arg, uint64_t timeout_ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    uv_update_time(&loop);
    uint64_t deadline = uv_now(&loop) + timeout_ms;
    while (!pred(arg) && uv_now(&loop) < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return pred(arg);
}

static int answered(void *arg)
{
    return ((answer *)arg)->calls > 0;
}

static int is_ready(void *arg)
{
    return sl_revocation_ready(arg);
}

static int not_ready(void *arg)
{
    return !sl_revocation_ready(arg);
}

static sl_revocation_store *open_store(const char *prefix, double max_ttl, sl_clock_fn clock)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_revocation_store *s;
    assert_int_equal(
        sl_revocation_redis_new(&s, &loop, "127.0.0.1", redis_port, prefix, max_ttl, clock, NULL),
        SL_OK);
    assert_string_equal(sl_revocation_store_name(s), "redis");
    assert_true(wait_until(is_ready, s, 3000));
    return s;
}

/* Frees the store, lets the loop run the close callbacks and proves nothing was left behind. */
static void close_store(sl_revocation_store *s)
{
    sl_revocation_store_free(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static answer chk(sl_revocation_store *s, const char *tid, const char *user, double iat)
{
    answer a = {0};
    sl_revocation_check(s, tid, user, iat, record, &a);
    assert_true(wait_until(answered, &a, 3000));
    assert_int_equal(a.calls, 1);
    return a;
}

static int rev_token(sl_revocation_store *s, const char *tid, const char *reason, double exp)
{
    answer a = {0};
    sl_revocation_revoke(s, tid, NULL, reason, exp, record, &a);
    assert_true(wait_until(answered, &a, 3000));
    return a.status;
}

static int rev_user(sl_revocation_store *s, const char *user)
{
    answer a = {0};
    sl_revocation_revoke_user(s, user, record, &a);
    assert_true(wait_until(answered, &a, 3000));
    return a.status;
}

static double pinned_now;
static double pinned(void *ud)
{
    (void)ud;
    return pinned_now;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_revoke_and_check(void **state)
{
    (void)state;
    NEED_REDIS();
    double now = sl_wallclock(NULL);
    sl_revocation_store *s = open_store("rt1", 3600, NULL);
    assert_int_equal(chk(s, "tok-1", "alice", now).status, SL_OK);
    assert_int_equal(rev_token(s, "tok-1", "compromised laptop", now + 600), SL_OK);
    answer a = chk(s, "tok-1", "alice", now);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "compromised laptop");
    assert_int_equal(chk(s, "tok-2", "alice", now).status, SL_OK);

    /* Keys, values, TTLs: remaining lifetime, capped at max_ttl, at least 1 s. */
    assert_get("rt1:tb:revoked:tok-1", "compromised laptop");
    long long t = ttl_of("rt1:tb:revoked:tok-1");
    assert_true(t > 590 && t <= 600);
    assert_int_equal(rev_token(s, "tok-long", NULL, now + 1e6), SL_OK);
    assert_get("rt1:tb:revoked:tok-long", "revoked");
    t = ttl_of("rt1:tb:revoked:tok-long");
    assert_true(t > 3590 && t <= 3600);
    assert_int_equal(rev_token(s, "tok-noexp", "r", 0), SL_OK);
    t = ttl_of("rt1:tb:revoked:tok-noexp");
    assert_true(t > 3590 && t <= 3600);
    assert_int_equal(rev_token(s, "tok-past", "r", now - 100), SL_OK);
    t = ttl_of("rt1:tb:revoked:tok-past");
    assert_true(t > 0 && t <= 1);
    /* Ids are Redis-key safe: anything else is refused before Redis sees it. */
    assert_int_equal(rev_token(s, "tok 1", "r", 0), SL_EINVAL);
    assert_int_equal(chk(s, "tok\r\n1", "alice", now).status, SL_EINVAL);
    redisReply *r = cmd("KEYS rt1:*");
    assert_int_equal(r->elements, 4);
    freeReplyObject(r);
    close_store(s);
}

static void test_user_cutoff(void **state)
{
    (void)state;
    NEED_REDIS();
    pinned_now = 1700000000.25;
    sl_revocation_store *s = open_store("rt2", 7200, pinned);
    assert_int_equal(rev_user(s, "alice"), SL_OK);
    assert_get("rt2:tb:user_revoked_at:alice", "1700000000.250");
    long long t = ttl_of("rt2:tb:user_revoked_at:alice");
    assert_true(t > 7190 && t <= 7200);
    answer a = chk(s, "a1", "alice", 1700000000 - 100);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "all tokens of the user revoked");
    assert_int_equal(chk(s, "a2", "alice", 1700000000.25).status, SL_ETOKEN);
    assert_int_equal(chk(s, "a3", "alice", 1700000001).status, SL_OK);
    assert_int_equal(chk(s, NULL, "alice", 0).status, SL_ETOKEN); /* unknown iat */
    assert_int_equal(chk(s, "", "alice", 1700000001).status, SL_OK);
    assert_int_equal(chk(s, "a1", "bob", 1).status, SL_OK);
    /* Token id and cut-off in one call: a revoked id on a fresh token. */
    assert_int_equal(rev_token(s, "a3", "single", 0), SL_OK);
    a = chk(s, "a3", "alice", 1700000001);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "single");
    close_store(s);
}

static void test_malformed(void **state)
{
    (void)state;
    NEED_REDIS();
    sl_revocation_store *s = open_store("rt3", 0, NULL);
    assert_true(sl_revocation_max_ttl(s) == SL_REVOCATION_DEFAULT_MAX_TTL);
    const char *ukey = "rt3:tb:user_revoked_at:carol";
    const char *bad[] = {"garbage", "", "-5", "1e10", "inf", "nan", "12.", " 12", "0x10", "1,5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        plant("string", ukey, bad[i]);
        answer a = chk(s, "c1", "carol", 1e12);
        assert_int_equal(a.status, SL_ETOKEN);
        assert_string_equal(a.reason, MALFORMED);
    }
    /* Well-formed cut-offs parse: not revoked when issued later. */
    plant("string", ukey, "100.5");
    assert_int_equal(chk(s, "c1", "carol", 200).status, SL_OK);
    assert_int_equal(chk(s, "c1", "carol", 100.5).status, SL_ETOKEN);
    plant("string", ukey, "100");
    assert_int_equal(chk(s, "c1", "carol", 101).status, SL_OK);
    /* Keys of another type. */
    plant("list", ukey, "x");
    assert_int_equal(chk(s, "c1", "carol", 1e12).status, SL_ETOKEN);
    plant("hash", ukey, "x");
    assert_int_equal(chk(s, "c1", "carol", 1e12).status, SL_ETOKEN);
    freeReplyObject(cmd("DEL %s", ukey));
    /* Token records: any string revokes; an unprintable one gets a fixed reason. */
    const char *tkey = "rt3:tb:revoked:c2";
    plant("string", tkey, "bad\nreason\x1b[2J");
    answer a = chk(s, "c2", "dan", 1);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, MALFORMED);
    plant("string", tkey, "");
    a = chk(s, "c2", "dan", 1);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "revoked");
    plant("list", tkey, "x");
    assert_int_equal(chk(s, "c2", "dan", 1).status, SL_ETOKEN);
    close_store(s);
    redisReply *r = cmd("DEL %s %s", ukey, tkey);
    freeReplyObject(r);
}

static void test_default_prefix(void **state)
{
    (void)state;
    NEED_REDIS();
    sl_revocation_store *s = open_store(NULL, 60, NULL);
    assert_int_equal(rev_token(s, "prefix-default", "r", 0), SL_OK);
    assert_get("sluice:tb:revoked:prefix-default", "r");
    assert_int_equal(rev_user(s, "prefix-user"), SL_OK);
    assert_true(ttl_of("sluice:tb:user_revoked_at:prefix-user") > 0);
    close_store(s);
    redisReply *r =
        cmd("DEL sluice:tb:revoked:prefix-default sluice:tb:user_revoked_at:prefix-user");
    freeReplyObject(r);
}

typedef struct log_lines {
    int up, down, other;
    int leaked; /* a line that mentioned a token id or a reason */
} log_lines;

static void log_sink(void *ud, const char *line)
{
    log_lines *l = ud;
    if (strstr(line, "connected"))
        l->up++;
    else if (strstr(line, "unavailable"))
        l->down++;
    else
        l->other++;
    if (strstr(line, "tok-") || strstr(line, "secret"))
        l->leaked++;
}

static void test_outage_and_recovery(void **state)
{
    (void)state;
    NEED_REDIS();
    sl_revocation_store *s = open_store("rt4", 600, NULL);
    log_lines log = {0};
    sl_revocation_set_log(s, log_sink, &log);
    double now = sl_wallclock(NULL);
    assert_int_equal(rev_token(s, "tok-out", "secret reason", now + 300), SL_OK);

    /* A check in flight when Redis dies is answered SL_EUNAVAIL, promptly. */
    answer a = {0};
    sl_revocation_check(s, "tok-out", "alice", now, record, &a);
    stop_redis(SIGKILL);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    assert_true(wait_until(answered, &a, 2000));
    assert_int_equal(a.status, SL_EUNAVAIL);
    assert_true(wait_until(not_ready, s, 2000));
    assert_true(uv_now(&loop) - t0 < 500);
    /* While down, every call answers at once (synchronously), including writes. */
    answer b = {0};
    sl_revocation_check(s, "tok-other", "alice", now, record, &b);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, SL_EUNAVAIL);
    answer c = {0};
    sl_revocation_revoke_user(s, "alice", record, &c);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, SL_EUNAVAIL);
    /* Some retries fail while it stays down. */
    answer never = {0};
    wait_until(answered, &never, 700);
    assert_false(sl_revocation_ready(s));

    /* Back on the same port (empty: no persistence): the same store serves again. */
    assert_int_equal(start_redis(), 0);
    assert_true(wait_until(is_ready, s, 4000));
    assert_int_equal(chk(s, "tok-out", "alice", now).status, SL_OK);
    assert_int_equal(rev_token(s, "tok-out", "again", now + 300), SL_OK);
    assert_int_equal(chk(s, "tok-out", "alice", now).status, SL_ETOKEN);

    /* A graceful stop (SIGTERM) while idle is noticed without any traffic. */
    stop_redis(SIGTERM);
    assert_true(wait_until(not_ready, s, 1000));
    assert_int_equal(chk(s, "tok-out", "alice", now).status, SL_EUNAVAIL);
    assert_int_equal(start_redis(), 0);
    assert_true(wait_until(is_ready, s, 4000));
    assert_int_equal(chk(s, "tok-out", "alice", now).status, SL_OK);

    /* One line per transition, never a token id or reason. */
    assert_int_equal(log.down, 2);
    assert_int_equal(log.up, 2);
    assert_int_equal(log.other, 0);
    assert_int_equal(log.leaked, 0);
    close_store(s);
}

static void test_hung_redis(void **state)
{
    (void)state;
    NEED_REDIS();
    sl_revocation_store *s = open_store("rt5", 600, NULL);
    double now = sl_wallclock(NULL);
    stop_redis(SIGSTOP);
    answer a = {0};
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    sl_revocation_check(s, "tok-hung", "alice", now, record, &a);
    assert_true(wait_until(answered, &a, 3000));
    uint64_t took = uv_now(&loop) - t0;
    assert_int_equal(a.status, SL_EUNAVAIL);
    assert_true(took >= SL_REVOCATION_REDIS_COMMAND_TIMEOUT_MS - 50 &&
                took < SL_REVOCATION_REDIS_COMMAND_TIMEOUT_MS + 500);
    /* Reconnects reach the kernel's backlog but no PONG: still not ready, answers at once. */
    answer never = {0};
    wait_until(answered, &never, 1500);
    assert_false(sl_revocation_ready(s));
    answer b = {0};
    sl_revocation_check(s, "tok-hung", "alice", now, record, &b);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, SL_EUNAVAIL);
    stop_redis(SIGCONT);
    assert_true(wait_until(is_ready, s, 5000));
    assert_int_equal(chk(s, "tok-hung", "alice", now).status, SL_OK);
    close_store(s);
}

static void test_unreachable_at_start(void **state)
{
    (void)state;
    NEED_REDIS();
    stop_redis(SIGKILL);
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_revocation_store *s;
    assert_int_equal(
        sl_revocation_redis_new(&s, &loop, "127.0.0.1", redis_port, "rt6", 60, NULL, NULL), SL_OK);
    assert_false(sl_revocation_ready(s));
    answer a = {0};
    sl_revocation_check(s, "t", "alice", 1, record, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_EUNAVAIL);
    answer never = {0};
    wait_until(answered, &never, 300);
    assert_false(sl_revocation_ready(s));
    assert_int_equal(start_redis(), 0);
    assert_true(wait_until(is_ready, s, 4000));
    assert_int_equal(chk(s, "t", "alice", 1).status, SL_OK);
    close_store(s);
}

static void test_free_with_pending(void **state)
{
    (void)state;
    NEED_REDIS();
    sl_revocation_store *s = open_store("rt7", 60, NULL);
    answer a[4] = {0};
    sl_revocation_check(s, "p1", "alice", 1, record, &a[0]);
    sl_revocation_check(s, NULL, "alice", 1, record, &a[1]);
    sl_revocation_revoke(s, "p2", "alice", "r", 0, record, &a[2]);
    sl_revocation_revoke_user(s, "alice", record, &a[3]);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i].calls, 0);
    sl_revocation_store_free(s);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a[i].calls, 1);
        assert_int_equal(a[i].status, SL_EUNAVAIL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i].calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct freeing {
    sl_revocation_store *s;
    answer first;
    answer others[3];
} freeing;

static void free_on_answer(void *ud, int status, const char *reason)
{
    freeing *f = ud;
    record(&f->first, status, reason);
    /* Inside a hiredis reply callback: the store defers nothing it promised. */
    sl_revocation_store_free(f->s);
    /* Calls after free are impossible (the store is gone); calls made during it fail closed. */
}

static void test_free_in_callback(void **state)
{
    (void)state;
    NEED_REDIS();
    freeing f = {0};
    f.s = open_store("rt8", 60, NULL);
    sl_revocation_check(f.s, "f1", "alice", 1, free_on_answer, &f);
    for (int i = 0; i < 3; i++)
        sl_revocation_check(f.s, "f2", "alice", 1, record, &f.others[i]);
    assert_true(wait_until(answered, &f.first, 3000));
    assert_int_equal(f.first.status, SL_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f.others[i].calls, 1);
        assert_int_equal(f.others[i].status, SL_EUNAVAIL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(f.first.calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revoke_and_check),
        cmocka_unit_test(test_user_cutoff),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_default_prefix),
        cmocka_unit_test(test_outage_and_recovery),
        cmocka_unit_test(test_hung_redis),
        cmocka_unit_test(test_unreachable_at_start),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_free_in_callback),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
