/* API keys: create and authenticate round trips (plain and scoped keys, identity fields), every
 * refusal (wrong secret, unknown id, expired, deleted, hostile malformed keys), the store file
 * (round trip through text, corrupt files reported with file and line, atomic rewrite without
 * leftovers, mode 0600, reload of changes made by another writer, a missing file) and the rule
 * that no status message ever contains a key or its secret. Each test works in its own temporary
 * directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/apikey.h>
#include <sluice/authn.h>

#define NOW 1700000000.0

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/sl_apikey_XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/keys.jsonl", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static sl_apikey_store *open_ok(const char *path)
{
    sl_apikey_store *s = NULL;
    sl_status st;
    sl_status_clear(&st);
    assert_int_equal(sl_apikey_store_open(&s, path, &st), SL_OK);
    assert_non_null(s);
    return s;
}

static char *create_ok(sl_apikey_store *s, const char *principal, sl_role role,
                       const char *const *pats, size_t n, double expires_at, char *id)
{
    char *key = NULL;
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_apikey_create(s, principal, role, pats, n, expires_at, NOW, &key, id, &st);
    if (rc != SL_OK)
        fail_msg("create: %s", st.message);
    assert_non_null(key);
    assert_int_equal(strlen(key), SL_APIKEY_LEN);
    return key;
}

/* Authenticates and checks that the message, if any, holds neither the key nor its secret. */
static int auth(const sl_apikey_store *s, const char *key, size_t len, double now, sl_identity *id,
                char *msg, size_t msgsz)
{
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_apikey_authenticate(s, key, len, now, id, &st);
    if (rc != SL_OK) {
        assert_int_equal(st.code, rc);
        if (key != NULL && len >= SL_APIKEY_LEN) {
            /* The secret part of a well-formed-looking key never shows up. */
            char secret[SL_APIKEY_SECRET_LEN + 1];
            memcpy(secret, key + len - SL_APIKEY_SECRET_LEN, SL_APIKEY_SECRET_LEN);
            secret[SL_APIKEY_SECRET_LEN] = '\0';
            assert_null(strstr(st.message, secret));
        }
        assert_null(strstr(st.message, "slk_"));
    }
    if (msg)
        snprintf(msg, msgsz, "%s", st.message);
    return rc;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- keys ------------------------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
    fixture *f = *state;
    sl_apikey_store *s = open_ok(f->path);
    char id[SL_APIKEY_ID_LEN + 1];
    char *key = create_ok(s, "svc-billing", SL_ROLE_NONE, NULL, 0, 0, id);
    assert_memory_equal(key, "slk_", 4);
    assert_memory_equal(key + 4, id, SL_APIKEY_ID_LEN);
    assert_int_equal(key[4 + SL_APIKEY_ID_LEN], '_');
    assert_true(sl_apikey_looks_like(key, strlen(key)));
    assert_true(sl_apikey_id_valid(id));

    sl_identity who;
    sl_identity_init(&who);
    assert_int_equal(auth(s, key, strlen(key), NOW + 10, &who, NULL, 0), SL_OK);
    assert_string_equal(who.principal, "svc-billing");
    assert_int_equal(who.source, SL_SOURCE_APIKEY);
    assert_int_equal(who.role, SL_ROLE_NONE);
    assert_int_equal(who.scoped, 0);
    assert_int_equal(who.nchannels, 0);
    assert_string_equal(who.token_id, id);
    assert_true(who.issued_at == NOW);
    assert_true(who.expires_at == 0);
    sl_identity_clear(&who);

    /* The store file holds the hash, never the key or the secret. */
    char *text = slurp(f->path);
    assert_non_null(text);
    assert_null(strstr(text, key));
    assert_null(strstr(text, key + 4 + SL_APIKEY_ID_LEN + 1));
    assert_non_null(strstr(text, id));

    /* A second store on the same file (the server) authenticates what the first (the CLI) made. */
    sl_apikey_store *s2 = open_ok(f->path);
    sl_identity_init(&who);
    assert_int_equal(auth(s2, key, strlen(key), NOW, &who, NULL, 0), SL_OK);
    sl_identity_clear(&who);
    sl_apikey_store_close(s2);

    /* Two keys never share an id or a secret. */
    char id2[SL_APIKEY_ID_LEN + 1];
    char *key2 = create_ok(s, "svc-billing", SL_ROLE_NONE, NULL, 0, 0, id2);
    assert_string_not_equal(id, id2);
    assert_string_not_equal(key + 17, key2 + 17);
    sl_apikey_key_free(key2);
    sl_apikey_key_free(key);
    sl_apikey_store_close(s);
}

