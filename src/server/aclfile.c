/* The ACL file: parsing (the config file's parser, restricted to [acl] sections),
 * the overlap check against the configuration, and applying a load to the context, revoking what
 * the previous load granted and this one does not (server/aclfile.h). */
#include "server/aclfile.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* The config parser takes every key and section; an ACL file takes [acl] sections only. A line
 * scan first, so that the refusal names the line. */
static int only_acl_sections(const char *text, size_t len, const char *filename, sl_status *st)
{
    int in_section = 0;
    size_t lineno = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        lineno++;
        while (p < e && is_space(*p))
            p++;
        if (p < e && *p == '[') {
            const char *q = p + 1;
            while (q < e && is_space(*q))
                q++;
            if ((size_t)(e - q) < 4 || memcmp(q, "acl", 3) || !is_space(q[3]))
                return sl_status_set(st, SL_ECONFIG,
                                     "%s:%zu: an ACL file holds [acl PRINCIPAL] sections only",
                                     filename, lineno);
            in_section = 1;
        } else if (p < e && *p != '#' && !in_section) {
            return sl_status_set(st, SL_ECONFIG,
                                 "%s:%zu: an ACL file holds [acl PRINCIPAL] sections only (no "
                                 "settings before them)",
                                 filename, lineno);
        }
        p = nl ? nl + 1 : end;
    }
    return SL_OK;
}

int sl__aclfile_parse(sl__config *out, const char *text, size_t len, const char *filename,
                      sl_status *st)
{
    int rc = only_acl_sections(text, len, filename, st);
    if (rc == SL_OK)
        rc = sl__config_parse(out, text, len, filename, st);
    if (rc != SL_OK)
        return rc;
    /* Belt and braces: nothing but grants came out of it. */
    if (out->nchannels || out->nroles || out->nprincipals || out->ndelegates || out->ninvokes)
        return sl_status_set(st, SL_ECONFIG, "%s: an ACL file holds [acl PRINCIPAL] sections only",
                             filename);
    for (size_t i = 0; i < out->ngrants; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(out->grants[i].principal, out->grants[j].principal))
                return sl_status_set(st, SL_ECONFIG, "%s: [acl %s] appears twice", filename,
                                     out->grants[i].principal);
    return SL_OK;
}

int sl__aclfile_check_overlap(const sl__config *file, const sl__config *cfg, const char *filename,
                              sl_status *st)
{
    for (size_t i = 0; i < file->ngrants; i++) {
        const char *p = file->grants[i].principal;
        for (size_t j = 0; j < cfg->ngrants; j++)
            if (!strcmp(p, cfg->grants[j].principal))
                return sl_status_set(st, SL_ECONFIG,
                                     "%s: [acl %s] is also in the configuration; grant each "
                                     "principal in one place",
                                     filename, p);
        for (size_t j = 0; j < cfg->nadmins; j++)
            if (!strcmp(p, cfg->admins[j]))
                return sl_status_set(st, SL_ECONFIG,
                                     "%s: [acl %s] is also an admin of the configuration; grant "
                                     "each principal in one place",
                                     filename, p);
    }
    return SL_OK;
}

void sl__aclfile_state_free(sl__aclfile_state *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->principals[i]);
    free(s->principals);
    s->principals = NULL;
    s->n = 0;
}

static int same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]))
            return 0;
    return 1;
}

/* The grant the ACL holds for principal already is the file's: nothing to do (no audit record, no
 * socket re-check). */
static int unchanged(const sl_acl_entry *e, size_t n, const sl__cfg_grant *g)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].principal, g->principal))
            return e[i].role == g->role &&
                   same_list(e[i].channels, e[i].nchannels, g->patterns, g->npatterns) &&
                   same_list(e[i].deny, e[i].ndeny, g->deny, g->ndeny);
    return 0;
}

static int named(const sl__config *file, const char *principal)
{
    for (size_t i = 0; i < file->ngrants; i++)
        if (!strcmp(file->grants[i].principal, principal))
            return 1;
    return 0;
}

/* *state becomes the principals of file, plus (keep_old) those it named before. */
static int remember(sl__aclfile_state *state, const sl__config *file, int keep_old)
{
    size_t n = (keep_old ? state->n : 0) + file->ngrants;
    char **p = calloc(n ? n : 1, sizeof *p);
    if (p == NULL)
        return SL_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < file->ngrants; i++)
        if ((p[k++] = strdup(file->grants[i].principal)) == NULL)
            goto nomem;
    for (size_t i = 0; keep_old && i < state->n; i++)
        if (!named(file, state->principals[i]) && (p[k++] = strdup(state->principals[i])) == NULL)
            goto nomem;
    sl__aclfile_state_free(state);
    state->principals = p;
    state->n = k;
    return SL_OK;
