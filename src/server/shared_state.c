/* The security state shared on Redis (server/shared_state.h): attaching the stores to the Redis kv
 * and turning the kv's change feed into applies on the ACL, the broker and the API key store.
 * Bad stored data (written by hand, or by a newer build) is refused entry by entry with a log line
 * naming the table and key: the store keeps what it had, and the feed goes on. */
#include "server/shared_state.h"

#include "api/ctx.h"
#include "security/acl.h"
#include "security/apply.h"
#include "security/invoke.h"
#include "store/redis_kv.h"
#include "server/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl__shared_state {
    sl_ctx *ctx;
    sl_broker *broker;
    sl_apikey_store *keys;
    sl__kv *kv;
    sl__shared_state_stats stats;
    sl__log *log; /* borrowed; NULL: stderr */
};

static void refused(sl__shared_state *ss, const sl_status *st)
{
    ss->stats.refused++;
    sl__logf(ss->log, SL__LOG_WARN, NULL, "shared state: a change was refused: %s", st->message);
}

static void acl_changed(void *ud, const char *principal, int removed)
{
    sl__shared_state *ss = ud;
    sl__ctx_emit(
        ss->ctx,
        &(sl_event){.kind = SL_EVENT_ACL_CHANGED, .principal = principal, .removed = removed});
}

/* One changed entry from the feed. */
static void apply_one(sl__shared_state *ss, const char *table, const void *key, size_t klen,
                      const void *val, size_t vlen)
{
    sl_status st = {0};
    int r;
    if (strcmp(table, SL__KV_ACL) == 0)
        r = sl__acl_apply(ss->ctx->acl, key, klen, val, vlen, &st);
    else if (strcmp(table, SL__KV_BROKER) == 0 && ss->broker)
        r = sl__broker_apply(ss->broker, key, klen, val, vlen, &st);
    else if (strcmp(table, SL__KV_APIKEYS) == 0 && ss->keys)
        r = sl__apikey_apply(ss->keys, key, klen, val, vlen, &st);
    else if (strcmp(table, SL__KV_INVOKE) == 0)
        r = sl__invoke_apply(ss->ctx->invoke, key, klen, val, vlen, &st);
    else
        return;
    if (r < 0) {
        refused(ss, &st);
        return;
    }
    ss->stats.applied++;
    if (r != SL__APPLY_SAME && strcmp(table, SL__KV_INVOKE) == 0) { /* sockets re-check */
        sl__authz_invalidate(ss->ctx, "invoke policy");
        char pattern[SL__SECSTORE_KEY_MAX + 1];
        if (sl__secstore_key_str(key, klen, pattern) == 0)
            acl_changed(ss, pattern, 0);
    }
    if (r != SL__APPLY_SAME && strcmp(table, SL__KV_BROKER) == 0)
        sl__authz_invalidate(ss->ctx, "broker"); /* another node's broker role change */
    if (r != SL__APPLY_SAME && strcmp(table, SL__KV_ACL) == 0) {
        char principal[SL__SECSTORE_KEY_MAX + 1];
        if (sl__secstore_key_str(key, klen, principal) == 0)
            acl_changed(ss, principal, r == SL__APPLY_REMOVED);
    }
}

typedef struct reload {
    sl__shared_state *ss;
    const char *table;
} reload;

