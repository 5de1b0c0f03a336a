/* Connections to Redis shared by the Redis engine and the state it keeps beside the channels: the
 * engine URL parser, the shard ring, a command connection (sl__rconn) and a subscription
 * connection (sl__rsub), both on hiredis's asynchronous client attached to the libuv loop.
 *
 * Both connection kinds share one link state machine (modelled on redis_revocation.c, which could
 * move onto this module): IDLE (a backoff timer retries, 100 ms doubling to 2 s) -> RESOLVING
 * (uv_getaddrinfo on the thread pool, so a slow DNS never blocks the loop) -> CONNECTING (hiredis
 * connects to one numeric address; AUTH, SELECT and a last command are pipelined behind the
 * connect, and the link counts as up only once that last command is answered: a SIGSTOPped Redis
 * still completes TCP handshakes from its listen backlog; on a command connection the last is the
 * owner's check script when it gives one, so that its answer is known before any of the owner's
 * commands can be sent) -> UP. One timer serves the link: the
 * retry in IDLE, the whole resolve + connect + handshake deadline in RESOLVING and CONNECTING, and
 * on a subscription the probe while UP. The link fails closed: every command submitted while it
 * is not UP completes with SL_EUNAVAIL from a zero timer on the loop (never inside the call), and
 * dropping the link frees its hiredis context, whose pending reply callbacks hiredis then runs
 * with a NULL reply, which completes them with SL_EUNAVAIL.
 *
 * Lifetime: a pending command (op) is owned by its hiredis reply callback, which hiredis calls
 * exactly once (with NULL when the context is freed); the connection also keeps its ops in a FIFO
 * (send order is reply order) for the overdue watchdog and to complete them early on free. The
 * connection struct itself goes with the last of its handles and thread-pool requests, so hiredis
 * callbacks that run while a context is being freed (hiredis defers the free to the end of a
 * callback) always find it. */
#include "store/redis_conn.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "core/numtext.h"

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 2000u
#define DEFAULT_TIMEOUT_MS 5000u
#define SUB_PROBE_MS 1000u
/* The subscription's own channel: subscribed last on every (re)connect and again as the probe.
 * Nobody publishes on it; sl__rsub_add refuses it so that a caller cannot unsubscribe it. */
#define PROBE_CHANNEL "__sluice:rsub:probe"
#define NAME_MAX_LEN (SL__REDIS_HOST_MAX + 32)

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

static void addr_clear(sl__redis_addr *a)
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

/* One "redis://..." of the list, [p, p + n), into a (already zeroed). Shard number k for
 * messages, which name the shard by its position only: the text may hold a password. */
static int parse_one(const char *p, size_t n, size_t k, sl__redis_addr *a, sl_status *st)
{
    static const char scheme[] = "redis://";
    const size_t slen = sizeof scheme - 1;
    if (n >= 9 && strncasecmp(p, "rediss://", 9) == 0)
        return sl_status_set(st, SL_EINVAL,
                             "engine URL %zu: rediss:// (TLS) is not supported by this build's "
                             "hiredis; reach a TLS-only Redis through a local TLS tunnel",
                             k + 1);
    if (n < slen || strncasecmp(p, scheme, slen) != 0)
        return sl_status_set(st, SL_EINVAL, "engine URL %zu: expected redis://host[:port][/db]",
                             k + 1);
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
                                 "engine URL %zu: credentials must be user:password@ or "
                                 ":password@",
                                 k + 1);
        int bad = 0;
        size_t nlen = (size_t)(colon - p), plen = ulen - nlen - 1;
        if (plen == 0)
            return sl_status_set(st, SL_EINVAL, "engine URL %zu: empty password", k + 1);
        if (nlen > 0 && (a->user = pct_decode(p, nlen, &bad)) == NULL)
            return bad ? sl_status_set(st, SL_EINVAL,
                                       "engine URL %zu: malformed percent-escape in the user",
                                       k + 1)
                       : sl_status_set(st, SL_ENOMEM, "out of memory");
        if ((a->password = pct_decode(colon + 1, plen, &bad)) == NULL)
            return bad ? sl_status_set(st, SL_EINVAL,
                                       "engine URL %zu: malformed percent-escape in the password",
                                       k + 1)
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
            return sl_status_set(st, SL_EINVAL, "engine URL %zu: unterminated [IPv6 address]",
                                 k + 1);
        hlen = (size_t)(close - h - 1);
        char tmp[SL__REDIS_HOST_MAX + 1];
        struct in6_addr a6;
        if (hlen == 0 || hlen > SL__REDIS_HOST_MAX)
            return sl_status_set(st, SL_EINVAL, "engine URL %zu: bad IPv6 address", k + 1);
        memcpy(tmp, h + 1, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return sl_status_set(st, SL_EINVAL, "engine URL %zu: bad IPv6 address", k + 1);
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
            return sl_status_set(st, SL_EINVAL, "engine URL %zu: empty host", k + 1);
        if (hlen > SL__REDIS_HOST_MAX)
            return sl_status_set(st, SL_EINVAL, "engine URL %zu: host name too long", k + 1);
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
            return sl_status_set(st, SL_EINVAL, "engine URL %zu: port must be 1..65535", k + 1);
        a->port = (int)v;
        p = q;
    }
    /* db */
    a->db = 0;
    if (p < end && *p == '/') {
        p++;
        long v = 0;
        if (p < end && !parse_num(p, (size_t)(end - p), 15, &v))
            return sl_status_set(st, SL_EINVAL, "engine URL %zu: db must be 0..15", k + 1);
        a->db = (int)v;
        p = end;
    }
    if (p != end)
        return sl_status_set(st, SL_EINVAL,
                             "engine URL %zu: unexpected characters after the host (percent-encode "
                             "',' in a password)",
                             k + 1);
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

void sl__redis_url_clear(sl__redis_url *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->n; i++)
        addr_clear(&u->shards[i]);
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
        if ((rc = parse_one(b, (size_t)(f - b), k, &out->shards[k], st)) != SL_OK)
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

/* ==== the link: one hiredis connection with its state, backoff and timer ===================== */

