/* Deny rules beat allows in the ACL, the broker and the invoke policy (the seed's
 * own example included), the invoke policy's durability and audit records, and user-limited
 * channels (ids, patterns, the broker's "#{sub}" roles and the decision). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ctx.h"
#include "security/acl.h"
#include "security/invoke.h"
#include "security/secstore.h"
#include "server/config.h"
#include "store/kv.h"

#include <sluice/broker.h>
#include <sluice/sluice.h>

typedef struct {
    int records;
    char all[8192];
} audit_log;

static int sink(void *ud, const char *rec, sl_status *st)
{
    (void)st;
    audit_log *a = ud;
    a->records++;
    size_t n = strlen(a->all);
    snprintf(a->all + n, sizeof a->all - n, "%s\n", rec);
    return SL_OK;
}

static sl_ctx *new_ctx(sl_mode mode)
{
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = mode};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    return ctx;
}

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

static int authz(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *res)
{
    sl_status st;
    return sl_authorize(ctx, who, op, res, &st);
}

/* ---- user-limited ids ------------------------------------------------------------------------ */

static int idok(const char *s)
{
    return sl_channel_id_valid(s, strlen(s));
}

static int patok(const char *s)
{
    return sl_pattern_valid(s, strlen(s));
}

static void test_user_limited_ids(void **state)
{
    (void)state;
    const char *good[] = {"inbox#alice", "chat#alice,bob", "a.b:c#x", "$priv#u-1",
                          "news#alice.smith@example.com"};
    const char *bad[] = {"inbox#",     "#alice",   "inbox#alice,", "inbox#,alice",
                         "inbox#a,,b", "inbox##a", "inbox#a#b",    "inbox#a b",
                         "inbox#a/b",  "inbox.#a", "inbox#a:b"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!idok(good[i]))
            fail_msg("should be valid: %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (idok(bad[i]))
            fail_msg("should be invalid: %s", bad[i]);
    assert_true(patok("inbox#alice"));
    assert_true(patok("users.*.inbox#alice"));
    assert_false(patok("inbox.*#alice")); /* the user list follows a literal segment */
    assert_false(patok("inbox.**#alice"));
    assert_false(patok("inbox#*"));
    /* the list is part of its segment: "*" is one segment even when a user id holds a '.' */
    assert_true(sl_pattern_match("*", "inbox#alice.smith"));
    assert_true(sl_pattern_match("inbox#alice.smith", "inbox#alice.smith"));
    assert_false(sl_pattern_match("inbox#alice", "inbox#alice.smith"));
    assert_true(sl_pattern_match("**", "chat#a,b"));
    assert_string_equal(sl_channel_users("chat#alice,bob"), "alice,bob");
    assert_null(sl_channel_users("chat"));
    assert_true(sl_channel_user_listed("chat#alice,bob", "bob"));
    assert_true(sl_channel_user_listed("chat#alice,bob", "alice"));
    assert_false(sl_channel_user_listed("chat#alice,bob", "ali"));
    assert_false(sl_channel_user_listed("chat#alice,bob", "alice,bob"));
    assert_false(sl_channel_user_listed("chat", "alice"));
    assert_true(sl_channel_user_valid("alice", 5));
    assert_false(sl_channel_user_valid("a,b", 3));
    assert_false(sl_channel_user_valid("a#b", 3));
    /* a user-limited queue's dead letters stay limited to its users */
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    sl_status st;
    assert_int_equal(sl_channel_create(ctx, NULL, "inbox#alice", NULL, &st), SL_OK);
    sl_channel_info info;
    assert_int_equal(sl_channel_info_get(ctx, NULL, "inbox#alice", &info, &st), SL_OK);
    assert_string_equal(info.dead_letter, "inbox.dead#alice");
    sl_channel_info_clear(&info);
    sl_ctx_free(ctx);
}

static void test_user_limited_decision(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_TOKEN);
    sl_identity alice, bob, bobw, admin, anon;
    token_identity(&alice, "alice", SL_ROLE_READ, "elsewhere"); /* no scope over the inbox */
    token_identity(&bob, "bob", SL_ROLE_ADMIN, "**");
    token_identity(&bobw, "bob", SL_ROLE_WRITE, "inbox#alice");
    token_identity(&admin, "ops", SL_ROLE_ADMIN, NULL);
    sl_identity_init(&anon);
    assert_int_equal(authz(ctx, &alice, SL_OP_CHANNEL_READ, "inbox#alice"), SL_OK);
    assert_int_equal(authz(ctx, &alice, SL_OP_CHANNEL_INFO, "chat#bob,alice"), SL_OK);
    /* reading is the listed users' alone, whatever role or scope */
    assert_int_equal(authz(ctx, &bob, SL_OP_CHANNEL_READ, "inbox#alice"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &admin, SL_OP_CHANNEL_READ, "inbox#alice"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &admin, SL_OP_CHANNEL_INFO, "inbox#alice"), SL_EFORBIDDEN);
    /* but writing and administering stay with the regime */
    assert_int_equal(authz(ctx, &bobw, SL_OP_CHANNEL_WRITE, "inbox#alice"), SL_OK);
    assert_int_equal(authz(ctx, &admin, SL_OP_CHANNEL_DELETE, "inbox#alice"), SL_OK);
    assert_int_equal(authz(ctx, &alice, SL_OP_CHANNEL_WRITE, "inbox#alice"), SL_EFORBIDDEN);
    /* a listed user without a read role gets nothing from the list */
    sl_identity norole;
    token_identity(&norole, "alice", SL_ROLE_NONE, NULL);
    assert_int_equal(authz(ctx, &norole, SL_OP_CHANNEL_READ, "inbox#alice"), SL_EFORBIDDEN);
    sl_ctx_set_mode(ctx, SL_MODE_OPEN); /* open mode: still only the listed users read */
    assert_int_equal(authz(ctx, &anon, SL_OP_CHANNEL_READ, "inbox#alice"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &anon, SL_OP_CHANNEL_READ, "inbox"), SL_OK);
    sl_identity_clear(&alice);
    sl_identity_clear(&bob);
    sl_identity_clear(&bobw);
    sl_identity_clear(&admin);
    sl_ctx_free(ctx);
}

