/* The Centrifugo JSON client protocol codec (see centrifuge.h): the code tables and the command
 * parser; the encoder of replies and pushes is in centrifuge_encode.c. Parsing uses jansson with
 * duplicate keys rejected for structure and types, plus a small scanner over the already validated
 * text that finds the raw bytes of each command's "data" value, because stored messages must keep
 * the exact text the client sent (a jansson round trip would rewrite reals and key order). A
 * publish line is first offered to the fast path in centrifuge_fast.c, which takes the common
 * shape without a tree and hands everything else here. */
#include "net/centrifuge.h"

#include "core/jsonspan.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- codes ---- */

const char *sl__cf_code_message(int code)
{
    switch (code) {
#define SL__CF_CODE_MSG(sym, c, msg, temp)                                                         \
    case c:                                                                                        \
        return msg;
        SL__CF_CODE_MAP(SL__CF_CODE_MSG)
#undef SL__CF_CODE_MSG
    }
    return "unknown";
}

int sl__cf_code_temporary(int code)
{
    switch (code) {
#define SL__CF_CODE_TEMP(sym, c, msg, temp)                                                        \
    case c:                                                                                        \
        return temp;
        SL__CF_CODE_MAP(SL__CF_CODE_TEMP)
#undef SL__CF_CODE_TEMP
    }
    return 0;
}

int sl__cf_error_from_errno(int sl_code)
{
    switch (sl_code) {
    case SL_OK:
        return 0;
    case SL_EINVAL:
    case SL_EBADID:
    case SL_EJSON:
    case SL_EKIND:
    case SL_ETOOBIG:
    case SL_EHEADERS:
        return SL__CF_ERR_BAD_REQUEST;
    case SL_ENOENT:
        return SL__CF_ERR_UNKNOWN_CHANNEL;
    case SL_EEXIST:
        return SL__CF_ERR_ALREADY_SUBSCRIBED;
    case SL_EFULL:
    case SL_ELIMIT:
    case SL_EQUOTA: /* a workspace limit */
        return SL__CF_ERR_LIMIT_EXCEEDED;
    case SL_EUNAUTH:
    case SL_ETOKEN:
        return SL__CF_ERR_UNAUTHORIZED;
    case SL_EEXPIRED:
        return SL__CF_ERR_TOKEN_EXPIRED;
    case SL_EFORBIDDEN:
        return SL__CF_ERR_PERMISSION_DENIED;
    case SL_EMETHOD:
        return SL__CF_ERR_METHOD_NOT_FOUND;
    default: /* ENOMEM, EIO, EUNAVAIL, ETIMEOUT, ECONFIG, EWEAKKEY, EINTERNAL, unknown */
        return SL__CF_ERR_INTERNAL;
    }
}

static const char *const method_names[SL__CF_METHOD_COUNT] = {
    [SL__CF_PING] = "",
    [SL__CF_CONNECT] = "connect",
    [SL__CF_SUBSCRIBE] = "subscribe",
    [SL__CF_UNSUBSCRIBE] = "unsubscribe",
    [SL__CF_PUBLISH] = "publish",
    [SL__CF_REFRESH] = "refresh",
    [SL__CF_SUB_REFRESH] = "sub_refresh",
    [SL__CF_HISTORY] = "history",
    [SL__CF_PRESENCE] = "presence",
    [SL__CF_PRESENCE_STATS] = "presence_stats",
    [SL__CF_RPC] = "rpc",
    [SL__CF_SEND] = "send",
};

const char *sl__cf_method_name(sl__cf_method m)
{
    return (unsigned)m < SL__CF_METHOD_COUNT ? method_names[m] : "";
}

/* ---- field extraction ---- */

/* A per-command problem: the message is static and says which field, never echoes input. */
typedef struct perr {
    int code;
    const char *msg;
} perr;

static int bad(perr *pe, int code, const char *msg)
{
    if (pe->code == 0) {
        pe->code = code;
        pe->msg = msg;
    }
    return -1;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* 0 ok (absent leaves *out NULL), -1 on a per-command error, -2 out of memory. */
static int get_str(json_t *obj, const char *key, size_t max, int required, char **out, perr *pe,
                   const char *msg)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return required ? bad(pe, SL__CF_ERR_BAD_REQUEST, msg) : 0;
    if (!json_is_string(v) || json_string_length(v) > max)
        return bad(pe, SL__CF_ERR_BAD_REQUEST, msg);
    if (required && json_string_length(v) == 0)
        return bad(pe, SL__CF_ERR_BAD_REQUEST, msg);
    *out = dup_n(json_string_value(v), json_string_length(v));
    return *out ? 0 : -2;
}

