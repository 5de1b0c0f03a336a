/* The real-time hub without sockets: fake peers record what each flush would send (the shared
 * frames queued since the last flush and the batch, as the lines a client reads), so fan-out,
 * batching per loop iteration, order, unsubscription and channel deletion are checked exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/message.h"
#include "net/ws_frame.h"
#include "server/hub.h"
#include "store/engine.h"

typedef struct fake {
    sl__hub_peer peer; /* first */
    char sent[8][1024];
    size_t nsent;
    sl__hub_sub *dropped[4];
    size_t ndropped;
    int resumed;
    size_t bytes;
    char lines[4096]; /* what was queued since the last flush, newline-separated */
    size_t nlines;
} fake;

static void fake_add(fake *f, const char *data, size_t len)
{
    f->bytes += len;
    if (f->nlines + 1 + len >= sizeof f->lines) {
        f->nlines = sizeof f->lines; /* big batches are only counted */
        return;
    }
    if (f->nlines > 0)
        f->lines[f->nlines++] = '\n';
    memcpy(f->lines + f->nlines, data, len);
    f->nlines += len;
}

static void fake_queue(sl__hub_peer *p, sl_ws_frame *fr)
{
    fake *f = (fake *)p;
    if (p->out.len > 0) { /* as the real peer does: what was batched before goes first */
        fake_add(f, p->out.data, p->out.len);
        sl__cf_buf_reset(&p->out);
    }
    sl__wsf_header h;
    const char *why;
    const uint8_t *b = sl_ws_frame_bytes(fr);
    size_t hl = (size_t)sl__wsf_parse_header(b, sl_ws_frame_len(fr), &h, &why);
    assert_true(hl > 0 && h.fin && h.opcode == SL__WSF_TEXT && !h.masked);
    assert_int_equal(hl + h.len, sl_ws_frame_len(fr));
    fake_add(f, (const char *)b + hl, (size_t)h.len);
}

static void fake_flush(sl__hub_peer *p, const char *data, size_t len)
{
    fake *f = (fake *)p;
    if (len > 0)
        fake_add(f, data, len);
    if (f->nlines < sizeof f->sent[0]) {
        assert_true(f->nsent < 8);
        memcpy(f->sent[f->nsent], f->lines, f->nlines);
        f->sent[f->nsent++][f->nlines] = '\0';
    }
    f->nlines = 0;
}

static void fake_dropped(sl__hub_peer *p, sl__hub_sub *s)
{
    fake *f = (fake *)p;
    f->dropped[f->ndropped++] = s;
}

static void fake_resume(sl__hub_peer *p)
{
    ((fake *)p)->resumed++;
}

static const sl__hub_peer_ops fake_ops = {fake_flush, fake_queue, fake_dropped, fake_resume};

typedef struct world {
    uv_loop_t loop;
    sl__hub *hub;
    fake peers[3];
    sl__hub_sub subs[3];
    sl_channel_info info;
} world;

static void world_init(world *w, sl_kind kind, int join_leave)
{
    memset(w, 0, sizeof *w);
    uv_loop_init(&w->loop);
    assert_int_equal(sl__hub_new(&w->hub, &w->loop, NULL), SL_OK);
    w->info.kind = kind;
    w->info.join_leave = join_leave;
    static const char *users[] = {"u0", "u1", "u2"}, *clients[] = {"c0", "c1", "c2"};
    for (int i = 0; i < 3; i++) {
        sl__hub_peer_init(&w->peers[i].peer, &fake_ops);
        w->subs[i].peer = &w->peers[i].peer;
        w->subs[i].user = users[i];
        w->subs[i].client = clients[i];
    }
}

