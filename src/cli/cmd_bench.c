/* `sluice bench ws`: a WebSocket load generator for sluiced's Centrifugo-compatible endpoint
 * (GET /connection/websocket). One process, one thread, one libuv loop holding many client
 * connections, so that the machine's second core can load the server on the first. Three
 * scenarios: fan-out (N subscribers on one topic, one publisher at a given rate, which may be
 * connected to another node than the subscribers, publish-to-delivery latency), idle (N
 * authenticated, subscribed connections held open so a script can read the server's memory) and
 * connect (open, authenticate, close, as fast as a number of parallel slots allow). The same
 * scenarios run against nats-server's WebSocket listener with `--proto nats` as the baseline: only
 * the text inside the frames differs, so both servers are measured by the same client code. Framing
 * comes from net/ws_frame.h and every parser it feeds lives in bench_proto.c, which does no I/O and
 * bounds everything a hostile server could make it hold. This file is the command (options,
 * credentials, setup), the scenario's phases (ramp, publishing, drain, hold) and the report; the
 * connections, what they send and what they make of the answers are in bench_ws.c. */
#include "cli/bench_ws_internal.h"
#include "cli/cli.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

/* Pacing stops adding publications while this much is still queued in user space for the
 * publisher's socket: a server that falls behind must not make the client buffer without end. */
#define PUB_BACKLOG_MAX (4u << 20)
#define TICK_MS 1
#define SWEEP_MS 100
#define CLOSE_WAIT_NS 2000000000ull /* our close frame sent: wait this long for the server's */
#define DRAIN_IDLE_NS 3000000000ull /* end of publishing: stop after this long without progress */
#define DRAIN_MAX_NS 15000000000ull

static const char bench_usage[] =
    "Usage: sluice bench ws [options]\n"
    "\n"
    "WebSocket load against sluiced's /connection/websocket (Centrifugo JSON protocol), or\n"
    "against nats-server's WebSocket listener with --proto nats (the baseline). Single-threaded;\n"
    "all connections in this one process.\n"
    "\n"
    "Scenarios (--scenario):\n"
    "  fanout   N subscribers on one topic, one publisher; deliveries/s and latency (default)\n"
    "  idle     N authenticated, subscribed connections held for --duration; prints 'ready'\n"
    "           on stderr once all are up\n"
    "  connect  open, authenticate, close, with --concurrency parallel connections\n"
    "\n"
    "Options:\n"
    "  --scenario S       fanout, idle or connect\n"
    "  --connections N    subscribers (fanout) or held connections (idle); default 1000\n"
    "  --channel C        the topic to subscribe and publish to; default bench\n"
    "  --rate R           publications per second; 0 = as fast as acknowledged; default 1000\n"
    "  --inflight N       with --rate 0: unacknowledged publications at most; default 64\n"
    "  --duration S       seconds of publishing, holding or connecting; default 10\n"
    "  --warmup S         fanout: seconds at the start left out of rate and latency; default 1\n"
    "  --concurrency N    connect: parallel connections; default 50\n"
    "  --ramp N           connection attempts in flight while opening; default 200\n"
    "  --secret-file FILE mint one HS256 token per connection with this secret (default:\n"
    "                     $SLUICE_JWT_SECRET when set and no --token is given)\n"
    "  --proto P          centrifugo (default) or nats\n"
    "  --path PATH        request path; default <url path>/connection/websocket (nats: /)\n"
    "  --publish-url URL  fanout: the publisher connects here instead of --url (another node\n"
    "                     of a cluster sharing an engine); default: --url\n"
    "  --source A[,A...]  bind the connections to these local IP addresses in turn (e.g.\n"
    "                     127.0.0.1,127.0.0.2: one address reaches one server port from\n"
    "                     about 28,000 ports); not the fanout publisher; at most 64\n"
    "  --json             print one JSON object instead of the summary\n"
    "\n" SL__CLI_CONN_HELP "  -h, --help         show this help\n"
    "\n"
    "The URL may be http:// or ws:// (no TLS). --timeout bounds each connection's setup.\n"
    "Without a secret or token the connections are anonymous (a server running open).\n";

