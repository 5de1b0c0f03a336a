/* GET /audit: the newest records of the audit log with the chain verified. On the loop's
 * thread the request only takes a snapshot of where the log stands (the writer's tip, the file's
 * identity and size: every record is written from the loop, so the file then holds exactly the
 * records up to the tip); a work item on the thread pool then verifies the file up to that size,
 * checks that it ends with the tip (a removed last record cannot be seen from the file alone) and
 * reads the last records, bounded in bytes; the answer is rendered there too and handed back to
 * the loop. One work item at a time, so reads of a large log cannot fill the thread pool that the
 * embedded store commits on. The reader remembers what the last read verified (the prefix's
 * length, chain tip and SHA-256): the next read parses only what was appended since, after
 * checking with one SHA-256 over the prefix's bytes that nobody rewrote them
 * (sl__audit_verify_memo). */
#include "server/routes_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/audit.h>

#include "security/audit_internal.h"
#include "server/params.h"

typedef struct audit_q audit_q;

struct sl__audit_reader {
    audit_q *head, *tail; /* waiting; head runs first */
    size_t waiting;
    int running;
    sl__audit_memo memo; /* the part of the file the last read verified (handed to the next) */
};

struct audit_q {
    uv_work_t work;
    sl__job *job;
    audit_q *next;
    /* the snapshot, taken on the loop */
    char *path;
    size_t limit;
    off_t size;
    dev_t dev;
    ino_t ino;
    uint64_t tip_seq;
    char tip_hash[SL_AUDIT_HASH_HEX + 1];
    sl__audit_memo memo; /* the reader's, when the work item starts; its new one when done */
    /* the outcome, from the work item */
    int rc;
    sl_status st;
    json_t *answer;
};

static void run_next(sl__router *r);

static void q_free(audit_q *q)
{
    free(q->path);
    json_decref(q->answer);
    free(q);
}

/* Reads the first line of fd (at most SL_AUDIT_RECORD_MAX + 1 bytes of it) and, when it is a
 * record with seq > 1, where its chain continues from: a file that follows a rotated one. */
