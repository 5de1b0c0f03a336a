/* The I/O-free parts of `sluice bench ws` (src/cli/bench_proto.c): the split of the --url and
 * --publish-url targets (and their refusals), the upgrade request and the check of the server's
 * 101, masked client frames read back with the shared frame parser, the message reader fed whole,
 * split at every byte and with fragments and control frames interleaved, Centrifugo line splitting
 * and classification in any key order (and the shortcut for sluiced's own layout, which must agree
 * with it), the NATS baseline's stream parser, the latency histogram's buckets and quantiles, and
 * the bounded error table; each also against hostile input. The CLI's sources are not in a library,
 * so this test compiles bench_proto.c into itself; the frame functions it calls come from libsluice
 * as in the CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_proto.h"
#include "net/ws.h"

/* ---- target URLs (--url, --publish-url) ------------------------------------------------------ */

static void test_url_parse(void **state)
{
    (void)state;
    sl__bench_url u;
    const char *why = NULL;
    assert_int_equal(sl__bench_url_parse("http://127.0.0.1:18180", 0, NULL, &u, &why), 0);
    assert_string_equal(u.host, "127.0.0.1:18180");
    assert_string_equal(u.name, "127.0.0.1");
    assert_string_equal(u.port, "18180");
    assert_string_equal(u.path, "/connection/websocket");
    /* A prefix (a proxy's location) keeps its path, trailing slashes and query dropped. */
    assert_int_equal(sl__bench_url_parse("ws://node-a/sluice//?x=1", 0, NULL, &u, &why), 0);
    assert_string_equal(u.host, "node-a");
    assert_string_equal(u.name, "node-a");
    assert_string_equal(u.port, "80");
    assert_string_equal(u.path, "/sluice/connection/websocket");
    assert_int_equal(sl__bench_url_parse("http://[::1]:8080/", 0, NULL, &u, &why), 0);
    assert_string_equal(u.host, "[::1]:8080");
    assert_string_equal(u.name, "::1");
    assert_string_equal(u.port, "8080");
    assert_int_equal(sl__bench_url_parse("http://[::1]", 1, NULL, &u, &why), 0);
    assert_string_equal(u.name, "::1");
    assert_string_equal(u.port, "80");
    assert_string_equal(u.path, "/");
    assert_int_equal(sl__bench_url_parse("http://h:1/p", 0, "/ws", &u, &why), 0);
    assert_string_equal(u.path, "/ws");

    static const char *const bad[][2] = {
        {"https://h:1", "not http:// or ws:// (no TLS)"},
        {"h:1", "not http:// or ws:// (no TLS)"},
        {"http://", "no host"},
        {"http:///x", "no host"},
        {"http://:80", "no host"},
        {"http://h:", "bad port"},
        {"http://h:0", "bad port"},
        {"http://h:65536", "bad port"},
        {"http://h:123456", "bad port"},
        {"http://h:8a", "bad port"},
        {"http://h:-1", "bad port"},
        {"http://[::1", "bad IPv6 address"},
        {"http://[]:80", "bad IPv6 address"},
        {"http://[::1]x", "bad IPv6 address"},
        {"http://h /x", "spaces or control characters"},
        {"http://h\r\nX: y", "spaces or control characters"},
        {"http://h\x7f", "spaces or control characters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(sl__bench_url_parse(bad[i][0], 0, NULL, &u, &why), -1);
        assert_non_null(why);
        assert_string_equal(why, bad[i][1]);
    }
    /* Parts longer than their buffers are refused, not cut. */
    char big[1400];
    memset(big, 'a', sizeof big);
    memcpy(big, "http://", 7);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sl__bench_url_parse(big, 0, NULL, &u, &why), -1);
    assert_string_equal(why, "host too long");
    memcpy(big, "http://h/", 9);
    assert_int_equal(sl__bench_url_parse(big, 0, NULL, &u, &why), -1);
    assert_string_equal(why, "path too long");
}

/* ---- upgrade --------------------------------------------------------------------------------- */

