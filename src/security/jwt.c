/* JWT with HS256 (RFC 7519, RFC 7515), and RSA (RS256/384/512, PS256), ECDSA (ES256, ES384) and
 * EdDSA public keys (RFC 7518, RFC 8037) for tokens of an upstream identity provider: strict
 * verification of bearer tokens into an sl_identity, signing, token ids, and undecoded inspection
 * (the keyring and the public-key signature check are security/jwt_keys.c).
 * Verification is on the path of every network request, so it is built to run in well under a
 * microsecond without touching the heap except for the identity's channel scope: base64url is
 * decoded into a stack buffer, HMAC resumes from inner and outer SHA-256 states precomputed when
 * the key is added (security/hmac256.c), and the JSON of header and payload is read by a strict,
 * bounded parser written for the purpose rather than jansson, which alone costs twice the whole
 * budget (security/jwt_json.c; docs/JWT.md has the measurements). The header is necessarily read
 * before the signature is checked (it names the key); the payload is decoded only after. Error
 * descriptions are fixed strings so that nothing of a token or secret can leak through them.
 * Public-key verification costs tens of microseconds whatever we do, so it simply goes through EVP;
 * it shares everything before the signature with HS256 and branches only after the key is chosen,
 * leaving that path as it was.
 */

#include <sluice/jwt.h>

#include "security/hmac256.h"
#include "core/numtext.h"
#include "security/jwt_internal.h"
#include "security/jwt_json.h"
#include "security/jwt_keys.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define CHANNELS_MAX 1024
#define MAC_LEN 32

#define E_MALFORMED "malformed token"
#define E_SIGNATURE "bad signature"
#define E_ALG "algorithm not allowed"
#define E_KID "unknown key id"
#define E_EXPIRED "token expired"
#define E_NOTYET "token not yet valid"
#define E_AUD "invalid audience"
#define E_ISS "invalid issuer"
#define E_CLAIMS "invalid claims"
#define E_KIND "wrong kind of token"

/* Token ids: 128 random bits, then 128 bits of a tag binding them to the subject, in hex. */
#define TOKEN_ID_RANDOM_HEX 32
#define TOKEN_ID_TAG_HEX (SL_JWT_TOKEN_ID_LEN - TOKEN_ID_RANDOM_HEX)

/* ---- HS256 ----------------------------------------------------------------------------------- */

int sl__jwt_hs256(const void *key, size_t keylen, const void *data, size_t len,
                  unsigned char out[32])
{
    sl__hmac256_key *k;
    if (sl__hmac256_new(&k, key, keylen) != SL_OK)
        return -1;
    int r = sl__hmac256(k, data, len, out);
    sl__hmac256_free(k);
    return r;
}

/* ---- base64url ------------------------------------------------------------------------------- */

/* The value of each byte in the base64url alphabet, -1 outside it, as X-macro entries so that the
 * decoder's shifted tables below are built at compile time. */
/* clang-format off */
#define B64URL_VALUES(X) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(62) X(-1) X(-1) \
    X(52) X(53) X(54) X(55) X(56) X(57) X(58) X(59) X(60) X(61) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) \
    X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(-1) X(-1) X(-1) X(-1) X(63) \
    X(-1) X(26) X(27) X(28) X(29) X(30) X(31) X(32) X(33) X(34) X(35) X(36) X(37) X(38) X(39) X(40) \
    X(41) X(42) X(43) X(44) X(45) X(46) X(47) X(48) X(49) X(50) X(51) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) \
    X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1) X(-1)
/* clang-format on */

/* One table per position in a quad, each value pre-shifted, bit 31 set for a byte outside the
 * alphabet: a quad decodes with four loads and three ORs (measured 1.6x the plain loop). */
