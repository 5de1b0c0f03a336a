/* The HTTP/1.1 transport: a libuv TCP server whose requests are parsed by llhttp (sl__http_parser,
 * which does no I/O) and handed, one at a time per connection and in order, to a handler.
 * Keep-alive and pipelining are supported: the next pipelined request is not handed over before the
 * previous one has been answered. Limits (body, header size, slow clients, connection count in all
 * and per client address, file descriptors) are enforced here with their HTTP errors (413, 431,
 * 408 + close, 503 + Retry-After + close). A server may serve TLS (sl_http_server_set_tls,
 * net/tls.h); one server listens on one address, so several listeners are several servers. */
#ifndef SLUICE_NET_HTTP_H
#define SLUICE_NET_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <sluice/error.h>

struct sl_authn_peer;
struct sl__tls_ctx;

typedef struct sl_http_header {
    const char *name; /* as received; compare case-insensitively */
    size_t name_len;
    const char *value; /* leading/trailing whitespace trimmed */
    size_t value_len;
} sl_http_header;

/* A complete request. Every pointer is valid until sl_http_respond is called for it. */
typedef struct sl_http_request {
    const char *method; /* "GET", "POST", ... (NUL-terminated) */
    const char *target; /* raw request-target, NUL-terminated */
    size_t target_len;
    const char *path; /* target up to '?' (not percent-decoded), NUL-terminated */
    size_t path_len;
    const char *query; /* after '?', "" when none, NUL-terminated */
    size_t query_len;
    const sl_http_header *headers;
    size_t nheaders;
    const char *body; /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
    int keep_alive;
    char remote_addr[64];             /* "127.0.0.1:54321" */
    void *conn;                       /* opaque: the connection */
    int tls;                          /* 1: the connection is TLS (https, wss) */
    const struct sl_authn_peer *peer; /* its verified client certificate, or NULL */
    unsigned accept; /* SL_AUTHN_KIND_* the listener allows (sl_authn_mode_parse); 0: all */
    /* the server's log: the request id (X-Request-Id; "" none) and when the request was
     * handed to the handler (uv_hrtime), both set by the handler; the transport leaves them */
    char request_id[65];
    uint64_t started_ns;
} sl_http_request;

/* Returns the header's value (not NUL-terminated; *len receives its length) or NULL. */
const char *sl_http_header_get(const sl_http_request *req, const char *name, size_t *len);
/* The same for the nth (0-based) field of that name: repeated fields are not merged. */
const char *sl_http_header_nth(const sl_http_request *req, const char *name, size_t nth,
                               size_t *len);

/* Called once per request. The handler must call sl_http_respond exactly once, now or later. */
typedef void (*sl_http_handler_fn)(void *ud, sl_http_request *req);

/* Sends the response. extra_headers: NULL or "Name: value\r\n..." lines. content_type NULL: none.
 * The transport adds Date, Content-Length, Connection. The request is invalid afterwards. */
void sl_http_respond(sl_http_request *req, int status, const char *extra_headers,
                     const char *content_type, const char *body, size_t body_len);

typedef struct sl_http_limits {
    size_t max_body;             /* bytes; default 1 MiB -> 413 */
    size_t max_header;           /* bytes of request line + headers; default 16 KiB -> 431 */
    unsigned request_timeout_ms; /* a started request must complete within; default 10 s -> 408 */
    unsigned idle_timeout_ms;    /* keep-alive idle before close; default 60 s */
    size_t max_connections;      /* default 10000; past it: 503 and close */
    /* Per client address (an IPv4 address, or the /64 of an IPv6 one); past them: 503 and close.
     * Connections "in their headers" have not yet sent a complete request head since they were
     * accepted or last answered (slowloris). Default 0 (no limit) and 64. */
    size_t max_connections_per_address;
    size_t max_pending_per_address;
    /* Once connections reach 3/4 of max_connections (until they fall below half), connections in
     * their headers get this long instead of request_timeout_ms. Default 2 s; 0: never. */
    unsigned busy_header_timeout_ms;
} sl_http_limits;
void sl_http_limits_init(sl_http_limits *l);

/* One operational line (no trailing newline; never a credential). */
typedef void (*sl_http_log_fn)(void *ud, const char *line);

/* Descriptors a server keeps besides its client connections (listener, the spare kept for
 * refusing connections when out of descriptors, logs, Redis, introspection, libuv's own). */
#define SL_HTTP_FD_RESERVE 64

/* Makes room for lim->max_connections connections plus SL_HTTP_FD_RESERVE descriptors: raises the
 * soft RLIMIT_NOFILE as far as needed (up to the hard limit) and, when even that is too little,
 * lowers lim->max_connections to what fits. Each change is reported through log (may be NULL).
 * Returns SL_OK, or SL_ECONFIG (with st) when fewer than 16 connections would fit. Call it before
 * the server starts: the limit is process-wide. */
int sl_http_fit_fd_limit(sl_http_limits *lim, sl_http_log_fn log, void *ud, sl_status *st);

typedef struct sl_http_server sl_http_server;

/* *out owned by the caller: close with sl_http_server_close, then free with sl_http_server_free
 * once the loop has run the close callbacks. SL_ECONFIG: this build's parser needs SSE4.2 and the
 * CPU lacks it (sl__http_parser_cpu_ok). */
int sl_http_server_new(sl_http_server **out, uv_loop_t *loop, const sl_http_limits *lim,
                       sl_http_handler_fn handler, void *ud);
