/* The channel API: what every transport calls, above security/ and store/. Each operation is a
 * request (sl__chop) that runs the pipeline (validate the id, authorise through the registry,
 * look the channel up) and then becomes an engine request; the engine answers when the change is
 * durable, and only then does the caller's done run, with events and audit records of a success.
 * Authorisation comes before existence so that a caller who may not use a name learns nothing
 * about it; visibility comes right after, so private channels are invisible to network callers.
 * What a request brings (a channel's options, the writes) is checked in channel_input.c; the
 * sl_channel_* functions, the synchronous forms for callers without a loop of their own, are in
 * channel_sync.c; the ACL's (sl_acl_*) in acl.c. */
#include "api/channel_internal.h"
#include "api/ctx.h"
#include "core/jsonv.h"
#include "core/message.h"
#include "core/metrics.h"
#include "core/wsid.h"
#include "security/workspace.h"
#include "store/kv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h> /* the engine loop's clock */

#define REASON_MAX_LEN 1024
/* The longest lease an extension gives, unless the queue's claim_timeout is longer. */
#define EXTEND_MAX 43200.0

static int in_process(const sl_identity *who)
{
    return who == NULL || who->source == SL_SOURCE_LOCAL || who->source == SL_SOURCE_SYSTEM;
}

void sl__channel_info_free(void *p)
{
    sl_channel_info *info = p;
    if (info) {
        sl_channel_info_clear(info);
        free(info);
    }
}

void sl_channel_opts_init(sl_channel_opts *o)
{
    memset(o, 0, sizeof *o);
    o->kind = SL_KIND_QUEUE;
    o->visibility = SL_VIS_PRIVATE;
    o->mode = SL_MODE_INHERIT;
    o->claim_timeout = 300;
    o->dedup_window = 120;
    o->cursor_idle_timeout = 86400;
}

/* ---- workspaces (docs/POLICY.md): names in, names out ---------------------------------------- */

/* The id the registry and the engine know for the channel `id` names for who (qid:
 * SL_CHANNEL_ID_MAX + 1 bytes): the caller's id qualified with its workspace. A transport may
 * hand in an internal id it made (core/wsid.h), but only one of who's own workspace: anything
 * else is not a channel id, so a forged name learns nothing. */
static int qualify_channel(const sl_identity *who, const char *id, char *qid)
{
    qid[0] = '\0';
    if (id == NULL)
        return SL_EBADID;
    const char *ws = workspace_of(who), *name = id;
    if (strchr(id, SL__WS_SEP)) {
        if (!sl__ws_owns(ws, id))
            return SL_EBADID;
        name = sl__ws_name(id);
    }
    if (!sl_channel_id_valid(name, strlen(name)) ||
        sl__ws_qualify(ws, name, qid, SL_CHANNEL_ID_MAX + 1) != SL_OK) {
        qid[0] = '\0';
        return SL_EBADID;
    }
    return SL_OK;
}

/* Takes internal ids out of what goes back to the caller: its own names remain. */
static void strip_info(sl_channel_info *info)
{
    if (info->id && strchr(info->id, SL__WS_SEP))
        memmove(info->id, shown(info->id), strlen(shown(info->id)) + 1);
    if (info->dead_letter && strchr(info->dead_letter, SL__WS_SEP))
        memmove(info->dead_letter, shown(info->dead_letter), strlen(shown(info->dead_letter)) + 1);
}

typedef struct ws_count {
    const char *ws;
    size_t n;
} ws_count;

static int count_one(void *ud, const char *key, void *value)
{
    (void)value;
    ws_count *c = ud;
    c->n += sl__ws_owns(c->ws, key);
    return 0;
}

/* A creation in who's workspace within its channels limit (the registry is every channel). */
static int channel_room(sl_ctx *ctx, const sl_identity *who, sl_status *st)
{
    const char *ws = workspace_of(who);
    if (ws[0] == '\0' || ctx->workspaces == NULL ||
        sl__ws_limits_of(ctx->workspaces, ws)->channels == 0)
        return SL_OK;
    ws_count c = {ws, 0};
    sl__map_each(ctx->channels, count_one, &c);
    return sl__ws_channel_room(ctx->workspaces, ws, c.n, st);
}