#define B64_D0(v) ((v) < 0 ? 0x80000000u : (uint32_t)(v) << 18),
#define B64_D1(v) ((v) < 0 ? 0x80000000u : (uint32_t)(v) << 12),
#define B64_D2(v) ((v) < 0 ? 0x80000000u : (uint32_t)(v) << 6),
#define B64_D3(v) ((v) < 0 ? 0x80000000u : (uint32_t)(v)),
static const uint32_t b64_d0[256] = {B64URL_VALUES(B64_D0)};
static const uint32_t b64_d1[256] = {B64URL_VALUES(B64_D1)};
static const uint32_t b64_d2[256] = {B64URL_VALUES(B64_D2)};
static const uint32_t b64_d3[256] = {B64URL_VALUES(B64_D3)};

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int sl__jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)in;
    unsigned char *o = out;
    size_t rem = len % 4;
    uint32_t seen = 0; /* the ORed quads: bit 31 says some byte was outside the alphabet */
    if (rem == 1)
        return -1;
    for (const unsigned char *end = s + (len - rem); s < end; s += 4, o += 3) {
        uint32_t v = b64_d0[s[0]] | b64_d1[s[1]] | b64_d2[s[2]] | b64_d3[s[3]];
        seen |= v;
        o[0] = (unsigned char)(v >> 16);
        o[1] = (unsigned char)(v >> 8);
        o[2] = (unsigned char)v;
    }
    if (rem > 0) {
        uint32_t v = b64_d0[s[0]] | b64_d1[s[1]] | (rem == 3 ? b64_d2[s[2]] : 0);
        /* Unused trailing bits must be zero, or one value would have several encodings. */
        if (v & (rem == 2 ? 0xffffu : 0xffu))
            return -1;
        seen |= v;
        *o++ = (unsigned char)(v >> 16);
        if (rem == 3)
            *o++ = (unsigned char)(v >> 8);
    }
    if (seen & 0x80000000u)
        return -1;
    *outlen = (size_t)(o - out);
    return 0;
}

