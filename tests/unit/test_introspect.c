/* The introspection authenticator against a real HTTP endpoint: tests/unit/introspect_server.py,
 * which the test starts on a free loopback port and which answers by token (active, inactive,
 * malformed, slow, 5xx, redirects, ...) and reports what it received on GET /stats. Covered: the
 * posted form and Basic credentials, the identity built from sub/exp/iat/jti, every refusal and
 * every failure (fail closed, never cached), the cache (hits answer synchronously and send nothing,
 * negative answers, exp and ttl bounds, the size bound, disabled caching), shared in-flight
 * requests, the in-flight limit, an endpoint that is down or too slow, https with a CA file (and
 * without one: refused), option validation, and closing with requests in flight, also from inside
 * a callback, checked by uv_loop_close finding every handle closed (and by ASan for memory).
 * Without /usr/bin/python3 (or openssl, for https) the tests that need it fail under the project's
 * test command and are skipped otherwise (tests/unit/deps.h). Answers are awaited with a generous
 * bound (WAIT_MS) and times are bracketed by the clock before and after a request, never bounded by
 * how fast the machine is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>

#include <sluice/introspect.h>

#include "deps.h"

extern char **environ;

static pid_t server_pid;
static int server_port;
static char server_url[128];
static int have_server;

/* ---- the endpoint under test ---------------------------------------------------------------- */

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

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* How long a test waits for an answer that must come: generous, never a statement about speed. */
#define WAIT_MS 30000

static char script[1100];

/* Starts the helper on port (https when cert and key are given); 0 once it accepts connections. */
static int spawn_server(int port, const char *cert, const char *key, pid_t *pid)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    char *argv[] = {"python3", script, portstr, (char *)cert, (char *)key, NULL};
    if (cert == NULL)
        argv[3] = NULL;
    if (posix_spawn(pid, "/usr/bin/python3", NULL, NULL, argv, environ) != 0)
        return -1;
    for (int k = 0; k < WAIT_MS / 20; k++) {
        if (port_open(port))
            return 0;
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return -1;
        }
        sleep_ms(20);
    }
    return -1;
}

static int start_server(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "/usr/bin/python3 not found\n");
        return 0; /* each test that needs it then fails or skips (NEED_SERVER) */
    }
    /* The helper sits next to this file; CMake compiles it by absolute path. */
    char src[1024];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(script, sizeof script, "%s/introspect_server.py", dirname(src));
    if ((server_port = free_port()) < 0 || spawn_server(server_port, NULL, NULL, &server_pid) != 0)
        return -1;
    snprintf(server_url, sizeof server_url, "http://127.0.0.1:%d/introspect", server_port);
    have_server = 1;
    return 0;
}

static int stop_server(void **state)
{
    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
    return 0;
}

#define NEED_SERVER()                                                                              \
    do {                                                                                           \
        NEED_DEP(have_server, "/usr/bin/python3 (for tests/unit/introspect_server.py)");           \
    } while (0)

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    json_t **out = ud;
    char buf[65536];
    size_t len = size * n < sizeof buf - 1 ? size * n : sizeof buf - 1;
    memcpy(buf, data, len);
    buf[len] = '\0';
    json_decref(*out);
    *out = json_loads(buf, 0, NULL);
    return size * n;
}

/* What the endpoint has seen: {"total", "counts": {token: n}, "last": {...}}; a blocking GET from
 * the test thread, fine because the endpoint has threads of its own. */
