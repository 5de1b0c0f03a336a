/* The config file parser (sl__config_parse): INI-like lines. Top-level "key = value" options
 * (handed to sl__config_set), then sections "[channel ID]" (channel options), "[acl PRINCIPAL]"
 * (role and channels), "[invoke_policy PATTERN]" and the broker's "[role]", "[principal]",
 * "[delegate]". '#' starts a comment line. Every error names the file and line. It takes the text
 * and the file's name and does no I/O, so the fuzz target drives it directly (fuzz/fuzz_config.c);
 * the ACL file (aclfile.c) is read by the same parser. */
#include "server/config.h"
#include "server/config_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_channel(sl__cfg_channel *ch, const char *key, const char *v, sl_status *st)
{
    sl_channel_opts *o = &ch->opts;
    unsigned long long u;
    if (!strcmp(key, "kind")) {
        if (strcmp(v, "queue") && strcmp(v, "topic"))
            return sl_status_set(st, SL_ECONFIG, "kind must be queue or topic");
        o->kind = !strcmp(v, "topic") ? SL_KIND_TOPIC : SL_KIND_QUEUE;
    } else if (!strcmp(key, "visibility")) {
        if (strcmp(v, "public") && strcmp(v, "private"))
            return sl_status_set(st, SL_ECONFIG, "visibility must be public or private");
        o->visibility = !strcmp(v, "public") ? SL_VIS_PUBLIC : SL_VIS_PRIVATE;
    } else if (!strcmp(key, "security")) {
        int m = (int)sl_mode_parse(v);
        if (m < 0)
            return sl_status_set(st, SL_ECONFIG,
                                 "security must be inherit, open, acl, token or policy");
        o->mode = (sl_mode)m;
    } else if (!strcmp(key, "name")) {
        free(ch->name);
        o->name = ch->name = strdup(v);
    } else if (!strcmp(key, "description")) {
        free(ch->description);
        o->description = ch->description = strdup(v);
    } else if (!strcmp(key, "dead_letter")) {
        if (!sl_channel_id_valid(v, strlen(v)))
            return sl_status_set(st, SL_ECONFIG, "dead_letter must be a channel id");
        free(ch->dead_letter);
        o->dead_letter = ch->dead_letter = strdup(v);
    } else if (!strcmp(key, "claim_timeout") || !strcmp(key, "retention_max_age")) {
        double d;
        if (sl__config_parse_seconds(v, &d) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be a number of seconds", key);
        *(key[0] == 'c' ? &o->claim_timeout : &o->retention_max_age) = d;
    } else if (!strcmp(key, "dedup_window") || !strcmp(key, "cursor_idle_timeout")) {
        double d;
        if (sl__config_parse_seconds(v, &d) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be a number of seconds", key);
        *(key[0] == 'd' ? &o->dedup_window : &o->cursor_idle_timeout) = d;
    } else if (!strcmp(key, "backoff")) {
        /* Comma-separated seconds: "1, 5, 30, 300". */
        char buf[SL__CONFIG_MAX_LINE];
        snprintf(buf, sizeof buf, "%s", v);
        o->nbackoff = 0;
        for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
             tok = strtok_r(NULL, ", \t", &save)) {
            if (o->nbackoff == SL_BACKOFF_MAX ||
                sl__config_parse_seconds(tok, &o->backoff[o->nbackoff]) < 0)
                return sl_status_set(st, SL_ECONFIG,
                                     "backoff must be at most %d comma-separated seconds",
                                     SL_BACKOFF_MAX);
            o->nbackoff++;
        }
    } else if (!strcmp(key, "presence") || !strcmp(key, "join_leave")) {
        if (sl__config_parse_bool(v, key[0] == 'p' ? &o->presence : &o->join_leave) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be true or false", key);
    } else if (!strcmp(key, "max_attempts")) {
        if (sl__config_parse_uint(v, 1000000, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "max_attempts must be 0..1000000");
        o->max_attempts = (unsigned)u;
    } else if (!strcmp(key, "max_messages") || !strcmp(key, "retention_max_count")) {
        if (sl__config_parse_uint(v, 1ULL << 40, &u) < 0)
            return sl_status_set(st, SL_ECONFIG, "%s must be a non-negative integer", key);
        *(key[0] == 'm' ? &o->max_messages : &o->retention_max_count) = (size_t)u;
    } else {
        return sl_status_set(st, SL_ECONFIG, "unknown channel option '%.64s'", key);
    }
    return SL_OK;
}

static int set_grant(sl__cfg_grant *g, const char *key, const char *v, sl_status *st)
{
    if (!strcmp(key, "role")) {
        if ((g->role = sl_role_parse(v)) == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG, "role must be read, write or admin");
    } else if (!strcmp(key, "channels") || !strcmp(key, "deny")) { /* deny */
        /* Comma-separated patterns. */
        int deny = key[0] == 'd';
        char buf[SL__CONFIG_MAX_LINE];
        snprintf(buf, sizeof buf, "%s", v);
        for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
             tok = strtok_r(NULL, ", \t", &save)) {
            if (!sl_pattern_valid(tok, strlen(tok)))
                return sl_status_set(st, SL_ECONFIG, "invalid channel pattern '%.64s'", tok);
            if (sl__config_push_str(deny ? &g->deny : &g->patterns,
                                    deny ? &g->ndeny : &g->npatterns, tok) != SL_OK)
                return sl_status_set(st, SL_ENOMEM, NULL);
        }
    } else {
        return sl_status_set(st, SL_ECONFIG, "unknown acl option '%.64s'", key);
    }
    return SL_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

enum { SEC_TOP, SEC_CHANNEL, SEC_ACL, SEC_ROLE, SEC_PRINCIPAL, SEC_DELEGATE, SEC_INVOKE };

static int add_named(sl__cfg_named **v, size_t *n, const char *name)
{
    sl__cfg_named *nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return SL_ENOMEM;
    *v = nv;
    memset(&nv[*n], 0, sizeof *nv);
    if ((nv[*n].name = strdup(name)) == NULL)
        return SL_ENOMEM;
    (*n)++;
    return SL_OK;
}

/* Comma- or space-separated items, each checked by ok(). */
static int add_items(sl__cfg_named *e, const char *v, int (*ok)(const char *), const char *what,
                     sl_status *st)
{
    char buf[SL__CONFIG_MAX_LINE];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save)) {
        if (!ok(tok))
            return sl_status_set(st, SL_ECONFIG, "invalid %s '%.64s'", what, tok);
        if (sl__config_push_str(&e->items, &e->nitems, tok) != SL_OK)
            return sl_status_set(st, SL_ENOMEM, NULL);
    }
    return SL_OK;
}

static int ok_pattern(const char *s)
{
    return sl_pattern_valid(s, strlen(s));
}

/* a role's pattern may end with "#{sub}": the asking principal's user-limited channel */
static int ok_role_pattern(const char *s)
{
    size_t n = strlen(s), k = strlen("#{sub}");
    if (n > k && !strcmp(s + n - k, "#{sub}")) {
        char probe[SL_CHANNEL_ID_MAX + 3];
        if (n - k + 2 > SL_CHANNEL_ID_MAX)
            return 0;
        snprintf(probe, sizeof probe, "%.*s#x", (int)(n - k), s);
        return sl_pattern_valid(probe, strlen(probe));
    }
    return sl_pattern_valid(s, n);
}

/* [invoke_policy PATTERN] options; the rules themselves are checked when applied. */
static int set_invoke(sl__cfg_invoke *p, const char *key, const char *v, sl_status *st)
{
    if (!strcmp(key, "audit")) {
        if (sl__config_parse_bool(v, &p->audit) < 0)
            return sl_status_set(st, SL_ECONFIG, "audit must be true or false");
        return SL_OK;
    }
    if (strcmp(key, "allow") != 0 && strcmp(key, "deny") != 0)
        return sl_status_set(st, SL_ECONFIG, "unknown invoke_policy option '%.64s'", key);
    int deny = key[0] == 'd';
    char buf[SL__CONFIG_MAX_LINE];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save))
        if (sl__config_push_str(deny ? &p->deny : &p->allow, deny ? &p->ndeny : &p->nallow, tok) !=
            SL_OK)
            return sl_status_set(st, SL_ENOMEM, NULL);
    return SL_OK;
}

