/* The request limits every network transport applies to channel operations (HTTP routes in
 * routes_channels.c, WebSocket rpc methods in ws_rpc.c), in one place so the two cannot drift.
 * The channel API has its own, wider bounds (SL_BATCH_MAX); these are what one network request
 * may ask. */
#ifndef SL_SERVER_LIMITS_H
#define SL_SERVER_LIMITS_H

#define SL__REQ_MAX_IDS 10000  /* message ids per acknowledge / nack / remove / extend / terminate \
                                */
#define SL__REQ_MAX_LIMIT 1000 /* messages per read or claim */
#define SL__REQ_MAX_BATCH 1000 /* messages per batch write (bytes: the server's body limit) */

#endif