static json_t *server_stats(void)
{
    char url[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/stats", server_port);
    json_t *out = NULL;
    CURL *e = curl_easy_init();
    assert_non_null(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 65536L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    assert_non_null(out);
    return out;
}

static int count_of(const char *token)
{
    json_t *st = server_stats();
    json_t *n = json_object_get(json_object_get(st, "counts"), token);
    int c = n ? (int)json_integer_value(n) : 0;
    json_decref(st);
    return c;
}

static char *last_field(const char *name)
{
    json_t *st = server_stats();
    const char *v = json_string_value(json_object_get(json_object_get(st, "last"), name));
    char *out = strdup(v ? v : "");
    json_decref(st);
    return out;
}

/* ---- driving the loop ----------------------------------------------------------------------- */

typedef struct answer {
    int calls;
    int status;
    char reason[128];
    int has_who;
    sl_identity who;
    /* optional re-entry from the callback */
    sl_introspect **free_me;
    sl_introspect *again_on;
    const char *again_token;
    struct answer *again_answer;
} answer;

static void on_answer(void *ud, int status, const sl_identity *who, const char *reason)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
    a->has_who = who != NULL;
    if (who != NULL) {
        a->who = *who;
        a->who.channels = NULL; /* never owned here; the authenticator sets none */
    }
    if (a->again_on != NULL)
        sl_introspect_authenticate(a->again_on, a->again_token, strlen(a->again_token), on_answer,
                                   a->again_answer);
    if (a->free_me != NULL) {
        sl_introspect_free(*a->free_me);
        *a->free_me = NULL;
    }
}

static void on_guard(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

typedef struct waitset {
    answer **as;
    size_t n;
    int expired;
} waitset;

static int all_in(const waitset *w)
{
    for (size_t k = 0; k < w->n; k++)
        if (w->as[k]->calls == 0)
            return 0;
    return 1;
}

/* Answers can arrive from a timer callback, after which UV_RUN_ONCE would still block in poll:
 * a prepare handle (run after timers, before polling) stops the loop instead. */
static void on_wait_prepare(uv_prepare_t *p)
{
    if (all_in(p->data))
        uv_stop(p->loop);
}

static void on_wait_guard(uv_timer_t *t)
{
    ((waitset *)t->data)->expired = 1;
    uv_stop(t->loop);
}

/* Runs the loop until every answer has arrived or ms have passed; returns 1 when all arrived. */
static int run_until(uv_loop_t *loop, answer **as, size_t n, long ms)
{
    waitset w = {as, n, 0};
    uv_timer_t guard;
    uv_prepare_t prep;
    uv_timer_init(loop, &guard);
    uv_prepare_init(loop, &prep);
    guard.data = prep.data = &w;
    uv_update_time(loop); /* the loop's clock stood still while the test blocked */
    uv_timer_start(&guard, on_wait_guard, (uint64_t)ms, 0);
    uv_prepare_start(&prep, on_wait_prepare);
    while (!all_in(&w) && !w.expired)
        uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_close((uv_handle_t *)&prep, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return all_in(&w);
}

/* Asks and waits for one answer. */
static void ask(uv_loop_t *loop, sl_introspect *i, const char *token, answer *a)
{
    memset(a, 0, sizeof *a);
    sl_introspect_authenticate(i, token, strlen(token), on_answer, a);
    assert_true(run_until(loop, (answer *[]){a}, 1, WAIT_MS));
    assert_int_equal(a->calls, 1);
}

/* Asks and requires the answer before authenticate returns (a cache hit or an early refusal). */
static void ask_sync(sl_introspect *i, const char *token, answer *a)
{
    memset(a, 0, sizeof *a);
    sl_introspect_authenticate(i, token, strlen(token), on_answer, a);
    assert_int_equal(a->calls, 1);
}

static double clock_offset;
static double test_clock(void *ud)
{
    (void)ud;
    return sl_wallclock(NULL) + clock_offset;
}

static sl_introspect *make(uv_loop_t *loop, sl_introspect_opts *o)
{
    sl_introspect *i = NULL;
    if (o->url == NULL)
        o->url = server_url;
    clock_offset = 0;
    assert_int_equal(sl_introspect_new(&i, loop, o, test_clock, NULL), SL_OK);
    return i;
}

static sl_introspect *make_default(uv_loop_t *loop)
{
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    return make(loop, &o);
}

/* Frees and runs the loop until every handle closed: uv_loop_close fails on any left open. */
static void finish(uv_loop_t *loop, sl_introspect *i)
{
    sl_introspect_free(i);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_source_name(void **state)
{
    (void)state;
    assert_string_equal(sl_source_name(SL_SOURCE_INTROSPECTION), "introspection");
    assert_string_equal(sl_source_name(SL_SOURCE_SIGNATURE), "signature");
}

static void test_active_token_and_request(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.client_id = "client:1";   /* ':' must be encoded, or the Basic pair would split there */
    o.client_secret = "s3cr&t"; /* '&' too, as RFC 6749 asks */
    sl_introspect *i = make(&loop, &o);
    int before = count_of("good");

    answer a;
    double t0 = sl_wallclock(NULL);
    ask(&loop, i, "good", &a);
    double t1 = sl_wallclock(NULL);
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.reason, "");
    assert_true(a.has_who);
    assert_string_equal(a.who.principal, "alice");
    assert_int_equal(a.who.source, SL_SOURCE_INTROSPECTION);
    assert_int_equal(a.who.role, SL_ROLE_NONE);
    assert_int_equal(a.who.scoped, 0);
    assert_null(a.who.channels);
    assert_string_equal(a.who.token_id, "");
    /* The endpoint answers exp = its now + 60, somewhere between t0 and t1. */
    assert_true(a.who.expires_at >= t0 + 59 && a.who.expires_at <= t1 + 61);
    assert_int_equal(count_of("good"), before + 1);

    char *body = last_field("body"), *ctype = last_field("content_type");
    char *auth = last_field("authorization"), *hint = last_field("hint"),
         *path = last_field("path");
    assert_string_equal(body, "token=good&token_type_hint=access_token");
    assert_string_equal(ctype, "application/x-www-form-urlencoded");
    assert_string_equal(hint, "access_token");
    assert_string_equal(path, "/introspect");
    char expect[128] = "Basic ";
    const char plain[] = "client%3A1:s3cr%26t";
    EVP_EncodeBlock((unsigned char *)expect + 6, (const unsigned char *)plain,
                    (int)sizeof plain - 1);
    assert_string_equal(auth, expect);
    free(body), free(ctype), free(auth), free(hint), free(path);

    /* Cached: answered before authenticate returns, nothing sent. */
    ask_sync(i, "good", &a);
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.who.principal, "alice");
    assert_int_equal(a.who.source, SL_SOURCE_INTROSPECTION);
    assert_true(a.who.expires_at > t0 + 50);
    assert_int_equal(count_of("good"), before + 1);
    sl_introspect_stats st;
    sl_introspect_get_stats(i, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.cached, 1);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.failures, 0);
    finish(&loop, i);
}

static void test_form_encoding_and_no_client_auth(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = make_default(&loop);
    const char *tok = "a+b/c=d&e%f~g.h_i-j?k#l";
    answer a;
    ask(&loop, i, tok, &a);
    assert_int_equal(a.status, SL_ETOKEN); /* the endpoint does not know it */
    assert_int_equal(count_of(tok), 1);    /* it decoded to exactly the token */
    char *body = last_field("body"), *auth = last_field("authorization");
    assert_string_equal(body,
                        "token=a%2Bb%2Fc%3Dd%26e%25f~g.h_i-j%3Fk%23l&token_type_hint=access_token");
    assert_string_equal(auth, "");
    free(body), free(auth);
    finish(&loop, i);
}

static void test_refusals_are_cached(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = make_default(&loop);
    static const struct {
        const char *token;
        int status;
        const char *reason;
    } cases[] = {
        {"inactive", SL_ETOKEN, "token inactive"},
        {"nosub", SL_ETOKEN, "token has no valid subject"},
        {"badsub", SL_ETOKEN, "token has no valid subject"},
        {"longsub", SL_ETOKEN, "token has no valid subject"},
        {"badexp", SL_ETOKEN, "token has malformed claims"},
        {"expired", SL_EEXPIRED, "token expired"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int before = count_of(cases[k].token);
        answer a;
        ask(&loop, i, cases[k].token, &a);
        assert_int_equal(a.status, cases[k].status);
        assert_string_equal(a.reason, cases[k].reason);
        assert_false(a.has_who);
        ask_sync(i, cases[k].token, &a);
        assert_int_equal(a.status, cases[k].status);
        assert_string_equal(a.reason, cases[k].reason);
        assert_int_equal(count_of(cases[k].token), before + 1);
    }
    finish(&loop, i);
}

static void test_identity_claims(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = make_default(&loop);
    double t0 = sl_wallclock(NULL);
    answer a;
    ask(&loop, i, "jti", &a);
    double t1 = sl_wallclock(NULL);
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.who.principal, "bob");
    assert_string_equal(a.who.token_id, "tok-1");
    /* iat = the endpoint's now, in whole seconds, minus 5, somewhere between t0 and t1. */
    assert_true(a.who.issued_at >= t0 - 7 && a.who.issued_at <= t1 - 4);
    ask_sync(i, "jti", &a); /* the cache keeps every field */
    assert_string_equal(a.who.principal, "bob");
    assert_string_equal(a.who.token_id, "tok-1");
    assert_true(a.who.issued_at > t0 - 10);
    assert_true(a.who.expires_at > t0 + 50);

    ask(&loop, i, "bad-jti", &a); /* an id unfit for revocation keys is dropped, not fatal */
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.who.token_id, "");

    ask(&loop, i, "noexp", &a);
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.who.principal, "carol");
    assert_true(a.who.expires_at == 0);
    assert_true(a.who.issued_at == 0);
    finish(&loop, i);
}

