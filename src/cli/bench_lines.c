/* Centrifugo line classification for `sluice bench ws` (bench_proto.h): each line a subscriber or
 * the publisher receives is scanned in place, without a JSON tree, for what the tool needs (a
 * reply's id and error, a publication's channel and the "t" and "s" of its data, a disconnect's
 * code), with a shortcut for sluiced's own publication layout. A subscriber may see hundreds of
 * thousands of publications a second, so this is the client's hot path; it never reads past a
 * line and does no I/O (tests/unit/test_bench.c drives it directly). */
#include "cli/bench_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON scanning --------------------------------------------------------------------------- */

/* Minimal, allocation-free walking of JSON text: enough to find a few keys in the server's lines.
 * It does not validate (a line it cannot walk is simply INVALID); it only guarantees never to read
 * outside [p, e). */

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* p at '"': returns the position after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }
        if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* p at a value: returns the position after it, or NULL. Nesting is counted, not recursed into. */
static const char *skip_value(const char *p, const char *e)
{
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < e) {
            if (*p == '"') {
                if ((p = skip_string(p, e)) == NULL)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *b = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r' &&
           *p != '\n')
        p++;
    return p > b ? p : NULL;
}

typedef sl__bench_span span;

/* In the object at o, finds the member named key (compared byte for byte with the raw key); its
 * value's span goes to *v. Returns 1 found, 0 absent, -1 not an object that can be walked. */
static int obj_get(span o, const char *key, span *v)
{
    size_t kl = strlen(key);
    const char *p = ws(o.p, o.e), *e = o.e;
    if (p >= e || *p != '{')
        return -1;
    p = ws(p + 1, e);
    if (p < e && *p == '}')
        return 0;
    while (p < e) {
        if (*p != '"')
            return -1;
        const char *ks = p + 1;
        const char *ke = skip_string(p, e);
        if (ke == NULL)
            return -1;
        p = ws(ke, e);
        if (p >= e || *p != ':')
            return -1;
        p = ws(p + 1, e);
        const char *ve = skip_value(p, e);
        if (ve == NULL)
            return -1;
        if ((size_t)(ke - 1 - ks) == kl && memcmp(ks, key, kl) == 0) {
            v->p = p;
            v->e = ve;
            return 1;
        }
        p = ws(ve, e);
        if (p < e && *p == '}')
            return 0;
        if (p >= e || *p != ',')
            return -1;
        p = ws(p + 1, e);
    }
    return -1;
}

