/* `sluice bench queue`: the same produce → claim → acknowledge work against sluiced (HTTP API),
 * NATS JetStream (file storage, work-queue retention, explicit acks, a pull consumer) and
 * RabbitMQ (durable queue, persistent messages, publisher confirms, manual acks), so that the
 * three figures differ only in the server. N producer threads and N consumer threads, each with
 * its own connection, in this one process: every producer has one message in flight and waits
 * for its confirmation (sluiced's 200, JetStream's publish ack, RabbitMQ's basic.ack), so the
 * produce latency is request to confirm and the rate is what N confirmed writers get. Consumers
 * claim up to --batch messages, record produce-to-consume latency from the send time inside each
 * payload, and acknowledge them. Every sequence number is checked off in a ledger, so a message
 * lost or delivered twice shows in the result; the queue's depth is read back at the end.
 * Blocking calls on threads, because the NATS and RabbitMQ C clients are blocking libraries: the
 * sluice target uses plain blocking sockets on threads too, so no target gets a cleverer client.
 * The client's own CPU use is reported: near 100% of its core would make it the bottleneck.
 * This file is the command, the threads and the report; the three targets' drivers are in
 * bench_queue_targets.c. Built only when libnats and librabbitmq are found (CMakeLists.txt). */
#include "cli/bench_queue_internal.h"
#include "cli/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h> /* nats_CloseAndWait */

#define MAX_CLIENTS 256
#define MAX_BATCH 1000          /* sluiced's own limit per read */
#define DRAIN_NS 30000000000ull /* after the last produce: consumers give up after this long */

static const char usage[] =
    "Usage: sluice bench queue --target sluice|nats|rabbitmq [options]\n"
    "\n"
    "Produce → claim → acknowledge against sluiced, NATS JetStream or RabbitMQ: N producer\n"
    "threads (one confirmed message in flight each) and N consumer threads (claim up to --batch,\n"
    "acknowledge), each with its own connection. Prints produced/s, consumed (claim + ack)/s,\n"
    "p50/p99 of produce latency (request to confirm) and of end-to-end latency (produce to\n"
    "consume), checks every message was consumed exactly once, and ends with a RESULT line.\n"
    "The queue (sluice channel, JetStream stream, RabbitMQ queue) is deleted and created anew.\n"
    "\n"
    "Options:\n"
    "  --target T        sluice, nats or rabbitmq\n"
    "  --url URL         sluice: http://host:port (as for every command); nats: nats://host:port\n"
    "                    (default nats://127.0.0.1:4222); rabbitmq: "
    "amqp://user:pass@host:port/vhost\n"
    "                    (default amqp://guest:guest@127.0.0.1:5672/)\n"
    "  --clients N       producers, and as many consumers; default 4\n"
    "  --messages M      produce at most M messages; default 100000\n"
    "  --seconds S       stop producing after S seconds (default: when M are produced)\n"
    "  --size BYTES      payload size (JSON, at least 58); default 256\n"
    "  --batch K         messages per claim / fetch / prefetch; default 32\n"
    "  --queue NAME      queue name; default benchq\n"
    "  --durability TEXT sluice: how the server stores (one word for the RESULT line, e.g.\n"
    "                    lmdb-sync); default memory\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help        show this help\n"
    "\n"
    "Exit status 0 only when every produced message was consumed once and none is left.\n";

