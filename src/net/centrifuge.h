/* The Centrifugo client protocol, JSON variant, as the `centrifuge` JavaScript client v5 speaks it:
 * a parser turning one WebSocket text frame (newline-separated JSON commands) into typed commands,
 * and an encoder appending compact replies and pushes to a growable buffer. No I/O and no policy:
 * the WebSocket session decides what a command may do (authentication, the security pipeline) and
 * uses this codec only to read and write the wire format, so unit tests and fuzzers can drive it
 * alone. docs/WEBSOCKET.md ("Protocol") lists the shapes, limits and code mappings. */
#ifndef SLUICE_NET_CENTRIFUGE_H
#define SLUICE_NET_CENTRIFUGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/error.h"

/* Limits the parser enforces. A frame over SL__CF_MAX_COMMANDS commands, or holding bytes the
 * parser cannot read, is a frame error (the caller disconnects with 3501); an over-long field in a
 * command that has an id is a per-command 107. */
#define SL__CF_MAX_COMMANDS 128    /* commands in one frame */
#define SL__CF_MAX_CHANNEL 255     /* bytes; = SL_CHANNEL_ID_MAX */
#define SL__CF_MAX_TOKEN 8192      /* bytes of a connection or subscription token */
#define SL__CF_MAX_SHORT 128       /* bytes of name, version, rpc method, epoch */
#define SL__CF_MAX_CONNECT_SUBS 64 /* entries of connect.subs */

/* X(symbol, code, standard message, temporary): every Centrifugo error (replies, 1xx), unsubscribe
 * push (2xxx: below 2500 the client stays unsubscribed, from 2500 it resubscribes) and disconnect
 * (close frame, 3xxx: from 3500 the client does not reconnect) code sluice uses, with the messages
 * the reference server sends. */
#define SL__CF_CODE_MAP(X)                                                                         \
    X(ERR_INTERNAL, 100, "internal server error", 1)                                               \
    X(ERR_UNAUTHORIZED, 101, "unauthorized", 0)                                                    \
    X(ERR_UNKNOWN_CHANNEL, 102, "unknown channel", 0)                                              \
    X(ERR_PERMISSION_DENIED, 103, "permission denied", 0)                                          \
    X(ERR_METHOD_NOT_FOUND, 104, "method not found", 0)                                            \
    X(ERR_ALREADY_SUBSCRIBED, 105, "already subscribed", 0)                                        \
    X(ERR_LIMIT_EXCEEDED, 106, "limit exceeded", 0)                                                \
    X(ERR_BAD_REQUEST, 107, "bad request", 0)                                                      \
    X(ERR_NOT_AVAILABLE, 108, "not available", 0)                                                  \
    X(ERR_TOKEN_EXPIRED, 109, "token expired", 0)                                                  \
    X(ERR_EXPIRED, 110, "expired", 0)                                                              \
    X(ERR_TOO_MANY_REQUESTS, 111, "too many requests", 1)                                          \
    X(ERR_UNRECOVERABLE_POSITION, 112, "unrecoverable position", 0)                                \
    X(UNSUB_SERVER, 2000, "server unsubscribe", 0)                                                 \
    X(UNSUB_INSUFFICIENT_STATE, 2500, "insufficient state", 0)                                     \
    X(DISC_CONNECTION_CLOSED, 3000, "connection closed", 0)                                        \
    X(DISC_SHUTDOWN, 3001, "shutdown", 0)                                                          \
    X(DISC_SERVER_ERROR, 3004, "internal server error", 0)                                         \
    X(DISC_EXPIRED, 3005, "connection expired", 0)                                                 \
    X(DISC_SUB_EXPIRED, 3006, "subscription expired", 0)                                           \
    X(DISC_SLOW, 3008, "slow", 0)                                                                  \
    X(DISC_WRITE_ERROR, 3009, "write error", 0)                                                    \
    X(DISC_NO_PONG, 3012, "no pong", 0)                                                            \
    X(DISC_TOO_MANY_REQUESTS, 3013, "too many requests", 0)                                        \
    X(DISC_INVALID_TOKEN, 3500, "invalid token", 0)                                                \
    X(DISC_BAD_REQUEST, 3501, "bad request", 0)                                                    \
    X(DISC_STALE, 3502, "stale", 0)                                                                \
    X(DISC_FORCE_NO_RECONNECT, 3503, "force disconnect", 0)                                        \
    X(DISC_CONNECTION_LIMIT, 3504, "connection limit", 0)                                          \
    X(DISC_CHANNEL_LIMIT, 3505, "channel limit", 0)                                                \
    X(DISC_INAPPROPRIATE_PROTOCOL, 3506, "inappropriate protocol", 0)                              \
    X(DISC_PERMISSION_DENIED, 3507, "permission denied", 0)                                        \
    X(DISC_NOT_AVAILABLE, 3508, "not available", 0)                                                \
    X(DISC_TOO_MANY_ERRORS, 3509, "too many errors", 0)

