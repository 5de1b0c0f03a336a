/* Identity providers' keys: the JWKS parser (src/security/jwks.c) and the keyring's RSA, ECDSA
 * and EdDSA algorithms, against vectors made fresh by an independent implementation (PyJWT, in
 * tests/unit/jwks_vectors.py): a key set with one key of every algorithm and keys that must be
 * skipped, tokens that verify, and tokens that must not -- algorithm confusion both ways (HS256
 * keyed with the public key, "none", one RSA algorithm's signature under another's key), unknown
 * and skipped kids, tampered payloads and signatures -- each refused with its fixed reason. Also
 * documents the parser refuses whole, the same keys as PEM, and sl_jwt_header_kid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <sluice/jwks.h>
#include <sluice/jwt.h>

#include "deps.h"
#include "security/jwks.h"

static json_t *vectors; /* jwks_vectors.py's output, once per run */

static int load_vectors(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0)
        return 0;
    char src[] = __FILE__, cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/jwks_vectors.py", dirname(src));
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return 0;
    vectors = json_loadf(p, 0, NULL);
    pclose(p);
    return 0;
}

static int free_vectors(void **state)
{
    (void)state;
    json_decref(vectors);
    return 0;
}

#define NEED_VECTORS()                                                                             \
    NEED_DEP(vectors != NULL, "/usr/bin/python3 with python3-jwt and python3-cryptography "        \
                              "(tests/unit/jwks_vectors.py)")

typedef struct skips {
    char kids[32][64];
    const char *reasons[32];
    size_t n;
} skips;

static void on_skip(void *ud, size_t index, const char *kid, const char *reason)
{
    skips *s = ud;
    (void)index;
    assert_non_null(reason);
    if (s->n < 32) {
        snprintf(s->kids[s->n], sizeof s->kids[0], "%s", kid ? kid : "-");
        s->reasons[s->n] = reason;
        s->n++;
    }
}

static void on_keys(void *ud, int status, sl_jwt_keyring *keys)
{
    *(int *)ud = status;
    assert_true((status == SL_OK) == (keys != NULL));
}

static const char *vstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    assert_non_null(s);
    return s;
}

static sl_jwt_keyring *parse_vectors(skips *sk)
{
    const char *doc = vstr(vectors, "jwks");
    sl_jwt_keyring *kr = NULL;
    const char *why = "unset";
    assert_int_equal(sl__jwks_parse(doc, strlen(doc), &kr, on_skip, sk, &why), SL_OK);
    assert_null(why);
    assert_non_null(kr);
    return kr;
}

static void test_parse_skips_what_it_must(void **state)
{
    (void)state;
    NEED_VECTORS();
    skips sk = {0};
    sl_jwt_keyring *kr = parse_vectors(&sk);
    assert_int_equal(sl_jwt_keyring_size(kr),
                     (size_t)json_integer_value(json_object_get(vectors, "usable")));
    json_t *want = json_object_get(vectors, "skipped");
    assert_int_equal(sk.n, json_array_size(want));
    for (size_t i = 0; i < sk.n; i++) /* in document order, each with its kid */
        assert_string_equal(sk.kids[i], json_string_value(json_array_get(want, i)));
    /* A few reasons, as the log shows them. */
    assert_string_equal(sk.reasons[0], "symmetric keys are not taken from a key set");
    assert_string_equal(sk.reasons[1], "use is not sig");
    assert_string_equal(sk.reasons[2], "RSA key size not allowed");
    assert_string_equal(sk.reasons[3], "holds private or secret key material");
    assert_string_equal(sk.reasons[4], "curve not supported");
    assert_string_equal(sk.reasons[5], "alg not supported for this key");
    assert_string_equal(sk.reasons[7], "key_ops lacks verify");
    assert_string_equal(sk.reasons[8], "duplicate kid");
    for (size_t i = 0; i < sk.n; i++)
        assert_true(sl_jwt_keyring_has_kid(kr, sk.kids[i], strlen(sk.kids[i])) ==
                    !strcmp(sk.kids[i], "k-RS256"));
    sl_jwt_keyring_free(kr);
}

