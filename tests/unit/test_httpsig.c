/* Signed requests: the structured-field parser, RFC 9421's own examples (B.2.5 hmac-sha256, B.2.6
 * ed25519) and RFC 9530's digests as vectors, sign-then-verify for the three algorithms, every
 * refusal the verifier owes (tampering, freshness, policy, headers), the key file, and the
 * authenticator with its nonce store (replays, a full store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <sluice/httpsig.h>

#include "security/httpsig.h"
#include "security/sfv.h"
#include "security/siphash.h"

#include <openssl/core_names.h>
#include <openssl/params.h>

/* ---- a request view over fixed fields -------------------------------------------------------- */

typedef struct fake {
    sl_authn_request v;
    const char *names[12];
    const char *values[12];
    size_t n;
} fake;

static const char *fake_header(const sl_authn_request *r, const char *name, size_t nth, size_t *len)
{
    const fake *f = (const fake *)r;
    for (size_t i = 0; i < f->n; i++)
        if (!strcasecmp(f->names[i], name) && nth-- == 0) {
            *len = strlen(f->values[i]);
            return f->values[i];
        }
    return NULL;
}

static void fake_init(fake *f, const char *method, const char *authority, const char *path,
                      const char *query, const char *body)
{
    memset(f, 0, sizeof *f);
    f->v.method = method;
    f->v.scheme = "https";
    f->v.authority = authority;
    f->v.authority_len = strlen(authority);
    f->v.path = path;
    f->v.path_len = strlen(path);
    f->v.query = query;
    f->v.query_len = strlen(query);
    f->v.body = body;
    f->v.body_len = strlen(body);
    f->v.header = fake_header;
    f->v.impl = f;
}

static void fake_add(fake *f, const char *name, const char *value)
{
    f->names[f->n] = name;
    f->values[f->n++] = value;
}

/* ---- RFC 9421 Appendix B ----------------------------------------------------------------------
 */

/* B.1.5, base64 */
#define SHARED_SECRET_B64                                                                          \
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
/* B.1.4, the public half of test-key-ed25519 */
#define ED25519_PUB                                                                                \
    "-----BEGIN PUBLIC KEY-----\n"                                                                 \
    "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"                               \
    "-----END PUBLIC KEY-----\n"
#define CREATED 1618884473.0

/* B.2's test-request: POST /foo?param=Value&Pet=dog with its headers and body. */
static void test_request(fake *f)
{
    fake_init(f, "POST", "example.com", "/foo", "param=Value&Pet=dog", "{\"hello\": \"world\"}");
    fake_add(f, "Host", "example.com");
    fake_add(f, "Date", "Tue, 20 Apr 2021 02:07:55 GMT");
    fake_add(f, "Content-Type", "application/json");
    fake_add(f, "Content-Digest",
             "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvR"
             "wEmTHWXvJwew==:");
    fake_add(f, "Content-Length", "18");
}

static sl_httpsig_keyring *rfc_keys(void)
{
    sl_httpsig_keyring *kr;
    assert_int_equal(sl_httpsig_keyring_new(&kr), SL_OK);
    sl_status st;
    const char *json = "{\"keys\": ["
                       "{\"keyid\": \"test-shared-secret\", \"alg\": \"hmac-sha256\", "
                       "\"key\": \"inline:" SHARED_SECRET_B64 "\", \"key_encoding\": \"base64\", "
                       "\"principal\": \"rfc-hmac\", \"nonce\": false},"
                       "{\"keyid\": \"test-key-ed25519\", \"alg\": \"ed25519\", "
                       "\"key\": \"env:TEST_ED25519_PUB\", \"principal\": \"rfc-ed\", "
                       "\"nonce\": false}]}";
    setenv("TEST_ED25519_PUB", ED25519_PUB, 1);
    assert_int_equal(sl_httpsig_keyring_load(kr, json, strlen(json), &st), SL_OK);
    assert_int_equal(sl_httpsig_keyring_size(kr), 2);
    return kr;
}

static void test_rfc9421_b25_hmac(void **state)
{
    (void)state;
    sl_httpsig_keyring *kr = rfc_keys();
    fake f;
    test_request(&f);
    fake_add(&f, "Signature-Input",
             "sig-b25=(\"date\" \"@authority\" \"content-type\");created=1618884473;keyid=\"test-"
             "shared-secret\"");
    fake_add(&f, "Signature", "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:");
    sl_httpsig_verified v;
    sl_status st;
    sl_status_clear(&st);
    assert_int_equal(sl__httpsig_verify_policy(kr, &f.v, CREATED, 300, 0, &v, &st), SL_OK);
    assert_string_equal(v.keyid, "test-shared-secret");
    assert_string_equal(v.key->principal, "rfc-hmac");
    /* sluice's own policy asks for more than this example covers */
    assert_int_equal(sl_httpsig_verify(kr, &f.v, CREATED, 300, &v, &st), SL_ETOKEN);
    assert_string_equal(st.message, "the signature must cover @method");
    /* one covered header changed */
    f.values[2] = "text/plain";
    assert_int_equal(sl__httpsig_verify_policy(kr, &f.v, CREATED, 300, 0, &v, &st), SL_ETOKEN);
    assert_string_equal(st.message, "signature does not verify");
    f.values[2] = "application/json";
    /* the same signature an hour later */
    assert_int_equal(sl__httpsig_verify_policy(kr, &f.v, CREATED + 3600, 300, 0, &v, &st),
                     SL_ETOKEN);
    assert_string_equal(st.message, "signature too old (created)");
    sl_httpsig_keyring_free(kr);
}

static void test_rfc9421_b26_ed25519(void **state)
{
    (void)state;
    sl_httpsig_keyring *kr = rfc_keys();
    fake f;
    test_request(&f);
    fake_add(&f, "Signature-Input",
             "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" "
             "\"content-length\");created=1618884473;keyid=\"test-key-ed25519\"");
    fake_add(&f, "Signature",
             "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDg"
             "wUPiu4A0w6vuQv5lIp5WPpBKRCw==:");
    sl_httpsig_verified v;
    sl_status st;
    sl_status_clear(&st);
    assert_int_equal(sl__httpsig_verify_policy(kr, &f.v, CREATED, 300, 0, &v, &st), SL_OK);
    assert_string_equal(v.key->principal, "rfc-ed");
    f.v.method = "PUT";
    assert_int_equal(sl__httpsig_verify_policy(kr, &f.v, CREATED, 300, 0, &v, &st), SL_ETOKEN);
    assert_string_equal(st.message, "signature does not verify");
    f.v.method = "POST";
    /* the body changed: the digest says so before the signature is looked at */
    f.v.body = "{\"hello\": \"World\"}";
    assert_int_equal(sl__httpsig_verify_policy(kr, &f.v, CREATED, 300, 0, &v, &st), SL_ETOKEN);
    assert_string_equal(st.message, "content-digest does not match the body");
    sl_httpsig_keyring_free(kr);
}

