/* Fuzz target: the Redis kv's change notice decoder (sl__redis_kv_notice_parse in
 * src/store/redis_kv_notice.c), which every node runs on whatever arrives on `<prefix>:kv` (anyone
 * who can reach Redis can publish there). Checked: an accepted notice yields entries that lie
 * inside the input, name one of the kv's tables and a key of at most 511 bytes, and encoding them
 * again (sl__redis_kv_notice_add) gives back the input byte for byte, so there is one spelling of
 * each notice; a rejected notice yields no entry at all. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_kv.h"

typedef struct state {
    const char *base;
    size_t size;
    char *out;
    size_t cap, len;
    size_t items;
} state;

static int on_item(void *ud, const sl__redis_kv_notice_item *it)
{
    state *s = ud;
    s->items++;
    if (it->table == NULL || it->klen > SL__REDIS_KV_KEY_MAX ||
        (it->klen == 0) != (it->key == NULL))
        abort();
    if (it->key && (it->key < s->base || it->key + it->klen > s->base + s->size))
        abort();
    if (sl__redis_kv_notice_add(s->out, s->cap, &s->len, it->table, it->key, it->klen) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    state s = {.base = (const char *)data, .size = size, .cap = size + 1};
    s.out = malloc(s.cap);
    if (s.out == NULL)
        abort();
    int ok = sl__redis_kv_notice_parse((const char *)data, size, on_item, &s);
    if (!ok && s.items != 0)
        abort(); /* a malformed notice must not have been half applied */
    if (ok && (s.items == 0 || s.len != size || memcmp(s.out, data, size) != 0))
        abort();
    free(s.out);
    return 0;
}
