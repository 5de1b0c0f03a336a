/* The upstream-JWT authenticator: tokens of the deployment's own identity provider, verified with
 * configured keys (an HS256 secret or a public key) or with the provider's published JWKS, and
 * iss/aud checks. `sub` becomes the
 * principal; the token's role and channel claims are ignored, because an identity provider vouches
 * for who the caller is, not for what sluice lets it do (the broker and the ACL decide that). */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <sluice/authn.h>
#include <sluice/jwks.h>
#include <sluice/jwt.h>

#ifdef __cplusplus
extern "C" {
#endif

/* keys and opts are borrowed and must outlive the authenticator; opts->issuer / audience should be
 * set (an identity provider's tokens are meant for someone). Release with (*out)->free(*out). */
int sl_upstream_authenticator_new(sl_jwt_keyring *keys, const sl_jwt_verify_opts *opts,
                                  sl_authenticator **out);

/* The same with the keys of a JWKS client (borrowed; it must outlive the authenticator, and be
 * freed first while the loop runs so that waiting tokens are answered). A token whose kid the
 * current set holds is verified at once; otherwise it waits for the client (sl_jwks_wait) and is
 * answered from the loop: SL_EUNAVAIL ("identity provider keys unavailable", 503) when there are
 * no usable keys, else the verifier's answer ("unknown key id" when the kid is still unknown). */
int sl_upstream_authenticator_new_jwks(sl_jwks *jwks, const sl_jwt_verify_opts *opts,
                                       sl_authenticator **out);

#ifdef __cplusplus
}
#endif
#endif
