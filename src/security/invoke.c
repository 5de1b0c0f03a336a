/* The invoke policy, deny rules under every mode, and user-limited channels.
 * Each policy is compiled per operation: for every registry operation its rules name, the allowed
 * and denied resources as a pattern trie (channel operations) or a short glob list (the others),
 * so deciding costs a map probe for the exact principal, a glob test per pattern policy, and one
 * trie walk per matching policy. The rules as written are kept beside for listing and storage.
 * With a kv attached every change is staged in the same call (format: security/invoke.h). */
#include "security/invoke.h"

#include "api/ctx.h"
#include "core/map.h"
#include "core/wsid.h"
#include "security/acl.h"
#include "security/patset.h"
#include "security/secstore.h"
#include "security/workspace.h"

#include <sluice/broker.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one side (allow or deny) of a policy says about one operation. */
typedef struct opside {
    unsigned char any; /* every resource */
    sl__patset *chans; /* channel operations: the channel patterns */
    char **globs;      /* other operations: resource globs */
    size_t nglobs;
} opside;

typedef struct side {
    char **rules; /* as given */
    size_t n;
    opside op[SL_OP__COUNT];
} side;

typedef struct policy {
    char *pattern;
    int glob; /* the pattern holds a '*' */
    int audit;
    side allow, deny;
} policy;

struct sl__invoke {
    sl__map *by_pattern; /* pattern -> policy* */
    policy **globs;      /* the policies whose pattern is a glob, rebuilt on change */
    size_t nglobs;
    /* The last rebuild ran out of memory: globs may point at freed policies, so every decision
     * is denied (fail closed) until a rebuild succeeds. */
    int broken;
    sl__kv *kv; /* borrowed; NULL: memory only */
};

/* '*' matches any run of bytes (even none) but the workspace separator, so a principal pattern
 * matches principals of its own workspace only (a policy for "*" set in workspace acme is stored
 * under acme and matches acme's principals, and the default workspace's "*" matches none of
 * theirs); everything else matches itself. Iterative with one backtrack point, so it is
 * linear-ish in practice and never recursive. */
