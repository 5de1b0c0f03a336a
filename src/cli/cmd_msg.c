/* The message commands of `sluice`: write, read, ack, nack, extend and terminate on one channel,
 * plus the server health check. Each parses its own options with getopt_long, checks its arguments
 * locally (so a typo is a usage error rather than a round trip), makes one client call and prints
 * the result as one line of JSON in the server's shape. */
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
    "With any option below the message goes as an envelope (docs/QUEUES.md), and the answer\n"
    "also says \"duplicate\": true when the idempotency key repeated.\n"
    "  --lines             JSON is - and every non-blank line of stdin is one message's data:\n"
    "                      one batch (1..1000), stored together or not at all, the options\n"
    "                      below applied to each (not --key); prints \"item_ids\"\n"
    "  --key KEY           idempotency key: a repeat within the channel's window stores nothing\n"
    "  --delay SECONDS     queues: not claimable before (90, 15m, 1h)\n"
    "  --not-before EPOCH  queues: not claimable before this time (epoch seconds)\n"
    "  --ttl SECONDS       expires undelivered after (dead-lettered in queues)\n"
    "  --metadata JSON     a JSON object\n"
    "  --correlation-id ID, --reply-to CHANNEL, --recipient ID\n"
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

static const char extend_usage[] =
    "Usage: sluice extend CHANNEL MSGID... [--seconds SECONDS] [options]\n"
    "\n"
    "Extends the leases of messages you claimed. Prints {\"status\":\"ok\",\"extended\":N}.\n"
    "  --seconds SECONDS  the new lease from now (default: the queue's claim_timeout)\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";
static const char terminate_usage[] =
    "Usage: sluice terminate CHANNEL MSGID... [--reason TEXT] [options]\n"
    "\n"
    "Drops messages you claimed for good: each goes to the dead-letter queue with the reason.\n"
    "Prints {\"status\":\"ok\",\"terminated\":N}.\n"
    "  --reason TEXT      why (default \"terminated\")\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";
static const char health_usage[] = "Usage: sluice health [options]\n"
                                   "\n"
                                   "Asks the server whether it is up. Prints {\"status\":\"ok\"}.\n"
                                   "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

enum {
    OPT_LIMIT = 0x200,
    OPT_EXCLUSIVE,
    OPT_AFTER,
    OPT_DELAY,
    OPT_MAX_BYTES,
    OPT_KEY,
    OPT_NOT_BEFORE,
    OPT_TTL,
    OPT_METADATA,
    OPT_CORRELATION,
    OPT_REPLY_TO,
    OPT_RECIPIENT,
    OPT_LINES,
    OPT_SECONDS,
    OPT_REASON,
};

/* ---- write ----------------------------------------------------------------------------------- */

typedef struct write_args {
    sl_write w;
    int envelope; /* an option was given: send the envelope form */
    int lines;    /* --lines: one message per line of stdin, as one batch */
} write_args;

static int write_opt(void *ud, int opt, const char *arg)
{
    write_args *a = ud;
    a->envelope = 1;
    switch (opt) {
    case OPT_KEY:
        a->w.idempotency_key = arg;
        return 0;
    case OPT_DELAY:
    case OPT_TTL:
        if (sl__cli_parse_duration(arg, opt == OPT_DELAY ? &a->w.delay : &a->w.ttl) < 0)
            return sl__cli_usage_error("write", "%s must be a number of seconds (90, 15m, 1h)",
                                       opt == OPT_DELAY ? "--delay" : "--ttl");
        return 0;
    case OPT_NOT_BEFORE: {
        char *end;
        a->w.not_before = strtod(arg, &end);
        if (*arg == '\0' || *end || !(a->w.not_before >= 0))
            return sl__cli_usage_error("write", "--not-before must be epoch seconds");
        return 0;
    }
    case OPT_METADATA: {
        json_t *j = json_loads(arg, 0, NULL);
        int ok = json_is_object(j);
        json_decref(j);
        if (!ok)
            return sl__cli_usage_error("write", "--metadata must be a JSON object");
        a->w.metadata = arg;
        return 0;
    }
    case OPT_CORRELATION:
        a->w.correlation_id = arg;
        return 0;
    case OPT_REPLY_TO:
        a->w.reply_to = arg;
        return 0;
    case OPT_RECIPIENT:
        a->w.recipient_id = arg;
        return 0;
    case OPT_LINES:
        a->lines = 1;
        return 0;
    }
    return SL__EXIT_USAGE;
}

