/* Unit tests of the remote client's pure parts: percent-encoding, the HTTP status -> sl_errno
 * mapping (including that a token echoed by a server never reaches st->message), and parsing of
 * server replies into sl_message / sl_channel_info / sl_acl_entry. The only network use is a
 * connection to a closed loopback port, to check that refusal maps to SL_EUNAVAIL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

static void test_pct_encode(void **state)
{
    char out[64];
    assert_int_equal(sl__client_pct_encode("jobs.eu:high_prio-1~", out, sizeof out), 20);
    assert_string_equal(out, "jobs.eu:high_prio-1~");
    assert_int_equal(sl__client_pct_encode("a b/c%\xc3\xa9", out, sizeof out), 18);
    assert_string_equal(out, "a%20b%2Fc%25%C3%A9");
    /* Exactly fitting and one byte short. */
    assert_int_equal(sl__client_pct_encode("abc", out, 4), 3);
    assert_int_equal(sl__client_pct_encode("abc", out, 3), -1);
    assert_int_equal(sl__client_pct_encode("a/", out, 4), -1);
    assert_int_equal(sl__client_pct_encode("", out, 1), 0);
}

static int err(long status, const char *body, const char *token, sl_status *st)
{
    return sl__client_http_error(status, body, body ? strlen(body) : 0, token, st);
}

static void test_http_errors(void **state)
{
    sl_status st;
    assert_int_equal(
        err(400, "{\"error\":\"bad_request\",\"message\":\"limit must be\"}", NULL, &st),
        SL_EINVAL);
    assert_string_equal(st.message, "limit must be");
    assert_int_equal(st.code, SL_EINVAL);
    assert_int_equal(err(400, "{\"error\":\"invalid_channel_id\",\"message\":\"x\"}", NULL, &st),
                     SL_EBADID);
    assert_int_equal(err(400, "{\"error\":\"unsupported_operation\",\"message\":\"x\"}", NULL, &st),
                     SL_EKIND);
    assert_int_equal(err(401, "{\"error\":\"unauthorized\",\"message\":\"auth\"}", NULL, &st),
                     SL_EUNAUTH);
    assert_int_equal(
        err(401, "{\"error\":\"invalid_token\",\"message\":\"token expired\"}", NULL, &st),
        SL_ETOKEN);
    assert_string_equal(st.message, "token expired");
    assert_int_equal(err(403, "{\"error\":\"forbidden\",\"message\":\"no\"}", NULL, &st),
                     SL_EFORBIDDEN);
    assert_int_equal(err(404, "{\"error\":\"not_found\",\"message\":\"no\"}", NULL, &st),
                     SL_ENOENT);
    assert_int_equal(err(409, "{\"error\":\"conflict\",\"message\":\"no\"}", NULL, &st), SL_EEXIST);
    assert_int_equal(err(413, "{\"error\":\"payload_too_large\"}", NULL, &st), SL_ETOOBIG);
    assert_int_equal(err(429, "{\"error\":\"channel_full\",\"message\":\"full\"}", NULL, &st),
                     SL_EFULL);
    assert_int_equal(err(418, NULL, NULL, &st), SL_EINVAL);
    assert_int_equal(err(500, "{\"error\":\"internal\",\"message\":\"oops\"}", NULL, &st),
                     SL_EUNAVAIL);
    /* A proxy's HTML page: no sluice message, so a generic one naming the status. */
    assert_int_equal(err(502, "<html>Bad Gateway</html>", NULL, &st), SL_EUNAVAIL);
    assert_non_null(strstr(st.message, "HTTP 502"));
    assert_int_equal(err(503, "", NULL, NULL), SL_EUNAVAIL); /* NULL st is allowed */
}

