/* The token broker's policy: the role authorizer (patterns, strongest matching role per channel,
 * the token's least role), denials with reasons, allow-all, delegation patterns, and minting
 * (TTL default and clamp, claims that verify, act for delegation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/broker.h>
#include <sluice/jwt.h>

#define SECRET "0123456789abcdef0123456789abcdef"

static sl_broker *policy(void)
{
    sl_broker *b;
    sl_broker_opts o = {.default_ttl = 600, .max_ttl = 3600};
    assert_int_equal(sl_broker_new(&b, &o), SL_OK);
    const char *w[] = {"jobs", "orders.*"}, *r[] = {"news.**"}, *a[] = {"ops:*"};
    assert_int_equal(sl_broker_set_role(b, "workers", SL_ROLE_WRITE, w, 2), SL_OK);
    assert_int_equal(sl_broker_set_role(b, "readers", SL_ROLE_READ, r, 1), SL_OK);
    assert_int_equal(sl_broker_set_role(b, "ops", SL_ROLE_ADMIN, a, 1), SL_OK);
    const char *alice[] = {"workers", "readers"}, *root[] = {"ops", "workers"};
    assert_int_equal(sl_broker_assign(b, "alice", alice, 2), SL_OK);
    assert_int_equal(sl_broker_assign(b, "root", root, 2), SL_OK);
    return b;
}

static void test_decide(void **state)
{
    (void)state;
    sl_broker *b = policy();
    sl_broker_decision d;
    const char *req[] = {"jobs", "orders.eu", "orders", "secret", "a/b", "news.x.y"};
    assert_int_equal(sl_broker_decide(b, NULL, "alice", req, 6, &d), SL_OK);
    assert_int_equal(d.ngranted, 3);
    assert_string_equal(d.granted[0], "jobs");
    assert_string_equal(d.granted[1], "orders.eu");
    assert_string_equal(d.granted[2], "news.x.y");
    assert_int_equal(d.ndenied, 3);
    assert_string_equal(d.denied[0].channel, "orders");
    assert_string_equal(d.denied[0].reason, "no matching role");
    assert_string_equal(d.denied[2].reason, "invalid channel id");
    /* One token, one role: the least of the roles that granted something. */
    assert_int_equal(d.role, SL_ROLE_READ);
    sl_broker_decision_clear(&d);
    const char *w[] = {"jobs"};
    assert_int_equal(sl_broker_decide(b, NULL, "alice", w, 1, &d), SL_OK);
    assert_int_equal(d.role, SL_ROLE_WRITE);
    sl_broker_decision_clear(&d);
    /* The strongest matching role per channel. */
    const char *o[] = {"ops:deploy"};
    assert_int_equal(sl_broker_decide(b, NULL, "root", o, 1, &d), SL_OK);
    assert_int_equal(d.role, SL_ROLE_ADMIN);
    sl_broker_decision_clear(&d);
    /* Unknown principals get nothing; roles change at runtime. */
    assert_int_equal(sl_broker_decide(b, NULL, "mallory", w, 1, &d), SL_OK);
    assert_int_equal(d.ngranted, 0);
    assert_int_equal(d.role, SL_ROLE_NONE);
    sl_broker_decision_clear(&d);
    const char *none[] = {NULL};
    assert_int_equal(sl_broker_assign(b, "alice", none, 0), SL_OK);
    assert_int_equal(sl_broker_decide(b, NULL, "alice", w, 1, &d), SL_OK);
    assert_int_equal(d.ngranted, 0);
    sl_broker_decision_clear(&d);
    /* Hostile definitions are refused. */
    const char *badpat[] = {"a.**.b"};
    assert_int_equal(sl_broker_set_role(b, "x", SL_ROLE_READ, badpat, 1), SL_EINVAL);
    assert_int_equal(sl_broker_set_role(b, "bad name", SL_ROLE_READ, w, 1), SL_EINVAL);
    assert_int_equal(sl_broker_set_role(b, "x", SL_ROLE_NONE, w, 1), SL_EINVAL);
    sl_broker_free(b);
}

static void test_allow_all(void **state)
{
    (void)state;
    sl_broker *b;
    sl_broker_opts o = {.allow_all = 1};
    assert_int_equal(sl_broker_new(&b, &o), SL_OK);
    sl_broker_decision d;
    const char *req[] = {"anything", "at:all", "bad id"};
    assert_int_equal(sl_broker_decide(b, NULL, "whoever", req, 3, &d), SL_OK);
    assert_int_equal(d.ngranted, 2);
    assert_int_equal(d.ndenied, 1);
    assert_int_equal(d.role, SL_ROLE_WRITE);
    sl_broker_decision_clear(&d);
    sl_broker_free(b);
}

