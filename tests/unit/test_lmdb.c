/* The LMDB table store (store/lmdb.c) on a real libuv loop: put/del/del_prefix and scan order and
 * prefixes; barrier ordering (never before an earlier stage; registered during a commit, they wait
 * for the next one); group commit (a loop turn of stages is one commit); data across close and
 * reopen, with and without a loop; durability modes and sync hooks; map growth from a tiny map;
 * stored format newer than the build, a garbage data.mdb, a second opener, a directory that cannot
 * be created or opened; a full disk (a 1 MiB tmpfs): errors for the failed batch, nothing
 * acknowledged lost, and the retry once there is room; a failing hook's retry; online backup, also
 * from a read-only opener in another process; a barrier inside a scan callback without a loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/lmdb.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct fixture {
    char root[64]; /* a fresh temporary directory */
    char dir[192]; /* root/store */
    uv_loop_t loop;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->root, sizeof f->root, "/tmp/sluice-lmdb-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->dir, sizeof f->dir, "%s/store", f->root);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char mnt[128];
    snprintf(mnt, sizeof mnt, "%s/mnt", f->root);
    umount2(mnt, MNT_DETACH); /* test_disk_full's tmpfs, if it failed half-way */
    rm_rf(f->root);
    free(f);
    return 0;
}

static sl__kv *open_kv(const char *dir, uv_loop_t *loop, sl__durability d, size_t map)
{
    sl__lmdb_opts o = {.dir = dir, .loop = loop, .durability = d, .map_size = map};
    sl_status st;
    sl_status_clear(&st);
    sl__kv *kv = NULL;
    int rc = sl__lmdb_open(&kv, &o, &st);
    if (rc != SL_OK)
        fail_msg("open %s: %s", dir, st.message);
    return kv;
}

static int open_rc(const sl__lmdb_opts *o, sl_status *st)
{
    sl__kv *kv = NULL;
    sl_status_clear(st);
    int rc = sl__lmdb_open(&kv, o, st);
    if (kv)
        kv->ops->free(kv);
    return rc;
}

/* Closes kv and lets its handles close on the loop. */
static void close_kv(sl__kv *kv, uv_loop_t *loop)
{
    kv->ops->free(kv);
    if (loop)
        uv_run(loop, UV_RUN_NOWAIT);
}

static int seq; /* completion order across barriers */

typedef struct done {
    int calls, rc, order;
} done;

static void on_done(void *ud, int rc)
{
    done *d = ud;
    d->calls++;
    d->rc = rc;
    d->order = ++seq;
}

static void keepalive_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *flag is set (a generous deadline; a timer keeps the loop from ending while
 * the store waits on its own unreferenced timers). */
static void run_until(uv_loop_t *loop, const int *flag)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, keepalive_cb, 50, 50);
    uint64_t deadline = uv_now(loop) + 30000;
    while (!*flag && uv_now(loop) < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (!*flag)
        fail_msg("the awaited event did not happen within 30 s");
}

static int put_s(sl__kv *kv, const char *table, const char *k, const char *v)
{
    return kv->ops->put(kv, table, k, strlen(k), v, strlen(v));
}

/* Collected scan results: "k=v;" for each entry. */
typedef struct collect {
    char text[65536];
    size_t n;
    size_t stop_after; /* 0: never */
} collect;

static int collect_fn(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    collect *c = ud;
    size_t used = strlen(c->text);
    snprintf(c->text + used, sizeof c->text - used, "%.*s=%.*s;", (int)klen, (const char *)key,
             (int)vlen, (const char *)val);
    c->n++;
    return c->stop_after && c->n >= c->stop_after ? SL_ELIMIT : SL_OK;
}

static const char *scan_s(sl__kv *kv, const char *table, const char *prefix, collect *c)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(kv->ops->scan(kv, table, prefix, strlen(prefix), collect_fn, c), SL_OK);
    return c->text;
}

static int count_fn(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    (*(size_t *)ud)++;
    return SL_OK;
}

static size_t count(sl__kv *kv, const char *table)
{
    size_t n = 0;
    assert_int_equal(kv->ops->scan(kv, table, "", 0, count_fn, &n), SL_OK);
    return n;
}

static void barrier_wait(sl__kv *kv, uv_loop_t *loop, int want)
{
    done d = {0};
    kv->ops->barrier(kv, on_done, &d);
    run_until(loop, &d.calls);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, want);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_durability_names(void **state)
{
    (void)state;
    sl__durability d = SL__DURABLE_NONE;
    assert_int_equal(sl__durability_parse("sync", &d), SL_OK);
    assert_int_equal(d, SL__DURABLE_SYNC);
    assert_int_equal(sl__durability_parse("batch", &d), SL_OK);
    assert_int_equal(d, SL__DURABLE_BATCH);
    assert_int_equal(sl__durability_parse("none", &d), SL_OK);
    assert_int_equal(d, SL__DURABLE_NONE);
    assert_int_equal(sl__durability_parse("SYNC", &d), SL_EINVAL);
    assert_int_equal(sl__durability_parse("", &d), SL_EINVAL);
    assert_int_equal(sl__durability_parse(NULL, &d), SL_EINVAL);
    assert_string_equal(sl__durability_name(SL__DURABLE_SYNC), "sync");
    assert_string_equal(sl__durability_name(SL__DURABLE_BATCH), "batch");
    assert_string_equal(sl__durability_name(SL__DURABLE_NONE), "none");
}

