/* `sluice backup --data-dir DIR DEST`: a consistent, compacted copy of a sluiced data directory,
 * taken while the server runs. The store is opened read-only (no process lock, so a running
 * sluiced keeps its directory) and copied by LMDB in one read transaction; restoring is starting
 * sluiced with --data-dir DEST. Local: no server connection is involved. */
#include "cli/cli.h"

#include <string.h>

#include "store/lmdb.h"

static const char backup_usage[] =
    "Usage: sluice backup --data-dir DIR DEST\n"
    "\n"
    "Copies the store in DIR (a sluiced data directory, which may be in use) into DEST, a new or\n"
    "empty directory, as one consistent snapshot without free pages. Start sluiced on DEST to\n"
    "restore it. Prints {\"status\":\"ok\",\"data_dir\":DIR,\"dest\":DEST}.\n"
    "  --data-dir DIR     the data directory to copy\n"
    "  -h, --help         show this help\n";

static int backup_option(void *ud, int opt, const char *arg)
{
    if (opt != 'd')
        return SL__EXIT_USAGE;
    *(const char **)ud = arg;
    return 0;
}

int sl__cli_cmd_backup(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"data-dir", required_argument, NULL, 'd'}, {0}};
    const char *dir = NULL;
    int r = sl__cli_getopt("backup", argc, argv, opts, backup_usage, NULL, backup_option, &dir);
    if (r >= 0)
        return r;
    if (dir == NULL || dir[0] == '\0')
        return sl__cli_usage_error("backup", "expected --data-dir DIR");
    if (optind >= argc)
        return sl__cli_usage_error("backup", "expected a DEST directory");
    if (optind + 1 < argc)
        return sl__cli_usage_error("backup", "unexpected argument '%s'", argv[optind + 1]);
    const char *dest = argv[optind];
    sl__lmdb_opts o = {.dir = dir, .read_only = 1};
    sl_status st;
    sl_status_clear(&st);
    sl__kv *kv = NULL;
    int rc = sl__lmdb_open(&kv, &o, &st);
    if (rc == SL_OK) {
        rc = sl__lmdb_backup(kv, dest, &st);
        kv->ops->free(kv);
    }
    if (rc != SL_OK) {
        sl__cli_err("%s", st.message[0] ? st.message : sl_strerror(rc));
        return rc == SL_EINVAL ? SL__EXIT_USAGE : SL__EXIT_FAIL;
    }
    return sl__cli_print_json(
        json_pack("{s:s, s:s, s:s}", "status", "ok", "data_dir", dir, "dest", dest));
}
