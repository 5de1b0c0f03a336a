/* The parts of `sluice bench ws` that do no I/O, so they can be unit-tested without a server: the
 * split of a target URL, the HTTP upgrade request and the check of its 101 answer, client frame
 * building (masked), a reader that turns received bytes into whole WebSocket messages within a
 * bounded buffer, the splitting of a text message into Centrifugo protocol lines and their
 * classification (replies, pushes, pings) without building a JSON tree, a stream parser for the
 * NATS text protocol (the baseline the benchmark compares against), a log-linear latency histogram
 * of fixed size, and a bounded table counting errors by kind. Everything here tolerates hostile
 * input: lengths are checked, nothing grows past a fixed limit, and malformed input is reported
 * rather than trusted. */
#ifndef SLUICE_CLI_BENCH_PROTO_H
#define SLUICE_CLI_BENCH_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "net/ws_frame.h"

/* ---- HTTP upgrade ---------------------------------------------------------------------------- */

#define SL__BENCH_MAX_HEAD 8192 /* a 101 answer longer than this is refused */

/* Writes the GET upgrade request for host (as it goes into the Host header, with any port) and
 * path, with key (24 base64 characters), into out. Returns its length, or 0 when it does not fit.
 */
size_t sl__bench_upgrade_request(char *out, size_t cap, const char *host, const char *path,
                                 const char *key);

/* Looks at the first n bytes of the server's answer. Returns the length of the response head
 * (through the blank line) when it is complete, 0 when more bytes are needed, or -1 when the
 * answer is unusable. *status is set as soon as the status line is complete (0 before, or when it
 * is not an HTTP/1.1 status line). A complete head is only accepted (> 0) when the status is 101,
 * Upgrade names websocket and Sec-WebSocket-Accept equals expect_accept; otherwise -1 with *why a
 * static text (the status is in *status). */
long sl__bench_upgrade_response(const char *p, size_t n, const char *expect_accept, int *status,
                                const char **why);

/* ---- target URLs ----------------------------------------------------------------------------- */

/* Where connections go: --url for every connection, --publish-url for the fan-out publisher (which
 * may be another node of a cluster sharing an engine). */
typedef struct sl__bench_url {
    char host[300];  /* as the URL gives it (with any port): the Host header */
    char name[300];  /* what to resolve: without the brackets of an IPv6 address and the port */
    char port[16];   /* decimal; "80" when the URL names none */
    char path[1024]; /* the request path */
} sl__bench_url;

/* Splits http://host[:port][/prefix] (or ws://; no TLS) into out. The path is path_override when
 * it is not NULL (it is used as given), else the URL's prefix without trailing slashes followed by
 * "/connection/websocket", or "/" when nats is set. Returns 0, or -1 with *why a static text;
 * URLs holding spaces or control characters are refused, since their parts go into the request as
 * they are. */
int sl__bench_url_parse(const char *url, int nats, const char *path_override, sl__bench_url *out,
                        const char **why);

/* ---- frames ---------------------------------------------------------------------------------- */

/* Turns payload_len bytes at buf + SL__WSF_MAX_HEADER into one masked, final frame of opcode: the
 * header goes right in front of the payload and the payload is masked in place. Returns the offset
 * of the frame's first byte in buf; the frame is buf[offset .. SL__WSF_MAX_HEADER + payload_len).
 */
size_t sl__bench_frame(uint8_t *buf, size_t payload_len, int opcode, const uint8_t mask[4]);

/* Assembles received bytes into whole messages. Data frames (text, binary) are handed on once
 * complete (fragments reassembled); control frames (close, ping, pong) as they come. Masked server
 * frames, continuations without a start, a new message inside a fragmented one and messages longer
 * than max_message are errors. Bytes are copied only when a frame is split across reads. */
typedef struct sl__bench_rx {
    uint8_t *pend; /* bytes of an incomplete frame */
    size_t pend_len, pend_cap;
    uint8_t *msg; /* a fragmented message being reassembled */
    size_t msg_len, msg_cap;
    int msg_opcode; /* 0: no fragmented message under way */
    size_t max_message;
} sl__bench_rx;

