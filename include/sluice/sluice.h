/* The public C API of libsluice: a context that owns channels, their store engine and the security
 * pipeline; channel operations taking the caller's identity (the in-process transport); identities;
 * the operation registry; the ACL. Every operation passes the same pipeline as the network
 * transports: authorise against the registry, check revocation, audit.
 *
 * Ownership: a function that returns memory through an out-parameter says which *_free releases it.
 * Strings passed in are copied; the caller keeps ownership of its arguments. */
#ifndef SLUICE_SLUICE_H
#define SLUICE_SLUICE_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_CHANNEL_ID_MAX 255
#define SL_PRINCIPAL_MAX 255
#define SL_TOKEN_ID_MAX 127
#define SL_WORKSPACE_MAX 63

typedef struct sl_ctx sl_ctx;

/* The library's version, "MAJOR.MINOR.PATCH" (CMake's project version; static). */
const char *sl_version(void);

/* ---- clock ----------------------------------------------------------------------------------- */

/* Seconds since the epoch. Injectable so tests can pin time (leases, expiry, retention). */
typedef double (*sl_clock_fn)(void *ud);
double sl_wallclock(void *ud_unused);

/* ---- roles, modes, identities ---------------------------------------------------------------- */

typedef enum { SL_ROLE_NONE = 0, SL_ROLE_READ = 1, SL_ROLE_WRITE = 2, SL_ROLE_ADMIN = 3 } sl_role;
/* "read" | "write" | "admin"; SL_ROLE_NONE for anything else (case-sensitive). */
sl_role sl_role_parse(const char *s);
const char *sl_role_name(sl_role r);

typedef enum {
    SL_MODE_INHERIT = 0, /* channels only: use the server-wide mode */
    SL_MODE_OPEN,        /* everyone may do everything */
    SL_MODE_ACL,         /* grants principal -> role (+ channel patterns); tokens can only narrow */
    SL_MODE_TOKEN,       /* the token's role and channel scope decide; local callers are trusted */
    /* the context's pluggable regime decides (sl_ctx_set_regime; sluice/authz.h) */
    SL_MODE_POLICY,
} sl_mode;
/* "open" | "acl" | "token" | "policy" | "inherit"; -1 when unknown */
sl_mode sl_mode_parse(const char *s);
const char *sl_mode_name(sl_mode m);

typedef enum {
    SL_SOURCE_NONE = 0, /* anonymous network caller (open mode only) */
    SL_SOURCE_LOCAL,    /* in-process caller: trusted to be who it says */
    SL_SOURCE_SYSTEM,   /* the process itself (configuration, bootstrap): always allowed */
    SL_SOURCE_JWT,
    SL_SOURCE_APIKEY,
    SL_SOURCE_SIGNATURE,
    SL_SOURCE_INTROSPECTION, /* an RFC 7662 introspection endpoint vouched for the bearer */
    SL_SOURCE_UPSTREAM_JWT,  /* a JWT of the deployment's own identity provider */
    SL_SOURCE_CERT,          /* a verified TLS client certificate (mutual TLS) */
} sl_source;
const char *sl_source_name(sl_source s);

/* Who is asking. Filled by an authenticator (or sl_identity_local); owns its channel scope. */
typedef struct sl_identity {
    char principal[SL_PRINCIPAL_MAX + 1];
    sl_source source;
    sl_role role;    /* role the credential carries; SL_ROLE_NONE when it carries none */
    int scoped;      /* 1 when the credential restricts channels (channels[] below) */
    char **channels; /* channel patterns of the scope; owned */
    size_t nchannels;
    char token_id[SL_TOKEN_ID_MAX + 1]; /* jti, "" when none */
    double issued_at;                   /* 0 when unknown */
    double expires_at;                  /* 0 when none */
    /* The tenant the caller belongs to ("" when none: the default workspace). Channels, grants,
     * broker roles and API keys belong to a workspace; docs/POLICY.md. */
    char workspace[SL_WORKSPACE_MAX + 1];
    /* 1 when an operator (outside every workspace) crossed into `workspace`: its grants
     * and broker roles stay its own, not those of a namesake inside the workspace */
    int crossed;
} sl_identity;