/* Writes the encoding of n bytes (no padding, no NUL); returns its length. */
static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i > 0) {
        uint32_t v = (uint32_t)in[i] << 16 | (n - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        if (n - i == 2)
            out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    return o;
}

static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

static int str_is(const jscratch *s, jref r, const char *lit)
{
    size_t n = strlen(lit);
    return r.len == n && memcmp(s->buf + r.off, lit, n) == 0;
}

/* ---- verification ---------------------------------------------------------------------------- */

void sl_jwt_verify_opts_init(sl_jwt_verify_opts *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->leeway = 30;
}

enum { H_ALG, H_TYP, H_KID, H_CRIT, H__COUNT };
static const jname header_names[H__COUNT] = {{"alg", 3}, {"typ", 3}, {"kid", 3}, {"crit", 4}};

/* C_WS: "ws", the workspace the token's subject belongs to (docs/POLICY.md). */
enum {
    C_SUB,
    C_EXP,
    C_NBF,
    C_IAT,
    C_AUD,
    C_ISS,
    C_JTI,
    C_ROLE,
    C_CHANNELS,
    C_CHANNEL,
    C_WS,
    C__COUNT
};
static const jname claim_names[C__COUNT] = {
    {"sub", 3}, {"exp", 3},  {"nbf", 3},      {"iat", 3},     {"aud", 3}, {"iss", 3},
    {"jti", 3}, {"role", 4}, {"channels", 8}, {"channel", 7}, {"ws", 2}};

/* What a token is for: the "channel" claim makes a subscription token (one `$` channel, on the
 * WebSocket transport); without it a token is a bearer or connection token. Each is refused where
 * the other is expected, so a subscription token never authenticates a caller. */
typedef enum { KIND_ACCESS, KIND_SUBSCRIPTION } token_kind;

static int fail(sl_status *st, int code, const char *msg)
{
    return sl_status_set(st, code, "%s", msg);
}

/* The ALG_* a header's "alg" names (case-sensitively, RFC 7515 section 4.1.1), 0 for any other. */
static unsigned header_alg(const jscratch *s, const jval *v)
{
    if (v->type != JV_STRING)
        return 0;
    if (str_is(s, v->s, "HS256")) /* first: the sluice tokens' path stays one compare */
        return ALG_HS256;
    return sl__jwt_alg_of_name(s->buf + v->s.off, v->s.len);
}

/* Splits token into its three segments at the two dots; -1 unless there are exactly two. */
static int split3(const char *t, size_t len, size_t *d1, size_t *d2)
{
    const char *a = memchr(t, '.', len);
    if (a == NULL)
        return -1;
    const char *b = memchr(a + 1, '.', len - (size_t)(a + 1 - t));
    if (b == NULL || memchr(b + 1, '.', len - (size_t)(b + 1 - t)) != NULL)
        return -1;
    *d1 = (size_t)(a - t);
    *d2 = (size_t)(b - t);
    return 0;
}

/* Checks the registered claims in v (payload parsed into s) and fills out. */
static int check_claims(const jscratch *s, const jval *v, const sl_jwt_verify_opts *o, double now,
                        token_kind kind, char *channel, size_t channel_cap, sl_identity *out,
                        sl_status *st)
{
    const jval *sub = &v[C_SUB], *aud = &v[C_AUD], *iss = &v[C_ISS], *jti = &v[C_JTI],
               *role = &v[C_ROLE], *chans = &v[C_CHANNELS], *chan = &v[C_CHANNEL];

    /* The kind first: a token of the other kind is refused whatever else it says. */
    if ((kind == KIND_ACCESS) != (chan->type == JV_ABSENT))
        return fail(st, SL_ETOKEN, E_KIND);
    if (kind == KIND_SUBSCRIPTION &&
        (chan->type != JV_STRING || chan->s.len >= channel_cap ||
         !sl_channel_id_valid(s->buf + chan->s.off, chan->s.len) || v[C_EXP].type == JV_ABSENT))
        return fail(st, SL_ETOKEN, E_CLAIMS);

    /* Shapes first: a claim of the wrong type is never silently ignored. */
    for (int c = C_EXP; c <= C_IAT; c++)
        if (v[c].type != JV_ABSENT && v[c].type != JV_NUMBER)
            return fail(st, SL_ETOKEN, E_CLAIMS);
    if ((iss->type != JV_ABSENT && iss->type != JV_STRING) ||
        (jti->type != JV_ABSENT && (jti->type != JV_STRING || jti->s.len > SL_TOKEN_ID_MAX)) ||
        (aud->type != JV_ABSENT && aud->type != JV_STRING &&
         !(aud->type == JV_ARRAY && aud->strings_only)) ||
        (chans->type != JV_ABSENT &&
         !(chans->type == JV_ARRAY && chans->strings_only && chans->s.len <= CHANNELS_MAX)))
        return fail(st, SL_ETOKEN, E_CLAIMS);
    if (sub->type != JV_STRING || !sl_principal_valid(s->buf + sub->s.off, sub->s.len))
        return fail(st, SL_ETOKEN, E_CLAIMS);
    const jval *ws = &v[C_WS];
    if (ws->type != JV_ABSENT &&
        (ws->type != JV_STRING || !sl_workspace_valid(s->buf + ws->s.off, ws->s.len)))
        return fail(st, SL_ETOKEN, E_CLAIMS);
    sl_role r = SL_ROLE_NONE;
    if (role->type != JV_ABSENT) {
        char name[8] = "";
        if (role->type == JV_STRING && role->s.len < sizeof name)
            memcpy(name, s->buf + role->s.off, role->s.len);
        if ((r = sl_role_parse(name)) == SL_ROLE_NONE)
            return fail(st, SL_ETOKEN, E_CLAIMS);
    }
    if (chans->type == JV_ARRAY)
        for (size_t i = 0; i < chans->s.len; i++) {
            jref c = s->strs[chans->s.off + i];
            if (!sl_pattern_valid(s->buf + c.off, c.len))
                return fail(st, SL_ETOKEN, E_CLAIMS);
        }

    double leeway = o->leeway;
    if (!(leeway >= 0)) /* also NaN */
        leeway = 0;
    else if (leeway > 60)
        leeway = 60;
    if (v[C_EXP].type == JV_ABSENT && !o->exp_optional)
        return fail(st, SL_ETOKEN, E_CLAIMS);
    if (v[C_EXP].type == JV_NUMBER && v[C_EXP].num <= now - leeway)
        return fail(st, SL_EEXPIRED, E_EXPIRED);
    if ((v[C_NBF].type == JV_NUMBER && v[C_NBF].num > now + leeway) ||
        (v[C_IAT].type == JV_NUMBER && v[C_IAT].num > now + leeway))
        return fail(st, SL_ETOKEN, E_NOTYET);

    if (o->issuer != NULL && (iss->type != JV_STRING || !str_is(s, iss->s, o->issuer)))
        return fail(st, SL_ETOKEN, E_ISS);
    if (o->audience != NULL) {
        int found = aud->type == JV_STRING && str_is(s, aud->s, o->audience);
        for (size_t i = 0; !found && aud->type == JV_ARRAY && i < aud->s.len; i++)
            found = str_is(s, s->strs[aud->s.off + i], o->audience);
        if (!found)
            return fail(st, SL_ETOKEN, E_AUD);
    }

    if (chans->type == JV_ARRAY && chans->s.len > 0) {
        if ((out->channels = calloc(chans->s.len, sizeof *out->channels)) == NULL)
            return fail(st, SL_ENOMEM, "out of memory");
        for (size_t i = 0; i < chans->s.len; i++) {
            jref c = s->strs[chans->s.off + i];
            char *copy = malloc((size_t)c.len + 1);
            if (copy == NULL) {
                sl_identity_clear(out);
                return fail(st, SL_ENOMEM, "out of memory");
            }
            memcpy(copy, s->buf + c.off, c.len);
            copy[c.len] = '\0';
            out->channels[out->nchannels++] = copy;
        }
    }
    out->scoped = chans->type == JV_ARRAY;
    memcpy(out->principal, s->buf + sub->s.off, sub->s.len);
    out->principal[sub->s.len] = '\0';
    if (jti->type == JV_STRING) {
        memcpy(out->token_id, s->buf + jti->s.off, jti->s.len);
        out->token_id[jti->s.len] = '\0';
    }
    if (kind == KIND_SUBSCRIPTION) {
        memcpy(channel, s->buf + chan->s.off, chan->s.len);
        channel[chan->s.len] = '\0';
    }
    if (ws->type == JV_STRING) {
        memcpy(out->workspace, s->buf + ws->s.off, ws->s.len);
        out->workspace[ws->s.len] = '\0';
    }
    out->source = SL_SOURCE_JWT;
    out->role = r;
    out->issued_at = v[C_IAT].type == JV_NUMBER ? v[C_IAT].num : 0;
    out->expires_at = v[C_EXP].type == JV_NUMBER ? v[C_EXP].num : 0;
    return SL_OK;
}

/* The header segment token[0..d1): checked, and the key it names in *key. Remembered in the
 * keyring when it checks out (see memo). s is scratch. */
static int check_header(sl_jwt_keyring *kr, const char *token, size_t d1, jscratch *s,
                        jwt_key **key, sl_status *st)
{
    if (kr->memo_len == d1 && kr->memo_n == kr->n && memcmp(kr->memo, token, d1) == 0) {
        *key = &kr->keys[kr->memo_key];
        return SL_OK;
    }
    jval h[H__COUNT];
    size_t n;
    if (sl__jwt_b64url_decode(token, d1, (unsigned char *)s->buf, &n) < 0 ||
        sl__jwt_json_parse(s, n, header_names, h, H__COUNT) < 0)
        return fail(st, SL_ETOKEN, E_MALFORMED);
    unsigned alg = header_alg(s, &h[H_ALG]);
    /* An algorithm no key here has is refused before the kid is looked at (an empty ring has no
     * key to name, and says so as it always did). */
    if (alg == 0 || (kr->n > 0 && !(kr->algs & alg)))
        return fail(st, SL_ETOKEN, E_ALG);
    /* We implement no header extension, so none may be critical (RFC 7515 section 4.1.11). */
    if ((h[H_TYP].type != JV_ABSENT &&
         !(h[H_TYP].type == JV_STRING && str_is(s, h[H_TYP].s, "JWT"))) ||
        h[H_CRIT].type != JV_ABSENT || (h[H_KID].type != JV_ABSENT && h[H_KID].type != JV_STRING))
        return fail(st, SL_ETOKEN, E_MALFORMED);
    jwt_key *k = h[H_KID].type == JV_STRING
                     ? sl__jwt_keyring_find(kr, s->buf + h[H_KID].s.off, h[H_KID].s.len)
                     : sl__jwt_keyring_find(kr, NULL, 0);
    if (k == NULL)
        return fail(st, SL_ETOKEN, E_KID);
    /* Each key verifies one algorithm, the one the token must name: otherwise an HS256 token
     * could be MACed with a public key's published PEM and checked against it (alg confusion). */
    if (k->alg != alg)
        return fail(st, SL_ETOKEN, E_ALG);
    *key = k;
    if (d1 <= HDR_MEMO_MAX) {
        memcpy(kr->memo, token, d1);
        kr->memo_len = d1;
        kr->memo_key = (size_t)(k - kr->keys);
        kr->memo_n = kr->n;
    }
    return SL_OK;
}

static int verify(sl_jwt_keyring *kr, const char *token, size_t len, const sl_jwt_verify_opts *o,
                  double now, token_kind kind, char *channel, size_t channel_cap, sl_identity *out,
                  sl_status *st)
{
    if (out == NULL || isnan(now)) /* a NaN clock would make every time check pass */
        return fail(st, SL_EINVAL, "invalid argument");
    sl_identity_clear(out);
    sl_jwt_verify_opts defaults;
    if (o == NULL) {
        sl_jwt_verify_opts_init(&defaults);
        o = &defaults;
    }
    size_t d1, d2, n;
    if (kr == NULL || token == NULL || len == 0 || len > SL_JWT_MAX_LEN ||
        split3(token, len, &d1, &d2) < 0)
        return fail(st, SL_ETOKEN, E_MALFORMED);

    jscratch s;
    jwt_key *k = NULL;
    int rc = check_header(kr, token, d1, &s, &k, st);
    if (rc != SL_OK)
        return rc;
    unsigned alg = k->alg;

    if (sl__jwt_b64url_decode(token + d2 + 1, len - d2 - 1, (unsigned char *)s.buf, &n) < 0)
        return fail(st, SL_ETOKEN, E_MALFORMED);
    if (alg == ALG_HS256) {
        unsigned char mac[MAC_LEN];
        if (n != MAC_LEN)
            return fail(st, SL_ETOKEN, E_SIGNATURE);
        if (sl__hmac256(k->hk, token, d2, mac) < 0)
            return fail(st, SL_EINTERNAL, "internal error");
        int bad = CRYPTO_memcmp(mac, s.buf, MAC_LEN);
        OPENSSL_cleanse(mac, sizeof mac);
        if (bad)
            return fail(st, SL_ETOKEN, E_SIGNATURE);
    } else {
        int ok = sl__jwt_pk_verify_memo(kr, k, token, len, d2, (const unsigned char *)s.buf, n);
        if (ok < 0)
            return fail(st, SL_EINTERNAL, "internal error");
        if (!ok)
            return fail(st, SL_ETOKEN, E_SIGNATURE);
    }

    jval c[C__COUNT];
    if (sl__jwt_b64url_decode(token + d1 + 1, d2 - d1 - 1, (unsigned char *)s.buf, &n) < 0 ||
        sl__jwt_json_parse(&s, n, claim_names, c, C__COUNT) < 0)
        return fail(st, SL_ETOKEN, E_MALFORMED);
    return check_claims(&s, c, o, now, kind, channel, channel_cap, out, st);
}

int sl_jwt_verify(sl_jwt_keyring *kr, const char *token, size_t len, const sl_jwt_verify_opts *o,
                  double now, sl_identity *out, sl_status *st)
{
    return verify(kr, token, len, o, now, KIND_ACCESS, NULL, 0, out, st);
}

int sl_jwt_verify_subscription(sl_jwt_keyring *kr, const char *token, size_t len,
                               const sl_jwt_verify_opts *o, double now, sl_identity *out,
                               char channel[SL_CHANNEL_ID_MAX + 1], sl_status *st)
{
    if (channel == NULL)
        return fail(st, SL_EINVAL, "invalid argument");
    channel[0] = '\0';
    return verify(kr, token, len, o, now, KIND_SUBSCRIPTION, channel, SL_CHANNEL_ID_MAX + 1, out,
                  st);
}

int sl_jwt_header_kid(const char *token, size_t len, char kid[SL_JWT_KID_MAX + 1], size_t *kidlen)
{
    size_t d1, d2, n;
    if (kid != NULL)
        kid[0] = '\0';
    if (kidlen != NULL)
        *kidlen = 0;
    if (token == NULL || kid == NULL || kidlen == NULL || len == 0 || len > SL_JWT_MAX_LEN ||
        split3(token, len, &d1, &d2) < 0)
        return SL_ETOKEN;
    jscratch s;
    jval h[H__COUNT];
    if (sl__jwt_b64url_decode(token, d1, (unsigned char *)s.buf, &n) < 0 ||
        sl__jwt_json_parse(&s, n, header_names, h, H__COUNT) < 0)
        return SL_ETOKEN;
    if (h[H_KID].type == JV_ABSENT)
        return SL_OK;
    if (h[H_KID].type != JV_STRING || !sl__jwt_kid_valid(s.buf + h[H_KID].s.off, h[H_KID].s.len))
        return SL_ETOKEN;
    memcpy(kid, s.buf + h[H_KID].s.off, h[H_KID].s.len);
    kid[h[H_KID].s.len] = '\0';
    *kidlen = h[H_KID].s.len;
    return SL_OK;
}

/* ---- token ids ------------------------------------------------------------------------------- */

/* The tag that binds a token id to its subject: HMAC-SHA256 under an HS256 key of the ring over a
 * message no JWT signing input can equal (':' is not in the base64url alphabet). */
static int id_tag(jwt_key *k, const char *rnd, const char *sub, unsigned char tag[MAC_LEN])
{
    char msg[16 + TOKEN_ID_RANDOM_HEX + 1 + SL_PRINCIPAL_MAX + 1];
    int n = snprintf(msg, sizeof msg, "sluice-jti:%.*s:%s", TOKEN_ID_RANDOM_HEX, rnd, sub);
    if (n < 0 || (size_t)n >= sizeof msg)
        return -1;
    return sl__hmac256(k->hk, msg, (size_t)n, tag);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int sl_jwt_token_id_new(sl_jwt_keyring *kr, const char *sub, char out[SL_JWT_TOKEN_ID_LEN + 1])
{
    out[0] = '\0';
    if (kr == NULL || sub == NULL || !sl_principal_valid(sub, strlen(sub)))
        return SL_EINVAL;
    jwt_key *k = sl__jwt_keyring_find(kr, NULL, 0);
    for (size_t i = 0; (k == NULL || k->alg != ALG_HS256) && i < kr->n; i++)
        k = &kr->keys[i];
    if (k == NULL || k->alg != ALG_HS256)
        return SL_ENOENT;
    unsigned char rnd[TOKEN_ID_RANDOM_HEX / 2], tag[MAC_LEN];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return SL_EINTERNAL;
    hex(rnd, sizeof rnd, out);
    if (id_tag(k, out, sub, tag) < 0)
        return SL_EINTERNAL;
    hex(tag, TOKEN_ID_TAG_HEX / 2, out + TOKEN_ID_RANDOM_HEX);
    OPENSSL_cleanse(tag, sizeof tag);
    return SL_OK;
}

int sl_jwt_token_id_of(sl_jwt_keyring *kr, const char *token_id, const char *sub)
{
    if (kr == NULL || token_id == NULL || sub == NULL || strlen(token_id) != SL_JWT_TOKEN_ID_LEN ||
        !sl_principal_valid(sub, strlen(sub)))
        return 0;
    int owned = 0;
    for (size_t i = 0; i < kr->n; i++) { /* every HS256 key: ids outlive a key rotation */
        unsigned char tag[MAC_LEN];
        char want[TOKEN_ID_TAG_HEX + 1];
        if (kr->keys[i].alg != ALG_HS256 || id_tag(&kr->keys[i], token_id, sub, tag) < 0)
            continue;
        hex(tag, TOKEN_ID_TAG_HEX / 2, want);
        owned |= CRYPTO_memcmp(want, token_id + TOKEN_ID_RANDOM_HEX, TOKEN_ID_TAG_HEX) == 0;
        OPENSSL_cleanse(tag, sizeof tag);
    }
    return owned;
}

/* ---- signing --------------------------------------------------------------------------------- */

/* NumericDate: an integer when it is one (what every reader expects), else a real. */
static json_t *numeric_date(double t)
{
    if (t == floor(t) && fabs(t) < 9007199254740992.0)
        return json_integer((json_int_t)t);
    return json_real(t);
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(obj, key, v) == 0 ? 0 : -1;
}

/* The claims object, or NULL when some claim is invalid (or memory ran out). */
static json_t *claims_json(const sl_jwt_claims *c)
{
    if (c->sub == NULL || !sl_principal_valid(c->sub, strlen(c->sub)) ||
        (c->role != SL_ROLE_NONE && sl_role_parse(sl_role_name(c->role)) != c->role) ||
        (c->jti != NULL && strlen(c->jti) > SL_TOKEN_ID_MAX) ||
        (c->act_sub != NULL && !sl_principal_valid(c->act_sub, strlen(c->act_sub))) ||
        (c->channel != NULL && !sl_channel_id_valid(c->channel, strlen(c->channel))) ||
        (c->workspace && c->workspace[0] &&
         !sl_workspace_valid(c->workspace, strlen(c->workspace))) ||
        !isfinite(c->iat) || !isfinite(c->exp) || !isfinite(c->nbf) ||
        (c->scoped && (c->nchannels > CHANNELS_MAX || (c->nchannels > 0 && c->channels == NULL))))
        return NULL;
    json_t *p = json_object();
    int bad = p == NULL || set_new(p, "sub", json_string(c->sub)) < 0;
    if (!bad && c->role != SL_ROLE_NONE)
        bad = set_new(p, "role", json_string(sl_role_name(c->role))) < 0;
    if (!bad && c->scoped) {
        json_t *a = json_array();
        bad = set_new(p, "channels", a) < 0;
        for (size_t i = 0; !bad && i < c->nchannels; i++)
            bad = c->channels[i] == NULL ||
                  !sl_pattern_valid(c->channels[i], strlen(c->channels[i])) ||
                  json_array_append_new(a, json_string(c->channels[i])) < 0;
    }
    if (!bad && c->iat != 0)
        bad = set_new(p, "iat", numeric_date(c->iat)) < 0;
    if (!bad && c->nbf != 0)
        bad = set_new(p, "nbf", numeric_date(c->nbf)) < 0;
    if (!bad && c->exp != 0)
        bad = set_new(p, "exp", numeric_date(c->exp)) < 0;
    if (!bad && c->jti != NULL)
        bad = set_new(p, "jti", json_string(c->jti)) < 0; /* NULL for invalid UTF-8 */
    if (!bad && c->aud != NULL)
        bad = set_new(p, "aud", json_string(c->aud)) < 0;
    if (!bad && c->iss != NULL)
        bad = set_new(p, "iss", json_string(c->iss)) < 0;
    if (!bad && c->act_sub != NULL)
        bad = set_new(p, "act", json_pack("{s:s}", "sub", c->act_sub)) < 0;
    if (!bad && c->channel != NULL)
        bad = set_new(p, "channel", json_string(c->channel)) < 0;
    if (!bad && c->workspace && c->workspace[0])
        bad = set_new(p, "ws", json_string(c->workspace)) < 0;
    if (bad) {
        json_decref(p);
        return NULL;
    }
    return p;
}

int sl_jwt_sign(sl_jwt_keyring *kr, const char *kid, const sl_jwt_claims *c, char **out)
{
    if (out != NULL)
        *out = NULL;
    if (kr == NULL || c == NULL || out == NULL)
        return SL_EINVAL;
    jwt_key *k = sl__jwt_keyring_find(kr, kid, kid ? strlen(kid) : 0);
    if (k == NULL)
        return SL_ENOENT;
    if (k->alg != ALG_HS256) /* public keys only verify */
        return SL_EINVAL;
    json_t *payload = claims_json(c);
    if (payload == NULL)
        return SL_EINVAL;
    json_t *header = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
    /* sl__jwt_kid_valid() let only UTF-8 in, so json_string() can fail here only for want of
     * memory. */
    if (header != NULL && kid != NULL && set_new(header, "kid", json_string(kid)) < 0) {
        json_decref(header);
        header = NULL;
    }
    char *hs = header ? json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char *ps = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(header);
    json_decref(payload);
    int rc = SL_OK;
    char *tok = NULL;
    if (hs == NULL || ps == NULL) {
        rc = SL_ENOMEM;
    } else {
        size_t hl = strlen(hs), pl = strlen(ps);
        size_t total = b64url_len(hl) + 1 + b64url_len(pl) + 1 + b64url_len(MAC_LEN);
        /* A token we could not verify ourselves is of no use to anyone. */
        if (total > SL_JWT_MAX_LEN)
            rc = SL_ETOOBIG;
        else if ((tok = malloc(total + 1)) == NULL)
            rc = SL_ENOMEM;
    }
    if (rc == SL_OK) {
        size_t o = b64url_encode((const unsigned char *)hs, strlen(hs), tok);
        tok[o++] = '.';
        o += b64url_encode((const unsigned char *)ps, strlen(ps), tok + o);
        unsigned char mac[MAC_LEN];
        if (sl__hmac256(k->hk, tok, o, mac) < 0) {
            rc = SL_EINTERNAL;
            free(tok);
            tok = NULL;
        } else {
            tok[o++] = '.';
            o += b64url_encode(mac, sizeof mac, tok + o);
            tok[o] = '\0';
            OPENSSL_cleanse(mac, sizeof mac);
        }
    }
    free(hs);
    free(ps);
    *out = tok;
    return rc;
}

/* ---- inspection ------------------------------------------------------------------------------ */

/* The JSON text of one segment, or NULL when it is not base64url of a JSON object. */
static char *segment_json(const char *seg, size_t len, jscratch *s)
{
    size_t n;
    char *text = malloc(len / 4 * 3 + 3);
    if (text == NULL || sl__jwt_b64url_decode(seg, len, (unsigned char *)text, &n) < 0) {
        free(text);
        return NULL;
    }
    text[n] = '\0';
    memcpy(s->buf, text, n); /* the parser decodes in place */
    if (sl__jwt_json_parse(s, n, NULL, NULL, 0) < 0) {
        free(text);
        return NULL;
    }
    return text;
}

int sl_jwt_decode_unverified(const char *token, size_t len, char **header, char **payload)
{
    if (header != NULL)
        *header = NULL;
    if (payload != NULL)
        *payload = NULL;
    size_t d1, d2, n;
    if (token == NULL || header == NULL || payload == NULL || len == 0 || len > SL_JWT_MAX_LEN ||
        split3(token, len, &d1, &d2) < 0)
        return SL_ETOKEN;
    jscratch s;
    if (sl__jwt_b64url_decode(token + d2 + 1, len - d2 - 1, (unsigned char *)s.buf, &n) < 0)
        return SL_ETOKEN;
    if ((*header = segment_json(token, d1, &s)) == NULL)
        return SL_ETOKEN;
    if ((*payload = segment_json(token + d1 + 1, d2 - d1 - 1, &s)) == NULL) {
        free(*header);
        *header = NULL;
        return SL_ETOKEN;
    }
    return SL_OK;
}
