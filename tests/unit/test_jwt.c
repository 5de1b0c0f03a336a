/* The JWT module: the RFC 7515 A.1 HS256 example, HMAC against OpenSSL, strict base64url, the
 * claim parser against jansson (hand-picked and randomly mutated texts), the keyring, sign/verify
 * round trips, PyJWT tokens, and the attack catalogue: every way a token can be forged, malformed
 * or out of date must be refused with its fixed message, which never echoes the token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/hmac.h>

#include <sluice/jwt.h>

#include "jwt_test_util.h"

#include "security/hmac256.h"
#include "security/jwt_internal.h"

#define NOW 1700000000.0
static const char SECRET[] = "0123456789abcdef0123456789abcdef"; /* exactly 32 bytes */

/* ---- helpers --------------------------------------------------------------------------------- */

/* An encoder independent of the one under test. */
static char *b64url(const void *data, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *d = data;
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    assert_non_null(out);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        *o++ = a[v >> 18];
        *o++ = a[(v >> 12) & 63];
        if (i + 1 < n)
            *o++ = a[(v >> 6) & 63];
        if (i + 2 < n)
            *o++ = a[v & 63];
    }
    *o = '\0';
    return out;
}

/* header.payload.signature from JSON texts, signed with key (NULL: an empty signature). */
static char *make_token(const char *header, const char *payload, const void *key, size_t keylen)
{
    char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 64;
    char *t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%s.%s", h, p);
    free(h);
    free(p);
    char *s = strdup("");
    if (key != NULL) {
        unsigned char mac[32];
        assert_int_equal(sl__jwt_hs256(key, keylen, t, strlen(t), mac), 0);
        free(s);
        s = b64url(mac, sizeof mac);
    }
    strcat(t, ".");
    strcat(t, s);
    free(s);
    return t;
}

static const char HS256_HEADER[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static char *signed_payload(const char *payload)
{
    return make_token(HS256_HEADER, payload, SECRET, strlen(SECRET));
}

static sl_jwt_keyring *keyring_default(void)
{
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SECRET, strlen(SECRET)), SL_OK);
    return kr;
}

/* Verifies token (strlen) with opts (NULL: defaults) at NOW and checks the code and message; the
 * message must be one of the fixed ones and must not contain any part of the token. */
static void expect(sl_jwt_keyring *kr, const char *token, const sl_jwt_verify_opts *o, int code,
                   const char *message)
{
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_jwt_verify(kr, token, strlen(token), o, NOW, &id, &st);
    if (rc != code || (message != NULL && strcmp(st.message, message) != 0))
        fail_msg("token %.60s...: got %d '%s', expected %d '%s'", token, rc, st.message, code,
                 message ? message : "");
    if (rc != SL_OK) {
        expect_clean_refusal(token, &st);
        /* A failed verification leaves the identity empty. */
        assert_string_equal(id.principal, "");
        assert_null(id.channels);
        assert_int_equal(id.scoped, 0);
        assert_int_equal(id.source, SL_SOURCE_NONE);
    }
    sl_identity_clear(&id);
}

static void expect_payload(sl_jwt_keyring *kr, const char *payload, const sl_jwt_verify_opts *o,
                           int code, const char *message)
{
    char *t = signed_payload(payload);
    expect(kr, t, o, code, message);
    free(t);
}

/* ---- RFC 7515 appendix A.1 ------------------------------------------------------------------- */

static void test_rfc7515_a1(void **state)
{
    (void)state;
    const char *k =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1"
        "Z9CAow";
    const char *input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
                        "bS9pc19yb290Ijp0cnVlfQ";
    const char *sig = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const unsigned char expected[32] = {
        116, 24,  223, 180, 151, 153, 224, 37,  79, 250, 96, 125, 216, 173, 187, 186,
        22,  212, 37,  77,  105, 214, 191, 240, 91, 88,  5,  88,  83,  132, 141, 121};
    unsigned char key[64], mac[32], decoded[32];
    size_t keylen, n;
    assert_int_equal(sl__jwt_b64url_decode(k, strlen(k), key, &keylen), 0);
    assert_int_equal(keylen, 64);
    assert_int_equal(sl__jwt_hs256(key, keylen, input, strlen(input), mac), 0);
    assert_memory_equal(mac, expected, 32);
    assert_int_equal(sl__jwt_b64url_decode(sig, strlen(sig), decoded, &n), 0);
    assert_int_equal(n, 32);
    assert_memory_equal(decoded, expected, 32);

    /* Through the public path: the signature passes (the header has CRLF whitespace and "typ"
     * first), and then the claims fail because the example has no "sub". */
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, key, keylen), SL_OK);
    char token[512];
    snprintf(token, sizeof token, "%s.%s", input, sig);
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.issuer = "joe";
    assert_int_equal(sl_jwt_verify(kr, token, strlen(token), &o, 1300819000, &id, &st), SL_ETOKEN);
    assert_string_equal(st.message, "invalid claims");
    token[strlen(token) - 2] = 'Y'; /* and a tampered signature is caught before that */
    assert_int_equal(sl_jwt_verify(kr, token, strlen(token), &o, 1300819000, &id, &st), SL_ETOKEN);
    assert_string_equal(st.message, "bad signature");
    sl_jwt_keyring_free(kr);
}

static void test_hmac_matches_openssl(void **state)
{
    (void)state;
    unsigned char key[200], data[300];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (unsigned char)(i * 7 + 3);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 13 + 1);
    const size_t keylens[] = {1, 32, 63, 64, 65, 100, 200};
    for (size_t k = 0; k < sizeof keylens / sizeof *keylens; k++)
        for (size_t n = 0; n <= sizeof data; n += 1 + n / 8) {
            unsigned char a[32], b[32];
            unsigned int blen = 0;
            assert_int_equal(sl__jwt_hs256(key, keylens[k], data, n, a), 0);
            assert_non_null(HMAC(EVP_sha256(), key, (int)keylens[k], data, n, b, &blen));
            assert_int_equal(blen, 32);
            assert_memory_equal(a, b, 32);
        }
    /* the allocation-free SHA-256 beside it (security/hmac256.h) */
    for (size_t n = 0; n <= sizeof data; n += 1 + n / 8) {
        unsigned char a[32], b[32], c[32];
        unsigned int blen = 0;
        assert_int_equal(sl__sha256(data, n, a), 0);
        assert_int_equal(sl__sha256_2(data, n / 3, data + n / 3, n - n / 3, c), 0);
        assert_int_equal(EVP_Digest(data, n, b, &blen, EVP_sha256(), NULL), 1);
        assert_memory_equal(a, b, 32);
        assert_memory_equal(c, b, 32);
    }
}

