/* The Redis engine's decoders: the script's replies (src/store/redis_scripts.lua) and the events
 * it publishes, into engine outputs. Pure functions over hiredis reply trees and bytes; whatever
 * Redis holds (it may have been written by hand) is validated here before it becomes a message or a
 * channel's settings, so a transport that renders stored text verbatim never sees a malformed one.
 */
#include "store/redis_codec.h"

#include "core/message.h"
#include "core/wsid.h"
#include "core/numtext.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The stream's field tags, in the order the engine writes them, and where each goes. */
static const struct {
    char tag;
    size_t off;
} str_fields[] = {
    {'s', offsetof(sl_message, sender_id)}, {'d', offsetof(sl_message, data)},
    {'m', offsetof(sl_message, metadata)},  {'c', offsetof(sl_message, correlation_id)},
    {'r', offsetof(sl_message, reply_to)},  {'p', offsetof(sl_message, recipient_id)},
    {'o', offsetof(sl_message, origin)},    {'x', offsetof(sl_message, dead_reason)},
};
#define NSTR (sizeof str_fields / sizeof str_fields[0])

int sl__redis_error_code(const char *s, size_t len)
{
    static const struct {
        const char *name;
        int code;
    } names[] = {{"ENOENT", SL_ENOENT},
                 {"EEXIST", SL_EEXIST},
                 {"EKIND", SL_EKIND},
                 {"EINVAL", SL_EINVAL},
                 {"EFULL", SL_EFULL}};
    /* Redis may put "ERR " in front of a script's error text. */
    if (len >= 4 && memcmp(s, "ERR ", 4) == 0)
        s += 4, len -= 4;
    /* Redis itself refusing: out of memory (maxmemory) is storage, the rest is unavailability. */
    static const char *const busy[] = {"READONLY",   "LOADING",  "BUSY",       "MASTERDOWN",
                                       "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN"};
    if (len >= 3 && memcmp(s, "OOM", 3) == 0 && (len == 3 || s[3] == ' '))
        return SL_ESTORAGE;
    for (size_t i = 0; i < sizeof busy / sizeof busy[0]; i++) {
        size_t n = strlen(busy[i]);
        if (len >= n && memcmp(s, busy[i], n) == 0 && (len == n || s[n] == ' '))
            return SL_EUNAVAIL;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == len && memcmp(s, names[i].name, len) == 0)
            return names[i].code;
    return SL_EFORMAT;
}

static int is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static int is_arr(const redisReply *r, size_t n)
{
    return r && r->type == REDIS_REPLY_ARRAY && (n == SIZE_MAX || r->elements == n);
}

