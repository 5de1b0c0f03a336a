/* What the remote client's files share (client.c: the client object and one HTTP exchange;
 * client_reply.c: what the server's replies mean; client_calls.c: the sl_client_* calls), and its
 * pure parts, exposed for unit tests: turning server replies (JSON bodies and HTTP statuses) into
 * sluice values and error codes, and percent-encoding path segments. None of the pure parts do
 * I/O, so they can be tested without a server. */
#ifndef SLUICE_CLIENT_INTERNAL_H
#define SLUICE_CLIENT_INTERNAL_H

#include <stddef.h>

#include <jansson.h>

#include <sluice/client.h>

/* Percent-encodes s into out (cap bytes including the NUL): every byte except [A-Za-z0-9-._~:] is
 * escaped. Returns the encoded length, or -1 when it does not fit. */
long sl__client_pct_encode(const char *s, char *out, size_t cap);

/* The sl_errno for an HTTP error status, refined by the body's "error" name where the status alone
 * is ambiguous; st->message receives the body's "message" (control characters replaced, any
 * occurrence of token redacted) or a generic text when the body is not a sluice error. Returns the
 * code. */
int sl__client_http_error(long status, const char *body, size_t len, const char *token,
                          sl_status *st);

/* {"messages":[...]} -> out (release with sl_message_list_free). On failure out is empty and the
 * code is SL_EIO ("malformed response ...") or SL_ENOMEM. */
int sl__client_parse_messages(const char *body, size_t len, sl_message_list *out, sl_status *st);

/* A channel info object -> out (release with sl_channel_info_clear); zeroed on failure. */
int sl__client_parse_info(const char *body, size_t len, sl_channel_info *out, sl_status *st);

/* {"channels":[info...]} -> *out, *n (release with sl_channel_infos_free). */
int sl__client_parse_infos(const char *body, size_t len, sl_channel_info **out, size_t *n,
                           sl_status *st);

/* {"entries":[{"principal","role","channels"}...]} -> *out, *n (release with sl_acl_entries_free).
 */
int sl__client_parse_acl(const char *body, size_t len, sl_acl_entry **out, size_t *n,
                         sl_status *st);

/* ---- shared by the client's files ------------------------------------------------------------ */

typedef struct route {
    char *channel; /* NULL for the default route */
    char *url;     /* without trailing '/' */
    char *token;   /* NULL: anonymous */
} route;

typedef struct buf {
    char *p;
    size_t len, cap;
    int overflow;
} buf;

/* st set to SL_ENOMEM ("out of memory"); returns the code. */
int sl__client_nomem(sl_status *st);
/* st set to SL_EIO, "malformed response from server (what)"; returns the code. */
int sl__client_malformed(sl_status *st, const char *what);
void sl__client_scrub(char *msg, const char *token);
/* The body as a JSON object (the caller's reference, json_decref), or NULL. */
json_t *sl__client_load_object(const char *body, size_t len);
size_t sl__client_opt_size(json_t *o, const char *key);
/* Borrowed from c; NULL when channel has no route. */
const route *sl__client_route_for(const sl_client *c, const char *channel);
/* On SL_OK, resp->p (the reply body, NUL-terminated) is the caller's to free. */
int sl__client_channel_call(sl_client *c, const char *channel, const char *method,
                            const char *suffix, const char *query, const char *body,
                            size_t body_len, buf *resp, sl_status *st);
int sl__client_server_call(sl_client *c, const char *url, const char *token, const char *method,
                           const char *path, const char *body, size_t body_len, buf *resp,
                           sl_status *st);

#endif
