/* `sluice server ...` and `sluice audit tail`: the server API and the audit log of a
 * running sluiced (docs/OPERATIONS.md "Server API"), for administrators. Arguments are checked
 * locally with the server's own rules (principal and channel syntax, code and reason bounds), so
 * a typo is a usage error before any request; the server's reply is printed as it came, one line
 * of JSON. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const char server_usage[] =
    "Usage: sluice server COMMAND [ARGS] [options]\n"
    "\n"
    "Commands:\n"
    "  connections [--principal P] [--limit N]     list the live WebSocket connections\n"
    "  disconnect (--principal P | --connection ID) [--code N] [--reason TEXT]\n"
    "                                              close connections (Centrifugo disconnect)\n"
    "  unsubscribe PRINCIPAL CHANNEL               end PRINCIPAL's subscriptions to CHANNEL\n"
    "  presence CHANNEL [--stats]                  who is subscribed to CHANNEL\n"
    "  channels                                    per-channel statistics\n"
    "\n"
    "Run 'sluice server COMMAND --help' for a command's options.\n";

static const char connections_usage[] =
    "Usage: sluice server connections [--principal P] [--limit N] [options]\n"
    "\n"
    "Prints {\"connections\":[{\"id\":...,\"principal\":...,\"workspace\":...,\"remote\":...,\n"
    "\"transport\":\"websocket\",\"since\":EPOCH,\"subscriptions\":[...]}...],\"count\":N,\"more\":"
    "B}.\n"
    "  --principal P      only P's connections\n"
    "  --limit N          at most N connections (1..10000; default 1000)\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char disconnect_usage[] =
    "Usage: sluice server disconnect (--principal P | --connection ID) [--code N]\n"
    "                                [--reason TEXT] [options]\n"
    "\n"
    "Closes every connection of P, or the connection ID (both: ID only if it is P's), with a\n"
    "Centrifugo disconnect: the WebSocket close frame carries the code (3000..4999, default 3503\n"
    "\"force disconnect\", after which clients do not reconnect) and the reason (at most 123\n"
    "bytes). Audited. Prints {\"disconnected\":N}; exit 5 when ID is not connected.\n"
    "  --principal P      every connection of P\n"
    "  --connection ID    one connection (its id from 'sluice server connections')\n"
    "  --code N           the disconnect code, 3000..4999\n"
    "  --reason TEXT      the disconnect reason\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char unsubscribe_usage[] =
    "Usage: sluice server unsubscribe PRINCIPAL CHANNEL [options]\n"
    "\n"
    "Ends PRINCIPAL's subscriptions to CHANNEL on each of its connections: the client gets the\n"
    "Centrifugo unsubscribe push (code 2000) and no further publication. Audited.\n"
    "Prints {\"unsubscribed\":N}.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char presence_usage[] =
    "Usage: sluice server presence CHANNEL [--stats] [options]\n"
    "\n"
    "Prints {\"channel\":...,\"clients\":[{\"client\":...,\"user\":...}...]}, or with --stats\n"
    "{\"channel\":...,\"num_clients\":N,\"num_users\":M}. The channel needs its presence option.\n"
    "  --stats            counts only\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char channels_usage[] =
    "Usage: sluice server channels [options]\n"
    "\n"
    "Prints "
    "{\"channels\":[{\"id\":...,\"kind\":...,\"visibility\":...,\"depth\":N,\"in_flight\":N,\n"
    "\"dead_letter\":...,\"dead_letters\":N,\"subscribers\":N,\"published\":N}...]}\n"
    "(docs/OPERATIONS.md says what each counts).\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char tail_usage[] =
    "Usage: sluice audit tail [--limit N] [options]\n"
    "\n"
    "The last N records (1..1000; default 100) of the running server's audit log, oldest first,\n"
    "with the server's verdict on the whole file's hash chain:\n"
    "{\"records\":[...],\"more\":B,\"verified\":B,\"checked\":N,\"last_seq\":N,\"first_seq\":N}\n"
    "(and \"bad_line\", \"reason\" when it does not verify). Exit 1 when it does not verify.\n"
    "To check a copy of the file yourself: 'sluice audit verify FILE'.\n"
    "  --limit N          how many records\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

enum { OPT_PRINCIPAL = 0x200, OPT_CONNECTION, OPT_CODE, OPT_REASON, OPT_LIMIT, OPT_STATS };

static const struct option plain_opts[] = {
    {"help", no_argument, NULL, 'h'}, SL__CLI_CONN_OPTS, {0}};

typedef struct args {
    const char *cmd; /* for messages */
    const char *principal, *connection, *reason;
    long code;
    size_t limit, max;
    int stats;
} args;

