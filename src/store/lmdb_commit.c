/* Staging and group commits for the LMDB table store (lmdb.c opens, scans and backs it up): put,
 * del, del_prefix, barrier and touch stage changes on the loop thread, one job at a time on
 * libuv's thread pool commits them (or syncs, in BATCH mode), and free drains what is left.
 *
 * Design.
 * - Staging. put/del/del_prefix copy their arguments into one node each, appended to an ordered
 *   log: the current batch (`cur`). Nothing touches LMDB on the loop thread except scan and backup
 *   (read transactions). Barriers attach to the current batch.
 * - Group commit. Staging (or touch) arms a uv_check_t, which runs after the loop iteration's I/O
 *   callbacks, plus a uv_idle_t so that the poll of that iteration does not block when the stage
 *   came from a timer or from before uv_run. The check hands the whole batch to uv_queue_work; the
 *   worker begins a write transaction, applies the log in order, runs the sync hooks (SYNC mode)
 *   and commits, all on the one thread, as LMDB requires of write transactions. Meanwhile new
 *   stages and barriers go into the next batch.
 * - Gathering (SYNC). Before it begins the transaction, the worker waits a quarter of the last
 *   commit's time when that commit served two barriers or more (concurrent writers), then takes
 *   over what was staged meanwhile (cur and its barriers, under cur_lock): writers whose answers
 *   just went out share this fsync instead of waiting a whole commit for the next one. One writer
 *   alone never waits. At 50 clients this took sync PUT from 0.47× to 0.52× the memory engine's
 *   rate, and its p99 from 11 to 8 ms (docs/BENCHMARKS.md, "Durable writes").
 * - Completion. The after-work callback (loop thread) completes the handed-over batch's barriers,
 *   and those of the next batch when nothing was staged into it (everything they wait for was in
 *   the commit just done), then arms the check again if anything is waiting. So a barrier never
 *   completes before a change staged before it, and one staged during a commit waits for the next
 *   commit. barrier() with nothing staged and no commit in flight completes at once.
 * - One job at a time. Commits and BATCH mode's fsyncs run as jobs on the thread pool, never two at
 *   once: the worker owns the handed-over batch, the loop thread only the staging side.
 * - Map growth. MDB_MAP_FULL aborts the transaction, doubles the map (mdb_env_set_mapsize) and
 *   retries in the same work callback. set_mapsize needs no other transaction of this process to be
 *   active: the only writer is that worker (its transaction is aborted by then), and the read
 *   transactions (scan, backup, on the loop thread) hold txn_lock for reading, which the resize
 *   takes for writing. A commit on the caller's thread (no loop, or at free) only tries the lock:
 *   a barrier from inside its own scan callback then fails with SL_ESTORAGE instead of
 *   deadlocking, and is retried.
 * - Failures. ENOSPC, EIO (LMDB reports a disk filling up mid-write as EIO), a failing sync
 *   hook: the batch's barriers complete with SL_ESTORAGE, a line without data goes to stderr, and
 *   the failed log is put in front of the current batch, so a later commit applies it. After a
 * failure the next commit waits for a retry timer (1 s; it also retries with no new activity), so a
 * full disk is not hammered once per loop turn. Nothing already committed is lost: a failed
 * transaction is aborted whole.
 * - Durability. SYNC: LMDB syncs in every commit (hooks first). BATCH and NONE open the environment
 *   with MDB_NOSYNC; BATCH runs a timer every batch_ms that, when a commit happened since the last
 *   fsync, runs the hooks and mdb_env_sync on the thread pool. NONE syncs at close only. Without a
 *   loop there is no timer: BATCH then syncs at close, like NONE.
 * - Closing. free() waits for a job in flight, commits what is staged on the caller's thread,
 *   runs the hooks, syncs and closes; its handles then close on the loop, which frees the rest.
 *   If that last commit fails its changes are reported and dropped (their barriers got
 *   SL_ESTORAGE): there is no later commit to keep them for. */
#include "store/lmdb_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAP_MAX ((size_t)1 << 40) /* past 1 TiB a full map is a failure, not a reason to grow */
#define RETRY_MS 1000