/* Stored messages per workspace: the engine's count of every channel (security/workspace.h). */
typedef struct tally {
    sl__eop e;
    sl_ctx *ctx;
} tally;

static void tally_done(sl__eop *e)
{
    tally *t = e->ud;
    sl__workspaces *w = t->ctx->workspaces;
    for (size_t i = 0; e->rc == SL_OK && i < e->ninfos; i++)
        sl__ws_recount_add(w, e->infos[i].id, e->infos[i].depth);
    sl__ws_recount_end(w, e->rc == SL_OK, sl_ctx_now(t->ctx));
    sl__eop_clear(e);
    free(t);
}

/* Room for op's writes in who's workspace's messages limit; a count first when one is due (the
 * memory and durable engines answer it at once, a shared one later: until then the last count
 * and the writes since decide). */
static int message_room(sl_ctx *ctx, sl__chop *op)
{
    const char *ws = workspace_of(op->who);
    if (ctx->workspaces == NULL || ws[0] == '\0')
        return SL_OK;
    double now = sl_ctx_now(ctx);
    int recount = 0;
    int rc = sl__ws_message_room(ctx->workspaces, ws, op->nwrites, now, &recount, &op->st);
    if (rc != SL_OK || !recount)
        return rc;
    tally *t = calloc(1, sizeof *t);
    if (t == NULL)
        return sl_status_set(&op->st, SL_ENOMEM, NULL);
    t->ctx = ctx;
    t->e.kind = SL__EOP_LIST;
    t->e.now = now;
    t->e.done = tally_done;
    t->e.ud = t;
    sl__ws_recount_begin(ctx->workspaces);
    ctx->engine->ops->submit(ctx->engine, &t->e);
    return sl__ws_message_room(ctx->workspaces, ws, op->nwrites, now, &recount, &op->st);
}

/* Steps shared by every channel operation: id, authorisation, existence, visibility. qid is id as
 * qualify_channel made it ("": not a valid id). */
static int enter_qualified(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *id,
                           const char *qid, const sl_channel_info **out, sl_status *st)
{
    if (qid[0] == '\0')
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    id = shown(id);
    int rc = sl_authorize(ctx, who, op, id, st);
    if (rc != SL_OK)
        return rc;
    const sl_channel_info *ch = sl__map_get(ctx->channels, qid);
    if (ch == NULL || (ch->visibility == SL_VIS_PRIVATE && !in_process(who)))
        return sl_status_set(st, SL_ENOENT, "channel '%s' not found", id);
    if (out)
        *out = ch;
    return SL_OK;
}

int sl__channel_enter(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *id,
                      const sl_channel_info **out, sl_status *st)
{
    char qid[SL_CHANNEL_ID_MAX + 1];
    qualify_channel(who, id, qid);
    return enter_qualified(ctx, who, op, id, qid, out, st);
}

static int engine_rc(int rc, const char *id, sl_status *st)
{
    switch (rc) {
    case SL_OK:
        return SL_OK;
    case SL_ENOENT:
        return sl_status_set(st, rc, "channel '%s' not found", id);
    case SL_EFULL:
        return sl_status_set(st, rc, "channel '%s' is full", id);
    case SL_ESTORAGE:
        return sl_status_set(st, rc,
                             "the change to channel '%s' could not be made durable "
                             "(is the disk full?)",
                             id);
    default:
        return sl_status_set(st, rc, "%s", sl_strerror(rc));
    }
}

/* The audit event of a channel operation that is recorded on success; NULL for the others. */
static const char *audited_event(sl_op op)
{
    switch (op) {
    case SL_OP_CHANNEL_CREATE:
        return "channel.create";
    case SL_OP_CHANNEL_DELETE:
        return "channel.delete";
    case SL_OP_CHANNEL_CLEAR:
        return "channel.clear";
    case SL_OP_CHANNEL_EVICT:
        return "channel.evict";
    case SL_OP_CHANNEL_REMOVE:
        return "channel.remove";
    default:
        return NULL;
    }
}

/* Registers settings the engine stored (a creation, or a dead-letter queue it made). */
/* Several nodes share the engine: writes and deletions reach real time through its feed. */
static int shared(const sl_ctx *ctx)
{
    return ctx->engine->ops->watch != NULL;
}

