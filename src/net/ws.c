/* WebSocket connections of ws.h: the handshake check and accept value (OpenSSL EVP), then one
 * wslay server context per connection driven from the HTTP transport's upgrade hooks. Received
 * bytes are not buffered here: each read is lent to wslay's recv callback for the duration of
 * wslay_event_recv, which consumes it all (wslay keeps partial frames itself). Sending goes through
 * wslay's own message queue, which is also what max_outgoing bounds; the transport takes one chunk
 * at a time and says "would block" while it is in flight, so nothing is copied twice and an idle
 * connection holds no send buffer. Connection objects can be re-entered (a callback closing the
 * connection, a failed write closing the socket): a depth counter defers freeing to the outermost
 * frame. */
#include "net/ws.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include <sluice/error.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct sl_ws_conn {
    wslay_event_context_ptr ctx;
    sl_http_upgraded *up;
    sl_ws_callbacks cb;
    void *ud;
    const char *in; /* the read being fed to wslay, lent for one wslay_event_recv */
    size_t in_len;
    size_t max_out;
    unsigned close_timeout_ms;
    int depth;
    int queued_code; /* of our close frame, reported even if it never got out */
    unsigned gone : 1, tcp_closing : 1, timeout_set : 1, notified : 1, close_queued : 1;
};

void sl_ws_limits_init(sl_ws_limits *l)
{
    l->max_message = 64 * 1024;
    l->max_outgoing = 1024 * 1024;
    l->close_timeout_ms = 5000;
}

int sl_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m != NULL && EVP_DigestInit_ex(m, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(m, key, key_len) == 1 &&
             EVP_DigestUpdate(m, WS_GUID, sizeof WS_GUID - 1) == 1 &&
             EVP_DigestFinal_ex(m, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(m);
    if (!ok)
        return SL_EINTERNAL;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return SL_OK;
}

/* Whether the comma-separated header value lists token (case-insensitively). */
static int has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return 1;
    }
    return 0;
}

static int key_valid(const char *k, size_t len)
{
    /* base64 of 16 bytes: 22 significant characters and "==". */
    if (len != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        char ch = k[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return 0;
    }
    unsigned char raw[18];
    return EVP_DecodeBlock(raw, (const unsigned char *)k, 24) == 18;
}

int sl_ws_check_handshake(const sl_http_request *req, const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    size_t len;
    const char *v;
    if (strcmp(req->method, "GET") != 0) {
        *why = "WebSocket upgrade requires GET";
        return 400;
    }
    v = sl_http_header_get(req, "Upgrade", &len);
    if (v == NULL || !has_token(v, len, "websocket")) {
        *why = "missing Upgrade: websocket";
        return 400;
    }
    v = sl_http_header_get(req, "Connection", &len);
    if (v == NULL || !has_token(v, len, "upgrade")) {
        *why = "missing Connection: upgrade";
        return 400;
    }
    v = sl_http_header_get(req, "Sec-WebSocket-Version", &len);
    if (v == NULL) {
        *why = "missing Sec-WebSocket-Version";
        return 400;
    }
    if (len != 2 || memcmp(v, "13", 2) != 0) {
        *why = "unsupported WebSocket version";
        return 426;
    }
    v = sl_http_header_get(req, "Sec-WebSocket-Key", &len);
    if (v == NULL || !key_valid(v, len)) {
        *why = "missing or malformed Sec-WebSocket-Key";
        return 400;
    }
    return 0;
}

/* ---- connection lifetime --------------------------------------------------------------------- */

static void conn_free(sl_ws_conn *c)
{
    if (c->ctx != NULL)
        wslay_event_context_free(c->ctx);
    free(c);
}

static void enter(sl_ws_conn *c)
{
    c->depth++;
}

static void leave(sl_ws_conn *c)
{
    if (--c->depth == 0 && c->gone)
        conn_free(c);
}

static void tcp_close(sl_ws_conn *c)
{
    if (c->gone || c->tcp_closing)
        return;
    c->tcp_closing = 1;
    sl_http_upgraded_close(c->up);
}

/* Sends what wslay has queued and closes the socket once both sides' close frames are through. */
static void pump(sl_ws_conn *c)
{
    if (c->gone || c->tcp_closing)
        return;
    if (wslay_event_want_write(c->ctx) && wslay_event_send(c->ctx) != 0) {
        tcp_close(c);
        return;
    }
    if (c->gone || c->tcp_closing)
        return;
    if (!wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx)) {
        tcp_close(c);
        return;
    }
    /* A close frame is queued (ours, or wslay's after a protocol error or an oversized message,
     * which also stop reading) or the peer's has come: whichever side is slow gets
     * close_timeout_ms. The frame itself may be stuck behind unread data. */
    if (!c->timeout_set &&
        (c->close_queued || wslay_event_get_close_sent(c->ctx) ||
         wslay_event_get_close_received(c->ctx) || !wslay_event_get_read_enabled(c->ctx))) {
        c->timeout_set = 1;
        sl_http_upgraded_set_timeout(c->up, c->close_timeout_ms);
    }
}

