/* The Redis revocation store against a real redis-server that the test starts on a free loopback
 * port (no persistence) and stops itself: revoke and check, the user cut-off, the exact keys,
 * values and TTLs, stored values that are malformed or of the wrong type (revoked), the default
 * prefix, fail-closed answers while Redis is down or hung (SIGKILL, SIGTERM, SIGSTOP), recovery on
 * the same port without recreating the store, and closing with calls in flight, also from inside a
 * callback. Watching: two stores on one Redis see each other's revocations (and their own, once)
 * through the pub/sub channel, with the documented message format; a resync follows every
 * (re)subscription, after a kill and after a hang; garbage on the channel is ignored; freeing
 * with a subscription pending or live leaves nothing behind; stores on other dbs of one Redis do
 * not hear each other, and a prefix with '@' is refused. A synchronous hiredis connection
 * plays the operator who inspects or plants keys and publishes by hand. Without redis-server
 * (scripts/deps installs it) every test fails under the project's test command and is skipped
 * otherwise (tests/unit/deps.h). Events are awaited with a generous bound (WAIT_MS), never timed:
 * how fast revocations travel is measured by bench/revocation.sh. */
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

#include "store/redis_internal.h"
#include "deps.h"

/* How long a test waits for something that must happen: generous, because a loaded machine under
 * the sanitizers can be slow, and never a statement about speed. */
#define WAIT_MS 30000

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
    for (int i = 0; i < WAIT_MS / 10; i++) {
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
        fprintf(stderr, "redis-server not found (scripts/deps installs it)\n");
        return 0; /* each test then fails or skips (NEED_REDIS) */
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
        NEED_DEP(have_redis, "redis-server (scripts/deps installs it)");                           \
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

/* A store on the loop as it is (a second node beside the first). */
static sl_revocation_store *open_another(const char *prefix, double max_ttl, sl_clock_fn clock);

static sl_revocation_store *open_store(const char *prefix, double max_ttl, sl_clock_fn clock)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    return open_another(prefix, max_ttl, clock);
}

static sl_revocation_store *open_another(const char *prefix, double max_ttl, sl_clock_fn clock)
{
    sl_revocation_store *s;
    assert_int_equal(
        sl_revocation_redis_new(&s, &loop, "127.0.0.1", redis_port, prefix, max_ttl, clock, NULL),
        SL_OK);
    assert_string_equal(sl_revocation_store_name(s), "redis");
    assert_true(wait_until(is_ready, s, WAIT_MS));
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
    assert_true(wait_until(answered, &a, WAIT_MS));
    assert_int_equal(a.calls, 1);
    return a;
}

static int rev_token(sl_revocation_store *s, const char *tid, const char *reason, double exp)
{
    answer a = {0};
    sl_revocation_revoke(s, tid, NULL, reason, exp, record, &a);
    assert_true(wait_until(answered, &a, WAIT_MS));
    return a.status;
}

static int rev_user(sl_revocation_store *s, const char *user)
{
    answer a = {0};
    sl_revocation_revoke_user(s, user, record, &a);
    assert_true(wait_until(answered, &a, WAIT_MS));
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

/* GET calls Redis has run (INFO commandstats). */
static long long gets_run(void)
{
    redisReply *r = cmd("INFO commandstats");
    assert_non_null(r);
    const char *p = strstr(r->str, "cmdstat_get:calls=");
    long long n = p ? strtoll(p + 18, NULL, 10) : 0;
    freeReplyObject(r);
    return n;
}

static int all_answered(void *arg)
{
    answer *a = arg;
    for (int i = 0; i < 4; i++)
        if (a[i].calls == 0)
            return 0;
    return 1;
}

/* Checks of one loop turn that name the same token and user share one pair of GETs, sent after
 * the last of them arrived; each is still judged on its own issued_at, and answered once. */
static void test_checks_of_one_turn_share_a_lookup(void **state)
{
    (void)state;
    NEED_REDIS();
    pinned_now = 1700000000;
    sl_revocation_store *s = open_store("rt9", 7200, pinned);
    assert_int_equal(rev_user(s, "dora"), SL_OK);
    long long before = gets_run();
    answer a[4] = {{0}};
    sl_revocation_check(s, "d1", "dora", 1700000000 - 5, record, &a[0]); /* before the cut-off */
    sl_revocation_check(s, "d1", "dora", 1700000000 + 5, record, &a[1]); /* after it */
    sl_revocation_check(s, "d1", "dora", 1700000000 + 9, record, &a[2]);
    sl_revocation_check(s, "d2", "dora", 1700000000 + 9, record, &a[3]); /* other keys */
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i].calls, 0); /* nothing answers before the loop runs */
    assert_true(wait_until(all_answered, a, WAIT_MS));
    assert_int_equal(a[0].status, SL_ETOKEN);
    assert_string_equal(a[0].reason, "all tokens of the user revoked");
    assert_int_equal(a[1].status, SL_OK);
    assert_int_equal(a[2].status, SL_OK);
    assert_int_equal(a[3].status, SL_OK);
    assert_int_equal(gets_run() - before, 4); /* d1's pair once, d2's pair */
    /* A revocation between turns is seen by the next one's lookup. */
    assert_int_equal(rev_token(s, "d1", "gone", 0), SL_OK);
    answer b = chk(s, "d1", "dora", 1700000000 + 9);
    assert_int_equal(b.status, SL_ETOKEN);
    assert_string_equal(b.reason, "gone");
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i].calls, 1);
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
    int ignored;    /* "ignored" a message on the watch channel (also counted in other) */
    int watch_down; /* the watch subscription was dropped (also counted in down) */
    int leaked;     /* a line that mentioned a token id, user or reason */
} log_lines;

