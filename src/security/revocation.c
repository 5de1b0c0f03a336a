/* The revocation store interface (argument validation, defaults, dispatch through the ops table,
 * the one watcher) and the memory store: two maps, token id -> record and user -> cut-off, whose
 * records carry their own expiry so that lookups ignore stale ones and pruning can drop them.
 * Pruning runs from an unreferenced loop timer and, so that a store without a loop stays bounded
 * too, from writes once the maps have doubled since the last prune. Every memory-store callback
 * is synchronous, the watcher's included: it runs after the write and before the caller's cb, so
 * that the cb, which may free the store, is the last thing a write does. */
#include <sluice/revocation.h>

#include "core/map.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the interface -------------------------------------------------------------------------- */

int sl_revocation_id_valid(const char *token_id)
{
    if (token_id == NULL || *token_id == '\0')
        return 0;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)token_id; *p; p++, n++)
        if (n >= SL_TOKEN_ID_MAX || *p <= 0x20 || *p >= 0x7f)
            return 0;
    return 1;
}

static int user_valid(const char *user)
{
    return user != NULL && sl_principal_valid(user, strnlen(user, SL_PRINCIPAL_MAX + 1));
}

/* Reasons end up in audit records and error bodies: bounded and free of control bytes, so a
 * stored reason can never forge a log line. */