/* RFC 6455 §8.1: text must be UTF-8 (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF); wslay does not check, and the layer above hands text on to JSON parsers. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned char lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            k = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            k = 2;
            if (b == 0xe0)
                lo = 0xa0;
            else if (b == 0xed)
                hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            k = 3;
            if (b == 0xf0)
                lo = 0x90;
            else if (b == 0xf4)
                hi = 0x8f;
        } else {
            return 0;
        }
        if (n - i <= k || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

static void queue_close(sl_ws_conn *c, int code, const char *why)
{
    if (c->close_queued || wslay_event_get_close_sent(c->ctx))
        return;
    wslay_event_queue_close(c->ctx, (uint16_t)code, (const uint8_t *)why, strlen(why));
    c->close_queued = 1;
    c->queued_code = code;
}

/* ---- wslay callbacks ------------------------------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    sl_ws_conn *c = ud;
    if (c->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < c->in_len ? len : c->in_len;
    memcpy(buf, c->in, n);
    c->in += n;
    c->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    sl_ws_conn *c = ud;
    if (c->gone || c->tcp_closing) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    long n = sl_http_upgraded_write(c->up, (const char *)data, len);
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (n < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)n;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud)
{
    sl_ws_conn *c = ud;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        if (!utf8_valid(arg->msg, arg->msg_length))
            queue_close(c, SL_WS_BAD_DATA, "invalid UTF-8");
        else if (c->cb.on_text != NULL && !wslay_event_get_close_sent(ctx) && !c->tcp_closing)
            c->cb.on_text(c, (const char *)arg->msg, arg->msg_length, c->ud);
    } else if (arg->opcode == WSLAY_BINARY_FRAME) {
        queue_close(c, SL_WS_UNSUPPORTED, "binary not supported");
    }
    /* Close frames are answered and pings ponged by wslay itself. */
}

/* ---- transport hooks ------------------------------------------------------------------------- */

static void up_data(void *ud, const char *data, size_t len)
{
    sl_ws_conn *c = ud;
    if (c->gone || c->tcp_closing)
        return;
    enter(c);
    c->in = data;
    c->in_len = len;
    /* wslay reads until "would block"; what it leaves (after a close frame) is never needed. */
    if (wslay_event_recv(c->ctx) != 0)
        tcp_close(c);
    c->in = NULL;
    c->in_len = 0;
    pump(c);
    leave(c);
}

static void up_drain(void *ud)
{
    sl_ws_conn *c = ud;
    enter(c);
    pump(c);
    leave(c);
}

static void up_close(void *ud)
{
    sl_ws_conn *c = ud;
    enter(c);
    c->gone = 1;
    if (!c->notified) {
        c->notified = 1;
        int code = SL_WS_ABNORMAL;
        if (wslay_event_get_close_received(c->ctx))
            code = wslay_event_get_status_code_received(c->ctx);
        else if (wslay_event_get_close_sent(c->ctx))
            code = wslay_event_get_status_code_sent(c->ctx);
        else if (c->close_queued)
            code = c->queued_code;
        if (c->cb.on_close != NULL)
            c->cb.on_close(c, code, c->ud);
    }
    leave(c);
}

