/* The HTTP/1.1 server of http.h on libuv. Each connection owns an assembler (http_parser.c), a
 * buffer for bytes read but not yet parsed (only needed while a request is being answered or the
 * previous response is still being written), one reusable response buffer, and one timer whose
 * meaning follows the connection's state: waiting for a first request, a request under way, idle
 * keep-alive, a response stuck in the socket, or lingering after an error. Requests are handed to
 * the handler one at a time; parsing resumes after the response has been handed to the kernel,
 * which keeps pipelined answers in order and gives natural backpressure. A handler may instead take
 * the connection over (sl_http_upgrade): the assembler is freed, bytes go straight to the new owner
 * and the timer only serves the owner's timeout and the final linger. Reads go into one buffer
 * shared by the whole server: the assembler copies what a request needs, so most reads never touch
 * a per-connection buffer. Connections are reference counted (two handles plus a request in the
 * handler's hands) so that a client vanishing mid-request never frees a request the handler still
 * holds. */
#include "net/http.h"

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sluice/error.h>

#include "net/http_parser.h"

#define READ_BUF_SIZE (64 * 1024)
/* Unparsed bytes buffered while a request is in the handler's hands before we stop reading. */
#define PEND_MAX (64 * 1024)
/* Per-connection buffers that grew past these for one large message are given back afterwards. */
#define PEND_KEEP (16 * 1024)
#define WBUF_KEEP (64 * 1024)
/* How long we keep draining a client's bytes after an error response before giving up on it:
 * closing with unread bytes makes the kernel send RST, which can destroy the response in flight. */
#define LINGER_MS 2000
/* Connections refused with 503 still need a write and a close; past this many at once they are
 * just closed. */
#define MAX_REJECTING 1024
#define BACKLOG 511

enum { T_NONE, T_FIRST, T_REQUEST, T_IDLE, T_WRITE, T_LINGER, T_UP };

typedef struct conn conn;
struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;     /* the response; at most one at a time */
    uv_write_t creq;     /* "100 Continue" */
    uv_shutdown_t sreq;  /* the FIN before lingering */
    sl_http_server *srv; /* NULL once closing: the server may be gone before the handler answers */
    conn *prev, *next;
    sl__http_parser parser;
    sl_http_request req;
    char *pend; /* read but not yet parsed */
    size_t pend_len, pend_cap;
    char *wbuf;
    size_t wcap;
    uint64_t deadline;  /* loop time at which the current timer mode expires; 0: never */
    uint64_t timer_due; /* when the armed timer fires (it may fire early and re-arm) */
    int tmode;
    int refs;
    unsigned in_flight : 1, writing : 1, closing : 1, lingering : 1, eof : 1, reading : 1,
        in_drive : 1, rejected : 1, timer_armed : 1, close_after_write : 1, head : 1, served : 1,
        upgraded : 1, up_notified : 1, up_paused : 1;
    sl_http_upgrade_fns fns; /* the new owner, once upgraded */
    void *up_ud;
    char remote[64];
};

struct sl_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening;
    int closed;
    int port;
    sl_http_limits lim;
    sl_http_handler_fn handler;
    void *ud;
    conn *conns;
    size_t nconns, nrejecting;
    time_t date_sec;
    size_t date_len;
    char date[64]; /* "Date: ...\r\n" for date_sec */
    char rbuf[READ_BUF_SIZE];
};

void sl_http_limits_init(sl_http_limits *l)
{
    l->max_body = 1024 * 1024;
    l->max_header = 16 * 1024;
    l->request_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->max_connections = 10000;
}

const char *sl_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Unknown";
}

/* ---- connection lifetime --------------------------------------------------------------------- */

static void conn_free(conn *c)
{
    sl__http_parser_free(&c->parser);
    free(c->pend);
    free(c->wbuf);
    free(c);
}

static void conn_unref(conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    sl_http_server *s = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->rejected)
        s->nrejecting--;
    else
        s->nconns--;
    c->srv = NULL;
    /* Pending writes and the shutdown are cancelled by the close; their callbacks see closing. */
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->upgraded && !c->up_notified) {
        c->up_notified = 1;
        c->fns.on_close(c->up_ud);
    }
}

