/* The I/O-free parts of `sluice bench queue` (src/cli/bench_queue.c): payloads of an exact size
 * that read back, the framing of sluiced's HTTP answers fed whole and byte by byte (and refused
 * when chunked, closing, oversized or not HTTP/1.1), claim replies as sluiced renders them (and
 * malformed ones), acknowledge bodies and the count in their reply, the three targets' URLs, the
 * exactly-once ledger shared by threads, and the RESULT line. Percentiles come from the histogram
 * in bench_proto.c, whose buckets test_bench checks; here its quantiles are checked on the
 * latencies this tool records. The sources are compiled into this test, as for test_bench. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_proto.h"
#include "cli/bench_queue.h"

/* ---- payload --------------------------------------------------------------------------------- */

static void test_payload_exact_size_and_roundtrip(void **state)
{
    char buf[4096];
    static const size_t sizes[] = {SL__BQ_MIN_SIZE, 64, 256, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memset(buf, 0, sizeof buf);
        assert_int_equal(sl__bq_payload(buf, sizes[i], UINT64_MAX, UINT64_MAX - 1), sizes[i]);
        assert_int_equal(buf[0], '{');
        assert_int_equal(buf[sizes[i] - 1], '}');
        uint64_t s = 0, t = 0;
        assert_int_equal(sl__bq_payload_parse(buf, sizes[i], &s, &t), 0);
        assert_true(s == UINT64_MAX);
        assert_true(t == UINT64_MAX - 1);
    }
    assert_int_equal(sl__bq_payload(buf, 64, 7, 123456789), 64);
    assert_memory_equal(buf, "{\"s\":7,\"t\":123456789,\"p\":\"xxx", 29);
}

static void test_payload_refuses_bad_sizes(void **state)
{
    char buf[64];
    assert_int_equal(sl__bq_payload(buf, SL__BQ_MIN_SIZE - 1, 1, 1), 0);
    assert_int_equal(sl__bq_payload(NULL, SL__BQ_MAX_SIZE + 1, 1, 1), 0);
    uint64_t s, t;
    assert_int_equal(sl__bq_payload_parse("{\"s\":1}", 7, &s, &t), -1);
    assert_int_equal(sl__bq_payload_parse("{\"t\":1}", 7, &s, &t), -1);
    assert_int_equal(sl__bq_payload_parse("not json", 8, &s, &t), -1);
    assert_int_equal(sl__bq_payload_parse("{\"t\":5,\"x\":[1],\"s\":9}", 21, &s, &t), 0);
    assert_true(s == 9 && t == 5);
}

/* ---- HTTP answers ---------------------------------------------------------------------------- */

static const char ok_answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "content-length: 11\r\nConnection: keep-alive\r\n\r\n"
                                "{\"a\":\"bcd\"}";

static void test_http_whole_and_split(void **state)
{
    size_t n = strlen(ok_answer);
    int status = 0;
    size_t off = 0, bl = 0;
    assert_int_equal(sl__bq_http_response(ok_answer, n, 1000, &status, &off, &bl), (long)n);
    assert_int_equal(status, 200);
    assert_int_equal(bl, 11);
    assert_memory_equal(ok_answer + off, "{\"a\":\"bcd\"}", 11);
    /* Every shorter prefix asks for more; none is mistaken for a whole answer. */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(sl__bq_http_response(ok_answer, k, 1000, &status, &off, &bl), 0);
    /* Bytes past the answer are not part of it (the caller decides what they mean). */
    char twice[512];
    snprintf(twice, sizeof twice, "%s%s", ok_answer, ok_answer);
    assert_int_equal(sl__bq_http_response(twice, strlen(twice), 1000, &status, &off, &bl), (long)n);
}

