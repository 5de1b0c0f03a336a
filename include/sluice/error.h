/* One error type for all of sluice: negative codes from a single table that also gives each code
 * a stable name (used as the "error" field of JSON replies), a human message and the HTTP status a
 * network transport maps it to. Zero is success. Functions return these codes; where a caller needs
 * more detail (which channel, which claim), they also fill an sl_status. */
#ifndef SLUICE_ERROR_H
#define SLUICE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(symbol, value, http status, name, message) */
#define SL_ERRNO_MAP(X)                                                                            \
    X(EINVAL, -1, 400, "bad_request", "invalid argument")                                          \
    X(EBADID, -2, 400, "invalid_channel_id", "invalid channel id")                                 \
    X(EJSON, -3, 400, "bad_request", "malformed JSON")                                             \
    X(EKIND, -4, 400, "unsupported_operation", "operation not supported by this channel kind")     \
    X(ENOENT, -5, 404, "not_found", "not found")                                                   \
    X(EEXIST, -6, 409, "conflict", "already exists")                                               \
    X(EFULL, -7, 429, "channel_full", "channel is full")                                           \
    X(EUNAUTH, -8, 401, "unauthorized", "authentication required")                                 \
    X(ETOKEN, -9, 401, "invalid_token", "invalid token")                                           \
    X(EEXPIRED, -10, 401, "invalid_token", "token expired")                                        \
    X(EFORBIDDEN, -11, 403, "forbidden", "permission denied")                                      \
    X(ETOOBIG, -12, 413, "payload_too_large", "payload too large")                                 \
    X(ENOMEM, -13, 500, "internal", "out of memory")                                               \
    X(EIO, -14, 500, "internal", "input/output error")                                             \
    X(EUNAVAIL, -15, 503, "unavailable", "service unavailable")                                    \
    X(ECONFIG, -16, 500, "config", "invalid configuration")                                        \
    X(EWEAKKEY, -17, 500, "config", "secret shorter than 32 bytes")                                \
    X(ETIMEOUT, -18, 408, "timeout", "request timeout")                                            \
    X(EHEADERS, -19, 431, "headers_too_large", "request header fields too large")                  \
    X(EMETHOD, -20, 405, "method_not_allowed", "method not allowed")                               \
    X(ELIMIT, -21, 503, "limit", "resource limit reached")                                         \
    X(EINTERNAL, -22, 500, "internal", "internal error")                                           \
    X(ESTORAGE, -23, 507, "insufficient_storage", "the store could not make the change durable")   \
    X(EFORMAT, -24, 500, "store_format", "the data directory is not in a format this build reads") \
    /* a workspace's own limit (channels, connections, commands per second) */                     \
    X(EQUOTA, -25, 429, "workspace_limit", "workspace limit reached")

typedef enum {
    SL_OK = 0,
#define SL__ERR_ENUM(sym, val, http, name, msg) SL_##sym = (val),
    SL_ERRNO_MAP(SL__ERR_ENUM)
#undef SL__ERR_ENUM
} sl_errno;

/* Static strings; never NULL (an unknown code gets "unknown error"). */
const char *sl_strerror(int code);
const char *sl_err_name(int code);
int sl_err_http_status(int code);

/* A code plus a human message with the specifics ("'rogue-process' is not authorised to read from
 * channel 'jobs'."). Lives on the caller's stack; never holds a secret. */
typedef struct sl_status {
    int code;
    char message[384];
} sl_status;

/* Sets st->code = code and formats st->message (printf-style); returns code. NULL st is allowed. */
int sl_status_set(sl_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sl_status_clear(sl_status *st);

#ifdef __cplusplus
}
#endif
#endif
