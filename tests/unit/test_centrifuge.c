/* The Centrifugo JSON protocol codec. The golden strings are exactly what the real `centrifuge` npm
 * client 5.8.0 sent over a fake WebSocket (commands) and what it accepted and understood as replies
 * and pushes (events and results checked in that run), so the codec stays wire-compatible with it;
 * then every command and reply shape, batching, per-command errors, and hostile frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/centrifuge.h"

#define MAXC SL__CF_MAX_COMMANDS

static sl__cf_command cmds[MAXC];

/* Parses a frame expected to succeed with exactly want commands. */
static size_t parse_ok(const char *s, size_t want)
{
    size_t n = 99;
    sl_status st;
    sl_status_clear(&st);
    int rc = sl__cf_parse_frame(s, strlen(s), cmds, MAXC, &n, &st);
    if (rc != SL_OK)
        fail_msg("rc %d for %s: %s", rc, s, st.message);
    assert_int_equal(n, want);
    return n;
}

static int parse_rc(const char *s, size_t len)
{
    size_t n = 99;
    sl_status st;
    int rc = sl__cf_parse_frame(s, len, cmds, MAXC, &n, &st);
    if (rc != SL_OK)
        assert_int_equal(n, 0);
    else
        sl__cf_commands_clear(cmds, n);
    return rc;
}

/* ---- the publish fast path (centrifuge_fast.c) --------------------------------------------------
 */

/* The fast path's answer for line: 1 taken (the command compared with the general parser's and
 * cleared), 0 handed on. */
static int fast(const char *line)
{
    sl__cf_command f, g;
    int r = sl__cf_parse_publish_fast(line, strlen(line), &f);
    assert_true(r == 0 || r == 1);
    if (r == 0)
        return 0;
    sl_status st;
    assert_int_equal(sl__cf_parse_line(line, strlen(line), &g, 1, &st), 0);
    assert_int_equal(f.method, SL__CF_PUBLISH);
    assert_int_equal(g.method, f.method);
    assert_int_equal(g.id, f.id);
    assert_int_equal(g.error, 0);
    assert_int_equal(f.error, 0);
    assert_string_equal(g.channel, f.channel);
    assert_int_equal(g.data_len, f.data_len);
    assert_memory_equal(g.data, f.data, f.data_len);
    sl__cf_command_clear(&f);
    sl__cf_command_clear(&g);
    return 1;
}

static void test_publish_fast_path_takes_the_common_shapes(void **state)
{
    (void)state;
    /* what `sluice bench ws` and the centrifuge client send, members in either order */
    assert_true(
        fast("{\"publish\":{\"channel\":\"bench\",\"data\":{\"t\":17,\"s\":1}},\"id\":42}"));
    assert_true(fast("{\"id\":3,\"publish\":{\"channel\":\"news\",\"data\":{\"text\":\"hi\"}}}"));
    assert_true(fast("{\"id\":3,\"publish\":{\"data\":[1,2.5,-0,true,null],\"channel\":\"a:b\"}}"));
    assert_true(fast(" { \"id\" : 4294967295 , \"publish\" : { \"channel\" : \"c\" , "
                     "\"data\" : \"caf\xc3\xa9\" } } "));
    assert_true(fast(
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":{\"a\":{\"b\":1},\"b\":{\"a\":1}}}}"));

    sl__cf_command c;
    const char *line = "{\"id\":9,\"publish\":{\"channel\":\"news\",\"data\":{\"x\": 1.50}}}";
    assert_int_equal(sl__cf_parse_publish_fast(line, strlen(line), &c), 1);
    assert_int_equal(c.id, 9);
    assert_string_equal(c.channel, "news");
    assert_string_equal(c.data, "{\"x\": 1.50}"); /* the bytes sent */
    sl__cf_command_clear(&c);
}

