/* The client connections of `sluice bench ws` (cmd_bench.c runs the scenario and reports): each
 * connection's life (TCP connect, the WebSocket upgrade, the protocol's connect and subscribe,
 * closing and timing out), its writes, the publisher's pacing and acknowledgements, and what comes
 * back: Centrifugo replies and pushes or NATS messages, decoded by bench_proto.c, counted as
 * deliveries with their publish-to-delivery latency. */
#include "cli/bench_ws_internal.h"
#include "cli/cli.h"
#include "net/ws.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A batched push frame for one subscriber can be large when the server is behind; more than this
 * in one message is treated as a protocol error rather than buffered. */
#define MAX_MESSAGE (8u << 20)
/* Commands in one frame: sluiced closes a connection sending more than 128 (3501, docs/WEBSOCKET.md
 * "Strictness"); the NATS baseline gets the same batches (one PING each) so both see equal frames.
 */
#define CMDS_PER_FRAME 128

/* ---- small helpers --------------------------------------------------------------------------- */

uint64_t sl__bench_ws_now(void)
{
    /* CLOCK_MONOTONIC: publication timestamps are taken and compared inside this one process. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Frame masks need not be secret for a load tool talking to a server it runs; RFC 6455 asks for
 * unpredictability to protect proxies from cache poisoning, which a seeded xorshift from the
 * system's randomness gives well enough, at no cost per frame. */
static void next_mask(bench *b, uint8_t m[4])
{
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    memcpy(m, &x, 4);
}

static int scratch_reserve(bench *b, size_t payload)
{
    size_t need = SL__WSF_MAX_HEADER + payload;
    if (need <= b->scratch_cap)
        return 0;
    size_t c = b->scratch_cap ? b->scratch_cap : 65536;
    while (c < need)
        c *= 2;
    uint8_t *p = realloc(b->scratch, c);
    if (p == NULL)
        return -1;
    b->scratch = p;
    b->scratch_cap = c;
    return 0;
}

static void record_error(bconn *c, const char *prefix, long code, const char *text, size_t len)
{
    if (c->close_seen)
        return;
    c->close_seen = 1;
    char kind[SL__BENCH_ERR_TEXT];
    sl__bench_errs_kind(kind, prefix, code, text, len);
    sl__bench_errs_add(&c->b->errs, kind);
}

/* ---- connection life ------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    bconn *c = h->data;
    bench *b = c->b;
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sl__bench_rx_free(&c->rx);
    if (c->nats) {
        sl__bench_nats_free(c->nats);
        free(c->nats);
    }
    free(c->head);
    int role = c->role;
    free(c);
    b->live--;
    if (role == R_CYCLE && b->phase == PH_RUN)
        sl__bench_ws_conn_start(b, R_CYCLE);
}

/* Counts the end of a connection's setup (ready or failed) for the ramp. */
static void setup_done(bconn *c, int ok)
{
    bench *b = c->b;
    if (!c->counted)
        return;
    c->counted = 0;
    b->pending--;
    if (c->role != R_SUB)
        return; /* the publisher's fate shows in the publications */
    if (ok) {
        b->ready++;
        b->subs_live++;
        if (c->src >= 0)
            b->src_ready[c->src]++;
    } else {
        b->failed++;
    }
}

void sl__bench_ws_conn_close(bconn *c)
{
    if (c->state == CS_DEAD)
        return;
    bench *b = c->b;
    if (c->state == CS_READY && c->role == R_SUB) {
        b->dropped++;
        b->subs_live--;
    }
    if (c->state < CS_READY && c->role == R_CYCLE)
        b->failed++;
    setup_done(c, 0);
    if (c == b->pub)
        b->pub = NULL;
    c->state = CS_DEAD;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    sl__bench_ws_progress(b);
}

void sl__bench_ws_conn_fail(bconn *c, const char *prefix, long code, const char *text, size_t len)
{
    if (c->state == CS_DEAD)
        return;
    /* Once the run is over, connections closing are the tool's own doing, not errors. */
    if (c->b->phase != PH_DONE && c->state != CS_CLOSING)
        record_error(c, prefix, code, text, len);
    sl__bench_ws_conn_close(c);
}

typedef struct wreq {
    uv_write_t req;
    bconn *c;
    uint8_t data[];
} wreq;

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    bconn *c = w->c;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        sl__bench_ws_conn_fail(c, "write error", -1, uv_err_name(status),
                               strlen(uv_err_name(status)));
}

