/* The authoriser: step 2 of the pipeline, part of the channel API layer because it reads the
 * context (mode, channel registry, ACL, broker) (and the audit of its denials). Given an identity,
 * an operation from the registry and its resource, it decides under the mode that governs the
 * resource (sl__authz_mode: the channel's own, a per-pattern override, the server-wide one), each
 * mode a regime of the authorise contract (sluice/authz.h): open  - allow; token - the
 * credential's role and channel scope decide; in-process callers are trusted; acl   - the ACL
 * decides for the principal; a credential's role and scope can only narrow it; policy - the
 * context's pluggable regime, through the decision cache (asked beforehand by sl__authz_prepare;
 * an error of the regime is SL_EUNAVAIL). Anything it does not recognise is denied (fail closed).
 * The decision never depends on whether the channel exists, so a denied caller cannot probe for
 * names. */
#include "api/ctx.h"
#include "core/metrics.h"
#include "security/acl.h"
#include "security/workspace.h"
#include "security/invoke.h"

#include <sluice/authz.h>
#include <sluice/broker.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int scope_allows(const sl_identity *who, const char *channel)
{
    if (!who->scoped)
        return 1;
    if (channel == NULL) /* global operations need an unscoped credential */
        return 0;
    for (size_t i = 0; i < who->nchannels; i++)
        if (sl_pattern_match(who->channels[i], channel))
            return 1;
    return 0;
}

/* The role who holds on channel (NULL: on all channels) under mode. */
static sl_role effective_role(const sl_ctx *ctx, sl_mode mode, const sl_identity *who,
                              const char *channel)
{
    sl_role have;
    switch (mode) {
    case SL_MODE_OPEN:
        return SL_ROLE_ADMIN;
    case SL_MODE_TOKEN:
        if (who->source == SL_SOURCE_LOCAL)
            return SL_ROLE_ADMIN;
        /* A role grants only on credentials sluice issued itself (a signature key's role is
         * configured here, like an API key's); an identity provider's token or an introspected
         * one carries at most a ceiling (for the broker), never a grant. */
        have = who->source == SL_SOURCE_JWT || who->source == SL_SOURCE_APIKEY ||
                       who->source == SL_SOURCE_SIGNATURE
                   ? who->role
                   : SL_ROLE_NONE;
        break;
    case SL_MODE_ACL: {
        char qp[SL__QPRINCIPAL_SIZE]; /* grants are keyed by (workspace, principal) */
        have = sl__acl_role(ctx->acl, sl__ws_principal(who, qp), channel);
        if (who->role != SL_ROLE_NONE && who->role < have)
            have = who->role;
        break;
    }
    default:
        return SL_ROLE_NONE;
    }
    return scope_allows(who, channel) ? have : SL_ROLE_NONE;
}

static int deny(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info, const char *resource,
                const char *why, sl_status *st)
{
    if (info->resource == SL_RES_CHANNEL)
        sl_status_set(st, SL_EFORBIDDEN, "'%s' is not authorised to %s channel '%s'.",
                      who->principal, info->verb, resource ? resource : "");
    else if ((info->self_allowed || info->delegation) && resource)
        sl_status_set(st, SL_EFORBIDDEN, "'%s' is not authorised to %s '%s'.", who->principal,
                      info->verb, resource);
    else
        sl_status_set(st, SL_EFORBIDDEN, "'%s' is not authorised to %s.", who->principal,
                      info->verb);
    sl__audit(ctx, NULL, "authz.denied", "principal", who->principal, "source",
              sl_source_name(who->source), "operation", info->name, "resource", resource, "reason",
              why ? why : "insufficient role or scope", NULL);
    sl__metrics_denied(ctx->metrics, info->op);
    return SL_EFORBIDDEN;
}

/* The pluggable regime's answer, cached or handed over (sl__authz_prepare asked it). */
static int policy_decide(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info,
                         const char *resource, const char *parameters, const char **why)
{
    const sl_decision *d = sl__authz_known(ctx, who, info->name, resource, parameters);
    if (d == NULL)
        return SL__AUTHZ_ASK;
    if (why && d->reason[0])
        *why = d->reason;
    return d->verdict == SL_VERDICT_ALLOW  ? SL_OK
           : d->verdict == SL_VERDICT_DENY ? SL_EFORBIDDEN
                                           : SL_EUNAVAIL;
}

