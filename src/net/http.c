/* The HTTP/1.1 server of http.h on libuv: its connections (http_server.c accepts them,
 * http_response.c answers their requests, http_upgrade.c serves them once upgraded). Each
 * connection owns an assembler (http_parser.c), a buffer for bytes read but not yet parsed (only
 * needed while a request is being answered or the previous response is still being written), one
 * reusable response buffer, and one timer whose meaning follows the connection's state: waiting for
 * a first request, a request under way, idle keep-alive, a response stuck in the socket, or
 * lingering after an error. Requests are handed to the handler one at a time; parsing resumes after
 * the response has been handed to the kernel, which keeps pipelined answers in order and gives
 * natural backpressure. A handler may instead take the connection over (sl_http_upgrade): the
 * assembler is freed, bytes go straight to the new owner and the timer only serves the owner's
 * timeout and the final linger. Reads go into one buffer shared by the whole server: the assembler
 * copies what a request needs, so most reads never touch a per-connection buffer. Connections are
 * reference counted (two handles plus a request in the handler's hands) so that a client vanishing
 * mid-request never frees a request the handler still holds.
 *
 * On a TLS listener each connection also owns a session (tls.c, no I/O of its own), and
 * http_tls.c moves the ciphertext: what is read goes into the session and what it decrypts takes
 * the path above as if it had been read (sl__http_on_plain); what the connection writes is
 * encrypted and sent with one write of its own in flight, after which the connection carries on
 * as if its write had completed. */
#include "net/http_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/error.h>

/* Unparsed bytes buffered while a request is in the handler's hands before we stop reading. */
#define PEND_MAX (64 * 1024)
/* Per-connection buffers that grew past these for one large message are given back afterwards. */
#define PEND_KEEP (16 * 1024)

/* Keeps c's "in its headers" count in line: a connection that has not sent a complete request head
 * since it was accepted or last answered, and is not otherwise busy. */
void sl__http_pending_update(conn *c)
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

static void on_shutdown(uv_shutdown_t *r, int status)
{
    (void)status; /* an error shows on the reading side, or the close ends it */
    free(r);
}

int sl__http_shutdown(conn *c)
{
    uv_shutdown_t *r = malloc(sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    int rc = uv_shutdown(r, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rc != 0)
        free(r);
    return rc;
}

void sl__http_conn_free(conn *c)
{
    sl__tls_free(c->tls);
    free(c->treq);
    free(c->cbuf);
    sl__http_parser_free(&c->parser);
    free(c->pend);
    free(c->wbuf);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    sl__http_conn_unref(h->data);
}

void sl__http_conn_close(conn *c)
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
        sl__http_pending_update(c);
        if (--c->addr->conns == 0)
            sl__http_addr_drop(s, c->addr);
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

/* Called as connections are added: at 3/4 of max_connections the server is busy (until it falls
 * below half, see sl__http_conn_close), and heads get the short timeout, those under way included.
 */
void sl__http_busy_check(sl_http_server *s)
{
    const sl_http_limits *l = &s->lim;
    if (s->busy || l->max_connections == 0 || l->busy_header_timeout_ms == 0 ||
        s->nconns < l->max_connections - l->max_connections / 4)
        return;
    s->busy = 1;
    unsigned ms = sl__http_head_ms(s);
    uint64_t due = uv_now(s->loop) + ms;
    for (conn *c = s->conns; c != NULL; c = c->next) {
        if ((c->tmode != T_FIRST && c->tmode != T_HEAD) || c->closing || c->lingering ||
            (c->deadline != 0 && c->deadline <= due))
            continue;
        c->deadline = due;
        if (!c->timer_armed || c->timer_due > due) {
            uv_timer_start(&c->timer, sl__http_on_timer, ms, 0);
            c->timer_armed = 1;
            c->timer_due = due;
        }
    }
}

/* ---- reading and parsing --------------------------------------------------------------------- */

static void dispatch(conn *c)
{
    sl_http_server *s = c->srv;
    sl__http_parser_request(&c->parser, &c->req);
    c->req.conn = c;
    c->req.tls = c->tls != NULL;
    c->req.peer = c->tls != NULL ? sl__tls_peer(c->tls) : NULL;
    c->req.accept = s->accept;
    c->in_flight = 1;
    c->refs++;
    c->head = c->parser.ll.method == HTTP_HEAD;
    c->served = 1;
    /* Logically the timer stops here; the next mode gets a fresh deadline (see sl__http_set_mode).
     */
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
                sl__http_send_continue(c);
            break;
        }
        if (r == SL__HTTP_ERROR) {
            const sl__http_parser *p = &c->parser;
            sl__http_conn_fail(c, p->status, p->error_name, p->error_message);
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

void sl__http_read_set(conn *c, int on)
{
    if (on && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, sl__http_on_read) == 0)
            c->reading = 1;
    } else if (!on && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* Brings reading and the timer in line with the connection's state after anything happened. */
void sl__http_settle(conn *c)
{
    if (c->closing)
        return;
    sl__http_pending_update(c);
    if (c->lingering)
        return;
    if (c->upgraded) {
        if (c->eof) {
            sl__http_conn_close(c);
            return;
        }
        sl__http_up_flush_pend(c);
        if (!c->closing && !c->lingering)
            sl__http_read_set(c, !c->up_paused);
        return;
    }
    if (c->eof) {
        /* Nothing more will come: what could be answered has been; anything left is partial. */
        if (!c->in_flight && !c->writing)
            sl__http_conn_close(c);
        return;
    }
    int blocked = c->in_flight || c->writing;
    sl__http_read_set(c, !(blocked && c->pend_len >= PEND_MAX));
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
    sl__http_set_mode(c, mode);
}

/* Carries on with buffered bytes once nothing blocks them any more. */
void sl__http_conn_kick(conn *c)
{
    if (c->in_drive || c->closing || c->lingering)
        return;
    if (c->upgraded) {
        sl__http_settle(c);
        return;
    }
    if (c->pend_len > 0 && !c->in_flight && !c->writing) {
        size_t used = drive(c, c->pend, c->pend_len);
        if (c->closing || c->lingering)
            c->pend_len = 0; /* whatever is left will never be parsed */
        else
            pend_consume(c, used);
    }
    sl__http_settle(c);
}

void sl__http_conn_linger(conn *c)
{
    if (c->closing || c->lingering)
        return;
    c->lingering = 1;
    sl__http_pending_update(c);
    c->pend_len = 0;
    if (c->eof) {
        sl__http_conn_close(c);
        return;
    }
    if (c->tls != NULL) { /* close_notify first; the FIN once it is out (tls_drained) */
        sl__tls_close_notify(c->tls);
        int r = sl__http_tls_flush(c);
        if (r < 0) {
            sl__http_conn_close(c);
            return;
        }
        c->shut_wait = r == 0;
    }
    if (!c->shut_wait && sl__http_shutdown(c) != 0) {
        sl__http_conn_close(c);
        return;
    }
    sl__http_read_set(c, 1);
    sl__http_set_mode(c, T_LINGER);
}

void sl__http_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    conn *c = st->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->lingering) {
            sl__http_conn_close(c);
            return;
        }
        c->eof = 1;
        sl__http_read_set(c, 0);
        sl__http_settle(c);
        return;
    }
    if (c->lingering) /* the answer is out; whatever the client still sends is dropped */
        return;
    if (c->tls != NULL)
        sl__http_tls_read(c, b->base, (size_t)nread);
    else
        sl__http_on_plain(c, b->base, (size_t)nread);
}

