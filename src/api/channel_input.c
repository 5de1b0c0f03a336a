/* The channel API's checks of what a request brings (channel.c runs them): a new channel's
 * options and the settings built from them, and each write of a batch (data and metadata are
 * JSON, idempotency key, envelope fields, delivery timing), from which the engine's messages are
 * made. Every refusal names the field and its bounds. */
#include "api/channel_internal.h"
#include "api/ctx.h"
#include "core/jsonv.h"
#include "core/message.h"
#include "core/wsid.h"
#include "security/workspace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 255
#define DESCRIPTION_MAX_LEN 4096

int sl__chop_check_opts(const char *id, const sl_channel_opts *o, sl_status *st)
{
    if (o->kind != SL_KIND_QUEUE && o->kind != SL_KIND_TOPIC)
        return sl_status_set(st, SL_EINVAL, "kind must be queue or topic");
    if (o->visibility != SL_VIS_PRIVATE && o->visibility != SL_VIS_PUBLIC)
        return sl_status_set(st, SL_EINVAL, "visibility must be public or private");
    if ((int)o->mode < SL_MODE_INHERIT || o->mode > SL_MODE_POLICY)
        return sl_status_set(st, SL_EINVAL, "security must be inherit, open, acl, token or policy");
    if (!(o->claim_timeout >= 0 && o->claim_timeout <= 31536000.0))
        return sl_status_set(st, SL_EINVAL, "claim_timeout must be between 0 and 31536000");
    if (!(o->retention_max_age >= 0 && o->retention_max_age <= 1e10))
        return sl_status_set(st, SL_EINVAL, "retention_max_age must be >= 0");
    if (o->nbackoff > SL_BACKOFF_MAX)
        return sl_status_set(st, SL_EINVAL, "backoff has at most %d steps", SL_BACKOFF_MAX);
    for (size_t i = 0; i < o->nbackoff; i++)
        if (!(o->backoff[i] >= 0 && o->backoff[i] <= 31536000.0))
            return sl_status_set(st, SL_EINVAL, "backoff steps must be between 0 and 31536000");
    if (!(o->dedup_window >= 0 && o->dedup_window <= 604800.0))
        return sl_status_set(st, SL_EINVAL, "dedup_window must be between 0 and 604800");
    if (!(o->cursor_idle_timeout >= 0 && o->cursor_idle_timeout <= 31536000.0))
        return sl_status_set(st, SL_EINVAL, "cursor_idle_timeout must be between 0 and 31536000");
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

int sl__chop_build_info(sl_channel_info *info, const char *id, const sl_channel_opts *o,
                        const char *ws)
{
    memset(info, 0, sizeof *info);
    char dead[SL_CHANNEL_ID_MAX + 8], qdead[SL_CHANNEL_ID_MAX + 1];
    snprintf(dead, sizeof dead, "%s.dead", id);
    if (o->dead_letter && sl__ws_qualify(ws, o->dead_letter, qdead, sizeof qdead) != SL_OK)
        return SL_EBADID;
    /* A user-limited queue's dead letters stay limited to the same users: "inbox.dead#alice"
     * ("inbox#alice.dead" would be a channel of a user "alice.dead"). */
    const char *users = sl_channel_users(id);
    if (users != NULL)
        snprintf(dead, sizeof dead, "%.*s.dead#%s", (int)(users - 1 - id), id, users);
    sl__epoch_new(info->epoch); /* the registry's and the engine's copies share it */
    info->id = strdup(id);
    info->name = strdup(o->name ? o->name : shown(id));
    info->description = strdup(o->description ? o->description : "");
    /* "<id>.dead" does not fit past 250 bytes; such queues then have no default dead letter. */
    info->dead_letter = o->dead_letter                            ? strdup(qdead)
                        : sl__stored_id_valid(dead, strlen(dead)) ? strdup(dead)
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
    info->nbackoff = o->nbackoff;
    memcpy(info->backoff, o->backoff, sizeof info->backoff);
    info->dedup_window = o->dedup_window > 0 ? o->dedup_window : 120;
    info->cursor_idle_timeout = o->cursor_idle_timeout > 0 ? o->cursor_idle_timeout : 86400;
    if (!info->id || !info->name || !info->description || !info->dead_letter) {
        sl_channel_info_clear(info);
        return SL_ENOMEM;
    }
    return SL_OK;
}

static int key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > SL__IDEMPOTENCY_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f)
            return 0;
    return 1;
}