static int lines_failing, lines_again;
static char log_all[4096];
static void on_log(void *ud, const char *line)
{
    (void)ud;
    lines_failing += strstr(line, "failing") != NULL;
    lines_again += strstr(line, "answering again") != NULL;
    strncat(log_all, line, sizeof log_all - strlen(log_all) - 2);
    strcat(log_all, "\n");
}

static void test_failures_fail_closed_uncached(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.client_id = "client";
    o.client_secret = "very-secret-value";
    sl_introspect *i = make(&loop, &o);
    lines_failing = lines_again = 0;
    log_all[0] = '\0';
    sl_introspect_set_log(i, on_log, NULL);
    static const char *const tokens[] = {"bad-json", "dup",    "active-string", "array",
                                         "empty",    "big",    "500",           "503",
                                         "401",      "hangup", "redirect"};
    for (size_t k = 0; k < sizeof tokens / sizeof tokens[0]; k++) {
        int before = count_of(tokens[k]);
        for (int round = 0; round < 2; round++) {
            answer a;
            ask(&loop, i, tokens[k], &a);
            assert_int_equal(a.status, SL_EUNAVAIL);
            assert_string_equal(a.reason, "introspection endpoint unavailable");
            assert_false(a.has_who);
        }
        /* never cached; curl may retry once a kept-alive connection that died unanswered */
        if (strcmp(tokens[k], "hangup") == 0)
            assert_true(count_of(tokens[k]) >= before + 2);
        else
            assert_int_equal(count_of(tokens[k]), before + 2);
    }
    /* A redirect is not followed: the token would travel to wherever it points. */
    json_t *st = server_stats();
    assert_null(json_object_get(json_object_get(st, "counts"), "followed"));
    assert_string_not_equal(json_string_value(json_object_get(json_object_get(st, "last"), "path")),
                            "/followed");
    json_decref(st);

    sl_introspect_stats s;
    sl_introspect_get_stats(i, &s);
    assert_int_equal(s.failures, 2 * (sizeof tokens / sizeof tokens[0]));
    assert_int_equal(s.cached, 0);
    /* One line when it started failing, one when it recovered; never a token or the secret. */
    answer a;
    ask(&loop, i, "user-log", &a);
    assert_int_equal(a.status, SL_OK);
    assert_int_equal(lines_failing, 1);
    assert_int_equal(lines_again, 1);
    assert_null(strstr(log_all, "bad-json"));
    assert_null(strstr(log_all, "very-secret"));
    finish(&loop, i);
}

