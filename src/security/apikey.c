/* API keys (docs/APIKEYS.md): key syntax, the store (records sorted by id so a presented key's id
 * finds its record by binary search) and its API, and the authenticator; the store file's text
 * format is apikey_text.c, and the file (atomic rewrites under a lock file, cheap reloads keyed on
 * the file's identity, size and mtime), the kv and other nodes' changes are apikey_persist.c. Only
 * SHA-256 of a secret is ever kept: secrets carry 260 random bits, so a slow password hash would
 * add cost without adding security. Every message here is fixed text or names a file, line, field
 * or public key id; none can contain a presented key or its secret.
 *
 * With a kv attached (sl_apikey_store_attach) the kv replaces the file: the file is imported once,
 * and every change is staged in the kv as one record per key, the file's own line format with a
 * version. A key deleted at runtime leaves a tombstone while the file may still name it, so that
 * re-importing the file at the next start cannot bring it back. */
#include <sluice/apikey.h>

#include "security/apikey_internal.h"
#include "core/wsid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* RFC 4648 base32, lowercase: no characters that need escaping anywhere (URLs, shells, JSON) and
 * none that a double-click selection stops at, so keys survive copy and paste whole. */
static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static const char E_MALFORMED[] = "malformed api key";
static const char E_UNKNOWN[] = "unknown api key";
static const char E_EXPIRED[] = "api key expired";

typedef sl__apikey_entry entry;

/* ---- keys ------------------------------------------------------------------------------------ */