typedef enum { L_IDLE, L_RESOLVING, L_CONNECTING, L_UP } lstate;
enum { KIND_CMD, KIND_SUB };

typedef struct rlink {
    int kind;
    uv_loop_t *loop;
    sl__redis_addr addr; /* user and password owned */
    char name[NAME_MAX_LEN];
    char *what;
    unsigned timeout_ms;
    redisAsyncContext *ac;
    lstate state;
    uv_timer_t timer;
    uv_getaddrinfo_t *gai; /* the resolve in flight, if any */
    struct addrinfo *ai;   /* resolved addresses; ai_next is the next one to try */
    struct addrinfo *ai_next;
    unsigned backoff_ms;
    int down_logged; /* the outage was logged since the last "connected" */
    int closing;
    int refs; /* handles and requests still open; the struct goes with the last */
    sl__rconn_state_fn on_state;
    void *state_ud;
    const sl__logsink *log; /* borrowed; NULL: stderr */
} rlink;

/* A completion owed to a caller, delivered from the loop (a zero timer), not from the call that
 * caused it. */
typedef struct later {
    struct later *next;
    sl__rconn_fn fn;         /* commands */
    sl__rsub_ready_fn ready; /* subscriptions */
    void *ud;
    int rc;
} later;

typedef struct later_q {
    later *head, *tail;
    uv_timer_t kick;
} later_q;

static void link_drop(rlink *l, const char *why);
static void link_start(rlink *l);
static void link_tick(rlink *l);        /* per kind */
static void link_on_down(rlink *l);     /* per kind */
static void link_free_struct(rlink *l); /* per kind */

static void link_release(rlink *l)
{
    if (--l->refs == 0)
        link_free_struct(l);
}

static void link_handle_closed(uv_handle_t *h)
{
    link_release(h->data);
}

static void log_line(const rlink *l, const char *fmt, const char *a)
{
    char tail[512];
    snprintf(tail, sizeof tail, fmt, a);
    sl__logsink_printf(l->log, SL__SINK_WARN, "%s: redis %s %s", l->what, l->name, tail);
}

/* Detaches and frees l's context (if any): hiredis calls every pending reply callback with NULL.
 * Safe inside hiredis callbacks, where hiredis defers the free until the callback returns. */
static void link_free_context(rlink *l)
{
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->state = L_IDLE;
    if (l->ai != NULL) {
        freeaddrinfo(l->ai);
        l->ai = l->ai_next = NULL;
    }
    if (ac != NULL) {
        ac->data = NULL; /* our connect/disconnect callbacks ignore a detached context */
        redisAsyncFree(ac);
    }
}

static void on_link_timer(uv_timer_t *t);

static void link_schedule_retry(rlink *l)
{
    uv_timer_start(&l->timer, on_link_timer, l->backoff_ms, 0);
    l->backoff_ms *= 2;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
}

/* Drops the connection (failing what is pending through hiredis's NULL replies), tells the owner
 * when it was up, and retries after the backoff. Callers' callbacks run from here: read nothing
 * of l afterwards but closing. */
static void link_drop(rlink *l, const char *why)
{
    int was_up = l->state == L_UP;
    if (l->gai != NULL) {
        uv_cancel((uv_req_t *)l->gai); /* its callback finds it stale */
        l->gai = NULL;
    }
    link_free_context(l);
    if (l->closing)
        return;
    if (!l->down_logged) {
        log_line(l, "unavailable (%s); its requests fail until it is back", why);
        l->down_logged = 1;
    }
    uv_timer_stop(&l->timer);
    link_schedule_retry(l);
    link_on_down(l);
    if (was_up && !l->closing && l->on_state != NULL)
        l->on_state(l->state_ud, 0);
}

static void link_up(rlink *l)
{
    uv_timer_stop(&l->timer);
    l->state = L_UP;
    l->backoff_ms = BACKOFF_MIN_MS;
    if (l->ai != NULL) {
        freeaddrinfo(l->ai);
        l->ai = l->ai_next = NULL;
    }
    if (l->down_logged)
        log_line(l, "%sconnected", "");
    l->down_logged = 0;
}

/* Reads what the socket already holds before a timer declares a reply overdue: timers run before
 * the loop polls for I/O, so after the process stalled (a loaded machine) a reply that did arrive
 * in time may still be unread. 1 when the link is still the same and not closing. */
static int link_drain(rlink *l)
{
    redisAsyncContext *ac = l->ac;
    if (ac == NULL)
        return 1;
    redisAsyncHandleRead(ac); /* may complete commands, or find the connection closed */
    return !l->closing && l->ac == ac;
}

static void on_link_timer(uv_timer_t *t)
{
    rlink *l = t->data;
    if (l->closing)
        return;
    if (l->state == L_IDLE) {
        link_start(l);
    } else if (l->state != L_UP) {
        if (l->state == L_CONNECTING && (!link_drain(l) || l->state == L_UP))
            return;
        link_drop(l, "connect timed out");
    } else
        link_tick(l); /* UP: the subscription's probe tick (see rsub_tick) */
}

/* ---- hiredis on the loop ---------------------------------------------------------------------
 * Our own event adapter rather than hiredis 0.14's adapters/libuv.h. That one calls uv_poll_start
 * on every command hiredis queues, and libuv's uv_poll_start removes the descriptor from epoll
 * and adds it back each time (two system calls per command); here the poll changes only when the
 * events we want change. And that one ignores a poll error:
 * libuv reports a refused or reset connect as an error status and stops polling, so with that
 * adapter a refused connect stays pending until the connect timer (and the next resolved address
 * is never tried in time). Here an error lets hiredis look at the socket, which fails the connect
 * or the connection at once. */

typedef struct uvev {
    uv_poll_t poll;
    /* Writes of a connected link wait for the end of the loop iteration (the check phase; the
     * idle handle keeps the poll before it from blocking) and are tried there directly: polling
     * for writability would cost two epoll_ctl calls each time the poll changes. Only a write the
     * socket cannot take whole polls for writability. */
    uv_check_t flush;
    uv_idle_t spin;
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    int events;
    int want_write; /* hiredis has output for a connected link, not written yet */
    int open;       /* handles not closed yet */
} uvev;

