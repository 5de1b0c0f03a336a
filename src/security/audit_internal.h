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

#endif
