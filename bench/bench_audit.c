/* What GET /audit's verification costs on a large log (default 200,000 records written through
 * sl_audit_log_write, about 190 bytes each), measured in CPU time of this process (the machine is
 * shared: CPU time moves less than wall time when others run) and wall time: a full verification
 * of every line (what each read did before the reader remembered its prefix), the first
 * remembering verification (the same plus the prefix's SHA-256), one with nothing appended, one
 * after one appended record, and one after a record of the remembered prefix was rewritten in
 * place (the digest differs: everything is verified again). Medians of RUNS (default 7), in ms.
 *   bench_audit [RECORDS] [RUNS] */
#include <sluice/audit.h>

#include "security/audit_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"

static void die(const char *what)
{
    fprintf(stderr, "bench_audit: %s\n", what);
    exit(1);
}

/* One verification of path: full (memo NULL) or with *memo. Adds its CPU and wall ms. */
static void verify(const char *path, sl__audit_memo *memo, int want_reused, uint64_t want_records,
                   double *cpu, double *wall)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("cannot open the log");
    off_t size = lseek(fd, 0, SEEK_END);
    sl_audit_verify_result res;
    sl_status st;
    int reused = 0, rc;
    double c0 = 1e3 * bench_clock_s(CLOCK_PROCESS_CPUTIME_ID),
           w0 = 1e3 * bench_clock_s(CLOCK_MONOTONIC);
    if (memo == NULL)
        rc = lseek(fd, 0, SEEK_SET) == 0 ? sl__audit_verify_fd(fd, size, 0, NULL, &res, &st) : -1;
    else
        rc = sl__audit_verify_memo(fd, size, 0, NULL, memo, &reused, &res, &st);
    *cpu = 1e3 * bench_clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    *wall = 1e3 * bench_clock_s(CLOCK_MONOTONIC) - w0;
    close(fd);
    if (rc != SL_OK || !res.intact || res.records != want_records)
        die("the log did not verify with the expected count");
    if (memo != NULL && reused != want_reused)
        die(want_reused ? "the memo was not used" : "the memo was used");
}

#define MAXRUNS 64

static void row(const char *label, const double *cpu, const double *wall, int runs)
{
    double c[MAXRUNS], w[MAXRUNS];
    memcpy(c, cpu, (size_t)runs * sizeof *c);
    memcpy(w, wall, (size_t)runs * sizeof *w);
    printf("| %s | %.1f | %.1f |\n", label, bench_median(c, runs), bench_median(w, runs));
}

int main(int argc, char **argv)
{
    long records = argc > 1 ? atol(argv[1]) : 200000;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (records < 1 || runs < 1 || runs > MAXRUNS)
        die("usage: bench_audit [RECORDS] [RUNS (1..64)]");
    char path[] = "/tmp/sluice-bench-audit-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        die("cannot create a temporary file");
    close(fd);
    unlink(path);
    sl_audit_log *log;
    sl_status st;
    if (sl_audit_log_open(&log, path, &st) != SL_OK)
        die(st.message);
    char rec[256];
    for (long i = 0; i < records; i++) {
        snprintf(rec, sizeof rec,
                 "{\"ts\":%.2f,\"event\":\"authz.denied\",\"principal\":\"worker-%ld\","
                 "\"operation\":\"channel.read\",\"resource\":\"jobs-%ld\",\"source\":\"jwt\","
                 "\"reason\":\"no grant for this channel\"}",
                 1700000000.25 + (double)i, i % 977, i % 31);
        if (sl_audit_log_write(log, rec, &st) != SL_OK)
            die(st.message);
    }
    uint64_t n = (uint64_t)records;
    fd = open(path, O_RDONLY);
    off_t bytes = fd >= 0 ? lseek(fd, 0, SEEK_END) : 0;
    if (fd >= 0)
        close(fd);
    printf("%ld records, %lld bytes; medians of %d runs\n\n", records, (long long)bytes, runs);
    printf("| verification | CPU ms | wall ms |\n|---|---|---|\n");
    double cpu[MAXRUNS], wall[MAXRUNS];
    for (int i = 0; i < runs; i++)
        verify(path, NULL, 0, n, &cpu[i], &wall[i]);
    row("every line (each read before)", cpu, wall, runs);
    sl__audit_memo memo;
    for (int i = 0; i < runs; i++) {
        memset(&memo, 0, sizeof memo);
        verify(path, &memo, 0, n, &cpu[i], &wall[i]);
    }
    row("first read: every line + the prefix's SHA-256", cpu, wall, runs);
    for (int i = 0; i < runs; i++)
        verify(path, &memo, 1, n, &cpu[i], &wall[i]);
    row("remembered prefix, nothing appended", cpu, wall, runs);
    for (int i = 0; i < runs; i++) {
        if (sl_audit_log_write(log, rec, &st) != SL_OK)
            die(st.message);
        verify(path, &memo, 1, ++n, &cpu[i], &wall[i]);
    }
    row("remembered prefix, 1 record appended", cpu, wall, runs);
    /* A letter of the last remembered record rewritten in place, another one each run: still
     * valid JSON and no later line links to it, so only the digest tells, and everything is
     * verified again. */
    fd = open(path, O_WRONLY);
    if (fd < 0)
        die("cannot open the log for writing");
    static const char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    off_t at = memo.len - 4; /* the last letter of "channel", the record's last value */
    for (int i = 0; i < runs; i++) {
        if (pwrite(fd, &letters[i % (sizeof letters - 1)], 1, at) != 1)
            die("cannot write the log");
        verify(path, &memo, 0, n, &cpu[i], &wall[i]);
    }
    close(fd);
    row("remembered prefix rewritten in place (verified again)", cpu, wall, runs);
    sl_audit_log_close(log);
    unlink(path);
    return 0;
}
