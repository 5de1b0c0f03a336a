/* fuzz_sfv's oracle, and nothing else: the structured-field parser of security/sfv.c as it stood
 * before it was made faster (commit 7d15194), verbatim but for its public names, renamed
 * oracle_sfv_* so that it links beside the real one. Only the parsing half: the lookups and the
 * serialiser after it, which the rework left as they were, are not copied. The faster parser must give exactly its
 * answers (fuzz/fuzz_sfv.c), so this copy must not be "fixed": it is the behaviour to keep.
 *
 * The original's own description: RFC 8941 section 4.2's parsing algorithms, followed step by
 * step, and section 4.1's serialisation of an item. Anything the algorithms call a failure is -1
 * here; nothing is repaired or guessed. */
#define sl__sfv_item_clear oracle_sfv_item_clear
#define sl__sfv_dict_clear oracle_sfv_dict_clear
#define sl__sfv_b64_decode oracle_sfv_b64_decode
#define sl__sfv_parse_dict oracle_sfv_parse_dict
#define sl__sfv_parse_dict_in oracle_sfv_parse_dict_in
#define sl__sfv_parse_list oracle_sfv_parse_list
#define sl__sfv_parse_item oracle_sfv_parse_item
#include "security/sfv.h"

#include "core/numtext.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One parse's memory: every string, key and array of a parsed field is carved from the caller's
 * scratch when it gave one (sl__sfv_parse_dict_in: no allocation at all for a field that fits),
 * then from a chain of blocks the result owns (its `mem`), so a field costs at most one or two
 * allocations and one free, not one per piece (a signature header has a dozen). */
typedef struct block {
    struct block *next;
    size_t cap, used;
    max_align_t data[];
} block;

typedef struct cur {
    const char *s;
    size_t len, pos;
    void **mem;        /* the result's chain of blocks */
    char *scratch;     /* the caller's memory, aligned, taken from first; NULL: none */
    size_t scap;       /* bytes of scratch left */
    unsigned noncanon; /* how many constructs so far serialise otherwise than written */
} cur;

#define ALIGN_UP(n) (((n) + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t))

