/* Structured field values (sfv.h): RFC 8941 section 4.2's parsing algorithms, followed step by
 * step, and section 4.1's serialisation of an item. Anything the algorithms call a failure is -1
 * here; nothing is repaired or guessed. The parser runs twice on every signed request, so its
 * scanning takes shortcuts (sixteen bytes a step, byte sequences decoded as they are found) that
 * must not change a single answer: fuzz/fuzz_sfv.c holds it to the parser it replaced. */
#include "security/sfv.h"

#include "core/numtext.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SSE2 (every x86-64) scans sixteen bytes a step; elsewhere, or built with SL__SFV_SCALAR (the
 * fuzz target that checks both), plain C does. */
#if defined(__SSE2__) && defined(__GNUC__) && !defined(SL__SFV_SCALAR)
#include <emmintrin.h>
#define SFV_SSE2 1
#endif

/* One parse's memory: every string, key and array of a parsed field is carved from the caller's
 * scratch when it gave one (sl__sfv_parse_dict_in: no allocation at all for a field that fits),
 * then from a chain of blocks the result owns (its `mem`), so a field costs at most one or two
 * allocations and one free, not one per piece (a signature header has a dozen). Each piece takes
 * what it holds and no more: a string's end is found before its copy is taken. */
typedef struct block {
    struct block *next;
    size_t cap, used;
    max_align_t data[];
} block;

/* What is left of the field is [p, end). The scanning loops copy p and end into locals: the
 * stores of copied text (char stores may alias anything) would otherwise send them back to memory
 * at every byte. */
typedef struct cur {
    const char *p, *end;
    const char *s;     /* the field's first byte: reads never go below it */
    void **mem;        /* the result's chain of blocks */
    char *scratch;     /* the caller's memory, aligned, taken from first; NULL: none */
    size_t scap;       /* bytes of scratch left */
    unsigned noncanon; /* how many constructs so far serialise otherwise than written */
} cur;

#define ALIGN_UP(n) (((n) + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t))

/* The heap is the rare path (a field larger than the scratch, or no scratch): kept out of line so
 * that take's scratch path inlines into every caller. */
#if defined(__GNUC__)
#define SFV_COLD __attribute__((noinline, cold))
#define SFV_NOINLINE __attribute__((noinline))
#else
#define SFV_COLD
#define SFV_NOINLINE
#endif

