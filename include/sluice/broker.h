/* The token broker's policy: which channels a principal may get a token for (an authorizer), which
 * services may mint tokens on behalf of which principals (delegation), and the minting itself.
 * Two authorizers are built in: allow-all (development only) and the role authorizer, where
 * principals hold named roles and each role grants channel patterns with a sluice role. No I/O. */
#ifndef SLUICE_BROKER_H
#define SLUICE_BROKER_H

#include <stddef.h>

#include <sluice/jwt.h>
#include <sluice/sluice.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_broker sl_broker;
struct sl__kv; /* the durable table store (internal: src/store/kv.h) */

typedef struct sl_broker_opts {
    double default_ttl;     /* seconds when the request gives none; 0: 3600 */
    double max_ttl;         /* every lifetime is clamped to this; 0: 86400 */
    int allow_all;          /* 1: every requested channel is granted (development only) */
    sl_role allow_all_role; /* the token role under allow-all; SL_ROLE_NONE: write */
} sl_broker_opts;

/* *out owned by the caller, released with sl_broker_free. opts may be NULL (defaults). */
int sl_broker_new(sl_broker **out, const sl_broker_opts *opts);
void sl_broker_free(sl_broker *b);
double sl_broker_default_ttl(const sl_broker *b);
double sl_broker_max_ttl(const sl_broker *b);

/* Defines (or replaces) a role: the channel patterns it grants and the sluice role tokens get. */
int sl_broker_set_role(sl_broker *b, const char *name, sl_role grants, const char *const *patterns,
                       size_t n);
/* The same with deny patterns (docs/POLICY.md "Deny rules"): a channel matching one of
 * deny[0..ndeny) is never granted to a principal holding this role, whatever this or its other
 * roles allow, and (through sl_broker_denies) is denied at request time under every mode. A
 * pattern may end with "#{sub}" ("inbox#{sub}"): it grants the user-limited channel of the asking
 * principal, expanded at decision time, and only when the principal is a valid user id
 * (sl_channel_user_valid), so no principal can widen it. */
int sl_broker_set_role_deny(sl_broker *b, const char *name, sl_role grants,
                            const char *const *patterns, size_t n, const char *const *deny,
                            size_t ndeny);
/* 1 when a role principal holds denies channel (NULL: a global operation, denied only by "**"). */
int sl_broker_denies(const sl_broker *b, const char *principal, const char *channel);
/* Gives principal exactly these roles (n == 0: none; the principal is removed). Unknown role names
 * are allowed (they grant nothing until defined). With a kv attached (sl_broker_attach), also the
 * kv's error when the change cannot be staged. */
int sl_broker_assign(sl_broker *b, const char *principal, const char *const *roles, size_t n);
/* Makes role assignments (sl_broker_assign) durable in kv (borrowed: it must outlive b). First
 * loads every stored assignment (replacing any already made for the same principal); from then on
 * sl_broker_assign stages the matching kv write (put, or delete for n == 0) in the same call,
 * before returning SL_OK, and returns the kv's error (assignments unchanged) when it cannot. The
 * caller makes the reply wait on kv->ops->barrier. Role definitions (sl_broker_set_role) and
 * delegation rules are configuration and are not stored. Attach before applying the
 * configuration's assignments: for the same principal the later call (the configuration) wins,
 * and is stored; every other assignment made at runtime survives.
 *
 * Stored: table SL__KV_BROKER, key = the principal's bytes, value = JSON
 * {"v":1,"roles":["role",...]} (never empty: a principal without roles is deleted).
 *
 * Errors: SL_EFORMAT (st names the table and key) when a stored value does not decode, SL_ENOMEM,
 * the kv's scan error, SL_EINVAL (already attached); b is then not attached and, except after an
 * SL_ENOMEM while applying, unchanged. */
int sl_broker_attach(sl_broker *b, struct sl__kv *kv, sl_status *st);

/* Lets service mint tokens on behalf of principals matching any of the patterns ("*" any
 * principal, "prefix*" a prefix, else exact). */
int sl_broker_allow_delegation(sl_broker *b, const char *service, const char *const *patterns,
                               size_t n);
int sl_broker_may_delegate(const sl_broker *b, const char *service, const char *principal);

typedef struct sl_broker_denial {
    char *channel;
    const char *reason; /* static text */
} sl_broker_denial;

typedef struct sl_broker_decision {
    char **granted;
    size_t ngranted;
    sl_broker_denial *denied;
    size_t ndenied;
    sl_role role; /* the token's role: the least role among those that granted a channel */
    /* the workspace of the credential that asked (sl_broker_decide): the token's "ws"
     * claim, never another */
    char workspace[SL_WORKSPACE_MAX + 1];
} sl_broker_decision;
void sl_broker_decision_clear(sl_broker_decision *d);

/* A pluggable authorizer: fills d (granted, denied with static reasons, the token's role) for the
 * channels principal asks for; d is zeroed on entry. SL_OK or an error (e.g. SL_EUNAVAIL, which the
 * broker answers with 503). The built-ins are the role authorizer (the default) and allow-all. */
typedef int (*sl_broker_authorizer_fn)(void *ud, const char *principal, const char *const *channels,
                                       size_t n, sl_broker_decision *d);
/* Replaces the authorizer (fn NULL: back to the built-in one the options chose). ud borrowed. */
void sl_broker_set_authorizer(sl_broker *b, sl_broker_authorizer_fn fn, void *ud);

/* Decides each requested channel for principal through the authorizer. Invalid channel ids are
 * denied ("invalid channel id"), so are channels no role of principal matches ("no matching role")
 * and, whichever authorizer decided, channels a role of principal denies ("denied by a role's deny
 * rule").
 * Then, whatever the authorizer said, the decision is clamped to cred, the credential that asked
 * (the caller itself, or the delegating service): channels outside cred's scope are denied
 * ("outside the credential's scope") and the role is lowered to cred's role when it carries one.
 * cred NULL: the process itself (configuration, tests), nothing to clamp. d is the caller's, to
 * clear. */
int sl_broker_decide(const sl_broker *b, const sl_identity *cred, const char *principal,
                     const char *const *channels, size_t n, sl_broker_decision *d);

typedef struct sl_broker_token {
    char *token;                            /* owned; the minted JWT (free with free()) */
    char token_id[SL_JWT_TOKEN_ID_LEN + 1]; /* bound to sub: sl_jwt_token_id_of */
    double issued_at, expires_at;
} sl_broker_token;

/* Mints a sluice token for sub with d's granted channels and role, lifetime ttl (<= 0: the
 * default) clamped to the maximum; act_sub (NULL: none) is the delegating service. */
int sl_broker_mint(const sl_broker *b, sl_jwt_keyring *kr, const char *sub, const char *act_sub,
                   const sl_broker_decision *d, double ttl, double now, sl_broker_token *out);

/* The principal's roles in order of assignment; *roles points into b (valid until changed). */
size_t sl_broker_roles_of(const sl_broker *b, const char *principal, const char *const **roles);

#ifdef __cplusplus
}
#endif
#endif
