/* The HTTP policy regime against a real policy service (tests/unit/policy_server.py, Python) on a
 * loop of the test's own, through the synchronous C API (sl_channel_*: the same regime HTTP and
 * the WebSocket ask, tests/e2e/test_policy.py) and through the contract: allow and deny, the
 * question's shape, the cache (one question for repeated calls), identical questions under way
 * asked once, the concurrency bound and its queue, timeouts and wrong JSON and 500s as errors
 * (SL_EUNAVAIL, never cached), outstanding questions answered when the regime is freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libgen.h>
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
#include <uv.h>

#include <sluice/authz.h>
#include <sluice/sluice.h>

#include "deps.h"

extern char **environ;

/* How long an answer that must come may take: generous, not a speed claim. */
#define WAIT_MS 30000

static int server_port;
static pid_t server_pid;
static int have_server;
static char script[1100];
static char url[128];

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

static int start_server(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0)
        return 0; /* each test then fails or skips (NEED_DEP) */
    char src[1024];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(script, sizeof script, "%s/policy_server.py", dirname(src));
    if ((server_port = free_port()) < 0)
        return -1;
    char port[16];
    snprintf(port, sizeof port, "%d", server_port);
    char *argv[] = {"python3", script, port, "30", NULL};
    if (posix_spawn(&server_pid, "/usr/bin/python3", NULL, NULL, argv, environ) != 0)
        return -1;
    for (int k = 0; k < WAIT_MS / 20; k++) {
        if (port_open(server_port)) {
            have_server = 1;
            snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/data/sluice/allow", server_port);
            return 0;
        }
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int stop_server(void **state)
{
    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
    }
    return 0;
}

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    json_t **out = ud;
    json_decref(*out);
    *out = json_loadb(data, size * n, 0, NULL);
    return size * n;
}

/* What the service was asked so far: {"questions": N, "last": INPUT}; owned by the caller. */
static json_t *seen(void)
{
    json_t *out = NULL;
    CURL *c = curl_easy_init();
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", server_port);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    assert_non_null(out);
    return out;
}

static long questions(void)
{
    json_t *s = seen();
    long n = (long)json_integer_value(json_object_get(s, "questions"));
    json_decref(s);
    return n;
}

/* A context under the policy mode whose regime is the HTTP one on loop. */
static sl_ctx *policy_ctx(uv_loop_t *loop, double timeout, size_t conc, size_t queue)
{
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_POLICY};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl_regime *r = NULL;
    sl_status st;
    sl_regime_http_opts ho = {
        .url = url, .timeout = timeout, .concurrency = conc, .queue_max = queue, .loop = loop};
    assert_int_equal(sl_regime_http_new(&r, &ho, &st), SL_OK);
    assert_string_equal(r->name, "http");
    sl_ctx_set_regime(ctx, r);
    sl_ctx_set_authz_loop(ctx, loop);
    sl_channel_opts co;
    sl_channel_opts_init(&co);
    co.visibility = SL_VIS_PUBLIC;
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs", &co, NULL), SL_OK);
    /* and the same name in team-a, the workspace of the identities below */
    sl_identity setup;
    sl_identity_local(&setup, "setup");
    setup.source = SL_SOURCE_SYSTEM;
    snprintf(setup.workspace, sizeof setup.workspace, "team-a");
    assert_int_equal(sl_channel_create(ctx, &setup, "jobs", &co, NULL), SL_OK);
    return ctx;
}

static void jwt_identity(sl_identity *id, const char *principal)
{
    sl_identity_init(id);
    snprintf(id->principal, sizeof id->principal, "%s", principal);
    id->source = SL_SOURCE_JWT;
    id->role = SL_ROLE_READ;
    snprintf(id->workspace, sizeof id->workspace, "team-a");
}

static int write1(sl_ctx *ctx, const sl_identity *who, sl_status *st)
{
    sl_write w;
    memset(&w, 0, sizeof w);
    w.data = "1";
    w.data_len = 1;
    return sl_channel_write(ctx, who, "jobs", &w, NULL, 0, st);
}

typedef struct answer {
    int calls;
    sl_decision d[4];
    size_t n;
} answer;

static void got(void *ud, const sl_decision *d, size_t n)
{
    answer *a = ud;
    a->calls++;
    a->n = n;
    for (size_t i = 0; i < n && i < 4; i++)
        a->d[i] = d[i];
}

