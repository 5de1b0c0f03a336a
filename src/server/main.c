/* sluiced: the channel server. Reads flags and the config file, builds the context (channels, ACL,
 * JWT keys, audit sink), and serves the HTTP API on a libuv loop until SIGINT or SIGTERM; SIGHUP
 * reloads. The store is opened in sluiced_store.c and the callers' authentication built in
 * sluiced_authn.c (the server object they share: server/sluiced.h). */
#include <sluice/audit.h>
#include <sluice/apikey.h>
#include <sluice/authn.h>
#include <sluice/broker.h>
#include <sluice/httpsig.h>
#include <sluice/introspect.h>
#include <sluice/jwks.h>
#include <sluice/revocation.h>
#include <sluice/jwt.h>
#include <sluice/authz.h>
#include <sluice/sluice.h>

#include "net/http.h"
#include "net/ws.h"
#include "security/httpsig.h"
#include "security/invoke.h"
#include "net/tls.h"
#include "server/aclfile.h"
#include "server/config.h"
#include "server/router.h"
#include "server/routes_audit.h"
#include "server/log.h"
#include "server/reqlog.h"
#include "server/wsession.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api/ctx.h"
#include "store/engine.h"
#include "store/lmdb.h"
#include "store/redis_engine.h"
#include "store/redis_internal.h" /* the revocation store on the engine's first shard */
#include "server/shared_state.h"
#include "security/workspace.h"
#include "core/metrics.h"
#include "server/routes_metrics.h"
#include "server/sluiced.h"

static void usage(FILE *f)
{
    fputs(
        "usage: sluiced [options]\n"
        "  --listen HOST:PORT[,OPT]  address to serve on (default 127.0.0.1:8080; port 0 picks "
        "one);\n"
        "                            repeatable; OPT: tls, mtls[=optional|required], auth=MODE,\n"
        "                            metrics (GET /metrics only, no credentials; loopback)\n"
        "                            (docs/TLS.md)\n"
        "  --tls-cert FILE           TLS certificate chain (PEM) for ,tls listeners\n"
        "  --tls-key FILE            its private key (PEM); both reloaded on SIGHUP\n"
        "  --tls-client-ca FILE      CA(s) client certificates must chain to (,mtls listeners)\n"
        "  --config FILE             config file (docs/CONFIG.md)\n"
        "  --jwt-secret-file FILE    HS256 secret (else env SLUICE_JWT_SECRET); turns JWT auth on\n"
        "  --jwt-key KID:FILE        an additional HS256 key selected by the token's kid\n"
        "  --authz token|acl|open|policy  who decides: the token's claims (default), the ACL,\n"
        "                            nobody, or the HTTP policy regime (docs/POLICY.md)\n"
        "  --authz-override PATTERN=MODE  the mode of channels matching PATTERN (repeatable)\n"
        "  --authz-policy-url URL    the HTTP policy regime's URL (OPA data API shape)\n"
        "  --admin PRINCIPAL         bootstrap administrator under --authz acl (repeatable)\n"
        "  --audit-log FILE          append audit records (JSON lines)\n"
        "  --engine E                lmdb (default), memory, or "
        "redis://[user:pass@]host:port[/db]\n"
        "                            (comma-separated: shards; docs/SCALING.md)\n"
        "  --engine-prefix P         the Redis engine's key prefix (default sluice)\n"
        "  --data-dir DIR            the lmdb engine's directory (default ./sluice-data)\n"
        "  --durability MODE         sync (default), batch or none\n"
        "  --revocation KIND         embedded, off or redis://[user:pass@]host:port[/db]\n"
        "                            (default embedded with JWT; a Redis engine's first shard)\n"
        "  --revocation-prefix P     Redis key prefix (default sluice)\n"
        "  --apikey-store FILE       accept API keys from this store\n"
        "  --signature-keys FILE     accept signed requests (RFC 9421) by these keys "
        "(docs/SIGNING.md)\n"
        "  --auth-mode PREFIX=MODE   credentials a path prefix takes: any, none, bearer, "
        "signed, cert\n"
        "  --max-body BYTES          request body limit (default 1048576)\n"
        "  --max-connections N       connection limit (default 10000)\n"
        "  --max-connections-per-address N  per client address (default 0: none)\n"
        "  --max-pending-per-address N      per client address, still in their headers (default "
        "64)\n"
        "  --busy-header-timeout SECONDS    for request heads near the connection limit (default "
        "2)\n"
        "  --request-timeout SECONDS a request must arrive within (default 10)\n"
        "  --read-max-bytes BYTES    message bytes one read returns at most (default 4194304)\n"
        "  --acl-file FILE           [acl PRINCIPAL] sections, applied at start and on SIGHUP\n"
        "  --check-config FILE       read FILE as --config does, validate everything (and the\n"
        "                            files it names) and exit: 0 and \"ok\", or 1 and why; opens\n"
        "                            no store or port\n"
        "  --log-format text|json    sluiced's log lines: text (default) or one JSON object each\n"
        "  --log-level LEVEL         debug, info (default), warn or error\n"
        "  --log-file FILE           write the log there instead of stderr; reopened on SIGHUP\n"
        "  --access-log              one access line per request (never credentials)\n"
        "  --log-requests            the same as --access-log (its older name)\n"
        "  --insecure                allow plaintext or an open server on a non-loopback "
        "address\n"
        "  -h, --help                this help\n"
        "Flags are applied in order (--FLAG VALUE or --FLAG=VALUE); a --config file is read where\n"
        "it appears, so later flags override it. Each flag sets only its own option.\n",
        f);
}

