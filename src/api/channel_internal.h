/* What the channel API's files (channel.c, channel_sync.c, acl.c) share: how a caller is named
 * in answers and audit records, and how its workspace shows. Internal. */
#ifndef SLUICE_API_CHANNEL_INTERNAL_H
#define SLUICE_API_CHANNEL_INTERNAL_H

#include <sluice/sluice.h>

#include "security/workspace.h"

/* The caller's name in audit records: "system" for an in-process caller without one. */
static inline const char *principal_of(const sl_identity *who)
{
    return who == NULL || who->principal[0] == '\0' ? "system" : who->principal;
}

/* The caller's workspace ("" for the default one). */
static inline const char *workspace_of(const sl_identity *who)
{
    return who == NULL ? "" : who->workspace;
}

/* The caller's own name of a channel (its messages and replies never show internal ids). */
static inline const char *shown(const char *id)
{
    return sl__ws_name(id);
}

/* The workspace field of audit records: NULL (left out) for the default workspace. */
static inline const char *audit_ws(const sl_identity *who)
{
    return who && who->workspace[0] ? who->workspace : NULL;
}

#endif