static void test_timeout(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.timeout_ms = 300; /* the endpoint sleeps 3 s */
    sl_introspect *i = make(&loop, &o);
    answer a;
    ask(&loop, i, "slow-timeout", &a);
    /* The endpoint does answer "active" after its sleep: SL_EUNAVAIL shows the timeout fired. */
    assert_int_equal(a.status, SL_EUNAVAIL);
    finish(&loop, i);
}

static void test_endpoint_down(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[128];
    int port = free_port();
    assert_true(port > 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/introspect", port);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.url = url;
    /* A timeout longer than ask() waits: an answer shows the refused connection was reported
     * without waiting for it. */
    o.timeout_ms = SL_INTROSPECT_MAX_TIMEOUT_MS;
    sl_introspect *i = make(&loop, &o);
    answer a;
    ask(&loop, i, "good", &a);
    assert_int_equal(a.status, SL_EUNAVAIL);
    ask(&loop, i, "good", &a); /* not cached: asks again */
    assert_int_equal(a.status, SL_EUNAVAIL);
    sl_introspect_stats st;
    sl_introspect_get_stats(i, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.failures, 2);
    finish(&loop, i);
}

static void test_shared_inflight(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = make_default(&loop);
    answer a[3], b;
    memset(a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    for (int k = 0; k < 3; k++)
        sl_introspect_authenticate(i, "shared-1", 8, on_answer, &a[k]);
    sl_introspect_authenticate(i, "shared-2", 8, on_answer, &b);
    assert_int_equal(a[0].calls + a[1].calls + a[2].calls + b.calls, 0);
    sl_introspect_stats st;
    sl_introspect_get_stats(i, &st);
    assert_int_equal(st.inflight, 2);
    assert_int_equal(st.shared, 2);
    assert_true(run_until(&loop, (answer *[]){&a[0], &a[1], &a[2], &b}, 4, WAIT_MS));
    for (int k = 0; k < 3; k++) {
        assert_int_equal(a[k].calls, 1);
        assert_int_equal(a[k].status, SL_OK);
        assert_string_equal(a[k].who.principal, "u1");
    }
    assert_int_equal(b.status, SL_OK);
    assert_string_equal(b.who.principal, "u2");
    assert_int_equal(count_of("shared-1"), 1);
    assert_int_equal(count_of("shared-2"), 1);
    finish(&loop, i);
}

static void test_cache_bound(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.cache_max = 3;
    sl_introspect *i = make(&loop, &o);
    char tok[32];
    answer a;
    sl_introspect_stats st;
    for (int k = 1; k <= 5; k++) {
        snprintf(tok, sizeof tok, "user-%d", k);
        ask(&loop, i, tok, &a);
        assert_int_equal(a.status, SL_OK);
        sl_introspect_get_stats(i, &st);
        assert_true(st.cached <= 3);
    }
    assert_int_equal(st.cached, 3);
    ask_sync(i, "user-5", &a); /* the newest stayed */
    assert_string_equal(a.who.principal, "u5");
    ask(&loop, i, "user-1", &a); /* the oldest went: asked again */
    assert_int_equal(a.status, SL_OK);
    assert_int_equal(count_of("user-1"), 2);
    assert_int_equal(count_of("user-5"), 1);
    sl_introspect_get_stats(i, &st);
    assert_int_equal(st.cached, 3);

    sl_introspect_cache_clear(i);
    sl_introspect_get_stats(i, &st);
    assert_int_equal(st.cached, 0);
    ask(&loop, i, "user-5", &a);
    assert_int_equal(count_of("user-5"), 2);
    finish(&loop, i);
}

static void test_cache_lifetimes(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.cache_ttl = 20;
    sl_introspect *i = make(&loop, &o);
    answer a;
    /* exp (now + 10) cuts the 20 s ttl short. */
    ask(&loop, i, "shortexp", &a);
    assert_int_equal(a.status, SL_OK);
    clock_offset = 9;
    ask_sync(i, "shortexp", &a);
    assert_int_equal(a.status, SL_OK);
    clock_offset = 11; /* past exp: asked again, and the new answer is already expired here */
    ask(&loop, i, "shortexp", &a);
    assert_int_equal(a.status, SL_EEXPIRED);
    assert_int_equal(count_of("shortexp"), 2);

    /* The ttl bounds an answer without exp, and a negative one. */
    clock_offset = 0;
    ask(&loop, i, "noexp", &a);
    int noexp = count_of("noexp");
    ask(&loop, i, "unknown-ttl", &a);
    assert_int_equal(a.status, SL_ETOKEN);
    clock_offset = 19;
    ask_sync(i, "noexp", &a);
    ask_sync(i, "unknown-ttl", &a);
    clock_offset = 21;
    ask(&loop, i, "noexp", &a);
    assert_int_equal(a.status, SL_OK);
    ask(&loop, i, "unknown-ttl", &a);
    assert_int_equal(count_of("noexp"), noexp + 1);
    assert_int_equal(count_of("unknown-ttl"), 2);
    finish(&loop, i);
}

static void test_cache_disabled(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.cache_ttl = -1;
    sl_introspect *i = make(&loop, &o);
    answer a;
    ask(&loop, i, "keep-nocache", &a);
    assert_int_equal(a.status, SL_OK);
    ask(&loop, i, "keep-nocache", &a);
    assert_int_equal(a.status, SL_OK);
    assert_int_equal(count_of("keep-nocache"), 2);
    sl_introspect_stats st;
    sl_introspect_get_stats(i, &st);
    assert_int_equal(st.cached, 0);
    finish(&loop, i);
}

static void test_inflight_limit(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.max_inflight = 1;
    sl_introspect *i = make(&loop, &o);
    answer a, b, c;
    memset(&a, 0, sizeof a);
    memset(&c, 0, sizeof c);
    sl_introspect_authenticate(i, "slow-limit", 10, on_answer, &a);
    sl_introspect_authenticate(i, "slow-limit", 10, on_answer, &c); /* joins: no new request */
    ask_sync(i, "slow-limit2", &b);
    assert_int_equal(b.status, SL_EUNAVAIL);
    assert_string_equal(b.reason, "too many introspection requests");
    assert_int_equal(a.calls + c.calls, 0);
    /* Closing answers the pending calls before it returns. */
    sl_introspect_free(i);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_EUNAVAIL);
    assert_string_equal(a.reason, "introspection closed");
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, SL_EUNAVAIL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_free_in_flight(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = make_default(&loop);
    answer a, b, warm, late;
    ask(&loop, i, "keep-warm", &warm); /* a kept-alive connection to close too */
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&late, 0, sizeof late);
    sl_introspect_authenticate(i, "slow-free-1", 11, on_answer, &a);
    /* A callback that asks again while closing is answered at once. */
    b.again_on = i;
    b.again_token = "keep-warm";
    b.again_answer = &late;
    sl_introspect_authenticate(i, "slow-free-2", 11, on_answer, &b);
    /* Let the requests reach the endpoint, so sockets are open when we close. */
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_guard, 200, 0);
    while (!fired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    assert_int_equal(a.calls + b.calls, 0);
    sl_introspect_free(i);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_EUNAVAIL);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, SL_EUNAVAIL);
    assert_int_equal(late.calls, 1);
    assert_int_equal(late.status, SL_EUNAVAIL);
    assert_string_equal(late.reason, "introspection closed");
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_free_from_callback(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = make_default(&loop);
    answer fast, slow;
    memset(&fast, 0, sizeof fast);
    memset(&slow, 0, sizeof slow);
    fast.free_me = &i;
    sl_introspect_authenticate(i, "slow-cb", 7, on_answer, &slow);
    sl_introspect_authenticate(i, "user-cb", 7, on_answer, &fast);
    assert_true(run_until(&loop, (answer *[]){&fast}, 1, WAIT_MS));
    assert_int_equal(fast.status, SL_OK);
    assert_null(i);
    assert_int_equal(slow.calls, 1); /* answered inside the free the callback made */
    assert_int_equal(slow.status, SL_EUNAVAIL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_reentry_from_callback(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = make_default(&loop);
    answer a, again, fresh;
    memset(&a, 0, sizeof a);
    memset(&again, 0, sizeof again);
    memset(&fresh, 0, sizeof fresh);
    /* From the callback: the same token is a cache hit (cached before callbacks run) ... */
    a.again_on = i;
    a.again_token = "user-re";
    a.again_answer = &again;
    sl_introspect_authenticate(i, "user-re", 7, on_answer, &a);
    assert_true(run_until(&loop, (answer *[]){&a}, 1, WAIT_MS));
    assert_int_equal(again.calls, 1);
    assert_int_equal(again.status, SL_OK);
    assert_int_equal(count_of("user-re"), 1);
    /* ... and a new token starts a new request. */
    memset(&a, 0, sizeof a);
    a.again_on = i;
    a.again_token = "user-re2";
    a.again_answer = &fresh;
    sl_introspect_authenticate(i, "user-re", 7, on_answer, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(fresh.calls, 0);
    assert_true(run_until(&loop, (answer *[]){&fresh}, 1, WAIT_MS));
    assert_int_equal(fresh.status, SL_OK);
    assert_string_equal(fresh.who.principal, "ure2");
    finish(&loop, i);
}

static void test_idle_does_not_hold_loop(void **state)
{
    NEED_SERVER();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = make_default(&loop);
    answer a;
    ask(&loop, i, "keep-idle", &a);
    /* The finished request leaves a kept-alive connection; it must not keep a server's loop
     * running by itself. */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    assert_false(uv_loop_alive(&loop));
    /* And the connection still serves the next request. */
    ask(&loop, i, "keep-idle2", &a);
    assert_int_equal(a.status, SL_OK);
    finish(&loop, i);
}

static void test_tokens_refused_locally(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.url = "http://127.0.0.1:9/never"; /* nothing must be sent */
    sl_introspect *i = make(&loop, &o);
    answer a;
    memset(&a, 0, sizeof a);
    sl_introspect_authenticate(i, "", 0, on_answer, &a);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "invalid token");
    ask_sync(i, "has space", &a);
    assert_int_equal(a.status, SL_ETOKEN);
    ask_sync(i, "tab\there", &a);
    assert_int_equal(a.status, SL_ETOKEN);
    ask_sync(i, "caf\xc3\xa9", &a);
    assert_int_equal(a.status, SL_ETOKEN);
    memset(&a, 0, sizeof a);
    sl_introspect_authenticate(i, "nul\0byte", 8, on_answer, &a);
    assert_int_equal(a.status, SL_ETOKEN);
    char *big = malloc(SL_INTROSPECT_TOKEN_MAX + 1);
    memset(big, 'a', SL_INTROSPECT_TOKEN_MAX + 1);
    memset(&a, 0, sizeof a);
    sl_introspect_authenticate(i, big, SL_INTROSPECT_TOKEN_MAX + 1, on_answer, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_ETOKEN);
    free(big);
    sl_introspect_stats st;
    sl_introspect_get_stats(i, &st);
    assert_int_equal(st.requests, 0);
    /* NULL authenticator: refused, not a crash. */
    memset(&a, 0, sizeof a);
    sl_introspect_authenticate(NULL, "x", 1, on_answer, &a);
    assert_int_equal(a.status, SL_EUNAVAIL);
    finish(&loop, i);
}

static void test_options(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect *i = NULL;
    sl_introspect_opts o;
    static const struct {
        const char *url;
        int allow_http;
        int rc;
    } urls[] = {
        {NULL, 0, SL_EINVAL},
        {"", 0, SL_EINVAL},
        {"not a url", 0, SL_EINVAL},
        {"ftp://127.0.0.1/x", 0, SL_EINVAL},
        {"file:///etc/passwd", 0, SL_EINVAL},
        {"http://auth.example.com/introspect", 0, SL_EINVAL},
        {"http://10.0.0.1/introspect", 0, SL_EINVAL},
        {"https://user:pw@auth.example.com/introspect", 0, SL_EINVAL},
        {"http://auth.example.com/introspect", 1, SL_OK},
        {"https://auth.example.com/introspect", 0, SL_OK},
        {"http://127.0.0.1:8080/introspect", 0, SL_OK},
        {"http://127.1.2.3/introspect", 0, SL_OK},
        {"http://localhost/introspect", 0, SL_OK},
        {"http://[::1]:8080/introspect", 0, SL_OK},
    };
    for (size_t k = 0; k < sizeof urls / sizeof urls[0]; k++) {
        sl_introspect_opts_init(&o);
        o.url = urls[k].url;
        o.allow_http = urls[k].allow_http;
        int rc = sl_introspect_new(&i, &loop, &o, NULL, NULL);
        if (rc != urls[k].rc)
            fail_msg("url %s: %d", urls[k].url ? urls[k].url : "(null)", rc);
        sl_introspect_free(i);
        i = NULL;
    }
    struct {
        const char *id, *secret;
        double ttl;
        size_t cmax;
        long tmo, ctmo;
        int rc;
    } cases[] = {
        {"id", NULL, 0, 0, 0, 0, SL_EINVAL},
        {NULL, "secret", 0, 0, 0, 0, SL_EINVAL},
        {"", "secret", 0, 0, 0, 0, SL_EINVAL},
        {"id", "", 0, 0, 0, 0, SL_OK},
        {NULL, NULL, 300, 0, 0, 0, SL_OK},
        {NULL, NULL, 300.5, 0, 0, 0, SL_EINVAL},
        {NULL, NULL, NAN, 0, 0, 0, SL_EINVAL},
        {NULL, NULL, -1, 0, 0, 0, SL_OK},
        {NULL, NULL, 0, SL_INTROSPECT_MAX_CACHE + 1, 0, 0, SL_EINVAL},
        {NULL, NULL, 0, 1, 0, 0, SL_OK},
        {NULL, NULL, 0, 0, -5, 0, SL_EINVAL},
        {NULL, NULL, 0, 0, SL_INTROSPECT_MAX_TIMEOUT_MS + 1, 0, SL_EINVAL},
        {NULL, NULL, 0, 0, 1000, 2000, SL_EINVAL},
        {NULL, NULL, 0, 0, 1000, 500, SL_OK},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sl_introspect_opts_init(&o);
        o.url = "https://auth.example.com/introspect";
        o.client_id = cases[k].id;
        o.client_secret = cases[k].secret;
        o.cache_ttl = cases[k].ttl;
        o.cache_max = cases[k].cmax;
        o.timeout_ms = cases[k].tmo;
        o.connect_timeout_ms = cases[k].ctmo;
        int rc = sl_introspect_new(&i, &loop, &o, NULL, NULL);
        if (rc != cases[k].rc)
            fail_msg("case %zu: %d", k, rc);
        sl_introspect_free(i);
        i = NULL;
    }
    assert_int_equal(sl_introspect_new(NULL, &loop, &o, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_introspect_new(&i, NULL, &o, NULL, NULL), SL_EINVAL);
    assert_null(i);
    assert_int_equal(sl_introspect_new(&i, &loop, NULL, NULL, NULL), SL_EINVAL);
    sl_introspect_free(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_https(void **state)
{
    NEED_SERVER();
    NEED_DEP(system("command -v openssl >/dev/null 2>&1") == 0,
             "openssl (scripts/deps installs it)");
    char dir[] = "/tmp/sl-introspect-XXXXXX", cmd[1024], cert[64], key[64], url[128];
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
             "-keyout %s -out %s >/dev/null 2>&1",
             key, cert);
    assert_int_equal(system(cmd), 0);
    int port = free_port();
    pid_t pid = 0;
    assert_int_equal(spawn_server(port, cert, key, &pid), 0);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/introspect", port);

    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_introspect_opts o;
    sl_introspect_opts_init(&o);
    o.url = url;
    o.ca_file = cert;
    sl_introspect *i = make(&loop, &o);
    answer a;
    ask(&loop, i, "good", &a);
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.who.principal, "alice");
    finish(&loop, i);

    /* The system's CAs do not know this certificate: fail closed. */
    uv_loop_init(&loop);
    o.ca_file = NULL;
    i = make(&loop, &o);
    ask(&loop, i, "good", &a);
    assert_int_equal(a.status, SL_EUNAVAIL);
    finish(&loop, i);

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_name),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_tokens_refused_locally),
        cmocka_unit_test(test_endpoint_down),
        cmocka_unit_test(test_active_token_and_request),
        cmocka_unit_test(test_form_encoding_and_no_client_auth),
        cmocka_unit_test(test_refusals_are_cached),
        cmocka_unit_test(test_identity_claims),
        cmocka_unit_test(test_failures_fail_closed_uncached),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_shared_inflight),
        cmocka_unit_test(test_cache_bound),
        cmocka_unit_test(test_cache_lifetimes),
        cmocka_unit_test(test_cache_disabled),
        cmocka_unit_test(test_inflight_limit),
        cmocka_unit_test(test_free_in_flight),
        cmocka_unit_test(test_free_from_callback),
        cmocka_unit_test(test_reentry_from_callback),
        cmocka_unit_test(test_idle_does_not_hold_loop),
        cmocka_unit_test(test_https),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