static void test_put_del_scan(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    assert_string_equal(kv->ops->name, "lmdb");
    /* Out of order, with binary keys sharing prefixes. */
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "jobs/b", "2"), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "jobs/a", "1"), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "alpha", "0"), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "jobs", "j"), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "jobsx", "x"), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "zeta", "z"), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "jobs/a", "1b"), SL_OK); /* overwrite, in order */
    assert_int_equal(put_s(kv, SL__KV_ACL, "jobs/a", "acl"), SL_OK);     /* another table */
    static const char mkey[] = {'q', 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(kv->ops->put(kv, SL__KV_MESSAGES, mkey, sizeof mkey, "m", 1), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_CURSORS, "empty", ""), SL_OK); /* empty value */
    barrier_wait(kv, &f->loop, SL_OK);

    collect c;
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "", &c),
                        "alpha=0;jobs=j;jobs/a=1b;jobs/b=2;jobsx=x;zeta=z;");
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "jobs/", &c), "jobs/a=1b;jobs/b=2;");
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "jobs", &c),
                        "jobs=j;jobs/a=1b;jobs/b=2;jobsx=x;");
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "nothing", &c), "");
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "zz", &c), "");
    assert_string_equal(scan_s(kv, SL__KV_ACL, "", &c), "jobs/a=acl;");
    assert_string_equal(scan_s(kv, SL__KV_CURSORS, "", &c), "empty=;");
    assert_int_equal(count(kv, SL__KV_MESSAGES), 1);
    assert_int_equal(count(kv, SL__KV_REVOCATIONS), 0);

    /* A scan callback's non-OK result stops the scan and is its result. */
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(kv->ops->scan(kv, SL__KV_CHANNELS, "", 0, collect_fn, &c), SL_ELIMIT);
    assert_string_equal(c.text, "alpha=0;jobs=j;");

    /* Deletes: a key, a missing key, a prefix (not the key equal to a shorter prefix). */
    assert_int_equal(kv->ops->del(kv, SL__KV_CHANNELS, "alpha", 5), SL_OK);
    assert_int_equal(kv->ops->del(kv, SL__KV_CHANNELS, "missing", 7), SL_OK);
    assert_int_equal(kv->ops->del_prefix(kv, SL__KV_CHANNELS, "jobs/", 5), SL_OK);
    assert_int_equal(kv->ops->del_prefix(kv, SL__KV_CHANNELS, "nope", 4), SL_OK);
    /* Staged changes are applied in order: put after del_prefix survives. */
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "jobs/c", "3"), SL_OK);
    /* Staged writes are not seen by scan until committed. */
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "jobs/", &c), "jobs/a=1b;jobs/b=2;");
    barrier_wait(kv, &f->loop, SL_OK);
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "", &c), "jobs=j;jobs/c=3;jobsx=x;zeta=z;");
    assert_string_equal(scan_s(kv, SL__KV_ACL, "", &c), "jobs/a=acl;");

    /* Many keys under one prefix go in one del_prefix; plen 0 empties the table. */
    char k[32];
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "many/%04d", i);
        assert_int_equal(put_s(kv, SL__KV_CLAIMS, k, "v"), SL_OK);
    }
    assert_int_equal(put_s(kv, SL__KV_CLAIMS, "manz", "v"), SL_OK);
    barrier_wait(kv, &f->loop, SL_OK);
    assert_int_equal(count(kv, SL__KV_CLAIMS), 501);
    assert_int_equal(kv->ops->del_prefix(kv, SL__KV_CLAIMS, "many/", 5), SL_OK);
    barrier_wait(kv, &f->loop, SL_OK);
    assert_string_equal(scan_s(kv, SL__KV_CLAIMS, "", &c), "manz=v;");
    assert_int_equal(kv->ops->del_prefix(kv, SL__KV_CHANNELS, "", 0), SL_OK);
    barrier_wait(kv, &f->loop, SL_OK);
    assert_int_equal(count(kv, SL__KV_CHANNELS), 0);
    assert_int_equal(count(kv, SL__KV_ACL), 1);

    /* Arguments. */
    char big[512];
    memset(big, 'k', sizeof big);
    assert_int_equal(kv->ops->put(kv, "nosuch", "a", 1, "v", 1), SL_EINVAL);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, "", 0, "v", 1), SL_EINVAL);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, big, 512, "v", 1), SL_EINVAL);
    assert_int_equal(kv->ops->del(kv, SL__KV_ACL, "", 0), SL_EINVAL);
    assert_int_equal(kv->ops->del(kv, "nosuch", "a", 1), SL_EINVAL);
    assert_int_equal(kv->ops->del_prefix(kv, "nosuch", "a", 1), SL_EINVAL);
    assert_int_equal(kv->ops->scan(kv, "nosuch", "", 0, count_fn, &(size_t){0}), SL_EINVAL);
    assert_int_equal(kv->ops->put(kv, SL__KV_ACL, big, 511, "v", 1), SL_OK);
    barrier_wait(kv, &f->loop, SL_OK);
    assert_int_equal(count(kv, SL__KV_ACL), 2);
    close_kv(kv, &f->loop);
}

