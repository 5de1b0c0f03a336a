/* Request-parameter helpers shared by the HTTP API's route families (server/params.c): the query
 * string, the JSON body and its members. Each getter that fails fills st with SL_EINVAL (or
 * SL_EJSON, SL_ENOMEM) and a message naming the parameter. */
#ifndef SLUICE_SERVER_PARAMS_H
#define SLUICE_SERVER_PARAMS_H

#include <jansson.h>
#include <stddef.h>
#include <sluice/sluice.h>

#include "net/http.h"

/* sl_status_set(st, code, "%s", msg): returns code. */
int sl__fail(sl_status *st, int code, const char *msg);

/* Percent-decodes src[0..n) into dst (NUL-terminated, cap bytes); plus_space: '+' means ' ' (query
 * strings). Returns the decoded length, or -1 for a bad escape, a NUL byte (encoded or not) or
 * output that does not fit. */
long sl__pct_decode(const char *src, size_t n, char *dst, size_t cap, int plus_space);

/* Looks a query parameter up and percent-decodes its value into buf (NUL-terminated, cap bytes).
 * 1 found, 0 absent, -1 malformed or too long. */
int sl__http_query_get(const sl_http_request *req, const char *name, char *buf, size_t cap);

/* "true", "1", "yes" or "" (case-insensitive) → 1; "false", "0", "no" → 0; else -1. */
int sl__parse_bool(const char *s, int *out);

/* The body as a JSON object, duplicate keys rejected: SL_OK with *out the caller's to decref;
 * SL_EJSON when the body is empty or not an object, with *out NULL. */
int sl__parse_body(const sl_http_request *req, json_t **out, sl_status *st);

/* Channel pattern / principal syntax of a NUL-terminated string (for sl__string_list's ok). */
int sl__is_pattern(const char *s);
int sl__is_name(const char *s);

/* The array body[key] as a new array of borrowed strings (valid while body lives; the caller frees
 * the array). Absent or null: *out NULL, *n 0, unless required. Every element must be a string
 * passing ok (when given); at most max of them. */
int sl__string_list(json_t *body, const char *key, size_t max, int required,
                    int (*ok)(const char *), const char *what, const char ***out, size_t *n,
                    sl_status *st);

/* o[key] as a non-negative integer / a non-negative finite number / a string without NUL bytes
 * (borrowed): 1 found, 0 absent or null (*out untouched), -1 anything else (st filled). */
int sl__get_count(json_t *o, const char *key, size_t *out, sl_status *st);
int sl__get_seconds(json_t *o, const char *key, double *out, sl_status *st);
int sl__get_string(json_t *o, const char *key, const char **out, sl_status *st);

/* body[key] as a positive finite number of seconds into *ttl (0 when absent or null); SL_EINVAL
 * otherwise. */
int sl__get_ttl(json_t *body, const char *key, double *ttl, sl_status *st);

/* A message envelope's optional fields beside its data, as every transport takes them from a JSON
 * object: correlation_id, reply_to, recipient_id and idempotency_key (strings without NUL bytes),
 * delay, not_before and ttl (non-negative numbers of seconds); null is absent. Types only: the
 * channel API checks lengths and ranges, for every transport. The strings borrow o. SL_OK, or
 * SL_EINVAL with st (may be NULL) naming the field. */
int sl__envelope_fields(json_t *o, sl_write *w, sl_status *st);

/* SL_EINVAL ("unknown field") for a member of body not named in allowed (NULL-terminated). */
int sl__only_fields(json_t *body, const char *const *allowed, sl_status *st);

/* A new JSON array of copies of v[0..n). */
json_t *sl__string_array(char *const *v, size_t n);

#endif