void sl__bench_rx_init(sl__bench_rx *rx, size_t max_message);
void sl__bench_rx_free(sl__bench_rx *rx);

/* Receives one message: opcode is SL__WSF_TEXT, BINARY, CLOSE, PING or PONG; data is valid during
 * the call only. Return 0 to go on; anything else stops sl__bench_rx_feed at once, which then
 * returns that value without touching rx again (so the callback may free it). */
typedef int (*sl__bench_rx_fn)(void *ud, int opcode, const uint8_t *data, size_t len);

/* Feeds n received bytes. Returns 0 when all were consumed, the callback's non-zero value, or -1
 * for a protocol error (*why a static text; rx must not be fed again). */
int sl__bench_rx_feed(sl__bench_rx *rx, const uint8_t *data, size_t n, sl__bench_rx_fn fn, void *ud,
                      const char **why);

/* A close frame's payload: *code (1005 when there is none) and the reason's bytes. -1 for a payload
 * of one byte, which RFC 6455 does not allow. */
int sl__bench_close_payload(const uint8_t *p, size_t n, int *code, const char **reason,
                            size_t *reason_len);

/* ---- Centrifugo protocol lines --------------------------------------------------------------- */

enum {
    SL__BL_INVALID = 0, /* not a JSON object this tool understands */
    SL__BL_PING,        /* {} */
    SL__BL_REPLY,       /* {"id":N, ...}; error set when it carries "error" */
    SL__BL_PUB,         /* {"push":{"channel":C,"pub":{...}}} */
    SL__BL_DISCONNECT,  /* {"push":{"disconnect":{"code":N,"reason":R}}} */
    SL__BL_PUSH,        /* any other push (join, leave, unsubscribe, message...) */
};

typedef struct sl__bench_line {
    int kind;
    uint64_t id;         /* REPLY */
    int error;           /* REPLY: an error reply */
    long code;           /* REPLY error, DISCONNECT; -1 when absent */
    const char *text;    /* REPLY error message, DISCONNECT reason: raw JSON string contents */
    size_t text_len;     /*   (escapes not decoded), NULL/0 when absent */
    const char *channel; /* PUB, PUSH: raw contents, NULL when absent */
    size_t channel_len;
    int has_t, has_s; /* PUB: numeric "t" and "s" found in the publication's data */
    uint64_t t, s;
} sl__bench_line;

/* A piece [p, e) of a line. */
typedef struct sl__bench_span {
    const char *p, *e;
} sl__bench_span;
/* An unsigned decimal integer filling the span (at most 64 bits): 0 and *out set, or -1. */
int sl__bench_span_u64(sl__bench_span v, uint64_t *out);

/* Calls fn for each non-blank line of a text message (split on '\n', a '\r' before it dropped).
 * Stops when fn returns non-zero and returns that value; 0 otherwise. */
typedef int (*sl__bench_line_fn)(void *ud, const char *line, size_t len);
int sl__bench_lines(const char *p, size_t n, sl__bench_line_fn fn, void *ud);

/* What the shortcut remembers between the pushes of one connection: the bytes that followed the
 * publication's data up to the offset's digits (the publisher's info, "offset":), from the last
 * push whose rest it walked and found well formed. A push whose rest starts with the same bytes
 * and ends with digits and "}}}" is then checked by one comparison instead of a walk (the walk
 * was a third of the client's time at 6 M deliveries a second). len 0: nothing remembered. */
#define SL__BENCH_TAIL_MAX 256
typedef struct sl__bench_tail {
    size_t len;
    char buf[SL__BENCH_TAIL_MAX];
} sl__bench_tail;

/* Classifies one line. Looks only at what it needs, in any key order; never reads past len.
 * tail: the connection's memo for the shortcut (NULL: none). */
void sl__bench_classify(const char *line, size_t len, sl__bench_tail *tail, sl__bench_line *out);
/* The shortcut sl__bench_classify takes for sluiced's own pub push layout: 1 when the line
 * [p, e) has exactly that layout (out filled), 0 when the generic parser must decide. It accepts
 * exactly what it would accept without tail. */
