/* The message commands of `sluice`: write, read, ack and nack on one channel, plus the server
 * health check. Each parses its own options with getopt_long, checks its arguments locally (so a
 * typo is a usage error rather than a round trip), makes one client call and prints the result as
 * one line of JSON in the server's shape. */
#include "cli/cli.h"
#include "core/msgjson.h"

#include <stdlib.h>
#include <string.h>

#define MAX_STDIN_MESSAGE ((size_t)64 << 20)

static const char write_usage[] =
    "Usage: sluice write CHANNEL JSON [options]\n"
    "       sluice write CHANNEL - [options]      (read the JSON from stdin)\n"
    "\n"
    "Writes one message whose data is the JSON value given (any JSON: object, array, string,\n"
    "number...). Remember to quote JSON strings: '\"hello\"'. Use '--' before a value starting\n"
    "with '-'. Prints {\"status\":\"accepted\",\"item_id\":\"...\"}.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char read_usage[] =
    "Usage: sluice read CHANNEL [--limit N] [--max-bytes N] [--exclusive] [--after ID] [options]\n"
    "\n"
    "Reads messages and prints {\"messages\":[...],\"more\":BOOL}, each message's data as "
    "written.\n"
    "  --limit N          at most N messages (default 10)\n"
    "  --max-bytes N      at most N bytes of messages (default and cap: the server's)\n"
    "  --exclusive        claim the messages (queues): they must then be acked or nacked\n"
    "  --after ID         topics: read after message ID instead of the reader's cursor\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char ack_usage[] =
    "Usage: sluice ack CHANNEL MSGID... [options]\n"
    "\n"
    "Acknowledges claimed messages. Prints {\"status\":\"ok\",\"acknowledged\":N}.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char nack_usage[] =
    "Usage: sluice nack CHANNEL MSGID... [--delay SECONDS] [options]\n"
    "\n"
    "Releases claimed messages for redelivery. Prints {\"status\":\"ok\",\"nacked\":N}.\n"
    "  --delay SECONDS    wait before redelivery (90, 90s, 15m, 1h; default 0)\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char health_usage[] = "Usage: sluice health [options]\n"
                                   "\n"
                                   "Asks the server whether it is up. Prints {\"status\":\"ok\"}.\n"
                                   "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

enum { OPT_LIMIT = 0x200, OPT_EXCLUSIVE, OPT_AFTER, OPT_DELAY, OPT_MAX_BYTES };

/* ---- write ----------------------------------------------------------------------------------- */

int sl__cli_cmd_write(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, SL__CLI_CONN_OPTS, {0}};
    int r = sl__cli_getopt("write", argc, argv, opts, write_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 2)
        return sl__cli_usage_error("write", "expected CHANNEL and JSON");
    const char *channel = argv[optind], *arg = argv[optind + 1];
    if ((r = sl__cli_check_channel("write", channel)) != 0)
        return r;
    char *in = NULL;
    const char *data = arg;
    size_t len;
    if (strcmp(arg, "-") == 0) {
        if ((in = sl__cli_read_stream(stdin, MAX_STDIN_MESSAGE, &len)) == NULL) {
            sl__cli_err("cannot read the message from stdin");
            return SL__EXIT_FAIL;
        }
        data = in;
    }
    /* Checked here so that a typo is reported with its position, and sent as given. */
    json_error_t e;
    json_t *j = json_loads(data, JSON_DECODE_ANY, &e);
    if (j == NULL) {
        r = sl__cli_usage_error("write", "message is not valid JSON: %s (line %d, column %d)%s",
                                e.text, e.line, e.column,
                                data[0] != '"' ? "; quote strings, e.g. '\"hello\"'" : "");
        free(in);
        return r;
    }
    json_decref(j);
    sl_client *cl;
    if ((r = sl__cli_client(conn, channel, &cl)) != SL__EXIT_OK) {
        free(in);
        return r;
    }
    sl_status st;
    char item[64];
    int rc = sl_client_write(cl, channel, data, item, sizeof item, &st);
    if (rc == SL_OK)
        r = sl__cli_print_json(json_pack("{s:s, s:s}", "status", "accepted", "item_id", item));
    else
        r = sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    free(in);
    return r;
}

/* ---- read ------------------------------------------------------------------------------------ */

typedef struct read_args {
    sl_read rd;
} read_args;

