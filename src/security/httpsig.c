/* HTTP Message Signatures (include/sluice/httpsig.h): the verifier (the signer is
 * security/httpsig_sign.c, the keyring and its key file security/httpsig_keys.c).
 * Verification checks everything that is cheap and says no without a key operation first
 * (headers, parameters, freshness, the policy's components, Content-Digest), then builds the
 * signature base and runs one EVP verification. The base is rebuilt from the request as received
 * and from the signature parameters' serialisation, never from text the signer supplied for it
 * (the parameters' own text stands in for the serialisation only where the parser found the two
 * identical). The fields are parsed into stack memory; a request costs no allocation unless its
 * fields or base outgrow it. */
#include <sluice/httpsig.h>

#include "security/httpsig.h"
#include "security/hmac256.h"
#include "security/httpsig_internal.h"
#include "security/httpsig_keys.h"
#include "security/sfv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>

/* SHA-512 fetched once: OpenSSL 3 looks an algorithm up by name (under a lock) in every one-shot
 * call. (SHA-256 and HMAC-SHA256 go through security/hmac256.h, which allocates nothing.) */
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha512_alg;

static void algs_fetch(void)
{
    sha512_alg = EVP_MD_fetch(NULL, "SHA512", NULL);
}

static const EVP_MD *sha512(void)
{
    pthread_once(&algs_once, algs_fetch);
    return sha512_alg ? sha512_alg : EVP_sha512();
}

/* The derived components this verifier builds, by index (bit i of a set of them is derived[i]). */
enum { D_METHOD, D_TARGET_URI, D_AUTHORITY, D_SCHEME, D_PATH, D_QUERY, D_REQUEST_TARGET };
static const char *const derived[] = {"@method", "@target-uri", "@authority",     "@scheme",
                                      "@path",   "@query",      "@request-target"};

/* c's index in derived[], or -1: each name differs from the others in its second byte. */
static int derived_index(const char *c)
{
    static const char second[] = "mtaspqr";
    const char *at = c[0] == '@' && c[1] ? strchr(second, c[1]) : NULL;
    return at && !strcmp(c, derived[at - second]) ? (int)(at - second) : -1;
}