static int get_bool(json_t *obj, const char *key, bool *out, perr *pe, const char *msg)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return bad(pe, SL__CF_ERR_BAD_REQUEST, msg);
    *out = json_is_true(v);
    return 0;
}

static int get_int(json_t *obj, const char *key, json_int_t lo, json_int_t hi, json_int_t *out,
                   bool *present, perr *pe, const char *msg)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(pe, SL__CF_ERR_BAD_REQUEST, msg);
    *out = json_integer_value(v);
    if (present)
        *present = true;
    return 0;
}

/* The raw "data" of the command object whose own span is [os, oe). */
static int get_data(json_t *obj, const char *os, const char *oe, int required, sl__cf_command *c,
                    perr *pe)
{
    json_t *v = json_object_get(obj, "data");
    if (v == NULL || json_is_null(v))
        return required ? bad(pe, SL__CF_ERR_BAD_REQUEST, "data required") : 0;
    const char *vs, *ve;
    if (!sl__json_member(os, oe, "data", &vs, &ve))
        return bad(pe, SL__CF_ERR_BAD_REQUEST, "data unreadable"); /* cannot happen */
    c->data = dup_n(vs, (size_t)(ve - vs));
    c->data_len = (size_t)(ve - vs);
    return c->data ? 0 : -2;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int r_ = (x);                                                                              \
        if (r_ == -2)                                                                              \
            return -2;                                                                             \
        if (r_ < 0)                                                                                \
            return -1;                                                                             \
    } while (0)

static int parse_connect_subs(json_t *subs, sl__cf_command *c, perr *pe)
{
    if (!json_is_object(subs))
        return bad(pe, SL__CF_ERR_BAD_REQUEST, "subs must be an object");
    size_t n = json_object_size(subs);
    if (n > SL__CF_MAX_CONNECT_SUBS)
        return bad(pe, SL__CF_ERR_LIMIT_EXCEEDED, "too many subs");
    if (n == 0)
        return 0;
    c->subs = calloc(n, sizeof *c->subs);
    if (c->subs == NULL)
        return -2;
    const char *ch;
    json_t *v;
    json_object_foreach(subs, ch, v)
    {
        sl__cf_connect_sub *s = &c->subs[c->nsubs];
        size_t clen = strlen(ch); /* jansson keys cannot hold NUL unless JSON_ALLOW_NUL */
        if (clen == 0 || clen > SL__CF_MAX_CHANNEL || !json_is_object(v))
            return bad(pe, SL__CF_ERR_BAD_REQUEST, "bad subs entry");
        s->channel = dup_n(ch, clen);
        if (s->channel == NULL)
            return -2;
        c->nsubs++;
        json_int_t off = 0;
        TRY(get_bool(v, "recover", &s->recover, pe, "subs recover must be a boolean"));
        TRY(get_int(v, "offset", 0, INT64_MAX, &off, NULL, pe, "subs offset must be an integer"));
        s->offset = (uint64_t)off;
        TRY(get_str(v, "epoch", SL__CF_MAX_SHORT, 0, &s->epoch, pe, "subs epoch must be a string"));
    }
    return 0;
}

