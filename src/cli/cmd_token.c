/* `sluice token ...`: minting sluice JWTs (HS256) for principals and inspecting them. Signing needs
 * the server's secret, taken from --secret-file or SLUICE_JWT_SECRET; it is held only as long as
 * needed, wiped afterwards, and never printed, not even in errors. `inspect` decodes without
 * verifying (useful for debugging any token) and, with --verify, also runs the server's own
 * verification so scripts can check a token before using it, against the secret or, with --pubkey,
 * an identity provider's ES256 or EdDSA public key. */
#include "cli/cli.h"

#include <sluice/jwt.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SECRET_FILE 65536
#define MAX_PUBKEY_FILE 65536

static const char token_usage[] =
    "Usage: sluice token COMMAND [ARGS] [options]\n"
    "\n"
    "Commands:\n"
    "  create --sub PRINCIPAL [options]   sign a token (prints it)\n"
    "  inspect TOKEN|- [--verify]          decode a token (and check it)\n"
    "\n"
    "The signing secret comes from --secret-file FILE or the environment variable\n"
    "SLUICE_JWT_SECRET (at least 32 bytes). Run 'sluice token COMMAND --help' for options.\n";

static const char create_usage[] =
    "Usage: sluice token create --sub PRINCIPAL [options]\n"
    "\n"
    "Signs an HS256 token and prints it.\n"
    "  --sub PRINCIPAL      subject: who the token speaks for (required)\n"
    "  --role R             read, write or admin (default: no role claim)\n"
    "  --channel PATTERN    restrict the token to matching channels (repeatable;\n"
    "                       default: no restriction)\n"
    "  --ttl DURATION       lifetime: 90s, 15m, 8h, 7d or seconds (default 1h)\n"
    "  --kid KID            key id header, selecting the server's key of that name\n"
    "  --aud AUDIENCE       audience claim\n"
    "  --iss ISSUER         issuer claim\n"
    "  --jti ID             token id (default: 64 hex digits bound to --sub, so the\n"
    "                       principal may revoke it by id)\n"
    "  --subscription CH    a subscription token for the $ channel CH (the WebSocket\n"
    "                       transport's per-channel token; not usable as a bearer)\n"
    "  --secret-file FILE   read the secret from FILE (trailing newline stripped);\n"
    "                       default: $SLUICE_JWT_SECRET\n"
    "  -h, --help           show this help\n";

static const char inspect_usage[] =
    "Usage: sluice token inspect TOKEN|- [--verify] [options]\n"
    "\n"
    "Prints {\"header\":{...},\"payload\":{...}} without checking the signature ('-' reads the\n"
    "token from stdin). With --verify the token is also verified as the server would (signature,\n"
    "expiry, claims) and \"verified\": true|false is added (with \"error\" when false); the exit\n"
    "code is then 3 when it does not verify.\n"
    "  --verify             verify with the secret\n"
    "  --aud AUDIENCE       with --verify: require this audience\n"
    "  --iss ISSUER         with --verify: require this issuer\n"
    "  --secret-file FILE   read the secret from FILE; default: $SLUICE_JWT_SECRET\n"
    "  --pubkey FILE        with --verify: verify with this PEM public key (P-256 for\n"
    "                       ES256 or Ed25519 for EdDSA tokens) instead of the secret\n"
    "  -h, --help           show this help\n";

enum {
    OPT_SUB = 0x200,
    OPT_ROLE,
    OPT_CHANNEL,
    OPT_TTL,
    OPT_KID,
    OPT_AUD,
    OPT_ISS,
    OPT_JTI,
    OPT_SUBSCRIPTION,
    OPT_SECRET_FILE,
    OPT_VERIFY,
    OPT_PUBKEY,
};

/* ---- the secret ------------------------------------------------------------------------------ */

typedef struct secret {
    char *p; /* owned, wiped on release */
    size_t len;
} secret;

static void secret_release(secret *s)
{
    sl__cli_wipe_free(s->p, s->len);
    s->p = NULL;
    s->len = 0;
}

