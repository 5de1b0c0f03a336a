/* An identity provider's signing keys, fetched from its JWKS (RFC 7517) -- at a configured URL or
 * found through OpenID Connect discovery (ISSUER/.well-known/openid-configuration -> jwks_uri) --
 * and kept current on the server's libuv loop (libcurl's multi interface). The keys are refreshed
 * when their HTTP cache lifetime ends (Cache-Control max-age, else Expires; clamped to
 * [refresh_min, refresh_max]) and when a token names a kid the set does not hold, at most once per
 * unknown_kid_interval, so tokens with made-up kids cannot make us flood the provider. When the
 * provider is unreachable or answers garbage, the last good keys stay in use until max_stale
 * seconds past their lifetime; after that, callers are told SL_EUNAVAIL (fail closed, 503).
 * docs/JWKS.md describes it whole.
 *
 * Start-up: the first fetch starts in sl_jwks_new and runs on the loop. Until it completes,
 * callers wait for it (sl_jwks_wait); if it fails they are told SL_EUNAVAIL, and later callers
 * either start a new fetch (at most one per unknown_kid_interval) and wait for it, or are told
 * SL_EUNAVAIL at once.
 *
 * Threading: one loop thread; nothing here is thread-safe. */
#ifndef SLUICE_JWKS_H
#define SLUICE_JWKS_H

#include <stddef.h>
#include <uv.h>

#include <sluice/jwt.h>
#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_JWKS_DEFAULT_REFRESH_MIN 300.0         /* seconds */
#define SL_JWKS_DEFAULT_REFRESH_MAX 86400.0       /* seconds */
#define SL_JWKS_DEFAULT_UNKNOWN_KID_INTERVAL 60.0 /* seconds */
#define SL_JWKS_DEFAULT_MAX_STALE 43200.0         /* seconds */
#define SL_JWKS_DEFAULT_TIMEOUT_MS 10000          /* one fetch, connect included */
#define SL_JWKS_DEFAULT_MAX_WAITING 10000         /* callers waiting for a fetch */

typedef struct sl_jwks sl_jwks;

typedef struct sl_jwks_opts {
    /* The key set's URL; or NULL with issuer set: found by OIDC discovery. https://, or http://
     * to a loopback host only unless allow_http (also for a discovered jwks_uri). */
    const char *url;
    /* The provider's issuer identifier: discovery fetches ISSUER/.well-known/openid-configuration
     * and requires its "issuer" to be exactly this (OpenID Connect Discovery 1.0, section 4.3). */
    const char *issuer;
    int allow_http;
    const char *ca_file; /* PEM bundle to verify the provider; NULL: the system's */
    /* Seconds; 0: the defaults above. 0 < refresh_min <= refresh_max; max_stale < 0 means 0. */
    double refresh_min, refresh_max, unknown_kid_interval, max_stale;
    long timeout_ms;    /* 0: SL_JWKS_DEFAULT_TIMEOUT_MS */
    size_t max_waiting; /* 0: SL_JWKS_DEFAULT_MAX_WAITING; beyond it callers get SL_EUNAVAIL */
} sl_jwks_opts;

void sl_jwks_opts_init(sl_jwks_opts *o);

/* Creates the key source on loop and starts the first fetch. clock NULL: wall clock (lifetimes
 * and intervals; curl's timeouts run on the loop). SL_EINVAL for bad options (a URL that breaks
 * the rules above, neither url nor issuer, bounds out of order), SL_ENOMEM, SL_EINTERNAL. *out
 * owned by the caller: sl_jwks_free. */
int sl_jwks_new(sl_jwks **out, uv_loop_t *loop, const sl_jwks_opts *o, sl_clock_fn clock,
                void *clock_ud);

/* Optional log sink: one line without newline, for what changes (keys loaded, keys skipped and
 * why, fetches failing, answering again, keys gone stale); never per request. */
typedef void (*sl_jwks_log_fn)(void *ud, const char *line);
void sl_jwks_set_log(sl_jwks *j, sl_jwks_log_fn fn, void *ud);

/* The keys to verify a token whose header names kid (kidlen bytes; NULL: no kid), when they can
 * be used now without waiting: usable (not stale) and holding that kid. NULL otherwise. The
 * keyring is valid until control returns to the loop. */
sl_jwt_keyring *sl_jwks_ready(sl_jwks *j, const char *kid, size_t kidlen);

/* status SL_OK with the current keys (valid during the call only; they may still lack the kid:
 * the verifier then says "unknown key id"), or SL_EUNAVAIL with keys NULL: none were ever
 * fetched, they are stale past max_stale, too many callers wait, or the source is closing. */
typedef void (*sl_jwks_cb)(void *ud, int status, sl_jwt_keyring *keys);

/* Asks for the keys for kid: at once when sl_jwks_ready would give them; else waits for the
 * fetch under way, or starts one when the last one started for an unknown kid (or for want of
 * keys) was at least unknown_kid_interval ago; else answers at once with what there is. cb is
 * called exactly once, possibly before this returns. */
void sl_jwks_wait(sl_jwks *j, const char *kid, size_t kidlen, sl_jwks_cb cb, void *ud);

typedef struct sl_jwks_stats {
    unsigned long fetches;   /* HTTP requests made (discovery included) */
    unsigned long failures;  /* fetches that kept the old keys */
    unsigned long forced;    /* fetches started for an unknown kid or for want of keys */
    unsigned long throttled; /* unknown kids answered without a fetch (rate limit) */
    size_t keys;             /* keys held */
    size_t waiting;
} sl_jwks_stats;
void sl_jwks_get_stats(const sl_jwks *j, sl_jwks_stats *st);

/* Answers every waiting caller with SL_EUNAVAIL, stops fetching and releases the source once its
 * loop handles have closed (run the loop afterwards). */
void sl_jwks_free(sl_jwks *j);

#ifdef __cplusplus
}
#endif
#endif