static void on_loaded(void *ud, int rc, const sl__redis_kv_entry *e, size_t n)
{
    reload *r = ud;
    sl__shared_state *ss = r->ss;
    const char *table = r->table;
    free(r);
    if (rc != SL_OK) /* the kv reloads again once Redis answers (or it is being freed) */
        return;
    sl__secstore_entry *v = calloc(n + 1, sizeof *v);
    if (v == NULL) {
        sl__logf(ss->log, SL__LOG_ERROR, NULL, "shared state: out of memory reloading %s", table);
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (sl__secstore_entry){e[i].key, e[i].klen, e[i].val, e[i].vlen};
    sl_status st = {0};
    int got;
    if (strcmp(table, SL__KV_ACL) == 0)
        got = sl__acl_apply_all(ss->ctx->acl, v, n, acl_changed, ss, &st);
    else if (strcmp(table, SL__KV_BROKER) == 0) {
        got = sl__broker_apply_all(ss->broker, v, n, &st);
        sl__authz_invalidate(ss->ctx, "broker");
    } else if (strcmp(table, SL__KV_INVOKE) == 0) {
        got = sl__invoke_apply_all(ss->ctx->invoke, v, n, &st);
        sl__authz_invalidate(ss->ctx, "invoke policy");
        if (got > 0)
            acl_changed(ss, "*", 0); /* every socket re-checks its subscriptions */
    } else
        got = sl__apikey_apply_all(ss->keys, v, n, &st);
    free(v);
    ss->stats.reloads++;
    if (got < 0 || st.code != SL_OK)
        refused(ss, &st);
}

static void on_change(void *ud, const char *table, const void *key, size_t klen, const void *val,
                      size_t vlen)
{
    sl__shared_state *ss = ud;
    if (key != NULL) {
        apply_one(ss, table, key, klen, val, vlen);
        return;
    }
    int wanted =
        strcmp(table, SL__KV_ACL) == 0 || (strcmp(table, SL__KV_BROKER) == 0 && ss->broker) ||
        (strcmp(table, SL__KV_APIKEYS) == 0 && ss->keys) || strcmp(table, SL__KV_INVOKE) == 0;
    if (!wanted)
        return;
    reload *r = malloc(sizeof *r);
    if (r == NULL)
        return;
    r->ss = ss;
    r->table = strcmp(table, SL__KV_ACL) == 0      ? SL__KV_ACL
               : strcmp(table, SL__KV_BROKER) == 0 ? SL__KV_BROKER
               : strcmp(table, SL__KV_INVOKE) == 0 ? SL__KV_INVOKE
                                                   : SL__KV_APIKEYS;
    if (sl__redis_kv_load(ss->kv, r->table, on_loaded, r) != SL_OK)
        free(r);
}

/* Attaches a store unless it is attached to kv already. */
static int attach(sl__kv *cur, sl__kv *kv, const char *what,
                  int (*fn)(void *, sl__kv *, sl_status *), void *store, sl_status *st)
{
    if (cur == kv)
        return SL_OK;
    if (cur != NULL)
        return sl_status_set(st, SL_EINVAL, "the %s is attached to another store", what);
    return fn(store, kv, st);
}

static int attach_acl(void *s, sl__kv *kv, sl_status *st)
{
    return sl__acl_attach(s, kv, st);
}

static int attach_broker(void *s, sl__kv *kv, sl_status *st)
{
    return sl_broker_attach(s, kv, st);
}

static int attach_keys(void *s, sl__kv *kv, sl_status *st)
{
    return sl_apikey_store_attach(s, kv, st);
}

int sl__shared_state_attach(sl__shared_state **out, sl_ctx *ctx, sl_broker *broker,
                            sl_apikey_store *keys, sl__kv *kv, sl_status *st)
{
    if (out == NULL || ctx == NULL || !sl__redis_kv_is(kv))
        return sl_status_set(st, SL_EINVAL, "shared security state needs the Redis store");
    int rc = attach(sl__acl_kv(ctx->acl), kv, "ACL", attach_acl, ctx->acl, st);
    if (rc == SL_OK && broker)
        rc = attach(sl__broker_kv(broker), kv, "broker", attach_broker, broker, st);
    if (rc == SL_OK && keys)
        rc = attach(sl__apikey_kv(keys), kv, "api key store", attach_keys, keys, st);
    if (rc != SL_OK)
        return rc;
    sl__shared_state *ss = calloc(1, sizeof *ss);
    if (ss == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    *ss = (sl__shared_state){.ctx = ctx, .broker = broker, .keys = keys, .kv = kv};
    if ((rc = sl__redis_kv_watch(kv, on_change, ss)) != SL_OK) {
        free(ss);
        return sl_status_set(st, rc, "cannot watch the shared security state: %s", sl_strerror(rc));
    }
    sl__ctx_set_sync_kv(ctx, kv);
    *out = ss;
    return SL_OK;
}

void sl__shared_state_free(sl__shared_state *ss)
{
    if (ss == NULL)
        return;
    if (ss->ctx->sync_kv == ss->kv)
        sl__ctx_set_sync_kv(ss->ctx, NULL);
    free(ss);
}

void sl__shared_state_stats_get(const sl__shared_state *ss, sl__shared_state_stats *out)
{
    *out = ss->stats;
}

void sl__shared_state_set_log(sl__shared_state *ss, struct sl__log *log)
{
    ss->log = log;
}
