/* The server object of http.h (its settings, the listening socket, closing) and how connections
 * get in; an accepted connection is then http.c's. The server accepts connections itself (a
 * uv_poll on the listening socket rather than uv_listen) so that it decides what happens when
 * descriptors run out: libuv would silently accept and close them; we give up a spare descriptor
 * kept for the purpose, accept, answer 503 and close. Each client address (IPv4 address or IPv6
 * /64) has counters of connections and of connections still in their headers, in a table hashed
 * with a per-server random key (addresses are chosen by the remote side), so one address cannot
 * take every slot with slow or silent connections. Refusals are logged at most once per interval
 * and kind, with a count. */
#include "net/http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sluice/error.h>

/* Connections refused with 503 still need a write and a close; past this many at once they are
 * just closed. */
#define MAX_REJECTING 1024
#define BACKLOG 511
/* Connections accepted per readiness callback before other work gets a turn. */
#define ACCEPT_BATCH 128
/* How long accepting pauses when it cannot make progress (no descriptor, not even the spare). */
#define ACCEPT_PAUSE_MS 100
/* Refusals are logged at most this often per kind, with a count. */
#define LOG_INTERVAL_MS 10000
/* Fewer connections than this (after the reserve) is not worth starting for. */
#define MIN_FIT_CONNECTIONS 16

void sl_http_limits_init(sl_http_limits *l)
{
    l->max_body = 1024 * 1024;
    l->max_header = 16 * 1024;
    l->request_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->max_connections = 10000;
    l->max_connections_per_address = 0;
    l->max_pending_per_address = 64;
    l->busy_header_timeout_ms = 2000;
}

/* ---- operational log --------------------------------------------------------------------------
 */

static void report_refusals(sl_http_server *s, rate_log *r)
{
    char line[320];
    snprintf(line, sizeof line, "%s: %zu connection(s) refused with 503 since the last report; %s",
             r->what, r->count, r->hint);
    s->log(s->log_ud, line);
    r->count = 0;
    uint64_t now = uv_now(s->loop);
    r->logged_at = now ? now : 1;
}

/* Counts one refusal of a kind; logs the first, then at most once per LOG_INTERVAL_MS with how many
 * there were since the last line (the rest when the server closes). */
static void note_refusal(sl_http_server *s, rate_log *r, const char *what, const char *hint)
{
    r->count++;
    r->what = what;
    r->hint = hint;
    uint64_t now = uv_now(s->loop);
    if (s->log != NULL && (r->logged_at == 0 || now - r->logged_at >= LOG_INTERVAL_MS))
        report_refusals(s, r);
}

/* ---- per-address accounting --------------------------------------------------------------------
 */

static void addr_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0)
            memcpy(key, a, 16); /* IPv4 through an IPv6 socket: the same client */
        else
            memcpy(key, a, 8); /* one /64 is what a single client is usually given */
    }
}

/* A keyed multiply-add hash (NH) over the key's four 32-bit words: without the random key a remote
 * party cannot choose addresses that collide. */
static size_t addr_hash(const sl_http_server *s, const unsigned char key[16])
{
    uint32_t w[4];
    memcpy(w, key, 16);
    uint64_t h = ((uint64_t)(uint32_t)(w[0] + (uint32_t)s->hkey[0]) *
                  (uint32_t)(w[1] + (uint32_t)s->hkey[1])) +
                 ((uint64_t)(uint32_t)(w[2] + (uint32_t)s->hkey[2]) *
                  (uint32_t)(w[3] + (uint32_t)s->hkey[3]));
    h ^= h >> 29;
    h *= s->hkey[0] >> 32 | 1;
    h ^= h >> 32;
    return (size_t)(h & (s->nbuckets - 1));
}

static addr_entry *addr_find(const sl_http_server *s, const unsigned char key[16])
{
    if (s->nbuckets == 0)
        return NULL;
    for (addr_entry *e = s->buckets[addr_hash(s, key)]; e != NULL; e = e->next)
        if (memcmp(e->key, key, 16) == 0)
            return e;
    return NULL;
}