static int glob_match(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star && *resume != SL__WS_SEP) {
            pat = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static void side_free(side *sd)
{
    for (size_t i = 0; i < sd->n; i++)
        free(sd->rules[i]);
    free(sd->rules);
    for (size_t o = 0; o < SL_OP__COUNT; o++) {
        sl__patset_free(sd->op[o].chans);
        for (size_t i = 0; i < sd->op[o].nglobs; i++)
            free(sd->op[o].globs[i]);
        free(sd->op[o].globs);
    }
}

static void policy_free(void *v)
{
    policy *p = v;
    if (p == NULL)
        return;
    side_free(&p->allow);
    side_free(&p->deny);
    free(p->pattern);
    free(p);
}

int sl__invoke_new(sl__invoke **out)
{
    sl__invoke *p = calloc(1, sizeof *p);
    if (p == NULL || sl__map_new(&p->by_pattern) != SL_OK) {
        free(p);
        return SL_ENOMEM;
    }
    *out = p;
    return SL_OK;
}

void sl__invoke_free(sl__invoke *p)
{
    if (p == NULL)
        return;
    sl__map_free(p->by_pattern, policy_free);
    free(p->globs);
    free(p);
}

size_t sl__invoke_size(const sl__invoke *p)
{
    return p ? sl__map_size(p->by_pattern) : 0;
}

static int pattern_valid(const char *pat)
{
    /* a workspace's policies are stored under "WS/pattern" (core/wsid.h) */
    return pat && sl__stored_principal_valid(pat, strlen(pat));
}

/* Adds one "operation:resource" rule to sd. SL_EINVAL with the reason in why. */
static int add_rule(side *sd, const char *rule, char *why, size_t whysz)
{
    const char *colon = rule ? strchr(rule, ':') : NULL;
    size_t oplen = colon ? (size_t)(colon - rule) : (rule ? strlen(rule) : 0);
    const char *res = colon ? colon + 1 : NULL;
    char opglob[128];
    if (rule == NULL || oplen == 0 || oplen >= sizeof opglob || (res && *res == '\0') ||
        strlen(rule) > 512) {
        snprintf(why, whysz, "a rule is \"operation:resource\" or \"operation\"");
        return SL_EINVAL;
    }
    memcpy(opglob, rule, oplen);
    opglob[oplen] = '\0';
    int named = 0;
    for (size_t o = 0; o < SL_OP__COUNT; o++) {
        const sl_op_info *info = sl_op_lookup((sl_op)o);
        if (info == NULL || info->name == NULL || !glob_match(opglob, info->name))
            continue;
        named = 1;
        opside *os = &sd->op[o];
        int chan = info->resource == SL_RES_CHANNEL;
        /* An operation over many channels (a listing, a broker request) has no resource of its
         * own: its channels are decided one by one (as channel.info, or by the broker), so a
         * rule naming it matches whatever its resource says. */
        if (res == NULL || info->resource == SL_RES_CHANNELS || (!chan && strcmp(res, "*") == 0) ||
            (chan && strcmp(res, "**") == 0)) {
            os->any = 1;
        } else if (chan) {
            if (!sl_pattern_valid(res, strlen(res))) {
                snprintf(why, whysz,
                         "'%.64s' names channel operations but its resource is not a channel "
                         "pattern",
                         rule);
                return SL_EINVAL;
            }
            int rc = os->chans ? SL_OK : sl__patset_new(&os->chans);
            if (rc == SL_OK)
                rc = sl__patset_add(os->chans, res);
            if (rc != SL_OK)
                return rc;
        } else {
            char **g = realloc(os->globs, (os->nglobs + 1) * sizeof *g);
            if (g == NULL)
                return SL_ENOMEM;
            os->globs = g;
            if ((g[os->nglobs] = strdup(res)) == NULL)
                return SL_ENOMEM;
            os->nglobs++;
        }
    }
    if (!named) {
        snprintf(why, whysz, "'%.64s' names no operation", opglob);
        return SL_EINVAL;
    }
    char **r = realloc(sd->rules, (sd->n + 1) * sizeof *r);
    if (r == NULL)
        return SL_ENOMEM;
    sd->rules = r;
    if ((r[sd->n] = strdup(rule)) == NULL)
        return SL_ENOMEM;
    sd->n++;
    return SL_OK;
}

static int policy_new(const char *pattern, const char *const *allow, size_t nallow,
                      const char *const *deny, size_t ndeny, int audit, policy **out, char *why,
                      size_t whysz)
{
    if (!pattern_valid(pattern)) {
        snprintf(why, whysz, "invalid principal pattern");
        return SL_EINVAL;
    }
    policy *p = calloc(1, sizeof *p);
    if (p == NULL || (p->pattern = strdup(pattern)) == NULL) {
        free(p);
        return SL_ENOMEM;
    }
    p->glob = strchr(pattern, '*') != NULL;
    p->audit = audit != 0;
    int rc = SL_OK;
    for (size_t i = 0; rc == SL_OK && i < nallow; i++)
        rc = add_rule(&p->allow, allow[i], why, whysz);
    for (size_t i = 0; rc == SL_OK && i < ndeny; i++)
        rc = add_rule(&p->deny, deny[i], why, whysz);
    if (rc != SL_OK) {
        policy_free(p);
        return rc;
    }
    *out = p;
    return SL_OK;
}

/* ---- storage --------------------------------------------------------------------------------- */

static json_t *rules_json(const side *sd)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < sd->n; i++)
        if (json_array_append_new(a, json_string(sd->rules[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static int stage_put(sl__kv *kv, const policy *p)
{
    json_t *o = sl__secstore_object();
    int bad = o == NULL;
    if (!bad && p->allow.n)
        bad = json_object_set_new(o, "allow", rules_json(&p->allow)) < 0;
    if (!bad && p->deny.n)
        bad = json_object_set_new(o, "deny", rules_json(&p->deny)) < 0;
    if (!bad && p->audit)
        bad = json_object_set_new(o, "audit", json_true()) < 0;
    int rc =
        bad ? SL_ENOMEM : sl__secstore_put(kv, SL__KV_INVOKE, p->pattern, strlen(p->pattern), o);
    json_decref(o);
    return rc;
}

/* The stored list o[field] (absent: none) as borrowed strings in *out (free the array). */
static int stored_rules(json_t *o, const char *field, const char ***out, size_t *n, char *why,
                        size_t whysz)
{
    json_t *a = json_object_get(o, field);
    *n = json_array_size(a);
    *out = NULL;
    if (a != NULL && (!json_is_array(a) || *n == 0)) {
        snprintf(why, whysz, "\"%s\" must be a non-empty array of rules", field);
        return SL_EFORMAT;
    }
    if (*n && (*out = calloc(*n, sizeof **out)) == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < *n; i++)
        if (((*out)[i] = json_string_value(json_array_get(a, i))) == NULL) {
            snprintf(why, whysz, "\"%s\"[%zu] is not a string", field, i);
            return SL_EFORMAT;
        }
    return SL_OK;
}

/* The key being decoded: sl__secstore_load_map checks keys before decoding values, but the
 * decoder needs the pattern to build a policy; it is set back afterwards by fix_patterns. */
static int decode_policy(const void *val, size_t vlen, void **out, char *why, size_t whysz)
{
    json_t *o = sl__secstore_parse(val, vlen, why, whysz);
    if (o == NULL)
        return SL_EFORMAT;
    int rc = SL_OK;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "allow") && strcmp(k, "deny") && strcmp(k, "audit")) {
            snprintf(why, whysz, "unknown field");
            rc = SL_EFORMAT;
        }
    }
    json_t *au = json_object_get(o, "audit");
    if (rc == SL_OK && au != NULL && !json_is_true(au)) {
        snprintf(why, whysz, "\"audit\" is stored only as true");
        rc = SL_EFORMAT;
    }
    const char **allow = NULL, **deny = NULL;
    size_t nallow = 0, ndeny = 0;
    if (rc == SL_OK)
        rc = stored_rules(o, "allow", &allow, &nallow, why, whysz);
    if (rc == SL_OK)
        rc = stored_rules(o, "deny", &deny, &ndeny, why, whysz);
    if (rc == SL_OK) {
        /* "*" stands for the key until fix_patterns puts the real one in */
        rc = policy_new("*", allow, nallow, deny, ndeny, au != NULL, (policy **)out, why, whysz);
        if (rc == SL_EINVAL)
            rc = SL_EFORMAT;
    }
    free(allow);
    free(deny);
    json_decref(o);
    return rc;
}

static int fix_one(void *ud, const char *key, void *value)
{
    (void)ud;
    policy *p = value;
    if (strcmp(p->pattern, key) != 0) {
        char *c = strdup(key);
        if (c == NULL)
            return 1;
        free(p->pattern);
        p->pattern = c;
        p->glob = strchr(key, '*') != NULL;
    }
    return 0;
}

typedef struct {
    sl__invoke *p;
    size_t n;
} glob_state;

static int collect_glob(void *ud, const char *key, void *value)
{
    (void)key;
    glob_state *gs = ud;
    policy *pol = value;
    if (pol->glob)
        gs->p->globs[gs->n++] = pol;
    return 0;
}

/* Each policy's pattern is its key, and the glob list holds the glob policies. */
static int rebuild(sl__invoke *p)
{
    size_t total = sl__map_size(p->by_pattern);
    policy **g = sl__map_each(p->by_pattern, fix_one, NULL) == 0
                     ? realloc(p->globs, (total ? total : 1) * sizeof *g)
                     : NULL;
    if (g == NULL) {
        p->nglobs = 0;
        p->broken = 1;
        return SL_ENOMEM;
    }
    p->globs = g;
    glob_state gs = {p, 0};
    sl__map_each(p->by_pattern, collect_glob, &gs);
    p->nglobs = gs.n;
    p->broken = 0;
    return SL_OK;
}

int sl__invoke_attach(sl__invoke *p, sl__kv *kv, sl_status *st)
{
    if (p == NULL || kv == NULL || p->kv != NULL)
        return sl_status_set(st, SL_EINVAL, "the invoke policy is already attached to a store");
    int rc = sl__secstore_load_map(kv, SL__KV_INVOKE, "invoke policy", pattern_valid, decode_policy,
                                   policy_free, p->by_pattern, st);
    if (rc == SL_OK && (rc = rebuild(p)) != SL_OK)
        sl_status_set(st, rc, NULL);
    if (rc == SL_OK)
        p->kv = kv;
    return rc;
}

int sl__invoke_set(sl__invoke *p, const char *pattern, const char *const *allow, size_t nallow,
                   const char *const *deny, size_t ndeny, int audit, sl_status *st)
{
    char why[160] = "";
    policy *np;
    int rc = policy_new(pattern, allow, nallow, deny, ndeny, audit, &np, why, sizeof why);
    if (rc != SL_OK)
        return sl_status_set(st, rc, rc == SL_EINVAL ? "%s" : NULL, why);
    policy *old = sl__map_get(p->by_pattern, pattern);
    if ((rc = sl__map_put(p->by_pattern, pattern, np, NULL)) != SL_OK) {
        policy_free(np);
        return sl_status_set(st, rc, NULL);
    }
    if (p->kv != NULL && (rc = stage_put(p->kv, np)) != SL_OK) {
        if (old != NULL)
            sl__map_put(p->by_pattern, pattern, old, NULL); /* an existing key: no failure */
        else
            sl__map_del(p->by_pattern, pattern, NULL);
        policy_free(np);
        return sl_status_set(st, rc, "the policy change could not be staged: %s", sl_strerror(rc));
    }
    policy_free(old);
    if ((rc = rebuild(p)) != SL_OK)
        return sl_status_set(st, rc, NULL);
    return SL_OK;
}

int sl__invoke_del(sl__invoke *p, const char *pattern)
{
    if (pattern == NULL || sl__map_get(p->by_pattern, pattern) == NULL)
        return SL_ENOENT;
    if (p->kv != NULL) {
        int rc = p->kv->ops->del(p->kv, SL__KV_INVOKE, pattern, strlen(pattern));
        if (rc != SL_OK)
            return rc;
    }
    sl__map_del(p->by_pattern, pattern, policy_free);
    return rebuild(p);
}

static int list_one(void *ud, const char *key, void *value)
{
    json_t *a = ud;
    const policy *p = value;
    json_t *o = json_pack("{s:s, s:o, s:o, s:b}", "principal", key, "allow", rules_json(&p->allow),
                          "deny", rules_json(&p->deny), "audit", p->audit);
    return o == NULL || json_array_append_new(a, o) < 0;
}

static int cmp_principal(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "principal")),
                  json_string_value(json_object_get(*(json_t *const *)b, "principal")));
}

