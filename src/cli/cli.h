/* Shared pieces of the `sluice` command-line tool: the exit codes scripts rely on, the connection
 * options every remote command accepts, argument parsing helpers and the JSON rendering of results.
 * Each command lives in its own file and is entered with the argument vector starting at its own
 * name, so it can run getopt_long over the rest. */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include <sluice/client.h>
#include <sluice/sluice.h>

/* Exit codes (docs/CLI.md). */
enum {
    SL__EXIT_OK = 0,
    SL__EXIT_FAIL = 1,     /* anything else */
    SL__EXIT_USAGE = 2,    /* bad arguments, missing secret */
    SL__EXIT_AUTH = 3,     /* 401, or a token that does not verify */
    SL__EXIT_DENIED = 4,   /* 403 */
    SL__EXIT_NOTFOUND = 5, /* 404 */
    SL__EXIT_CONFLICT = 6, /* 409 */
    SL__EXIT_CLIENT = 7,   /* other 4xx */
    SL__EXIT_UNAVAIL = 8,  /* connection failure, timeout, 5xx */
};

/* Where remote commands go: filled from the environment, then global options, then the command's
 * own options (later wins). */
typedef struct sl__cli_conn {
    const char *url;
    const char *token; /* NULL: anonymous; points at argv, the environment or token_buf */
    char *token_buf;   /* owned: a token read from --token-file (wiped on release) */
    long timeout_ms;
    /* signing (--sign-key env:NAME|file:PATH --key-id ID [--sign-alg ALG]) */
    const char *sign_key; /* the reference as given; the key is read when the client is made */
    const char *sign_keyid;
    const char *sign_alg; /* NULL: hmac-sha256 */
} sl__cli_conn;

void sl__cli_conn_init(sl__cli_conn *c);
void sl__cli_conn_release(sl__cli_conn *c);

/* getopt_long entries for the connection options; append to a command's option table. */
/* clang-format off */
#define SL__CLI_CONN_OPTS                                                                          \
    {"url", required_argument, NULL, 0x100},                                                       \
    {"token", required_argument, NULL, 0x101},                                                     \
    {"token-file", required_argument, NULL, 0x102},                                                \
    {"timeout", required_argument, NULL, 0x103},                                                   \
    {"sign-key", required_argument, NULL, 0x104},                                                  \
    {"key-id", required_argument, NULL, 0x105},                                                    \
    {"sign-alg", required_argument, NULL, 0x106}
/* clang-format on */
#define SL__CLI_CONN_HELP                                                                          \
    "Connection options:\n"                                                                        \
    "  --url URL          server (env SLUICE_URL, default http://127.0.0.1:8080)\n"                \
    "  --token TOKEN      bearer token (env SLUICE_TOKEN)\n"                                       \
    "  --token-file FILE  read the bearer token from FILE\n"                                       \
    "  --timeout SECONDS  whole-request timeout (default 30)\n"                                    \
    "  --sign-key env:NAME|file:PATH  sign requests (RFC 9421) with this secret or PEM key\n"      \
    "  --key-id ID        the signing key's keyid (with --sign-key)\n"                             \
    "  --sign-alg ALG     hmac-sha256 (default), ed25519 or ecdsa-p256-sha256\n"

/* Handles a connection option returned by getopt_long: 1 handled, 0 not a connection option,
 * -1 bad value (message printed; exit with SL__EXIT_USAGE). */
int sl__cli_conn_option(sl__cli_conn *c, int opt, const char *arg);

/* A client with channel (NULL: every channel) routed to c's server. Returns an exit code. */
int sl__cli_client(const sl__cli_conn *c, const char *channel, sl_client **out);

/* Prints "sluice: <message>" to stderr. */
void sl__cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the message and a pointer to `sluice <cmd> --help`; returns SL__EXIT_USAGE. */
int sl__cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Reports a failed client call (st->message) and returns its exit code. cl may be NULL. */
int sl__cli_fail(const sl_client *cl, int code, const sl_status *st);
/* The exit code for an sl_errno. */
int sl__cli_exit_code(int code);

/* Runs getopt_long over argv (argv[0] is the command's last word; cmd is its full name for
 * messages, e.g. "channel create"): -h/--help prints usage and ends with 0, connection options go
 * to conn (may be NULL), the rest to own (which returns 0 to go on or an exit code to stop with;
 * NULL: none). Returns -1 when the caller should go on with argv[optind...], else the exit code. */
typedef int (*sl__cli_opt_fn)(void *ud, int opt, const char *arg);
int sl__cli_getopt(const char *cmd, int argc, char **argv, const struct option *opts,
                   const char *usage, sl__cli_conn *conn, sl__cli_opt_fn own, void *ud);
/* 0 when id is a valid channel id, else a usage error's exit code. */
int sl__cli_check_channel(const char *cmd, const char *id);

/* getopt_long's complaint for opt ('?' or ':') as a usage error. */
int sl__cli_getopt_error(const char *cmd, char **argv, int opt);

/* Prints o (consumed) compactly on one line of stdout. Returns an exit code. */
int sl__cli_print_json(json_t *o);
/* Prints JSON text already rendered (NULL: out of memory) on one line of stdout; an exit code. */
int sl__cli_print_text(const char *text);

/* Parsers; 0 on success, -1 when the text is not acceptable. */
int sl__cli_parse_count(const char *s, size_t *out);    /* decimal, no sign */
int sl__cli_parse_number(const char *s, double *out);   /* finite, >= 0 */
int sl__cli_parse_duration(const char *s, double *out); /* seconds; suffix s, m, h or d */

/* Reads at most max bytes of f (NUL-terminated, *len set); NULL when it is longer or unreadable. */
char *sl__cli_read_stream(FILE *f, size_t max, size_t *len);
/* Reads a whole file; NULL with errno set when unreadable or longer than max. */
char *sl__cli_read_file(const char *path, size_t max, size_t *len);
/* Overwrites and frees a secret buffer. */
void sl__cli_wipe_free(char *p, size_t len);

/* Renderings matching the server's replies (messages: core/msgjson.h, shared with the server). */
json_t *sl__cli_info_json(const sl_channel_info *c);

/* The commands; argv[0] is the command's own name. */
int sl__cli_cmd_token(int argc, char **argv);
int sl__cli_cmd_audit(int argc, char **argv);
int sl__cli_cmd_apikey(int argc, char **argv);
int sl__cli_cmd_backup(int argc, char **argv);
int sl__cli_cmd_write(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_read(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_ack(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_nack(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_extend(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_terminate(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_channel(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_acl(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_policy(int argc, char **argv, sl__cli_conn *conn);
/* `server ...` (cmd_server.c) and the remote `audit tail` */
int sl__cli_cmd_server(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_audit_tail(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_health(int argc, char **argv, sl__cli_conn *conn);
int sl__cli_cmd_bench(int argc, char **argv, sl__cli_conn *conn);
/* `bench queue`; only in builds with libnats and librabbitmq (SLUICE_BENCH_QUEUE). */
int sl__cli_cmd_bench_queue(int argc, char **argv, sl__cli_conn *conn);

#endif