/* ---- base64url ------------------------------------------------------------------------------- */

static void test_b64url(void **state)
{
    (void)state;
    unsigned char out[64];
    size_t n;
    const struct {
        const char *in, *out;
    } good[] = {
        {"", ""},           {"Zg", "f"},          {"Zm8", "fo"},          {"Zm9v", "foo"},
        {"Zm9vYg", "foob"}, {"Zm9vYmE", "fooba"}, {"Zm9vYmFy", "foobar"}, {"-_8", "\xfb\xff"}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_int_equal(sl__jwt_b64url_decode(good[i].in, strlen(good[i].in), out, &n), 0);
        assert_int_equal(n, strlen(good[i].out));
        assert_memory_equal(out, good[i].out, n);
    }
    const char *bad[] = {
        "Z",       /* length 1 mod 4 */
        "Zm9vY",   /* likewise */
        "Zg==",    /* padding */
        "Zm8=",    /* padding */
        "Zh",      /* non-canonical: trailing bits set ("Zg" is the only encoding of "f") */
        "Zm9",     /* non-canonical */
        "Zm+v",    /* standard alphabet, not url-safe */
        "Zm/v",    /* likewise */
        "Zm9v\n",  /* whitespace */
        "Zm 9",    /* whitespace */
        "Zm9\x80", /* high byte */
        "Zm.v",    /* separator */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (sl__jwt_b64url_decode(bad[i], strlen(bad[i]), out, &n) == 0)
            fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(sl__jwt_b64url_decode("Zm\0v", 4, out, &n), -1); /* embedded NUL */
}

/* ---- the claim parser against jansson -------------------------------------------------------- */

static int jansson_accepts(const char *t, size_t n)
{
    json_t *j = json_loadb(t, n, JSON_REJECT_DUPLICATES, NULL);
    int ok = j != NULL && json_is_object(j);
    json_decref(j);
    return ok;
}

static void check_agrees(const char *t, size_t n)
{
    int mine = sl__jwt_json_object_valid(t, n), theirs = jansson_accepts(t, n);
    /* jansson 2.14 skips a NUL byte that follows a number or literal ({"a":1\0} loads); a NUL is
     * never valid JSON text, so here the parser must be the stricter of the two. */
    if (memchr(t, '\0', n) != NULL)
        theirs = 0;
    if (mine != theirs) {
        char shown[200];
        size_t k = 0;
        for (size_t i = 0; i < n && k + 5 < sizeof shown; i++)
            k += (size_t)snprintf(
                shown + k, sizeof shown - k,
                (unsigned char)t[i] < 0x20 || (unsigned char)t[i] >= 0x7f ? "\\x%02x" : "%c",
                (unsigned char)t[i]);
        fail_msg("parser %s, jansson %s: %s", mine ? "accepts" : "rejects",
                 theirs ? "accepts" : "rejects", shown);
    }
}

static const char *const json_corpus[] = {
    "{}",
    " { } ",
    "\t{\r\n}\n",
    "{\"a\":1}",
    "{\"a\":-0}",
    "{\"a\":0.5}",
    "{\"a\":-1.5e-3}",
    "{\"a\":1E+2}",
    "{\"a\":1e400}",
    "{\"a\":-1e400}",
    "{\"a\":1e-400}",
    "{\"a\":9223372036854775807}",
    "{\"a\":9223372036854775808}",
    "{\"a\":-9223372036854775808}",
    "{\"a\":-9223372036854775809}",
    "{\"a\":12345678901234567890}",
    "{\"a\":01}",
    "{\"a\":1.}",
    "{\"a\":.5}",
    "{\"a\":+1}",
    "{\"a\":-}",
    "{\"a\":1e}",
    "{\"a\":1e+}",
    "{\"a\":0x10}",
    "{\"a\":NaN}",
    "{\"a\":Infinity}",
    "{\"a\":true}",
    "{\"a\":false}",
    "{\"a\":null}",
    "{\"a\":tru}",
    "{\"a\":truee}",
    "{\"a\":True}",
    "{\"a\":nul}",
    "{\"a\":[]}",
    "{\"a\":[1,2,[3,{\"b\":[]}]]}",
    "{\"a\":[1,]}",
    "{\"a\":[,1]}",
    "{\"a\":[1 2]}",
    "{\"a\":1,}",
    "{,\"a\":1}",
    "{\"a\" 1}",
    "{\"a\"::1}",
    "{a:1}",
    "{'a':1}",
    "{\"a\":1}}",
    "{\"a\":1",
    "{\"a\":1} x",
    "{\"a\":1}{}",
    "[]",
    "[{}]",
    "\"x\"",
    "1",
    "null",
    "",
    " ",
    "{\"\":0}",
    "{\"a\":1,\"a\":2}",
    "{\"a\":1,\"b\":{\"a\":2}}",
    "{\"a\":{\"b\":1,\"b\":2}}",
    "{\"a\":[{\"x\":1,\"x\":1}]}",
    "{\"sub\":1,\"s\\u0075b\":2}",
    "{\"\\u00e9\":1,\"\xc3\xa9\":2}",
    "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\u12\"}",
    "{\"a\":\"\\u00zz\"}",
    "{\"a\":\"\\u0000\"}",
    "{\"a\":\"\\ud83d\\ude00\"}",
    "{\"a\":\"\\ud83d\"}",
    "{\"a\":\"\\ude00\"}",
    "{\"a\":\"\\ud83d\\u0041\"}",
    "{\"a\":\"\\ud83dx\"}",
    "{\"a\":\"\\uDBFF\\uDFFF\"}",
    "{\"a\":\"tab\there\"}",
    "{\"a\":\"nl\nhere\"}",
    "{\"a\":\"del\x7fok\"}",
    "{\"a\":\"\xc3\xa9\"}",
    "{\"a\":\"\xc3\"}",
    "{\"a\":\"\xc0\xaf\"}",
    "{\"a\":\"\xe0\x80\xaf\"}",
    "{\"a\":\"\xed\xa0\x80\"}",
    "{\"a\":\"\xef\xbf\xbf\"}",
    "{\"a\":\"\xf0\x9f\x98\x80\"}",
    "{\"a\":\"\xf4\x90\x80\x80\"}",
    "{\"a\":\"\xf5\x80\x80\x80\"}",
    "{\"a\":\"\xff\"}",
    "{\"a\":\"\x80\"}",
    "{\"a\":\"unterminated}",
    "{\"a\":\"x\"\"}",
    "\xef\xbb\xbf{}",
    "{\"a\":1}\x00",
    "{\"a\x00\":1}",
    "{\"a\":1}\n\n",
    "{\"a\"\n:\n1\n}",
    "{\"a\":\f1}",
    "{\"a\":\v1}",
    "{\"a\":[\"x\",\"y\",\"x\"]}",
};

static void test_json_corpus_agrees_with_jansson(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof json_corpus / sizeof *json_corpus; i++)
        check_agrees(json_corpus[i], strlen(json_corpus[i]));
    check_agrees("{\"a\":1}\0", 8);
    check_agrees("{\"a\":\"x\0y\"}", 11);
    /* Many keys: the sorted duplicate check. */
    char big[4096];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof big - n, "{");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    snprintf(big + n, sizeof big - n, "}");
    check_agrees(big, strlen(big));
    assert_true(sl__jwt_json_object_valid(big, strlen(big)));
    memcpy(strstr(big, "\"k299\""), "\"k150\"", 6); /* a duplicate among 300 */
    check_agrees(big, strlen(big));
    assert_false(sl__jwt_json_object_valid(big, strlen(big)));
}