enum {
#define SL__CF_CODE_ENUM(sym, code, msg, temp) SL__CF_##sym = (code),
    SL__CF_CODE_MAP(SL__CF_CODE_ENUM)
#undef SL__CF_CODE_ENUM
};

/* The standard message of a code above; "unknown" for any other. Never NULL. */
const char *sl__cf_code_message(int code);
/* 1 for codes the client may retry (100, 111). */
int sl__cf_code_temporary(int code);
/* The Centrifugo error code (100..112) a command failing with an sl_errno is answered with; 0 for
 * SL_OK. docs/WEBSOCKET.md has the table. */
int sl__cf_error_from_errno(int sl_code);

typedef enum {
    SL__CF_PING = 0, /* {} : a pong to our ping (or the client's own ping); no reply */
    SL__CF_CONNECT,
    SL__CF_SUBSCRIBE,
    SL__CF_UNSUBSCRIBE,
    SL__CF_PUBLISH,
    SL__CF_REFRESH,
    SL__CF_SUB_REFRESH,
    SL__CF_HISTORY,
    SL__CF_PRESENCE,
    SL__CF_PRESENCE_STATS,
    SL__CF_RPC,
    SL__CF_SEND, /* no id, no reply */
    SL__CF_METHOD_COUNT
} sl__cf_method;

/* The command's key on the wire ("connect", "sub_refresh"...); "" for ping. */
const char *sl__cf_method_name(sl__cf_method m);

/* A recovery position from connect.subs or subscribe (recover, offset, epoch). */
typedef struct sl__cf_connect_sub {
    char *channel;
    bool recover;
    uint64_t offset;
    char *epoch; /* NULL when absent */
} sl__cf_connect_sub;

/* One parsed command. Strings are NUL-terminated, decoded, valid UTF-8 without NUL bytes, heap
 * copies owned by the command (NULL when absent); `data` is the command's "data" value as the
 * client sent it, byte for byte (any JSON value, surrounding whitespace trimmed), so stored
 * messages keep their exact text. Free with sl__cf_command_clear. */
typedef struct sl__cf_command {
    sl__cf_method method;
    uint32_t id; /* 0 only for ping and send */
    /* 0, or the Centrifugo error code (104 unknown command, 107 malformed) the session answers
     * this command with instead of running it; error_message is a static string then. */
    int error;
    const char *error_message;

    char *channel; /* subscribe, unsubscribe, publish, sub_refresh, history, presence(_stats) */
    char *token;   /* connect, refresh, subscribe, sub_refresh */
    char *data;    /* connect, subscribe, publish, rpc, send (publish/send: required) */
    size_t data_len;
    char *name, *version;     /* connect */
    char *rpc_method;         /* rpc */
    sl__cf_connect_sub *subs; /* connect.subs */
    size_t nsubs;

    /* subscribe */
    bool recover, positioned, recoverable, join_leave;
    uint64_t offset;
    char *epoch;
    uint32_t flag;

    /* history */
    bool has_limit, has_since, reverse;
    int64_t limit; /* -1 (all) .. INT32_MAX */
    uint64_t since_offset;
    char *since_epoch;
} sl__cf_command;

/* Parses one text frame of len bytes: JSON objects separated by '\n' (blank lines and a trailing
 * newline are allowed). On SL_OK, cmds[0..*n) hold the commands in order, each possibly carrying a
 * per-command error (cmd->error). Frame errors (the caller closes with 3501 bad request, nothing
 * to clear): SL_EJSON for text that is not JSON objects, a NUL byte, an id that is not an integer
 * in 1..2^32-1, a command without id other than ping/send, or a malformed command without id;
 * SL_ELIMIT for more than max (or SL__CF_MAX_COMMANDS) commands; SL_ENOMEM. st (may be NULL) says
 * which line. */
int sl__cf_parse_frame(const char *text, size_t len, sl__cf_command *cmds, size_t max, size_t *n,
                       sl_status *st);

/* One line (one JSON object, no newline) by the general parser: 0 with *c filled, 1 for a frame
 * error (message in st, naming line lineno), SL_ENOMEM. sl__cf_parse_frame runs it on every line
 * the fast path below does not take; the fuzz target compares the two. */
int sl__cf_parse_line(const char *line, size_t len, sl__cf_command *c, size_t lineno,
                      sl_status *st);
/* The fast path for a publish (centrifuge_fast.c): 1 with *c filled exactly as sl__cf_parse_line
 * would fill it, 0 when the general parser must decide (c untouched), -1 out of memory (c
 * cleared). */
int sl__cf_parse_publish_fast(const char *line, size_t len, sl__cf_command *c);

void sl__cf_command_clear(sl__cf_command *c);
/* Clears cmds[0..n). */
void sl__cf_commands_clear(sl__cf_command *cmds, size_t n);

/* ---- encoder ---- */

