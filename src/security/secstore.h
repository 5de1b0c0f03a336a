/* What the security stores (ACL grants, broker roles, API keys, revocations) share when they keep
 * their state in a kv (store/kv.h): one value format and one way to refuse bad stored data. A
 * stored value is a compact JSON object carrying its format version, "v":1, next to the store's
 * own fields; keys are the store's natural ids (principal, key id, token id) as raw bytes. A value
 * that does not decode is SL_EFORMAT naming the table and the key (escaped and cut short, so no
 * stored byte can forge a log line); no store keeps a secret in a value, so none can leak one. */
#ifndef SLUICE_SECURITY_SECSTORE_H
#define SLUICE_SECURITY_SECSTORE_H

#include <stddef.h>

#include <jansson.h>

#include "store/kv.h"

#define SL__SECSTORE_VERSION 1
/* The longest key any security store writes (a principal), well inside the kv's 511 bytes. */
#define SL__SECSTORE_KEY_MAX 300

/* A new JSON object holding "v":1, for the caller to add its fields to; NULL on ENOMEM. */
json_t *sl__secstore_object(void);
/* Stages table[key] = o, dumped compactly. o is borrowed. SL_OK, SL_ENOMEM or the kv's error. */
int sl__secstore_put(sl__kv *kv, const char *table, const void *key, size_t klen, const json_t *o);
/* Decodes a stored value: a JSON object (no duplicate members) whose "v" is 1. The returned
 * object (the caller's, json_decref) no longer holds "v", so decoders see only their own fields.
 * NULL when the value is not that, with the reason in err (fixed text: never stored bytes). */
json_t *sl__secstore_parse(const void *val, size_t vlen, char *err, size_t errsz);
/* Copies a key into buf as a C string; 0, or -1 when it is empty, longer than
 * SL__SECSTORE_KEY_MAX or holds a NUL byte. buf has SL__SECSTORE_KEY_MAX + 1 bytes. */
int sl__secstore_key_str(const void *key, size_t klen, char buf[SL__SECSTORE_KEY_MAX + 1]);
/* Sets st to SL_EFORMAT "stored TABLE entry 'KEY' is unreadable: WHY" and returns SL_EFORMAT. The
 * key is printed with bytes outside printable ASCII escaped (\xNN) and cut after 64 bytes; control
 * bytes in why become "?". */
int sl__secstore_eformat(sl_status *st, const char *table, const void *key, size_t klen,
                         const char *why);

/* Decodes one stored value into *out (the caller's, released with the loader's free_value);
 * SL_EFORMAT with the reason in why (fixed text), or SL_ENOMEM. */
typedef int (*sl__secstore_decode_fn)(const void *val, size_t vlen, void **out, char *why,
                                      size_t whysz);
/* Loads a table keyed by principal into map (principal -> decoded value, freed with free_value):
 * every record is read and decoded first (valid_key checks the key), so bad stored data changes
 * nothing; then each goes in, replacing what map held. SL_EFORMAT naming the table and key, the
 * kv's error, SL_ENOMEM, with st filled ("cannot read the stored WHAT: ..."). */
struct sl__map;
int sl__secstore_load_map(sl__kv *kv, const char *table, const char *what,
                          int (*valid_key)(const char *), sl__secstore_decode_fn decode,
                          void (*free_value)(void *), struct sl__map *map, sl_status *st);

/* ---- applying another node's change (shared state on Redis: server/shared_state.c) ---------- */

/* What an apply did: nothing (the store already held that), replaced or added the entry, or
 * removed it. Errors are negative (SL_EFORMAT with st naming the table and key, SL_ENOMEM). */
enum { SL__APPLY_SAME = 0, SL__APPLY_CHANGED = 1, SL__APPLY_REMOVED = 2 };

/* One stored entry, as a kv gives it; valid during the call it is passed to. */
typedef struct sl__secstore_entry {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} sl__secstore_entry;

/* Told of each principal a whole-table apply changed (removed 1: its entry is gone). */
typedef void (*sl__secstore_changed_fn)(void *ud, const char *principal, int removed);

/* 1 when a and b (decoded values) say the same. */
typedef int (*sl__secstore_same_fn)(const void *a, const void *b);

/* Applies one stored entry of a principal-keyed table to map without writing anywhere: val NULL
 * removes the principal, otherwise the value is decoded as at loading (decode) and replaces the
 * principal's entry unless same() says it holds that already. A key or value that does not decode
 * is refused (SL_EFORMAT, st filled as sl__secstore_eformat) and map is unchanged. The principal
 * is copied into principal (for the caller's events). */
int sl__secstore_apply_map(struct sl__map *map, const char *table, int (*valid_key)(const char *),
                           sl__secstore_decode_fn decode, void (*free_value)(void *),
                           sl__secstore_same_fn same, const void *key, size_t klen, const void *val,
                           size_t vlen, char principal[SL__SECSTORE_KEY_MAX + 1], sl_status *st);
/* Makes map hold exactly the table's entries e[0..n) (a reload): principals absent from e are
 * removed, the others applied as above. An entry that does not decode is refused and its
 * principal keeps what map held (st says which: the last one refused); the rest is applied.
 * changed (may be NULL) is told of each change. Returns how many principals changed, or
 * SL_ENOMEM (map then partly applied: a later reload completes it). */
int sl__secstore_apply_map_all(struct sl__map *map, const char *table,
                               int (*valid_key)(const char *), sl__secstore_decode_fn decode,
                               void (*free_value)(void *), sl__secstore_same_fn same,
                               const sl__secstore_entry *e, size_t n,
                               sl__secstore_changed_fn changed, void *ud, sl_status *st);

#endif
