/* The HTTP/1.1 transport: first the request assembler driven directly (framing, limits, errors,
 * pipelining, reads split anywhere), then the libuv server over real loopback sockets (response
 * shape, keep-alive, pipelining order, deferred answers, timeouts, the connection limits in all
 * and per client address, the shorter head timeout near the limit, running out of descriptors,
 * clients that vanish while their request is being handled). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/resource.h>

#include <sluice/error.h>

#include "http_test_server.h"
#include "net/http_parser.h"

/* ---- the assembler --------------------------------------------------------------------------- */

#define LIT(s) (s), (sizeof(s) - 1)

typedef struct one {
    sl__http_parser p;
    sl_http_request req;
    int rc;
    size_t used;
} one;

/* Feeds s in one go. */
static void feed(one *o, const char *s, size_t n)
{
    memset(&o->req, 0, sizeof o->req);
    o->rc = sl__http_parser_feed(&o->p, s, n, &o->used);
    if (o->rc == SL__HTTP_REQUEST)
        sl__http_parser_request(&o->p, &o->req);
}

static one *parse(const char *s, size_t n, size_t max_body, size_t max_header)
{
    one *o = calloc(1, sizeof *o);
    sl__http_parser_init(&o->p, max_body, max_header);
    feed(o, s, n);
    return o;
}

static void done(one *o)
{
    sl__http_parser_free(&o->p);
    free(o);
}

static void assert_str(const char *got, size_t len, const char *want)
{
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
    assert_int_equal(got[len], '\0');
}

