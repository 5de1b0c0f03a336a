/* What `sluice bench ws`'s two files share (cmd_bench.c: the command, the scenario's phases and the
 * report; bench_ws.c: the client connections and what they send and receive): the run's and the
 * connections' structures, and the functions that cross files. One thread, one loop: nothing here
 * is locked. Nothing here is part of any public API. */
#ifndef SLUICE_CLI_BENCH_WS_INTERNAL_H
#define SLUICE_CLI_BENCH_WS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <uv.h>

#include <sluice/jwt.h>

#include "cli/bench_proto.h"

/* One read buffer shared by every connection: the loop is single-threaded and each read is fully
 * processed before the next one is allocated, so per-connection buffers would only cost memory. */
#define READ_BUF (256u << 10)
/* --source: local addresses the connections are spread over (one source address and one server
 * port give at most ~28,000 connections with the default ephemeral port range). */
#define MAX_SOURCES 64
#define MAX_PER_TICK 4096 /* publications sent in one timer tick at most */
#define NATS_RING 65536   /* NATS publish batches waiting for their PONG */

enum { SC_FANOUT, SC_IDLE, SC_CONNECT };
enum { PR_CENTRIFUGO, PR_NATS };
enum { R_SUB, R_PUB, R_CYCLE };
enum { CS_TCP, CS_HTTP, CS_AUTH, CS_SUB, CS_READY, CS_CLOSING, CS_DEAD };
enum { PH_RAMP, PH_PUBCONN, PH_RUN, PH_DRAIN, PH_HOLD, PH_DONE };

static const char *const state_name[] = {"tcp connect", "upgrade", "connect", "subscribe",
                                         "ready",       "closing", "closed"};

typedef struct bench_opts {
    int scenario, proto, json;
    size_t connections, inflight, concurrency, ramp;
    double rate, duration, warmup;
    const char *channel, *path, *secret_file, *publish_url, *sources;
} bench_opts;

typedef struct bench bench;

typedef struct bconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    bench *b;
    struct bconn *prev, *next; /* every connection whose handle is not yet closed */
    uint64_t n;                /* its number: token sub and jti bench-<n> */
    sl__bench_tail tail;       /* the pushes' shortcut memo (bench_proto.h) */
    int role, state;
    int src;        /* its --source address (index), or -1 */
    int counted;    /* for SUB/PUB: still counted in b->pending (setup not finished) */
    int close_seen; /* an error for this connection has been recorded: record no second one */
    uint64_t t_start, t_state;
    char *head; /* the HTTP answer while upgrading */
    size_t head_len;
    char accept[29];
    sl__bench_rx rx;
    sl__bench_nats *nats;
    uint64_t deliveries, last_s;
    int have_s;
} bconn;

struct bench {
    bench_opts o;
    uv_loop_t loop;
    uv_timer_t tick, sweep;
    /* Subscribers (and every connection of the other scenarios) go to url/addr; the fan-out
     * publisher to pub_url/pub_addr, a copy of them without --publish-url. */
    struct sockaddr_storage addr, pub_addr;
    sl__bench_url url, pub_url;
    /* --source: connections bound to these in turn; how many of each became ready */
    struct sockaddr_storage src[MAX_SOURCES];
    size_t nsrc, next_src, src_ready[MAX_SOURCES];
    const char *token;  /* one token for all, or NULL */
    sl_jwt_keyring *kr; /* minting per connection, or NULL */
    uint64_t timeout_ns;
    int phase, in_progress, again;
    bconn *conns;
    size_t live; /* connection handles not yet closed */
    uint64_t next_n;
    size_t target, started, pending, ready, failed, dropped, subs_live;
    uint64_t t_ramp0, t_ramp1, now;
    /* fan-out */
    bconn *pub;
    uint64_t t0, t_win0, t_end, t_drain, t_progress;
    uint64_t sent, acked, pub_errors, inflight, backlog_waits;
    uint64_t deliveries, deliveries_win, reordered, untimed;
    size_t subs_at_start;
    uint32_t next_id;
    uint32_t *ring; /* NATS: publications per PING not yet answered */
    size_t ring_head, ring_len;
    /* connect */
    uint64_t cycles_ok;
    struct rusage ru0, ru1;
    uint64_t t_cpu0, t_cpu1;
    sl__bench_hist lat, setup;
    sl__bench_errs errs;
    uint64_t parse_errors, pings, other_pushes, unexpected;
    uint8_t *scratch;
    size_t scratch_cap;
    uint64_t rng;
    char rbuf[READ_BUF];
};

/* ---- bench_ws.c ------------------------------------------------------------------------------ */

/* Nanoseconds on the monotonic clock. */
uint64_t sl__bench_ws_now(void);
/* Starts one connection of the role (R_SUB, R_PUB: also b->pub, R_CYCLE). NULL when out of memory
 * (counted as failed); a connect that fails at once is recorded and the connection closed. Every
 * connection belongs to b, on its list until the close callback frees it. */
bconn *sl__bench_ws_conn_start(bench *b, int role);
/* Records the failure (prefix, code and text as sl__bench_errs_kind takes them), unless the run is
 * over or c was closing, and closes c. */
void sl__bench_ws_conn_fail(bconn *c, const char *prefix, long code, const char *text, size_t len);
/* Closes c (a second call does nothing) and moves the scenario on; c is freed once closed. */
void sl__bench_ws_conn_close(bconn *c);
/* The publisher: pub_fill tops up to --inflight unanswered publications with --rate 0; pub_send
 * sends n now, in frames of at most CMDS_PER_FRAME commands. */
void sl__bench_ws_pub_fill(bench *b);
void sl__bench_ws_pub_send(bench *b, size_t n);

/* ---- cmd_bench.c ----------------------------------------------------------------------------- */

/* Moves the scenario on after any connection finished its setup or went away; re-entrant calls
 * only ask the outer one to look again. */
void sl__bench_ws_progress(bench *b);

#endif
