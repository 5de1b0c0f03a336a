/* The revocation interface and the memory store with a pinned clock: token revocation and its
 * reason, the user cut-off (issued_at <= cut-off, including an unknown issued_at), record
 * lifetimes (token expiry, the 1 s floor, the max_ttl cap, cut-offs after max_ttl), pruning by
 * hand, by writes and by the loop timer, argument validation (ids that would make unsafe Redis
 * keys, reasons), synchronous callbacks, closing with and without a loop, and the watcher: one
 * synchronous event per successful write (token id, or user and cut-off), none for failed ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <sluice/revocation.h>

static double pinned_now;
static double pinned(void *ud)
{
    (void)ud;
    return pinned_now;
}

/* What one callback reported; calls counts every invocation to prove exactly-once delivery. */
typedef struct answer {
    int calls;
    int status;
    char reason[300];
} answer;

static void record(void *ud, int status, const char *reason)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
}

static sl_revocation_store *mem(double max_ttl)
{
    sl_revocation_store *s;
    assert_int_equal(sl_revocation_memory_new(&s, NULL, max_ttl, pinned, NULL), SL_OK);
    return s;
}

/* The memory store answers synchronously: the status is known when the call returns. */
static int chk(sl_revocation_store *s, const char *tid, const char *user, double iat)
{
    answer a = {0};
    sl_revocation_check(s, tid, user, iat, record, &a);
    assert_int_equal(a.calls, 1);
    return a.status;
}

static int check_identity_null(sl_revocation_store *s)
{
    answer a = {0};
    sl_revocation_check_identity(s, NULL, record, &a);
    assert_int_equal(a.calls, 1);
    return a.status;
}

static int rev_token(sl_revocation_store *s, const char *tid, const char *reason, double exp)
{
    answer a = {0};
    sl_revocation_revoke(s, tid, "alice", reason, exp, record, &a);
    assert_int_equal(a.calls, 1);
    return a.status;
}

static int rev_user(sl_revocation_store *s, const char *user)
{
    answer a = {0};
    sl_revocation_revoke_user(s, user, record, &a);
    assert_int_equal(a.calls, 1);
    return a.status;
}

static void test_revoke_token(void **state)
{
    (void)state;
    pinned_now = 1000;
    sl_revocation_store *s = mem(0);
    assert_string_equal(sl_revocation_store_name(s), "memory");
    assert_true(sl_revocation_ready(s));
    assert_true(sl_revocation_max_ttl(s) == SL_REVOCATION_DEFAULT_MAX_TTL);
    assert_int_equal(chk(s, "t1", "alice", 990), SL_OK);
    assert_int_equal(rev_token(s, "t1", "key leaked", 2000), SL_OK);
    answer a = {0};
    sl_revocation_check(s, "t1", "alice", 990, record, &a);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "key leaked");
    /* The token id alone decides: another user's token with that id is revoked as well. */
    assert_int_equal(chk(s, "t1", "bob", 990), SL_ETOKEN);
    assert_int_equal(chk(s, "t2", "alice", 990), SL_OK);
    /* NULL reason: a fixed one. */
    assert_int_equal(rev_token(s, "t3", NULL, 2000), SL_OK);
    sl_revocation_check(s, "t3", "alice", 990, record, &a);
    assert_string_equal(a.reason, "revoked");
    /* Identity form. */
    sl_identity id;
    sl_identity_init(&id);
    snprintf(id.principal, sizeof id.principal, "alice");
    snprintf(id.token_id, sizeof id.token_id, "t1");
    id.issued_at = 990;
    a.calls = 0;
    sl_revocation_check_identity(s, &id, record, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_ETOKEN);
    sl_revocation_store_free(s);
}