static void test_tokens_of_every_algorithm(void **state)
{
    (void)state;
    NEED_VECTORS();
    skips sk = {0};
    sl_jwt_keyring *kr = parse_vectors(&sk);
    double now = (double)json_integer_value(json_object_get(vectors, "now"));
    size_t i, good = 0;
    json_t *t;
    json_array_foreach(json_object_get(vectors, "tokens"), i, t)
    {
        const char *tok = vstr(t, "token"), *reason = vstr(t, "reason");
        sl_identity id;
        sl_identity_init(&id);
        sl_status st;
        sl_status_clear(&st);
        int rc = sl_jwt_verify(kr, tok, strlen(tok), NULL, now, &id, &st);
        if (*reason == '\0') {
            if (rc != SL_OK)
                fail_msg("%s: refused (%s)", vstr(t, "name"), st.message);
            assert_string_equal(id.principal, "idp-user");
            good++;
        } else {
            if (rc == SL_OK)
                fail_msg("%s: accepted", vstr(t, "name"));
            if (strcmp(st.message, reason) != 0)
                fail_msg("%s: '%s', expected '%s'", vstr(t, "name"), st.message, reason);
            assert_string_equal(id.principal, "");
        }
        sl_identity_clear(&id);
    }
    assert_int_equal(good, 7);
    sl_jwt_keyring_free(kr);
}

static void test_same_keys_as_pem(void **state)
{
    (void)state;
    NEED_VECTORS();
    double now = (double)json_integer_value(json_object_get(vectors, "now"));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(vectors, "pems"), i, p)
    {
        const char *alg = vstr(p, "alg"), *pem = vstr(p, "pem"), *tok = vstr(p, "token");
        sl_jwt_keyring *kr;
        assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
        /* Refused for another algorithm's name, and never as an HMAC secret. */
        const char *other = !strcmp(alg, "EdDSA") ? "ES256" : "EdDSA";
        assert_int_equal(sl_jwt_keyring_add_pem(kr, "k", other, pem, strlen(pem)), SL_EINVAL);
        assert_int_equal(sl_jwt_keyring_add_pem(kr, "k", "HS256", pem, strlen(pem)), SL_EINVAL);
        assert_int_equal(sl_jwt_keyring_add_pem(kr, "k", "none", pem, strlen(pem)), SL_EINVAL);
        assert_int_equal(sl_jwt_keyring_size(kr), 0);
        char kid[32];
        snprintf(kid, sizeof kid, "k-%s", alg);
        assert_int_equal(sl_jwt_keyring_add_pem(kr, kid, alg, pem, strlen(pem)), SL_OK);
        sl_identity id;
        sl_identity_init(&id);
        sl_status st;
        sl_status_clear(&st);
        if (sl_jwt_verify(kr, tok, strlen(tok), NULL, now, &id, &st) != SL_OK)
            fail_msg("%s from PEM: %s", alg, st.message);
        sl_identity_clear(&id);
        /* A public key cannot sign. */
        sl_jwt_claims c = {.sub = "x"};
        char *out = NULL;
        assert_int_equal(sl_jwt_sign(kr, kid, &c, &out), SL_EINVAL);
        assert_null(out);
        sl_jwt_keyring_free(kr);
    }
    /* RSA under 2048 bits is refused. */
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    const char *small = vstr(vectors, "small_pem");
    assert_int_equal(sl_jwt_keyring_add_pem(kr, NULL, "RS256", small, strlen(small)), SL_EINVAL);
    sl_jwt_keyring_free(kr);
}

