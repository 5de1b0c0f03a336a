/* The tamper-evident audit log: one JSON object per line, appended to a file, each record carrying
 * its sequence number ("seq", 1, 2, 3, ...) and the SHA-256 of the previous line ("prev"), so that
 * a removed, reordered or edited line breaks the chain and `sluice audit verify` finds it. The log
 * adds those two fields; the caller supplies the rest and guarantees it holds no token, key or
 * secret. A write that cannot be recorded returns an error, so callers that must audit (issuance,
 * revocation, ACL changes) can refuse instead of acting unrecorded. docs/AUDIT.md has the format.
 *
 * Ownership: sl_audit_log_open returns a log owned by the caller, released with sl_audit_log_close;
 * every other argument is borrowed for the duration of the call. Calls on one log may come from
 * several threads (they are serialised). Status messages of sl_audit_log_write never name the file
 * (they may reach network clients); those of sl_audit_log_open do (they go to the operator). */
#ifndef SLUICE_AUDIT_H
#define SLUICE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Lowercase hex SHA-256: 64 characters. The first record of a file has "prev" = 64 zeros. */
#define SL_AUDIT_HASH_HEX 64
#define SL_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
/* Longest line (bytes, without the newline) the log writes and the verifier accepts. */
#define SL_AUDIT_RECORD_MAX (1024 * 1024)

typedef struct sl_audit_log sl_audit_log;

/* Opens (creating with mode 0600 if needed) the log at path for appending and takes an exclusive
 * flock on it, so a second writer is refused. An existing file's last line is read to continue its
 * chain; a file whose last line is cut short or is not a record is refused (SL_EIO; rotate it
 * aside). Paths that are not regular files (/dev/full, a FIFO) start a fresh chain. Errors: SL_EIO,
 * SL_ENOMEM, SL_EINVAL, with st saying why. */
int sl_audit_log_open(sl_audit_log **out, const char *path, sl_status *st);

/* Appends json_object (a JSON object text without "seq" or "prev" members) as the next record, in
 * one write(2). Returns SL_OK once the whole line is in the file (written, not fsync'd). Errors:
 * SL_EUNAVAIL when the log cannot be written ("audit log unavailable: No space left on device";
 * also when the file was removed, replaced or appended to by someone else), SL_EINVAL / SL_ETOOBIG
 * for a record that is not acceptable, SL_ENOMEM. A partly written line is cut off again so the
 * file stays verifiable; if even that fails, every later write fails too. */
int sl_audit_log_write(sl_audit_log *log, const char *json_object, sl_status *st);

/* The chain's tip: the last record's seq (0 when none) and the hash of its line (the genesis value
 * when none) into hash[SL_AUDIT_HASH_HEX + 1]. Either pointer may be NULL. */
void sl_audit_log_tip(sl_audit_log *log, uint64_t *seq, char *hash);

/* Makes every record written so far durable (fdatasync). Safe to call from another thread than the
 * writer's (the embedded store's commit thread calls it before each group commit's fsync, so a
 * change is never acknowledged before its records are on disk). SL_OK or SL_EIO. */
int sl_audit_log_sync(sl_audit_log *log);

/* For rotation (SIGHUP): when the file at the log's path is no longer the one it holds (moved
 * aside), opens a new, empty file there and continues the chain in it: its first record has the
 * next seq and the hash of the old file's last line as "prev", so the files verify as one chain
 * (sluice audit verify OLD NEW). Nothing happens when the path still names the same file. SL_EIO
 * when the new file cannot be opened or is not empty. */
int sl_audit_log_reopen(sl_audit_log *log, sl_status *st);

/* Closes the file and frees the log. NULL is allowed. */
void sl_audit_log_close(sl_audit_log *log);

/* ---- verification ---------------------------------------------------------------------------- */

typedef struct sl_audit_verify_result {
    int intact;        /* 1 when every line checks out */
    size_t bad_line;   /* 1-based line of the first problem; 0 when intact */
    char reason[192];  /* why bad_line is bad ("hash chain broken (...)"); "" when intact */
    uint64_t records;  /* lines that checked out (before bad_line) */
    uint64_t last_seq; /* seq of the last line that checked out; 0 when none */
    char last_hash[SL_AUDIT_HASH_HEX + 1]; /* SHA-256 of that line; the genesis value when none */
} sl_audit_verify_result;

/* Checks a whole log held in memory, doing no I/O: every line a JSON object, "seq" 1, 2, 3, ...,
 * "prev" the hash of the line before (genesis for the first), the text ending with a newline. An
 * empty text is an intact, empty log. Returns SL_OK when intact, SL_EINVAL when not (res says where
 * and why), SL_ENOMEM. A removed last line cannot be detected this way: anchor res->last_seq and
 * res->last_hash elsewhere. */
int sl_audit_verify_text(const char *text, size_t len, sl_audit_verify_result *res);

/* The same for a file, read in blocks (logs can be large). Returns SL_OK, SL_EINVAL as above, or
 * SL_EIO when the file cannot be read (st says why; res is then not meaningful). */
int sl_audit_verify_file(const char *path, sl_audit_verify_result *res, sl_status *st);
/* The same for a file that continues a rotated log (sl_audit_log_reopen): its first record must be
 * after_seq + 1 with "prev" after_hash, the tip of the file before it. An empty file is intact and
 * leaves the tip where it was. */
int sl_audit_verify_file_from(const char *path, uint64_t after_seq, const char *after_hash,
                              sl_audit_verify_result *res, sl_status *st);

#ifdef __cplusplus
}
#endif
#endif
