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

static void test_subscription_tokens(void **state)
{
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    sl_authn a = {0};
    sl_jwt_verify_opts_init(&a.jwt);
    double exp = -1, now = 1700000000;
    /* No keys: nothing can be verified. */
    assert_int_equal(sl_authn_subscription(&a, TOK_OK, "alice", "$x", now, &exp), SL_ETOKEN);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SUB_SECRET, strlen(SUB_SECRET)), SL_OK);
    a.keys = kr;
    assert_int_equal(sl_authn_subscription(&a, TOK_OK, "alice", "$x", now, &exp), SL_OK);
    assert_true(exp == 2000000000);
    assert_int_equal(sl_authn_subscription(&a, TOK_OTHER_CHANNEL, "alice", "$x", now, &exp),
                     SL_EFORBIDDEN);
    assert_true(exp == 0);
    assert_int_equal(sl_authn_subscription(&a, TOK_OTHER_USER, "alice", "$x", now, &exp),
                     SL_EFORBIDDEN);
    assert_int_equal(sl_authn_subscription(&a, TOK_NO_CHANNEL, "alice", "$x", now, &exp),
                     SL_EFORBIDDEN);
    assert_int_equal(sl_authn_subscription(&a, TOK_EXPIRED, "alice", "$x", now, &exp), SL_EEXPIRED);
    assert_int_equal(sl_authn_subscription(&a, TOK_BAD_SIG, "alice", "$x", now, &exp), SL_ETOKEN);
    assert_int_equal(sl_authn_subscription(&a, TOK_NO_EXP, "alice", "$x", now, &exp), SL_ETOKEN);
    a.jwt.exp_optional = 1; /* still refused: a subscription token must expire */
    assert_int_equal(sl_authn_subscription(&a, TOK_NO_EXP, "alice", "$x", now, &exp), SL_ETOKEN);
    assert_int_equal(sl_authn_subscription(&a, "garbage", "alice", "$x", now, &exp), SL_ETOKEN);
    assert_int_equal(sl_authn_subscription(&a, NULL, "alice", "$x", now, &exp), SL_ETOKEN);
    sl_jwt_keyring_free(kr);
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
    char hdr[1024];
    snprintf(hdr, sizeof hdr, "Bearer %s", tok);
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    assert_int_equal(sl_authn_bearer(&a, hdr, strlen(hdr), now, &id, &st), SL_OK);
    assert_string_equal(id.principal, "worker-1");
    assert_int_equal(id.source, SL_SOURCE_JWT);
    assert_int_equal(id.role, SL_ROLE_WRITE);
    assert_string_equal(id.token_id, "t-1");
    sl_identity_clear(&id);
    assert_int_equal(sl_authn_bearer(&a, NULL, 0, now, &id, &st), SL_EUNAUTH);
    assert_int_equal(sl_authn_bearer(&a, "Basic eA==", 10, now, &id, &st), SL_EUNAUTH);
    assert_int_equal(sl_authn_bearer(&a, hdr, strlen(hdr), now + 3600, &id, &st), SL_EEXPIRED);
    assert_null(strstr(st.message, tok));
    hdr[strlen(hdr) - 3] ^= 1;
    assert_int_equal(sl_authn_bearer(&a, hdr, strlen(hdr), now, &id, &st), SL_ETOKEN);
    /* No keys: an open server; everyone is anonymous whatever they send. */
    sl_authn open = {0};
    assert_int_equal(sl_authn_bearer(&open, hdr, strlen(hdr), now, &id, &st), SL_OK);
    assert_int_equal(id.source, SL_SOURCE_NONE);
    assert_string_equal(id.principal, "anonymous");
    free(tok);
    sl_jwt_keyring_free(kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_subscription_tokens),
        cmocka_unit_test(test_bearer_parsing),
        cmocka_unit_test(test_authn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