/* sl__config_load's --config reader (and the ACL file's); a file is at most 64 MiB. */
int sl__sluiced_read_file(void *ud, const char *path, char **text, size_t *len, sl_status *st)
{
    (void)ud;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return sl_status_set(st, SL_ECONFIG, "%s: cannot open", path);
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *t = cap >= (64u << 20) ? NULL : realloc(buf, cap *= 2);
            if (t == NULL)
                free(buf);
            buf = t;
        }
    }
    const char *failed = buf == NULL ? "too large" : ferror(f) ? "cannot read" : NULL;
    fclose(f);
    if (failed) {
        free(buf);
        return sl_status_set(st, SL_ECONFIG, "%s: %s", path, failed);
    }
    *text = buf;
    *len = n;
    return SL_OK;
}

static int audit_sink(void *ud, const char *record, sl_status *st)
{
    server *s = ud;
    int rc = sl_audit_log_write(s->audit, record, st);
    if (rc != SL_OK) /* the reason names no secret and no file */
        sl__logf(s->log, SL__LOG_ERROR, NULL, "%s", st->message);
    else if (s->kv) /* on disk with the next group commit, before any reply that waits on it */
        s->kv->ops->touch(s->kv);
    return rc;
}

/* A request the transport refused (413, 431, 408...): logged with an id the answer echoes. */
static void on_refused(void *ud, const sl_http_refusal *r, char *id, size_t cap)
{
    sl__reqlog_refused(ud, r, id, cap);
}

static void on_response(void *ud, sl_http_request *req, sl__response *resp)
{
    server *s = ud;
    /* the request id echoed; the access line (the query's secrets redacted) */
    sl__reqlog_header(req, resp->headers, sizeof resp->headers);
    sl__reqlog_access(s->log, req, resp->status, resp->body_len, resp->principal);
    const char *type = resp->content_type ? resp->content_type : "application/json";
    sl_http_respond(req, resp->status, resp->headers[0] ? resp->headers : NULL,
                    resp->body ? type : NULL, resp->body, resp->body_len);
}

/* A metrics listener: GET /metrics without credentials, nothing else. */
static void on_metrics_request(void *ud, sl_http_request *req)
{
    sl__metrics_listener_serve(((server *)ud)->ctx, req);
}

/* The registry, lent to the context, the authentication step and (through the context)
 * the WebSocket sessions. */
static int setup_metrics(server *s, const sl__config *cfg, sl_status *st)
{
    if (sl__metrics_new(&s->metrics, sl_ctx_now(s->ctx)) != SL_OK)
        return sl_status_set(st, SL_ENOMEM, NULL);
    s->metrics->top_channels = cfg->metrics_top_channels;
    s->metrics->patterns = (const char *const *)cfg->metrics_channels;
    s->metrics->npatterns = cfg->nmetrics_channels;
    s->ctx->metrics = s->metrics;
    s->router.authn.metrics = s->metrics;
    int rc = SL_OK;
    if (s->kv)
        rc = sl__metrics_add_lmdb(s->metrics, s->kv, sl__sluiced_data_dir(cfg));
    else if (!strcmp(cfg->engine, "redis"))
        rc = sl__metrics_add_redis(s->metrics, s->ctx->engine);
    return rc == SL_OK ? SL_OK : sl_status_set(st, rc, NULL);
}

static void on_request(void *ud, sl_http_request *req)
{
    server *s = ud;
    sl__reqlog_begin(s->log, req);
    /* The one route that is not a request/response: it takes the connection over. */
    if (s->wss && req->path_len == strlen(SL__WSS_PATH) && !strcmp(req->path, SL__WSS_PATH)) {
        if (req->accept == 0) /* the upgrade request may be signed: its prefix's mode */
            req->accept = sl__router_mode(&s->router, req->path, req->path_len);
        /* handed over (the session authenticates later, on its connect command), or a
         * handshake refused */
        const char *why;
        int status = sl_ws_check_handshake(req, &why);
        sl__reqlog_access(s->log, req, status ? status : 101, 0, NULL);
        sl__wss_handle(s->wss, req);
        return;
    }
    sl__router_serve(&s->router, req, on_response, s);
}