static const char rfc_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char rfc_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static void test_upgrade_request(void **state)
{
    char out[512];
    size_t n = sl__bench_upgrade_request(out, sizeof out, "127.0.0.1:8080", "/connection/websocket",
                                         rfc_key);
    assert_true(n > 0);
    assert_int_equal(n, strlen(out));
    assert_true(strncmp(out, "GET /connection/websocket HTTP/1.1\r\n", 36) == 0);
    assert_non_null(strstr(out, "\r\nHost: 127.0.0.1:8080\r\n"));
    assert_non_null(strstr(out, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(out, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_string_equal(out + n - 4, "\r\n\r\n");
    /* Does not fit: refused rather than truncated. */
    volatile size_t small = 40; /* volatile: gcc would warn about the truncation it is about */
    assert_int_equal(sl__bench_upgrade_request(out, small, "h", "/p", rfc_key), 0);
}

static void test_upgrade_response(void **state)
{
    char accept[29];
    assert_int_equal(sl_ws_accept_key(rfc_key, strlen(rfc_key), accept), 0);
    assert_string_equal(accept, rfc_accept);

    const char ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
                      "upgrade: WebSocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n"
                      "\r\n"
                      "\x81\x02{}"; /* a frame right behind the head is not part of it */
    size_t head = strlen(ok) - 4;
    int status;
    const char *why;
    assert_int_equal(sl__bench_upgrade_response(ok, strlen(ok), accept, &status, &why), (long)head);
    assert_int_equal(status, 101);
    /* Every proper prefix of the head asks for more. */
    for (size_t i = 0; i < head; i++)
        assert_int_equal(sl__bench_upgrade_response(ok, i, accept, &status, &why), 0);

    const char wrong[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
    assert_int_equal(sl__bench_upgrade_response(wrong, strlen(wrong), accept, &status, &why), -1);
    assert_string_equal(why, "wrong Sec-WebSocket-Accept");

    const char twice[] = "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                         "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
    assert_int_equal(sl__bench_upgrade_response(twice, strlen(twice), accept, &status, &why), -1);

    const char noup[] = "HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                        "\r\n\r\n";
    assert_int_equal(sl__bench_upgrade_response(noup, strlen(noup), accept, &status, &why), -1);
    assert_string_equal(why, "101 without Upgrade: websocket");

    const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(sl__bench_upgrade_response(busy, strlen(busy), accept, &status, &why), -1);
    assert_int_equal(status, 503);
    /* The status is known before the head is complete. */
    assert_int_equal(sl__bench_upgrade_response(busy, 40, accept, &status, &why), 0);
    assert_int_equal(status, 503);

    const char *junk[] = {"SSH-2.0-OpenSSH\r\n", "HTTP/1.0 101 OK\r\n\r\n", "HTTP/1.1 1x1 OK\r\n",
                          "HTTP/1.1 1011 OK\r\n", "\r\n"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        assert_int_equal(
            sl__bench_upgrade_response(junk[i], strlen(junk[i]), accept, &status, &why), -1);
        assert_int_equal(status, 0);
    }

    /* A head that never ends is refused once it reaches the limit, not buffered further. */
    size_t big = SL__BENCH_MAX_HEAD + 100;
    char *h = malloc(big);
    assert_non_null(h);
    memset(h, 'a', big);
    memcpy(h, "HTTP/1.1 101 OK\r\nX: ", 20);
    assert_int_equal(sl__bench_upgrade_response(h, SL__BENCH_MAX_HEAD - 1, accept, &status, &why),
                     0);
    assert_int_equal(sl__bench_upgrade_response(h, big, accept, &status, &why), -1);
    assert_string_equal(why, "response head too large");
    memset(h, 'a', big); /* no status line at all */
    assert_int_equal(sl__bench_upgrade_response(h, big, accept, &status, &why), -1);
    free(h);
}

/* ---- frames ---------------------------------------------------------------------------------- */

static void test_client_frames(void **state)
{
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000};
    static const size_t hdr[] = {6, 6, 6, 8, 8, 14, 14};
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = lens[k];
        uint8_t *buf = malloc(SL__WSF_MAX_HEADER + n);
        uint8_t *want = malloc(n + 1);
        assert_non_null(buf);
        assert_non_null(want);
        for (size_t i = 0; i < n; i++)
            want[i] = buf[SL__WSF_MAX_HEADER + i] = (uint8_t)('a' + i % 26);
        size_t off = sl__bench_frame(buf, n, SL__WSF_TEXT, mask);
        assert_int_equal(SL__WSF_MAX_HEADER - off, hdr[k]);
        sl__wsf_header h;
        const char *why = NULL;
        int hl = sl__wsf_parse_header(buf + off, SL__WSF_MAX_HEADER + n - off, &h, &why);
        assert_int_equal(hl, (int)hdr[k]);
        assert_true(h.fin);
        assert_true(h.masked);
        assert_int_equal(h.opcode, SL__WSF_TEXT);
        assert_int_equal(h.len, n);
        assert_memory_equal(h.mask, mask, 4);
        if (n > 0) {
            assert_true(memcmp(buf + SL__WSF_MAX_HEADER, want, n) != 0); /* really masked */
            sl__wsf_mask(buf + SL__WSF_MAX_HEADER, n, h.mask, 0);
            assert_memory_equal(buf + SL__WSF_MAX_HEADER, want, n);
        }
        free(buf);
        free(want);
    }
}

/* Appends one unmasked (server) frame to out; returns its length. */
static size_t server_frame(uint8_t *out, int fin, int op, const char *p, size_t n)
{
    size_t hl = sl__wsf_write_header(out, fin, op, n, NULL);
    memcpy(out + hl, p, n);
    return hl + n;
}

typedef struct got {
    int op[16];
    char data[16][256];
    size_t len[16];
    size_t n;
    int stop_at; /* return 7 on this message (1-based); 0 never */
} got;

static int collect(void *ud, int op, const uint8_t *d, size_t len)
{
    got *g = ud;
    assert_true(g->n < 16);
    g->op[g->n] = op;
    g->len[g->n] = len;
    memcpy(g->data[g->n], d, len < 256 ? len : 256);
    g->n++;
    return g->stop_at && (int)g->n == g->stop_at ? 7 : 0;
}

static void test_rx_whole_and_split(void **state)
{
    uint8_t stream[1024];
    size_t n = 0;
    n += server_frame(stream + n, 1, SL__WSF_TEXT, "{\"id\":1}", 8);
    n += server_frame(stream + n, 0, SL__WSF_TEXT, "ab", 2); /* fragmented text... */
    n += server_frame(stream + n, 1, SL__WSF_PING, "p", 1);  /* ...a ping in between... */
    n += server_frame(stream + n, 0, SL__WSF_CONT, "cd", 2);
    n += server_frame(stream + n, 1, SL__WSF_CONT, "e", 1); /* ...and its end */
    char big[300];
    memset(big, 'x', sizeof big);
    n += server_frame(stream + n, 1, SL__WSF_BINARY, big, sizeof big); /* 16-bit length */
    n += server_frame(stream + n, 1, SL__WSF_CLOSE, "\x0b\xc0slow", 6);

    /* Whole, then cut into two at every position, then one byte at a time. */
    for (size_t cut = 0; cut <= n + 1; cut++) {
        sl__bench_rx rx;
        sl__bench_rx_init(&rx, 1024);
        got g = {0};
        const char *why;
        if (cut <= n) {
            assert_int_equal(sl__bench_rx_feed(&rx, stream, cut, collect, &g, &why), 0);
            assert_int_equal(sl__bench_rx_feed(&rx, stream + cut, n - cut, collect, &g, &why), 0);
        } else {
            for (size_t i = 0; i < n; i++)
                assert_int_equal(sl__bench_rx_feed(&rx, stream + i, 1, collect, &g, &why), 0);
        }
        assert_int_equal(g.n, 5);
        assert_int_equal(g.op[0], SL__WSF_TEXT);
        assert_int_equal(g.len[0], 8);
        assert_memory_equal(g.data[0], "{\"id\":1}", 8);
        assert_int_equal(g.op[1], SL__WSF_PING);
        assert_memory_equal(g.data[1], "p", 1);
        assert_int_equal(g.op[2], SL__WSF_TEXT);
        assert_int_equal(g.len[2], 5);
        assert_memory_equal(g.data[2], "abcde", 5);
        assert_int_equal(g.op[3], SL__WSF_BINARY);
        assert_int_equal(g.len[3], 300);
        assert_int_equal(g.op[4], SL__WSF_CLOSE);
        int code;
        const char *reason;
        size_t rl;
        assert_int_equal(
            sl__bench_close_payload((const uint8_t *)g.data[4], g.len[4], &code, &reason, &rl), 0);
        assert_int_equal(code, 3008);
        assert_int_equal(rl, 4);
        assert_memory_equal(reason, "slow", 4);
        assert_int_equal(rx.pend_len, 0);
        assert_int_equal(rx.msg_opcode, 0);
        sl__bench_rx_free(&rx);
    }
}

static void test_rx_stop(void **state)
{
    uint8_t stream[64];
    size_t n = server_frame(stream, 1, SL__WSF_TEXT, "a", 1);
    n += server_frame(stream + n, 1, SL__WSF_TEXT, "b", 1);
    n += server_frame(stream + n, 1, SL__WSF_TEXT, "c", 1);
    sl__bench_rx rx;
    sl__bench_rx_init(&rx, 64);
    got g = {.stop_at = 2};
    const char *why;
    /* The callback's value comes back at once; "c" is not delivered. */
    assert_int_equal(sl__bench_rx_feed(&rx, stream, n, collect, &g, &why), 7);
    assert_int_equal(g.n, 2);
    sl__bench_rx_free(&rx);
}

static void test_rx_hostile(void **state)
{
    struct {
        uint8_t bytes[16];
        size_t n;
        const char *why;
    } cases[] = {
        /* masked server frame */
        {{0x81, 0x81, 1, 2, 3, 4, 'x'}, 7, "masked frame from the server"},
        /* continuation with nothing to continue */
        {{0x80, 0x01, 'x'}, 3, "continuation without a message"},
        /* a new text frame while a fragmented one is open */
        {{0x01, 0x01, 'a', 0x81, 0x01, 'b'}, 6, "new message inside a fragmented one"},
        /* announced length over the limit: refused from the header alone */
        {{0x82, 0x7e, 0x10, 0x00}, 4, "message too large"},
        {{0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0}, 10, "message too large"},
        /* reserved bits, unknown opcode: the frame parser's own refusals */
        {{0xc1, 0x00}, 2, NULL},
        {{0x83, 0x00}, 2, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl__bench_rx rx;
        sl__bench_rx_init(&rx, 1024);
        got g = {0};
        const char *why = NULL;
        assert_int_equal(sl__bench_rx_feed(&rx, cases[i].bytes, cases[i].n, collect, &g, &why), -1);
        assert_non_null(why);
        if (cases[i].why)
            assert_string_equal(why, cases[i].why);
        sl__bench_rx_free(&rx);
    }
    /* A fragmented message growing past the limit in pieces. */
    sl__bench_rx rx;
    sl__bench_rx_init(&rx, 10);
    uint8_t s[64];
    size_t n = server_frame(s, 0, SL__WSF_TEXT, "123456", 6);
    n += server_frame(s + n, 0, SL__WSF_CONT, "789012", 6);
    got g = {0};
    const char *why;
    assert_int_equal(sl__bench_rx_feed(&rx, s, n, collect, &g, &why), -1);
    assert_string_equal(why, "message too large");
    assert_int_equal(g.n, 0);
    sl__bench_rx_free(&rx);

    int code;
    const char *reason;
    size_t rl;
    assert_int_equal(sl__bench_close_payload((const uint8_t *)"x", 1, &code, &reason, &rl), -1);
    assert_int_equal(sl__bench_close_payload(NULL, 0, &code, &reason, &rl), 0);
    assert_int_equal(code, 1005);
    assert_int_equal(rl, 0);
}

/* ---- lines ----------------------------------------------------------------------------------- */

typedef struct lines {
    char text[8][64];
    size_t n;
} lines;

static int take_line(void *ud, const char *l, size_t len)
{
    lines *ls = ud;
    assert_true(ls->n < 8 && len < 64);
    memcpy(ls->text[ls->n], l, len);
    ls->text[ls->n][len] = '\0';
    ls->n++;
    return strcmp(ls->text[ls->n - 1], "stop") == 0 ? 5 : 0;
}

static void test_lines(void **state)
{
    const char msg[] = "{\"a\":1}\n\r\n\n  \n{\"b\":2}\r\n{}";
    lines ls = {0};
    assert_int_equal(sl__bench_lines(msg, strlen(msg), take_line, &ls), 0);
    assert_int_equal(ls.n, 3);
    assert_string_equal(ls.text[0], "{\"a\":1}");
    assert_string_equal(ls.text[1], "{\"b\":2}");
    assert_string_equal(ls.text[2], "{}");

    lines st = {0};
    const char m2[] = "x\nstop\ny\n";
    assert_int_equal(sl__bench_lines(m2, strlen(m2), take_line, &st), 5);
    assert_int_equal(st.n, 2);

    lines none = {0};
    assert_int_equal(sl__bench_lines("\n\r\n", 3, take_line, &none), 0);
    assert_int_equal(none.n, 0);
}

static sl__bench_line cls(const char *s)
{
    sl__bench_line l;
    sl__bench_classify(s, strlen(s), NULL, &l);
    return l;
}

static void test_classify(void **state)
{
    sl__bench_line l = cls("{}");
    assert_int_equal(l.kind, SL__BL_PING);
    assert_int_equal(cls(" { } ").kind, SL__BL_PING);

    l = cls("{\"id\":1,\"connect\":{\"client\":\"c1\",\"version\":\"0.1.0\",\"ping\":25,"
            "\"pong\":true}}");
    assert_int_equal(l.kind, SL__BL_REPLY);
    assert_int_equal(l.id, 1);
    assert_false(l.error);

    l = cls("{\"id\":4294967295,\"error\":{\"code\":111,\"message\":\"too many requests\","
            "\"temporary\":true}}");
    assert_int_equal(l.kind, SL__BL_REPLY);
    assert_int_equal(l.id, 4294967295u);
    assert_true(l.error);
    assert_int_equal(l.code, 111);
    assert_int_equal(l.text_len, strlen("too many requests"));
    assert_memory_equal(l.text, "too many requests", l.text_len);

    /* id last, error first: key order does not matter. */
    l = cls("{\"error\":{\"message\":\"x\",\"code\":103},\"id\":7}");
    assert_int_equal(l.kind, SL__BL_REPLY);
    assert_int_equal(l.id, 7);
    assert_int_equal(l.code, 103);

    l = cls("{\"push\":{\"channel\":\"bench\",\"pub\":{\"data\":{\"t\":123456789012,\"s\":42},"
            "\"offset\":42}}}");
    assert_int_equal(l.kind, SL__BL_PUB);
    assert_int_equal(l.channel_len, 5);
    assert_memory_equal(l.channel, "bench", 5);
    assert_true(l.has_t);
    assert_true(l.has_s);
    assert_int_equal(l.t, 123456789012ull);
    assert_int_equal(l.s, 42);

    l = cls("{\"push\":{\"pub\":{\"offset\":3,\"info\":{\"client\":\"c\",\"user\":\"u\"},"
            "\"data\":{ \"s\" : 3 , \"x\":[1,{\"t\":9}], \"t\" : 17 }},\"channel\":\"b\"}}");
    assert_int_equal(l.kind, SL__BL_PUB);
    assert_int_equal(l.t, 17); /* the nested "t" is not the publication's */
    assert_int_equal(l.s, 3);
    assert_memory_equal(l.channel, "b", 1);

    /* A publication whose data is not ours: counted, but without a time. */
    l = cls("{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":\"hello\"}}}");
    assert_int_equal(l.kind, SL__BL_PUB);
    assert_false(l.has_t);
    l = cls("{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":-5,\"s\":1.5}}}}");
    assert_int_equal(l.kind, SL__BL_PUB);
    assert_false(l.has_t);
    assert_false(l.has_s);
    l = cls("{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":99999999999999999999999}}}}");
    assert_false(l.has_t); /* overflows 64 bits */

    l = cls("{\"push\":{\"disconnect\":{\"code\":3503,\"reason\":\"force disconnect\"}}}");
    assert_int_equal(l.kind, SL__BL_DISCONNECT);
    assert_int_equal(l.code, 3503);
    assert_memory_equal(l.text, "force disconnect", l.text_len);

    assert_int_equal(cls("{\"push\":{\"channel\":\"n\",\"join\":{\"info\":{}}}}").kind,
                     SL__BL_PUSH);
    assert_int_equal(cls("{\"push\":{\"unsubscribe\":{\"code\":2000}}}").kind, SL__BL_PUSH);
}

