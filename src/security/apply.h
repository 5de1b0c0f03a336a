/* How the broker's role assignments and the API key store take in a change another sluiced node
 * stored (the state shared on Redis, server/shared_state.c), beside the ACL's own hooks
 * (security/acl.h): one stored entry at a time, or a whole stored table after missed changes.
 * These never write to the kv (the change is already stored) and decode exactly as loading does,
 * so stored data that does not decode is refused with SL_EFORMAT (st names the table and key) and
 * the store keeps what it had. Internal: not part of the public API. */
#ifndef SLUICE_SECURITY_APPLY_H
#define SLUICE_SECURITY_APPLY_H

#include <sluice/apikey.h>
#include <sluice/broker.h>

#include "security/secstore.h"

/* The kv each is attached to (NULL: none). */
struct sl__kv *sl__broker_kv(const sl_broker *b);
struct sl__kv *sl__apikey_kv(const sl_apikey_store *s);

/* Table SL__KV_BROKER: key the principal, val its stored assignment (sluice/broker.h) or NULL when
 * it was removed. SL__APPLY_SAME, SL__APPLY_CHANGED, SL__APPLY_REMOVED, or SL_EFORMAT /
 * SL_ENOMEM. */
int sl__broker_apply(sl_broker *b, const void *key, size_t klen, const void *val, size_t vlen,
                     sl_status *st);
/* Makes the assignments exactly the stored table (as sl__secstore_apply_map_all). Returns the
 * number of principals changed, or SL_ENOMEM. */
int sl__broker_apply_all(sl_broker *b, const sl__secstore_entry *e, size_t n, sl_status *st);

/* Table SL__KV_APIKEYS: key the key id, val its stored record or tombstone (sluice/apikey.h), NULL
 * when removed; a tombstone removes the key too. SL__APPLY_SAME, SL__APPLY_CHANGED,
 * SL__APPLY_REMOVED, or SL_EFORMAT / SL_ENOMEM. */
int sl__apikey_apply(sl_apikey_store *s, const void *key, size_t klen, const void *val, size_t vlen,
                     sl_status *st);
/* Makes the keys exactly the stored table: ids absent from it (or tombstoned) are removed; an
 * entry that does not decode is refused (st: the last one) and its id keeps what it had. Returns
 * the number of keys changed, or SL_ENOMEM (the store is then unchanged). */
int sl__apikey_apply_all(sl_apikey_store *s, const sl__secstore_entry *e, size_t n, sl_status *st);

#endif