static int addr_grow(sl_http_server *s)
{
    size_t n = s->nbuckets ? s->nbuckets * 2 : 64;
    addr_entry **nb = calloc(n, sizeof *nb);
    if (nb == NULL)
        return -1;
    addr_entry **old = s->buckets;
    size_t oldn = s->nbuckets;
    s->buckets = nb;
    s->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (addr_entry *e = old[i], *next; e != NULL; e = next) {
            next = e->next;
            size_t h = addr_hash(s, e->key);
            e->next = nb[h];
            nb[h] = e;
        }
    }
    free(old);
    return 0;
}

/* The entry for key, created with zero counts. NULL: out of memory. */
static addr_entry *addr_get(sl_http_server *s, const unsigned char key[16])
{
    addr_entry *e = addr_find(s, key);
    if (e != NULL)
        return e;
    if (s->naddrs >= s->nbuckets && addr_grow(s) != 0)
        return NULL;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, 16);
    size_t h = addr_hash(s, key);
    e->next = s->buckets[h];
    s->buckets[h] = e;
    s->naddrs++;
    return e;
}

void sl__http_addr_drop(sl_http_server *s, addr_entry *e)
{
    addr_entry **pp = &s->buckets[addr_hash(s, e->key)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    s->naddrs--;
    free(e);
}

/* ---- the server ------------------------------------------------------------------------------ */

static void peer_name(conn *c, const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(c->req.remote_addr, sizeof c->req.remote_addr, strchr(ip, ':') ? "[%s]:%d" : "%s:%d",
             ip, port);
}

/* Which limit, if any, refuses a new connection from key (before it is counted). */
static rate_log *refusal(sl_http_server *s, const unsigned char key[16], const char **what,
                         const char **hint)
{
    const sl_http_limits *l = &s->lim;
    if (l->max_connections > 0 && s->nconns >= l->max_connections) {
        *what = "max_connections reached";
        *hint = "raise max_connections (and the open-file limit) if this is legitimate load";
        return &s->log_max;
    }
    const addr_entry *e = addr_find(s, key);
    if (e == NULL)
        return NULL;
    if (l->max_connections_per_address > 0 && e->conns >= l->max_connections_per_address) {
        *what = "max_connections_per_address reached";
        *hint = "one client address holds that many connections (behind a proxy, raise or unset "
                "max_connections_per_address)";
        return &s->log_addr;
    }
    return NULL;
}

/* Takes an accepted socket: a new connection, or one that is answered 503 and closed. */
static void accept_conn(sl_http_server *s, int fd, const struct sockaddr_storage *ss)
{
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c->wreq.data = c;
    c->refs = 2;
    c->srv = s;
    c->tmode = T_NONE;
    sl__http_parser_init(&c->parser, s->lim.max_body, s->lim.max_header);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    unsigned char key[16];
    addr_key(ss, key);
    const char *what = NULL, *hint = NULL;
    rate_log *refused = refusal(s, key, &what, &hint);
    if (refused == NULL && (c->addr = addr_get(s, key)) == NULL)
        refused = &s->log_max; /* out of memory: treat as full */
    if (refused != NULL) {
        c->rejected = 1;
        s->nrejecting++;
    } else {
        s->nconns++;
        c->addr->conns++;
        c->addr->pending++;
        c->pending = 1;
    }
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        sl__http_conn_close(c);
        return;
    }
    if (refused != NULL) {
        note_refusal(s, refused, what ? what : "out of memory", hint ? hint : "");
        if (s->nrejecting > MAX_REJECTING)
            sl__http_conn_close(c);
        else
            sl__http_conn_fail(c, 503, sl_err_name(SL_EUNAVAIL), "too many connections");
        return;
    }
    if (s->tls != NULL && ((c->treq = malloc(sizeof *c->treq)) == NULL ||
                           sl__tls_new(&c->tls, s->tls, s->tls_client) != SL_OK)) {
        sl__http_conn_close(c);
        return;
    }
    if (c->treq != NULL)
        c->treq->data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c, ss);
    if (!s->busy)
        sl__http_busy_check(s);
    /* Read what has already arrived before deciding whether the connection is still in its
     * headers: a burst of clients whose requests are on their way is not a slowloris. */
    ssize_t n = recv(fd, s->rbuf, sizeof s->rbuf, 0);
    if (n >= 0) {
        uv_buf_t b = uv_buf_init(s->rbuf, (unsigned)n);
        sl__http_on_read((uv_stream_t *)&c->tcp, n > 0 ? n : UV_EOF, &b);
    }
    if (!c->closing && c->pending && s->lim.max_pending_per_address > 0 &&
        c->addr->pending > s->lim.max_pending_per_address) {
        note_refusal(s, &s->log_pending, "max_pending_per_address reached",
                     "one client address holds that many connections without a complete request "
                     "head (slowloris?)");
        /* From here on it is one of the connections being refused: it holds no slot of
         * max_connections or of its address while its answer goes out. */
        c->pending = 0;
        c->addr->pending--;
        if (--c->addr->conns == 0)
            sl__http_addr_drop(s, c->addr);
        c->addr = NULL;
        s->nconns--;
        c->rejected = 1;
        s->nrejecting++;
        if (s->nrejecting > MAX_REJECTING)
            sl__http_conn_close(c);
        else
            sl__http_conn_fail(c, 503, sl_err_name(SL_EUNAVAIL), "too many connections");
        return;
    }
    sl__http_settle(c);
}

