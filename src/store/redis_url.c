/* The engine URL and the shard ring of redis_conn.h, without I/O (unit tests and a fuzz target
 * drive them): the parser of "redis://[user:password@]host[:port][/db]" lists, one per shard
 * (credentials percent-decoded and never in a reason), and of one such URL for the stores that
 * use one Redis (the revocation store); a shard's name and its URL with the password masked; the
 * check of a key prefix and the pub/sub channel names built from a prefix and a db, and the
 * consistent-hashing ring that maps a channel id to its shard. */
#include "store/redis_conn_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/numtext.h"

/* ==== the engine URL ========================================================================= */

/* Percent-decodes [p, p + n) into a new string; NULL with *bad set when malformed (a bad escape,
 * a NUL byte) or with *bad clear when out of memory. */
static char *pct_decode(const char *p, size_t n, int *bad)
{
    *bad = 0;
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)p[i];
        if (ch == '%') {
            if (i + 2 >= n) {
                free(out);
                *bad = 1;
                return NULL;
            }
            int h = sl__hexval((unsigned char)p[i + 1]), l = sl__hexval((unsigned char)p[i + 2]);
            if (h < 0 || l < 0) {
                free(out);
                *bad = 1;
                return NULL;
            }
            ch = h * 16 + l;
            i += 2;
        }
        if (ch == 0) {
            free(out);
            *bad = 1;
            return NULL;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

static int host_char_ok(int ch)
{
    return isalnum(ch) || ch == '-' || ch == '.' || ch == '_';
}

void sl__redis_addr_clear(sl__redis_addr *a)
{
    free(a->user);
    if (a->password != NULL) {
        /* the secret does not linger in freed memory */
        volatile char *p = a->password;
        while (*p)
            *p++ = '\0';
        free(a->password);
    }
    a->user = NULL;
    a->password = NULL;
}

static int all_digits(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* Decimal [p, p + n) into *v when it has digits only and is at most max. */
static int parse_num(const char *p, size_t n, long max, long *v)
{
    if (!all_digits(p, n))
        return 0;
    long x = 0;
    for (size_t i = 0; i < n; i++) {
        x = x * 10 + (p[i] - '0');
        if (x > max)
            return 0;
    }
    *v = x;
    return 1;
}

/* One "redis://...", [p, p + n), into a (already zeroed). what names it in messages (as
 * "engine URL 2" or "revocation URL"): by role and position only, the text may hold a password. */
static int parse_one(const char *p, size_t n, const char *what, sl__redis_addr *a, sl_status *st)
{
    static const char scheme[] = "redis://";
    const size_t slen = sizeof scheme - 1;
    if (n >= 9 && strncasecmp(p, "rediss://", 9) == 0)
        return sl_status_set(st, SL_EINVAL,
                             "%s: rediss:// (TLS) is not supported by this build's "
                             "hiredis; reach a TLS-only Redis through a local TLS tunnel",
                             what);
    if (n < slen || strncasecmp(p, scheme, slen) != 0)
        return sl_status_set(st, SL_EINVAL, "%s: expected redis://host[:port][/db]", what);
    p += slen;
    n -= slen;
    /* The last '@' ends the credentials, so a password may hold '@', ':' or '/' as they are. */
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '@')
            at = p + i;
    if (at != NULL) {
        size_t ulen = (size_t)(at - p);
        const char *colon = memchr(p, ':', ulen);
        if (colon == NULL)
            return sl_status_set(st, SL_EINVAL,
                                 "%s: credentials must be user:password@ or "
                                 ":password@",
                                 what);
        int bad = 0;
        size_t nlen = (size_t)(colon - p), plen = ulen - nlen - 1;
        if (plen == 0)
            return sl_status_set(st, SL_EINVAL, "%s: empty password", what);
        if (nlen > 0 && (a->user = pct_decode(p, nlen, &bad)) == NULL)
            return bad ? sl_status_set(st, SL_EINVAL, "%s: malformed percent-escape in the user",
                                       what)
                       : sl_status_set(st, SL_ENOMEM, "out of memory");
        if ((a->password = pct_decode(colon + 1, plen, &bad)) == NULL)
            return bad ? sl_status_set(st, SL_EINVAL,
                                       "%s: malformed percent-escape in the password", what)
                       : sl_status_set(st, SL_ENOMEM, "out of memory");
        n -= ulen + 1;
        p = at + 1;
    }
    /* host */
    const char *h = p, *end = p + n;
    size_t hlen;
    if (h < end && *h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (close == NULL)
            return sl_status_set(st, SL_EINVAL, "%s: unterminated [IPv6 address]", what);
        hlen = (size_t)(close - h - 1);
        char tmp[SL__REDIS_HOST_MAX + 1];
        struct in6_addr a6;
        if (hlen == 0 || hlen > SL__REDIS_HOST_MAX)
            return sl_status_set(st, SL_EINVAL, "%s: bad IPv6 address", what);
        memcpy(tmp, h + 1, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return sl_status_set(st, SL_EINVAL, "%s: bad IPv6 address", what);
        /* stored as written, lower-cased, so that names compare */
        for (size_t i = 0; i < hlen; i++)
            a->host[i] = (char)tolower((unsigned char)tmp[i]);
        a->host[hlen] = '\0';
        p = close + 1;
    } else {
        const char *q = h;
        while (q < end && host_char_ok((unsigned char)*q))
            q++;
        hlen = (size_t)(q - h);
        if (hlen == 0)
            return sl_status_set(st, SL_EINVAL, "%s: empty host", what);
        if (hlen > SL__REDIS_HOST_MAX)
            return sl_status_set(st, SL_EINVAL, "%s: host name too long", what);
        for (size_t i = 0; i < hlen; i++)
            a->host[i] = (char)tolower((unsigned char)h[i]);
        a->host[hlen] = '\0';
        p = q;
    }
    /* port */
    a->port = 6379;
    if (p < end && *p == ':') {
        const char *q = ++p;
        while (q < end && *q != '/')
            q++;
        long v;
        if (!parse_num(p, (size_t)(q - p), 65535, &v) || v < 1)
            return sl_status_set(st, SL_EINVAL, "%s: port must be 1..65535", what);
        a->port = (int)v;
        p = q;
    }
    /* db */
    a->db = 0;
    if (p < end && *p == '/') {
        p++;
        long v = 0;
        if (p < end && !parse_num(p, (size_t)(end - p), 15, &v))
            return sl_status_set(st, SL_EINVAL, "%s: db must be 0..15", what);
        a->db = (int)v;
        p = end;
    }
    if (p != end)
        return sl_status_set(st, SL_EINVAL,
                             "%s: unexpected characters after the host (percent-encode "
                             "',' in a password)",
                             what);
    return SL_OK;
}

void sl__redis_addr_name(const sl__redis_addr *a, char *buf, size_t size)
{
    if (size == 0)
        return;
    if (strchr(a->host, ':') != NULL)
        snprintf(buf, size, "[%s]:%d/%d", a->host, a->port, a->db);
    else
        snprintf(buf, size, "%s:%d/%d", a->host, a->port, a->db);
}

char *sl__redis_addr_masked(const sl__redis_addr *a)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t ulen = a->password != NULL && a->user != NULL ? strlen(a->user) : 0;
    char *buf = malloc(sizeof "redis://" + 3 * ulen + sizeof ":***@" + NAME_MAX_LEN);
    if (buf == NULL)
        return NULL;
    size_t n = (size_t)sprintf(buf, "redis://");
    if (a->password != NULL) {
        /* the user percent-encoded where it could be read as URL syntax, so that the text parses
         * back to the same user */
        for (size_t i = 0; i < ulen; i++) {
            unsigned char c = (unsigned char)a->user[i];
            if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
                buf[n++] = (char)c;
            } else {
                buf[n++] = '%';
                buf[n++] = hex[c >> 4];
                buf[n++] = hex[c & 15];
            }
        }
        n += (size_t)sprintf(buf + n, ":***@");
    }
    sl__redis_addr_name(a, buf + n, NAME_MAX_LEN);
    return buf;
}

