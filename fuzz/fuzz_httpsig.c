/* Fuzz target: the signed-request parsers (security/sfv.c, security/httpsig.c). The input's lines
 * are a Signature-Input value, a Signature value, a Content-Digest value, and the body (the rest).
 * Each line goes through the structured-field parsers, whose accepted items must serialise to
 * text that parses again to the same serialisation, and whose items marked canonical must
 * serialise to exactly their received text (the verifier signs that text instead of serialising);
 * a parse into caller scratch of any size must equal the heap parse. Content-Digest is checked
 * against the body, and must get the answer the plain dictionary parse gives (the verifier has a
 * shortcut for the usual one-entry field); the whole goes through the verifier with an hmac and
 * an ed25519 key, which must answer with one of its documented codes. Violations abort. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sluice/httpsig.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "security/sfv.h"

#define SECRET "fuzz-secret-fuzz-secret-fuzz-secret-0123"
#define ED_PUB                                                                                     \
    "-----BEGIN PUBLIC KEY-----\n"                                                                 \
    "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"                               \
    "-----END PUBLIC KEY-----\n"

static void fail(const char *what)
{
    fprintf(stderr, "httpsig invariant broken: %s\n", what);
    abort();
}

typedef struct fake {
    sl_authn_request v;
    const char *names[4];
    const char *values[4];
    size_t lens[4];
} fake;

static const char *fake_header(const sl_authn_request *r, const char *name, size_t nth, size_t *len)
{
    const fake *f = (const fake *)r;
    for (size_t i = 0; i < 4; i++)
        if (f->names[i] && !strcasecmp(f->names[i], name) && nth-- == 0) {
            *len = f->lens[i];
            return f->values[i];
        }
    return NULL;
}

/* An item the parser calls canonical serialises to its text, byte for byte. */
static void canonical(const sl__sfv_item *it)
{
    static char a[SL__SFV_MAX_INPUT + 1];
    if (it->inner)
        for (size_t i = 0; i < it->nitems; i++)
            canonical(&it->items[i]);
    if (!it->canonical)
        return;
    long n = sl__sfv_serialize_item(it, a, sizeof a);
    if (it->text == NULL || n < 0 || (size_t)n != it->text_len || memcmp(a, it->text, it->text_len))
        fail("an item marked canonical serialises otherwise than written");
}

static void roundtrip(const sl__sfv_item *it)
{
    char a[SL__SFV_MAX_INPUT + 1], b[SL__SFV_MAX_INPUT + 1];
    canonical(it);
    long n = sl__sfv_serialize_item(it, a, sizeof a);
    if (n < 0)
        return; /* bytes a string cannot carry once unescaped: no serialisation, fine */
    sl__sfv_dict d;
    if (sl__sfv_parse_list(a, (size_t)n, &d) < 0 || d.n != 1)
        fail("a serialised item does not parse");
    long m = sl__sfv_serialize_item(&d.m[0].item, b, sizeof b);
    if (m != n || memcmp(a, b, (size_t)n) != 0)
        fail("serialise(parse(serialise(x))) differs");
    sl__sfv_dict_clear(&d);
}

/* Two parses of one field alike: the same members, keys and serialisations. */
static void same_dict(const sl__sfv_dict *x, const sl__sfv_dict *y)
{
    static char a[SL__SFV_MAX_INPUT + 1], b[SL__SFV_MAX_INPUT + 1];
    if (x->n != y->n)
        fail("a parse into scratch has other members");
    for (size_t i = 0; i < x->n; i++) {
        long n = sl__sfv_serialize_item(&x->m[i].item, a, sizeof a),
             m = sl__sfv_serialize_item(&y->m[i].item, b, sizeof b);
        if (strcmp(x->m[i].key, y->m[i].key) || n != m || (n > 0 && memcmp(a, b, (size_t)n)) ||
            x->m[i].item.canonical != y->m[i].item.canonical)
            fail("a parse into scratch differs");
    }
}

static void parse_all(const char *s, size_t n)
{
    sl__sfv_dict d;
    int rc = sl__sfv_parse_dict(s, n, &d);
    /* The same into scratch of a size the input picks (none, a little, plenty), misaligned too. */
    static max_align_t scratch[8192 / sizeof(max_align_t) + 1];
    size_t cap = n ? (unsigned char)s[0] * (size_t)32 : 0, skew = n % 8;
    sl__sfv_dict e;
    if (sl__sfv_parse_dict_in(s, n, &e, (char *)scratch + skew, cap) != rc)
        fail("a parse into scratch answers otherwise");
    if (rc == 0) {
        same_dict(&d, &e);
        sl__sfv_dict_clear(&e);
    }
    if (rc == 0) {
        for (size_t i = 0; i < d.n; i++)
            roundtrip(&d.m[i].item);
        sl__sfv_dict_clear(&d);
    }
    if (sl__sfv_parse_list(s, n, &d) == 0) {
        for (size_t i = 0; i < d.n; i++)
            roundtrip(&d.m[i].item);
        sl__sfv_dict_clear(&d);
    }
    sl__sfv_item it;
    if (sl__sfv_parse_item(s, n, &it) == 0) {
        roundtrip(&it);
        sl__sfv_item_clear(&it);
    }
}

