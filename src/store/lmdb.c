/* The LMDB table store (store/kv.h): sluice's durable state in one LMDB environment per data
 * directory, one named database per table.
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
 * - Format. The "meta" table holds "format" = "1", written when the store is created; a newer
 *   stored version (or not a number) is SL_EFORMAT. A process lock (flock on DIR/sluiced.lock,
 *   holding the pid) keeps a second sluiced out; read-only opens (the CLI's backup) skip it.
 *   mdb_reader_check at open clears reader slots of crashed processes.
 * - Closing. free() waits for a job in flight, commits what is staged on the caller's thread,
 *   runs the hooks, syncs and closes; its handles then close on the loop, which frees the rest.
 *   If that last commit fails its changes are reported and dropped (their barriers got
 *   SL_ESTORAGE): there is no later commit to keep them for. */
#include "store/lmdb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FORMAT_VERSION 1
#define DEFAULT_MAP ((size_t)64 << 20)
#define MAP_MAX ((size_t)1 << 40) /* past 1 TiB a full map is a failure, not a reason to grow */
#define RETRY_MS 1000
#define KEY_MAX 511 /* LMDB's default key limit (mdb_env_get_maxkeysize) */

static const char *const table_names[] = {SL__KV_TABLE_NAMES};
#define NTABLES (sizeof table_names / sizeof table_names[0])

enum { OP_PUT, OP_DEL, OP_DEL_PREFIX };
enum { JOB_NONE, JOB_COMMIT, JOB_SYNC };

/* One staged change; key then value in data. A singly linked list keeps a failed log cheap to put
 * back in front of the next batch (no allocation when the disk is full). */
typedef struct op {
    struct op *next;
    unsigned char kind, table;
    size_t klen, vlen;
    unsigned char data[];
} op;

typedef struct waiter {
    sl__kv_done_fn fn;
    void *ud;
} waiter;

typedef struct batch {
    op *head, *last;
    size_t n;
    waiter *w;
    size_t nw, wcap;
    int touched; /* touch(): commit (and run the hooks) although nothing is staged */
} batch;

typedef struct hook {
    int (*fn)(void *ud);
    void *ud;
} hook;

typedef struct lmkv {
    sl__kv base;
    const sl__logsink *log; /* borrowed; NULL: stderr */
    MDB_env *env;
    MDB_txn *volatile opening; /* probe_tables' transaction and cursor while it runs */
    MDB_cursor *volatile probing;
    MDB_dbi dbi[NTABLES];
    unsigned char have[NTABLES]; /* the table exists (a read-only open of an older store) */
    char *dir;
    int lockfd;
    int read_only;
    sl__durability dur;
    unsigned batch_ms;
    unsigned gather_us; /* fixed gathering wait; 0: adaptive */
    hook *hooks;
    size_t nhooks;
    uv_rwlock_t txn_lock; /* read: scan, backup; write: a map resize */

    /* Loop thread. */
    uv_loop_t *loop;
    uv_check_t check;
    uv_idle_t idle; /* only there to keep the poll from blocking while a batch waits */
    uv_timer_t sync_timer, retry_timer;
    int armed, backoff, sync_due, closing, refs;
    uv_mutex_t cur_lock; /* cur, while a commit job may take it over (gathering) */
    batch cur;
    unsigned long since_sync; /* commits not yet fsynced (BATCH) */
    sl__lmdb_stats stats;

    /* The job handed to the thread pool; fields written by the worker are read after it ends. */
    uv_work_t work;
    int job, work_pending;
    batch jb;
    int job_rc, job_hook;
    size_t job_map;
    uint64_t job_ns;  /* the commit's (or the sync's) time on the thread pool */
    uint64_t last_ns; /* the worker's: the last commit's time and how many barriers it served */
    size_t last_nw;
    off_t written_to; /* the worker's: the data file is written (zeros past LMDB's pages) to here */
    uv_mutex_t done_lock;
    uv_cond_t done_cond;
    int worker_done;
} lmkv;

/* ---- names ----------------------------------------------------------------------------------- */

const char *sl__durability_name(sl__durability d)
{
    switch (d) {
    case SL__DURABLE_SYNC:
        return "sync";
    case SL__DURABLE_BATCH:
        return "batch";
    case SL__DURABLE_NONE:
        return "none";
    }
    return "?";
}

