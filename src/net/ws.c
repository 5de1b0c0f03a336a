/* WebSocket connections of ws.h: once the handshake is checked and answered (ws_check.c, which also
 * holds the UTF-8 and close frame checks), RFC 6455 framing of our own (net/ws_frame.h) driven from
 * the HTTP transport's upgrade hooks. It replaced wslay because wslay's context holds fixed 4 KiB
 * receive and send buffers, 8.8 KiB of an idle connection's 10.5 KiB (docs/WEBSOCKET.md, "Memory
 * per connection"); here an idle connection holds its struct and nothing else. Received bytes are
 * handled where the HTTP layer lends them (its own writable read buffer, unused after the call): a
 * frame whose whole payload is in one read is unmasked in place and a one-frame message delivered
 * from there, so only messages that span reads or are fragmented are copied, into a reassembly
 * buffer that lives while the message is incomplete and grows with the bytes that actually arrive
 * (a declared length commits nothing but the 1009 check). Frames to send wait in a queue of
 * references to whole frames (sl_ws_frame), written with one gather write per turn: a publication
 * is framed once and the same frame is queued on every subscriber's connection, so fanning out
 * copies no payload and a slow consumer's backlog is a list of references, never one growing buffer
 * that is reallocated and moved (the 40 % memmove of docs/BENCHMARKS.md). A connection's own small
 * frames (replies, close) are coalesced into a private frame at the queue's tail. The queue's array
 * is freed when it empties, so an idle connection holds no sending memory. A pong waits beside that
 * buffer (only the latest, as §5.5.3 allows), so a peer that pings without reading gains nothing.
 * Connection objects can be re-entered (a callback closing the connection, a failed write closing
 * the socket): a depth counter defers freeing to the outermost frame. */
#include "net/ws.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/error.h>

#include "net/ws_frame.h"

/* Frames gathered into one write: beyond a few dozen the syscall's cost is the bytes, not the
 * call. */
#define GATHER_MAX 512

struct sl_ws_frame {
    unsigned refs;
    unsigned priv : 1; /* a connection's own frame: more of its frames may be appended */
    size_t len, cap;
    uint8_t data[];
};

typedef struct seg {
    sl_ws_frame *f;
} seg;

struct sl_ws_conn {
    sl_http_upgraded *up;
    sl_ws_callbacks cb;
    void *ud;
    size_t max_msg, max_out;
    unsigned close_timeout_ms;
    int depth;
    /* Receiving: the frame being read, after its header. */
    uint64_t f_left; /* payload bytes still to come */
    uint64_t f_pos;  /* payload bytes seen: the mask's phase */
    uint8_t f_mask[4];
    uint8_t f_op, f_fin, in_frame;
    uint8_t msg_op;  /* TEXT or BINARY while a fragmented message is open, else 0 */
    uint8_t hdr_len; /* a header split across reads waits in hdr */
    uint8_t hdr[SL__WSF_MAX_HEADER];
    uint8_t ctl_len;
    uint8_t *ctl; /* a control frame's payload split across reads (at most 125 bytes) */
    uint8_t *msg; /* reassembly, only while a message spans reads or frames */
    size_t msg_len, msg_cap;
    /* Sending: a ring of whole frames, oldest first; the first `flight` are being written by the
     * transport from our memory (held until on_drain). */
    struct seg *q;
    size_t q_head, q_n, q_cap, flight;
    size_t out_len; /* bytes in the ring, in flight included */
    uint8_t *pong;  /* the latest pong while it cannot be handed over; goes before out */
    uint8_t pong_len;
    int peer_code; /* the peer's close code (1005: it gave none); 0 until a valid close came */
    int our_code;  /* of our close frame, reported even if it never got out */
    unsigned gone : 1, tcp_closing : 1, timeout_set : 1, notified : 1, close_queued : 1, failed : 1,
        blocked : 1;
};

void sl_ws_limits_init(sl_ws_limits *l)
{
    l->max_message = 64 * 1024;
    l->max_outgoing = 1024 * 1024;
    l->close_timeout_ms = 5000;
}

/* ---- connection lifetime --------------------------------------------------------------------- */

/* ---- frames and the sending queue ------------------------------------------------------------ */

