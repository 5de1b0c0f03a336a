/* sluiced's log (server/log.c): the JSON and text line writer against hostile bytes (control bytes,
 * quotes, invalid UTF-8, overlong lines), levels, the request-id rules, the access log's query
 * redaction, and a log file reopened after it was moved aside (rotation). Lines are parsed back
 * with jansson, which refuses invalid UTF-8: whatever a client sends, each record stays one valid
 * JSON object on one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/log.h"

static char line[SL__LOG_LINE_MAX];

/* The line must be one JSON object ending in the only newline; returns it parsed. */
static json_t *parse_line(const char *s, size_t n)
{
    assert_true(n > 0);
    assert_int_equal(strlen(s), n);
    assert_int_equal(s[n - 1], '\n');
    assert_null(memchr(s, '\n', n - 1));
    json_error_t err;
    json_t *o = json_loadb(s, n, 0, &err);
    if (o == NULL)
        fail_msg("not JSON (%s): %s", err.text, s);
    assert_true(json_is_object(o));
    return o;
}

static void test_json_escapes(void **state)
{
    (void)state;
    /* control bytes, quotes, backslashes, DEL; then valid two- and four-byte characters */
    const char *msg = "a\"b\\c\n\r\t\x01\x1f\x7f d \xc3\xa9 \xf0\x9f\x98\x80";
    size_t n = sl__log_render(SL__LOG_JSON, 0, SL__LOG_WARN, msg, NULL, 0, line, sizeof line);
    json_t *o = parse_line(line, n);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), msg);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(o, "ts")), "1970-01-01T00:00:00.000Z");
    json_decref(o);
}

static void test_json_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"x\xffy", "x\xef\xbf\xbdy"},                             /* never a UTF-8 byte */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"end\xe2\x82", "end\xef\xbf\xbd\xef\xbf\xbd"},                           /* cut short */
        {"\x80\xbf", "\xef\xbf\xbd\xef\xbf\xbd"}, /* lone continuations */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sl__log_field f = {.key = "path", .type = SL__LF_STR, .str = cases[i].in};
        size_t n =
            sl__log_render(SL__LOG_JSON, 1, SL__LOG_INFO, cases[i].in, &f, 1, line, sizeof line);
        json_t *o = parse_line(line, n);
        assert_string_equal(json_string_value(json_object_get(o, "msg")), cases[i].out);
        assert_string_equal(json_string_value(json_object_get(o, "path")), cases[i].out);
        json_decref(o);
    }
}

static void test_json_fields(void **state)
{
    (void)state;
    sl__log_field f[] = {
        {.key = "request_id", .type = SL__LF_STR, .str = "r-1"},
        {.key = "status", .type = SL__LF_INT, .num = 403},
        {.key = "duration_ms", .type = SL__LF_MS, .ms = 1.5},
        {.key = "principal", .type = SL__LF_STR, .str = NULL}, /* left out */
        {.key = "empty", .type = SL__LF_STR, .str = ""},
    };
    size_t n =
        sl__log_render(SL__LOG_JSON, 1764939600123LL, SL__LOG_ERROR, "m", f, 5, line, sizeof line);
    json_t *o = parse_line(line, n);
    assert_string_equal(json_string_value(json_object_get(o, "ts")), "2025-12-05T13:00:00.123Z");
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "r-1");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 403);
    assert_true(json_real_value(json_object_get(o, "duration_ms")) == 1.5);
    assert_null(json_object_get(o, "principal"));
    assert_string_equal(json_string_value(json_object_get(o, "empty")), "");
    json_decref(o);
}

/* A message longer than a line is cut (marked "...") and the fields after it survive; the same in
 * a small buffer, with multi-byte characters at every cut. */