static void world_free(world *w)
{
    for (int i = 0; i < 3; i++)
        sl__hub_peer_detach(w->hub, &w->peers[i].peer);
    sl__hub_free(w->hub);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

static void publish(world *w, const char *id, const char *data)
{
    sl_message m = {.id = (char *)id, .data = (char *)data};
    sl_event ev = {.kind = SL_EVENT_WRITE, .channel = "news", .info = &w->info, .message = &m};
    sl__hub_publish(w->hub, &ev);
}

static void prepared(void *ud, int rc)
{
    *(int *)ud = rc;
}

/* As a session subscribes: the channel is watched first (at once without a shared engine, and
 * with the fake one), then linked. */
static void subscribe_all(world *w)
{
    for (int i = 0; i < 3; i++) {
        int rc = -1;
        sl__hub_prepare(w->hub, "news", prepared, &rc);
        assert_int_equal(rc, SL_OK);
        sl__hub_chan *c = sl__hub_chan_get(w->hub, "news", &w->info, 1);
        assert_non_null(c);
        assert_int_equal(sl__hub_subscribe(w->hub, c, &w->subs[i], 0), SL_OK);
    }
}

static void test_fan_out_batches_per_iteration(void **state)
{
    world w;
    world_init(&w, SL_KIND_TOPIC, 0);
    publish(&w, "0000000000000001", "{\"n\":0}"); /* nobody subscribed: nothing, no state */
    assert_null(sl__hub_chan_get(w.hub, "news", NULL, 0));
    subscribe_all(&w);
    publish(&w, "0000000000000002", "{\"n\":1}");
    publish(&w, "0000000000000003", "[2]");
    uv_run(&w.loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w.peers[i].nsent, 1); /* both publications in one frame, in order */
        assert_string_equal(
            w.peers[i].sent[0],
            "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"n\":1},\"offset\":2}}}\n"
            "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":[2],\"offset\":3}}}");
        assert_int_equal(w.peers[i].peer.out.len, 0); /* nothing kept between iterations */
    }
    /* The next iteration is a new frame. */
    publish(&w, "0000000000000004", "4");
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(w.peers[0].nsent, 2);
    assert_string_equal(w.peers[0].sent[1],
                        "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":4,\"offset\":4}}}");
    world_free(&w);
}

static void test_unsubscribe_keeps_the_others(void **state)
{
    world w;
    world_init(&w, SL_KIND_TOPIC, 0);
    subscribe_all(&w);
    sl__hub_unsubscribe(w.hub, &w.subs[0]); /* swap-remove moves subs[2] into slot 0 */
    sl__hub_unsubscribe(w.hub, &w.subs[0]); /* twice: a no-op */
    assert_null(w.subs[0].chan);
    size_t n;
    sl__hub_sub *const *v = sl__hub_chan_subs(sl__hub_chan_get(w.hub, "news", NULL, 0), &n);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i]->pos, i);
    publish(&w, "0000000000000001", "1");
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(w.peers[0].nsent, 0);
    assert_int_equal(w.peers[1].nsent, 1);
    assert_int_equal(w.peers[2].nsent, 1);
    world_free(&w);
}

static void test_queue_gets_wake_up_not_data(void **state)
{
    world w;
    world_init(&w, SL_KIND_QUEUE, 0);
    subscribe_all(&w);
    publish(&w, "000000000000000a", "{\"secret\":1}");
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_string_equal(w.peers[1].sent[0],
                        "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"id\":"
                        "\"000000000000000a\"},\"offset\":10}}}");
    world_free(&w);
}

static void test_join_leave_to_the_others(void **state)
{
    world w;
    world_init(&w, SL_KIND_TOPIC, 1);
    subscribe_all(&w);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    /* c0 saw c1 and c2 join; c2 saw nobody (it joined last). */
    assert_int_equal(w.peers[0].nsent, 1);
    assert_string_equal(w.peers[0].sent[0],
                        "{\"push\":{\"channel\":\"news\",\"join\":{\"info\":{\"client\":\"c1\","
                        "\"user\":\"u1\"}}}}\n"
                        "{\"push\":{\"channel\":\"news\",\"join\":{\"info\":{\"client\":\"c2\","
                        "\"user\":\"u2\"}}}}");
    assert_int_equal(w.peers[1].nsent, 1); /* c1 saw c2 join */
    assert_int_equal(w.peers[2].nsent, 0);
    sl__hub_unsubscribe(w.hub, &w.subs[1]);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_string_equal(w.peers[2].sent[0],
                        "{\"push\":{\"channel\":\"news\",\"leave\":{\"info\":{\"client\":\"c1\","
                        "\"user\":\"u1\"}}}}");
    assert_int_equal(w.peers[1].nsent, 1); /* the leaver is not told */
    world_free(&w);
}

