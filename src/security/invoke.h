/* The rules that deny before any regime decides. The invoke policy (per
 * principal or principal pattern, allow and deny lists of "operation:resource" patterns, deny
 * wins, optionally audited), the deny rules of ACL grants and broker roles applied under every
 * mode, and user-limited channels ("inbox#alice"). decide() in api/authorize.c calls
 * sl__rules_decide (step 3) and sl__rules_user_limited (step 4); docs/POLICY.md. */
#ifndef SLUICE_SECURITY_INVOKE_H
#define SLUICE_SECURITY_INVOKE_H

#include <sluice/sluice.h>

#include <jansson.h>

struct sl__kv;
typedef struct sl__invoke sl__invoke;

/* *out owned by the caller; release with sl__invoke_free. */
int sl__invoke_new(sl__invoke **out);
void sl__invoke_free(sl__invoke *p);

/* Replaces the policy of principal pattern `pattern` (an exact principal, or a glob where '*'
 * matches any run of bytes: "svc-*", "*"). allow and deny are "operation:resource" rules:
 * the operation a glob on the registry's names ("channel.write", "acl.*", "*"), the resource
 * after the first ':' a channel pattern for channel operations and a glob otherwise; no ':' means
 * any resource. audit: every decision this policy takes is audited. SL_EINVAL with the reason in
 * st for a bad pattern or rule (a rule whose operation glob names no operation is refused, so is a
 * resource that is not a channel pattern when the glob names channel operations); with a kv
 * attached, the kv's error when the change cannot be staged (the policy then stays as it was). */
int sl__invoke_set(sl__invoke *p, const char *pattern, const char *const *allow, size_t nallow,
                   const char *const *deny, size_t ndeny, int audit, sl_status *st);
/* SL_ENOENT when pattern has no policy; with a kv, the kv's error (nothing changed). */
int sl__invoke_del(sl__invoke *p, const char *pattern);
size_t sl__invoke_size(const sl__invoke *p);
/* Every policy as a new JSON array of {"principal","allow","deny","audit"} sorted by pattern
 * (the caller owns it; NULL on SL_ENOMEM). */
json_t *sl__invoke_list(const sl__invoke *p);
/* Makes the policies durable in kv (borrowed; it must outlive p): loads every stored policy, then
 * stages each change in the same call as sl__ctx_sync's barrier expects. Stored: table
 * SL__KV_INVOKE, key = the principal pattern, value {"v":1,"allow":[...],"deny":[...],
 * "audit":true} (empty lists and a false audit left out). SL_EFORMAT naming the key for bad
 * data, the kv's error, SL_EINVAL when already attached. */
int sl__invoke_attach(sl__invoke *p, struct sl__kv *kv, sl_status *st);

/* Applies a change another node stored in table SL__KV_INVOKE, without writing to the kv (val
 * NULL: the policy was removed): SL__APPLY_SAME / _CHANGED / _REMOVED (security/secstore.h), or
 * SL_EFORMAT (st names the key; nothing changed) / SL_ENOMEM. */
int sl__invoke_apply(sl__invoke *p, const void *key, size_t klen, const void *val, size_t vlen,
                     sl_status *st);
/* Makes p hold exactly the stored table e[0..n) (a reload after missed changes), as
 * sl__secstore_apply_map_all. Returns the number changed, or SL_ENOMEM. */
struct sl__secstore_entry;
int sl__invoke_apply_all(sl__invoke *p, const struct sl__secstore_entry *e, size_t n,
                         sl_status *st);

/* Step 3 of decide(): SL_OK (go on) or SL_EFORBIDDEN. Denies when a deny pattern of who's ACL
 * entry or of one of its broker roles matches the channel (every mode), or when an invoke policy
 * matching who's principal denies the operation on resource; audits the decisions of policies
 * with audit on. */
int sl__rules_decide(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info,
                     const char *resource);
/* Step 4 of decide(): user-limited channels. SL_OK (a listed user reading: allowed without
 * further scope), SL_EFORBIDDEN (a read by anyone else), SL__RULES_NEXT (not concerned: the
 * regime decides). */
#define SL__RULES_NEXT 1
int sl__rules_user_limited(sl_ctx *ctx, const sl_identity *who, const sl_op_info *info,
                           const char *resource);

#endif