static void test_long_lines(void **state)
{
    (void)state;
    size_t big = 3 * SL__LOG_LINE_MAX;
    char *msg = malloc(big + 1);
    assert_non_null(msg);
    for (size_t i = 0; i + 2 <= big; i += 2)
        memcpy(msg + i, "\xc3\xa9", 2); /* é */
    msg[big] = '\0';
    sl__log_field f[] = {{.key = "request_id", .type = SL__LF_STR, .str = "rid"},
                         {.key = "path", .type = SL__LF_STR, .str = msg}};
    for (size_t cap = 256; cap <= sizeof line; cap = cap * 2 + 1) {
        for (int fmt = 0; fmt < 2; fmt++) {
            size_t n = sl__log_render(fmt, 0, SL__LOG_INFO, msg, f, 2, line, cap);
            assert_true(n < cap);
            assert_int_equal(line[n - 1], '\n');
            assert_null(memchr(line, '\n', n - 1));
            assert_non_null(strstr(line, "rid"));
            if (fmt == SL__LOG_JSON) {
                json_t *o = parse_line(line, n);
                const char *m = json_string_value(json_object_get(o, "msg"));
                assert_true(strlen(m) > 3 && !strcmp(m + strlen(m) - 3, "..."));
                assert_string_equal(json_string_value(json_object_get(o, "request_id")), "rid");
                json_decref(o);
            }
        }
    }
    free(msg);
}

static void test_text(void **state)
{
    (void)state;
    sl__log_field f[] = {
        {.key = "request_id", .type = SL__LF_STR, .str = "r1"},
        {.key = "path", .type = SL__LF_STR, .str = "/a b\"c"},
        {.key = "status", .type = SL__LF_INT, .num = 200},
    };
    size_t n =
        sl__log_render(SL__LOG_TEXT, 0, SL__LOG_INFO, "two\nlines\xff", f, 3, line, sizeof line);
    assert_string_equal(line, "1970-01-01T00:00:00.000Z info two\\x0alines\\xff request_id=r1 "
                              "path=\"/a b\\\"c\" status=200\n");
    assert_int_equal(n, strlen(line));
}

static void test_levels(void **state)
{
    (void)state;
    assert_int_equal(sl__log_level_parse("debug"), SL__LOG_DEBUG);
    assert_int_equal(sl__log_level_parse("error"), SL__LOG_ERROR);
    assert_int_equal(sl__log_level_parse("warning"), -1);
    assert_int_equal(sl__log_level_parse(NULL), -1);
    assert_int_equal(sl__log_format_parse("json"), SL__LOG_JSON);
    assert_int_equal(sl__log_format_parse("JSON"), -1);
    /* without a logger only warn and above (and the start-up line) are written */
    assert_false(sl__log_enabled(NULL, SL__LOG_INFO));
    assert_true(sl__log_enabled(NULL, SL__LOG_WARN));
    assert_true(sl__log_enabled(NULL, SL__LOG_START));
}

static void test_request_ids(void **state)
{
    (void)state;
    char id[SL__REQUEST_ID_MAX + 1], id2[SL__REQUEST_ID_MAX + 1];
    char long_id[SL__REQUEST_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id);
    assert_true(sl__request_id_valid("Ab-9._z", 7));
    assert_true(sl__request_id_valid(long_id, SL__REQUEST_ID_MAX));
    assert_false(sl__request_id_valid(long_id, SL__REQUEST_ID_MAX + 1));
    assert_false(sl__request_id_valid("", 0));
    assert_false(sl__request_id_valid("a b", 3));
    assert_false(sl__request_id_valid("a\nb", 3));
    assert_false(sl__request_id_valid("a\0b", 3));
    assert_false(sl__request_id_valid("\xc3\xa9", 2));
    sl__request_id_take(NULL, "client-1", 8, id);
    assert_string_equal(id, "client-1");
    static const char *const bad[] = {NULL, "a b", "x\"y", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl__request_id_take(NULL, bad[i], bad[i] ? strlen(bad[i]) : 0, id);
        assert_int_equal(strlen(id), 16);
        assert_int_equal(strspn(id, "0123456789abcdef"), 16);
    }
    sl__request_id_take(NULL, long_id, sizeof long_id, id);
    sl__request_id_take(NULL, long_id, sizeof long_id, id2);
    assert_int_equal(strlen(id), 16);
    assert_string_not_equal(id, id2); /* random */
}

