/* Internals of the audit log (src/security/audit.c) exposed to its unit tests and fuzz target:
 * the check of a log's tail that sl_audit_log_open does before continuing the chain, without the
 * file. Nothing here is part of the public API. */
#ifndef SLUICE_SECURITY_AUDIT_INTERNAL_H
#define SLUICE_SECURITY_AUDIT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

enum {
    SL__AUDIT_TAIL_OK = 0,
    SL__AUDIT_TAIL_INCOMPLETE, /* does not end with a newline */
    SL__AUDIT_TAIL_TOO_LONG,   /* no line start within the bytes given, and the file is longer */
    SL__AUDIT_TAIL_NOT_RECORD, /* the last line is not an audit record (*why says why) */
    SL__AUDIT_TAIL_INTERNAL,   /* hashing failed */
};

/* Reads the last line of the n bytes at the end of a log (buf; whole: 1 when they are the whole
 * file, 0 when only its end) and on SL__AUDIT_TAIL_OK sets *seq to its "seq" and hash (65 bytes)
 * to the SHA-256 of the line, in hex: where the chain continues. n must be at least 1. *why gets a
 * static text for SL__AUDIT_TAIL_NOT_RECORD. No I/O. */
int sl__audit_tail_parse(const char *buf, size_t n, int whole, uint64_t *seq, char *hash,
                         const char **why);

/* sl_audit_verify_file_from on an open descriptor, from its current offset, over
 * the next limit bytes (limit < 0: to its end): GET /audit verifies the file as it was when the
 * request came, not the lines written meanwhile. Status messages name no file. */
#include <sluice/audit.h>
#include <sys/types.h>
int sl__audit_verify_fd(int fd, off_t limit, uint64_t after_seq, const char *after_hash,
                        sl_audit_verify_result *res, sl_status *st);

/* What a reader of a log (GET /audit) remembers of the part it verified: the first len bytes of the
 * file dev/ino were whole, intact records, records of them, ending with last_seq / last_hash, and
 * their SHA-256 was digest. len 0: nothing. */
#define SL__AUDIT_DIGEST_LEN 32
typedef struct sl__audit_memo {
    dev_t dev;
    ino_t ino;
    off_t len;
    unsigned char digest[SL__AUDIT_DIGEST_LEN];
    uint64_t records;
    uint64_t last_seq;
    char last_hash[SL_AUDIT_HASH_HEX + 1];
} sl__audit_memo;

/* sl__audit_verify_fd over the first size bytes of fd (from its start; the offset moves), with
 * the same answer, but using *memo: when it is of this file, no longer than size, and its bytes
 * still hash to its digest (one SHA-256 over them, no line parsed), only the bytes after it are
 * verified, from its tip; else the whole of them, from after_seq / after_hash when after_hash is
 * not NULL. Either way the bytes verified are hashed on, and *memo becomes the whole size when it
 * verifies (len 0 when not). *reused (may be NULL) is 1 when the memo was used. The bytes of a
 * remembered prefix are read again every time: a file rewritten in place keeps its identity and
 * size, so nothing else would show it. */
int sl__audit_verify_memo(int fd, off_t size, uint64_t after_seq, const char *after_hash,
                          sl__audit_memo *memo, int *reused, sl_audit_verify_result *res,
                          sl_status *st);

/* The last lines of buf[0..n): buf ends where the file (or the part of it looked
 * at) ends; whole is 1 when buf starts at the file's start. Fills starts[] and lens[] (cap
 * entries) with at most limit complete lines (each followed by '\n' in buf; an unterminated
 * last line is skipped, being written), oldest first, and returns how many. *cut is set to 1
 * when older lines exist before the first one returned, or may (whole is 0 and the first line
 * reached the start of buf: it is then not returned, as it may be a line's end). No I/O. */
size_t sl__audit_tail_lines(const char *buf, size_t n, int whole, size_t limit, size_t *starts,
                            size_t *lens, size_t cap, int *cut);

#endif