static void test_publish_fast_path_hands_on_the_rest(void **state)
{
    (void)state;
    static const char *const general[] = {
        /* errors of every kind stay with the general parser and its wording */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":{\"a\":1,\"a\":2}}}", /* dup in data */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":[{\"a\":1,\"b\":{\"a\":1,\"a\":1}}]}}",
        "{\"id\":1,\"id\":2,\"publish\":{\"channel\":\"c\",\"data\":1}}",          /* dup id */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"channel\":\"d\",\"data\":1}}", /* dup channel */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":null}}",                /* no data */
        "{\"id\":1,\"publish\":{\"channel\":\"\",\"data\":1}}", /* empty channel */
        "{\"id\":1,\"publish\":{\"channel\":\"c\"}}",
        "{\"id\":0,\"publish\":{\"channel\":\"c\",\"data\":1}}", /* no id */
        "{\"publish\":{\"channel\":\"c\",\"data\":1}}",
        "{\"id\":1.0,\"publish\":{\"channel\":\"c\",\"data\":1}}",
        "{\"id\":-1,\"publish\":{\"channel\":\"c\",\"data\":1}}",
        "{\"id\":4294967296,\"publish\":{\"channel\":\"c\",\"data\":1}}",
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":1},\"x\":1}", /* extra member */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":1,\"x\":1}}",
        "{\"id\":1,\"subscribe\":{\"channel\":\"c\"}}",                 /* other command */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":1}",         /* truncated */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":01}}",       /* not JSON */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":\"\xc3\"}}", /* bad UTF-8 */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":1e999}}",    /* not finite */
        "{\"id\":1,\"publish\":{\"channel\":\"c\\u0064\",\"data\":1}}", /* escapes */
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":\"a\\\"b\"}}",
        "{\"id\":1,\"publish\":{\"channel\":\"caf\xc3\xa9\",\"data\":1}}", /* not ASCII */
        "{\"id\":1,\"publish\":[]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof general / sizeof *general; i++)
        if (fast(general[i]))
            fail_msg("the fast path took %s", general[i]);

    /* past its bounds (depth, keys in one object) it hands on too, and the general parser decides
     */
    char deep[256] = "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":";
    for (int i = 0; i < 20; i++)
        strcat(deep, "[");
    for (int i = 0; i < 20; i++)
        strcat(deep, "]");
    strcat(deep, "}}");
    assert_false(fast(deep));
    assert_int_equal(parse_rc(deep, strlen(deep)), SL_OK);
    char wide[512] = "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":{";
    for (int i = 0; i < 20; i++)
        sprintf(wide + strlen(wide), "%s\"k%d\":%d", i ? "," : "", i, i);
    strcat(wide, "}}}");
    assert_false(fast(wide));
    assert_int_equal(parse_rc(wide, strlen(wide)), SL_OK);

    /* a duplicate in data is still a frame error, as docs/WEBSOCKET.md says */
    const char *dup = "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":{\"a\":1,\"a\":2}}}";
    assert_int_equal(parse_rc(dup, strlen(dup)), SL_EJSON);
}

/* ---- golden commands from the real client ---------------------------------------------------- */

static void test_golden_commands(void **state)
{
    (void)state;
    parse_ok("{\"connect\":{\"token\":\"tok1\",\"name\":\"js\",\"version\":\"1.0\"},\"id\":1}", 1);
    assert_int_equal(cmds[0].method, SL__CF_CONNECT);
    assert_int_equal(cmds[0].id, 1);
    assert_int_equal(cmds[0].error, 0);
    assert_string_equal(cmds[0].token, "tok1");
    assert_string_equal(cmds[0].name, "js");
    assert_string_equal(cmds[0].version, "1.0");
    assert_null(cmds[0].data);
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"subscribe\":{\"channel\":\"news\",\"flag\":1,\"recover\":true,\"offset\":5,"
             "\"epoch\":\"abc\"},\"id\":2}",
             1);
    assert_int_equal(cmds[0].method, SL__CF_SUBSCRIBE);
    assert_int_equal(cmds[0].id, 2);
    assert_string_equal(cmds[0].channel, "news");
    assert_int_equal(cmds[0].flag, 1);
    assert_true(cmds[0].recover);
    assert_int_equal(cmds[0].offset, 5);
    assert_string_equal(cmds[0].epoch, "abc");
    assert_null(cmds[0].token);
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"subscribe\":{\"channel\":\"$priv\",\"token\":\"subtok\",\"flag\":1},\"id\":9}", 1);
    assert_string_equal(cmds[0].channel, "$priv");
    assert_string_equal(cmds[0].token, "subtok");
    assert_false(cmds[0].recover);
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"publish\":{\"channel\":\"news\",\"data\":{\"text\":\"hi\",\"n\":1.5}},\"id\":3}",
             1);
    assert_int_equal(cmds[0].method, SL__CF_PUBLISH);
    assert_string_equal(cmds[0].channel, "news");
    assert_string_equal(cmds[0].data, "{\"text\":\"hi\",\"n\":1.5}");
    assert_int_equal(cmds[0].data_len, strlen("{\"text\":\"hi\",\"n\":1.5}"));
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"publish\":{\"channel\":\"secret\",\"data\":1},\"id\":8}", 1);
    assert_string_equal(cmds[0].data, "1");
    sl__cf_command_clear(&cmds[0]);

    parse_ok(
        "{\"rpc\":{\"method\":\"queue.claim\",\"data\":{\"channel\":\"jobs\",\"max\":2}},\"id\":4}",
        1);
    assert_int_equal(cmds[0].method, SL__CF_RPC);
    assert_string_equal(cmds[0].rpc_method, "queue.claim");
    assert_string_equal(cmds[0].data, "{\"channel\":\"jobs\",\"max\":2}");
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"send\":{\"data\":{\"ping\":1}}}", 1);
    assert_int_equal(cmds[0].method, SL__CF_SEND);
    assert_int_equal(cmds[0].id, 0);
    assert_string_equal(cmds[0].data, "{\"ping\":1}");
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"history\":{\"channel\":\"news\",\"since\":{\"offset\":2,\"epoch\":\"abc\"},"
             "\"limit\":10,\"reverse\":true},\"id\":5}",
             1);
    assert_int_equal(cmds[0].method, SL__CF_HISTORY);
    assert_true(cmds[0].has_limit);
    assert_int_equal(cmds[0].limit, 10);
    assert_true(cmds[0].has_since);
    assert_int_equal(cmds[0].since_offset, 2);
    assert_string_equal(cmds[0].since_epoch, "abc");
    assert_true(cmds[0].reverse);
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"presence\":{\"channel\":\"news\"},\"id\":6}", 1);
    assert_int_equal(cmds[0].method, SL__CF_PRESENCE);
    assert_string_equal(cmds[0].channel, "news");
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"presence_stats\":{\"channel\":\"news\"},\"id\":7}", 1);
    assert_int_equal(cmds[0].method, SL__CF_PRESENCE_STATS);
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{}", 1);
    assert_int_equal(cmds[0].method, SL__CF_PING);
    assert_int_equal(cmds[0].id, 0);
    assert_int_equal(cmds[0].error, 0);
    sl__cf_command_clear(&cmds[0]);

    /* Hand-crafted from the client's source (centrifuge.ts _refresh, subscription.ts _refresh,
     * _unsubscribe): same construction, id appended last. */
    parse_ok("{\"refresh\":{\"token\":\"tok2\"},\"id\":10}", 1);
    assert_int_equal(cmds[0].method, SL__CF_REFRESH);
    assert_string_equal(cmds[0].token, "tok2");
    sl__cf_command_clear(&cmds[0]);
    parse_ok("{\"sub_refresh\":{\"channel\":\"$priv\",\"token\":\"subtok2\"},\"id\":11}", 1);
    assert_int_equal(cmds[0].method, SL__CF_SUB_REFRESH);
    assert_string_equal(cmds[0].channel, "$priv");
    assert_string_equal(cmds[0].token, "subtok2");
    sl__cf_command_clear(&cmds[0]);
    parse_ok("{\"unsubscribe\":{\"channel\":\"news\"},\"id\":12}", 1);
    assert_int_equal(cmds[0].method, SL__CF_UNSUBSCRIBE);
    assert_string_equal(cmds[0].channel, "news");
    sl__cf_command_clear(&cmds[0]);
}

