/* A request's lines on sluiced's log: its id, its denial or failure, its access line. The router
 * and main call these; the log itself (server/log.c) knows nothing of HTTP. */
#include "server/reqlog.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

_Static_assert(sizeof(((sl_http_request *)0)->request_id) == SL__REQUEST_ID_MAX + 1,
               "sl_http_request.request_id holds a request id");

void sl__reqlog_begin(sl__log *log, sl_http_request *req)
{
    size_t n = 0;
    const char *h = sl_http_header_get(req, "x-request-id", &n);
    sl__request_id_take(log, h, n, req->request_id);
    req->started_ns = uv_hrtime();
}

void sl__reqlog_header(const sl_http_request *req, char *headers, size_t cap)
{
    size_t used = strlen(headers);
    if (req->request_id[0] == '\0' || used >= cap)
        return;
    /* Without printf (0.4 % of a claim + acknowledge cycle's profile went to it). */
    size_t il = strlen(req->request_id), n = 14 + il + 2;
    if (n >= cap - used) /* it would not fit: leave the other headers whole */
        return;
    memcpy(headers + used, "X-Request-Id: ", 14);
    memcpy(headers + used + 14, req->request_id, il);
    memcpy(headers + used + 14 + il, "\r\n", 3); /* with the NUL */
}

void sl__reqlog_outcome(sl__log *log, const sl_http_request *req, const sl_op_info *op, int status,
                        const char *reason, const char *principal)
{
    sl__log_level lv = status == 401 || status == 403 ? SL__LOG_INFO
                       : status >= 500                ? SL__LOG_ERROR
                                                      : SL__LOG_DEBUG;
    if (log == NULL || status < 400 || !sl__log_enabled(log, lv))
        return;
    sl__log_field f[] = {
        {.key = "status", .type = SL__LF_INT, .num = status},
        {.key = "op", .type = SL__LF_STR, .str = op ? op->name : NULL},
        {.key = "principal", .type = SL__LF_STR, .str = principal && *principal ? principal : NULL},
        {.key = "reason", .type = SL__LF_STR, .str = reason && *reason ? reason : NULL},
        {.key = "method", .type = SL__LF_STR, .str = req->method},
        {.key = "path", .type = SL__LF_STR, .str = req->path},
    };
    const char *msg = status == 401 || status == 403 ? "denied"
                      : status >= 500                ? "request failed"
                                                     : "request refused";
    sl__log_write(log, lv, req->request_id, msg, f, sizeof f / sizeof *f);
}

void sl__reqlog_access(sl__log *log, const sl_http_request *req, int status, size_t bytes,
                       const char *principal)
{
    if (!sl__log_access_on(log))
        return;
    uint64_t now = uv_hrtime();
    sl__log_access_rec a = {
        .request_id = req->request_id,
        .method = req->method,
        .path = req->path,
        .query = req->query,
        .query_len = req->query_len,
        .status = status,
        .duration_ms =
            req->started_ns && now >= req->started_ns ? (double)(now - req->started_ns) / 1e6 : 0,
        .bytes = bytes,
        .principal = principal,
        .remote = req->remote_addr,
    };
    sl__log_access(log, &a);
}

void sl__reqlog_refused(sl__log *log, const sl_http_refusal *r, char *id, size_t cap)
{
    char rid[SL__REQUEST_ID_MAX + 1];
    sl__request_id_take(log, NULL, 0, rid);
    snprintf(id, cap, "%s", rid);
    if (log != NULL && sl__log_enabled(log, SL__LOG_DEBUG)) {
        sl__log_field f[] = {
            {.key = "status", .type = SL__LF_INT, .num = r->status},
            {.key = "reason", .type = SL__LF_STR, .str = r->message},
            {.key = "remote", .type = SL__LF_STR, .str = r->remote_addr},
        };
        sl__log_write(log, SL__LOG_DEBUG, rid, "request refused", f, sizeof f / sizeof *f);
    }
    sl__log_access_rec a = {
        .request_id = rid, .status = r->status, .bytes = r->bytes, .remote = r->remote_addr};
    sl__log_access(log, &a);
}
