/* The I/O-free half of `sluice bench queue` (see bench_queue.h): payloads, HTTP answer framing,
 * claim replies, acknowledge bodies, target URLs, the exactly-once ledger and the RESULT line.
 * Kept apart from cmd_bench_queue.c, which needs the NATS and RabbitMQ client libraries, so that
 * the unit tests build everywhere. */
#include "cli/bench_queue.h"
#include "cli/bench_proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

/* ---- payload --------------------------------------------------------------------------------- */

size_t sl__bq_payload(char *out, size_t size, uint64_t seq, uint64_t t_ns)
{
    if (size < SL__BQ_MIN_SIZE || size > SL__BQ_MAX_SIZE)
        return 0;
    char head[64];
    int h = snprintf(head, sizeof head, "{\"s\":%" PRIu64 ",\"t\":%" PRIu64 ",\"p\":\"", seq, t_ns);
    /* h + 2 <= SL__BQ_MIN_SIZE for any two 64-bit numbers, so the padding is never negative. */
    memcpy(out, head, (size_t)h);
    memset(out + h, 'x', size - (size_t)h - 2);
    out[size - 2] = '"';
    out[size - 1] = '}';
    return size;
}

int sl__bq_payload_parse(const char *p, size_t n, uint64_t *seq, uint64_t *t_ns)
{
    sl__bench_line l;
    sl__bench_payload_ts(p, n, &l);
    if (!l.has_s || !l.has_t)
        return -1;
    *seq = l.s;
    *t_ns = l.t;
    return 0;
}

/* ---- HTTP/1.1 answers ------------------------------------------------------------------------ */

/* The value of header name in the head [p, e), trimmed; NULL when absent. Header lines are
 * compared case-insensitively by name, as HTTP requires. */
