/* The JSON validator against a table of valid and hostile texts, and against jansson: whatever the
 * validator accepts, jansson must parse (readers get the stored text back through jansson). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonv.h"

static int jansson_ok(const char *s, size_t n)
{
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY, NULL);
    json_decref(j);
    return j != NULL;
}

static const char *const valid[] = {
    "9223372036854775807",
    "-9223372036854775808",
    "1e300",
    "1e-400",
    "0",
    "-0",
    "1.5e10",
    "-1E-2",
    "true",
    "false",
    "null",
    "\"\"",
    "\"a\\n\\u00e9\\\"\"",
    "[]",
    "{}",
    " [1, 2 ,3 ] ",
    "{\"a\":{\"b\":[true,null,{\"c\":\"d\"}]}}",
    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
    "[[[[[]]]]]",
    "{\"k\":\"v\",\"k2\":[]}",
    "\n\t1\r\n",
    "\"\\ud83d\\ude00\"",
    "9223372036854775807",
    "-9223372036854775808",
    "1e300",
    "1e-400",
    "\"\\u00e9\\u20ac\"",
};

static const char *const invalid[] = {
    "11111111111111111111111111111111111111111112",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    "[1,99999999999999999999]",
    "",
    " ",
    "01",
    "1.",
    ".5",
    "-",
    "+1",
    "1e",
    "1e+",
    "tru",
    "nul",
    "True",
    "[",
    "]",
    "{",
    "[1,]",
    "[,1]",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\":1,}",
    "{a:1}",
    "{\"a\" 1}",
    "[1 2]",
    "1 2",
    "\"abc",
    "\"\\x\"",
    "\"\\u12\"",
    "\"\\u12g4\"",
    "\"a\x01\"",
    "\"\xc0\xaf\"",
    "\"\xed\xa0\x80\"",
    "\"\xf5\x80\x80\x80\"",
    "\"\xe2\x82\"",
    "\"\x80\"",
    "[1]]",
    "{}}",
    "[\"a\":1]",
    "{\"a\":1]",
    "'a'",
    "NaN",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud800\\u0041\"",
    "Infinity",
    "[1,2",
    "{\"a\":[1,{\"b\":2]}}",
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        if (!sl__json_valid(valid[i], strlen(valid[i])))
            fail_msg("rejected valid %s", valid[i]);
        assert_true(jansson_ok(valid[i], strlen(valid[i])));
    }
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        if (sl__json_valid(invalid[i], strlen(invalid[i])))
            fail_msg("accepted invalid %s", invalid[i]);
        assert_false(jansson_ok(invalid[i], strlen(invalid[i])));
    }
    assert_false(sl__json_valid("[1,\0002]", 6)); /* NUL byte */
    assert_false(sl__json_valid("\"a\0b\"", 5));
    assert_false(sl__json_valid(NULL, 0));
}

/* n levels of nesting: arrays, objects ({"k": ...}) or the two alternating, around a 0. Returns the
 * length written into buf (cap bytes). */
static size_t nest(char *buf, size_t cap, int n, char kind)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int obj = kind == '{' || (kind == 'm' && i % 2);
        const char *open = obj ? "{\"k\":" : "[";
        assert_true(len + 5 < cap);
        memcpy(buf + len, open, strlen(open));
        len += strlen(open);
    }
    buf[len++] = '0';
    for (int i = n - 1; i >= 0; i--) {
        int obj = kind == '{' || (kind == 'm' && i % 2);
        assert_true(len + 1 < cap);
        buf[len++] = obj ? '}' : ']';
    }
    return len;
}

/* The documented limit, pinned as a number rather than read from the header: 256 levels of
 * nesting are accepted and 257 refused, whatever the containers, and jansson parses what passes. */
static void test_depth(void **state)
{
    (void)state;
    static char buf[8192];
    const char kinds[] = {'[', '{', 'm'};
    for (size_t k = 0; k < sizeof kinds; k++) {
        for (int d = 255; d <= 258; d++) {
            size_t n = nest(buf, sizeof buf, d, kinds[k]);
            int ok = sl__json_valid(buf, n);
            if (ok != (d <= 256))
                fail_msg("nesting %d (%c): %s", d, kinds[k], ok ? "accepted" : "refused");
            if (ok)
                assert_true(jansson_ok(buf, n));
        }
    }
    /* Far deeper is refused too. */
    size_t n = nest(buf, sizeof buf, 600, '[');
    assert_false(sl__json_valid(buf, n));
    /* Closing a container gives its level back: two siblings each reaching the limit pass, two
     * going one deeper do not. */
    for (int d = 255; d <= 256; d++) {
        n = nest(buf + 1, sizeof buf / 2 - 2, d, 'm');
        buf[0] = '[';
        buf[n + 1] = ',';
        memcpy(buf + n + 2, buf + 1, n);
        buf[2 * n + 2] = ']';
        assert_int_equal(sl__json_valid(buf, 2 * n + 3), d == 255);
    }
}

