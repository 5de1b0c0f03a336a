/* A JSON validator (RFC 8259) that allocates nothing (but for numbers over 255 characters): written
 * messages are stored verbatim, so the write path only needs to know the text is valid JSON, not to
 * build a tree. docs/BENCHMARKS.md has the measurement against parsing with jansson that justifies
 * it. */
#ifndef SLUICE_CORE_JSONV_H
#define SLUICE_CORE_JSONV_H

#include <stddef.h>

#define SL__JSON_MAX_DEPTH 256

/* 1 when s[0..n) is exactly one JSON value (any type, surrounding whitespace allowed), strings are
 * valid UTF-8 without unescaped control characters, integers fit in 64 bits, reals are finite, and
 * nesting is at most SL__JSON_MAX_DEPTH;
 * else 0. Also 0 for NUL bytes anywhere. */
int sl__json_valid(const char *s, size_t n);

#endif
