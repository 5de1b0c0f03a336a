/* Authentication: step 1 of the pipeline. Turns the credential a network transport received into an
 * sl_identity. This authenticator verifies sluice JWTs (bearer tokens); API keys, upstream
 * identity providers and signed requests plug in here later. Without any key configured the server
 * runs open and callers are anonymous. */
#ifndef SLUICE_AUTHN_H
#define SLUICE_AUTHN_H

#include <stddef.h>

#include <sluice/jwt.h>
#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_authn {
    sl_jwt_keyring *keys; /* borrowed; NULL: no JWT authentication (open server) */
    sl_jwt_verify_opts jwt;
} sl_authn;

/* Authenticates an HTTP Authorization header value (NULL when absent) at time now.
 *   no keys: anonymous identity (source SL_SOURCE_NONE, principal "anonymous"), SL_OK;
 *   keys and no header, or a scheme other than Bearer: SL_EUNAUTH;
 *   keys and a bad token: SL_ETOKEN / SL_EEXPIRED with a short description in st.
 * `out` must be initialised; release with sl_identity_clear. */
int sl_authn_bearer(const sl_authn *a, const char *header, size_t len, double now, sl_identity *out,
                    sl_status *st);

/* Extracts the token of a "Bearer <token>" header (scheme case-insensitive). NULL when it is not
 * one; *tlen receives the token length. */
const char *sl_authn_bearer_token(const char *header, size_t len, size_t *tlen);

#ifdef __cplusplus
}
#endif
#endif
