/* What the HTTP server's files share: http.c (a connection: lifetime, timers, reading and parsing),
 * http_response.c (answers: building and writing them), http_tls.c (a TLS connection's
 * ciphertext), http_server.c (the server object, accepting, per-address accounting) and
 * http_upgrade.c (upgraded connections). The connection and server structs, and the functions that
 * one of them calls in another. Nothing here is public API. */
#ifndef SLUICE_NET_HTTP_INTERNAL_H
#define SLUICE_NET_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <uv.h>

#include "net/http.h"
#include "net/http_parser.h"
#include "net/tls.h"

#define READ_BUF_SIZE (64 * 1024)
/* A connection's write buffer (or ciphertext buffer) larger than this is freed once written. */
#define WBUF_KEEP (64 * 1024)
/* How long we keep draining a client's bytes after an error response before giving up on it:
 * closing with unread bytes makes the kernel send RST, which can destroy the response in flight. */
#define LINGER_MS 2000

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
    sl_http_server *srv; /* NULL once closing: the server may be gone before the handler answers */
    conn *prev, *next;
    sl__http_parser parser;
    sl_http_request req; /* remote_addr set once at accept, the rest for each request */
    char *pend;          /* read but not yet parsed */
    size_t pend_len, pend_cap;
    char *wbuf;
    size_t wcap;
    uint64_t deadline;  /* loop time at which the current timer mode expires; 0: never */
    uint64_t timer_due; /* when the armed timer fires (it may fire early and re-arm) */
    size_t wq_mark;     /* T_WRITE: bytes still queued when the deadline was last set */
    int tmode;
    int refs;
    unsigned in_flight : 1, writing : 1, closing : 1, lingering : 1, eof : 1, reading : 1,
        in_drive : 1, rejected : 1, timer_armed : 1, close_after_write : 1, head : 1, served : 1,
        upgraded : 1, up_notified : 1, up_paused : 1;
    /* TLS (tls.h): the session, and the ciphertext of its one write in flight (treq, made with
     * the session: an idle plain connection does not carry it, docs/WEBSOCKET.md "Memory"). */
    sl__tls *tls;
    uv_write_t *treq;
    char *cbuf;
    size_t ccap;
    unsigned tls_writing : 1, shut_wait : 1;
    sl_http_upgrade_fns fns; /* the new owner, once upgraded */
    void *up_ud;
    addr_entry *addr; /* NULL for connections being refused */
    int pending;      /* counted in addr->pending (see sl__http_pending_update) */
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

/* ---- http.c: a connection ------------------------------------------------------------------ */

/* Keeps c's "in its headers" count (addr->pending) in line with its state. */
void sl__http_pending_update(conn *c);
/* Frees c and what it owns; its handles are closed and its last reference gone. */
void sl__http_conn_free(conn *c);
/* Drops a reference; the last one frees c. Inline: every answer drops the handler's. */
static inline void sl__http_conn_unref(conn *c)
{
    if (--c->refs == 0)
        sl__http_conn_free(c);
}
/* Closes at once: c leaves the server's list and counts, its handles close. */
void sl__http_conn_close(conn *c);
/* Sends c's FIN with a shutdown request of its own, made now (a lingering close is rare: an idle
 * connection does not carry one) and freed by its callback. 0 or a libuv error. */
int sl__http_shutdown(conn *c);
/* Ends c after its answer: shutdown (close_notify first on TLS), then drains for LINGER_MS. */
void sl__http_conn_linger(conn *c);
/* Brings reading and the timer in line with the connection's state after anything happened. */
void sl__http_settle(conn *c);
/* Carries on with buffered bytes once nothing blocks them any more (after an answer). */
void sl__http_conn_kick(conn *c);
void sl__http_read_set(conn *c, int on);
/* libuv's read callback of every connection. */
void sl__http_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);
/* Bytes of the HTTP stream, as read or as decrypted: to the assembler, or aside while a request
 * is being answered, or to the new owner once upgraded. */
void sl__http_on_plain(conn *c, char *data, size_t n);
/* The connection's one timer, whatever its mode. */
void sl__http_on_timer(uv_timer_t *t);
/* Called as connections are added: heads get the short timeout near max_connections. */
void sl__http_busy_check(sl_http_server *s);

