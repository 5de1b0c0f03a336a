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
/* Makes the ACL durable in kv (borrowed: it must outlive the ACL). First loads every stored grant
 * (replacing entries of the same principal already present); from then on sl__acl_set and
 * sl__acl_del stage the matching kv write in the same call, before returning SL_OK, and return the
 * kv's error (memory unchanged) when it cannot be staged. The caller makes the reply wait on
 * kv->ops->barrier. Attach before applying the configuration's grants: for the same principal the
 * later call (the configuration) wins, and is stored; every other grant made at runtime survives.
 *
 * Stored: table SL__KV_ACL, key = the principal's bytes, value = JSON
 * {"v":1,"role":"read|write|admin","channels":["pattern",...]} ("channels" absent: all channels).
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
/* Entries sorted by principal; release with sl_acl_entries_free. */
int sl__acl_list(const sl__acl *acl, sl_acl_entry **out, size_t *n);
size_t sl__acl_size(const sl__acl *acl);

#endif