static void log_sink(void *ud, const char *line)
{
    log_lines *l = ud;
    if (strstr(line, "ignored"))
        l->ignored++;
    if (strstr(line, "watch subscription unavailable"))
        l->watch_down++;
    if (strstr(line, "connected"))
        l->up++;
    else if (strstr(line, "unavailable"))
        l->down++;
    else
        l->other++;
    if (strstr(line, "tok-") || strstr(line, "secret") || strstr(line, "hidden") ||
        strstr(line, "by-hand") || strstr(line, "AAAA") || strstr(line, "bob"))
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

    /* A check in flight when Redis dies is answered SL_EUNAVAIL. */
    answer a = {0};
    sl_revocation_check(s, "tok-out", "alice", now, record, &a);
    stop_redis(SIGKILL);
    assert_true(wait_until(answered, &a, WAIT_MS));
    assert_int_equal(a.status, SL_EUNAVAIL);
    assert_true(wait_until(not_ready, s, WAIT_MS));
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
    assert_true(wait_until(is_ready, s, WAIT_MS));
    assert_int_equal(chk(s, "tok-out", "alice", now).status, SL_OK);
    assert_int_equal(rev_token(s, "tok-out", "again", now + 300), SL_OK);
    assert_int_equal(chk(s, "tok-out", "alice", now).status, SL_ETOKEN);

    /* A graceful stop (SIGTERM) while idle is noticed without any traffic. */
    stop_redis(SIGTERM);
    assert_true(wait_until(not_ready, s, WAIT_MS));
    assert_int_equal(chk(s, "tok-out", "alice", now).status, SL_EUNAVAIL);
    assert_int_equal(start_redis(), 0);
    assert_true(wait_until(is_ready, s, WAIT_MS));
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
    assert_true(wait_until(answered, &a, WAIT_MS));
    uint64_t took = uv_now(&loop) - t0;
    assert_int_equal(a.status, SL_EUNAVAIL);
    /* By the command timeout, not before it (a hung Redis never answers; no upper bound: a loaded
     * machine may run the timer late). */
    assert_true(took >= SL_REVOCATION_REDIS_COMMAND_TIMEOUT_MS - 50);
    /* Reconnects reach the kernel's backlog but no PONG: still not ready, answers at once. */
    answer never = {0};
    wait_until(answered, &never, 1500);
    assert_false(sl_revocation_ready(s));
    answer b = {0};
    sl_revocation_check(s, "tok-hung", "alice", now, record, &b);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, SL_EUNAVAIL);
    stop_redis(SIGCONT);
    assert_true(wait_until(is_ready, s, WAIT_MS));
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
    assert_true(wait_until(is_ready, s, WAIT_MS));
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
    assert_true(wait_until(answered, &f.first, WAIT_MS));
    assert_int_equal(f.first.status, SL_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f.others[i].calls, 1);
        assert_int_equal(f.others[i].status, SL_EUNAVAIL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(f.first.calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- watching ------------------------------------------------------------------------------- */

#define MAX_SEEN 64

typedef struct seen_event {
    char token_id[SL_TOKEN_ID_MAX + 1];
    char user[SL_PRINCIPAL_MAX + 1];
    double cutoff;
    int resync;
} seen_event;

/* What one store's watcher reported. */
typedef struct watched {
    sl_revocation_store *s;
    int n, resyncs;
    seen_event ev[MAX_SEEN];
    /* a check from inside the watcher, to prove the record is readable when the event arrives */
    int check_calls, check_status;
} watched;

static void on_check_from_watcher(void *ud, int status, const char *reason)
{
    (void)reason;
    watched *w = ud;
    w->check_calls++;
    w->check_status = status;
}

static void watcher(void *ud, const sl_revocation_event *ev)
{
    watched *w = ud;
    assert_true(w->n < MAX_SEEN);
    assert_int_equal((ev->token_id != NULL) + (ev->user != NULL) + (ev->resync != 0), 1);
    seen_event *e = &w->ev[w->n++];
    memset(e, 0, sizeof *e);
    if (ev->token_id) {
        assert_true(sl_revocation_id_valid(ev->token_id));
        snprintf(e->token_id, sizeof e->token_id, "%s", ev->token_id);
        sl_revocation_check(w->s, ev->token_id, "someone", 0, on_check_from_watcher, w);
    }
    if (ev->user) {
        assert_true(sl_principal_valid(ev->user, strlen(ev->user)));
        snprintf(e->user, sizeof e->user, "%s", ev->user);
    }
    e->cutoff = ev->cutoff;
    e->resync = ev->resync;
    w->resyncs += ev->resync;
}

/* How many token events for id (or user events for user) w saw. */
static int count_token(const watched *w, const char *id)
{
    int n = 0;
    for (int i = 0; i < w->n; i++)
        n += strcmp(w->ev[i].token_id, id) == 0;
    return n;
}

static int count_user(const watched *w, const char *user)
{
    int n = 0;
    for (int i = 0; i < w->n; i++)
        n += strcmp(w->ev[i].user, user) == 0;
    return n;
}

typedef struct want {
    const watched *w;
    const char *token_id, *user;
    int resyncs;
} want;

static int got(void *arg)
{
    const want *x = arg;
    if (x->token_id)
        return count_token(x->w, x->token_id) > 0;
    if (x->user)
        return count_user(x->w, x->user) > 0;
    return x->w->resyncs >= x->resyncs;
}

/* Runs the loop until w has seen the event (a generous bound, not a timing assertion). */
static void await_token(const watched *w, const char *id)
{
    want x = {.w = w, .token_id = id};
    assert_true(wait_until(got, &x, WAIT_MS));
}

static void await_user(const watched *w, const char *user)
{
    want x = {.w = w, .user = user};
    assert_true(wait_until(got, &x, WAIT_MS));
}

static void await_resyncs(const watched *w, int n)
{
    want x = {.w = w, .resyncs = n};
    assert_true(wait_until(got, &x, WAIT_MS));
}

static long long subscribers(const char *channel)
{
    redisReply *r = cmd("PUBSUB NUMSUB %s", channel);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    return n;
}

/* Polls Redis (not the loop: a freed store's sockets are closed at once) for up to WAIT_MS. */
static int await_subscribers(const char *channel, long long n)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        if (subscribers(channel) == n)
            return 1;
        sleep_ms(10);
    }
    return 0;
}

