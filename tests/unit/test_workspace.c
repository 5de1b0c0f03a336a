/* Workspaces (docs/POLICY.md "Workspaces"): qualified names and their round trips, the stored-id
 * rules, the decision's workspace step, forged internal names refused by the channel API, two
 * workspaces with the same channel names through the in-process API (isolated channels, listings
 * and grants), the operator's crossing, the limits (parsing, the commands-per-second bucket with a
 * pinned clock, connections, channels), and the "ws" claim of sluice tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/jwt.h>
#include <sluice/sluice.h>

#include "api/ctx.h"
#include "core/wsid.h"
#include "security/workspace.h"

static void test_qualify_round_trip(void **state)
{
    (void)state;
    char q[SL__QID_SIZE];
    assert_int_equal(sl__ws_qualify("acme", "jobs.eu", q, sizeof q), SL_OK);
    assert_string_equal(q, "acme/jobs.eu");
    assert_string_equal(sl__ws_name(q), "jobs.eu");
    assert_true(sl__ws_owns("acme", q));
    assert_false(sl__ws_owns("acm", q));
    assert_false(sl__ws_owns("acme-2", q));
    assert_false(sl__ws_owns("", q));
    assert_true(sl__stored_id_valid(q, strlen(q)));
    /* The default workspace: names stay exactly as they are. */
    assert_int_equal(sl__ws_qualify("", "jobs", q, sizeof q), SL_OK);
    assert_string_equal(q, "jobs");
    assert_int_equal(sl__ws_qualify(NULL, "jobs", q, sizeof q), SL_OK);
    assert_string_equal(sl__ws_name(q), "jobs");
    assert_true(sl__ws_owns("", q));
    assert_false(sl__ws_owns("acme", q));
    /* A name that would not fit a channel id once qualified is refused, not cut. */
    char longest[SL_CHANNEL_ID_MAX + 1];
    memset(longest, 'x', SL_CHANNEL_ID_MAX);
    longest[SL_CHANNEL_ID_MAX] = '\0';
    assert_int_equal(sl__ws_qualify("", longest, q, sizeof q), SL_OK);
    assert_int_equal(sl__ws_qualify("w", longest, q, sizeof q), SL_EBADID);
    /* Stored ids: plain, or a valid workspace before one '/'. */
    const char *bad[] = {"/jobs",      "acme/",      "a.b/jobs", "acme/b/jobs",
                         "acme/jobs/", "ac me/jobs", "acme/$",   "acme//jobs"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(sl__stored_id_valid(bad[i], strlen(bad[i])));
    assert_true(sl__stored_id_valid("acme/$secret", 12));
    assert_true(sl__stored_principal_valid("acme/alice", 10));
    assert_true(sl__stored_principal_valid("alice", 5));
    assert_false(sl__stored_principal_valid("a.b/alice", 9));
    assert_false(sl__stored_principal_valid("acme/", 5));
}

static void test_decide_step(void **state)
{
    (void)state;
    sl_identity who;
    sl_identity_local(&who, "alice");
    snprintf(who.workspace, sizeof who.workspace, "acme");
    const sl_op_info *read = sl_op_lookup(SL_OP_CHANNEL_READ);
    const sl_op_info *grant = sl_op_lookup(SL_OP_ACL_GRANT);
    char qid[SL__QID_SIZE];
    const char *r = "news";
    assert_int_equal(sl__ws_decide(&who, read, &r, qid), SL_OK);
    assert_string_equal(r, "news");
    assert_string_equal(qid, "acme/news");
    r = "acme/news"; /* a transport's internal id of the caller's own workspace */
    assert_int_equal(sl__ws_decide(&who, read, &r, qid), SL_OK);
    assert_string_equal(r, "news");
    assert_string_equal(qid, "acme/news");
    r = "beta/news"; /* another workspace's */
    assert_int_equal(sl__ws_decide(&who, read, &r, qid), SL_EFORBIDDEN);
    r = "beta/bob";
    assert_int_equal(sl__ws_decide(&who, grant, &r, qid), SL_EFORBIDDEN);
    r = "bob";
    assert_int_equal(sl__ws_decide(&who, grant, &r, qid), SL_OK);
    /* Revocation is across workspaces: inside one, only the caller's own. */
    const sl_op_info *revoke = sl_op_lookup(SL_OP_TOKEN_REVOKE);
    r = "alice";
    assert_int_equal(sl__ws_decide(&who, revoke, &r, qid), SL_OK);
    r = "bob";
    assert_int_equal(sl__ws_decide(&who, revoke, &r, qid), SL_EFORBIDDEN);
    r = "*";
    assert_int_equal(sl__ws_decide(&who, revoke, &r, qid), SL_EFORBIDDEN);
    /* A default-workspace caller cannot name any workspace's channel. */
    sl_identity home;
    sl_identity_local(&home, "alice");
    r = "acme/news";
    assert_int_equal(sl__ws_decide(&home, read, &r, qid), SL_EFORBIDDEN);
    /* An identity whose workspace is no workspace name fails closed. */
    snprintf(who.workspace, sizeof who.workspace, "a.b");
    r = "news";
    assert_int_equal(sl__ws_decide(&who, read, &r, qid), SL_EFORBIDDEN);
    char qp[SL__QPRINCIPAL_SIZE];
    snprintf(who.workspace, sizeof who.workspace, "acme");
    assert_string_equal(sl__ws_principal(&who, qp), "acme/alice");
    assert_string_equal(sl__ws_principal(&home, qp), "alice");
}

