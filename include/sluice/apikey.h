/* API keys: long-lived credentials for services ("svc-billing"), created by an operator and shown
 * once. A key is "slk_<id>_<secret>": the id is public and finds the record without a scan, the
 * secret is 260 random bits of which only the SHA-256 is kept. Keys live in a store file (JSON
 * lines, docs/APIKEYS.md) that the `sluice apikey` CLI writes and sluiced reads; every write
 * replaces the file atomically under a lock file, and a reader picks changes up with
 * sl_apikey_reload, which costs one stat(2) when nothing changed. Authenticating a key turns it
 * into an sl_identity (source SL_SOURCE_APIKEY) carrying the principal, role and channel scope it
 * was created with, exactly like a JWT's; the router tries it when the bearer credential starts
 * with SL_APIKEY_PREFIX (sl_apikey_looks_like). Parsing a key and parsing store text are pure
 * functions over buffers, for tests and fuzzers. No status message ever contains a key or a secret.
 *
 * Threading: a store is used from one thread at a time; concurrent writers in different processes
 * are serialised by the lock file. */
#ifndef SLUICE_APIKEY_H
#define SLUICE_APIKEY_H

#include <stddef.h>

#include <sluice/authn.h>
#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_APIKEY_PREFIX "slk_"
#define SL_APIKEY_PREFIX_LEN 4
#define SL_APIKEY_ID_LEN 12     /* lowercase RFC 4648 base32 characters (60 bits) */
#define SL_APIKEY_SECRET_LEN 52 /* lowercase base32 characters, 5 random bits each (260 bits) */
/* "slk_" id "_" secret */
#define SL_APIKEY_LEN (SL_APIKEY_PREFIX_LEN + SL_APIKEY_ID_LEN + 1 + SL_APIKEY_SECRET_LEN)
#define SL_APIKEY_CHANNELS_MAX 1024
#define SL_APIKEY_FILE_MAX (16u * 1024 * 1024) /* bytes of a store file */

typedef struct sl_apikey_store sl_apikey_store;
struct sl__kv; /* the durable table store (internal: src/store/kv.h) */

/* What a key carries, without its secret or hash. */
typedef struct sl_apikey_record {
    char id[SL_APIKEY_ID_LEN + 1];
    char principal[SL_PRINCIPAL_MAX + 1];
    sl_role role;    /* SL_ROLE_NONE: the key carries no role */
    int scoped;      /* 1: restricted to channels[] (possibly none); 0: no channel restriction */
    char **channels; /* owned */
    size_t nchannels;
    double created_at; /* seconds since the epoch, whole */
    double expires_at; /* 0: never */
} sl_apikey_record;

/* ---- keys (pure) ------------------------------------------------------------------------------
 */

/* 1 when the credential has the API key prefix (the router's cue to call sl_apikey_authenticate
 * rather than the JWT verifier), else 0. Says nothing about validity. */
int sl_apikey_looks_like(const char *cred, size_t len);

/* Splits a key into its id (copied, NUL-terminated) and its secret (*secret points into key, not
 * terminated, *secret_len == SL_APIKEY_SECRET_LEN). SL_OK, or SL_ETOKEN when key is not exactly
 * "slk_" + 12 + "_" + 52 characters of the lowercase base32 alphabet (a-z, 2-7). No I/O. */
int sl_apikey_parse(const char *key, size_t len, char id[SL_APIKEY_ID_LEN + 1], const char **secret,
                    size_t *secret_len);

/* 1 when id is SL_APIKEY_ID_LEN characters of the key alphabet (NUL-terminated), else 0. */
int sl_apikey_id_valid(const char *id);

/* Overwrites and frees a key returned by sl_apikey_create. NULL is a no-op. */
void sl_apikey_key_free(char *key);

/* ---- the store --------------------------------------------------------------------------------
 */

/* Opens the store backed by path and loads it (a missing file is an empty store; it is created,
 * mode 0600, by the first write). path NULL: a memory-only store that writes nowhere (tests,
 * fuzzers). Errors: SL_EIO (unreadable), SL_ECONFIG ("FILE:LINE: reason"), SL_ENOMEM; *out is
 * then NULL. Release with sl_apikey_store_close. */
int sl_apikey_store_open(sl_apikey_store **out, const char *path, sl_status *st);
void sl_apikey_store_close(sl_apikey_store *s);
/* Makes kv (borrowed: it must outlive s) where s keeps its keys from now on, instead of the file.
 * First loads every stored record, then imports the key file's records that open loaded (the
 * configuration goes on top: for an id the file names, the file's record wins and is stored;
 * every other key created at runtime survives), with two exceptions so that a restart never
 * revives a key: of the file's and the stored expiry the earlier stays, and an id deleted at
 * runtime stays deleted although the file still names it. From then on sl_apikey_create(_ahead),
 * sl_apikey_expire and sl_apikey_delete stage the matching kv write in the same call (after the
 * ahead hook, before returning SL_OK; the caller makes the reply wait on kv->ops->barrier) and
 * neither lock nor write the file; sl_apikey_reload does nothing (SL_OK): changes the CLI makes
 * to the file take effect at the next start only, and a key removed from the file then stays
 * (delete it through the server). Without a kv, everything works on the file as before.
 * sl_apikey_store_load_text never writes to the kv.
 *
 * Stored: table SL__KV_APIKEYS, key = the 12-character id, value = the key file's JSON line for
 * that key plus "v":1 ({"v":1,"id":..,"principal":..,"hash":..,"created_at":..,"expires_at":..,
 * "role":..,"channels":[..]}: the SHA-256 of the secret, never the secret), or, for an id deleted
 * while a key file may name it, the tombstone {"v":1,"id":ID,"deleted":true}; tombstones of ids
 * the file does not name are dropped at attach.
 *
 * Errors: SL_EFORMAT (st names the table and key) when a stored value does not decode, SL_ENOMEM,
 * the kv's error, SL_EINVAL (already attached); s is then unchanged and not attached. */
