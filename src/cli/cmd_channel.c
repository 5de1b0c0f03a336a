/* `sluice channel ...`: channel administration (create, delete, info, list, clear, evict, remove).
 * Options are checked locally before any request is sent, so a malformed value is a usage error
 * (exit 2) rather than a server rejection; results are printed as one line of JSON in the server's
 * shapes. */
#include "cli/cli.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char channel_usage[] =
    "Usage: sluice channel COMMAND [ARGS] [options]\n"
    "\n"
    "Commands:\n"
    "  create ID [--kind queue|topic] [...]   create a channel\n"
    "  delete ID                              delete a channel and its messages\n"
    "  info ID                                show a channel's settings and depth\n"
    "  list                                   list the channels you may see\n"
    "  clear ID                               drop every message\n"
    "  evict ID [--before T] [--max-count N]  drop old messages\n"
    "  remove ID MSGID...                     drop the given messages\n"
    "\n"
    "Run 'sluice channel COMMAND --help' for a command's options.\n";

static const char create_usage[] =
    "Usage: sluice channel create ID [options]\n"
    "\n"
    "Creates a channel and prints its info.\n"
    "  --kind queue|topic           queue: each message to one reader (default);\n"
    "                               topic: every reader sees every message\n"
    "  --name NAME                  display name (default: the id)\n"
    "  --description TEXT\n"
    "  --public | --private         visibility (default public; private channels are\n"
    "                               invisible to network callers)\n"
    "  --security inherit|open|acl|token   per-channel security mode (default inherit)\n"
    "  --claim-timeout SECONDS      queues: lease of an exclusive read (default 300)\n"
    "  --max-attempts N             queues: deliveries before dead-lettering (0: unlimited)\n"
    "  --dead-letter ID             queues: dead-letter channel (default ID.dead)\n"
    "  --max-messages N             capacity (0: unbounded)\n"
    "  --retention-max-count N      topics: keep at most N messages (0: unbounded)\n"
    "  --retention-max-age SECONDS  topics: drop messages older than this (0: unbounded)\n"
    "  --backoff S,S,...            queues: redelivery delay per failed attempt (last repeats)\n"
    "  --dedup-window SECONDS       how long idempotency keys are remembered (default 120)\n"
    "  --cursor-idle-timeout SECONDS  topics: drop readers' cursors idle this long (default 1d)\n"
    "Durations accept a suffix: 90s, 15m, 8h, 7d.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help                   show this help\n";

static const char delete_usage[] =
    "Usage: sluice channel delete ID [options]\n"
    "\n"
    "Deletes a channel and its messages. Prints {\"status\":\"ok\"}.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char info_usage[] = "Usage: sluice channel info ID [options]\n"
                                 "\n"
                                 "Prints a channel's settings and depth.\n"
                                 "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char list_usage[] = "Usage: sluice channel list [options]\n"
                                 "\n"
                                 "Prints {\"channels\":[...]}: the channels you may see.\n"
                                 "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char clear_usage[] =
    "Usage: sluice channel clear ID [options]\n"
    "\n"
    "Drops every message of a channel. Prints {\"status\":\"ok\",\"cleared\":N}.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char evict_usage[] =
    "Usage: sluice channel evict ID [--before T] [--max-count N] [options]\n"
    "\n"
    "Drops old messages. Prints {\"status\":\"ok\",\"evicted\":N}. Give at least one of:\n"
    "  --before T         drop messages written before T (seconds since the epoch)\n"
    "  --max-count N      keep only the newest N messages\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

static const char remove_usage[] =
    "Usage: sluice channel remove ID MSGID... [options]\n"
    "\n"
    "Drops the given messages. Prints {\"status\":\"ok\",\"removed\":N}.\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n";

enum {
    OPT_KIND = 0x200,
    OPT_NAME,
    OPT_DESCRIPTION,
    OPT_PUBLIC,
    OPT_PRIVATE,
    OPT_SECURITY,
    OPT_CLAIM_TIMEOUT,
    OPT_MAX_ATTEMPTS,
    OPT_DEAD_LETTER,
    OPT_MAX_MESSAGES,
    OPT_RETENTION_COUNT,
    OPT_RETENTION_AGE,
    OPT_BEFORE,
    OPT_MAX_COUNT,
    OPT_BACKOFF,
    OPT_DEDUP_WINDOW,
    OPT_CURSOR_IDLE,
};