/* Writes now when the socket takes it (no allocation), else queues a copy behind what is queued. */
static void conn_write(bconn *c, const uint8_t *p, size_t n)
{
    if (c->state == CS_DEAD || n == 0)
        return;
    uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (r >= 0 && (size_t)r == n)
        return;
    if (r < 0 && r != UV_EAGAIN) {
        sl__bench_ws_conn_fail(c, "write error", -1, uv_err_name(r), strlen(uv_err_name(r)));
        return;
    }
    size_t done = r > 0 ? (size_t)r : 0;
    wreq *w = malloc(sizeof *w + (n - done));
    if (w == NULL) {
        sl__bench_ws_conn_fail(c, "out of memory", -1, NULL, 0);
        return;
    }
    w->c = c;
    memcpy(w->data, p + done, n - done);
    buf = uv_buf_init((char *)w->data, (unsigned)(n - done));
    if ((r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write)) < 0) {
        free(w);
        sl__bench_ws_conn_fail(c, "write error", -1, uv_err_name(r), strlen(uv_err_name(r)));
    }
}

/* Sends b->scratch's payload (len bytes after the header room) as one frame. */
static void send_scratch(bconn *c, size_t len, int opcode)
{
    uint8_t m[4];
    next_mask(c->b, m);
    size_t off = sl__bench_frame(c->b->scratch, len, opcode, m);
    conn_write(c, c->b->scratch + off, SL__WSF_MAX_HEADER + len - off);
}

static void send_frame(bconn *c, int opcode, const void *p, size_t len)
{
    if (scratch_reserve(c->b, len) < 0) {
        sl__bench_ws_conn_fail(c, "out of memory", -1, NULL, 0);
        return;
    }
    if (len)
        memcpy(c->b->scratch + SL__WSF_MAX_HEADER, p, len);
    send_scratch(c, len, opcode);
}

static void send_text(bconn *c, const char *s)
{
    /* NATS protocol text travels in binary frames, as its own WebSocket clients send it. */
    send_frame(c, c->b->o.proto == PR_NATS ? SL__WSF_BINARY : SL__WSF_TEXT, s, strlen(s));
}

static void set_state(bconn *c, int st)
{
    c->state = st;
    c->t_state = c->b->now ? c->b->now : sl__bench_ws_now();
}

/* Starts our side of the closing handshake; the server answers with its close frame and closes. */
static void conn_begin_close(bconn *c)
{
    uint8_t code[2] = {1000 >> 8, 1000 & 0xff};
    send_frame(c, SL__WSF_CLOSE, code, 2);
    if (c->state != CS_DEAD)
        set_state(c, CS_CLOSING);
}

/* The connection finished its setup (authenticated, and subscribed when it subscribes). */
static void conn_ready(bconn *c)
{
    bench *b = c->b;
    uint64_t t = sl__bench_ws_now();
    if (c->role == R_CYCLE) {
        if (b->phase == PH_RUN && t <= b->t_end) {
            b->cycles_ok++;
            sl__bench_hist_record(&b->setup, t - c->t_start);
        }
        conn_begin_close(c);
        return;
    }
    sl__bench_hist_record(&b->setup, t - c->t_start);
    set_state(c, CS_READY);
    setup_done(c, 1);
    sl__bench_ws_progress(b);
}

/* ---- sending commands ------------------------------------------------------------------------ */