enum {
    OPT_SCENARIO = 0x200,
    OPT_CONNECTIONS,
    OPT_CHANNEL,
    OPT_RATE,
    OPT_INFLIGHT,
    OPT_DURATION,
    OPT_WARMUP,
    OPT_CONCURRENCY,
    OPT_RAMP,
    OPT_SECRET_FILE,
    OPT_PROTO,
    OPT_PATH,
    OPT_PUBLISH_URL,
    OPT_SOURCE,
    OPT_JSON,
};

/* ---- phases ---------------------------------------------------------------------------------- */

static void finish(bench *b);

static void start_publishing(bench *b)
{
    b->phase = PH_RUN;
    b->subs_at_start = b->subs_live;
    b->t0 = sl__bench_ws_now();
    b->t_win0 = b->t0 + (uint64_t)(b->o.warmup * 1e9);
    b->t_end = b->t0 + (uint64_t)(b->o.duration * 1e9);
    b->t_progress = b->t0;
    getrusage(RUSAGE_SELF, &b->ru0);
    b->t_cpu0 = b->t0;
    sl__bench_ws_pub_fill(b);
}

/* Moves the scenario on after any connection finished its setup or went away. Re-entrant calls
 * (a failure while starting connections) only ask the outer call to look again. */
void sl__bench_ws_progress(bench *b)
{
    if (b->in_progress) {
        b->again = 1;
        return;
    }
    b->in_progress = 1;
    do {
        b->again = 0;
        if (b->phase == PH_RAMP) {
            while (b->pending < b->o.ramp && b->started < b->target)
                sl__bench_ws_conn_start(b, R_SUB);
            if (b->started >= b->target && b->pending == 0) {
                b->t_ramp1 = sl__bench_ws_now();
                if (b->ready == 0) {
                    finish(b);
                } else if (b->o.scenario == SC_IDLE) {
                    b->phase = PH_HOLD;
                    b->t0 = sl__bench_ws_now();
                    b->t_end = b->t0 + (uint64_t)(b->o.duration * 1e9);
                    fprintf(stderr, "ready %zu\n", b->ready);
                    fflush(stderr);
                } else {
                    b->phase = PH_PUBCONN;
                    sl__bench_ws_conn_start(b, R_PUB); /* sets b->pub; a failure clears it */
                }
            }
        } else if (b->phase == PH_PUBCONN) {
            if (b->pub != NULL && b->pub->state == CS_READY)
                start_publishing(b);
            else if (b->pub == NULL || b->pending == 0)
                finish(b); /* the publisher could not connect */
        }
    } while (b->again);
    b->in_progress = 0;
}

static void on_tick(uv_timer_t *t)
{
    bench *b = t->data;
    uint64_t now = sl__bench_ws_now();
    b->now = now;
    if (b->phase == PH_RUN && b->o.scenario == SC_FANOUT) {
        if (now >= b->t_end) {
            b->phase = PH_DRAIN;
            b->t_drain = now;
            getrusage(RUSAGE_SELF, &b->ru1);
            b->t_cpu1 = now;
        } else if (b->o.rate > 0 && b->pub != NULL) {
            uint64_t due = (uint64_t)(b->o.rate * (double)(now - b->t0) / 1e9);
            if (due > b->sent) {
                if (uv_stream_get_write_queue_size((uv_stream_t *)&b->pub->tcp) > PUB_BACKLOG_MAX)
                    b->backlog_waits++;
                else
                    sl__bench_ws_pub_send(
                        b, due - b->sent > MAX_PER_TICK ? MAX_PER_TICK : (size_t)(due - b->sent));
            }
        } else if (b->pub == NULL) {
            b->phase = PH_DRAIN;
            b->t_drain = now;
            getrusage(RUSAGE_SELF, &b->ru1);
            b->t_cpu1 = now;
        }
    }
    if (b->phase == PH_DRAIN) {
        int complete = b->inflight == 0 && b->deliveries >= b->acked * b->subs_at_start;
        if (complete || now - b->t_progress > DRAIN_IDLE_NS || now - b->t_drain > DRAIN_MAX_NS)
            finish(b);
    } else if ((b->phase == PH_HOLD || (b->phase == PH_RUN && b->o.scenario == SC_CONNECT)) &&
               now >= b->t_end) {
        getrusage(RUSAGE_SELF, &b->ru1);
        b->t_cpu1 = now;
        finish(b);
    }
}

