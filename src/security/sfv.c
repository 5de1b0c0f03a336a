/* Structured field values (sfv.h): RFC 8941 section 4.2's parsing algorithms, followed step by
 * step, and section 4.1's serialisation of an item. Anything the algorithms call a failure is -1
 * here; nothing is repaired or guessed. */
#include "security/sfv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cur {
    const char *s;
    size_t len, pos;
} cur;

static int at_end(const cur *c)
{
    return c->pos >= c->len;
}

static int peek(const cur *c)
{
    return at_end(c) ? -1 : (unsigned char)c->s[c->pos];
}

static void skip_sp(cur *c)
{
    while (peek(c) == ' ')
        c->pos++;
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

/* RFC 9110 tchar */
static int is_tchar(int ch)
{
    return ch > 0 && (is_alpha(ch) || is_digit(ch) || (ch < 128 && strchr("!#$%&'*+-.^_`|~", ch)));
}

static void bare_clear(sl__sfv_bare *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

static void params_clear(sl__sfv_param *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].key);
        bare_clear(&p[i].v);
    }
    free(p);
}

void sl__sfv_item_clear(sl__sfv_item *it)
{
    if (it == NULL)
        return;
    bare_clear(&it->v);
    for (size_t i = 0; i < it->nitems; i++)
        sl__sfv_item_clear(&it->items[i]);
    free(it->items);
    params_clear(it->params, it->nparams);
    memset(it, 0, sizeof *it);
}

void sl__sfv_dict_clear(sl__sfv_dict *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->m[i].key);
        sl__sfv_item_clear(&d->m[i].item);
    }
    free(d->m);
    memset(d, 0, sizeof *d);
}

/* Makes room for one more element in *v, which holds n: arrays start at 4 elements and double
 * (the bounds are powers of two), so the capacity is full exactly when n is 0 or a power of two
 * of at least 4. -1 at max elements or out of memory. */
static int grow(void **v, size_t n, size_t size, size_t max)
{
    if (n >= max)
        return -1;
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return 0;
    size_t cap = n == 0 ? 4 : 2 * n;
    void *p = realloc(*v, cap * size);
    if (p == NULL)
        return -1;
    memset((char *)p + n * size, 0, (cap - n) * size);
    *v = p;
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
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
    while (!at_end(c)) {
        int ch = peek(c);
        if (is_digit(ch)) {
            num[n++] = (char)ch;
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
    if (decimal) {
        if (frac == 0 || frac > 3)
            return -1;
        out->type = SL__SFV_DECIMAL;
        out->d = strtod(num, NULL) * (neg ? -1 : 1);
    } else {
        out->type = SL__SFV_INTEGER;
        out->i = strtoll(num, NULL, 10) * (neg ? -1 : 1);
    }
    return 0;
}

static int parse_string(cur *c, sl__sfv_bare *out)
{
    c->pos++; /* '"' */
    char *buf = malloc(c->len - c->pos + 1);
    size_t n = 0;
    if (buf == NULL)
        return -1;
    while (!at_end(c)) {
        int ch = peek(c);
        c->pos++;
        if (ch == '\\') {
            int e = peek(c);
            if (e != '"' && e != '\\')
                break;
            buf[n++] = (char)e;
            c->pos++;
        } else if (ch == '"') {
            buf[n] = '\0';
            out->type = SL__SFV_STRING;
            out->s = buf;
            out->len = n;
            return 0;
        } else if (ch < 0x20 || ch > 0x7e)
            break;
        else
            buf[n++] = (char)ch;
    }
    free(buf);
    return -1;
}

static int parse_token(cur *c, sl__sfv_bare *out)
{
    size_t start = c->pos;
    c->pos++; /* ALPHA or '*', checked by the caller */
    while (!at_end(c) && (is_tchar(peek(c)) || peek(c) == ':' || peek(c) == '/'))
        c->pos++;
    if ((out->s = dup_n(c->s + start, c->pos - start)) == NULL)
        return -1;
    out->type = SL__SFV_TOKEN;
    out->len = c->pos - start;
    return 0;
}

static int b64_value(int ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (is_digit(ch))
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Strict base64 (RFC 4648 section 4): whole quanta, padding only at the end, no stray bits. */
static int b64_decode(const char *s, size_t n, char **out, size_t *olen)
{
    if (n % 4)
        return -1;
    char *buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value((unsigned char)s[i + k])) < 0) {
                free(buf);
                return -1;
            }
        }
        unsigned long q = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
                          (unsigned long)v[2] << 6 | (unsigned long)v[3];
        if ((pad == 2 && (q & 0xffff)) || (pad == 1 && (q & 0xff))) {
            free(buf);
            return -1;
        }
        buf[o++] = (char)(q >> 16);
        if (pad < 2)
            buf[o++] = (char)(q >> 8);
        if (pad < 1)
            buf[o++] = (char)q;
    }
    buf[o] = '\0';
    *out = buf;
    *olen = o;
    return 0;
}

