/* Fuzz target: what the Redis engine (src/store/redis_engine.c) makes of its script's replies and
 * of the events published on a channel's event channel, through the pure decoders of
 * src/store/redis_codec.h. Anyone who can write to that Redis controls both. The input is a stream
 * of RESP replies, parsed with hiredis's own reader as the engine's connection does; each reply
 * (and each element of an array, a few levels down) is decoded as the reply of every request kind
 * and as a channel's settings; string replies, and the raw input, are decoded as event payloads.
 * Checked:
 * every decode answers SL_OK, SL_EFORMAT, one of the script's error names or Redis's refusals
 * (SL_ESTORAGE, SL_EUNAVAIL) (SL_ENOMEM aside) and releases what it made; a decoded
 * message has a 16-hex-digit id, data, and no field longer than its source; a decoded event is
 * exactly what it claims; decoded settings have a valid id and kind. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/message.h"
#include "store/redis_codec.h"

static redisReplyObjectFunctions bounded;
static void *(*create_array)(const redisReadTask *, int);

/* hiredis 0.14 allocates an array's element table as declared: refuse large ones so the fuzzer
 * explores the decoders rather than the allocator. */
static void *small_array(const redisReadTask *t, int n)
{
    return n > 1024 ? NULL : create_array(t, n);
}

static void check_msg(const sl_message *m, size_t inlen)
{
    uint64_t seq;
    if (m->id == NULL || !sl__msgid_parse(m->id, &seq) || m->data == NULL ||
        strlen(m->data) > inlen || !isfinite(m->timestamp) || m->timestamp < 0 ||
        !isfinite(m->expires_at))
        abort();
}

static void check_list(const sl_message_list *l, size_t inlen)
{
    for (size_t i = 0; i < l->len; i++)
        check_msg(&l->items[i], inlen);
}

static void check_info(const sl_channel_info *i)
{
    if (i->id == NULL || !sl_channel_id_valid(i->id, strlen(i->id)) || i->name == NULL ||
        i->description == NULL || i->dead_letter == NULL ||
        (i->kind != SL_KIND_QUEUE && i->kind != SL_KIND_TOPIC) || i->nbackoff > SL_BACKOFF_MAX ||
        strlen(i->epoch) >= sizeof i->epoch)
        abort();
}

typedef struct evstate {
    size_t inlen, n;
    int deleted;
} evstate;

static void on_event(void *ud, const sl_message *m, int deleted)
{
    evstate *st = ud;
    if (deleted)
        st->deleted++;
    else
        check_msg(m, st->inlen);
    st->n++;
}

/* Events: a deletion is exactly "d" and alone; messages decode as messages; codes as documented. */
static void check_events(const char *p, size_t len)
{
    evstate st = {len, 0, 0};
    int rc = sl__redis_decode_events(p, len, on_event, &st);
    if (rc != SL_OK && rc != SL_EFORMAT && rc != SL_ENOMEM)
        abort();
    if (st.deleted && (st.n != 1 || len != 1 || p[0] != 'd'))
        abort();
    if (rc == SL_OK && st.n == 0)
        abort();
}

static void check_reply(const redisReply *r, int depth, size_t inlen)
{
    static const sl__eop_kind kinds[] = {
        SL__EOP_CREATE,   SL__EOP_DROP,  SL__EOP_INFO,   SL__EOP_LIST,
        SL__EOP_APPEND,   SL__EOP_CLAIM, SL__EOP_ACK,    SL__EOP_NACK,
        SL__EOP_READ,     SL__EOP_CLEAR, SL__EOP_EVICT,  SL__EOP_REMOVE,
        SL__EOP_POSITION, SL__EOP_SYNC,  SL__EOP_EXTEND, SL__EOP_TERMINATE};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char ids[3][SL__MSGID_LEN + 1];
        unsigned char dups[3];
        sl__eop op = {.kind = kinds[k], .nmsgs = 3, .ids_out = ids, .dups = dups};
        int vis = 7;
        int rc = sl__redis_decode_reply(&op, r, &vis);
        if (vis != -1 && (vis != 0 && vis != 1))
            abort();
        if (rc == SL_OK) {
            check_list(&op.list, inlen);
            check_list(&op.dead, inlen);
            for (size_t i = 0; i < op.ninfos; i++)
                check_info(&op.infos[i]);
            if (op.kind == SL__EOP_INFO || op.dead_created)
                check_info(&op.info);
            if (op.kind == SL__EOP_APPEND)
                for (int i = 0; i < 3; i++) {
                    uint64_t seq;
                    if (!sl__msgid_parse(ids[i], &seq) || dups[i] > 1)
                        abort();
                }
        } else if (rc != SL_EFORMAT && rc != SL_ENOMEM && rc != SL_ENOENT && rc != SL_EEXIST &&
                   rc != SL_EKIND && rc != SL_EINVAL && rc != SL_EFULL && rc != SL_ESTORAGE &&
                   rc != SL_EUNAVAIL) {
            abort();
        }
        sl__eop_clear(&op);
    }
    sl_channel_info info;
    if (sl__redis_decode_info(r, &info) == SL_OK) {
        check_info(&info);
        sl_channel_info_clear(&info);
    }
    if (r->type == REDIS_REPLY_STRING)
        check_events(r->str, r->len);
    if (r->type == REDIS_REPLY_ARRAY && depth < 3)
        for (size_t i = 0; i < r->elements && i < 16; i++)
            check_reply(r->element[i], depth + 1, inlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_events((const char *)data, size);
    sl__eop op = {.kind = SL__EOP_INFO};
    int vis;
    if (sl__redis_decode_reply(&op, NULL, &vis) != SL_EUNAVAIL)
        abort();

    redisReader *rd = redisReaderCreate();
    if (rd == NULL)
        abort();
    if (create_array == NULL) {
        bounded = *rd->fn;
        create_array = bounded.createArray;
        bounded.createArray = small_array;
    }
    rd->fn = &bounded;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int k = 0; k < 32; k++) {
            void *rep = NULL;
            if (redisReaderGetReply(rd, &rep) != REDIS_OK || rep == NULL)
                break;
            check_reply(rep, 0, size);
            freeReplyObject(rep);
        }
    }
    redisReaderFree(rd);
    return 0;
}
