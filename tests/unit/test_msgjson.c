/* Read replies rendered from stored text (core/msgjson.c): data and metadata verbatim, envelope
 * strings escaped (bytes that are not UTF-8 replaced), numbers that read back exactly, and "more".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/msgjson.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_render)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
