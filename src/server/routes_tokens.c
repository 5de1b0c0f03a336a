/* The token routes of the HTTP API: the broker's POST /token (a token for the caller) and
 * POST /token/delegate (for the principal a service acts for), and POST /revoke (a token id, or
 * every token of a principal, into the revocation store). Issuance asks the broker which of the
 * requested channels it grants (sl_broker_decide), then takes away what an ACL deny rule or the
 * authorisation policy refuses; every issuance and every refusal is audited, and one that cannot
 * be audited is not made. A revocation is audited before it is made. The router decided the
 * route's operation before these run. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/authz.h>
#include <sluice/broker.h>

#include "api/ctx.h"
#include "security/workspace.h"
#include "server/params.h"
#include "server/routes.h"

/* ---- token revocation ------------------------------------------------------------------------ */

typedef struct revoke_req {
    const char *token_id, *user_id, *reason; /* borrowed from body */
} revoke_req;

/* {"token_id":...} or {"user_id":...}, optional "reason"; strings borrowed from body. */
static int parse_revoke(json_t *body, revoke_req *rq, sl_status *st)
{
    static const char *const fields[] = {"token_id", "user_id", "reason", NULL};
    int rc = sl__only_fields(body, fields, st);
    if (rc != SL_OK)
        return rc;
    memset(rq, 0, sizeof *rq);
    if (sl__get_string(body, "token_id", &rq->token_id, st) < 0 ||
        sl__get_string(body, "user_id", &rq->user_id, st) < 0 ||
        sl__get_string(body, "reason", &rq->reason, st) < 0)
        return st->code;
    if (!rq->token_id == !rq->user_id)
        return sl__fail(st, SL_EINVAL, "give exactly one of token_id and user_id");
    if (rq->token_id && !sl_revocation_id_valid(rq->token_id))
        return sl__fail(st, SL_EINVAL, "invalid token_id");
    if (rq->user_id && !sl_principal_valid(rq->user_id, strlen(rq->user_id)))
        return sl__fail(st, SL_EINVAL, "invalid user_id");
    if (rq->reason && strlen(rq->reason) > SL_REVOCATION_REASON_MAX)
        return sl__fail(st, SL_EINVAL, "reason longer than 255 bytes");
    return SL_OK;
}

/* The resource of a revocation: whose tokens. The caller's own principal, the token it presents,
 * and any token id minted for it (sluice's ids are bound to their subject: sl_jwt_token_id_of) are
 * its own; any other token id has an unknown owner ("*"), which takes an admin. */
int sl__resolve_revoke(sl__router *r, const sl_http_request *req, const sl_identity *who, char *res,
                       size_t cap, sl_status *st)
{
    json_t *body;
    revoke_req rq;
    int rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    rc = parse_revoke(body, &rq, st);
    if (rc == SL_OK) {
        const char *owner = rq.user_id;
        if (owner == NULL)
            owner = strcmp(rq.token_id, who->token_id) == 0 ||
                            sl_jwt_token_id_of(r->authn.keys, rq.token_id, who->principal)
                        ? who->principal
                        : "*";
        snprintf(res, cap, "%s", owner);
    }
    json_decref(body);
    return rc;
}

static void on_revoked(void *ud, int status, const char *reason)
{
    sl__job *job = ud;
    if (status == SL_OK)
        sl__response_json(sl__job_response(job), 200, json_pack("{s:b}", "ok", 1));
    else if (status == SL_EUNAVAIL)
        sl_status_set(sl__job_status(job), status, "revocation store unavailable");
    else
        sl_status_set(sl__job_status(job), status, "%s", sl_strerror(status));
    sl__job_finish(job, status);
}

void sl__start_revoke(sl__job *job)
{
    sl__router *r = sl__job_router(job);
    const sl_identity *who = sl__job_who(job);
    const sl_http_request *req = sl__job_request(job);
    sl_status *st = sl__job_status(job);
    json_t *body;
    revoke_req rq;
    int rc = sl__parse_body(req, &body, st);
    if (rc == SL_OK && (rc = parse_revoke(body, &rq, st)) == SL_OK && r->authn.revocation == NULL)
        rc = sl__fail(st, SL_ENOENT, "token revocation is not enabled on this server");
    /* Written ahead: a revocation nobody could audit is not made. */
    if (rc == SL_OK)
        rc = sl__audit(r->ctx, st, "token.revoke", "actor", who->principal, "token_id", rq.token_id,
                       "user", rq.user_id, "reason", rq.reason, "remote_addr", req->remote_addr,
                       NULL);
    if (rc != SL_OK) {
        json_decref(body);
        sl__job_finish(job, rc);
        return;
    }
    if (rq.user_id) {
        sl_revocation_revoke_user(r->authn.revocation, rq.user_id, on_revoked, job);
    } else {
        int own = strcmp(rq.token_id, who->token_id) == 0;
        sl_revocation_revoke(r->authn.revocation, rq.token_id, own ? who->principal : NULL,
                             rq.reason, own ? who->expires_at : 0, on_revoked, job);
    }
    json_decref(body); /* the store copied what it keeps */
}

