/* The strict JSON parser of the JWT verifier (security/jwt_json.c), shared by jwt.c and its
 * tests: one object, decoded in place in a caller-owned scratch, with only the wanted members of
 * its top level reported. Internal. */
#ifndef SLUICE_SECURITY_JWT_JSON_H
#define SLUICE_SECURITY_JWT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/jwt.h>

/* A decoded segment is at most 3/4 of the token, so 16-bit offsets suffice, and the counts below
 * bound how many keys or strings a segment can hold ("":0, is five bytes; "", three). */
#define DECODED_MAX (SL_JWT_MAX_LEN / 4 * 3 + 2)
#define KEYS_MAX (DECODED_MAX / 4 + 1)
#define STRS_MAX (DECODED_MAX / 3 + 1)
_Static_assert(DECODED_MAX < 65536, "jref offsets are 16-bit");

typedef struct jref {
    uint16_t off, len;
} jref;

enum { JV_ABSENT = 0, JV_STRING, JV_NUMBER, JV_ARRAY, JV_OBJECT, JV_LITERAL };

/* What a wanted member of the top-level object held. Strings are decoded in place in the text;
 * arrays record where their string elements went in the scratch's strs[]. */
typedef struct jval {
    unsigned char type;
    unsigned char strings_only; /* arrays: every element was a string */
    jref s; /* string: bytes in the text; array: first index and count in strs */
    double num;
} jval;

typedef struct jname {
    const char *name;
    size_t len;
} jname;

/* Everything a parse needs, on the caller's stack: a verification never allocates for JSON. */
typedef struct jscratch {
    char buf[DECODED_MAX + 1]; /* the text, decoded in place; buf[n] == '\0' as a sentinel */
    jref keys[KEYS_MAX];       /* keys of the objects currently open, for duplicate detection */
    jref strs[STRS_MAX];       /* string elements of wanted arrays */
} jscratch;

/* Parses s->buf[0..n) as one JSON object and fills vals[i] for names[i] found at its top level
 * (every other member is checked and skipped). 0, or -1 for anything jansson with
 * JSON_REJECT_DUPLICATES would refuse, or nesting past SL__JWT_JSON_MAX_DEPTH. Strings are
 * decoded in place: the jrefs point into s->buf. */
int sl__jwt_json_parse(jscratch *s, size_t n, const jname *names, jval *vals, size_t nnames);

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0: no overlongs, no surrogates,
 * nothing above U+10FFFF (as jansson). */
size_t sl__jwt_utf8_seq(const unsigned char *s);

#endif
