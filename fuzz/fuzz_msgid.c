/* Fuzz target: message ids (sl__msgid_format / sl__msgid_parse in src/core/message.c), which the
 * engine hands out, the HTTP API takes back in acknowledge/nack/remove and the WebSocket protocol
 * uses as offsets. The parser must accept exactly what the formatter writes: any id it accepts is
 * written back byte for byte from the number it read, and any number survives the round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The input as an id (NUL-terminated copy: the parser takes C strings). */
    char *id = malloc(size + 1);
    if (id == NULL)
        abort();
    memcpy(id, data, size);
    id[size] = '\0';
    uint64_t seq = 0;
    if (sl__msgid_parse(id, &seq)) {
        char back[SL__MSGID_LEN + 1];
        sl__msgid_format(seq, back);
        if (strcmp(back, id) != 0)
            abort(); /* two spellings of one id: an ack could name a message twice */
    }
    free(id);

    /* The input's first bytes as a number. */
    uint64_t v = 0;
    for (size_t i = 0; i < size && i < 8; i++)
        v = v << 8 | data[i];
    char out[SL__MSGID_LEN + 1];
    sl__msgid_format(v, out);
    if (strlen(out) != SL__MSGID_LEN)
        abort();
    for (size_t i = 0; i < SL__MSGID_LEN; i++)
        if (!((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f')))
            abort();
    uint64_t w = ~v;
    if (!sl__msgid_parse(out, &w) || w != v)
        abort();
    return 0;
}
