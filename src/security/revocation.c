/* The revocation store interface (argument validation, defaults, dispatch through the ops table,
 * the one watcher) and the memory store: two maps, token id -> record and user -> cut-off, whose
 * records carry their own expiry so that lookups ignore stale ones and pruning can drop them.
 * Pruning runs from an unreferenced loop timer and, so that a store without a loop stays bounded
 * too, from writes once the maps have doubled since the last prune. Every memory-store callback
 * is synchronous, the watcher's included: it runs after the write and before the caller's cb, so
 * that the cb, which may free the store, is the last thing a write does.
 *
 * The embedded store is the memory store over a kv (store/kv.h): it loads every live record at
 * creation, before anything can ask, and stages each write and each purge of an expired record in
 * the kv. The write's answer then waits for the kv's barrier, so "revoked" is said only once the
 * revocation would survive a crash; the revocation itself is in force in this process at once. */
#include <sluice/revocation.h>

#include "core/map.h"
#include "security/secstore.h"

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

struct mem_store;

/* A write's answer waiting for the kv's barrier. */
typedef struct kv_wait {
    struct kv_wait *prev, *next;
    struct mem_store *s; /* NULL once the store has closed (and answered cb itself) */
    sl_revocation_cb cb; /* NULL once answered */
    void *ud;
} kv_wait;

typedef struct mem_store {
    sl_revocation_store base;
    sl__map *tokens; /* token id -> mem_record */
    sl__map *users;  /* user -> mem_record */
    size_t prune_at; /* entries at which a write prunes */
    int has_timer;
    uv_timer_t timer;
    sl__kv *kv;     /* embedded store: borrowed; NULL: nothing is stored */
    kv_wait *waits; /* answers waiting for a barrier */
} mem_store;

/* ---- the embedded store's records in the kv ---------------------------------------------------
 *
 * Table SL__KV_REVOCATIONS. Key "t:" + token id -> {"v":1,"exp":E,"reason":"..."}; key "u:" +
 * user -> {"v":1,"exp":E,"cutoff":C}. E (when the record lapses) and C are seconds since the
 * epoch, JSON numbers that read back exactly. */

#define KIND_TOKEN 't'
#define KIND_USER 'u'

static size_t kv_key(char *buf, char kind, const char *id)
{
    size_t n = strlen(id); /* validated: at most SL_PRINCIPAL_MAX */
    buf[0] = kind;
    buf[1] = ':';
    memcpy(buf + 2, id, n);
    return n + 2;
}

static int kv_put(mem_store *s, char kind, const char *id, const mem_record *r)
{
    char key[SL_PRINCIPAL_MAX + 3];
    json_t *o = sl__secstore_object();
    int bad = o == NULL || json_object_set_new(o, "exp", json_real(r->expires_at)) < 0;
    if (!bad)
        bad = kind == KIND_TOKEN ? json_object_set_new(o, "reason", json_string(r->reason)) < 0
                                 : json_object_set_new(o, "cutoff", json_real(r->cutoff)) < 0;
    int rc = bad ? SL_ENOMEM
                 : sl__secstore_put(s->kv, SL__KV_REVOCATIONS, key, kv_key(key, kind, id), o);
    json_decref(o);
    return rc;
}

/* A lapsed record leaves the kv too. Best effort: should staging fail, the record is skipped
 * as expired at the next load and purged then. */
static void kv_purge(mem_store *s, char kind, const char *id)
{
    char key[SL_PRINCIPAL_MAX + 3];
    if (s->kv != NULL)
        s->kv->ops->del(s->kv, SL__KV_REVOCATIONS, key, kv_key(key, kind, id));
}

static void kv_barrier_done(void *ud, int rc)
{
    kv_wait *w = ud;
    sl_revocation_cb cb = w->cb;
    void *cud = w->ud;
    if (w->s != NULL) {
        if (w->prev)
            w->prev->next = w->next;
        else
            w->s->waits = w->next;
        if (w->next)
            w->next->prev = w->prev;
    }
    free(w);
    /* Last: the cb may free the store. */
    if (cb)
        cb(cud, rc == SL_OK ? SL_OK : SL_ESTORAGE, NULL);
}

/* Answers a successful write: at once without a kv, else once the kv's barrier says it is
 * durable (w was allocated before the write, so this cannot fail). */