static void test_json_depth_limit(void **state)
{
    (void)state;
    char t[256];
    for (int depth = SL__JWT_JSON_MAX_DEPTH; depth <= SL__JWT_JSON_MAX_DEPTH + 1; depth++) {
        size_t n = 0;
        n += (size_t)snprintf(t + n, sizeof t - n, "{\"a\":");
        for (int i = 1; i < depth; i++)
            t[n++] = '[';
        t[n++] = '1';
        for (int i = 1; i < depth; i++)
            t[n++] = ']';
        t[n++] = '}';
        assert_int_equal(sl__jwt_json_object_valid(t, n), depth <= SL__JWT_JSON_MAX_DEPTH);
    }
    assert_false(sl__jwt_json_object_valid(NULL, 0));
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random single and double mutations of JWT-like texts: every one must get the same verdict. */
static void test_json_mutations_agree_with_jansson(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"sub\":\"worker-1\",\"role\":\"write\",\"channels\":[\"jobs\",\"orders.*\"],\"iat\":"
        "1700000000,\"exp\":1700003600.5,\"jti\":\"a\\u00e9\\ud83d\\ude00\",\"aud\":[\"x\"],"
        "\"act\":{\"sub\":\"svc\"},\"ok\":true,\"no\":false,\"z\":null,\"n\":-1.5e-3}",
        "{\"a\":[[],{},[{\"b\":\"\\\\\\\"\"}]],\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"}",
    };
    static const char pool[] = "{}[]\",:\\ \t\n0123456789eE.-+tfnrulsaxu\x00\x7f\x80\xc3\xa9\xed"
                               "\xa0\xf4\x8f\xbf\xff";
    char buf[512];
    for (int iter = 0; iter < 200000; iter++) {
        const char *seed = seeds[rng() % (sizeof seeds / sizeof *seeds)];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int muts = 1 + (int)(rng() % 3);
        for (int m = 0; m < muts && n > 0; m++) {
            size_t at = rng() % n;
            char c = pool[rng() % (sizeof pool - 1)];
            switch (rng() % 3) {
            case 0: /* replace */
                buf[at] = c;
                break;
            case 1: /* insert */
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
                break;
            default: /* delete */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        check_agrees(buf, n);
    }
}

/* ---- keyring --------------------------------------------------------------------------------- */

static void test_keyring(void **state)
{
    (void)state;
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_size(kr), 0);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SECRET, 31), SL_EWEAKKEY);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "k", SECRET, 0), SL_EWEAKKEY);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SECRET, 32), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SECRET, 32), SL_EEXIST);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "", SECRET, 32), SL_EINVAL);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "a\nb", SECRET, 32), SL_EINVAL);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "\xc3", SECRET, 32), SL_EINVAL);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, NULL, 32), SL_EINVAL);
    assert_int_equal(sl_jwt_keyring_add_hs256(NULL, NULL, SECRET, 32), SL_EINVAL);
    char kid[16];
    for (int i = 0; i < 15; i++) {
        snprintf(kid, sizeof kid, "key-%d", i);
        assert_int_equal(sl_jwt_keyring_add_hs256(kr, kid, SECRET, 32), SL_OK);
    }
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "key-3", SECRET, 32), SL_EEXIST);
    assert_int_equal(sl_jwt_keyring_size(kr), 16);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "one-too-many", SECRET, 32), SL_ELIMIT);
    sl_jwt_keyring_free(kr);
    sl_jwt_keyring_free(NULL);
    assert_int_equal(sl_jwt_keyring_size(NULL), 0);

    /* The secret is copied: wiping the caller's buffer afterwards changes nothing. */
    char secret[40];
    memcpy(secret, SECRET, 32);
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, secret, 32), SL_OK);
    memset(secret, 0, sizeof secret);
    expect_payload(kr, "{\"sub\":\"a\",\"exp\":1700000100}", NULL, SL_OK, NULL);
    sl_jwt_keyring_free(kr);
}

static void test_kid_rotation(void **state)
{
    (void)state;
    const char k1[] = "first-secret-0123456789abcdefghij",
               k2[] = "second-secret-0123456789abcdefghi";
    const char *payload = "{\"sub\":\"a\",\"exp\":1700000100}";
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "one", k1, strlen(k1)), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "two", k2, strlen(k2)), SL_OK);
    const struct {
        const char *header;
        const char *key;
        int code;
        const char *msg;
    } cases[] = {
        {"{\"alg\":\"HS256\",\"kid\":\"one\"}", k1, SL_OK, NULL},
        {"{\"alg\":\"HS256\",\"kid\":\"two\"}", k2, SL_OK, NULL},
        {"{\"alg\":\"HS256\",\"kid\":\"t\\u0077o\"}", k2, SL_OK, NULL}, /* escaped kid */
        {"{\"alg\":\"HS256\",\"kid\":\"two\"}", k1, SL_ETOKEN, "bad signature"},
        {"{\"alg\":\"HS256\",\"kid\":\"one\"}", k2, SL_ETOKEN, "bad signature"},
        {"{\"alg\":\"HS256\",\"kid\":\"three\"}", k1, SL_ETOKEN, "unknown key id"},
        {"{\"alg\":\"HS256\",\"kid\":\"\"}", k1, SL_ETOKEN, "unknown key id"},
        {"{\"alg\":\"HS256\",\"kid\":\"ONE\"}", k1, SL_ETOKEN, "unknown key id"},
        {"{\"alg\":\"HS256\"}", k1, SL_ETOKEN, "unknown key id"}, /* no default key */
        {"{\"alg\":\"HS256\",\"kid\":1}", k1, SL_ETOKEN, "malformed token"},
        {"{\"alg\":\"HS256\",\"kid\":null}", k1, SL_ETOKEN, "malformed token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = make_token(cases[i].header, payload, cases[i].key, strlen(cases[i].key));
        expect(kr, t, NULL, cases[i].code, cases[i].msg);
        free(t);
    }
    /* Signing with each key names it, and each verifies. */
    sl_jwt_claims c = {.sub = "a", .exp = NOW + 100};
    char *tok, *h, *p;
    assert_int_equal(sl_jwt_sign(kr, "two", &c, &tok), SL_OK);
    expect(kr, tok, NULL, SL_OK, NULL);
    assert_int_equal(sl_jwt_decode_unverified(tok, strlen(tok), &h, &p), SL_OK);
    assert_string_equal(h, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"two\"}");
    free(h);
    free(p);
    free(tok);
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_ENOENT); /* no default key */
    assert_null(tok);
    assert_int_equal(sl_jwt_sign(kr, "three", &c, &tok), SL_ENOENT);
    /* A keyring with only a default key refuses tokens naming a kid. */
    sl_jwt_keyring *def = keyring_default();
    char *t = make_token("{\"alg\":\"HS256\",\"kid\":\"one\"}", payload, SECRET, strlen(SECRET));
    expect(def, t, NULL, SL_ETOKEN, "unknown key id");
    free(t);
    sl_jwt_keyring_free(def);
    sl_jwt_keyring_free(kr);
}