/* A sync hook that, when armed, blocks the commit thread until the test opens the gate. */
typedef struct gate {
    uv_sem_t sem;
    int armed;
    int calls;
    int fail; /* > 0: fail that many calls */
} gate;

static int gate_hook(void *ud)
{
    gate *g = ud;
    g->calls++;
    if (g->armed) {
        g->armed = 0;
        uv_sem_wait(&g->sem);
    }
    if (g->fail > 0) {
        g->fail--;
        return SL_EIO;
    }
    return SL_OK;
}

typedef struct snapshot {
    sl__kv *kv;
    done *later;
    int calls, later_calls;
    unsigned long commits;
    char seen[256];
} snapshot;

static void on_first(void *ud, int rc)
{
    snapshot *s = ud;
    s->calls++;
    assert_int_equal(rc, SL_OK);
    s->later_calls = s->later->calls;
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(s->kv, &stats);
    s->commits = stats.commits;
    collect c;
    snprintf(s->seen, sizeof s->seen, "%s", scan_s(s->kv, SL__KV_CHANNELS, "", &c));
}

static void test_barrier_ordering(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    gate g = {.armed = 1};
    assert_int_equal(uv_sem_init(&g.sem, 0), 0);
    assert_int_equal(sl__lmdb_add_sync_hook(kv, gate_hook, &g), SL_OK);

    /* Nothing staged, nothing in flight: the barrier completes before returning. */
    done d0 = {0};
    kv->ops->barrier(kv, on_done, &d0);
    assert_int_equal(d0.calls, 1);
    assert_int_equal(d0.rc, SL_OK);

    done b2 = {0}, b3 = {0};
    snapshot b1 = {.kv = kv, .later = &b2};
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "a", "1"), SL_OK);
    kv->ops->barrier(kv, on_first, &b1);
    assert_int_equal(b1.calls, 0); /* something is staged: not before the commit */
    /* One loop turn hands the batch over; the commit thread now waits in the hook. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(b1.calls, 0);
    /* Staged and registered while that commit is in flight: they wait for the next one. */
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "b", "2"), SL_OK);
    kv->ops->barrier(kv, on_done, &b2);
    kv->ops->barrier(kv, on_done, &b3);
    uv_sem_post(&g.sem);
    run_until(&f->loop, &b1.calls);
    assert_int_equal(b1.later_calls, 0);
    assert_int_equal(b1.commits, 1);
    assert_string_equal(b1.seen, "a=1;"); /* its change is readable; the later one not yet */
    run_until(&f->loop, &b3.calls);
    assert_int_equal(b2.calls, 1);
    assert_int_equal(b2.rc, SL_OK);
    assert_int_equal(b3.rc, SL_OK);
    assert_true(b2.order < b3.order);
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.commits, 2);
    collect c;
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "", &c), "a=1;b=2;");

    /* A barrier registered during a commit with nothing staged after it completes with that
     * commit: everything before it is in there. No extra commit is made for it. */
    g.armed = 1;
    done b4 = {0}, b5 = {0};
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "c", "3"), SL_OK);
    kv->ops->barrier(kv, on_done, &b4);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    kv->ops->barrier(kv, on_done, &b5);
    assert_int_equal(b5.calls, 0); /* a commit is in flight: not before it ends */
    uv_sem_post(&g.sem);
    run_until(&f->loop, &b5.calls);
    assert_int_equal(b4.rc, SL_OK);
    assert_int_equal(b5.rc, SL_OK);
    assert_true(b4.order < b5.order);
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.commits, 3);
    close_kv(kv, &f->loop);
    uv_sem_destroy(&g.sem);
}

static void test_group_commit(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    enum { N = 1000 };
    static done d[N];
    memset(d, 0, sizeof d);
    char k[32];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "k%05d", i);
        assert_int_equal(put_s(kv, SL__KV_MESSAGES, k, "value"), SL_OK);
        kv->ops->barrier(kv, on_done, &d[i]);
    }
    run_until(&f->loop, &d[N - 1].calls);
    for (int i = 0; i < N; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].rc, SL_OK);
        if (i > 0)
            assert_true(d[i - 1].order < d[i].order); /* completed in registration order */
    }
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.commits, 1);
    assert_int_equal(stats.syncs, 1);
    assert_int_equal(stats.failed, 0);
    assert_int_equal(count(kv, SL__KV_MESSAGES), N);
    close_kv(kv, &f->loop);
}