#define MAX_BATCH 1000

/* --lines: every non-blank line of stdin is one message, all sent as one batch. */
static int write_lines(write_args *a, const char *channel, const char *arg, sl__cli_conn *conn)
{
    if (strcmp(arg, "-") != 0)
        return sl__cli_usage_error("write", "--lines reads stdin: give - as the JSON");
    if (a->w.idempotency_key)
        return sl__cli_usage_error("write", "--key names one message: not with --lines");
    size_t len;
    char *in = sl__cli_read_stream(stdin, MAX_STDIN_MESSAGE, &len);
    if (in == NULL) {
        sl__cli_err("cannot read the messages from stdin");
        return SL__EXIT_FAIL;
    }
    sl_write *w = calloc(MAX_BATCH, sizeof *w);
    char(*ids)[SL_ITEM_ID_SIZE] = calloc(MAX_BATCH, sizeof *ids);
    size_t n = 0, line = 0;
    int r = w && ids ? SL__EXIT_OK : SL__EXIT_FAIL;
    for (char *p = in, *nl; r == SL__EXIT_OK && p < in + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(in + len - p));
        if (nl == NULL)
            nl = in + len;
        *nl = '\0';
        line++;
        if (strspn(p, " \t\r") == strlen(p))
            continue;
        json_error_t e;
        json_t *j = json_loads(p, JSON_DECODE_ANY, &e);
        json_decref(j);
        if (j == NULL)
            r = sl__cli_usage_error("write", "line %zu is not valid JSON: %s", line, e.text);
        else if (n == MAX_BATCH)
            r = sl__cli_usage_error("write", "more than %d messages in one batch", MAX_BATCH);
        else
            w[n] = a->w, w[n].data = p, w[n].data_len = strlen(p), n++;
    }
    if (r == SL__EXIT_OK && n == 0)
        r = sl__cli_usage_error("write", "no message on stdin");
    sl_client *cl = NULL;
    if (r == SL__EXIT_OK)
        r = sl__cli_client(conn, channel, &cl);
    if (r == SL__EXIT_OK) {
        sl_status st;
        size_t dups = 0;
        int rc = sl_client_write_batch(cl, channel, w, n, ids, &dups, &st);
        if (rc == SL_OK) {
            json_t *arr = json_array();
            for (size_t i = 0; arr && i < n; i++)
                json_array_append_new(arr, json_string(ids[i]));
            r = sl__cli_print_json(json_pack("{s:s, s:o, s:I}", "status", "accepted", "item_ids",
                                             arr, "duplicates", (json_int_t)dups));
        } else {
            r = sl__cli_fail(cl, rc, &st);
        }
    }
    sl_client_free(cl);
    free(w);
    free(ids);
    free(in);
    return r;
}

int sl__cli_cmd_write(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"key", required_argument, NULL, OPT_KEY},
        {"delay", required_argument, NULL, OPT_DELAY},
        {"not-before", required_argument, NULL, OPT_NOT_BEFORE},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"metadata", required_argument, NULL, OPT_METADATA},
        {"correlation-id", required_argument, NULL, OPT_CORRELATION},
        {"reply-to", required_argument, NULL, OPT_REPLY_TO},
        {"recipient", required_argument, NULL, OPT_RECIPIENT},
        {"lines", no_argument, NULL, OPT_LINES},
        SL__CLI_CONN_OPTS,
        {0}};
    write_args a = {0};
    int r = sl__cli_getopt("write", argc, argv, opts, write_usage, conn, write_opt, &a);
    if (r >= 0)
        return r;
    if (argc - optind != 2)
        return sl__cli_usage_error("write", "expected CHANNEL and JSON");
    const char *channel = argv[optind], *arg = argv[optind + 1];
    if ((r = sl__cli_check_channel("write", channel)) != 0)
        return r;
    if (a.lines)
        return write_lines(&a, channel, arg, conn);
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
    char item[1][SL_ITEM_ID_SIZE];
    size_t dups = 0;
    int rc;
    if (a.envelope) {
        a.w.data = data;
        a.w.data_len = strlen(data);
        rc = sl_client_write_batch(cl, channel, &a.w, 1, item, &dups, &st);
    } else {
        rc = sl_client_write(cl, channel, data, item[0], sizeof item[0], &st);
    }
    if (rc == SL_OK && a.envelope)
        r = sl__cli_print_json(json_pack("{s:s, s:s, s:b}", "status", "accepted", "item_id",
                                         item[0], "duplicate", dups > 0));
    else if (rc == SL_OK)
        r = sl__cli_print_json(json_pack("{s:s, s:s}", "status", "accepted", "item_id", item[0]));
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
    double delay; /* nack: --delay; extend: --seconds */
    const char *reason;
} nack_args;

