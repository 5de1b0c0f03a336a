/* The keyring of HTTP Message Signatures (include/sluice/httpsig.h): keys by keyid, each with its
 * algorithm, key material (a keyed HMAC or a public key), principal, scope and the components its
 * signatures must cover; and the JSON key file that fills it, with secrets given inline, as
 * env:NAME or as file:PATH. Loading is strict: an unknown field, a duplicate keyid, a component
 * the verifier cannot build or a key that does not fit its algorithm refuses the whole file, with
 * a message that names the key by its position and id and never shows key material. */
#include <sluice/httpsig.h>

#include "security/httpsig.h"
#include "security/httpsig_keys.h"
#include "security/secretfile.h"
#include "security/sfv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define MAX_KEYS 4096
#define MAX_COMPONENTS 32

sl_httpsig_alg sl_httpsig_alg_parse(const char *s)
{
    if (s == NULL)
        return 0;
    if (!strcmp(s, "hmac-sha256"))
        return SL_HTTPSIG_HMAC_SHA256;
    if (!strcmp(s, "ed25519"))
        return SL_HTTPSIG_ED25519;
    if (!strcmp(s, "ecdsa-p256-sha256"))
        return SL_HTTPSIG_ECDSA_P256_SHA256;
    return 0;
}

const char *sl_httpsig_alg_name(sl_httpsig_alg a)
{
    switch (a) {
    case SL_HTTPSIG_HMAC_SHA256:
        return "hmac-sha256";
    case SL_HTTPSIG_ED25519:
        return "ed25519";
    case SL_HTTPSIG_ECDSA_P256_SHA256:
        return "ecdsa-p256-sha256";
    }
    return "unknown";
}

/* ---- the keyring ---------------------------------------------------------------------------- */

static void strv_free(const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)v[i]);
    free((void *)v);
}

static void key_clear(key *k)
{
    if (k->o.material) {
        OPENSSL_cleanse((char *)k->o.material, k->o.material_len);
        free((char *)k->o.material);
    }
    free((char *)k->o.keyid);
    free((char *)k->o.principal);
    strv_free(k->o.channels, k->o.nchannels);
    strv_free(k->o.components, k->o.ncomponents);
    EVP_PKEY_free(k->pkey);
    sl__hmac256_free(k->mac);
    memset(k, 0, sizeof *k);
}

int sl_httpsig_keyring_new(sl_httpsig_keyring **out)
{
    return (*out = calloc(1, sizeof **out)) ? SL_OK : SL_ENOMEM;
}

void sl_httpsig_keyring_free(sl_httpsig_keyring *kr)
{
    if (kr == NULL)
        return;
    for (size_t i = 0; i < kr->n; i++)
        key_clear(&kr->k[i]);
    free(kr->k);
    free(kr);
}

size_t sl_httpsig_keyring_size(const sl_httpsig_keyring *kr)
{
    return kr ? kr->n : 0;
}

const key *sl__httpsig_find_key(const sl_httpsig_keyring *kr, const char *keyid)
{
    for (size_t i = 0; i < kr->n; i++)
        if (!strcmp(kr->k[i].id, keyid))
            return &kr->k[i];
    return NULL;
}

/* keyids travel in a structured-field string and become part of Redis keys: printable ASCII. */
int sl__httpsig_keyid_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SL_HTTPSIG_KEYID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

