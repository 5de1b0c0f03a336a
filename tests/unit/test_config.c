/* The configuration: the file parser (every section and option, errors that name file and line),
 * and the rule that every setting changes only its own key, whatever the order and wherever it
 * comes from (file, flag, environment) -- checked for every key and every pair of keys in both
 * orders, generated from the parser's own key table (sl__config_keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"

static int parse(sl__config *c, const char *text, sl_status *st)
{
    sl__config_init(c);
    return sl__config_parse(c, text, strlen(text), "test.conf", st);
}

static void test_full(void **state)
{
    (void)state;
    const char *text = "# sluiced config\n"
                       "listen = 0.0.0.0:9000\n"
                       "authz = acl\n"
                       "admin = ops\n"
                       "max_body = 2048\n"
                       "request_timeout = 2.5\n"
                       "\n"
                       "[channel jobs]\n"
                       "kind = queue\n"
                       "name = Job Queue\n"
                       "claim_timeout = 60\n"
                       "max_attempts = 5\n"
                       "backoff = 1, 5,30 ,300\n"
                       "dedup_window = 600\n"
                       "[channel news]\n"
                       "cursor_idle_timeout = 3600\n"
                       "kind = topic\n"
                       "visibility = private\n"
                       "retention_max_count = 100\n"
                       "[acl worker-1]\n"
                       "role = write\n"
                       "channels = jobs, orders.*\n";
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c, text, &st), SL_OK);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.authz, SL_MODE_ACL);
    assert_int_equal(c.nadmins, 1);
    assert_int_equal(c.limits.max_body, 2048);
    assert_int_equal(c.limits.request_timeout_ms, 2500);
    assert_int_equal(c.nchannels, 2);
    assert_string_equal(c.channels[0].opts.name, "Job Queue");
    assert_true(c.channels[0].opts.claim_timeout == 60);
    assert_int_equal(c.channels[0].opts.max_attempts, 5);
    assert_int_equal(c.channels[0].opts.visibility, SL_VIS_PUBLIC);
    assert_int_equal(c.channels[0].opts.nbackoff, 4);
    assert_true(c.channels[0].opts.backoff[1] == 5 && c.channels[0].opts.backoff[3] == 300);
    assert_true(c.channels[0].opts.dedup_window == 600);
    assert_true(c.channels[1].opts.cursor_idle_timeout == 3600);
    assert_int_equal(c.channels[1].opts.kind, SL_KIND_TOPIC);
    assert_int_equal(c.channels[1].opts.visibility, SL_VIS_PRIVATE);
    assert_int_equal(c.ngrants, 1);
    assert_int_equal(c.grants[0].role, SL_ROLE_WRITE);
    assert_int_equal(c.grants[0].npatterns, 2);
    assert_string_equal(c.grants[0].patterns[1], "orders.*");
    sl__config_free(&c);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    struct {
        const char *text, *want;
    } cases[] = {
        {"listen = nowhere\n", "test.conf:1: listen must be HOST:PORT"},
        {"listen = [[a]]:80\n", "test.conf:1: listen must be HOST:PORT"}, /* found by fuzzing */
        {"listen = a b:80\n", "test.conf:1: listen must be HOST:PORT"},
        /* the metrics listener option */
        {"listen = 127.0.0.1:9100,metric\n",
         "test.conf:1: listen: unknown option 'metric' (HOST:PORT[,tls][,mtls[=optional|required]]"
         "[,auth=any|bearer|signed|cert|none][,metrics])"},
        {"metrics_top_channels = 1001\n", "test.conf:1: metrics_top_channels must be 0..1000"},
        {"metrics_top_channels = -1\n", "test.conf:1: metrics_top_channels must be 0..1000"},
        {"metrics_channels = a..b\n", "test.conf:1: metrics_channels: invalid channel pattern"},
        {"metrics_channels = \"x\\n\"\n", "test.conf:1: metrics_channels: invalid channel pattern"},
        {"\n\nbogus = 1\n", "test.conf:3: unknown option 'bogus'"},
        {"[channel a/b]\n", "test.conf:1: invalid channel id 'a/b'"},
        {"[channel q]\nkind = stream\n", "test.conf:2: kind must be queue or topic"},
        {"[channel q]\nmax_attempts = -1\n", "test.conf:2: max_attempts must be 0..1000000"},
        {"[channel q]\nbackoff = 1, x\n",
         "test.conf:2: backoff must be at most 16 comma-separated seconds"},
        {"[channel q]\nbackoff = 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\n",
         "test.conf:2: backoff must be at most 16 comma-separated seconds"},
        {"[channel q]\ndedup_window = -1\n",
         "test.conf:2: dedup_window must be a number of seconds"},
        {"[acl bob]\nrole = root\n", "test.conf:2: role must be read, write or admin"},
        {"[acl bob]\nchannels = a.**.b\n", "test.conf:2: invalid channel pattern 'a.**.b'"},
        {"[acl bob]\n", "test.conf: [acl bob] has no role"},
        {"[nonsense x]\n", "test.conf:1: unknown section 'nonsense'"},
        {"[channel q\n", "test.conf:1: section header must end with ']'"},
        {"just words\n", "test.conf:1: expected 'key = value'"},
        {"jwt_leeway = 120\n", "test.conf:1: jwt_leeway must be between 0 and 60 seconds"},
        {"max_body = 0\n", "test.conf:1: max_body must be 1..1073741824 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sl__config c;
        sl_status st;
        assert_int_equal(parse(&c, cases[i].text, &st), SL_ECONFIG);
        if (strcmp(st.message, cases[i].want) != 0)
            fail_msg("case %zu: got '%s'", i, st.message);
        sl__config_free(&c);
    }
    /* An over-long line and a NUL byte. */
    static char big[8192];
    memset(big, 'a', sizeof big - 1);
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c, big, &st), SL_ECONFIG);
    sl__config_free(&c);
    sl__config_init(&c);
    assert_int_equal(sl__config_parse(&c, "a\0= b\n", 6, "x", &st), SL_ECONFIG);
    sl__config_free(&c);
}

