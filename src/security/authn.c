/* Bearer-token authentication for network transports (step 1 of the pipeline). */
#include <sluice/authn.h>

#include <string.h>
#include <strings.h>

const char *sl_authn_bearer_token(const char *header, size_t len, size_t *tlen)
{
    if (header == NULL || len < 7 || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    const char *t = header + 7;
    size_t n = len - 7;
    while (n && *t == ' ') {
        t++;
        n--;
    }
    while (n && t[n - 1] == ' ')
        n--;
    if (n == 0)
        return NULL;
    *tlen = n;
    return t;
}

int sl_authn_bearer(const sl_authn *a, const char *header, size_t len, double now, sl_identity *out,
                    sl_status *st)
{
    if (a == NULL || a->keys == NULL) {
        sl_identity_init(out);
        out->source = SL_SOURCE_NONE;
        strcpy(out->principal, "anonymous");
        return SL_OK;
    }
    if (header == NULL)
        return sl_status_set(st, SL_EUNAUTH, "authentication required");
    size_t tlen;
    const char *tok = sl_authn_bearer_token(header, len, &tlen);
    if (tok == NULL)
        return sl_status_set(st, SL_EUNAUTH, "a Bearer token is required");
    return sl_jwt_verify(a->keys, tok, tlen, &a->jwt, now, out, st);
}
