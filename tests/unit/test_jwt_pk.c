/* Public-key JWTs (ES256, EdDSA) for upstream identity providers: the RFC 7515 A.3 and RFC 8037
 * A.4 examples, round trips with keys generated here and tokens signed by a test-only signer,
 * which PEM texts a keyring accepts, the signature encodings that must fail (DER, wrong lengths,
 * scalars out of range, non-canonical Ed25519), and algorithm confusion in both directions: a key
 * verifies only the one algorithm it was added for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <sluice/jwt.h>
#include <sluice/upstream.h>

#include "jwt_test_util.h"

#include "security/jwt_internal.h"

#define NOW 1700000000.0
static const char SECRET[] = "0123456789abcdef0123456789abcdef";
static const char PAYLOAD[] = "{\"sub\":\"upstream-user\",\"role\":\"read\",\"channels\":[\"a.*\"],"
                              "\"iat\":1699999990,\"exp\":1700000100,\"jti\":\"j-1\","
                              "\"iss\":\"https://idp.example\",\"aud\":\"sluice\"}";

/* ---- helpers --------------------------------------------------------------------------------- */

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

/* "b64(header).b64(payload)", malloc'd with room for a signature. */
static char *signing_input(const char *header, const char *payload)
{
    char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 256;
    char *t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%s.%s", h, p);
    free(h);
    free(p);
    return t;
}

static char *append_sig(char *input, const unsigned char *sig, size_t n)
{
    char *s = b64url(sig, n);
    strcat(input, ".");
    strcat(input, s);
    free(s);
    return input;
}

static EVP_PKEY *gen_p256(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static EVP_PKEY *gen_ed25519(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    return k;
}

static char *bio_text(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    assert_true(n > 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static char *pub_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    return bio_text(b);
}

/* PKCS#8 ("PRIVATE KEY") or, with traditional, the algorithm's own ("EC PRIVATE KEY"). */
static char *priv_pem(EVP_PKEY *k, int traditional)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (traditional)
        assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    return bio_text(b);
}

typedef enum { SIG_JOSE, SIG_DER } sig_form;

/* The test-only signer: Ed25519 signs directly; ECDSA yields DER, which JOSE form turns into
 * R||S, each left-padded to 32 bytes. Returns the signature's length (out holds 80 bytes). */
static size_t sign_raw(EVP_PKEY *k, const char *data, unsigned char out[80], sig_form form)
{
    int ec = EVP_PKEY_is_a(k, "EC");
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t n = sizeof der;
    assert_non_null(c);
    assert_int_equal(EVP_DigestSignInit(c, NULL, ec ? EVP_sha256() : NULL, NULL, k), 1);
    assert_int_equal(EVP_DigestSign(c, der, &n, (const unsigned char *)data, strlen(data)), 1);
    EVP_MD_CTX_free(c);
    if (!ec || form == SIG_DER) {
        memcpy(out, der, n);
        return n;
    }
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)n);
    assert_non_null(s);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(s), out, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(s), out + 32, 32), 32);
    ECDSA_SIG_free(s);
    return 64;
}

static char *pk_token(const char *header, const char *payload, EVP_PKEY *k, sig_form form)
{
    char *t = signing_input(header, payload);
    unsigned char sig[80];
    size_t n = sign_raw(k, t, sig, form);
    return append_sig(t, sig, n);
}

static char *hs_token(const char *header, const char *payload, const void *key, size_t keylen)
{
    char *t = signing_input(header, payload);
    unsigned char mac[32];
    assert_int_equal(sl__jwt_hs256(key, keylen, t, strlen(t), mac), 0);
    return append_sig(t, mac, sizeof mac);
}

/* As in test_jwt.c: code and message as expected, the message one of the fixed ones and free of
 * any 6-byte window of the token; on success the identity is the PAYLOAD's. */
static void expect_o(sl_jwt_keyring *kr, const char *token, const sl_jwt_verify_opts *o, int code,
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
        assert_string_equal(id.principal, "");
        assert_int_equal(id.nchannels, 0);
    }
    sl_identity_clear(&id);
    /* Nothing of a refusal may linger in OpenSSL's error queue for a later caller to misread. */
    assert_int_equal(ERR_peek_error(), 0);
}

static void expect(sl_jwt_keyring *kr, const char *token, int code, const char *message)
{
    expect_o(kr, token, NULL, code, message);
}

static sl_jwt_keyring *ring(void)
{
    sl_jwt_keyring *kr;
    assert_int_equal(sl_jwt_keyring_new(&kr), SL_OK);
    return kr;
}

static void add_es256(sl_jwt_keyring *kr, const char *kid, EVP_PKEY *k)
{
    char *pem = pub_pem(k);
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, kid, pem, strlen(pem)), SL_OK);
    free(pem);
}

static void add_eddsa(sl_jwt_keyring *kr, const char *kid, EVP_PKEY *k)
{
    char *pem = pub_pem(k);
    assert_int_equal(sl_jwt_keyring_add_eddsa_pem(kr, kid, pem, strlen(pem)), SL_OK);
    free(pem);
}

/* Changes one character in the middle of a token's signature to another of the alphabet, so the
 * encoding stays valid and only the signature's value changes. */
static void flip(char *token)
{
    char *c = token + strlen(token) - 10;
    *c = *c == 'A' ? 'B' : 'A';
}

/* ---- specification examples ------------------------------------------------------------------ */

/* RFC 7515 A.3 (ES256) and RFC 8037 A.4 (EdDSA), with their keys as SPKI PEM. Neither payload is a
 * sluice claim set (A.3 has no sub, A.4 is not JSON), so getting past the signature shows up as
 * the claim-stage error, and one flipped signature bit as "bad signature". */
