/* Fuzz target: the admin console's static route (src/server/routes_console.c) with a hostile
 * If-None-Match header, through the router as sluiced serves it. The first input byte picks the
 * file, the rest is the header's value. Checked: the answer is the whole file (200, its type) or
 * 304 with no body; 304 only when the value names the file's ETag or is a "*" list member; and a
 * value that is exactly the ETag always gives 304. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "server/console.h"
#include "server/router.h"

static sl_ctx *ctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ctx == NULL) {
        sl_ctx_options o = {.mode = SL_MODE_ACL};
        if (sl_ctx_new(&ctx, &o) != SL_OK)
            abort();
    }
    if (size == 0)
        return 0;
    const sl__console_file *f = &sl__console_files[data[0] % sl__console_nfiles];
    char path[128];
    strcpy(path, "/admin/");
    strncat(path, f->name, sizeof path - 8);
    char *value = malloc(size); /* not NUL-terminated: the header is a span */
    if (value == NULL)
        abort();
    memcpy(value, data + 1, size - 1);
    sl_http_header h = {"If-None-Match", 13, value, size - 1};
    sl_http_request req;
    memset(&req, 0, sizeof req);
    req.method = "GET";
    req.target = path;
    req.target_len = strlen(path);
    req.path = path;
    req.path_len = strlen(path);
    req.query = "";
    req.body = "";
    req.headers = &h;
    req.nheaders = 1;
    sl__router r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    sl__response resp;
    sl__router_handle(&r, &req, &resp);
    size_t elen = strlen(f->etag);
    int named = memmem(value, size - 1, f->etag, elen) != NULL || memchr(value, '*', size - 1);
    if (resp.status == 200) {
        if (resp.body_len != f->len || memcmp(resp.body, f->data, f->len) != 0 ||
            resp.content_type == NULL || strcmp(resp.content_type, f->type) != 0)
            abort();
        if (size - 1 == elen && memcmp(value, f->etag, elen) == 0)
            abort(); /* its own ETag, and the whole file again */
    } else if (resp.status == 304) {
        if (resp.body != NULL || !named || strstr(resp.headers, f->etag) == NULL)
            abort();
    } else {
        abort();
    }
    sl__response_clear(&resp);
    sl__router_clear(&r);
    free(value);
    return 0;
}