static SFV_COLD void *take_heap(cur *c, size_t n)
{
    c->scap = 0; /* the rest goes to the heap: pieces stay in the order they were taken */
    block *b = *c->mem;
    if (b == NULL || b->cap - b->used < n) {
        /* The first block fits most fields whole: their pieces never outgrow the text by much. */
        size_t cap = b == NULL ? 1024 + 2 * (size_t)(c->end - c->s) : 2 * b->cap;
        if (cap < n)
            cap = n;
        block *nb = malloc(sizeof *nb + cap);
        if (nb == NULL)
            return NULL;
        nb->next = b;
        nb->cap = cap;
        nb->used = 0;
        *c->mem = b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static inline void *take(cur *c, size_t n)
{
    n = ALIGN_UP(n);
    if (n <= c->scap) {
        void *p = c->scratch;
        c->scratch += n;
        c->scap -= n;
        return p;
    }
    return take_heap(c, n);
}

static void blocks_free(void *mem)
{
    for (block *b = mem, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
}

static int peek(const cur *c)
{
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

/* How many spaces were skipped. */
static size_t skip_sp(cur *c)
{
    const char *p = c->p, *end = c->end;
    while (p < end && *p == ' ')
        p++;
    size_t n = (size_t)(p - c->p);
    c->p = p;
    return n;
}

static void skip_ows(cur *c)
{
    const char *p = c->p, *end = c->end;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    c->p = p;
}

static int is_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_lcalpha(int ch)
{
    return ch >= 'a' && ch <= 'z';
}

static int is_alpha(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Byte classes, one table lookup a byte in the scanning loops. */
enum {
    C_TOKEN = 1, /* after a token's first byte: RFC 9110 tchar, ':' and '/' */
    C_KEY = 2,   /* after a key's first byte: lcalpha, DIGIT, '_', '-', '.', '*' */
    C_PLAIN = 4, /* in a string as itself: 0x20..0x7e but '"' and '\\' */
    TKP = C_TOKEN | C_KEY | C_PLAIN,
    TP = C_TOKEN | C_PLAIN,
    P = C_PLAIN,
};

static const unsigned char cls[256] = {
    [' '] = P,   ['!'] = TP,  ['#'] = TP,  ['$'] = TP,  ['%'] = TP,  ['&'] = TP,  ['\''] = TP,
    ['('] = P,   [')'] = P,   ['*'] = TKP, ['+'] = TP,  [','] = P,   ['-'] = TKP, ['.'] = TKP,
    ['/'] = TP,  ['0'] = TKP, ['1'] = TKP, ['2'] = TKP, ['3'] = TKP, ['4'] = TKP, ['5'] = TKP,
    ['6'] = TKP, ['7'] = TKP, ['8'] = TKP, ['9'] = TKP, [':'] = TP,  [';'] = P,   ['<'] = P,
    ['='] = P,   ['>'] = P,   ['?'] = P,   ['@'] = P,   ['A'] = TP,  ['B'] = TP,  ['C'] = TP,
    ['D'] = TP,  ['E'] = TP,  ['F'] = TP,  ['G'] = TP,  ['H'] = TP,  ['I'] = TP,  ['J'] = TP,
    ['K'] = TP,  ['L'] = TP,  ['M'] = TP,  ['N'] = TP,  ['O'] = TP,  ['P'] = TP,  ['Q'] = TP,
    ['R'] = TP,  ['S'] = TP,  ['T'] = TP,  ['U'] = TP,  ['V'] = TP,  ['W'] = TP,  ['X'] = TP,
    ['Y'] = TP,  ['Z'] = TP,  ['['] = P,   [']'] = P,   ['^'] = TP,  ['_'] = TKP, ['`'] = TP,
    ['a'] = TKP, ['b'] = TKP, ['c'] = TKP, ['d'] = TKP, ['e'] = TKP, ['f'] = TKP, ['g'] = TKP,
    ['h'] = TKP, ['i'] = TKP, ['j'] = TKP, ['k'] = TKP, ['l'] = TKP, ['m'] = TKP, ['n'] = TKP,
    ['o'] = TKP, ['p'] = TKP, ['q'] = TKP, ['r'] = TKP, ['s'] = TKP, ['t'] = TKP, ['u'] = TKP,
    ['v'] = TKP, ['w'] = TKP, ['x'] = TKP, ['y'] = TKP, ['z'] = TKP, ['{'] = P,   ['|'] = TP,
    ['}'] = P,   ['~'] = TP,
};

void sl__sfv_item_clear(sl__sfv_item *it)
{
    if (it == NULL)
        return;
    blocks_free(it->mem);
    memset(it, 0, sizeof *it);
}

void sl__sfv_dict_clear(sl__sfv_dict *d)
{
    if (d == NULL)
        return;
    blocks_free(d->mem);
    memset(d, 0, sizeof *d);
}

/* Makes room for one more element in *v, which holds n: arrays start at 4 elements and double
 * (the bounds are powers of two), so the capacity is full exactly when n is 0 or a power of two
 * of at least 4. -1 at max elements or out of memory. The new element is not zeroed: the caller
 * does (with its type's size known, a few stores rather than a memset call). */
static inline int grow(cur *c, void **v, size_t n, size_t size, size_t max)
{
    if (n >= max)
        return -1;
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return 0;
    size_t cap = n == 0 ? 4 : 2 * n;
    void *p = take(c, cap * size);
    if (p == NULL)
        return -1;
    if (n)
        memcpy(p, *v, n * size);
    *v = p;
    return 0;
}

static inline void move8(char *dst, const char *src)
{
    uint64_t w;
    memcpy(&w, src, 8);
    memcpy(dst, &w, 8);
}

static inline void move4(char *dst, const char *src)
{
    uint32_t w;
    memcpy(&w, src, 4);
    memcpy(dst, &w, 4);
}

/* memcpy for the pieces of a field, mostly a few bytes to a few dozen, where calling memcpy costs
 * more than copying: word moves, the last one overlapping. Reads only src[0..n). */
static inline void copy(char *dst, const char *src, size_t n)
{
    if (n > 64) {
        memcpy(dst, src, n);
    } else if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            move8(dst + i, src + i);
        move8(dst + n - 8, src + n - 8);
    } else if (n >= 4) {
        move4(dst, src);
        move4(dst + n - 4, src + n - 4);
    } else if (n) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/* A NUL-terminated copy of the span s[0..n). */
static char *dup_span(cur *c, const char *s, size_t n)
{
    char *p = take(c, n + 1);
    if (p) {
        copy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

#ifdef SFV_SSE2
/* A piece of n < 16 bytes that are the first of x, NUL-terminated: the copy is one store (a piece
 * of 16 bytes takes what one of n + 1 takes: ALIGN_UP of either is the same). */
static inline char *dup_short(cur *c, __m128i x, size_t n)
{
    char *p = take(c, 16);
    if (p) {
        _mm_storeu_si128((__m128i *)(void *)p, x);
        p[n] = '\0';
    }
    return p;
}
#endif

/* ---- bare items (section 4.2.3.1) ----------------------------------------------------------- */

static int parse_number(cur *c, sl__sfv_bare *out)
{
    const char *p = c->p, *end = c->end;
    int neg = *p == '-'; /* the caller saw '-' or a digit */
    p += neg;
    /* one pass: the value as it goes, and no more than 16 digits looked at (15 are allowed; at
     * most 16 cannot overflow) */
    const char *digits = p, *lim = end - p > 16 ? p + 16 : end;
    int64_t v = 0;
    unsigned d;
    while (p < lim && (d = (unsigned)(unsigned char)*p - '0') <= 9) {
        v = v * 10 + d;
        p++;
    }
    size_t n = (size_t)(p - digits); /* integer digits */
    if (n == 0 || n > 15)
        return -1;
    if (p < end && *p == '.') {
        if (n > 12)
            return -1;
        const char *frac = ++p;
        while (p < end && is_digit((unsigned char)*p) && p - frac <= 3)
            p++;
        size_t f = (size_t)(p - frac);
        if (f == 0 || f > 3)
            return -1;
        char num[24]; /* at most 12 digits, '.', 3 digits */
        memcpy(num, digits, n + 1 + f);
        num[n + 1 + f] = '\0';
        c->noncanon++; /* the serialiser writes decimals its own way */
        c->p = p;
        out->type = SL__SFV_DECIMAL;
        out->d = strtod(num, NULL) * (neg ? -1 : 1);
        return 0;
    }
    /* The serialiser writes no leading zero and no "-0". */
    if (*digits == '0' && (n > 1 || neg))
        c->noncanon++;
    c->p = p;
    out->type = SL__SFV_INTEGER;
    out->i = neg ? -v : v;
    return 0;
}

#ifdef SFV_SSE2
static inline __m128i load16(const char *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* Bit i set: byte i of x does not stand for itself in a string ('"', '\\', or outside
 * 0x20..0x7e; the signed compares put 0x80..0xff below 0x20). */
static inline unsigned not_plain(__m128i x)
{
    __m128i in = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(0x1f)),
                               _mm_cmplt_epi8(x, _mm_set1_epi8(0x7f)));
    __m128i special =
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
    return (unsigned)_mm_movemask_epi8(_mm_andnot_si128(special, in)) ^ 0xffffu;
}

static inline unsigned not_plain16(const char *p)
{
    return not_plain(load16(p));
}

/* Bit i set: byte i of x cannot follow a key's first byte (lcalpha, DIGIT, '_', '-', '.', '*'). */
static inline unsigned not_key(__m128i x)
{
    __m128i lc = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('a' - 1)),
                               _mm_cmplt_epi8(x, _mm_set1_epi8('z' + 1)));
    /* '-', '.', '/' and the digits are 0x2d..0x39: all but '/' */
    __m128i dn = _mm_andnot_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('/')),
                                  _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('-' - 1)),
                                                _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1))));
    __m128i us =
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('_')), _mm_cmpeq_epi8(x, _mm_set1_epi8('*')));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(lc, dn), us)) ^ 0xffffu;
}