static sl_identity member(const char *principal, const char *ws, sl_source source)
{
    sl_identity id;
    sl_identity_local(&id, principal);
    id.source = source;
    snprintf(id.workspace, sizeof id.workspace, "%s", ws);
    return id;
}

static void test_channel_api_isolation(void **state)
{
    (void)state;
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_OPEN};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl_identity acme = member("alice", "acme", SL_SOURCE_LOCAL);
    sl_identity beta = member("alice", "beta", SL_SOURCE_LOCAL);
    sl_identity home = member("alice", "", SL_SOURCE_LOCAL);
    sl_channel_opts co;
    sl_channel_opts_init(&co);
    co.kind = SL_KIND_TOPIC;
    sl_status st;
    assert_int_equal(sl_channel_create(ctx, &acme, "news", &co, &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, &beta, "news", &co, &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, &acme, "only", &co, &st), SL_OK);
    sl_write w = {.data = "1", .data_len = 1};
    assert_int_equal(sl_channel_write(ctx, &acme, "news", &w, NULL, 0, &st), SL_OK);
    sl_read rd = {.limit = 10, .after = "0000000000000000"};
    sl_message_list l;
    assert_int_equal(sl_channel_read(ctx, &beta, "news", &rd, &l, &st), SL_OK);
    assert_int_equal(l.len, 0);
    sl_message_list_free(&l);
    assert_int_equal(sl_channel_read(ctx, &acme, "news", &rd, &l, &st), SL_OK);
    assert_int_equal(l.len, 1);
    sl_message_list_free(&l);
    /* Listings: own channels under own names. */
    sl_channel_info *infos;
    size_t n;
    assert_int_equal(sl_channel_list(ctx, &acme, &infos, &n, &st), SL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(infos[0].id, "news");
    assert_string_equal(infos[0].dead_letter, "news.dead");
    assert_string_equal(infos[1].id, "only");
    sl_channel_infos_free(infos, n);
    assert_int_equal(sl_channel_list(ctx, &home, &infos, &n, &st), SL_OK);
    assert_int_equal(n, 0);
    sl_channel_infos_free(infos, n);
    /* Another workspace's channel is not there, and says so under the caller's name. */
    assert_int_equal(sl_channel_write(ctx, &beta, "only", &w, NULL, 0, &st), SL_ENOENT);
    assert_string_equal(st.message, "channel 'only' not found");
    /* Forged internal names are not channel ids, whoever sends them. */
    assert_int_equal(sl_channel_write(ctx, &beta, "acme/news", &w, NULL, 0, &st), SL_EBADID);
    assert_null(strstr(st.message, "acme"));
    assert_int_equal(sl_channel_write(ctx, &home, "acme/news", &w, NULL, 0, &st), SL_EBADID);
    assert_int_equal(sl_channel_write(ctx, NULL, "acme/news", &w, NULL, 0, &st), SL_EBADID);
    assert_int_equal(sl_channel_create(ctx, &beta, "acme/x", &co, &st), SL_EBADID);
    /* A transport's internal id of the caller's own workspace is that channel. */
    assert_int_equal(sl_channel_write(ctx, &acme, "acme/news", &w, NULL, 0, &st), SL_OK);
    sl_channel_info info;
    assert_int_equal(sl_channel_info_get(ctx, &acme, "news", &info, &st), SL_OK);
    assert_string_equal(info.id, "news");
    sl_channel_info_clear(&info);
    assert_int_equal(sl_channel_delete(ctx, &beta, "news", &st), SL_OK);
    assert_int_equal(sl_channel_read(ctx, &acme, "news", &rd, &l, &st), SL_OK);
    assert_int_equal(l.len, 2);
    sl_message_list_free(&l);
    sl_ctx_free(ctx);
}

