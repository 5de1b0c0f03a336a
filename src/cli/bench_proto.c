/* No-I/O pieces of `sluice bench ws` (see bench_proto.h): target URLs, the upgrade handshake text,
 * masked client frames, the bounded message reader, the NATS baseline's stream parser, the latency
 * histogram and the error table (Centrifugo line classification is bench_lines.c). The connections
 * in bench_ws.c own the sockets and call these; tests/unit/test_bench.c calls them directly. Speed
 * matters on the receive path (a subscriber may see hundreds of thousands of publications per
 * second), so lines are scanned in place instead of being parsed into JSON trees. */
#include "cli/bench_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- HTTP upgrade ---------------------------------------------------------------------------- */

size_t sl__bench_upgrade_request(char *out, size_t cap, const char *host, const char *path,
                                 const char *key)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path, host, key);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Whether the header value v[0..n) holds token tok in its comma-separated list. */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t b = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - b == tl && strncasecmp(v + b, tok, tl) == 0)
            return 1;
    }
    return 0;
}

long sl__bench_upgrade_response(const char *p, size_t n, const char *expect_accept, int *status,
                                const char **why)
{
    *status = 0;
    *why = NULL;
    size_t lim = n < SL__BENCH_MAX_HEAD ? n : SL__BENCH_MAX_HEAD;
    /* Status line: "HTTP/1.1 NNN ...". */
    const char *eol = memchr(p, '\n', lim);
    if (eol == NULL) {
        if (n >= SL__BENCH_MAX_HEAD) {
            *why = "response head too large";
            return -1;
        }
        return 0;
    }
    if (lim < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '1' || p[9] > '5' || p[10] < '0' ||
        p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (p[12] != ' ' && p[12] != '\r' && p[12] != '\n')) {
        *why = "not an HTTP/1.1 status line";
        return -1;
    }
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    /* The head ends at the first empty line. */
    size_t end = 0;
    for (size_t i = (size_t)(eol - p) + 1; i < lim; i++) {
        if (p[i] == '\n' &&
            (p[i - 1] == '\n' || (p[i - 1] == '\r' && i >= 2 && p[i - 2] == '\n'))) {
            end = i + 1;
            break;
        }
    }
    if (end == 0) {
        if (n >= SL__BENCH_MAX_HEAD) {
            *why = "response head too large";
            return -1;
        }
        return 0;
    }
    if (*status != 101) {
        *why = "not 101 Switching Protocols";
        return -1;
    }
    int upgrade = 0, accept = 0;
    const char *line = eol + 1;
    while (line < p + end) {
        const char *le = memchr(line, '\n', (size_t)(p + end - line));
        if (le == NULL)
            break;
        size_t ll = (size_t)(le - line);
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        const char *colon = memchr(line, ':', ll);
        if (colon != NULL) {
            size_t kl = (size_t)(colon - line);
            const char *v = colon + 1;
            size_t vl = ll - kl - 1;
            while (vl > 0 && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (kl == 7 && strncasecmp(line, "Upgrade", 7) == 0 && has_token(v, vl, "websocket"))
                upgrade = 1;
            else if (kl == 20 && strncasecmp(line, "Sec-WebSocket-Accept", 20) == 0) {
                /* A second, different value would make the answer ambiguous: refuse it. */
                if (vl == strlen(expect_accept) && memcmp(v, expect_accept, vl) == 0)
                    accept = accept == 0 ? 1 : accept;
                else
                    accept = -1;
            }
        }
        line = le + 1;
    }
    if (!upgrade) {
        *why = "101 without Upgrade: websocket";
        return -1;
    }
    if (accept != 1) {
        *why = accept == 0 ? "101 without Sec-WebSocket-Accept" : "wrong Sec-WebSocket-Accept";
        return -1;
    }
    return (long)end;
}

/* ---- target URLs ----------------------------------------------------------------------------- */

int sl__bench_url_parse(const char *url, int nats, const char *path_override, sl__bench_url *out,
                        const char **why)
{
    const char *rest;
    memset(out, 0, sizeof *out);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            *why = "spaces or control characters";
            return -1;
        }
    if (!strncmp(url, "http://", 7))
        rest = url + 7;
    else if (!strncmp(url, "ws://", 5))
        rest = url + 5;
    else {
        *why = "not http:// or ws:// (no TLS)";
        return -1;
    }
    size_t al = strcspn(rest, "/?#");
    if (al == 0 || al >= sizeof out->host) {
        *why = al ? "host too long" : "no host";
        return -1;
    }
    memcpy(out->host, rest, al);
    out->host[al] = '\0';
    const char *prefix = rest + al;
    size_t pl = strcspn(prefix, "?#");
    while (pl > 0 && prefix[pl - 1] == '/')
        pl--;
    const char *tail = nats ? "/" : "/connection/websocket";
    size_t need = path_override ? strlen(path_override) : pl + strlen(tail);
    if (need >= sizeof out->path) {
        *why = "path too long";
        return -1;
    }
    if (path_override)
        memcpy(out->path, path_override, need + 1);
    else
        snprintf(out->path, sizeof out->path, "%.*s%s", (int)pl, prefix, tail);
    const char *h = out->host, *colon;
    size_t nl;
    if (h[0] == '[') {
        const char *rb = strchr(h, ']');
        if (rb == NULL || rb == h + 1 || (rb[1] != '\0' && rb[1] != ':')) {
            *why = "bad IPv6 address";
            return -1;
        }
        nl = (size_t)(rb - h - 1);
        memcpy(out->name, h + 1, nl);
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = strchr(h, ':');
        nl = colon ? (size_t)(colon - h) : strlen(h);
        if (nl == 0) {
            *why = "no host";
            return -1;
        }
        memcpy(out->name, h, nl);
    }
    out->name[nl] = '\0';
    if (colon == NULL) {
        memcpy(out->port, "80", 3);
        return 0;
    }
    const char *pt = colon + 1;
    size_t ptl = strlen(pt);
    if (ptl == 0 || ptl > 5 || strspn(pt, "0123456789") != ptl || atoi(pt) < 1 ||
        atoi(pt) > 65535) {
        *why = "bad port";
        return -1;
    }
    memcpy(out->port, pt, ptl + 1);
    return 0;
}