/* ---- timers ---------------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static unsigned mode_ms(const conn *c, int mode)
{
    const sl_http_limits *l = &c->srv->lim;
    switch (mode) {
    case T_FIRST:
    case T_REQUEST:
        return l->request_timeout_ms;
    case T_IDLE:
    case T_WRITE: /* a client that stops reading our answer is as good as idle */
        return l->idle_timeout_ms;
    case T_LINGER:
        return LINGER_MS;
    }
    return 0;
}

/* Switches the meaning of the connection's timer. The uv timer itself is only restarted when it
 * would fire too late: under keep-alive load deadlines only move forward, and an early expiry just
 * re-arms, so the hot path does not touch the timer heap. */
static void set_mode(conn *c, int mode)
{
    if (mode == c->tmode)
        return;
    c->tmode = mode;
    unsigned ms = mode_ms(c, mode);
    if (ms == 0) {
        c->deadline = 0;
        return;
    }
    uint64_t now = uv_now(c->timer.loop);
    c->deadline = now + ms;
    if (!c->timer_armed || c->timer_due > c->deadline) {
        uv_timer_start(&c->timer, on_timer, ms, 0);
        c->timer_armed = 1;
        c->timer_due = c->deadline;
    }
}

/* ---- responses ------------------------------------------------------------------------------- */

static int wreserve(conn *c, size_t need)
{
    if (need <= c->wcap)
        return 0;
    size_t cap = c->wcap ? c->wcap : 1024;
    while (cap < need)
        cap *= 2;
    char *nb = realloc(c->wbuf, cap);
    if (nb == NULL)
        return -1;
    c->wbuf = nb;
    c->wcap = cap;
    return 0;
}

static const char *date_line(sl_http_server *s, size_t *len)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != s->date_sec || s->date_len == 0) {
        struct tm tm;
        gmtime_r(&now, &tm);
        /* By hand rather than strftime: %a and %b follow the locale, HTTP wants English. */
        int n = snprintf(s->date, sizeof s->date, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                         days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                         tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        s->date_len = n > 0 && (size_t)n < sizeof s->date ? (size_t)n : 0;
        s->date_sec = now;
    }
    *len = s->date_len;
    return s->date;
}

static char *put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

#define PUT_LIT(d, lit) put((d), (lit), sizeof(lit) - 1)

static char *put_uint(char *d, size_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return put(d, tmp + i, sizeof tmp - i);
}

/* Status line, headers and body in c->wbuf, ready for one write. */
static int build(conn *c, sl_http_server *s, int status, const char *extra, const char *ctype,
                 const char *body, size_t body_len, int keep, size_t *out)
{
    if (status < 100 || status > 999)
        status = 500;
    const char *reason = sl_http_reason(status);
    size_t rlen = strlen(reason), elen = extra ? strlen(extra) : 0;
    size_t clen = ctype ? strlen(ctype) : 0, dlen;
    const char *date = date_line(s, &dlen);
    int bodyless = status < 200 || status == 204 || status == 304;
    size_t send = bodyless || c->head ? 0 : body_len;
    if (wreserve(c, 200 + rlen + dlen + elen + clen + send) != 0)
        return -1;
    char *d = c->wbuf;
    d = PUT_LIT(d, "HTTP/1.1 ");
    *d++ = (char)('0' + status / 100);
    *d++ = (char)('0' + status / 10 % 10);
    *d++ = (char)('0' + status % 10);
    *d++ = ' ';
    d = put(d, reason, rlen);
    d = PUT_LIT(d, "\r\nServer: sluice\r\n");
    d = put(d, date, dlen);
    if (ctype != NULL) {
        d = PUT_LIT(d, "Content-Type: ");
        d = put(d, ctype, clen);
        d = PUT_LIT(d, "\r\n");
    }
    if (!bodyless) {
        d = PUT_LIT(d, "Content-Length: ");
        d = put_uint(d, body_len);
        d = PUT_LIT(d, "\r\n");
    }
    d = keep ? PUT_LIT(d, "Connection: keep-alive\r\n") : PUT_LIT(d, "Connection: close\r\n");
    if (elen > 0) {
        d = put(d, extra, elen);
        if (extra[elen - 1] != '\n')
            d = PUT_LIT(d, "\r\n");
    }
    d = PUT_LIT(d, "\r\n");
    if (send > 0)
        d = put(d, body, send);
    *out = (size_t)(d - c->wbuf);
    return 0;
}