static void on_sweep(uv_timer_t *t)
{
    bench *b = t->data;
    uint64_t now = sl__bench_ws_now();
    b->now = now;
    for (bconn *c = b->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state < CS_READY && now - c->t_state > b->timeout_ns)
            sl__bench_ws_conn_fail(c, "timeout in", -1, state_name[c->state],
                                   strlen(state_name[c->state]));
        else if (c->state == CS_CLOSING && now - c->t_state > CLOSE_WAIT_NS)
            sl__bench_ws_conn_close(c);
    }
}

/* ---- report ---------------------------------------------------------------------------------- */

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static json_t *hist_json(const sl__bench_hist *h)
{
    return json_pack(
        "{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)h->count, "p50",
        us(sl__bench_hist_quantile(h, 0.50)), "p90", us(sl__bench_hist_quantile(h, 0.90)), "p99",
        us(sl__bench_hist_quantile(h, 0.99)), "p999", us(sl__bench_hist_quantile(h, 0.999)), "max",
        us(h->max), "mean", h->count ? us((uint64_t)(h->sum / (double)h->count)) : 0.0);
}

static double cpu_percent(const bench *b)
{
    if (b->t_cpu1 <= b->t_cpu0)
        return 0;
    double u = (double)(b->ru1.ru_utime.tv_sec - b->ru0.ru_utime.tv_sec) +
               (double)(b->ru1.ru_utime.tv_usec - b->ru0.ru_utime.tv_usec) / 1e6 +
               (double)(b->ru1.ru_stime.tv_sec - b->ru0.ru_stime.tv_sec) +
               (double)(b->ru1.ru_stime.tv_usec - b->ru0.ru_stime.tv_usec) / 1e6;
    return 100.0 * u / ((double)(b->t_cpu1 - b->t_cpu0) / 1e9);
}

/* --source's addresses, each with the connections bound to it that became ready. */
static json_t *sources_json(const bench *b)
{
    json_t *a = json_array();
    for (size_t i = 0; i < b->nsrc; i++) {
        char ip[64] = "";
        const struct sockaddr *sa = (const struct sockaddr *)&b->src[i];
        if (sa->sa_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof ip);
        else
            uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
        json_array_append_new(
            a, json_pack("{s:s, s:I}", "address", ip, "ready", (json_int_t)b->src_ready[i]));
    }
    return a;
}