static void test_connect_subs_and_optional_fields(void **state)
{
    (void)state;
    parse_ok("{\"id\":1,\"connect\":{\"data\":{\"x\":[1,2]},\"headers\":{\"a\":\"b\"},"
             "\"subs\":{\"a\":{\"recover\":true,\"offset\":2,\"epoch\":\"e\"},\"b\":{}}}}",
             1);
    assert_int_equal(cmds[0].error, 0);
    assert_null(cmds[0].token);
    assert_string_equal(cmds[0].data, "{\"x\":[1,2]}");
    assert_int_equal(cmds[0].nsubs, 2);
    assert_string_equal(cmds[0].subs[0].channel, "a");
    assert_true(cmds[0].subs[0].recover);
    assert_int_equal(cmds[0].subs[0].offset, 2);
    assert_string_equal(cmds[0].subs[0].epoch, "e");
    assert_string_equal(cmds[0].subs[1].channel, "b");
    assert_null(cmds[0].subs[1].epoch);
    sl__cf_command_clear(&cmds[0]);

    /* Fields newer clients send (positioned, recoverable, join_leave, delta, tf) are read or
     * ignored, never refused. */
    parse_ok("{\"subscribe\":{\"channel\":\"c\",\"positioned\":true,\"recoverable\":true,"
             "\"join_leave\":true,\"delta\":\"fossil\",\"tf\":{}},\"id\":3}",
             1);
    assert_int_equal(cmds[0].error, 0);
    assert_true(cmds[0].positioned && cmds[0].recoverable && cmds[0].join_leave);
    sl__cf_command_clear(&cmds[0]);

    parse_ok("{\"id\":4,\"history\":{\"channel\":\"c\"}}", 1);
    assert_false(cmds[0].has_limit);
    assert_false(cmds[0].has_since);
    sl__cf_command_clear(&cmds[0]);
    parse_ok("{\"id\":4,\"history\":{\"channel\":\"c\",\"limit\":-1}}", 1);
    assert_int_equal(cmds[0].limit, -1);
    sl__cf_command_clear(&cmds[0]);
    parse_ok("{\"id\":4,\"rpc\":{\"method\":\"m\"}}", 1);
    assert_null(cmds[0].data);
    sl__cf_command_clear(&cmds[0]);
    parse_ok("{\"id\":4294967295,\"presence\":{\"channel\":\"c\"}}", 1);
    assert_int_equal(cmds[0].id, 4294967295u);
    sl__cf_command_clear(&cmds[0]);
}

/* data is kept byte for byte, wherever it sits and however the key is spelled. */
static void test_data_verbatim(void **state)
{
    (void)state;
    parse_ok(
        "{\"id\":1,\"publish\":{\"data\" :  {\"a\":1.10, \"b\":\"}]\\\"{\" } ,\"channel\":\"x\"}}",
        1);
    assert_string_equal(cmds[0].data, "{\"a\":1.10, \"b\":\"}]\\\"{\" }");
    sl__cf_command_clear(&cmds[0]);
    /* Reals keep their spelling (a jansson round trip would print 1e+300 and 0.10000000000000001).
     */
    parse_ok("{\"id\":1,\"publish\":{\"channel\":\"x\",\"data\":[1E300,0.1,-0.0,1.50]}}", 1);
    assert_string_equal(cmds[0].data, "[1E300,0.1,-0.0,1.50]");
    sl__cf_command_clear(&cmds[0]);
}

static void test_data_escaped_key(void **state)
{
    (void)state;
    parse_ok("{\"id\":1,\"publish\":{\"channel\":\"x\",\"d\\u0061ta\":[1.0e2, \"\\u00e9\"]}}", 1);
    assert_string_equal(cmds[0].data, "[1.0e2, \"\\u00e9\"]");
    sl__cf_command_clear(&cmds[0]);
    /* A "data" inside another member is not the command's data. */
    parse_ok("{\"id\":1,\"send\":{\"x\":{\"data\":1},\"data\":2}}", 1);
    assert_string_equal(cmds[0].data, "2");
    sl__cf_command_clear(&cmds[0]);
    parse_ok("{\"id\":1,\"publish\":{\"channel\":\"x\",\"data\":\"caf\xc3\xa9\"}}", 1);
    assert_string_equal(cmds[0].data, "\"caf\xc3\xa9\"");
    sl__cf_command_clear(&cmds[0]);
}

