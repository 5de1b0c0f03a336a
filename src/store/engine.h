/* The store engine interface. An engine keeps channels (their settings) and their messages and
 * implements work-queue and topic semantics atomically, so that a shared engine (Redis) can do the
 * same with server-side scripts. The core (core/channel.c) validates, authorises and handles dead
 * letters; the engine only stores. All functions return sl_errno codes. Ids passed in are valid
 * channel ids; the engine never sees a caller it must authorise. */
#ifndef SLUICE_STORE_ENGINE_H
#define SLUICE_STORE_ENGINE_H

#include <sluice/sluice.h>

typedef struct sl_engine sl_engine;

typedef struct sl_engine_ops {
    const char *name;
    void (*free)(sl_engine *e);
    /* Stores a copy of info (its depth is ignored). SL_EEXIST. */
    int (*create)(sl_engine *e, const sl_channel_info *info);
    /* Drops the channel and its messages. SL_ENOENT. */
    int (*drop)(sl_engine *e, const char *id);
    /* Fills *out with a copy (release with sl_channel_info_clear), depth included. SL_ENOENT. */
    int (*info)(sl_engine *e, const char *id, sl_channel_info *out);
    /* Every channel, sorted by id; release with sl_channel_infos_free. */
    int (*list)(sl_engine *e, sl_channel_info **out, size_t *n);
    /* Appends a copy of *m (m->id and m->attempt are ignored; the caller keeps m): the engine
     * assigns the id (unique in the channel, increasing). Queues: SL_EFULL past max_messages.
     * Topics: retention (count, age at `now`) drops the oldest; max_messages, when set, refuses
     * with SL_EFULL only when retention cannot make room. id_out (>= 32 bytes) receives the id. */
    int (*append)(sl_engine *e, const char *id, sl_message *m, double now, char *id_out);
    /* Queues: claims up to limit claimable messages (unclaimed, or lease expired, or nack delay
     * passed) for reader, FIFO, with lease now + claim_timeout; attempt counts claims. A message
     * whose next claim would exceed max_attempts (> 0) is moved out into *dead instead (the core
     * writes it to the dead-letter channel). max_bytes (SIZE_MAX: none) bounds the sum of
     * sl_message_size of the claimed messages, the first excepted: claiming stops before the
     * first message that does not fit, which stays claimable. out->more: claimable messages were
     * left. SL_EKIND for topics. */
    int (*claim)(sl_engine *e, const char *id, const char *reader, size_t limit, size_t max_bytes,
                 double now, sl_message_list *out, sl_message_list *dead);
    /* Removes messages whose live claim is held by reader; *count those removed. Unknown ids and
     * claims held by others (or expired) are not counted. SL_EKIND for topics. */
    int (*ack)(sl_engine *e, const char *id, const char *reader, const char *const *ids, size_t n,
               double now, size_t *count);
    /* Releases reader's live claims; they become claimable at now + delay. */
    int (*nack)(sl_engine *e, const char *id, const char *reader, const char *const *ids, size_t n,
                double delay, double now, size_t *count);
    /* Topics: up to limit messages after message id `after` (NULL: after reader's cursor, which
     * then advances to the last returned). SL_EINVAL only for an `after` that is not an id of this
     * engine's format; an id newer than anything written gives nothing, an older or removed one
     * continues after it. max_bytes bounds the messages as for claim (the cursor stops at the
     * last one returned); out->more: messages after the last returned were left. SL_EKIND for
     * queues. */
    int (*read)(sl_engine *e, const char *id, const char *reader, const char *after, size_t limit,
                size_t max_bytes, double now, sl_message_list *out);
    int (*clear)(sl_engine *e, const char *id, size_t *count);
    /* Drops messages with timestamp < before (before <= 0: none by age), then the oldest beyond
     * max_count (SIZE_MAX: none by count). */
    int (*evict)(sl_engine *e, const char *id, double before, size_t max_count, size_t *count);
    int (*remove)(sl_engine *e, const char *id, const char *const *ids, size_t n, size_t *count);
    /* The sequence number of the newest message ever appended (0: none), whether or not it is
     * still held. Every engine numbers a channel's messages 1, 2, 3... and formats ids as 16
     * lowercase hex digits of that number, so real-time transports can use it as a stream offset.
     */
    int (*position)(sl_engine *e, const char *id, uint64_t *seq);
} sl_engine_ops;

struct sl_engine {
    const sl_engine_ops *ops;
};

/* The in-memory engine. *out released with (*out)->ops->free(*out). */
int sl__mem_engine_new(sl_engine **out);

#endif
