/* The security stores over a kv (store/kv.h), with the in-memory fake of tests/unit/fake_kv.h:
 * the ACL, the broker's role assignments, API keys and the embedded revocation store. For each:
 * a change is staged in the same call and committed only by a barrier; a second store attached
 * to the same kv (the restart) sees it; the configuration applied after attach wins for its
 * principal or key id; a stored value that does not decode is SL_EFORMAT naming the table and
 * key and never a secret; a change the kv cannot stage changes nothing. For revocations, the
 * write's callback waits for the barrier, reports SL_ESTORAGE when the commit failed, and lapsed
 * records are neither loaded nor kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/apikey.h>
#include <sluice/broker.h>
#include <sluice/revocation.h>

#include "fake_kv.h"
#include "security/acl.h"

#define NOW 1700000000.0

static void barrier_rc(void *ud, int rc)
{
    *(int *)ud = rc;
}

/* Runs a barrier that completes at once; its result. */
static int sync_barrier(fake_kv *f)
{
    int rc = 12345;
    f->base.ops->barrier(&f->base, barrier_rc, &rc);
    assert_int_not_equal(rc, 12345);
    return rc;
}

/* ---- ACL ------------------------------------------------------------------------------------- */

static void test_acl_persists(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    sl__acl *a;
    sl_status st;
    assert_int_equal(sl__acl_new(&a), SL_OK);
    assert_int_equal(sl__acl_attach(a, &f->base, &st), SL_OK);
    const char *pats[] = {"jobs", "orders.*"};
    assert_int_equal(sl__acl_set(a, "alice", SL_ROLE_WRITE, pats, 2), SL_OK);
    assert_int_equal(sl__acl_set(a, "bob", SL_ROLE_ADMIN, NULL, 0), SL_OK);
    /* Staged in the same call, durable only after the barrier. */
    assert_int_equal(f->ns, 2);
    assert_int_equal(fake_kv_count(f, SL__KV_ACL), 0);
    assert_int_equal(sync_barrier(f), SL_OK);
    assert_string_equal(fake_kv_get(f, SL__KV_ACL, "alice"),
                        "{\"v\":1,\"role\":\"write\",\"channels\":[\"jobs\",\"orders.*\"]}");
    assert_string_equal(fake_kv_get(f, SL__KV_ACL, "bob"), "{\"v\":1,\"role\":\"admin\"}");
    assert_int_equal(sl__acl_del(a, "bob"), SL_OK);
    assert_int_equal(f->ns, 1);
    assert_int_equal(sl__acl_del(a, "nobody"), SL_ENOENT);
    assert_int_equal(f->ns, 1);
    assert_int_equal(sync_barrier(f), SL_OK);
    sl__acl_free(a);

    /* The restart: a new ACL over the same kv. */
    assert_int_equal(sl__acl_new(&a), SL_OK);
    assert_int_equal(sl__acl_attach(a, &f->base, &st), SL_OK);
    assert_int_equal(sl__acl_size(a), 1);
    assert_int_equal(sl__acl_role(a, "alice", "jobs"), SL_ROLE_WRITE);
    assert_int_equal(sl__acl_role(a, "alice", "orders.eu"), SL_ROLE_WRITE);
    assert_int_equal(sl__acl_role(a, "alice", "secret"), SL_ROLE_NONE);
    assert_int_equal(sl__acl_has(a, "bob"), 0);
    /* Attached once only. */
    assert_int_equal(sl__acl_attach(a, &f->base, &st), SL_EINVAL);
    sl__acl_free(a);
    fake_kv_free(f);
}

static void test_acl_config_on_top(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    const char *v = "{\"v\":1,\"role\":\"read\"}";
    fake_kv_set_raw(f, SL__KV_ACL, "alice", 5, v, strlen(v));
    fake_kv_set_raw(f, SL__KV_ACL, "carol", 5, v, strlen(v));
    sl__acl *a;
    sl_status st;
    assert_int_equal(sl__acl_new(&a), SL_OK);
    /* Present before attach: the stored grant replaces it. */
    assert_int_equal(sl__acl_set(a, "carol", SL_ROLE_ADMIN, NULL, 0), SL_OK);
    assert_int_equal(sl__acl_attach(a, &f->base, &st), SL_OK);
    assert_int_equal(sl__acl_role(a, "carol", NULL), SL_ROLE_READ);
    /* The configuration, applied after: it wins for alice, and is stored; carol survives. */
    assert_int_equal(sl__acl_set(a, "alice", SL_ROLE_ADMIN, NULL, 0), SL_OK);
    assert_int_equal(sl__acl_role(a, "alice", "x"), SL_ROLE_ADMIN);
    assert_int_equal(sl__acl_role(a, "carol", "x"), SL_ROLE_READ);
    assert_int_equal(sync_barrier(f), SL_OK);
    assert_string_equal(fake_kv_get(f, SL__KV_ACL, "alice"), "{\"v\":1,\"role\":\"admin\"}");
    sl__acl_free(a);
    fake_kv_free(f);
}

