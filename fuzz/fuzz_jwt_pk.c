/* Fuzz target: the public-key side of JWT (src/security/jwt.c): loading ES256 and EdDSA keys from
 * PEM, and verifying tokens signed with them. The first input byte picks what the rest is.
 *   0: a PEM text, offered as an ES256 key and as an EdDSA key. A key is one or the other, never
 *      both, and is accepted only from a PUBLIC KEY block.
 *   1, 2: "HEADER\nPAYLOAD" (or a payload alone under the target's default header), signed here
 *      with the target's own P-256 (1) or Ed25519 (2) private key, so that the verifier reaches the
 *      header rules, the signature check and the claims. Checked: the answer is SL_OK or one of
 *      the documented fixed messages; once accepted, the token with one signature byte changed is
 *      refused with "bad signature"; and the same header and payload under "alg":"HS256",
 *      MACed with the public key's PEM as the secret (the algorithm-confusion forgery), is never
 *      accepted. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/jwt.h>

#include "jwt_fuzz_util.h"

#define NOW 1700000000.0

static sl_jwt_keyring *kr;
static EVP_PKEY *ec, *ed;
static char *ec_pem, *ed_pem;
static size_t ec_pem_len, ed_pem_len;

static char *public_pem(EVP_PKEY *k, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    if (b == NULL || PEM_write_bio_PUBKEY(b, k) != 1)
        abort();
    long n = BIO_get_mem_data(b, &p);
    char *out = malloc((size_t)n + 1);
    if (out == NULL)
        abort();
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    BIO_free(b);
    return out;
}

static void once(void)
{
    if (kr != NULL)
        return;
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (ec == NULL || ed == NULL)
        abort();
    ec_pem = public_pem(ec, &ec_pem_len);
    ed_pem = public_pem(ed, &ed_pem_len);
    if (sl_jwt_keyring_new(&kr) != SL_OK ||
        sl_jwt_keyring_add_es256_pem(kr, "ec", ec_pem, ec_pem_len) != SL_OK ||
        sl_jwt_keyring_add_eddsa_pem(kr, "ed", ed_pem, ed_pem_len) != SL_OK)
        abort();
}

/* JWS signature of in with k: 64 bytes (ES256 as R||S). */
static void pk_sign(EVP_PKEY *k, const char *in, size_t n, unsigned char sig[64])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t len = sizeof der;
    int es = k == ec;
    if (c == NULL || EVP_DigestSignInit(c, NULL, es ? EVP_sha256() : NULL, NULL, k) != 1 ||
        EVP_DigestSign(c, es ? der : sig, es ? &len : &(size_t){64}, (const unsigned char *)in,
                       n) != 1)
        abort();
    EVP_MD_CTX_free(c);
    if (!es)
        return;
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (s == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) != 32)
        abort();
    ECDSA_SIG_free(s);
}

static void load_pem(const char *pem, size_t len)
{
    sl_jwt_keyring *k;
    if (sl_jwt_keyring_new(&k) != SL_OK)
        abort();
    int a = sl_jwt_keyring_add_es256_pem(k, "a", pem, len);
    int b = sl_jwt_keyring_add_eddsa_pem(k, "b", pem, len);
    if ((a != SL_OK && a != SL_EINVAL) || (b != SL_OK && b != SL_EINVAL))
        abort();
    if (a == SL_OK && b == SL_OK)
        abort(); /* one key, two algorithms */
    if (sl_jwt_keyring_size(k) != (size_t)(a == SL_OK) + (b == SL_OK))
        abort();
    static const char begin[] = "-----BEGIN PUBLIC KEY-----";
    if ((a == SL_OK || b == SL_OK) && memmem(pem, len, begin, sizeof begin - 1) == NULL)
        abort();
    sl_jwt_keyring_free(k);
}

static int verify(const char *tok, size_t len, sl_status *st)
{
    sl_identity id;
    sl_identity_init(&id);
    sl_status_clear(st);
    int rc = sl_jwt_verify(kr, tok, len, NULL, NOW, &id, st);
    fz_check_status(rc, st);
    if (rc == SL_OK &&
        (id.source != SL_SOURCE_JWT || !sl_principal_valid(id.principal, strlen(id.principal))))
        abort();
    sl_identity_clear(&id);
    return rc;
}

static void signed_token(int ed25519, const char *data, size_t size)
{
    const char *def =
        ed25519 ? "{\"alg\":\"EdDSA\",\"kid\":\"ed\"}" : "{\"alg\":\"ES256\",\"kid\":\"ec\"}";
    const char *hdr = def, *pay = data;
    size_t hl = strlen(def), pl = size;
    const char *nl = memchr(data, '\n', size);
    if (nl != NULL) {
        hdr = data;
        hl = (size_t)(nl - data);
        pay = nl + 1;
        pl = size - hl - 1;
    }
    size_t n;
    char *tok = fz_signing_input(hdr, hl, pay, pl, &n);
    unsigned char sig[64];
    pk_sign(ed25519 ? ed : ec, tok, n, sig);
    tok[n] = '.';
    size_t tl = n + 1 + fz_b64url(sig, 64, tok + n + 1);
    sl_status st;
    if (verify(tok, tl, &st) == SL_OK) {
        sig[(size ? (unsigned char)data[0] : 0) % 64] ^= 0x01;
        fz_b64url(sig, 64, tok + n + 1);
        if (verify(tok, tl, &st) == SL_OK || strcmp(st.message, "bad signature") != 0)
            abort();
    }
    free(tok);

    /* The same claims as HS256 MACed with the public key's PEM, under each kid. */
    static const char *const forged[] = {"{\"alg\":\"HS256\",\"kid\":\"ec\"}",
                                         "{\"alg\":\"HS256\",\"kid\":\"ed\"}",
                                         "{\"alg\":\"HS256\"}"};
    for (size_t f = 0; f < 3; f++) {
        tok = fz_signing_input(forged[f], strlen(forged[f]), pay, pl, &n);
        unsigned char mac[32];
        unsigned ml;
        const char *pem = f == 1 ? ed_pem : ec_pem;
        size_t pem_len = f == 1 ? ed_pem_len : ec_pem_len;
        if (HMAC(EVP_sha256(), pem, (int)pem_len, (unsigned char *)tok, n, mac, &ml) == NULL)
            abort();
        tok[n] = '.';
        tl = n + 1 + fz_b64url(mac, 32, tok + n + 1);
        if (verify(tok, tl, &st) == SL_OK)
            abort();
        free(tok);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    once();
    if (size == 0)
        return 0;
    const char *rest = (const char *)data + 1;
    switch (data[0] % 3) {
    case 0:
        load_pem(rest, size - 1);
        break;
    default:
        signed_token(data[0] % 3 == 2, rest, size - 1);
        break;
    }
    return 0;
}