/* Issue 8, item 9: `revocation` used to free the API-key store path, the upstream key and the
 * introspection settings (without forgetting them): API keys silently off, then a double free. */
static void test_revocation_keeps_other_settings(void **state)
{
    (void)state;
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c,
                           "apikey_store = /etc/sluice/keys\n"
                           "upstream_jwt_key = es256:/etc/sluice/idp.pem\n"
                           "introspection_url = https://idp.example/introspect\n"
                           "revocation = memory\n",
                           &st),
                     SL_OK);
    assert_int_equal(sl__config_set(&c, "revocation", "off", &st), SL_OK);
    assert_non_null(c.apikey_store);
    assert_string_equal(c.apikey_store, "/etc/sluice/keys");
    assert_string_equal(c.upstream_key_alg, "es256");
    assert_string_equal(c.upstream_key_file, "/etc/sluice/idp.pem");
    assert_string_equal(c.introspection_url, "https://idp.example/introspect");
    assert_string_equal(c.revocation, "off");
    sl__config_free(&c);
}

/* `revocation = redis://[user:password@]host[:port][/db]`: one Redis (the engine URL's syntax
 * without shards), checked when set, so a bad one stops the start with a reason that never holds
 * the password; read back with the password masked, as something the setter accepts again. */
static void test_revocation_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url, *shown;
    } good[] = {
        {"redis://127.0.0.1:6379", "redis://127.0.0.1:6379/0"},
        {"redis://:sekrit-pw@10.0.0.5:6380/2", "redis://:***@10.0.0.5:6380/2"},
        {"redis://revoker:p%40ss%3Aw%2Cd@redis.internal/15",
         "redis://revoker:***@redis.internal:6379/15"},
        {"redis://[::1]:7000", "redis://[::1]:7000/0"},
        {"REDIS://Host.Example", "redis://host.example:6379/0"},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        sl__config c;
        sl_status st;
        sl__config_init(&c);
        if (sl__config_set(&c, "revocation", good[i].url, &st) != SL_OK)
            fail_msg("case %zu refused: %s", i, st.message);
        assert_string_equal(c.revocation, good[i].url); /* sluiced parses it again */
        char *shown = sl__config_format(&c, "revocation");
        assert_non_null(shown);
        assert_string_equal(shown, good[i].shown);
        sl__config again;
        sl__config_init(&again);
        assert_int_equal(sl__config_set(&again, "revocation", shown, &st), SL_OK);
        char *twice = sl__config_format(&again, "revocation");
        assert_string_equal(twice, shown);
        free(twice);
        free(shown);
        sl__config_free(&again);
        sl__config_free(&c);
    }
    /* Hostile or unusable: refused, the reason names the key and the fault, never the password
     * ("sekrit-pw" below). */
    static const struct {
        const char *url, *want;
    } bad[] = {
        {"redis://:sekrit-pw@10.0.0.5:6379,redis://10.0.0.6:6379",
         "revocation: one Redis, not a list of shards"},
        {"redis://:sekrit-pw%zz@10.0.0.5", "malformed percent-escape in the password"},
        {"redis://:sekrit-pw%0@10.0.0.5", "malformed percent-escape in the password"},
        {"redis://:sekrit-pw%00@10.0.0.5", "malformed percent-escape in the password"},
        {"redis://sekrit-pw@10.0.0.5", "credentials must be user:password@ or :password@"},
        {"redis://:sekrit-pw@10.0.0.5:65536", "port must be 1..65535"},
        {"redis://:sekrit-pw@10.0.0.5/16", "db must be 0..15"},
        {"redis://:sekrit-pw@10.0.0.5/-1", "db must be 0..15"},
        {"redis://:sekrit-pw@", "empty host"},
        {"redis://:sekrit-pw@[::1", "unterminated [IPv6 address]"},
        {"redis://:sekrit-pw@host name", "unexpected characters"},
        {"rediss://:sekrit-pw@10.0.0.5", "rediss://"},
        {"redis://", "empty host"},
        {"redis", "revocation must be embedded, memory, off or redis://"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl__config c;
        sl_status st;
        sl__config_init(&c);
        int rc = sl__config_set(&c, "revocation", bad[i].url, &st);
        if (rc != SL_ECONFIG || strstr(st.message, bad[i].want) == NULL ||
            strstr(st.message, "sekrit") != NULL || strncmp(st.message, "revocation", 10) != 0)
            fail_msg("case %zu: rc %d, '%s'", i, rc, st.message);
        assert_null(c.revocation);
        sl__config_free(&c);
    }
}