static void test_http_error_scrubs(void **state)
{
    sl_status st;
    const char *tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    char body[512];
    snprintf(body, sizeof body,
             "{\"error\":\"invalid_token\",\"message\":\"bad %s and %s \\u001b[31m\"}", tok, tok);
    assert_int_equal(err(401, body, tok, &st), SL_ETOKEN);
    assert_null(strstr(st.message, tok));
    assert_null(strstr(st.message, "eyJ"));
    assert_null(strchr(st.message, '\x1b'));
    assert_string_equal(st.message, "bad [redacted] and [redacted] ?[31m");
    /* A short token still disappears, and its replacement cannot match again. */
    assert_int_equal(err(401, "{\"error\":\"invalid_token\",\"message\":\"aaaa\"}", "aa", &st),
                     SL_ETOKEN);
    assert_string_equal(st.message, "****");
}

static const char messages_body[] =
    "{\"messages\":["
    "{\"id\":\"m1\",\"timestamp\":1700000000.25,\"sender_id\":\"worker-1\","
    "\"content\":{\"data\":{\"task\": \"resize\", \"sizes\": [1, 2.5, null]}},"
    "\"metadata\":{\"trace\":\"t-1\"},\"correlation_id\":\"c-1\",\"reply_to\":\"replies\","
    "\"recipient_id\":null,\"attempt\":2,\"claim_expires_at\":1700000300.5},"
    "{\"id\":\"m2\",\"timestamp\":1700000001,\"sender_id\":null,\"content\":{\"data\":\"hi\"},"
    "\"metadata\":{},\"correlation_id\":null,\"reply_to\":null,\"recipient_id\":\"bob\","
    "\"dead_reason\":\"expired\",\"expires_at\":1700000900.5},"
    "{\"id\":\"m3\",\"timestamp\":1700000002,\"content\":{\"data\":42}},"
    "{\"id\":\"m4\",\"content\":{\"d\\u0061ta\":1,\"data\" : {\"a\":1,\"a\":2, \"x\":0.1} },"
    "\"metadata\": {\"k\":\"v\",\"k\":1e2}}"
    "],\"more\":true}";

static void test_parse_messages(void **state)
{
    sl_message_list l;
    sl_status st;
    assert_int_equal(sl__client_parse_messages(messages_body, strlen(messages_body), &l, &st),
                     SL_OK);
    assert_int_equal(l.len, 4);
    sl_message *m = &l.items[0];
    assert_string_equal(m->id, "m1");
    assert_true(m->timestamp == 1700000000.25);
    assert_string_equal(m->sender_id, "worker-1");
    /* The text the server sent, byte for byte: never re-serialised. */
    assert_string_equal(m->data, "{\"task\": \"resize\", \"sizes\": [1, 2.5, null]}");
    assert_string_equal(m->metadata, "{\"trace\":\"t-1\"}");
    assert_string_equal(m->correlation_id, "c-1");
    assert_string_equal(m->reply_to, "replies");
    assert_null(m->recipient_id);
    assert_int_equal(m->attempt, 2);
    assert_true(m->claim_expires_at == 1700000300.5);
    m = &l.items[1];
    assert_null(m->sender_id);
    assert_string_equal(m->data, "\"hi\"");
    assert_null(m->metadata); /* empty object: none */
    assert_string_equal(m->recipient_id, "bob");
    assert_int_equal(m->attempt, 0);
    assert_string_equal(m->dead_reason, "expired");
    assert_true(m->expires_at == 1700000900.5);
    assert_null(l.items[0].dead_reason);
    assert_true(l.items[0].expires_at == 0);
    assert_string_equal(l.items[2].data, "42");
    /* Duplicate keys and numbers as written (a parse would keep one "a" and print 0.1 as
     * 0.10000000000000001); the key is matched as the server writes it, not through escapes. */
    assert_string_equal(l.items[3].data, "{\"a\":1,\"a\":2, \"x\":0.1}");
    assert_string_equal(l.items[3].metadata, "{\"k\":\"v\",\"k\":1e2}");
    assert_true(l.more);
    sl_message_list_free(&l);
    assert_int_equal(l.len, 0);
    assert_false(l.more);

    const char *empty = "{\"messages\":[]}";
    assert_int_equal(sl__client_parse_messages(empty, strlen(empty), &l, &st), SL_OK);
    assert_int_equal(l.len, 0);
    assert_false(l.more);
    sl_message_list_free(&l);
}