/* The keyring remembers the last header that checked out; that never excuses the signature or the
 * claims, a header that failed is not remembered, and a key added later is found. */
static void test_header_memo(void **state)
{
    (void)state;
    const char k1[] = "first-secret-0123456789abcdefghij",
               k2[] = "second-secret-0123456789abcdefghi";
    const char *hdr = "{\"alg\":\"HS256\",\"kid\":\"two\"}";
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "one", k1, strlen(k1)), SL_OK);
    char *good = make_token(hdr, "{\"sub\":\"a\",\"exp\":1700000100}", k2, strlen(k2));
    expect(kr, good, NULL, SL_ETOKEN, "unknown key id");
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "two", k2, strlen(k2)), SL_OK);
    expect(kr, good, NULL, SL_OK, NULL);
    expect(kr, good, NULL, SL_OK, NULL); /* the header remembered */
    char *wrongkey = make_token(hdr, "{\"sub\":\"a\",\"exp\":1700000100}", k1, strlen(k1));
    expect(kr, wrongkey, NULL, SL_ETOKEN, "bad signature");
    char *old = make_token(hdr, "{\"sub\":\"a\",\"exp\":1600000000}", k2, strlen(k2));
    expect(kr, old, NULL, SL_EEXPIRED, "token expired");
    char *bad = make_token(hdr, "{\"sub\":\"a\",\"exp\":\"soon\"}", k2, strlen(k2));
    expect(kr, bad, NULL, SL_ETOKEN, NULL);
    /* the same header bytes under another ring: that ring's own keys decide */
    sl_jwt_keyring *other;
    assert_int_equal(sl_jwt_keyring_new(&other), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(other, "two", k1, strlen(k1)), SL_OK);
    expect(other, good, NULL, SL_ETOKEN, "bad signature");
    expect(other, wrongkey, NULL, SL_OK, NULL);
    free(good);
    free(wrongkey);
    free(old);
    free(bad);
    sl_jwt_keyring_free(other);
    sl_jwt_keyring_free(kr);
}

/* ---- round trips and interop ----------------------------------------------------------------- */

static void test_sign_verify_round_trip(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    const char *chans[] = {"jobs", "orders.*", "room:**"};
    sl_jwt_claims c = {.sub = "worker-1",
                       .role = SL_ROLE_WRITE,
                       .channels = chans,
                       .nchannels = 3,
                       .scoped = 1,
                       .iat = NOW - 10,
                       .nbf = NOW - 10,
                       .exp = NOW + 3600,
                       .jti = "0123456789abcdef",
                       .aud = "sluice",
                       .iss = "ops",
                       .act_sub = "admin-7"};
    char *tok;
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_OK);
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    assert_true(o.leeway == 30 && o.audience == NULL && o.issuer == NULL && !o.exp_optional);
    o.audience = "sluice";
    o.issuer = "ops";
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    assert_int_equal(sl_jwt_verify(kr, tok, strlen(tok), &o, NOW, &id, &st), SL_OK);
    assert_string_equal(id.principal, "worker-1");
    assert_int_equal(id.source, SL_SOURCE_JWT);
    assert_int_equal(id.role, SL_ROLE_WRITE);
    assert_int_equal(id.scoped, 1);
    assert_int_equal(id.nchannels, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(id.channels[i], chans[i]);
        assert_ptr_not_equal(id.channels[i], chans[i]);
    }
    assert_string_equal(id.token_id, "0123456789abcdef");
    assert_true(id.issued_at == NOW - 10 && id.expires_at == NOW + 3600);

    /* Verifying into a filled identity replaces it (ASan would see a leak otherwise). */
    assert_int_equal(sl_jwt_verify(kr, tok, strlen(tok), &o, NOW, &id, &st), SL_OK);
    assert_int_equal(id.nchannels, 3);
    char *h, *p;
    assert_int_equal(sl_jwt_decode_unverified(tok, strlen(tok), &h, &p), SL_OK);
    assert_string_equal(h, HS256_HEADER);
    assert_string_equal(p, "{\"sub\":\"worker-1\",\"role\":\"write\",\"channels\":[\"jobs\","
                           "\"orders.*\",\"room:**\"],\"iat\":1699999990,\"nbf\":1699999990,"
                           "\"exp\":1700003600,\"jti\":\"0123456789abcdef\",\"aud\":\"sluice\","
                           "\"iss\":\"ops\",\"act\":{\"sub\":\"admin-7\"}}");
    free(h);
    free(p);
    /* A failure empties the identity it was given. */
    tok[strlen(tok) - 5] ^= 1;
    assert_int_equal(sl_jwt_verify(kr, tok, strlen(tok), &o, NOW, &id, &st), SL_ETOKEN);
    assert_string_equal(id.principal, "");
    assert_null(id.channels);
    free(tok);

    /* Minimal claims: no role, unscoped, no jti; fractional times survive. */
    sl_jwt_claims m = {.sub = "x", .exp = NOW + 0.5};
    assert_int_equal(sl_jwt_sign(kr, NULL, &m, &tok), SL_OK);
    assert_int_equal(sl_jwt_verify(kr, tok, strlen(tok), NULL, NOW, &id, &st), SL_OK);
    assert_int_equal(id.role, SL_ROLE_NONE);
    assert_int_equal(id.scoped, 0);
    assert_null(id.channels);
    assert_string_equal(id.token_id, "");
    assert_true(id.expires_at == NOW + 0.5 && id.issued_at == 0);
    free(tok);

    /* An empty scope is a scope: no channel at all. */
    sl_jwt_claims e = {.sub = "x", .exp = NOW + 60, .scoped = 1};
    assert_int_equal(sl_jwt_sign(kr, NULL, &e, &tok), SL_OK);
    assert_int_equal(sl_jwt_verify(kr, tok, strlen(tok), NULL, NOW, &id, &st), SL_OK);
    assert_int_equal(id.scoped, 1);
    assert_int_equal(id.nchannels, 0);
    free(tok);
    sl_identity_clear(&id);
    sl_jwt_keyring_free(kr);
}