/* ---- frames ---------------------------------------------------------------------------------- */

size_t sl__bench_frame(uint8_t *buf, size_t payload_len, int opcode, const uint8_t mask[4])
{
    uint8_t hdr[SL__WSF_MAX_HEADER];
    size_t hl = sl__wsf_write_header(hdr, 1, opcode, payload_len, mask);
    size_t off = SL__WSF_MAX_HEADER - hl;
    memcpy(buf + off, hdr, hl);
    sl__wsf_mask(buf + SL__WSF_MAX_HEADER, payload_len, mask, 0);
    return off;
}

void sl__bench_rx_init(sl__bench_rx *rx, size_t max_message)
{
    memset(rx, 0, sizeof *rx);
    rx->max_message = max_message;
}

void sl__bench_rx_free(sl__bench_rx *rx)
{
    free(rx->pend);
    free(rx->msg);
    memset(rx, 0, sizeof *rx);
}

/* Grows *buf to hold need bytes; 0, or -1 when out of memory. */
static int reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    uint8_t *nb = realloc(*buf, c);
    if (nb == NULL)
        return -1;
    *buf = nb;
    *cap = c;
    return 0;
}

/* Once the reader is back to an empty state, a large buffer that a burst needed is given back, so
 * thousands of connections do not each keep their high-water mark. */
static void shrink(uint8_t **buf, size_t *cap)
{
    if (*cap > 65536) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
    }
}

/* Parses the frames in data[0..n); returns the bytes consumed (a trailing incomplete frame is
 * left), or stops as sl__bench_rx_feed documents (*stop set to its return value). */