static void test_rfc_examples(void **state)
{
    (void)state;
    static const char es_pem[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
        "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
        "-----END PUBLIC KEY-----\n";
    static const char es_tok[] =
        "eyJhbGciOiJFUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ"
        ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    static const char ed_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                 "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
                                 "-----END PUBLIC KEY-----\n";
    static const char ed_tok[] =
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
        ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    sl_jwt_keyring *kr = ring();
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, NULL, es_pem, strlen(es_pem)), SL_OK);
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.issuer = "joe";
    assert_int_equal(sl_jwt_verify(kr, es_tok, strlen(es_tok), &o, 1300819000, &id, &st),
                     SL_ETOKEN);
    assert_string_equal(st.message, "invalid claims");
    char t[sizeof es_tok];
    memcpy(t, es_tok, sizeof t);
    flip(t);
    assert_int_equal(sl_jwt_verify(kr, t, strlen(t), &o, 1300819000, &id, &st), SL_ETOKEN);
    assert_string_equal(st.message, "bad signature");
    sl_jwt_keyring_free(kr);

    kr = ring();
    assert_int_equal(sl_jwt_keyring_add_eddsa_pem(kr, NULL, ed_pem, strlen(ed_pem)), SL_OK);
    expect(kr, ed_tok, SL_ETOKEN, "malformed token");
    char u[sizeof ed_tok];
    memcpy(u, ed_tok, sizeof u);
    flip(u);
    expect(kr, u, SL_ETOKEN, "bad signature");
    sl_jwt_keyring_free(kr);
}

/* ---- round trips ----------------------------------------------------------------------------- */

static void check_roundtrip(EVP_PKEY *k, const char *alg, int es)
{
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"idp-1\"}", alg);
    sl_jwt_keyring *kr = ring();
    if (es)
        add_es256(kr, "idp-1", k);
    else
        add_eddsa(kr, "idp-1", k);
    char *t = pk_token(header, PAYLOAD, k, SIG_JOSE);

    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.issuer = "https://idp.example";
    o.audience = "sluice";
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_status_clear(&st);
    assert_int_equal(sl_jwt_verify(kr, t, strlen(t), &o, NOW, &id, &st), SL_OK);
    assert_string_equal(id.principal, "upstream-user");
    assert_int_equal(id.source, SL_SOURCE_JWT);
    assert_int_equal(id.role, SL_ROLE_READ);
    assert_true(id.scoped);
    assert_int_equal(id.nchannels, 1);
    assert_string_equal(id.channels[0], "a.*");
    assert_string_equal(id.token_id, "j-1");
    assert_true(id.expires_at == 1700000100.0);
    sl_identity_clear(&id);

    /* The same claim rules as HS256. */
    o.issuer = "https://other.example";
    expect_o(kr, t, &o, SL_ETOKEN, "invalid issuer");
    o.issuer = NULL;
    o.audience = "someone-else";
    expect_o(kr, t, &o, SL_ETOKEN, "invalid audience");
    free(t);
    t = pk_token(header, "{\"sub\":\"u\",\"exp\":1699999000}", k, SIG_JOSE);
    expect(kr, t, SL_EEXPIRED, "token expired");
    free(t);
    t = pk_token(header, "{\"sub\":\"u\"}", k, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "invalid claims");
    free(t);
    t = pk_token(header, "{\"sub\":\"u\",\"exp\":1700000100,\"sub\":\"admin\"}", k, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "malformed token");
    free(t);

    /* Without kid, the default key; with a kid it does not hold, unknown. */
    snprintf(header, sizeof header, "{\"alg\":\"%s\"}", alg);
    t = pk_token(header, PAYLOAD, k, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "unknown key id");
    sl_jwt_keyring *kr2 = ring();
    if (es)
        add_es256(kr2, NULL, k);
    else
        add_eddsa(kr2, NULL, k);
    expect(kr2, t, SL_OK, NULL);
    free(t);

    /* Signing needs a private key, which a keyring never holds. */
    sl_jwt_claims c = {.sub = "u", .exp = NOW + 60};
    char *out = (char *)"x";
    assert_int_equal(sl_jwt_sign(kr, "idp-1", &c, &out), SL_EINVAL);
    assert_null(out);
    assert_int_equal(sl_jwt_sign(kr2, NULL, &c, &out), SL_EINVAL);
    assert_null(out);
    sl_jwt_keyring_free(kr);
    sl_jwt_keyring_free(kr2);
}

static void test_es256_roundtrip(void **state)
{
    (void)state;
    /* Several keys and tokens: R or S with leading zero bytes must survive the padding. */
    for (int i = 0; i < 8; i++) {
        EVP_PKEY *k = gen_p256();
        check_roundtrip(k, "ES256", 1);
        EVP_PKEY_free(k);
    }
}

static void test_eddsa_roundtrip(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++) {
        EVP_PKEY *k = gen_ed25519();
        check_roundtrip(k, "EdDSA", 0);
        EVP_PKEY_free(k);
    }
}

/* ---- forgeries ------------------------------------------------------------------------------- */