int sl_apikey_store_attach(sl_apikey_store *s, struct sl__kv *kv, sl_status *st);

/* The path given to open; NULL for a memory-only store. */
const char *sl_apikey_store_path(const sl_apikey_store *s);

/* Re-reads the file when its identity, size or modification time changed (one stat(2) when it did
 * not). A file that disappeared empties the store. On SL_EIO or SL_ECONFIG the previous records
 * stay in force, so a botched hand edit does not lock every service out: report st and retry.
 * Memory-only stores: SL_OK. */
int sl_apikey_reload(sl_apikey_store *s, sl_status *st);

/* Replaces the records with those of store text (no I/O; name labels messages: "NAME:LINE: ...").
 * On error the store is unchanged. For tests and fuzzers; writes nothing. */
int sl_apikey_store_load_text(sl_apikey_store *s, const char *text, size_t len, const char *name,
                              sl_status *st);

/* Creates a key for principal with role (SL_ROLE_NONE: none) and the channel patterns (n == 0: no
 * restriction), expiring at expires_at (0: never; else must be later than now). now is the
 * creation time (whole seconds are stored). *key_out receives the key, the only time it exists
 * outside the caller: release with sl_apikey_key_free. id_out receives its id. The store file is
 * locked, re-read, rewritten atomically and unlocked before this returns (with a kv attached: the
 * record is staged in the kv instead, see sl_apikey_store_attach).
 * Errors: SL_EINVAL (argument; st says which), SL_EIO, SL_ECONFIG (the file on disk is corrupt:
 * nothing written), SL_ENOMEM, SL_EINTERNAL (no randomness). */
int sl_apikey_create(sl_apikey_store *s, const char *principal, sl_role role,
                     const char *const *patterns, size_t n, double expires_at, double now,
                     char **key_out, char id_out[SL_APIKEY_ID_LEN + 1], sl_status *st);

/* Called with the new key's id once it is chosen, before anything is written; an error (with st
 * set) abandons the creation and nothing is written. */
typedef int (*sl_apikey_ahead_fn)(void *ud, const char *id, sl_status *st);
/* sl_apikey_create with a write-ahead hook (the server's audit record), so that a crash can never
 * leave a key that was not recorded first. ahead NULL: sl_apikey_create. */
int sl_apikey_create_ahead(sl_apikey_store *s, const char *principal, sl_role role,
                           const char *const *patterns, size_t n, double expires_at, double now,
                           sl_apikey_ahead_fn ahead, void *ahead_ud, char **key_out,
                           char id_out[SL_APIKEY_ID_LEN + 1], sl_status *st);

/* Sets the key's expiry to now unless it already expired earlier. SL_ENOENT for an unknown id;
 * write errors as for create. */
int sl_apikey_expire(sl_apikey_store *s, const char *id, double now, sl_status *st);
/* Removes the key. SL_ENOENT for an unknown id; write errors as for create. */
int sl_apikey_delete(sl_apikey_store *s, const char *id, sl_status *st);

/* Deep copies of the records, sorted by id: *out is an array of *n, release with
 * sl_apikey_records_free. Does not reload. SL_OK or SL_ENOMEM. */
int sl_apikey_list(const sl_apikey_store *s, sl_apikey_record **out, size_t *n);
void sl_apikey_records_free(sl_apikey_record *r, size_t n);
/* The record of id (a deep copy into *out, release with sl_apikey_record_clear); SL_ENOENT. */
int sl_apikey_get(const sl_apikey_store *s, const char *id, sl_apikey_record *out);
void sl_apikey_record_clear(sl_apikey_record *r);

/* Authenticates a presented key at time now against the loaded records (call sl_apikey_reload
 * beforehand, or on a timer, to see changes). SL_OK: *out (initialised by the caller, released with
 * sl_identity_clear) gets source SL_SOURCE_APIKEY, the principal, role and scope of the record,
 * token_id = the key id, issued_at = created_at, expires_at. Otherwise SL_ETOKEN with one of the
 * fixed messages "malformed api key", "unknown api key" (no such id, or a wrong secret: the two
 * are not told apart) or "api key expired" (only after the secret matched); SL_ENOMEM. The secret
 * is compared in constant time. */
int sl_apikey_authenticate(const sl_apikey_store *s, const char *key, size_t len, double now,
                           sl_identity *out, sl_status *st);

/* ---- plugging into sl_authn ------------------------------------------------------------------ */

/* An sl_authenticator for sl_authn's chain over store s (borrowed: it must outlive the
 * authenticator). It answers synchronously: a credential without SL_APIKEY_PREFIX is rejected with
 * SL_ETOKEN "not an api key" (so the chain goes on), otherwise as sl_apikey_authenticate. Before
 * each key it calls sl_apikey_reload (one stat(2) when nothing changed), so CLI changes apply at
 * once; a reload error keeps the last good records in force and is not reported here, so also call
 * sl_apikey_reload on a timer to log it. Its free releases the adapter, not the store. SL_OK,
 * SL_EINVAL or SL_ENOMEM. */
int sl_apikey_authenticator_new(sl_apikey_store *s, sl_authenticator **out);

#ifdef __cplusplus
}
#endif
#endif