static int reason_valid(const char *r)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)r; *p; p++, n++)
        if (n >= SL_REVOCATION_REASON_MAX || *p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

int sl_revocation_store_init(sl_revocation_store *s, const sl_revocation_ops *ops, double max_ttl,
                             sl_clock_fn clock, void *clock_ud)
{
    if (!isfinite(max_ttl))
        return SL_EINVAL;
    memset(s, 0, sizeof *s);
    s->ops = ops;
    s->max_ttl = max_ttl > 0 ? max_ttl : SL_REVOCATION_DEFAULT_MAX_TTL;
    s->clock = clock ? clock : sl_wallclock;
    s->clock_ud = clock ? clock_ud : NULL;
    return SL_OK;
}

double sl_revocation_now(const sl_revocation_store *s)
{
    return s->clock(s->clock_ud);
}

double sl_revocation_token_ttl(const sl_revocation_store *s, double token_expires_at, double now)
{
    double ttl = token_expires_at > 0 ? token_expires_at - now : s->max_ttl;
    /* At least a second, so that a token revoked in its last moments (or with a clock slightly
     * behind the issuer's) still has a record while any server might accept it. */
    if (!(ttl >= 1))
        ttl = 1;
    return ttl < s->max_ttl ? ttl : s->max_ttl;
}

void sl_revocation_logf(const sl_revocation_store *s, const char *fmt, ...)
{
    if (s->log == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->log(s->log_ud, line);
}

void sl_revocation_set_log(sl_revocation_store *s, sl_revocation_log_fn fn, void *ud)
{
    if (s == NULL)
        return;
    s->log = fn;
    s->log_ud = ud;
}

void sl_revocation_set_watch(sl_revocation_store *s, sl_revocation_watch_fn fn, void *ud)
{
    if (s == NULL || s->closing)
        return;
    s->watch = fn;
    s->watch_ud = fn ? ud : NULL;
    if (s->ops->watch)
        s->ops->watch(s);
}

void sl_revocation_notify(sl_revocation_store *s, const sl_revocation_event *ev)
{
    if (s->watch != NULL && !s->closing)
        s->watch(s->watch_ud, ev);
}

static void answer(sl_revocation_cb cb, void *ud, int status, const char *reason)
{
    if (cb)
        cb(ud, status, reason);
}

void sl_revocation_check(sl_revocation_store *s, const char *token_id, const char *user,
                         double issued_at, sl_revocation_cb cb, void *ud)
{
    if (cb == NULL)
        return;
    if (s == NULL || s->closing) {
        cb(ud, SL_EUNAVAIL, "revocation store closed");
        return;
    }
    if (token_id != NULL && *token_id == '\0')
        token_id = NULL;
    /* An id that could not have been revoked is still refused: a token the store cannot look up
     * must not pass unchecked. */
    if ((token_id && !sl_revocation_id_valid(token_id)) || !user_valid(user) || isnan(issued_at)) {
        cb(ud, SL_EINVAL, NULL);
        return;
    }
    s->ops->check(s, token_id, user, issued_at, cb, ud);
}

void sl_revocation_check_identity(sl_revocation_store *s, const sl_identity *who,
                                  sl_revocation_cb cb, void *ud)
{
    if (who == NULL) {
        if (cb)
            cb(ud, SL_EINVAL, NULL);
        return;
    }
    sl_revocation_check(s, who->token_id, who->principal, who->issued_at, cb, ud);
}

void sl_revocation_revoke(sl_revocation_store *s, const char *token_id, const char *user,
                          const char *reason, double token_expires_at, sl_revocation_cb cb,
                          void *ud)
{
    if (s == NULL || s->closing) {
        answer(cb, ud, SL_EUNAVAIL, "revocation store closed");
        return;
    }
    if (reason == NULL)
        reason = "revoked";
    if (!sl_revocation_id_valid(token_id) || (user != NULL && !user_valid(user)) ||
        !reason_valid(reason) || isnan(token_expires_at)) {
        answer(cb, ud, SL_EINVAL, NULL);
        return;
    }
    s->ops->revoke(s, token_id, reason, token_expires_at, cb, ud);
}

void sl_revocation_revoke_user(sl_revocation_store *s, const char *user, sl_revocation_cb cb,
                               void *ud)
{
    if (s == NULL || s->closing) {
        answer(cb, ud, SL_EUNAVAIL, "revocation store closed");
        return;
    }
    if (!user_valid(user)) {
        answer(cb, ud, SL_EINVAL, NULL);
        return;
    }
    s->ops->revoke_user(s, user, cb, ud);
}

int sl_revocation_ready(const sl_revocation_store *s)
{
    return s != NULL && !s->closing && s->ops->ready(s);
}

size_t sl_revocation_prune(sl_revocation_store *s)
{
    return s && !s->closing && s->ops->prune ? s->ops->prune(s) : 0;
}

double sl_revocation_max_ttl(const sl_revocation_store *s)
{
    return s ? s->max_ttl : 0;
}

const char *sl_revocation_store_name(const sl_revocation_store *s)
{
    return s ? s->ops->name : "none";
}

void sl_revocation_store_free(sl_revocation_store *s)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    s->watch = NULL;
    s->watch_ud = NULL;
    s->ops->free(s);
}

/* ---- the memory store ----------------------------------------------------------------------- */

#define PRUNE_FLOOR 1024 /* entries before write-triggered pruning starts */

typedef struct mem_record {
    double expires_at;
    double cutoff; /* user records */
    char reason[]; /* token records */
} mem_record;

typedef struct mem_store {
    sl_revocation_store base;
    sl__map *tokens; /* token id -> mem_record */
    sl__map *users;  /* user -> mem_record */
    size_t prune_at; /* entries at which a write prunes */
    int has_timer;
    uv_timer_t timer;
} mem_store;

/* A live record, or NULL; an expired one is dropped on the way. */
static mem_record *mem_lookup(sl__map *m, const char *key, double now)
{
    mem_record *r = sl__map_get(m, key);
    if (r != NULL && r->expires_at <= now) {
        sl__map_del(m, key, free);
        r = NULL;
    }
    return r;
}

static void mem_check(sl_revocation_store *base, const char *token_id, const char *user,
                      double issued_at, sl_revocation_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    double now = sl_revocation_now(base);
    mem_record *r = token_id ? mem_lookup(s->tokens, token_id, now) : NULL;
    if (r != NULL) {
        cb(ud, SL_ETOKEN, r->reason);
        return;
    }
    r = mem_lookup(s->users, user, now);
    if (r != NULL && issued_at <= r->cutoff) {
        cb(ud, SL_ETOKEN, "all tokens of the user revoked");
        return;
    }
    cb(ud, SL_OK, NULL);
}

typedef struct expired_keys {
    const char **keys;
    size_t n, cap;
    double now;
    int failed;
} expired_keys;

static int collect_expired(void *ud, const char *key, void *value)
{
    expired_keys *e = ud;
    if (((mem_record *)value)->expires_at > e->now)
        return 0;
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 64;
        const char **k = realloc(e->keys, ncap * sizeof *k);
        if (k == NULL) {
            e->failed = 1; /* prune what we have; the rest goes next time */
            return 1;
        }
        e->keys = k;
        e->cap = ncap;
    }
    e->keys[e->n++] = key;
    return 0;
}

static size_t prune_map(sl__map *m, double now)
{
    expired_keys e = {.now = now};
    sl__map_each(m, collect_expired, &e);
    /* The collected pointers are the map's own key copies; each stays valid until its own
     * deletion, since deleting moves slots, not strings. */
    for (size_t i = 0; i < e.n; i++)
        sl__map_del(m, e.keys[i], free);
    free(e.keys);
    return e.n;
}

static size_t mem_size(const mem_store *s)
{
    return sl__map_size(s->tokens) + sl__map_size(s->users);
}

static size_t mem_prune(sl_revocation_store *base)
{
    mem_store *s = (mem_store *)base;
    double now = sl_revocation_now(base);
    size_t n = prune_map(s->tokens, now) + prune_map(s->users, now);
    size_t live = mem_size(s);
    s->prune_at = live * 2 > PRUNE_FLOOR ? live * 2 : PRUNE_FLOOR;
    return n;
}

