/* Raw JSON spans (see jsonspan.h): the member lookup the WebSocket codec and the C client share. */
#include "core/jsonspan.h"

#include <jansson.h>

#include <string.h>

const char *sl__json_skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* p at the opening quote; returns the byte after the closing one. */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e && *p != '"'; p++)
        if (*p == '\\')
            p++;
    return p < e ? p + 1 : e;
}

const char *sl__json_skip_value(const char *p, const char *e)
{
    if (p >= e)
        return e;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < e) {
            if (*p == '"') {
                p = skip_string(p, e);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return e;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r' &&
           *p != '\n')
        p++;
    return p;
}

/* Whether the key token [k, ke) (quotes included) decodes to key. */
static int key_equals(const char *k, const char *ke, const char *key)
{
    size_t raw = (size_t)(ke - k) - 2, klen = strlen(key);
    if (memchr(k, '\\', (size_t)(ke - k)) == NULL)
        return raw == klen && memcmp(k + 1, key, klen) == 0;
    json_t *s = json_loadb(k, (size_t)(ke - k), JSON_DECODE_ANY, NULL);
    int eq = json_is_string(s) && json_string_length(s) == klen &&
             memcmp(json_string_value(s), key, klen) == 0;
    json_decref(s);
    return eq;
}

int sl__json_member(const char *p, const char *e, const char *key, const char **vs, const char **ve)
{
    int found = 0;
    p = sl__json_skip_ws(p, e);
    if (p >= e || *p != '{')
        return 0;
    for (p = sl__json_skip_ws(p + 1, e); p < e && *p == '"';) {
        const char *k = p, *ke = skip_string(p, e);
        p = sl__json_skip_ws(ke, e);
        if (p >= e || *p != ':')
            break;
        const char *v = sl__json_skip_ws(p + 1, e), *end = sl__json_skip_value(v, e);
        if (key_equals(k, ke, key)) {
            *vs = v;
            *ve = end;
            found = 1;
        }
        p = sl__json_skip_ws(end, e);
        if (p < e && *p == ',')
            p = sl__json_skip_ws(p + 1, e);
    }
    return found;
}
