/* What every `sluice` command shares: connection settings and the client built from them, the
 * mapping from sluice error codes to the documented exit codes, error reporting on stderr (which
 * never shows a token or secret: messages come from the client library, which redacts them), strict
 * number parsing, bounded input reading, and JSON output in the server's own shapes. */
#include "cli/cli.h"
#include "security/secretfile.h"

#include <sluice/httpsig.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "http://127.0.0.1:8080"
#define DEFAULT_TIMEOUT_MS 30000L
#define MAX_TOKEN_FILE 65536

/* ---- errors and exit codes ------------------------------------------------------------------- */

void sl__cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sluice: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int sl__cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sluice: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "Try 'sluice %s%s--help'.\n", cmd ? cmd : "", cmd && *cmd ? " " : "");
    return SL__EXIT_USAGE;
}

int sl__cli_exit_code(int code)
{
    switch (code) {
    case SL_OK:
        return SL__EXIT_OK;
    case SL_EUNAUTH:
    case SL_ETOKEN:
    case SL_EEXPIRED:
        return SL__EXIT_AUTH;
    case SL_EFORBIDDEN:
        return SL__EXIT_DENIED;
    case SL_ENOENT:
        return SL__EXIT_NOTFOUND;
    case SL_EEXIST:
        return SL__EXIT_CONFLICT;
    case SL_EINVAL:
    case SL_EBADID:
    case SL_EJSON:
    case SL_EKIND:
    case SL_EFULL:
    case SL_ETOOBIG:
    case SL_EHEADERS:
    case SL_EMETHOD:
        return SL__EXIT_CLIENT;
    case SL_EUNAVAIL:
    case SL_ETIMEOUT:
    case SL_ELIMIT:
        return SL__EXIT_UNAVAIL;
    default:
        return SL__EXIT_FAIL;
    }
}

int sl__cli_fail(const sl_client *cl, int code, const sl_status *st)
{
    sl__cli_err("%s", st && st->message[0] ? st->message : sl_strerror(code));
    /* The library refused the arguments before sending anything: that is the caller's mistake. */
    if ((code == SL_EINVAL || code == SL_EBADID) &&
        (cl == NULL || sl_client_last_http_status(cl) == 0))
        return SL__EXIT_USAGE;
    return sl__cli_exit_code(code);
}

int sl__cli_getopt_error(const char *cmd, char **argv, int opt)
{
    /* For long options optopt holds the option's value, not a character, so name the argument as
     * typed (without any "=value", which could be a secret). */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    char name[64];
    if (strncmp(arg, "--", 2) == 0 || optopt <= 0 || optopt > 0x7e)
        snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
    else
        snprintf(name, sizeof name, "-%c", optopt);
    if (opt == ':')
        return sl__cli_usage_error(cmd, "option '%s' needs a value", name);
    return sl__cli_usage_error(cmd, "unknown option '%s'", name);
}

int sl__cli_getopt(const char *cmd, int argc, char **argv, const struct option *opts,
                   const char *usage, sl__cli_conn *conn, sl__cli_opt_fn own, void *ud)
{
    int opt;
    optind = 0; /* glibc: 0 restarts the scan from argv[1] with fresh state */
    opterr = 0; /* complaints come from sl__cli_getopt_error, naming the full command */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return SL__EXIT_OK;
        }
        if (opt == '?' || opt == ':')
            return sl__cli_getopt_error(cmd, argv, opt);
        int r = conn ? sl__cli_conn_option(conn, opt, optarg) : 0;
        if (r < 0)
            return SL__EXIT_USAGE;
        if (r > 0)
            continue;
        r = own ? own(ud, opt, optarg) : SL__EXIT_USAGE;
        if (r != 0)
            return r;
    }
    return -1;
}

int sl__cli_check_channel(const char *cmd, const char *id)
{
    if (!sl_channel_id_valid(id, strlen(id)))
        return sl__cli_usage_error(cmd, "invalid channel id '%s'", id);
    return 0;
}

/* ---- connection
 * ---------------------------------------------------------------------------------- */

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void sl__cli_conn_init(sl__cli_conn *c)
{
    memset(c, 0, sizeof *c);
    c->url = env_nonempty("SLUICE_URL");
    if (c->url == NULL)
        c->url = DEFAULT_URL;
    c->token = env_nonempty("SLUICE_TOKEN");
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
}

