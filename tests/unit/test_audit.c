/* The tamper-evident audit log: the record format against an independent SHA-256, the verifier
 * against every way of tampering a file (edit, delete, swap, truncate, insert) and random byte
 * mutations, the writer continuing a chain across reopen and refusing damaged files, and every
 * failure the writer must report instead of losing a record silently: a full disk (/dev/full), a
 * file size limit hit in the middle of a line, a removed, replaced or concurrently appended file, a
 * second writer. Runs as root in CI, so failures are provoked without relying on permissions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/audit.h>

#include "security/audit_internal.h"

static char dir[64];

/* ---- helpers --------------------------------------------------------------------------------- */

static void path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return p;
}

static void spit(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void sha256_hex(const char *data, size_t len, char *hex)
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < n; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
}

/* Writes n records to a fresh log at path and returns the file's text. */
static char *make_log(const char *path, int n, size_t *len)
{
    unlink(path);
    sl_audit_log *log;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    for (int i = 0; i < n; i++) {
        char rec[128];
        snprintf(rec, sizeof rec, "{\"ts\":%d.5,\"event\":\"acl.grant\",\"principal\":\"user-%d\"}",
                 1700000000 + i, i);
        assert_int_equal(sl_audit_log_write(log, rec, &st), SL_OK);
    }
    sl_audit_log_close(log);
    return slurp(path, len);
}

/* Start and length (without newline) of 1-based line k. */
static const char *line_at(const char *text, int k, size_t *len)
{
    const char *p = text;
    for (int i = 1; i < k; i++)
        p = strchr(p, '\n') + 1;
    *len = (size_t)(strchr(p, '\n') - p);
    return p;
}

static void expect_bad(const char *text, size_t len, size_t line, const char *reason)
{
    sl_audit_verify_result res;
    assert_int_equal(sl_audit_verify_text(text, len, &res), SL_EINVAL);
    assert_false(res.intact);
    if (res.bad_line != line || strstr(res.reason, reason) == NULL)
        fail_msg("expected line %zu: %s; got line %zu: %s", line, reason, res.bad_line, res.reason);
    assert_int_equal(res.records, line - 1);
}

/* ---- format and verification ----------------------------------------------------------------- */

static void test_format(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "format.log");
    size_t len;
    char *text = make_log(path, 3, &len);
    size_t n1, n2;
    const char *l1 = line_at(text, 1, &n1);
    const char *l2 = line_at(text, 2, &n2);
    const char want1[] = "{\"seq\":1,\"prev\":\"" SL_AUDIT_GENESIS
                         "\",\"ts\":1700000000.5,\"event\":\"acl.grant\",\"principal\":\"user-0\"}";
    assert_int_equal(n1, strlen(want1));
    assert_memory_equal(l1, want1, n1);
    char h[65], want2[256];
    sha256_hex(l1, n1, h);
    snprintf(want2, sizeof want2, "{\"seq\":2,\"prev\":\"%s\",\"ts\":1700000001.5,", h);
    assert_memory_equal(l2, want2, strlen(want2));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    free(text);
}

static void test_chain_verifies(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "chain.log");
    size_t len;
    char *text = make_log(path, 50, &len);
    sl_audit_verify_result res;
    assert_int_equal(sl_audit_verify_text(text, len, &res), SL_OK);
    assert_true(res.intact);
    assert_int_equal(res.bad_line, 0);
    assert_string_equal(res.reason, "");
    assert_int_equal(res.records, 50);
    assert_int_equal(res.last_seq, 50);
    size_t n;
    const char *last = line_at(text, 50, &n);
    char h[65];
    sha256_hex(last, n, h);
    assert_string_equal(res.last_hash, h);

    sl_status st;
    sl_audit_verify_result fres;
    assert_int_equal(sl_audit_verify_file(path, &fres, &st), SL_OK);
    assert_true(fres.intact);
    assert_int_equal(fres.last_seq, 50);
    assert_string_equal(fres.last_hash, h);
    free(text);
}