/* Random mutations of valid documents: the validator never accepts what jansson rejects. */
static void test_agrees_with_jansson(void **state)
{
    (void)state;
    srand(42);
    char buf[128];
    for (int i = 0; i < 200000; i++) {
        const char *base = valid[(size_t)rand() % (sizeof valid / sizeof *valid)];
        size_t n = strlen(base);
        memcpy(buf, base, n);
        int edits = 1 + rand() % 3;
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = (size_t)rand() % n;
            static const char alphabet[] = "{}[]:,\"\\01e.-+tfn u\x01\x80\xc3\xff ";
            buf[at] = alphabet[(size_t)rand() % (sizeof alphabet - 1)];
        }
        if (sl__json_valid(buf, n) && !jansson_ok(buf, n))
            fail_msg("validator accepted what jansson rejects: %.*s", (int)n, buf);
    }
}

/* Strings long enough for the plain-run scanner's 16-byte steps: every kind of byte that ends a
 * plain run (quote, backslash, control, each UTF-8 lead, a stray continuation, DEL) at every
 * offset, in strings of every length up to 70, agrees with jansson, with and without the closing
 * quote (a string that ends inside a step). */
static void test_long_strings_every_offset(void **state)
{
    (void)state;
    static const char *const odd[] = {"\"",
                                      "\\",
                                      "\x01",
                                      "\x1f",
                                      "\x7f",
                                      "\x80",
                                      "\xc3\xa9",
                                      "\xe2\x82\xac",
                                      "\xf0\x9f\x98\x80",
                                      "\xc3",
                                      "\\n",
                                      "\\u0041",
                                      "\xff",
                                      " "};
    char buf[128];
    for (size_t len = 0; len <= 70; len++) {
        for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
            size_t ol = strlen(odd[k]);
            for (size_t at = 0; at <= len; at++) {
                size_t n = 0;
                buf[n++] = '"';
                for (size_t i = 0; i < at; i++)
                    buf[n++] = (char)('a' + i % 26);
                memcpy(buf + n, odd[k], ol);
                n += ol;
                for (size_t i = at; i < len; i++)
                    buf[n++] = (char)('A' + i % 26);
                buf[n++] = '"';
                assert_int_equal(sl__json_valid(buf, n), jansson_ok(buf, n));
                /* without its closing quote: unterminated, but for a quote inside */
                assert_int_equal(sl__json_valid(buf, n - 1), jansson_ok(buf, n - 1));
            }
        }
    }
}

/* The lengths where the validator stops converting numbers (integers of up to 18 digits, reals
 * without an exponent of up to 300 digits before the point) and the first past them. */
static void test_number_lengths(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int ok;
    } fixed[] = {
        {"999999999999999999", 1},        {"-999999999999999999", 1}, {"1000000000000000000", 1},
        {"9223372036854775807", 1},       {"9223372036854775808", 0}, {"-9223372036854775809", 0},
        {"[1,-0,123456789012345678]", 1},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        const char *t = fixed[i].text;
        assert_int_equal(sl__json_valid(t, strlen(t)), fixed[i].ok);
        assert_int_equal(jansson_ok(t, strlen(t)), fixed[i].ok);
    }
    /* reals of 300, 309 (1e308 written out) and 310 (1e309, infinite) digits before the point */
    static const struct {
        size_t zeros;
        int ok;
    } reals[] = {{299, 1}, {308, 1}, {309, 0}};
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++) {
        char buf[400];
        size_t n = 0;
        buf[n++] = '-';
        buf[n++] = '1';
        memset(buf + n, '0', reals[i].zeros);
        n += reals[i].zeros;
        memcpy(buf + n, ".25", 3);
        n += 3;
        assert_int_equal(sl__json_valid(buf, n), reals[i].ok);
        assert_int_equal(jansson_ok(buf, n), reals[i].ok);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_number_lengths),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_agrees_with_jansson),
        cmocka_unit_test(test_long_strings_every_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