static int ok_name(const char *s)
{
    return sl_principal_valid(s, strlen(s));
}

static int ok_principal_pattern(const char *s)
{
    size_t n = strlen(s);
    return (n == 1 && s[0] == '*') ||
           (n > 1 && s[n - 1] == '*' && sl_principal_valid(s, n - 1) && !memchr(s, '*', n - 1)) ||
           (sl_principal_valid(s, n) && !memchr(s, '*', n));
}

static int set_named(int sec, sl__cfg_named *e, const char *key, const char *v, sl_status *st)
{
    if (sec == SEC_ROLE && !strcmp(key, "grants")) {
        if ((e->grants = sl_role_parse(v)) == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG, "grants must be read, write or admin");
        return SL_OK;
    }
    if (sec == SEC_ROLE && !strcmp(key, "channels"))
        return add_items(e, v, ok_role_pattern, "channel pattern", st);
    if (sec == SEC_ROLE && !strcmp(key, "deny")) {
        sl__cfg_named d = {.items = e->deny, .nitems = e->ndeny};
        int rc = add_items(&d, v, ok_pattern, "channel pattern", st);
        e->deny = d.items;
        e->ndeny = d.nitems;
        return rc;
    }
    if (sec == SEC_PRINCIPAL && !strcmp(key, "roles"))
        return add_items(e, v, ok_name, "role name", st);
    if (sec == SEC_DELEGATE && !strcmp(key, "principals"))
        return add_items(e, v, ok_principal_pattern, "principal pattern", st);
    return sl_status_set(st, SL_ECONFIG, "unknown %s option '%.64s'",
                         sec == SEC_ROLE        ? "role"
                         : sec == SEC_PRINCIPAL ? "principal"
                                                : "delegate",
                         key);
}