/* An in-process caller named `principal` (truncated to SL_PRINCIPAL_MAX). Nothing to free, but
 * sl_identity_clear is harmless. */
void sl_identity_local(sl_identity *id, const char *principal);
void sl_identity_init(sl_identity *id);
/* Deep copy into dst (initialised or cleared); SL_ENOMEM leaves dst empty. */
int sl_identity_copy(sl_identity *dst, const sl_identity *src);
/* Frees the scope; leaves an empty identity. */
void sl_identity_clear(sl_identity *id);
/* Narrows id by the OAuth "scope" (space-separated values, RFC 8693 section 4.2) of an identity
 * provider's token or an introspection answer: "sluice:read" / "sluice:write" / "sluice:admin" set
 * the role the credential carries (the highest named), each "sluice:channel:PATTERN" adds a channel
 * pattern and makes id scoped. Values without the "sluice:" prefix are ignored, so a scope naming
 * nothing of sluice's leaves id as it is. For these credentials the role is a ceiling (the ACL, or
 * what the broker mints) and never a grant of its own. SL_OK; SL_EINVAL for an unknown "sluice:"
 * value or an invalid pattern (refuse the credential); SL_ELIMIT past 1024 values; SL_ENOMEM. id
 * is unchanged on error. */
int sl_identity_apply_scope(sl_identity *id, const char *scope, size_t len);
/* Workspace names: 1..63 bytes of [A-Za-z0-9_-]. */
int sl_workspace_valid(const char *w, size_t len);
/* Principal ids: 1..255 bytes of printable ASCII without space, '/', '\\', '"' or '\''. */
int sl_principal_valid(const char *p, size_t len);

/* ---- the operation registry ------------------------------------------------------------------ */

/* Every operation any transport can perform. The registry (sl_op_info) is the single source of
 * truth for what each needs; transports look operations up and never decide access themselves. */
typedef enum {
    SL_OP_HEALTH = 0,
    SL_OP_CHANNEL_LIST,
    SL_OP_CHANNEL_INFO,
    SL_OP_CHANNEL_READ, /* shared read of a topic, exclusive read (claim) of a queue */
    SL_OP_CHANNEL_WRITE,
    SL_OP_CHANNEL_ACK,
    SL_OP_CHANNEL_NACK,
    SL_OP_CHANNEL_CLEAR,
    SL_OP_CHANNEL_EVICT,
    SL_OP_CHANNEL_REMOVE,
    SL_OP_CHANNEL_CREATE,
    SL_OP_CHANNEL_DELETE,
    SL_OP_ACL_GRANT,
    SL_OP_ACL_REVOKE,
    SL_OP_ACL_LIST,
    SL_OP_TOKEN_REVOKE,   /* revoke a token id or every token of a principal */
    SL_OP_TOKEN_ISSUE,    /* the broker mints a token for the caller */
    SL_OP_TOKEN_DELEGATE, /* the broker mints a token for another principal */
    SL_OP_APIKEY_CREATE,
    SL_OP_APIKEY_LIST,
    SL_OP_APIKEY_EXPIRE,
    SL_OP_APIKEY_DELETE,
    SL_OP_BROKER_ASSIGN,     /* give a principal broker roles (or none) */
    SL_OP_BROKER_LIST,       /* read a principal's broker roles */
    SL_OP_CHANNEL_EXTEND,    /* the claim holder extends its leases (JetStream's in-progress) */
    SL_OP_CHANNEL_TERMINATE, /* the claim holder dead-letters a message for good */
    /* the invoke policy's administration (docs/POLICY.md) */
    SL_OP_POLICY_INVOKE_LIST,
    SL_OP_POLICY_INVOKE_SET,    /* resource: the principal pattern */
    SL_OP_POLICY_INVOKE_DELETE, /* resource: the principal pattern */
    /* the authorise contract */
    SL_OP_AUTHZ_INVALIDATE, /* drop every cached authorisation decision */
    /* Operations (docs/OPERATIONS.md) */
    SL_OP_METRICS_READ,       /* GET /metrics */
    SL_OP_SERVER_CONNECTIONS, /* list live connections */
    SL_OP_SERVER_DISCONNECT,  /* resource: the principal whose connection(s) end */
    SL_OP_SERVER_UNSUBSCRIBE, /* resource: the channel a principal is unsubscribed from */
    SL_OP_SERVER_PRESENCE,    /* resource: the channel; presence and its stats */
    SL_OP_SERVER_CHANNELS,    /* per-channel statistics of every channel */
    SL_OP_AUDIT_READ,         /* recent audit records, the chain verified */
    SL_OP_CONSOLE,            /* the admin console's static files (no credentials) */
    SL_OP__COUNT
} sl_op;

