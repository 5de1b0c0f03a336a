/* The setting of the top-level keys' values: sl__config_set, the one setter that the config file,
 * the command line (sl__config_load) and the tests share, driven by the key table
 * (config_keys.c). Each key owns its storage, and a setting replaces only its own key's value (or
 * adds to it, for the repeatable ones), in any order, and nothing at all on error. No I/O. */
#include "server/config.h"
#include "server/config_internal.h"

#include "net/tls.h"
#include "security/workspace.h"
#include "store/redis_conn.h"
#include "server/log.h"

#include <sluice/certauth.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Keeps st's message and gives it another code. */
static int status_recode(sl_status *st, int code)
{
    if (st != NULL)
        st->code = code;
    return code;
}

static int set_ws(sl__wss_limits *w, const char *key, const char *v, sl_status *st)
{
    for (size_t i = 0; i < sl__config_nws_counts; i++) {
        if (strcmp(key, sl__config_ws_counts[i].key))
            continue;
        unsigned long long u;
        if (sl__config_parse_uint(v, sl__config_ws_counts[i].max, &u) < 0 || u == 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be 1..%llu", key,
                                 sl__config_ws_counts[i].max);
        char *field = (char *)w + sl__config_ws_counts[i].off;
        if (sl__config_ws_counts[i].is_unsigned)
            *(unsigned *)(void *)field = (unsigned)u;
        else
            *(size_t *)(void *)field = (size_t)u;
        return SL_OK;
    }
    for (size_t i = 0; i < sl__config_nws_times; i++) {
        if (strcmp(key, sl__config_ws_times[i].key))
            continue;
        double d;
        if (sl__config_parse_seconds(v, &d) < 0 || d < sl__config_ws_times[i].min ||
            d > sl__config_ws_times[i].max)
            return sl_status_set(st, SL_ECONFIG, "%s must be %g..%g seconds", key,
                                 sl__config_ws_times[i].min, sl__config_ws_times[i].max);
        *(double *)(void *)((char *)w + sl__config_ws_times[i].off) = d;
        return SL_OK;
    }
    return sl_status_set(st, SL_ECONFIG, "unknown option '%.64s'", key);
}