static void test_empty(void **state)
{
    (void)state;
    sl_audit_verify_result res;
    assert_int_equal(sl_audit_verify_text("", 0, &res), SL_OK);
    assert_true(res.intact);
    assert_int_equal(res.last_seq, 0);
    assert_string_equal(res.last_hash, SL_AUDIT_GENESIS);
    assert_int_equal(sl_audit_verify_text(NULL, 0, &res), SL_OK);
    assert_int_equal(sl_audit_verify_text(NULL, 1, &res), SL_EINVAL);
}

static void test_edit_byte(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "edit.log");
    size_t len, n;
    char *text = make_log(path, 20, &len);
    /* user-9 -> user-X on line 10: still a valid record, so line 11 is where the chain breaks. */
    const char *l10 = line_at(text, 10, &n);
    char *p = strstr(l10, "user-9");
    assert_true(p && p < l10 + n);
    p[5] = 'X';
    expect_bad(text, len, 11, "hash chain broken");
    p[5] = '9';
    /* Breaking the JSON of a line shows up on the line itself. */
    text[l10 - text] = '[';
    expect_bad(text, len, 10, "not a JSON object");
    text[l10 - text] = '{';
    /* Editing "seq" or "prev" shows up on the line itself too. */
    p = strstr(l10, "\"seq\":10");
    p[7] = '1';
    expect_bad(text, len, 10, "sequence 10 expected, found 11");
    p[7] = '0';
    p = strstr(l10, "\"prev\":\"") + 8;
    p[0] = p[0] == 'a' ? 'b' : 'a';
    expect_bad(text, len, 10, "hash chain broken");
    free(text);
}

static void test_delete_line(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "delete.log");
    size_t len, n;
    char *text = make_log(path, 20, &len);
    const char *l7 = line_at(text, 7, &n);
    size_t at = (size_t)(l7 - text);
    memmove(text + at, text + at + n + 1, len - at - n - 1);
    len -= n + 1;
    expect_bad(text, len, 7, "sequence 7 expected, found 8");
    free(text);

    /* Deleting the first line. */
    text = make_log(path, 5, &len);
    line_at(text, 1, &n);
    expect_bad(text + n + 1, len - n - 1, 1, "sequence 1 expected, found 2");
    free(text);
}

static void test_swap_lines(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "swap.log");
    size_t len, n4, n5;
    char *text = make_log(path, 10, &len);
    const char *l4 = line_at(text, 4, &n4);
    const char *l5 = line_at(text, 5, &n5);
    char *swapped = malloc(len);
    size_t at = (size_t)(l4 - text);
    memcpy(swapped, text, at);
    memcpy(swapped + at, l5, n5 + 1);
    memcpy(swapped + at + n5 + 1, l4, n4 + 1);
    memcpy(swapped + at + n4 + n5 + 2, l5 + n5 + 1, len - at - n4 - n5 - 2);
    expect_bad(swapped, len, 4, "sequence 4 expected, found 5");
    free(swapped);
    free(text);
}

/* Deleting a line and renumbering the rest still breaks the chain. */
static void test_delete_and_renumber(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "renumber.log");
    size_t len;
    char *text = make_log(path, 3, &len);
    size_t n1, n2, n3;
    const char *l1 = line_at(text, 1, &n1);
    line_at(text, 2, &n2);
    const char *l3 = line_at(text, 3, &n3);
    char buf[1024];
    int k = snprintf(buf, sizeof buf, "%.*s\n%.*s\n", (int)n1, l1, (int)n3, l3);
    char *p = strstr(buf + n1 + 1, "\"seq\":3");
    p[6] = '2';
    expect_bad(buf, (size_t)k, 2, "hash chain broken");
    free(text);
}

