/* Shared by the JWT fuzz targets (fuzz_jwt.c, fuzz_jwt_pk.c): base64url encoding and the check
 * that a verification's status message is one of the fixed texts sl_jwt_verify documents, which is
 * how "a status message never contains input bytes" is checked. Header-only, no state. */
#ifndef SLUICE_FUZZ_JWT_FUZZ_UTIL_H
#define SLUICE_FUZZ_JWT_FUZZ_UTIL_H

#include <stdlib.h>
#include <string.h>

#include <sluice/jwt.h>

/* out needs 4 * ((n + 2) / 3) + 1 bytes; returns the length written (no padding). */
static inline size_t fz_b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* Aborts unless rc and the message are one of the documented outcomes of sl_jwt_verify. */
static inline void fz_check_status(int rc, const sl_status *st)
{
    static const char *const fixed[] = {
        "malformed token", "bad signature",       "algorithm not allowed", "unknown key id",
        "token expired",   "token not yet valid", "invalid audience",      "invalid issuer",
        "invalid claims",  "wrong kind of token"};
    if (rc == SL_OK)
        return;
    if (rc != SL_ETOKEN && rc != SL_EEXPIRED)
        abort();
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(st->message, fixed[i]) == 0) {
            if ((rc == SL_EEXPIRED) != (i == 4))
                abort();
            return;
        }
    abort();
}

/* header '.' payload, base64url-encoded: the signing input, malloc'd (NUL-terminated). */
static inline char *fz_signing_input(const char *h, size_t hl, const char *p, size_t pl,
                                     size_t *len)
{
    char *s = malloc(4 * ((hl + 2) / 3) + 4 * ((pl + 2) / 3) + 2 + 128);
    if (s == NULL)
        abort();
    size_t n = fz_b64url((const unsigned char *)h, hl, s);
    s[n++] = '.';
    n += fz_b64url((const unsigned char *)p, pl, s + n);
    *len = n;
    return s;
}

#endif
