/* A real sl_http_server for tests: a libuv loop on its own thread with an echo handler, plus a
 * blocking-socket client that reads whole responses. The handler answers "METHOD target|body";
 * "/defer" is answered 50 ms later from a uv_timer, and "/hold" is not answered until the test
 * releases it (or the server stops), to stand for a handler that is slow to respond; "/conns" is
 * the server's connection count. The server's log lines are kept (ts_wait_log). Nothing here
 * asserts on the loop thread (cmocka cannot longjmp across threads): it only counts. */
#ifndef SLUICE_TESTS_HTTP_TEST_SERVER_H
#define SLUICE_TESTS_HTTP_TEST_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "net/http.h"

/* How long a test waits for something that will happen (a response, a close, a flag, a log line):
 * long enough for a loaded machine under the sanitizers; it only turns a hang into a failure and
 * is never a statement about speed. */
#define TS_WAIT_MS 60000

typedef struct ts_server {
    uv_loop_t loop;
    uv_async_t cmd;
    sl_http_server *srv;
    pthread_t thread;
    int port;
    atomic_int handled;      /* requests handed to the handler */
    atomic_int held;         /* a "/hold" request is waiting */
    atomic_int want_release; /* the test asks for the held request to be answered */
    atomic_int want_stop;
    atomic_int deferred_pending;
    sl_http_request *held_req;
    pthread_mutex_t log_lock; /* the server's log lines (refusals), written on the loop thread */
    int log_lines;
    char last_log[512];
} ts_server;

typedef struct ts_defer {
    uv_timer_t timer;
    sl_http_request *req;
    ts_server *ts;
} ts_defer;

static void ts_echo(sl_http_request *req)
{
    char out[8192];
    int n = snprintf(out, sizeof out, "%s %.*s|%.*s", req->method, (int)req->target_len,
                     req->target, (int)req->body_len, req->body);
    if (n < 0 || (size_t)n >= sizeof out)
        n = 0;
    sl_http_respond(req, 200, "X-Echo: 1\r\n", "text/plain", out, (size_t)n);
}

static void ts_defer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void ts_defer_fire(uv_timer_t *t)
{
    ts_defer *d = t->data;
    sl_http_respond(d->req, 200, NULL, "text/plain", "deferred", 8);
    atomic_fetch_sub(&d->ts->deferred_pending, 1);
    uv_close((uv_handle_t *)&d->timer, ts_defer_closed);
}

static void ts_handler(void *ud, sl_http_request *req)
{
    ts_server *ts = ud;
    atomic_fetch_add(&ts->handled, 1);
    if (strcmp(req->path, "/defer") == 0) {
        ts_defer *d = calloc(1, sizeof *d);
        d->req = req;
        d->ts = ts;
        uv_timer_init(&ts->loop, &d->timer);
        d->timer.data = d;
        atomic_fetch_add(&ts->deferred_pending, 1);
        uv_timer_start(&d->timer, ts_defer_fire, 50, 0);
        return;
    }
    if (strcmp(req->path, "/big") == 0) { /* "/big?N": N bytes of a known pattern */
        size_t n = strtoul(req->query, NULL, 10);
        char *body = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            body[i] = (char)('a' + i % 26);
        sl_http_respond(req, 200, NULL, "application/octet-stream", body, n);
        free(body);
        return;
    }
    if (strcmp(req->path, "/remote") == 0) {
        sl_http_respond(req, 200, NULL, "text/plain", req->remote_addr, strlen(req->remote_addr));
        return;
    }
    if (strcmp(req->path, "/conns") == 0) {
        char out[32];
        int n = snprintf(out, sizeof out, "%zu", sl_http_server_connections(ts->srv));
        sl_http_respond(req, 200, NULL, "text/plain", out, (size_t)n);
        return;
    }
    if (strcmp(req->path, "/hold") == 0 && ts->held_req == NULL) {
        ts->held_req = req;
        atomic_store(&ts->held, 1);
        return;
    }
    ts_echo(req);
}

static void ts_release(ts_server *ts)
{
    if (ts->held_req != NULL) {
        sl_http_respond(ts->held_req, 200, NULL, "text/plain", "released", 8);
        ts->held_req = NULL;
        atomic_store(&ts->held, 0);
    }
}

static void ts_on_cmd(uv_async_t *a)
{
    ts_server *ts = a->data;
    if (atomic_exchange(&ts->want_release, 0))
        ts_release(ts);
    if (atomic_load(&ts->want_stop)) {
        sl_http_server_close(ts->srv);
        /* A handler may answer after the server closed: the answer is dropped, nothing leaks. */
        ts_release(ts);
        uv_close((uv_handle_t *)&ts->cmd, NULL);
    }
}