json_t *sl__invoke_list(const sl__invoke *p)
{
    json_t *a = json_array();
    if (a == NULL || (p && sl__map_each(p->by_pattern, list_one, a) != 0)) {
        json_decref(a);
        return NULL;
    }
    /* sorted, so listings are stable */
    size_t n = json_array_size(a);
    json_t **v = calloc(n ? n : 1, sizeof *v);
    if (v == NULL) {
        json_decref(a);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(a, i));
    qsort(v, n, sizeof *v, cmp_principal);
    json_array_clear(a);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, v[i]);
    free(v);
    return a;
}

/* ---- other nodes' changes (shared state on Redis: server/shared_state.c) ----------------------
 */

static int same_side(const side *x, const side *y)
{
    if (x->n != y->n)
        return 0;
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->rules[i], y->rules[i]) != 0)
            return 0;
    return 1;
}

/* The same rules in the same order and the same audit flag: the policy as stored. */
static int same_policy(const void *a, const void *b)
{
    const policy *x = a, *y = b;
    return x->audit == y->audit && same_side(&x->allow, &y->allow) && same_side(&x->deny, &y->deny);
}

int sl__invoke_apply(sl__invoke *p, const void *key, size_t klen, const void *val, size_t vlen,
                     sl_status *st)
{
    char pattern[SL__SECSTORE_KEY_MAX + 1];
    int r = sl__secstore_apply_map(p->by_pattern, SL__KV_INVOKE, pattern_valid, decode_policy,
                                   policy_free, same_policy, key, klen, val, vlen, pattern, st);
    if (r > 0 && rebuild(p) != SL_OK)
        return sl_status_set(st, SL_ENOMEM, NULL);
    return r;
}

