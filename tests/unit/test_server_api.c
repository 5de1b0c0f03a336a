/* (C, issue 14) The pure pieces of the server API and GET /audit: the request bodies of
 * POST /server/disconnect and /server/unsubscribe against hostile input, the tail of an audit log
 * (lines cut anywhere, unterminated ends, limits), verification over a prefix of a file (what
 * GET /audit checks while the log grows), and the memory engine's in-flight count as claims come
 * and go. The routes themselves run against real sockets in tests/e2e/test_server_api.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/audit.h>
#include <sluice/sluice.h>

#include "api/ctx.h"
#include "security/audit_internal.h"
#include "server/routes_server.h"
#include "store/engine.h"

/* ---- POST /server/disconnect and /server/unsubscribe bodies ------------------------------------
 */

static int disconnect_rc(const char *text, sl__srv_disconnect *d)
{
    json_t *o = json_loads(text, JSON_ALLOW_NUL, NULL);
    sl_status st;
    sl_status_clear(&st);
    int rc = sl__srv_parse_disconnect(o, d, &st);
    if (rc != SL_OK)
        assert_true(st.message[0] != '\0'); /* every refusal says why */
    json_decref(o);
    return rc;
}

static void test_disconnect_body(void **state)
{
    (void)state;
    sl__srv_disconnect d;
    assert_int_equal(disconnect_rc("{\"principal\":\"alice\"}", &d), SL_OK);
    assert_int_equal(d.code, SL__SRV_CODE_DEFAULT);
    assert_null(d.connection);
    assert_null(d.reason);
    assert_int_equal(
        disconnect_rc("{\"connection\":\"0123abcd\",\"code\":4500,\"reason\":\"r\"}", &d), SL_OK);
    assert_null(d.principal);
    assert_int_equal(d.code, 4500);
    assert_int_equal(disconnect_rc("{\"principal\":\"a\",\"connection\":\"b\",\"code\":null}", &d),
                     SL_OK);
    assert_int_equal(d.code, SL__SRV_CODE_DEFAULT);
    /* the bounds: code 3000..4999, reason 123 bytes, id 64 characters */
    assert_int_equal(disconnect_rc("{\"principal\":\"a\",\"code\":3000}", &d), SL_OK);
    assert_int_equal(disconnect_rc("{\"principal\":\"a\",\"code\":4999}", &d), SL_OK);
    char reason[200], id[100];
    snprintf(reason, sizeof reason, "{\"principal\":\"a\",\"reason\":\"%0123d\"}", 0);
    assert_int_equal(disconnect_rc(reason, &d), SL_OK);
    snprintf(reason, sizeof reason, "{\"principal\":\"a\",\"reason\":\"%0124d\"}", 0);
    assert_int_equal(disconnect_rc(reason, &d), SL_EINVAL);
    snprintf(id, sizeof id, "{\"connection\":\"%064d\"}", 0);
    assert_int_equal(disconnect_rc(id, &d), SL_OK);
    snprintf(id, sizeof id, "{\"connection\":\"%065d\"}", 0);
    assert_int_equal(disconnect_rc(id, &d), SL_EINVAL);
    static const char *const refused[] = {
        "{}",
        "{\"principal\":null}",
        "{\"principal\":\"\"}",
        "{\"principal\":7}",
        "{\"principal\":\"a\\u0000b\"}",
        "{\"principal\":\"a/b\"}",
        "{\"connection\":\"\"}",
        "{\"connection\":\"a b\"}",
        "{\"connection\":\"../x\"}",
        "{\"principal\":\"a\",\"code\":2999}",
        "{\"principal\":\"a\",\"code\":5000}",
        "{\"principal\":\"a\",\"code\":3000.5}",
        "{\"principal\":\"a\",\"code\":\"3000\"}",
        "{\"principal\":\"a\",\"code\":-4000}",
        "{\"principal\":\"a\",\"code\":99999999999999999}",
        "{\"principal\":\"a\",\"reason\":[]}",
        "{\"principal\":\"a\",\"reason\":\"x\\u0000\"}",
        "{\"principal\":\"a\",\"channel\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (disconnect_rc(refused[i], &d) != SL_EINVAL)
            fail_msg("accepted %s", refused[i]);
    char *big = malloc(SL_PRINCIPAL_MAX + 64);
    assert_non_null(big);
    int n = snprintf(big, 32, "{\"principal\":\"");
    memset(big + n, 'p', SL_PRINCIPAL_MAX + 1);
    strcpy(big + n + SL_PRINCIPAL_MAX + 1, "\"}");
    assert_int_equal(disconnect_rc(big, &d), SL_EINVAL);
    free(big);
    /* not an object at all */
    sl_status st;
    assert_int_equal(sl__srv_parse_disconnect(NULL, &d, &st), SL_EJSON);
    json_t *arr = json_array();
    assert_int_equal(sl__srv_parse_disconnect(arr, &d, &st), SL_EJSON);
    json_decref(arr);
}

static int unsubscribe_rc(const char *text)
{
    json_t *o = json_loads(text, JSON_ALLOW_NUL, NULL);
    sl_status st;
    const char *p = NULL, *c = NULL;
    int rc = sl__srv_parse_unsubscribe(o, &p, &c, &st);
    if (rc == SL_OK)
        assert_true(p && c);
    json_decref(o);
    return rc;
}

static void test_unsubscribe_body(void **state)
{
    (void)state;
    assert_int_equal(unsubscribe_rc("{\"principal\":\"alice\",\"channel\":\"news\"}"), SL_OK);
    assert_int_equal(unsubscribe_rc("{\"principal\":\"alice\"}"), SL_EBADID);
    assert_int_equal(unsubscribe_rc("{\"channel\":\"news\"}"), SL_EINVAL);
    assert_int_equal(unsubscribe_rc("{\"principal\":\"alice\",\"channel\":\"bad id\"}"), SL_EBADID);
    assert_int_equal(unsubscribe_rc("{\"principal\":\"alice\",\"channel\":\"x/y\"}"), SL_EBADID);
    assert_int_equal(unsubscribe_rc("{\"principal\":\"alice\",\"channel\":\"news\",\"x\":1}"),
                     SL_EINVAL);
    assert_int_equal(unsubscribe_rc("[]"), SL_EJSON);
}

/* ---- the tail of a log -------------------------------------------------------------------------
 */

/* The lines sl__audit_tail_lines finds, joined with '|'. */
static void tail(const char *buf, int whole, size_t limit, char *out, int *cut)
{
    size_t starts[16], lens[16];
    size_t k = sl__audit_tail_lines(buf, strlen(buf), whole, limit, starts, lens, 16, cut);
    out[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        if (i)
            strcat(out, "|");
        strncat(out, buf + starts[i], lens[i]);
    }
}

static void test_tail_lines(void **state)
{
    (void)state;
    char out[256];
    int cut;
    tail("a\nb\nc\n", 1, 10, out, &cut);
    assert_string_equal(out, "a|b|c");
    assert_int_equal(cut, 0);
    tail("a\nb\nc\n", 1, 2, out, &cut);
    assert_string_equal(out, "b|c");
    assert_int_equal(cut, 1);
    /* an unterminated last line is being written: left out */
    tail("a\nb\nhalf", 1, 10, out, &cut);
    assert_string_equal(out, "a|b");
    /* only the end of the file: the first line may be the end of a longer one */
    tail("ail\nb\nc\n", 0, 10, out, &cut);
    assert_string_equal(out, "b|c");
    assert_int_equal(cut, 1);
    tail("\nb\n", 0, 10, out, &cut); /* the buffer starts right after a newline */
    assert_string_equal(out, "b");
    tail("abc", 1, 10, out, &cut);
    assert_string_equal(out, "");
    assert_int_equal(cut, 0);
    tail("", 1, 10, out, &cut);
    assert_string_equal(out, "");
    tail("a\n\nb\n", 1, 10, out, &cut); /* an empty line is a line (not a record) */
    assert_string_equal(out, "a||b");
    tail("a\nb\n", 1, 0, out, &cut);
    assert_string_equal(out, "");
    assert_int_equal(cut, 1);
    /* the limit is bounded by the room given */
    size_t starts[2], lens[2];
    assert_int_equal(sl__audit_tail_lines("a\nb\nc\n", 6, 1, 100, starts, lens, 2, &cut), 2);
    assert_int_equal(cut, 1);
}

/* ---- verification over a prefix ----------------------------------------------------------------
 */

static void test_verify_prefix(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-srvapi-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    sl_audit_log *log;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"one\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"two\"}", &st), SL_OK);
    uint64_t seq;
    char hash[SL_AUDIT_HASH_HEX + 1];
    sl_audit_log_tip(log, &seq, hash);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END);
    /* records and a line being written after the snapshot are not looked at */
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"three\"}", &st), SL_OK);
    int wfd = open(path, O_WRONLY | O_APPEND);
    assert_true(wfd >= 0);
    assert_int_equal(write(wfd, "{\"half", 6), 6);
    close(wfd);
    sl_audit_verify_result res;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(sl__audit_verify_fd(fd, size, 0, NULL, &res, &st), SL_OK);
    assert_int_equal(res.records, 2);
    assert_int_equal(res.last_seq, seq);
    assert_string_equal(res.last_hash, hash);
    /* the whole file: the half line breaks it */
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(sl__audit_verify_fd(fd, -1, 0, NULL, &res, &st), SL_EINVAL);
    assert_int_equal(res.records, 3);
    /* a prefix cut inside a line is a truncated record */
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(sl__audit_verify_fd(fd, size - 3, 0, NULL, &res, &st), SL_EINVAL);
    assert_int_equal(res.records, 1);
    assert_int_equal(sl__audit_verify_fd(-1, 0, 0, NULL, &res, &st), SL_EINVAL);
    close(fd);
    sl_audit_log_close(log);
    unlink(path);
}

