/* The API key routes of the HTTP API (/apikeys): create a key for a principal of the caller's
 * workspace (its record audited before the key exists; the key itself is shown once), list the
 * workspace's keys, expire or delete one (audited first). Keys live in the router's API key store
 * (sluice/apikey.h); without one these routes answer 404. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/apikey.h>

#include "api/ctx.h"
#include "security/workspace.h"
#include "server/params.h"
#include "server/routes.h"

static json_t *apikey_json(const sl_apikey_record *k, double now)
{
    /* A workspace's key shows its principal under the caller's own name. */
    json_t *o = json_pack("{s:s, s:s, s:f, s:f, s:b}", "id", k->id, "principal",
                          sl__ws_name(k->principal), "created_at", k->created_at, "expires_at",
                          k->expires_at, "expired", k->expires_at > 0 && k->expires_at <= now);
    if (o && k->role != SL_ROLE_NONE)
        json_object_set_new(o, "role", json_string(sl_role_name(k->role)));
    if (o && k->scoped)
        json_object_set_new(o, "channels", sl__string_array(k->channels, k->nchannels));
    return o;
}

static int need_apikeys(sl__router *r, sl_status *st)
{
    return r->apikeys ? SL_OK : sl__fail(st, SL_ENOENT, "API keys are not enabled on this server");
}

typedef struct apikey_audit {
    sl__router *r;
    const char *actor, *principal;
    const char *workspace; /* NULL for the default workspace */
} apikey_audit;

/* A key nobody could audit is never made: its record is written before the key. */
static int audit_apikey_create(void *ud, const char *id, sl_status *st)
{
    apikey_audit *a = ud;
    return sl__audit(a->r->ctx, st, "apikey.create", "actor", a->actor, "id", id, "principal",
                     a->principal, "workspace", a->workspace, NULL);
}

int sl__h_apikey_create(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                        sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"principal",  "role",      "channels",
                                         "expires_in", "workspace", NULL};
    int rc = need_apikeys(r, st);
    json_t *body = NULL;
    if (rc == SL_OK)
        rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char *principal = NULL, *role = NULL;
    const char **pats = NULL;
    size_t n = 0;
    double expires_in = 0;
    if ((rc = sl__only_fields(body, fields, st)) == SL_OK &&
        (sl__get_string(body, "principal", &principal, st) < 0 || principal == NULL ||
         !sl_principal_valid(principal, strlen(principal))))
        rc = sl__fail(st, SL_EINVAL, "principal must be a principal id");
    if (rc == SL_OK && (sl__get_string(body, "role", &role, st) < 0 ||
                        (role && sl_role_parse(role) == SL_ROLE_NONE)))
        rc = sl__fail(st, SL_EINVAL, "role must be read, write or admin");
    if (rc == SL_OK)
        rc = sl__string_list(body, "channels", SL__MAX_TOKEN_CHANNELS, 0, sl__is_pattern,
                             "channel patterns", &pats, &n, st);
    if (rc == SL_OK)
        rc = sl__get_ttl(body, "expires_in", &expires_in, st);
    /* A key belongs to the caller's workspace ("workspace" may only repeat it; an
     * operator addresses another one with Sluice-Workspace). */
    const char *ws = NULL;
    char qp[SL__QPRINCIPAL_SIZE];
    if (rc == SL_OK &&
        (sl__get_string(body, "workspace", &ws, st) < 0 || (ws && strcmp(ws, who->workspace) != 0)))
        rc = sl__fail(st, SL_EFORBIDDEN, "a key can only be made in the caller's own workspace");
    if (rc == SL_OK &&
        (sl__ws_qualify(who->workspace, principal, qp, SL_PRINCIPAL_MAX + 1) != SL_OK))
        rc = sl__fail(st, SL_EINVAL, "principal too long for this workspace");
    double now = sl_ctx_now(r->ctx);
    char *key = NULL, id[SL_APIKEY_ID_LEN + 1];
    apikey_audit audit = {r, who->principal, principal, who->workspace[0] ? who->workspace : NULL};
    if (rc == SL_OK)
        rc = sl_apikey_create_ahead(r->apikeys, qp, sl_role_parse(role), pats, pats ? n : 0,
                                    expires_in > 0 ? now + expires_in : 0, now, audit_apikey_create,
                                    &audit, &key, id, st);
    if (rc == SL_OK)
        sl__response_json(
            resp, 201, json_pack("{s:s, s:s, s:s}", "key", key, "id", id, "principal", principal));
    sl_apikey_key_free(key);
    free(pats);
    json_decref(body);
    return rc;
}

int sl__h_apikey_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                      sl__response *resp, sl_status *st)
{
    int rc = need_apikeys(r, st);
    if (rc != SL_OK)
        return rc;
    sl_apikey_reload(r->apikeys, st);
    sl_apikey_record *recs;
    size_t n;
    if ((rc = sl_apikey_list(r->apikeys, &recs, &n)) != SL_OK)
        return sl_status_set(st, rc, NULL);
    json_t *arr = json_array();
    double now = sl_ctx_now(r->ctx);
    for (size_t i = 0; i < n; i++)
        if (sl__ws_owns(who->workspace, recs[i].principal)) /* its own workspace's */
            json_array_append_new(arr, apikey_json(&recs[i], now));
    sl_apikey_records_free(recs, n);
    sl__response_json(resp, 200, json_pack("{s:o}", "keys", arr));
    return SL_OK;
}

static int apikey_change(sl__router *r, const sl_identity *who, const char *id, int expire,
                         sl__response *resp, sl_status *st)
{
    int rc = need_apikeys(r, st);
    if (rc != SL_OK)
        return rc;
    sl_apikey_record rec;
    if (!sl_apikey_id_valid(id) || sl_apikey_get(r->apikeys, id, &rec) != SL_OK)
        return sl__fail(st, SL_ENOENT, "no such API key");
    int theirs = !sl__ws_owns(who->workspace, rec.principal); /* another workspace's */
    sl_apikey_record_clear(&rec);
    if (theirs)
        return sl__fail(st, SL_ENOENT, "no such API key");
    rc = sl__audit(r->ctx, st, expire ? "apikey.expire" : "apikey.delete", "actor", who->principal,
                   "id", id, NULL);
    if (rc == SL_OK)
        rc = expire ? sl_apikey_expire(r->apikeys, id, sl_ctx_now(r->ctx), st)
                    : sl_apikey_delete(r->apikeys, id, st);
    if (rc == SL_OK)
        sl__response_ok(resp);
    return rc;
}

int sl__h_apikey_expire(sl__router *r, const sl_identity *who, req_t *req, const char *id,
                        sl__response *resp, sl_status *st)
{
    return apikey_change(r, who, id, 1, resp, st);
}

int sl__h_apikey_delete(sl__router *r, const sl_identity *who, req_t *req, const char *id,
                        sl__response *resp, sl_status *st)
{
    return apikey_change(r, who, id, 0, resp, st);
}
