/* Upstream-JWT authentication: the strict JWT verifier with the identity provider's keys, keeping
 * only who the caller is. */
#include <sluice/upstream.h>

#include <sluice/revocation.h>

#include <jansson.h>

#include <stdlib.h>
#include <string.h>

typedef struct upstream {
    sl_authenticator base; /* first: the chain holds a pointer to it */
    sl_jwt_keyring *keys;
    const sl_jwt_verify_opts *opts;
} upstream;

/* Applies the "scope" claim of a token whose signature has been verified. */
static int scope_of(const char *cred, size_t len, sl_identity *who)
{
    char *header = NULL, *payload = NULL;
    if (sl_jwt_decode_unverified(cred, len, &header, &payload) != SL_OK)
        return SL_EINVAL;
    json_t *claims = json_loads(payload, 0, NULL);
    json_t *scope = json_object_get(claims, "scope");
    int rc = scope == NULL ? SL_OK
             : json_is_string(scope)
                 ? sl_identity_apply_scope(who, json_string_value(scope), json_string_length(scope))
                 : SL_EINVAL;
    if (claims == NULL)
        rc = SL_ENOMEM;
    json_decref(claims);
    free(header);
    free(payload);
    return rc;
}

static void authenticate(sl_authenticator *a, const char *cred, size_t len, double now,
                         sl_authn_cb cb, void *ud)
{
    upstream *u = (upstream *)a;
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_jwt_verify(u->keys, cred, len, u->opts, now, &id, &st);
    if (rc != SL_OK) {
        cb(ud, rc, NULL, st.message);
        return;
    }
    sl_identity who;
    sl_identity_init(&who);
    memcpy(who.principal, id.principal, sizeof who.principal);
    /* A provider's jti the revocation store cannot key is left out (as introspection does):
     * revocation by the user cut-off still applies, and the token is not refused for it. */
    if (sl_revocation_id_valid(id.token_id))
        memcpy(who.token_id, id.token_id, sizeof who.token_id);
    who.source = SL_SOURCE_UPSTREAM_JWT;
    who.issued_at = id.issued_at;
    who.expires_at = id.expires_at;
    sl_identity_clear(&id);
    /* The provider's own role/channels claims mean nothing here; its OAuth scope may narrow. */
    if ((rc = scope_of(cred, len, &who)) != SL_OK) {
        sl_identity_clear(&who);
        cb(ud, rc == SL_ENOMEM ? SL_EUNAVAIL : SL_ETOKEN, NULL,
           rc == SL_ENOMEM ? "out of memory" : "invalid scope");
        return;
    }
    cb(ud, SL_OK, &who, NULL);
    sl_identity_clear(&who);
}

static void destroy(sl_authenticator *a)
{
    free(a);
}

int sl_upstream_authenticator_new(sl_jwt_keyring *keys, const sl_jwt_verify_opts *opts,
                                  sl_authenticator **out)
{
    if (keys == NULL || opts == NULL)
        return SL_EINVAL;
    upstream *u = calloc(1, sizeof *u);
    if (u == NULL)
        return SL_ENOMEM;
    u->base.name = "upstream-jwt";
    u->base.authenticate = authenticate;
    u->base.free = destroy;
    u->keys = keys;
    u->opts = opts;
    *out = &u->base;
    return SL_OK;
}
