/* The access-control routes of the HTTP API: the ACL (/acl: a principal's role, channel patterns
 * and deny patterns), the broker's roles per principal (/broker/principals), the invoke policy
 * (/policy/invoke: per principal pattern, kept under the caller's workspace) and POST
 * /authz/invalidate (the decision cache dropped). Each change is audited before it is made and
 * drops the cached decisions it affects; the router answers once the change is durable. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/authz.h>
#include <sluice/broker.h>

#include "api/ctx.h"
#include "security/invoke.h"
#include "security/workspace.h"
#include "server/params.h"
#include "server/routes.h"

int sl__h_acl_put(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                  sl__response *resp, sl_status *st)
{
    json_t *body;
    int rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char *role = NULL;
    const char **pats = NULL, **deny = NULL;
    size_t n = 0, ndeny = 0;
    if (sl__get_string(body, "role", &role, st) < 0 || sl_role_parse(role) == SL_ROLE_NONE)
        rc = sl__fail(st, SL_EINVAL, "role must be read, write or admin");
    if (rc == SL_OK)
        rc = sl__string_list(body, "channels", 100000, 0, sl__is_pattern, "channel patterns", &pats,
                             &n, st);
    /* deny patterns: win over every allow (docs/POLICY.md "Deny rules") */
    if (rc == SL_OK)
        rc = sl__string_list(body, "deny", 100000, 0, sl__is_pattern, "deny patterns", &deny,
                             &ndeny, st);
    if (rc == SL_OK)
        rc = sl_acl_grant_deny(r->ctx, who, principal, sl_role_parse(role), pats, n, deny, ndeny,
                               st);
    if (rc == SL_OK) {
        json_t *chans = json_object_get(body, "channels");
        json_t *dn = json_object_get(body, "deny");
        sl__response_json(resp, 200,
                          json_pack("{s:s, s:s, s:O, s:o}", "principal", principal, "role", role,
                                    "channels", json_is_array(chans) ? chans : json_null(), "deny",
                                    json_is_array(dn) ? json_incref(dn) : json_array()));
    }
    free(pats);
    free(deny);
    json_decref(body);
    return rc;
}

int sl__h_acl_del(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                  sl__response *resp, sl_status *st)
{
    int rc = sl_acl_revoke(r->ctx, who, principal, st);
    if (rc == SL_OK)
        sl__response_ok(resp);
    return rc;
}

int sl__h_acl_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                   sl__response *resp, sl_status *st)
{
    sl_acl_entry *e;
    size_t n;
    int rc = sl_acl_list(r->ctx, who, &e, &n, st);
    if (rc != SL_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *ch = json_array();
        for (size_t k = 0; k < e[i].nchannels; k++)
            json_array_append_new(ch, json_string(e[i].channels[k]));
        json_t *dn = json_array();
        for (size_t k = 0; k < e[i].ndeny; k++)
            json_array_append_new(dn, json_string(e[i].deny[k]));
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:o, s:o}", "principal", e[i].principal, "role",
                                        sl_role_name(e[i].role), "channels", ch, "deny", dn));
    }
    sl_acl_entries_free(e, n);
    sl__response_json(resp, 200, json_pack("{s:o}", "entries", arr));
    return SL_OK;
}

static int need_broker(sl__router *r, sl_status *st)
{
    return r->broker ? SL_OK
                     : sl__fail(st, SL_ENOENT, "the token broker is not enabled on this server");
}

/* Broker roles are keyed by (workspace, principal); qp: SL__QPRINCIPAL_SIZE bytes. */
static const char *broker_key(const sl_identity *who, const char *principal, char *qp)
{
    return sl__ws_qualify(who->workspace, principal, qp, SL__QPRINCIPAL_SIZE) == SL_OK ? qp
                                                                                       : principal;
}

static int roles_response(sl__router *r, const char *key, sl__response *resp)
{
    const char *principal = sl__ws_name(key); /* the caller's own name */
    const char *const *roles;
    size_t n = sl_broker_roles_of(r->broker, key, &roles);
    sl__response_json(resp, 200,
                      json_pack("{s:s, s:o}", "principal", principal, "roles",
                                sl__string_array((char *const *)roles, n)));
    return SL_OK;
}

