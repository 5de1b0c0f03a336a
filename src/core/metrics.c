/* The metrics registry and its Prometheus text renderer (core/metrics.h). The registry's label
 * sets are fixed arrays, so rendering walks them and leaves out the series that never moved (a
 * counter absent from the output is zero); the histograms of operations never used are left out
 * the same way. Label values are escaped here once for every caller: a channel id or a collector's
 * text never breaks the format. */
#include "core/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/error.h>
#include <sluice/sluice.h>

static const int statuses[SL__M_NSTATUS - 1] = {200, 201, 202, 204, 400, 401, 403, 404, 405,
                                                408, 409, 413, 429, 431, 500, 502, 503, 507};

/* In the order of sl__eop_kind (store/engine.h); the store layer is above this one. */
static const char *const eop_names[SL__M_NEOP] = {
    "create", "drop",      "info",         "list",         "append",      "claim",    "ack",
    "nack",   "read",      "clear",        "evict",        "remove",      "position", "sync",
    "extend", "terminate", "presence_set", "presence_del", "presence_get"};

static const int disc_codes[SL__M_NDISC] = {1000, 1001, 1009, 3000, 3001, 3004, 3005,
                                            3006, 3008, 3009, 3012, 3013, 3500, 3501,
                                            3502, 3503, 3504, 3505, 3507, 3508, 3509};

static const char *const auth_outcomes[SL__M_AUTH_COUNT] = {"ok",      "missing", "invalid",
                                                            "expired", "revoked", "unavailable"};
static const char *const rev_outcomes[SL__M_REV_COUNT] = {"ok", "revoked", "error"};

int sl__metrics_new(sl__metrics **out, double started)
{
    sl__metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return SL_ENOMEM;
    m->started = started;
    m->top_channels = 20;
    *out = m;
    return SL_OK;
}

void sl__metrics_free(sl__metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->ncollectors; i++)
        if (m->collectors[i].free_ud)
            m->collectors[i].free_ud(m->collectors[i].ud);
    free(m);
}

int sl__metrics_add_collector(sl__metrics *m, void (*fn)(void *ud, struct sl__mtext *t), void *ud,
                              void (*free_ud)(void *ud))
{
    if (m->ncollectors == SL__M_MAX_COLLECTORS) {
        if (free_ud)
            free_ud(ud);
        return SL_ELIMIT;
    }
    m->collectors[m->ncollectors++] = (sl__metrics_collector){fn, ud, free_ud};
    return SL_OK;
}

int sl__metrics_status_slot(int status)
{
    for (int i = 0; i < SL__M_NSTATUS - 1; i++)
        if (statuses[i] == status)
            return i;
    return SL__M_NSTATUS - 1;
}

void sl__metrics_authn(sl__metrics *m, int status, const sl_identity *who, const char *reason)
{
    if (m == NULL)
        return;
    int src = who && status == SL_OK && (int)who->source >= 0 && who->source <= SL_SOURCE_CERT
                  ? (int)who->source
                  : SL__M_NSOURCE - 1;
    int out = SL__M_AUTH_INVALID;
    if (status == SL_OK)
        out = SL__M_AUTH_OK;
    else if (status == SL_EUNAUTH)
        out = SL__M_AUTH_MISSING;
    else if (status == SL_EEXPIRED)
        out = SL__M_AUTH_EXPIRED;
    else if (status == SL_EUNAVAIL)
        out = SL__M_AUTH_UNAVAILABLE;
    else if (reason && !strcmp(reason, "token revoked"))
        out = SL__M_AUTH_REVOKED;
    m->authn[src][out]++;
}

void sl__metrics_engine(sl__metrics *m, int kind, int rc, double seconds)
{
    if (m == NULL || kind < 0 || kind >= SL__M_NEOP)
        return;
    sl__histo_observe(&m->engine_seconds[kind], seconds);
    /* The store failing, not the caller's request (a missing channel, a full queue) */
    if (rc == SL_ESTORAGE || rc == SL_EUNAVAIL || rc == SL_EIO || rc == SL_ENOMEM ||
        rc == SL_EINTERNAL || rc == SL_EFORMAT)
        m->engine_errors[kind]++;
}