static int strv_copy(const char *const *src, size_t n, const char *const **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    char **v = calloc(n, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((v[i] = strdup(src[i])) == NULL) {
            strv_free((const char *const *)v, i);
            return -1;
        }
    *out = (const char *const *)v;
    return 0;
}

static EVP_PKEY *load_public(sl_httpsig_alg alg, const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (pk == NULL)
        return NULL;
    int ok = alg == SL_HTTPSIG_ED25519 ? EVP_PKEY_is_a(pk, "ED25519")
                                       : EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_bits(pk) == 256;
    if (!ok) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

int sl_httpsig_keyring_add(sl_httpsig_keyring *kr, const sl_httpsig_key_opts *o, sl_status *st)
{
    if (kr == NULL || o == NULL)
        return sl_status_set(st, SL_EINVAL, "no key");
    if (!sl__httpsig_keyid_valid(o->keyid))
        return sl_status_set(st, SL_EINVAL,
                             "keyid must be 1..%d printable characters without '\"' or '\\'",
                             SL_HTTPSIG_KEYID_MAX);
    if (sl__httpsig_find_key(kr, o->keyid))
        return sl_status_set(st, SL_EEXIST, "keyid '%s' is given twice", o->keyid);
    if (kr->n == MAX_KEYS)
        return sl_status_set(st, SL_EINVAL, "more than %d signature keys", MAX_KEYS);
    if (o->principal == NULL || !sl_principal_valid(o->principal, strlen(o->principal)))
        return sl_status_set(st, SL_EINVAL, "key '%s': invalid principal", o->keyid);
    if (o->workspace[0] && !sl_workspace_valid(o->workspace, strlen(o->workspace)))
        return sl_status_set(st, SL_EINVAL, "key '%s': invalid workspace", o->keyid);
    if (o->role != SL_ROLE_NONE && o->role != SL_ROLE_READ && o->role != SL_ROLE_WRITE &&
        o->role != SL_ROLE_ADMIN)
        return sl_status_set(st, SL_EINVAL, "key '%s': invalid role", o->keyid);
    for (size_t i = 0; i < o->nchannels; i++)
        if (!sl_pattern_valid(o->channels[i], strlen(o->channels[i])))
            return sl_status_set(st, SL_EINVAL, "key '%s': invalid channel pattern", o->keyid);
    if (o->ncomponents > MAX_COMPONENTS)
        return sl_status_set(st, SL_EINVAL, "key '%s': too many components", o->keyid);
    for (size_t i = 0; i < o->ncomponents; i++)
        if (!sl__httpsig_component_valid(o->components[i]))
            return sl_status_set(st, SL_EINVAL, "key '%s': unsupported component '%.64s'", o->keyid,
                                 o->components[i]);
    if (o->material == NULL || o->material_len == 0)
        return sl_status_set(st, SL_EINVAL, "key '%s': no key material", o->keyid);
    key k;
    memset(&k, 0, sizeof k);
    switch (o->alg) {
    case SL_HTTPSIG_HMAC_SHA256:
        /* RFC 9421 section 3.3.3 asks for secrets at least as long as the hash's output. */
        if (o->material_len < 32)
            return sl_status_set(st, SL_EINVAL, "key '%s': an hmac-sha256 secret needs 32 bytes",
                                 o->keyid);
        break;
    case SL_HTTPSIG_ED25519:
    case SL_HTTPSIG_ECDSA_P256_SHA256:
        if ((k.pkey = load_public(o->alg, o->material, o->material_len)) == NULL)
            return sl_status_set(st, SL_EINVAL, "key '%s': not a PEM %s public key", o->keyid,
                                 sl_httpsig_alg_name(o->alg));
        break;
    default:
        return sl_status_set(st, SL_EINVAL, "key '%s': unknown algorithm", o->keyid);
    }
    k.o = *o;
    memcpy(k.id, o->keyid, strlen(o->keyid) + 1); /* fits: keyid_valid above */
    k.o.keyid = strdup(o->keyid);
    k.o.principal = strdup(o->principal);
    char *m = malloc(o->material_len + 1);
    if (m) {
        memcpy(m, o->material, o->material_len);
        m[o->material_len] = '\0';
    }
    k.o.material = m;
    if (m && o->alg == SL_HTTPSIG_HMAC_SHA256 &&
        sl__hmac256_new(&k.mac, m, o->material_len) != SL_OK)
        k.mac = NULL;
    k.o.channels = k.o.components = NULL;
    int bad = k.o.keyid == NULL || k.o.principal == NULL || m == NULL;
    if (!bad && strv_copy(o->channels, o->nchannels, &k.o.channels) < 0)
        bad = 1;
    if (!bad && strv_copy(o->components, o->ncomponents, &k.o.components) < 0) {
        k.o.ncomponents = 0;
        bad = 1;
    }
    if (!bad && kr->n == kr->cap) {
        size_t cap = kr->cap ? 2 * kr->cap : 8;
        key *nk = realloc(kr->k, cap * sizeof *nk);
        if (nk == NULL)
            bad = 1;
        else {
            kr->k = nk;
            kr->cap = cap;
        }
    }
    if (bad) {
        if (k.o.channels == NULL)
            k.o.nchannels = 0;
        if (k.o.components == NULL)
            k.o.ncomponents = 0;
        if (m == NULL)
            k.o.material_len = 0;
        key_clear(&k);
        return sl_status_set(st, SL_ENOMEM, "out of memory");
    }
    kr->k[kr->n++] = k;
    return SL_OK;
}

/* ---- the key file --------------------------------------------------------------------------- */

static int b64_decode(const char *s, size_t n, char **out, size_t *olen)
{
    /* The structured-field parser holds the one strict base64 decoder: reuse it. */
    if (n + 2 > SL__SFV_MAX_INPUT)
        return -1;
    char *buf = malloc(n + 3);
    if (buf == NULL)
        return -1;
    buf[0] = ':';
    memcpy(buf + 1, s, n);
    buf[n + 1] = ':';
    sl__sfv_item it;
    int rc = sl__sfv_parse_item(buf, n + 2, &it);
    OPENSSL_cleanse(buf, n + 2);
    free(buf);
    if (rc < 0)
        return -1;
    /* The decoded secret lives in the parse's memory: copied out, then wiped there. */
    *out = malloc(it.v.len + 1);
    if (*out) {
        memcpy(*out, it.v.s, it.v.len + 1);
        *olen = it.v.len;
    }
    OPENSSL_cleanse(it.v.s, it.v.len);
    sl__sfv_item_clear(&it);
    return *out ? 0 : -1;
}

/* The key material a reference names; *out malloc'd (the caller wipes and frees it). */
static int read_material(const char *ref, char **out, size_t *len, char *why, size_t whysz)
{
    *out = NULL;
    if (!strncmp(ref, "env:", 4)) {
        const char *v = getenv(ref + 4);
        if (v == NULL || *v == '\0') {
            snprintf(why, whysz, "environment variable %.64s is not set", ref + 4);
            return -1;
        }
        *len = strlen(v);
        *out = strdup(v);
    } else if (!strncmp(ref, "file:", 5)) {
        FILE *f = fopen(ref + 5, "rb");
        if (f == NULL) {
            snprintf(why, whysz, "cannot read %.200s", ref + 5);
            return -1;
        }
        char *buf = malloc(SL__SECRET_FILE_MAX + 2);
        size_t n = buf ? fread(buf, 1, SL__SECRET_FILE_MAX + 1, f) : 0;
        int err = buf == NULL || ferror(f);
        fclose(f);
        if (err || sl__secret_file_parse(buf, n, len) != SL_OK) {
            if (buf)
                OPENSSL_cleanse(buf, n);
            free(buf);
            snprintf(why, whysz, "cannot read %.200s (or larger than %d bytes)", ref + 5,
                     SL__SECRET_FILE_MAX);
            return -1;
        }
        OPENSSL_cleanse(buf + *len, n - *len);
        buf[*len] = '\0';
        *out = buf;
        return 0;
    } else if (!strncmp(ref, "inline:", 7)) {
        *len = strlen(ref + 7);
        *out = strdup(ref + 7);
    } else {
        snprintf(why, whysz, "\"key\" must be env:NAME, file:PATH or inline:TEXT");
        return -1;
    }
    if (*out == NULL) {
        snprintf(why, whysz, "out of memory");
        return -1;
    }
    return 0;
}

static int str_array(json_t *v, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (v == NULL)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > 1024)
        return -1;
    size_t k = json_array_size(v);
    if (k == 0)
        return 0;
    const char **a = calloc(k, sizeof *a);
    if (a == NULL)
        return -1;
    for (size_t i = 0; i < k; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
            free(a);
            return -1;
        }
        a[i] = json_string_value(s);
    }
    *out = a;
    *n = k;
    return 0;
}