static json_t *report_json(const bench *b)
{
    static const char *const scen[] = {"fanout", "idle", "connect"};
    json_t *o = json_object();
    json_object_set_new(o, "scenario", json_string(scen[b->o.scenario]));
    json_object_set_new(o, "proto", json_string(b->o.proto == PR_NATS ? "nats" : "centrifugo"));
    json_object_set_new(o, "path", json_string(b->url.path));
    if (b->o.publish_url)
        json_object_set_new(o, "publish_host", json_string(b->pub_url.host));
    double ramp_s = b->t_ramp1 > b->t_ramp0 ? (double)(b->t_ramp1 - b->t_ramp0) / 1e9 : 0;
    json_t *errs = json_object();
    for (size_t i = 0; i < b->errs.rows; i++)
        json_object_set_new(errs, b->errs.row[i].kind, json_integer((json_int_t)b->errs.row[i].n));
    if (b->errs.other)
        json_object_set_new(errs, "other", json_integer((json_int_t)b->errs.other));
    if (b->o.scenario == SC_CONNECT) {
        double secs = b->o.duration;
        json_object_set_new(
            o, "connect",
            json_pack("{s:I, s:f, s:I, s:I, s:f, s:o}", "concurrency", (json_int_t)b->o.concurrency,
                      "duration", secs, "authenticated", (json_int_t)b->cycles_ok, "failed",
                      (json_int_t)b->failed, "per_second", secs > 0 ? b->cycles_ok / secs : 0.0,
                      "setup_us", hist_json(&b->setup)));
    } else {
        json_object_set_new(
            o, "connections",
            json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:o}", "target", (json_int_t)b->target,
                      "ready", (json_int_t)b->ready, "failed", (json_int_t)b->failed, "dropped",
                      (json_int_t)b->dropped, "ramp_seconds", ramp_s, "connects_per_second",
                      ramp_s > 0 ? (double)b->ready / ramp_s : 0.0, "setup_us",
                      hist_json(&b->setup)));
        if (b->nsrc > 0)
            json_object_set_new(json_object_get(o, "connections"), "sources", sources_json(b));
    }
    if (b->o.scenario == SC_FANOUT) {
        double win = b->o.duration - b->o.warmup;
        double run = b->o.duration;
        uint64_t expected = b->acked * b->subs_at_start;
        json_object_set_new(o, "subscribers", json_integer((json_int_t)b->subs_at_start));
        json_object_set_new(o, "publications",
                            json_pack("{s:f, s:I, s:I, s:I, s:I, s:f, s:I}", "rate_target",
                                      b->o.rate, "sent", (json_int_t)b->sent, "acknowledged",
                                      (json_int_t)b->acked, "errors", (json_int_t)b->pub_errors,
                                      "unanswered", (json_int_t)b->inflight, "per_second",
                                      run > 0 ? (double)b->sent / run : 0.0, "backlog_waits",
                                      (json_int_t)b->backlog_waits));
        json_object_set_new(
            o, "deliveries",
            json_pack(
                "{s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:I}", "total", (json_int_t)b->deliveries,
                "in_window", (json_int_t)b->deliveries_win, "window_seconds", win, "per_second",
                win > 0 ? (double)b->deliveries_win / win : 0.0, "expected", (json_int_t)expected,
                "missing", (json_int_t)(expected > b->deliveries ? expected - b->deliveries : 0),
                "reordered", (json_int_t)b->reordered, "untimed", (json_int_t)b->untimed));
        json_object_set_new(o, "latency_us", hist_json(&b->lat));
    }
    if (b->o.scenario == SC_IDLE)
        json_object_set_new(o, "held_seconds", json_real(b->o.duration));
    json_object_set_new(o, "client_cpu_percent", json_real(cpu_percent(b)));
    json_object_set_new(o, "errors",
                        json_pack("{s:I, s:o, s:I, s:I}", "total", (json_int_t)b->errs.total,
                                  "kinds", errs, "parse_errors", (json_int_t)b->parse_errors,
                                  "unexpected", (json_int_t)b->unexpected));
    json_object_set_new(o, "pings_answered", json_integer((json_int_t)b->pings));
    return o;
}

static double jnum(json_t *o, const char *path)
{
    /* path: "a.b": a nested number, 0 when absent. */
    char key[64];
    const char *dot = strchr(path, '.');
    if (dot) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        return jnum(json_object_get(o, key), dot + 1);
    }
    return json_number_value(json_object_get(o, path));
}