/* ---- deny rules ------------------------------------------------------------------------------ */

static void test_acl_deny_beats_allow(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_ACL);
    sl_status st;
    const char *all[] = {"**"}, *deny[] = {"secret.**"};
    assert_int_equal(sl_acl_grant_deny(ctx, NULL, "alice", SL_ROLE_WRITE, all, 1, deny, 1, &st),
                     SL_OK);
    sl_identity a;
    sl_identity_local(&a, "alice");
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "jobs"), SL_OK);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "secret.plans"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_READ, "secret"), SL_EFORBIDDEN); /* ** : none */
    /* a token scoped to the denied channel does not help, in token mode either */
    sl_identity t;
    token_identity(&t, "alice", SL_ROLE_ADMIN, "secret.**");
    assert_int_equal(authz(ctx, &t, SL_OP_CHANNEL_READ, "secret.plans"), SL_EFORBIDDEN);
    sl_ctx_set_mode(ctx, SL_MODE_TOKEN);
    assert_int_equal(authz(ctx, &t, SL_OP_CHANNEL_READ, "secret.plans"), SL_EFORBIDDEN);
    sl_identity_clear(&t);
    /* listing gives the deny patterns back */
    sl_acl_entry *e;
    size_t n;
    assert_int_equal(sl_acl_list(ctx, NULL, &e, &n, &st), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].ndeny, 1);
    assert_string_equal(e[0].deny[0], "secret.**");
    sl_acl_entries_free(e, n);
    /* a global operation is denied only by a deny of every channel */
    const char *every[] = {"**"};
    assert_int_equal(sl_acl_grant_deny(ctx, NULL, "ops", SL_ROLE_ADMIN, NULL, 0, deny, 1, &st),
                     SL_OK);
    sl_ctx_set_mode(ctx, SL_MODE_ACL);
    sl_identity ops;
    sl_identity_local(&ops, "ops");
    assert_int_equal(authz(ctx, &ops, SL_OP_ACL_LIST, NULL), SL_OK);
    assert_int_equal(sl_acl_grant_deny(ctx, NULL, "ops", SL_ROLE_ADMIN, NULL, 0, every, 1, &st),
                     SL_OK);
    assert_int_equal(authz(ctx, &ops, SL_OP_ACL_LIST, NULL), SL_EFORBIDDEN);
    const char *badp[] = {"a..b"};
    assert_int_equal(sl_acl_grant_deny(ctx, NULL, "x", SL_ROLE_READ, NULL, 0, badp, 1, &st),
                     SL_EINVAL);
    sl_ctx_free(ctx);
}

