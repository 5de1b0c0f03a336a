/* The authoriser: the role hierarchy under acl, token claims under token mode, narrowing of an ACL
 * by a token, local trust, open mode, global operations, the denial messages and their audit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/broker.h>
#include <sluice/sluice.h>

typedef struct {
    int records;
    char last[1024];
    int fail;
} audit_log;

static int sink(void *ud, const char *rec, sl_status *st)
{
    audit_log *a = ud;
    if (a->fail)
        return sl_status_set(st, SL_EUNAVAIL, "audit log unavailable: test");
    a->records++;
    snprintf(a->last, sizeof a->last, "%s", rec);
    return SL_OK;
}

static sl_ctx *new_ctx(sl_mode mode)
{
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = mode};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    return ctx;
}

/* A network identity as an authenticator would produce it. */
static void token_identity(sl_identity *id, const char *sub, sl_role role, const char *scope)
{
    sl_identity_init(id);
    id->source = SL_SOURCE_JWT;
    snprintf(id->principal, sizeof id->principal, "%s", sub);
    id->role = role;
    if (scope) {
        id->scoped = 1;
        id->channels = calloc(1, sizeof *id->channels);
        id->channels[0] = strdup(scope);
        id->nchannels = 1;
    }
}

static void test_acl_hierarchy(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_ACL);
    sl_status st;
    assert_int_equal(sl_acl_grant(ctx, NULL, "reader", SL_ROLE_READ, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_acl_grant(ctx, NULL, "writer", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_acl_grant(ctx, NULL, "admin", SL_ROLE_ADMIN, NULL, 0, &st), SL_OK);
    const char *who[] = {"reader", "writer", "admin", "nobody"};
    int level[] = {SL_ROLE_READ, SL_ROLE_WRITE, SL_ROLE_ADMIN, SL_ROLE_NONE};
    for (sl_op op = SL_OP_CHANNEL_INFO; op <= SL_OP_CHANNEL_DELETE; op++) {
        const sl_op_info *info = sl_op_lookup(op);
        for (int i = 0; i < 4; i++) {
            sl_identity id;
            sl_identity_local(&id, who[i]);
            int rc = sl_authorize(ctx, &id, op, "jobs", &st);
            int want = level[i] >= (int)info->role ? SL_OK : SL_EFORBIDDEN;
            if (rc != want)
                fail_msg("%s %s: %d", who[i], info->name, rc);
        }
    }
    sl_ctx_free(ctx);
}

static void test_acl_patterns_and_messages(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_ACL);
    audit_log a = {0};
    sl_ctx_set_audit(ctx, sink, &a);
    sl_status st;
    const char *pats[] = {"orders.*", "jobs"};
    assert_int_equal(sl_acl_grant(ctx, NULL, "w", SL_ROLE_WRITE, pats, 2, &st), SL_OK);
    sl_identity id;
    sl_identity_local(&id, "w");
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_WRITE, "orders.eu", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_WRITE, "jobs", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_WRITE, "orders", &st), SL_EFORBIDDEN);
    assert_string_equal(st.message, "'w' is not authorised to write to channel 'orders'.");
    assert_int_equal(a.records, 1 + 1); /* the grant, then the denial */
    assert_non_null(strstr(a.last, "\"event\":\"authz.denied\""));
    assert_non_null(strstr(a.last, "\"operation\":\"channel.write\""));

    sl_identity rogue;
    sl_identity_local(&rogue, "rogue-process");
    assert_int_equal(sl_authorize(ctx, &rogue, SL_OP_CHANNEL_READ, "jobs", &st), SL_EFORBIDDEN);
    assert_string_equal(st.message,
                        "'rogue-process' is not authorised to read from channel 'jobs'.");
    assert_int_equal(sl_authorize(ctx, &rogue, SL_OP_CHANNEL_ACK, "jobs", &st), SL_EFORBIDDEN);
    assert_string_equal(st.message,
                        "'rogue-process' is not authorised to acknowledge on channel 'jobs'.");
    assert_int_equal(sl_authorize(ctx, &rogue, SL_OP_CHANNEL_CLEAR, "jobs", &st), SL_EFORBIDDEN);
    assert_string_equal(st.message,
                        "'rogue-process' is not authorised to administer channel 'jobs'.");
    /* Global operations need the role on all channels: a pattern-limited admin is not enough. */
    const char *one[] = {"jobs"};
    assert_int_equal(sl_acl_grant(ctx, NULL, "jobs-admin", SL_ROLE_ADMIN, one, 1, &st), SL_OK);
    sl_identity ja;
    sl_identity_local(&ja, "jobs-admin");
    assert_int_equal(sl_authorize(ctx, &ja, SL_OP_CHANNEL_CLEAR, "jobs", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &ja, SL_OP_ACL_LIST, NULL, &st), SL_EFORBIDDEN);
    assert_string_equal(st.message, "'jobs-admin' is not authorised to manage the ACL.");
    /* Runtime revoke takes effect on the very next call. */
    assert_int_equal(sl_acl_revoke(ctx, NULL, "w", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_WRITE, "jobs", &st), SL_EFORBIDDEN);
    assert_int_equal(sl_acl_revoke(ctx, NULL, "w", &st), SL_ENOENT);
    sl_ctx_free(ctx);
}

