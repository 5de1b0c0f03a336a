/* sluiced's configuration: command-line flags and an optional config file (docs/CONFIG.md) fill the
 * same struct. The file parser does no I/O: it takes the text and the file name (for messages that
 * name file and line). */
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
} sl__cfg_grant;

/* [role NAME] / [principal NAME] / [delegate SERVICE]: a name and a list (patterns or role names).
 */
typedef struct sl__cfg_named {
    char *name;
    sl_role grants; /* roles only */
    char **items;
    size_t nitems;
} sl__cfg_named;

typedef struct sl__cfg_key {
    char *kid;         /* NULL: default key */
    char *secret_file; /* NULL: SLUICE_JWT_SECRET */
} sl__cfg_key;

typedef struct sl__config {
    char host[64];
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
    sl__wss_limits ws;     /* the WebSocket endpoint's limits (ws_* keys) */
    sl__cfg_channel *channels;
    size_t nchannels;
    sl__cfg_grant *grants;
    size_t ngrants;
    /* authenticators besides sluice tokens */
    char *apikey_store;     /* API key file */
    char *upstream_key_alg; /* "hs256" | "es256" | "eddsa" */
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
} sl__config;

void sl__config_init(sl__config *c);
void sl__config_free(sl__config *c);

/* Parses config text into c (adding to what is there). On error st->message is
 * "FILE:LINE: what is wrong" and SL_ECONFIG is returned. */
int sl__config_parse(sl__config *c, const char *text, size_t len, const char *filename,
                     sl_status *st);

/* Sets one top-level option by name (shared by the file parser and command-line flags). */
int sl__config_set(sl__config *c, const char *key, const char *value, sl_status *st);

/* "HOST:PORT" or "[V6]:PORT" into c->host / c->port. */
int sl__config_set_listen(sl__config *c, const char *value);

#endif