static void test_channel_deleted(void **state)
{
    world w;
    world_init(&w, SL_KIND_TOPIC, 0);
    subscribe_all(&w);
    const char *epoch = sl__hub_chan_epoch(sl__hub_chan_get(w.hub, "news", NULL, 0));
    char old[17];
    strcpy(old, epoch);
    assert_int_equal(strlen(old), 16);
    sl__hub_channel_deleted(w.hub, "news");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w.peers[i].ndropped, 1);
        assert_ptr_equal(w.peers[i].dropped[0], &w.subs[i]);
        assert_null(w.subs[i].chan);
    }
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_string_equal(w.peers[0].sent[0], "{\"push\":{\"channel\":\"news\",\"unsubscribe\":{"
                                            "\"code\":2000,\"reason\":\"channel deleted\"}}}");
    /* A channel created again is a new stream. */
    sl__hub_chan *c = sl__hub_chan_get(w.hub, "news", &w.info, 1);
    assert_non_null(c);
    assert_string_not_equal(sl__hub_chan_epoch(c), old);
    world_free(&w);
}

static void test_detach_while_dirty(void **state)
{
    world w;
    world_init(&w, SL_KIND_TOPIC, 0);
    subscribe_all(&w);
    publish(&w, "0000000000000001", "1");
    sl__hub_unsubscribe(w.hub, &w.subs[1]);
    sl__hub_peer_detach(w.hub, &w.peers[1].peer); /* closed before the flush: sends nothing */
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(w.peers[1].nsent, 0);
    assert_int_equal(w.peers[0].nsent, 1);
    assert_int_equal(w.peers[2].nsent, 1);
    world_free(&w);
}

static void test_socket_publications_carry_info(void **state)
{
    world w;
    world_init(&w, SL_KIND_TOPIC, 0);
    subscribe_all(&w);
    sl_message m = {.id = "0000000000000007", .data = "1", .sender_id = "u9", .origin = "c9"};
    sl_event ev = {.kind = SL_EVENT_WRITE, .channel = "news", .info = &w.info, .message = &m};
    sl__hub_publish(w.hub, &ev);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_string_equal(w.peers[0].sent[0],
                        "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":1,\"info\":{"
                        "\"client\":\"c9\",\"user\":\"u9\"},\"offset\":7}}}");
    world_free(&w);
}

static void test_busy_holds_publishers_until_flushed(void **state)
{
    world w;
    world_init(&w, SL_KIND_TOPIC, 0);
    subscribe_all(&w);
    size_t big = 100 * 1000;
    char *data = malloc(big + 3);
    data[0] = '"';
    memset(data + 1, 'x', big);
    strcpy(data + big + 1, "\"");
    int n = 0;
    while (!sl__hub_busy(w.hub)) { /* 3 subscribers x ~100 kB per publication */
        char id[SL__MSGID_LEN + 1];
        sl__msgid_format((uint64_t)n + 1, id); /* each offset once: a repeat is not sent again */
        publish(&w, id, data);
        n++;
    }
    assert_true((size_t)n * 3 * big > SL__HUB_BUDGET);
    fake publisher, gone;
    memset(&publisher, 0, sizeof publisher);
    memset(&gone, 0, sizeof gone);
    sl__hub_peer_init(&publisher.peer, &fake_ops);
    sl__hub_peer_init(&gone.peer, &fake_ops);
    sl__hub_hold(w.hub, &publisher.peer);
    sl__hub_hold(w.hub, &publisher.peer); /* twice: held once */
    sl__hub_hold(w.hub, &gone.peer);
    sl__hub_peer_detach(w.hub, &gone.peer); /* closed while held: never resumed */
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(publisher.resumed, 1);
    assert_int_equal(gone.resumed, 0);
    assert_false(sl__hub_busy(w.hub)); /* the flush starts a new budget */
    for (int i = 0; i < 3; i++)
        assert_true(w.peers[i].bytes > (size_t)n * big);
    free(data);
    world_free(&w);
}

/* ---- a shared engine: presence entries instead of local join/leave ------------------------- */

typedef struct fake_engine {
    sl_engine base;
    char log[2048]; /* "S chan client user ttl;" "D chan client;" "G chan;" */
    int nops;
} fake_engine;

static void fe_free(sl_engine *e)
{
    (void)e;
}