/* ---- batches --------------------------------------------------------------------------------- */

void sl__lmdb_ops_free(op *o)
{
    while (o != NULL) {
        op *next = o->next;
        free(o);
        o = next;
    }
}

static void batch_append(batch *b, op *o)
{
    if (b->last)
        b->last->next = o;
    else
        b->head = o;
    b->last = o;
    b->n++;
}

/* Puts b's log in front of into's (b keeps its waiters). */
static void batch_prepend(batch *into, batch *b)
{
    if (b->head == NULL)
        return;
    b->last->next = into->head;
    if (into->last == NULL)
        into->last = b->last;
    into->head = b->head;
    into->n += b->n;
    b->head = b->last = NULL;
    b->n = 0;
}

/* Moves from's log, barriers and touch onto the end of into (from was staged after into).
 * Returns 0 without moving anything when the barriers' array cannot grow. */
static int batch_take(batch *into, batch *from)
{
    if (from->nw > 0) {
        waiter *w = realloc(into->w, (into->nw + from->nw) * sizeof *w);
        if (w == NULL)
            return 0;
        memcpy(w + into->nw, from->w, from->nw * sizeof *w);
        into->w = w;
        into->nw += from->nw;
        into->wcap = into->nw;
        from->nw = 0;
    }
    if (from->head != NULL) {
        if (into->last)
            into->last->next = from->head;
        else
            into->head = from->head;
        into->last = from->last;
        into->n += from->n;
        from->head = from->last = NULL;
        from->n = 0;
    }
    into->touched |= from->touched;
    from->touched = 0;
    return 1;
}

static int batch_pending(const batch *b)
{
    return b->head != NULL || b->touched;
}

/* Calls and releases a detached waiter array. Callbacks may stage, barrier or even free the kv:
 * the array is no longer reachable from it. */
static void waiters_complete(waiter *w, size_t n, int rc)
{
    for (size_t i = 0; i < n; i++)
        w[i].fn(w[i].ud, rc);
    free(w);
}

/* ---- commits (worker thread, or the caller's thread without a loop and at close) ------------- */

/* Doubles the map. may_wait 0 (the caller's thread, which may itself be inside a scan
 * callback holding the read side): fail with MDB_MAP_FULL rather than deadlock. */
int sl__lmdb_grow_map(lmkv *s, int may_wait)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    size_t next = info.me_mapsize * 2;
    if (next > MAP_MAX || next < info.me_mapsize)
        return MDB_MAP_FULL;
    if (may_wait)
        uv_rwlock_wrlock(&s->txn_lock);
    else if (uv_rwlock_trywrlock(&s->txn_lock) != 0)
        return MDB_MAP_FULL;
    int rc = mdb_env_set_mapsize(s->env, next);
    uv_rwlock_wrunlock(&s->txn_lock);
    return rc;
}

static int apply_op(lmkv *s, MDB_txn *txn, const op *o)
{
    MDB_dbi dbi = s->dbi[o->table];
    MDB_val k = {o->klen, (void *)o->data}, v = {o->vlen, (void *)(o->data + o->klen)};
    int rc;
    switch (o->kind) {
    case OP_PUT:
        return mdb_put(txn, dbi, &k, &v, 0);
    case OP_DEL:
        rc = mdb_del(txn, dbi, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    default:
        break;
    }
    if (o->klen == 0)
        return mdb_drop(txn, dbi, 0); /* the whole table */
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0)
        return rc;
    for (;;) {
        /* Re-seek after each delete: simpler to trust than the cursor's position after a
         * delete at a page boundary, and each seek is O(log n). */
        MDB_val key = {o->klen, (void *)o->data}, val;
        rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc != 0 || key.mv_size < o->klen || memcmp(key.mv_data, o->data, o->klen) != 0)
            break;
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc;
}