static void test_documents_refused_whole(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *why;
    } cases[] = {
        {"", "not JSON"},
        {"[1]", "no keys array"},
        {"{}", "no keys array"},
        {"{\"keys\":{}}", "no keys array"},
        {"{\"keys\":[]}", "no usable key"},
        {"{\"keys\":[],\"keys\":[]}", "not JSON"}, /* duplicate members: read no way at all */
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
         "no usable key"},
        {"{\"keys\":[1, \"x\", null, {}]}", "no usable key"},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}", "no usable key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_jwt_keyring *kr = (sl_jwt_keyring *)1;
        const char *why = NULL;
        assert_int_equal(sl__jwks_parse(cases[i].doc, strlen(cases[i].doc), &kr, NULL, NULL, &why),
                         SL_EINVAL);
        assert_null(kr);
        assert_non_null(why);
        assert_string_equal(why, cases[i].why);
    }
    /* One Ed25519 key without kid becomes the default key; a second one without kid is skipped. */
    const char *two = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
                      "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},{\"kty\":\"OKP\",\"crv\":"
                      "\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
    skips sk = {0};
    sl_jwt_keyring *kr = NULL;
    assert_int_equal(sl__jwks_parse(two, strlen(two), &kr, on_skip, &sk, NULL), SL_OK);
    assert_int_equal(sl_jwt_keyring_size(kr), 1);
    assert_true(sl_jwt_keyring_has_kid(kr, NULL, 0));
    assert_int_equal(sk.n, 1);
    assert_string_equal(sk.reasons[0], "a second key without kid");
    sl_jwt_keyring_free(kr);
    /* Too large a document. */
    char *big = calloc(1, SL__JWKS_DOC_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', SL__JWKS_DOC_MAX + 1);
    const char *why = NULL;
    assert_int_equal(sl__jwks_parse(big, SL__JWKS_DOC_MAX + 1, &kr, NULL, NULL, &why), SL_EINVAL);
    free(big);
}

static void test_header_kid(void **state)
{
    (void)state;
    char kid[SL_JWT_KID_MAX + 1];
    size_t n = 99;
    /* {"alg":"RS256","kid":"abc"} and {"alg":"RS256"} */
    const char *with = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.e30.c2ln";
    const char *without = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    assert_int_equal(sl_jwt_header_kid(with, strlen(with), kid, &n), SL_OK);
    assert_string_equal(kid, "abc");
    assert_int_equal(n, 3);
    assert_int_equal(sl_jwt_header_kid(without, strlen(without), kid, &n), SL_OK);
    assert_int_equal(n, 0);
    assert_string_equal(kid, "");
    /* {"alg":"RS256","kid":7}, and not a token at all */
    const char *numeric = "eyJhbGciOiJSUzI1NiIsImtpZCI6N30.e30.c2ln";
    assert_int_equal(sl_jwt_header_kid(numeric, strlen(numeric), kid, &n), SL_ETOKEN);
    assert_int_equal(sl_jwt_header_kid("a.b", 3, kid, &n), SL_ETOKEN);
    assert_int_equal(sl_jwt_header_kid("", 0, kid, &n), SL_ETOKEN);
}

static void test_cache_lifetime(void **state)
{
    (void)state;
    const double now = 1700000000.0;
    assert_true(sl__jwks_lifetime("", "", "", now) == -1);
    assert_true(sl__jwks_lifetime("public, max-age=3600", "", "", now) == 3600);
    assert_true(sl__jwks_lifetime("max-age=600, must-revalidate", "", "", now) == 600);
    assert_true(sl__jwks_lifetime("max-age=600,max-age=60", "", "", now) == 60);
    assert_true(sl__jwks_lifetime("MAX-AGE=\"90\"", "", "", now) == 90);
    assert_true(sl__jwks_lifetime("no-store", "", "", now) == 0);
    assert_true(sl__jwks_lifetime("max-age=600, no-cache", "", "", now) == 0);
    assert_true(sl__jwks_lifetime("max-age=", "", "", now) == 0);
    assert_true(sl__jwks_lifetime("max-age=abc", "", "", now) == 0);
    /* max-age wins over Expires (RFC 9111 section 5.3). */
    assert_true(sl__jwks_lifetime("max-age=5", "Thu, 01 Jan 2037 00:00:00 GMT", "", now) == 5);
    assert_true(sl__jwks_lifetime("", "Tue, 14 Nov 2023 22:23:20 GMT",
                                  "Tue, 14 Nov 2023 22:13:20 GMT", now) == 600);
    /* Without Date, against our clock (1700000000 is 2023-11-14 22:13:20 UTC). */
    assert_true(sl__jwks_lifetime("", "Tue, 14 Nov 2023 22:14:20 GMT", "", now) == 60);
    assert_true(sl__jwks_lifetime("", "Tue, 14 Nov 2023 22:00:00 GMT", "", now) == 0);
    assert_true(sl__jwks_lifetime("", "0", "", now) == 0);
    assert_true(sl__jwks_lifetime("", "not a date", "", now) == 0);
    assert_true(sl__jwks_lifetime("public", "", "", now) == -1);
}