static void *take(cur *c, size_t n)
{
    n = ALIGN_UP(n);
    if (n <= c->scap) {
        void *p = c->scratch;
        c->scratch += n;
        c->scap -= n;
        return p;
    }
    c->scap = 0; /* the rest goes to the heap: pieces stay in the order they were taken */
    block *b = *c->mem;
    if (b == NULL || b->cap - b->used < n) {
        /* The first block fits most fields whole: their pieces never outgrow the text by much. */
        size_t cap = b == NULL ? 1024 + 2 * c->len : 2 * b->cap;
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

static void blocks_free(void *mem)
{
    for (block *b = mem, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
}

static int at_end(const cur *c)
{
    return c->pos >= c->len;
}

static int peek(const cur *c)
{
    return at_end(c) ? -1 : (unsigned char)c->s[c->pos];
}

/* How many spaces were skipped. */
static size_t skip_sp(cur *c)
{
    size_t at = c->pos;
    while (peek(c) == ' ')
        c->pos++;
    return c->pos - at;
}

static void skip_ows(cur *c)
{
    while (peek(c) == ' ' || peek(c) == '\t')
        c->pos++;
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
static int grow(cur *c, void **v, size_t n, size_t size, size_t max)
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

static char *dup_n(cur *c, const char *s, size_t n)
{
    char *p = take(c, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- bare items (section 4.2.3.1) ----------------------------------------------------------- */

static int parse_number(cur *c, sl__sfv_bare *out)
{
    int neg = 0;
    if (peek(c) == '-') {
        neg = 1;
        c->pos++;
    }
    if (!is_digit(peek(c)))
        return -1;
    char num[24];
    size_t n = 0, frac = 0;
    int decimal = 0;
    int64_t v = 0; /* an integer's value as it goes (at most 15 digits: no overflow) */
    while (!at_end(c)) {
        int ch = peek(c);
        if (is_digit(ch)) {
            num[n++] = (char)ch;
            v = v * 10 + (ch - '0');
            if (decimal)
                frac++;
        } else if (ch == '.' && !decimal) {
            if (n > 12)
                return -1;
            num[n++] = '.';
            decimal = 1;
        } else
            break;
        c->pos++;
        if ((!decimal && n > 15) || (decimal && n > 16))
            return -1;
    }
    num[n] = '\0';
    /* The serialiser writes no leading zero, no "-0" and decimals its own way. */
    if (decimal || (num[0] == '0' && (n > 1 || neg)))
        c->noncanon++;
    if (decimal) {
        if (frac == 0 || frac > 3)
            return -1;
        out->type = SL__SFV_DECIMAL;
        out->d = strtod(num, NULL) * (neg ? -1 : 1);
    } else {
        out->type = SL__SFV_INTEGER;
        out->i = neg ? -v : v;
    }
    return 0;
}

static int parse_string(cur *c, sl__sfv_bare *out)
{
    c->pos++; /* '"' */
    const unsigned char *p = (const unsigned char *)c->s + c->pos,
                        *end = (const unsigned char *)c->s + c->len;
    char *buf = take(c, (size_t)(end - p) + 1);
    size_t n = 0;
    if (buf == NULL)
        return -1;
    while (p < end) {
        /* a run of bytes that stand for themselves, copied in one go */
        const unsigned char *run = p;
        while (p < end && (cls[*p] & C_PLAIN))
            p++;
        memcpy(buf + n, run, (size_t)(p - run));
        n += (size_t)(p - run);
        if (p == end)
            break;
        unsigned ch = *p++;
        if (ch == '\\') {
            if (p == end || (*p != '"' && *p != '\\'))
                return -1;
            buf[n++] = (char)*p++;
        } else if (ch == '"') {
            buf[n] = '\0';
            c->pos = (size_t)((const char *)p - c->s);
            out->type = SL__SFV_STRING;
            out->s = buf;
            out->len = n;
            return 0;
        } else
            return -1; /* outside 0x20..0x7e */
    }
    return -1;
}

static int parse_token(cur *c, sl__sfv_bare *out)
{
    size_t start = c->pos;
    c->pos++; /* ALPHA or '*', checked by the caller */
    while (!at_end(c) && (cls[(unsigned char)c->s[c->pos]] & C_TOKEN))
        c->pos++;
    if ((out->s = dup_n(c, c->s + start, c->pos - start)) == NULL)
        return -1;
    out->type = SL__SFV_TOKEN;
    out->len = c->pos - start;
    return 0;
}

/* Base64's alphabet (RFC 4648 section 4): value + 1, 0 outside it ('=' too). */
static const unsigned char b64_table[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

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
    unsigned bad = 0;
    for (size_t i = 0; i < full; i += 4) {
        unsigned a = b64_table[u[i]], b = b64_table[u[i + 1]], d = b64_table[u[i + 2]],
                 e = b64_table[u[i + 3]];
        bad |= !a | !b | !d | !e;
        unsigned long q = (unsigned long)(a - 1) << 18 | (unsigned long)(b - 1) << 12 |
                          (unsigned long)(d - 1) << 6 | (unsigned long)(e - 1);
        buf[o++] = (unsigned char)(q >> 16);
        buf[o++] = (unsigned char)(q >> 8);
        buf[o++] = (unsigned char)q;
    }
    if (bad)
        return -1;
    if (pad) {
        const unsigned char *t = u + full;
        unsigned a = b64_table[t[0]], b = b64_table[t[1]], d = pad == 1 ? b64_table[t[2]] : 1;
        if (!a || !b || !d)
            return -1;
        unsigned long q = (unsigned long)(a - 1) << 18 | (unsigned long)(b - 1) << 12 |
                          (unsigned long)(d - 1) << 6;
        if ((pad == 2 && (q & 0xffff)) || (pad == 1 && (q & 0xff)))
            return -1;
        buf[o++] = (unsigned char)(q >> 16);
        if (pad == 1)
            buf[o++] = (unsigned char)(q >> 8);
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

static int parse_bytes(cur *c, sl__sfv_bare *out)
{
    c->pos++; /* ':' */
    const char *start = c->s + c->pos, *end = memchr(start, ':', c->len - c->pos);
    if (end == NULL)
        return -1;
    size_t n = (size_t)(end - start);
    c->pos += n + 1;
    /* b64_decode refuses every byte outside the alphabet and any '=' but trailing padding. */
    if (b64_decode(c, start, n, &out->s, &out->len) < 0)
        return -1;
    out->type = SL__SFV_BYTES;
    return 0;
}

static int parse_bare(cur *c, sl__sfv_bare *out)
{
    memset(out, 0, sizeof *out);
    int ch = peek(c);
    if (ch == '-' || is_digit(ch))
        return parse_number(c, out);
    if (ch == '"')
        return parse_string(c, out);
    if (ch == '*' || is_alpha(ch))
        return parse_token(c, out);
    if (ch == ':')
        return parse_bytes(c, out);
    if (ch == '?') {
        c->pos++;
        ch = peek(c);
        if (ch != '0' && ch != '1')
            return -1;
        c->pos++;
        out->type = SL__SFV_BOOLEAN;
        out->i = ch == '1';
        return 0;
    }
    return -1;
}

/* ---- keys and parameters (sections 4.2.3.2, 4.2.3.3) ---------------------------------------- */

static char *parse_key(cur *c)
{
    int ch = peek(c);
    if (!is_lcalpha(ch) && ch != '*')
        return NULL;
    size_t start = c->pos;
    while (!at_end(c) && (cls[(unsigned char)c->s[c->pos]] & C_KEY))
        c->pos++;
    if (c->pos - start > SL__SFV_MAX_KEY)
        return NULL;
    return dup_n(c, c->s + start, c->pos - start);
}

static int parse_params(cur *c, sl__sfv_item *it)
{
    while (peek(c) == ';') {
        c->pos++;
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
            c->pos++;
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

/* The span of it's text, from start to here, and whether it serialises as written. */
static void spanned(cur *c, sl__sfv_item *it, size_t start, unsigned noncanon)
{
    it->text = c->s + start;
    it->text_len = c->pos - start;
    it->canonical = c->noncanon == noncanon;
}

static int parse_item(cur *c, sl__sfv_item *it)
{
    size_t start = c->pos;
    unsigned noncanon = c->noncanon;
    memset(it, 0, sizeof *it);
    if (parse_bare(c, &it->v) < 0 || parse_params(c, it) < 0)
        return -1;
    spanned(c, it, start, noncanon);
    return 0;
}

static int parse_item_or_inner(cur *c, sl__sfv_item *it)
{
    if (peek(c) != '(')
        return parse_item(c, it);
    size_t start = c->pos;
    unsigned noncanon = c->noncanon;
    memset(it, 0, sizeof *it);
    it->inner = 1;
    c->pos++;
    for (;;) {
        /* Serialised: no space after '(' or before ')', one between items. */
        size_t sp = skip_sp(c);
        if (sp != (it->nitems && peek(c) != ')'))
            c->noncanon++;
        if (peek(c) == ')') {
            c->pos++;
            if (parse_params(c, it) < 0)
                return -1;
            spanned(c, it, start, noncanon);
            return 0;
        }
        if (at_end(c) ||
            grow(c, (void **)&it->items, it->nitems, sizeof *it->items, SL__SFV_MAX_INNER) < 0)
            return -1;
        if (parse_item(c, &it->items[it->nitems++]) < 0)
            return -1;
        if (peek(c) != ' ' && peek(c) != ')')
            return -1;
    }
}

static int parse_members(const char *s, size_t len, sl__sfv_dict *out, int dict, void *scratch,
                         size_t cap)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || len > SL__SFV_MAX_INPUT)
        return -1;
    cur c = {s, len, 0, &out->mem, NULL, 0, 0};
    if (scratch != NULL) {
        /* aligned as malloc's memory is, for every piece carved from it */
        size_t skip = (size_t)(-(uintptr_t)scratch % sizeof(max_align_t));
        if (cap > skip) {
            c.scratch = (char *)scratch + skip;
            c.scap = (cap - skip) / sizeof(max_align_t) * sizeof(max_align_t);
        }
    }
    skip_sp(&c);
    while (c.len > c.pos && c.s[c.len - 1] == ' ')
        c.len--;
    if (at_end(&c))
        return 0;
    for (;;) {
        if (grow(&c, (void **)&out->m, out->n, sizeof *out->m, SL__SFV_MAX_MEMBERS) < 0)
            goto fail;
        sl__sfv_member *m = &out->m[out->n++];
        memset(m, 0, sizeof *m);
        if (dict) {
            if ((m->key = parse_key(&c)) == NULL)
                goto fail;
            if (peek(&c) == '=') {
                c.pos++;
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
        if (at_end(&c))
            return 0;
        if (peek(&c) != ',')
            goto fail;
        c.pos++;
        skip_ows(&c);
        if (at_end(&c)) /* a trailing comma */
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
    cur c = {s, len, 0, &mem, NULL, 0, 0};
    skip_sp(&c);
    int rc = parse_item(&c, out);
    out->mem = mem; /* parse_item cleared *out first */
    if (rc < 0) {
        sl__sfv_item_clear(out);
        return -1;
    }
    skip_sp(&c);
    if (!at_end(&c)) {
        sl__sfv_item_clear(out);
        return -1;
    }
    return 0;
}