static void test_acl_change_refused_without_audit(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_ACL);
    audit_log a = {0};
    sl_ctx_set_audit(ctx, sink, &a);
    sl_status st;
    assert_int_equal(sl_acl_grant(ctx, NULL, "bob", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    a.fail = 1;
    assert_int_equal(sl_acl_grant(ctx, NULL, "eve", SL_ROLE_ADMIN, NULL, 0, &st), SL_EUNAVAIL);
    assert_string_equal(st.message, "audit log unavailable: test");
    assert_int_equal(sl_acl_revoke(ctx, NULL, "bob", &st), SL_EUNAVAIL);
    /* Neither change was made. */
    sl_identity eve, bob;
    sl_identity_local(&eve, "eve");
    sl_identity_local(&bob, "bob");
    assert_int_equal(sl_authorize(ctx, &eve, SL_OP_CHANNEL_READ, "jobs", &st), SL_EFORBIDDEN);
    assert_int_equal(sl_authorize(ctx, &bob, SL_OP_CHANNEL_WRITE, "jobs", &st), SL_OK);
    /* Denials are still answered when their record cannot be kept (they change nothing). */
    a.fail = 0;
    assert_int_equal(sl_acl_revoke(ctx, NULL, "bob", &st), SL_OK);
    assert_int_equal(sl_acl_revoke(ctx, NULL, "bob", &st), SL_ENOENT);
    sl_ctx_free(ctx);
}

static void test_token_mode(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_TOKEN);
    sl_status st;
    sl_identity id;
    token_identity(&id, "worker-1", SL_ROLE_WRITE, "jobs");
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_READ, "jobs", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_ACK, "jobs", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_CLEAR, "jobs", &st), SL_EFORBIDDEN);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_READ, "other", &st), SL_EFORBIDDEN);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_LIST, NULL, &st), SL_OK);
    sl_identity_clear(&id);
    /* Unscoped admin token: everything, including global operations. */
    token_identity(&id, "ops-tool", SL_ROLE_ADMIN, NULL);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_ACL_GRANT, "x", &st), SL_OK);
    sl_identity_clear(&id);
    /* A scoped admin cannot manage the ACL; a token without a role gets nothing. */
    token_identity(&id, "a", SL_ROLE_ADMIN, "jobs");
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_ACL_LIST, NULL, &st), SL_EFORBIDDEN);
    sl_identity_clear(&id);
    token_identity(&id, "norole", SL_ROLE_NONE, NULL);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_READ, "jobs", &st), SL_EFORBIDDEN);
    sl_identity_clear(&id);
    /* In-process callers are trusted under token mode (the tutorial's part 2). */
    sl_identity local;
    sl_identity_local(&local, "any-local-system");
    assert_int_equal(sl_authorize(ctx, &local, SL_OP_CHANNEL_WRITE, "jobs", &st), SL_OK);
    /* Anonymous network callers must authenticate. */
    sl_identity anon;
    sl_identity_init(&anon);
    strcpy(anon.principal, "anonymous");
    assert_int_equal(sl_authorize(ctx, &anon, SL_OP_CHANNEL_READ, "jobs", &st), SL_EUNAUTH);
    assert_int_equal(sl_authorize(ctx, &anon, SL_OP_HEALTH, NULL, &st), SL_OK);
    sl_ctx_free(ctx);
}