static void test_http_statuses_and_empty_body(void **state)
{
    static const char a[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    int status = 0;
    size_t off, bl;
    assert_int_equal(sl__bq_http_response(a, strlen(a), 10, &status, &off, &bl), (long)strlen(a));
    assert_int_equal(status, 404);
    assert_int_equal(bl, 0);
}

static void test_http_refusals(void **state)
{
    static const char *const bad[] = {
        "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n", /* no length */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nab",
        "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n", /* above max_body */
        "SSH-2.0-OpenSSH\r\n\r\n",
    };
    int status;
    size_t off, bl;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sl__bq_http_response(bad[i], strlen(bad[i]), 1000, &status, &off, &bl),
                         -1);
    /* A head that never ends is refused once it passes the limit, not buffered for ever. */
    char *big = malloc(SL__BQ_MAX_HEAD + 16);
    assert_non_null(big);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(big + 20, 'a', SL__BQ_MAX_HEAD - 4);
    assert_int_equal(sl__bq_http_response(big, SL__BQ_MAX_HEAD + 16, 1000, &status, &off, &bl), -1);
    assert_int_equal(sl__bq_http_response(big, 100, 1000, &status, &off, &bl), 0);
    free(big);
}

/* ---- claim replies and acknowledgements ------------------------------------------------------ */

/* As sluiced renders an exclusive read (core/msgjson.h), data verbatim. */
static const char claim_reply[] =
    "{\"messages\":[{\"id\":\"00000000000000a1\",\"timestamp\":1.5,\"sender_id\":\"bench\","
    "\"content\":{\"data\":{\"s\":3,\"t\":99,\"p\":\"xx\"}},\"metadata\":{},\"correlation_id\":"
    "null,\"reply_to\":null,\"recipient_id\":null,\"attempt\":1,\"claim_expires_at\":301.5},"
    "{\"id\":\"00000000000000a2\",\"content\":{\"data\":[1,2]},\"metadata\":{}}],\"more\":true}";

static void test_claim_parse(void **state)
{
    sl__bq_item items[4];
    size_t n = 9;
    int more = 0;
    assert_int_equal(sl__bq_claim_parse(claim_reply, strlen(claim_reply), items, 4, &n, &more), 0);
    assert_int_equal(n, 2);
    assert_int_equal(more, 1);
    assert_string_equal(items[0].id, "00000000000000a1");
    assert_int_equal(items[0].timed, 1);
    assert_int_equal(items[0].seq, 3);
    assert_int_equal(items[0].t_ns, 99);
    assert_string_equal(items[1].id, "00000000000000a2");
    assert_int_equal(items[1].timed, 0); /* data without s and t */

    static const char empty[] = "{\"messages\":[],\"more\":false}";
    assert_int_equal(sl__bq_claim_parse(empty, strlen(empty), items, 4, &n, &more), 0);
    assert_int_equal(n, 0);
    assert_int_equal(more, 0);
}

static void test_claim_parse_refusals(void **state)
{
    sl__bq_item items[1];
    size_t n;
    int more;
    static const char *const bad[] = {
        "",
        "{\"error\":\"forbidden\"}",
        "{\"messages\":{}}",
        "{\"messages\":[{\"content\":{}}]}",              /* no id */
        "{\"messages\":[{\"id\":7}]}",                    /* id not a string */
        "{\"messages\":[{\"id\":\"a\\\"b\"}]}",           /* would need escaping */
        "{\"messages\":[{\"id\":\"a\"},{\"id\":\"b\"}]}", /* more than cap */
        "{\"messages\":[{\"id\":\"0123456789012345678901234567890123456789\"}]}", /* too long */
        "{\"messages\":[],\"messages\":[]}", /* duplicate key */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sl__bq_claim_parse(bad[i], strlen(bad[i]), items, 1, &n, &more), -1);
}