/* Gathering: the commit thread waits before it begins a SYNC commit and takes over what was
 * staged meanwhile, barriers included, so both writes share one commit and one fsync. The wait
 * is fixed at 2 s here (production adapts it to the disk), far longer than the test needs to
 * stage its second write. */
static void test_gathering(void **state)
{
    fixture *f = *state;
    sl__lmdb_opts o = {
        .dir = f->dir, .loop = &f->loop, .durability = SL__DURABLE_SYNC, .gather_us = 2000000};
    sl_status st;
    sl_status_clear(&st);
    sl__kv *kv = NULL;
    assert_int_equal(sl__lmdb_open(&kv, &o, &st), SL_OK);

    done b1 = {0}, b2 = {0};
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "a", "1"), SL_OK);
    kv->ops->barrier(kv, on_done, &b1);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* hands the batch over: the worker now waits */
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "b", "2"), SL_OK);
    kv->ops->barrier(kv, on_done, &b2);
    run_until(&f->loop, &b2.calls);
    assert_int_equal(b1.calls, 1);
    assert_int_equal(b1.rc, SL_OK);
    assert_int_equal(b2.rc, SL_OK);
    assert_true(b1.order < b2.order);
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.commits, 1); /* b went into a's commit */
    assert_int_equal(stats.syncs, 1);
    collect c;
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "", &c), "a=1;b=2;");
    close_kv(kv, &f->loop);

    kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0); /* and both are on disk */
    assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "", &c), "a=1;b=2;");
    close_kv(kv, NULL);
}

static void test_reopen(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_NONE, 0);
    assert_int_equal(put_s(kv, SL__KV_ACL, "alice", "write"), SL_OK);
    barrier_wait(kv, &f->loop, SL_OK);
    /* Staged but never awaited: free commits it. */
    assert_int_equal(put_s(kv, SL__KV_ACL, "bob", "read"), SL_OK);
    close_kv(kv, &f->loop);
    struct stat sb;
    assert_int_equal(stat(f->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    /* Without a loop: barrier commits inside the call, and free commits the rest. */
    kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0);
    collect c;
    assert_string_equal(scan_s(kv, SL__KV_ACL, "", &c), "alice=write;bob=read;");
    assert_int_equal(kv->ops->del(kv, SL__KV_ACL, "alice", 5), SL_OK);
    done d = {0};
    kv->ops->barrier(kv, on_done, &d);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, SL_OK);
    assert_string_equal(scan_s(kv, SL__KV_ACL, "", &c), "bob=read;");
    assert_int_equal(put_s(kv, SL__KV_BROKER, "carol", "minter"), SL_OK);
    kv->ops->free(kv);

    kv = open_kv(f->dir, &f->loop, SL__DURABLE_BATCH, 0);
    assert_string_equal(scan_s(kv, SL__KV_ACL, "", &c), "bob=read;");
    assert_string_equal(scan_s(kv, SL__KV_BROKER, "", &c), "carol=minter;");
    assert_string_equal(scan_s(kv, SL__KV_META, "", &c), "format=1;");
    close_kv(kv, &f->loop);
}

static int count_hook(void *ud)
{
    (*(int *)ud)++;
    return SL_OK;
}

static void commit_n(sl__kv *kv, uv_loop_t *loop, int n)
{
    char k[32];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(put_s(kv, SL__KV_CHANNELS, k, "v"), SL_OK);
        barrier_wait(kv, loop, SL_OK);
    }
}

/* SYNC mode keeps the data file written some way past LMDB's pages (so commits' fdatasyncs are
 * overwrites), and LMDB reopens such a file with everything in it. */
static void test_written_ahead(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    commit_n(kv, &f->loop, 20);
    char path[512];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size >= (off_t)8 << 20);
    close_kv(kv, &f->loop);
    kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    assert_int_equal(count(kv, SL__KV_CHANNELS), 20);
    commit_n(kv, &f->loop, 30); /* k0..k19 again, then ten more */
    assert_int_equal(count(kv, SL__KV_CHANNELS), 30);
    close_kv(kv, &f->loop);
}

typedef struct wait_sync {
    sl__kv *kv;
    int reached;
} wait_sync;

static void poll_syncs(uv_timer_t *t)
{
    wait_sync *w = t->data;
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(w->kv, &stats);
    w->reached = stats.syncs > 0;
}