static void test_wrong_secret_unknown_id(void **state)
{
    fixture *f = *state;
    sl_apikey_store *s = open_ok(f->path);
    char id[SL_APIKEY_ID_LEN + 1], msg[400];
    char *key = create_ok(s, "svc-a", SL_ROLE_READ, NULL, 0, 0, id);
    sl_identity who;
    sl_identity_init(&who);

    char bad[SL_APIKEY_LEN + 1];
    memcpy(bad, key, sizeof bad);
    bad[SL_APIKEY_LEN - 1] = bad[SL_APIKEY_LEN - 1] == 'a' ? 'b' : 'a';
    assert_int_equal(auth(s, bad, strlen(bad), NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "unknown api key");

    memcpy(bad, key, sizeof bad);
    bad[4] = bad[4] == 'a' ? 'b' : 'a';
    assert_int_equal(auth(s, bad, strlen(bad), NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "unknown api key");
    assert_string_equal(who.principal, ""); /* untouched on failure */
    assert_int_equal(who.source, SL_SOURCE_NONE);

    /* An empty store knows no key. */
    sl_apikey_store *m = open_ok(NULL);
    assert_int_equal(auth(m, key, strlen(key), NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "unknown api key");
    sl_apikey_store_close(m);
    sl_apikey_key_free(key);
    sl_apikey_store_close(s);
}

static void test_expired(void **state)
{
    fixture *f = *state;
    sl_apikey_store *s = open_ok(f->path);
    char id[SL_APIKEY_ID_LEN + 1], id2[SL_APIKEY_ID_LEN + 1], msg[400];
    char *key = create_ok(s, "svc-a", SL_ROLE_NONE, NULL, 0, NOW + 100, id);
    char *key2 = create_ok(s, "svc-b", SL_ROLE_NONE, NULL, 0, 0, id2);
    sl_identity who;
    sl_identity_init(&who);
    assert_int_equal(auth(s, key, strlen(key), NOW + 99, &who, NULL, 0), SL_OK);
    assert_true(who.expires_at == NOW + 100);
    sl_identity_clear(&who);
    assert_int_equal(auth(s, key, strlen(key), NOW + 100, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "api key expired");

    /* Expiry is only revealed to whoever holds the secret. */
    char bad[SL_APIKEY_LEN + 1];
    memcpy(bad, key, sizeof bad);
    bad[SL_APIKEY_LEN - 1] = bad[SL_APIKEY_LEN - 1] == 'a' ? 'b' : 'a';
    assert_int_equal(auth(s, bad, strlen(bad), NOW + 100, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "unknown api key");

    /* expire: now, idempotent, an earlier expiry is kept; unknown ids are ENOENT. */
    sl_status st;
    assert_int_equal(sl_apikey_expire(s, id2, NOW + 5, &st), SL_OK);
    assert_int_equal(auth(s, key2, strlen(key2), NOW + 4, &who, NULL, 0), SL_OK);
    sl_identity_clear(&who);
    assert_int_equal(auth(s, key2, strlen(key2), NOW + 5, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "api key expired");
    assert_int_equal(sl_apikey_expire(s, id2, NOW + 50, &st), SL_OK);
    sl_apikey_record r;
    assert_int_equal(sl_apikey_get(s, id2, &r), SL_OK);
    assert_true(r.expires_at == NOW + 5);
    sl_apikey_record_clear(&r);
    assert_int_equal(sl_apikey_expire(s, "aaaaaaaaaaaa", NOW, &st), SL_ENOENT);
    assert_int_equal(sl_apikey_expire(s, "nope", NOW, &st), SL_EINVAL);

    /* The expiry is on disk: another store sees it. */
    sl_apikey_store *s2 = open_ok(f->path);
    assert_int_equal(auth(s2, key2, strlen(key2), NOW + 6, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "api key expired");
    sl_apikey_store_close(s2);

    /* Expiries in the past are refused at creation. */
    char *k = NULL;
    assert_int_equal(sl_apikey_create(s, "svc-c", SL_ROLE_NONE, NULL, 0, NOW, NOW, &k, id, &st),
                     SL_EINVAL);
    assert_null(k);
    sl_apikey_key_free(key);
    sl_apikey_key_free(key2);
    sl_apikey_store_close(s);
}

static void test_deleted(void **state)
{
    fixture *f = *state;
    sl_apikey_store *s = open_ok(f->path);
    char id[SL_APIKEY_ID_LEN + 1], id2[SL_APIKEY_ID_LEN + 1], msg[400];
    char *key = create_ok(s, "svc-a", SL_ROLE_NONE, NULL, 0, 0, id);
    char *key2 = create_ok(s, "svc-b", SL_ROLE_NONE, NULL, 0, 0, id2);
    sl_status st;
    assert_int_equal(sl_apikey_delete(s, id, &st), SL_OK);
    assert_int_equal(sl_apikey_delete(s, id, &st), SL_ENOENT);
    assert_non_null(strstr(st.message, id));
    sl_identity who;
    sl_identity_init(&who);
    assert_int_equal(auth(s, key, strlen(key), NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "unknown api key");
    assert_int_equal(auth(s, key2, strlen(key2), NOW, &who, NULL, 0), SL_OK);
    sl_identity_clear(&who);

    sl_apikey_record *recs;
    size_t n;
    assert_int_equal(sl_apikey_list(s, &recs, &n), SL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(recs[0].id, id2);
    sl_apikey_records_free(recs, n);
    /* Deleting the last key leaves an empty, valid store. */
    assert_int_equal(sl_apikey_delete(s, id2, &st), SL_OK);
    assert_int_equal(sl_apikey_list(s, &recs, &n), SL_OK);
    assert_int_equal(n, 0);
    assert_string_equal(slurp(f->path), "");
    sl_apikey_key_free(key);
    sl_apikey_key_free(key2);
    sl_apikey_store_close(s);
}

static void test_scoped_identity(void **state)
{
    fixture *f = *state;
    sl_apikey_store *s = open_ok(f->path);
    const char *pats[] = {"jobs", "jobs.*"};
    char id[SL_APIKEY_ID_LEN + 1];
    char *key = create_ok(s, "svc-worker", SL_ROLE_WRITE, pats, 2, 0, id);
    sl_apikey_store_close(s);
    s = open_ok(f->path); /* from the file, not from memory */
    sl_identity who;
    sl_identity_init(&who);
    assert_int_equal(auth(s, key, strlen(key), NOW, &who, NULL, 0), SL_OK);
    assert_int_equal(who.role, SL_ROLE_WRITE);
    assert_int_equal(who.scoped, 1);
    assert_int_equal(who.nchannels, 2);
    assert_string_equal(who.channels[0], "jobs");
    assert_string_equal(who.channels[1], "jobs.*");
    /* out is replaced, not merged: authenticating again into the same identity does not leak. */
    assert_int_equal(auth(s, key, strlen(key), NOW, &who, NULL, 0), SL_OK);
    assert_int_equal(who.nchannels, 2);
    sl_identity_clear(&who);

    sl_apikey_record r;
    assert_int_equal(sl_apikey_get(s, id, &r), SL_OK);
    assert_string_equal(r.principal, "svc-worker");
    assert_int_equal(r.scoped, 1);
    assert_int_equal(r.nchannels, 2);
    sl_apikey_record_clear(&r);
    assert_int_equal(sl_apikey_get(s, "aaaaaaaaaaaa", &r), SL_ENOENT);

    /* Bad arguments are refused before anything is written. */
    sl_status st;
    char *k = NULL;
    const char *badpat[] = {"jobs..x"};
    assert_int_equal(sl_apikey_create(s, "svc", SL_ROLE_NONE, badpat, 1, 0, NOW, &k, id, &st),
                     SL_EINVAL);
    assert_int_equal(
        sl_apikey_create(s, "bad principal", SL_ROLE_NONE, NULL, 0, 0, NOW, &k, id, &st),
        SL_EINVAL);
    assert_int_equal(sl_apikey_create(s, "", SL_ROLE_NONE, NULL, 0, 0, NOW, &k, id, &st),
                     SL_EINVAL);
    assert_int_equal(sl_apikey_create(s, "svc", (sl_role)7, NULL, 0, 0, NOW, &k, id, &st),
                     SL_EINVAL);
    assert_null(k);
    sl_apikey_key_free(key);
    sl_apikey_store_close(s);
}

static void test_malformed_keys(void **state)
{
    (void)state;
    sl_apikey_store *s = open_ok(NULL);
    char id[SL_APIKEY_ID_LEN + 1], msg[400];
    char *key = create_ok(s, "svc-a", SL_ROLE_NONE, NULL, 0, 0, id);
    sl_identity who;
    sl_identity_init(&who);
    size_t L = SL_APIKEY_LEN;

    char buf[8192];
    struct {
        const char *what;
        size_t len;
    } cases[] = {{"", 0}, {"slk_", 4}, {"slk", 3}, {"Bearer x", 8}, {"eyJhbGciOi.x.y", 14}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(auth(s, cases[i].what, cases[i].len, NOW, &who, msg, sizeof msg),
                         SL_ETOKEN);
        assert_string_equal(msg, "malformed api key");
    }
    assert_int_equal(auth(s, NULL, 0, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_int_equal(auth(s, NULL, 69, NOW, &who, msg, sizeof msg), SL_ETOKEN);

    /* Every variant of the real key that is off by structure. */
    memcpy(buf, key, L);
    buf[0] = 'S'; /* prefix is case-sensitive */
    assert_int_equal(auth(s, buf, L, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "malformed api key");
    memcpy(buf, key, L);
    buf[4 + SL_APIKEY_ID_LEN] = '-'; /* separator */
    assert_int_equal(auth(s, buf, L, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "malformed api key");
    memcpy(buf, key, L);
    buf[10] = 'A'; /* uppercase in the id */
    assert_int_equal(auth(s, buf, L, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    memcpy(buf, key, L);
    buf[40] = '\0'; /* embedded NUL, length still right */
    assert_int_equal(auth(s, buf, L, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "malformed api key");
    memcpy(buf, key, L);
    buf[40] = '1'; /* not in the base32 alphabet */
    assert_int_equal(auth(s, buf, L, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    memcpy(buf, key, L);
    buf[L - 1] = '=';
    assert_int_equal(auth(s, buf, L, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    /* Wrong lengths: truncated, extended, trailing whitespace or newline, huge. */
    assert_int_equal(auth(s, key, L - 1, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "malformed api key");
    memcpy(buf, key, L);
    buf[L] = 'a';
    assert_int_equal(auth(s, buf, L + 1, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    buf[L] = '\n';
    assert_int_equal(auth(s, buf, L + 1, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    buf[L] = '\0';
    assert_int_equal(auth(s, buf, L + 1, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    memset(buf, 'a', sizeof buf);
    memcpy(buf, key, L);
    assert_int_equal(auth(s, buf, sizeof buf, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "malformed api key");
    /* Id and secret lengths shifted while the total stays right. */
    snprintf(buf, sizeof buf, "slk_%.13s_%.51s", key + 4, key + 4 + SL_APIKEY_ID_LEN + 1);
    assert_int_equal(strlen(buf), L);
    assert_int_equal(auth(s, buf, L, NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "malformed api key");
    assert_int_equal(who.source, SL_SOURCE_NONE);

    /* The pure parser agrees, and hands out id and secret of a good key. */
    const char *secret = NULL;
    size_t slen = 0;
    char pid[SL_APIKEY_ID_LEN + 1];
    assert_int_equal(sl_apikey_parse(key, L, pid, &secret, &slen), SL_OK);
    assert_string_equal(pid, id);
    assert_ptr_equal(secret, key + 4 + SL_APIKEY_ID_LEN + 1);
    assert_int_equal(slen, SL_APIKEY_SECRET_LEN);
    assert_int_equal(sl_apikey_parse(key, L - 1, pid, &secret, &slen), SL_ETOKEN);
    assert_false(sl_apikey_looks_like("eyJ", 3));
    assert_false(sl_apikey_looks_like(NULL, 0));
    assert_false(sl_apikey_id_valid("aaaaaaaaaaa"));
    assert_false(sl_apikey_id_valid("aaaaaaaaaaaaa"));
    assert_false(sl_apikey_id_valid(NULL));
    assert_true(sl_apikey_id_valid("abcdefgh2345"));
    sl_apikey_key_free(key);
    sl_apikey_store_close(s);
}

/* ---- the store file -------------------------------------------------------------------------- */

static const char *const good_text =
    "{\"id\":\"aaaaaaaaaaaa\",\"principal\":\"svc-a\",\"hash\":"
    "\"0000000000000000000000000000000000000000000000000000000000000000\",\"created_at\":"
    "1700000000,\"expires_at\":0}\n"
    "\n"
    "{\"id\":\"bbbbbbbbbbbb\",\"principal\":\"svc-b\",\"hash\":"
    "\"00000000000000000000000000000000000000000000000000000000000000ff\",\"created_at\":"
    "1700000000,\"expires_at\":1700000500.5,\"role\":\"admin\",\"channels\":[]}\n";

static void test_store_text(void **state)
{
    fixture *f = *state;
    spit(f->path, good_text);
    sl_apikey_store *s = open_ok(f->path);
    sl_apikey_record *r;
    size_t n;
    assert_int_equal(sl_apikey_list(s, &r, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(r[0].id, "aaaaaaaaaaaa");
    assert_int_equal(r[0].role, SL_ROLE_NONE);
    assert_int_equal(r[0].scoped, 0);
    assert_string_equal(r[1].principal, "svc-b");
    assert_int_equal(r[1].role, SL_ROLE_ADMIN);
    assert_int_equal(r[1].scoped, 1); /* [] is scoped to nothing, as for tokens */
    assert_int_equal(r[1].nchannels, 0);
    assert_true(r[1].expires_at == 1700000500.5);
    sl_apikey_records_free(r, n);

    /* A write re-renders every record; reading that back gives the same records. */
    char id[SL_APIKEY_ID_LEN + 1];
    char *key = create_ok(s, "svc-c", SL_ROLE_READ, NULL, 0, 0, id);
    sl_apikey_store *s2 = open_ok(f->path);
    assert_int_equal(sl_apikey_list(s2, &r, &n), SL_OK);
    assert_int_equal(n, 3);
    sl_apikey_records_free(r, n);
    sl_apikey_record b;
    assert_int_equal(sl_apikey_get(s2, "bbbbbbbbbbbb", &b), SL_OK); /* the new id sorts anywhere */
    assert_true(b.expires_at == 1700000500.5);
    assert_int_equal(b.scoped, 1);
    assert_int_equal(b.role, SL_ROLE_ADMIN);
    sl_apikey_record_clear(&b);
    char *text = slurp(f->path);
    assert_non_null(strstr(text, "\"channels\":[]"));
    assert_null(strstr(text, "\n\n")); /* one record per line, no blank lines */
    sl_apikey_store_close(s2);

    /* load_text is the same parser without I/O. */
    sl_apikey_store *m = open_ok(NULL);
    sl_status st;
    assert_int_equal(sl_apikey_store_load_text(m, good_text, strlen(good_text), "mem", &st), SL_OK);
    assert_int_equal(sl_apikey_list(m, &r, &n), SL_OK);
    assert_int_equal(n, 2);
    sl_apikey_records_free(r, n);
    assert_int_equal(sl_apikey_store_load_text(m, "", 0, "mem", &st), SL_OK);
    assert_int_equal(sl_apikey_list(m, &r, &n), SL_OK);
    assert_int_equal(n, 0);
    sl_apikey_store_close(m);
    sl_apikey_key_free(key);
    sl_apikey_store_close(s);
}

#define REC(extra)                                                                                 \
    "{\"id\":\"aaaaaaaaaaaa\",\"principal\":\"svc-a\",\"hash\":"                                   \
    "\"0000000000000000000000000000000000000000000000000000000000000000\",\"created_at\":"         \
    "1700000000,\"expires_at\":0" extra "}\n"

static void test_corrupt_store(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *text;
        const char *msg; /* expected after "PATH:" */
    } cases[] = {
        {"\n" REC("") "{not json\n", "3: invalid JSON at column"},
        {REC(",\"chanels\":[\"jobs\"]"), "1: unknown field 'chanels'"},
        {REC(",\"role\":\"root\""), "1: \"role\" must be"},
        {REC(",\"channels\":[\"a..b\"]"), "1: \"channels\"[0] is not a valid channel pattern"},
        {REC(",\"channels\":\"jobs\""), "1: \"channels\" must be an array"},
        {"[1,2]\n", "1: expected a JSON object"},
        {REC("") REC(""), "2: duplicate id 'aaaaaaaaaaaa' (also on line 1)"},
        {"{\"id\":\"AAAAAAAAAAAA\"}\n", "1: \"id\" must be"},
        {"{\"id\":\"aaaaaaaaaaaa\",\"principal\":\"a b\"}\n", "1: \"principal\" must be"},
        {"{\"id\":\"aaaaaaaaaaaa\",\"principal\":\"a\",\"hash\":\"00\"}\n", "1: \"hash\" must be"},
        {REC(",\"expires_at\":1"), "1: invalid JSON at column"}, /* duplicate key */
        {"{\"id\":\"aaaaaaaaaaaa\",\"principal\":\"a\",\"hash\":"
         "\"0000000000000000000000000000000000000000000000000000000000000000\","
         "\"created_at\":-1,\"expires_at\":0}\n",
         "1: \"created_at\" must be"},
        {"{\"id\":\"aaaaaaaaaaaa\",\"principal\":\"a\",\"hash\":"
         "\"000000000000000000000000000000000000000000000000000000000000000G\","
         "\"created_at\":1,\"expires_at\":0}\n",
         "1: \"hash\" must be"},
    };
    char want[600];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spit(f->path, cases[i].text);
        sl_apikey_store *s = (sl_apikey_store *)0x1;
        sl_status st;
        sl_status_clear(&st);
        assert_int_equal(sl_apikey_store_open(&s, f->path, &st), SL_ECONFIG);
        assert_null(s);
        snprintf(want, sizeof want, "%s:%s", f->path, cases[i].msg);
        if (strncmp(st.message, want, strlen(want)) != 0)
            fail_msg("case %zu: got '%s', want prefix '%s'", i, st.message, want);
    }
    /* A NUL byte inside a line. */
    FILE *fp = fopen(f->path, "wb");
    fwrite(REC("") "{\"id\0\":1}\n", 1, sizeof(REC("")) - 1 + 11, fp);
    fclose(fp);
    sl_apikey_store *s = NULL;
    sl_status st;
    assert_int_equal(sl_apikey_store_open(&s, f->path, &st), SL_ECONFIG);
    snprintf(want, sizeof want, "%s:2: NUL byte", f->path);
    assert_string_equal(st.message, want);

    /* A corrupt file is not overwritten by a write: nothing is lost. */
    sl_apikey_store *m = open_ok(NULL);
    assert_int_equal(sl_apikey_store_load_text(m, "x\n", 2, "t", &st), SL_ECONFIG);
    assert_string_equal(st.message, "t:1: invalid JSON at column 1");
    sl_apikey_store_close(m);
    spit(f->path, "");
    s = open_ok(f->path);
    spit(f->path, "garbage\n");
    char *key = NULL, id[SL_APIKEY_ID_LEN + 1];
    assert_int_equal(sl_apikey_create(s, "svc-a", SL_ROLE_NONE, NULL, 0, 0, NOW, &key, id, &st),
                     SL_ECONFIG);
    assert_null(key);
    assert_string_equal(slurp(f->path), "garbage\n");
    sl_apikey_store_close(s);
}

static void test_atomic_write_mode(void **state)
{
    fixture *f = *state;
    mode_t old = umask(0); /* a permissive umask must not leak into the file's mode */
    sl_apikey_store *s = open_ok(f->path);
    char id[SL_APIKEY_ID_LEN + 1];
    char *key = create_ok(s, "svc-a", SL_ROLE_NONE, NULL, 0, 0, id);
    umask(old);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    ino_t ino = sb.st_ino;
    sl_status st;
    assert_int_equal(sl_apikey_expire(s, id, NOW + 1, &st), SL_OK);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_true(sb.st_ino != ino); /* replaced by rename, not rewritten in place */

    /* Only the store and its lock file remain: no temporary file. */
    DIR *d = opendir(f->dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        files++;
        if (strcmp(e->d_name, "keys.jsonl") && strcmp(e->d_name, "keys.jsonl.lock"))
            fail_msg("unexpected file %s", e->d_name);
    }
    closedir(d);
    assert_int_equal(files, 2);

    /* A write that fails half-way (the file size limit, which binds root too) leaves the file,
     * the records in memory and the directory as they were. */
    struct rlimit lim, small = {.rlim_cur = 64, .rlim_max = RLIM_INFINITY};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &lim), 0);
    small.rlim_max = lim.rlim_max;
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    char before[4096];
    snprintf(before, sizeof before, "%s", slurp(f->path));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    char *k = NULL, id2[SL_APIKEY_ID_LEN + 1];
    int rc = sl_apikey_create(s, "svc-b", SL_ROLE_NONE, NULL, 0, 0, NOW, &k, id2, &st);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    signal(SIGXFSZ, oldsig);
    assert_int_equal(rc, SL_EIO);
    assert_non_null(strstr(st.message, "cannot write"));
    assert_null(k);
    assert_string_equal(slurp(f->path), before);
    sl_apikey_record *r;
    size_t n;
    assert_int_equal(sl_apikey_list(s, &r, &n), SL_OK);
    assert_int_equal(n, 1);
    sl_apikey_records_free(r, n);
    d = opendir(f->dir);
    files = 0;
    while ((e = readdir(d)) != NULL)
        files += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    assert_int_equal(files, 2);
    sl_apikey_key_free(key);
    sl_apikey_store_close(s);
}

static void test_reload(void **state)
{
    fixture *f = *state;
    sl_apikey_store *server = open_ok(f->path); /* no file yet: empty */
    sl_apikey_store *cli = open_ok(f->path);
    char id[SL_APIKEY_ID_LEN + 1], id2[SL_APIKEY_ID_LEN + 1], msg[400];
    char *key = create_ok(cli, "svc-a", SL_ROLE_NONE, NULL, 0, 0, id);
    sl_identity who;
    sl_identity_init(&who);
    sl_status st;
    assert_int_equal(auth(server, key, strlen(key), NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_int_equal(sl_apikey_reload(server, &st), SL_OK);
    assert_int_equal(auth(server, key, strlen(key), NOW, &who, NULL, 0), SL_OK);
    sl_identity_clear(&who);
    /* Nothing changed: still fine. */
    assert_int_equal(sl_apikey_reload(server, &st), SL_OK);

    /* Writers do not lose each other's changes: cli2's store is stale, yet its create keeps the
     * key cli made after it opened. */
    sl_apikey_store *cli2 = open_ok(f->path);
    char *key2 = create_ok(cli, "svc-b", SL_ROLE_NONE, NULL, 0, 0, id2);
    char id3[SL_APIKEY_ID_LEN + 1];
    char *key3 = create_ok(cli2, "svc-c", SL_ROLE_NONE, NULL, 0, 0, id3);
    assert_int_equal(sl_apikey_reload(server, &st), SL_OK);
    sl_apikey_record *r;
    size_t n;
    assert_int_equal(sl_apikey_list(server, &r, &n), SL_OK);
    assert_int_equal(n, 3);
    sl_apikey_records_free(r, n);

    assert_int_equal(sl_apikey_delete(cli, id, &st), SL_OK);
    assert_int_equal(sl_apikey_reload(server, &st), SL_OK);
    assert_int_equal(auth(server, key, strlen(key), NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_string_equal(msg, "unknown api key");

    /* A corrupt file keeps the last good records in force and says where it is broken. */
    spit(f->path, "{\n");
    assert_int_equal(sl_apikey_reload(server, &st), SL_ECONFIG);
    assert_non_null(strstr(st.message, ":1: invalid JSON"));
    assert_int_equal(auth(server, key2, strlen(key2), NOW, &who, NULL, 0), SL_OK);
    sl_identity_clear(&who);

    /* A removed file: no keys. */
    unlink(f->path);
    assert_int_equal(sl_apikey_reload(server, &st), SL_OK);
    assert_int_equal(auth(server, key2, strlen(key2), NOW, &who, msg, sizeof msg), SL_ETOKEN);
    assert_int_equal(sl_apikey_list(server, &r, &n), SL_OK);
    assert_int_equal(n, 0);

    /* Memory-only stores reload trivially and write nowhere. */
    sl_apikey_store *m = open_ok(NULL);
    assert_null(sl_apikey_store_path(m));
    assert_int_equal(sl_apikey_reload(m, &st), SL_OK);
    sl_apikey_store_close(m);
    assert_string_equal(sl_apikey_store_path(server), f->path);

    sl_apikey_key_free(key);
    sl_apikey_key_free(key2);
    sl_apikey_key_free(key3);
    sl_apikey_store_close(cli2);
    sl_apikey_store_close(cli);
    sl_apikey_store_close(server);
}

static void test_unreadable_and_args(void **state)
{
    fixture *f = *state;
    sl_apikey_store *s = NULL;
    sl_status st;
    /* A directory where the file should be. */
    assert_int_equal(sl_apikey_store_open(&s, f->dir, &st), SL_EIO);
    assert_null(s);
    assert_int_equal(sl_apikey_store_open(&s, "", &st), SL_EINVAL);
    assert_int_equal(sl_apikey_store_open(NULL, f->path, &st), SL_EINVAL);
    assert_int_equal(sl_apikey_reload(NULL, &st), SL_EINVAL);
    sl_identity who;
    sl_identity_init(&who);
    assert_int_equal(sl_apikey_authenticate(NULL, "x", 1, NOW, &who, &st), SL_EINVAL);
    s = open_ok(NULL);
    char *k = NULL;
    assert_int_equal(sl_apikey_create(s, "a", SL_ROLE_NONE, NULL, 1, 0, NOW, &k, NULL, &st),
                     SL_EINVAL);
    assert_int_equal(sl_apikey_delete(s, NULL, &st), SL_EINVAL);
    assert_int_equal(sl_apikey_delete(s, "aaaaaaaaaaaa", &st), SL_ENOENT);
    /* Memory-only stores create and delete too (for tests and fuzzers). */
    char id[SL_APIKEY_ID_LEN + 1];
    k = create_ok(s, "svc", SL_ROLE_NONE, NULL, 0, 0, id);
    assert_int_equal(sl_apikey_delete(s, id, &st), SL_OK);
    sl_apikey_key_free(k);
    sl_apikey_key_free(NULL);
    sl_apikey_store_close(s);
    sl_apikey_store_close(NULL);
}

typedef struct answer {
    int calls, status;
    char principal[300], reason[300];
} answer;

static void on_answer(void *ud, int status, const sl_identity *who, const char *reason)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
    snprintf(a->principal, sizeof a->principal, "%s", who ? who->principal : "");
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
}

static void test_authenticator(void **state)
{
    fixture *f = *state;
    sl_apikey_store *server = open_ok(f->path);
    sl_authenticator *au = NULL;
    assert_int_equal(sl_apikey_authenticator_new(server, &au), SL_OK);
    assert_string_equal(au->name, "api-key");
    answer a = {0};
    au->authenticate(au, "eyJhbGciOiJIUzI1NiJ9.e30.x", 26, NOW, on_answer, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "not an api key");

    /* A key made by another store (the CLI) is seen without an explicit reload. */
    sl_apikey_store *cli = open_ok(f->path);
    char id[SL_APIKEY_ID_LEN + 1];
    char *key = create_ok(cli, "svc-a", SL_ROLE_READ, NULL, 0, 0, id);
    memset(&a, 0, sizeof a);
    au->authenticate(au, key, strlen(key), NOW, on_answer, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, SL_OK);
    assert_string_equal(a.principal, "svc-a");
    sl_status st;
    assert_int_equal(sl_apikey_expire(cli, id, NOW + 1, &st), SL_OK);
    memset(&a, 0, sizeof a);
    au->authenticate(au, key, strlen(key), NOW + 2, on_answer, &a);
    assert_int_equal(a.status, SL_ETOKEN);
    assert_string_equal(a.reason, "api key expired");
    memset(&a, 0, sizeof a);
    au->authenticate(au, "slk_x", 5, NOW, on_answer, &a);
    assert_string_equal(a.reason, "malformed api key");
    assert_int_equal(sl_apikey_authenticator_new(NULL, &au), SL_EINVAL);
    au->free(au);
    sl_apikey_key_free(key);
    sl_apikey_store_close(cli);
    sl_apikey_store_close(server);
}

/* The write-ahead hook (the server's audit record) runs once the id is chosen and before the key
 * is on disk; when it fails, nothing is written. */
typedef struct ahead_probe {
    const char *path;
    int calls, fail;
    char id[SL_APIKEY_ID_LEN + 1];
    int on_disk; /* the id was already in the store file when the hook ran */
} ahead_probe;

static int file_has(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    char buf[8192];
    size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
    if (fp)
        fclose(fp);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static int probe(void *ud, const char *id, sl_status *st)
{
    ahead_probe *p = ud;
    p->calls++;
    snprintf(p->id, sizeof p->id, "%s", id);
    p->on_disk = file_has(p->path, id);
    return p->fail ? sl_status_set(st, SL_EUNAVAIL, "audit log unavailable") : SL_OK;
}

static void test_create_written_ahead(void **state)
{
    fixture *f = *state;
    sl_apikey_store *s = open_ok(f->path);
    ahead_probe p = {.path = f->path};
    char *key = NULL, id[SL_APIKEY_ID_LEN + 1];
    sl_status st;
    sl_status_clear(&st);
    assert_int_equal(
        sl_apikey_create_ahead(s, "svc", SL_ROLE_READ, NULL, 0, 0, NOW, probe, &p, &key, id, &st),
        SL_OK);
    assert_int_equal(p.calls, 1);
    assert_string_equal(p.id, id);
    assert_false(p.on_disk);
    assert_true(file_has(f->path, id));
    sl_apikey_key_free(key);
    /* A hook that fails: no key, nothing on disk. */
    p.fail = 1;
    key = NULL;
    assert_int_equal(
        sl_apikey_create_ahead(s, "svc2", SL_ROLE_READ, NULL, 0, 0, NOW, probe, &p, &key, id, &st),
        SL_EUNAVAIL);
    assert_null(key);
    assert_int_equal(p.calls, 2);
    assert_false(file_has(f->path, p.id));
    assert_false(file_has(f->path, "svc2"));
    sl_apikey_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_secret_unknown_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scoped_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_and_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authenticator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_written_ahead, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