static void print_human(json_t *r, const bench *b)
{
    printf("sluice bench ws: %s, %s, %s\n", json_string_value(json_object_get(r, "scenario")),
           json_string_value(json_object_get(r, "proto")), b->url.path);
    if (b->o.publish_url)
        printf("  publisher on %s%s, subscribers on %s%s\n", b->pub_url.host, b->pub_url.path,
               b->url.host, b->url.path);
    if (b->o.scenario == SC_CONNECT) {
        printf("  authenticated connects: %.0f in %.1f s = %.0f/s (concurrency %zu), failed %.0f\n",
               jnum(r, "connect.authenticated"), b->o.duration, jnum(r, "connect.per_second"),
               b->o.concurrency, jnum(r, "connect.failed"));
        printf("  setup time (TCP connect to connect reply) us: p50 %.0f  p99 %.0f  max %.0f\n",
               jnum(r, "connect.setup_us.p50"), jnum(r, "connect.setup_us.p99"),
               jnum(r, "connect.setup_us.max"));
    } else {
        printf("  connections: %.0f ready of %.0f (failed %.0f, dropped later %.0f) in %.2f s = "
               "%.0f connects/s\n",
               jnum(r, "connections.ready"), jnum(r, "connections.target"),
               jnum(r, "connections.failed"), jnum(r, "connections.dropped"),
               jnum(r, "connections.ramp_seconds"), jnum(r, "connections.connects_per_second"));
        json_t *src = json_object_get(json_object_get(r, "connections"), "sources");
        for (size_t i = 0; i < json_array_size(src); i++)
            printf("    from %s: %lld ready\n",
                   json_string_value(json_object_get(json_array_get(src, i), "address")),
                   (long long)json_integer_value(json_object_get(json_array_get(src, i), "ready")));
    }
    if (b->o.scenario == SC_FANOUT && b->t0 == 0) {
        printf("  no publications: %s\n",
               b->ready == 0 ? "no subscriber connected" : "the publisher could not connect");
    } else if (b->o.scenario == SC_FANOUT) {
        printf("  publications: sent %.0f (%.0f/s, target %s), acknowledged %.0f, errors %.0f, "
               "unanswered %.0f\n",
               jnum(r, "publications.sent"), jnum(r, "publications.per_second"),
               b->o.rate > 0 ? "fixed" : "max", jnum(r, "publications.acknowledged"),
               jnum(r, "publications.errors"), jnum(r, "publications.unanswered"));
        printf("  deliveries: %.0f of %.0f expected (%.0f subscribers), missing %.0f, "
               "reordered %.0f\n",
               jnum(r, "deliveries.total"), jnum(r, "deliveries.expected"), jnum(r, "subscribers"),
               jnum(r, "deliveries.missing"), jnum(r, "deliveries.reordered"));
        printf("  deliveries/s over %.1f s after %.1f s warm-up: %.0f\n",
               jnum(r, "deliveries.window_seconds"), b->o.warmup, jnum(r, "deliveries.per_second"));
        printf("  latency us (publish to delivery, %.0f samples): p50 %.0f  p90 %.0f  p99 %.0f  "
               "p99.9 %.0f  max %.0f\n",
               jnum(r, "latency_us.count"), jnum(r, "latency_us.p50"), jnum(r, "latency_us.p90"),
               jnum(r, "latency_us.p99"), jnum(r, "latency_us.p999"), jnum(r, "latency_us.max"));
    }
    if (b->o.scenario == SC_IDLE)
        printf("  held %.0f connections for %.1f s\n", jnum(r, "connections.ready"), b->o.duration);
    printf("  client CPU: %.0f%% of one core\n", jnum(r, "client_cpu_percent"));
    printf("  errors: %.0f", jnum(r, "errors.total"));
    json_t *kinds = json_object_get(json_object_get(r, "errors"), "kinds");
    const char *k;
    json_t *v;
    json_object_foreach(kinds, k, v)
    {
        printf("; %s: %lld", k, (long long)json_integer_value(v));
    }
    printf("  (parse errors %.0f, unexpected %.0f)\n", jnum(r, "errors.parse_errors"),
           jnum(r, "errors.unexpected"));
    fflush(stdout);
}

static void close_timer(uv_timer_t *t)
{
    if (!uv_is_closing((uv_handle_t *)t))
        uv_close((uv_handle_t *)t, NULL);
}

static void finish(bench *b)
{
    if (b->phase == PH_DONE)
        return;
    if (b->t_cpu1 == 0) {
        getrusage(RUSAGE_SELF, &b->ru1);
        b->t_cpu1 = sl__bench_ws_now();
    }
    if (b->t_ramp1 == 0)
        b->t_ramp1 = sl__bench_ws_now();
    b->phase = PH_DONE;
    uv_timer_stop(&b->tick);
    uv_timer_stop(&b->sweep);
    close_timer(&b->tick);
    close_timer(&b->sweep);
    for (bconn *c = b->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state != CS_DEAD) {
            /* Not failures: the tool is done with them. */
            c->state = CS_CLOSING;
            sl__bench_ws_conn_close(c);
        }
    }
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Tokens may only hold the characters of base64url JWTs and opaque API keys, so they can be put in
 * a JSON string or a NATS CONNECT without escaping. */
static int token_safe(const char *t)
{
    for (; *t; t++)
        if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') ||
              strchr("-_.~+/=", *t) != NULL))
            return 0;
    return 1;
}

