/* `sluice apikey ...`: managing the API key store file that sluiced reads (docs/APIKEYS.md). It
 * works on the file directly, like `token create` works with the secret directly, so it needs no
 * server: run it where the store lives. `create` prints the key on stdout exactly once and never
 * again: the store keeps only its hash, `list` shows neither, and no message carries it. The key
 * buffer is wiped as soon as it is printed. */
#include "cli/cli.h"
#include "core/wsid.h"

#include <sluice/apikey.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char apikey_usage[] =
    "Usage: sluice apikey COMMAND [ARGS] [options]\n"
    "\n"
    "Commands:\n"
    "  create --principal P [options]   create a key (printed once)\n"
    "  list                             list keys (never their secrets)\n"
    "  expire ID                        make a key expire now\n"
    "  delete ID                        remove a key\n"
    "\n"
    "Every command works on the store file given by --store FILE or the environment\n"
    "variable SLUICE_APIKEY_STORE. Run 'sluice apikey COMMAND --help' for options.\n";

static const char create_usage[] =
    "Usage: sluice apikey create --principal P [options]\n"
    "\n"
    "Creates an API key and prints it on stdout, the only time it is shown (the store keeps\n"
    "only its SHA-256); the key id goes to stderr. With --json, stdout is one JSON object with\n"
    "the key and its record instead.\n"
    "  --principal P        who the key authenticates as (required)\n"
    "  --workspace W        the workspace P belongs to (default: none; docs/POLICY.md)\n"
    "  --role R             read, write or admin (default: no role)\n"
    "  --channel PATTERN    restrict the key to matching channels (repeatable;\n"
    "                       default: no restriction)\n"
    "  --expires DURATION   lifetime: 90s, 15m, 12h, 30d or seconds (default: never)\n"
    "  --json               print {\"key\":...,\"id\":...,...} instead of the bare key\n"
    "  --store FILE         the key store (default: $SLUICE_APIKEY_STORE)\n"
    "  -h, --help           show this help\n";

static const char list_usage[] =
    "Usage: sluice apikey list [--store FILE]\n"
    "\n"
    "Prints {\"keys\":[{\"id\",\"principal\",\"role\",\"channels\",\"created_at\",\"expires_at\",\n"
    "\"expired\"},...]} sorted by id; role and channels are null when the key carries none.\n"
    "  --store FILE         the key store (default: $SLUICE_APIKEY_STORE)\n"
    "  -h, --help           show this help\n";

static const char expire_usage[] =
    "Usage: sluice apikey expire ID [--store FILE]\n"
    "\n"
    "Makes the key expire now (it stays listed; exit 5 when there is no such key).\n"
    "  --store FILE         the key store (default: $SLUICE_APIKEY_STORE)\n"
    "  -h, --help           show this help\n";

static const char delete_usage[] =
    "Usage: sluice apikey delete ID [--store FILE]\n"
    "\n"
    "Removes the key from the store (exit 5 when there is no such key).\n"
    "  --store FILE         the key store (default: $SLUICE_APIKEY_STORE)\n"
    "  -h, --help           show this help\n";

enum {
    OPT_PRINCIPAL = 0x200,
    OPT_WORKSPACE,
    OPT_ROLE,
    OPT_CHANNEL,
    OPT_EXPIRES,
    OPT_JSON,
    OPT_STORE,
};

typedef struct args {
    const char *cmd;
    const char *store;
    const char *principal;
    const char *workspace; /* NULL for none */
    sl_role role;
    const char **channels; /* borrowed from argv */
    size_t nchannels;
    double expires; /* seconds from now; 0: never */
    int json;
} args;

static int opt_fn(void *ud, int opt, const char *arg)
{
    args *a = ud;
    switch (opt) {
    case OPT_STORE:
        if (*arg == '\0')
            return sl__cli_usage_error(a->cmd, "--store must not be empty");
        a->store = arg;
        return 0;
    case OPT_PRINCIPAL:
        if (!sl_principal_valid(arg, strlen(arg)))
            return sl__cli_usage_error(a->cmd, "invalid principal '%s'", arg);
        a->principal = arg;
        return 0;
    case OPT_WORKSPACE:
        if (!sl_workspace_valid(arg, strlen(arg)))
            return sl__cli_usage_error(a->cmd, "invalid workspace '%s'", arg);
        a->workspace = arg;
        return 0;
    case OPT_ROLE:
        if ((a->role = sl_role_parse(arg)) == SL_ROLE_NONE)
            return sl__cli_usage_error(a->cmd, "--role must be read, write or admin");
        return 0;
    case OPT_CHANNEL: {
        if (!sl_pattern_valid(arg, strlen(arg)))
            return sl__cli_usage_error(a->cmd, "invalid channel pattern '%s'", arg);
        if (a->nchannels >= SL_APIKEY_CHANNELS_MAX)
            return sl__cli_usage_error(a->cmd, "at most %d --channel patterns",
                                       SL_APIKEY_CHANNELS_MAX);
        const char **p = realloc(a->channels, (a->nchannels + 1) * sizeof *p);
        if (p == NULL) {
            sl__cli_err("out of memory");
            return SL__EXIT_FAIL;
        }
        a->channels = p;
        a->channels[a->nchannels++] = arg;
        return 0;
    }
    case OPT_EXPIRES:
        /* Whole seconds, at least one, at most ten years (beyond that a typo is likelier). */
        if (sl__cli_parse_duration(arg, &a->expires) < 0 || a->expires < 1 ||
            a->expires > 86400.0 * 3660)
            return sl__cli_usage_error(a->cmd, "--expires must be a duration of at least 1s "
                                               "(90s, 15m, 12h, 30d or seconds)");
        a->expires = floor(a->expires);
        return 0;
    case OPT_JSON:
        a->json = 1;
        return 0;
    }
    return SL__EXIT_USAGE;
}