/* RFC 9530 section 2's example body and its sha-256 and sha-512 digests. */
static void test_rfc9530_digest(void **state)
{
    (void)state;
    const char *body = "{\"hello\": \"world\"}";
    size_t n = strlen(body);
    sl_status st;
    const char *s256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
    const char *s512 = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BN"
                       "NyealdVLvRwEmTHWXvJwew==:";
    assert_int_equal(sl_httpsig_check_digest(s256, strlen(s256), body, n, &st), SL_OK);
    assert_int_equal(sl_httpsig_check_digest(s512, strlen(s512), body, n, &st), SL_OK);
    char both[256];
    snprintf(both, sizeof both, "%s, %s", s256, s512);
    assert_int_equal(sl_httpsig_check_digest(both, strlen(both), body, n, &st), SL_OK);
    assert_int_equal(sl_httpsig_check_digest(s256, strlen(s256), "{}", 2, &st), SL_ETOKEN);
    assert_string_equal(st.message, "content-digest does not match the body");
    /* one good and one bad entry: refused */
    snprintf(both, sizeof both, "%s, sha-512=:AAAA:", s256);
    assert_int_equal(sl_httpsig_check_digest(both, strlen(both), body, n, &st), SL_ETOKEN);
    /* nothing sluice can check */
    const char *md5 = "md5=:AAAA:";
    assert_int_equal(sl_httpsig_check_digest(md5, strlen(md5), body, n, &st), SL_ETOKEN);
    const char *bad[] = {"sha-256=X48E", "sha-256=:X48E9q:", "sha-256=:@@@@:", "sha-256",
                         "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-256=:AA==:"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sl_httpsig_check_digest(bad[i], strlen(bad[i]), body, n, &st), SL_ETOKEN);
    /* The one-entry field goes a shorter way than the dictionary parser: the same answers, and
     * the same reasons, whichever way a value goes. */
    const struct {
        const char *v;
        int rc;
        const char *why;
    } cases[] = {
        {" sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:  ", SL_OK, NULL},
        {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:;p=1", SL_OK, NULL},
        {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, md5=:AAAA:", SL_OK, NULL},
        /* stray bits in the last quantum, padding in the middle, a character outside base64 */
        {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPF=:", SL_ETOKEN,
         "malformed Content-Digest"},
        {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWD=oyWxBf7kbu9DBPE=:", SL_ETOKEN,
         "malformed Content-Digest"},
        {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWD.oyWxBf7kbu9DBPE=:", SL_ETOKEN,
         "malformed Content-Digest"},
        {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:", SL_ETOKEN,
         "malformed Content-Digest"},
        {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=::", SL_ETOKEN,
         "malformed Content-Digest"},
        {"sha-256=:X48E:X48E:", SL_ETOKEN, "malformed Content-Digest"},
        {"sha-256=:AQ==:, sha-256=:AQ==:", SL_ETOKEN, "malformed Content-Digest"},
        /* well formed, wrong: too short, empty, a sha-512's length under sha-256, too long */
        {"sha-256=:AQ==:", SL_ETOKEN, "content-digest does not match the body"},
        {"sha-256=::", SL_ETOKEN, "content-digest does not match the body"},
        {"sha-256=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTH"
         "WXvJwew==:",
         SL_ETOKEN, "content-digest does not match the body"},
        {"sha-512=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:",
         SL_ETOKEN, "content-digest does not match the body"},
        {"sha-384=:AQ==:", SL_ETOKEN, "Content-Digest has no sha-256 or sha-512 entry"},
        {"sha-2560=:AQ==:", SL_ETOKEN, "Content-Digest has no sha-256 or sha-512 entry"},
        {"sha-256=(:AQ==:)", SL_ETOKEN, "malformed Content-Digest"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sl_status_clear(&st);
        assert_int_equal(sl_httpsig_check_digest(cases[i].v, strlen(cases[i].v), body, n, &st),
                         cases[i].rc);
        if (cases[i].why)
            assert_string_equal(st.message, cases[i].why);
    }
}

/* ---- structured fields ------------------------------------------------------------------------
 */

static void test_sfv(void **state)
{
    (void)state;
    sl__sfv_dict d;
    const char *in = "a=1, b=?0, c=-2.5;x;y=\"q\\\"\", d=(tok \"s\" :AQID:);p=1, e";
    assert_int_equal(sl__sfv_parse_dict(in, strlen(in), &d), 0);
    assert_int_equal(d.n, 5);
    assert_int_equal(d.m[0].item.v.type, SL__SFV_INTEGER);
    assert_int_equal(d.m[0].item.v.i, 1);
    assert_int_equal(d.m[1].item.v.type, SL__SFV_BOOLEAN);
    assert_int_equal(d.m[1].item.v.i, 0);
    assert_int_equal(d.m[2].item.v.type, SL__SFV_DECIMAL);
    assert_true(d.m[2].item.v.d == -2.5);
    assert_string_equal(sl__sfv_param_get(&d.m[2].item, "y")->s, "q\"");
    const sl__sfv_item *il = &sl__sfv_dict_get(&d, "d")->item;
    assert_true(il->inner);
    assert_int_equal(il->nitems, 3);
    assert_int_equal(il->items[0].v.type, SL__SFV_TOKEN);
    assert_int_equal(il->items[2].v.type, SL__SFV_BYTES);
    assert_int_equal(il->items[2].v.len, 3);
    char out[128];
    assert_true(sl__sfv_serialize_item(il, out, sizeof out) > 0);
    assert_string_equal(out, "(tok \"s\" :AQID:);p=1");
    assert_true(sl__sfv_serialize_item(&d.m[2].item, out, sizeof out) > 0);
    assert_string_equal(out, "-2.5;x;y=\"q\\\"\"");
    assert_int_equal(d.m[4].item.v.type, SL__SFV_BOOLEAN);
    assert_false(sl__sfv_dict_has_dups(&d));
    sl__sfv_dict_clear(&d);
    /* the serialiser writes the canonical form of a sloppier input */
    sl__sfv_item it;
    const char *sloppy = "(  \"a\"   \"b\" );created=1;keyid=\"k\"";
    assert_int_equal(sl__sfv_parse_list(sloppy, strlen(sloppy), &d), 0);
    assert_true(sl__sfv_serialize_item(&d.m[0].item, out, sizeof out) > 0);
    assert_string_equal(out, "(\"a\" \"b\");created=1;keyid=\"k\"");
    sl__sfv_dict_clear(&d);
    const char *bad_dicts[] = {
        "a=1,",
        "a=1,,b=2",
        "A=1",
        "a=\"x",
        "a=\"\\x\"",
        "a=1234567890123456",
        "a=1.2345",
        "a=1.",
        "a=:AQI:",
        "a=:AQ=D:",
        "a=(1 2",
        "a=(1,2)",
        "a=?2",
        "a=@",
        "a=1;",
        "a=1;B=2",
        "a=\"\x01\"",
        "a=1 b=2",
        "1a=1",
        "a=1234567890123.5",
        "a=:A===:",
        "a=:====:",
        "a=:AQ==AQ==:",
        "a=:AQ=x:",
        "a=:A=Q=:",
        "a=:@@@@:",
        "a=:AQID",
        "a=:AQ\x80"
        "D:",
    };
    for (size_t i = 0; i < sizeof bad_dicts / sizeof *bad_dicts; i++) {
        assert_int_equal(sl__sfv_parse_dict(bad_dicts[i], strlen(bad_dicts[i]), &d), -1);
        assert_int_equal(d.n, 0);
    }
    {
        /* escapes survive a round trip, wherever they fall in the string */
        const char *esc = "\"\\\"a\\\\b\\\"\";k=\"x\\\"\";e=\"\"";
        char ser[128];
        assert_int_equal(sl__sfv_parse_item(esc, strlen(esc), &it), 0);
        assert_int_equal(it.v.len, 5); /* "a\b" */
        assert_true(sl__sfv_serialize_item(&it, ser, sizeof ser) > 0);
        assert_string_equal(ser, esc);
        sl__sfv_item_clear(&it);
    }
    const struct {
        const char *in;
        size_t len;
        const char *bytes;
    } padded[] = {{":AQ==:", 1, "\x01"},
                  {":AQI=:", 2, "\x01\x02"},
                  {":AQID:", 3, "\x01\x02\x03"},
                  {"::", 0, ""}};
    for (size_t i = 0; i < sizeof padded / sizeof *padded; i++) {
        assert_int_equal(sl__sfv_parse_item(padded[i].in, strlen(padded[i].in), &it), 0);
        assert_int_equal(it.v.type, SL__SFV_BYTES);
        assert_int_equal(it.v.len, padded[i].len);
        assert_memory_equal(it.v.s, padded[i].bytes, padded[i].len);
        sl__sfv_item_clear(&it);
    }
    assert_int_equal(sl__sfv_parse_item("1 2", 3, &it), -1);
    assert_int_equal(sl__sfv_parse_item(" 42 ", 4, &it), 0);
    assert_int_equal(it.v.i, 42);
    sl__sfv_item_clear(&it);
    /* empty: an empty dictionary */
    assert_int_equal(sl__sfv_parse_dict("", 0, &d), 0);
    assert_int_equal(d.n, 0);
    /* duplicates are kept, and reported */
    assert_int_equal(sl__sfv_parse_dict("a=1, a=2", 8, &d), 0);
    assert_true(sl__sfv_dict_has_dups(&d));
    sl__sfv_dict_clear(&d);
    /* bounds */
    char big[SL__SFV_MAX_MEMBERS * 4 + 8] = "";
    for (int i = 0; i <= SL__SFV_MAX_MEMBERS; i++)
        strcat(big, i ? ", a" : "a");
    assert_int_equal(sl__sfv_parse_dict(big, strlen(big), &d), -1);
}

/* Parses into caller scratch: nothing allocated when the field fits, the rest in heap blocks when
 * it does not (hostile, huge fields included), and the same result either way. */
static void assert_same_dict(const sl__sfv_dict *x, const sl__sfv_dict *y)
{
    static char a[SL__SFV_MAX_INPUT + 1], b[SL__SFV_MAX_INPUT + 1];
    assert_int_equal(x->n, y->n);
    for (size_t i = 0; i < x->n; i++) {
        assert_string_equal(x->m[i].key, y->m[i].key);
        long n = sl__sfv_serialize_item(&x->m[i].item, a, sizeof a);
        assert_true(n >= 0);
        assert_int_equal(sl__sfv_serialize_item(&y->m[i].item, b, sizeof b), n);
        assert_memory_equal(a, b, (size_t)n);
    }
}

static void test_sfv_scratch(void **state)
{
    (void)state;
    const char *si =
        "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=1700000000;"
        "keyid=\"svc-hmac\";alg=\"hmac-sha256\";nonce=\"0123456789abcdef0123456789abcdef\"";
    max_align_t scratch[4096 / sizeof(max_align_t)];
    sl__sfv_dict h, d;
    assert_int_equal(sl__sfv_parse_dict(si, strlen(si), &h), 0);
    assert_non_null(h.mem);
    assert_int_equal(sl__sfv_parse_dict_in(si, strlen(si), &d, scratch, sizeof scratch), 0);
    assert_null(d.mem); /* all of it in the scratch */
    assert_true((char *)d.m >= (char *)scratch && (char *)d.m < (char *)(scratch + 256));
    assert_same_dict(&h, &d);
    sl__sfv_dict_clear(&d);
    /* scratch too small for all (a few bytes, misaligned, none): the rest on the heap */
    static const size_t caps[] = {0, 1, 15, 16, 17, 100, 300, 1000};
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++)
        for (size_t skew = 0; skew < 3; skew++) {
            assert_int_equal(
                sl__sfv_parse_dict_in(si, strlen(si), &d, (char *)scratch + skew, caps[i]), 0);
            assert_non_null(d.mem);
            assert_same_dict(&h, &d);
            sl__sfv_dict_clear(&d);
        }
    sl__sfv_dict_clear(&h);
    /* hostile and huge: 64 labels, each an inner list of 64 long strings with parameters, up to
     * the 16 KiB bound; it spills to the heap, parses the same, and a refusal after the spill
     * leaves nothing behind (the sanitizer build checks for leaks and overruns) */
    static char big[SL__SFV_MAX_INPUT + 64];
    size_t n = 0;
    for (int m = 0; m < SL__SFV_MAX_MEMBERS && n < SL__SFV_MAX_INPUT - 400; m++) {
        n += (size_t)snprintf(big + n, sizeof big - n, "%sl%d=(", m ? ", " : "", m);
        for (int i = 0; i < SL__SFV_MAX_INNER && n < SL__SFV_MAX_INPUT - 400; i++)
            n += (size_t)snprintf(big + n, sizeof big - n, "%s\"component-%d-%d-xxxxxxxx\";p=%d",
                                  i ? " " : "", m, i, i);
        n += (size_t)snprintf(big + n, sizeof big - n, ");created=%d;keyid=\"k%d\"", m, m);
    }
    assert_true(n <= SL__SFV_MAX_INPUT);
    assert_int_equal(sl__sfv_parse_dict(big, n, &h), 0);
    assert_int_equal(sl__sfv_parse_dict_in(big, n, &d, scratch, sizeof scratch), 0);
    assert_non_null(d.mem);
    assert_same_dict(&h, &d);
    sl__sfv_dict_clear(&d);
    sl__sfv_dict_clear(&h);
    big[n] = ',';
    assert_int_equal(sl__sfv_parse_dict_in(big, n + 1, &d, scratch, sizeof scratch), -1);
    assert_int_equal(d.n, 0);
    assert_null(d.mem);
    big[n] = '\0';
    /* over the bound: refused before anything is taken */
    memset(big, 'a', SL__SFV_MAX_INPUT + 1);
    assert_int_equal(sl__sfv_parse_dict_in(big, SL__SFV_MAX_INPUT + 1, &d, scratch, sizeof scratch),
                     -1);
    assert_null(d.mem);
}

/* An item is marked canonical exactly when its text is what the serialiser writes. */
static void test_sfv_canonical(void **state)
{
    (void)state;
    const char *yes[] = {
        "(\"@method\" \"@target-uri\");created=1618884473;keyid=\"k\";nonce=\"a\\\"b\"",
        "()",
        "();a=?0",
        "tok;b=:AQID:;c=-5",
        "\"x\"",
        "?1",
        "0",
        "-12",
        "(a;q=1 b);z",
    };
    const char *no[] = {
        "( \"@method\")", "(\"a\"  \"b\")", "(\"a\" )", "(\"a\");created=01",
        "(\"a\");x=?1",   "(\"a\"); x=1",   "1.5",      "-0",
        "(a;q=-0)",       "(a); b",
    };
    char out[256];
    for (int pass = 0; pass < 2; pass++) {
        const char **v = pass ? no : yes;
        size_t nv = pass ? sizeof no / sizeof *no : sizeof yes / sizeof *yes;
        for (size_t i = 0; i < nv; i++) {
            char field[300];
            snprintf(field, sizeof field, "sig1=%s, x", v[i]);
            sl__sfv_dict d;
            assert_int_equal(sl__sfv_parse_dict(field, strlen(field), &d), 0);
            const sl__sfv_item *it = &d.m[0].item;
            assert_int_equal(it->text_len, strlen(v[i]));
            assert_memory_equal(it->text, v[i], it->text_len);
            assert_int_equal(it->canonical, !pass);
            long n = sl__sfv_serialize_item(it, out, sizeof out);
            if (!pass) {
                assert_int_equal(n, (long)strlen(v[i]));
                assert_string_equal(out, v[i]);
            }
            /* a key alone (boolean true) has no text of its own */
            assert_false(d.m[1].item.canonical);
            sl__sfv_dict_clear(&d);
        }
    }
}

/* Parses s[0..n) from an exact-size copy (so that a read past the field is an overrun the
 * sanitizer sees) into *d, then again into scratch of many sizes and alignments, which must give
 * the same; returns the first parse's result. */
static int parse_exact(const char *s, size_t n, sl__sfv_dict *d)
{
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, s, n);
    int rc = sl__sfv_parse_dict(copy, n, d);
    static max_align_t scratch[2048 / sizeof(max_align_t)];
    for (size_t cap = 0; cap <= sizeof scratch - 8; cap += cap < 64 ? 1 : 56)
        for (size_t skew = 0; skew < 8; skew += 7) {
            sl__sfv_dict e;
            assert_int_equal(sl__sfv_parse_dict_in(copy, n, &e, (char *)scratch + skew, cap), rc);
            if (rc == 0)
                assert_same_dict(d, &e);
            sl__sfv_dict_clear(&e);
        }
    if (rc == 0) { /* spans point into the text parsed: rebase them onto s */
        for (size_t i = 0; i < d->n; i++)
            if (d->m[i].item.text)
                d->m[i].item.text = s + (d->m[i].item.text - copy);
    }
    free(copy);
    return rc;
}

/* The bounds and corners the scanning takes shortcuts around: keys and strings shorter and
 * longer than a sixteen-byte step, ending at the field's end or not, escapes and bad bytes at
 * every position, parameters on inner-list items, whitespace, byte sequences whose ':' or padding
 * sit where the one-pass decoder hands over to the general one, numbers at their bounds. */
static void test_sfv_edges(void **state)
{
    (void)state;
    char f[256], want[128];
    sl__sfv_dict d;
    /* keys: up to 64 bytes; alone (boolean true), with a value, at the field's end or not */
    for (size_t len = 1; len <= 66; len++) {
        for (int form = 0; form < 3; form++) {
            memset(f, 'k', len);
            f[0] = len % 2 ? 'k' : '*';
            f[len] = '\0';
            strcat(f, form == 0 ? "" : form == 1 ? "=1" : ";p, z");
            int rc = parse_exact(f, strlen(f), &d);
            assert_int_equal(rc, len <= SL__SFV_MAX_KEY ? 0 : -1);
            if (rc == 0) {
                assert_int_equal(strlen(d.m[0].key), len);
                assert_memory_equal(d.m[0].key, f, len);
                assert_int_equal(d.m[0].item.v.type, form == 1 ? SL__SFV_INTEGER : SL__SFV_BOOLEAN);
            }
            sl__sfv_dict_clear(&d);
        }
    }
    /* a key stops at the first byte that cannot be in one */
    assert_int_equal(parse_exact("abc_-.*09z/x=1", 14, &d), -1);
    assert_int_equal(parse_exact("abc_-.*09zABC=1", 15, &d), -1);
    assert_int_equal(parse_exact("abc_-.*09z=1", 12, &d), 0);
    assert_string_equal(d.m[0].key, "abc_-.*09z");
    sl__sfv_dict_clear(&d);
    /* strings of every length around the step, closed at the field's end or followed by more */
    for (size_t len = 0; len <= 40; len++)
        for (int form = 0; form < 3; form++) {
            memset(want, 0, sizeof want);
            for (size_t i = 0; i < len; i++)
                want[i] = (char)(' ' + (i * 7) % 95 == '"' || ' ' + (i * 7) % 95 == '\\'
                                     ? 'q'
                                     : ' ' + (i * 7) % 95);
            snprintf(f, sizeof f, "a=\"%s\"%s", want, form == 0 ? "" : form == 1 ? ";p" : ", z=1");
            assert_int_equal(parse_exact(f, strlen(f), &d), 0);
            assert_int_equal(d.m[0].item.v.type, SL__SFV_STRING);
            assert_int_equal(d.m[0].item.v.len, len);
            assert_string_equal(d.m[0].item.v.s, want);
            assert_int_equal(d.m[0].item.text_len, len + 2 + (form == 1 ? 2 : 0));
            sl__sfv_dict_clear(&d);
            /* unterminated */
            snprintf(f, sizeof f, "a=\"%s", want);
            assert_int_equal(parse_exact(f, strlen(f), &d), -1);
            /* an escape, or a byte a string cannot hold, at this position */
            for (int esc = 0; esc < 2; esc++) {
                snprintf(f, sizeof f, "a=\"%.*s\\%cyyyyy\"%s", (int)len, want, esc ? '\\' : '"',
                         form == 2 ? ", z=1" : "");
                assert_int_equal(parse_exact(f, strlen(f), &d), 0);
                assert_int_equal(d.m[0].item.v.len, len + 6);
                assert_memory_equal(d.m[0].item.v.s, want, len);
                assert_int_equal(d.m[0].item.v.s[len], esc ? '\\' : '"');
                assert_string_equal(d.m[0].item.v.s + len + 1, "yyyyy");
                assert_int_equal(d.m[0].item.canonical, 1);
                sl__sfv_dict_clear(&d);
            }
            static const char bad[] = {0x7f, (char)0x80, 0x1f, '\t', (char)0xff, 0x00};
            for (size_t b = 0; b < sizeof bad; b++) {
                size_t n = (size_t)snprintf(f, sizeof f, "a=\"%sXyyyyyyyyyyyyyyyyy\"", want);
                f[3 + len] = bad[b];
                assert_int_equal(parse_exact(f, n, &d), -1);
            }
            /* an escape of anything but '"' or '\\', or one cut off by the end */
            snprintf(f, sizeof f, "a=\"%s\\n\"", want);
            assert_int_equal(parse_exact(f, strlen(f), &d), -1);
            snprintf(f, sizeof f, "a=\"%s\\", want);
            assert_int_equal(parse_exact(f, strlen(f), &d), -1);
        }
    /* parameters on inner-list items and on the list, and whitespace where it may be */
    const char *il = "  a=(\"x\";p=1 tok;q :AQID:;r=\"s\" 5;t=?0 -1.5);u=1.5 ,\tb=2\t,  c  ";
    assert_int_equal(parse_exact(il, strlen(il), &d), 0);
    assert_int_equal(d.n, 3);
    const sl__sfv_item *in = &d.m[0].item;
    assert_int_equal(in->nitems, 5);
    assert_int_equal(in->items[1].nparams, 1);
    assert_true(in->items[1].params[0].v.type == SL__SFV_BOOLEAN && in->items[1].params[0].v.i);
    assert_string_equal(sl__sfv_param_get(&in->items[2], "r")->s, "s");
    assert_int_equal(in->items[3].params[0].v.i, 0);
    assert_true(in->items[4].v.d == -1.5);
    assert_true(sl__sfv_param_get(in, "u")->d == 1.5);
    assert_int_equal(in->text - il, 4);
    char out[256];
    assert_true(sl__sfv_serialize_item(in, out, sizeof out) > 0);
    assert_string_equal(out, "(\"x\";p=1 tok;q :AQID:;r=\"s\" 5;t=?0 -1.5);u=1.5");
    assert_string_equal(d.m[2].key, "c");
    sl__sfv_dict_clear(&d);
    const char *refused[] = {
        "a=1 ,, b=2", "a=1,", "a=1, ", "a=(1\t2)", "a=(1  ", "a=( ", "a=(1)x", "a=1;;p", "a=1; ",
        "a=\"x\"y", ",a=1", "a=1,\t,b=1",
        /* byte sequences: the first ':' inside the last quantum, short, unterminated, misplaced
         * or surplus padding, stray bits, bytes outside the alphabet before and after a quantum */
        "a=:AQ:=:", "a=:AQ=:", "a=:AQ==", "a=:AQ=x:", "a=:AR==:", "a=:AQI/:x",
        "a=:AQ==AQ==:", "a=:AQIDAQ?D:", "a=:AQIDA:", "a=:AQID", "a=:A===:", "a=:AQIDAQ=:;p",
        /* numbers at their bounds */
        "a=1234567890123456", "a=-1234567890123456", "a=1234567890123.1", "a=1.2345", "a=1.", "a=-",
        "a=-.5", "a=--1", "a=12345678901234567890"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        assert_int_equal(parse_exact(refused[i], strlen(refused[i]), &d), -1);
    const struct {
        const char *in, *bytes;
        size_t len;
    } bytes[] = {
        {"a=:AQID:", "\x01\x02\x03", 3},
        {"a=:AQ==:;p", "\x01", 1},
        {"a=:AQI=:, b=1", "\x01\x02", 2},
        {"a=:AQIDBA==:", "\x01\x02\x03\x04", 4},
        {"a=::", "", 0},
        {"a=:AQIDBAUG:;q=:AQ==:", "\x01\x02\x03\x04\x05\x06", 6},
    };
    for (size_t i = 0; i < sizeof bytes / sizeof *bytes; i++) {
        assert_int_equal(parse_exact(bytes[i].in, strlen(bytes[i].in), &d), 0);
        assert_int_equal(d.m[0].item.v.type, SL__SFV_BYTES);
        assert_int_equal(d.m[0].item.v.len, bytes[i].len);
        assert_memory_equal(d.m[0].item.v.s, bytes[i].bytes, bytes[i].len + 1);
        sl__sfv_dict_clear(&d);
    }
    const struct {
        const char *in;
        sl__sfv_type type;
        int64_t i;
        double dv;
        int canonical;
    } nums[] = {
        {"a=999999999999999", SL__SFV_INTEGER, 999999999999999LL, 0, 1},
        {"a=-999999999999999", SL__SFV_INTEGER, -999999999999999LL, 0, 1},
        {"a=000000000000001", SL__SFV_INTEGER, 1, 0, 0},
        {"a=-0", SL__SFV_INTEGER, 0, 0, 0},
        {"a=0;p", SL__SFV_INTEGER, 0, 0, 1},
        {"a=123456789012.123", SL__SFV_DECIMAL, 0, 123456789012.123, 0},
        {"a=-0.5, b", SL__SFV_DECIMAL, 0, -0.5, 0},
        {"a=1796552572", SL__SFV_INTEGER, 1796552572, 0, 1},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        assert_int_equal(parse_exact(nums[i].in, strlen(nums[i].in), &d), 0);
        assert_int_equal(d.m[0].item.v.type, nums[i].type);
        assert_true(d.m[0].item.v.i == nums[i].i);
        assert_true(d.m[0].item.v.d == nums[i].dv);
        assert_int_equal(d.m[0].item.canonical, nums[i].canonical);
        sl__sfv_dict_clear(&d);
    }
}

/* ---- sign, then verify ------------------------------------------------------------------------
 */

#define HMAC_SECRET "0123456789abcdef0123456789abcdef-hmac"

static char *pem_of(EVP_PKEY *pk, int private_part)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (private_part)
        PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PUBKEY(b, pk);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    /* The BIO's bytes are not NUL-terminated (strndup would read past them). */
    char *s = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        memcpy(s, p, (size_t)n);
        s[n] = '\0';
    }
    BIO_free(b);
    return s;
}

