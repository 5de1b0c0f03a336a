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
 * holds.
 *
 * The server accepts connections itself (a uv_poll on the listening socket rather than uv_listen)
 * so that it decides what happens when descriptors run out: libuv would silently accept and close
 * them; we give up a spare descriptor kept for the purpose, accept, answer 503 and close. Each
 * client address (IPv4 address or IPv6 /64) has counters of connections and of connections still
 * in their headers, in a table hashed with a per-server random key (addresses are chosen by the
 * remote side), so one address cannot take every slot with slow or silent connections.
 *
 * On a TLS listener each connection also owns a session (tls.c, no I/O of its own): what is read
 * goes into it and what it decrypts takes the path above as if it had been read (on_plain); what
 * the connection writes is encrypted into it and its ciphertext sent with one write of its own in
 * flight (tls_flush), after which the connection carries on as if its write had completed. The
 * handshake happens inside those calls, under the first request's timer. */
#include "net/http.h"

#include "core/numtext.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sluice/error.h>

#include "net/http_parser.h"
#include "net/tls.h"

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
/* Connections accepted per readiness callback before other work gets a turn. */
#define ACCEPT_BATCH 128
/* How long accepting pauses when it cannot make progress (no descriptor, not even the spare). */
#define ACCEPT_PAUSE_MS 100
/* Refusals are logged at most this often per kind, with a count. */
#define LOG_INTERVAL_MS 10000
/* Fewer connections than this (after the reserve) is not worth starting for. */
#define MIN_FIT_CONNECTIONS 16

/* T_FIRST: waiting for (the rest of) the first request head; T_HEAD: the same for a later request
 * on a keep-alive connection; T_REQUEST: a body under way. All three end in 408. */
enum { T_NONE, T_FIRST, T_HEAD, T_REQUEST, T_IDLE, T_WRITE, T_LINGER, T_UP };

/* Connections from one client address. Exists while conns > 0. */
typedef struct addr_entry addr_entry;
struct addr_entry {
    addr_entry *next;      /* bucket chain */
    unsigned char key[16]; /* IPv4 as ::ffff:a.b.c.d; IPv6: the /64 prefix, then zeros */
    size_t conns, pending;
};

/* A refusal kind that is logged at most once per LOG_INTERVAL_MS. */
typedef struct rate_log {
    uint64_t logged_at;      /* loop time; 0: never */
    size_t count;            /* refusals not reported yet */
    const char *what, *hint; /* static */
} rate_log;

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
    /* TLS (tls.h): the session, and the ciphertext of its one write in flight (treq). */
    sl__tls *tls;
    uv_write_t treq;
    char *cbuf;
    size_t ccap;
    unsigned tls_writing : 1, shut_wait : 1;
    sl_http_upgrade_fns fns; /* the new owner, once upgraded */
    void *up_ud;
    addr_entry *addr; /* NULL for connections being refused */
    int pending;      /* counted in addr->pending (see pending_update) */
    char remote[64];
};

struct sl_http_server {
    uv_loop_t *loop;
    uv_poll_t listener; /* readiness of lfd */
    uv_timer_t pause;   /* resumes accepting after ACCEPT_PAUSE_MS */
    int lfd, spare_fd;  /* the listening socket; the descriptor given up to refuse (-1: none) */
    int listening;
    int closed;
    int port;
    sl_http_limits lim;
    sl_http_handler_fn handler;
    void *ud;
    conn *conns;
    size_t nconns, nrejecting;
    int busy; /* near max_connections: heads get busy_header_timeout_ms */
    addr_entry **buckets;
    size_t nbuckets, naddrs;
    uint64_t hkey[4]; /* random: the address hash's key */
    sl_http_log_fn log;
    void *log_ud;
    sl_http_refused_fn refused;
    void *refused_ud;
    rate_log log_fds, log_max, log_addr, log_pending;
    time_t date_sec;
    size_t date_len;
    char date[64];    /* "Date: ...\r\n" for date_sec */
    sl__tls_ctx *tls; /* NULL: plaintext; else for connections accepted from now on */
    int tls_client;   /* SL__TLS_CLIENT_* */
    unsigned accept;  /* SL_AUTHN_KIND_* put on every request */
    char rbuf[READ_BUF_SIZE];
    char pbuf[READ_BUF_SIZE]; /* plaintext decrypted from what was read into rbuf */
    char obuf[READ_BUF_SIZE]; /* ciphertext on its way to a socket */
};