static size_t header_len(size_t len)
{
    return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

sl_ws_frame *sl_ws_frame_text(const char *data, size_t len)
{
    size_t hl = header_len(len);
    if (len > SIZE_MAX - sizeof(sl_ws_frame) - hl)
        return NULL;
    sl_ws_frame *f = malloc(sizeof *f + hl + len);
    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->priv = 0;
    f->len = f->cap = hl + len;
    sl__wsf_write_header(f->data, 1, SL__WSF_TEXT, len, NULL);
    if (len > 0)
        memcpy(f->data + hl, data, len);
    return f;
}

sl_ws_frame *sl_ws_frame_ref(sl_ws_frame *f)
{
    f->refs++;
    return f;
}

void sl_ws_frame_unref(sl_ws_frame *f)
{
    if (f != NULL && --f->refs == 0)
        free(f);
}

size_t sl_ws_frame_len(const sl_ws_frame *f)
{
    return f->len;
}

const unsigned char *sl_ws_frame_bytes(const sl_ws_frame *f)
{
    return f->data;
}

static seg *q_at(const sl_ws_conn *c, size_t i)
{
    return &c->q[(c->q_head + i) & (c->q_cap - 1)];
}

/* Drops the n oldest frames (written, or never to be). */
static void q_pop(sl_ws_conn *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        seg *g = q_at(c, 0);
        c->out_len -= g->f->len;
        sl_ws_frame_unref(g->f);
        c->q_head = (c->q_head + 1) & (c->q_cap - 1);
        c->q_n--;
    }
    if (c->q_n == 0) { /* an idle connection keeps no array */
        free(c->q);
        c->q = NULL;
        c->q_head = c->q_cap = 0;
    }
}

static int q_push(sl_ws_conn *c, sl_ws_frame *f)
{
    if (c->q_n == c->q_cap) {
        size_t cap = c->q_cap ? c->q_cap * 2 : 4;
        seg *v = malloc(cap * sizeof *v);
        if (v == NULL)
            return SL_ENOMEM;
        for (size_t i = 0; i < c->q_n; i++)
            v[i] = *q_at(c, i);
        free(c->q);
        c->q = v;
        c->q_cap = cap;
        c->q_head = 0;
    }
    c->q[(c->q_head + c->q_n) & (c->q_cap - 1)].f = f;
    c->q_n++;
    c->out_len += f->len;
    return SL_OK;
}

/* Room for need bytes at the end of the queue in a private frame the transport is not writing:
 * the tail one when it has room, else a new one. Returns where to write (the caller then adds need
 * to the frame's len and to out_len), or NULL when memory runs out. */
static uint8_t *q_reserve(sl_ws_conn *c, size_t need)
{
    if (c->q_n > c->flight) {
        sl_ws_frame *t = q_at(c, c->q_n - 1)->f;
        if (t->priv && t->cap - t->len >= need)
            return t->data + t->len;
    }
    size_t cap = need < 512 ? 512 : need;
    sl_ws_frame *f = malloc(sizeof *f + cap);
    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->priv = 1;
    f->len = 0;
    f->cap = cap;
    if (q_push(c, f) != SL_OK) {
        free(f);
        return NULL;
    }
    return f->data;
}

static void q_commit(sl_ws_conn *c, size_t n)
{
    q_at(c, c->q_n - 1)->f->len += n;
    c->out_len += n;
}

/* keep_flight: frames the transport is still writing from stay until it is done with them. */
static void release_buffers(sl_ws_conn *c, int keep_flight)
{
    free(c->msg);
    free(c->ctl);
    free(c->pong);
    c->msg = c->ctl = c->pong = NULL;
    c->msg_len = c->msg_cap = 0;
    c->ctl_len = c->pong_len = 0;
    size_t keep = keep_flight ? c->flight : 0;
    while (c->q_n > keep) { /* newest first, so the ring's head stays where it is */
        seg *g = q_at(c, c->q_n - 1);
        c->out_len -= g->f->len;
        sl_ws_frame_unref(g->f);
        c->q_n--;
    }
    if (c->q_n == 0) {
        free(c->q);
        c->q = NULL;
        c->q_head = c->q_cap = 0;
    }
    c->flight = keep;
}