/* The shortcut's memo of one connection's pushes: the next push with the same rest (other
 * offset) is taken without the walk, and whatever the memo holds, it accepts exactly what the
 * shortcut accepts without one. */
static void test_classify_tail_memo(void **state)
{
    (void)state;
    const char *pre = "{\"push\":{\"channel\":\"bench\",\"pub\":{\"data\":{\"t\":5,\"s\":";
    const char *rest = "},\"info\":{\"client\":\"c-1\",\"user\":\"u\"},\"offset\":";
    sl__bench_tail tail = {0};
    char line[512];
    for (int i = 1; i <= 3; i++) {
        snprintf(line, sizeof line, "%s%d%s%d}}}", pre, i, rest, 100 * i);
        sl__bench_line l;
        sl__bench_classify(line, strlen(line), &tail, &l);
        assert_int_equal(l.kind, SL__BL_PUB);
        assert_int_equal(l.s, (uint64_t)i);
        assert_int_equal(tail.len, strlen(rest) - 1); /* from after data's '}' to the digits */
    }
    /* With that memo in place, lines that differ from a known one only after the remembered
     * bytes get the same answer with and without it. */
    const char *odd[] = {"1}}}}", "1}}", "1}}} ", "}}}", "1x}}}", "1}}}x", "-1}}}", "1,2}}}", ""};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        snprintf(line, sizeof line, "%s7%s%s", pre, rest, odd[i]);
        sl__bench_tail copy = tail;
        sl__bench_line a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        int with = sl__bench_fast_pub(line, line + strlen(line), &copy, &a);
        int without = sl__bench_fast_pub(line, line + strlen(line), NULL, &b);
        if (with != without)
            fail_msg("'%s': %d with the memo, %d without", line, with, without);
    }
    /* A different publisher (other info) is walked, and then remembered instead. */
    snprintf(line, sizeof line, "%s8},\"offset\":9}}}", pre);
    sl__bench_line l;
    sl__bench_classify(line, strlen(line), &tail, &l);
    assert_int_equal(l.kind, SL__BL_PUB);
    assert_int_equal(tail.len, strlen("},\"offset\":") - 1);
    /* A rest that does not end in digits is not remembered. */
    snprintf(line, sizeof line, "%s8},\"x\":\"y\"}}}", pre);
    sl__bench_classify(line, strlen(line), &tail, &l);
    assert_int_equal(l.kind, SL__BL_PUB);
    assert_int_equal(tail.len, 0);
}

