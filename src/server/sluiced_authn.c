/* sluiced's callers: the sluice JWT keyring (secret files, SLUICE_JWT_SECRET), the authenticator
 * chain after sluice tokens in the configured order (API keys, upstream JWTs from a key file or an
 * identity provider's JWKS, introspection, signed requests with their replay store, client
 * certificates) and the token broker with its roles, assignments and delegations. Secret files
 * are read here, bounded, and wiped after use; no secret reaches a log. Part of sluiced only
 * (server/sluiced.h). */
#include "server/sluiced.h"

#include <sluice/certauth.h>
#include <sluice/upstream.h>

#include "security/secretfile.h"
#include "store/redis_engine.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a secret file (security/secretfile.h: trailing newlines are not part of it; a file over
 * SL__SECRET_FILE_MAX is refused). *out is NUL-terminated and owned by the caller, who wipes it.
 * The secret never reaches a log. */
static int read_secret(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return SL_EIO;
    char *buf = malloc(SL__SECRET_FILE_MAX + 2);
    size_t n = buf ? fread(buf, 1, SL__SECRET_FILE_MAX + 1, f) : 0; /* one more: too large? */
    int failed = buf == NULL || ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return buf ? SL_EIO : SL_ENOMEM;
    }
    int rc = sl__secret_file_parse(buf, n, len);
    if (rc != SL_OK) {
        explicit_bzero(buf, n);
        free(buf);
        return rc;
    }
    explicit_bzero(buf + *len, n - *len);
    buf[*len] = '\0';
    *out = buf;
    return SL_OK;
}

int sl__sluiced_build_keys(server *s, const sl__config *cfg, sl_status *st)
{
    const char *env = cfg->jwt_env_secret;
    int have_default = 0;
    for (size_t i = 0; i < cfg->nkeys; i++)
        have_default |= cfg->keys[i].kid == NULL;
    if (cfg->nkeys == 0 && (env == NULL || *env == '\0'))
        return SL_OK;
    int rc = sl_jwt_keyring_new(&s->keys);
    if (rc != SL_OK)
        return sl_status_set(st, rc, NULL);
    if (!have_default && env && *env) {
        rc = sl_jwt_keyring_add_hs256(s->keys, NULL, env, strlen(env));
        if (rc == SL_EWEAKKEY)
            return sl_status_set(st, rc, "SLUICE_JWT_SECRET is shorter than %d bytes",
                                 SL_JWT_SECRET_MIN);
        if (rc != SL_OK)
            return sl_status_set(st, rc, NULL);
    }
    for (size_t i = 0; i < cfg->nkeys; i++) {
        char *secret;
        size_t len;
        rc = read_secret(cfg->keys[i].secret_file, &secret, &len);
        if (rc != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "cannot read secret file %s%s",
                                 cfg->keys[i].secret_file,
                                 rc == SL_ETOOBIG ? ": larger than 65536 bytes" : "");
        rc = sl_jwt_keyring_add_hs256(s->keys, cfg->keys[i].kid, secret, len);
        memset(secret, 0, len);
        free(secret);
        if (rc == SL_EWEAKKEY)
            return sl_status_set(st, rc, "secret in %s is shorter than %d bytes",
                                 cfg->keys[i].secret_file, SL_JWT_SECRET_MIN);
        if (rc != SL_OK)
            return sl_status_set(st, rc, "cannot add key from %s: %s", cfg->keys[i].secret_file,
                                 sl_strerror(rc));
    }
    return SL_OK;
}

static int read_file_text(const char *path, char **out, size_t *len)
{
    return read_secret(path, out, len); /* same bounded read; trailing newline irrelevant to PEM */
}

/* The upstream-JWT authenticator on an identity provider's JWKS (docs/JWKS.md): the keys are
 * fetched on the loop from the start, and tokens that arrive before them wait (or get 503). */