static void conn_linger(conn *c);
static void conn_kick(conn *c);

static void write_done(conn *c, int status)
{
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->wcap > WBUF_KEEP) {
        free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
    if (c->close_after_write)
        conn_linger(c);
    else
        conn_kick(c);
}

static void on_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->writing = 0;
    if (!c->closing)
        write_done(c, status);
}

/* Sends c->wbuf[0..len). Most responses fit the socket buffer: try that first and only queue a
 * uv_write (with its callback one loop iteration later) for what is left. */
static void conn_send(conn *c, size_t len, int close_after)
{
    c->close_after_write = close_after;
    uv_buf_t b = uv_buf_init(c->wbuf, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n >= 0 && (size_t)n == len) {
        write_done(c, 0);
        return;
    }
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
        write_done(c, n);
        return;
    }
    if (n < 0)
        n = 0;
    b = uv_buf_init(c->wbuf + n, (unsigned)(len - (size_t)n));
    c->writing = 1;
    int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        c->writing = 0;
        write_done(c, r);
        return;
    }
    set_mode(c, T_WRITE);
}

static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s != '\0' && n + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
    return n;
}

/* Answers with a JSON error and closes once it has been written. */
static void conn_fail(conn *c, int status, const char *name, const char *message)
{
    if (c->closing || c->lingering)
        return;
    if (c->writing || c->in_flight) { /* no room for an answer: just go */
        conn_close(c);
        return;
    }
    char msg[256], body[384];
    json_escape(msg, sizeof msg, message);
    int blen = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}", name, msg);
    if (blen < 0 || (size_t)blen >= sizeof body)
        blen = 0;
    size_t n;
    c->head = 0;
    if (build(c, c->srv, status, NULL, "application/json", body, (size_t)blen, 0, &n) != 0) {
        conn_close(c);
        return;
    }
    conn_send(c, n, 1);
}

static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void on_continue_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    if (status < 0 && !c->closing)
        conn_close(c);
}

static void send_continue(conn *c)
{
    uv_buf_t b = uv_buf_init((char *)CONTINUE, sizeof CONTINUE - 1);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n >= 0 && (size_t)n == b.len)
        return;
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
        conn_close(c);
        return;
    }
    if (n < 0)
        n = 0;
    /* A static buffer and its own request: the response that follows is queued behind it, and the
     * next "100 Continue" can only come after that response has been written. */
    b = uv_buf_init((char *)CONTINUE + n, (unsigned)(sizeof CONTINUE - 1 - (size_t)n));
    if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written) < 0)
        conn_close(c);
}

void sl_http_respond(sl_http_request *req, int status, const char *extra_headers,
                     const char *content_type, const char *body, size_t body_len)
{
    if (req == NULL || req->conn == NULL)
        return;
    conn *c = req->conn;
    if (req != &c->req || !c->in_flight)
        return;
    req->conn = NULL;
    c->in_flight = 0;
    if (c->closing) { /* the client left (or the server closed): nobody to answer */
        conn_unref(c);
        return;
    }
    int keep = c->req.keep_alive && !c->srv->closed;
    size_t n;
    if (build(c, c->srv, status, extra_headers, content_type, body, body_len, keep, &n) != 0) {
        conn_close(c);
        conn_unref(c);
        return;
    }
    /* Only now: body may point into the request. */
    sl__http_parser_next(&c->parser);
    conn_send(c, n, !keep);
    conn_kick(c);
    conn_unref(c);
}

/* ---- reading and parsing --------------------------------------------------------------------- */

static void dispatch(conn *c)
{
    sl_http_server *s = c->srv;
    sl__http_parser_request(&c->parser, &c->req);
    memcpy(c->req.remote_addr, c->remote, sizeof c->req.remote_addr);
    c->req.conn = c;
    c->in_flight = 1;
    c->refs++;
    c->head = c->parser.ll.method == HTTP_HEAD;
    c->served = 1;
    /* Logically the timer stops here; the next mode gets a fresh deadline (see set_mode). */
    c->tmode = T_NONE;
    s->handler(s->ud, &c->req);
}