static int check_answered(void *arg)
{
    return ((watched *)arg)->check_calls > 0;
}

static void test_watch_two_nodes(void **state)
{
    (void)state;
    NEED_REDIS();
    pinned_now = 1700000000.25;
    sl_revocation_store *a = open_store("rw1", 600, pinned);
    sl_revocation_store *b = open_another("rw1", 600, NULL);
    watched wa = {.s = a}, wb = {.s = b};
    assert_int_equal(subscribers("rw1:tb:revocations"), 0); /* nobody watches: no subscription */
    sl_revocation_set_watch(a, watcher, &wa);
    sl_revocation_set_watch(b, watcher, &wb);
    /* The first confirmed subscription says "resync": from then on nothing is missed silently. */
    await_resyncs(&wa, 1);
    await_resyncs(&wb, 1);
    assert_int_equal(wa.n, 1);
    assert_int_equal(wb.n, 1);
    assert_int_equal(subscribers("rw1:tb:revocations"), 2);

    /* A revokes a token: B hears of it, and its record is already readable then. A hears its own
     * revocation through the subscription, never synchronously inside the call. */
    answer r = {0};
    sl_revocation_revoke(a, "w-tok-1", "alice", "lost phone", 0, record, &r);
    assert_int_equal(r.calls, 0);
    assert_int_equal(wa.n, 1);
    await_token(&wb, "w-tok-1");
    assert_true(wait_until(answered, &r, WAIT_MS));
    assert_int_equal(r.status, SL_OK);
    await_token(&wa, "w-tok-1");
    assert_true(wait_until(check_answered, &wb, WAIT_MS));
    assert_int_equal(wb.check_calls, 1);
    assert_int_equal(wb.check_status, SL_ETOKEN);

    /* A user cut-off, from B this time (wall clock): the cut-off as B wrote it ("%.3f"). */
    double before = sl_wallclock(NULL);
    assert_int_equal(rev_user(b, "w-bob"), SL_OK);
    await_user(&wa, "w-bob");
    await_user(&wb, "w-bob");
    const seen_event *e = &wa.ev[wa.n - 1];
    assert_string_equal(e->user, "w-bob");
    assert_string_equal(e->token_id, "");
    assert_int_equal(e->resync, 0);
    assert_true(e->cutoff >= before - 0.001 && e->cutoff <= sl_wallclock(NULL) + 0.001);
    /* And from A with its pinned clock: the exact value. */
    assert_int_equal(rev_user(a, "w-carol"), SL_OK);
    await_user(&wb, "w-carol");
    assert_true(wb.ev[wb.n - 1].cutoff == 1700000000.25);

    /* Each revocation was reported exactly once to each watcher: pub/sub keeps one connection's
     * messages in order, so a duplicate of an earlier one would have arrived before this one. */
    assert_int_equal(rev_token(b, "w-tok-last", NULL, 0), SL_OK);
    await_token(&wa, "w-tok-last");
    await_token(&wb, "w-tok-last");
    const watched *both[] = {&wa, &wb};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(count_token(both[i], "w-tok-1"), 1);
        assert_int_equal(count_user(both[i], "w-bob"), 1);
        assert_int_equal(count_user(both[i], "w-carol"), 1);
        assert_int_equal(count_token(both[i], "w-tok-last"), 1);
        assert_int_equal(both[i]->resyncs, 1);
        assert_int_equal(both[i]->n, 5);
    }
    /* Failed writes publish nothing. */
    assert_int_equal(rev_token(a, "bad id", NULL, 0), SL_EINVAL);

    /* Removing the watcher closes the subscription; the store still publishes for others. */
    sl_revocation_set_watch(a, NULL, NULL);
    assert_true(await_subscribers("rw1:tb:revocations", 1));
    assert_int_equal(rev_token(a, "w-tok-unwatched", NULL, 0), SL_OK);
    await_token(&wb, "w-tok-unwatched");
    assert_int_equal(count_token(&wa, "w-tok-unwatched"), 0);
    assert_true(sl_revocation_ready(a));

    sl_revocation_store_free(a);
    close_store(b);
    assert_true(await_subscribers("rw1:tb:revocations", 0));
    freeReplyObject(cmd("DEL rw1:tb:user_revoked_at:w-bob rw1:tb:user_revoked_at:w-carol"));
}

