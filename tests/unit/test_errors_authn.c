/* The error table (every code has a name, a message and an HTTP status) and bearer-header
 * authentication, including hostile headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sluice/authn.h>
#include <sluice/sluice.h>

#define SECRET "0123456789abcdef0123456789abcdef"

/* Subscription tokens signed with the tests' secret by PyJWT (HS256): exp 2000000000 unless named.
 */
#define SUB_SECRET "your-32-byte-production-secret-key"
#define TOK_OK                                                                                     \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJzdWIiOiJhbGljZSIsImNoYW5uZWwiOiIkeCIsImV4cCI6MjAwMDAw"                                     \
    "MDAwMH0.SWZFFLFb1i48x5F-qH-4nUfYcafbRkdezLTxFVTPGXM"
#define TOK_OTHER_CHANNEL                                                                          \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJzdWIiOiJhbGljZSIsImNoYW5uZWwiOiIkeSIsImV4cCI6MjAwMDAw"                                     \
    "MDAwMH0.n6T3WNBDDHFOoCfeF18ZkpsFql9HOz5bj_wVKRV88uA"
#define TOK_OTHER_USER                                                                             \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJzdWIiOiJib2IiLCJjaGFubmVsIjoiJHgiLCJleHAiOjIwMDAwMDAw"                                     \
    "MDB9.AIh0inzJsqVYmqy_CLkkoKmVwr-hQxCSHCY7blP4PCc"
#define TOK_NO_EXP                                                                                 \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImNoYW5uZWwiOiIkeCJ9."               \
    "dFOMUQsndJi9v5ngr"                                                                            \
    "SrzYm--mspFqecjfXeR58kJG4k"
#define TOK_EXPIRED                                                                                \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJzdWIiOiJhbGljZSIsImNoYW5uZWwiOiIkeCIsImV4cCI6MTAwMH0."                                     \
    "nZfAb1esXy_u2ompcu-jX7lvd5qei6yVSIFe2Whi7xs"
#define TOK_NO_CHANNEL                                                                             \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMH0."            \
    "MD7LW41W6Jf_X"                                                                                \
    "J3_TFZ14P80E-9xRvIUxMcWHkXfZSw"
#define TOK_BAD_SIG                                                                                \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJzdWIiOiJhbGljZSIsImNoYW5uZWwiOiIkeCIsImV4cCI6MjAwMDAw"                                     \
    "MDAwMH0.94o0eohabIIyHsNcf48dLUP7fIJaCvgAdPnhnfFgSb4"

/* What an sl_authn_cb said (every path here answers synchronously). */
typedef struct answer {
    int calls, status;
    sl_identity who;
    char reason[128];
} answer;

static void capture(void *ud, int status, const sl_identity *who, const char *reason)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
    sl_identity_clear(&a->who);
    if (who)
        assert_int_equal(sl_identity_copy(&a->who, who), SL_OK);
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
}

static int sub_run(sl_authn *a, const char *tok, const char *user, const char *ch, double now,
                   answer *out)
{
    sl_identity_clear(&out->who);
    memset(out, 0, sizeof *out);
    sl_identity_init(&out->who);
    sl_authn_subscription_run(a, tok, user, ch, now, capture, out);
    assert_int_equal(out->calls, 1);
    return out->status;
}

static int bearer_run(sl_authn *a, const char *tok, double now, answer *out)
{
    char hdr[2048];
    snprintf(hdr, sizeof hdr, "Bearer %s", tok);
    sl_identity_clear(&out->who);
    memset(out, 0, sizeof *out);
    sl_identity_init(&out->who);
    sl_authn_run(a, hdr, strlen(hdr), now, capture, out);
    assert_int_equal(out->calls, 1);
    return out->status;
}