typedef struct keys {
    sl_httpsig_keyring *kr;
    char *ed_priv, *ec_priv;
} keys;

static void make_keys(keys *k)
{
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ed);
    assert_non_null(ec);
    k->ed_priv = pem_of(ed, 1);
    k->ec_priv = pem_of(ec, 1);
    char *ed_pub = pem_of(ed, 0), *ec_pub = pem_of(ec, 0);
    assert_int_equal(sl_httpsig_keyring_new(&k->kr), SL_OK);
    sl_status st;
    const char *ch[] = {"jobs.*"};
    sl_httpsig_key_opts o = {.keyid = "svc-hmac",
                             .alg = SL_HTTPSIG_HMAC_SHA256,
                             .material = HMAC_SECRET,
                             .material_len = strlen(HMAC_SECRET),
                             .principal = "svc",
                             .role = SL_ROLE_WRITE,
                             .scoped = 1,
                             .channels = ch,
                             .nchannels = 1};
    assert_int_equal(sl_httpsig_keyring_add(k->kr, &o, &st), SL_OK);
    assert_int_equal(sl_httpsig_keyring_add(k->kr, &o, &st), SL_EEXIST);
    sl_httpsig_key_opts e = {.keyid = "svc-ed",
                             .alg = SL_HTTPSIG_ED25519,
                             .material = ed_pub,
                             .material_len = strlen(ed_pub),
                             .principal = "svc"};
    assert_int_equal(sl_httpsig_keyring_add(k->kr, &e, &st), SL_OK);
    e.keyid = "svc-ec";
    e.alg = SL_HTTPSIG_ECDSA_P256_SHA256;
    e.material = ec_pub;
    e.material_len = strlen(ec_pub);
    assert_int_equal(sl_httpsig_keyring_add(k->kr, &e, &st), SL_OK);
    /* an ed25519 key is no ecdsa key */
    e.keyid = "mixed";
    e.material = ed_pub;
    e.material_len = strlen(ed_pub);
    assert_int_equal(sl_httpsig_keyring_add(k->kr, &e, &st), SL_EINVAL);
    /* short hmac secrets are refused */
    o.keyid = "short";
    o.material_len = 16;
    assert_int_equal(sl_httpsig_keyring_add(k->kr, &o, &st), SL_EINVAL);
    free(ed_pub);
    free(ec_pub);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec);
}