static void test_user_cutoff(void **state)
{
    (void)state;
    pinned_now = 5000;
    sl_revocation_store *s = mem(3600);
    assert_int_equal(rev_user(s, "alice"), SL_OK);
    /* issued at or before the cut-off: revoked; after: fine. */
    assert_int_equal(chk(s, "a1", "alice", 4000), SL_ETOKEN);
    assert_int_equal(chk(s, "a2", "alice", 5000), SL_ETOKEN);
    assert_int_equal(chk(s, "a3", "alice", 5000.5), SL_OK);
    /* A token without id and without iat (0) cannot prove it is newer. */
    assert_int_equal(chk(s, NULL, "alice", 0), SL_ETOKEN);
    assert_int_equal(chk(s, "", "alice", 6000), SL_OK);
    answer a = {0};
    sl_revocation_check(s, "a1", "alice", 4000, record, &a);
    assert_string_equal(a.reason, "all tokens of the user revoked");
    /* Other users are untouched; names are exact. */
    assert_int_equal(chk(s, "b1", "bob", 4000), SL_OK);
    assert_int_equal(chk(s, "b1", "alice2", 4000), SL_OK);
    /* A later revocation moves the cut-off forward; a clock stepping back never moves it back. */
    pinned_now = 5100;
    assert_int_equal(rev_user(s, "alice"), SL_OK);
    assert_int_equal(chk(s, "a4", "alice", 5050), SL_ETOKEN);
    pinned_now = 5060;
    assert_int_equal(rev_user(s, "alice"), SL_OK);
    assert_int_equal(chk(s, "a5", "alice", 5080), SL_ETOKEN);
    assert_int_equal(chk(s, "a6", "alice", 5101), SL_OK);
    /* Both rules in one call: a revoked id on a fresh token is still revoked. */
    assert_int_equal(rev_token(s, "a6", "one token", 9000), SL_OK);
    assert_int_equal(chk(s, "a6", "alice", 5101), SL_ETOKEN);
    sl_revocation_store_free(s);
}

static void test_expiry(void **state)
{
    (void)state;
    pinned_now = 10000;
    sl_revocation_store *s = mem(100);
    /* Lives as long as the token: 10 s. */
    assert_int_equal(rev_token(s, "short", "r", 10010), SL_OK);
    /* Token outlives max_ttl: the record is capped at 100 s (max_ttl must cover lifetimes). */
    assert_int_equal(rev_token(s, "long", "r", 99999), SL_OK);
    /* No exp: max_ttl. */
    assert_int_equal(rev_token(s, "noexp", "r", 0), SL_OK);
    /* Already expired (or clocks apart): at least 1 s. */
    assert_int_equal(rev_token(s, "past", "r", 9000), SL_OK);
    assert_int_equal(rev_user(s, "carol"), SL_OK);

    pinned_now = 10000.5;
    assert_int_equal(chk(s, "past", "x", 1), SL_ETOKEN);
    pinned_now = 10001;
    assert_int_equal(chk(s, "past", "x", 1), SL_OK);
    pinned_now = 10009.9;
    assert_int_equal(chk(s, "short", "x", 1), SL_ETOKEN);
    pinned_now = 10010;
    assert_int_equal(chk(s, "short", "x", 1), SL_OK);
    pinned_now = 10099.9;
    assert_int_equal(chk(s, "long", "x", 1), SL_ETOKEN);
    assert_int_equal(chk(s, "noexp", "x", 1), SL_ETOKEN);
    assert_int_equal(chk(s, NULL, "carol", 9999), SL_ETOKEN);
    pinned_now = 10100;
    assert_int_equal(chk(s, "long", "x", 1), SL_OK);
    assert_int_equal(chk(s, "noexp", "x", 1), SL_OK);
    assert_int_equal(chk(s, NULL, "carol", 9999), SL_OK);

    /* Re-revoking with a shorter lifetime keeps the longer record. */
    assert_int_equal(rev_token(s, "again", "first", 10200), SL_OK);
    assert_int_equal(rev_token(s, "again", "second", 10110), SL_OK);
    pinned_now = 10150;
    answer a = {0};
    sl_revocation_check(s, "again", "x", 1, record, &a);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "second");
    sl_revocation_store_free(s);
}

static void test_prune(void **state)
{
    (void)state;
    pinned_now = 20000;
    sl_revocation_store *s = mem(50);
    assert_int_equal(sl_revocation_prune(s), 0);
    assert_int_equal(rev_token(s, "p1", "r", 20010), SL_OK);
    assert_int_equal(rev_token(s, "p2", "r", 20020), SL_OK);
    assert_int_equal(rev_token(s, "p3", "r", 0), SL_OK);
    assert_int_equal(rev_user(s, "dave"), SL_OK);
    pinned_now = 20015;
    assert_int_equal(sl_revocation_prune(s), 1); /* p1 */
    assert_int_equal(sl_revocation_prune(s), 0);
    assert_int_equal(chk(s, "p2", "x", 1), SL_ETOKEN);
    pinned_now = 20050;
    assert_int_equal(sl_revocation_prune(s), 3); /* p2, p3, dave */
    assert_int_equal(chk(s, "p3", "dave", 1), SL_OK);
    sl_revocation_store_free(s);
}