static void conn_free(sl_ws_conn *c)
{
    release_buffers(c, 0);
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
    /* Nothing more will be read or handed over, and the socket may linger for seconds. A message
     * being delivered is not among these: end_frame detached it. Frames being written stay until
     * the transport is done with them. */
    release_buffers(c, 1);
    sl_http_upgraded_close(c->up);
}

/* Hands the pending pong, then the queued frames, to the transport, and closes the socket once
 * both close frames have passed (or ours after a failure, when nothing more will be read). */
static void pump(sl_ws_conn *c)
{
    if (c->gone || c->tcp_closing)
        return;
    while (!c->blocked && (c->pong != NULL || c->q_n > 0)) {
        if (c->pong != NULL) {
            long n = sl_http_upgraded_write(c->up, (const char *)c->pong, c->pong_len);
            if (c->gone || c->tcp_closing)
                return;
            if (n < 0) {
                tcp_close(c);
                return;
            }
            if (n == 0) {
                c->blocked = 1;
                break;
            }
            free(c->pong); /* the transport copied it */
            c->pong = NULL;
            c->pong_len = 0;
            continue;
        }
        uv_buf_t iov[GATHER_MAX];
        unsigned n = c->q_n < GATHER_MAX ? (unsigned)c->q_n : GATHER_MAX;
        for (unsigned i = 0; i < n; i++) {
            sl_ws_frame *f = q_at(c, i)->f;
            iov[i] = uv_buf_init((char *)f->data, (unsigned)f->len);
        }
        int held = 0;
        long r = sl_http_upgraded_writev(c->up, iov, n, &held);
        if (c->gone || c->tcp_closing)
            return;
        if (r < 0) {
            tcp_close(c);
            return;
        }
        if (r == 0 || held) { /* on_drain goes on */
            c->flight = r == 0 ? 0 : n;
            c->blocked = 1;
            break;
        }
        q_pop(c, n);
    }
    if (!c->close_queued)
        return;
    if (c->q_n == 0 && c->pong == NULL && (c->peer_code != 0 || c->failed)) {
        tcp_close(c);
        return;
    }
    /* Our close frame may be stuck behind unread data, or the peer may never answer it. */
    if (!c->timeout_set) {
        c->timeout_set = 1;
        sl_http_upgraded_set_timeout(c->up, c->close_timeout_ms);
    }
}

/* Queues our close frame behind whatever is queued; code 0 sends one without a body (the answer to
 * a peer's close that had none). Once it is queued nothing else is sent and received data is
 * dropped. */
static void queue_close(sl_ws_conn *c, int code, const char *reason, size_t rlen)
{
    if (c->close_queued || c->gone || c->tcp_closing)
        return;
    c->close_queued = 1;
    c->our_code = code != 0 ? code : SL_WS_NO_STATUS;
    /* A message still being reassembled will never be delivered. */
    free(c->msg);
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
    size_t body = code != 0 ? 2 + rlen : 0;
    uint8_t *d = q_reserve(c, 2 + body);
    if (d == NULL) {
        tcp_close(c);
        return;
    }
    d += sl__wsf_write_header(d, 1, SL__WSF_CLOSE, body, NULL);
    if (code != 0) {
        *d++ = (uint8_t)(code >> 8);
        *d++ = (uint8_t)code;
        if (rlen > 0)
            memcpy(d, reason, rlen);
    }
    q_commit(c, 2 + body);
}

/* "Fail the WebSocket Connection" (§7.1.7): our close frame, then TCP close; nothing more read. */
static void fail(sl_ws_conn *c, int code, const char *why)
{
    c->failed = 1;
    queue_close(c, code, why, strlen(why));
}

/* ---- receiving ------------------------------------------------------------------------------- */

static int reading(const sl_ws_conn *c)
{
    return !c->gone && !c->tcp_closing && !c->failed && c->peer_code == 0;
}

static void deliver(sl_ws_conn *c, const uint8_t *p, size_t n)
{
    if (!sl__ws_utf8_valid(p, n)) {
        fail(c, SL_WS_BAD_DATA, "invalid UTF-8");
        return;
    }
    if (c->cb.on_text != NULL && !c->close_queued && !c->tcp_closing && !c->gone)
        c->cb.on_text(c, n > 0 ? (const char *)p : "", n, c->ud);
}