/* ---- http.c: the timer's modes ------------------------------------------------------------ */

/* Inline: every request switches its connection's mode, from http.c and http_response.c. */

/* How long a connection may take over its request head: shorter while the server is near its
 * connection limit, so slow heads cannot hold the last slots. */
static inline unsigned sl__http_head_ms(const sl_http_server *s)
{
    const sl_http_limits *l = &s->lim;
    unsigned busy = l->busy_header_timeout_ms;
    if (s->busy && busy > 0 && (l->request_timeout_ms == 0 || busy < l->request_timeout_ms))
        return busy;
    return l->request_timeout_ms;
}

static inline unsigned sl__http_mode_ms(const conn *c, int mode)
{
    const sl_http_limits *l = &c->srv->lim;
    switch (mode) {
    case T_FIRST:
    case T_HEAD:
        return sl__http_head_ms(c->srv);
    case T_REQUEST:
        return l->request_timeout_ms;
    case T_IDLE:
    case T_WRITE: /* a client that stops reading our answer (on_timer) is as good as idle */
        return l->idle_timeout_ms;
    case T_LINGER:
        return LINGER_MS;
    }
    return 0;
}

/* Switches the meaning of the connection's timer. The uv timer itself is only restarted when it
 * would fire too late: under keep-alive load deadlines only move forward, and an early expiry just
 * re-arms, so the hot path does not touch the timer heap. */
static inline void sl__http_set_mode(conn *c, int mode)
{
    if (mode == c->tmode)
        return;
    c->tmode = mode;
    unsigned ms = sl__http_mode_ms(c, mode);
    if (ms == 0) {
        c->deadline = 0;
        return;
    }
    uint64_t now = uv_now(c->timer.loop);
    c->deadline = now + ms;
    if (mode == T_WRITE)
        c->wq_mark = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (!c->timer_armed || c->timer_due > c->deadline) {
        uv_timer_start(&c->timer, sl__http_on_timer, ms, 0);
        c->timer_armed = 1;
        c->timer_due = c->deadline;
    }
}

/* ---- http_response.c: answers ------------------------------------------------------------- */

/* Answers with a JSON error and closes once it has been written. */
void sl__http_conn_fail(conn *c, int status, const char *name, const char *message);
/* Grows c->wbuf to at least need bytes. 0, or -1 when out of memory. */
int sl__http_wreserve(conn *c, size_t need);
/* "Date: ...\r\n" for now, in the server's buffer (*len bytes; 0 if it could not be made). */
const char *sl__http_date_line(sl_http_server *s, size_t *len);
/* Copies n bytes to d; returns d + n. */
char *sl__http_put(char *d, const char *s, size_t n);
#define PUT_LIT(d, lit) sl__http_put((d), (lit), sizeof(lit) - 1)
/* A response (all of c->wbuf) is in the kernel, or status < 0 its write failed: linger, close, or
 * carry on with buffered requests. */
void sl__http_write_done(conn *c, int status);
/* Sends the interim "100 Continue" the client's Expect asked for, ahead of the response. */
void sl__http_send_continue(conn *c);

/* ---- http_tls.c: TLS ------------------------------------------------------------------------ */

/* TLS: feeds what was read to the session and goes on with what it decrypts. */
void sl__http_tls_read(conn *c, const char *data, size_t n);
/* TLS: sends the ciphertext waiting in the session. 1 all in the kernel, 0 a write under way,
 * -1 error. */
int sl__http_tls_flush(conn *c);
/* TLS: encrypts data and sends it, as sl__http_tls_flush; data has been consumed either way. */
int sl__http_tls_send(conn *c, const char *data, size_t len);

/* ---- http_server.c ------------------------------------------------------------------------- */

/* Forgets an address entry whose last connection went. */
void sl__http_addr_drop(sl_http_server *s, addr_entry *e);

/* ---- http_upgrade.c: upgraded connections -------------------------------------------------- */

/* Hands bytes read with the request (c->pend) to the owner. */
void sl__http_up_flush_pend(conn *c);
/* The owner's write is all in the kernel (or failed, status < 0). */
void sl__http_up_written(conn *c, int status);

#endif