static void test_subscription_tokens(void **state)
{
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    sl_authn a = {0};
    sl_jwt_verify_opts_init(&a.jwt);
    double now = 1700000000;
    answer r = {0};
    /* No keys: nothing can be verified. */
    assert_int_equal(sub_run(&a, TOK_OK, "alice", "$x", now, &r), SL_ETOKEN);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SUB_SECRET, strlen(SUB_SECRET)), SL_OK);
    a.keys = kr;
    assert_int_equal(sub_run(&a, TOK_OK, "alice", "$x", now, &r), SL_OK);
    assert_true(r.who.expires_at == 2000000000);
    assert_string_equal(r.who.principal, "alice");
    assert_int_equal(sub_run(&a, TOK_OTHER_CHANNEL, "alice", "$x", now, &r), SL_EFORBIDDEN);
    assert_int_equal(sub_run(&a, TOK_OTHER_USER, "alice", "$x", now, &r), SL_EFORBIDDEN);
    /* A connection token is of the other kind: refused where a subscription token is expected. */
    assert_int_equal(sub_run(&a, TOK_NO_CHANNEL, "alice", "$x", now, &r), SL_ETOKEN);
    assert_string_equal(r.reason, "wrong kind of token");
    assert_int_equal(sub_run(&a, TOK_EXPIRED, "alice", "$x", now, &r), SL_EEXPIRED);
    assert_int_equal(sub_run(&a, TOK_BAD_SIG, "alice", "$x", now, &r), SL_ETOKEN);
    assert_int_equal(sub_run(&a, TOK_NO_EXP, "alice", "$x", now, &r), SL_ETOKEN);
    a.jwt.exp_optional = 1; /* still refused: a subscription token must expire */
    assert_int_equal(sub_run(&a, TOK_NO_EXP, "alice", "$x", now, &r), SL_ETOKEN);
    assert_int_equal(sub_run(&a, "garbage", "alice", "$x", now, &r), SL_ETOKEN);
    assert_int_equal(sub_run(&a, NULL, "alice", "$x", now, &r), SL_ETOKEN);
    sl_identity_clear(&r.who);
    sl_jwt_keyring_free(kr);
}

/* Tokens are typed: a subscription token never authenticates a caller (bearer or connection). */
static void test_subscription_token_is_not_a_bearer(void **state)
{
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SUB_SECRET, strlen(SUB_SECRET)), SL_OK);
    sl_authn a = {.keys = kr};
    sl_jwt_verify_opts_init(&a.jwt);
    answer r = {0};
    sl_identity_init(&r.who);
    assert_int_equal(bearer_run(&a, TOK_OK, 1700000000, &r), SL_ETOKEN);
    assert_string_equal(r.reason, "wrong kind of token");
    assert_int_equal(bearer_run(&a, TOK_NO_CHANNEL, 1700000000, &r), SL_OK);
    /* The same through the verifier itself, and a sluice-signed one both ways. */
    sl_jwt_claims c = {.sub = "alice", .exp = 2000000000, .channel = "$x"};
    char *tok;
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_OK);
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    assert_int_equal(sl_jwt_verify(kr, tok, strlen(tok), NULL, 1700000000, &id, &st), SL_ETOKEN);
    char ch[SL_CHANNEL_ID_MAX + 1];
    assert_int_equal(
        sl_jwt_verify_subscription(kr, tok, strlen(tok), NULL, 1700000000, &id, ch, &st), SL_OK);
    assert_string_equal(ch, "$x");
    sl_identity_clear(&id);
    free(tok);
    sl_identity_clear(&r.who);
    sl_jwt_keyring_free(kr);
}

/* A stand-in for any chain authenticator (API keys, upstream JWTs, introspection): accepts "bob".
 */
static void bob_authenticate(sl_authenticator *au, const char *cred, size_t len, double now,
                             sl_authn_cb cb, void *ud)
{
    if (len != 3 || memcmp(cred, "bob", 3) != 0) {
        cb(ud, SL_ETOKEN, NULL, "unknown");
        return;
    }
    sl_identity who;
    sl_identity_init(&who);
    strcpy(who.principal, "bob");
    strcpy(who.token_id, "key-1");
    who.source = SL_SOURCE_INTROSPECTION;
    who.issued_at = now - 100;
    cb(ud, SL_OK, &who, NULL);
}

static double fixed_clock(void *ud)
{
    return *(double *)ud;
}

static void revoked(void *ud, int status, const char *reason)
{
    assert_int_equal(status, SL_OK);
    ++*(int *)ud;
}

/* Revocation belongs to authentication: every credential of every authenticator is checked, and a
 * revoked one is 401 "token revoked" whatever its role would have allowed. */
