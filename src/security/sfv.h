/* Structured field values (RFC 8941): a strict parser for dictionaries, lists, inner lists,
 * parameters and the six bare item types, and the serialiser of an item (RFC 9421 signs the
 * serialised form of the signature parameters, so the text a signer sent is rebuilt, not reused).
 * Pure: no I/O, every input bounded (SL__SFV_MAX_* below; past them the field is refused).
 *
 * Duplicate dictionary keys and parameter keys are kept in order as received (RFC 8941 says the
 * last one wins); callers that must not guess (signature headers) refuse them with
 * sl__sfv_dict_has_dups / sl__sfv_params_have_dups. */
#ifndef SLUICE_SECURITY_SFV_H
#define SLUICE_SECURITY_SFV_H

#include <stddef.h>
#include <stdint.h>

#define SL__SFV_MAX_INPUT 16384 /* bytes of one field value */
/* The counts are powers of two (sfv.c grows its arrays by doubling). */
#define SL__SFV_MAX_MEMBERS 64 /* dictionary or list members */
#define SL__SFV_MAX_INNER 64   /* items of one inner list */
#define SL__SFV_MAX_PARAMS 32  /* parameters of one item or inner list */
#define SL__SFV_MAX_KEY 64     /* bytes of a key */

typedef enum {
    SL__SFV_INTEGER = 1,
    SL__SFV_DECIMAL,
    SL__SFV_STRING,
    SL__SFV_TOKEN,
    SL__SFV_BYTES,
    SL__SFV_BOOLEAN,
} sl__sfv_type;

typedef struct sl__sfv_bare {
    sl__sfv_type type;
    int64_t i; /* INTEGER; BOOLEAN: 0 or 1 */
    double d;  /* DECIMAL */
    char *s;   /* STRING (unescaped), TOKEN, BYTES (decoded); owned, NUL-terminated */
    size_t len;
} sl__sfv_bare;

typedef struct sl__sfv_param {
    char *key; /* owned */
    sl__sfv_bare v;
} sl__sfv_param;

typedef struct sl__sfv_item {
    int inner;                  /* 1: an inner list (items below), 0: a bare item (v) */
    sl__sfv_bare v;             /* when !inner */
    struct sl__sfv_item *items; /* when inner: each a bare item with its parameters; owned */
    size_t nitems;
    sl__sfv_param *params; /* owned */
    size_t nparams;
    void *mem; /* a parsed item's memory, every piece above (NULL in nested items) */
    /* The item as received (the inner list or bare item with its parameters: a span of the parsed
     * text, borrowed from it), and 1 when that text is exactly what sl__sfv_serialize_item
     * writes for the item (no optional spaces, no leading zeros, no "=?1" parameter, no decimal),
     * so a caller may use it instead of serialising. */
    const char *text;
    size_t text_len;
    int canonical;
} sl__sfv_item;

typedef struct sl__sfv_member {
    char *key; /* dictionaries; NULL in a list */
    sl__sfv_item item;
} sl__sfv_member;

/* A dictionary or a list (members in the order received). */
typedef struct sl__sfv_dict {
    sl__sfv_member *m; /* owned */
    size_t n;
    void *mem; /* the memory of every piece (sfv.c) */
} sl__sfv_dict;

/* Each returns 0 and fills *out (release with the matching _clear), or -1 when the text is not a
 * valid field of that type or exceeds a bound (then *out is empty). An empty value is a valid
 * empty dictionary or list. */
int sl__sfv_parse_dict(const char *s, size_t len, sl__sfv_dict *out);
int sl__sfv_parse_list(const char *s, size_t len, sl__sfv_dict *out);
/* The same with scratch: caller memory (a stack array, say) that the pieces are carved from
 * first, so a field that fits costs no allocation; one that outgrows it goes on in heap blocks,
 * which _clear frees. *out points into scratch: scratch must outlive it. */
int sl__sfv_parse_dict_in(const char *s, size_t len, sl__sfv_dict *out, void *scratch, size_t cap);
int sl__sfv_parse_item(const char *s, size_t len, sl__sfv_item *out);
void sl__sfv_dict_clear(sl__sfv_dict *d);
void sl__sfv_item_clear(sl__sfv_item *it);

/* Strict base64 (RFC 4648 section 4, as byte sequences carry it: whole quanta, padding only at
 * the end, no stray bits) of s[0..n) into out (cap bytes). The decoded length, or -1 when s is
 * not such base64 or decodes to more than cap bytes. */
long sl__sfv_b64_decode(const char *s, size_t n, unsigned char *out, size_t cap);

/* The member or parameter named key (the first), or NULL. */
const sl__sfv_member *sl__sfv_dict_get(const sl__sfv_dict *d, const char *key);
const sl__sfv_bare *sl__sfv_param_get(const sl__sfv_item *it, const char *key);
/* 1 when some key occurs twice. */
int sl__sfv_dict_has_dups(const sl__sfv_dict *d);
int sl__sfv_params_have_dups(const sl__sfv_item *it);

/* Serialises it (RFC 8941 section 4.1: an inner list or bare item with its parameters) into buf
 * (cap bytes, NUL-terminated). Returns the length, or -1 when it does not fit or holds a value
 * that has no serialisation (a decimal out of range, a string byte outside 0x20..0x7e). */
long sl__sfv_serialize_item(const sl__sfv_item *it, char *buf, size_t cap);

#endif
