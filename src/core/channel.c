/* The channel API: what every transport calls. Each function runs the pipeline for its operation
 * (validate the id, authorise through the registry, then look the channel up), then asks the store
 * engine to do the work. Authorisation comes before existence so that a caller who may not use a
 * name learns nothing about it; visibility comes right after, so private channels are invisible to
 * network callers. Dead letters are written here because they cross channels. */
#include "core/ctx.h"
#include "core/jsonv.h"
#include "core/message.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 255
#define DESCRIPTION_MAX_LEN 4096

static int in_process(const sl_identity *who)
{
    return who == NULL || who->source == SL_SOURCE_LOCAL || who->source == SL_SOURCE_SYSTEM;
}

static const char *principal_of(const sl_identity *who)
{
    return who == NULL || who->principal[0] == '\0' ? "system" : who->principal;
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
}

/* Steps shared by every channel operation: id, authorisation, existence, visibility. */
int sl__channel_enter(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *id,
                      const sl_channel_info **out, sl_status *st)
{
    if (id == NULL || !sl_channel_id_valid(id, strlen(id)))
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    int rc = sl_authorize(ctx, who, op, id, st);
    if (rc != SL_OK)
        return rc;
    const sl_channel_info *ch = sl__map_get(ctx->channels, id);
    if (ch == NULL || (ch->visibility == SL_VIS_PRIVATE && !in_process(who)))
        return sl_status_set(st, SL_ENOENT, "channel '%s' not found", id);
    if (out)
        *out = ch;
    return SL_OK;
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
    default:
        return sl_status_set(st, rc, "%s", sl_strerror(rc));
    }
}

static int check_opts(const char *id, const sl_channel_opts *o, sl_status *st)
{
    if (o->kind != SL_KIND_QUEUE && o->kind != SL_KIND_TOPIC)
        return sl_status_set(st, SL_EINVAL, "kind must be queue or topic");
    if (o->visibility != SL_VIS_PRIVATE && o->visibility != SL_VIS_PUBLIC)
        return sl_status_set(st, SL_EINVAL, "visibility must be public or private");
    if ((int)o->mode < SL_MODE_INHERIT || o->mode > SL_MODE_TOKEN)
        return sl_status_set(st, SL_EINVAL, "security must be inherit, open, acl or token");
    if (!(o->claim_timeout >= 0 && o->claim_timeout <= 31536000.0))
        return sl_status_set(st, SL_EINVAL, "claim_timeout must be between 0 and 31536000");
    if (!(o->retention_max_age >= 0 && o->retention_max_age <= 1e10))
        return sl_status_set(st, SL_EINVAL, "retention_max_age must be >= 0");
    if (o->name && strlen(o->name) > NAME_MAX_LEN)
        return sl_status_set(st, SL_EINVAL, "name longer than %d bytes", NAME_MAX_LEN);
    if (o->description && strlen(o->description) > DESCRIPTION_MAX_LEN)
        return sl_status_set(st, SL_EINVAL, "description longer than %d bytes",
                             DESCRIPTION_MAX_LEN);
    if (o->dead_letter) {
        if (!sl_channel_id_valid(o->dead_letter, strlen(o->dead_letter)))
            return sl_status_set(st, SL_EBADID, "invalid dead_letter channel id");
        if (strcmp(o->dead_letter, id) == 0)
            return sl_status_set(st, SL_EINVAL, "a channel cannot be its own dead_letter");
    }
    return SL_OK;
}