static void test_query_redact(void **state)
{
    (void)state;
    char out[256];
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"limit=5&exclusive=true", "limit=5&exclusive=true"},
        {"api_key=sk_live_1&limit=5", "api_key=REDACTED&limit=5"},
        {"token=eyJ.x.y", "token=REDACTED"},
        {"access_token=a&sig=b&after=7", "access_token=REDACTED&sig=REDACTED&after=7"},
        {"eyJhbGciOi.secret.sig", "_"}, /* not a parameter name: a credential pasted alone */
        {"%74oken=x", "_=REDACTED"},
        {"a&&b=", "_&b=REDACTED"},
        {"flag", "_"},
        {"exclusive", "exclusive"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = sl__log_query_redact(cases[i].in, strlen(cases[i].in), out, sizeof out);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(out));
    }
    /* too small: whole parameters only */
    char tiny[12];
    sl__log_query_redact("limit=5&api_key=zzz", 19, tiny, sizeof tiny);
    assert_string_equal(tiny, "limit=5");
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* A file log: levels filter, the access line is written whatever the level, and after the file
 * was renamed, reopen starts a new one at the path while the old one keeps what it had. */
static void test_file_and_reopen(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], moved[128];
    snprintf(path, sizeof path, "%s/sluiced.log", dir);
    snprintf(moved, sizeof moved, "%s/sluiced.log.1", dir);
    sl__log *l;
    sl_status st;
    sl_status_clear(&st);
    sl__log_opts o = {.format = SL__LOG_JSON, .level = SL__LOG_WARN, .path = path, .access = 1};
    assert_int_equal(sl__log_open(&l, &o, &st), SL_OK);
    assert_false(sl__log_to_stderr(l));
    sl__logf(l, SL__LOG_INFO, NULL, "hidden %d", 1);
    sl__logf(l, SL__LOG_WARN, "rid-1", "shown %d", 2);
    sl__log_access_rec a = {.request_id = "rid-1",
                            .method = "GET",
                            .path = "/channels",
                            .query = "token=abc&limit=2",
                            .query_len = 17,
                            .status = 200,
                            .bytes = 12,
                            .principal = "ops",
                            .remote = "127.0.0.1:1"};
    sl__log_access(l, &a);
    assert_int_equal(rename(path, moved), 0);
    sl__logf(l, SL__LOG_ERROR, NULL, "still the old file");
    assert_int_equal(sl__log_reopen(l, &st), SL_OK);
    sl__logf(l, SL__LOG_ERROR, NULL, "the new file");
    const char *old = slurp(moved);
    assert_null(strstr(old, "hidden"));
    assert_non_null(strstr(old, "\"msg\":\"shown 2\",\"request_id\":\"rid-1\""));
    assert_non_null(strstr(old, "\"query\":\"token=REDACTED&limit=2\""));
    assert_null(strstr(old, "abc"));
    assert_non_null(strstr(old, "still the old file"));
    assert_null(strstr(old, "the new file"));
    const char *fresh = slurp(path);
    assert_non_null(strstr(fresh, "the new file"));
    assert_null(strstr(fresh, "shown"));
    /* a reopen that fails keeps the current file */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir) == 0 ? 0 : -1, -1); /* moved is still there */
    assert_int_equal(unlink(moved), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(sl__log_reopen(l, &st), SL_EIO);
    assert_non_null(strstr(st.message, "cannot reopen"));
    sl__log_free(l);
    o.path = "/nonexistent-dir/x.log";
    assert_int_equal(sl__log_open(&l, &o, &st), SL_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_json_invalid_utf8),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_query_redact),
        cmocka_unit_test(test_file_and_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
