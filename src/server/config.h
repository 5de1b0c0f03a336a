/* sluiced's configuration: command-line flags, config files and the environment (docs/CONFIG.md)
 * fill one struct through one setter and one table of keys. Every key owns its storage and a
 * setting changes only its own key, whatever the order and wherever it comes from. Nothing here
 * does I/O: the file parser takes the text and the file name (for messages that name file and
 * line), and sl__config_load is handed a function that reads --config files. */
#ifndef SLUICE_SERVER_CONFIG_H
#define SLUICE_SERVER_CONFIG_H

#include <stddef.h>

#include <sluice/sluice.h>

#include "net/http.h"
#include "server/wsession.h"

typedef struct sl__cfg_channel {
    char *id;
    sl_channel_opts opts; /* strings point into the owned copies below */
    char *name, *description, *dead_letter;
} sl__cfg_channel;

typedef struct sl__cfg_grant {
    char *principal;
    sl_role role;
    char **patterns;
    size_t npatterns;
    char **deny; /* deny patterns */
    size_t ndeny;
} sl__cfg_grant;

/* [role NAME] / [principal NAME] / [delegate SERVICE]: a name and a list (patterns or role names).
 */
typedef struct sl__cfg_named {
    char *name;
    sl_role grants; /* roles only */
    char **items;
    size_t nitems;
    char **deny; /* roles only: deny patterns */
    size_t ndeny;
} sl__cfg_named;

/* [invoke_policy PATTERN]: allow / deny rules ("operation:resource") and audit. */
typedef struct sl__cfg_invoke {
    char *principal; /* a principal or a pattern with '*' */
    char **allow, **deny;
    size_t nallow, ndeny;
    int audit;
} sl__cfg_invoke;

typedef struct sl__cfg_key {
    char *kid;         /* NULL: default key */
    char *secret_file; /* NULL: SLUICE_JWT_SECRET */
} sl__cfg_key;

/* One `listen` (docs/TLS.md): HOST:PORT[,tls][,mtls[=optional|required]][,auth=MODE]. */
typedef struct sl__cfg_listener {
    char host[64];
    int port;
    int tls;         /* 1: TLS (mtls implies it) */
    int mtls;        /* SL__TLS_CLIENT_* (net/tls.h): 0 none, 1 optional, 2 required */
    unsigned accept; /* sl_authn_mode_parse: SL_AUTHN_KIND_* allowed on it; 0: any */
    int metrics;     /* 1: serves GET /metrics only, without credentials */
    char *text;      /* as given (sl__config_format) */
} sl__cfg_listener;

typedef struct sl__config {
    char host[64]; /* the first listener's address (default 127.0.0.1:8080) */
    int port;
    int insecure;
    sl_mode authz; /* 0: token when a secret is configured, else open */
    char **admins;
    size_t nadmins;
    sl__cfg_key *keys;
    size_t nkeys;
    char *jwt_audience, *jwt_issuer;
    double jwt_leeway;
    int jwt_exp_optional;
    char *audit_log;
    char *revocation;          /* "memory" (default with JWT), "redis://HOST:PORT", "off" */
    char *revocation_prefix;   /* Redis key prefix; NULL: "sluice" */
    double revocation_max_ttl; /* seconds; 0: 24 h */
    int log_requests;
    sl_http_limits limits;
    size_t read_max_bytes; /* message bytes one read returns at most (the context's cap) */
    char engine[8];        /* "lmdb" (default) | "memory" | "redis" */
    char *engine_url;      /* engine redis: the URL as given (holds a password: not logged) */
    char *engine_prefix;   /* engine redis: key prefix; NULL: "sluice" */
    char *data_dir;        /* the LMDB engine's directory; NULL: "sluice-data" */
    char durability[8];    /* "sync" (default) | "batch" | "none" */
    unsigned durability_batch_ms; /* batch: fsync at most this often */
    sl__wss_limits ws;            /* the WebSocket endpoint's limits (ws_* keys) */
    sl__cfg_channel *channels;
    size_t nchannels;
    sl__cfg_grant *grants;
    size_t ngrants;
    sl__cfg_invoke *invokes;
    size_t ninvokes;
    /* authenticators besides sluice tokens */
    char *apikey_store;     /* API key file */
    char *upstream_key_alg; /* "hs256" | "es256" | "es384" | "eddsa" | "rs256" | ... | "ps256" */
    char *upstream_key_file;
    char *upstream_issuer, *upstream_audience;
    char *introspection_url, *introspection_client_id, *introspection_secret_file;
    double introspection_cache_ttl;
    char **authenticators; /* order; NULL: every configured one, in the order above */
    size_t nauthenticators;
    /* the token broker */
    int broker;             /* 1: enabled (also implied by any role/principal/delegate) */
    char broker_prefix[64]; /* path prefix of /token, /token/delegate, /revoke */
    double broker_default_ttl, broker_max_ttl;
    int broker_allow_all; /* development only */
    sl_role broker_allow_all_role;
    sl__cfg_named *roles, *principals, *delegates;
    size_t nroles, nprincipals, ndelegates;
    /* JWKS for the upstream-JWT authenticator, instead of upstream_jwt_key (docs/JWKS.md) */
    char *upstream_jwks_url, *upstream_oidc_issuer;
    double jwks_refresh_min, jwks_refresh_max, jwks_unknown_kid_interval, jwks_max_stale;
    /* signed requests (docs/SIGNING.md) */
    char *signature_keys;        /* the key file (JSON); NULL: signed requests are not accepted */
    double signature_max_skew;   /* seconds either side of created (default 300) */
    size_t signature_max_nonces; /* the one-node replay store's bound (default 100000) */
    char **auth_modes;           /* auth_mode items, "PREFIX=MODE" (one per prefix) */
    size_t nauth_modes;
    /* TLS and listeners (docs/TLS.md) */
    sl__cfg_listener *listeners; /* none: one plaintext listener on host:port */
    size_t nlisteners;
    char *tls_cert, *tls_key, *tls_client_ca;
    int tls_client_principal; /* sl_cert_principal */
    /* the authorise contract: regimes, the decision cache, the HTTP policy */
    char **authz_overrides; /* authz_override items, "PATTERN=MODE" (one per pattern) */
    size_t nauthz_overrides;
    size_t authz_cache_size;         /* decisions kept (LRU); 0: none (default 10000) */
    double authz_cache_ttl_max;      /* seconds a decision is kept at most (default 60) */
    char *authz_policy_url;          /* the HTTP policy regime's URL; NULL: none */
    double authz_policy_timeout;     /* seconds per question (default 2) */
    size_t authz_policy_concurrency; /* questions under way at once (default 16) */
    size_t authz_policy_queue;       /* questions waiting beyond that (default 1024) */
    /* sluiced's own log (server/log.h) */
    int log_format; /* SL__LOG_TEXT (default) | SL__LOG_JSON */
    int log_level;  /* SL__LOG_INFO by default */
    char *log_file; /* NULL: stderr */
    int access_log; /* one line per request (log_requests is its older name) */
    /* from the environment (sl__config_load) */
    char
        *jwt_env_secret; /* SLUICE_JWT_SECRET; used when no jwt_secret_file is set; wiped on free */
    int help;            /* -h / --help was given: the rest of the command line was not read */
    /* workspaces (docs/POLICY.md "Workspaces") */
    char **workspace_limits; /* "NAME:channels=N,connections=N,rate=N" items ("*": the default) */
    size_t nworkspace_limits;
    char **workspace_operators; /* principals that may cross into a workspace */
    size_t nworkspace_operators;
    char *upstream_workspace_claim; /* the identity provider's claim naming the workspace */
    /* [acl] sections in a file of their own, reloaded on SIGHUP (server/aclfile.h);
     * NULL: none */
    char *acl_file;
    /* metrics: channels reported by depth, and patterns of channels always reported */
    size_t metrics_top_channels; /* default 20 */
    char **metrics_channels;
    size_t nmetrics_channels;
} sl__config;