/* sluiced's own layout takes a shortcut (sl__bench_fast_pub); it must agree with the generic walk
 * on what it accepts and hand everything else over, never accept what the generic walk would
 * refuse. */
static void test_classify_fast_path(void **state)
{
    const char canon[] =
        "{\"push\":{\"channel\":\"bench\",\"pub\":{\"data\":{\"t\":18446744073709551615,"
        "\"s\":7},\"info\":{\"client\":\"c-1\",\"user\":\"bench-1000\"},"
        "\"offset\":7}}}";
    sl__bench_line f = cls(canon);
    assert_int_equal(f.kind, SL__BL_PUB);
    assert_true(f.has_t && f.has_s);
    assert_int_equal(f.t, UINT64_MAX);
    assert_int_equal(f.s, 7);
    assert_int_equal(f.channel_len, 5);
    assert_memory_equal(f.channel, "bench", 5);
    /* The same publication with "channel" after "pub" goes the generic way, to the same answer. */
    sl__bench_line g = cls("{\"push\":{\"pub\":{\"data\":{\"t\":18446744073709551615,\"s\":7},"
                           "\"offset\":7},\"channel\":\"bench\"}}");
    assert_int_equal(g.kind, f.kind);
    assert_int_equal(g.t, f.t);
    assert_int_equal(g.s, f.s);
    assert_int_equal(g.channel_len, f.channel_len);

    /* Close to the layout but not it: generic answers. */
    sl__bench_line l =
        cls("{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":1,\"s\":2,\"x\":3}}}}");
    assert_int_equal(l.kind, SL__BL_PUB);
    assert_int_equal(l.t, 1);
    assert_int_equal(l.s, 2);
    l = cls("{\"push\":{\"channel\":\"b\\\"c\",\"pub\":{\"data\":{\"t\":1,\"s\":2}}}}");
    assert_int_equal(l.kind, SL__BL_PUB); /* an escaped quote in the channel */
    assert_int_equal(l.channel_len, 4);
    l = cls(
        "{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":18446744073709551616,\"s\":2}}}}");
    assert_int_equal(l.kind, SL__BL_PUB);
    assert_false(l.has_t); /* one past 64 bits */

    /* Broken around a valid prefix: the line is not one object, refused by both paths. */
    const char *bad[] = {
        "{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":1,\"s\":2}}}}}",
        "{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":1,\"s\":2}}}} x",
        "{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":1,\"s\":2}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = cls(bad[i]);
        if (l.kind != SL__BL_INVALID)
            fail_msg("'%s' classified as %d", bad[i], l.kind);
    }
    /* Malformed members after the data: the shortcut refuses them (the generic walk does not
     * validate members it does not need, so what it makes of them is not asserted). */
    const char *members[] = {
        "{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":1,\"s\":2},\"offset\"}}}",
        "{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":1,\"s\":2},7}}}",
        "{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":1,\"s\":2}},}}",
        "{\"push\":{\"channel\":\"b\",\"pub\":{\"data\":{\"t\":1,\"s\":2},\"o\":\"x}}}",
    };
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        memset(&l, 0, sizeof l);
        if (sl__bench_fast_pub(members[i], members[i] + strlen(members[i]), NULL, &l) != 0)
            fail_msg("shortcut accepted '%s'", members[i]);
    }
    assert_int_equal(sl__bench_fast_pub(canon, canon + strlen(canon), NULL, &l), 1);
    /* Every proper prefix of the canonical line is refused (ASan checks nothing is read past it).
     */
    for (size_t cut = 0; cut < sizeof canon - 1; cut++) {
        char *p = malloc(cut ? cut : 1);
        assert_non_null(p);
        memcpy(p, canon, cut);
        sl__bench_classify(p, cut, NULL, &l);
        if (l.kind != SL__BL_INVALID)
            fail_msg("prefix of %zu bytes classified as %d", cut, l.kind);
        free(p);
    }
}

