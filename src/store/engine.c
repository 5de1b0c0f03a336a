/* What every engine shares: releasing a request's outputs, finding a channel in a list answer,
 * and the synchronous call for callers that run no loop of their own (the in-process C API,
 * configuration at start, tests). */
#include "store/engine.h"

#include <string.h>

#include <uv.h>

void sl__eop_clear(sl__eop *op)
{
    sl_message_list_free(&op->list);
    sl_message_list_free(&op->dead);
    sl_channel_info_clear(&op->info);
    sl_channel_infos_free(op->infos, op->ninfos);
    op->infos = NULL;
    op->ninfos = 0;
}

typedef struct waiter {
    sl__eop_done_fn done;
    void *ud;
    int finished;
} waiter;

static void call_done(sl__eop *op)
{
    ((waiter *)op->ud)->finished = 1;
}

const sl_channel_info *sl__eop_list_find(const sl_channel_info *v, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid].id, id);
        if (c == 0)
            return &v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void sl__engine_wait(sl_engine *e, const int *done)
{
    while (!*done && e->loop)
        uv_run(e->loop, UV_RUN_ONCE);
}

int sl__engine_call(sl_engine *e, sl__eop *op)
{
    waiter w = {op->done, op->ud, 0};
    op->done = call_done;
    op->ud = &w;
    e->ops->submit(e, op);
    sl__engine_wait(e, &w.finished);
    op->done = w.done;
    op->ud = w.ud;
    return w.finished ? op->rc : SL_EINTERNAL;
}
