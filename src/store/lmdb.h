/* The LMDB table store: the only durable implementation of store/kv.h. One LMDB environment per
 * data directory, one named database per table, group commits on libuv's thread pool, a process
 * lock so two sluiced never share a directory, and online compacting backups. The design (staging,
 * group commit, failures, durability modes, threading) is described at the top of lmdb_commit.c.
 *
 * Ownership: sl__lmdb_open's *out belongs to the caller and is released with (*out)->ops->free.
 * With a loop, free closes the store's handles on that loop: run the loop once more
 * (uv_run(loop, UV_RUN_NOWAIT)) before uv_loop_close, like every other loop-bound object here. */
#ifndef SLUICE_STORE_LMDB_H
#define SLUICE_STORE_LMDB_H

#include "core/logsink.h"
#include <uv.h>

#include "core/metrics.h" /* sl__histo */
#include "store/kv.h"

typedef enum { SL__DURABLE_SYNC = 0, SL__DURABLE_BATCH, SL__DURABLE_NONE } sl__durability;

typedef struct sl__lmdb_opts {
    const char *dir;           /* data directory; created (0700) when missing */
    uv_loop_t *loop;           /* NULL: barrier() commits synchronously on the caller's thread */
    sl__durability durability; /* SYNC: fsync in every group commit before barriers complete;
                                  BATCH: commits without fsync, barriers complete after the commit,
                                  an fsync at most every batch_ms (like Redis appendfsync everysec);
                                  NONE: never fsync except at close */
    unsigned batch_ms;         /* 0: 1000 */
    size_t map_size;           /* initial map size; 0: 64 MiB. Grows (doubles) on MDB_MAP_FULL */
    int read_only;             /* open for reading/backup (the CLI), without the process lock */
    const sl__logsink *log;    /* messages for the operator, also from the commit thread
                                  (borrowed, outlives the store); NULL: stderr */
    unsigned gather_us;        /* SYNC: the commit thread's wait for more writes before each
                                  commit. 0: adaptive (a quarter of the last commit's time, once
                                  the last commit served two barriers or more); tests fix it */
} sl__lmdb_opts;

/* Static strings: "sync" | "batch" | "none" ("?" for anything else). */
const char *sl__durability_name(sl__durability d);
/* SL_OK with *out set, or SL_EINVAL for anything but "sync", "batch", "none". */
int sl__durability_parse(const char *s, sl__durability *out);

/* Opens (creating) the store. Errors with a clear message in st: SL_EUNAVAIL when another sluiced
 * holds the directory ("data directory D is in use by another sluiced (pid N)"), SL_EFORMAT when
 * the stored format version is newer than this build's or the files are not an LMDB store, SL_EIO
 * for permissions and other system errors (naming the path and strerror), SL_ENOMEM. A read_only
 * store refuses put/del/del_prefix with SL_EINVAL and needs an existing store. *out released with
 * (*out)->ops->free(*out). */
int sl__lmdb_open(sl__kv **out, const sl__lmdb_opts *o, sl_status *st);

/* A function run on the commit thread before each commit's sync (the audit log's fdatasync), so
 * that its records are durable with the same group commit: in SYNC mode before every commit, in
 * BATCH mode before each periodic fsync, in every mode before the final sync at free. Returns
 * SL_OK or an error that fails the commit (or sync). Add hooks right after open, before anything
 * is staged: the hook list is read by the commit thread without a lock. SL_OK or SL_ENOMEM. */
int sl__lmdb_add_sync_hook(sl__kv *kv, int (*fn)(void *ud), void *ud);

/* A consistent online copy with compaction (mdb_env_copy2 + MDB_CP_COMPACT) into the empty or new
 * directory dest (created 0700); restoring is starting sluiced on the copy. Works on a store
 * another process has open (open it read_only). Runs on the caller's thread until the copy is
 * complete. SL_OK, SL_EINVAL (dest not empty), SL_EIO (with the path and reason in st). */
int sl__lmdb_backup(sl__kv *kv, const char *dest, sl_status *st);

/* Counters for metrics/tests: successful commits, fsyncs done, failed commits, map size now. */
typedef struct sl__lmdb_stats {
    unsigned long commits, syncs, failed;
    size_t map_size;
    /* seconds each job that synced took on the thread pool (a SYNC-mode commit, its write
     * and fsync; a BATCH-mode periodic fsync) */
    sl__histo sync_seconds;
} sl__lmdb_stats;
void sl__lmdb_stats_get(sl__kv *kv, sl__lmdb_stats *out);

#endif