static void uvev_closed(uv_handle_t *h)
{
    uvev *e = h->data;
    if (--e->open == 0)
        free(e);
}

static void uvev_cb(uv_poll_t *h, int status, int events)
{
    uvev *e = h->data;
    if (e->ac == NULL)
        return;
    if (status < 0) {
        if (e->events & UV_WRITABLE)
            redisAsyncHandleWrite(e->ac);
        else
            redisAsyncHandleRead(e->ac);
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(e->ac);
    if (e->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(e->ac);
}

static void uvev_update(uvev *e, int add, int ev)
{
    int want = add ? e->events | ev : e->events & ~ev;
    if (want == e->events)
        return;
    e->events = want;
    if (want)
        uv_poll_start(&e->poll, want, uvev_cb);
    else
        uv_poll_stop(&e->poll);
}

static void uvev_flush_cb(uv_check_t *h)
{
    uvev *e = h->data;
    uv_check_stop(&e->flush);
    uv_idle_stop(&e->spin);
    if (e->ac == NULL || !e->want_write)
        return;
    redisAsyncHandleWrite(e->ac); /* written whole: hiredis calls del_write */
    if (e->ac != NULL && e->want_write)
        uvev_update(e, 1, UV_WRITABLE);
}

static void uvev_spin_cb(uv_idle_t *h)
{
    (void)h; /* its being active is the point: the poll before the check does not block */
}

static void uvev_add_read(void *p)
{
    uvev_update(p, 1, UV_READABLE);
}

static void uvev_del_read(void *p)
{
    uvev_update(p, 0, UV_READABLE);
}

static void uvev_add_write(void *p)
{
    uvev *e = p;
    /* Connecting: writability is how the connect is seen to complete. */
    if (!(e->ac->c.flags & REDIS_CONNECTED) || (e->events & UV_WRITABLE)) {
        uvev_update(e, 1, UV_WRITABLE);
        return;
    }
    if (!e->want_write) {
        e->want_write = 1;
        uv_check_start(&e->flush, uvev_flush_cb);
        uv_idle_start(&e->spin, uvev_spin_cb);
    }
}

static void uvev_del_write(void *p)
{
    uvev *e = p;
    e->want_write = 0;
    uvev_update(e, 0, UV_WRITABLE);
}

static void uvev_cleanup(void *p)
{
    uvev *e = p;
    e->ac->ev.data = NULL;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, uvev_closed);
    uv_close((uv_handle_t *)&e->flush, uvev_closed);
    uv_close((uv_handle_t *)&e->spin, uvev_closed);
}

int sl__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return -1;
    uvev *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return -1;
    }
    uv_check_init(loop, &e->flush);
    uv_idle_init(loop, &e->spin);
    e->poll.data = e->flush.data = e->spin.data = e;
    e->open = 3;
    e->ac = ac;
    ac->ev.data = e;
    ac->ev.addRead = uvev_add_read;
    ac->ev.delRead = uvev_del_read;
    ac->ev.addWrite = uvev_add_write;
    ac->ev.delWrite = uvev_del_write;
    ac->ev.cleanup = uvev_cleanup;
    return 0;
}

static void on_connect(const redisAsyncContext *cac, int status);
static void on_disconnect(const redisAsyncContext *cac, int status);
static void link_send_handshake(rlink *l);

/* Connects to the next resolved address; when none is left, drops with why. */
static void link_connect_next(rlink *l, const char *why)
{
    char errbuf[160];
    while (l->ai_next != NULL) {
        struct addrinfo *ai = l->ai_next;
        l->ai_next = ai->ai_next;
        char ip[INET6_ADDRSTRLEN];
        const void *src = ai->ai_family == AF_INET6
                              ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                              : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        if (inet_ntop(ai->ai_family, src, ip, sizeof ip) == NULL)
            continue;
        redisAsyncContext *ac = redisAsyncConnect(ip, l->addr.port);
        if (ac == NULL) {
            why = "out of memory";
            continue;
        }
        if (ac->err) {
            snprintf(errbuf, sizeof errbuf, "connect: %.120s", ac->errstr);
            why = errbuf;
            redisAsyncFree(ac);
            continue;
        }
        if (sl__redis_uv_attach(ac, l->loop) != 0) {
            redisAsyncFree(ac);
            why = "cannot attach to the loop";
            continue;
        }
        ac->data = l;
        redisAsyncSetConnectCallback(ac, on_connect);
        redisAsyncSetDisconnectCallback(ac, on_disconnect);
        l->ac = ac;
        l->state = L_CONNECTING;
        /* Queued now, written as soon as the socket connects: one round trip to up. */
        link_send_handshake(l);
        return;
    }
    link_drop(l, why);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    rlink *l = req->data;
    int stale = l->gai != req;
    free(req);
    if (stale || l->closing) {
        if (res != NULL)
            freeaddrinfo(res);
        link_release(l);
        return;
    }
    l->gai = NULL;
    l->refs--; /* not the last: the timers are open while not closing */
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot resolve the host: %.100s", uv_strerror(status));
        link_drop(l, why);
        return;
    }
    l->ai = l->ai_next = res;
    l->state = L_CONNECTING;
    link_connect_next(l, "no address");
}

