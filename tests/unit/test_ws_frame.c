/* RFC 6455 framing without I/O (net/ws_frame.h): the examples of §5.7 byte for byte, every header
 * the parser must refuse (and how early it refuses them), the minimal-length rule, headers parsed
 * from every prefix, write/parse round trips at each length boundary, and the word-at-a-time mask
 * against a byte-by-byte XOR at every offset and alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/error.h>

#include "net/ws_frame.h"

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d}; /* the RFC's example key */

/* Parses a header that must be complete in buf[0..n) and exactly hl bytes long; every shorter
 * prefix must ask for more bytes. */
static sl__wsf_header parse_ok(const uint8_t *buf, size_t n, size_t hl)
{
    sl__wsf_header h;
    const char *why = NULL;
    for (size_t k = 0; k < hl; k++) {
        int r = sl__wsf_parse_header(buf, k, &h, &why);
        if (r != 0)
            fail_msg("prefix of %zu bytes: %d (%s)", k, r, why ? why : "");
    }
    int r = sl__wsf_parse_header(buf, n, &h, &why);
    if (r != (int)hl)
        fail_msg("wanted a %zu-byte header, got %d (%s)", hl, r, why ? why : "");
    assert_int_equal(h.header_len, hl);
    assert_int_equal(h.rsv, 0);
    return h;
}

