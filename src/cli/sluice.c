/* `sluice`: the command-line client of a sluice server. main reads the global options (connection
 * settings that every remote command also accepts after its name), then hands the rest of the
 * argument vector to the command, whose exit code it returns. All state lives in main's locals and
 * is passed down; nothing is global. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: sluice [--url URL] [--token TOKEN] COMMAND [ARGS] [options]\n"
    "\n"
    "Messages:\n"
    "  write CHANNEL JSON|-            write a message\n"
    "  read CHANNEL [--limit N] [--exclusive] [--after ID]\n"
    "                                  read messages\n"
    "  ack CHANNEL MSGID...            acknowledge claimed messages\n"
    "  nack CHANNEL MSGID... [--delay S]\n"
    "                                  release claimed messages for redelivery\n"
    "  extend CHANNEL MSGID... [--seconds S]\n"
    "                                  extend the leases of claimed messages\n"
    "  terminate CHANNEL MSGID... [--reason TEXT]\n"
    "                                  dead-letter claimed messages for good\n"
    "Administration:\n"
    "  channel create|delete|info|list|clear|evict|remove ...\n"
    "  acl grant|revoke|list ...\n"
    "  policy invoke list|set|delete ...\n"
    "  server connections|disconnect|unsubscribe|presence|channels ...\n"
    "                                  live connections and channels (docs/OPERATIONS.md)\n"
    "  audit tail [--limit N]          the server's last audit records, chain verified\n"
    "  health                          check that the server is up\n"
    "  bench ws [--scenario fanout|idle|connect] ...\n"
    "                                  WebSocket load test (docs/BENCHMARKS.md)\n"
    "  bench queue --target sluice|nats|rabbitmq ...\n"
    "                                  produce, claim, ack against sluice or a broker\n"
    "Tokens (local, no server needed):\n"
    "  token create --sub PRINCIPAL [--role R] [--channel P]... [--ttl 8h]\n"
    "  token inspect TOKEN|- [--verify]\n"
    "  apikey create|list|expire|delete ... [--store FILE]\n"
    "  audit verify FILE\n"
    "  backup --data-dir DIR DEST      copy a (running) server's store into DEST\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help (also after any command)\n"
    "  --version          print the version\n"
    "\n"
    "Environment: SLUICE_URL, SLUICE_TOKEN, SLUICE_JWT_SECRET.\n"
    "Output is one line of JSON on stdout; errors go to stderr as 'sluice: <message>'.\n"
    "Exit codes: 0 ok, 1 other error, 2 usage, 3 authentication failed, 4 permission denied,\n"
    "5 not found, 6 conflict, 7 other client error, 8 server unavailable.\n";

typedef int (*remote_cmd)(int argc, char **argv, sl__cli_conn *conn);

static const struct {
    const char *name;
    remote_cmd fn;
} commands[] = {
    {"write", sl__cli_cmd_write},     {"read", sl__cli_cmd_read},
    {"ack", sl__cli_cmd_ack},         {"nack", sl__cli_cmd_nack},
    {"channel", sl__cli_cmd_channel}, {"acl", sl__cli_cmd_acl},
    {"health", sl__cli_cmd_health},   {"bench", sl__cli_cmd_bench},
    {"extend", sl__cli_cmd_extend},   {"terminate", sl__cli_cmd_terminate},
    {"policy", sl__cli_cmd_policy},   {"server", sl__cli_cmd_server},
};

static int dispatch(int argc, char **argv, sl__cli_conn *conn)
{
    const char *name = argv[0];
    if (!strcmp(name, "token"))
        return sl__cli_cmd_token(argc, argv);
    if (!strcmp(name, "audit") && argc >= 2 && !strcmp(argv[1], "tail"))
        return sl__cli_cmd_audit_tail(argc - 1, argv + 1, conn);
    if (!strcmp(name, "audit"))
        return sl__cli_cmd_audit(argc, argv);
    if (!strcmp(name, "apikey"))
        return sl__cli_cmd_apikey(argc, argv);
    if (!strcmp(name, "backup"))
        return sl__cli_cmd_backup(argc, argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].fn(argc, argv, conn);
    return sl__cli_usage_error(NULL, "unknown command '%s'", name);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    sl__cli_conn conn;
    sl__cli_conn_init(&conn);
    int opt, r = -1;
    opterr = 0;
    /* '+': stop at the command name; what follows belongs to the command. */
    while (r < 0 && (opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            r = SL__EXIT_OK;
        } else if (opt == 'V') {
            printf("sluice %s\n", sl_version());
            r = SL__EXIT_OK;
        } else if (opt == '?' || opt == ':') {
            r = sl__cli_getopt_error(NULL, argv, opt);
        } else if (sl__cli_conn_option(&conn, opt, optarg) < 0) {
            r = SL__EXIT_USAGE;
        }
    }
    if (r < 0 && optind >= argc)
        r = sl__cli_usage_error(NULL, "expected a command");
    if (r < 0 && !strcmp(argv[optind], "help")) {
        /* `sluice help CMD...` is `sluice CMD... --help`. */
        int n = argc - optind - 1;
        char **v = calloc((size_t)n + 2, sizeof *v);
        if (v == NULL) {
            sl__cli_err("out of memory");
            r = SL__EXIT_FAIL;
        } else if (n == 0) {
            fputs(usage, stdout);
            r = SL__EXIT_OK;
        } else {
            memcpy(v, argv + optind + 1, (size_t)n * sizeof *v);
            v[n] = (char *)"--help";
            r = dispatch(n + 1, v, &conn);
        }
        free(v);
    }
    if (r < 0)
        r = dispatch(argc - optind, argv + optind, &conn);
    sl__cli_conn_release(&conn);
    return r;
}
