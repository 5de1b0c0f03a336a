/* The metrics registry's text renderer (core/metrics.c): label values escaped (backslash, double
 * quote, newline; other control bytes and bytes past ASCII replaced), samples and histograms in
 * the exposition format 0.0.4, the hooks' label slots, and hostile label values that must not break
 * a line or the UTF-8 of the text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

static char *escaped(const char *v)
{
    sl__mtext t = {0};
    sl__mtext_escape(&t, v);
    assert_false(t.oom);
    char *s = t.data ? t.data : strdup("");
    return s;
}

static void test_escape(void **state)
{
    (void)state;
    struct {
        const char *in, *out;
    } cases[] = {
        {"jobs", "jobs"},
        {"a\\b", "a\\\\b"},
        {"say \"hi\"", "say \\\"hi\\\""},
        {"two\nlines", "two\\nlines"},
        {"\\\"\n", "\\\\\\\"\\n"},
        {"tab\there", "tab\xef\xbf\xbdhere"},
        {"cr\r", "cr\xef\xbf\xbd"},
        {"\x7f", "\xef\xbf\xbd"},
        {"caf\xc3\xa9", "caf\xef\xbf\xbd\xef\xbf\xbd"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = escaped(cases[i].in);
        assert_string_equal(s, cases[i].out);
        free(s);
    }
}

static void test_sample_and_family(void **state)
{
    (void)state;
    sl__mtext t = {0};
    sl__mtext_family(&t, "x_total", "counter", "Things.");
    const char *l[] = {"channel", "a\"b\\c\nd", "kind", "queue", NULL};
    sl__mtext_sample(&t, "x_total", l, 3);
    sl__mtext_sample(&t, "y", NULL, 0.25);
    sl__mtext_sample(&t, "z", NULL, 1e20);
    assert_false(t.oom);
    assert_string_equal(t.data, "# HELP x_total Things.\n"
                                "# TYPE x_total counter\n"
                                "x_total{channel=\"a\\\"b\\\\c\\nd\",kind=\"queue\"} 3\n"
                                "y 0.25\n"
                                "z 1e+20\n");
    sl__mtext_free(&t);
}

static void test_histogram_is_cumulative(void **state)
{
    (void)state;
    sl__histo h = {0};
    sl__histo_observe(&h, 0.0001); /* first bucket */
    sl__histo_observe(&h, 0.001);  /* le is inclusive */
    sl__histo_observe(&h, 0.3);
    sl__histo_observe(&h, 99); /* +Inf only */
    sl__histo_observe(&h, -1); /* a clock stepping back counts as 0 */
    assert_int_equal(h.count, 5);
    sl__mtext t = {0};
    sl__mtext_histo(&t, "d_seconds", "op", "channel.write", &h);
    assert_false(t.oom);
    assert_non_null(strstr(t.data, "d_seconds_bucket{op=\"channel.write\",le=\"0.0005\"} 2\n"));
    assert_non_null(strstr(t.data, "d_seconds_bucket{op=\"channel.write\",le=\"0.001\"} 3\n"));
    assert_non_null(strstr(t.data, "d_seconds_bucket{op=\"channel.write\",le=\"0.25\"} 3\n"));
    assert_non_null(strstr(t.data, "d_seconds_bucket{op=\"channel.write\",le=\"0.5\"} 4\n"));
    assert_non_null(strstr(t.data, "d_seconds_bucket{op=\"channel.write\",le=\"10\"} 4\n"));
    assert_non_null(strstr(t.data, "d_seconds_bucket{op=\"channel.write\",le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(t.data, "d_seconds_count{op=\"channel.write\"} 5\n"));
    assert_non_null(strstr(t.data, "d_seconds_sum{op=\"channel.write\"} 99.301"));
    sl__mtext_free(&t);
    sl__mtext_histo(&t, "e_seconds", NULL, NULL, &h);
    assert_non_null(strstr(t.data, "e_seconds_bucket{le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(t.data, "e_seconds_count 5\n"));
    sl__mtext_free(&t);
}

/* Every line of a rendering is a comment or `name[{labels}] value`, with no raw control byte and
 * nothing past ASCII (all label values went through the escaping). */
static void check_lines(const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        for (const char *c = p; c < nl; c++)
            assert_true(((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f) ||
                        (unsigned char)*c >= 0x80); /* U+FFFD's bytes */
        if (*p != '#') {
            const char *sp = nl;
            while (sp > p && sp[-1] != ' ')
                sp--;
            assert_true(sp > p);
            sp--;
            char *end;
            strtod(sp + 1, &end);
            assert_ptr_equal(end, nl);
        }
        p = nl + 1;
    }
}

static void hostile_collector(void *ud, sl__mtext *t)
{
    (void)ud;
    char id[256];
    for (int i = 1; i < 256; i++)
        id[i - 1] = (char)i;
    id[255] = '\0';
    sl__mtext_family(t, "sluice_channel_depth", "gauge", "Depth.");
    const char *l[] = {"channel", id, NULL};
    sl__mtext_sample(t, "sluice_channel_depth", l, 7);
}

static void test_render_registry(void **state)
{
    (void)state;
    sl__metrics *m;
    assert_int_equal(sl__metrics_new(&m, 1000), SL_OK);
    sl__metrics_request(m, SL_OP_CHANNEL_WRITE, 202, 0.002);
    sl__metrics_request(m, SL_OP_CHANNEL_WRITE, 202, 0.004);
    sl__metrics_request(m, SL_OP_CHANNEL_WRITE, 299, 0.004); /* not a status of its own */
    sl__metrics_request(m, SL_OP__COUNT, 404, 0);
    sl__metrics_request(m, SL_OP_TOKEN_ISSUE, 200, 0);
    sl__metrics_request(m, SL_OP_TOKEN_DELEGATE, 403, 0);
    sl_identity who;
    sl_identity_init(&who);
    who.source = SL_SOURCE_APIKEY;
    sl__metrics_authn(m, SL_OK, &who, NULL);
    sl__metrics_authn(m, SL_ETOKEN, NULL, "token revoked");
    sl__metrics_authn(m, SL_ETOKEN, NULL, "bad signature");
    sl__metrics_authn(m, SL_EUNAUTH, NULL, NULL);
    sl__metrics_denied(m, SL_OP_ACL_GRANT);
    sl__metrics_revocation(m, SL__M_REV_ERROR);
    sl__metrics_engine(m, 4, SL_OK, 0.003);     /* append, 3 ms */
    sl__metrics_engine(m, 4, SL_ESTORAGE, 1.2); /* append failed in the store */
    sl__metrics_engine(m, 5, SL_ENOENT, 0);     /* claim of a missing channel: no store error */
    sl__metrics_engine(m, 6, SL_OK, 0.00018);   /* an ack of 180 us: below a millisecond */
    sl__metrics_ws_disconnect(m, 3008);
    sl__metrics_ws_disconnect(m, 4999);                     /* "other" */
    sl__metrics_request(NULL, SL_OP_CHANNEL_WRITE, 200, 0); /* hooks take no registry */
    sl__metrics_authn(NULL, SL_OK, &who, NULL);
    sl__metrics_engine(NULL, 4, SL_OK, 0.001);
    sl__metrics_ws_disconnect(NULL, 3008);
    assert_int_equal(sl__metrics_add_collector(m, hostile_collector, NULL, NULL), SL_OK);
    sl__mtext t = {0};
    assert_int_equal(sl__metrics_render(m, &t, 1010), SL_OK);
    const char *want[] = {
        "sluice_http_requests_total{op=\"channel.write\",status=\"202\"} 2\n",
        "sluice_http_requests_total{op=\"channel.write\",status=\"other\"} 1\n",
        "sluice_http_requests_total{op=\"none\",status=\"404\"} 1\n",
        "sluice_http_request_duration_seconds_count{op=\"channel.write\"} 3\n",
        "sluice_http_request_duration_seconds_bucket{op=\"channel.write\",le=\"0.0025\"} 1\n",
        "sluice_authentications_total{authenticator=\"api-key\",outcome=\"ok\"} 1\n",
        "sluice_authentications_total{authenticator=\"none\",outcome=\"revoked\"} 1\n",
        "sluice_authentications_total{authenticator=\"none\",outcome=\"invalid\"} 1\n",
        "sluice_authentications_total{authenticator=\"none\",outcome=\"missing\"} 1\n",
        "sluice_authorization_denials_total{op=\"acl.grant\"} 1\n",
        "sluice_revocation_checks_total{outcome=\"error\"} 1\n",
        "sluice_revocation_checks_total{outcome=\"ok\"} 0\n",
        "sluice_broker_tokens_total{op=\"issue\",outcome=\"issued\"} 1\n",
        "sluice_broker_tokens_total{op=\"delegate\",outcome=\"denied\"} 1\n",
        "sluice_engine_request_duration_seconds_count{op=\"append\"} 2\n",
        "sluice_engine_request_duration_seconds_bucket{op=\"append\",le=\"0.005\"} 1\n",
        "sluice_engine_errors_total{op=\"append\"} 1\n",
        "sluice_engine_request_duration_seconds_count{op=\"claim\"} 1\n",
        "sluice_engine_request_duration_seconds_bucket{op=\"ack\",le=\"0.0001\"} 0\n",
        "sluice_engine_request_duration_seconds_bucket{op=\"ack\",le=\"0.00025\"} 1\n",
        "sluice_ws_disconnects_total{code=\"3008\"} 1\n",
        "sluice_ws_disconnects_total{code=\"other\"} 1\n",
        "sluice_ws_slow_consumer_disconnects_total 1\n",
        "sluice_uptime_seconds 10\n",
        "sluice_build_info{version=\"",
        "process_start_time_seconds 1000\n",
        "process_open_fds ",
        "process_resident_memory_bytes ",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(t.data, want[i]) == NULL) {
            fprintf(stderr, "in:\n%s", t.data);
            sl__mtext_free(&t);
            sl__metrics_free(m);
            fail_msg("missing: %s", want[i]);
        }
    assert_null(strstr(t.data, "sluice_engine_errors_total{op=\"claim\"}"));
    assert_null(strstr(t.data, "op=\"channel.read\"")); /* never moved: left out */
    check_lines(t.data);
    sl__mtext_free(&t);
    sl__metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_sample_and_family),
        cmocka_unit_test(test_histogram_is_cumulative),
        cmocka_unit_test(test_render_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