/* The engine URL reads back the same way: masked, and accepted again (its credentials used to read
 * back as a bare "***@", without the ':' the setter requires). */
static void test_engine_url_reads_back_masked(void **state)
{
    (void)state;
    sl__config c;
    sl_status st;
    sl__config_init(&c);
    assert_int_equal(sl__config_set(&c, "engine",
                                    "redis://:sekrit-pw@10.0.0.5:6379/2,redis://u:sekrit-pw@h2",
                                    &st),
                     SL_OK);
    char *shown = sl__config_format(&c, "engine");
    assert_string_equal(shown, "redis://:***@10.0.0.5:6379/2,redis://u:***@h2:6379/0");
    sl__config again;
    sl__config_init(&again);
    assert_int_equal(sl__config_set(&again, "engine", shown, &st), SL_OK);
    char *twice = sl__config_format(&again, "engine");
    assert_string_equal(twice, shown);
    free(twice);
    free(shown);
    sl__config_free(&again);
    sl__config_free(&c);
}

/* ---- generated from the key table ------------------------------------------------------------ */

static const sl__config_key *K;
static size_t NK;
static char **defaults; /* [key]: a fresh config's value */
static char **alone[2]; /* [example][key]: the key's value after setting only that example */

static char **snapshot(const sl__config *c)
{
    char **v = calloc(NK, sizeof *v);
    assert_non_null(v);
    for (size_t k = 0; k < NK; k++)
        assert_non_null(v[k] = sl__config_format(c, K[k].name));
    return v;
}