static const struct option plain_opts[] = {
    {"help", no_argument, NULL, 'h'}, SL__CLI_CONN_OPTS, {0}};

/* ---- create ---------------------------------------------------------------------------------- */

static int create_opt(void *ud, int opt, const char *arg)
{
    sl_channel_opts *o = ud;
    const char *cmd = "channel create";
    size_t n;
    switch (opt) {
    case OPT_KIND:
        if (strcmp(arg, "queue") && strcmp(arg, "topic"))
            return sl__cli_usage_error(cmd, "--kind must be queue or topic");
        o->kind = strcmp(arg, "topic") ? SL_KIND_QUEUE : SL_KIND_TOPIC;
        return 0;
    case OPT_NAME:
        o->name = arg;
        return 0;
    case OPT_DESCRIPTION:
        o->description = arg;
        return 0;
    case OPT_PUBLIC:
    case OPT_PRIVATE:
        o->visibility = opt == OPT_PUBLIC ? SL_VIS_PUBLIC : SL_VIS_PRIVATE;
        return 0;
    case OPT_SECURITY: {
        int m = (int)sl_mode_parse(arg);
        if (m < 0)
            return sl__cli_usage_error(cmd, "--security must be inherit, open, acl or token");
        o->mode = (sl_mode)m;
        return 0;
    }
    case OPT_CLAIM_TIMEOUT:
        if (sl__cli_parse_duration(arg, &o->claim_timeout) < 0 || o->claim_timeout <= 0)
            return sl__cli_usage_error(cmd, "--claim-timeout must be a positive number of seconds");
        return 0;
    case OPT_MAX_ATTEMPTS:
        if (sl__cli_parse_count(arg, &n) < 0 || n > 1000000)
            return sl__cli_usage_error(cmd, "--max-attempts must be an integer from 0 to 1000000");
        o->max_attempts = (unsigned)n;
        return 0;
    case OPT_DEAD_LETTER:
        if (!sl_channel_id_valid(arg, strlen(arg)))
            return sl__cli_usage_error(cmd, "--dead-letter must be a channel id");
        o->dead_letter = arg;
        return 0;
    case OPT_MAX_MESSAGES:
        if (sl__cli_parse_count(arg, &o->max_messages) < 0)
            return sl__cli_usage_error(cmd, "--max-messages must be a non-negative integer");
        return 0;
    case OPT_RETENTION_COUNT:
        if (sl__cli_parse_count(arg, &o->retention_max_count) < 0)
            return sl__cli_usage_error(cmd, "--retention-max-count must be a non-negative integer");
        return 0;
    case OPT_RETENTION_AGE:
        if (sl__cli_parse_duration(arg, &o->retention_max_age) < 0)
            return sl__cli_usage_error(cmd, "--retention-max-age must be a number of seconds");
        return 0;
    case OPT_DEDUP_WINDOW:
    case OPT_CURSOR_IDLE:
        if (sl__cli_parse_duration(arg, opt == OPT_DEDUP_WINDOW ? &o->dedup_window
                                                                : &o->cursor_idle_timeout) < 0)
            return sl__cli_usage_error(cmd, "%s must be a number of seconds",
                                       opt == OPT_DEDUP_WINDOW ? "--dedup-window"
                                                               : "--cursor-idle-timeout");
        return 0;
    case OPT_BACKOFF: {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", arg);
        o->nbackoff = 0;
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            if (o->nbackoff == SL_BACKOFF_MAX ||
                sl__cli_parse_duration(tok, &o->backoff[o->nbackoff]) < 0)
                return sl__cli_usage_error(cmd,
                                           "--backoff must be at most %d comma-separated "
                                           "durations",
                                           SL_BACKOFF_MAX);
            o->nbackoff++;
        }
        return 0;
    }
    }
    return SL__EXIT_USAGE;
}

