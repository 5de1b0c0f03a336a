/* sluiced's own log (docs/OPERATIONS.md, "Logs"): levels, one line per record as text or as one
 * JSON object, to stderr or a file that SIGHUP reopens (rotation), and the optional access log
 * (one line per HTTP request). A logger is an object the server owns and lends to the parts that
 * write (router, main's callbacks); there is no global one. The line renderer does no I/O and is
 * tested and fuzzed on its own: every byte a caller hands it (a client's path, a reason) comes out
 * escaped, so no record can forge another line, and invalid UTF-8 becomes U+FFFD in JSON.
 * Credentials never reach a logger: callers pass paths without their query's secrets
 * (sl__log_query_redact) and reasons that name no token, key or signature. */
#ifndef SLUICE_SERVER_LOG_H
#define SLUICE_SERVER_LOG_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>

typedef enum sl__log_level {
    SL__LOG_DEBUG = 0,
    SL__LOG_INFO,
    SL__LOG_WARN,
    SL__LOG_ERROR,
    /* the start-up lines (where sluiced listens): written at any level, shown as info, and on
     * stderr too when the log is a file */
    SL__LOG_START,
} sl__log_level;

typedef enum sl__log_format {
    SL__LOG_TEXT = 0, /* "2026-12-05T13:00:00.123Z info MSG key=value ..." */
    SL__LOG_JSON,     /* {"ts":"...","level":"info","msg":"MSG","key":"value",...} */
} sl__log_format;

/* "debug" | "info" | "warn" | "error" -> level; -1 for anything else. */
int sl__log_level_parse(const char *s);
const char *sl__log_level_name(sl__log_level lv);
/* "text" | "json" -> format; -1 for anything else. */
int sl__log_format_parse(const char *s);

/* ---- rendering (no I/O) ---------------------------------------------------------------------- */

/* One field of a record besides ts, level and msg. */
typedef struct sl__log_field {
    const char *key; /* a plain identifier (not escaped) */
    enum { SL__LF_STR, SL__LF_INT, SL__LF_MS } type;
    const char *str; /* SL__LF_STR: any bytes, NUL-terminated; NULL: the field is left out */
    long long num;   /* SL__LF_INT */
    double ms;       /* SL__LF_MS: milliseconds, three decimals */
} sl__log_field;

/* The longest line rendered (newline included); longer messages and values are cut short (at a
 * character boundary, marked "...") so that the line stays whole and valid. */
#define SL__LOG_LINE_MAX 8192

/* Renders one record, newline-terminated, into buf (cap bytes, at least 256) and returns its
 * length (buf is also NUL-terminated). ts_ms: milliseconds since the epoch (UTC, RFC 3339). */
size_t sl__log_render(sl__log_format fmt, int64_t ts_ms, sl__log_level lv, const char *msg,
                      const sl__log_field *fields, size_t nfields, char *buf, size_t cap);

/* ---- request ids ------------------------------------------------------------------------------
 */

typedef struct sl__log sl__log;

#define SL__REQUEST_ID_MAX 64

/* 1 when a client's X-Request-Id (s[0..n)) may be kept as it is: 1..SL__REQUEST_ID_MAX bytes of
 * [A-Za-z0-9._-]; else 0. */
int sl__request_id_valid(const char *s, size_t n);

/* Puts the request id into id: the client's (hdr[0..n), hdr may be NULL) when it is valid, else a
 * fresh one of 16 hex digits: from log's sequence (unique in the process, random-looking), or
 * from the CSPRNG when log is NULL. */
void sl__request_id_take(sl__log *log, const char *hdr, size_t n, char id[SL__REQUEST_ID_MAX + 1]);

/* The query string q[0..n) as it may be logged, into out (cap bytes, NUL-terminated, cut short when
 * it does not fit): the values of parameters known to carry nothing secret (limit, exclusive,
 * after, max_bytes, principal, ...) are kept, every other value becomes "REDACTED", and a name
 * that is not a plain identifier (or a bare word that is not one of those) becomes "_". Returns
 * the length written. */
size_t sl__log_query_redact(const char *q, size_t n, char *out, size_t cap);

/* ---- the logger ------------------------------------------------------------------------------ */


typedef struct sl__log_opts {
    sl__log_format format;
    sl__log_level level; /* records below it are dropped (the access log is not: see access) */
    const char *path;    /* the log file (appended to, created 0640); NULL: stderr */
    int access;          /* 1: one access line per request (sl__log_access), whatever level */
} sl__log_opts;

/* *out owned by the caller (sl__log_free). SL_ECONFIG with st when the file cannot be opened. */
int sl__log_open(sl__log **out, const sl__log_opts *o, sl_status *st);
void sl__log_free(sl__log *l);

/* SIGHUP: the file was moved aside (rotated); open a new one at the same path. When that fails the
 * current file stays in use and SL_EIO is returned with st. Nothing to do for stderr. */
int sl__log_reopen(sl__log *l, sl_status *st);

/* 1 when a record at lv would be written (l may be NULL: then only warn and above, on stderr). */
int sl__log_enabled(const sl__log *l, sl__log_level lv);
/* 1 when the access log is on. */
int sl__log_access_on(const sl__log *l);
/* 1 when the log writes to stderr (no file). */
int sl__log_to_stderr(const sl__log *l);

/* One record: request_id may be NULL (no request), fields may be NULL. l NULL: written as text to
 * stderr (start-up errors before the logger exists). */
void sl__log_write(sl__log *l, sl__log_level lv, const char *request_id, const char *msg,
                   const sl__log_field *fields, size_t nfields);
/* The same with a printf-formatted message (cut at SL__LOG_LINE_MAX). */
void sl__logf(sl__log *l, sl__log_level lv, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One access line: what sluiced knows of a request once it answered. */
typedef struct sl__log_access_rec {
    const char *request_id;
    const char *method;
    const char *path;  /* without the query */
    const char *query; /* the raw query ("" none): logged through sl__log_query_redact */
    size_t query_len;
    int status;            /* 101 for a WebSocket taken over */
    double duration_ms;    /* from the request's head being complete to the answer */
    size_t bytes;          /* the body sent */
    const char *principal; /* NULL or "": not authenticated */
    const char *remote;    /* "127.0.0.1:54321" */
} sl__log_access_rec;
void sl__log_access(sl__log *l, const sl__log_access_rec *a);

#endif
