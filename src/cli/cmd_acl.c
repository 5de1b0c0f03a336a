/* `sluice acl ...`: the server's access-control list (grant, revoke, list). Principals, roles and
 * channel patterns are checked locally with the same rules the server applies, so a typo is a usage
 * error before any request; results are printed as one line of JSON. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const char acl_usage[] =
    "Usage: sluice acl COMMAND [ARGS] [options]\n"
    "\n"
    "Commands:\n"
    "  grant PRINCIPAL --role R [--channel PATTERN]... [--deny PATTERN]...\n"
    "                                                    set PRINCIPAL's entry\n"
    "  revoke PRINCIPAL                                  remove PRINCIPAL's entry\n"
    "  list                                              print every entry\n"
    "\n"
    "Run 'sluice acl COMMAND --help' for a command's options.\n";

static const char grant_usage[] =
    "Usage: sluice acl grant PRINCIPAL --role read|write|admin [--channel PATTERN]...\n"
    "                        [--deny PATTERN]... [options]\n"
    "\n"
    "Replaces PRINCIPAL's ACL entry. Without --channel the role holds on every channel. Patterns\n"
    "are channel ids whose segments may be '*' (one segment) or '**' (the rest), e.g. 'jobs.*'.\n"
    "A channel matching a --deny pattern is denied to PRINCIPAL whatever else allows it (other\n"
    "grants, token scopes, broker roles).\n"
    "Prints {\"principal\":...,\"role\":...,\"channels\":[...]|null,\"deny\":[...]}.\n"
    "  --role R           read, write or admin (required)\n"
    "  --channel PATTERN  restrict the role to matching channels (repeatable)\n"
    "  --deny PATTERN     deny matching channels, whatever allows them (repeatable)\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char revoke_usage[] = "Usage: sluice acl revoke PRINCIPAL [options]\n"
                                   "\n"
                                   "Removes PRINCIPAL's ACL entry (exit 5 when it has none).\n"
                                   "Prints {\"status\":\"ok\"}.\n"
                                   "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char list_usage[] =
    "Usage: sluice acl list [options]\n"
    "\n"
    "Prints "
    "{\"entries\":[{\"principal\":...,\"role\":...,\"channels\":[...],\"deny\":[...]}...]};\n"
    "an empty channels list means every channel, an empty deny list denies nothing.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

enum { OPT_ROLE = 0x200, OPT_CHANNEL, OPT_DENY };

static const struct option plain_opts[] = {
    {"help", no_argument, NULL, 'h'}, SL__CLI_CONN_OPTS, {0}};

typedef struct grant_args {
    sl_role role;
    const char **patterns; /* borrowed from argv */
    size_t n;
    const char **deny; /* borrowed from argv */
    size_t ndeny;
} grant_args;

static int grant_opt(void *ud, int opt, const char *arg)
{
    grant_args *a = ud;
    if (opt == OPT_ROLE) {
        if ((a->role = sl_role_parse(arg)) == SL_ROLE_NONE)
            return sl__cli_usage_error("acl grant", "--role must be read, write or admin");
        return 0;
    }
    if (opt == OPT_CHANNEL || opt == OPT_DENY) {
        if (!sl_pattern_valid(arg, strlen(arg)))
            return sl__cli_usage_error("acl grant", "invalid channel pattern '%s'", arg);
        const char ***v = opt == OPT_DENY ? &a->deny : &a->patterns;
        size_t *n = opt == OPT_DENY ? &a->ndeny : &a->n;
        const char **p = realloc(*v, (*n + 1) * sizeof *p);
        if (p == NULL) {
            sl__cli_err("out of memory");
            return SL__EXIT_FAIL;
        }
        *v = p;
        p[(*n)++] = arg;
        return 0;
    }
    return SL__EXIT_USAGE;
}

static int check_principal(const char *cmd, const char *p)
{
    if (!sl_principal_valid(p, strlen(p)))
        return sl__cli_usage_error(cmd, "invalid principal '%s'", p);
    return 0;
}