int sl__durability_parse(const char *s, sl__durability *out)
{
    static const sl__durability all[] = {SL__DURABLE_SYNC, SL__DURABLE_BATCH, SL__DURABLE_NONE};
    for (size_t i = 0; s != NULL && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, sl__durability_name(all[i]))) {
            *out = all[i];
            return SL_OK;
        }
    return SL_EINVAL;
}

static int table_index(const char *name)
{
    for (size_t i = 0; name != NULL && i < NTABLES; i++)
        if (!strcmp(name, table_names[i]))
            return (int)i;
    return -1;
}

/* ---- batches --------------------------------------------------------------------------------- */

static void ops_free(op *o)
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
static int grow_map(lmkv *s, int may_wait)
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
        if ((rc = grow_map(s, may_wait)) != 0)
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

static size_t map_size_now(lmkv *s)
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
        ops_free(b->head);
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
    s->job_map = map_size_now(s);
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
    s->stats.map_size = map_size_now(s);
    settle_commit(s, &b, rc, hook_rc);
}

/* ---- the kv operations ------------------------------------------------------------------------
 */

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

static int lm_put(sl__kv *kv, const char *table, const void *key, size_t klen, const void *val,
                  size_t vlen)
{
    return stage(kv, OP_PUT, table, key, klen, val, vlen);
}

static int lm_del(sl__kv *kv, const char *table, const void *key, size_t klen)
{
    return stage(kv, OP_DEL, table, key, klen, NULL, 0);
}

static int lm_del_prefix(sl__kv *kv, const char *table, const void *prefix, size_t plen)
{
    return stage(kv, OP_DEL_PREFIX, table, prefix, plen, NULL, 0);
}

/* Begins a read transaction. A read-only opener follows a map grown by the writer process. */
static int begin_read(lmkv *s, MDB_txn **txn)
{
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED && (rc = mdb_env_set_mapsize(s->env, 0)) == 0)
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    return rc;
}

/* LMDB keeps no checksums: a damaged page can send it through a wild pointer while it reads. A
 * fault inside LMDB during a scan (loading at start) ends that scan with SL_EFORMAT rather than
 * the process; a fault anywhere else (the scan's callback included) goes to the handler that was
 * there before, so a real bug still crashes where it is. */
static _Thread_local sigjmp_buf *scan_guard;
static struct sigaction prev_segv, prev_bus;

static void on_fault(int sig)
{
    if (scan_guard)
        siglongjmp(*scan_guard, sig);
    /* Not ours: put the previous handler back; the faulting instruction runs again under it. */
    sigaction(sig, sig == SIGSEGV ? &prev_segv : &prev_bus, NULL);
}

/* LMDB's own consistency checks fail on a damaged page by aborting: inside a guarded read that is
 * the same damage as a fault. Outside one, LMDB goes on to print and abort as it would. */
static void on_assert(MDB_env *env, const char *msg)
{
    (void)env;
    (void)msg;
    if (scan_guard)
        siglongjmp(*scan_guard, SIGABRT);
}

static void guard_install(void)
{
    struct sigaction fault = {.sa_handler = on_fault};
    sigemptyset(&fault.sa_mask);
    sigaction(SIGSEGV, &fault, &prev_segv);
    sigaction(SIGBUS, &fault, &prev_bus);
}

static void guard_remove(void)
{
    sigaction(SIGSEGV, &prev_segv, NULL);
    sigaction(SIGBUS, &prev_bus, NULL);
}

static int guarded_get(sigjmp_buf *jb, MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op how)
{
    scan_guard = jb;
    int rc = mdb_cursor_get(c, k, v, how);
    scan_guard = NULL;
    return rc;
}

