/* The command connection to Redis (sl__rconn) shared by the Redis engine, the state it keeps beside
 * the channels and the Redis revocation store, on a link (redis_link.c: hiredis's asynchronous
 * client attached to the libuv loop, its state machine, backoff and fail-closed rules): pipelined
 * commands with an overdue watchdog, EVALSHA with the EVAL fallback, the owner's check in the
 * handshake; and the link's per-kind hooks that differ between the two kinds. The subscription
 * connection (sl__rsub) is redis_sub.c's; the engine URL and the shard ring are redis_url.c's.
 *
 * Lifetime: a pending command (op) is owned by its hiredis reply callback, which hiredis calls
 * exactly once (with NULL when the context is freed); the connection also keeps its ops in a FIFO
 * (send order is reply order) for the overdue watchdog and to complete them early on free. The
 * connection struct itself goes with the last of its handles and thread-pool requests, so hiredis
 * callbacks that run while a context is being freed (hiredis defers the free to the end of a
 * callback) always find it. */
#include "store/redis_conn_internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/numtext.h"

/* ==== the command connection ================================================================= */

typedef struct op op;
struct sl__rconn {
    rlink l; /* first: the link's callbacks cast back */
    uv_timer_t watchdog;
    later_q later;
    op *head, *tail; /* sent, not yet answered: send order */
    /* The owner's check (opts): EVAL, body, nkeys, then its arguments, in one block. */
    int check_argc;
    char **check_argv;
    sl__rconn_fn on_check;

    sl__rconn_stats stats;
};

struct op {
    op *prev, *next;
    sl__rconn *c;
    int linked;
    int done;
    uint64_t deadline;
    uint64_t sent_ns; /* uv_hrtime() when sent: the round trip's start, finer than the loop's ms */
    sl__rconn_fn fn;
    void *ud;
    /* eval: the EVALSHA argv (copied), rewritten to EVAL body on NOSCRIPT */
    const sl__rscript *script;
    int retried; /* sent again as EVAL */
    int argc;
    const char **argv;
    size_t *lens;
};

static void on_watchdog(uv_timer_t *t);

static void watchdog_arm(sl__rconn *c)
{
    if (c->l.closing)
        return;
    if (c->head == NULL) {
        uv_timer_stop(&c->watchdog);
        return;
    }
    uint64_t now = uv_now(c->l.loop);
    uv_timer_start(&c->watchdog, on_watchdog, c->head->deadline > now ? c->head->deadline - now : 0,
                   0);
}

static void op_link(sl__rconn *c, op *o)
{
    o->deadline = uv_now(c->l.loop) + c->l.timeout_ms;
    o->sent_ns = uv_hrtime();
    o->prev = c->tail;
    o->next = NULL;
    if (c->tail)
        c->tail->next = o;
    else
        c->head = o;
    c->tail = o;
    o->linked = 1;
    if (c->head == o)
        watchdog_arm(c);
}

static void op_unlink(op *o)
{
    sl__rconn *c = o->c;
    if (!o->linked)
        return;
    int was_head = c->head == o;
    if (o->prev)
        o->prev->next = o->next;
    else
        c->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        c->tail = o->prev;
    o->linked = 0;
    if (was_head)
        watchdog_arm(c);
}

static void on_watchdog(uv_timer_t *t)
{
    sl__rconn *c = t->data;
    if (c->head == NULL || c->l.closing)
        return;
    if (c->head->deadline <= uv_now(c->l.loop) && !sl__rlink_drain(&c->l))
        return;
    if (c->head == NULL || c->head->deadline > uv_now(c->l.loop)) {
        watchdog_arm(c);
        return;
    }
    sl__rlink_drop(&c->l, "reply overdue");
}

static void on_kick_cmd(uv_timer_t *t)
{
    sl__rconn *c = t->data;
    later *n;
    while (!c->l.closing && (n = sl__rlater_pop(&c->later)) != NULL) {
        n->fn(n->ud, n->rc, NULL);
        free(n);
    }
}