static void test_revocation_is_authentication(void **state)
{
    double now = 1700000000;
    sl_revocation_store *rev;
    assert_int_equal(sl_revocation_memory_new(&rev, NULL, 3600, fixed_clock, &now), SL_OK);
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SUB_SECRET, strlen(SUB_SECRET)), SL_OK);
    sl_authenticator bob = {.name = "bob", .authenticate = bob_authenticate};
    sl_authn a = {.keys = kr, .chain = {&bob}, .nchain = 1, .revocation = rev};
    sl_jwt_verify_opts_init(&a.jwt);
    /* A token without a role claim (it could be allowed nothing at all). */
    sl_jwt_claims c = {.sub = "alice", .iat = now - 10, .exp = now + 600, .jti = "t-norole"};
    char *tok;
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_OK);
    answer r = {0};
    sl_identity_init(&r.who);
    assert_int_equal(bearer_run(&a, tok, now, &r), SL_OK);
    int done = 0;
    sl_revocation_revoke(rev, "t-norole", NULL, NULL, now + 600, revoked, &done);
    assert_int_equal(done, 1);
    assert_int_equal(bearer_run(&a, tok, now, &r), SL_ETOKEN);
    assert_string_equal(r.reason, "token revoked");
    /* Another authenticator's identity: its principal's cut-off applies at once. */
    assert_int_equal(bearer_run(&a, "bob", now, &r), SL_OK);
    sl_revocation_revoke_user(rev, "bob", revoked, &done);
    assert_int_equal(bearer_run(&a, "bob", now, &r), SL_ETOKEN);
    assert_string_equal(r.reason, "token revoked");
    /* A subscription token passes the same check. */
    sl_jwt_claims sc = {
        .sub = "carol", .iat = now - 5, .exp = now + 60, .jti = "sub-1", .channel = "$x"};
    char *stok;
    assert_int_equal(sl_jwt_sign(kr, NULL, &sc, &stok), SL_OK);
    assert_int_equal(sub_run(&a, stok, "carol", "$x", now, &r), SL_OK);
    assert_string_equal(r.who.token_id, "sub-1");
    sl_revocation_revoke(rev, "sub-1", NULL, NULL, now + 60, revoked, &done);
    assert_int_equal(sub_run(&a, stok, "carol", "$x", now, &r), SL_ETOKEN);
    assert_string_equal(r.reason, "token revoked");
    sl_identity_clear(&r.who);
    free(tok);
    free(stok);
    sl_jwt_keyring_free(kr);
    sl_revocation_store_free(rev);
}

/* ---- the chain over a whole request ------------------------------------------------------------
 */

typedef struct fake_req {
    const char *names[4], *values[4];
    size_t n;
} fake_req;

static const char *fake_header(const sl_authn_request *v, const char *name, size_t nth, size_t *len)
{
    const fake_req *f = v->impl;
    for (size_t i = 0; i < f->n; i++)
        if (strcasecmp(f->names[i], name) == 0 && nth-- == 0) {
            *len = strlen(f->values[i]);
            return f->values[i];
        }
    *len = 0;
    return NULL;
}

/* A request authenticator: "x-sig: good" accepts as "svc", any other x-sig is refused, none is
 * not its business. */
static void sig_authenticate(sl_authenticator *au, const sl_authn_request *req, double now,
                             sl_authn_cb cb, void *ud)
{
    (void)au;
    (void)now;
    size_t n;
    const char *v = req->header(req, "x-sig", 0, &n);
    if (v == NULL) {
        cb(ud, SL_EUNAUTH, NULL, "no signature");
        return;
    }
    if (n != 4 || memcmp(v, "good", 4) != 0) {
        cb(ud, SL_ETOKEN, NULL, "bad signature");
        return;
    }
    sl_identity id;
    sl_identity_init(&id);
    id.source = SL_SOURCE_SIGNATURE;
    strcpy(id.principal, "svc");
    cb(ud, SL_OK, &id, NULL);
}

static int request_run(sl_authn *a, fake_req *f, unsigned accept, answer *out)
{
    sl_authn_request v = {.method = "GET",
                          .scheme = "http",
                          .path = "/",
                          .query = "",
                          .body = "",
                          .header = fake_header,
                          .impl = f,
                          .accept = accept};
    sl_identity_clear(&out->who);
    memset(out, 0, sizeof *out);
    sl_identity_init(&out->who);
    sl_authn_run_request(a, &v, 1700000000, capture, out);
    assert_int_equal(out->calls, 1);
    return out->status;
}