/* ---- the API --------------------------------------------------------------------------------- */

int sl_ws_accept(sl_http_request *req, const sl_ws_limits *lim, const sl_ws_callbacks *cb, void *ud,
                 sl_ws_conn **out)
{
    if (req == NULL || cb == NULL || out == NULL)
        return SL_EINVAL;
    *out = NULL;
    const char *why = NULL;
    int status = sl_ws_check_handshake(req, &why);
    if (status != 0) {
        char body[160];
        int n = snprintf(body, sizeof body, "{\"error\":\"bad_request\",\"message\":\"%s\"}", why);
        sl_http_respond(req, status, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL,
                        "application/json", body, n > 0 ? (size_t)n : 0);
        return SL_EINVAL;
    }
    size_t klen;
    const char *key = sl_http_header_get(req, "Sec-WebSocket-Key", &klen);
    char accept[29];
    if (sl_ws_accept_key(key, klen, accept) != SL_OK) {
        sl_http_respond(req, 500, NULL, NULL, NULL, 0);
        return SL_EINTERNAL;
    }
    sl_ws_limits d;
    if (lim == NULL) {
        sl_ws_limits_init(&d);
        lim = &d;
    }
    sl_ws_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sl_http_respond(req, 503, NULL, NULL, NULL, 0);
        return SL_ENOMEM;
    }
    c->cb = *cb;
    c->ud = ud;
    c->max_out = lim->max_outgoing;
    c->close_timeout_ms = lim->close_timeout_ms;
    struct wslay_event_callbacks wcb = {recv_cb, send_cb, NULL, NULL, NULL, NULL, msg_cb};
    if (wslay_event_context_server_init(&c->ctx, &wcb, c) != 0) {
        free(c);
        sl_http_respond(req, 503, NULL, NULL, NULL, 0);
        return SL_ENOMEM;
    }
    if (lim->max_message > 0)
        wslay_event_config_set_max_recv_msg_length(c->ctx, lim->max_message);
    char extra[96];
    snprintf(extra, sizeof extra, "Upgrade: websocket\r\nSec-WebSocket-Accept: %s\r\n", accept);
    static const sl_http_upgrade_fns fns = {up_data, up_drain, up_close};
    int rc = sl_http_upgrade(req, extra, &fns, c, &c->up);
    if (rc != SL_OK) {
        conn_free(c);
        return rc;
    }
    *out = c;
    if (c->cb.on_open != NULL) {
        enter(c);
        c->cb.on_open(c, c->ud);
        leave(c);
    }
    return SL_OK;
}

int sl_ws_send_text(sl_ws_conn *c, const char *data, size_t len)
{
    if (c == NULL || (data == NULL && len > 0))
        return SL_EINVAL;
    if (c->gone || c->tcp_closing || c->close_queued || wslay_event_get_close_sent(c->ctx))
        return SL_EIO;
    if (len > c->max_out || wslay_event_get_queued_msg_length(c->ctx) > c->max_out - len)
        return SL_ELIMIT;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
    int r = wslay_event_queue_msg(c->ctx, &m);
    if (r == WSLAY_ERR_NOMEM)
        return SL_ENOMEM;
    if (r != 0)
        return SL_EIO;
    enter(c);
    pump(c);
    leave(c);
    return SL_OK;
}

int sl_ws_close(sl_ws_conn *c, int code, const char *reason)
{
    if (c == NULL)
        return SL_EINVAL;
    if (c->gone || c->tcp_closing)
        return SL_OK;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123)
        rlen = 123;
    enter(c);
    if (!wslay_event_get_close_sent(c->ctx) && !c->close_queued)
        wslay_event_queue_close(c->ctx, (uint16_t)code, (const uint8_t *)reason, rlen);
    if (!c->close_queued)
        c->queued_code = code;
    c->close_queued = 1;
    pump(c);
    leave(c);
    return SL_OK;
}

size_t sl_ws_outgoing(const sl_ws_conn *c)
{
    return c ? wslay_event_get_queued_msg_length(c->ctx) : 0;
}

void *sl_ws_userdata(const sl_ws_conn *c)
{
    return c ? c->ud : NULL;
}