static void test_batched_frame(void **state)
{
    (void)state;
    const char *f = "{\"connect\":{\"token\":\"t\"},\"id\":1}\n"
                    "\n"
                    "{\"subscribe\":{\"channel\":\"a\"},\"id\":2}\r\n"
                    "  {\"subscribe\":{\"channel\":\"b\"},\"id\":3}  \n"
                    "{}\n"
                    "{\"send\":{\"data\":null}}\n";
    /* The last one is malformed (send needs data) and has no id: the whole frame is refused. */
    assert_int_equal(parse_rc(f, strlen(f)), SL_EJSON);

    f = "{\"connect\":{\"token\":\"t\"},\"id\":1}\n"
        "\n"
        "{\"subscribe\":{\"channel\":\"a\"},\"id\":2}\r\n"
        "  {\"subscribe\":{\"channel\":\"b\"},\"id\":3}  \n"
        "{}\n"
        "{\"subscribe\":{\"channel\":7},\"id\":4}\n";
    parse_ok(f, 5);
    assert_int_equal(cmds[0].method, SL__CF_CONNECT);
    assert_string_equal(cmds[1].channel, "a");
    assert_string_equal(cmds[2].channel, "b");
    assert_int_equal(cmds[3].method, SL__CF_PING);
    assert_int_equal(cmds[4].id, 4);
    assert_int_equal(cmds[4].error, SL__CF_ERR_BAD_REQUEST);
    sl__cf_commands_clear(cmds, 5);

    parse_ok("", 0);
    parse_ok("\n\n \n", 0);
}

/* Commands with an id that the session answers with an error instead of running. */
static void test_per_command_errors(void **state)
{
    (void)state;
    static const struct {
        const char *frame;
        int code;
    } t[] = {
        {"{\"id\":1,\"subscribe\":{}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"\"}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":5}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"a\",\"recover\":\"yes\"}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"a\",\"offset\":-1}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"a\",\"offset\":1.5}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"a\",\"offset\":\"5\"}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"a\",\"flag\":\"1\"}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"a\",\"epoch\":3}}", 107},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"a\",\"token\":[]}}", 107},
        {"{\"id\":1,\"subscribe\":[]}", 107},
        {"{\"id\":1,\"subscribe\":\"news\"}", 107},
        {"{\"id\":1,\"publish\":{\"channel\":\"a\"}}", 107},
        {"{\"id\":1,\"publish\":{\"channel\":\"a\",\"data\":null}}", 107},
        {"{\"id\":1,\"publish\":{\"data\":1}}", 107},
        {"{\"id\":1,\"refresh\":{}}", 107},
        {"{\"id\":1,\"sub_refresh\":{\"channel\":\"a\"}}", 107},
        {"{\"id\":1,\"history\":{\"channel\":\"a\",\"limit\":-2}}", 107},
        {"{\"id\":1,\"history\":{\"channel\":\"a\",\"limit\":2147483648}}", 107},
        {"{\"id\":1,\"history\":{\"channel\":\"a\",\"since\":5}}", 107},
        {"{\"id\":1,\"history\":{\"channel\":\"a\",\"reverse\":1}}", 107},
        {"{\"id\":1,\"rpc\":{\"method\":1}}", 107},
        {"{\"id\":1,\"connect\":{\"token\":1}}", 107},
        {"{\"id\":1,\"connect\":{\"subs\":[]}}", 107},
        {"{\"id\":1,\"connect\":{\"subs\":{\"a\":1}}}", 107},
        {"{\"id\":1,\"connect\":{\"subs\":{\"\":{}}}}", 107},
        {"{\"id\":1}", 107},
        {"{\"id\":1,\"publish\":{\"channel\":\"a\",\"data\":1},\"rpc\":{}}", 107},
        {"{\"id\":1,\"frobnicate\":{}}", 104},
        {"{\"id\":1,\"subscribe\":{\"channel\":\"a\"},\"extra\":1}", 104},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        size_t n = 0;
        sl_status st;
        int rc = sl__cf_parse_frame(t[i].frame, strlen(t[i].frame), cmds, MAXC, &n, &st);
        if (rc != SL_OK || n != 1 || cmds[0].error != t[i].code || cmds[0].id != 1)
            fail_msg("%s: rc %d n %zu error %d", t[i].frame, rc, n, n ? cmds[0].error : 0);
        assert_non_null(cmds[0].error_message);
        sl__cf_commands_clear(cmds, n);
    }

    /* Field size limits. */
    char big[SL__CF_MAX_TOKEN + 200];
    snprintf(big, sizeof big, "{\"id\":1,\"subscribe\":{\"channel\":\"%0256d\"}}", 0);
    parse_ok(big, 1);
    assert_int_equal(cmds[0].error, 107);
    sl__cf_command_clear(&cmds[0]);
    snprintf(big, sizeof big, "{\"id\":1,\"subscribe\":{\"channel\":\"%0255d\"}}", 0);
    parse_ok(big, 1);
    assert_int_equal(cmds[0].error, 0);
    sl__cf_command_clear(&cmds[0]);
    snprintf(big, sizeof big, "{\"id\":1,\"connect\":{\"token\":\"%0*d\"}}", SL__CF_MAX_TOKEN + 1,
             0);
    parse_ok(big, 1);
    assert_int_equal(cmds[0].error, 107);
    sl__cf_command_clear(&cmds[0]);
    snprintf(big, sizeof big, "{\"id\":1,\"connect\":{\"token\":\"%0*d\"}}", SL__CF_MAX_TOKEN, 0);
    parse_ok(big, 1);
    assert_int_equal(cmds[0].error, 0);
    sl__cf_command_clear(&cmds[0]);

    /* Too many connect.subs: 106. */
    size_t cap = 64 + 16 * (SL__CF_MAX_CONNECT_SUBS + 1);
    char *s = malloc(cap);
    size_t k = (size_t)snprintf(s, cap, "{\"id\":1,\"connect\":{\"subs\":{");
    for (int i = 0; i <= SL__CF_MAX_CONNECT_SUBS; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s\"c%d\":{}", i ? "," : "", i);
    snprintf(s + k, cap - k, "}}}");
    parse_ok(s, 1);
    assert_int_equal(cmds[0].error, SL__CF_ERR_LIMIT_EXCEEDED);
    sl__cf_command_clear(&cmds[0]);
    free(s);
}