static void test_request_chain(void **state)
{
    (void)state;
    sl_authenticator bob = {.name = "bob", .authenticate = bob_authenticate};
    sl_authenticator sig = {
        .name = "sig", .kind = SL_AUTHN_KIND_SIGNED, .authenticate_request = sig_authenticate};
    sl_authn a = {.chain = {&bob, &sig}, .nchain = 2};
    sl_jwt_verify_opts_init(&a.jwt);
    answer r = {0};
    sl_identity_init(&r.who);
    fake_req none = {.n = 0};
    assert_int_equal(request_run(&a, &none, 0, &r), SL_EUNAUTH);
    assert_string_equal(r.reason, "authentication required");
    fake_req signed_ok = {{"X-Sig"}, {"good"}, 1};
    assert_int_equal(request_run(&a, &signed_ok, 0, &r), SL_OK);
    assert_string_equal(r.who.principal, "svc");
    fake_req signed_bad = {{"x-sig"}, {"evil"}, 1};
    assert_int_equal(request_run(&a, &signed_bad, 0, &r), SL_ETOKEN);
    assert_string_equal(r.reason, "bad signature");
    fake_req bearer = {{"Authorization"}, {"Bearer bob"}, 1};
    assert_int_equal(request_run(&a, &bearer, 0, &r), SL_OK);
    assert_string_equal(r.who.principal, "bob");
    /* The route's mode: a kind it does not accept is never asked. */
    assert_int_equal(request_run(&a, &bearer, SL_AUTHN_KIND_SIGNED, &r), SL_EUNAUTH);
    assert_int_equal(request_run(&a, &signed_ok, SL_AUTHN_KIND_BEARER, &r), SL_EUNAUTH);
    /* A mode that takes no credential: anonymous, whatever is presented. */
    assert_int_equal(request_run(&a, &bearer, SL_AUTHN_ANONYMOUS, &r), SL_OK);
    assert_int_equal(r.who.source, SL_SOURCE_NONE);
    assert_int_equal(sl_authn_mode_parse("any"), 0);
    assert_int_equal(sl_authn_mode_parse("none"), SL_AUTHN_ANONYMOUS);
    assert_int_equal(sl_authn_mode_parse("signed+cert"), SL_AUTHN_KIND_SIGNED | SL_AUTHN_KIND_CERT);
    assert_int_equal(sl_authn_mode_parse("bearer"), SL_AUTHN_KIND_BEARER);
    assert_int_equal(sl_authn_mode_parse("signed+"), -1);
    assert_int_equal(sl_authn_mode_parse("+signed"), -1);
    assert_int_equal(sl_authn_mode_parse("bear"), -1);
    assert_int_equal(sl_authn_mode_parse(""), -1);
    /* A non-Bearer Authorization says so when nothing else was presented. */
    fake_req basic = {{"authorization"}, {"Basic eA=="}, 1};
    assert_int_equal(request_run(&a, &basic, 0, &r), SL_EUNAUTH);
    assert_string_equal(r.reason, "a Bearer token is required");
    /* Both presented, the bearer refused: the signature still decides. */
    fake_req both = {{"authorization", "x-sig"}, {"Bearer nobody", "good"}, 2};
    assert_int_equal(request_run(&a, &both, 0, &r), SL_OK);
    assert_string_equal(r.who.principal, "svc");
    sl_identity_clear(&r.who);
}

static void test_error_table(void **state)
{
    (void)state;
    static const int codes[] = {
#define X(sym, val, http, name, msg) SL_##sym,
        SL_ERRNO_MAP(X)
#undef X
    };
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        assert_true(codes[i] < 0);
        assert_true(strcmp(sl_strerror(codes[i]), "unknown error") != 0);
        assert_true(sl_err_http_status(codes[i]) >= 400 && sl_err_http_status(codes[i]) < 600);
        assert_true(strlen(sl_err_name(codes[i])) > 0);
        for (size_t k = 0; k < i; k++)
            assert_int_not_equal(codes[i], codes[k]);
    }
    assert_int_equal(sl_err_http_status(SL_EFORBIDDEN), 403);
    assert_int_equal(sl_err_http_status(SL_EFULL), 429);
    assert_string_equal(sl_err_name(SL_ETOKEN), "invalid_token");
    assert_string_equal(sl_strerror(12345), "unknown error");
    assert_int_equal(sl_err_http_status(12345), 500);
    sl_status st;
    assert_int_equal(sl_status_set(&st, SL_ENOENT, "channel '%s' not found", "x"), SL_ENOENT);
    assert_string_equal(st.message, "channel 'x' not found");
    assert_int_equal(sl_status_set(NULL, SL_EIO, "ignored"), SL_EIO);
}

static void test_bearer_parsing(void **state)
{
    (void)state;
    size_t n;
    const char *t = sl_authn_bearer_token("Bearer abc", 10, &n);
    assert_non_null(t);
    assert_int_equal(n, 3);
    assert_non_null(sl_authn_bearer_token("bearer   abc  ", 14, &n));
    assert_int_equal(n, 3);
    assert_null(sl_authn_bearer_token("Basic abc", 9, &n));
    assert_null(sl_authn_bearer_token("Bearer ", 7, &n));
    assert_null(sl_authn_bearer_token("Bearer", 6, &n));
    assert_null(sl_authn_bearer_token("Bearerabc", 9, &n));
    assert_null(sl_authn_bearer_token(NULL, 0, &n));
}