/* §5.7: a single-frame unmasked text message, and the same masked. */
static void test_rfc_hello(void **state)
{
    static const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    sl__wsf_header h = parse_ok(unmasked, sizeof unmasked, 2);
    assert_int_equal(h.fin, 1);
    assert_int_equal(h.opcode, SL__WSF_TEXT);
    assert_int_equal(h.masked, 0);
    assert_int_equal(h.len, 5);
    assert_memory_equal(unmasked + 2, "Hello", 5);

    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    h = parse_ok(masked, sizeof masked, 6);
    assert_int_equal(h.fin, 1);
    assert_int_equal(h.opcode, SL__WSF_TEXT);
    assert_int_equal(h.masked, 1);
    assert_memory_equal(h.mask, KEY, 4);
    assert_int_equal(h.len, 5);
    uint8_t p[5];
    memcpy(p, masked + 6, 5);
    sl__wsf_mask(p, 5, h.mask, 0);
    assert_memory_equal(p, "Hello", 5);

    /* ...and written: our header plus our mask give the RFC's bytes. */
    uint8_t out[SL__WSF_MAX_HEADER + 5];
    size_t n = sl__wsf_write_header(out, 1, SL__WSF_TEXT, 5, KEY);
    assert_int_equal(n, 6);
    memcpy(out + n, "Hello", 5);
    sl__wsf_mask(out + n, 5, KEY, 0);
    assert_memory_equal(out, masked, sizeof masked);
    n = sl__wsf_write_header(out, 1, SL__WSF_TEXT, 5, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(out, unmasked, 2);
}

/* §5.7: "Hel" + "lo" as a fragmented unmasked text message; unmasked ping and masked pong. */
static void test_rfc_fragments_and_control(void **state)
{
    static const uint8_t first[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
    static const uint8_t last[] = {0x80, 0x02, 0x6c, 0x6f};
    sl__wsf_header h = parse_ok(first, sizeof first, 2);
    assert_int_equal(h.fin, 0);
    assert_int_equal(h.opcode, SL__WSF_TEXT);
    assert_int_equal(h.len, 3);
    h = parse_ok(last, sizeof last, 2);
    assert_int_equal(h.fin, 1);
    assert_int_equal(h.opcode, SL__WSF_CONT);
    assert_int_equal(h.len, 2);

    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    h = parse_ok(ping, sizeof ping, 2);
    assert_int_equal(h.opcode, SL__WSF_PING);
    assert_int_equal(h.len, 5);
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    h = parse_ok(pong, sizeof pong, 6);
    assert_int_equal(h.opcode, SL__WSF_PONG);
    assert_int_equal(h.masked, 1);
    uint8_t p[5];
    memcpy(p, pong + 6, 5);
    sl__wsf_mask(p, 5, h.mask, 0);
    assert_memory_equal(p, "Hello", 5);

    /* A close frame with code and reason, and an empty one: both fine as headers. */
    static const uint8_t close0[] = {0x88, 0x00};
    h = parse_ok(close0, sizeof close0, 2);
    assert_int_equal(h.opcode, SL__WSF_CLOSE);
    assert_int_equal(h.len, 0);
    static const uint8_t close125[] = {0x88, 0x7d};
    h = parse_ok(close125, sizeof close125, 2);
    assert_int_equal(h.len, 125);
}

/* §5.7: 256 bytes in one unmasked binary frame (16-bit length) and 64 KiB (64-bit length). */
static void test_rfc_lengths(void **state)
{
    uint8_t *f = malloc(10 + 65536);
    assert_non_null(f);
    static const uint8_t h256[] = {0x82, 0x7e, 0x01, 0x00};
    memcpy(f, h256, sizeof h256);
    memset(f + 4, 'a', 256);
    sl__wsf_header h = parse_ok(f, 4 + 256, 4);
    assert_int_equal(h.opcode, SL__WSF_BINARY);
    assert_int_equal(h.fin, 1);
    assert_int_equal(h.masked, 0);
    assert_int_equal(h.len, 256);

    static const uint8_t h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    memcpy(f, h64k, sizeof h64k);
    memset(f + 10, 'b', 65536);
    h = parse_ok(f, 10 + 65536, 10);
    assert_int_equal(h.opcode, SL__WSF_BINARY);
    assert_int_equal(h.len, 65536);

    uint8_t out[SL__WSF_MAX_HEADER];
    assert_int_equal(sl__wsf_write_header(out, 1, SL__WSF_BINARY, 256, NULL), 4);
    assert_memory_equal(out, h256, 4);
    assert_int_equal(sl__wsf_write_header(out, 1, SL__WSF_BINARY, 65536, NULL), 10);
    assert_memory_equal(out, h64k, 10);
    free(f);
}

/* A header the parser must refuse; need is how many of its bytes prove it (fewer: "more"). */
static void refused(const uint8_t *b, size_t n, size_t need)
{
    sl__wsf_header h;
    for (size_t k = 0; k < need; k++) {
        const char *why = NULL;
        int r = sl__wsf_parse_header(b, k, &h, &why);
        if (r != 0)
            fail_msg("%02x %02x: %zu bytes gave %d (%s), wanted 0", b[0], n > 1 ? b[1] : 0, k, r,
                     why ? why : "");
    }
    for (size_t k = need; k <= n; k++) {
        const char *why = NULL;
        int r = sl__wsf_parse_header(b, k, &h, &why);
        if (r != SL_EINVAL)
            fail_msg("%02x %02x: %zu bytes gave %d, wanted SL_EINVAL", b[0], n > 1 ? b[1] : 0, k,
                     r);
        assert_non_null(why);
        assert_true(strlen(why) > 0);
        /* why is optional */
        assert_int_equal(sl__wsf_parse_header(b, k, &h, NULL), SL_EINVAL);
    }
}

static void test_header_errors(void **state)
{
    uint8_t b[SL__WSF_MAX_HEADER + 4] = {0};
    /* Each reserved bit, on data and control frames: known from the first byte. */
    for (unsigned rsv = 1; rsv < 8; rsv++) {
        b[0] = (uint8_t)(0x80 | rsv << 4 | SL__WSF_TEXT);
        b[1] = 0x85;
        refused(b, 6, 1);
        b[0] = (uint8_t)(0x80 | rsv << 4 | SL__WSF_PING);
        refused(b, 6, 1);
    }
    /* Every unknown opcode, fin or not. */
    static const unsigned unknown[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        b[0] = (uint8_t)(0x80 | unknown[i]);
        b[1] = 0x80;
        refused(b, 6, 1);
        b[0] = (uint8_t)unknown[i];
        refused(b, 6, 1);
    }
    /* Fragmented control frames. */
    static const unsigned ctl[] = {SL__WSF_CLOSE, SL__WSF_PING, SL__WSF_PONG};
    for (size_t i = 0; i < 3; i++) {
        b[0] = (uint8_t)ctl[i];
        b[1] = 0x80;
        refused(b, 6, 1);
    }
    /* Control frames over 125 bytes: 126 and 127 length forms, masked or not. */
    for (size_t i = 0; i < 3; i++) {
        b[0] = (uint8_t)(0x80 | ctl[i]);
        b[1] = 126;
        b[2] = 0;
        b[3] = 126;
        refused(b, 4, 2);
        b[1] = 0x80 | 126;
        refused(b, 8, 2);
        b[1] = 0x80 | 127;
        memset(b + 2, 0, 8);
        refused(b, 14, 2);
    }
    /* A 64-bit length with the most significant bit set: known from its first byte. */
    b[0] = 0x81;
    b[1] = 0x80 | 127;
    memset(b + 2, 0, 12);
    b[2] = 0x80;
    refused(b, 14, 3);
    memset(b + 2, 0xff, 8);
    refused(b, 14, 3);
}

static void test_minimal_length_encoding(void **state)
{
    uint8_t b[SL__WSF_MAX_HEADER] = {0};
    b[0] = 0x81;
    /* 16-bit form carrying what fits in 7 bits */
    static const unsigned small16[] = {0, 1, 125};
    for (size_t i = 0; i < 3; i++) {
        b[1] = 0x80 | 126;
        b[2] = (uint8_t)(small16[i] >> 8);
        b[3] = (uint8_t)small16[i];
        refused(b, 8, 4);
        b[1] = 126;
        refused(b, 4, 4);
    }
    /* 64-bit form carrying what fits in 16 (or 7) bits */
    static const uint64_t small64[] = {0, 125, 126, 0xffff};
    for (size_t i = 0; i < 4; i++) {
        b[1] = 0x80 | 127;
        for (int k = 0; k < 8; k++)
            b[2 + k] = (uint8_t)(small64[i] >> (56 - 8 * k));
        refused(b, 14, 10);
    }
    /* The smallest value of each form is fine. */
    b[1] = 126;
    b[2] = 0;
    b[3] = 126;
    assert_int_equal(parse_ok(b, 4, 4).len, 126);
    b[1] = 127;
    memset(b + 2, 0, 8);
    b[7] = 1; /* 0x10000 */
    assert_int_equal(parse_ok(b, 10, 10).len, 65536);
    /* and the largest 64-bit one */
    memset(b + 2, 0xff, 8);
    b[2] = 0x7f;
    assert_true(parse_ok(b, 10, 10).len == UINT64_C(0x7fffffffffffffff));
}

static void test_write_parse_round_trip(void **state)
{
    static const uint64_t big[] = {UINT64_C(0xffffffff), UINT64_C(0x100000000),
                                   UINT64_C(0x7fffffffffffffff)};
    uint64_t lens[10] = {0, 1, 125, 126, 127, 65535, 65536};
    memcpy(lens + 7, big, sizeof big);
    static const int ops[] = {SL__WSF_CONT, SL__WSF_TEXT, SL__WSF_BINARY};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        for (int m = 0; m < 2; m++) {
            for (size_t o = 0; o < 3; o++) {
                for (int fin = 0; fin < 2; fin++) {
                    uint8_t out[SL__WSF_MAX_HEADER + 1];
                    memset(out, 0xee, sizeof out);
                    size_t n = sl__wsf_write_header(out, fin, ops[o], lens[i], m ? KEY : NULL);
                    size_t want = (lens[i] < 126 ? 2 : lens[i] <= 0xffff ? 4 : 10) + (m ? 4 : 0);
                    assert_int_equal(n, want);
                    assert_int_equal(out[n], 0xee); /* nothing written past it */
                    sl__wsf_header h = parse_ok(out, n, n);
                    assert_int_equal(h.fin, fin);
                    assert_int_equal(h.opcode, ops[o]);
                    assert_int_equal(h.masked, m);
                    assert_true(h.len == lens[i]);
                    if (m)
                        assert_memory_equal(h.mask, KEY, 4);
                }
            }
        }
    }
    /* Control frames at their limits. */
    static const int cops[] = {SL__WSF_CLOSE, SL__WSF_PING, SL__WSF_PONG};
    for (size_t o = 0; o < 3; o++) {
        uint8_t out[SL__WSF_MAX_HEADER];
        size_t n = sl__wsf_write_header(out, 1, cops[o], 125, KEY);
        sl__wsf_header h = parse_ok(out, n, 6);
        assert_int_equal(h.opcode, cops[o]);
        assert_int_equal(h.len, 125);
        n = sl__wsf_write_header(out, 1, cops[o], 0, NULL);
        h = parse_ok(out, n, 2);
        assert_int_equal(h.len, 0);
    }
}

/* A header followed by more bytes parses to the header alone. */
static void test_header_then_payload(void **state)
{
    uint8_t b[64];
    size_t n = sl__wsf_write_header(b, 1, SL__WSF_TEXT, 3, KEY);
    memcpy(b + n, "abc", 3);
    n += sl__wsf_write_header(b + n + 3, 1, SL__WSF_PING, 0, KEY) + 3;
    sl__wsf_header h = parse_ok(b, n, 6);
    assert_int_equal(h.len, 3);
    h = parse_ok(b + 9, n - 9, 6);
    assert_int_equal(h.opcode, SL__WSF_PING);
}

static void xor_ref(uint8_t *d, size_t n, const uint8_t k[4], uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        d[i] ^= k[(off + i) % 4];
}

static void test_mask_matches_bytewise(void **state)
{
    enum { MAX = 300 };
    uint8_t src[MAX + 8], a[MAX + 8], b[MAX + 8];
    srand(6455);
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)rand();
    static const uint64_t offs[] = {0, 1, 2, 3, 4, 5, 7, 8, 1001, UINT64_C(0xfffffffffffffffd)};
    for (size_t len = 0; len <= MAX; len += len < 70 ? 1 : 23) {
        for (size_t align = 0; align < 8; align++) {
            for (size_t o = 0; o < sizeof offs / sizeof *offs; o++) {
                memcpy(a, src, sizeof a);
                memcpy(b, src, sizeof b);
                sl__wsf_mask(a + align, len, KEY, offs[o]);
                xor_ref(b + align, len, KEY, offs[o]);
                if (memcmp(a, b, sizeof a) != 0)
                    fail_msg("len %zu align %zu offset %llu", len, align,
                             (unsigned long long)offs[o]);
            }
        }
    }
    /* Unmasking in pieces, at the pieces' offsets, equals unmasking at once; twice is identity. */
    memcpy(a, src, sizeof a);
    memcpy(b, src, sizeof b);
    sl__wsf_mask(a, MAX, KEY, 0);
    size_t pieces[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 69};
    size_t at = 0;
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
        sl__wsf_mask(b + at, pieces[i], KEY, at);
        at += pieces[i];
    }
    assert_int_equal(at, MAX);
    assert_memory_equal(a, b, MAX);
    sl__wsf_mask(a, MAX, KEY, 0);
    assert_memory_equal(a, src, MAX);
    /* n = 0 touches nothing */
    sl__wsf_mask(a, 0, KEY, 3);
    assert_memory_equal(a, src, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_hello),
        cmocka_unit_test(test_rfc_fragments_and_control),
        cmocka_unit_test(test_rfc_lengths),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_minimal_length_encoding),
        cmocka_unit_test(test_write_parse_round_trip),
        cmocka_unit_test(test_header_then_payload),
        cmocka_unit_test(test_mask_matches_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
