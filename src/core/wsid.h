/* Workspace-qualified names: how a channel or a principal of a workspace is kept inside sluice.
 * A caller names channels and principals in its own workspace ("jobs", "alice"); the channel API,
 * the ACL and the broker keep them as "WS/jobs", "WS/alice". '/' is in no channel id and no
 * principal a caller can give (both are validated before anything else), so the internal form
 * cannot be typed, two workspaces' names never collide, and the default workspace ("") keeps
 * every name exactly as it was. Pure functions, no allocation, usable from every layer (the
 * engines validate stored ids with sl__stored_id_valid). */
#ifndef SLUICE_CORE_WSID_H
#define SLUICE_CORE_WSID_H

#include <sluice/sluice.h>

#include <stddef.h>

#define SL__WS_SEP '/'
/* A qualified channel id still fits every SL_CHANNEL_ID_MAX buffer: inside a workspace a name is
 * limited to SL_CHANNEL_ID_MAX - strlen(ws) - 1 bytes. */
#define SL__QID_SIZE (SL_CHANNEL_ID_MAX + 1)
/* A qualified principal: "WS/principal". */
#define SL__QPRINCIPAL_SIZE (SL_WORKSPACE_MAX + 1 + SL_PRINCIPAL_MAX + 1)

/* Writes "ws/name" (or name alone when ws is "" or NULL) into out (size bytes). SL_OK, or
 * SL_EBADID when it does not fit. name is not validated here. */
int sl__ws_qualify(const char *ws, const char *name, char *out, size_t size);
/* The caller-visible part of an internal name: what follows the first '/', or name itself. */
const char *sl__ws_name(const char *qualified);
/* 1 when internal name q belongs to workspace ws ("" for the default workspace: q has no '/'). */
int sl__ws_owns(const char *ws, const char *q);
/* A channel id as engines store it: a caller's id, or "WS/id" with a valid workspace. */
int sl__stored_id_valid(const char *id, size_t len);
/* A principal as the ACL and the broker store it: a principal, or "WS/principal". */
int sl__stored_principal_valid(const char *p, size_t len);

#endif