static void on_ping(sl_ws_conn *c, const uint8_t *p, size_t n)
{
    if (c->close_queued)
        return;
    if (c->pong == NULL && (c->pong = malloc(2 + 125)) == NULL) {
        tcp_close(c);
        return;
    }
    /* Replaces a pong still waiting: only the latest ping needs its answer (§5.5.3). */
    size_t h = sl__wsf_write_header(c->pong, 1, SL__WSF_PONG, n, NULL);
    if (n > 0)
        memcpy(c->pong + h, p, n);
    c->pong_len = (uint8_t)(h + n);
}

static void on_peer_close(sl_ws_conn *c, const uint8_t *p, size_t n)
{
    int code;
    const char *why = sl__ws_close_check(p, n, &code);
    if (why != NULL) {
        fail(c, SL_WS_PROTOCOL_ERROR, why);
        return;
    }
    c->peer_code = code;
    queue_close(c, code == SL_WS_NO_STATUS ? 0 : code, NULL, 0); /* the echo (§5.5.1) */
}

static void on_control(sl_ws_conn *c, int op, const uint8_t *p, size_t n)
{
    if (op == SL__WSF_PING)
        on_ping(c, p, n);
    else if (op == SL__WSF_CLOSE)
        on_peer_close(c, p, n);
    /* A pong answers nothing we sent: the session pings in the protocol, not with frames. */
}

/* A header has been parsed: the checks that need the connection's state. */
static void begin_frame(sl_ws_conn *c, const sl__wsf_header *h)
{
    if (!h->masked) {
        fail(c, SL_WS_PROTOCOL_ERROR, "unmasked client frame");
        return;
    }
    c->f_op = (uint8_t)h->opcode;
    c->f_fin = (uint8_t)h->fin;
    memcpy(c->f_mask, h->mask, 4);
    c->f_left = h->len;
    c->f_pos = 0;
    c->in_frame = 1;
    if (h->opcode & 0x8)
        return;
    if (h->opcode == SL__WSF_CONT && c->msg_op == 0) {
        fail(c, SL_WS_PROTOCOL_ERROR, "continuation frame without a message to continue");
        return;
    }
    if (h->opcode != SL__WSF_CONT && c->msg_op != 0) {
        fail(c, SL_WS_PROTOCOL_ERROR, "new message inside a fragmented one");
        return;
    }
    if (h->opcode != SL__WSF_CONT)
        c->msg_op = (uint8_t)h->opcode;
    if (c->close_queued) /* waiting for the peer's close: data is skipped */
        return;
    if (c->msg_op == SL__WSF_BINARY) {
        const char *why = "binary not supported";
        queue_close(c, SL_WS_UNSUPPORTED, why, strlen(why)); /* the rest of it is skipped */
        return;
    }
    if (h->len > c->max_msg - c->msg_len) /* declared too big: refused before it arrives */
        fail(c, SL_WS_TOO_BIG, "message too big");
}

/* The frame's payload is complete. */
static void end_frame(sl_ws_conn *c)
{
    c->in_frame = 0;
    if (c->f_op & 0x8) {
        /* Detached first: a failure inside may close the socket, which releases buffers. */
        uint8_t *ctl = c->ctl;
        size_t len = c->ctl_len;
        c->ctl = NULL;
        c->ctl_len = 0;
        on_control(c, c->f_op, ctl, len);
        free(ctl);
        return;
    }
    if (!c->f_fin)
        return;
    c->msg_op = 0;
    if (c->close_queued)
        return;
    /* Detached first: on_text may close the connection, which releases buffers. */
    uint8_t *m = c->msg;
    size_t len = c->msg_len;
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
    deliver(c, m, len);
    free(m);
}

/* Appends k payload bytes of a data frame to the reassembly buffer, which grows with what arrives
 * (at least doubling) but never past the end this frame declared. */
