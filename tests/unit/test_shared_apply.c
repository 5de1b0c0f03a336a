/* The apply hooks of the security stores (security/acl.h, security/apply.h): how the ACL, the
 * broker's role assignments and the API key store take in a change another node stored, without
 * Redis. Each store is attached to the in-memory fake kv (tests/unit/fake_kv.h), so the tests also
 * check that an apply never writes to the kv. Checked for each: one entry replaced, unchanged (the
 * same value again: a node's own notice coming back) and removed; bad stored data refused with
 * SL_EFORMAT naming the table and key, the store unchanged; a whole-table apply that adds, changes
 * and removes, and keeps what it had for a principal whose stored value is bad. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/apikey.h>
#include <sluice/broker.h>

#include "fake_kv.h"
#include "security/acl.h"
#include "security/apply.h"

#define NOW 1700000000.0

static const char GRANT_W[] = "{\"v\":1,\"role\":\"write\",\"channels\":[\"jobs.*\"]}";
static const char GRANT_R[] = "{\"v\":1,\"role\":\"read\"}";

typedef struct seen {
    int n, removed;
    char last[64];
} seen;

static void on_changed(void *ud, const char *principal, int removed)
{
    seen *s = ud;
    s->n++;
    s->removed += removed;
    snprintf(s->last, sizeof s->last, "%s", principal);
}

static void test_acl_apply(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    sl__acl *acl;
    sl_status st = {0};
    assert_int_equal(sl__acl_new(&acl), SL_OK);
    assert_int_equal(sl__acl_attach(acl, &f->base, &st), SL_OK);
    assert_ptr_equal(sl__acl_kv(acl), &f->base);

    assert_int_equal(sl__acl_apply(acl, "alice", 5, GRANT_W, strlen(GRANT_W), &st),
                     SL__APPLY_CHANGED);
    assert_int_equal(sl__acl_role(acl, "alice", "jobs.eu"), SL_ROLE_WRITE);
    assert_int_equal(sl__acl_role(acl, "alice", "other"), SL_ROLE_NONE);
    /* The same again: nothing to tell anyone. */
    assert_int_equal(sl__acl_apply(acl, "alice", 5, GRANT_W, strlen(GRANT_W), &st), SL__APPLY_SAME);
    /* Narrowed. */
    assert_int_equal(sl__acl_apply(acl, "alice", 5, GRANT_R, strlen(GRANT_R), &st),
                     SL__APPLY_CHANGED);
    assert_int_equal(sl__acl_role(acl, "alice", "other"), SL_ROLE_READ);

    /* Bad data: refused, named, nothing changes. */
    static const char *const bad[] = {"not json", "{\"v\":1,\"role\":\"god\"}",
                                      "{\"v\":2,\"role\":\"read\"}", "[1]",
                                      "{\"v\":1,\"role\":\"read\",\"channels\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sl__acl_apply(acl, "alice", 5, bad[i], strlen(bad[i]), &st), SL_EFORMAT);
        assert_non_null(strstr(st.message, "stored acl entry 'alice'"));
        assert_int_equal(sl__acl_role(acl, "alice", "other"), SL_ROLE_READ);
    }
    assert_int_equal(sl__acl_apply(acl, "bad\nname", 8, GRANT_R, strlen(GRANT_R), &st), SL_EFORMAT);
    assert_null(strchr(st.message, '\n'));
    assert_int_equal(sl__acl_apply(acl, "a\0b", 3, GRANT_R, strlen(GRANT_R), &st), SL_EFORMAT);
    assert_int_equal(sl__acl_size(acl), 1);

    /* Removed, and removing what is not there changes nothing. */
    assert_int_equal(sl__acl_apply(acl, "alice", 5, NULL, 0, &st), SL__APPLY_REMOVED);
    assert_false(sl__acl_has(acl, "alice"));
    assert_int_equal(sl__acl_apply(acl, "alice", 5, NULL, 0, &st), SL__APPLY_SAME);

    /* Nothing was written to the kv. */
    assert_int_equal(f->ns, 0);
    assert_int_equal(fake_kv_count(f, SL__KV_ACL), 0);
    sl__acl_free(acl);
    fake_kv_free(f);
}