/* ---- the token broker ------------------------------------------------------------------------ */

/* "channels" of a token request: a non-empty array of strings (ids are checked by the broker, which
 * denies invalid ones with a reason). */
static int parse_channels(json_t *body, const char ***out, size_t *n, sl_status *st)
{
    return sl__string_list(body, "channels", SL__MAX_TOKEN_CHANNELS, 1, NULL, "channel ids", out, n,
                           st);
}

static json_t *denials_json(const sl_broker_decision *d)
{
    json_t *a = json_array();
    for (size_t i = 0; i < d->ndenied; i++)
        json_array_append_new(a, json_pack("{s:s, s:s}", "channel", d->denied[i].channel, "reason",
                                           d->denied[i].reason));
    return a;
}

static void rfc3339(double t, char out[32])
{
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Moves granted[i] to the denied channels with reason. SL_ENOMEM leaves it granted: the caller
 * then keeps the rest too (keep_rest) and fails the request, and the decision's clear frees them.
 */
static int deny_at(sl_broker_decision *d, size_t i, const char *reason)
{
    sl_broker_denial *v = realloc(d->denied, (d->ndenied + 1) * sizeof *v);
    if (v == NULL)
        return SL_ENOMEM;
    d->denied = v;
    d->denied[d->ndenied].channel = d->granted[i];
    d->denied[d->ndenied++].reason = reason;
    return SL_OK;
}

/* Ends a filtering pass over d->granted stopped at i (kept channels so far): the unfiltered rest
 * stays granted, so that every channel is still owned by the decision. Returns rc. */
static int keep_rest(sl_broker_decision *d, size_t i, size_t kept, int rc)
{
    for (size_t k = i; k < d->ngranted; k++)
        d->granted[kept++] = d->granted[k];
    d->ngranted = kept;
    return rc;
}

/* Ends a filtering pass that went through: kept channels remain; none left, no role either. */
static int kept_only(sl_broker_decision *d, size_t kept)
{
    d->ngranted = kept;
    if (kept == 0)
        d->role = SL_ROLE_NONE;
    return SL_OK;
}

/* The ACL's deny rules for sub win over the broker's roles: a channel they deny is never
 * minted, and is listed among the denied channels. */
static int acl_denies(sl_ctx *ctx, const char *sub, sl_broker_decision *d)
{
    size_t kept = 0;
    for (size_t i = 0; i < d->ngranted; i++) {
        if (!sl__acl_denied(ctx->acl, sub, d->granted[i]))
            d->granted[kept++] = d->granted[i];
        else if (deny_at(d, i, "denied by an ACL deny rule") != SL_OK)
            return keep_rest(d, i, kept, SL_ENOMEM);
    }
    return kept_only(d, kept);
}

/* Under the policy mode the regime has its say on each channel the broker would grant (asked
 * before the handler ran: prepare_token_channels): a refused channel moves to the denied ones; a
 * regime that could not answer fails the whole request (503), as a decision does everywhere. */
static int policy_denies(sl_ctx *ctx, const sl_identity *who, sl_broker_decision *d)
{
    const sl_op_info *info = sl_op_lookup(SL_OP_TOKEN_ISSUE);
    size_t kept = 0;
    for (size_t i = 0; i < d->ngranted; i++) {
        int rc = sl__authz_decide(ctx, who, info, d->granted[i], NULL, NULL);
        if (rc == SL_OK)
            d->granted[kept++] = d->granted[i];
        else if (rc != SL_EFORBIDDEN) /* SL_EUNAVAIL, or not asked: fail closed */
            return keep_rest(d, i, kept, SL_EUNAVAIL);
        else if (deny_at(d, i, "denied by the authorisation policy") != SL_OK)
            return keep_rest(d, i, kept, SL_ENOMEM);
    }
    return kept_only(d, kept);
}

/* Issues a token for sub (act: the delegating service, or NULL) and renders the answer. Every
 * issuance and every refused one is audited; an issuance that cannot be audited is not made. */
static int issue(sl__router *r, const sl_identity *who, const sl_http_request *req, const char *sub,
                 const char *act, const char *const *channels, size_t n, double ttl,
                 sl__response *resp, sl_status *st)
{
    if (r->broker == NULL)
        return sl__fail(st, SL_ENOENT, "the token broker is not enabled on this server");
    sl_broker_decision d;
    int rc = sl_broker_decide(r->broker, who, sub, channels, n, &d);
    char qsub[SL__QPRINCIPAL_SIZE]; /* the subject's ACL entry is its workspace's */
    if (rc == SL_OK && sl__ws_qualify(who->workspace, sub, qsub, sizeof qsub) != SL_OK)
        rc = SL_EINVAL;
    if (rc == SL_OK)
        rc = acl_denies(r->ctx, qsub, &d);
    if (rc == SL_OK)
        rc = policy_denies(r->ctx, who, &d);
    if (rc != SL_OK) {
        sl_broker_decision_clear(&d);
        return sl_status_set(st, rc,
                             rc == SL_EUNAVAIL ? "the authorisation policy did not answer" : NULL);
    }
    json_t *rec = json_pack("{s:s, s:s, s:s?, s:o, s:o, s:s}", "event",
                            d.ngranted ? "token.issue" : "token.denied", "issued_to", sub,
                            "delegator", act, "channels", sl__string_array(d.granted, d.ngranted),
                            "denied", denials_json(&d), "remote_addr", req->remote_addr);
    if (d.ngranted == 0) {
        sl__audit_json(r->ctx, NULL, rec);
        json_t *body = json_pack("{s:s, s:s, s:[], s:o}", "error", "forbidden", "message",
                                 "no requested channel may be granted", "channels_granted",
                                 "channels_denied", denials_json(&d));
        sl__response_json(resp, 403, body);
        sl_broker_decision_clear(&d);
        return SL_OK;
    }
    sl_broker_token t;
    rc = sl_broker_mint(r->broker, r->authn.keys, sub, act, &d, ttl, sl_ctx_now(r->ctx), &t);
    if (rc != SL_OK) {
        json_decref(rec);
        sl_broker_decision_clear(&d);
        return sl_status_set(st, rc, "cannot mint a token: %s", sl_strerror(rc));
    }
    char exp[32], iat[32];
    rfc3339(t.expires_at, exp);
    rfc3339(t.issued_at, iat);
    json_object_set_new(rec, "token_id", json_string(t.token_id));
    json_object_set_new(rec, "expires_at", json_string(exp));
    json_object_set_new(rec, "issued_at", json_string(iat));
    json_object_set_new(rec, "requested_by", json_string(who->principal));
    if (who->workspace[0])
        json_object_set_new(rec, "workspace", json_string(who->workspace));
    rc = sl__audit_json(r->ctx, st, rec);
    if (rc == SL_OK)
        sl__response_json(resp, 200,
                          json_pack("{s:s, s:s, s:s, s:o, s:o}", "token", t.token, "token_id",
                                    t.token_id, "expires_at", exp, "channels_granted",
                                    sl__string_array(d.granted, d.ngranted), "channels_denied",
                                    denials_json(&d)));
    size_t toklen = strlen(t.token);
    memset(t.token, 0, toklen);
    free(t.token);
    sl_broker_decision_clear(&d);
    return rc;
}

int sl__h_token(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"channels", "ttl", NULL};
    json_t *body;
    int rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char **chans = NULL;
    size_t n = 0;
    double ttl;
    if ((rc = sl__only_fields(body, fields, st)) == SL_OK &&
        (rc = parse_channels(body, &chans, &n, st)) == SL_OK &&
        (rc = sl__get_ttl(body, "ttl", &ttl, st)) == SL_OK)
        rc = issue(r, who, req, who->principal, NULL, chans, n, ttl, resp, st);
    free(chans);
    json_decref(body);
    return rc;
}