static int msg_append(sl_ws_conn *c, const uint8_t *p, size_t k)
{
    if (k > c->msg_cap - c->msg_len) {
        size_t need = c->msg_len + k, end = c->msg_len + (size_t)c->f_left;
        size_t cap = c->msg_cap * 2 > 256 ? c->msg_cap * 2 : 256;
        if (cap > end)
            cap = end;
        if (cap < need)
            cap = need;
        uint8_t *q = realloc(c->msg, cap);
        if (q == NULL)
            return SL_ENOMEM;
        c->msg = q;
        c->msg_cap = cap;
    }
    memcpy(c->msg + c->msg_len, p, k);
    sl__wsf_mask(c->msg + c->msg_len, k, c->f_mask, c->f_pos);
    c->msg_len += k;
    return SL_OK;
}

/* k (> 0) payload bytes of the current frame, at most what it has left. */
static void payload(sl_ws_conn *c, uint8_t *p, size_t k)
{
    int whole = c->f_pos == 0 && k == c->f_left;
    if (c->f_op & 0x8) {
        if (whole) { /* the common case: the control frame is in this read */
            sl__wsf_mask(p, k, c->f_mask, 0);
            c->f_left = 0;
            c->in_frame = 0;
            on_control(c, c->f_op, p, k);
            return;
        }
        if (c->ctl == NULL && (c->ctl = malloc(125)) == NULL) {
            tcp_close(c);
            return;
        }
        memcpy(c->ctl + c->ctl_len, p, k);
        sl__wsf_mask(c->ctl + c->ctl_len, k, c->f_mask, c->f_pos);
        c->ctl_len = (uint8_t)(c->ctl_len + k);
    } else if (c->close_queued) {
        /* skipped */
    } else if (whole && c->f_fin && c->msg_len == 0) {
        /* A one-frame message in one read: unmasked where it lies and delivered from there. */
        sl__wsf_mask(p, k, c->f_mask, 0);
        c->f_left = 0;
        c->in_frame = 0;
        c->msg_op = 0;
        deliver(c, p, k);
        return;
    } else if (msg_append(c, p, k) != SL_OK) {
        fail(c, 1011, "out of memory"); /* 1011: the server met an unexpected condition */
        return;
    }
    c->f_pos += k;
    c->f_left -= k;
    if (c->f_left == 0)
        end_frame(c);
}

/* Consumes header bytes from p[0..n); returns how many. */
static size_t take_header(sl_ws_conn *c, const uint8_t *p, size_t n)
{
    sl__wsf_header h;
    const char *why = "malformed frame header";
    int r;
    size_t used;
    if (c->hdr_len == 0) {
        r = sl__wsf_parse_header(p, n, &h, &why);
        if (r == 0) { /* fewer than SL__WSF_MAX_HEADER bytes, or it would have parsed */
            memcpy(c->hdr, p, n);
            c->hdr_len = (uint8_t)n;
            return n;
        }
        used = r > 0 ? (size_t)r : n;
    } else {
        size_t have = c->hdr_len, k = sizeof c->hdr - have < n ? sizeof c->hdr - have : n;
        memcpy(c->hdr + have, p, k);
        r = sl__wsf_parse_header(c->hdr, have + k, &h, &why);
        if (r == 0) {
            c->hdr_len = (uint8_t)(have + k);
            return k;
        }
        used = r > 0 ? (size_t)r - have : k; /* r > have: fewer bytes had not been enough */
        c->hdr_len = 0;
    }
    if (r < 0)
        fail(c, SL_WS_PROTOCOL_ERROR, why);
    else
        begin_frame(c, &h);
    return used;
}

static void feed(sl_ws_conn *c, uint8_t *p, size_t n)
{
    while (n > 0 && reading(c)) {
        if (!c->in_frame) {
            size_t used = take_header(c, p, n);
            p += used;
            n -= used;
            if (c->in_frame && c->f_left == 0 && reading(c))
                end_frame(c); /* an empty payload */
            continue;
        }
        size_t k = c->f_left < n ? (size_t)c->f_left : n;
        payload(c, p, k);
        p += k;
        n -= k;
    }
}

/* ---- transport hooks ------------------------------------------------------------------------- */

static void up_data(void *ud, const char *data, size_t len)
{
    sl_ws_conn *c = ud;
    if (!reading(c))
        return; /* after a close or a failure the rest is never needed */
    enter(c);
    /* The transport lends its own read buffer: writable, and not looked at after this call. */
    feed(c, (uint8_t *)(uintptr_t)data, len);
    pump(c);
    leave(c);
}