static int run_hooks(lmkv *s)
{
    for (size_t i = 0; i < s->nhooks; i++) {
        int rc = s->hooks[i].fn(s->hooks[i].ud);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

/* Applies b's log in one write transaction and commits it. Returns 0 or an LMDB/errno code; a
 * failing hook aborts the transaction and is returned in *hook_rc (an sl_errno). */
static int commit_batch(lmkv *s, const batch *b, int hooks, int may_wait, int *hook_rc)
{
    *hook_rc = SL_OK;
    for (;;) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc != 0)
            return rc;
        for (const op *o = b->head; rc == 0 && o != NULL; o = o->next)
            rc = apply_op(s, txn, o);
        if (rc == 0 && hooks && (*hook_rc = run_hooks(s)) != SL_OK)
            rc = -1;
        if (rc == 0)
            rc = mdb_txn_commit(txn); /* frees txn whatever the outcome */
        else
            mdb_txn_abort(txn);
        if (rc != MDB_MAP_FULL)
            return *hook_rc != SL_OK ? -1 : rc;
        if ((rc = sl__lmdb_grow_map(s, may_wait)) != 0)
            return rc;
    }
}

/* Keeps the data file written, with zeros, some way past the pages LMDB uses (SYNC mode, on the
 * worker, between commits). LMDB appends pages past the end of the file, and on ext4 and its
 * like an fdatasync after a write that allocates blocks or moves the end of the file commits the
 * journal too: about twice the cost of one that only overwrites (0.25 against 0.12 ms here).
 * With blocks written ahead, the commits' syncs are overwrites; the fill's own sync comes once
 * per AHEAD_STEP. Only bytes past the file's end are written, which no committed page lies in
 * (the worker is the only writer), and LMDB ignores a file longer than its last page. Failing
 * here costs speed, not data: the commit went through already, so errors are not reported. */
#define AHEAD_LOW ((off_t)4 << 20)
#define AHEAD_STEP ((off_t)8 << 20)
static void write_ahead(lmkv *s)
{
    MDB_envinfo info;
    MDB_stat st;
    int fd;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0 ||
        mdb_env_get_fd(s->env, &fd) != 0)
        return;
    off_t used = (off_t)(info.me_last_pgno + 1) * st.ms_psize;
    if (s->written_to - used >= AHEAD_LOW)
        return;
    struct stat fs;
    if (fstat(fd, &fs) != 0)
        return;
    off_t end = used + AHEAD_STEP, at = fs.st_size;
    static const char zeros[1 << 16];
    while (at < end) {
        size_t n = end - at < (off_t)sizeof zeros ? (size_t)(end - at) : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, n, at);
        if (w <= 0)
            break;
        at += w;
    }
    if (at > fs.st_size && fdatasync(fd) == 0)
        s->written_to = at;
}

/* Gathering (see the top of the file), on the worker before a SYNC commit of jb. The adaptive
 * wait is at most GATHER_MAX_NS; a fixed one (tests) is taken as given. */
#define GATHER_MAX_NS 1000000u
static void gather(lmkv *s)
{
    uint64_t ns =
        s->gather_us ? (uint64_t)s->gather_us * 1000u : (s->last_nw >= 2 ? s->last_ns / 4 : 0);
    if (ns < 1000)
        return;
    if (ns > GATHER_MAX_NS && !s->gather_us)
        ns = GATHER_MAX_NS;
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    uv_mutex_lock(&s->cur_lock);
    batch_take(&s->jb, &s->cur);
    uv_mutex_unlock(&s->cur_lock);
}

static int sync_now(lmkv *s, int *hook_rc)
{
    if ((*hook_rc = run_hooks(s)) != SL_OK)
        return -1;
    return mdb_env_sync(s->env, 1);
}

size_t sl__lmdb_map_size(lmkv *s)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    return info.me_mapsize;
}

static void report(const lmkv *s, const char *what, int rc, int hook_rc)
{
    /* Only codes and counts: a commit's data never goes to a log. */
    if (hook_rc != SL_OK)
        sl__logsink_printf(s->log, SL__SINK_ERROR, "store: %s failed: a sync hook failed (%s)",
                           what, sl_strerror(hook_rc));
    else
        sl__logsink_printf(s->log, SL__SINK_ERROR, "store: %s failed: %s", what, mdb_strerror(rc));
}