static void fe_submit(sl_engine *e, sl__eop *op)
{
    fake_engine *f = (fake_engine *)e;
    char line[256];
    f->nops++;
    op->rc = SL_OK;
    if (op->kind == SL__EOP_PRESENCE_SET)
        snprintf(line, sizeof line, "S %s %s %s %g;", op->channel, op->reader, op->after,
                 op->delay);
    else if (op->kind == SL__EOP_PRESENCE_DEL)
        snprintf(line, sizeof line, "D %s %s;", op->channel, op->reader);
    else if (op->kind == SL__EOP_PRESENCE_GET) {
        snprintf(line, sizeof line, "G %s;", op->channel);
        op->list.items = calloc(1, sizeof *op->list.items);
        assert_non_null(op->list.items);
        op->list.items[0].origin = strdup("cx");
        op->list.items[0].sender_id = strdup("ux");
        op->list.len = 1;
    } else
        snprintf(line, sizeof line, "? %d;", (int)op->kind);
    if (strlen(f->log) + strlen(line) < sizeof f->log)
        strcat(f->log, line);
    op->done(op);
}

static void fe_watch(sl_engine *e, const char *channel, void (*ready)(void *ud, int rc), void *ud)
{
    (void)e, (void)channel;
    ready(ud, SL_OK);
}

static void fe_unwatch(sl_engine *e, const char *channel)
{
    (void)e, (void)channel;
}

static const sl_engine_ops fe_ops = {"fake", fe_free, fe_submit, fe_watch, fe_unwatch};

