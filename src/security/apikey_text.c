/* The API-key store file's text format (docs/APIKEYS.md): one JSON object a line, parsed into
 * entries sorted by id with every field checked (a message names the file, line and field, never
 * a secret), and written back the same way. The kv's records use the same line format. No I/O. */
#include "security/apikey_internal.h"
#include "core/wsid.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

typedef sl__apikey_entry entry;

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int number_field(json_t *v, double *out)
{
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!isfinite(d) || d < 0)
        return -1;
    *out = d;
    return 0;
}

/* One record from a parsed line; a message without the "NAME:LINE: " prefix in err. */
int sl__apikey_record_from_json(json_t *o, entry *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(o)) {
        snprintf(err, errsz, "expected a JSON object");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        /* Unknown fields are errors: a misspelt "channels" would otherwise widen a key to every
         * channel without anyone noticing. */
        static const char *const known[] = {"id",         "principal", "hash",    "created_at",
                                            "expires_at", "role",      "channels"};
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(k, known[i]) != 0)
            i++;
        if (i == sizeof known / sizeof known[0]) {
            snprintf(err, errsz, "unknown field '%.40s'", k);
            return -1;
        }
    }
    const char *s = json_string_value(json_object_get(o, "id"));
    if (s == NULL || !sl_apikey_id_valid(s)) {
        snprintf(err, errsz, "\"id\" must be %d characters of a-z and 2-7", SL_APIKEY_ID_LEN);
        return -1;
    }
    memcpy(out->rec.id, s, SL_APIKEY_ID_LEN + 1);
    v = json_object_get(o, "principal");
    s = json_string_value(v);
    if (s == NULL || !sl__stored_principal_valid(s, json_string_length(v)) ||
        strlen(s) != json_string_length(v)) {
        snprintf(err, errsz, "\"principal\" must be a valid principal");
        return -1;
    }
    memcpy(out->rec.principal, s, json_string_length(v) + 1);
    v = json_object_get(o, "hash");
    s = json_string_value(v);
    if (s == NULL || json_string_length(v) != SL__APIKEY_HASH_HEX) {
        snprintf(err, errsz, "\"hash\" must be %d lowercase hex digits", SL__APIKEY_HASH_HEX);
        return -1;
    }
    for (size_t i = 0; i < SL__APIKEY_HASH_LEN; i++) {
        int hi = hex_val((unsigned char)s[2 * i]), lo = hex_val((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(err, errsz, "\"hash\" must be %d lowercase hex digits", SL__APIKEY_HASH_HEX);
            return -1;
        }
        out->hash[i] = (unsigned char)(hi << 4 | lo);
    }
    if (number_field(json_object_get(o, "created_at"), &out->rec.created_at) < 0) {
        snprintf(err, errsz, "\"created_at\" must be a number >= 0");
        return -1;
    }
    if (number_field(json_object_get(o, "expires_at"), &out->rec.expires_at) < 0) {
        snprintf(err, errsz, "\"expires_at\" must be a number >= 0 (0: never)");
        return -1;
    }
    if ((v = json_object_get(o, "role")) != NULL) {
        s = json_string_value(v);
        if (s == NULL || (out->rec.role = sl_role_parse(s)) == SL_ROLE_NONE) {
            snprintf(err, errsz, "\"role\" must be \"read\", \"write\" or \"admin\"");
            return -1;
        }
    }
    if ((v = json_object_get(o, "channels")) != NULL) {
        size_t n = json_array_size(v);
        if (!json_is_array(v) || n > SL_APIKEY_CHANNELS_MAX) {
            snprintf(err, errsz, "\"channels\" must be an array of at most %d patterns",
                     SL_APIKEY_CHANNELS_MAX);
            return -1;
        }
        out->rec.scoped = 1;
        if (n > 0 && (out->rec.channels = calloc(n, sizeof *out->rec.channels)) == NULL) {
            snprintf(err, errsz, "out of memory");
            return -2;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *p = json_array_get(v, i);
            s = json_string_value(p);
            if (s == NULL || strlen(s) != json_string_length(p) ||
                !sl_pattern_valid(s, json_string_length(p))) {
                snprintf(err, errsz, "\"channels\"[%zu] is not a valid channel pattern", i);
                sl_apikey_record_clear(&out->rec);
                return -1;
            }
            if ((out->rec.channels[i] = strdup(s)) == NULL) {
                snprintf(err, errsz, "out of memory");
                sl_apikey_record_clear(&out->rec);
                return -2;
            }
            out->rec.nchannels++;
        }
    }
    return 0;
}

