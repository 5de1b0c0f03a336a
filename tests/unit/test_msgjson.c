/* Read replies rendered from stored text (core/msgjson.c): data and metadata verbatim, envelope
 * strings escaped (bytes that are not UTF-8 replaced), numbers that read back exactly, and "more".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/message.h"
#include "core/msgjson.h"

/* Checks sl__json_seconds against printf's "%.17g" for v. */
static void same_as_printf(double v)
{
    char want[40], got[24];
    snprintf(want, sizeof want, "%.17g", v);
    size_t n = sl__json_seconds(v, got);
    if (n == 0)
        fail_msg("%s: not formatted", want);
    got[n] = '\0';
    if (strcmp(want, got) != 0)
        fail_msg("%.17g: printf %s, sl__json_seconds %s", v, want, got);
}

/* Every bit pattern would take too long; random ones over the whole range, each power-of-two
 * band's edges, whole seconds, and values whose 8th decimal is exactly 5 (ties, to even). */
static void test_seconds_as_printf(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 2000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v = 1e9 + (double)(x >> 11) / (double)(1ull << 53) * 9e9;
        if (v >= 1e9 && v < 1e10)
            same_as_printf(v);
    }
    const double edges[] = {1e9,          1073741824.0, 2147483648.0, 4294967296.0, 8589934592.0,
                            1796478081.0, 1796478081.5, 9999999999.0, 1700000000.1};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        same_as_printf(edges[i]);
        same_as_printf(nextafter(edges[i], 1e11));
        if (edges[i] > 1e9)
            same_as_printf(nextafter(edges[i], 0));
    }
    same_as_printf(nextafter(1e10, 0)); /* the largest value in range */
    /* frac = k * 2^-22 (v in [2^30, 2^31)): frac * 1e7 ends in exactly .5 when k * 78125 * 2^7
     * is an odd multiple of 2^21, i.e. k * 78125 = 2^14 * odd */
    for (uint64_t odd = 1; odd < 200; odd += 2) {
        uint64_t k = (uint64_t)1 << 14; /* 78125 is odd: k must carry the 2^14 */
        k *= odd;
        if (k >= (1u << 22))
            break;
        same_as_printf(1500000000.0 + (double)k / (double)(1u << 22));
    }
    char out[24];
    assert_int_equal(sl__json_seconds(999999999.5, out), 0);
    assert_int_equal(sl__json_seconds(1e10, out), 0);
    assert_int_equal(sl__json_seconds(-1.0, out), 0);
    assert_int_equal(sl__json_seconds(NAN, out), 0);
}

static void test_render(void **state)
{
    (void)state;
    sl_message m[2] = {
        {.id = "0000000000000001",
         .timestamp = 1700000000,
         .sender_id = "alice",
         .data = "{\"a\":1,\"a\":2}",
         .correlation_id = "q\"\\\n\x01\xff\xc3\xa9",
         .attempt = 3,
         .claim_expires_at = 0.1},
        {.id = "0000000000000002",
         .timestamp = 1700000000.5,
         .data = "0.1",
         .metadata = "{\"k\":1,\"k\":2}"},
    };
    sl_message_list l = {m, 2, 1};
    char *out;
    size_t len;
    assert_int_equal(sl__messages_json(&l, 1, &out, &len), SL_OK);
    assert_int_equal(strlen(out), len);
    assert_string_equal(
        out, "{\"messages\":[{\"id\":\"0000000000000001\",\"timestamp\":1700000000.0,"
             "\"sender_id\":\"alice\",\"content\":{\"data\":{\"a\":1,\"a\":2}},\"metadata\":{},"
             "\"correlation_id\":\"q\\\"\\\\\\u000a\\u0001\\ufffd\xc3\xa9\",\"reply_to\":null,"
             "\"recipient_id\":null,\"attempt\":3,\"claim_expires_at\":0.10000000000000001},"
             "{\"id\":\"0000000000000002\",\"timestamp\":1700000000.5,\"sender_id\":null,"
             "\"content\":{\"data\":0.1},\"metadata\":{\"k\":1,\"k\":2},\"correlation_id\":null,"
             "\"reply_to\":null,\"recipient_id\":null,\"attempt\":0,\"claim_expires_at\":0.0}],"
             "\"more\":true}");
    json_t *doc = json_loadb(out, len, 0, NULL); /* valid JSON, every envelope field readable */
    assert_non_null(doc);
    json_t *m0 = json_array_get(json_object_get(doc, "messages"), 0);
    assert_true(json_real_value(json_object_get(m0, "claim_expires_at")) == 0.1);
    json_decref(doc);
    free(out);

    sl_message_list empty = {NULL, 0, 0};
    assert_int_equal(sl__messages_json(&empty, 0, &out, &len), SL_OK);
    assert_string_equal(out, "{\"messages\":[],\"more\":false}");
    free(out);
}

/* Message ids are 16 lowercase hex digits of the sequence, as printf("%016" PRIx64) wrote them. */
static void test_msgid_format(void **state)
{
    (void)state;
    const uint64_t v[] = {0, 1, 0xf, 0x10, 0xdeadbeef, 0x0123456789abcdefull, UINT64_MAX};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char got[SL__MSGID_LEN + 1], want[32];
        memset(got, 'x', sizeof got);
        sl__msgid_format(v[i], got);
        snprintf(want, sizeof want, "%016" PRIx64, v[i]);
        assert_string_equal(got, want);
        uint64_t back = 0;
        assert_true(sl__msgid_parse(got, &back));
        assert_true(back == v[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_render),
                                       cmocka_unit_test(test_seconds_as_printf),
                                       cmocka_unit_test(test_msgid_format)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
