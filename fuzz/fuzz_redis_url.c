/* Fuzz target: the Redis engine URL (sl__redis_url_parse in src/store/redis_url.c), which comes
 * from the configuration, and the shard ring built from what it accepts. Checked: a rejection
 * leaves the output empty, gives a reason, and the reason never repeats the credentials part of
 * the text; an acceptance gives 1..SL__REDIS_SHARDS_MAX shards with a non-empty lower-case host
 * (name characters, or an IPv6 address), a port in 1..65535, a db in 0..15, a user and password
 * that are NULL or non-empty, a password whenever there is a user, and no shard named twice; the
 * URL written back from the parsed fields (user and password percent-encoded) parses to the same
 * fields; the ring puts any id on one of the shards. The single-Redis parser (sl__redis_addr_parse,
 * the revocation store's URL) accepts only what the list parser accepts as one shard, with the
 * same fields, and refuses with a reason under the same rule; a shard written with its password
 * masked (sl__redis_addr_masked, what the configuration reads back) parses again to the same
 * text. The text as a key prefix (sl__redis_scope, every pub/sub channel name's start): refused
 * exactly when empty, longer than 64 bytes or holding '@'; else on db 0 the prefix itself and on
 * db N "<prefix>@N", which splits at its one '@' back into that prefix and db, so no two
 * (prefix, db) pairs share a scope. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_conn.h"

static int streq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static size_t pct_encode(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        out[o++] = '%';
        out[o++] = hex[*p >> 4];
        out[o++] = hex[*p & 15];
    }
    return o;
}

static void check_shard(const sl__redis_addr *a)
{
    size_t n = strlen(a->host);
    if (n == 0 || n > SL__REDIS_HOST_MAX || a->port < 1 || a->port > 65535 || a->db < 0 ||
        a->db > 15)
        abort();
    if (strchr(a->host, ':') != NULL) {
        struct in6_addr x;
        if (inet_pton(AF_INET6, a->host, &x) != 1)
            abort();
    } else {
        for (size_t i = 0; i < n; i++) {
            char c = a->host[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                  c == '_'))
                abort();
        }
    }
    if ((a->user != NULL && a->user[0] == '\0') ||
        (a->password != NULL && a->password[0] == '\0') || (a->user != NULL && a->password == NULL))
        abort();
}

/* The credentials of the first URL must not be in a reason, when long enough to be told from the
 * wording. */
static void check_reason(const char *text, const char *reason)
{
    const char *s = strstr(text, "://"), *at = s ? strrchr(s, '@') : NULL;
    const char *comma = s ? strchr(s, ',') : NULL;
    if (s != NULL && at != NULL && (comma == NULL || at < comma) && at - s - 3 >= 12) {
        char creds[64];
        size_t n = (size_t)(at - s - 3);
        if (n >= sizeof creds)
            n = sizeof creds - 1;
        memcpy(creds, s + 3, n);
        creds[n] = '\0';
        if (strstr(reason, creds) != NULL)
            abort();
    }
}

/* The masked URL of a: parses, and reads back the same. */
static void check_masked(const sl__redis_addr *a)
{
    char *m = sl__redis_addr_masked(a);
    sl__redis_addr b;
    if (m == NULL || sl__redis_addr_parse(m, "masked", &b, NULL) != SL_OK ||
        strcmp(a->host, b.host) != 0 || a->port != b.port || a->db != b.db ||
        (a->password != NULL && !streq(a->user, b.user)) ||
        (a->password == NULL) != (b.password == NULL) || (b.password && strcmp(b.password, "***")))
        abort();
    char *again = sl__redis_addr_masked(&b);
    if (again == NULL || strcmp(m, again) != 0)
        abort();
    free(again);
    free(m);
    sl__redis_addr_clear(&b);
}

