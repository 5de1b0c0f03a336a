/* Fuzz target: what the Redis revocation store (src/store/redis_revocation.c) makes of Redis's
 * replies and of the messages on its watch channel, which anyone able to write to that Redis can
 * publish. The input is a stream of RESP replies, parsed with hiredis's own reader as the store's
 * connection does; each reply (and each element of an array, a few levels down) is judged as a
 * check's answer for a token and for a user, and as a reply on the watch connection, whose
 * message is then parsed; the raw input is parsed as a message too. Checked: a check answers one of
 * its three statuses, a revocation always has a reason, and a reason taken from Redis has no
 * control bytes and fits SL_REVOCATION_REASON_MAX; a user cut-off that does not revoke is a plain
 * decimal earlier than the token; a message accepted is exactly "t <valid id>" or "u <decimal>
 * <valid user>", and the event holds those strings. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_internal.h"

#define ISSUED_AT 1700000000.5

static redisReplyObjectFunctions bounded;
static void *(*create_array)(const redisReadTask *, int);

/* hiredis 0.14 allocates an array's element table as declared ("*2000000000"): refuse large ones
 * here so the fuzzer explores the store's code rather than the allocator's limits. */
static void *small_array(const redisReadTask *t, int n)
{
    return n > 1024 ? NULL : create_array(t, n);
}

static int plain_decimal(const char *s, size_t n, double *out)
{
    size_t i = 0, d = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, d++;
    if (d == 0)
        return 0;
    if (i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return 0;
    }
    if (i != n)
        return 0;
    char buf[64];
    if (n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return 1;
}

static void check_message(const char *p, size_t len)
{
    sl_revocation_event ev;
    char buf[SL__REDIS_MSG_MAX + 1];
    if (!sl__redis_parse_message(p, len, &ev, buf))
        return;
    if ((ev.token_id == NULL) == (ev.user == NULL) || ev.resync)
        abort();
    if (ev.token_id) {
        size_t n = strlen(ev.token_id);
        if (p[0] != 't' || p[1] != ' ' || len != 2 + n || memcmp(p + 2, ev.token_id, n) != 0 ||
            !sl_revocation_id_valid(ev.token_id) || ev.cutoff != 0)
            abort();
    } else {
        size_t n = strlen(ev.user);
        const char *sp = memchr(p + 2, ' ', len - 2);
        double c;
        if (p[0] != 'u' || p[1] != ' ' || sp == NULL || (size_t)(p + len - sp - 1) != n ||
            memcmp(sp + 1, ev.user, n) != 0 || !sl_principal_valid(ev.user, n) ||
            !plain_decimal(p + 2, (size_t)(sp - p - 2), &c) || c != ev.cutoff ||
            !isfinite(ev.cutoff))
            abort();
    }
}

static void check_reply(const redisReply *r, int depth)
{
    for (int is_token = 0; is_token <= 1; is_token++) {
        const char *reason = (const char *)1;
        int st = sl__redis_check_reply(r, is_token, ISSUED_AT, &reason);
        if (st == SL_OK) {
            if (reason != NULL)
                abort();
            if (r->type != REDIS_REPLY_NIL) {
                double c;
                if (is_token || r->type != REDIS_REPLY_STRING ||
                    !plain_decimal(r->str, r->len, &c) || !(c < ISSUED_AT))
                    abort();
            }
        } else if (st == SL_ETOKEN) {
            size_t n = reason ? strlen(reason) : 0;
            if (reason == NULL || n == 0 || n > SL_REVOCATION_REASON_MAX)
                abort();
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f)
                    abort();
            if (reason == r->str && (!is_token || r->type != REDIS_REPLY_STRING || n != r->len))
                abort();
        } else if (st != SL_EUNAVAIL || reason != NULL) {
            abort();
        }
    }
    const redisReply *m;
    int kind = sl__redis_sub_reply(r, &m);
    if (kind == SL__REDIS_SUB_MESSAGE) {
        if (m == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || m != r->element[2])
            abort();
        if (m->type == REDIS_REPLY_STRING)
            check_message(m->str, m->len);
    } else if (m != NULL) {
        abort();
    }
    if (r->type == REDIS_REPLY_ARRAY && depth < 3)
        for (size_t i = 0; i < r->elements && i < 16; i++)
            check_reply(r->element[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_message((const char *)data, size);
    const char *why = (const char *)1;
    if (sl__redis_check_reply(NULL, 1, ISSUED_AT, &why) != SL_EUNAVAIL || why != NULL)
        abort();

    redisReader *rd = redisReaderCreate();
    if (rd == NULL)
        abort();
    if (create_array == NULL) {
        bounded = *rd->fn;
        create_array = bounded.createArray;
        bounded.createArray = small_array;
    }
    rd->fn = &bounded;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int k = 0; k < 32; k++) {
            void *rep = NULL;
            if (redisReaderGetReply(rd, &rep) != REDIS_OK || rep == NULL)
                break;
            check_reply(rep, 0);
            freeReplyObject(rep);
        }
    }
    redisReaderFree(rd);
    return 0;
}