static void link_start(rlink *l)
{
    uv_timer_start(&l->timer, on_link_timer, l->timeout_ms, 0);
    uv_getaddrinfo_t *req = malloc(sizeof *req);
    if (req == NULL) {
        link_drop(l, "out of memory");
        return;
    }
    req->data = l;
    char port[16];
    snprintf(port, sizeof port, "%d", l->addr.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    l->state = L_RESOLVING;
    int rc = uv_getaddrinfo(l->loop, req, on_resolved, l->addr.host, port, &hints);
    if (rc != 0) {
        free(req);
        char why[160];
        snprintf(why, sizeof why, "cannot resolve the host: %.100s", uv_strerror(rc));
        link_drop(l, why);
        return;
    }
    l->gai = req;
    l->refs++;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    rlink *l = cac->data;
    if (l == NULL || l->closing)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns (and fails the handshake's callbacks). */
        char why[160];
        snprintf(why, sizeof why, "connect: %.120s", cac->c.errstr);
        l->ac = NULL;
        link_connect_next(l, why);
        return;
    }
    redisEnableKeepAlive((redisContext *)&cac->c);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    rlink *l = cac->data;
    if (l == NULL)
        return; /* detached by link_free_context: already handled */
    char why[160];
    snprintf(why, sizeof why, "connection lost: %.120s",
             cac->c.errstr[0] ? cac->c.errstr : "closed");
    l->ac = NULL; /* hiredis frees it when this returns; pending replies were failed before */
    /* A lost connection retries quickly; one that never got to answer keeps backing off. */
    if (l->state == L_UP)
        l->backoff_ms = BACKOFF_MIN_MS;
    link_drop(l, why);
}

/* AUTH and SELECT replies: an error drops the link (logged once per outage; the reason is the
 * error's first word, never anything sent). */
static void on_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rlink *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->closing || l->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[64];
        size_t n = strcspn(reply->str, " ");
        snprintf(why, sizeof why, "AUTH refused: %.*s", (int)(n > 32 ? 32 : n), reply->str);
        link_drop(l, why);
    }
}

static void on_select_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rlink *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->closing || l->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "SELECT %d refused: %.100s", l->addr.db, reply->str);
        link_drop(l, why);
    }
}

static void link_send_prelude(rlink *l)
{
    if (l->addr.password != NULL) {
        if (l->addr.user != NULL)
            redisAsyncCommand(l->ac, on_auth_reply, l, "AUTH %s %s", l->addr.user,
                              l->addr.password);
        else
            redisAsyncCommand(l->ac, on_auth_reply, l, "AUTH %s", l->addr.password);
    }
    if (l->addr.db != 0)
        redisAsyncCommand(l->ac, on_select_reply, l, "SELECT %d", l->addr.db);
}

static int link_init(rlink *l, int kind, uv_loop_t *loop, const sl__redis_addr *addr,
                     const char *what, unsigned timeout_ms)
{
    l->kind = kind;
    l->loop = loop;
    l->addr = *addr;
    l->addr.user = NULL;
    l->addr.password = NULL;
    if ((addr->user != NULL && (l->addr.user = strdup(addr->user)) == NULL) ||
        (addr->password != NULL && (l->addr.password = strdup(addr->password)) == NULL) ||
        (l->what = strdup(what != NULL ? what : "engine")) == NULL) {
        addr_clear(&l->addr);
        return SL_ENOMEM;
    }
    sl__redis_addr_name(addr, l->name, sizeof l->name);
    l->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
    l->state = L_IDLE;
    l->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    /* The link's timers serve its connection, whose socket keeps the loop alive while it exists;
     * they must not keep a finished server's loop running by themselves. */
    uv_unref((uv_handle_t *)&l->timer);
    l->refs = 1;
    /* hiredis writes with write(2): a Redis that goes away mid-write must not kill the process. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    return SL_OK;
}

static void link_close(rlink *l)
{
    l->closing = 1;
    if (l->gai != NULL) {
        uv_cancel((uv_req_t *)l->gai); /* its callback still runs, and releases its reference */
        l->gai = NULL;
    }
    link_free_context(l);
    uv_close((uv_handle_t *)&l->timer, link_handle_closed);
}

static void link_clear(rlink *l)
{
    addr_clear(&l->addr);
    free(l->what);
}

