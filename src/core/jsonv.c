/* Iterative JSON validation with an explicit container stack (a bit per level: object or array), so
 * hostile nesting cannot exhaust the C stack. Checks UTF-8 (no overlongs, no surrogates, nothing
 * past U+10FFFF) the way jansson does, so that what we accept jansson can later parse (numbers
 * included: 64-bit integers, finite reals). */
#include "core/jsonv.h"
#include "core/numtext.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    const unsigned char *p, *end;
} cur;

static void ws(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

/* The code unit of "\uXXXX" at p (p points at the backslash), or -1. */
static long u_escape(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int h = sl__hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* One UTF-8 sequence starting at a byte >= 0x80. */
static int utf8(cur *c)
{
    const unsigned char *p = c->p;
    size_t left = (size_t)(c->end - p);
    unsigned char b = p[0];
    size_t len;
    uint32_t cp;
    if (b >= 0xc2 && b <= 0xdf) {
        len = 2;
        cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        cp = b & 0x07;
    } else {
        return 0;
    }
    if (left < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    c->p += len;
    return 1;
}

/* Bytes a string's plain run may hold: printable ASCII (and DEL) but '"' and '\\'. */
#define PLAIN_ROW(b) ((b) >= 0x20 && (b) < 0x80 && (b) != '"' && (b) != '\\')
#define PLAIN4(b) PLAIN_ROW(b), PLAIN_ROW((b) + 1), PLAIN_ROW((b) + 2), PLAIN_ROW((b) + 3)
#define PLAIN16(b) PLAIN4(b), PLAIN4((b) + 4), PLAIN4((b) + 8), PLAIN4((b) + 12)
#define PLAIN64(b) PLAIN16(b), PLAIN16((b) + 16), PLAIN16((b) + 32), PLAIN16((b) + 48)
static const unsigned char plain[256] = {PLAIN64(0), PLAIN64(64), PLAIN64(128), PLAIN64(192)};

/* The first byte from p on that is not plain (end: none). Message bodies are mostly long plain
 * runs: 16 bytes a step with SSE2 (every x86-64 has it), then the table for the tail (for the
 * benchmark's 200-byte PUT body, 540 instructions in strings instead of 1,010). */
static const unsigned char *plain_run(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* Compared as signed bytes, 0x80..0xff are negative: "below 0x20" takes them (UTF-8,
         * checked by the slow path) along with the control characters. */
        __m128i odd =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                         _mm_cmplt_epi8(v, space));
        unsigned m = (unsigned)_mm_movemask_epi8(odd);
        if (m != 0)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && plain[*p])
        p++;
    return p;
}

static int string(cur *c)
{
    c->p++; /* opening quote */
    while (c->p < c->end) {
        const unsigned char *p = plain_run(c->p, c->end), *end = c->end;
        if ((c->p = p) == end)
            break;
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return 1;
        }
        if (ch < 0x20)
            return 0;
        if (ch == '\\') {
            if (++c->p >= c->end)
                return 0;
            ch = *c->p;
            if (ch == 'u') {
                /* As jansson: no \u0000, and surrogates only as a high + low pair. */
                long u = u_escape(c->p - 1, c->end);
                if (u <= 0 || (u >= 0xdc00 && u <= 0xdfff))
                    return 0;
                c->p += 5;
                if (u >= 0xd800 && u <= 0xdbff) {
                    long lo = u_escape(c->p, c->end);
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return 0;
                    c->p += 6;
                }
            } else if (strchr("\"\\/bfnrt", ch) && ch) {
                c->p++;
            } else {
                return 0;
            }
        } else if (ch >= 0x80) {
            if (!utf8(c))
                return 0;
        } else {
            c->p++;
        }
    }
    return 0;
}

static int digits(cur *c)
{
    const unsigned char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > start;
}

/* jansson stores integers as 64-bit and reals as finite doubles and refuses numbers outside them;
 * so must we, or a stored message could not be read back. */
static int number_in_range(const unsigned char *s, size_t n, int integer)
{
    char small[256], *buf = small;
    if (n >= sizeof small && (buf = malloc(n + 1)) == NULL)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    int ok;
    if (integer) {
        (void)strtoll(buf, NULL, 10);
        ok = errno != ERANGE;
    } else {
        double d = strtod(buf, NULL);
        ok = d != HUGE_VAL && d != -HUGE_VAL;
    }
    if (buf != small)
        free(buf);
    return ok;
}

static int number(cur *c)
{
    const unsigned char *start = c->p;
    int integer = 1;
    if (*c->p == '-')
        c->p++;
    if (c->p >= c->end)
        return 0;
    const unsigned char *int_start = c->p;
    if (*c->p == '0')
        c->p++;
    else if (!digits(c))
        return 0;
    /* Below 10^18 an integer fits in 64 bits, and without an exponent a real with at most 300
     * digits before its point is finite (DBL_MAX has 309): no conversion needed for those, which
     * are nearly all numbers (timestamps, counters, prices). */
    size_t int_digits = (size_t)(c->p - int_start);
    if (c->p < c->end && *c->p == '.') {
        integer = 0;
        c->p++;
        if (!digits(c))
            return 0;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        integer = 0;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!digits(c))
            return 0;
    } else if (integer ? int_digits <= 18 : int_digits <= 300) {
        return 1;
    }
    return number_in_range(start, (size_t)(c->p - start), integer);
}

static int literal(cur *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* A scalar, or 0 when the next value is not a valid scalar. */
static int scalar(cur *c)
{
    switch (*c->p) {
    case '"':
        return string(c);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    default:
        return (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) && number(c);
    }
}

/* An object member's key and its colon, with the whitespace after. */
static int member_key(cur *c)
{
    if (c->p >= c->end || *c->p != '"' || !string(c))
        return 0;
    ws(c);
    if (c->p >= c->end || *c->p++ != ':')
        return 0;
    ws(c);
    return 1;
}

int sl__json_valid(const char *s, size_t n)
{
    if (s == NULL)
        return 0;
    cur c = {(const unsigned char *)s, (const unsigned char *)s + n};
    unsigned char stack[SL__JSON_MAX_DEPTH / 8]; /* bit set: 1 = object, 0 = array */
    int depth = 0;
    ws(&c);
    for (;;) {
        /* Expect a value. */
        if (c.p >= c.end)
            return 0;
        if (*c.p == '{' || *c.p == '[') {
            if (depth >= SL__JSON_MAX_DEPTH)
                return 0;
            int obj = *c.p == '{';
            if (obj)
                stack[depth / 8] |= (unsigned char)(1u << (depth % 8));
            else
                stack[depth / 8] &= (unsigned char)~(1u << (depth % 8));
            depth++;
            c.p++;
            ws(&c);
            if (c.p < c.end && *c.p == (obj ? '}' : ']')) {
                c.p++;
                depth--;
                goto after_value;
            }
            if (obj && !member_key(&c))
                return 0;
            continue;
        }
        if (!scalar(&c))
            return 0;
    after_value:
        ws(&c);
        if (depth == 0)
            return c.p == c.end;
        if (c.p >= c.end)
            return 0;
        int obj = (stack[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
        if (*c.p == ',') {
            c.p++;
            ws(&c);
            if (obj && !member_key(&c))
                return 0;
            continue;
        }
        if (*c.p == (obj ? '}' : ']')) {
            c.p++;
            depth--;
            goto after_value;
        }
        return 0;
    }
}