static void test_acl_per_workspace(void **state)
{
    (void)state;
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_ACL};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl_status st;
    /* An operator with its own (default-workspace) admin grant, crossed into each workspace. */
    assert_int_equal(sl_acl_grant(ctx, NULL, "ops", SL_ROLE_ADMIN, NULL, 0, &st), SL_OK);
    sl_identity acme_ops = member("ops", "acme", SL_SOURCE_JWT);
    sl_identity beta_ops = member("ops", "beta", SL_SOURCE_JWT);
    acme_ops.crossed = beta_ops.crossed = 1;
    /* A namesake inside a workspace has no grant of the operator's. */
    sl_identity inside = member("ops", "acme", SL_SOURCE_JWT);
    assert_int_equal(sl_authorize(ctx, &inside, SL_OP_ACL_LIST, NULL, &st), SL_EFORBIDDEN);
    const char *pats[] = {"news"};
    assert_int_equal(sl_acl_grant(ctx, &acme_ops, "bob", SL_ROLE_WRITE, pats, 1, &st), SL_OK);
    sl_identity bob_acme = member("bob", "acme", SL_SOURCE_JWT);
    sl_identity bob_beta = member("bob", "beta", SL_SOURCE_JWT);
    sl_identity bob_home = member("bob", "", SL_SOURCE_JWT);
    assert_int_equal(sl_authorize(ctx, &bob_acme, SL_OP_CHANNEL_WRITE, "news", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &bob_beta, SL_OP_CHANNEL_WRITE, "news", &st), SL_EFORBIDDEN);
    assert_int_equal(sl_authorize(ctx, &bob_home, SL_OP_CHANNEL_WRITE, "news", &st), SL_EFORBIDDEN);
    sl_acl_entry *e;
    size_t n;
    assert_int_equal(sl_acl_list(ctx, &acme_ops, &e, &n, &st), SL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].principal, "bob");
    sl_acl_entries_free(e, n);
    assert_int_equal(sl_acl_list(ctx, &beta_ops, &e, &n, &st), SL_OK);
    assert_int_equal(n, 0);
    sl_acl_entries_free(e, n);
    sl_identity home_ops = member("ops", "", SL_SOURCE_JWT);
    assert_int_equal(sl_acl_list(ctx, &home_ops, &e, &n, &st), SL_OK);
    assert_int_equal(n, 1); /* its own grant only, not acme's bob */
    assert_string_equal(e[0].principal, "ops");
    sl_acl_entries_free(e, n);
    assert_int_equal(sl_acl_revoke(ctx, &beta_ops, "bob", &st), SL_ENOENT);
    assert_int_equal(sl_acl_revoke(ctx, &acme_ops, "bob", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &bob_acme, SL_OP_CHANNEL_WRITE, "news", &st), SL_EFORBIDDEN);
    sl_ctx_free(ctx);
}

static void test_operator_crossing(void **state)
{
    (void)state;
    sl__workspaces *w;
    sl_status st;
    assert_int_equal(sl__workspaces_new(&w), SL_OK);
    assert_int_equal(sl__workspaces_parse_operators(w, "ops, root-2", &st), SL_OK);
    sl_identity ops = member("ops", "", SL_SOURCE_JWT);
    assert_int_equal(sl__ws_cross(w, &ops, "acme", &st), SL_OK);
    assert_string_equal(ops.workspace, "acme");
    assert_true(ops.crossed);
    char qp[SL__QPRINCIPAL_SIZE];
    assert_string_equal(sl__ws_principal(&ops, qp), "ops"); /* its own grants */
    /* Once inside, not again; a namesake inside a workspace, another principal, an anonymous
     * caller and a bad name are refused. */
    assert_int_equal(sl__ws_cross(w, &ops, "beta", &st), SL_EFORBIDDEN);
    sl_identity inside = member("ops", "beta", SL_SOURCE_JWT);
    assert_int_equal(sl__ws_cross(w, &inside, "acme", &st), SL_EFORBIDDEN);
    assert_string_equal(inside.workspace, "beta");
    sl_identity other = member("root", "", SL_SOURCE_JWT);
    assert_int_equal(sl__ws_cross(w, &other, "acme", &st), SL_EFORBIDDEN);
    sl_identity anon = member("ops", "", SL_SOURCE_NONE);
    assert_int_equal(sl__ws_cross(w, &anon, "acme", &st), SL_EFORBIDDEN);
    sl_identity ops2 = member("ops", "", SL_SOURCE_JWT);
    assert_int_equal(sl__ws_cross(w, &ops2, "a/b", &st), SL_EINVAL);
    assert_int_equal(sl__ws_cross(NULL, &ops2, "acme", &st), SL_EFORBIDDEN);
    assert_int_equal(sl__workspaces_parse_operators(w, "bad/name", &st), SL_EINVAL);
    sl__workspaces_free(w);
}