/* Operational lines of the HTTP servers, the revocation store, the JWKS and introspection clients
 * (never a credential); ud is the log. They report trouble or a changed limit: warn. */
void sl__sluiced_log_line(void *ud, const char *line)
{
    sl__log_write(ud, SL__LOG_WARN, NULL, line, NULL, 0);
}

static int revocation_ready(void *ud)
{
    return sl_revocation_ready(ud);
}

/* A Redis revocation store connects on the loop. The listeners open once it has answered (at
 * most 5 s), so that the first requests after a start are not refused 503 while it connects; an
 * unreachable Redis does not keep the node from starting (credentials get 503 until it is back,
 * as after any outage). */
static void wait_revocation(server *s)
{
    if (!sl__sluiced_wait(s, revocation_ready, s->revocation, 5000))
        sl__logf(s->log, SL__LOG_WARN, NULL,
                 "the revocation store is not reachable yet: credentials are refused (503) until "
                 "it is");
}

/* The revocation store needs the loop (Redis I/O, prune timer), so it is made after it. */
static int setup_revocation(server *s, const sl__config *cfg, sl_status *st)
{
    const char *kind = cfg->revocation ? cfg->revocation : s->keys ? "embedded" : "off";
    /* A revocation must outlive every token it may name: never shorter than the broker's longest
     * token lifetime (the default follows it; a shorter explicit setting is an error). */
    double longest = s->broker ? sl_broker_max_ttl(s->broker) : 0;
    double ttl = cfg->revocation_max_ttl > 0 ? cfg->revocation_max_ttl : 0;
    if (ttl > 0 && ttl < longest)
        return sl_status_set(st, SL_ECONFIG,
                             "revocation_max_ttl (%.0f s) is shorter than broker_max_ttl (%.0f s): "
                             "a revoked token would become valid again",
                             ttl, longest);
    if (ttl == 0 && longest > SL_REVOCATION_DEFAULT_MAX_TTL)
        ttl = longest;
    if (s->checking) /* no store is made, no Redis reached */
        return SL_OK;
    int rc = SL_OK;
    if (!strcmp(kind, "off"))
        return SL_OK;
    int redis = 1;
    if (!strcmp(cfg->engine, "redis") && !strcmp(kind, "embedded") && !cfg->revocation) {
        /* Several nodes: a revocation must be in force on all of them, so by default it lives
         * on the engine's first shard, with its AUTH and SELECT. */
        const sl__redis_addr *a = &sl__redis_engine_url(s->ctx->engine)->shards[0];
        rc = sl__revocation_redis_new_addr(
            &s->revocation, s->loop, a,
            cfg->engine_prefix ? cfg->engine_prefix : cfg->revocation_prefix, ttl, NULL, NULL);
    } else if (!strcmp(kind, "embedded") || !strcmp(kind, "memory")) {
        /* In the data directory with the lmdb engine: a revoked token stays revoked after a
         * restart. "memory" is the old name. */
        rc = sl_revocation_embedded_new(&s->revocation, s->loop, ttl, s->kv, NULL, NULL, st);
        if (rc != SL_OK)
            return rc;
        redis = 0;
    } else { /* redis://[user:password@]host[:port][/db], checked when it was set */
        sl_status why = {0};
        rc = sl_revocation_redis_new_url(&s->revocation, s->loop, kind, cfg->revocation_prefix, ttl,
                                         NULL, NULL, &why);
        if (rc == SL_EINVAL)
            return sl_status_set(st, SL_ECONFIG, "%s", why.message);
    }
    if (rc != SL_OK) /* never the URL: it may hold a password */
        return sl_status_set(st, rc, "cannot set up the %s revocation store: %s",
                             redis ? "redis" : "embedded", sl_strerror(rc));
    sl_revocation_set_log(s->revocation, sl__sluiced_log_line, s->log);
    s->router.authn.revocation = s->revocation; /* every credential, every transport */
    if (redis)
        wait_revocation(s);
    return SL_OK;
}

static void unref_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    uv_unref(h);
}

/* Everything the sessions submitted before closing is answered: from here only writes still
 * under way (close frames) keep the loop running. */