/* correlation_id, reply_to and recipient_id: absent, or 1..SL__ENVELOPE_FIELD_MAX bytes. */
static int check_envelope(sl__chop *op, const sl_write *w)
{
    const char *const v[] = {w->correlation_id, w->reply_to, w->recipient_id};
    static const char *const names[] = {"correlation_id", "reply_to", "recipient_id"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = v[i] ? strlen(v[i]) : 1;
        if (n == 0 || n > SL__ENVELOPE_FIELD_MAX)
            return sl_status_set(&op->st, SL_EINVAL, "%s must be a string of 1..%d bytes", names[i],
                                 SL__ENVELOPE_FIELD_MAX);
    }
    return SL_OK;
}

#define SECONDS_MAX 31536000.0

/* The delivery options of one write: when it may be claimed, when it expires. */
static int check_timing(sl__chop *op, const sl_write *w, double now)
{
    sl_status *st = &op->st;
    if (!(w->delay >= 0 && w->delay <= SECONDS_MAX))
        return sl_status_set(st, SL_EINVAL, "delay must be between 0 and 31536000 seconds");
    if (!(w->not_before >= 0 && w->not_before <= now + SECONDS_MAX))
        return sl_status_set(st, SL_EINVAL,
                             "not_before must be epoch seconds at most a year from now");
    if (!(w->ttl >= 0 && w->ttl <= SECONDS_MAX))
        return sl_status_set(st, SL_EINVAL, "ttl must be between 0 and 31536000 seconds");
    if ((w->delay > 0 || w->not_before > 0) && op->ch->kind != SL_KIND_QUEUE)
        return sl_status_set(st, SL_EKIND,
                             "delayed delivery applies to work queues; '%s' is a topic",
                             shown(op->ch->id));
    return SL_OK;
}

int sl__chop_prepare_writes(sl__chop *op)
{
    if (op->writes == NULL || op->nwrites == 0)
        return sl_status_set(&op->st, SL_EINVAL, "no data");
    if (op->nwrites > SL_BATCH_MAX)
        return sl_status_set(&op->st, SL_ELIMIT, "at most %d messages per batch", SL_BATCH_MAX);
    double now = sl_ctx_now(op->ctx);
    size_t total = 0, nkeys = 0;
    for (size_t i = 0; i < op->nwrites; i++) {
        const sl_write *w = &op->writes[i];
        if (w->data == NULL)
            return sl_status_set(&op->st, SL_EINVAL, "no data");
        if (w->idempotency_key && !key_valid(w->idempotency_key))
            return sl_status_set(&op->st, SL_EINVAL,
                                 "idempotency_key must be 1..255 bytes without control characters");
        nkeys += w->idempotency_key != NULL;
        int rc = check_envelope(op, w);
        if (rc != SL_OK || (rc = check_timing(op, w, now)) != SL_OK)
            return rc;
        if (!sl__json_valid(w->data, w->data_len))
            return sl_status_set(&op->st, SL_EJSON, "message data is not valid JSON");
        if (w->metadata) {
            size_t n = strlen(w->metadata), k = 0;
            while (k < n && strchr(" \t\r\n", w->metadata[k]))
                k++;
            if (k == n || w->metadata[k] != '{' || !sl__json_valid(w->metadata, n))
                return sl_status_set(&op->st, SL_EJSON, "metadata must be a JSON object");
        }
        total += w->data_len + 1;
    }
    op->msgs = calloc(op->nwrites, sizeof *op->msgs);
    op->datas = malloc(total);
    op->dups = calloc(op->nwrites, 1);
    op->eids = calloc(op->nwrites, sizeof *op->eids);
    if (nkeys)
        op->keys = calloc(op->nwrites, sizeof *op->keys);
    if (op->msgs == NULL || op->datas == NULL || op->dups == NULL || op->eids == NULL ||
        (nkeys && op->keys == NULL))
        return sl_status_set(&op->st, SL_ENOMEM, NULL);
    char *p = op->datas;
    for (size_t i = 0; i < op->nwrites; i++) {
        const sl_write *w = &op->writes[i];
        memcpy(p, w->data, w->data_len);
        p[w->data_len] = '\0';
        op->msgs[i] = (sl_message){
            .timestamp = now,
            .sender_id = (char *)principal_of(op->who),
            .data = p,
            .metadata = (char *)w->metadata,
            .correlation_id = (char *)w->correlation_id,
            .reply_to = (char *)w->reply_to,
            .recipient_id = (char *)w->recipient_id,
            .origin = (char *)w->origin,
            .not_before = w->not_before > now + w->delay ? w->not_before : now + w->delay,
            .expires_at = w->ttl > 0 ? now + w->ttl : 0,
        };
        if (!(w->delay > 0 || w->not_before > now))
            op->msgs[i].not_before = 0;
        if (op->keys)
            op->keys[i] = w->idempotency_key;
        p += w->data_len + 1;
    }
    return SL_OK;
}
