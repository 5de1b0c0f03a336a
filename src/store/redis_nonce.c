/* Signed requests' nonces on Redis (redis_nonce.h): one command per nonce, SET key 1 NX EX ttl,
 * on the shared async command connection (redis_conn.h), so a burst of signed requests is one
 * pipelined write. The answer "OK" means first use, nil means someone (any node) used it. */
#include "store/redis_nonce.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct redis_nonces {
    sl__nonce_store base;
    sl__rconn *conn;
    char prefix[80];
} redis_nonces;

typedef struct call {
    sl__nonce_fn fn;
    void *ud;
} call;

static void on_reply(void *ud, int rc, const redisReply *reply)
{
    call *c = ud;
    int status = SL_EUNAVAIL;
    if (rc == SL_OK && reply) {
        if (reply->type == REDIS_REPLY_NIL)
            status = SL_ETOKEN;
        else if (reply->type == REDIS_REPLY_STATUS && !strcmp(reply->str, "OK"))
            status = SL_OK;
    }
    c->fn(c->ud, status);
    free(c);
}

static void remember(sl__nonce_store *s, const char *keyid, const char *nonce, double created,
                     double until, double now, sl__nonce_fn fn, void *ud)
{
    (void)created; /* one key per keyid and nonce: a nonce is never taken twice */
    redis_nonces *r = (redis_nonces *)s;
    call *c = malloc(sizeof *c);
    if (c == NULL) {
        fn(ud, SL_EUNAVAIL);
        return;
    }
    c->fn = fn;
    c->ud = ud;
    char h[SL__NONCE_KEY_LEN + 1], key[sizeof r->prefix + 16 + SL__NONCE_KEY_LEN], ttl[24];
    sl__nonce_key(keyid, nonce, h);
    snprintf(key, sizeof key, "%s:sig:nonce:%s", r->prefix, h);
    double t = ceil(until - now);
    snprintf(ttl, sizeof ttl, "%lld", (long long)(t < 1 ? 1 : t));
    const char *argv[] = {"SET", key, "1", "NX", "EX", ttl};
    sl__rconn_cmd(r->conn, 6, argv, NULL, on_reply, c); /* answers later, never from inside */
}

static void destroy(sl__nonce_store *s)
{
    redis_nonces *r = (redis_nonces *)s;
    if (r == NULL)
        return;
    sl__rconn_free(r->conn); /* pending calls answer SL_EUNAVAIL */
    free(r);
}

int sl__nonce_redis_new(sl__nonce_store **out, uv_loop_t *loop, const sl__redis_addr *addr,
                        const char *prefix, const sl__logsink *log)
{
    redis_nonces *r = calloc(1, sizeof *r);
    if (r == NULL)
        return SL_ENOMEM;
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix && *prefix ? prefix : "sluice");
    sl__rconn_opts o = {.addr = addr, .what = "signature nonces", .log = log};
    int rc = sl__rconn_new(&r->conn, loop, &o);
    if (rc != SL_OK) {
        free(r);
        return rc;
    }
    r->base.remember = remember;
    r->base.free = destroy;
    *out = &r->base;
    return SL_OK;
}
