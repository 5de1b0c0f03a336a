/* Shared by the configuration fuzz targets: what must hold of any configuration that
 * sl__config_load accepted. Every key reads back (sl__config_format) as its default or as a value
 * the setter accepts and that reads back the same on a fresh configuration, so no setting can
 * depend on, or reach into, another; a refused one comes with a code and a message. Violations
 * abort. */
#ifndef SLUICE_FUZZ_CONFIG_CHECK_H
#define SLUICE_FUZZ_CONFIG_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"

static void config_check_fail(const char *key, const char *what, const char *got, const char *want)
{
    fprintf(stderr, "config invariant broken: %s: %s: got '%s', want '%s'\n", key, what,
            got ? got : "(null)", want ? want : "(null)");
    abort();
}

/* Sets key to each item of a repeatable key, as the struct holds them, on a fresh config. */
static void config_check_repeatable(const sl__config *c, const char *key, sl__config *fresh)
{
    sl_status st;
    if (!strcmp(key, "admin")) {
        for (size_t i = 0; i < c->nadmins; i++)
            if (sl__config_set(fresh, key, c->admins[i], &st) != SL_OK)
                config_check_fail(key, st.message, c->admins[i], "accepted");
    } else if (!strcmp(key, "jwt_key")) {
        for (size_t i = 0; i < c->nkeys; i++) {
            if (c->keys[i].kid == NULL)
                continue;
            char *buf = malloc(strlen(c->keys[i].kid) + strlen(c->keys[i].secret_file) + 2);
            if (buf == NULL)
                abort();
            sprintf(buf, "%s:%s", c->keys[i].kid, c->keys[i].secret_file);
            if (sl__config_set(fresh, key, buf, &st) != SL_OK)
                config_check_fail(key, st.message, buf, "accepted");
            free(buf);
        }
    } else if (!strcmp(key, "auth_mode")) { /* signed requests: one PREFIX=MODE per prefix */
        for (size_t i = 0; i < c->nauth_modes; i++)
            if (sl__config_set(fresh, key, c->auth_modes[i], &st) != SL_OK)
                config_check_fail(key, st.message, c->auth_modes[i], "accepted");
    } else if (!strcmp(key, "authz_override")) { /* one PATTERN=MODE per pattern */
        for (size_t i = 0; i < c->nauthz_overrides; i++)
            if (sl__config_set(fresh, key, c->authz_overrides[i], &st) != SL_OK)
                config_check_fail(key, st.message, c->authz_overrides[i], "accepted");
    } else if (!strcmp(key, "workspace_limits")) { /* one entry per workspace */
        for (size_t i = 0; i < c->nworkspace_limits; i++)
            if (sl__config_set(fresh, key, c->workspace_limits[i], &st) != SL_OK)
                config_check_fail(key, st.message, c->workspace_limits[i], "accepted");
    } else if (!strcmp(key, "workspace_operators")) {
        for (size_t i = 0; i < c->nworkspace_operators; i++)
            if (sl__config_set(fresh, key, c->workspace_operators[i], &st) != SL_OK)
                config_check_fail(key, st.message, c->workspace_operators[i], "accepted");
    } else if (!strcmp(key, "metrics_channels")) {
        for (size_t i = 0; i < c->nmetrics_channels; i++)
            if (sl__config_set(fresh, key, c->metrics_channels[i], &st) != SL_OK)
                config_check_fail(key, st.message, c->metrics_channels[i], "accepted");
    } else if (!strcmp(key, "listen")) {
        for (size_t i = 0; i < c->nlisteners; i++)
            if (sl__config_set(fresh, key, c->listeners[i].text, &st) != SL_OK)
                config_check_fail(key, st.message, c->listeners[i].text, "accepted");
    } else {
        config_check_fail(key, "a repeatable key the fuzz check does not know", NULL, NULL);
    }
}

static void config_check(const sl__config *c)
{
    size_t n;
    const sl__config_key *keys = sl__config_keys(&n);
    for (size_t k = 0; k < n; k++) {
        const char *key = keys[k].name;
        char *v = sl__config_format(c, key);
        if (v == NULL)
            config_check_fail(key, "cannot be read back", NULL, NULL);
        sl__config fresh;
        sl__config_init(&fresh);
        char *dflt = sl__config_format(&fresh, key); /* may be a sentinel ("0": follow another) */
        int is_default = dflt && !strcmp(v, dflt);
        free(dflt);
        sl_status st;
        sl_status_clear(&st);
        if (keys[k].repeatable)
            config_check_repeatable(c, key, &fresh);
        else if (!is_default && sl__config_set(&fresh, key, v, &st) != SL_OK)
            config_check_fail(key, st.message, v, "its own value accepted");
        char *again = sl__config_format(&fresh, key);
        if (again == NULL || strcmp(v, again) != 0)
            config_check_fail(key, "round trip", again, v);
        free(again);
        free(v);
        sl__config_free(&fresh);
    }
}

/* After a failed load: an error code and a terminated, non-empty message. */
static void config_check_message(const sl_status *st)
{
    if (st->code == SL_OK || memchr(st->message, '\0', sizeof st->message) == NULL ||
        st->message[0] == '\0')
        config_check_fail("status", "no code or no message", NULL, NULL);
}

/* Runs the whole pipeline on argv and src, then the checks that fit its outcome. */
static inline void config_check_load(int argc, char **argv, const sl__config_source *src)
{
    sl__config c;
    sl__config_init(&c);
    sl_status st;
    sl_status_clear(&st);
    if (sl__config_load(&c, argc, argv, src, &st) == SL_OK)
        config_check(&c);
    else
        config_check_message(&st);
    sl__config_free(&c);
}

#endif