static size_t rx_frames(sl__bench_rx *rx, const uint8_t *data, size_t n, sl__bench_rx_fn fn,
                        void *ud, const char **why, int *stop)
{
    size_t off = 0;
    *stop = 0;
    while (off < n) {
        sl__wsf_header h;
        int hl = sl__wsf_parse_header(data + off, n - off, &h, why);
        if (hl < 0) {
            *stop = -1;
            return off;
        }
        if (hl == 0)
            return off;
        if (h.masked) {
            *why = "masked frame from the server";
            *stop = -1;
            return off;
        }
        /* Checked before waiting for the payload, so a huge announced length is refused at once
         * instead of being buffered. */
        uint64_t total = rx->msg_opcode ? rx->msg_len + h.len : h.len;
        if (h.opcode < 0x8 && total > rx->max_message) {
            *why = "message too large";
            *stop = -1;
            return off;
        }
        if (h.len > (uint64_t)(n - off - (size_t)hl))
            return off;
        const uint8_t *pl = data + off + (size_t)hl;
        size_t len = (size_t)h.len;
        int r = 0;
        if (h.opcode >= 0x8) {
            r = fn(ud, h.opcode, pl, len);
        } else if (h.opcode == SL__WSF_CONT) {
            if (!rx->msg_opcode) {
                *why = "continuation without a message";
                *stop = -1;
                return off;
            }
            if (reserve(&rx->msg, &rx->msg_cap, rx->msg_len + len + 1) < 0) {
                *why = "out of memory";
                *stop = -1;
                return off;
            }
            memcpy(rx->msg + rx->msg_len, pl, len);
            rx->msg_len += len;
            if (h.fin) {
                int op = rx->msg_opcode;
                size_t ml = rx->msg_len;
                rx->msg_opcode = 0;
                rx->msg_len = 0;
                r = fn(ud, op, rx->msg, ml);
                if (r == 0)
                    shrink(&rx->msg, &rx->msg_cap);
            }
        } else {
            if (rx->msg_opcode) {
                *why = "new message inside a fragmented one";
                *stop = -1;
                return off;
            }
            if (h.fin) {
                r = fn(ud, h.opcode, pl, len);
            } else {
                if (reserve(&rx->msg, &rx->msg_cap, len + 1) < 0) {
                    *why = "out of memory";
                    *stop = -1;
                    return off;
                }
                memcpy(rx->msg, pl, len);
                rx->msg_len = len;
                rx->msg_opcode = h.opcode;
            }
        }
        if (r != 0) {
            *stop = r;
            return off;
        }
        off += (size_t)hl + len;
    }
    return off;
}

int sl__bench_rx_feed(sl__bench_rx *rx, const uint8_t *data, size_t n, sl__bench_rx_fn fn, void *ud,
                      const char **why)
{
    *why = NULL;
    int stop;
    if (rx->pend_len == 0) {
        size_t used = rx_frames(rx, data, n, fn, ud, why, &stop);
        if (stop != 0)
            return stop;
        data += used;
        n -= used;
        if (n == 0)
            return 0;
        if (reserve(&rx->pend, &rx->pend_cap, n) < 0) {
            *why = "out of memory";
            return -1;
        }
        memcpy(rx->pend, data, n);
        rx->pend_len = n;
        return 0;
    }
    /* Never more than one frame (header + max_message) is pending, as longer ones were refused. */
    if (reserve(&rx->pend, &rx->pend_cap, rx->pend_len + n) < 0) {
        *why = "out of memory";
        return -1;
    }
    memcpy(rx->pend + rx->pend_len, data, n);
    rx->pend_len += n;
    size_t used = rx_frames(rx, rx->pend, rx->pend_len, fn, ud, why, &stop);
    if (stop != 0)
        return stop;
    memmove(rx->pend, rx->pend + used, rx->pend_len - used);
    rx->pend_len -= used;
    if (rx->pend_len == 0)
        shrink(&rx->pend, &rx->pend_cap);
    return 0;
}

int sl__bench_close_payload(const uint8_t *p, size_t n, int *code, const char **reason,
                            size_t *reason_len)
{
    *reason = NULL;
    *reason_len = 0;
    if (n == 0) {
        *code = 1005;
        return 0;
    }
    if (n == 1)
        return -1;
    *code = (p[0] << 8) | p[1];
    *reason = (const char *)p + 2;
    *reason_len = n - 2;
    return 0;
}

/* ---- NATS ------------------------------------------------------------------------------------ */

void sl__bench_nats_init(sl__bench_nats *st, size_t max_payload)
{
    memset(st, 0, sizeof *st);
    st->max_line = 4096;
    st->max_payload = max_payload;
}