typedef enum {
    SL_RES_NONE = 0,  /* no resource: global operations (need the role on all channels) */
    SL_RES_CHANNEL,   /* a channel id */
    SL_RES_PRINCIPAL, /* an ACL principal: needs the role on all channels */
    SL_RES_CHANNELS   /* every channel the result names: authorised per channel, so the
                         operation itself only needs an authenticated caller */
} sl_resource_kind;

typedef struct sl_op_info {
    sl_op op;
    const char *name;          /* "channel.read", ... */
    sl_role role;              /* least role needed; SL_ROLE_NONE = no authentication needed */
    sl_resource_kind resource; /* shape of the resource */
    const char *verb;          /* for denials: "read from", "write to", "acknowledge on", ... */
    int audited;               /* 1 when every success is audited (state changes of the ACL) */
    int self_allowed;          /* 1: any authenticated caller may do it to its own principal */
    int delegation;            /* 1: decided by the broker's delegation rules, not by roles */
    int no_sluice_tokens;      /* 1: a sluice token cannot be the credential (no self-renewal) */
} sl_op_info;

/* NULL for an out-of-range op. */
const sl_op_info *sl_op_lookup(sl_op op);
/* NULL when no operation has that name. */
const sl_op_info *sl_op_by_name(const char *name);

/* ---- context --------------------------------------------------------------------------------- */

typedef struct sl_ctx_options {
    sl_mode mode;      /* server-wide mode; SL_MODE_OPEN when 0 */
    sl_clock_fn clock; /* NULL: wall clock */
    void *clock_ud;
    /* NULL: channels live in memory only. A directory: they and the ACL grants are kept in the
     * embedded store there (created when missing; docs/STORAGE.md), and every channel call and
     * grant returns once its change is fsynced. One context (or sluiced) per directory. */
    const char *data_dir;
} sl_ctx_options;

/* Audit hook: called for every denial and every audited operation. `record` is a JSON object text
 * (never a token or secret); the sink must not keep the pointer. It returns SL_OK, or an error with
 * the reason in st when the record could not be kept: operations that must be audited (ACL changes)
 * are then refused rather than performed unrecorded. */
typedef int (*sl_audit_fn)(void *ud, const char *record, sl_status *st);

/* Change listener: how real-time transports learn, in the same call, of what they must push or
 * re-check. Called synchronously after the change succeeded, on the caller's thread; the event and
 * its strings are valid during the call only. A listener must not call back into the channel API
 * for the same channel from inside the call. */