/* Frames the caller answers by closing with 3501: nothing in them can be answered. */
static void test_frame_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{",
        "{\"id\":1,\"connect\":{\"token\":\"t\"}",
        "{\"id\":1,\"connect\":{\"token\":\"t\"}}}",
        "[]",
        "1",
        "\"x\"",
        "null",
        "{\"id\":1} {\"id\":2}",
        "{\"id\":-1,\"presence\":{\"channel\":\"a\"}}",
        "{\"id\":4294967296,\"presence\":{\"channel\":\"a\"}}",
        "{\"id\":99999999999999999999,\"presence\":{\"channel\":\"a\"}}",
        "{\"id\":1.5,\"presence\":{\"channel\":\"a\"}}",
        "{\"id\":\"1\",\"presence\":{\"channel\":\"a\"}}",
        "{\"id\":true,\"presence\":{\"channel\":\"a\"}}",
        "{\"id\":1,\"id\":2,\"presence\":{\"channel\":\"a\"}}",
        "{\"id\":1,\"presence\":{\"channel\":\"a\",\"channel\":\"b\"}}",
        "{\"presence\":{\"channel\":\"a\"}}",
        "{\"id\":0,\"subscribe\":{\"channel\":\"a\"}}",
        "{\"send\":{}}",
        "{\"send\":5}",
        "{\"frobnicate\":{}}",
        "{\"id\":1,\"presence\":{\"channel\":\"a\\u0000b\"}}",
        "{\"id\":1,\"publish\":{\"channel\":\"a\",\"data\":\"\xff\xfe\"}}",
        "{\"id\":1,\"publish\":{\"channel\":\"a\",\"data\":tru}}",
        "{\"id\":1,\"publish\":{\"channel\":\"a\",\"data\":NaN}}",
        "{}\n{\"id\":1,\"subscribe\":{\"channel\":\"a\"}}\n{oops}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_rc(bad[i], strlen(bad[i]));
        if (rc != SL_EJSON)
            fail_msg("accepted or wrong code %d: %s", rc, bad[i]);
    }

    /* NUL bytes, even after a complete command. */
    static const char nul1[] = "{\"id\":1,\"presence\":{\"channel\":\"a\"}}\0";
    assert_int_equal(parse_rc(nul1, sizeof nul1 - 1), SL_EJSON);
    static const char nul2[] = "{\"id\":1,\"presence\":{\"channel\":\"a\0b\"}}";
    assert_int_equal(parse_rc(nul2, sizeof nul2 - 1), SL_EJSON);

    /* Deep nesting garbage. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    size_t k = (size_t)sprintf(deep, "{\"id\":1,\"publish\":{\"channel\":\"a\",\"data\":");
    memset(deep + k, '[', depth);
    k += depth;
    memset(deep + k, ']', depth);
    k += depth;
    k += (size_t)sprintf(deep + k, "}}");
    assert_int_equal(parse_rc(deep, k), SL_EJSON);
    free(deep);

    /* Arguments. */
    size_t n;
    assert_int_equal(sl__cf_parse_frame(NULL, 1, cmds, MAXC, &n, NULL), SL_EINVAL);
    assert_int_equal(sl__cf_parse_frame("{}", 2, NULL, MAXC, &n, NULL), SL_EINVAL);
}

static void test_command_count_limit(void **state)
{
    (void)state;
    const char *one = "{\"id\":1,\"presence\":{\"channel\":\"a\"}}\n";
    size_t ol = strlen(one), count = 10000;
    char *f = malloc(ol * count + 1);
    for (size_t i = 0; i < count; i++)
        memcpy(f + i * ol, one, ol);
    f[ol * count] = '\0';
    size_t n = 99;
    sl_status st;
    assert_int_equal(sl__cf_parse_frame(f, ol * count, cmds, MAXC, &n, &st), SL_ELIMIT);
    assert_int_equal(n, 0);
    /* Exactly the limit passes; the caller's smaller max also limits. */
    assert_int_equal(sl__cf_parse_frame(f, ol * MAXC, cmds, MAXC, &n, &st), SL_OK);
    assert_int_equal(n, MAXC);
    sl__cf_commands_clear(cmds, n);
    assert_int_equal(sl__cf_parse_frame(f, ol * 3, cmds, 2, &n, &st), SL_ELIMIT);
    assert_int_equal(parse_rc(f, ol * (MAXC + 1)), SL_ELIMIT);
    free(f);
}

