/* Channel ids and channel patterns. Ids are dot/colon-separated segments of [A-Za-z0-9_-] (the
 * first may start with '$'); patterns use the same segments plus "*" (one segment) and "**" (the
 * rest, possibly nothing). Both are checked byte by byte with no allocation, because every request
 * validates an id. */
#include <sluice/sluice.h>

#include <string.h>

static int seg_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static int is_sep(char c)
{
    return c == '.' || c == ':';
}

int sl_channel_id_valid(const char *id, size_t len)
{
    if (id == NULL || len == 0 || len > SL_CHANNEL_ID_MAX)
        return 0;
    size_t seg = 0, i = id[0] == '$'; /* "$" marks a channel needing a subscription token */
    for (; i < len; i++) {
        if (is_sep(id[i])) {
            if (seg == 0)
                return 0;
            seg = 0;
        } else if (seg_char((unsigned char)id[i])) {
            seg++;
        } else {
            return 0;
        }
    }
    return seg > 0;
}

int sl_pattern_valid(const char *pat, size_t len)
{
    if (pat == NULL || len == 0 || len > SL_CHANNEL_ID_MAX)
        return 0;
    size_t start = pat[0] == '$';
    for (size_t i = start; i <= len; i++) {
        if (i < len && !is_sep(pat[i]))
            continue;
        size_t n = i - start;
        const char *s = pat + start;
        if (n == 0)
            return 0;
        if (s[0] == '*') {
            if (!(n == 1 || (n == 2 && s[1] == '*')))
                return 0;
            if (n == 2 && i != len) /* "**" only at the end */
                return 0;
        } else {
            for (size_t k = 0; k < n; k++)
                if (!seg_char((unsigned char)s[k]))
                    return 0;
        }
        start = i + 1;
    }
    return 1;
}

/* Length of the segment starting at s (up to a separator or the end). */
static size_t seglen(const char *s)
{
    size_t n = 0;
    while (s[n] && !is_sep(s[n]))
        n++;
    return n;
}

int sl_pattern_match(const char *pat, const char *ch)
{
    if (pat == NULL || ch == NULL)
        return 0;
    for (;;) {
        size_t pn = seglen(pat), cn = seglen(ch);
        if (pn == 2 && pat[0] == '*' && pat[1] == '*')
            return 1;
        if (cn == 0 && ch[0] == '\0')
            return 0; /* channel ran out before the pattern */
        if (!(pn == 1 && pat[0] == '*') && (pn != cn || memcmp(pat, ch, pn) != 0))
            return 0;
        pat += pn;
        ch += cn;
        if (*pat == '\0' && *ch == '\0')
            return 1;
        if (*pat == '\0' || *ch == '\0') {
            /* "a.**" also matches "a": ** matches nothing. */
            return *ch == '\0' && pat[1] == '*' && pat[2] == '*' && pat[3] == '\0';
        }
        pat++; /* separators are interchangeable: '.' and ':' both split */
        ch++;
    }
}
