/* What the API-key store's files share (apikey.c: keys, records, the store's API and the
 * authenticator; apikey_text.c: the store file's text format; apikey_persist.c: the file, the kv
 * and other nodes' changes): a record as held, the store, and the functions that cross them.
 * Internal: include/sluice/apikey.h is the public face. */
#ifndef SLUICE_SECURITY_APIKEY_INTERNAL_H
#define SLUICE_SECURITY_APIKEY_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>
#include <sluice/apikey.h>

#include "store/kv.h"

#define SL__APIKEY_HASH_LEN 32
#define SL__APIKEY_HASH_HEX (2 * SL__APIKEY_HASH_LEN)

/* A record as held: its secret's SHA-256 beside it. */
typedef struct sl__apikey_entry {
    sl_apikey_record rec;
    unsigned char hash[SL__APIKEY_HASH_LEN];
    size_t line; /* where it was read from, for duplicate-id messages */
} sl__apikey_entry;

struct sl_apikey_store {
    char *path;          /* NULL: memory only */
    char *lock_path;     /* path + ".lock" */
    sl__apikey_entry *e; /* sorted by id */
    size_t n;
    sl__kv *kv; /* borrowed; set: changes go here, not to the file */
    /* The file the records came from; a reload is skipped while stat(2) still reports it. */
    int have_file;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

/* apikey.c: SHA-256 of a secret (0, or -1 when OpenSSL fails); deep copies of a string vector and
 * of a record (0, or -1 on ENOMEM, nothing left allocated); entries freed with their secrets'
 * hashes wiped; the qsort order of entries (by id); the index of id in e[0..n) sorted by id, or
 * of where it would go (*found 0). */
int sl__apikey_hash_secret(const char *secret, size_t len, unsigned char out[SL__APIKEY_HASH_LEN]);
int sl__apikey_strv_copy(char *const *src, size_t n, char ***out);
int sl__apikey_record_copy(sl_apikey_record *dst, const sl_apikey_record *src);
void sl__apikey_entries_free(sl__apikey_entry *e, size_t n);
int sl__apikey_entry_cmp(const void *a, const void *b);
size_t sl__apikey_find(const sl__apikey_entry *e, size_t n, const char *id, int *found);

/* apikey_text.c, no I/O: one record from a parsed line (a message without the "NAME:LINE: "
 * prefix in err); store text parsed into entries sorted by id (*out malloc'd, the caller frees it
 * with sl__apikey_entries_free); a record's fields added to o (-1 on ENOMEM; o NULL is ENOMEM
 * too); the store text of n entries, one JSON line each (malloc'd; NULL on ENOMEM). */
int sl__apikey_record_from_json(json_t *o, sl__apikey_entry *out, char *err, size_t errsz);
int sl__apikey_parse_text(const char *text, size_t len, const char *name, sl__apikey_entry **out,
                          size_t *nout, sl_status *st);
int sl__apikey_record_json(json_t *o, const sl__apikey_entry *e);
char *sl__apikey_format_text(const sl__apikey_entry *e, size_t n, size_t *len);

/* apikey_persist.c: the store's records replaced by e[0..n) (taken over); the file loaded unless
 * stat(2) shows the one already loaded (force skips that shortcut); the writers' lock taken and
 * the records brought up to date with the file (*fd the lock, -1 for a memory-only store), and
 * released; e[0..n) written (file-backed stores) and on success made the records (taken over
 * either way); a record, or a deletion (a tombstone while a key file may name the id), staged in
 * the kv. */
void sl__apikey_replace_entries(sl_apikey_store *s, sl__apikey_entry *e, size_t n);
int sl__apikey_load_file(sl_apikey_store *s, int force, sl_status *st);
int sl__apikey_begin_write(sl_apikey_store *s, int *fd, sl_status *st);
void sl__apikey_end_write(int fd);
int sl__apikey_commit(sl_apikey_store *s, sl__apikey_entry *e, size_t n, sl_status *st);
int sl__apikey_stage_record(sl__kv *kv, const sl__apikey_entry *e, sl_status *st);
int sl__apikey_stage_delete(sl_apikey_store *s, const char *id, sl_status *st);

#endif