/* Out of descriptors: the connection at the head of the backlog is taken with the spare descriptor,
 * told 503 and closed, and the spare taken back. The answer is written straight away on the
 * blocking socket's empty send buffer (MSG_DONTWAIT: never waits); whatever the client already
 * sent is read first so that closing does not turn into a reset that could destroy the answer.
 * Returns 0 if accepting may go on, 1 if the backlog is empty (the kernel says EMFILE before it
 * looks at the backlog), -1 if accepting should pause. */
static int refuse_without_fd(sl_http_server *s)
{
    if (s->spare_fd >= 0) {
        close(s->spare_fd);
        s->spare_fd = -1;
    }
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    int drained = fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (fd >= 0) {
        char sink[4096], msg[512];
        for (int i = 0; i < 4 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
            ;
        static const char body[] =
            "{\"error\":\"unavailable\",\"message\":\"too many connections\"}";
        size_t dlen;
        const char *date = sl__http_date_line(s, &dlen);
        int n = snprintf(msg, sizeof msg,
                         "HTTP/1.1 503 Service Unavailable\r\nServer: sluice\r\n%.*sContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n"
                         "Retry-After: 1\r\n\r\n%s",
                         (int)dlen, date, sizeof body - 1, body);
        if (n > 0 && (size_t)n < sizeof msg && s->tls == NULL) /* TLS: no handshake for this */
            (void)!send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        close(fd);
        note_refusal(s, &s->log_fds, "out of file descriptors",
                     "raise the open-file limit (ulimit -n) or lower max_connections");
    }
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s->spare_fd < 0)
        return -1;
    return drained ? 1 : fd >= 0 ? 0 : -1;
}

static void on_listen_ready(uv_poll_t *h, int status, int events);

static void on_pause_over(uv_timer_t *t)
{
    sl_http_server *s = t->data;
    if (!s->closed)
        uv_poll_start(&s->listener, UV_READABLE, on_listen_ready);
}

/* Stops accepting for a moment: connections wait in the kernel's backlog meanwhile. */
static void pause_accepting(sl_http_server *s)
{
    uv_poll_stop(&s->listener);
    uv_timer_start(&s->pause, on_pause_over, ACCEPT_PAUSE_MS, 0);
}