static void test_durability_modes(void **state)
{
    fixture *f = *state;
    sl__lmdb_stats stats;
    int hooks = 0;

    /* sync: every commit syncs, the hooks first. */
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    assert_int_equal(sl__lmdb_add_sync_hook(kv, count_hook, &hooks), SL_OK);
    commit_n(kv, &f->loop, 5);
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.commits, 5);
    assert_int_equal(stats.syncs, 5);
    assert_int_equal(hooks, 5);
    /* touch: a commit (running the hooks) with nothing staged. */
    kv->ops->touch(kv);
    done d = {0};
    kv->ops->barrier(kv, on_done, &d);
    run_until(&f->loop, &d.calls);
    assert_int_equal(d.rc, SL_OK);
    assert_int_equal(hooks, 6);
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.commits, 6);
    close_kv(kv, &f->loop);
    assert_int_equal(hooks, 7); /* and before the final sync */

    /* batch, with a period longer than the test: commits, no fsync. */
    hooks = 0;
    sl__lmdb_opts o = {
        .dir = f->dir, .loop = &f->loop, .durability = SL__DURABLE_BATCH, .batch_ms = 3600000};
    sl_status st;
    assert_int_equal(sl__lmdb_open(&kv, &o, &st), SL_OK);
    assert_int_equal(sl__lmdb_add_sync_hook(kv, count_hook, &hooks), SL_OK);
    commit_n(kv, &f->loop, 5);
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.commits, 5);
    assert_int_equal(stats.syncs, 0);
    assert_int_equal(hooks, 0);
    close_kv(kv, &f->loop);

    /* batch with a short period: the timer syncs (once the commits are done), hooks first. */
    hooks = 0;
    o.batch_ms = 20;
    assert_int_equal(sl__lmdb_open(&kv, &o, &st), SL_OK);
    assert_int_equal(sl__lmdb_add_sync_hook(kv, count_hook, &hooks), SL_OK);
    commit_n(kv, &f->loop, 3);
    wait_sync w = {.kv = kv};
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    t.data = &w;
    uv_timer_start(&t, poll_syncs, 5, 5);
    run_until(&f->loop, &w.reached);
    uv_close((uv_handle_t *)&t, NULL);
    sl__lmdb_stats_get(kv, &stats);
    assert_true(stats.syncs >= 1);
    assert_true(hooks >= 1);
    assert_int_equal(stats.commits, 3);
    close_kv(kv, &f->loop);

    /* none: never, until close. */
    hooks = 0;
    kv = open_kv(f->dir, &f->loop, SL__DURABLE_NONE, 0);
    assert_int_equal(sl__lmdb_add_sync_hook(kv, count_hook, &hooks), SL_OK);
    commit_n(kv, &f->loop, 5);
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.commits, 5);
    assert_int_equal(stats.syncs, 0);
    assert_int_equal(hooks, 0);
    close_kv(kv, &f->loop);
    assert_int_equal(hooks, 1);
}

static void test_map_growth(void **state)
{
    fixture *f = *state;
    enum { N = 3000 };
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_NONE, 64 << 10);
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.map_size, 64 << 10);
    char k[32], v[200];
    memset(v, 'v', sizeof v);
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "m%05d", i);
        assert_int_equal(kv->ops->put(kv, SL__KV_MESSAGES, k, strlen(k), v, sizeof v), SL_OK);
        if (i % 500 == 499)
            barrier_wait(kv, &f->loop, SL_OK);
    }
    barrier_wait(kv, &f->loop, SL_OK);
    sl__lmdb_stats_get(kv, &stats);
    assert_true(stats.map_size >= (size_t)N * sizeof v);
    assert_int_equal(stats.failed, 0);
    assert_int_equal(count(kv, SL__KV_MESSAGES), N);
    /* One value larger than the whole map. */
    size_t blen = 4u << 20;
    char *big = malloc(blen);
    assert_non_null(big);
    memset(big, 'b', blen);
    assert_int_equal(kv->ops->put(kv, SL__KV_MESSAGES, "big", 3, big, blen), SL_OK);
    free(big);
    barrier_wait(kv, &f->loop, SL_OK);
    close_kv(kv, &f->loop);

    /* Reopened with the tiny size asked again: the stored size wins, everything reads. */
    kv = open_kv(f->dir, NULL, SL__DURABLE_NONE, 64 << 10);
    sl__lmdb_stats_get(kv, &stats);
    assert_true(stats.map_size > blen);
    assert_int_equal(count(kv, SL__KV_MESSAGES), N + 1);
    kv->ops->free(kv);
}

static void test_format_newer(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0);
    assert_int_equal(put_s(kv, SL__KV_META, "format", "2"), SL_OK);
    kv->ops->free(kv);
    sl__lmdb_opts o = {.dir = f->dir};
    sl_status st;
    assert_int_equal(open_rc(&o, &st), SL_EFORMAT);
    assert_int_equal(st.code, SL_EFORMAT);
    assert_non_null(strstr(st.message, "format 2"));
    assert_non_null(strstr(st.message, "format 1"));
    assert_non_null(strstr(st.message, f->dir));
    o.read_only = 1;
    assert_int_equal(open_rc(&o, &st), SL_EFORMAT);

    /* Not a version at all. */
    rm_rf(f->dir);
    kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0);
    assert_int_equal(put_s(kv, SL__KV_META, "format", "one"), SL_OK);
    kv->ops->free(kv);
    o.read_only = 0;
    assert_int_equal(open_rc(&o, &st), SL_EFORMAT);
    assert_non_null(strstr(st.message, "format 1"));
}