void sl_http_limits_init(sl_http_limits *l)
{
    l->max_body = 1024 * 1024;
    l->max_header = 16 * 1024;
    l->request_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->max_connections = 10000;
    l->max_connections_per_address = 0;
    l->max_pending_per_address = 64;
    l->busy_header_timeout_ms = 2000;
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

/* ---- operational log --------------------------------------------------------------------------
 */

static void report_refusals(sl_http_server *s, rate_log *r)
{
    char line[320];
    snprintf(line, sizeof line, "%s: %zu connection(s) refused with 503 since the last report; %s",
             r->what, r->count, r->hint);
    s->log(s->log_ud, line);
    r->count = 0;
    uint64_t now = uv_now(s->loop);
    r->logged_at = now ? now : 1;
}

/* Counts one refusal of a kind; logs the first, then at most once per LOG_INTERVAL_MS with how many
 * there were since the last line (the rest when the server closes). */
static void note_refusal(sl_http_server *s, rate_log *r, const char *what, const char *hint)
{
    r->count++;
    r->what = what;
    r->hint = hint;
    uint64_t now = uv_now(s->loop);
    if (s->log != NULL && (r->logged_at == 0 || now - r->logged_at >= LOG_INTERVAL_MS))
        report_refusals(s, r);
}

/* ---- per-address accounting --------------------------------------------------------------------
 */

static void addr_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0)
            memcpy(key, a, 16); /* IPv4 through an IPv6 socket: the same client */
        else
            memcpy(key, a, 8); /* one /64 is what a single client is usually given */
    }
}

/* A keyed multiply-add hash (NH) over the key's four 32-bit words: without the random key a remote
 * party cannot choose addresses that collide. */
static size_t addr_hash(const sl_http_server *s, const unsigned char key[16])
{
    uint32_t w[4];
    memcpy(w, key, 16);
    uint64_t h = ((uint64_t)(uint32_t)(w[0] + (uint32_t)s->hkey[0]) *
                  (uint32_t)(w[1] + (uint32_t)s->hkey[1])) +
                 ((uint64_t)(uint32_t)(w[2] + (uint32_t)s->hkey[2]) *
                  (uint32_t)(w[3] + (uint32_t)s->hkey[3]));
    h ^= h >> 29;
    h *= s->hkey[0] >> 32 | 1;
    h ^= h >> 32;
    return (size_t)(h & (s->nbuckets - 1));
}

static addr_entry *addr_find(const sl_http_server *s, const unsigned char key[16])
{
    if (s->nbuckets == 0)
        return NULL;
    for (addr_entry *e = s->buckets[addr_hash(s, key)]; e != NULL; e = e->next)
        if (memcmp(e->key, key, 16) == 0)
            return e;
    return NULL;
}

static int addr_grow(sl_http_server *s)
{
    size_t n = s->nbuckets ? s->nbuckets * 2 : 64;
    addr_entry **nb = calloc(n, sizeof *nb);
    if (nb == NULL)
        return -1;
    addr_entry **old = s->buckets;
    size_t oldn = s->nbuckets;
    s->buckets = nb;
    s->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (addr_entry *e = old[i], *next; e != NULL; e = next) {
            next = e->next;
            size_t h = addr_hash(s, e->key);
            e->next = nb[h];
            nb[h] = e;
        }
    }
    free(old);
    return 0;
}

/* The entry for key, created with zero counts. NULL: out of memory. */
static addr_entry *addr_get(sl_http_server *s, const unsigned char key[16])
{
    addr_entry *e = addr_find(s, key);
    if (e != NULL)
        return e;
    if (s->naddrs >= s->nbuckets && addr_grow(s) != 0)
        return NULL;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, 16);
    size_t h = addr_hash(s, key);
    e->next = s->buckets[h];
    s->buckets[h] = e;
    s->naddrs++;
    return e;
}

