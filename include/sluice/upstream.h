/* The upstream-JWT authenticator: tokens of the deployment's own identity provider, verified with
 * configured keys (HS256 secret, ES256 or EdDSA public key) and iss/aud checks. `sub` becomes the
 * principal; the token's role and channel claims are ignored, because an identity provider vouches
 * for who the caller is, not for what sluice lets it do (the broker and the ACL decide that). */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <sluice/authn.h>
#include <sluice/jwt.h>

#ifdef __cplusplus
extern "C" {
#endif

/* keys and opts are borrowed and must outlive the authenticator; opts->issuer / audience should be
 * set (an identity provider's tokens are meant for someone). Release with (*out)->free(*out). */
int sl_upstream_authenticator_new(sl_jwt_keyring *keys, const sl_jwt_verify_opts *opts,
                                  sl_authenticator **out);

#ifdef __cplusplus
}
#endif
#endif
