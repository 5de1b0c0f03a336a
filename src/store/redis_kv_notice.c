/* The Redis kv's change notice (store/redis_kv.h): the decoder every node runs on what arrives on
 * `<scope>:kv`, and the encoder tests use (the kv's script writes the same format). No I/O, no
 * allocation: a fuzz target drives the decoder. Nothing a notice says is trusted: lengths are
 * bounded, tables must be the kv's own, and a malformed notice yields no entry at all. The list of
 * the kv's tables (sl__redis_kv_tables) is here too: the kv and its feed index the same one. */
#include "store/redis_kv.h"

#include <stdio.h>
#include <string.h>

const char *const sl__redis_kv_tables[] = {SL__KV_TABLE_NAMES};
_Static_assert(sizeof sl__redis_kv_tables / sizeof sl__redis_kv_tables[0] == SL__REDIS_KV_NTABLES,
               "one count of the kv's tables");

int sl__redis_kv_table_index(const char *t, size_t n)
{
    for (size_t i = 0; i < SL__REDIS_KV_NTABLES; i++)
        if (strlen(sl__redis_kv_tables[i]) == n && memcmp(sl__redis_kv_tables[i], t, n) == 0)
            return (int)i;
    return -1;
}

/* A decimal length followed by ':' at *p; -1 when malformed. */
static long read_len(const char *s, size_t len, size_t *p)
{
    size_t i = *p, digits = 0;
    long v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 5) {
        v = v * 10 + (s[i] - '0');
        i++;
        digits++;
    }
    if (digits == 0 || digits > 4 || (digits > 1 && s[*p] == '0') || i >= len || s[i] != ':')
        return -1;
    *p = i + 1;
    return v;
}

/* One entry at *p into it (advancing *p); -1 when malformed. */
static int read_item(const char *s, size_t len, size_t *p, sl__redis_kv_notice_item *it)
{
    long tl = read_len(s, len, p);
    if (tl <= 0 || (size_t)tl > len - *p)
        return -1;
    int t = sl__redis_kv_table_index(s + *p, (size_t)tl);
    if (t < 0)
        return -1;
    *p += (size_t)tl;
    long kl = read_len(s, len, p);
    if (kl < 0 || kl > SL__REDIS_KV_KEY_MAX || (size_t)kl > len - *p)
        return -1;
    it->table = sl__redis_kv_tables[t];
    it->key = kl ? s + *p : NULL;
    it->klen = (size_t)kl;
    *p += (size_t)kl;
    return 0;
}

int sl__redis_kv_notice_parse(const char *p, size_t len,
                              int (*fn)(void *ud, const sl__redis_kv_notice_item *it), void *ud)
{
    if (p == NULL || len == 0)
        return 0;
    sl__redis_kv_notice_item it;
    for (size_t at = 0; at < len;)
        if (read_item(p, len, &at, &it) < 0)
            return 0;
    for (size_t at = 0; at < len;) {
        read_item(p, len, &at, &it);
        if (fn(ud, &it) != 0)
            break;
    }
    return 1;
}

int sl__redis_kv_notice_add(char *buf, size_t cap, size_t *len, const char *table, const void *key,
                            size_t klen)
{
    size_t tl = table ? strlen(table) : 0;
    if (tl == 0 || sl__redis_kv_table_index(table, tl) < 0 || klen > SL__REDIS_KV_KEY_MAX)
        return -1;
    char head[32];
    int hn = snprintf(head, sizeof head, "%zu:%s", tl, table);
    char mid[16];
    int mn = snprintf(mid, sizeof mid, "%zu:", klen);
    if (*len + (size_t)hn + (size_t)mn + klen > cap)
        return -1;
    memcpy(buf + *len, head, (size_t)hn);
    memcpy(buf + *len + (size_t)hn, mid, (size_t)mn);
    if (klen)
        memcpy(buf + *len + (size_t)hn + (size_t)mn, key, klen);
    *len += (size_t)hn + (size_t)mn + klen;
    return 0;
}