int sl__invoke_apply_all(sl__invoke *p, const sl__secstore_entry *e, size_t n, sl_status *st)
{
    int r = sl__secstore_apply_map_all(p->by_pattern, SL__KV_INVOKE, pattern_valid, decode_policy,
                                       policy_free, same_policy, e, n, NULL, NULL, st);
    if (rebuild(p) != SL_OK)
        return sl_status_set(st, SL_ENOMEM, NULL);
    return r;
}

/* ---- deciding -------------------------------------------------------------------------------- */

static int side_matches(const side *sd, const sl_op_info *info, const char *resource)
{
    const opside *os = &sd->op[info->op];
    if (os->any)
        return 1;
    if (info->resource == SL_RES_CHANNEL)
        return os->chans && resource && sl__patset_match(os->chans, resource);
    const char *r = resource ? resource : "";
    for (size_t i = 0; i < os->nglobs; i++)
        if (glob_match(os->globs[i], r))
            return 1;
    return 0;
}

/* One policy's verdict: SL_OK or SL_EFORBIDDEN (reason in *why, static text). Deny wins; a
 * non-empty allow list is the whole of what the principal may do. */
static int policy_decide(const policy *p, const sl_op_info *info, const char *resource,
                         const char **why)
{
    if (side_matches(&p->deny, info, resource)) {
        *why = "denied by the invoke policy";
        return SL_EFORBIDDEN;
    }
    if (p->allow.n > 0 && !side_matches(&p->allow, info, resource)) {
        *why = "not allowed by the invoke policy";
        return SL_EFORBIDDEN;
    }
    *why = p->allow.n > 0 ? "allowed by the invoke policy" : "not denied by the invoke policy";
    return SL_OK;
}