static void check_forgeries(EVP_PKEY *k, EVP_PKEY *other, const char *alg, int es)
{
    char header[64];
    snprintf(header, sizeof header, "{\"alg\":\"%s\"}", alg);
    sl_jwt_keyring *kr = ring();
    if (es)
        add_es256(kr, NULL, k);
    else
        add_eddsa(kr, NULL, k);

    /* Wrong key: signed by another key of the same type. */
    char *t = pk_token(header, PAYLOAD, other, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "bad signature");
    free(t);

    /* Tampered payload: a valid signature moved onto other claims. */
    char *good = pk_token(header, PAYLOAD, k, SIG_JOSE);
    expect(kr, good, SL_OK, NULL);
    char *evil = signing_input(header, "{\"sub\":\"admin\",\"role\":\"admin\",\"exp\":1700000100}");
    strcat(evil, strrchr(good, '.'));
    expect(kr, evil, SL_ETOKEN, "bad signature");
    free(evil);

    /* Tampered header: the header is signed too. */
    char *h2 = signing_input("{\"alg\":\"ES256\" }", PAYLOAD);
    if (!es) {
        free(h2);
        h2 = signing_input("{\"alg\":\"EdDSA\" }", PAYLOAD);
    }
    strcat(h2, strrchr(good, '.'));
    expect(kr, h2, SL_ETOKEN, "bad signature");
    free(h2);

    /* Wrong lengths: a byte short, a byte over, empty, doubled. */
    char *in = signing_input(header, PAYLOAD);
    unsigned char sig[160];
    size_t n = sign_raw(k, in, sig, SIG_JOSE);
    assert_int_equal(n, 64);
    const size_t lens[] = {63, 65, 0, 1, 32, 128};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        unsigned char s2[160];
        memcpy(s2, sig, 64);
        memset(s2 + 64, 0, sizeof s2 - 64);
        if (lens[i] == 128)
            memcpy(s2 + 64, sig, 64);
        char *x = append_sig(strcpy(malloc(strlen(in) + 256), in), s2, lens[i]);
        expect(kr, x, SL_ETOKEN, "bad signature");
        free(x);
    }
    /* Every single-bit flip of the signature. */
    for (size_t bit = 0; bit < 64 * 8; bit += 7) {
        unsigned char s2[64];
        memcpy(s2, sig, 64);
        s2[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        char *x = append_sig(strcpy(malloc(strlen(in) + 256), in), s2, 64);
        expect(kr, x, SL_ETOKEN, "bad signature");
        free(x);
    }
    free(in);
    free(good);
    sl_jwt_keyring_free(kr);
}

static void test_forgeries(void **state)
{
    (void)state;
    EVP_PKEY *a = gen_p256(), *b = gen_p256(), *c = gen_ed25519(), *d = gen_ed25519();
    check_forgeries(a, b, "ES256", 1);
    check_forgeries(c, d, "EdDSA", 0);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    EVP_PKEY_free(c);
    EVP_PKEY_free(d);
}

static const unsigned char P256_N[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

/* What OpenSSL itself says of (r, s) as a DER signature: not 1 for scalars out of range. */
static int openssl_verdict(EVP_PKEY *k, const char *data, const unsigned char rs[64])
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL)), 1);
    unsigned char der[80], *p = der;
    int n = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, k), 1);
    int r = EVP_DigestVerify(c, der, (size_t)n, (const unsigned char *)data, strlen(data));
    EVP_MD_CTX_free(c);
    ERR_clear_error();
    return r;
}

/* ES256 signatures: DER is not JOSE, and R, S must be in [1, n-1]. */
static void test_es256_encoding(void **state)
{
    (void)state;
    EVP_PKEY *k = gen_p256();
    sl_jwt_keyring *kr = ring();
    add_es256(kr, NULL, k);
    const char *h = "{\"alg\":\"ES256\"}";
    char *t = pk_token(h, PAYLOAD, k, SIG_DER);
    expect(kr, t, SL_ETOKEN, "bad signature"); /* 70 to 72 bytes */
    free(t);

    char *in = signing_input(h, PAYLOAD);
    unsigned char sig[80];
    assert_int_equal(sign_raw(k, in, sig, SIG_JOSE), 64);
    unsigned char r[32], s[32];
    memcpy(r, sig, 32);
    memcpy(s, sig + 32, 32);
    unsigned char zero[32] = {0}, ones[32], n_plus_1[32];
    memset(ones, 0xff, sizeof ones);
    memcpy(n_plus_1, P256_N, 32);
    n_plus_1[31]++; /* ...51 + 1: no carry */
    const unsigned char *bad[][2] = {
        {zero, s}, {r, zero}, {zero, zero}, {P256_N, s}, {r, P256_N}, {n_plus_1, s}, {r, ones},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char rs[64];
        memcpy(rs, bad[i][0], 32);
        memcpy(rs + 32, bad[i][1], 32);
        char *x = append_sig(strcpy(malloc(strlen(in) + 256), in), rs, 64);
        expect(kr, x, SL_ETOKEN, "bad signature");
        free(x);
        assert_int_not_equal(openssl_verdict(k, in, rs), 1); /* and OpenSSL agrees */
    }
    /* A DER signature that happens to be 64 bytes is still read as R||S, and fails. */
    unsigned char der[80];
    size_t dn = sign_raw(k, in, der, SIG_DER);
    unsigned char padded[64] = {0};
    memcpy(padded, der, dn < 64 ? dn : 64);
    char *x = append_sig(strcpy(malloc(strlen(in) + 256), in), padded, 64);
    expect(kr, x, SL_ETOKEN, "bad signature");
    free(x);
    /* The signature as made verifies (the cases above fail for their encoding alone). */
    x = append_sig(strcpy(malloc(strlen(in) + 256), in), sig, 64);
    expect(kr, x, SL_OK, NULL);
    free(x);
    free(in);
    sl_jwt_keyring_free(kr);
    EVP_PKEY_free(k);
}

/* Ed25519's S is little-endian and must be below the group order L (RFC 8032 section 5.1.7):
 * S + L is the classic malleated twin of a valid signature and must fail. */
static void test_eddsa_malleability(void **state)
{
    (void)state;
    static const unsigned char L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                        0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};
    EVP_PKEY *k = gen_ed25519();
    sl_jwt_keyring *kr = ring();
    add_eddsa(kr, NULL, k);
    char *in = signing_input("{\"alg\":\"EdDSA\"}", PAYLOAD);
    unsigned char sig[80];
    assert_int_equal(sign_raw(k, in, sig, SIG_JOSE), 64);
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        unsigned v = sig[32 + i] + L[i] + carry;
        sig[32 + i] = (unsigned char)v;
        carry = v >> 8;
    }
    assert_int_equal(carry, 0); /* S < L < 2^253, so S + L < 2^254 */
    char *x = append_sig(in, sig, 64);
    expect(kr, x, SL_ETOKEN, "bad signature");
    free(x);
    sl_jwt_keyring_free(kr);
    EVP_PKEY_free(k);
}

/* ---- algorithm confusion --------------------------------------------------------------------- */