static void addr_drop(sl_http_server *s, addr_entry *e)
{
    addr_entry **pp = &s->buckets[addr_hash(s, e->key)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    s->naddrs--;
    free(e);
}

/* Keeps c's "in its headers" count in line: a connection that has not sent a complete request head
 * since it was accepted or last answered, and is not otherwise busy. */
static void pending_update(conn *c)
{
    int now = !c->closing && !c->lingering && !c->upgraded && !c->in_flight && !c->writing &&
              !c->eof &&
              (sl__http_parser_in_head(&c->parser) ||
               (!c->served && !sl__http_parser_in_message(&c->parser)));
    if (now == c->pending || c->addr == NULL)
        return;
    c->pending = now;
    addr_entry *e = c->addr;
    if (now) {
        e->pending++;
        return;
    }
    e->pending--;
}

/* ---- connection lifetime --------------------------------------------------------------------- */

static void conn_free(conn *c)
{
    sl__tls_free(c->tls);
    free(c->cbuf);
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
    if (c->addr != NULL) {
        pending_update(c);
        if (--c->addr->conns == 0)
            addr_drop(s, c->addr);
        c->addr = NULL;
    }
    if (s->busy && s->nconns < s->lim.max_connections / 2)
        s->busy = 0;
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

/* How long a connection may take over its request head: shorter while the server is near its
 * connection limit, so slow heads cannot hold the last slots. */
static unsigned head_ms(const sl_http_server *s)
{
    const sl_http_limits *l = &s->lim;
    unsigned busy = l->busy_header_timeout_ms;
    if (s->busy && busy > 0 && (l->request_timeout_ms == 0 || busy < l->request_timeout_ms))
        return busy;
    return l->request_timeout_ms;
}

static unsigned mode_ms(const conn *c, int mode)
{
    const sl_http_limits *l = &c->srv->lim;
    switch (mode) {
    case T_FIRST:
    case T_HEAD:
        return head_ms(c->srv);
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

/* Called as connections are added: at 3/4 of max_connections the server is busy (until it falls
 * below half, see conn_close), and heads get the short timeout, those under way included. */
static void busy_check(sl_http_server *s)
{
    const sl_http_limits *l = &s->lim;
    if (s->busy || l->max_connections == 0 || l->busy_header_timeout_ms == 0 ||
        s->nconns < l->max_connections - l->max_connections / 4)
        return;
    s->busy = 1;
    unsigned ms = head_ms(s);
    uint64_t due = uv_now(s->loop) + ms;
    for (conn *c = s->conns; c != NULL; c = c->next) {
        if ((c->tmode != T_FIRST && c->tmode != T_HEAD) || c->closing || c->lingering ||
            (c->deadline != 0 && c->deadline <= due))
            continue;
        c->deadline = due;
        if (!c->timer_armed || c->timer_due > due) {
            uv_timer_start(&c->timer, on_timer, ms, 0);
            c->timer_armed = 1;
            c->timer_due = due;
        }
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
        d = sl__put_uint(d, body_len);
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

/* ---- TLS: ciphertext out ------------------------------------------------------------------
 * A TLS connection writes plaintext into its session (which encrypts all of it at once) and then
 * sends whatever ciphertext is waiting, handshake messages and alerts included, with at most one
 * uv_write of its own in flight (treq). c->writing then means "the plaintext handed over is not
 * all in the kernel yet", and ends in tls_drained. */

static int tls_flush(conn *c);
static void up_written(conn *c, int status);

/* Everything written so far is in the kernel. */
static void tls_drained(conn *c)
{
    if (c->shut_wait) { /* lingering: the close_notify is out, now the FIN */
        c->shut_wait = 0;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, NULL) != 0)
            conn_close(c);
        return;
    }
    if (!c->writing)
        return;
    c->writing = 0;
    if (c->upgraded)
        up_written(c, 0);
    else
        write_done(c, 0);
}

static void on_tls_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->tls_writing = 0;
    if (c->closing)
        return;
    if (c->ccap > WBUF_KEEP) {
        free(c->cbuf);
        c->cbuf = NULL;
        c->ccap = 0;
    }
    int r = status < 0 ? -1 : tls_flush(c);
    if (r < 0)
        conn_close(c);
    else if (r > 0)
        tls_drained(c);
}

/* Sends the ciphertext the session has waiting: what the socket takes now straight from the
 * server's buffer, the rest with one uv_write from the connection's own. Returns 1 when all of it
 * is in the kernel, 0 when a write is under way (tls_drained follows), -1 on error. */
static int tls_flush(conn *c)
{
    if (c->tls_writing)
        return 0;
    char *buf = c->srv->obuf;
    for (;;) {
        size_t n = sl__tls_take(c->tls, buf, READ_BUF_SIZE);
        if (n == 0)
            return 1;
        uv_buf_t b = uv_buf_init(buf, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS)
            return -1;
        if (w < 0)
            w = 0;
        if ((size_t)w == n) {
            if (n < READ_BUF_SIZE) /* take gave all there was */
                return 1;
            continue;
        }
        size_t rest = n - (size_t)w, more = sl__tls_pending(c->tls), need = rest + more;
        if (need > c->ccap) {
            char *nb = realloc(c->cbuf, need);
            if (nb == NULL)
                return -1;
            c->cbuf = nb;
            c->ccap = need;
        }
        memcpy(c->cbuf, buf + w, rest);
        if (more > 0)
            sl__tls_take(c->tls, c->cbuf + rest, more);
        b = uv_buf_init(c->cbuf, (unsigned)need);
        if (uv_write(&c->treq, (uv_stream_t *)&c->tcp, &b, 1, on_tls_write) < 0)
            return -1;
        c->tls_writing = 1;
        return 0;
    }
}

/* Encrypts data and sends it: 1 all in the kernel, 0 under way (tls_drained follows), -1 error.
 * Either way data has been consumed. */
static int tls_send(conn *c, const char *data, size_t len)
{
    if (sl__tls_write(c->tls, data, len) != SL_OK)
        return -1;
    return tls_flush(c);
}

/* Sends c->wbuf[0..len). Most responses fit the socket buffer: try that first and only queue a
 * uv_write (with its callback one loop iteration later) for what is left. */
static void conn_send(conn *c, size_t len, int close_after)
{
    c->close_after_write = close_after;
    if (c->tls != NULL) {
        int r = tls_send(c, c->wbuf, len);
        if (r != 0) {
            write_done(c, r < 0 ? UV_EIO : 0);
            return;
        }
        c->writing = 1;
        set_mode(c, T_WRITE);
        return;
    }
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
    /* A TLS client that has not completed its handshake cannot read an answer (and one being
     * refused is not worth a handshake): just go. */
    if (c->tls != NULL ? !sl__tls_established(c->tls) : c->srv->tls != NULL) {
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
    const char *extra = status == 503 ? "Retry-After: 1\r\n" : NULL;
    char id[72] = "", idh[96];
    if (status != 503 && c->srv->refused != NULL) {
        sl_http_refusal r = {status, name, message, c->remote, (size_t)blen};
        c->srv->refused(c->srv->refused_ud, &r, id, sizeof id);
        id[sizeof id - 1] = '\0';
        if (id[0] != '\0' && strcspn(id, "\r\n") == strlen(id)) {
            snprintf(idh, sizeof idh, "X-Request-Id: %s\r\n", id);
            extra = idh;
        }
    }
    if (build(c, c->srv, status, extra, "application/json", body, (size_t)blen, 0, &n) != 0) {
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
    if (c->tls != NULL) { /* queued with the session's ciphertext, ahead of the response */
        if (tls_send(c, CONTINUE, sizeof CONTINUE - 1) < 0)
            conn_close(c);
        return;
    }
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
    c->req.tls = c->tls != NULL;
    c->req.peer = c->tls != NULL ? sl__tls_peer(c->tls) : NULL;
    c->req.accept = s->accept;
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
    if (c->closing)
        return;
    pending_update(c);
    if (c->lingering)
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
    else if (sl__http_parser_in_head(&c->parser)) /* T_FIRST: the first bytes do not restart it */
        mode = c->served ? T_HEAD : T_FIRST;
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
    pending_update(c);
    c->pend_len = 0;
    if (c->eof) {
        conn_close(c);
        return;
    }
    if (c->tls != NULL) { /* close_notify first; the FIN once it is out (tls_drained) */
        sl__tls_close_notify(c->tls);
        int r = tls_flush(c);
        if (r < 0) {
            conn_close(c);
            return;
        }
        c->shut_wait = r == 0;
    }
    if (!c->shut_wait && uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, NULL) != 0) {
        conn_close(c);
        return;
    }
    read_set(c, 1);
    set_mode(c, T_LINGER);
}

/* ---- TLS: ciphertext in ------------------------------------------------------------------- */

static void on_plain(conn *c, char *data, size_t n);

/* What was read goes into the session; the handshake advances and whatever it decrypts goes on as
 * if it had been read. What the session has to say (handshake, tickets, alerts) goes out. A failed
 * handshake ends the connection; its timeout is the one for a first request (T_FIRST). */
static void tls_read(conn *c, const char *data, size_t n)
{
    sl_http_server *s = c->srv;
    if (sl__tls_feed(c->tls, data, n) != SL_OK) {
        conn_close(c);
        return;
    }
    for (;;) {
        long r = sl__tls_read(c->tls, s->pbuf, sizeof s->pbuf);
        if (r > 0) {
            on_plain(c, s->pbuf, (size_t)r);
            if (c->closing || c->lingering)
                return;
            if (!sl__tls_has_input(c->tls))
                break;
            continue;
        }
        if (r == 0)
            break;
        if (r == SL__TLS_EOF) { /* close_notify: as good as a FIN */
            c->eof = 1;
            read_set(c, 0);
            break;
        }
        (void)tls_flush(c); /* the alert, if the socket takes it */
        conn_close(c);
        return;
    }
    if (tls_flush(c) < 0) {
        conn_close(c);
        return;
    }
    settle(c);
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
    if (c->tls != NULL)
        tls_read(c, b->base, (size_t)nread);
    else
        on_plain(c, b->base, (size_t)nread);
}

/* Bytes of the HTTP stream (as read, or as decrypted): to the new owner once upgraded, else to the
 * assembler, or aside while a request is being answered. */
static void on_plain(conn *c, char *data, size_t n)
{
    if (c->upgraded) {
        up_flush_pend(c); /* bytes read with the request come first */
        if (!c->closing && !c->lingering)
            c->fns.on_data(c->up_ud, data, n);
        return;
    }
    if (c->pend_len == 0 && !c->in_flight && !c->writing) {
        size_t used = drive(c, data, n);
        if (used < n && !c->closing && !c->lingering && pend_append(c, data + used, n - used))
            conn_close(c);
    } else if (pend_append(c, data, n) != 0) {
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
    case T_HEAD:
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
    if (!c->closing)
        up_written(c, status);
}

/* The owner's write is all in the kernel (or failed). */
static void up_written(conn *c, int status)
{
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
    if (c->tls != NULL) {
        int r = tls_send(c, data, len);
        if (r < 0)
            return SL_EIO;
        free(c->wbuf); /* encrypted: nothing to keep (data may have been wbuf) */
        c->wbuf = NULL;
        c->wcap = 0;
        c->writing = r == 0;
        return (long)len;
    }
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
    pending_update(c);
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
    if (c->tls != NULL) { /* encrypted into the session's output: the plaintext is done with */
        long r = up_write(c, buf, len);
        if (r == (long)len)
            free(buf);
        return r;
    }
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

long sl_http_upgraded_writev(sl_http_upgraded *u, const uv_buf_t *bufs, unsigned n, int *held)
{
    conn *c = (conn *)u;
    *held = 0;
    if (c == NULL || bufs == NULL || n == 0)
        return SL_EINVAL;
    if (c->closing || c->lingering || c->close_after_write)
        return SL_EIO;
    if (c->writing)
        return 0;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (c->tls != NULL) { /* encrypted into the session's output: the plaintext is done with */
        for (unsigned i = 0; i < n; i++)
            if (bufs[i].len > 0 && sl__tls_write(c->tls, bufs[i].base, bufs[i].len) != SL_OK)
                return SL_EIO;
        int r = tls_flush(c);
        if (r < 0)
            return SL_EIO;
        c->writing = r == 0;
        return (long)total;
    }
    int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS)
        return SL_EIO;
    size_t done = w < 0 ? 0 : (size_t)w;
    if (done == total)
        return (long)total;
    /* The rest goes from the caller's buffers, which it keeps until on_drain. */
    unsigned i = 0;
    while (done >= bufs[i].len) {
        done -= bufs[i].len;
        i++;
    }
    uv_buf_t stack[64], *rest = n - i <= 64 ? stack : malloc((n - i) * sizeof *rest);
    if (rest == NULL)
        return SL_ENOMEM;
    for (unsigned k = i; k < n; k++)
        rest[k - i] = bufs[k];
    rest[0].base += done;
    rest[0].len -= done;
    int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, rest, n - i, on_up_write);
    if (rest != stack)
        free(rest); /* uv_write copied the array (not the bytes) */
    if (r < 0)
        return SL_EIO;
    c->writing = 1;
    *held = 1;
    return (long)total;
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

static void peer_name(conn *c, const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(c->remote, sizeof c->remote, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Which limit, if any, refuses a new connection from key (before it is counted). */
static rate_log *refusal(sl_http_server *s, const unsigned char key[16], const char **what,
                         const char **hint)
{
    const sl_http_limits *l = &s->lim;
    if (l->max_connections > 0 && s->nconns >= l->max_connections) {
        *what = "max_connections reached";
        *hint = "raise max_connections (and the open-file limit) if this is legitimate load";
        return &s->log_max;
    }
    const addr_entry *e = addr_find(s, key);
    if (e == NULL)
        return NULL;
    if (l->max_connections_per_address > 0 && e->conns >= l->max_connections_per_address) {
        *what = "max_connections_per_address reached";
        *hint = "one client address holds that many connections (behind a proxy, raise or unset "
                "max_connections_per_address)";
        return &s->log_addr;
    }
    return NULL;
}

/* Takes an accepted socket: a new connection, or one that is answered 503 and closed. */
static void accept_conn(sl_http_server *s, int fd, const struct sockaddr_storage *ss)
{
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c->wreq.data = c->creq.data = c->sreq.data = c;
    c->refs = 2;
    c->srv = s;
    c->treq.data = c;
    c->tmode = T_NONE;
    sl__http_parser_init(&c->parser, s->lim.max_body, s->lim.max_header);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    unsigned char key[16];
    addr_key(ss, key);
    const char *what = NULL, *hint = NULL;
    rate_log *refused = refusal(s, key, &what, &hint);
    if (refused == NULL && (c->addr = addr_get(s, key)) == NULL)
        refused = &s->log_max; /* out of memory: treat as full */
    if (refused != NULL) {
        c->rejected = 1;
        s->nrejecting++;
    } else {
        s->nconns++;
        c->addr->conns++;
        c->addr->pending++;
        c->pending = 1;
    }
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        conn_close(c);
        return;
    }
    if (refused != NULL) {
        note_refusal(s, refused, what ? what : "out of memory", hint ? hint : "");
        if (s->nrejecting > MAX_REJECTING)
            conn_close(c);
        else
            conn_fail(c, 503, sl_err_name(SL_EUNAVAIL), "too many connections");
        return;
    }
    if (s->tls != NULL && sl__tls_new(&c->tls, s->tls, s->tls_client) != SL_OK) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c, ss);
    if (!s->busy)
        busy_check(s);
    /* Read what has already arrived before deciding whether the connection is still in its
     * headers: a burst of clients whose requests are on their way is not a slowloris. */
    ssize_t n = recv(fd, s->rbuf, sizeof s->rbuf, 0);
    if (n >= 0) {
        uv_buf_t b = uv_buf_init(s->rbuf, (unsigned)n);
        on_read((uv_stream_t *)&c->tcp, n > 0 ? n : UV_EOF, &b);
    }
    if (!c->closing && c->pending && s->lim.max_pending_per_address > 0 &&
        c->addr->pending > s->lim.max_pending_per_address) {
        note_refusal(s, &s->log_pending, "max_pending_per_address reached",
                     "one client address holds that many connections without a complete request "
                     "head (slowloris?)");
        /* From here on it is one of the connections being refused: it holds no slot of
         * max_connections or of its address while its answer goes out. */
        c->pending = 0;
        c->addr->pending--;
        if (--c->addr->conns == 0)
            addr_drop(s, c->addr);
        c->addr = NULL;
        s->nconns--;
        c->rejected = 1;
        s->nrejecting++;
        if (s->nrejecting > MAX_REJECTING)
            conn_close(c);
        else
            conn_fail(c, 503, sl_err_name(SL_EUNAVAIL), "too many connections");
        return;
    }
    settle(c);
}

/* Out of descriptors: the connection at the head of the backlog is taken with the spare descriptor,
 * told 503 and closed, and the spare taken back. The answer is written straight away on the
 * blocking socket's empty send buffer (MSG_DONTWAIT: never waits); whatever the client already
 * sent is read first so that closing does not turn into a reset that could destroy the answer.
 * Returns 0 if accepting may go on, 1 if the backlog is empty (the kernel says EMFILE before it
 * looks at the backlog), -1 if accepting should pause. */
static int refuse_without_fd(sl_http_server *s)
{
    if (s->spare_fd >= 0) {
        close(s->spare_fd);
        s->spare_fd = -1;
    }
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    int drained = fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (fd >= 0) {
        char sink[4096], msg[512];
        for (int i = 0; i < 4 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
            ;
        static const char body[] =
            "{\"error\":\"unavailable\",\"message\":\"too many connections\"}";
        size_t dlen;
        const char *date = date_line(s, &dlen);
        int n = snprintf(msg, sizeof msg,
                         "HTTP/1.1 503 Service Unavailable\r\nServer: sluice\r\n%.*sContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n"
                         "Retry-After: 1\r\n\r\n%s",
                         (int)dlen, date, sizeof body - 1, body);
        if (n > 0 && (size_t)n < sizeof msg && s->tls == NULL) /* TLS: no handshake for this */
            (void)!send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        close(fd);
        note_refusal(s, &s->log_fds, "out of file descriptors",
                     "raise the open-file limit (ulimit -n) or lower max_connections");
    }
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s->spare_fd < 0)
        return -1;
    return drained ? 1 : fd >= 0 ? 0 : -1;
}

static void on_listen_ready(uv_poll_t *h, int status, int events);

static void on_pause_over(uv_timer_t *t)
{
    sl_http_server *s = t->data;
    if (!s->closed)
        uv_poll_start(&s->listener, UV_READABLE, on_listen_ready);
}

/* Stops accepting for a moment: connections wait in the kernel's backlog meanwhile. */
static void pause_accepting(sl_http_server *s)
{
    uv_poll_stop(&s->listener);
    uv_timer_start(&s->pause, on_pause_over, ACCEPT_PAUSE_MS, 0);
}

static void on_listen_ready(uv_poll_t *h, int status, int events)
{
    sl_http_server *s = h->data;
    if (s->closed)
        return;
    if (status < 0) {
        pause_accepting(s);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t slen = sizeof ss;
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_conn(s, fd, &ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        int r = errno == EMFILE || errno == ENFILE ? refuse_without_fd(s) : -1;
        if (r == 0)
            continue;
        if (r < 0)
            pause_accepting(s); /* ENOBUFS, ENOMEM, or not even the spare descriptor */
        return;
    }
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
    s->lfd = s->spare_fd = -1;
    /* The address hash's key: only needs to be unknown to clients, so a failure (no entropy yet)
     * falls back to something that at least differs per process and start. */
    if (uv_random(NULL, NULL, s->hkey, sizeof s->hkey, 0, NULL) != 0) {
        s->hkey[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)s;
        s->hkey[1] = s->hkey[0] * 0xbf58476d1ce4e5b9ULL;
        s->hkey[2] = (uint64_t)getpid() * 0x94d049bb133111ebULL;
        s->hkey[3] = s->hkey[1] ^ s->hkey[2];
    }
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
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        uv_poll_init(s->loop, &s->listener, fd) != 0) {
        close(fd);
        return SL_EIO;
    }
    uv_timer_init(s->loop, &s->pause);
    s->listener.data = s->pause.data = s;
    s->lfd = fd;
    s->listening = 1; /* from here on the handles exist and sl_http_server_close must close them */
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (uv_poll_start(&s->listener, UV_READABLE, on_listen_ready) != 0)
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

int sl_http_server_set_tls(sl_http_server *s, struct sl__tls_ctx *tls, int client)
{
    if (s == NULL || (client != SL__TLS_CLIENT_NONE && !sl__tls_ctx_has_client_ca(tls)))
        return SL_EINVAL;
    sl__tls_ctx_ref(tls);
    sl__tls_ctx_unref(s->tls);
    s->tls = tls;
    s->tls_client = client;
    return SL_OK;
}

void sl_http_server_set_accept(sl_http_server *s, unsigned accept)
{
    if (s != NULL)
        s->accept = accept;
}

void sl_http_server_set_log(sl_http_server *s, sl_http_log_fn log, void *ud)
{
    if (s != NULL) {
        s->log = log;
        s->log_ud = ud;
    }
}

void sl_http_server_set_refused(sl_http_server *s, sl_http_refused_fn fn, void *ud)
{
    if (s != NULL) {
        s->refused = fn;
        s->refused_ud = ud;
    }
}

void sl_http_server_close(sl_http_server *s)
{
    if (s == NULL || s->closed)
        return;
    s->closed = 1;
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener)) {
        uv_close((uv_handle_t *)&s->listener, NULL); /* takes lfd out of the poll set */
        uv_close((uv_handle_t *)&s->pause, NULL);
        close(s->lfd);
        s->lfd = -1;
    }
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    s->spare_fd = -1;
    while (s->conns != NULL)
        conn_close(s->conns);
    rate_log *logs[] = {&s->log_fds, &s->log_max, &s->log_addr, &s->log_pending};
    for (size_t i = 0; i < sizeof logs / sizeof logs[0]; i++)
        if (logs[i]->count > 0 && s->log != NULL)
            report_refusals(s, logs[i]);
}

void sl_http_server_free(sl_http_server *s)
{
    if (s == NULL)
        return;
    if (s->spare_fd >= 0) /* never closed (it never listened) */
        close(s->spare_fd);
    free(s->buckets); /* every entry went with its last connection */
    sl__tls_ctx_unref(s->tls);
    free(s);
}

int sl_http_fit_fd_limit(sl_http_limits *lim, sl_http_log_fn log, void *ud, sl_status *st)
{
    struct rlimit rl;
    if (lim == NULL || getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return SL_OK; /* nothing to go by: carry on as configured */
    char line[320];
    rlim_t need = lim->max_connections > 0 ? (rlim_t)lim->max_connections + SL_HTTP_FD_RESERVE
                                           : rl.rlim_max; /* no limit: as many as allowed */
    if (rl.rlim_cur != RLIM_INFINITY && (need == RLIM_INFINITY || rl.rlim_cur < need)) {
        rlim_t want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
        struct rlimit nl = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (want != RLIM_INFINITY && want > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &nl) == 0) {
            if (log != NULL) {
                snprintf(line, sizeof line, "raised the open-file limit from %llu to %llu",
                         (unsigned long long)rl.rlim_cur, (unsigned long long)want);
                log(ud, line);
            }
            rl.rlim_cur = want;
        }
    }
    if (lim->max_connections == 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return SL_OK;
    if (rl.rlim_cur < SL_HTTP_FD_RESERVE + MIN_FIT_CONNECTIONS)
        return sl_status_set(st, SL_ECONFIG,
                             "the open-file limit (%llu, hard limit %llu) leaves no room for "
                             "connections: at least %d are needed (%d are kept for other uses); "
                             "raise it (ulimit -n)",
                             (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                             SL_HTTP_FD_RESERVE + MIN_FIT_CONNECTIONS, SL_HTTP_FD_RESERVE);
    size_t fit = (size_t)(rl.rlim_cur - SL_HTTP_FD_RESERVE);
    if (log != NULL) {
        snprintf(line, sizeof line,
                 "max_connections lowered from %zu to %zu: the open-file limit is %llu (hard "
                 "limit %llu) and %d descriptors are kept for other uses; raise the hard limit "
                 "to allow more",
                 lim->max_connections, fit, (unsigned long long)rl.rlim_cur,
                 (unsigned long long)rl.rlim_max, SL_HTTP_FD_RESERVE);
        log(ud, line);
    }
    lim->max_connections = fit;
    return SL_OK;
}