static void test_acl_stage_failure(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    sl__acl *a;
    sl_status st;
    assert_int_equal(sl__acl_new(&a), SL_OK);
    assert_int_equal(sl__acl_attach(a, &f->base, &st), SL_OK);
    assert_int_equal(sl__acl_set(a, "alice", SL_ROLE_READ, NULL, 0), SL_OK);
    f->stage_fail = SL_ENOMEM;
    /* Neither a replacement, nor a new principal, nor a delete happens half-way. */
    assert_int_equal(sl__acl_set(a, "alice", SL_ROLE_ADMIN, NULL, 0), SL_ENOMEM);
    assert_int_equal(sl__acl_role(a, "alice", "x"), SL_ROLE_READ);
    assert_int_equal(sl__acl_set(a, "dave", SL_ROLE_ADMIN, NULL, 0), SL_ENOMEM);
    assert_int_equal(sl__acl_has(a, "dave"), 0);
    assert_int_equal(sl__acl_del(a, "alice"), SL_ENOMEM);
    assert_int_equal(sl__acl_has(a, "alice"), 1);
    f->stage_fail = 0;
    sl__acl_free(a);
    fake_kv_free(f);
}

/* attach on a kv holding one bad value: SL_EFORMAT naming table and key, nothing loaded. */
static void acl_refuses(const char *key, size_t klen, const char *val, const char *shown)
{
    fake_kv *f = fake_kv_new();
    const char *good = "{\"v\":1,\"role\":\"read\"}";
    fake_kv_set_raw(f, SL__KV_ACL, "aaa", 3, good, strlen(good));
    fake_kv_set_raw(f, SL__KV_ACL, key, klen, val, strlen(val));
    sl__acl *a;
    sl_status st;
    assert_int_equal(sl__acl_new(&a), SL_OK);
    assert_int_equal(sl__acl_attach(a, &f->base, &st), SL_EFORMAT);
    assert_int_equal(st.code, SL_EFORMAT);
    assert_non_null(strstr(st.message, "stored acl entry"));
    assert_non_null(strstr(st.message, shown));
    assert_null(strstr(st.message, "SECRET"));
    assert_int_equal(sl__acl_size(a), 0);
    /* Not attached: changes stay in memory. */
    assert_int_equal(sl__acl_set(a, "zed", SL_ROLE_READ, NULL, 0), SL_OK);
    assert_int_equal(f->ns, 0);
    sl__acl_free(a);
    fake_kv_free(f);
}

static void test_acl_corrupt(void **state)
{
    (void)state;
    acl_refuses("mallory", 7, "{not json SECRET", "'mallory'");
    acl_refuses("mallory", 7, "{\"v\":2,\"role\":\"read\"}", "version 2");
    acl_refuses("mallory", 7, "{\"role\":\"read\"}", "not a versioned record");
    acl_refuses("mallory", 7, "{\"v\":1,\"role\":\"SECRET\"}", "\"role\"");
    acl_refuses("mallory", 7, "{\"v\":1,\"role\":\"read\",\"channels\":[]}", "channels");
    acl_refuses("mallory", 7, "{\"v\":1,\"role\":\"read\",\"channels\":[\"a//b\"]}", "channels");
    acl_refuses("mallory", 7, "{\"v\":1,\"role\":\"read\",\"SECRET\":1}", "unknown field");
    acl_refuses("mallory", 7, "{\"v\":1,\"v\":1,\"role\":\"read\"}", "invalid JSON");
    acl_refuses("\x01"
                "bad'",
                5, "{\"v\":1,\"role\":\"read\"}", "'\\x01bad\\x27'");
}

/* ---- broker role assignments ----------------------------------------------------------------- */

static sl_broker *broker(void)
{
    sl_broker *b;
    assert_int_equal(sl_broker_new(&b, NULL), SL_OK);
    const char *w[] = {"jobs"};
    assert_int_equal(sl_broker_set_role(b, "workers", SL_ROLE_WRITE, w, 1), SL_OK);
    return b;
}