/* ---- results (loop thread) ------------------------------------------------------------------- */

static void kick(lmkv *s);
static void on_retry(uv_timer_t *t);

/* Settles a commit of b (detached from the kv): stats, barriers, and on failure the log goes back
 * in front of the current batch. */
static void settle_commit(lmkv *s, batch *b, int rc, int hook_rc)
{
    waiter *w = b->w, *w2 = NULL;
    size_t nw = b->nw, nw2 = 0;
    if (rc == 0) {
        s->stats.commits++;
        /* A touched batch counts too: its point is the hooks' sync (the audit log's). */
        if ((b->n > 0 || b->touched) && s->dur == SL__DURABLE_SYNC)
            s->stats.syncs++;
        else if (b->n > 0 || b->touched)
            s->since_sync++;
        sl__lmdb_ops_free(b->head);
        if (!batch_pending(&s->cur)) {
            /* Barriers that joined the next batch while this commit ran, with nothing staged
             * after them: what they wait for was in this commit. */
            w2 = s->cur.w;
            nw2 = s->cur.nw;
            s->cur.w = NULL;
            s->cur.nw = s->cur.wcap = 0;
        }
    } else {
        s->stats.failed++;
        char what[64];
        snprintf(what, sizeof what, "commit of %zu change%s", b->n, b->n == 1 ? "" : "s");
        report(s, what, rc, hook_rc);
        batch_prepend(&s->cur, b);
        s->cur.touched |= b->touched;
        if (s->loop != NULL && !s->closing) {
            s->backoff = 1;
            uv_timer_start(&s->retry_timer, on_retry, RETRY_MS, 0);
        }
        rc = SL_ESTORAGE;
    }
    memset(b, 0, sizeof *b);
    waiters_complete(w, nw, rc == 0 ? SL_OK : rc);
    if (nw2 > 0 || w2 != NULL)
        waiters_complete(w2, nw2, SL_OK);
}

static void finish_job(lmkv *s)
{
    int kind = s->job;
    s->job = JOB_NONE;
    s->stats.map_size = s->job_map;
    if (s->job_rc == 0 && (kind != JOB_COMMIT || s->dur == SL__DURABLE_SYNC))
        sl__histo_observe(&s->stats.sync_seconds, (double)s->job_ns / 1e9);
    if (kind == JOB_COMMIT) {
        batch b = s->jb;
        memset(&s->jb, 0, sizeof s->jb);
        settle_commit(s, &b, s->job_rc, s->job_hook);
    } else if (s->job_rc == 0) {
        s->stats.syncs++;
        s->since_sync = 0;
    } else {
        report(s, "periodic sync", s->job_rc, s->job_hook);
    }
}

static void work_cb(uv_work_t *w)
{
    lmkv *s = w->data;
    int sync = s->dur == SL__DURABLE_SYNC;
    if (s->job == JOB_COMMIT && sync)
        gather(s);
    uint64_t t0 = uv_hrtime();
    if (s->job == JOB_COMMIT) {
        s->job_rc = commit_batch(s, &s->jb, sync, 1, &s->job_hook);
        s->last_ns = uv_hrtime() - t0;
        s->last_nw = s->jb.nw;
        if (s->job_rc == 0 && sync)
            write_ahead(s);
    } else
        s->job_rc = sync_now(s, &s->job_hook);
    s->job_ns = uv_hrtime() - t0;
    s->job_map = sl__lmdb_map_size(s);
    uv_mutex_lock(&s->done_lock);
    s->worker_done = 1;
    uv_cond_signal(&s->done_cond);
    uv_mutex_unlock(&s->done_lock);
}

static void unref(lmkv *s)
{
    if (--s->refs == 0)
        free(s);
}

static void after_work_cb(uv_work_t *w, int status)
{
    lmkv *s = w->data;
    s->work_pending = 0;
    if (s->closing) { /* free() waited for the worker and took the result */
        unref(s);
        return;
    }
    finish_job(s);
    kick(s); /* s is still allocated: only the close callbacks release it */
}

