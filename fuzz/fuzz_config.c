/* Fuzz target: the config file parser (src/server/config.c). */
#include <stdint.h>

#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl__config c;
    sl__config_init(&c);
    sl_status st;
    sl__config_parse(&c, (const char *)data, size, "fuzz.conf", &st);
    sl__config_free(&c);
    return 0;
}