int sl__redis_addr_copy(sl__redis_addr *dst, const sl__redis_addr *src)
{
    *dst = *src;
    dst->user = NULL;
    dst->password = NULL;
    if ((src->user != NULL && (dst->user = strdup(src->user)) == NULL) ||
        (src->password != NULL && (dst->password = strdup(src->password)) == NULL)) {
        sl__redis_addr_clear(dst);
        return SL_ENOMEM;
    }
    return SL_OK;
}

int sl__redis_addr_parse(const char *s, const char *what, sl__redis_addr *out, sl_status *st)
{
    if (out == NULL)
        return sl_status_set(st, SL_EINVAL, "no address output");
    memset(out, 0, sizeof *out);
    if (s == NULL || *s == '\0')
        return sl_status_set(st, SL_EINVAL, "%s: empty", what);
    /* A comma cannot be part of a host, port or db: it separates shards (or is an unencoded
     * comma of a password, which the engine URL refuses the same way). */
    if (strchr(s, ',') != NULL)
        return sl_status_set(st, SL_EINVAL,
                             "%s: one Redis, not a list of shards (percent-encode ',' in a "
                             "password)",
                             what);
    int rc = parse_one(s, strlen(s), what, out, st);
    if (rc != SL_OK)
        sl__redis_addr_clear(out);
    return rc;
}