static int lm_scan(sl__kv *kv, const char *table, const void *prefix, size_t plen,
                   sl__kv_scan_fn fn, void *ud)
{
    lmkv *s = (lmkv *)kv;
    int t = table_index(table);
    if (t < 0 || fn == NULL || plen > KEY_MAX || (plen > 0 && prefix == NULL))
        return SL_EINVAL;
    if (!s->have[t])
        return SL_OK;
    uv_rwlock_rdlock(&s->txn_lock);
    MDB_txn *volatile txn = NULL;
    MDB_cursor *volatile c = NULL;
    volatile int result = SL_OK;
    guard_install();
    sigjmp_buf jb;
    int rc = 0;
    if (sigsetjmp(jb, 1) != 0) {
        scan_guard = NULL; /* the cursor and the read transaction are only freed below */
        result = SL_EFORMAT;
        sl__logsink_printf(s->log, SL__SINK_ERROR,
                           "store: table %s is damaged (LMDB read a page that is not one)", table);
    } else {
        MDB_txn *tx = NULL;
        MDB_cursor *cu = NULL;
        rc = begin_read(s, &tx);
        txn = tx;
        if (rc == 0) {
            rc = mdb_cursor_open(tx, s->dbi[t], &cu);
            c = cu;
        }
        if (rc == 0) {
            MDB_val k = {plen, (void *)prefix}, v;
            rc = guarded_get(&jb, cu, &k, &v, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
            while (rc == 0 && k.mv_size >= plen &&
                   (plen == 0 || memcmp(k.mv_data, prefix, plen) == 0)) {
                if ((result = fn(ud, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != SL_OK)
                    break;
                rc = guarded_get(&jb, cu, &k, &v, MDB_NEXT);
            }
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
    }
    guard_remove();
    if (c != NULL)
        mdb_cursor_close(c);
    if (txn != NULL)
        mdb_txn_abort(txn);
    uv_rwlock_rdunlock(&s->txn_lock);
    if (result != SL_OK)
        return result;
    if (rc != 0) {
        sl__logsink_printf(s->log, SL__SINK_ERROR, "store: reading table %s failed: %s", table,
                           mdb_strerror(rc));
        return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ? SL_EFORMAT : SL_EIO;
    }
    return SL_OK;
}

static void lm_barrier(sl__kv *kv, sl__kv_done_fn fn, void *ud)
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

static void lm_touch(sl__kv *kv)
{
    lmkv *s = (lmkv *)kv;
    if (s->read_only || s->closing)
        return;
    uv_mutex_lock(&s->cur_lock);
    s->cur.touched = 1;
    uv_mutex_unlock(&s->cur_lock);
    kick(s);
}

static void release(lmkv *s)
{
    if (s->env != NULL)
        mdb_env_close(s->env);
    if (s->lockfd >= 0)
        close(s->lockfd); /* releases the flock */
    uv_rwlock_destroy(&s->txn_lock);
    uv_mutex_destroy(&s->done_lock);
    uv_cond_destroy(&s->done_cond);
    uv_mutex_destroy(&s->cur_lock);
    ops_free(s->cur.head);
    free(s->cur.w);
    free(s->hooks);
    free(s->dir);
}

static void on_closed(uv_handle_t *h)
{
    unref(h->data);
}

static void lm_free(sl__kv *kv)
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
    release(s);
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

static const sl__kv_ops lmdb_ops = {
    .name = "lmdb",
    .free = lm_free,
    .put = lm_put,
    .del = lm_del,
    .del_prefix = lm_del_prefix,
    .scan = lm_scan,
    .barrier = lm_barrier,
    .touch = lm_touch,
};

/* ---- open ------------------------------------------------------------------------------------ */

/* Takes DIR/sluiced.lock for this process and writes the pid into it. */
static int take_lock(lmkv *s, sl_status *st)
{
    char path[4096], buf[32];
    snprintf(path, sizeof path, "%s/sluiced.lock", s->dir);
    s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lockfd < 0)
        return sl_status_set(st, SL_EIO, "cannot open %s: %s", path, strerror(errno));
    if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e != EWOULDBLOCK)
            return sl_status_set(st, SL_EIO, "cannot lock %s: %s", path, strerror(e));
        ssize_t n = pread(s->lockfd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        long pid = strtol(buf, NULL, 10);
        if (pid > 0)
            return sl_status_set(st, SL_EUNAVAIL,
                                 "data directory %s is in use by another sluiced (pid %ld)", s->dir,
                                 pid);
        return sl_status_set(st, SL_EUNAVAIL, "data directory %s is in use by another sluiced",
                             s->dir);
    }
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(s->lockfd, 0) != 0 || pwrite(s->lockfd, buf, (size_t)n, 0) != n)
        return sl_status_set(st, SL_EIO, "cannot write %s: %s", path, strerror(errno));
    return SL_OK;
}

/* Checks the stored format version in an open transaction: 0 when absent (*found 0), else
 * SL_OK or SL_EFORMAT. */
static int check_format(lmkv *s, MDB_txn *txn, int *found, sl_status *st)
{
    MDB_val k = {6, (void *)"format"}, v;
    int rc = mdb_get(txn, s->dbi[0], &k, &v);
    *found = rc == 0;
    if (rc == MDB_NOTFOUND)
        return SL_OK;
    if (rc != 0)
        return sl_status_set(st, SL_EIO, "cannot read the store in %s: %s", s->dir,
                             mdb_strerror(rc));
    unsigned long ver = 0;
    int ok = v.mv_size > 0 && v.mv_size <= 9;
    for (size_t i = 0; ok && i < v.mv_size; i++) {
        unsigned char c = ((const unsigned char *)v.mv_data)[i];
        ok = c >= '0' && c <= '9';
        ver = ver * 10 + (unsigned long)(c - '0');
    }
    if (!ok || ver == 0)
        return sl_status_set(st, SL_EFORMAT,
                             "data directory %s has an unreadable store format version; this "
                             "build reads format %d",
                             s->dir, FORMAT_VERSION);
    if (ver > FORMAT_VERSION)
        return sl_status_set(st, SL_EFORMAT,
                             "data directory %s has store format %lu, newer than format %d that "
                             "this build reads: run a newer sluiced",
                             s->dir, ver, FORMAT_VERSION);
    return SL_OK;
}

static int open_error(lmkv *s, int rc, const char *what, sl_status *st)
{
    if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE)
        return sl_status_set(st, SL_EFORMAT, "%s/data.mdb is not a sluice LMDB store (%s)", s->dir,
                             mdb_strerror(rc));
    if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND)
        return sl_status_set(st, SL_EFORMAT,
                             "%s/data.mdb is damaged (%s): restore it from a backup", s->dir,
                             mdb_strerror(rc));
    if (rc == ENOMEM)
        return sl_status_set(st, SL_ENOMEM, "%s %s: %s", what, s->dir, mdb_strerror(rc));
    return sl_status_set(st, SL_EIO, "%s %s: %s", what, s->dir, mdb_strerror(rc));
}