static int check_principal(const char *cmd, const char *p)
{
    if (!sl_principal_valid(p, strlen(p)))
        return sl__cli_usage_error(cmd, "invalid principal '%s'", p);
    return 0;
}

static int own_opt(void *ud, int opt, const char *arg)
{
    args *a = ud;
    switch (opt) {
    case OPT_PRINCIPAL:
        a->principal = arg;
        return check_principal(a->cmd, arg);
    case OPT_CONNECTION: {
        size_t n = strlen(arg);
        if (n == 0 || n > 64 ||
            strspn(arg, "0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != n)
            return sl__cli_usage_error(a->cmd, "invalid connection id '%s'", arg);
        a->connection = arg;
        return 0;
    }
    case OPT_CODE: {
        char *end = NULL;
        a->code = strtol(arg, &end, 10);
        if (end == arg || *end || a->code < 3000 || a->code > 4999)
            return sl__cli_usage_error(a->cmd, "--code must be from 3000 to 4999");
        return 0;
    }
    case OPT_REASON:
        if (strlen(arg) > 123)
            return sl__cli_usage_error(a->cmd, "--reason is longer than 123 bytes");
        a->reason = arg;
        return 0;
    case OPT_LIMIT:
        if (sl__cli_parse_count(arg, &a->limit) != 0 || a->limit < 1 || a->limit > a->max)
            return sl__cli_usage_error(a->cmd, "--limit must be from 1 to %zu", a->max);
        return 0;
    case OPT_STATS:
        a->stats = 1;
        return 0;
    }
    return SL__EXIT_USAGE;
}

/* Prints the reply (owned) or reports the failure; frees cl. */
static int finish(sl_client *cl, int rc, char *reply, const sl_status *st)
{
    int r = rc == SL_OK ? sl__cli_print_text(reply) : sl__cli_fail(cl, rc, st);
    free(reply);
    sl_client_free(cl);
    return r;
}

static int cmd_connections(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"principal", required_argument, NULL, OPT_PRINCIPAL},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    args a = {.cmd = "server connections", .max = 10000};
    int r = sl__cli_getopt(a.cmd, argc, argv, opts, connections_usage, conn, own_opt, &a);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error(a.cmd, "unexpected argument '%s'", argv[optind]);
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    char *reply = NULL;
    int rc =
        sl_client_server_connections(cl, conn->url, conn->token, a.principal, a.limit, &reply, &st);
    return finish(cl, rc, reply, &st);
}

static int cmd_disconnect(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"principal", required_argument, NULL, OPT_PRINCIPAL},
                                         {"connection", required_argument, NULL, OPT_CONNECTION},
                                         {"code", required_argument, NULL, OPT_CODE},
                                         {"reason", required_argument, NULL, OPT_REASON},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    args a = {.cmd = "server disconnect"};
    int r = sl__cli_getopt(a.cmd, argc, argv, opts, disconnect_usage, conn, own_opt, &a);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error(a.cmd, "unexpected argument '%s'", argv[optind]);
    if (a.principal == NULL && a.connection == NULL)
        return sl__cli_usage_error(a.cmd, "--principal or --connection is required");
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    char *reply = NULL;
    int rc = sl_client_server_disconnect(cl, conn->url, conn->token, a.principal, a.connection,
                                         (int)a.code, a.reason, &reply, &st);
    return finish(cl, rc, reply, &st);
}

