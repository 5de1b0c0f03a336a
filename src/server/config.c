/* The config file: INI-like lines. Top-level "key = value" options, then sections
 * "[channel ID]" (channel options) and "[acl PRINCIPAL]" (role and channels). '#' starts a comment
 * line. Every error names the file and line. The same setter serves command-line flags. */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#define MAX_LINE 4096

void sl__config_init(sl__config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->host, "127.0.0.1");
    c->port = 8080;
    c->jwt_leeway = 30;
    sl_http_limits_init(&c->limits);
    sl__wss_limits_init(&c->ws);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sl__config_free(sl__config *c)
{
    free_strv(c->admins, c->nadmins);
    for (size_t i = 0; i < c->nkeys; i++) {
        free(c->keys[i].kid);
        free(c->keys[i].secret_file);
    }
    free(c->keys);
    free(c->jwt_audience);
    free(c->jwt_issuer);
    free(c->audit_log);
    free(c->apikey_store);
    free(c->upstream_key_alg);
    free(c->upstream_key_file);
    free(c->upstream_issuer);
    free(c->upstream_audience);
    free(c->introspection_url);
    free(c->introspection_client_id);
    free(c->introspection_secret_file);
    free_strv(c->authenticators, c->nauthenticators);
    free(c->revocation);
    free(c->revocation_prefix);
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
        free_strv(c->grants[i].patterns, c->grants[i].npatterns);
    }
    free(c->grants);
    sl__cfg_named *lists[] = {c->roles, c->principals, c->delegates};
    size_t counts[] = {c->nroles, c->nprincipals, c->ndelegates};
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            free(lists[l][i].name);
            free_strv(lists[l][i].items, lists[l][i].nitems);
        }
        free(lists[l]);
    }
    memset(c, 0, sizeof *c);
}