static void test_garbage_file(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    char path[256], junk[65536];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 131 + 7);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(junk, 1, sizeof junk, fp), sizeof junk);
    fclose(fp);
    sl__lmdb_opts o = {.dir = f->dir, .loop = &f->loop};
    sl_status st;
    assert_int_equal(open_rc(&o, &st), SL_EFORMAT);
    assert_non_null(strstr(st.message, "data.mdb is not a sluice LMDB store"));
    /* A short one too. */
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite("not lmdb\n", 1, 9, fp), 9);
    fclose(fp);
    assert_int_equal(open_rc(&o, &st), SL_EFORMAT);
    o.read_only = 1;
    assert_int_equal(open_rc(&o, &st), SL_EFORMAT);
}

static void test_second_open(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    sl__lmdb_opts o = {.dir = f->dir, .loop = &f->loop};
    sl_status st;
    assert_int_equal(open_rc(&o, &st), SL_EUNAVAIL);
    char want[256];
    snprintf(want, sizeof want, "data directory %s is in use by another sluiced (pid %ld)", f->dir,
             (long)getpid());
    assert_string_equal(st.message, want);
    close_kv(kv, &f->loop);
    /* Released with the store. */
    kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    close_kv(kv, &f->loop);
}

static void test_permissions(void **state)
{
    fixture *f = *state;
    /* A regular file where a directory should be: fails for root as well. */
    char file[128], under[192];
    snprintf(file, sizeof file, "%s/file", f->root);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(under, sizeof under, "%s/store", file);
    sl__lmdb_opts o = {.dir = under, .loop = &f->loop};
    sl_status st;
    assert_int_equal(open_rc(&o, &st), SL_EIO);
    assert_non_null(strstr(st.message, under));
    assert_non_null(strstr(st.message, strerror(ENOTDIR)));
    o.dir = file;
    assert_int_equal(open_rc(&o, &st), SL_EIO);
    assert_non_null(strstr(st.message, strerror(ENOTDIR)));

    /* A store owned by root, opened by an unprivileged process. */
    sl__kv *kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0);
    kv->ops->free(kv);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        int code = 10;
        if (setgid(65534) == 0 && setuid(65534) == 0) {
            sl__lmdb_opts co = {.dir = f->dir};
            sl_status cst;
            sl__kv *ckv = NULL;
            code = sl__lmdb_open(&ckv, &co, &cst) == SL_EIO ? 0 : 1;
            if (ckv)
                ckv->ops->free(ckv);
            ssize_t w = write(fds[1], cst.message, strlen(cst.message));
            (void)w;
        }
        _exit(code);
    }
    close(fds[1]);
    char msg[512] = {0};
    ssize_t n = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    (void)n;
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("unprivileged open: exit %d, '%s'", WEXITSTATUS(status), msg);
    assert_non_null(strstr(msg, f->dir));
    assert_non_null(strstr(msg, strerror(EACCES)));

    /* read_only needs a store. */
    o.dir = f->root;
    o.read_only = 1;
    assert_int_equal(open_rc(&o, &st), SL_EIO);
    assert_non_null(strstr(st.message, "no store"));
}

static void test_read_only(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0);
    assert_int_equal(put_s(kv, SL__KV_APIKEYS, "k1", "h1"), SL_OK);
    kv->ops->free(kv);
    sl__lmdb_opts o = {.dir = f->dir, .read_only = 1};
    sl_status st;
    assert_int_equal(sl__lmdb_open(&kv, &o, &st), SL_OK);
    collect c;
    assert_string_equal(scan_s(kv, SL__KV_APIKEYS, "", &c), "k1=h1;");
    assert_int_equal(put_s(kv, SL__KV_APIKEYS, "k2", "h2"), SL_EINVAL);
    assert_int_equal(kv->ops->del(kv, SL__KV_APIKEYS, "k1", 2), SL_EINVAL);
    done d = {0};
    kv->ops->barrier(kv, on_done, &d);
    assert_int_equal(d.calls, 1);
    kv->ops->free(kv);
}

/* Disk full: a 1 MiB tmpfs holding the store and a filler file. Writes go on until a barrier
 * reports SL_ESTORAGE; what was acknowledged before is all there after reopening; once the filler
 * is removed the retry timer commits the failed batch without any new activity. */
