/* Numbers in protocol text without printf or sscanf: decimal digits of unsigned integers for the
 * hot paths that write them (HTTP response heads, Redis commands and arguments), and the value of
 * one hex digit for the parsers that read percent-escapes, \u escapes and hex strings. */
#ifndef SLUICE_CORE_NUMTEXT_H
#define SLUICE_CORE_NUMTEXT_H

#include <stdint.h>
#include <string.h>

/* Writes v's digits at d (no NUL; at most 20 bytes) and returns the end. */
static inline char *sl__put_uint(char *d, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    memcpy(d, tmp + i, sizeof tmp - i);
    return d + (sizeof tmp - i);
}

/* The value of the hex digit c (either case), or -1. */
static inline int sl__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
