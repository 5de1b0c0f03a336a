/* TLS on the HTTP server's connections (http.c): the ciphertext in both directions between a
 * connection's socket and its session (tls.c, which does no I/O). What is read is fed to the
 * session, the handshake advances inside that call, and whatever it decrypts goes on as if it had
 * been read (sl__http_on_plain), under the first request's timer; what the connection writes is
 * encrypted at once and its ciphertext sent with at most one write of its own in flight. */
#include "net/http_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- TLS: ciphertext out ------------------------------------------------------------------
 * A TLS connection writes plaintext into its session (which encrypts all of it at once) and then
 * sends whatever ciphertext is waiting, handshake messages and alerts included, with at most one
 * uv_write of its own in flight (treq). c->writing then means "the plaintext handed over is not
 * all in the kernel yet", and ends in tls_drained. */

/* Everything written so far is in the kernel. */
static void tls_drained(conn *c)
{
    if (c->shut_wait) { /* lingering: the close_notify is out, now the FIN */
        c->shut_wait = 0;
        if (sl__http_shutdown(c) != 0)
            sl__http_conn_close(c);
        return;
    }
    if (!c->writing)
        return;
    c->writing = 0;
    if (c->upgraded)
        sl__http_up_written(c, 0);
    else
        sl__http_write_done(c, 0);
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
    int r = status < 0 ? -1 : sl__http_tls_flush(c);
    if (r < 0)
        sl__http_conn_close(c);
    else if (r > 0)
        tls_drained(c);
}

/* Sends the ciphertext the session has waiting: what the socket takes now straight from the
 * server's buffer, the rest with one uv_write from the connection's own. Returns 1 when all of it
 * is in the kernel, 0 when a write is under way (tls_drained follows), -1 on error. */
int sl__http_tls_flush(conn *c)
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
        if (uv_write(c->treq, (uv_stream_t *)&c->tcp, &b, 1, on_tls_write) < 0)
            return -1;
        c->tls_writing = 1;
        return 0;
    }
}

/* Encrypts data and sends it: 1 all in the kernel, 0 under way (tls_drained follows), -1 error.
 * Either way data has been consumed. */
int sl__http_tls_send(conn *c, const char *data, size_t len)
{
    if (sl__tls_write(c->tls, data, len) != SL_OK)
        return -1;
    return sl__http_tls_flush(c);
}

/* ---- TLS: ciphertext in ------------------------------------------------------------------- */

/* What was read goes into the session; the handshake advances and whatever it decrypts goes on as
 * if it had been read. What the session has to say (handshake, tickets, alerts) goes out. A failed
 * handshake ends the connection; its timeout is the one for a first request (T_FIRST). */
void sl__http_tls_read(conn *c, const char *data, size_t n)
{
    sl_http_server *s = c->srv;
    if (sl__tls_feed(c->tls, data, n) != SL_OK) {
        sl__http_conn_close(c);
        return;
    }
    for (;;) {
        long r = sl__tls_read(c->tls, s->pbuf, sizeof s->pbuf);
        if (r > 0) {
            sl__http_on_plain(c, s->pbuf, (size_t)r);
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
            sl__http_read_set(c, 0);
            break;
        }
        (void)sl__http_tls_flush(c); /* the alert, if the socket takes it */
        sl__http_conn_close(c);
        return;
    }
    if (sl__http_tls_flush(c) < 0) {
        sl__http_conn_close(c);
        return;
    }
    sl__http_settle(c);
}
