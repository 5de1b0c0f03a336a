/* The broker's policy and minting. Roles compile their patterns into pattern tries, so deciding a
 * request costs a hash probe per role of the principal plus a trie walk per channel. Delegation
 * rules are short lists per service. Token ids are 128 random bits in hex, so they can be revoked
 * by id and never collide. With a kv attached, role assignments are staged in it in the same call
 * (stored format: sluice/broker.h); role definitions and delegation rules are configuration and
 * stay in memory. */
#include <sluice/broker.h>

#include "core/map.h"
#include "core/wsid.h"
#include "security/apply.h"
#include "security/patset.h"
#include "security/secstore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct role {
    sl_role grants;
    sl__patset *set;
    sl__patset *deny; /* NULL: denies nothing */
    char **sub;       /* "prefix#{sub}" patterns, kept as "prefix#": expanded per principal */
    size_t nsub;
} role;

typedef struct strv {
    char **v;
    size_t n;
} strv;

struct sl_broker {
    sl_broker_opts o;
    sl_broker_authorizer_fn authorizer; /* NULL: the built-in role / allow-all authorizer */
    void *authorizer_ud;
    sl__map *roles;      /* name -> role* */
    sl__map *principals; /* principal -> strv* (role names) */
    sl__map *delegates;  /* service -> strv* (principal patterns) */
    sl__kv *kv;          /* borrowed; NULL: assignments live in memory only */
};

static void strv_free(void *p)
{
    strv *s = p;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    free(s);
}

static strv *strv_new(const char *const *v, size_t n)
{
    strv *s = calloc(1, sizeof *s);
    if (s == NULL || (n && (s->v = calloc(n, sizeof *s->v)) == NULL)) {
        free(s);
        return NULL;
    }
    for (; s->n < n; s->n++)
        if ((s->v[s->n] = strdup(v[s->n])) == NULL) {
            strv_free(s);
            return NULL;
        }
    return s;
}

static void role_free(void *p)
{
    role *r = p;
    if (r) {
        sl__patset_free(r->set);
        sl__patset_free(r->deny);
        for (size_t i = 0; i < r->nsub; i++)
            free(r->sub[i]);
        free(r->sub);
        free(r);
    }
}

int sl_broker_new(sl_broker **out, const sl_broker_opts *opts)
{
    sl_broker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return SL_ENOMEM;
    if (opts)
        b->o = *opts;
    if (!(b->o.default_ttl > 0))
        b->o.default_ttl = 3600;
    if (!(b->o.max_ttl > 0))
        b->o.max_ttl = 86400;
    if (b->o.default_ttl > b->o.max_ttl)
        b->o.default_ttl = b->o.max_ttl;
    if (b->o.allow_all_role == SL_ROLE_NONE)
        b->o.allow_all_role = SL_ROLE_WRITE;
    if (sl__map_new(&b->roles) || sl__map_new(&b->principals) || sl__map_new(&b->delegates)) {
        sl_broker_free(b);
        return SL_ENOMEM;
    }
    *out = b;
    return SL_OK;
}

void sl_broker_free(sl_broker *b)
{
    if (b == NULL)
        return;
    sl__map_free(b->roles, role_free);
    sl__map_free(b->principals, strv_free);
    sl__map_free(b->delegates, strv_free);
    free(b);
}

double sl_broker_default_ttl(const sl_broker *b)
{
    return b->o.default_ttl;
}

double sl_broker_max_ttl(const sl_broker *b)
{
    return b->o.max_ttl;
}

static int name_valid(const char *s)
{
    return s && sl_principal_valid(s, strlen(s));
}

int sl_broker_set_role(sl_broker *b, const char *name, sl_role grants, const char *const *patterns,
                       size_t n)
{
    return sl_broker_set_role_deny(b, name, grants, patterns, n, NULL, 0);
}

#define SUB_SUFFIX "#{sub}"

/* A "prefix#{sub}" pattern: its "prefix#" copied into r->sub. SL_EINVAL when prefix + "#x" is not
 * a pattern (the expansion must stay a user list after a literal segment). */