/* The first byte of [p, end) that does not stand for itself in a string, or end: sixteen bytes a
 * step, and the field's last sixteen (some already seen) for the rest, when the field has them:
 * floor is its first byte. */
static inline const char *plain_end(const char *p, const char *end, const char *floor)
{
    for (; end - p >= 16; p += 16) {
        unsigned m = not_plain16(p);
        if (m != 0)
            return p + __builtin_ctz(m);
    }
    if (p < end && end - floor >= 16) {
        const char *b = end - 16;
        unsigned m = not_plain16(b) >> (p - b);
        return m != 0 ? p + __builtin_ctz(m) : end;
    }
    while (p < end && (cls[(unsigned char)*p] & C_PLAIN))
        p++;
    return p;
}
#else
/* The first byte of [p, end) that does not stand for itself in a string ('"', '\\', or outside
 * 0x20..0x7e), or end: eight bytes a step, each step flagging the bytes that do not (the usual
 * word tricks; a borrow or carry can flag a byte wrongly, but only above one rightly flagged, so
 * the lowest flag is exact). */
static const char *plain_end(const char *p, const char *end, const char *floor)
{
    const uint64_t ones = 0x0101010101010101u, highs = ones * 0x80;
    (void)floor;
    while (end - p >= 8) {
        uint64_t w, q, b;
        memcpy(&w, p, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        uint64_t m =
            (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | (w + ones) | w) &
            highs;
        if (m != 0) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(m) >> 3);
#else
            break; /* the bytes below find it */
#endif
        }
        p += 8;
    }
    while (p < end && (cls[(unsigned char)*p] & C_PLAIN))
        p++;
    return p;
}
#endif