/* Loads the secret from file (when given) or the environment. Returns an exit code. */
static int secret_load(const char *cmd, const char *file, secret *s)
{
    s->p = NULL;
    s->len = 0;
    if (file) {
        size_t len;
        char *p = sl__cli_read_file(file, MAX_SECRET_FILE, &len);
        if (p == NULL) {
            sl__cli_err("cannot read secret file '%s': %s", file,
                        errno == EFBIG ? "too large" : strerror(errno));
            return SL__EXIT_FAIL;
        }
        /* Editors add a final newline; it is not part of the secret. */
        while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
            p[--len] = '\0';
        s->p = p;
        s->len = len;
    } else {
        const char *env = getenv("SLUICE_JWT_SECRET");
        if (env == NULL || *env == '\0')
            return sl__cli_usage_error(cmd,
                                       "no secret: set SLUICE_JWT_SECRET or pass --secret-file");
        if ((s->p = strdup(env)) == NULL) {
            sl__cli_err("out of memory");
            return SL__EXIT_FAIL;
        }
        s->len = strlen(env);
    }
    if (s->len < SL_JWT_SECRET_MIN) {
        secret_release(s);
        return sl__cli_usage_error(cmd, "the secret must be at least %d bytes", SL_JWT_SECRET_MIN);
    }
    return SL__EXIT_OK;
}

/* A keyring holding the secret under kid (NULL: the default key). Returns an exit code. */
static int keyring_with(const secret *s, const char *kid, sl_jwt_keyring **out)
{
    int rc = sl_jwt_keyring_new(out);
    if (rc == SL_OK)
        rc = sl_jwt_keyring_add_hs256(*out, kid, s->p, s->len);
    if (rc != SL_OK) {
        sl_jwt_keyring_free(*out);
        *out = NULL;
        sl__cli_err("cannot use the secret: %s", sl_strerror(rc));
        return rc == SL_EWEAKKEY ? SL__EXIT_USAGE : SL__EXIT_FAIL;
    }
    return SL__EXIT_OK;
}

/* ---- create ---------------------------------------------------------------------------------- */

typedef struct create_args {
    sl_jwt_claims claims;
    const char **channels; /* borrowed from argv */
    double ttl;
    const char *kid;
    const char *secret_file;
} create_args;

static int create_opt(void *ud, int opt, const char *arg)
{
    create_args *a = ud;
    const char *cmd = "token create";
    switch (opt) {
    case OPT_SUB:
        if (!sl_principal_valid(arg, strlen(arg)))
            return sl__cli_usage_error(cmd, "invalid principal '%s'", arg);
        a->claims.sub = arg;
        return 0;
    case OPT_ROLE:
        if ((a->claims.role = sl_role_parse(arg)) == SL_ROLE_NONE)
            return sl__cli_usage_error(cmd, "--role must be read, write or admin");
        return 0;
    case OPT_CHANNEL: {
        if (!sl_pattern_valid(arg, strlen(arg)))
            return sl__cli_usage_error(cmd, "invalid channel pattern '%s'", arg);
        const char **p = realloc(a->channels, (a->claims.nchannels + 1) * sizeof *p);
        if (p == NULL) {
            sl__cli_err("out of memory");
            return SL__EXIT_FAIL;
        }
        a->channels = p;
        a->channels[a->claims.nchannels++] = arg;
        a->claims.scoped = 1;
        return 0;
    }
    case OPT_TTL:
        /* Up to ten years: beyond that a typo is likelier than intent. */
        if (sl__cli_parse_duration(arg, &a->ttl) < 0 || a->ttl < 1 || a->ttl > 86400.0 * 3660)
            return sl__cli_usage_error(cmd, "--ttl must be a duration of at least 1s (90s, 15m, "
                                            "8h, 7d or seconds)");
        return 0;
    case OPT_KID:
        if (*arg == '\0')
            return sl__cli_usage_error(cmd, "--kid must not be empty");
        a->kid = arg;
        return 0;
    case OPT_AUD:
        a->claims.aud = arg;
        return 0;
    case OPT_ISS:
        a->claims.iss = arg;
        return 0;
    case OPT_JTI:
        if (*arg == '\0' || strlen(arg) > SL_TOKEN_ID_MAX)
            return sl__cli_usage_error(cmd, "--jti must be 1 to %d characters", SL_TOKEN_ID_MAX);
        a->claims.jti = arg;
        return 0;
    case OPT_SUBSCRIPTION:
        if (!sl_channel_id_valid(arg, strlen(arg)))
            return sl__cli_usage_error(cmd, "invalid channel id '%s'", arg);
        a->claims.channel = arg;
        return 0;
    case OPT_SECRET_FILE:
        a->secret_file = arg;
        return 0;
    }
    return SL__EXIT_USAGE;
}