static int add_sub(role *r, const char *p)
{
    size_t n = strlen(p) - strlen(SUB_SUFFIX);
    char probe[SL_CHANNEL_ID_MAX + 1];
    if (n + 2 > SL_CHANNEL_ID_MAX)
        return SL_EINVAL;
    memcpy(probe, p, n);
    memcpy(probe + n, "#x", 3);
    if (!sl_pattern_valid(probe, n + 2))
        return SL_EINVAL;
    char **v = realloc(r->sub, (r->nsub + 1) * sizeof *v);
    if (v == NULL)
        return SL_ENOMEM;
    r->sub = v;
    if ((v[r->nsub] = strndup(p, n + 1)) == NULL)
        return SL_ENOMEM;
    r->nsub++;
    return SL_OK;
}

static int is_sub_pattern(const char *p)
{
    size_t n = p ? strlen(p) : 0, k = strlen(SUB_SUFFIX);
    return n > k && strcmp(p + n - k, SUB_SUFFIX) == 0;
}

int sl_broker_set_role_deny(sl_broker *b, const char *name, sl_role grants,
                            const char *const *patterns, size_t n, const char *const *deny,
                            size_t ndeny)
{
    if (!name_valid(name) || grants == SL_ROLE_NONE)
        return SL_EINVAL;
    role *r = calloc(1, sizeof *r);
    int rc = r ? sl__patset_new(&r->set) : SL_ENOMEM;
    if (r)
        r->grants = grants;
    for (size_t i = 0; rc == SL_OK && i < n; i++)
        rc = is_sub_pattern(patterns[i]) ? add_sub(r, patterns[i])
                                         : sl__patset_add(r->set, patterns[i]);
    if (rc == SL_OK && ndeny > 0)
        rc = sl__patset_new(&r->deny);
    for (size_t i = 0; rc == SL_OK && i < ndeny; i++)
        rc = sl__patset_add(r->deny, deny[i]);
    if (rc == SL_OK)
        rc = sl__map_put(b->roles, name, r, role_free);
    if (rc != SL_OK)
        role_free(r);
    return rc;
}

static int stage_assign(sl__kv *kv, const char *principal, const strv *s)
{
    json_t *o = sl__secstore_object(), *a = json_array();
    int bad = o == NULL || json_object_set_new(o, "roles", a) < 0;
    for (size_t i = 0; !bad && i < s->n; i++)
        bad = json_array_append_new(a, json_string(s->v[i])) < 0;
    int rc = bad ? SL_ENOMEM : sl__secstore_put(kv, SL__KV_BROKER, principal, strlen(principal), o);
    if (o == NULL)
        json_decref(a);
    json_decref(o);
    return rc;
}

/* Assignments are keyed by (workspace, principal): "WS/principal" (core/wsid.h). */
static int key_valid(const char *s)
{
    return s && sl__stored_principal_valid(s, strlen(s));
}

int sl_broker_assign(sl_broker *b, const char *principal, const char *const *roles, size_t n)
{
    if (!key_valid(principal))
        return SL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!name_valid(roles[i]))
            return SL_EINVAL;
    if (n == 0) {
        if (b->kv != NULL && sl__map_get(b->principals, principal) != NULL) {
            int rc = b->kv->ops->del(b->kv, SL__KV_BROKER, principal, strlen(principal));
            if (rc != SL_OK)
                return rc; /* nothing changed */
        }
        sl__map_del(b->principals, principal, strv_free);
        return SL_OK;
    }
    strv *s = strv_new(roles, n);
    if (s == NULL)
        return SL_ENOMEM;
    strv *old = sl__map_get(b->principals, principal);
    int rc = sl__map_put(b->principals, principal, s, NULL);
    if (rc == SL_OK && b->kv != NULL && (rc = stage_assign(b->kv, principal, s)) != SL_OK) {
        /* Put back what was there: replacing an existing key cannot fail. */
        if (old != NULL)
            sl__map_put(b->principals, principal, old, NULL);
        else
            sl__map_del(b->principals, principal, NULL);
    }
    if (rc != SL_OK) {
        strv_free(s);
        return rc;
    }
    strv_free(old);
    return SL_OK;
}

/* ---- loading assignments from the kv --------------------------------------------------------- */