static void test_sign_refuses_bad_claims(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    char *tok = (char *)"untouched";
    const char *bad_pat[] = {"a..b"};
    const char *ok_pat[] = {"a"};
    sl_jwt_claims cases[] = {
        {.exp = NOW},                     /* no sub */
        {.sub = "has space", .exp = NOW}, /* invalid principal */
        {.sub = "a", .role = (sl_role)9}, /* unknown role */
        {.sub = "a", .scoped = 1, .channels = bad_pat, .nchannels = 1},
        {.sub = "a", .scoped = 1, .channels = NULL, .nchannels = 1},
        {.sub = "a", .scoped = 1, .channels = ok_pat, .nchannels = 1025},
        {.sub = "a", .act_sub = "a/b"},
        {.sub = "a", .aud = "\xff"}, /* not UTF-8 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(sl_jwt_sign(kr, NULL, &cases[i], &tok), SL_EINVAL);
        assert_null(tok);
    }
    char jti[SL_TOKEN_ID_MAX + 2];
    memset(jti, 'j', sizeof jti - 1);
    jti[sizeof jti - 1] = '\0';
    sl_jwt_claims c = {.sub = "a", .jti = jti};
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_EINVAL);
    /* Too big to verify is too big to issue. */
    char *aud = malloc(7000);
    memset(aud, 'a', 6999);
    aud[6999] = '\0';
    sl_jwt_claims big = {.sub = "a", .aud = aud};
    assert_int_equal(sl_jwt_sign(kr, NULL, &big, &tok), SL_ETOOBIG);
    assert_null(tok);
    free(aud);
    assert_int_equal(sl_jwt_sign(NULL, NULL, &c, &tok), SL_EINVAL);
    assert_int_equal(sl_jwt_sign(kr, NULL, NULL, &tok), SL_EINVAL);
    sl_jwt_keyring_free(kr);
}

/* Tokens made by PyJWT 2.6 (python3-jwt), and ours checked there by hand (docs/JWT.md). */
static void test_pyjwt_tokens(void **state)
{
    (void)state;
    const char secret[] = "pyjwt-interop-secret-0123456789abcdef";
    const char *t1 =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ3b3JrZXItMSIsInJvbGUiOiJ3cml0ZSIsImNoYW5u"
        "ZWxzIjpbImpvYnMiLCJvcmRlcnMuKiJdLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMCwianRpIjoiY"
        "WJjLTEyMyIsImF1ZCI6WyJzbHVpY2UiLCJvdGhlciJdLCJpc3MiOiJjaSJ9.cAD8Du8wp0QVP_MrRt8J8E8YQi2jAr"
        "02n8pnFSzxhvs";
    const char *t2 = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsyIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ3b3JrZXItMiI"
                     "sImV4cCI6NDEwMjQ0NDgwMH0.-h1JNnUuH3nXN0-kdeFoOZ7jiVxYUPGoAlynf-K6zpc";
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, secret, strlen(secret)), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "k2", secret, strlen(secret)), SL_OK);
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.audience = "other";
    o.issuer = "ci";
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    assert_int_equal(sl_jwt_verify(kr, t1, strlen(t1), &o, NOW, &id, &st), SL_OK);
    assert_string_equal(id.principal, "worker-1");
    assert_int_equal(id.role, SL_ROLE_WRITE);
    assert_int_equal(id.nchannels, 2);
    assert_string_equal(id.channels[1], "orders.*");
    assert_string_equal(id.token_id, "abc-123");
    assert_int_equal(sl_jwt_verify(kr, t2, strlen(t2), NULL, NOW, &id, &st), SL_OK);
    assert_string_equal(id.principal, "worker-2");
    sl_identity_clear(&id);
    sl_jwt_keyring_free(kr);
}

/* ---- the attack catalogue -------------------------------------------------------------------- */