/* fn(ud, SL_EUNAVAIL, NULL) from the loop. Out of memory even for that: at once (the only case
 * where a completion runs inside the call). */
static void cmd_fail_later(sl__rconn *c, sl__rconn_fn fn, void *ud)
{
    c->stats.failures++;
    later *n = calloc(1, sizeof *n);
    if (n == NULL) {
        fn(ud, SL_EUNAVAIL, NULL);
        return;
    }
    n->fn = fn;
    n->ud = ud;
    n->rc = SL_EUNAVAIL;
    sl__rlater_push(&c->later, n);
    uv_timer_start(&c->later.kick, on_kick_cmd, 0, 0);
}

static void op_free(op *o)
{
    free(o->argv);
    free(o);
}

static void on_cmd_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Queues a command for o, formatted here in RESP (hiredis' argv formatter runs a general printf
 * per argument, and a coalesced write has hundreds). REDIS_OK or REDIS_ERR. */
static int send_argv(redisAsyncContext *ac, op *o, int argc, const char *const *argv,
                     const size_t *lens)
{
    size_t total = 1 + 20 + 2;
    for (int i = 0; i < argc; i++)
        total += 1 + 20 + 2 + (lens ? lens[i] : strlen(argv[i])) + 2;
    char *buf = malloc(total + 1); /* + NUL: hiredis reads the command name with strchr */
    if (buf == NULL)
        return REDIS_ERR;
    char *p = buf;
    *p++ = '*';
    p = sl__put_uint(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]); /* NULL lens: C strings, as in hiredis */
        *p++ = '$';
        p = sl__put_uint(p, len);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *p = '\0';
    int rc = redisAsyncFormattedCommand(ac, on_cmd_reply, o, buf, (size_t)(p - buf));
    free(buf);
    return rc;
}

static void on_cmd_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    op *o = privdata;
    sl__rconn *c = o->c;
    redisReply *reply = r;
    if (o->done) {
        op_free(o);
        return;
    }
    /* A reply is progress: the next command waiting gets the whole timeout from now. "Overdue"
     * means Redis answered nothing for timeout_ms, not that a command waited that long behind
     * others Redis was still working through (nginx's proxy_read_timeout means the same). */
    if (reply != NULL && c->head == o && o->next != NULL) {
        uint64_t d = uv_now(c->l.loop) + c->l.timeout_ms;
        if (o->next->deadline < d)
            o->next->deadline = d;
    }
    op_unlink(o); /* re-arms the watchdog for the new head */
    if (reply != NULL && o->script != NULL && !o->retried && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && c->l.ac == ac && c->l.state == L_UP) {
        /* The script is not (or no longer) cached there: the same call as EVAL, which also
         * caches it for the next EVALSHA. */
        o->retried = 1;
        o->argv[0] = "EVAL";
        o->argv[1] = o->script->body;
        o->lens[0] = 4;
        o->lens[1] = strlen(o->script->body);
        if (send_argv(ac, o, o->argc, o->argv, o->lens) == REDIS_OK) {
            op_link(c, o);
            return;
        }
        reply = NULL;
    }
    o->done = 1;
    if (reply != NULL) {
        c->stats.round_trips++;
        sl__histo_observe(&c->stats.seconds, (double)(uv_hrtime() - o->sent_ns) / 1e9);
    } else {
        c->stats.failures++;
    }
    o->fn(o->ud, reply != NULL ? SL_OK : SL_EUNAVAIL, reply);
    op_free(o);
}

void sl__rconn_stats_get(const sl__rconn *c, sl__rconn_stats *out)
{
    *out = c->stats;
}

/* Sends o (argv, lens as given) or fails it from the loop. */
static void cmd_send(sl__rconn *c, op *o, int argc, const char **argv, const size_t *lens)
{
    if (c->l.state != L_UP || c->l.ac == NULL || c->l.closing ||
        send_argv(c->l.ac, o, argc, argv, lens) != REDIS_OK) {
        cmd_fail_later(c, o->fn, o->ud);
        op_free(o);
        return;
    }
    op_link(c, o);
}

