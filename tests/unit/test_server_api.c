/* The pure pieces of the server API and GET /audit: the request bodies of
 * POST /server/disconnect and /server/unsubscribe against hostile input (and the shared body
 * helpers they use), the tail of an audit log (lines cut anywhere, unterminated ends, limits),
 * verification over a prefix of a file (what GET /audit checks while the log grows), and the
 * memory engine's in-flight count as claims come and go. The routes themselves run against real
 * sockets in tests/e2e/test_server_api.py. */
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
#include <sluice/jwt.h>
#include <sluice/sluice.h>
#include <uv.h>

#include "api/ctx.h"
#include "security/audit_internal.h"
#include "server/routes_audit.h"
#include "server/params.h"
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

/* The body helpers every route family shares (server/params.h): a string member with a NUL inside
 * is refused (a C caller would see it cut short: "read\u0000x" is not "read"), and an unknown
 * member is named. */
static void test_shared_body_helpers(void **state)
{
    (void)state;
    json_t *o =
        json_loads("{\"role\":\"read\\u0000x\",\"name\":\"n\",\"n\":1}", JSON_ALLOW_NUL, NULL);
    assert_non_null(o);
    sl_status st;
    const char *s = NULL;
    sl_status_clear(&st);
    assert_int_equal(sl__get_string(o, "role", &s, &st), -1);
    assert_int_equal(st.code, SL_EINVAL);
    assert_string_equal(st.message, "role must be a string without NUL bytes");
    assert_null(s);
    assert_int_equal(sl__get_string(o, "name", &s, &st), 1);
    assert_string_equal(s, "n");
    assert_int_equal(sl__get_string(o, "absent", &s, &st), 0);
    assert_int_equal(sl__get_string(o, "n", &s, &st), -1);
    assert_string_equal(st.message, "n must be a string");
    static const char *const fields[] = {"role", "name", NULL};
    assert_int_equal(sl__only_fields(o, fields, &st), SL_EINVAL);
    assert_string_equal(st.message, "unknown field 'n'");
    json_decref(o);
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

/* ---- verification that remembers the verified prefix (GET /audit's) ------------------------- */

/* Verifies path's first size bytes (-1: all) with *memo, checks the answer is the one a
 * verification of the whole from its start gives, and returns sl__audit_verify_memo's code. */
static int memo_verify(const char *path, off_t size, sl__audit_memo *memo, int *reused,
                       sl_audit_verify_result *res)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    if (size < 0)
        size = lseek(fd, 0, SEEK_END);
    sl_status st;
    sl_audit_verify_result full;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    int frc = sl__audit_verify_fd(fd, size, 0, NULL, &full, &st);
    int rc = sl__audit_verify_memo(fd, size, 0, NULL, memo, reused, res, &st);
    close(fd);
    assert_int_equal(rc, frc);
    assert_int_equal(res->intact, full.intact);
    assert_int_equal(res->bad_line, full.bad_line);
    assert_string_equal(res->reason, full.reason);
    assert_int_equal(res->records, full.records);
    assert_int_equal(res->last_seq, full.last_seq);
    assert_string_equal(res->last_hash, full.last_hash);
    return rc;
}

/* Overwrites len bytes at off, in place: same inode, same size. */
static void rewrite_at(const char *path, off_t off, const char *bytes, size_t len)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, len, off), (ssize_t)len);
    close(fd);
}