static void start_job(lmkv *s, int kind)
{
    s->job = kind;
    s->worker_done = 0;
    if (kind == JOB_COMMIT) {
        s->jb = s->cur;
        memset(&s->cur, 0, sizeof s->cur);
    } else {
        s->sync_due = 0;
    }
    s->work.data = s;
    s->work_pending = 1;
    if (uv_queue_work(s->loop, &s->work, work_cb, after_work_cb) != 0) {
        work_cb(&s->work); /* cannot happen with valid callbacks; stay correct regardless */
        after_work_cb(&s->work, 0);
    }
}

/* Starts the next job if one is due and none runs. */
static void start_next(lmkv *s)
{
    if (s->closing || s->job != JOB_NONE)
        return;
    if (s->sync_due)
        start_job(s, JOB_SYNC);
    else if (!s->backoff && batch_pending(&s->cur))
        start_job(s, JOB_COMMIT);
}

static void disarm(lmkv *s)
{
    if (s->armed) {
        uv_check_stop(&s->check);
        uv_idle_stop(&s->idle);
        s->armed = 0;
    }
}

static void on_check(uv_check_t *h)
{
    lmkv *s = h->data;
    disarm(s);
    start_next(s);
}

static void on_idle(uv_idle_t *h)
{
    (void)h; /* its being active is the point: the loop polls without blocking */
}

/* Arms the check when something is due, so it starts after this iteration's I/O callbacks. */
static void kick(lmkv *s)
{
    if (s->loop == NULL || s->closing || s->armed || s->job != JOB_NONE)
        return;
    if (!s->sync_due && (s->backoff || !batch_pending(&s->cur)))
        return;
    uv_check_start(&s->check, on_check);
    uv_idle_start(&s->idle, on_idle);
    s->armed = 1;
}

static void on_retry(uv_timer_t *t)
{
    lmkv *s = t->data;
    s->backoff = 0;
    kick(s);
}

static void on_sync_timer(uv_timer_t *t)
{
    lmkv *s = t->data;
    if (s->since_sync == 0)
        return;
    s->sync_due = 1;
    kick(s);
}

/* Without a loop: commits the current batch on the caller's thread. */
static void commit_sync(lmkv *s)
{
    batch b = s->cur;
    memset(&s->cur, 0, sizeof s->cur);
    int hook_rc;
    int rc = commit_batch(s, &b, s->dur == SL__DURABLE_SYNC, 0, &hook_rc);
    s->stats.map_size = sl__lmdb_map_size(s);
    settle_commit(s, &b, rc, hook_rc);
}

/* ---- the kv operations ---------------------------------------------------------------------- */

static int stage(sl__kv *kv, int kind, const char *table, const void *key, size_t klen,
                 const void *val, size_t vlen)
{
    lmkv *s = (lmkv *)kv;
    int t = table_index(table);
    if (t < 0 || s->read_only || s->closing || klen > KEY_MAX ||
        (kind != OP_DEL_PREFIX && klen == 0))
        return SL_EINVAL;
    if ((klen > 0 && key == NULL) || (vlen > 0 && val == NULL))
        return SL_EINVAL;
    if (vlen > SIZE_MAX - sizeof(op) - klen)
        return SL_ENOMEM;
    op *o = malloc(sizeof *o + klen + vlen);
    if (o == NULL)
        return SL_ENOMEM;
    o->next = NULL;
    o->kind = (unsigned char)kind;
    o->table = (unsigned char)t;
    o->klen = klen;
    o->vlen = vlen;
    if (klen > 0)
        memcpy(o->data, key, klen);
    if (vlen > 0)
        memcpy(o->data + klen, val, vlen);
    uv_mutex_lock(&s->cur_lock);
    batch_append(&s->cur, o);
    uv_mutex_unlock(&s->cur_lock);
    kick(s);
    return SL_OK;
}

int sl__lmdb_put(sl__kv *kv, const char *table, const void *key, size_t klen, const void *val,
                 size_t vlen)
{
    return stage(kv, OP_PUT, table, key, klen, val, vlen);
}

