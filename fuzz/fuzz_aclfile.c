/* Fuzz target: the ACL file parser (src/server/aclfile.c). Whatever it accepts holds
 * only valid, distinct principals with a role, applies to a context, applies again as a no-op, and
 * an empty load then revokes every grant it made: the reload's bookkeeping stays exact. The same
 * bytes go to the stored state's decoder (table meta), which must round-trip what it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_check.h"
#include "server/aclfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl__config c, empty;
    sl__config_init(&c);
    sl__config_init(&empty);
    sl_status st;
    sl_status_clear(&st);
    /* The same bytes as the stored state (table meta): what decodes encodes back to the same. */
    sl__aclfile_state stored = {0}, again = {0};
    if (sl__aclfile_state_decode(&stored, data, size, &st) == SL_OK) {
        char *text;
        size_t len;
        if (sl__aclfile_state_encode(&stored, &text, &len) != SL_OK ||
            sl__aclfile_state_decode(&again, text, len, &st) != SL_OK || again.n != stored.n)
            abort();
        for (size_t i = 0; i < stored.n; i++)
            if (strcmp(stored.principals[i], again.principals[i]) ||
                !sl_principal_valid(stored.principals[i], strlen(stored.principals[i])))
                abort();
        free(text);
    }
    sl__aclfile_state_free(&stored);
    sl__aclfile_state_free(&again);
    sl_status_clear(&st);
    if (sl__aclfile_parse(&c, (const char *)data, size, "fuzz.acl", &st) != SL_OK) {
        config_check_message(&st);
        sl__config_free(&c);
        return 0;
    }
    if (c.nchannels || c.nroles || c.nprincipals || c.ndelegates || c.ninvokes)
        abort();
    for (size_t i = 0; i < c.ngrants; i++) {
        const char *p = c.grants[i].principal;
        if (!sl_principal_valid(p, strlen(p)) || c.grants[i].role == SL_ROLE_NONE)
            abort();
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p, c.grants[j].principal))
                abort();
    }
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_ACL};
    if (sl_ctx_new(&ctx, &o) != SL_OK)
        abort();
    sl__aclfile_state state = {0};
    size_t changed, removed;
    if (sl__aclfile_apply(ctx, &c, &state, &changed, &removed, &st) != SL_OK)
        abort();
    if (changed != c.ngrants || removed != 0 || state.n != c.ngrants)
        abort();
    if (sl__aclfile_apply(ctx, &c, &state, &changed, &removed, &st) != SL_OK || changed || removed)
        abort();
    if (sl__aclfile_apply(ctx, &empty, &state, &changed, &removed, &st) != SL_OK || changed ||
        removed != c.ngrants || state.n != 0)
        abort();
    sl_acl_entry *e;
    size_t n;
    if (sl_acl_list(ctx, NULL, &e, &n, &st) != SL_OK || n != 0)
        abort();
    sl_acl_entries_free(e, n);
    sl__aclfile_state_free(&state);
    sl_ctx_free(ctx);
    sl__config_free(&c);
    return 0;
}