static void free_snapshot(char **v)
{
    for (size_t k = 0; v && k < NK; k++)
        free(v[k]);
    free(v);
}

/* One setting in a sequence: key k gets example e through one of the three ways in. */
enum via { VIA_SET, VIA_FILE, VIA_FLAG };
typedef struct step {
    size_t k;
    int e;
    enum via via;
} step;

/* --config mem:N reads texts[N]. */
typedef struct mem_files {
    char texts[8][256];
    int reads;
} mem_files;

static int mem_read(void *ud, const char *path, char **text, size_t *len, sl_status *st)
{
    mem_files *m = ud;
    int i;
    if (sscanf(path, "mem:%d", &i) != 1 || i < 0 || i >= 8)
        return sl_status_set(st, SL_ECONFIG, "%s: cannot open", path);
    *len = strlen(m->texts[i]);
    *text = malloc(*len + 1);
    assert_non_null(*text);
    memcpy(*text, m->texts[i], *len + 1);
    m->reads++;
    return SL_OK;
}

/* Applies the steps in order to a fresh config (file and flag steps through sl__config_load). */
static void apply(sl__config *c, const step *steps, size_t n)
{
    sl__config_init(c);
    sl_status st;
    sl_status_clear(&st);
    mem_files files = {0};
    char *argv[32] = {"sluiced"}, flagbuf[8][300];
    int argc = 1, nfiles = 0, nflags = 0;
    for (size_t i = 0; i < n; i++) {
        const sl__config_key *key = &K[steps[i].k];
        const char *v = key->examples[steps[i].e];
        if (steps[i].via == VIA_SET) {
            if (sl__config_set(c, key->name, v, &st) != SL_OK)
                fail_msg("%s = %s: %s", key->name, v, st.message);
        } else if (steps[i].via == VIA_FILE) {
            snprintf(files.texts[nfiles], sizeof files.texts[0], "# generated\n%s = %s\n",
                     key->name, v);
            argv[argc++] = "--config";
            snprintf(flagbuf[nflags], sizeof flagbuf[0], "mem:%d", nfiles++);
            argv[argc++] = flagbuf[nflags++];
        } else if (key->flag_takes_no_value && !strcmp(v, "true")) {
            snprintf(flagbuf[nflags], sizeof flagbuf[0], "--%s", key->flag);
            argv[argc++] = flagbuf[nflags++];
        } else if (i % 2) { /* both spellings */
            snprintf(flagbuf[nflags], sizeof flagbuf[0], "--%s=%s", key->flag, v);
            argv[argc++] = flagbuf[nflags++];
        } else {
            snprintf(flagbuf[nflags], sizeof flagbuf[0], "--%s", key->flag);
            argv[argc++] = flagbuf[nflags++];
            argv[argc++] = (char *)v;
        }
    }
    if (argc > 1) {
        sl__config_source src = {.read_file = mem_read, .ud = &files};
        if (sl__config_load(c, argc, argv, &src, &st) != SL_OK)
            fail_msg("sl__config_load: %s", st.message);
        assert_int_equal(files.reads, nfiles);
    }
}

/* What key k must read after the steps: its last setting, or every setting of a repeatable key. */
static char *expected(size_t k, const step *steps, size_t n)
{
    char *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (steps[i].k != k)
            continue;
        const char *v = alone[steps[i].e][k];
        if (out == NULL || !K[k].repeatable) {
            free(out);
            out = strdup(v);
        } else {
            char *cat = malloc(strlen(out) + strlen(v) + 3);
            sprintf(cat, "%s, %s", out, v);
            free(out);
            out = cat;
        }
    }
    return out ? out : strdup(defaults[k]);
}