/* One stored assignment; SL_EFORMAT with why set when it does not decode. */
static int decode_assign(const void *val, size_t vlen, strv **out, char *why, size_t whysz)
{
    json_t *o = sl__secstore_parse(val, vlen, why, whysz);
    if (o == NULL)
        return SL_EFORMAT;
    json_t *a = json_object_get(o, "roles");
    size_t n = json_array_size(a);
    int rc = SL_OK;
    if (json_object_size(o) != 1 || !json_is_array(a) || n == 0) {
        /* A principal without roles is deleted, never stored: an empty list is damage. */
        snprintf(why, whysz, "expected only \"roles\", a non-empty array of role names");
        rc = SL_EFORMAT;
    }
    const char **v = rc == SL_OK ? calloc(n, sizeof *v) : NULL;
    if (rc == SL_OK && v == NULL)
        rc = SL_ENOMEM;
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        json_t *r = json_array_get(a, i);
        v[i] = json_string_value(r);
        if (v[i] == NULL || strlen(v[i]) != json_string_length(r) || !name_valid(v[i])) {
            snprintf(why, whysz, "\"roles\"[%zu] is not a valid role name", i);
            rc = SL_EFORMAT;
        }
    }
    if (rc == SL_OK && (*out = strv_new(v, n)) == NULL)
        rc = SL_ENOMEM;
    free(v);
    json_decref(o);
    return rc;
}

static int decode_roles(const void *val, size_t vlen, void **out, char *why, size_t whysz)
{
    return decode_assign(val, vlen, (strv **)out, why, whysz);
}

int sl_broker_attach(sl_broker *b, struct sl__kv *kv, sl_status *st)
{
    if (b == NULL || kv == NULL || b->kv != NULL)
        return sl_status_set(st, SL_EINVAL, "the broker is already attached to a store");
    int rc = sl__secstore_load_map(kv, SL__KV_BROKER, "broker roles", key_valid, decode_roles,
                                   strv_free, b->principals, st);
    if (rc == SL_OK)
        b->kv = kv;
    return rc;
}

sl__kv *sl__broker_kv(const sl_broker *b)
{
    return b->kv;
}

/* The same role names in the same order: the assignment as stored. */
static int same_roles(const void *a, const void *b)
{
    const strv *x = a, *y = b;
    if (x->n != y->n)
        return 0;
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->v[i], y->v[i]) != 0)
            return 0;
    return 1;
}

int sl__broker_apply(sl_broker *b, const void *key, size_t klen, const void *val, size_t vlen,
                     sl_status *st)
{
    char principal[SL__SECSTORE_KEY_MAX + 1];
    return sl__secstore_apply_map(b->principals, SL__KV_BROKER, key_valid, decode_roles, strv_free,
                                  same_roles, key, klen, val, vlen, principal, st);
}

int sl__broker_apply_all(sl_broker *b, const sl__secstore_entry *e, size_t n, sl_status *st)
{
    return sl__secstore_apply_map_all(b->principals, SL__KV_BROKER, key_valid, decode_roles,
                                      strv_free, same_roles, e, n, NULL, NULL, st);
}

size_t sl_broker_roles_of(const sl_broker *b, const char *principal, const char *const **roles)
{
    const strv *s = sl__map_get(b->principals, principal);
    *roles = s ? (const char *const *)s->v : NULL;
    return s ? s->n : 0;
}

static int principal_pattern_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 1 && p[0] == '*')
        return 1;
    if (n > 1 && p[n - 1] == '*')
        return sl_principal_valid(p, n - 1) && !memchr(p, '*', n - 1);
    return sl_principal_valid(p, n) && !memchr(p, '*', n);
}

int sl_broker_allow_delegation(sl_broker *b, const char *service, const char *const *patterns,
                               size_t n)
{
    if (!name_valid(service))
        return SL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!principal_pattern_valid(patterns[i]))
            return SL_EINVAL;
    strv *s = strv_new(patterns, n);
    if (s == NULL)
        return SL_ENOMEM;
    int rc = sl__map_put(b->delegates, service, s, strv_free);
    if (rc != SL_OK)
        strv_free(s);
    return rc;
}

int sl_broker_may_delegate(const sl_broker *b, const char *service, const char *principal)
{
    const strv *s = service && principal ? sl__map_get(b->delegates, service) : NULL;
    size_t pn = principal ? strlen(principal) : 0;
    for (size_t i = 0; s && i < s->n; i++) {
        const char *p = s->v[i];
        size_t n = strlen(p);
        if (p[n - 1] == '*' ? pn >= n - 1 && memcmp(p, principal, n - 1) == 0
                            : strcmp(p, principal) == 0)
            return 1;
    }
    return 0;
}

