/* The remote ChannelClient: talks to a sluice server over HTTP(S) with libcurl and gives back the
 * same types as the in-process API of <sluice/sluice.h> (sl_message_list, sl_channel_info, ...), so
 * a program can switch between a local context and a remote server without changing its data
 * handling. A client maps channel ids to a server URL and bearer token (sl_client_connect_remote);
 * per-channel calls go to the server the channel was connected to, server-level calls (listing,
 * ACL) take the base URL and token explicitly. One client owns one libcurl easy handle so
 * consecutive calls reuse the keep-alive connection; a client is therefore not safe to use from two
 * threads at once (use one client per thread, and call curl_global_init(CURL_GLOBAL_DEFAULT) once
 * before creating clients from several threads). https:// URLs are verified against the system's
 * CA store; redirects are never followed, so a token only goes to the URL it was given with.
 *
 * Errors: every call returns SL_OK or a negative sl_errno and fills `st` (may be NULL) with the
 * server's message. HTTP statuses map back as 400 -> SL_EINVAL (SL_EBADID / SL_EKIND when the
 * server names those), 401 -> SL_EUNAUTH or SL_ETOKEN (the server said "invalid_token"),
 * 403 -> SL_EFORBIDDEN, 404 -> SL_ENOENT, 405 -> SL_EMETHOD, 408 -> SL_ETIMEOUT, 409 -> SL_EEXIST,
 * 413 -> SL_ETOOBIG, 429 -> SL_EFULL, 431 -> SL_EHEADERS, other 4xx -> SL_EINVAL,
 * 5xx -> SL_EUNAVAIL; a connection failure is SL_EUNAVAIL, a client-side timeout SL_ETIMEOUT and a
 * reply that is not what the API promises SL_EIO. A token is never copied into st->message, and the
 * server's text has its control characters replaced.
 *
 * Ownership: strings passed in are copied or used only during the call; results returned through
 * out-parameters are owned by the caller and name the function that releases them. */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <stddef.h>

#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_client sl_client;

/* system_id names this client (sent in the User-Agent; the server identifies callers by their
 * token); NULL: "sluice-client". *out owned by the caller; release with sl_client_free.
 * SL_ENOMEM, or SL_EINTERNAL when libcurl cannot be initialised. */
int sl_client_new(sl_client **out, const char *system_id);
/* Closes the connection and wipes the stored tokens. NULL is allowed. */
void sl_client_free(sl_client *c);

/* Routes channel_id to the server at url ("http://host:port" or "https://...", optionally with a
 * path prefix; no trailing slash needed) authenticating with token (NULL: no Authorization header).
 * channel_id NULL sets the default route, used for every channel not connected explicitly.
 * Connecting a channel again replaces its route. SL_EBADID for an invalid channel id, SL_EINVAL for
 * a url that is not http(s) or a token with characters not allowed in a header. */
int sl_client_connect_remote(sl_client *c, const char *channel_id, const char *url,
                             const char *token, sl_status *st);

/* Signs every later request (RFC 9421, docs/SIGNING.md) with s: @method, @target-uri and, with a
 * body, content-digest (sha-256), a fresh nonce and created = now; the request also carries a Host
 * field equal to the URL's authority, as signed. Copies the signer (its key is wiped on free or
 * replacement); NULL stops signing. A bearer token, if any, is still sent. SL_EINVAL (st says why,
 * never the key) or SL_ENOMEM. */
struct sl_httpsig_signer;
int sl_client_set_signer(sl_client *c, const struct sl_httpsig_signer *s, sl_status *st);

/* Whole-request timeout for later calls; 0 disables it. Default 30000 ms. Connecting is
 * additionally bounded by min(timeout, 10 s). */
void sl_client_set_timeout_ms(sl_client *c, long ms);

/* HTTP status of the last response (0 when no response arrived, e.g. connection refused). */
long sl_client_last_http_status(const sl_client *c);