static int parse_bytes(cur *c, sl__sfv_bare *out)
{
    c->pos++; /* ':' */
    size_t start = c->pos;
    while (!at_end(c) && peek(c) != ':') {
        int ch = peek(c);
        if (b64_value(ch) < 0 && ch != '=')
            return -1;
        c->pos++;
    }
    if (at_end(c))
        return -1;
    size_t n = c->pos - start;
    c->pos++;
    if (b64_decode(c->s + start, n, &out->s, &out->len) < 0)
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
    while (!at_end(c)) {
        ch = peek(c);
        if (!is_lcalpha(ch) && !is_digit(ch) && ch != '_' && ch != '-' && ch != '.' && ch != '*')
            break;
        c->pos++;
    }
    if (c->pos - start > SL__SFV_MAX_KEY)
        return NULL;
    return dup_n(c->s + start, c->pos - start);
}

static int parse_params(cur *c, sl__sfv_item *it)
{
    while (peek(c) == ';') {
        c->pos++;
        skip_sp(c);
        if (grow((void **)&it->params, it->nparams, sizeof *it->params, SL__SFV_MAX_PARAMS) < 0)
            return -1;
        sl__sfv_param *p = &it->params[it->nparams];
        if ((p->key = parse_key(c)) == NULL)
            return -1;
        it->nparams++;
        if (peek(c) == '=') {
            c->pos++;
            if (parse_bare(c, &p->v) < 0)
                return -1;
        } else {
            p->v.type = SL__SFV_BOOLEAN;
            p->v.i = 1;
        }
    }
    return 0;
}

/* ---- items, inner lists, lists, dictionaries ------------------------------------------------ */

static int parse_item(cur *c, sl__sfv_item *it)
{
    memset(it, 0, sizeof *it);
    if (parse_bare(c, &it->v) < 0)
        return -1;
    return parse_params(c, it);
}

static int parse_item_or_inner(cur *c, sl__sfv_item *it)
{
    if (peek(c) != '(')
        return parse_item(c, it);
    memset(it, 0, sizeof *it);
    it->inner = 1;
    c->pos++;
    for (;;) {
        skip_sp(c);
        if (peek(c) == ')') {
            c->pos++;
            return parse_params(c, it);
        }
        if (at_end(c) ||
            grow((void **)&it->items, it->nitems, sizeof *it->items, SL__SFV_MAX_INNER) < 0)
            return -1;
        if (parse_item(c, &it->items[it->nitems++]) < 0)
            return -1;
        if (peek(c) != ' ' && peek(c) != ')')
            return -1;
    }
}

static int parse_members(const char *s, size_t len, sl__sfv_dict *out, int dict)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || len > SL__SFV_MAX_INPUT)
        return -1;
    cur c = {s, len, 0};
    skip_sp(&c);
    while (c.len > c.pos && c.s[c.len - 1] == ' ')
        c.len--;
    if (at_end(&c))
        return 0;
    for (;;) {
        if (grow((void **)&out->m, out->n, sizeof *out->m, SL__SFV_MAX_MEMBERS) < 0)
            goto fail;
        sl__sfv_member *m = &out->m[out->n++];
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
    return parse_members(s, len, out, 1);
}

int sl__sfv_parse_list(const char *s, size_t len, sl__sfv_dict *out)
{
    return parse_members(s, len, out, 0);
}

int sl__sfv_parse_item(const char *s, size_t len, sl__sfv_item *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || len > SL__SFV_MAX_INPUT)
        return -1;
    cur c = {s, len, 0};
    skip_sp(&c);
    if (parse_item(&c, out) < 0) {
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
            if (d->m[i].key && d->m[j].key && !strcmp(d->m[i].key, d->m[j].key))
                return 1;
    return 0;
}

int sl__sfv_params_have_dups(const sl__sfv_item *it)
{
    for (size_t i = 0; i < it->nparams; i++)
        for (size_t j = i + 1; j < it->nparams; j++)
            if (!strcmp(it->params[i].key, it->params[j].key))
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
        snprintf(num, sizeof num, "%lld", (long long)b->i);
        puts_(o, num);
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
    case SL__SFV_STRING:
        put(o, "\"", 1);
        for (size_t i = 0; i < b->len; i++) {
            unsigned char ch = (unsigned char)b->s[i];
            if (ch < 0x20 || ch > 0x7e) {
                o->bad = 1;
                return;
            }
            if (ch == '"' || ch == '\\')
                put(o, "\\", 1);
            put(o, (const char *)&ch, 1);
        }
        put(o, "\"", 1);
        return;
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
