/* Where API keys are kept (docs/APIKEYS.md): the store file, rewritten atomically under a lock
 * file and reloaded only when stat(2) shows another file; or, with a kv attached
 * (sl_apikey_store_attach), the kv, one record per key, with a tombstone for a key deleted at
 * runtime while the file may still name it; and the changes another node made to that kv, applied
 * here (security/apply.h). */
#include "security/apikey_internal.h"
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

typedef sl__apikey_entry entry;

/* ---- the file ------------------------------------------------------------------------------- */

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

void sl__apikey_replace_entries(sl_apikey_store *s, entry *e, size_t n)
{
    sl__apikey_entries_free(s->e, s->n);
    s->e = e;
    s->n = n;
}

/* Loads the file unless stat(2) shows the one already loaded; force skips that shortcut. */
int sl__apikey_load_file(sl_apikey_store *s, int force, sl_status *st)
{
    struct stat sb;
    if (stat(s->path, &sb) < 0) {
        if (errno != ENOENT)
            return sl_status_set(st, SL_EIO, "cannot read %s: %s", s->path, strerror(errno));
        /* Removed (or never written): no keys. */
        sl__apikey_replace_entries(s, NULL, 0);
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
    int rc = sl__apikey_parse_text(buf, got, s->path, &e, &n, st);
    free(buf);
    if (rc != SL_OK)
        return rc;
    sl__apikey_replace_entries(s, e, n);
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
    char *text = sl__apikey_format_text(e, n, &len);
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
int sl__apikey_begin_write(sl_apikey_store *s, int *fd, sl_status *st)
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
    int rc = sl__apikey_load_file(s, 0, st);
    if (rc != SL_OK) {
        close(l);
        return rc;
    }
    *fd = l;
    return SL_OK;
}

void sl__apikey_end_write(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* Writes e[0..n) (file-backed stores) and on success makes it the store's records. */
int sl__apikey_commit(sl_apikey_store *s, entry *e, size_t n, sl_status *st)
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

int sl__apikey_stage_record(sl__kv *kv, const entry *e, sl_status *st)
{
    json_t *o = sl__secstore_object();
    int rc = sl__apikey_record_json(o, e) < 0
                 ? SL_ENOMEM
                 : sl__secstore_put(kv, SL__KV_APIKEYS, e->rec.id, SL_APIKEY_ID_LEN, o);
    json_decref(o);
    return rc == SL_OK ? rc : sl_status_set(st, rc, "cannot store api key '%s'", e->rec.id);
}

/* While a key file may name the id, a tombstone; otherwise nothing is left. */
int sl__apikey_stage_delete(sl_apikey_store *s, const char *id, sl_status *st)
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
        rc = sl__apikey_record_from_json(o, out, why, whysz);
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
        qsort(ls.e, ls.n, sizeof *ls.e, sl__apikey_entry_cmp);
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
        if ((rc = sl__apikey_stage_record(kv, &f, st)) != SL_OK)
            break;
        if (sl__apikey_record_copy(&u[nu].rec, &f.rec) < 0) {
            rc = sl_status_set(st, SL_ENOMEM, NULL);
            break;
        }
        memcpy(u[nu].hash, f.hash, SL__APIKEY_HASH_LEN);
        nu++;
        j++;
        if (c == 0)
            i++; /* the stored one is replaced; freed below with the rest */
    }
    /* Tombstones for ids the file no longer names have nothing left to guard. */
    for (size_t k = 0; rc == SL_OK && k < ls.ndead; k++) {
        int named;
        sl__apikey_find(s->e, s->n, ls.dead[k], &named);
        if (!named &&
            (rc = kv->ops->del(kv, SL__KV_APIKEYS, ls.dead[k], SL_APIKEY_ID_LEN)) != SL_OK)
            sl_status_set(st, rc, "cannot delete a stored api key tombstone");
    }
    sl__apikey_entries_free(ls.e, ls.n);
    free(ls.dead);
    if (rc != SL_OK) {
        sl__apikey_entries_free(u, nu);
        return rc;
    }
    sl__apikey_replace_entries(s, u, nu);
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
        memcmp(a->hash, b->hash, SL__APIKEY_HASH_LEN) != 0)
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
    size_t i = sl__apikey_find(s->e, s->n, id, &found);
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
            sl__apikey_entries_free(u, nu);
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
                i = sl__apikey_find(s->e, s->n, id, &found);
            if (found) {
                if (sl__apikey_record_copy(&u[nu].rec, &s->e[i].rec) < 0) {
                    sl__apikey_entries_free(u, nu);
                    return sl_status_set(st, SL_ENOMEM, NULL);
                }
                memcpy(u[nu].hash, s->e[i].hash, SL__APIKEY_HASH_LEN);
                nu++;
            }
        }
    }
    if (nu > 1)
        qsort(u, nu, sizeof *u, sl__apikey_entry_cmp);
    int changed = 0;
    for (size_t i = 0; i < s->n; i++) {
        int found;
        sl__apikey_find(u, nu, s->e[i].rec.id, &found);
        changed += !found;
    }
    for (size_t i = 0; i < nu; i++) {
        int found;
        size_t j = sl__apikey_find(s->e, s->n, u[i].rec.id, &found);
        changed += !found || !same_entry(&s->e[j], &u[i]);
    }
    for (size_t i = 0; i < s->n; i++)
        OPENSSL_cleanse(s->e[i].hash, SL__APIKEY_HASH_LEN);
    sl__apikey_replace_entries(s, u, nu);
    if (bad.code != SL_OK && st != NULL)
        *st = bad;
    return changed;
}
