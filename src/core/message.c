/* Ownership helpers for the public value types: releasing messages, message lists and channel
 * infos, and deep-copying them. Every release function accepts NULL and leaves an empty value, so
 * callers can clear unconditionally on their error paths. Also the one message id format every
 * engine writes and the real-time transports read as an offset. */
#include "core/message.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void sl_message_clear(sl_message *m)
{
    if (m == NULL)
        return;
    free(m->id);
    free(m->sender_id);
    free(m->data);
    free(m->metadata);
    free(m->correlation_id);
    free(m->reply_to);
    free(m->recipient_id);
    free(m->origin);
    free(m->dead_reason);
    memset(m, 0, sizeof *m);
}

void sl_message_list_free(sl_message_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->len; i++)
        sl_message_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->len = 0;
    l->more = 0;
}

size_t sl_message_size(const sl_message *m)
{
    const char *const f[] = {m->sender_id, m->data,         m->metadata, m->correlation_id,
                             m->reply_to,  m->recipient_id, m->origin,   m->dead_reason};
    size_t n = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        n += f[i] ? strlen(f[i]) : 0;
    return n;
}

void sl_channel_info_clear(sl_channel_info *info)
{
    if (info == NULL)
        return;
    free(info->id);
    free(info->name);
    free(info->description);
    free(info->dead_letter);
    memset(info, 0, sizeof *info);
}

void sl_channel_infos_free(sl_channel_info *infos, size_t n)
{
    if (infos == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        sl_channel_info_clear(&infos[i]);
    free(infos);
}

/* Copies *src_field into *dst_field; 0 on allocation failure (a NULL source is not a failure). */
static int dup_field(char **dst_field, const char *src_field)
{
    *dst_field = src_field ? strdup(src_field) : NULL;
    return src_field == NULL || *dst_field != NULL;
}

int sl__message_copy(sl_message *dst, const sl_message *src)
{
    *dst = *src;
    int ok = dup_field(&dst->id, src->id);
    ok &= dup_field(&dst->sender_id, src->sender_id);
    ok &= dup_field(&dst->data, src->data);
    ok &= dup_field(&dst->metadata, src->metadata);
    ok &= dup_field(&dst->correlation_id, src->correlation_id);
    ok &= dup_field(&dst->reply_to, src->reply_to);
    ok &= dup_field(&dst->recipient_id, src->recipient_id);
    ok &= dup_field(&dst->origin, src->origin);
    ok &= dup_field(&dst->dead_reason, src->dead_reason);
    if (!ok) {
        sl_message_clear(dst);
        return SL_ENOMEM;
    }
    return SL_OK;
}

int sl__channel_info_copy(sl_channel_info *dst, const sl_channel_info *src)
{
    *dst = *src;
    int ok = dup_field(&dst->id, src->id);
    ok &= dup_field(&dst->name, src->name);
    ok &= dup_field(&dst->description, src->description);
    ok &= dup_field(&dst->dead_letter, src->dead_letter);
    if (!ok) {
        sl_channel_info_clear(dst);
        return SL_ENOMEM;
    }
    return SL_OK;
}

void sl__msgid_format(uint64_t seq, char out[SL__MSGID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = SL__MSGID_LEN - 1; i >= 0; i--, seq >>= 4)
        out[i] = hex[seq & 0xf];
    out[SL__MSGID_LEN] = '\0';
}

int sl__msgid_parse(const char *id, uint64_t *seq)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; id && i < SL__MSGID_LEN && id[i]; i++) {
        char c = id[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return 0;
        v = v << 4 | d;
    }
    if (id == NULL || i != SL__MSGID_LEN || id[i] != '\0')
        return 0;
    *seq = v;
    return 1;
}

void sl__epoch_new(char out[17])
{
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        /* Without the kernel's randomness an epoch need only differ from the last one. */
        uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out;
        memcpy(rnd, &t, sizeof rnd);
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}
