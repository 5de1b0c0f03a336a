/* Fuzz target: JWT verification (src/security/jwt.c) with a keyring of two HS256 keys (the default
 * one and "k2"). The input is tried twice. As a token, as it comes: rejected or accepted without
 * crashing. As a header and a payload to sign ("HEADER\nPAYLOAD", or a payload alone under
 * {"alg":"HS256","typ":"JWT"}): the target signs them with each of its keys, so the verifier gets
 * past the signature to the header rules and the claims parser, under default options and under
 * strict ones (audience, issuer, no leeway, exp optional). Checked every time: the answer is
 * SL_OK or one of the documented fixed messages (so a status message never contains input
 * bytes); an accepted token's identity is the payload's "sub" as jansson reads it, valid, with
 * every channel a valid pattern; and once accepted, the same token with one byte of its signature
 * changed, or with a payload one byte longer, is refused with "bad signature". */
#include <jansson.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/jwt.h>

#include "jwt_fuzz_util.h"

#define NOW 1700000000.0
static const char *const secrets[2] = {"0123456789abcdef0123456789abcdef",
                                       "fedcba9876543210fedcba9876543210"};

static sl_jwt_keyring *kr;

static int verify(const char *tok, size_t len, const sl_jwt_verify_opts *o, sl_identity *id)
{
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_jwt_verify(kr, tok, len, o, NOW, id, &st);
    fz_check_status(rc, &st);
    if (rc != SL_OK && (id->principal[0] != '\0' || id->nchannels != 0))
        abort(); /* "on failure it is left empty" */
    /* Tokens are typed: never both a bearer token and a subscription token; a subscription token
     * names a valid channel. */
    sl_identity sub;
    sl_identity_init(&sub);
    char channel[SL_CHANNEL_ID_MAX + 1];
    int src = sl_jwt_verify_subscription(kr, tok, len, o, NOW, &sub, channel, &st);
    fz_check_status(src, &st);
    if (src == SL_OK &&
        (rc == SL_OK || !sl_channel_id_valid(channel, strlen(channel)) || sub.expires_at <= 0))
        abort();
    sl_identity_clear(&sub);
    return rc;
}

static size_t sign(const char *in, size_t n, int key, char *out)
{
    unsigned char mac[32];
    unsigned ml = 0;
    if (HMAC(EVP_sha256(), secrets[key], 32, (const unsigned char *)in, n, mac, &ml) == NULL ||
        ml != 32)
        abort();
    memcpy(out, in, n);
    out[n] = '.';
    return n + 1 + fz_b64url(mac, 32, out + n + 1);
}

static void check_identity(const sl_identity *id, const char *payload, size_t len)
{
    json_t *j = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *sub = json_object_get(j, "sub");
    if (!json_is_string(sub) || strcmp(json_string_value(sub), id->principal) != 0 ||
        !sl_principal_valid(id->principal, strlen(id->principal)) || id->source != SL_SOURCE_JWT)
        abort();
    for (size_t i = 0; i < id->nchannels; i++)
        if (!sl_pattern_valid(id->channels[i], strlen(id->channels[i])))
            abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (kr == NULL) {
        if (sl_jwt_keyring_new(&kr) != SL_OK ||
            sl_jwt_keyring_add_hs256(kr, NULL, secrets[0], 32) != SL_OK ||
            sl_jwt_keyring_add_hs256(kr, "k2", secrets[1], 32) != SL_OK)
            abort();
    }
    sl_jwt_verify_opts def, strict;
    sl_jwt_verify_opts_init(&def);
    sl_jwt_verify_opts_init(&strict);
    strict.audience = "sluice";
    strict.issuer = "https://idp.example";
    strict.leeway = 0;
    strict.exp_optional = 1;
    sl_identity id;
    sl_identity_init(&id);

    /* 1. The input as a token. */
    verify((const char *)data, size, &def, &id);
    sl_identity_clear(&id);
    char *h = NULL, *p = NULL;
    if (sl_jwt_decode_unverified((const char *)data, size, &h, &p) == SL_OK) {
        free(h);
        free(p);
    }

    /* 2. The input as header and payload, signed. */
    static const char def_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const char *hdr = def_header, *pay = (const char *)data;
    size_t hl = sizeof def_header - 1, pl = size;
    const char *nl = memchr(data, '\n', size);
    if (nl != NULL) {
        hdr = (const char *)data;
        hl = (size_t)(nl - hdr);
        pay = nl + 1;
        pl = size - hl - 1;
    }
    size_t in_len;
    char *in = fz_signing_input(hdr, hl, pay, pl, &in_len);
    char *tok = malloc(in_len + 128), *bad = malloc(in_len + 128);
    if (tok == NULL || bad == NULL)
        abort();
    for (int key = 0; key < 2; key++) {
        size_t tl = sign(in, in_len, key, tok);
        for (int strictly = 0; strictly < 2; strictly++) {
            if (verify(tok, tl, strictly ? &strict : &def, &id) != SL_OK)
                continue;
            check_identity(&id, pay, pl);
            sl_identity_clear(&id);
            /* One signature byte changed: the last character carries only 4 bits of the MAC, so
             * change one of the first 42 (each a full 6 bits). */
            size_t sig = in_len + 1;
            memcpy(bad, tok, tl);
            size_t at = sig + (size ? data[size - 1] : 0) % 42;
            bad[at] = bad[at] == 'A' ? 'B' : 'A';
            sl_status st;
            if (sl_jwt_verify(kr, bad, tl, strictly ? &strict : &def, NOW, &id, &st) == SL_OK ||
                strcmp(st.message, "bad signature") != 0)
                abort();
            /* The payload one byte longer, old signature. */
            size_t ml;
            char *more = malloc(pl + 1);
            if (more == NULL)
                abort();
            memcpy(more, pay, pl);
            more[pl] = ' ';
            char *in2 = fz_signing_input(hdr, hl, more, pl + 1, &ml);
            memcpy(in2 + ml, tok + in_len, tl - in_len);
            if (ml + tl - in_len <= SL_JWT_MAX_LEN &&
                (sl_jwt_verify(kr, in2, ml + tl - in_len, strictly ? &strict : &def, NOW, &id,
                               &st) == SL_OK ||
                 strcmp(st.message, "bad signature") != 0))
                abort();
            free(in2);
            free(more);
        }
    }
    sl_identity_clear(&id);
    free(in);
    free(tok);
    free(bad);
    return 0;
}