static void check(const step *steps, size_t n)
{
    sl__config c;
    apply(&c, steps, n);
    char **got = snapshot(&c);
    for (size_t k = 0; k < NK; k++) {
        char *want = expected(k, steps, n);
        if (strcmp(got[k], want) != 0) {
            char seq[512] = "";
            for (size_t i = 0; i < n; i++)
                snprintf(seq + strlen(seq), sizeof seq - strlen(seq), "%s%s=%s(%s)", i ? ", " : "",
                         K[steps[i].k].name, K[steps[i].k].examples[steps[i].e],
                         steps[i].via == VIA_SET    ? "set"
                         : steps[i].via == VIA_FILE ? "file"
                                                    : "flag");
            fail_msg("after %s: %s is '%s', want '%s'", seq, K[k].name, got[k], want);
        }
        free(want);
    }
    free_snapshot(got);
    sl__config_free(&c);
}

static int table_setup(void **state)
{
    (void)state;
    K = sl__config_keys(&NK);
    sl__config c;
    sl__config_init(&c);
    defaults = snapshot(&c);
    sl__config_free(&c);
    for (int e = 0; e < 2; e++) {
        alone[e] = calloc(NK, sizeof *alone[e]);
        for (size_t k = 0; k < NK; k++) {
            step s = {k, e, VIA_SET};
            apply(&c, &s, 1);
            alone[e][k] = sl__config_format(&c, K[k].name);
            sl__config_free(&c);
        }
    }
    return 0;
}

static int table_teardown(void **state)
{
    (void)state;
    free_snapshot(defaults);
    free_snapshot(alone[0]);
    free_snapshot(alone[1]);
    return 0;
}

/* The table itself: names and flags unique, both examples accepted, distinct from each other and
 * from the default, and every value read back is accepted again as the same value. */
static void test_key_table(void **state)
{
    (void)state;
    assert_true(NK >= 40);
    for (size_t k = 0; k < NK; k++) {
        for (size_t j = 0; j < k; j++) {
            assert_string_not_equal(K[k].name, K[j].name);
            if (K[k].flag && K[j].flag)
                assert_string_not_equal(K[k].flag, K[j].flag);
        }
        if (!strcmp(alone[0][k], defaults[k]) || !strcmp(alone[0][k], alone[1][k]))
            fail_msg("%s: examples '%s' / '%s' do not change it (default '%s')", K[k].name,
                     alone[0][k], alone[1][k], defaults[k]);
        for (int e = 0; e < 2; e++) {
            sl__config c;
            sl_status st;
            sl__config_init(&c);
            if (sl__config_set(&c, K[k].name, alone[e][k], &st) != SL_OK)
                fail_msg("%s: its own value '%s' refused: %s", K[k].name, alone[e][k], st.message);
            char *again = sl__config_format(&c, K[k].name);
            assert_string_equal(again, alone[e][k]);
            free(again);
            sl__config_free(&c);
        }
    }
    sl__config c;
    sl__config_init(&c);
    assert_null(sl__config_format(&c, "no_such_key"));
    sl__config_free(&c);
}

/* Every key set twice (the second setting wins, or adds for a repeatable key), and every ordered
 * pair of different keys: each keeps its own value and every other key its default. */
static void test_every_pair_both_orders_set(void **state)
{
    (void)state;
    for (size_t a = 0; a < NK; a++)
        for (size_t b = 0; b < NK; b++) {
            step s[2] = {{a, 0, VIA_SET}, {b, 1, VIA_SET}};
            check(s, 2);
        }
}

/* The same through config files and flags, in every combination the key allows: file then file,
 * file then flag (the reported `--config F --revocation memory`), flag then file, flag then flag.
 */
static void test_every_pair_both_orders_file_and_flags(void **state)
{
    (void)state;
    for (size_t a = 0; a < NK; a++)
        for (size_t b = 0; b < NK; b++)
            for (int va = VIA_FILE; va <= VIA_FLAG; va++)
                for (int vb = VIA_FILE; vb <= VIA_FLAG; vb++) {
                    if ((va == VIA_FLAG && !K[a].flag) || (vb == VIA_FLAG && !K[b].flag))
                        continue;
                    step s[2] = {{a, 0, (enum via)va}, {b, 1, (enum via)vb}};
                    check(s, 2);
                }
}