static int bench_opt(void *ud, int opt, const char *arg)
{
    bench_opts *o = ud;
    const char *cmd = "bench ws";
    size_t n;
    double d;
    switch (opt) {
    case OPT_SCENARIO:
        if (!strcmp(arg, "fanout"))
            o->scenario = SC_FANOUT;
        else if (!strcmp(arg, "idle"))
            o->scenario = SC_IDLE;
        else if (!strcmp(arg, "connect"))
            o->scenario = SC_CONNECT;
        else
            return sl__cli_usage_error(cmd, "--scenario must be fanout, idle or connect");
        return 0;
    case OPT_PROTO:
        if (!strcmp(arg, "centrifugo"))
            o->proto = PR_CENTRIFUGO;
        else if (!strcmp(arg, "nats"))
            o->proto = PR_NATS;
        else
            return sl__cli_usage_error(cmd, "--proto must be centrifugo or nats");
        return 0;
    case OPT_CONNECTIONS:
    case OPT_INFLIGHT:
    case OPT_CONCURRENCY:
    case OPT_RAMP:
        if (sl__cli_parse_count(arg, &n) < 0 || n < 1 || n > 1000000)
            return sl__cli_usage_error(cmd, "expected a count from 1 to 1000000, not '%s'", arg);
        if (opt == OPT_CONNECTIONS)
            o->connections = n;
        else if (opt == OPT_INFLIGHT)
            o->inflight = n;
        else if (opt == OPT_CONCURRENCY)
            o->concurrency = n;
        else
            o->ramp = n;
        return 0;
    case OPT_RATE:
        if (sl__cli_parse_number(arg, &d) < 0 || d > 1e8)
            return sl__cli_usage_error(cmd, "--rate must be a number of publications per second");
        o->rate = d;
        return 0;
    case OPT_DURATION:
    case OPT_WARMUP:
        if (sl__cli_parse_duration(arg, &d) < 0 || d > 86400)
            return sl__cli_usage_error(cmd, "expected a duration in seconds, not '%s'", arg);
        if (opt == OPT_DURATION)
            o->duration = d;
        else
            o->warmup = d;
        return 0;
    case OPT_CHANNEL:
        if (sl__cli_check_channel(cmd, arg) != 0)
            return SL__EXIT_USAGE;
        o->channel = arg;
        return 0;
    case OPT_PATH:
        if (arg[0] != '/' || strlen(arg) > 512 || strpbrk(arg, " \r\n\t") != NULL)
            return sl__cli_usage_error(cmd, "--path must start with '/' and hold no spaces");
        o->path = arg;
        return 0;
    case OPT_SECRET_FILE:
        o->secret_file = arg;
        return 0;
    case OPT_PUBLISH_URL:
        o->publish_url = arg;
        return 0;
    case OPT_SOURCE:
        o->sources = arg;
        return 0;
    case OPT_JSON:
        o->json = 1;
        return 0;
    }
    return SL__EXIT_USAGE;
}

/* Splits opt's URL (--url or --publish-url) into *u and resolves its host into *addr. Returns an
 * exit code. */
