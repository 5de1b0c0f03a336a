/* Fuzz target: the security stores' stored values (security/secstore.c and the decoders of
 * security/acl.c, broker.c, apikey.c, revocation.c), through the real loading path: an in-memory
 * kv (tests/unit/fake_kv.h) holds one entry and the store attaches to it. The first byte picks the
 * store (ACL, broker, API keys, revocations); the rest is "KEY\nVALUE" (without a newline: a fixed
 * valid key and the whole rest as value). Checked: loading answers SL_OK, SL_EFORMAT or SL_ENOMEM;
 * a refusal names the table, quotes no control byte and leaves the store empty and unattached; an
 * accepted value is state the store writes back as a value it accepts again, unchanged (ACL
 * entries, broker roles, API key records); a loaded revocation is in force unless it lapsed, in
 * which case it is purged, and its reason has no control byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/apikey.h>
#include <sluice/broker.h>
#include <sluice/revocation.h>

#include "../tests/unit/fake_kv.h"
#include "security/acl.h"

#define NOW 1700000000.0

static double fixed_clock(void *ud)
{
    return NOW;
}

static void sync_done(void *ud, int rc)
{
    *(int *)ud = rc;
}

static void commit(fake_kv *f)
{
    int rc = -1;
    f->base.ops->barrier(&f->base, sync_done, &rc);
    if (rc != SL_OK)
        abort();
}

static void check_refusal(int rc, const sl_status *st, const char *table)
{
    if (rc != SL_EFORMAT && rc != SL_ENOMEM)
        abort();
    char want[64];
    snprintf(want, sizeof want, "stored %s entry '", table);
    if (rc == SL_EFORMAT && strncmp(st->message, want, strlen(want)) != 0)
        abort();
    for (const unsigned char *p = (const unsigned char *)st->message; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
}

static int acl_same(const sl_acl_entry *a, size_t na, const sl_acl_entry *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i].principal, b[i].principal) || a[i].role != b[i].role ||
            a[i].nchannels != b[i].nchannels)
            return 0;
        for (size_t k = 0; k < a[i].nchannels; k++)
            if (strcmp(a[i].channels[k], b[i].channels[k]))
                return 0;
    }
    return 1;
}

static void fuzz_acl(fake_kv *f)
{
    sl__acl *a, *b;
    sl_status st;
    if (sl__acl_new(&a) != SL_OK || sl__acl_new(&b) != SL_OK)
        abort();
    int rc = sl__acl_attach(a, &f->base, &st);
    if (rc != SL_OK) {
        check_refusal(rc, &st, SL__KV_ACL);
        if (sl__acl_size(a) != 0)
            abort();
    } else {
        sl_acl_entry *e, *e2;
        size_t n, n2;
        if (sl__acl_list(a, &e, &n) != SL_OK)
            abort();
        for (size_t i = 0; i < n; i++)
            if (sl__acl_set(a, e[i].principal, e[i].role, (const char *const *)e[i].channels,
                            e[i].nchannels) != SL_OK)
                abort();
        commit(f);
        if (sl__acl_attach(b, &f->base, &st) != SL_OK || sl__acl_list(b, &e2, &n2) != SL_OK ||
            !acl_same(e, n, e2, n2))
            abort();
        sl_acl_entries_free(e, n);
        sl_acl_entries_free(e2, n2);
    }
    sl__acl_free(a);
    sl__acl_free(b);
}

static void fuzz_broker(fake_kv *f, const char *key)
{
    sl_broker *a, *b;
    sl_status st;
    if (sl_broker_new(&a, NULL) != SL_OK || sl_broker_new(&b, NULL) != SL_OK)
        abort();
    int rc = sl_broker_attach(a, &f->base, &st);
    const char *const *r, *const *r2;
    size_t n = sl_broker_roles_of(a, key, &r);
    if (rc != SL_OK) {
        check_refusal(rc, &st, SL__KV_BROKER);
        if (n != 0)
            abort();
    } else if (n > 0) {
        if (sl_broker_assign(a, key, r, n) != SL_OK)
            abort();
        commit(f);
        n = sl_broker_roles_of(a, key, &r);
        if (sl_broker_attach(b, &f->base, &st) != SL_OK || sl_broker_roles_of(b, key, &r2) != n)
            abort();
        for (size_t i = 0; i < n; i++)
            if (strcmp(r[i], r2[i]) != 0)
                abort();
    }
    sl_broker_free(a);
    sl_broker_free(b);
}

static void fuzz_apikeys(fake_kv *f)
{
    sl_apikey_store *a, *b;
    sl_status st;
    if (sl_apikey_store_open(&a, NULL, &st) != SL_OK || sl_apikey_store_open(&b, NULL, &st))
        abort();
    int rc = sl_apikey_store_attach(a, &f->base, &st);
    sl_apikey_record *r, *r2;
    size_t n, n2;
    if (sl_apikey_list(a, &r, &n) != SL_OK)
        abort();
    if (rc != SL_OK) {
        check_refusal(rc, &st, SL__KV_APIKEYS);
        if (n != 0)
            abort();
    } else {
        /* A change stages a new record; everything reads back as it was loaded. */
        char *key, id[SL_APIKEY_ID_LEN + 1];
        if (sl_apikey_create(a, "fuzz-svc", SL_ROLE_READ, NULL, 0, 0, NOW, &key, id, &st) != SL_OK)
            abort();
        commit(f);
        if (sl_apikey_store_attach(b, &f->base, &st) != SL_OK || sl_apikey_list(b, &r2, &n2))
            abort();
        if (n2 != n + 1)
            abort();
        for (size_t i = 0, j = 0; i < n; i++, j++) {
            if (strcmp(r2[j].id, id) == 0)
                j++;
            if (strcmp(r[i].id, r2[j].id) || strcmp(r[i].principal, r2[j].principal) ||
                r[i].role != r2[j].role || r[i].scoped != r2[j].scoped ||
                r[i].nchannels != r2[j].nchannels || r[i].created_at != r2[j].created_at ||
                r[i].expires_at != r2[j].expires_at)
                abort();
        }
        sl_identity who;
        sl_identity_init(&who);
        if (sl_apikey_authenticate(b, key, strlen(key), NOW, &who, &st) != SL_OK)
            abort();
        sl_identity_clear(&who);
        sl_apikey_key_free(key);
        sl_apikey_records_free(r2, n2);
    }
    sl_apikey_records_free(r, n);
    sl_apikey_store_close(a);
    sl_apikey_store_close(b);
}