/* --config all: every key once, examples[0], in table order or reversed. */
static int all_read(void *ud, const char *path, char **text, size_t *len, sl_status *st)
{
    int reverse = *(int *)ud;
    if (strcmp(path, "all") != 0)
        return sl_status_set(st, SL_ECONFIG, "%s: cannot open", path);
    FILE *f = open_memstream(text, len);
    assert_non_null(f);
    for (size_t i = 0; i < NK; i++) {
        size_t k = reverse ? NK - 1 - i : i;
        fprintf(f, "%s = %s\n", K[k].name, K[k].examples[0]);
    }
    fclose(f);
    return SL_OK;
}

/* Every key at once in one file, in table order and reversed; with no flags, with every flag after
 * the file (each overrides only its own key) and with every flag before it (the file overrides). */
static void test_all_keys_one_file_and_every_flag(void **state)
{
    (void)state;
    for (int reverse = 0; reverse < 2; reverse++)
        for (int flags = 0; flags < 3; flags++) { /* none, after the file, before it */
            char *argv[2 * 64 + 3] = {"sluiced"};
            int argc = 1, first_flag;
            if (flags == 1) {
                argv[argc++] = "--config";
                argv[argc++] = "all";
            }
            first_flag = argc;
            for (size_t k = 0; flags && k < NK; k++)
                if (K[k].flag) {
                    argv[argc] = malloc(strlen(K[k].flag) + strlen(K[k].examples[1]) + 4);
                    sprintf(argv[argc++], "--%s=%s", K[k].flag, K[k].examples[1]);
                }
            int last_flag = argc;
            if (flags != 1) {
                argv[argc++] = "--config";
                argv[argc++] = "all";
            }
            sl__config c;
            sl_status st;
            sl__config_init(&c);
            sl__config_source src = {.read_file = all_read, .ud = &reverse};
            if (sl__config_load(&c, argc, argv, &src, &st) != SL_OK)
                fail_msg("%s", st.message);
            char **got = snapshot(&c);
            for (size_t k = 0; k < NK; k++) {
                /* the file's value, the flag's, or both (repeatable), in command-line order */
                step s[2] = {{k, 0, VIA_SET}, {k, 1, VIA_SET}};
                size_t n = 1;
                if (flags && K[k].flag) {
                    n = 2;
                    if (flags == 2) { /* flag first */
                        s[0].e = 1;
                        s[1].e = 0;
                    }
                }
                char *want = expected(k, s, n);
                if (strcmp(got[k], want) != 0)
                    fail_msg("reverse %d flags %d: %s is '%s', want '%s'", reverse, flags,
                             K[k].name, got[k], want);
                free(want);
            }
            free_snapshot(got);
            sl__config_free(&c);
            for (int i = first_flag; i < last_flag; i++)
                free(argv[i]);
        }
}

/* Keys that name a key or add to a list: the same KID again replaces, a second jwt_secret_file
 * replaces the first (two default keys would stop the server), an admin is listed once. */