static const char *header(const char *p, const char *e, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *line = memchr(p, '\n', (size_t)(e - p));
    while (line != NULL && ++line < e) {
        const char *end = memchr(line, '\n', (size_t)(e - line));
        if (end == NULL)
            end = e;
        if ((size_t)(end - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1, *ve = end;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = end;
    }
    return NULL;
}

long sl__bq_http_response(const char *p, size_t n, size_t max_body, int *status, size_t *body_off,
                          size_t *body_len)
{
    size_t scan = n < SL__BQ_MAX_HEAD ? n : SL__BQ_MAX_HEAD;
    const char *end = NULL;
    for (size_t i = 3; i < scan; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') {
            end = p + i + 1;
            break;
        }
    if (end == NULL)
        return n >= SL__BQ_MAX_HEAD ? -1 : 0;
    if ((size_t)(end - p) < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '1' || p[9] > '5' ||
        p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' || p[12] != ' ')
        return -1;
    size_t vl;
    const char *v = header(p, end, "Transfer-Encoding", &vl);
    if (v != NULL)
        return -1;
    v = header(p, end, "Connection", &vl);
    if (v != NULL && vl == 5 && strncasecmp(v, "close", 5) == 0)
        return -1;
    v = header(p, end, "Content-Length", &vl);
    if (v == NULL || vl == 0 || vl > 12)
        return -1;
    size_t len = 0;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        len = len * 10 + (size_t)(v[i] - '0');
    }
    if (len > max_body)
        return -1;
    size_t head = (size_t)(end - p);
    if (n < head + len)
        return 0;
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    *body_off = head;
    *body_len = len;
    return (long)(head + len);
}

/* ---- claim replies and acknowledgements ------------------------------------------------------ */

static int item_from(json_t *m, sl__bq_item *it)
{
    const char *id = json_string_value(json_object_get(m, "id"));
    if (id == NULL || strlen(id) >= SL__BQ_ID_MAX || id[0] == '\0')
        return -1;
    /* Ids go back into a JSON string verbatim: refuse anything that would need escaping. */
    for (const char *c = id; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\' || (unsigned char)*c >= 0x7f)
            return -1;
    strcpy(it->id, id);
    json_t *data = json_object_get(json_object_get(m, "content"), "data");
    json_t *s = json_object_get(data, "s"), *t = json_object_get(data, "t");
    it->timed = json_is_integer(s) && json_is_integer(t) && json_integer_value(s) >= 0 &&
                json_integer_value(t) >= 0;
    it->seq = it->timed ? (uint64_t)json_integer_value(s) : 0;
    it->t_ns = it->timed ? (uint64_t)json_integer_value(t) : 0;
    return 0;
}

int sl__bq_claim_parse(const char *body, size_t n, sl__bq_item *items, size_t cap, size_t *count,
                       int *more)
{
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
    json_t *msgs = json_object_get(root, "messages");
    json_t *m;
    size_t i;
    int rc = json_is_array(msgs) && json_array_size(msgs) <= cap ? 0 : -1;
    if (rc == 0) {
        json_array_foreach(msgs, i, m)
        {
            if (item_from(m, &items[i]) < 0) {
                rc = -1;
                break;
            }
        }
    }
    if (rc == 0) {
        *count = json_array_size(msgs);
        *more = json_is_true(json_object_get(root, "more"));
    }
    json_decref(root);
    return rc;
}

size_t sl__bq_ack_body(char *out, size_t cap, const sl__bq_item *items, size_t n)
{
    static const char head[] = "{\"message_ids\":[";
    size_t len = sizeof head - 1;
    if (n == 0 || cap < len + 3)
        return 0;
    memcpy(out, head, len);
    for (size_t i = 0; i < n; i++) {
        size_t il = strlen(items[i].id);
        /* A comma, "id", and room left for the closing ]} and the NUL. */
        if (len + (i > 0) + il + 2 + 3 > cap)
            return 0;
        if (i > 0)
            out[len++] = ',';
        out[len++] = '"';
        memcpy(out + len, items[i].id, il);
        len += il;
        out[len++] = '"';
    }
    out[len++] = ']';
    out[len++] = '}';
    out[len] = '\0';
    return len;
}

long sl__bq_ack_count(const char *body, size_t n)
{
    json_t *root = json_loadb(body, n, 0, NULL);
    json_t *v = json_object_get(root, "acknowledged");
    long r = json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : -1;
    json_decref(root);
    return r;
}

/* ---- URLs ------------------------------------------------------------------------------------ */

static int copy_part(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

int sl__bq_url_parse(const char *url, const char *scheme, int default_port, sl__bq_url *out,
                     const char **why)
{
    memset(out, 0, sizeof *out);
    size_t sl = strlen(scheme);
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            *why = "the URL holds spaces or control characters";
            return -1;
        }
    if (strncmp(url, scheme, sl) != 0 || strncmp(url + sl, "://", 3) != 0) {
        *why = "the URL has the wrong scheme";
        return -1;
    }
    const char *a = url + sl + 3;
    size_t al = strcspn(a, "/?#");
    const char *path = a + al;
    const char *at = memchr(a, '@', al);
    if (at != NULL) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        size_t ul = colon ? (size_t)(colon - a) : (size_t)(at - a);
        if (copy_part(out->user, sizeof out->user, a, ul) < 0 ||
            (colon &&
             copy_part(out->pass, sizeof out->pass, colon + 1, (size_t)(at - colon - 1)) < 0)) {
            *why = "the URL's user or password is too long";
            return -1;
        }
        al -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    const char *hp = a, *port = NULL;
    size_t hl = al;
    if (al > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', al);
        if (rb == NULL) {
            *why = "bad IPv6 address in the URL";
            return -1;
        }
        hp = a + 1;
        hl = (size_t)(rb - a - 1);
        if (rb + 1 < a + al) {
            if (rb[1] != ':') {
                *why = "bad port in the URL";
                return -1;
            }
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(a, ':', al);
        if (colon) {
            hl = (size_t)(colon - a);
            port = colon + 1;
        }
    }
    if (hl == 0 || copy_part(out->host, sizeof out->host, hp, hl) < 0) {
        *why = "no host in the URL";
        return -1;
    }
    out->port = default_port;
    if (port != NULL) {
        long v = 0;
        const char *pe = a + al;
        if (port == pe || pe - port > 5) {
            *why = "bad port in the URL";
            return -1;
        }
        for (const char *c = port; c < pe; c++) {
            if (*c < '0' || *c > '9') {
                *why = "bad port in the URL";
                return -1;
            }
            v = v * 10 + (*c - '0');
        }
        if (v < 1 || v > 65535) {
            *why = "bad port in the URL";
            return -1;
        }
        out->port = (int)v;
    }
    if (*path == '/')
        path++;
    if (copy_part(out->path, sizeof out->path, path, strcspn(path, "?#")) < 0) {
        *why = "the URL's path is too long";
        return -1;
    }
    return 0;
}

/* ---- exactly-once ledger --------------------------------------------------------------------- */

int sl__bq_ledger_init(sl__bq_ledger *l, size_t n)
{
    l->seen = calloc(n ? n : 1, 1);
    l->n = n;
    atomic_init(&l->dups, 0);
    atomic_init(&l->unknown, 0);
    return l->seen ? 0 : -1;
}

void sl__bq_ledger_free(sl__bq_ledger *l)
{
    free((void *)l->seen);
    l->seen = NULL;
}

void sl__bq_ledger_produced(sl__bq_ledger *l, uint64_t seq)
{
    if (seq < l->n)
        atomic_fetch_or(&l->seen[seq], 1);
}

int sl__bq_ledger_mark(sl__bq_ledger *l, uint64_t seq)
{
    if (seq >= l->n) {
        atomic_fetch_add(&l->unknown, 1);
        return -1;
    }
    if (atomic_fetch_or(&l->seen[seq], 2) & 2) {
        atomic_fetch_add(&l->dups, 1);
        return 1;
    }
    return 0;
}

uint64_t sl__bq_ledger_missing(const sl__bq_ledger *l)
{
    uint64_t miss = 0;
    for (size_t i = 0; i < l->n; i++)
        miss += (atomic_load(&l->seen[i]) & 3) == 1;
    return miss;
}

/* ---- the result line ------------------------------------------------------------------------- */

size_t sl__bq_result_line(char *out, size_t cap, const sl__bq_summary *s)
{
    int n =
        snprintf(out, cap,
                 "RESULT target=%s durability=%s clients=%u produced=%" PRIu64 " consumed=%" PRIu64
                 " duplicates=%" PRIu64 " missing=%" PRIu64 " left=%" PRIu64 " errors=%" PRIu64
                 " produce_rate=%.0f consume_rate=%.0f produce_p50_us=%.0f"
                 " produce_p99_us=%.0f e2e_p50_us=%.0f e2e_p99_us=%.0f client_cpu=%.0f",
                 s->target, s->durability, s->clients, s->produced, s->consumed, s->duplicates,
                 s->missing, s->left, s->errors, s->produce_rate, s->consume_rate,
                 s->produce_p50_us, s->produce_p99_us, s->e2e_p50_us, s->e2e_p99_us, s->client_cpu);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