static void test_truncated_and_junk(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "trunc.log");
    size_t len, n;
    char *text = make_log(path, 5, &len);
    line_at(text, 5, &n);
    expect_bad(text, len - n / 2, 5, "truncated record");
    expect_bad(text, len - 1, 5, "truncated record"); /* only the final newline is missing */

    /* A non-JSON line inserted at line 3; an empty line; a JSON array; duplicate members. */
    size_t n12;
    const char *l3 = line_at(text, 3, &n12);
    size_t head = (size_t)(l3 - text);
    static const char *const junk[] = {"hello", "", "[1,2]", "{\"seq\":3,\"seq\":3}", "42"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        char buf[4096];
        size_t j = strlen(junk[i]);
        memcpy(buf, text, head);
        memcpy(buf + head, junk[i], j);
        buf[head + j] = '\n';
        memcpy(buf + head + j + 1, l3, len - head);
        expect_bad(buf, len + j + 1, 3, "not a JSON object");
    }

    /* Missing or malformed chain fields. */
    static const char *const fields[][2] = {
        {"{\"prev\":\"" SL_AUDIT_GENESIS "\"}\n", "invalid \"seq\""},
        {"{\"seq\":0,\"prev\":\"" SL_AUDIT_GENESIS "\"}\n", "invalid \"seq\""},
        {"{\"seq\":-1,\"prev\":\"" SL_AUDIT_GENESIS "\"}\n", "invalid \"seq\""},
        {"{\"seq\":1.0,\"prev\":\"" SL_AUDIT_GENESIS "\"}\n", "invalid \"seq\""},
        {"{\"seq\":\"1\",\"prev\":\"" SL_AUDIT_GENESIS "\"}\n", "invalid \"seq\""},
        {"{\"seq\":1}\n", "invalid \"prev\""},
        {"{\"seq\":1,\"prev\":null}\n", "invalid \"prev\""},
        {"{\"seq\":1,\"prev\":\"" SL_AUDIT_GENESIS "A\"}\n", "invalid \"prev\""},
        {"{\"seq\":1,\"prev\":\"1" SL_AUDIT_GENESIS "\"}\n", "invalid \"prev\""},
        {"{\"seq\":1,\"prev\":\"" SL_AUDIT_GENESIS "\",\"seq\":1}\n", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        expect_bad(fields[i][0], strlen(fields[i][0]), 1, fields[i][1]);
    /* A first line that does not start from the genesis value. */
    char first[128];
    int k = snprintf(first, sizeof first, "{\"seq\":1,\"prev\":\"1%.63s\"}\n", SL_AUDIT_GENESIS);
    expect_bad(first, (size_t)k, 1, "hash chain broken");
    free(text);
}

/* Random byte mutations: anything that changes a byte before the last line is detected, and the
 * verifier never crashes or reads out of bounds (ASan) whatever it is given. */
static void test_mutations(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "fuzz.log");
    size_t len, nlast;
    char *text = make_log(path, 12, &len);
    size_t last_start = (size_t)(line_at(text, 12, &nlast) - text);
    char *buf = malloc(len);
    srand(7);
    static const char alphabet[] = "{}[]:,\"\\0123456789abcdef \n\x01\x80\xff";
    for (int i = 0; i < 20000; i++) {
        memcpy(buf, text, len);
        size_t at = (size_t)rand() % len;
        char c = alphabet[(size_t)rand() % (sizeof alphabet - 1)];
        if (buf[at] == c)
            continue;
        buf[at] = c;
        size_t cut = rand() % 8 == 0 ? (size_t)rand() % len : len;
        sl_audit_verify_result res;
        int rc = sl_audit_verify_text(buf, cut, &res);
        if (at < last_start && cut == len && rc != SL_EINVAL)
            fail_msg("mutation at byte %zu to 0x%02x not detected", at, (unsigned char)c);
        if (rc == SL_EINVAL && (res.bad_line == 0 || res.reason[0] == '\0'))
            fail_msg("tampered without a line or reason");
    }
    free(buf);
    free(text);
}

