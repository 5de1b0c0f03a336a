/* `sluice bench queue`: the same produce → claim → acknowledge work against sluiced (HTTP API),
 * NATS JetStream (file storage, work-queue retention, explicit acks, a pull consumer) and
 * RabbitMQ (durable queue, persistent messages, publisher confirms, manual acks), so that the
 * three figures differ only in the server. N producer threads and N consumer threads, each with
 * its own connection, in this one process: every producer has one message in flight and waits
 * for its confirmation (sluiced's 200, JetStream's publish ack, RabbitMQ's basic.ack), so the
 * produce latency is request to confirm and the rate is what N confirmed writers get. Consumers
 * claim up to --batch messages, record produce-to-consume latency from the send time inside each
 * payload, and acknowledge them. Every sequence number is checked off in a ledger, so a message
 * lost or delivered twice shows in the result; the queue's depth is read back at the end.
 * Blocking calls on threads, because the NATS and RabbitMQ C clients are blocking libraries: the
 * sluice target uses plain blocking sockets on threads too, so no target gets a cleverer client.
 * The client's own CPU use is reported: near 100% of its core would make it the bottleneck.
 * Built only when libnats and librabbitmq are found (CMakeLists.txt). */
#include "cli/bench_proto.h"
#include "cli/bench_queue.h"
#include "cli/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <nats/nats.h>

#define MAX_CLIENTS 256
#define MAX_BATCH 1000          /* sluiced's own limit per read */
#define EMPTY_POLL_US 1000      /* sluice: wait after an empty claim (HTTP has no long poll) */
#define WAIT_MS 100             /* NATS fetch and RabbitMQ consume: wait this long for a message */
#define DRAIN_NS 30000000000ull /* after the last produce: consumers give up after this long */
#define CONSUMER_NAME "bench-workers"

enum { T_SLUICE, T_NATS, T_RABBITMQ };

static const char usage[] =
    "Usage: sluice bench queue --target sluice|nats|rabbitmq [options]\n"
    "\n"
    "Produce → claim → acknowledge against sluiced, NATS JetStream or RabbitMQ: N producer\n"
    "threads (one confirmed message in flight each) and N consumer threads (claim up to --batch,\n"
    "acknowledge), each with its own connection. Prints produced/s, consumed (claim + ack)/s,\n"
    "p50/p99 of produce latency (request to confirm) and of end-to-end latency (produce to\n"
    "consume), checks every message was consumed exactly once, and ends with a RESULT line.\n"
    "The queue (sluice channel, JetStream stream, RabbitMQ queue) is deleted and created anew.\n"
    "\n"
    "Options:\n"
    "  --target T        sluice, nats or rabbitmq\n"
    "  --url URL         sluice: http://host:port (as for every command); nats: nats://host:port\n"
    "                    (default nats://127.0.0.1:4222); rabbitmq: "
    "amqp://user:pass@host:port/vhost\n"
    "                    (default amqp://guest:guest@127.0.0.1:5672/)\n"
    "  --clients N       producers, and as many consumers; default 4\n"
    "  --messages M      produce at most M messages; default 100000\n"
    "  --seconds S       stop producing after S seconds (default: when M are produced)\n"
    "  --size BYTES      payload size (JSON, at least 58); default 256\n"
    "  --batch K         messages per claim / fetch / prefetch; default 32\n"
    "  --queue NAME      queue name; default benchq\n"
    "  --durability TEXT sluice: how the server stores (one word for the RESULT line, e.g.\n"
    "                    lmdb-sync); default memory\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help        show this help\n"
    "\n"
    "Exit status 0 only when every produced message was consumed once and none is left.\n";

enum {
    OPT_TARGET = 0x200,
    OPT_CLIENTS,
    OPT_MESSAGES,
    OPT_SECONDS,
    OPT_SIZE,
    OPT_BATCH,
    OPT_QUEUE,
    OPT_DURABILITY,
};

typedef struct opts {
    int target;
    size_t clients, messages, size, batch;
    double seconds;
    const char *queue, *durability;
} opts;

typedef struct run run;
typedef struct cons cons;