static void register_channel(sl_ctx *ctx, sl_channel_info *info)
{
    if (sl__map_get(ctx->channels, info->id) || sl__map_put(ctx->channels, info->id, info, NULL))
        sl__channel_info_free(info);
}

static int kind_is_queue(const sl_channel_info *ch, const char *what, sl_status *st)
{
    if (ch->kind == SL_KIND_QUEUE)
        return SL_OK;
    return sl_status_set(st, SL_EKIND, "%s applies to work queues; '%s' is a topic", what,
                         shown(ch->id));
}

static void finish(sl__chop *op, int rc)
{
    op->rc = rc;
    if (rc != SL_OK && op->st.code == SL_OK)
        sl_status_set(&op->st, rc, "%s", sl_strerror(rc));
    op->done(op);
}

/* Registers the dead-letter queue the engine created, with the settings it stored (taken from
 * e->info). */
static void register_dead_letter(sl_ctx *ctx, sl__eop *e)
{
    sl_channel_info *info = malloc(sizeof *info);
    if (info == NULL)
        return;
    *info = e->info;
    memset(&e->info, 0, sizeof e->info);
    register_channel(ctx, info);
}

/* A listing keeps the channels who may read (one authorise_many of the regime for those whose
 * mode asks it: list_ask_first). */
static void filter_list(sl__chop *op, sl__eop *e, int rc)
{
    size_t kept = 0;
    for (size_t i = 0; rc == SL_OK && i < e->ninfos; i++) {
        int visible = e->infos[i].visibility == SL_VIS_PUBLIC || in_process(op->who);
        /* Only the caller's own workspace, whatever its role. */
        if (visible && sl__ws_owns(workspace_of(op->who), e->infos[i].id) &&
            sl__authorized_quiet(op->ctx, op->who, SL_OP_CHANNEL_READ, e->infos[i].id)) {
            strip_info(&e->infos[i]);
            if (kept != i)
                e->infos[kept] = e->infos[i];
            kept++;
        } else {
            sl_channel_info_clear(&e->infos[i]);
        }
    }
    op->infos = e->infos;
    op->ninfos = rc == SL_OK ? kept : 0;
    if (rc != SL_OK)
        sl_channel_infos_free(e->infos, e->ninfos);
    e->infos = NULL;
    e->ninfos = 0;
}

static void list_asked(void *ud)
{
    sl__chop *op = ud;
    filter_list(op, &op->eop, SL_OK);
    op->count = op->eop.count;
    sl__eop_clear(&op->eop);
    finish(op, SL_OK);
}

/* (A) 1 when the pluggable regime was asked about the listed channels (list_asked goes on). A
 * listing whose question cannot be built is filtered as it is: what was not asked is denied. */
static int list_ask_first(sl__chop *op)
{
    sl__eop *e = &op->eop;
    const char **ids = e->ninfos ? malloc(e->ninfos * sizeof *ids) : NULL;
    size_t n = 0;
    for (size_t i = 0; ids && i < e->ninfos; i++)
        if ((e->infos[i].visibility == SL_VIS_PUBLIC || in_process(op->who)) &&
            sl__ws_owns(workspace_of(op->who), e->infos[i].id))
            ids[n++] = e->infos[i].id;
    int ask = n && sl__authz_needs(op->ctx, op->who, SL_OP_CHANNEL_READ, ids, n);
    if (ask)
        sl__authz_prepare(op->ctx, op->who, SL_OP_CHANNEL_READ, ids, n, list_asked, op);
    free(ids);
    return ask;
}

/* The engine answered: the outcome is durable. Events and audit records of a success go out now,
 * so that nobody hears of a change a crash could take back. */
/* The channel's settings as the request found them, if the channel is still that channel: the
 * registry's entry may have gone (deleted while the engine worked) or be a new channel of the
 * same id, which the stream epoch tells apart. */
static const sl_channel_info *still_there(const sl__chop *op)
{
    const sl_channel_info *now = sl__map_get(op->ctx->channels, op->qid);
    return now && strcmp(now->epoch, op->epoch) == 0 ? now : NULL;
}