static int cmd_create(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"kind", required_argument, NULL, OPT_KIND},
        {"name", required_argument, NULL, OPT_NAME},
        {"description", required_argument, NULL, OPT_DESCRIPTION},
        {"public", no_argument, NULL, OPT_PUBLIC},
        {"private", no_argument, NULL, OPT_PRIVATE},
        {"security", required_argument, NULL, OPT_SECURITY},
        {"claim-timeout", required_argument, NULL, OPT_CLAIM_TIMEOUT},
        {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
        {"dead-letter", required_argument, NULL, OPT_DEAD_LETTER},
        {"max-messages", required_argument, NULL, OPT_MAX_MESSAGES},
        {"retention-max-count", required_argument, NULL, OPT_RETENTION_COUNT},
        {"retention-max-age", required_argument, NULL, OPT_RETENTION_AGE},
        {"backoff", required_argument, NULL, OPT_BACKOFF},
        {"dedup-window", required_argument, NULL, OPT_DEDUP_WINDOW},
        {"cursor-idle-timeout", required_argument, NULL, OPT_CURSOR_IDLE},
        SL__CLI_CONN_OPTS,
        {0}};
    sl_channel_opts o;
    sl_channel_opts_init(&o);
    /* Over the network a private channel is invisible, so public is the useful default. */
    o.visibility = SL_VIS_PUBLIC;
    o.claim_timeout = 0; /* unset: the server's default */
    int r = sl__cli_getopt("channel create", argc, argv, opts, create_usage, conn, create_opt, &o);
    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return sl__cli_usage_error("channel create", "expected one channel ID");
    const char *id = argv[optind];
    if ((r = sl__cli_check_channel("channel create", id)) != 0)
        return r;
    sl_client *cl;
    if ((r = sl__cli_client(conn, id, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    sl_channel_info info;
    int rc = sl_client_create(cl, id, &o, &info, &st);
    if (rc == SL_OK) {
        r = sl__cli_print_json(sl__cli_info_json(&info));
        sl_channel_info_clear(&info);
    } else {
        r = sl__cli_fail(cl, rc, &st);
    }
    sl_client_free(cl);
    return r;
}

/* ---- commands on one channel without options ------------------------------------------------- */

typedef enum { ONE_DELETE, ONE_INFO, ONE_CLEAR } one_kind;

static int cmd_one(int argc, char **argv, sl__cli_conn *conn, one_kind k)
{
    static const char *const names[] = {"channel delete", "channel info", "channel clear"};
    static const char *const usages[] = {delete_usage, info_usage, clear_usage};
    const char *cmd = names[k];
    int r = sl__cli_getopt(cmd, argc, argv, plain_opts, usages[k], conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return sl__cli_usage_error(cmd, "expected one channel ID");
    const char *id = argv[optind];
    if ((r = sl__cli_check_channel(cmd, id)) != 0)
        return r;
    sl_client *cl;
    if ((r = sl__cli_client(conn, id, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    sl_channel_info info;
    size_t n = 0;
    int rc;
    json_t *out = NULL;
    switch (k) {
    case ONE_DELETE:
        if ((rc = sl_client_delete(cl, id, &st)) == SL_OK)
            out = json_pack("{s:s}", "status", "ok");
        break;
    case ONE_INFO:
        if ((rc = sl_client_info(cl, id, &info, &st)) == SL_OK) {
            out = sl__cli_info_json(&info);
            sl_channel_info_clear(&info);
        }
        break;
    default:
        if ((rc = sl_client_clear(cl, id, &n, &st)) == SL_OK)
            out = json_pack("{s:s, s:I}", "status", "ok", "cleared", (json_int_t)n);
        break;
    }
    r = rc == SL_OK ? sl__cli_print_json(out) : sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}

/* ---- list ------------------------------------------------------------------------------------ */

static int cmd_list(int argc, char **argv, sl__cli_conn *conn)
{
    int r = sl__cli_getopt("channel list", argc, argv, plain_opts, list_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error("channel list", "unexpected argument '%s'", argv[optind]);
    sl_client *cl;
    if ((r = sl__cli_client(conn, NULL, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    sl_channel_info *infos;
    size_t n;
    int rc = sl_client_list(cl, conn->url, conn->token, &infos, &n, &st);
    if (rc == SL_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            json_array_append_new(arr, sl__cli_info_json(&infos[i]));
        sl_channel_infos_free(infos, n);
        r = sl__cli_print_json(arr ? json_pack("{s:o}", "channels", arr) : NULL);
    } else {
        r = sl__cli_fail(cl, rc, &st);
    }
    sl_client_free(cl);
    return r;
}

/* ---- evict ----------------------------------------------------------------------------------- */

typedef struct evict_args {
    double before;
    size_t max_count;
} evict_args;

static int evict_opt(void *ud, int opt, const char *arg)
{
    evict_args *a = ud;
    if (opt == OPT_BEFORE) {
        if (sl__cli_parse_number(arg, &a->before) < 0 || a->before == 0)
            return sl__cli_usage_error("channel evict",
                                       "--before must be a positive epoch time in seconds");
        return 0;
    }
    if (opt == OPT_MAX_COUNT) {
        if (sl__cli_parse_count(arg, &a->max_count) < 0 || a->max_count == SIZE_MAX)
            return sl__cli_usage_error("channel evict",
                                       "--max-count must be a non-negative integer");
        return 0;
    }
    return SL__EXIT_USAGE;
}

static int cmd_evict(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"before", required_argument, NULL, OPT_BEFORE},
                                         {"max-count", required_argument, NULL, OPT_MAX_COUNT},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    evict_args a = {0, SIZE_MAX};
    int r = sl__cli_getopt("channel evict", argc, argv, opts, evict_usage, conn, evict_opt, &a);
    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return sl__cli_usage_error("channel evict", "expected one channel ID");
    if (a.before == 0 && a.max_count == SIZE_MAX)
        return sl__cli_usage_error("channel evict", "give --before and/or --max-count");
    const char *id = argv[optind];
    if ((r = sl__cli_check_channel("channel evict", id)) != 0)
        return r;
    sl_client *cl;
    if ((r = sl__cli_client(conn, id, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    size_t n = 0;
    int rc = sl_client_evict(cl, id, a.before, a.max_count, &n, &st);
    r = rc == SL_OK
            ? sl__cli_print_json(json_pack("{s:s, s:I}", "status", "ok", "evicted", (json_int_t)n))
            : sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}

/* ---- remove ---------------------------------------------------------------------------------- */

static int cmd_remove(int argc, char **argv, sl__cli_conn *conn)
{
    int r =
        sl__cli_getopt("channel remove", argc, argv, plain_opts, remove_usage, conn, NULL, NULL);
    if (r >= 0)
        return r;
    if (argc - optind < 2)
        return sl__cli_usage_error("channel remove", "expected ID and at least one MSGID");
    const char *id = argv[optind];
    if ((r = sl__cli_check_channel("channel remove", id)) != 0)
        return r;
    sl_client *cl;
    if ((r = sl__cli_client(conn, id, &cl)) != SL__EXIT_OK)
        return r;
    sl_status st;
    size_t n = 0;
    int rc = sl_client_remove(cl, id, (const char *const *)&argv[optind + 1],
                              (size_t)(argc - optind - 1), &n, &st);
    r = rc == SL_OK
            ? sl__cli_print_json(json_pack("{s:s, s:I}", "status", "ok", "removed", (json_int_t)n))
            : sl__cli_fail(cl, rc, &st);
    sl_client_free(cl);
    return r;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

int sl__cli_cmd_channel(int argc, char **argv, sl__cli_conn *conn)
{
    if (argc < 2)
        return sl__cli_usage_error("channel", "expected a command");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(channel_usage, stdout);
        return SL__EXIT_OK;
    }
    argc--;
    argv++;
    if (!strcmp(sub, "create"))
        return cmd_create(argc, argv, conn);
    if (!strcmp(sub, "delete"))
        return cmd_one(argc, argv, conn, ONE_DELETE);
    if (!strcmp(sub, "info"))
        return cmd_one(argc, argv, conn, ONE_INFO);
    if (!strcmp(sub, "clear"))
        return cmd_one(argc, argv, conn, ONE_CLEAR);
    if (!strcmp(sub, "list"))
        return cmd_list(argc, argv, conn);
    if (!strcmp(sub, "evict"))
        return cmd_evict(argc, argv, conn);
    if (!strcmp(sub, "remove"))
        return cmd_remove(argc, argv, conn);
    return sl__cli_usage_error("channel", "unknown command 'channel %s'", sub);
}
