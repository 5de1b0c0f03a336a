/* The ACL: principal -> (role, channel patterns). One entry per principal; a grant replaces it.
 * Lookup is a hash probe plus a trie walk, so decisions do not slow down as grants accumulate. */
#ifndef SLUICE_SECURITY_ACL_H
#define SLUICE_SECURITY_ACL_H

#include <sluice/sluice.h>

typedef struct sl__acl sl__acl;

int sl__acl_new(sl__acl **out);
void sl__acl_free(sl__acl *acl);
/* Replaces principal's entry. n == 0: all channels. SL_EINVAL for a bad principal/role/pattern. */
int sl__acl_set(sl__acl *acl, const char *principal, sl_role role, const char *const *patterns,
                size_t n);
/* 1 when principal has an entry. */
int sl__acl_has(const sl__acl *acl, const char *principal);
/* SL_ENOENT when none. */
int sl__acl_del(sl__acl *acl, const char *principal);
/* The role principal holds on channel (NULL: on every channel, i.e. a global grant);
 * SL_ROLE_NONE when no grant covers it. */
sl_role sl__acl_role(const sl__acl *acl, const char *principal, const char *channel);
/* Entries sorted by principal; release with sl_acl_entries_free. */
int sl__acl_list(const sl__acl *acl, sl_acl_entry **out, size_t *n);
size_t sl__acl_size(const sl__acl *acl);

#endif
