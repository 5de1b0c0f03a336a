/* What the LMDB table store's two files share (lmdb.c: open, format, process lock, scan, backup;
 * lmdb_commit.c: staging, group commits, the worker and closing): the store's structure, its staged
 * changes and batches, and the functions that cross files. Threading is as described at the top of
 * lmdb_commit.c: the loop thread owns the staging side, the worker the handed-over batch. Nothing
 * here is part of any public API. */
#ifndef SLUICE_STORE_LMDB_INTERNAL_H
#define SLUICE_STORE_LMDB_INTERNAL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <uv.h>

#include "store/lmdb.h"

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

static inline int table_index(const char *name)
{
    for (size_t i = 0; name != NULL && i < NTABLES; i++)
        if (!strcmp(name, table_names[i]))
            return (int)i;
    return -1;
}

/* ---- lmdb_commit.c --------------------------------------------------------------------------- */

/* The kv operations that stage or commit (store/kv.h has their contracts). sl__lmdb_free releases
 * the store: at once without a loop, else once its handles have closed on the loop. */
int sl__lmdb_put(sl__kv *kv, const char *table, const void *key, size_t klen, const void *val,
                 size_t vlen);
int sl__lmdb_del(sl__kv *kv, const char *table, const void *key, size_t klen);
int sl__lmdb_del_prefix(sl__kv *kv, const char *table, const void *prefix, size_t plen);
void sl__lmdb_barrier(sl__kv *kv, sl__kv_done_fn fn, void *ud);
void sl__lmdb_touch(sl__kv *kv);
void sl__lmdb_free(sl__kv *kv);

/* Doubles the map (under txn_lock): 0 or an LMDB code, MDB_MAP_FULL past the limit. */
int sl__lmdb_grow_map(lmkv *s, int may_wait);
/* The map size now (it may have grown). */
size_t sl__lmdb_map_size(lmkv *s);
/* Frees a list of staged changes (NULL: nothing). */
void sl__lmdb_ops_free(op *o);
/* Opens the store's handles on s->loop (and in BATCH mode starts the periodic sync), once the
 * store is open. */
void sl__lmdb_loop_start(lmkv *s);

/* ---- lmdb.c ---------------------------------------------------------------------------------- */

/* Closes the environment and the process lock and frees what s owns, but not s itself. */
void sl__lmdb_release(lmkv *s);

#endif
