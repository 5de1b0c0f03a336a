/* The strict JSON of the JWT verifier's header and payload (security/jwt_json.h): a bounded,
 * allocation-free recursive-descent parser that accepts exactly what jansson with
 * JSON_REJECT_DUPLICATES accepts, up to a nesting limit (the unit tests check the two agree on
 * hostile and mutated input), written because jansson alone costs twice a verification's whole
 * budget (docs/JWT.md has the measurements). Only the members of the top-level object that the
 * caller names are reported; the rest is checked and skipped. No I/O. */
#include "security/jwt_json.h"

#include "core/numtext.h"
#include "security/jwt_internal.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct jparser {
    char *b;
    size_t n, i;
    int depth;
    jref *keys, *strs;
    size_t nkeys, nstrs;
    const jname *names; /* members of the top-level object to report */
    jval *vals;
    size_t nnames;
} jparser;

/* The parser relies on the NUL at b[n]: NUL is invalid everywhere in JSON text, so reaching it is
 * an error wherever it occurs, and no lookahead can run past it. */

static void skip_ws(jparser *p)
{
    for (;;) {
        char c = p->b[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->i++;
    }
}

static long hex4(const unsigned char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = sl__hexval((unsigned char)s[i]); /* stops at the sentinel before reading past it */
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0: no overlongs, no surrogates,
 * nothing above U+10FFFF (as jansson). */
size_t sl__jwt_utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* 1 for the bytes a JSON string may hold as they are: printable ASCII but '"' and '\\'. One load
 * per byte instead of four comparisons, in the loop that reads most of a token. */
#define PLAIN16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
/* clang-format off */
static const unsigned char plain_ascii[256] = {
    PLAIN16(0), PLAIN16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
    PLAIN16(1), PLAIN16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x5c '\\' */
    PLAIN16(1), PLAIN16(1),
    /* 0x80 and up: UTF-8, validated on the slow path */
};
/* clang-format on */

/* Decodes the string starting at the quote under p->i into the same place (escapes only shrink)
 * and reports where its bytes are. */
static int parse_string(jparser *p, jref *out)
{
    unsigned char *b = (unsigned char *)p->b;
    size_t r = p->i + 1, start = r;
    /* Nearly every string in a token is plain ASCII: skip over it without copying. */
    while (plain_ascii[b[r]])
        r++;
    size_t w = r;
    for (;;) {
        unsigned char c = b[r];
        if (c == '"')
            break;
        if (c < 0x20) /* control characters, and the sentinel */
            return -1;
        if (c < 0x80 && c != '\\') {
            b[w++] = c;
            r++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = sl__jwt_utf8_seq(b + r);
            if (k == 0)
                return -1;
            memmove(b + w, b + r, k);
            w += k;
            r += k;
            continue;
        }
        unsigned char e = b[r + 1];
        r += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            b[w++] = e;
            break;
        case 'b':
            b[w++] = '\b';
            break;
        case 'f':
            b[w++] = '\f';
            break;
        case 'n':
            b[w++] = '\n';
            break;
        case 'r':
            b[w++] = '\r';
            break;
        case 't':
            b[w++] = '\t';
            break;
        case 'u': {
            long cp = hex4(b + r);
            if (cp < 0)
                return -1;
            r += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (b[r] != '\\' || b[r + 1] != 'u')
                    return -1;
                long lo = hex4(b + r + 2);
                if (lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                r += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
                return -1; /* a lone low surrogate; NUL would truncate C strings downstream */
            }
            if (cp < 0x80) {
                b[w++] = (unsigned char)cp;
            } else if (cp < 0x800) {
                b[w++] = (unsigned char)(0xc0 | cp >> 6);
                b[w++] = (unsigned char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                b[w++] = (unsigned char)(0xe0 | cp >> 12);
                b[w++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                b[w++] = (unsigned char)(0x80 | (cp & 0x3f));
            } else {
                b[w++] = (unsigned char)(0xf0 | cp >> 18);
                b[w++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
                b[w++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                b[w++] = (unsigned char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            return -1;
        }
    }
    *out = (jref){(uint16_t)start, (uint16_t)(w - start)}; /* one store: see parse_object */
    p->i = r + 1;
    return 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* strtod on the number at s[0..len), which is followed by a delimiter the caller may overwrite.
 * strtod honours the locale's decimal point, so a '.' is swapped for it when it differs. */
static int real_value(char *s, size_t len, double *out)
{
    const char *dp = localeconv()->decimal_point;
    char save = s[len], *end = NULL, *dot = memchr(s, '.', len);
    s[len] = '\0';
    if (dot == NULL || (dp[0] == '.' && dp[1] == '\0')) {
        *out = strtod(s, &end);
        end = end == s + len ? end : NULL;
    } else if (dp[0] != '\0' && dp[1] == '\0') {
        *dot = dp[0];
        *out = strtod(s, &end);
        *dot = '.';
        end = end == s + len ? end : NULL;
    } else { /* a multi-byte decimal point: rare enough to copy */
        size_t dl = strlen(dp), pre = (size_t)(dot - s);
        char *t = malloc(len + dl + 1);
        if (t != NULL) {
            memcpy(t, s, pre);
            memcpy(t + pre, dp, dl);
            memcpy(t + pre + dl, dot + 1, len - pre);
            *out = strtod(t, &end);
            end = end == t + len - 1 + dl ? end : NULL;
            free(t);
        }
    }
    s[len] = save;
    return end != NULL && !isinf(*out) ? 0 : -1;
}

static int parse_number(jparser *p, double *out)
{
    const char *b = p->b;
    size_t i = p->i, start = i;
    int neg = 0, integer = 1;
    if (b[i] == '-') {
        neg = 1;
        i++;
    }
    size_t ds = i;
    if (b[i] == '0')
        i++;
    else if (b[i] >= '1' && b[i] <= '9')
        while (is_digit(b[i]))
            i++;
    else
        return -1;
    size_t de = i;
    if (b[i] == '.') {
        integer = 0;
        if (!is_digit(b[++i]))
            return -1;
        while (is_digit(b[i]))
            i++;
    }
    if (b[i] == 'e' || b[i] == 'E') {
        integer = 0;
        i++;
        if (b[i] == '+' || b[i] == '-')
            i++;
        if (!is_digit(b[i]))
            return -1;
        while (is_digit(b[i]))
            i++;
    }
    if (integer) {
        /* Integers must fit in 64 bits, as jansson's json_int_t; exact up to 2^53 as a double. */
        if (de - ds > 19)
            return -1;
        uint64_t u = 0;
        for (size_t k = ds; k < de; k++)
            u = u * 10 + (uint64_t)(b[k] - '0');
        if (u > (uint64_t)INT64_MAX + (uint64_t)neg)
            return -1;
        *out = neg ? -(double)u : (double)u;
    } else if (real_value(p->b + start, i - start, out) < 0) {
        return -1;
    }
    p->i = i;
    return 0;
}

static int parse_value(jparser *p, jval *v);

/* memcmp, inline: the keys and names compared are a few bytes long, shorter than a call. */
static int bytes_cmp(const char *x, const char *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return (unsigned char)x[i] < (unsigned char)y[i] ? -1 : 1;
    return 0;
}

static int key_cmp(const char *b, jref x, jref y)
{
    if (x.len != y.len)
        return x.len < y.len ? -1 : 1;
    return bytes_cmp(b + x.off, b + y.off, x.len);
}

static void key_sift(const char *b, jref *a, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && key_cmp(b, a[c], a[c + 1]) < 0)
            c++;
        if (key_cmp(b, a[root], a[c]) >= 0)
            return;
        jref t = a[root];
        a[root] = a[c];
        a[c] = t;
        root = c;
    }
}

/* 1 when two of the n keys are equal. Small objects (every real JWT) compare pairwise; large ones
 * are heap-sorted first, so a hostile header of a thousand keys costs n log n, not n^2. */
static int has_duplicate_keys(const char *b, jref *k, size_t n)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (key_cmp(b, k[i], k[j]) == 0)
                    return 1;
        return 0;
    }
    for (size_t i = n / 2; i-- > 0;)
        key_sift(b, k, i, n);
    for (size_t end = n; end-- > 1;) {
        jref t = k[0];
        k[0] = k[end];
        k[end] = t;
        key_sift(b, k, 0, end);
    }
    for (size_t i = 1; i < n; i++)
        if (key_cmp(b, k[i - 1], k[i]) == 0)
            return 1;
    return 0;
}

static jval *wanted(jparser *p, const jref *k)
{
    for (size_t i = 0; i < p->nnames; i++)
        if (p->names[i].len == k->len && bytes_cmp(p->names[i].name, p->b + k->off, k->len) == 0)
            return &p->vals[i];
    return NULL;
}

/* top: the top-level object, whose wanted members are reported. */
static int parse_object(jparser *p, int top)
{
    if (++p->depth > SL__JWT_JSON_MAX_DEPTH)
        return -1;
    size_t base = p->nkeys;
    p->i++;
    skip_ws(p);
    if (p->b[p->i] == '}') {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        /* Decoded straight into its slot: copying a jref built from two 16-bit stores stalls on
         * store forwarding, measurably. */
        if (p->b[p->i] != '"' || p->nkeys == KEYS_MAX || parse_string(p, &p->keys[p->nkeys]) < 0)
            return -1;
        const jref *k = &p->keys[p->nkeys++];
        skip_ws(p);
        if (p->b[p->i] != ':')
            return -1;
        p->i++;
        skip_ws(p);
        if (parse_value(p, top ? wanted(p, k) : NULL) < 0)
            return -1;
        skip_ws(p);
        char c = p->b[p->i++];
        if (c == '}')
            break;
        if (c != ',')
            return -1;
    }
    if (has_duplicate_keys(p->b, p->keys + base, p->nkeys - base))
        return -1;
    p->nkeys = base;
    p->depth--;
    return 0;
}

/* v non-NULL: a wanted member, whose string elements are recorded. */
static int parse_array(jparser *p, jval *v)
{
    if (++p->depth > SL__JWT_JSON_MAX_DEPTH)
        return -1;
    size_t first = p->nstrs;
    int strings_only = 1;
    p->i++;
    skip_ws(p);
    if (p->b[p->i] == ']') {
        p->i++;
    } else {
        for (;;) {
            skip_ws(p);
            if (v != NULL && p->b[p->i] == '"') {
                if (p->nstrs == STRS_MAX || parse_string(p, &p->strs[p->nstrs]) < 0)
                    return -1;
                p->nstrs++;
            } else {
                strings_only = 0;
                if (parse_value(p, NULL) < 0)
                    return -1;
            }
            skip_ws(p);
            char c = p->b[p->i++];
            if (c == ']')
                break;
            if (c != ',')
                return -1;
        }
    }
    if (v != NULL) {
        v->type = JV_ARRAY;
        v->strings_only = (unsigned char)strings_only;
        v->s.off = (uint16_t)first;
        v->s.len = (uint16_t)(p->nstrs - first);
    }
    p->depth--;
    return 0;
}

static int literal(jparser *p, const char *word)
{
    size_t i = p->i;
    for (; *word; word++, i++)
        if (p->b[i] != *word) /* a mismatch at the latest at the sentinel */
            return -1;
    p->i = i;
    return 0;
}

/* Leading whitespace already skipped. */
static int parse_value(jparser *p, jval *v)
{
    jval ignored;
    if (v == NULL)
        v = &ignored;
    switch (p->b[p->i]) {
    case '{':
        v->type = JV_OBJECT;
        return parse_object(p, 0);
    case '[':
        if (v == &ignored)
            return parse_array(p, NULL);
        return parse_array(p, v);
    case '"':
        v->type = JV_STRING;
        return parse_string(p, &v->s);
    case 't':
        v->type = JV_LITERAL;
        return literal(p, "true");
    case 'f':
        v->type = JV_LITERAL;
        return literal(p, "false");
    case 'n':
        v->type = JV_LITERAL;
        return literal(p, "null");
    default:
        v->type = JV_NUMBER;
        return parse_number(p, &v->num);
    }
}

int sl__jwt_json_parse(jscratch *s, size_t n, const jname *names, jval *vals, size_t nnames)
{
    jparser p = {.b = s->buf,
                 .n = n,
                 .keys = s->keys,
                 .strs = s->strs,
                 .names = names,
                 .vals = vals,
                 .nnames = nnames};
    s->buf[n] = '\0';
    if (nnames > 0)
        memset(vals, 0, nnames * sizeof *vals);
    skip_ws(&p);
    if (p.b[p.i] != '{' || parse_object(&p, 1) < 0)
        return -1;
    skip_ws(&p);
    return p.i == n ? 0 : -1;
}

int sl__jwt_json_object_valid(const char *text, size_t len)
{
    jscratch s;
    if (text == NULL || len > DECODED_MAX)
        return 0;
    memcpy(s.buf, text, len);
    return sl__jwt_json_parse(&s, len, NULL, NULL, 0) == 0;
}