static void free_keys(keys *k)
{
    sl_httpsig_keyring_free(k->kr);
    free(k->ed_priv);
    free(k->ec_priv);
}

/* A PUT signed by sl_httpsig_sign, as the client library sends it. */
typedef struct signed_req {
    fake f;
    sl_httpsig_headers h;
} signed_req;

static int load_signer; /* 1: sign_put parses the key once first (sl_httpsig_signer_load) */

static void sign_put(signed_req *s, const keys *k, const char *keyid, double now)
{
    sl_httpsig_signer sg = {.keyid = keyid};
    if (!strcmp(keyid, "svc-ed")) {
        sg.alg = SL_HTTPSIG_ED25519;
        sg.key = k->ed_priv;
    } else if (!strcmp(keyid, "svc-ec")) {
        sg.alg = SL_HTTPSIG_ECDSA_P256_SHA256;
        sg.key = k->ec_priv;
    } else {
        sg.alg = SL_HTTPSIG_HMAC_SHA256;
        sg.key = HMAC_SECRET;
    }
    sg.key_len = strlen(sg.key);
    sl_status st;
    sl_status_clear(&st);
    if (load_signer)
        assert_int_equal(sl_httpsig_signer_load(&sg, &st), SL_OK);
    const char *body = "{\"data\":{\"n\":1}}";
    assert_int_equal(sl_httpsig_sign(&sg, "PUT", "https", "Node.Example:8443", "/channels/jobs",
                                     "x=1", body, strlen(body), now, &s->h, &st),
                     SL_OK);
    sl_httpsig_signer_clear(&sg);
    fake_init(&s->f, "PUT", "node.example:8443", "/channels/jobs", "x=1", body);
    fake_add(&s->f, "Host", "node.example:8443");
    fake_add(&s->f, "Content-Digest", s->h.content_digest);
    fake_add(&s->f, "Signature-Input", s->h.signature_input);
    fake_add(&s->f, "Signature", s->h.signature);
}