static void later_push(later_q *q, later *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

static later *later_pop(later_q *q)
{
    later *n = q->head;
    if (n != NULL) {
        q->head = n->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return n;
}

/* ==== the command connection ================================================================= */

typedef struct op op;
struct sl__rconn {
    rlink l; /* first: the link's callbacks cast back */
    uv_timer_t watchdog;
    later_q later;
    op *head, *tail; /* sent, not yet answered: send order */
    /* The owner's check (opts): EVAL, body, nkeys, then its arguments, in one block. */
    int check_argc;
    char **check_argv;
    sl__rconn_fn on_check;

    sl__rconn_stats stats;
};

struct op {
    op *prev, *next;
    sl__rconn *c;
    int linked;
    int done;
    uint64_t deadline;
    sl__rconn_fn fn;
    void *ud;
    /* eval: the EVALSHA argv (copied), rewritten to EVAL body on NOSCRIPT */
    const sl__rscript *script;
    int retried; /* sent again as EVAL */
    int argc;
    const char **argv;
    size_t *lens;
};

static void on_watchdog(uv_timer_t *t);

static void watchdog_arm(sl__rconn *c)
{
    if (c->l.closing)
        return;
    if (c->head == NULL) {
        uv_timer_stop(&c->watchdog);
        return;
    }
    uint64_t now = uv_now(c->l.loop);
    uv_timer_start(&c->watchdog, on_watchdog, c->head->deadline > now ? c->head->deadline - now : 0,
                   0);
}

static void op_link(sl__rconn *c, op *o)
{
    o->deadline = uv_now(c->l.loop) + c->l.timeout_ms;
    o->prev = c->tail;
    o->next = NULL;
    if (c->tail)
        c->tail->next = o;
    else
        c->head = o;
    c->tail = o;
    o->linked = 1;
    if (c->head == o)
        watchdog_arm(c);
}

static void op_unlink(op *o)
{
    sl__rconn *c = o->c;
    if (!o->linked)
        return;
    int was_head = c->head == o;
    if (o->prev)
        o->prev->next = o->next;
    else
        c->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        c->tail = o->prev;
    o->linked = 0;
    if (was_head)
        watchdog_arm(c);
}

static void on_watchdog(uv_timer_t *t)
{
    sl__rconn *c = t->data;
    if (c->head == NULL || c->l.closing)
        return;
    if (c->head->deadline <= uv_now(c->l.loop) && !link_drain(&c->l))
        return;
    if (c->head == NULL || c->head->deadline > uv_now(c->l.loop)) {
        watchdog_arm(c);
        return;
    }
    link_drop(&c->l, "reply overdue");
}

static void on_kick_cmd(uv_timer_t *t)
{
    sl__rconn *c = t->data;
    later *n;
    while (!c->l.closing && (n = later_pop(&c->later)) != NULL) {
        n->fn(n->ud, n->rc, NULL);
        free(n);
    }
}

/* fn(ud, SL_EUNAVAIL, NULL) from the loop. Out of memory even for that: at once (the only case
 * where a completion runs inside the call). */
static void cmd_fail_later(sl__rconn *c, sl__rconn_fn fn, void *ud)
{
    c->stats.failures++;
    later *n = calloc(1, sizeof *n);
    if (n == NULL) {
        fn(ud, SL_EUNAVAIL, NULL);
        return;
    }
    n->fn = fn;
    n->ud = ud;
    n->rc = SL_EUNAVAIL;
    later_push(&c->later, n);
    uv_timer_start(&c->later.kick, on_kick_cmd, 0, 0);
}

static void op_free(op *o)
{
    free(o->argv);
    free(o);
}

static void on_cmd_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Queues a command for o, formatted here in RESP (hiredis' argv formatter runs a general printf
 * per argument, and a coalesced write has hundreds). REDIS_OK or REDIS_ERR. */
static int send_argv(redisAsyncContext *ac, op *o, int argc, const char *const *argv,
                     const size_t *lens)
{
    size_t total = 1 + 20 + 2;
    for (int i = 0; i < argc; i++)
        total += 1 + 20 + 2 + (lens ? lens[i] : strlen(argv[i])) + 2;
    char *buf = malloc(total + 1); /* + NUL: hiredis reads the command name with strchr */
    if (buf == NULL)
        return REDIS_ERR;
    char *p = buf;
    *p++ = '*';
    p = sl__put_uint(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]); /* NULL lens: C strings, as in hiredis */
        *p++ = '$';
        p = sl__put_uint(p, len);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *p = '\0';
    int rc = redisAsyncFormattedCommand(ac, on_cmd_reply, o, buf, (size_t)(p - buf));
    free(buf);
    return rc;
}

static void on_cmd_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    op *o = privdata;
    sl__rconn *c = o->c;
    redisReply *reply = r;
    if (o->done) {
        op_free(o);
        return;
    }
    op_unlink(o);
    if (reply != NULL && o->script != NULL && !o->retried && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && c->l.ac == ac && c->l.state == L_UP) {
        /* The script is not (or no longer) cached there: the same call as EVAL, which also
         * caches it for the next EVALSHA. */
        o->retried = 1;
        o->argv[0] = "EVAL";
        o->argv[1] = o->script->body;
        o->lens[0] = 4;
        o->lens[1] = strlen(o->script->body);
        if (send_argv(ac, o, o->argc, o->argv, o->lens) == REDIS_OK) {
            op_link(c, o);
            return;
        }
        reply = NULL;
    }
    o->done = 1;
    if (reply != NULL) { /* sent at deadline - timeout (op_link) */
        uint64_t sent = o->deadline - c->l.timeout_ms, now = uv_now(c->l.loop);
        c->stats.round_trips++;
        sl__histo_observe(&c->stats.seconds, now > sent ? (double)(now - sent) / 1000.0 : 0);
    } else {
        c->stats.failures++;
    }
    o->fn(o->ud, reply != NULL ? SL_OK : SL_EUNAVAIL, reply);
    op_free(o);
}

void sl__rconn_stats_get(const sl__rconn *c, sl__rconn_stats *out)
{
    *out = c->stats;
}

/* Sends o (argv, lens as given) or fails it from the loop. */
static void cmd_send(sl__rconn *c, op *o, int argc, const char **argv, const size_t *lens)
{
    if (c->l.state != L_UP || c->l.ac == NULL || c->l.closing ||
        send_argv(c->l.ac, o, argc, argv, lens) != REDIS_OK) {
        cmd_fail_later(c, o->fn, o->ud);
        op_free(o);
        return;
    }
    op_link(c, o);
}

void sl__rconn_cmd(sl__rconn *c, int argc, const char *const *argv, const size_t *lens,
                   sl__rconn_fn fn, void *ud)
{
    op *o = calloc(1, sizeof *o);
    if (o == NULL) {
        cmd_fail_later(c, fn, ud);
        return;
    }
    o->c = c;
    o->fn = fn;
    o->ud = ud;
    cmd_send(c, o, argc, (const char **)argv, lens);
}

void sl__rscript_init(sl__rscript *s, const char *body)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    s->body = body;
    s->sha[0] = '\0';
    if (EVP_Digest(body, strlen(body), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return; /* EVALSHA of "" answers NOSCRIPT, and the EVAL fallback still runs the body */
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
}

void sl__rconn_eval(sl__rconn *c, const sl__rscript *s, int nkeys, int argc,
                    const char *const *argv, const size_t *lens, sl__rconn_fn fn, void *ud)
{
    /* One block: the op, then argv and lens for argc + 3 entries, then the argument bytes and
     * nkeys in decimal, so that a NOSCRIPT retry can resend them after the caller returned. */
    size_t total = argc + 3, bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += lens ? lens[i] : strlen(argv[i]);
    char num[16];
    int numlen = snprintf(num, sizeof num, "%d", nkeys);
    op *o = calloc(1, sizeof *o);
    char *blk =
        o ? malloc(total * (sizeof(char *) + sizeof(size_t)) + bytes + (size_t)numlen + 1) : NULL;
    if (blk == NULL) {
        free(o);
        cmd_fail_later(c, fn, ud);
        return;
    }
    o->c = c;
    o->fn = fn;
    o->ud = ud;
    o->script = s;
    o->argc = (int)total;
    o->argv = (const char **)blk;
    o->lens = (size_t *)(blk + total * sizeof(char *));
    char *data = blk + total * (sizeof(char *) + sizeof(size_t));
    o->argv[0] = "EVALSHA";
    o->lens[0] = 7;
    o->argv[1] = s->sha;
    o->lens[1] = strlen(s->sha);
    memcpy(data, num, (size_t)numlen + 1);
    o->argv[2] = data;
    o->lens[2] = (size_t)numlen;
    data += numlen + 1;
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        memcpy(data, argv[i], n);
        o->argv[3 + i] = data;
        o->lens[3 + i] = n;
        data += n;
    }
    cmd_send(c, o, o->argc, o->argv, o->lens);
}