static int cmd_unsubscribe(int argc, char **argv, sl__cli_conn *conn)
{
    const char *cmd = "server unsubscribe";
    int r = sl__cli_getopt(cmd, argc, argv, plain_opts, unsubscribe_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 2)
        return sl__cli_usage_error(cmd, "expected PRINCIPAL and CHANNEL");
    const char *principal = argv[optind], *channel = argv[optind + 1];
    if (check_principal(cmd, principal) != 0 || sl__cli_check_channel(cmd, channel) != 0)
        return SL__EXIT_USAGE;
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    char *reply = NULL;
    int rc =
        sl_client_server_unsubscribe(cl, conn->url, conn->token, principal, channel, &reply, &st);
    return finish(cl, rc, reply, &st);
}

static int cmd_presence(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"stats", no_argument, NULL, OPT_STATS},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    args a = {.cmd = "server presence"};
    int r = sl__cli_getopt(a.cmd, argc, argv, opts, presence_usage, conn, own_opt, &a);
    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return sl__cli_usage_error(a.cmd, "expected one CHANNEL");
    if (sl__cli_check_channel(a.cmd, argv[optind]) != 0)
        return SL__EXIT_USAGE;
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    char *reply = NULL;
    int rc =
        sl_client_server_presence(cl, conn->url, conn->token, argv[optind], a.stats, &reply, &st);
    return finish(cl, rc, reply, &st);
}

static int cmd_channels(int argc, char **argv, sl__cli_conn *conn)
{
    const char *cmd = "server channels";
    int r = sl__cli_getopt(cmd, argc, argv, plain_opts, channels_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    char *reply = NULL;
    int rc = sl_client_server_channels(cl, conn->url, conn->token, &reply, &st);
    return finish(cl, rc, reply, &st);
}

int sl__cli_cmd_server(int argc, char **argv, sl__cli_conn *conn)
{
    if (argc < 2)
        return sl__cli_usage_error("server", "expected a command");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(server_usage, stdout);
        return SL__EXIT_OK;
    }
    if (!strcmp(sub, "connections"))
        return cmd_connections(argc - 1, argv + 1, conn);
    if (!strcmp(sub, "disconnect"))
        return cmd_disconnect(argc - 1, argv + 1, conn);
    if (!strcmp(sub, "unsubscribe"))
        return cmd_unsubscribe(argc - 1, argv + 1, conn);
    if (!strcmp(sub, "presence"))
        return cmd_presence(argc - 1, argv + 1, conn);
    if (!strcmp(sub, "channels"))
        return cmd_channels(argc - 1, argv + 1, conn);
    return sl__cli_usage_error("server", "unknown command 'server %s'", sub);
}

int sl__cli_cmd_audit_tail(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    args a = {.cmd = "audit tail", .max = 1000};
    int r = sl__cli_getopt(a.cmd, argc, argv, opts, tail_usage, conn, own_opt, &a);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error(a.cmd, "unexpected argument '%s'", argv[optind]);
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    char *reply = NULL;
    int rc = sl_client_audit_tail(cl, conn->url, conn->token, a.limit, &reply, &st);
    /* The chain's verdict decides the exit code, as for `audit verify`. */
    json_t *o = rc == SL_OK ? json_loads(reply, 0, NULL) : NULL;
    int broken = o && json_is_false(json_object_get(o, "verified"));
    const char *why = json_string_value(json_object_get(o, "reason"));
    if (broken)
        sl__cli_err("the audit log does not verify: line %lld: %s",
                    (long long)json_integer_value(json_object_get(o, "bad_line")), why ? why : "?");
    json_decref(o);
    r = finish(cl, rc, reply, &st);
    return r == SL__EXIT_OK && broken ? SL__EXIT_FAIL : r;
}