static void test_acl_narrowed_by_token(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_ACL);
    sl_status st;
    assert_int_equal(sl_acl_grant(ctx, NULL, "svc", SL_ROLE_ADMIN, NULL, 0, &st), SL_OK);
    sl_identity id;
    token_identity(&id, "svc", SL_ROLE_READ, "orders.*");
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_READ, "orders.eu", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_WRITE, "orders.eu", &st), SL_EFORBIDDEN);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_READ, "jobs", &st), SL_EFORBIDDEN);
    sl_identity_clear(&id);
    /* A token cannot widen: admin claim for a read-only principal stays read. */
    assert_int_equal(sl_acl_grant(ctx, NULL, "ro", SL_ROLE_READ, NULL, 0, &st), SL_OK);
    token_identity(&id, "ro", SL_ROLE_ADMIN, NULL);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_READ, "jobs", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_WRITE, "jobs", &st), SL_EFORBIDDEN);
    sl_identity_clear(&id);
    /* A token for a principal with no grant gets nothing. */
    token_identity(&id, "stranger", SL_ROLE_ADMIN, NULL);
    assert_int_equal(sl_authorize(ctx, &id, SL_OP_CHANNEL_READ, "jobs", &st), SL_EFORBIDDEN);
    sl_identity_clear(&id);
    sl_ctx_free(ctx);
}

static void test_open_and_per_channel_mode(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    sl_status st;
    sl_identity anon;
    sl_identity_init(&anon);
    assert_int_equal(sl_authorize(ctx, &anon, SL_OP_CHANNEL_CLEAR, "jobs", &st), SL_OK);
    /* A channel can demand the ACL on an otherwise open server. */
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    o.mode = SL_MODE_ACL;
    assert_int_equal(sl_channel_create(ctx, NULL, "secure", &o, &st), SL_OK);
    sl_identity bob;
    sl_identity_local(&bob, "bob");
    assert_int_equal(sl_authorize(ctx, &bob, SL_OP_CHANNEL_READ, "secure", &st), SL_EFORBIDDEN);
    assert_int_equal(sl_authorize(ctx, &bob, SL_OP_CHANNEL_READ, "other", &st), SL_OK);
    sl_ctx_free(ctx);
}

/* Minting tokens is the broker's decision under every mode: even an open server neither hands
 * tokens to anonymous callers nor lets anyone delegate without a rule. */
static void test_broker_operations_ignore_open_mode(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    sl_broker *b;
    assert_int_equal(sl_broker_new(&b, NULL), SL_OK);
    const char *users[] = {"user-*"};
    assert_int_equal(sl_broker_allow_delegation(b, "gateway", users, 1), SL_OK);
    sl_ctx_set_broker(ctx, b);
    sl_status st;
    sl_identity anon;
    sl_identity_init(&anon);
    strcpy(anon.principal, "anonymous");
    assert_int_equal(sl_authorize(ctx, &anon, SL_OP_TOKEN_ISSUE, NULL, &st), SL_EUNAUTH);
    assert_int_equal(sl_authorize(ctx, &anon, SL_OP_TOKEN_DELEGATE, "user-1", &st), SL_EUNAUTH);
    sl_identity key;
    sl_identity_init(&key);
    key.source = SL_SOURCE_APIKEY;
    strcpy(key.principal, "mallory");
    assert_int_equal(sl_authorize(ctx, &key, SL_OP_TOKEN_ISSUE, NULL, &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &key, SL_OP_TOKEN_DELEGATE, "user-1", &st), SL_EFORBIDDEN);
    strcpy(key.principal, "gateway");
    assert_int_equal(sl_authorize(ctx, &key, SL_OP_TOKEN_DELEGATE, "user-1", &st), SL_OK);
    assert_int_equal(sl_authorize(ctx, &key, SL_OP_TOKEN_DELEGATE, "admin", &st), SL_EFORBIDDEN);
    sl_ctx_free(ctx);
    sl_broker_free(b);
}

static void test_registry(void **state)
{
    (void)state;
    for (int op = 0; op < SL_OP__COUNT; op++) {
        const sl_op_info *i = sl_op_lookup((sl_op)op);
        assert_non_null(i);
        assert_int_equal(i->op, op);
        assert_ptr_equal(sl_op_by_name(i->name), i);
    }
    assert_null(sl_op_lookup(SL_OP__COUNT));
    assert_null(sl_op_by_name("channel.nope"));
    assert_int_equal(sl_op_lookup(SL_OP_CHANNEL_WRITE)->role, SL_ROLE_WRITE);
    assert_int_equal(sl_op_lookup(SL_OP_CHANNEL_READ)->role, SL_ROLE_READ);
    assert_int_equal(sl_op_lookup(SL_OP_ACL_GRANT)->role, SL_ROLE_ADMIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acl_hierarchy),
        cmocka_unit_test(test_acl_patterns_and_messages),
        cmocka_unit_test(test_acl_change_refused_without_audit),
        cmocka_unit_test(test_token_mode),
        cmocka_unit_test(test_acl_narrowed_by_token),
        cmocka_unit_test(test_open_and_per_channel_mode),
        cmocka_unit_test(test_broker_operations_ignore_open_mode),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