static void test_repeatable_keys(void **state)
{
    (void)state;
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c,
                           "jwt_secret_file = /a\n"
                           "jwt_key = k1:/k1-old\n"
                           "jwt_key = k2:/k2\n"
                           "admin = ops\n"
                           "jwt_key = k1:/k1-new\n"
                           "jwt_secret_file = /b\n"
                           "admin = ops\n",
                           &st),
                     SL_OK);
    assert_int_equal(c.nkeys, 3);
    assert_null(c.keys[0].kid);
    assert_string_equal(c.keys[0].secret_file, "/b");
    assert_string_equal(c.keys[1].kid, "k1");
    assert_string_equal(c.keys[1].secret_file, "/k1-new");
    assert_string_equal(c.keys[2].secret_file, "/k2");
    assert_int_equal(c.nadmins, 1);
    /* A failed setting changes nothing. */
    assert_int_equal(sl__config_set(&c, "authenticators", "apikey", &st), SL_OK);
    assert_int_equal(sl__config_set(&c, "authenticators", "introspection, bogus", &st), SL_ECONFIG);
    assert_int_equal(c.nauthenticators, 1);
    assert_string_equal(c.authenticators[0], "apikey");
    assert_int_equal(sl__config_set(&c, "broker_allow_all_role", "admin", &st), SL_OK);
    assert_int_equal(sl__config_set(&c, "broker_allow_all_role", "root", &st), SL_ECONFIG);
    assert_int_equal(c.broker_allow_all_role, SL_ROLE_ADMIN);
    assert_int_equal(sl__config_set(&c, "request_timeout", "0.0001", &st), SL_ECONFIG);
    /* '@' separates a Redis prefix from the db in pub/sub channel names: no prefix holds one. */
    assert_int_equal(sl__config_set(&c, "revocation_prefix", "a:b", &st), SL_OK);
    assert_int_equal(sl__config_set(&c, "revocation_prefix", "a@1", &st), SL_ECONFIG);
    assert_non_null(strstr(st.message, "no '@'"));
    assert_string_equal(c.revocation_prefix, "a:b");
    assert_int_equal(sl__config_set(&c, "engine_prefix", "a@1", &st), SL_ECONFIG);
    /* Every authenticator sluiced can build is a name the key takes. */
    assert_int_equal(sl__config_set(&c, "authenticators",
                                    "apikey, upstream-jwt, introspection, signature, cert", &st),
                     SL_OK);
    assert_int_equal(c.nauthenticators, 5);
    assert_string_equal(c.authenticators[4], "cert");
    assert_int_equal(sl__config_set(&c, "authenticators", "", &st), SL_OK); /* back to default */
    assert_int_equal(c.nauthenticators, 0);
    sl__config_free(&c);
}