int sl__h_broker_get(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                     sl__response *resp, sl_status *st)
{
    int rc = need_broker(r, st);
    char qp[SL__QPRINCIPAL_SIZE];
    return rc == SL_OK ? roles_response(r, broker_key(who, principal, qp), resp) : rc;
}

int sl__h_broker_put(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                     sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"roles", NULL};
    int rc = need_broker(r, st);
    json_t *body = NULL;
    if (rc == SL_OK)
        rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char **roles = NULL;
    size_t n = 0;
    if ((rc = sl__only_fields(body, fields, st)) == SL_OK &&
        !json_is_array(json_object_get(body, "roles")))
        rc = sl__fail(st, SL_EINVAL, "roles must be an array of role names ([] for none)");
    if (rc == SL_OK)
        rc = sl__string_list(body, "roles", 100, 0, sl__is_name, "role names", &roles, &n, st);
    if (rc == SL_OK) {
        char *list = json_dumps(json_object_get(body, "roles"), JSON_COMPACT);
        rc = sl__audit(r->ctx, st, "broker.assign", "actor", who->principal, "principal", principal,
                       "roles", list, "workspace", who->workspace[0] ? who->workspace : NULL, NULL);
        free(list);
    }
    char qp[SL__QPRINCIPAL_SIZE];
    const char *key = broker_key(who, principal, qp);
    if (rc == SL_OK && (rc = sl_broker_assign(r->broker, key, roles, n)) != SL_OK)
        sl_status_set(st, rc, NULL);
    if (rc == SL_OK)
        sl__authz_invalidate(r->ctx, "broker");
    if (rc == SL_OK)
        roles_response(r, key, resp);
    free(roles);
    json_decref(body);
    return rc;
}

int sl__h_broker_delete(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                        sl__response *resp, sl_status *st)
{
    int rc = need_broker(r, st);
    if (rc != SL_OK)
        return rc;
    const char *const *roles;
    char qp[SL__QPRINCIPAL_SIZE];
    const char *key = broker_key(who, principal, qp);
    if (sl_broker_roles_of(r->broker, key, &roles) == 0)
        return sl_status_set(st, SL_ENOENT, "'%s' has no broker roles", principal);
    rc = sl__audit(r->ctx, st, "broker.assign", "actor", who->principal, "principal", principal,
                   "roles", "[]", "workspace", who->workspace[0] ? who->workspace : NULL, NULL);
    if (rc == SL_OK)
        rc = sl_broker_assign(r->broker, key, NULL, 0);
    if (rc == SL_OK) {
        sl__authz_invalidate(r->ctx, "broker");
        sl__response_ok(resp);
    }
    return rc;
}

/* ---- the invoke policy ----------------------------------------------------------------------- */

/* Cached decisions go, and real-time sessions re-check their subscriptions (the ACL-changed
 * event makes every socket re-authorise; removed 0, so nobody is disconnected for it). */
static void policy_changed(sl_ctx *ctx, const char *pattern)
{
    sl__authz_invalidate(ctx, "invoke policy");
    sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_ACL_CHANGED, .principal = pattern});
}

/* A workspace's invoke policies are its own: the pattern a caller names is kept under its
 * workspace (core/wsid.h), where it matches that workspace's principals only, and a listing
 * shows the caller's workspace's policies under its own names. NULL: too long to qualify. */
static const char *policy_key(const sl_identity *who, const char *pattern, char *buf)
{
    return sl__ws_qualify(who->workspace, pattern, buf, SL__QPRINCIPAL_SIZE) == SL_OK ? buf : NULL;
}

int sl__h_policy_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                      sl__response *resp, sl_status *st)
{
    json_t *all = sl__invoke_list(r->ctx->invoke), *a = json_array();
    if (all == NULL || a == NULL) {
        json_decref(all);
        json_decref(a);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p)
    {
        const char *key = json_string_value(json_object_get(p, "principal"));
        if (key == NULL || !sl__ws_owns(who->workspace, key))
            continue;
        json_object_set_new(p, "principal", json_string(sl__ws_name(key)));
        json_array_append(a, p);
    }
    json_decref(all);
    sl__response_json(resp, 200, json_pack("{s:o}", "policies", a));
    return SL_OK;
}

