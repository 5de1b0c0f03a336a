/* Read replies rendered from the stored message text (see msgjson.h). The reply is written into one
 * allocation sized up front from an upper bound (raw JSON as is, strings at most six bytes per
 * input byte once escaped), so rendering never reallocates and cannot overrun. */
#include "core/msgjson.h"
#include "core/numtext.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for the fixed parts of one message: keys, punctuation, three numbers, nulls. */
#define MESSAGE_OVERHEAD 320

typedef struct out {
    char *p;
    size_t len;
} out;

static void put(out *o, const char *s, size_t n)
{
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* The length of the well-formed UTF-8 sequence at s (up to end), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - s) < n)
        return 0;
    unsigned long cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A JSON string, or null. Envelope strings come from callers of the C API too, so bytes that are
 * not UTF-8 become U+FFFD rather than making the reply invalid JSON. */
static void put_str(out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (s == NULL) {
        puts_(o, "null");
        return;
    }
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    put(o, "\"", 1);
    while (p < end) {
        size_t n = utf8_len(p, end);
        if (n == 0) {
            puts_(o, "\\ufffd");
            p++;
        } else if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            put(o, esc, 2);
            p++;
        } else if (*p < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            put(o, esc, 6);
            p++;
        } else {
            put(o, (const char *)p, n);
            p += n;
        }
    }
    put(o, "\"", 1);
}

size_t sl__json_seconds(double v, char buf[24])
{
    if (!(v >= 1e9 && v < 1e10))
        return 0;
    /* Exact: Sterbenz (ip <= v < 2 ip), and the fraction is k * 2^-23 at worst with k < 2^23, so
     * times 10^7 it stays below 2^53. nearbyint rounds half to even, as printf does. */
    uint64_t ip = (uint64_t)v;
    uint64_t fr = (uint64_t)nearbyint((v - (double)ip) * 1e7);
    if (fr >= 10000000u) {
        ip++;
        fr -= 10000000u;
    }
    if (ip >= 10000000000u)
        return 0;
    for (int i = 9; i >= 0; i--, ip /= 10)
        buf[i] = (char)('0' + ip % 10);
    size_t n = 10;
    if (fr > 0) {
        buf[n++] = '.';
        char d[7];
        for (int i = 6; i >= 0; i--, fr /= 10)
            d[i] = (char)('0' + fr % 10);
        size_t k = 7;
        while (d[k - 1] == '0') /* %g drops trailing zeros; fr > 0, so one digit stays */
            k--;
        memcpy(buf + n, d, k);
        n += k;
    }
    return n;
}

/* A finite double as a JSON number that reads back to the same value, with ".0" on integral
 * values so that it stays a real for typed clients. Timestamps (the common case: two or three per
 * claimed message) skip printf, which was 4 % of a claim's time. */
static void put_real(out *o, double v)
{
    char tmp[40];
    size_t f = sl__json_seconds(v, tmp);
    if (f > 0) {
        put(o, tmp, f);
        if (memchr(tmp, '.', f) == NULL)
            puts_(o, ".0");
        return;
    }
    int k = snprintf(tmp, sizeof tmp, "%.17g", v);
    if (k <= 0 || (size_t)k >= sizeof tmp || strpbrk(tmp, "ni")) { /* inf, nan: not JSON */
        puts_(o, "0.0");
        return;
    }
    put(o, tmp, (size_t)k);
    if (strpbrk(tmp, ".eE") == NULL)
        puts_(o, ".0");
}

static size_t str_bound(const char *s)
{
    return s ? 6 * strlen(s) + 2 : 4;
}

/* Bytes needed for one message at most; SIZE_MAX when that does not fit in size_t. */
static size_t message_bound(const sl_message *m)
{
    const char *strs[] = {m->id,       m->sender_id,    m->correlation_id,
                          m->reply_to, m->recipient_id, m->dead_reason};
    size_t n = MESSAGE_OVERHEAD + 64; /* ,"dead_reason": and ,"expires_at":<number> */
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        size_t b = str_bound(strs[i]);
        if (b > SIZE_MAX - n)
            return SIZE_MAX;
        n += b;
    }
    size_t raw = (m->data ? strlen(m->data) : 4) + (m->metadata ? strlen(m->metadata) : 2);
    return raw > SIZE_MAX - n ? SIZE_MAX : n + raw;
}

static void put_message(out *o, const sl_message *m, int exclusive)
{
    puts_(o, "{\"id\":");
    put_str(o, m->id);
    puts_(o, ",\"timestamp\":");
    put_real(o, m->timestamp);
    puts_(o, ",\"sender_id\":");
    put_str(o, m->sender_id);
    puts_(o, ",\"content\":{\"data\":");
    puts_(o, m->data ? m->data : "null");
    puts_(o, "},\"metadata\":");
    puts_(o, m->metadata ? m->metadata : "{}");
    puts_(o, ",\"correlation_id\":");
    put_str(o, m->correlation_id);
    puts_(o, ",\"reply_to\":");
    put_str(o, m->reply_to);
    puts_(o, ",\"recipient_id\":");
    put_str(o, m->recipient_id);
    if (m->dead_reason) {
        puts_(o, ",\"dead_reason\":");
        put_str(o, m->dead_reason);
    }
    if (m->expires_at > 0) {
        puts_(o, ",\"expires_at\":");
        put_real(o, m->expires_at);
    }
    if (exclusive) {
        char tmp[32];
        memcpy(tmp, ",\"attempt\":", 11);
        put(o, tmp, (size_t)(sl__put_uint(tmp + 11, m->attempt) - tmp));
        puts_(o, ",\"claim_expires_at\":");
        put_real(o, m->claim_expires_at);
    }
    put(o, "}", 1);
}

int sl__messages_json(const sl_message_list *l, int exclusive, char **outp, size_t *len)
{
    *outp = NULL;
    *len = 0;
    size_t need = 64; /* {"messages":[],"more":false} and the NUL */
    for (size_t i = 0; i < l->len; i++) {
        size_t b = message_bound(&l->items[i]);
        if (b > SIZE_MAX - need - 1)
            return SL_ENOMEM;
        need += b + 1;
    }
    out o = {malloc(need), 0};
    if (o.p == NULL)
        return SL_ENOMEM;
    puts_(&o, "{\"messages\":[");
    for (size_t i = 0; i < l->len; i++) {
        if (i)
            put(&o, ",", 1);
        put_message(&o, &l->items[i], exclusive);
    }
    puts_(&o, l->more ? "],\"more\":true}" : "],\"more\":false}");
    o.p[o.len] = '\0';
    *outp = o.p;
    *len = o.len;
    return SL_OK;
}