typedef enum {
    SL_EVENT_WRITE,           /* a message was appended: channel, message (id, data, sender) */
    SL_EVENT_CHANNEL_DELETED, /* channel */
    SL_EVENT_ACL_CHANGED, /* principal's entry was replaced (granted) or removed (removed = 1) */
    SL_EVENT_CHANNEL_CREATED, /* channel (info: its settings when known, else NULL) */
    /* Several nodes on a shared engine: the feed of other nodes' changes was interrupted, so
     * writes may have been missed (real-time subscribers must recover from the stream). */
    SL_EVENT_RESYNC,
    /* Several nodes on a shared engine, a channel with join_leave: a client (a socket; its id in
     * client, its user in principal) subscribed on some node (JOIN), or unsubscribed, closed, or
     * its node stopped refreshing its presence entry (LEAVE). Only for channels this node's
     * subscribers use. */
    SL_EVENT_JOIN,
    SL_EVENT_LEAVE,
} sl_event_kind;

typedef struct sl_event {
    sl_event_kind kind;
    const char *channel;                /* WRITE, CHANNEL_DELETED */
    const struct sl_channel_info *info; /* WRITE: the channel's settings */
    const struct sl_message *message;   /* WRITE */
    const char *principal;              /* ACL_CHANGED; JOIN, LEAVE: the client's user */
    int removed;                        /* ACL_CHANGED */
    const char *client;                 /* JOIN, LEAVE: the client's id */
} sl_event;
typedef void (*sl_event_fn)(void *ud, const sl_event *ev);

/* *out owned by the caller; release with sl_ctx_free. opts may be NULL. With opts->data_dir:
 * SL_EUNAVAIL (the directory is in use), SL_EFORMAT (not a store this build reads), SL_EIO, with
 * the reason in st (sl_ctx_open; sl_ctx_new gives the code only). */
int sl_ctx_new(sl_ctx **out, const sl_ctx_options *opts);
int sl_ctx_open(sl_ctx **out, const sl_ctx_options *opts, sl_status *st);
void sl_ctx_free(sl_ctx *ctx);
double sl_ctx_now(const sl_ctx *ctx);
void sl_ctx_set_clock(sl_ctx *ctx, sl_clock_fn fn, void *ud);
void sl_ctx_set_mode(sl_ctx *ctx, sl_mode mode);
sl_mode sl_ctx_mode(const sl_ctx *ctx);
void sl_ctx_set_audit(sl_ctx *ctx, sl_audit_fn fn, void *ud);
/* The token broker whose delegation rules decide token.delegate (borrowed; NULL: none, so every
 * delegation is denied). */
struct sl_broker;
void sl_ctx_set_broker(sl_ctx *ctx, struct sl_broker *broker);
struct sl_broker *sl_ctx_broker(const sl_ctx *ctx);
/* One listener per context (NULL removes it). */
void sl_ctx_set_listener(sl_ctx *ctx, sl_event_fn fn, void *ud);
/* The most message bytes one sl_channel_read returns, whatever its caller asks for (see
 * sl_read.max_bytes); 0 (the default): no cap. Servers set it so that no reply is unbounded. */
void sl_ctx_set_read_max_bytes(sl_ctx *ctx, size_t max_bytes);
size_t sl_ctx_read_max_bytes(const sl_ctx *ctx);

/* The pipeline's decision for `who` performing `op` on `resource` (channel id, principal or NULL):
 * SL_OK, SL_EUNAUTH (no identity where one is needed) or SL_EFORBIDDEN with the tutorial's message
 * in st. Writes the audit record of a denial. Transports call this through their dispatcher.
 * Under SL_MODE_POLICY it reads the regime's answer from the decision cache or from the prepare
 * step that asked it (sluice/authz.h, docs/POLICY.md); SL_EUNAVAIL when the regime failed or was
 * not asked (fail closed). sl_authorise asks the regime and decides in one. */
int sl_authorize(sl_ctx *ctx, const sl_identity *who, sl_op op, const char *resource,
                 sl_status *st);

/* ---- channel ids and patterns ---------------------------------------------------------------- */

/* 1..255 bytes; segments of [A-Za-z0-9_-] joined by '.' or ':'; the first segment may start with
 * '$' (channels that also need a per-channel subscription token on the WebSocket transport). */
int sl_channel_id_valid(const char *id, size_t len);
/* Patterns: segments split on '.' and ':'; "*" matches one segment, "**" the rest (even nothing);
 * a leading '$' as in ids. */