static void test_disk_full(void **state)
{
    fixture *f = *state;
    char mnt[128], cmd[512], filler[192];
    snprintf(mnt, sizeof mnt, "%s/mnt", f->root);
    assert_int_equal(mkdir(mnt, 0700), 0);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=1m tmpfs '%s'", mnt);
    if (system(cmd) != 0)
        fail_msg("cannot mount a tmpfs (this test needs root): %s", cmd);
    snprintf(f->dir, sizeof f->dir, "%s/store", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    FILE *fp = fopen(filler, "wb");
    assert_non_null(fp);
    static char block[4096];
    memset(block, 'f', sizeof block);
    for (int i = 0; i < 64; i++) /* 256 KiB */
        assert_int_equal(fwrite(block, 1, sizeof block, fp), sizeof block);
    assert_int_equal(fclose(fp), 0);

    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    char k[32], v[8192];
    int acked = 0, failed_at = -1;
    for (int i = 0; i < 1000 && failed_at < 0; i++) {
        snprintf(k, sizeof k, "k%04d", i);
        memset(v, 'a' + i % 26, sizeof v);
        assert_int_equal(kv->ops->put(kv, SL__KV_MESSAGES, k, strlen(k), v, sizeof v), SL_OK);
        done d = {0};
        kv->ops->barrier(kv, on_done, &d);
        run_until(&f->loop, &d.calls);
        if (d.rc == SL_OK)
            acked = i + 1;
        else if (d.rc == SL_ESTORAGE)
            failed_at = i;
        else
            fail_msg("barrier: %d", d.rc);
    }
    assert_true(failed_at > 0);
    assert_int_equal(acked, failed_at);
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(kv, &stats);
    assert_true(stats.failed >= 1);
    assert_int_equal(stats.commits, (unsigned long)acked);
    /* The failed change is not visible, everything before it is. */
    assert_int_equal(count(kv, SL__KV_MESSAGES), (size_t)acked);

    /* Room again: a barrier (nothing new staged) completes once the retry commits the batch. */
    assert_int_equal(unlink(filler), 0);
    done d = {0};
    kv->ops->barrier(kv, on_done, &d);
    run_until(&f->loop, &d.calls);
    assert_int_equal(d.rc, SL_OK);
    assert_int_equal(count(kv, SL__KV_MESSAGES), (size_t)acked + 1);

    /* Full again, and closed with the failed batch still pending: it is reported, not applied. */
    int failed = 0;
    for (int i = failed_at + 1; i < 1000 && !failed; i++) {
        snprintf(k, sizeof k, "k%04d", i);
        memset(v, 'a' + i % 26, sizeof v);
        assert_int_equal(kv->ops->put(kv, SL__KV_MESSAGES, k, strlen(k), v, sizeof v), SL_OK);
        done e = {0};
        kv->ops->barrier(kv, on_done, &e);
        run_until(&f->loop, &e.calls);
        if (e.rc == SL_OK)
            acked = i + 1;
        else
            failed = 1;
    }
    assert_true(failed);
    close_kv(kv, &f->loop);

    kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0);
    for (int i = 0; i < acked; i++) {
        snprintf(k, sizeof k, "k%04d", i);
        collect c;
        memset(&c, 0, sizeof c);
        assert_int_equal(kv->ops->scan(kv, SL__KV_MESSAGES, k, strlen(k), count_fn, &c.n), SL_OK);
        assert_int_equal(c.n, 1);
    }
    assert_true(count(kv, SL__KV_MESSAGES) >= (size_t)acked);
    kv->ops->free(kv);
    snprintf(cmd, sizeof cmd, "umount '%s'", mnt);
    assert_int_equal(system(cmd), 0);
}

/* A failing sync hook fails the commit; the batch is retried (by the timer) and then lands. */
static void test_hook_failure_retry(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    gate g = {.fail = 1};
    assert_int_equal(sl__lmdb_add_sync_hook(kv, gate_hook, &g), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_REVOCATIONS, "jti-1", "r"), SL_OK);
    done d1 = {0};
    kv->ops->barrier(kv, on_done, &d1);
    run_until(&f->loop, &d1.calls);
    assert_int_equal(d1.rc, SL_ESTORAGE);
    assert_int_equal(count(kv, SL__KV_REVOCATIONS), 0);
    /* Staged after the failure: committed together with the retried batch, in order. */
    assert_int_equal(kv->ops->del(kv, SL__KV_REVOCATIONS, "jti-1", 5), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_REVOCATIONS, "jti-2", "r"), SL_OK);
    done d2 = {0};
    kv->ops->barrier(kv, on_done, &d2);
    run_until(&f->loop, &d2.calls);
    assert_int_equal(d2.rc, SL_OK);
    collect c;
    assert_string_equal(scan_s(kv, SL__KV_REVOCATIONS, "", &c), "jti-2=r;");
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.failed, 1);
    assert_int_equal(stats.commits, 1);
    close_kv(kv, &f->loop);
}

static int slow_hook(void *ud)
{
    (void)ud;
    usleep(20000); /* keeps the commit in flight while the test frees the store */
    return SL_OK;
}

/* free() while a commit is in flight waits for it, answers its barrier, and commits the rest. */
static void test_free_in_flight(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    assert_int_equal(sl__lmdb_add_sync_hook(kv, slow_hook, NULL), SL_OK);
    assert_int_equal(put_s(kv, SL__KV_CURSORS, "r1", "1"), SL_OK);
    done d1 = {0}, d2 = {0};
    kv->ops->barrier(kv, on_done, &d1);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* hands the batch over */
    assert_int_equal(put_s(kv, SL__KV_CURSORS, "r2", "2"), SL_OK);
    kv->ops->barrier(kv, on_done, &d2);
    kv->ops->free(kv);
    assert_int_equal(d1.calls, 1);
    assert_int_equal(d1.rc, SL_OK);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.rc, SL_OK);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the after-work callback and the handles' closing */
    kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0);
    collect c;
    assert_string_equal(scan_s(kv, SL__KV_CURSORS, "", &c), "r1=1;r2=2;");
    kv->ops->free(kv);
}