/* A custom authorizer: grants channels under the principal's own name, with read. */
static int own_prefix(void *ud, const char *principal, const char *const *channels, size_t n,
                      sl_broker_decision *d)
{
    int *calls = ud;
    (*calls)++;
    d->granted = calloc(n, sizeof *d->granted);
    d->denied = calloc(n, sizeof *d->denied);
    size_t plen = strlen(principal);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(channels[i], principal, plen) == 0 && channels[i][plen] == '.')
            d->granted[d->ngranted++] = strdup(channels[i]);
        else {
            d->denied[d->ndenied].channel = strdup(channels[i]);
            d->denied[d->ndenied++].reason = "not yours";
        }
    }
    d->role = d->ngranted ? SL_ROLE_READ : SL_ROLE_NONE;
    return SL_OK;
}

static int failing(void *ud, const char *principal, const char *const *channels, size_t n,
                   sl_broker_decision *d)
{
    return SL_EUNAVAIL;
}

static void test_custom_authorizer(void **state)
{
    (void)state;
    sl_broker *b = policy();
    int calls = 0;
    sl_broker_set_authorizer(b, own_prefix, &calls);
    sl_broker_decision d;
    const char *req[] = {"alice.inbox", "bob.inbox", "jobs"};
    assert_int_equal(sl_broker_decide(b, NULL, "alice", req, 3, &d), SL_OK);
    assert_int_equal(calls, 1);
    assert_int_equal(d.ngranted, 1);
    assert_string_equal(d.granted[0], "alice.inbox");
    assert_int_equal(d.ndenied, 2);
    assert_string_equal(d.denied[1].reason, "not yours");
    sl_broker_decision_clear(&d);
    sl_broker_set_authorizer(b, failing, NULL);
    assert_int_equal(sl_broker_decide(b, NULL, "alice", req, 3, &d), SL_EUNAVAIL);
    assert_int_equal(d.ngranted + d.ndenied, 0);
    /* Back to the built-in role authorizer. */
    sl_broker_set_authorizer(b, NULL, NULL);
    assert_int_equal(sl_broker_decide(b, NULL, "alice", req, 3, &d), SL_OK);
    assert_int_equal(d.ngranted, 1);
    assert_string_equal(d.granted[0], "jobs");
    sl_broker_decision_clear(&d);
    sl_broker_free(b);
}

static void test_delegation(void **state)
{
    (void)state;
    sl_broker *b = policy();
    const char *pats[] = {"user-*", "svc-billing"};
    assert_int_equal(sl_broker_allow_delegation(b, "gateway", pats, 2), SL_OK);
    assert_true(sl_broker_may_delegate(b, "gateway", "user-42"));
    assert_true(sl_broker_may_delegate(b, "gateway", "svc-billing"));
    assert_false(sl_broker_may_delegate(b, "gateway", "svc-billing2"));
    assert_false(sl_broker_may_delegate(b, "gateway", "admin"));
    assert_false(sl_broker_may_delegate(b, "other", "user-42"));
    assert_false(sl_broker_may_delegate(b, NULL, "user-42"));
    const char *bad[] = {"a*b*"};
    assert_int_equal(sl_broker_allow_delegation(b, "gateway", bad, 1), SL_EINVAL);
    const char *any[] = {"*"};
    assert_int_equal(sl_broker_allow_delegation(b, "root-svc", any, 1), SL_OK);
    assert_true(sl_broker_may_delegate(b, "root-svc", "anyone"));
    sl_broker_free(b);
}

