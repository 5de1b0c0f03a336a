/* What `sluice bench queue`'s two files share (cmd_bench_queue.c: the command, the producer and
 * consumer threads, the report; bench_queue_targets.c: the sluice, NATS JetStream and RabbitMQ
 * drivers): the run, a consumer's state, the driver interface and the functions that cross files.
 * The run is shared by every thread: its counters are atomics and mu guards the rest (see run).
 * Built only with libnats and librabbitmq, like both files. Nothing here is part of any public
 * API. */
#ifndef SLUICE_CLI_BENCH_QUEUE_INTERNAL_H
#define SLUICE_CLI_BENCH_QUEUE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/bench_proto.h"
#include "cli/bench_queue.h"

enum { T_SLUICE, T_NATS, T_RABBITMQ };

typedef struct opts {
    int target;
    size_t clients, messages, size, batch;
    double seconds;
    const char *queue, *durability;
} opts;

typedef struct run run;
typedef struct cons cons;

/* One target: connections are opened by the thread that uses them. */
typedef struct driver {
    const char *name;
    const char *durability;      /* one word for the RESULT line */
    const char *durability_text; /* the sentence printed beside the figures */
    int (*setup)(run *r);        /* delete and create the queue; keeps an admin connection */
    void *(*prod_open)(run *r);
    int (*produce)(void *h, const char *p, size_t n); /* 0 once confirmed */
    void (*prod_close)(void *h);
    void *(*cons_open)(run *r);
    int (*consume)(void *h, cons *c); /* messages acknowledged, 0 none came, -1 error */
    void (*cons_close)(void *h);
    int (*left)(run *r, uint64_t *n); /* messages still in the queue */
    void (*teardown)(run *r);
} driver;

struct run {
    opts o;
    const driver *d;
    const char *url, *token;
    sl__bq_url u;
    long timeout_ms;
    void *admin; /* the setup connection, owned by the driver */
    atomic_uint_fast64_t next_seq, produced, consumed, errors, untimed;
    atomic_int producers_live, abort;
    _Atomic uint64_t t_prod_done, t_last_consume;
    uint64_t t0, t_stop;
    sl__bq_ledger ledger;
    pthread_barrier_t ready, go;
    pthread_mutex_t mu; /* guards what follows */
    sl__bench_hist prod_lat, e2e_lat;
    char first_error[256];
};

struct cons {
    run *r;
    sl__bench_hist lat;
};

/* ---- cmd_bench_queue.c ----------------------------------------------------------------------- */

/* Counts an error; the first one's text is kept for the report. Any thread. */
void sl__bq_fail(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A consumer got a message: its latency from the send time and its mark in the ledger (timed 0:
 * a payload without them, only counted). sl__bq_deliver parses the payload first. */
void sl__bq_deliver_parsed(cons *c, int timed, uint64_t seq, uint64_t t);
void sl__bq_deliver(cons *c, const char *p, size_t n);

/* ---- bench_queue_targets.c ------------------------------------------------------------------- */

/* The drivers, indexed by T_SLUICE, T_NATS, T_RABBITMQ. */
extern const driver sl__bq_drivers[3];

#endif