/* A store on db of the test's Redis (a deployment that SELECTs it), on the loop as it is. */
static sl_revocation_store *open_on_db(const char *prefix, int db)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/%d", redis_port, db);
    sl_revocation_store *s = NULL;
    sl_status st = {0};
    assert_int_equal(sl_revocation_redis_new_url(&s, &loop, url, prefix, 600, NULL, NULL, &st),
                     SL_OK);
    assert_true(wait_until(is_ready, s, WAIT_MS));
    return s;
}

/* Redis delivers a PUBLISH to every subscriber of the server, whatever db it SELECTed. Two
 * deployments with the same prefix on db 1 (a1, a2) and db 2 (b) of one Redis, and a third on db
 * 0 (c): a revocation reaches the watchers of its own deployment only, on a channel name of its
 * db's (db 0's is the one every earlier release used). Redis hands one subscriber its messages in
 * the order it ran the PUBLISHes, so once b and c hear their own revocation, one of another
 * deployment made before it would have arrived first. */
static void test_watch_dbs_apart(void **state)
{
    (void)state;
    NEED_REDIS();
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_revocation_store *a1 = open_on_db("rdb", 1), *a2 = open_on_db("rdb", 1);
    sl_revocation_store *b = open_on_db("rdb", 2), *c = open_on_db("rdb", 0);
    watched wa2 = {.s = a2}, wb = {.s = b}, wc = {.s = c};
    sl_revocation_set_watch(a2, watcher, &wa2);
    sl_revocation_set_watch(b, watcher, &wb);
    sl_revocation_set_watch(c, watcher, &wc);
    await_resyncs(&wa2, 1);
    await_resyncs(&wb, 1);
    await_resyncs(&wc, 1);
    assert_int_equal(subscribers("rdb:tb:revocations"), 1);
    assert_int_equal(subscribers("rdb@1:tb:revocations"), 1);
    assert_int_equal(subscribers("rdb@2:tb:revocations"), 1);

    assert_int_equal(rev_token(a1, "dbs-tok", NULL, 0), SL_OK);
    assert_int_equal(rev_user(a1, "dbs-user"), SL_OK);
    assert_int_equal(rev_token(b, "dbs-tok-b", NULL, 0), SL_OK);
    assert_int_equal(rev_token(c, "dbs-tok-c", NULL, 0), SL_OK);
    await_user(&wa2, "dbs-user");
    await_token(&wb, "dbs-tok-b");
    await_token(&wc, "dbs-tok-c");
    assert_int_equal(count_token(&wa2, "dbs-tok"), 1);
    assert_int_equal(wa2.n, 3); /* the resync, the token, the user */
    assert_int_equal(wb.n, 2);  /* the resync, its own token */
    assert_int_equal(wc.n, 2);
    assert_int_equal(count_token(&wb, "dbs-tok"), 0);
    assert_int_equal(count_user(&wb, "dbs-user"), 0);
    assert_int_equal(count_token(&wc, "dbs-tok"), 0);
    assert_int_equal(count_user(&wc, "dbs-user"), 0);
    /* The records are apart too (the db scopes keys). */
    assert_int_equal(chk(a2, "dbs-tok", "x", 0).status, SL_ETOKEN);
    assert_int_equal(chk(b, "dbs-tok", "dbs-user", 0).status, SL_OK);

    sl_revocation_store_free(a1);
    sl_revocation_store_free(a2);
    sl_revocation_store_free(b);
    close_store(c);
    freeReplyObject(cmd("FLUSHALL"));
}

