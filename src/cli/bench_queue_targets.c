/* The targets of `sluice bench queue` (cmd_bench_queue.c runs the threads and reports): one driver
 * each for sluiced (HTTP/1.1 keep-alive over a blocking socket: produce is a PUT, consume a claim
 * and one acknowledge), NATS JetStream (a work-queue stream with file storage and a pull consumer)
 * and RabbitMQ (a durable queue, persistent messages, publisher confirms, manual acks). Each
 * creates its queue anew, opens one connection per thread, and reads the depth left at the end.
 * Built only when libnats and librabbitmq are found (CMakeLists.txt). */
#include "cli/bench_queue_internal.h"
#include "cli/cli.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <nats/nats.h>

#define EMPTY_POLL_US 1000 /* sluice: wait after an empty claim (HTTP has no long poll) */
#define WAIT_MS 100        /* NATS fetch and RabbitMQ consume: wait this long for a message */
#define CONSUMER_NAME "bench-workers"

/* ---- sluice: HTTP/1.1 keep-alive over a blocking socket ------------------------------------- */

typedef struct hconn {
    run *r;
    int fd;
    char *buf; /* the answer */
    size_t cap;
    char head[1024];
    sl__bq_item *items;
    char *ack; /* acknowledge body */
    size_t ack_cap;
} hconn;

static void hc_close(void *h)
{
    hconn *c = h;
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c->items);
    free(c->ack);
    free(c);
}

static void *hc_open(run *r)
{
    hconn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->r = r;
    c->fd = -1;
    /* Room for a full claim reply: each message's bytes plus its envelope (ids, timestamps). */
    c->cap = SL__BQ_MAX_HEAD + r->o.batch * (r->o.size + 1024) + 4096;
    c->ack_cap = 64 + r->o.batch * (SL__BQ_ID_MAX + 3);
    c->buf = malloc(c->cap);
    c->items = calloc(r->o.batch, sizeof *c->items);
    c->ack = malloc(c->ack_cap);
    if (c->buf == NULL || c->items == NULL || c->ack == NULL) {
        sl__bq_fail(r, "out of memory");
        hc_close(c);
        return NULL;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", r->u.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(r->u.host, port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        sl__bq_fail(r, "cannot resolve '%s': %s", r->u.host, gai_strerror(rc));
        hc_close(c);
        return NULL;
    }
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = r->timeout_ms / 1000, .tv_usec = (r->timeout_ms % 1000) * 1000};
    int one = 1;
    if (c->fd < 0 || setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        sl__bq_fail(r, "cannot connect to %s:%d: %s", r->u.host, r->u.port, strerror(errno));
        freeaddrinfo(ai);
        hc_close(c);
        return NULL;
    }
    freeaddrinfo(ai);
    return c;
}