static void send_connect(bconn *c)
{
    bench *b = c->b;
    char *minted = NULL;
    const char *tok = b->token;
    if (b->kr != NULL) {
        char id[48];
        snprintf(id, sizeof id, "bench-%llu", (unsigned long long)c->n);
        double now = (double)time(NULL);
        sl_jwt_claims cl = {
            .sub = id, .role = SL_ROLE_WRITE, .iat = now, .exp = now + 3600, .jti = id};
        int rc = sl_jwt_sign(b->kr, NULL, &cl, &minted);
        if (rc != SL_OK) {
            sl__bench_ws_conn_fail(c, "cannot sign a token:", -1, sl_strerror(rc),
                                   strlen(sl_strerror(rc)));
            return;
        }
        tok = minted;
    }
    size_t tl = tok ? strlen(tok) : 0;
    if (scratch_reserve(b, tl + 512) < 0) {
        free(minted);
        sl__bench_ws_conn_fail(c, "out of memory", -1, NULL, 0);
        return;
    }
    char *p = (char *)b->scratch + SL__WSF_MAX_HEADER;
    int n;
    if (b->o.proto == PR_NATS) {
        /* PING right behind CONNECT: its PONG says the server accepted the connection. */
        n = snprintf(p, tl + 512,
                     "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"sluice-bench\","
                     "\"lang\":\"c\",\"version\":\"%s\",\"protocol\":1%s%s%s}\r\nPING\r\n",
                     sl_version(), tok ? ",\"auth_token\":\"" : "", tok ? tok : "",
                     tok ? "\"" : "");
    } else if (tok) {
        n = snprintf(p, tl + 512, "{\"connect\":{\"token\":\"%s\"},\"id\":1}", tok);
    } else {
        n = snprintf(p, tl + 512, "{\"connect\":{},\"id\":1}");
    }
    if (minted)
        sl__cli_wipe_free(minted, tl);
    set_state(c, CS_AUTH);
    send_scratch(c, (size_t)n, b->o.proto == PR_NATS ? SL__WSF_BINARY : SL__WSF_TEXT);
}

static void send_subscribe(bconn *c)
{
    char cmd[400];
    if (c->b->o.proto == PR_NATS)
        snprintf(cmd, sizeof cmd, "SUB %s 1\r\nPING\r\n", c->b->o.channel);
    else
        snprintf(cmd, sizeof cmd, "{\"subscribe\":{\"channel\":\"%s\"},\"id\":2}", c->b->o.channel);
    set_state(c, CS_SUB);
    send_text(c, cmd);
}

/* Sends n (at most CMDS_PER_FRAME) publications in one frame, all stamped with the time the frame
 * is built. */
static void pub_frame(bench *b, size_t n)
{
    bconn *c = b->pub;
    if (c == NULL || n == 0)
        return;
    if (b->o.proto == PR_NATS && b->ring_len == NATS_RING) {
        b->backlog_waits++;
        return;
    }
    size_t chl = strlen(b->o.channel);
    size_t per = chl + 160; /* one command's longest rendering is 102 bytes + channel */
    if (scratch_reserve(b, per * n + 16) < 0) {
        sl__bench_ws_conn_fail(c, "out of memory", -1, NULL, 0);
        return;
    }
    char *base = (char *)b->scratch + SL__WSF_MAX_HEADER, *p = base;
    uint64_t t = sl__bench_ws_now();
    for (size_t i = 0; i < n; i++) {
        uint64_t s = b->sent + i + 1;
        if (b->o.proto == PR_NATS) {
            char pl[64];
            int k = snprintf(pl, sizeof pl, "{\"t\":%llu,\"s\":%llu}", (unsigned long long)t,
                             (unsigned long long)s);
            p += sprintf(p, "PUB %s %d\r\n%s\r\n", b->o.channel, k, pl);
        } else {
            p += sprintf(p,
                         "%s{\"publish\":{\"channel\":\"%s\",\"data\":{\"t\":%llu,\"s\":%llu}},"
                         "\"id\":%u}",
                         i ? "\n" : "", b->o.channel, (unsigned long long)t, (unsigned long long)s,
                         (unsigned)b->next_id++);
        }
    }
    if (b->o.proto == PR_NATS) {
        p += sprintf(p, "PING\r\n");
        b->ring[(b->ring_head + b->ring_len) % NATS_RING] = (uint32_t)n;
        b->ring_len++;
    }
    b->sent += n;
    b->inflight += n;
    send_scratch(c, (size_t)(p - base), b->o.proto == PR_NATS ? SL__WSF_BINARY : SL__WSF_TEXT);
}

void sl__bench_ws_pub_send(bench *b, size_t n)
{
    while (n > 0 && b->pub != NULL) {
        size_t k = n < CMDS_PER_FRAME ? n : CMDS_PER_FRAME;
        uint64_t before = b->sent;
        pub_frame(b, k);
        if (b->sent == before)
            return; /* could not send (NATS ring full, connection gone) */
        n -= k;
    }
}

