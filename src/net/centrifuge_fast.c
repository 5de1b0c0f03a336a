/* The command parser's fast path for the one command a busy publisher sends over and over:
 * `{"id":N,"publish":{"channel":"C","data":D}}`, its members in any order. The general parser
 * (centrifuge.c) builds a jansson tree of every line and then looks for the data's raw bytes; at
 * 100,000 publications a second that tree was about a tenth of the server's time
 * (docs/BENCHMARKS.md). This path accepts only lines on which the general parser's answer is
 * certain and known: valid JSON (core/jsonv.c, which checks what jansson checks), no backslash
 * anywhere (so no key or string differs from its decoded form), no duplicate key at any depth,
 * exactly the members above, an id in 1..2^32-1 written as plain digits, a channel of printable
 * ASCII. Anything else, including every error, is handed to the general parser, so errors and
 * their wording stay in one place. The fuzz target checks that both parsers produce the same
 * command for every line this one accepts. No I/O; the channel and data are copied. */
#include "net/centrifuge.h"

#include "core/jsonspan.h"
#include "core/jsonv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Past these, the general parser decides (it handles any size and depth). */
enum { KEYS_MAX = 16, DEPTH_MAX = 16 };

typedef struct {
    const char *p, *e;
} cur;

static void skip_ws(cur *c)
{
    c->p = sl__json_skip_ws(c->p, c->e);
}

static int eat(cur *c, char ch)
{
    skip_ws(c);
    if (c->p >= c->e || *c->p != ch)
        return 0;
    c->p++;
    return 1;
}

/* The string at c->p (after white space): its bytes, without the quotes. The line holds no
 * backslash, so the first quote ends it. */
static int string_at(cur *c, const char **s, size_t *n)
{
    skip_ws(c);
    if (c->p >= c->e || *c->p != '"')
        return 0;
    const char *q = c->p + 1, *end = memchr(q, '"', (size_t)(c->e - q));
    if (end == NULL)
        return 0;
    *s = q;
    *n = (size_t)(end - q);
    c->p = end + 1;
    return 1;
}

static int is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* An id as the general parser accepts it for a publish: an integer in 1..2^32-1 written as plain
 * digits (a real such as 1.0, or a negative, is left to it). */
