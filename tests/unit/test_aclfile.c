/* The ACL file (server/aclfile.h): what the parser takes and refuses (with the
 * line), the overlap with the configuration's grants, applying a load and the next (grants made,
 * kept, revoked; audited and announced like any grant), what a failed apply leaves, and the
 * stored state (encode/decode, forgetting the configuration's principals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/aclfile.h"

static int parse(sl__config *c, const char *text, sl_status *st)
{
    sl__config_init(c);
    sl_status_clear(st);
    return sl__aclfile_parse(c, text, strlen(text), "acl.conf", st);
}

static void test_parse_grants(void **state)
{
    (void)state;
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c,
                           "# grants\n\n[acl worker-1]\nrole = write\nchannels = jobs, jobs.*\n"
                           "deny = jobs.secret\n  [ acl   reader ]\n role=read\n",
                           &st),
                     SL_OK);
    assert_int_equal(c.ngrants, 2);
    assert_string_equal(c.grants[0].principal, "worker-1");
    assert_int_equal(c.grants[0].role, SL_ROLE_WRITE);
    assert_int_equal(c.grants[0].npatterns, 2);
    assert_int_equal(c.grants[0].ndeny, 1);
    assert_string_equal(c.grants[1].principal, "reader");
    assert_int_equal(c.grants[1].npatterns, 0);
    sl__config_free(&c);
    assert_int_equal(parse(&c, "", &st), SL_OK); /* an empty file: no grants */
    assert_int_equal(c.ngrants, 0);
    sl__config_free(&c);
}

static void refused(const char *text, const char *why)
{
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c, text, &st), SL_ECONFIG);
    if (strstr(st.message, why) == NULL)
        fail_msg("'%s': expected '%s' in '%s'", text, why, st.message);
    sl__config_free(&c);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    refused("insecure = true\n[acl a]\nrole = read\n", "acl.conf:1: an ACL file holds");
    refused("[acl a]\nrole = read\n\n[channel c]\nkind = topic\n", "acl.conf:4: an ACL file");
    refused("[role workers]\ngrants = write\n", "acl.conf:1:");
    refused("[invoke_policy x]\nallow = *:*\n", "acl.conf:1:");
    refused("[aclx a]\nrole = read\n", "acl.conf:1:");
    refused("[acl a]\nrole = owner\n", "acl.conf:2: role must be");
    refused("[acl a]\nchannels = jobs\n", "[acl a] has no role");
    refused("[acl a]\nrole = read\nchannels = a..b\n", "acl.conf:3: invalid channel pattern");
    refused("[acl a/b]\nrole = read\n", "invalid principal");
    refused("[acl a]\nrole = read\n[acl b]\nrole = read\n[acl a]\nrole = admin\n",
            "[acl a] appears twice");
    refused("[acl a]\nrole = read\nshade = blue\n", "unknown acl option");
}

static void test_overlap(void **state)
{
    (void)state;
    sl__config file, cfg;
    sl_status st;
    assert_int_equal(parse(&file, "[acl ops]\nrole = read\n[acl w]\nrole = write\n", &st), SL_OK);
    sl__config_init(&cfg);
    assert_int_equal(sl__aclfile_check_overlap(&file, &cfg, "acl.conf", &st), SL_OK);
    assert_int_equal(sl__config_set(&cfg, "admin", "ops", &st), SL_OK);
    assert_int_equal(sl__aclfile_check_overlap(&file, &cfg, "acl.conf", &st), SL_ECONFIG);
    assert_non_null(strstr(st.message, "[acl ops] is also an admin"));
    sl__config_free(&cfg);
    sl__config_init(&cfg);
    const char *text = "[acl w]\nrole = read\n";
    assert_int_equal(sl__config_parse(&cfg, text, strlen(text), "main.conf", &st), SL_OK);
    assert_int_equal(sl__aclfile_check_overlap(&file, &cfg, "acl.conf", &st), SL_ECONFIG);
    assert_non_null(strstr(st.message, "[acl w] is also in the configuration"));
    sl__config_free(&cfg);
    sl__config_free(&file);
}

typedef struct seen {
    int grants, revokes, changed, removed;
    int fail_audit; /* the audit sink refuses from then on */
} seen;

static int audit(void *ud, const char *record, sl_status *st)
{
    seen *s = ud;
    if (s->fail_audit)
        return sl_status_set(st, SL_EIO, "audit log full");
    s->grants += strstr(record, "\"acl.grant\"") != NULL;
    s->revokes += strstr(record, "\"acl.revoke\"") != NULL;
    return SL_OK;
}

static void listener(void *ud, const sl_event *ev)
{
    seen *s = ud;
    if (ev->kind == SL_EVENT_ACL_CHANGED)
        *(ev->removed ? &s->removed : &s->changed) += 1;
}

static sl_role role_of(sl_ctx *ctx, const char *principal)
{
    sl_acl_entry *e;
    size_t n;
    sl_status st;
    assert_int_equal(sl_acl_list(ctx, NULL, &e, &n, &st), SL_OK);
    sl_role r = SL_ROLE_NONE;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].principal, principal))
            r = e[i].role;
    sl_acl_entries_free(e, n);
    return r;
}

