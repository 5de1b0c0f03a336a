/* Reading the configuration back: sl__config_format gives a top-level key's current value as
 * text the setter accepts again, so the tests and the fuzz targets can check that whatever was
 * accepted reads back as itself (fuzz/config_check.h). Walks the same key ids and WebSocket limit
 * tables as the setter (config_set.c). No I/O: the text is built in memory. */
#include "server/config.h"
#include "server/config_internal.h"

#include "net/tls.h"
#include "security/workspace.h"
#include "store/redis_conn.h"
#include "server/log.h"

#include <sluice/authn.h>
#include <sluice/certauth.h>
#include <sluice/introspect.h>
#include <sluice/jwks.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

static void put_strv(FILE *f, char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? ", " : "", v[i]);
}

char *sl__config_format(const sl__config *c, const char *key)
{
    int id = sl__config_key_index(key);
    if (id < 0)
        return NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (f == NULL)
        return NULL;
    const char *s = NULL; /* a string field: "" when unset */
    switch (id) {
    case K_LISTEN:
        if (c->nlisteners == 0)
            fprintf(f, strchr(c->host, ':') ? "[%s]:%d" : "%s:%d", c->host, c->port);
        for (size_t i = 0; i < c->nlisteners; i++)
            fprintf(f, "%s%s", i ? ", " : "", c->listeners[i].text);
        break;
    case K_TLS_CERT:
        s = c->tls_cert;
        break;
    case K_TLS_KEY:
        s = c->tls_key;
        break;
    case K_TLS_CLIENT_CA:
        s = c->tls_client_ca;
        break;
    case K_TLS_CLIENT_PRINCIPAL:
        s = sl_cert_principal_name(c->tls_client_principal);
        break;
    case K_AUTHZ:
        fputs(c->authz ? sl_mode_name(c->authz) : "", f);
        break;
    case K_ADMIN:
        put_strv(f, c->admins, c->nadmins);
        break;
    case K_JWT_SECRET_FILE: {
        const sl__cfg_key *k = sl__config_find_key((sl__config *)c, NULL);
        s = k ? k->secret_file : NULL;
        break;
    }
    case K_JWT_KEY:
        for (size_t i = 0, n = 0; i < c->nkeys; i++)
            if (c->keys[i].kid)
                fprintf(f, "%s%s:%s", n++ ? ", " : "", c->keys[i].kid, c->keys[i].secret_file);
        break;
    case K_JWT_AUDIENCE:
        s = c->jwt_audience;
        break;
    case K_JWT_ISSUER:
        s = c->jwt_issuer;
        break;
    case K_JWT_LEEWAY:
        fprintf(f, "%.17g", c->jwt_leeway);
        break;
    case K_AUDIT_LOG:
        s = c->audit_log;
        break;
    case K_REVOCATION:
        if (c->revocation && strncasecmp(c->revocation, "redis://", 8) == 0) { /* password masked */
            sl__redis_addr a;
            if (sl__redis_addr_parse(c->revocation, "revocation", &a, NULL) == SL_OK) {
                char *masked = sl__redis_addr_masked(&a);
                fputs(masked ? masked : "", f);
                free(masked);
                sl__redis_addr_clear(&a);
            }
            break;
        }
        s = c->revocation;
        break;
    case K_REVOCATION_PREFIX:
        s = c->revocation_prefix;
        break;
    case K_REVOCATION_MAX_TTL:
        fprintf(f, "%.17g", c->revocation_max_ttl);
        break;
    case K_APIKEY_STORE:
        s = c->apikey_store;
        break;
    case K_UPSTREAM_JWT_KEY:
        if (c->upstream_key_alg)
            fprintf(f, "%s:%s", c->upstream_key_alg, c->upstream_key_file);
        break;
    case K_UPSTREAM_JWT_ISSUER:
        s = c->upstream_issuer;
        break;
    case K_UPSTREAM_JWT_AUDIENCE:
        s = c->upstream_audience;
        break;
    case K_INTROSPECTION_URL:
        s = c->introspection_url;
        break;
    case K_INTROSPECTION_CLIENT_ID:
        s = c->introspection_client_id;
        break;
    case K_INTROSPECTION_CLIENT_SECRET_FILE:
        s = c->introspection_secret_file;
        break;
    case K_INTROSPECTION_CACHE_TTL:
        fprintf(f, "%.17g", c->introspection_cache_ttl);
        break;
    case K_AUTHENTICATORS:
        put_strv(f, c->authenticators, c->nauthenticators);
        break;
    case K_BROKER_PREFIX:
        s = c->broker_prefix;
        break;
    case K_BROKER_DEFAULT_TTL:
    case K_BROKER_MAX_TTL:
        fprintf(f, "%.17g", id == K_BROKER_DEFAULT_TTL ? c->broker_default_ttl : c->broker_max_ttl);
        break;
    case K_BROKER_ALLOW_ALL_ROLE:
        fputs(c->broker_allow_all_role ? sl_role_name(c->broker_allow_all_role) : "", f);
        break;
    case K_INSECURE:
    case K_JWT_EXP_OPTIONAL:
    case K_BROKER:
    case K_BROKER_ALLOW_ALL:
    case K_LOG_REQUESTS: {
        int b = id == K_INSECURE           ? c->insecure
                : id == K_JWT_EXP_OPTIONAL ? c->jwt_exp_optional
                : id == K_BROKER           ? c->broker
                : id == K_BROKER_ALLOW_ALL ? c->broker_allow_all
                                           : c->log_requests;
        fputs(b ? "true" : "false", f);
        break;
    }
    case K_MAX_BODY:
        fprintf(f, "%zu", c->limits.max_body);
        break;
    case K_READ_MAX_BYTES:
        fprintf(f, "%zu", c->read_max_bytes);
        break;
    case K_ENGINE:
        if (c->engine_url) { /* the shards with their passwords masked */
            sl__redis_url u;
            if (sl__redis_url_parse(c->engine_url, &u, NULL) == SL_OK) {
                for (size_t i = 0; i < u.n; i++) {
                    char *masked = sl__redis_addr_masked(&u.shards[i]);
                    fprintf(f, "%s%s", i ? "," : "", masked ? masked : "");
                    free(masked);
                }
                sl__redis_url_clear(&u);
            }
            break;
        }
        s = c->engine;
        break;
    case K_ENGINE_PREFIX:
        s = c->engine_prefix;
        break;
    case K_DATA_DIR:
        s = c->data_dir;
        break;
    case K_DURABILITY:
        s = c->durability;
        break;
    case K_DURABILITY_BATCH_MS:
        fprintf(f, "%u", c->durability_batch_ms);
        break;
    case K_MAX_HEADER:
        fprintf(f, "%zu", c->limits.max_header);
        break;
    case K_REQUEST_TIMEOUT:
        fprintf(f, "%.17g", c->limits.request_timeout_ms / 1000.0);
        break;
    case K_IDLE_TIMEOUT:
        fprintf(f, "%.17g", c->limits.idle_timeout_ms / 1000.0);
        break;
    case K_MAX_CONNECTIONS:
        fprintf(f, "%zu", c->limits.max_connections);
        break;
    case K_MAX_CONNECTIONS_PER_ADDRESS:
        fprintf(f, "%zu", c->limits.max_connections_per_address);
        break;
    case K_MAX_PENDING_PER_ADDRESS:
        fprintf(f, "%zu", c->limits.max_pending_per_address);
        break;
    case K_BUSY_HEADER_TIMEOUT:
        fprintf(f, "%.17g", c->limits.busy_header_timeout_ms / 1000.0);
        break;
    /* JWKS for upstream JWTs */
    case K_UPSTREAM_JWKS_URL:
        s = c->upstream_jwks_url;
        break;
    case K_UPSTREAM_OIDC_ISSUER:
        s = c->upstream_oidc_issuer;
        break;
    case K_JWKS_REFRESH_MIN:
    case K_JWKS_REFRESH_MAX:
    case K_JWKS_UNKNOWN_KID_INTERVAL:
    case K_JWKS_MAX_STALE:
        fprintf(f, "%.17g",
                id == K_JWKS_REFRESH_MIN            ? c->jwks_refresh_min
                : id == K_JWKS_REFRESH_MAX          ? c->jwks_refresh_max
                : id == K_JWKS_UNKNOWN_KID_INTERVAL ? c->jwks_unknown_kid_interval
                                                    : c->jwks_max_stale);
        break;
    /* signed requests and route modes */
    case K_SIGNATURE_KEYS:
        s = c->signature_keys;
        break;
    case K_SIGNATURE_MAX_SKEW:
        fprintf(f, "%.17g", c->signature_max_skew);
        break;
    case K_SIGNATURE_MAX_NONCES:
        fprintf(f, "%zu", c->signature_max_nonces);
        break;
    case K_AUTH_MODE:
        put_strv(f, c->auth_modes, c->nauth_modes);
        break;
    case K_WORKSPACE_LIMITS:
        put_strv(f, c->workspace_limits, c->nworkspace_limits);
        break;
    case K_WORKSPACE_OPERATORS:
        put_strv(f, c->workspace_operators, c->nworkspace_operators);
        break;
    case K_UPSTREAM_WORKSPACE_CLAIM:
        s = c->upstream_workspace_claim;
        break;
    /* the authorise contract */
    case K_AUTHZ_OVERRIDE:
        put_strv(f, c->authz_overrides, c->nauthz_overrides);
        break;
    case K_AUTHZ_CACHE_SIZE:
        fprintf(f, "%zu", c->authz_cache_size);
        break;
    case K_AUTHZ_CACHE_TTL_MAX:
        fprintf(f, "%.17g", c->authz_cache_ttl_max);
        break;
    case K_AUTHZ_POLICY_URL:
        s = c->authz_policy_url;
        break;
    case K_AUTHZ_POLICY_TIMEOUT:
        fprintf(f, "%.17g", c->authz_policy_timeout);
        break;
    case K_AUTHZ_POLICY_CONCURRENCY:
        fprintf(f, "%zu", c->authz_policy_concurrency);
        break;
    case K_AUTHZ_POLICY_QUEUE:
        fprintf(f, "%zu", c->authz_policy_queue);
        break;
    /* the ACL file */
    case K_ACL_FILE:
        s = c->acl_file;
        break;
    /* sluiced's own log */
    case K_LOG_FORMAT:
        s = c->log_format == SL__LOG_JSON ? "json" : "text";
        break;
    case K_LOG_LEVEL:
        s = sl__log_level_name(c->log_level);
        break;
    case K_LOG_FILE:
        s = c->log_file;
        break;
    case K_ACCESS_LOG:
        s = c->access_log ? "true" : "false";
        break;
    /* metrics */
    case K_METRICS_TOP_CHANNELS:
        fprintf(f, "%zu", c->metrics_top_channels);
        break;
    case K_METRICS_CHANNELS:
        put_strv(f, c->metrics_channels, c->nmetrics_channels);
        break;
    default:
        for (size_t i = 0; i < sl__config_nws_counts; i++) {
            const char *field = (const char *)&c->ws + sl__config_ws_counts[i].off;
            if (!strcmp(key, sl__config_ws_counts[i].key))
                fprintf(f, "%zu",
                        sl__config_ws_counts[i].is_unsigned ? *(const unsigned *)(const void *)field
                                                            : *(const size_t *)(const void *)field);
        }
        for (size_t i = 0; i < sl__config_nws_times; i++)
            if (!strcmp(key, sl__config_ws_times[i].key))
                fprintf(f, "%.17g",
                        *(const double *)(const void *)((const char *)&c->ws +
                                                        sl__config_ws_times[i].off));
        break;
    }
    if (s)
        fputs(s, f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