/* Without a loop, writes prune once the store reaches its threshold (1024, then twice the live
 * set), so a store nobody prunes by hand still cannot grow without bound. */
static void test_prune_on_write(void **state)
{
    (void)state;
    pinned_now = 30000;
    sl_revocation_store *s = mem(10);
    char id[32];
    for (int i = 0; i < 1023; i++) {
        snprintf(id, sizeof id, "old-%d", i);
        assert_int_equal(rev_token(s, id, "r", 0), SL_OK);
    }
    pinned_now = 30011;
    /* The 1024th entry triggers the prune of the 1023 expired ones. */
    assert_int_equal(rev_token(s, "new", "r", 0), SL_OK);
    assert_int_equal(sl_revocation_prune(s), 0);
    assert_int_equal(chk(s, "new", "x", 1), SL_ETOKEN);
    /* Many live entries: the threshold follows the live set instead of pruning on every write. */
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "live-%d", i);
        assert_int_equal(rev_token(s, id, "r", 0), SL_OK);
    }
    assert_int_equal(chk(s, "live-0", "x", 1), SL_ETOKEN);
    assert_int_equal(chk(s, "live-2999", "x", 1), SL_ETOKEN);
    pinned_now = 30030;
    assert_int_equal(sl_revocation_prune(s), 3001);
    sl_revocation_store_free(s);
}

