/* sluiced's ACL file ([acl PRINCIPAL] sections, docs/OPERATIONS.md): read, parsed, checked
 * against the configuration's own grants and applied at start and on SIGHUP, with the
 * principals it granted remembered in the store so that a later load revokes the ones the file
 * no longer names (server/aclfile.h does the parsing and applying). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/aclfile.h"
#include "server/log.h"
#include "server/sluiced.h"
#include "store/kv.h"

/* The stored principals of the last applied ACL file (kv scan callback; prefix matches count
 * only when the whole key is ours). */
static int load_acl_state(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    server *s = ud;
    if (klen != strlen(SL__ACLFILE_KV_KEY))
        return SL_OK;
    sl_status st;
    sl_status_clear(&st);
    int rc = sl__aclfile_state_decode(&s->aclfile, val, vlen, &st);
    if (rc != SL_OK)
        fprintf(stderr, "sluiced: %s\n", st.message);
    return rc;
}

/* The ACL file: read, parsed, checked against the configuration's own grants, then
 * applied (server/aclfile.h). At start (and under --check-config) a failure stops sluiced; on
 * SIGHUP the ACL stays as it was when the file does not read, parse or check (*applying 0), and
 * keeps what was applied before an error while applying (*applying 1). The file is small and
 * local: read on the loop, like the TLS files. */
int sl__sluiced_load_acl_file(server *s, const sl__config *cfg, int *applying, sl_status *st)
{
    if (applying)
        *applying = 0;
    if (cfg->acl_file == NULL)
        return SL_OK;
    char *text = NULL;
    size_t len = 0;
    int rc = sl__sluiced_read_file(NULL, cfg->acl_file, &text, &len, st);
    if (rc != SL_OK)
        return rc;
    sl__config file;
    sl__config_init(&file);
    if (len > SL__ACLFILE_MAX)
        rc = sl_status_set(st, SL_ECONFIG, "%s: larger than %u bytes", cfg->acl_file,
                           SL__ACLFILE_MAX);
    if (rc == SL_OK)
        rc = sl__aclfile_parse(&file, text, len, cfg->acl_file, st);
    free(text);
    if (rc == SL_OK)
        rc = sl__aclfile_check_overlap(&file, cfg, cfg->acl_file, st);
    size_t changed = 0, removed = 0;
    if (rc == SL_OK && applying)
        *applying = 1;
    sl__kv *kv = s->checking ? NULL : sl__sluiced_state_kv(s);
    if (rc == SL_OK && kv && applying == NULL) { /* at start: what the last run's file named */
        rc = kv->ops->scan(kv, SL__KV_META, SL__ACLFILE_KV_KEY, strlen(SL__ACLFILE_KV_KEY),
                           load_acl_state, s);
        if (rc != SL_OK)
            rc = sl_status_set(st, rc, "the stored acl_file state (table meta) does not load");
        /* granted by the configuration now: the configuration's, not to be revoked */
        sl__aclfile_state_forget(&s->aclfile, cfg);
    }
    int applied = rc == SL_OK;
    if (rc == SL_OK)
        rc = sl__aclfile_apply(s->ctx, &file, &s->aclfile, &changed, &removed, st);
    if (kv && applied) { /* even after a failed apply: the state then names both loads' ones */
        char *v;
        size_t vlen;
        int src = sl__aclfile_state_encode(&s->aclfile, &v, &vlen);
        if (src == SL_OK) {
            src = kv->ops->put(kv, SL__KV_META, SL__ACLFILE_KV_KEY, strlen(SL__ACLFILE_KV_KEY), v,
                               vlen);
            free(v);
        }
        if (src != SL_OK && rc == SL_OK)
            rc = sl_status_set(st, src, "cannot store the acl_file state");
    }
    if (rc == SL_OK && !s->checking)
        sl__logf(s->log, SL__LOG_INFO, NULL, "acl_file %s: %zu grants, %zu changed, %zu revoked",
                 cfg->acl_file, file.ngrants, changed, removed);
    sl__config_free(&file);
    return rc;
}