static void mem_after_write(mem_store *s)
{
    if (mem_size(s) >= s->prune_at)
        mem_prune(&s->base);
}

static void mem_revoke(sl_revocation_store *base, const char *token_id, const char *reason,
                       double token_expires_at, sl_revocation_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    double now = sl_revocation_now(base);
    size_t len = strlen(reason);
    mem_record *r = malloc(sizeof *r + len + 1);
    if (r == NULL) {
        answer(cb, ud, SL_ENOMEM, NULL);
        return;
    }
    r->expires_at = now + sl_revocation_token_ttl(base, token_expires_at, now);
    r->cutoff = 0;
    memcpy(r->reason, reason, len + 1);
    /* A second revocation of the same id must not shorten the first one's life. */
    mem_record *prev = mem_lookup(s->tokens, token_id, now);
    if (prev != NULL && prev->expires_at > r->expires_at)
        r->expires_at = prev->expires_at;
    if (sl__map_put(s->tokens, token_id, r, free) != SL_OK) {
        free(r);
        answer(cb, ud, SL_ENOMEM, NULL);
        return;
    }
    mem_after_write(s);
    sl_revocation_notify(base, &(sl_revocation_event){.token_id = token_id});
    answer(cb, ud, SL_OK, NULL);
}

static void mem_revoke_user(sl_revocation_store *base, const char *user, sl_revocation_cb cb,
                            void *ud)
{
    mem_store *s = (mem_store *)base;
    double now = sl_revocation_now(base);
    mem_record *prev = mem_lookup(s->users, user, now);
    if (prev != NULL) {
        /* Never move a cut-off back (a clock stepping backwards would un-revoke tokens). */
        if (now > prev->cutoff)
            prev->cutoff = now;
        prev->expires_at = prev->cutoff + base->max_ttl;
        /* The cut-off in force, read before the watcher could change the map. */
        sl_revocation_notify(base, &(sl_revocation_event){.user = user, .cutoff = prev->cutoff});
        answer(cb, ud, SL_OK, NULL);
        return;
    }
    mem_record *r = malloc(sizeof *r + 1);
    if (r == NULL) {
        answer(cb, ud, SL_ENOMEM, NULL);
        return;
    }
    r->cutoff = now;
    r->expires_at = now + base->max_ttl;
    r->reason[0] = '\0';
    if (sl__map_put(s->users, user, r, free) != SL_OK) {
        free(r);
        answer(cb, ud, SL_ENOMEM, NULL);
        return;
    }
    mem_after_write(s);
    sl_revocation_notify(base, &(sl_revocation_event){.user = user, .cutoff = now});
    answer(cb, ud, SL_OK, NULL);
}

static int mem_ready(const sl_revocation_store *base)
{
    return 1;
}

static void mem_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void mem_free(sl_revocation_store *base)
{
    mem_store *s = (mem_store *)base;
    sl__map_free(s->tokens, free);
    sl__map_free(s->users, free);
    s->tokens = s->users = NULL;
    if (s->has_timer)
        uv_close((uv_handle_t *)&s->timer, mem_timer_closed);
    else
        free(s);
}

static void mem_on_timer(uv_timer_t *t)
{
    mem_prune(t->data);
}

static const sl_revocation_ops mem_ops = {
    .name = "memory",
    .check = mem_check,
    .revoke = mem_revoke,
    .revoke_user = mem_revoke_user,
    .ready = mem_ready,
    .prune = mem_prune,
    .free = mem_free,
};

int sl_revocation_memory_new(sl_revocation_store **out, uv_loop_t *loop, double max_ttl,
                             sl_clock_fn clock, void *clock_ud)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    mem_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    int rc = sl_revocation_store_init(&s->base, &mem_ops, max_ttl, clock, clock_ud);
    if (rc == SL_OK && (sl__map_new(&s->tokens) != SL_OK || sl__map_new(&s->users) != SL_OK))
        rc = SL_ENOMEM;
    if (rc != SL_OK) {
        sl__map_free(s->tokens, free);
        free(s);
        return rc;
    }
    s->prune_at = PRUNE_FLOOR;
    if (loop != NULL) {
        /* A quarter of the lifetime bounds stale records to ~125% of the live set's age span;
         * the clamp keeps tiny test lifetimes from spinning and big ones from never pruning. */
        double ms = s->base.max_ttl * 1000 / 4;
        uint64_t period = ms < 50 ? 50 : ms > 60000 ? 60000 : (uint64_t)ms;
        uv_timer_init(loop, &s->timer);
        s->timer.data = s;
        s->has_timer = 1;
        uv_timer_start(&s->timer, mem_on_timer, period, period);
        /* Housekeeping must not keep a finished server's loop alive. */
        uv_unref((uv_handle_t *)&s->timer);
    }
    *out = &s->base;
    return SL_OK;
}