/* The decision alone: SL_OK, SL_EUNAUTH, SL_EFORBIDDEN, SL_EUNAVAIL or SL__AUTHZ_ASK. The order of
 * checks: (1) system callers, no role needed, no_sluice_tokens, delegation; (2) the
 * workspace; (3) the invoke policy; (4) user-limited channels; (5) the regime of the mode. */
int sl__authz_decide(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info,
                     const char *resource, const char *parameters, const char **why)
{
    if (who == NULL || who->source == SL_SOURCE_SYSTEM || info->role == SL_ROLE_NONE)
        return SL_OK;
    /* Minting tokens is the broker's decision under every mode, open included: it needs a real
     * credential that is not itself a sluice token, and delegation needs a rule. */
    if (info->no_sluice_tokens && (who->source == SL_SOURCE_NONE || who->source == SL_SOURCE_JWT))
        return SL_EUNAUTH;
    if (info->delegation)
        return ctx->broker && sl_broker_may_delegate(ctx->broker, who->principal, resource)
                   ? SL_OK
                   : SL_EFORBIDDEN;
    /* (2) workspaces: only the caller's own workspace's resources; from here on the
     * resource is the caller's name and qid the channel the registry knows. */
    char qid[SL__QID_SIZE];
    if (sl__ws_decide(who, info, &resource, qid) != SL_OK)
        return SL_EFORBIDDEN;
    /* step 3: deny rules and the invoke policy; deny wins over every regime */
    int rules = sl__rules_decide(ctx, who, info, resource);
    if (rules != SL_OK)
        return rules;
    /* step 4: user-limited channels ("inbox#alice") */
    if ((rules = sl__rules_user_limited(ctx, who, info, resource)) != SL__RULES_NEXT)
        return rules;
    /* One channel of a token request (token.issue with the channel as resource, asked by the
     * broker's route for each channel it would grant): the broker's rules decide, and where the
     * channel is under the policy mode the regime must allow it too. */
    if (info->resource == SL_RES_CHANNELS && resource != NULL) {
        char cq[SL__QID_SIZE];
        if (sl__ws_qualify(who->workspace, resource, cq, sizeof cq) != SL_OK)
            return SL_EFORBIDDEN;
        return sl__authz_mode(ctx, cq, resource) == SL_MODE_POLICY
                   ? policy_decide(ctx, who, info, resource, parameters, why)
                   : SL_OK;
    }
    const char *channel = info->resource == SL_RES_CHANNEL ? resource : NULL;
    sl_mode mode = sl__authz_mode(ctx, channel ? qid : NULL, channel);
    if (mode == SL_MODE_OPEN)
        return SL_OK;
    if (who->source == SL_SOURCE_NONE)
        return SL_EUNAUTH;
    if (info->resource == SL_RES_CHANNELS)
        return SL_OK; /* authorised per channel by the operation itself */
    if (info->self_allowed && resource && strcmp(resource, who->principal) == 0)
        return SL_OK;
    if (mode == SL_MODE_POLICY)
        return policy_decide(ctx, who, info, resource, parameters, why);
    return effective_role(ctx, mode, who, channel) >= info->role ? SL_OK : SL_EFORBIDDEN;
}

int sl_authorize(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *resource, sl_status *st)
{
    const sl_op_info *info = sl_op_lookup(op);
    if (info == NULL)
        return sl_status_set(st, SL_EINVAL, "unknown operation");
    const char *why = NULL;
    int rc = sl__authz_decide(ctx, who, info, resource, NULL, &why);
    if (rc == SL_EUNAVAIL || rc == SL__AUTHZ_ASK) {
        /* Fail closed, and say so without the regime's words (they may name its internals). */
        sl__audit(ctx, NULL, "authz.error", "principal", who->principal, "source",
                  sl_source_name(who->source), "operation", info->name, "resource", resource,
                  "reason", rc == SL__AUTHZ_ASK ? "the regime was not asked" : why, NULL);
        return sl_status_set(st, SL_EUNAVAIL,
                             "the authorisation policy could not decide; try again later");
    }
    if (rc == SL_EUNAUTH)
        return sl_status_set(st, SL_EUNAUTH,
                             who && who->source == SL_SOURCE_JWT
                                 ? "a sluice token cannot be used to obtain tokens"
                                 : "authentication required");
    if (rc == SL_EFORBIDDEN)
        return deny(ctx, who, info, resource, why, st);
    return SL_OK;
}