/* Stored grants: "deny" round-trips, and a record from before deny rules still loads. */
static void test_acl_deny_stored(void **state)
{
    (void)state;
    sl__acl *acl;
    sl_status st;
    assert_int_equal(sl__acl_new(&acl), SL_OK);
    const char *old = "{\"v\":1,\"role\":\"read\",\"channels\":[\"jobs.*\"]}";
    assert_int_equal(sl__acl_apply(acl, "old", 3, old, strlen(old), &st), SL__APPLY_CHANGED);
    assert_int_equal(sl__acl_role(acl, "old", "jobs.a"), SL_ROLE_READ);
    const char *neu = "{\"v\":1,\"role\":\"write\",\"deny\":[\"jobs.secret\"]}";
    assert_int_equal(sl__acl_apply(acl, "new", 3, neu, strlen(neu), &st), SL__APPLY_CHANGED);
    assert_int_equal(sl__acl_role(acl, "new", "jobs.a"), SL_ROLE_WRITE);
    assert_int_equal(sl__acl_role(acl, "new", "jobs.secret"), SL_ROLE_NONE);
    assert_true(sl__acl_denied(acl, "new", "jobs.secret"));
    const char *bad = "{\"v\":1,\"role\":\"write\",\"deny\":[]}";
    assert_int_equal(sl__acl_apply(acl, "bad", 3, bad, strlen(bad), &st), SL_EFORMAT);
    sl__acl_free(acl);

    char dir[] = "/tmp/sluice-rules-acl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    sl_ctx_options o = {.mode = SL_MODE_ACL, .data_dir = dir};
    sl_ctx *ctx;
    assert_int_equal(sl_ctx_open(&ctx, &o, &st), SL_OK);
    const char *deny[] = {"secret.**"};
    assert_int_equal(sl_acl_grant_deny(ctx, NULL, "alice", SL_ROLE_WRITE, NULL, 0, deny, 1, &st),
                     SL_OK);
    sl_ctx_free(ctx);
    assert_int_equal(sl_ctx_open(&ctx, &o, &st), SL_OK);
    sl_identity a;
    sl_identity_local(&a, "alice");
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "jobs"), SL_OK);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "secret.x"), SL_EFORBIDDEN);
    sl_ctx_free(ctx);
}

