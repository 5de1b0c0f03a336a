/* The replay store of signed requests on Redis (security/httpsig.h's sl__nonce_store), for
 * several nodes behind one address: a nonce used on one node is refused on every other. */
#ifndef SLUICE_STORE_REDIS_NONCE_H
#define SLUICE_STORE_REDIS_NONCE_H

#include <uv.h>

#include "security/httpsig.h"
#include "store/redis_conn.h"

/* A store on the Redis at addr (AUTH and SELECT as the address says), keys
 * `<prefix>:sig:nonce:<sl__nonce_key>` set with SET NX EX: the first SET wins, Redis expires it.
 * Fails closed: while the connection is down every answer is SL_EUNAVAIL. Release with
 * (*out)->free(*out) on the loop's thread, then run the loop until its handles are closed. */
int sl__nonce_redis_new(sl__nonce_store **out, uv_loop_t *loop, const sl__redis_addr *addr,
                        const char *prefix, const struct sl__logsink *log);

#endif