static void up_drain(void *ud)
{
    sl_ws_conn *c = ud;
    enter(c);
    q_pop(c, c->flight); /* written: the transport is done with them */
    c->flight = 0;
    c->blocked = 0;
    pump(c);
    leave(c);
}

static void up_close(void *ud)
{
    sl_ws_conn *c = ud;
    enter(c);
    c->gone = 1;
    release_buffers(c, 0);
    if (!c->notified) {
        c->notified = 1;
        int code = c->peer_code != 0 ? c->peer_code
                   : c->close_queued ? c->our_code
                                     : SL_WS_ABNORMAL;
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
    sl_ws_limits_init(&d);
    if (lim == NULL)
        lim = &d;
    sl_ws_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sl_http_respond(req, 503, NULL, NULL, NULL, 0);
        return SL_ENOMEM;
    }
    c->cb = *cb;
    c->ud = ud;
    c->max_msg = lim->max_message > 0 ? lim->max_message : d.max_message;
    c->max_out = lim->max_outgoing;
    c->close_timeout_ms = lim->close_timeout_ms;
    char extra[96 + 96]; /* and the request id the server's handler set */
    snprintf(extra, sizeof extra, "Upgrade: websocket\r\nSec-WebSocket-Accept: %s\r\n%s%s%s",
             accept, req->request_id[0] ? "X-Request-Id: " : "", req->request_id,
             req->request_id[0] ? "\r\n" : "");
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

static int can_queue(const sl_ws_conn *c, size_t len)
{
    if (c->gone || c->tcp_closing || c->close_queued)
        return SL_EIO;
    if (len > c->max_out || c->out_len > c->max_out - len)
        return SL_ELIMIT;
    return SL_OK;
}

int sl_ws_queue_text(sl_ws_conn *c, const char *data, size_t len)
{
    if (c == NULL || (data == NULL && len > 0))
        return SL_EINVAL;
    size_t hl = header_len(len);
    int rc = len > SIZE_MAX - hl ? SL_ELIMIT : can_queue(c, hl + len);
    if (rc != SL_OK)
        return rc;
    uint8_t *d = q_reserve(c, hl + len);
    if (d == NULL)
        return SL_ENOMEM;
    d += sl__wsf_write_header(d, 1, SL__WSF_TEXT, len, NULL);
    if (len > 0)
        memcpy(d, data, len);
    q_commit(c, hl + len);
    return SL_OK;
}

int sl_ws_queue_frame(sl_ws_conn *c, sl_ws_frame *f)
{
    if (c == NULL || f == NULL)
        return SL_EINVAL;
    int rc = can_queue(c, f->len);
    if (rc == SL_OK && (rc = q_push(c, f)) == SL_OK)
        f->refs++;
    return rc;
}

void sl_ws_flush(sl_ws_conn *c)
{
    if (c == NULL || c->blocked)
        return;
    enter(c);
    pump(c);
    leave(c);
}

int sl_ws_send_text(sl_ws_conn *c, const char *data, size_t len)
{
    int rc = sl_ws_queue_text(c, data, len);
    if (rc == SL_OK)
        sl_ws_flush(c);
    return rc;
}

int sl_ws_close(sl_ws_conn *c, int code, const char *reason)
{
    if (c == NULL)
        return SL_EINVAL;
    if (c->gone || c->tcp_closing || c->close_queued)
        return SL_OK;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123) {
        rlen = 123;
        while (rlen > 0 && ((unsigned char)reason[rlen] & 0xc0) == 0x80)
            rlen--; /* cut before a code point, not inside one: the peer checks UTF-8 */
    }
    enter(c);
    queue_close(c, code, reason, rlen);
    pump(c);
    leave(c);
    return SL_OK;
}

size_t sl_ws_outgoing(const sl_ws_conn *c)
{
    return c ? c->out_len + c->pong_len : 0;
}

void sl_ws_pause(sl_ws_conn *c, int paused)
{
    if (c && !c->gone && !c->tcp_closing)
        sl_http_upgraded_pause(c->up, paused);
}

void *sl_ws_userdata(const sl_ws_conn *c)
{
    return c ? c->ud : NULL;
}