/* --rate 0: keeps --inflight publications unanswered, topping up after each read of answers. */
void sl__bench_ws_pub_fill(bench *b)
{
    if (b->phase != PH_RUN || b->o.rate > 0 || b->pub == NULL)
        return;
    if (b->inflight < b->o.inflight) {
        size_t n = (size_t)(b->o.inflight - b->inflight);
        sl__bench_ws_pub_send(b, n > MAX_PER_TICK ? MAX_PER_TICK : n);
    }
}

static void pub_acked(bench *b, uint64_t n, int ok)
{
    if (n > b->inflight)
        n = b->inflight;
    b->inflight -= n;
    if (ok)
        b->acked += n;
    else
        b->pub_errors += n;
    b->t_progress = b->now;
}

/* ---- receiving ------------------------------------------------------------------------------- */

static void delivery(bconn *c, const sl__bench_line *l)
{
    bench *b = c->b;
    b->deliveries++;
    c->deliveries++;
    b->t_progress = b->now;
    if (l->has_s) {
        if (c->have_s && l->s <= c->last_s)
            b->reordered++;
        c->last_s = l->s;
        c->have_s = 1;
    }
    if (b->t_win0 && b->now >= b->t_win0 && b->now <= b->t_end)
        b->deliveries_win++;
    if (!l->has_t) {
        b->untimed++;
        return;
    }
    /* Latency counts publications sent after the warm-up, wherever they arrive (also in the drain).
     */
    if (b->t_win0 && l->t >= b->t_win0 && l->t <= b->now)
        sl__bench_hist_record(&b->lat, b->now - l->t);
}

static int on_line(void *ud, const char *line, size_t len)
{
    bconn *c = ud;
    bench *b = c->b;
    sl__bench_line l;
    sl__bench_classify(line, len, &c->tail, &l);
    switch (l.kind) {
    case SL__BL_PING:
        b->pings++;
        send_text(c, "{}");
        break;
    case SL__BL_REPLY:
        if (c->state == CS_AUTH && l.id == 1) {
            if (l.error)
                sl__bench_ws_conn_fail(c, "connect error", l.code, l.text, l.text_len);
            else if (c->role == R_SUB)
                send_subscribe(c);
            else
                conn_ready(c);
        } else if (c->state == CS_SUB && l.id == 2) {
            if (l.error)
                sl__bench_ws_conn_fail(c, "subscribe error", l.code, l.text, l.text_len);
            else
                conn_ready(c);
        } else if (c->role == R_PUB && c->state == CS_READY && l.id >= 3) {
            if (l.error) {
                char kind[SL__BENCH_ERR_TEXT];
                sl__bench_errs_kind(kind, "publish error", l.code, l.text, l.text_len);
                sl__bench_errs_add(&b->errs, kind);
            }
            pub_acked(b, 1, !l.error);
        } else {
            b->unexpected++;
        }
        break;
    case SL__BL_PUB:
        if (c->role == R_SUB && c->state == CS_READY)
            delivery(c, &l);
        else
            b->unexpected++;
        break;
    case SL__BL_DISCONNECT:
        sl__bench_ws_conn_fail(c, "disconnect", l.code, l.text, l.text_len);
        break;
    case SL__BL_PUSH:
        b->other_pushes++;
        break;
    default:
        b->parse_errors++;
        break;
    }
    return c->state == CS_DEAD;
}

static int on_nats(void *ud, int op, const char *data, size_t len)
{
    bconn *c = ud;
    bench *b = c->b;
    switch (op) {
    case SL__NATS_PING:
        b->pings++;
        send_text(c, "PONG\r\n");
        break;
    case SL__NATS_PONG:
        if (c->state == CS_AUTH) {
            if (c->role == R_SUB)
                send_subscribe(c);
            else
                conn_ready(c);
        } else if (c->state == CS_SUB) {
            conn_ready(c);
        } else if (c->role == R_PUB && c->state == CS_READY && b->ring_len > 0) {
            uint32_t n = b->ring[b->ring_head];
            b->ring_head = (b->ring_head + 1) % NATS_RING;
            b->ring_len--;
            pub_acked(b, n, 1);
        } else {
            b->unexpected++;
        }
        break;
    case SL__NATS_MSG: {
        sl__bench_line l;
        memset(&l, 0, sizeof l);
        sl__bench_payload_ts(data, len, &l);
        if (c->role == R_SUB && c->state == CS_READY)
            delivery(c, &l);
        else
            b->unexpected++;
        break;
    }
    case SL__NATS_ERR:
        sl__bench_ws_conn_fail(c, "nats -ERR", -1, data, len);
        break;
    default: /* INFO, +OK */
        break;
    }
    return c->state == CS_DEAD;
}