static int cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"sub", required_argument, NULL, OPT_SUB},
        {"role", required_argument, NULL, OPT_ROLE},
        {"channel", required_argument, NULL, OPT_CHANNEL},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"kid", required_argument, NULL, OPT_KID},
        {"aud", required_argument, NULL, OPT_AUD},
        {"iss", required_argument, NULL, OPT_ISS},
        {"jti", required_argument, NULL, OPT_JTI},
        {"subscription", required_argument, NULL, OPT_SUBSCRIPTION},
        {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
        {0}};
    const char *cmd = "token create";
    create_args a;
    memset(&a, 0, sizeof a);
    a.ttl = 3600;
    int r = sl__cli_getopt(cmd, argc, argv, opts, create_usage, NULL, create_opt, &a);
    if (r < 0 && argc - optind != 0)
        r = sl__cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (r < 0 && a.claims.sub == NULL)
        r = sl__cli_usage_error(cmd, "--sub is required");
    if (r >= 0) {
        free(a.channels);
        return r;
    }
    char jti[SL_JWT_TOKEN_ID_LEN + 1];
    a.claims.channels = a.channels;
    /* Whole seconds: NumericDate readers differ on fractions. */
    double now = (double)time(NULL);
    a.claims.iat = now;
    a.claims.exp = now + (double)(long long)a.ttl;

    secret s;
    sl_jwt_keyring *kr = NULL;
    char *token = NULL;
    r = secret_load(cmd, a.secret_file, &s);
    if (r == SL__EXIT_OK) {
        r = keyring_with(&s, a.kid, &kr);
        secret_release(&s);
    }
    if (r == SL__EXIT_OK && a.claims.jti == NULL) {
        int rc = sl_jwt_token_id_new(kr, a.claims.sub, jti);
        if (rc != SL_OK) {
            sl__cli_err("cannot generate a token id: %s", sl_strerror(rc));
            r = SL__EXIT_FAIL;
        }
        a.claims.jti = jti;
    }
    if (r == SL__EXIT_OK) {
        int rc = sl_jwt_sign(kr, a.kid, &a.claims, &token);
        if (rc != SL_OK) {
            sl__cli_err("cannot sign the token: %s", sl_strerror(rc));
            r = rc == SL_EINVAL ? SL__EXIT_USAGE : SL__EXIT_FAIL;
        } else if (puts(token) == EOF || fflush(stdout) == EOF) {
            sl__cli_err("cannot write output: %s", strerror(errno));
            r = SL__EXIT_FAIL;
        }
    }
    if (token)
        sl__cli_wipe_free(token, strlen(token));
    sl_jwt_keyring_free(kr);
    free(a.channels);
    return r;
}

/* ---- inspect --------------------------------------------------------------------------------- */

typedef struct inspect_args {
    int verify;
    sl_jwt_verify_opts vo;
    const char *secret_file;
    const char *pubkey_file;
} inspect_args;