static void test_acl_apply_all(void **state)
{
    (void)state;
    sl__acl *acl;
    sl_status st = {0};
    assert_int_equal(sl__acl_new(&acl), SL_OK);
    assert_int_equal(sl__acl_set(acl, "keep", SL_ROLE_READ, NULL, 0), SL_OK);
    assert_int_equal(sl__acl_set(acl, "gone", SL_ROLE_READ, NULL, 0), SL_OK);
    assert_int_equal(sl__acl_set(acl, "damaged", SL_ROLE_ADMIN, NULL, 0), SL_OK);
    assert_int_equal(sl__acl_set(acl, "same", SL_ROLE_READ, NULL, 0), SL_OK);
    sl__secstore_entry e[] = {
        {"keep", 4, GRANT_W, strlen(GRANT_W)},    /* changed */
        {"new", 3, GRANT_R, strlen(GRANT_R)},     /* added */
        {"damaged", 7, "garbage", 7},             /* refused: keeps admin */
        {"same", 4, GRANT_R, strlen(GRANT_R)},    /* unchanged */
        {"bad\x01", 4, GRANT_R, strlen(GRANT_R)}, /* refused: not a principal */
    };
    seen s = {0};
    int n = sl__acl_apply_all(acl, e, sizeof e / sizeof e[0], on_changed, &s, &st);
    assert_int_equal(n, 3); /* gone, keep, new */
    assert_int_equal(s.n, 3);
    assert_int_equal(s.removed, 1);
    assert_int_equal(st.code, SL_EFORMAT);
    assert_false(sl__acl_has(acl, "gone"));
    assert_int_equal(sl__acl_role(acl, "keep", "jobs.x"), SL_ROLE_WRITE);
    assert_int_equal(sl__acl_role(acl, "new", "x"), SL_ROLE_READ);
    assert_int_equal(sl__acl_role(acl, "damaged", "x"), SL_ROLE_ADMIN);
    assert_int_equal(sl__acl_role(acl, "same", "x"), SL_ROLE_READ);
    assert_int_equal(sl__acl_size(acl), 4);
    /* An empty table empties the ACL. */
    seen s2 = {0};
    assert_int_equal(sl__acl_apply_all(acl, NULL, 0, on_changed, &s2, &st), 4);
    assert_int_equal(s2.removed, 4);
    assert_int_equal(sl__acl_size(acl), 0);
    sl__acl_free(acl);
}

static void test_broker_apply(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    sl_broker *b;
    sl_status st = {0};
    assert_int_equal(sl_broker_new(&b, NULL), SL_OK);
    assert_null(sl__broker_kv(b));
    assert_int_equal(sl_broker_attach(b, &f->base, &st), SL_OK);
    assert_ptr_equal(sl__broker_kv(b), &f->base);
    const char *const *roles;
    static const char v1[] = "{\"v\":1,\"roles\":[\"worker\",\"ops\"]}";
    assert_int_equal(sl__broker_apply(b, "svc", 3, v1, strlen(v1), &st), SL__APPLY_CHANGED);
    assert_int_equal(sl_broker_roles_of(b, "svc", &roles), 2);
    assert_string_equal(roles[1], "ops");
    assert_int_equal(sl__broker_apply(b, "svc", 3, v1, strlen(v1), &st), SL__APPLY_SAME);
    static const char *const bad[] = {"{\"v\":1,\"roles\":[]}", "{\"v\":1,\"roles\":[1]}",
                                      "{\"v\":1,\"roles\":[\"a\"],\"x\":1}", "{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sl__broker_apply(b, "svc", 3, bad[i], strlen(bad[i]), &st), SL_EFORMAT);
        assert_non_null(strstr(st.message, "stored broker entry 'svc'"));
        assert_int_equal(sl_broker_roles_of(b, "svc", &roles), 2);
    }
    static const char v2[] = "{\"v\":1,\"roles\":[\"worker\"]}";
    sl__secstore_entry e[] = {{"other", 5, v2, strlen(v2)}};
    assert_int_equal(sl__broker_apply_all(b, e, 1, &st), 2); /* svc gone, other new */
    assert_int_equal(sl_broker_roles_of(b, "svc", &roles), 0);
    assert_int_equal(sl_broker_roles_of(b, "other", &roles), 1);
    assert_int_equal(sl__broker_apply(b, "other", 5, NULL, 0, &st), SL__APPLY_REMOVED);
    assert_int_equal(sl_broker_roles_of(b, "other", &roles), 0);
    assert_int_equal(f->ns, 0);
    sl_broker_free(b);
    fake_kv_free(f);
}

/* A stored record for id, as sl_apikey_create would write it. */
static char *record(const char *id, const char *principal, const char *extra)
{
    char *v = malloc(512);
    snprintf(v, 512,
             "{\"v\":1,\"id\":\"%s\",\"principal\":\"%s\",\"hash\":\"%064d\",\"created_at\":%.0f,"
             "\"expires_at\":0%s}",
             id, principal, 0, NOW, extra);
    return v;
}

