/* The handlers of the HTTP API's route families, for the one route table in server/router.c:
 * channels (routes_channels.c: a prepare that fills a channel API request and a render that
 * answers from its outcome), tokens (routes_tokens.c: the broker's issue and delegate, and
 * revocation), access (routes_access.c: ACL, broker roles, the invoke policy, the decision cache)
 * and API keys (routes_apikeys.c). Access was decided by the router before any of them runs. */
#ifndef SLUICE_SERVER_ROUTES_H
#define SLUICE_SERVER_ROUTES_H

#include <stddef.h>

#include "server/router.h"

/* The handlers' request parameter. */
typedef const sl_http_request req_t;

/* Channels a token request, or an API key's scope, may name. */
#define SL__MAX_TOKEN_CHANNELS 1000

/* ---- channels (routes_channels.c) ---- */
int sl__p_list(sl__job *job, struct sl__chop *op);
int sl__r_list(sl__job *job, struct sl__chop *op);
int sl__p_create(sl__job *job, struct sl__chop *op);
int sl__r_create(sl__job *job, struct sl__chop *op);
int sl__p_read(sl__job *job, struct sl__chop *op);
int sl__r_read(sl__job *job, struct sl__chop *op);
int sl__p_write(sl__job *job, struct sl__chop *op);
int sl__r_write(sl__job *job, struct sl__chop *op);
int sl__p_simple(sl__job *job, struct sl__chop *op); /* nothing beyond the channel */
int sl__r_ok(sl__job *job, struct sl__chop *op);
int sl__r_info(sl__job *job, struct sl__chop *op);
int sl__p_ids(sl__job *job, struct sl__chop *op); /* {"message_ids":[...]} */
int sl__p_nack(sl__job *job, struct sl__chop *op);
int sl__p_evict(sl__job *job, struct sl__chop *op);
int sl__p_extend(sl__job *job, struct sl__chop *op);
int sl__p_terminate(sl__job *job, struct sl__chop *op);
int sl__r_count(sl__job *job, struct sl__chop *op); /* {"status":"ok","<done>":N} */
int sl__p_envelope(sl__job *job, struct sl__chop *op);
int sl__r_envelope(sl__job *job, struct sl__chop *op);
int sl__p_batch(sl__job *job, struct sl__chop *op);
int sl__r_batch(sl__job *job, struct sl__chop *op);

/* ---- tokens (routes_tokens.c) ---- */
int sl__resolve_revoke(sl__router *r, const sl_http_request *req, const sl_identity *who, char *res,
                       size_t cap, sl_status *st);
void sl__start_revoke(sl__job *job);
int sl__h_token(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                sl__response *resp, sl_status *st);
int sl__resolve_delegate(sl__router *r, const sl_http_request *req, const sl_identity *who,
                         char *res, size_t cap, sl_status *st);
int sl__h_delegate(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                   sl__response *resp, sl_status *st);

/* ---- access (routes_access.c) ---- */
int sl__h_acl_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                   sl__response *resp, sl_status *st);
int sl__h_acl_put(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                  sl__response *resp, sl_status *st);
int sl__h_acl_del(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                  sl__response *resp, sl_status *st);
int sl__h_broker_get(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                     sl__response *resp, sl_status *st);
int sl__h_broker_put(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                     sl__response *resp, sl_status *st);
int sl__h_broker_delete(sl__router *r, const sl_identity *who, req_t *req, const char *principal,
                        sl__response *resp, sl_status *st);
int sl__h_policy_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                      sl__response *resp, sl_status *st);
int sl__h_policy_put(sl__router *r, const sl_identity *who, req_t *req, const char *pattern,
                     sl__response *resp, sl_status *st);
int sl__h_policy_delete(sl__router *r, const sl_identity *who, req_t *req, const char *pattern,
                        sl__response *resp, sl_status *st);
int sl__h_authz_invalidate(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                           sl__response *resp, sl_status *st);

/* ---- API keys (routes_apikeys.c) ---- */
int sl__h_apikey_create(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                        sl__response *resp, sl_status *st);
int sl__h_apikey_list(sl__router *r, const sl_identity *who, req_t *req, const char *res,
                      sl__response *resp, sl_status *st);
int sl__h_apikey_expire(sl__router *r, const sl_identity *who, req_t *req, const char *id,
                        sl__response *resp, sl_status *st);
int sl__h_apikey_delete(sl__router *r, const sl_identity *who, req_t *req, const char *id,
                        sl__response *resp, sl_status *st);

#endif