static int build_info(sl_channel_info *info, const char *id, const sl_channel_opts *o)
{
    memset(info, 0, sizeof *info);
    char dead[SL_CHANNEL_ID_MAX + 8];
    snprintf(dead, sizeof dead, "%s.dead", id);
    info->id = strdup(id);
    info->name = strdup(o->name ? o->name : id);
    info->description = strdup(o->description ? o->description : "");
    /* "<id>.dead" does not fit past 250 bytes; such queues then have no default dead letter. */
    info->dead_letter = o->dead_letter                            ? strdup(o->dead_letter)
                        : sl_channel_id_valid(dead, strlen(dead)) ? strdup(dead)
                                                                  : strdup("");
    info->kind = o->kind;
    info->visibility = o->visibility;
    info->mode = o->mode;
    info->claim_timeout = o->claim_timeout > 0 ? o->claim_timeout : 300;
    info->max_attempts = o->max_attempts;
    info->max_messages = o->max_messages;
    info->retention_max_count = o->retention_max_count;
    info->retention_max_age = o->retention_max_age;
    info->presence = o->presence != 0;
    info->join_leave = o->join_leave != 0;
    if (!info->id || !info->name || !info->description || !info->dead_letter) {
        sl_channel_info_clear(info);
        return SL_ENOMEM;
    }
    return SL_OK;
}

/* Registers and stores a channel without authorising: for creation and dead-letter queues. */
static int create_unchecked(sl_ctx *ctx, const char *id, const sl_channel_opts *o, sl_status *st)
{
    if (sl__map_get(ctx->channels, id))
        return sl_status_set(st, SL_EEXIST, "channel '%s' already exists", id);
    sl_channel_info *info = malloc(sizeof *info);
    if (info == NULL || build_info(info, id, o) != SL_OK) {
        free(info);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    int rc = ctx->engine->ops->create(ctx->engine, info);
    if (rc == SL_OK)
        rc = sl__map_put(ctx->channels, id, info, NULL);
    if (rc != SL_OK) {
        if (rc != SL_EEXIST)
            ctx->engine->ops->drop(ctx->engine, id);
        sl__channel_info_free(info);
        return rc == SL_EEXIST ? sl_status_set(st, rc, "channel '%s' already exists", id)
                               : sl_status_set(st, rc, NULL);
    }
    return SL_OK;
}

int sl_channel_create(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_channel_opts *o,
                      sl_status *st)
{
    sl_channel_opts defaults;
    if (o == NULL) {
        sl_channel_opts_init(&defaults);
        o = &defaults;
    }
    if (id == NULL || !sl_channel_id_valid(id, strlen(id)))
        return sl_status_set(st, SL_EBADID, "invalid channel id");
    int rc = sl_authorize(ctx, who, SL_OP_CHANNEL_CREATE, id, st);
    if (rc == SL_OK)
        rc = check_opts(id, o, st);
    if (rc == SL_OK)
        rc = create_unchecked(ctx, id, o, st);
    if (rc == SL_OK)
        sl__audit(ctx, NULL, "channel.create", "principal", principal_of(who), "channel", id, NULL);
    return rc;
}

int sl_channel_delete(sl_ctx *ctx, const sl_identity *who, const char *id, sl_status *st)
{
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_DELETE, id, NULL, st);
    if (rc != SL_OK)
        return rc;
    ctx->engine->ops->drop(ctx->engine, id);
    sl__map_del(ctx->channels, id, sl__channel_info_free);
    sl__audit(ctx, NULL, "channel.delete", "principal", principal_of(who), "channel", id, NULL);
    sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_CHANNEL_DELETED, .channel = id});
    return SL_OK;
}

int sl_channel_info_get(sl_ctx *ctx, const sl_identity *who, const char *id, sl_channel_info *info,
                        sl_status *st)
{
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_INFO, id, NULL, st);
    if (rc != SL_OK)
        return rc;
    return engine_rc(ctx->engine->ops->info(ctx->engine, id, info), id, st);
}

int sl_channel_list(sl_ctx *ctx, const sl_identity *who, sl_channel_info **out, size_t *n,
                    sl_status *st)
{
    *out = NULL;
    *n = 0;
    int rc = sl_authorize(ctx, who, SL_OP_CHANNEL_LIST, NULL, st);
    if (rc != SL_OK)
        return rc;
    sl_channel_info *all;
    size_t total;
    rc = ctx->engine->ops->list(ctx->engine, &all, &total);
    if (rc != SL_OK)
        return sl_status_set(st, rc, NULL);
    size_t kept = 0;
    for (size_t i = 0; i < total; i++) {
        int visible = all[i].visibility == SL_VIS_PUBLIC || in_process(who);
        if (visible && sl__authorized_quiet(ctx, who, SL_OP_CHANNEL_READ, all[i].id)) {
            if (kept != i)
                all[kept] = all[i];
            kept++;
        } else {
            sl_channel_info_clear(&all[i]);
        }
    }
    *out = all;
    *n = kept;
    return SL_OK;
}

