/* What sluiced's pieces share (main.c, sluiced_authn.c, sluiced_store.c; none of them is in
 * libsluice): the server object that main owns from start to exit, and the steps of its setup that
 * live beside main.c. main.c reads the configuration, wires the context, router, listeners and
 * signals together and runs the loop; sluiced_store.c opens the store or the Redis engine that
 * everything keeping state attaches to; sluiced_authn.c builds who the callers can be (JWT keys,
 * the authenticator chain, the token broker). */
#ifndef SLUICE_SERVER_SLUICED_H
#define SLUICE_SERVER_SLUICED_H

#include <stddef.h>
#include <uv.h>

#include <sluice/apikey.h>
#include <sluice/audit.h>
#include <sluice/authn.h>
#include <sluice/broker.h>
#include <sluice/httpsig.h>
#include <sluice/introspect.h>
#include <sluice/jwks.h>
#include <sluice/jwt.h>
#include <sluice/revocation.h>
#include <sluice/sluice.h>

#include "core/logsink.h"
#include "core/metrics.h"
#include "net/http.h"
#include "net/tls.h"
#include "security/httpsig.h"
#include "security/workspace.h"
#include "server/aclfile.h"
#include "server/config.h"
#include "server/log.h"
#include "server/router.h"
#include "server/shared_state.h"
#include "server/wsession.h"
#include "store/engine.h"
#include "store/kv.h"
#include "store/redis_nonce.h"

#define SL__MAX_LISTENERS 16

typedef struct server {
    uv_loop_t *loop;
    sl__kv *kv; /* the embedded store (engine lmdb); NULL with the memory engine */
    /* engine redis: the engine until the context takes it over, the kv on its first shard where
     * the security stores keep their state, and the feed of other nodes' changes to them */
    sl_engine *redis;
    sl__kv *rkv;
    sl__shared_state *shared;
    sl__eop stopping; /* shutting down on a shared engine: the last request */
    sl_http_server *http[SL__MAX_LISTENERS]; /* one per listener, in the configured order */
    size_t nhttp;
    /* TLS: the current context (new connections get it; SIGHUP replaces it) and its files */
    sl__tls_ctx *tls;
    sl__tls_files tls_files;
    sl__router router;
    sl__wss_server *wss; /* the WebSocket endpoint */
    sl_ctx *ctx;
    sl_jwt_keyring *keys;
    sl_audit_log *audit;
    sl_revocation_store *revocation;
    sl_broker *broker;
    sl_apikey_store *apikeys;
    sl_jwt_keyring *upstream_keys;
    sl_jwt_verify_opts upstream_opts;
    sl_introspect *introspect;
    sl_jwks *jwks;                         /* the upstream-JWT authenticator's keys from a JWKS */
    sl_authenticator *auths[SL_AUTHN_MAX]; /* owned; the chain in router.authn borrows them */
    size_t nauths;
    /* signed requests: the keys and where nonces are remembered (memory, or Redis with a Redis
     * engine); route prefixes' modes, the router borrows them */
    sl_httpsig_keyring *sigkeys;
    sl__nonce_store *nonces;
    sl__auth_mode *modes;
    size_t nmodes;
    sl__workspaces *workspaces; /* operators and limits; the context borrows it */
    const sl__config *cfg;      /* main's, for the SIGHUP reload */
    sl__log *log;               /* sluiced's own log; the router borrows it */
    sl__logsink sink;           /* the stores' and Redis links' way into log (core/logsink.h) */
    sl__metrics *metrics;       /* the context, the router and the sessions borrow it */
    uv_signal_t sigint, sigterm, sighup;
    /* the principals the ACL file granted last (a reload revokes the ones it no
     * longer names); --check-config: validate only (no store, no audit log, no listener) */
    sl__aclfile_state aclfile;
    int checking;
} server;

/* main.c: the operational lines of the HTTP servers and the clients (ud: the log), at warn; and
 * the reader of the config and ACL files (*text malloc'd, the caller frees it; at most 64 MiB). */
void sl__sluiced_log_line(void *ud, const char *line);
int sl__sluiced_read_file(void *ud, const char *path, char **text, size_t *len, sl_status *st);

/* sluiced_tls.c: whether host is a loopback address; the first listener on a non-loopback
 * address (plaintext ones only when plain), or NULL; the listeners' TLS settings checked and the
 * context loaded into s->tls; plaintext refused off loopback without --insecure; the SIGHUP
 * reload of the certificate and key (a failure is logged and keeps the current context). */
int sl__sluiced_is_loopback(const char *host);
const char *sl__sluiced_exposed(const sl__config *cfg, int plain);
int sl__sluiced_setup_tls(server *s, const sl__config *cfg, sl_status *st);
int sl__sluiced_check_plaintext(const sl__config *cfg, sl_status *st);
void sl__sluiced_reload_tls(server *s, const sl__config *cfg);

/* sluiced_acl.c: the ACL file loaded and applied; applying NULL at start (a failure stops
 * sluiced), else the SIGHUP reload's *applying says whether a failure came while applying (what
 * was applied before it stays) or before (nothing changed). */
int sl__sluiced_load_acl_file(server *s, const sl__config *cfg, int *applying, sl_status *st);

/* sluiced_store.c: where the security stores keep their state (the embedded store, or the Redis
 * kv); the embedded store's directory; the store opened first (--check-config: only checked);
 * the channels and runtime grants read from it into the context. */
sl__kv *sl__sluiced_state_kv(const server *s);
const char *sl__sluiced_data_dir(const sl__config *cfg);
int sl__sluiced_open_store(server *s, const sl__config *cfg, sl_status *st);
/* Turns the loop until done(ud) or ms have passed (before the listeners open); returns done(ud). */
int sl__sluiced_wait(server *s, int (*done)(void *ud), void *ud, unsigned ms);
int sl__sluiced_use_store(server *s, const sl__config *cfg, sl_status *st);

/* sluiced_authn.c: the sluice JWT keyring (secret files and SLUICE_JWT_SECRET), the authenticator
 * chain after sluice tokens, the token broker. */
int sl__sluiced_build_keys(server *s, const sl__config *cfg, sl_status *st);
int sl__sluiced_setup_authenticators(server *s, const sl__config *cfg, sl_status *st);
int sl__sluiced_setup_broker(server *s, const sl__config *cfg, sl_status *st);

#endif