static int on_message(void *ud, int opcode, const uint8_t *data, size_t len)
{
    bconn *c = ud;
    bench *b = c->b;
    const char *why;
    switch (opcode) {
    case SL__WSF_TEXT:
    case SL__WSF_BINARY:
        if (b->o.proto == PR_NATS) {
            int r = sl__bench_nats_feed(c->nats, (const char *)data, len, on_nats, c, &why);
            if (r < 0) {
                b->parse_errors++;
                sl__bench_ws_conn_fail(c, "protocol:", -1, why, strlen(why));
            }
        } else if (opcode == SL__WSF_BINARY) {
            b->parse_errors++;
        } else {
            sl__bench_lines((const char *)data, len, on_line, c);
        }
        break;
    case SL__WSF_PING:
        send_frame(c, SL__WSF_PONG, data, len);
        break;
    case SL__WSF_CLOSE: {
        int code;
        const char *reason;
        size_t rl;
        if (sl__bench_close_payload(data, len, &code, &reason, &rl) < 0) {
            code = 1002;
            reason = "bad close frame";
            rl = strlen(reason);
        }
        if (c->state == CS_CLOSING) {
            sl__bench_ws_conn_close(c);
            break;
        }
        record_error(c, "close", code, reason, rl);
        /* Answer with the same code, as RFC 6455 asks, then let the server close TCP. */
        uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)(code & 0xff)};
        send_frame(c, SL__WSF_CLOSE, echo, code == 1005 ? 0 : 2);
        if (c->state != CS_DEAD)
            sl__bench_ws_conn_close(c);
        break;
    }
    default: /* PONG */
        break;
    }
    return c->state == CS_DEAD;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    bconn *c = h->data;
    *buf = uv_buf_init(c->b->rbuf, READ_BUF);
}

/* Bytes while upgrading: collects the answer's head, checks it, then hands what follows it (a
 * server may send right behind the 101) to the frame reader. Returns the bytes left for it. */
static long handshake_data(bconn *c, const char *p, size_t n)
{
    size_t room = SL__BENCH_MAX_HEAD - c->head_len;
    size_t take = n < room ? n : room;
    if (c->head == NULL && (c->head = malloc(SL__BENCH_MAX_HEAD)) == NULL) {
        sl__bench_ws_conn_fail(c, "out of memory", -1, NULL, 0);
        return -1;
    }
    memcpy(c->head + c->head_len, p, take);
    c->head_len += take;
    int status;
    const char *why;
    long hl = sl__bench_upgrade_response(c->head, c->head_len, c->accept, &status, &why);
    if (hl == 0)
        return -1;
    if (hl < 0) {
        if (status != 0 && status != 101)
            sl__bench_ws_conn_fail(c, "http", status, NULL, 0);
        else
            sl__bench_ws_conn_fail(c, "handshake:", -1, why, strlen(why));
        return -1;
    }
    /* Bytes of this read that lie beyond the head. */
    size_t before = c->head_len - take;
    size_t rest_off = (size_t)hl - before;
    free(c->head);
    c->head = NULL;
    c->head_len = 0;
    send_connect(c);
    if (c->state == CS_DEAD)
        return -1;
    return (long)rest_off;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    bconn *c = s->data;
    bench *b = c->b;
    if (nread == 0 || c->state == CS_DEAD)
        return;
    b->now = sl__bench_ws_now();
    if (nread < 0) {
        if (c->state == CS_CLOSING)
            sl__bench_ws_conn_close(c);
        else if (nread == UV_EOF)
            sl__bench_ws_conn_fail(c, "eof in", -1, state_name[c->state],
                                   strlen(state_name[c->state]));
        else
            sl__bench_ws_conn_fail(c, "read error", -1, uv_err_name((int)nread),
                                   strlen(uv_err_name((int)nread)));
        return;
    }
    const char *p = buf->base;
    size_t n = (size_t)nread;
    if (c->state == CS_HTTP) {
        long off = handshake_data(c, p, n);
        if (off < 0)
            return;
        p += off;
        n -= (size_t)off;
    }
    const char *why;
    int r = sl__bench_rx_feed(&c->rx, (const uint8_t *)p, n, on_message, c, &why);
    if (r < 0) {
        b->parse_errors++;
        sl__bench_ws_conn_fail(c, "protocol:", -1, why, strlen(why));
    }
    if (c == b->pub)
        sl__bench_ws_pub_fill(b);
}