static int apply_policy(sl_ctx *ctx, const policy *p, const sl_identity *who,
                        const sl_op_info *info, const char *resource)
{
    const char *why;
    int rc = policy_decide(p, info, resource, &why);
    if (p->audit)
        sl__audit(ctx, NULL, "policy.invoke", "principal", who->principal, "policy", p->pattern,
                  "operation", info->name, "resource", resource, "decision",
                  rc == SL_OK ? "allow" : "deny", "reason", why, NULL);
    return rc;
}

int sl__rules_decide(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info,
                     const char *resource)
{
    const char *channel = info->resource == SL_RES_CHANNEL ? resource : NULL;
    /* Deny rules of the caller's ACL entry and broker roles win under every mode, over token
     * scopes and other grants alike. Only channel operations and global ones are about channels;
     * a principal's own resources (its tokens, its roles) are not. */
    /* Grants, roles and policies are keyed by (workspace, principal). */
    char qp[SL__QPRINCIPAL_SIZE];
    const char *key = sl__ws_principal(who, qp);
    if (info->resource == SL_RES_CHANNEL || info->resource == SL_RES_NONE) {
        if (sl__acl_denied(ctx->acl, key, channel))
            return SL_EFORBIDDEN;
        if (ctx->broker && sl_broker_denies(ctx->broker, key, channel))
            return SL_EFORBIDDEN;
    }
    const sl__invoke *p = ctx->invoke;
    if (p != NULL && p->broken)
        return SL_EFORBIDDEN;
    if (p == NULL || sl__map_size(p->by_pattern) == 0)
        return SL_OK;
    int rc = SL_OK;
    const policy *exact = sl__map_get(p->by_pattern, key);
    if (exact != NULL && !exact->glob && apply_policy(ctx, exact, who, info, resource) != SL_OK)
        rc = SL_EFORBIDDEN;
    /* every policy whose pattern matches applies: the caller must pass each of them */
    for (size_t i = 0; i < p->nglobs; i++)
        if (glob_match(p->globs[i]->pattern, key) &&
            apply_policy(ctx, p->globs[i], who, info, resource) != SL_OK)
            rc = SL_EFORBIDDEN;
    return rc;
}

int sl__rules_user_limited(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info,
                           const char *resource)
{
    (void)ctx;
    if (info->resource != SL_RES_CHANNEL || sl_channel_users(resource) == NULL)
        return SL__RULES_NEXT;
    /* Reading is the listed users' alone (a WebSocket subscription is a channel.read); writing
     * and administering stay with the regime, so a backend can publish into "inbox#alice". */
    if (info->op != SL_OP_CHANNEL_READ && info->op != SL_OP_CHANNEL_INFO)
        return SL__RULES_NEXT;
    if (who->source == SL_SOURCE_NONE || !sl_channel_user_listed(resource, who->principal))
        return SL_EFORBIDDEN;
    /* A listed user needs a read role, not a scope naming the channel: its credential's role, or
     * (credentials without one) whatever the regime gives it. */
    if (who->role >= SL_ROLE_READ || who->source == SL_SOURCE_LOCAL)
        return SL_OK;
    return SL__RULES_NEXT;
}