/* Turns loop until every answer in as[0..n) came (or the deadline). */
static void wait_all(uv_loop_t *loop, answer *as, size_t n)
{
    for (int k = 0; k < WAIT_MS / 10; k++) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += as[i].calls > 0;
        if (done == n)
            return;
        uv_run(loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    fail_msg("the regime did not answer");
}

static void close_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT); /* the regime's curl handles close */
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_c_api_asks_the_http_regime(void **state)
{
    (void)state;
    NEED_DEP(have_server, "/usr/bin/python3 (for tests/unit/policy_server.py)");
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_ctx *ctx = policy_ctx(&loop, 5, 0, 0);
    sl_identity alice, mallory;
    jwt_identity(&alice, "alice");
    jwt_identity(&mallory, "deny-mallory");
    sl_status st;
    long before = questions();
    assert_int_equal(write1(ctx, &alice, &st), SL_OK);
    json_t *s = seen();
    json_t *last = json_object_get(s, "last");
    assert_string_equal(json_string_value(json_object_get(last, "capability")), "channel.write");
    assert_string_equal(json_string_value(json_object_get(last, "resource")), "jobs");
    assert_true(json_is_null(json_object_get(last, "parameters")));
    json_t *id = json_object_get(last, "identity");
    assert_string_equal(json_string_value(json_object_get(id, "principal")), "alice");
    assert_string_equal(json_string_value(json_object_get(id, "source")), "jwt");
    assert_string_equal(json_string_value(json_object_get(id, "role")), "read");
    assert_string_equal(json_string_value(json_object_get(id, "workspace")), "team-a");
    json_decref(s);
    /* Cached for the service's TTL (30 s): the same write asks nothing. */
    assert_int_equal(write1(ctx, &alice, &st), SL_OK);
    assert_int_equal(questions(), before + 1);
    /* Denied: 403, cached too. */
    assert_int_equal(write1(ctx, &mallory, &st), SL_EFORBIDDEN);
    assert_int_equal(write1(ctx, &mallory, &st), SL_EFORBIDDEN);
    assert_int_equal(questions(), before + 2);
    /* The ACL calls of the C API ask it too (acl.list is a global operation). */
    sl_acl_entry *e;
    size_t n;
    assert_int_equal(sl_acl_list(ctx, &mallory, &e, &n, &st), SL_EFORBIDDEN);
    assert_int_equal(questions(), before + 3);
    sl_identity_clear(&alice);
    sl_identity_clear(&mallory);
    sl_ctx_free(ctx);
    close_loop(&loop);
}

static void test_errors_are_unavailable_and_not_cached(void **state)
{
    (void)state;
    NEED_DEP(have_server, "/usr/bin/python3 (for tests/unit/policy_server.py)");
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_ctx *ctx = policy_ctx(&loop, 0.3, 0, 0); /* slow-* answers after 3 s: a timeout */
    static const char *const who[] = {"fail-1", "badjson-1", "slow-1"};
    for (size_t i = 0; i < 3; i++) {
        sl_identity id;
        jwt_identity(&id, who[i]);
        sl_status st;
        long before = questions();
        assert_int_equal(write1(ctx, &id, &st), SL_EUNAVAIL);
        assert_int_equal(st.code, SL_EUNAVAIL);
        assert_int_equal(write1(ctx, &id, &st), SL_EUNAVAIL);
        assert_int_equal(questions(), before + 2); /* asked again: errors are not cached */
        sl_identity_clear(&id);
    }
    sl_ctx_free(ctx);
    close_loop(&loop);
}

static void test_identical_questions_once_and_the_bounds(void **state)
{
    (void)state;
    NEED_DEP(have_server, "/usr/bin/python3 (for tests/unit/policy_server.py)");
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_ctx *ctx = policy_ctx(&loop, 10, 1, 1); /* one at a time, one waiting */
    sl_identity bob;
    jwt_identity(&bob, "bob");
    long before = questions();
    /* Three identical questions under way at once: one request, three answers. */
    answer same[3] = {{0}};
    for (int i = 0; i < 3; i++)
        sl_authorise(ctx, &bob, "channel.read", "news", NULL, got, &same[i]);
    wait_all(&loop, same, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(same[i].calls, 1);
        assert_int_equal(same[i].d[0].verdict, SL_VERDICT_ALLOW);
    }
    assert_int_equal(questions(), before + 1);
    /* Three different ones: one under way, one queued, the third refused at once. */
    answer diff[3] = {{0}};
    static const char *const chans[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        sl_authorise(ctx, &bob, "channel.read", chans[i], NULL, got, &diff[i]);
    assert_int_equal(diff[2].calls, 1);
    assert_int_equal(diff[2].d[0].verdict, SL_VERDICT_ERROR);
    wait_all(&loop, diff, 3);
    assert_int_equal(diff[0].d[0].verdict, SL_VERDICT_ALLOW);
    assert_int_equal(diff[1].d[0].verdict, SL_VERDICT_ALLOW);
    assert_int_equal(questions(), before + 3);
    /* A question under way when the regime goes is answered: an error. */
    answer gone = {0};
    sl_authorise(ctx, &bob, "channel.read", "d", NULL, got, &gone);
    assert_int_equal(gone.calls, 0);
    sl_ctx_set_regime(ctx, NULL);
    assert_int_equal(gone.calls, 1);
    assert_int_equal(gone.d[0].verdict, SL_VERDICT_ERROR);
    sl_identity_clear(&bob);
    sl_ctx_free(ctx);
    close_loop(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c_api_asks_the_http_regime),
        cmocka_unit_test(test_errors_are_unavailable_and_not_cached),
        cmocka_unit_test(test_identical_questions_once_and_the_bounds),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
