/* Fuzz target: sluiced's log line writer, request-id rules and access-log query redaction
 * (src/server/log.c). The input's first byte picks the format and the buffer size, the rest is
 * split at the first NUL into a message and a field value (any bytes a client could put in a path
 * or a header). Checked: the line fits its buffer, ends in its only newline, and holds no other
 * control byte; a JSON line parses (jansson refuses invalid UTF-8) to an object whose msg is the
 * message itself when that was valid UTF-8 and not cut; a request id is kept exactly when it is
 * 1..64 bytes of [A-Za-z0-9._-], else replaced by 16 hex digits; and in a redacted query every
 * value left is that of a parameter known to hold no secret. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/log.h"

static const char *const public_names[] = {"limit",     "exclusive", "after",  "max_bytes",
                                           "principal", "prefix",    "kind",   "offset",
                                           "cursor",    "since",     "before", "channel"};

static int is_public(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof public_names / sizeof *public_names; i++)
        if (strlen(public_names[i]) == n && !memcmp(public_names[i], s, n))
            return 1;
    return 0;
}

static int utf8_clean(const char *s)
{
    json_t *j = json_string(s); /* jansson validates UTF-8 */
    json_decref(j);
    return j != NULL;
}

static void check_line(int fmt, const char *line, size_t n, size_t cap, const char *msg)
{
    if (n == 0 || n >= cap || strlen(line) != n || line[n - 1] != '\n')
        abort();
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            abort();
    if (fmt != SL__LOG_JSON)
        return;
    json_t *o = json_loadb(line, n, 0, NULL);
    if (!json_is_object(o))
        abort();
    const char *m = json_string_value(json_object_get(o, "msg"));
    if (m == NULL || json_string_value(json_object_get(o, "ts")) == NULL)
        abort();
    size_t ml = strlen(m);
    int cut = ml >= 3 && !strcmp(m + ml - 3, "...");
    if (utf8_clean(msg) && !cut && strcmp(m, msg) != 0)
        abort();
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int fmt = data[0] & 1;
    size_t cap = 256 + (size_t)(data[0] >> 1) * 61; /* 256 .. 8000 */
    char *text = malloc(size + 1);
    char *line = malloc(cap);
    if (text == NULL || line == NULL)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    const char *msg = text, *value = text + strlen(text) + (strlen(text) < size - 1 ? 1 : 0);

    sl__log_field f[] = {
        {.key = "request_id", .type = SL__LF_STR, .str = value},
        {.key = "status", .type = SL__LF_INT, .num = (long long)size * -7919},
        {.key = "duration_ms", .type = SL__LF_MS, .ms = (double)size / 3},
        {.key = "path", .type = SL__LF_STR, .str = msg},
    };
    size_t n = sl__log_render(fmt, (int64_t)size * 1000003, SL__LOG_INFO, msg, f, 4, line, cap);
    check_line(fmt, line, n, cap, msg);

    /* request ids: the value's bytes as a header (NULs included) */
    size_t vlen = size - 1 - (size_t)(value - text);
    char id[SL__REQUEST_ID_MAX + 1];
    sl__request_id_take(NULL, value, vlen, id);
    int valid = vlen >= 1 && vlen <= SL__REQUEST_ID_MAX;
    for (size_t i = 0; valid && i < vlen; i++)
        valid = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                       value[i]) != NULL &&
                value[i] != '\0';
    if (valid != sl__request_id_valid(value, vlen))
        abort();
    if (valid ? (strlen(id) != vlen || memcmp(id, value, vlen) != 0)
              : (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16))
        abort();

    /* the query: every value kept belongs to a public parameter */
    char q[512];
    size_t qn = sl__log_query_redact(msg, strlen(msg), q, 1 + (size % sizeof q));
    if (qn != strlen(q) || qn > size % sizeof q)
        abort();
    for (char *p = q; *p;) {
        char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && !is_public(p, (size_t)(eq - p)) &&
            ((size_t)(end - eq - 1) != 8 || memcmp(eq + 1, "REDACTED", 8) != 0))
            abort();
        if (!eq && !is_public(p, (size_t)(end - p)) && !(end - p == 1 && *p == '_'))
            abort();
        p = amp ? amp + 1 : end;
    }
    free(line);
    free(text);
    return 0;
}