/* Fills c from the method object o (raw span [os, oe)). */
static int parse_body(json_t *o, const char *os, const char *oe, sl__cf_command *c, perr *pe)
{
    json_int_t v = 0;
    bool have = false;
    switch (c->method) {
    case SL__CF_PING:
    case SL__CF_METHOD_COUNT:
        return 0;
    case SL__CF_CONNECT:
        TRY(get_str(o, "token", SL__CF_MAX_TOKEN, 0, &c->token, pe, "token must be a string"));
        TRY(get_str(o, "name", SL__CF_MAX_SHORT, 0, &c->name, pe, "name must be a string"));
        TRY(get_str(o, "version", SL__CF_MAX_SHORT, 0, &c->version, pe,
                    "version must be a string"));
        TRY(get_data(o, os, oe, 0, c, pe));
        if (json_object_get(o, "subs") != NULL && !json_is_null(json_object_get(o, "subs")))
            TRY(parse_connect_subs(json_object_get(o, "subs"), c, pe));
        return 0;
    case SL__CF_SUBSCRIBE:
        TRY(get_str(o, "channel", SL__CF_MAX_CHANNEL, 1, &c->channel, pe, "channel required"));
        TRY(get_str(o, "token", SL__CF_MAX_TOKEN, 0, &c->token, pe, "token must be a string"));
        TRY(get_bool(o, "recover", &c->recover, pe, "recover must be a boolean"));
        TRY(get_bool(o, "positioned", &c->positioned, pe, "positioned must be a boolean"));
        TRY(get_bool(o, "recoverable", &c->recoverable, pe, "recoverable must be a boolean"));
        TRY(get_bool(o, "join_leave", &c->join_leave, pe, "join_leave must be a boolean"));
        TRY(get_int(o, "offset", 0, INT64_MAX, &v, NULL, pe, "offset must be an integer"));
        c->offset = (uint64_t)v;
        v = 0;
        TRY(get_int(o, "flag", 0, INT32_MAX, &v, NULL, pe, "flag must be an integer"));
        c->flag = (uint32_t)v;
        TRY(get_str(o, "epoch", SL__CF_MAX_SHORT, 0, &c->epoch, pe, "epoch must be a string"));
        TRY(get_data(o, os, oe, 0, c, pe));
        return 0;
    case SL__CF_UNSUBSCRIBE:
    case SL__CF_PRESENCE:
    case SL__CF_PRESENCE_STATS:
        TRY(get_str(o, "channel", SL__CF_MAX_CHANNEL, 1, &c->channel, pe, "channel required"));
        return 0;
    case SL__CF_PUBLISH:
        TRY(get_str(o, "channel", SL__CF_MAX_CHANNEL, 1, &c->channel, pe, "channel required"));
        TRY(get_data(o, os, oe, 1, c, pe));
        return 0;
    case SL__CF_REFRESH:
        TRY(get_str(o, "token", SL__CF_MAX_TOKEN, 1, &c->token, pe, "token required"));
        return 0;
    case SL__CF_SUB_REFRESH:
        TRY(get_str(o, "channel", SL__CF_MAX_CHANNEL, 1, &c->channel, pe, "channel required"));
        TRY(get_str(o, "token", SL__CF_MAX_TOKEN, 1, &c->token, pe, "token required"));
        return 0;
    case SL__CF_HISTORY: {
        TRY(get_str(o, "channel", SL__CF_MAX_CHANNEL, 1, &c->channel, pe, "channel required"));
        TRY(get_int(o, "limit", -1, INT32_MAX, &v, &c->has_limit, pe, "limit must be an integer"));
        c->limit = v;
        TRY(get_bool(o, "reverse", &c->reverse, pe, "reverse must be a boolean"));
        json_t *since = json_object_get(o, "since");
        if (since != NULL && !json_is_null(since)) {
            if (!json_is_object(since))
                return bad(pe, SL__CF_ERR_BAD_REQUEST, "since must be an object");
            v = 0;
            TRY(get_int(since, "offset", 0, INT64_MAX, &v, &have, pe,
                        "since offset must be an integer"));
            c->has_since = true;
            c->since_offset = (uint64_t)v;
            TRY(get_str(since, "epoch", SL__CF_MAX_SHORT, 0, &c->since_epoch, pe,
                        "since epoch must be a string"));
        }
        return 0;
    }
    case SL__CF_RPC:
        TRY(get_str(o, "method", SL__CF_MAX_SHORT, 0, &c->rpc_method, pe,
                    "method must be a string"));
        TRY(get_data(o, os, oe, 0, c, pe));
        return 0;
    case SL__CF_SEND:
        TRY(get_data(o, os, oe, 1, c, pe));
        return 0;
    }
    return 0;
}

