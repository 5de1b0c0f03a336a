/* The ACL file (config key acl_file): [acl PRINCIPAL] sections in the config file's
 * syntax, applied by sluiced at start and again on SIGHUP, so grants can be edited and reloaded
 * without a restart. The file owns the principals it names: a reload sets each one's grant to
 * the file's and revokes the grants of the principals the previous load named and this one does
 * not; every other grant (the config's [acl] sections and --admin, runtime ones over HTTP) is left
 * alone. Nothing here does I/O: sluiced reads the file and hands over its text. */
#ifndef SLUICE_SERVER_ACLFILE_H
#define SLUICE_SERVER_ACLFILE_H

#include <stddef.h>

#include <sluice/sluice.h>

#include "server/config.h"

/* The largest ACL file read (a bound for sluiced's reader; larger files are refused). */
#define SL__ACLFILE_MAX (16u << 20)

/* Parses an ACL file's text into out (initialised by the caller with sl__config_init; only its
 * grants are filled; free it with sl__config_free). The file may hold only [acl PRINCIPAL]
 * sections (role, channels, deny), each principal once and valid. SL_ECONFIG with st "FILE:LINE:
 * what is wrong" or "FILE: what is wrong"; out then holds whatever was parsed (free it). */
int sl__aclfile_parse(sl__config *out, const char *text, size_t len, const char *filename,
                      sl_status *st);

/* SL_ECONFIG when a principal of the file is also granted by the configuration ([acl] sections,
 * admin): two sources for one grant would silently override each other. */
int sl__aclfile_check_overlap(const sl__config *file, const sl__config *cfg, const char *filename,
                              sl_status *st);

/* The principals the last applied load named (owned). Zero-initialise; free with
 * sl__aclfile_state_free. */
typedef struct sl__aclfile_state {
    char **principals;
    size_t n;
} sl__aclfile_state;
void sl__aclfile_state_free(sl__aclfile_state *s);

/* Drops from *s the principals cfg grants ([acl] sections, admin): a stored state from a run
 * before they moved from the file into the configuration must not revoke them. */
void sl__aclfile_state_forget(sl__aclfile_state *s, const sl__config *cfg);

/* Where sluiced keeps *state between runs, so that a principal taken out of the file while it was
 * stopped is revoked at the next start too: table meta (store/kv.h), this key, the value
 * {"v":1,"principals":["p",...]}. */
#define SL__ACLFILE_KV_KEY "acl_file"
/* *out (malloc'd, not NUL-terminated; the caller frees) of *len bytes. SL_ENOMEM. */
int sl__aclfile_state_encode(const sl__aclfile_state *s, char **out, size_t *len);
/* Replaces *s by the stored value. SL_EFORMAT (st says what) when it does not decode: not JSON,
 * another version, a principal that is not one; *s is then unchanged. SL_ENOMEM. */
int sl__aclfile_state_decode(sl__aclfile_state *s, const void *val, size_t vlen, sl_status *st);

/* Applies a parsed file to ctx as the system (who NULL: audited, and WebSocket sessions re-check
 * through SL_EVENT_ACL_CHANGED): grants what differs from the ACL, revokes the principals of
 * *state that the file no longer names, then makes *state the file's principals. *changed and
 * *removed (may be NULL) get the counts. On an error (SL_ENOMEM, the audit sink's or the store's
 * error, in st) the changes made so far stay and *state names both loads' principals, so the next
 * load still revokes what it must. */
int sl__aclfile_apply(sl_ctx *ctx, const sl__config *file, sl__aclfile_state *state,
                      size_t *changed, size_t *removed, sl_status *st);

#endif