static void engine_done(sl__eop *e)
{
    sl__chop *op = e->ud;
    sl_ctx *ctx = op->ctx;
    const sl_channel_info *ch;
    const char *id = op->qid, *name = shown(op->channel);
    int rc = e->rc;
    if (ctx->metrics) {
        /* answered inside submit (the memory engine): microseconds at most, the first bucket */
        int inside = ctx->submitting == op;
        if (inside)
            ctx->submitting = NULL;
        sl__metrics_engine(ctx->metrics, (int)e->kind, rc,
                           inside ? 0 : (double)(uv_hrtime() - op->m_start) / 1e9);
        ctx->metrics->dead_letters += e->dead.len;
    }
    switch (op->op) {
    case SL_OP_CHANNEL_CREATE:
        if (rc == SL_OK) {
            register_channel(ctx, op->created);
            op->created = NULL;
        } else if (rc == SL_EEXIST) {
            sl_status_set(&op->st, rc, "channel '%s' already exists", name);
        }
        break;
    case SL_OP_CHANNEL_DELETE:
        /* (A shared engine's feed tells every node, this one included.) */
        if (rc == SL_OK && !shared(ctx))
            sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_CHANNEL_DELETED, .channel = id});
        break;
    case SL_OP_CHANNEL_INFO:
        op->info = e->info;
        memset(&e->info, 0, sizeof e->info);
        strip_info(&op->info);
        break;
    case SL_OP_CHANNEL_LIST:
        if (rc == SL_OK && list_ask_first(op))
            return; /* list_asked finishes */
        filter_list(op, e, rc);
        break;
    case SL_OP_CHANNEL_WRITE:
        for (size_t i = 0; rc == SL_OK && i < op->nwrites; i++) {
            op->duplicates += op->dups[i];
            if (op->item_ids)
                memcpy(op->item_ids[i], op->eids[i], sizeof op->eids[i]);
        }
        if (rc == SL_OK && ctx->workspaces && workspace_of(op->who)[0])
            sl__ws_stored_add(ctx->workspaces, workspace_of(op->who), op->nwrites - op->duplicates);
        if (rc == SL_OK && !shared(ctx) && (ch = still_there(op)) != NULL) {
            /* Real time hears of what was stored and may be read now: not of a repeat, and
             * not of a delayed message (its readers learn of it when they can claim it). A
             * shared engine's feed tells every node instead. */
            for (size_t i = 0; i < op->nwrites; i++) {
                if (op->dups[i] || op->msgs[i].not_before > e->now)
                    continue;
                op->msgs[i].id = op->eids[i];
                sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_WRITE,
                                              .channel = id,
                                              .info = ch,
                                              .message = &op->msgs[i]});
                op->msgs[i].id = NULL;
            }
        }
        break;
    case SL_OP_CHANNEL_READ:
    case SL_OP_CHANNEL_TERMINATE:
        op->list = e->list;
        memset(&e->list, 0, sizeof e->list);
        op->seq = e->seq;
        if (e->dead_created) /* whether or not the channel it came from is still there */
            register_dead_letter(ctx, e);
        if (e->dead.len && e->dead_rc != SL_OK)
            sl__audit(ctx, NULL, "channel.dead_letter_dropped", "channel", name, "reason",
                      sl_strerror(e->dead_rc), "workspace", audit_ws(op->who), NULL);
        if (rc == SL_EINVAL)
            sl_status_set(&op->st, rc, "'after' is not a message id of channel '%s'", name);
        break;
    default:
        break;
    }
    /* The record was written ahead (start); a change that did not happen gets a second one. */
    if (rc != SL_OK && audited_event(op->op))
        sl__audit(ctx, NULL, "channel.failed", "principal", principal_of(op->who), "channel", name,
                  "operation", audited_event(op->op), "reason", sl_strerror(rc), "workspace",
                  audit_ws(op->who), NULL);
    op->count = e->count;
    sl__eop_clear(e);
    if (rc != SL_OK && op->st.code == SL_OK)
        engine_rc(rc, name, &op->st);
    finish(op, rc);
}