/* Files bigger than the verifier's read block, and lines longer than a record may be. */
static void test_large_file(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "large.log");
    size_t len;
    char *text = make_log(path, 3000, &len);
    assert_true(len > 3 * 65536);
    sl_audit_verify_result a, b;
    sl_status st;
    assert_int_equal(sl_audit_verify_file(path, &a, &st), SL_OK);
    assert_int_equal(sl_audit_verify_text(text, len, &b), SL_OK);
    assert_int_equal(a.last_seq, 3000);
    assert_string_equal(a.last_hash, b.last_hash);
    /* Tamper with the line that straddles the first block boundary. */
    size_t nl = 65536;
    while (text[nl] != '\n')
        nl--;
    char *p = strstr(text + nl + 1, "user-");
    p[5] = p[5] == '1' ? '2' : '1';
    spit(path, text, len);
    assert_int_equal(sl_audit_verify_file(path, &a, &st), SL_EINVAL);
    assert_int_equal(sl_audit_verify_text(text, len, &b), SL_EINVAL);
    assert_int_equal(a.bad_line, b.bad_line);
    assert_string_equal(a.reason, b.reason);
    assert_true(strstr(a.reason, "hash chain broken") != NULL);
    free(text);

    /* A line longer than SL_AUDIT_RECORD_MAX, in memory and across blocks. */
    size_t big = SL_AUDIT_RECORD_MAX + 100;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\n';
    expect_bad(huge, big + 1, 1, "longer than");
    spit(path, huge, big + 1);
    assert_int_equal(sl_audit_verify_file(path, &a, &st), SL_EINVAL);
    assert_int_equal(a.bad_line, 1);
    assert_true(strstr(a.reason, "longer than") != NULL);
    free(huge);

    assert_int_equal(sl_audit_verify_file("/nonexistent/audit.log", &a, &st), SL_EIO);
    assert_true(strstr(st.message, "No such file") != NULL);
    assert_int_equal(sl_audit_verify_file(dir, &a, &st), SL_EIO);
    assert_true(strstr(st.message, "Is a directory") != NULL);
}

/* ---- the writer ------------------------------------------------------------------------------ */

static void test_reopen_continues(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "reopen.log");
    size_t len;
    free(make_log(path, 5, &len));
    sl_audit_log *log;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    uint64_t seq;
    char tip[65], h[65];
    sl_audit_log_tip(log, &seq, tip);
    assert_int_equal(seq, 5);
    sl_audit_verify_result res;
    assert_int_equal(sl_audit_verify_file(path, &res, &st), SL_OK);
    assert_string_equal(tip, res.last_hash);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sl_audit_log_write(log, "{\"event\":\"again\"}", &st), SL_OK);
    sl_audit_log_tip(log, &seq, tip);
    sl_audit_log_close(log);
    assert_int_equal(sl_audit_verify_file(path, &res, &st), SL_OK);
    assert_int_equal(res.last_seq, 10);
    assert_int_equal(seq, 10);
    assert_string_equal(tip, res.last_hash);
    char *text = slurp(path, &len);
    size_t n;
    const char *l5 = line_at(text, 5, &n);
    sha256_hex(l5, n, h);
    assert_non_null(strstr(text, h)); /* line 6 chains to line 5 */
    free(text);

    /* A fresh file starts from the genesis value. */
    path_in(path, sizeof path, "fresh.log");
    unlink(path);
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    sl_audit_log_tip(log, &seq, tip);
    assert_int_equal(seq, 0);
    assert_string_equal(tip, SL_AUDIT_GENESIS);
    sl_audit_log_tip(log, NULL, NULL);
    sl_audit_log_close(log);
    sl_audit_log_close(NULL);
}

