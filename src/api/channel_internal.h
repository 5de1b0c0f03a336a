/* What the channel API's files (channel.c, channel_input.c, channel_sync.c, acl.c) share: how a
 * caller is named in answers and audit records, and how its workspace shows. Internal. */
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

/* ---- channel_input.c ---------------------------------------------------------------------- */

struct sl__chop;
/* SL_OK when o can create channel id, else the error with st saying which option is wrong. */
int sl__chop_check_opts(const char *id, const sl_channel_opts *o, sl_status *st);
/* Fills info (zeroed first; owned by the caller, sl_channel_info_clear) with channel id's settings
 * from o, in workspace ws (the dead letter defaults to "<id>.dead"). SL_OK, SL_EBADID, SL_ENOMEM.
 */
int sl__chop_build_info(sl_channel_info *info, const char *id, const sl_channel_opts *o,
                        const char *ws);
/* Checks op's writes and makes the engine's messages of them (op->msgs, datas, keys, dups, eids,
 * released by sl__chop_clear): they borrow the caller's strings but for the data, which gets a
 * terminated copy. An error with op->st filled when a write is refused. */
int sl__chop_prepare_writes(struct sl__chop *op);

#endif