static void test_mint(void **state)
{
    (void)state;
    sl_broker *b = policy();
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SECRET, strlen(SECRET)), SL_OK);
    sl_broker_decision d;
    const char *req[] = {"jobs", "orders.eu"};
    assert_int_equal(sl_broker_decide(b, NULL, "alice", req, 2, &d), SL_OK);
    double now = 1700000000.7;
    sl_broker_token t;
    /* Too long: clamped to max_ttl. */
    assert_int_equal(sl_broker_mint(b, kr, "alice", "gateway", &d, 999999, now, &t), SL_OK);
    assert_true(t.expires_at - t.issued_at == 3600);
    assert_int_equal(strlen(t.token_id), SL_JWT_TOKEN_ID_LEN);
    /* The id is bound to its subject: provable as alice's, and as nobody else's. */
    assert_true(sl_jwt_token_id_of(kr, t.token_id, "alice"));
    assert_false(sl_jwt_token_id_of(kr, t.token_id, "alicf"));
    sl_jwt_verify_opts vo;
    sl_jwt_verify_opts_init(&vo);
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    assert_int_equal(sl_jwt_verify(kr, t.token, strlen(t.token), &vo, now, &id, &st), SL_OK);
    assert_string_equal(id.principal, "alice");
    assert_int_equal(id.role, SL_ROLE_WRITE);
    assert_true(id.scoped);
    assert_int_equal(id.nchannels, 2);
    assert_string_equal(id.token_id, t.token_id);
    sl_identity_clear(&id);
    char *h, *p;
    assert_int_equal(sl_jwt_decode_unverified(t.token, strlen(t.token), &h, &p), SL_OK);
    assert_non_null(strstr(p, "\"act\":{\"sub\":\"gateway\"}"));
    free(h);
    free(p);
    char first[SL_JWT_TOKEN_ID_LEN + 1];
    strcpy(first, t.token_id);
    free(t.token);
    /* Absent: the default; ids never repeat. */
    assert_int_equal(sl_broker_mint(b, kr, "alice", NULL, &d, 0, now, &t), SL_OK);
    assert_true(t.expires_at - t.issued_at == 600);
    assert_string_not_equal(first, t.token_id);
    free(t.token);
    sl_broker_decision_clear(&d);
    /* Nothing granted: nothing minted. */
    const char *none[] = {"secret"};
    assert_int_equal(sl_broker_decide(b, NULL, "alice", none, 1, &d), SL_OK);
    assert_int_equal(sl_broker_mint(b, kr, "alice", NULL, &d, 0, now, &t), SL_EINVAL);
    sl_broker_decision_clear(&d);
    sl_jwt_keyring_free(kr);
    sl_broker_free(b);
}

/* Whatever is minted from a credential never exceeds it: an API key scoped to billing.a with role
 * read gets nothing for billing.b and never a write token, whatever the principal's roles say and
 * whichever authorizer decided. */
static void test_clamped_to_credential(void **state)
{
    (void)state;
    sl_broker *b = policy();
    const char *bill[] = {"billing.*"};
    assert_int_equal(sl_broker_set_role(b, "billing", SL_ROLE_WRITE, bill, 1), SL_OK);
    const char *roles[] = {"billing"};
    assert_int_equal(sl_broker_assign(b, "svc-billing", roles, 1), SL_OK);
    char pat[] = "billing.a", *pats[] = {pat};
    sl_identity key;
    sl_identity_init(&key);
    strcpy(key.principal, "svc-billing");
    key.source = SL_SOURCE_APIKEY;
    key.role = SL_ROLE_READ;
    key.scoped = 1;
    key.channels = pats;
    key.nchannels = 1;
    sl_broker_decision d;
    const char *req[] = {"billing.a", "billing.b"};
    assert_int_equal(sl_broker_decide(b, &key, "svc-billing", req, 2, &d), SL_OK);
    assert_int_equal(d.ngranted, 1);
    assert_string_equal(d.granted[0], "billing.a");
    assert_int_equal(d.role, SL_ROLE_READ);
    assert_int_equal(d.ndenied, 1);
    assert_string_equal(d.denied[0].channel, "billing.b");
    assert_string_equal(d.denied[0].reason, "outside the credential's scope");
    sl_broker_decision_clear(&d);
    /* Only channels outside the scope: nothing is granted, so nothing can be minted. */
    const char *other[] = {"billing.b"};
    assert_int_equal(sl_broker_decide(b, &key, "svc-billing", other, 1, &d), SL_OK);
    assert_int_equal(d.ngranted, 0);
    assert_int_equal(d.role, SL_ROLE_NONE);
    sl_broker_decision_clear(&d);
    /* A credential without a role or scope leaves the authorizer's answer as it is. */
    key.role = SL_ROLE_NONE;
    key.scoped = 0;
    assert_int_equal(sl_broker_decide(b, &key, "svc-billing", req, 2, &d), SL_OK);
    assert_int_equal(d.ngranted, 2);
    assert_int_equal(d.role, SL_ROLE_WRITE);
    sl_broker_decision_clear(&d);
    /* A custom authorizer is clamped the same way. */
    int calls = 0;
    sl_broker_set_authorizer(b, own_prefix, &calls);
    key.scoped = 1;
    char own[] = "alice.inbox", *ownp[] = {own};
    key.channels = ownp;
    const char *mine[] = {"alice.inbox", "alice.outbox"};
    assert_int_equal(sl_broker_decide(b, &key, "alice", mine, 2, &d), SL_OK);
    assert_int_equal(d.ngranted, 1);
    assert_string_equal(d.granted[0], "alice.inbox");
    assert_int_equal(d.ndenied, 1);
    sl_broker_decision_clear(&d);
    sl_broker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_allow_all),
        cmocka_unit_test(test_custom_authorizer),
        cmocka_unit_test(test_delegation),
        cmocka_unit_test(test_mint),
        cmocka_unit_test(test_clamped_to_credential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
