/* One HTTP request on sluiced's log (docs/OPERATIONS.md, "Logs"): its request id (the client's
 * X-Request-Id when sane, else a fresh one), echoed in the answer's X-Request-Id header and put on
 * every line written while serving it: a denial or failure, and the access line. */
#ifndef SLUICE_SERVER_REQLOG_H
#define SLUICE_SERVER_REQLOG_H

#include <stddef.h>

#include <sluice/sluice.h>

#include "net/http.h"
#include "server/log.h"

/* The request arrived: sets req->request_id (sl__request_id_take on its X-Request-Id) and
 * req->started_ns. */
void sl__reqlog_begin(sl__log *log, sl_http_request *req);

/* Appends "X-Request-Id: ID\r\n" to the extra header lines in headers (NUL-terminated, cap bytes);
 * nothing when it would not fit or there is no id. */
void sl__reqlog_header(const sl_http_request *req, char *headers, size_t cap);

/* A request that ended in an error (status >= 400): 401 and 403 are logged at info ("denied"),
 * 5xx at error, other 4xx at debug, each with the request id, the operation (NULL: none matched),
 * the principal ("" unauthenticated) and reason, which names no credential (the pipeline's
 * messages never quote one). log NULL: nothing. */
void sl__reqlog_outcome(sl__log *log, const sl_http_request *req, const sl_op_info *op, int status,
                        const char *reason, const char *principal);

/* The access line of a request answered with status and a body of bytes (log NULL or the access
 * log off: nothing). */
void sl__reqlog_access(sl__log *log, const sl_http_request *req, int status, size_t bytes,
                       const char *principal);

/* A request the transport refused before the router saw it (net/http.h sl_http_refusal): a fresh
 * request id into id (cap bytes) for the answer, the "request refused" line at debug and the
 * access line, both with that id (method and path are not known then). log NULL: only the id. */
void sl__reqlog_refused(sl__log *log, const sl_http_refusal *r, char *id, size_t cap);

#endif
