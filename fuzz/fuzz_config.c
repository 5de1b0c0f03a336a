/* Fuzz target: the config file parser (src/server/config_parse.c), then the invariants of
 * config_check.h on what it accepted. The whole pipeline (flags, files, environment) is
 * fuzz_config_pipeline. */
#include <stdint.h>

#include "config_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl__config c;
    sl__config_init(&c);
    sl_status st;
    sl_status_clear(&st);
    if (sl__config_parse(&c, (const char *)data, size, "fuzz.conf", &st) == SL_OK)
        config_check(&c);
    else
        config_check_message(&st);
    sl__config_free(&c);
    return 0;
}
