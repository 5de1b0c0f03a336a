/* Upgraded connections (sl_http_upgrade, for WebSocket: ws.c): the handler's request is answered
 * 101 and its assembler freed; from then on the connection carries bytes for a new owner. http.c
 * hands it what is read (or decrypted) through on_data, the bytes that came with the request first
 * and only once the owner has set itself up (sl__http_up_flush_pend); the owner writes through
 * sl_http_upgraded_*, which write what the socket takes at once and the rest with one write in
 * flight, then call on_drain, and sets the connection's timer (sl_http_upgraded_set_timeout).
 * Closing, lingering and TLS are http.c's, as for any connection. */
#include "net/http_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/error.h>

/* ---- upgraded connections -------------------------------------------------------------------- */

void sl__http_up_flush_pend(conn *c)
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
        sl__http_up_written(c, status);
}

/* The owner's write is all in the kernel (or failed). */
void sl__http_up_written(conn *c, int status)
{
    /* An idle upgraded connection keeps no write buffer: that is most of them, most of the time. */
    free(c->wbuf);
    c->wbuf = NULL;
    c->wcap = 0;
    if (status < 0)
        sl__http_conn_close(c);
    else if (c->close_after_write)
        sl__http_conn_linger(c);
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
        int r = sl__http_tls_send(c, data, len);
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
    if (data != c->wbuf && sl__http_wreserve(c, rest) != 0)
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
        sl__http_conn_unref(c);
        return SL_EIO;
    }
    size_t elen = extra_headers ? strlen(extra_headers) : 0, dlen;
    const char *date = sl__http_date_line(c->srv, &dlen);
    if (sl__http_wreserve(c, 128 + dlen + elen) != 0) {
        sl__http_conn_close(c);
        sl__http_conn_unref(c);
        return SL_ENOMEM;
    }
    char *d = c->wbuf;
    d = PUT_LIT(d, "HTTP/1.1 101 Switching Protocols\r\nServer: sluice\r\n");
    d = sl__http_put(d, date, dlen);
    d = PUT_LIT(d, "Connection: Upgrade\r\n");
    if (elen > 0) {
        d = sl__http_put(d, extra_headers, elen);
        if (extra_headers[elen - 1] != '\n')
            d = PUT_LIT(d, "\r\n");
    }
    d = PUT_LIT(d, "\r\n");
    /* The request (and the assembler's store behind it) is over: the owner only sees bytes. */
    sl__http_parser_free(&c->parser);
    c->upgraded = 1;
    sl__http_pending_update(c);
    c->fns = *fns;
    c->up_ud = ud;
    c->tmode = T_NONE;
    c->deadline = 0;
    if (up_write(c, c->wbuf, (size_t)(d - c->wbuf)) < 0) {
        c->up_notified = 1; /* the owner never had it */
        sl__http_conn_close(c);
        sl__http_conn_unref(c);
        return SL_EIO;
    }
    *out = (sl_http_upgraded *)c;
    /* Bytes that came with the request are handed over only once the owner has set itself up:
     * after the handler returns when it upgraded from inside the handler (drive's caller settles),
     * else on the next loop iteration. */
    if (!c->in_drive) {
        if (c->pend_len > 0) {
            uv_timer_start(&c->timer, sl__http_on_timer, 0, 0);
            c->timer_armed = 1;
            c->timer_due = uv_now(c->timer.loop);
        }
        sl__http_read_set(c, 1);
    }
    sl__http_conn_unref(c);
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
        int r = sl__http_tls_flush(c);
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
        sl__http_conn_linger(c);
}

void sl_http_upgraded_pause(sl_http_upgraded *u, int paused)
{
    conn *c = (conn *)u;
    if (c == NULL || c->closing)
        return;
    c->up_paused = paused != 0;
    if (!c->lingering) /* a lingering socket is drained whatever the owner wants */
        sl__http_read_set(c, !c->up_paused);
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
        uv_timer_start(&c->timer, sl__http_on_timer, ms, 0);
        c->timer_armed = 1;
        c->timer_due = c->deadline;
    }
}
