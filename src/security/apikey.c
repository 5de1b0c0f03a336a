/* API keys (docs/APIKEYS.md): key syntax, the store file's text format, the store (records sorted
 * by id so a presented key's id finds its record by binary search), atomic rewrites under a lock
 * file, cheap reloads keyed on the file's identity, size and mtime, and the authenticator. Only
 * SHA-256 of a secret is ever kept: secrets carry 260 random bits, so a slow password hash would
 * add cost without adding security. Every message here is fixed text or names a file, line, field
 * or public key id; none can contain a presented key or its secret.
 *
 * With a kv attached (sl_apikey_store_attach) the kv replaces the file: the file is imported once,
 * and every change is staged in the kv as one record per key, the file's own line format with a
 * version. A key deleted at runtime leaves a tombstone while the file may still name it, so that
 * re-importing the file at the next start cannot bring it back. */
#include <sluice/apikey.h>

#include "security/apply.h"
#include "security/secstore.h"
#include "core/wsid.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define HASH_LEN 32
#define HASH_HEX (2 * HASH_LEN)

/* RFC 4648 base32, lowercase: no characters that need escaping anywhere (URLs, shells, JSON) and
 * none that a double-click selection stops at, so keys survive copy and paste whole. */
static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static const char E_MALFORMED[] = "malformed api key";
static const char E_UNKNOWN[] = "unknown api key";
static const char E_EXPIRED[] = "api key expired";

typedef struct entry {
    sl_apikey_record rec;
    unsigned char hash[HASH_LEN];
    size_t line; /* where it was read from, for duplicate-id messages */
} entry;