nomem:
    for (size_t i = 0; i < k; i++)
        free(p[i]);
    free(p);
    return SL_ENOMEM;
}

int sl__aclfile_apply(sl_ctx *ctx, const sl__config *file, sl__aclfile_state *state,
                      size_t *changed, size_t *removed, sl_status *st)
{
    size_t nchanged = 0, nremoved = 0, nentries = 0;
    sl_acl_entry *entries = NULL;
    int rc = sl_acl_list(ctx, NULL, &entries, &nentries, st);
    for (size_t i = 0; rc == SL_OK && i < file->ngrants; i++) {
        const sl__cfg_grant *g = &file->grants[i];
        if (unchanged(entries, nentries, g))
            continue;
        rc = sl_acl_grant_deny(ctx, NULL, g->principal, g->role, (const char *const *)g->patterns,
                               g->npatterns, (const char *const *)g->deny, g->ndeny, st);
        nchanged += rc == SL_OK;
    }
    for (size_t i = 0; rc == SL_OK && i < state->n; i++) {
        if (named(file, state->principals[i]))
            continue;
        rc = sl_acl_revoke(ctx, NULL, state->principals[i], st);
        if (rc == SL_ENOENT) /* revoked over HTTP meanwhile: gone either way */
            rc = SL_OK;
        else
            nremoved += rc == SL_OK;
    }
    sl_acl_entries_free(entries, nentries);
    int mrc = remember(state, file, rc != SL_OK);
    if (rc == SL_OK && mrc != SL_OK)
        rc = sl_status_set(st, mrc, NULL);
    if (changed)
        *changed = nchanged;
    if (removed)
        *removed = nremoved;
    return rc;
}

int sl__aclfile_state_encode(const sl__aclfile_state *s, char **out, size_t *len)
{
    json_t *list = json_array(),
           *o = list ? json_pack("{s:i,s:o}", "v", 1, "principals", list) : NULL;
    for (size_t i = 0; o && i < s->n; i++)
        if (json_array_append_new(list, json_string(s->principals[i])) != 0) {
            json_decref(o);
            o = NULL;
        }
    *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (*out == NULL)
        return SL_ENOMEM;
    *len = strlen(*out);
    return SL_OK;
}

int sl__aclfile_state_decode(sl__aclfile_state *s, const void *val, size_t vlen, sl_status *st)
{
    json_error_t err;
    json_t *o = json_loadb(val, vlen, JSON_REJECT_DUPLICATES, &err), *list;
    if (o == NULL || !json_is_object(o) || json_integer_value(json_object_get(o, "v")) != 1 ||
        !json_is_array(list = json_object_get(o, "principals"))) {
        json_decref(o);
        return sl_status_set(st, SL_EFORMAT, "table meta, key %s: not a version 1 record",
                             SL__ACLFILE_KV_KEY);
    }
    size_t n = json_array_size(list);
    sl__aclfile_state fresh = {.principals = calloc(n ? n : 1, sizeof(char *))};
    int rc = fresh.principals ? SL_OK : sl_status_set(st, SL_ENOMEM, NULL);
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        const char *p = json_string_value(json_array_get(list, i));
        if (p == NULL || !sl_principal_valid(p, strlen(p)))
            rc = sl_status_set(st, SL_EFORMAT, "table meta, key %s: an entry is not a principal",
                               SL__ACLFILE_KV_KEY);
        else if ((fresh.principals[fresh.n++] = strdup(p)) == NULL)
            rc = sl_status_set(st, SL_ENOMEM, NULL);
    }
    json_decref(o);
    if (rc != SL_OK) {
        sl__aclfile_state_free(&fresh);
        return rc;
    }
    sl__aclfile_state_free(s);
    *s = fresh;
    return SL_OK;
}

void sl__aclfile_state_forget(sl__aclfile_state *s, const sl__config *cfg)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        int granted = 0;
        for (size_t j = 0; !granted && j < cfg->ngrants; j++)
            granted = !strcmp(s->principals[i], cfg->grants[j].principal);
        for (size_t j = 0; !granted && j < cfg->nadmins; j++)
            granted = !strcmp(s->principals[i], cfg->admins[j]);
        if (granted)
            free(s->principals[i]);
        else
            s->principals[k++] = s->principals[i];
    }
    s->n = k;
}