void sl_broker_decision_clear(sl_broker_decision *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->ngranted; i++)
        free(d->granted[i]);
    for (size_t i = 0; i < d->ndenied; i++)
        free(d->denied[i].channel);
    free(d->granted);
    free(d->denied);
    memset(d, 0, sizeof *d);
}

void sl_broker_set_authorizer(sl_broker *b, sl_broker_authorizer_fn fn, void *ud)
{
    b->authorizer = fn;
    b->authorizer_ud = ud;
}

/* One of r's "prefix#{sub}" patterns, expanded with principal, matches ch. A principal that is
 * not a valid user id (a ',' would list more users, other bytes are not in ids) expands nothing. */
static int sub_match(const role *r, const char *principal, const char *ch)
{
    size_t pn = strlen(principal);
    if (r->nsub == 0 || !sl_channel_user_valid(principal, pn))
        return 0;
    for (size_t i = 0; i < r->nsub; i++) {
        char pat[SL_CHANNEL_ID_MAX + 1];
        size_t k = strlen(r->sub[i]);
        if (k + pn > SL_CHANNEL_ID_MAX)
            continue;
        memcpy(pat, r->sub[i], k);
        memcpy(pat + k, principal, pn + 1);
        if (sl_pattern_match(pat, ch))
            return 1;
    }
    return 0;
}

int sl_broker_denies(const sl_broker *b, const char *principal, const char *channel)
{
    const strv *mine = b && principal ? sl__map_get(b->principals, principal) : NULL;
    for (size_t k = 0; mine && k < mine->n; k++) {
        const role *r = sl__map_get(b->roles, mine->v[k]);
        if (r && r->deny &&
            (channel ? sl__patset_match(r->deny, channel) : sl__patset_matches_all(r->deny)))
            return 1;
    }
    return 0;
}

/* Deny rules win over every authorizer: a granted channel one of principal's roles denies
 * becomes a denial (and the role is recomputed by the caller's clamp only downwards). */
static void apply_denies(const sl_broker *b, const char *principal, sl_broker_decision *d)
{
    size_t kept = 0;
    for (size_t i = 0; i < d->ngranted; i++) {
        if (!sl_broker_denies(b, principal, d->granted[i])) {
            d->granted[kept++] = d->granted[i];
            continue;
        }
        /* denied[] has room: the built-in authorizer sized it for every channel, and a pluggable
         * one's arrays are grown here */
        sl_broker_denial *v = realloc(d->denied, (d->ndenied + 1) * sizeof *v);
        if (v == NULL) { /* cannot record the denial: refuse the channel silently rather than
                            grant it */
            free(d->granted[i]);
            continue;
        }
        d->denied = v;
        d->denied[d->ndenied].channel = d->granted[i];
        d->denied[d->ndenied++].reason = "denied by a role's deny rule";
    }
    d->ngranted = kept;
    if (kept == 0)
        d->role = SL_ROLE_NONE;
}

/* The built-in authorizers: allow-all, or the role authorizer. */
static int builtin_decide(const sl_broker *b, const char *principal, const char *const *channels,
                          size_t n, sl_broker_decision *d);

/* Whatever is minted from a credential never exceeds it, whichever authorizer decided: a granted
 * channel outside the credential's scope becomes a denial, and the token's role is at most the
 * role the credential carries (a credential without a role leaves the role to the authorizer). */
static int clamp(const sl_identity *cred, sl_broker_decision *d)
{
    if (cred == NULL || d->ngranted == 0)
        return SL_OK;
    if (cred->scoped) {
        sl_broker_denial *v = realloc(d->denied, (d->ndenied + d->ngranted) * sizeof *v);
        if (v == NULL)
            return SL_ENOMEM;
        d->denied = v;
        size_t kept = 0;
        for (size_t i = 0; i < d->ngranted; i++) {
            int inside = 0;
            for (size_t j = 0; !inside && j < cred->nchannels; j++)
                inside = sl_pattern_match(cred->channels[j], d->granted[i]);
            if (inside) {
                d->granted[kept++] = d->granted[i];
            } else {
                d->denied[d->ndenied].channel = d->granted[i];
                d->denied[d->ndenied++].reason = "outside the credential's scope";
            }
        }
        d->ngranted = kept;
    }
    if (d->ngranted == 0)
        d->role = SL_ROLE_NONE;
    else if (cred->role != SL_ROLE_NONE && d->role > cred->role)
        d->role = cred->role;
    return SL_OK;
}