static void test_classify_hostile(void **state)
{
    const char *bad[] = {
        "",
        "[]",
        "null",
        "{",
        "{\"id\":1",
        "{\"id\":1}}",
        "{\"id\":1} x",
        "{\"id\":-1}",
        "{\"id\":1.5}",
        "{\"id\":\"1\"}",
        "{\"id\":123456789012345678901234}",
        "{\"push\":{\"pub\":{\"data\":{\"t\":1}}",
        "{\"push\":\"x\"",
        "{\"a\":\"unterminated}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{\"a\":1 \"b\":2}",
        "{1:2}",
        "{\"a\":\"\\\"}",
        "{\"result\":{}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl__bench_line l = cls(bad[i]);
        if (l.kind != SL__BL_INVALID)
            fail_msg("'%s' classified as %d", bad[i], l.kind);
    }
    /* Deep nesting is walked without recursion. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 32);
    assert_non_null(deep);
    size_t k = (size_t)sprintf(deep, "{\"id\":3,\"x\":");
    for (size_t i = 0; i < depth; i++)
        deep[k++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    sl__bench_line l;
    sl__bench_classify(deep, k, NULL, &l);
    assert_int_equal(l.kind, SL__BL_REPLY);
    assert_int_equal(l.id, 3);
    /* Cut anywhere, the same line never reads past its end (ASan checks) nor classifies. */
    for (size_t cut = 0; cut < k; cut += 997) {
        char *p = malloc(cut ? cut : 1);
        memcpy(p, deep, cut);
        sl__bench_classify(p, cut, NULL, &l);
        assert_int_equal(l.kind, SL__BL_INVALID);
        free(p);
    }
    free(deep);
}

