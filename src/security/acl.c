/* ACL storage. Each entry keeps its patterns twice: as the list the admin gave (for listing back)
 * and compiled into a pattern trie (for deciding). With a kv attached, every change is staged in
 * the kv in the same call (stored format: security/acl.h); memory changes first and is put back if
 * staging fails, because putting back an existing map key cannot fail while staging can. */
#include "security/acl.h"

#include "core/map.h"
#include "core/wsid.h"
#include "security/patset.h"
#include "security/secstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    sl_role role;
    char **patterns; /* NULL/0: all channels */
    size_t npatterns;
    sl__patset *set; /* NULL when all channels */
    char **deny;     /* channels denied whatever else allows them (NULL/0: none) */
    size_t ndeny;
    sl__patset *denyset; /* NULL when none */
} entry;

struct sl__acl {
    sl__map *by_principal; /* principal -> entry* */
    sl__kv *kv;            /* borrowed; NULL: memory only */
};

static void entry_free(void *p)
{
    entry *e = p;
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->npatterns; i++)
        free(e->patterns[i]);
    free(e->patterns);
    sl__patset_free(e->set);
    for (size_t i = 0; i < e->ndeny; i++)
        free(e->deny[i]);
    free(e->deny);
    sl__patset_free(e->denyset);
    free(e);
}

int sl__acl_new(sl__acl **out)
{
    sl__acl *acl = calloc(1, sizeof *acl);
    if (acl == NULL)
        return SL_ENOMEM;
    int rc = sl__map_new(&acl->by_principal);
    if (rc != SL_OK) {
        free(acl);
        return rc;
    }
    *out = acl;
    return SL_OK;
}

void sl__acl_free(sl__acl *acl)
{
    if (acl == NULL)
        return;
    sl__map_free(acl->by_principal, entry_free);
    free(acl);
}

/* patterns[0..n) compiled into *set and copied into *list (counted in *count). */
static int compile(const char *const *patterns, size_t n, char ***list, size_t *count,
                   sl__patset **set)
{
    if (n == 0)
        return SL_OK;
    *list = calloc(n, sizeof **list);
    int rc = *list ? sl__patset_new(set) : SL_ENOMEM;
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        rc = sl__patset_add(*set, patterns[i]);
        if (rc == SL_OK && ((*list)[i] = strdup(patterns[i])) == NULL)
            rc = SL_ENOMEM;
        if (rc == SL_OK)
            (*count)++;
    }
    return rc;
}

/* A compiled entry for role, patterns and deny patterns in *out. SL_EINVAL for a bad pattern. */
static int entry_new(sl_role role, const char *const *patterns, size_t n, const char *const *deny,
                     size_t ndeny, entry **out)
{
    entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return SL_ENOMEM;
    e->role = role;
    int rc = compile(patterns, n, &e->patterns, &e->npatterns, &e->set);
    if (rc == SL_OK)
        rc = compile(deny, ndeny, &e->deny, &e->ndeny, &e->denyset);
    if (rc != SL_OK) {
        entry_free(e);
        return rc;
    }
    *out = e;
    return SL_OK;
}

static int stage_put(sl__kv *kv, const char *principal, const entry *e)
{
    json_t *o = sl__secstore_object();
    int bad = o == NULL || json_object_set_new(o, "role", json_string(sl_role_name(e->role))) < 0;
    if (!bad && e->npatterns > 0) {
        json_t *a = json_array();
        bad = json_object_set_new(o, "channels", a) < 0;
        for (size_t i = 0; !bad && i < e->npatterns; i++)
            bad = json_array_append_new(a, json_string(e->patterns[i])) < 0;
    }
    if (!bad && e->ndeny > 0) {
        json_t *a = json_array();
        bad = json_object_set_new(o, "deny", a) < 0;
        for (size_t i = 0; !bad && i < e->ndeny; i++)
            bad = json_array_append_new(a, json_string(e->deny[i])) < 0;
    }
    int rc = bad ? SL_ENOMEM : sl__secstore_put(kv, SL__KV_ACL, principal, strlen(principal), o);
    json_decref(o);
    return rc;
}

int sl__acl_set(sl__acl *acl, const char *principal, sl_role role, const char *const *patterns,
                size_t n)
{
    return sl__acl_set_deny(acl, principal, role, patterns, n, NULL, 0);
}

int sl__acl_set_deny(sl__acl *acl, const char *principal, sl_role role, const char *const *patterns,
                     size_t n, const char *const *deny, size_t ndeny)
{
    if (principal == NULL || !sl__stored_principal_valid(principal, strlen(principal)) ||
        role == SL_ROLE_NONE)
        return SL_EINVAL;
    entry *e;
    int rc = entry_new(role, patterns, n, deny, ndeny, &e);
    if (rc != SL_OK)
        return rc;
    entry *old = sl__map_get(acl->by_principal, principal);
    rc = sl__map_put(acl->by_principal, principal, e, NULL);
    if (rc != SL_OK) {
        entry_free(e);
        return rc;
    }
    if (acl->kv != NULL && (rc = stage_put(acl->kv, principal, e)) != SL_OK) {
        if (old != NULL)
            sl__map_put(acl->by_principal, principal, old, NULL); /* an existing key: no failure */
        else
            sl__map_del(acl->by_principal, principal, NULL);
        entry_free(e);
        return rc;
    }
    entry_free(old);
    return SL_OK;
}