int sl_broker_decide(const sl_broker *b, const sl_identity *cred, const char *principal,
                     const char *const *channels, size_t n, sl_broker_decision *d)
{
    memset(d, 0, sizeof *d);
    /* The roles of principal in the credential's workspace; the token is of that
     * workspace, whatever the authorizer did to d. */
    char qp[SL__QPRINCIPAL_SIZE];
    const char *ws = cred ? cred->workspace : "";
    if (principal && ws[0] && sl__ws_qualify(ws, principal, qp, sizeof qp) == SL_OK)
        principal = qp;
    int rc = b->authorizer ? b->authorizer(b->authorizer_ud, principal, channels, n, d)
                           : builtin_decide(b, principal, channels, n, d);
    memcpy(d->workspace, ws, strlen(ws) + 1);
    if (rc == SL_OK)
        apply_denies(b, principal, d);
    if (rc == SL_OK)
        rc = clamp(cred, d);
    if (rc != SL_OK)
        sl_broker_decision_clear(d);
    return rc;
}

static int builtin_decide(const sl_broker *b, const char *principal, const char *const *channels,
                          size_t n, sl_broker_decision *d)
{
    d->granted = calloc(n ? n : 1, sizeof *d->granted);
    d->denied = calloc(n ? n : 1, sizeof *d->denied);
    if (d->granted == NULL || d->denied == NULL) {
        sl_broker_decision_clear(d);
        return SL_ENOMEM;
    }
    const strv *mine = sl__map_get(b->principals, principal);
    sl_role least = SL_ROLE_NONE;
    for (size_t i = 0; i < n; i++) {
        const char *ch = channels[i];
        const char *reason = NULL;
        sl_role got = SL_ROLE_NONE;
        if (ch == NULL || !sl_channel_id_valid(ch, strlen(ch))) {
            reason = "invalid channel id";
        } else if (b->o.allow_all) {
            got = b->o.allow_all_role;
        } else {
            /* The strongest role of this principal that matches the channel. */
            for (size_t k = 0; mine && k < mine->n; k++) {
                const role *r = sl__map_get(b->roles, mine->v[k]);
                if (r && r->grants > got &&
                    (sl__patset_match(r->set, ch) || sub_match(r, principal, ch)))
                    got = r->grants;
            }
            if (got == SL_ROLE_NONE)
                reason = "no matching role";
        }
        char *copy = strdup(ch ? ch : "");
        if (copy == NULL) {
            sl_broker_decision_clear(d);
            return SL_ENOMEM;
        }
        if (reason) {
            d->denied[d->ndenied].channel = copy;
            d->denied[d->ndenied++].reason = reason;
        } else {
            d->granted[d->ngranted++] = copy;
            if (least == SL_ROLE_NONE || got < least)
                least = got;
        }
    }
    /* One token carries one role: never more than every granted channel allows. */
    d->role = least;
    return SL_OK;
}

int sl_broker_mint(const sl_broker *b, sl_jwt_keyring *kr, const char *sub, const char *act_sub,
                   const sl_broker_decision *d, double ttl, double now, sl_broker_token *out)
{
    memset(out, 0, sizeof *out);
    if (d->ngranted == 0 || d->role == SL_ROLE_NONE || isnan(ttl))
        return SL_EINVAL;
    if (ttl <= 0)
        ttl = b->o.default_ttl;
    if (ttl > b->o.max_ttl)
        ttl = b->o.max_ttl;
    int rc = sl_jwt_token_id_new(kr, sub, out->token_id);
    if (rc != SL_OK)
        return rc;
    out->issued_at = floor(now);
    out->expires_at = out->issued_at + floor(ttl);
    sl_jwt_claims c = {
        .sub = sub,
        .role = d->role,
        .channels = (const char *const *)d->granted,
        .nchannels = d->ngranted,
        .scoped = 1,
        .iat = out->issued_at,
        .exp = out->expires_at,
        .jti = out->token_id,
        .act_sub = act_sub,
        .workspace = d->workspace,
    };
    return sl_jwt_sign(kr, NULL, &c, &out->token);
}