/* One request, one answer. Returns the status (the body in c->buf at *body), or -1. */
static int hc_request(hconn *c, const char *method, const char *path, const char *body, size_t blen,
                      const char **rbody, size_t *rlen)
{
    run *r = c->r;
    int hl = snprintf(c->head, sizeof c->head,
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s%s%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, r->u.host, r->u.port, r->token ? "Authorization: Bearer " : "",
                      r->token ? r->token : "", r->token ? "\r\n" : "", blen);
    if (hl < 0 || (size_t)hl >= sizeof c->head) {
        sl__bq_fail(r, "request head too long");
        return -1;
    }
    struct iovec iov[2] = {{c->head, (size_t)hl}, {(void *)body, blen}};
    struct iovec *v = iov;
    int iovcnt = blen ? 2 : 1;
    while (iovcnt > 0) {
        ssize_t w = writev(c->fd, v, iovcnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            sl__bq_fail(r, "sending to sluiced: %s", w < 0 ? strerror(errno) : "closed");
            return -1;
        }
        /* A partial write: skip what went out and send the rest. */
        while (iovcnt > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    size_t len = 0, off = 0, bl = 0;
    int status = 0;
    long whole;
    while ((whole = sl__bq_http_response(c->buf, len, c->cap - SL__BQ_MAX_HEAD, &status, &off,
                                         &bl)) == 0) {
        if (len == c->cap) {
            sl__bq_fail(r, "sluiced's answer is larger than %zu bytes", c->cap);
            return -1;
        }
        ssize_t n = recv(c->fd, c->buf + len, c->cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            sl__bq_fail(r, "reading from sluiced: %s",
                        n < 0 ? strerror(errno) : "connection closed");
            return -1;
        }
        len += (size_t)n;
    }
    /* No pipelining: bytes past the answer would be a framing error. */
    if (whole < 0 || (size_t)whole != len) {
        sl__bq_fail(r, "sluiced's answer is not the HTTP/1.1 this tool reads");
        return -1;
    }
    *rbody = c->buf + off;
    *rlen = bl;
    return status;
}

static int sluice_setup(run *r)
{
    hconn *c = hc_open(r);
    if (c == NULL)
        return -1;
    r->admin = c;
    char path[300], body[300];
    const char *rb;
    size_t rl;
    snprintf(path, sizeof path, "/channels/%s", r->o.queue);
    int st = hc_request(c, "DELETE", path, NULL, 0, &rb, &rl);
    if (st != 200 && st != 404) {
        if (st > 0)
            sl__bq_fail(r, "DELETE %s: HTTP %d: %.*s", path, st, (int)(rl > 200 ? 200 : rl), rb);
        return -1;
    }
    int bl = snprintf(body, sizeof body, "{\"id\":\"%s\",\"kind\":\"queue\"}", r->o.queue);
    st = hc_request(c, "POST", "/channels", body, (size_t)bl, &rb, &rl);
    if (st < 200 || st > 299) {
        if (st > 0)
            sl__bq_fail(r, "POST /channels: HTTP %d: %.*s", st, (int)(rl > 200 ? 200 : rl), rb);
        return -1;
    }
    return 0;
}

static int sluice_produce(void *h, const char *p, size_t n)
{
    hconn *c = h;
    char path[300];
    const char *rb;
    size_t rl;
    snprintf(path, sizeof path, "/channels/%s", c->r->o.queue);
    int st = hc_request(c, "PUT", path, p, n, &rb, &rl);
    if (st == 200)
        return 0;
    if (st > 0)
        sl__bq_fail(c->r, "PUT %s: HTTP %d: %.*s", path, st, (int)(rl > 200 ? 200 : rl), rb);
    return -1;
}

static int sluice_consume(void *h, cons *cs)
{
    hconn *c = h;
    run *r = c->r;
    char path[400];
    const char *rb;
    size_t rl, count = 0;
    int more = 0;
    snprintf(path, sizeof path, "/channels/%s?exclusive=true&limit=%zu", r->o.queue, r->o.batch);
    int st = hc_request(c, "GET", path, NULL, 0, &rb, &rl);
    if (st != 200) {
        if (st > 0)
            sl__bq_fail(r, "claim: HTTP %d: %.*s", st, (int)(rl > 200 ? 200 : rl), rb);
        return -1;
    }
    if (sl__bq_claim_parse(rb, rl, c->items, r->o.batch, &count, &more) < 0) {
        sl__bq_fail(r, "claim: a reply this tool cannot read: %.*s", (int)(rl > 200 ? 200 : rl),
                    rb);
        return -1;
    }
    if (count == 0) {
        usleep(EMPTY_POLL_US);
        return 0;
    }
    for (size_t i = 0; i < count; i++)
        sl__bq_deliver_parsed(cs, c->items[i].timed, c->items[i].seq, c->items[i].t_ns);
    size_t al = sl__bq_ack_body(c->ack, c->ack_cap, c->items, count);
    snprintf(path, sizeof path, "/channels/%s/acknowledge", r->o.queue);
    st = hc_request(c, "POST", path, c->ack, al, &rb, &rl);
    if (st != 200) {
        if (st > 0)
            sl__bq_fail(r, "acknowledge: HTTP %d: %.*s", st, (int)(rl > 200 ? 200 : rl), rb);
        return -1;
    }
    long n = sl__bq_ack_count(rb, rl);
    if (n != (long)count) {
        sl__bq_fail(r, "acknowledge: %ld of %zu messages acknowledged", n, count);
        return -1;
    }
    return (int)count;
}

static int sluice_left(run *r, uint64_t *n)
{
    char path[300];
    const char *rb;
    size_t rl;
    snprintf(path, sizeof path, "/channels/%s/info", r->o.queue);
    if (hc_request(r->admin, "GET", path, NULL, 0, &rb, &rl) != 200)
        return -1;
    json_t *o = json_loadb(rb, rl, 0, NULL);
    json_t *d = json_object_get(o, "depth");
    int ok = json_is_integer(d) && json_integer_value(d) >= 0;
    *n = ok ? (uint64_t)json_integer_value(d) : 0;
    json_decref(o);
    return ok ? 0 : -1;
}

static void sluice_teardown(run *r)
{
    hc_close(r->admin);
    r->admin = NULL;
}

/* ---- NATS JetStream -------------------------------------------------------------------------- */

typedef struct nconn {
    run *r;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
} nconn;

static void nats_close_conn(void *h)
{
    nconn *c = h;
    if (c == NULL)
        return;
    if (c->nc != NULL)
        natsConnection_FlushTimeout(c->nc, 5000); /* acknowledgements still buffered */
    natsSubscription_Destroy(c->sub);
    jsCtx_Destroy(c->js);
    natsConnection_Destroy(c->nc);
    free(c);
}

static void nats_fail(run *r, const char *what, natsStatus s, jsErrCode jerr)
{
    const char *last = nats_GetLastError(NULL);
    sl__bq_fail(r, "%s: %s (JetStream error %d)%s%s", what, natsStatus_GetText(s), (int)jerr,
                last ? ": " : "", last ? last : "");
}

static void *nats_open_conn(run *r)
{
    nconn *c = calloc(1, sizeof *c);
    natsOptions *no = NULL;
    natsStatus s = c ? natsOptions_Create(&no) : NATS_NO_MEMORY;
    if (s == NATS_OK)
        s = natsOptions_SetURL(no, r->url);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(no, r->timeout_ms);
    if (s == NATS_OK)
        s = natsConnection_Connect(&c->nc, no);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&c->js, c->nc, NULL);
    natsOptions_Destroy(no);
    if (s != NATS_OK) {
        nats_fail(r, "connecting to nats-server", s, 0);
        nats_close_conn(c);
        return NULL;
    }
    c->r = r;
    return c;
}

static int nats_setup(run *r)
{
    nconn *c = nats_open_conn(r);
    if (c == NULL)
        return -1;
    r->admin = c;
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteStream(c->js, r->o.queue, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        nats_fail(r, "deleting the stream", s, jerr);
        return -1;
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[1] = {r->o.queue};
    sc.Name = r->o.queue;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    s = js_AddStream(&si, c->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        nats_fail(r, "creating the stream", s, jerr);
        return -1;
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = CONSUMER_NAME;
    cc.AckPolicy = js_AckExplicit;
    /* Enough for every consumer's batch to be out at once. */
    cc.MaxAckPending = (int64_t)(r->o.clients * r->o.batch * 2 + 1000);
    jsConsumerInfo *ci = NULL;
    s = js_AddConsumer(&ci, c->js, r->o.queue, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) {
        nats_fail(r, "creating the pull consumer", s, jerr);
        return -1;
    }
    return 0;
}

static int nats_produce(void *h, const char *p, size_t n)
{
    nconn *c = h;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, c->js, c->r->o.queue, p, (int)n, NULL, &jerr);
    jsPubAck_Destroy(pa);
    if (s == NATS_OK)
        return 0;
    nats_fail(c->r, "publish", s, jerr);
    return -1;
}

static void *nats_cons_open(run *r)
{
    nconn *c = nats_open_conn(r);
    if (c == NULL)
        return NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = r->o.queue;
    so.Consumer = CONSUMER_NAME;
    jsErrCode jerr = 0;
    natsStatus s = js_PullSubscribe(&c->sub, c->js, r->o.queue, CONSUMER_NAME, NULL, &so, &jerr);
    if (s != NATS_OK) {
        nats_fail(r, "pull subscribe", s, jerr);
        nats_close_conn(c);
        return NULL;
    }
    return c;
}

static int nats_consume(void *h, cons *cs)
{
    nconn *c = h;
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus s = natsSubscription_Fetch(&list, c->sub, (int)c->r->o.batch, WAIT_MS, &jerr);
    if (s == NATS_TIMEOUT)
        return 0;
    if (s != NATS_OK) {
        nats_fail(c->r, "fetch", s, jerr);
        return -1;
    }
    int n = list.Count;
    for (int i = 0; i < list.Count; i++) {
        natsMsg *m = list.Msgs[i];
        sl__bq_deliver(cs, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        /* Ack, not AckSync: the usual way, one publish to the reply subject without a round trip;
         * the stream's message count at the end shows that every ack arrived. */
        s = natsMsg_Ack(m, NULL);
        if (s != NATS_OK) {
            nats_fail(c->r, "ack", s, 0);
            n = -1;
            break;
        }
    }
    natsMsgList_Destroy(&list);
    return n;
}

static int nats_left(run *r, uint64_t *n)
{
    nconn *c = r->admin;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, c->js, r->o.queue, NULL, &jerr);
    if (s != NATS_OK) {
        nats_fail(r, "stream info", s, jerr);
        return -1;
    }
    *n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return 0;
}

static void nats_teardown(run *r)
{
    nconn *c = r->admin;
    if (c != NULL) {
        jsErrCode jerr = 0;
        js_DeleteStream(c->js, r->o.queue, NULL, &jerr);
    }
    nats_close_conn(c);
    r->admin = NULL;
}

/* ---- RabbitMQ -------------------------------------------------------------------------------- */

typedef struct aconn {
    run *r;
    amqp_connection_state_t c;
    uint64_t tag; /* publisher confirms: the last delivery tag sent */
} aconn;

#define CH 1

static const char *amqp_why(amqp_rpc_reply_t x, char *buf, size_t cap)
{
    switch (x.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return "ok";
    case AMQP_RESPONSE_NONE:
        return "missing reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return amqp_error_string2(x.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (x.reply.id == AMQP_CONNECTION_CLOSE_METHOD || x.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_bytes_t t = x.reply.id == AMQP_CONNECTION_CLOSE_METHOD
                                 ? ((amqp_connection_close_t *)x.reply.decoded)->reply_text
                                 : ((amqp_channel_close_t *)x.reply.decoded)->reply_text;
            snprintf(buf, cap, "server closed: %.*s", (int)t.len, (const char *)t.bytes);
            return buf;
        }
        return "server exception";
    }
    return "unknown";
}

static int amqp_check(run *r, const char *what, amqp_rpc_reply_t x)
{
    char buf[200];
    if (x.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    sl__bq_fail(r, "%s: %s", what, amqp_why(x, buf, sizeof buf));
    return -1;
}

static void rabbit_close(void *h)
{
    aconn *a = h;
    if (a == NULL)
        return;
    if (a->c != NULL) {
        amqp_channel_close(a->c, CH, AMQP_REPLY_SUCCESS);
        amqp_connection_close(a->c, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(a->c);
    }
    free(a);
}

static void *rabbit_open(run *r)
{
    aconn *a = calloc(1, sizeof *a);
    if (a == NULL || (a->c = amqp_new_connection()) == NULL) {
        sl__bq_fail(r, "out of memory");
        free(a);
        return NULL;
    }
    a->r = r;
    amqp_socket_t *sock = amqp_tcp_socket_new(a->c);
    struct timeval tv = {.tv_sec = r->timeout_ms / 1000, .tv_usec = (r->timeout_ms % 1000) * 1000};
    int rc =
        sock ? amqp_socket_open_noblock(sock, r->u.host, r->u.port, &tv) : AMQP_STATUS_NO_MEMORY;
    if (rc != AMQP_STATUS_OK) {
        sl__bq_fail(r, "cannot connect to %s:%d: %s", r->u.host, r->u.port, amqp_error_string2(rc));
        rabbit_close(a);
        return NULL;
    }
    const char *vhost = r->u.path[0] ? r->u.path : "/";
    const char *user = r->u.user[0] ? r->u.user : "guest";
    const char *pass = r->u.user[0] ? r->u.pass : "guest";
    if (amqp_check(r, "login",
                   amqp_login(a->c, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, user, pass)) < 0) {
        rabbit_close(a);
        return NULL;
    }
    amqp_channel_open(a->c, CH);
    if (amqp_check(r, "channel.open", amqp_get_rpc_reply(a->c)) < 0) {
        /* The channel never opened: close only the connection. */
        amqp_connection_close(a->c, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(a->c);
        a->c = NULL;
        rabbit_close(a);
        return NULL;
    }
    return a;
}

static int rabbit_setup(run *r)
{
    aconn *a = rabbit_open(r);
    if (a == NULL)
        return -1;
    r->admin = a;
    amqp_queue_delete(a->c, CH, amqp_cstring_bytes(r->o.queue), 0, 0);
    if (amqp_check(r, "queue.delete", amqp_get_rpc_reply(a->c)) < 0)
        return -1;
    amqp_queue_declare(a->c, CH, amqp_cstring_bytes(r->o.queue), 0, 1 /* durable */, 0, 0,
                       amqp_empty_table);
    return amqp_check(r, "queue.declare", amqp_get_rpc_reply(a->c));
}

static void *rabbit_prod_open(run *r)
{
    aconn *a = rabbit_open(r);
    if (a == NULL)
        return NULL;
    amqp_confirm_select(a->c, CH);
    if (amqp_check(r, "confirm.select", amqp_get_rpc_reply(a->c)) < 0) {
        rabbit_close(a);
        return NULL;
    }
    return a;
}

static int rabbit_produce(void *h, const char *p, size_t n)
{
    aconn *a = h;
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG,
        .delivery_mode = AMQP_DELIVERY_PERSISTENT,
        .content_type = amqp_cstring_bytes("application/json"),
    };
    int rc = amqp_basic_publish(a->c, CH, amqp_empty_bytes, amqp_cstring_bytes(a->r->o.queue), 0, 0,
                                &props, (amqp_bytes_t){.len = n, .bytes = (void *)p});
    if (rc != AMQP_STATUS_OK) {
        sl__bq_fail(a->r, "basic.publish: %s", amqp_error_string2(rc));
        return -1;
    }
    a->tag++;
    /* Wait for the confirm of this delivery tag (or a later one with multiple set). */
    for (;;) {
        amqp_frame_t f;
        struct timeval tv = {.tv_sec = a->r->timeout_ms / 1000,
                             .tv_usec = (a->r->timeout_ms % 1000) * 1000};
        rc = amqp_simple_wait_frame_noblock(a->c, &f, &tv);
        if (rc != AMQP_STATUS_OK) {
            sl__bq_fail(a->r, "waiting for a publisher confirm: %s", amqp_error_string2(rc));
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *ack = f.payload.method.decoded;
            if (ack->delivery_tag == a->tag || (ack->multiple && ack->delivery_tag >= a->tag)) {
                amqp_maybe_release_buffers(a->c);
                return 0;
            }
            continue;
        }
        if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            sl__bq_fail(a->r, "RabbitMQ refused a message (basic.nack)");
            return -1;
        }
        if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD)
            continue;
        sl__bq_fail(a->r, "unexpected AMQP method 0x%08x while waiting for a confirm",
                    (unsigned)f.payload.method.id);
        return -1;
    }
}

static void *rabbit_cons_open(run *r)
{
    aconn *a = rabbit_open(r);
    if (a == NULL)
        return NULL;
    amqp_basic_qos(a->c, CH, 0, (uint16_t)r->o.batch, 0);
    if (amqp_check(r, "basic.qos", amqp_get_rpc_reply(a->c)) < 0) {
        rabbit_close(a);
        return NULL;
    }
    amqp_basic_consume(a->c, CH, amqp_cstring_bytes(r->o.queue), amqp_empty_bytes, 0,
                       0 /* manual acks */, 0, amqp_empty_table);
    if (amqp_check(r, "basic.consume", amqp_get_rpc_reply(a->c)) < 0) {
        rabbit_close(a);
        return NULL;
    }
    return a;
}

static int rabbit_consume(void *h, cons *cs)
{
    aconn *a = h;
    amqp_envelope_t env;
    struct timeval tv = {.tv_sec = 0, .tv_usec = WAIT_MS * 1000};
    amqp_maybe_release_buffers(a->c);
    amqp_rpc_reply_t x = amqp_consume_message(a->c, &env, &tv, 0);
    if (x.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && x.library_error == AMQP_STATUS_TIMEOUT)
        return 0;
    if (amqp_check(a->r, "consume", x) < 0)
        return -1;
    sl__bq_deliver(cs, env.message.body.bytes, env.message.body.len);
    /* One basic.ack per message, like JetStream's per-message acks; no reply comes for it. */
    int rc = amqp_basic_ack(a->c, CH, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    if (rc != AMQP_STATUS_OK) {
        sl__bq_fail(a->r, "basic.ack: %s", amqp_error_string2(rc));
        return -1;
    }
    return 1;
}

static int rabbit_left(run *r, uint64_t *n)
{
    aconn *a = r->admin;
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(a->c, CH, amqp_cstring_bytes(r->o.queue),
                                                     1 /* passive */, 1, 0, 0, amqp_empty_table);
    if (amqp_check(r, "queue.declare (passive)", amqp_get_rpc_reply(a->c)) < 0 || ok == NULL)
        return -1;
    *n = ok->message_count;
    return 0;
}

static void rabbit_teardown(run *r)
{
    aconn *a = r->admin;
    if (a != NULL && a->c != NULL) {
        amqp_queue_delete(a->c, CH, amqp_cstring_bytes(r->o.queue), 0, 0);
        amqp_get_rpc_reply(a->c);
    }
    rabbit_close(a);
    r->admin = NULL;
}

/* ---- the drivers ----------------------------------------------------------------------------- */

const driver sl__bq_drivers[] = {
    [T_SLUICE] = {"sluice", NULL, NULL, sluice_setup, hc_open, sluice_produce, hc_close, hc_open,
                  sluice_consume, hc_close, sluice_left, sluice_teardown},
    [T_NATS] = {"nats", "write-no-fsync",
                "JetStream file storage: nats-server 2.9 acknowledges a publish after write(2) of "
                "the message into the stream's block file (page cache) and fsyncs those files "
                "every 2 minutes in the background, a fixed interval (2.9 has no sync_interval "
                "setting); no fsync before acknowledging",
                nats_setup, nats_open_conn, nats_produce, nats_close_conn, nats_cons_open,
                nats_consume, nats_close_conn, nats_left, nats_teardown},
    [T_RABBITMQ] = {"rabbitmq", "fsync-before-confirm",
                    "durable classic queue, persistent messages, publisher confirms: RabbitMQ "
                    "confirms a persistent message once it is fsynced to disk (fsyncs are batched "
                    "across messages), or once every queue it went to has delivered it and had it "
                    "acknowledged, which can come first while consumers keep up",
                    rabbit_setup, rabbit_prod_open, rabbit_produce, rabbit_close, rabbit_cons_open,
                    rabbit_consume, rabbit_close, rabbit_left, rabbit_teardown},
};