static void test_alg_confusion(void **state)
{
    (void)state;
    EVP_PKEY *ek = gen_p256(), *dk = gen_ed25519();
    char *epem = pub_pem(ek), *dpem = pub_pem(dk);

    /* The classic attack: the verifier's public key is public, so an attacker MACs an HS256 token
     * with its PEM text and names that key. It must never reach HMAC. */
    sl_jwt_keyring *kr = ring();
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "h1", SECRET, strlen(SECRET)), SL_OK);
    add_es256(kr, "e1", ek);
    add_eddsa(kr, "d1", dk);
    char *t = hs_token("{\"alg\":\"HS256\",\"kid\":\"e1\"}", PAYLOAD, epem, strlen(epem));
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    t = hs_token("{\"alg\":\"HS256\",\"kid\":\"d1\"}", PAYLOAD, dpem, strlen(dpem));
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    /* Also keyed with the DER (SubjectPublicKeyInfo) bytes. */
    unsigned char *der = NULL;
    int dl = i2d_PUBKEY(ek, &der);
    assert_true(dl > 0);
    t = hs_token("{\"alg\":\"HS256\",\"kid\":\"e1\"}", PAYLOAD, der, (size_t)dl);
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    OPENSSL_free(der);

    /* The other way: a public-key token naming the HS256 key, or the other public key. */
    t = pk_token("{\"alg\":\"ES256\",\"kid\":\"h1\"}", PAYLOAD, ek, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    t = pk_token("{\"alg\":\"EdDSA\",\"kid\":\"h1\"}", PAYLOAD, dk, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    t = pk_token("{\"alg\":\"ES256\",\"kid\":\"d1\"}", PAYLOAD, ek, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    t = pk_token("{\"alg\":\"EdDSA\",\"kid\":\"e1\"}", PAYLOAD, dk, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    /* A valid ES256 signature under a header claiming EdDSA (and the reverse). */
    char *in = signing_input("{\"alg\":\"EdDSA\",\"kid\":\"d1\"}", PAYLOAD);
    unsigned char sig[80];
    assert_int_equal(sign_raw(ek, in, sig, SIG_JOSE), 64);
    t = append_sig(in, sig, 64);
    expect(kr, t, SL_ETOKEN, "bad signature");
    free(t);
    /* HMAC under the real secret is fine only with the HS256 key's kid. */
    t = hs_token("{\"alg\":\"HS256\",\"kid\":\"h1\"}", PAYLOAD, SECRET, strlen(SECRET));
    expect(kr, t, SL_OK, NULL);
    free(t);
    sl_jwt_keyring_free(kr);

    /* A ring of only the ES256 key, as the default: HS256 is not even considered. */
    kr = ring();
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, NULL, epem, strlen(epem)), SL_OK);
    t = hs_token("{\"alg\":\"HS256\"}", PAYLOAD, epem, strlen(epem));
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    t = hs_token("{\"alg\":\"HS256\",\"kid\":\"nope\"}", PAYLOAD, epem, strlen(epem));
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    sl_jwt_keyring_free(kr);

    /* A ring of only HS256 keys: ES256 is refused as it always was, signed or not. */
    kr = ring();
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SECRET, strlen(SECRET)), SL_OK);
    t = pk_token("{\"alg\":\"ES256\"}", PAYLOAD, ek, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    t = pk_token("{\"alg\":\"EdDSA\",\"kid\":\"x\"}", PAYLOAD, dk, SIG_JOSE);
    expect(kr, t, SL_ETOKEN, "algorithm not allowed");
    free(t);
    sl_jwt_keyring_free(kr);

    free(epem);
    free(dpem);
    EVP_PKEY_free(ek);
    EVP_PKEY_free(dk);
}

static void test_other_algorithms(void **state)
{
    (void)state;
    EVP_PKEY *ek = gen_p256(), *dk = gen_ed25519();
    sl_jwt_keyring *kr = ring();
    add_es256(kr, NULL, ek);
    add_eddsa(kr, "d", dk);
    const char *headers[] = {
        "{\"alg\":\"ES384\"}",
        "{\"alg\":\"ES512\"}",
        "{\"alg\":\"ES256K\"}",
        "{\"alg\":\"none\"}",
        "{\"alg\":\"es256\"}",
        "{\"alg\":\"EDDSA\"}",
        "{\"alg\":\"Ed25519\"}",
        "{\"alg\":\"ed25519\"}",
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"PS256\"}",
        "{\"alg\":\"ES256 \"}",
        "{\"alg\":[\"ES256\"]}",
        "{}",
        "{\"alg\":\"EdDSA\\u0000\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        int nul = strstr(headers[i], "u0000") != NULL;
        const char *msg = nul ? "malformed token" : "algorithm not allowed";
        char *t = pk_token(headers[i], PAYLOAD, ek, SIG_JOSE);
        expect(kr, t, SL_ETOKEN, msg);
        free(t);
        t = pk_token(headers[i], PAYLOAD, dk, SIG_JOSE);
        expect(kr, t, SL_ETOKEN, msg);
        free(t);
        char *u = signing_input(headers[i], PAYLOAD); /* unsigned, as "none" would send */
        strcat(u, ".");
        expect(kr, u, SL_ETOKEN, msg);
        free(u);
    }
    /* Header rules are unchanged: typ, crit, non-string kid. */
    const struct {
        const char *h;
        const char *msg;
    } rules[] = {
        {"{\"alg\":\"ES256\",\"typ\":\"JWT\"}", NULL},
        {"{\"alg\":\"ES256\",\"typ\":\"JOSE\"}", "malformed token"},
        {"{\"alg\":\"ES256\",\"crit\":[\"exp\"]}", "malformed token"},
        {"{\"alg\":\"ES256\",\"kid\":7}", "malformed token"},
        {"{\"alg\":\"ES256\",\"alg\":\"ES256\"}", "malformed token"},
        {"{\"alg\":\"ES256\",\"jwk\":{\"kty\":\"EC\"}}", NULL}, /* embedded keys are ignored */
    };
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
        char *t = pk_token(rules[i].h, PAYLOAD, ek, SIG_JOSE);
        expect(kr, t, rules[i].msg ? SL_ETOKEN : SL_OK, rules[i].msg);
        free(t);
    }
    sl_jwt_keyring_free(kr);
    EVP_PKEY_free(ek);
    EVP_PKEY_free(dk);
}

