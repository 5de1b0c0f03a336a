/* The client-certificate authenticator (certauth.h). The TLS transport has already verified the
 * certificate against the client CA; what is left is naming its holder: the subject's CN, read
 * back from the RFC 2253 text the transport gives (escapes undone), or the first subjectAltName
 * of the configured type. A name that is not a valid principal is refused rather than mangled:
 * two certificates must never end up with the same principal by accident. */
#include <sluice/certauth.h>
#include "core/numtext.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const names[] = {"cn", "dns", "uri", "email"};

int sl_cert_principal_parse(const char *s)
{
    for (int i = 0; s != NULL && i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

const char *sl_cert_principal_name(sl_cert_principal p)
{
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "?";
}

/* The first CN value of an RFC 2253 name ("CN=a\,b,O=x+OU=y"), escapes undone, into out.
 * SL_ENOENT: none; SL_ETOKEN: malformed or too long. */
static int rfc2253_cn(const char *s, char *out, size_t cap)
{
    while (*s != '\0') {
        const char *eq = strchr(s, '=');
        if (eq == NULL)
            return SL_ETOKEN;
        int is_cn = eq - s == 2 && strncasecmp(s, "CN", 2) == 0;
        size_t n = 0;
        const char *p = eq + 1;
        int bad = 0;
        for (; *p != '\0' && *p != ',' && *p != '+'; p++) {
            char ch = *p;
            if (ch == '\\') {
                int h1 = sl__hexval((unsigned char)p[1]),
                    h2 = h1 >= 0 ? sl__hexval((unsigned char)p[2]) : -1;
                if (h1 >= 0 && h2 >= 0) {
                    ch = (char)(h1 * 16 + h2);
                    p += 2;
                } else if (p[1] != '\0') {
                    ch = *++p;
                } else {
                    return SL_ETOKEN;
                }
            }
            if (n + 1 >= cap)
                bad = 1;
            else
                out[n++] = ch;
        }
        if (is_cn) {
            if (bad || n == 0)
                return SL_ETOKEN;
            out[n] = '\0';
            return SL_OK;
        }
        s = *p ? p + 1 : p;
    }
    return SL_ENOENT;
}

int sl_cert_principal_of(const sl_authn_peer *peer, sl_cert_principal from,
                         char out[SL_PRINCIPAL_MAX + 1])
{
    if (peer == NULL)
        return SL_ENOENT;
    out[0] = '\0';
    if (from == SL_CERT_PRINCIPAL_CN) {
        if (peer->subject == NULL)
            return SL_ENOENT;
        int rc = rfc2253_cn(peer->subject, out, SL_PRINCIPAL_MAX + 1);
        if (rc != SL_OK)
            return rc;
    } else {
        static const char *const prefix[] = {"", "DNS:", "URI:", "email:"};
        const char *pre = prefix[from];
        size_t pl = strlen(pre);
        const char *v = NULL;
        for (size_t i = 0; v == NULL && i < peer->nsans; i++)
            if (!strncmp(peer->sans[i], pre, pl))
                v = peer->sans[i] + pl;
        if (v == NULL)
            return SL_ENOENT;
        if (strlen(v) > SL_PRINCIPAL_MAX)
            return SL_ETOKEN;
        strcpy(out, v);
    }
    return sl_principal_valid(out, strlen(out)) ? SL_OK : SL_ETOKEN;
}

typedef struct cert_authn {
    sl_authenticator base; /* first: the chain holds a pointer to it */
    sl_cert_principal from;
} cert_authn;

static void authenticate_request(sl_authenticator *a, const sl_authn_request *req, double now,
                                 sl_authn_cb cb, void *ud)
{
    (void)now;
    const cert_authn *c = (const cert_authn *)a;
    if (req == NULL || req->peer == NULL) {
        cb(ud, SL_EUNAUTH, NULL, "no client certificate");
        return;
    }
    sl_identity who;
    sl_identity_init(&who);
    int rc = sl_cert_principal_of(req->peer, c->from, who.principal);
    if (rc != SL_OK) {
        cb(ud, SL_ETOKEN, NULL,
           rc == SL_ENOENT ? "the client certificate has no name of the configured type"
                           : "the client certificate's name is not a valid principal");
        return;
    }
    /* No role, scope, id or expiry of its own: the ACL (or the broker) decides what the holder
     * may do; a principal cut-off in the revocation store applies (issued_at 0). */
    who.source = SL_SOURCE_CERT;
    cb(ud, SL_OK, &who, NULL);
    sl_identity_clear(&who);
}

static void destroy(sl_authenticator *a)
{
    free(a);
}

int sl_cert_authenticator_new(sl_cert_principal from, sl_authenticator **out)
{
    if (out == NULL || (unsigned)from >= sizeof names / sizeof names[0])
        return SL_EINVAL;
    cert_authn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    c->base.name = "cert";
    c->base.kind = SL_AUTHN_KIND_CERT;
    c->base.authenticate_request = authenticate_request;
    c->base.free = destroy;
    c->from = from;
    *out = &c->base;
    return SL_OK;
}