/* One Redis: as the list parser's single shard, or refused. */
static void check_one(const char *text, const sl__redis_url *u, int url_rc)
{
    sl__redis_addr a;
    sl_status st = {0};
    int rc = sl__redis_addr_parse(text, "revocation URL", &a, &st);
    if (rc != SL_OK) {
        if (rc != SL_EINVAL || st.code != rc || st.message[0] == '\0' || a.user != NULL ||
            a.password != NULL)
            abort();
        check_reason(text, st.message);
        return;
    }
    if (url_rc != SL_OK || u->n != 1)
        abort();
    const sl__redis_addr *b = &u->shards[0];
    if (strcmp(a.host, b->host) != 0 || a.port != b->port || a.db != b->db ||
        !streq(a.user, b->user) || !streq(a.password, b->password))
        abort();
    check_masked(&a);
    sl__redis_addr_clear(&a);
}

/* The text as a key prefix on every db. */
static void check_scope(const char *text)
{
    size_t n = strlen(text);
    int ok = n > 0 && n <= 64 && strchr(text, '@') == NULL;
    for (int db = 0; db <= 15; db++) {
        char buf[SL__REDIS_SCOPE_MAX + 1];
        int len = sl__redis_scope(buf, sizeof buf, text, db);
        if (!ok) {
            if (len != -1 || buf[0] != '\0')
                abort();
            continue;
        }
        if (len < 0 || (size_t)len != strlen(buf))
            abort();
        const char *at = strchr(buf, '@');
        if (db == 0 ? (at != NULL || strcmp(buf, text) != 0)
                    : (at == NULL || strchr(at + 1, '@') != NULL || (size_t)(at - buf) != n ||
                       memcmp(buf, text, n) != 0 || atoi(at + 1) != db))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    check_scope(text);
    sl__redis_url u;
    sl_status st = {0};
    int rc = sl__redis_url_parse(text, &u, &st);
    check_one(text, &u, rc);
    if (rc != SL_OK) {
        if (rc != SL_EINVAL || u.shards != NULL || u.n != 0 || st.code != rc ||
            st.message[0] == '\0')
            abort();
        check_reason(text, st.message);
        free(text);
        return 0;
    }
    if (u.n < 1 || u.n > SL__REDIS_SHARDS_MAX || u.shards == NULL)
        abort();
    char ni[SL__REDIS_HOST_MAX + 40], nj[SL__REDIS_HOST_MAX + 40];
    for (size_t i = 0; i < u.n; i++) {
        check_shard(&u.shards[i]);
        check_masked(&u.shards[i]);
        sl__redis_addr_name(&u.shards[i], ni, sizeof ni);
        for (size_t j = 0; j < i; j++) {
            sl__redis_addr_name(&u.shards[j], nj, sizeof nj);
            if (strcmp(ni, nj) == 0)
                abort();
        }
    }
    /* written back and parsed again */
    size_t cap = 16 + size * 4 + u.n * (SL__REDIS_HOST_MAX + 64);
    char *back = malloc(cap);
    if (back == NULL)
        abort();
    size_t o = 0;
    for (size_t i = 0; i < u.n; i++) {
        const sl__redis_addr *a = &u.shards[i];
        o += (size_t)snprintf(back + o, cap - o, "%sredis://", i ? "," : "");
        if (a->password != NULL) {
            if (a->user != NULL)
                o += pct_encode(back + o, a->user);
            back[o++] = ':';
            o += pct_encode(back + o, a->password);
            back[o++] = '@';
        }
        sl__redis_addr_name(a, back + o, cap - o); /* host:port/db */
        o += strlen(back + o);
    }
    back[o] = '\0';
    sl__redis_url v;
    if (sl__redis_url_parse(back, &v, &st) != SL_OK || v.n != u.n)
        abort();
    for (size_t i = 0; i < u.n; i++) {
        const sl__redis_addr *a = &u.shards[i], *b = &v.shards[i];
        if (strcmp(a->host, b->host) != 0 || a->port != b->port || a->db != b->db ||
            !streq(a->user, b->user) || !streq(a->password, b->password))
            abort();
    }
    sl__redis_url_clear(&v);
    free(back);
    sl__redis_ring *r;
    if (sl__redis_ring_new(&r, &u) != SL_OK)
        abort();
    if (sl__redis_ring_shard(r, text) >= u.n)
        abort();
    sl__redis_ring_free(r);
    sl__redis_url_clear(&u);
    free(text);
    return 0;
}
