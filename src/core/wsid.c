/* Workspace-qualified names (see wsid.h): building them, taking them apart, and the validation
 * of what a store holds, which accepts both a plain name and a qualified one. */
#include "core/wsid.h"

#include <string.h>

int sl__ws_qualify(const char *ws, const char *name, char *out, size_t size)
{
    size_t wl = ws ? strlen(ws) : 0, nl = strlen(name);
    size_t need = (wl ? wl + 1 : 0) + nl + 1;
    if (need > size)
        return SL_EBADID;
    if (wl) {
        memcpy(out, ws, wl);
        out[wl] = SL__WS_SEP;
        memcpy(out + wl + 1, name, nl + 1);
    } else {
        memcpy(out, name, nl + 1);
    }
    return SL_OK;
}

const char *sl__ws_name(const char *q)
{
    const char *s = q ? strchr(q, SL__WS_SEP) : NULL;
    return s ? s + 1 : q;
}

int sl__ws_owns(const char *ws, const char *q)
{
    const char *s = strchr(q, SL__WS_SEP);
    size_t wl = ws ? strlen(ws) : 0;
    if (s == NULL)
        return wl == 0;
    return wl == (size_t)(s - q) && memcmp(q, ws, wl) == 0;
}

/* Splits at the separator: 0 when there is none, 1 with a valid workspace before it, -1 else. */
static int split(const char *s, size_t len, size_t *at)
{
    const char *p = memchr(s, SL__WS_SEP, len);
    if (p == NULL)
        return 0;
    *at = (size_t)(p - s);
    return sl_workspace_valid(s, *at) ? 1 : -1;
}

int sl__stored_id_valid(const char *id, size_t len)
{
    size_t at = 0;
    if (id == NULL || len > SL_CHANNEL_ID_MAX)
        return 0;
    switch (split(id, len, &at)) {
    case 0:
        return sl_channel_id_valid(id, len);
    case 1:
        return sl_channel_id_valid(id + at + 1, len - at - 1);
    default:
        return 0;
    }
}

int sl__stored_principal_valid(const char *p, size_t len)
{
    size_t at = 0;
    if (p == NULL)
        return 0;
    switch (split(p, len, &at)) {
    case 0:
        return sl_principal_valid(p, len);
    case 1:
        return sl_principal_valid(p + at + 1, len - at - 1);
    default:
        return 0;
    }
}
