/* The durable engine (the memory engine writing through the LMDB store): everything a channel
 * holds comes back after the engine and its store are closed and opened again on the same
 * directory (the restart), and a store it cannot read is refused with SL_EFORMAT. The store runs
 * without a loop here, so every request commits before it completes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/engine.h"
#include "store/kv.h"
#include "store/lmdb.h"

static char dir[] = "/tmp/sluice-durable-XXXXXX";
static sl__kv *KV;
static sl_engine *E;

static void open_engine(double now)
{
    sl_status st;
    sl__lmdb_opts o = {.dir = dir};
    assert_int_equal(sl__lmdb_open(&KV, &o, &st), SL_OK);
    assert_int_equal(sl__mem_engine_open(&E, KV, NULL, now, &st), SL_OK);
    assert_string_equal(E->ops->name, "lmdb");
}

static void close_engine(void)
{
    E->ops->free(E);
    KV->ops->free(KV);
    E = NULL;
    KV = NULL;
}

static void restart(double now)
{
    close_engine();
    open_engine(now);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/sluice-durable-XXXXXX");
    assert_non_null(mkdtemp(dir));
    open_engine(1000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (E)
        close_engine();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int call(sl__eop *op)
{
    return sl__engine_call(E, op);
}

static void create(const char *id, sl_kind kind, unsigned max_attempts)
{
    sl_channel_info info = {.id = (char *)id,
                            .name = (char *)id,
                            .description = (char *)"d",
                            .dead_letter = (char *)"",
                            .kind = kind,
                            .claim_timeout = 100,
                            .max_attempts = max_attempts};
    char dead[64];
    if (max_attempts) {
        snprintf(dead, sizeof dead, "%s.dead", id);
        info.dead_letter = dead;
    }
    sl__eop op = {.kind = SL__EOP_CREATE, .channel = id, .create = &info};
    assert_int_equal(call(&op), SL_OK);
}

static void put(const char *ch, const char *data, double now, char *id)
{
    char ids[1][SL__MSGID_LEN + 1];
    sl_message m = {.timestamp = now,
                    .data = (char *)data,
                    .sender_id = (char *)"s",
                    .correlation_id = (char *)"c-1"};
    sl__eop op = {
        .kind = SL__EOP_APPEND, .channel = ch, .msgs = &m, .nmsgs = 1, .now = now, .ids_out = ids};
    assert_int_equal(call(&op), SL_OK);
    if (id)
        strcpy(id, ids[0]);
}

static sl__eop claim(const char *ch, const char *reader, size_t limit, double now)
{
    sl__eop op = {.kind = SL__EOP_CLAIM,
                  .channel = ch,
                  .reader = reader,
                  .limit = limit,
                  .max_bytes = SIZE_MAX,
                  .now = now,
                  .dead_letter = "q.dead"};
    assert_int_equal(call(&op), SL_OK);
    return op;
}

static size_t depth(const char *ch)
{
    sl__eop op = {.kind = SL__EOP_INFO, .channel = ch};
    if (call(&op) != SL_OK)
        return SIZE_MAX;
    size_t d = op.info.depth;
    sl__eop_clear(&op);
    return d;
}

static void test_queue_survives(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE, 0);
    char id[5][SL__MSGID_LEN + 1];
    for (int i = 0; i < 5; i++)
        put("q", i == 0 ? "{\"n\":0}" : "1", 1000, id[i]);
    sl__eop c = claim("q", "w", 3, 1000); /* 1, 2, 3 leased until 1100 */
    assert_int_equal(c.list.len, 3);
    sl__eop_clear(&c);
    const char *ack[] = {id[0]};
    sl__eop a = {
        .kind = SL__EOP_ACK, .channel = "q", .reader = "w", .ids = ack, .nids = 1, .now = 1001};
    assert_int_equal(call(&a), SL_OK);
    assert_int_equal(a.count, 1);
    const char *nack[] = {id[1]};
    sl__eop n = {.kind = SL__EOP_NACK,
                 .channel = "q",
                 .reader = "w",
                 .ids = nack,
                 .nids = 1,
                 .delay = 50,
                 .now = 1001};
    assert_int_equal(call(&n), SL_OK);

    restart(1010);
    assert_int_equal(depth("q"), 4);
    /* 3 is still leased to w, 2 is delayed until 1051: only 4 and 5 are claimable. */
    c = claim("q", "v", 10, 1010);
    assert_int_equal(c.list.len, 2);
    assert_string_equal(c.list.items[0].id, id[3]);
    assert_string_equal(c.list.items[0].correlation_id, "c-1");
    sl__eop_clear(&c);
    /* w's lease on 3 survived: w can still acknowledge it. */
    const char *ack3[] = {id[2]};
    sl__eop a3 = {
        .kind = SL__EOP_ACK, .channel = "q", .reader = "w", .ids = ack3, .nids = 1, .now = 1011};
    assert_int_equal(call(&a3), SL_OK);
    assert_int_equal(a3.count, 1);
    /* After the delay, 2 comes back with its attempt count. */
    c = claim("q", "v", 10, 1060);
    assert_int_equal(c.list.len, 1);
    assert_string_equal(c.list.items[0].id, id[1]);
    assert_int_equal(c.list.items[0].attempt, 2);
    sl__eop_clear(&c);
    /* Ids continue after the restart. */
    char next[SL__MSGID_LEN + 1];
    put("q", "2", 1061, next);
    assert_string_equal(next, "0000000000000006");
}

