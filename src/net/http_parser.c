/* The request assembler behind the HTTP transport (see http_parser.h): llhttp does the tokenising,
 * this file keeps what a request needs in one reusable per-connection store, enforces the size
 * limits as early as they can be decided (413 as soon as Content-Length or a chunk size is known,
 * 431 before more than max_header bytes of head have been handed to llhttp) and adds the checks
 * llhttp's loose mode leaves out (control characters in the target, non-token header names,
 * unsupported versions, line endings: loose llhttp takes a CR followed by anything for a CRLF and
 * skips any two bytes after chunk data, both request smuggling vectors). It pauses llhttp after
 * every complete message so pipelined bytes after it are left to the caller untouched. */
#include "net/http_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sluice/error.h>

enum { PH_IDLE, PH_HEAD, PH_BODY, PH_DONE, PH_ERROR };
/* frame: what the next non-body byte must be. FR_LINE: a line just ended, so the next byte starts
 * a line and may not be a space or tab (obs-fold). */
enum { FR_ANY, FR_LF, FR_CR, FR_LINE };
/* rline: where the request line is; only checked while in it. */
enum { RL_BEFORE, RL_IN, RL_SPACE, RL_AFTER };

#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_HEADER (16 * 1024)
/* A store that grew past this for one large request is given back rather than kept per
 * connection for the rest of its life. */
#define STORE_KEEP (64 * 1024)
#define STORE_MIN 2048

/* llhttp hands callbacks its own struct, which is the first member of ours. */
static sl__http_parser *P(llhttp_t *ll)
{
    return (sl__http_parser *)(void *)ll;
}

static int fail(sl__http_parser *p, int status, int err, const char *name, const char *msg)
{
    if (p->status == 0) {
        p->status = status;
        p->error = err;
        p->error_name = name;
        p->error_message = msg;
    }
    return -1;
}

static int fail_bad(sl__http_parser *p, const char *msg)
{
    return fail(p, 400, SL_EINVAL, "bad_request", msg);
}

static int fail_body(sl__http_parser *p)
{
    return fail(p, 413, SL_ETOOBIG, "payload_too_large", "request body too large");
}

static int fail_head(sl__http_parser *p, const char *msg)
{
    return fail(p, 431, SL_EHEADERS, "headers_too_large", msg);
}

static int reserve(sl__http_parser *p, size_t extra)
{
    if (p->cap - p->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - p->len)
        return fail(p, 500, SL_ENOMEM, "internal", "out of memory");
    size_t need = p->len + extra, cap = p->cap ? p->cap : STORE_MIN;
    while (cap < need)
        cap *= 2;
    char *nb = realloc(p->buf, cap);
    if (nb == NULL)
        return fail(p, 500, SL_ENOMEM, "internal", "out of memory");
    p->buf = nb;
    p->cap = cap;
    return 0;
}

static int append(sl__http_parser *p, const char *at, size_t n)
{
    if (reserve(p, n) != 0)
        return -1;
    memcpy(p->buf + p->len, at, n);
    p->len += n;
    return 0;
}

/* RFC 9110 token characters: anything else in a header name (spaces before the colon included)
 * is a smuggling vector that loose llhttp lets through. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The request line, byte by byte: exactly one space between its parts. llhttp takes "GET  /" for
 * "GET /", which a proxy may not. */
static int rline_scan(sl__http_parser *p, const char *q, const char *end)
{
    for (; q < end && p->rline != RL_AFTER; q++) {
        if (*q == '\r' || *q == '\n') {
            if (p->rline != RL_BEFORE) /* blank lines before a request are llhttp's business */
                p->rline = RL_AFTER;
        } else if (*q == ' ') {
            if (p->rline == RL_SPACE)
                return fail_bad(p, "more than one space in the request line");
            p->rline = RL_SPACE;
        } else {
            p->rline = RL_IN;
        }
    }
    return 0;
}