void sl__config_init(sl__config *c);
void sl__config_free(sl__config *c);

/* One top-level key: the table that sl__config_set, the command line, sl__config_format, the tests
 * and the fuzz targets all use, so none of them can miss a key. */
typedef struct sl__config_key {
    const char *name;        /* "jwt_leeway": the config file key */
    const char *flag;        /* "jwt-leeway": --FLAG on the command line; NULL: file only */
    int flag_takes_no_value; /* --insecure alone means "true" (--insecure=false also works) */
    int repeatable; /* each setting adds an item (admin; jwt_key per KID); else last wins */
    const char *examples[2]; /* two valid, different values (tests, fuzz seeds) */
} sl__config_key;

/* The table (static; *n gets its length). */
const sl__config_key *sl__config_keys(size_t *n);

/* Parses config text into c (adding to what is there). On error st->message is
 * "FILE:LINE: what is wrong" and SL_ECONFIG is returned. */
int sl__config_parse(sl__config *c, const char *text, size_t len, const char *filename,
                     sl_status *st);

/* Sets one top-level option by name (shared by the file parser and command-line flags). Changes
 * nothing but that key, and nothing at all on error (SL_ECONFIG or SL_ENOMEM, with st->message). */
int sl__config_set(sl__config *c, const char *key, const char *value, sl_status *st);

/* The current value of a top-level key as text the setter accepts ("" when unset; a repeatable
 * key's items joined by ", "). Returns a string the caller frees, or NULL for an unknown key or
 * when out of memory. Never a secret: keys name secret files, not secrets. */
char *sl__config_format(const sl__config *c, const char *key);

/* Where sl__config_load gets what is not on the command line. */
typedef struct sl__config_source {
    /* Reads the whole file named by --config FILE into *text (malloc'd; the caller frees) and its
     * length into *len. On failure returns an error code and sets st->message. */
    int (*read_file)(void *ud, const char *path, char **text, size_t *len, sl_status *st);
    void *ud;
    char *const *envp; /* "NAME=VALUE" strings, NULL-terminated (like environ); NULL: none */
} sl__config_source;

/* sluiced's whole configuration into c (initialised by the caller): the flags argv[1..argc) in
 * order, each --config FILE parsed where it appears (later flags override it, earlier ones are
 * overridden by it), then the environment (SLUICE_JWT_SECRET). Flags are --FLAG VALUE or
 * --FLAG=VALUE; -h/--help sets c->help and stops. On error: SL_ECONFIG or SL_EINVAL (a malformed
 * command line) or the read_file error, with st->message. */
int sl__config_load(sl__config *c, int argc, char *const *argv, const sl__config_source *src,
                    sl_status *st);

/* "HOST:PORT" or "[V6]:PORT" into c->host / c->port. */
int sl__config_set_listen(sl__config *c, const char *value);

/* "HOST:PORT[,tls][,mtls[=optional|required]][,auth=MODE]" into *l (l->text owned: free it).
 * SL_EINVAL with a reason in st when malformed. */
int sl__config_parse_listener(sl__cfg_listener *l, const char *value, sl_status *st);

#endif
