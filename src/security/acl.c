/* ACL storage. Each entry keeps its patterns twice: as the list the admin gave (for listing back)
 * and compiled into a pattern trie (for deciding). */
#include "security/acl.h"

#include "core/map.h"
#include "security/patset.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    sl_role role;
    char **patterns; /* NULL/0: all channels */
    size_t npatterns;
    sl__patset *set; /* NULL when all channels */
} entry;

struct sl__acl {
    sl__map *by_principal; /* principal -> entry* */
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

int sl__acl_set(sl__acl *acl, const char *principal, sl_role role, const char *const *patterns,
                size_t n)
{
    if (principal == NULL || !sl_principal_valid(principal, strlen(principal)) ||
        role == SL_ROLE_NONE)
        return SL_EINVAL;
    entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return SL_ENOMEM;
    e->role = role;
    int rc = SL_OK;
    if (n > 0) {
        e->patterns = calloc(n, sizeof *e->patterns);
        rc = e->patterns ? sl__patset_new(&e->set) : SL_ENOMEM;
        for (size_t i = 0; rc == SL_OK && i < n; i++) {
            rc = sl__patset_add(e->set, patterns[i]);
            if (rc == SL_OK && (e->patterns[i] = strdup(patterns[i])) == NULL)
                rc = SL_ENOMEM;
            if (rc == SL_OK)
                e->npatterns++;
        }
    }
    if (rc == SL_OK)
        rc = sl__map_put(acl->by_principal, principal, e, entry_free);
    if (rc != SL_OK)
        entry_free(e);
    return rc;
}

int sl__acl_has(const sl__acl *acl, const char *principal)
{
    return sl__map_get(acl->by_principal, principal) != NULL;
}

int sl__acl_del(sl__acl *acl, const char *principal)
{
    return sl__map_del(acl->by_principal, principal, entry_free) ? SL_OK : SL_ENOENT;
}

sl_role sl__acl_role(const sl__acl *acl, const char *principal, const char *channel)
{
    const entry *e = sl__map_get(acl->by_principal, principal);
    if (e == NULL)
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
    }
    free(e);
}
