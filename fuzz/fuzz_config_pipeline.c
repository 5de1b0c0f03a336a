/* Fuzz target: sluiced's whole configuration pipeline (sl__config_load in src/server/config_load.c):
 * command line, config files and environment together, then the invariants of config_check.h.
 *
 * Input: lines. Up to the first "%%" line, one command-line argument per line (argv[1..]). Each
 * "%%file" line starts a config file whose text is everything up to the next "%%" line; files are
 * named "0", "1", ... in order ("--config 0" reads the first; any other name cannot be opened).
 * A "%%env" line starts the environment, one NAME=VALUE per line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_check.h"

#define MAX_ARGS 64
#define MAX_FILES 8
#define MAX_ENV 16

typedef struct files {
    const char *text[MAX_FILES];
    size_t len[MAX_FILES];
    int n;
} files;

static int read_mem(void *ud, const char *path, char **text, size_t *len, sl_status *st)
{
    files *f = ud;
    char *end;
    long i = strtol(path, &end, 10);
    if (*path == '\0' || *end || i < 0 || i >= f->n)
        return sl_status_set(st, SL_ECONFIG, "%.200s: cannot open", path);
    if ((*text = malloc(f->len[i] + 1)) == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    memcpy(*text, f->text[i], f->len[i]);
    *len = f->len[i];
    return SL_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1); /* lines become NUL-terminated in place */
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 1] = {"sluiced"}, *envp[MAX_ENV + 1] = {0};
    int argc = 1, nenv = 0;
    files f = {.n = 0};
    enum { ARGS, FILE_TEXT, ENV } part = ARGS;
    char *p = buf, *end = buf + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *next = nl ? nl + 1 : end;
        if (!strncmp(p, "%%file\n", 7) || (next == end && !strcmp(p, "%%file"))) {
            if (f.n == MAX_FILES)
                break;
            part = FILE_TEXT;
            f.text[f.n] = next;
            f.len[f.n++] = 0;
        } else if (!strncmp(p, "%%env", 5)) {
            part = ENV;
        } else if (part == FILE_TEXT) {
            f.len[f.n - 1] = (size_t)(next - f.text[f.n - 1]);
        } else {
            if (nl)
                *nl = '\0';
            if (part == ARGS && argc < MAX_ARGS)
                argv[argc++] = p;
            else if (part == ENV && nenv < MAX_ENV)
                envp[nenv++] = p;
        }
        p = next;
    }
    sl__config_source src = {.read_file = read_mem, .ud = &f, .envp = envp};
    config_check_load(argc, argv, &src);
    free(buf);
    return 0;
}