/* Replaces *slot by a copy of v; on failure *slot is unchanged. */
static int set_str(char **slot, const char *v, sl_status *st)
{
    char *copy = strdup(v);
    if (copy == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    free(*slot);
    *slot = copy;
    return SL_OK;
}

/* The JWT key with this kid (NULL: the default key), or NULL. */
sl__cfg_key *sl__config_find_key(sl__config *c, const char *kid)
{
    for (size_t i = 0; i < c->nkeys; i++) {
        const char *k = c->keys[i].kid;
        if ((kid == NULL && k == NULL) || (kid && k && !strcmp(kid, k)))
            return &c->keys[i];
    }
    return NULL;
}

/* jwt_secret_file (kid NULL) and jwt_key KID:FILE: a key is replaced by a later setting of the same
 * kid, so a flag overrides the file without adding a second key. */
static int set_jwt_key(sl__config *c, const char *kid, size_t kidlen, const char *file,
                       sl_status *st)
{
    char *k = kid ? strndup(kid, kidlen) : NULL, *f = strdup(file);
    if ((kid && k == NULL) || f == NULL) {
        free(k);
        free(f);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    sl__cfg_key *old = sl__config_find_key(c, k);
    if (old) {
        free(k);
        free(old->secret_file);
        old->secret_file = f;
        return SL_OK;
    }
    sl__cfg_key *nk = realloc(c->keys, (c->nkeys + 1) * sizeof *nk);
    if (nk == NULL) {
        free(k);
        free(f);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    c->keys = nk;
    nk[c->nkeys].kid = k;
    nk[c->nkeys].secret_file = f;
    c->nkeys++;
    return SL_OK;
}

/* authenticators = a, b: the whole list is replaced, and only once every item is valid. An empty
 * list restores the default (every configured authenticator). */
static int set_authenticators(sl__config *c, const char *v, sl_status *st)
{
    char **list = NULL;
    size_t n = 0;
    int rc = SL_OK;
    char buf[SL__CONFIG_MAX_LINE];
    if (strlen(v) >= sizeof buf)
        return sl_status_set(st, SL_ECONFIG, "authenticators: too long");
    memcpy(buf, v, strlen(v) + 1);
    for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok && rc == SL_OK;
         tok = strtok_r(NULL, ", \t", &save)) {
        if (strcmp(tok, "apikey") && strcmp(tok, "upstream-jwt") && strcmp(tok, "introspection") &&
            strcmp(tok, "signature") && strcmp(tok, "cert"))
            rc = sl_status_set(st, SL_ECONFIG,
                               "authenticators: unknown '%.32s' (apikey, upstream-jwt, "
                               "introspection, signature, cert)",
                               tok);
        else if (sl__config_push_str(&list, &n, tok) != SL_OK)
            rc = sl_status_set(st, SL_ENOMEM, NULL);
    }
    if (rc != SL_OK) {
        sl__config_free_strv(list, n);
        return rc;
    }
    sl__config_free_strv(c->authenticators, c->nauthenticators);
    c->authenticators = list;
    c->nauthenticators = n;
    return SL_OK;
}

/* auth_mode = PREFIX=MODE: one mode per path prefix (a second setting of a prefix replaces it). */
static int set_auth_mode(sl__config *c, const char *v, sl_status *st)
{
    const char *eq = strchr(v, '=');
    size_t plen = eq ? (size_t)(eq - v) : 0;
    if (eq == NULL || plen == 0 || v[0] != '/' || plen > 256 || memchr(v, ' ', plen) ||
        memchr(v, '?', plen) || sl_authn_mode_parse(eq + 1) < 0)
        return sl_status_set(st, SL_ECONFIG,
                             "auth_mode must be PREFIX=MODE, PREFIX a path like /channels and "
                             "MODE any, none, bearer, signed or cert (joined with +)");
    for (size_t i = 0; i < c->nauth_modes; i++)
        if (!strncmp(c->auth_modes[i], v, plen + 1)) {
            char *d = strdup(v);
            if (d == NULL)
                return sl_status_set(st, SL_ENOMEM, NULL);
            free(c->auth_modes[i]);
            c->auth_modes[i] = d;
            return SL_OK;
        }
    if (sl__config_push_str(&c->auth_modes, &c->nauth_modes, v) != SL_OK)
        return sl_status_set(st, SL_ENOMEM, NULL);
    return SL_OK;
}

/* authz_override = PATTERN=MODE: channels matching PATTERN are decided under MODE, below a
 * channel's own security setting (a second setting of a pattern replaces it). */
static int set_authz_override(sl__config *c, const char *v, sl_status *st)
{
    const char *eq = strrchr(v, '=');
    size_t plen = eq ? (size_t)(eq - v) : 0;
    int m = eq ? (int)sl_mode_parse(eq + 1) : -1;
    char pat[SL_CHANNEL_ID_MAX + 1];
    if (eq == NULL || plen == 0 || plen >= sizeof pat || m <= (int)SL_MODE_INHERIT)
        return sl_status_set(st, SL_ECONFIG,
                             "authz_override must be PATTERN=MODE, MODE open, acl, token or "
                             "policy");
    memcpy(pat, v, plen);
    pat[plen] = '\0';
    if (!sl_pattern_valid(pat, plen))
        return sl_status_set(st, SL_ECONFIG, "authz_override: '%s' is not a channel pattern", pat);
    for (size_t i = 0; i < c->nauthz_overrides; i++)
        if (!strncmp(c->authz_overrides[i], v, plen + 1)) {
            char *d = strdup(v);
            if (d == NULL)
                return sl_status_set(st, SL_ENOMEM, NULL);
            free(c->authz_overrides[i]);
            c->authz_overrides[i] = d;
            return SL_OK;
        }
    if (sl__config_push_str(&c->authz_overrides, &c->nauthz_overrides, v) != SL_OK)
        return sl_status_set(st, SL_ENOMEM, NULL);
    return SL_OK;
}

/* Each case validates first and then changes its own fields only. */
int sl__config_set(sl__config *c, const char *key, const char *v, sl_status *st)
{
    unsigned long long u;
    double d;
    int b, id = sl__config_key_index(key);
    switch (id) {
    case K_LISTEN: { /* adds a listener; the first one's address is also host and port */
        sl__cfg_listener l;
        int rc = sl__config_parse_listener(&l, v, st);
        if (rc != SL_OK) /* the message stays; a malformed value is a configuration error */
            return status_recode(st, rc == SL_ENOMEM ? rc : SL_ECONFIG);
        sl__cfg_listener *nl = realloc(c->listeners, (c->nlisteners + 1) * sizeof *nl);
        if (nl == NULL) {
            free(l.text);
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        c->listeners = nl;
        nl[c->nlisteners++] = l;
        if (c->nlisteners == 1) {
            memcpy(c->host, l.host, sizeof c->host);
            c->port = l.port;
        }
        return SL_OK;
    }
    case K_AUTHZ: {
        sl_mode m = sl_mode_parse(v);
        if (m != SL_MODE_TOKEN && m != SL_MODE_ACL && m != SL_MODE_OPEN && m != SL_MODE_POLICY)
            return sl_status_set(st, SL_ECONFIG, "authz must be token, acl, open or policy");
        c->authz = m;
        return SL_OK;
    }
    case K_ADMIN:
        if (!sl_principal_valid(v, strlen(v)))
            return sl_status_set(st, SL_ECONFIG, "admin must be a principal id");
        for (size_t i = 0; i < c->nadmins; i++)
            if (!strcmp(c->admins[i], v))
                return SL_OK; /* already one */
        if (sl__config_push_str(&c->admins, &c->nadmins, v) != SL_OK)
            return sl_status_set(st, SL_ENOMEM, NULL);
        return SL_OK;
    case K_JWT_SECRET_FILE:
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "jwt_secret_file must not be empty");
        return set_jwt_key(c, NULL, 0, v, st);
    case K_JWT_KEY: {
        /* KID:FILE adds a named key for rotation (the same KID again replaces its file). */
        const char *colon = strchr(v, ':');
        if (colon == NULL || colon == v || colon[1] == '\0')
            return sl_status_set(st, SL_ECONFIG, "jwt_key must be KID:FILE");
        return set_jwt_key(c, v, (size_t)(colon - v), colon + 1, st);
    }
    case K_JWT_AUDIENCE:
        return set_str(&c->jwt_audience, v, st);
    case K_JWT_ISSUER:
        return set_str(&c->jwt_issuer, v, st);
    case K_JWT_LEEWAY:
        if (sl__config_parse_seconds(v, &d) < 0 || d > 60)
            return sl_status_set(st, SL_ECONFIG, "jwt_leeway must be between 0 and 60 seconds");
        c->jwt_leeway = d;
        return SL_OK;
    case K_AUDIT_LOG:
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "audit_log must not be empty");
        return set_str(&c->audit_log, v, st);
    case K_REVOCATION:
        if (strncasecmp(v, "redis://", 8) == 0 || strncasecmp(v, "rediss://", 9) == 0) {
            sl__redis_addr a;
            sl_status why = {0};
            if (sl__redis_addr_parse(v, "revocation", &a, &why) != SL_OK)
                return sl_status_set(st, SL_ECONFIG, "%s", why.message);
            sl__redis_addr_clear(&a);
        } else if (strcmp(v, "embedded") && strcmp(v, "memory") && strcmp(v, "off")) {
            return sl_status_set(st, SL_ECONFIG,
                                 "revocation must be embedded, memory, off or "
                                 "redis://[user:password@]host[:port][/db]");
        }
        /* it may hold a password */
        sl__config_wipe_free(c->revocation);
        c->revocation = NULL;
        return set_str(&c->revocation, v, st);
    case K_REVOCATION_PREFIX:
        /* '@' separates the prefix from the db in pub/sub channel names (sl__redis_scope). */
        if (*v == '\0' || strlen(v) > 64 || strpbrk(v, " \t\r\n@"))
            return sl_status_set(st, SL_ECONFIG,
                                 "revocation_prefix must be 1..64 bytes, no spaces and no '@' "
                                 "(it separates the db in the watch channel's name)");
        return set_str(&c->revocation_prefix, v, st);
    case K_REVOCATION_MAX_TTL:
        if (sl__config_parse_seconds(v, &d) < 0 || d < 1)
            return sl_status_set(st, SL_ECONFIG, "revocation_max_ttl must be at least 1 second");
        c->revocation_max_ttl = d;
        return SL_OK;
    case K_APIKEY_STORE:
    case K_UPSTREAM_JWT_ISSUER:
    case K_UPSTREAM_JWT_AUDIENCE:
    case K_INTROSPECTION_URL:
    case K_INTROSPECTION_CLIENT_ID:
    case K_INTROSPECTION_CLIENT_SECRET_FILE: {
        char **slot = id == K_APIKEY_STORE              ? &c->apikey_store
                      : id == K_UPSTREAM_JWT_ISSUER     ? &c->upstream_issuer
                      : id == K_UPSTREAM_JWT_AUDIENCE   ? &c->upstream_audience
                      : id == K_INTROSPECTION_URL       ? &c->introspection_url
                      : id == K_INTROSPECTION_CLIENT_ID ? &c->introspection_client_id
                                                        : &c->introspection_secret_file;
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "%s must not be empty", key);
        if (id == K_INTROSPECTION_URL && strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            return sl_status_set(st, SL_ECONFIG, "introspection_url must be an http(s) URL");
        return set_str(slot, v, st);
    }
    case K_UPSTREAM_JWT_KEY: {
        const char *colon = strchr(v, ':');
        size_t n = colon ? (size_t)(colon - v) : 0;
        static const char *const algs[] = {"hs256", "es256", "eddsa", "es384",
                                           "rs256", "rs384", "rs512", "ps256"};
        int known = 0;
        for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
            known |= n == 5 && !strncmp(v, algs[i], 5);
        if (!colon || colon[1] == '\0' || !known)
            return sl_status_set(st, SL_ECONFIG,
                                 "upstream_jwt_key must be "
                                 "hs256|es256|es384|eddsa|rs256|rs384|rs512|ps256:FILE");
        char *alg = strndup(v, n), *file = strdup(colon + 1);
        if (alg == NULL || file == NULL) {
            free(alg);
            free(file);
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        free(c->upstream_key_alg);
        free(c->upstream_key_file);
        c->upstream_key_alg = alg;
        c->upstream_key_file = file;
        return SL_OK;
    }
    case K_INTROSPECTION_CACHE_TTL:
        if (sl__config_parse_seconds(v, &d) < 0 || d > 300)
            return sl_status_set(st, SL_ECONFIG, "introspection_cache_ttl must be 0..300 seconds");
        c->introspection_cache_ttl = d;
        return SL_OK;
    case K_AUTHENTICATORS:
        return set_authenticators(c, v, st);
    case K_BROKER_PREFIX: {
        size_t n = strlen(v);
        if (n >= sizeof c->broker_prefix || (n && (v[0] != '/' || v[n - 1] == '/')) ||
            strpbrk(v, "?# \t%"))
            return sl_status_set(st, SL_ECONFIG,
                                 "broker_prefix must be like /auth (no trailing /)");
        memcpy(c->broker_prefix, v, n + 1);
        return SL_OK;
    }
    case K_BROKER_DEFAULT_TTL:
    case K_BROKER_MAX_TTL:
        if (sl__config_parse_seconds(v, &d) < 0 || d < 1 || d > 31536000)
            return sl_status_set(st, SL_ECONFIG, "%s must be 1..31536000 seconds", key);
        *(id == K_BROKER_DEFAULT_TTL ? &c->broker_default_ttl : &c->broker_max_ttl) = d;
        return SL_OK;
    case K_BROKER_ALLOW_ALL_ROLE: {
        sl_role r = sl_role_parse(v);
        if (r == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG,
                                 "broker_allow_all_role must be read, write or admin");
        c->broker_allow_all_role = r;
        return SL_OK;
    }
    case K_INSECURE:
    case K_JWT_EXP_OPTIONAL:
    case K_BROKER:
    case K_BROKER_ALLOW_ALL:
    case K_LOG_REQUESTS:
        if (sl__config_parse_bool(v, &b) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be true or false", key);
        *(id == K_INSECURE           ? &c->insecure
          : id == K_JWT_EXP_OPTIONAL ? &c->jwt_exp_optional
          : id == K_BROKER           ? &c->broker
          : id == K_BROKER_ALLOW_ALL ? &c->broker_allow_all
                                     : &c->log_requests) = b;
        return SL_OK;
    case K_MAX_BODY:
        if (sl__config_parse_uint(v, 1ULL << 30, &u) < 0 || u == 0)
            return sl_status_set(st, SL_ECONFIG, "max_body must be 1..1073741824 bytes");
        c->limits.max_body = (size_t)u;
        return SL_OK;
    case K_ENGINE:
        if (strncmp(v, "redis://", 8) == 0) {
            sl__redis_url url;
            sl_status why = {0};
            if (sl__redis_url_parse(v, &url, &why) != SL_OK)
                return sl_status_set(st, SL_ECONFIG, "engine: %s", why.message);
            sl__redis_url_clear(&url);
            strcpy(c->engine, "redis");
            sl__config_wipe_free(c->engine_url);
            c->engine_url = NULL;
            return set_str(&c->engine_url, v, st);
        }
        if (strcmp(v, "lmdb") && strcmp(v, "memory"))
            return sl_status_set(st, SL_ECONFIG,
                                 "engine must be lmdb, memory or redis://HOST:PORT[/DB][,...]");
        strcpy(c->engine, v);
        return SL_OK;
    case K_ENGINE_PREFIX:
        if (!sl__redis_prefix_valid(v))
            return sl_status_set(st, SL_ECONFIG,
                                 "engine_prefix must be 1..64 letters, digits, '_', '-' or '.'");
        return set_str(&c->engine_prefix, v, st);
    case K_DATA_DIR:
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "data_dir must not be empty");
        return set_str(&c->data_dir, v, st);
    case K_DURABILITY:
        if (strcmp(v, "sync") && strcmp(v, "batch") && strcmp(v, "none"))
            return sl_status_set(st, SL_ECONFIG, "durability must be sync, batch or none");
        strcpy(c->durability, v);
        return SL_OK;
    case K_DURABILITY_BATCH_MS:
        if (sl__config_parse_uint(v, 60000, &u) < 0 || u == 0)
            return sl_status_set(st, SL_ECONFIG, "durability_batch_ms must be 1..60000");
        c->durability_batch_ms = (unsigned)u;
        return SL_OK;
    case K_READ_MAX_BYTES:
        if (sl__config_parse_uint(v, 1ULL << 30, &u) < 0 || u == 0)
            return sl_status_set(st, SL_ECONFIG, "read_max_bytes must be 1..1073741824 bytes");
        c->read_max_bytes = (size_t)u;
        return SL_OK;
    case K_MAX_HEADER:
        if (sl__config_parse_uint(v, 1ULL << 20, &u) < 0 || u < 256)
            return sl_status_set(st, SL_ECONFIG, "max_header must be 256..1048576 bytes");
        c->limits.max_header = (size_t)u;
        return SL_OK;
    case K_REQUEST_TIMEOUT:
    case K_IDLE_TIMEOUT: {
        /* Kept in whole milliseconds: a value that rounds to 0 ms would mean "no timeout". */
        double max = id == K_REQUEST_TIMEOUT ? 3600 : 86400;
        if (sl__config_parse_seconds(v, &d) < 0 || d < 0.001 || d > max)
            return sl_status_set(st, SL_ECONFIG, "%s must be 0.001..%g seconds", key, max);
        *(id == K_REQUEST_TIMEOUT ? &c->limits.request_timeout_ms : &c->limits.idle_timeout_ms) =
            (unsigned)llround(d * 1000);
        return SL_OK;
    }
    case K_MAX_CONNECTIONS:
        if (sl__config_parse_uint(v, 1000000, &u) < 0 || u == 0)
            return sl_status_set(st, SL_ECONFIG, "max_connections must be 1..1000000");
        c->limits.max_connections = (size_t)u;
        return SL_OK;
    case K_MAX_CONNECTIONS_PER_ADDRESS:
    case K_MAX_PENDING_PER_ADDRESS:
        if (sl__config_parse_uint(v, 1000000, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be 0..1000000", key);
        *(id == K_MAX_CONNECTIONS_PER_ADDRESS ? &c->limits.max_connections_per_address
                                              : &c->limits.max_pending_per_address) = (size_t)u;
        return SL_OK;
    case K_BUSY_HEADER_TIMEOUT:
        /* Whole milliseconds, like the other timeouts; 0 turns the shortening off. */
        if (sl__config_parse_seconds(v, &d) < 0 || d < 0 || d > 3600 || (d > 0 && d < 0.001))
            return sl_status_set(st, SL_ECONFIG, "busy_header_timeout must be 0..3600 seconds");
        c->limits.busy_header_timeout_ms = (unsigned)llround(d * 1000);
        return SL_OK;
    /* JWKS for upstream JWTs */
    case K_UPSTREAM_JWKS_URL:
    case K_UPSTREAM_OIDC_ISSUER:
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            return sl_status_set(st, SL_ECONFIG, "%s must be an http(s) URL", key);
        return set_str(id == K_UPSTREAM_JWKS_URL ? &c->upstream_jwks_url : &c->upstream_oidc_issuer,
                       v, st);
    case K_JWKS_REFRESH_MIN:
    case K_JWKS_REFRESH_MAX:
    case K_JWKS_UNKNOWN_KID_INTERVAL:
    case K_JWKS_MAX_STALE: {
        double lo = id == K_JWKS_MAX_STALE ? 0 : id == K_JWKS_UNKNOWN_KID_INTERVAL ? 0.1 : 1;
        double hi = id == K_JWKS_MAX_STALE ? 604800 : 86400;
        if (sl__config_parse_seconds(v, &d) < 0 || d < lo || d > hi)
            return sl_status_set(st, SL_ECONFIG, "%s must be %g..%g seconds", key, lo, hi);
        *(id == K_JWKS_REFRESH_MIN            ? &c->jwks_refresh_min
          : id == K_JWKS_REFRESH_MAX          ? &c->jwks_refresh_max
          : id == K_JWKS_UNKNOWN_KID_INTERVAL ? &c->jwks_unknown_kid_interval
                                              : &c->jwks_max_stale) = d;
        return SL_OK;
    }
    /* signed requests and route modes */
    case K_SIGNATURE_KEYS:
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "signature_keys must name a file");
        return set_str(&c->signature_keys, v, st);
    case K_SIGNATURE_MAX_SKEW:
        if (sl__config_parse_seconds(v, &d) < 0 || d < 1 || d > 86400)
            return sl_status_set(st, SL_ECONFIG, "signature_max_skew must be 1..86400 seconds");
        c->signature_max_skew = d;
        return SL_OK;
    case K_SIGNATURE_MAX_NONCES:
        if (sl__config_parse_uint(v, 100000000, &u) < 0 || u < 16)
            return sl_status_set(st, SL_ECONFIG, "signature_max_nonces must be 16..100000000");
        c->signature_max_nonces = (size_t)u;
        return SL_OK;
    case K_AUTH_MODE:
        return set_auth_mode(c, v, st);
    case K_TLS_CERT:
    case K_TLS_KEY:
    case K_TLS_CLIENT_CA:
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "%s must name a file", key);
        return set_str(id == K_TLS_CERT  ? &c->tls_cert
                       : id == K_TLS_KEY ? &c->tls_key
                                         : &c->tls_client_ca,
                       v, st);
    case K_TLS_CLIENT_PRINCIPAL: {
        int p = sl_cert_principal_parse(v);
        if (p < 0)
            return sl_status_set(st, SL_ECONFIG,
                                 "tls_client_principal must be cn, dns, uri or email");
        c->tls_client_principal = p;
        return SL_OK;
    }
    case K_WORKSPACE_LIMITS:
    case K_WORKSPACE_OPERATORS: { /* checked now, applied by sluiced */
        sl__workspaces *w = NULL;
        int rc = sl__workspaces_new(&w);
        if (rc == SL_OK)
            rc = id == K_WORKSPACE_LIMITS ? sl__workspaces_parse_limits(w, v, st)
                                          : sl__workspaces_parse_operators(w, v, st);
        sl__workspaces_free(w);
        if (rc != SL_OK) { /* st->message is both the format's argument and its output: copy */
            char why[sizeof st->message];
            snprintf(why, sizeof why, "%s", st->message);
            return sl_status_set(st, SL_ECONFIG, "%s", why);
        }
        if (id == K_WORKSPACE_LIMITS)
            return sl__config_push_str(&c->workspace_limits, &c->nworkspace_limits, v) < 0
                       ? sl_status_set(st, SL_ENOMEM, NULL)
                       : SL_OK;
        return sl__config_push_str(&c->workspace_operators, &c->nworkspace_operators, v) < 0
                   ? sl_status_set(st, SL_ENOMEM, NULL)
                   : SL_OK;
    }
    case K_UPSTREAM_WORKSPACE_CLAIM:
        if (*v == '\0' || strlen(v) > 128)
            return sl_status_set(st, SL_ECONFIG, "upstream_workspace_claim must be 1..128 bytes");
        return set_str(&c->upstream_workspace_claim, v, st);
    /* the authorise contract */
    case K_AUTHZ_OVERRIDE:
        return set_authz_override(c, v, st);
    case K_AUTHZ_CACHE_SIZE:
        if (sl__config_parse_uint(v, 100000000, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "authz_cache_size must be 0..100000000");
        c->authz_cache_size = (size_t)u;
        return SL_OK;
    case K_AUTHZ_CACHE_TTL_MAX:
        if (sl__config_parse_seconds(v, &d) < 0 || d > 86400)
            return sl_status_set(st, SL_ECONFIG, "authz_cache_ttl_max must be 0..86400 seconds");
        c->authz_cache_ttl_max = d;
        return SL_OK;
    case K_AUTHZ_POLICY_URL:
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            return sl_status_set(st, SL_ECONFIG, "authz_policy_url must be an http(s) URL");
        return set_str(&c->authz_policy_url, v, st);
    case K_AUTHZ_POLICY_TIMEOUT:
        if (sl__config_parse_seconds(v, &d) < 0 || d < 0.001 || d > 300)
            return sl_status_set(st, SL_ECONFIG, "authz_policy_timeout must be 0.001..300 seconds");
        c->authz_policy_timeout = d;
        return SL_OK;
    case K_AUTHZ_POLICY_CONCURRENCY:
    case K_AUTHZ_POLICY_QUEUE:
        if (sl__config_parse_uint(v, 1000000, &u) < 0 || u < 1)
            return sl_status_set(st, SL_ECONFIG, "%s must be 1..1000000", key);
        *(id == K_AUTHZ_POLICY_QUEUE ? &c->authz_policy_queue : &c->authz_policy_concurrency) =
            (size_t)u;
        return SL_OK;
    /* the ACL file */
    case K_ACL_FILE:
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "acl_file must name a file");
        return set_str(&c->acl_file, v, st);
    /* sluiced's own log */
    case K_LOG_FORMAT:
        if (sl__log_format_parse(v) < 0)
            return sl_status_set(st, SL_ECONFIG, "log_format must be text or json");
        c->log_format = sl__log_format_parse(v);
        return SL_OK;
    case K_LOG_LEVEL:
        if (sl__log_level_parse(v) < 0)
            return sl_status_set(st, SL_ECONFIG, "log_level must be debug, info, warn or error");
        c->log_level = sl__log_level_parse(v);
        return SL_OK;
    case K_LOG_FILE:
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "log_file must not be empty");
        return set_str(&c->log_file, v, st);
    case K_ACCESS_LOG:
        if (sl__config_parse_bool(v, &b) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be true or false", key);
        c->access_log = b;
        return SL_OK;
    /* metrics */
    case K_METRICS_TOP_CHANNELS:
        if (sl__config_parse_uint(v, 1000, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "metrics_top_channels must be 0..1000");
        c->metrics_top_channels = (size_t)u;
        return SL_OK;
    case K_METRICS_CHANNELS:
        if (!sl_pattern_valid(v, strlen(v)))
            return sl_status_set(st, SL_ECONFIG, "metrics_channels: invalid channel pattern");
        return sl__config_push_str(&c->metrics_channels, &c->nmetrics_channels, v) < 0
                   ? sl_status_set(st, SL_ENOMEM, NULL)
                   : SL_OK;
    default:
        if (id >= K_WS_FIRST)
            return set_ws(&c->ws, key, v, st);
        return sl_status_set(st, SL_ECONFIG, "unknown option '%.64s'", key);
    }
}
