/* Channel ids, the pattern matcher (string form and compiled trie, which must always agree) and
 * principal ids, with hostile inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <sluice/sluice.h>

#include "security/patset.h"

static int idok(const char *s)
{
    return sl_channel_id_valid(s, strlen(s));
}

static void test_channel_ids(void **state)
{
    (void)state;
    const char *good[] = {"jobs", "orders.eu", "room:42", "a-b_c.D:9", "x"};
    const char *
        bad[] = {"",     ".",        "a.",  ".a",   "a..b", "a::b", "a/b",
                 "..",   "*",        "a.*", "a b",  "a\tb", "a\nb", "%2F",
                 "a%2e", "jobs\x01", "é",   "a.b:", "a#",   "a?b"}; /* "a#b": user-limited, valid */
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(idok(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(idok(bad[i]));
    char longid[300];
    memset(longid, 'a', sizeof longid);
    assert_true(sl_channel_id_valid(longid, 255));
    assert_false(sl_channel_id_valid(longid, 256));
    assert_false(sl_channel_id_valid("jo\0bs", 5)); /* embedded NUL */
    assert_false(sl_channel_id_valid(NULL, 0));
}

static const struct {
    const char *pat, *ch;
    int match;
} table[] = {
    {"jobs", "jobs", 1},
    {"jobs", "jobs2", 0},
    {"jobs", "job", 0},
    {"jobs", "jobs.x", 0},
    {"*", "jobs", 1},
    {"*", "jobs.x", 0},
    {"orders.*", "orders.eu", 1},
    {"orders.*", "orders", 0},
    {"orders.*", "orders.eu.x", 0},
    {"orders.**", "orders", 1},
    {"orders.**", "orders.eu", 1},
    {"orders.**", "orders.eu.x", 1},
    {"orders.**", "ordersx", 0},
    {"**", "anything.at:all", 1},
    {"room:*", "room:42", 1},
    {"room.*", "room:42", 1},
    {"*.eu", "orders.eu", 1},
    {"*.eu", "orders.us", 0},
    {"a.*.c", "a.b.c", 1},
    {"a.*.c", "a.b.d", 0},
    {"a.*.**", "a.b", 1},
    {"a.*.**", "a", 0},
    {"a.b", "a.b.c", 0},
    {"a.b.c", "a.b", 0},
};

static void test_pattern_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        assert_true(sl_pattern_valid(table[i].pat, strlen(table[i].pat)));
        int got = sl_pattern_match(table[i].pat, table[i].ch);
        if (got != table[i].match)
            fail_msg("pattern %s vs %s: got %d", table[i].pat, table[i].ch, got);
        sl__patset *ps;
        assert_int_equal(sl__patset_new(&ps), SL_OK);
        assert_int_equal(sl__patset_add(ps, table[i].pat), SL_OK);
        if (sl__patset_match(ps, table[i].ch) != table[i].match)
            fail_msg("patset %s vs %s disagrees", table[i].pat, table[i].ch);
        sl__patset_free(ps);
    }
}

static void test_pattern_invalid(void **state)
{
    (void)state;
    const char *bad[] = {"", "a.", "**.a", "a.**.b", "***", "a*", "*a", "a..b", "a/b", "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(sl_pattern_valid(bad[i], strlen(bad[i])));
    sl__patset *ps;
    assert_int_equal(sl__patset_new(&ps), SL_OK);
    assert_int_equal(sl__patset_add(ps, "a.**.b"), SL_EINVAL);
    assert_int_equal(sl__patset_add(ps, NULL), SL_EINVAL);
    assert_int_equal(sl__patset_size(ps), 0);
    sl__patset_free(ps);
}

static void test_patset_many(void **state)
{
    (void)state;
    sl__patset *ps;
    assert_int_equal(sl__patset_new(&ps), SL_OK);
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(buf, sizeof buf, "tenant-%d.*", i);
        assert_int_equal(sl__patset_add(ps, buf), SL_OK);
    }
    assert_int_equal(sl__patset_add(ps, "shared.**"), SL_OK);
    assert_true(sl__patset_match(ps, "tenant-19999.jobs"));
    assert_true(sl__patset_match(ps, "tenant-0.x"));
    assert_false(sl__patset_match(ps, "tenant-20000.jobs"));
    assert_false(sl__patset_match(ps, "tenant-5"));
    assert_true(sl__patset_match(ps, "shared"));
    assert_true(sl__patset_match(ps, "shared.a.b.c"));
    assert_false(sl__patset_matches_all(ps));
    assert_int_equal(sl__patset_add(ps, "**"), SL_OK);
    assert_true(sl__patset_matches_all(ps));
    sl__patset_free(ps);
}

static void test_principals(void **state)
{
    (void)state;
    assert_true(sl_principal_valid("worker-1", 8));
    assert_true(sl_principal_valid("svc@example.com", 15));
    assert_false(sl_principal_valid("", 0));
    assert_false(sl_principal_valid("a b", 3));
    assert_false(sl_principal_valid("a/b", 3));
    assert_false(sl_principal_valid("it's", 4));
    assert_false(sl_principal_valid("a\"b", 3));
    assert_false(sl_principal_valid("a\x7f", 2));
    assert_true(sl_workspace_valid("acme-1_b", 8));
    assert_false(sl_workspace_valid("", 0));
    assert_false(sl_workspace_valid("a.b", 3));
    assert_false(sl_workspace_valid("a/b", 3));
    char longest[SL_WORKSPACE_MAX + 2];
    memset(longest, 'w', sizeof longest);
    assert_true(sl_workspace_valid(longest, SL_WORKSPACE_MAX));
    assert_false(sl_workspace_valid(longest, SL_WORKSPACE_MAX + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_ids),     cmocka_unit_test(test_pattern_table),
        cmocka_unit_test(test_pattern_invalid), cmocka_unit_test(test_patset_many),
        cmocka_unit_test(test_principals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