/* Checks the bytes [q, end) that llhttp consumed as framing (request line, headers, chunk sizes
 * and the CRLF after chunk data, trailers): every CR must be followed by LF, chunk data by CRLF,
 * and no line may start with a space or tab (obs-fold line folding, which llhttp joins to the
 * previous header, RFC 9112 5.2: a proxy may read the folded line as a header of its own). Body
 * bytes never come here (on_body skips over them), so a CR in a body is fine. */
static int frame_scan(sl__http_parser *p, const char *q, const char *end)
{
    if (p->rline != RL_AFTER && rline_scan(p, q, end) != 0)
        return -1;
    while (q < end) {
        if (p->frame == FR_LINE) {
            if (*q == ' ' || *q == '\t')
                return fail_bad(p, "folded header line (obs-fold)");
            p->frame = FR_ANY;
        }
        if (p->frame == FR_ANY) {
            const char *cr = memchr(q, '\r', (size_t)(end - q));
            if (cr == NULL)
                return 0;
            q = cr + 1;
            p->frame = FR_LF;
        } else if (p->frame == FR_LF) {
            if (*q++ != '\n')
                return fail_bad(p, "CR not followed by LF");
            p->frame = FR_LINE;
        } else {
            if (*q++ != '\r')
                return fail_bad(p, "expected CRLF after chunk data");
            p->frame = FR_LF;
        }
    }
    return 0;
}

static int on_message_begin(llhttp_t *ll)
{
    sl__http_parser *p = P(ll);
    p->phase = PH_HEAD;
    p->url_off = p->len;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t n)
{
    sl__http_parser *p = P(ll);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)at[i];
        if (c <= 0x20 || c == 0x7f)
            return fail_bad(p, "invalid character in request target");
    }
    return append(p, at, n);
}

static int on_url_complete(llhttp_t *ll)
{
    sl__http_parser *p = P(ll);
    p->url_len = p->len - p->url_off;
    if (append(p, "", 1) != 0)
        return -1;
    const char *q = memchr(p->buf + p->url_off, '?', p->url_len);
    if (q == NULL) {
        p->path_off = p->url_off;
        p->path_len = p->url_len;
        p->query_off = p->url_off + p->url_len; /* the NUL: an empty string */
        p->query_len = 0;
        return 0;
    }
    size_t plen = (size_t)(q - (p->buf + p->url_off));
    p->query_off = p->url_off + plen + 1;
    p->query_len = p->url_len - plen - 1;
    /* The path needs its own NUL, so it gets its own copy (the target keeps the '?'). */
    if (reserve(p, plen + 1) != 0)
        return -1;
    p->path_off = p->len;
    p->path_len = plen;
    memcpy(p->buf + p->len, p->buf + p->url_off, plen);
    p->buf[p->len + plen] = '\0';
    p->len += plen + 1;
    return 0;
}

static int on_version(llhttp_t *ll, const char *at, size_t n)
{
    sl__http_parser *p = P(ll);
    for (size_t i = 0; i < n && p->version_len < sizeof p->version; i++)
        p->version[p->version_len++] = at[i];
    return 0;
}

static int on_version_complete(llhttp_t *ll)
{
    sl__http_parser *p = P(ll);
    p->saw_version = 1;
    if (ll->http_major != 1 || ll->http_minor > 1)
        return fail(p, 505, SL_EINVAL, "http_version_not_supported", "HTTP version not supported");
    return 0;
}

static int trailer_count(sl__http_parser *p, size_t n)
{
    /* Trailers are not kept (nothing reads them) but may not be endless. */
    p->trailer_bytes += n;
    if (p->trailer_bytes > p->max_header)
        return fail_head(p, "request trailer fields too large");
    return 0;
}

