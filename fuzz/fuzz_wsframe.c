/* Fuzz target: RFC 6455 framing (src/net/ws_frame.c) on arbitrary client bytes. Every header the
 * parser accepts must be canonical (written back by sl__wsf_write_header byte for byte, every
 * shorter prefix answered "more"), every refusal must stay a refusal with more bytes, and a reader
 * built on it like net/ws.c (header carried across reads, payload unmasked in pieces, fragments
 * reassembled, control frames in between) must see the same messages and stop at the same byte
 * whether the input arrives at once or cut into reads of sizes chosen by the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_frame.h"

#define MAX_MESSAGE (1 << 20)

typedef struct reader {
    uint8_t hdr[SL__WSF_MAX_HEADER];
    size_t hdr_len;
    int in_frame;
    sl__wsf_header h;
    uint64_t left, pos;
    int msg_op;
    uint8_t *msg;
    size_t msg_len, msg_cap;
    uint8_t ctl[125];
    size_t ctl_len;
    int failed, stopped;
    size_t consumed;  /* stream bytes taken */
    size_t hdr_start; /* where the header being read began */
    size_t stop_at;   /* a refused header's start, or the end of the close frame */
    uint64_t hash;    /* of every event, in order */
} reader;

static void mix(reader *r, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        r->hash = (r->hash ^ b[i]) * UINT64_C(0x100000001b3);
}

static void event(reader *r, int kind, const uint8_t *p, size_t n)
{
    uint64_t len = n;
    mix(r, &kind, sizeof kind);
    mix(r, &len, sizeof len);
    if (n > 0)
        mix(r, p, n);
}

/* Checks what the parser says about an accepted header. */
static void check_header(const uint8_t *b, int hl, const sl__wsf_header *h)
{
    if (hl < 2 || hl > SL__WSF_MAX_HEADER || (size_t)hl != h->header_len || h->rsv != 0)
        abort();
    if ((h->opcode & 0x8) && (!h->fin || h->len > 125))
        abort();
    if (h->len >> 63)
        abort();
    uint8_t w[SL__WSF_MAX_HEADER];
    size_t n = sl__wsf_write_header(w, h->fin, h->opcode, h->len, h->masked ? h->mask : NULL);
    if (n != (size_t)hl || memcmp(w, b, n) != 0)
        abort(); /* not canonical: a length that was not minimal slipped through */
    sl__wsf_header p;
    for (int k = 0; k < hl; k++)
        if (sl__wsf_parse_header(b, (size_t)k, &p, NULL) != 0)
            abort();
}

static void fail(reader *r)
{
    r->failed = 1;
    r->stopped = 1;
    r->stop_at = r->hdr_start;
    event(r, 'F', NULL, 0);
}

static void begin(reader *r, const sl__wsf_header *h)
{
    r->h = *h;
    r->left = h->len;
    r->pos = 0;
    r->in_frame = 1;
    r->ctl_len = 0;
    event(r, 'H', (const uint8_t *)&h->len, sizeof h->len);
    if (!h->masked) {
        fail(r);
        return;
    }
    if (h->opcode & 0x8)
        return;
    if ((h->opcode == SL__WSF_CONT) != (r->msg_op != 0)) {
        fail(r);
        return;
    }
    if (h->opcode != SL__WSF_CONT)
        r->msg_op = h->opcode;
    if (h->len > MAX_MESSAGE - r->msg_len)
        fail(r);
}

static void end_frame(reader *r)
{
    r->in_frame = 0;
    if (r->h.opcode & 0x8) {
        event(r, r->h.opcode, r->ctl, r->ctl_len);
        if (r->h.opcode == SL__WSF_CLOSE)
            r->failed = 1; /* nothing is read after a close */
        return;
    }
    if (!r->h.fin)
        return;
    event(r, r->msg_op, r->msg, r->msg_len);
    r->msg_op = 0;
    r->msg_len = 0;
}

static void payload(reader *r, uint8_t *p, size_t k)
{
    if (r->h.opcode & 0x8) {
        memcpy(r->ctl + r->ctl_len, p, k);
        sl__wsf_mask(r->ctl + r->ctl_len, k, r->h.mask, r->pos);
        r->ctl_len += k;
    } else {
        if (k > r->msg_cap - r->msg_len) {
            size_t cap = r->msg_cap * 2 > r->msg_len + k ? r->msg_cap * 2 : r->msg_len + k;
            uint8_t *q = realloc(r->msg, cap);
            if (q == NULL)
                abort();
            r->msg = q;
            r->msg_cap = cap;
        }
        /* unmasked in place, as the server does with the bytes it is lent, then copied */
        sl__wsf_mask(p, k, r->h.mask, r->pos);
        memcpy(r->msg + r->msg_len, p, k);
        r->msg_len += k;
    }
    r->pos += k;
    r->left -= k;
    if (r->left == 0)
        end_frame(r);
}