static void answer_written(mem_store *s, kv_wait *w, sl_revocation_cb cb, void *ud)
{
    if (w == NULL) {
        answer(cb, ud, SL_OK, NULL);
        return;
    }
    w->s = s;
    w->cb = cb;
    w->ud = ud;
    w->next = s->waits;
    if (s->waits)
        s->waits->prev = w;
    s->waits = w;
    s->kv->ops->barrier(s->kv, kv_barrier_done, w);
}

/* A live record, or NULL; an expired one is dropped on the way. */
static mem_record *mem_lookup(mem_store *s, char kind, const char *key, double now)
{
    sl__map *m = kind == KIND_TOKEN ? s->tokens : s->users;
    mem_record *r = sl__map_get(m, key);
    if (r != NULL && r->expires_at <= now) {
        kv_purge(s, kind, key);
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
    mem_record *r = token_id ? mem_lookup(s, KIND_TOKEN, token_id, now) : NULL;
    if (r != NULL) {
        cb(ud, SL_ETOKEN, r->reason);
        return;
    }
    r = mem_lookup(s, KIND_USER, user, now);
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

static size_t prune_map(mem_store *s, char kind, double now)
{
    sl__map *m = kind == KIND_TOKEN ? s->tokens : s->users;
    expired_keys e = {.now = now};
    sl__map_each(m, collect_expired, &e);
    /* The collected pointers are the map's own key copies; each stays valid until its own
     * deletion, since deleting moves slots, not strings. */
    for (size_t i = 0; i < e.n; i++) {
        kv_purge(s, kind, e.keys[i]);
        sl__map_del(m, e.keys[i], free);
    }
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
    size_t n = prune_map(s, KIND_TOKEN, now) + prune_map(s, KIND_USER, now);
    size_t live = mem_size(s);
    s->prune_at = live * 2 > PRUNE_FLOOR ? live * 2 : PRUNE_FLOOR;
    return n;
}

static void mem_after_write(mem_store *s)
{
    if (mem_size(s) >= s->prune_at)
        mem_prune(&s->base);
}

/* The wait for a write's barrier, allocated before the write so that answering cannot fail.
 * -1 on ENOMEM; *w NULL when there is nothing to wait for. */
static int wait_new(mem_store *s, sl_revocation_cb cb, kv_wait **w)
{
    *w = NULL;
    if (s->kv == NULL || cb == NULL)
        return 0;
    *w = calloc(1, sizeof **w);
    return *w ? 0 : -1;
}

static void mem_revoke(sl_revocation_store *base, const char *token_id, const char *reason,
                       double token_expires_at, sl_revocation_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    double now = sl_revocation_now(base);
    size_t len = strlen(reason);
    mem_record *r = malloc(sizeof *r + len + 1);
    kv_wait *w;
    if (r == NULL || wait_new(s, cb, &w) < 0) {
        free(r);
        answer(cb, ud, SL_ENOMEM, NULL);
        return;
    }
    r->expires_at = now + sl_revocation_token_ttl(base, token_expires_at, now);
    r->cutoff = 0;
    memcpy(r->reason, reason, len + 1);
    /* A second revocation of the same id must not shorten the first one's life. */
    mem_record *prev = mem_lookup(s, KIND_TOKEN, token_id, now);
    if (prev != NULL && prev->expires_at > r->expires_at)
        r->expires_at = prev->expires_at;
    int rc = sl__map_put(s->tokens, token_id, r, NULL);
    if (rc == SL_OK && s->kv != NULL && (rc = kv_put(s, KIND_TOKEN, token_id, r)) != SL_OK) {
        /* Put back what was there: replacing an existing key cannot fail. */
        if (prev != NULL)
            sl__map_put(s->tokens, token_id, prev, NULL);
        else
            sl__map_del(s->tokens, token_id, NULL);
    }
    if (rc != SL_OK) {
        free(r);
        free(w);
        answer(cb, ud, rc, NULL);
        return;
    }
    free(prev);
    mem_after_write(s);
    sl_revocation_notify(base, &(sl_revocation_event){.token_id = token_id});
    answer_written(s, w, cb, ud);
}

static void mem_revoke_user(sl_revocation_store *base, const char *user, sl_revocation_cb cb,
                            void *ud)
{
    mem_store *s = (mem_store *)base;
    double now = sl_revocation_now(base);
    kv_wait *w;
    if (wait_new(s, cb, &w) < 0) {
        answer(cb, ud, SL_ENOMEM, NULL);
        return;
    }
    mem_record *prev = mem_lookup(s, KIND_USER, user, now);
    if (prev != NULL) {
        /* Never move a cut-off back (a clock stepping backwards would un-revoke tokens). */
        mem_record next = *prev;
        if (now > next.cutoff)
            next.cutoff = now;
        next.expires_at = next.cutoff + base->max_ttl;
        int rc = s->kv != NULL ? kv_put(s, KIND_USER, user, &next) : SL_OK;
        if (rc != SL_OK) {
            free(w);
            answer(cb, ud, rc, NULL);
            return;
        }
        prev->cutoff = next.cutoff;
        prev->expires_at = next.expires_at;
        /* The cut-off in force, read before the watcher could change the map. */
        sl_revocation_notify(base, &(sl_revocation_event){.user = user, .cutoff = next.cutoff});
        answer_written(s, w, cb, ud);
        return;
    }
    mem_record *r = malloc(sizeof *r + 1);
    if (r == NULL) {
        free(w);
        answer(cb, ud, SL_ENOMEM, NULL);
        return;
    }
    r->cutoff = now;
    r->expires_at = now + base->max_ttl;
    r->reason[0] = '\0';
    int rc = sl__map_put(s->users, user, r, NULL);
    if (rc == SL_OK && s->kv != NULL && (rc = kv_put(s, KIND_USER, user, r)) != SL_OK)
        sl__map_del(s->users, user, NULL);
    if (rc != SL_OK) {
        free(r);
        free(w);
        answer(cb, ud, rc, NULL);
        return;
    }
    mem_after_write(s);
    sl_revocation_notify(base, &(sl_revocation_event){.user = user, .cutoff = now});
    answer_written(s, w, cb, ud);
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
    /* Answers still waiting for the kv: told now, as the contract says; the barrier's later
     * completion then only frees its wait. */
    while (s->waits != NULL) {
        kv_wait *w = s->waits;
        s->waits = w->next;
        sl_revocation_cb cb = w->cb;
        w->s = NULL;
        w->cb = NULL;
        answer(cb, w->ud, SL_EUNAVAIL, "revocation store closed");
    }
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

static const sl_revocation_ops embedded_ops = {
    .name = "embedded",
    .check = mem_check,
    .revoke = mem_revoke,
    .revoke_user = mem_revoke_user,
    .ready = mem_ready,
    .prune = mem_prune,
    .free = mem_free,
};

/* ---- loading the embedded store ------------------------------------------------------------- */

typedef struct load_state {
    mem_store *s;
    double now;
    char (*stale)[SL_PRINCIPAL_MAX + 3]; /* keys of lapsed records, purged after the scan */
    size_t nstale, capstale;
    sl_status *st;
} load_state;

/* One stored record; SL_EFORMAT with why set when it does not decode. */
static int decode_record(const void *val, size_t vlen, char kind, mem_record **out, char *why,
                         size_t whysz)
{
    json_t *o = sl__secstore_parse(val, vlen, why, whysz);
    if (o == NULL)
        return SL_EFORMAT;
    const char *other = kind == KIND_TOKEN ? "reason" : "cutoff";
    json_t *exp = json_object_get(o, "exp"), *v = json_object_get(o, other);
    int rc = SL_OK;
    if (json_object_size(o) != 2 || !json_is_number(exp) || v == NULL ||
        !isfinite(json_number_value(exp))) {
        snprintf(why, whysz, "expected exactly \"exp\" (a number) and \"%s\"", other);
        rc = SL_EFORMAT;
    }
    const char *reason = "";
    if (rc == SL_OK && kind == KIND_TOKEN) {
        reason = json_string_value(v);
        if (reason == NULL || strlen(reason) != json_string_length(v) || !reason_valid(reason)) {
            snprintf(why, whysz, "\"reason\" must be at most %d bytes without control bytes",
                     SL_REVOCATION_REASON_MAX);
            rc = SL_EFORMAT;
        }
    } else if (rc == SL_OK && (!json_is_number(v) || !isfinite(json_number_value(v)))) {
        snprintf(why, whysz, "\"cutoff\" must be a number");
        rc = SL_EFORMAT;
    }
    mem_record *r = NULL;
    if (rc == SL_OK && (r = malloc(sizeof *r + strlen(reason) + 1)) == NULL)
        rc = SL_ENOMEM;
    if (rc == SL_OK) {
        r->expires_at = json_number_value(exp);
        r->cutoff = kind == KIND_USER ? json_number_value(v) : 0;
        memcpy(r->reason, reason, strlen(reason) + 1);
        *out = r;
    }
    json_decref(o);
    return rc;
}

static int load_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    load_state *ls = ud;
    char k[SL__SECSTORE_KEY_MAX + 1], why[160];
    const char *id = k + 2;
    char kind = klen > 0 ? *(const char *)key : 0;
    if (sl__secstore_key_str(key, klen, k) < 0 || klen < 3 || k[1] != ':' ||
        (kind == KIND_TOKEN ? !sl_revocation_id_valid(id) : kind != KIND_USER || !user_valid(id)))
        return sl__secstore_eformat(ls->st, SL__KV_REVOCATIONS, key, klen,
                                    "not \"t:\" and a token id or \"u:\" and a user");
    mem_record *r = NULL;
    int rc = decode_record(val, vlen, kind, &r, why, sizeof why);
    if (rc == SL_EFORMAT)
        return sl__secstore_eformat(ls->st, SL__KV_REVOCATIONS, key, klen, why);
    if (rc != SL_OK)
        return sl_status_set(ls->st, rc, NULL);
    if (r->expires_at <= ls->now) {
        /* Lapsed while the server was down: never loaded, and purged from the kv. */
        free(r);
        if (ls->nstale == ls->capstale) {
            size_t nc = ls->capstale ? 2 * ls->capstale : 16;
            void *nv = realloc(ls->stale, nc * sizeof *ls->stale);
            if (nv == NULL)
                return SL_OK; /* purged at a later start instead */
            ls->stale = nv;
            ls->capstale = nc;
        }
        memcpy(ls->stale[ls->nstale++], k, klen + 1);
        return SL_OK;
    }
    if (sl__map_put(kind == KIND_TOKEN ? ls->s->tokens : ls->s->users, id, r, free) != SL_OK) {
        free(r);
        return sl_status_set(ls->st, SL_ENOMEM, NULL);
    }
    return SL_OK;
}

static int mem_load(mem_store *s, sl_status *st)
{
    sl_status_clear(st);
    load_state ls = {.s = s, .now = sl_revocation_now(&s->base), .st = st};
    int rc = s->kv->ops->scan(s->kv, SL__KV_REVOCATIONS, NULL, 0, load_one, &ls);
    if (rc != SL_OK && (st == NULL || st->code != rc))
        sl_status_set(st, rc, "cannot read the stored revocations: %s", sl_strerror(rc));
    for (size_t i = 0; rc == SL_OK && i < ls.nstale; i++)
        s->kv->ops->del(s->kv, SL__KV_REVOCATIONS, ls.stale[i], strlen(ls.stale[i]));
    free(ls.stale);
    return rc;
}

static int store_new(sl_revocation_store **out, const sl_revocation_ops *ops, uv_loop_t *loop,
                     double max_ttl, sl__kv *kv, sl_clock_fn clock, void *clock_ud, sl_status *st)
{
    if (out == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    *out = NULL;
    mem_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    int rc = sl_revocation_store_init(&s->base, ops, max_ttl, clock, clock_ud);
    if (rc == SL_OK && (sl__map_new(&s->tokens) != SL_OK || sl__map_new(&s->users) != SL_OK))
        rc = SL_ENOMEM;
    if (rc != SL_OK)
        sl_status_set(st, rc, rc == SL_EINVAL ? "max_ttl must be finite" : NULL);
    s->kv = kv;
    /* Loaded before the store is handed out: no check can run ahead of a stored revocation. */
    if (rc == SL_OK && kv != NULL)
        rc = mem_load(s, st);
    if (rc != SL_OK) {
        sl__map_free(s->tokens, free);
        sl__map_free(s->users, free);
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

int sl_revocation_memory_new(sl_revocation_store **out, uv_loop_t *loop, double max_ttl,
                             sl_clock_fn clock, void *clock_ud)
{
    return store_new(out, &mem_ops, loop, max_ttl, NULL, clock, clock_ud, NULL);
}

int sl_revocation_embedded_new(sl_revocation_store **out, uv_loop_t *loop, double max_ttl,
                               struct sl__kv *kv, sl_clock_fn clock, void *clock_ud, sl_status *st)
{
    return store_new(out, &embedded_ops, loop, max_ttl, kv, clock, clock_ud, st);
}
