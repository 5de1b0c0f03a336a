/* The LMDB table store (store/kv.h): sluice's durable state in one LMDB environment per data
 * directory, one named database per table. This file opens the store (format, process lock,
 * tables), reads it (scan, under a guard against damaged pages) and backs it up; staging and group
 * commits are in lmdb_commit.c, with their design at its top.
 *
 * Format. The "meta" table holds "format" = "1", written when the store is created; a newer
 * stored version (or not a number) is SL_EFORMAT. A process lock (flock on DIR/sluiced.lock,
 * holding the pid) keeps a second sluiced out; read-only opens (the CLI's backup) skip it.
 * mdb_reader_check at open clears reader slots of crashed processes. */
#include "store/lmdb_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_VERSION 1
#define DEFAULT_MAP ((size_t)64 << 20)

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

void sl__lmdb_release(lmkv *s)
{
    if (s->env != NULL)
        mdb_env_close(s->env);
    if (s->lockfd >= 0)
        close(s->lockfd); /* releases the flock */
    uv_rwlock_destroy(&s->txn_lock);
    uv_mutex_destroy(&s->done_lock);
    uv_cond_destroy(&s->done_cond);
    uv_mutex_destroy(&s->cur_lock);
    sl__lmdb_ops_free(s->cur.head);
    free(s->cur.w);
    free(s->hooks);
    free(s->dir);
}
static const sl__kv_ops lmdb_ops = {
    .name = "lmdb",
    .free = sl__lmdb_free,
    .put = sl__lmdb_put,
    .del = sl__lmdb_del,
    .del_prefix = sl__lmdb_del_prefix,
    .scan = lm_scan,
    .barrier = sl__lmdb_barrier,
    .touch = sl__lmdb_touch,
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
        if (rc == MDB_MAP_FULL && !s->read_only && (rc = sl__lmdb_grow_map(s, 1)) == 0)
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
        sl__lmdb_release(s);
        free(s);
        return rc;
    }
    s->stats.map_size = sl__lmdb_map_size(s);
    if (s->loop != NULL)
        sl__lmdb_loop_start(s);
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