/* Steps 1-3 and the engine request of every operation; returns an error to answer at once. */
static int start(sl__chop *op)
{
    sl_ctx *ctx = op->ctx;
    sl__eop *e = &op->eop;
    sl_status *st = &op->st;
    const char *id = shown(op->channel ? op->channel : ""); /* the caller's name, for messages */
    int rc;
    e->channel = op->qid;
    e->now = sl_ctx_now(ctx);
    e->reader = principal_of(op->who);
    e->max_bytes = SIZE_MAX;
    switch (op->op) {
    case SL_OP_CHANNEL_LIST:
        if ((rc = sl_authorize(ctx, op->who, SL_OP_CHANNEL_LIST, NULL, st)) != SL_OK)
            return rc;
        e->kind = SL__EOP_LIST;
        return SL_OK;
    case SL_OP_CHANNEL_CREATE: {
        sl_channel_opts defaults;
        const sl_channel_opts *o = op->opts;
        if (o == NULL) {
            sl_channel_opts_init(&defaults);
            o = &defaults;
        }
        if (op->qid[0] == '\0')
            return sl_status_set(st, SL_EBADID, "invalid channel id");
        if ((rc = sl_authorize(ctx, op->who, SL_OP_CHANNEL_CREATE, id, st)) != SL_OK ||
            (rc = sl__chop_check_opts(id, o, st)) != SL_OK)
            return rc;
        if (sl__map_get(ctx->channels, op->qid))
            return sl_status_set(st, SL_EEXIST, "channel '%s' already exists", id);
        if ((rc = channel_room(ctx, op->who, st)) != SL_OK)
            return rc;
        op->created = malloc(sizeof *op->created);
        if (op->created == NULL ||
            sl__chop_build_info(op->created, op->qid, o, workspace_of(op->who)) != SL_OK) {
            free(op->created);
            op->created = NULL;
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        e->kind = SL__EOP_CREATE;
        e->create = op->created;
        return SL_OK;
    }
    default:
        break;
    }
    if (op->op == SL_OP_CHANNEL_NACK && op->release) {
        /* A transport undoing its own caller's claim: no authorisation, no visibility check. */
        e->kind = SL__EOP_NACK;
        e->ids = op->ids;
        e->nids = op->nids;
        e->delay = -1; /* at once: what could not be delivered was not a failed attempt */
        return SL_OK;
    }
    /* op->qid was qualified when the request was submitted */
    if ((rc = enter_qualified(ctx, op->who, op->op, op->channel, op->qid, &op->ch, st)) != SL_OK)
        return rc;
    const sl_channel_info *ch = op->ch;
    memcpy(op->epoch, ch->epoch, sizeof op->epoch); /* op->ch is only valid until we return */
    switch (op->op) {
    case SL_OP_CHANNEL_DELETE:
        /* Out of the registry at once: nothing new starts on a channel being deleted. */
        sl__map_del(ctx->channels, op->qid, sl__channel_info_free);
        op->ch = NULL;
        e->kind = SL__EOP_DROP;
        return SL_OK;
    case SL_OP_CHANNEL_INFO:
        e->kind = SL__EOP_INFO;
        return SL_OK;
    case SL_OP_CHANNEL_WRITE:
        if ((rc = sl__chop_prepare_writes(op)) != SL_OK || (rc = message_room(ctx, op)) != SL_OK)
            return rc;
        e->kind = SL__EOP_APPEND;
        e->msgs = op->msgs;
        e->nmsgs = op->nwrites;
        e->ids_out = op->eids;
        e->keys = op->keys;
        e->dups = op->dups;
        return SL_OK;
    case SL_OP_CHANNEL_READ: {
        if (op->position) {
            e->kind = SL__EOP_POSITION;
            return SL_OK;
        }
        const sl_read *r = &op->read;
        e->limit = r->limit ? r->limit : 10;
        /* The caller's bound, never above the context's cap (0 on either side: none). */
        e->max_bytes = r->max_bytes ? r->max_bytes : SIZE_MAX;
        if (ctx->read_max_bytes && ctx->read_max_bytes < e->max_bytes)
            e->max_bytes = ctx->read_max_bytes;
        if (ch->kind == SL_KIND_QUEUE) {
            if (!r->exclusive)
                return sl_status_set(
                    st, SL_EKIND, "work queue '%s' supports exclusive reads only (exclusive=true)",
                    id);
            e->kind = SL__EOP_CLAIM;
            e->dead_letter = ch->dead_letter;
            return SL_OK;
        }
        if (r->exclusive)
            return sl_status_set(st, SL_EKIND, "topic '%s' does not support exclusive reads", id);
        e->kind = SL__EOP_READ;
        e->after = r->after;
        return SL_OK;
    }
    case SL_OP_CHANNEL_ACK:
    case SL_OP_CHANNEL_NACK:
        if ((rc = kind_is_queue(ch, op->op == SL_OP_CHANNEL_ACK ? "acknowledge" : "nack", st)))
            return rc;
        if (op->op == SL_OP_CHANNEL_NACK && !(op->delay >= 0 && op->delay <= 31536000.0))
            return sl_status_set(st, SL_EINVAL, "delay must be between 0 and 31536000 seconds");
        e->kind = op->op == SL_OP_CHANNEL_ACK ? SL__EOP_ACK : SL__EOP_NACK;
        e->ids = op->ids;
        e->nids = op->nids;
        e->delay = op->delay;
        return SL_OK;
    case SL_OP_CHANNEL_EXTEND: {
        if ((rc = kind_is_queue(ch, "extending leases", st)))
            return rc;
        double ct = ch->claim_timeout > 0 ? ch->claim_timeout : 300;
        double most = ct > EXTEND_MAX ? ct : EXTEND_MAX;
        if (!(op->delay >= 0 && op->delay <= most))
            return sl_status_set(st, SL_EINVAL, "seconds must be between 0 and %.0f", most);
        e->kind = SL__EOP_EXTEND;
        e->ids = op->ids;
        e->nids = op->nids;
        e->delay = op->delay;
        return SL_OK;
    }
    case SL_OP_CHANNEL_TERMINATE:
        if ((rc = kind_is_queue(ch, "terminate", st)))
            return rc;
        if (op->reason && (op->reason[0] == '\0' || strlen(op->reason) > REASON_MAX_LEN))
            return sl_status_set(st, SL_EINVAL, "reason must be 1..%d bytes", REASON_MAX_LEN);
        e->kind = SL__EOP_TERMINATE;
        e->ids = op->ids;
        e->nids = op->nids;
        e->reason = op->reason;
        e->dead_letter = ch->dead_letter;
        return SL_OK;
    case SL_OP_CHANNEL_CLEAR:
        e->kind = SL__EOP_CLEAR;
        return SL_OK;
    case SL_OP_CHANNEL_EVICT:
        e->kind = SL__EOP_EVICT;
        e->before = op->before;
        e->max_count = op->max_count;
        return SL_OK;
    case SL_OP_CHANNEL_REMOVE:
        e->kind = SL__EOP_REMOVE;
        e->ids = op->ids;
        e->nids = op->nids;
        return SL_OK;
    default:
        return sl_status_set(st, SL_EINVAL, "not a channel operation");
    }
}

static void run(sl__chop *op);

/* A shared engine's channel this node has not heard of yet (created on another node a moment
 * ago): the store is asked before the answer is "not found". */
/* An INFO request about a channel the registry lacked answered: its settings go in (taken from
 * e) when the store has it. (Out of memory: the next request asks again.) */
static void register_found(sl_ctx *ctx, sl__eop *e)
{
    sl_channel_info *info = e->rc == SL_OK ? malloc(sizeof *info) : NULL;
    if (info) {
        *info = e->info;
        memset(&e->info, 0, sizeof e->info);
        register_channel(ctx, info);
    }
    sl__eop_clear(e);
}

static void run_prepared(void *ud)
{
    run(ud);
}

/* (A) The regime of a policy channel is asked before the synchronous steps (start) decide. */
static void authorise_then_run(sl__chop *op)
{
    const char *id = op->channel;
    if (op->op == SL_OP_CHANNEL_LIST || op->release || id == NULL ||
        !sl_channel_id_valid(id, strlen(id))) {
        run(op);
        return;
    }
    sl__authz_prepare(op->ctx, op->who, op->op, &op->channel, 1, run_prepared, op);
}

static void looked_up(sl__eop *e)
{
    sl__chop *op = e->ud;
    register_found(op->ctx, e);
    memset(e, 0, sizeof *e);
    authorise_then_run(op);
}

typedef struct lookup {
    sl__eop op;
    char id[SL_CHANNEL_ID_MAX + 1];
    sl_ctx *ctx;
    void (*fn)(void *ud);
    void *ud;
} lookup;

static void lookup_done(sl__eop *e)
{
    lookup *l = e->ud;
    register_found(l->ctx, e);
    l->fn(l->ud);
    free(l);
}

int sl__channel_unknown(const sl_ctx *ctx, const char *id)
{
    return shared(ctx) && id && sl__stored_id_valid(id, strlen(id)) &&
           sl__map_get(ctx->channels, id) == NULL;
}

void sl__channel_lookup(sl_ctx *ctx, const char *id, void (*fn)(void *ud), void *ud)
{
    lookup *l = sl__channel_unknown(ctx, id) ? calloc(1, sizeof *l) : NULL;
    if (l == NULL) {
        fn(ud);
        return;
    }
    snprintf(l->id, sizeof l->id, "%s", id);
    l->ctx = ctx;
    l->fn = fn;
    l->ud = ud;
    l->op.kind = SL__EOP_INFO;
    l->op.channel = l->id;
    l->op.done = lookup_done;
    l->op.ud = l;
    ctx->engine->ops->submit(ctx->engine, &l->op);
}

static int needs_lookup(const sl_ctx *ctx, const sl__chop *op)
{
    return op->op != SL_OP_CHANNEL_LIST && op->op != SL_OP_CHANNEL_CREATE && !op->release &&
           sl__channel_unknown(ctx, op->qid);
}

void sl__channel_submit(sl_ctx *ctx, sl__chop *op)
{
    op->ctx = ctx;
    op->rc = SL_OK;
    sl_status_clear(&op->st);
    memset(&op->eop, 0, sizeof op->eop);
    if (op->op != SL_OP_CHANNEL_LIST)
        qualify_channel(op->who, op->channel, op->qid); /* "" when invalid: start() says so */
    if (needs_lookup(ctx, op)) {
        op->eop.kind = SL__EOP_INFO;
        op->eop.channel = op->qid;
        op->eop.done = looked_up;
        op->eop.ud = op;
        ctx->engine->ops->submit(ctx->engine, &op->eop);
        return;
    }
    authorise_then_run(op);
}

static void run(sl__chop *op)
{
    sl_ctx *ctx = op->ctx;
    int rc = start(op);
    if (rc != SL_OK) {
        finish(op, rc);
        return;
    }
    /* Audited changes are recorded before the engine makes them, in the same loop turn, so the
     * record is fsynced with the change's own group commit, before its reply. */
    const char *event = audited_event(op->op);
    if (event)
        sl__audit(ctx, NULL, event, "principal", principal_of(op->who), "channel",
                  shown(op->channel), "workspace", audit_ws(op->who), NULL);
    op->eop.done = engine_done;
    op->eop.ud = op;
    /* Timed on the monotonic clock, not the loop's cached one (it moves once an iteration, in
     * milliseconds, and most engine operations take less); a request answered inside submit is
     * not timed at all, so the memory engine reads no clock for it. op is only touched after
     * submit while it is unanswered (engine_done cleared submitting otherwise). */
    if (ctx->metrics == NULL) {
        ctx->engine->ops->submit(ctx->engine, &op->eop);
        return;
    }
    sl__chop *outer = ctx->submitting;
    ctx->submitting = op;
    ctx->engine->ops->submit(ctx->engine, &op->eop);
    if (ctx->submitting == op)
        op->m_start = uv_hrtime();
    ctx->submitting = outer;
}

void sl__chop_clear(sl__chop *op)
{
    sl_message_list_free(&op->list);
    sl_channel_info_clear(&op->info);
    sl_channel_infos_free(op->infos, op->ninfos);
    op->infos = NULL;
    op->ninfos = 0;
    sl__channel_info_free(op->created);
    op->created = NULL;
    free(op->msgs);
    op->msgs = NULL;
    free(op->datas);
    op->datas = NULL;
    free(op->keys);
    op->keys = NULL;
    free(op->dups);
    op->dups = NULL;
    free(op->eids);
    op->eids = NULL;
}