static int in_alphabet(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

int sl_apikey_looks_like(const char *cred, size_t len)
{
    return cred != NULL && len >= SL_APIKEY_PREFIX_LEN &&
           memcmp(cred, SL_APIKEY_PREFIX, SL_APIKEY_PREFIX_LEN) == 0;
}

int sl_apikey_parse(const char *key, size_t len, char id[SL_APIKEY_ID_LEN + 1], const char **secret,
                    size_t *secret_len)
{
    if (key == NULL || len != SL_APIKEY_LEN || !sl_apikey_looks_like(key, len) ||
        key[SL_APIKEY_PREFIX_LEN + SL_APIKEY_ID_LEN] != '_')
        return SL_ETOKEN;
    const char *i = key + SL_APIKEY_PREFIX_LEN;
    const char *s = i + SL_APIKEY_ID_LEN + 1;
    for (size_t k = 0; k < SL_APIKEY_ID_LEN; k++)
        if (!in_alphabet((unsigned char)i[k]))
            return SL_ETOKEN;
    for (size_t k = 0; k < SL_APIKEY_SECRET_LEN; k++)
        if (!in_alphabet((unsigned char)s[k]))
            return SL_ETOKEN;
    if (id) {
        memcpy(id, i, SL_APIKEY_ID_LEN);
        id[SL_APIKEY_ID_LEN] = '\0';
    }
    if (secret)
        *secret = s;
    if (secret_len)
        *secret_len = SL_APIKEY_SECRET_LEN;
    return SL_OK;
}

int sl_apikey_id_valid(const char *id)
{
    if (id == NULL)
        return 0;
    for (size_t k = 0; k < SL_APIKEY_ID_LEN; k++)
        if (!in_alphabet((unsigned char)id[k])) /* also stops at a short string's NUL */
            return 0;
    return id[SL_APIKEY_ID_LEN] == '\0';
}

void sl_apikey_key_free(char *key)
{
    if (key == NULL)
        return;
    OPENSSL_cleanse(key, strlen(key));
    free(key);
}

/* Fills out with n characters of the alphabet, 5 uniform random bits each (256 % 32 == 0, so
 * masking a random byte has no bias). */
static int random_chars(char *out, size_t n)
{
    unsigned char raw[SL_APIKEY_SECRET_LEN];
    if (n > sizeof raw || RAND_bytes(raw, (int)n) != 1)
        return -1;
    for (size_t k = 0; k < n; k++)
        out[k] = alphabet[raw[k] & 31];
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

int sl__apikey_hash_secret(const char *secret, size_t len, unsigned char out[SL__APIKEY_HASH_LEN])
{
    unsigned int olen = 0;
    return EVP_Digest(secret, len, out, &olen, EVP_sha256(), NULL) == 1 &&
                   olen == SL__APIKEY_HASH_LEN
               ? 0
               : -1;
}

/* ---- records --------------------------------------------------------------------------------- */

void sl_apikey_record_clear(sl_apikey_record *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nchannels; i++)
        free(r->channels[i]);
    free(r->channels);
    memset(r, 0, sizeof *r);
}

void sl_apikey_records_free(sl_apikey_record *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        sl_apikey_record_clear(&r[i]);
    free(r);
}

int sl__apikey_strv_copy(char *const *src, size_t n, char ***out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    char **v = calloc(n, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((v[i] = strdup(src[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return -1;
        }
    }
    *out = v;
    return 0;
}

int sl__apikey_record_copy(sl_apikey_record *dst, const sl_apikey_record *src)
{
    *dst = *src;
    dst->channels = NULL;
    if (sl__apikey_strv_copy(src->channels, src->nchannels, &dst->channels) < 0) {
        dst->nchannels = 0;
        return -1;
    }
    return 0;
}

void sl__apikey_entries_free(entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        sl_apikey_record_clear(&e[i].rec);
    free(e);
}

int sl__apikey_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->rec.id, ((const entry *)b)->rec.id);
}

/* Index of id, or of where it would go (*found 0). */
size_t sl__apikey_find(const entry *e, size_t n, const char *id, int *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e[mid].rec.id, id);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* ---- the store ------------------------------------------------------------------------------- */

int sl_apikey_store_open(sl_apikey_store **out, const char *path, sl_status *st)
{
    if (out == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    *out = NULL;
    if (path != NULL && *path == '\0')
        return sl_status_set(st, SL_EINVAL, "empty api key store path");
    sl_apikey_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    if (path != NULL) {
        size_t pl = strlen(path);
        s->path = strdup(path);
        s->lock_path = malloc(pl + sizeof ".lock");
        if (s->path == NULL || s->lock_path == NULL) {
            sl_apikey_store_close(s);
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        memcpy(s->lock_path, path, pl);
        memcpy(s->lock_path + pl, ".lock", sizeof ".lock");
        int rc = sl__apikey_load_file(s, 1, st);
        if (rc != SL_OK) {
            sl_apikey_store_close(s);
            return rc;
        }
    }
    *out = s;
    return SL_OK;
}

void sl_apikey_store_close(sl_apikey_store *s)
{
    if (s == NULL)
        return;
    sl__apikey_entries_free(s->e, s->n);
    free(s->path);
    free(s->lock_path);
    free(s);
}

const char *sl_apikey_store_path(const sl_apikey_store *s)
{
    return s ? s->path : NULL;
}

int sl_apikey_reload(sl_apikey_store *s, sl_status *st)
{
    if (s == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    /* Attached: the file was imported once; the kv holds the keys now. */
    return s->path && s->kv == NULL ? sl__apikey_load_file(s, 0, st) : SL_OK;
}

int sl_apikey_store_load_text(sl_apikey_store *s, const char *text, size_t len, const char *name,
                              sl_status *st)
{
    if (s == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    entry *e;
    size_t n;
    int rc = sl__apikey_parse_text(text, len, name, &e, &n, st);
    if (rc == SL_OK)
        sl__apikey_replace_entries(s, e, n);
    return rc;
}

int sl_apikey_create(sl_apikey_store *s, const char *principal, sl_role role,
                     const char *const *patterns, size_t n, double expires_at, double now,
                     char **key_out, char id_out[SL_APIKEY_ID_LEN + 1], sl_status *st)
{
    return sl_apikey_create_ahead(s, principal, role, patterns, n, expires_at, now, NULL, NULL,
                                  key_out, id_out, st);
}

int sl_apikey_create_ahead(sl_apikey_store *s, const char *principal, sl_role role,
                           const char *const *patterns, size_t n, double expires_at, double now,
                           sl_apikey_ahead_fn ahead, void *ahead_ud, char **key_out,
                           char id_out[SL_APIKEY_ID_LEN + 1], sl_status *st)
{
    if (s == NULL || key_out == NULL || (patterns == NULL && n > 0))
        return sl_status_set(st, SL_EINVAL, NULL);
    *key_out = NULL;
    /* A workspace's key names "WS/principal" (core/wsid.h). */
    if (principal == NULL || !sl__stored_principal_valid(principal, strlen(principal)))
        return sl_status_set(st, SL_EINVAL, "invalid principal");
    if (role != SL_ROLE_NONE && role != SL_ROLE_READ && role != SL_ROLE_WRITE &&
        role != SL_ROLE_ADMIN)
        return sl_status_set(st, SL_EINVAL, "invalid role");
    if (n > SL_APIKEY_CHANNELS_MAX)
        return sl_status_set(st, SL_EINVAL, "at most %d channel patterns", SL_APIKEY_CHANNELS_MAX);
    for (size_t i = 0; i < n; i++)
        if (patterns[i] == NULL || !sl_pattern_valid(patterns[i], strlen(patterns[i])))
            return sl_status_set(st, SL_EINVAL, "invalid channel pattern (#%zu)", i + 1);
    if (!isfinite(now) || now < 0)
        return sl_status_set(st, SL_EINVAL, "invalid time");
    now = floor(now);
    if (!isfinite(expires_at) || expires_at < 0 || (expires_at > 0 && expires_at <= now))
        return sl_status_set(st, SL_EINVAL, "the expiry must be in the future");

    entry ne;
    memset(&ne, 0, sizeof ne);
    snprintf(ne.rec.principal, sizeof ne.rec.principal, "%s", principal);
    ne.rec.role = role;
    ne.rec.created_at = now;
    ne.rec.expires_at = expires_at;
    if (n > 0) {
        ne.rec.scoped = 1;
        if (sl__apikey_strv_copy((char *const *)patterns, n, &ne.rec.channels) < 0)
            return sl_status_set(st, SL_ENOMEM, NULL);
        ne.rec.nchannels = n;
    }
    char *key = malloc(SL_APIKEY_LEN + 1);
    if (key == NULL) {
        sl_apikey_record_clear(&ne.rec);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    char *kid = key + SL_APIKEY_PREFIX_LEN, *secret = kid + SL_APIKEY_ID_LEN + 1;
    memcpy(key, SL_APIKEY_PREFIX, SL_APIKEY_PREFIX_LEN);
    kid[SL_APIKEY_ID_LEN] = '_';
    key[SL_APIKEY_LEN] = '\0';
    if (random_chars(secret, SL_APIKEY_SECRET_LEN) < 0 ||
        sl__apikey_hash_secret(secret, SL_APIKEY_SECRET_LEN, ne.hash) < 0) {
        sl_apikey_key_free(key);
        sl_apikey_record_clear(&ne.rec);
        return sl_status_set(st, SL_EINTERNAL, "cannot generate a key: no randomness");
    }

    int lock, rc = sl__apikey_begin_write(s, &lock, st);
    entry *e = NULL;
    size_t at = 0;
    if (rc == SL_OK) {
        /* 60-bit ids rarely collide; when one does, draw again rather than fail. */
        int found = 1;
        for (int tries = 0; found && tries < 16; tries++) {
            if (random_chars(kid, SL_APIKEY_ID_LEN) < 0)
                break;
            memcpy(ne.rec.id, kid, SL_APIKEY_ID_LEN);
            ne.rec.id[SL_APIKEY_ID_LEN] = '\0';
            at = sl__apikey_find(s->e, s->n, ne.rec.id, &found);
        }
        if (found)
            rc = sl_status_set(st, SL_EINTERNAL, "cannot generate a key id");
    }
    /* Written ahead: whatever the hook records (the audit log) exists before the key does. */
    if (rc == SL_OK && ahead)
        rc = ahead(ahead_ud, ne.rec.id, st);
    if (rc == SL_OK && (e = malloc((s->n + 1) * sizeof *e)) == NULL)
        rc = sl_status_set(st, SL_ENOMEM, NULL);
    if (rc == SL_OK && s->kv != NULL && (rc = sl__apikey_stage_record(s->kv, &ne, st)) != SL_OK) {
        free(e);
        e = NULL;
    }
    if (rc == SL_OK) {
        if (s->n > 0) { /* s->e is NULL while empty, and memcpy must not see NULL */
            memcpy(e, s->e, at * sizeof *e);
            memcpy(e + at + 1, s->e + at, (s->n - at) * sizeof *e);
        }
        e[at] = ne;
        rc = sl__apikey_commit(s, e, s->n + 1, st);
        if (rc != SL_OK)
            free(e);
    }
    sl__apikey_end_write(lock);
    OPENSSL_cleanse(ne.hash, sizeof ne.hash);
    if (rc != SL_OK) {
        sl_apikey_record_clear(&ne.rec);
        sl_apikey_key_free(key);
        return rc;
    }
    if (id_out)
        memcpy(id_out, ne.rec.id, SL_APIKEY_ID_LEN + 1);
    *key_out = key;
    return SL_OK;
}

int sl_apikey_expire(sl_apikey_store *s, const char *id, double now, sl_status *st)
{
    /* now > 0: an expiry of 0 would mean "never". */
    if (s == NULL || !isfinite(now) || now <= 0)
        return sl_status_set(st, SL_EINVAL, NULL);
    if (!sl_apikey_id_valid(id))
        return sl_status_set(st, SL_EINVAL, "invalid api key id");
    int lock, found = 0, rc = sl__apikey_begin_write(s, &lock, st);
    size_t i = rc == SL_OK ? sl__apikey_find(s->e, s->n, id, &found) : 0;
    if (rc == SL_OK && !found)
        rc = sl_status_set(st, SL_ENOENT, "no api key '%s'", id);
    if (rc == SL_OK) {
        double old = s->e[i].rec.expires_at;
        if (old == 0 || old > now) {
            s->e[i].rec.expires_at = now;
            if (s->kv != NULL)
                rc = sl__apikey_stage_record(s->kv, &s->e[i], st);
            if (rc == SL_OK)
                rc = sl__apikey_commit(s, s->e, s->n, st);
            if (rc != SL_OK)
                s->e[i].rec.expires_at = old;
        }
    }
    sl__apikey_end_write(lock);
    return rc;
}

int sl_apikey_delete(sl_apikey_store *s, const char *id, sl_status *st)
{
    if (s == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    if (!sl_apikey_id_valid(id))
        return sl_status_set(st, SL_EINVAL, "invalid api key id");
    int lock, found = 0, rc = sl__apikey_begin_write(s, &lock, st);
    size_t i = rc == SL_OK ? sl__apikey_find(s->e, s->n, id, &found) : 0;
    if (rc == SL_OK && !found)
        rc = sl_status_set(st, SL_ENOENT, "no api key '%s'", id);
    entry *e = NULL;
    if (rc == SL_OK && s->n > 1 && (e = malloc((s->n - 1) * sizeof *e)) == NULL)
        rc = sl_status_set(st, SL_ENOMEM, NULL);
    if (rc == SL_OK && s->kv != NULL && (rc = sl__apikey_stage_delete(s, id, st)) != SL_OK) {
        free(e);
        e = NULL;
    }
    if (rc == SL_OK) {
        if (e) {
            memcpy(e, s->e, i * sizeof *e);
            memcpy(e + i, s->e + i + 1, (s->n - i - 1) * sizeof *e);
        }
        entry gone = s->e[i];
        rc = sl__apikey_commit(s, e, s->n - 1, st);
        if (rc == SL_OK)
            sl_apikey_record_clear(&gone.rec);
        else
            free(e);
    }
    sl__apikey_end_write(lock);
    return rc;
}

int sl_apikey_list(const sl_apikey_store *s, sl_apikey_record **out, size_t *n)
{
    if (s == NULL || out == NULL || n == NULL)
        return SL_EINVAL;
    *out = NULL;
    *n = 0;
    if (s->n == 0)
        return SL_OK;
    sl_apikey_record *r = calloc(s->n, sizeof *r);
    if (r == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        if (sl__apikey_record_copy(&r[i], &s->e[i].rec) < 0) {
            sl_apikey_records_free(r, i);
            return SL_ENOMEM;
        }
    }
    *out = r;
    *n = s->n;
    return SL_OK;
}

int sl_apikey_get(const sl_apikey_store *s, const char *id, sl_apikey_record *out)
{
    if (s == NULL || out == NULL || id == NULL)
        return SL_EINVAL;
    int found;
    size_t i = sl__apikey_find(s->e, s->n, id, &found);
    if (!found)
        return SL_ENOENT;
    return sl__apikey_record_copy(out, &s->e[i].rec) < 0 ? SL_ENOMEM : SL_OK;
}

/* ---- authentication -------------------------------------------------------------------------- */

int sl_apikey_authenticate(const sl_apikey_store *s, const char *key, size_t len, double now,
                           sl_identity *out, sl_status *st)
{
    if (s == NULL || out == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    char id[SL_APIKEY_ID_LEN + 1];
    const char *secret;
    size_t slen;
    if (sl_apikey_parse(key, len, id, &secret, &slen) != SL_OK)
        return sl_status_set(st, SL_ETOKEN, "%s", E_MALFORMED);
    unsigned char h[SL__APIKEY_HASH_LEN];
    if (sl__apikey_hash_secret(secret, slen, h) < 0)
        return sl_status_set(st, SL_EINTERNAL, NULL);
    int found;
    size_t i = sl__apikey_find(s->e, s->n, id, &found);
    /* Constant-time compare so response timing tells nothing about how much of a guess matched. */
    if (!found || CRYPTO_memcmp(h, s->e[i].hash, SL__APIKEY_HASH_LEN) != 0)
        return sl_status_set(st, SL_ETOKEN, "%s", E_UNKNOWN);
    const sl_apikey_record *r = &s->e[i].rec;
    if (r->expires_at > 0 && !(now < r->expires_at))
        return sl_status_set(st, SL_ETOKEN, "%s", E_EXPIRED);
    char **ch = NULL;
    if (sl__apikey_strv_copy(r->channels, r->nchannels, &ch) < 0)
        return sl_status_set(st, SL_ENOMEM, NULL);
    sl_identity_clear(out);
    /* A key of a workspace ("WS/principal") gives an identity of that workspace. */
    const char *name = sl__ws_name(r->principal);
    snprintf(out->principal, sizeof out->principal, "%s", name);
    if (name != r->principal)
        snprintf(out->workspace, sizeof out->workspace, "%.*s", (int)(name - r->principal - 1),
                 r->principal);
    out->source = SL_SOURCE_APIKEY;
    out->role = r->role;
    out->scoped = r->scoped;
    out->channels = ch;
    out->nchannels = r->nchannels;
    snprintf(out->token_id, sizeof out->token_id, "%s", r->id);
    out->issued_at = r->created_at;
    out->expires_at = r->expires_at;
    return SL_OK;
}

/* ---- the sl_authn adapter -------------------------------------------------------------------- */

typedef struct adapter {
    sl_authenticator base; /* first: the chain hands back &base */
    sl_apikey_store *store;
} adapter;

static void adapter_authenticate(sl_authenticator *a, const char *cred, size_t len, double now,
                                 sl_authn_cb cb, void *ud)
{
    adapter *ad = (adapter *)a;
    if (!sl_apikey_looks_like(cred, len)) {
        cb(ud, SL_ETOKEN, NULL, "not an api key");
        return;
    }
    /* Errors leave the last good records in force; whoever owns the store reports them. */
    sl_apikey_reload(ad->store, NULL);
    sl_identity who;
    sl_identity_init(&who);
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_apikey_authenticate(ad->store, cred, len, now, &who, &st);
    cb(ud, rc, rc == SL_OK ? &who : NULL, rc == SL_OK ? NULL : st.message);
    sl_identity_clear(&who);
}

static void adapter_free(sl_authenticator *a)
{
    free(a);
}

int sl_apikey_authenticator_new(sl_apikey_store *s, sl_authenticator **out)
{
    if (s == NULL || out == NULL)
        return SL_EINVAL;
    adapter *ad = calloc(1, sizeof *ad);
    if (ad == NULL)
        return SL_ENOMEM;
    ad->base.name = "api-key";
    ad->base.authenticate = adapter_authenticate;
    ad->base.free = adapter_free;
    ad->store = s;
    *out = &ad->base;
    return SL_OK;
}