static int make_upstream_jwks(server *s, const sl__config *cfg, sl_authenticator **out,
                              sl_status *st)
{
    if (cfg->upstream_key_file != NULL)
        return sl_status_set(st, SL_ECONFIG,
                             "upstream_jwt_key and upstream_jwks_url / upstream_oidc_issuer "
                             "exclude each other: the keys come from a file or from the provider");
    if (cfg->jwks_refresh_min > cfg->jwks_refresh_max)
        return sl_status_set(st, SL_ECONFIG, "jwks_refresh_min is above jwks_refresh_max");
    sl_jwks_opts o;
    sl_jwks_opts_init(&o);
    o.url = cfg->upstream_jwks_url;
    o.issuer = cfg->upstream_jwks_url ? NULL : cfg->upstream_oidc_issuer; /* discovery */
    o.refresh_min = cfg->jwks_refresh_min;
    o.refresh_max = cfg->jwks_refresh_max;
    o.unknown_kid_interval = cfg->jwks_unknown_kid_interval;
    o.max_stale = cfg->jwks_max_stale > 0 ? cfg->jwks_max_stale : -1; /* -1: none at all */
    int rc = sl_jwks_new(&s->jwks, s->loop, &o, NULL, NULL);
    if (rc != SL_OK)
        return sl_status_set(st, SL_ECONFIG, "%s %s: %s (https, or plain http only to loopback)",
                             o.url ? "upstream_jwks_url" : "upstream_oidc_issuer",
                             o.url ? o.url : o.issuer, sl_strerror(rc));
    sl_jwks_set_log(s->jwks, sl__sluiced_log_line, s->log);
    sl_jwt_verify_opts_init(&s->upstream_opts);
    /* The provider's tokens name it as their issuer: checked unless configured otherwise. */
    s->upstream_opts.issuer =
        cfg->upstream_issuer ? cfg->upstream_issuer : cfg->upstream_oidc_issuer;
    s->upstream_opts.audience = cfg->upstream_audience;
    s->upstream_opts.leeway = cfg->jwt_leeway;
    s->upstream_opts.workspace_claim = cfg->upstream_workspace_claim;
    return sl_upstream_authenticator_new_jwks(s->jwks, &s->upstream_opts, out);
}