/* ---- NATS ------------------------------------------------------------------------------------ */

typedef struct nats_got {
    int op[16];
    char data[16][64];
    size_t n;
} nats_got;

static int nats_collect(void *ud, int op, const char *d, size_t len)
{
    nats_got *g = ud;
    assert_true(g->n < 16 && len < 64);
    g->op[g->n] = op;
    if (len)
        memcpy(g->data[g->n], d, len);
    g->data[g->n][len] = '\0';
    g->n++;
    return 0;
}

static void test_nats(void **state)
{
    const char s[] = "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n"
                     "PING\r\n"
                     "MSG bench 1 15\r\n{\"t\":12,\"s\":34}\r\n"
                     "+OK\r\n"
                     "MSG bench 1 reply.to 0\r\n\r\n"
                     "msg bench 1 6\r\nPONG\r\n\r\n" /* payload that looks like an operation */
                     "PONG\r\n"
                     "-ERR 'Authorization Violation'\r\n";
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n + 1; cut++) {
        sl__bench_nats st;
        sl__bench_nats_init(&st, 1024);
        nats_got g = {0};
        const char *why;
        if (cut <= n) {
            assert_int_equal(sl__bench_nats_feed(&st, s, cut, nats_collect, &g, &why), 0);
            assert_int_equal(sl__bench_nats_feed(&st, s + cut, n - cut, nats_collect, &g, &why), 0);
        } else {
            for (size_t i = 0; i < n; i++)
                assert_int_equal(sl__bench_nats_feed(&st, s + i, 1, nats_collect, &g, &why), 0);
        }
        assert_int_equal(g.n, 8);
        assert_int_equal(g.op[0], SL__NATS_INFO);
        assert_int_equal(g.op[1], SL__NATS_PING);
        assert_int_equal(g.op[2], SL__NATS_MSG);
        assert_string_equal(g.data[2], "{\"t\":12,\"s\":34}");
        assert_int_equal(g.op[3], SL__NATS_OK);
        assert_int_equal(g.op[4], SL__NATS_MSG);
        assert_string_equal(g.data[4], "");
        assert_int_equal(g.op[5], SL__NATS_MSG);
        assert_string_equal(g.data[5], "PONG\r\n");
        assert_int_equal(g.op[6], SL__NATS_PONG);
        assert_int_equal(g.op[7], SL__NATS_ERR);
        assert_string_equal(g.data[7], "'Authorization Violation'");
        assert_int_equal(st.pend_len, 0);
        sl__bench_nats_free(&st);
    }

    sl__bench_line l;
    sl__bench_payload_ts("{\"t\":12,\"s\":34}", 15, &l);
    assert_true(l.has_t && l.has_s);
    assert_int_equal(l.t, 12);
    assert_int_equal(l.s, 34);
    sl__bench_payload_ts("not json", 8, &l);
    assert_false(l.has_t || l.has_s);
}