/* "[channel ID]" / "[acl PRINCIPAL]": opens a new section. */
static int open_section(sl__config *c, char *hdr, int *sec, sl_status *st)
{
    size_t n = strlen(hdr);
    if (n < 2 || hdr[n - 1] != ']')
        return sl_status_set(st, SL_ECONFIG, "section header must end with ']'");
    hdr[n - 1] = '\0';
    char *body = trim(hdr + 1);
    char *sp = strpbrk(body, " \t");
    if (sp == NULL)
        return sl_status_set(st, SL_ECONFIG, "section must be [channel ID] or [acl PRINCIPAL]");
    *sp = '\0';
    char *arg = trim(sp + 1);
    if (!strcmp(body, "channel")) {
        if (!sl_channel_id_valid(arg, strlen(arg)))
            return sl_status_set(st, SL_ECONFIG, "invalid channel id '%.64s'", arg);
        sl__cfg_channel *nc = realloc(c->channels, (c->nchannels + 1) * sizeof *nc);
        if (nc == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        c->channels = nc;
        memset(&nc[c->nchannels], 0, sizeof *nc);
        sl_channel_opts_init(&nc[c->nchannels].opts);
        /* A server's configured channels are for its clients: public unless declared private. */
        nc[c->nchannels].opts.visibility = SL_VIS_PUBLIC;
        nc[c->nchannels].id = strdup(arg);
        c->nchannels++;
        *sec = SEC_CHANNEL;
    } else if (!strcmp(body, "acl")) {
        if (!sl_principal_valid(arg, strlen(arg)))
            return sl_status_set(st, SL_ECONFIG, "invalid principal '%.64s'", arg);
        sl__cfg_grant *ng = realloc(c->grants, (c->ngrants + 1) * sizeof *ng);
        if (ng == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        c->grants = ng;
        memset(&ng[c->ngrants], 0, sizeof *ng);
        ng[c->ngrants].principal = strdup(arg);
        c->ngrants++;
        *sec = SEC_ACL;
    } else if (!strcmp(body, "invoke_policy")) {
        if (!sl_principal_valid(arg, strlen(arg)))
            return sl_status_set(st, SL_ECONFIG, "invalid principal pattern '%.64s'", arg);
        sl__cfg_invoke *ni = realloc(c->invokes, (c->ninvokes + 1) * sizeof *ni);
        if (ni == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        c->invokes = ni;
        memset(&ni[c->ninvokes], 0, sizeof *ni);
        if ((ni[c->ninvokes].principal = strdup(arg)) == NULL)
            return sl_status_set(st, SL_ENOMEM, NULL);
        c->ninvokes++;
        *sec = SEC_INVOKE;
    } else if (!strcmp(body, "role") || !strcmp(body, "principal") || !strcmp(body, "delegate")) {
        if (!sl_principal_valid(arg, strlen(arg)))
            return sl_status_set(st, SL_ECONFIG, "invalid %s name '%.64s'", body, arg);
        int rc = body[0] == 'r'   ? add_named(&c->roles, &c->nroles, arg)
                 : body[0] == 'p' ? add_named(&c->principals, &c->nprincipals, arg)
                                  : add_named(&c->delegates, &c->ndelegates, arg);
        if (rc != SL_OK)
            return sl_status_set(st, rc, NULL);
        *sec = body[0] == 'r' ? SEC_ROLE : body[0] == 'p' ? SEC_PRINCIPAL : SEC_DELEGATE;
    } else {
        return sl_status_set(st, SL_ECONFIG, "unknown section '%.64s'", body);
    }
    return SL_OK;
}

int sl__config_parse(sl__config *c, const char *text, size_t len, const char *filename,
                     sl_status *st)
{
    int sec = SEC_TOP;
    size_t lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        char line[SL__CONFIG_MAX_LINE];
        sl_status inner;
        sl_status_clear(&inner);
        int rc = SL_OK;
        if (n >= sizeof line) {
            rc = sl_status_set(&inner, SL_ECONFIG, "line longer than %d bytes", SL__CONFIG_MAX_LINE - 1);
        } else if (memchr(p, '\0', n)) {
            rc = sl_status_set(&inner, SL_ECONFIG, "NUL byte");
        } else {
            memcpy(line, p, n);
            line[n] = '\0';
            char *s = trim(line);
            if (*s == '\0' || *s == '#') {
                /* blank or comment */
            } else if (*s == '[') {
                rc = open_section(c, s, &sec, &inner);
            } else {
                char *eq = strchr(s, '=');
                if (eq == NULL) {
                    rc = sl_status_set(&inner, SL_ECONFIG, "expected 'key = value'");
                } else {
                    *eq = '\0';
                    char *key = trim(s), *val = trim(eq + 1);
                    if (sec == SEC_TOP)
                        rc = sl__config_set(c, key, val, &inner);
                    else if (sec == SEC_CHANNEL)
                        rc = set_channel(&c->channels[c->nchannels - 1], key, val, &inner);
                    else if (sec == SEC_ACL)
                        rc = set_grant(&c->grants[c->ngrants - 1], key, val, &inner);
                    else if (sec == SEC_ROLE)
                        rc = set_named(sec, &c->roles[c->nroles - 1], key, val, &inner);
                    else if (sec == SEC_PRINCIPAL)
                        rc = set_named(sec, &c->principals[c->nprincipals - 1], key, val, &inner);
                    else if (sec == SEC_INVOKE)
                        rc = set_invoke(&c->invokes[c->ninvokes - 1], key, val, &inner);
                    else
                        rc = set_named(sec, &c->delegates[c->ndelegates - 1], key, val, &inner);
                }
            }
        }
        if (rc != SL_OK)
            return sl_status_set(st, SL_ECONFIG, "%s:%zu: %s", filename, lineno, inner.message);
        p = nl ? nl + 1 : end;
    }
    for (size_t i = 0; i < c->nroles; i++)
        if (c->roles[i].grants == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG, "%s: [role %s] has no grants", filename,
                                 c->roles[i].name);
    for (size_t i = 0; i < c->ngrants; i++)
        if (c->grants[i].role == SL_ROLE_NONE)
            return sl_status_set(st, SL_ECONFIG, "%s: [acl %s] has no role", filename,
                                 c->grants[i].principal);
    return SL_OK;
}