static int inspect_opt(void *ud, int opt, const char *arg)
{
    inspect_args *a = ud;
    switch (opt) {
    case OPT_VERIFY:
        a->verify = 1;
        return 0;
    case OPT_AUD:
        a->vo.audience = arg;
        return 0;
    case OPT_ISS:
        a->vo.issuer = arg;
        return 0;
    case OPT_SECRET_FILE:
        a->secret_file = arg;
        return 0;
    case OPT_PUBKEY:
        a->pubkey_file = arg;
        return 0;
    }
    return SL__EXIT_USAGE;
}

/* A keyring holding the public key in file under kid, as whichever of ES256 and EdDSA it is (each
 * refuses the other's keys, so trying both cannot admit a wrong one). The type is found with no kid
 * first, so that a token's unusable kid is not blamed on the key file. Returns an exit code. */
static int keyring_with_pubkey(const char *file, const char *kid, sl_jwt_keyring **out)
{
    typedef int (*add_fn)(sl_jwt_keyring *, const char *, const char *, size_t);
    size_t len;
    char *pem = sl__cli_read_file(file, MAX_PUBKEY_FILE, &len);
    if (pem == NULL) {
        sl__cli_err("cannot read public key file '%s': %s", file,
                    errno == EFBIG ? "too large" : strerror(errno));
        return SL__EXIT_FAIL;
    }
    add_fn add = NULL;
    sl_jwt_keyring *probe = NULL;
    int rc = sl_jwt_keyring_new(&probe);
    if (rc == SL_OK) {
        if ((rc = sl_jwt_keyring_add_es256_pem(probe, NULL, pem, len)) == SL_OK)
            add = sl_jwt_keyring_add_es256_pem;
        else if (rc == SL_EINVAL &&
                 (rc = sl_jwt_keyring_add_eddsa_pem(probe, NULL, pem, len)) == SL_OK)
            add = sl_jwt_keyring_add_eddsa_pem;
    }
    sl_jwt_keyring_free(probe);
    if (add != NULL && (rc = sl_jwt_keyring_new(out)) == SL_OK)
        rc = add(*out, kid, pem, len);
    /* A mistaken private key must not linger in freed memory either. */
    sl__cli_wipe_free(pem, len);
    if (rc != SL_OK) {
        sl_jwt_keyring_free(*out);
        *out = NULL;
        if (add == NULL && rc == SL_EINVAL) {
            sl__cli_err("'%s' is not a P-256 or Ed25519 public key in PEM (\"BEGIN PUBLIC KEY\")",
                        file);
            return SL__EXIT_USAGE;
        }
        sl__cli_err("cannot use the public key: %s", sl_strerror(rc));
        return SL__EXIT_FAIL;
    }
    return SL__EXIT_OK;
}

/* Adds "verified" (and "error") to out. Returns an exit code: 0 verified, 3 not. */
static int verify_into(json_t *out, const char *token, size_t len, const char *kid,
                       const inspect_args *a)
{
    secret s;
    sl_jwt_keyring *kr = NULL;
    int r;
    if (a->pubkey_file != NULL) {
        r = keyring_with_pubkey(a->pubkey_file, kid, &kr);
    } else if ((r = secret_load("token inspect", a->secret_file, &s)) == SL__EXIT_OK) {
        /* The secret is the one to check against, whatever key the token names. */
        r = keyring_with(&s, kid, &kr);
        secret_release(&s);
    }
    if (r != SL__EXIT_OK)
        return r;
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_status_clear(&st);
    /* Either kind of token verifies here, each by its own rules. */
    char channel[SL_CHANNEL_ID_MAX + 1];
    double now = (double)time(NULL);
    int rc = sl_jwt_verify(kr, token, len, &a->vo, now, &id, &st);
    if (rc == SL_ETOKEN && strcmp(st.message, "wrong kind of token") == 0)
        rc = sl_jwt_verify_subscription(kr, token, len, &a->vo, now, &id, channel, &st);
    sl_identity_clear(&id);
    sl_jwt_keyring_free(kr);
    json_object_set_new(out, "verified", json_boolean(rc == SL_OK));
    if (rc != SL_OK)
        json_object_set_new(out, "error",
                            json_string(st.message[0] ? st.message : sl_strerror(rc)));
    return rc == SL_OK ? SL__EXIT_OK : SL__EXIT_AUTH;
}