int sl__h_policy_put(sl__router *r, const sl_identity *who, req_t *req, const char *pattern,
                     sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"allow", "deny", "audit", NULL};
    json_t *body;
    int rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char **allow = NULL, **deny = NULL;
    size_t nallow = 0, ndeny = 0;
    json_t *au = json_object_get(body, "audit");
    rc = sl__only_fields(body, fields, st);
    if (rc == SL_OK && au != NULL && !json_is_boolean(au))
        rc = sl__fail(st, SL_EINVAL, "audit must be true or false");
    if (rc == SL_OK)
        rc = sl__string_list(body, "allow", 1000, 0, NULL, "rules", &allow, &nallow, st);
    if (rc == SL_OK)
        rc = sl__string_list(body, "deny", 1000, 0, NULL, "rules", &deny, &ndeny, st);
    if (rc == SL_OK) {
        char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        rc = sl__audit(r->ctx, st, "policy.invoke.set", "actor", who->principal, "principal",
                       pattern, "policy", text, "workspace",
                       who->workspace[0] ? who->workspace : NULL, NULL);
        free(text);
    }
    char qbuf[SL__QPRINCIPAL_SIZE];
    const char *key = policy_key(who, pattern, qbuf);
    if (rc == SL_OK && key == NULL)
        rc = sl__fail(st, SL_EINVAL, "invalid principal pattern");
    if (rc == SL_OK)
        rc = sl__invoke_set(r->ctx->invoke, key, allow, nallow, deny, ndeny, json_is_true(au), st);
    if (rc == SL_OK) {
        policy_changed(r->ctx, key);
        json_t *a = json_object_get(body, "allow"), *d = json_object_get(body, "deny");
        sl__response_json(resp, 200,
                          json_pack("{s:s, s:o, s:o, s:b}", "principal", pattern, "allow",
                                    json_is_array(a) ? json_incref(a) : json_array(), "deny",
                                    json_is_array(d) ? json_incref(d) : json_array(), "audit",
                                    json_is_true(au)));
    }
    free(allow);
    free(deny);
    json_decref(body);
    return rc;
}

int sl__h_policy_delete(sl__router *r, const sl_identity *who, req_t *req, const char *pattern,
                        sl__response *resp, sl_status *st)
{
    char qbuf[SL__QPRINCIPAL_SIZE];
    const char *key = policy_key(who, pattern, qbuf);
    if (key == NULL)
        return sl__fail(st, SL_EINVAL, "invalid principal pattern");
    int rc = sl__audit(r->ctx, st, "policy.invoke.delete", "actor", who->principal, "principal",
                       pattern, "workspace", who->workspace[0] ? who->workspace : NULL, NULL);
    if (rc != SL_OK)
        return rc;
    rc = sl__invoke_del(r->ctx->invoke, key);
    if (rc == SL_ENOENT)
        return sl_status_set(st, rc, "no invoke policy for '%s'", pattern);
    if (rc != SL_OK)
        return sl_status_set(st, rc, "the policy change could not be staged: %s", sl_strerror(rc));
    policy_changed(r->ctx, key);
    sl__response_ok(resp);
    return SL_OK;
}

/* ---- the decision cache ---------------------------------------------------------------------- */

/* POST /authz/invalidate: every cached decision is dropped (the HTTP policy changed). Audited
 * first: an invalidation that cannot be recorded is not made. */
int sl__h_authz_invalidate(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                           sl__response *resp, sl_status *st)
{
    (void)req;
    (void)res;
    int rc = sl__audit(r->ctx, st, "authz.invalidate", "actor", who->principal, NULL);
    if (rc != SL_OK)
        return rc;
    sl__authz_invalidate(r->ctx, "admin");
    sl__response_json(resp, 200, json_pack("{s:s}", "status", "invalidated"));
    return SL_OK;
}