static int verify(const keys *k, signed_req *s, double now, sl_status *st)
{
    sl_httpsig_verified v;
    sl_status_clear(st);
    return sl_httpsig_verify(k->kr, &s->f.v, now, 300, &v, st);
}

static void test_sign_verify(void **state)
{
    (void)state;
    keys k;
    make_keys(&k);
    const char *ids[] = {"svc-hmac", "svc-ed", "svc-ec"};
    double now = 1700000000;
    sl_status st;
    /* A key of another algorithm does not load. */
    sl_httpsig_signer wrong = {
        .keyid = "x", .alg = SL_HTTPSIG_ED25519, .key = k.ec_priv, .key_len = strlen(k.ec_priv)};
    assert_int_equal(sl_httpsig_signer_load(&wrong, &st), SL_EINVAL);
    assert_null(wrong.pkey);
    /* Each key signs as it comes and parsed once beforehand, alike. */
    for (size_t i = 0; i < 6; i++) {
        signed_req s;
        load_signer = i >= 3;
        sign_put(&s, &k, ids[i % 3], now);
        assert_int_equal(verify(&k, &s, now + 10, &st), SL_OK);
        /* tampered method, path, query, authority, body */
        s.f.v.method = "POST";
        assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
        assert_string_equal(st.message, "signature does not verify");
        s.f.v.method = "PUT";
        s.f.v.path = "/channels/other";
        assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
        s.f.v.path = "/channels/jobs";
        s.f.v.query = "x=2";
        assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
        s.f.v.query = "x=1";
        s.f.v.authority = "evil.example:8443";
        assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
        /* the scheme and authority are compared lowercased (RFC 9421 section 2.2), ASCII only */
        s.f.v.scheme = "HTTPS";
        s.f.v.authority = "NODE.Example:8443";
        assert_int_equal(verify(&k, &s, now, &st), SL_OK);
        s.f.v.authority = "NODE.\xc3\x89xample:8443"; /* not an e */
        s.f.v.authority_len = strlen(s.f.v.authority);
        assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
        s.f.v.scheme = "https";
        s.f.v.authority = "node.example:8443";
        s.f.v.authority_len = strlen(s.f.v.authority);
        s.f.v.body = "{\"data\":{\"n\":2}}";
        assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
        assert_string_equal(st.message, "content-digest does not match the body");
        s.f.v.body = "{\"data\":{\"n\":1}}";
        /* freshness both ways */
        assert_int_equal(verify(&k, &s, now + 301, &st), SL_ETOKEN);
        assert_string_equal(st.message, "signature too old (created)");
        assert_int_equal(verify(&k, &s, now - 301, &st), SL_ETOKEN);
        assert_string_equal(st.message, "signature created in the future");
        assert_int_equal(verify(&k, &s, now, &st), SL_OK);
        sl_httpsig_headers_clear(&s.h);
    }
    load_signer = 0;
    free_keys(&k);
}

static void test_refusals(void **state)
{
    (void)state;
    keys k;
    make_keys(&k);
    double now = 1700000000;
    sl_status st;
    signed_req s;
    sign_put(&s, &k, "svc-hmac", now);
    char sigin[1024];
    snprintf(sigin, sizeof sigin, "%s", s.h.signature_input);
    /* no signature at all: not a signed request (the chain goes on) */
    fake plain;
    fake_init(&plain, "GET", "h", "/", "", "");
    sl_httpsig_verified v;
    assert_int_equal(sl_httpsig_verify(k.kr, &plain.v, now, 300, &v, &st), SL_EUNAUTH);
    /* one without the other */
    s.f.names[3] = "X-Other";
    assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
    assert_string_equal(st.message, "Signature-Input and Signature go together");
    s.f.names[3] = "Signature";
    /* duplicated headers */
    fake_add(&s.f, "Signature", s.h.signature);
    assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
    assert_string_equal(st.message, "duplicated Signature header");
    s.f.n--;
    fake_add(&s.f, "Signature-Input", sigin);
    assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
    assert_string_equal(st.message, "duplicated Signature-Input header");
    s.f.n--;
    /* malformed */
    s.f.values[2] = "sig1=(\"@method\"";
    assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
    assert_string_equal(st.message, "malformed Signature-Input");
    s.f.values[2] = sigin;
    s.f.values[3] = "sig1=:not base64!:";
    assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
    assert_string_equal(st.message, "malformed Signature");
    s.f.values[3] = s.h.signature;
    /* the same label twice */
    char twice[2200];
    snprintf(twice, sizeof twice, "%s, %s", sigin, sigin);
    s.f.values[2] = twice;
    assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
    assert_string_equal(st.message, "malformed Signature-Input");
    s.f.values[2] = sigin;
    assert_int_equal(verify(&k, &s, now, &st), SL_OK);
    /* edits of the parameters: each is refused before or by the signature */
    struct {
        const char *from, *to, *reason;
    } edits[] = {
        {"keyid=\"svc-hmac\"", "keyid=\"nobody\"", "unknown keyid"},
        {"alg=\"hmac-sha256\"", "alg=\"ed25519\"", "alg does not match the key"},
        {"alg=\"hmac-sha256\"", "alg=\"hmac-sha256\";foo=1", "unsupported signature parameter foo"},
        {"alg=\"hmac-sha256\"", "alg=\"hmac-sha256\";expires=1", "signature expired"},
        {"alg=\"hmac-sha256\"", "alg=hmac", "malformed signature parameter alg"},
        {"\"@method\" ", "", "the signature must cover @method"},
        {" \"content-digest\"", "", "the signature must cover content-digest when there is a body"},
        {"\"@target-uri\"", "\"@path\"",
         "the signature must cover @target-uri (or @authority, "
         "@path and @query)"},
        {"\"@method\"", "\"@method\" \"@method\"", "component @method covered twice"},
        {"\"@method\"", "\"@method\";req", "unsupported component parameter on @method"},
        {"\"@method\"", "\"@status\" \"@method\"", "unsupported component @status"},
        {"\"@method\"", "\"@method\" \"x-missing\"",
         "covered component x-missing is not in the "
         "request"},
        {"\"@method\"", "\"@METHOD\" \"@method\"", "unsupported component @METHOD"},
        {"sig1=", "sig2=", "no signature for label sig2"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        char edited[1200];
        const char *at = strstr(sigin, edits[i].from);
        assert_non_null(at);
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - sigin), sigin, edits[i].to,
                 at + strlen(edits[i].from));
        s.f.values[2] = edited;
        assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
        assert_string_equal(st.message, edits[i].reason);
    }
    /* no nonce where the key wants one: cut ";nonce=..." off the end */
    char no_nonce[1200];
    snprintf(no_nonce, sizeof no_nonce, "%.*s", (int)(strstr(sigin, ";nonce=") - sigin), sigin);
    s.f.values[2] = no_nonce;
    assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
    assert_string_equal(st.message, "the signature must carry a nonce");
    /* no reason names the secret */
    assert_null(strstr(st.message, HMAC_SECRET));
    sl_httpsig_headers_clear(&s.h);
    free_keys(&k);
}

/* A Signature header for s made here over a base whose parameters' line is params. */
static void hmac_signature(const signed_req *s, const char *params, char *out, size_t cap)
{
    char base[1024];
    snprintf(base, sizeof base,
             "\"@method\": PUT\n\"@target-uri\": https://node.example:8443/channels/jobs?x=1\n"
             "\"content-digest\": %s\n\"@signature-params\": %s",
             s->h.content_digest, params);
    unsigned char mac[32], b64[64];
    unsigned int ml = 0;
    assert_non_null(HMAC(EVP_sha256(), HMAC_SECRET, (int)strlen(HMAC_SECRET),
                         (const unsigned char *)base, strlen(base), mac, &ml));
    EVP_EncodeBlock(b64, mac, (int)ml);
    snprintf(out, cap, "sig1=:%s:", (const char *)b64);
}

/* The base carries the parameters as serialised: a Signature-Input written loosely (spaces, a
 * leading zero) verifies against a signature over the serialised form, and a signature made over
 * the loose text itself does not; the canonical text, used as it came, verifies alike. */