static void test_broker_deny(void **state)
{
    (void)state;
    sl_broker *b;
    assert_int_equal(sl_broker_new(&b, NULL), SL_OK);
    const char *all[] = {"**"}, *noadmin[] = {"admin.**"}, *adm[] = {"admin.**"};
    assert_int_equal(sl_broker_set_role_deny(b, "worker", SL_ROLE_WRITE, all, 1, noadmin, 1),
                     SL_OK);
    assert_int_equal(sl_broker_set_role(b, "ops", SL_ROLE_ADMIN, adm, 1), SL_OK);
    const char *roles[] = {"worker", "ops"};
    assert_int_equal(sl_broker_assign(b, "svc", roles, 2), SL_OK);
    const char *want[] = {"jobs", "admin.users"};
    sl_broker_decision d;
    assert_int_equal(sl_broker_decide(b, NULL, "svc", want, 2, &d), SL_OK);
    assert_int_equal(d.ngranted, 1);
    assert_string_equal(d.granted[0], "jobs");
    assert_int_equal(d.ndenied, 1);
    assert_string_equal(d.denied[0].channel, "admin.users");
    assert_string_equal(d.denied[0].reason, "denied by a role's deny rule");
    sl_broker_decision_clear(&d);
    assert_true(sl_broker_denies(b, "svc", "admin.x"));
    assert_false(sl_broker_denies(b, "svc", "jobs"));
    assert_false(sl_broker_denies(b, "other", "admin.x"));

    /* at request time too: a token scoped to the denied channel (minted before, or by hand) */
    sl_ctx *ctx = new_ctx(SL_MODE_TOKEN);
    sl_ctx_set_broker(ctx, b);
    sl_identity t;
    token_identity(&t, "svc", SL_ROLE_ADMIN, "admin.**");
    assert_int_equal(authz(ctx, &t, SL_OP_CHANNEL_READ, "admin.users"), SL_EFORBIDDEN);
    sl_identity_clear(&t);
    token_identity(&t, "svc", SL_ROLE_WRITE, NULL);
    assert_int_equal(authz(ctx, &t, SL_OP_CHANNEL_WRITE, "jobs"), SL_OK);
    sl_identity_clear(&t);
    sl_ctx_free(ctx);

    /* "#{sub}" roles: the asking principal's own user-limited channel, nobody else's */
    const char *mine[] = {"inbox#{sub}"};
    assert_int_equal(sl_broker_set_role(b, "inbox", SL_ROLE_READ, mine, 1), SL_OK);
    const char *bad[] = {"inbox.*#{sub}"};
    assert_int_equal(sl_broker_set_role(b, "bad", SL_ROLE_READ, bad, 1), SL_EINVAL);
    const char *r1[] = {"inbox"};
    assert_int_equal(sl_broker_assign(b, "alice", r1, 1), SL_OK);
    assert_int_equal(sl_broker_assign(b, "a,b", r1, 1), SL_OK);
    const char *ask[] = {"inbox#alice", "inbox#bob", "inbox#alice,bob"};
    assert_int_equal(sl_broker_decide(b, NULL, "alice", ask, 3, &d), SL_OK);
    assert_int_equal(d.ngranted, 1);
    assert_string_equal(d.granted[0], "inbox#alice");
    assert_int_equal(d.role, SL_ROLE_READ);
    sl_broker_decision_clear(&d);
    /* a principal that is not a valid user id expands nothing (no widening to two users) */
    const char *ask2[] = {"inbox#a,b"};
    assert_int_equal(sl_broker_decide(b, NULL, "a,b", ask2, 1, &d), SL_OK);
    assert_int_equal(d.ngranted, 0);
    sl_broker_decision_clear(&d);
    sl_broker_free(b);
}

/* ---- the invoke policy ----------------------------------------------------------------------- */

/* The seed's example, kernel.set_policy("untrusted-app", {"invoke_allow": ["public.*"],
 * "invoke_deny": ["admin.*"], "audit": True}), in sluice's terms. */
static void test_invoke_seed_example(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    audit_log log = {0};
    sl_ctx_set_audit(ctx, sink, &log);
    sl_status st;
    const char *allow[] = {"*:public.*"}, *deny[] = {"*:admin.*"};
    assert_int_equal(sl__invoke_set(ctx->invoke, "untrusted-app", allow, 1, deny, 1, 1, &st),
                     SL_OK);
    sl_identity app, other;
    sl_identity_local(&app, "untrusted-app");
    sl_identity_local(&other, "trusted-app");
    assert_int_equal(authz(ctx, &app, SL_OP_CHANNEL_READ, "public.news"), SL_OK);
    assert_int_equal(authz(ctx, &app, SL_OP_CHANNEL_WRITE, "public.news"), SL_OK);
    assert_int_equal(authz(ctx, &app, SL_OP_CHANNEL_WRITE, "admin.users"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &app, SL_OP_CHANNEL_READ, "private.x"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &app, SL_OP_ACL_LIST, NULL), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &other, SL_OP_CHANNEL_WRITE, "admin.users"), SL_OK);
    /* every decision the policy took is audited, allow and deny, with its reason */
    assert_non_null(strstr(log.all, "\"event\":\"policy.invoke\""));
    assert_non_null(strstr(log.all, "\"operation\":\"channel.read\",\"resource\":\"public.news\","
                                    "\"decision\":\"allow\""));
    assert_non_null(strstr(log.all, "\"resource\":\"admin.users\",\"decision\":\"deny\","
                                    "\"reason\":\"denied by the invoke policy\""));
    assert_non_null(strstr(log.all, "\"resource\":\"private.x\",\"decision\":\"deny\","
                                    "\"reason\":\"not allowed by the invoke policy\""));
    assert_null(strstr(log.all, "\"trusted-app\""));
    sl_ctx_free(ctx);
}