/* The memo of verified signatures (security/jwt_keys.c): a token verified once is not verified
 * again by its key, but everything else about it is checked every time: expiry, audience, a
 * changed byte anywhere; another keyring (a provider's new key set) starts with nothing known. */
static void test_verified_signature_memo(void **state)
{
    (void)state;
    EVP_PKEY *ek = gen_p256(), *dk = gen_ed25519(), *other = gen_p256();
    sl_jwt_keyring *kr = ring();
    add_es256(kr, "e", ek);
    add_eddsa(kr, "d", dk);
    char *te = pk_token("{\"alg\":\"ES256\",\"kid\":\"e\"}", PAYLOAD, ek, SIG_JOSE);
    char *td = pk_token("{\"alg\":\"EdDSA\",\"kid\":\"d\"}", PAYLOAD, dk, SIG_JOSE);
    assert_int_equal(sl__jwt_keyring_pk_verifies(kr), 0);
    expect(kr, te, SL_OK, NULL);
    expect(kr, td, SL_OK, NULL);
    assert_int_equal(sl__jwt_keyring_pk_verifies(kr), 2);
    for (int i = 0; i < 3; i++) {
        expect(kr, te, SL_OK, NULL);
        expect(kr, td, SL_OK, NULL);
    }
    assert_int_equal(sl__jwt_keyring_pk_verifies(kr), 2); /* remembered */

    /* The claims are checked every time: past its exp, or for another audience, refused. */
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    assert_int_equal(sl_jwt_verify(kr, te, strlen(te), NULL, NOW + 1000, &id, &st), SL_EEXPIRED);
    assert_string_equal(id.principal, "");
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.audience = "someone-else";
    expect_o(kr, te, &o, SL_ETOKEN, "invalid audience");
    o.audience = "sluice";
    expect_o(kr, te, &o, SL_OK, NULL);
    assert_int_equal(sl__jwt_keyring_pk_verifies(kr), 2);

    /* A byte changed in the signature, or the remembered signature on other claims: verified
     * (and refused), never taken from the memo. */
    char *bad = strcpy(malloc(strlen(te) + 1), te);
    flip(bad);
    expect(kr, bad, SL_ETOKEN, "bad signature");
    expect(kr, bad, SL_ETOKEN, "bad signature");
    assert_int_equal(sl__jwt_keyring_pk_verifies(kr), 4);
    char *evil = signing_input("{\"alg\":\"ES256\",\"kid\":\"e\"}",
                               "{\"sub\":\"admin\",\"role\":\"admin\",\"exp\":1700000100}");
    strcat(evil, strrchr(te, '.'));
    expect(kr, evil, SL_ETOKEN, "bad signature");
    assert_int_equal(sl__jwt_keyring_pk_verifies(kr), 5);
    expect(kr, te, SL_OK, NULL); /* a refusal evicted nothing */
    assert_int_equal(sl__jwt_keyring_pk_verifies(kr), 5);

    /* A new keyring where kid "e" is another key: the same bytes are verified, and refused. */
    sl_jwt_keyring *kr2 = ring();
    add_es256(kr2, "e", other);
    expect(kr2, te, SL_ETOKEN, "bad signature");
    assert_int_equal(sl__jwt_keyring_pk_verifies(kr2), 1);
    sl_jwt_keyring_free(kr2);

    /* Many tokens: each verifies, again from the memo unless another took its slot (4,096 of
     * them, direct-mapped), and each one's tampered twin is refused. */
    enum { N = 300 };
    unsigned long before = sl__jwt_keyring_pk_verifies(kr);
    char *many[N];
    for (int i = 0; i < N; i++) {
        char payload[256];
        snprintf(payload, sizeof payload,
                 "{\"sub\":\"u%d\",\"role\":\"read\",\"exp\":1700000100,\"jti\":\"m-%d\"}", i, i);
        many[i] = pk_token("{\"alg\":\"ES256\",\"kid\":\"e\"}", payload, ek, SIG_JOSE);
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < N; i++) {
            sl_identity_clear(&id);
            assert_int_equal(sl_jwt_verify(kr, many[i], strlen(many[i]), NULL, NOW, &id, &st),
                             SL_OK);
            char want[16];
            snprintf(want, sizeof want, "u%d", i);
            assert_string_equal(id.principal, want);
        }
    unsigned long runs = sl__jwt_keyring_pk_verifies(kr) - before;
    assert_true(runs >= N && runs < N + N / 4);
    for (int i = 0; i < N; i += 10) {
        flip(many[i]);
        expect(kr, many[i], SL_ETOKEN, "bad signature");
    }
    for (int i = 0; i < N; i++)
        free(many[i]);
    sl_identity_clear(&id);
    free(evil);
    free(bad);
    free(te);
    free(td);
    sl_jwt_keyring_free(kr);
    EVP_PKEY_free(ek);
    EVP_PKEY_free(dk);
    EVP_PKEY_free(other);
}

/* ---- the upstream authenticator ---------------------------------------------------------------
 */

typedef struct upans {
    int calls, status;
    sl_identity who;
    char reason[128];
} upans;

static void on_upstream(void *ud, int status, const sl_identity *who, const char *reason)
{
    upans *a = ud;
    a->calls++;
    a->status = status;
    sl_identity_clear(&a->who);
    if (who != NULL)
        assert_int_equal(sl_identity_copy(&a->who, who), SL_OK);
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
}

