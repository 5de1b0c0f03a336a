/* GET /audit (operation audit.read, docs/OPERATIONS.md "Server API"): the last records of the
 * server's audit log and whether its hash chain verifies. The file is read on the loop's thread
 * pool, one read at a time (later requests wait in a short queue), so a large log never stalls
 * the event loop; the answer is about the file as it was when the request came. */
#ifndef SLUICE_SERVER_ROUTES_AUDIT_H
#define SLUICE_SERVER_ROUTES_AUDIT_H

#include "server/router.h"

#define SL__AUDIT_READ_DEFAULT 100 /* records unless ?limit= */
#define SL__AUDIT_READ_MAX 1000    /* ?limit= at most */
/* Bytes of the file's end looked at for the records: a tail of longer records returns fewer
 * (with "more": true). The verification reads the whole file regardless. */
#define SL__AUDIT_TAIL_BYTES (8u << 20)
#define SL__AUDIT_WAITING_MAX 16 /* requests waiting for the running read; more: 503 */

/* The route's start (router.c's table). */
void sl__start_audit_read(sl__job *job);
/* Frees what the route keeps in r (r->audit_reader) once no request is left (after the loop
 * ran down). NULL-safe. */
void sl__audit_routes_free(sl__router *r);

#endif