static void test_nats_hostile(void **state)
{
    const char *bad[] = {
        "HELLO\r\n",
        "MSG bench 1\r\n",
        "MSG bench 1 x\r\n",
        "MSG bench 1 2000\r\n", /* over max_payload */
        "MSG bench 1 99999999999999999999999\r\n",
        "MSG bench 1 2\r\nabXY", /* payload not followed by CRLF */
        "MSG 5\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl__bench_nats st;
        sl__bench_nats_init(&st, 1024);
        nats_got g = {0};
        const char *why = NULL;
        assert_int_equal(sl__bench_nats_feed(&st, bad[i], strlen(bad[i]), nats_collect, &g, &why),
                         -1);
        assert_non_null(why);
        sl__bench_nats_free(&st);
    }
    /* A control line that never ends is refused at max_line, fed whole or in pieces. */
    char *line = malloc(10000);
    assert_non_null(line);
    memset(line, 'A', 10000);
    for (int pieces = 0; pieces < 2; pieces++) {
        sl__bench_nats st;
        sl__bench_nats_init(&st, 1024);
        nats_got g = {0};
        const char *why = NULL;
        int r = 0;
        if (pieces == 0)
            r = sl__bench_nats_feed(&st, line, 10000, nats_collect, &g, &why);
        for (size_t i = 0; pieces == 1 && r == 0 && i < 10000; i += 100)
            r = sl__bench_nats_feed(&st, line + i, 100, nats_collect, &g, &why);
        assert_int_equal(r, -1);
        assert_true(st.pend_cap <= 2 * (st.max_line + st.max_payload + 2));
        sl__bench_nats_free(&st);
    }
    free(line);
}

/* ---- histogram ------------------------------------------------------------------------------- */

static void test_hist_buckets(void **state)
{
    /* Buckets tile the whole range: each starts right after the previous one ends. */
    uint64_t prev_hi = 0;
    for (size_t i = 0; i < SL__BENCH_HIST_BUCKETS; i++) {
        uint64_t lo, hi;
        sl__bench_hist_range(i, &lo, &hi);
        if (i > 0)
            assert_int_equal(lo, prev_hi + 1);
        assert_true(hi >= lo);
        /* Width at most 1/64 of the bucket's start: the histogram's precision. */
        if (lo >= 64)
            assert_true((hi - lo + 1) * 64 <= lo);
        assert_int_equal(sl__bench_hist_index(lo), i);
        assert_int_equal(sl__bench_hist_index(hi), i);
        prev_hi = hi;
    }
    assert_int_equal(prev_hi, UINT64_MAX);
    uint64_t v = 1;
    for (int i = 0; i < 2000; i++) {
        v = v * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t lo, hi, x = v >> (i % 64);
        sl__bench_hist_range(sl__bench_hist_index(x), &lo, &hi);
        assert_true(lo <= x && x <= hi);
    }
}

