/* sluiced's configuration struct (config.h): its defaults (sl__config_init) and its release
 * (sl__config_free, secrets wiped), and the value syntax the other pieces share: unsigned
 * integers, seconds, booleans and string lists (config_internal.h). The keys are in config_keys.c,
 * their setter in config_set.c, the read-back in config_format.c, the file parser in
 * config_parse.c and the whole pipeline (command line, files, environment) in config_load.c. */
#include "server/config.h"
#include "server/config_internal.h"

#include "server/log.h"

#include <sluice/introspect.h>
#include <sluice/jwks.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sl__config_init(sl__config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->host, "127.0.0.1");
    c->port = 8080;
    c->jwt_leeway = 30;
    c->introspection_cache_ttl = SL_INTROSPECT_DEFAULT_TTL; /* 0 is a setting: no caching */
    /* JWKS for upstream JWTs: the defaults (jwks_max_stale = 0 is a setting) */
    c->jwks_refresh_min = SL_JWKS_DEFAULT_REFRESH_MIN;
    c->jwks_refresh_max = SL_JWKS_DEFAULT_REFRESH_MAX;
    c->jwks_unknown_kid_interval = SL_JWKS_DEFAULT_UNKNOWN_KID_INTERVAL;
    c->jwks_max_stale = SL_JWKS_DEFAULT_MAX_STALE;
    sl_http_limits_init(&c->limits);
    sl__wss_limits_init(&c->ws);
    c->read_max_bytes = (size_t)4 << 20;
    strcpy(c->engine, "lmdb");
    strcpy(c->durability, "sync");
    c->durability_batch_ms = 1000;
    c->signature_max_skew = 300;
    c->signature_max_nonces = 100000;
    /* the authorise contract */
    c->authz_cache_size = 10000;
    c->authz_cache_ttl_max = 60;
    c->authz_policy_timeout = 2;
    c->authz_policy_concurrency = 16;
    c->authz_policy_queue = 1024;
    c->log_level = SL__LOG_INFO;
    c->metrics_top_channels = 20;
}

void sl__config_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sl__config_wipe_free(char *secret)
{
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

void sl__config_free(sl__config *c)
{
    sl__config_free_strv(c->admins, c->nadmins);
    for (size_t i = 0; i < c->nkeys; i++) {
        free(c->keys[i].kid);
        free(c->keys[i].secret_file);
    }
    free(c->keys);
    free(c->jwt_audience);
    free(c->jwt_issuer);
    free(c->audit_log);
    free(c->data_dir);
    sl__config_wipe_free(c->engine_url);
    free(c->engine_prefix);
    free(c->apikey_store);
    free(c->upstream_key_alg);
    free(c->upstream_key_file);
    free(c->upstream_issuer);
    free(c->upstream_audience);
    free(c->introspection_url);
    free(c->upstream_jwks_url);
    free(c->upstream_oidc_issuer);
    free(c->introspection_client_id);
    free(c->introspection_secret_file);
    sl__config_free_strv(c->authenticators, c->nauthenticators);
    sl__config_wipe_free(c->revocation); /* redis://:password@... */
    free(c->revocation_prefix);
    free(c->signature_keys);
    sl__config_free_strv(c->auth_modes, c->nauth_modes);
    sl__config_free_strv(c->workspace_limits, c->nworkspace_limits);
    sl__config_free_strv(c->workspace_operators, c->nworkspace_operators);
    free(c->upstream_workspace_claim);
    sl__config_free_strv(c->authz_overrides, c->nauthz_overrides);
    free(c->authz_policy_url);
    free(c->acl_file);
    free(c->log_file);
    sl__config_free_strv(c->metrics_channels, c->nmetrics_channels);
    sl__config_wipe_free(c->jwt_env_secret);
    for (size_t i = 0; i < c->nlisteners; i++)
        free(c->listeners[i].text);
    free(c->listeners);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_client_ca);
    for (size_t i = 0; i < c->nchannels; i++) {
        sl__cfg_channel *ch = &c->channels[i];
        free(ch->id);
        free(ch->name);
        free(ch->description);
        free(ch->dead_letter);
    }
    free(c->channels);
    for (size_t i = 0; i < c->ngrants; i++) {
        free(c->grants[i].principal);
        sl__config_free_strv(c->grants[i].patterns, c->grants[i].npatterns);
        sl__config_free_strv(c->grants[i].deny, c->grants[i].ndeny);
    }
    free(c->grants);
    for (size_t i = 0; i < c->ninvokes; i++) {
        free(c->invokes[i].principal);
        sl__config_free_strv(c->invokes[i].allow, c->invokes[i].nallow);
        sl__config_free_strv(c->invokes[i].deny, c->invokes[i].ndeny);
    }
    free(c->invokes);
    sl__cfg_named *lists[] = {c->roles, c->principals, c->delegates};
    size_t counts[] = {c->nroles, c->nprincipals, c->ndelegates};
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            free(lists[l][i].name);
            sl__config_free_strv(lists[l][i].items, lists[l][i].nitems);
            sl__config_free_strv(lists[l][i].deny, lists[l][i].ndeny);
        }
        free(lists[l]);
    }
    memset(c, 0, sizeof *c);
}

int sl__config_push_str(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return SL_ENOMEM;
    *v = nv;
    if ((nv[*n] = strdup(s)) == NULL)
        return SL_ENOMEM;
    (*n)++;
    return SL_OK;
}

int sl__config_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

int sl__config_parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

int sl__config_parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1") || !strcmp(s, "on"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0") || !strcmp(s, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}