void sl__bench_nats_free(sl__bench_nats *st)
{
    free(st->pend);
    memset(st, 0, sizeof *st);
}

/* Whether the control line l[0..n) starts with operation op (case-insensitive) followed by the
 * end of the line or a space/tab. */
static int is_op(const char *l, size_t n, const char *op)
{
    size_t k = strlen(op);
    return n >= k && strncasecmp(l, op, k) == 0 && (n == k || l[k] == ' ' || l[k] == '\t');
}

/* Parses the operations in d[0..n); returns the bytes consumed or stops like rx_frames. */
static size_t nats_ops(sl__bench_nats *st, const char *d, size_t n, sl__bench_nats_fn fn, void *ud,
                       const char **why, int *stop)
{
    size_t off = 0;
    *stop = 0;
    while (off < n) {
        const char *l = d + off;
        size_t avail = n - off;
        const char *nl = memchr(l, '\n', avail < st->max_line ? avail : st->max_line);
        if (nl == NULL) {
            if (avail >= st->max_line) {
                *why = "NATS control line too long";
                *stop = -1;
            }
            return off;
        }
        size_t ll = (size_t)(nl - l), used = ll + 1;
        if (ll > 0 && l[ll - 1] == '\r')
            ll--;
        int r = 0;
        if (is_op(l, ll, "MSG")) {
            /* MSG <subject> <sid> [reply-to] <#bytes>: three or four fields, the size last. */
            sl__bench_span f[5];
            size_t nf = 0, i = 3;
            while (i < ll && nf < 5) {
                while (i < ll && (l[i] == ' ' || l[i] == '\t'))
                    i++;
                if (i == ll)
                    break;
                f[nf].p = l + i;
                while (i < ll && l[i] != ' ' && l[i] != '\t')
                    i++;
                f[nf++].e = l + i;
            }
            uint64_t size;
            if (nf < 3 || nf > 4 || sl__bench_span_u64(f[nf - 1], &size) < 0 ||
                size > st->max_payload) {
                *why = "bad NATS MSG line";
                *stop = -1;
                return off;
            }
            if (avail - used < size + 2)
                return off; /* the payload has not all arrived */
            const char *pl = l + used;
            if (pl[size] != '\r' || pl[size + 1] != '\n') {
                *why = "NATS payload not followed by CRLF";
                *stop = -1;
                return off;
            }
            used += (size_t)size + 2;
            r = fn(ud, SL__NATS_MSG, pl, (size_t)size);
        } else if (is_op(l, ll, "PING")) {
            r = fn(ud, SL__NATS_PING, NULL, 0);
        } else if (is_op(l, ll, "PONG")) {
            r = fn(ud, SL__NATS_PONG, NULL, 0);
        } else if (is_op(l, ll, "+OK")) {
            r = fn(ud, SL__NATS_OK, NULL, 0);
        } else if (is_op(l, ll, "-ERR")) {
            size_t s = 4;
            while (s < ll && (l[s] == ' ' || l[s] == '\t'))
                s++;
            r = fn(ud, SL__NATS_ERR, l + s, ll - s);
        } else if (is_op(l, ll, "INFO")) {
            r = fn(ud, SL__NATS_INFO, l, ll);
        } else {
            *why = "unknown NATS operation";
            *stop = -1;
            return off;
        }
        if (r != 0) {
            *stop = r;
            return off;
        }
        off += used;
    }
    return off;
}

int sl__bench_nats_feed(sl__bench_nats *st, const char *data, size_t n, sl__bench_nats_fn fn,
                        void *ud, const char **why)
{
    *why = NULL;
    int stop;
    if (st->pend_len == 0) {
        size_t used = nats_ops(st, data, n, fn, ud, why, &stop);
        if (stop != 0)
            return stop;
        data += used;
        n -= used;
        if (n == 0)
            return 0;
    }
    /* Bounded: a control line is at most max_line, a message at most max_line + max_payload. */
    if (st->pend_len + n > st->max_line + st->max_payload + 2) {
        *why = "NATS operation too large";
        return -1;
    }
    if (reserve((uint8_t **)&st->pend, &st->pend_cap, st->pend_len + n) < 0) {
        *why = "out of memory";
        return -1;
    }
    memcpy(st->pend + st->pend_len, data, n);
    st->pend_len += n;
    if (st->pend_len == n)
        return 0; /* just stored the tail of a direct parse */
    size_t used = nats_ops(st, st->pend, st->pend_len, fn, ud, why, &stop);
    if (stop != 0)
        return stop;
    memmove(st->pend, st->pend + used, st->pend_len - used);
    st->pend_len -= used;
    if (st->pend_len == 0)
        shrink((uint8_t **)&st->pend, &st->pend_cap);
    return 0;
}