/* host: IPv4 or IPv6 literal; port 0 picks a free port (see sl_http_server_port). */
int sl_http_server_listen(sl_http_server *s, const char *host, int port);
int sl_http_server_port(const sl_http_server *s);
size_t sl_http_server_connections(const sl_http_server *s);
/* Serves TLS (net/tls.h) on the connections accepted from now on, with tls (referenced; NULL:
 * plaintext), asking clients for certificates as client says (SL__TLS_CLIENT_*: needs a context
 * with a client CA, else SL_EINVAL). Open connections keep the context they started with: a
 * reloaded certificate is set here and drops nobody. Over TLS requests have tls = 1 and peer set
 * from a verified client certificate; a TLS handshake is bounded by request_timeout_ms (the
 * first request's), and refused connections are closed without an answer. */
int sl_http_server_set_tls(sl_http_server *s, struct sl__tls_ctx *tls, int client);
/* The SL_AUTHN_KIND_* mode (sl_authn_mode_parse) put on every request's accept; 0: all. */
void sl_http_server_set_accept(sl_http_server *s, unsigned accept);
/* Where refusals are reported (out of descriptors, connection limits), at most once per limit per
 * 10 s with a count; NULL: nowhere. */
void sl_http_server_set_log(sl_http_server *s, sl_http_log_fn log, void *ud);
/* A request the transport itself refused before any handler saw it: 400 (malformed), 405, 408
 * (too slow), 413 (body too large), 431 (head too large), 505. Connection-limit refusals (503)
 * go to the log of sl_http_server_set_log instead, rate-limited. The strings are borrowed for the
 * call; none holds a credential. */
typedef struct sl_http_refusal {
    int status;
    const char *error;       /* "payload_too_large", ... */
    const char *message;     /* the answer's message */
    const char *remote_addr; /* "127.0.0.1:54321" */
    size_t bytes;            /* the answer's body */
} sl_http_refusal;
/* Called before the refusal is written; may put a request id (NUL-terminated, at most cap - 1
 * bytes of [A-Za-z0-9._-]) in id for the answer's X-Request-Id header ("" for none). */
typedef void (*sl_http_refused_fn)(void *ud, const sl_http_refusal *r, char *id, size_t cap);
void sl_http_server_set_refused(sl_http_server *s, sl_http_refused_fn fn, void *ud);
/* Stops listening and closes every connection. */
void sl_http_server_close(sl_http_server *s);
void sl_http_server_free(sl_http_server *s);

/* ---- taking a connection over (WebSocket and friends) -------------------------------------------
 * A handler may, instead of sl_http_respond, hand the connection to a new owner: the transport
 * writes "101 Switching Protocols" (with "Connection: Upgrade" and extra_headers), stops parsing
 * HTTP and gives every further byte, starting with any already read after the request, to
 * fns->on_data. The owner writes with sl_http_upgraded_write and ends with sl_http_upgraded_close.
 * fns->on_close is called exactly once when the socket is gone (peer left, error, timeout, server
 * closed, or after sl_http_upgraded_close); the handle is invalid once it returns. It may be called
 * from inside sl_http_upgraded_write or _close, so owners must tolerate re-entry. */
typedef struct sl_http_upgraded sl_http_upgraded;

typedef struct sl_http_upgrade_fns {
    /* The owner must use all of it. The bytes are the transport's own read buffer, lent for the
     * call: the owner may modify them in place (WebSocket unmasking does) but not keep them. */
    void (*on_data)(void *ud, const char *data, size_t len);
    void (*on_drain)(void *ud); /* a blocked write completed */
    void (*on_close)(void *ud);
} sl_http_upgrade_fns;

/* Returns SL_OK and *out, or an sl_errno (SL_EIO: the client already left; SL_EUNAVAIL: the server
 * is closing) after which the request has been consumed and must not be answered. fns is copied. */
int sl_http_upgrade(sl_http_request *req, const char *extra_headers, const sl_http_upgrade_fns *fns,
                    void *ud, sl_http_upgraded **out);
/* Writes at most one chunk at a time: returns len when the bytes were taken (written or queued in
 * the transport's single in-flight buffer), 0 when a previous write is still in flight (wait for
 * on_drain), or an sl_errno. Bounding memory is the owner's job: it holds the backlog. */
long sl_http_upgraded_write(sl_http_upgraded *u, const char *data, size_t len);
/* The same for a malloc'd buffer of cap bytes holding len: when it returns len the transport owns
 * buf (it frees it), so nothing is copied; on 0 or an error the caller keeps it. */
long sl_http_upgraded_write_owned(sl_http_upgraded *u, char *buf, size_t len, size_t cap);
/* Writes bufs[0..n) in order, as one gather write. Returns the bytes taken (all of them), 0 while
 * an earlier write is still in flight (wait for on_drain), or a negative code. *held is 1 when
 * part of the bytes is still being written from the caller's buffers: they must stay valid and
 * unchanged until on_drain (or on_close). Over TLS the bytes are encrypted at once (*held 0). */
long sl_http_upgraded_writev(sl_http_upgraded *u, const uv_buf_t *bufs, unsigned n, int *held);
/* Graceful: finishes the write in flight, sends FIN, drains the peer briefly, then closes. */
void sl_http_upgraded_close(sl_http_upgraded *u);
/* Stops (paused = 1) or resumes reading from the socket: back-pressure for an owner that has
 * taken in more than it can pass on now. Bytes already read are still delivered. */
void sl_http_upgraded_pause(sl_http_upgraded *u, int paused);
/* Closes the socket after ms milliseconds unless it is gone by then (0: cancel). */
void sl_http_upgraded_set_timeout(sl_http_upgraded *u, unsigned ms);

/* Reason phrase of a status ("OK", "Not Found", ...). */
const char *sl_http_reason(int status);

#endif
