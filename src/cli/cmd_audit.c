/* `sluice audit ...`: local checks of sluiced's tamper-evident audit log (docs/AUDIT.md). `verify`
 * walks the hash chain of a log file and names the first line that does not fit. Its exit codes
 * differ from the remote commands' on purpose, so scripts and monitoring can tell the verdicts
 * apart: 0 intact, 1 tampered, 2 usage error or unreadable file. The chain's tip (last seq and
 * hash) is printed either way, because the one thing the file cannot prove about itself is that
 * records were not cut off its end: operators compare the tip with a copy kept elsewhere. */
#include "cli/cli.h"

#include <sluice/audit.h>

#include <string.h>

static const char audit_usage[] =
    "Usage: sluice audit COMMAND [ARGS] [options]\n"
    "\n"
    "Commands:\n"
    "  verify FILE...     check the hash chain of an audit log (rotated files in order)\n"
    "  tail [--limit N]   the running server's last records, chain verified (remote)\n"
    "\n"
    "Run 'sluice audit COMMAND --help' for a command's options.\n";

static const char verify_usage[] =
    "Usage: sluice audit verify FILE [FILE...]\n"
    "\n"
    "Checks that every line of the audit log FILE is a JSON object, that \"seq\" counts 1, 2, 3,\n"
    "... and that each \"prev\" is the SHA-256 of the line before, so a removed, reordered or\n"
    "edited line is found. Rotated logs (sluiced reopens its log on SIGHUP and continues the\n"
    "chain in the new file) are checked as one chain: give the files oldest first; each must\n"
    "start where the one before ended. Prints {\"status\":\"intact\"|\"tampered\",...} with the\n"
    "number of good records and the tip of the chain (\"last_seq\", \"last_hash\"); for a\n"
    "tampered log also \"file\", \"line\" and \"reason\", and the same on stderr. Records cut off\n"
    "the end of the last file cannot be detected from the files alone: keep the tip somewhere\n"
    "else and compare.\n"
    "Exit codes: 0 intact, 1 tampered, 2 usage error or unreadable file.\n"
    "  -h, --help         show this help\n";

static int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int r = sl__cli_getopt("audit verify", argc, argv, opts, verify_usage, NULL, NULL, NULL);
    if (r >= 0)
        return r;
    if (optind >= argc)
        return sl__cli_usage_error("audit verify", "expected a FILE");
    sl_audit_verify_result res = {0};
    uint64_t records = 0;
    const char *path = NULL;
    for (int i = optind; i < argc && (i == optind || res.intact); i++) {
        path = argv[i];
        sl_status st;
        sl_status_clear(&st);
        char tip[SL_AUDIT_HASH_HEX + 1];
        memcpy(tip, res.last_hash, sizeof tip);
        int rc = i == optind ? sl_audit_verify_file(path, &res, &st)
                             : sl_audit_verify_file_from(path, res.last_seq, tip, &res, &st);
        if (rc != SL_OK && rc != SL_EINVAL) {
            sl__cli_err("%s", st.message[0] ? st.message : sl_strerror(rc));
            return rc == SL_EIO ? SL__EXIT_USAGE : SL__EXIT_FAIL;
        }
        records += res.records;
    }
    int intact = res.intact;
    json_t *o = json_pack("{s:s, s:I, s:I, s:s}", "status", intact ? "intact" : "tampered",
                          "records", (json_int_t)records, "last_seq", (json_int_t)res.last_seq,
                          "last_hash", res.last_hash);
    if (o && !intact) {
        json_object_set_new(o, "file", json_string(path));
        json_object_set_new(o, "line", json_integer((json_int_t)res.bad_line));
        json_object_set_new(o, "reason", json_string(res.reason));
    }
    r = sl__cli_print_json(o);
    if (r != SL__EXIT_OK)
        return r;
    if (intact)
        return SL__EXIT_OK;
    sl__cli_err("%s: line %zu: %s", path, res.bad_line, res.reason);
    return SL__EXIT_FAIL;
}

int sl__cli_cmd_audit(int argc, char **argv)
{
    if (argc < 2)
        return sl__cli_usage_error("audit", "expected a command");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(audit_usage, stdout);
        return SL__EXIT_OK;
    }
    if (!strcmp(sub, "verify"))
        return cmd_verify(argc - 1, argv + 1);
    return sl__cli_usage_error("audit", "unknown command 'audit %s'", sub);
}