static void test_broker_persists(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    sl_status st;
    sl_broker *b = broker();
    assert_int_equal(sl_broker_attach(b, &f->base, &st), SL_OK);
    const char *r[] = {"workers", "later"};
    assert_int_equal(sl_broker_assign(b, "alice", r, 2), SL_OK);
    assert_int_equal(sl_broker_assign(b, "bob", r, 1), SL_OK);
    assert_int_equal(f->ns, 2);
    assert_int_equal(fake_kv_count(f, SL__KV_BROKER), 0);
    assert_int_equal(sync_barrier(f), SL_OK);
    assert_string_equal(fake_kv_get(f, SL__KV_BROKER, "alice"),
                        "{\"v\":1,\"roles\":[\"workers\",\"later\"]}");
    assert_int_equal(sl_broker_assign(b, "bob", NULL, 0), SL_OK);
    assert_int_equal(f->ns, 1);
    assert_int_equal(sl_broker_assign(b, "nobody", NULL, 0), SL_OK);
    assert_int_equal(f->ns, 1);
    assert_int_equal(sync_barrier(f), SL_OK);
    sl_broker_free(b);

    b = broker();
    assert_int_equal(sl_broker_attach(b, &f->base, &st), SL_OK);
    const char *const *got;
    assert_int_equal(sl_broker_roles_of(b, "alice", &got), 2);
    assert_string_equal(got[0], "workers");
    assert_string_equal(got[1], "later");
    assert_int_equal(sl_broker_roles_of(b, "bob", &got), 0);
    sl_broker_decision d;
    const char *ch[] = {"jobs"};
    assert_int_equal(sl_broker_decide(b, NULL, "alice", ch, 1, &d), SL_OK);
    assert_int_equal(d.ngranted, 1);
    sl_broker_decision_clear(&d);
    assert_int_equal(sl_broker_attach(b, &f->base, &st), SL_EINVAL);
    sl_broker_free(b);
    fake_kv_free(f);
}

static void test_broker_config_and_failures(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    const char *v = "{\"v\":1,\"roles\":[\"workers\"]}";
    fake_kv_set_raw(f, SL__KV_BROKER, "alice", 5, v, strlen(v));
    fake_kv_set_raw(f, SL__KV_BROKER, "carol", 5, v, strlen(v));
    sl_status st;
    sl_broker *b = broker();
    assert_int_equal(sl_broker_attach(b, &f->base, &st), SL_OK);
    const char *cfg[] = {"auditors"};
    assert_int_equal(sl_broker_assign(b, "alice", cfg, 1), SL_OK); /* the configuration */
    const char *const *got;
    assert_int_equal(sl_broker_roles_of(b, "alice", &got), 1);
    assert_string_equal(got[0], "auditors");
    assert_int_equal(sl_broker_roles_of(b, "carol", &got), 1);
    assert_string_equal(got[0], "workers");
    /* A change the kv cannot stage leaves the assignments as they were. */
    f->stage_fail = SL_ENOMEM;
    assert_int_equal(sl_broker_assign(b, "carol", cfg, 1), SL_ENOMEM);
    assert_int_equal(sl_broker_roles_of(b, "carol", &got), 1);
    assert_string_equal(got[0], "workers");
    assert_int_equal(sl_broker_assign(b, "dave", cfg, 1), SL_ENOMEM);
    assert_int_equal(sl_broker_roles_of(b, "dave", &got), 0);
    assert_int_equal(sl_broker_assign(b, "carol", NULL, 0), SL_ENOMEM);
    assert_int_equal(sl_broker_roles_of(b, "carol", &got), 1);
    f->stage_fail = 0;
    sl_broker_free(b);

    const char *bad[] = {"{\"v\":1,\"roles\":[]}", "{\"v\":1,\"roles\":[\"a b\"]}",
                         "{\"v\":1,\"roles\":[\"x\"],\"more\":1}", "[1]", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fake_kv_set_raw(f, SL__KV_BROKER, "mallory", 7, bad[i], strlen(bad[i]));
        b = broker();
        assert_int_equal(sl_broker_attach(b, &f->base, &st), SL_EFORMAT);
        assert_non_null(strstr(st.message, "stored broker entry 'mallory'"));
        assert_int_equal(sl_broker_roles_of(b, "alice", &got), 0);
        sl_broker_free(b);
    }
    fake_kv_free(f);
}

/* ---- API keys -------------------------------------------------------------------------------- */

typedef struct dirfix {
    char dir[64];
    char path[128];
} dirfix;