static int start_header(sl__http_parser *p)
{
    if (p->nheaders >= SL__HTTP_MAX_HEADERS)
        return fail_head(p, "too many header fields");
    if (p->nheaders == p->headers_cap) {
        size_t cap = p->headers_cap ? p->headers_cap * 2 : 16;
        if (cap > SL__HTTP_MAX_HEADERS)
            cap = SL__HTTP_MAX_HEADERS;
        sl__http_span *s = realloc(p->spans, cap * sizeof *s);
        if (s == NULL)
            return fail(p, 500, SL_ENOMEM, "internal", "out of memory");
        p->spans = s;
        sl_http_header *h = realloc(p->headers, cap * sizeof *h);
        if (h == NULL)
            return fail(p, 500, SL_ENOMEM, "internal", "out of memory");
        p->headers = h;
        p->headers_cap = cap;
    }
    p->spans[p->nheaders].name_off = p->len;
    p->in_field = 1;
    return 0;
}

/* Headers that are read as one value: sluice (like most servers) takes the first copy, a proxy in
 * front may take the last, or join them, and authorise or route by a different value than the one
 * sluice acts on. A second copy is refused instead (RFC 9110 5.3: these are not lists). */
#define SINGLE_ROW(name, shown)                                                                    \
    {                                                                                              \
        name, sizeof name - 1, "more than one " shown " header"                                    \
    }
static const struct {
    const char *name;
    size_t len;
    const char *dup; /* the 400 message */
} SINGLE[] = {
    SINGLE_ROW("host", "Host"),
    SINGLE_ROW("authorization", "Authorization"),
    SINGLE_ROW("content-length", "Content-Length"),
    SINGLE_ROW("transfer-encoding", "Transfer-Encoding"),
    SINGLE_ROW("expect", "Expect"),
    SINGLE_ROW("sec-websocket-key", "Sec-WebSocket-Key"),
    SINGLE_ROW("sec-websocket-version", "Sec-WebSocket-Version"),
};
enum { SINGLE_HOST = 0, SINGLE_TE = 3, SINGLE_NONE = -1 };

/* The index of name in SINGLE, or SINGLE_NONE. */
static int single_index(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof SINGLE / sizeof SINGLE[0]; i++)
        if (len == SINGLE[i].len && strncasecmp(name, SINGLE[i].name, len) == 0)
            return (int)i;
    return SINGLE_NONE;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
    sl__http_parser *p = P(ll);
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)at[i]))
            return fail_bad(p, "invalid character in header name");
    if (p->phase == PH_BODY) { /* trailer names are kept only as far as they are checked */
        for (size_t i = 0; i < n && p->field_len + i < sizeof p->tname; i++)
            p->tname[p->field_len + i] = at[i];
        p->field_len += n;
        return trailer_count(p, n);
    }
    p->field_len += n;
    if (!p->in_field && start_header(p) != 0)
        return -1;
    return append(p, at, n);
}

static int on_header_field_complete(llhttp_t *ll)
{
    sl__http_parser *p = P(ll);
    size_t len = p->field_len;
    p->field_len = 0;
    if (len == 0)
        return fail_bad(p, "empty header name");
    /* RFC 9110 6.5.1: framing, routing and credentials never come in trailers. sluice ignores
     * trailers, but a proxy that merges them into the header section would not. */
    if (p->phase == PH_BODY)
        return len <= sizeof p->tname && single_index(p->tname, len) != SINGLE_NONE
                   ? fail_bad(p, "header field not allowed in trailers")
                   : 0;
    if (!p->in_field && start_header(p) != 0)
        return -1;
    sl__http_span *s = &p->spans[p->nheaders];
    s->name_len = p->len - s->name_off;
    s->value_off = p->len;
    p->in_field = 0;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
    sl__http_parser *p = P(ll);
    /* Only a folded line (refused by frame_scan) could put a line break into a value. */
    if (memchr(at, '\r', n) != NULL || memchr(at, '\n', n) != NULL)
        return fail_bad(p, "line break in a header value");
    if (p->phase == PH_BODY)
        return trailer_count(p, n);
    return append(p, at, n);
}

/* RFC 3986 authority characters without userinfo: reg-name or IP literal, then ":port". */
static int valid_host(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (c == 0 || strchr("-._~%!$&'()*+;=:[]", c) == NULL))
            return 0;
    }
    return 1;
}