/* Builds one named authenticator; SL_ENOENT when it is not configured. */
static int make_authenticator(server *s, const sl__config *cfg, const char *name,
                              sl_authenticator **out, sl_status *st)
{
    int rc;
    if (!strcmp(name, "apikey")) {
        /* A configured key file stays where the keys live (the CLI edits it, the server reloads
         * it); without one, on an authenticated server with the embedded store, the keys live in
         * the data directory. An open server has no use for them. */
        if (cfg->apikey_store == NULL && (sl__sluiced_state_kv(s) == NULL || s->keys == NULL))
            return SL_ENOENT;
        if ((rc = sl_apikey_store_open(&s->apikeys, cfg->apikey_store, st)) != SL_OK)
            return rc;
        if (cfg->apikey_store == NULL &&
            (rc = sl_apikey_store_attach(s->apikeys, sl__sluiced_state_kv(s), st)))
            return rc;
        return sl_apikey_authenticator_new(s->apikeys, out);
    }
    if (!strcmp(name, "upstream-jwt")) {
        if (cfg->upstream_jwks_url != NULL || cfg->upstream_oidc_issuer != NULL)
            return make_upstream_jwks(s, cfg, out, st);
        if (cfg->upstream_key_file == NULL)
            return SL_ENOENT;
        char *text;
        size_t len;
        if (read_file_text(cfg->upstream_key_file, &text, &len) != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "cannot read %s", cfg->upstream_key_file);
        rc = sl_jwt_keyring_new(&s->upstream_keys);
        if (rc == SL_OK && !strcmp(cfg->upstream_key_alg, "hs256")) {
            rc = sl_jwt_keyring_add_hs256(s->upstream_keys, NULL, text, len);
        } else if (rc == SL_OK) { /* "rs256" -> "RS256", "eddsa" -> "EdDSA" */
            char alg[8];
            snprintf(alg, sizeof alg, "%s", cfg->upstream_key_alg);
            for (char *p = alg; *p; p++)
                *p = (char)toupper((unsigned char)*p);
            if (!strcmp(alg, "EDDSA"))
                strcpy(alg, "EdDSA");
            rc = sl_jwt_keyring_add_pem(s->upstream_keys, NULL, alg, text, len);
        }
        memset(text, 0, len);
        free(text);
        if (rc != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "upstream JWT key in %s: %s",
                                 cfg->upstream_key_file, sl_strerror(rc));
        sl_jwt_verify_opts_init(&s->upstream_opts);
        s->upstream_opts.issuer = cfg->upstream_issuer;
        s->upstream_opts.audience = cfg->upstream_audience;
        s->upstream_opts.leeway = cfg->jwt_leeway;
        s->upstream_opts.workspace_claim = cfg->upstream_workspace_claim;
        return sl_upstream_authenticator_new(s->upstream_keys, &s->upstream_opts, out);
    }
    if (!strcmp(name, "signature")) {
        if (cfg->signature_keys == NULL)
            return SL_ENOENT;
        char *text;
        size_t len;
        if (read_file_text(cfg->signature_keys, &text, &len) != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "cannot read %s", cfg->signature_keys);
        sl_status why;
        sl_status_clear(&why);
        rc = sl_httpsig_keyring_new(&s->sigkeys);
        if (rc == SL_OK)
            rc = sl_httpsig_keyring_load(s->sigkeys, text, len, &why);
        explicit_bzero(text, len);
        free(text);
        if (rc != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "signature_keys %s: %s", cfg->signature_keys,
                                 why.message);
        /* Several nodes on one Redis: a nonce used on any of them is used on all. */
        if (s->redis)
            rc =
                sl__nonce_redis_new(&s->nonces, s->loop, &sl__redis_engine_url(s->redis)->shards[0],
                                    cfg->engine_prefix ? cfg->engine_prefix : "sluice", &s->sink);
        else
            rc = sl__nonce_memory_new(cfg->signature_max_nonces, &s->nonces);
        if (rc != SL_OK)
            return sl_status_set(st, rc, "cannot set up the signature replay store");
        sl__logf(s->log, SL__LOG_INFO, NULL,
                 "signed requests: %zu keys, replay window %.0f s, nonces in %s",
                 sl_httpsig_keyring_size(s->sigkeys), cfg->signature_max_skew,
                 s->redis ? "redis" : "memory");
        return sl__httpsig_authenticator_new(s->sigkeys, s->nonces, cfg->signature_max_skew, out);
    }
    if (!strcmp(name, "introspection")) {
        if (cfg->introspection_url == NULL)
            return SL_ENOENT;
        sl_introspect_opts o;
        sl_introspect_opts_init(&o);
        o.url = cfg->introspection_url;
        o.workspace_claim = cfg->upstream_workspace_claim; /* the same claim */
        o.client_id = cfg->introspection_client_id;
        /* 0 means "no caching" here; to sl_introspect it means "the default" */
        o.cache_ttl = cfg->introspection_cache_ttl > 0 ? cfg->introspection_cache_ttl : -1;
        char *secret = NULL;
        size_t len = 0;
        if (cfg->introspection_secret_file &&
            read_secret(cfg->introspection_secret_file, &secret, &len) != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "cannot read %s", cfg->introspection_secret_file);
        o.client_secret = secret;
        rc = sl_introspect_new(&s->introspect, s->loop, &o, NULL, NULL);
        if (secret) {
            memset(secret, 0, len);
            free(secret);
        }
        if (rc != SL_OK)
            return sl_status_set(st, SL_ECONFIG,
                                 "introspection_url %s: %s (plain http only to loopback)",
                                 cfg->introspection_url, sl_strerror(rc));
        sl_introspect_set_log(s->introspect, sl__sluiced_log_line, s->log);
        return sl_introspect_authenticator_new(s->introspect, out);
    }
    if (!strcmp(name, "cert")) { /* mutual TLS: the verified client certificate's holder */
        if (cfg->tls_client_ca == NULL)
            return SL_ENOENT;
        return sl_cert_authenticator_new(cfg->tls_client_principal, out);
    }
    return SL_ENOENT;
}