static int dir_setup(void **state)
{
    dirfix *d = calloc(1, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/sl_secstore_XXXXXX");
    if (d == NULL || mkdtemp(d->dir) == NULL)
        return -1;
    snprintf(d->path, sizeof d->path, "%s/keys.jsonl", d->dir);
    *state = d;
    return 0;
}

static int dir_teardown(void **state)
{
    dirfix *d = *state;
    DIR *h = opendir(d->dir);
    struct dirent *e;
    char p[512];
    while (h && (e = readdir(h)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", d->dir, e->d_name);
            unlink(p);
        }
    }
    if (h)
        closedir(h);
    rmdir(d->dir);
    free(d);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    static char buf[65536];
    size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
    if (fp)
        fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* SL_OK or the message of the refusal. */
static const char *auth(const sl_apikey_store *s, const char *key, double now)
{
    static char msg[400];
    sl_identity who;
    sl_identity_init(&who);
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_apikey_authenticate(s, key, strlen(key), now, &who, &st);
    snprintf(msg, sizeof msg, "%s", rc == SL_OK ? who.principal : st.message);
    sl_identity_clear(&who);
    return msg;
}

static sl_apikey_store *keys_attached(const char *path, fake_kv *f)
{
    sl_apikey_store *s;
    sl_status st;
    assert_int_equal(sl_apikey_store_open(&s, path, &st), SL_OK);
    assert_int_equal(sl_apikey_store_attach(s, &f->base, &st), SL_OK);
    return s;
}

static void test_apikey_memory_kv(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    sl_status st;
    sl_apikey_store *s = keys_attached(NULL, f);
    char *k1, *k2, id1[SL_APIKEY_ID_LEN + 1], id2[SL_APIKEY_ID_LEN + 1];
    const char *pats[] = {"jobs.*"};
    assert_int_equal(sl_apikey_create(s, "svc-a", SL_ROLE_WRITE, pats, 1, 0, NOW, &k1, id1, &st),
                     SL_OK);
    assert_int_equal(f->ns, 1);
    assert_int_equal(sl_apikey_create(s, "svc-b", SL_ROLE_NONE, NULL, 0, 0, NOW, &k2, id2, &st),
                     SL_OK);
    assert_int_equal(fake_kv_count(f, SL__KV_APIKEYS), 0);
    assert_int_equal(sync_barrier(f), SL_OK);
    const char *v = fake_kv_get(f, SL__KV_APIKEYS, id1);
    assert_non_null(v);
    assert_non_null(strstr(v, "{\"v\":1,\"id\":\""));
    assert_non_null(strstr(v, "\"hash\":\""));
    assert_null(strstr(v, k1 + 17)); /* the secret never */
    assert_int_equal(sl_apikey_expire(s, id1, NOW + 5, &st), SL_OK);
    assert_int_equal(sl_apikey_delete(s, id2, &st), SL_OK);
    assert_int_equal(f->ns, 2);
    assert_int_equal(sync_barrier(f), SL_OK);
    assert_null(fake_kv_get(f, SL__KV_APIKEYS, id2)); /* no file: no tombstone needed */
    sl_apikey_store_close(s);

    s = keys_attached(NULL, f);
    assert_string_equal(auth(s, k1, NOW + 1), "svc-a");
    assert_string_equal(auth(s, k1, NOW + 6), "api key expired");
    assert_string_equal(auth(s, k2, NOW + 1), "unknown api key");
    sl_apikey_record r;
    assert_int_equal(sl_apikey_get(s, id1, &r), SL_OK);
    assert_int_equal(r.role, SL_ROLE_WRITE);
    assert_int_equal(r.nchannels, 1);
    assert_string_equal(r.channels[0], "jobs.*");
    sl_apikey_record_clear(&r);
    assert_int_equal(sl_apikey_reload(s, &st), SL_OK);
    sl_apikey_store_close(s);
    sl_apikey_key_free(k1);
    sl_apikey_key_free(k2);
    fake_kv_free(f);
}

typedef struct ahead_probe {
    fake_kv *f;
    size_t staged_at_hook;
    int fail;
} ahead_probe;

static int ahead(void *ud, const char *id, sl_status *st)
{
    ahead_probe *p = ud;
    p->staged_at_hook = p->f->ns;
    return p->fail ? sl_status_set(st, SL_EIO, "audit down") : SL_OK;
}

static void test_apikey_ahead_order(void **state)
{
    (void)state;
    fake_kv *f = fake_kv_new();
    sl_status st;
    sl_apikey_store *s = keys_attached(NULL, f);
    char *k, id[SL_APIKEY_ID_LEN + 1];
    ahead_probe p = {f, 99, 0};
    /* The hook runs before anything is staged; a refusing hook leaves nothing staged. */
    assert_int_equal(
        sl_apikey_create_ahead(s, "svc", SL_ROLE_READ, NULL, 0, 0, NOW, ahead, &p, &k, id, &st),
        SL_OK);
    assert_int_equal(p.staged_at_hook, 0);
    assert_int_equal(f->ns, 1);
    sl_apikey_key_free(k);
    p.fail = 1;
    assert_int_equal(
        sl_apikey_create_ahead(s, "svc", SL_ROLE_READ, NULL, 0, 0, NOW, ahead, &p, &k, id, &st),
        SL_EIO);
    assert_int_equal(f->ns, 1);
    /* The kv cannot stage: nothing changes. */
    f->stage_fail = SL_ENOMEM;
    assert_int_equal(sl_apikey_create(s, "svc", SL_ROLE_READ, NULL, 0, 0, NOW, &k, id, &st),
                     SL_ENOMEM);
    sl_apikey_record *all;
    size_t n;
    assert_int_equal(sl_apikey_list(s, &all, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sl_apikey_expire(s, all[0].id, NOW + 1, &st), SL_ENOMEM);
    assert_int_equal(sl_apikey_delete(s, all[0].id, &st), SL_ENOMEM);
    sl_apikey_record r;
    assert_int_equal(sl_apikey_get(s, all[0].id, &r), SL_OK);
    assert_true(r.expires_at == 0);
    sl_apikey_record_clear(&r);
    sl_apikey_records_free(all, n);
    f->stage_fail = 0;
    sl_apikey_store_close(s);
    fake_kv_free(f);
}

static void test_apikey_file_import(void **state)
{
    dirfix *d = *state;
    sl_status st;
    /* The key file as the CLI writes it today: keys A and D. */
    sl_apikey_store *file;
    char *ka, *kd, ida[SL_APIKEY_ID_LEN + 1], idd[SL_APIKEY_ID_LEN + 1];
    assert_int_equal(sl_apikey_store_open(&file, d->path, &st), SL_OK);
    assert_int_equal(sl_apikey_create(file, "svc-a", SL_ROLE_WRITE, NULL, 0, 0, NOW, &ka, ida, &st),
                     SL_OK);
    assert_int_equal(sl_apikey_create(file, "svc-d", SL_ROLE_READ, NULL, 0, 0, NOW, &kd, idd, &st),
                     SL_OK);
    sl_apikey_store_close(file);
    char before[65536];
    snprintf(before, sizeof before, "%s", slurp(d->path));

    fake_kv *f = fake_kv_new();
    sl_apikey_store *s = keys_attached(d->path, f);
    assert_int_equal(f->ns, 2); /* the file's keys, imported */
    char *kb, *kc, idb[SL_APIKEY_ID_LEN + 1], idc[SL_APIKEY_ID_LEN + 1];
    assert_int_equal(sl_apikey_create(s, "svc-b", SL_ROLE_READ, NULL, 0, 0, NOW, &kb, idb, &st),
                     SL_OK);
    assert_int_equal(sl_apikey_create(s, "svc-c", SL_ROLE_READ, NULL, 0, 0, NOW, &kc, idc, &st),
                     SL_OK);
    assert_int_equal(sl_apikey_expire(s, ida, NOW + 10, &st), SL_OK);
    assert_int_equal(sl_apikey_delete(s, idc, &st), SL_OK);
    assert_int_equal(sl_apikey_delete(s, idd, &st), SL_OK);
    assert_int_equal(sync_barrier(f), SL_OK);
    /* Runtime changes went to the kv, never to the file. */
    assert_string_equal(slurp(d->path), before);
    assert_non_null(strstr(fake_kv_get(f, SL__KV_APIKEYS, idd), "\"deleted\":true"));
    sl_apikey_store_close(s);

    /* The restart, with the same file: B survives; A keeps the runtime expiry although the file
     * says "never"; D stays deleted although the file names it; C is gone. */
    s = keys_attached(d->path, f);
    assert_string_equal(auth(s, kb, NOW + 20), "svc-b");
    assert_string_equal(auth(s, ka, NOW + 5), "svc-a");
    assert_string_equal(auth(s, ka, NOW + 20), "api key expired");
    assert_string_equal(auth(s, kd, NOW + 5), "unknown api key");
    assert_string_equal(auth(s, kc, NOW + 5), "unknown api key");
    assert_int_equal(sync_barrier(f), SL_OK);
    /* C's tombstone went (the file does not name C); D's stays while the file names D. */
    assert_null(fake_kv_get(f, SL__KV_APIKEYS, idc));
    assert_non_null(fake_kv_get(f, SL__KV_APIKEYS, idd));
    sl_apikey_store_close(s);

    /* The file wins for the ids it names: a stored record of A for another principal is
     * replaced by the file's. */
    char *v = strdup(fake_kv_get(f, SL__KV_APIKEYS, ida));
    char *p = strstr(v, "svc-a");
    memcpy(p, "svc-z", 5);
    fake_kv_set_raw(f, SL__KV_APIKEYS, ida, SL_APIKEY_ID_LEN, v, strlen(v));
    free(v);
    s = keys_attached(d->path, f);
    assert_string_equal(auth(s, ka, NOW + 5), "svc-a");
    assert_int_equal(sync_barrier(f), SL_OK);
    assert_non_null(strstr(fake_kv_get(f, SL__KV_APIKEYS, ida), "svc-a"));
    sl_apikey_store_close(s);

    /* Without the file, its keys remain (imported) and D's tombstone is dropped. */
    unlink(d->path);
    s = keys_attached(d->path, f);
    assert_string_equal(auth(s, ka, NOW + 5), "svc-a");
    assert_string_equal(auth(s, kd, NOW + 5), "unknown api key");
    assert_int_equal(sync_barrier(f), SL_OK);
    assert_null(fake_kv_get(f, SL__KV_APIKEYS, idd));
    sl_apikey_store_close(s);
    for (char **k = (char *[]){ka, kb, kc, kd, NULL}; *k; k++)
        sl_apikey_key_free(*k);
    fake_kv_free(f);
}

static void test_apikey_corrupt(void **state)
{
    (void)state;
    const char *id = "abcdefghijkl";
    const char *hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char good[512];
    snprintf(good, sizeof good,
             "{\"v\":1,\"id\":\"%s\",\"principal\":\"p\",\"hash\":\"%s\",\"created_at\":1,"
             "\"expires_at\":0}",
             id, hash);
    char badhash[512];
    snprintf(badhash, sizeof badhash, "%s", good);
    *strstr(badhash, "eeff\"") = 'X';
    char otherid[512];
    snprintf(otherid, sizeof otherid, "%s", good);
    memcpy(strstr(otherid, id), "mmmmmmmmmmmm", 12);
    struct {
        const char *key, *val, *shown;
    } cases[] = {
        {id, badhash, "\"hash\""},
        {id, otherid, "not its key"},
        {id, "{\"v\":1,\"id\":\"abcdefghijkl\",\"deleted\":false}", "tombstone"},
        {"ABC", good, "not a valid api key id"},
        {id, "{\"v\":1}", "\"id\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_kv *f = fake_kv_new();
        fake_kv_set_raw(f, SL__KV_APIKEYS, cases[i].key, strlen(cases[i].key), cases[i].val,
                        strlen(cases[i].val));
        sl_apikey_store *s;
        sl_status st;
        assert_int_equal(sl_apikey_store_open(&s, NULL, &st), SL_OK);
        assert_int_equal(sl_apikey_store_attach(s, &f->base, &st), SL_EFORMAT);
        assert_non_null(strstr(st.message, "stored apikeys entry '"));
        assert_non_null(strstr(st.message, cases[i].key));
        assert_non_null(strstr(st.message, cases[i].shown));
        assert_null(strstr(st.message, "00112233"));
        sl_apikey_store_close(s);
        fake_kv_free(f);
    }
}

/* ---- revocations ----------------------------------------------------------------------------- */

static double clock_now = NOW;
static double test_clock(void *ud)
{
    return clock_now;
}

typedef struct answer {
    int calls, status;
} answer;

static void on_answer(void *ud, int status, const char *reason)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
}

static sl_revocation_store *embedded(fake_kv *f)
{
    sl_revocation_store *s;
    sl_status st;
    assert_int_equal(sl_revocation_embedded_new(&s, NULL, 3600, &f->base, test_clock, NULL, &st),
                     SL_OK);
    assert_string_equal(sl_revocation_store_name(s), "embedded");
    return s;
}

/* The status of a check, and its reason in *reason (static). */
static int check(sl_revocation_store *s, const char *tid, const char *user, double iat)
{
    answer a = {0, 0};
    sl_revocation_check(s, tid, user, iat, on_answer, &a);
    assert_int_equal(a.calls, 1); /* checks answer at once */
    return a.status;
}

static void test_revocation_persists(void **state)
{
    (void)state;
    clock_now = NOW;
    fake_kv *f = fake_kv_new();
    sl_revocation_store *s = embedded(f);
    f->hold = 1;
    answer a = {0, 0}, b = {0, 0};
    sl_revocation_revoke(s, "tok-1", "alice", "stolen laptop", NOW + 600, on_answer, &a);
    sl_revocation_revoke_user(s, "bob", on_answer, &b);
    /* In force at once; the answers wait for the barrier. */
    assert_int_equal(check(s, "tok-1", "alice", NOW), SL_ETOKEN);
    assert_int_equal(check(s, NULL, "bob", NOW), SL_ETOKEN);
    assert_int_equal(a.calls + b.calls, 0);
    assert_int_equal(fake_kv_count(f, SL__KV_REVOCATIONS), 0);
    fake_kv_release(f, SL_OK);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_OK);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, SL_OK);
    assert_non_null(strstr(fake_kv_get(f, SL__KV_REVOCATIONS, "t:tok-1"), "\"stolen laptop\""));
    assert_non_null(fake_kv_get(f, SL__KV_REVOCATIONS, "u:bob"));
    f->hold = 0;
    sl_revocation_store_free(s);

    /* The restart: both still in force, the reason kept, the cut-off exact. */
    clock_now = NOW + 100;
    s = embedded(f);
    answer c = {0, 0};
    char reason[300] = "";
    sl_revocation_check(s, "tok-1", "alice", NOW, on_answer, &c);
    assert_int_equal(c.status, SL_ETOKEN);
    (void)reason;
    assert_int_equal(check(s, NULL, "bob", NOW), SL_ETOKEN);
    assert_int_equal(check(s, NULL, "bob", NOW + 1), SL_OK);
    assert_int_equal(check(s, "tok-2", "alice", NOW), SL_OK);
    sl_revocation_store_free(s);
    fake_kv_free(f);
}

static void reason_of(void *ud, int status, const char *reason)
{
    snprintf(ud, 300, "%d %s", status, reason ? reason : "");
}

static void test_revocation_reason_and_expiry(void **state)
{
    (void)state;
    clock_now = NOW;
    fake_kv *f = fake_kv_new();
    sl_revocation_store *s = embedded(f);
    answer a = {0, 0};
    sl_revocation_revoke(s, "short", NULL, "gone", NOW + 10, on_answer, &a);
    sl_revocation_revoke(s, "long", NULL, NULL, NOW + 1000, on_answer, &a);
    assert_int_equal(a.calls, 2);
    sl_revocation_store_free(s);

    clock_now = NOW + 5;
    s = embedded(f);
    char r[300];
    sl_revocation_check(s, "short", "u", NOW, reason_of, r);
    assert_string_equal(r, "-9 gone");
    sl_revocation_store_free(s);

    /* Lapsed while down: not loaded, and purged from the kv. */
    clock_now = NOW + 20;
    s = embedded(f);
    assert_int_equal(check(s, "short", "u", NOW), SL_OK);
    assert_int_equal(check(s, "long", "u", NOW), SL_ETOKEN);
    assert_int_equal(sync_barrier(f), SL_OK);
    assert_null(fake_kv_get(f, SL__KV_REVOCATIONS, "t:short"));
    /* Lapsing while up: pruning purges it too. */
    clock_now = NOW + 2000;
    assert_int_equal(sl_revocation_prune(s), 1);
    assert_int_equal(sync_barrier(f), SL_OK);
    assert_int_equal(fake_kv_count(f, SL__KV_REVOCATIONS), 0);
    sl_revocation_store_free(s);
    fake_kv_free(f);
}

static void test_revocation_storage_failure(void **state)
{
    (void)state;
    clock_now = NOW;
    fake_kv *f = fake_kv_new();
    sl_revocation_store *s = embedded(f);
    /* A commit that fails later... */
    f->hold = 1;
    answer a = {0, 0};
    sl_revocation_revoke(s, "tok", NULL, NULL, 0, on_answer, &a);
    assert_int_equal(a.calls, 0);
    fake_kv_release(f, SL_ESTORAGE);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_ESTORAGE);
    assert_int_equal(check(s, "tok", "u", NOW), SL_ETOKEN); /* still in force here */
    /* ... and one that fails at once. */
    f->hold = 0;
    f->fail = SL_ESTORAGE;
    answer b = {0, 0};
    sl_revocation_revoke_user(s, "carol", on_answer, &b);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, SL_ESTORAGE);
    f->fail = 0;
    /* A write the kv cannot stage is not made. */
    f->stage_fail = SL_ENOMEM;
    answer c = {0, 0};
    sl_revocation_revoke(s, "never", NULL, NULL, 0, on_answer, &c);
    assert_int_equal(c.status, SL_ENOMEM);
    assert_int_equal(check(s, "never", "u", NOW), SL_OK);
    sl_revocation_revoke_user(s, "dave", on_answer, &c);
    assert_int_equal(c.status, SL_ENOMEM);
    assert_int_equal(check(s, NULL, "dave", NOW), SL_OK);
    f->stage_fail = 0;
    sl_revocation_store_free(s);
    fake_kv_free(f);
}