/* A finite decimal number, exactly (nothing before or after it). */
static int parse_num(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (buf[0] == ' ' || buf[0] == '\t' || buf[0] == '\n')
        return 0;
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + len || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* A number from an integer reply or a decimal string reply. */
static int reply_num(const redisReply *r, double *out)
{
    if (r && r->type == REDIS_REPLY_INTEGER) {
        *out = (double)r->integer;
        return 1;
    }
    return is_str(r) && parse_num(r->str, r->len, out);
}

static int reply_uint(const redisReply *r, uint64_t max, uint64_t *out)
{
    double v;
    if (!reply_num(r, &v) || v < 0 || v > (double)max || v != floor(v))
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* A copy of a string without NUL bytes; SL_EFORMAT or SL_ENOMEM. */
static int dup_str(const char *s, size_t len, char **out)
{
    if (memchr(s, '\0', len))
        return SL_EFORMAT;
    char *p = malloc(len + 1);
    if (p == NULL)
        return SL_ENOMEM;
    memcpy(p, s, len);
    p[len] = '\0';
    *out = p;
    return SL_OK;
}

/* One field of a message by its tag; SL_EFORMAT for an unknown tag, a repeat, or a bad value. */
static int set_field(sl_message *m, char tag, const char *v, size_t len, unsigned *seen)
{
    if (tag == 't' || tag == 'e') {
        unsigned bit = tag == 't' ? 1u << 8 : 1u << 9;
        double x;
        if ((*seen & bit) || !parse_num(v, len, &x) || x < 0)
            return SL_EFORMAT;
        *seen |= bit;
        if (tag == 't')
            m->timestamp = x;
        else
            m->expires_at = x;
        return SL_OK;
    }
    for (size_t f = 0; f < NSTR; f++) {
        if (str_fields[f].tag != tag)
            continue;
        if (*seen & (1u << f))
            return SL_EFORMAT;
        *seen |= 1u << f;
        return dup_str(v, len, (char **)((char *)m + str_fields[f].off));
    }
    return SL_EFORMAT;
}

/* Both a timestamp and data are required. */
static int fields_done(unsigned seen)
{
    return (seen & (1u << 8)) && (seen & (1u << 1)) ? SL_OK : SL_EFORMAT;
}

static int set_id(sl_message *m, const char *s, size_t len)
{
    char id[SL__MSGID_LEN + 1];
    uint64_t seq;
    if (len != SL__MSGID_LEN)
        return SL_EFORMAT;
    memcpy(id, s, len);
    id[len] = '\0';
    if (!sl__msgid_parse(id, &seq))
        return SL_EFORMAT;
    return dup_str(id, len, &m->id);
}

/* {id, {tag, value, ...}, attempt, claim_expires_at} */
static int decode_msg(const redisReply *r, sl_message *m)
{
    memset(m, 0, sizeof *m);
    if (!is_arr(r, 4) || !is_str(r->element[0]) || !is_arr(r->element[1], SIZE_MAX) ||
        r->element[1]->elements % 2 != 0)
        return SL_EFORMAT;
    int rc = set_id(m, r->element[0]->str, r->element[0]->len);
    unsigned seen = 0;
    const redisReply *kv = r->element[1];
    for (size_t i = 0; rc == SL_OK && i < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (!is_str(k) || k->len != 1 || !is_str(v))
            rc = SL_EFORMAT;
        else
            rc = set_field(m, k->str[0], v->str, v->len, &seen);
    }
    if (rc == SL_OK)
        rc = fields_done(seen);
    uint64_t attempt;
    double exp;
    if (rc == SL_OK && (!reply_uint(r->element[2], UINT32_MAX, &attempt) ||
                        !reply_num(r->element[3], &exp) || exp < 0))
        rc = SL_EFORMAT;
    if (rc != SL_OK) {
        sl_message_clear(m);
        memset(m, 0, sizeof *m);
        return rc;
    }
    m->attempt = (unsigned)attempt;
    m->claim_expires_at = exp;
    return SL_OK;
}

static int decode_list(const redisReply *r, sl_message_list *out)
{
    memset(out, 0, sizeof *out);
    if (!is_arr(r, SIZE_MAX))
        return SL_EFORMAT;
    if (r->elements == 0)
        return SL_OK;
    if ((out->items = calloc(r->elements, sizeof *out->items)) == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < r->elements; i++) {
        int rc = decode_msg(r->element[i], &out->items[i]);
        if (rc != SL_OK) {
            sl_message_list_free(out);
            return rc;
        }
        out->len++;
    }
    return SL_OK;
}

/* ---- channel settings ------------------------------------------------------------------------ */

static int field_is(const redisReply *k, const char *name)
{
    return strlen(name) == k->len && memcmp(k->str, name, k->len) == 0;
}

int sl__redis_decode_info(const redisReply *r, sl_channel_info *out)
{
    memset(out, 0, sizeof *out);
    /* a fourth element, the claims held, from scripts that send it */
    if (!(is_arr(r, 3) || is_arr(r, 4)) || !is_str(r->element[0]) ||
        !is_arr(r->element[1], SIZE_MAX) || r->element[1]->elements % 2 != 0)
        return SL_EFORMAT;
    const redisReply *idr = r->element[0], *h = r->element[1];
    uint64_t depth, in_flight = 0;
    if (!sl__stored_id_valid(idr->str, idr->len) || !reply_uint(r->element[2], SIZE_MAX, &depth) ||
        (r->elements == 4 && !reply_uint(r->element[3], SIZE_MAX, &in_flight)))
        return SL_EFORMAT;
    int rc = dup_str(idr->str, idr->len, &out->id);
    unsigned seen = 0;
    for (size_t i = 0; rc == SL_OK && i < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];
        uint64_t u;
        double d;
        if (!is_str(k) || !is_str(v)) {
            rc = SL_EFORMAT;
        } else if (field_is(k, "name") || field_is(k, "description") ||
                   field_is(k, "dead_letter")) {
            char **dst = field_is(k, "name")          ? &out->name
                         : field_is(k, "description") ? &out->description
                                                      : &out->dead_letter;
            if (*dst) {
                rc = SL_EFORMAT;
            } else {
                rc = dup_str(v->str, v->len, dst);
                seen |= field_is(k, "name") ? 1 : field_is(k, "description") ? 2 : 4;
            }
        } else if (field_is(k, "kind") || field_is(k, "visibility") || field_is(k, "presence") ||
                   field_is(k, "join_leave")) {
            if (!reply_uint(v, 1, &u))
                rc = SL_EFORMAT;
            else if (field_is(k, "kind"))
                out->kind = (sl_kind)u, seen |= 8;
            else if (field_is(k, "visibility"))
                out->visibility = (sl_visibility)u;
            else if (field_is(k, "presence"))
                out->presence = (int)u;
            else
                out->join_leave = (int)u;
        } else if (field_is(k, "mode")) {
            if (!reply_uint(v, SL_MODE_POLICY, &u))
                rc = SL_EFORMAT;
            else
                out->mode = (sl_mode)u;
        } else if (field_is(k, "max_attempts")) {
            if (!reply_uint(v, UINT32_MAX, &u))
                rc = SL_EFORMAT;
            else
                out->max_attempts = (unsigned)u;
        } else if (field_is(k, "max_messages") || field_is(k, "rcount")) {
            if (!reply_uint(v, (uint64_t)1 << 53, &u))
                rc = SL_EFORMAT;
            else if (field_is(k, "rcount"))
                out->retention_max_count = (size_t)u;
            else
                out->max_messages = (size_t)u;
        } else if (field_is(k, "claim_timeout") || field_is(k, "rage") ||
                   field_is(k, "dedup_window") || field_is(k, "cursor_idle")) {
            if (!reply_num(v, &d) || d < 0)
                rc = SL_EFORMAT;
            else if (field_is(k, "claim_timeout"))
                out->claim_timeout = d;
            else if (field_is(k, "rage"))
                out->retention_max_age = d;
            else if (field_is(k, "dedup_window"))
                out->dedup_window = d;
            else
                out->cursor_idle_timeout = d;
        } else if (field_is(k, "backoff")) {
            /* Steps separated by single spaces. */
            size_t p = 0, n = 0;
            while (rc == SL_OK && p < v->len) {
                size_t q = p;
                while (q < v->len && v->str[q] != ' ')
                    q++;
                if (n == SL_BACKOFF_MAX || !parse_num(v->str + p, q - p, &d) || d < 0)
                    rc = SL_EFORMAT;
                else
                    out->backoff[n++] = d;
                p = q + 1;
            }
            out->nbackoff = n;
        } else if (field_is(k, "epoch")) {
            if (v->len >= sizeof out->epoch || memchr(v->str, '\0', v->len))
                rc = SL_EFORMAT;
            else
                memcpy(out->epoch, v->str, v->len), out->epoch[v->len] = '\0';
        } else if (field_is(k, "seq")) {
            if (!reply_uint(v, (uint64_t)1 << 53, &u))
                rc = SL_EFORMAT;
        }
        /* Other fields: written by a later version; not ours to judge. */
    }
    if (rc == SL_OK && seen != 15)
        rc = SL_EFORMAT;
    if (rc != SL_OK) {
        sl_channel_info_clear(out);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->depth = (size_t)depth;
    out->in_flight = (size_t)in_flight;
    return SL_OK;
}

/* ---- replies --------------------------------------------------------------------------------- */

static void hex(uint64_t seq, char *out)
{
    sl__msgid_format(seq, out);
}

/* A dead-letter outcome: 0, or an error name. */
static int dead_code(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer == 0 ? SL_OK : SL_EFORMAT;
    if (is_str(r))
        return sl__redis_error_code(r->str, r->len);
    return SL_EFORMAT;
}

/* {.., dead list, dead_rc, created info or nil} at index i of r. */
static int decode_dead(sl__eop *op, const redisReply *r, size_t i, int *remote_vis)
{
    int rc = decode_list(r->element[i], &op->dead);
    if (rc != SL_OK)
        return rc;
    const redisReply *drc = r->element[i + 1], *made = r->element[i + 2];
    if (is_str(drc) && drc->len == 6 && memcmp(drc->str, "REMOTE", 6) == 0) {
        uint64_t vis;
        if (!reply_uint(made, 1, &vis))
            return SL_EFORMAT;
        *remote_vis = (int)vis;
        return SL_OK;
    }
    op->dead_rc = dead_code(drc);
    if (made && made->type != REDIS_REPLY_NIL) {
        if ((rc = sl__redis_decode_info(made, &op->info)) != SL_OK)
            return rc;
        op->dead_created = 1;
    }
    return SL_OK;
}

static int decode_append(sl__eop *op, const redisReply *r)
{
    uint64_t seq;
    if (!is_arr(r, 1 + 2 * op->nmsgs) || !reply_uint(r->element[0], (uint64_t)1 << 53, &seq))
        return SL_EFORMAT;
    for (size_t i = 0; i < op->nmsgs; i++) {
        uint64_t s, dup;
        if (!reply_uint(r->element[1 + 2 * i], (uint64_t)1 << 53, &s) || s == 0 ||
            !reply_uint(r->element[2 + 2 * i], 1, &dup))
            return SL_EFORMAT;
        if (op->ids_out)
            hex(s, op->ids_out[i]);
        if (op->dups)
            op->dups[i] = (unsigned char)dup;
    }
    op->seq = seq;
    return SL_OK;
}

static int decode_infos(sl__eop *op, const redisReply *r)
{
    if (!is_arr(r, SIZE_MAX))
        return SL_EFORMAT;
    if (r->elements == 0)
        return SL_OK;
    if (r->elements > SIZE_MAX / sizeof(sl_channel_info) - op->ninfos)
        return SL_ENOMEM;
    sl_channel_info *n = realloc(op->infos, (op->ninfos + r->elements) * sizeof *n);
    if (n == NULL)
        return SL_ENOMEM;
    op->infos = n;
    for (size_t i = 0; i < r->elements; i++) {
        int rc = sl__redis_decode_info(r->element[i], &op->infos[op->ninfos]);
        if (rc != SL_OK)
            return rc;
        op->ninfos++;
    }
    return SL_OK;
}

/* PRESENCE_GET: {client, user, ...}; each entry becomes a message with origin and sender_id. */
static int decode_presence_list(sl__eop *op, const redisReply *r)
{
    sl_message_list *out = &op->list;
    if (!is_arr(r, SIZE_MAX) || r->elements % 2 != 0)
        return SL_EFORMAT;
    if (r->elements == 0)
        return SL_OK;
    if ((out->items = calloc(r->elements / 2, sizeof *out->items)) == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *c = r->element[i], *u = r->element[i + 1];
        if (!is_str(c) || !is_str(u) || c->len == 0 || c->len > SL__REDIS_CLIENT_MAX ||
            u->len > SL_PRINCIPAL_MAX)
            return SL_EFORMAT;
        sl_message *m = &out->items[out->len++];
        int rc = dup_str(c->str, c->len, &m->origin);
        if (rc == SL_OK)
            rc = dup_str(u->str, u->len, &m->sender_id);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

int sl__redis_decode_reply(sl__eop *op, const redisReply *r, int *remote_vis)
{
    uint64_t u;
    *remote_vis = -1;
    if (r == NULL)
        return SL_EUNAVAIL;
    if (r->type == REDIS_REPLY_ERROR)
        return sl__redis_error_code(r->str, r->len);
    switch (op->kind) {
    case SL__EOP_CREATE:
    case SL__EOP_DROP:
    case SL__EOP_SYNC:
        return r->type == REDIS_REPLY_STATUS || is_str(r) ? SL_OK : SL_EFORMAT;
    case SL__EOP_INFO:
        return sl__redis_decode_info(r, &op->info);
    case SL__EOP_LIST:
        return decode_infos(op, r);
    case SL__EOP_APPEND:
        return decode_append(op, r);
    case SL__EOP_CLAIM: {
        /* {more, claimed, dead, dead_rc, created} */
        if (!is_arr(r, 5) || !reply_uint(r->element[0], 1, &u))
            return SL_EFORMAT;
        int rc = decode_list(r->element[1], &op->list);
        if (rc == SL_OK)
            rc = decode_dead(op, r, 2, remote_vis);
        op->list.more = (int)u;
        return rc;
    }
    case SL__EOP_TERMINATE: {
        /* {count, dead, dead_rc, created} */
        if (!is_arr(r, 4) || !reply_uint(r->element[0], SIZE_MAX, &u))
            return SL_EFORMAT;
        op->count = (size_t)u;
        return decode_dead(op, r, 1, remote_vis);
    }
    case SL__EOP_READ: {
        /* {seq, more, messages} */
        uint64_t more;
        if (!is_arr(r, 3) || !reply_uint(r->element[0], (uint64_t)1 << 53, &u) ||
            !reply_uint(r->element[1], 1, &more))
            return SL_EFORMAT;
        op->seq = u;
        int rc = decode_list(r->element[2], &op->list);
        op->list.more = (int)more;
        return rc;
    }
    case SL__EOP_ACK:
    case SL__EOP_NACK:
    case SL__EOP_CLEAR:
    case SL__EOP_EVICT:
    case SL__EOP_REMOVE:
    case SL__EOP_EXTEND:
        if (!reply_uint(r, SIZE_MAX, &u))
            return SL_EFORMAT;
        op->count = (size_t)u;
        return SL_OK;
    case SL__EOP_POSITION:
        if (!reply_uint(r, (uint64_t)1 << 53, &u))
            return SL_EFORMAT;
        op->seq = u;
        return SL_OK;
    case SL__EOP_PRESENCE_SET:
    case SL__EOP_PRESENCE_DEL:
        if (!reply_uint(r, 1, &u))
            return SL_EFORMAT;
        op->count = (size_t)u;
        return SL_OK;
    case SL__EOP_PRESENCE_GET:
        return decode_presence_list(op, r);
    }
    return SL_EFORMAT;
}

/* ---- events ---------------------------------------------------------------------------------- */

/* The next NUL-preceded token at *q: [*tok, *tok + *n). 0 at the end. */
static int next_token(const char **q, const char *end, const char **tok, size_t *n)
{
    if (*q >= end || **q != '\0')
        return 0;
    const char *t = *q + 1, *z = memchr(t, '\0', (size_t)(end - t));
    if (z == NULL)
        z = end;
    *tok = t;
    *n = (size_t)(z - t);
    *q = z;
    return 1;
}

int sl__redis_decode_events(const char *p, size_t len,
                            void (*fn)(void *ud, const sl_message *m, int deleted), void *ud)
{
    if (len == 1 && p[0] == 'd') {
        fn(ud, NULL, 1);
        return SL_OK;
    }
    if (len < 1 || p[0] != 'w')
        return SL_EFORMAT;
    const char *q = p + 1, *end = p + len, *tok;
    size_t n;
    if (!next_token(&q, end, &tok, &n))
        return SL_EFORMAT; /* not even one message */
    for (;;) {
        /* tok is a message's id */
        if (n != 1 + SL__MSGID_LEN || tok[0] != '#')
            return SL_EFORMAT;
        sl_message m;
        memset(&m, 0, sizeof m);
        int rc = set_id(&m, tok + 1, SL__MSGID_LEN);
        unsigned seen = 0;
        int more = 0;
        while (rc == SL_OK && next_token(&q, end, &tok, &n)) {
            if (n > 0 && tok[0] == '#') {
                more = 1; /* the next message */
                break;
            }
            const char *v;
            size_t vn;
            if (n != 1 || !next_token(&q, end, &v, &vn))
                rc = SL_EFORMAT;
            else
                rc = set_field(&m, tok[0], v, vn, &seen);
        }
        if (rc == SL_OK)
            rc = fields_done(seen);
        if (rc == SL_OK)
            fn(ud, &m, 0);
        sl_message_clear(&m);
        if (rc != SL_OK)
            return rc;
        if (!more)
            return SL_OK;
    }
}

int sl__redis_decode_presence(const char *p, size_t len, int *join, char *client, char *user)
{
    if (len < 2 || (p[0] != 'j' && p[0] != 'l') || p[1] != '\0')
        return SL_EFORMAT;
    const char *c = p + 2, *end = p + len;
    const char *z = memchr(c, '\0', (size_t)(end - c));
    if (z == NULL)
        return SL_EFORMAT;
    size_t clen = (size_t)(z - c), ulen = (size_t)(end - z - 1);
    if (clen == 0 || clen > SL__REDIS_CLIENT_MAX || ulen > SL_PRINCIPAL_MAX ||
        memchr(z + 1, '\0', ulen))
        return SL_EFORMAT;
    memcpy(client, c, clen);
    client[clen] = '\0';
    memcpy(user, z + 1, ulen);
    user[ulen] = '\0';
    *join = p[0] == 'j';
    return SL_OK;
}

/* x as text that reads back as the same double. Times are microsecond clock readings: those go
 * out as seconds with at most six decimals, formatted here (printf's exact %.17g path costs about
 * a microsecond a number, and every write carries a few); anything else, or a reading that the
 * short text would not give back exactly, takes %.17g. Below 2^53 microseconds the division is
 * exact up to its one rounding, which is the rounding strtod (and Lua's tonumber) applies to the
 * decimal text: equal doubles here mean equal doubles there. */
int sl__redis_fmt_num(char *buf, size_t cap, double x)
{
    if (x >= 0 && x < 9e9) {
        long long us = llround(x * 1e6);
        if ((double)us / 1e6 == x) {
            long long frac = us % 1000000;
            int len = (int)(sl__put_uint(buf, (uint64_t)(us / 1000000)) - buf);
            if (frac) {
                buf[len++] = '.';
                int digits = 6;
                while (frac % 10 == 0)
                    frac /= 10, digits--;
                for (int i = digits - 1; i >= 0; i--, frac /= 10)
                    buf[len + i] = (char)('0' + frac % 10);
                len += digits;
            }
            buf[len] = '\0';
            return len;
        }
    }
    return snprintf(buf, cap, "%.17g", x);
}