void sl__cli_conn_release(sl__cli_conn *c)
{
    if (c->token_buf)
        sl__cli_wipe_free(c->token_buf, strlen(c->token_buf));
    c->token_buf = NULL;
    c->token = NULL;
}

static void trim(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
        i++;
    memmove(s, s + i, n - i + 1);
}

int sl__cli_conn_option(sl__cli_conn *c, int opt, const char *arg)
{
    double secs;
    size_t len;
    switch (opt) {
    case 0x100:
        c->url = arg;
        return 1;
    case 0x101:
        c->token = *arg ? arg : NULL;
        return 1;
    case 0x102: {
        char *t = sl__cli_read_file(arg, MAX_TOKEN_FILE, &len);
        if (t == NULL) {
            sl__cli_err("cannot read token file '%s': %s", arg,
                        errno == EFBIG ? "too large" : strerror(errno));
            return -1;
        }
        trim(t);
        if (c->token_buf)
            sl__cli_wipe_free(c->token_buf, strlen(c->token_buf));
        c->token_buf = t;
        c->token = *t ? t : NULL;
        return 1;
    }
    case 0x103:
        if (sl__cli_parse_duration(arg, &secs) < 0 || secs > 86400.0 * 365) {
            sl__cli_err("--timeout must be a number of seconds");
            return -1;
        }
        c->timeout_ms = (long)(secs * 1000.0);
        if (c->timeout_ms == 0 && secs > 0)
            c->timeout_ms = 1;
        return 1;
    case 0x104:
        c->sign_key = arg;
        return 1;
    case 0x105:
        c->sign_keyid = arg;
        return 1;
    case 0x106:
        if (sl_httpsig_alg_parse(arg) == 0) {
            sl__cli_err("--sign-alg must be hmac-sha256, ed25519 or ecdsa-p256-sha256");
            return -1;
        }
        c->sign_alg = arg;
        return 1;
    default:
        return 0;
    }
}

/* --sign-key's key material: an environment variable's value, or a file's bytes without trailing
 * newlines (the rule every secret file follows). NULL with a message printed. */
static char *sign_key_material(const char *ref, size_t *len)
{
    if (!strncmp(ref, "env:", 4)) {
        const char *v = getenv(ref + 4);
        if (v == NULL || *v == '\0') {
            sl__cli_err("--sign-key: environment variable %s is not set", ref + 4);
            return NULL;
        }
        *len = strlen(v);
        return strdup(v);
    }
    if (!strncmp(ref, "file:", 5)) {
        char *k = sl__cli_read_file(ref + 5, SL__SECRET_FILE_MAX, len);
        if (k == NULL) {
            sl__cli_err("--sign-key: cannot read '%s': %s", ref + 5,
                        errno == EFBIG ? "too large" : strerror(errno));
            return NULL;
        }
        size_t n = *len;
        sl__secret_file_parse(k, n, len);
        k[*len] = '\0';
        return k;
    }
    sl__cli_err("--sign-key must be env:NAME or file:PATH");
    return NULL;
}

/* Makes cl sign its requests when --sign-key was given. Returns an exit code. */
static int set_signer(const sl__cli_conn *c, sl_client *cl)
{
    if (c->sign_key == NULL && c->sign_keyid == NULL)
        return SL__EXIT_OK;
    if (c->sign_key == NULL || c->sign_keyid == NULL) {
        sl__cli_err("--sign-key and --key-id go together");
        return SL__EXIT_USAGE;
    }
    size_t len = 0;
    char *key = sign_key_material(c->sign_key, &len);
    if (key == NULL)
        return SL__EXIT_USAGE;
    sl_httpsig_signer s = {.keyid = c->sign_keyid,
                           .alg = c->sign_alg ? sl_httpsig_alg_parse(c->sign_alg)
                                              : SL_HTTPSIG_HMAC_SHA256,
                           .key = key,
                           .key_len = len};
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_client_set_signer(cl, &s, &st);
    sl__cli_wipe_free(key, len);
    if (rc != SL_OK) {
        sl__cli_err("--sign-key: %s", st.message);
        return SL__EXIT_USAGE;
    }
    return SL__EXIT_OK;
}