enum {
    OPT_TARGET = 0x200,
    OPT_CLIENTS,
    OPT_MESSAGES,
    OPT_SECONDS,
    OPT_SIZE,
    OPT_BATCH,
    OPT_QUEUE,
    OPT_DURABILITY,
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Counts an error; the first one's text is kept for the report. */
void sl__bq_fail(run *r, const char *fmt, ...)
{
    atomic_fetch_add(&r->errors, 1);
    pthread_mutex_lock(&r->mu);
    if (r->first_error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->first_error, sizeof r->first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->mu);
}

/* A consumer got a message: latency from its send time, and the ledger. */
void sl__bq_deliver_parsed(cons *c, int timed, uint64_t seq, uint64_t t)
{
    if (!timed) {
        atomic_fetch_add(&c->r->untimed, 1);
        return;
    }
    uint64_t now = now_ns();
    sl__bench_hist_record(&c->lat, now > t ? now - t : 0);
    if (sl__bq_ledger_mark(&c->r->ledger, seq) == 0)
        atomic_fetch_add(&c->r->consumed, 1);
}

void sl__bq_deliver(cons *c, const char *p, size_t n)
{
    uint64_t seq = 0, t = 0;
    int ok = sl__bq_payload_parse(p, n, &seq, &t) == 0;
    sl__bq_deliver_parsed(c, ok, seq, t);
}

/* ---- threads --------------------------------------------------------------------------------- */

static void *producer(void *arg)
{
    run *r = arg;
    sl__bench_hist *lat = malloc(sizeof *lat);
    char *buf = malloc(r->o.size);
    void *h = lat && buf ? r->d->prod_open(r) : NULL;
    if (h == NULL)
        atomic_store(&r->abort, 1);
    pthread_barrier_wait(&r->ready);
    pthread_barrier_wait(&r->go);
    if (h != NULL && !atomic_load(&r->abort)) {
        sl__bench_hist_init(lat);
        for (;;) {
            uint64_t seq = atomic_fetch_add(&r->next_seq, 1);
            uint64_t t = now_ns();
            if (seq >= r->o.messages || t >= r->t_stop || atomic_load(&r->abort))
                break;
            sl__bq_payload(buf, r->o.size, seq, t);
            if (r->d->produce(h, buf, r->o.size) < 0)
                break;
            sl__bench_hist_record(lat, now_ns() - t);
            sl__bq_ledger_produced(&r->ledger, seq);
            atomic_fetch_add(&r->produced, 1);
        }
        pthread_mutex_lock(&r->mu);
        sl__bench_hist_merge(&r->prod_lat, lat);
        pthread_mutex_unlock(&r->mu);
    }
    if (atomic_fetch_sub(&r->producers_live, 1) == 1)
        atomic_store(&r->t_prod_done, now_ns());
    if (h != NULL)
        r->d->prod_close(h);
    free(buf);
    free(lat);
    return NULL;
}

static void *consumer(void *arg)
{
    run *r = arg;
    cons *c = malloc(sizeof *c);
    void *h = c ? r->d->cons_open(r) : NULL;
    if (h == NULL)
        atomic_store(&r->abort, 1);
    pthread_barrier_wait(&r->ready);
    pthread_barrier_wait(&r->go);
    if (h != NULL && !atomic_load(&r->abort)) {
        c->r = r;
        sl__bench_hist_init(&c->lat);
        for (;;) {
            if (atomic_load(&r->abort))
                break;
            uint64_t done = atomic_load(&r->t_prod_done);
            /* Everything produced has been consumed once: stop (ledger counts first times only). */
            if (done && atomic_load(&r->consumed) >= atomic_load(&r->produced))
                break;
            if (done && now_ns() > done + DRAIN_NS)
                break;
            int n = r->d->consume(h, c);
            if (n < 0)
                break;
            if (n > 0)
                atomic_store(&r->t_last_consume, now_ns());
        }
        pthread_mutex_lock(&r->mu);
        sl__bench_hist_merge(&r->e2e_lat, &c->lat);
        pthread_mutex_unlock(&r->mu);
    }
    if (h != NULL)
        r->d->cons_close(h);
    free(c);
    return NULL;
}

/* ---- options and the run --------------------------------------------------------------------- */

static int opt_fn(void *ud, int opt, const char *arg)
{
    opts *o = ud;
    const char *cmd = "bench queue";
    size_t n;
    double d;
    switch (opt) {
    case OPT_TARGET:
        if (!strcmp(arg, "sluice"))
            o->target = T_SLUICE;
        else if (!strcmp(arg, "nats"))
            o->target = T_NATS;
        else if (!strcmp(arg, "rabbitmq"))
            o->target = T_RABBITMQ;
        else
            return sl__cli_usage_error(cmd, "--target must be sluice, nats or rabbitmq");
        return 0;
    case OPT_CLIENTS:
    case OPT_MESSAGES:
    case OPT_SIZE:
    case OPT_BATCH:
        if (sl__cli_parse_count(arg, &n) < 0 || n < 1)
            return sl__cli_usage_error(cmd, "expected a positive count, not '%s'", arg);
        if (opt == OPT_CLIENTS && n > MAX_CLIENTS)
            return sl__cli_usage_error(cmd, "--clients is at most %d", MAX_CLIENTS);
        if (opt == OPT_MESSAGES && n > 1000000000)
            return sl__cli_usage_error(cmd, "--messages is at most 1000000000");
        if (opt == OPT_SIZE && (n < SL__BQ_MIN_SIZE || n > SL__BQ_MAX_SIZE))
            return sl__cli_usage_error(cmd, "--size must be from %d to %u bytes", SL__BQ_MIN_SIZE,
                                       SL__BQ_MAX_SIZE);
        if (opt == OPT_BATCH && n > MAX_BATCH)
            return sl__cli_usage_error(cmd, "--batch is at most %d", MAX_BATCH);
        *(opt == OPT_CLIENTS    ? &o->clients
          : opt == OPT_MESSAGES ? &o->messages
          : opt == OPT_SIZE     ? &o->size
                                : &o->batch) = n;
        return 0;
    case OPT_SECONDS:
        if (sl__cli_parse_duration(arg, &d) < 0 || d <= 0 || d > 86400)
            return sl__cli_usage_error(cmd, "--seconds must be a duration above 0");
        o->seconds = d;
        return 0;
    case OPT_QUEUE:
        /* A name every target accepts as it is: sluice channel id, stream name, queue name. */
        if (strlen(arg) < 1 || strlen(arg) > 64 ||
            strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                strlen(arg))
            return sl__cli_usage_error(cmd, "--queue must be 1 to 64 of [A-Za-z0-9_-]");
        o->queue = arg;
        return 0;
    case OPT_DURABILITY:
        if (strlen(arg) < 1 || strlen(arg) > 40 || strpbrk(arg, " \t\r\n=") != NULL)
            return sl__cli_usage_error(cmd, "--durability must be one word");
        o->durability = arg;
        return 0;
    }
    return SL__EXIT_USAGE;
}

static double secs_between(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e9 : 0;
}

static double cpu_seconds(const struct rusage *u)
{
    return (double)u->ru_utime.tv_sec + (double)u->ru_utime.tv_usec / 1e6 +
           (double)u->ru_stime.tv_sec + (double)u->ru_stime.tv_usec / 1e6;
}

int sl__cli_cmd_bench_queue(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},
                                            {"target", required_argument, NULL, OPT_TARGET},
                                            {"clients", required_argument, NULL, OPT_CLIENTS},
                                            {"messages", required_argument, NULL, OPT_MESSAGES},
                                            {"seconds", required_argument, NULL, OPT_SECONDS},
                                            {"size", required_argument, NULL, OPT_SIZE},
                                            {"batch", required_argument, NULL, OPT_BATCH},
                                            {"queue", required_argument, NULL, OPT_QUEUE},
                                            {"durability", required_argument, NULL, OPT_DURABILITY},
                                            SL__CLI_CONN_OPTS,
                                            {0}};
    const char *cmd = "bench queue";
    opts o = {.target = -1,
              .clients = 4,
              .messages = 100000,
              .size = 256,
              .batch = 32,
              .queue = "benchq",
              .durability = "memory"};
    int rc = sl__cli_getopt(cmd, argc, argv, options, usage, conn, opt_fn, &o);
    if (rc >= 0)
        return rc;
    if (argc - optind != 0)
        return sl__cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o.target < 0)
        return sl__cli_usage_error(cmd, "--target is required (sluice, nats or rabbitmq)");

    run *r = calloc(1, sizeof *r);
    if (r == NULL || sl__bq_ledger_init(&r->ledger, o.messages) < 0) {
        free(r);
        sl__cli_err("out of memory");
        return SL__EXIT_FAIL;
    }
    r->o = o;
    r->d = &sl__bq_drivers[o.target];
    r->timeout_ms = conn->timeout_ms > 0 ? conn->timeout_ms : 30000;
    static const char *const scheme[] = {"http", "nats", "amqp"};
    static const char *const def_url[] = {NULL, "nats://127.0.0.1:4222",
                                          "amqp://guest:guest@127.0.0.1:5672/"};
    static const int def_port[] = {80, 4222, 5672};
    /* The sluice URL (flag, SLUICE_URL or its default) is ignored for the other targets unless it
     * names their scheme. */
    r->url = conn->url;
    if (o.target != T_SLUICE && (strncmp(r->url, scheme[o.target], strlen(scheme[o.target])) != 0 ||
                                 strncmp(r->url + strlen(scheme[o.target]), "://", 3) != 0))
        r->url = def_url[o.target];
    const char *why = NULL;
    if (sl__bq_url_parse(r->url, scheme[o.target], def_port[o.target], &r->u, &why) < 0) {
        sl__bq_ledger_free(&r->ledger);
        free(r);
        return sl__cli_usage_error(cmd, "--url '%s': %s", conn->url, why);
    }
    if (o.target == T_SLUICE && conn->token != NULL) {
        if (strpbrk(conn->token, "\r\n \t") != NULL || strlen(conn->token) > 8192) {
            sl__bq_ledger_free(&r->ledger);
            free(r);
            return sl__cli_usage_error(cmd, "the token holds characters a token cannot have");
        }
        r->token = conn->token;
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&r->mu, NULL);
    sl__bench_hist_init(&r->prod_lat);
    sl__bench_hist_init(&r->e2e_lat);

    int exit_code = SL__EXIT_OK;
    size_t nthreads = 2 * o.clients, started = 0;
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (th == NULL || r->d->setup(r) < 0) {
        sl__cli_err("%s: setting up the queue failed: %s", r->d->name,
                    r->first_error[0] ? r->first_error : "out of memory");
        exit_code = SL__EXIT_UNAVAIL;
        goto out;
    }
    pthread_barrier_init(&r->ready, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&r->go, NULL, (unsigned)nthreads + 1);
    atomic_store(&r->producers_live, (int)o.clients);
    for (size_t i = 0; i < nthreads; i++) {
        if (pthread_create(&th[i], NULL, i % 2 ? consumer : producer, r) != 0) {
            /* The barriers count on every thread: without them the run cannot start. */
            sl__cli_err("cannot start a thread: %s", strerror(errno));
            abort();
        }
        started++;
    }
    pthread_barrier_wait(&r->ready); /* every connection is open (or failed) */
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    r->t0 = now_ns();
    r->t_stop = o.seconds > 0 ? r->t0 + (uint64_t)(o.seconds * 1e9) : UINT64_MAX;
    pthread_barrier_wait(&r->go);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    uint64_t t_end = now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    pthread_barrier_destroy(&r->ready);
    pthread_barrier_destroy(&r->go);

    uint64_t left = 0;
    int have_left = -1;
    /* Acknowledgements without a reply (NATS, RabbitMQ) may still be on their way: look again. */
    for (int i = 0; i < 50 && !atomic_load(&r->abort); i++) {
        have_left = r->d->left(r, &left);
        if (have_left < 0 || left == 0)
            break;
        usleep(100000);
    }
    uint64_t produced = atomic_load(&r->produced), consumed = atomic_load(&r->consumed);
    uint64_t t_done = atomic_load(&r->t_prod_done), t_last = atomic_load(&r->t_last_consume);
    sl__bq_summary s = {
        .target = r->d->name,
        .durability = r->d->durability ? r->d->durability : o.durability,
        .clients = (unsigned)o.clients,
        .produced = produced,
        .consumed = consumed,
        .duplicates = atomic_load(&r->ledger.dups),
        .missing = sl__bq_ledger_missing(&r->ledger),
        .left = left,
        .errors =
            atomic_load(&r->errors) + atomic_load(&r->untimed) + atomic_load(&r->ledger.unknown),
        .produce_rate =
            secs_between(r->t0, t_done) > 0 ? produced / secs_between(r->t0, t_done) : 0,
        .consume_rate =
            secs_between(r->t0, t_last) > 0 ? consumed / secs_between(r->t0, t_last) : 0,
        .produce_p50_us = sl__bench_hist_quantile(&r->prod_lat, 0.50) / 1e3,
        .produce_p99_us = sl__bench_hist_quantile(&r->prod_lat, 0.99) / 1e3,
        .e2e_p50_us = sl__bench_hist_quantile(&r->e2e_lat, 0.50) / 1e3,
        .e2e_p99_us = sl__bench_hist_quantile(&r->e2e_lat, 0.99) / 1e3,
        .client_cpu =
            secs_between(r->t0, t_end) > 0
                ? 100.0 * (cpu_seconds(&ru1) - cpu_seconds(&ru0)) / secs_between(r->t0, t_end)
                : 0,
    };
    printf("sluice bench queue: %s at %s:%d, %zu producers + %zu consumers, %zu-byte messages, "
           "batch %zu\n",
           r->d->name, r->u.host, r->u.port, o.clients, o.clients, o.size, o.batch);
    if (r->d->durability_text)
        printf("  durability: %s\n", r->d->durability_text);
    else
        printf("  durability: as the server was started (labelled '%s')\n", o.durability);
    printf("  produced %" PRIu64 " in %.2f s = %.0f/s (one confirmed message in flight per "
           "producer)\n",
           produced, secs_between(r->t0, t_done), s.produce_rate);
    printf("  consumed (claim + ack) %" PRIu64 " in %.2f s = %.0f/s; duplicates %" PRIu64
           ", missing %" PRIu64 ", left in the queue %" PRIu64 "%s\n",
           consumed, secs_between(r->t0, t_last), s.consume_rate, s.duplicates, s.missing, left,
           have_left < 0 ? " (unknown)" : "");
    printf("  produce latency us (request to confirm, %" PRIu64 " samples): p50 %.0f  p99 %.0f  "
           "max %.0f\n",
           r->prod_lat.count, s.produce_p50_us, s.produce_p99_us, r->prod_lat.max / 1e3);
    printf("  end-to-end latency us (produce to consume, %" PRIu64 " samples): p50 %.0f  p99 %.0f"
           "  max %.0f\n",
           r->e2e_lat.count, s.e2e_p50_us, s.e2e_p99_us, r->e2e_lat.max / 1e3);
    printf("  client CPU: %.0f%% of one core over %.2f s (all threads of this process)\n",
           s.client_cpu, secs_between(r->t0, t_end));
    if (s.errors)
        printf("  errors: %" PRIu64 " (first: %s)\n", s.errors,
               r->first_error[0] ? r->first_error : "a message without its sequence number");
    char line[1024];
    if (sl__bq_result_line(line, sizeof line, &s) > 0)
        printf("%s\n", line);
    fflush(stdout);
    if (atomic_load(&r->abort) || produced == 0 || s.errors || s.missing || s.duplicates ||
        have_left < 0 || left != 0) {
        sl__cli_err("the run was not clean: %s", r->first_error[0] ? r->first_error
                                                 : produced == 0   ? "nothing was produced"
                                                                   : "see the figures above");
        exit_code = produced == 0 ? SL__EXIT_UNAVAIL : SL__EXIT_FAIL;
    }
out:
    if (r->admin != NULL)
        r->d->teardown(r);
    if (o.target == T_NATS)
        nats_CloseAndWait(5000);
    pthread_mutex_destroy(&r->mu);
    sl__bq_ledger_free(&r->ledger);
    free(th);
    free(r);
    return exit_code;
}