/* Parses the options; returns -1 to go on, else an exit code. */
static int parse(args *a, const char *cmd, int argc, char **argv, const struct option *opts,
                 const char *usage)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    int r = sl__cli_getopt(cmd, argc, argv, opts, usage, NULL, opt_fn, a);
    if (r < 0 && a->store == NULL) {
        const char *env = getenv("SLUICE_APIKEY_STORE");
        a->store = env && *env ? env : NULL;
        if (a->store == NULL)
            r = sl__cli_usage_error(cmd, "no store: pass --store FILE or set SLUICE_APIKEY_STORE");
    }
    return r;
}

/* Exit code for a store error (message already in st). */
static int store_fail(int rc, const sl_status *st)
{
    sl__cli_err("%s", st->message[0] ? st->message : sl_strerror(rc));
    switch (rc) {
    case SL_ENOENT:
        return SL__EXIT_NOTFOUND;
    case SL_EINVAL:
        return SL__EXIT_USAGE;
    default:
        return SL__EXIT_FAIL;
    }
}

static int open_store(const char *path, sl_apikey_store **s)
{
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_apikey_store_open(s, path, &st);
    return rc == SL_OK ? SL__EXIT_OK : store_fail(rc, &st);
}

/* Whole seconds as integers, like the store file and `token inspect`'s iat/exp. */
static json_t *time_json(double v)
{
    return v == floor(v) && v < 9007199254740992.0 ? json_integer((json_int_t)v) : json_real(v);
}

static json_t *record_json(const sl_apikey_record *r, double now)
{
    json_t *ch = json_null();
    if (r->scoped) {
        ch = json_array();
        for (size_t i = 0; ch && i < r->nchannels; i++)
            json_array_append_new(ch, json_string(r->channels[i]));
    }
    int expired = r->expires_at > 0 && !(now < r->expires_at);
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:b}", "id", r->id, "principal", r->principal,
                     "role",
                     r->role == SL_ROLE_NONE ? json_null() : json_string(sl_role_name(r->role)),
                     "channels", ch ? ch : json_null(), "created_at", time_json(r->created_at),
                     "expires_at", time_json(r->expires_at), "expired", expired);
}

/* ---- create ---------------------------------------------------------------------------------- */

static int cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"principal", required_argument, NULL, OPT_PRINCIPAL},
                                         {"workspace", required_argument, NULL, OPT_WORKSPACE},
                                         {"role", required_argument, NULL, OPT_ROLE},
                                         {"channel", required_argument, NULL, OPT_CHANNEL},
                                         {"expires", required_argument, NULL, OPT_EXPIRES},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"store", required_argument, NULL, OPT_STORE},
                                         {0}};
    const char *cmd = "apikey create";
    args a;
    int r = parse(&a, cmd, argc, argv, opts, create_usage);
    if (r < 0 && argc - optind != 0)
        r = sl__cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (r < 0 && a.principal == NULL)
        r = sl__cli_usage_error(cmd, "--principal is required");
    sl_apikey_store *s = NULL;
    if (r < 0 && (r = open_store(a.store, &s)) == SL__EXIT_OK)
        r = -1;
    if (r >= 0) {
        free(a.channels);
        return r;
    }
    double now = (double)time(NULL);
    char *key = NULL, id[SL_APIKEY_ID_LEN + 1];
    sl_status st;
    sl_status_clear(&st);
    /* A workspace's key is stored for "W/principal" (core/wsid.h). */
    char qp[SL__QPRINCIPAL_SIZE];
    if (sl__ws_qualify(a.workspace, a.principal, qp, SL_PRINCIPAL_MAX + 1) != SL_OK) {
        free(a.channels);
        sl_apikey_store_close(s);
        return sl__cli_usage_error(cmd, "--principal is too long for workspace '%s'", a.workspace);
    }
    int rc = sl_apikey_create(s, qp, a.role, a.channels, a.nchannels,
                              a.expires > 0 ? now + a.expires : 0, now, &key, id, &st);
    free(a.channels);
    if (rc != SL_OK) {
        sl_apikey_store_close(s);
        return store_fail(rc, &st);
    }
    if (a.json) {
        sl_apikey_record rec;
        json_t *o = NULL;
        if (sl_apikey_get(s, id, &rec) == SL_OK) {
            o = record_json(&rec, now);
            sl_apikey_record_clear(&rec);
        }
        if (o && json_object_set_new(o, "key", json_string(key)) < 0) {
            json_decref(o);
            o = NULL;
        }
        /* Through a string we can wipe: jansson's own buffers are freed unwiped, but the key
         * must be printed from somewhere, and this keeps the copies short-lived. */
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text == NULL) {
            sl__cli_err("out of memory (api key %s was created; delete it)", id);
            r = SL__EXIT_FAIL;
        } else {
            r = puts(text) == EOF || fflush(stdout) == EOF ? SL__EXIT_FAIL : SL__EXIT_OK;
            sl__cli_wipe_free(text, strlen(text));
        }
    } else {
        r = puts(key) == EOF || fflush(stdout) == EOF ? SL__EXIT_FAIL : SL__EXIT_OK;
        if (r == SL__EXIT_OK)
            fprintf(stderr, "sluice: created api key %s for '%s'\n", id, a.principal);
    }
    if (r != SL__EXIT_OK)
        sl__cli_err("cannot write output: %s (api key %s was created; delete it)", strerror(errno),
                    id);
    sl_apikey_key_free(key);
    sl_apikey_store_close(s);
    return r;
}