static void test_algorithms(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    const char *p = "{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700000100}";
    const struct {
        const char *header;
        int sign;
        const char *msg;
    } cases[] = {
        {"{\"alg\":\"none\",\"typ\":\"JWT\"}", 0, "algorithm not allowed"},
        {"{\"alg\":\"none\",\"typ\":\"JWT\"}", 1, "algorithm not allowed"},
        {"{\"alg\":\"None\"}", 0, "algorithm not allowed"},
        {"{\"alg\":\"HS512\",\"typ\":\"JWT\"}", 1, "algorithm not allowed"},
        {"{\"alg\":\"HS384\"}", 1, "algorithm not allowed"},
        {"{\"alg\":\"RS256\",\"typ\":\"JWT\"}", 1, "algorithm not allowed"},
        {"{\"alg\":\"ES256\"}", 1, "algorithm not allowed"},
        {"{\"alg\":\"hs256\"}", 1, "algorithm not allowed"},
        {"{\"alg\":\"HS256 \"}", 1, "algorithm not allowed"},
        {"{\"alg\":\"HS256\\u0000\"}", 1, "malformed token"},
        {"{\"alg\":[\"HS256\"]}", 1, "algorithm not allowed"},
        {"{\"alg\":256}", 1, "algorithm not allowed"},
        {"{\"typ\":\"JWT\"}", 1, "algorithm not allowed"},
        {"{}", 1, "algorithm not allowed"},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", 1, "malformed token"},
        {"{\"alg\":\"none\",\"alg\":\"HS256\"}", 1, "malformed token"},
        {"{\"alg\":\"HS256\",\"a\\u006cg\":\"HS256\"}", 1, "malformed token"},
        {"{\"alg\":\"HS256\",\"typ\":\"JWS\"}", 1, "malformed token"},
        {"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", 1, "malformed token"},
        {"{\"alg\":\"HS256\",\"typ\":1}", 1, "malformed token"},
        {"{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", 1, "malformed token"},
        {"[\"HS256\"]", 1, "malformed token"},
        {"{\"alg\":\"HS256\"", 1, "malformed token"},
        {"", 1, "malformed token"},
        {"{\"alg\":\"HS256\"}", 1, NULL},
        {"{\"alg\":\"H\\u0053256\"}", 1, NULL}, /* escapes are decoded, as by any JSON reader */
        {"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\",\"x5u\":\"https://evil/\"}", 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = make_token(cases[i].header, p, cases[i].sign ? SECRET : NULL,
                             cases[i].sign ? strlen(SECRET) : 0);
        expect(kr, t, NULL, cases[i].msg ? SL_ETOKEN : SL_OK, cases[i].msg);
        free(t);
    }
    sl_jwt_keyring_free(kr);
}

static void test_structure(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    char *good = signed_payload("{\"sub\":\"a\",\"exp\":1700000100}");
    expect(kr, good, NULL, SL_OK, NULL);
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    size_t hl = (size_t)(d1 - good), len = strlen(good);
    char t[SL_JWT_MAX_LEN + 64];

    const char *bad[] = {"", ".", "..", "...", "a.b", "a.b.c.d", "abc", "a..b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect(kr, bad[i], NULL, SL_ETOKEN, "malformed token");

    /* Two and four segments built from the real thing. */
    snprintf(t, sizeof t, "%.*s", (int)(d2 - good), good);
    expect(kr, t, NULL, SL_ETOKEN, "malformed token");
    snprintf(t, sizeof t, "%s.%s", good, d2 + 1);
    expect(kr, t, NULL, SL_ETOKEN, "malformed token");
    snprintf(t, sizeof t, "%s.", good);
    expect(kr, t, NULL, SL_ETOKEN, "malformed token");

    /* Signature: empty, truncated, extended, non-canonical last character. */
    snprintf(t, sizeof t, "%.*s", (int)(d2 + 1 - good), good);
    expect(kr, t, NULL, SL_ETOKEN, "bad signature");
    snprintf(t, sizeof t, "%.*s", (int)(len - 1), good);
    expect(kr, t, NULL, SL_ETOKEN, NULL); /* 42 characters: 31 bytes, or trailing bits set */
    snprintf(t, sizeof t, "%.*s", (int)(len - 3), good);
    expect(kr, t, NULL, SL_ETOKEN, "bad signature"); /* 40 characters: 30 bytes */
    snprintf(t, sizeof t, "%sA", good);
    expect(kr, t, NULL, SL_ETOKEN, "bad signature"); /* 44 characters: 33 bytes */
    snprintf(t, sizeof t, "%s", good);
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int last = (int)(strchr(alphabet, t[len - 1]) - alphabet);
    assert_int_equal(last & 3, 0);
    t[len - 1] = alphabet[last | 1]; /* same 32 bytes, different text: must not verify */
    expect(kr, t, NULL, SL_ETOKEN, "malformed token");

    /* Padding and foreign bytes in each segment. */
    const size_t at[] = {hl, (size_t)(d2 - good), len};
    const char *inserts[] = {"=", "==", "+", "/", " ", "\t", "%", "\x80", "\xc3\xa9"};
    for (size_t s = 0; s < 3; s++)
        for (size_t k = 0; k < sizeof inserts / sizeof *inserts; k++) {
            snprintf(t, sizeof t, "%.*s%s%s", (int)at[s], good, inserts[k], good + at[s]);
            expect(kr, t, NULL, SL_ETOKEN, NULL);
            snprintf(t, sizeof t, "%s%.*s", inserts[k], (int)len, good);
            expect(kr, t, NULL, SL_ETOKEN, NULL);
        }
    /* An embedded NUL: the length, not the terminator, bounds the token. */
    {
        sl_identity id;
        sl_identity_init(&id);
        sl_status st;
        memcpy(t, good, len);
        t[len] = '\0';
        t[len + 1] = 'x';
        assert_int_equal(sl_jwt_verify(kr, t, len + 1, NULL, NOW, &id, &st), SL_ETOKEN);
        assert_int_equal(sl_jwt_verify(kr, t, len, NULL, NOW, &id, &st), SL_OK);
        sl_identity_clear(&id);
    }

    /* Tampering: a payload or header that is still valid base64url and JSON. */
    char *forged = make_token(HS256_HEADER, "{\"sub\":\"b\",\"exp\":1700000100}", "x", 1);
    snprintf(t, sizeof t, "%.*s%s", (int)(strrchr(forged, '.') - forged), forged, d2);
    expect(kr, t, NULL, SL_ETOKEN, "bad signature");
    free(forged);
    forged = make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"x\":1}",
                        "{\"sub\":\"a\",\"exp\":1700000100}", "x", 1);
    snprintf(t, sizeof t, "%.*s%s", (int)(strchr(forged, '.') - forged), forged, d1);
    expect(kr, t, NULL, SL_ETOKEN, "bad signature");
    free(forged);
    for (size_t i = 0; i < len; i++) {
        if (good[i] == '.')
            continue;
        snprintf(t, sizeof t, "%s", good);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        expect(kr, t, NULL, SL_ETOKEN, NULL);
    }

    /* Length cap: checked before any parsing. */
    memset(t, 'A', SL_JWT_MAX_LEN + 1);
    t[SL_JWT_MAX_LEN + 1] = '\0';
    expect(kr, t, NULL, SL_ETOKEN, "malformed token");
    size_t pad = SL_JWT_MAX_LEN + 1 - len;
    snprintf(t, sizeof t, "%s", good);
    memmove(t + hl + pad, t + hl, len - hl + 1);
    memset(t + hl, 'A', pad); /* still three segments, one byte too long */
    expect(kr, t, NULL, SL_ETOKEN, "malformed token");
    free(good);

    /* Arguments. */
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    assert_int_equal(sl_jwt_verify(NULL, "a.b.c", 5, NULL, NOW, &id, &st), SL_ETOKEN);
    assert_int_equal(sl_jwt_verify(kr, NULL, 0, NULL, NOW, &id, &st), SL_ETOKEN);
    assert_int_equal(sl_jwt_verify(kr, "a.b.c", 5, NULL, NOW, NULL, &st), SL_EINVAL);
    assert_int_equal(sl_jwt_verify(kr, "a.b.c", 5, NULL, NOW, &id, NULL), SL_ETOKEN);
    char *fine = signed_payload("{\"sub\":\"a\",\"exp\":1}");
    assert_int_equal(sl_jwt_verify(kr, fine, strlen(fine), NULL, NAN, &id, &st), SL_EINVAL);
    free(fine);
    sl_jwt_keyring_free(kr);
}

static void test_payload_shape(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    const char *malformed[] = {
        "",
        "[]",
        "\"sub\"",
        "1",
        "null",
        "[{\"sub\":\"a\",\"exp\":1700000100}]",
        "{\"sub\":\"a\",\"exp\":1700000100",
        "{\"sub\":\"a\",\"exp\":1700000100}x",
        "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1700000100}",
        "{\"sub\":\"a\",\"s\\u0075b\":\"b\",\"exp\":1700000100}",
        "{\"sub\":\"a\",\"exp\":1700000100,\"exp\":1800000000}",
        "{\"sub\":\"a\",\"exp\":1700000100,\"x\":{\"y\":1,\"y\":2}}",
        "{\"sub\":\"a\",\"exp\":99999999999999999999}",
        "{\"sub\":\"a\",\"exp\":1e999}",
        "{\"sub\":\"a\\u0000b\",\"exp\":1700000100}",
        "{\"sub\":\"\xff\",\"exp\":1700000100}",
        "{\"sub\":\"a\",\"exp\":1700000100,}",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++)
        expect_payload(kr, malformed[i], NULL, SL_ETOKEN, "malformed token");
    sl_jwt_keyring_free(kr);
}

static void test_claims(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    const struct {
        const char *payload;
        int code;
        const char *msg;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":1700000100}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100.25}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1.7000001e9}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1e300}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"unknown\":[1,{\"x\":null}],\"act\":{\"sub\":\"b\"}}",
         SL_OK, NULL},
        /* sub */
        {"{\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"\",\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a b\",\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a/b\",\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"\\u00e9\",\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\\n\",\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":1,\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":null,\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":[\"a\"],\"exp\":1700000100}", SL_ETOKEN, "invalid claims"},
        /* numeric claims must be numbers */
        {"{\"sub\":\"a\",\"exp\":\"1700000100\"}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"iat\":\"1699999999\"}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"nbf\":true}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":null}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":[1700000100]}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\"}", SL_ETOKEN, "invalid claims"}, /* exp required */
        /* role */
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":\"read\"}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":\"admin\"}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":\"root\"}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":\"Admin\"}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":\"none\"}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":\"\"}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":\"administrator\"}", SL_ETOKEN,
         "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":3}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":null}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"role\":[\"admin\"]}", SL_ETOKEN, "invalid claims"},
        /* channels */
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[]}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[\"a.**\",\"b:*\"]}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":\"jobs\"}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[\"a..b\"]}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[\"jobs\",\"\"]}", SL_ETOKEN,
         "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[\"a/b\"]}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[\"**.a\"]}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[\"jobs\",1]}", SL_ETOKEN,
         "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[[\"jobs\"]]}", SL_ETOKEN,
         "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[null]}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":{\"jobs\":1}}", SL_ETOKEN,
         "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"channels\":null}", SL_ETOKEN, "invalid claims"},
        /* jti */
        {"{\"sub\":\"a\",\"exp\":1700000100,\"jti\":\"id-1\"}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"jti\":7}", SL_ETOKEN, "invalid claims"},
        /* aud and iss, not configured: only their shape matters */
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"x\",\"iss\":\"y\"}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":[]}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":1}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":[\"x\",1]}", SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"iss\":[\"y\"]}", SL_ETOKEN, "invalid claims"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_payload(kr, cases[i].payload, NULL, cases[i].code, cases[i].msg);

    /* jti at and over SL_TOKEN_ID_MAX. */
    char p[512], jti[SL_TOKEN_ID_MAX + 2];
    memset(jti, 'j', sizeof jti);
    for (int over = 0; over <= 1; over++) {
        jti[SL_TOKEN_ID_MAX + over] = '\0';
        snprintf(p, sizeof p, "{\"sub\":\"a\",\"exp\":1700000100,\"jti\":\"%s\"}", jti);
        expect_payload(kr, p, NULL, over ? SL_ETOKEN : SL_OK, over ? "invalid claims" : NULL);
        jti[SL_TOKEN_ID_MAX + over] = 'j';
    }
    /* sub at and over SL_PRINCIPAL_MAX. */
    char sub[SL_PRINCIPAL_MAX + 2];
    memset(sub, 's', sizeof sub);
    for (int over = 0; over <= 1; over++) {
        sub[SL_PRINCIPAL_MAX + over] = '\0';
        snprintf(p, sizeof p, "{\"sub\":\"%s\",\"exp\":1700000100}", sub);
        expect_payload(kr, p, NULL, over ? SL_ETOKEN : SL_OK, over ? "invalid claims" : NULL);
        sub[SL_PRINCIPAL_MAX + over] = 's';
    }
    /* 1024 channels are allowed, 1025 are not. */
    for (int n = 1024; n <= 1025; n++) {
        char *big = malloc(16 + 4 * (size_t)n + 64);
        size_t k = (size_t)sprintf(big, "{\"sub\":\"a\",\"exp\":1700000100,\"channels\":[");
        for (int i = 0; i < n; i++)
            k += (size_t)sprintf(big + k, "%s\"c\"", i ? "," : "");
        strcpy(big + k, "]}");
        char *t = signed_payload(big);
        assert_true(strlen(t) <= SL_JWT_MAX_LEN);
        sl_identity id;
        sl_identity_init(&id);
        sl_status st;
        int rc = sl_jwt_verify(kr, t, strlen(t), NULL, NOW, &id, &st);
        if (n == 1024) {
            assert_int_equal(rc, SL_OK);
            assert_int_equal(id.nchannels, 1024);
            assert_string_equal(id.channels[1023], "c");
        } else {
            assert_int_equal(rc, SL_ETOKEN);
            assert_string_equal(st.message, "invalid claims");
        }
        sl_identity_clear(&id);
        free(t);
        free(big);
    }
    sl_jwt_keyring_free(kr);
}