static void test_params_serialised(void **state)
{
    (void)state;
    keys k;
    make_keys(&k);
    double now = 1700000000;
    sl_status st;
    signed_req s;
    sign_put(&s, &k, "svc-hmac", now);
    const char *canon = s.h.signature_input + 5; /* after "sig1=" */
    assert_int_equal(verify(&k, &s, now, &st), SL_OK);
    /* the same signature made here: the test's base is the verifier's */
    char sig[128];
    hmac_signature(&s, canon, sig, sizeof sig);
    assert_string_equal(sig, s.h.signature);
    /* loosely written: "(  \"@method\"  \"@target-uri\" \"content-digest\" );created=0..." */
    char loose[1200];
    const char *rest = strstr(canon, ";created=") + 9;
    snprintf(loose, sizeof loose,
             "(  \"@method\"  \"@target-uri\" \"content-digest\" ); created=0%s", rest);
    char loose_field[1300];
    snprintf(loose_field, sizeof loose_field, "sig1=%s", loose);
    s.f.values[2] = loose_field;
    assert_int_equal(verify(&k, &s, now, &st), SL_OK);
    /* signed over the loose text itself: no */
    hmac_signature(&s, loose, sig, sizeof sig);
    s.f.values[3] = sig;
    assert_int_equal(verify(&k, &s, now, &st), SL_ETOKEN);
    assert_string_equal(st.message, "signature does not verify");
    sl_httpsig_headers_clear(&s.h);
    free_keys(&k);
}

/* ---- the key file -----------------------------------------------------------------------------
 */

static void test_key_file(void **state)
{
    (void)state;
    sl_httpsig_keyring *kr;
    assert_int_equal(sl_httpsig_keyring_new(&kr), SL_OK);
    sl_status st;
    char path[] = "/tmp/sluice-sigkey-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, HMAC_SECRET "\n", strlen(HMAC_SECRET) + 1),
                     (long)strlen(HMAC_SECRET) + 1);
    close(fd);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"keys\": [{\"keyid\": \"k1\", \"alg\": \"hmac-sha256\", \"key\": \"file:%s\", "
             "\"principal\": \"svc\", \"role\": \"write\", \"channels\": [\"jobs.*\"], "
             "\"components\": [\"content-type\"]},"
             "{\"keyid\": \"k2\", \"alg\": \"hmac-sha256\", \"key\": \"env:SIG_TEST_SECRET\", "
             "\"principal\": \"svc\"}]}",
             path);
    setenv("SIG_TEST_SECRET", HMAC_SECRET "-2", 1);
    assert_int_equal(sl_httpsig_keyring_load(kr, json, strlen(json), &st), SL_OK);
    assert_int_equal(sl_httpsig_keyring_size(kr), 2);
    /* errors name the key and the field, never the secret; nothing is added */
    const char *bad[] = {
        "{\"keys\": [{\"keyid\": \"k3\", \"alg\": \"hmac-sha256\", \"key\": \"env:NOPE_NOT_SET\", "
        "\"principal\": \"svc\"}]}",
        "{\"keys\": [{\"keyid\": \"k3\", \"alg\": \"rsa\", \"key\": \"inline:x\", \"principal\": "
        "\"svc\"}]}",
        "{\"keys\": [{\"keyid\": \"k3\", \"alg\": \"hmac-sha256\", \"key\": \"inline:short\", "
        "\"principal\": \"svc\"}]}",
        "{\"keys\": [{\"keyid\": \"k3\", \"alg\": \"hmac-sha256\", \"key\": \"" HMAC_SECRET "\", "
        "\"principal\": \"svc\"}]}",
        "{\"keys\": [{\"keyid\": \"k3\", \"alg\": \"hmac-sha256\", \"key\": \"inline:" HMAC_SECRET
        "\", \"principal\": \"svc\", \"colour\": 1}]}",
        "{\"keys\": [{\"keyid\": \"k1\", \"alg\": \"hmac-sha256\", \"key\": \"inline:" HMAC_SECRET
        "\", \"principal\": \"svc\"}]}",
        "{\"keys\": [{\"keyid\": \"k3\", \"alg\": \"hmac-sha256\", \"key\": \"inline:" HMAC_SECRET
        "\", \"principal\": \"svc\", \"components\": [\"@status\"]}]}",
        "[1]",
        "{",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl_status_clear(&st);
        assert_int_equal(sl_httpsig_keyring_load(kr, bad[i], strlen(bad[i]), &st), SL_ECONFIG);
        assert_null(strstr(st.message, HMAC_SECRET));
        assert_int_equal(sl_httpsig_keyring_size(kr), 2);
    }
    /* k1 requires content-type on top of the minimum */
    sl_httpsig_signer sg = {.keyid = "k1",
                            .alg = SL_HTTPSIG_HMAC_SHA256,
                            .key = HMAC_SECRET,
                            .key_len = strlen(HMAC_SECRET)};
    sl_httpsig_headers h;
    assert_int_equal(
        sl_httpsig_sign(&sg, "GET", "https", "h:1", "/channels/jobs", "", "", 0, 1000, &h, &st),
        SL_OK);
    assert_null(h.content_digest);
    fake f;
    fake_init(&f, "GET", "h:1", "/channels/jobs", "", "");
    fake_add(&f, "Signature-Input", h.signature_input);
    fake_add(&f, "Signature", h.signature);
    sl_httpsig_verified v;
    assert_int_equal(sl_httpsig_verify(kr, &f.v, 1000, 300, &v, &st), SL_ETOKEN);
    assert_string_equal(st.message, "the signature must cover content-type");
    sl_httpsig_headers_clear(&h);
    /* k2 (the rotated secret, same principal) verifies its own signatures only */
    sg.keyid = "k2";
    assert_int_equal(
        sl_httpsig_sign(&sg, "GET", "https", "h:1", "/channels/jobs", "", "", 0, 1000, &h, &st),
        SL_OK);
    f.values[0] = h.signature_input;
    f.values[1] = h.signature;
    assert_int_equal(sl_httpsig_verify(kr, &f.v, 1000, 300, &v, &st), SL_ETOKEN);
    assert_string_equal(st.message, "signature does not verify");
    sl_httpsig_headers_clear(&h);
    sg.key = HMAC_SECRET "-2";
    sg.key_len = strlen(sg.key);
    assert_int_equal(
        sl_httpsig_sign(&sg, "GET", "https", "h:1", "/channels/jobs", "", "", 0, 1000, &h, &st),
        SL_OK);
    f.values[0] = h.signature_input;
    f.values[1] = h.signature;
    if (sl_httpsig_verify(kr, &f.v, 1000, 300, &v, &st) != SL_OK)
        fail_msg("%s", st.message);
    assert_string_equal(v.key->principal, "svc");
    sl_httpsig_headers_clear(&h);
    unlink(path);
    sl_httpsig_keyring_free(kr);
}

/* ---- the authenticator and the nonce store ----------------------------------------------------
 */

typedef struct answer {
    int calls, status;
    sl_identity who;
    char reason[256];
} answer;

static void on_answer(void *ud, int status, const sl_identity *who, const char *reason)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
    sl_identity_clear(&a->who);
    if (who)
        sl_identity_copy(&a->who, who);
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
}

static void count_status(void *ud, int status)
{
    int *c = ud;
    c[status == SL_OK ? 0 : status == SL_ETOKEN ? 1 : 2]++;
}

/* SipHash-2-4: the paper's vectors (key 00..0f; the messages 00..0e and empty), then against
 * OpenSSL's EVP_MAC "SIPHASH" on random keys and messages, each split in two at a random point
 * (the store hashes keyid and nonce as two pieces). */
static void test_siphash(void **state)
{
    (void)state;
    unsigned char k[SL__SIPHASH_KEY_LEN], m[64];
    for (size_t i = 0; i < sizeof k; i++)
        k[i] = (unsigned char)i;
    for (size_t i = 0; i < sizeof m; i++)
        m[i] = (unsigned char)i;
    assert_true(sl__siphash24_2(k, m, 15, NULL, 0) == 0xa129ca6149be45e5ULL);
    assert_true(sl__siphash24_2(k, m, 3, m + 3, 12) == 0xa129ca6149be45e5ULL);
    assert_true(sl__siphash24_2(k, NULL, 0, NULL, 0) == 0x726fdb47dd0e0e31ULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    assert_non_null(mac);
    srand(7);
    for (int t = 0; t < 5000; t++) {
        size_t len = (size_t)rand() % sizeof m, cut = (size_t)rand() % (len + 1);
        for (size_t i = 0; i < sizeof k; i++)
            k[i] = (unsigned char)rand();
        for (size_t i = 0; i < len; i++)
            m[i] = (unsigned char)rand();
        EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);
        size_t size = 8, got = 0;
        OSSL_PARAM p[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                          OSSL_PARAM_construct_end()};
        unsigned char want[16], le[8];
        assert_int_equal(EVP_MAC_init(c, k, sizeof k, p), 1);
        assert_int_equal(EVP_MAC_update(c, m, len), 1);
        assert_int_equal(EVP_MAC_final(c, want, &got, sizeof want), 1);
        EVP_MAC_CTX_free(c);
        uint64_t v = sl__siphash24_2(k, m, cut, m + cut, len - cut);
        for (size_t i = 0; i < sizeof le; i++)
            le[i] = (unsigned char)(v >> (8 * i));
        assert_int_equal(got, 8);
        assert_memory_equal(le, want, 8);
    }
    EVP_MAC_free(mac);
}

/* The memory store at scale: every nonce refused a second time within its window (a replay
 * repeats its created), accepted again after it, and the bound held. */