static void upstream_check(sl_authenticator *au, EVP_PKEY *k, const char *payload, upans *a)
{
    char *t = pk_token("{\"alg\":\"ES256\"}", payload, k, SIG_JOSE);
    a->calls = 0;
    au->authenticate(au, t, strlen(t), NOW, on_upstream, a);
    assert_int_equal(a->calls, 1);
    free(t);
}

/* What the upstream authenticator keeps of a provider's token: the subject, jti and times, the
 * OAuth scope (which narrows: role ceiling and channel patterns) and the configured workspace
 * claim; the token's own role and channels mean nothing. A scope or workspace of the wrong type
 * or an unknown sluice: value refuses the token; escaped strings are read decoded. */
static void test_upstream_scope_and_workspace(void **state)
{
    (void)state;
    EVP_PKEY *k = gen_p256();
    sl_jwt_keyring *kr = ring();
    add_es256(kr, NULL, k);
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    o.issuer = "https://idp.example";
    o.audience = "sluice";
    o.workspace_claim = "tenant";
    sl_authenticator *au;
    assert_int_equal(sl_upstream_authenticator_new(kr, &o, &au), SL_OK);
    upans a = {0};
    sl_identity_init(&a.who);
#define CLAIMS(extra)                                                                              \
    "{\"sub\":\"carol\",\"iss\":\"https://idp.example\",\"aud\":\"sluice\",\"exp\":1700000100,"    \
    "\"jti\":\"up-1\",\"role\":\"admin\",\"channels\":[\"**\"]" extra "}"

    upstream_check(au, k, CLAIMS(""), &a);
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.who.principal, "carol");
    assert_string_equal(a.who.token_id, "up-1");
    assert_int_equal(a.who.role, SL_ROLE_NONE); /* the token's role claim is ignored */
    assert_false(a.who.scoped);
    assert_string_equal(a.who.workspace, "");

    upstream_check(au, k,
                   CLAIMS(",\"scope\":\"openid sluice:read sluice:channel:a.* "
                          "sluice:channel:b\",\"tenant\":\"acme\""),
                   &a);
    assert_int_equal(a.status, SL_OK);
    assert_int_equal(a.who.role, SL_ROLE_READ);
    assert_true(a.who.scoped);
    assert_int_equal(a.who.nchannels, 2);
    assert_string_equal(a.who.channels[0], "a.*");
    assert_string_equal(a.who.channels[1], "b");
    assert_string_equal(a.who.workspace, "acme");

    /* escapes are decoded before the scope and the workspace are read */
    upstream_check(au, k, CLAIMS(",\"scope\":\"sluice:\\u0077rite\",\"tenant\":\"a\\u0063me\""),
                   &a);
    assert_int_equal(a.status, SL_OK);
    assert_int_equal(a.who.role, SL_ROLE_WRITE);
    assert_string_equal(a.who.workspace, "acme");

    const char *refused[] = {
        CLAIMS(",\"scope\":7"),
        CLAIMS(",\"scope\":[\"sluice:read\"]"),
        CLAIMS(",\"scope\":\"sluice:root\""),
        CLAIMS(",\"tenant\":7"),
        CLAIMS(",\"tenant\":\"not a workspace!\""),
        CLAIMS(",\"tenant\":null"),
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        upstream_check(au, k, refused[i], &a);
        assert_int_equal(a.status, SL_ETOKEN);
        assert_string_equal(a.reason, "invalid scope or workspace");
    }
#undef CLAIMS
    sl_identity_clear(&a.who);
    au->free(au);
    sl_jwt_keyring_free(kr);
    EVP_PKEY_free(k);
}

/* Rotation across key types: each token verifies with exactly the key its kid names. */
static void test_mixed_rotation(void **state)
{
    (void)state;
    EVP_PKEY *e1 = gen_p256(), *e2 = gen_p256(), *d1 = gen_ed25519(), *d2 = gen_ed25519();
    const char s2[] = "second-secret-0123456789abcdefghi";
    sl_jwt_keyring *kr = ring();
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, NULL, SECRET, strlen(SECRET)), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "h2", s2, strlen(s2)), SL_OK);
    add_es256(kr, "2024-01", e1);
    add_es256(kr, "2024-02", e2);
    add_eddsa(kr, "ed-a", d1);
    add_eddsa(kr, "ed-b", d2);
    assert_int_equal(sl_jwt_keyring_size(kr), 6);

    const struct {
        const char *header;
        EVP_PKEY *pk;       /* NULL: HS256 with secret */
        const char *secret; /* HS256 */
        const char *msg;
    } cases[] = {
        {"{\"alg\":\"HS256\"}", NULL, SECRET, NULL},
        {"{\"alg\":\"HS256\",\"kid\":\"h2\"}", NULL, s2, NULL},
        {"{\"alg\":\"ES256\",\"kid\":\"2024-01\"}", e1, NULL, NULL},
        {"{\"alg\":\"ES256\",\"kid\":\"2024-02\"}", e2, NULL, NULL},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed-a\"}", d1, NULL, NULL},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed-b\"}", d2, NULL, NULL},
        {"{\"alg\":\"ES256\",\"kid\":\"2024-02\"}", e1, NULL, "bad signature"},
        {"{\"alg\":\"ES256\",\"kid\":\"2024-01\"}", e2, NULL, "bad signature"},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed-b\"}", d1, NULL, "bad signature"},
        {"{\"alg\":\"HS256\",\"kid\":\"h2\"}", NULL, SECRET, "bad signature"},
        {"{\"alg\":\"ES256\",\"kid\":\"2024-03\"}", e1, NULL, "unknown key id"},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed-c\"}", d1, NULL, "unknown key id"},
        {"{\"alg\":\"ES256\"}", e1, NULL, "algorithm not allowed"}, /* default key is HS256 */
        {"{\"alg\":\"EdDSA\",\"kid\":\"2024-01\"}", d1, NULL, "algorithm not allowed"},
        {"{\"alg\":\"HS256\",\"kid\":\"ed-a\"}", NULL, SECRET, "algorithm not allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = cases[i].pk ? pk_token(cases[i].header, PAYLOAD, cases[i].pk, SIG_JOSE)
                              : hs_token(cases[i].header, PAYLOAD, cases[i].secret,
                                         strlen(cases[i].secret));
        expect(kr, t, cases[i].msg ? SL_ETOKEN : SL_OK, cases[i].msg);
        free(t);
    }
    /* Kids are shared across types: one name, one key. */
    char *pem = pub_pem(e1);
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, "h2", pem, strlen(pem)), SL_EEXIST);
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, NULL, pem, strlen(pem)), SL_EEXIST);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "ed-a", SECRET, strlen(SECRET)), SL_EEXIST);
    free(pem);
    sl_jwt_keyring_free(kr);
    EVP_PKEY_free(e1);
    EVP_PKEY_free(e2);
    EVP_PKEY_free(d1);
    EVP_PKEY_free(d2);
}

