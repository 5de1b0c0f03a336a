/* Token introspection as an authenticator of the chain: the two callback shapes are the same, so
 * the adapter only forwards. */
#include <sluice/authn.h>
#include <sluice/introspect.h>

#include <stdlib.h>

typedef struct adapter {
    sl_authenticator base; /* first: the chain holds a pointer to it */
    sl_introspect *client;
} adapter;

static void authenticate(sl_authenticator *a, const char *cred, size_t len, double now,
                         sl_authn_cb cb, void *ud)
{
    (void)now; /* the client keeps its own clock for the cache */
    sl_introspect_authenticate(((adapter *)a)->client, cred, len, cb, ud);
}

static void destroy(sl_authenticator *a)
{
    free(a);
}

int sl_introspect_authenticator_new(sl_introspect *i, sl_authenticator **out)
{
    if (i == NULL)
        return SL_EINVAL;
    adapter *ad = calloc(1, sizeof *ad);
    if (ad == NULL)
        return SL_ENOMEM;
    ad->base.name = "introspection";
    ad->base.authenticate = authenticate;
    ad->base.free = destroy;
    ad->client = i;
    *out = &ad->base;
    return SL_OK;
}