static void test_verify_memo(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-memo-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    sl_audit_log *log;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"one\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"two\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"three\"}", &st), SL_OK);
    sl__audit_memo memo = {0};
    sl_audit_verify_result res;
    int reused = -1;
    /* Nothing remembered: all of it, and it is remembered. */
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 0);
    assert_int_equal(res.records, 3);
    off_t three = memo.len;
    assert_true(three > 0);
    assert_int_equal(memo.records, 3);
    /* Nothing appended: the memo covers it all. */
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 1);
    assert_int_equal(res.records, 3);
    /* Appended records are verified from the memo's tip and counted with the prefix. */
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"four\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"five\"}", &st), SL_OK);
    uint64_t seq;
    char hash[SL_AUDIT_HASH_HEX + 1];
    sl_audit_log_tip(log, &seq, hash);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 1);
    assert_int_equal(res.records, 5);
    assert_int_equal(res.last_seq, 5);
    assert_string_equal(res.last_hash, hash);
    assert_int_equal(memo.records, 5);
    off_t five = memo.len;
    /* A snapshot shorter than the memo (cannot reuse it) still verifies, from the start. */
    assert_int_equal(memo_verify(path, three, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 0);
    assert_int_equal(res.records, 3);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(memo.len, five);
    /* An appended line that does not chain: found, at its line number in the whole file, and
     * nothing is remembered. */
    int wfd = open(path, O_WRONLY | O_APPEND);
    assert_true(wfd >= 0);
    const char forged[] = "{\"seq\":6,\"prev\":\"" SL_AUDIT_GENESIS "\",\"event\":\"six\"}\n";
    assert_int_equal(write(wfd, forged, sizeof forged - 1), (ssize_t)sizeof forged - 1);
    close(wfd);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_EINVAL);
    assert_int_equal(reused, 1);
    assert_int_equal(res.bad_line, 6);
    assert_int_equal(res.records, 5);
    assert_int_equal(memo.len, 0);
    assert_int_equal(truncate(path, five), 0);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(memo.len, five);
    /* An earlier record rewritten in place after the memo was taken (same size, same inode):
     * the prefix's digest no longer matches, so all of it is verified and the edit is found. */
    rewrite_at(path, 0, "{\"seq\":1,", 9); /* the same bytes: still the memo's prefix */
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 1);
    char *text = malloc((size_t)five + 1);
    assert_non_null(text);
    int rfd = open(path, O_RDONLY);
    assert_int_equal(read(rfd, text, (size_t)five), (ssize_t)five);
    close(rfd);
    text[five] = '\0';
    char *two = strstr(text, "\"two\"");
    assert_non_null(two);
    rewrite_at(path, two - text, "\"TWO\"", 5);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_EINVAL);
    assert_int_equal(reused, 0);
    assert_int_equal(res.bad_line, 3);
    assert_int_equal(res.records, 2);
    assert_int_equal(memo.len, 0);
    rewrite_at(path, two - text, "\"two\"", 5);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 0);
    /* The edit of a remembered record that keeps the chain's links (the last record's own text):
     * no later line shows it, the digest does; the verdict is the full verification's (intact,
     * with another tip: GET /audit compares the tip with the writer's). */
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    char *five_at = strstr(text, "\"five\"");
    assert_non_null(five_at);
    rewrite_at(path, five_at - text, "\"FIVE\"", 6);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 0);
    assert_string_not_equal(res.last_hash, hash);
    rewrite_at(path, five_at - text, "\"five\"", 6);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_string_equal(res.last_hash, hash);
    /* Cut short below the memo: verified from the start. */
    assert_int_equal(truncate(path, three), 0);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 0);
    assert_int_equal(res.records, 3);
    /* Another file (rotation: a new inode at the path) with the same first bytes: not reused. */
    char moved[sizeof path + 4];
    snprintf(moved, sizeof moved, "%s.old", path);
    assert_int_equal(rename(path, moved), 0);
    int nfd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(nfd >= 0);
    assert_int_equal(write(nfd, text, (size_t)three), (ssize_t)three);
    close(nfd);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(reused, 0);
    assert_int_equal(res.records, 3);
    /* An empty file: intact, nothing remembered. */
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(memo_verify(path, -1, &memo, &reused, &res), SL_OK);
    assert_int_equal(memo.len, 0);
    assert_int_equal(sl__audit_verify_memo(-1, 0, 0, NULL, &memo, NULL, &res, &st), SL_EINVAL);
    free(text);
    sl_audit_log_close(log);
    unlink(path);
    unlink(moved);
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

/* ---- GET /audit through the router, on a real loop ------------------------------------------ */

#define SECRET "0123456789abcdef0123456789abcdef"

typedef struct audit_fx {
    sl_ctx *ctx;
    sl_jwt_keyring *keys;
    sl_audit_log *log;
    char path[64];
    uv_loop_t loop;
    sl__router router;
    char *token;
} audit_fx;

