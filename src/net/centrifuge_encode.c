/* The encoder half of the Centrifugo JSON client protocol codec (see centrifuge.h): replies and
 * pushes written as compact JSON by hand into one growable buffer (sl__cf_buf), newline-separated
 * objects of one batch. Replies are small and hot (fan-out), and building a jansson tree per push
 * would cost more than the push itself. A failed allocation marks the buffer: later writes are
 * dropped and the object being written is rolled back, so a batch keeps every complete object
 * before it. The command parser and the code tables are in centrifuge.c. */
#include "net/centrifuge.h"

#include "core/numtext.h"
#include "core/wsid.h"

#include <stdlib.h>
#include <string.h>

void sl__cf_buf_init(sl__cf_buf *b)
{
    memset(b, 0, sizeof *b);
}

void sl__cf_buf_reset(sl__cf_buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->data)
        b->data[0] = '\0';
}

void sl__cf_buf_truncate(sl__cf_buf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

void sl__cf_buf_free(sl__cf_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Room for extra bytes plus a NUL, so data is always a C string for logs and tests. */
static int reserve(sl__cf_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return -1;
    }
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->oom = true;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

static void put(sl__cf_buf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(sl__cf_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_u64(sl__cf_buf *b, uint64_t v)
{
    char tmp[20];
    put(b, tmp, (size_t)(sl__put_uint(tmp, v) - tmp));
}

/* A JSON string literal; the caller passes UTF-8, only quotes, backslashes and controls change. */
static void put_str(sl__cf_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    const char *run = s;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\')
            continue;
        put(b, run, (size_t)((const char *)p - run));
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t k = 2;
        switch (*p) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            k = 6;
        }
        put(b, esc, k);
        run = (const char *)p + 1;
    }
    puts_(b, run);
    put(b, "\"", 1);
}

/* "key": with a leading comma unless first. */
static void key(sl__cf_buf *b, bool *first, const char *k)
{
    if (!*first)
        put(b, ",", 1);
    *first = false;
    put(b, "\"", 1);
    puts_(b, k);
    put(b, "\":", 2);
}

static void kv_str(sl__cf_buf *b, bool *first, const char *k, const char *v)
{
    if (v == NULL)
        return;
    key(b, first, k);
    put_str(b, v);
}

static void kv_u64(sl__cf_buf *b, bool *first, const char *k, uint64_t v)
{
    key(b, first, k);
    put_u64(b, v);
}

static void kv_true(sl__cf_buf *b, bool *first, const char *k, bool v)
{
    if (!v)
        return;
    key(b, first, k);
    put(b, "true", 4);
}

static void kv_raw(sl__cf_buf *b, bool *first, const char *k, const char *v, size_t n)
{
    if (v == NULL)
        return;
    key(b, first, k);
    put(b, v, n);
}

/* Opens one batched object; returns the length to roll back to. */
static size_t begin(sl__cf_buf *b)
{
    size_t start = b->len;
    if (b->len > 0)
        put(b, "\n", 1);
    put(b, "{", 1);
    return start;
}

/* Ends an object started at start: on a failed allocation the batch keeps every complete object
 * before this one and drops the partial one. */
static int finish(sl__cf_buf *b, size_t start)
{
    if (b->oom) {
        b->len = start;
        if (b->data && b->cap > start)
            b->data[start] = '\0';
        return SL_ENOMEM;
    }
    return SL_OK;
}

static int end(sl__cf_buf *b, size_t start)
{
    put(b, "}", 1);
    return finish(b, start);
}

int sl__cf_buf_append(sl__cf_buf *b, const char *obj, size_t len)
{
    size_t start = b->len;
    if (b->len > 0)
        put(b, "\n", 1);
    put(b, obj, len);
    return finish(b, start);
}

/* {"id":N,"<name>":{ */
static size_t begin_reply(sl__cf_buf *b, uint32_t id, const char *name)
{
    size_t start = begin(b);
    puts_(b, "\"id\":");
    put_u64(b, id);
    put(b, ",\"", 2);
    puts_(b, name);
    put(b, "\":{", 3);
    return start;
}

static void client_info(sl__cf_buf *b, const sl__cf_client_info *in)
{
    bool f = true;
    put(b, "{", 1);
    kv_str(b, &f, "client", in->client ? in->client : "");
    kv_str(b, &f, "user", in->user ? in->user : "");
    kv_raw(b, &f, "conn_info", in->conn_info, in->conn_info ? strlen(in->conn_info) : 0);
    kv_raw(b, &f, "chan_info", in->chan_info, in->chan_info ? strlen(in->chan_info) : 0);
    put(b, "}", 1);
}

static void publication(sl__cf_buf *b, const sl__cf_pub *p)
{
    bool f = true;
    put(b, "{", 1);
    kv_raw(b, &f, "data", p->data ? p->data : "null", p->data ? p->data_len : 4);
    if (p->info) {
        key(b, &f, "info");
        client_info(b, p->info);
    }
    if (p->offset)
        kv_u64(b, &f, "offset", p->offset);
    put(b, "}", 1);
}

static void publications(sl__cf_buf *b, bool *f, const sl__cf_pub *pubs, size_t n)
{
    if (n == 0)
        return;
    key(b, f, "publications");
    put(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(b, ",", 1);
        publication(b, &pubs[i]);
    }
    put(b, "]", 1);
}

int sl__cf_reply_connect(sl__cf_buf *b, uint32_t id, const sl__cf_connect_result *r)
{
    size_t start = begin_reply(b, id, "connect");
    bool f = true;
    kv_str(b, &f, "client", r->client ? r->client : "");
    kv_str(b, &f, "version", r->version);
    if (r->expires) {
        kv_true(b, &f, "expires", true);
        kv_u64(b, &f, "ttl", r->ttl);
    }
    kv_raw(b, &f, "data", r->data, r->data ? strlen(r->data) : 0);
    if (r->ping)
        kv_u64(b, &f, "ping", r->ping);
    kv_true(b, &f, "pong", r->pong);
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_reply_subscribe(sl__cf_buf *b, uint32_t id, const sl__cf_subscribe_result *r)
{
    size_t start = begin_reply(b, id, "subscribe");
    bool f = true;
    if (r->expires) {
        kv_true(b, &f, "expires", true);
        kv_u64(b, &f, "ttl", r->ttl);
    }
    kv_true(b, &f, "recoverable", r->recoverable);
    kv_true(b, &f, "positioned", r->positioned);
    if (r->recoverable || r->positioned) {
        kv_str(b, &f, "epoch", r->epoch ? r->epoch : "");
        kv_u64(b, &f, "offset", r->offset);
    }
    kv_true(b, &f, "was_recovering", r->was_recovering);
    kv_true(b, &f, "recovered", r->recovered);
    publications(b, &f, r->publications, r->npublications);
    kv_raw(b, &f, "data", r->data, r->data ? strlen(r->data) : 0);
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_reply_empty(sl__cf_buf *b, uint32_t id, sl__cf_method m)
{
    size_t start = begin_reply(b, id, sl__cf_method_name(m));
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_reply_refresh(sl__cf_buf *b, uint32_t id, sl__cf_method m, const char *client,
                         const char *version, bool expires, uint32_t ttl)
{
    size_t start = begin_reply(b, id, sl__cf_method_name(m));
    bool f = true;
    if (m == SL__CF_REFRESH) {
        kv_str(b, &f, "client", client);
        kv_str(b, &f, "version", version);
    }
    if (expires) {
        kv_true(b, &f, "expires", true);
        kv_u64(b, &f, "ttl", ttl);
    }
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_reply_history(sl__cf_buf *b, uint32_t id, const sl__cf_pub *pubs, size_t n,
                         const char *epoch, uint64_t offset)
{
    size_t start = begin_reply(b, id, "history");
    bool f = true;
    publications(b, &f, pubs, n);
    kv_str(b, &f, "epoch", epoch ? epoch : "");
    kv_u64(b, &f, "offset", offset);
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_reply_presence(sl__cf_buf *b, uint32_t id, const sl__cf_client_info *clients, size_t n)
{
    size_t start = begin_reply(b, id, "presence");
    put(b, "\"presence\":{", 12);
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(b, ",", 1);
        put_str(b, clients[i].client ? clients[i].client : "");
        put(b, ":", 1);
        client_info(b, &clients[i]);
    }
    put(b, "}}", 2);
    return end(b, start);
}

int sl__cf_reply_presence_stats(sl__cf_buf *b, uint32_t id, uint32_t num_clients,
                                uint32_t num_users)
{
    size_t start = begin_reply(b, id, "presence_stats");
    bool f = true;
    kv_u64(b, &f, "num_clients", num_clients);
    kv_u64(b, &f, "num_users", num_users);
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_reply_rpc(sl__cf_buf *b, uint32_t id, const char *data, size_t data_len)
{
    size_t start = begin_reply(b, id, "rpc");
    bool f = true;
    kv_raw(b, &f, "data", data, data_len);
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_reply_error(sl__cf_buf *b, uint32_t id, int code, const char *message)
{
    size_t start = begin_reply(b, id, "error");
    bool f = true;
    kv_u64(b, &f, "code", (uint64_t)(code < 0 ? 0 : code));
    kv_str(b, &f, "message", message ? message : sl__cf_code_message(code));
    kv_true(b, &f, "temporary", sl__cf_code_temporary(code));
    put(b, "}", 1);
    return end(b, start);
}

/* {"push":{"channel":C,"<kind>": */
static size_t begin_push(sl__cf_buf *b, const char *channel, const char *kind)
{
    size_t start = begin(b);
    puts_(b, "\"push\":{");
    bool f = true;
    /* A workspace's channel goes out under its subscribers' own name (core/wsid.h);
     * everyone subscribed to it is of that workspace. */
    kv_str(b, &f, "channel", sl__ws_name(channel));
    key(b, &f, kind);
    return start;
}

int sl__cf_push_pub(sl__cf_buf *b, const char *channel, const sl__cf_pub *pub)
{
    size_t start = begin_push(b, channel, "pub");
    publication(b, pub);
    put(b, "}", 1);
    return end(b, start);
}

static int push_info(sl__cf_buf *b, const char *channel, const char *kind,
                     const sl__cf_client_info *info)
{
    size_t start = begin_push(b, channel, kind);
    put(b, "{\"info\":", 8);
    client_info(b, info);
    put(b, "}}", 2);
    return end(b, start);
}

int sl__cf_push_join(sl__cf_buf *b, const char *channel, const sl__cf_client_info *info)
{
    return push_info(b, channel, "join", info);
}

int sl__cf_push_leave(sl__cf_buf *b, const char *channel, const sl__cf_client_info *info)
{
    return push_info(b, channel, "leave", info);
}

static void code_reason(sl__cf_buf *b, int code, const char *reason)
{
    bool f = true;
    put(b, "{", 1);
    kv_u64(b, &f, "code", (uint64_t)(code < 0 ? 0 : code));
    kv_str(b, &f, "reason", reason ? reason : sl__cf_code_message(code));
    put(b, "}", 1);
}

int sl__cf_push_unsubscribe(sl__cf_buf *b, const char *channel, int code, const char *reason)
{
    size_t start = begin_push(b, channel, "unsubscribe");
    code_reason(b, code, reason);
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_push_message(sl__cf_buf *b, const char *data, size_t data_len)
{
    size_t start = begin_push(b, NULL, "message");
    put(b, "{\"data\":", 8);
    if (data)
        put(b, data, data_len);
    else
        put(b, "null", 4);
    put(b, "}}", 2);
    return end(b, start);
}

int sl__cf_push_disconnect(sl__cf_buf *b, int code, const char *reason)
{
    size_t start = begin_push(b, NULL, "disconnect");
    code_reason(b, code, reason);
    put(b, "}", 1);
    return end(b, start);
}

int sl__cf_ping(sl__cf_buf *b)
{
    size_t start = begin(b);
    return end(b, start);
}