int sl__acl_has(const sl__acl *acl, const char *principal)
{
    return sl__map_get(acl->by_principal, principal) != NULL;
}

int sl__acl_del(sl__acl *acl, const char *principal)
{
    if (!sl__acl_has(acl, principal))
        return SL_ENOENT;
    if (acl->kv != NULL) {
        int rc = acl->kv->ops->del(acl->kv, SL__KV_ACL, principal, strlen(principal));
        if (rc != SL_OK)
            return rc; /* nothing changed: memory and kv still agree */
    }
    sl__map_del(acl->by_principal, principal, entry_free);
    return SL_OK;
}

/* ---- loading from the kv --------------------------------------------------------------------- */

/* The stored pattern list o[field] (absent: *n = 0) into *out (borrowing o's strings; free the
 * array). Stored without the field when empty: an empty list would be a second spelling. */
static int decode_patterns(json_t *o, const char *field, const char ***out, size_t *n, char *why,
                           size_t whysz)
{
    json_t *a = json_object_get(o, field);
    *n = json_array_size(a);
    if (a != NULL && (!json_is_array(a) || *n == 0)) {
        snprintf(why, whysz, "\"%s\" must be a non-empty array of patterns", field);
        return SL_EFORMAT;
    }
    if (*n == 0)
        return SL_OK;
    if ((*out = calloc(*n, sizeof **out)) == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < *n; i++) {
        json_t *p = json_array_get(a, i);
        (*out)[i] = json_string_value(p);
        if ((*out)[i] == NULL || strlen((*out)[i]) != json_string_length(p) ||
            !sl_pattern_valid((*out)[i], json_string_length(p))) {
            snprintf(why, whysz, "\"%s\"[%zu] is not a valid channel pattern", field, i);
            return SL_EFORMAT;
        }
    }
    return SL_OK;
}

/* One stored grant into an entry; NULL with why set when it does not decode. */
static int decode(const void *val, size_t vlen, entry **out, char *why, size_t whysz)
{
    json_t *o = sl__secstore_parse(val, vlen, why, whysz);
    if (o == NULL)
        return SL_EFORMAT;
    const char *k;
    json_t *v;
    int rc = SL_OK;
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "role") != 0 && strcmp(k, "channels") != 0 && strcmp(k, "deny") != 0) {
            snprintf(why, whysz, "unknown field");
            rc = SL_EFORMAT;
        }
    }
    const char *rn = json_string_value(json_object_get(o, "role"));
    sl_role role = rn ? sl_role_parse(rn) : SL_ROLE_NONE;
    if (rc == SL_OK && role == SL_ROLE_NONE) {
        snprintf(why, whysz, "\"role\" must be read, write or admin");
        rc = SL_EFORMAT;
    }
    size_t n = 0, ndeny = 0;
    const char **pats = NULL, **deny = NULL;
    if (rc == SL_OK)
        rc = decode_patterns(o, "channels", &pats, &n, why, whysz);
    /* "deny" came with deny rules; a record without it (older ones) denies nothing. */
    if (rc == SL_OK)
        rc = decode_patterns(o, "deny", &deny, &ndeny, why, whysz);
    if (rc == SL_OK) {
        rc = entry_new(role, pats, n, deny, ndeny, out);
        if (rc == SL_EINVAL) { /* the syntax check passed but the trie refused it */
            snprintf(why, whysz, "a channel pattern is refused");
            rc = SL_EFORMAT;
        }
    }
    free(pats);
    free(deny);
    json_decref(o);
    return rc;
}

static int decode_grant(const void *val, size_t vlen, void **out, char *why, size_t whysz)
{
    return decode(val, vlen, (entry **)out, why, whysz);
}

static int principal_ok(const char *p)
{
    return sl__stored_principal_valid(p, strlen(p));
}

int sl__acl_attach(sl__acl *acl, sl__kv *kv, sl_status *st)
{
    if (acl == NULL || kv == NULL || acl->kv != NULL)
        return sl_status_set(st, SL_EINVAL, "the ACL is already attached to a store");
    int rc = sl__secstore_load_map(kv, SL__KV_ACL, "ACL", principal_ok, decode_grant, entry_free,
                                   acl->by_principal, st);
    if (rc == SL_OK)
        acl->kv = kv;
    return rc;
}

sl__kv *sl__acl_kv(const sl__acl *acl)
{
    return acl->kv;
}