static void test_refuse_damaged_tail(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "damaged.log");
    size_t len, n;
    char *text = make_log(path, 4, &len);
    sl_audit_log *log = (sl_audit_log *)1;
    sl_status st;
    /* Cut in the middle of the last line. */
    line_at(text, 4, &n);
    spit(path, text, len - n / 2);
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_EIO);
    assert_null(log);
    assert_non_null(strstr(st.message, "ends with an incomplete record"));
    assert_non_null(strstr(st.message, path));
    /* A complete last line that is no record. */
    char buf[4096];
    memcpy(buf, text, len);
    memcpy(buf + len, "garbage\n", 8);
    spit(path, buf, len + 8);
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_EIO);
    assert_non_null(strstr(st.message, "not an audit record (not a JSON object)"));
    memcpy(buf + len, "{\"a\":1}\n", 8);
    spit(path, buf, len + 8);
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_EIO);
    assert_non_null(strstr(st.message, "invalid \"seq\""));
    /* The file is left as it was. */
    char *after = slurp(path, &n);
    assert_int_equal(n, len + 8);
    free(after);
    /* A one-line file whose only line is a record is fine. */
    line_at(text, 1, &n);
    spit(path, text, n + 1);
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    uint64_t seq;
    sl_audit_log_tip(log, &seq, NULL);
    assert_int_equal(seq, 1);
    sl_audit_log_close(log);
    /* Unopenable paths. */
    assert_int_equal(sl_audit_log_open(&log, "/nonexistent/dir/audit.log", &st), SL_EIO);
    assert_non_null(strstr(st.message, "cannot open audit log /nonexistent/dir/audit.log"));
    assert_int_equal(sl_audit_log_open(&log, "", &st), SL_EINVAL);
    free(text);
}

static void test_second_writer(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "locked.log");
    unlink(path);
    sl_audit_log *a, *b;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&a, path, &st), SL_OK);
    assert_int_equal(sl_audit_log_open(&b, path, &st), SL_EIO);
    assert_non_null(strstr(st.message, "in use by another writer"));
    sl_audit_log_close(a);
    assert_int_equal(sl_audit_log_open(&b, path, &st), SL_OK);
    sl_audit_log_close(b);
}

static void test_bad_records(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "records.log");
    unlink(path);
    sl_audit_log *log;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    static const char *const bad[] = {"",
                                      "not json",
                                      "[1]",
                                      "\"s\"",
                                      "{\"seq\":9}",
                                      "{\"prev\":\"x\"}",
                                      "{\"a\":1,\"a\":2}",
                                      "{\"a\":1} x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(sl_audit_log_write(log, bad[i], &st), SL_EINVAL);
        assert_int_equal(st.code, SL_EINVAL);
    }
    assert_int_equal(sl_audit_log_write(log, NULL, &st), SL_EINVAL);
    /* Pretty-printed input comes out on one line; strings with newlines stay escaped. */
    assert_int_equal(sl_audit_log_write(log, "{\n  \"why\": \"a\\nb\",\n  \"n\": [1, 2]\n}", &st),
                     SL_OK);
    char *big = malloc(SL_AUDIT_RECORD_MAX + 32);
    int k = snprintf(big, 16, "{\"x\":\"");
    memset(big + k, 'a', SL_AUDIT_RECORD_MAX);
    strcpy(big + k + SL_AUDIT_RECORD_MAX, "\"}");
    assert_int_equal(sl_audit_log_write(log, big, &st), SL_ETOOBIG);
    free(big);
    uint64_t seq;
    sl_audit_log_tip(log, &seq, NULL);
    assert_int_equal(seq, 1);
    sl_audit_log_close(log);
    size_t len;
    char *text = slurp(path, &len);
    assert_string_equal(text, "{\"seq\":1,\"prev\":\"" SL_AUDIT_GENESIS
                              "\",\"why\":\"a\\nb\",\"n\":[1,2]}\n");
    free(text);
}

static void test_disk_full(void **state)
{
    (void)state;
    sl_audit_log *log;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&log, "/dev/full", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"token.issue\"}", &st), SL_EUNAVAIL);
    assert_int_equal(st.code, SL_EUNAVAIL);
    assert_string_equal(st.message, "audit log unavailable: No space left on device");
    uint64_t seq;
    sl_audit_log_tip(log, &seq, NULL);
    assert_int_equal(seq, 0);
    /* Nothing was written, so the next attempt fails for the same reason, not a sticky one. */
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"token.issue\"}", &st), SL_EUNAVAIL);
    assert_string_equal(st.message, "audit log unavailable: No space left on device");
    sl_audit_log_close(log);
}

