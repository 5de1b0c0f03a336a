/* Fuzz target: the JWKS parser (src/security/jwks.c), the document an identity provider serves.
 * Checked against jansson's reading of the same bytes: a set is accepted only when it is a JSON
 * object with a "keys" array, and then holds 1..SL__JWKS_KEYS_MAX keys, no more than the array
 * has; every skipped key is reported once with its index in that array, a fixed reason and a kid
 * without control characters; a refused document gives one of the fixed reasons and no keyring. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/jwks.h"

typedef struct seen {
    size_t n, last;
} seen;

static void on_skip(void *ud, size_t index, const char *kid, const char *reason)
{
    seen *s = ud;
    if (reason == NULL || *reason == '\0' || (s->n > 0 && index <= s->last))
        abort(); /* once per key, in order */
    if (kid != NULL)
        for (const char *p = kid; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                abort();
    s->last = index;
    s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const whys[] = {"document too large", "not JSON", "no keys array",
                                       "no usable key", "out of memory"};
    sl_jwt_keyring *kr = NULL;
    const char *why = NULL;
    seen s = {0, 0};
    int rc = sl__jwks_parse((const char *)data, size, &kr, on_skip, &s, &why);
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *keys = json_object_get(root, "keys");
    if (rc == SL_OK) {
        size_t n = sl_jwt_keyring_size(kr);
        if (why != NULL || kr == NULL || n == 0 || n > SL__JWKS_KEYS_MAX || !json_is_array(keys) ||
            n + s.n > json_array_size(keys) || (s.n > 0 && s.last >= json_array_size(keys)))
            abort();
    } else {
        size_t k = 0;
        while (k < sizeof whys / sizeof whys[0] && (why == NULL || strcmp(why, whys[k]) != 0))
            k++;
        if (kr != NULL || k == sizeof whys / sizeof whys[0])
            abort();
        if (json_is_array(keys) && rc != SL_ENOMEM && strcmp(why, "no usable key") != 0 &&
            size <= SL__JWKS_DOC_MAX)
            abort(); /* a readable key array is refused only for having no usable key */
    }
    sl_jwt_keyring_free(kr);
    json_decref(root);
    return 0;
}