static void audit_fx_open(audit_fx *f)
{
    memset(f, 0, sizeof *f);
    sl_ctx_options o = {.mode = SL_MODE_TOKEN};
    assert_int_equal(sl_ctx_new(&f->ctx, &o), SL_OK);
    assert_int_equal(sl_jwt_keyring_new(&f->keys), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(f->keys, NULL, SECRET, strlen(SECRET)), SL_OK);
    sl_jwt_claims c = {.sub = "ops",
                       .role = SL_ROLE_ADMIN,
                       .iat = sl_wallclock(NULL),
                       .exp = sl_wallclock(NULL) + 600};
    assert_int_equal(sl_jwt_sign(f->keys, NULL, &c, &f->token), SL_OK);
    snprintf(f->path, sizeof f->path, "/tmp/sluice-audit-tail-XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    unlink(f->path);
    sl_status st;
    assert_int_equal(sl_audit_log_open(&f->log, f->path, &st), SL_OK);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->router.ctx = f->ctx;
    f->router.authn.keys = f->keys;
    sl_jwt_verify_opts_init(&f->router.authn.jwt);
    f->router.audit = f->log;
    f->router.audit_path = f->path;
    f->router.loop = &f->loop;
}

static void audit_fx_close(audit_fx *f)
{
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    sl__audit_routes_free(&f->router);
    sl__router_clear(&f->router);
    sl_audit_log_close(f->log);
    unlink(f->path);
    free(f->token);
    sl_jwt_keyring_free(f->keys);
    sl_ctx_free(f->ctx);
}

typedef struct areq {
    sl_http_request req;
    sl_http_header hdr;
    char auth[600];
    int status;
    json_t *body;
} areq;

static void areq_done(void *ud, sl_http_request *req, sl__response *resp)
{
    (void)req;
    areq *a = ud;
    a->status = resp->status;
    a->body = json_loadb(resp->body, resp->body_len, 0, NULL);
}

static void areq_send(audit_fx *f, areq *a, const char *query)
{
    memset(a, 0, sizeof *a);
    snprintf(a->auth, sizeof a->auth, "Bearer %s", f->token);
    a->hdr = (sl_http_header){"Authorization", 13, a->auth, strlen(a->auth)};
    a->req.method = "GET";
    a->req.target = a->req.path = "/audit";
    a->req.target_len = a->req.path_len = 6;
    a->req.query = query;
    a->req.query_len = strlen(query);
    a->req.body = "";
    a->req.headers = &a->hdr;
    a->req.nheaders = 1;
    sl__router_serve(&f->router, &a->req, areq_done, a);
}

/* One read runs on the thread pool, SL__AUDIT_WAITING_MAX wait, the rest are told to come back:
 * decided as the requests arrive, before the loop runs at all. */
static void test_audit_reads_queue_bounded(void **state)
{
    (void)state;
    audit_fx f;
    audit_fx_open(&f);
    sl_status st;
    assert_int_equal(sl_audit_log_write(f.log, "{\"event\":\"one\"}", &st), SL_OK);
    enum { N = SL__AUDIT_WAITING_MAX + 4 };
    areq *reqs = calloc(N, sizeof *reqs);
    assert_non_null(reqs);
    for (size_t i = 0; i < N; i++)
        areq_send(&f, &reqs[i], "limit=5");
    for (size_t i = 0; i < N; i++)
        if (i <= SL__AUDIT_WAITING_MAX)
            assert_int_equal(reqs[i].status, 0); /* not answered yet */
        else
            assert_int_equal(reqs[i].status, 503);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    for (size_t i = 0; i <= SL__AUDIT_WAITING_MAX; i++) {
        assert_int_equal(reqs[i].status, 200);
        assert_true(json_is_true(json_object_get(reqs[i].body, "verified")));
        assert_int_equal(json_array_size(json_object_get(reqs[i].body, "records")), 1);
    }
    for (size_t i = 0; i < N; i++)
        json_decref(reqs[i].body);
    free(reqs);
    audit_fx_close(&f);
}

/* Records near the size limit: the tail read stops at SL__AUDIT_TAIL_BYTES and says more exist;
 * the verification still covers every record. */
static void test_audit_tail_bytes_bounded(void **state)
{
    (void)state;
    audit_fx f;
    audit_fx_open(&f);
    sl_status st;
    size_t big = 900 * 1024, n = SL__AUDIT_TAIL_BYTES / big + 3;
    char *rec = malloc(big + 64);
    assert_non_null(rec);
    int k = snprintf(rec, 64, "{\"event\":\"big\",\"pad\":\"");
    memset(rec + k, 'x', big);
    strcpy(rec + k + big, "\"}");
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sl_audit_log_write(f.log, rec, &st), SL_OK);
    free(rec);
    areq a;
    areq_send(&f, &a, "limit=1000");
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.status, 200);
    size_t got = json_array_size(json_object_get(a.body, "records"));
    assert_true(got > 0 && got < n);
    assert_true(got * big <= SL__AUDIT_TAIL_BYTES);
    assert_true(json_is_true(json_object_get(a.body, "more")));
    assert_true(json_is_true(json_object_get(a.body, "verified")));
    assert_int_equal(json_integer_value(json_object_get(a.body, "checked")), n);
    json_t *last = json_array_get(json_object_get(a.body, "records"), got - 1);
    assert_int_equal(json_integer_value(json_object_get(last, "seq")), n);
    json_decref(a.body);
    /* no audit log, and a bad limit */
    f.router.audit = NULL;
    areq_send(&f, &a, "");
    assert_int_equal(a.status, 404);
    json_decref(a.body);
    f.router.audit = f.log;
    areq_send(&f, &a, "limit=1001");
    assert_int_equal(a.status, 400);
    json_decref(a.body);
    audit_fx_close(&f);
}