/* Parses and dispatches from data until a request is in the handler's hands, a response is being
 * written, the bytes run out or the connection fails. Returns how many bytes were used. */
static size_t drive(conn *c, const char *data, size_t len)
{
    size_t off = 0;
    c->in_drive = 1;
    while (!c->in_flight && !c->writing && !c->closing && !c->lingering && !c->upgraded) {
        size_t used = 0;
        int r = sl__http_parser_feed(&c->parser, data + off, len - off, &used);
        off += used;
        if (r == SL__HTTP_NEED_MORE) {
            if (sl__http_parser_take_continue(&c->parser))
                send_continue(c);
            break;
        }
        if (r == SL__HTTP_ERROR) {
            const sl__http_parser *p = &c->parser;
            conn_fail(c, p->status, p->error_name, p->error_message);
            break;
        }
        dispatch(c);
    }
    c->in_drive = 0;
    return off;
}

static int pend_append(conn *c, const char *data, size_t len)
{
    if (c->pend_cap - c->pend_len < len) {
        size_t cap = c->pend_cap ? c->pend_cap : 4096;
        while (cap - c->pend_len < len)
            cap *= 2;
        char *nb = realloc(c->pend, cap);
        if (nb == NULL)
            return -1;
        c->pend = nb;
        c->pend_cap = cap;
    }
    memcpy(c->pend + c->pend_len, data, len);
    c->pend_len += len;
    return 0;
}

static void pend_consume(conn *c, size_t used)
{
    if (used == 0)
        return;
    c->pend_len -= used;
    if (c->pend_len > 0) {
        memmove(c->pend, c->pend + used, c->pend_len);
    } else if (c->pend_cap > PEND_KEEP) {
        free(c->pend);
        c->pend = NULL;
        c->pend_cap = 0;
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn *c = h->data;
    /* One buffer for the whole server: a read is consumed (or copied aside) before the next. */
    *b = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

static void read_set(conn *c, int on)
{
    if (on && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!on && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void up_flush_pend(conn *c);

/* Brings reading and the timer in line with the connection's state after anything happened. */
static void settle(conn *c)
{
    if (c->closing || c->lingering)
        return;
    if (c->upgraded) {
        if (c->eof) {
            conn_close(c);
            return;
        }
        up_flush_pend(c);
        if (!c->closing && !c->lingering)
            read_set(c, !c->up_paused);
        return;
    }
    if (c->eof) {
        /* Nothing more will come: what could be answered has been; anything left is partial. */
        if (!c->in_flight && !c->writing)
            conn_close(c);
        return;
    }
    int blocked = c->in_flight || c->writing;
    read_set(c, !(blocked && c->pend_len >= PEND_MAX));
    int mode;
    if (c->writing)
        mode = T_WRITE;
    else if (c->in_flight)
        mode = T_NONE;
    else if (sl__http_parser_in_message(&c->parser) || c->pend_len > 0)
        mode = T_REQUEST;
    else
        mode = c->served ? T_IDLE : T_FIRST;
    set_mode(c, mode);
}

/* Carries on with buffered bytes once nothing blocks them any more. */
static void conn_kick(conn *c)
{
    if (c->in_drive || c->closing || c->lingering)
        return;
    if (c->upgraded) {
        settle(c);
        return;
    }
    if (c->pend_len > 0 && !c->in_flight && !c->writing) {
        size_t used = drive(c, c->pend, c->pend_len);
        if (c->closing || c->lingering)
            c->pend_len = 0; /* whatever is left will never be parsed */
        else
            pend_consume(c, used);
    }
    settle(c);
}

static void conn_linger(conn *c)
{
    if (c->closing || c->lingering)
        return;
    c->lingering = 1;
    c->pend_len = 0;
    if (c->eof) {
        conn_close(c);
        return;
    }
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, NULL) != 0) {
        conn_close(c);
        return;
    }
    read_set(c, 1);
    set_mode(c, T_LINGER);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    conn *c = st->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->lingering) {
            conn_close(c);
            return;
        }
        c->eof = 1;
        read_set(c, 0);
        settle(c);
        return;
    }
    if (c->lingering) /* the answer is out; whatever the client still sends is dropped */
        return;
    size_t n = (size_t)nread;
    if (c->upgraded) {
        up_flush_pend(c); /* bytes read with the request come first */
        if (!c->closing && !c->lingering)
            c->fns.on_data(c->up_ud, b->base, n);
        return;
    }
    if (c->pend_len == 0 && !c->in_flight && !c->writing) {
        size_t used = drive(c, b->base, n);
        if (used < n && !c->closing && !c->lingering && pend_append(c, b->base + used, n - used))
            conn_close(c);
    } else if (pend_append(c, b->base, n) != 0) {
        conn_close(c);
    } else {
        conn_kick(c);
        return;
    }
    settle(c);
}

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    c->timer_armed = 0;
    if (c->closing)
        return;
    if (c->upgraded && !c->lingering) {
        /* Also the deferred hand-over of bytes read with the request (see sl_http_upgrade). */
        up_flush_pend(c);
        if (c->closing || c->lingering || c->tmode != T_UP || c->deadline == 0)
            return;
        uint64_t now = uv_now(t->loop);
        if (now < c->deadline) {
            uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
            c->timer_armed = 1;
            c->timer_due = c->deadline;
            return;
        }
        conn_close(c);
        return;
    }
    if (c->deadline == 0 || c->tmode == T_NONE)
        return;
    uint64_t now = uv_now(t->loop);
    if (now < c->deadline) {
        uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
        c->timer_armed = 1;
        c->timer_due = c->deadline;
        return;
    }
    c->deadline = 0;
    switch (c->tmode) {
    case T_FIRST:
    case T_REQUEST:
        conn_fail(c, 408, sl_err_name(SL_ETIMEOUT), sl_strerror(SL_ETIMEOUT));
        break;
    default: /* idle keep-alive, a stuck write, the end of lingering: just go */
        conn_close(c);
    }
}