int sl__cf_parse_line(const char *line, size_t len, sl__cf_command *c, size_t lineno, sl_status *st)
{
    json_error_t jerr;
    memset(c, 0, sizeof *c);
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        sl_status_set(st, SL_EJSON, "command %zu: not a JSON object", lineno);
        return 1;
    }
    int rc = 0;
    json_t *id = json_object_get(root, "id");
    if (id != NULL && !json_is_null(id)) {
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) > (json_int_t)UINT32_MAX) {
            sl_status_set(st, SL_EJSON, "command %zu: id must be an integer in 0..2^32-1", lineno);
            rc = 1;
            goto out;
        }
        c->id = (uint32_t)json_integer_value(id);
    }

    perr pe = {0, NULL};
    const char *key;
    json_t *v, *body = NULL;
    int found = 0;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "id") == 0)
            continue;
        int m = -1;
        for (int i = 1; i < SL__CF_METHOD_COUNT; i++)
            if (strcmp(key, method_names[i]) == 0)
                m = i;
        if (m < 0) {
            bad(&pe, SL__CF_ERR_METHOD_NOT_FOUND, "unknown command");
            continue;
        }
        if (found++) {
            bad(&pe, SL__CF_ERR_BAD_REQUEST, "more than one command in an object");
            continue;
        }
        c->method = (sl__cf_method)m;
        body = v;
    }
    if (found == 0 && pe.code == 0 && c->id != 0)
        bad(&pe, SL__CF_ERR_BAD_REQUEST, "command without method");
    if (body != NULL && pe.code == 0) {
        if (!json_is_object(body)) {
            bad(&pe, SL__CF_ERR_BAD_REQUEST, "command body must be an object");
        } else {
            const char *os = NULL, *oe = NULL;
            if (!sl__json_member(line, line + len, method_names[c->method], &os, &oe)) {
                /* Only an escaped key spelling differently would miss; jansson found it. */
                os = oe = line;
            }
            int r = parse_body(body, os, oe, c, &pe);
            if (r == -2) {
                rc = SL_ENOMEM;
                goto out;
            }
        }
    }
    /* Without an id nothing can be answered: a malformed command is a frame error, and so is any
     * command that expects a reply. */
    if (c->id == 0 && (pe.code != 0 || (c->method != SL__CF_PING && c->method != SL__CF_SEND))) {
        sl_status_set(st, SL_EJSON, "command %zu: %s", lineno,
                      pe.code ? pe.msg : "command needs an id");
        rc = 1;
        goto out;
    }
    c->error = pe.code;
    c->error_message = pe.msg;
out:
    json_decref(root);
    if (rc != 0)
        sl__cf_command_clear(c);
    return rc;
}

int sl__cf_parse_frame(const char *text, size_t len, sl__cf_command *cmds, size_t max, size_t *n,
                       sl_status *st)
{
    if (n)
        *n = 0;
    if ((text == NULL && len > 0) || cmds == NULL || n == NULL)
        return sl_status_set(st, SL_EINVAL, "invalid argument");
    if (len > 0 && memchr(text, '\0', len) != NULL)
        return sl_status_set(st, SL_EJSON, "NUL byte in frame");
    if (max > SL__CF_MAX_COMMANDS)
        max = SL__CF_MAX_COMMANDS;
    const char *p = text, *e = text + len;
    size_t count = 0, lineno = 0;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        const char *le = nl ? nl : e;
        const char *s = sl__json_skip_ws(p, le), *t = le;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        p = nl ? nl + 1 : e;
        lineno++;
        if (s == t)
            continue;
        if (count >= max) {
            sl__cf_commands_clear(cmds, count);
            return sl_status_set(st, SL_ELIMIT, "more than %zu commands in a frame", max);
        }
        int r = sl__cf_parse_publish_fast(s, (size_t)(t - s), &cmds[count]);
        if (r == 0)
            r = sl__cf_parse_line(s, (size_t)(t - s), &cmds[count], lineno, st);
        else
            r = r < 0 ? SL_ENOMEM : 0;
        if (r != 0) {
            sl__cf_commands_clear(cmds, count);
            if (r == SL_ENOMEM)
                return sl_status_set(st, SL_ENOMEM, "out of memory");
            return SL_EJSON;
        }
        count++;
    }
    *n = count;
    return SL_OK;
}

void sl__cf_command_clear(sl__cf_command *c)
{
    if (c == NULL)
        return;
    free(c->channel);
    free(c->token);
    free(c->data);
    free(c->name);
    free(c->version);
    free(c->rpc_method);
    free(c->epoch);
    free(c->since_epoch);
    for (size_t i = 0; i < c->nsubs; i++) {
        free(c->subs[i].channel);
        free(c->subs[i].epoch);
    }
    free(c->subs);
    memset(c, 0, sizeof *c);
}

void sl__cf_commands_clear(sl__cf_command *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sl__cf_command_clear(&cmds[i]);
}