int sl_pattern_valid(const char *pat, size_t len);
int sl_pattern_match(const char *pat, const char *channel);
/* User-limited channels (docs/POLICY.md): an id may end with '#' and a comma-separated list of
 * user ids ("inbox#alice", "chat#alice,bob"); only those principals may read it. A user id there
 * is 1..255 bytes of [A-Za-z0-9_.@-]. A pattern may end the same way after a literal segment
 * ("inbox#alice"); the list is then matched literally. */
/* The user list of id (after the '#'), or NULL when id is not user-limited. */
const char *sl_channel_users(const char *id);
/* 1 when user is one of id's listed users. */
int sl_channel_user_listed(const char *id, const char *user);
/* 1 when user[0..len) may appear in a channel id's user list. */
int sl_channel_user_valid(const char *user, size_t len);

/* ---- channels
 * ------------------------------------------------------------------------------------ */

typedef enum { SL_KIND_QUEUE = 0, SL_KIND_TOPIC = 1 } sl_kind;
typedef enum { SL_VIS_PRIVATE = 0, SL_VIS_PUBLIC = 1 } sl_visibility;

/* At most this many backoff steps per queue. */
#define SL_BACKOFF_MAX 16

typedef struct sl_channel_opts {
    sl_kind kind;
    const char *name;        /* NULL: the id */
    const char *description; /* NULL: "" */
    sl_visibility visibility;
    sl_mode mode;               /* SL_MODE_INHERIT: the server-wide mode */
    double claim_timeout;       /* seconds; <= 0: 300 */
    unsigned max_attempts;      /* 0 = unlimited */
    const char *dead_letter;    /* NULL: "<id>.dead" */
    size_t max_messages;        /* 0 = unbounded */
    size_t retention_max_count; /* topics; 0 = unbounded */
    double retention_max_age;   /* topics; seconds, 0 = unbounded */
    int presence;               /* 1: real-time subscribers are listed (WebSocket presence) */
    int join_leave;             /* 1: real-time subscribers see join/leave pushes */
    /* Queues: the redelivery delay after the n-th attempt failed (a nack without a delay of its
     * own, or an expired lease): backoff[n-1] seconds, the last step repeating. 0 steps: none. */
    double backoff[SL_BACKOFF_MAX];
    size_t nbackoff;
    double dedup_window;        /* seconds an idempotency key is remembered; <= 0: 120 */
    double cursor_idle_timeout; /* topics: a reader's cursor unused this long is dropped; <= 0:
                                   86400 */
} sl_channel_opts;

/* Defaults as documented above. */
void sl_channel_opts_init(sl_channel_opts *o);

/* A channel's description; strings owned by the struct, release with sl_channel_info_clear. */
typedef struct sl_channel_info {
    char *id;
    char *name;
    char *description;
    char *dead_letter;
    sl_kind kind;
    sl_visibility visibility;
    sl_mode mode;
    double claim_timeout;
    unsigned max_attempts;
    size_t max_messages;
    size_t retention_max_count;
    double retention_max_age;
    int presence;
    int join_leave;
    double backoff[SL_BACKOFF_MAX];
    size_t nbackoff;
    double dedup_window;
    double cursor_idle_timeout;
    size_t depth; /* messages held */
    /* The stream's epoch, 16 hex digits: new whenever the stream starts over (the channel is
     * created, or re-created after a delete; with the memory engine, at every start), so a
     * real-time client never recovers an offset of another stream. "" in settings passed in: the
     * engine picks one. */
    char epoch[17];
    /* queues: messages claimed whose lease has not been given back (acknowledged,
     * nacked, or expired and swept); filled by the engines with depth. */
    size_t in_flight;
} sl_channel_info;
void sl_channel_info_clear(sl_channel_info *info);

/* A message. Strings owned; NULL for absent optional fields. `data` is the JSON text that was
 * written; `metadata` a JSON object text or NULL. */