static int load_one(sl_httpsig_keyring *kr, json_t *o, size_t idx, sl_status *st)
{
    static const char *const known[] = {"keyid",        "alg",      "key",        "principal",
                                        "role",         "channels", "components", "nonce",
                                        "key_encoding", "workspace"};
    char where[SL_HTTPSIG_KEYID_MAX + 16];
    snprintf(where, sizeof where, "key #%zu", idx + 1);
    if (!json_is_object(o))
        return sl_status_set(st, SL_ECONFIG, "%s: must be an object", where);
    const char *name;
    json_t *v;
    json_object_foreach(o, name, v)
    {
        size_t i = 0;
        while (i < sizeof known / sizeof *known && strcmp(known[i], name))
            i++;
        if (i == sizeof known / sizeof *known)
            return sl_status_set(st, SL_ECONFIG, "%s: unknown field \"%.32s\"", where, name);
    }
    sl_httpsig_key_opts ko;
    memset(&ko, 0, sizeof ko);
    ko.keyid = json_string_value(json_object_get(o, "keyid"));
    if (ko.keyid && sl__httpsig_keyid_valid(ko.keyid))
        snprintf(where, sizeof where, "key '%s'", ko.keyid);
    ko.alg = sl_httpsig_alg_parse(json_string_value(json_object_get(o, "alg")));
    if (ko.alg == 0)
        return sl_status_set(
            st, SL_ECONFIG, "%s: \"alg\" must be hmac-sha256, ed25519 or ecdsa-p256-sha256", where);
    ko.principal = json_string_value(json_object_get(o, "principal"));
    json_t *wsv = json_object_get(o, "workspace");
    if (wsv && (!json_is_string(wsv) ||
                !sl_workspace_valid(json_string_value(wsv), json_string_length(wsv))))
        return sl_status_set(st, SL_ECONFIG, "%s: \"workspace\" must be a workspace name", where);
    if (wsv)
        memcpy(ko.workspace, json_string_value(wsv), json_string_length(wsv) + 1);
    const char *role = json_string_value(json_object_get(o, "role"));
    if (json_object_get(o, "role") && (role == NULL || (ko.role = sl_role_parse(role)) == 0))
        return sl_status_set(st, SL_ECONFIG, "%s: \"role\" must be read, write or admin", where);
    json_t *nonce = json_object_get(o, "nonce");
    if (nonce && !json_is_boolean(nonce))
        return sl_status_set(st, SL_ECONFIG, "%s: \"nonce\" must be true or false", where);
    ko.nonce_optional = nonce && json_is_false(nonce);
    const char *enc = json_string_value(json_object_get(o, "key_encoding"));
    if (json_object_get(o, "key_encoding") &&
        (enc == NULL || (strcmp(enc, "raw") && strcmp(enc, "base64")) ||
         (!strcmp(enc, "base64") && ko.alg != SL_HTTPSIG_HMAC_SHA256)))
        return sl_status_set(
            st, SL_ECONFIG, "%s: \"key_encoding\" must be raw or base64 (hmac-sha256 only)", where);
    const char *ref = json_string_value(json_object_get(o, "key"));
    if (ref == NULL)
        return sl_status_set(st, SL_ECONFIG, "%s: \"key\" is required", where);
    const char **ch = NULL, **comp = NULL;
    if (str_array(json_object_get(o, "channels"), &ch, &ko.nchannels) < 0)
        return sl_status_set(st, SL_ECONFIG, "%s: \"channels\" must be an array of patterns",
                             where);
    if (str_array(json_object_get(o, "components"), &comp, &ko.ncomponents) < 0) {
        free(ch);
        return sl_status_set(st, SL_ECONFIG, "%s: \"components\" must be an array of names", where);
    }
    ko.channels = ch;
    ko.components = comp;
    ko.scoped = json_object_get(o, "channels") != NULL;
    char why[256];
    char *m = NULL;
    size_t mlen = 0;
    int rc = SL_OK;
    if (read_material(ref, &m, &mlen, why, sizeof why) < 0)
        rc = sl_status_set(st, SL_ECONFIG, "%s: %s", where, why);
    if (rc == SL_OK && enc && !strcmp(enc, "base64")) {
        char *raw;
        size_t rlen;
        if (b64_decode(m, mlen, &raw, &rlen) < 0)
            rc = sl_status_set(st, SL_ECONFIG, "%s: the key is not valid base64", where);
        else {
            OPENSSL_cleanse(m, mlen);
            free(m);
            m = raw;
            mlen = rlen;
        }
    }
    if (rc == SL_OK) {
        ko.material = m;
        ko.material_len = mlen;
        sl_status why2;
        sl_status_clear(&why2);
        if ((rc = sl_httpsig_keyring_add(kr, &ko, &why2)) != SL_OK)
            rc = sl_status_set(st, rc == SL_ENOMEM ? SL_ENOMEM : SL_ECONFIG, "%s%s%s",
                               strncmp(why2.message, "key '", 5) ? where : "",
                               strncmp(why2.message, "key '", 5) ? ": " : "", why2.message);
    }
    if (m) {
        OPENSSL_cleanse(m, mlen);
        free(m);
    }
    free(ch);
    free(comp);
    return rc;
}

int sl_httpsig_keyring_load(sl_httpsig_keyring *kr, const char *text, size_t len, sl_status *st)
{
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (root == NULL)
        return sl_status_set(st, SL_ECONFIG, "line %d: %.100s", e.line, e.text);
    json_t *keys = json_is_array(root) ? root : json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        json_decref(root);
        return sl_status_set(st, SL_ECONFIG, "expected {\"keys\": [...]}");
    }
    size_t before = kr->n;
    int rc = SL_OK;
    for (size_t i = 0; i < json_array_size(keys) && rc == SL_OK; i++)
        rc = load_one(kr, json_array_get(keys, i), i, st);
    json_decref(root);
    if (rc != SL_OK)
        while (kr->n > before)
            key_clear(&kr->k[--kr->n]);
    return rc;
}