/* ---- per-channel calls ----------------------------------------------------------------------- */

/* Routed by sl_client_connect_remote; SL_ENOENT when the channel has no route. */

/* json_data: any JSON value as text (the message data). item_id (may be NULL) receives the id the
 * server assigned, truncated to item_id_size - 1 bytes (32 is enough for sluice ids). */
int sl_client_write(sl_client *c, const char *channel, const char *json_data, char *item_id,
                    size_t item_id_size, sl_status *st);
/* r NULL: a shared read of 10. r->max_bytes (0: the server's read_max_bytes) bounds the reply's
 * message bytes; out->more says messages were left. out: release with sl_message_list_free; on
 * failure it is left empty. Each message's data is the JSON text of content.data as the server sent
 * it, which is the text that was written (numbers and duplicate keys unchanged); metadata likewise
 * the text of the metadata object (NULL when absent or empty). */
int sl_client_read(sl_client *c, const char *channel, const sl_read *r, sl_message_list *out,
                   sl_status *st);
/* count (may be NULL) receives how many messages the server acknowledged / nacked / removed. */
int sl_client_ack(sl_client *c, const char *channel, const char *const *ids, size_t n,
                  size_t *count, sl_status *st);
/* delay: seconds before the messages are delivered again (0: at once). */
int sl_client_nack(sl_client *c, const char *channel, const char *const *ids, size_t n,
                   double delay, size_t *count, sl_status *st);
int sl_client_remove(sl_client *c, const char *channel, const char *const *ids, size_t n,
                     size_t *count, sl_status *st);
/* Extends the caller's leases on ids by seconds (0: the queue's claim_timeout). */
int sl_client_extend(sl_client *c, const char *channel, const char *const *ids, size_t n,
                     double seconds, size_t *count, sl_status *st);
/* Dead-letters the caller's claimed ids for good with reason (NULL: "terminated"). */
int sl_client_terminate(sl_client *c, const char *channel, const char *const *ids, size_t n,
                        const char *reason, size_t *count, sl_status *st);
/* POST /channels/{id}/batch: n messages with their envelopes (metadata, correlation_id,
 * reply_to, recipient_id, idempotency_key, delay, not_before, ttl; origin is ignored), stored
 * together or not at all. data (data_len bytes) and metadata go as the caller's text. item_ids
 * (may be NULL) receives n ids; duplicates (may be NULL) how many repeated an idempotency key. One
 * message is the envelope form of sl_client_write. */
int sl_client_write_batch(sl_client *c, const char *channel, const sl_write *w, size_t n,
                          char (*item_ids)[SL_ITEM_ID_SIZE], size_t *duplicates, sl_status *st);
/* info: release with sl_channel_info_clear; on failure it is left zeroed. */
int sl_client_info(sl_client *c, const char *channel, sl_channel_info *info, sl_status *st);
/* Creates `channel` on the server it is routed to. o NULL: a public queue with the server's
 * defaults. kind and visibility are always sent; the other fields only when set (non-NULL strings,
 * non-zero numbers, mode other than SL_MODE_INHERIT). Mind that sl_channel_opts_init leaves
 * visibility at SL_VIS_PRIVATE, which hides the channel from every network caller: set
 * SL_VIS_PUBLIC to use the channel over the network. info (may be NULL) receives the created
 * channel (release with sl_channel_info_clear). SL_EEXIST when it exists. */
int sl_client_create(sl_client *c, const char *channel, const sl_channel_opts *o,
                     sl_channel_info *info, sl_status *st);
int sl_client_delete(sl_client *c, const char *channel, sl_status *st);
/* count (may be NULL) receives how many messages were dropped. */
int sl_client_clear(sl_client *c, const char *channel, size_t *count, sl_status *st);
/* before: drop messages older than this epoch time (0: no age bound); max_count: keep at most the
 * newest max_count (SIZE_MAX: no count bound). At least one bound is required (SL_EINVAL). */
