/* The HTTP/1.1 request assembler: a per-connection wrapper around llhttp that turns a byte stream
 * into complete sl_http_request values. It does no I/O, so the server, the unit tests and fuzzers
 * all drive it the same way: feed bytes, and it either wants more, has a complete request (and says
 * how many of the fed bytes it used, so the caller keeps the rest for the next request: that is
 * pipelining), or has failed with the HTTP status to answer with. Everything a request points at
 * (method, target, path, query, headers, body) lives in one per-connection store that is reused
 * from request to request, so a keep-alive connection does not allocate per request. */
#ifndef SLUICE_NET_HTTP_PARSER_H
#define SLUICE_NET_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "net/http.h"

/* More headers than this in one request is answered with 431. */
#define SL__HTTP_MAX_HEADERS 100

/* sl__http_parser_feed results. */
enum {
    SL__HTTP_ERROR = -1,    /* p->status etc. say what to answer; the connection must close */
    SL__HTTP_NEED_MORE = 0, /* every byte was used; the request is not complete yet */
    SL__HTTP_REQUEST = 1,   /* a request is complete; *consumed bytes were used */
};

typedef struct sl__http_span {
    size_t name_off, name_len, value_off, value_len; /* offsets into the store */
} sl__http_span;

typedef struct sl__http_parser {
    llhttp_t ll;
    size_t max_body, max_header;

    /* The store: target, path copy, header names and values, body, each NUL-terminated where the
     * request promises it. Offsets, not pointers, until the request is complete: it may move. */
    char *buf;
    size_t len, cap;
    sl__http_span *spans;
    sl_http_header *headers;
    size_t nheaders, headers_cap;

    size_t url_off, url_len, path_off, path_len, query_off, query_len;
    size_t body_off, body_len;
    size_t header_bytes;  /* bytes fed since the last request ended, until headers complete */
    size_t trailer_bytes; /* chunked trailers: not kept, but counted against max_header */
    int phase;            /* internal: idle, head, body, done, error */
    int in_field;         /* inside a header name (its span may arrive in pieces) */
    int keep_alive;
    int want_continue; /* Expect: 100-continue seen and the body is acceptable */
    int saw_version;
    char version[8]; /* "1.1" as received, to tell an unsupported version from a malformed one */
    size_t version_len;
    /* Line-ending check over every byte that is not body (see frame_scan in http_parser.c). */
    const char *scan_from;
    int frame;
    int rline;        /* where the request line is (see rline_scan) */
    unsigned seen;    /* bit per one-value header already seen (SINGLE in http_parser.c) */
    size_t field_len; /* bytes of the header name being read */
    char tname[24];   /* the start of a trailer's name (see on_header_field_complete) */
    int chunked;
    uint64_t chunk_left;

    /* Valid after SL__HTTP_ERROR. */
    int status;                /* 400, 405, 413, 431, 500, 505 */
    int error;                 /* the sl_errno closest to it (SL_EINVAL, SL_ETOOBIG, ...) */
    const char *error_name;    /* "bad_request", "payload_too_large", ... (static) */
    const char *error_message; /* human text, static, no quotes or backslashes needed */
} sl__http_parser;

/* 0 when this build's llhttp uses SSE4.2 (CMake's SLUICE_SSE42, the x86-64 default) and the CPU
 * lacks it: parsing would die on an illegal instruction. HTTP servers check it when created. */
int sl__http_parser_cpu_ok(void);

/* max_body / max_header: 0 takes the defaults of sl_http_limits_init. Allocates nothing yet. */
void sl__http_parser_init(sl__http_parser *p, size_t max_body, size_t max_header);
void sl__http_parser_free(sl__http_parser *p);

/* Feeds len bytes. *consumed receives how many were used: all of them for SL__HTTP_NEED_MORE,
 * up to the end of the request for SL__HTTP_REQUEST (the rest belongs to the next request and must
 * be fed again after sl__http_parser_next). After SL__HTTP_REQUEST the parser accepts nothing
 * until sl__http_parser_next; after SL__HTTP_ERROR, nothing ever again. */
int sl__http_parser_feed(sl__http_parser *p, const char *data, size_t len, size_t *consumed);

/* Fills the request fields of a complete request: method, target, path, query, headers, body and
 * keep_alive (not remote_addr or conn). They stay valid until sl__http_parser_next or _free. */
void sl__http_parser_request(const sl__http_parser *p, sl_http_request *req);

/* Forgets the complete request and gets ready for the next one on the same connection. */
void sl__http_parser_next(sl__http_parser *p);

/* Whether bytes of a request not yet complete have been fed (the request timeout is running). */
int sl__http_parser_in_message(const sl__http_parser *p);
/* Whether bytes of a request head (request line, headers) not yet complete have been fed. */
int sl__http_parser_in_head(const sl__http_parser *p);

/* Returns 1, once per request, when the client asked for "Expect: 100-continue", its headers were
 * acceptable and the body has not arrived yet: the caller should send "100 Continue" now. */
int sl__http_parser_take_continue(sl__http_parser *p);

#endif
