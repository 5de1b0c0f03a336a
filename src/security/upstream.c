/* Upstream-JWT authentication: the strict JWT verifier with the identity provider's keys, keeping
 * only who the caller is. The keys are a fixed keyring, or a JWKS client's current set: then a
 * token whose kid the set lacks (or that arrives before the first fetch) waits for the client,
 * holding a copy of the token, and is answered from the loop. */
#include <sluice/upstream.h>

#include <sluice/revocation.h>

#include <openssl/crypto.h>

#include <stdlib.h>
#include <string.h>

#include "security/jwt_internal.h"
#include "security/jwt_json.h"

typedef struct upstream {
    sl_authenticator base; /* first: the chain holds a pointer to it */
    sl_jwt_keyring *keys;  /* fixed keys, or NULL with jwks */
    sl_jwks *jwks;
    const sl_jwt_verify_opts *opts;
} upstream;

/* A token waiting for the JWKS client. Holds nothing of the authenticator: it may be answered
 * while the server shuts down. */
typedef struct pending {
    const sl_jwt_verify_opts *opts;
    sl_authn_cb cb;
    void *ud;
    double now;
    size_t len;
    char token[];
} pending;

/* The string member v of a payload decoded in s, as (p, n); 0 when absent, -1 when not a string. */
static int member_string(const jscratch *s, const jval *v, const char **p, size_t *n)
{
    if (v->type == JV_ABSENT)
        return 0;
    if (v->type != JV_STRING)
        return -1;
    *p = s->buf + v->s.off;
    *n = v->s.len;
    return 1;
}

/* Applies the "scope" claim of a token whose signature has been verified (and the workspace
 * claim, when one is configured: absent, the default workspace). SL_EINVAL for a scope or
 * workspace of the wrong type or value. The payload is read with the verifier's own strict parser
 * (which has just accepted it), in stack scratch: no jansson tree and no allocation. */
static int scope_of(const char *cred, size_t len, const char *ws_claim, sl_identity *who)
{
    const char *d1 = memchr(cred, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - cred)) : NULL;
    jscratch s;
    size_t n;
    if (d2 == NULL || len > SL_JWT_MAX_LEN ||
        sl__jwt_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), (unsigned char *)s.buf, &n) < 0)
        return SL_EINVAL;
    const jname names[2] = {{"scope", 5}, {ws_claim, ws_claim ? strlen(ws_claim) : 0}};
    jval v[2];
    if (sl__jwt_json_parse(&s, n, names, v, ws_claim ? 2 : 1) < 0)
        return SL_EINVAL;
    const char *p;
    size_t pn;
    int got = member_string(&s, &v[0], &p, &pn);
    int rc = got < 0 ? SL_EINVAL : got ? sl_identity_apply_scope(who, p, pn) : SL_OK;
    if (rc != SL_OK || ws_claim == NULL || (got = member_string(&s, &v[1], &p, &pn)) == 0)
        return rc;
    if (got < 0 || !sl_workspace_valid(p, pn))
        return SL_EINVAL;
    memcpy(who->workspace, p, pn);
    who->workspace[pn] = '\0';
    return SL_OK;
}

static void verify_with(sl_jwt_keyring *keys, const sl_jwt_verify_opts *opts, const char *cred,
                        size_t len, double now, sl_authn_cb cb, void *ud)
{
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_jwt_verify(keys, cred, len, opts, now, &id, &st);
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
    if ((rc = scope_of(cred, len, opts->workspace_claim, &who)) != SL_OK) {
        sl_identity_clear(&who);
        cb(ud, rc == SL_ENOMEM ? SL_EUNAVAIL : SL_ETOKEN, NULL,
           rc == SL_ENOMEM ? "out of memory" : "invalid scope or workspace");
        return;
    }
    cb(ud, SL_OK, &who, NULL);
    sl_identity_clear(&who);
}

static void on_keys(void *ud, int status, sl_jwt_keyring *keys)
{
    pending *p = ud;
    if (status == SL_OK)
        verify_with(keys, p->opts, p->token, p->len, p->now, p->cb, p->ud);
    else
        p->cb(p->ud, SL_EUNAVAIL, NULL, "identity provider keys unavailable");
    OPENSSL_cleanse(p->token, p->len);
    free(p);
}

static void authenticate(sl_authenticator *a, const char *cred, size_t len, double now,
                         sl_authn_cb cb, void *ud)
{
    upstream *u = (upstream *)a;
    if (u->jwks == NULL) {
        verify_with(u->keys, u->opts, cred, len, now, cb, ud);
        return;
    }
    char kid[SL_JWT_KID_MAX + 1];
    size_t kidlen;
    if (sl_jwt_header_kid(cred, len, kid, &kidlen) != SL_OK) {
        cb(ud, SL_ETOKEN, NULL, "malformed token");
        return;
    }
    const char *k = kidlen ? kid : NULL;
    sl_jwt_keyring *kr = sl_jwks_ready(u->jwks, k, kidlen);
    if (kr != NULL) { /* the usual case: no copy, no wait */
        verify_with(kr, u->opts, cred, len, now, cb, ud);
        return;
    }
    pending *p = malloc(sizeof *p + len);
    if (p == NULL) {
        cb(ud, SL_EUNAVAIL, NULL, "out of memory");
        return;
    }
    p->opts = u->opts;
    p->cb = cb;
    p->ud = ud;
    p->now = now;
    p->len = len;
    memcpy(p->token, cred, len);
    sl_jwks_wait(u->jwks, k, kidlen, on_keys, p);
}

static void destroy(sl_authenticator *a)
{
    free(a);
}

/* One of keys (a key file's) or jwks (an identity provider's key set) is set. */
static int upstream_new(sl_jwt_keyring *keys, sl_jwks *jwks, const sl_jwt_verify_opts *opts,
                        sl_authenticator **out)
{
    if ((keys == NULL && jwks == NULL) || opts == NULL)
        return SL_EINVAL;
    upstream *u = calloc(1, sizeof *u);
    if (u == NULL)
        return SL_ENOMEM;
    u->base.name = "upstream-jwt";
    u->base.authenticate = authenticate;
    u->base.free = destroy;
    u->keys = keys;
    u->jwks = jwks;
    u->opts = opts;
    *out = &u->base;
    return SL_OK;
}

int sl_upstream_authenticator_new(sl_jwt_keyring *keys, const sl_jwt_verify_opts *opts,
                                  sl_authenticator **out)
{
    return keys ? upstream_new(keys, NULL, opts, out) : SL_EINVAL;
}

int sl_upstream_authenticator_new_jwks(sl_jwks *jwks, const sl_jwt_verify_opts *opts,
                                       sl_authenticator **out)
{
    return jwks ? upstream_new(NULL, jwks, opts, out) : SL_EINVAL;
}