typedef struct sl_message {
    char *id;
    double timestamp;
    char *sender_id;
    char *data;
    char *metadata;
    char *correlation_id;
    char *reply_to;
    char *recipient_id;
    char *origin;            /* the real-time connection that published it (WebSocket client id) */
    char *dead_reason;       /* dead letters: why the message left its queue ("max_attempts",
                                "expired", or the reason a holder gave when terminating it) */
    unsigned attempt;        /* exclusive reads only */
    double claim_expires_at; /* exclusive reads only */
    double expires_at;       /* 0, or when the message expires (a write's ttl) */
    double not_before;       /* engine input: not claimable before (0: at once); reads: 0 */
} sl_message;

typedef struct sl_message_list {
    sl_message *items;
    size_t len;
    int more; /* reads: 1 when messages were left because the read stopped at its limit or byte
                 bound; read again to continue (another reader may take them first) */
} sl_message_list;
/* The bytes a message counts for against a read's byte bound: its data, metadata and other
 * strings (the JSON envelope a transport adds around them is not counted). */
size_t sl_message_size(const sl_message *m);
void sl_message_clear(sl_message *m);
void sl_message_list_free(sl_message_list *l); /* frees items, leaves an empty list */

/* What to write. `data` must be valid JSON text (any value); metadata NULL or a JSON object text.
 */
typedef struct sl_write {
    const char *data;
    size_t data_len;
    const char *metadata;
    const char *correlation_id;
    const char *reply_to;
    const char *recipient_id;
    const char *origin; /* NULL; a WebSocket session sets its client id (history shows it) */
    /* NULL, or 1..255 bytes without control characters: a repeat within the channel's
     * dedup_window stores nothing and answers the first write's id. */
    const char *idempotency_key;
    double delay;      /* queues: seconds before the message can be claimed (0: at once) */
    double not_before; /* queues: epoch seconds before which it cannot be claimed (0: none) */
    double ttl;        /* seconds until it expires undelivered (0: never); see docs/QUEUES.md */
} sl_write;

typedef struct sl_read {
    size_t limit;      /* 0: 10 */
    int exclusive;     /* 1: claim (queues); 0: shared read (topics) */
    const char *after; /* topics: message id; NULL: the reader's own cursor */
    /* Bound on the sum of sl_message_size of the messages returned; 0: none but the context's
     * (sl_ctx_set_read_max_bytes), and a larger value is lowered to it. The first available
     * message is returned even when it alone exceeds the bound, so a reader never stalls; a
     * message that does not fit is neither claimed nor passed by a topic cursor. */
    size_t max_bytes;
} sl_read;

/* All of these run `who` through sl_authorize for their operation first (who NULL = system), then
 * look the channel up: a private channel is invisible (SL_ENOENT) to network callers.
 * Errors: SL_EBADID, SL_EFORBIDDEN, SL_ENOENT, SL_EKIND, SL_EFULL, SL_EINVAL, ... with st filled.
 */
int sl_channel_create(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_channel_opts *o,
                      sl_status *st);
int sl_channel_delete(sl_ctx *ctx, const sl_identity *who, const char *id, sl_status *st);
/* info: release with sl_channel_info_clear. */
int sl_channel_info_get(sl_ctx *ctx, const sl_identity *who, const char *id, sl_channel_info *info,
                        sl_status *st);
/* The channels `who` may read (network callers: public ones only), sorted by id; *out is an array
 * of *n infos, release with sl_channel_infos_free. */
int sl_channel_list(sl_ctx *ctx, const sl_identity *who, sl_channel_info **out, size_t *n,
                    sl_status *st);
void sl_channel_infos_free(sl_channel_info *infos, size_t n);

/* item_id (may be NULL) receives the new id; at least 32 bytes. */
int sl_channel_write(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_write *w,
                     char *item_id, size_t item_id_size, sl_status *st);