void sl__rconn_cmd(sl__rconn *c, int argc, const char *const *argv, const size_t *lens,
                   sl__rconn_fn fn, void *ud)
{
    op *o = calloc(1, sizeof *o);
    if (o == NULL) {
        cmd_fail_later(c, fn, ud);
        return;
    }
    o->c = c;
    o->fn = fn;
    o->ud = ud;
    cmd_send(c, o, argc, (const char **)argv, lens);
}

void sl__rscript_init(sl__rscript *s, const char *body)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    s->body = body;
    s->sha[0] = '\0';
    if (EVP_Digest(body, strlen(body), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return; /* EVALSHA of "" answers NOSCRIPT, and the EVAL fallback still runs the body */
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
}

void sl__rconn_eval(sl__rconn *c, const sl__rscript *s, int nkeys, int argc,
                    const char *const *argv, const size_t *lens, sl__rconn_fn fn, void *ud)
{
    /* One block: the op, then argv and lens for argc + 3 entries, then the argument bytes and
     * nkeys in decimal, so that a NOSCRIPT retry can resend them after the caller returned. */
    size_t total = argc + 3, bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += lens ? lens[i] : strlen(argv[i]);
    char num[16];
    int numlen = snprintf(num, sizeof num, "%d", nkeys);
    op *o = calloc(1, sizeof *o);
    char *blk =
        o ? malloc(total * (sizeof(char *) + sizeof(size_t)) + bytes + (size_t)numlen + 1) : NULL;
    if (blk == NULL) {
        free(o);
        cmd_fail_later(c, fn, ud);
        return;
    }
    o->c = c;
    o->fn = fn;
    o->ud = ud;
    o->script = s;
    o->argc = (int)total;
    o->argv = (const char **)blk;
    o->lens = (size_t *)(blk + total * sizeof(char *));
    char *data = blk + total * (sizeof(char *) + sizeof(size_t));
    o->argv[0] = "EVALSHA";
    o->lens[0] = 7;
    o->argv[1] = s->sha;
    o->lens[1] = strlen(s->sha);
    memcpy(data, num, (size_t)numlen + 1);
    o->argv[2] = data;
    o->lens[2] = (size_t)numlen;
    data += numlen + 1;
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        memcpy(data, argv[i], n);
        o->argv[3 + i] = data;
        o->lens[3 + i] = n;
        data += n;
    }
    cmd_send(c, o, o->argc, o->argv, o->lens);
}

static void link_up_tell(rlink *l)
{
    sl__rlink_up(l);
    if (l->on_state != NULL)
        l->on_state(l->state_ud, 1);
}

static void on_pong(redisAsyncContext *ac, void *r, void *privdata)
{
    rlink *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->closing || l->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
        if (((sl__rconn *)l)->check_argv == NULL)
            link_up_tell(l);
        return; /* else the check, pipelined behind the PING, brings it up */
    }
    char why[160];
    snprintf(why, sizeof why, "PING answered %.100s",
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpectedly");
    sl__rlink_drop(l, why);
}

/* The check's reply: the owner sees it before the link counts as up, so no command of the owner's
 * can have been sent before then (sl__rconn_eval fails closed while the link is not up). */
static void on_check_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rlink *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->closing || l->ac != ac)
        return;
    ((sl__rconn *)l)->on_check(l->state_ud, SL_OK, reply);
    if (!l->closing && l->ac == ac)
        link_up_tell(l);
}

static void rconn_send_check(sl__rconn *c)
{
    redisAsyncCommandArgv(c->l.ac, on_check_reply, &c->l, c->check_argc,
                          (const char **)c->check_argv, NULL);
}