int sl_channel_write(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_write *w,
                     char *item_id, size_t item_id_size, sl_status *st)
{
    const sl_channel_info *ch = NULL;
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_WRITE, id, &ch, st);
    if (rc != SL_OK)
        return rc;
    if (w == NULL || w->data == NULL)
        return sl_status_set(st, SL_EINVAL, "no data");
    if (!sl__json_valid(w->data, w->data_len))
        return sl_status_set(st, SL_EJSON, "message data is not valid JSON");
    if (w->metadata) {
        size_t n = strlen(w->metadata), i = 0;
        while (i < n && strchr(" \t\r\n", w->metadata[i]))
            i++;
        if (i == n || w->metadata[i] != '{' || !sl__json_valid(w->metadata, n))
            return sl_status_set(st, SL_EJSON, "metadata must be a JSON object");
    }
    /* The engine copies what it keeps, so the message borrows the caller's strings; only the data,
     * which comes with a length rather than a terminator, may need a terminated copy. */
    char small[4096], *data = small;
    if (w->data_len >= sizeof small && (data = malloc(w->data_len + 1)) == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    memcpy(data, w->data, w->data_len);
    data[w->data_len] = '\0';
    sl_message m = {
        .timestamp = sl_ctx_now(ctx),
        .sender_id = (char *)principal_of(who),
        .data = data,
        .metadata = (char *)w->metadata,
        .correlation_id = (char *)w->correlation_id,
        .reply_to = (char *)w->reply_to,
        .recipient_id = (char *)w->recipient_id,
        .origin = (char *)w->origin,
    };
    char idbuf[32];
    rc = ctx->engine->ops->append(ctx->engine, id, &m, m.timestamp, idbuf);
    if (rc == SL_OK) {
        m.id = idbuf;
        sl__ctx_emit(ctx,
                     &(sl_event){.kind = SL_EVENT_WRITE, .channel = id, .info = ch, .message = &m});
    }
    if (data != small)
        free(data);
    if (rc != SL_OK)
        return engine_rc(rc, id, st);
    if (item_id && item_id_size)
        snprintf(item_id, item_id_size, "%s", idbuf);
    return SL_OK;
}

/* Moves messages past max_attempts to the channel's dead-letter queue, creating it (as a private
 * queue) on first use. A dead letter that cannot be stored is dropped with an audit record rather
 * than redelivered forever. */
static void dead_letter(sl_ctx *ctx, const sl_channel_info *ch, sl_message_list *dead)
{
    for (size_t i = 0; i < dead->len; i++) {
        sl_message *m = &dead->items[i];
        int rc = SL_ENOENT;
        if (ch->dead_letter[0]) {
            if (sl__map_get(ctx->channels, ch->dead_letter) == NULL) {
                sl_channel_opts o;
                sl_channel_opts_init(&o);
                o.visibility = ch->visibility;
                create_unchecked(ctx, ch->dead_letter, &o, NULL);
            }
            char idbuf[32];
            rc = ctx->engine->ops->append(ctx->engine, ch->dead_letter, m, sl_ctx_now(ctx), idbuf);
        }
        if (rc != SL_OK)
            sl__audit(ctx, NULL, "channel.dead_letter_dropped", "channel", ch->id, "reason",
                      sl_strerror(rc), NULL);
    }
    sl_message_list_free(dead);
}