static void test_ids_never_repeat_when_emptied(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE, 0);
    char id[SL__MSGID_LEN + 1];
    put("q", "1", 1000, NULL);
    put("q", "2", 1000, id);
    sl__eop r = {.kind = SL__EOP_CLEAR, .channel = "q"};
    assert_int_equal(call(&r), SL_OK);
    restart(1000);
    assert_int_equal(depth("q"), 0);
    put("q", "3", 1000, id);
    assert_string_equal(id, "0000000000000003");
}

static void test_topic_cursor_and_position(void **state)
{
    (void)state;
    create("t", SL_KIND_TOPIC, 0);
    for (int i = 0; i < 4; i++)
        put("t", "1", 1000, NULL);
    sl__eop r = {.kind = SL__EOP_READ,
                 .channel = "t",
                 .reader = "me",
                 .limit = 3,
                 .max_bytes = SIZE_MAX,
                 .now = 1000};
    assert_int_equal(call(&r), SL_OK);
    assert_int_equal(r.list.len, 3);
    sl__eop_clear(&r);
    restart(1000);
    sl__eop p = {.kind = SL__EOP_POSITION, .channel = "t"};
    assert_int_equal(call(&p), SL_OK);
    assert_int_equal(p.seq, 4);
    sl__eop r2 = {.kind = SL__EOP_READ,
                  .channel = "t",
                  .reader = "me",
                  .limit = 10,
                  .max_bytes = SIZE_MAX,
                  .now = 1000};
    assert_int_equal(call(&r2), SL_OK);
    assert_int_equal(r2.list.len, 1); /* the cursor continues after 3 */
    assert_string_equal(r2.list.items[0].id, "0000000000000004");
    sl__eop_clear(&r2);
}

static void test_dead_letters_and_drop(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE, 1);
    put("q", "1", 1000, NULL);
    sl__eop c = claim("q", "w", 1, 1000);
    assert_int_equal(c.list.len, 1);
    sl__eop_clear(&c);
    c = claim("q", "w", 1, 2000); /* the lease ran out: past max_attempts, dead-lettered */
    assert_int_equal(c.list.len, 0);
    assert_int_equal(c.dead.len, 1);
    assert_int_equal(c.dead_created, 1);
    sl__eop_clear(&c);
    restart(2000);
    assert_int_equal(depth("q"), 0);
    assert_int_equal(depth("q.dead"), 1);
    sl__eop d = {.kind = SL__EOP_DROP, .channel = "q.dead"};
    assert_int_equal(call(&d), SL_OK);
    restart(2000);
    assert_int_equal(depth("q.dead"), SIZE_MAX);
    sl__eop l = {.kind = SL__EOP_LIST};
    assert_int_equal(call(&l), SL_OK);
    assert_int_equal(l.ninfos, 1);
    sl__eop_clear(&l);
}

static void test_unreadable_store_is_refused(void **state)
{
    (void)state;
    create("q", SL_KIND_QUEUE, 0);
    put("q", "1", 1000, NULL);
    /* A message whose stored bytes do not decode. */
    char k[] = "q\0\0\0\0\0\0\0\0\x09";
    assert_int_equal(KV->ops->put(KV, SL__KV_MESSAGES, k, 10, "\x01garbage", 8), SL_OK);
    E->ops->free(E);
    E = NULL;
    KV->ops->free(KV);
    sl_status st;
    sl__lmdb_opts o = {.dir = dir};
    assert_int_equal(sl__lmdb_open(&KV, &o, &st), SL_OK);
    assert_int_equal(sl__mem_engine_open(&E, KV, NULL, 1000, &st), SL_EFORMAT);
    assert_non_null(strstr(st.message, "messages"));
    assert_null(E == NULL ? NULL : "engine");
    KV->ops->free(KV);
    KV = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_never_repeat_when_emptied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topic_cursor_and_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_store_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