static int id_at(cur *c, uint32_t *id)
{
    skip_ws(c);
    if (c->p >= c->e || *c->p < '1' || *c->p > '9')
        return 0;
    uint64_t v = 0;
    while (c->p < c->e && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (uint64_t)(*c->p - '0');
        if (v > UINT32_MAX)
            return 0;
        c->p++;
    }
    if (c->p < c->e && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
        return 0;
    *id = (uint32_t)v;
    return 1;
}

/* 1 when no object in the value [p, e) repeats a key. The text is valid JSON without
 * backslashes, so a key is its raw bytes, and a string is a key when it follows '{' or a ',' in
 * an object. 0 as well past KEYS_MAX keys in one object or DEPTH_MAX levels. */
static int keys_distinct(const char *p, const char *e)
{
    struct level {
        int object;
        size_t nkeys;
        const char *key[KEYS_MAX];
        size_t klen[KEYS_MAX];
    } st[DEPTH_MAX];
    int depth = 0;
    char last = 0; /* the last structural character */
    while (p < e) {
        char ch = *p;
        if (ch == '{' || ch == '[') {
            if (depth == DEPTH_MAX)
                return 0;
            st[depth].object = ch == '{';
            st[depth].nkeys = 0;
            depth++;
            last = ch;
            p++;
        } else if (ch == '}' || ch == ']') {
            depth--;
            last = ch;
            p++;
        } else if (ch == ',' || ch == ':') {
            last = ch;
            p++;
        } else if (ch == '"') {
            const char *s = p + 1, *q = memchr(s, '"', (size_t)(e - s));
            if (q == NULL)
                return 0;
            if (depth > 0 && st[depth - 1].object && (last == '{' || last == ',')) {
                struct level *l = &st[depth - 1];
                size_t n = (size_t)(q - s);
                for (size_t i = 0; i < l->nkeys; i++)
                    if (l->klen[i] == n && memcmp(l->key[i], s, n) == 0)
                        return 0;
                if (l->nkeys == KEYS_MAX)
                    return 0;
                l->key[l->nkeys] = s;
                l->klen[l->nkeys++] = n;
            }
            last = '"';
            p = q + 1;
        } else {
            p++;
        }
    }
    return 1;
}

/* The publish body at c->p: {"channel": C, "data": D} in either order, nothing else. */
static int body_at(cur *c, const char **ch, size_t *chlen, const char **ds, const char **de)
{
    if (!eat(c, '{'))
        return 0;
    *ch = *ds = NULL;
    for (int i = 0; i < 2; i++) {
        const char *k;
        size_t kn;
        if ((i > 0 && !eat(c, ',')) || !string_at(c, &k, &kn) || !eat(c, ':'))
            return 0;
        if (is(k, kn, "channel") && *ch == NULL) {
            if (!string_at(c, ch, chlen) || *chlen == 0 || *chlen > SL__CF_MAX_CHANNEL)
                return 0;
            for (size_t j = 0; j < *chlen; j++)
                if ((unsigned char)(*ch)[j] < 0x20 || (unsigned char)(*ch)[j] > 0x7e)
                    return 0;
        } else if (is(k, kn, "data") && *ds == NULL) {
            skip_ws(c);
            /* null is "no data" to the general parser, which then refuses the publish */
            if (c->e - c->p >= 4 && memcmp(c->p, "null", 4) == 0)
                return 0;
            *ds = c->p;
            c->p = *de = sl__json_skip_value(c->p, c->e);
        } else {
            return 0;
        }
    }
    return eat(c, '}');
}

int sl__cf_parse_publish_fast(const char *line, size_t len, sl__cf_command *c)
{
    /* The shape is read first and the text validated after, so that other commands (rpc, send,
     * subscribe...) leave at their first key, before the validator reads a line the general
     * parser reads next anyway. Reading the shape of unvalidated text is safe: each step stays
     * within [line, line + len), and nothing it found is used unless the whole line is valid. */
    if (len == 0 || memchr(line, '\\', len) != NULL)
        return 0;
    cur k = {line, line + len};
    const char *ch = NULL, *ds = NULL, *de = NULL;
    size_t chlen = 0;
    uint32_t id = 0;
    int have_id = 0, have_body = 0;
    if (!eat(&k, '{'))
        return 0;
    for (int i = 0; i < 2; i++) {
        const char *key;
        size_t kn;
        if ((i > 0 && !eat(&k, ',')) || !string_at(&k, &key, &kn) || !eat(&k, ':'))
            return 0;
        if (is(key, kn, "id") && !have_id)
            have_id = id_at(&k, &id);
        else if (is(key, kn, "publish") && !have_body)
            have_body = body_at(&k, &ch, &chlen, &ds, &de);
        if (!(i == 0 ? have_id || have_body : have_id && have_body))
            return 0;
    }
    if (!eat(&k, '}') || !sl__json_valid(line, len) || !keys_distinct(ds, de))
        return 0;
    memset(c, 0, sizeof *c);
    c->method = SL__CF_PUBLISH;
    c->id = id;
    c->channel = malloc(chlen + 1);
    c->data = malloc((size_t)(de - ds) + 1);
    if (c->channel == NULL || c->data == NULL) {
        sl__cf_command_clear(c);
        return -1;
    }
    memcpy(c->channel, ch, chlen);
    c->channel[chlen] = '\0';
    memcpy(c->data, ds, (size_t)(de - ds));
    c->data[de - ds] = '\0';
    c->data_len = (size_t)(de - ds);
    return 1;
}
