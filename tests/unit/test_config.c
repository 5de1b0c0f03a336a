/* The config file parser: every section and option, and errors that name file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/config.h"

static int parse(sl__config *c, const char *text, sl_status *st)
{
    sl__config_init(c);
    return sl__config_parse(c, text, strlen(text), "test.conf", st);
}

static void test_full(void **state)
{
    (void)state;
    const char *text = "# sluiced config\n"
                       "listen = 0.0.0.0:9000\n"
                       "authz = acl\n"
                       "admin = ops\n"
                       "max_body = 2048\n"
                       "request_timeout = 2.5\n"
                       "\n"
                       "[channel jobs]\n"
                       "kind = queue\n"
                       "name = Job Queue\n"
                       "claim_timeout = 60\n"
                       "max_attempts = 5\n"
                       "[channel news]\n"
                       "kind = topic\n"
                       "visibility = private\n"
                       "retention_max_count = 100\n"
                       "[acl worker-1]\n"
                       "role = write\n"
                       "channels = jobs, orders.*\n";
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c, text, &st), SL_OK);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.authz, SL_MODE_ACL);
    assert_int_equal(c.nadmins, 1);
    assert_int_equal(c.limits.max_body, 2048);
    assert_int_equal(c.limits.request_timeout_ms, 2500);
    assert_int_equal(c.nchannels, 2);
    assert_string_equal(c.channels[0].opts.name, "Job Queue");
    assert_true(c.channels[0].opts.claim_timeout == 60);
    assert_int_equal(c.channels[0].opts.max_attempts, 5);
    assert_int_equal(c.channels[0].opts.visibility, SL_VIS_PUBLIC);
    assert_int_equal(c.channels[1].opts.kind, SL_KIND_TOPIC);
    assert_int_equal(c.channels[1].opts.visibility, SL_VIS_PRIVATE);
    assert_int_equal(c.ngrants, 1);
    assert_int_equal(c.grants[0].role, SL_ROLE_WRITE);
    assert_int_equal(c.grants[0].npatterns, 2);
    assert_string_equal(c.grants[0].patterns[1], "orders.*");
    sl__config_free(&c);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    struct {
        const char *text, *want;
    } cases[] = {
        {"listen = nowhere\n", "test.conf:1: listen must be HOST:PORT"},
        {"\n\nbogus = 1\n", "test.conf:3: unknown option 'bogus'"},
        {"[channel a/b]\n", "test.conf:1: invalid channel id 'a/b'"},
        {"[channel q]\nkind = stream\n", "test.conf:2: kind must be queue or topic"},
        {"[channel q]\nmax_attempts = -1\n", "test.conf:2: max_attempts must be 0..1000000"},
        {"[acl bob]\nrole = root\n", "test.conf:2: role must be read, write or admin"},
        {"[acl bob]\nchannels = a.**.b\n", "test.conf:2: invalid channel pattern 'a.**.b'"},
        {"[acl bob]\n", "test.conf: [acl bob] has no role"},
        {"[nonsense x]\n", "test.conf:1: unknown section 'nonsense'"},
        {"[channel q\n", "test.conf:1: section header must end with ']'"},
        {"just words\n", "test.conf:1: expected 'key = value'"},
        {"jwt_leeway = 120\n", "test.conf:1: jwt_leeway must be between 0 and 60 seconds"},
        {"max_body = 0\n", "test.conf:1: max_body must be 1..1073741824 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sl__config c;
        sl_status st;
        assert_int_equal(parse(&c, cases[i].text, &st), SL_ECONFIG);
        if (strcmp(st.message, cases[i].want) != 0)
            fail_msg("case %zu: got '%s'", i, st.message);
        sl__config_free(&c);
    }
    /* An over-long line and a NUL byte. */
    static char big[8192];
    memset(big, 'a', sizeof big - 1);
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c, big, &st), SL_ECONFIG);
    sl__config_free(&c);
    sl__config_init(&c);
    assert_int_equal(sl__config_parse(&c, "a\0= b\n", 6, "x", &st), SL_ECONFIG);
    sl__config_free(&c);
}

/* The per-address connection limits and the busy head timeout (docs/CONFIG.md). */
static void test_connection_limits(void **state)
{
    (void)state;
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c, "max_connections = 500\n", &st), SL_OK);
    assert_int_equal(c.limits.max_connections_per_address, 0);
    assert_int_equal(c.limits.max_pending_per_address, 64);
    assert_int_equal(c.limits.busy_header_timeout_ms, 2000);
    sl__config_free(&c);
    assert_int_equal(parse(&c,
                           "max_connections_per_address = 50\nmax_pending_per_address = 0\n"
                           "busy_header_timeout = 0.5\n",
                           &st),
                     SL_OK);
    assert_int_equal(c.limits.max_connections_per_address, 50);
    assert_int_equal(c.limits.max_pending_per_address, 0);
    assert_int_equal(c.limits.busy_header_timeout_ms, 500);
    sl__config_free(&c);
    assert_int_equal(parse(&c, "max_pending_per_address = -1\n", &st), SL_ECONFIG);
    assert_string_equal(st.message, "test.conf:1: max_pending_per_address must be 0..1000000");
    sl__config_free(&c);
    assert_int_equal(parse(&c, "busy_header_timeout = 4000\n", &st), SL_ECONFIG);
    assert_string_equal(st.message, "test.conf:1: busy_header_timeout must be 0..3600 seconds");
    sl__config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_connection_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