/* Reads what opening the tables will read (the main database's entries for every table, the
 * format record) in a read-only transaction, under the fault guard: damage found there ends the
 * open cleanly, as aborting a read-only transaction is always safe, which aborting a write
 * transaction LMDB failed inside is not. Returns an LMDB code. */
static int probe_tables(lmkv *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    s->opening = txn;
    /* LMDB's own two databases first: the free-page list (every later commit rewrites it) and
     * the table directory, entry by entry. */
    for (MDB_dbi d = 0; rc == 0 && d < 2; d++) {
        MDB_cursor *c;
        MDB_val k, v;
        if ((rc = mdb_cursor_open(txn, d, &c)) != 0)
            break;
        s->probing = c;
        while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0)
            ;
        s->probing = NULL;
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    for (size_t i = 0; rc == 0 && i < NTABLES; i++) {
        MDB_dbi dbi;
        rc = mdb_dbi_open(txn, table_names[i], 0, &dbi);
        if (rc == 0 && i == 0) {
            MDB_val k = {6, (void *)"format"}, v;
            rc = mdb_get(txn, dbi, &k, &v);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    mdb_txn_abort(txn);
    s->opening = NULL;
    return rc;
}

/* Opens every table (creating them and the format record in a writable store). */
static int open_tables(lmkv *s, sl_status *st)
{
    for (;;) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &txn);
        if (rc != 0)
            return open_error(s, rc, "cannot read the store in", st);

        for (size_t i = 0; rc == 0 && i < NTABLES; i++) {
            rc = mdb_dbi_open(txn, table_names[i], s->read_only ? 0 : MDB_CREATE, &s->dbi[i]);
            s->have[i] = rc == 0;
            if (rc == MDB_NOTFOUND && s->read_only)
                rc = 0; /* a table this store never had: empty */
        }
        int found = 0, r = SL_OK;
        if (rc == 0 && s->have[0])
            r = check_format(s, txn, &found, st);
        if (rc == 0 && r == SL_OK && !found && !s->read_only) {
            char ver[16];
            int n = snprintf(ver, sizeof ver, "%d", FORMAT_VERSION);
            MDB_val k = {6, (void *)"format"}, v = {(size_t)n, ver};
            rc = mdb_put(txn, s->dbi[0], &k, &v, 0);
        }
        if (rc == 0 && r == SL_OK)
            rc = mdb_txn_commit(txn); /* also what keeps the dbi handles */
        else
            mdb_txn_abort(txn);
        if (r != SL_OK)
            return r;
        if (rc == MDB_MAP_FULL && !s->read_only && (rc = grow_map(s, 1)) == 0)
            continue;
        if (rc != 0)
            return open_error(s, rc, "cannot open the tables of", st);
        return SL_OK;
    }
}