/* A write cut short (here by RLIMIT_FSIZE, as by a disk filling up mid-line) fails and leaves the
 * file as it was, so it still verifies and the next write can succeed. */
static void test_partial_write(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "partial.log");
    size_t len;
    free(make_log(path, 3, &len));
    sl_audit_log *log;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)len + 40; /* room for part of the next line only */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = sl_audit_log_write(log, "{\"event\":\"acl.revoke\",\"principal\":\"worker-1\"}", &st);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    assert_int_equal(rc, SL_EUNAVAIL);
    assert_string_equal(st.message, "audit log unavailable: File too large");
    size_t now;
    char *text = slurp(path, &now);
    assert_int_equal(now, len);
    free(text);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"acl.revoke\"}", &st), SL_OK);
    sl_audit_log_close(log);
    sl_audit_verify_result res;
    assert_int_equal(sl_audit_verify_file(path, &res, &st), SL_OK);
    assert_int_equal(res.last_seq, 4);
}

static void test_file_removed_or_replaced(void **state)
{
    (void)state;
    char path[128], other[128];
    path_in(path, sizeof path, "moved.log");
    path_in(other, sizeof other, "moved.log.1");
    unlink(path);
    sl_audit_log *log;
    sl_status st;
    const char rec[] = "{\"event\":\"acl.grant\"}";

    /* Removed. */
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, rec, &st), SL_OK);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(sl_audit_log_write(log, rec, &st), SL_EUNAVAIL);
    assert_string_equal(st.message, "audit log unavailable: the file was removed");
    sl_audit_log_close(log);

    /* Moved aside, with or without a new file in its place. */
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    assert_int_equal(rename(path, other), 0);
    assert_int_equal(sl_audit_log_write(log, rec, &st), SL_EUNAVAIL);
    assert_string_equal(st.message, "audit log unavailable: the file was moved or replaced");
    spit(path, "", 0);
    assert_int_equal(sl_audit_log_write(log, rec, &st), SL_EUNAVAIL);
    assert_string_equal(st.message, "audit log unavailable: the file was moved or replaced");
    sl_audit_log_close(log);
    unlink(other);

    /* Appended to (or truncated) by someone else. */
    unlink(path);
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, rec, &st), SL_OK);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{}\n", 3), 3);
    assert_int_equal(sl_audit_log_write(log, rec, &st), SL_EUNAVAIL);
    assert_string_equal(st.message,
                        "audit log unavailable: the file was changed by another writer");
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(sl_audit_log_write(log, rec, &st), SL_EUNAVAIL);
    close(fd);
    sl_audit_log_close(log);
    unlink(path);
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* The start-up tail check on its own (sl_audit_log_open reads at most the last line and the
 * newline before it): where the chain continues, and each way a tail is refused. */