static int read_opt(void *ud, int opt, const char *arg)
{
    read_args *a = ud;
    switch (opt) {
    case OPT_LIMIT:
        if (sl__cli_parse_count(arg, &a->rd.limit) < 0 || a->rd.limit == 0)
            return sl__cli_usage_error("read", "--limit must be a positive integer");
        return 0;
    case OPT_MAX_BYTES:
        if (sl__cli_parse_count(arg, &a->rd.max_bytes) < 0 || a->rd.max_bytes == 0)
            return sl__cli_usage_error("read", "--max-bytes must be a positive integer");
        return 0;
    case OPT_EXCLUSIVE:
        a->rd.exclusive = 1;
        return 0;
    case OPT_AFTER:
        if (*arg == '\0' || strlen(arg) > 128)
            return sl__cli_usage_error("read", "--after must be a message id");
        a->rd.after = arg;
        return 0;
    }
    return SL__EXIT_USAGE;
}

int sl__cli_cmd_read(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"exclusive", no_argument, NULL, OPT_EXCLUSIVE},
                                         {"after", required_argument, NULL, OPT_AFTER},
                                         {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    read_args a = {.rd = {.limit = 10}};
    int r = sl__cli_getopt("read", argc, argv, opts, read_usage, conn, read_opt, &a);
    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return sl__cli_usage_error("read", "expected one CHANNEL");
    const char *channel = argv[optind];
    if ((r = sl__cli_check_channel("read", channel)) != 0)
        return r;
    sl_client *cl;
    if ((r = sl__cli_client(conn, channel, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    sl_message_list l;
    int rc = sl_client_read(cl, channel, &a.rd, &l, &st);
    if (rc == SL_OK) {
        char *text = NULL;
        size_t len;
        sl__messages_json(&l, a.rd.exclusive, &text, &len);
        sl_message_list_free(&l);
        r = sl__cli_print_text(text);
        free(text);
    } else {
        r = sl__cli_fail(cl, rc, &st);
    }
    sl_client_free(cl);
    return r;
}

/* ---- ack / nack ------------------------------------------------------------------------------ */

typedef struct nack_args {
    double delay;
} nack_args;

static int nack_opt(void *ud, int opt, const char *arg)
{
    nack_args *a = ud;
    if (opt == OPT_DELAY) {
        if (sl__cli_parse_duration(arg, &a->delay) < 0)
            return sl__cli_usage_error("nack", "--delay must be a number of seconds (90, 15m, 1h)");
        return 0;
    }
    return SL__EXIT_USAGE;
}

static int ids_command(int argc, char **argv, sl__cli_conn *conn, int nack)
{
    static const struct option ack_opts[] = {
        {"help", no_argument, NULL, 'h'}, SL__CLI_CONN_OPTS, {0}};
    static const struct option nack_opts[] = {{"help", no_argument, NULL, 'h'},
                                              {"delay", required_argument, NULL, OPT_DELAY},
                                              SL__CLI_CONN_OPTS,
                                              {0}};
    const char *cmd = nack ? "nack" : "ack";
    nack_args a = {0};
    int r = nack ? sl__cli_getopt(cmd, argc, argv, nack_opts, nack_usage, conn, nack_opt, &a)
                 : sl__cli_getopt(cmd, argc, argv, ack_opts, ack_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind < 2)
        return sl__cli_usage_error(cmd, "expected CHANNEL and at least one MSGID");
    const char *channel = argv[optind];
    if ((r = sl__cli_check_channel(cmd, channel)) != 0)
        return r;
    const char *const *ids = (const char *const *)&argv[optind + 1];
    size_t n = (size_t)(argc - optind - 1), count = 0;
    sl_client *cl;
    if ((r = sl__cli_client(conn, channel, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    int rc = nack ? sl_client_nack(cl, channel, ids, n, a.delay, &count, &st)
                  : sl_client_ack(cl, channel, ids, n, &count, &st);
    if (rc == SL_OK)
        r = sl__cli_print_json(json_pack("{s:s, s:I}", "status", "ok",
                                         nack ? "nacked" : "acknowledged", (json_int_t)count));
    else
        r = sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}

int sl__cli_cmd_ack(int argc, char **argv, sl__cli_conn *conn)
{
    return ids_command(argc, argv, conn, 0);
}

int sl__cli_cmd_nack(int argc, char **argv, sl__cli_conn *conn)
{
    return ids_command(argc, argv, conn, 1);
}

/* ---- health ---------------------------------------------------------------------------------- */

int sl__cli_cmd_health(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, SL__CLI_CONN_OPTS, {0}};
    int r = sl__cli_getopt("health", argc, argv, opts, health_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error("health", "unexpected argument '%s'", argv[optind]);
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    int rc = sl_client_health(cl, conn->url, conn->token, &st);
    r = rc == SL_OK ? sl__cli_print_json(json_pack("{s:s}", "status", "ok"))
                    : sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}