/* One GET /audit through the router; its answer (json_decref it). */
static json_t *audit_get(audit_fx *f)
{
    areq a;
    areq_send(f, &a, "limit=1000");
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.status, 200);
    return a.body;
}

static void expect_verified(json_t *b, json_int_t checked, json_int_t first_seq)
{
    assert_true(json_is_true(json_object_get(b, "verified")));
    assert_int_equal(json_integer_value(json_object_get(b, "checked")), checked);
    assert_int_equal(json_integer_value(json_object_get(b, "first_seq")), first_seq);
    assert_null(json_object_get(b, "bad_line"));
    json_decref(b);
}

static void expect_broken(json_t *b, json_int_t bad_line, const char *reason)
{
    assert_true(json_is_false(json_object_get(b, "verified")));
    assert_int_equal(json_integer_value(json_object_get(b, "bad_line")), bad_line);
    assert_non_null(strstr(json_string_value(json_object_get(b, "reason")), reason));
    json_decref(b);
}

/* Swaps the first occurrence of from in path for to (same length), in place. */
static void edit_log(const char *path, const char *from, const char *to)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    char *at = strstr(text, from);
    assert_non_null(at);
    assert_int_equal(strlen(from), strlen(to));
    rewrite_at(path, at - text, to, strlen(to));
}

/* The reader remembers what it verified: later reads verify what was appended, yet an earlier
 * record rewritten in place, the file cut short and a rotated file are answered as a verification
 * of the whole file would. */
static void test_audit_read_incremental(void **state)
{
    (void)state;
    audit_fx f;
    audit_fx_open(&f);
    sl_status st;
    assert_int_equal(sl_audit_log_write(f.log, "{\"event\":\"one\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(f.log, "{\"event\":\"two\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(f.log, "{\"event\":\"three\"}", &st), SL_OK);
    expect_verified(audit_get(&f), 3, 1);
    assert_int_equal(sl_audit_log_write(f.log, "{\"event\":\"four\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(f.log, "{\"event\":\"five\"}", &st), SL_OK);
    json_t *b = audit_get(&f);
    json_t *recs = json_object_get(b, "records");
    assert_int_equal(json_array_size(recs), 5);
    assert_int_equal(json_integer_value(json_object_get(b, "last_seq")), 5);
    expect_verified(b, 5, 1);
    /* An earlier record edited in place: the next line's link shows it. */
    edit_log(f.path, "\"two\"", "\"TWO\"");
    expect_broken(audit_get(&f), 3, "hash chain broken");
    edit_log(f.path, "\"TWO\"", "\"two\"");
    expect_verified(audit_get(&f), 5, 1);
    /* The last record edited in place: no link shows it, the writer's tip does. */
    edit_log(f.path, "\"five\"", "\"FIVE\"");
    expect_broken(audit_get(&f), 0, "does not end with the last record the server wrote");
    edit_log(f.path, "\"FIVE\"", "\"five\"");
    expect_verified(audit_get(&f), 5, 1);
    /* Rotated: the new file is verified from its own first record. */
    char moved[80];
    snprintf(moved, sizeof moved, "%s.1", f.path);
    assert_int_equal(rename(f.path, moved), 0);
    assert_int_equal(sl_audit_log_reopen(f.log, &st), SL_OK);
    assert_int_equal(sl_audit_log_write(f.log, "{\"event\":\"six\"}", &st), SL_OK);
    expect_verified(audit_get(&f), 1, 6);
    assert_int_equal(sl_audit_log_write(f.log, "{\"event\":\"seven\"}", &st), SL_OK);
    expect_verified(audit_get(&f), 2, 6);
    /* Cut short (the last record removed): shorter than what was remembered. */
    FILE *fp = fopen(f.path, "rb");
    assert_non_null(fp);
    char line[512];
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    assert_int_equal(truncate(f.path, (off_t)strlen(line)), 0);
    b = audit_get(&f);
    assert_int_equal(json_integer_value(json_object_get(b, "checked")), 1);
    expect_broken(b, 0, "does not end with the last record the server wrote (seq 7)");
    unlink(moved);
    audit_fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disconnect_body),
        cmocka_unit_test(test_unsubscribe_body),
        cmocka_unit_test(test_shared_body_helpers),
        cmocka_unit_test(test_tail_lines),
        cmocka_unit_test(test_verify_prefix),
        cmocka_unit_test(test_verify_memo),
        cmocka_unit_test(test_in_flight),
        cmocka_unit_test(test_audit_reads_queue_bounded),
        cmocka_unit_test(test_audit_tail_bytes_bounded),
        cmocka_unit_test(test_audit_read_incremental),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