static int cmd_grant(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"role", required_argument, NULL, OPT_ROLE},
                                         {"channel", required_argument, NULL, OPT_CHANNEL},
                                         {"deny", required_argument, NULL, OPT_DENY},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    grant_args a = {SL_ROLE_NONE, NULL, 0, NULL, 0};
    int r = sl__cli_getopt("acl grant", argc, argv, opts, grant_usage, conn, grant_opt, &a);
    if (r < 0 && argc - optind != 1)
        r = sl__cli_usage_error("acl grant", "expected one PRINCIPAL");
    if (r < 0 && a.role == SL_ROLE_NONE)
        r = sl__cli_usage_error("acl grant", "--role is required");
    const char *principal = r < 0 ? argv[optind] : NULL;
    if (r < 0 && check_principal("acl grant", principal) != 0)
        r = SL__EXIT_USAGE;
    sl_client *cl = NULL;
    if (r < 0 && (r = sl__cli_client(conn, NULL, &cl)) == SL__EXIT_OK) {
        sl_status st;
        int rc = sl_client_acl_grant_deny(cl, conn->url, conn->token, principal, a.role, a.patterns,
                                          a.n, a.deny, a.ndeny, &st);
        if (rc == SL_OK) {
            json_t *ch = a.n ? json_array() : json_null(), *dn = json_array();
            for (size_t i = 0; ch && i < a.n; i++)
                json_array_append_new(ch, json_string(a.patterns[i]));
            for (size_t i = 0; dn && i < a.ndeny; i++)
                json_array_append_new(dn, json_string(a.deny[i]));
            r = sl__cli_print_json(json_pack("{s:s, s:s, s:o, s:o}", "principal", principal, "role",
                                             sl_role_name(a.role), "channels", ch, "deny", dn));
        } else {
            r = sl__cli_fail(cl, rc, &st);
        }
        sl_client_free(cl);
    }
    free(a.patterns);
    free(a.deny);
    return r;
}

static int cmd_revoke(int argc, char **argv, sl__cli_conn *conn)
{
    int r = sl__cli_getopt("acl revoke", argc, argv, plain_opts, revoke_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return sl__cli_usage_error("acl revoke", "expected one PRINCIPAL");
    const char *principal = argv[optind];
    if (check_principal("acl revoke", principal) != 0)
        return SL__EXIT_USAGE;
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    int rc = sl_client_acl_revoke(cl, conn->url, conn->token, principal, &st);
    r = rc == SL_OK ? sl__cli_print_json(json_pack("{s:s}", "status", "ok"))
                    : sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}

static int cmd_list(int argc, char **argv, sl__cli_conn *conn)
{
    int r = sl__cli_getopt("acl list", argc, argv, plain_opts, list_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error("acl list", "unexpected argument '%s'", argv[optind]);
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    sl_acl_entry *e;
    size_t n;
    int rc = sl_client_acl_list(cl, conn->url, conn->token, &e, &n, &st);
    if (rc == SL_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            json_t *ch = json_array(), *dn = json_array();
            for (size_t k = 0; ch && k < e[i].nchannels; k++)
                json_array_append_new(ch, json_string(e[i].channels[k]));
            for (size_t k = 0; dn && k < e[i].ndeny; k++)
                json_array_append_new(dn, json_string(e[i].deny[k]));
            json_array_append_new(arr, json_pack("{s:s?, s:s, s:o, s:o}", "principal",
                                                 e[i].principal, "role", sl_role_name(e[i].role),
                                                 "channels", ch ? ch : json_array(), "deny",
                                                 dn ? dn : json_array()));
        }
        sl_acl_entries_free(e, n);
        r = sl__cli_print_json(arr ? json_pack("{s:o}", "entries", arr) : NULL);
    } else {
        r = sl__cli_fail(cl, rc, &st);
    }
    sl_client_free(cl);
    return r;
}

int sl__cli_cmd_acl(int argc, char **argv, sl__cli_conn *conn)
{
    if (argc < 2)
        return sl__cli_usage_error("acl", "expected a command");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(acl_usage, stdout);
        return SL__EXIT_OK;
    }
    if (!strcmp(sub, "grant"))
        return cmd_grant(argc - 1, argv + 1, conn);
    if (!strcmp(sub, "revoke"))
        return cmd_revoke(argc - 1, argv + 1, conn);
    if (!strcmp(sub, "list"))
        return cmd_list(argc - 1, argv + 1, conn);
    return sl__cli_usage_error("acl", "unknown command 'acl %s'", sub);
}
