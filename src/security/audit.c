/* The tamper-evident audit log and its verifier. The writer turns the caller's JSON object into a
 * line {"seq":N,"prev":H,...caller's members} where H is the SHA-256 of the previous line's bytes,
 * and appends it with one write(2) on an O_APPEND descriptor it holds an exclusive flock on. Before
 * each write it checks that the file is still the one it opened and has not grown behind its back,
 * because a removed, replaced or concurrently appended file would silently lose records or fork the
 * chain; those cases, and every failed write, are errors the caller must act on. A line that got
 * only partly written is cut off again, so a failure never leaves the file unverifiable. The
 * verifier is an incremental line checker fed with bytes, so the same code checks text in memory
 * (tests, fuzzers) and arbitrarily large files read in blocks. */
#include <sluice/audit.h>

#include "security/audit_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_BLOCK 65536

/* ---- record format --------------------------------------------------------------------------- */

/* hex receives SL_AUDIT_HASH_HEX + 1 bytes. 0 on success. */
static int hash_hex(const void *data, size_t len, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen * 2 != SL_AUDIT_HASH_HEX)
        return -1;
    for (unsigned int i = 0; i < mdlen; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[SL_AUDIT_HASH_HEX] = '\0';
    return 0;
}

static int is_hash_hex(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == SL_AUDIT_HASH_HEX;
}

/* Reads the two chain fields of one line. NULL when the line is a well-formed record, else why
 * not. Duplicate members are refused: a second "seq" would let a reader and the verifier disagree
 * on which one counts. */
static const char *record_fields(const char *line, size_t len, json_int_t *seq, char *prev)
{
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    const char *why = NULL;
    if (!json_is_object(o)) {
        why = "not a JSON object";
    } else {
        json_t *s = json_object_get(o, "seq"), *p = json_object_get(o, "prev");
        if (!json_is_integer(s) || json_integer_value(s) < 1) {
            why = "missing or invalid \"seq\" (an integer from 1)";
        } else if (!json_is_string(p) || !is_hash_hex(json_string_value(p))) {
            why = "missing or invalid \"prev\" (64 lowercase hex digits)";
        } else {
            *seq = json_integer_value(s);
            memcpy(prev, json_string_value(p), SL_AUDIT_HASH_HEX + 1);
        }
    }
    json_decref(o);
    return why;
}

/* ---- verification ---------------------------------------------------------------------------- */

typedef struct verifier {
    sl_audit_verify_result *res;
    size_t line;  /* lines seen so far */
    int done;     /* a bad line was found: the rest is not looked at */
    int err;      /* SL_ENOMEM / SL_EINTERNAL: the verdict is unknown */
    char *pend;   /* the start of a line whose newline has not been fed yet */
    size_t npend; /* bytes kept, at most SL_AUDIT_RECORD_MAX + 1 (enough to know it is too long) */
    size_t cap;   /* allocated size of pend */
    int started;  /* pend holds the start of a line (possibly of bytes no longer kept) */
} verifier;

static void verifier_init(verifier *v, sl_audit_verify_result *res)
{
    memset(v, 0, sizeof *v);
    memset(res, 0, sizeof *res);
    memcpy(res->last_hash, SL_AUDIT_GENESIS, sizeof res->last_hash);
    v->res = res;
}

static void verifier_fail(verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void verifier_fail(verifier *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->res->reason, sizeof v->res->reason, fmt, ap);
    va_end(ap);
    v->res->bad_line = v->line;
    v->done = 1;
}