/* A growable output buffer. Every append writes one JSON object, preceded by '\n' when the buffer
 * is not empty, so a buffer is a batch ready to be sent as one text frame. After a failed
 * allocation the buffer stays unchanged and every append returns SL_ENOMEM. */
typedef struct sl__cf_buf {
    char *data;
    size_t len, cap;
    bool oom;
} sl__cf_buf;

void sl__cf_buf_init(sl__cf_buf *b);
void sl__cf_buf_reset(sl__cf_buf *b); /* empties it, keeps the memory */
void sl__cf_buf_free(sl__cf_buf *b);
/* Takes everything from byte len on out again (len <= b->len: e.g. a reply just appended that
 * turned out too large to send). */
void sl__cf_buf_truncate(sl__cf_buf *b, size_t len);
/* Appends one object already encoded by this codec (e.g. a push encoded once for many
 * subscribers), with the '\n' separator. SL_OK or SL_ENOMEM. */
int sl__cf_buf_append(sl__cf_buf *b, const char *obj, size_t len);

/* Who published / joined (ClientInfo). conn_info and chan_info are raw JSON or NULL. */
typedef struct sl__cf_client_info {
    const char *client, *user;
    const char *conn_info, *chan_info;
} sl__cf_client_info;

/* A publication. data is raw JSON text (the caller guarantees its validity, e.g. stored message
 * text); offset 0 is omitted as in the reference server; info may be NULL. */
typedef struct sl__cf_pub {
    const char *data;
    size_t data_len;
    uint64_t offset;
    const sl__cf_client_info *info;
} sl__cf_pub;

typedef struct sl__cf_connect_result {
    const char *client;  /* required: the connection id */
    const char *version; /* server version, may be NULL */
    uint32_t ping;       /* seconds between server pings, 0 = none */
    bool pong;           /* the client must answer pings */
    bool expires;
    uint32_t ttl;     /* seconds until the token expires, with expires */
    const char *data; /* raw JSON or NULL */
} sl__cf_connect_result;

typedef struct sl__cf_subscribe_result {
    bool expires;
    uint32_t ttl;
    bool recoverable, positioned;
    const char *epoch; /* with recoverable/positioned */
    uint64_t offset;   /* the stream top (or the position recovered from) */
    bool was_recovering, recovered;
    const sl__cf_pub *publications; /* recovered publications, oldest first */
    size_t npublications;
    const char *data; /* raw JSON or NULL */
} sl__cf_subscribe_result;

/* String arguments must be valid UTF-8 (they are escaped, not validated); raw JSON arguments
 * (data, conn_info...) are copied verbatim. All return SL_OK or SL_ENOMEM. */
int sl__cf_reply_connect(sl__cf_buf *b, uint32_t id, const sl__cf_connect_result *r);
int sl__cf_reply_subscribe(sl__cf_buf *b, uint32_t id, const sl__cf_subscribe_result *r);
/* {"id":N,"<method>":{}}: unsubscribe and publish replies. */
int sl__cf_reply_empty(sl__cf_buf *b, uint32_t id, sl__cf_method m);
/* refresh (client/version may be NULL) and sub_refresh (client/version ignored) results. */
int sl__cf_reply_refresh(sl__cf_buf *b, uint32_t id, sl__cf_method m, const char *client,
                         const char *version, bool expires, uint32_t ttl);
int sl__cf_reply_history(sl__cf_buf *b, uint32_t id, const sl__cf_pub *pubs, size_t n,
                         const char *epoch, uint64_t offset);
int sl__cf_reply_presence(sl__cf_buf *b, uint32_t id, const sl__cf_client_info *clients, size_t n);
int sl__cf_reply_presence_stats(sl__cf_buf *b, uint32_t id, uint32_t num_clients,
                                uint32_t num_users);
int sl__cf_reply_rpc(sl__cf_buf *b, uint32_t id, const char *data, size_t data_len);
/* {"id":N,"error":{"code":C,"message":M[,"temporary":true]}}; message NULL = the standard one. */
int sl__cf_reply_error(sl__cf_buf *b, uint32_t id, int code, const char *message);

/* Pushes: {"push":{"channel":C,"<kind>":{...}}}. */
int sl__cf_push_pub(sl__cf_buf *b, const char *channel, const sl__cf_pub *pub);
int sl__cf_push_join(sl__cf_buf *b, const char *channel, const sl__cf_client_info *info);
int sl__cf_push_leave(sl__cf_buf *b, const char *channel, const sl__cf_client_info *info);
/* reason NULL = the standard message of code (the client resubscribes for codes < 2500). */
int sl__cf_push_unsubscribe(sl__cf_buf *b, const char *channel, int code, const char *reason);
int sl__cf_push_message(sl__cf_buf *b, const char *data, size_t data_len);
int sl__cf_push_disconnect(sl__cf_buf *b, int code, const char *reason);
/* The server ping, {}. */
int sl__cf_ping(sl__cf_buf *b);

#endif
