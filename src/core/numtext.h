/* Decimal text of unsigned integers without printf, for the hot paths that write numbers into
 * protocol text (HTTP response heads, Redis commands and arguments). */
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

#endif