/* '@' cannot be part of a prefix: "rdb@1" on db 0 would be "rdb" on db 1 on the watch channel. */
static void test_prefix_without_at(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_revocation_store *s = NULL;
    assert_int_equal(sl_revocation_redis_new(&s, &loop, "127.0.0.1", 6379, "rdb@1", 60, NULL, NULL),
                     SL_EINVAL);
    sl_status st = {0};
    assert_int_equal(
        sl_revocation_redis_new_url(&s, &loop, "redis://127.0.0.1", "a@b", 60, NULL, NULL, &st),
        SL_EINVAL);
    assert_non_null(strstr(st.message, "'@'"));
    assert_null(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* What another program subscribed to the channel reads: the documented message format. */
static void test_watch_message_format(void **state)
{
    (void)state;
    NEED_REDIS();
    pinned_now = 1700000123.5;
    sl_revocation_store *s = open_store("rw2", 600, pinned);
    redisContext *sub = admin();
    assert_non_null(sub);
    redisReply *r = redisCommand(sub, "SUBSCRIBE rw2:tb:revocations");
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(rev_token(s, "fmt-tok", "r", 0), SL_OK);
    assert_int_equal(rev_user(s, "fmt-user"), SL_OK);
    const char *expect[] = {"t fmt-tok", "u 1700000123.500 fmt-user"};
    for (int i = 0; i < 2; i++) {
        void *v = NULL;
        assert_int_equal(redisGetReply(sub, &v), REDIS_OK);
        r = v;
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 3);
        assert_string_equal(r->element[0]->str, "message");
        assert_string_equal(r->element[1]->str, "rw2:tb:revocations");
        assert_string_equal(r->element[2]->str, expect[i]);
        freeReplyObject(r);
    }
    redisFree(sub);
    close_store(s);
}

typedef struct watch_drop {
    const log_lines *log;
    int before;
} watch_drop;

/* The store has logged that its watch subscription dropped (since the count `before`). */
static int watch_dropped(void *arg)
{
    const watch_drop *wd = arg;
    return wd->log->watch_down > wd->before;
}

static void test_watch_resync(void **state)
{
    (void)state;
    NEED_REDIS();
    sl_revocation_store *s = open_store("rw3", 600, NULL);
    log_lines log = {0};
    sl_revocation_set_log(s, log_sink, &log);
    watched w = {.s = s};
    sl_revocation_set_watch(s, watcher, &w);
    await_resyncs(&w, 1);

    /* Killed and restarted: once resubscribed, a resync (events published meanwhile are lost). */
    stop_redis(SIGKILL);
    assert_true(wait_until(not_ready, s, WAIT_MS));
    assert_int_equal(w.resyncs, 1);
    assert_int_equal(start_redis(), 0);
    await_resyncs(&w, 2);
    assert_true(wait_until(is_ready, s, WAIT_MS));
    /* ... and the subscription works again. */
    assert_int_equal(rev_token(s, "rs-tok", NULL, 0), SL_OK);
    await_token(&w, "rs-tok");

    /* A hung Redis (SIGSTOP): the probe goes unanswered, the subscription is dropped, and when
     * Redis answers again the watcher is told to resync. */
    int dropped = log.watch_down;
    stop_redis(SIGSTOP);
    watch_drop wd = {&log, dropped};
    assert_true(wait_until(watch_dropped, &wd, WAIT_MS));
    stop_redis(SIGCONT);
    await_resyncs(&w, 3);
    /* The command connection recovers on its own schedule: it may have dropped too, if the
     * watcher's check of rs-tok was still in flight when Redis stopped. */
    assert_true(wait_until(is_ready, s, WAIT_MS));
    assert_int_equal(rev_token(s, "rs-tok-2", NULL, 0), SL_OK);
    await_token(&w, "rs-tok-2");
    assert_int_equal(w.n, 5);
    /* Lines about the subscription name no token id. */
    assert_int_equal(log.leaked, 0);
    close_store(s);
}

static void test_watch_garbage(void **state)
{
    (void)state;
    NEED_REDIS();
    sl_revocation_store *s = open_store("rw4", 600, NULL);
    log_lines log = {0};
    sl_revocation_set_log(s, log_sink, &log);
    watched w = {.s = s};
    sl_revocation_set_watch(s, watcher, &w);
    await_resyncs(&w, 1);

    char long_id[2 + SL_TOKEN_ID_MAX + 2];
    snprintf(long_id, sizeof long_id, "t ");
    memset(long_id + 2, 'x', SL_TOKEN_ID_MAX + 1);
    long_id[sizeof long_id - 1] = '\0';
    char long_user[6 + SL_PRINCIPAL_MAX + 2];
    snprintf(long_user, sizeof long_user, "u 1.5 ");
    memset(long_user + 6, 'u', SL_PRINCIPAL_MAX + 1);
    long_user[sizeof long_user - 1] = '\0';
    static char huge[100000];
    memset(huge, 'A', sizeof huge - 1);
    const struct {
        const char *p;
        size_t len;
    } bad[] = {
        {"", 0},
        {"t", 1},
        {"t ", 2},
        {"x tok", 5},
        {"T tok", 5},
        {"ttok", 4},
        {"t  tok", 6},
        {"t tok ", 6},
        {"t a b", 5},
        {"t tok\n", 6},
        {"t caf\xc3\xa9", 7},
        {"t tok\0hidden", 12},
        {"u", 1},
        {"u 12", 4},
        {"u 12 ", 5},
        {"u bob", 5},
        {"u abc bob", 9},
        {"u -5 bob", 8},
        {"u 1e9 bob", 9},
        {"u inf bob", 9},
        {"u nan bob", 9},
        {"u 12. bob", 9},
        {"u  12 bob", 9},
        {"u 12 a/b", 8},
        {"u 12 a b", 8},
        {"u 12 bob\0x", 10},
        {long_id, strlen(long_id)},
        {long_user, strlen(long_user)},
        {huge, sizeof huge - 1},
        {"\xff\xfe\x00\x01", 4},
    };
    redisContext *c = admin();
    assert_non_null(c);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        redisReply *r = redisCommand(c, "PUBLISH rw4:tb:revocations %b", bad[i].p, bad[i].len);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(r->integer, 1); /* it did reach the store */
        freeReplyObject(r);
    }
    /* Well-formed messages by hand (an operator's, or a hostile writer's: anyone who can write
     * to this Redis can revoke) are events; longest valid id and user included. */
    long_id[sizeof long_id - 2] = '\0';     /* 127 bytes */
    long_user[sizeof long_user - 2] = '\0'; /* 255 bytes */
    const char *good[] = {long_id, long_user, "u 100 by-hand", "t by-hand"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        redisReply *r = redisCommand(c, "PUBLISH rw4:tb:revocations %s", good[i]);
        assert_non_null(r);
        assert_int_equal(r->integer, 1);
        freeReplyObject(r);
    }
    /* Messages of one connection arrive in order: once the last is in, all the garbage was seen. */
    await_token(&w, "by-hand");
    assert_int_equal(w.n, 5);
    assert_int_equal(w.resyncs, 1);
    assert_string_equal(w.ev[1].token_id, long_id + 2);
    assert_string_equal(w.ev[2].user, long_user + 6);
    assert_true(w.ev[2].cutoff == 1.5);
    assert_string_equal(w.ev[3].user, "by-hand");
    assert_true(w.ev[3].cutoff == 100);
    /* Ignored with a log line (rate-limited), naming nothing from the payload. */
    assert_true(log.ignored >= 1);
    assert_int_equal(log.leaked, 0);
    /* Still subscribed, still serving. */
    assert_int_equal(subscribers("rw4:tb:revocations"), 1);
    /* A PUBLISH alone writes nothing. */
    assert_int_equal(chk(s, "by-hand", "alice", 1).status, SL_OK);
    redisFree(c);
    close_store(s);
}

