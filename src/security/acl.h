/* The ACL: principal -> (role, channel patterns). One entry per principal; a grant replaces it.
 * Lookup is a hash probe plus a trie walk, so decisions do not slow down as grants accumulate. */
#ifndef SLUICE_SECURITY_ACL_H
#define SLUICE_SECURITY_ACL_H

#include <sluice/sluice.h>

struct sl__kv;
typedef struct sl__acl sl__acl;

int sl__acl_new(sl__acl **out);
void sl__acl_free(sl__acl *acl);
/* Replaces principal's entry. n == 0: all channels. SL_EINVAL for a bad principal/role/pattern. */
int sl__acl_set(sl__acl *acl, const char *principal, sl_role role, const char *const *patterns,
                size_t n);
/* The same with deny patterns: a channel matching one of deny[0..ndeny) is denied to principal
 * whatever its patterns (or any other grant, token scope or broker role) allow. */
int sl__acl_set_deny(sl__acl *acl, const char *principal, sl_role role, const char *const *patterns,
                     size_t n, const char *const *deny, size_t ndeny);
/* Makes the ACL durable in kv (borrowed: it must outlive the ACL). First loads every stored grant
 * (replacing entries of the same principal already present); from then on sl__acl_set and
 * sl__acl_del stage the matching kv write in the same call, before returning SL_OK, and return the
 * kv's error (memory unchanged) when it cannot be staged. The caller makes the reply wait on
 * kv->ops->barrier. Attach before applying the configuration's grants: for the same principal the
 * later call (the configuration) wins, and is stored; every other grant made at runtime survives.
 *
 * Stored: table SL__KV_ACL, key = the principal's bytes, value = JSON
 * {"v":1,"role":"read|write|admin","channels":["pattern",...],"deny":["pattern",...]} ("channels"
 * absent: all channels; "deny" absent: none, so records from before deny rules load unchanged).
 *
 * Errors: SL_EFORMAT (st names the table and key) when a stored value does not decode, SL_ENOMEM,
 * the kv's scan error, SL_EINVAL (already attached); the ACL is then unchanged (except after an
 * SL_ENOMEM while applying) and not attached. */
int sl__acl_attach(sl__acl *acl, struct sl__kv *kv, sl_status *st);
/* 1 when principal has an entry. */
int sl__acl_has(const sl__acl *acl, const char *principal);
/* SL_ENOENT when none; with a kv attached, the kv's error when the delete cannot be staged (the
 * entry then stays). */
int sl__acl_del(sl__acl *acl, const char *principal);
/* The role principal holds on channel (NULL: on every channel, i.e. a global grant);
 * SL_ROLE_NONE when no grant covers it. */
sl_role sl__acl_role(const sl__acl *acl, const char *principal, const char *channel);
/* 1 when one of principal's deny patterns matches channel (NULL: a global operation, denied only
 * by a deny of every channel, "**"). Applies under every mode (security/invoke.c). */
int sl__acl_denied(const sl__acl *acl, const char *principal, const char *channel);
/* Entries sorted by principal; release with sl_acl_entries_free. */
int sl__acl_list(const sl__acl *acl, sl_acl_entry **out, size_t *n);
size_t sl__acl_size(const sl__acl *acl);

/* The kv the ACL is attached to, or NULL. */
struct sl__kv *sl__acl_kv(const sl__acl *acl);

/* Applies a change another node (or this one: its own notices come back) stored in table
 * SL__KV_ACL, without writing to the kv: key is the principal, val its stored grant (the format
 * above) or NULL when the grant was removed. Bad data (a key that is not a principal, a value that
 * does not decode) is refused with SL_EFORMAT, st naming the table and key, and the ACL is
 * unchanged. Returns SL__APPLY_SAME (the ACL held that already), SL__APPLY_CHANGED,
 * SL__APPLY_REMOVED (security/secstore.h), or SL_EFORMAT / SL_ENOMEM. */
int sl__acl_apply(sl__acl *acl, const void *key, size_t klen, const void *val, size_t vlen,
                  sl_status *st);
/* Makes the ACL hold exactly the stored table e[0..n) (a reload after missed changes): as
 * sl__secstore_apply_map_all (bad entries refused and reported in st, their principals keep what
 * they had). changed(ud, principal, removed) for each principal whose grant changed. Returns the
 * number changed, or SL_ENOMEM. */
struct sl__secstore_entry;
int sl__acl_apply_all(sl__acl *acl, const struct sl__secstore_entry *e, size_t n,
                      void (*changed)(void *ud, const char *principal, int removed), void *ud,
                      sl_status *st);

#endif