static void test_parse_messages_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"messages\":{}}",
        "{\"messages\":[{\"timestamp\":1}]}",                           /* no id */
        "{\"messages\":[{\"id\":\"a\"},{\"id\":7}]}",                   /* second id not a string */
        "{\"messages\":[{\"id\":\"a\",\"sender_id\":5}]}",              /* wrong type */
        "{\"messages\":[{\"id\":\"a\",\"content\":{\"data\":1}},null]}" /* not an object */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_message_list l = {(sl_message *)1, 99, 1};
        sl_status st;
        assert_int_equal(sl__client_parse_messages(bad[i], strlen(bad[i]), &l, &st), SL_EIO);
        assert_null(l.items);
        assert_int_equal(l.len, 0);
        assert_false(l.more);
        assert_non_null(strstr(st.message, "malformed response"));
    }
}

static const char info_body[] =
    "{\"id\":\"jobs\",\"name\":\"Jobs\",\"description\":\"work\",\"kind\":\"queue\","
    "\"visibility\":\"public\",\"options\":{\"security\":\"token\",\"claim_timeout\":120.0,"
    "\"max_attempts\":3,\"dead_letter\":\"jobs.dead\",\"max_messages\":1000,"
    "\"retention_max_count\":0,\"retention_max_age\":0.0},\"depth\":17}";

static void test_parse_info(void **state)
{
    sl_channel_info c;
    sl_status st;
    assert_int_equal(sl__client_parse_info(info_body, strlen(info_body), &c, &st), SL_OK);
    assert_string_equal(c.id, "jobs");
    assert_string_equal(c.name, "Jobs");
    assert_string_equal(c.description, "work");
    assert_string_equal(c.dead_letter, "jobs.dead");
    assert_int_equal(c.kind, SL_KIND_QUEUE);
    assert_int_equal(c.visibility, SL_VIS_PUBLIC);
    assert_int_equal(c.mode, SL_MODE_TOKEN);
    assert_true(c.claim_timeout == 120.0);
    assert_int_equal(c.max_attempts, 3);
    assert_int_equal(c.max_messages, 1000);
    assert_int_equal(c.depth, 17);
    sl_channel_info_clear(&c);

    const char *topic = "{\"id\":\"news\",\"kind\":\"topic\",\"visibility\":\"private\","
                        "\"options\":{\"retention_max_count\":5,\"retention_max_age\":60}}";
    assert_int_equal(sl__client_parse_info(topic, strlen(topic), &c, &st), SL_OK);
    assert_int_equal(c.kind, SL_KIND_TOPIC);
    assert_int_equal(c.visibility, SL_VIS_PRIVATE);
    assert_int_equal(c.mode, SL_MODE_INHERIT);
    assert_int_equal(c.retention_max_count, 5);
    assert_true(c.retention_max_age == 60);
    assert_null(c.dead_letter);
    sl_channel_info_clear(&c);

    const char *bad = "{\"name\":\"no id\"}";
    assert_int_equal(sl__client_parse_info(bad, strlen(bad), &c, &st), SL_EIO);
    assert_null(c.id);
}