static void test_times(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    sl_jwt_verify_opts def, strict, wide, optional;
    sl_jwt_verify_opts_init(&def);
    sl_jwt_verify_opts_init(&strict);
    strict.leeway = 0;
    sl_jwt_verify_opts_init(&wide);
    wide.leeway = 3600; /* clamped to 60 */
    sl_jwt_verify_opts_init(&optional);
    optional.exp_optional = 1;
    const struct {
        const char *payload;
        const sl_jwt_verify_opts *o;
        int code;
        const char *msg;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":1699999900}", &def, SL_EEXPIRED, "token expired"},
        {"{\"sub\":\"a\",\"exp\":1699999990}", &def, SL_OK, NULL}, /* within leeway */
        {"{\"sub\":\"a\",\"exp\":1699999970}", &def, SL_EEXPIRED, "token expired"}, /* at it */
        {"{\"sub\":\"a\",\"exp\":1699999971}", &def, SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1699999990}", &strict, SL_EEXPIRED, "token expired"},
        {"{\"sub\":\"a\",\"exp\":1700000000}", &strict, SL_EEXPIRED, "token expired"},
        {"{\"sub\":\"a\",\"exp\":1700000000.5}", &strict, SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1699999950}", &wide, SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1699999900}", &wide, SL_EEXPIRED, "token expired"},
        {"{\"sub\":\"a\",\"exp\":-1}", &def, SL_EEXPIRED, "token expired"},
        {"{\"sub\":\"a\"}", &def, SL_ETOKEN, "invalid claims"},
        {"{\"sub\":\"a\"}", &optional, SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1}", &optional, SL_EEXPIRED, "token expired"},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000300}", &def, SL_ETOKEN,
         "token not yet valid"},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000020}", &def, SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000020}", &strict, SL_ETOKEN,
         "token not yet valid"},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000030}", &def, SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000031}", &def, SL_ETOKEN,
         "token not yet valid"},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"iat\":1700000300}", &def, SL_ETOKEN,
         "token not yet valid"},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"iat\":1700000020}", &def, SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"iat\":1000000000}", &def, SL_OK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_payload(kr, cases[i].payload, cases[i].o, cases[i].code, cases[i].msg);
    sl_jwt_keyring_free(kr);
}