static void *ts_run(void *arg)
{
    ts_server *ts = arg;
    uv_run(&ts->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void ts_log(void *ud, const char *line)
{
    ts_server *ts = ud;
    pthread_mutex_lock(&ts->log_lock);
    ts->log_lines++;
    snprintf(ts->last_log, sizeof ts->last_log, "%s", line);
    pthread_mutex_unlock(&ts->log_lock);
}

/* Waits up to ms for a log line containing needle; 1 if one came (it is the latest line). */
static int ts_wait_log(ts_server *ts, const char *needle, int ms)
{
    for (int i = 0; i <= ms / 5; i++) {
        pthread_mutex_lock(&ts->log_lock);
        int found = strstr(ts->last_log, needle) != NULL;
        pthread_mutex_unlock(&ts->log_lock);
        if (found)
            return 1;
        usleep(5000);
    }
    return 0;
}

/* Starts a server on host with an ephemeral port; lim NULL: defaults. */
static ts_server *ts_start_on(const char *host, const sl_http_limits *lim)
{
    ts_server *ts = calloc(1, sizeof *ts);
    if (ts == NULL || uv_loop_init(&ts->loop) != 0)
        return NULL;
    if (sl_http_server_new(&ts->srv, &ts->loop, lim, ts_handler, ts) != 0)
        return NULL;
    pthread_mutex_init(&ts->log_lock, NULL);
    sl_http_server_set_log(ts->srv, ts_log, ts);
    if (sl_http_server_listen(ts->srv, host, 0) != 0) {
        sl_http_server_free(ts->srv);
        uv_loop_close(&ts->loop);
        free(ts);
        return NULL;
    }
    ts->port = sl_http_server_port(ts->srv);
    uv_async_init(&ts->loop, &ts->cmd, ts_on_cmd);
    ts->cmd.data = ts;
    if (pthread_create(&ts->thread, NULL, ts_run, ts) != 0)
        return NULL;
    return ts;
}

static ts_server *ts_start(const sl_http_limits *lim)
{
    return ts_start_on("127.0.0.1", lim);
}

/* Stops the server and its loop; returns uv_loop_close's result (0: every handle was closed). */
static int ts_stop(ts_server *ts)
{
    atomic_store(&ts->want_stop, 1);
    uv_async_send(&ts->cmd);
    pthread_join(ts->thread, NULL);
    sl_http_server_free(ts->srv);
    int rc = uv_loop_close(&ts->loop);
    pthread_mutex_destroy(&ts->log_lock);
    free(ts);
    return rc;
}

static void ts_release_held(ts_server *ts)
{
    atomic_store(&ts->want_release, 1);
    uv_async_send(&ts->cmd);
}

/* The monotonic clock in milliseconds, for a test's deadlines. */
static long long ts_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int ts_wait_flag(atomic_int *flag, int value, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (atomic_load(flag) == value)
            return 1;
        usleep(5000);
    }
    return atomic_load(flag) == value;
}

/* ---- the client ---- */

typedef struct tc_client {
    int fd;
    size_t len;
    char buf[1 << 17];
} tc_client;

typedef struct tc_response {
    int status;
    char head[4096];
    char body[1 << 16];
    size_t body_len;
} tc_response;

/* rcvbuf: 0 for the default, else a small receive buffer (a client slow to read). from: NULL, or
 * the IPv4 source address to connect from (any of 127.0.0.0/8 is local). NULL when the socket
 * cannot be made or connected. */
static tc_client *tc_connect_from(int port, int v6, int rcvbuf, const char *from)
{
    tc_client *c = calloc(1, sizeof *c);
    c->fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    if (from != NULL) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        inet_pton(AF_INET, from, &src.sin_addr);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            close(c->fd);
            free(c);
            return NULL;
        }
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    struct timeval tv = {.tv_sec = TS_WAIT_MS / 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(c->fd, (struct sockaddr *)&ss, len) != 0) {
        close(c->fd);
        free(c);
        return NULL;
    }
    return c;
}

static tc_client *tc_connect_x(int port, int v6, int rcvbuf)
{
    return tc_connect_from(port, v6, rcvbuf, NULL);
}

static tc_client *tc_connect(int port)
{
    return tc_connect_x(port, 0, 0);
}

static void tc_close(tc_client *c)
{
    if (c != NULL) {
        close(c->fd);
        free(c);
    }
}

static int tc_send(tc_client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int tc_sends(tc_client *c, const char *s)
{
    return tc_send(c, s, strlen(s));
}

/* Reads more into c->buf; 0 on EOF, -1 on error or timeout. */
static ssize_t tc_fill(tc_client *c)
{
    if (c->len == sizeof c->buf)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static const char *tc_find(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/* Reads one response (status line, headers, Content-Length body unless it answers a HEAD).
 * 0 on success. */
static int tc_read_x(tc_client *c, tc_response *r, int head)
{
    const char *end;
    while ((end = tc_find(c->buf, c->len, "\r\n\r\n")) == NULL)
        if (tc_fill(c) <= 0)
            return -1;
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (hlen >= sizeof r->head)
        return -1;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    size_t clen = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    if (cl != NULL && !head)
        clen = strtoul(cl + 17, NULL, 10);
    if (clen >= sizeof r->body)
        return -1;
    while (c->len < hlen + clen)
        if (tc_fill(c) <= 0)
            return -1;
    memcpy(r->body, c->buf + hlen, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
    c->len -= hlen + clen;
    return 0;
}

static int tc_read(tc_client *c, tc_response *r)
{
    return tc_read_x(c, r, 0);
}

/* Reads one response whose body may be large: the body is checked against the "/big" pattern
 * and dropped. Returns the body length, or -1. */
static long tc_read_big(tc_client *c, tc_response *r)
{
    if (tc_read_x(c, r, 1) != 0)
        return -1;
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0, got = 0;
    while (got < want) {
        if (c->len == 0 && tc_fill(c) <= 0)
            return -1;
        size_t k = want - got < c->len ? want - got : c->len;
        for (size_t i = 0; i < k; i++)
            if (c->buf[i] != (char)('a' + (got + i) % 26))
                return -1;
        memmove(c->buf, c->buf + k, c->len - k);
        c->len -= k;
        got += k;
    }
    return (long)got;
}

/* Reads until the server closes; returns 1 if it did (0: timeout or reset first). */
static int tc_wait_close(tc_client *c)
{
    for (;;) {
        ssize_t n = tc_fill(c);
        if (n == 0)
            return 1;
        if (n < 0)
            return errno == ECONNRESET ? 1 : 0;
    }
}

#endif