static int open_env(lmkv *s, size_t map_size, sl_status *st)
{
    int rc = mdb_env_create(&s->env);
    if (rc != 0)
        return open_error(s, rc, "cannot create an LMDB environment for", st);
    mdb_env_set_maxdbs(s->env, 16);
    mdb_env_set_mapsize(s->env, map_size);
    mdb_env_set_assert(s->env, on_assert);
    unsigned flags = MDB_NOTLS;
    if (s->dur != SL__DURABLE_SYNC)
        flags |= MDB_NOSYNC;
    if (s->read_only)
        flags |= MDB_RDONLY;
    if ((rc = mdb_env_open(s->env, s->dir, flags, 0600)) != 0) {
        mdb_env_close(s->env); /* LMDB: a failed open still needs its handle closed */
        s->env = NULL;
        if (rc == ENOENT && s->read_only)
            return sl_status_set(st, SL_EIO, "there is no store in %s (%s)", s->dir, strerror(rc));
        return open_error(s, rc, "cannot open the store in", st);
    }
    /* LMDB reads pages through a map of the file and trusts the meta page's last page number: a
     * truncated data.mdb would be read past its end, which is SIGBUS, not an error code. */
    MDB_envinfo ei;
    MDB_stat ms;
    mdb_filehandle_t fd;
    struct stat sb;
    if (mdb_env_info(s->env, &ei) == 0 && mdb_env_stat(s->env, &ms) == 0 &&
        mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &sb) == 0 &&
        (uint64_t)sb.st_size < ((uint64_t)ei.me_last_pgno + 1) * ms.ms_psize)
        return sl_status_set(st, SL_EFORMAT,
                             "%s/data.mdb is truncated (%llu bytes, its store needs %llu): "
                             "restore it from a backup",
                             s->dir, (unsigned long long)sb.st_size,
                             ((unsigned long long)ei.me_last_pgno + 1) * ms.ms_psize);
    int dead = 0;
    if (mdb_reader_check(s->env, &dead) == 0 && dead > 0)
        sl__logsink_printf(s->log, SL__SINK_WARN,
                           "store: cleared %d stale reader slot%s of crashed processes in %s", dead,
                           dead == 1 ? "" : "s", s->dir);
    return SL_OK;
}