static void test_limits(void **state)
{
    (void)state;
    sl__workspaces *w;
    sl_status st;
    assert_int_equal(sl__workspaces_new(&w), SL_OK);
    assert_int_equal(sl__workspaces_parse_limits(
                         w, "small:channels=2,connections=1;fast:rate=3 *:rate=100", &st),
                     SL_OK);
    const char *bad[] = {"small",      "small:chan=1", "small:channels=-1", "small:channels=x",
                         "a.b:rate=1", "small:rate",   "small:rate=1e20"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sl__workspaces_parse_limits(w, bad[i], &st), SL_EINVAL);
    assert_int_equal(sl__ws_limits_of(w, "small")->channels, 2);
    assert_int_equal(sl__ws_limits_of(w, "small")->rate, 0); /* its own entry has no rate */
    assert_int_equal(sl__ws_limits_of(w, "other")->rate, 100);
    assert_int_equal(sl__ws_limits_of(w, "")->rate, 0); /* the default workspace: none */
    /* Commands per second: a bucket of `rate`, refilled continuously. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl__ws_charge(w, "fast", 1000.0, &st), SL_OK);
    assert_int_equal(sl__ws_charge(w, "fast", 1000.0, &st), SL_EQUOTA);
    assert_null(strstr(st.message, "fast"));
    assert_int_equal(sl__ws_charge(w, "fast", 1000.1, &st), SL_EQUOTA);
    assert_int_equal(sl__ws_charge(w, "fast", 1000.4, &st), SL_OK);
    assert_int_equal(sl__ws_charge(w, "fast", 1000.4, &st), SL_EQUOTA);
    assert_int_equal(sl__ws_charge(w, "fast", 1100.0, &st), SL_OK); /* capped at 3, not 300 */
    assert_int_equal(sl__ws_charge(w, "fast", 1100.0, &st), SL_OK);
    assert_int_equal(sl__ws_charge(w, "fast", 1100.0, &st), SL_OK);
    assert_int_equal(sl__ws_charge(w, "fast", 1100.0, &st), SL_EQUOTA);
    assert_int_equal(sl__ws_charge(w, "small", 1000.0, &st), SL_OK); /* no rate limit */
    assert_int_equal(sl__ws_charge(w, "", 1000.0, &st), SL_OK);
    /* Connections. */
    assert_int_equal(sl__ws_connect(w, "small", &st), SL_OK);
    assert_int_equal(sl__ws_connect(w, "small", &st), SL_EQUOTA);
    assert_null(strstr(st.message, "small"));
    sl__ws_disconnect(w, "small");
    assert_int_equal(sl__ws_connect(w, "small", &st), SL_OK);
    assert_int_equal(sl__ws_connect(w, "", &st), SL_OK);
    /* Channels. */
    assert_int_equal(sl__ws_channel_room(w, "small", 1, &st), SL_OK);
    assert_int_equal(sl__ws_channel_room(w, "small", 2, &st), SL_EQUOTA);
    assert_int_equal(sl__ws_channel_room(w, "other", 1000, &st), SL_OK);
    sl__workspaces_free(w);
}

static void test_channel_limit_through_the_api(void **state)
{
    (void)state;
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_OPEN};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl__workspaces *w;
    sl_status st;
    assert_int_equal(sl__workspaces_new(&w), SL_OK);
    assert_int_equal(sl__workspaces_parse_limits(w, "small:channels=2", &st), SL_OK);
    ctx->workspaces = w;
    sl_identity small = member("alice", "small", SL_SOURCE_LOCAL);
    sl_identity big = member("alice", "big", SL_SOURCE_LOCAL);
    assert_int_equal(sl_channel_create(ctx, &small, "a", NULL, &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, &small, "b", NULL, &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, &small, "c", NULL, &st), SL_EQUOTA);
    assert_int_equal(sl_channel_create(ctx, &big, "c", NULL, &st), SL_OK);
    assert_int_equal(sl_channel_delete(ctx, &small, "a", &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, &small, "c", NULL, &st), SL_OK);
    sl_ctx_free(ctx);
    sl__workspaces_free(w);
}