void sl__redis_url_clear(sl__redis_url *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->n; i++)
        sl__redis_addr_clear(&u->shards[i]);
    free(u->shards);
    u->shards = NULL;
    u->n = 0;
}

static int is_space(int ch)
{
    return ch == ' ' || ch == '\t';
}

int sl__redis_url_parse(const char *s, sl__redis_url *out, sl_status *st)
{
    if (out == NULL)
        return sl_status_set(st, SL_EINVAL, "no URL output");
    out->shards = NULL;
    out->n = 0;
    if (s == NULL || *s == '\0')
        return sl_status_set(st, SL_EINVAL, "empty engine URL");
    size_t count = 1;
    for (const char *c = s; *c; c++)
        if (*c == ',')
            count++;
    if (count > SL__REDIS_SHARDS_MAX)
        return sl_status_set(st, SL_EINVAL, "engine URL: more than %d shards",
                             SL__REDIS_SHARDS_MAX);
    out->shards = calloc(count, sizeof *out->shards);
    if (out->shards == NULL)
        return sl_status_set(st, SL_ENOMEM, "out of memory");
    const char *p = s;
    int rc = SL_OK;
    for (size_t k = 0; k < count; k++) {
        const char *e = strchr(p, ',');
        if (e == NULL)
            e = p + strlen(p);
        const char *b = p, *f = e;
        while (b < f && is_space((unsigned char)*b))
            b++;
        while (f > b && is_space((unsigned char)f[-1]))
            f--;
        out->n = k + 1; /* so that clear frees what this entry allocated, even on failure */
        if (b == f) {
            rc = sl_status_set(st, SL_EINVAL, "engine URL %zu is empty", k + 1);
            break;
        }
        char what[32];
        snprintf(what, sizeof what, "engine URL %zu", k + 1);
        if ((rc = parse_one(b, (size_t)(f - b), what, &out->shards[k], st)) != SL_OK)
            break;
        char ni[NAME_MAX_LEN], nj[NAME_MAX_LEN];
        sl__redis_addr_name(&out->shards[k], ni, sizeof ni);
        for (size_t j = 0; j < k && rc == SL_OK; j++) {
            sl__redis_addr_name(&out->shards[j], nj, sizeof nj);
            if (strcmp(ni, nj) == 0)
                rc = sl_status_set(st, SL_EINVAL, "engine URL: shard %s is listed twice", ni);
        }
        if (rc != SL_OK)
            break;
        p = *e ? e + 1 : e;
    }
    if (rc != SL_OK)
        sl__redis_url_clear(out);
    return rc;
}