/* A component name this verifier can build: a derived one it knows or a lowercase field name. */
int sl__httpsig_component_valid(const char *c)
{
    if (c[0] == '@')
        return derived_index(c) >= 0;
    if (c[0] == '\0' || strlen(c) > 64)
        return 0;
    for (const char *p = c; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return 0;
    return 1;
}

/* ---- Content-Digest (RFC 9530) --------------------------------------------------------------- */

/* Whether the digest (wlen bytes) of one entry matches the body. */
static int digest_matches(int is256, const char *body, size_t body_len, const unsigned char *want,
                          size_t wlen, sl_status *st)
{
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    if (is256 ? (hl = SL__SHA256_LEN, sl__sha256(body, body_len, h) < 0)
              : EVP_Digest(body, body_len, h, &hl, sha512(), NULL) != 1)
        return sl_status_set(st, SL_ETOKEN, "cannot compute the digest");
    /* A plain compare: the digest of a body is no secret (the sender has both), and the
     * signature, which is, is compared in constant time below. */
    if (hl != wlen || memcmp(h, want, hl) != 0)
        return sl_status_set(st, SL_ETOKEN, "content-digest does not match the body");
    return SL_OK;
}

/* The field every signing client sends, one sha-256 or sha-512 entry and nothing else
 * ("sha-256=:<base64>:"), checked without the dictionary parser: 1 and *rc the answer when value
 * is exactly that (what the parser would make of it, and nothing it would refuse), 0 when it is
 * anything else and the parser decides. */
static int digest_one(const char *value, size_t len, const char *body, size_t body_len,
                      sl_status *st, int *rc)
{
    if (len < 10 || value[len - 1] != ':' || memcmp(value, "sha-", 4) != 0 ||
        memcmp(value + 7, "=:", 2) != 0)
        return 0;
    int is256 = !memcmp(value + 4, "256", 3);
    if (!is256 && memcmp(value + 4, "512", 3) != 0)
        return 0;
    const char *b64 = value + 9;
    size_t n = len - 10;
    unsigned char want[64];
    long wlen;
    /* a ':' inside would end the byte sequence there, with more of the field after it */
    if (memchr(b64, ':', n) != NULL || (wlen = sl__sfv_b64_decode(b64, n, want, sizeof want)) < 0)
        return 0;
    *rc = digest_matches(is256, body, body_len, want, (size_t)wlen, st);
    return 1;
}

int sl_httpsig_check_digest(const char *value, size_t len, const char *body, size_t body_len,
                            sl_status *st)
{
    int rc;
    if (value != NULL && digest_one(value, len, body, body_len, st, &rc))
        return rc;
    sl__sfv_dict d;
    max_align_t scratch[1024 / sizeof(max_align_t)];
    if (sl__sfv_parse_dict_in(value, len, &d, scratch, sizeof scratch) < 0)
        return sl_status_set(st, SL_ETOKEN, "malformed Content-Digest");
    int checked = 0;
    rc = SL_OK;
    if (sl__sfv_dict_has_dups(&d))
        rc = sl_status_set(st, SL_ETOKEN, "malformed Content-Digest");
    for (size_t i = 0; i < d.n && rc == SL_OK; i++) {
        int is256 = !strcmp(d.m[i].key, "sha-256");
        if (!is256 && strcmp(d.m[i].key, "sha-512") != 0)
            continue; /* insecure or unknown algorithms carry no weight either way */
        const sl__sfv_item *it = &d.m[i].item;
        if (it->inner || it->v.type != SL__SFV_BYTES) {
            rc = sl_status_set(st, SL_ETOKEN, "malformed Content-Digest");
            break;
        }
        rc = digest_matches(is256, body, body_len, (const unsigned char *)it->v.s, it->v.len, st);
        checked++;
    }
    if (rc == SL_OK && !checked)
        rc = sl_status_set(st, SL_ETOKEN, "Content-Digest has no sha-256 or sha-512 entry");
    sl__sfv_dict_clear(&d);
    return rc;
}

/* ---- the signature base (RFC 9421 section 2.5) ----------------------------------------------- */

/* The value of derived component d (D_*) into b; -1 when the request has none. */
static int put_derived(buf *b, int d, const sl_authn_request *r)
{
    const char *path = r->path_len ? r->path : "/";
    size_t plen = r->path_len ? r->path_len : 1;
    switch (d) {
    case D_METHOD:
        puts_(b, r->method);
        return 0;
    case D_SCHEME:
        put_lower(b, r->scheme, strlen(r->scheme));
        return 0;
    case D_AUTHORITY:
        if (r->authority == NULL)
            return -1;
        put_lower(b, r->authority, r->authority_len);
        return 0;
    case D_TARGET_URI:
        if (r->authority == NULL)
            return -1;
        put_lower(b, r->scheme, strlen(r->scheme));
        puts_(b, "://");
        put_lower(b, r->authority, r->authority_len);
        put(b, path, plen);
        if (r->query_len) {
            puts_(b, "?");
            put(b, r->query, r->query_len);
        }
        return 0;
    case D_PATH:
        put(b, path, plen);
        return 0;
    case D_QUERY:
        puts_(b, "?");
        put(b, r->query, r->query_len);
        return 0;
    case D_REQUEST_TARGET:
        put(b, path, plen);
        if (r->query_len) {
            puts_(b, "?");
            put(b, r->query, r->query_len);
        }
        return 0;
    }
    return -1;
}

/* Every field line named name, trimmed and joined with ", " (section 2.1); -1 when absent. */
static int put_field(buf *b, const char *name, const sl_authn_request *r)
{
    size_t n = 0, len;
    const char *v;
    while ((v = r->header(r, name, n, &len)) != NULL) {
        if (n++)
            puts_(b, ", ");
        put(b, v, len);
    }
    return n ? 0 : -1;
}

/* ---- verifying --------------------------------------------------------------------------------
 */

static int has(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return 1;
    return 0;
}

/* The policy: what every signature must cover, and what its key adds. dset: the derived
 * components covered (bit D_*); digest: 1 when content-digest is. */
static int policy_check(const key *k, const char *const *cov, size_t ncov, unsigned dset,
                        int digest, const sl_authn_request *r, int minimum, sl_status *st)
{
    for (size_t i = 0; i < k->o.ncomponents; i++)
        if (!has(cov, ncov, k->o.components[i]))
            return sl_status_set(st, SL_ETOKEN, "the signature must cover %.64s",
                                 k->o.components[i]);
    if (!minimum)
        return SL_OK;
#define COVERS(d) ((dset >> (d)) & 1u)
    if (!COVERS(D_METHOD))
        return sl_status_set(st, SL_ETOKEN, "the signature must cover @method");
    int target =
        COVERS(D_TARGET_URI) ||
        (COVERS(D_AUTHORITY) && ((COVERS(D_PATH) && COVERS(D_QUERY)) || COVERS(D_REQUEST_TARGET)));
#undef COVERS
    if (!target)
        return sl_status_set(st, SL_ETOKEN,
                             "the signature must cover @target-uri (or @authority, @path and "
                             "@query)");
    if (r->body_len > 0 && !digest)
        return sl_status_set(st, SL_ETOKEN,
                             "the signature must cover content-digest when there is a body");
    return SL_OK;
}

static int verify_sig(const key *k, const char *base, size_t blen, const unsigned char *sig,
                      size_t slen)
{
    if (k->o.alg == SL_HTTPSIG_HMAC_SHA256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mlen = 0;
        if (k->mac != NULL) {
            if (sl__hmac256(k->mac, base, blen, mac) < 0)
                return -1;
            mlen = SL__SHA256_LEN;
        } else if (HMAC(EVP_sha256(), k->o.material, (int)k->o.material_len,
                        (const unsigned char *)base, blen, mac, &mlen) == NULL) {
            return -1;
        }
        /* Constant time: how much of a forged MAC matched must not show in the timing. */
        return slen == mlen && CRYPTO_memcmp(mac, sig, mlen) == 0 ? 0 : -1;
    }
    unsigned char der[80];
    const unsigned char *s = sig;
    size_t sl = slen;
    if (k->o.alg == SL_HTTPSIG_ECDSA_P256_SHA256) {
        /* RFC 9421 section 3.3.4: r || s, 32 bytes each; OpenSSL verifies DER. */
        if (slen != 64)
            return -1;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *br = BN_bin2bn(sig, 32, NULL), *bs = BN_bin2bn(sig + 32, 32, NULL);
        if (es == NULL || br == NULL || bs == NULL || ECDSA_SIG_set0(es, br, bs) != 1) {
            ECDSA_SIG_free(es);
            BN_free(br);
            BN_free(bs);
            return -1;
        }
        unsigned char *p = der;
        int n = i2d_ECDSA_SIG(es, NULL) <= (int)sizeof der ? i2d_ECDSA_SIG(es, &p) : -1;
        ECDSA_SIG_free(es);
        if (n <= 0)
            return -1;
        s = der;
        sl = (size_t)n;
    } else if (slen != 64)
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx &&
             EVP_DigestVerifyInit(ctx, NULL, k->o.alg == SL_HTTPSIG_ED25519 ? NULL : EVP_sha256(),
                                  NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, s, sl, (const unsigned char *)base, blen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* RFC 9421 section 2.3's signature parameters, the only ones accepted. */
enum { P_CREATED = 1, P_EXPIRES, P_KEYID, P_NONCE, P_ALG, P_TAG };

static int param_kind(const char *k)
{
    switch (k[0]) {
    case 'c':
        return strcmp(k, "created") ? 0 : P_CREATED;
    case 'e':
        return strcmp(k, "expires") ? 0 : P_EXPIRES;
    case 'k':
        return strcmp(k, "keyid") ? 0 : P_KEYID;
    case 'n':
        return strcmp(k, "nonce") ? 0 : P_NONCE;
    case 'a':
        return strcmp(k, "alg") ? 0 : P_ALG;
    case 't':
        return strcmp(k, "tag") ? 0 : P_TAG;
    }
    return 0;
}

static const char *only_header(const sl_authn_request *r, const char *name, size_t *len, int *dup)
{
    size_t l2;
    const char *v = r->header(r, name, 0, len);
    *dup = v && r->header(r, name, 1, &l2) != NULL;
    return v;
}

static int verify(const sl_httpsig_keyring *kr, const sl_authn_request *r, double now,
                  double max_skew, int minimum, sl__httpsig_early_fn early, void *ud,
                  sl_httpsig_verified *out, sl_status *st);

int sl_httpsig_verify(const sl_httpsig_keyring *kr, const sl_authn_request *r, double now,
                      double max_skew, sl_httpsig_verified *out, sl_status *st)
{
    return verify(kr, r, now, max_skew, 1, NULL, NULL, out, st);
}

int sl__httpsig_verify_policy(const sl_httpsig_keyring *kr, const sl_authn_request *r, double now,
                              double max_skew, int minimum, sl_httpsig_verified *out, sl_status *st)
{
    return verify(kr, r, now, max_skew, minimum, NULL, NULL, out, st);
}

int sl__httpsig_verify_early(const sl_httpsig_keyring *kr, const sl_authn_request *r, double now,
                             double max_skew, sl__httpsig_early_fn early, void *ud,
                             sl_httpsig_verified *out, sl_status *st)
{
    return verify(kr, r, now, max_skew, 1, early, ud, out, st);
}

static int verify(const sl_httpsig_keyring *kr, const sl_authn_request *r, double now,
                  double max_skew, int minimum, sl__httpsig_early_fn early, void *ud,
                  sl_httpsig_verified *out, sl_status *st)
{
    memset(out, 0, sizeof *out);
    if (r == NULL || r->header == NULL)
        return sl_status_set(st, SL_EUNAUTH, "not a signed request");
    size_t ilen = 0, slen = 0;
    int idup, sdup;
    const char *in = only_header(r, "signature-input", &ilen, &idup);
    const char *sg = only_header(r, "signature", &slen, &sdup);
    if (in == NULL && sg == NULL)
        return sl_status_set(st, SL_EUNAUTH, "not a signed request");
    if (in == NULL || sg == NULL)
        return sl_status_set(st, SL_ETOKEN, "Signature-Input and Signature go together");
    if (idup || sdup)
        return sl_status_set(st, SL_ETOKEN, "duplicated %s header",
                             idup ? "Signature-Input" : "Signature");
    if (kr == NULL)
        return sl_status_set(st, SL_ETOKEN, "unknown keyid");
    sl__sfv_dict di, ds;
    memset(&ds, 0, sizeof ds);
    int rc = SL_OK;
    char params[SL__SFV_MAX_INPUT + 1], base[1024];
    buf b = BUF_INIT(base);
    /* What the two fields parse into, for the usual one or two labels; more goes to the heap. */
    max_align_t di_mem[4096 / sizeof(max_align_t)], ds_mem[1024 / sizeof(max_align_t)];
    if (sl__sfv_parse_dict_in(in, ilen, &di, di_mem, sizeof di_mem) < 0)
        return sl_status_set(st, SL_ETOKEN, "malformed Signature-Input");
    if (sl__sfv_dict_has_dups(&di)) {
        rc = sl_status_set(st, SL_ETOKEN, "malformed Signature-Input");
        goto done;
    }
    if (sl__sfv_parse_dict_in(sg, slen, &ds, ds_mem, sizeof ds_mem) < 0 ||
        sl__sfv_dict_has_dups(&ds)) {
        rc = sl_status_set(st, SL_ETOKEN, "malformed Signature");
        goto done;
    }
    /* The first label whose key we have: a request may carry signatures for other verifiers. */
    const sl__sfv_member *m = NULL;
    const key *k = NULL;
    for (size_t i = 0; i < di.n; i++) {
        const sl__sfv_item *it = &di.m[i].item;
        if (!it->inner || sl__sfv_params_have_dups(it)) {
            rc = sl_status_set(st, SL_ETOKEN, "malformed Signature-Input");
            goto done;
        }
        const sl__sfv_bare *kid = sl__sfv_param_get(it, "keyid");
        if (k == NULL && kid && kid->type == SL__SFV_STRING &&
            (k = sl__httpsig_find_key(kr, kid->s)))
            m = &di.m[i];
    }
    if (k == NULL) {
        rc = sl_status_set(st, SL_ETOKEN, "unknown keyid");
        goto done;
    }
    const sl__sfv_member *sm = sl__sfv_dict_get(&ds, m->key);
    if (sm == NULL || sm->item.inner || sm->item.v.type != SL__SFV_BYTES || sm->item.nparams) {
        rc = sl_status_set(st, SL_ETOKEN, "no signature for label %.64s", m->key);
        goto done;
    }
    const sl__sfv_item *si = &m->item;
    /* Parameters: only the ones RFC 9421 section 2.3 defines, each of its type. */
    double created = -1, expires = 0;
    const char *nonce = NULL;
    size_t nonce_len = 0;
    for (size_t i = 0; i < si->nparams; i++) {
        const char *pk = si->params[i].key;
        const sl__sfv_bare *v = &si->params[i].v;
        int kind = param_kind(pk);
        if (kind == 0) {
            rc = sl_status_set(st, SL_ETOKEN, "unsupported signature parameter %.32s", pk);
            goto done;
        }
        if ((int)v->type !=
            (kind == P_CREATED || kind == P_EXPIRES ? SL__SFV_INTEGER : SL__SFV_STRING)) {
            rc = sl_status_set(st, SL_ETOKEN, "malformed signature parameter %.32s", pk);
            goto done;
        }
        if (kind == P_CREATED)
            created = (double)v->i;
        else if (kind == P_EXPIRES)
            expires = (double)v->i;
        else if (kind == P_NONCE) {
            nonce = v->s;
            nonce_len = v->len;
        } else if (kind == P_ALG && sl_httpsig_alg_parse(v->s) != k->o.alg) {
            rc = sl_status_set(st, SL_ETOKEN, "alg does not match the key");
            goto done;
        }
    }
    if (created < 0) {
        rc = sl_status_set(st, SL_ETOKEN, "the signature must carry created");
        goto done;
    }
    if (created > now + max_skew) {
        rc = sl_status_set(st, SL_ETOKEN, "signature created in the future");
        goto done;
    }
    if (created < now - max_skew) {
        rc = sl_status_set(st, SL_ETOKEN, "signature too old (created)");
        goto done;
    }
    if (expires > 0 && !(now < expires)) {
        rc = sl_status_set(st, SL_ETOKEN, "signature expired");
        goto done;
    }
    if (nonce == NULL && !k->o.nonce_optional) {
        rc = sl_status_set(st, SL_ETOKEN, "the signature must carry a nonce");
        goto done;
    }
    if (nonce && (nonce_len == 0 || nonce_len > SL_HTTPSIG_NONCE_MAX)) {
        rc = sl_status_set(st, SL_ETOKEN, "malformed signature parameter nonce");
        goto done;
    }
    /* Covered components: lowercase strings, each once, no parameters (none is supported). */
    /* Each is classified once: a derived one by its D_* index (dset holds those covered), a field
     * as FIELD, or CONTENT_DIGEST. */
    enum { FIELD = -1, CONTENT_DIGEST = -2 };
    const char *cov[SL__SFV_MAX_INNER];
    size_t covlen[SL__SFV_MAX_INNER], ncov = si->nitems;
    int cid[SL__SFV_MAX_INNER];
    unsigned dset = 0;
    int covers_digest = 0;
    for (size_t i = 0; i < ncov; i++) {
        const sl__sfv_item *c = &si->items[i];
        if (c->v.type != SL__SFV_STRING) {
            rc = sl_status_set(st, SL_ETOKEN, "malformed Signature-Input");
            goto done;
        }
        if (c->nparams) {
            rc = sl_status_set(st, SL_ETOKEN, "unsupported component parameter on %.64s", c->v.s);
            goto done;
        }
        int d = c->v.s[0] == '@' ? derived_index(c->v.s) : FIELD;
        if (c->v.s[0] == '@' ? d < 0 : !sl__httpsig_component_valid(c->v.s)) {
            rc = sl_status_set(st, SL_ETOKEN, "unsupported component %.64s", c->v.s);
            goto done;
        }
        if (d == FIELD && c->v.len == 14 && !memcmp(c->v.s, "content-digest", 14))
            d = CONTENT_DIGEST;
        if (d >= 0 ? (int)((dset >> d) & 1u)
                   : (d == CONTENT_DIGEST ? covers_digest : has(cov, i, c->v.s))) {
            rc = sl_status_set(st, SL_ETOKEN, "component %.64s covered twice", c->v.s);
            goto done;
        }
        if (d >= 0)
            dset |= 1u << d;
        covers_digest |= d == CONTENT_DIGEST;
        cov[i] = c->v.s;
        covlen[i] = c->v.len;
        cid[i] = d;
    }
    if ((rc = policy_check(k, cov, ncov, dset, covers_digest, r, minimum, st)) != SL_OK)
        goto done;
    if (early != NULL && nonce != NULL)
        early(ud, k->o.keyid, nonce, created);
    /* The body's digest before anything else looks at the body. */
    size_t dlen = 0;
    int ddup;
    const char *dig = only_header(r, "content-digest", &dlen, &ddup);
    if (ddup) {
        rc = sl_status_set(st, SL_ETOKEN, "duplicated Content-Digest header");
        goto done;
    }
    if (dig && (rc = sl_httpsig_check_digest(dig, dlen, r->body, r->body_len, st)) != SL_OK)
        goto done;
    /* The base. */
    for (size_t i = 0; i < ncov; i++) {
        put(&b, "\"", 1);
        put(&b, cov[i], covlen[i]);
        put(&b, "\": ", 3);
        int got;
        if (cid[i] >= 0)
            got = put_derived(&b, cid[i], r);
        else if (cid[i] == CONTENT_DIGEST && dig != NULL) {
            put(&b, dig, dlen); /* the one line, found above */
            got = 0;
        } else
            got = put_field(&b, cov[i], r);
        if (got < 0) {
            rc = sl_status_set(st, SL_ETOKEN, "covered component %.64s is not in the request",
                               cov[i]);
            goto done;
        }
        put(&b, "\n", 1);
    }
    /* The parameters as sl__sfv_serialize_item writes them: the received text itself when the
     * parser found it written exactly so (fuzz/fuzz_httpsig.c checks that byte for byte). */
    const char *pt = si->text;
    size_t ptlen = si->text_len;
    if (!si->canonical) {
        long pn = sl__sfv_serialize_item(si, params, sizeof params);
        if (pn < 0) {
            rc = sl_status_set(st, SL_ETOKEN, "malformed Signature-Input");
            goto done;
        }
        pt = params;
        ptlen = (size_t)pn;
    }
    put(&b, "\"@signature-params\": ", 21);
    put(&b, pt, ptlen);
    if (b.bad) {
        rc = sl_status_set(st, SL_ETOKEN, "signature base too large");
        goto done;
    }
    if (verify_sig(k, b.p, b.n, (const unsigned char *)sm->item.v.s, sm->item.v.len) < 0) {
        rc = sl_status_set(st, SL_ETOKEN, "signature does not verify");
        goto done;
    }
    /* Both fit: keyids are checked when keys are added, nonces above. */
    size_t kl = strnlen(k->o.keyid, sizeof out->keyid - 1), nl = nonce_len;
    memcpy(out->keyid, k->o.keyid, kl);
    out->keyid[kl] = '\0';
    memcpy(out->nonce, nonce ? nonce : "", nl);
    out->nonce[nl] = '\0';
    out->created = created;
    out->expires = expires;
    out->key = &k->o;
done:
    buf_free(&b);
    sl__sfv_dict_clear(&di);
    sl__sfv_dict_clear(&ds);
    return rc;
}