static void test_tail_parse(void **state)
{
    (void)state;
    static const char rec[] = "{\"seq\":7,\"prev\":\"" SL_AUDIT_GENESIS "\",\"event\":\"x\"}";
    char text[256], hash[SL_AUDIT_HASH_HEX + 1], want[SL_AUDIT_HASH_HEX + 1];
    unsigned char md[32];
    unsigned mdlen;
    assert_int_equal(EVP_Digest(rec, strlen(rec), md, &mdlen, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    uint64_t seq = 0;
    const char *why = NULL;

    snprintf(text, sizeof text, "%s\n", rec);
    assert_int_equal(sl__audit_tail_parse(text, strlen(text), 1, &seq, hash, &why),
                     SL__AUDIT_TAIL_OK);
    assert_int_equal(seq, 7);
    assert_string_equal(hash, want);
    /* the same line as the end of a longer file: its start is not known */
    assert_int_equal(sl__audit_tail_parse(text, strlen(text), 0, &seq, hash, &why),
                     SL__AUDIT_TAIL_TOO_LONG);
    /* with the newline before it, it is */
    snprintf(text, sizeof text, "junk\n%s\n", rec);
    seq = 0;
    assert_int_equal(sl__audit_tail_parse(text + 4, strlen(text) - 4, 0, &seq, hash, &why),
                     SL__AUDIT_TAIL_OK);
    assert_int_equal(seq, 7);
    assert_string_equal(hash, want);
    assert_int_equal(sl__audit_tail_parse(rec, strlen(rec), 1, &seq, hash, &why),
                     SL__AUDIT_TAIL_INCOMPLETE);
    assert_int_equal(sl__audit_tail_parse(text, 0, 1, &seq, hash, &why), SL__AUDIT_TAIL_INCOMPLETE);
    assert_int_equal(sl__audit_tail_parse("{\"seq\":0}\n", 10, 1, &seq, hash, &why),
                     SL__AUDIT_TAIL_NOT_RECORD);
    assert_non_null(why);
    assert_int_equal(sl__audit_tail_parse("\n", 1, 1, &seq, hash, &why), SL__AUDIT_TAIL_NOT_RECORD);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sluice-audit-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Rotation: the file is moved aside, the log reopened at its path, and the chain goes on in the
 * new file; each file verifies on its own only from the tip of the one before. */
static void test_reopen_continues_the_chain(void **state)
{
    (void)state;
    char old[] = "/tmp/sluice-audit-rot-XXXXXX", path[64], moved[72];
    assert_non_null(mkdtemp(old));
    snprintf(path, sizeof path, "%s/audit.jsonl", old);
    snprintf(moved, sizeof moved, "%s/audit.jsonl.1", old);
    sl_audit_log *log;
    sl_status st;
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"a\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"b\"}", &st), SL_OK);
    assert_int_equal(sl_audit_log_sync(log), SL_OK);
    /* Not rotated: reopening changes nothing. */
    assert_int_equal(sl_audit_log_reopen(log, &st), SL_OK);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(sl_audit_log_reopen(log, &st), SL_OK);
    assert_int_equal(sl_audit_log_write(log, "{\"event\":\"c\"}", &st), SL_OK);
    sl_audit_log_close(log);

    sl_audit_verify_result first, second;
    assert_int_equal(sl_audit_verify_file(moved, &first, &st), SL_OK);
    assert_int_equal(first.last_seq, 2);
    /* Alone, the new file starts at seq 3: not a log of its own. */
    assert_int_equal(sl_audit_verify_file(path, &second, &st), SL_EINVAL);
    assert_int_equal(sl_audit_verify_file_from(path, first.last_seq, first.last_hash, &second, &st),
                     SL_OK);
    assert_int_equal(second.records, 1);
    assert_int_equal(second.last_seq, 3);
    /* Linked to anything else, it does not verify. */
    assert_int_equal(
        sl_audit_verify_file_from(path, first.last_seq, SL_AUDIT_GENESIS, &second, &st), SL_EINVAL);

    /* A non-empty file at the path after rotation cannot continue the chain. */
    assert_int_equal(sl_audit_log_open(&log, path, &st), SL_OK);
    assert_int_equal(rename(path, moved), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"seq\":1}\n", f);
    fclose(f);
    assert_int_equal(sl_audit_log_reopen(log, &st), SL_EIO);
    assert_non_null(strstr(st.message, "not empty"));
    sl_audit_log_close(log);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", old);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_chain_verifies),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_edit_byte),
        cmocka_unit_test(test_delete_line),
        cmocka_unit_test(test_swap_lines),
        cmocka_unit_test(test_delete_and_renumber),
        cmocka_unit_test(test_truncated_and_junk),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_large_file),
        cmocka_unit_test(test_reopen_continues),
        cmocka_unit_test(test_refuse_damaged_tail),
        cmocka_unit_test(test_second_writer),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_partial_write),
        cmocka_unit_test(test_file_removed_or_replaced),
        cmocka_unit_test(test_tail_parse),
        cmocka_unit_test(test_reopen_continues_the_chain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
