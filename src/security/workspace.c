/* Workspaces (tenants): the decision's workspace step, the operator's crossing, and each
 * workspace's limits. Isolation itself comes from the names (core/wsid.h): the channel API, the
 * ACL and the broker qualify what a caller names with the caller's workspace, so a caller cannot
 * even name another workspace's channel; this step refuses what slipped through anyway (an
 * internal id of another workspace handed in by a transport), so the rule holds in one place.
 * Limits are counted on this node only (docs/POLICY.md says what several nodes do). */
#include "security/workspace.h"

#include "api/ctx.h"
#include "core/map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl__ws_decide(const sl_identity *who, const sl_op_info *info, const char **resource, char *qid)
{
    qid[0] = '\0';
    const char *ws = who->workspace;
    if (ws[0] && !sl_workspace_valid(ws, strlen(ws)))
        return SL_EFORBIDDEN; /* an identity source let a bad name through: fail closed */
    const char *r = *resource;
    if (r == NULL)
        return SL_OK;
    if (info->resource == SL_RES_CHANNEL) {
        if (strchr(r, SL__WS_SEP)) {
            if (!sl__ws_owns(ws, r))
                return SL_EFORBIDDEN;
            *resource = sl__ws_name(r);
        }
        return sl__ws_qualify(ws, *resource, qid, SL__QID_SIZE) == SL_OK ? SL_OK : SL_EFORBIDDEN;
    }
    /* The revocation store is keyed by principal and token id alone, across workspaces: inside
     * a workspace a caller may revoke its own credentials only (an admin of `acme` revoking
     * "alice" would end alice's tokens in every workspace). */
    if (info->op == SL_OP_TOKEN_REVOKE && ws[0] && strcmp(r, who->principal) != 0)
        return SL_EFORBIDDEN;
    /* Principals: a caller names them in its own workspace only. */
    return strchr(r, SL__WS_SEP) ? SL_EFORBIDDEN : SL_OK;
}

const char *sl__ws_principal(const sl_identity *who, char *buf)
{
    if (who->workspace[0] == '\0' || who->crossed ||
        sl__ws_qualify(who->workspace, who->principal, buf, SL__QPRINCIPAL_SIZE) != SL_OK)
        return who->principal;
    return buf;
}

/* ---- operators and limits ------------------------------------------------------------------- */

typedef struct wstate {
    sl__ws_limits lim;
    int has_lim; /* lim was configured for this name (else the "*" entry applies) */
    size_t connections;
    double tokens, last; /* the commands-per-second bucket */
    size_t stored;       /* messages at the last count, plus those written since */
    size_t counted;      /* the count in flight */
} wstate;

struct sl__workspaces {
    sl__map *by_name; /* workspace -> wstate* (configured ones, and those seen since) */
    sl__ws_limits any;
    int has_any;
    char **operators;
    size_t noperators;
    double counted_at; /* the last count of stored messages (0: none yet) */
    int counting;      /* a count is in flight */
};

int sl__workspaces_new(sl__workspaces **out)
{
    sl__workspaces *w = calloc(1, sizeof *w);
    if (w == NULL || sl__map_new(&w->by_name) != SL_OK) {
        free(w);
        return SL_ENOMEM;
    }
    *out = w;
    return SL_OK;
}

void sl__workspaces_free(sl__workspaces *w)
{
    if (w == NULL)
        return;
    sl__map_free(w->by_name, free);
    for (size_t i = 0; i < w->noperators; i++)
        free(w->operators[i]);
    free(w->operators);
    free(w);
}

/* The state of ws, made on first use (NULL: out of memory, or the default workspace). */
static wstate *state_of(sl__workspaces *w, const char *ws)
{
    if (w == NULL || ws == NULL || ws[0] == '\0')
        return NULL;
    wstate *s = sl__map_get(w->by_name, ws);
    if (s == NULL && (s = calloc(1, sizeof *s)) != NULL) {
        s->tokens = -1; /* full at first use */
        if (sl__map_put(w->by_name, ws, s, NULL) != SL_OK) {
            free(s);
            return NULL;
        }
    }
    return s;
}

const sl__ws_limits *sl__ws_limits_of(const sl__workspaces *w, const char *ws)
{
    static const sl__ws_limits none = {0};
    if (w == NULL || ws == NULL || ws[0] == '\0')
        return &none;
    const wstate *s = sl__map_get(w->by_name, ws);
    return s && s->has_lim ? &s->lim : w->has_any ? &w->any : &none;
}