static void link_up_tell(rlink *l)
{
    link_up(l);
    if (l->on_state != NULL)
        l->on_state(l->state_ud, 1);
}

static void on_pong(redisAsyncContext *ac, void *r, void *privdata)
{
    rlink *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->closing || l->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
        if (((sl__rconn *)l)->check_argv == NULL)
            link_up_tell(l);
        return; /* else the check, pipelined behind the PING, brings it up */
    }
    char why[160];
    snprintf(why, sizeof why, "PING answered %.100s",
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpectedly");
    link_drop(l, why);
}

/* The check's reply: the owner sees it before the link counts as up, so no command of the owner's
 * can have been sent before then (sl__rconn_eval fails closed while the link is not up). */
static void on_check_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rlink *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->closing || l->ac != ac)
        return;
    ((sl__rconn *)l)->on_check(l->state_ud, SL_OK, reply);
    if (!l->closing && l->ac == ac)
        link_up_tell(l);
}

static void rconn_send_check(sl__rconn *c)
{
    redisAsyncCommandArgv(c->l.ac, on_check_reply, &c->l, c->check_argc,
                          (const char **)c->check_argv, NULL);
}

/* Copies the check's command (EVAL body nkeys args...) into one block owned by c. */
static int rconn_copy_check(sl__rconn *c, const sl__rconn_opts *o)
{
    if (o->check == NULL)
        return SL_OK;
    if (o->on_check == NULL || o->check_argc < o->check_nkeys || o->check_nkeys < 0)
        return SL_EINVAL;
    char nkeys[16];
    snprintf(nkeys, sizeof nkeys, "%d", o->check_nkeys);
    const char *head[3] = {"EVAL", o->check->body, nkeys};
    int argc = 3 + o->check_argc;
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += strlen(i < 3 ? head[i] : o->check_argv[i - 3]) + 1;
    char **v = malloc((size_t)argc * sizeof *v + bytes);
    if (v == NULL)
        return SL_ENOMEM;
    char *p = (char *)(v + argc);
    for (int i = 0; i < argc; i++) {
        const char *a = i < 3 ? head[i] : o->check_argv[i - 3];
        size_t n = strlen(a) + 1;
        v[i] = memcpy(p, a, n);
        p += n;
    }
    c->check_argv = v;
    c->check_argc = argc;
    c->on_check = o->on_check;
    return SL_OK;
}

int sl__rconn_new(sl__rconn **out, uv_loop_t *loop, const sl__rconn_opts *o)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (loop == NULL || o == NULL || o->addr == NULL || o->addr->host[0] == '\0')
        return SL_EINVAL;
    sl__rconn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    c->l.log = o->log;
    int rc = rconn_copy_check(c, o);
    if (rc != SL_OK) {
        free(c);
        return rc;
    }
    if (link_init(&c->l, KIND_CMD, loop, o->addr, o->what, o->timeout_ms) != SL_OK) {
        free(c->check_argv);
        free(c);
        return SL_ENOMEM;
    }
    c->l.on_state = o->on_state;
    c->l.state_ud = o->state_ud;
    uv_timer_init(loop, &c->watchdog);
    c->watchdog.data = c;
    uv_unref((uv_handle_t *)&c->watchdog);
    uv_timer_init(loop, &c->later.kick);
    c->later.kick.data = c;
    c->l.refs += 2;
    link_start(&c->l);
    *out = c;
    return SL_OK;
}

int sl__rconn_up(const sl__rconn *c)
{
    return c != NULL && c->l.state == L_UP && c->l.ac != NULL;
}

static void rconn_handle_closed(uv_handle_t *h)
{
    sl__rconn *c = h->data;
    link_release(&c->l);
}

void sl__rconn_free(sl__rconn *c)
{
    if (c == NULL || c->l.closing)
        return;
    c->l.closing = 1;
    /* Answer everything now, so that nothing is answered after this returns; the ops stay with
     * hiredis, which frees them through the NULL replies of the context's free below. */
    /* (A completion that submits again is answered here too.) */
    while (c->later.head != NULL || c->head != NULL) {
        later *n;
        while ((n = later_pop(&c->later)) != NULL) {
            n->fn(n->ud, n->rc, NULL);
            free(n);
        }
        while (c->head != NULL) {
            op *o = c->head;
            op_unlink(o);
            o->done = 1;
            o->fn(o->ud, SL_EUNAVAIL, NULL);
        }
    }
    link_close(&c->l);
    uv_close((uv_handle_t *)&c->watchdog, rconn_handle_closed);
    uv_close((uv_handle_t *)&c->later.kick, rconn_handle_closed);
}

/* ==== the subscription connection ============================================================ */

typedef enum { C_DOWN, C_SUBSCRIBING, C_SUBSCRIBED, C_UNSUBSCRIBING } cstate;

typedef struct waiter {
    struct waiter *next;
    sl__rsub_ready_fn ready;
    void *ud;
} waiter;

/* One channel: at most one SUBSCRIBE or UNSUBSCRIBE of it in flight at a time, because hiredis
 * keeps one callback per channel and drops it on any UNSUBSCRIBE reply, even one that a newer
 * SUBSCRIBE already followed. */
typedef struct chan {
    struct chan *prev, *next;
    char *name;
    size_t count; /* adds not removed (those waiting for their ready included) */
    cstate st;
    waiter *wh, *wt; /* adds waiting for the confirmation */
} chan;

struct sl__rsub {
    rlink l;
    sl__rsub_msg_fn on_msg;
    void *ud;
    sl__map *by_name;
    chan *chans;
    later_q later;
    int probe_out; /* a probe has not been answered yet */
};

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