int sl_channel_read(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_read *r,
                    sl_message_list *out, sl_status *st)
{
    out->items = NULL;
    out->len = 0;
    const sl_channel_info *ch = NULL;
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_READ, id, &ch, st);
    if (rc != SL_OK)
        return rc;
    size_t limit = r && r->limit ? r->limit : 10;
    int exclusive = r && r->exclusive;
    /* The caller's bound, never above the context's cap (0 on either side: that side sets none). */
    size_t max_bytes = r && r->max_bytes ? r->max_bytes : SIZE_MAX;
    if (ctx->read_max_bytes && ctx->read_max_bytes < max_bytes)
        max_bytes = ctx->read_max_bytes;
    double now = sl_ctx_now(ctx);
    if (ch->kind == SL_KIND_QUEUE) {
        if (!exclusive)
            return sl_status_set(
                st, SL_EKIND, "work queue '%s' supports exclusive reads only (exclusive=true)", id);
        sl_message_list dead = {0};
        rc = ctx->engine->ops->claim(ctx->engine, id, principal_of(who), limit, max_bytes, now, out,
                                     &dead);
        if (dead.len)
            dead_letter(ctx, ch, &dead);
        return engine_rc(rc, id, st);
    }
    if (exclusive)
        return sl_status_set(st, SL_EKIND, "topic '%s' does not support exclusive reads", id);
    rc = ctx->engine->ops->read(ctx->engine, id, principal_of(who), r ? r->after : NULL, limit,
                                max_bytes, now, out);
    if (rc == SL_EINVAL)
        return sl_status_set(st, rc, "'after' is not a message id of channel '%s'", id);
    return engine_rc(rc, id, st);
}

int sl__channel_release(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                        size_t n)
{
    size_t count = 0;
    return ctx->engine->ops->nack(ctx->engine, id, principal_of(who), ids, n, 0, sl_ctx_now(ctx),
                                  &count);
}

static int kind_is_queue(const sl_channel_info *ch, const char *what, sl_status *st)
{
    if (ch->kind == SL_KIND_QUEUE)
        return SL_OK;
    return sl_status_set(st, SL_EKIND, "%s applies to work queues; '%s' is a topic", what, ch->id);
}

int sl_channel_ack(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                   size_t n, size_t *count, sl_status *st)
{
    const sl_channel_info *ch = NULL;
    *count = 0;
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_ACK, id, &ch, st);
    if (rc == SL_OK)
        rc = kind_is_queue(ch, "acknowledge", st);
    if (rc != SL_OK)
        return rc;
    return engine_rc(
        ctx->engine->ops->ack(ctx->engine, id, principal_of(who), ids, n, sl_ctx_now(ctx), count),
        id, st);
}

int sl_channel_nack(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                    size_t n, double delay, size_t *count, sl_status *st)
{
    const sl_channel_info *ch = NULL;
    *count = 0;
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_NACK, id, &ch, st);
    if (rc == SL_OK)
        rc = kind_is_queue(ch, "nack", st);
    if (rc != SL_OK)
        return rc;
    if (!(delay >= 0 && delay <= 31536000.0))
        return sl_status_set(st, SL_EINVAL, "delay must be between 0 and 31536000 seconds");
    return engine_rc(ctx->engine->ops->nack(ctx->engine, id, principal_of(who), ids, n, delay,
                                            sl_ctx_now(ctx), count),
                     id, st);
}

int sl_channel_clear(sl_ctx *ctx, const sl_identity *who, const char *id, size_t *count,
                     sl_status *st)
{
    *count = 0;
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_CLEAR, id, NULL, st);
    if (rc != SL_OK)
        return rc;
    rc = engine_rc(ctx->engine->ops->clear(ctx->engine, id, count), id, st);
    if (rc == SL_OK)
        sl__audit(ctx, NULL, "channel.clear", "principal", principal_of(who), "channel", id, NULL);
    return rc;
}