static void test_ack_body_and_count(void **state)
{
    sl__bq_item items[2] = {{.id = "00000000000000a1"}, {.id = "00000000000000a2"}};
    char out[128];
    size_t n = sl__bq_ack_body(out, sizeof out, items, 2);
    assert_string_equal(out, "{\"message_ids\":[\"00000000000000a1\",\"00000000000000a2\"]}");
    assert_int_equal(n, strlen(out));
    assert_int_equal(sl__bq_ack_body(out, sizeof out, items, 0), 0);
    /* Too small by one byte, and just enough. */
    assert_int_equal(sl__bq_ack_body(out, n, items, 2), 0);
    assert_int_equal(sl__bq_ack_body(out, n + 1, items, 2), n);

    static const char reply[] = "{\"status\":\"ok\",\"acknowledged\":2}";
    assert_int_equal(sl__bq_ack_count(reply, strlen(reply)), 2);
    assert_int_equal(sl__bq_ack_count("{\"status\":\"ok\"}", 15), -1);
    assert_int_equal(sl__bq_ack_count("{\"acknowledged\":-1}", 19), -1);
    assert_int_equal(sl__bq_ack_count("garbage", 7), -1);
}

/* ---- URLs ------------------------------------------------------------------------------------ */

static void test_urls(void **state)
{
    sl__bq_url u;
    const char *why = NULL;
    assert_int_equal(sl__bq_url_parse("http://127.0.0.1:18080", "http", 80, &u, &why), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 18080);
    assert_string_equal(u.user, "");
    assert_int_equal(sl__bq_url_parse("nats://localhost", "nats", 4222, &u, &why), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 4222);
    assert_int_equal(sl__bq_url_parse("amqp://bench:s3cret@[::1]:5673/vh", "amqp", 5672, &u, &why),
                     0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 5673);
    assert_string_equal(u.user, "bench");
    assert_string_equal(u.pass, "s3cret");
    assert_string_equal(u.path, "vh");
    assert_int_equal(sl__bq_url_parse("amqp://guest:guest@h/", "amqp", 5672, &u, &why), 0);
    assert_string_equal(u.path, "");

    static const char *const bad[] = {
        "nats://h:4222",  "http://",      "http://h:",   "http://h:0",
        "http://h:65536", "http://h:12a", "http://[::1", "http://h x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(sl__bq_url_parse(bad[i], "http", 80, &u, &why), -1);
        assert_non_null(why);
    }
}

/* ---- ledger ---------------------------------------------------------------------------------- */

static void test_ledger(void **state)
{
    sl__bq_ledger l;
    assert_int_equal(sl__bq_ledger_init(&l, 10), 0);
    sl__bq_ledger_produced(&l, 0);
    sl__bq_ledger_produced(&l, 1);
    sl__bq_ledger_produced(&l, 2);
    sl__bq_ledger_produced(&l, 99); /* out of range: ignored */
    assert_int_equal(sl__bq_ledger_mark(&l, 1), 0);
    assert_int_equal(sl__bq_ledger_mark(&l, 1), 1);
    /* Consumed before its producer saw the confirm: not missing once the confirm is recorded. */
    assert_int_equal(sl__bq_ledger_mark(&l, 5), 0);
    sl__bq_ledger_produced(&l, 5);
    assert_int_equal(sl__bq_ledger_mark(&l, 10), -1);
    assert_int_equal(sl__bq_ledger_missing(&l), 2); /* 0 and 2 */
    assert_int_equal(atomic_load(&l.dups), 1);
    assert_int_equal(atomic_load(&l.unknown), 1);
    sl__bq_ledger_free(&l);
}

#define LEDGER_N 20000

static void *mark_all(void *arg)
{
    sl__bq_ledger *l = arg;
    for (uint64_t i = 0; i < LEDGER_N; i++) {
        sl__bq_ledger_produced(l, i);
        sl__bq_ledger_mark(l, i);
    }
    return NULL;
}

/* Four threads consuming every message: each is first exactly once, the rest are duplicates. */
static void test_ledger_threads(void **state)
{
    sl__bq_ledger l;
    assert_int_equal(sl__bq_ledger_init(&l, LEDGER_N), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, mark_all, &l), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&l.dups), 3 * LEDGER_N);
    assert_int_equal(sl__bq_ledger_missing(&l), 0);
    sl__bq_ledger_free(&l);
}