static void check_line(verifier *v, const char *line, size_t len)
{
    sl_audit_verify_result *r = v->res;
    v->line++;
    if (len > SL_AUDIT_RECORD_MAX) {
        verifier_fail(v, "record longer than %d bytes", SL_AUDIT_RECORD_MAX);
        return;
    }
    json_int_t seq;
    char prev[SL_AUDIT_HASH_HEX + 1];
    const char *why = record_fields(line, len, &seq, prev);
    if (why) {
        verifier_fail(v, "%s", why);
        return;
    }
    /* Sequence before hash: a removed or swapped line then reads as a gap, which says more than
     * "chain broken" does. */
    if ((uint64_t)seq != r->last_seq + 1) {
        verifier_fail(v, "sequence %" PRIu64 " expected, found %" PRIu64, r->last_seq + 1,
                      (uint64_t)seq);
        return;
    }
    if (strcmp(prev, r->last_hash) != 0) {
        /* The line itself may be intact: what changed is one of the lines it chains to. */
        verifier_fail(v, "hash chain broken (the previous line was edited, or lines were removed "
                         "or reordered)");
        return;
    }
    if (hash_hex(line, len, r->last_hash) != 0) {
        v->err = SL_EINTERNAL;
        v->done = 1;
        return;
    }
    r->last_seq = (uint64_t)seq;
    r->records++;
}

/* Keeps at most SL_AUDIT_RECORD_MAX + 1 bytes of a pending line; more is only counted as "too
 * long", so a hostile file cannot make the verifier allocate without bound. */
static void pend_append(verifier *v, const char *data, size_t n)
{
    v->started = 1;
    size_t room = SL_AUDIT_RECORD_MAX + 1 - v->npend;
    if (n > room)
        n = room;
    if (n == 0)
        return;
    if (v->npend + n > v->cap) {
        size_t cap = v->cap ? v->cap : 4096;
        while (cap < v->npend + n)
            cap *= 2;
        if (cap > SL_AUDIT_RECORD_MAX + 1)
            cap = SL_AUDIT_RECORD_MAX + 1;
        char *p = realloc(v->pend, cap);
        if (p == NULL) {
            v->err = SL_ENOMEM;
            v->done = 1;
            return;
        }
        v->pend = p;
        v->cap = cap;
    }
    memcpy(v->pend + v->npend, data, n);
    v->npend += n;
}

static void verifier_feed(verifier *v, const char *data, size_t len)
{
    while (len > 0 && !v->done) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        if (nl && !v->started) {
            check_line(v, data, n); /* whole line in this block: no copy */
        } else {
            pend_append(v, data, n);
            if (nl && !v->done) {
                check_line(v, v->pend, v->npend);
                v->npend = 0;
                v->started = 0;
            }
        }
        if (nl == NULL)
            break;
        data += n + 1;
        len -= n + 1;
    }
}

/* Ends the input. Returns SL_OK (intact), SL_EINVAL (not) or the error that stopped the check. */
static int verifier_finish(verifier *v)
{
    if (!v->done && v->started) {
        v->line++;
        verifier_fail(v, "truncated record (no newline at the end of the file)");
    }
    free(v->pend);
    v->pend = NULL;
    if (v->err)
        return v->err;
    v->res->intact = !v->done;
    if (v->res->intact) {
        v->res->bad_line = 0;
        v->res->reason[0] = '\0';
    }
    return v->res->intact ? SL_OK : SL_EINVAL;
}

int sl_audit_verify_text(const char *text, size_t len, sl_audit_verify_result *res)
{
    if (res == NULL || (text == NULL && len > 0))
        return SL_EINVAL;
    verifier v;
    verifier_init(&v, res);
    if (len > 0)
        verifier_feed(&v, text, len);
    return verifier_finish(&v);
}

int sl_audit_verify_file(const char *path, sl_audit_verify_result *res, sl_status *st)
{
    return sl_audit_verify_file_from(path, 0, NULL, res, st);
}

static int verify_fd(int fd, const char *path, off_t limit, uint64_t after_seq,
                     const char *after_hash, sl_audit_verify_result *res, sl_status *st);