typedef struct answer {
    int status;
    char reason[SL_REVOCATION_REASON_MAX + 1];
} answer;

static void on_answer(void *ud, int status, const char *reason)
{
    answer *a = ud;
    a->status = status;
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
}

static void fuzz_revocations(fake_kv *f, const char *key, size_t klen)
{
    sl_revocation_store *s = NULL;
    sl_status st;
    int rc = sl_revocation_embedded_new(&s, NULL, 3600, &f->base, fixed_clock, NULL, &st);
    if (rc != SL_OK) {
        check_refusal(rc, &st, SL__KV_REVOCATIONS);
        if (s != NULL)
            abort();
        return;
    }
    /* Accepted: the key was "t:" + a token id or "u:" + a user. */
    if (klen < 3 || key[1] != ':' || (key[0] != 't' && key[0] != 'u'))
        abort();
    answer a = {-1, ""};
    if (key[0] == 't')
        sl_revocation_check(s, key + 2, "fuzz-user", NOW, on_answer, &a);
    else
        sl_revocation_check(s, NULL, key + 2, 0, on_answer, &a);
    for (const unsigned char *p = (const unsigned char *)a.reason; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
    commit(f);
    int kept = fake_kv_get(f, SL__KV_REVOCATIONS, key) != NULL;
    /* In force exactly when it was kept (a user cut-off also needs issued_at <= cut-off, and a
     * negative cut-off never covers issued_at 0). */
    if (key[0] == 't' && (a.status == SL_ETOKEN) != kept)
        abort();
    if (a.status == SL_ETOKEN && !kept)
        abort();
    sl_revocation_store_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int which = data[0] % 4;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    static const char *const tables[] = {SL__KV_ACL, SL__KV_BROKER, SL__KV_APIKEYS,
                                         SL__KV_REVOCATIONS};
    static const char *const keys[] = {"fuzz-user", "fuzz-user", "abcdefghijkl", "t:tok-1"};
    char key[600];
    const char *val = rest;
    size_t vlen = len, klen = strlen(keys[which]);
    const char *nl = memchr(rest, '\n', len);
    if (nl != NULL && (size_t)(nl - rest) >= 1 && (size_t)(nl - rest) <= 511) {
        klen = (size_t)(nl - rest);
        memcpy(key, rest, klen);
        val = nl + 1;
        vlen = len - klen - 1;
    } else {
        memcpy(key, keys[which], klen);
    }
    key[klen] = '\0';
    fake_kv *f = fake_kv_new();
    if (f == NULL)
        abort();
    fake_kv_set_raw(f, tables[which], key, klen, val, vlen);
    /* A key holding a NUL byte cannot be asked for by name; the stores must refuse it anyway. */
    int named = strlen(key) == klen;
    switch (which) {
    case 0:
        fuzz_acl(f);
        break;
    case 1:
        fuzz_broker(f, named ? key : "");
        break;
    case 2:
        fuzz_apikeys(f);
        break;
    default:
        if (named)
            fuzz_revocations(f, key, klen);
        else {
            sl_revocation_store *s = NULL;
            sl_status st;
            int rc = sl_revocation_embedded_new(&s, NULL, 3600, &f->base, fixed_clock, NULL, &st);
            check_refusal(rc, &st, SL__KV_REVOCATIONS);
        }
        break;
    }
    fake_kv_free(f);
    return 0;
}
