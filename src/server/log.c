/* sluiced's log: the line renderer (text and JSON, escaping every byte a client could choose), the
 * request-id rules, the query redaction of the access log, and the logger that writes lines to
 * stderr or a file reopened on SIGHUP. Each line is one write(2) on a descriptor opened O_APPEND,
 * so lines of concurrent writers (a rotated file's new owner, an operator's tail) never interleave
 * mid-line. Writing is synchronous like the stderr lines it replaces: a line is small, and a log
 * that silently dropped records under load would hide the very incidents it is kept for. */
#include "server/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

struct sl__log {
    sl__log_format format;
    sl__log_level level;
    int access;
    char *path; /* NULL: stderr */
    int fd;
    /* Request ids: a random start, then a counter through a bijective mix, so ids are unique in
     * the process and look random, without a trip through the CSPRNG for every request (which
     * cost several per cent of a PUT). They are names, not secrets. */
    uint64_t id_seed, id_next;
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int sl__log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, level_names[i]))
            return i;
    return -1;
}

const char *sl__log_level_name(sl__log_level lv)
{
    return (unsigned)lv < 4 ? level_names[lv] : "info"; /* SL__LOG_START too */
}

int sl__log_format_parse(const char *s)
{
    if (s && !strcmp(s, "text"))
        return SL__LOG_TEXT;
    if (s && !strcmp(s, "json"))
        return SL__LOG_JSON;
    return -1;
}

/* ---- rendering --------------------------------------------------------------------------------
 */

/* An output buffer that keeps room for the record's end: put fails (and marks the record cut)
 * instead of writing past limit. */
typedef struct out {
    char *buf;
    size_t len, limit;
    int cut;
} out;