/* One target: connections are opened by the thread that uses them. */
typedef struct driver {
    const char *name;
    const char *durability;      /* one word for the RESULT line */
    const char *durability_text; /* the sentence printed beside the figures */
    int (*setup)(run *r);        /* delete and create the queue; keeps an admin connection */
    void *(*prod_open)(run *r);
    int (*produce)(void *h, const char *p, size_t n); /* 0 once confirmed */
    void (*prod_close)(void *h);
    void *(*cons_open)(run *r);
    int (*consume)(void *h, cons *c); /* messages acknowledged, 0 none came, -1 error */
    void (*cons_close)(void *h);
    int (*left)(run *r, uint64_t *n); /* messages still in the queue */
    void (*teardown)(run *r);
} driver;

struct run {
    opts o;
    const driver *d;
    const char *url, *token;
    sl__bq_url u;
    long timeout_ms;
    void *admin; /* the setup connection, owned by the driver */
    atomic_uint_fast64_t next_seq, produced, consumed, errors, untimed;
    atomic_int producers_live, abort;
    _Atomic uint64_t t_prod_done, t_last_consume;
    uint64_t t0, t_stop;
    sl__bq_ledger ledger;
    pthread_barrier_t ready, go;
    pthread_mutex_t mu; /* guards what follows */
    sl__bench_hist prod_lat, e2e_lat;
    char first_error[256];
};