static int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"verify", no_argument, NULL, OPT_VERIFY},
                                         {"aud", required_argument, NULL, OPT_AUD},
                                         {"iss", required_argument, NULL, OPT_ISS},
                                         {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
                                         {"pubkey", required_argument, NULL, OPT_PUBKEY},
                                         {0}};
    const char *cmd = "token inspect";
    inspect_args a;
    memset(&a, 0, sizeof a);
    sl_jwt_verify_opts_init(&a.vo);
    int r = sl__cli_getopt(cmd, argc, argv, opts, inspect_usage, NULL, inspect_opt, &a);
    if (r >= 0)
        return r;
    if (argc - optind != 1)
        return sl__cli_usage_error(cmd, "expected one TOKEN (or '-' for stdin)");
    /* Either key alone decides; accepting both would leave unclear which one verified. */
    if (a.pubkey_file != NULL && a.secret_file != NULL)
        return sl__cli_usage_error(cmd, "--pubkey and --secret-file exclude each other");
    if (a.pubkey_file != NULL && !a.verify)
        return sl__cli_usage_error(cmd, "--pubkey needs --verify");
    char *in = NULL;
    const char *token = argv[optind];
    if (strcmp(token, "-") == 0) {
        size_t n;
        if ((in = sl__cli_read_stream(stdin, SL_JWT_MAX_LEN + 64, &n)) == NULL) {
            sl__cli_err("cannot read the token from stdin%s", errno == EFBIG ? ": too long" : "");
            return SL__EXIT_USAGE;
        }
        /* Tolerate the surrounding whitespace of `echo` and heredocs. */
        char *b = in;
        while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
            b++;
        size_t l = strlen(b);
        while (l > 0 &&
               (b[l - 1] == ' ' || b[l - 1] == '\t' || b[l - 1] == '\n' || b[l - 1] == '\r'))
            b[--l] = '\0';
        token = b;
    }
    size_t len = strlen(token);
    char *header = NULL, *payload = NULL;
    json_t *h = NULL, *p = NULL;
    if (len > SL_JWT_MAX_LEN || sl_jwt_decode_unverified(token, len, &header, &payload) != SL_OK ||
        (h = json_loads(header, 0, NULL)) == NULL || (p = json_loads(payload, 0, NULL)) == NULL) {
        /* Never echo the argument: it may be a real token. */
        r = sl__cli_usage_error(cmd, "not a JWT (expected three base64url segments of JSON)");
        json_decref(h);
        free(header);
        free(payload);
        if (in)
            sl__cli_wipe_free(in, strlen(in));
        return r;
    }
    free(header);
    free(payload);
    json_t *out = json_pack("{s:o, s:o}", "header", h, "payload", p);
    r = SL__EXIT_OK;
    if (out && a.verify) {
        const char *kid = json_string_value(json_object_get(h, "kid"));
        r = verify_into(out, token, len, kid, &a);
    }
    if (r == SL__EXIT_OK || r == SL__EXIT_AUTH) {
        int pr = sl__cli_print_json(out);
        r = pr != SL__EXIT_OK ? pr : r;
    } else {
        json_decref(out);
    }
    if (in)
        sl__cli_wipe_free(in, strlen(in));
    return r;
}

int sl__cli_cmd_token(int argc, char **argv)
{
    if (argc < 2)
        return sl__cli_usage_error("token", "expected a command");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(token_usage, stdout);
        return SL__EXIT_OK;
    }
    if (!strcmp(sub, "create"))
        return cmd_create(argc - 1, argv + 1);
    if (!strcmp(sub, "inspect"))
        return cmd_inspect(argc - 1, argv + 1);
    return sl__cli_usage_error("token", "unknown command 'token %s'", sub);
}