static void test_client_options(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_jwks *j = NULL;
    sl_jwks_opts o;
    sl_jwks_opts_init(&o);
    assert_int_equal(sl_jwks_new(&j, &loop, &o, NULL, NULL), SL_EINVAL); /* neither */
    o.url = "http://idp.example.com/keys"; /* plain http over a network */
    assert_int_equal(sl_jwks_new(&j, &loop, &o, NULL, NULL), SL_EINVAL);
    o.url = "https://user:pw@idp.example.com/keys";
    assert_int_equal(sl_jwks_new(&j, &loop, &o, NULL, NULL), SL_EINVAL);
    o.url = "ftp://idp.example.com/keys";
    assert_int_equal(sl_jwks_new(&j, &loop, &o, NULL, NULL), SL_EINVAL);
    o.url = NULL;
    o.issuer = "http://idp.example.com";
    assert_int_equal(sl_jwks_new(&j, &loop, &o, NULL, NULL), SL_EINVAL);
    o.issuer = "http://127.0.0.1:1/realm/";
    o.refresh_min = 10;
    o.refresh_max = 5;
    assert_int_equal(sl_jwks_new(&j, &loop, &o, NULL, NULL), SL_EINVAL);
    assert_null(j);
    /* A provider nobody listens on: the first fetch fails, waiting callers hear SL_EUNAVAIL, and
     * within the interval no second fetch is started for them. */
    o.refresh_min = o.refresh_max = 0;
    o.unknown_kid_interval = 3600;
    assert_int_equal(sl_jwks_new(&j, &loop, &o, NULL, NULL), SL_OK);
    int got = -1;
    sl_jwks_wait(j, "k", 1, on_keys, &got);
    assert_int_equal(got, -1); /* waits for the start-up fetch */
    for (int i = 0; i < 2000 && got == -1; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(got, SL_EUNAVAIL);
    sl_jwks_stats st;
    sl_jwks_get_stats(j, &st);
    assert_int_equal(st.fetches, 1);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.keys, 0);
    got = -1;
    sl_jwks_wait(j, "k", 1, on_keys, &got); /* forced once: the interval had not begun */
    for (int i = 0; i < 2000 && got == -1; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(got, SL_EUNAVAIL);
    got = -1;
    sl_jwks_wait(j, "k2", 2, on_keys, &got); /* within the interval: answered at once */
    assert_int_equal(got, SL_EUNAVAIL);
    sl_jwks_get_stats(j, &st);
    assert_int_equal(st.forced, 1);
    assert_int_equal(st.throttled, 1);
    assert_null(sl_jwks_ready(j, "k", 1));
    /* Freeing answers a waiter with SL_EUNAVAIL. */
    got = -1;
    sl_jwks_free(j);
    sl_jwks_wait(NULL, "k", 1, on_keys, &got);
    assert_int_equal(got, SL_EUNAVAIL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_skips_what_it_must),
        cmocka_unit_test(test_tokens_of_every_algorithm),
        cmocka_unit_test(test_same_keys_as_pem),
        cmocka_unit_test(test_documents_refused_whole),
        cmocka_unit_test(test_header_kid),
        cmocka_unit_test(test_cache_lifetime),
        cmocka_unit_test(test_client_options),
    };
    return cmocka_run_group_tests(tests, load_vectors, free_vectors);
}
