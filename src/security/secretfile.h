/* The contents of a secret file (sluiced's jwt_secret_file / jwt_key / upstream_jwt_key /
 * introspection_client_secret_file, the CLI's --secret-file): one rule for every reader, so a
 * token the CLI signs with a file verifies on a server reading the same file. No I/O. */
#ifndef SLUICE_SECURITY_SECRETFILE_H
#define SLUICE_SECURITY_SECRETFILE_H

#include <stddef.h>

/* Larger files are refused, not truncated: a secret or a PEM public key is far smaller, and a
 * cut-off secret would be a different key. */
#define SL__SECRET_FILE_MAX 65536

/* The secret in a file's len bytes at data is data[0..*secret_len): the bytes before the trailing
 * line endings ("\n" and "\r", any number: editors add them and they are never part of a secret).
 * Every other byte, NUL included, is kept. Returns SL_OK, or SL_ETOOBIG when len exceeds
 * SL__SECRET_FILE_MAX (then *secret_len is 0). */
int sl__secret_file_parse(const char *data, size_t len, size_t *secret_len);

#endif