struct cons {
    run *r;
    sl__bench_hist lat;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Counts an error; the first one's text is kept for the report. */
static void fail(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(run *r, const char *fmt, ...)
{
    atomic_fetch_add(&r->errors, 1);
    pthread_mutex_lock(&r->mu);
    if (r->first_error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->first_error, sizeof r->first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->mu);
}

/* A consumer got a message: latency from its send time, and the ledger. */
static void deliver_parsed(cons *c, int timed, uint64_t seq, uint64_t t)
{
    if (!timed) {
        atomic_fetch_add(&c->r->untimed, 1);
        return;
    }
    uint64_t now = now_ns();
    sl__bench_hist_record(&c->lat, now > t ? now - t : 0);
    if (sl__bq_ledger_mark(&c->r->ledger, seq) == 0)
        atomic_fetch_add(&c->r->consumed, 1);
}

static void deliver(cons *c, const char *p, size_t n)
{
    uint64_t seq = 0, t = 0;
    int ok = sl__bq_payload_parse(p, n, &seq, &t) == 0;
    deliver_parsed(c, ok, seq, t);
}

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
        fail(r, "out of memory");
        hc_close(c);
        return NULL;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", r->u.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(r->u.host, port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        fail(r, "cannot resolve '%s': %s", r->u.host, gai_strerror(rc));
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
        fail(r, "cannot connect to %s:%d: %s", r->u.host, r->u.port, strerror(errno));
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
        fail(r, "request head too long");
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
            fail(r, "sending to sluiced: %s", w < 0 ? strerror(errno) : "closed");
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
            fail(r, "sluiced's answer is larger than %zu bytes", c->cap);
            return -1;
        }
        ssize_t n = recv(c->fd, c->buf + len, c->cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fail(r, "reading from sluiced: %s", n < 0 ? strerror(errno) : "connection closed");
            return -1;
        }
        len += (size_t)n;
    }
    /* No pipelining: bytes past the answer would be a framing error. */
    if (whole < 0 || (size_t)whole != len) {
        fail(r, "sluiced's answer is not the HTTP/1.1 this tool reads");
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
            fail(r, "DELETE %s: HTTP %d: %.*s", path, st, (int)(rl > 200 ? 200 : rl), rb);
        return -1;
    }
    int bl = snprintf(body, sizeof body, "{\"id\":\"%s\",\"kind\":\"queue\"}", r->o.queue);
    st = hc_request(c, "POST", "/channels", body, (size_t)bl, &rb, &rl);
    if (st < 200 || st > 299) {
        if (st > 0)
            fail(r, "POST /channels: HTTP %d: %.*s", st, (int)(rl > 200 ? 200 : rl), rb);
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
        fail(c->r, "PUT %s: HTTP %d: %.*s", path, st, (int)(rl > 200 ? 200 : rl), rb);
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
            fail(r, "claim: HTTP %d: %.*s", st, (int)(rl > 200 ? 200 : rl), rb);
        return -1;
    }
    if (sl__bq_claim_parse(rb, rl, c->items, r->o.batch, &count, &more) < 0) {
        fail(r, "claim: a reply this tool cannot read: %.*s", (int)(rl > 200 ? 200 : rl), rb);
        return -1;
    }
    if (count == 0) {
        usleep(EMPTY_POLL_US);
        return 0;
    }
    for (size_t i = 0; i < count; i++)
        deliver_parsed(cs, c->items[i].timed, c->items[i].seq, c->items[i].t_ns);
    size_t al = sl__bq_ack_body(c->ack, c->ack_cap, c->items, count);
    snprintf(path, sizeof path, "/channels/%s/acknowledge", r->o.queue);
    st = hc_request(c, "POST", path, c->ack, al, &rb, &rl);
    if (st != 200) {
        if (st > 0)
            fail(r, "acknowledge: HTTP %d: %.*s", st, (int)(rl > 200 ? 200 : rl), rb);
        return -1;
    }
    long n = sl__bq_ack_count(rb, rl);
    if (n != (long)count) {
        fail(r, "acknowledge: %ld of %zu messages acknowledged", n, count);
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
    fail(r, "%s: %s (JetStream error %d)%s%s", what, natsStatus_GetText(s), (int)jerr,
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
        deliver(cs, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
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
    fail(r, "%s: %s", what, amqp_why(x, buf, sizeof buf));
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
        fail(r, "out of memory");
        free(a);
        return NULL;
    }
    a->r = r;
    amqp_socket_t *sock = amqp_tcp_socket_new(a->c);
    struct timeval tv = {.tv_sec = r->timeout_ms / 1000, .tv_usec = (r->timeout_ms % 1000) * 1000};
    int rc =
        sock ? amqp_socket_open_noblock(sock, r->u.host, r->u.port, &tv) : AMQP_STATUS_NO_MEMORY;
    if (rc != AMQP_STATUS_OK) {
        fail(r, "cannot connect to %s:%d: %s", r->u.host, r->u.port, amqp_error_string2(rc));
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
        fail(a->r, "basic.publish: %s", amqp_error_string2(rc));
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
            fail(a->r, "waiting for a publisher confirm: %s", amqp_error_string2(rc));
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
            fail(a->r, "RabbitMQ refused a message (basic.nack)");
            return -1;
        }
        if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD)
            continue;
        fail(a->r, "unexpected AMQP method 0x%08x while waiting for a confirm",
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
    deliver(cs, env.message.body.bytes, env.message.body.len);
    /* One basic.ack per message, like JetStream's per-message acks; no reply comes for it. */
    int rc = amqp_basic_ack(a->c, CH, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    if (rc != AMQP_STATUS_OK) {
        fail(a->r, "basic.ack: %s", amqp_error_string2(rc));
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

static const driver drivers[] = {
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

/* ---- threads --------------------------------------------------------------------------------- */

static void *producer(void *arg)
{
    run *r = arg;
    sl__bench_hist *lat = malloc(sizeof *lat);
    char *buf = malloc(r->o.size);
    void *h = lat && buf ? r->d->prod_open(r) : NULL;
    if (h == NULL)
        atomic_store(&r->abort, 1);
    pthread_barrier_wait(&r->ready);
    pthread_barrier_wait(&r->go);
    if (h != NULL && !atomic_load(&r->abort)) {
        sl__bench_hist_init(lat);
        for (;;) {
            uint64_t seq = atomic_fetch_add(&r->next_seq, 1);
            uint64_t t = now_ns();
            if (seq >= r->o.messages || t >= r->t_stop || atomic_load(&r->abort))
                break;
            sl__bq_payload(buf, r->o.size, seq, t);
            if (r->d->produce(h, buf, r->o.size) < 0)
                break;
            sl__bench_hist_record(lat, now_ns() - t);
            sl__bq_ledger_produced(&r->ledger, seq);
            atomic_fetch_add(&r->produced, 1);
        }
        pthread_mutex_lock(&r->mu);
        sl__bench_hist_merge(&r->prod_lat, lat);
        pthread_mutex_unlock(&r->mu);
    }
    if (atomic_fetch_sub(&r->producers_live, 1) == 1)
        atomic_store(&r->t_prod_done, now_ns());
    if (h != NULL)
        r->d->prod_close(h);
    free(buf);
    free(lat);
    return NULL;
}

static void *consumer(void *arg)
{
    run *r = arg;
    cons *c = malloc(sizeof *c);
    void *h = c ? r->d->cons_open(r) : NULL;
    if (h == NULL)
        atomic_store(&r->abort, 1);
    pthread_barrier_wait(&r->ready);
    pthread_barrier_wait(&r->go);
    if (h != NULL && !atomic_load(&r->abort)) {
        c->r = r;
        sl__bench_hist_init(&c->lat);
        for (;;) {
            if (atomic_load(&r->abort))
                break;
            uint64_t done = atomic_load(&r->t_prod_done);
            /* Everything produced has been consumed once: stop (ledger counts first times only). */
            if (done && atomic_load(&r->consumed) >= atomic_load(&r->produced))
                break;
            if (done && now_ns() > done + DRAIN_NS)
                break;
            int n = r->d->consume(h, c);
            if (n < 0)
                break;
            if (n > 0)
                atomic_store(&r->t_last_consume, now_ns());
        }
        pthread_mutex_lock(&r->mu);
        sl__bench_hist_merge(&r->e2e_lat, &c->lat);
        pthread_mutex_unlock(&r->mu);
    }
    if (h != NULL)
        r->d->cons_close(h);
    free(c);
    return NULL;
}

/* ---- options and the run --------------------------------------------------------------------- */

static int opt_fn(void *ud, int opt, const char *arg)
{
    opts *o = ud;
    const char *cmd = "bench queue";
    size_t n;
    double d;
    switch (opt) {
    case OPT_TARGET:
        if (!strcmp(arg, "sluice"))
            o->target = T_SLUICE;
        else if (!strcmp(arg, "nats"))
            o->target = T_NATS;
        else if (!strcmp(arg, "rabbitmq"))
            o->target = T_RABBITMQ;
        else
            return sl__cli_usage_error(cmd, "--target must be sluice, nats or rabbitmq");
        return 0;
    case OPT_CLIENTS:
    case OPT_MESSAGES:
    case OPT_SIZE:
    case OPT_BATCH:
        if (sl__cli_parse_count(arg, &n) < 0 || n < 1)
            return sl__cli_usage_error(cmd, "expected a positive count, not '%s'", arg);
        if (opt == OPT_CLIENTS && n > MAX_CLIENTS)
            return sl__cli_usage_error(cmd, "--clients is at most %d", MAX_CLIENTS);
        if (opt == OPT_MESSAGES && n > 1000000000)
            return sl__cli_usage_error(cmd, "--messages is at most 1000000000");
        if (opt == OPT_SIZE && (n < SL__BQ_MIN_SIZE || n > SL__BQ_MAX_SIZE))
            return sl__cli_usage_error(cmd, "--size must be from %d to %u bytes", SL__BQ_MIN_SIZE,
                                       SL__BQ_MAX_SIZE);
        if (opt == OPT_BATCH && n > MAX_BATCH)
            return sl__cli_usage_error(cmd, "--batch is at most %d", MAX_BATCH);
        *(opt == OPT_CLIENTS    ? &o->clients
          : opt == OPT_MESSAGES ? &o->messages
          : opt == OPT_SIZE     ? &o->size
                                : &o->batch) = n;
        return 0;
    case OPT_SECONDS:
        if (sl__cli_parse_duration(arg, &d) < 0 || d <= 0 || d > 86400)
            return sl__cli_usage_error(cmd, "--seconds must be a duration above 0");
        o->seconds = d;
        return 0;
    case OPT_QUEUE:
        /* A name every target accepts as it is: sluice channel id, stream name, queue name. */
        if (strlen(arg) < 1 || strlen(arg) > 64 ||
            strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                strlen(arg))
            return sl__cli_usage_error(cmd, "--queue must be 1 to 64 of [A-Za-z0-9_-]");
        o->queue = arg;
        return 0;
    case OPT_DURABILITY:
        if (strlen(arg) < 1 || strlen(arg) > 40 || strpbrk(arg, " \t\r\n=") != NULL)
            return sl__cli_usage_error(cmd, "--durability must be one word");
        o->durability = arg;
        return 0;
    }
    return SL__EXIT_USAGE;
}

static double secs_between(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e9 : 0;
}

static double cpu_seconds(const struct rusage *u)
{
    return (double)u->ru_utime.tv_sec + (double)u->ru_utime.tv_usec / 1e6 +
           (double)u->ru_stime.tv_sec + (double)u->ru_stime.tv_usec / 1e6;
}

int sl__cli_cmd_bench_queue(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},
                                            {"target", required_argument, NULL, OPT_TARGET},
                                            {"clients", required_argument, NULL, OPT_CLIENTS},
                                            {"messages", required_argument, NULL, OPT_MESSAGES},
                                            {"seconds", required_argument, NULL, OPT_SECONDS},
                                            {"size", required_argument, NULL, OPT_SIZE},
                                            {"batch", required_argument, NULL, OPT_BATCH},
                                            {"queue", required_argument, NULL, OPT_QUEUE},
                                            {"durability", required_argument, NULL, OPT_DURABILITY},
                                            SL__CLI_CONN_OPTS,
                                            {0}};
    const char *cmd = "bench queue";
    opts o = {.target = -1,
              .clients = 4,
              .messages = 100000,
              .size = 256,
              .batch = 32,
              .queue = "benchq",
              .durability = "memory"};
    int rc = sl__cli_getopt(cmd, argc, argv, options, usage, conn, opt_fn, &o);
    if (rc >= 0)
        return rc;
    if (argc - optind != 0)
        return sl__cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o.target < 0)
        return sl__cli_usage_error(cmd, "--target is required (sluice, nats or rabbitmq)");

    run *r = calloc(1, sizeof *r);
    if (r == NULL || sl__bq_ledger_init(&r->ledger, o.messages) < 0) {
        free(r);
        sl__cli_err("out of memory");
        return SL__EXIT_FAIL;
    }
    r->o = o;
    r->d = &drivers[o.target];
    r->timeout_ms = conn->timeout_ms > 0 ? conn->timeout_ms : 30000;
    static const char *const scheme[] = {"http", "nats", "amqp"};
    static const char *const def_url[] = {NULL, "nats://127.0.0.1:4222",
                                          "amqp://guest:guest@127.0.0.1:5672/"};
    static const int def_port[] = {80, 4222, 5672};
    /* The sluice URL (flag, SLUICE_URL or its default) is ignored for the other targets unless it
     * names their scheme. */
    r->url = conn->url;
    if (o.target != T_SLUICE && (strncmp(r->url, scheme[o.target], strlen(scheme[o.target])) != 0 ||
                                 strncmp(r->url + strlen(scheme[o.target]), "://", 3) != 0))
        r->url = def_url[o.target];
    const char *why = NULL;
    if (sl__bq_url_parse(r->url, scheme[o.target], def_port[o.target], &r->u, &why) < 0) {
        sl__bq_ledger_free(&r->ledger);
        free(r);
        return sl__cli_usage_error(cmd, "--url '%s': %s", conn->url, why);
    }
    if (o.target == T_SLUICE && conn->token != NULL) {
        if (strpbrk(conn->token, "\r\n \t") != NULL || strlen(conn->token) > 8192) {
            sl__bq_ledger_free(&r->ledger);
            free(r);
            return sl__cli_usage_error(cmd, "the token holds characters a token cannot have");
        }
        r->token = conn->token;
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&r->mu, NULL);
    sl__bench_hist_init(&r->prod_lat);
    sl__bench_hist_init(&r->e2e_lat);

    int exit_code = SL__EXIT_OK;
    size_t nthreads = 2 * o.clients, started = 0;
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (th == NULL || r->d->setup(r) < 0) {
        sl__cli_err("%s: setting up the queue failed: %s", r->d->name,
                    r->first_error[0] ? r->first_error : "out of memory");
        exit_code = SL__EXIT_UNAVAIL;
        goto out;
    }
    pthread_barrier_init(&r->ready, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&r->go, NULL, (unsigned)nthreads + 1);
    atomic_store(&r->producers_live, (int)o.clients);
    for (size_t i = 0; i < nthreads; i++) {
        if (pthread_create(&th[i], NULL, i % 2 ? consumer : producer, r) != 0) {
            /* The barriers count on every thread: without them the run cannot start. */
            sl__cli_err("cannot start a thread: %s", strerror(errno));
            abort();
        }
        started++;
    }
    pthread_barrier_wait(&r->ready); /* every connection is open (or failed) */
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    r->t0 = now_ns();
    r->t_stop = o.seconds > 0 ? r->t0 + (uint64_t)(o.seconds * 1e9) : UINT64_MAX;
    pthread_barrier_wait(&r->go);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    uint64_t t_end = now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    pthread_barrier_destroy(&r->ready);
    pthread_barrier_destroy(&r->go);

    uint64_t left = 0;
    int have_left = -1;
    /* Acknowledgements without a reply (NATS, RabbitMQ) may still be on their way: look again. */
    for (int i = 0; i < 50 && !atomic_load(&r->abort); i++) {
        have_left = r->d->left(r, &left);
        if (have_left < 0 || left == 0)
            break;
        usleep(100000);
    }
    uint64_t produced = atomic_load(&r->produced), consumed = atomic_load(&r->consumed);
    uint64_t t_done = atomic_load(&r->t_prod_done), t_last = atomic_load(&r->t_last_consume);
    sl__bq_summary s = {
        .target = r->d->name,
        .durability = r->d->durability ? r->d->durability : o.durability,
        .clients = (unsigned)o.clients,
        .produced = produced,
        .consumed = consumed,
        .duplicates = atomic_load(&r->ledger.dups),
        .missing = sl__bq_ledger_missing(&r->ledger),
        .left = left,
        .errors =
            atomic_load(&r->errors) + atomic_load(&r->untimed) + atomic_load(&r->ledger.unknown),
        .produce_rate =
            secs_between(r->t0, t_done) > 0 ? produced / secs_between(r->t0, t_done) : 0,
        .consume_rate =
            secs_between(r->t0, t_last) > 0 ? consumed / secs_between(r->t0, t_last) : 0,
        .produce_p50_us = sl__bench_hist_quantile(&r->prod_lat, 0.50) / 1e3,
        .produce_p99_us = sl__bench_hist_quantile(&r->prod_lat, 0.99) / 1e3,
        .e2e_p50_us = sl__bench_hist_quantile(&r->e2e_lat, 0.50) / 1e3,
        .e2e_p99_us = sl__bench_hist_quantile(&r->e2e_lat, 0.99) / 1e3,
        .client_cpu =
            secs_between(r->t0, t_end) > 0
                ? 100.0 * (cpu_seconds(&ru1) - cpu_seconds(&ru0)) / secs_between(r->t0, t_end)
                : 0,
    };
    printf("sluice bench queue: %s at %s:%d, %zu producers + %zu consumers, %zu-byte messages, "
           "batch %zu\n",
           r->d->name, r->u.host, r->u.port, o.clients, o.clients, o.size, o.batch);
    if (r->d->durability_text)
        printf("  durability: %s\n", r->d->durability_text);
    else
        printf("  durability: as the server was started (labelled '%s')\n", o.durability);
    printf("  produced %" PRIu64 " in %.2f s = %.0f/s (one confirmed message in flight per "
           "producer)\n",
           produced, secs_between(r->t0, t_done), s.produce_rate);
    printf("  consumed (claim + ack) %" PRIu64 " in %.2f s = %.0f/s; duplicates %" PRIu64
           ", missing %" PRIu64 ", left in the queue %" PRIu64 "%s\n",
           consumed, secs_between(r->t0, t_last), s.consume_rate, s.duplicates, s.missing, left,
           have_left < 0 ? " (unknown)" : "");
    printf("  produce latency us (request to confirm, %" PRIu64 " samples): p50 %.0f  p99 %.0f  "
           "max %.0f\n",
           r->prod_lat.count, s.produce_p50_us, s.produce_p99_us, r->prod_lat.max / 1e3);
    printf("  end-to-end latency us (produce to consume, %" PRIu64 " samples): p50 %.0f  p99 %.0f"
           "  max %.0f\n",
           r->e2e_lat.count, s.e2e_p50_us, s.e2e_p99_us, r->e2e_lat.max / 1e3);
    printf("  client CPU: %.0f%% of one core over %.2f s (all threads of this process)\n",
           s.client_cpu, secs_between(r->t0, t_end));
    if (s.errors)
        printf("  errors: %" PRIu64 " (first: %s)\n", s.errors,
               r->first_error[0] ? r->first_error : "a message without its sequence number");
    char line[1024];
    if (sl__bq_result_line(line, sizeof line, &s) > 0)
        printf("%s\n", line);
    fflush(stdout);
    if (atomic_load(&r->abort) || produced == 0 || s.errors || s.missing || s.duplicates ||
        have_left < 0 || left != 0) {
        sl__cli_err("the run was not clean: %s", r->first_error[0] ? r->first_error
                                                 : produced == 0   ? "nothing was produced"
                                                                   : "see the figures above");
        exit_code = produced == 0 ? SL__EXIT_UNAVAIL : SL__EXIT_FAIL;
    }
out:
    if (r->admin != NULL)
        r->d->teardown(r);
    if (o.target == T_NATS)
        nats_CloseAndWait(5000);
    pthread_mutex_destroy(&r->mu);
    sl__bq_ledger_free(&r->ledger);
    free(th);
    free(r);
    return exit_code;
}