static int load(sl__config *c, sl_status *st, char *const *envp, int argc, ...)
{
    char *argv[16] = {"sluiced"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    sl__config_init(c);
    sl_status_clear(st);
    mem_files files = {0};
    snprintf(files.texts[0], sizeof files.texts[0], "revocation = memory\napikey_store = /k\n");
    snprintf(files.texts[1], sizeof files.texts[1], "listen = nowhere\n");
    sl__config_source src = {.read_file = mem_read, .ud = &files, .envp = envp};
    return sl__config_load(c, argc, argv, &src, st);
}

/* The command line: malformed ones are refused with a message naming the argument. */
static void test_command_line(void **state)
{
    (void)state;
    sl__config c;
    sl_status st;
    assert_int_equal(load(&c, &st, NULL, 2, "--bogus"), SL_EINVAL);
    assert_string_equal(st.message, "unknown option '--bogus' (see --help)");
    sl__config_free(&c);
    assert_int_equal(load(&c, &st, NULL, 2, "--listen"), SL_EINVAL);
    assert_string_equal(st.message, "option '--listen' needs a value (see --help)");
    sl__config_free(&c);
    assert_int_equal(load(&c, &st, NULL, 2, "stray"), SL_EINVAL);
    assert_string_equal(st.message, "unexpected argument 'stray'");
    sl__config_free(&c);
    assert_int_equal(load(&c, &st, NULL, 3, "--", "stray"), SL_EINVAL);
    sl__config_free(&c);
    assert_int_equal(load(&c, &st, NULL, 2, "--lis=1.2.3.4:5"), SL_EINVAL); /* no abbreviations */
    sl__config_free(&c);
    assert_int_equal(load(&c, &st, NULL, 2, "--insecure=maybe"), SL_ECONFIG);
    assert_string_equal(st.message, "insecure must be true or false");
    sl__config_free(&c);
    assert_int_equal(load(&c, &st, NULL, 3, "--config", "mem:1"), SL_ECONFIG);
    assert_string_equal(st.message, "mem:1:1: listen must be HOST:PORT");
    sl__config_free(&c);
    assert_int_equal(load(&c, &st, NULL, 3, "--config", "missing"), SL_ECONFIG);
    assert_string_equal(st.message, "missing: cannot open");
    sl__config_free(&c);
    /* --help stops before anything after it is read. */
    assert_int_equal(load(&c, &st, NULL, 4, "--insecure", "--help", "--bogus"), SL_OK);
    assert_true(c.help);
    assert_true(c.insecure);
    sl__config_free(&c);
    /* The reported case: a file with an API key store, then --revocation. */
    assert_int_equal(load(&c, &st, NULL, 5, "--config", "mem:0", "--revocation", "off", "--"),
                     SL_OK);
    assert_string_equal(c.apikey_store, "/k");
    assert_string_equal(c.revocation, "off");
    sl__config_free(&c);
}

/* The environment: SLUICE_JWT_SECRET only, the first one, empty meaning unset; no other key. */
static void test_environment(void **state)
{
    (void)state;
    sl__config c;
    sl_status st;
    char *env[] = {"SLUICE_JWT_SECRETX=no", "SLUICE_LISTEN=0.0.0.0:1",
                   "SLUICE_JWT_SECRET=0123456789abcdef0123456789abcdef", "SLUICE_JWT_SECRET=second",
                   NULL};
    assert_int_equal(load(&c, &st, env, 3, "--jwt-secret-file", "/f"), SL_OK);
    assert_string_equal(c.jwt_env_secret, "0123456789abcdef0123456789abcdef");
    assert_string_equal(c.keys[0].secret_file, "/f");
    char **got = snapshot(&c), **want;
    sl__config_free(&c);
    assert_int_equal(load(&c, &st, NULL, 3, "--jwt-secret-file", "/f"), SL_OK);
    assert_null(c.jwt_env_secret);
    want = snapshot(&c);
    for (size_t k = 0; k < NK; k++)
        assert_string_equal(got[k], want[k]);
    free_snapshot(got);
    free_snapshot(want);
    sl__config_free(&c);
    char *empty[] = {"SLUICE_JWT_SECRET=", NULL};
    assert_int_equal(load(&c, &st, empty, 1), SL_OK);
    assert_null(c.jwt_env_secret);
    sl__config_free(&c);
}

/* The per-address connection limits and the busy head timeout (docs/CONFIG.md). */
static void test_connection_limits(void **state)
{
    (void)state;
    sl__config c;
    sl_status st;
    assert_int_equal(parse(&c, "max_connections = 500\n", &st), SL_OK);
    assert_int_equal(c.limits.max_connections_per_address, 0);
    assert_int_equal(c.limits.max_pending_per_address, 64);
    assert_int_equal(c.limits.busy_header_timeout_ms, 2000);
    sl__config_free(&c);
    assert_int_equal(parse(&c,
                           "max_connections_per_address = 50\nmax_pending_per_address = 0\n"
                           "busy_header_timeout = 0.5\n",
                           &st),
                     SL_OK);
    assert_int_equal(c.limits.max_connections_per_address, 50);
    assert_int_equal(c.limits.max_pending_per_address, 0);
    assert_int_equal(c.limits.busy_header_timeout_ms, 500);
    sl__config_free(&c);
    assert_int_equal(parse(&c, "max_pending_per_address = -1\n", &st), SL_ECONFIG);
    assert_string_equal(st.message, "test.conf:1: max_pending_per_address must be 0..1000000");
    sl__config_free(&c);
    assert_int_equal(parse(&c, "busy_header_timeout = 4000\n", &st), SL_ECONFIG);
    assert_string_equal(st.message, "test.conf:1: busy_header_timeout must be 0..3600 seconds");
    sl__config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_revocation_keeps_other_settings),
        cmocka_unit_test(test_revocation_urls),
        cmocka_unit_test(test_engine_url_reads_back_masked),
        cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_every_pair_both_orders_set),
        cmocka_unit_test(test_every_pair_both_orders_file_and_flags),
        cmocka_unit_test(test_all_keys_one_file_and_every_flag),
        cmocka_unit_test(test_repeatable_keys),
        cmocka_unit_test(test_command_line),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_connection_limits),
    };
    return cmocka_run_group_tests(tests, table_setup, table_teardown);
}