int sl_channel_evict(sl_ctx *ctx, const sl_identity *who, const char *id, double before,
                     size_t max_count, size_t *count, sl_status *st)
{
    *count = 0;
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_EVICT, id, NULL, st);
    if (rc != SL_OK)
        return rc;
    rc = engine_rc(ctx->engine->ops->evict(ctx->engine, id, before, max_count, count), id, st);
    if (rc == SL_OK)
        sl__audit(ctx, NULL, "channel.evict", "principal", principal_of(who), "channel", id, NULL);
    return rc;
}

int sl_channel_remove(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                      size_t n, size_t *count, sl_status *st)
{
    *count = 0;
    int rc = sl__channel_enter(ctx, who, SL_OP_CHANNEL_REMOVE, id, NULL, st);
    if (rc != SL_OK)
        return rc;
    rc = engine_rc(ctx->engine->ops->remove(ctx->engine, id, ids, n, count), id, st);
    if (rc == SL_OK)
        sl__audit(ctx, NULL, "channel.remove", "principal", principal_of(who), "channel", id, NULL);
    return rc;
}

/* ---- ACL ------------------------------------------------------------------------------------- */

int sl_acl_grant(sl_ctx *ctx, const sl_identity *who, const char *principal, sl_role role,
                 const char *const *patterns, size_t n, sl_status *st)
{
    if (principal == NULL || !sl_principal_valid(principal, strlen(principal)))
        return sl_status_set(st, SL_EINVAL, "invalid principal");
    int rc = sl_authorize(ctx, who, SL_OP_ACL_GRANT, principal, st);
    if (rc != SL_OK)
        return rc;
    if (role == SL_ROLE_NONE)
        return sl_status_set(st, SL_EINVAL, "role must be read, write or admin");
    for (size_t i = 0; i < n; i++)
        if (patterns[i] == NULL || !sl_pattern_valid(patterns[i], strlen(patterns[i])))
            return sl_status_set(st, SL_EINVAL, "invalid channel pattern");
    /* Written ahead of the change: an ACL change nobody could audit is not made. */
    rc = sl__audit(ctx, st, "acl.grant", "actor", principal_of(who), "principal", principal, "role",
                   sl_role_name(role), NULL);
    if (rc != SL_OK)
        return rc;
    rc = sl__acl_set(ctx->acl, principal, role, patterns, n);
    if (rc != SL_OK)
        return sl_status_set(st, rc, NULL);
    sl__ctx_emit(ctx, &(sl_event){.kind = SL_EVENT_ACL_CHANGED, .principal = principal});
    return SL_OK;
}

int sl_acl_revoke(sl_ctx *ctx, const sl_identity *who, const char *principal, sl_status *st)
{
    if (principal == NULL || !sl_principal_valid(principal, strlen(principal)))
        return sl_status_set(st, SL_EINVAL, "invalid principal");
    int rc = sl_authorize(ctx, who, SL_OP_ACL_REVOKE, principal, st);
    if (rc != SL_OK)
        return rc;
    if (!sl__acl_has(ctx->acl, principal))
        return sl_status_set(st, SL_ENOENT, "no ACL entry for '%s'", principal);
    rc = sl__audit(ctx, st, "acl.revoke", "actor", principal_of(who), "principal", principal, NULL);
    if (rc != SL_OK)
        return rc;
    sl__acl_del(ctx->acl, principal);
    sl__ctx_emit(ctx,
                 &(sl_event){.kind = SL_EVENT_ACL_CHANGED, .principal = principal, .removed = 1});
    return SL_OK;
}

int sl_acl_list(sl_ctx *ctx, const sl_identity *who, sl_acl_entry **out, size_t *n, sl_status *st)
{
    *out = NULL;
    *n = 0;
    int rc = sl_authorize(ctx, who, SL_OP_ACL_LIST, NULL, st);
    if (rc != SL_OK)
        return rc;
    rc = sl__acl_list(ctx->acl, out, n);
    return rc == SL_OK ? SL_OK : sl_status_set(st, rc, NULL);
}

int sl__channel_position(sl_ctx *ctx, const char *id, uint64_t *seq)
{
    return ctx->engine->ops->position(ctx->engine, id, seq);
}
