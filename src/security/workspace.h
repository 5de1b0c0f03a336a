/* Workspaces (tenants), docs/POLICY.md "Workspaces": the pipeline's workspace step (step 2 of the
 * decision: a caller only touches its own workspace's resources), the operator who may cross into
 * a workspace, and each workspace's limits (channels, connections, commands per second).
 *
 * Names: core/wsid.h (a workspace's channel "jobs" is "WS/jobs" inside sluice).
 * Ownership: sl__workspaces_new gives the caller a set it frees with sl__workspaces_free; the
 * context and the transports borrow it (sl__ctx_set_workspaces). All functions run on the loop's
 * thread. */
#ifndef SLUICE_SECURITY_WORKSPACE_H
#define SLUICE_SECURITY_WORKSPACE_H

#include <sluice/sluice.h>

#include "core/wsid.h"

#include <stddef.h>

/* ---- step 2 of the decision ----------------------------------------------------------------- */

/* The workspace step: SL_OK, or SL_EFORBIDDEN when who may not touch *resource from where it is.
 * A channel resource may come as the caller's name or as an internal id; it must be of who's
 * workspace, and on SL_OK *resource is the caller's name and qid (SL__QID_SIZE bytes) the id the
 * registry and the engine know (qid is "" for other resources). A principal resource is always
 * the caller's name (internal forms are refused). who is an authenticated caller (step 1 let the
 * others through already). */
int sl__ws_decide(const sl_identity *who, const sl_op_info *info, const char **resource, char *qid);
/* who's principal as the ACL and the broker key it: "WS/principal" (buf: SL__QPRINCIPAL_SIZE
 * bytes), or who->principal itself in the default workspace and for an operator that crossed
 * (its own grants go with it). */
const char *sl__ws_principal(const sl_identity *who, char *buf);

/* ---- operators and limits ------------------------------------------------------------------- */

typedef struct sl__ws_limits {
    size_t channels; /* channels the workspace may hold (dead-letter queues count); 0: no limit */
    size_t connections; /* WebSocket sessions at once; 0: no limit */
    double rate;        /* commands per second, every transport (a bucket of `rate` tokens) */
    size_t messages;    /* stored messages, every channel of the workspace; 0: no limit */
} sl__ws_limits;

typedef struct sl__workspaces sl__workspaces;

/* *out owned by the caller (sl__workspaces_free). SL_ENOMEM. */
int sl__workspaces_new(sl__workspaces **out);
void sl__workspaces_free(sl__workspaces *w);
/* Adds limits from "NAME:channels=N,connections=N,rate=N,messages=N" entries separated by spaces or
 * ';' (NAME "*": every workspace without an entry of its own; a key left out: no limit). The
 * default workspace ("") has no limits. SL_EINVAL with the reason in st. */
int sl__workspaces_parse_limits(sl__workspaces *w, const char *spec, sl_status *st);
/* Names principals allowed to cross into any workspace (space or comma separated). Only an
 * identity of the default workspace (none of its own) can be an operator. SL_EINVAL, SL_ENOMEM. */
int sl__workspaces_parse_operators(sl__workspaces *w, const char *spec, sl_status *st);
/* The limits of workspace ws (NULL for the default workspace: none). */
const sl__ws_limits *sl__ws_limits_of(const sl__workspaces *w, const char *ws);

/* An operator addressing workspace `target` (a request header, a connect option): who must be
 * of no workspace and be a configured operator (w may be NULL: nobody is); its workspace becomes
 * target. SL_OK; SL_EFORBIDDEN (403) for anybody else; SL_EINVAL for a bad workspace name.
 * Audited by the caller's transport (sl__ws_cross_audit). */
int sl__ws_cross(const sl__workspaces *w, sl_identity *who, const char *target, sl_status *st);
void sl__ws_cross_audit(sl_ctx *ctx, const sl_identity *who, int rc);

/* One command of workspace ws at time now (seconds): SL_OK, or SL_ELIMIT with a message naming
 * no workspace when its commands-per-second bucket is empty. NULL w or default ws: SL_OK. */
int sl__ws_charge(sl__workspaces *w, const char *ws, double now, sl_status *st);
/* A WebSocket session of ws opens (SL_ELIMIT past its connections limit) and closes. */
int sl__ws_connect(sl__workspaces *w, const char *ws, sl_status *st);
void sl__ws_disconnect(sl__workspaces *w, const char *ws);
/* A channel creation in ws that would hold the workspace above its channels limit: SL_ELIMIT
 * (`have`: the channels it holds now). */
int sl__ws_channel_room(const sl__workspaces *w, const char *ws, size_t have, sl_status *st);

/* Stored messages. The channel API counts every workspace's messages from the engine (one LIST,
 * at most once a second, when a write of a workspace with a messages limit asks) and adds the
 * writes it stored since; room freed by consumers shows at the next count.
 * sl__ws_message_room: SL_OK when n more messages fit ws's limit, else SL_EQUOTA; *recount is
 * set to 1 when a count is due (the caller counts, then asks again). */
int sl__ws_message_room(sl__workspaces *w, const char *ws, size_t n, double now, int *recount,
                        sl_status *st);
void sl__ws_stored_add(sl__workspaces *w, const char *ws, size_t n);
/* A count: begin (a count in flight), add each channel's depth under its stored id, end (ok: the
 * count replaces every workspace's number from now; else the last count stands). */
void sl__ws_recount_begin(sl__workspaces *w);
void sl__ws_recount_add(sl__workspaces *w, const char *id, size_t depth);
void sl__ws_recount_end(sl__workspaces *w, int ok, double now);

#endif
