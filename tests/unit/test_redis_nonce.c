/* The Redis nonce store of signed requests (store/redis_nonce.c) against a real redis-server:
 * two stores (two nodes) on one Redis share what they remember, also on a Redis that needs a
 * password and in another db, a nonce is kept with the TTL asked for, and an unreachable Redis or
 * a store freed with answers pending says SL_EUNAVAIL (fail closed), never "new". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deps.h"
#include "redis_server.h"

#include "security/httpsig.h"
#include "store/redis_nonce.h"

static test_redis R;

typedef struct answers {
    int n;
    int last;
} answers;

static void on_answer(void *ud, int status)
{
    answers *a = ud;
    a->n++;
    a->last = status;
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until a has n answers (or the deadline). */
static void wait_for(uv_loop_t *loop, answers *a, int n)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    uint64_t end = uv_now(loop) + TEST_REDIS_WAIT_MS;
    while (a->n < n && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_int_equal(a->n, n);
}

static sl__nonce_store *store(uv_loop_t *loop)
{
    char url[128];
    test_redis_url(&R, url, sizeof url);
    sl__redis_url u;
    sl_status st;
    assert_int_equal(sl__redis_url_parse(url, &u, &st), SL_OK);
    sl__nonce_store *s;
    assert_int_equal(sl__nonce_redis_new(&s, loop, &u.shards[0], "t", NULL), SL_OK);
    sl__redis_url_clear(&u);
    return s;
}

/* Remembers until answered, retrying while the connection is still coming up. */
static int remember(uv_loop_t *loop, sl__nonce_store *s, const char *keyid, const char *nonce,
                    double until, double now)
{
    for (int i = 0; i < 200; i++) {
        answers a = {0};
        s->remember(s, keyid, nonce, until - 300, until, now, on_answer, &a);
        wait_for(loop, &a, 1);
        if (a.last != SL_EUNAVAIL)
            return a.last;
        test_redis_sleep_ms(20);
    }
    return SL_EUNAVAIL;
}

static void finish(uv_loop_t *loop)
{
    for (int i = 0; i < 100 && uv_loop_alive(loop); i++)
        uv_run(loop, UV_RUN_NOWAIT);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_two_nodes_share_nonces(void **state)
{
    (void)state;
    NEED_DEP(test_redis_start(&R) == 0, "redis-server (scripts/deps installs it)");
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl__nonce_store *a = store(&loop), *b = store(&loop);
    assert_int_equal(remember(&loop, a, "svc-1", "n-1", 1000 + 300, 1000), SL_OK);
    assert_int_equal(remember(&loop, b, "svc-1", "n-1", 1000 + 300, 1001), SL_ETOKEN);
    assert_int_equal(remember(&loop, a, "svc-1", "n-1", 1000 + 300, 1002), SL_ETOKEN);
    /* another key's nonce of the same text is another nonce */
    assert_int_equal(remember(&loop, b, "svc-2", "n-1", 1000 + 300, 1002), SL_OK);
    /* kept as long as asked (whole seconds, rounded up), under the store's prefix */
    char key[SL__NONCE_KEY_LEN + 1];
    sl__nonce_key("svc-1", "n-1", key);
    redisReply *ttl = test_redis_cmd(&R, "TTL t:sig:nonce:%s", key);
    assert_non_null(ttl);
    assert_int_equal(ttl->type, REDIS_REPLY_INTEGER);
    assert_true(ttl->integer > 290 && ttl->integer <= 300);
    freeReplyObject(ttl);
    /* answers pending when a store is freed: unavailable, never "new" */
    answers p = {0};
    a->remember(a, "svc-1", "n-2", 1000, 1300, 1000, on_answer, &p);
    a->free(a);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.last, SL_EUNAVAIL);
    /* Redis gone: unavailable */
    test_redis_stop(&R);
    answers d = {0};
    b->remember(b, "svc-1", "n-3", 1000, 1300, 1000, on_answer, &d);
    wait_for(&loop, &d, 1);
    assert_int_equal(d.last, SL_EUNAVAIL);
    b->free(b);
    finish(&loop);
}

/* sluiced gives the store the Redis engine's first shard as parsed, credentials and db included:
 * against a Redis with requirepass, two stores on "redis://:password@host:port/2" share what they
 * remember, and the nonce keys are in db 2, not db 0. */
static void test_password_and_db(void **state)
{
    (void)state;
    static test_redis P = {.password = "nonce-requirepass-3e9b1f"};
    NEED_DEP(test_redis_start(&P) == 0, "redis-server (scripts/deps installs it)");
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[160];
    snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d/2", P.password, P.port);
    sl__redis_url u;
    sl_status st;
    assert_int_equal(sl__redis_url_parse(url, &u, &st), SL_OK);
    sl__nonce_store *a, *b;
    assert_int_equal(sl__nonce_redis_new(&a, &loop, &u.shards[0], "pw", NULL), SL_OK);
    assert_int_equal(sl__nonce_redis_new(&b, &loop, &u.shards[0], "pw", NULL), SL_OK);
    sl__redis_url_clear(&u); /* the stores keep copies */
    assert_int_equal(remember(&loop, a, "svc-1", "n-1", 1000 + 300, 1000), SL_OK);
    assert_int_equal(remember(&loop, b, "svc-1", "n-1", 1000 + 300, 1001), SL_ETOKEN);
    char key[SL__NONCE_KEY_LEN + 1];
    sl__nonce_key("svc-1", "n-1", key);
    redisContext *c = test_redis_admin(&P);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "EXISTS pw:sig:nonce:%s", key);
    assert_int_equal(r->integer, 0); /* not in db 0 */
    freeReplyObject(r);
    r = redisCommand(c, "SELECT 2");
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS pw:sig:nonce:%s", key);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    a->free(a);
    b->free(b);
    finish(&loop);
    test_redis_stop(&P);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_nodes_share_nonces),
        cmocka_unit_test(test_password_and_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