/* The rest of a string from its first escape at q: checked to its closing quote first, so the
 * unescaped copy takes only its own size. */
static SFV_COLD int parse_escaped(cur *c, sl__sfv_bare *out, const char *start, const char *q)
{
    const char *end = c->end;
    size_t n = (size_t)(q - start); /* unescaped bytes */
    while (q < end && *q != '"') {
        if (*q != '\\' || q + 1 == end || (q[1] != '"' && q[1] != '\\'))
            return -1;
        const char *r = plain_end(q + 2, end, c->s);
        n += 1 + (size_t)(r - (q + 2));
        q = r;
    }
    if (q == end)
        return -1;
    char *buf = take(c, n + 1);
    if (buf == NULL)
        return -1;
    size_t o = 0;
    for (const char *s = start; s < q; s++) {
        s += *s == '\\'; /* every escape in here was checked above */
        buf[o++] = *s;
    }
    buf[o] = '\0';
    c->p = q + 1;
    out->type = SL__SFV_STRING;
    out->s = buf;
    out->len = o;
    return 0;
}

static inline int parse_string(cur *c, sl__sfv_bare *out)
{
    const char *start = c->p + 1;
#ifdef SFV_SSE2
    /* most strings end within the sixteen bytes after the quote */
    if (c->end - start >= 16) {
        __m128i x = load16(start);
        unsigned m = not_plain(x);
        if (m != 0 && start[__builtin_ctz(m)] == '"') {
            size_t n = (size_t)__builtin_ctz(m);
            if ((out->s = dup_short(c, x, n)) == NULL)
                return -1;
            c->p = start + n + 1;
            out->type = SL__SFV_STRING;
            out->len = n;
            return 0;
        }
    }
#endif
    const char *q = plain_end(start, c->end, c->s);
    if (q == c->end)
        return -1;
    if (*q == '\\')
        return parse_escaped(c, out, start, q);
    if (*q != '"')
        return -1; /* outside 0x20..0x7e */
    /* no escape: the string is its span */
    if ((out->s = dup_span(c, start, (size_t)(q - start))) == NULL)
        return -1;
    c->p = q + 1;
    out->type = SL__SFV_STRING;
    out->len = (size_t)(q - start);
    return 0;
}

static int parse_token(cur *c, sl__sfv_bare *out)
{
    const char *start = c->p, *p = start + 1, *end = c->end; /* ALPHA or '*': the caller checked */
    while (p < end && (cls[(unsigned char)*p] & C_TOKEN))
        p++;
    c->p = p;
    if ((out->s = dup_span(c, start, (size_t)(p - start))) == NULL)
        return -1;
    out->type = SL__SFV_TOKEN;
    out->len = (size_t)(p - start);
    return 0;
}

/* Base64's alphabet (RFC 4648 section 4), once for each place in a quantum: the value already
 * shifted to its place, and a bit of its own above (24 + place) saying the byte is in the alphabet
 * ('=' is not), so a quantum decodes with four lookups and three ors, and one and over all quanta
 * says whether every byte was valid. */
/* clang-format off */
#define B64_ALPHABET(X) \
    X('A', 0) X('B', 1) X('C', 2) X('D', 3) X('E', 4) X('F', 5) X('G', 6) X('H', 7) \
    X('I', 8) X('J', 9) X('K', 10) X('L', 11) X('M', 12) X('N', 13) X('O', 14) X('P', 15) \
    X('Q', 16) X('R', 17) X('S', 18) X('T', 19) X('U', 20) X('V', 21) X('W', 22) X('X', 23) \
    X('Y', 24) X('Z', 25) X('a', 26) X('b', 27) X('c', 28) X('d', 29) X('e', 30) X('f', 31) \
    X('g', 32) X('h', 33) X('i', 34) X('j', 35) X('k', 36) X('l', 37) X('m', 38) X('n', 39) \
    X('o', 40) X('p', 41) X('q', 42) X('r', 43) X('s', 44) X('t', 45) X('u', 46) X('v', 47) \
    X('w', 48) X('x', 49) X('y', 50) X('z', 51) X('0', 52) X('1', 53) X('2', 54) X('3', 55) \
    X('4', 56) X('5', 57) X('6', 58) X('7', 59) X('8', 60) X('9', 61) X('+', 62) X('/', 63)