static size_t take_header(reader *r, const uint8_t *p, size_t n)
{
    sl__wsf_header h;
    const char *why = NULL;
    size_t have = r->hdr_len, k = sizeof r->hdr - have < n ? sizeof r->hdr - have : n;
    memcpy(r->hdr + have, p, k);
    int hl = sl__wsf_parse_header(r->hdr, have + k, &h, &why);
    if (hl == 0) {
        if (have + k >= SL__WSF_MAX_HEADER)
            abort(); /* 14 bytes always decide */
        r->hdr_len = have + k;
        return k;
    }
    r->hdr_len = 0;
    if (hl < 0) {
        if (why == NULL || *why == '\0')
            abort();
        /* more bytes cannot make it valid */
        uint8_t more[SL__WSF_MAX_HEADER];
        memset(more, 0, sizeof more);
        memcpy(more, r->hdr, have + k);
        if (sl__wsf_parse_header(more, sizeof more, &h, NULL) >= 0)
            abort();
        fail(r);
        return k;
    }
    if ((size_t)hl <= have)
        abort();
    check_header(r->hdr, hl, &h);
    begin(r, &h);
    return (size_t)hl - have;
}

static void feed(reader *r, uint8_t *p, size_t n)
{
    while (n > 0 && !r->failed) {
        size_t used;
        if (!r->in_frame) {
            if (r->hdr_len == 0)
                r->hdr_start = r->consumed;
            used = take_header(r, p, n);
            if (r->in_frame && r->left == 0 && !r->failed)
                end_frame(r);
        } else {
            used = r->left < n ? (size_t)r->left : n;
            payload(r, p, used);
        }
        r->consumed += used;
        if (r->failed && !r->stopped) {
            r->stopped = 1;
            r->stop_at = r->consumed;
        }
        p += used;
        n -= used;
    }
}

static void run(reader *r, const uint8_t *data, size_t size, uint32_t seed)
{
    memset(r, 0, sizeof *r);
    r->hash = UINT64_C(0xcbf29ce484222325);
    uint8_t *copy = malloc(size ? size : 1); /* the reader writes where it reads, like ws.c */
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    size_t at = 0;
    while (at < size && !r->failed) {
        size_t k = size - at;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            size_t cut = (seed >> 16) % 17; /* mostly tiny reads: headers split everywhere */
            if (cut == 16)
                cut = (seed >> 8) % 4096;
            if (cut + 1 < k)
                k = cut + 1;
        }
        feed(r, copy + at, k);
        at += k;
    }
    free(copy);
    free(r->msg);
    r->msg = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The header parser on its own, at the very start of the input, byte by byte. */
    sl__wsf_header h;
    const char *why = NULL;
    int first = sl__wsf_parse_header(data, size, &h, &why);
    if (first > 0)
        check_header(data, first, &h);
    else if (first < 0 && why == NULL)
        abort();

    reader a, b;
    run(&a, data, size, 0);
    uint32_t seed = (uint32_t)size * 2654435761u;
    for (size_t i = 0; i < size && i < 8; i++)
        seed = seed * 31 + data[i];
    run(&b, data, size, seed | 1);
    if (a.hash != b.hash || a.failed != b.failed || a.stop_at != b.stop_at)
        abort();
    if (!a.failed && (a.consumed != size || b.consumed != size))
        abort();

    /* The mask in pieces equals the mask at once, at any phase. */
    if (size >= 5) {
        size_t n = size - 4;
        uint8_t *x = malloc(n), *y = malloc(n);
        if (x == NULL || y == NULL)
            abort();
        memcpy(x, data + 4, n);
        memcpy(y, data + 4, n);
        uint64_t off = data[0] & 7;
        sl__wsf_mask(x, n, data, off);
        for (size_t i = 0; i < n;) {
            size_t k = 1 + (data[i % 4] + i) % 13;
            if (k > n - i)
                k = n - i;
            sl__wsf_mask(y + i, k, data, off + i);
            i += k;
        }
        for (size_t i = 0; i < n; i++)
            if (x[i] != (uint8_t)(data[4 + i] ^ data[(off + i) & 3]) || x[i] != y[i])
                abort();
        free(x);
        free(y);
    }
    return 0;
}
