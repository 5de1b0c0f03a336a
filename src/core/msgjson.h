/* Read replies as the HTTP API, the WebSocket `queue.claim` rpc and the CLI show them, rendered
 * straight from the stored text: a message's data and metadata were validated as JSON when they
 * were written (core/jsonv.c), so they go out as the bytes that were written, never parsed and
 * re-serialised. Numbers, key order and duplicate keys stay what the writer sent, and rendering a
 * large read costs one copy of its bytes. No I/O. */
#ifndef SLUICE_CORE_MSGJSON_H
#define SLUICE_CORE_MSGJSON_H

#include <stddef.h>

#include <sluice/sluice.h>

/* {"messages":[{"id":..,"timestamp":..,"sender_id":..,"content":{"data":<data>},
 * "metadata":<metadata or {}>,"correlation_id":..,"reply_to":..,"recipient_id":..
 * [,"attempt":..,"claim_expires_at":..]},...],"more":<l->more>} (exclusive: with the claim fields).
 * *out is malloc'd and NUL-terminated (release with free), *len its length. SL_OK or SL_ENOMEM. */
int sl__messages_json(const sl_message_list *l, int exclusive, char **out, size_t *len);

/* Seconds since the epoch between 10^9 and 10^10 (2001 to 2286) written exactly as printf's
 * "%.17g" writes them, without printf: the length (no NUL), or 0 for any other value. */
size_t sl__json_seconds(double v, char buf[24]);

#endif
