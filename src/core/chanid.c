/* Channel ids and channel patterns. Ids are dot/colon-separated segments of [A-Za-z0-9_-] (the
 * first may start with '$'); patterns use the same segments plus "*" (one segment) and "**" (the
 * rest, possibly nothing). Both are checked byte by byte with no allocation, because every request
 * validates an id. An id (and a pattern whose last segment is literal) may end with '#' and a
 * comma-separated list of user ids: a user-limited channel (docs/POLICY.md). The list belongs to
 * the last segment, so matching never splits it (a user id may contain '.'). */
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

static int user_char(unsigned char c)
{
    return seg_char(c) || c == '.' || c == '@';
}

/* 1 when u[0..n) is a comma-separated list of user ids, none empty. */
static int users_valid(const char *u, size_t n)
{
    if (n == 0)
        return 0;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (u[i] == ',') {
            if (run == 0)
                return 0;
            run = 0;
        } else if (user_char((unsigned char)u[i])) {
            run++;
        } else {
            return 0;
        }
    }
    return run > 0;
}

/* The length of id's part before a '#' (len when there is none). */
static size_t base_len(const char *id, size_t len)
{
    const char *h = memchr(id, '#', len);
    return h ? (size_t)(h - id) : len;
}

int sl_channel_id_valid(const char *id, size_t len)
{
    if (id == NULL || len == 0 || len > SL_CHANNEL_ID_MAX)
        return 0;
    size_t base = base_len(id, len);
    if (base < len && !users_valid(id + base + 1, len - base - 1))
        return 0;
    len = base;
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
    size_t base = base_len(pat, len);
    if (base < len) {
        /* "inbox#alice": the user list is literal and follows a literal segment */
        if (!users_valid(pat + base + 1, len - base - 1) || base == 0 || pat[base - 1] == '*')
            return 0;
        len = base;
    }
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

/* Length of the segment starting at s (up to a separator or the end; a '#' user list is part of
 * the segment it ends). */
static size_t seglen(const char *s)
{
    size_t n = 0;
    while (s[n] && !is_sep(s[n]))
        if (s[n++] == '#')
            return n + strlen(s + n);
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

const char *sl_channel_users(const char *id)
{
    const char *h = id ? strchr(id, '#') : NULL;
    return h ? h + 1 : NULL;
}

int sl_channel_user_listed(const char *id, const char *user)
{
    const char *u = sl_channel_users(id);
    size_t n = user ? strlen(user) : 0;
    if (u == NULL || n == 0)
        return 0;
    for (;;) {
        const char *comma = strchr(u, ',');
        size_t k = comma ? (size_t)(comma - u) : strlen(u);
        if (k == n && memcmp(u, user, n) == 0)
            return 1;
        if (comma == NULL)
            return 0;
        u = comma + 1;
    }
}

int sl_channel_user_valid(const char *user, size_t len)
{
    if (user == NULL || len == 0 || len > SL_PRINCIPAL_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!user_char((unsigned char)user[i]))
            return 0;
    return 1;
}