static void test_invoke_deny_wins_and_globs(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_ACL);
    audit_log log = {0};
    sl_ctx_set_audit(ctx, sink, &log);
    sl_status st;
    assert_int_equal(sl_acl_grant(ctx, NULL, "svc-a", SL_ROLE_ADMIN, NULL, 0, &st), SL_OK);
    const char *allow[] = {"channel.*:**", "acl.list"}, *deny[] = {"channel.write:jobs.*"};
    assert_int_equal(sl__invoke_set(ctx->invoke, "svc-*", allow, 2, deny, 1, 0, &st), SL_OK);
    sl_identity a;
    sl_identity_local(&a, "svc-a");
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_READ, "jobs.x"), SL_OK);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "jobs.x"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "other"), SL_OK);
    assert_int_equal(authz(ctx, &a, SL_OP_ACL_LIST, NULL), SL_OK);
    assert_int_equal(authz(ctx, &a, SL_OP_ACL_GRANT, "x"), SL_EFORBIDDEN); /* not allowed */
    /* the policy only narrows: the regime still decides what it lets through */
    sl_identity nobody;
    sl_identity_local(&nobody, "svc-nobody");
    assert_int_equal(authz(ctx, &nobody, SL_OP_CHANNEL_READ, "jobs.x"), SL_EFORBIDDEN);
    assert_null(strstr(log.all, "policy.invoke")); /* audit off */
    /* every matching policy applies: an exact one adds its own deny */
    const char *deny2[] = {"channel.read:jobs.secret"};
    assert_int_equal(sl__invoke_set(ctx->invoke, "svc-a", NULL, 0, deny2, 1, 0, &st), SL_OK);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_READ, "jobs.secret"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_READ, "jobs.x"), SL_OK);
    /* principal resources are plain globs */
    const char *pd[] = {"acl.*:root*"};
    assert_int_equal(sl__invoke_set(ctx->invoke, "svc-a", NULL, 0, pd, 1, 0, &st), SL_OK);
    assert_int_equal(sl__invoke_del(ctx->invoke, "svc-*"), SL_OK);
    assert_int_equal(authz(ctx, &a, SL_OP_ACL_GRANT, "rooted"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &a, SL_OP_ACL_GRANT, "user"), SL_OK);
    assert_int_equal(sl__invoke_del(ctx->invoke, "svc-*"), SL_ENOENT);
    /* bad rules are refused with a reason */
    const char *bad1[] = {"nope.*:x"}, *bad2[] = {"channel.read:a..b"}, *bad3[] = {":x"};
    assert_int_equal(sl__invoke_set(ctx->invoke, "x", bad1, 1, NULL, 0, 0, &st), SL_EINVAL);
    assert_non_null(strstr(st.message, "names no operation"));
    assert_int_equal(sl__invoke_set(ctx->invoke, "x", bad2, 1, NULL, 0, 0, &st), SL_EINVAL);
    assert_non_null(strstr(st.message, "not a channel pattern"));
    assert_int_equal(sl__invoke_set(ctx->invoke, "x", NULL, 0, bad3, 1, 0, &st), SL_EINVAL);
    assert_int_equal(sl__invoke_set(ctx->invoke, "bad principal", NULL, 0, NULL, 0, 0, &st),
                     SL_EINVAL);
    json_t *l = sl__invoke_list(ctx->invoke);
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "principal")),
                        "svc-a");
    json_decref(l);
    sl_ctx_free(ctx);
}

/* Policies and deny rules belong to a workspace: a pattern set in one matches only its own
 * principals, and the default workspace's "*" matches nobody of another. */