/* Bytes of the HTTP stream (as read, or as decrypted): to the new owner once upgraded, else to the
 * assembler, or aside while a request is being answered. */
void sl__http_on_plain(conn *c, char *data, size_t n)
{
    if (c->upgraded) {
        sl__http_up_flush_pend(c); /* bytes read with the request come first */
        if (!c->closing && !c->lingering)
            c->fns.on_data(c->up_ud, data, n);
        return;
    }
    if (c->pend_len == 0 && !c->in_flight && !c->writing) {
        size_t used = drive(c, data, n);
        if (used < n && !c->closing && !c->lingering && pend_append(c, data + used, n - used))
            sl__http_conn_close(c);
    } else if (pend_append(c, data, n) != 0) {
        sl__http_conn_close(c);
    } else {
        sl__http_conn_kick(c);
        return;
    }
    sl__http_settle(c);
}

/* Arms the connection's timer to fire at its deadline (later than now). */
static void arm_until_deadline(conn *c, uint64_t now)
{
    uv_timer_start(&c->timer, sl__http_on_timer, c->deadline - now, 0);
    c->timer_armed = 1;
    c->timer_due = c->deadline;
}

void sl__http_on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    c->timer_armed = 0;
    if (c->closing)
        return;
    if (c->upgraded && !c->lingering) {
        /* Also the deferred hand-over of bytes read with the request (see sl_http_upgrade). */
        sl__http_up_flush_pend(c);
        if (c->closing || c->lingering || c->tmode != T_UP || c->deadline == 0)
            return;
        uint64_t now = uv_now(t->loop);
        if (now < c->deadline)
            arm_until_deadline(c, now);
        else
            sl__http_conn_close(c);
        return;
    }
    if (c->deadline == 0 || c->tmode == T_NONE)
        return;
    uint64_t now = uv_now(t->loop);
    if (c->tmode == T_WRITE && now >= c->deadline) {
        /* Like nginx's send_timeout, a write's timeout runs from its last progress: a client that
         * reads a long answer slowly but steadily is served; one that stopped reading goes. */
        size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
        if (queued < c->wq_mark) {
            c->wq_mark = queued;
            c->deadline = now + sl__http_mode_ms(c, T_WRITE);
        }
    }
    if (now < c->deadline) {
        arm_until_deadline(c, now);
        return;
    }
    c->deadline = 0;
    switch (c->tmode) {
    case T_FIRST:
    case T_HEAD:
    case T_REQUEST:
        sl__http_conn_fail(c, 408, sl_err_name(SL_ETIMEOUT), sl_strerror(SL_ETIMEOUT));
        break;
    default: /* idle keep-alive, a stuck write, the end of lingering: just go */
        sl__http_conn_close(c);
    }
}