static int make_dir(const char *dir, sl_status *st)
{
    if (mkdir(dir, 0700) == 0)
        return SL_OK;
    int e = errno;
    struct stat sb;
    if (e == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        return SL_OK;
    if (e == EEXIST)
        e = ENOTDIR;
    return sl_status_set(st, SL_EIO, "cannot create the data directory %s: %s", dir, strerror(e));
}

int sl__lmdb_open(sl__kv **out, const sl__lmdb_opts *o, sl_status *st)
{
    *out = NULL;
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0' || strlen(o->dir) > 4000 ||
        (unsigned)o->durability > SL__DURABLE_NONE)
        return sl_status_set(st, SL_EINVAL, "invalid store options");
    lmkv *s = calloc(1, sizeof *s);
    if (s == NULL || (s->dir = strdup(o->dir)) == NULL) {
        free(s);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    s->log = o->log;
    s->base.ops = &lmdb_ops;
    s->lockfd = -1;
    s->read_only = o->read_only;
    s->dur = o->durability;
    s->batch_ms = o->batch_ms ? o->batch_ms : 1000;
    s->gather_us = o->gather_us;
    s->loop = o->loop;
    if (uv_rwlock_init(&s->txn_lock) != 0 || uv_mutex_init(&s->done_lock) != 0 ||
        uv_cond_init(&s->done_cond) != 0 || uv_mutex_init(&s->cur_lock) != 0) {
        /* Only at a resource limit; the partly made locks are not worth unwinding one by one. */
        free(s->dir);
        free(s);
        return sl_status_set(st, SL_ENOMEM, "cannot create the store's locks");
    }
    int rc = SL_OK;
    if (!s->read_only && (rc = make_dir(s->dir, st)) == SL_OK)
        rc = take_lock(s, st);
    if (rc == SL_OK)
        rc = open_env(s, o->map_size ? o->map_size : DEFAULT_MAP, st);
    if (rc == SL_OK) {
        /* Opening the tables reads the store's root pages: probed first under the guard, like a
         * scan (see on_fault). */
        guard_install();
        sigjmp_buf jb;
        if (sigsetjmp(jb, 1) == 0) {
            scan_guard = &jb;
            int mrc = probe_tables(s);
            scan_guard = NULL;
            if (mrc == MDB_CORRUPTED || mrc == MDB_PAGE_NOTFOUND)
                rc = open_error(s, mrc, "cannot read the store in", st);
        } else {
            scan_guard = NULL;
            if (s->probing)
                mdb_cursor_close(s->probing);
            if (s->opening)
                mdb_txn_abort(s->opening);
            s->probing = NULL;
            s->opening = NULL;
            rc = sl_status_set(st, SL_EFORMAT,
                               "%s/data.mdb is damaged (LMDB read a page that is not one): "
                               "restore it from a backup",
                               s->dir);
        }
        guard_remove();
    }
    if (rc == SL_OK)
        rc = open_tables(s, st);
    if (rc != SL_OK) {
        release(s);
        free(s);
        return rc;
    }
    s->stats.map_size = map_size_now(s);
    if (s->loop != NULL) {
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
    *out = &s->base;
    return SL_OK;
}

/* ---- extras ---------------------------------------------------------------------------------- */

int sl__lmdb_add_sync_hook(sl__kv *kv, int (*fn)(void *ud), void *ud)
{
    lmkv *s = (lmkv *)kv;
    if (fn == NULL)
        return SL_EINVAL;
    hook *h = realloc(s->hooks, (s->nhooks + 1) * sizeof *h);
    if (h == NULL)
        return SL_ENOMEM;
    s->hooks = h;
    s->hooks[s->nhooks++] = (hook){fn, ud};
    return SL_OK;
}

/* 1 when dir holds nothing but . and .., 0 when it holds something, -1 (errno) when unreadable. */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

int sl__lmdb_backup(sl__kv *kv, const char *dest, sl_status *st)
{
    lmkv *s = (lmkv *)kv;
    if (dest == NULL || dest[0] == '\0' || strlen(dest) > 4000)
        return sl_status_set(st, SL_EINVAL, "invalid backup destination");
    if (mkdir(dest, 0700) != 0) {
        int e = errno, empty = e == EEXIST ? dir_empty(dest) : -1;
        if (e == EEXIST && empty == 0)
            return sl_status_set(st, SL_EINVAL, "backup destination %s is not empty", dest);
        if (empty < 0)
            return sl_status_set(st, SL_EIO, "cannot create the backup directory %s: %s", dest,
                                 strerror(e == EEXIST ? errno : e));
    }
    uv_rwlock_rdlock(&s->txn_lock); /* the copy's read transaction: no resize meanwhile */
    int rc = mdb_env_copy2(s->env, dest, MDB_CP_COMPACT);
    if (rc == MDB_MAP_RESIZED && (rc = mdb_env_set_mapsize(s->env, 0)) == 0)
        rc = mdb_env_copy2(s->env, dest, MDB_CP_COMPACT);
    uv_rwlock_rdunlock(&s->txn_lock);
    if (rc != 0)
        return sl_status_set(st, SL_EIO, "backup of %s to %s failed: %s", s->dir, dest,
                             mdb_strerror(rc));
    /* The copy is only a backup once it is on disk, and as private as the store (LMDB creates
     * it under the umask; it holds API key hashes and grants). */
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dest);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return sl_status_set(st, SL_EIO, "cannot sync the backup %s: %s", path, strerror(e));
    }
    close(fd);
    return SL_OK;
}

void sl__lmdb_stats_get(sl__kv *kv, sl__lmdb_stats *out)
{
    *out = ((lmkv *)kv)->stats;
}
