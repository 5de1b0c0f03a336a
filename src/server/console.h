/* The admin console (GET /admin, GET /admin/{file}): static files built into sluiced from the
 * repository's console/ directory (cmake/embed_console.cmake generates the table at build time),
 * served without credentials under a strict Content-Security-Policy. The page itself signs in
 * with a token or API key and does everything through the same authorised HTTP API, so these
 * routes decide nothing and hand out nothing secret. */
#ifndef SLUICE_SERVER_CONSOLE_H
#define SLUICE_SERVER_CONSOLE_H

#include <stddef.h>

#include "server/router.h"

typedef struct sl__console_file {
    const char *name; /* "app.js": one path segment */
    const char *type; /* Content-Type */
    const char *etag; /* quoted, from the file's SHA-256 */
    const unsigned char *data;
    size_t len;
} sl__console_file;

/* The generated table (static storage). */
extern const sl__console_file sl__console_files[];
extern const size_t sl__console_nfiles;

/* The file called name, or NULL. The result is static storage. */
const sl__console_file *sl__console_find(const char *name);

/* The security headers every console file is served with (CSP and the rest), "Name: value\r\n"
 * lines in static storage. */
extern const char sl__console_headers[];

/* Route handler of GET /admin (res NULL: index.html) and GET /admin/{file} (res: the decoded
 * name). Answers the file with its type, the headers above and its ETag (304 when the request's
 * If-None-Match has it); an unknown name is SL_ENOENT (404). */
int sl__console_get(sl__router *r, const sl_identity *who, const sl_http_request *req,
                    const char *res, sl__response *resp, sl_status *st);

#endif
