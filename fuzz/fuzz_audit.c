/* Fuzz target: the audit log's verifier (sl_audit_verify_text) and the tail check sl_audit_log_open
 * runs before continuing a chain (sl__audit_tail_parse), both in src/security/audit.c. The input
 * is checked twice. As a log: the verdict must be consistent (records checked = lines before the
 * bad one, a reason exactly when not intact), and for an intact log the tail check must find the
 * chain's end where the verifier did, from the whole text and from the last line alone. As
 * records: each input line that is a JSON object becomes a record of a log built here by the
 * documented rule (docs/AUDIT.md: "seq" 1, 2, ..., "prev" the SHA-256 of the line before); that
 * log must verify, and flipping any bits of one byte of a line other than the last must make it
 * fail. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/audit.h>

#include "security/audit_internal.h"

#define MAX_RECORDS 32

static void sha256_hex(const char *p, size_t n, char out[SL_AUDIT_HASH_HEX + 1])
{
    unsigned char md[32];
    unsigned len = 0;
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        abort();
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void check_log(const char *text, size_t size)
{
    sl_audit_verify_result res;
    int rc = sl_audit_verify_text(text, size, &res);
    if (rc != SL_OK && rc != SL_EINVAL)
        abort();
    if ((rc == SL_OK) != (res.intact == 1))
        abort();
    if (res.intact ? res.bad_line != 0 || res.reason[0] != '\0'
                   : res.bad_line == 0 || res.reason[0] == '\0' || res.records != res.bad_line - 1)
        abort();
    if (res.records != res.last_seq)
        abort(); /* seq counts lines from 1 without gaps */
    if (!res.intact || res.records == 0)
        return;
    uint64_t seq = 0;
    char hash[SL_AUDIT_HASH_HEX + 1];
    const char *why = NULL;
    if (sl__audit_tail_parse(text, size, 1, &seq, hash, &why) != SL__AUDIT_TAIL_OK ||
        seq != res.last_seq || strcmp(hash, res.last_hash) != 0)
        abort();
    /* What sl_audit_log_open reads of a long file: the last line and the newline before it. */
    const char *start = text + size - 1;
    while (start > text && start[-1] != '\n')
        start--;
    if (start > text) {
        start--;
        if (sl__audit_tail_parse(start, (size_t)(text + size - start), 0, &seq, hash, &why) !=
                SL__AUDIT_TAIL_OK ||
            seq != res.last_seq || strcmp(hash, res.last_hash) != 0)
            abort();
    } else if (sl__audit_tail_parse(text, size, 0, &seq, hash, &why) != SL__AUDIT_TAIL_TOO_LONG) {
        abort(); /* a line with nothing before it may be the end of a longer one */
    }
}

/* Builds a log from the input's JSON object lines; returns its length (0: no records). */
static size_t build_log(const char *data, size_t size, char **out, size_t *ends, size_t *n)
{
    size_t cap = 256, len = 0;
    char *log = malloc(cap);
    char prev[SL_AUDIT_HASH_HEX + 1];
    memcpy(prev, SL_AUDIT_GENESIS, sizeof prev);
    *n = 0;
    for (size_t off = 0; off < size && *n < MAX_RECORDS && log;) {
        const char *p = data + off, *nl = memchr(p, '\n', size - off);
        size_t ll = nl ? (size_t)(nl - p) : size - off;
        off += ll + 1;
        json_t *o = json_loadb(p, ll, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(o) || json_object_get(o, "seq") || json_object_get(o, "prev")) {
            json_decref(o);
            continue;
        }
        json_t *rec = json_object();
        json_object_set_new(rec, "seq", json_integer((json_int_t)(*n + 1)));
        json_object_set_new(rec, "prev", json_string(prev));
        json_object_update(rec, o);
        json_decref(o);
        char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        json_decref(rec);
        if (line == NULL)
            abort();
        size_t l = strlen(line);
        if (len + l + 1 > cap) {
            while (len + l + 1 > cap)
                cap *= 2;
            log = realloc(log, cap);
            if (log == NULL)
                abort();
        }
        memcpy(log + len, line, l);
        sha256_hex(line, l, prev);
        free(line);
        len += l;
        log[len++] = '\n';
        ends[(*n)++] = len;
    }
    if (log == NULL)
        abort();
    *out = log;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_log((const char *)data, size);

    char *log;
    size_t ends[MAX_RECORDS], n;
    size_t len = build_log((const char *)data, size, &log, ends, &n);
    sl_audit_verify_result res;
    if (sl_audit_verify_text(log, len, &res) != SL_OK || res.records != n)
        abort();
    check_log(log, len);
    if (n >= 2) {
        /* One byte of a line before the last, chosen and changed by the input. */
        size_t at = (size ? data[0] * 131u + size : 0) % ends[n - 2];
        unsigned char x = size > 1 && data[1] ? data[1] : 0x20;
        log[at] = (char)(log[at] ^ x);
        if (sl_audit_verify_text(log, len, &res) != SL_EINVAL || res.intact)
            abort();
    }
    free(log);
    return 0;
}