/* clang-format on */
#define B64_AT0(ch, v) [ch] = (uint32_t)(v) << 18 | UINT32_C(1) << 24,
#define B64_AT1(ch, v) [ch] = (uint32_t)(v) << 12 | UINT32_C(1) << 25,
#define B64_AT2(ch, v) [ch] = (uint32_t)(v) << 6 | UINT32_C(1) << 26,
#define B64_AT3(ch, v) [ch] = (uint32_t)(v) | UINT32_C(1) << 27,
static const uint32_t b64_at0[256] = {B64_ALPHABET(B64_AT0)};
static const uint32_t b64_at1[256] = {B64_ALPHABET(B64_AT1)};
static const uint32_t b64_at2[256] = {B64_ALPHABET(B64_AT2)};
static const uint32_t b64_at3[256] = {B64_ALPHABET(B64_AT3)};
#define B64_VALID (UINT32_C(15) << 24)

/* The quantum u[0..4): its 24 bits, and B64_VALID's bits of the bytes in the alphabet. */
static inline uint32_t b64_quantum(const unsigned char *u)
{
    return b64_at0[u[0]] | b64_at1[u[1]] | b64_at2[u[2]] | b64_at3[u[3]];
}

static inline void b64_put3(unsigned char *buf, uint32_t q)
{
    buf[0] = (unsigned char)(q >> 16);
    buf[1] = (unsigned char)(q >> 8);
    buf[2] = (unsigned char)q;
}

/* The last quantum t[0..4) when it ends in pad ('=' once or twice): its one or two bytes to buf and
 * how many, or -1 for a byte outside the alphabet or stray bits. */
static long b64_padded(const unsigned char *t, size_t pad, unsigned char *buf)
{
    uint32_t want = pad == 1 ? UINT32_C(7) << 24 : UINT32_C(3) << 24;
    uint32_t q = b64_at0[t[0]] | b64_at1[t[1]] | (pad == 1 ? b64_at2[t[2]] : 0);
    if ((q & want) != want || (pad == 2 && (q & 0xffff)) || (pad == 1 && (q & 0xff)))
        return -1;
    buf[0] = (unsigned char)(q >> 16);
    if (pad == 1)
        buf[1] = (unsigned char)(q >> 8);
    return (long)(3 - pad);
}

/* Strict base64 (RFC 4648 section 4): whole quanta, padding only at the end (at most two), no
 * stray bits. Writes the decoded bytes (n / 4 * 3 less one for each '=') to buf and returns how
 * many, or -1. */
static long b64_core(const char *s, size_t n, unsigned char *buf)
{
    if (n % 4)
        return -1;
    size_t pad = n > 0 && s[n - 1] == '=' ? 1 + (s[n - 2] == '=') : 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, full = n - (pad ? 4 : 0);
    uint32_t all = B64_VALID;
    for (size_t i = 0; i < full; i += 4) {
        uint32_t q = b64_quantum(u + i);
        all &= q;
        b64_put3(buf + o, q);
        o += 3;
    }
    if (all != B64_VALID)
        return -1;
    if (pad) {
        long t = b64_padded(u + full, pad, buf + o);
        if (t < 0)
            return -1;
        o += (size_t)t;
    }
    return (long)o;
}

long sl__sfv_b64_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    if (n % 4)
        return -1;
    size_t pad = n > 0 && s[n - 1] == '=' ? 1 + (s[n - 2] == '=') : 0;
    if (n / 4 * 3 - pad > cap)
        return -1;
    return b64_core(s, n, out);
}

static int b64_decode(cur *c, const char *s, size_t n, char **out, size_t *olen)
{
    if (n % 4)
        return -1;
    char *buf = take(c, n / 4 * 3 + 1);
    if (buf == NULL)
        return -1;
    long o = b64_core(s, n, (unsigned char *)buf);
    if (o < 0)
        return -1;
    buf[o] = '\0';
    *out = buf;
    *olen = (size_t)o;
    return 0;
}

/* The usual byte sequence, in one pass: whole quanta decoded straight into the scratch while they
 * are in the alphabet, then the closing ':' right there or after one padded quantum. 1 when done,
 * -1 when refused, 0 when the general path must decide (no room in the scratch, a ':' inside the
 * last quantum, anything else unusual): what is written to the scratch is not taken until done. */
static int bytes_in_scratch(cur *c, sl__sfv_bare *out)
{
    const unsigned char *u = (const unsigned char *)c->p + 1, *end = (const unsigned char *)c->end;
    if (ALIGN_UP((size_t)(end - u) / 4 * 3 + 1) > c->scap)
        return 0;
    unsigned char *buf = (unsigned char *)c->scratch;
    size_t o = 0;
    for (; end - u >= 4; u += 4, o += 3) {
        uint32_t q = b64_quantum(u);
        if ((q & B64_VALID) != B64_VALID)
            break;
        b64_put3(buf + o, q);
    }
    const unsigned char *close = u;
    if (u == end)
        return 0;
    if (*u != ':') {
        /* the quantum at u is the last, padded, or the field is refused; the first ':' must be
         * the one after it */
        if (end - u < 5 || u[4] != ':' || u[1] == ':' || u[2] == ':' || u[3] == ':')
            return 0;
        size_t pad = u[3] == '=' ? 1 + (u[2] == '=') : 0;
        long t = pad ? b64_padded(u, pad, buf + o) : -1; /* unpadded: a byte outside */
        if (t < 0)
            return -1;
        o += (size_t)t;
        close = u + 4;
    }
    buf[o] = '\0';
    out->s = take(c, o + 1); /* buf: it fits, as checked above */
    out->len = o;
    out->type = SL__SFV_BYTES;
    c->p = (const char *)close + 1;
    return 1;
}