static void test_audience_and_issuer(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.audience = "sluice";
    o.issuer = "ops";
    const struct {
        const char *payload;
        int code;
        const char *msg;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"sluice\",\"iss\":\"ops\"}", SL_OK, NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":[\"x\",\"sluice\"],\"iss\":\"ops\"}", SL_OK,
         NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"sluic\\u0065\",\"iss\":\"ops\"}", SL_OK,
         NULL},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"iss\":\"ops\"}", SL_ETOKEN, "invalid audience"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"other\",\"iss\":\"ops\"}", SL_ETOKEN,
         "invalid audience"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"sluicex\",\"iss\":\"ops\"}", SL_ETOKEN,
         "invalid audience"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"Sluice\",\"iss\":\"ops\"}", SL_ETOKEN,
         "invalid audience"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":[],\"iss\":\"ops\"}", SL_ETOKEN,
         "invalid audience"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":[\"x\"],\"iss\":\"ops\"}", SL_ETOKEN,
         "invalid audience"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":[[\"sluice\"]],\"iss\":\"ops\"}", SL_ETOKEN,
         "invalid claims"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"sluice\"}", SL_ETOKEN, "invalid issuer"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"sluice\",\"iss\":\"op\"}", SL_ETOKEN,
         "invalid issuer"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"sluice\",\"iss\":\"ops\\u0000\"}", SL_ETOKEN,
         "malformed token"},
        {"{\"sub\":\"a\",\"exp\":1700000100,\"aud\":\"sluice\",\"iss\":1}", SL_ETOKEN,
         "invalid claims"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_payload(kr, cases[i].payload, &o, cases[i].code, cases[i].msg);
    sl_jwt_keyring_free(kr);
}

/* The messages of every failure above are checked by expect(); here, a sweep over one real token
 * cut and altered everywhere, so that no path can slip its text into a message. */
static void test_messages_never_echo_the_token(void **state)
{
    (void)state;
    sl_jwt_keyring *kr = keyring_default();
    char *good = signed_payload("{\"sub\":\"secret-principal\",\"role\":\"admin\",\"channels\":"
                                "[\"x\"],\"exp\":1700000100,\"jti\":\"secret-id\"}");
    size_t len = strlen(good);
    char t[1024];
    for (size_t cut = 0; cut < len; cut++) {
        snprintf(t, sizeof t, "%.*s", (int)cut, good);
        if (cut > 0)
            expect(kr, t, NULL, SL_ETOKEN, NULL);
        if (good[cut] == '.')
            continue;
        snprintf(t, sizeof t, "%s", good);
        t[cut] = '.';
        expect(kr, t, NULL, SL_ETOKEN, NULL);
    }
    /* Valid signature, failing claims: the message still names no claim value. */
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.audience = "secret-audience";
    expect(kr, good, &o, SL_ETOKEN, "invalid audience");
    free(good);
    sl_jwt_keyring_free(kr);
}

static void test_decode_unverified(void **state)
{
    (void)state;
    char *h, *p;
    char *t = make_token("{\"alg\":\"none\"}", "{\"sub\":\"a\"}", NULL, 0);
    assert_int_equal(sl_jwt_decode_unverified(t, strlen(t), &h, &p), SL_OK);
    assert_string_equal(h, "{\"alg\":\"none\"}");
    assert_string_equal(p, "{\"sub\":\"a\"}");
    free(h);
    free(p);
    free(t);
    const char *bad[] = {"",          "a",        "a.b",      "e30.e30.e30.e30", "e30=.e30.",
                         "e30.e30.%", "e30.W10.", "W10.e30.", "e30.bnVsbA."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        h = p = (char *)"untouched";
        assert_int_equal(sl_jwt_decode_unverified(bad[i], strlen(bad[i]), &h, &p), SL_ETOKEN);
        assert_null(h);
        assert_null(p);
    }
    assert_int_equal(sl_jwt_decode_unverified("e30.e30.", 8, &h, &p), SL_OK);
    assert_string_equal(h, "{}");
    free(h);
    free(p);
    assert_int_equal(sl_jwt_decode_unverified(NULL, 0, &h, &p), SL_ETOKEN);
    assert_int_equal(sl_jwt_decode_unverified("e30.e30.", 8, NULL, &p), SL_ETOKEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_a1),
        cmocka_unit_test(test_hmac_matches_openssl),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_json_corpus_agrees_with_jansson),
        cmocka_unit_test(test_json_depth_limit),
        cmocka_unit_test(test_json_mutations_agree_with_jansson),
        cmocka_unit_test(test_keyring),
        cmocka_unit_test(test_kid_rotation),
        cmocka_unit_test(test_header_memo),
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_sign_refuses_bad_claims),
        cmocka_unit_test(test_pyjwt_tokens),
        cmocka_unit_test(test_algorithms),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_payload_shape),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_audience_and_issuer),
        cmocka_unit_test(test_messages_never_echo_the_token),
        cmocka_unit_test(test_decode_unverified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