/* ---- encoder: golden strings the real client understood ----------------------------------------
 */

/* Each line of the buffer must be a JSON object on its own (what the client's decoder needs). */
static void assert_batch_valid(const sl__cf_buf *b)
{
    const char *p = b->data, *e = b->data + b->len;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        if (nl == NULL)
            nl = e;
        json_error_t err;
        json_t *j = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &err);
        if (j == NULL || !json_is_object(j))
            fail_msg("invalid line %.*s: %s", (int)(nl - p), p, err.text);
        json_decref(j);
        p = nl + 1;
    }
}

#define EXPECT(b, s)                                                                               \
    do {                                                                                           \
        assert_string_equal((b)->data, (s));                                                       \
        assert_int_equal((b)->len, strlen(s));                                                     \
        assert_batch_valid(b);                                                                     \
        sl__cf_buf_reset(b);                                                                       \
    } while (0)

static void test_golden_replies(void **state)
{
    (void)state;
    sl__cf_buf b;
    sl__cf_buf_init(&b);

    sl__cf_connect_result cr = {
        .client = "c1", .version = "0.1.0", .ping = 25, .pong = true, .expires = true, .ttl = 60};
    assert_int_equal(sl__cf_reply_connect(&b, 1, &cr), SL_OK);
    EXPECT(&b, "{\"id\":1,\"connect\":{\"client\":\"c1\",\"version\":\"0.1.0\",\"expires\":true,"
               "\"ttl\":60,\"ping\":25,\"pong\":true}}");

    sl__cf_pub rec = {"{\"n\":6}", 7, 6, NULL};
    sl__cf_subscribe_result sr = {.recoverable = true,
                                  .epoch = "abc",
                                  .offset = 6,
                                  .was_recovering = true,
                                  .recovered = true,
                                  .publications = &rec,
                                  .npublications = 1};
    assert_int_equal(sl__cf_reply_subscribe(&b, 2, &sr), SL_OK);
    EXPECT(&b, "{\"id\":2,\"subscribe\":{\"recoverable\":true,\"epoch\":\"abc\",\"offset\":6,"
               "\"was_recovering\":true,\"recovered\":true,\"publications\":[{\"data\":{\"n\":6},"
               "\"offset\":6}]}}");

    /* Four pushes batched in one frame. */
    sl__cf_client_info c2 = {"c2", "u2", NULL, NULL}, c3 = {"c3", "u3", NULL, NULL};
    sl__cf_pub pub = {"{\"n\":7}", 7, 7, &c2};
    assert_int_equal(sl__cf_push_pub(&b, "news", &pub), SL_OK);
    assert_int_equal(sl__cf_push_join(&b, "news", &c3), SL_OK);
    assert_int_equal(sl__cf_push_leave(&b, "news", &c3), SL_OK);
    assert_int_equal(sl__cf_push_message(&b, "\"hello\"", 7), SL_OK);
    EXPECT(&b, "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"n\":7},\"info\":{\"client\":"
               "\"c2\",\"user\":\"u2\"},\"offset\":7}}}\n"
               "{\"push\":{\"channel\":\"news\",\"join\":{\"info\":{\"client\":\"c3\",\"user\":"
               "\"u3\"}}}}\n"
               "{\"push\":{\"channel\":\"news\",\"leave\":{\"info\":{\"client\":\"c3\",\"user\":"
               "\"u3\"}}}}\n"
               "{\"push\":{\"message\":{\"data\":\"hello\"}}}");

    assert_int_equal(sl__cf_reply_empty(&b, 3, SL__CF_PUBLISH), SL_OK);
    EXPECT(&b, "{\"id\":3,\"publish\":{}}");

    assert_int_equal(sl__cf_reply_rpc(&b, 4, "{\"items\":[]}", 12), SL_OK);
    EXPECT(&b, "{\"id\":4,\"rpc\":{\"data\":{\"items\":[]}}}");

    sl__cf_pub h = {"{\"n\":3}", 7, 3, NULL};
    assert_int_equal(sl__cf_reply_history(&b, 5, &h, 1, "abc", 7), SL_OK);
    EXPECT(&b, "{\"id\":5,\"history\":{\"publications\":[{\"data\":{\"n\":3},\"offset\":3}],"
               "\"epoch\":\"abc\",\"offset\":7}}");

    sl__cf_client_info p1 = {"c1", "u1", "{\"a\":1}", NULL};
    assert_int_equal(sl__cf_reply_presence(&b, 6, &p1, 1), SL_OK);
    EXPECT(&b, "{\"id\":6,\"presence\":{\"presence\":{\"c1\":{\"client\":\"c1\",\"user\":\"u1\","
               "\"conn_info\":{\"a\":1}}}}}");

    assert_int_equal(sl__cf_reply_presence_stats(&b, 7, 2, 1), SL_OK);
    EXPECT(&b, "{\"id\":7,\"presence_stats\":{\"num_clients\":2,\"num_users\":1}}");

    assert_int_equal(sl__cf_reply_error(&b, 8, SL__CF_ERR_PERMISSION_DENIED, NULL), SL_OK);
    EXPECT(&b, "{\"id\":8,\"error\":{\"code\":103,\"message\":\"permission denied\"}}");

    assert_int_equal(sl__cf_ping(&b), SL_OK);
    EXPECT(&b, "{}");

    assert_int_equal(sl__cf_push_unsubscribe(&b, "news", SL__CF_UNSUB_SERVER, NULL), SL_OK);
    EXPECT(&b, "{\"push\":{\"channel\":\"news\",\"unsubscribe\":{\"code\":2000,\"reason\":"
               "\"server unsubscribe\"}}}");

    sl__cf_buf_free(&b);
}

