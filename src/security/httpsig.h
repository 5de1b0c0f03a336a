/* The server side of signed requests beyond the public API (include/sluice/httpsig.h): the
 * replay store every verified nonce goes through, its in-memory implementation, and the request
 * authenticator that joins the verifier and the replay store into the authentication chain. The
 * Redis replay store (several nodes) is src/store/redis_nonce.h. */
#ifndef SLUICE_SECURITY_HTTPSIG_H
#define SLUICE_SECURITY_HTTPSIG_H

#include <stddef.h>

#include <sluice/authn.h>
#include <sluice/httpsig.h>

/* sl_httpsig_verify with the minimum policy (@method, the target, content-digest with a body)
 * switched off when minimum is 0: the key's own components are still required. For test
 * vectors that cover less than sluice asks; the server always uses sl_httpsig_verify. */
int sl__httpsig_verify_policy(const sl_httpsig_keyring *kr, const sl_authn_request *r, double now,
                              double max_skew, int minimum, sl_httpsig_verified *out,
                              sl_status *st);

/* Told what a verification's nonce will be (and its signature's created), before the body's
 * digest and the signature are checked (the request may still be refused after). */
typedef void (*sl__httpsig_early_fn)(void *ud, const char *keyid, const char *nonce,
                                     double created);

/* sl_httpsig_verify (minimum policy), calling early (when not NULL) once the signature's key,
 * freshness, nonce and components have passed and it carries a nonce. */
int sl__httpsig_verify_early(const sl_httpsig_keyring *kr, const sl_authn_request *r, double now,
                             double max_skew, sl__httpsig_early_fn early, void *ud,
                             sl_httpsig_verified *out, sl_status *st);

/* A nonce store's answer, exactly once: SL_OK the nonce is new and is now remembered; SL_ETOKEN
 * it was seen before (a replay); SL_ELIMIT the store is full (it refuses rather than forgets);
 * SL_EUNAVAIL it cannot answer (fail closed). */
typedef void (*sl__nonce_fn)(void *ud, int status);

/* Where nonces are remembered until `until` (absolute seconds, the same clock as now), keyed by
 * keyid and nonce together. created is the signature's (a replay repeats it: the signature covers
 * it), so a store may keep each second's nonces apart and look for a replay among its second's
 * only; a nonce sent again under another created is a new request. remember calls fn now or later
 * from the loop. */
#define SL__NONCE_BY_SECOND 1 /* remember and prefetch take created (bench/bench_nonce.c asks) */
typedef struct sl__nonce_store {
    void (*remember)(struct sl__nonce_store *s, const char *keyid, const char *nonce,
                     double created, double until, double now, sl__nonce_fn fn, void *ud);
    /* Optional (NULL: none). A remember of this keyid, nonce and created is likely soon: the
     * store may start bringing what it will look at into the cache meanwhile. No answer, no
     * effect on what remember answers. */
    void (*prefetch)(struct sl__nonce_store *s, const char *keyid, const char *nonce,
                     double created);
    /* Answers what is pending with SL_EUNAVAIL, then frees. */
    void (*free)(struct sl__nonce_store *s);
} sl__nonce_store;

/* One node's store: at most max nonces (0: 100000), kept by the second of their created and
 * forgotten a second's worth at a time once the latest until of that second has passed.
 * SL_ENOMEM, or SL_EINTERNAL when no random hash key could be drawn. */
int sl__nonce_memory_new(size_t max, sl__nonce_store **out);
/* Nonces held: live ones, and those of seconds not swept yet. */
size_t sl__nonce_memory_size(const sl__nonce_store *s);
/* For tests: the seconds held (and *index, when not NULL, the size of their index), and the table
 * of created's second (0: none) with the one being moved into it (0: none). */
size_t sl__nonce_memory_generations(const sl__nonce_store *s, size_t *index);
void sl__nonce_memory_tables(const sl__nonce_store *s, double created, size_t *cap,
                             size_t *old_cap);

/* The key a nonce is remembered under: hex SHA-256 of keyid, a NUL and nonce (fixed length, so a
 * long or odd nonce cannot shape the store's keys). */
#define SL__NONCE_KEY_LEN 64
void sl__nonce_key(const char *keyid, const char *nonce, char out[SL__NONCE_KEY_LEN + 1]);

/* The request authenticator (kind SL_AUTHN_KIND_SIGNED, name "signature"): verifies with kr,
 * max_skew seconds either side of now (0: SL_HTTPSIG_DEFAULT_SKEW), remembers each nonce in
 * nonces until created + max_skew, and answers an identity of source SL_SOURCE_SIGNATURE with the
 * key's principal, role and channel scope (token id: the keyid, so revoking it refuses the key;
 * issued_at: created). kr and nonces are borrowed. Release with (*out)->free(*out). */
int sl__httpsig_authenticator_new(const sl_httpsig_keyring *kr, sl__nonce_store *nonces,
                                  double max_skew, sl_authenticator **out);

#endif