static int sub_send(sl__rsub *s, const char *verb, const char *name)
{
    const char *argv[2] = {verb, name};
    size_t lens[2] = {strlen(verb), strlen(name)};
    if (s->l.ac == NULL)
        return 0;
    return redisAsyncCommandArgv(s->l.ac, on_sub_reply, s, 2, argv, lens) == REDIS_OK;
}

static void on_kick_sub(uv_timer_t *t)
{
    sl__rsub *s = t->data;
    later *n;
    while (!s->l.closing && (n = later_pop(&s->later)) != NULL) {
        n->ready(n->ud, n->rc);
        free(n);
    }
}

static void sub_ready_later(sl__rsub *s, sl__rsub_ready_fn ready, void *ud, int rc)
{
    if (ready == NULL)
        return;
    later *n = calloc(1, sizeof *n);
    if (n == NULL) {
        ready(ud, rc);
        return;
    }
    n->ready = ready;
    n->ud = ud;
    n->rc = rc;
    later_push(&s->later, n);
    uv_timer_start(&s->later.kick, on_kick_sub, 0, 0);
}

static void chan_destroy(sl__rsub *s, chan *ch)
{
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        s->chans = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    sl__map_del(s->by_name, ch->name, NULL);
    waiter *w = ch->wh;
    while (w != NULL) {
        waiter *nx = w->next;
        free(w);
        w = nx;
    }
    free(ch->name);
    free(ch);
}

/* Answers every waiter of ch with rc; SL_EUNAVAIL also takes their adds back (they are not
 * kept: the caller retries). */
static void chan_answer(sl__rsub *s, chan *ch, int rc)
{
    waiter *w = ch->wh;
    ch->wh = ch->wt = NULL;
    while (w != NULL) {
        waiter *nx = w->next;
        if (rc != SL_OK && ch->count > 0)
            ch->count--;
        sub_ready_later(s, w->ready, w->ud, rc);
        free(w);
        w = nx;
    }
}

/* (Re)subscribes every channel that is wanted, then the probe channel, whose confirmation (the
 * last reply, as replies come in order) makes the link up. */
static void rsub_handshake(sl__rsub *s)
{
    chan *ch = s->chans;
    while (ch != NULL) {
        chan *nx = ch->next;
        if (ch->count == 0) {
            /* removed while an earlier address was being tried */
            chan_answer(s, ch, SL_OK);
            chan_destroy(s, ch);
        } else {
            ch->st = sub_send(s, "SUBSCRIBE", ch->name) ? C_SUBSCRIBING : C_DOWN;
        }
        ch = nx;
    }
    s->probe_out = 1;
    sub_send(s, "SUBSCRIBE", PROBE_CHANNEL);
}

/* The probe: a subscribed RESP2 connection answers PING with ["pong", ""], which hiredis 0.14
 * matches to no callback (it looks the reply up as a pattern subscription), so the probe is a
 * repeated SUBSCRIBE of the probe channel, which Redis confirms without changing anything. One
 * still unanswered at the next tick means the connection went silent. */
static void rsub_tick(sl__rsub *s)
{
    if (s->probe_out && (!link_drain(&s->l) || s->l.state != L_UP))
        return;
    if (s->probe_out) {
        link_drop(&s->l, "probe unanswered");
        return;
    }
    if (!sub_send(s, "SUBSCRIBE", PROBE_CHANNEL)) {
        link_drop(&s->l, "cannot send a probe");
        return;
    }
    s->probe_out = 1;
}

static void rsub_on_down(sl__rsub *s)
{
    chan *ch = s->chans;
    s->probe_out = 0;
    while (ch != NULL) {
        chan *nx = ch->next;
        chan_answer(s, ch, SL_EUNAVAIL);
        if (ch->count == 0)
            chan_destroy(s, ch);
        else
            ch->st = C_DOWN;
        ch = nx;
    }
}

static void on_sub_confirm(sl__rsub *s, chan *ch)
{
    if (ch->st != C_SUBSCRIBING)
        return; /* not ours to count (hiredis shares one callback per channel) */
    chan_answer(s, ch, SL_OK);
    if (ch->count > 0) {
        ch->st = C_SUBSCRIBED;
    } else if (sub_send(s, "UNSUBSCRIBE", ch->name)) {
        ch->st = C_UNSUBSCRIBING;
    } else {
        chan_destroy(s, ch);
    }
}

static void on_unsub_confirm(sl__rsub *s, chan *ch)
{
    if (ch->st != C_UNSUBSCRIBING)
        return;
    if (ch->count > 0) {
        /* added again meanwhile; when it cannot be sent the link is going down, and the channel
         * is subscribed again on reconnect */
        ch->st = sub_send(s, "SUBSCRIBE", ch->name) ? C_SUBSCRIBING : C_DOWN;
        return;
    }
    /* Adds made and removed while it was unsubscribing: nothing to subscribe for them. */
    chan_answer(s, ch, SL_OK);
    chan_destroy(s, ch);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    sl__rsub *s = privdata;
    redisReply *reply = r;
    if (reply == NULL || s->l.closing || s->l.ac != ac)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *name = reply->element[1];
    int is_probe = strcmp(name->str, PROBE_CHANNEL) == 0;
    chan *ch = is_probe ? NULL : sl__map_get(s->by_name, name->str);
    if (strcasecmp(kind, "message") == 0) {
        const redisReply *m = reply->element[2];
        if (ch != NULL && ch->st == C_SUBSCRIBED && ch->count > 0 &&
            m->type == REDIS_REPLY_STRING && s->on_msg != NULL)
            s->on_msg(s->ud, name->str, name->len, m->str, m->len);
    } else if (strcasecmp(kind, "subscribe") == 0) {
        if (is_probe) {
            s->probe_out = 0;
            if (s->l.state == L_CONNECTING) {
                link_up(&s->l);
                uv_timer_start(&s->l.timer, on_link_timer, SUB_PROBE_MS, SUB_PROBE_MS);
                if (s->l.on_state != NULL)
                    s->l.on_state(s->l.state_ud, 1);
            }
        } else if (ch != NULL) {
            on_sub_confirm(s, ch);
        }
    } else if (strcasecmp(kind, "unsubscribe") == 0) {
        if (ch != NULL)
            on_unsub_confirm(s, ch);
    }
}