static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop for about ms milliseconds of real time. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, stop_loop, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_prune_timer(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    pinned_now = 40000;
    sl_revocation_store *s;
    /* max_ttl 0.2 s: the timer runs every 50 ms (the floor). */
    assert_int_equal(sl_revocation_memory_new(&s, &loop, 0.2, pinned, NULL), SL_OK);
    assert_int_equal(rev_token(s, "t1", "r", 0), SL_OK);
    assert_int_equal(rev_token(s, "t2", "r", 0), SL_OK);
    assert_int_equal(rev_user(s, "erin"), SL_OK);
    pinned_now = 40001;
    run_for(&loop, 150);
    /* The timer pruned all three: nothing is left for a manual prune. */
    assert_int_equal(sl_revocation_prune(s), 0);
    /* The timer is unreferenced: a loop with nothing else to do returns at once. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    sl_revocation_store_free(s);
    uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks release the store */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_invalid(void **state)
{
    (void)state;
    pinned_now = 50000;
    sl_revocation_store *s = mem(0);
    char long_id[SL_TOKEN_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_false(sl_revocation_id_valid(long_id)); /* 128 bytes */
    long_id[SL_TOKEN_ID_MAX] = '\0';
    assert_true(sl_revocation_id_valid(long_id)); /* 127 bytes */
    const char *bad_ids[] = {"", "a b", "a\tb", "a\nb", "a\rb", "\x7f", "caf\xc3\xa9", "x\x01"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        assert_false(sl_revocation_id_valid(bad_ids[i]));
        if (*bad_ids[i])
            assert_int_equal(chk(s, bad_ids[i], "alice", 1), SL_EINVAL);
        assert_int_equal(rev_token(s, bad_ids[i], "r", 0), SL_EINVAL);
    }
    assert_false(sl_revocation_id_valid(NULL));
    assert_true(sl_revocation_id_valid("tb_01HZX:9f/+=.-~"));
    assert_int_equal(rev_token(s, NULL, "r", 0), SL_EINVAL);

    /* Users: sl_principal_valid. */
    char long_user[SL_PRINCIPAL_MAX + 2];
    memset(long_user, 'u', sizeof long_user - 1);
    long_user[sizeof long_user - 1] = '\0';
    const char *bad_users[] = {NULL, "", "a b", "a\nb", "a/b", "a\"b", long_user};
    for (size_t i = 0; i < sizeof bad_users / sizeof *bad_users; i++) {
        assert_int_equal(chk(s, "t", bad_users[i], 1), SL_EINVAL);
        assert_int_equal(rev_user(s, bad_users[i]), SL_EINVAL);
    }
    answer a = {0};
    sl_revocation_revoke(s, "t", "a b", "r", 0, record, &a); /* the optional user is checked */
    assert_int_equal(a.status, SL_EINVAL);
    a.calls = 0;
    sl_revocation_revoke(s, "t", NULL, "r", 0, record, &a);
    assert_int_equal(a.status, SL_OK);
    sl_revocation_check(s, "t", "alice", NAN, record, &a);
    assert_int_equal(a.status, SL_EINVAL);
    sl_revocation_revoke(s, "t", NULL, "r", NAN, record, &a);
    assert_int_equal(a.status, SL_EINVAL);
    assert_int_equal(check_identity_null(s), SL_EINVAL);

    /* Reasons: bounded, no control bytes (they reach logs and replies). */
    char long_reason[SL_REVOCATION_REASON_MAX + 2];
    memset(long_reason, 'r', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    assert_int_equal(rev_token(s, "t", long_reason, 0), SL_EINVAL);
    long_reason[SL_REVOCATION_REASON_MAX] = '\0';
    assert_int_equal(rev_token(s, "t", long_reason, 0), SL_OK);
    assert_int_equal(rev_token(s, "t", "line\nbreak", 0), SL_EINVAL);
    assert_int_equal(rev_token(s, "t", "esc\x1b[2J", 0), SL_EINVAL);
    assert_int_equal(rev_token(s, "t", "caf\xc3\xa9 ok", 0), SL_OK);

    /* Bad constructor arguments. */
    sl_revocation_store *t;
    assert_int_equal(sl_revocation_memory_new(&t, NULL, INFINITY, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_revocation_memory_new(&t, NULL, NAN, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_revocation_memory_new(NULL, NULL, 0, NULL, NULL), SL_EINVAL);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(sl_revocation_redis_new(&t, NULL, "127.0.0.1", 6379, NULL, 0, NULL, NULL),
                     SL_EINVAL);
    assert_int_equal(sl_revocation_redis_new(&t, &loop, "127.0.0.1", 0, NULL, 0, NULL, NULL),
                     SL_EINVAL);
    assert_int_equal(sl_revocation_redis_new(&t, &loop, "127.0.0.1", 70000, NULL, 0, NULL, NULL),
                     SL_EINVAL);
    assert_int_equal(sl_revocation_redis_new(&t, &loop, NULL, 6379, NULL, 0, NULL, NULL),
                     SL_EINVAL);
    assert_int_equal(sl_revocation_redis_new(&t, &loop, "127.0.0.1", 6379, "a b", 0, NULL, NULL),
                     SL_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
    sl_revocation_store_free(s);
}

static void test_null_and_closed(void **state)
{
    (void)state;
    answer a = {0};
    /* A NULL store fails closed. */
    sl_revocation_check(NULL, "t", "alice", 1, record, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_EUNAVAIL);
    sl_revocation_revoke(NULL, "t", NULL, NULL, 0, record, &a);
    assert_int_equal(a.status, SL_EUNAVAIL);
    sl_revocation_revoke_user(NULL, "alice", record, &a);
    assert_int_equal(a.status, SL_EUNAVAIL);
    assert_int_equal(a.calls, 3);
    assert_false(sl_revocation_ready(NULL));
    assert_int_equal(sl_revocation_prune(NULL), 0);
    sl_revocation_store_free(NULL);
    /* NULL callbacks are allowed for writes (fire and forget) and ignored for checks. */
    pinned_now = 60000;
    sl_revocation_store *s = mem(0);
    sl_revocation_revoke(s, "t", NULL, NULL, 0, NULL, NULL);
    sl_revocation_revoke_user(s, "alice", NULL, NULL);
    sl_revocation_revoke(s, "bad id", NULL, NULL, 0, NULL, NULL);
    sl_revocation_check(s, "t", "alice", 1, NULL, NULL);
    assert_int_equal(chk(s, "t", "bob", 1), SL_ETOKEN);
    assert_int_equal(chk(s, NULL, "alice", 1), SL_ETOKEN);
    sl_revocation_store_free(s);
}

static void log_line(void *ud, const char *line)
{
    (*(int *)ud)++;
    (void)line;
}

/* Freeing from inside a (synchronous) callback is allowed. */
static void free_in_callback(void *ud, int status, const char *reason)
{
    (void)status;
    (void)reason;
    sl_revocation_store_free(ud);
}

static void test_free_in_callback(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_revocation_store *s;
    assert_int_equal(sl_revocation_memory_new(&s, &loop, 0, NULL, NULL), SL_OK);
    int lines = 0;
    sl_revocation_set_log(s, log_line, &lines); /* the memory store has nothing to log */
    sl_revocation_check(s, "t", "alice", 1, free_in_callback, s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(lines, 0);
}

static void test_token_ttl(void **state)
{
    (void)state;
    sl_revocation_store *s = mem(100);
    assert_true(sl_revocation_token_ttl(s, 1050, 1000) == 50);
    assert_true(sl_revocation_token_ttl(s, 1000.2, 1000) == 1);
    assert_true(sl_revocation_token_ttl(s, 500, 1000) == 1);
    assert_true(sl_revocation_token_ttl(s, 0, 1000) == 100);
    assert_true(sl_revocation_token_ttl(s, 5000, 1000) == 100);
    sl_revocation_store_free(s);
}

/* ---- watching ------------------------------------------------------------------------------- */

/* Every event one watcher saw, in order, plus what the store answered for a check made from inside
 * the watcher (the record must already be there) and whether the revoke's cb had run yet. */
typedef struct seen_event {
    char token_id[SL_TOKEN_ID_MAX + 1];
    char user[SL_PRINCIPAL_MAX + 1];
    double cutoff;
    int resync;
    int check_status;  /* sl_revocation_check of that token / user (issued at 0) from the watcher */
    int cb_calls_then; /* the revoke's answer.calls at the time of the event */
} seen_event;

typedef struct watched {
    sl_revocation_store *s;
    answer *pending; /* the answer of the revoke under way, if any */
    int n;
    seen_event ev[16];
    /* set to make the watcher revoke this id from inside itself (once) */
    const char *nested_revoke;
} watched;

static void watcher(void *ud, const sl_revocation_event *ev)
{
    watched *w = ud;
    assert_true(w->n < 16);
    seen_event *e = &w->ev[w->n++];
    memset(e, 0, sizeof *e);
    /* Exactly one shape. */
    assert_int_equal((ev->token_id != NULL) + (ev->user != NULL) + (ev->resync != 0), 1);
    if (ev->token_id)
        snprintf(e->token_id, sizeof e->token_id, "%s", ev->token_id);
    if (ev->user)
        snprintf(e->user, sizeof e->user, "%s", ev->user);
    e->cutoff = ev->cutoff;
    e->resync = ev->resync;
    e->cb_calls_then = w->pending ? w->pending->calls : -1;
    answer a = {0};
    sl_revocation_check(w->s, ev->token_id, ev->user ? ev->user : "someone", 0, record, &a);
    assert_int_equal(a.calls, 1);
    e->check_status = a.status;
    if (w->nested_revoke) {
        const char *id = w->nested_revoke;
        w->nested_revoke = NULL;
        sl_revocation_revoke(w->s, id, NULL, NULL, 0, NULL, NULL);
    }
}

static int watched_rev_token(watched *w, const char *tid, const char *reason)
{
    answer a = {0};
    w->pending = &a;
    sl_revocation_revoke(w->s, tid, "alice", reason, 0, record, &a);
    w->pending = NULL;
    assert_int_equal(a.calls, 1);
    return a.status;
}

static int watched_rev_user(watched *w, const char *user)
{
    answer a = {0};
    w->pending = &a;
    sl_revocation_revoke_user(w->s, user, record, &a);
    w->pending = NULL;
    assert_int_equal(a.calls, 1);
    return a.status;
}

static void test_watch(void **state)
{
    (void)state;
    pinned_now = 70000;
    watched w = {0};
    w.s = mem(0);
    sl_revocation_set_watch(w.s, watcher, &w);

    /* A token: one event, synchronously, after the write and before the revoke's answer. */
    assert_int_equal(watched_rev_token(&w, "w1", "gone"), SL_OK);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.ev[0].token_id, "w1");
    assert_string_equal(w.ev[0].user, "");
    assert_int_equal(w.ev[0].resync, 0);
    assert_int_equal(w.ev[0].check_status, SL_ETOKEN);
    assert_int_equal(w.ev[0].cb_calls_then, 0);

    /* A user: user and cut-off (the store's clock). */
    assert_int_equal(watched_rev_user(&w, "alice"), SL_OK);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.ev[1].token_id, "");
    assert_string_equal(w.ev[1].user, "alice");
    assert_true(w.ev[1].cutoff == 70000);
    assert_int_equal(w.ev[1].check_status, SL_ETOKEN);
    assert_int_equal(w.ev[1].cb_calls_then, 0);

    /* Revoking the user again with a clock that stepped back: the event carries the cut-off in
     * force (never moved back), not the clock. */
    pinned_now = 69990;
    assert_int_equal(watched_rev_user(&w, "alice"), SL_OK);
    assert_int_equal(w.n, 3);
    assert_true(w.ev[2].cutoff == 70000);
    pinned_now = 70010;
    assert_int_equal(watched_rev_user(&w, "alice"), SL_OK);
    assert_int_equal(w.n, 4);
    assert_true(w.ev[3].cutoff == 70010);

    /* Failed writes report nothing. */
    assert_int_equal(watched_rev_token(&w, "bad id", "r"), SL_EINVAL);
    assert_int_equal(watched_rev_token(&w, "w2", "bad\nreason"), SL_EINVAL);
    answer a = {0};
    sl_revocation_revoke(w.s, "w2", "bad user", NULL, 0, record, &a);
    assert_int_equal(a.status, SL_EINVAL);
    assert_int_equal(watched_rev_user(&w, "a/b"), SL_EINVAL);
    assert_int_equal(watched_rev_user(&w, NULL), SL_EINVAL);
    assert_int_equal(w.n, 4);
    /* Nor do checks. */
    assert_int_equal(chk(w.s, "w1", "alice", 1), SL_ETOKEN);
    assert_int_equal(w.n, 4);

    /* Fire-and-forget writes are reported too. */
    sl_revocation_revoke(w.s, "w3", NULL, NULL, 0, NULL, NULL);
    assert_int_equal(w.n, 5);
    assert_string_equal(w.ev[4].token_id, "w3");

    /* A revoke from inside the watcher reports its own event, nested. */
    w.nested_revoke = "w5";
    assert_int_equal(watched_rev_token(&w, "w4", NULL), SL_OK);
    assert_int_equal(w.n, 7);
    assert_string_equal(w.ev[5].token_id, "w4");
    assert_string_equal(w.ev[6].token_id, "w5");
    assert_int_equal(chk(w.s, "w5", "alice", 1), SL_ETOKEN);

    /* Replacing the watcher moves the events; removing it stops them. */
    watched w2 = {.s = w.s};
    sl_revocation_set_watch(w.s, watcher, &w2);
    assert_int_equal(watched_rev_user(&w, "bob"), SL_OK);
    assert_int_equal(w.n, 7);
    assert_int_equal(w2.n, 1);
    assert_string_equal(w2.ev[0].user, "bob");
    sl_revocation_set_watch(w.s, NULL, NULL);
    assert_int_equal(watched_rev_token(&w, "w6", NULL), SL_OK);
    assert_int_equal(watched_rev_user(&w, "carol"), SL_OK);
    assert_int_equal(w.n, 7);
    assert_int_equal(w2.n, 1);

    /* NULL stores are a no-op. */
    sl_revocation_set_watch(NULL, watcher, &w);
    sl_revocation_store_free(w.s);
}

/* The revoke's callback may free the store even while a watcher is set: it runs last. */
static void test_watch_then_free_in_callback(void **state)
{
    (void)state;
    pinned_now = 80000;
    watched w = {0};
    w.s = mem(0);
    sl_revocation_set_watch(w.s, watcher, &w);
    sl_revocation_revoke(w.s, "f1", NULL, NULL, 0, free_in_callback, w.s);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.ev[0].token_id, "f1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revoke_token),
        cmocka_unit_test(test_user_cutoff),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_prune_on_write),
        cmocka_unit_test(test_prune_timer),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_null_and_closed),
        cmocka_unit_test(test_free_in_callback),
        cmocka_unit_test(test_token_ttl),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_watch_then_free_in_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