static void test_parse_infos_and_acl(void **state)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"channels\":[%s,%s]}", info_body, info_body);
    sl_channel_info *infos;
    size_t n;
    sl_status st;
    assert_int_equal(sl__client_parse_infos(body, strlen(body), &infos, &n, &st), SL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(infos[1].id, "jobs");
    sl_channel_infos_free(infos, n);
    snprintf(body, sizeof body, "{\"channels\":[%s,{}]}", info_body);
    assert_int_equal(sl__client_parse_infos(body, strlen(body), &infos, &n, &st), SL_EIO);
    assert_null(infos);
    assert_int_equal(n, 0);

    const char *acl =
        "{\"entries\":[{\"principal\":\"alice\",\"role\":\"admin\",\"channels\":[]},"
        "{\"principal\":\"bob\",\"role\":\"write\",\"channels\":[\"jobs.*\",\"x\"]}]}";
    sl_acl_entry *e;
    assert_int_equal(sl__client_parse_acl(acl, strlen(acl), &e, &n, &st), SL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].principal, "alice");
    assert_int_equal(e[0].role, SL_ROLE_ADMIN);
    assert_int_equal(e[0].nchannels, 0);
    assert_null(e[0].channels);
    assert_int_equal(e[1].role, SL_ROLE_WRITE);
    assert_int_equal(e[1].nchannels, 2);
    assert_string_equal(e[1].channels[0], "jobs.*");
    sl_acl_entries_free(e, n);
    const char *bad = "{\"entries\":[{\"principal\":\"a\",\"channels\":[1]}]}";
    assert_int_equal(sl__client_parse_acl(bad, strlen(bad), &e, &n, &st), SL_EIO);
}

static void test_client_arguments(void **state)
{
    sl_client *c;
    sl_status st;
    assert_int_equal(sl_client_new(&c, "unit-test"), SL_OK);
    assert_int_equal(sl_client_connect_remote(c, "bad id", "http://127.0.0.1:1", NULL, &st),
                     SL_EBADID);
    assert_int_equal(sl_client_connect_remote(c, "jobs", "ftp://127.0.0.1", NULL, &st), SL_EINVAL);
    assert_int_equal(sl_client_connect_remote(c, "jobs", "http://h", "two words", &st), SL_EINVAL);
    assert_int_equal(sl_client_connect_remote(c, "jobs", "http://h", "", &st), SL_EINVAL);
    /* Not connected, no default route. */
    char id[32];
    assert_int_equal(sl_client_write(c, "jobs", "1", id, sizeof id, &st), SL_ENOENT);
    assert_int_equal(
        sl_client_connect_remote(c, "jobs", "http://127.0.0.1:1/", "s3cret-token", &st), SL_OK);
    assert_int_equal(sl_client_write(c, "bad id", "1", id, sizeof id, &st), SL_EBADID);
    assert_int_equal(sl_client_evict(c, "jobs", 0, SIZE_MAX, NULL, &st), SL_EINVAL);
    assert_int_equal(sl_client_nack(c, "jobs", NULL, 0, -1, NULL, &st), SL_EINVAL);
    assert_int_equal(sl_client_acl_revoke(c, "http://127.0.0.1:1", NULL, "a b", &st), SL_EINVAL);
    assert_int_equal(
        sl_client_acl_grant(c, "http://127.0.0.1:1", NULL, "bob", SL_ROLE_NONE, NULL, 0, &st),
        SL_EINVAL);
    sl_client_free(c);
}

static void test_connection_refused(void **state)
{
    sl_client *c;
    sl_status st;
    assert_int_equal(sl_client_new(&c, NULL), SL_OK);
    sl_client_set_timeout_ms(c, 5000);
    /* Port 1 on loopback: nothing listens there. */
    assert_int_equal(sl_client_connect_remote(c, NULL, "http://127.0.0.1:1", "s3cret-token", &st),
                     SL_OK);
    sl_message_list l;
    assert_int_equal(sl_client_read(c, "jobs", NULL, &l, &st), SL_EUNAVAIL);
    assert_int_equal(st.code, SL_EUNAVAIL);
    assert_int_equal(l.len, 0);
    assert_int_equal(sl_client_last_http_status(c), 0);
    assert_null(strstr(st.message, "s3cret"));
    assert_int_equal(sl_client_health(c, "http://127.0.0.1:1", NULL, &st), SL_EUNAVAIL);
    sl_client_free(c);
    sl_client_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pct_encode),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_http_error_scrubs),
        cmocka_unit_test(test_parse_messages),
        cmocka_unit_test(test_parse_messages_malformed),
        cmocka_unit_test(test_parse_info),
        cmocka_unit_test(test_parse_infos_and_acl),
        cmocka_unit_test(test_client_arguments),
        cmocka_unit_test(test_connection_refused),
    };
    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