/* Per-header checks once a header is complete (its value trimmed). */
static int check_header(sl__http_parser *p, const sl__http_span *s)
{
    const char *name = p->buf + s->name_off, *v = p->buf + s->value_off;
    int i = single_index(name, s->name_len);
    if (i == SINGLE_NONE)
        return 0;
    if (p->seen & (1u << i))
        return fail_bad(p, SINGLE[i].dup);
    p->seen |= 1u << i;
    if (i == SINGLE_HOST && !valid_host(v, s->value_len))
        return fail_bad(p, "invalid Host header");
    /* The only coding sluice decodes, alone: "identity, chunked" or "gzip, chunked" would be
     * framed as chunked by llhttp while a proxy may frame it otherwise. */
    if (i == SINGLE_TE && (s->value_len != 7 || strncasecmp(v, "chunked", 7) != 0))
        return fail_bad(p, "unsupported Transfer-Encoding (only chunked)");
    return 0;
}

static int on_header_value_complete(llhttp_t *ll)
{
    sl__http_parser *p = P(ll);
    if (p->phase == PH_BODY)
        return trailer_count(p, 4); /* ": " and CRLF */
    sl__http_span *s = &p->spans[p->nheaders];
    size_t off = s->value_off, n = p->len - off;
    while (n > 0 && (p->buf[off] == ' ' || p->buf[off] == '\t'))
        off++, n--;
    while (n > 0 && (p->buf[off + n - 1] == ' ' || p->buf[off + n - 1] == '\t'))
        n--;
    s->value_off = off;
    s->value_len = n;
    p->nheaders++;
    return check_header(p, s);
}

static const sl__http_span *find_span(const sl__http_parser *p, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < p->nheaders; i++) {
        const sl__http_span *s = &p->spans[i];
        if (s->name_len == n && strncasecmp(p->buf + s->name_off, name, n) == 0)
            return s;
    }
    return NULL;
}

static int on_headers_complete(llhttp_t *ll)
{
    sl__http_parser *p = P(ll);
    if (!p->saw_version) /* "GET /": llhttp takes it for HTTP/0.9 */
        return fail_bad(p, "missing HTTP version");
    /* We only speak HTTP/1.x: an Upgrade (or CONNECT) request is answered as a plain request, so
     * llhttp must not hand the rest of the stream over to "another protocol". */
    ll->upgrade = 0;
    /* RFC 9112 3.2: an HTTP/1.1 request without Host is refused (two are refused above). */
    if (ll->http_minor >= 1 && !(p->seen & (1u << SINGLE_HOST)))
        return fail_bad(p, "missing Host header");
    /* RFC 9112 6.1: HTTP/1.0 has no transfer codings; its framing would be faulty. */
    if (ll->http_minor == 0 && (p->seen & (1u << SINGLE_TE)))
        return fail_bad(p, "Transfer-Encoding in an HTTP/1.0 request");
    int chunked = (ll->flags & F_CHUNKED) != 0;
    uint64_t clen = (ll->flags & F_CONTENT_LENGTH) && !chunked ? ll->content_length : 0;
    if (clen > p->max_body)
        return fail_body(p);
    p->phase = PH_BODY;
    p->chunked = chunked;
    p->body_off = p->len;
    p->body_len = 0;
    if (clen > 0 && reserve(p, (size_t)clen + 1) != 0)
        return -1;
    if (ll->http_minor >= 1 && (chunked || clen > 0)) {
        const sl__http_span *s = find_span(p, "expect");
        if (s != NULL && s->value_len == 12 &&
            strncasecmp(p->buf + s->value_off, "100-continue", 12) == 0)
            p->want_continue = 1;
    }
    return 0;
}