int sl__rsub_new(sl__rsub **out, uv_loop_t *loop, const sl__rsub_opts *o)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (loop == NULL || o == NULL || o->addr == NULL || o->addr->host[0] == '\0')
        return SL_EINVAL;
    sl__rsub *s = calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    if (sl__map_new(&s->by_name) != SL_OK) {
        free(s);
        return SL_ENOMEM;
    }
    s->l.log = o->log;
    if (link_init(&s->l, KIND_SUB, loop, o->addr, o->what, 0) != SL_OK) {
        sl__map_free(s->by_name, NULL);
        free(s);
        return SL_ENOMEM;
    }
    s->on_msg = o->on_msg;
    s->ud = o->ud;
    s->l.on_state = o->on_state;
    s->l.state_ud = o->ud;
    uv_timer_init(loop, &s->later.kick);
    s->later.kick.data = s;
    s->l.refs += 1;
    link_start(&s->l);
    *out = s;
    return SL_OK;
}

int sl__rsub_up(const sl__rsub *s)
{
    return s != NULL && s->l.state == L_UP && s->l.ac != NULL;
}

void sl__rsub_add(sl__rsub *s, const char *channel, sl__rsub_ready_fn ready, void *ud)
{
    if (channel == NULL || *channel == '\0' || strcmp(channel, PROBE_CHANNEL) == 0) {
        sub_ready_later(s, ready, ud, SL_EINVAL);
        return;
    }
    if (!sl__rsub_up(s)) {
        sub_ready_later(s, ready, ud, SL_EUNAVAIL);
        return;
    }
    chan *ch = sl__map_get(s->by_name, channel);
    int fresh = ch == NULL;
    if (fresh) {
        ch = calloc(1, sizeof *ch);
        if (ch == NULL || (ch->name = strdup(channel)) == NULL ||
            sl__map_put(s->by_name, channel, ch, NULL) != SL_OK) {
            if (ch != NULL)
                free(ch->name);
            free(ch);
            sub_ready_later(s, ready, ud, SL_EUNAVAIL);
            return;
        }
        ch->next = s->chans;
        if (s->chans)
            s->chans->prev = ch;
        s->chans = ch;
        if (!sub_send(s, "SUBSCRIBE", channel)) {
            chan_destroy(s, ch);
            sub_ready_later(s, ready, ud, SL_EUNAVAIL);
            return;
        }
        ch->st = C_SUBSCRIBING;
    }
    if (ch->st == C_SUBSCRIBED) {
        ch->count++;
        sub_ready_later(s, ready, ud, SL_OK);
        return;
    }
    waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        /* a fresh channel keeps count 0: unsubscribed again once confirmed */
        sub_ready_later(s, ready, ud, SL_EUNAVAIL);
        return;
    }
    w->ready = ready;
    w->ud = ud;
    if (ch->wt)
        ch->wt->next = w;
    else
        ch->wh = w;
    ch->wt = w;
    ch->count++;
}

void sl__rsub_remove(sl__rsub *s, const char *channel)
{
    if (s == NULL || channel == NULL)
        return;
    chan *ch = sl__map_get(s->by_name, channel);
    if (ch == NULL || ch->count == 0)
        return;
    if (--ch->count > 0)
        return;
    switch (ch->st) {
    case C_DOWN:
        chan_answer(s, ch, SL_OK);
        chan_destroy(s, ch);
        break;
    case C_SUBSCRIBED:
        if (sub_send(s, "UNSUBSCRIBE", ch->name))
            ch->st = C_UNSUBSCRIBING;
        else
            chan_destroy(s, ch); /* the link is going down: nothing to unsubscribe */
        break;
    default:
        break; /* SUBSCRIBING: unsubscribed once confirmed; UNSUBSCRIBING: already going */
    }
}

static void rsub_handle_closed(uv_handle_t *h)
{
    sl__rsub *s = h->data;
    link_release(&s->l);
}

void sl__rsub_free(sl__rsub *s)
{
    if (s == NULL || s->l.closing)
        return;
    s->l.closing = 1;
    for (;;) {
        later *n;
        while ((n = later_pop(&s->later)) != NULL) {
            n->ready(n->ud, n->rc);
            free(n);
        }
        if (s->chans == NULL)
            break;
        chan *ch = s->chans;
        waiter *w = ch->wh;
        ch->wh = ch->wt = NULL;
        while (w != NULL) {
            waiter *nx = w->next;
            if (w->ready != NULL)
                w->ready(w->ud, SL_EUNAVAIL);
            free(w);
            w = nx;
        }
        chan_destroy(s, ch);
    }
    link_close(&s->l);
    uv_close((uv_handle_t *)&s->later.kick, rsub_handle_closed);
}

/* ==== per-kind hooks of the link ============================================================= */

static void link_send_handshake(rlink *l)
{
    link_send_prelude(l);
    if (l->kind == KIND_CMD) {
        redisAsyncCommand(l->ac, on_pong, l, "PING");
        if (((sl__rconn *)l)->check_argv != NULL)
            rconn_send_check((sl__rconn *)l);
    } else
        rsub_handshake((sl__rsub *)l);
}

static void link_tick(rlink *l)
{
    if (l->kind == KIND_SUB)
        rsub_tick((sl__rsub *)l);
}

static void link_on_down(rlink *l)
{
    if (l->kind == KIND_SUB)
        rsub_on_down((sl__rsub *)l);
}

static void link_free_struct(rlink *l)
{
    if (l->kind == KIND_SUB) {
        sl__rsub *s = (sl__rsub *)l;
        sl__map_free(s->by_name, NULL);
        link_clear(l);
        free(s);
    } else {
        link_clear(l);
        free(((sl__rconn *)l)->check_argv);
        free((sl__rconn *)l);
    }
}

int sl__redis_prefix_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > 64)
        return 0;
    return strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n;
}