/* The authenticator chain after sluice tokens, in the configured order (default: every configured
 * one, API keys first). */
int sl__sluiced_setup_authenticators(server *s, const sl__config *cfg, sl_status *st)
{
    static const char *const all[] = {"apikey", "upstream-jwt", "introspection", "signature",
                                      "cert"};
    const char *const *order =
        cfg->nauthenticators ? (const char *const *)cfg->authenticators : all;
    size_t n = cfg->nauthenticators ? cfg->nauthenticators : sizeof all / sizeof *all;
    for (size_t i = 0; i < n; i++) {
        if (s->nauths == SL_AUTHN_MAX)
            return sl_status_set(st, SL_ECONFIG, "too many authenticators");
        sl_authenticator *a = NULL;
        int rc = make_authenticator(s, cfg, order[i], &a, st);
        if (rc == SL_ENOENT && cfg->nauthenticators)
            return sl_status_set(st, SL_ECONFIG, "authenticator '%s' is listed but not configured",
                                 order[i]);
        if (rc == SL_ENOENT)
            continue;
        if (rc != SL_OK)
            return st->code ? st->code : sl_status_set(st, rc, "%s: %s", order[i], sl_strerror(rc));
        s->auths[s->nauths++] = a;
        s->router.authn.chain[s->router.authn.nchain++] = a;
    }
    return SL_OK;
}

/* The token broker: on when configured; it signs with the default JWT key. */
int sl__sluiced_setup_broker(server *s, const sl__config *cfg, sl_status *st)
{
    if (!(cfg->broker || cfg->broker_allow_all || cfg->nroles || cfg->nprincipals ||
          cfg->ndelegates))
        return SL_OK;
    if (s->keys == NULL)
        return sl_status_set(st, SL_ECONFIG,
                             "the token broker signs sluice tokens: configure a JWT secret");
    if (cfg->broker_allow_all && sl__sluiced_exposed(cfg, 0) && !cfg->insecure)
        return sl_status_set(st, SL_ECONFIG,
                             "broker_allow_all grants every channel to anyone authenticated; "
                             "refusing it on %s without --insecure",
                             sl__sluiced_exposed(cfg, 0));
    sl_broker_opts o = {.default_ttl = cfg->broker_default_ttl,
                        .max_ttl = cfg->broker_max_ttl,
                        .allow_all = cfg->broker_allow_all,
                        .allow_all_role = cfg->broker_allow_all_role};
    int rc = sl_broker_new(&s->broker, &o);
    if (rc == SL_OK && sl__sluiced_state_kv(s) &&
        (rc = sl_broker_attach(s->broker, sl__sluiced_state_kv(s), st)) != SL_OK)
        return rc;
    for (size_t i = 0; rc == SL_OK && i < cfg->nroles; i++)
        rc = sl_broker_set_role_deny(s->broker, cfg->roles[i].name, cfg->roles[i].grants,
                                     (const char *const *)cfg->roles[i].items, cfg->roles[i].nitems,
                                     (const char *const *)cfg->roles[i].deny, cfg->roles[i].ndeny);
    for (size_t i = 0; rc == SL_OK && i < cfg->nprincipals; i++)
        rc = sl_broker_assign(s->broker, cfg->principals[i].name,
                              (const char *const *)cfg->principals[i].items,
                              cfg->principals[i].nitems);
    for (size_t i = 0; rc == SL_OK && i < cfg->ndelegates; i++)
        rc = sl_broker_allow_delegation(s->broker, cfg->delegates[i].name,
                                        (const char *const *)cfg->delegates[i].items,
                                        cfg->delegates[i].nitems);
    if (rc != SL_OK)
        return sl_status_set(st, rc, "cannot set up the token broker: %s", sl_strerror(rc));
    sl_ctx_set_broker(s->ctx, s->broker);
    s->router.broker = s->broker;
    snprintf(s->router.broker_prefix, sizeof s->router.broker_prefix, "%s", cfg->broker_prefix);
    return SL_OK;
}