static void test_other_replies(void **state)
{
    (void)state;
    sl__cf_buf b;
    sl__cf_buf_init(&b);

    sl__cf_connect_result bare = {.client = "c"};
    sl__cf_reply_connect(&b, 1, &bare);
    EXPECT(&b, "{\"id\":1,\"connect\":{\"client\":\"c\"}}");
    sl__cf_connect_result withdata = {.client = "c", .data = "[1]", .ping = 25};
    sl__cf_reply_connect(&b, 1, &withdata);
    EXPECT(&b, "{\"id\":1,\"connect\":{\"client\":\"c\",\"data\":[1],\"ping\":25}}");

    sl__cf_subscribe_result plain = {0};
    sl__cf_reply_subscribe(&b, 2, &plain);
    EXPECT(&b, "{\"id\":2,\"subscribe\":{}}");
    sl__cf_subscribe_result exp = {.expires = true, .ttl = 30, .recoverable = true, .offset = 0};
    sl__cf_reply_subscribe(&b, 2, &exp);
    EXPECT(&b, "{\"id\":2,\"subscribe\":{\"expires\":true,\"ttl\":30,\"recoverable\":true,"
               "\"epoch\":\"\",\"offset\":0}}");

    sl__cf_reply_empty(&b, 3, SL__CF_UNSUBSCRIBE);
    EXPECT(&b, "{\"id\":3,\"unsubscribe\":{}}");
    sl__cf_reply_refresh(&b, 4, SL__CF_REFRESH, "c", "0.1.0", true, 60);
    EXPECT(&b, "{\"id\":4,\"refresh\":{\"client\":\"c\",\"version\":\"0.1.0\",\"expires\":true,"
               "\"ttl\":60}}");
    sl__cf_reply_refresh(&b, 5, SL__CF_SUB_REFRESH, "ignored", NULL, true, 9);
    EXPECT(&b, "{\"id\":5,\"sub_refresh\":{\"expires\":true,\"ttl\":9}}");
    sl__cf_reply_history(&b, 6, NULL, 0, NULL, 0);
    EXPECT(&b, "{\"id\":6,\"history\":{\"epoch\":\"\",\"offset\":0}}");
    sl__cf_reply_presence(&b, 7, NULL, 0);
    EXPECT(&b, "{\"id\":7,\"presence\":{\"presence\":{}}}");
    sl__cf_reply_rpc(&b, 8, NULL, 0);
    EXPECT(&b, "{\"id\":8,\"rpc\":{}}");
    sl__cf_reply_error(&b, 9, SL__CF_ERR_INTERNAL, NULL);
    EXPECT(&b, "{\"id\":9,\"error\":{\"code\":100,\"message\":\"internal server error\","
               "\"temporary\":true}}");
    sl__cf_reply_error(&b, 4294967295u, SL__CF_ERR_BAD_REQUEST, "channel required");
    EXPECT(&b, "{\"id\":4294967295,\"error\":{\"code\":107,\"message\":\"channel required\"}}");
    sl__cf_push_disconnect(&b, SL__CF_DISC_FORCE_NO_RECONNECT, NULL);
    EXPECT(&b, "{\"push\":{\"disconnect\":{\"code\":3503,\"reason\":\"force disconnect\"}}}");
    sl__cf_push_message(&b, NULL, 0);
    EXPECT(&b, "{\"push\":{\"message\":{\"data\":null}}}");
    sl__cf_pub nooff = {NULL, 0, 0, NULL};
    sl__cf_push_pub(&b, "c", &nooff);
    EXPECT(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":null}}}");

    /* Strings are escaped; UTF-8 passes through. */
    sl__cf_push_unsubscribe(&b, "a\"b\\c\n\x01\xc3\xa9", 2500, "r\t");
    EXPECT(&b, "{\"push\":{\"channel\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\",\"unsubscribe\":{\"code\":"
               "2500,\"reason\":\"r\\t\"}}}");

    /* Ping, pong and replies batch together. */
    sl__cf_ping(&b);
    sl__cf_reply_empty(&b, 1, SL__CF_PUBLISH);
    sl__cf_ping(&b);
    EXPECT(&b, "{}\n{\"id\":1,\"publish\":{}}\n{}");
    sl__cf_buf_free(&b);
}

/* What the parser returns, the encoder can send back out unchanged (publish → pub push). */
static void test_round_trip(void **state)
{
    (void)state;
    parse_ok(
        "{\"publish\":{\"channel\":\"news\",\"data\":{\"t\":\"\\u00e9\\n\",\"n\":1.50}},\"id\":3}\n"
        "{\"rpc\":{\"method\":\"queue.ack\",\"data\":[1, 2]},\"id\":4}",
        2);
    sl__cf_buf b;
    sl__cf_buf_init(&b);
    sl__cf_pub p = {cmds[0].data, cmds[0].data_len, 42, NULL};
    sl__cf_push_pub(&b, cmds[0].channel, &p);
    sl__cf_reply_rpc(&b, cmds[1].id, cmds[1].data, cmds[1].data_len);
    EXPECT(&b,
           "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"t\":\"\\u00e9\\n\",\"n\":1.50},"
           "\"offset\":42}}}\n{\"id\":4,\"rpc\":{\"data\":[1, 2]}}");
    sl__cf_commands_clear(cmds, 2);
    sl__cf_buf_free(&b);
}