int sl_audit_verify_file_from(const char *path, uint64_t after_seq, const char *after_hash,
                              sl_audit_verify_result *res, sl_status *st)
{
    if (path == NULL || res == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return sl_status_set(st, SL_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc = verify_fd(fd, path, -1, after_seq, after_hash, res, st);
    close(fd);
    return rc;
}

int sl__audit_verify_fd(int fd, off_t limit, uint64_t after_seq, const char *after_hash,
                        sl_audit_verify_result *res, sl_status *st)
{
    if (fd < 0 || res == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    return verify_fd(fd, "the audit log", limit, after_seq, after_hash, res, st);
}

/* Feeds v the bytes of fd from its current offset, to its end (limit < 0) or limit bytes on, and
 * md (when not NULL) every byte read: the memo's digest comes from the very bytes verified. */
static int feed_fd(int fd, const char *path, off_t limit, verifier *v, EVP_MD_CTX *md,
                   sl_status *st)
{
    char *buf = malloc(READ_BLOCK);
    if (buf == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    int rc = SL_OK;
    while (!v->done && limit != 0) {
        size_t want = limit > 0 && limit < READ_BLOCK ? (size_t)limit : READ_BLOCK;
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sl_status_set(st, SL_EIO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (limit > 0)
            limit -= n;
        if (md != NULL && EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
            rc = sl_status_set(st, SL_EINTERNAL, "cannot hash %s", path);
            break;
        }
        verifier_feed(v, buf, (size_t)n);
    }
    free(buf);
    return rc;
}

/* The verdict of v, once fed (rc: how the feeding went). */
static int verify_end(verifier *v, int rc, sl_status *st)
{
    int vr = verifier_finish(v);
    if (rc != SL_OK)
        return rc;
    if (vr == SL_ENOMEM || vr == SL_EINTERNAL)
        return sl_status_set(st, vr, NULL);
    sl_status_clear(st);
    return vr;
}

/* A rotated file (after_hash not NULL): its chain starts where the file before it ended. */
static void chain_start(sl_audit_verify_result *res, uint64_t after_seq, const char *after_hash)
{
    if (after_hash == NULL)
        return;
    res->last_seq = after_seq;
    snprintf(res->last_hash, sizeof res->last_hash, "%s", after_hash);
}

/* Verifies fd from its current offset, to its end (limit < 0) or limit bytes on. */
static int verify_fd(int fd, const char *path, off_t limit, uint64_t after_seq,
                     const char *after_hash, sl_audit_verify_result *res, sl_status *st)
{
    verifier v;
    verifier_init(&v, res);
    chain_start(res, after_seq, after_hash);
    return verify_end(&v, feed_fd(fd, path, limit, &v, NULL, st), st);
}

/* ---- verification that remembers what it checked (GET /audit) -------------------------------- */

#define DIGEST_BLOCK (1024 * 1024)

/* Adds bytes [0, len) of fd to md; 0 on success. Large reads: this is the whole cost of a
 * remembered prefix, and no line is looked at. */
static int digest_prefix(int fd, off_t len, EVP_MD_CTX *md)
{
    char *buf = malloc(DIGEST_BLOCK);
    off_t off = 0;
    while (buf != NULL && off < len) {
        size_t want = len - off < DIGEST_BLOCK ? (size_t)(len - off) : DIGEST_BLOCK;
        ssize_t n = pread(fd, buf, want, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || EVP_DigestUpdate(md, buf, (size_t)n) != 1)
            break;
        off += n;
    }
    free(buf);
    return off == len ? 0 : -1;
}

/* 1 when the digest of what md has taken so far equals want (md goes on unchanged). */
static int digest_is(const EVP_MD_CTX *md, const unsigned char *want)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char got[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = c != NULL && EVP_MD_CTX_copy_ex(c, md) == 1 && EVP_DigestFinal_ex(c, got, &n) == 1 &&
             n == SL__AUDIT_DIGEST_LEN && CRYPTO_memcmp(got, want, n) == 0;
    EVP_MD_CTX_free(c);
    return ok;
}

int sl__audit_verify_memo(int fd, off_t size, uint64_t after_seq, const char *after_hash,
                          sl__audit_memo *memo, int *reused, sl_audit_verify_result *res,
                          sl_status *st)
{
    if (reused)
        *reused = 0;
    struct stat sb;
    if (fd < 0 || size < 0 || memo == NULL || res == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    if (fstat(fd, &sb) != 0)
        return sl_status_set(st, SL_EIO, "cannot read the audit log: %s", strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    /* The file's identity is only a quick way to say no: the prefix's bytes are what is checked,
     * since whoever can write the file can rewrite them in place (same inode, same size). */
    int use = memo->len > 0 && memo->len <= size && memo->dev == sb.st_dev &&
              memo->ino == sb.st_ino && digest_prefix(fd, memo->len, md) == 0 &&
              digest_is(md, memo->digest);
    verifier v;
    verifier_init(&v, res);
    off_t from = 0;
    if (use) {
        /* The verifier's state at a line's end is the line count and the chain's tip: the state
         * a verification from the start would be in after the prefix. */
        from = memo->len;
        v.line = memo->records;
        res->records = memo->records;
        res->last_seq = memo->last_seq;
        memcpy(res->last_hash, memo->last_hash, sizeof res->last_hash);
    } else {
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
            EVP_MD_CTX_free(md);
            return sl_status_set(st, SL_EINTERNAL, "cannot hash the audit log");
        }
        chain_start(res, after_seq, after_hash);
    }
    int rc = lseek(fd, from, SEEK_SET) == from
                 ? feed_fd(fd, "the audit log", size - from, &v, md, st)
                 : sl_status_set(st, SL_EIO, "cannot read the audit log: %s", strerror(errno));
    rc = verify_end(&v, rc, st);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    memo->len = 0;
    if (rc == SL_OK && size > 0 && EVP_DigestFinal_ex(md, digest, &n) == 1 &&
        n == SL__AUDIT_DIGEST_LEN) {
        memo->dev = sb.st_dev;
        memo->ino = sb.st_ino;
        memo->len = size;
        memcpy(memo->digest, digest, n);
        memo->records = res->records;
        memo->last_seq = res->last_seq;
        memcpy(memo->last_hash, res->last_hash, sizeof memo->last_hash);
    }
    EVP_MD_CTX_free(md);
    if (reused)
        *reused = use;
    return rc;
}

/* ---- the writer ------------------------------------------------------------------------------ */

struct sl_audit_log {
    pthread_mutex_t mu;
    int fd;
    char *path;
    int regular; /* a regular file: its tail continues the chain and its identity is checked */
    dev_t dev;
    ino_t ino;
    off_t end; /* the file's size after our last complete record */
    uint64_t seq;
    char prev[SL_AUDIT_HASH_HEX + 1];
    int broken; /* a partly written line could not be removed: the file no longer verifies */
};

static int read_full(int fd, char *buf, size_t n, off_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = EIO; /* shrank while we read it */
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

int sl__audit_tail_parse(const char *buf, size_t n, int whole, uint64_t *seq, char *hash,
                         const char **why)
{
    if (n == 0 || buf[n - 1] != '\n')
        return SL__AUDIT_TAIL_INCOMPLETE;
    const char *start = memrchr(buf, '\n', n - 1);
    if (start == NULL && !whole)
        return SL__AUDIT_TAIL_TOO_LONG;
    start = start ? start + 1 : buf;
    size_t len = (size_t)(buf + n - 1 - start);
    json_int_t s;
    char prev[SL_AUDIT_HASH_HEX + 1];
    if ((*why = record_fields(start, len, &s, prev)) != NULL)
        return SL__AUDIT_TAIL_NOT_RECORD;
    if (hash_hex(start, len, hash) != 0)
        return SL__AUDIT_TAIL_INTERNAL;
    *seq = (uint64_t)s;
    return SL__AUDIT_TAIL_OK;
}

/* Continues the chain of an existing file from its last line. Only the last line is read: checking
 * the whole file at every start would make start-up time grow with the log, and `sluice audit
 * verify` does that job. A damaged tail is refused rather than extended, because records appended
 * after it would chain to something no verifier can check. */
static int read_tail(sl_audit_log *log, off_t size, sl_status *st)
{
    log->seq = 0;
    memcpy(log->prev, SL_AUDIT_GENESIS, sizeof log->prev);
    log->end = size;
    if (size == 0)
        return SL_OK;
    /* The last line (at most RECORD_MAX bytes), its newline and the newline before it. */
    size_t n = (off_t)(SL_AUDIT_RECORD_MAX + 2) < size ? SL_AUDIT_RECORD_MAX + 2 : (size_t)size;
    char *buf = malloc(n);
    if (buf == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    int rc = SL_OK;
    if (read_full(log->fd, buf, n, size - (off_t)n) != 0) {
        rc = sl_status_set(st, SL_EIO, "cannot read audit log %s: %s", log->path, strerror(errno));
        goto out;
    }
    const char *why = NULL;
    switch (sl__audit_tail_parse(buf, n, (off_t)n == size, &log->seq, log->prev, &why)) {
    case SL__AUDIT_TAIL_OK:
        break;
    case SL__AUDIT_TAIL_INCOMPLETE:
        rc = sl_status_set(st, SL_EIO,
                           "audit log %s ends with an incomplete record (truncated or damaged); "
                           "move it aside and start a new log",
                           log->path);
        break;
    case SL__AUDIT_TAIL_TOO_LONG:
        rc = sl_status_set(st, SL_EIO, "the last record of audit log %s is longer than %d bytes",
                           log->path, SL_AUDIT_RECORD_MAX);
        break;
    case SL__AUDIT_TAIL_NOT_RECORD:
        rc = sl_status_set(st, SL_EIO,
                           "the last line of audit log %s is not an audit record (%s); move it "
                           "aside and start a new log",
                           log->path, why);
        break;
    default:
        rc = sl_status_set(st, SL_EINTERNAL, "cannot hash the audit log's last record");
        break;
    }
    if (rc != SL_OK) {
        log->seq = 0;
        memcpy(log->prev, SL_AUDIT_GENESIS, sizeof log->prev);
    }
out:
    free(buf);
    return rc;
}

int sl_audit_log_open(sl_audit_log **out, const char *path, sl_status *st)
{
    if (out == NULL || path == NULL || *path == '\0')
        return sl_status_set(st, SL_EINVAL, "no audit log path");
    *out = NULL;
    sl_audit_log *log = calloc(1, sizeof *log);
    if (log == NULL || (log->path = strdup(path)) == NULL) {
        free(log);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    log->fd = -1;
    if (pthread_mutex_init(&log->mu, NULL) != 0) {
        free(log->path);
        free(log);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    int rc = SL_OK;
    struct stat sb;
    /* Read access too: the tail is read to continue the chain, and a cut-off line is truncated. */
    log->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (log->fd < 0) {
        rc = sl_status_set(st, SL_EIO, "cannot open audit log %s: %s", path, strerror(errno));
    } else if (flock(log->fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        /* Two writers would each extend their own idea of the chain and fork it. */
        rc = sl_status_set(st, SL_EIO, "audit log %s is in use by another writer", path);
    } else if (fstat(log->fd, &sb) != 0) {
        rc = sl_status_set(st, SL_EIO, "cannot open audit log %s: %s", path, strerror(errno));
    } else {
        log->regular = S_ISREG(sb.st_mode);
        log->dev = sb.st_dev;
        log->ino = sb.st_ino;
        if (log->regular) {
            rc = read_tail(log, sb.st_size, st);
        } else {
            memcpy(log->prev, SL_AUDIT_GENESIS, sizeof log->prev);
        }
    }
    if (rc != SL_OK) {
        sl_audit_log_close(log);
        return rc;
    }
    *out = log;
    sl_status_clear(st);
    return SL_OK;
}

void sl_audit_log_close(sl_audit_log *log)
{
    if (log == NULL)
        return;
    if (log->fd >= 0)
        close(log->fd); /* also releases the flock */
    pthread_mutex_destroy(&log->mu);
    free(log->path);
    free(log);
}

int sl_audit_log_sync(sl_audit_log *log)
{
    pthread_mutex_lock(&log->mu);
    int rc = log->regular && fdatasync(log->fd) != 0 ? SL_EIO : SL_OK;
    pthread_mutex_unlock(&log->mu);
    return rc;
}

int sl_audit_log_reopen(sl_audit_log *log, sl_status *st)
{
    pthread_mutex_lock(&log->mu);
    int fd = open(log->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    struct stat sb;
    int rc = SL_OK;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        rc =
            sl_status_set(st, SL_EIO, "cannot reopen audit log %s: %s", log->path, strerror(errno));
    } else if (sb.st_dev == log->dev && sb.st_ino == log->ino) {
        close(fd); /* not rotated: keep writing where we are */
        fd = -1;
    } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rc = sl_status_set(st, SL_EIO, "audit log %s is in use by another writer", log->path);
    } else if (S_ISREG(sb.st_mode) && sb.st_size != 0) {
        rc = sl_status_set(st, SL_EIO,
                           "audit log %s is not empty after rotation: the chain cannot continue "
                           "in it",
                           log->path);
    } else {
        /* The old file is complete (every record was one write); flush it before leaving it. */
        if (log->regular)
            fdatasync(log->fd);
        close(log->fd);
        log->fd = fd;
        fd = -1;
        log->regular = S_ISREG(sb.st_mode);
        log->dev = sb.st_dev;
        log->ino = sb.st_ino;
        log->end = 0;
    }
    if (fd >= 0)
        close(fd);
    pthread_mutex_unlock(&log->mu);
    return rc;
}

void sl_audit_log_tip(sl_audit_log *log, uint64_t *seq, char *hash)
{
    pthread_mutex_lock(&log->mu);
    if (seq)
        *seq = log->seq;
    if (hash)
        memcpy(hash, log->prev, SL_AUDIT_HASH_HEX + 1);
    pthread_mutex_unlock(&log->mu);
}

/* The next line, newline included, into *line (malloc'd) and its length. */
static int build_line(const sl_audit_log *log, const char *json_object, char **line, size_t *len,
                      sl_status *st)
{
    /* The caller's text is never echoed in messages: it is not ours to show. */
    json_t *in = json_loads(json_object, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return sl_status_set(st, SL_EINVAL, "audit record is not a JSON object");
    }
    if (json_object_get(in, "seq") || json_object_get(in, "prev")) {
        json_decref(in);
        return sl_status_set(st, SL_EINVAL, "audit record must not have \"seq\" or \"prev\"");
    }
    if (log->seq >= (uint64_t)LLONG_MAX) {
        json_decref(in);
        return sl_status_set(st, SL_EUNAVAIL, "audit log unavailable: sequence exhausted");
    }
    /* The chain fields first, so a reader sees where a record stands before what it says. */
    json_t *rec = json_pack("{s:I, s:s}", "seq", (json_int_t)(log->seq + 1), "prev", log->prev);
    int bad = rec == NULL || json_object_update(rec, in) != 0;
    json_decref(in);
    size_t need = bad ? 0 : json_dumpb(rec, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (need > SL_AUDIT_RECORD_MAX) {
        json_decref(rec);
        return sl_status_set(st, SL_ETOOBIG, "audit record longer than %d bytes",
                             SL_AUDIT_RECORD_MAX);
    }
    char *buf = need ? malloc(need + 1) : NULL;
    if (buf == NULL || json_dumpb(rec, buf, need, JSON_COMPACT | JSON_PRESERVE_ORDER) != need) {
        free(buf);
        json_decref(rec);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    json_decref(rec);
    buf[need] = '\n'; /* compact output escapes control characters, so this is the only one */
    *line = buf;
    *len = need + 1;
    return SL_OK;
}

/* Whether the file is still the one whose tail we continue. */
static int check_file(const sl_audit_log *log, sl_status *st)
{
    struct stat fsb, psb;
    if (fstat(log->fd, &fsb) != 0)
        return sl_status_set(st, SL_EUNAVAIL, "audit log unavailable: %s", strerror(errno));
    if (fsb.st_nlink == 0)
        return sl_status_set(st, SL_EUNAVAIL, "audit log unavailable: the file was removed");
    if (stat(log->path, &psb) != 0 || psb.st_dev != log->dev || psb.st_ino != log->ino)
        return sl_status_set(st, SL_EUNAVAIL,
                             "audit log unavailable: the file was moved or replaced");
    if (fsb.st_size != log->end)
        return sl_status_set(st, SL_EUNAVAIL,
                             "audit log unavailable: the file was changed by another writer");
    return SL_OK;
}

int sl_audit_log_write(sl_audit_log *log, const char *json_object, sl_status *st)
{
    if (log == NULL || json_object == NULL)
        return sl_status_set(st, SL_EINVAL, "no audit log or record");
    pthread_mutex_lock(&log->mu);
    char *line = NULL;
    size_t len = 0;
    char hash[SL_AUDIT_HASH_HEX + 1];
    int rc = SL_OK;
    if (log->broken) {
        rc = sl_status_set(st, SL_EUNAVAIL,
                           "audit log unavailable: damaged by an earlier failed write; move it "
                           "aside and restart");
        goto out;
    }
    if ((rc = build_line(log, json_object, &line, &len, st)) != SL_OK)
        goto out;
    if (hash_hex(line, len - 1, hash) != 0) {
        rc = sl_status_set(st, SL_EINTERNAL, "cannot hash the audit record");
        goto out;
    }
    if (log->regular && (rc = check_file(log, st)) != SL_OK)
        goto out;
    size_t done = 0;
    int err = 0;
    while (done < len) {
        ssize_t w = write(log->fd, line + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        done += (size_t)w;
    }
    if (done < len) {
        /* Undo a partial line: left in place it would make the file's end unverifiable and the
         * next record would be glued onto it. */
        if (done > 0 && (!log->regular || ftruncate(log->fd, log->end) != 0))
            log->broken = 1;
        rc = sl_status_set(st, SL_EUNAVAIL, "audit log unavailable: %s", strerror(err));
        goto out;
    }
    log->seq++;
    log->end += (off_t)len;
    memcpy(log->prev, hash, sizeof hash);
    sl_status_clear(st);
out:
    pthread_mutex_unlock(&log->mu);
    free(line);
    return rc;
}

/* ---- the tail of a log, for GET /audit --------------------------------------------------------
 */

size_t sl__audit_tail_lines(const char *buf, size_t n, int whole, size_t limit, size_t *starts,
                            size_t *lens, size_t cap, int *cut)
{
    *cut = 0;
    if (limit > cap)
        limit = cap;
    size_t e = n; /* an unterminated last line is still being written: not a record yet */
    while (e > 0 && buf[e - 1] != '\n')
        e--;
    size_t k = 0;
    while (e > 0 && k < limit) {
        size_t nl = e - 1, s = nl;
        while (s > 0 && buf[s - 1] != '\n')
            s--;
        if (s == 0 && !whole) { /* may be the end of a line that began before buf */
            *cut = 1;
            break;
        }
        starts[k] = s;
        lens[k] = nl - s;
        k++;
        e = s;
    }
    if (k == limit && e > 0)
        *cut = 1;
    for (size_t i = 0; i < k / 2; i++) { /* oldest first */
        size_t ts = starts[i], tl = lens[i];
        starts[i] = starts[k - 1 - i];
        lens[i] = lens[k - 1 - i];
        starts[k - 1 - i] = ts;
        lens[k - 1 - i] = tl;
    }
    return k;
}
