/* Identities, roles, modes and sources: the vocabulary shared by authenticators, the authoriser and
 * every transport. */
#include <sluice/sluice.h>

#include <stdlib.h>
#include <string.h>

sl_role sl_role_parse(const char *s)
{
    if (s == NULL)
        return SL_ROLE_NONE;
    if (strcmp(s, "read") == 0)
        return SL_ROLE_READ;
    if (strcmp(s, "write") == 0)
        return SL_ROLE_WRITE;
    if (strcmp(s, "admin") == 0)
        return SL_ROLE_ADMIN;
    return SL_ROLE_NONE;
}

const char *sl_role_name(sl_role r)
{
    switch (r) {
    case SL_ROLE_READ:
        return "read";
    case SL_ROLE_WRITE:
        return "write";
    case SL_ROLE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

sl_mode sl_mode_parse(const char *s)
{
    if (s == NULL)
        return (sl_mode)-1;
    if (strcmp(s, "open") == 0)
        return SL_MODE_OPEN;
    if (strcmp(s, "acl") == 0)
        return SL_MODE_ACL;
    if (strcmp(s, "token") == 0 || strcmp(s, "jwt") == 0)
        return SL_MODE_TOKEN;
    if (strcmp(s, "inherit") == 0)
        return SL_MODE_INHERIT;
    if (strcmp(s, "policy") == 0)
        return SL_MODE_POLICY;
    return (sl_mode)-1;
}

const char *sl_mode_name(sl_mode m)
{
    switch (m) {
    case SL_MODE_OPEN:
        return "open";
    case SL_MODE_ACL:
        return "acl";
    case SL_MODE_TOKEN:
        return "token";
    case SL_MODE_POLICY:
        return "policy";
    default:
        return "inherit";
    }
}

const char *sl_source_name(sl_source s)
{
    static const char *const names[] = {"none",          "local",        "system",
                                        "jwt",           "api-key",      "signature",
                                        "introspection", "upstream-jwt", "certificate"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "none";
}

/* Field by field rather than a memset of the whole struct: it is cleared three times per
 * request on the authentication path, and the text arrays are hundreds of bytes that only need
 * their first one. Every field must be named here. */
void sl_identity_init(sl_identity *id)
{
    id->principal[0] = '\0';
    id->source = SL_SOURCE_NONE;
    id->role = SL_ROLE_NONE;
    id->scoped = 0;
    id->channels = NULL;
    id->nchannels = 0;
    id->token_id[0] = '\0';
    id->issued_at = 0;
    id->expires_at = 0;
    id->workspace[0] = '\0';
    id->crossed = 0;
}

void sl_identity_local(sl_identity *id, const char *principal)
{
    sl_identity_init(id);
    id->source = SL_SOURCE_LOCAL;
    if (principal) {
        size_t n = strnlen(principal, SL_PRINCIPAL_MAX);
        memcpy(id->principal, principal, n);
        id->principal[n] = '\0';
    }
}

void sl_identity_clear(sl_identity *id)
{
    if (id == NULL)
        return;
    for (size_t i = 0; i < id->nchannels; i++)
        free(id->channels[i]);
    free(id->channels);
    sl_identity_init(id);
}

int sl_principal_valid(const char *p, size_t len)
{
    if (p == NULL || len == 0 || len > SL_PRINCIPAL_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\' || c == '"' || c == '\'')
            return 0;
    }
    return 1;
}

int sl_workspace_valid(const char *w, size_t len)
{
    if (w == NULL || len == 0 || len > SL_WORKSPACE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)w[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int sl_identity_copy(sl_identity *dst, const sl_identity *src)
{
    *dst = *src;
    dst->channels = NULL;
    dst->nchannels = 0;
    if (src->nchannels == 0)
        return SL_OK;
    if ((dst->channels = calloc(src->nchannels, sizeof *dst->channels)) == NULL)
        goto oom;
    for (; dst->nchannels < src->nchannels; dst->nchannels++)
        if ((dst->channels[dst->nchannels] = strdup(src->channels[dst->nchannels])) == NULL)
            goto oom;
    return SL_OK;
oom:
    sl_identity_clear(dst);
    return SL_ENOMEM;
}

/* The values of an identity provider's scope that speak for sluice. Anything else in the scope
 * (openid, profile, another API's scopes) is none of sluice's business and is ignored. */
#define SCOPE_PREFIX "sluice:"
#define SCOPE_CHANNEL "sluice:channel:"
#define SCOPE_VALUES_MAX 1024

int sl_identity_apply_scope(sl_identity *id, const char *scope, size_t len)
{
    if (id == NULL || (scope == NULL && len > 0))
        return SL_EINVAL;
    sl_role ceiling = SL_ROLE_NONE;
    size_t nvalues = 0, npat = 0;
    char **pats = NULL;
    int rc = SL_OK;
    for (size_t i = 0; rc == SL_OK && i < len;) {
        while (i < len && scope[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && scope[i] != ' ')
            i++;
        const char *v = scope + start;
        size_t n = i - start;
        if (n == 0)
            break;
        if (++nvalues > SCOPE_VALUES_MAX) {
            rc = SL_ELIMIT;
        } else if (n > strlen(SCOPE_CHANNEL) &&
                   memcmp(v, SCOPE_CHANNEL, strlen(SCOPE_CHANNEL)) == 0) {
            const char *pat = v + strlen(SCOPE_CHANNEL);
            size_t plen = n - strlen(SCOPE_CHANNEL);
            char **grown = NULL;
            if (!sl_pattern_valid(pat, plen))
                rc = SL_EINVAL;
            else if ((grown = realloc(pats, (npat + 1) * sizeof *pats)) == NULL)
                rc = SL_ENOMEM;
            else if ((pats = grown, pats[npat] = strndup(pat, plen)) == NULL)
                rc = SL_ENOMEM;
            else
                npat++;
        } else if (n >= strlen(SCOPE_PREFIX) &&
                   memcmp(v, SCOPE_PREFIX, strlen(SCOPE_PREFIX)) == 0) {
            char name[8] = "";
            size_t rlen = n - strlen(SCOPE_PREFIX);
            if (rlen < sizeof name)
                memcpy(name, v + strlen(SCOPE_PREFIX), rlen);
            sl_role r = sl_role_parse(name);
            if (r == SL_ROLE_NONE)
                rc = SL_EINVAL; /* a sluice value we do not know: refuse rather than guess */
            else if (r > ceiling)
                ceiling = r;
        }
    }
    if (rc != SL_OK) {
        for (size_t k = 0; k < npat; k++)
            free(pats[k]);
        free(pats);
        return rc;
    }
    if (ceiling != SL_ROLE_NONE)
        id->role = ceiling;
    if (npat > 0) {
        for (size_t k = 0; k < id->nchannels; k++)
            free(id->channels[k]);
        free(id->channels);
        id->channels = pats;
        id->nchannels = npat;
        id->scoped = 1;
    }
    return SL_OK;
}
