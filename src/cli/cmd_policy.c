/* `sluice policy invoke ...`: the server's invoke policy (list, set, delete; docs/POLICY.md).
 * Principal patterns are checked locally with the server's rule; the rules themselves are checked
 * by the server, which names the rule it refuses. Results are printed as one line of JSON. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const char policy_usage[] =
    "Usage: sluice policy invoke COMMAND [ARGS] [options]\n"
    "\n"
    "Commands:\n"
    "  invoke list                                    print every invoke policy\n"
    "  invoke set PATTERN [--allow RULE]... [--deny RULE]... [--audit]\n"
    "                                                 set the policy of PATTERN\n"
    "  invoke delete PATTERN                          remove the policy of PATTERN\n"
    "\n"
    "Run 'sluice policy invoke COMMAND --help' for a command's options.\n";

static const char set_usage[] =
    "Usage: sluice policy invoke set PATTERN [--allow RULE]... [--deny RULE]... [--audit]\n"
    "\n"
    "Replaces the invoke policy of PATTERN (a principal, or a pattern where '*' matches any\n"
    "characters: 'svc-*', '*'). A RULE is OPERATION:RESOURCE, e.g. 'channel.write:jobs.*',\n"
    "'acl.*:*' or 'channel.*:public.**' (no ':RESOURCE': any resource). A matching --deny rule\n"
    "always wins; with --allow rules, an operation none of them matches is denied.\n"
    "Prints {\"principal\":...,\"allow\":[...],\"deny\":[...],\"audit\":B}.\n"
    "  --allow RULE       allow operations matching RULE (repeatable)\n"
    "  --deny RULE        deny operations matching RULE (repeatable)\n"
    "  --audit            audit every decision the policy takes\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char delete_usage[] = "Usage: sluice policy invoke delete PATTERN [options]\n"
                                   "\n"
                                   "Removes the policy of PATTERN (exit 5 when it has none).\n"
                                   "Prints {\"status\":\"ok\"}.\n"
                                   "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char list_usage[] =
    "Usage: sluice policy invoke list [options]\n"
    "\n"
    "Prints {\"policies\":[{\"principal\":...,\"allow\":[...],\"deny\":[...],\"audit\":B}...]}.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

enum { OPT_ALLOW = 0x200, OPT_DENY, OPT_AUDIT };

static const struct option plain_opts[] = {
    {"help", no_argument, NULL, 'h'}, SL__CLI_CONN_OPTS, {0}};

typedef struct set_args {
    const char **allow, **deny; /* borrowed from argv */
    size_t nallow, ndeny;
    int audit;
} set_args;

static int set_opt(void *ud, int opt, const char *arg)
{
    set_args *a = ud;
    if (opt == OPT_AUDIT) {
        a->audit = 1;
        return 0;
    }
    if (opt != OPT_ALLOW && opt != OPT_DENY)
        return SL__EXIT_USAGE;
    const char ***v = opt == OPT_DENY ? &a->deny : &a->allow;
    size_t *n = opt == OPT_DENY ? &a->ndeny : &a->nallow;
    const char **p = realloc(*v, (*n + 1) * sizeof *p);
    if (p == NULL) {
        sl__cli_err("out of memory");
        return SL__EXIT_FAIL;
    }
    *v = p;
    p[(*n)++] = arg;
    return 0;
}

static int check_pattern(const char *cmd, const char *p)
{
    if (!sl_principal_valid(p, strlen(p)))
        return sl__cli_usage_error(cmd, "invalid principal pattern '%s'", p);
    return 0;
}

/* Prints the server's JSON reply (owned) as it came. */
static int print_reply(char *reply)
{
    int r = sl__cli_print_text(reply);
    free(reply);
    return r;
}

static int cmd_set(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"allow", required_argument, NULL, OPT_ALLOW},
                                         {"deny", required_argument, NULL, OPT_DENY},
                                         {"audit", no_argument, NULL, OPT_AUDIT},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    set_args a = {0};
    int r = sl__cli_getopt("policy invoke set", argc, argv, opts, set_usage, conn, set_opt, &a);
    if (r < 0 && argc - optind != 1)
        r = sl__cli_usage_error("policy invoke set", "expected one PATTERN");
    const char *pattern = r < 0 ? argv[optind] : NULL;
    if (r < 0 && check_pattern("policy invoke set", pattern) != 0)
        r = SL__EXIT_USAGE;
    sl_client *cl = NULL;
    if (r < 0 && (r = sl__cli_client(conn, NULL, &cl)) == SL__EXIT_OK) {
        sl_status st;
        char *reply;
        int rc = sl_client_invoke_policy_set(cl, conn->url, conn->token, pattern, a.allow, a.nallow,
                                             a.deny, a.ndeny, a.audit, &reply, &st);
        r = rc == SL_OK ? print_reply(reply) : sl__cli_fail(cl, rc, &st);
        sl_client_free(cl);
    }
    free(a.allow);
    free(a.deny);
    return r;
}

static int cmd_delete(int argc, char **argv, sl__cli_conn *conn)
{
    int r = sl__cli_getopt("policy invoke delete", argc, argv, plain_opts, delete_usage, conn, NULL,
                           NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return sl__cli_usage_error("policy invoke delete", "expected one PATTERN");
    const char *pattern = argv[optind];
    if (check_pattern("policy invoke delete", pattern) != 0)
        return SL__EXIT_USAGE;
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    int rc = sl_client_invoke_policy_delete(cl, conn->url, conn->token, pattern, &st);
    r = rc == SL_OK ? sl__cli_print_json(json_pack("{s:s}", "status", "ok"))
                    : sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}

static int cmd_list(int argc, char **argv, sl__cli_conn *conn)
{
    int r =
        sl__cli_getopt("policy invoke list", argc, argv, plain_opts, list_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error("policy invoke list", "unexpected argument '%s'", argv[optind]);
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    char *reply;
    int rc = sl_client_invoke_policy_list(cl, conn->url, conn->token, &reply, &st);
    r = rc == SL_OK ? print_reply(reply) : sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}

int sl__cli_cmd_policy(int argc, char **argv, sl__cli_conn *conn)
{
    if (argc >= 2 &&
        (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        fputs(policy_usage, stdout);
        return SL__EXIT_OK;
    }
    if (argc < 3 || strcmp(argv[1], "invoke") != 0)
        return sl__cli_usage_error("policy", "expected 'invoke list|set|delete'");
    const char *sub = argv[2];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(policy_usage, stdout);
        return SL__EXIT_OK;
    }
    if (!strcmp(sub, "set"))
        return cmd_set(argc - 2, argv + 2, conn);
    if (!strcmp(sub, "delete"))
        return cmd_delete(argc - 2, argv + 2, conn);
    if (!strcmp(sub, "list"))
        return cmd_list(argc - 2, argv + 2, conn);
    return sl__cli_usage_error("policy", "unknown command 'policy invoke %s'", sub);
}
