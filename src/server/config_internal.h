/* What the pieces of sluiced's configuration share (config.c, config_keys.c, config_set.c,
 * config_format.c, config_parse.c, config_load.c); config.h is the public face. The key ids index the one key table,
 * which the setter, the read-back, the command line and the file parser all go through; the value
 * parsers are the syntax every piece accepts alike. Nothing here does I/O. */
#ifndef SLUICE_SERVER_CONFIG_INTERNAL_H
#define SLUICE_SERVER_CONFIG_INTERNAL_H

#include <stddef.h>

#include "server/config.h"

/* The longest line of a config file, and of a list value split into items. */
#define SL__CONFIG_MAX_LINE 4096

/* The top-level keys: indexes into sl__config_key_table (config_keys.c). */
enum sl__config_key_id {
    K_LISTEN,
    K_AUTHZ,
    K_ADMIN,
    K_INSECURE,
    K_JWT_SECRET_FILE,
    K_JWT_KEY,
    K_JWT_AUDIENCE,
    K_JWT_ISSUER,
    K_JWT_LEEWAY,
    K_JWT_EXP_OPTIONAL,
    K_AUDIT_LOG,
    K_REVOCATION,
    K_REVOCATION_PREFIX,
    K_REVOCATION_MAX_TTL,
    K_APIKEY_STORE,
    K_UPSTREAM_JWT_KEY,
    K_UPSTREAM_JWT_ISSUER,
    K_UPSTREAM_JWT_AUDIENCE,
    K_INTROSPECTION_URL,
    K_INTROSPECTION_CLIENT_ID,
    K_INTROSPECTION_CLIENT_SECRET_FILE,
    K_INTROSPECTION_CACHE_TTL,
    K_AUTHENTICATORS,
    K_BROKER,
    K_BROKER_PREFIX,
    K_BROKER_DEFAULT_TTL,
    K_BROKER_MAX_TTL,
    K_BROKER_ALLOW_ALL,
    K_BROKER_ALLOW_ALL_ROLE,
    K_LOG_REQUESTS,
    K_MAX_BODY,
    K_READ_MAX_BYTES,
    K_MAX_HEADER,
    K_REQUEST_TIMEOUT,
    K_IDLE_TIMEOUT,
    K_MAX_CONNECTIONS,
    K_MAX_CONNECTIONS_PER_ADDRESS,
    K_MAX_PENDING_PER_ADDRESS,
    K_BUSY_HEADER_TIMEOUT,
    K_ENGINE,
    K_DATA_DIR,
    K_ENGINE_PREFIX,
    K_DURABILITY,
    K_DURABILITY_BATCH_MS,
    K_WS_FIRST, /* the ws_* keys: set_ws's tables */
    K_WS_MAX_CONNECTIONS = K_WS_FIRST,
    K_WS_MAX_SUBSCRIPTIONS,
    K_WS_MAX_MESSAGE,
    K_WS_MAX_OUTGOING,
    K_WS_HISTORY_MAX,
    K_WS_COMMANDS_PER_SECOND,
    K_WS_MAX_ERRORS,
    K_WS_HANDSHAKE_TIMEOUT,
    K_WS_PING_INTERVAL,
    K_WS_PONG_TIMEOUT,
    K_WS_REFRESH_GRACE,
    /* JWKS for upstream JWTs (docs/JWKS.md) */
    K_UPSTREAM_JWKS_URL,
    K_UPSTREAM_OIDC_ISSUER,
    K_JWKS_REFRESH_MIN,
    K_JWKS_REFRESH_MAX,
    K_JWKS_UNKNOWN_KID_INTERVAL,
    K_JWKS_MAX_STALE,
    /* signed requests and route modes (docs/SIGNING.md) */
    K_SIGNATURE_KEYS,
    K_SIGNATURE_MAX_SKEW,
    K_SIGNATURE_MAX_NONCES,
    K_AUTH_MODE,
    /* TLS (docs/TLS.md) */
    K_TLS_CERT,
    K_TLS_KEY,
    K_TLS_CLIENT_CA,
    K_TLS_CLIENT_PRINCIPAL,
    /* workspaces (docs/POLICY.md) */
    K_WORKSPACE_LIMITS,
    K_WORKSPACE_OPERATORS,
    K_UPSTREAM_WORKSPACE_CLAIM,
    /* the authorise contract (docs/POLICY.md) */
    K_AUTHZ_OVERRIDE,
    K_AUTHZ_CACHE_SIZE,
    K_AUTHZ_CACHE_TTL_MAX,
    K_AUTHZ_POLICY_URL,
    K_AUTHZ_POLICY_TIMEOUT,
    K_AUTHZ_POLICY_CONCURRENCY,
    K_AUTHZ_POLICY_QUEUE,
    /* grants reloaded on SIGHUP (server/aclfile.h) */
    K_ACL_FILE,
    /* sluiced's own log (docs/OPERATIONS.md, "Logs") */
    K_LOG_FORMAT,
    K_LOG_LEVEL,
    K_LOG_FILE,
    K_ACCESS_LOG,
    /* metrics */
    K_METRICS_TOP_CHANNELS,
    K_METRICS_CHANNELS,
    K_COUNT
};

/* The key table, indexed by enum sl__config_key_id, and a key's index by name (-1: unknown). */
extern const sl__config_key sl__config_key_table[K_COUNT];
int sl__config_key_index(const char *key);

/* The JWT key with this kid (NULL: the default key), or NULL. */
sl__cfg_key *sl__config_find_key(sl__config *c, const char *kid);

/* The WebSocket endpoint's limits (ws_* keys): counts and durations, by their field's offset in
 * sl__wss_limits; the setter and the read-back walk the same tables. */
typedef struct sl__config_ws_count {
    const char *key;
    unsigned long long max; /* counts: 1..max */
    size_t off;
    int is_unsigned; /* unsigned int field rather than size_t */
} sl__config_ws_count;
typedef struct sl__config_ws_time {
    const char *key;
    double min, max;
    size_t off;
} sl__config_ws_time;
extern const sl__config_ws_count sl__config_ws_counts[];
extern const size_t sl__config_nws_counts;
extern const sl__config_ws_time sl__config_ws_times[];
extern const size_t sl__config_nws_times;

/* Value syntax (config.c). The parsers return 0, or -1 when s is not a valid value. */
int sl__config_parse_uint(const char *s, unsigned long long max, unsigned long long *out);
int sl__config_parse_seconds(const char *s, double *out);
int sl__config_parse_bool(const char *s, int *out);
/* Appends a copy of s to the list *v of *n items: SL_OK or SL_ENOMEM (the list unchanged). */
int sl__config_push_str(char ***v, size_t *n, const char *s);
void sl__config_free_strv(char **v, size_t n);
/* Frees a secret after overwriting it (NULL: nothing). */
void sl__config_wipe_free(char *secret);

#endif
