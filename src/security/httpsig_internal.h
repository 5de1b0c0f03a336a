/* The signature base under construction (RFC 9421 section 2.5), shared by the verifier
 * (security/httpsig.c) and the signer (security/httpsig_sign.c): text appended to a buffer on the
 * caller's stack, moved to the heap only when it outgrows it and refused past BASE_MAX. The
 * helpers are static inline because the verifier appends to a base for every component of every
 * signed request. Nothing here is public API. */
#ifndef SLUICE_SECURITY_HTTPSIG_INTERNAL_H
#define SLUICE_SECURITY_HTTPSIG_INTERNAL_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BASE_MAX 65536 /* bytes of a signature base: past it the request is refused */

/* A signature base: in the caller's stack buffer (most bases are a few hundred bytes), moved to
 * the heap only when it outgrows it. */
typedef struct buf {
    char *p;
    size_t n, cap;
    int bad, heap;
} buf;

#define BUF_INIT(stack)                                                                            \
    {                                                                                              \
        (stack), 0, sizeof(stack), 0, 0                                                            \
    }

static inline void buf_free(buf *b)
{
    if (b->heap)
        free(b->p);
}

static inline void put(buf *b, const char *s, size_t n)
{
    if (b->bad)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = cap > BASE_MAX ? NULL : b->heap ? realloc(b->p, cap) : malloc(cap);
        if (p == NULL) {
            b->bad = 1;
            return;
        }
        if (!b->heap)
            memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
        b->heap = 1;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static inline void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* ASCII only, as RFC 9421 lowercases a scheme and an authority (and without tolower's call to
 * find the locale's table for every byte). */
static inline void put_lower(buf *b, const char *s, size_t n)
{
    size_t at = b->n;
    put(b, s, n);
    for (size_t i = 0; i < n && !b->bad; i++) {
        char ch = b->p[at + i];
        b->p[at + i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
    }
}

#endif
