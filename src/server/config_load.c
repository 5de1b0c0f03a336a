/* The whole pipeline (sl__config_load): the command line's flags in order, each --config FILE
 * parsed where it appears (through the caller's read_file, so no I/O here), then the environment
 * (SLUICE_JWT_SECRET). Flags are the key table's (config_keys.c), so a flag and its config file key
 * always set the same thing. */
#include "server/config.h"
#include "server/config_internal.h"

#include <stdlib.h>
#include <string.h>

static int flag_id(const char *name, size_t len)
{
    for (int i = 0; i < K_COUNT; i++)
        if (sl__config_key_table[i].flag && strlen(sl__config_key_table[i].flag) == len &&
            !memcmp(sl__config_key_table[i].flag, name, len))
            return i;
    return -1;
}

static int load_file(sl__config *c, const char *path, const sl__config_source *src, sl_status *st)
{
    if (src == NULL || src->read_file == NULL)
        return sl_status_set(st, SL_ECONFIG, "%.200s: cannot read config files here", path);
    char *text = NULL;
    size_t len = 0;
    int rc = src->read_file(src->ud, path, &text, &len, st);
    if (rc == SL_OK)
        rc = sl__config_parse(c, text, len, path, st);
    free(text);
    return rc;
}

/* Our own loop rather than getopt_long: no global state (the tests and the fuzz target run it many
 * times in one process), no argument permutation, no abbreviated flags that a later flag could make
 * ambiguous. */
int sl__config_load(sl__config *c, int argc, char *const *argv, const sl__config_source *src,
                    sl_status *st)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            c->help = 1;
            return SL_OK;
        }
        if (!strcmp(arg, "--")) { /* the end of the flags; sluiced takes no other arguments */
            if (i + 1 < argc)
                return sl_status_set(st, SL_EINVAL, "unexpected argument '%.64s'", argv[i + 1]);
            break;
        }
        if (strncmp(arg, "--", 2) != 0)
            return sl_status_set(st, SL_EINVAL, "unexpected argument '%.64s'", arg);
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        int id = flag_id(name, nlen);
        int is_config = nlen == 6 && !memcmp(name, "config", 6);
        if (id < 0 && !is_config)
            return sl_status_set(st, SL_EINVAL, "unknown option '--%.*s' (see --help)",
                                 (int)(nlen > 64 ? 64 : nlen), name);
        if (value == NULL && id >= 0 && sl__config_key_table[id].flag_takes_no_value)
            value = "true";
        if (value == NULL) {
            if (i + 1 >= argc)
                return sl_status_set(st, SL_EINVAL, "option '--%.*s' needs a value (see --help)",
                                     (int)(nlen > 64 ? 64 : nlen), name);
            value = argv[++i];
        }
        int rc = is_config ? load_file(c, value, src, st)
                           : sl__config_set(c, sl__config_key_table[id].name, value, st);
        if (rc != SL_OK)
            return rc;
    }
    if (src && src->envp) {
        static const char name[] = "SLUICE_JWT_SECRET=";
        for (char *const *e = src->envp; *e; e++) {
            if (strncmp(*e, name, sizeof name - 1) != 0)
                continue;
            const char *v = *e + sizeof name - 1; /* the first one, as getenv(3) finds */
            sl__config_wipe_free(c->jwt_env_secret);
            c->jwt_env_secret = NULL;
            if (*v && (c->jwt_env_secret = strdup(v)) == NULL)
                return sl_status_set(st, SL_ENOMEM, NULL);
            break;
        }
    }
    return SL_OK;
}