static void test_invoke_and_deny_in_workspaces(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_TOKEN);
    sl_status st;
    const char *deny_write[] = {"channel.write:**"}, *deny_read[] = {"channel.read:**"};
    assert_int_equal(sl__invoke_set(ctx->invoke, "*", NULL, 0, deny_write, 1, 0, &st), SL_OK);
    assert_int_equal(sl__invoke_set(ctx->invoke, "acme/*", NULL, 0, deny_read, 1, 0, &st), SL_OK);
    sl_identity plain, acme;
    token_identity(&plain, "alice", SL_ROLE_WRITE, NULL);
    token_identity(&acme, "alice", SL_ROLE_WRITE, NULL);
    snprintf(acme.workspace, sizeof acme.workspace, "acme");
    assert_int_equal(authz(ctx, &plain, SL_OP_CHANNEL_WRITE, "jobs"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &plain, SL_OP_CHANNEL_READ, "jobs"), SL_OK);
    assert_int_equal(authz(ctx, &acme, SL_OP_CHANNEL_WRITE, "jobs"), SL_OK);
    assert_int_equal(authz(ctx, &acme, SL_OP_CHANNEL_READ, "jobs"), SL_EFORBIDDEN);
    /* an ACL deny rule of the default workspace's alice is not acme's alice's */
    sl_ctx_set_mode(ctx, SL_MODE_ACL);
    const char *all[] = {"**"}, *secret[] = {"secret.**"};
    assert_int_equal(sl_acl_grant_deny(ctx, NULL, "alice", SL_ROLE_WRITE, all, 1, secret, 1, &st),
                     SL_OK);
    assert_int_equal(sl__invoke_del(ctx->invoke, "*"), SL_OK);
    assert_int_equal(authz(ctx, &plain, SL_OP_CHANNEL_WRITE, "secret.x"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &plain, SL_OP_CHANNEL_WRITE, "open.x"), SL_OK);
    assert_int_equal(authz(ctx, &acme, SL_OP_CHANNEL_WRITE, "secret.x"), SL_EFORBIDDEN);
    /* acme's own grant for its alice, made inside acme: the other alice's deny is not hers */
    sl_identity acme_root;
    sl_identity_local(&acme_root, "root");
    acme_root.source = SL_SOURCE_SYSTEM; /* configuration acting inside acme */
    snprintf(acme_root.workspace, sizeof acme_root.workspace, "acme");
    assert_int_equal(sl_acl_grant(ctx, &acme_root, "alice", SL_ROLE_WRITE, all, 1, &st), SL_OK);
    assert_int_equal(authz(ctx, &acme, SL_OP_CHANNEL_WRITE, "secret.x"), SL_OK);
    sl_identity_clear(&plain);
    sl_identity_clear(&acme);
    sl_ctx_free(ctx);
}

static void committed(void *ud, int rc)
{
    *(int *)ud = rc;
}

static void test_invoke_durable(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-rules-inv-XXXXXX";
    assert_non_null(mkdtemp(dir));
    sl_ctx_options o = {.mode = SL_MODE_OPEN, .data_dir = dir};
    sl_ctx *ctx;
    sl_status st;
    assert_int_equal(sl_ctx_open(&ctx, &o, &st), SL_OK);
    const char *deny[] = {"channel.write:jobs.*"}, *allow[] = {"channel.*:**"};
    assert_int_equal(sl__invoke_set(ctx->invoke, "svc-*", allow, 1, deny, 1, 1, &st), SL_OK);
    assert_int_equal(sl__invoke_set(ctx->invoke, "gone", NULL, 0, deny, 1, 0, &st), SL_OK);
    assert_int_equal(sl__invoke_del(ctx->invoke, "gone"), SL_OK);
    int rc = SL_EINTERNAL;
    ctx->kv->ops->barrier(ctx->kv, committed, &rc); /* no loop: commits here */
    assert_int_equal(rc, SL_OK);
    sl_ctx_free(ctx);
    assert_int_equal(sl_ctx_open(&ctx, &o, &st), SL_OK);
    assert_int_equal(sl__invoke_size(ctx->invoke), 1);
    sl_identity a;
    sl_identity_local(&a, "svc-a");
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "jobs.x"), SL_EFORBIDDEN);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "other"), SL_OK);
    json_t *l = sl__invoke_list(ctx->invoke);
    json_t *p = json_array_get(l, 0);
    assert_string_equal(json_string_value(json_object_get(p, "principal")), "svc-*");
    assert_true(json_is_true(json_object_get(p, "audit")));
    json_decref(l);
    sl_ctx_free(ctx);
}