static void test_revocation_free_while_waiting(void **state)
{
    (void)state;
    clock_now = NOW;
    fake_kv *f = fake_kv_new();
    sl_revocation_store *s = embedded(f);
    f->hold = 1;
    answer a = {0, 0};
    sl_revocation_revoke(s, "tok", NULL, NULL, 0, on_answer, &a);
    sl_revocation_store_free(s);
    /* Answered by the close, exactly once; the barrier's completion later only frees. */
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_EUNAVAIL);
    fake_kv_release(f, SL_OK);
    assert_int_equal(a.calls, 1);
    fake_kv_free(f);
}

static void test_revocation_corrupt(void **state)
{
    (void)state;
    clock_now = NOW;
    struct {
        const char *key, *val, *shown;
    } cases[] = {
        {"t:tok", "{\"v\":1,\"exp\":1e12,\"reason\":\"a\\u0001b\"}", "\"reason\""},
        {"t:tok", "{\"v\":1,\"exp\":\"soon\",\"reason\":\"x\"}", "\"exp\""},
        {"u:bob", "{\"v\":1,\"exp\":1e12,\"cutoff\":\"x\"}", "\"cutoff\""},
        {"u:bob", "{\"v\":1,\"exp\":1e12,\"reason\":\"x\"}", "\"cutoff\""},
        {"x:foo", "{\"v\":1,\"exp\":1e12,\"cutoff\":1}", "not \"t:\""},
        {"u:bad user", "{\"v\":1,\"exp\":1e12,\"cutoff\":1}", "not \"t:\""},
        {"t:tok", "{\"v\":3}", "version 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_kv *f = fake_kv_new();
        fake_kv_set_raw(f, SL__KV_REVOCATIONS, cases[i].key, strlen(cases[i].key), cases[i].val,
                        strlen(cases[i].val));
        sl_revocation_store *s = NULL;
        sl_status st;
        assert_int_equal(
            sl_revocation_embedded_new(&s, NULL, 3600, &f->base, test_clock, NULL, &st),
            SL_EFORMAT);
        assert_null(s);
        assert_non_null(strstr(st.message, "stored revocations entry '"));
        assert_non_null(strstr(st.message, cases[i].shown));
        fake_kv_free(f);
    }
}

static void test_revocation_names(void **state)
{
    (void)state;
    sl_revocation_store *m, *e;
    assert_int_equal(sl_revocation_memory_new(&m, NULL, 0, NULL, NULL), SL_OK);
    assert_string_equal(sl_revocation_store_name(m), "memory");
    /* No kv (the memory engine): the embedded store keeps nothing, answers at once. */
    assert_int_equal(sl_revocation_embedded_new(&e, NULL, 0, NULL, NULL, NULL, NULL), SL_OK);
    assert_string_equal(sl_revocation_store_name(e), "embedded");
    answer a = {0, 0};
    sl_revocation_revoke(e, "tok", NULL, NULL, 0, on_answer, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_OK);
    sl_revocation_store_free(m);
    sl_revocation_store_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acl_persists),
        cmocka_unit_test(test_acl_config_on_top),
        cmocka_unit_test(test_acl_stage_failure),
        cmocka_unit_test(test_acl_corrupt),
        cmocka_unit_test(test_broker_persists),
        cmocka_unit_test(test_broker_config_and_failures),
        cmocka_unit_test(test_apikey_memory_kv),
        cmocka_unit_test(test_apikey_ahead_order),
        cmocka_unit_test_setup_teardown(test_apikey_file_import, dir_setup, dir_teardown),
        cmocka_unit_test(test_apikey_corrupt),
        cmocka_unit_test(test_revocation_persists),
        cmocka_unit_test(test_revocation_reason_and_expiry),
        cmocka_unit_test(test_revocation_storage_failure),
        cmocka_unit_test(test_revocation_free_while_waiting),
        cmocka_unit_test(test_revocation_corrupt),
        cmocka_unit_test(test_revocation_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
