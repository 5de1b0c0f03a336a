/* Fuzz target: sluiced's command line (sl__config_load in src/server/config_load.c) on its own: the
 * input is the arguments, separated by NUL bytes (argv[1..]). "--config" with any name reads one
 * fixed config file, so flags before and after a file are exercised; there is no environment. The
 * whole pipeline with files and environment from the input is fuzz_config_pipeline. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_check.h"

#define MAX_ARGS 64

static int read_fixed(void *ud, const char *path, char **text, size_t *len, sl_status *st)
{
    (void)ud;
    (void)path;
    static const char conf[] = "listen = 127.0.0.1:0\n"
                               "apikey_store = /keys\n"
                               "upstream_jwt_key = es256:/idp.pem\n"
                               "introspection_url = https://idp.example/introspect\n"
                               "jwt_secret_file = /secret\n"
                               "jwt_key = k1:/k1\n"
                               "admin = ops\n"
                               "authenticators = apikey, introspection\n";
    if ((*text = malloc(sizeof conf)) == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    memcpy(*text, conf, sizeof conf);
    *len = sizeof conf - 1;
    return SL_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 1] = {"sluiced"};
    int argc = 1;
    for (char *p = buf; p < buf + size && argc < MAX_ARGS; p += strlen(p) + 1)
        argv[argc++] = p;
    sl__config_source src = {.read_file = read_fixed};
    config_check_load(argc, argv, &src);
    free(buf);
    return 0;
}
