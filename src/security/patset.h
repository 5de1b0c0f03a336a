/* A set of channel patterns compiled into a segment trie, so that matching a channel costs time in
 * the number of its segments, not in the number of patterns (ACLs may hold 100,000 of them). Used
 * by ACL entries and token scopes. */
#ifndef SLUICE_SECURITY_PATSET_H
#define SLUICE_SECURITY_PATSET_H

#include <stddef.h>

typedef struct sl__patset sl__patset;

/* *out owned by the caller; release with sl__patset_free. */
int sl__patset_new(sl__patset **out);
void sl__patset_free(sl__patset *ps);
/* Adds a pattern (validated with sl_pattern_valid: SL_EINVAL otherwise). Duplicates are harmless.
 */
int sl__patset_add(sl__patset *ps, const char *pattern);
/* 1 when some pattern matches the channel id. */
int sl__patset_match(const sl__patset *ps, const char *channel);
/* 1 when the set matches every channel (it holds "**"). */
int sl__patset_matches_all(const sl__patset *ps);
size_t sl__patset_size(const sl__patset *ps);

#endif