static void test_nonce_store_many(void **state)
{
    (void)state;
    enum { N = 20000 };
    sl__nonce_store *ns;
    assert_int_equal(sl__nonce_memory_new(N + 10, &ns), SL_OK);
    char nonce[32];
    int c[3] = {0};
    /* signed in 100 seconds (700..799), each kept 300 s: until 1000..1099 */
    for (int i = 0; i < N; i++) {
        snprintf(nonce, sizeof nonce, "n-%d", i);
        ns->remember(ns, i % 2 ? "k1" : "k2", nonce, 700 + i % 100, 1000 + i % 100, 0, count_status,
                     c);
    }
    assert_int_equal(c[0], N);
    assert_int_equal(sl__nonce_memory_size(ns), N);
    assert_int_equal(sl__nonce_memory_generations(ns, NULL), 100);
    for (int i = 0; i < N; i++) {
        snprintf(nonce, sizeof nonce, "n-%d", i);
        ns->remember(ns, i % 2 ? "k1" : "k2", nonce, 700 + i % 100, 1000 + i % 100, 999,
                     count_status, c);
    }
    assert_int_equal(c[1], N); /* all replays */
    /* the same nonce under the other key is another nonce */
    ns->remember(ns, "k1", "n-0", 700, 1000, 0, count_status, c);
    assert_int_equal(c[0], N + 1);
    /* over the bound: refused, nothing forgotten early */
    for (int i = 0; i < 20; i++) {
        snprintf(nonce, sizeof nonce, "x-%d", i);
        ns->remember(ns, "k1", nonce, 700, 1000, 0, count_status, c);
    }
    assert_int_equal(c[0], N + 10);
    assert_int_equal(c[2], 11);
    /* at 1050 the seconds whose until <= 1050 are gone: about half accepted again, the rest not */
    int before = c[0];
    for (int i = 0; i < 200; i++) {
        snprintf(nonce, sizeof nonce, "n-%d", i);
        ns->remember(ns, i % 2 ? "k1" : "k2", nonce, 700 + i % 100, 1000 + i % 100, 1050,
                     count_status, c);
    }
    assert_int_equal(c[0] - before, 102); /* i % 100 in 0..50 (51 of each hundred) */
    /* (and not kept: their own until has passed too) */
    assert_int_equal(sl__nonce_memory_generations(ns, NULL), 49);
    /* long after: everything expired and forgotten, the bound room for new ones again */
    for (int i = 0; i < N + 10; i++) {
        snprintf(nonce, sizeof nonce, "y-%d", i);
        ns->remember(ns, "k1", nonce, 4700 + i % 7, 5000 + i % 7, 3000, count_status, c);
    }
    assert_int_equal(c[0] - before, 102 + N + 10);
    assert_int_equal(sl__nonce_memory_size(ns), N + 10);
    assert_int_equal(sl__nonce_memory_generations(ns, NULL), 7);
    ns->free(ns);
}

/* Nonces are kept by the second they were signed in: a replay (the same created: the signature
 * covers it) is refused, the same nonce signed in another second is another request; a second is
 * forgotten whole once its latest until has passed, by the next sweep (once a second), whether or
 * not a request of that second comes again; the index of seconds grows for a wide spread of them
 * and shrinks again; a clock that steps back loses nothing live. */
static void test_nonce_store_generations(void **state)
{
    (void)state;
    sl__nonce_store *ns;
    assert_int_equal(sl__nonce_memory_new(100000, &ns), SL_OK);
    int c[3] = {0};
    ns->remember(ns, "k", "n", 1000, 1300, 1000, count_status, c);
    ns->remember(ns, "k", "n", 1000, 1300, 1100, count_status, c);
    assert_int_equal(c[1], 1);
    ns->remember(ns, "k", "n", 1001, 1301, 1100, count_status, c); /* signed again, later */
    assert_int_equal(c[0], 2);
    assert_int_equal(sl__nonce_memory_generations(ns, NULL), 2);
    /* at 1300.5 second 1000 has passed: the sweep forgets it, second 1001 stays */
    ns->remember(ns, "k", "other", 1200, 1500, 1300.5, count_status, c);
    assert_int_equal(sl__nonce_memory_generations(ns, NULL), 2);
    assert_int_equal(sl__nonce_memory_size(ns), 2);
    ns->remember(ns, "k", "n", 1001, 1301, 1300.5, count_status, c);
    assert_int_equal(c[1], 2);
    /* a second keeps all its nonces until its latest until (never early): "a", given 1400,
     * is still there at 1450 for a server whose window has grown since */
    ns->remember(ns, "k", "a", 1200, 1400, 1300.5, count_status, c);
    ns->remember(ns, "k", "a", 1200, 1600, 1450, count_status, c);
    assert_int_equal(c[1], 3); /* second 1200 holds until 1500 */
    /* a thousand seconds at once: the index grows, then shrinks once they have gone */
    char nonce[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(nonce, sizeof nonce, "w-%d", i);
        ns->remember(ns, "k", nonce, 2000 + i, 3000 + i, 1499, count_status, c);
    }
    size_t index;
    assert_int_equal(sl__nonce_memory_generations(ns, &index), 1001);
    assert_true(index >= 2 * 1001);
    for (int i = 0; i < 1000; i += 99) {
        snprintf(nonce, sizeof nonce, "w-%d", i);
        ns->remember(ns, "k", nonce, 2000 + i, 3000 + i, 1600, count_status, c);
    }
    assert_int_equal(c[1], 3 + 11);
    /* the clock steps back: nothing is forgotten for it, replays are still refused */
    ns->remember(ns, "k", "w-5", 2005, 3005, 1000, count_status, c);
    assert_int_equal(c[1], 3 + 12);
    ns->remember(ns, "k", "late", 9000, 9300, 9000, count_status, c);
    ns->remember(ns, "k", "nan", NAN, 9300, 9000, count_status, c); /* no second: fail closed */
    assert_int_equal(c[2], 1);
    ns->remember(ns, "k", "huge", 1e300, 9300, 9000, count_status, c);
    assert_int_equal(c[2], 2);
    assert_int_equal(sl__nonce_memory_generations(ns, &index), 1);
    assert_true(index <= 16);
    assert_int_equal(sl__nonce_memory_size(ns), 1);
    ns->free(ns);
}

/* A new latest second starts sized for the larger of the two latest seconds before it (no growing
 * from the smallest size under a steady stream, even when the latest was still filling); a second
 * behind the latest starts small. */
static void test_nonce_store_sizes(void **state)
{
    (void)state;
    sl__nonce_store *ns;
    assert_int_equal(sl__nonce_memory_new(100000, &ns), SL_OK);
    char nonce[32];
    int c[3] = {0};
    for (int i = 0; i < 1000; i++) {
        snprintf(nonce, sizeof nonce, "s-%d", i);
        ns->remember(ns, "k", nonce, 4700, 5000, 4700, count_status, c);
    }
    size_t cap, old;
    sl__nonce_memory_tables(ns, 4700, &cap, &old);
    assert_int_equal(cap, 2048); /* grown: 1000 fill three quarters of no smaller power of two */
    ns->remember(ns, "k", "t-0", 4701, 5001, 4701, count_status, c);
    sl__nonce_memory_tables(ns, 4701, &cap, &old);
    assert_int_equal(cap, 2048);
    assert_int_equal(old, 0);
    ns->remember(ns, "k", "late", 4650, 4950, 4701, count_status, c); /* a clock running late */
    sl__nonce_memory_tables(ns, 4650, &cap, &old);
    assert_int_equal(cap, 64);
    /* 4701 holds one nonce, but 4700, a second earlier, a thousand */
    ns->remember(ns, "k", "t-1", 4702, 5002, 4702, count_status, c);
    sl__nonce_memory_tables(ns, 4702, &cap, &old);
    assert_int_equal(cap, 2048);
    ns->remember(ns, "k", "t-2", 4703, 5003, 4703, count_status, c); /* after one and one: small */
    sl__nonce_memory_tables(ns, 4703, &cap, &old);
    assert_int_equal(cap, 64);
    assert_int_equal(c[0], 1004);
    ns->free(ns);
}

/* A full table grows into one twice its size step by step, not in one go: right after the
 * remember that outgrew it the old table is still there, every nonce is refused as a replay
 * whichever table holds it, the move ends after a bounded number of remembers, and nothing is
 * lost. */
static void test_nonce_store_grows_step_by_step(void **state)
{
    (void)state;
    sl__nonce_store *ns;
    assert_int_equal(sl__nonce_memory_new(1000000, &ns), SL_OK);
    char nonce[32];
    int c[3] = {0};
    size_t cap, old, n = 0, grown = 0;
    /* Two thousand nonces of one second, then more until its table grows. */
    for (;; n++) {
        snprintf(nonce, sizeof nonce, "g-%zu", n);
        ns->remember(ns, "k", nonce, 4700, 5000, 1000, count_status, c);
        sl__nonce_memory_tables(ns, 4700, &cap, &old);
        if (old > 0 && n >= 2000) {
            grown = old;
            break;
        }
    }
    n++;
    assert_int_equal(c[0], (int)n);
    assert_int_equal(cap, 2 * grown); /* a move under way, into a table twice the size */
    /* Replays are refused while both tables are there (each remember moves a few slots). */
    for (size_t i = 0; i < 16; i++) {
        snprintf(nonce, sizeof nonce, "g-%zu", i);
        ns->remember(ns, "k", nonce, 4700, 5000, 1000, count_status, c);
    }
    assert_int_equal(c[1], 16);
    sl__nonce_memory_tables(ns, 4700, &cap, &old);
    assert_int_equal(old, grown);
    /* Fresh nonces until the move is over, which takes at most a slot count's worth of remembers
     * over two. */
    size_t more = 0;
    do {
        snprintf(nonce, sizeof nonce, "h-%zu", more++);
        ns->remember(ns, "k", nonce, 4700, 5000, 2000, count_status, c);
        sl__nonce_memory_tables(ns, 4700, &cap, &old);
    } while (old > 0);
    assert_true(more <= grown / 2);
    assert_int_equal(c[0], (int)(n + more));
    assert_int_equal(c[2], 0);
    assert_int_equal(sl__nonce_memory_size(ns), n + more);
    for (size_t i = 0; i < n; i++) { /* every one was moved */
        snprintf(nonce, sizeof nonce, "g-%zu", i);
        ns->remember(ns, "k", nonce, 4700, 5000, 2000, count_status, c);
    }
    assert_int_equal(c[1], (int)(16 + n));
    ns->free(ns);
}