/* A write Redis takes but whose announcement it refuses is not reported as done: the caller
 * hears SL_EUNAVAIL (and may revoke again), the record stands, a line says why. Redis 7 applies
 * ACL changes to connected clients at once, which makes PUBLISH fail on demand. */
static void test_watch_publish_refused(void **state)
{
    (void)state;
    NEED_REDIS();
    sl_revocation_store *s = open_store("rw6", 600, NULL);
    log_lines log = {0};
    sl_revocation_set_log(s, log_sink, &log);
    redisReply *r = cmd("ACL SETUSER default -publish");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    int status = rev_token(s, "refused-1", NULL, 0);
    int user_status = rev_user(s, "refused-user");
    freeReplyObject(cmd("ACL SETUSER default +publish"));
    assert_int_equal(status, SL_EUNAVAIL);
    assert_int_equal(user_status, SL_EUNAVAIL);
    assert_get("rw6:tb:revoked:refused-1", "revoked");
    assert_int_equal(log.other, 2); /* "publish failed: NOPERM ..." */
    assert_int_equal(log.leaked, 0);
    /* Revoking again announces it. */
    watched w = {.s = s};
    sl_revocation_set_watch(s, watcher, &w);
    await_resyncs(&w, 1);
    assert_int_equal(rev_token(s, "refused-1", NULL, 0), SL_OK);
    await_token(&w, "refused-1");
    close_store(s);
    freeReplyObject(cmd("DEL rw6:tb:user_revoked_at:refused-user"));
}