static void on_listen_ready(uv_poll_t *h, int status, int events)
{
    sl_http_server *s = h->data;
    if (s->closed)
        return;
    if (status < 0) {
        pause_accepting(s);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t slen = sizeof ss;
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_conn(s, fd, &ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        int r = errno == EMFILE || errno == ENFILE ? refuse_without_fd(s) : -1;
        if (r == 0)
            continue;
        if (r < 0)
            pause_accepting(s); /* ENOBUFS, ENOMEM, or not even the spare descriptor */
        return;
    }
}

int sl_http_server_new(sl_http_server **out, uv_loop_t *loop, const sl_http_limits *lim,
                       sl_http_handler_fn handler, void *ud)
{
    if (out == NULL || loop == NULL || handler == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (!sl__http_parser_cpu_ok())
        return SL_ECONFIG;
    sl_http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return SL_ENOMEM;
    s->loop = loop;
    if (lim != NULL)
        s->lim = *lim;
    else
        sl_http_limits_init(&s->lim);
    /* Zero sizes take the defaults (the assembler does the same); zero timeouts and a zero
     * connection limit mean "none". */
    sl_http_limits d;
    sl_http_limits_init(&d);
    if (s->lim.max_body == 0)
        s->lim.max_body = d.max_body;
    if (s->lim.max_header == 0)
        s->lim.max_header = d.max_header;
    s->handler = handler;
    s->lfd = s->spare_fd = -1;
    /* The address hash's key: only needs to be unknown to clients, so a failure (no entropy yet)
     * falls back to something that at least differs per process and start. */
    if (uv_random(NULL, NULL, s->hkey, sizeof s->hkey, 0, NULL) != 0) {
        s->hkey[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)s;
        s->hkey[1] = s->hkey[0] * 0xbf58476d1ce4e5b9ULL;
        s->hkey[2] = (uint64_t)getpid() * 0x94d049bb133111ebULL;
        s->hkey[3] = s->hkey[1] ^ s->hkey[2];
    }
    s->ud = ud;
    /* libuv writes with write(2): a client that resets while we answer would otherwise kill the
     * process with SIGPIPE. Only the default disposition is replaced, never a handler someone
     * installed on purpose. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    *out = s;
    return SL_OK;
}

int sl_http_server_listen(sl_http_server *s, const char *host, int port)
{
    if (s == NULL || host == NULL || port < 0 || port > 65535 || s->listening || s->closed)
        return SL_EINVAL;
    /* Literals only (no resolver on the event loop), but the two spellings people use for
     * loopback and "[v6]" are accepted. */
    char lit[64];
    size_t hl = strlen(host);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    else if (hl > 2 && hl < sizeof lit && host[0] == '[' && host[hl - 1] == ']') {
        memcpy(lit, host + 1, hl - 2);
        lit[hl - 2] = '\0';
        host = lit;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t slen;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0)
        slen = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0)
        slen = sizeof(struct sockaddr_in6);
    else
        return SL_EINVAL;
    /* The socket is made by hand and only given to libuv once it listens: a failed listen then
     * leaves no handle behind that would need the loop to run before the server can be freed. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return SL_EIO;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, slen) != 0 || listen(fd, BACKLOG) != 0) {
        close(fd);
        return SL_EIO;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        close(fd);
        return SL_EIO;
    }
    s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        uv_poll_init(s->loop, &s->listener, fd) != 0) {
        close(fd);
        return SL_EIO;
    }
    uv_timer_init(s->loop, &s->pause);
    s->listener.data = s->pause.data = s;
    s->lfd = fd;
    s->listening = 1; /* from here on the handles exist and sl_http_server_close must close them */
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (uv_poll_start(&s->listener, UV_READABLE, on_listen_ready) != 0)
        return SL_EIO;
    return SL_OK;
}

int sl_http_server_port(const sl_http_server *s)
{
    return s ? s->port : 0;
}

size_t sl_http_server_connections(const sl_http_server *s)
{
    return s ? s->nconns : 0;
}

int sl_http_server_set_tls(sl_http_server *s, struct sl__tls_ctx *tls, int client)
{
    if (s == NULL || (client != SL__TLS_CLIENT_NONE && !sl__tls_ctx_has_client_ca(tls)))
        return SL_EINVAL;
    sl__tls_ctx_ref(tls);
    sl__tls_ctx_unref(s->tls);
    s->tls = tls;
    s->tls_client = client;
    return SL_OK;
}

void sl_http_server_set_accept(sl_http_server *s, unsigned accept)
{
    if (s != NULL)
        s->accept = accept;
}

void sl_http_server_set_log(sl_http_server *s, sl_http_log_fn log, void *ud)
{
    if (s != NULL) {
        s->log = log;
        s->log_ud = ud;
    }
}

void sl_http_server_set_refused(sl_http_server *s, sl_http_refused_fn fn, void *ud)
{
    if (s != NULL) {
        s->refused = fn;
        s->refused_ud = ud;
    }
}

void sl_http_server_close(sl_http_server *s)
{
    if (s == NULL || s->closed)
        return;
    s->closed = 1;
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener)) {
        uv_close((uv_handle_t *)&s->listener, NULL); /* takes lfd out of the poll set */
        uv_close((uv_handle_t *)&s->pause, NULL);
        close(s->lfd);
        s->lfd = -1;
    }
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    s->spare_fd = -1;
    while (s->conns != NULL)
        sl__http_conn_close(s->conns);
    rate_log *logs[] = {&s->log_fds, &s->log_max, &s->log_addr, &s->log_pending};
    for (size_t i = 0; i < sizeof logs / sizeof logs[0]; i++)
        if (logs[i]->count > 0 && s->log != NULL)
            report_refusals(s, logs[i]);
}