int sl__bench_fast_pub(const char *p, const char *e, sl__bench_tail *tail, sl__bench_line *out);

/* ---- NATS text protocol (baseline) ----------------------------------------------------------- */

enum {
    SL__NATS_INFO = 1,
    SL__NATS_PING,
    SL__NATS_PONG,
    SL__NATS_OK,
    SL__NATS_ERR, /* data: the error text */
    SL__NATS_MSG, /* data: the payload */
};

/* A stream parser: operations may span WebSocket frames, so incomplete ones are kept (up to
 * max_line for a control line and max_payload for a message). */
typedef struct sl__bench_nats {
    char *pend;
    size_t pend_len, pend_cap;
    size_t max_line, max_payload;
} sl__bench_nats;

void sl__bench_nats_init(sl__bench_nats *st, size_t max_payload);
void sl__bench_nats_free(sl__bench_nats *st);
typedef int (*sl__bench_nats_fn)(void *ud, int op, const char *data, size_t len);
/* Same contract as sl__bench_rx_feed. */
int sl__bench_nats_feed(sl__bench_nats *st, const char *data, size_t n, sl__bench_nats_fn fn,
                        void *ud, const char **why);

/* "t" and "s" of a flat JSON object such as {"t":123,"s":4} (the baseline's payload). */
void sl__bench_payload_ts(const char *p, size_t n, sl__bench_line *out);

/* ---- latency histogram ----------------------------------------------------------------------- */

/* Log-linear buckets: exact below 64, then 64 buckets per power of two (at most 1/64 = 1.6%
 * relative error) up to 2^64 - 1. Fixed size, so recording never allocates. */
#define SL__BENCH_HIST_SUB 64
#define SL__BENCH_HIST_BUCKETS (59 * SL__BENCH_HIST_SUB)

typedef struct sl__bench_hist {
    uint64_t count, min, max;
    double sum;
    uint64_t bucket[SL__BENCH_HIST_BUCKETS];
} sl__bench_hist;

void sl__bench_hist_init(sl__bench_hist *h);
void sl__bench_hist_record(sl__bench_hist *h, uint64_t v);
/* The value at quantile q in [0, 1]: the upper bound of the bucket holding that rank, never above
 * the largest value recorded (0 when empty). */
uint64_t sl__bench_hist_quantile(const sl__bench_hist *h, double q);
/* Adds every value recorded in src to dst (one histogram per thread, merged at the end). */
void sl__bench_hist_merge(sl__bench_hist *dst, const sl__bench_hist *src);
/* The bucket index of v and the range of values a bucket holds (for tests). */
size_t sl__bench_hist_index(uint64_t v);
void sl__bench_hist_range(size_t idx, uint64_t *lo, uint64_t *hi);

/* ---- errors by kind -------------------------------------------------------------------------- */

#define SL__BENCH_ERR_KINDS 32
#define SL__BENCH_ERR_TEXT 96

/* Counts errors under short texts such as "refused", "http 503" or "close 3008 slow". The first
 * SL__BENCH_ERR_KINDS distinct kinds get a row each; later ones are counted under "other", so a
 * server that invents a new reason per connection cannot grow the table. */
typedef struct sl__bench_errs {
    struct {
        char kind[SL__BENCH_ERR_TEXT];
        uint64_t n;
    } row[SL__BENCH_ERR_KINDS];
    size_t rows;
    uint64_t other, total;
} sl__bench_errs;

void sl__bench_errs_init(sl__bench_errs *e);
/* Adds one under kind (truncated; bytes that are not printable ASCII become '?'). */
void sl__bench_errs_add(sl__bench_errs *e, const char *kind);
/* Formats prefix + a number + the sanitised bytes text[0..len) (may be NULL) into out (at least
 * SL__BENCH_ERR_TEXT bytes): "close 3008 slow". code < 0 is left out. */
void sl__bench_errs_kind(char *out, const char *prefix, long code, const char *text, size_t len);

#endif