static void expect_error(const char *s, size_t n, size_t max_body, size_t max_header, int status)
{
    one *o = parse(s, n, max_body, max_header);
    if (o->rc != SL__HTTP_ERROR)
        fail_msg("expected %d for %.*s, got rc %d", status, (int)(n > 60 ? 60 : n), s, o->rc);
    assert_int_equal(o->p.status, status);
    assert_non_null(o->p.error_name);
    assert_non_null(o->p.error_message);
    /* Errors stick. */
    size_t used = 99;
    assert_int_equal(sl__http_parser_feed(&o->p, LIT("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), &used),
                     SL__HTTP_ERROR);
    assert_int_equal(used, 0);
    done(o);
}

static void test_simple_get(void **state)
{
    static const char r[] = "GET /hello HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n";
    one *o = parse(LIT(r), 0, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_int_equal(o->used, sizeof r - 1);
    assert_string_equal(o->req.method, "GET");
    assert_str(o->req.target, o->req.target_len, "/hello");
    assert_str(o->req.path, o->req.path_len, "/hello");
    assert_str(o->req.query, o->req.query_len, "");
    assert_int_equal(o->req.nheaders, 2);
    assert_int_equal(o->req.headers[0].name_len, 4);
    assert_memory_equal(o->req.headers[0].name, "Host", 4);
    assert_memory_equal(o->req.headers[0].value, "example", 7);
    assert_str(o->req.body, o->req.body_len, "");
    assert_int_equal(o->req.keep_alive, 1);
    /* Nothing more until the request is released. */
    size_t used = 1;
    assert_int_equal(sl__http_parser_feed(&o->p, LIT(r), &used), SL__HTTP_REQUEST);
    assert_int_equal(used, 0);
    done(o);
}

static void test_post_body(void **state)
{
    static const char r[] = "POST /channels/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: "
                            "application/json\r\nContent-Length: 13\r\n\r\n{\"a\":[1,2,3]}";
    one *o = parse(LIT(r), 0, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_int_equal(o->used, sizeof r - 1);
    assert_string_equal(o->req.method, "POST");
    assert_str(o->req.body, o->req.body_len, "{\"a\":[1,2,3]}");
    done(o);
}

static void test_chunked_body(void **state)
{
    static const char r[] = "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    one *o = parse(LIT(r), 0, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_int_equal(o->used, sizeof r - 1);
    assert_str(o->req.body, o->req.body_len, "hello world");
    /* Trailers are not headers. */
    assert_null(sl_http_header_get(&o->req, "X-Trailer", NULL));
    assert_non_null(sl_http_header_get(&o->req, "transfer-encoding", NULL));
    done(o);
}

static void test_header_lookup(void **state)
{
    static const char r[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Token:   abc def \t \r\n"
                            "Authorization: Bearer t0k\r\nEmpty:\r\n\r\n";
    one *o = parse(LIT(r), 0, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    size_t len = 99;
    const char *v = sl_http_header_get(&o->req, "x-token", &len);
    assert_non_null(v);
    assert_int_equal(len, 7);
    assert_memory_equal(v, "abc def", 7);
    v = sl_http_header_get(&o->req, "AUTHORIZATION", &len);
    assert_non_null(v);
    assert_int_equal(len, 10);
    assert_memory_equal(v, "Bearer t0k", 10);
    v = sl_http_header_get(&o->req, "empty", &len);
    assert_non_null(v);
    assert_int_equal(len, 0);
    assert_null(sl_http_header_get(&o->req, "X-Tok", &len));
    assert_null(sl_http_header_get(&o->req, "missing", NULL));
    done(o);
}

static void test_query_split(void **state)
{
    one *o = parse(LIT("GET /a/b?x=1&y=%20?z HTTP/1.1\r\nHost: x\r\n\r\n"), 0, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_str(o->req.target, o->req.target_len, "/a/b?x=1&y=%20?z");
    assert_str(o->req.path, o->req.path_len, "/a/b");
    assert_str(o->req.query, o->req.query_len, "x=1&y=%20?z");
    done(o);
    o = parse(LIT("GET /p? HTTP/1.1\r\nHost: x\r\n\r\n"), 0, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_str(o->req.path, o->req.path_len, "/p");
    assert_str(o->req.query, o->req.query_len, "");
    done(o);
}

/* Parses every request in s, fed in pieces of `step` bytes (0: all at once), into out[]. */
typedef struct got {
    char method[16], target[64], body[64];
    int keep_alive;
} got;

static int parse_all(const char *s, size_t n, size_t step, got *out, int max, int *err)
{
    sl__http_parser p;
    sl__http_parser_init(&p, 0, 0);
    /* The caller's buffer: bytes not yet consumed stay in it, as in the server. */
    char *buf = malloc(n + 1);
    size_t have = 0, given = 0;
    int count = 0;
    *err = 0;
    for (;;) {
        size_t used = 0;
        int rc = sl__http_parser_feed(&p, buf, have, &used);
        memmove(buf, buf + used, have - used);
        have -= used;
        if (rc == SL__HTTP_ERROR) {
            *err = p.status;
            break;
        }
        if (rc == SL__HTTP_REQUEST) {
            sl_http_request r;
            sl__http_parser_request(&p, &r);
            if (count < max) {
                snprintf(out[count].method, sizeof out[count].method, "%s", r.method);
                snprintf(out[count].target, sizeof out[count].target, "%s", r.target);
                snprintf(out[count].body, sizeof out[count].body, "%.*s", (int)r.body_len, r.body);
                out[count].keep_alive = r.keep_alive;
            }
            count++;
            sl__http_parser_next(&p);
            continue;
        }
        assert_int_equal(have, 0); /* NEED_MORE uses everything */
        if (given == n)
            break;
        size_t k = step == 0 || step > n - given ? n - given : step;
        memcpy(buf + have, s + given, k);
        have += k;
        given += k;
    }
    free(buf);
    sl__http_parser_free(&p);
    return count;
}

static const char PIPE3[] = "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                            "POST /two?q=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                            "PUT /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "2\r\nde\r\n1\r\nf\r\n0\r\n\r\n";

static void check_pipe3(const got *g)
{
    assert_string_equal(g[0].method, "GET");
    assert_string_equal(g[0].target, "/one");
    assert_string_equal(g[0].body, "");
    assert_string_equal(g[1].method, "POST");
    assert_string_equal(g[1].target, "/two?q=2");
    assert_string_equal(g[1].body, "abc");
    assert_string_equal(g[2].method, "PUT");
    assert_string_equal(g[2].target, "/three");
    assert_string_equal(g[2].body, "def");
}

static void test_pipelined(void **state)
{
    got g[4];
    int err;
    static const char two[] =
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(parse_all(LIT(two), 0, g, 4, &err), 2);
    assert_int_equal(err, 0);
    assert_string_equal(g[0].target, "/a");
    assert_string_equal(g[1].target, "/b");
    assert_int_equal(parse_all(LIT(PIPE3), 0, g, 4, &err), 3);
    assert_int_equal(err, 0);
    check_pipe3(g);

    /* The assembler stops exactly at the end of each message. */
    one *o = parse(LIT(two), 0, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_int_equal(o->used, (sizeof two - 1) / 2);
    done(o);
}

static void test_byte_by_byte(void **state)
{
    got g[4];
    int err;
    for (size_t step = 1; step <= 7; step++) {
        memset(g, 0, sizeof g);
        assert_int_equal(parse_all(LIT(PIPE3), step, g, 4, &err), 3);
        assert_int_equal(err, 0);
        check_pipe3(g);
    }
    /* Every two-way split of the stream. */
    for (size_t cut = 1; cut < sizeof PIPE3 - 1; cut++) {
        sl__http_parser p;
        sl__http_parser_init(&p, 0, 0);
        char buf[sizeof PIPE3];
        memcpy(buf, PIPE3, cut);
        size_t have = cut, given = cut;
        int count = 0;
        for (;;) {
            size_t used;
            int rc = sl__http_parser_feed(&p, buf, have, &used);
            assert_int_not_equal(rc, SL__HTTP_ERROR);
            memmove(buf, buf + used, have - used);
            have -= used;
            if (rc == SL__HTTP_REQUEST) {
                count++;
                sl__http_parser_next(&p);
                continue;
            }
            if (given == sizeof PIPE3 - 1)
                break;
            memcpy(buf + have, PIPE3 + given, sizeof PIPE3 - 1 - given);
            have += sizeof PIPE3 - 1 - given;
            given = sizeof PIPE3 - 1;
        }
        assert_int_equal(count, 3);
        sl__http_parser_free(&p);
    }
}

static void test_keep_alive(void **state)
{
    struct {
        const char *req;
        int keep;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        one *o = parse(cases[i].req, strlen(cases[i].req), 0, 0);
        assert_int_equal(o->rc, SL__HTTP_REQUEST);
        if (o->req.keep_alive != cases[i].keep)
            fail_msg("keep_alive %d for %s", o->req.keep_alive, cases[i].req);
        done(o);
    }
}

static void test_body_too_large(void **state)
{
    /* Decided from Content-Length alone, before any of the body arrives. */
    one *o = parse(LIT("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"), 10, 0);
    assert_int_equal(o->rc, SL__HTTP_ERROR);
    assert_int_equal(o->p.status, 413);
    assert_string_equal(o->p.error_name, "payload_too_large");
    done(o);
    o = parse(LIT("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"), 10, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    done(o);
    expect_error(LIT("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n"), 0, 0,
                 413);
    /* Chunked: by the chunk size that would overflow, and by data in small chunks. */
    expect_error(LIT("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n"),
                 10, 0, 413);
    expect_error(
        LIT("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n"), 10,
        0, 413);
    char big[4096];
    size_t n = (size_t)snprintf(big, sizeof big,
                                "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 8; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "100\r\n%0256d\r\n", 0);
    n += (size_t)snprintf(big + n, sizeof big - n, "0\r\n\r\n");
    expect_error(big, n, 1024, 0, 413);
    o = parse(big, n, 2048, 0);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_int_equal(o->req.body_len, 2048);
    done(o);
}

static void test_headers_too_large(void **state)
{
    char r[8192];
    int n = snprintf(r, sizeof r, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %0*d\r\n\r\n", 3000, 0);
    expect_error(r, (size_t)n, 0, 1024, 431);
    /* Head of exactly max_header bytes passes; one more byte does not. */
    one *o = parse(r, (size_t)n, 0, (size_t)n);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    done(o);
    expect_error(r, (size_t)n, 0, (size_t)n - 1, 431);
    /* The limit holds however the bytes arrive. */
    sl__http_parser p;
    sl__http_parser_init(&p, 0, 1024);
    int rc = SL__HTTP_NEED_MORE;
    for (int i = 0; i < n && rc == SL__HTTP_NEED_MORE; i++) {
        size_t used;
        rc = sl__http_parser_feed(&p, r + i, 1, &used);
    }
    assert_int_equal(rc, SL__HTTP_ERROR);
    assert_int_equal(p.status, 431);
    assert_string_equal(p.error_name, "headers_too_large");
    sl__http_parser_free(&p);
    /* A huge request target counts too. */
    n = snprintf(r, sizeof r, "GET /%0*d HTTP/1.1\r\nHost: x\r\n\r\n", 5000, 0);
    expect_error(r, (size_t)n, 0, 1024, 431);
}

static void test_too_many_headers(void **state)
{
    char r[8192];
    for (int count = 100; count <= 101; count++) {
        size_t n = (size_t)snprintf(r, sizeof r, "GET / HTTP/1.1\r\nHost: x\r\n");
        for (int i = 1; i < count; i++) /* Host is the first */
            n += (size_t)snprintf(r + n, sizeof r - n, "H%d: v\r\n", i);
        n += (size_t)snprintf(r + n, sizeof r - n, "\r\n");
        if (count == 100) {
            one *o = parse(r, n, 0, 0);
            assert_int_equal(o->rc, SL__HTTP_REQUEST);
            assert_int_equal(o->req.nheaders, 100);
            size_t len;
            assert_non_null(sl_http_header_get(&o->req, "h99", &len));
            done(o);
        } else {
            expect_error(r, n, 0, 0, 431);
        }
    }
}

static void test_malformed(void **state)
{
    expect_error(LIT("HELLO\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("\r\n\r\n\r\nHELLO\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("get / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET / HTTX/1.1\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET /\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET / HTTP/1.x\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET\r\n\r\n"), 0, 0, 400);
    /* Unsupported, well-formed versions. */
    expect_error(LIT("GET / HTTP/2.0\r\n\r\n"), 0, 0, 505);
    expect_error(LIT("GET / HTTP/1.2\r\n\r\n"), 0, 0, 505);
    expect_error(LIT("GET / HTTP/0.9\r\n\r\n"), 0, 0, 505);
    /* Bytes that do not belong where they are. */
    expect_error(LIT("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET / HTTP/1.1\r\nHost: x\r\nX y: z\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET / HTTP/1.1\r\nHost: x\r\nX : z\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET / HTTP/1.1\r\nHost: x\r\nX(: z\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n"), 0, 0, 400);
    /* Framing that would let a request be smuggled. */
    expect_error(
        LIT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            "{}"),
        0, 0, 400);
    expect_error(
        LIT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
            "{}"),
        0, 0, 400);
    expect_error(
        LIT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"), 0, 0,
        400);
    expect_error(LIT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 0,
                 0, 400);
    expect_error(LIT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX"),
                 0, 0, 400);
    expect_error(
        LIT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n"),
        0, 0, 400);
    expect_error(
        LIT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\rXab\r\n0\r\n\r\n"),
        0, 0, 400);
    expect_error(LIT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rX"), 0,
                 0, 400);
    /* A CR must end a line: loose llhttp would take CR + anything. */
    expect_error(LIT("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\rZ"), 0, 0, 400);
    /* Content-Length that is not a length. */
    expect_error(LIT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"), 0, 0, 400);
    expect_error(LIT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n"), 0, 0, 400);
    expect_error(
        LIT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 0, 0,
        400);
}

/* Framing that a proxy in front of sluice could read differently from sluice (request smuggling,
 * header confusion): each is refused with 400 rather than interpreted, so whatever the proxy made
 * of it, sluice never acts on a different request. The accepted rows show the refusals are
 * narrow. status 0: accepted as one complete request. */
static void test_framing_table(void **state)
{
    static const struct {
        const char *why;
        const char *req;
        int status;
    } cases[] = {
        /* Host: exactly one on HTTP/1.1 (RFC 9112 3.2), at most one on HTTP/1.0. */
        {"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
        {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"two Host, same value", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
        {"Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400},
        {"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
        {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
        {"Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
        {"HTTP/1.0 two Host", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"Host ok", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 0},
        {"Host IPv6", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 0},
        {"Host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0},
        {"HTTP/1.0 no Host", "GET / HTTP/1.0\r\n\r\n", 0},
        /* Headers read as one value: a second copy would be ignored by us, used by a proxy. */
        {"two Authorization",
         "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
         400},
        {"two Sec-WebSocket-Key",
         "GET / HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: a\r\nsec-websocket-key: b\r\n\r\n", 400},
        {"two Expect", "GET / HTTP/1.1\r\nHost: x\r\nExpect: a\r\nExpect: b\r\n\r\n", 400},
        {"two Connection (a list)",
         "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: x\r\n\r\n", 0},
        /* Line folding (obs-fold, RFC 9112 5.2): refused, never joined. */
        {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
        {"obs-fold tab", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400},
        {"obs-fold on Transfer-Encoding",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n"
         "1\r\na\r\n0\r\n\r\n",
         400},
        {"obs-fold on Authorization",
         "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n a\r\n\r\n", 400},
        {"obs-fold in a trailer",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\r\n b\r\n\r\n",
         400},
        {"line starting with space after request line", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400},
        /* Trailers that a proxy merging them into the headers would act on. */
        {"Content-Length trailer",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
         "Content-Length: 5\r\n\r\n",
         400},
        {"Authorization trailer",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
         "authorization: Bearer x\r\n\r\n",
         400},
        {"Host trailer",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nHost: y\r\n\r\n",
         400},
        {"other trailer",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
         "X-Checksum: 1\r\nX-Authorization-Hint-That-Is-Long: 2\r\n\r\n",
         0},
        /* Transfer-Encoding: exactly "chunked", once, and never with Content-Length. */
        {"TE identity, chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n"
         "1\r\na\r\n0\r\n\r\n",
         400},
        {"TE gzip, chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
        {"TE chunked, chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
        {"TE twice",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n",
         400},
        {"TE identity then chunked headers",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n",
         400},
        {"TE gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        {"TE identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 400},
        {"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
        {"TE empty", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 400},
        {"TE on HTTP/1.0",
         "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", 400},
        {"TE + CL",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n",
         400},
        {"CL + TE",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
         "3\r\n\r\n0\r\n\r\n",
         400},
        {"TE Chunked (case)",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", 0},
        /* Content-Length: one plain decimal. */
        {"two CL, same value",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", 400},
        {"two CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
         400},
        {"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na", 400},
        {"CL plus sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", 400},
        {"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\na", 400},
        {"CL empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400},
        /* Chunk sizes and the bytes around chunk data. */
        {"chunk size hex prefix",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\na\r\n0\r\n\r\n",
         400},
        {"chunk size negative",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\na\r\n0\r\n\r\n",
         400},
        {"chunk size with space",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n",
         400},
        {"chunk size leading space",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 1\r\na\r\n0\r\n\r\n",
         400},
        {"chunk size overflow",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "100000000000000001\r\na\r\n0\r\n\r\n",
         400},
        {"chunk size empty",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\na\r\n0\r\n\r\n", 400},
        {"chunk data too long",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
         400},
        {"chunk data bare LF",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\n0\r\n\r\n", 400},
        {"chunk size bare LF",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n", 400},
        {"chunk extension ok",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\na\r\n0\r\n\r\n",
         0},
        {"chunk extension with CR",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a\rb\r\na\r\n0\r\n\r\n",
         400},
        /* Line endings: CRLF only. */
        {"bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n", 400},
        {"bare LF in headers", "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400},
        {"bare CR", "GET / HTTP/1.1\rHost: x\r\n\r\n", 400},
        {"bare CR in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400},
        /* Header names and values. */
        {"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer a\r\n\r\n",
         400},
        {"tab before colon", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 1\r\n\r\na", 400},
        {"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n", 400},
        {"no colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", 400},
        {"DEL in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f\r\n\r\n", 400},
        /* The request line. */
        {"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"tab separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
        {"trailing space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},
    };
    int wrong = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *r = cases[i].req;
        size_t n = strlen(r);
        /* Whole, and byte by byte: the decision must not depend on how the bytes arrive. */
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            sl__http_parser p;
            sl__http_parser_init(&p, 0, 0);
            int rc = SL__HTTP_NEED_MORE;
            size_t off = 0;
            while (off < n && rc == SL__HTTP_NEED_MORE) {
                size_t used = 0, k = bytewise ? 1 : n - off;
                rc = sl__http_parser_feed(&p, r + off, k, &used);
                off += used;
            }
            int ok = cases[i].status == 0 ? rc == SL__HTTP_REQUEST && off == n
                                          : rc == SL__HTTP_ERROR && p.status == cases[i].status;
            if (!ok) {
                print_message("%s%s: expected %d, got rc %d status %d (%s)\n", cases[i].why,
                              bytewise ? " (byte by byte)" : "", cases[i].status, rc, p.status,
                              p.error_message ? p.error_message : "");
                wrong++;
            }
            sl__http_parser_free(&p);
        }
    }
    assert_int_equal(wrong, 0);
}

static void test_garbage_after_request(void **state)
{
    static const char r[] = "PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                            "\x00\x01GARBAGE / HTTP/9.9\r\n\r\n";
    got g[2];
    int err;
    assert_int_equal(parse_all(LIT(r), 0, g, 2, &err), 1);
    assert_int_equal(err, 400);
    assert_string_equal(g[0].body, "{}");
    assert_int_equal(parse_all(LIT(r), 1, g, 2, &err), 1);
    assert_int_equal(err, 400);
}

static void test_expect_continue(void **state)
{
    one *o = parse(LIT("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
                       "Content-Length: 4\r\n\r\n"),
                   0, 0);
    assert_int_equal(o->rc, SL__HTTP_NEED_MORE);
    assert_true(sl__http_parser_in_message(&o->p));
    assert_int_equal(sl__http_parser_take_continue(&o->p), 1);
    assert_int_equal(sl__http_parser_take_continue(&o->p), 0);
    feed(o, LIT("abcd"));
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_str(o->req.body, o->req.body_len, "abcd");
    sl__http_parser_next(&o->p);
    assert_false(sl__http_parser_in_message(&o->p));
    done(o);
    /* Too large: refused before the client sends the body. */
    expect_error(
        LIT("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n"), 10,
        0, 413);
}

static void test_upgrade_is_plain(void **state)
{
    got g[3];
    int err;
    static const char r[] =
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n"
        "CONNECT host:443 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /after HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(parse_all(LIT(r), 0, g, 3, &err), 3);
    assert_int_equal(err, 0);
    assert_string_equal(g[1].method, "CONNECT");
    assert_string_equal(g[2].target, "/after");
}

static void test_large_body_reuses_store(void **state)
{
    sl__http_parser p;
    sl__http_parser_init(&p, 0, 0);
    size_t n = 200000;
    char *r = malloc(n + 128);
    int h = snprintf(r, 128, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    memset(r + h, 'z', n);
    for (int round = 0; round < 3; round++) {
        size_t used;
        assert_int_equal(sl__http_parser_feed(&p, r, (size_t)h + n, &used), SL__HTTP_REQUEST);
        assert_int_equal(used, (size_t)h + n);
        sl_http_request q;
        sl__http_parser_request(&p, &q);
        assert_int_equal(q.body_len, n);
        assert_int_equal(q.body[n], '\0');
        sl__http_parser_next(&p);
        assert_int_equal(sl__http_parser_feed(&p, LIT("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), &used),
                         SL__HTTP_REQUEST);
        sl__http_parser_next(&p);
    }
    free(r);
    sl__http_parser_free(&p);
}

static void test_trailers_too_large(void **state)
{
    char r[4096];
    int n =
        snprintf(r, sizeof r,
                 "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
                 "X-T: %0*d\r\n\r\n",
                 2000, 0);
    expect_error(r, (size_t)n, 0, 1024, 431);
    one *o = parse(r, (size_t)n, 0, 4096);
    assert_int_equal(o->rc, SL__HTTP_REQUEST);
    assert_str(o->req.body, o->req.body_len, "a");
    done(o);
}

static void test_reasons(void **state)
{
    static const int codes[] = {100, 200, 201, 204, 400, 401, 403, 404, 405,
                                408, 409, 413, 429, 431, 500, 503, 505};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_string_not_equal(sl_http_reason(codes[i]), "Unknown");
    assert_string_equal(sl_http_reason(404), "Not Found");
}

/* ---- the server ------------------------------------------------------------------------------ */

/* A server whose timeouts are request_ms for a request (head and body) and idle_ms for an idle
 * keep-alive connection or a stuck write. Only the tests of those timeouts get short ones: with
 * 300 ms everywhere, a test thread that the scheduler left waiting that long between two requests
 * (a loaded machine) had its connection closed under it. */
static int start(void **state, size_t max_connections, unsigned request_ms, unsigned idle_ms)
{
    sl_http_limits l;
    sl_http_limits_init(&l);
    l.request_timeout_ms = request_ms;
    l.idle_timeout_ms = idle_ms;
    l.max_body = 64 * 1024;
    l.max_connections = max_connections;
    ts_server *ts = ts_start(&l);
    assert_non_null(ts);
    *state = ts;
    return 0;
}

static int srv_setup(void **state)
{
    return start(state, 16, TS_WAIT_MS, TS_WAIT_MS);
}

static int srv_setup_short(void **state)
{
    return start(state, 16, 300, 300);
}

/* Requests never time out; a connection that stops reading its answer is dropped after 300 ms. */
static int srv_setup_short_idle(void **state)
{
    return start(state, 16, TS_WAIT_MS, 300);
}

/* The steady reader's: long enough that a loaded machine's scheduling pauses stay far inside it,
 * short enough that reading the answer takes longer than it. */
static int srv_setup_second_idle(void **state)
{
    return start(state, 16, TS_WAIT_MS, 1000);
}

static int srv_setup_limit2(void **state)
{
    return start(state, 2, TS_WAIT_MS, TS_WAIT_MS);
}

static int srv_setup_many(void **state)
{
    return start(state, 1000, TS_WAIT_MS, TS_WAIT_MS);
}

/* Asks the server, over probe, until it counts `want` connections (probe included); 0 when that
 * does not happen within TS_WAIT_MS. */
static int wait_conns(tc_client *probe, size_t want)
{
    tc_response r;
    char expect[32];
    snprintf(expect, sizeof expect, "%zu", want);
    for (long long end = ts_now_ms() + TS_WAIT_MS; ts_now_ms() < end;) {
        if (tc_sends(probe, "GET /conns HTTP/1.1\r\nHost: t\r\n\r\n") != 0 ||
            tc_read(probe, &r) != 0)
            return 0;
        if (strcmp(r.body, expect) == 0)
            return 1;
        usleep(10000);
    }
    return 0;
}

/* As wait_conns, asking over a new connection each time (counted in `want`), for a server whose
 * idle timeout would close a probe kept open. */
static int wait_conns_fresh(int port, size_t want)
{
    tc_response r;
    char expect[32];
    snprintf(expect, sizeof expect, "%zu", want);
    for (long long end = ts_now_ms() + TS_WAIT_MS; ts_now_ms() < end;) {
        tc_client *c = tc_connect(port);
        int same = c != NULL && tc_sends(c, "GET /conns HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
                   tc_read(c, &r) == 0 && strcmp(r.body, expect) == 0;
        tc_close(c);
        if (same)
            return 1;
        usleep(10000);
    }
    return 0;
}

static int srv_teardown(void **state)
{
    assert_int_equal(ts_stop(*state), 0);
    return 0;
}

static void test_srv_response_shape(void **state)
{
    ts_server *ts = *state;
    tc_client *c = tc_connect(ts->port);
    assert_non_null(c);
    assert_int_equal(tc_sends(c, "POST /echo?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                                 "hello"),
                     0);
    tc_response *r = calloc(1, sizeof *r);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 200);
    assert_true(strncmp(r->head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(r->head, "\r\nServer: sluice\r\n"));
    assert_non_null(strstr(r->head, "\r\nDate: "));
    assert_non_null(strstr(r->head, " GMT\r\n"));
    assert_non_null(strstr(r->head, "\r\nContent-Type: text/plain\r\n"));
    assert_non_null(strstr(r->head, "\r\nContent-Length: 20\r\n"));
    assert_non_null(strstr(r->head, "\r\nConnection: keep-alive\r\n"));
    assert_non_null(strstr(r->head, "\r\nX-Echo: 1\r\n"));
    assert_string_equal(r->body, "POST /echo?x=1|hello");
    /* HEAD: the length of the body, not the body. */
    assert_int_equal(
        tc_sends(c, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read_x(c, r, 1), 0);
    assert_non_null(strstr(r->head, "\r\nContent-Length: 8\r\n"));
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "GET /g|");
    free(r);
    tc_close(c);
}

static void test_srv_keep_alive_and_pipelining(void **state)
{
    ts_server *ts = *state;
    tc_client *c = tc_connect(ts->port);
    tc_response *r = calloc(1, sizeof *r);
    for (int i = 0; i < 20; i++) {
        char q[128];
        snprintf(q, sizeof q, "GET /k/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        assert_int_equal(tc_sends(c, q), 0);
        assert_int_equal(tc_read(c, r), 0);
        char want[64];
        snprintf(want, sizeof want, "GET /k/%d|", i);
        assert_string_equal(r->body, want);
    }
    /* Pipelined, with a deferred answer in the middle: answers stay in order. */
    assert_int_equal(tc_sends(c, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1"
                                 "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n"
                                 "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "1\r\n3\r\n0\r\n\r\n"
                                 "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                     0);
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "POST /p|1");
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "deferred");
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "POST /p|3");
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "GET /last|");
    assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
    assert_int_equal(tc_wait_close(c), 1);
    tc_close(c);
    /* Many pipelined requests in one write, more than the server buffers while one is handled. */
    c = tc_connect(ts->port);
    size_t cap = 300 * 64, n = 0;
    char *big = malloc(cap);
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(big + n, cap - n, "GET /%s%03d HTTP/1.1\r\nHost: x\r\n\r\n",
                              i % 50 == 7 ? "defer?" : "x/", i);
    assert_int_equal(tc_send(c, big, n), 0);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(tc_read(c, r), 0);
        char want[64];
        snprintf(want, sizeof want, "GET /x/%03d|", i);
        assert_string_equal(r->body, i % 50 == 7 ? "deferred" : want);
    }
    free(big);
    free(r);
    tc_close(c);
}

static void test_srv_http10(void **state)
{
    ts_server *ts = *state;
    tc_client *c = tc_connect(ts->port);
    tc_response *r = calloc(1, sizeof *r);
    assert_int_equal(tc_sends(c, "GET /old HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
    assert_int_equal(tc_wait_close(c), 1);
    tc_close(c);
    c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_non_null(strstr(r->head, "\r\nConnection: keep-alive\r\n"));
    assert_int_equal(tc_sends(c, "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "GET /b|");
    free(r);
    tc_close(c);
}

static void test_srv_errors(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    /* A good request, then garbage: the first is answered, then 400 and close. */
    tc_client *c = tc_connect(ts->port);
    assert_int_equal(tc_send(c, LIT("PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                                    "\x00\x01GARBAGE / HTTP/9.9\r\n\r\n"
                                    "PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")),
                     0);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(r->head, "\r\nContent-Type: application/json\r\n"));
    assert_true(strncmp(r->body, "{\"error\":\"bad_request\",\"message\":\"", 34) == 0);
    assert_int_equal(tc_wait_close(c), 1);
    assert_int_equal(c->len, 0);
    tc_close(c);
    /* 413 from Content-Length, while the client is still sending the body. */
    c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"),
                     0);
    char chunk[8192];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 4; i++)
        tc_send(c, chunk, sizeof chunk);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 413);
    assert_non_null(strstr(r->body, "\"payload_too_large\""));
    tc_close(c);
    /* 431. */
    c = tc_connect(ts->port);
    tc_sends(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    char big[20000];
    memset(big, 'a', sizeof big);
    tc_send(c, big, sizeof big);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 431);
    assert_non_null(strstr(r->body, "\"headers_too_large\""));
    tc_close(c);
    free(r);
}

static void test_srv_expect_continue(void **state)
{
    ts_server *ts = *state;
    tc_client *c = tc_connect(ts->port);
    tc_response *r = calloc(1, sizeof *r);
    assert_int_equal(
        tc_sends(c, "PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
                    "\r\n"),
        0);
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    while (c->len < sizeof cont - 1)
        assert_true(tc_fill(c) > 0);
    assert_memory_equal(c->buf, cont, sizeof cont - 1);
    c->len -= sizeof cont - 1;
    memmove(c->buf, c->buf + sizeof cont - 1, c->len);
    assert_int_equal(tc_sends(c, "abc"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "PUT /e|abc");
    tc_close(c);
    /* Too large: 413 straight away, no 100. */
    c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                 "Content-Length: 10000000\r\n\r\n"),
                     0);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 413);
    tc_close(c);
    free(r);
}

static void test_srv_timeouts(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    /* A request that never completes: 408 and close. */
    tc_client *c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"),
                     0);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 408);
    assert_non_null(strstr(r->body, "\"timeout\""));
    assert_int_equal(tc_wait_close(c), 1);
    tc_close(c);
    /* Trickling bytes does not extend the deadline: a head that never ends, one byte every 20 ms,
     * is answered 408 while it is still coming (the bound is only there to end a hang). */
    c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /trickle HTTP/1.1\r\nHost: x\r\nX-A: "), 0);
    int answered = 0;
    for (long long end = ts_now_ms() + TS_WAIT_MS; !answered && ts_now_ms() < end;) {
        if (send(c->fd, "a", 1, MSG_NOSIGNAL) != 1)
            break;
        usleep(20000);
        ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
        if (k > 0) {
            c->len += (size_t)k;
            answered = 1;
        }
    }
    assert_true(answered);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 408);
    tc_close(c);
    /* A connection that never says anything. */
    c = tc_connect(ts->port);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 408);
    assert_int_equal(tc_wait_close(c), 1);
    tc_close(c);
    /* Idle keep-alive: closed silently. The request goes out right after the connect, but a test
     * thread held up past the 300 ms head timeout in between gets its 408 instead: then again. */
    int answered_200 = 0;
    for (long long end = ts_now_ms() + TS_WAIT_MS;;) {
        c = tc_connect(ts->port);
        assert_non_null(c);
        answered_200 = tc_sends(c, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n") == 0 &&
                       tc_read(c, r) == 0 && r->status == 200;
        if (answered_200 || ts_now_ms() >= end)
            break;
        tc_close(c);
    }
    assert_true(answered_200);
    assert_int_equal(tc_wait_close(c), 1);
    assert_int_equal(c->len, 0);
    tc_close(c);
    free(r);
}

static void test_srv_connection_limit(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    tc_client *a = tc_connect(ts->port), *b = tc_connect(ts->port);
    /* Make sure both are accepted (and counted) before the third arrives. */
    assert_int_equal(tc_sends(a, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read(a, r), 0);
    assert_int_equal(tc_sends(b, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read(b, r), 0);
    assert_int_equal(tc_sends(a, "GET /conns HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read(a, r), 0);
    assert_string_equal(r->body, "2");
    tc_client *c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 503);
    assert_non_null(strstr(r->body, "\"unavailable\""));
    assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
    assert_int_equal(tc_wait_close(c), 1);
    tc_close(c);
    /* A freed slot can be used again, once the server has seen the close (asynchronously). */
    tc_close(a);
    assert_true(wait_conns(b, 1));
    c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 200);
    tc_close(c);
    tc_close(b);
    free(r);
}

static void test_srv_deferred_and_disconnect(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    tc_client *c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "deferred");
    tc_close(c);
    /* The client leaves while its request is in the handler's hands, with more bytes pipelined
     * behind it: the answer, when it comes, goes nowhere, and nothing leaks or crashes. */
    c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                                 "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"),
                     0);
    assert_true(ts_wait_flag(&ts->held, 1, TS_WAIT_MS));
    tc_close(c);
    /* A deferred answer also outlives its client. */
    c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_true(ts_wait_flag(&ts->deferred_pending, 1, TS_WAIT_MS));
    struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* RST rather than FIN */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    tc_close(c);
    usleep(100000);
    ts_release_held(ts);
    assert_true(ts_wait_flag(&ts->held, 0, TS_WAIT_MS));
    assert_true(ts_wait_flag(&ts->deferred_pending, 0, TS_WAIT_MS));
    /* The server carries on. */
    c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /still HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "GET /still|");
    tc_close(c);
    /* Mid-request resets and half-closes. */
    c = tc_connect(ts->port);
    tc_sends(c, "PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":");
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    tc_close(c);
    c = tc_connect(ts->port);
    tc_sends(c, "GET /half HTTP/1.1\r\nHost: x\r\n\r\nGET /closed HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "GET /half|");
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "GET /closed|");
    assert_int_equal(tc_wait_close(c), 1);
    tc_close(c);
    free(r);
}

/* The server closes while a request is still held: the late answer is dropped after close. */
static void test_srv_close_with_request_held(void **state)
{
    ts_server *ts = *state;
    tc_client *c = tc_connect(ts->port), *idle = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_true(ts_wait_flag(&ts->held, 1, TS_WAIT_MS));
    assert_int_equal(ts_stop(ts), 0);
    *state = NULL;
    assert_int_equal(tc_wait_close(c), 1);
    assert_int_equal(tc_wait_close(idle), 1);
    tc_close(c);
    tc_close(idle);
    assert_int_equal(srv_setup(state), 0);
}

static void test_srv_listen_errors(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_http_server *s = NULL;
    assert_int_equal(sl_http_server_new(&s, &loop, NULL, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_http_server_new(&s, &loop, NULL, ts_handler, NULL), SL_OK);
    assert_int_equal(sl_http_server_listen(s, "not-an-address", 0), SL_EINVAL);
    assert_int_equal(sl_http_server_listen(s, "127.0.0.1", 70000), SL_EINVAL);
    /* A port somebody else listens on. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(sl_http_server_listen(s, "127.0.0.1", ntohs(a.sin_port)), SL_EIO);
    close(fd);
    /* A server that never listened is freed without running the loop. */
    sl_http_server_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_srv_hosts(void **state)
{
    static const struct {
        const char *host;
        int v6;
        const char *remote;
    } hosts[] = {{"localhost", 0, "127.0.0.1:"}, {"::1", 1, "[::1]:"}, {"[::1]", 1, "[::1]:"}};
    tc_response *r = calloc(1, sizeof *r);
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        ts_server *ts = ts_start_on(hosts[i].host, NULL);
        if (ts == NULL && hosts[i].v6)
            continue; /* no IPv6 loopback here */
        assert_non_null(ts);
        tc_client *c = tc_connect_x(ts->port, hosts[i].v6, 0);
        assert_non_null(c);
        assert_int_equal(tc_sends(c, "GET /remote HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        assert_int_equal(tc_read(c, r), 0);
        assert_true(strncmp(r->body, hosts[i].remote, strlen(hosts[i].remote)) == 0);
        tc_close(c);
        assert_int_equal(ts_stop(ts), 0);
    }
    free(r);
}

static void test_srv_large_responses(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    /* Larger than the socket takes at once: the rest is queued, and the pipelined request behind
     * it waits for the write to finish. */
    tc_client *c = tc_connect_x(ts->port, 0, 16384);
    assert_int_equal(
        tc_sends(
            c,
            "GET /big?6000000 HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n"),
        0);
    usleep(50 * 1000);
    assert_int_equal(tc_read_big(c, r), 6000000);
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "GET /after|");
    assert_int_equal(tc_sends(c, "GET /remote HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_true(strncmp(r->body, "127.0.0.1:", 10) == 0);
    tc_close(c);
    free(r);
}

/* A client that stops reading is dropped after the idle timeout: once the server no longer counts
 * it, what it still reads is what the socket buffers held, not the whole answer. */
static void test_srv_stalled_reader(void **state)
{
    ts_server *ts = *state;
    tc_client *c = tc_connect_x(ts->port, 0, 16384);
    assert_int_equal(tc_sends(c, "GET /big?20000000 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_true(wait_conns_fresh(ts->port, 1));
    size_t total = 0;
    char *scratch = malloc(1 << 16);
    ssize_t n;
    while ((n = recv(c->fd, scratch, 1 << 16, 0)) > 0)
        total += (size_t)n;
    assert_true(n == 0 || errno == ECONNRESET);
    assert_true(total < 20000000);
    free(scratch);
    tc_close(c);
}

/* A client that reads its answer steadily, only slowly, is not dropped: the idle timeout of a
 * write runs from the socket's last progress, not from the start of the answer (1 s here; this
 * answer takes at least 1.5 s to read: 20 ms of sleep after every 256 KiB). With 300 ms, a
 * loaded machine once paused the reader longer than that. */
static void test_srv_slow_steady_reader(void **state)
{
    ts_server *ts = *state;
    tc_client *c = tc_connect_x(ts->port, 0, 16384);
    assert_int_equal(tc_sends(c, "GET /big?20000000 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    size_t total = 0, since = 0, head = 0;
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    while (head == 0 || total < head + 20000000) {
        ssize_t n = recv(c->fd, buf, 1 << 16, 0);
        if (n <= 0)
            break;
        if (head == 0) { /* the head comes whole in the first read (the buffer holds 16 KiB) */
            const char *end = memmem(buf, (size_t)n, "\r\n\r\n", 4);
            assert_non_null(end);
            head = (size_t)(end - buf) + 4;
        }
        total += (size_t)n;
        if ((since += (size_t)n) >= 256 * 1024) {
            since = 0;
            usleep(20 * 1000);
        }
    }
    free(buf);
    assert_int_equal(total, head + 20000000);
    tc_close(c);
}

typedef struct sender {
    tc_client *c;
    int count;
} sender;

static void *send_many(void *arg)
{
    sender *s = arg;
    char q[64];
    for (int i = 0; i < s->count; i++) {
        int n = snprintf(q, sizeof q, "GET /x/%05d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        if (tc_send(s->c, q, (size_t)n) != 0)
            break;
    }
    return NULL;
}

static void test_srv_backpressure(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    tc_client *c = tc_connect(ts->port);
    assert_int_equal(tc_sends(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_true(ts_wait_flag(&ts->held, 1, TS_WAIT_MS));
    /* Far more pipelined bytes than the server buffers while a request is in flight: it stops
     * reading, and picks up where it left off once the held request is answered. */
    sender snd = {.c = c, .count = 20000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_many, &snd), 0);
    usleep(200 * 1000);
    int handled = atomic_load(&ts->handled);
    ts_release_held(ts);
    assert_int_equal(tc_read(c, r), 0);
    assert_string_equal(r->body, "released");
    for (int i = 0; i < snd.count; i++) {
        assert_int_equal(tc_read(c, r), 0);
        char want[64];
        snprintf(want, sizeof want, "GET /x/%05d|", i);
        assert_string_equal(r->body, want);
    }
    pthread_join(th, NULL);
    assert_true(atomic_load(&ts->handled) >= handled + snd.count);
    tc_close(c);
    free(r);
}

/* ---- descriptors and per-address limits ------------------------------------------------------ */

/* The highest descriptor open in this process. */
static int highest_fd(void)
{
    int hi = 2;
    for (int fd = 3; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            hi = fd;
    return hi;
}

/* Running out of descriptors: the connection that cannot get one is answered 503 with Retry-After
 * (through the spare descriptor), the refusal is logged, and the server carries on afterwards. The
 * limit is the process's soft limit, lowered here and restored. */
static void test_srv_out_of_fds(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = {.rlim_cur = (rlim_t)highest_fd() + 1 + 24, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    /* Take every free descriptor below the limit, then give 24 back: exactly 24 are left. */
    int fill[512], nfill = 0, fd;
    while (nfill < 512 && (fd = open("/dev/null", O_RDONLY)) >= 0)
        fill[nfill++] = fd;
    assert_true(nfill >= 24 && nfill < 512);
    for (int i = 0; i < 24; i++)
        close(fill[--nfill]);
    tc_client *cs[64];
    int n = 0, ok = 0, refused = 0;
    while (n < 64 && !refused) {
        tc_client *c = tc_connect(ts->port);
        if (c == NULL) { /* the client ran out first: one more for it, none for the server */
            if (nfill == 0)
                break;
            close(fill[--nfill]);
            continue;
        }
        cs[n++] = c;
        assert_int_equal(tc_sends(c, "GET /fd HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
        assert_int_equal(tc_read(c, r), 0);
        if (r->status == 503) {
            refused = 1;
            assert_non_null(strstr(r->head, "\r\nRetry-After: 1\r\n"));
            assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
            assert_non_null(strstr(r->body, "\"unavailable\""));
            assert_int_equal(tc_wait_close(c), 1);
        } else {
            assert_int_equal(r->status, 200);
            ok++;
        }
    }
    assert_true(refused);
    assert_true(ok > 0);
    assert_true(ts_wait_log(ts, "out of file descriptors", TS_WAIT_MS));
    for (int i = 0; i < n; i++)
        tc_close(cs[i]);
    while (nfill > 0)
        close(fill[--nfill]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* The spare was taken back and accepting goes on. */
    tc_client *c = tc_connect(ts->port);
    assert_non_null(c);
    assert_int_equal(tc_sends(c, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(tc_read(c, r), 0);
    assert_int_equal(r->status, 200);
    tc_close(c);
    free(r);
}

static int srv_setup_per_address(void **state)
{
    sl_http_limits l;
    sl_http_limits_init(&l);
    l.request_timeout_ms = 30000;
    l.idle_timeout_ms = 30000;
    l.max_connections = 16;
    l.max_connections_per_address = 4;
    l.max_pending_per_address = 2;
    l.busy_header_timeout_ms = 0;
    ts_server *ts = ts_start(&l);
    assert_non_null(ts);
    *state = ts;
    return 0;
}

/* One address may hold max_pending_per_address connections without a complete request head and
 * max_connections_per_address in all; other addresses are served meanwhile. */
static void test_srv_per_address(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    tc_client *probe = tc_connect_from(ts->port, 0, 0, "127.0.0.2");
    assert_non_null(probe);
    tc_client *a1 = tc_connect_from(ts->port, 0, 0, "127.0.0.1");
    tc_client *a2 = tc_connect_from(ts->port, 0, 0, "127.0.0.1");
    assert_non_null(a1);
    assert_non_null(a2);
    assert_int_equal(tc_sends(a2, "GET /partial HTTP/1.1\r\nHo"), 0); /* in its head */
    assert_true(wait_conns(probe, 3));
    /* A third connection still in its headers from 127.0.0.1: refused. */
    tc_client *a3 = tc_connect_from(ts->port, 0, 0, "127.0.0.1");
    assert_int_equal(tc_read(a3, r), 0);
    assert_int_equal(r->status, 503);
    assert_non_null(strstr(r->head, "\r\nRetry-After: 1\r\n"));
    /* While its answer goes out it holds no slot: probe, a1 and a2 only. */
    assert_int_equal(tc_sends(probe, "GET /conns HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(tc_read(probe, r), 0);
    assert_string_equal(r->body, "3");
    assert_int_equal(tc_wait_close(a3), 1);
    tc_close(a3);
    assert_true(ts_wait_log(ts, "max_pending_per_address", TS_WAIT_MS));
    /* Another address is served. */
    assert_int_equal(tc_sends(probe, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(tc_read(probe, r), 0);
    assert_int_equal(r->status, 200);
    /* Heads completed: no longer pending, so 127.0.0.1 may connect again, up to 4 in all. */
    assert_int_equal(tc_sends(a1, "GET /a1 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(tc_read(a1, r), 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(tc_sends(a2, "st: t\r\n\r\n"), 0);
    assert_int_equal(tc_read(a2, r), 0);
    assert_string_equal(r->body, "GET /partial|");
    tc_client *more[2];
    for (int i = 0; i < 2; i++) {
        more[i] = tc_connect_from(ts->port, 0, 0, "127.0.0.1");
        assert_int_equal(tc_sends(more[i], "GET /more HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
        assert_int_equal(tc_read(more[i], r), 0);
        assert_int_equal(r->status, 200);
    }
    tc_client *a5 = tc_connect_from(ts->port, 0, 0, "127.0.0.1");
    assert_int_equal(tc_read(a5, r), 0);
    assert_int_equal(r->status, 503);
    tc_close(a5);
    assert_true(ts_wait_log(ts, "max_connections_per_address", TS_WAIT_MS));
    assert_int_equal(tc_sends(probe, "GET /still HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(tc_read(probe, r), 0);
    assert_int_equal(r->status, 200);
    /* A slot given back is usable again (the server sees the close asynchronously). */
    tc_close(more[0]);
    assert_true(wait_conns(probe, 4)); /* probe, a1, a2, more[1] */
    tc_client *a6 = tc_connect_from(ts->port, 0, 0, "127.0.0.1");
    assert_int_equal(tc_sends(a6, "GET /again HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(tc_read(a6, r), 0);
    assert_int_equal(r->status, 200);
    tc_close(a6);
    tc_close(more[1]);
    tc_close(a1);
    tc_close(a2);
    tc_close(probe);
    free(r);
}

static int srv_setup_patient(void **state)
{
    sl_http_limits l;
    sl_http_limits_init(&l);
    l.request_timeout_ms = 60000; /* nothing times out during the test */
    l.idle_timeout_ms = 60000;
    l.max_connections = 1000;
    ts_server *ts = ts_start(&l);
    assert_non_null(ts);
    *state = ts;
    return 0;
}

/* Connections from many addresses (past the per-address table's first size) are counted and let go
 * one by one; each address still has its own pending allowance. */
static void test_srv_many_addresses(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    tc_client *probe = tc_connect_from(ts->port, 0, 0, "127.0.0.2");
    enum { N = 150 };
    tc_client *cs[N];
    for (int i = 0; i < N; i++) {
        char from[32];
        snprintf(from, sizeof from, "127.0.%d.%d", 1 + i / 100, 1 + i % 100);
        cs[i] = tc_connect_from(ts->port, 0, 0, from);
        assert_non_null(cs[i]);
        if (i % 2 == 0) { /* half of them answered, half still in their headers */
            assert_int_equal(tc_sends(cs[i], "GET /m HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
            assert_int_equal(tc_read(cs[i], r), 0);
            assert_int_equal(r->status, 200);
        }
    }
    assert_true(wait_conns(probe, N + 1));
    for (int i = 0; i < N; i += 3)
        tc_close(cs[i]);
    assert_true(wait_conns(probe, N + 1 - (N + 2) / 3));
    for (int i = 0; i < N; i++)
        if (i % 3 != 0)
            tc_close(cs[i]);
    assert_true(wait_conns(probe, 1));
    tc_close(probe);
    free(r);
}

static int srv_setup_busy(void **state)
{
    sl_http_limits l;
    sl_http_limits_init(&l);
    l.request_timeout_ms = 60000; /* far longer than the client waits (5 s) */
    l.idle_timeout_ms = 60000;
    l.max_connections = 4;
    l.busy_header_timeout_ms = 200;
    ts_server *ts = ts_start(&l);
    assert_non_null(ts);
    *state = ts;
    return 0;
}

/* Near the connection limit, heads get the short timeout: the 408 comes long before the normal
 * request timeout, also for the head that started before the server became busy. */
static void test_srv_busy_header_timeout(void **state)
{
    ts_server *ts = *state;
    tc_response *r = calloc(1, sizeof *r);
    tc_client *probe = tc_connect_from(ts->port, 0, 0, "127.0.0.2");
    tc_client *s1 = tc_connect(ts->port);
    assert_int_equal(tc_sends(s1, "GET /slow HTTP/1.1\r\nHost: t\r\nX-A: "), 0);
    assert_true(wait_conns(probe, 2));    /* not busy yet: 2 of 4 */
    tc_client *s2 = tc_connect(ts->port); /* 3 of 4: busy */
    assert_int_equal(tc_sends(s2, "GET /slow HTTP/1.1\r\nHo"), 0);
    /* Generous waits, still well short of the 60 s the heads would get otherwise. */
    struct timeval tv = {.tv_sec = 30};
    setsockopt(s1->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s2->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(tc_read(s1, r), 0);
    assert_int_equal(r->status, 408);
    assert_int_equal(tc_read(s2, r), 0);
    assert_int_equal(r->status, 408);
    tc_close(s1);
    tc_close(s2);
    /* The connection that has been answered keeps its keep-alive life. */
    assert_int_equal(tc_sends(probe, "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(tc_read(probe, r), 0);
    assert_int_equal(r->status, 200);
    tc_close(probe);
    free(r);
}

static char fit_log[512];

static void fit_log_fn(void *ud, const char *line)
{
    snprintf(fit_log, sizeof fit_log, "%s", line);
}

/* sl_http_fit_fd_limit raises the soft limit when the hard one allows, and lowers max_connections
 * when it does not. (Refusing to start needs a hard limit this process could not raise again:
 * tests/e2e/test_limits.py runs sluiced under one.) */
static void test_fit_fd_limit(void **state)
{
    struct rlimit old, now;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < 1000)
        skip();
    struct rlimit low = {.rlim_cur = 200, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    sl_http_limits l;
    sl_http_limits_init(&l);
    l.max_connections = 500;
    sl_status st;
    sl_status_clear(&st);
    fit_log[0] = '\0';
    assert_int_equal(sl_http_fit_fd_limit(&l, fit_log_fn, NULL, &st), SL_OK);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
    assert_int_equal(now.rlim_cur, 500 + SL_HTTP_FD_RESERVE);
    assert_int_equal(l.max_connections, 500);
    assert_non_null(strstr(fit_log, "raised the open-file limit from 200 to 564"));
    /* Enough already: nothing changes, nothing is said. */
    fit_log[0] = '\0';
    l.max_connections = 100;
    assert_int_equal(sl_http_fit_fd_limit(&l, fit_log_fn, NULL, &st), SL_OK);
    assert_int_equal(l.max_connections, 100);
    assert_string_equal(fit_log, "");
    /* More than the hard limit allows: max_connections comes down to what fits. */
    if (old.rlim_max != RLIM_INFINITY) {
        l.max_connections = (size_t)old.rlim_max;
        assert_int_equal(sl_http_fit_fd_limit(&l, fit_log_fn, NULL, &st), SL_OK);
        assert_int_equal(l.max_connections, (size_t)old.rlim_max - SL_HTTP_FD_RESERVE);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
        assert_int_equal(now.rlim_cur, old.rlim_max);
        assert_non_null(strstr(fit_log, "max_connections lowered from"));
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_post_body),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_query_split),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_framing_table),
        cmocka_unit_test(test_garbage_after_request),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_upgrade_is_plain),
        cmocka_unit_test(test_large_body_reuses_store),
        cmocka_unit_test(test_trailers_too_large),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_srv_listen_errors),
        cmocka_unit_test(test_srv_hosts),
        cmocka_unit_test_setup_teardown(test_srv_response_shape, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_keep_alive_and_pipelining, srv_setup,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_http10, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_errors, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_expect_continue, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_timeouts, srv_setup_short, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_connection_limit, srv_setup_limit2, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_deferred_and_disconnect, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_close_with_request_held, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_large_responses, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_stalled_reader, srv_setup_short_idle,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_slow_steady_reader, srv_setup_second_idle,
                                        srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_backpressure, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_out_of_fds, srv_setup_many, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_per_address, srv_setup_per_address, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_busy_header_timeout, srv_setup_busy, srv_teardown),
        cmocka_unit_test_setup_teardown(test_srv_many_addresses, srv_setup_patient, srv_teardown),
        cmocka_unit_test(test_fit_fd_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
