/* The ACL's API (sl_acl_grant, sl_acl_grant_deny, sl_acl_revoke, sl_acl_list): each change
 * authorised through the registry like any operation, kept within the caller's workspace
 * (principals qualified in, other workspaces' grants left out of listings), audited, and durable
 * before an in-process call returns. */
#include "api/channel_internal.h"
#include "api/ctx.h"
#include "core/wsid.h"
#include "store/kv.h"

#include <stdlib.h>
#include <string.h>

static void acl_committed(void *ud, int rc)
{
    *(int *)ud = rc;
}

/* An in-process context with its own store (sl_ctx_options.data_dir) commits an ACL change
 * before the call returns; a server's transport waits for it instead (sl__ctx_sync). */
static int acl_durable(sl_ctx *ctx, sl_status *st)
{
    if (ctx->kv == NULL)
        return SL_OK;
    int rc = SL_EINTERNAL;
    ctx->kv->ops->barrier(ctx->kv, acl_committed, &rc); /* no loop: commits here */
    return rc == SL_OK ? SL_OK
                       : sl_status_set(st, rc, "the ACL change could not be made durable: %s",
                                       sl_strerror(rc));
}

/* The ACL's key of `principal` named by who: qualified with who's workspace (qp:
 * SL__QPRINCIPAL_SIZE bytes). */
static const char *qualify_principal(const sl_identity *who, const char *principal, char *qp)
{
    return sl__ws_qualify(workspace_of(who), principal, qp, SL__QPRINCIPAL_SIZE) == SL_OK
               ? qp
               : principal;
}

/* An ACL listing keeps the grants of workspace ws only, under the caller's names (sorted order
 * is kept: entries of one workspace sort as their names do). */
static void keep_own_grants(const char *ws, sl_acl_entry *v, size_t *n)
{
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        if (!sl__ws_owns(ws, v[i].principal)) {
            free(v[i].principal);
            for (size_t k = 0; k < v[i].nchannels; k++)
                free(v[i].channels[k]);
            free(v[i].channels);
            for (size_t k = 0; k < v[i].ndeny; k++)
                free(v[i].deny[k]);
            free(v[i].deny);
            continue;
        }
        memmove(v[i].principal, shown(v[i].principal), strlen(shown(v[i].principal)) + 1);
        v[kept++] = v[i];
    }
    *n = kept;
}

int sl_acl_grant(sl_ctx *ctx, const sl_identity *who, const char *principal, sl_role role,
                 const char *const *patterns, size_t n, sl_status *st)
{
    return sl_acl_grant_deny(ctx, who, principal, role, patterns, n, NULL, 0, st);
}

int sl_acl_grant_deny(sl_ctx *ctx, const sl_identity *who, const char *principal, sl_role role,
                      const char *const *patterns, size_t n, const char *const *deny, size_t ndeny,
                      sl_status *st)
{
    if (principal == NULL || !sl_principal_valid(principal, strlen(principal)))
        return sl_status_set(st, SL_EINVAL, "invalid principal");
    int rc = sl__authorize_sync(ctx, who, SL_OP_ACL_GRANT, principal, st);
    if (rc != SL_OK)
        return rc;
    if (role == SL_ROLE_NONE)
        return sl_status_set(st, SL_EINVAL, "role must be read, write or admin");
    for (size_t i = 0; i < n; i++)
        if (patterns[i] == NULL || !sl_pattern_valid(patterns[i], strlen(patterns[i])))
            return sl_status_set(st, SL_EINVAL, "invalid channel pattern");
    for (size_t i = 0; i < ndeny; i++)
        if (deny[i] == NULL || !sl_pattern_valid(deny[i], strlen(deny[i])))
            return sl_status_set(st, SL_EINVAL, "invalid deny pattern");
    /* the deny patterns, comma-joined, in the record ("deny" left out when none) */
    size_t dlen = 1;
    for (size_t i = 0; i < ndeny; i++)
        dlen += strlen(deny[i]) + 1;
    char *dtext = ndeny ? calloc(1, dlen) : NULL;
    if (ndeny && dtext == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    for (size_t i = 0; i < ndeny; i++) {
        if (i)
            strcat(dtext, ",");
        strcat(dtext, deny[i]);
    }
    /* Written ahead of the change: an ACL change nobody could audit is not made. */
    rc = sl__audit(ctx, st, "acl.grant", "actor", principal_of(who), "principal", principal, "role",
                   sl_role_name(role), "deny", dtext, "workspace", audit_ws(who), NULL);
    free(dtext);
    if (rc != SL_OK)
        return rc;
    char qp[SL__QPRINCIPAL_SIZE]; /* grants are keyed by (workspace, principal) */
    const char *key = qualify_principal(who, principal, qp);
    rc = sl__acl_set_deny(ctx->acl, key, role, patterns, n, deny, ndeny);
    if (rc != SL_OK)
        return sl_status_set(st, rc, NULL);
    sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_ACL_CHANGED, .principal = key});
    return acl_durable(ctx, st);
}

int sl_acl_revoke(sl_ctx *ctx, const sl_identity *who, const char *principal, sl_status *st)
{
    if (principal == NULL || !sl_principal_valid(principal, strlen(principal)))
        return sl_status_set(st, SL_EINVAL, "invalid principal");
    int rc = sl__authorize_sync(ctx, who, SL_OP_ACL_REVOKE, principal, st);
    if (rc != SL_OK)
        return rc;
    char qp[SL__QPRINCIPAL_SIZE];
    const char *key = qualify_principal(who, principal, qp);
    if (!sl__acl_has(ctx->acl, key))
        return sl_status_set(st, SL_ENOENT, "no ACL entry for '%s'", principal);
    rc = sl__audit(ctx, st, "acl.revoke", "actor", principal_of(who), "principal", principal,
                   "workspace", audit_ws(who), NULL);
    if (rc != SL_OK)
        return rc;
    if ((rc = sl__acl_del(ctx->acl, key)) != SL_OK)
        return sl_status_set(st, rc, "the ACL change could not be staged: %s", sl_strerror(rc));
    sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_ACL_CHANGED, .principal = key, .removed = 1});
    return acl_durable(ctx, st);
}

int sl_acl_list(sl_ctx *ctx, const sl_identity *who, sl_acl_entry **out, size_t *n, sl_status *st)
{
    *out = NULL;
    *n = 0;
    int rc = sl__authorize_sync(ctx, who, SL_OP_ACL_LIST, NULL, st);
    if (rc != SL_OK)
        return rc;
    rc = sl__acl_list(ctx->acl, out, n);
    if (rc != SL_OK)
        return sl_status_set(st, rc, NULL);
    keep_own_grants(workspace_of(who), *out, n);
    return SL_OK;
}