/* Another node's change (shared state on Redis) reaches the decision; bad data changes nothing. */
static void test_invoke_apply(void **state)
{
    (void)state;
    sl_ctx *ctx = new_ctx(SL_MODE_OPEN);
    sl_status st;
    sl_identity a;
    sl_identity_local(&a, "svc-a");
    const char *v = "{\"v\":1,\"deny\":[\"channel.write:jobs\"]}";
    assert_int_equal(sl__invoke_apply(ctx->invoke, "svc-*", 5, v, strlen(v), &st),
                     SL__APPLY_CHANGED);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "jobs"), SL_EFORBIDDEN);
    assert_int_equal(sl__invoke_apply(ctx->invoke, "svc-*", 5, v, strlen(v), &st), SL__APPLY_SAME);
    const char *bad = "{\"v\":1,\"deny\":[\"nope:x\"]}";
    assert_int_equal(sl__invoke_apply(ctx->invoke, "svc-*", 5, bad, strlen(bad), &st), SL_EFORMAT);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "jobs"), SL_EFORBIDDEN);
    json_t *l = sl__invoke_list(ctx->invoke);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "principal")),
                        "svc-*");
    json_decref(l);
    assert_int_equal(sl__invoke_apply(ctx->invoke, "svc-*", 5, NULL, 0, &st), SL__APPLY_REMOVED);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "jobs"), SL_OK);
    sl__secstore_entry e = {"svc-a", 5, v, strlen(v)};
    assert_int_equal(sl__invoke_apply_all(ctx->invoke, &e, 1, &st), 1);
    assert_int_equal(authz(ctx, &a, SL_OP_CHANNEL_WRITE, "jobs"), SL_EFORBIDDEN);
    sl_ctx_free(ctx);
}

/* The config file's forms: [acl] and [role] deny keys, "#{sub}" role patterns, [invoke_policy]. */
static void test_config_forms(void **state)
{
    (void)state;
    const char *text = "[acl alice]\nrole = write\ndeny = secret.**, admin.*\n"
                       "[role inbox]\ngrants = read\nchannels = inbox#{sub}, news\n"
                       "deny = news.x\n"
                       "[invoke_policy svc-*]\nallow = channel.*:public.**\n"
                       "deny = channel.write:public.locked, acl.*\naudit = true\n";
    sl__config c;
    sl_status st;
    sl__config_init(&c);
    assert_int_equal(sl__config_parse(&c, text, strlen(text), "t.conf", &st), SL_OK);
    assert_int_equal(c.ngrants, 1);
    assert_int_equal(c.grants[0].ndeny, 2);
    assert_string_equal(c.grants[0].deny[1], "admin.*");
    assert_int_equal(c.nroles, 1);
    assert_int_equal(c.roles[0].nitems, 2);
    assert_string_equal(c.roles[0].items[0], "inbox#{sub}");
    assert_int_equal(c.roles[0].ndeny, 1);
    assert_int_equal(c.ninvokes, 1);
    assert_string_equal(c.invokes[0].principal, "svc-*");
    assert_int_equal(c.invokes[0].nallow, 1);
    assert_int_equal(c.invokes[0].ndeny, 2);
    assert_true(c.invokes[0].audit);
    sl__config_free(&c);
    const char *bad[] = {"[acl a]\nrole = read\ndeny = a..b\n",
                         "[role r]\ngrants = read\nchannels = inbox.*#{sub}\n",
                         "[role r]\ngrants = read\ndeny = x#{sub}\n",
                         "[invoke_policy svc-*]\naudit = maybe\n",
                         "[invoke_policy svc-*]\nwhat = x\n",
                         "[invoke_policy bad name]\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl__config_init(&c);
        if (sl__config_parse(&c, bad[i], strlen(bad[i]), "t.conf", &st) != SL_ECONFIG)
            fail_msg("accepted: %s", bad[i]);
        sl__config_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_limited_ids),
        cmocka_unit_test(test_user_limited_decision),
        cmocka_unit_test(test_acl_deny_beats_allow),
        cmocka_unit_test(test_acl_deny_stored),
        cmocka_unit_test(test_broker_deny),
        cmocka_unit_test(test_invoke_seed_example),
        cmocka_unit_test(test_invoke_deny_wins_and_globs),
        cmocka_unit_test(test_invoke_and_deny_in_workspaces),
        cmocka_unit_test(test_invoke_durable),
        cmocka_unit_test(test_invoke_apply),
        cmocka_unit_test(test_config_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