static int put(out *o, const char *s, size_t n)
{
    if (o->cut || o->len + n > o->limit) {
        o->cut = 1;
        return 0;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return 1;
}

static int puts_(out *o, const char *s)
{
    return put(o, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* s escaped for the format: JSON string contents (control bytes as \uXXXX, invalid UTF-8 as
 * U+FFFD), or text (control bytes, '\\', '"' and invalid bytes as \xNN / \\ / \"). A value that
 * does not fit ends with "..." at a character boundary. */
static void put_escaped(out *o, sl__log_format fmt, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    const size_t reserve = 3; /* "..." */
    o->limit -= reserve;
    for (size_t i = 0; i < n && !o->cut;) {
        char esc[8];
        const char *piece;
        size_t plen, used = 1;
        unsigned char c = s[i];
        size_t seq = utf8_seq(s + i, n - i);
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            piece = esc, plen = 2;
        } else if (c < 0x20 || c == 0x7F) {
            if (fmt == SL__LOG_JSON)
                plen = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
            else
                plen = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
            piece = esc;
        } else if (seq == 0) {
            piece = fmt == SL__LOG_JSON ? "\\ufffd" : esc;
            plen = fmt == SL__LOG_JSON ? 6 : (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
        } else {
            piece = str + i, plen = used = seq;
        }
        if (put(o, piece, plen))
            i += used;
    }
    o->limit += reserve;
    if (o->cut) {
        o->cut = 0;
        put(o, "...", 3);
    }
}

static void put_ts(out *o, sl__log_format fmt, int64_t ts_ms)
{
    time_t secs = (time_t)(ts_ms / 1000);
    struct tm tm;
    char ts[40];
    gmtime_r(&secs, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(ts_ms % 1000));
    if (fmt == SL__LOG_JSON) {
        puts_(o, "{\"ts\":\"");
        puts_(o, ts);
        puts_(o, "\"");
    } else {
        puts_(o, ts);
    }
}

/* A text value needs quotes when it is empty or holds a space, '=' or '"'. */
static int text_quoted(const char *s)
{
    return *s == '\0' || strpbrk(s, " =\"") != NULL;
}

size_t sl__log_render(sl__log_format fmt, int64_t ts_ms, sl__log_level lv, const char *msg,
                      const sl__log_field *fields, size_t nfields, char *buf, size_t cap)
{
    /* The end of a record ("}\n" or "\n", and the NUL) always fits: the limit keeps room for it,
     * and each field's punctuation is checked before its value is written. */
    out o = {.buf = buf, .len = 0, .limit = cap - 3};
    int json = fmt == SL__LOG_JSON;
    put_ts(&o, fmt, ts_ms < 0 ? 0 : ts_ms);
    puts_(&o, json ? ",\"level\":\"" : " ");
    puts_(&o, sl__log_level_name(lv));
    puts_(&o, json ? "\",\"msg\":\"" : " ");
    /* The message may take all but room for the fields' keys: cut it at half the line at most
     * when fields follow, so that a long message cannot push the request id out. */
    size_t keep = o.limit;
    if (nfields && o.limit > o.len + (cap / 2))
        o.limit = o.len + cap / 2;
    put_escaped(&o, fmt, msg ? msg : "");
    o.limit = keep;
    o.cut = 0;
    if (json)
        puts_(&o, "\"");
    for (size_t i = 0; i < nfields; i++) {
        const sl__log_field *f = &fields[i];
        char num[48];
        if (f->type == SL__LF_STR && f->str == NULL)
            continue;
        if (f->type == SL__LF_INT)
            snprintf(num, sizeof num, "%lld", f->num);
        else if (f->type == SL__LF_MS)
            snprintf(num, sizeof num, "%.3f", f->ms >= 0 && f->ms < 1e12 ? f->ms : 0.0);
        /* key, separator and the value's quotes, plus "..." if the value is cut */
        size_t need = strlen(f->key) + 8 + (f->type == SL__LF_STR ? 3 : strlen(num));
        if (o.len + need > o.limit)
            break;
        int quote = f->type == SL__LF_STR && (json || text_quoted(f->str));
        puts_(&o, json ? ",\"" : " ");
        puts_(&o, f->key);
        puts_(&o, json ? "\":" : "=");
        if (quote)
            puts_(&o, "\"");
        if (f->type == SL__LF_STR) {
            o.limit -= quote; /* room for the closing quote */
            put_escaped(&o, fmt, f->str);
            o.limit += quote;
            o.cut = 0;
        } else {
            puts_(&o, num);
        }
        if (quote)
            puts_(&o, "\"");
    }
    o.limit = cap - 1;
    o.cut = 0;
    if (json)
        puts_(&o, "}");
    puts_(&o, "\n");
    buf[o.len] = '\0';
    return o.len;
}

/* ---- request ids ------------------------------------------------------------------------------
 */

int sl__request_id_valid(const char *s, size_t n)
{
    if (s == NULL || n == 0 || n > SL__REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* splitmix64's finaliser: a bijection of 64-bit values, so distinct counters give distinct ids. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sl__request_id_take(sl__log *log, const char *hdr, size_t n, char id[SL__REQUEST_ID_MAX + 1])
{
    if (sl__request_id_valid(hdr, n)) {
        memcpy(id, hdr, n);
        id[n] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[8];
    if (log != NULL) {
        uint64_t v = mix64(log->id_seed + log->id_next++);
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)(v >> (8 * i));
    } else if (RAND_bytes(rnd, sizeof rnd) != 1) { /* not a secret: the clock will do */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        uint64_t v = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)(v >> (8 * i));
    }
    for (size_t i = 0; i < sizeof rnd; i++) {
        id[2 * i] = hex[rnd[i] >> 4];
        id[2 * i + 1] = hex[rnd[i] & 15];
    }
    id[2 * sizeof rnd] = '\0';
}

/* Query parameters whose values are never a credential (the HTTP API's own). */
static int query_name_public(const char *s, size_t n)
{
    static const char *const names[] = {"limit",     "exclusive", "after",  "max_bytes",
                                        "principal", "prefix",    "kind",   "offset",
                                        "cursor",    "since",     "before", "channel"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], s, n))
            return 1;
    return 0;
}

static int query_name_plain(const char *s, size_t n)
{
    if (n == 0 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

size_t sl__log_query_redact(const char *q, size_t n, char *outbuf, size_t cap)
{
    if (cap == 0)
        return 0;
    out o = {.buf = outbuf, .len = 0, .limit = cap - 1};
    for (size_t i = 0; i < n;) {
        const char *amp = memchr(q + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - q) : n;
        const char *p = q + i, *eq = memchr(p, '=', end - i);
        size_t nlen = eq ? (size_t)(eq - p) : end - i;
        if (end > i) {
            size_t mark = o.len;
            if (o.len > 0)
                put(&o, "&", 1);
            /* a bare word that is not one of ours may be a credential pasted alone */
            if (query_name_plain(p, nlen) && (eq || query_name_public(p, nlen)))
                put(&o, p, nlen);
            else
                put(&o, "_", 1);
            if (eq && query_name_plain(p, nlen) && query_name_public(p, nlen))
                put(&o, eq, (size_t)(q + end - eq));
            else if (eq)
                put(&o, "=REDACTED", 9);
            if (o.cut) { /* a parameter is logged whole or not at all */
                o.len = mark;
                break;
            }
        }
        i = end + 1;
    }
    outbuf[o.len] = '\0';
    return o.len;
}

/* ---- the logger ------------------------------------------------------------------------------ */

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int sl__log_open(sl__log **outp, const sl__log_opts *o, sl_status *st)
{
    sl__log *l = calloc(1, sizeof *l);
    if (l == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    l->format = o->format;
    l->level = o->level;
    l->access = o->access;
    l->fd = STDERR_FILENO;
    if (RAND_bytes((unsigned char *)&l->id_seed, sizeof l->id_seed) != 1)
        l->id_seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    if (o->path) {
        if ((l->path = strdup(o->path)) == NULL) {
            free(l);
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        if ((l->fd = open_file(l->path)) < 0) {
            int e = errno;
            free(l->path);
            free(l);
            return sl_status_set(st, SL_ECONFIG, "log_file %s: %s", o->path, strerror(e));
        }
    }
    *outp = l;
    return SL_OK;
}

void sl__log_free(sl__log *l)
{
    if (l == NULL)
        return;
    if (l->path && l->fd >= 0)
        close(l->fd);
    free(l->path);
    free(l);
}

int sl__log_reopen(sl__log *l, sl_status *st)
{
    if (l == NULL || l->path == NULL)
        return SL_OK;
    int fd = open_file(l->path);
    if (fd < 0)
        return sl_status_set(st, SL_EIO, "cannot reopen the log file %s: %s", l->path,
                             strerror(errno));
    /* The new file takes the old descriptor's number, so a line written at the same time from
     * another thread (the store's commit thread, through core/logsink.h) lands in one of the
     * two files, never in a descriptor closed or reused meanwhile. */
    if (dup2(fd, l->fd) < 0) {
        int e = errno;
        close(fd);
        return sl_status_set(st, SL_EIO, "cannot reopen the log file %s: %s", l->path, strerror(e));
    }
    close(fd);
    return SL_OK;
}

int sl__log_enabled(const sl__log *l, sl__log_level lv)
{
    return lv == SL__LOG_START || lv >= (l ? l->level : SL__LOG_WARN);
}

int sl__log_access_on(const sl__log *l)
{
    return l && l->access;
}

int sl__log_to_stderr(const sl__log *l)
{
    return l == NULL || l->path == NULL;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void emit(sl__log *l, const char *line, size_t len)
{
    int fd = l ? l->fd : STDERR_FILENO;
    while (len > 0) { /* a short write to a pipe or a full disk: the rest, or give up */
        ssize_t w = write(fd, line, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        line += w;
        len -= (size_t)w;
    }
}

static void write_record(sl__log *l, sl__log_level lv, const char *request_id, const char *msg,
                         const sl__log_field *fields, size_t nfields, int force)
{
    if (!force && !sl__log_enabled(l, lv))
        return;
    /* the request id first, so that it survives any cut */
    sl__log_field all[16];
    size_t n = 0;
    if (request_id && *request_id)
        all[n++] = (sl__log_field){.key = "request_id", .type = SL__LF_STR, .str = request_id};
    for (size_t i = 0; i < nfields && n < sizeof all / sizeof *all; i++)
        all[n++] = fields[i];
    char line[SL__LOG_LINE_MAX];
    size_t len =
        sl__log_render(l ? l->format : SL__LOG_TEXT, now_ms(), lv, msg, all, n, line, sizeof line);
    emit(l, line, len);
    if (lv == SL__LOG_START && l && l->path) /* whoever started sluiced sees where it listens */
        emit(NULL, line, len);
}

void sl__log_write(sl__log *l, sl__log_level lv, const char *request_id, const char *msg,
                   const sl__log_field *fields, size_t nfields)
{
    write_record(l, lv, request_id, msg, fields, nfields, 0);
}

void sl__logf(sl__log *l, sl__log_level lv, const char *request_id, const char *fmt, ...)
{
    if (!sl__log_enabled(l, lv))
        return;
    char msg[SL__LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    write_record(l, lv, request_id, msg, NULL, 0, 0);
}

void sl__log_access(sl__log *l, const sl__log_access_rec *a)
{
    if (!sl__log_access_on(l))
        return;
    char query[1024];
    sl__log_query_redact(a->query ? a->query : "", a->query ? a->query_len : 0, query,
                         sizeof query);
    sl__log_field f[] = {
        {.key = "method", .type = SL__LF_STR, .str = a->method},
        {.key = "path", .type = SL__LF_STR, .str = a->path},
        {.key = "query", .type = SL__LF_STR, .str = query[0] ? query : NULL},
        {.key = "status", .type = SL__LF_INT, .num = a->status},
        {.key = "duration_ms", .type = SL__LF_MS, .ms = a->duration_ms},
        {.key = "bytes", .type = SL__LF_INT, .num = (long long)a->bytes},
        {.key = "principal",
         .type = SL__LF_STR,
         .str = a->principal && *a->principal ? a->principal : NULL},
        {.key = "remote", .type = SL__LF_STR, .str = a->remote},
    };
    write_record(l, SL__LOG_INFO, a->request_id, "access", f, sizeof f / sizeof *f, 1);
}
