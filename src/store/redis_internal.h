/* Internals of the Redis revocation store (src/store/redis_revocation.c) exposed to its fuzz target
 * and unit tests: what it makes of Redis's replies and of the messages on its watch channel,
 * without a connection or the loop; and, for sluiced, the store on an address it already holds
 * (the Redis engine's first shard). Nothing here is part of the public API. */
#ifndef SLUICE_STORE_REDIS_INTERNAL_H
#define SLUICE_STORE_REDIS_INTERNAL_H

#include <stddef.h>

#include <hiredis/hiredis.h>
#include <sluice/revocation.h>

#include "store/redis_conn.h"

/* The longest watch message: "u " + cut-off (at most 15 + 1 + 9 bytes) + " " + user. */
#define SL__REDIS_MSG_MAX (2 + 25 + 1 + SL_PRINCIPAL_MAX)

/* One GET reply of a check (NULL: no reply, the connection went away), for the token's record
 * (is_token 1) or the user's cut-off (0) of a token issued at issued_at: SL_OK (no record, or a
 * cut-off before issued_at), SL_ETOKEN with *reason (a static text, or reply->str when it is a
 * stored reason of at most SL_REVOCATION_REASON_MAX bytes without control bytes), or SL_EUNAVAIL
 * (Redis could not answer). Anything malformed counts as revoked. */
int sl__redis_check_reply(const redisReply *reply, int is_token, double issued_at,
                          const char **reason);

/* What a reply on the watch connection is. */
enum { SL__REDIS_SUB_OTHER, SL__REDIS_SUB_CONFIRM, SL__REDIS_SUB_MESSAGE };
/* SL__REDIS_SUB_CONFIRM for a subscribe confirmation; SL__REDIS_SUB_MESSAGE for a published
 * message, with *payload its third element (of any type); else SL__REDIS_SUB_OTHER. */
int sl__redis_sub_reply(const redisReply *reply, const redisReply **payload);

/* A watch message into ev: "t <token id>" or "u <cut-off> <user>", exactly. The id or user is
 * copied into buf (SL__REDIS_MSG_MAX + 1 bytes), where ev points. 1 when well-formed, else 0. */
int sl__redis_parse_message(const char *p, size_t len, sl_revocation_event *ev, char *buf);

/* sl_revocation_redis_new_url on a parsed address (copied, user and password included): how
 * sluiced puts the store on the Redis engine's first shard with its AUTH and SELECT. SL_OK,
 * SL_EINVAL or SL_ENOMEM. */
int sl__revocation_redis_new_addr(sl_revocation_store **out, uv_loop_t *loop,
                                  const sl__redis_addr *addr, const char *prefix, double max_ttl,
                                  sl_clock_fn clock, void *clock_ud);

#endif
