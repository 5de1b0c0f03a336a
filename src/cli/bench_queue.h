/* The parts of `sluice bench queue` that do no I/O, so they can be unit-tested without any server:
 * the message payload every target carries (its sequence number and send time in a JSON object of
 * an exact size), the framing of sluiced's HTTP/1.1 answers, the parsing of a claim reply into
 * message ids and payload fields, the acknowledge body, the URLs of the three targets, the
 * exactly-once ledger and the machine-readable RESULT line. Latency percentiles come from the
 * histogram in bench_proto.h. Everything is bounded: a reply that does not fit is refused, never
 * grown into. */
#ifndef SLUICE_CLI_BENCH_QUEUE_H
#define SLUICE_CLI_BENCH_QUEUE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- payload --------------------------------------------------------------------------------- */

/* The smallest payload that holds any two 64-bit numbers: {"s":<20 digits>,"t":<20 digits>,"p":""}
 */
#define SL__BQ_MIN_SIZE 58
#define SL__BQ_MAX_SIZE (1u << 20)

/* Writes exactly size bytes of JSON into out (no NUL): {"s":SEQ,"t":T_NS,"p":"xxx..."}, padded
 * with 'x' so that every system carries the same bytes. Returns size, or 0 when size is below
 * SL__BQ_MIN_SIZE or above SL__BQ_MAX_SIZE. */
size_t sl__bq_payload(char *out, size_t size, uint64_t seq, uint64_t t_ns);
/* Reads "s" and "t" back from a payload (any flat JSON object holding both). 0, or -1 when
 * either is missing. */
int sl__bq_payload_parse(const char *p, size_t n, uint64_t *seq, uint64_t *t_ns);

/* ---- HTTP/1.1 answers ------------------------------------------------------------------------ */

#define SL__BQ_MAX_HEAD 8192

/* Looks at the first n bytes of an answer. Returns the length of the whole response (head and a
 * Content-Length body) when it is complete, 0 when more bytes are needed, -1 when it is unusable
 * (not HTTP/1.1, no Content-Length, chunked, a head longer than SL__BQ_MAX_HEAD, a body longer
 * than max_body, or "Connection: close"). On success *status, *body_off and *body_len are set. */
long sl__bq_http_response(const char *p, size_t n, size_t max_body, int *status, size_t *body_off,
                          size_t *body_len);

/* ---- claim replies and acknowledgements ------------------------------------------------------ */

#define SL__BQ_ID_MAX 40

typedef struct sl__bq_item {
    char id[SL__BQ_ID_MAX]; /* sluice message id, NUL-terminated */
    uint64_t seq, t_ns;     /* from the payload; valid when timed */
    int timed;
} sl__bq_item;

/* Parses {"messages":[{"id":..,"content":{"data":{"s":..,"t":..}},...},...],"more":B} into at
 * most cap items. Returns 0 with *count and *more set, or -1 when the reply is not that shape, an
 * id is not a string of fewer than SL__BQ_ID_MAX bytes, or it holds more than cap messages. A
 * message whose data lacks "s" or "t" is returned with timed = 0. */
int sl__bq_claim_parse(const char *body, size_t n, sl__bq_item *items, size_t cap, size_t *count,
                       int *more);
/* {"message_ids":["id",...]} for n items into out (NUL-terminated). Returns its length, or 0 when
 * it does not fit or n is 0. */
size_t sl__bq_ack_body(char *out, size_t cap, const sl__bq_item *items, size_t n);
/* The count in an acknowledge reply {"status":"ok","acknowledged":N}; -1 when absent. */
long sl__bq_ack_count(const char *body, size_t n);

/* ---- URLs ------------------------------------------------------------------------------------ */

typedef struct sl__bq_url {
    char host[256];
    int port;
    char user[128], pass[128]; /* empty when the URL has none */
    char path[256];            /* without the leading '/', percent escapes left as they are */
} sl__bq_url;

/* Parses scheme://[user[:pass]@]host[:port][/path] where scheme is the one expected (http, nats
 * or amqp). Returns 0, or -1 with *why a static text. */
int sl__bq_url_parse(const char *url, const char *scheme, int default_port, sl__bq_url *out,
                     const char **why);

/* ---- exactly-once ledger --------------------------------------------------------------------- */

/* One byte per sequence number, shared by every thread: bit 0 says its production was confirmed,
 * bit 1 that it was consumed. A message may be consumed before its producer sees the confirm, so
 * the two are set independently and compared at the end. */
typedef struct sl__bq_ledger {
    _Atomic unsigned char *seen;
    size_t n;
    atomic_uint_fast64_t dups, unknown;
} sl__bq_ledger;

int sl__bq_ledger_init(sl__bq_ledger *l, size_t n); /* 0 or -1 (out of memory) */
void sl__bq_ledger_free(sl__bq_ledger *l);
/* Records that seq's production was confirmed (seq below n, or ignored). */
void sl__bq_ledger_produced(sl__bq_ledger *l, uint64_t seq);
/* Marks seq consumed: 0 the first time, 1 for a duplicate, -1 for a number out of range. */
int sl__bq_ledger_mark(sl__bq_ledger *l, uint64_t seq);
/* How many confirmed messages were never consumed. */
uint64_t sl__bq_ledger_missing(const sl__bq_ledger *l);

/* ---- the result line ------------------------------------------------------------------------- */

typedef struct sl__bq_summary {
    const char *target, *durability; /* durability: one word, e.g. "fsync-before-confirm" */
    unsigned clients;
    uint64_t produced, consumed, duplicates, missing, left, errors;
    double produce_rate, consume_rate; /* per second */
    double produce_p50_us, produce_p99_us, e2e_p50_us, e2e_p99_us;
    double client_cpu; /* percent of one core */
} sl__bq_summary;

/* "RESULT target=... key=value ..." (no newline) into out. Returns its length, 0 if it did not
 * fit. Text values are written as given: callers pass words without spaces. */
size_t sl__bq_result_line(char *out, size_t cap, const sl__bq_summary *s);

#endif