/* ---- upgraded connections -------------------------------------------------------------------- */

static void up_flush_pend(conn *c)
{
    if (c->pend_len == 0)
        return;
    char *p = c->pend;
    size_t n = c->pend_len;
    c->pend = NULL;
    c->pend_len = c->pend_cap = 0;
    if (!c->closing && !c->lingering)
        c->fns.on_data(c->up_ud, p, n);
    free(p);
}

static void on_up_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->writing = 0;
    if (c->closing)
        return;
    /* An idle upgraded connection keeps no write buffer: that is most of them, most of the time. */
    free(c->wbuf);
    c->wbuf = NULL;
    c->wcap = 0;
    if (status < 0)
        conn_close(c);
    else if (c->close_after_write)
        conn_linger(c);
    else if (c->fns.on_drain != NULL)
        c->fns.on_drain(c->up_ud);
}

/* Writes what the socket takes now, the rest from wbuf with one uv_write. data may be wbuf. */
static long up_write(conn *c, const char *data, size_t len)
{
    if (c->closing || c->lingering || c->close_after_write)
        return SL_EIO;
    if (c->writing)
        return 0;
    if (len == 0)
        return 0;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n >= 0 && (size_t)n == len) {
        free(c->wbuf); /* nothing in flight: an idle upgraded connection keeps no buffer */
        c->wbuf = NULL;
        c->wcap = 0;
        return (long)len;
    }
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS)
        return SL_EIO;
    if (n < 0)
        n = 0;
    size_t rest = len - (size_t)n;
    if (data != c->wbuf && wreserve(c, rest) != 0)
        return SL_ENOMEM;
    memmove(c->wbuf, data + n, rest);
    b = uv_buf_init(c->wbuf, (unsigned)rest);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_up_write) < 0)
        return SL_EIO;
    c->writing = 1;
    return (long)len;
}