struct sl_apikey_store {
    char *path;      /* NULL: memory only */
    char *lock_path; /* path + ".lock" */
    entry *e;        /* sorted by id */
    size_t n;
    sl__kv *kv; /* borrowed; set: changes go here, not to the file */
    /* The file the records came from; a reload is skipped while stat(2) still reports it. */
    int have_file;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

/* ---- keys ------------------------------------------------------------------------------------ */

static int in_alphabet(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

int sl_apikey_looks_like(const char *cred, size_t len)
{
    return cred != NULL && len >= SL_APIKEY_PREFIX_LEN &&
           memcmp(cred, SL_APIKEY_PREFIX, SL_APIKEY_PREFIX_LEN) == 0;
}

int sl_apikey_parse(const char *key, size_t len, char id[SL_APIKEY_ID_LEN + 1], const char **secret,
                    size_t *secret_len)
{
    if (key == NULL || len != SL_APIKEY_LEN || !sl_apikey_looks_like(key, len) ||
        key[SL_APIKEY_PREFIX_LEN + SL_APIKEY_ID_LEN] != '_')
        return SL_ETOKEN;
    const char *i = key + SL_APIKEY_PREFIX_LEN;
    const char *s = i + SL_APIKEY_ID_LEN + 1;
    for (size_t k = 0; k < SL_APIKEY_ID_LEN; k++)
        if (!in_alphabet((unsigned char)i[k]))
            return SL_ETOKEN;
    for (size_t k = 0; k < SL_APIKEY_SECRET_LEN; k++)
        if (!in_alphabet((unsigned char)s[k]))
            return SL_ETOKEN;
    if (id) {
        memcpy(id, i, SL_APIKEY_ID_LEN);
        id[SL_APIKEY_ID_LEN] = '\0';
    }
    if (secret)
        *secret = s;
    if (secret_len)
        *secret_len = SL_APIKEY_SECRET_LEN;
    return SL_OK;
}

int sl_apikey_id_valid(const char *id)
{
    if (id == NULL)
        return 0;
    for (size_t k = 0; k < SL_APIKEY_ID_LEN; k++)
        if (!in_alphabet((unsigned char)id[k])) /* also stops at a short string's NUL */
            return 0;
    return id[SL_APIKEY_ID_LEN] == '\0';
}

void sl_apikey_key_free(char *key)
{
    if (key == NULL)
        return;
    OPENSSL_cleanse(key, strlen(key));
    free(key);
}

/* Fills out with n characters of the alphabet, 5 uniform random bits each (256 % 32 == 0, so
 * masking a random byte has no bias). */
static int random_chars(char *out, size_t n)
{
    unsigned char raw[SL_APIKEY_SECRET_LEN];
    if (n > sizeof raw || RAND_bytes(raw, (int)n) != 1)
        return -1;
    for (size_t k = 0; k < n; k++)
        out[k] = alphabet[raw[k] & 31];
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

static int hash_secret(const char *secret, size_t len, unsigned char out[HASH_LEN])
{
    unsigned int olen = 0;
    return EVP_Digest(secret, len, out, &olen, EVP_sha256(), NULL) == 1 && olen == HASH_LEN ? 0
                                                                                            : -1;
}

/* ---- records --------------------------------------------------------------------------------- */

void sl_apikey_record_clear(sl_apikey_record *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nchannels; i++)
        free(r->channels[i]);
    free(r->channels);
    memset(r, 0, sizeof *r);
}

void sl_apikey_records_free(sl_apikey_record *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        sl_apikey_record_clear(&r[i]);
    free(r);
}

static int strv_copy(char *const *src, size_t n, char ***out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    char **v = calloc(n, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((v[i] = strdup(src[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return -1;
        }
    }
    *out = v;
    return 0;
}

static int record_copy(sl_apikey_record *dst, const sl_apikey_record *src)
{
    *dst = *src;
    dst->channels = NULL;
    if (strv_copy(src->channels, src->nchannels, &dst->channels) < 0) {
        dst->nchannels = 0;
        return -1;
    }
    return 0;
}

static void entries_free(entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        sl_apikey_record_clear(&e[i].rec);
    free(e);
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->rec.id, ((const entry *)b)->rec.id);
}

/* Index of id, or of where it would go (*found 0). */
static size_t find(const entry *e, size_t n, const char *id, int *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e[mid].rec.id, id);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* ---- the text format ------------------------------------------------------------------------- */

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
static int record_from_json(json_t *o, entry *out, char *err, size_t errsz)
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
    if (s == NULL || json_string_length(v) != HASH_HEX) {
        snprintf(err, errsz, "\"hash\" must be %d lowercase hex digits", HASH_HEX);
        return -1;
    }
    for (size_t i = 0; i < HASH_LEN; i++) {
        int hi = hex_val((unsigned char)s[2 * i]), lo = hex_val((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(err, errsz, "\"hash\" must be %d lowercase hex digits", HASH_HEX);
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
static int parse_text(const char *text, size_t len, const char *name, entry **out, size_t *nout,
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
        int r = record_from_json(o, &e[n], err, sizeof err);
        json_decref(o);
        if (r < 0) {
            rc = sl_status_set(st, r == -2 ? SL_ENOMEM : SL_ECONFIG, "%s:%zu: %s", name, line, err);
            break;
        }
        e[n++].line = line;
    }
    if (rc == SL_OK && n > 1) {
        /* Stable order for duplicates is not needed: any duplicate is an error. */
        qsort(e, n, sizeof *e, entry_cmp);
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
        entries_free(e, n);
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
static int record_json(json_t *o, const entry *e)
{
    char hex[HASH_HEX + 1];
    for (size_t k = 0; k < HASH_LEN; k++)
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
static char *format_text(const entry *e, size_t n, size_t *len)
{
    size_t cap = 256, used = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        int bad = record_json(o, &e[i]) < 0;
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

/* ---- files ----------------------------------------------------------------------------------- */

static void remember(sl_apikey_store *s, const struct stat *sb)
{
    s->have_file = 1;
    s->dev = sb->st_dev;
    s->ino = sb->st_ino;
    s->size = sb->st_size;
    s->mtime = sb->st_mtim;
}

static int unchanged(const sl_apikey_store *s, const struct stat *sb)
{
    return s->have_file && s->dev == sb->st_dev && s->ino == sb->st_ino && s->size == sb->st_size &&
           s->mtime.tv_sec == sb->st_mtim.tv_sec && s->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

static void replace_entries(sl_apikey_store *s, entry *e, size_t n)
{
    entries_free(s->e, s->n);
    s->e = e;
    s->n = n;
}

/* Loads the file unless stat(2) shows the one already loaded; force skips that shortcut. */
static int load_file(sl_apikey_store *s, int force, sl_status *st)
{
    struct stat sb;
    if (stat(s->path, &sb) < 0) {
        if (errno != ENOENT)
            return sl_status_set(st, SL_EIO, "cannot read %s: %s", s->path, strerror(errno));
        /* Removed (or never written): no keys. */
        replace_entries(s, NULL, 0);
        s->have_file = 0;
        return SL_OK;
    }
    if (!force && unchanged(s, &sb))
        return SL_OK;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return sl_status_set(st, SL_EIO, "cannot open %s: %s", s->path, strerror(errno));
    /* The file read is the one remembered, even if it was replaced after the stat above. */
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return sl_status_set(st, SL_EIO, "cannot read %s: %s", s->path,
                             S_ISREG(sb.st_mode) ? strerror(e) : "not a regular file");
    }
    if ((unsigned long long)sb.st_size > SL_APIKEY_FILE_MAX) {
        close(fd);
        return sl_status_set(st, SL_ECONFIG, "%s: larger than %u bytes", s->path,
                             SL_APIKEY_FILE_MAX);
    }
    size_t want = (size_t)sb.st_size, got = 0;
    char *buf = malloc(want + 1);
    if (buf == NULL) {
        close(fd);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return sl_status_set(st, SL_EIO, "cannot read %s: %s", s->path, strerror(e));
        }
        if (r == 0)
            break; /* shrank: parse what is there; the next reload sees the new size */
        got += (size_t)r;
    }
    close(fd);
    entry *e;
    size_t n;
    int rc = parse_text(buf, got, s->path, &e, &n, st);
    free(buf);
    if (rc != SL_OK)
        return rc;
    replace_entries(s, e, n);
    remember(s, &sb);
    return SL_OK;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Replaces the file with e[0..n) atomically: a crash leaves the old or the new file, never a mix
 * or a truncation. On success *sb describes the new file. */
static int write_file(sl_apikey_store *s, const entry *e, size_t n, struct stat *sb, sl_status *st)
{
    size_t len = 0;
    char *text = format_text(e, n, &len);
    if (text == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    size_t pl = strlen(s->path);
    char *tmp = malloc(pl + sizeof ".tmp.XXXXXX");
    if (tmp == NULL) {
        free(text);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    memcpy(tmp, s->path, pl);
    memcpy(tmp + pl, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkostemp(tmp, O_CLOEXEC);
    int rc = SL_OK;
    if (fd < 0) {
        rc = sl_status_set(st, SL_EIO, "cannot create a file next to %s: %s", s->path,
                           strerror(errno));
    } else {
        /* mkostemp already creates 0600; say so explicitly against a future umask surprise. */
        if (fchmod(fd, 0600) < 0 || write_all(fd, text, len) < 0 || fsync(fd) < 0 ||
            fstat(fd, sb) < 0)
            rc = sl_status_set(st, SL_EIO, "cannot write %s: %s", tmp, strerror(errno));
        if (close(fd) < 0 && rc == SL_OK)
            rc = sl_status_set(st, SL_EIO, "cannot write %s: %s", tmp, strerror(errno));
        if (rc == SL_OK && rename(tmp, s->path) < 0)
            rc = sl_status_set(st, SL_EIO, "cannot replace %s: %s", s->path, strerror(errno));
        if (rc != SL_OK)
            unlink(tmp);
    }
    if (rc == SL_OK) {
        /* The rename is durable only once the directory is synced. */
        char *dir = strdup(s->path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        const char *d = slash == NULL ? "." : (slash == dir ? "/" : (*slash = '\0', dir));
        int dfd = dir ? open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

/* Takes the writers' lock and brings the records up to date with the file, so a change is applied
 * to what is on disk now and no other writer's change is lost. *fd receives the lock (-1 for a
 * memory-only store). */
static int begin_write(sl_apikey_store *s, int *fd, sl_status *st)
{
    *fd = -1;
    if (s->path == NULL || s->kv != NULL)
        return SL_OK;
    int l = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (l < 0)
        return sl_status_set(st, SL_EIO, "cannot open %s: %s", s->lock_path, strerror(errno));
    while (flock(l, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(l);
            return sl_status_set(st, SL_EIO, "cannot lock %s: %s", s->lock_path, strerror(e));
        }
    }
    int rc = load_file(s, 0, st);
    if (rc != SL_OK) {
        close(l);
        return rc;
    }
    *fd = l;
    return SL_OK;
}

static void end_write(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* Writes e[0..n) (file-backed stores) and on success makes it the store's records. */
static int commit(sl_apikey_store *s, entry *e, size_t n, sl_status *st)
{
    if (s->path != NULL && s->kv == NULL) {
        struct stat sb;
        int rc = write_file(s, e, n, &sb, st);
        if (rc != SL_OK)
            return rc;
        remember(s, &sb);
    }
    /* Shallow: the caller decides which old entries' contents to free. */
    if (e != s->e)
        free(s->e);
    s->e = e;
    s->n = n;
    return SL_OK;
}

/* ---- the kv ---------------------------------------------------------------------------------- */

static int stage_record(sl__kv *kv, const entry *e, sl_status *st)
{
    json_t *o = sl__secstore_object();
    int rc = record_json(o, e) < 0
                 ? SL_ENOMEM
                 : sl__secstore_put(kv, SL__KV_APIKEYS, e->rec.id, SL_APIKEY_ID_LEN, o);
    json_decref(o);
    return rc == SL_OK ? rc : sl_status_set(st, rc, "cannot store api key '%s'", e->rec.id);
}

/* While a key file may name the id, a tombstone; otherwise nothing is left. */
static int stage_delete(sl_apikey_store *s, const char *id, sl_status *st)
{
    int rc;
    if (s->path != NULL) {
        json_t *o = sl__secstore_object();
        rc = o == NULL || json_object_set_new(o, "id", json_string(id)) < 0 ||
                     json_object_set_new(o, "deleted", json_true()) < 0
                 ? SL_ENOMEM
                 : sl__secstore_put(s->kv, SL__KV_APIKEYS, id, SL_APIKEY_ID_LEN, o);
        json_decref(o);
    } else {
        rc = s->kv->ops->del(s->kv, SL__KV_APIKEYS, id, SL_APIKEY_ID_LEN);
    }
    return rc == SL_OK ? rc : sl_status_set(st, rc, "cannot delete api key '%s'", id);
}

/* A stored value into *out (0), a tombstone (1), or -1 (EFORMAT, why set) / -2 (ENOMEM). */
static int decode_stored(const void *val, size_t vlen, const char *id, entry *out, char *why,
                         size_t whysz)
{
    memset(out, 0, sizeof *out);
    json_t *o = sl__secstore_parse(val, vlen, why, whysz);
    if (o == NULL)
        return -1;
    int rc;
    json_t *del = json_object_get(o, "deleted");
    if (del != NULL) {
        const char *sid = json_string_value(json_object_get(o, "id"));
        rc = json_is_true(del) && json_object_size(o) == 2 && sid && strcmp(sid, id) == 0 ? 1 : -1;
        if (rc < 0)
            snprintf(why, whysz, "a tombstone is exactly {\"id\":ID,\"deleted\":true}");
    } else {
        rc = record_from_json(o, out, why, whysz);
        if (rc == 0 && strcmp(out->rec.id, id) != 0) {
            snprintf(why, whysz, "the record's \"id\" is not its key");
            sl_apikey_record_clear(&out->rec);
            rc = -1;
        }
    }
    json_decref(o);
    return rc;
}

typedef struct load_state {
    entry *e; /* stored records, in key (= id) order */
    size_t n, cap;
    char (*dead)[SL_APIKEY_ID_LEN + 1]; /* tombstones */
    size_t ndead, capdead;
    sl_status *st;
} load_state;

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? 2 * *cap : 16;
    void *nv = realloc(*v, nc * size);
    if (nv == NULL)
        return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

static int load_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    load_state *ls = ud;
    char id[SL__SECSTORE_KEY_MAX + 1], why[160];
    if (sl__secstore_key_str(key, klen, id) < 0 || !sl_apikey_id_valid(id))
        return sl__secstore_eformat(ls->st, SL__KV_APIKEYS, key, klen, "not a valid api key id");
    if (grow((void **)&ls->e, &ls->cap, ls->n, sizeof *ls->e) < 0 ||
        grow((void **)&ls->dead, &ls->capdead, ls->ndead, sizeof *ls->dead) < 0)
        return sl_status_set(ls->st, SL_ENOMEM, NULL);
    int r = decode_stored(val, vlen, id, &ls->e[ls->n], why, sizeof why);
    if (r == -1)
        return sl__secstore_eformat(ls->st, SL__KV_APIKEYS, key, klen, why);
    if (r == -2)
        return sl_status_set(ls->st, SL_ENOMEM, NULL);
    if (r == 1)
        memcpy(ls->dead[ls->ndead++], id, SL_APIKEY_ID_LEN + 1);
    else
        ls->n++;
    return SL_OK;
}

static double earlier_expiry(double a, double b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

int sl_apikey_store_attach(sl_apikey_store *s, struct sl__kv *kv, sl_status *st)
{
    if (s == NULL || kv == NULL || s->kv != NULL)
        return sl_status_set(st, SL_EINVAL, "the api key store is already attached");
    sl_status_clear(st);
    load_state ls = {.st = st};
    int rc = kv->ops->scan(kv, SL__KV_APIKEYS, NULL, 0, load_one, &ls);
    if (rc != SL_OK && (st == NULL || st->code != rc))
        sl_status_set(st, rc, "cannot read the stored api keys: %s", sl_strerror(rc));
    /* The union: stored records, then the file's (s->e, from open) on top. The file wins for the
     * ids it names, except for what was taken away at runtime: a tombstone keeps a key deleted,
     * and of two expiries the earlier stays, so a restart never revives a key. */
    if (rc == SL_OK && ls.n > 1)
        qsort(ls.e, ls.n, sizeof *ls.e, entry_cmp);
    entry *u = NULL;
    size_t nu = 0;
    if (rc == SL_OK && (u = calloc(ls.n + s->n + 1, sizeof *u)) == NULL)
        rc = sl_status_set(st, SL_ENOMEM, NULL);
    size_t i = 0, j = 0;
    while (rc == SL_OK && (i < ls.n || j < s->n)) {
        int c = i == ls.n ? 1 : j == s->n ? -1 : strcmp(ls.e[i].rec.id, s->e[j].rec.id);
        if (c < 0) {
            u[nu++] = ls.e[i];
            memset(&ls.e[i++], 0, sizeof(entry));
            continue;
        }
        int dead = 0;
        for (size_t k = 0; k < ls.ndead && !dead; k++)
            dead = strcmp(ls.dead[k], s->e[j].rec.id) == 0;
        if (dead) {
            j++;
            continue;
        }
        entry f = s->e[j];
        if (c == 0)
            f.rec.expires_at = earlier_expiry(f.rec.expires_at, ls.e[i].rec.expires_at);
        if ((rc = stage_record(kv, &f, st)) != SL_OK)
            break;
        if (record_copy(&u[nu].rec, &f.rec) < 0) {
            rc = sl_status_set(st, SL_ENOMEM, NULL);
            break;
        }
        memcpy(u[nu].hash, f.hash, HASH_LEN);
        nu++;
        j++;
        if (c == 0)
            i++; /* the stored one is replaced; freed below with the rest */
    }
    /* Tombstones for ids the file no longer names have nothing left to guard. */
    for (size_t k = 0; rc == SL_OK && k < ls.ndead; k++) {
        int named;
        find(s->e, s->n, ls.dead[k], &named);
        if (!named &&
            (rc = kv->ops->del(kv, SL__KV_APIKEYS, ls.dead[k], SL_APIKEY_ID_LEN)) != SL_OK)
            sl_status_set(st, rc, "cannot delete a stored api key tombstone");
    }
    entries_free(ls.e, ls.n);
    free(ls.dead);
    if (rc != SL_OK) {
        entries_free(u, nu);
        return rc;
    }
    replace_entries(s, u, nu);
    s->kv = kv;
    return SL_OK;
}

/* ---- another node's changes ------------------------------------------------------------------ */

sl__kv *sl__apikey_kv(const sl_apikey_store *s)
{
    return s->kv;
}

static int same_entry(const entry *a, const entry *b)
{
    const sl_apikey_record *x = &a->rec, *y = &b->rec;
    if (strcmp(x->id, y->id) != 0 || strcmp(x->principal, y->principal) != 0 ||
        x->role != y->role || x->scoped != y->scoped || x->nchannels != y->nchannels ||
        x->created_at != y->created_at || x->expires_at != y->expires_at ||
        memcmp(a->hash, b->hash, HASH_LEN) != 0)
        return 0;
    for (size_t i = 0; i < x->nchannels; i++)
        if (strcmp(x->channels[i], y->channels[i]) != 0)
            return 0;
    return 1;
}

/* One stored entry: 0 with a record in *out, 1 for a removal (val NULL or a tombstone), or an
 * error with st filled. id receives the key as a string. */
static int decode_change(const void *key, size_t klen, const void *val, size_t vlen,
                         char id[SL__SECSTORE_KEY_MAX + 1], entry *out, sl_status *st)
{
    char why[160];
    memset(out, 0, sizeof *out);
    if (sl__secstore_key_str(key, klen, id) < 0 || !sl_apikey_id_valid(id))
        return sl__secstore_eformat(st, SL__KV_APIKEYS, key, klen, "not a valid api key id");
    if (val == NULL)
        return 1;
    int r = decode_stored(val, vlen, id, out, why, sizeof why);
    if (r == -1)
        return sl__secstore_eformat(st, SL__KV_APIKEYS, key, klen, why);
    if (r == -2)
        return sl_status_set(st, SL_ENOMEM, NULL);
    return r;
}

static void entry_wipe(entry *e)
{
    sl_apikey_record_clear(&e->rec);
    OPENSSL_cleanse(e->hash, sizeof e->hash);
}

int sl__apikey_apply(sl_apikey_store *s, const void *key, size_t klen, const void *val, size_t vlen,
                     sl_status *st)
{
    sl_status_clear(st);
    char id[SL__SECSTORE_KEY_MAX + 1];
    entry ne;
    int r = decode_change(key, klen, val, vlen, id, &ne, st);
    if (r < 0)
        return r;
    int found;
    size_t i = find(s->e, s->n, id, &found);
    if (r == 1) {
        if (!found)
            return SL__APPLY_SAME;
        entry gone = s->e[i];
        memmove(s->e + i, s->e + i + 1, (s->n - i - 1) * sizeof *s->e);
        s->n--;
        entry_wipe(&gone);
        return SL__APPLY_REMOVED;
    }
    if (found) {
        if (same_entry(&s->e[i], &ne)) {
            entry_wipe(&ne);
            return SL__APPLY_SAME;
        }
        entry_wipe(&s->e[i]);
        s->e[i] = ne;
        return SL__APPLY_CHANGED;
    }
    entry *e = realloc(s->e, (s->n + 1) * sizeof *e);
    if (e == NULL) {
        entry_wipe(&ne);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    memmove(e + i + 1, e + i, (s->n - i) * sizeof *e);
    e[i] = ne;
    s->e = e;
    s->n++;
    return SL__APPLY_CHANGED;
}

int sl__apikey_apply_all(sl_apikey_store *s, const sl__secstore_entry *e, size_t n, sl_status *st)
{
    sl_status_clear(st);
    entry *u = calloc(n + 1, sizeof *u);
    if (u == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    size_t nu = 0;
    sl_status bad = {0};
    for (size_t k = 0; k < n; k++) {
        char id[SL__SECSTORE_KEY_MAX + 1] = "";
        sl_status one;
        int r = decode_change(e[k].key, e[k].klen, e[k].val, e[k].vlen, id, &u[nu], &one);
        if (r == SL_ENOMEM) {
            entries_free(u, nu);
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        if (r == 0) {
            nu++;
        } else if (r < 0) {
            /* Refused: the id keeps what it had (if the key names an id at all). */
            bad = one;
            int found = 0;
            size_t i = 0;
            if (sl_apikey_id_valid(id))
                i = find(s->e, s->n, id, &found);
            if (found) {
                if (record_copy(&u[nu].rec, &s->e[i].rec) < 0) {
                    entries_free(u, nu);
                    return sl_status_set(st, SL_ENOMEM, NULL);
                }
                memcpy(u[nu].hash, s->e[i].hash, HASH_LEN);
                nu++;
            }
        }
    }
    if (nu > 1)
        qsort(u, nu, sizeof *u, entry_cmp);
    int changed = 0;
    for (size_t i = 0; i < s->n; i++) {
        int found;
        find(u, nu, s->e[i].rec.id, &found);
        changed += !found;
    }
    for (size_t i = 0; i < nu; i++) {
        int found;
        size_t j = find(s->e, s->n, u[i].rec.id, &found);
        changed += !found || !same_entry(&s->e[j], &u[i]);
    }
    for (size_t i = 0; i < s->n; i++)
        OPENSSL_cleanse(s->e[i].hash, HASH_LEN);
    replace_entries(s, u, nu);
    if (bad.code != SL_OK && st != NULL)
        *st = bad;
    return changed;
}

/* ---- the store ------------------------------------------------------------------------------- */

int sl_apikey_store_open(sl_apikey_store **out, const char *path, sl_status *st)
{
    if (out == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    *out = NULL;
    if (path != NULL && *path == '\0')
        return sl_status_set(st, SL_EINVAL, "empty api key store path");
    sl_apikey_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return sl_status_set(st, SL_ENOMEM, NULL);
    if (path != NULL) {
        size_t pl = strlen(path);
        s->path = strdup(path);
        s->lock_path = malloc(pl + sizeof ".lock");
        if (s->path == NULL || s->lock_path == NULL) {
            sl_apikey_store_close(s);
            return sl_status_set(st, SL_ENOMEM, NULL);
        }
        memcpy(s->lock_path, path, pl);
        memcpy(s->lock_path + pl, ".lock", sizeof ".lock");
        int rc = load_file(s, 1, st);
        if (rc != SL_OK) {
            sl_apikey_store_close(s);
            return rc;
        }
    }
    *out = s;
    return SL_OK;
}

void sl_apikey_store_close(sl_apikey_store *s)
{
    if (s == NULL)
        return;
    entries_free(s->e, s->n);
    free(s->path);
    free(s->lock_path);
    free(s);
}

const char *sl_apikey_store_path(const sl_apikey_store *s)
{
    return s ? s->path : NULL;
}

int sl_apikey_reload(sl_apikey_store *s, sl_status *st)
{
    if (s == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    /* Attached: the file was imported once; the kv holds the keys now. */
    return s->path && s->kv == NULL ? load_file(s, 0, st) : SL_OK;
}

int sl_apikey_store_load_text(sl_apikey_store *s, const char *text, size_t len, const char *name,
                              sl_status *st)
{
    if (s == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    entry *e;
    size_t n;
    int rc = parse_text(text, len, name, &e, &n, st);
    if (rc == SL_OK)
        replace_entries(s, e, n);
    return rc;
}

int sl_apikey_create(sl_apikey_store *s, const char *principal, sl_role role,
                     const char *const *patterns, size_t n, double expires_at, double now,
                     char **key_out, char id_out[SL_APIKEY_ID_LEN + 1], sl_status *st)
{
    return sl_apikey_create_ahead(s, principal, role, patterns, n, expires_at, now, NULL, NULL,
                                  key_out, id_out, st);
}

int sl_apikey_create_ahead(sl_apikey_store *s, const char *principal, sl_role role,
                           const char *const *patterns, size_t n, double expires_at, double now,
                           sl_apikey_ahead_fn ahead, void *ahead_ud, char **key_out,
                           char id_out[SL_APIKEY_ID_LEN + 1], sl_status *st)
{
    if (s == NULL || key_out == NULL || (patterns == NULL && n > 0))
        return sl_status_set(st, SL_EINVAL, NULL);
    *key_out = NULL;
    /* A workspace's key names "WS/principal" (core/wsid.h). */
    if (principal == NULL || !sl__stored_principal_valid(principal, strlen(principal)))
        return sl_status_set(st, SL_EINVAL, "invalid principal");
    if (role != SL_ROLE_NONE && role != SL_ROLE_READ && role != SL_ROLE_WRITE &&
        role != SL_ROLE_ADMIN)
        return sl_status_set(st, SL_EINVAL, "invalid role");
    if (n > SL_APIKEY_CHANNELS_MAX)
        return sl_status_set(st, SL_EINVAL, "at most %d channel patterns", SL_APIKEY_CHANNELS_MAX);
    for (size_t i = 0; i < n; i++)
        if (patterns[i] == NULL || !sl_pattern_valid(patterns[i], strlen(patterns[i])))
            return sl_status_set(st, SL_EINVAL, "invalid channel pattern (#%zu)", i + 1);
    if (!isfinite(now) || now < 0)
        return sl_status_set(st, SL_EINVAL, "invalid time");
    now = floor(now);
    if (!isfinite(expires_at) || expires_at < 0 || (expires_at > 0 && expires_at <= now))
        return sl_status_set(st, SL_EINVAL, "the expiry must be in the future");

    entry ne;
    memset(&ne, 0, sizeof ne);
    snprintf(ne.rec.principal, sizeof ne.rec.principal, "%s", principal);
    ne.rec.role = role;
    ne.rec.created_at = now;
    ne.rec.expires_at = expires_at;
    if (n > 0) {
        ne.rec.scoped = 1;
        if (strv_copy((char *const *)patterns, n, &ne.rec.channels) < 0)
            return sl_status_set(st, SL_ENOMEM, NULL);
        ne.rec.nchannels = n;
    }
    char *key = malloc(SL_APIKEY_LEN + 1);
    if (key == NULL) {
        sl_apikey_record_clear(&ne.rec);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    char *kid = key + SL_APIKEY_PREFIX_LEN, *secret = kid + SL_APIKEY_ID_LEN + 1;
    memcpy(key, SL_APIKEY_PREFIX, SL_APIKEY_PREFIX_LEN);
    kid[SL_APIKEY_ID_LEN] = '_';
    key[SL_APIKEY_LEN] = '\0';
    if (random_chars(secret, SL_APIKEY_SECRET_LEN) < 0 ||
        hash_secret(secret, SL_APIKEY_SECRET_LEN, ne.hash) < 0) {
        sl_apikey_key_free(key);
        sl_apikey_record_clear(&ne.rec);
        return sl_status_set(st, SL_EINTERNAL, "cannot generate a key: no randomness");
    }

    int lock, rc = begin_write(s, &lock, st);
    entry *e = NULL;
    size_t at = 0;
    if (rc == SL_OK) {
        /* 60-bit ids rarely collide; when one does, draw again rather than fail. */
        int found = 1;
        for (int tries = 0; found && tries < 16; tries++) {
            if (random_chars(kid, SL_APIKEY_ID_LEN) < 0)
                break;
            memcpy(ne.rec.id, kid, SL_APIKEY_ID_LEN);
            ne.rec.id[SL_APIKEY_ID_LEN] = '\0';
            at = find(s->e, s->n, ne.rec.id, &found);
        }
        if (found)
            rc = sl_status_set(st, SL_EINTERNAL, "cannot generate a key id");
    }
    /* Written ahead: whatever the hook records (the audit log) exists before the key does. */
    if (rc == SL_OK && ahead)
        rc = ahead(ahead_ud, ne.rec.id, st);
    if (rc == SL_OK && (e = malloc((s->n + 1) * sizeof *e)) == NULL)
        rc = sl_status_set(st, SL_ENOMEM, NULL);
    if (rc == SL_OK && s->kv != NULL && (rc = stage_record(s->kv, &ne, st)) != SL_OK) {
        free(e);
        e = NULL;
    }
    if (rc == SL_OK) {
        if (s->n > 0) { /* s->e is NULL while empty, and memcpy must not see NULL */
            memcpy(e, s->e, at * sizeof *e);
            memcpy(e + at + 1, s->e + at, (s->n - at) * sizeof *e);
        }
        e[at] = ne;
        rc = commit(s, e, s->n + 1, st);
        if (rc != SL_OK)
            free(e);
    }
    end_write(lock);
    OPENSSL_cleanse(ne.hash, sizeof ne.hash);
    if (rc != SL_OK) {
        sl_apikey_record_clear(&ne.rec);
        sl_apikey_key_free(key);
        return rc;
    }
    if (id_out)
        memcpy(id_out, ne.rec.id, SL_APIKEY_ID_LEN + 1);
    *key_out = key;
    return SL_OK;
}

int sl_apikey_expire(sl_apikey_store *s, const char *id, double now, sl_status *st)
{
    /* now > 0: an expiry of 0 would mean "never". */
    if (s == NULL || !isfinite(now) || now <= 0)
        return sl_status_set(st, SL_EINVAL, NULL);
    if (!sl_apikey_id_valid(id))
        return sl_status_set(st, SL_EINVAL, "invalid api key id");
    int lock, found = 0, rc = begin_write(s, &lock, st);
    size_t i = rc == SL_OK ? find(s->e, s->n, id, &found) : 0;
    if (rc == SL_OK && !found)
        rc = sl_status_set(st, SL_ENOENT, "no api key '%s'", id);
    if (rc == SL_OK) {
        double old = s->e[i].rec.expires_at;
        if (old == 0 || old > now) {
            s->e[i].rec.expires_at = now;
            if (s->kv != NULL)
                rc = stage_record(s->kv, &s->e[i], st);
            if (rc == SL_OK)
                rc = commit(s, s->e, s->n, st);
            if (rc != SL_OK)
                s->e[i].rec.expires_at = old;
        }
    }
    end_write(lock);
    return rc;
}

int sl_apikey_delete(sl_apikey_store *s, const char *id, sl_status *st)
{
    if (s == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    if (!sl_apikey_id_valid(id))
        return sl_status_set(st, SL_EINVAL, "invalid api key id");
    int lock, found = 0, rc = begin_write(s, &lock, st);
    size_t i = rc == SL_OK ? find(s->e, s->n, id, &found) : 0;
    if (rc == SL_OK && !found)
        rc = sl_status_set(st, SL_ENOENT, "no api key '%s'", id);
    entry *e = NULL;
    if (rc == SL_OK && s->n > 1 && (e = malloc((s->n - 1) * sizeof *e)) == NULL)
        rc = sl_status_set(st, SL_ENOMEM, NULL);
    if (rc == SL_OK && s->kv != NULL && (rc = stage_delete(s, id, st)) != SL_OK) {
        free(e);
        e = NULL;
    }
    if (rc == SL_OK) {
        if (e) {
            memcpy(e, s->e, i * sizeof *e);
            memcpy(e + i, s->e + i + 1, (s->n - i - 1) * sizeof *e);
        }
        entry gone = s->e[i];
        rc = commit(s, e, s->n - 1, st);
        if (rc == SL_OK)
            sl_apikey_record_clear(&gone.rec);
        else
            free(e);
    }
    end_write(lock);
    return rc;
}

int sl_apikey_list(const sl_apikey_store *s, sl_apikey_record **out, size_t *n)
{
    if (s == NULL || out == NULL || n == NULL)
        return SL_EINVAL;
    *out = NULL;
    *n = 0;
    if (s->n == 0)
        return SL_OK;
    sl_apikey_record *r = calloc(s->n, sizeof *r);
    if (r == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        if (record_copy(&r[i], &s->e[i].rec) < 0) {
            sl_apikey_records_free(r, i);
            return SL_ENOMEM;
        }
    }
    *out = r;
    *n = s->n;
    return SL_OK;
}

int sl_apikey_get(const sl_apikey_store *s, const char *id, sl_apikey_record *out)
{
    if (s == NULL || out == NULL || id == NULL)
        return SL_EINVAL;
    int found;
    size_t i = find(s->e, s->n, id, &found);
    if (!found)
        return SL_ENOENT;
    return record_copy(out, &s->e[i].rec) < 0 ? SL_ENOMEM : SL_OK;
}

/* ---- authentication -------------------------------------------------------------------------- */

int sl_apikey_authenticate(const sl_apikey_store *s, const char *key, size_t len, double now,
                           sl_identity *out, sl_status *st)
{
    if (s == NULL || out == NULL)
        return sl_status_set(st, SL_EINVAL, NULL);
    char id[SL_APIKEY_ID_LEN + 1];
    const char *secret;
    size_t slen;
    if (sl_apikey_parse(key, len, id, &secret, &slen) != SL_OK)
        return sl_status_set(st, SL_ETOKEN, "%s", E_MALFORMED);
    unsigned char h[HASH_LEN];
    if (hash_secret(secret, slen, h) < 0)
        return sl_status_set(st, SL_EINTERNAL, NULL);
    int found;
    size_t i = find(s->e, s->n, id, &found);
    /* Constant-time compare so response timing tells nothing about how much of a guess matched. */
    if (!found || CRYPTO_memcmp(h, s->e[i].hash, HASH_LEN) != 0)
        return sl_status_set(st, SL_ETOKEN, "%s", E_UNKNOWN);
    const sl_apikey_record *r = &s->e[i].rec;
    if (r->expires_at > 0 && !(now < r->expires_at))
        return sl_status_set(st, SL_ETOKEN, "%s", E_EXPIRED);
    char **ch = NULL;
    if (strv_copy(r->channels, r->nchannels, &ch) < 0)
        return sl_status_set(st, SL_ENOMEM, NULL);
    sl_identity_clear(out);
    /* A key of a workspace ("WS/principal") gives an identity of that workspace. */
    const char *name = sl__ws_name(r->principal);
    snprintf(out->principal, sizeof out->principal, "%s", name);
    if (name != r->principal)
        snprintf(out->workspace, sizeof out->workspace, "%.*s", (int)(name - r->principal - 1),
                 r->principal);
    out->source = SL_SOURCE_APIKEY;
    out->role = r->role;
    out->scoped = r->scoped;
    out->channels = ch;
    out->nchannels = r->nchannels;
    snprintf(out->token_id, sizeof out->token_id, "%s", r->id);
    out->issued_at = r->created_at;
    out->expires_at = r->expires_at;
    return SL_OK;
}

/* ---- the sl_authn adapter -------------------------------------------------------------------- */

typedef struct adapter {
    sl_authenticator base; /* first: the chain hands back &base */
    sl_apikey_store *store;
} adapter;

static void adapter_authenticate(sl_authenticator *a, const char *cred, size_t len, double now,
                                 sl_authn_cb cb, void *ud)
{
    adapter *ad = (adapter *)a;
    if (!sl_apikey_looks_like(cred, len)) {
        cb(ud, SL_ETOKEN, NULL, "not an api key");
        return;
    }
    /* Errors leave the last good records in force; whoever owns the store reports them. */
    sl_apikey_reload(ad->store, NULL);
    sl_identity who;
    sl_identity_init(&who);
    sl_status st;
    sl_status_clear(&st);
    int rc = sl_apikey_authenticate(ad->store, cred, len, now, &who, &st);
    cb(ud, rc, rc == SL_OK ? &who : NULL, rc == SL_OK ? NULL : st.message);
    sl_identity_clear(&who);
}

static void adapter_free(sl_authenticator *a)
{
    free(a);
}

int sl_apikey_authenticator_new(sl_apikey_store *s, sl_authenticator **out)
{
    if (s == NULL || out == NULL)
        return SL_EINVAL;
    adapter *ad = calloc(1, sizeof *ad);
    if (ad == NULL)
        return SL_ENOMEM;
    ad->base.name = "api-key";
    ad->base.authenticate = adapter_authenticate;
    ad->base.free = adapter_free;
    ad->store = s;
    *out = &ad->base;
    return SL_OK;
}
