/* sluiced's transport security: the listeners' TLS settings checked and the context loaded at
 * start, the certificate and key read again on SIGHUP (new connections get the new context, open
 * ones keep theirs), and the rule that plaintext serves only loopback addresses unless
 * --insecure is given (tokens and messages would otherwise cross the network readable). */
#include <string.h>

#include "net/http.h"
#include "net/tls.h"
#include "server/log.h"
#include "server/sluiced.h"

int sl__sluiced_is_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

/* The first listener on a non-loopback address (plaintext ones only when plain), or NULL. */
const char *sl__sluiced_exposed(const sl__config *cfg, int plain)
{
    if (cfg->nlisteners == 0)
        return sl__sluiced_is_loopback(cfg->host) ? NULL : cfg->host;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (!sl__sluiced_is_loopback(cfg->listeners[i].host) && !(plain && cfg->listeners[i].tls))
            return cfg->listeners[i].host;
    return NULL;
}

/* The listeners' TLS settings hang together, and the context loads (before anything else
 * starts, so a bad file is a start-up error). */
int sl__sluiced_setup_tls(server *s, const sl__config *cfg, sl_status *st)
{
    int tls = 0, mtls = 0;
    if (cfg->nlisteners > SL__MAX_LISTENERS)
        return sl_status_set(st, SL_ECONFIG, "at most %d listeners", SL__MAX_LISTENERS);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        tls |= cfg->listeners[i].tls;
        mtls |= cfg->listeners[i].mtls != SL__TLS_CLIENT_NONE;
    }
    if (tls && (cfg->tls_cert == NULL || cfg->tls_key == NULL))
        return sl_status_set(st, SL_ECONFIG,
                             "a listener serves TLS: configure --tls-cert and --tls-key");
    if (!tls && (cfg->tls_cert || cfg->tls_key))
        return sl_status_set(st, SL_ECONFIG,
                             "tls_cert/tls_key are set but no listener serves TLS (add ,tls to a "
                             "--listen)");
    if (mtls && cfg->tls_client_ca == NULL)
        return sl_status_set(st, SL_ECONFIG,
                             "a listener asks for client certificates (,mtls): configure "
                             "--tls-client-ca");
    if (!mtls && cfg->tls_client_ca)
        return sl_status_set(st, SL_ECONFIG,
                             "tls_client_ca is set but no listener asks for client certificates "
                             "(add ,mtls to a TLS --listen)");
    if (!tls)
        return SL_OK;
    s->tls_files.cert = cfg->tls_cert;
    s->tls_files.key = cfg->tls_key;
    s->tls_files.client_ca = cfg->tls_client_ca;
    return sl__tls_ctx_new(&s->tls, &s->tls_files, st);
}

/* Plaintext only on loopback, unless --insecure (a rule taken from wove, one of the seed
 * documents: TLS off loopback): tokens and messages would cross the network readable by anyone
 * on the path. */
int sl__sluiced_check_plaintext(const sl__config *cfg, sl_status *st)
{
    const char *host = sl__sluiced_exposed(cfg, 1);
    if (host == NULL || cfg->insecure)
        return SL_OK;
    return sl_status_set(st, SL_ECONFIG,
                         "refusing to serve plaintext HTTP on %s (not a loopback address): add "
                         ",tls to its --listen (with --tls-cert and --tls-key) or pass --insecure",
                         host);
}

/* SIGHUP, TLS: the certificate and key are read again; new connections get the new context, open
 * ones keep theirs. Files that do not load leave the current context in place. */
void sl__sluiced_reload_tls(server *s, const sl__config *cfg)
{
    if (s->tls == NULL)
        return;
    sl_status st;
    sl_status_clear(&st);
    sl__tls_ctx *fresh;
    if (sl__tls_ctx_new(&fresh, &s->tls_files, &st) != SL_OK) {
        sl__logf(s->log, SL__LOG_ERROR, NULL,
                 "TLS reload failed, keeping the current certificate: %s", st.message);
        return;
    }
    for (size_t i = 0; i < s->nhttp; i++)
        if (i < cfg->nlisteners && cfg->listeners[i].tls)
            sl_http_server_set_tls(s->http[i], fresh, cfg->listeners[i].mtls);
    sl__tls_ctx_unref(s->tls);
    s->tls = fresh;
    sl__logf(s->log, SL__LOG_INFO, NULL, "TLS certificate reloaded (%s)",
             sl__tls_ctx_describe(fresh));
}