int sl_http_upgrade(sl_http_request *req, const char *extra_headers, const sl_http_upgrade_fns *fns,
                    void *ud, sl_http_upgraded **out)
{
    if (req == NULL || req->conn == NULL || fns == NULL || fns->on_data == NULL ||
        fns->on_close == NULL || out == NULL)
        return SL_EINVAL;
    conn *c = req->conn;
    if (req != &c->req || !c->in_flight)
        return SL_EINVAL;
    *out = NULL;
    req->conn = NULL;
    c->in_flight = 0;
    if (c->closing) {
        conn_unref(c);
        return SL_EIO;
    }
    size_t elen = extra_headers ? strlen(extra_headers) : 0, dlen;
    const char *date = date_line(c->srv, &dlen);
    if (wreserve(c, 128 + dlen + elen) != 0) {
        conn_close(c);
        conn_unref(c);
        return SL_ENOMEM;
    }
    char *d = c->wbuf;
    d = PUT_LIT(d, "HTTP/1.1 101 Switching Protocols\r\nServer: sluice\r\n");
    d = put(d, date, dlen);
    d = PUT_LIT(d, "Connection: Upgrade\r\n");
    if (elen > 0) {
        d = put(d, extra_headers, elen);
        if (extra_headers[elen - 1] != '\n')
            d = PUT_LIT(d, "\r\n");
    }
    d = PUT_LIT(d, "\r\n");
    /* The request (and the assembler's store behind it) is over: the owner only sees bytes. */
    sl__http_parser_free(&c->parser);
    c->upgraded = 1;
    c->fns = *fns;
    c->up_ud = ud;
    c->tmode = T_NONE;
    c->deadline = 0;
    if (up_write(c, c->wbuf, (size_t)(d - c->wbuf)) < 0) {
        c->up_notified = 1; /* the owner never had it */
        conn_close(c);
        conn_unref(c);
        return SL_EIO;
    }
    *out = (sl_http_upgraded *)c;
    /* Bytes that came with the request are handed over only once the owner has set itself up:
     * after the handler returns when it upgraded from inside the handler (drive's caller settles),
     * else on the next loop iteration. */
    if (!c->in_drive) {
        if (c->pend_len > 0) {
            uv_timer_start(&c->timer, on_timer, 0, 0);
            c->timer_armed = 1;
            c->timer_due = uv_now(c->timer.loop);
        }
        read_set(c, 1);
    }
    conn_unref(c);
    return SL_OK;
}

long sl_http_upgraded_write_owned(sl_http_upgraded *u, char *buf, size_t len, size_t cap)
{
    conn *c = (conn *)u;
    if (c == NULL || buf == NULL || len == 0 || cap < len)
        return SL_EINVAL;
    if (c->closing || c->lingering || c->close_after_write)
        return SL_EIO;
    if (c->writing)
        return 0;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS)
        return SL_EIO;
    if (n < 0)
        n = 0;
    free(c->wbuf);
    c->wbuf = NULL;
    c->wcap = 0;
    if ((size_t)n == len) {
        free(buf);
        return (long)len;
    }
    /* The rest is written from the caller's buffer, which becomes the connection's. */
    b = uv_buf_init(buf + n, (unsigned)(len - (size_t)n));
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_up_write) < 0)
        return SL_EIO;
    c->wbuf = buf;
    c->wcap = cap;
    c->writing = 1;
    return (long)len;
}

long sl_http_upgraded_write(sl_http_upgraded *u, const char *data, size_t len)
{
    if (u == NULL || (data == NULL && len > 0))
        return SL_EINVAL;
    return up_write((conn *)u, data, len);
}

void sl_http_upgraded_close(sl_http_upgraded *u)
{
    conn *c = (conn *)u;
    if (c == NULL || c->closing || c->lingering)
        return;
    if (c->writing)
        c->close_after_write = 1;
    else
        conn_linger(c);
}

void sl_http_upgraded_pause(sl_http_upgraded *u, int paused)
{
    conn *c = (conn *)u;
    if (c == NULL || c->closing)
        return;
    c->up_paused = paused != 0;
    if (!c->lingering) /* a lingering socket is drained whatever the owner wants */
        read_set(c, !c->up_paused);
}

void sl_http_upgraded_set_timeout(sl_http_upgraded *u, unsigned ms)
{
    conn *c = (conn *)u;
    if (c == NULL || c->closing || c->lingering)
        return;
    if (ms == 0) {
        c->tmode = T_NONE;
        c->deadline = 0;
        return; /* an armed timer fires harmlessly (and flushes, if that is why it was armed) */
    }
    uint64_t now = uv_now(c->timer.loop);
    c->tmode = T_UP;
    c->deadline = now + ms;
    if (!c->timer_armed || c->timer_due > c->deadline) {
        uv_timer_start(&c->timer, on_timer, ms, 0);
        c->timer_armed = 1;
        c->timer_due = c->deadline;
    }
}