/* ---- list, expire, delete -------------------------------------------------------------------- */

static int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"store", required_argument, NULL, OPT_STORE}, {0}};
    const char *cmd = "apikey list";
    args a;
    int r = parse(&a, cmd, argc, argv, opts, list_usage);
    if (r < 0 && argc - optind != 0)
        r = sl__cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    sl_apikey_store *s = NULL;
    if (r >= 0 || (r = open_store(a.store, &s)) != SL__EXIT_OK)
        return r;
    sl_apikey_record *recs;
    size_t n;
    if (sl_apikey_list(s, &recs, &n) != SL_OK) {
        sl_apikey_store_close(s);
        sl__cli_err("out of memory");
        return SL__EXIT_FAIL;
    }
    double now = (double)time(NULL);
    json_t *keys = json_array();
    for (size_t i = 0; keys && i < n; i++)
        if (json_array_append_new(keys, record_json(&recs[i], now)) < 0) {
            json_decref(keys);
            keys = NULL;
        }
    sl_apikey_records_free(recs, n);
    sl_apikey_store_close(s);
    return sl__cli_print_json(keys ? json_pack("{s:o}", "keys", keys) : NULL);
}

static int cmd_change(int argc, char **argv, int expire)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"store", required_argument, NULL, OPT_STORE}, {0}};
    const char *cmd = expire ? "apikey expire" : "apikey delete";
    args a;
    int r = parse(&a, cmd, argc, argv, opts, expire ? expire_usage : delete_usage);
    if (r < 0 && argc - optind != 1)
        r = sl__cli_usage_error(cmd, "expected one key ID");
    const char *id = r < 0 ? argv[optind] : NULL;
    /* Never echo what was given: someone may have pasted a whole key where the id belongs. */
    if (r < 0 && !sl_apikey_id_valid(id))
        r = sl__cli_usage_error(cmd, "not a key id (%d characters of a-z and 2-7, as listed)",
                                SL_APIKEY_ID_LEN);
    sl_apikey_store *s = NULL;
    if (r >= 0 || (r = open_store(a.store, &s)) != SL__EXIT_OK)
        return r;
    sl_status st;
    sl_status_clear(&st);
    double now = (double)time(NULL);
    int rc = expire ? sl_apikey_expire(s, id, now, &st) : sl_apikey_delete(s, id, &st);
    json_t *o = NULL;
    if (rc == SL_OK && expire) {
        sl_apikey_record rec;
        if (sl_apikey_get(s, id, &rec) == SL_OK) {
            o = json_pack("{s:s, s:s, s:o}", "status", "ok", "id", id, "expires_at",
                          time_json(rec.expires_at));
            sl_apikey_record_clear(&rec);
        }
    } else if (rc == SL_OK) {
        o = json_pack("{s:s, s:s}", "status", "ok", "id", id);
    }
    sl_apikey_store_close(s);
    return rc == SL_OK ? sl__cli_print_json(o) : store_fail(rc, &st);
}

int sl__cli_cmd_apikey(int argc, char **argv)
{
    if (argc < 2)
        return sl__cli_usage_error("apikey", "expected a command");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(apikey_usage, stdout);
        return SL__EXIT_OK;
    }
    if (!strcmp(sub, "create"))
        return cmd_create(argc - 1, argv + 1);
    if (!strcmp(sub, "list"))
        return cmd_list(argc - 1, argv + 1);
    if (!strcmp(sub, "expire"))
        return cmd_change(argc - 1, argv + 1, 1);
    if (!strcmp(sub, "delete"))
        return cmd_change(argc - 1, argv + 1, 0);
    return sl__cli_usage_error("apikey", "unknown command 'apikey %s'", sub);
}