/* ---- in-flight claims ---------------------------------------------------------------------------
 */

static size_t in_flight_of(sl_ctx *ctx, const char *id)
{
    sl__eop op = {.kind = SL__EOP_INFO, .channel = id};
    assert_int_equal(sl__engine_call(ctx->engine, &op), SL_OK);
    size_t n = op.info.in_flight;
    sl__eop list = {.kind = SL__EOP_LIST};
    assert_int_equal(sl__engine_call(ctx->engine, &list), SL_OK);
    for (size_t i = 0; i < list.ninfos; i++)
        if (strcmp(list.infos[i].id, id) == 0)
            assert_int_equal(list.infos[i].in_flight, n); /* LIST says the same */
    sl__eop_clear(&op);
    sl__eop_clear(&list);
    return n;
}

static void test_in_flight(void **state)
{
    (void)state;
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_OPEN};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl_status st;
    sl_channel_opts co;
    sl_channel_opts_init(&co);
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs", &co, &st), SL_OK);
    co.kind = SL_KIND_TOPIC;
    assert_int_equal(sl_channel_create(ctx, NULL, "news", &co, &st), SL_OK);
    for (int i = 0; i < 5; i++) {
        sl_write w = {.data = "1", .data_len = 1};
        assert_int_equal(sl_channel_write(ctx, NULL, "jobs", &w, NULL, 0, &st), SL_OK);
        assert_int_equal(sl_channel_write(ctx, NULL, "news", &w, NULL, 0, &st), SL_OK);
    }
    assert_int_equal(in_flight_of(ctx, "jobs"), 0);
    sl_identity a, b;
    sl_identity_local(&a, "a");
    sl_identity_local(&b, "b");
    sl_message_list la, lb;
    sl_read r = {.limit = 2, .exclusive = 1};
    assert_int_equal(sl_channel_read(ctx, &a, "jobs", &r, &la, &st), SL_OK);
    r.limit = 1;
    assert_int_equal(sl_channel_read(ctx, &b, "jobs", &r, &lb, &st), SL_OK);
    assert_int_equal(in_flight_of(ctx, "jobs"), 3);
    size_t n;
    const char *ids[] = {la.items[0].id};
    assert_int_equal(sl_channel_ack(ctx, &a, "jobs", ids, 1, &n, &st), SL_OK);
    assert_int_equal(in_flight_of(ctx, "jobs"), 2);
    ids[0] = lb.items[0].id;
    assert_int_equal(sl_channel_nack(ctx, &b, "jobs", ids, 1, 30, &n, &st), SL_OK);
    assert_int_equal(in_flight_of(ctx, "jobs"), 1);
    /* topics hold no claims: reading does not count */
    sl_message_list lt;
    sl_read tr = {.limit = 5};
    assert_int_equal(sl_channel_read(ctx, &a, "news", &tr, &lt, &st), SL_OK);
    assert_int_equal(in_flight_of(ctx, "news"), 0);
    sl_message_list_free(&la);
    sl_message_list_free(&lb);
    sl_message_list_free(&lt);
    sl_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disconnect_body), cmocka_unit_test(test_unsubscribe_body),
        cmocka_unit_test(test_tail_lines),      cmocka_unit_test(test_verify_prefix),
        cmocka_unit_test(test_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