void sl__metrics_ws_disconnect(sl__metrics *m, int code)
{
    if (m == NULL)
        return;
    int i = 0;
    while (i < SL__M_NDISC && disc_codes[i] != code)
        i++;
    m->ws_disconnects[i]++;
}

/* ---- text ------------------------------------------------------------------------------------ */

static void put(sl__mtext *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *d = realloc(t->data, cap);
        if (d == NULL) {
            t->oom = 1;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void puts_(sl__mtext *t, const char *s)
{
    put(t, s, strlen(s));
}

static void putf(sl__mtext *t, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void sl__mtext_free(sl__mtext *t)
{
    free(t->data);
    memset(t, 0, sizeof *t);
}

void sl__mtext_escape(sl__mtext *t, const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '\\')
            puts_(t, "\\\\");
        else if (*p == '"')
            puts_(t, "\\\"");
        else if (*p == '\n')
            puts_(t, "\\n");
        else if (*p < 0x20 || *p >= 0x7f) /* channel ids are ASCII: never valid here */
            puts_(t, "\xef\xbf\xbd");
        else
            put(t, (const char *)p, 1);
    }
}

void sl__mtext_family(sl__mtext *t, const char *name, const char *type, const char *help)
{
    putf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_value(sl__mtext *t, double v)
{
    if (v == (double)(int64_t)v && v < 9e15 && v > -9e15)
        putf(t, " %lld\n", (long long)v);
    else
        putf(t, " %.17g\n", v);
}

void sl__mtext_sample(sl__mtext *t, const char *name, const char *const *labels, double v)
{
    puts_(t, name);
    if (labels && labels[0]) {
        put(t, "{", 1);
        for (size_t i = 0; labels[i]; i += 2) {
            if (i)
                put(t, ",", 1);
            puts_(t, labels[i]);
            put(t, "=\"", 2);
            sl__mtext_escape(t, labels[i + 1] ? labels[i + 1] : "");
            put(t, "\"", 1);
        }
        put(t, "}", 1);
    }
    put_value(t, v);
}

void sl__mtext_histo(sl__mtext *t, const char *name, const char *lname, const char *lvalue,
                     const sl__histo *h)
{
    char n[128];
    uint64_t cum = 0;
    snprintf(n, sizeof n, "%s_bucket", name);
    for (size_t i = 0; i <= SL__M_NBUCKETS; i++) {
        char le[32];
        cum += h->b[i];
        if (i < SL__M_NBUCKETS)
            snprintf(le, sizeof le, "%g", sl__m_bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        const char *l[] = {lname ? lname : "le", lname ? lvalue : le, lname ? "le" : NULL, le,
                           NULL};
        sl__mtext_sample(t, n, l, (double)cum);
    }
    const char *l[] = {lname, lvalue, NULL};
    snprintf(n, sizeof n, "%s_sum", name);
    sl__mtext_sample(t, n, lname ? l : NULL, h->sum);
    snprintf(n, sizeof n, "%s_count", name);
    sl__mtext_sample(t, n, lname ? l : NULL, (double)h->count);
}

/* ---- the registry's families ----------------------------------------------------------------- */

static const char *op_name(size_t op)
{
    return op < SL_OP__COUNT ? sl_op_lookup((sl_op)op)->name : "none";
}

static const char *source_name(size_t s)
{
    /* "none" is the refusals' slot: an anonymous identity is named apart */
    return s == SL_SOURCE_NONE     ? "anonymous"
           : s < SL__M_NSOURCE - 1 ? sl_source_name((sl_source)s)
                                   : "none";
}

static void render_http(const sl__metrics *m, sl__mtext *t)
{
    sl__mtext_family(t, "sluice_http_requests_total", "counter",
                     "HTTP requests answered, by operation (none: no route) and status.");
    for (size_t op = 0; op <= SL_OP__COUNT; op++)
        for (size_t s = 0; s < SL__M_NSTATUS; s++) {
            if (m->requests[op][s] == 0)
                continue;
            char code[16];
            snprintf(code, sizeof code, "%d", s < SL__M_NSTATUS - 1 ? statuses[s] : 0);
            const char *l[] = {"op", op_name(op), "status", s < SL__M_NSTATUS - 1 ? code : "other",
                               NULL};
            sl__mtext_sample(t, "sluice_http_requests_total", l, (double)m->requests[op][s]);
        }
    sl__mtext_family(t, "sluice_http_request_duration_seconds", "histogram",
                     "Time from a request's arrival at the router to its answer, by operation.");
    for (size_t op = 0; op <= SL_OP__COUNT; op++)
        if (m->request_seconds[op].count)
            sl__mtext_histo(t, "sluice_http_request_duration_seconds", "op", op_name(op),
                            &m->request_seconds[op]);
}

static void render_security(const sl__metrics *m, sl__mtext *t)
{
    sl__mtext_family(t, "sluice_authentications_total", "counter",
                     "Authentication verdicts (HTTP and WebSocket), by authenticator and outcome.");
    for (size_t s = 0; s < SL__M_NSOURCE; s++)
        for (size_t o = 0; o < SL__M_AUTH_COUNT; o++)
            if (m->authn[s][o]) {
                const char *l[] = {"authenticator", source_name(s), "outcome", auth_outcomes[o],
                                   NULL};
                sl__mtext_sample(t, "sluice_authentications_total", l, (double)m->authn[s][o]);
            }
    sl__mtext_family(t, "sluice_authorization_denials_total", "counter",
                     "Authorisation denials (403), by operation.");
    for (size_t op = 0; op < SL_OP__COUNT; op++)
        if (m->denials[op]) {
            const char *l[] = {"op", op_name(op), NULL};
            sl__mtext_sample(t, "sluice_authorization_denials_total", l, (double)m->denials[op]);
        }
    sl__mtext_family(t, "sluice_revocation_checks_total", "counter",
                     "Revocation store checks of accepted credentials, by outcome (error: the "
                     "store could not answer).");
    for (size_t o = 0; o < SL__M_REV_COUNT; o++) {
        const char *l[] = {"outcome", rev_outcomes[o], NULL};
        sl__mtext_sample(t, "sluice_revocation_checks_total", l, (double)m->revocation[o]);
    }
    sl__mtext_family(t, "sluice_broker_tokens_total", "counter",
                     "Token broker answers: tokens issued and requests denied (403).");
    static const char *const bops[2] = {"issue", "delegate"}, *const bouts[2] = {"issued",
                                                                                 "denied"};
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 2; j++) {
            const char *l[] = {"op", bops[i], "outcome", bouts[j], NULL};
            sl__mtext_sample(t, "sluice_broker_tokens_total", l, (double)m->broker[i][j]);
        }
}

static void render_engine(const sl__metrics *m, sl__mtext *t)
{
    sl__mtext_family(t, "sluice_engine_request_duration_seconds", "histogram",
                     "Store engine requests of the channel API, by kind (the loop's clock: "
                     "millisecond resolution).");
    for (size_t k = 0; k < SL__M_NEOP; k++)
        if (m->engine_seconds[k].count)
            sl__mtext_histo(t, "sluice_engine_request_duration_seconds", "op", eop_names[k],
                            &m->engine_seconds[k]);
    sl__mtext_family(t, "sluice_engine_errors_total", "counter",
                     "Store engine requests that failed in the store (storage, unavailable, I/O).");
    for (size_t k = 0; k < SL__M_NEOP; k++)
        if (m->engine_errors[k]) {
            const char *l[] = {"op", eop_names[k], NULL};
            sl__mtext_sample(t, "sluice_engine_errors_total", l, (double)m->engine_errors[k]);
        }
    sl__mtext_family(t, "sluice_dead_letters_total", "counter",
                     "Messages moved to a dead-letter queue (or dropped for want of one).");
    sl__mtext_sample(t, "sluice_dead_letters_total", NULL, (double)m->dead_letters);
}

static void render_ws(const sl__metrics *m, sl__mtext *t)
{
    sl__mtext_family(t, "sluice_ws_connections_total", "counter", "WebSocket sessions opened.");
    sl__mtext_sample(t, "sluice_ws_connections_total", NULL, (double)m->ws_connections);
    sl__mtext_family(t, "sluice_ws_connections", "gauge", "WebSocket sessions open now.");
    sl__mtext_sample(t, "sluice_ws_connections", NULL, (double)m->ws_sessions);
    sl__mtext_family(t, "sluice_ws_subscriptions_total", "counter",
                     "WebSocket subscriptions made.");
    sl__mtext_sample(t, "sluice_ws_subscriptions_total", NULL, (double)m->ws_subscriptions);
    sl__mtext_family(t, "sluice_ws_subscriptions", "gauge", "WebSocket subscriptions open now.");
    sl__mtext_sample(t, "sluice_ws_subscriptions", NULL, (double)m->ws_subscribed);
    sl__mtext_family(t, "sluice_ws_deliveries_total", "counter",
                     "Publications pushed to WebSocket subscribers (one per subscriber).");
    sl__mtext_sample(t, "sluice_ws_deliveries_total", NULL, (double)m->ws_deliveries);
    sl__mtext_family(t, "sluice_ws_received_bytes_total", "counter",
                     "Bytes of WebSocket messages received.");
    sl__mtext_sample(t, "sluice_ws_received_bytes_total", NULL, (double)m->ws_bytes_in);
    sl__mtext_family(t, "sluice_ws_sent_bytes_total", "counter",
                     "Bytes of WebSocket messages sent (batched pushes and replies).");
    sl__mtext_sample(t, "sluice_ws_sent_bytes_total", NULL, (double)m->ws_bytes_out);
    sl__mtext_family(
        t, "sluice_ws_disconnects_total", "counter",
        "WebSocket sessions ended by the server, by close code (3008: slow consumer).");
    for (size_t i = 0; i <= SL__M_NDISC; i++)
        if (m->ws_disconnects[i]) {
            char code[16];
            snprintf(code, sizeof code, "%d", i < SL__M_NDISC ? disc_codes[i] : 0);
            const char *l[] = {"code", i < SL__M_NDISC ? code : "other", NULL};
            sl__mtext_sample(t, "sluice_ws_disconnects_total", l, (double)m->ws_disconnects[i]);
        }
    sl__mtext_family(t, "sluice_ws_slow_consumer_disconnects_total", "counter",
                     "WebSocket sessions closed because their output outgrew the bound (3008).");
    sl__mtext_sample(t, "sluice_ws_slow_consumer_disconnects_total", NULL,
                     (double)m->ws_disconnects[8]);
}

/* RSS and open descriptors from /proc (Linux); left out where they cannot be read. */
static void render_process(const sl__metrics *m, sl__mtext *t, double now)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, rss;
    if (f && fscanf(f, "%lu %lu", &size, &rss) == 2) {
        sl__mtext_family(t, "process_resident_memory_bytes", "gauge", "Resident memory size.");
        sl__mtext_sample(t, "process_resident_memory_bytes", NULL,
                         (double)rss * (double)sysconf(_SC_PAGESIZE));
        sl__mtext_family(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size.");
        sl__mtext_sample(t, "process_virtual_memory_bytes", NULL,
                         (double)size * (double)sysconf(_SC_PAGESIZE));
    }
    if (f)
        fclose(f);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        size_t n = 0;
        while (readdir(d))
            n++;
        closedir(d);
        sl__mtext_family(t, "process_open_fds", "gauge", "Open file descriptors.");
        sl__mtext_sample(t, "process_open_fds", NULL, (double)(n > 3 ? n - 3 : 0)); /* . .. dir */
    }
    sl__mtext_family(t, "process_start_time_seconds", "gauge",
                     "Start time of the process since the Unix epoch.");
    sl__mtext_sample(t, "process_start_time_seconds", NULL, m->started);
    sl__mtext_family(t, "sluice_uptime_seconds", "gauge", "Seconds since sluiced started.");
    sl__mtext_sample(t, "sluice_uptime_seconds", NULL, now > m->started ? now - m->started : 0);
    sl__mtext_family(t, "sluice_build_info", "gauge", "Build information (always 1).");
    const char *l[] = {"version", sl_version(), NULL};
    sl__mtext_sample(t, "sluice_build_info", l, 1);
}

int sl__metrics_render(const sl__metrics *m, sl__mtext *t, double now)
{
    render_http(m, t);
    render_security(m, t);
    render_engine(m, t);
    render_ws(m, t);
    for (size_t i = 0; i < m->ncollectors; i++)
        m->collectors[i].fn(m->collectors[i].ud, t);
    render_process(m, t, now);
    return t->oom ? SL_ENOMEM : SL_OK;
}
