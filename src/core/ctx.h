/* The context: everything one sluice instance owns (clock, store engine, server-wide mode, the
 * channel registry with each channel's settings, the ACL, the audit sink). Internal layout; the
 * public API sees an opaque sl_ctx. */
#ifndef SLUICE_CORE_CTX_H
#define SLUICE_CORE_CTX_H

#include <sluice/sluice.h>

#include "core/map.h"
#include "security/acl.h"
#include "store/engine.h"

struct sl_ctx {
    sl_mode mode;
    sl_clock_fn clock;
    void *clock_ud;
    sl_engine *engine; /* owned */
    sl__map *channels; /* the channel registry: id -> sl_channel_info* (settings; depth unused) */
    sl__acl *acl;      /* owned */
    struct sl_broker *broker; /* borrowed */
    size_t read_max_bytes;    /* cap on one read's message bytes; 0: none */
    sl_audit_fn audit;
    void *audit_ud;
    sl_event_fn listener;
    void *listener_ud;
};

/* Tells the listener, if any. */
void sl__ctx_emit(sl_ctx *ctx, const sl_event *ev);

/* The first steps of every channel operation, for transports that act on a channel without a
 * channel API call of their own (a WebSocket subscription): validate the id, authorise op through
 * the registry (auditing a denial), then require the channel to exist and be visible to who.
 * *out (may be NULL) borrows the registry's settings, valid until the channel is deleted. */
int sl__channel_enter(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *id,
                      const sl_channel_info **out, sl_status *st);

/* The sequence number of the newest message ever appended to channel id (0: none): the stream
 * position real-time subscribers see as "offset". Message ids are this number as 16 hex digits. */
int sl__channel_position(sl_ctx *ctx, const char *id, uint64_t *seq);

/* Gives claims back (as a nack without delay would) that a transport took with sl_channel_read for
 * `who` but could not deliver (its reply would not fit). Not authorised again: it only undoes that
 * caller's own claim, which a read-only caller could not nack itself. */
int sl__channel_release(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                        size_t n);

/* Emits an audit record: a JSON object of "ts", "event" and the key/value string pairs that follow
 * (a NULL key ends the list; NULL values are left out). Returns the sink's verdict (SL_OK without a
 * sink), with the reason in st (may be NULL). */
int sl__audit(sl_ctx *ctx, sl_status *st, const char *event, ...);
/* The same for a record built by the caller (a jansson object, stolen): "ts" is added first. */
struct json_t;
int sl__audit_json(sl_ctx *ctx, sl_status *st, struct json_t *record);

/* The mode that governs channel `id`: its override, else the server-wide mode. */
sl_mode sl__ctx_channel_mode(const sl_ctx *ctx, const char *id);

/* 1 when who may perform op on channel; no status, no audit (for filtering listings). */
int sl__authorized_quiet(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *channel);

/* Frees a heap sl_channel_info (registry values). */
void sl__channel_info_free(void *info);

#endif
