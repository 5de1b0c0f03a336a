/* Fuzz target: the JSON validator (src/core/jsonv.c) must never accept what jansson rejects, since
 * stored message data is handed back to readers through jansson. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/jsonv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int ours = sl__json_valid((const char *)data, size);
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    /* jansson skips a NUL after a number or literal; the validator rejects NULs anywhere, so only
     * "accepted by us, rejected by jansson" is a bug. */
    if (ours && j == NULL)
        abort();
    json_decref(j);
    return 0;
}