/* ---- which keys are accepted ----------------------------------------------------------------- */

static char *concat(const char *a, const char *b)
{
    char *s = malloc(strlen(a) + strlen(b) + 1);
    assert_non_null(s);
    strcpy(s, a);
    strcat(s, b);
    return s;
}

static void test_key_loading(void **state)
{
    (void)state;
    EVP_PKEY *p256 = gen_p256(), *ed = gen_ed25519();
    EVP_PKEY *p384 = EVP_EC_gen("P-384"), *k1 = EVP_EC_gen("secp256k1"),
             *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448"),
             *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519"),
             *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(p384);
    assert_non_null(k1);
    assert_non_null(ed448);
    assert_non_null(x25519);
    assert_non_null(rsa);
    char *p256_pem = pub_pem(p256), *ed_pem = pub_pem(ed), *p384_pem = pub_pem(p384),
         *k1_pem = pub_pem(k1), *ed448_pem = pub_pem(ed448), *x25519_pem = pub_pem(x25519),
         *rsa_pem = pub_pem(rsa), *p256_priv = priv_pem(p256, 0),
         *p256_priv_trad = priv_pem(p256, 1), *ed_priv = priv_pem(ed, 0);
    /* P-256 spelled out as explicit curve parameters (`openssl ec -pubout -param_enc explicit`). */
    static const char explicit_pem[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MIIBSzCCAQMGByqGSM49AgEwgfcCAQEwLAYHKoZIzj0BAQIhAP////8AAAABAAAA\n"
        "AAAAAAAAAAAA////////////////MFsEIP////8AAAABAAAAAAAAAAAAAAAA////\n"
        "///////////8BCBaxjXYqjqT57PrvVV2mIa8ZR0GsMxTsPY7zjw+J9JgSwMVAMSd\n"
        "NgiG5wSTamZ44ROdJreBn36QBEEEaxfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5\n"
        "RdiYwpZP40Li/hp/m47n60p8D54WK84zV2sxXs7LtkBoN79R9QIhAP////8AAAAA\n"
        "//////////+85vqtpxeehPO5ysL8YyVRAgEBA0IABNV416kANJBylwIZPKI7dk6f\n"
        "qDWpfA0xma/Q+OmeMJ0REF687jV+ACahlIDwl6qkieVLt9rtevSpcfiSC8HiJsY=\n"
        "-----END PUBLIC KEY-----\n";

    sl_jwt_keyring *kr = ring();
    typedef int (*add_fn)(sl_jwt_keyring *, const char *, const char *, size_t);
    const add_fn es = sl_jwt_keyring_add_es256_pem, dd = sl_jwt_keyring_add_eddsa_pem;
    char *priv_then_pub = concat(p256_priv, p256_pem), *pub_then_priv = concat(p256_pem, p256_priv);
    char *two_pubs = concat(p256_pem, p256_pem);
    char *with_text = concat("Issuer: idp.example, rotated 2024-01\n", p256_pem);
    const struct {
        add_fn fn;
        const char *pem;
        int rc;
    } cases[] = {
        {es, p384_pem, SL_EINVAL},       /* ES256 is P-256 only */
        {es, k1_pem, SL_EINVAL},         /* secp256k1 is ES256K */
        {es, explicit_pem, SL_EINVAL},   /* RFC 5480: named curves only */
        {es, ed_pem, SL_EINVAL},         /* right PEM, wrong add */
        {es, rsa_pem, SL_EINVAL},        /* RS256 is not implemented */
        {dd, p256_pem, SL_EINVAL},       /* and the reverse */
        {dd, ed448_pem, SL_EINVAL},      /* EdDSA here means Ed25519 */
        {dd, x25519_pem, SL_EINVAL},     /* X25519 is for key agreement */
        {es, p256_priv, SL_EINVAL},      /* private keys are refused, not reduced */
        {es, p256_priv_trad, SL_EINVAL}, /* also as "EC PRIVATE KEY" */
        {dd, ed_priv, SL_EINVAL},
        {es, priv_then_pub, SL_EINVAL}, /* and not skipped over to find a public one */
        {es, pub_then_priv, SL_EINVAL},
        {es, two_pubs, SL_EINVAL},
        {es, "", SL_EINVAL},
        {es, "not a pem", SL_EINVAL},
        {es, "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n", SL_EINVAL},
        {es, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", SL_EINVAL},
        {es, with_text, SL_OK}, /* explanatory text before the block, as RFC 7468 allows */
        {dd, ed_pem, SL_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char kid[16];
        snprintf(kid, sizeof kid, "k%zu", i);
        int rc = cases[i].fn(kr, kid, cases[i].pem, strlen(cases[i].pem));
        if (rc != cases[i].rc)
            fail_msg("case %zu: got %d, expected %d", i, rc, cases[i].rc);
        assert_int_equal(ERR_peek_error(), 0);
    }
    assert_int_equal(sl_jwt_keyring_size(kr), 2);

    /* Truncated PEM; CRLF line ends; pem need not be NUL-terminated (len is what counts). */
    assert_int_equal(es(kr, "t", p256_pem, strlen(p256_pem) - 30), SL_EINVAL);
    char crlf[1024], *o = crlf;
    for (const char *s = p256_pem; *s; s++) {
        if (*s == '\n')
            *o++ = '\r';
        *o++ = *s;
    }
    *o = '\0';
    assert_int_equal(es(kr, "crlf", crlf, strlen(crlf)), SL_OK);
    char buf[1024];
    size_t n = strlen(p256_pem);
    memcpy(buf, p256_pem, n);
    memset(buf + n, 'Z', sizeof buf - n);
    assert_int_equal(es(kr, "unterminated", buf, n), SL_OK);
    /* The key is parsed, not referenced: wiping the text afterwards changes nothing. */
    memset(buf, 0, sizeof buf);
    char *t = pk_token("{\"alg\":\"ES256\",\"kid\":\"unterminated\"}", PAYLOAD, p256, SIG_JOSE);
    expect(kr, t, SL_OK, NULL);
    free(t);

    /* Arguments and kid rules as for HS256. */
    assert_int_equal(es(NULL, NULL, p256_pem, n), SL_EINVAL);
    assert_int_equal(es(kr, NULL, NULL, 10), SL_EINVAL);
    assert_int_equal(dd(kr, NULL, NULL, 0), SL_EINVAL);
    assert_int_equal(es(kr, "", p256_pem, n), SL_EINVAL);
    assert_int_equal(es(kr, "a\tb", p256_pem, n), SL_EINVAL);
    assert_int_equal(es(kr, "\xff", p256_pem, n), SL_EINVAL);
    assert_int_equal(es(kr, "crlf", p256_pem, n), SL_EEXIST);
    size_t size = sl_jwt_keyring_size(kr);
    for (size_t i = size; i < 16; i++) {
        char kid[16];
        snprintf(kid, sizeof kid, "fill-%zu", i);
        assert_int_equal(i % 2 ? dd(kr, kid, ed_pem, strlen(ed_pem)) : es(kr, kid, p256_pem, n),
                         SL_OK);
    }
    assert_int_equal(es(kr, "one-too-many", p256_pem, n), SL_ELIMIT);
    assert_int_equal(dd(kr, "one-too-many", ed_pem, strlen(ed_pem)), SL_ELIMIT);
    assert_int_equal(sl_jwt_keyring_add_hs256(kr, "one-too-many", SECRET, 32), SL_ELIMIT);
    sl_jwt_keyring_free(kr);

    free(priv_then_pub);
    free(pub_then_priv);
    free(two_pubs);
    free(with_text);
    char *all[] = {p256_pem,   ed_pem,  p384_pem,  k1_pem,         ed448_pem,
                   x25519_pem, rsa_pem, p256_priv, p256_priv_trad, ed_priv};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    EVP_PKEY *keys[] = {p256, ed, p384, k1, ed448, x25519, rsa};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        EVP_PKEY_free(keys[i]);
}

/* A PEM text is ASCII: a NUL byte anywhere is refused. OpenSSL's PEM reader works on C strings
 * and would read "-----BEGIN PUBLIC KEY\0\0-----" as a PUBLIC KEY block (found by fuzz_jwt_pk). */
static void test_pem_nul(void **state)
{
    (void)state;
    EVP_PKEY *k = gen_p256();
    char *pem = pub_pem(k);
    size_t n = strlen(pem), label = strlen("-----BEGIN PUBLIC KEY");
    char buf[1024];
    assert_true(n + 8 < sizeof buf);
    /* NULs inside the BEGIN line */
    memcpy(buf, pem, label);
    memset(buf + label, 0, 4);
    memcpy(buf + label + 4, pem + label, n - label);
    sl_jwt_keyring *kr = ring();
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, "a", buf, n + 4), SL_EINVAL);
    /* a NUL after the block, within len */
    memcpy(buf, pem, n);
    buf[n] = '\0';
    buf[n + 1] = 'x';
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, "b", buf, n + 2), SL_EINVAL);
    assert_int_equal(sl_jwt_keyring_add_eddsa_pem(kr, "c", buf, n + 2), SL_EINVAL);
    assert_int_equal(ERR_peek_error(), 0);
    assert_int_equal(sl_jwt_keyring_size(kr), 0);
    /* the same text without them is fine */
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, "d", pem, n), SL_OK);
    sl_jwt_keyring_free(kr);
    free(pem);
    EVP_PKEY_free(k);
}

