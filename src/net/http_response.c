/* Responses on the HTTP server's connections (http.c): the status line, headers and body built
 * into the connection's one reusable buffer and sent with one write (tried at once, queued only
 * for what the socket did not take, encrypted through http_tls.c on a TLS listener), the JSON
 * error that refuses a request, and the interim 100 Continue. sl_http_respond hands a request's
 * answer over; once it is in the kernel (sl__http_write_done) the connection lingers or goes on
 * with the next request (sl__http_conn_kick). */
#include "net/http_internal.h"

#include "core/numtext.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- responses ------------------------------------------------------------------------------- */

int sl__http_wreserve(conn *c, size_t need)
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

const char *sl__http_date_line(sl_http_server *s, size_t *len)
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

char *sl__http_put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
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
    const char *date = sl__http_date_line(s, &dlen);
    int bodyless = status < 200 || status == 204 || status == 304;
    size_t send = bodyless || c->head ? 0 : body_len;
    if (sl__http_wreserve(c, 200 + rlen + dlen + elen + clen + send) != 0)
        return -1;
    char *d = c->wbuf;
    d = PUT_LIT(d, "HTTP/1.1 ");
    *d++ = (char)('0' + status / 100);
    *d++ = (char)('0' + status / 10 % 10);
    *d++ = (char)('0' + status % 10);
    *d++ = ' ';
    d = sl__http_put(d, reason, rlen);
    d = PUT_LIT(d, "\r\nServer: sluice\r\n");
    d = sl__http_put(d, date, dlen);
    if (ctype != NULL) {
        d = PUT_LIT(d, "Content-Type: ");
        d = sl__http_put(d, ctype, clen);
        d = PUT_LIT(d, "\r\n");
    }
    if (!bodyless) {
        d = PUT_LIT(d, "Content-Length: ");
        d = sl__put_uint(d, body_len);
        d = PUT_LIT(d, "\r\n");
    }
    d = keep ? PUT_LIT(d, "Connection: keep-alive\r\n") : PUT_LIT(d, "Connection: close\r\n");
    if (elen > 0) {
        d = sl__http_put(d, extra, elen);
        if (extra[elen - 1] != '\n')
            d = PUT_LIT(d, "\r\n");
    }
    d = PUT_LIT(d, "\r\n");
    if (send > 0)
        d = sl__http_put(d, body, send);
    *out = (size_t)(d - c->wbuf);
    return 0;
}

void sl__http_write_done(conn *c, int status)
{
    if (status < 0) {
        sl__http_conn_close(c);
        return;
    }
    if (c->wcap > WBUF_KEEP) {
        free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
    if (c->close_after_write)
        sl__http_conn_linger(c);
    else
        sl__http_conn_kick(c);
}

static void on_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->writing = 0;
    if (!c->closing)
        sl__http_write_done(c, status);
}

/* Sends c->wbuf[0..len). Most responses fit the socket buffer: try that first and only queue a
 * uv_write (with its callback one loop iteration later) for what is left. */
static void conn_send(conn *c, size_t len, int close_after)
{
    c->close_after_write = close_after;
    if (c->tls != NULL) {
        int r = sl__http_tls_send(c, c->wbuf, len);
        if (r != 0) {
            sl__http_write_done(c, r < 0 ? UV_EIO : 0);
            return;
        }
        c->writing = 1;
        sl__http_set_mode(c, T_WRITE);
        return;
    }
    uv_buf_t b = uv_buf_init(c->wbuf, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n >= 0 && (size_t)n == len) {
        sl__http_write_done(c, 0);
        return;
    }
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
        sl__http_write_done(c, n);
        return;
    }
    if (n < 0)
        n = 0;
    b = uv_buf_init(c->wbuf + n, (unsigned)(len - (size_t)n));
    c->writing = 1;
    int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        c->writing = 0;
        sl__http_write_done(c, r);
        return;
    }
    sl__http_set_mode(c, T_WRITE);
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
void sl__http_conn_fail(conn *c, int status, const char *name, const char *message)
{
    if (c->closing || c->lingering)
        return;
    if (c->writing || c->in_flight) { /* no room for an answer: just go */
        sl__http_conn_close(c);
        return;
    }
    /* A TLS client that has not completed its handshake cannot read an answer (and one being
     * refused is not worth a handshake): just go. */
    if (c->tls != NULL ? !sl__tls_established(c->tls) : c->srv->tls != NULL) {
        sl__http_conn_close(c);
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
        sl_http_refusal r = {status, name, message, c->req.remote_addr, (size_t)blen};
        c->srv->refused(c->srv->refused_ud, &r, id, sizeof id);
        id[sizeof id - 1] = '\0';
        if (id[0] != '\0' && strcspn(id, "\r\n") == strlen(id)) {
            snprintf(idh, sizeof idh, "X-Request-Id: %s\r\n", id);
            extra = idh;
        }
    }
    if (build(c, c->srv, status, extra, "application/json", body, (size_t)blen, 0, &n) != 0) {
        sl__http_conn_close(c);
        return;
    }
    conn_send(c, n, 1);
}

static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void on_continue_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    free(w);
    if (status < 0 && !c->closing)
        sl__http_conn_close(c);
}

void sl__http_send_continue(conn *c)
{
    if (c->tls != NULL) { /* queued with the session's ciphertext, ahead of the response */
        if (sl__http_tls_send(c, CONTINUE, sizeof CONTINUE - 1) < 0)
            sl__http_conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)CONTINUE, sizeof CONTINUE - 1);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n >= 0 && (size_t)n == b.len)
        return;
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
        sl__http_conn_close(c);
        return;
    }
    if (n < 0)
        n = 0;
    /* A static buffer and a request of its own (rare: the socket did not take 25 bytes), so the
     * response that follows is queued behind it. */
    b = uv_buf_init((char *)CONTINUE + n, (unsigned)(sizeof CONTINUE - 1 - (size_t)n));
    uv_write_t *w = malloc(sizeof *w);
    if (w != NULL)
        w->data = c;
    if (w == NULL || uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written) < 0) {
        free(w);
        sl__http_conn_close(c);
    }
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
        sl__http_conn_unref(c);
        return;
    }
    int keep = c->req.keep_alive && !c->srv->closed;
    size_t n;
    if (build(c, c->srv, status, extra_headers, content_type, body, body_len, keep, &n) != 0) {
        sl__http_conn_close(c);
        sl__http_conn_unref(c);
        return;
    }
    /* Only now: body may point into the request. */
    sl__http_parser_next(&c->parser);
    conn_send(c, n, !keep);
    sl__http_conn_kick(c);
    sl__http_conn_unref(c);
}
