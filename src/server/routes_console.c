/* Serves the admin console's static files (server/console.h) from the table generated at build
 * time. No credentials (operation `console`): the files are the same for everyone and hold no
 * data; what the page shows comes from the authorised API. The Content-Security-Policy allows
 * only this origin's scripts, styles and requests, no inline code and no framing, so an injected
 * string in the data the page renders cannot run. */
#include "server/console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cache-Control no-cache: the browser revalidates with the ETag, so an upgraded sluiced serves
 * its new console at once and an unchanged one answers 304. */
const char sl__console_headers[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cache-Control: no-cache\r\n";

const sl__console_file *sl__console_find(const char *name)
{
    for (size_t i = 0; i < sl__console_nfiles; i++)
        if (strcmp(sl__console_files[i].name, name) == 0)
            return &sl__console_files[i];
    return NULL;
}

/* Whether an If-None-Match value lists etag (or is "*"); weak validators compare equal too, as
 * RFC 9110 §13.1.2 asks for this header. */
static int etag_listed(const char *h, size_t len, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = h, *end = h + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *t = p;
        size_t tlen = (size_t)(q - p);
        while (tlen > 0 && (t[tlen - 1] == ' ' || t[tlen - 1] == '\t'))
            tlen--;
        if (tlen >= 2 && t[0] == 'W' && t[1] == '/') {
            t += 2;
            tlen -= 2;
        }
        if ((tlen == 1 && t[0] == '*') || (tlen == elen && memcmp(t, etag, elen) == 0))
            return 1;
        p = q;
    }
    return 0;
}

int sl__console_get(sl__router *r, const sl_identity *who, const sl_http_request *req,
                    const char *res, sl__response *resp, sl_status *st)
{
    (void)r;
    (void)who;
    const sl__console_file *f = sl__console_find(res ? res : "index.html");
    if (f == NULL)
        return sl_status_set(st, SL_ENOENT, "no such console file");
    int n = snprintf(resp->headers, sizeof resp->headers, "%sETag: %s\r\n", sl__console_headers,
                     f->etag);
    if (n < 0 || (size_t)n >= sizeof resp->headers) /* a build that outgrew the buffer */
        return sl_status_set(st, SL_EINTERNAL, "console headers too long");
    size_t hlen = 0;
    const char *inm = sl_http_header_get(req, "if-none-match", &hlen);
    if (inm != NULL && etag_listed(inm, hlen, f->etag)) {
        resp->status = 304;
        return SL_OK;
    }
    /* A copy: the response body is malloc'd (the router frees it) and, like a JSON body,
     * NUL-terminated (the generator ends every file with a NUL). The files are small. */
    resp->body = malloc(f->len + 1);
    if (resp->body == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    memcpy(resp->body, f->data, f->len + 1);
    resp->body_len = f->len;
    resp->content_type = f->type;
    resp->status = 200;
    return SL_OK;
}