/* Parses store text into entries sorted by id. No I/O. */
int sl__apikey_parse_text(const char *text, size_t len, const char *name, entry **out, size_t *nout,
                          sl_status *st)
{
    *out = NULL;
    *nout = 0;
    if (name == NULL)
        name = "api key store";
    if (text == NULL && len > 0)
        return sl_status_set(st, SL_EINVAL, NULL);
    if (len > SL_APIKEY_FILE_MAX)
        return sl_status_set(st, SL_ECONFIG, "%s: larger than %u bytes", name, SL_APIKEY_FILE_MAX);
    entry *e = NULL;
    size_t n = 0, cap = 0, line = 0;
    char err[160];
    int rc = SL_OK;
    for (size_t off = 0; off < len && rc == SL_OK;) {
        const char *p = text + off;
        const char *nl = memchr(p, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - p) : len - off;
        off += ll + (nl != NULL);
        line++;
        size_t k = 0;
        while (k < ll && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
            k++;
        if (k == ll)
            continue; /* blank lines are harmless: allow them, e.g. at the end of a hand edit */
        if (memchr(p, '\0', ll) != NULL) {
            rc = sl_status_set(st, SL_ECONFIG, "%s:%zu: NUL byte", name, line);
            break;
        }
        json_error_t je;
        json_t *o = json_loadb(p, ll, JSON_REJECT_DUPLICATES, &je);
        if (o == NULL) {
            /* Position only: echoing jansson's "near '...'" could repeat file content. */
            rc = sl_status_set(st, SL_ECONFIG, "%s:%zu: invalid JSON at column %d", name, line,
                               je.column);
            break;
        }
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            entry *ne = realloc(e, nc * sizeof *ne);
            if (ne == NULL) {
                json_decref(o);
                rc = sl_status_set(st, SL_ENOMEM, NULL);
                break;
            }
            e = ne;
            cap = nc;
        }
        int r = sl__apikey_record_from_json(o, &e[n], err, sizeof err);
        json_decref(o);
        if (r < 0) {
            rc = sl_status_set(st, r == -2 ? SL_ENOMEM : SL_ECONFIG, "%s:%zu: %s", name, line, err);
            break;
        }
        e[n++].line = line;
    }
    if (rc == SL_OK && n > 1) {
        /* Stable order for duplicates is not needed: any duplicate is an error. */
        qsort(e, n, sizeof *e, sl__apikey_entry_cmp);
        for (size_t i = 1; i < n; i++) {
            if (strcmp(e[i - 1].rec.id, e[i].rec.id) == 0) {
                size_t a = e[i - 1].line, b = e[i].line;
                rc = sl_status_set(st, SL_ECONFIG, "%s:%zu: duplicate id '%s' (also on line %zu)",
                                   name, a > b ? a : b, e[i].rec.id, a > b ? b : a);
                break;
            }
        }
    }
    if (rc != SL_OK) {
        sl__apikey_entries_free(e, n);
        return rc;
    }
    *out = e;
    *nout = n;
    return SL_OK;
}

static json_t *num_json(double v)
{
    /* Whole seconds as integers, as written by create; anything else keeps its fraction. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

/* Adds e's fields (one store line's) to o; -1 on ENOMEM. o NULL is ENOMEM too. */
int sl__apikey_record_json(json_t *o, const entry *e)
{
    char hex[SL__APIKEY_HASH_HEX + 1];
    for (size_t k = 0; k < SL__APIKEY_HASH_LEN; k++)
        snprintf(hex + 2 * k, 3, "%02x", e->hash[k]);
    const sl_apikey_record *r = &e->rec;
    int bad = o == NULL || json_object_set_new(o, "id", json_string(r->id)) < 0 ||
              json_object_set_new(o, "principal", json_string(r->principal)) < 0 ||
              json_object_set_new(o, "hash", json_string(hex)) < 0 ||
              json_object_set_new(o, "created_at", num_json(r->created_at)) < 0 ||
              json_object_set_new(o, "expires_at", num_json(r->expires_at)) < 0;
    if (!bad && r->role != SL_ROLE_NONE)
        bad = json_object_set_new(o, "role", json_string(sl_role_name(r->role))) < 0;
    if (!bad && r->scoped) {
        json_t *a = json_array();
        bad = json_object_set_new(o, "channels", a) < 0;
        for (size_t k = 0; !bad && k < r->nchannels; k++)
            bad = json_array_append_new(a, json_string(r->channels[k])) < 0;
    }
    return bad ? -1 : 0;
}

/* Store text for n entries, each one JSON line. NULL on ENOMEM. */
char *sl__apikey_format_text(const entry *e, size_t n, size_t *len)
{
    size_t cap = 256, used = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        int bad = sl__apikey_record_json(o, &e[i]) < 0;
        char *line = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (line == NULL) {
            free(buf);
            return NULL;
        }
        size_t ll = strlen(line);
        if (used + ll + 2 > cap) {
            while (used + ll + 2 > cap)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(line);
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        memcpy(buf + used, line, ll);
        used += ll;
        buf[used++] = '\n';
        buf[used] = '\0';
        free(line);
    }
    *len = used;
    return buf;
}
