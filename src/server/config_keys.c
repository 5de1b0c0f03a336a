/* The top-level keys: one table of keys (sl__config_key_table) that drives the one setter
 * (sl__config_set, config_set.c), the read-back and the command line, the WebSocket limits' keys,
 * and `listen`'s syntax (HOST:PORT and a listener's options). No I/O. */
#include "server/config.h"
#include "server/config_internal.h"

#include "net/tls.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

/* HOST:PORT in value[0..vl) into host and *port. */
static int host_port(const char *value, size_t vl, char host[64], int *portp)
{
    const char *colon = NULL;
    for (size_t i = 0; i < vl; i++)
        if (value[i] == ':')
            colon = value + i;
    if (colon == NULL)
        return SL_EINVAL;
    const char *h = value;
    size_t hl = (size_t)(colon - value);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    unsigned long long port;
    char digits[8];
    size_t dl = vl - (size_t)(colon + 1 - value);
    if (dl == 0 || dl >= sizeof digits)
        return SL_EINVAL;
    memcpy(digits, colon + 1, dl);
    digits[dl] = '\0';
    if (hl == 0 || hl >= 64 || sl__config_parse_uint(digits, 65535, &port) < 0)
        return SL_EINVAL;
    /* A name, an IPv4 address or an IPv6 one (with a %zone): nothing that reads back as another
     * host, such as "[a]" (from "[[a]]:80"), and no spaces or control characters. */
    for (size_t i = 0; i < hl; i++)
        if (!isalnum((unsigned char)h[i]) && !strchr(".-_:%", h[i]))
            return SL_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *portp = (int)port;
    return SL_OK;
}

int sl__config_set_listen(sl__config *c, const char *value)
{
    char host[64];
    int port;
    if (host_port(value, strlen(value), host, &port) != SL_OK)
        return SL_EINVAL;
    memcpy(c->host, host, sizeof host);
    c->port = port;
    return SL_OK;
}