static void on_connect(uv_connect_t *req, int status)
{
    bconn *c = req->data;
    if (c->state == CS_DEAD)
        return;
    if (status < 0) {
        if (status == UV_ECONNREFUSED)
            sl__bench_ws_conn_fail(c, "refused", -1, NULL, 0);
        else
            sl__bench_ws_conn_fail(c, "connect error", -1, uv_err_name(status),
                                   strlen(uv_err_name(status)));
        return;
    }
    /* Latency is the point: Nagle would hold back small frames. */
    uv_tcp_nodelay(&c->tcp, 1);
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0) {
        sl__bench_ws_conn_fail(c, "read error", -1, uv_err_name(r), strlen(uv_err_name(r)));
        return;
    }
    unsigned char raw[16];
    char key[25];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        sl__bench_ws_conn_fail(c, "no randomness", -1, NULL, 0);
        return;
    }
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
    if (sl_ws_accept_key(key, 24, c->accept) != SL_OK) {
        sl__bench_ws_conn_fail(c, "cannot compute the accept key", -1, NULL, 0);
        return;
    }
    char req_text[1600];
    const sl__bench_url *u = c->role == R_PUB ? &c->b->pub_url : &c->b->url;
    size_t n = sl__bench_upgrade_request(req_text, sizeof req_text, u->host, u->path, key);
    set_state(c, CS_HTTP);
    conn_write(c, (const uint8_t *)req_text, n);
}

/* Makes c's socket now and binds it to its source address with the port left to connect
 * (IP_BIND_ADDRESS_NO_PORT): each source address then has the whole ephemeral port range towards
 * the server, instead of all of them sharing one range. *inited: whether c->tcp was initialised
 * (it must be closed); returns 0 or a libuv error. */
static int bind_source(bench *b, bconn *c, int *inited)
{
    const struct sockaddr *src = (const struct sockaddr *)&b->src[c->src];
    *inited = 0;
    int r = uv_tcp_init_ex(&b->loop, &c->tcp, src->sa_family);
    if (r < 0)
        return r;
    *inited = 1;
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    return uv_tcp_bind(&c->tcp, src, 0);
}

bconn *sl__bench_ws_conn_start(bench *b, int role)
{
    bconn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sl__bench_errs_add(&b->errs, "out of memory");
        b->failed++;
        return NULL;
    }
    c->b = b;
    c->role = role;
    c->n = b->next_n++;
    c->t_start = sl__bench_ws_now();
    c->t_state = c->t_start;
    c->state = CS_TCP;
    sl__bench_rx_init(&c->rx, MAX_MESSAGE);
    if (b->o.proto == PR_NATS) {
        if ((c->nats = malloc(sizeof *c->nats)) == NULL) {
            free(c);
            sl__bench_errs_add(&b->errs, "out of memory");
            b->failed++;
            return NULL;
        }
        sl__bench_nats_init(c->nats, MAX_MESSAGE);
    }
    c->src = -1;
    int inited = 0, r = 0;
    if (b->nsrc > 0 && role != R_PUB) { /* the publisher may go to another host */
        c->src = (int)(b->next_src++ % b->nsrc);
        r = bind_source(b, c, &inited);
    }
    const char *what = r < 0 ? "bind error" : "connect error";
    if (!inited)
        uv_tcp_init(&b->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->live++;
    if (role != R_CYCLE) {
        c->counted = 1;
        b->pending++;
    }
    b->started++;
    if (role == R_PUB)
        b->pub = c;
    const struct sockaddr_storage *to = role == R_PUB ? &b->pub_addr : &b->addr;
    if (r == 0)
        r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)to, on_connect);
    if (r < 0) {
        /* Synchronous failures (out of descriptors...): recorded, and the caller's loop goes on;
         * sl__bench_ws_progress() is re-entered through sl__bench_ws_conn_close but does not
         * recurse into starting more. */
        if (r == UV_ECONNREFUSED)
            sl__bench_ws_conn_fail(c, "refused", -1, NULL, 0);
        else
            sl__bench_ws_conn_fail(c, what, -1, uv_err_name(r), strlen(uv_err_name(r)));
    }
    return c;
}