static void test_codes(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *msg;
    } t[] = {
        {100, "internal server error"},
        {101, "unauthorized"},
        {102, "unknown channel"},
        {103, "permission denied"},
        {104, "method not found"},
        {105, "already subscribed"},
        {106, "limit exceeded"},
        {107, "bad request"},
        {109, "token expired"},
        {111, "too many requests"},
        {112, "unrecoverable position"},
        {3005, "connection expired"},
        {3008, "slow"},
        {3012, "no pong"},
        {3500, "invalid token"},
        {3501, "bad request"},
        {3503, "force disconnect"},
        {3504, "connection limit"},
        {3505, "channel limit"},
        {3507, "permission denied"},
        {3509, "too many errors"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        assert_string_equal(sl__cf_code_message(t[i].code), t[i].msg);
    assert_string_equal(sl__cf_code_message(999), "unknown");
    assert_true(sl__cf_code_temporary(100));
    assert_true(sl__cf_code_temporary(111));
    assert_false(sl__cf_code_temporary(103));

    assert_int_equal(sl__cf_error_from_errno(SL_OK), 0);
    assert_int_equal(sl__cf_error_from_errno(SL_EFORBIDDEN), 103);
    assert_int_equal(sl__cf_error_from_errno(SL_EUNAUTH), 101);
    assert_int_equal(sl__cf_error_from_errno(SL_ETOKEN), 101);
    assert_int_equal(sl__cf_error_from_errno(SL_EEXPIRED), 109);
    assert_int_equal(sl__cf_error_from_errno(SL_ENOENT), 102);
    assert_int_equal(sl__cf_error_from_errno(SL_EINVAL), 107);
    assert_int_equal(sl__cf_error_from_errno(SL_EBADID), 107);
    assert_int_equal(sl__cf_error_from_errno(SL_EJSON), 107);
    assert_int_equal(sl__cf_error_from_errno(SL_ETOOBIG), 107);
    assert_int_equal(sl__cf_error_from_errno(SL_EEXIST), 105);
    assert_int_equal(sl__cf_error_from_errno(SL_EFULL), 106);
    assert_int_equal(sl__cf_error_from_errno(SL_ELIMIT), 106);
    assert_int_equal(sl__cf_error_from_errno(SL_EMETHOD), 104);
    assert_int_equal(sl__cf_error_from_errno(SL_ENOMEM), 100);
    assert_int_equal(sl__cf_error_from_errno(SL_EUNAVAIL), 100);
    assert_int_equal(sl__cf_error_from_errno(-12345), 100);
    /* Every sl_errno maps to a code the table knows. */
#define SL__T_ERR(sym, val, http, name, msg)                                                       \
    assert_string_not_equal(sl__cf_code_message(sl__cf_error_from_errno(SL_##sym)), "unknown");
    SL_ERRNO_MAP(SL__T_ERR)
#undef SL__T_ERR

    assert_string_equal(sl__cf_method_name(SL__CF_SUB_REFRESH), "sub_refresh");
    assert_string_equal(sl__cf_method_name(SL__CF_PING), "");
    assert_string_equal(sl__cf_method_name((sl__cf_method)77), "");
}

/* A reply appended and then found too large is taken out again; the batch before it stays. */
static void test_buf_truncate(void **state)
{
    (void)state;
    sl__cf_buf b;
    sl__cf_buf_init(&b);
    assert_int_equal(sl__cf_reply_empty(&b, 1, SL__CF_PUBLISH), SL_OK);
    size_t start = b.len;
    sl__cf_pub pub = {.data = "[1,2,3]", .data_len = 7, .offset = 9};
    assert_int_equal(sl__cf_reply_history(&b, 2, &pub, 1, "e", 9), SL_OK);
    assert_true(b.len > start);
    sl__cf_buf_truncate(&b, start);
    assert_string_equal(b.data, "{\"id\":1,\"publish\":{}}");
    sl__cf_buf_truncate(&b, b.len + 5); /* past the end: nothing changes */
    assert_int_equal(b.len, start);
    assert_int_equal(sl__cf_reply_error(&b, 2, SL__CF_ERR_LIMIT_EXCEEDED, NULL), SL_OK);
    assert_string_equal(b.data, "{\"id\":1,\"publish\":{}}\n{\"id\":2,\"error\":{\"code\":106,"
                                "\"message\":\"limit exceeded\"}}");
    sl__cf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_commands),
        cmocka_unit_test(test_publish_fast_path_takes_the_common_shapes),
        cmocka_unit_test(test_publish_fast_path_hands_on_the_rest),
        cmocka_unit_test(test_buf_truncate),
        cmocka_unit_test(test_connect_subs_and_optional_fields),
        cmocka_unit_test(test_data_verbatim),
        cmocka_unit_test(test_data_escaped_key),
        cmocka_unit_test(test_batched_frame),
        cmocka_unit_test(test_per_command_errors),
        cmocka_unit_test(test_frame_errors),
        cmocka_unit_test(test_command_count_limit),
        cmocka_unit_test(test_golden_replies),
        cmocka_unit_test(test_other_replies),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
