/* The channel API end to end in-process: the "Securing Channels" tutorial (parts 1 and 2) in C,
 * leases with a pinned clock, dead letters, visibility, limits and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <sluice/sluice.h>

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "api/ctx.h"
#include "store/lmdb.h"

static double pinned_now;
static double pinned(void *ud)
{
    (void)ud;
    return pinned_now;
}

static sl_ctx *new_ctx(sl_mode mode)
{
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = mode, .clock = pinned};
    pinned_now = 1000.0;
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    return ctx;
}

static int write_json(sl_ctx *ctx, const sl_identity *who, const char *ch, const char *json,
                      char *id, sl_status *st)
{
    sl_write w = {.data = json, .data_len = strlen(json)};
    return sl_channel_write(ctx, who, ch, &w, id, id ? 32 : 0, st);
}

/* Part 1 of the tutorial: ACL security on a work queue. */
static void test_tutorial_acl(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_ACL);
    sl_status st;
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    o.name = "Job Queue";
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs", &o, &st), SL_OK);
    assert_int_equal(sl_acl_grant(ctx, NULL, "scheduler", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_acl_grant(ctx, NULL, "worker-1", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_acl_grant(ctx, NULL, "worker-2", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_acl_grant(ctx, NULL, "ops-dashboard", SL_ROLE_ADMIN, NULL, 0, &st), SL_OK);

    sl_identity scheduler, worker, rogue, ops;
    sl_identity_local(&scheduler, "scheduler");
    sl_identity_local(&worker, "worker-1");
    sl_identity_local(&rogue, "rogue-process");
    sl_identity_local(&ops, "ops-dashboard");
    assert_int_equal(write_json(ctx, &scheduler, "jobs",
                                "{\"task\":\"compress\",\"file\":\"video.mp4\"}", NULL, &st),
                     SL_OK);
    sl_message_list l;
    sl_read r = {.limit = 5, .exclusive = 1};
    assert_int_equal(sl_channel_read(ctx, &worker, "jobs", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].sender_id, "scheduler");
    assert_string_equal(l.items[0].data, "{\"task\":\"compress\",\"file\":\"video.mp4\"}");
    assert_int_equal(l.items[0].attempt, 1);
    assert_true(l.items[0].claim_expires_at == 1300.0);
    size_t n;
    const char *ids[] = {l.items[0].id};
    assert_int_equal(sl_channel_ack(ctx, &worker, "jobs", ids, 1, &n, &st), SL_OK);
    assert_int_equal(n, 1);
    sl_message_list_free(&l);

    assert_int_equal(sl_channel_read(ctx, &rogue, "jobs", &r, &l, &st), SL_EFORBIDDEN);
    assert_string_equal(st.message,
                        "'rogue-process' is not authorised to read from channel 'jobs'.");
    /* Writers may not administer; admins may. */
    assert_int_equal(sl_channel_clear(ctx, &worker, "jobs", &n, &st), SL_EFORBIDDEN);
    assert_int_equal(sl_channel_clear(ctx, &ops, "jobs", &n, &st), SL_OK);
    /* Dynamic grant / revoke. */
    sl_identity w3;
    sl_identity_local(&w3, "worker-3");
    assert_int_equal(sl_channel_read(ctx, &w3, "jobs", &r, &l, &st), SL_EFORBIDDEN);
    assert_int_equal(sl_acl_grant(ctx, NULL, "worker-3", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_channel_read(ctx, &w3, "jobs", &r, &l, &st), SL_OK);
    sl_message_list_free(&l);
    assert_int_equal(sl_acl_revoke(ctx, NULL, "worker-1", &st), SL_OK);
    assert_int_equal(sl_channel_read(ctx, &worker, "jobs", &r, &l, &st), SL_EFORBIDDEN);
    /* Authorisation before existence: denied callers learn nothing about names. */
    assert_int_equal(sl_channel_read(ctx, &rogue, "nope", &r, &l, &st), SL_EFORBIDDEN);
    assert_int_equal(sl_channel_read(ctx, &w3, "nope", &r, &l, &st), SL_ENOENT);
    sl_ctx_free(ctx);
}

/* Part 2: under token mode, local calls are always trusted. */
static void test_tutorial_local_trust(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_TOKEN);
    sl_status st;
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs", NULL, &st), SL_OK);
    sl_identity any;
    sl_identity_local(&any, "any-local-system");
    assert_int_equal(write_json(ctx, &any, "jobs", "{\"task\":\"...\"}", NULL, &st), SL_OK);
    size_t n;
    assert_int_equal(sl_channel_clear(ctx, &any, "jobs", &n, &st), SL_OK);
    assert_int_equal(n, 1);
    sl_ctx_free(ctx);
}

static void test_leases_with_pinned_clock(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    sl_status st;
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    o.claim_timeout = 30;
    assert_int_equal(sl_channel_create(ctx, NULL, "q", &o, &st), SL_OK);
    sl_identity a, b;
    sl_identity_local(&a, "a");
    sl_identity_local(&b, "b");
    char id[32];
    assert_int_equal(write_json(ctx, &a, "q", "1", id, &st), SL_OK);
    sl_message_list l;
    sl_read r = {.limit = 10, .exclusive = 1};
    assert_int_equal(sl_channel_read(ctx, &a, "q", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    sl_message_list_free(&l);
    /* Held by a: b sees nothing and cannot acknowledge it. */
    assert_int_equal(sl_channel_read(ctx, &b, "q", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 0);
    const char *ids[] = {id};
    size_t n = 99;
    assert_int_equal(sl_channel_ack(ctx, &b, "q", ids, 1, &n, &st), SL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sl_channel_nack(ctx, &b, "q", ids, 1, 0, &n, &st), SL_OK);
    assert_int_equal(n, 0);
    /* The lease expires: b may claim it (attempt 2), and a's acknowledgement no longer counts. */
    pinned_now += 31;
    assert_int_equal(sl_channel_read(ctx, &b, "q", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    assert_int_equal(l.items[0].attempt, 2);
    sl_message_list_free(&l);
    assert_int_equal(sl_channel_ack(ctx, &a, "q", ids, 1, &n, &st), SL_OK);
    assert_int_equal(n, 0);
    /* nack with a delay: invisible until the delay passes. */
    assert_int_equal(sl_channel_nack(ctx, &b, "q", ids, 1, 10, &n, &st), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sl_channel_read(ctx, &a, "q", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 0);
    pinned_now += 10;
    assert_int_equal(sl_channel_read(ctx, &a, "q", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    sl_message_list_free(&l);
    assert_int_equal(sl_channel_ack(ctx, &a, "q", ids, 1, &n, &st), SL_OK);
    assert_int_equal(n, 1);
    sl_ctx_free(ctx);
}

static void test_dead_letters(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    sl_status st;
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    o.max_attempts = 2;
    o.claim_timeout = 5;
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs", &o, &st), SL_OK);
    sl_identity w;
    sl_identity_local(&w, "w");
    assert_int_equal(write_json(ctx, &w, "jobs", "\"poison\"", NULL, &st), SL_OK);
    sl_message_list l;
    sl_read r = {.limit = 10, .exclusive = 1};
    for (int attempt = 1; attempt <= 2; attempt++) {
        assert_int_equal(sl_channel_read(ctx, &w, "jobs", &r, &l, &st), SL_OK);
        assert_int_equal(l.len, 1);
        sl_message_list_free(&l);
        pinned_now += 6;
    }
    /* The third claim would exceed max_attempts: it goes to jobs.dead instead. */
    assert_int_equal(sl_channel_read(ctx, &w, "jobs", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 0);
    assert_int_equal(sl_channel_read(ctx, &w, "jobs.dead", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].data, "\"poison\"");
    sl_message_list_free(&l);
    sl_ctx_free(ctx);
}

static void test_visibility_and_kinds(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    sl_status st;
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    assert_int_equal(sl_channel_create(ctx, NULL, "private-q", &o, &st), SL_OK);
    o.kind = SL_KIND_TOPIC;
    o.visibility = SL_VIS_PUBLIC;
    o.retention_max_count = 2;
    assert_int_equal(sl_channel_create(ctx, NULL, "news", &o, &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, NULL, "news", &o, &st), SL_EEXIST);
    sl_identity net;
    sl_identity_init(&net);
    strcpy(net.principal, "anonymous"); /* a network caller on an open server */
    sl_message_list l;
    sl_read shared = {.limit = 10}, excl = {.limit = 10, .exclusive = 1};
    assert_int_equal(sl_channel_read(ctx, &net, "private-q", &excl, &l, &st), SL_ENOENT);
    sl_channel_info *infos;
    size_t n;
    assert_int_equal(sl_channel_list(ctx, &net, &infos, &n, &st), SL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(infos[0].id, "news");
    sl_channel_infos_free(infos, n);
    /* Wrong kinds of read are errors. */
    sl_identity me;
    sl_identity_local(&me, "me");
    assert_int_equal(sl_channel_read(ctx, &me, "private-q", &shared, &l, &st), SL_EKIND);
    assert_int_equal(sl_channel_read(ctx, &me, "news", &excl, &l, &st), SL_EKIND);
    /* Topic retention by count and the reader's cursor. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(write_json(ctx, &me, "news", "{}", NULL, &st), SL_OK);
    assert_int_equal(sl_channel_read(ctx, &me, "news", &shared, &l, &st), SL_OK);
    assert_int_equal(l.len, 2);
    sl_message_list_free(&l);
    assert_int_equal(sl_channel_read(ctx, &me, "news", &shared, &l, &st), SL_OK);
    assert_int_equal(l.len, 0);
    sl_ctx_free(ctx);
}

static void test_bad_input(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    sl_status st;
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    o.max_messages = 1;
    assert_int_equal(sl_channel_create(ctx, NULL, "../etc", &o, &st), SL_EBADID);
    assert_int_equal(sl_channel_create(ctx, NULL, "q", &o, &st), SL_OK);
    sl_identity me;
    sl_identity_local(&me, "me");
    assert_int_equal(write_json(ctx, &me, "q", "{not json", NULL, &st), SL_EJSON);
    assert_int_equal(write_json(ctx, &me, "q", "1", NULL, &st), SL_OK);
    assert_int_equal(write_json(ctx, &me, "q", "2", NULL, &st), SL_EFULL);
    sl_channel_info info;
    assert_int_equal(sl_channel_info_get(ctx, &me, "q", &info, &st), SL_OK);
    assert_int_equal(info.depth, 1); /* nothing lost, nothing extra */
    sl_channel_info_clear(&info);
    assert_int_equal(write_json(ctx, &me, "a b", "1", NULL, &st), SL_EBADID);
    o.dead_letter = "q";
    assert_int_equal(sl_channel_create(ctx, NULL, "q2", &o, &st), SL_OK);
    o.dead_letter = "q3";
    assert_int_equal(sl_channel_create(ctx, NULL, "q3", &o, &st), SL_EINVAL);
    o.dead_letter = "bad id";
    assert_int_equal(sl_channel_create(ctx, NULL, "q4", &o, &st), SL_EBADID);
    assert_int_equal(sl_channel_delete(ctx, &me, "q", &st), SL_OK);
    assert_int_equal(sl_channel_delete(ctx, &me, "q", &st), SL_ENOENT);
    sl_ctx_free(ctx);
}

/* docs/QUEUES.md through the C API with a pinned clock: batches with idempotency keys, delayed
 * delivery, TTL, backoff, extend and terminate, each authorised like acknowledging. */
static void test_queue_features(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_ACL);
    sl_status st;
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    o.claim_timeout = 30;
    o.backoff[0] = 10;
    o.nbackoff = 1;
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs", &o, &st), SL_OK);
    assert_int_equal(sl_acl_grant(ctx, NULL, "w", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_acl_grant(ctx, NULL, "r", SL_ROLE_READ, NULL, 0, &st), SL_OK);
    sl_identity w, r;
    sl_identity_local(&w, "w");
    sl_identity_local(&r, "r");

    sl_write batch[4] = {
        {.data = "1", .data_len = 1, .idempotency_key = "a"},
        {.data = "2", .data_len = 1, .idempotency_key = "a"},
        {.data = "3", .data_len = 1, .delay = 100},
        {.data = "4", .data_len = 1, .ttl = 5, .correlation_id = "c"},
    };
    char ids[4][SL_ITEM_ID_SIZE];
    size_t dups = 9, n;
    assert_int_equal(sl_channel_write_batch(ctx, &w, "jobs", batch, 4, ids, &dups, &st), SL_OK);
    assert_int_equal(dups, 1);
    assert_string_equal(ids[0], ids[1]);
    sl_channel_info info;
    assert_int_equal(sl_channel_info_get(ctx, NULL, "jobs", &info, &st), SL_OK);
    assert_int_equal(info.depth, 3);
    assert_int_equal(info.nbackoff, 1);
    assert_true(info.dedup_window == 120 && info.cursor_idle_timeout == 86400);
    sl_channel_info_clear(&info);
    /* Bad options refuse the whole batch. */
    sl_write bad = {.data = "1", .data_len = 1, .ttl = -1};
    assert_int_equal(sl_channel_write_batch(ctx, &w, "jobs", &bad, 1, NULL, NULL, &st), SL_EINVAL);
    bad = (sl_write){.data = "1", .data_len = 1, .idempotency_key = ""};
    assert_int_equal(sl_channel_write_batch(ctx, &w, "jobs", &bad, 1, NULL, NULL, &st), SL_EINVAL);
    /* The envelope's strings are 1..255 bytes on every transport: the channel API checks them. */
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sl_write envs[] = {{.data = "1", .data_len = 1, .correlation_id = ""},
                       {.data = "1", .data_len = 1, .reply_to = big},
                       {.data = "1", .data_len = 1, .recipient_id = big + 43}}; /* 256 bytes */
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        assert_int_equal(sl_channel_write_batch(ctx, &w, "jobs", &envs[i], 1, NULL, NULL, &st),
                         SL_EINVAL);
        assert_non_null(strstr(st.message, "must be a string of 1..255 bytes"));
    }
    sl_write fits = {.data = "1", .data_len = 1, .recipient_id = big + 44}; /* 255 bytes */
    assert_int_equal(sl_channel_create(ctx, NULL, "env", NULL, &st), SL_OK);
    assert_int_equal(sl_channel_write_batch(ctx, &w, "env", &fits, 1, NULL, NULL, &st), SL_OK);
    assert_int_equal(sl_channel_write_batch(ctx, &r, "jobs", batch, 1, NULL, NULL, &st),
                     SL_EFORBIDDEN);

    /* "3" waits 100 s; "1" and "4" are claimable. */
    sl_message_list l;
    sl_read rd = {.limit = 10, .exclusive = 1};
    assert_int_equal(sl_channel_read(ctx, &w, "jobs", &rd, &l, &st), SL_OK);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[1].correlation_id, "c");
    assert_true(l.items[1].expires_at == 1005);
    const char *first[] = {l.items[0].id}, *second[] = {l.items[1].id};
    /* Extend: the holder only, write role, bounded. */
    assert_int_equal(sl_channel_extend(ctx, &r, "jobs", first, 1, 0, &n, &st), SL_EFORBIDDEN);
    assert_string_equal(st.message, "'r' is not authorised to extend leases on channel 'jobs'.");
    assert_int_equal(sl_channel_extend(ctx, &w, "jobs", first, 1, 1e6, &n, &st), SL_EINVAL);
    assert_int_equal(sl_channel_extend(ctx, &w, "jobs", first, 1, 600, &n, &st), SL_OK);
    assert_int_equal(n, 1);
    /* Terminate: dead-lettered with the reason, never back. */
    assert_int_equal(sl_channel_terminate(ctx, &r, "jobs", second, 1, "x", &n, &st), SL_EFORBIDDEN);
    assert_int_equal(sl_channel_terminate(ctx, &w, "jobs", second, 1, "bad", &n, &st), SL_OK);
    assert_int_equal(n, 1);
    sl_message_list_free(&l);
    assert_int_equal(sl_channel_info_get(ctx, NULL, "jobs.dead", &info, &st), SL_OK);
    assert_int_equal(info.depth, 1);
    sl_channel_info_clear(&info);
    sl_message_list dl;
    assert_int_equal(sl_channel_read(ctx, &w, "jobs.dead", &rd, &dl, &st), SL_OK);
    assert_int_equal(dl.len, 1);
    assert_string_equal(dl.items[0].dead_reason, "bad");
    sl_message_list_free(&dl);

    /* At 1100 "3" is due; "1" is still leased (extended to 1600). A nack without a delay uses
     * the backoff: 10 s. */
    pinned_now = 1100;
    assert_int_equal(sl_channel_read(ctx, &w, "jobs", &rd, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].data, "3");
    const char *third[] = {l.items[0].id};
    assert_int_equal(sl_channel_nack(ctx, &w, "jobs", third, 1, 0, &n, &st), SL_OK);
    sl_message_list_free(&l);
    pinned_now = 1109;
    assert_int_equal(sl_channel_read(ctx, &w, "jobs", &rd, &l, &st), SL_OK);
    assert_int_equal(l.len, 0);
    sl_message_list_free(&l);
    pinned_now = 1110;
    assert_int_equal(sl_channel_read(ctx, &w, "jobs", &rd, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    sl_message_list_free(&l);

    /* Topics: no delays; extend and terminate are queue operations. */
    sl_channel_opts_init(&o);
    o.kind = SL_KIND_TOPIC;
    assert_int_equal(sl_channel_create(ctx, NULL, "news", &o, &st), SL_OK);
    sl_write late = {.data = "1", .data_len = 1, .delay = 5};
    assert_int_equal(sl_channel_write_batch(ctx, &w, "news", &late, 1, NULL, NULL, &st), SL_EKIND);
    assert_int_equal(sl_channel_extend(ctx, &w, "news", first, 1, 0, &n, &st), SL_EKIND);
    assert_int_equal(sl_channel_terminate(ctx, &w, "news", first, 1, NULL, &n, &st), SL_EKIND);
    sl_ctx_free(ctx);
}

static void chop_done(sl__chop *op)
{
    (*(int *)op->ud)++;
}

/* With the durable engine a request completes later, from the loop: a channel deleted (and
 * re-created) meanwhile must not be mistaken for the one the request found. The claim below
 * dead-letters a message into a queue the engine creates; its completion must neither register
 * that queue under the deleted channel's settings nor touch them (freed: ASan would say so). */
static void test_channel_gone_before_completion(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-chan-gone-XXXXXX";
    assert_non_null(mkdtemp(dir));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl__kv *kv;
    sl_status st;
    sl__lmdb_opts lo = {.dir = dir, .loop = &loop};
    assert_int_equal(sl__lmdb_open(&kv, &lo, &st), SL_OK);
    sl_ctx *ctx;
    assert_int_equal(sl_ctx_new(&ctx, NULL), SL_OK);
    sl_engine *e;
    assert_int_equal(sl__mem_engine_open(&e, kv, &loop, sl_ctx_now(ctx), &st), SL_OK);
    assert_int_equal(sl__ctx_use_engine(ctx, e, &st), SL_OK);
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    o.max_attempts = 1;
    o.claim_timeout = 0.001;
    assert_int_equal(sl_channel_create(ctx, NULL, "q", &o, &st), SL_OK);
    sl_write w = {.data = "1", .data_len = 1};
    assert_int_equal(sl_channel_write(ctx, NULL, "q", &w, NULL, 0, &st), SL_OK);
    sl_message_list l;
    sl_read r = {.exclusive = 1};
    assert_int_equal(sl_channel_read(ctx, NULL, "q", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    sl_message_list_free(&l);
    uv_sleep(5); /* the lease runs out: the next claim dead-letters the message */

    int done = 0;
    sl__chop claim = {.op = SL_OP_CHANNEL_READ,
                      .channel = "q",
                      .read = {.exclusive = 1},
                      .done = chop_done,
                      .ud = &done};
    sl__channel_submit(ctx, &claim);
    assert_int_equal(done, 0); /* waiting for its commit */
    sl__chop del = {.op = SL_OP_CHANNEL_DELETE, .channel = "q", .done = chop_done, .ud = &done};
    sl__channel_submit(ctx, &del);
    while (done < 2)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(claim.rc, SL_OK);
    assert_int_equal(claim.list.len, 0);
    assert_int_equal(del.rc, SL_OK);
    sl__chop_clear(&claim);
    sl__chop_clear(&del);
    sl_channel_info info;
    assert_int_equal(sl_channel_info_get(ctx, NULL, "q", &info, &st), SL_ENOENT);

    sl_ctx_free(ctx);
    kv->ops->free(kv);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The in-process C API on a data directory: channels, messages, claims and ACL grants come
 * back in a new context on the same directory; a second context on it is refused. */
static void test_in_process_data_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-ctx-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    sl_ctx_options o = {.mode = SL_MODE_ACL, .data_dir = dir};
    sl_ctx *ctx, *other;
    sl_status st;
    assert_int_equal(sl_ctx_open(&ctx, &o, &st), SL_OK);
    assert_int_equal(sl_ctx_open(&other, &o, &st), SL_EUNAVAIL);
    assert_non_null(strstr(st.message, "in use by another sluiced"));
    assert_int_equal(sl_acl_grant(ctx, NULL, "scheduler", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs", NULL, &st), SL_OK);
    sl_identity who;
    sl_identity_local(&who, "scheduler");
    sl_write w = {.data = "{\"n\":1}", .data_len = 7};
    char id[32];
    assert_int_equal(sl_channel_write(ctx, &who, "jobs", &w, id, sizeof id, &st), SL_OK);
    w.data = "{\"n\":2}";
    assert_int_equal(sl_channel_write(ctx, &who, "jobs", &w, NULL, 0, &st), SL_OK);
    sl_read r = {.limit = 1, .exclusive = 1};
    sl_message_list l;
    assert_int_equal(sl_channel_read(ctx, &who, "jobs", &r, &l, &st), SL_OK);
    assert_string_equal(l.items[0].id, id);
    sl_message_list_free(&l);
    sl_ctx_free(ctx);

    assert_int_equal(sl_ctx_open(&ctx, &o, &st), SL_OK);
    sl_identity_local(&who, "scheduler");
    r.limit = 10;
    assert_int_equal(sl_channel_read(ctx, &who, "jobs", &r, &l, &st), SL_OK);
    assert_int_equal(l.len, 1); /* the first is still leased to the claim before the restart */
    assert_string_equal(l.items[0].data, "{\"n\":2}");
    sl_message_list_free(&l);
    sl_acl_entry *e;
    size_t n;
    assert_int_equal(sl_acl_list(ctx, NULL, &e, &n, &st), SL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].principal, "scheduler");
    sl_acl_entries_free(e, n);
    sl_ctx_free(ctx);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tutorial_acl),
        cmocka_unit_test(test_tutorial_local_trust),
        cmocka_unit_test(test_leases_with_pinned_clock),
        cmocka_unit_test(test_dead_letters),
        cmocka_unit_test(test_visibility_and_kinds),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_queue_features),
        cmocka_unit_test(test_channel_gone_before_completion),
        cmocka_unit_test(test_in_process_data_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
