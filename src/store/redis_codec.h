/* What the Redis engine (src/store/redis_engine.c) makes of its script's replies and of the events
 * published on a channel's event channel: pure functions, no I/O, so that the fuzz target
 * (fuzz/fuzz_redis_reply.c) and unit tests drive them with any bytes. Anything written into Redis
 * by hand can reach them: every string is checked (no NUL bytes, ids exactly 16 hex digits, numbers
 * finite, settings in range; the engine stores data as given, the channel API validated it), and
 * anything else is SL_EFORMAT. Nothing here is public API. */
#ifndef SLUICE_STORE_REDIS_CODEC_H
#define SLUICE_STORE_REDIS_CODEC_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "store/engine.h"

/* The code of an error reply of the script: its sluice error name (ENOENT, EEXIST, EKIND, EINVAL,
 * EFULL); Redis refusing to run it: SL_ESTORAGE (OOM, maxmemory reached) or SL_EUNAVAIL (READONLY,
 * LOADING, BUSY and the like); SL_EFORMAT for anything else (a damaged key, a refused command, a
 * newer format). */
int sl__redis_error_code(const char *s, size_t len);

/* Writes x (NUL-terminated, cap >= 40) as decimal text that strtod reads back as exactly x: the
 * short "seconds.micros" form for microsecond readings below 9e9, %.17g otherwise. Returns its
 * length. */
int sl__redis_fmt_num(char *buf, size_t cap, double x);

/* Decodes the script's reply to op (of op->kind) into op's outputs (list, dead, info, infos with
 * ninfos, ids_out, dups, seq, count, dead_rc, dead_created) and returns op's code; outputs are
 * released with sl__eop_clear whatever it returns. For CLAIM and TERMINATE, when the dead-letter
 * queue is on another shard, *remote_vis receives the source queue's visibility (0 or 1) and the
 * engine stores op->dead there itself; else -1. LIST replies of one shard are appended to
 * op->infos (unsorted). */
int sl__redis_decode_reply(sl__eop *op, const redisReply *r, int *remote_vis);

/* A channel's settings: the reply element {id, {field, value, ...}, depth}. */
int sl__redis_decode_info(const redisReply *r, sl_channel_info *out);

/* What one PUBLISH on `<prefix>:ev:{<id>}` holds: "d" (the channel was dropped), or "w" followed
 * by tokens, each preceded by a NUL byte: for each message, its id as '#' and 16 hex digits, then
 * its fields as tag, value pairs (the stream's one-letter tags; values are C strings, so a NUL
 * never occurs inside one). A write that stored several messages publishes them in one payload.
 * Calls fn for each message in order (deleted 1 and m NULL for "d"; m valid during the call).
 * SL_OK, or SL_EFORMAT / SL_ENOMEM at the first message that does not decode (those before it
 * were passed on). */
int sl__redis_decode_events(const char *p, size_t len,
                            void (*fn)(void *ud, const sl_message *m, int deleted), void *ud);

/* A presence event on the same channel: "j" (join) or "l" (leave), then NUL, the client id, NUL,
 * the user. The client is 1..SL__REDIS_CLIENT_MAX bytes, the user at most SL_PRINCIPAL_MAX; neither
 * holds a NUL. Fills *join and the two C strings (client: SL__REDIS_CLIENT_MAX + 1 bytes, user:
 * SL_PRINCIPAL_MAX + 1). SL_OK, or SL_EFORMAT (not a presence event, or malformed). */
#define SL__REDIS_CLIENT_MAX 64
int sl__redis_decode_presence(const char *p, size_t len, int *join, char *client, char *user);

#endif