int sl__config_parse_listener(sl__cfg_listener *l, const char *value, sl_status *st)
{
    memset(l, 0, sizeof *l);
    const char *comma = strchr(value, ',');
    size_t hl = comma ? (size_t)(comma - value) : strlen(value);
    if (host_port(value, hl, l->host, &l->port) != SL_OK)
        return sl_status_set(st, SL_EINVAL, "listen must be HOST:PORT");
    for (const char *p = comma; p != NULL && *p == ',';) {
        const char *opt = p + 1, *next = strchr(opt, ',');
        size_t n = next ? (size_t)(next - opt) : strlen(opt);
        char o[64];
        if (n >= sizeof o)
            n = sizeof o - 1; /* too long for any option: refused below */
        memcpy(o, opt, n);
        o[n] = '\0';
        int mode;
        if (!strcmp(o, "tls")) {
            l->tls = 1;
        } else if (!strcmp(o, "mtls") || !strcmp(o, "mtls=optional")) {
            l->tls = 1;
            l->mtls = SL__TLS_CLIENT_OPTIONAL;
        } else if (!strcmp(o, "mtls=required")) {
            l->tls = 1;
            l->mtls = SL__TLS_CLIENT_REQUIRED;
        } else if (!strncmp(o, "auth=", 5) && (mode = sl_authn_mode_parse(o + 5)) >= 0) {
            l->accept = (unsigned)mode;
        } else if (!strcmp(o, "metrics")) {
            l->metrics = 1;
        } else {
            return sl_status_set(st, SL_EINVAL,
                                 "listen: unknown option '%s' (HOST:PORT[,tls][,mtls[=optional|"
                                 "required]][,auth=any|bearer|signed|cert|none][,metrics])",
                                 o);
        }
        p = next;
    }
    if ((l->text = strdup(value)) == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    return SL_OK;
}

/* ---- the key table --------------------------------------------------------------------------- */

const sl__config_key sl__config_key_table[K_COUNT] = {
    [K_LISTEN] = {"listen", "listen", 0, 1, {"0.0.0.0:9000,tls,auth=cert", "[::1]:8081"}},
    [K_AUTHZ] = {"authz", "authz", 0, 0, {"acl", "open"}},
    [K_ADMIN] = {"admin", "admin", 0, 1, {"ops-tool", "root-1"}},
    [K_INSECURE] = {"insecure", "insecure", 1, 0, {"true", "false"}},
    [K_JWT_SECRET_FILE] = {"jwt_secret_file", "jwt-secret-file", 0, 0, {"/a.secret", "/b.secret"}},
    [K_JWT_KEY] = {"jwt_key", "jwt-key", 0, 1, {"k1:/k1.secret", "k2:/k2.secret"}},
    [K_JWT_AUDIENCE] = {"jwt_audience", NULL, 0, 0, {"aud-a", "aud-b"}},
    [K_JWT_ISSUER] = {"jwt_issuer", NULL, 0, 0, {"iss-a", "iss-b"}},
    [K_JWT_LEEWAY] = {"jwt_leeway", NULL, 0, 0, {"5", "60"}},
    [K_JWT_EXP_OPTIONAL] = {"jwt_exp_optional", NULL, 0, 0, {"true", "false"}},
    [K_AUDIT_LOG] = {"audit_log", "audit-log", 0, 0, {"/a.jsonl", "/b.jsonl"}},
    [K_REVOCATION] = {"revocation", "revocation", 0, 0, {"redis://127.0.0.1:6379", "off"}},
    [K_REVOCATION_PREFIX] = {"revocation_prefix", "revocation-prefix", 0, 0, {"p1", "p2"}},
    [K_REVOCATION_MAX_TTL] = {"revocation_max_ttl", NULL, 0, 0, {"3600", "172800"}},
    [K_APIKEY_STORE] = {"apikey_store", "apikey-store", 0, 0, {"/a.keys", "/b.keys"}},
    [K_UPSTREAM_JWT_KEY] = {"upstream_jwt_key", NULL, 0, 0, {"es256:/idp.pem", "hs256:/idp.key"}},
    [K_UPSTREAM_JWT_ISSUER] = {"upstream_jwt_issuer", NULL, 0, 0, {"idp-a", "idp-b"}},
    [K_UPSTREAM_JWT_AUDIENCE] = {"upstream_jwt_audience", NULL, 0, 0, {"sluice-a", "sluice-b"}},
    [K_INTROSPECTION_URL] = {"introspection_url",
                             NULL,
                             0,
                             0,
                             {"https://idp.example/introspect", "http://127.0.0.1:9/i"}},
    [K_INTROSPECTION_CLIENT_ID] = {"introspection_client_id", NULL, 0, 0, {"c-a", "c-b"}},
    [K_INTROSPECTION_CLIENT_SECRET_FILE] =
        {"introspection_client_secret_file", NULL, 0, 0, {"/ca.secret", "/cb.secret"}},
    [K_INTROSPECTION_CACHE_TTL] = {"introspection_cache_ttl", NULL, 0, 0, {"10", "300"}},
    [K_AUTHENTICATORS] = {"authenticators", NULL, 0, 0, {"introspection, apikey", "upstream-jwt"}},
    [K_BROKER] = {"broker", NULL, 0, 0, {"true", "false"}},
    [K_BROKER_PREFIX] = {"broker_prefix", NULL, 0, 0, {"/auth", "/a/b"}},
    [K_BROKER_DEFAULT_TTL] = {"broker_default_ttl", NULL, 0, 0, {"60", "1.5"}},
    [K_BROKER_MAX_TTL] = {"broker_max_ttl", NULL, 0, 0, {"7200", "31536000"}},
    [K_BROKER_ALLOW_ALL] = {"broker_allow_all", NULL, 0, 0, {"true", "false"}},
    [K_BROKER_ALLOW_ALL_ROLE] = {"broker_allow_all_role", NULL, 0, 0, {"read", "admin"}},
    [K_LOG_REQUESTS] = {"log_requests", "log-requests", 1, 0, {"true", "false"}},
    [K_MAX_BODY] = {"max_body", "max-body", 0, 0, {"2048", "1073741824"}},
    [K_READ_MAX_BYTES] = {"read_max_bytes", "read-max-bytes", 0, 0, {"1", "1073741824"}},
    [K_MAX_HEADER] = {"max_header", NULL, 0, 0, {"256", "1048576"}},
    [K_REQUEST_TIMEOUT] = {"request_timeout", "request-timeout", 0, 0, {"2.5", "3600"}},
    [K_IDLE_TIMEOUT] = {"idle_timeout", NULL, 0, 0, {"0.25", "86400"}},
    [K_MAX_CONNECTIONS] = {"max_connections", "max-connections", 0, 0, {"1", "1000000"}},
    [K_MAX_CONNECTIONS_PER_ADDRESS] =
        {"max_connections_per_address", "max-connections-per-address", 0, 0, {"3", "1000000"}},
    [K_MAX_PENDING_PER_ADDRESS] =
        {"max_pending_per_address", "max-pending-per-address", 0, 0, {"5", "1000000"}},
    [K_BUSY_HEADER_TIMEOUT] = {"busy_header_timeout", "busy-header-timeout", 0, 0, {"0", "0.5"}},
    [K_ENGINE] = {"engine", "engine", 0, 0, {"memory", "lmdb"}},
    [K_DATA_DIR] = {"data_dir", "data-dir", 0, 0, {"/var/lib/a", "/srv/b"}},
    [K_ENGINE_PREFIX] = {"engine_prefix", "engine-prefix", 0, 0, {"p1", "p2"}},
    [K_DURABILITY] = {"durability", "durability", 0, 0, {"batch", "none"}},
    [K_DURABILITY_BATCH_MS] = {"durability_batch_ms", NULL, 0, 0, {"1", "60000"}},
    [K_WS_MAX_CONNECTIONS] = {"ws_max_connections", NULL, 0, 0, {"1", "1000000"}},
    [K_WS_MAX_SUBSCRIPTIONS] = {"ws_max_subscriptions", NULL, 0, 0, {"2", "100000"}},
    [K_WS_MAX_MESSAGE] = {"ws_max_message", NULL, 0, 0, {"3", "67108864"}},
    [K_WS_MAX_OUTGOING] = {"ws_max_outgoing", NULL, 0, 0, {"4", "1073741824"}},
    [K_WS_HISTORY_MAX] = {"ws_history_max", NULL, 0, 0, {"5", "100000"}},
    [K_WS_COMMANDS_PER_SECOND] = {"ws_commands_per_second", NULL, 0, 0, {"6", "1000000"}},
    [K_WS_MAX_ERRORS] = {"ws_max_errors", NULL, 0, 0, {"7", "1000000"}},
    [K_WS_HANDSHAKE_TIMEOUT] = {"ws_handshake_timeout", NULL, 0, 0, {"0.1", "3600"}},
    [K_WS_PING_INTERVAL] = {"ws_ping_interval", NULL, 0, 0, {"0.2", "3600"}},
    [K_WS_PONG_TIMEOUT] = {"ws_pong_timeout", NULL, 0, 0, {"0.3", "3600"}},
    [K_WS_REFRESH_GRACE] = {"ws_refresh_grace", NULL, 0, 0, {"0", "3600"}},
    /* JWKS for upstream JWTs */
    [K_UPSTREAM_JWKS_URL] = {"upstream_jwks_url",
                             NULL,
                             0,
                             0,
                             {"https://idp.example/jwks.json", "http://127.0.0.1:9/keys"}},
    [K_UPSTREAM_OIDC_ISSUER] =
        {"upstream_oidc_issuer", NULL, 0, 0, {"https://idp.example", "http://127.0.0.1:9/realm"}},
    [K_JWKS_REFRESH_MIN] = {"jwks_refresh_min", NULL, 0, 0, {"1", "300"}},
    [K_JWKS_REFRESH_MAX] = {"jwks_refresh_max", NULL, 0, 0, {"2", "86400"}},
    [K_JWKS_UNKNOWN_KID_INTERVAL] = {"jwks_unknown_kid_interval", NULL, 0, 0, {"0.5", "60"}},
    [K_JWKS_MAX_STALE] = {"jwks_max_stale", NULL, 0, 0, {"0", "43200"}},
    /* signed requests and route modes */
    [K_SIGNATURE_KEYS] = {"signature_keys", "signature-keys", 0, 0, {"/a.json", "/b.json"}},
    [K_SIGNATURE_MAX_SKEW] = {"signature_max_skew", NULL, 0, 0, {"30", "3600"}},
    [K_SIGNATURE_MAX_NONCES] = {"signature_max_nonces", NULL, 0, 0, {"1000", "10000000"}},
    [K_AUTH_MODE] = {"auth_mode", "auth-mode", 0, 1, {"/channels=signed", "/health=none"}},
    /* TLS (docs/TLS.md) */
    [K_TLS_CERT] = {"tls_cert", "tls-cert", 0, 0, {"/a.crt", "/b.pem"}},
    [K_TLS_KEY] = {"tls_key", "tls-key", 0, 0, {"/a.key", "/b.key"}},
    [K_TLS_CLIENT_CA] = {"tls_client_ca", "tls-client-ca", 0, 0, {"/ca-a.pem", "/ca-b.pem"}},
    [K_TLS_CLIENT_PRINCIPAL] = {"tls_client_principal", NULL, 0, 0, {"dns", "email"}},
    /* workspaces */
    [K_WORKSPACE_LIMITS] = {"workspace_limits",
                            "workspace-limits",
                            0,
                            1,
                            {"acme:channels=10,connections=5,rate=100", "*:channels=100"}},
    [K_WORKSPACE_OPERATORS] =
        {"workspace_operators", "workspace-operators", 0, 1, {"ops", "root-1"}},
    [K_UPSTREAM_WORKSPACE_CLAIM] = {"upstream_workspace_claim", NULL, 0, 0, {"tenant", "org_id"}},
    /* the authorise contract */
    [K_AUTHZ_OVERRIDE] = {"authz_override", "authz-override", 0, 1, {"jobs.*=policy", "**=acl"}},
    [K_AUTHZ_CACHE_SIZE] = {"authz_cache_size", NULL, 0, 0, {"0", "100000"}},
    [K_AUTHZ_CACHE_TTL_MAX] = {"authz_cache_ttl_max", NULL, 0, 0, {"0", "3600"}},
    [K_AUTHZ_POLICY_URL] = {"authz_policy_url",
                            "authz-policy-url",
                            0,
                            0,
                            {"https://opa.example/v1/data/sluice", "http://127.0.0.1:8181/v1/d"}},
    [K_AUTHZ_POLICY_TIMEOUT] = {"authz_policy_timeout", NULL, 0, 0, {"0.5", "30"}},
    [K_AUTHZ_POLICY_CONCURRENCY] = {"authz_policy_concurrency", NULL, 0, 0, {"1", "1024"}},
    [K_AUTHZ_POLICY_QUEUE] = {"authz_policy_queue", NULL, 0, 0, {"1", "100000"}},
    /* the ACL file, reloaded on SIGHUP */
    [K_ACL_FILE] = {"acl_file", "acl-file", 0, 0, {"/etc/sluice/acl.conf", "/b.acl"}},
    /* sluiced's own log */
    [K_LOG_FORMAT] = {"log_format", "log-format", 0, 0, {"json", "text"}},
    [K_LOG_LEVEL] = {"log_level", "log-level", 0, 0, {"debug", "error"}},
    [K_LOG_FILE] = {"log_file", "log-file", 0, 0, {"/var/log/a.log", "/b.log"}},
    [K_ACCESS_LOG] = {"access_log", "access-log", 1, 0, {"true", "false"}},
    /* metrics */
    [K_METRICS_TOP_CHANNELS] = {"metrics_top_channels", NULL, 0, 0, {"0", "1000"}},
    [K_METRICS_CHANNELS] = {"metrics_channels", "metrics-channel", 0, 1, {"jobs.*", "orders.**"}},
};

const sl__config_key *sl__config_keys(size_t *n)
{
    *n = K_COUNT;
    return sl__config_key_table;
}

int sl__config_key_index(const char *key)
{
    for (int i = 0; i < K_COUNT; i++)
        if (!strcmp(key, sl__config_key_table[i].name))
            return i;
    return -1;
}

/* The WebSocket endpoint's limits (docs/WEBSOCKET.md, "Limits"). */
const sl__config_ws_count sl__config_ws_counts[] = {
    {"ws_max_connections", 1000000, offsetof(sl__wss_limits, max_connections), 0},
    {"ws_max_subscriptions", 100000, offsetof(sl__wss_limits, max_subscriptions), 0},
    {"ws_max_message", 1ULL << 26, offsetof(sl__wss_limits, max_message), 0},
    {"ws_max_outgoing", 1ULL << 30, offsetof(sl__wss_limits, max_outgoing), 0},
    {"ws_history_max", 100000, offsetof(sl__wss_limits, history_max), 0},
    {"ws_commands_per_second", 1000000, offsetof(sl__wss_limits, commands_per_second), 1},
    {"ws_max_errors", 1000000, offsetof(sl__wss_limits, max_errors), 1},
};
const size_t sl__config_nws_counts = sizeof sl__config_ws_counts / sizeof sl__config_ws_counts[0];
const sl__config_ws_time sl__config_ws_times[] = {
    {"ws_handshake_timeout", 0.1, 3600, offsetof(sl__wss_limits, handshake_timeout)},
    {"ws_ping_interval", 0.1, 3600, offsetof(sl__wss_limits, ping_interval)},
    {"ws_pong_timeout", 0.1, 3600, offsetof(sl__wss_limits, pong_timeout)},
    {"ws_refresh_grace", 0, 3600, offsetof(sl__wss_limits, refresh_grace)},
};
const size_t sl__config_nws_times = sizeof sl__config_ws_times / sizeof sl__config_ws_times[0];
