/* Mutual TLS as an authenticator: the TLS transport verifies a client certificate against the
 * configured client CA and puts it on the request (sl_authn_request.peer); this authenticator
 * turns it into an identity (source SL_SOURCE_CERT) whose principal is the certificate's subject
 * CN, or its first subjectAltName of a configured type (docs/TLS.md). */
#ifndef SLUICE_CERTAUTH_H
#define SLUICE_CERTAUTH_H

#include <sluice/authn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where the principal comes from (config tls_client_principal). */
typedef enum {
    SL_CERT_PRINCIPAL_CN = 0, /* the subject's (first) commonName */
    SL_CERT_PRINCIPAL_DNS,    /* the first DNS subjectAltName */
    SL_CERT_PRINCIPAL_URI,    /* the first URI subjectAltName */
    SL_CERT_PRINCIPAL_EMAIL,  /* the first email (rfc822Name) subjectAltName */
} sl_cert_principal;

/* "cn", "dns", "uri", "email" -> the value; -1 when unknown. */
int sl_cert_principal_parse(const char *s);
const char *sl_cert_principal_name(sl_cert_principal p);

/* The principal of peer as from says, into out (NUL-terminated, at most SL_PRINCIPAL_MAX bytes).
 * SL_OK; SL_ENOENT when the certificate has no such name; SL_ETOKEN when the name is not a valid
 * principal (sl_principal_valid: e.g. a URI with '/'). */
int sl_cert_principal_of(const sl_authn_peer *peer, sl_cert_principal from,
                         char out[SL_PRINCIPAL_MAX + 1]);

/* The authenticator ("cert", kind SL_AUTHN_KIND_CERT). It answers SL_EUNAUTH when the request
 * has no verified certificate (the chain goes on), SL_ETOKEN when the certificate names no valid
 * principal, else SL_OK with the identity: no role, no channel scope, no token id (the ACL or the
 * broker decide what it may do). *out: free with (*out)->free(*out). */
int sl_cert_authenticator_new(sl_cert_principal from, sl_authenticator **out);

#ifdef __cplusplus
}
#endif
#endif