/* "key=N" into lim. */
static int parse_limit(sl__ws_limits *lim, const char *kv, size_t len, sl_status *st)
{
    const char *eq = memchr(kv, '=', len);
    if (eq == NULL)
        return sl_status_set(st, SL_EINVAL, "workspace_limits: expected key=N, got '%.*s'",
                             (int)len, kv);
    size_t kl = (size_t)(eq - kv);
    char num[32];
    size_t nl = len - kl - 1;
    if (nl == 0 || nl >= sizeof num)
        return sl_status_set(st, SL_EINVAL, "workspace_limits: bad number in '%.*s'", (int)len, kv);
    memcpy(num, eq + 1, nl);
    num[nl] = '\0';
    char *end = NULL;
    double v = strtod(num, &end);
    if (*end != '\0' || !(v >= 0 && v <= 1e12) || num[0] == '-' || num[0] == '+')
        return sl_status_set(st, SL_EINVAL, "workspace_limits: bad number in '%.*s'", (int)len, kv);
    if (kl == 8 && memcmp(kv, "channels", 8) == 0)
        lim->channels = (size_t)v;
    else if (kl == 11 && memcmp(kv, "connections", 11) == 0)
        lim->connections = (size_t)v;
    else if (kl == 4 && memcmp(kv, "rate", 4) == 0)
        lim->rate = v;
    else if (kl == 8 && memcmp(kv, "messages", 8) == 0)
        lim->messages = (size_t)v;
    else
        return sl_status_set(
            st, SL_EINVAL,
            "workspace_limits: unknown limit '%.*s' (channels, connections, rate, messages)",
            (int)kl, kv);
    return SL_OK;
}

/* One "NAME:k=v,k=v" entry. */
static int parse_entry(sl__workspaces *w, const char *e, size_t len, sl_status *st)
{
    const char *colon = memchr(e, ':', len);
    if (colon == NULL)
        return sl_status_set(st, SL_EINVAL, "workspace_limits: expected NAME:key=N,...");
    size_t nl = (size_t)(colon - e);
    char name[SL_WORKSPACE_MAX + 1];
    int any = nl == 1 && e[0] == '*';
    if (!any && !sl_workspace_valid(e, nl))
        return sl_status_set(st, SL_EINVAL, "workspace_limits: invalid workspace name");
    memcpy(name, e, nl);
    name[nl] = '\0';
    sl__ws_limits lim = {0};
    const char *p = colon + 1, *end = e + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *q = comma ? comma : end;
        int rc = q == p ? SL_OK : parse_limit(&lim, p, (size_t)(q - p), st);
        if (rc != SL_OK)
            return rc;
        p = comma ? comma + 1 : end;
    }
    if (any) {
        w->any = lim;
        w->has_any = 1;
        return SL_OK;
    }
    wstate *s = state_of(w, name);
    if (s == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    s->lim = lim;
    s->has_lim = 1;
    return SL_OK;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == ';';
}

int sl__workspaces_parse_limits(sl__workspaces *w, const char *spec, sl_status *st)
{
    const char *p = spec;
    while (*p) {
        while (*p && is_blank(*p))
            p++;
        const char *s = p;
        while (*p && !is_blank(*p))
            p++;
        if (p > s) {
            int rc = parse_entry(w, s, (size_t)(p - s), st);
            if (rc != SL_OK)
                return rc;
        }
    }
    return SL_OK;
}

int sl__workspaces_parse_operators(sl__workspaces *w, const char *spec, sl_status *st)
{
    const char *p = spec;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *s = p;
        while (*p && *p != ' ' && *p != ',' && *p != '\t')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0)
            continue;
        if (!sl_principal_valid(s, n))
            return sl_status_set(st, SL_EINVAL, "workspace_operators: invalid principal");
        char **v = realloc(w->operators, (w->noperators + 1) * sizeof *v);
        if (v == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        w->operators = v;
        if ((v[w->noperators] = strndup(s, n)) == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        w->noperators++;
    }
    return SL_OK;
}

static int is_operator(const sl__workspaces *w, const sl_identity *who)
{
    /* An operator stands outside every workspace, and anonymous callers are nobody. */
    if (w == NULL || who->workspace[0] != '\0' || who->crossed || who->source == SL_SOURCE_NONE)
        return 0;
    for (size_t i = 0; i < w->noperators; i++)
        if (strcmp(w->operators[i], who->principal) == 0)
            return 1;
    return 0;
}

int sl__ws_cross(const sl__workspaces *w, sl_identity *who, const char *target, sl_status *st)
{
    if (!is_operator(w, who))
        return sl_status_set(st, SL_EFORBIDDEN,
                             "'%s' is not an operator and cannot address another workspace.",
                             who->principal);
    if (target == NULL || !sl_workspace_valid(target, strlen(target)))
        return sl_status_set(st, SL_EINVAL, "invalid workspace name");
    snprintf(who->workspace, sizeof who->workspace, "%s", target);
    who->crossed = 1;
    return SL_OK;
}

void sl__ws_cross_audit(sl_ctx *ctx, const sl_identity *who, int rc)
{
    sl__audit(ctx, NULL, rc == SL_OK ? "workspace.cross" : "workspace.cross_denied", "principal",
              who->principal, "source", sl_source_name(who->source), "workspace",
              rc == SL_OK && who->workspace[0] ? who->workspace : NULL, NULL);
}

