/* A real redis-server for unit tests: started on a free loopback port in a temporary directory,
 * stopped (or paused, killed, restarted) on demand, and killed at exit whatever happens. Several
 * may run at once (shards). Header-only, for test programs; include after cmocka.h and deps.h. */
#ifndef SLUICE_TESTS_REDIS_SERVER_H
#define SLUICE_TESTS_REDIS_SERVER_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* Long enough for a loaded machine under the sanitizers; never a statement about speed. */
#define TEST_REDIS_WAIT_MS 30000
#define TEST_REDIS_MAX 8

typedef struct test_redis {
    pid_t pid;
    int port;
    char dir[64];
    const char *password; /* NULL: none (--requirepass when set) */
} test_redis;

static test_redis *test_redis_all[TEST_REDIS_MAX];

static int test_redis_free_port(void)
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

static void test_redis_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A synchronous admin connection (authenticated when the server has a password); NULL when the
 * server does not answer. Release with redisFree. */
static redisContext *test_redis_admin(const test_redis *r)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (c != NULL && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c == NULL)
        return NULL;
    redisSetTimeout(c, tv);
    if (r->password) {
        redisReply *a = redisCommand(c, "AUTH %s", r->password);
        freeReplyObject(a);
    }
    return c;
}

/* Runs one admin command (printf-style, as redisCommand) and returns its reply (freeReplyObject),
 * or NULL. */
static redisReply *test_redis_cmd(const test_redis *r, const char *fmt, ...)
{
    redisContext *c = test_redis_admin(r);
    if (c == NULL)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

static void test_redis_at_exit(void)
{
    for (int i = 0; i < TEST_REDIS_MAX; i++)
        if (test_redis_all[i] && test_redis_all[i]->pid > 0) {
            kill(test_redis_all[i]->pid, SIGCONT);
            kill(test_redis_all[i]->pid, SIGKILL);
        }
}

/* The process id of the redis-server answering on r's port (INFO's process_id), 0 when none
 * answers PING. */
static long test_redis_answering_pid(const test_redis *r)
{
    redisContext *c = test_redis_admin(r);
    if (c == NULL)
        return 0;
    long pid = 0;
    redisReply *rep = redisCommand(c, "PING");
    if (rep && rep->type == REDIS_REPLY_STATUS) {
        redisReply *info = redisCommand(c, "INFO server");
        const char *at =
            info && info->type == REDIS_REPLY_STRING ? strstr(info->str, "process_id:") : NULL;
        pid = at ? strtol(at + strlen("process_id:"), NULL, 10) : -1;
        freeReplyObject(info);
    }
    freeReplyObject(rep);
    redisFree(c);
    return pid;
}

/* Forks redis-server on r's port and waits until that very process answers PING. 0; -1 when it
 * ended first (the port was taken: a free port is only free until somebody else binds it, and a
 * server of another test that took it would answer this one's PING) or did not answer in time. */
static int test_redis_spawn(test_redis *r)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
#ifdef __linux__
        /* A test program that crashes runs no atexit handler: its server goes with it instead of
         * staying behind on its port. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
#endif
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        if (r->password)
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
                   "", "--appendonly", "no", "--dir", r->dir, "--loglevel", "warning",
                   "--requirepass", r->password, (char *)NULL);
        else
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
                   "", "--appendonly", "no", "--dir", r->dir, "--loglevel", "warning",
                   (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < TEST_REDIS_WAIT_MS / 10; i++) {
        if (test_redis_answering_pid(r) == (long)pid)
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            r->pid = 0;
            return -1;
        }
        test_redis_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    r->pid = 0;
    return -1;
}

/* (Re)starts r's server on its port (picked on the first start, and picked again when another
 * process took it before the server could bind it) and waits until it answers PING. 0, or -1 when
 * redis-server is missing or does not come up. */
static int test_redis_start(test_redis *r)
{
    static int registered;
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-server not found (scripts/deps installs it)\n");
        return -1;
    }
    if (!r->dir[0]) {
        snprintf(r->dir, sizeof r->dir, "/tmp/sluice-redis-XXXXXX");
        if (mkdtemp(r->dir) == NULL)
            return -1;
    }
    int picked = r->port <= 0;
    if (picked && (r->port = test_redis_free_port()) <= 0)
        return -1;
    if (!registered) {
        atexit(test_redis_at_exit);
        registered = 1;
    }
    int slot = -1;
    for (int i = 0; i < TEST_REDIS_MAX; i++)
        if (test_redis_all[i] == r || (slot < 0 && test_redis_all[i] == NULL))
            slot = i;
    if (slot < 0)
        return -1;
    test_redis_all[slot] = r;
    /* A restart keeps its port (the connections under test come back to it): it waits a little
     * for whoever holds the port meanwhile to let go (a client's ephemeral port, most likely). */
    for (int tries = 0; tries < 5; tries++) {
        if (test_redis_spawn(r) == 0)
            return 0;
        if (!picked)
            test_redis_sleep_ms(500);
        else if ((r->port = test_redis_free_port()) <= 0)
            return -1;
    }
    return -1;
}

/* SIGSTOP / SIGCONT pause and resume it; any other signal ends it (and waits for it). */
static void test_redis_signal(test_redis *r, int sig)
{
    if (r->pid <= 0)
        return;
    if (sig == SIGSTOP || sig == SIGCONT) {
        kill(r->pid, sig);
        return;
    }
    kill(r->pid, SIGCONT);
    kill(r->pid, sig);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

/* Ends the server and removes its directory. */
static void test_redis_stop(test_redis *r)
{
    test_redis_signal(r, SIGKILL);
    if (r->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
    for (int i = 0; i < TEST_REDIS_MAX; i++)
        if (test_redis_all[i] == r)
            test_redis_all[i] = NULL;
}

/* "redis://127.0.0.1:PORT" (with ":password@" when set), for an engine URL. */
static void test_redis_url(const test_redis *r, char *buf, size_t size)
{
    if (r->password)
        snprintf(buf, size, "redis://:%s@127.0.0.1:%d", r->password, r->port);
    else
        snprintf(buf, size, "redis://127.0.0.1:%d", r->port);
}

#endif