static int parse_bytes(cur *c, sl__sfv_bare *out)
{
    int rc = bytes_in_scratch(c, out);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    const char *start = c->p + 1, *end = memchr(start, ':', (size_t)(c->end - start));
    if (end == NULL)
        return -1;
    c->p = end + 1;
    /* b64_decode refuses every byte outside the alphabet and any '=' but trailing padding. */
    if (b64_decode(c, start, (size_t)(end - start), &out->s, &out->len) < 0)
        return -1;
    out->type = SL__SFV_BYTES;
    return 0;
}

/* Every bare item but a string, out of line: strings are most of a signature header's items. */
static SFV_NOINLINE int parse_other(cur *c, sl__sfv_bare *out)
{
    int ch = peek(c);
    if (ch == '-' || is_digit(ch))
        return parse_number(c, out);
    if (ch == ':')
        return parse_bytes(c, out);
    if (ch == '*' || is_alpha(ch))
        return parse_token(c, out);
    if (ch == '?') {
        c->p++;
        ch = peek(c);
        if (ch != '0' && ch != '1')
            return -1;
        c->p++;
        out->type = SL__SFV_BOOLEAN;
        out->i = ch == '1';
        return 0;
    }
    return -1;
}

/* Into *out, which the caller zeroed. */
static inline int parse_bare(cur *c, sl__sfv_bare *out)
{
    if (c->p < c->end && *c->p == '"')
        return parse_string(c, out);
    return parse_other(c, out);
}

/* ---- keys and parameters (sections 4.2.3.2, 4.2.3.3) ---------------------------------------- */

static inline char *parse_key(cur *c)
{
    const char *start = c->p, *p = start, *end = c->end;
    if (p == end || (!is_lcalpha((unsigned char)*p) && *p != '*'))
        return NULL;
#ifdef SFV_SSE2
    if (end - start >= 16) {
        __m128i x = load16(start);
        unsigned m = not_key(x) & ~1u; /* the first byte is checked above */
        if (m != 0) {
            size_t n = (size_t)__builtin_ctz(m);
            c->p = start + n;
            return dup_short(c, x, n);
        }
    }
#endif
    while (++p < end && (cls[(unsigned char)*p] & C_KEY))
        ;
    if ((size_t)(p - start) > SL__SFV_MAX_KEY)
        return NULL;
    c->p = p;
    return dup_span(c, start, (size_t)(p - start));
}

static int parse_params(cur *c, sl__sfv_item *it)
{
    while (peek(c) == ';') {
        c->p++;
        if (skip_sp(c))
            c->noncanon++;
        if (grow(c, (void **)&it->params, it->nparams, sizeof *it->params, SL__SFV_MAX_PARAMS) < 0)
            return -1;
        sl__sfv_param *p = &it->params[it->nparams];
        memset(p, 0, sizeof *p);
        if ((p->key = parse_key(c)) == NULL)
            return -1;
        it->nparams++;
        if (peek(c) == '=') {
            c->p++;
            if (parse_bare(c, &p->v) < 0)
                return -1;
            if (p->v.type == SL__SFV_BOOLEAN && p->v.i == 1)
                c->noncanon++; /* serialised as the bare key */
        } else {
            p->v.type = SL__SFV_BOOLEAN;
            p->v.i = 1;
        }
    }
    return 0;
}

/* ---- items, inner lists, lists, dictionaries ------------------------------------------------ */

/* An empty item, field by field: a memset of the whole struct compiles to `rep stos`, whose
 * start-up costs as much as parsing a short item. */
static inline void item_init(sl__sfv_item *it)
{
    it->inner = 0;
    it->v = (sl__sfv_bare){0};
    it->items = NULL;
    it->nitems = 0;
    it->params = NULL;
    it->nparams = 0;
    it->mem = NULL;
    it->text = NULL;
    it->text_len = 0;
    it->canonical = 0;
}

/* The span of it's text, from start to here, and whether it serialises as written. */
static void spanned(cur *c, sl__sfv_item *it, const char *start, unsigned noncanon)
{
    it->text = start;
    it->text_len = (size_t)(c->p - start);
    it->canonical = c->noncanon == noncanon;
}