int sl__bench_span_u64(span v, uint64_t *out)
{
    if (v.p >= v.e || (size_t)(v.e - v.p) > 20)
        return -1;
    uint64_t x = 0;
    for (const char *p = v.p; p < v.e; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* A string's raw contents (between the quotes); 0, or -1 when the value is not a string. */
static int span_str(span v, const char **p, size_t *n)
{
    if (v.e - v.p < 2 || *v.p != '"' || v.e[-1] != '"')
        return -1;
    *p = v.p + 1;
    *n = (size_t)(v.e - v.p - 2);
    return 0;
}

static long get_code(span o)
{
    span v;
    uint64_t c;
    if (obj_get(o, "code", &v) == 1 && sl__bench_span_u64(v, &c) == 0 && c <= 1000000)
        return (long)c;
    return -1;
}

static void get_text(span o, const char *key, sl__bench_line *out)
{
    span v;
    if (obj_get(o, key, &v) == 1)
        span_str(v, &out->text, &out->text_len);
}

static void data_ts(span d, sl__bench_line *out)
{
    span v;
    if (obj_get(d, "t", &v) == 1 && sl__bench_span_u64(v, &out->t) == 0)
        out->has_t = 1;
    if (obj_get(d, "s", &v) == 1 && sl__bench_span_u64(v, &out->s) == 0)
        out->has_s = 1;
}

void sl__bench_payload_ts(const char *p, size_t n, sl__bench_line *out)
{
    out->has_t = out->has_s = 0;
    data_ts((span){p, p + n}, out);
}

int sl__bench_lines(const char *p, size_t n, sl__bench_line_fn fn, void *ud)
{
    const char *e = p + n;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        const char *le = nl ? nl : e;
        size_t len = (size_t)(le - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (ws(p, p + len) < p + len) {
            int r = fn(ud, p, len);
            if (r != 0)
                return r;
        }
        p = nl ? nl + 1 : e;
    }
    return 0;
}

/* p just after a member's value inside an object: walks any further members and returns the
 * position after the object's closing brace, or NULL. */
static const char *close_object(const char *p, const char *e)
{
    for (;;) {
        p = ws(p, e);
        if (p >= e)
            return NULL;
        if (*p == '}')
            return p + 1;
        if (*p != ',')
            return NULL;
        p = ws(p + 1, e);
        if (p >= e || *p != '"' || (p = skip_string(p, e)) == NULL)
            return NULL;
        p = ws(p, e);
        if (p >= e || *p != ':')
            return NULL;
        if ((p = skip_value(ws(p + 1, e), e)) == NULL)
            return NULL;
    }
}

/* Digits at *pp up to the first non-digit: 0 and the value, or -1 (none, or over 64 bits). */
static int digits(const char **pp, const char *e, uint64_t *out)
{
    const char *p = *pp;
    uint64_t x = 0;
    if (p >= e || *p < '0' || *p > '9')
        return -1;
    for (; p < e && *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *pp = p;
    *out = x;
    return 0;
}

/* The common case, a publication of this tool exactly as sluiced lays it out:
 * {"push":{"channel":"C","pub":{"data":{"t":T,"s":S},...}}}. Read with fixed prefixes and one walk
 * over what follows the data, instead of the generic walk that visits nested values once per level
 * (about ten times slower, and a subscriber may see a million of these per second). Anything else,
 * including the same content in another key order, returns 0 and takes the generic path. */
/* The rest of a push after its data object, [r, e): 1 when it is the remembered bytes, digits and
 * "}}}" (then well formed, as the walk found it with other digits), 0 when it must be walked. */
static int tail_known(const sl__bench_tail *t, const char *r, const char *e)
{
    if (t == NULL || t->len == 0 || (size_t)(e - r) < t->len + 4 || memcmp(r, t->buf, t->len) != 0)
        return 0;
    const char *d = r + t->len;
    uint64_t ignored;
    return digits(&d, e, &ignored) == 0 && e - d == 3 && memcmp(d, "}}}", 3) == 0;
}

/* Remembers the rest [r, e) of a push the walk accepted, when it ends with digits and "}}}". */
static void tail_learn(sl__bench_tail *t, const char *r, const char *e)
{
    if (t == NULL)
        return;
    t->len = 0;
    if (e - r < 4 || memcmp(e - 3, "}}}", 3) != 0)
        return;
    const char *d = e - 3;
    while (d > r && d[-1] >= '0' && d[-1] <= '9')
        d--;
    if (d == e - 3 || (size_t)(d - r) > sizeof t->buf || d == r)
        return;
    memcpy(t->buf, r, (size_t)(d - r));
    t->len = (size_t)(d - r);
}

int sl__bench_fast_pub(const char *p, const char *e, sl__bench_tail *tail, sl__bench_line *out)
{
    static const char pre[] = "{\"push\":{\"channel\":\"";
    static const char mid[] = "\",\"pub\":{\"data\":{\"t\":";
    static const char sep[] = ",\"s\":";
    size_t pl = sizeof pre - 1, ml = sizeof mid - 1, sl = sizeof sep - 1;
    if ((size_t)(e - p) < pl + ml || memcmp(p, pre, pl) != 0)
        return 0;
    const char *ch = p + pl;
    const char *q = memchr(ch, '"', (size_t)(e - ch));
    if (q == NULL || memchr(ch, '\\', (size_t)(q - ch)) != NULL || (size_t)(e - q) < ml ||
        memcmp(q, mid, ml) != 0)
        return 0;
    const char *d = q + ml;
    uint64_t t, sq;
    if (digits(&d, e, &t) < 0 || (size_t)(e - d) < sl || memcmp(d, sep, sl) != 0)
        return 0;
    d += sl;
    if (digits(&d, e, &sq) < 0 || d >= e || *d != '}')
        return 0;
    /* Close data's object was the '}'; then pub, push and the line itself. */
    if (!tail_known(tail, d + 1, e)) {
        const char *r = close_object(d + 1, e);
        if (r != NULL)
            r = close_object(r, e);
        if (r != NULL)
            r = close_object(r, e);
        if (r == NULL || ws(r, e) != e)
            return 0;
        tail_learn(tail, d + 1, e);
    }
    out->kind = SL__BL_PUB;
    out->channel = ch;
    out->channel_len = (size_t)(q - ch);
    out->t = t;
    out->s = sq;
    out->has_t = out->has_s = 1;
    return 1;
}

void sl__bench_classify(const char *line, size_t len, sl__bench_tail *tail, sl__bench_line *out)
{
    memset(out, 0, sizeof *out);
    out->code = -1;
    if (sl__bench_fast_pub(line, line + len, tail, out))
        return;
    span l = {line, line + len}, v, push;
    const char *p = ws(l.p, l.e);
    /* The whole line must be one object: anything after it makes the line unreadable. */
    const char *end = skip_value(p, l.e);
    if (p >= l.e || *p != '{' || end == NULL || ws(end, l.e) != l.e)
        return;
    l.p = p;
    l.e = end;
    const char *first = ws(p + 1, l.e);
    if (first < l.e && *first == '}') {
        out->kind = SL__BL_PING;
        return;
    }
    int r = obj_get(l, "push", &push);
    if (r < 0)
        return;
    if (r == 1) {
        if (obj_get(push, "channel", &v) == 1)
            span_str(v, &out->channel, &out->channel_len);
        if ((r = obj_get(push, "pub", &v)) == 1) {
            out->kind = SL__BL_PUB;
            span d;
            if (obj_get(v, "data", &d) == 1)
                data_ts(d, out);
        } else if (r == 0 && obj_get(push, "disconnect", &v) == 1) {
            out->kind = SL__BL_DISCONNECT;
            out->code = get_code(v);
            get_text(v, "reason", out);
        } else if (r == 0) {
            out->kind = SL__BL_PUSH;
        }
        return;
    }
    if (obj_get(l, "id", &v) == 1 && sl__bench_span_u64(v, &out->id) == 0) {
        out->kind = SL__BL_REPLY;
        if (obj_get(l, "error", &v) == 1) {
            out->error = 1;
            out->code = get_code(v);
            get_text(v, "message", out);
        }
    }
}