void sl_http_server_free(sl_http_server *s)
{
    if (s == NULL)
        return;
    if (s->spare_fd >= 0) /* never closed (it never listened) */
        close(s->spare_fd);
    free(s->buckets); /* every entry went with its last connection */
    sl__tls_ctx_unref(s->tls);
    free(s);
}

int sl_http_fit_fd_limit(sl_http_limits *lim, sl_http_log_fn log, void *ud, sl_status *st)
{
    struct rlimit rl;
    if (lim == NULL || getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return SL_OK; /* nothing to go by: carry on as configured */
    char line[320];
    rlim_t need = lim->max_connections > 0 ? (rlim_t)lim->max_connections + SL_HTTP_FD_RESERVE
                                           : rl.rlim_max; /* no limit: as many as allowed */
    if (rl.rlim_cur != RLIM_INFINITY && (need == RLIM_INFINITY || rl.rlim_cur < need)) {
        rlim_t want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
        struct rlimit nl = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (want != RLIM_INFINITY && want > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &nl) == 0) {
            if (log != NULL) {
                snprintf(line, sizeof line, "raised the open-file limit from %llu to %llu",
                         (unsigned long long)rl.rlim_cur, (unsigned long long)want);
                log(ud, line);
            }
            rl.rlim_cur = want;
        }
    }
    if (lim->max_connections == 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return SL_OK;
    if (rl.rlim_cur < SL_HTTP_FD_RESERVE + MIN_FIT_CONNECTIONS)
        return sl_status_set(st, SL_ECONFIG,
                             "the open-file limit (%llu, hard limit %llu) leaves no room for "
                             "connections: at least %d are needed (%d are kept for other uses); "
                             "raise it (ulimit -n)",
                             (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                             SL_HTTP_FD_RESERVE + MIN_FIT_CONNECTIONS, SL_HTTP_FD_RESERVE);
    size_t fit = (size_t)(rl.rlim_cur - SL_HTTP_FD_RESERVE);
    if (log != NULL) {
        snprintf(line, sizeof line,
                 "max_connections lowered from %zu to %zu: the open-file limit is %llu (hard "
                 "limit %llu) and %d descriptors are kept for other uses; raise the hard limit "
                 "to allow more",
                 lim->max_connections, fit, (unsigned long long)rl.rlim_cur,
                 (unsigned long long)rl.rlim_max, SL_HTTP_FD_RESERVE);
        log(ud, line);
    }
    lim->max_connections = fit;
    return SL_OK;
}