int sl__lmdb_del(sl__kv *kv, const char *table, const void *key, size_t klen)
{
    return stage(kv, OP_DEL, table, key, klen, NULL, 0);
}

int sl__lmdb_del_prefix(sl__kv *kv, const char *table, const void *prefix, size_t plen)
{
    return stage(kv, OP_DEL_PREFIX, table, prefix, plen, NULL, 0);
}

void sl__lmdb_barrier(sl__kv *kv, sl__kv_done_fn fn, void *ud)
{
    lmkv *s = (lmkv *)kv;
    uv_mutex_lock(&s->cur_lock); /* a gathering worker may take cur meanwhile */
    if (!batch_pending(&s->cur) && s->job != JOB_COMMIT) {
        uv_mutex_unlock(&s->cur_lock);
        fn(ud, SL_OK);
        return;
    }
    if (s->cur.nw == s->cur.wcap) {
        size_t cap = s->cur.wcap ? s->cur.wcap * 2 : 8;
        waiter *w = realloc(s->cur.w, cap * sizeof *w);
        if (w == NULL) {
            uv_mutex_unlock(&s->cur_lock);
            fn(ud, SL_ENOMEM);
            return;
        }
        s->cur.w = w;
        s->cur.wcap = cap;
    }
    s->cur.w[s->cur.nw++] = (waiter){fn, ud};
    uv_mutex_unlock(&s->cur_lock);
    if (s->loop == NULL)
        commit_sync(s);
}

void sl__lmdb_touch(sl__kv *kv)
{
    lmkv *s = (lmkv *)kv;
    if (s->read_only || s->closing)
        return;
    uv_mutex_lock(&s->cur_lock);
    s->cur.touched = 1;
    uv_mutex_unlock(&s->cur_lock);
    kick(s);
}

static void on_closed(uv_handle_t *h)
{
    unref(h->data);
}

void sl__lmdb_free(sl__kv *kv)
{
    lmkv *s = (lmkv *)kv;
    if (s == NULL)
        return;
    s->closing = 1;
    if (s->work_pending) {
        /* The loop is stopped, so the after-work callback would come too late: wait for the
         * worker itself and take its result here; the callback then only drops its reference. */
        uv_mutex_lock(&s->done_lock);
        while (!s->worker_done)
            uv_cond_wait(&s->done_cond, &s->done_lock);
        uv_mutex_unlock(&s->done_lock);
        finish_job(s);
    }
    if (!s->read_only) {
        if (batch_pending(&s->cur) || s->cur.nw > 0)
            commit_sync(s);
        int hook_rc;
        int rc = sync_now(s, &hook_rc);
        if (rc != 0)
            report(s, "final sync", rc, hook_rc);
    }
    sl__lmdb_release(s);
    if (s->loop == NULL) {
        free(s);
        return;
    }
    s->refs = 4 + s->work_pending;
    uv_close((uv_handle_t *)&s->check, on_closed);
    uv_close((uv_handle_t *)&s->idle, on_closed);
    uv_close((uv_handle_t *)&s->sync_timer, on_closed);
    uv_close((uv_handle_t *)&s->retry_timer, on_closed);
}

/* ---- the loop's handles ---------------------------------------------------------------------- */

void sl__lmdb_loop_start(lmkv *s)
{
    uv_check_init(s->loop, &s->check);
    uv_idle_init(s->loop, &s->idle);
    uv_timer_init(s->loop, &s->sync_timer);
    uv_timer_init(s->loop, &s->retry_timer);
    s->check.data = s->idle.data = s->sync_timer.data = s->retry_timer.data = s;
    /* Neither timer keeps the loop alive: a loop that has nothing else to do may end, and
     * free() syncs and commits what is left. */
    uv_unref((uv_handle_t *)&s->sync_timer);
    uv_unref((uv_handle_t *)&s->retry_timer);
    if (s->dur == SL__DURABLE_BATCH && !s->read_only)
        uv_timer_start(&s->sync_timer, on_sync_timer, s->batch_ms, s->batch_ms);
}