static int nack_opt(void *ud, int opt, const char *arg)
{
    nack_args *a = ud;
    if (opt == OPT_DELAY || opt == OPT_SECONDS) {
        const char *cmd = opt == OPT_DELAY ? "nack" : "extend";
        if (sl__cli_parse_duration(arg, &a->delay) < 0)
            return sl__cli_usage_error(cmd, "%s must be a number of seconds (90, 15m, 1h)",
                                       opt == OPT_DELAY ? "--delay" : "--seconds");
        return 0;
    }
    if (opt == OPT_REASON) {
        if (*arg == '\0' || strlen(arg) > 1024)
            return sl__cli_usage_error("terminate", "--reason must be 1..1024 bytes");
        a->reason = arg;
        return 0;
    }
    return SL__EXIT_USAGE;
}

enum { CMD_ACK, CMD_NACK, CMD_EXTEND, CMD_TERMINATE };

static int ids_command(int argc, char **argv, sl__cli_conn *conn, int which)
{
    static const struct option ack_opts[] = {
        {"help", no_argument, NULL, 'h'}, SL__CLI_CONN_OPTS, {0}};
    static const struct option nack_opts[] = {{"help", no_argument, NULL, 'h'},
                                              {"delay", required_argument, NULL, OPT_DELAY},
                                              SL__CLI_CONN_OPTS,
                                              {0}};
    static const struct option extend_opts[] = {{"help", no_argument, NULL, 'h'},
                                                {"seconds", required_argument, NULL, OPT_SECONDS},
                                                SL__CLI_CONN_OPTS,
                                                {0}};
    static const struct option terminate_opts[] = {{"help", no_argument, NULL, 'h'},
                                                   {"reason", required_argument, NULL, OPT_REASON},
                                                   SL__CLI_CONN_OPTS,
                                                   {0}};
    static const struct {
        const char *cmd, *usage, *field;
        const struct option *opts;
    } cmds[] = {
        [CMD_ACK] = {"ack", ack_usage, "acknowledged", ack_opts},
        [CMD_NACK] = {"nack", nack_usage, "nacked", nack_opts},
        [CMD_EXTEND] = {"extend", extend_usage, "extended", extend_opts},
        [CMD_TERMINATE] = {"terminate", terminate_usage, "terminated", terminate_opts},
    };
    const char *cmd = cmds[which].cmd;
    nack_args a = {0};
    int r = sl__cli_getopt(cmd, argc, argv, cmds[which].opts, cmds[which].usage, conn,
                           which == CMD_ACK ? NULL : nack_opt, &a);
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
    int rc = which == CMD_NACK     ? sl_client_nack(cl, channel, ids, n, a.delay, &count, &st)
             : which == CMD_EXTEND ? sl_client_extend(cl, channel, ids, n, a.delay, &count, &st)
             : which == CMD_TERMINATE
                 ? sl_client_terminate(cl, channel, ids, n, a.reason, &count, &st)
                 : sl_client_ack(cl, channel, ids, n, &count, &st);
    if (rc == SL_OK)
        r = sl__cli_print_json(
            json_pack("{s:s, s:I}", "status", "ok", cmds[which].field, (json_int_t)count));
    else
        r = sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}

int sl__cli_cmd_ack(int argc, char **argv, sl__cli_conn *conn)
{
    return ids_command(argc, argv, conn, CMD_ACK);
}

int sl__cli_cmd_nack(int argc, char **argv, sl__cli_conn *conn)
{
    return ids_command(argc, argv, conn, CMD_NACK);
}

int sl__cli_cmd_extend(int argc, char **argv, sl__cli_conn *conn)
{
    return ids_command(argc, argv, conn, CMD_EXTEND);
}

int sl__cli_cmd_terminate(int argc, char **argv, sl__cli_conn *conn)
{
    return ids_command(argc, argv, conn, CMD_TERMINATE);
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