static void on_stopped(sl__eop *op)
{
    server *s = op->ud;
    uv_walk(s->loop, unref_handle, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    server *s = h->data;
    sl__logf(s->log, SL__LOG_INFO, NULL, "signal %d, shutting down", signum);
    sl__wss_server_close(s->wss); /* close frames (3001) go out before the sockets close */
    for (size_t i = 0; i < s->nhttp; i++)
        sl_http_server_close(s->http[i]);
    /* While the loop still runs: pending checks are answered and its handles closed. */
    s->router.authn.revocation = NULL;
    sl_revocation_store_free(s->revocation);
    s->revocation = NULL;
    sl_introspect_free(s->introspect); /* pending answers: 503 */
    s->introspect = NULL;
    sl_jwks_free(s->jwks); /* tokens waiting for keys: 503 */
    s->jwks = NULL;
    if (s->ctx) /* questions under way: errors (503); its curl handles close */
        sl_ctx_set_regime(s->ctx, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    /* A Redis engine's connections stay open for the other nodes' changes, so the loop would
     * never run out of work by itself: it ends once what the sessions submitted is answered. */
    if (s->ctx && s->ctx->engine->ops->watch) {
        s->stopping.kind = SL__EOP_SYNC;
        s->stopping.done = on_stopped;
        s->stopping.ud = s;
        s->ctx->engine->ops->submit(s->ctx->engine, &s->stopping);
    }
}

/* The stores' lines (core/logsink.h), also from the LMDB commit thread: sl__logf writes each
 * line with one write(2), and a reopened log file takes the old descriptor's number. */
static void store_log(void *ud, int level, const char *msg)
{
    sl__logf(((server *)ud)->log, (sl__log_level)level, NULL, "%s", msg);
}

/* SIGHUP: the audit log was rotated (moved aside); continue its chain in a new file. The TLS
 * certificate and key are reloaded. So is the ACL file, and the log file is reopened. */
static void on_hangup(uv_signal_t *h, int signum)
{
    (void)signum;
    server *s = h->data;
    sl_status st;
    sl_status_clear(&st);
    /* the log first, so that what follows lands in the new file */
    if (!sl__log_to_stderr(s->log) && sl__log_reopen(s->log, &st) != SL_OK)
        sl__logf(s->log, SL__LOG_ERROR, NULL, "%s", st.message);
    else if (!sl__log_to_stderr(s->log))
        sl__logf(s->log, SL__LOG_INFO, NULL, "log file reopened");
    sl_status_clear(&st);
    if (s->audit && sl_audit_log_reopen(s->audit, &st) != SL_OK)
        sl__logf(s->log, SL__LOG_ERROR, NULL, "%s", st.message);
    else if (s->audit)
        sl__logf(s->log, SL__LOG_INFO, NULL, "audit log reopened");
    sl__sluiced_reload_tls(s, s->cfg);
    /* the ACL file */
    int applying;
    sl_status_clear(&st);
    if (sl__sluiced_load_acl_file(s, s->cfg, &applying, &st) != SL_OK)
        sl__logf(s->log, SL__LOG_ERROR, NULL, "acl_file %s: %s",
                 applying ? "reload stopped (grants applied before this stay)"
                          : "not reloaded, the ACL is unchanged",
                 st.message);
}

/* auth_mode PREFIX=MODE items into the router's table (the config has validated them). */
static int setup_modes(server *s, const sl__config *cfg, sl_status *st)
{
    if (cfg->nauth_modes == 0)
        return SL_OK;
    if ((s->modes = calloc(cfg->nauth_modes, sizeof *s->modes)) == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    for (size_t i = 0; i < cfg->nauth_modes; i++) {
        const char *item = cfg->auth_modes[i], *eq = strchr(item, '=');
        char *prefix = strndup(item, (size_t)(eq - item));
        if (prefix == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        s->modes[s->nmodes].prefix = prefix;
        s->modes[s->nmodes++].mode = (unsigned)sl_authn_mode_parse(eq + 1);
    }
    s->router.modes = s->modes;
    s->router.nmodes = s->nmodes;
    return SL_OK;
}

/* Workspace operators and limits (docs/POLICY.md), borrowed by the context. */
static int setup_workspaces(server *s, const sl__config *cfg, sl_status *st)
{
    int rc = sl__workspaces_new(&s->workspaces);
    if (rc != SL_OK)
        return sl_status_set(st, rc, NULL);
    for (size_t i = 0; rc == SL_OK && i < cfg->nworkspace_limits; i++)
        rc = sl__workspaces_parse_limits(s->workspaces, cfg->workspace_limits[i], st);
    for (size_t i = 0; rc == SL_OK && i < cfg->nworkspace_operators; i++)
        rc = sl__workspaces_parse_operators(s->workspaces, cfg->workspace_operators[i], st);
    s->ctx->workspaces = s->workspaces;
    return rc;
}

/* The decision cache's bounds, the per-pattern overrides and the HTTP policy
 * regime (docs/POLICY.md). A policy mode without a regime would deny everything: refused. */
static int setup_authz(server *s, const sl__config *cfg, sl_status *st)
{
    sl_ctx_set_authz_cache(s->ctx, cfg->authz_cache_size, cfg->authz_cache_ttl_max);
    int policy = sl_ctx_mode(s->ctx) == SL_MODE_POLICY;
    for (size_t i = 0; i < cfg->nauthz_overrides; i++) {
        const char *item = cfg->authz_overrides[i], *eq = strrchr(item, '=');
        char *pattern = strndup(item, (size_t)(eq - item));
        sl_mode m = sl_mode_parse(eq + 1);
        int rc = pattern ? sl_ctx_authz_override(s->ctx, pattern, m) : SL_ENOMEM;
        free(pattern);
        if (rc != SL_OK)
            return sl_status_set(st, rc, "authz_override %s", item);
        policy |= m == SL_MODE_POLICY;
    }
    for (size_t i = 0; i < cfg->nchannels; i++)
        policy |= cfg->channels[i].opts.mode == SL_MODE_POLICY;
    if (cfg->authz_policy_url == NULL)
        return policy ? sl_status_set(st, SL_ECONFIG, "the policy regime needs authz_policy_url")
                      : SL_OK;
    sl_regime_http_opts o = {.url = cfg->authz_policy_url,
                             .timeout = cfg->authz_policy_timeout,
                             .concurrency = cfg->authz_policy_concurrency,
                             .queue_max = cfg->authz_policy_queue,
                             .allow_http = cfg->insecure,
                             .loop = s->loop};
    sl_regime *r;
    int rc = sl_regime_http_new(&r, &o, st);
    if (rc != SL_OK) {
        char msg[sizeof st->message];
        snprintf(msg, sizeof msg, "%s", st->message);
        return sl_status_set(st, rc == SL_EINVAL ? SL_ECONFIG : rc, "%s", msg);
    }
    sl_ctx_set_regime(s->ctx, r);
    return SL_OK;
}

static int setup(server *s, const sl__config *cfg, sl_status *st)
{
    int rc = SL_OK;
    if (cfg->audit_log && !s->checking) /* --check-config creates no file */
        rc = sl_audit_log_open(&s->audit, cfg->audit_log, st);
    if (rc == SL_OK)
        rc = sl__sluiced_open_store(s, cfg, st);
    if (rc == SL_OK)
        rc = sl__sluiced_build_keys(s, cfg, st);
    if (rc == SL_OK)
        rc = sl__sluiced_setup_authenticators(s, cfg, st);
    if (rc == SL_OK)
        rc = setup_modes(s, cfg, st);
    if (rc != SL_OK)
        return rc;
    int authenticated = s->keys != NULL || s->nauths > 0;
    sl_mode mode = cfg->authz ? cfg->authz : authenticated ? SL_MODE_TOKEN : SL_MODE_OPEN;
    if (!authenticated && mode != SL_MODE_OPEN)
        return sl_status_set(st, SL_ECONFIG,
                             "--authz %s needs JWT authentication: set SLUICE_JWT_SECRET or "
                             "--jwt-secret-file",
                             sl_mode_name(mode));
    if (mode == SL_MODE_OPEN && sl__sluiced_exposed(cfg, 0) && !cfg->insecure)
        return sl_status_set(st, SL_ECONFIG,
                             "refusing to serve an open (unauthenticated) server on %s; configure "
                             "a JWT secret or pass --insecure",
                             sl__sluiced_exposed(cfg, 0));
    sl_ctx_options o = {.mode = mode};
    if ((rc = sl_ctx_new(&s->ctx, &o)) != SL_OK)
        return sl_status_set(st, rc, NULL);
    sl_ctx_set_read_max_bytes(s->ctx, cfg->read_max_bytes);
    if ((rc = setup_workspaces(s, cfg, st)) != SL_OK)
        return rc;
    if ((rc = setup_authz(s, cfg, st)) != SL_OK)
        return rc;
    if (s->audit)
        sl_ctx_set_audit(s->ctx, audit_sink, s);
    if ((rc = sl__sluiced_use_store(s, cfg, st)) != SL_OK)
        return rc;
    /* A channel the store already holds keeps its stored settings (docs/STORAGE.md). */
    for (size_t i = 0; i < cfg->nchannels; i++) {
        rc = sl_channel_create(s->ctx, NULL, cfg->channels[i].id, &cfg->channels[i].opts, st);
        if (rc == SL_EEXIST && (s->kv || !strcmp(cfg->engine, "redis")))
            rc = SL_OK;
        if (rc != SL_OK)
            return rc;
    }
    for (size_t i = 0; i < cfg->ngrants; i++) {
        const sl__cfg_grant *g = &cfg->grants[i];
        if ((rc = sl_acl_grant_deny(s->ctx, NULL, g->principal, g->role,
                                    (const char *const *)g->patterns, g->npatterns,
                                    (const char *const *)g->deny, g->ndeny, st)) != SL_OK)
            return rc;
    }
    for (size_t i = 0; i < cfg->ninvokes; i++) { /* the invoke policy */
        const sl__cfg_invoke *p = &cfg->invokes[i];
        sl_status inner;
        sl_status_clear(&inner);
        if ((rc = sl__invoke_set(s->ctx->invoke, p->principal, (const char *const *)p->allow,
                                 p->nallow, (const char *const *)p->deny, p->ndeny, p->audit,
                                 &inner)) != SL_OK)
            return sl_status_set(st, rc == SL_EINVAL ? SL_ECONFIG : rc, "[invoke_policy %s]: %s",
                                 p->principal, inner.message);
    }
    for (size_t i = 0; i < cfg->nadmins; i++)
        if ((rc = sl_acl_grant(s->ctx, NULL, cfg->admins[i], SL_ROLE_ADMIN, NULL, 0, st)) != SL_OK)
            return rc;
    if ((rc = sl__sluiced_load_acl_file(s, cfg, NULL, st)) != SL_OK)
        return rc;
    if ((rc = sl__sluiced_setup_broker(s, cfg, st)) != SL_OK)
        return rc;
    if (s->rkv && (rc = sl__shared_state_attach(&s->shared, s->ctx, s->broker, s->apikeys, s->rkv,
                                                st)) != SL_OK)
        return rc;
    s->router.ctx = s->ctx;
    s->router.authn.keys = s->keys;
    s->router.apikeys = s->apikeys;
    sl_jwt_verify_opts_init(&s->router.authn.jwt);
    s->router.authn.jwt.audience = cfg->jwt_audience;
    s->router.authn.jwt.issuer = cfg->jwt_issuer;
    s->router.authn.jwt.leeway = cfg->jwt_leeway;
    s->router.authn.jwt.exp_optional = cfg->jwt_exp_optional;
    s->router.log = s->log;
    if (s->shared)
        sl__shared_state_set_log(s->shared, s->log);
    return setup_metrics(s, cfg, st);
}

/* One HTTP server per listener (the default one: plaintext on host:port). Each has its own
 * connection limits; the open-file limit is fitted to all of them. */
static int setup_listeners(server *s, const sl__config *cfg, sl_status *st)
{
    sl__cfg_listener dflt = {.port = cfg->port};
    memcpy(dflt.host, cfg->host, sizeof dflt.host);
    const sl__cfg_listener *ls = cfg->nlisteners ? cfg->listeners : &dflt;
    size_t n = cfg->nlisteners ? cfg->nlisteners : 1;
    sl_http_limits lim = cfg->limits;
    if (lim.max_connections > 0) { /* room for max_connections descriptors on each, or fewer */
        size_t per = lim.max_connections;
        lim.max_connections = per * n;
        int rc = sl_http_fit_fd_limit(&lim, sl__sluiced_log_line, s->log, st);
        if (rc != SL_OK)
            return rc;
        lim.max_connections = lim.max_connections / n > 0 ? lim.max_connections / n : 1;
    }
    for (size_t i = 0; i < n; i++) {
        const sl__cfg_listener *l = &ls[i];
        /* a metrics listener answers without credentials: loopback unless --insecure */
        if (l->metrics && !sl__sluiced_is_loopback(l->host) && !cfg->insecure)
            return sl_status_set(st, SL_ECONFIG,
                                 "a metrics listener serves /metrics without credentials: "
                                 "refusing it on %s without --insecure",
                                 l->host);
        int rc = sl_http_server_new(&s->http[s->nhttp], s->loop, &lim,
                                    l->metrics ? on_metrics_request : on_request, s);
        if (rc == SL_ECONFIG) /* its only configuration failure (net/http.h) */
            return sl_status_set(st, rc,
                                 "this build's HTTP parser needs SSE4.2, which this CPU lacks: "
                                 "build with -DSLUICE_SSE42=OFF");
        if (rc != SL_OK)
            return sl_status_set(st, rc, NULL);
        sl_http_server *h = s->http[s->nhttp++];
        sl_http_server_set_log(h, sl__sluiced_log_line, s->log);
        sl_http_server_set_refused(h, on_refused, s->log);
        sl_http_server_set_accept(h, l->accept);
        if (l->tls && (rc = sl_http_server_set_tls(h, s->tls, l->mtls)) != SL_OK)
            return sl_status_set(st, rc, "cannot serve TLS on %s:%d", l->host, l->port);
        if ((rc = sl_http_server_listen(h, l->host, l->port)) != SL_OK)
            return sl_status_set(st, rc, "cannot listen on %s:%d", l->host, l->port);
    }
    return SL_OK;
}

/* WebSocket fan-out allocates and frees megabytes of push batches in every loop iteration. By
 * default glibc hands freed memory at the top of the heap back to the kernel (and serves large
 * blocks with fresh mmaps), so every iteration page-faulted its batches in again: a third of the
 * server's time under load (docs/BENCHMARKS.md). Keeping up to 64 MiB of freed heap avoids that;
 * idle memory is unchanged. */
static void tune_malloc(void)
{
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
}

/* --check-config FILE is --config FILE where it stands, and asks for validation
 * instead of serving: *args is argv with it rewritten (malloc'd array, free it), *file the FILE
 * (NULL: not given). */
static int check_config_args(int argc, char **argv, char ***args, const char **file, sl_status *st)
{
    static char config_flag[] = "--config";
    static const char opt[] = "--check-config";
    *file = NULL;
    if ((*args = calloc((size_t)argc + 1, sizeof **args)) == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    for (int i = 0; i < argc; i++) {
        (*args)[i] = argv[i];
        if (i == 0 || strncmp(argv[i], opt, sizeof opt - 1))
            continue;
        const char *rest = argv[i] + sizeof opt - 1;
        if (*rest == '=') { /* --check-config=FILE: "--config=FILE" is its tail, shifted */
            *file = rest + 1;
            (*args)[i] = argv[i] + sizeof opt - sizeof config_flag;
            memcpy((*args)[i], config_flag, sizeof config_flag - 1);
        } else if (*rest == '\0' && i + 1 < argc) {
            *file = argv[i + 1];
            (*args)[i] = config_flag;
        } else if (*rest == '\0') {
            return sl_status_set(st, SL_EINVAL, "--check-config needs a FILE");
        }
    }
    return SL_OK;
}

int main(int argc, char **argv)
{
    tune_malloc();
    sl__config cfg;
    sl__config_init(&cfg);
    server s = {0};
    s.sink = (sl__logsink){store_log, &s};
    sl_status st;
    sl_status_clear(&st);
    extern char **environ;
    sl__config_source src = {.read_file = sl__sluiced_read_file, .envp = environ};
    char **args = NULL;
    const char *checked = NULL;
    int rc = check_config_args(argc, argv, &args, &checked, &st);
    s.checking = checked != NULL;
    if (rc == SL_OK)
        rc = sl__config_load(&cfg, argc, args, &src, &st);
    if (rc == SL_OK && cfg.help) {
        usage(stdout);
        sl__config_free(&cfg);
        free(args);
        return 0;
    }
    s.loop = uv_default_loop();
    s.cfg = &cfg;
    if (rc == SL_OK) { /* first: everything after it logs there */
        sl__log_opts lo = {.format = cfg.log_format,
                           .level = cfg.log_level,
                           .path = cfg.log_file,
                           .access = cfg.access_log || cfg.log_requests};
        rc = sl__log_open(&s.log, &lo, &st);
    }
    if (rc == SL_OK)
        rc = sl__sluiced_setup_tls(&s, &cfg, &st);
    if (rc == SL_OK)
        rc = setup(&s, &cfg, &st);
    if (rc == SL_OK)
        rc = sl__sluiced_check_plaintext(&cfg, &st);
    if (rc == SL_OK) {
        rc = setup_revocation(&s, &cfg, &st);
        if (rc == SL_OK && !s.checking &&
            (rc = sl__wss_server_new(&s.wss, s.loop, s.ctx, &s.router.authn, &cfg.ws)) != SL_OK)
            sl_status_set(&st, rc, "cannot set up the WebSocket endpoint");
        sl__wss_server_set_log(s.wss, s.log);
        /* the server API's sessions and the audit read route's file */
        s.router.wss = s.wss;
        s.router.audit = s.audit;
        s.router.audit_path = cfg.audit_log;
        s.router.loop = s.loop;
        if (rc == SL_OK && !s.checking)
            rc = setup_listeners(&s, &cfg, &st);
    }
    if (rc == SL_OK && s.checking) {
        printf("%s: ok\n", checked);
        fflush(stdout);
    } else if (rc == SL_OK) {
        s.sigint.data = s.sigterm.data = s.sighup.data = &s;
        uv_signal_init(s.loop, &s.sigint);
        uv_signal_init(s.loop, &s.sigterm);
        uv_signal_init(s.loop, &s.sighup);
        uv_signal_start(&s.sigint, on_signal, SIGINT);
        uv_signal_start(&s.sigterm, on_signal, SIGTERM);
        uv_signal_start(&s.sighup, on_hangup, SIGHUP);
        /* One line per listener (tests read the port from it). */
        for (size_t i = 0; i < s.nhttp; i++) {
            const sl__cfg_listener *l = i < cfg.nlisteners ? &cfg.listeners[i] : NULL;
            const char *host = l ? l->host : cfg.host;
            const char *opts = l && strchr(l->text, ',') ? strchr(l->text, ',') + 1 : "";
            sl__logf(s.log, SL__LOG_START, NULL,
                     "sluiced listening on %s%s%s:%d (%s%sauthz %s, jwt %s, revocation %s, "
                     "engine %s%s%s%s)",
                     strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
                     sl_http_server_port(s.http[i]), opts, *opts ? "; " : "",
                     sl_mode_name(sl_ctx_mode(s.ctx)), s.keys ? "on" : "off",
                     s.revocation ? sl_revocation_store_name(s.revocation) : "off", cfg.engine,
                     s.kv ? " in " : "", s.kv ? (sl__sluiced_data_dir(&cfg)) : "",
                     s.kv ? (!strcmp(cfg.durability, "sync")    ? ", durability sync"
                             : !strcmp(cfg.durability, "batch") ? ", durability batch"
                                                                : ", durability none")
                          : "");
        }
        if (s.tls)
            sl__logf(s.log, SL__LOG_START, NULL, "TLS certificate %s", sl__tls_ctx_describe(s.tls));
        uv_run(s.loop, UV_RUN_DEFAULT);
    } else if (s.checking) {
        fprintf(stderr, "sluiced: %s: %s\n", checked, st.message[0] ? st.message : sl_strerror(rc));
    } else {
        /* into the log, and on stderr too when the log is a file: whoever started sluiced
         * sees why it did not start */
        const char *why = st.message[0] ? st.message : sl_strerror(rc);
        sl__logf(s.log, SL__LOG_ERROR, NULL, "%s", why);
        if (!sl__log_to_stderr(s.log))
            sl__logf(NULL, SL__LOG_ERROR, NULL, "%s", why);
    }
    if (s.revocation) /* start-up failed after it was made: let its handles close */
        sl_revocation_store_free(s.revocation);
    sl_introspect_free(s.introspect);
    sl_jwks_free(s.jwks);
    if (s.nonces) /* pending answers: 503 (sessions still there to hear it); closes in the run below
                   */
        s.nonces->free(s.nonces);
    s.router.wss = NULL;
    sl__wss_server_free(s.wss);
    if (s.ctx) /* the policy regime's handles close in the run below */
        sl_ctx_set_regime(s.ctx, NULL);
    if (s.loop)
        uv_run(s.loop, UV_RUN_NOWAIT);
    for (size_t i = 0; i < s.nhttp; i++) {
        sl_http_server_close(s.http[i]); /* start-up failed after it was made */
        uv_run(s.loop, UV_RUN_NOWAIT);
        sl_http_server_free(s.http[i]);
    }
    sl__tls_ctx_unref(s.tls);
    if (s.rkv) /* before the engine's connection it borrows */
        s.rkv->ops->free(s.rkv);
    sl__shared_state_free(s.shared);
    if (s.redis) /* start-up failed before the context took it */
        s.redis->ops->free(s.redis);
    sl_ctx_free(s.ctx); /* the engine, before the store it writes through */
    sl__workspaces_free(s.workspaces);
    /* after the context that borrowed it */
    sl__metrics_free(s.metrics);
    if (s.loop) /* the Redis connections close */
        uv_run(s.loop, UV_RUN_NOWAIT);
    if (s.kv) {
        sl__lmdb_stats ls;
        sl__lmdb_stats_get(s.kv, &ls);
        sl__logf(s.log, SL__LOG_INFO, NULL,
                 "store: %lu commits, %lu fsyncs, %lu failed, map %zu MiB", ls.commits, ls.syncs,
                 ls.failed, ls.map_size >> 20);
        s.kv->ops->free(s.kv); /* commits what is left */
        uv_run(s.loop, UV_RUN_NOWAIT);
    }
    if (s.loop)
        uv_loop_close(s.loop);
    sl_broker_free(s.broker);
    for (size_t i = 0; i < s.nauths; i++)
        s.auths[i]->free(s.auths[i]);
    sl_apikey_store_close(s.apikeys);
    sl_httpsig_keyring_free(s.sigkeys);
    for (size_t i = 0; i < s.nmodes; i++)
        free((char *)s.modes[i].prefix);
    free(s.modes);
    sl_jwt_keyring_free(s.upstream_keys);
    sl_jwt_keyring_free(s.keys);
    sl__audit_routes_free(&s.router);
    sl__router_clear(&s.router);
    sl_audit_log_close(s.audit);
    sl__log_free(s.log);
    sl__config_free(&cfg);
    sl__aclfile_state_free(&s.aclfile);
    free(args);
    return rc == SL_OK ? 0 : 1;
}