/* ---- the server ------------------------------------------------------------------------------ */

static void peer_name(conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(c->remote, sizeof c->remote, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

static void on_connection(uv_stream_t *ls, int status)
{
    sl_http_server *s = ls->data;
    if (status < 0 || s->closed)
        return;
    conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c->wreq.data = c->creq.data = c->sreq.data = c;
    c->refs = 2;
    c->srv = s;
    c->tmode = T_NONE;
    sl__http_parser_init(&c->parser, s->lim.max_body, s->lim.max_header);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    int over = s->lim.max_connections > 0 && s->nconns >= s->lim.max_connections;
    if (over) {
        c->rejected = 1;
        s->nrejecting++;
    } else {
        s->nconns++;
    }
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (over) {
        if (s->nrejecting > MAX_REJECTING)
            conn_close(c);
        else
            conn_fail(c, 503, sl_err_name(SL_EUNAVAIL), "too many connections");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    settle(c);
}

int sl_http_server_new(sl_http_server **out, uv_loop_t *loop, const sl_http_limits *lim,
                       sl_http_handler_fn handler, void *ud)
{
    if (out == NULL || loop == NULL || handler == NULL)
        return SL_EINVAL;
    *out = NULL;
    sl_http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    s->loop = loop;
    if (lim != NULL)
        s->lim = *lim;
    else
        sl_http_limits_init(&s->lim);
    /* Zero sizes take the defaults (the assembler does the same); zero timeouts and a zero
     * connection limit mean "none". */
    sl_http_limits d;
    sl_http_limits_init(&d);
    if (s->lim.max_body == 0)
        s->lim.max_body = d.max_body;
    if (s->lim.max_header == 0)
        s->lim.max_header = d.max_header;
    s->handler = handler;
    s->ud = ud;
    /* libuv writes with write(2): a client that resets while we answer would otherwise kill the
     * process with SIGPIPE. Only the default disposition is replaced, never a handler someone
     * installed on purpose. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    *out = s;
    return SL_OK;
}

int sl_http_server_listen(sl_http_server *s, const char *host, int port)
{
    if (s == NULL || host == NULL || port < 0 || port > 65535 || s->listening || s->closed)
        return SL_EINVAL;
    /* Literals only (no resolver on the event loop), but the two spellings people use for
     * loopback and "[v6]" are accepted. */
    char lit[64];
    size_t hl = strlen(host);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    else if (hl > 2 && hl < sizeof lit && host[0] == '[' && host[hl - 1] == ']') {
        memcpy(lit, host + 1, hl - 2);
        lit[hl - 2] = '\0';
        host = lit;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t slen;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0)
        slen = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0)
        slen = sizeof(struct sockaddr_in6);
    else
        return SL_EINVAL;
    /* The socket is made by hand and only given to libuv once it listens: a failed listen then
     * leaves no handle behind that would need the loop to run before the server can be freed. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return SL_EIO;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, slen) != 0 || listen(fd, BACKLOG) != 0) {
        close(fd);
        return SL_EIO;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        close(fd);
        return SL_EIO;
    }
    s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (uv_tcp_init(s->loop, &s->listener) != 0) {
        close(fd);
        return SL_EIO;
    }
    s->listener.data = s;
    s->listening = 1; /* from here on the handle exists and sl_http_server_close must close it */
    if (uv_tcp_open(&s->listener, fd) != 0) {
        close(fd);
        return SL_EIO;
    }
    if (uv_listen((uv_stream_t *)&s->listener, BACKLOG, on_connection) != 0)
        return SL_EIO;
    return SL_OK;
}

int sl_http_server_port(const sl_http_server *s)
{
    return s ? s->port : 0;
}

size_t sl_http_server_connections(const sl_http_server *s)
{
    return s ? s->nconns : 0;
}

void sl_http_server_close(sl_http_server *s)
{
    if (s == NULL || s->closed)
        return;
    s->closed = 1;
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, NULL);
    while (s->conns != NULL)
        conn_close(s->conns);
}

void sl_http_server_free(sl_http_server *s)
{
    free(s);
}
