/* The error table: names, messages and HTTP statuses for every sl_errno, all from SL_ERRNO_MAP so
 * that the three can never drift apart. */
#include <sluice/error.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *sl_strerror(int code)
{
    switch (code) {
    case SL_OK:
        return "success";
#define X(sym, val, http, name, msg)                                                               \
    case SL_##sym:                                                                                 \
        return msg;
        SL_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

const char *sl_err_name(int code)
{
    switch (code) {
    case SL_OK:
        return "ok";
#define X(sym, val, http, name, msg)                                                               \
    case SL_##sym:                                                                                 \
        return name;
        SL_ERRNO_MAP(X)
#undef X
    }
    return "internal";
}

int sl_err_http_status(int code)
{
    switch (code) {
    case SL_OK:
        return 200;
#define X(sym, val, http, name, msg)                                                               \
    case SL_##sym:                                                                                 \
        return http;
        SL_ERRNO_MAP(X)
#undef X
    }
    return 500;
}

int sl_status_set(sl_status *st, int code, const char *fmt, ...)
{
    if (st == NULL)
        return code;
    st->code = code;
    if (fmt == NULL) {
        snprintf(st->message, sizeof st->message, "%s", sl_strerror(code));
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof st->message, fmt, ap);
    va_end(ap);
    return code;
}

void sl_status_clear(sl_status *st)
{
    if (st) {
        st->code = SL_OK;
        st->message[0] = '\0';
    }
}