int sl__cli_client(const sl__cli_conn *c, const char *channel, sl_client **out)
{
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_client_new(out, "sluice-cli");
    if (rc != SL_OK) {
        sl__cli_err("cannot create client: %s", sl_strerror(rc));
        return SL__EXIT_FAIL;
    }
    sl_client_set_timeout_ms(*out, c->timeout_ms);
    rc = sl_client_connect_remote(*out, channel, c->url, c->token, &st);
    if (rc != SL_OK) {
        int ex = sl__cli_fail(NULL, rc, &st);
        sl_client_free(*out);
        *out = NULL;
        return ex;
    }
    int ex = set_signer(c, *out);
    if (ex != SL__EXIT_OK) {
        sl_client_free(*out);
        *out = NULL;
    }
    return ex;
}

/* ---- parsing
 * ------------------------------------------------------------------------------------- */

int sl__cli_parse_count(const char *s, size_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    size_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        size_t d = (size_t)(*s - '0');
        if (v > (SIZE_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int sl__cli_parse_number(const char *s, double *out)
{
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

int sl__cli_parse_duration(const char *s, double *out)
{
    if (s == NULL || *s == '\0' || !((*s >= '0' && *s <= '9') || *s == '.'))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return -1;
    double mult = 1;
    if (*end) {
        switch (*end) {
        case 's':
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        default:
            return -1;
        }
        if (end[1] != '\0')
            return -1;
    }
    *out = v * mult;
    return isfinite(*out) ? 0 : -1;
}

/* ---- input
 * ---------------------------------------------------------------------------------------- */

char *sl__cli_read_stream(FILE *f, size_t max, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    if (p == NULL)
        return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max + 1) {
                free(p);
                errno = EFBIG;
                return NULL;
            }
            char *q = realloc(p, cap * 2);
            if (q == NULL) {
                free(p);
                return NULL;
            }
            p = q;
            cap *= 2;
        }
        size_t got = fread(p + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f) || n > max) {
        int e = ferror(f) ? EIO : EFBIG;
        free(p);
        errno = e;
        return NULL;
    }
    p[n] = '\0';
    if (len)
        *len = n;
    return p;
}

char *sl__cli_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *p = sl__cli_read_stream(f, max, len);
    int e = errno;
    fclose(f);
    errno = e;
    return p;
}

void sl__cli_wipe_free(char *p, size_t len)
{
    if (p == NULL)
        return;
    volatile char *v = p;
    for (size_t i = 0; i < len; i++)
        v[i] = '\0';
    free(p);
}

/* ---- output
 * --------------------------------------------------------------------------------------- */

int sl__cli_print_text(const char *text)
{
    if (text == NULL) {
        sl__cli_err("out of memory");
        return SL__EXIT_FAIL;
    }
    if (puts(text) == EOF || fflush(stdout) == EOF) {
        sl__cli_err("cannot write output: %s", strerror(errno));
        return SL__EXIT_FAIL;
    }
    return SL__EXIT_OK;
}

int sl__cli_print_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(o);
    int r = sl__cli_print_text(s);
    free(s);
    return r;
}

static json_t *str_or_null(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

json_t *sl__cli_info_json(const sl_channel_info *c)
{
    json_t *opts =
        json_pack("{s:s, s:f, s:I, s:o, s:I, s:I, s:f}", "security", sl_mode_name(c->mode),
                  "claim_timeout", c->claim_timeout, "max_attempts", (json_int_t)c->max_attempts,
                  "dead_letter", str_or_null(c->dead_letter), "max_messages",
                  (json_int_t)c->max_messages, "retention_max_count",
                  (json_int_t)c->retention_max_count, "retention_max_age", c->retention_max_age);
    return json_pack("{s:o, s:o, s:o, s:s, s:s, s:o, s:I}", "id", str_or_null(c->id), "name",
                     str_or_null(c->name), "description", str_or_null(c->description), "kind",
                     c->kind == SL_KIND_TOPIC ? "topic" : "queue", "visibility",
                     c->visibility == SL_VIS_PUBLIC ? "public" : "private", "options",
                     opts ? opts : json_object(), "depth", (json_int_t)c->depth);
}