/* A nonce is kept until its until has passed, to the fraction of a second: refused just before,
 * forgotten from then on. */
static void test_nonce_store_until(void **state)
{
    (void)state;
    sl__nonce_store *ns;
    assert_int_equal(sl__nonce_memory_new(100, &ns), SL_OK);
    int c[3] = {0};
    ns->remember(ns, "k", "n", 700, 1000.2, 999, count_status, c);
    assert_int_equal(c[0], 1);
    ns->remember(ns, "k", "n", 700, 1000.2, 1000.1, count_status, c);
    assert_int_equal(c[1], 1);
    ns->remember(ns, "k", "n", 700, 1000.2, 1000.2, count_status, c); /* forgotten at until */
    assert_int_equal(c[0], 2);
    assert_int_equal(sl__nonce_memory_size(ns), 1); /* not swept yet; nothing new was kept */
    ns->remember(ns, "k", "m", 701, 1300, 1001, count_status, c); /* the next second's sweep */
    assert_int_equal(sl__nonce_memory_size(ns), 1);
    assert_int_equal(sl__nonce_memory_generations(ns, NULL), 1);
    ns->free(ns);
}

/* A store of 300,000 nonces of one second (a table of half a million slots, grown step by step
 * through thirteen sizes) refuses every one of them again and drops none. */
static void test_nonce_store_large_tables(void **state)
{
    (void)state;
    enum { N = 300000 };
    sl__nonce_store *ns;
    assert_int_equal(sl__nonce_memory_new(N, &ns), SL_OK);
    char nonce[32];
    int c[3] = {0};
    for (int i = 0; i < N; i++) {
        snprintf(nonce, sizeof nonce, "big-%d", i);
        ns->remember(ns, "k", nonce, 4700, 5000, 1000, count_status, c);
    }
    assert_int_equal(c[0], N);
    size_t cap, old;
    sl__nonce_memory_tables(ns, 4700, &cap, &old);
    assert_true(cap >= 4 * (size_t)N / 3);
    for (int i = 0; i < N; i += 7) {
        snprintf(nonce, sizeof nonce, "big-%d", i);
        ns->remember(ns, "k", nonce, 4700, 5000, 1000, count_status, c);
    }
    assert_int_equal(c[1], (N + 6) / 7);
    assert_int_equal(c[2], 0);
    ns->free(ns);
}

/* The memory store's prefetch only prepares: remember answers the same after it, for the nonce
 * it was told, for another one, and after a prefetch it ignored (a nonce too long to keep). */
static void test_nonce_prefetch(void **state)
{
    (void)state;
    sl__nonce_store *ns;
    assert_int_equal(sl__nonce_memory_new(100, &ns), SL_OK);
    assert_non_null(ns->prefetch);
    int c[3] = {0};
    ns->prefetch(ns, "k1", "n1", 700);
    ns->remember(ns, "k1", "n2", 700, 1000, 0, count_status, c); /* not the one prefetched */
    assert_int_equal(c[0], 1);
    ns->remember(ns, "k1", "n1", 700, 1000, 0, count_status, c);
    assert_int_equal(c[0], 2);
    ns->prefetch(ns, "k1", "n1", 700);
    ns->remember(ns, "k1", "n1", 700, 1000, 0, count_status, c); /* prefetched, and a replay */
    assert_int_equal(c[1], 1);
    ns->prefetch(ns, "k2", "n1", 700); /* the same nonce under another key */
    ns->remember(ns, "k2", "n1", 700, 1000, 0, count_status, c);
    assert_int_equal(c[0], 3);
    ns->remember(ns, "k2", "n1", 700, 1000, 0, count_status, c); /* no prefetch left over */
    assert_int_equal(c[1], 2);
    ns->prefetch(ns, "k2", "n1", 123456); /* a second the store has never seen */
    ns->remember(ns, "k2", "n1", 700, 1000, 0, count_status, c);
    assert_int_equal(c[1], 3);
    char longer[SL_HTTPSIG_NONCE_MAX + 8];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    ns->prefetch(ns, "k1", longer, 700);
    ns->remember(ns, "k1", longer, 700, 1000, 0, count_status, c);
    ns->remember(ns, "k1", longer, 700, 1000, 0, count_status, c);
    assert_int_equal(c[0], 4);
    assert_int_equal(c[1], 4);
    assert_int_equal(c[2], 0);
    assert_int_equal(sl__nonce_memory_size(ns), 4);
    ns->free(ns);
}

static void test_authenticator_replay(void **state)
{
    (void)state;
    keys k;
    make_keys(&k);
    sl__nonce_store *ns;
    assert_int_equal(sl__nonce_memory_new(2, &ns), SL_OK);
    sl_authenticator *au;
    assert_int_equal(sl__httpsig_authenticator_new(k.kr, ns, 300, &au), SL_OK);
    assert_int_equal(au->kind, SL_AUTHN_KIND_SIGNED);
    double now = 1700000000;
    answer a = {0};
    sl_identity_init(&a.who);
    signed_req s1, s2, s3;
    sign_put(&s1, &k, "svc-hmac", now);
    au->authenticate_request(au, &s1.f.v, now, on_answer, &a);
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.who.principal, "svc");
    assert_int_equal(a.who.source, SL_SOURCE_SIGNATURE);
    assert_int_equal(a.who.role, SL_ROLE_WRITE);
    assert_true(a.who.scoped);
    assert_int_equal(a.who.nchannels, 1);
    assert_string_equal(a.who.channels[0], "jobs.*");
    assert_string_equal(a.who.token_id, "svc-hmac");
    /* the same request again */
    au->authenticate_request(au, &s1.f.v, now + 1, on_answer, &a);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "nonce already used (replayed request)");
    /* a bad signature spends no nonce */
    sign_put(&s2, &k, "svc-ed", now);
    s2.f.v.method = "DELETE";
    au->authenticate_request(au, &s2.f.v, now, on_answer, &a);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_int_equal(sl__nonce_memory_size(ns), 1);
    s2.f.v.method = "PUT";
    au->authenticate_request(au, &s2.f.v, now, on_answer, &a);
    assert_int_equal(a.status, SL_OK);
    /* full (2 nonces, none expired): refused, not forgotten */
    sign_put(&s3, &k, "svc-ec", now);
    au->authenticate_request(au, &s3.f.v, now + 2, on_answer, &a);
    assert_int_equal(a.status, SL_EUNAVAIL);
    assert_string_equal(a.reason, "replay cache full");
    au->authenticate_request(au, &s1.f.v, now + 2, on_answer, &a);
    assert_int_equal(a.status, SL_ETOKEN);
    /* once the window has passed the old nonces go (their signatures are too old anyway) */
    sl_httpsig_headers_clear(&s3.h);
    sign_put(&s3, &k, "svc-ec", now + 400);
    au->authenticate_request(au, &s3.f.v, now + 400, on_answer, &a);
    assert_int_equal(a.status, SL_OK); /* the store held 2 of 2: an expired slot was reclaimed */
    assert_true(sl__nonce_memory_size(ns) <= 2);
    /* an unsigned request is not this authenticator's */
    fake plain;
    fake_init(&plain, "GET", "h", "/", "", "");
    au->authenticate_request(au, &plain.v, now, on_answer, &a);
    assert_int_equal(a.status, SL_EUNAUTH);
    assert_int_equal(a.calls, 8);
    sl_identity_clear(&a.who);
    sl_httpsig_headers_clear(&s1.h);
    sl_httpsig_headers_clear(&s2.h);
    sl_httpsig_headers_clear(&s3.h);
    au->free(au);
    ns->free(ns);
    free_keys(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sfv),
        cmocka_unit_test(test_sfv_scratch),
        cmocka_unit_test(test_sfv_canonical),
        cmocka_unit_test(test_sfv_edges),
        cmocka_unit_test(test_rfc9421_b25_hmac),
        cmocka_unit_test(test_rfc9421_b26_ed25519),
        cmocka_unit_test(test_rfc9530_digest),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_params_serialised),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_nonce_store_many),
        cmocka_unit_test(test_nonce_prefetch),
        cmocka_unit_test(test_nonce_store_grows_step_by_step),
        cmocka_unit_test(test_siphash),
        cmocka_unit_test(test_nonce_store_until),
        cmocka_unit_test(test_nonce_store_generations),
        cmocka_unit_test(test_nonce_store_sizes),
        cmocka_unit_test(test_nonce_store_large_tables),
        cmocka_unit_test(test_authenticator_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