static void load(sl_ctx *ctx, sl__aclfile_state *state, const char *text, size_t want_changed,
                 size_t want_removed)
{
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c, text, &st), SL_OK);
    size_t changed = 99, removed = 99;
    assert_int_equal(sl__aclfile_apply(ctx, &c, state, &changed, &removed, &st), SL_OK);
    assert_int_equal(changed, want_changed);
    assert_int_equal(removed, want_removed);
    sl__config_free(&c);
}

static void test_apply_and_reload(void **state)
{
    (void)state;
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_ACL};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    seen s = {0};
    sl_ctx_set_audit(ctx, audit, &s);
    sl_ctx_set_listener(ctx, listener, &s);
    sl_status st;
    assert_int_equal(sl_acl_grant(ctx, NULL, "runtime", SL_ROLE_READ, NULL, 0, &st), SL_OK);
    s = (seen){0};
    sl__aclfile_state fs = {0};
    load(ctx, &fs, "[acl a]\nrole = read\n[acl b]\nrole = write\nchannels = jobs\n", 2, 0);
    assert_int_equal(s.grants, 2);
    assert_int_equal(s.changed, 2);
    assert_int_equal(fs.n, 2);
    assert_int_equal(role_of(ctx, "b"), SL_ROLE_WRITE);
    /* the same again: nothing made, nothing audited */
    s = (seen){0};
    load(ctx, &fs, "[acl b]\nrole = write\nchannels = jobs\n[acl a]\nrole = read\n", 0, 0);
    assert_int_equal(s.grants + s.revokes + s.changed + s.removed, 0);
    /* a leaves, b changes its channels, c comes */
    load(ctx, &fs, "[acl b]\nrole = write\nchannels = jobs, jobs.*\n[acl c]\nrole = admin\n", 2, 1);
    assert_int_equal(s.revokes, 1);
    assert_int_equal(s.removed, 1);
    assert_int_equal(role_of(ctx, "a"), SL_ROLE_NONE);
    assert_int_equal(role_of(ctx, "c"), SL_ROLE_ADMIN);
    assert_int_equal(role_of(ctx, "runtime"), SL_ROLE_READ); /* not the file's */
    /* b revoked over HTTP meanwhile, then left out of the file: nothing to revoke, no error */
    assert_int_equal(sl_acl_revoke(ctx, NULL, "b", &st), SL_OK);
    load(ctx, &fs, "[acl c]\nrole = admin\n", 0, 0);
    assert_int_equal(fs.n, 1);
    /* an apply that fails half way (the audit refuses) keeps both loads' principals */
    s.fail_audit = 1;
    sl__config c;
    assert_int_equal(parse(&c, "[acl d]\nrole = read\n", &st), SL_OK);
    assert_int_not_equal(sl__aclfile_apply(ctx, &c, &fs, NULL, NULL, &st), SL_OK);
    assert_int_equal(fs.n, 2); /* d and c: the next load still revokes c */
    s.fail_audit = 0;
    assert_int_equal(sl__aclfile_apply(ctx, &c, &fs, NULL, NULL, &st), SL_OK);
    assert_int_equal(role_of(ctx, "c"), SL_ROLE_NONE);
    assert_int_equal(role_of(ctx, "d"), SL_ROLE_READ);
    assert_int_equal(fs.n, 1);
    sl__config_free(&c);
    sl__aclfile_state_free(&fs);
    sl_ctx_free(ctx);
}

static void test_stored_state(void **state)
{
    (void)state;
    sl__aclfile_state s = {0}, back = {0};
    char *a = strdup("worker-1"), *b = strdup("svc-a");
    char *list[] = {a, b};
    s.principals = list;
    s.n = 2;
    char *text;
    size_t len;
    assert_int_equal(sl__aclfile_state_encode(&s, &text, &len), SL_OK);
    sl_status st;
    assert_int_equal(sl__aclfile_state_decode(&back, text, len, &st), SL_OK);
    free(text);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.principals[0], "worker-1");
    assert_string_equal(back.principals[1], "svc-a");
    /* the configuration's principals are dropped from it */
    sl__config cfg;
    sl__config_init(&cfg);
    assert_int_equal(sl__config_set(&cfg, "admin", "worker-1", &st), SL_OK);
    sl__aclfile_state_forget(&back, &cfg);
    sl__config_free(&cfg);
    assert_int_equal(back.n, 1);
    assert_string_equal(back.principals[0], "svc-a");
    /* what does not decode leaves the state as it was */
    static const char *const bad[] = {"",
                                      "[]",
                                      "{\"v\":2,\"principals\":[]}",
                                      "{\"v\":1,\"principals\":[\"a/b\"]}",
                                      "{\"v\":1,\"principals\":[1]}",
                                      "{\"v\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(sl__aclfile_state_decode(&back, bad[i], strlen(bad[i]), &st), SL_EFORMAT);
        assert_int_equal(back.n, 1);
    }
    sl__aclfile_state_free(&back);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_grants), cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_overlap),      cmocka_unit_test(test_apply_and_reload),
        cmocka_unit_test(test_stored_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