static int on_chunk_header(llhttp_t *ll)
{
    sl__http_parser *p = P(ll);
    if (ll->content_length > p->max_body - p->body_len)
        return fail_body(p);
    p->chunk_left = ll->content_length;
    /* Size the store for the whole chunk now rather than growing it piece by piece. */
    if (ll->content_length > 0 && reserve(p, (size_t)ll->content_length + 1) != 0)
        return -1;
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    sl__http_parser *p = P(ll);
    if (n > p->max_body - p->body_len)
        return fail_body(p);
    if (frame_scan(p, p->scan_from, at) != 0)
        return -1;
    if (p->frame == FR_LINE) /* body bytes are not the start of a header line */
        p->frame = FR_ANY;
    if (p->frame != FR_ANY)
        return fail_bad(p, "CR not followed by LF");
    p->scan_from = at + n;
    if (p->chunked) {
        p->chunk_left -= n < p->chunk_left ? n : p->chunk_left;
        if (p->chunk_left == 0)
            p->frame = FR_CR;
    }
    if (append(p, at, n) != 0)
        return -1;
    p->body_len += n;
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    sl__http_parser *p = P(ll);
    if (p->phase != PH_BODY) /* cannot happen: headers always complete first */
        return fail_bad(p, "malformed request");
    if (append(p, "", 1) != 0)
        return -1;
    p->keep_alive = llhttp_should_keep_alive(ll);
    for (size_t i = 0; i < p->nheaders; i++) {
        const sl__http_span *s = &p->spans[i];
        p->headers[i] = (sl_http_header){.name = p->buf + s->name_off,
                                         .name_len = s->name_len,
                                         .value = p->buf + s->value_off,
                                         .value_len = s->value_len};
    }
    p->phase = PH_DONE;
    /* Stop right after this message: what follows is the next request, and it must wait until
     * this one has been answered. */
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_version = on_version,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_chunk_header = on_chunk_header,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void sl__http_parser_init(sl__http_parser *p, size_t max_body, size_t max_header)
{
    memset(p, 0, sizeof *p);
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    p->max_body = max_body ? max_body : DEFAULT_MAX_BODY;
    p->max_header = max_header ? max_header : DEFAULT_MAX_HEADER;
    p->phase = PH_IDLE;
}

int sl__http_parser_cpu_ok(void)
{
#ifdef SLUICE_LLHTTP_SSE42
    return __builtin_cpu_supports("sse4.2");
#else
    return 1;
#endif
}

void sl__http_parser_free(sl__http_parser *p)
{
    free(p->buf);
    free(p->spans);
    free(p->headers);
    p->buf = NULL;
    p->spans = NULL;
    p->headers = NULL;
    p->len = p->cap = p->headers_cap = p->nheaders = 0;
}

/* Maps a failure llhttp found itself (ours were recorded by fail()) to a status. */
static void fail_llhttp(sl__http_parser *p, llhttp_errno_t e)
{
    if (p->status != 0)
        return;
    const char *v = p->version;
    /* A well-formed version we do not speak is 505; 1.0 and 1.1 followed by junk are 400. */
    if (e == HPE_INVALID_VERSION && p->version_len == 3 && v[0] >= '0' && v[0] <= '9' &&
        v[1] == '.' && v[2] >= '0' && v[2] <= '9' && !(v[0] == '1' && v[2] <= '1')) {
        fail(p, 505, SL_EINVAL, "http_version_not_supported", "HTTP version not supported");
        return;
    }
    const char *why = llhttp_get_error_reason(&p->ll);
    fail_bad(p, why != NULL && *why != '\0' ? why : "malformed request");
}

int sl__http_parser_feed(sl__http_parser *p, const char *data, size_t len, size_t *consumed)
{
    size_t off = 0;
    *consumed = 0;
    if (p->phase == PH_DONE)
        return SL__HTTP_REQUEST;
    if (p->phase == PH_ERROR)
        return SL__HTTP_ERROR;
    while (off < len) {
        size_t n = len - off;
        int heading = p->phase == PH_IDLE || p->phase == PH_HEAD;
        /* Never give llhttp more head than the limit allows: headers of exactly max_header
         * bytes complete inside such a slice, so a slice used up without completing them means
         * they are too large, and nothing beyond the limit has been stored. */
        if (heading && n > p->max_header - p->header_bytes)
            n = p->max_header - p->header_bytes;
        p->scan_from = data + off;
        llhttp_errno_t e = llhttp_execute(&p->ll, data + off, n);
        if (e == HPE_PAUSED && p->phase == PH_DONE) {
            const char *end = llhttp_get_error_pos(&p->ll);
            if (frame_scan(p, p->scan_from, end) != 0 ||
                (p->frame != FR_ANY && p->frame != FR_LINE &&
                 fail_bad(p, "CR not followed by LF"))) {
                p->phase = PH_ERROR;
                *consumed = off;
                return SL__HTTP_ERROR;
            }
            off += (size_t)(end - (data + off));
            *consumed = off;
            return SL__HTTP_REQUEST;
        }
        if (e == HPE_OK && frame_scan(p, p->scan_from, data + off + n) != 0)
            e = HPE_USER;
        if (e != HPE_OK) {
            fail_llhttp(p, e);
            p->phase = PH_ERROR;
            *consumed = off;
            return SL__HTTP_ERROR;
        }
        off += n;
        if (p->phase == PH_IDLE || p->phase == PH_HEAD) {
            p->header_bytes += n;
            if (p->header_bytes >= p->max_header) {
                fail_head(p, "request header fields too large");
                p->phase = PH_ERROR;
                *consumed = off;
                return SL__HTTP_ERROR;
            }
        }
    }
    *consumed = off;
    return SL__HTTP_NEED_MORE;
}

void sl__http_parser_request(const sl__http_parser *p, sl_http_request *req)
{
    req->method = llhttp_method_name((llhttp_method_t)p->ll.method);
    req->target = p->buf + p->url_off;
    req->target_len = p->url_len;
    req->path = p->buf + p->path_off;
    req->path_len = p->path_len;
    req->query = p->buf + p->query_off;
    req->query_len = p->query_len;
    req->headers = p->headers;
    req->nheaders = p->nheaders;
    req->body = p->buf + p->body_off;
    req->body_len = p->body_len;
    req->keep_alive = p->keep_alive;
}

void sl__http_parser_next(sl__http_parser *p)
{
    if (p->phase != PH_DONE)
        return;
    if (p->cap > STORE_KEEP) {
        free(p->buf);
        p->buf = NULL;
        p->cap = 0;
    }
    p->len = 0;
    p->nheaders = 0;
    p->url_off = p->url_len = p->path_off = p->path_len = p->query_off = p->query_len = 0;
    p->body_off = p->body_len = 0;
    p->header_bytes = p->trailer_bytes = 0;
    p->in_field = p->keep_alive = p->want_continue = p->saw_version = 0;
    p->version_len = 0;
    p->frame = FR_ANY;
    p->rline = RL_BEFORE;
    p->seen = 0;
    p->field_len = 0;
    p->chunked = 0;
    p->chunk_left = 0;
    p->phase = PH_IDLE;
    llhttp_resume(&p->ll);
}

int sl__http_parser_in_message(const sl__http_parser *p)
{
    return p->phase == PH_HEAD || p->phase == PH_BODY ||
           (p->phase == PH_IDLE && p->header_bytes > 0);
}

int sl__http_parser_in_head(const sl__http_parser *p)
{
    return p->phase == PH_HEAD || (p->phase == PH_IDLE && p->header_bytes > 0);
}

int sl__http_parser_take_continue(sl__http_parser *p)
{
    if (!p->want_continue || p->phase != PH_BODY)
        return 0;
    p->want_continue = 0;
    return 1;
}

const char *sl_http_header_nth(const sl_http_request *req, const char *name, size_t nth,
                               size_t *len)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const sl_http_header *h = &req->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0 && nth-- == 0) {
            if (len != NULL)
                *len = h->value_len;
            return h->value;
        }
    }
    if (len != NULL)
        *len = 0;
    return NULL;
}

const char *sl_http_header_get(const sl_http_request *req, const char *name, size_t *len)
{
    return sl_http_header_nth(req, name, 0, len);
}