static void test_backup(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, &f->loop, SL__DURABLE_SYNC, 0);
    char k[32];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "c%03d", i);
        assert_int_equal(put_s(kv, SL__KV_CHANNELS, k, "settings"), SL_OK);
    }
    barrier_wait(kv, &f->loop, SL_OK);
    assert_int_equal(kv->ops->del_prefix(kv, SL__KV_CHANNELS, "c1", 2), SL_OK); /* free pages */
    barrier_wait(kv, &f->loop, SL_OK);

    char dest[192], dest2[192], dest3[192];
    snprintf(dest, sizeof dest, "%s/backup", f->root);
    sl_status st;
    sl_status_clear(&st);
    assert_int_equal(sl__lmdb_backup(kv, dest, &st), SL_OK);
    /* Not into a directory holding something. */
    assert_int_equal(sl__lmdb_backup(kv, dest, &st), SL_EINVAL);
    assert_non_null(strstr(st.message, "not empty"));
    /* An existing empty directory is fine. */
    snprintf(dest2, sizeof dest2, "%s/empty", f->root);
    assert_int_equal(mkdir(dest2, 0700), 0);
    assert_int_equal(sl__lmdb_backup(kv, dest2, &st), SL_OK);

    /* From a read-only opener in another process while this one keeps the store open. */
    snprintf(dest3, sizeof dest3, "%s/fromchild", f->root);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sl__lmdb_opts co = {.dir = f->dir, .read_only = 1};
        sl_status cst;
        sl__kv *ckv = NULL;
        int rc = sl__lmdb_open(&ckv, &co, &cst);
        if (rc == SL_OK)
            rc = sl__lmdb_backup(ckv, dest3, &cst);
        if (ckv)
            ckv->ops->free(ckv);
        if (rc != SL_OK)
            fprintf(stderr, "child: %s\n", cst.message);
        _exit(rc == SL_OK ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close_kv(kv, &f->loop);

    const char *copies[] = {dest, dest2, dest3};
    for (int i = 0; i < 3; i++) {
        char path[256];
        struct stat sb;
        snprintf(path, sizeof path, "%s/data.mdb", copies[i]);
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
        kv = open_kv(copies[i], NULL, SL__DURABLE_SYNC, 0);
        assert_int_equal(count(kv, SL__KV_CHANNELS), 100);
        collect c;
        assert_string_equal(scan_s(kv, SL__KV_CHANNELS, "c099", &c), "c099=settings;");
        assert_string_equal(scan_s(kv, SL__KV_META, "", &c), "format=1;");
        kv->ops->free(kv);
    }
    /* A destination that cannot be made. */
    char bad[256];
    snprintf(bad, sizeof bad, "%s/none/deeper", f->root);
    kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 0);
    assert_int_equal(sl__lmdb_backup(kv, bad, &st), SL_EIO);
    assert_non_null(strstr(st.message, bad));
    kv->ops->free(kv);
}

/* Without a loop, a barrier from inside a scan callback that needs a bigger map cannot resize
 * under the scan's own read transaction: it fails (not deadlocks), and the next barrier, after
 * the scan, commits the kept batch. */
typedef struct nested {
    sl__kv *kv;
    done d;
} nested;

static int nested_fn(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    nested *n = ud;
    static char big[256 << 10];
    memset(big, 'n', sizeof big);
    assert_int_equal(n->kv->ops->put(n->kv, SL__KV_MESSAGES, "big", 3, big, sizeof big), SL_OK);
    n->kv->ops->barrier(n->kv, on_done, &n->d);
    return SL_OK;
}

static void test_barrier_inside_scan(void **state)
{
    fixture *f = *state;
    sl__kv *kv = open_kv(f->dir, NULL, SL__DURABLE_SYNC, 64 << 10);
    assert_int_equal(put_s(kv, SL__KV_CHANNELS, "only", "1"), SL_OK);
    done d = {0};
    kv->ops->barrier(kv, on_done, &d);
    assert_int_equal(d.rc, SL_OK);
    nested n = {.kv = kv};
    assert_int_equal(kv->ops->scan(kv, SL__KV_CHANNELS, "", 0, nested_fn, &n), SL_OK);
    assert_int_equal(n.d.calls, 1);
    assert_int_equal(n.d.rc, SL_ESTORAGE);
    assert_int_equal(count(kv, SL__KV_MESSAGES), 0);
    done d2 = {0};
    kv->ops->barrier(kv, on_done, &d2);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.rc, SL_OK);
    assert_int_equal(count(kv, SL__KV_MESSAGES), 1);
    sl__lmdb_stats stats;
    sl__lmdb_stats_get(kv, &stats);
    assert_int_equal(stats.failed, 1);
    assert_true(stats.map_size > (256u << 10));
    kv->ops->free(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durability_names),
        cmocka_unit_test_setup_teardown(test_put_del_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_ordering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gathering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_written_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durability_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook_failure_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_inside_scan, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