static int resolve_url(const bench *b, const char *opt, const char *url, sl__bench_url *u,
                       struct sockaddr_storage *addr)
{
    const char *why;
    if (sl__bench_url_parse(url, b->o.proto == PR_NATS, b->o.path, u, &why) < 0)
        return sl__cli_usage_error("bench ws", "%s '%s': %s", opt, url, why);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(u->name, u->port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        sl__cli_err("cannot resolve '%s': %s", u->name, gai_strerror(rc));
        return SL__EXIT_UNAVAIL;
    }
    memcpy(addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

/* --source's comma-separated IP literals into b->src, each of the server address's family.
 * Returns an exit code. */
static int parse_sources(bench *b, const char *list)
{
    const char *cmd = "bench ws";
    for (const char *p = list;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char ip[64];
        if (n == 0 || n >= sizeof ip)
            return sl__cli_usage_error(cmd, "--source: expected IP addresses separated by commas");
        if (b->nsrc == MAX_SOURCES)
            return sl__cli_usage_error(cmd, "--source: at most %d addresses", MAX_SOURCES);
        memcpy(ip, p, n);
        ip[n] = '\0';
        struct sockaddr_storage *a = &b->src[b->nsrc];
        int family = b->addr.ss_family;
        int ok = family == AF_INET6 ? uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)a) == 0
                                    : uv_ip4_addr(ip, 0, (struct sockaddr_in *)a) == 0;
        if (!ok)
            return sl__cli_usage_error(cmd, "--source: '%s' is not an %s address", ip,
                                       family == AF_INET6 ? "IPv6" : "IPv4");
        b->nsrc++;
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

/* The per-connection signing key, from --secret-file or the environment. Returns an exit code. */
static int load_keyring(bench *b, const char *file)
{
    size_t len = 0;
    char *s;
    if (file) {
        if ((s = sl__cli_read_file(file, 65536, &len)) == NULL) {
            sl__cli_err("cannot read secret file '%s': %s", file,
                        errno == EFBIG ? "too large" : strerror(errno));
            return SL__EXIT_FAIL;
        }
        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
            s[--len] = '\0';
    } else {
        const char *env = getenv("SLUICE_JWT_SECRET");
        if ((s = strdup(env)) == NULL)
            return SL__EXIT_FAIL;
        len = strlen(s);
    }
    int rc = sl_jwt_keyring_new(&b->kr);
    if (rc == SL_OK)
        rc = sl_jwt_keyring_add_hs256(b->kr, NULL, s, len);
    sl__cli_wipe_free(s, len);
    if (rc != SL_OK) {
        sl__cli_err("cannot use the secret: %s",
                    rc == SL_EWEAKKEY ? "shorter than 32 bytes" : sl_strerror(rc));
        return rc == SL_EWEAKKEY ? SL__EXIT_USAGE : SL__EXIT_FAIL;
    }
    return 0;
}

static void raise_nofile(size_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want + 32)
        sl__cli_err("warning: open-file limit %llu is below %zu connections; raise 'ulimit -n'",
                    (unsigned long long)rl.rlim_cur, want);
}

static int run_ws(int argc, char **argv, sl__cli_conn *conn)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"scenario", required_argument, NULL, OPT_SCENARIO},
                                         {"connections", required_argument, NULL, OPT_CONNECTIONS},
                                         {"channel", required_argument, NULL, OPT_CHANNEL},
                                         {"rate", required_argument, NULL, OPT_RATE},
                                         {"inflight", required_argument, NULL, OPT_INFLIGHT},
                                         {"duration", required_argument, NULL, OPT_DURATION},
                                         {"warmup", required_argument, NULL, OPT_WARMUP},
                                         {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
                                         {"ramp", required_argument, NULL, OPT_RAMP},
                                         {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
                                         {"proto", required_argument, NULL, OPT_PROTO},
                                         {"path", required_argument, NULL, OPT_PATH},
                                         {"publish-url", required_argument, NULL, OPT_PUBLISH_URL},
                                         {"source", required_argument, NULL, OPT_SOURCE},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         SL__CLI_CONN_OPTS,
                                         {0}};
    const char *cmd = "bench ws";
    bench_opts o = {.scenario = SC_FANOUT,
                    .connections = 1000,
                    .inflight = 64,
                    .concurrency = 50,
                    .ramp = 200,
                    .rate = 1000,
                    .duration = 10,
                    .warmup = 1,
                    .channel = "bench"};
    const char *env_token = getenv("SLUICE_TOKEN");
    int r = sl__cli_getopt(cmd, argc, argv, opts, bench_usage, conn, bench_opt, &o);
    if (r >= 0)
        return r;
    if (argc - optind != 0)
        return sl__cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o.duration <= 0)
        return sl__cli_usage_error(cmd, "--duration must be above 0");
    if (o.scenario == SC_FANOUT && o.warmup >= o.duration)
        return sl__cli_usage_error(cmd, "--warmup must be shorter than --duration");
    if (o.publish_url && o.scenario != SC_FANOUT)
        return sl__cli_usage_error(cmd, "--publish-url is for the fanout scenario");

    bench *b = calloc(1, sizeof *b);
    if (b == NULL) {
        sl__cli_err("out of memory");
        return SL__EXIT_FAIL;
    }
    b->o = o;
    r = resolve_url(b, "--url", conn->url, &b->url, &b->addr);
    if (r == 0 && o.publish_url)
        r = resolve_url(b, "--publish-url", o.publish_url, &b->pub_url, &b->pub_addr);
    else if (r == 0) {
        b->pub_url = b->url;
        b->pub_addr = b->addr;
    }
    if (r == 0 && o.sources)
        r = parse_sources(b, o.sources);
    /* Credentials: an explicit --secret-file mints; then a token given on the command line (or
     * with --token-file); then SLUICE_JWT_SECRET mints; then SLUICE_TOKEN; else anonymous. */
    const char *secret_env = getenv("SLUICE_JWT_SECRET");
    int explicit_token = conn->token != NULL && conn->token != env_token;
    if (r == 0 && (o.secret_file || (!explicit_token && secret_env && *secret_env)))
        r = load_keyring(b, o.secret_file);
    else if (r == 0 && conn->token != NULL && *conn->token != '\0') {
        if (!token_safe(conn->token) || strlen(conn->token) > SL_JWT_MAX_LEN)
            r = sl__cli_usage_error(cmd, "the token holds characters a token cannot have");
        b->token = conn->token;
    }
    if (r == 0 && o.proto == PR_NATS && (b->ring = calloc(NATS_RING, sizeof *b->ring)) == NULL)
        r = SL__EXIT_FAIL;
    if (r != 0) {
        sl_jwt_keyring_free(b->kr);
        free(b);
        return r;
    }
    b->timeout_ns = (uint64_t)conn->timeout_ms * 1000000ull;
    b->next_id = 3;
    unsigned char seed[8];
    if (RAND_bytes(seed, sizeof seed) != 1)
        memcpy(seed, &(uint64_t){sl__bench_ws_now()}, 8);
    memcpy(&b->rng, seed, 8);
    b->rng |= 1; /* xorshift must not start at zero */
    sl__bench_hist_init(&b->lat);
    sl__bench_hist_init(&b->setup);
    sl__bench_errs_init(&b->errs);
    /* A peer that closes while we write must be an error code, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(o.scenario == SC_CONNECT ? o.concurrency : o.connections + 1);

    uv_loop_init(&b->loop);
    uv_timer_init(&b->loop, &b->tick);
    uv_timer_init(&b->loop, &b->sweep);
    b->tick.data = b->sweep.data = b;
    uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_start(&b->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    b->t_ramp0 = sl__bench_ws_now();
    if (o.scenario == SC_CONNECT) {
        b->phase = PH_RUN;
        b->t0 = b->t_ramp0;
        b->t_end = b->t0 + (uint64_t)(o.duration * 1e9);
        getrusage(RUSAGE_SELF, &b->ru0);
        b->t_cpu0 = b->t0;
        for (size_t i = 0; i < o.concurrency && b->phase == PH_RUN; i++)
            sl__bench_ws_conn_start(b, R_CYCLE);
    } else {
        b->phase = PH_RAMP;
        b->target = o.connections;
        getrusage(RUSAGE_SELF, &b->ru0);
        b->t_cpu0 = b->t_ramp0;
        sl__bench_ws_progress(b);
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);

    json_t *rep = report_json(b);
    int connected = o.scenario == SC_CONNECT ? b->cycles_ok > 0 : b->ready > 0;
    r = connected ? SL__EXIT_OK : SL__EXIT_UNAVAIL;
    if (rep == NULL) {
        sl__cli_err("out of memory");
        r = SL__EXIT_FAIL;
    } else if (o.json) {
        /* Ten significant digits: jansson's default of 17 only prints noise for these figures. */
        char *text = json_dumps(rep, JSON_COMPACT | JSON_REAL_PRECISION(10));
        json_decref(rep);
        if (text == NULL || puts(text) == EOF || fflush(stdout) == EOF) {
            sl__cli_err("cannot write the report");
            r = SL__EXIT_FAIL;
        }
        free(text);
    } else {
        print_human(rep, b);
        json_decref(rep);
    }
    if (!connected)
        sl__cli_err("no connection could be established (see the errors)");
    uv_loop_close(&b->loop);
    sl_jwt_keyring_free(b->kr);
    free(b->ring);
    free(b->scratch);
    free(b);
    return r;
}

int sl__cli_cmd_bench(int argc, char **argv, sl__cli_conn *conn)
{
    if (argc < 2)
        return sl__cli_usage_error("bench", "expected a benchmark: ws or queue");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(bench_usage, stdout);
        return SL__EXIT_OK;
    }
    if (!strcmp(sub, "ws"))
        return run_ws(argc - 1, argv + 1, conn);
    if (!strcmp(sub, "queue")) {
#ifdef SLUICE_BENCH_QUEUE
        return sl__cli_cmd_bench_queue(argc - 1, argv + 1, conn);
#else
        sl__cli_err("bench queue: this sluice was built without libnats and librabbitmq "
                    "(scripts/deps --bench installs them; then re-run cmake)");
        return SL__EXIT_FAIL;
#endif
    }
    return sl__cli_usage_error("bench", "unknown benchmark 'bench %s'", sub);
}