static double pinned(void *ud)
{
    return *(double *)ud;
}

static void test_messages_limit(void **state)
{
    (void)state;
    double now = 1000;
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_OPEN, .clock = pinned, .clock_ud = &now};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl__workspaces *w;
    sl_status st;
    assert_int_equal(sl__workspaces_new(&w), SL_OK);
    assert_int_equal(sl__workspaces_parse_limits(w, "full:messages=5", &st), SL_OK);
    ctx->workspaces = w;
    sl_identity full = member("alice", "full", SL_SOURCE_LOCAL);
    sl_identity other = member("alice", "other", SL_SOURCE_LOCAL);
    assert_int_equal(sl_channel_create(ctx, &full, "q", NULL, &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, &full, "r", NULL, &st), SL_OK);
    assert_int_equal(sl_channel_create(ctx, &other, "q", NULL, &st), SL_OK);
    sl_write one = {.data = "1", .data_len = 1};
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_channel_write(ctx, &full, "q", &one, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_channel_write(ctx, &full, "r", &one, NULL, 0, &st), SL_OK);
    /* A batch that does not fit is refused whole; one that fits is stored. */
    sl_write three[3] = {one, one, one};
    assert_int_equal(sl_channel_write_batch(ctx, &full, "r", three, 3, NULL, NULL, &st), SL_EQUOTA);
    assert_null(strstr(st.message, "full"));
    assert_int_equal(sl_channel_write(ctx, &full, "r", &one, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_channel_write(ctx, &full, "q", &one, NULL, 0, &st), SL_EQUOTA);
    /* Other workspaces are not held by it. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(sl_channel_write(ctx, &other, "q", &one, NULL, 0, &st), SL_OK);
    /* Room freed by a consumer shows at the next count (at most a second later). */
    sl_read rd = {.limit = 2, .exclusive = 1};
    sl_message_list l;
    assert_int_equal(sl_channel_read(ctx, &full, "q", &rd, &l, &st), SL_OK);
    assert_int_equal(l.len, 2);
    const char *ids[2] = {l.items[0].id, l.items[1].id};
    size_t n = 0;
    assert_int_equal(sl_channel_ack(ctx, &full, "q", ids, 2, &n, &st), SL_OK);
    assert_int_equal(n, 2);
    sl_message_list_free(&l);
    now += 2;
    assert_int_equal(sl_channel_write(ctx, &full, "q", &one, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_channel_write(ctx, &full, "q", &one, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_channel_write(ctx, &full, "q", &one, NULL, 0, &st), SL_EQUOTA);
    /* Deleting a channel frees its messages at the next count too. */
    assert_int_equal(sl_channel_delete(ctx, &full, "r", &st), SL_OK);
    now += 2;
    assert_int_equal(sl_channel_write(ctx, &full, "q", &one, NULL, 0, &st), SL_OK);
    sl_ctx_free(ctx);
    sl__workspaces_free(w);
}

static void test_jwt_ws_claim(void **state)
{
    (void)state;
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    const char secret[] = "0123456789abcdef0123456789abcdef";
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, secret, sizeof secret - 1), SL_OK);
    sl_jwt_claims c = {.sub = "alice", .role = SL_ROLE_READ, .exp = 2e9, .workspace = "acme"};
    char *tok = NULL;
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_OK);
    sl_jwt_verify_opts vo;
    sl_jwt_verify_opts_init(&vo);
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    assert_int_equal(sl_jwt_verify(kr, tok, strlen(tok), &vo, 1e9, &id, &st), SL_OK);
    assert_string_equal(id.workspace, "acme");
    sl_identity_clear(&id);
    free(tok);
    c.workspace = "a/b"; /* not a workspace name: nothing is signed */
    assert_int_not_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_OK);
    c.workspace = NULL;
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_OK);
    assert_int_equal(sl_jwt_verify(kr, tok, strlen(tok), &vo, 1e9, &id, &st), SL_OK);
    assert_string_equal(id.workspace, "");
    sl_identity_clear(&id);
    free(tok);
    sl_jwt_keyring_free(kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qualify_round_trip),
        cmocka_unit_test(test_decide_step),
        cmocka_unit_test(test_channel_api_isolation),
        cmocka_unit_test(test_acl_per_workspace),
        cmocka_unit_test(test_operator_crossing),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_channel_limit_through_the_api),
        cmocka_unit_test(test_messages_limit),
        cmocka_unit_test(test_jwt_ws_claim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
