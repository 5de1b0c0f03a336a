/* The WebSocket transport (RFC 6455) on top of the HTTP server: it checks an upgrade request,
 * answers 101 (or 400/426), takes the connection over with sl_http_upgrade and runs our own framing
 * (net/ws_frame.h) over it, holding no buffer while a connection is idle. The layer above sees
 * whole text messages (fragments reassembled, control frames and pings handled here) and sends
 * text; it never touches frames or sockets. Binary messages are refused (close 1003), oversized
 * ones too (1009), text that is not UTF-8 too (1007). Outgoing data is bounded per connection: a
 * consumer that does not read gets SL_ELIMIT from sl_ws_send_text, and the caller decides to drop
 * it. Everything runs on the HTTP server's loop thread. */
#ifndef SLUICE_NET_WS_H
#define SLUICE_NET_WS_H

#include <stddef.h>

#include "net/http.h"

/* Close codes used at this layer (RFC 6455 §7.4.1). */
enum {
    SL_WS_NORMAL = 1000,
    SL_WS_GOING_AWAY = 1001,
    SL_WS_PROTOCOL_ERROR = 1002,
    SL_WS_UNSUPPORTED = 1003, /* binary frames */
    SL_WS_NO_STATUS = 1005,   /* reported only: the peer's close frame had no code */
    SL_WS_ABNORMAL = 1006,    /* reported only: the TCP connection ended without a close frame */
    SL_WS_BAD_DATA = 1007,    /* text that is not UTF-8 */
    SL_WS_TOO_BIG = 1009,
    SL_WS_POLICY = 1008,
};

typedef struct sl_ws_conn sl_ws_conn;

typedef struct sl_ws_limits {
    size_t max_message;        /* bytes of one reassembled received message; 0: default, 64 KiB */
    size_t max_outgoing;       /* bytes queued for sending; default 1 MiB, then SL_ELIMIT */
    unsigned close_timeout_ms; /* after our close frame, wait this long for the peer; default 5 s */
} sl_ws_limits;
void sl_ws_limits_init(sl_ws_limits *l);

typedef struct sl_ws_callbacks {
    void (*on_open)(sl_ws_conn *c, void *ud); /* optional; after the 101 has been queued */
    /* A complete text message; data is valid during the call only (not NUL-terminated). */
    void (*on_text)(sl_ws_conn *c, const char *data, size_t len, void *ud);
    /* Exactly once, when the TCP connection is gone. code: the peer's close code, or ours when the
     * peer never sent one, or SL_WS_ABNORMAL. c is freed when this returns. May be called from
     * inside sl_ws_send_text or sl_ws_close. */
    void (*on_close)(sl_ws_conn *c, int code, void *ud);
} sl_ws_callbacks;

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)), NUL-terminated. */
int sl_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Checks that req is a valid version-13 upgrade: returns 0, or the HTTP status to refuse with
 * (400, or 426 when the version is not 13) and *why a short static explanation. */
int sl_ws_check_handshake(const sl_http_request *req, const char **why);

/* Answers req: on a bad handshake with 400/426 (returns SL_EINVAL), else with 101 and takes the
 * connection over (SL_OK, *out valid until on_close). Either way the request is consumed. lim NULL:
 * defaults. cb is copied. */
int sl_ws_accept(sl_http_request *req, const sl_ws_limits *lim, const sl_ws_callbacks *cb, void *ud,
                 sl_ws_conn **out);

/* Queues one text message. SL_ELIMIT: it would take the connection's outgoing bytes past
 * max_outgoing (nothing queued: a slow consumer, to be disconnected); SL_EIO: closing. */
int sl_ws_send_text(sl_ws_conn *c, const char *data, size_t len);

/* The same without writing yet: the message waits for sl_ws_flush (or the next send), so that
 * everything queued in one loop iteration goes out in one gather write. */
int sl_ws_queue_text(sl_ws_conn *c, const char *data, size_t len);

/* A whole text frame, built once and queued on any number of connections (a publication fanned
 * out). sl_ws_frame_text returns it with one reference (the caller's), or NULL when out of
 * memory; each queue takes a reference of its own, so the caller drops its own with
 * sl_ws_frame_unref once it has queued the frame everywhere. Single-threaded, like the rest. */
typedef struct sl_ws_frame sl_ws_frame;
sl_ws_frame *sl_ws_frame_text(const char *data, size_t len);
sl_ws_frame *sl_ws_frame_ref(sl_ws_frame *f); /* returns f */
void sl_ws_frame_unref(sl_ws_frame *f);
size_t sl_ws_frame_len(const sl_ws_frame *f); /* header included */
/* The frame's bytes as they go on the wire (sl_ws_frame_len of them). */
const unsigned char *sl_ws_frame_bytes(const sl_ws_frame *f);
/* Queues f (taking a reference) without writing. SL_ELIMIT / SL_EIO as sl_ws_send_text. */
int sl_ws_queue_frame(sl_ws_conn *c, sl_ws_frame *f);
/* Writes what is queued (as much as the socket takes; the rest as it drains). */
void sl_ws_flush(sl_ws_conn *c);

/* Starts the closing handshake: a close frame with code and reason (at most 123 bytes, truncated),
 * then TCP close once the peer answered or close_timeout_ms passed. Idempotent. */
int sl_ws_close(sl_ws_conn *c, int code, const char *reason);

/* Bytes queued for sending and not yet written (those the transport is writing included). */
size_t sl_ws_outgoing(const sl_ws_conn *c);
void *sl_ws_userdata(const sl_ws_conn *c);

/* Stops or resumes reading from the peer (TCP back-pressure); what was read is still delivered.
 * The closing handshake reads regardless. */
void sl_ws_pause(sl_ws_conn *c, int paused);

/* ---- internals, exposed to the fuzz target and unit tests ------------------------------------ */

/* 1 when s[0..n) is UTF-8 as RFC 3629 defines it (no overlongs, surrogates or code points past
 * U+10FFFF): what text messages and close reasons must be. */
int sl__ws_utf8_valid(const unsigned char *s, size_t n);

/* Checks a peer's close frame body (n bytes): NULL when acceptable, with *code its close code
 * (SL_WS_NO_STATUS for an empty body), else why not (static text; the connection then fails with
 * SL_WS_PROTOCOL_ERROR). */
const char *sl__ws_close_check(const unsigned char *p, size_t n, int *code);

#endif