static int parse_item(cur *c, sl__sfv_item *it)
{
    const char *start = c->p;
    unsigned noncanon = c->noncanon;
    item_init(it);
    if (parse_bare(c, &it->v) < 0 || parse_params(c, it) < 0)
        return -1;
    spanned(c, it, start, noncanon);
    return 0;
}

static int parse_item_or_inner(cur *c, sl__sfv_item *it)
{
    if (peek(c) != '(')
        return parse_item(c, it);
    const char *start = c->p;
    unsigned noncanon = c->noncanon;
    item_init(it);
    it->inner = 1;
    c->p++;
    for (;;) {
        /* Serialised: no space after '(' or before ')', one between items. */
        size_t sp = skip_sp(c);
        int ch = peek(c);
        if (sp != (it->nitems && ch != ')'))
            c->noncanon++;
        if (ch == ')') {
            c->p++;
            if (parse_params(c, it) < 0)
                return -1;
            spanned(c, it, start, noncanon);
            return 0;
        }
        if (ch < 0 ||
            grow(c, (void **)&it->items, it->nitems, sizeof *it->items, SL__SFV_MAX_INNER) < 0)
            return -1;
        if (parse_item(c, &it->items[it->nitems++]) < 0)
            return -1;
        ch = peek(c);
        if (ch != ' ' && ch != ')')
            return -1;
    }
}

static int parse_members(const char *s, size_t len, sl__sfv_dict *out, int dict, void *scratch,
                         size_t cap)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || len > SL__SFV_MAX_INPUT)
        return -1;
    cur c = {s, s + len, s, &out->mem, NULL, 0, 0};
    if (scratch != NULL) {
        /* aligned as malloc's memory is, for every piece carved from it */
        size_t skip = (size_t)(-(uintptr_t)scratch % sizeof(max_align_t));
        if (cap > skip) {
            c.scratch = (char *)scratch + skip;
            c.scap = (cap - skip) / sizeof(max_align_t) * sizeof(max_align_t);
        }
    }
    skip_sp(&c);
    while (c.end > c.p && c.end[-1] == ' ')
        c.end--;
    if (c.p == c.end)
        return 0;
    for (;;) {
        if (grow(&c, (void **)&out->m, out->n, sizeof *out->m, SL__SFV_MAX_MEMBERS) < 0)
            goto fail;
        sl__sfv_member *m = &out->m[out->n++];
        m->key = NULL;
        item_init(&m->item);
        if (dict) {
            if ((m->key = parse_key(&c)) == NULL)
                goto fail;
            if (peek(&c) == '=') {
                c.p++;
                if (parse_item_or_inner(&c, &m->item) < 0)
                    goto fail;
            } else {
                m->item.v.type = SL__SFV_BOOLEAN;
                m->item.v.i = 1;
                if (parse_params(&c, &m->item) < 0)
                    goto fail;
            }
        } else if (parse_item_or_inner(&c, &m->item) < 0)
            goto fail;
        skip_ows(&c);
        if (c.p == c.end)
            return 0;
        if (*c.p != ',')
            goto fail;
        c.p++;
        skip_ows(&c);
        if (c.p == c.end) /* a trailing comma */
            goto fail;
    }
fail:
    sl__sfv_dict_clear(out);
    return -1;
}

int sl__sfv_parse_dict(const char *s, size_t len, sl__sfv_dict *out)
{
    return parse_members(s, len, out, 1, NULL, 0);
}

int sl__sfv_parse_dict_in(const char *s, size_t len, sl__sfv_dict *out, void *scratch, size_t cap)
{
    return parse_members(s, len, out, 1, scratch, cap);
}

int sl__sfv_parse_list(const char *s, size_t len, sl__sfv_dict *out)
{
    return parse_members(s, len, out, 0, NULL, 0);
}

int sl__sfv_parse_item(const char *s, size_t len, sl__sfv_item *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || len > SL__SFV_MAX_INPUT)
        return -1;
    void *mem = NULL;
    cur c = {s, s + len, s, &mem, NULL, 0, 0};
    skip_sp(&c);
    int rc = parse_item(&c, out);
    out->mem = mem; /* parse_item cleared *out first */
    if (rc < 0) {
        sl__sfv_item_clear(out);
        return -1;
    }
    skip_sp(&c);
    if (c.p != c.end) {
        sl__sfv_item_clear(out);
        return -1;
    }
    return 0;
}

const sl__sfv_member *sl__sfv_dict_get(const sl__sfv_dict *d, const char *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->m[i].key && !strcmp(d->m[i].key, key))
            return &d->m[i];
    return NULL;
}