typedef struct sync_ask {
    sl_ctx *ctx;
    const sl_identity *who;
    sl_op op;
    const char *resource;
    sl_status *st;
    int rc, done;
} sync_ask;

static void sync_ready(void *ud)
{
    sync_ask *a = ud;
    a->rc = sl_authorize(a->ctx, a->who, a->op, a->resource, a->st);
    a->done = 1;
}

int sl__authorize_sync(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *resource,
                       sl_status *st)
{
    sync_ask a = {ctx, who, op, resource, st, SL_OK, 0};
    sl__authz_prepare(ctx, who, op, &resource, 1, sync_ready, &a);
    sl__ctx_wait(ctx, &a.done);
    if (!a.done)
        return sl_status_set(st, SL_EUNAVAIL,
                             "the authorisation policy could not decide; try again later");
    return a.rc;
}

int sl__authorized_quiet(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *channel)
{
    const sl_op_info *info = sl_op_lookup(op);
    return info != NULL && sl__authz_decide(ctx, who, info, channel, NULL, NULL) == SL_OK;
}

/* ---- (A) the built-in models as regimes of the contract ------------------------------------- */

typedef struct builtin {
    sl_regime base;
    sl_ctx *ctx;
    sl_mode mode;
} builtin;

/* Step 5 of decide() under b->mode alone: what a channel of that mode would say. */
static int builtin_allows(const builtin *b, const sl_identity *who, const sl_op_info *info,
                          const char *resource)
{
    if (b->mode == SL_MODE_OPEN || who == NULL || who->source == SL_SOURCE_SYSTEM ||
        info->role == SL_ROLE_NONE)
        return 1;
    if (who->source == SL_SOURCE_NONE)
        return 0;
    if (info->resource == SL_RES_CHANNELS)
        return 1;
    if (info->self_allowed && resource && strcmp(resource, who->principal) == 0)
        return 1;
    const char *channel = info->resource == SL_RES_CHANNEL ? resource : NULL;
    return effective_role(b->ctx, b->mode, who, channel) >= info->role;
}

static void builtin_authorise(sl_regime *self, const sl_authz_query *q, sl_authz_done_fn done,
                              void *ud)
{
    const builtin *b = (const builtin *)self;
    const sl_op_info *info = sl_op_by_name(q->capability);
    sl_decision one = {SL_VERDICT_ERROR, 0, "out of memory"};
    sl_decision *d = calloc(q->n ? q->n : 1, sizeof *d);
    for (size_t i = 0; d && i < q->n; i++) {
        if (info == NULL) {
            d[i].verdict = SL_VERDICT_ERROR;
            snprintf(d[i].reason, sizeof d[i].reason, "unknown capability");
        } else if (builtin_allows(b, q->who, info, q->resources[i])) {
            d[i].verdict = SL_VERDICT_ALLOW;
        } else {
            d[i].verdict = SL_VERDICT_DENY;
            snprintf(d[i].reason, sizeof d[i].reason, "insufficient role or scope");
        }
    }
    done(ud, d ? d : &one, d ? q->n : (q->n ? 1 : 0));
    free(d);
}

static void builtin_free(sl_regime *self)
{
    free(self);
}

int sl_regime_builtin_new(sl_regime **out, sl_ctx *ctx, sl_mode mode)
{
    static const char *const names[] = {
        [SL_MODE_OPEN] = "open", [SL_MODE_ACL] = "acl", [SL_MODE_TOKEN] = "token"};
    if (ctx == NULL || (mode != SL_MODE_OPEN && mode != SL_MODE_ACL && mode != SL_MODE_TOKEN))
        return SL_EINVAL;
    builtin *b = calloc(1, sizeof *b);
    if (b == NULL)
        return SL_ENOMEM;
    b->base.name = names[mode];
    b->base.authorise = builtin_authorise;
    b->base.free = builtin_free;
    b->ctx = ctx;
    b->mode = mode;
    *out = &b->base;
    return SL_OK;
}
