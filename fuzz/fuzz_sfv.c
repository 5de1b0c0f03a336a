/* Fuzz target: the structured-field parser (security/sfv.c) against its former self. The input is
 * one field value; it goes through every parse entry point of the parser, of the parser built
 * with its plain C paths instead of SSE2 (fuzz/sfv_scalar.c), and of the oracle (the parser as it
 * was before it was made faster, fuzz/sfv_oracle.c), which must all agree on everything
 * a caller can see: accepted or refused, every member, key, item, parameter and value (decimals
 * bit for bit, strings and bytes byte for byte, each NUL-terminated), each item's text span and
 * canonical mark. The dictionary parse into caller scratch runs with scratch sizes the input picks
 * (none, a few bytes, misaligned, plenty), so pieces spill to heap blocks at every point, and must
 * still agree. The input is copied to an exact-size buffer: a read past the field is a finding.
 * Violations abort. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security/sfv.h"

int oracle_sfv_parse_dict(const char *s, size_t len, sl__sfv_dict *out);
int oracle_sfv_parse_dict_in(const char *s, size_t len, sl__sfv_dict *out, void *scratch,
                             size_t cap);
int oracle_sfv_parse_list(const char *s, size_t len, sl__sfv_dict *out);
int oracle_sfv_parse_item(const char *s, size_t len, sl__sfv_item *out);
void oracle_sfv_dict_clear(sl__sfv_dict *d);
void oracle_sfv_item_clear(sl__sfv_item *it);
int scalar_sfv_parse_dict(const char *s, size_t len, sl__sfv_dict *out);
int scalar_sfv_parse_dict_in(const char *s, size_t len, sl__sfv_dict *out, void *scratch,
                             size_t cap);
int scalar_sfv_parse_list(const char *s, size_t len, sl__sfv_dict *out);
int scalar_sfv_parse_item(const char *s, size_t len, sl__sfv_item *out);
void scalar_sfv_dict_clear(sl__sfv_dict *d);
void scalar_sfv_item_clear(sl__sfv_item *it);

/* The two builds under test. */
static const struct impl {
    int (*dict)(const char *, size_t, sl__sfv_dict *);
    int (*dict_in)(const char *, size_t, sl__sfv_dict *, void *, size_t);
    int (*list)(const char *, size_t, sl__sfv_dict *);
    int (*item)(const char *, size_t, sl__sfv_item *);
    void (*dict_clear)(sl__sfv_dict *);
    void (*item_clear)(sl__sfv_item *);
} impls[] = {
    {sl__sfv_parse_dict, sl__sfv_parse_dict_in, sl__sfv_parse_list, sl__sfv_parse_item,
     sl__sfv_dict_clear, sl__sfv_item_clear},
    {scalar_sfv_parse_dict, scalar_sfv_parse_dict_in, scalar_sfv_parse_list, scalar_sfv_parse_item,
     scalar_sfv_dict_clear, scalar_sfv_item_clear},
};

static void fail(const char *what)
{
    fprintf(stderr, "sfv differs from its oracle: %s\n", what);
    abort();
}

static void same_bare(const sl__sfv_bare *x, const sl__sfv_bare *y)
{
    if (x->type != y->type || x->i != y->i || memcmp(&x->d, &y->d, sizeof x->d) != 0 ||
        x->len != y->len || (x->s == NULL) != (y->s == NULL))
        fail("a bare item");
    if (x->s != NULL && (memcmp(x->s, y->s, x->len) != 0 || x->s[x->len] != '\0'))
        fail("a string, token or byte sequence");
}

/* x parsed from text a, y from text b (the same bytes at another address). */
static void same_item(const sl__sfv_item *x, const char *a, const sl__sfv_item *y, const char *b)
{
    if (x->inner != y->inner || x->nitems != y->nitems || x->nparams != y->nparams ||
        x->canonical != y->canonical || x->text_len != y->text_len ||
        (x->text == NULL) != (y->text == NULL) || (x->text && x->text - a != y->text - b))
        fail("an item's shape, span or canonical mark");
    same_bare(&x->v, &y->v);
    for (size_t i = 0; i < x->nitems; i++)
        same_item(&x->items[i], a, &y->items[i], b);
    for (size_t i = 0; i < x->nparams; i++) {
        if (strcmp(x->params[i].key, y->params[i].key) != 0)
            fail("a parameter key");
        same_bare(&x->params[i].v, &y->params[i].v);
    }
}

static void same_dict(int rx, const sl__sfv_dict *x, const char *a, int ry, const sl__sfv_dict *y,
                      const char *b)
{
    if (rx != ry)
        fail("accepted by one, refused by the other");
    if (x->n != y->n)
        fail("the number of members");
    for (size_t i = 0; i < x->n; i++) {
        if ((x->m[i].key == NULL) != (y->m[i].key == NULL) ||
            (x->m[i].key && strcmp(x->m[i].key, y->m[i].key) != 0))
            fail("a member key");
        same_item(&x->m[i].item, a, &y->m[i].item, b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* two exact-size copies, so that spans are compared by offset and overreads are caught */
    char *a = malloc(size ? size : 1), *b = malloc(size ? size : 1);
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return 0;
    }
    memcpy(a, data, size);
    memcpy(b, data, size);
    for (size_t k = 0; k < sizeof impls / sizeof *impls; k++) {
        const struct impl *im = &impls[k];
        sl__sfv_dict x, y;
        int rx = im->dict(a, size, &x), ry = oracle_sfv_parse_dict(b, size, &y);
        same_dict(rx, &x, a, ry, &y, b);
        im->dict_clear(&x);
        oracle_sfv_dict_clear(&y);

        rx = im->list(a, size, &x);
        ry = oracle_sfv_parse_list(b, size, &y);
        same_dict(rx, &x, a, ry, &y, b);
        im->dict_clear(&x);
        oracle_sfv_dict_clear(&y);

        sl__sfv_item it, ot;
        rx = im->item(a, size, &it);
        ry = oracle_sfv_parse_item(b, size, &ot);
        if (rx != ry)
            fail("an item accepted by one, refused by the other");
        if (rx == 0)
            same_item(&it, a, &ot, b);
        im->item_clear(&it);
        oracle_sfv_item_clear(&ot);

        /* into scratch: sizes from the input's last byte and length, misaligned by its first */
        static max_align_t scratch[8192 / sizeof(max_align_t) + 1];
        size_t caps[3] = {0, size ? (unsigned char)data[size - 1] * (size_t)4 : 16,
                          sizeof scratch - 8};
        size_t skew = size ? data[0] % 8 : 0;
        ry = oracle_sfv_parse_dict(b, size, &y);
        for (int i = 0; i < 3; i++) {
            rx = im->dict_in(a, size, &x, (char *)scratch + skew, caps[i]);
            same_dict(rx, &x, a, ry, &y, b);
            im->dict_clear(&x);
        }
        oracle_sfv_dict_clear(&y);
    }
    free(a);
    free(b);
    return 0;
}
