/* The channel API's synchronous forms (sl_channel_*, include/sluice/sluice.h), for callers
 * without a loop of their own: each builds the request the transports submit (sl__chop) and turns
 * the engine's loop (and a policy regime's) until the answer is there, so an in-process caller
 * goes through the same pipeline as a network one. */
#include "api/channel_internal.h"
#include "api/ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sync_done(sl__chop *op)
{
    *(int *)op->ud = 1;
}

/* Runs op to its end: the engine's loop turns until the answer is there (see sl__engine_call). */
static int run_sync(sl_ctx *ctx, sl__chop *op, sl_status *st)
{
    int finished = 0;
    op->done = sync_done;
    op->ud = &finished;
    sl__channel_submit(ctx, op);
    sl__ctx_wait(ctx, &finished); /* a policy regime answering on its own loop, then the engine */
    if (!finished)
        sl_status_set(&op->st, op->rc = SL_EINTERNAL, "the engine did not answer");
    if (st && op->rc != SL_OK)
        *st = op->st;
    return op->rc;
}

int sl_channel_create(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_channel_opts *o,
                      sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_CREATE, .who = who, .channel = id, .opts = o};
    int rc = run_sync(ctx, &op, st);
    sl__chop_clear(&op);
    return rc;
}

int sl_channel_delete(sl_ctx *ctx, const sl_identity *who, const char *id, sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_DELETE, .who = who, .channel = id};
    int rc = run_sync(ctx, &op, st);
    sl__chop_clear(&op);
    return rc;
}

int sl_channel_info_get(sl_ctx *ctx, const sl_identity *who, const char *id, sl_channel_info *info,
                        sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_INFO, .who = who, .channel = id};
    int rc = run_sync(ctx, &op, st);
    *info = op.info;
    memset(&op.info, 0, sizeof op.info);
    sl__chop_clear(&op);
    return rc;
}

int sl_channel_list(sl_ctx *ctx, const sl_identity *who, sl_channel_info **out, size_t *n,
                    sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_LIST, .who = who};
    int rc = run_sync(ctx, &op, st);
    *out = op.infos;
    *n = op.ninfos;
    op.infos = NULL;
    op.ninfos = 0;
    sl__chop_clear(&op);
    return rc;
}

int sl_channel_write(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_write *w,
                     char *item_id, size_t item_id_size, sl_status *st)
{
    char ids[1][SL__MSGID_LEN + 1];
    sl__chop op = {.op = SL_OP_CHANNEL_WRITE,
                   .who = who,
                   .channel = id,
                   .writes = w,
                   .nwrites = w ? 1 : 0,
                   .item_ids = ids};
    int rc = run_sync(ctx, &op, st);
    if (rc == SL_OK && item_id && item_id_size)
        snprintf(item_id, item_id_size, "%s", ids[0]);
    sl__chop_clear(&op);
    return rc;
}

int sl_channel_write_batch(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_write *w,
                           size_t n, char (*item_ids)[SL_ITEM_ID_SIZE], size_t *duplicates,
                           sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_WRITE, .who = who, .channel = id, .writes = w, .nwrites = n};
    if (duplicates)
        *duplicates = 0;
    int rc = run_sync(ctx, &op, st);
    for (size_t i = 0; rc == SL_OK && item_ids && i < n; i++)
        snprintf(item_ids[i], SL_ITEM_ID_SIZE, "%s", op.eids[i]);
    if (rc == SL_OK && duplicates)
        *duplicates = op.duplicates;
    sl__chop_clear(&op);
    return rc;
}

int sl_channel_read(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_read *r,
                    sl_message_list *out, sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_READ, .who = who, .channel = id};
    if (r)
        op.read = *r;
    int rc = run_sync(ctx, &op, st);
    *out = op.list;
    memset(&op.list, 0, sizeof op.list);
    sl__chop_clear(&op);
    return rc;
}

static void release_done(sl__chop *op)
{
    free((void *)op->ids);
    free(op);
}

void sl__channel_release(sl_ctx *ctx, const sl_identity *who, const char *id,
                         const char *const *ids, size_t n)
{
    /* One block: the request, then the id pointers, then the strings they point to. */
    size_t bytes = strlen(id) + 1;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(ids[i]) + 1;
    sl__chop *op = calloc(1, sizeof *op + sizeof(sl_identity));
    char **v = malloc(n * sizeof *v + bytes);
    if (op == NULL || v == NULL) {
        free(op);
        free(v);
        return;
    }
    char *p = (char *)(v + n);
    for (size_t i = 0; i < n; i++) {
        v[i] = strcpy(p, ids[i]);
        p += strlen(p) + 1;
    }
    sl_identity *copy = (sl_identity *)(op + 1);
    sl_identity_local(copy, principal_of(who));
    memcpy(copy->workspace, workspace_of(who), strlen(workspace_of(who)) + 1);
    op->op = SL_OP_CHANNEL_NACK;
    op->release = 1;
    op->who = copy;
    op->channel = strcpy(p, id);
    op->ids = (const char *const *)v;
    op->nids = n;
    op->done = release_done;
    sl__channel_submit(ctx, op);
}

static int counted(sl_ctx *ctx, sl__chop *op, size_t *count, sl_status *st)
{
    *count = 0;
    int rc = run_sync(ctx, op, st);
    *count = op->count;
    sl__chop_clear(op);
    return rc;
}

int sl_channel_ack(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                   size_t n, size_t *count, sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_ACK, .who = who, .channel = id, .ids = ids, .nids = n};
    return counted(ctx, &op, count, st);
}

int sl_channel_nack(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                    size_t n, double delay, size_t *count, sl_status *st)
{
    sl__chop op = {
        .op = SL_OP_CHANNEL_NACK, .who = who, .channel = id, .ids = ids, .nids = n, .delay = delay};
    return counted(ctx, &op, count, st);
}

int sl_channel_extend(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                      size_t n, double seconds, size_t *count, sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_EXTEND,
                   .who = who,
                   .channel = id,
                   .ids = ids,
                   .nids = n,
                   .delay = seconds};
    return counted(ctx, &op, count, st);
}

int sl_channel_terminate(sl_ctx *ctx, const sl_identity *who, const char *id,
                         const char *const *ids, size_t n, const char *reason, size_t *count,
                         sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_TERMINATE,
                   .who = who,
                   .channel = id,
                   .ids = ids,
                   .nids = n,
                   .reason = reason};
    return counted(ctx, &op, count, st);
}

int sl_channel_clear(sl_ctx *ctx, const sl_identity *who, const char *id, size_t *count,
                     sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_CLEAR, .who = who, .channel = id};
    return counted(ctx, &op, count, st);
}

int sl_channel_evict(sl_ctx *ctx, const sl_identity *who, const char *id, double before,
                     size_t max_count, size_t *count, sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_EVICT,
                   .who = who,
                   .channel = id,
                   .before = before,
                   .max_count = max_count};
    return counted(ctx, &op, count, st);
}

int sl_channel_remove(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                      size_t n, size_t *count, sl_status *st)
{
    sl__chop op = {.op = SL_OP_CHANNEL_REMOVE, .who = who, .channel = id, .ids = ids, .nids = n};
    return counted(ctx, &op, count, st);
}