/* An off-curve point cannot come in through PEM: OpenSSL's decoder refuses it. */
static void test_invalid_point(void **state)
{
    (void)state;
    EVP_PKEY *k = gen_p256();
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    assert_int_equal(n, 91); /* 26 bytes of SPKI header, then 04 || X || Y */
    der[n - 1] ^= 1;         /* Y no longer matches X */
    char *b64 = NULL;
    {
        BIO *b = BIO_new(BIO_s_mem());
        assert_true(PEM_write_bio(b, "PUBLIC KEY", "", der, n) > 0);
        b64 = bio_text(b);
    }
    sl_jwt_keyring *kr = ring();
    assert_int_equal(sl_jwt_keyring_add_es256_pem(kr, NULL, b64, strlen(b64)), SL_EINVAL);
    assert_int_equal(ERR_peek_error(), 0);
    assert_int_equal(sl_jwt_keyring_size(kr), 0);
    sl_jwt_keyring_free(kr);
    free(b64);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_es256_roundtrip),
        cmocka_unit_test(test_eddsa_roundtrip),
        cmocka_unit_test(test_forgeries),
        cmocka_unit_test(test_es256_encoding),
        cmocka_unit_test(test_eddsa_malleability),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_other_algorithms),
        cmocka_unit_test(test_mixed_rotation),
        cmocka_unit_test(test_key_loading),
        cmocka_unit_test(test_invalid_point),
        cmocka_unit_test(test_pem_nul),
        cmocka_unit_test(test_verified_signature_memo),
        cmocka_unit_test(test_upstream_scope_and_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