static void test_authn(void **state)
{
    (void)state;
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SECRET, strlen(SECRET)), SL_OK);
    sl_authn a = {.keys = kr};
    sl_jwt_verify_opts_init(&a.jwt);
    double now = 1700000000;
    sl_jwt_claims c = {
        .sub = "worker-1", .role = SL_ROLE_WRITE, .iat = now, .exp = now + 60, .jti = "t-1"};
    char *tok;
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_OK);
    answer r = {0};
    sl_identity_init(&r.who);
    assert_int_equal(bearer_run(&a, tok, now, &r), SL_OK);
    assert_string_equal(r.who.principal, "worker-1");
    assert_int_equal(r.who.source, SL_SOURCE_JWT);
    assert_int_equal(r.who.role, SL_ROLE_WRITE);
    assert_string_equal(r.who.token_id, "t-1");
    sl_authn_run(&a, NULL, 0, now, capture, &r);
    assert_int_equal(r.status, SL_EUNAUTH);
    sl_authn_run(&a, "Basic eA==", 10, now, capture, &r);
    assert_int_equal(r.status, SL_EUNAUTH);
    assert_int_equal(bearer_run(&a, tok, now + 3600, &r), SL_EEXPIRED);
    assert_null(strstr(r.reason, tok));
    tok[strlen(tok) - 3] ^= 1;
    assert_int_equal(bearer_run(&a, tok, now, &r), SL_ETOKEN);
    /* No keys: an open server; everyone is anonymous whatever they send. */
    sl_authn open = {0};
    assert_int_equal(bearer_run(&open, tok, now, &r), SL_OK);
    assert_int_equal(r.who.source, SL_SOURCE_NONE);
    assert_string_equal(r.who.principal, "anonymous");
    sl_identity_clear(&r.who);
    free(tok);
    sl_jwt_keyring_free(kr);
}

/* An identity provider's scope narrows an identity; hostile scopes are refused whole. */
static void test_apply_scope(void **state)
{
    sl_identity id;
    sl_identity_init(&id);
    const char *sc = "openid  sluice:read sluice:channel:billing.a sluice:channel:news.** profile";
    assert_int_equal(sl_identity_apply_scope(&id, sc, strlen(sc)), SL_OK);
    assert_int_equal(id.role, SL_ROLE_READ);
    assert_true(id.scoped);
    assert_int_equal(id.nchannels, 2);
    assert_string_equal(id.channels[1], "news.**");
    sl_identity_clear(&id);
    /* The highest role named; nothing of sluice's: unchanged. */
    sc = "sluice:write sluice:read";
    assert_int_equal(sl_identity_apply_scope(&id, sc, strlen(sc)), SL_OK);
    assert_int_equal(id.role, SL_ROLE_WRITE);
    assert_false(id.scoped);
    sl_identity_clear(&id);
    assert_int_equal(sl_identity_apply_scope(&id, "openid email", 12), SL_OK);
    assert_int_equal(id.role, SL_ROLE_NONE);
    assert_false(id.scoped);
    assert_int_equal(sl_identity_apply_scope(&id, "", 0), SL_OK);
    /* Unknown sluice values, bad patterns, a NUL inside: refused, identity untouched. */
    const char *bad[] = {"sluice:root", "sluice:channel:a/b", "sluice:channel:",
                         "sluice:",     "sluice:readx",       "sluice:channel:***"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sl_identity_apply_scope(&id, bad[i], strlen(bad[i])), SL_EINVAL);
        assert_false(id.scoped);
        assert_int_equal(id.role, SL_ROLE_NONE);
    }
    assert_int_equal(sl_identity_apply_scope(&id, "sluice:channel:a\0b", 17), SL_EINVAL);
    /* More values than any provider sends. */
    size_t n = 1100 * 9;
    char *many = malloc(n + 1);
    for (size_t i = 0; i < 1100; i++)
        memcpy(many + 9 * i, "sluice:a ", 9);
    many[n] = '\0';
    assert_int_equal(sl_identity_apply_scope(&id, many, n), SL_EINVAL);
    for (size_t i = 0; i < 1100; i++)
        memcpy(many + 9 * i, "openid_x ", 9);
    assert_int_equal(sl_identity_apply_scope(&id, many, n), SL_ELIMIT);
    free(many);
    sl_identity_clear(&id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_subscription_tokens),
        cmocka_unit_test(test_subscription_token_is_not_a_bearer),
        cmocka_unit_test(test_revocation_is_authentication),
        cmocka_unit_test(test_apply_scope),
        cmocka_unit_test(test_bearer_parsing),
        cmocka_unit_test(test_authn),
        cmocka_unit_test(test_request_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