int sl__ws_charge(sl__workspaces *w, const char *ws, double now, sl_status *st)
{
    if (w == NULL || ws == NULL || ws[0] == '\0')
        return SL_OK;
    const sl__ws_limits *lim = sl__ws_limits_of(w, ws);
    if (lim->rate <= 0)
        return SL_OK;
    wstate *s = state_of(w, ws);
    if (s == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    /* A bucket of `rate` tokens refilled at `rate` per second: bursts up to one second's worth. */
    if (s->tokens < 0 || now < s->last) {
        s->tokens = lim->rate;
    } else {
        s->tokens += (now - s->last) * lim->rate;
        if (s->tokens > lim->rate)
            s->tokens = lim->rate;
    }
    s->last = now;
    if (s->tokens < 1)
        return sl_status_set(st, SL_EQUOTA,
                             "this workspace is over its limit of %.0f commands per second; "
                             "retry later",
                             lim->rate);
    s->tokens -= 1;
    return SL_OK;
}

int sl__ws_connect(sl__workspaces *w, const char *ws, sl_status *st)
{
    if (w == NULL || ws == NULL || ws[0] == '\0')
        return SL_OK;
    const sl__ws_limits *lim = sl__ws_limits_of(w, ws);
    if (lim->connections == 0)
        return SL_OK; /* nothing to count (limits do not change while running) */
    wstate *s = state_of(w, ws);
    if (s == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    if (s->connections >= lim->connections)
        return sl_status_set(st, SL_EQUOTA, "this workspace is at its limit of %zu connections",
                             lim->connections);
    s->connections++;
    return SL_OK;
}

void sl__ws_disconnect(sl__workspaces *w, const char *ws)
{
    wstate *s = w && ws && ws[0] ? sl__map_get(w->by_name, ws) : NULL;
    if (s && s->connections)
        s->connections--;
}

int sl__ws_channel_room(const sl__workspaces *w, const char *ws, size_t have, sl_status *st)
{
    const sl__ws_limits *lim = sl__ws_limits_of(w, ws);
    if (lim->channels && have >= lim->channels)
        return sl_status_set(st, SL_EQUOTA, "this workspace is at its limit of %zu channels",
                             lim->channels);
    return SL_OK;
}

int sl__ws_message_room(sl__workspaces *w, const char *ws, size_t n, double now, int *recount,
                        sl_status *st)
{
    *recount = 0;
    if (w == NULL || ws == NULL || ws[0] == '\0')
        return SL_OK;
    const sl__ws_limits *lim = sl__ws_limits_of(w, ws);
    if (lim->messages == 0)
        return SL_OK;
    if (!w->counting && (w->counted_at == 0 || now - w->counted_at >= 1.0 || now < w->counted_at)) {
        *recount = 1;
        return SL_OK;
    }
    const wstate *s = sl__map_get(w->by_name, ws);
    size_t have = s ? s->stored : 0;
    if (n > lim->messages || have > lim->messages - n)
        return sl_status_set(st, SL_EQUOTA,
                             "this workspace is at its limit of %zu stored messages; retry once "
                             "messages are consumed",
                             lim->messages);
    return SL_OK;
}

void sl__ws_stored_add(sl__workspaces *w, const char *ws, size_t n)
{
    if (sl__ws_limits_of(w, ws)->messages == 0)
        return; /* nothing to keep for a workspace without the limit */
    wstate *s = state_of(w, ws);
    if (s)
        s->stored += n;
}

static int zero_one(void *ud, const char *key, void *value)
{
    (void)ud;
    (void)key;
    ((wstate *)value)->counted = 0;
    return 0;
}

static int take_count(void *ud, const char *key, void *value)
{
    (void)ud;
    (void)key;
    wstate *s = value;
    s->stored = s->counted;
    return 0;
}

void sl__ws_recount_begin(sl__workspaces *w)
{
    sl__map_each(w->by_name, zero_one, NULL);
    w->counting = 1;
}

void sl__ws_recount_add(sl__workspaces *w, const char *id, size_t depth)
{
    const char *name = sl__ws_name(id);
    char ws[SL_WORKSPACE_MAX + 1];
    size_t wl = name == id ? 0 : (size_t)(name - id - 1);
    if (wl == 0 || wl > SL_WORKSPACE_MAX)
        return; /* the default workspace has no limits */
    memcpy(ws, id, wl);
    ws[wl] = '\0';
    if (sl__ws_limits_of(w, ws)->messages == 0)
        return;
    wstate *s = state_of(w, ws);
    if (s)
        s->counted += depth;
}

void sl__ws_recount_end(sl__workspaces *w, int ok, double now)
{
    w->counting = 0;
    if (!ok) /* the last count stands; the next write asks again */
        return;
    sl__map_each(w->by_name, take_count, NULL);
    w->counted_at = now > 0 ? now : 1e-9;
}