/* ==== the shard ring ========================================================================= */

/* FNV-1a 64 is simple and fast on short strings but its high bits avalanche poorly for inputs that
 * differ in their last bytes ("shard#1", "shard#2"); the murmur3 64-bit finaliser spreads every
 * input bit over the whole word, which is what placing points on the ring needs. Not keyed: a
 * channel id chosen to land on one shard only loads that shard, which its owner could do anyway. */
static uint64_t hash64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

typedef struct ring_point {
    uint64_t h;
    uint32_t shard;
    uint32_t rank; /* the shard's rank by name: breaks (unlikely) ties independently of order */
} ring_point;

struct sl__redis_ring {
    size_t n;
    ring_point *pts;
};

static int point_cmp(const void *a, const void *b)
{
    const ring_point *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

int sl__redis_ring_new(sl__redis_ring **out, const sl__redis_url *u)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (u == NULL || u->n == 0)
        return SL_EINVAL;
    sl__redis_ring *r = calloc(1, sizeof *r);
    char(*names)[NAME_MAX_LEN] = calloc(u->n, sizeof *names);
    if (r == NULL || names == NULL ||
        (r->pts = calloc(u->n * SL__REDIS_RING_POINTS, sizeof *r->pts)) == NULL) {
        free(names);
        free(r);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < u->n; i++)
        sl__redis_addr_name(&u->shards[i], names[i], sizeof names[i]);
    for (size_t i = 0; i < u->n; i++) {
        uint32_t rank = 0;
        for (size_t j = 0; j < u->n; j++)
            if (strcmp(names[j], names[i]) < 0)
                rank++;
        for (unsigned k = 0; k < SL__REDIS_RING_POINTS; k++) {
            char key[NAME_MAX_LEN + 16];
            int len = snprintf(key, sizeof key, "%s#%u", names[i], k);
            ring_point *pt = &r->pts[r->n++];
            pt->h = hash64(key, (size_t)len);
            pt->shard = (uint32_t)i;
            pt->rank = rank;
        }
    }
    free(names);
    qsort(r->pts, r->n, sizeof *r->pts, point_cmp);
    *out = r;
    return SL_OK;
}

void sl__redis_ring_free(sl__redis_ring *r)
{
    if (r == NULL)
        return;
    free(r->pts);
    free(r);
}

size_t sl__redis_ring_shard(const sl__redis_ring *r, const char *id)
{
    uint64_t h = hash64(id, strlen(id));
    size_t lo = 0, hi = r->n; /* first point with pts[i].h >= h */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->pts[mid].h < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->pts[lo == r->n ? 0 : lo].shard;
}

int sl__redis_prefix_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > 64)
        return 0;
    return strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n;
}

int sl__redis_scope(char *buf, size_t size, const char *prefix, int db)
{
    if (size > 0)
        buf[0] = '\0';
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0 || n > 64 || strchr(prefix, '@') != NULL || db < 0 || db > 15)
        return -1;
    int len =
        db == 0 ? snprintf(buf, size, "%s", prefix) : snprintf(buf, size, "%s@%d", prefix, db);
    if (len < 0 || (size_t)len >= size) {
        if (size > 0)
            buf[0] = '\0';
        return -1;
    }
    return len;
}

int sl__redis_channel(char *buf, size_t size, const char *prefix, int db, const char *name,
                      const char *id)
{
    int s = sl__redis_scope(buf, size, prefix, db);
    if (s < 0 || name == NULL || *name == '\0') {
        if (size > 0)
            buf[0] = '\0';
        return -1;
    }
    int len = id ? snprintf(buf + s, size - (size_t)s, ":%s:{%s}", name, id)
                 : snprintf(buf + s, size - (size_t)s, ":%s", name);
    if (len < 0 || (size_t)len >= size - (size_t)s) {
        buf[0] = '\0';
        return -1;
    }
    return s + len;
}