static void first_anchor(int fd, off_t size, uint64_t *after_seq, char *after_hash, int *anchored,
                         uint64_t *first_seq)
{
    *anchored = 0;
    *first_seq = 0;
    size_t cap = size < (off_t)SL_AUDIT_RECORD_MAX + 1 ? (size_t)size : SL_AUDIT_RECORD_MAX + 1;
    char *buf = cap ? malloc(cap) : NULL;
    size_t got = 0;
    while (buf && got < cap) {
        ssize_t n = pread(fd, buf + got, cap - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        char *nl = memchr(buf + got, '\n', (size_t)n);
        got += (size_t)n;
        if (nl)
            break;
    }
    char *nl = buf ? memchr(buf, '\n', got) : NULL;
    json_t *o = nl ? json_loadb(buf, (size_t)(nl - buf), 0, NULL) : NULL;
    json_t *seq = json_object_get(o, "seq"), *prev = json_object_get(o, "prev");
    if (json_is_integer(seq) && json_integer_value(seq) >= 1) {
        *first_seq = (uint64_t)json_integer_value(seq);
        if (*first_seq > 1 && json_is_string(prev) &&
            json_string_length(prev) == SL_AUDIT_HASH_HEX) {
            *after_seq = *first_seq - 1;
            memcpy(after_hash, json_string_value(prev), SL_AUDIT_HASH_HEX + 1);
            *anchored = 1;
        }
    }
    json_decref(o);
    free(buf);
}

/* The last q->limit records before q->size: tail blocks grow until they hold enough lines, the
 * start of the file, or SL__AUDIT_TAIL_BYTES. */
static int read_tail(int fd, audit_q *q, json_t *records, int *more)
{
    size_t want = q->limit + 1; /* one more tells whether older records exist */
    size_t *starts = malloc(want * sizeof *starts), *lens = malloc(want * sizeof *lens);
    size_t span = 65536, k = 0;
    char *buf = NULL;
    int cut = 0, rc = SL_OK;
    *more = 0;
    if (starts == NULL || lens == NULL)
        rc = SL_ENOMEM;
    while (rc == SL_OK) {
        if ((off_t)span > q->size)
            span = (size_t)q->size;
        char *nb = realloc(buf, span ? span : 1);
        if (nb == NULL) {
            rc = SL_ENOMEM;
            break;
        }
        buf = nb;
        off_t off = q->size - (off_t)span;
        size_t got = 0;
        while (got < span) {
            ssize_t n = pread(fd, buf + got, span - got, off + (off_t)got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got < span) {
            rc = SL_EIO;
            break;
        }
        int whole = off == 0;
        k = sl__audit_tail_lines(buf, span, whole, want, starts, lens, want, &cut);
        if (k >= want || whole || span >= SL__AUDIT_TAIL_BYTES)
            break;
        span = span * 4 < SL__AUDIT_TAIL_BYTES ? span * 4 : SL__AUDIT_TAIL_BYTES;
    }
    if (rc == SL_OK) {
        size_t from = k > q->limit ? k - q->limit : 0;
        *more = cut || from > 0;
        for (size_t i = from; i < k; i++) {
            /* A line that is no record (the verdict says why) is shown as its text. */
            json_t *o = json_loadb(buf + starts[i], lens[i], JSON_REJECT_DUPLICATES, NULL);
            if (!json_is_object(o)) {
                json_decref(o);
                o = json_stringn(buf + starts[i], lens[i]);
            }
            json_array_append_new(records, o ? o : json_null());
        }
    }
    free(buf);
    free(starts);
    free(lens);
    return rc;
}

/* On the thread pool: touches nothing but q. */
static void work(uv_work_t *w)
{
    audit_q *q = w->data;
    int fd = open(q->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        q->rc = sl_status_set(&q->st, SL_EIO, "the audit log cannot be read: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    if (sb.st_dev != q->dev || sb.st_ino != q->ino || sb.st_size < q->size) {
        close(fd);
        q->rc = sl_status_set(&q->st, SL_EUNAVAIL, "the audit log was rotated meanwhile");
        return;
    }
    uint64_t after_seq = 0, first_seq = 0;
    char after_hash[SL_AUDIT_HASH_HEX + 1];
    int anchored = 0;
    first_anchor(fd, q->size, &after_seq, after_hash, &anchored, &first_seq);
    sl_audit_verify_result vr;
    int rc = sl__audit_verify_memo(fd, q->size, after_seq, anchored ? after_hash : NULL, &q->memo,
                                   NULL, &vr, &q->st);
    if (rc != SL_OK && rc != SL_EINVAL) {
        close(fd);
        q->rc = rc;
        return;
    }
    /* The file must end where the writer's chain does, unless it holds nothing yet (a log just
     * rotated: its tip is the file before it). */
    if (vr.intact && q->size > 0 &&
        (vr.last_seq != q->tip_seq || strcmp(vr.last_hash, q->tip_hash) != 0)) {
        vr.intact = 0;
        q->memo.len = 0; /* a chain that verifies to the wrong end is not one to build on */
        snprintf(vr.reason, sizeof vr.reason,
                 "the file does not end with the last record the server wrote (seq %llu): records "
                 "were removed or changed at its end",
                 (unsigned long long)q->tip_seq);
    }
    json_t *records = json_array();
    int more = 0;
    rc = records ? read_tail(fd, q, records, &more) : SL_ENOMEM;
    close(fd);
    if (rc != SL_OK) {
        json_decref(records);
        q->rc = sl_status_set(&q->st, rc, "the audit log cannot be read");
        return;
    }
    json_t *o = json_pack("{s:o, s:b, s:b, s:I, s:I}", "records", records, "more", more, "verified",
                          vr.intact, "checked", (json_int_t)vr.records, "last_seq",
                          (json_int_t)vr.last_seq);
    if (o) {
        json_object_set_new(o, "first_seq",
                            first_seq ? json_integer((json_int_t)first_seq) : json_null());
        if (!vr.intact) {
            json_object_set_new(o, "bad_line", json_integer((json_int_t)vr.bad_line));
            json_object_set_new(o, "reason", json_string(vr.reason));
        }
    }
    q->answer = o;
    q->rc = o ? SL_OK : sl_status_set(&q->st, SL_ENOMEM, NULL);
}

static void finish(sl__router *r, audit_q *q)
{
    sl__job *job = q->job;
    if (q->rc == SL_OK) {
        sl__response_json(sl__job_response(job), 200, q->answer);
        q->answer = NULL;
    } else {
        *sl__job_status(job) = q->st;
    }
    int rc = q->rc;
    q_free(q);
    sl__job_finish(job, rc);
    (void)r;
}

static void after_work(uv_work_t *w, int status)
{
    audit_q *q = w->data;
    sl__router *r = sl__job_router(q->job);
    if (status != 0 && q->rc == SL_OK && q->answer == NULL)
        q->rc = sl_status_set(&q->st, SL_EUNAVAIL, "the audit read was cancelled");
    r->audit_reader->running = 0;
    r->audit_reader->memo = q->memo;
    finish(r, q);
    run_next(r);
}

static void run_next(sl__router *r)
{
    struct sl__audit_reader *ar = r->audit_reader;
    if (ar->running || ar->head == NULL)
        return;
    audit_q *q = ar->head;
    ar->head = q->next;
    if (ar->head == NULL)
        ar->tail = NULL;
    ar->waiting--;
    ar->running = 1;
    q->memo = ar->memo;
    q->work.data = q;
    if (r->loop && uv_queue_work(r->loop, &q->work, work, after_work) == 0)
        return;
    work(&q->work); /* no loop (tests): at once */
    after_work(&q->work, 0);
}

/* ?limit=N: 1..SL__AUDIT_READ_MAX, default SL__AUDIT_READ_DEFAULT. */
static int parse_limit(const sl_http_request *req, size_t *limit, sl_status *st)
{
    char v[16];
    int has = sl__http_query_get(req, "limit", v, sizeof v);
    *limit = SL__AUDIT_READ_DEFAULT;
    if (has == 0)
        return SL_OK;
    char *end = NULL;
    long n = has == 1 ? strtol(v, &end, 10) : 0;
    if (has < 0 || end == v || *end || n < 1 || n > SL__AUDIT_READ_MAX)
        return sl_status_set(st, SL_EINVAL, "limit must be an integer from 1 to %d",
                             SL__AUDIT_READ_MAX);
    *limit = (size_t)n;
    return SL_OK;
}

void sl__start_audit_read(sl__job *job)
{
    sl__router *r = sl__job_router(job);
    sl_status *st = sl__job_status(job);
    size_t limit;
    int rc = parse_limit(sl__job_request(job), &limit, st);
    if (rc == SL_OK && (r->audit == NULL || r->audit_path == NULL))
        rc = sl_status_set(st, SL_ENOENT, "this server keeps no audit log (--audit-log)");
    if (rc == SL_OK && r->audit_reader == NULL &&
        (r->audit_reader = calloc(1, sizeof *r->audit_reader)) == NULL)
        rc = sl_status_set(st, SL_ENOMEM, NULL);
    if (rc == SL_OK && r->audit_reader->waiting >= SL__AUDIT_WAITING_MAX)
        rc = sl_status_set(st, SL_EUNAVAIL, "too many audit reads waiting: try again");
    audit_q *q = rc == SL_OK ? calloc(1, sizeof *q) : NULL;
    if (rc == SL_OK && (q == NULL || (q->path = strdup(r->audit_path)) == NULL))
        rc = sl_status_set(st, SL_ENOMEM, NULL);
    struct stat sb;
    if (rc == SL_OK && stat(q->path, &sb) != 0)
        rc = sl_status_set(st, SL_EIO, "the audit log cannot be read: %s", strerror(errno));
    if (rc == SL_OK && !S_ISREG(sb.st_mode)) /* a device or a FIFO: nothing to read back */
        rc = sl_status_set(st, SL_ENOENT, "the audit log is not a regular file");
    if (rc != SL_OK) {
        if (q)
            q_free(q);
        sl__job_finish(job, rc);
        return;
    }
    /* The snapshot: every record is written from this thread, so the file holds exactly the
     * records up to the tip now. */
    q->job = job;
    q->limit = limit;
    q->size = sb.st_size;
    q->dev = sb.st_dev;
    q->ino = sb.st_ino;
    sl_audit_log_tip(r->audit, &q->tip_seq, q->tip_hash);
    struct sl__audit_reader *ar = r->audit_reader;
    if (ar->tail)
        ar->tail->next = q;
    else
        ar->head = q;
    ar->tail = q;
    ar->waiting++;
    run_next(r);
}

void sl__audit_routes_free(sl__router *r)
{
    if (r == NULL)
        return;
    free(r->audit_reader);
    r->audit_reader = NULL;
}