/* The resource of a delegation is the principal the token is for. */
int sl__resolve_delegate(sl__router *r, const sl_http_request *req, const sl_identity *who,
                         char *res, size_t cap, sl_status *st)
{
    json_t *body;
    int rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char *p = NULL;
    if (sl__get_string(body, "on_behalf_of", &p, st) < 0 || p == NULL ||
        !sl_principal_valid(p, strlen(p)))
        rc = sl__fail(st, SL_EINVAL, "on_behalf_of must be a principal id");
    else
        snprintf(res, cap, "%s", p);
    json_decref(body);
    return rc;
}

int sl__h_delegate(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                   sl__response *resp, sl_status *st)
{
    static const char *const fields[] = {"on_behalf_of", "channels", "lifetime_seconds", NULL};
    json_t *body;
    int rc = sl__parse_body(req, &body, st);
    if (rc != SL_OK)
        return rc;
    const char **chans = NULL;
    size_t n = 0;
    double ttl;
    if ((rc = sl__only_fields(body, fields, st)) == SL_OK &&
        (rc = parse_channels(body, &chans, &n, st)) == SL_OK &&
        (rc = sl__get_ttl(body, "lifetime_seconds", &ttl, st)) == SL_OK)
        rc = issue(r, who, req, principal, who->principal, chans, n, ttl, resp, st);
    free(chans);
    json_decref(body);
    return rc;
}
