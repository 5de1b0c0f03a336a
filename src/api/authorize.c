/* The authoriser: step 2 of the pipeline, part of the channel API layer because it reads the
 * context (mode, channel registry, ACL, broker) (and the audit of its denials). Given an identity,
 * an operation from the registry and its resource, it decides under the mode that governs the
 * resource: open  - allow; token - the credential's role and channel scope decide; in-process
 * callers are trusted; acl   - the ACL decides for the principal; a credential's role and scope can
 * only narrow it. Anything it does not recognise is denied (fail closed). The decision never
 * depends on whether the channel exists, so a denied caller cannot probe for names. */
#include "api/ctx.h"
#include "security/acl.h"
#include "security/workspace.h"
#include "security/invoke.h"

#include <sluice/broker.h>

#include <stdio.h>
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
        char qp[SL__QPRINCIPAL_SIZE]; /* part C: grants are keyed by (workspace, principal) */
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
                sl_status *st)
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
              "insufficient role or scope", NULL);
    return SL_EFORBIDDEN;
}

/* The decision alone: SL_OK, SL_EUNAUTH or SL_EFORBIDDEN. */
static int decide(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info, const char *resource)
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
    /* (2) part C, workspaces: only the caller's own workspace's resources; from here on the
     * resource is the caller's name and qid the channel the registry knows. */
    char qid[SL__QID_SIZE];
    if (sl__ws_decide(who, info, &resource, qid) != SL_OK)
        return SL_EFORBIDDEN;
    /* (B) step 3: deny rules and the invoke policy; deny wins over every regime */
    int rules = sl__rules_decide(ctx, who, info, resource);
    if (rules != SL_OK)
        return rules;
    /* (B) step 4: user-limited channels ("inbox#alice") */
    if ((rules = sl__rules_user_limited(ctx, who, info, resource)) != SL__RULES_NEXT)
        return rules;
    const char *channel = info->resource == SL_RES_CHANNEL ? resource : NULL;
    sl_mode mode = sl__ctx_channel_mode(ctx, channel ? qid : NULL);
    if (mode == SL_MODE_OPEN)
        return SL_OK;
    if (who->source == SL_SOURCE_NONE)
        return SL_EUNAUTH;
    if (info->resource == SL_RES_CHANNELS)
        return SL_OK; /* authorised per channel by the operation itself */
    if (info->self_allowed && resource && strcmp(resource, who->principal) == 0)
        return SL_OK;
    return effective_role(ctx, mode, who, channel) >= info->role ? SL_OK : SL_EFORBIDDEN;
}

int sl_authorize(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *resource, sl_status *st)
{
    const sl_op_info *info = sl_op_lookup(op);
    if (info == NULL)
        return sl_status_set(st, SL_EINVAL, "unknown operation");
    int rc = decide(ctx, who, info, resource);
    if (rc == SL_EUNAUTH)
        return sl_status_set(st, SL_EUNAUTH,
                             who && who->source == SL_SOURCE_JWT
                                 ? "a sluice token cannot be used to obtain tokens"
                                 : "authentication required");
    if (rc == SL_EFORBIDDEN)
        return deny(ctx, who, info, resource, st);
    return SL_OK;
}

int sl__authorized_quiet(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *channel)
{
    const sl_op_info *info = sl_op_lookup(op);
    return info != NULL && decide(ctx, who, info, channel) == SL_OK;
}