/* ---- histogram ------------------------------------------------------------------------------- */

void sl__bench_hist_init(sl__bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

size_t sl__bench_hist_index(uint64_t v)
{
    if (v < SL__BENCH_HIST_SUB)
        return (size_t)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* 6..63 */
    size_t sub = (size_t)(v >> (k - 6)) - SL__BENCH_HIST_SUB;
    return (size_t)(k - 5) * SL__BENCH_HIST_SUB + sub;
}

void sl__bench_hist_range(size_t idx, uint64_t *lo, uint64_t *hi)
{
    if (idx < SL__BENCH_HIST_SUB) {
        *lo = *hi = idx;
        return;
    }
    unsigned k = (unsigned)(idx / SL__BENCH_HIST_SUB) + 5;
    uint64_t sub = idx % SL__BENCH_HIST_SUB;
    *lo = (SL__BENCH_HIST_SUB + sub) << (k - 6);
    *hi = *lo + ((uint64_t)1 << (k - 6)) - 1;
}

void sl__bench_hist_record(sl__bench_hist *h, uint64_t v)
{
    h->bucket[sl__bench_hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void sl__bench_hist_merge(sl__bench_hist *dst, const sl__bench_hist *src)
{
    for (size_t i = 0; i < SL__BENCH_HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t sl__bench_hist_quantile(const sl__bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (size_t i = 0; i < SL__BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            sl__bench_hist_range(i, &lo, &hi);
            if (hi > h->max)
                hi = h->max;
            return hi < h->min ? h->min : hi;
        }
    }
    return h->max;
}

/* ---- errors ---------------------------------------------------------------------------------- */

void sl__bench_errs_init(sl__bench_errs *e)
{
    memset(e, 0, sizeof *e);
}

/* Copies at most cap-1 bytes of s[0..n) into out at *pos, up to the first byte that is not
 * printable ASCII, which becomes a final '?': a hostile server's reason must not put control
 * sequences on the terminal, and cutting there (rather than replacing byte by byte) keeps reasons
 * padded with random bytes under one kind instead of one kind each. */
static void put_clean(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *pos + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f) {
            out[(*pos)++] = '?';
            break;
        }
        out[(*pos)++] = (char)ch;
    }
    out[*pos] = '\0';
}

void sl__bench_errs_kind(char *out, const char *prefix, long code, const char *text, size_t len)
{
    size_t pos = 0;
    out[0] = '\0';
    put_clean(out, SL__BENCH_ERR_TEXT, &pos, prefix, strlen(prefix));
    if (code >= 0) {
        char num[24];
        int k = snprintf(num, sizeof num, "%s%ld", pos ? " " : "", code);
        put_clean(out, SL__BENCH_ERR_TEXT, &pos, num, (size_t)k);
    }
    if (text != NULL && len > 0) {
        if (pos > 0)
            put_clean(out, SL__BENCH_ERR_TEXT, &pos, " ", 1);
        put_clean(out, SL__BENCH_ERR_TEXT, &pos, text, len);
    }
}

void sl__bench_errs_add(sl__bench_errs *e, const char *kind)
{
    char clean[SL__BENCH_ERR_TEXT];
    size_t pos = 0;
    clean[0] = '\0';
    put_clean(clean, sizeof clean, &pos, kind, strlen(kind));
    e->total++;
    for (size_t i = 0; i < e->rows; i++) {
        if (strcmp(e->row[i].kind, clean) == 0) {
            e->row[i].n++;
            return;
        }
    }
    if (e->rows == SL__BENCH_ERR_KINDS) {
        e->other++;
        return;
    }
    memcpy(e->row[e->rows].kind, clean, pos + 1);
    e->row[e->rows].n = 1;
    e->rows++;
}