int sl_client_evict(sl_client *c, const char *channel, double before, size_t max_count,
                    size_t *count, sl_status *st);

/* ---- server-level calls ---------------------------------------------------------------------- */

/* The base url and token (NULL: none) are given per call. */

/* GET /healthz: SL_OK when the server answers 200. */
int sl_client_health(sl_client *c, const char *url, const char *token, sl_status *st);
/* The channels the token may see; *out is an array of *n infos, release with sl_channel_infos_free.
 */
int sl_client_list(sl_client *c, const char *url, const char *token, sl_channel_info **out,
                   size_t *n, sl_status *st);
/* Replaces principal's ACL entry: role on the channel patterns (n == 0: on all channels). */
int sl_client_acl_grant(sl_client *c, const char *url, const char *token, const char *principal,
                        sl_role role, const char *const *patterns, size_t n, sl_status *st);
/* The same with deny patterns (docs/POLICY.md "Deny rules"). */
int sl_client_acl_grant_deny(sl_client *c, const char *url, const char *token,
                             const char *principal, sl_role role, const char *const *patterns,
                             size_t n, const char *const *deny, size_t ndeny, sl_status *st);
/* SL_ENOENT when the principal has no entry. */
int sl_client_acl_revoke(sl_client *c, const char *url, const char *token, const char *principal,
                         sl_status *st);
/* *out: array of *n entries, release with sl_acl_entries_free. */
int sl_client_acl_list(sl_client *c, const char *url, const char *token, sl_acl_entry **out,
                       size_t *n, sl_status *st);

/* The invoke policy (docs/POLICY.md). Each returns the server's JSON reply in *reply (owned,
 * release with free()): GET /policy/invoke, PUT and DELETE /policy/invoke/{pattern}. Rules are
 * "operation:resource" strings; audit 1 audits every decision of the policy. */
int sl_client_invoke_policy_list(sl_client *c, const char *url, const char *token, char **reply,
                                 sl_status *st);
int sl_client_invoke_policy_set(sl_client *c, const char *url, const char *token,
                                const char *pattern, const char *const *allow, size_t nallow,
                                const char *const *deny, size_t ndeny, int audit, char **reply,
                                sl_status *st);
/* SL_ENOENT when pattern has no policy. */
int sl_client_invoke_policy_delete(sl_client *c, const char *url, const char *token,
                                   const char *pattern, sl_status *st);

/* The server API and the audit log (docs/OPERATIONS.md "Server API"), for
 * administrators. Each returns the server's JSON reply in *reply (owned, release with free()).
 * connections: GET /server/connections (principal NULL: every one; limit 0: the server's default).
 * disconnect: POST /server/disconnect, principal and/or connection (one at least), code 0 for the
 * server's default, reason NULL for none; SL_ENOENT for a connection that is not connected.
 * unsubscribe: POST /server/unsubscribe. presence: GET /server/presence/{channel}[/stats].
 * channels: GET /server/channels. audit_tail: GET /audit (limit 0: the server's default). */
int sl_client_server_connections(sl_client *c, const char *url, const char *token,
                                 const char *principal, size_t limit, char **reply, sl_status *st);
int sl_client_server_disconnect(sl_client *c, const char *url, const char *token,
                                const char *principal, const char *connection, int code,
                                const char *reason, char **reply, sl_status *st);
int sl_client_server_unsubscribe(sl_client *c, const char *url, const char *token,
                                 const char *principal, const char *channel, char **reply,
                                 sl_status *st);
int sl_client_server_presence(sl_client *c, const char *url, const char *token, const char *channel,
                              int stats, char **reply, sl_status *st);
int sl_client_server_channels(sl_client *c, const char *url, const char *token, char **reply,
                              sl_status *st);
int sl_client_audit_tail(sl_client *c, const char *url, const char *token, size_t limit,
                         char **reply, sl_status *st);

#ifdef __cplusplus
}
#endif
#endif