static void test_hist_quantiles(void **state)
{
    sl__bench_hist *h = malloc(sizeof *h);
    assert_non_null(h);
    sl__bench_hist_init(h);
    assert_int_equal(sl__bench_hist_quantile(h, 0.5), 0);
    /* 1..100000 ns: the quantiles are known exactly; the answer is within one bucket above. */
    for (uint64_t i = 1; i <= 100000; i++)
        sl__bench_hist_record(h, i);
    assert_int_equal(h->count, 100000);
    assert_int_equal(h->min, 1);
    assert_int_equal(h->max, 100000);
    const double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (size_t i = 0; i < 4; i++) {
        double exact = qs[i] * 100000;
        double value = (double)sl__bench_hist_quantile(h, qs[i]);
        assert_true(value >= exact);
        assert_true(value <= exact * (1 + 1.0 / 64));
    }
    assert_int_equal(sl__bench_hist_quantile(h, 1.0), 100000);
    assert_int_equal(sl__bench_hist_quantile(h, 0.0), 1);
    assert_true(h->sum / (double)h->count > 50000 && h->sum / (double)h->count < 50001);

    /* One outlier moves the maximum and p99.99+, not the median; the top is never overstated. */
    sl__bench_hist_init(h);
    for (int i = 0; i < 9999; i++)
        sl__bench_hist_record(h, 1000);
    sl__bench_hist_record(h, UINT64_MAX);
    assert_int_equal(sl__bench_hist_quantile(h, 0.5), 1007); /* bucket 1000..1007 */
    assert_int_equal(sl__bench_hist_quantile(h, 1.0), UINT64_MAX);
    sl__bench_hist_init(h);
    sl__bench_hist_record(h, 1000);
    assert_int_equal(sl__bench_hist_quantile(h, 0.99), 1000); /* capped at the max seen */
    free(h);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_errs(void **state)
{
    sl__bench_errs e;
    sl__bench_errs_init(&e);
    char kind[SL__BENCH_ERR_TEXT];
    sl__bench_errs_kind(kind, "close", 3008, "slow", 4);
    assert_string_equal(kind, "close 3008 slow");
    sl__bench_errs_kind(kind, "refused", -1, NULL, 0);
    assert_string_equal(kind, "refused");
    sl__bench_errs_kind(kind, "http", 503, NULL, 0);
    assert_string_equal(kind, "http 503");
    /* Control bytes from a hostile reason never reach the terminal; long reasons are cut. */
    sl__bench_errs_kind(kind, "close", 1000, "a\x1b[2Jb\n\xff", 8);
    assert_string_equal(kind, "close 1000 a?");
    sl__bench_errs_kind(kind, "close", 3008, "slow\x00\x01\x02", 7);
    assert_string_equal(kind, "close 3008 slow?");
    sl__bench_errs_add(&e, "x\x1b]0;pwned\x07");
    assert_string_equal(e.row[0].kind, "x?");
    sl__bench_errs_init(&e);
    char longr[400];
    memset(longr, 'r', sizeof longr);
    sl__bench_errs_kind(kind, "close", 1000, longr, sizeof longr);
    assert_int_equal(strlen(kind), SL__BENCH_ERR_TEXT - 1);

    sl__bench_errs_add(&e, "refused");
    sl__bench_errs_add(&e, "http 503");
    sl__bench_errs_add(&e, "refused");
    assert_int_equal(e.rows, 2);
    assert_int_equal(e.total, 3);
    assert_string_equal(e.row[0].kind, "refused");
    assert_int_equal(e.row[0].n, 2);
    /* A server inventing a new reason each time fills the table, then "other" counts. */
    for (int i = 0; i < 100; i++) {
        char k[32];
        snprintf(k, sizeof k, "close 3000 r%d", i);
        sl__bench_errs_add(&e, k);
    }
    assert_int_equal(e.rows, SL__BENCH_ERR_KINDS);
    assert_int_equal(e.total, 103);
    assert_int_equal(e.other, 103 - SL__BENCH_ERR_KINDS - 1);
    sl__bench_errs_add(&e, "refused"); /* known kinds still count in their row */
    assert_int_equal(e.row[0].n, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_upgrade_request),
        cmocka_unit_test(test_upgrade_response),
        cmocka_unit_test(test_client_frames),
        cmocka_unit_test(test_rx_whole_and_split),
        cmocka_unit_test(test_rx_stop),
        cmocka_unit_test(test_rx_hostile),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_classify_fast_path),
        cmocka_unit_test(test_classify_tail_memo),
        cmocka_unit_test(test_classify_hostile),
        cmocka_unit_test(test_nats),
        cmocka_unit_test(test_nats_hostile),
        cmocka_unit_test(test_hist_buckets),
        cmocka_unit_test(test_hist_quantiles),
        cmocka_unit_test(test_errs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