static void test_apikey_apply(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    sl_apikey_store *s, *src;
    sl_status st = {0};
    assert_int_equal(sl_apikey_store_open(&s, NULL, &st), SL_OK);
    assert_int_equal(sl_apikey_store_attach(s, &f->base, &st), SL_OK);
    assert_ptr_equal(sl__apikey_kv(s), &f->base);
    /* A real key made elsewhere, its record applied here: the key works here. */
    fake_kv *g = fake_kv_new();
    assert_int_equal(sl_apikey_store_open(&src, NULL, &st), SL_OK);
    assert_int_equal(sl_apikey_store_attach(src, &g->base, &st), SL_OK);
    char *key = NULL, id[SL_APIKEY_ID_LEN + 1];
    assert_int_equal(sl_apikey_create(src, "svc-a", SL_ROLE_WRITE, NULL, 0, 0, NOW, &key, id, &st),
                     SL_OK);
    assert_int_equal(g->ns, 1);
    const fk_item *staged = &g->s[0];
    assert_int_equal(sl__apikey_apply(s, staged->key, staged->klen, staged->val, staged->vlen, &st),
                     SL__APPLY_CHANGED);
    assert_int_equal(sl__apikey_apply(s, staged->key, staged->klen, staged->val, staged->vlen, &st),
                     SL__APPLY_SAME);
    sl_identity who;
    memset(&who, 0, sizeof who);
    assert_int_equal(sl_apikey_authenticate(s, key, strlen(key), NOW + 1, &who, &st), SL_OK);
    assert_string_equal(who.principal, "svc-a");
    sl_identity_clear(&who);

    /* Other ids around it keep the order the lookup needs. */
    char *r1 = record("aaaaaaaaaaaa", "first", ""), *r2 = record("zzzzzzzzzzzz", "last", "");
    assert_int_equal(sl__apikey_apply(s, "zzzzzzzzzzzz", 12, r2, strlen(r2), &st),
                     SL__APPLY_CHANGED);
    assert_int_equal(sl__apikey_apply(s, "aaaaaaaaaaaa", 12, r1, strlen(r1), &st),
                     SL__APPLY_CHANGED);
    sl_apikey_record *list;
    size_t n;
    assert_int_equal(sl_apikey_list(s, &list, &n), SL_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, "aaaaaaaaaaaa");
    assert_string_equal(list[1].id, id);
    assert_string_equal(list[2].id, "zzzzzzzzzzzz");
    sl_apikey_records_free(list, n);
    assert_int_equal(sl_apikey_authenticate(s, key, strlen(key), NOW + 1, &who, &st), SL_OK);
    sl_identity_clear(&who);

    /* Bad records: refused, named by id, the key still works. */
    char *wrong_id = record("bbbbbbbbbbbb", "x", "");
    char *unknown = record(id, "svc-a", ",\"chanels\":[\"x\"]");
    const char *bad[] = {wrong_id, unknown, "{\"v\":1,\"id\":\"x\",\"deleted\":true}", "nope"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sl__apikey_apply(s, id, SL_APIKEY_ID_LEN, bad[i], strlen(bad[i]), &st),
                         SL_EFORMAT);
        assert_non_null(strstr(st.message, "stored apikeys entry"));
        assert_null(strstr(st.message, key + SL_APIKEY_PREFIX_LEN + SL_APIKEY_ID_LEN + 1));
    }
    assert_int_equal(sl__apikey_apply(s, "NOT-AN-ID", 9, r1, strlen(r1), &st), SL_EFORMAT);
    assert_int_equal(sl_apikey_authenticate(s, key, strlen(key), NOW + 1, &who, &st), SL_OK);
    sl_identity_clear(&who);

    /* A whole table: a damaged record keeps its key, ids not named are gone. */
    sl__secstore_entry e[] = {{id, SL_APIKEY_ID_LEN, "garbage", 7},
                              {"aaaaaaaaaaaa", 12, r1, strlen(r1)}};
    assert_int_equal(sl__apikey_apply_all(s, e, 2, &st), 1); /* zzz... removed */
    assert_int_equal(st.code, SL_EFORMAT);
    assert_int_equal(sl_apikey_list(s, &list, &n), SL_OK);
    assert_int_equal(n, 2);
    sl_apikey_records_free(list, n);
    assert_int_equal(sl_apikey_authenticate(s, key, strlen(key), NOW + 1, &who, &st), SL_OK);
    sl_identity_clear(&who);

    /* A tombstone removes it, as a deletion does. */
    char tomb[64];
    snprintf(tomb, sizeof tomb, "{\"v\":1,\"id\":\"%s\",\"deleted\":true}", id);
    assert_int_equal(sl__apikey_apply(s, id, SL_APIKEY_ID_LEN, tomb, strlen(tomb), &st),
                     SL__APPLY_REMOVED);
    assert_int_equal(sl_apikey_authenticate(s, key, strlen(key), NOW + 1, &who, &st), SL_ETOKEN);
    sl_identity_clear(&who);
    assert_int_equal(sl__apikey_apply(s, "aaaaaaaaaaaa", 12, NULL, 0, &st), SL__APPLY_REMOVED);
    assert_int_equal(sl__apikey_apply(s, "aaaaaaaaaaaa", 12, NULL, 0, &st), SL__APPLY_SAME);
    assert_int_equal(f->ns, 0);
    assert_int_equal(sl__apikey_apply_all(s, NULL, 0, &st), 0);
    free(r1);
    free(r2);
    free(wrong_id);
    free(unknown);
    sl_apikey_key_free(key);
    sl_apikey_store_close(s);
    sl_apikey_store_close(src);
    fake_kv_free(f);
    fake_kv_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acl_apply),
        cmocka_unit_test(test_acl_apply_all),
        cmocka_unit_test(test_broker_apply),
        cmocka_unit_test(test_apikey_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