static void test_watch_free(void **state)
{
    (void)state;
    NEED_REDIS();
    /* Freed while the subscription is still being made. */
    sl_revocation_store *s = open_store("rw5", 60, NULL);
    watched w = {.s = s};
    sl_revocation_set_watch(s, watcher, &w);
    close_store(s);
    assert_int_equal(w.n, 0);

    /* Freed while subscribed, with a write in flight. */
    s = open_store("rw5", 60, NULL);
    memset(&w, 0, sizeof w);
    w.s = s;
    sl_revocation_set_watch(s, watcher, &w);
    await_resyncs(&w, 1);
    answer a = {0};
    sl_revocation_revoke(s, "free-tok", NULL, NULL, 0, record, &a);
    sl_revocation_store_free(s);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_EUNAVAIL);
    int n = w.n;
    uv_run(&loop, UV_RUN_DEFAULT); /* returns: nothing keeps the loop alive */
    assert_int_equal(w.n, n);      /* no event after free */
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(await_subscribers("rw5:tb:revocations", 0));

    /* Watching a store whose Redis is down, then freeing it while it retries. */
    stop_redis(SIGKILL);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(
        sl_revocation_redis_new(&s, &loop, "127.0.0.1", redis_port, "rw5", 60, NULL, NULL), SL_OK);
    memset(&w, 0, sizeof w);
    w.s = s;
    sl_revocation_set_watch(s, watcher, &w);
    answer never = {0};
    wait_until(answered, &never, 300);
    assert_int_equal(w.n, 0);
    close_store(s);
    assert_int_equal(start_redis(), 0);
}