/* ---- percentiles and the result line --------------------------------------------------------- */

static void test_latency_percentiles(void **state)
{
    sl__bench_hist h;
    sl__bench_hist_init(&h);
    /* 1..1000 microseconds in nanoseconds: p50 is 500 us and p99 990 us, within a bucket (1/64). */
    for (uint64_t us = 1; us <= 1000; us++)
        sl__bench_hist_record(&h, us * 1000);
    double p50 = (double)sl__bench_hist_quantile(&h, 0.50) / 1e3;
    double p99 = (double)sl__bench_hist_quantile(&h, 0.99) / 1e3;
    assert_true(p50 >= 500 && p50 <= 500 * (1 + 1.0 / 64) + 1);
    assert_true(p99 >= 990 && p99 <= 990 * (1 + 1.0 / 64) + 1);
    assert_true(sl__bench_hist_quantile(&h, 1.0) == 1000000);
}

/* Per-thread histograms merged: the same quantiles as one histogram holding every value. */
static void test_latency_merge(void **state)
{
    sl__bench_hist a, b, all, sum;
    sl__bench_hist_init(&a);
    sl__bench_hist_init(&b);
    sl__bench_hist_init(&all);
    sl__bench_hist_init(&sum);
    for (uint64_t v = 1; v <= 5000; v++) {
        sl__bench_hist_record(v % 3 ? &a : &b, v * 700);
        sl__bench_hist_record(&all, v * 700);
    }
    sl__bench_hist_merge(&sum, &a);
    sl__bench_hist_merge(&sum, &b);
    sl__bench_hist empty;
    sl__bench_hist_init(&empty);
    sl__bench_hist_merge(&sum, &empty); /* a thread that recorded nothing changes nothing */
    assert_true(sum.count == all.count && sum.min == all.min && sum.max == all.max);
    static const double qs[] = {0, 0.5, 0.9, 0.99, 0.999, 1};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        assert_true(sl__bench_hist_quantile(&sum, qs[i]) == sl__bench_hist_quantile(&all, qs[i]));
}

static void test_result_line(void **state)
{
    sl__bq_summary s = {.target = "nats",
                        .durability = "write-no-fsync",
                        .clients = 4,
                        .produced = 1000,
                        .consumed = 1000,
                        .produce_rate = 12345.4,
                        .consume_rate = 12000.6,
                        .produce_p50_us = 310.2,
                        .produce_p99_us = 1200,
                        .e2e_p50_us = 450,
                        .e2e_p99_us = 3000,
                        .client_cpu = 41.7};
    char out[512];
    size_t n = sl__bq_result_line(out, sizeof out, &s);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "RESULT target=nats durability=write-no-fsync clients=4 produced=1000 "
                             "consumed=1000 duplicates=0 missing=0 left=0 errors=0 "
                             "produce_rate=12345 consume_rate=12001 produce_p50_us=310 "
                             "produce_p99_us=1200 e2e_p50_us=450 e2e_p99_us=3000 client_cpu=42");
    assert_int_equal(sl__bq_result_line(out, 20, &s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_exact_size_and_roundtrip),
        cmocka_unit_test(test_payload_refuses_bad_sizes),
        cmocka_unit_test(test_http_whole_and_split),
        cmocka_unit_test(test_http_statuses_and_empty_body),
        cmocka_unit_test(test_http_refusals),
        cmocka_unit_test(test_claim_parse),
        cmocka_unit_test(test_claim_parse_refusals),
        cmocka_unit_test(test_ack_body_and_count),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_ledger),
        cmocka_unit_test(test_ledger_threads),
        cmocka_unit_test(test_latency_percentiles),
        cmocka_unit_test(test_latency_merge),
        cmocka_unit_test(test_result_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