/* The size of one item id buffer (ids are 16 hex digits). */
#define SL_ITEM_ID_SIZE 32
/* Writes n messages (1..SL_BATCH_MAX) as one request: stored together or not at all, one
 * durability wait. item_ids (may be NULL) receives n ids in order; a message whose idempotency key
 * repeats gets the first write's id. duplicates (may be NULL) receives how many were such
 * repeats. */
#define SL_BATCH_MAX 10000
int sl_channel_write_batch(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_write *w,
                           size_t n, char (*item_ids)[SL_ITEM_ID_SIZE], size_t *duplicates,
                           sl_status *st);
/* out: release with sl_message_list_free. */
int sl_channel_read(sl_ctx *ctx, const sl_identity *who, const char *id, const sl_read *r,
                    sl_message_list *out, sl_status *st);
/* *count receives how many were acknowledged (claims held by others are not). */
int sl_channel_ack(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                   size_t n, size_t *count, sl_status *st);
/* delay > 0: available again after delay seconds; 0: after the queue's backoff step for the
 * message's attempt (no backoff: at once). */
int sl_channel_nack(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                    size_t n, double delay, size_t *count, sl_status *st);
/* Extends who's live claims on ids to now + seconds (0: the queue's claim_timeout; at most the
 * larger of claim_timeout and 43200). *count: how many were extended. */
int sl_channel_extend(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                      size_t n, double seconds, size_t *count, sl_status *st);
/* Drops who's live claims on ids for good: each goes to the queue's dead-letter channel with
 * dead_reason = reason (NULL: "terminated"; at most 1024 bytes), or is dropped when the queue has
 * none; never redelivered. *count: how many were terminated. */
int sl_channel_terminate(sl_ctx *ctx, const sl_identity *who, const char *id,
                         const char *const *ids, size_t n, const char *reason, size_t *count,
                         sl_status *st);
int sl_channel_clear(sl_ctx *ctx, const sl_identity *who, const char *id, size_t *count,
                     sl_status *st);
/* before: drop messages with timestamp < before (0: no age bound); max_count: keep at most the
 * newest max_count (SIZE_MAX: no count bound). */
int sl_channel_evict(sl_ctx *ctx, const sl_identity *who, const char *id, double before,
                     size_t max_count, size_t *count, sl_status *st);
int sl_channel_remove(sl_ctx *ctx, const sl_identity *who, const char *id, const char *const *ids,
                      size_t n, size_t *count, sl_status *st);

/* ---- ACL
 * ------------------------------------------------------------------------------------------ */

/* Replace principal's entry: role on the channel patterns (n == 0: on all channels). Takes effect
 * on the next call. */
int sl_acl_grant(sl_ctx *ctx, const sl_identity *who, const char *principal, sl_role role,
                 const char *const *patterns, size_t n, sl_status *st);
/* The same with deny patterns (docs/POLICY.md "Deny rules"): a channel matching one of
 * deny[0..ndeny) is denied to principal on every transport and under every mode, whatever grants,
 * token scopes or broker roles allow. */
int sl_acl_grant_deny(sl_ctx *ctx, const sl_identity *who, const char *principal, sl_role role,
                      const char *const *patterns, size_t n, const char *const *deny, size_t ndeny,
                      sl_status *st);
/* SL_ENOENT when the principal has no entry. */
int sl_acl_revoke(sl_ctx *ctx, const sl_identity *who, const char *principal, sl_status *st);

typedef struct sl_acl_entry {
    char *principal;
    sl_role role;
    char **channels; /* NULL/0: all channels */
    size_t nchannels;
    char **deny; /* channel patterns denied whatever allows them (NULL/0: none) */
    size_t ndeny;
} sl_acl_entry;
/* *out: array of *n entries sorted by principal; release with sl_acl_entries_free. */
int sl_acl_list(sl_ctx *ctx, const sl_identity *who, sl_acl_entry **out, size_t *n, sl_status *st);
void sl_acl_entries_free(sl_acl_entry *e, size_t n);

#ifdef __cplusplus
}
#endif
#endif