static int push_str(char ***v, size_t *n, const char *s)
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

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
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

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1") || !strcmp(s, "on"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0") || !strcmp(s, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

int sl__config_set_listen(sl__config *c, const char *value)
{
    const char *colon = strrchr(value, ':');
    if (colon == NULL)
        return SL_EINVAL;
    const char *h = value;
    size_t hl = (size_t)(colon - value);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    unsigned long long port;
    if (hl == 0 || hl >= sizeof c->host || parse_uint(colon + 1, 65535, &port) < 0)
        return SL_EINVAL;
    memcpy(c->host, h, hl);
    c->host[hl] = '\0';
    c->port = (int)port;
    return SL_OK;
}

/* The WebSocket endpoint's limits (docs/WEBSOCKET.md, "Limits"). */
static int set_ws(sl__wss_limits *w, const char *key, const char *v, sl_status *st)
{
    static const struct {
        const char *key;
        unsigned long long max; /* counts: 1..max */
        size_t off;
        int is_unsigned; /* unsigned int field rather than size_t */
    } counts[] = {
        {"ws_max_connections", 1000000, offsetof(sl__wss_limits, max_connections), 0},
        {"ws_max_subscriptions", 100000, offsetof(sl__wss_limits, max_subscriptions), 0},
        {"ws_max_message", 1ULL << 26, offsetof(sl__wss_limits, max_message), 0},
        {"ws_max_outgoing", 1ULL << 30, offsetof(sl__wss_limits, max_outgoing), 0},
        {"ws_history_max", 100000, offsetof(sl__wss_limits, history_max), 0},
        {"ws_commands_per_second", 1000000, offsetof(sl__wss_limits, commands_per_second), 1},
        {"ws_max_errors", 1000000, offsetof(sl__wss_limits, max_errors), 1},
    };
    static const struct {
        const char *key;
        double min, max;
        size_t off;
    } times[] = {
        {"ws_handshake_timeout", 0.1, 3600, offsetof(sl__wss_limits, handshake_timeout)},
        {"ws_ping_interval", 0.1, 3600, offsetof(sl__wss_limits, ping_interval)},
        {"ws_pong_timeout", 0.1, 3600, offsetof(sl__wss_limits, pong_timeout)},
        {"ws_refresh_grace", 0, 3600, offsetof(sl__wss_limits, refresh_grace)},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        if (strcmp(key, counts[i].key))
            continue;
        unsigned long long u;
        if (parse_uint(v, counts[i].max, &u) < 0 || u == 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be 1..%llu", key, counts[i].max);
        char *field = (char *)w + counts[i].off;
        if (counts[i].is_unsigned)
            *(unsigned *)(void *)field = (unsigned)u;
        else
            *(size_t *)(void *)field = (size_t)u;
        return SL_OK;
    }
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        if (strcmp(key, times[i].key))
            continue;
        double d;
        if (parse_seconds(v, &d) < 0 || d < times[i].min || d > times[i].max)
            return sl_status_set(st, SL_ECONFIG, "%s must be %g..%g seconds", key, times[i].min,
                                 times[i].max);
        *(double *)(void *)((char *)w + times[i].off) = d;
        return SL_OK;
    }
    return sl_status_set(st, SL_ECONFIG, "unknown option '%.64s'", key);
}

int sl__config_set(sl__config *c, const char *key, const char *v, sl_status *st)
{
    unsigned long long u;
    double d;
    if (!strcmp(key, "listen")) {
        if (sl__config_set_listen(c, v) != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "listen must be HOST:PORT");
    } else if (!strcmp(key, "authz")) {
        sl_mode m = sl_mode_parse(v);
        if (m != SL_MODE_TOKEN && m != SL_MODE_ACL && m != SL_MODE_OPEN)
            return sl_status_set(st, SL_ECONFIG, "authz must be token, acl or open");
        c->authz = m;
    } else if (!strcmp(key, "admin")) {
        if (!sl_principal_valid(v, strlen(v)))
            return sl_status_set(st, SL_ECONFIG, "admin must be a principal id");
        if (push_str(&c->admins, &c->nadmins, v) != SL_OK)
            return sl_status_set(st, SL_ENOMEM, NULL);
    } else if (!strcmp(key, "insecure")) {
        if (parse_bool(v, &c->insecure) < 0)
            return sl_status_set(st, SL_ECONFIG, "insecure must be true or false");
    } else if (!strcmp(key, "jwt_secret_file") || !strcmp(key, "jwt_key")) {
        /* jwt_key = KID:FILE adds a named key for rotation; jwt_secret_file = FILE the default. */
        const char *file = v, *colon = strchr(v, ':');
        char *kid = NULL;
        if (!strcmp(key, "jwt_key")) {
            if (colon == NULL || colon == v || colon[1] == '\0')
                return sl_status_set(st, SL_ECONFIG, "jwt_key must be KID:FILE");
            kid = strndup(v, (size_t)(colon - v));
            file = colon + 1;
        }
        sl__cfg_key *nk = realloc(c->keys, (c->nkeys + 1) * sizeof *nk);
        if (nk == NULL) {
            free(kid);
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        c->keys = nk;
        nk[c->nkeys].kid = kid;
        nk[c->nkeys].secret_file = strdup(file);
        c->nkeys++;
    } else if (!strcmp(key, "jwt_audience")) {
        free(c->jwt_audience);
        c->jwt_audience = strdup(v);
    } else if (!strcmp(key, "jwt_issuer")) {
        free(c->jwt_issuer);
        c->jwt_issuer = strdup(v);
    } else if (!strcmp(key, "jwt_leeway")) {
        if (parse_seconds(v, &d) < 0 || d > 60)
            return sl_status_set(st, SL_ECONFIG, "jwt_leeway must be between 0 and 60 seconds");
        c->jwt_leeway = d;
    } else if (!strcmp(key, "jwt_exp_optional")) {
        if (parse_bool(v, &c->jwt_exp_optional) < 0)
            return sl_status_set(st, SL_ECONFIG, "jwt_exp_optional must be true or false");
    } else if (!strcmp(key, "audit_log")) {
        free(c->audit_log);
        c->audit_log = strdup(v);
    } else if (!strcmp(key, "revocation")) {
        if (strcmp(v, "memory") && strcmp(v, "off") && strncmp(v, "redis://", 8))
            return sl_status_set(st, SL_ECONFIG,
                                 "revocation must be memory, off or redis://HOST:PORT");
        free(c->apikey_store);
        free(c->upstream_key_alg);
        free(c->upstream_key_file);
        free(c->upstream_issuer);
        free(c->upstream_audience);
        free(c->introspection_url);
        free(c->introspection_client_id);
        free(c->introspection_secret_file);
        free_strv(c->authenticators, c->nauthenticators);
        free(c->revocation);
        c->revocation = strdup(v);
    } else if (!strcmp(key, "revocation_prefix")) {
        if (*v == '\0' || strlen(v) > 64 || strpbrk(v, " \t\r\n"))
            return sl_status_set(st, SL_ECONFIG,
                                 "revocation_prefix must be 1..64 bytes, no spaces");
        free(c->revocation_prefix);
        c->revocation_prefix = strdup(v);
    } else if (!strcmp(key, "revocation_max_ttl")) {
        if (parse_seconds(v, &d) < 0 || d < 1)
            return sl_status_set(st, SL_ECONFIG, "revocation_max_ttl must be at least 1 second");
        c->revocation_max_ttl = d;
    } else if (!strcmp(key, "apikey_store") || !strcmp(key, "upstream_jwt_issuer") ||
               !strcmp(key, "upstream_jwt_audience") || !strcmp(key, "introspection_url") ||
               !strcmp(key, "introspection_client_id") ||
               !strcmp(key, "introspection_client_secret_file")) {
        char **slot = !strcmp(key, "apikey_store")              ? &c->apikey_store
                      : !strcmp(key, "upstream_jwt_issuer")     ? &c->upstream_issuer
                      : !strcmp(key, "upstream_jwt_audience")   ? &c->upstream_audience
                      : !strcmp(key, "introspection_url")       ? &c->introspection_url
                      : !strcmp(key, "introspection_client_id") ? &c->introspection_client_id
                                                                : &c->introspection_secret_file;
        if (*v == '\0')
            return sl_status_set(st, SL_ECONFIG, "%s must not be empty", key);
        if (!strcmp(key, "introspection_url") && strncmp(v, "http://", 7) &&
            strncmp(v, "https://", 8))
            return sl_status_set(st, SL_ECONFIG, "introspection_url must be an http(s) URL");
        free(*slot);
        *slot = strdup(v);
    } else if (!strcmp(key, "upstream_jwt_key")) {
        const char *colon = strchr(v, ':');
        size_t n = colon ? (size_t)(colon - v) : 0;
        if (!colon || colon[1] == '\0' ||
            !((n == 5 && !strncmp(v, "hs256", 5)) || (n == 5 && !strncmp(v, "es256", 5)) ||
              (n == 5 && !strncmp(v, "eddsa", 5))))
            return sl_status_set(st, SL_ECONFIG, "upstream_jwt_key must be hs256|es256|eddsa:FILE");
        free(c->upstream_key_alg);
        free(c->upstream_key_file);
        c->upstream_key_alg = strndup(v, n);
        c->upstream_key_file = strdup(colon + 1);
    } else if (!strcmp(key, "introspection_cache_ttl")) {
        if (parse_seconds(v, &d) < 0 || d > 300)
            return sl_status_set(st, SL_ECONFIG, "introspection_cache_ttl must be 0..300 seconds");
        c->introspection_cache_ttl = d;
    } else if (!strcmp(key, "authenticators")) {
        free_strv(c->authenticators, c->nauthenticators);
        c->authenticators = NULL;
        c->nauthenticators = 0;
        char buf[MAX_LINE];
        snprintf(buf, sizeof buf, "%s", v);
        for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
             tok = strtok_r(NULL, ", \t", &save)) {
            if (strcmp(tok, "apikey") && strcmp(tok, "upstream-jwt") &&
                strcmp(tok, "introspection"))
                return sl_status_set(st, SL_ECONFIG,
                                     "authenticators: unknown '%.32s' (apikey, upstream-jwt, "
                                     "introspection)",
                                     tok);
            if (push_str(&c->authenticators, &c->nauthenticators, tok) != SL_OK)
                return sl_status_set(st, SL_ENOMEM, NULL);
        }
    } else if (!strcmp(key, "broker")) {
        if (parse_bool(v, &c->broker) < 0)
            return sl_status_set(st, SL_ECONFIG, "broker must be true or false");
    } else if (!strcmp(key, "broker_prefix")) {
        size_t n = strlen(v);
        if (n >= sizeof c->broker_prefix || (n && (v[0] != '/' || v[n - 1] == '/')) ||
            strpbrk(v, "?# \t%"))
            return sl_status_set(st, SL_ECONFIG,
                                 "broker_prefix must be like /auth (no trailing /)");
        memcpy(c->broker_prefix, v, n + 1);
    } else if (!strcmp(key, "broker_default_ttl") || !strcmp(key, "broker_max_ttl")) {
        if (parse_seconds(v, &d) < 0 || d < 1 || d > 31536000)
            return sl_status_set(st, SL_ECONFIG, "%s must be 1..31536000 seconds", key);
        *(key[7] == 'd' ? &c->broker_default_ttl : &c->broker_max_ttl) = d;
    } else if (!strcmp(key, "broker_allow_all")) {
        if (parse_bool(v, &c->broker_allow_all) < 0)
            return sl_status_set(st, SL_ECONFIG, "broker_allow_all must be true or false");
    } else if (!strcmp(key, "broker_allow_all_role")) {
        if ((c->broker_allow_all_role = sl_role_parse(v)) == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG,
                                 "broker_allow_all_role must be read, write or admin");
    } else if (!strcmp(key, "log_requests")) {
        if (parse_bool(v, &c->log_requests) < 0)
            return sl_status_set(st, SL_ECONFIG, "log_requests must be true or false");
    } else if (!strcmp(key, "max_body")) {
        if (parse_uint(v, 1ULL << 30, &u) < 0 || u == 0)
            return sl_status_set(st, SL_ECONFIG, "max_body must be 1..1073741824 bytes");
        c->limits.max_body = (size_t)u;
    } else if (!strcmp(key, "max_header")) {
        if (parse_uint(v, 1ULL << 20, &u) < 0 || u < 256)
            return sl_status_set(st, SL_ECONFIG, "max_header must be 256..1048576 bytes");
        c->limits.max_header = (size_t)u;
    } else if (!strcmp(key, "request_timeout")) {
        if (parse_seconds(v, &d) < 0 || d <= 0 || d > 3600)
            return sl_status_set(st, SL_ECONFIG, "request_timeout must be 0..3600 seconds");
        c->limits.request_timeout_ms = (unsigned)(d * 1000);
    } else if (!strcmp(key, "idle_timeout")) {
        if (parse_seconds(v, &d) < 0 || d <= 0 || d > 86400)
            return sl_status_set(st, SL_ECONFIG, "idle_timeout must be 0..86400 seconds");
        c->limits.idle_timeout_ms = (unsigned)(d * 1000);
    } else if (!strcmp(key, "max_connections")) {
        if (parse_uint(v, 1000000, &u) < 0 || u == 0)
            return sl_status_set(st, SL_ECONFIG, "max_connections must be 1..1000000");
        c->limits.max_connections = (size_t)u;
    } else if (!strcmp(key, "max_connections_per_address")) {
        if (parse_uint(v, 1000000, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "max_connections_per_address must be 0..1000000");
        c->limits.max_connections_per_address = (size_t)u;
    } else if (!strcmp(key, "max_pending_per_address")) {
        if (parse_uint(v, 1000000, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "max_pending_per_address must be 0..1000000");
        c->limits.max_pending_per_address = (size_t)u;
    } else if (!strcmp(key, "busy_header_timeout")) {
        if (parse_seconds(v, &d) < 0 || d < 0 || d > 3600)
            return sl_status_set(st, SL_ECONFIG, "busy_header_timeout must be 0..3600 seconds");
        c->limits.busy_header_timeout_ms = (unsigned)(d * 1000);
    } else if (!strncmp(key, "ws_", 3)) {
        return set_ws(&c->ws, key, v, st);
    } else {
        return sl_status_set(st, SL_ECONFIG, "unknown option '%.64s'", key);
    }
    return SL_OK;
}

static int set_channel(sl__cfg_channel *ch, const char *key, const char *v, sl_status *st)
{
    sl_channel_opts *o = &ch->opts;
    unsigned long long u;
    if (!strcmp(key, "kind")) {
        if (strcmp(v, "queue") && strcmp(v, "topic"))
            return sl_status_set(st, SL_ECONFIG, "kind must be queue or topic");
        o->kind = !strcmp(v, "topic") ? SL_KIND_TOPIC : SL_KIND_QUEUE;
    } else if (!strcmp(key, "visibility")) {
        if (strcmp(v, "public") && strcmp(v, "private"))
            return sl_status_set(st, SL_ECONFIG, "visibility must be public or private");
        o->visibility = !strcmp(v, "public") ? SL_VIS_PUBLIC : SL_VIS_PRIVATE;
    } else if (!strcmp(key, "security")) {
        int m = (int)sl_mode_parse(v);
        if (m < 0)
            return sl_status_set(st, SL_ECONFIG, "security must be inherit, open, acl or token");
        o->mode = (sl_mode)m;
    } else if (!strcmp(key, "name")) {
        free(ch->name);
        o->name = ch->name = strdup(v);
    } else if (!strcmp(key, "description")) {
        free(ch->description);
        o->description = ch->description = strdup(v);
    } else if (!strcmp(key, "dead_letter")) {
        if (!sl_channel_id_valid(v, strlen(v)))
            return sl_status_set(st, SL_ECONFIG, "dead_letter must be a channel id");
        free(ch->dead_letter);
        o->dead_letter = ch->dead_letter = strdup(v);
    } else if (!strcmp(key, "claim_timeout") || !strcmp(key, "retention_max_age")) {
        double d;
        if (parse_seconds(v, &d) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be a number of seconds", key);
        *(key[0] == 'c' ? &o->claim_timeout : &o->retention_max_age) = d;
    } else if (!strcmp(key, "presence") || !strcmp(key, "join_leave")) {
        if (parse_bool(v, key[0] == 'p' ? &o->presence : &o->join_leave) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be true or false", key);
    } else if (!strcmp(key, "max_attempts")) {
        if (parse_uint(v, 1000000, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "max_attempts must be 0..1000000");
        o->max_attempts = (unsigned)u;
    } else if (!strcmp(key, "max_messages") || !strcmp(key, "retention_max_count")) {
        if (parse_uint(v, 1ULL << 40, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be a non-negative integer", key);
        *(key[0] == 'm' ? &o->max_messages : &o->retention_max_count) = (size_t)u;
    } else {
        return sl_status_set(st, SL_ECONFIG, "unknown channel option '%.64s'", key);
    }
    return SL_OK;
}

static int set_grant(sl__cfg_grant *g, const char *key, const char *v, sl_status *st)
{
    if (!strcmp(key, "role")) {
        if ((g->role = sl_role_parse(v)) == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG, "role must be read, write or admin");
    } else if (!strcmp(key, "channels")) {
        /* Comma-separated patterns. */
        char buf[MAX_LINE];
        snprintf(buf, sizeof buf, "%s", v);
        for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
             tok = strtok_r(NULL, ", \t", &save)) {
            if (!sl_pattern_valid(tok, strlen(tok)))
                return sl_status_set(st, SL_ECONFIG, "invalid channel pattern '%.64s'", tok);
            if (push_str(&g->patterns, &g->npatterns, tok) != SL_OK)
                return sl_status_set(st, SL_ENOMEM, NULL);
        }
    } else {
        return sl_status_set(st, SL_ECONFIG, "unknown acl option '%.64s'", key);
    }
    return SL_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

enum { SEC_TOP, SEC_CHANNEL, SEC_ACL, SEC_ROLE, SEC_PRINCIPAL, SEC_DELEGATE };

static int add_named(sl__cfg_named **v, size_t *n, const char *name)
{
    sl__cfg_named *nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return SL_ENOMEM;
    *v = nv;
    memset(&nv[*n], 0, sizeof *nv);
    if ((nv[*n].name = strdup(name)) == NULL)
        return SL_ENOMEM;
    (*n)++;
    return SL_OK;
}

/* Comma- or space-separated items, each checked by ok(). */
static int add_items(sl__cfg_named *e, const char *v, int (*ok)(const char *), const char *what,
                     sl_status *st)
{
    char buf[MAX_LINE];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save)) {
        if (!ok(tok))
            return sl_status_set(st, SL_ECONFIG, "invalid %s '%.64s'", what, tok);
        if (push_str(&e->items, &e->nitems, tok) != SL_OK)
            return sl_status_set(st, SL_ENOMEM, NULL);
    }
    return SL_OK;
}

static int ok_pattern(const char *s)
{
    return sl_pattern_valid(s, strlen(s));
}

static int ok_name(const char *s)
{
    return sl_principal_valid(s, strlen(s));
}

static int ok_principal_pattern(const char *s)
{
    size_t n = strlen(s);
    return (n == 1 && s[0] == '*') ||
           (n > 1 && s[n - 1] == '*' && sl_principal_valid(s, n - 1) && !memchr(s, '*', n - 1)) ||
           (sl_principal_valid(s, n) && !memchr(s, '*', n));
}

static int set_named(int sec, sl__cfg_named *e, const char *key, const char *v, sl_status *st)
{
    if (sec == SEC_ROLE && !strcmp(key, "grants")) {
        if ((e->grants = sl_role_parse(v)) == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG, "grants must be read, write or admin");
        return SL_OK;
    }
    if (sec == SEC_ROLE && !strcmp(key, "channels"))
        return add_items(e, v, ok_pattern, "channel pattern", st);
    if (sec == SEC_PRINCIPAL && !strcmp(key, "roles"))
        return add_items(e, v, ok_name, "role name", st);
    if (sec == SEC_DELEGATE && !strcmp(key, "principals"))
        return add_items(e, v, ok_principal_pattern, "principal pattern", st);
    return sl_status_set(st, SL_ECONFIG, "unknown %s option '%.64s'",
                         sec == SEC_ROLE        ? "role"
                         : sec == SEC_PRINCIPAL ? "principal"
                                                : "delegate",
                         key);
}

/* "[channel ID]" / "[acl PRINCIPAL]": opens a new section. */
static int open_section(sl__config *c, char *hdr, int *sec, sl_status *st)
{
    size_t n = strlen(hdr);
    if (n < 2 || hdr[n - 1] != ']')
        return sl_status_set(st, SL_ECONFIG, "section header must end with ']'");
    hdr[n - 1] = '\0';
    char *body = trim(hdr + 1);
    char *sp = strpbrk(body, " \t");
    if (sp == NULL)
        return sl_status_set(st, SL_ECONFIG, "section must be [channel ID] or [acl PRINCIPAL]");
    *sp = '\0';
    char *arg = trim(sp + 1);
    if (!strcmp(body, "channel")) {
        if (!sl_channel_id_valid(arg, strlen(arg)))
            return sl_status_set(st, SL_ECONFIG, "invalid channel id '%.64s'", arg);
        sl__cfg_channel *nc = realloc(c->channels, (c->nchannels + 1) * sizeof *nc);
        if (nc == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        c->channels = nc;
        memset(&nc[c->nchannels], 0, sizeof *nc);
        sl_channel_opts_init(&nc[c->nchannels].opts);
        /* A server's configured channels are for its clients: public unless declared private. */
        nc[c->nchannels].opts.visibility = SL_VIS_PUBLIC;
        nc[c->nchannels].id = strdup(arg);
        c->nchannels++;
        *sec = SEC_CHANNEL;
    } else if (!strcmp(body, "acl")) {
        if (!sl_principal_valid(arg, strlen(arg)))
            return sl_status_set(st, SL_ECONFIG, "invalid principal '%.64s'", arg);
        sl__cfg_grant *ng = realloc(c->grants, (c->ngrants + 1) * sizeof *ng);
        if (ng == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        c->grants = ng;
        memset(&ng[c->ngrants], 0, sizeof *ng);
        ng[c->ngrants].principal = strdup(arg);
        c->ngrants++;
        *sec = SEC_ACL;
    } else if (!strcmp(body, "role") || !strcmp(body, "principal") || !strcmp(body, "delegate")) {
        if (!sl_principal_valid(arg, strlen(arg)))
            return sl_status_set(st, SL_ECONFIG, "invalid %s name '%.64s'", body, arg);
        int rc = body[0] == 'r'   ? add_named(&c->roles, &c->nroles, arg)
                 : body[0] == 'p' ? add_named(&c->principals, &c->nprincipals, arg)
                                  : add_named(&c->delegates, &c->ndelegates, arg);
        if (rc != SL_OK)
            return sl_status_set(st, rc, NULL);
        *sec = body[0] == 'r' ? SEC_ROLE : body[0] == 'p' ? SEC_PRINCIPAL : SEC_DELEGATE;
    } else {
        return sl_status_set(st, SL_ECONFIG, "unknown section '%.64s'", body);
    }
    return SL_OK;
}

int sl__config_parse(sl__config *c, const char *text, size_t len, const char *filename,
                     sl_status *st)
{
    int sec = SEC_TOP;
    size_t lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        char line[MAX_LINE];
        sl_status inner;
        sl_status_clear(&inner);
        int rc = SL_OK;
        if (n >= sizeof line) {
            rc = sl_status_set(&inner, SL_ECONFIG, "line longer than %d bytes", MAX_LINE - 1);
        } else if (memchr(p, '\0', n)) {
            rc = sl_status_set(&inner, SL_ECONFIG, "NUL byte");
        } else {
            memcpy(line, p, n);
            line[n] = '\0';
            char *s = trim(line);
            if (*s == '\0' || *s == '#') {
                /* blank or comment */
            } else if (*s == '[') {
                rc = open_section(c, s, &sec, &inner);
            } else {
                char *eq = strchr(s, '=');
                if (eq == NULL) {
                    rc = sl_status_set(&inner, SL_ECONFIG, "expected 'key = value'");
                } else {
                    *eq = '\0';
                    char *key = trim(s), *val = trim(eq + 1);
                    if (sec == SEC_TOP)
                        rc = sl__config_set(c, key, val, &inner);
                    else if (sec == SEC_CHANNEL)
                        rc = set_channel(&c->channels[c->nchannels - 1], key, val, &inner);
                    else if (sec == SEC_ACL)
                        rc = set_grant(&c->grants[c->ngrants - 1], key, val, &inner);
                    else if (sec == SEC_ROLE)
                        rc = set_named(sec, &c->roles[c->nroles - 1], key, val, &inner);
                    else if (sec == SEC_PRINCIPAL)
                        rc = set_named(sec, &c->principals[c->nprincipals - 1], key, val, &inner);
                    else
                        rc = set_named(sec, &c->delegates[c->ndelegates - 1], key, val, &inner);
                }
            }
        }
        if (rc != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "%s:%zu: %s", filename, lineno, inner.message);
        p = nl ? nl + 1 : end;
    }
    for (size_t i = 0; i < c->nroles; i++)
        if (c->roles[i].grants == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG, "%s: [role %s] has no grants", filename,
                                 c->roles[i].name);
    for (size_t i = 0; i < c->ngrants; i++)
        if (c->grants[i].role == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG, "%s: [acl %s] has no role", filename,
                                 c->grants[i].principal);
    return SL_OK;
}