/* Copies the check's command (EVAL body nkeys args...) into one block owned by c. */
static int rconn_copy_check(sl__rconn *c, const sl__rconn_opts *o)
{
    if (o->check == NULL)
        return SL_OK;
    if (o->on_check == NULL || o->check_argc < o->check_nkeys || o->check_nkeys < 0)
        return SL_EINVAL;
    char nkeys[16];
    snprintf(nkeys, sizeof nkeys, "%d", o->check_nkeys);
    const char *head[3] = {"EVAL", o->check->body, nkeys};
    int argc = 3 + o->check_argc;
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += strlen(i < 3 ? head[i] : o->check_argv[i - 3]) + 1;
    char **v = malloc((size_t)argc * sizeof *v + bytes);
    if (v == NULL)
        return SL_ENOMEM;
    char *p = (char *)(v + argc);
    for (int i = 0; i < argc; i++) {
        const char *a = i < 3 ? head[i] : o->check_argv[i - 3];
        size_t n = strlen(a) + 1;
        v[i] = memcpy(p, a, n);
        p += n;
    }
    c->check_argv = v;
    c->check_argc = argc;
    c->on_check = o->on_check;
    return SL_OK;
}

int sl__rconn_new(sl__rconn **out, uv_loop_t *loop, const sl__rconn_opts *o)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (loop == NULL || o == NULL || o->addr == NULL || o->addr->host[0] == '\0')
        return SL_EINVAL;
    sl__rconn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    c->l.log = o->log;
    int rc = rconn_copy_check(c, o);
    if (rc != SL_OK) {
        free(c);
        return rc;
    }
    if (sl__rlink_init(&c->l, KIND_CMD, loop, o->addr, o->what, NULL, o->timeout_ms,
                       o->connect_timeout_ms) != SL_OK) {
        free(c->check_argv);
        free(c);
        return SL_ENOMEM;
    }
    c->l.on_state = o->on_state;
    c->l.state_ud = o->state_ud;
    uv_timer_init(loop, &c->watchdog);
    c->watchdog.data = c;
    uv_unref((uv_handle_t *)&c->watchdog);
    uv_timer_init(loop, &c->later.kick);
    c->later.kick.data = c;
    c->l.refs += 2;
    sl__rlink_start(&c->l);
    *out = c;
    return SL_OK;
}

int sl__rconn_up(const sl__rconn *c)
{
    return c != NULL && c->l.state == L_UP && c->l.ac != NULL;
}

static void rconn_handle_closed(uv_handle_t *h)
{
    sl__rconn *c = h->data;
    sl__rlink_release(&c->l);
}

void sl__rconn_free(sl__rconn *c)
{
    if (c == NULL || c->l.closing)
        return;
    c->l.closing = 1;
    /* Answer everything now, so that nothing is answered after this returns; the ops stay with
     * hiredis, which frees them through the NULL replies of the context's free below. */
    /* (A completion that submits again is answered here too.) */
    while (c->later.head != NULL || c->head != NULL) {
        later *n;
        while ((n = sl__rlater_pop(&c->later)) != NULL) {
            n->fn(n->ud, n->rc, NULL);
            free(n);
        }
        while (c->head != NULL) {
            op *o = c->head;
            op_unlink(o);
            o->done = 1;
            o->fn(o->ud, SL_EUNAVAIL, NULL);
        }
    }
    sl__rlink_close(&c->l);
    uv_close((uv_handle_t *)&c->watchdog, rconn_handle_closed);
    uv_close((uv_handle_t *)&c->later.kick, rconn_handle_closed);
}

/* ==== per-kind hooks of the link ============================================================= */

void sl__rlink_send_handshake(rlink *l)
{
    sl__rlink_send_prelude(l);
    if (l->kind == KIND_CMD) {
        redisAsyncCommand(l->ac, on_pong, l, "PING");
        if (((sl__rconn *)l)->check_argv != NULL)
            rconn_send_check((sl__rconn *)l);
    } else
        sl__rsub_handshake((sl__rsub *)l);
}

void sl__rlink_free_struct(rlink *l)
{
    if (l->kind == KIND_SUB) {
        sl__rsub_free_struct((sl__rsub *)l);
    } else {
        sl__rlink_clear(l);
        free(((sl__rconn *)l)->check_argv);
        free((sl__rconn *)l);
    }
}