const sl__sfv_bare *sl__sfv_param_get(const sl__sfv_item *it, const char *key)
{
    for (size_t i = 0; i < it->nparams; i++)
        if (!strcmp(it->params[i].key, key))
            return &it->params[i].v;
    return NULL;
}

int sl__sfv_dict_has_dups(const sl__sfv_dict *d)
{
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = i + 1; j < d->n; j++)
            if (d->m[i].key && d->m[j].key && d->m[i].key[0] == d->m[j].key[0] &&
                !strcmp(d->m[i].key, d->m[j].key))
                return 1;
    return 0;
}

int sl__sfv_params_have_dups(const sl__sfv_item *it)
{
    for (size_t i = 0; i < it->nparams; i++)
        for (size_t j = i + 1; j < it->nparams; j++)
            if (it->params[i].key[0] == it->params[j].key[0] &&
                !strcmp(it->params[i].key, it->params[j].key))
                return 1;
    return 0;
}

/* ---- serialisation (section 4.1) ------------------------------------------------------------ */

typedef struct out {
    char *buf;
    size_t cap, n;
    int bad;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->bad || o->n + n >= o->cap) {
        o->bad = 1;
        return;
    }
    memcpy(o->buf + o->n, s, n);
    o->n += n;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_bare(out *o, const sl__sfv_bare *b)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char num[40];
    switch (b->type) {
    case SL__SFV_INTEGER:
        if (b->i > 999999999999999LL || b->i < -999999999999999LL) {
            o->bad = 1;
            return;
        }
        char *e = num;
        if (b->i < 0)
            *e++ = '-';
        e = sl__put_uint(e, (uint64_t)(b->i < 0 ? -b->i : b->i));
        put(o, num, (size_t)(e - num));
        return;
    case SL__SFV_DECIMAL: {
        double r = round(b->d * 1000) / 1000;
        if (!isfinite(r) || fabs(r) >= 1e12) {
            o->bad = 1;
            return;
        }
        snprintf(num, sizeof num, "%.3f", r);
        size_t n = strlen(num);
        while (num[n - 1] == '0' && num[n - 2] != '.')
            n--;
        put(o, num, n);
        return;
    }
    case SL__SFV_STRING: {
        put(o, "\"", 1);
        size_t run = 0; /* bytes before i that need no escape, put in one go */
        for (size_t i = 0; i < b->len; i++) {
            unsigned char ch = (unsigned char)b->s[i];
            if (ch < 0x20 || ch > 0x7e) {
                o->bad = 1;
                return;
            }
            if (ch == '"' || ch == '\\') {
                put(o, b->s + i - run, run);
                put(o, "\\", 1);
                run = 0;
            }
            run++;
        }
        put(o, b->s + b->len - run, run);
        put(o, "\"", 1);
        return;
    }
    case SL__SFV_TOKEN:
        put(o, b->s, b->len);
        return;
    case SL__SFV_BYTES: {
        put(o, ":", 1);
        const unsigned char *p = (const unsigned char *)b->s;
        for (size_t i = 0; i < b->len; i += 3) {
            unsigned long q = (unsigned long)p[i] << 16;
            size_t left = b->len - i;
            if (left > 1)
                q |= (unsigned long)p[i + 1] << 8;
            if (left > 2)
                q |= p[i + 2];
            char quad[4] = {b64[q >> 18 & 63], b64[q >> 12 & 63], left > 1 ? b64[q >> 6 & 63] : '=',
                            left > 2 ? b64[q & 63] : '='};
            put(o, quad, 4);
        }
        put(o, ":", 1);
        return;
    }
    case SL__SFV_BOOLEAN:
        puts_(o, b->i ? "?1" : "?0");
        return;
    }
    o->bad = 1;
}

static void put_params(out *o, const sl__sfv_item *it)
{
    for (size_t i = 0; i < it->nparams; i++) {
        put(o, ";", 1);
        puts_(o, it->params[i].key);
        const sl__sfv_bare *v = &it->params[i].v;
        if (v->type == SL__SFV_BOOLEAN && v->i == 1)
            continue;
        put(o, "=", 1);
        put_bare(o, v);
    }
}

long sl__sfv_serialize_item(const sl__sfv_item *it, char *buf, size_t cap)
{
    out o = {buf, cap, 0, cap == 0};
    if (it->inner) {
        put(&o, "(", 1);
        for (size_t i = 0; i < it->nitems; i++) {
            if (i)
                put(&o, " ", 1);
            put_bare(&o, &it->items[i].v);
            put_params(&o, &it->items[i]);
        }
        put(&o, ")", 1);
    } else
        put_bare(&o, &it->v);
    put_params(&o, it);
    if (o.bad)
        return -1;
    buf[o.n] = '\0';
    return (long)o.n;
}