static void got_presence(void *ud, int rc, const sl_message_list *l)
{
    assert_int_equal(rc, SL_OK);
    assert_int_equal(l->len, 1);
    snprintf(ud, 32, "%s=%s", l->items[0].origin, l->items[0].sender_id);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void test_shared_engine_presence(void **state)
{
    (void)state;
    assert_true(sl__hub_presence_ttl() == SL__HUB_PRESENCE_TTL);
    setenv("SLUICE_PRESENCE_TTL", "0.3", 1); /* refreshed every 100 ms */
    assert_true(sl__hub_presence_ttl() == 0.3);
    fake_engine fe = {.base = {.ops = &fe_ops}};
    world w;
    world_init(&w, SL_KIND_TOPIC, 1);
    sl__hub_free(w.hub);
    assert_int_equal(sl__hub_new(&w.hub, &w.loop, &fe.base), SL_OK);
    unsetenv("SLUICE_PRESENCE_TTL");
    assert_true(sl__hub_presence_shared(w.hub));
    w.info.presence = 1;
    subscribe_all(&w);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    /* Entries instead of local joins: nobody was pushed anything. */
    assert_string_equal(fe.log, "S news c0 u0 0.3;S news c1 u1 0.3;S news c2 u2 0.3;");
    for (int i = 0; i < 3; i++)
        assert_int_equal(w.peers[i].nsent, 0);

    /* A join from the engine's feed: to every subscriber but the client concerned. */
    sl_event ev = {.kind = SL_EVENT_JOIN, .channel = "news", .client = "c1", .principal = "u1"};
    sl__hub_join_leave_event(w.hub, &ev);
    ev.kind = SL_EVENT_LEAVE, ev.client = "c9", ev.principal = "u9";
    sl__hub_join_leave_event(w.hub, &ev);
    ev.channel = "other"; /* nobody here */
    sl__hub_join_leave_event(w.hub, &ev);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    const char *join = "{\"push\":{\"channel\":\"news\",\"join\":{\"info\":{\"client\":\"c1\","
                       "\"user\":\"u1\"}}}}\n";
    const char *leave = "{\"push\":{\"channel\":\"news\",\"leave\":{\"info\":{\"client\":"
                        "\"c9\",\"user\":\"u9\"}}}}";
    char both[512];
    snprintf(both, sizeof both, "%s%s", join, leave);
    assert_string_equal(w.peers[0].sent[0], both);
    assert_string_equal(w.peers[2].sent[0], both);
    assert_string_equal(w.peers[1].sent[0], leave);

    /* Unsubscribed: the entry goes, no local leave. */
    fe.log[0] = '\0';
    sl__hub_unsubscribe(w.hub, &w.subs[1]);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_string_equal(fe.log, "D news c1;");
    assert_int_equal(w.peers[0].nsent, 1);

    /* The refresh sets every local entry again. */
    fe.log[0] = '\0';
    uv_timer_t keep;
    uv_timer_init(&w.loop, &keep);
    uv_timer_start(&keep, on_tick, 20, 20);
    for (int i = 0; i < 500 && strlen(fe.log) == 0; i++)
        uv_run(&w.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&keep, NULL);
    assert_true(strstr(fe.log, "S news c0 u0 0.3;") != NULL);
    assert_true(strstr(fe.log, "S news c2 u2 0.3;") != NULL);
    assert_null(strstr(fe.log, "c1"));

    /* Queries go to the engine. */
    char got[32] = "";
    sl__hub_presence_get(w.hub, "news", got_presence, got);
    assert_string_equal(got, "cx=ux");
    sl__hub_unsubscribe(w.hub, &w.subs[0]);
    sl__hub_unsubscribe(w.hub, &w.subs[2]);
    world_free(&w);
}

static void test_offset_of_is_strict(void **state)
{
    assert_int_equal(sl__hub_offset_of("0000000000000001"), 1);
    assert_true(sl__hub_offset_of("ffffffffffffffff") == UINT64_MAX);
    assert_int_equal(sl__hub_offset_of(NULL), 0);
    assert_int_equal(sl__hub_offset_of(""), 0);
    assert_int_equal(sl__hub_offset_of("1"), 0);
    assert_int_equal(sl__hub_offset_of("000000000000000G"), 0);
    assert_int_equal(sl__hub_offset_of("00000000000000001"), 0);
    assert_int_equal(sl__hub_offset_of("000000000000000A"), 0); /* ids are lowercase */
}

/* The seam of a subscription on a shared engine: what the feed delivers between the watch and
 * the link is replayed after the position read (once, in order), a gap in the feed ends the
 * subscription with 2500, and a channel that went since it was prepared cannot be linked. */
static void test_shared_engine_seam(void **state)
{
    (void)state;
    fake_engine fe = {.base = {.ops = &fe_ops}};
    world w;
    world_init(&w, SL_KIND_TOPIC, 0);
    sl__hub_free(w.hub);
    assert_int_equal(sl__hub_new(&w.hub, &w.loop, &fe.base), SL_OK);
    int rc = -1;
    sl__hub_prepare(w.hub, "news", prepared, &rc);
    assert_int_equal(rc, SL_OK);
    /* The feed delivers 1..3 while the session reads its position, which says 1. */
    publish(&w, "0000000000000001", "1");
    publish(&w, "0000000000000002", "2");
    publish(&w, "0000000000000003", "3");
    sl__hub_chan *c = sl__hub_chan_get(w.hub, "news", &w.info, 1);
    assert_int_equal(sl__hub_subscribe(w.hub, c, &w.subs[0], 1), SL_OK);
    publish(&w, "0000000000000003", "3"); /* already replayed: not again */
    publish(&w, "0000000000000004", "4");
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(w.peers[0].nsent, 1);
    const char *p = w.peers[0].sent[0];
    const char *o2 = strstr(p, "\"offset\":2"), *o3 = strstr(p, "\"offset\":3"),
               *o4 = strstr(p, "\"offset\":4");
    assert_true(o2 && o3 && o4 && o2 < o3 && o3 < o4);
    assert_null(strstr(o3 + 1, "\"offset\":3"));
    assert_null(strstr(p, "\"offset\":1,"));
    /* A gap (5 never came): the subscription ends with insufficient state. */
    publish(&w, "0000000000000006", "6");
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(w.peers[0].ndropped, 1);
    assert_non_null(strstr(w.peers[0].sent[1], "2500"));
    /* Prepared, then the channel is deleted and comes back: no feed to link to. */
    rc = -1;
    sl__hub_prepare(w.hub, "news", prepared, &rc);
    assert_int_equal(rc, SL_OK);
    sl__hub_channel_deleted(w.hub, "news");
    c = sl__hub_chan_get(w.hub, "news", &w.info, 1);
    assert_int_equal(sl__hub_subscribe(w.hub, c, &w.subs[1], 0), SL_EUNAVAIL);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fan_out_batches_per_iteration),
        cmocka_unit_test(test_unsubscribe_keeps_the_others),
        cmocka_unit_test(test_queue_gets_wake_up_not_data),
        cmocka_unit_test(test_join_leave_to_the_others),
        cmocka_unit_test(test_channel_deleted),
        cmocka_unit_test(test_detach_while_dirty),
        cmocka_unit_test(test_socket_publications_carry_info),
        cmocka_unit_test(test_busy_holds_publishers_until_flushed),
        cmocka_unit_test(test_offset_of_is_strict),
        cmocka_unit_test(test_shared_engine_presence),
        cmocka_unit_test(test_shared_engine_seam),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
