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

/* The last lines of buf[0..n): buf ends where the file (or the part of it looked
 * at) ends; whole is 1 when buf starts at the file's start. Fills starts[] and lens[] (cap
 * entries) with at most limit complete lines (each followed by '\n' in buf; an unterminated
 * last line is skipped, being written), oldest first, and returns how many. *cut is set to 1
 * when older lines exist before the first one returned, or may (whole is 0 and the first line
 * reached the start of buf: it is then not returned, as it may be a line's end). No I/O. */
size_t sl__audit_tail_lines(const char *buf, size_t n, int whole, size_t limit, size_t *starts,
                            size_t *lens, size_t cap, int *cut);

#endif