/* The Content-Digest check as it reads in RFC 9530, through the dictionary parser alone: what
 * sl_httpsig_check_digest must answer, reason included. */
static int digest_reference(const char *value, size_t len, const char *body, size_t body_len,
                            sl_status *st)
{
    sl__sfv_dict d;
    if (sl__sfv_parse_dict(value, len, &d) < 0)
        return sl_status_set(st, SL_ETOKEN, "malformed Content-Digest");
    int rc = SL_OK, checked = 0;
    if (sl__sfv_dict_has_dups(&d))
        rc = sl_status_set(st, SL_ETOKEN, "malformed Content-Digest");
    for (size_t i = 0; i < d.n && rc == SL_OK; i++) {
        int is256 = !strcmp(d.m[i].key, "sha-256");
        if (!is256 && strcmp(d.m[i].key, "sha-512") != 0)
            continue;
        const sl__sfv_item *it = &d.m[i].item;
        if (it->inner || it->v.type != SL__SFV_BYTES) {
            rc = sl_status_set(st, SL_ETOKEN, "malformed Content-Digest");
            break;
        }
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned int hl = 0;
        if (EVP_Digest(body, body_len, h, &hl, is256 ? EVP_sha256() : EVP_sha512(), NULL) != 1)
            fail("cannot hash");
        if (hl != it->v.len || CRYPTO_memcmp(h, it->v.s, hl) != 0)
            rc = sl_status_set(st, SL_ETOKEN, "content-digest does not match the body");
        checked++;
    }
    if (rc == SL_OK && !checked)
        rc = sl_status_set(st, SL_ETOKEN, "Content-Digest has no sha-256 or sha-512 entry");
    sl__sfv_dict_clear(&d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_httpsig_keyring *kr;
    if (kr == NULL) {
        sl_status st;
        sl_httpsig_key_opts h = {.keyid = "k",
                                 .alg = SL_HTTPSIG_HMAC_SHA256,
                                 .material = SECRET,
                                 .material_len = strlen(SECRET),
                                 .principal = "fuzz"};
        sl_httpsig_key_opts e = {.keyid = "e",
                                 .alg = SL_HTTPSIG_ED25519,
                                 .material = ED_PUB,
                                 .material_len = strlen(ED_PUB),
                                 .principal = "fuzz",
                                 .nonce_optional = 1};
        if (sl_httpsig_keyring_new(&kr) != SL_OK || sl_httpsig_keyring_add(kr, &h, &st) != SL_OK ||
            sl_httpsig_keyring_add(kr, &e, &st) != SL_OK)
            fail("cannot set up the keys");
    }
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *part[4] = {"", "", "", ""};
    size_t plen[4] = {0, 0, 0, 0};
    const char *p = copy, *end = copy + size;
    for (int i = 0; i < 4; i++) {
        const char *nl = i < 3 ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        part[i] = p;
        plen[i] = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (nl == NULL) {
            p = end;
            break;
        }
        p = nl + 1;
    }
    for (int i = 0; i < 3; i++)
        parse_all(part[i], plen[i]);
    sl_status st;
    int rc = sl_httpsig_check_digest(part[2], plen[2], part[3], plen[3], &st);
    if (rc != SL_OK && rc != SL_ETOKEN)
        fail("Content-Digest check answered an undocumented code");
    sl_status ref;
    if (digest_reference(part[2], plen[2], part[3], plen[3], &ref) != rc ||
        (rc != SL_OK && strcmp(ref.message, st.message)))
        fail("the Content-Digest check differs from the plain parse");
    fake f;
    memset(&f, 0, sizeof f);
    f.v.method = "PUT";
    f.v.scheme = "https";
    f.v.authority = "example.com";
    f.v.authority_len = 11;
    f.v.path = "/channels/jobs";
    f.v.path_len = 14;
    f.v.query = "";
    f.v.body = part[3];
    f.v.body_len = plen[3];
    f.v.header = fake_header;
    const char *names[] = {"Signature-Input", "Signature", "Content-Digest", "Host"};
    for (int i = 0; i < 3; i++) {
        f.names[i] = plen[i] || part[i] != copy + size ? names[i] : NULL;
        f.values[i] = part[i];
        f.lens[i] = plen[i];
    }
    f.names[3] = names[3];
    f.values[3] = "example.com";
    f.lens[3] = 11;
    sl_httpsig_verified v;
    rc = sl_httpsig_verify(kr, &f.v, 1618884473.0, 300, &v, &st);
    if (rc != SL_OK && rc != SL_ETOKEN && rc != SL_EUNAUTH)
        fail("the verifier answered an undocumented code");
    /* A reason may echo what the request said (a component name), never what it did not. */
    if (rc != SL_OK && strstr(st.message, SECRET) && !memmem(data, size, SECRET, strlen(SECRET)))
        fail("a reason names the secret");
    free(copy);
    return 0;
}