/* Same role and the same patterns in the same order: the grant as stored. */
static int same_grant(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->role != y->role || x->npatterns != y->npatterns || x->ndeny != y->ndeny)
        return 0;
    for (size_t i = 0; i < x->npatterns; i++)
        if (strcmp(x->patterns[i], y->patterns[i]) != 0)
            return 0;
    for (size_t i = 0; i < x->ndeny; i++)
        if (strcmp(x->deny[i], y->deny[i]) != 0)
            return 0;
    return 1;
}

int sl__acl_apply(sl__acl *acl, const void *key, size_t klen, const void *val, size_t vlen,
                  sl_status *st)
{
    char principal[SL__SECSTORE_KEY_MAX + 1];
    return sl__secstore_apply_map(acl->by_principal, SL__KV_ACL, principal_ok, decode_grant,
                                  entry_free, same_grant, key, klen, val, vlen, principal, st);
}

int sl__acl_apply_all(sl__acl *acl, const sl__secstore_entry *e, size_t n,
                      void (*changed)(void *ud, const char *principal, int removed), void *ud,
                      sl_status *st)
{
    return sl__secstore_apply_map_all(acl->by_principal, SL__KV_ACL, principal_ok, decode_grant,
                                      entry_free, same_grant, e, n, changed, ud, st);
}

/* A deny pattern of e matches channel; a global operation (channel NULL) is denied only by "**". */
static int entry_denies(const entry *e, const char *channel)
{
    if (e->denyset == NULL)
        return 0;
    return channel ? sl__patset_match(e->denyset, channel) : sl__patset_matches_all(e->denyset);
}

int sl__acl_denied(const sl__acl *acl, const char *principal, const char *channel)
{
    const entry *e = acl ? sl__map_get(acl->by_principal, principal) : NULL;
    return e != NULL && entry_denies(e, channel);
}

sl_role sl__acl_role(const sl__acl *acl, const char *principal, const char *channel)
{
    const entry *e = sl__map_get(acl->by_principal, principal);
    if (e == NULL)
        return SL_ROLE_NONE;
    if (entry_denies(e, channel))
        return SL_ROLE_NONE;
    if (e->set == NULL)
        return e->role;
    if (channel == NULL)
        return sl__patset_matches_all(e->set) ? e->role : SL_ROLE_NONE;
    return sl__patset_match(e->set, channel) ? e->role : SL_ROLE_NONE;
}

size_t sl__acl_size(const sl__acl *acl)
{
    return sl__map_size(acl->by_principal);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const sl_acl_entry *)a)->principal, ((const sl_acl_entry *)b)->principal);
}

typedef struct {
    sl_acl_entry *out;
    size_t n;
    int rc;
} list_state;

static int list_one(void *ud, const char *key, void *value)
{
    list_state *ls = ud;
    const entry *e = value;
    sl_acl_entry *o = &ls->out[ls->n];
    memset(o, 0, sizeof *o);
    o->principal = strdup(key);
    o->role = e->role;
    if (o->principal == NULL)
        goto oom;
    if (e->npatterns) {
        o->channels = calloc(e->npatterns, sizeof *o->channels);
        if (o->channels == NULL)
            goto oom;
        for (; o->nchannels < e->npatterns; o->nchannels++)
            if ((o->channels[o->nchannels] = strdup(e->patterns[o->nchannels])) == NULL)
                goto oom;
    }
    if (e->ndeny) {
        o->deny = calloc(e->ndeny, sizeof *o->deny);
        if (o->deny == NULL)
            goto oom;
        for (; o->ndeny < e->ndeny; o->ndeny++)
            if ((o->deny[o->ndeny] = strdup(e->deny[o->ndeny])) == NULL)
                goto oom;
    }
    ls->n++;
    return 0;
oom:
    ls->n++; /* so the partial entry is freed with the rest */
    ls->rc = SL_ENOMEM;
    return 1;
}

int sl__acl_list(const sl__acl *acl, sl_acl_entry **out, size_t *n)
{
    size_t total = sl__map_size(acl->by_principal);
    list_state ls = {calloc(total ? total : 1, sizeof(sl_acl_entry)), 0, SL_OK};
    if (ls.out == NULL)
        return SL_ENOMEM;
    sl__map_each(acl->by_principal, list_one, &ls);
    if (ls.rc != SL_OK) {
        sl_acl_entries_free(ls.out, ls.n);
        return ls.rc;
    }
    qsort(ls.out, ls.n, sizeof *ls.out, cmp_entry);
    *out = ls.out;
    *n = ls.n;
    return SL_OK;
}

void sl_acl_entries_free(sl_acl_entry *e, size_t n)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(e[i].principal);
        for (size_t k = 0; k < e[i].nchannels; k++)
            free(e[i].channels[k]);
        free(e[i].channels);
        for (size_t k = 0; k < e[i].ndeny; k++)
            free(e[i].deny[k]);
        free(e[i].deny);
    }
    free(e);
}