/* One reply parsed by hiredis's reader, as the store's connection gets it. */
static redisReply *reply_of(const char *resp, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;
    assert_int_equal(redisReaderFeed(rd, resp, len), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

/* The store's judgement of replies without a server (the fuzz target's subject): checks, watch
 * replies, watch messages. */
static void test_reply_judgement(void **state)
{
    (void)state;
    const struct {
        const char *resp;
        int is_token, status;
        const char *reason;
    } cases[] = {
        {"$-1\r\n", 1, SL_OK, NULL},
        {"$7\r\nstolen!\r\n", 1, SL_ETOKEN, "stolen!"},
        {"$0\r\n\r\n", 1, SL_ETOKEN, "revoked"},
        {"$3\r\na\tb\r\n", 1, SL_ETOKEN, "malformed revocation record"},
        {"$14\r\n1700000000.250\r\n", 0, SL_OK, NULL}, /* cut-off before issued_at */
        {"$10\r\n1700000001\r\n", 0, SL_ETOKEN, "all tokens of the user revoked"},
        {"$5\r\n1e300\r\n", 0, SL_ETOKEN, "malformed revocation record"},
        {"-LOADING loading\r\n", 1, SL_EUNAVAIL, NULL},
        {"-WRONGTYPE wrong kind\r\n", 0, SL_ETOKEN, "malformed revocation record"},
        {":1\r\n", 1, SL_ETOKEN, "malformed revocation record"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redisReply *r = reply_of(cases[i].resp, strlen(cases[i].resp));
        const char *reason;
        assert_int_equal(sl__redis_check_reply(r, cases[i].is_token, 1700000000.5, &reason),
                         cases[i].status);
        if (cases[i].reason)
            assert_string_equal(reason, cases[i].reason);
        else
            assert_null(reason);
        freeReplyObject(r);
    }

    static const char sub[] = "*3\r\n$9\r\nsubscribe\r\n$3\r\nchn\r\n:1\r\n";
    static const char msg[] = "*3\r\n$7\r\nmessage\r\n$3\r\nchn\r\n$8\r\nt tok-42\r\n";
    /* a kind with a NUL inside is not the kind it starts with */
    static const char odd[] = "*3\r\n$11\r\nsubscribe\0x\r\n$3\r\nchn\r\n:1\r\n";
    const redisReply *m;
    redisReply *r = reply_of(sub, sizeof sub - 1);
    assert_int_equal(sl__redis_sub_reply(r, &m), SL__REDIS_SUB_CONFIRM);
    freeReplyObject(r);
    r = reply_of(odd, sizeof odd - 1);
    assert_int_equal(sl__redis_sub_reply(r, &m), SL__REDIS_SUB_OTHER);
    freeReplyObject(r);
    r = reply_of(msg, sizeof msg - 1);
    assert_int_equal(sl__redis_sub_reply(r, &m), SL__REDIS_SUB_MESSAGE);
    sl_revocation_event ev;
    char buf[SL__REDIS_MSG_MAX + 1];
    assert_int_equal(sl__redis_parse_message(m->str, m->len, &ev, buf), 1);
    assert_string_equal(ev.token_id, "tok-42");
    freeReplyObject(r);
    assert_int_equal(sl__redis_parse_message("u 1700000000.5 alice", 20, &ev, buf), 1);
    assert_string_equal(ev.user, "alice");
    assert_true(ev.cutoff == 1700000000.5);
    assert_int_equal(sl__redis_parse_message("u 1700000000.5  alice", 21, &ev, buf), 0);
    assert_int_equal(sl__redis_parse_message("t a\0b", 5, &ev, buf), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revoke_and_check),
        cmocka_unit_test(test_user_cutoff),
        cmocka_unit_test(test_checks_of_one_turn_share_a_lookup),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_default_prefix),
        cmocka_unit_test(test_outage_and_recovery),
        cmocka_unit_test(test_hung_redis),
        cmocka_unit_test(test_unreachable_at_start),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_free_in_callback),
        cmocka_unit_test(test_watch_two_nodes),
        cmocka_unit_test(test_watch_message_format),
        cmocka_unit_test(test_watch_resync),
        cmocka_unit_test(test_watch_garbage),
        cmocka_unit_test(test_watch_publish_refused),
        cmocka_unit_test(test_watch_free),
        cmocka_unit_test(test_watch_dbs_apart),
        cmocka_unit_test(test_prefix_without_at),
        cmocka_unit_test(test_reply_judgement),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
