/* Fuzz target: API keys (src/security/apikey.c): the store file's text format and the key syntax.
 * The input is store text, optionally preceded by one line holding a presented key ("slk_..."),
 * which is otherwise the whole input. Checked: a refused store text's message never repeats a
 * "hash" value of the text (64 hex digits); a loaded store lists its records sorted by unique valid
 * id, each with a valid principal (a workspace's key: "WS/principal") and patterns, and finds each
 * by id; the presented key parses only in the documented shape (slk_ + 12 + '_' + 52 characters of
 * a-z2-7), and authenticating it answers one of the three fixed messages or the identity of its
 * record, unexpired. And a key created in the loaded store authenticates as what it was created
 * for, while the same key with one character of its secret changed does not. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/apikey.h>

#include "core/wsid.h"

#define NOW 1700000000.0

static int in_alphabet(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

/* No well-formed "hash" value (64 hex digits) of the text's lines may appear in the message. (A
 * message may name an unknown field, cut to 40 bytes, or an id, 12: neither can hold one.) */
static void check_message(const char *text, size_t len, const char *msg)
{
    for (size_t off = 0; off < len;) {
        const char *p = text + off, *nl = memchr(p, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - p) : len - off;
        off += ll + 1;
        json_t *o = json_loadb(p, ll, 0, NULL);
        const char *h = json_string_value(json_object_get(o, "hash"));
        if (h && strlen(h) == 64 && strspn(h, "0123456789abcdef") == 64 && strstr(msg, h) != NULL)
            abort();
        json_decref(o);
    }
}

static void check_key(const sl_apikey_store *s, const char *key, size_t len)
{
    char id[SL_APIKEY_ID_LEN + 1];
    const char *secret = NULL;
    size_t slen = 0;
    int shape = len == SL_APIKEY_LEN && memcmp(key, "slk_", 4) == 0 && key[16] == '_';
    for (size_t i = 4; shape && i < len; i++)
        shape = i == 16 || in_alphabet(key[i]);
    int rc = sl_apikey_parse(key, len, id, &secret, &slen);
    if ((rc == SL_OK) != shape)
        abort();
    if (rc == SL_OK && (memcmp(id, key + 4, 12) != 0 || id[12] != '\0' || secret != key + 17 ||
                        slen != SL_APIKEY_SECRET_LEN || !sl_apikey_id_valid(id)))
        abort();

    sl_identity who;
    sl_identity_init(&who);
    sl_status st;
    sl_status_clear(&st);
    rc = sl_apikey_authenticate(s, key, len, NOW, &who, &st);
    if (rc == SL_OK) {
        sl_apikey_record r;
        if (!shape || sl_apikey_get(s, id, &r) != SL_OK)
            abort();
        /* A workspace's key names "WS/principal"; its identity is principal in workspace WS. */
        char qp[SL__QPRINCIPAL_SIZE];
        if (sl__ws_qualify(who.workspace, who.principal, qp, sizeof qp) != SL_OK)
            abort();
        if (strcmp(r.principal, qp) != 0 || strcmp(who.token_id, id) != 0 || r.role != who.role ||
            r.scoped != who.scoped || r.nchannels != who.nchannels ||
            (r.expires_at > 0 && !(NOW < r.expires_at)) || who.source != SL_SOURCE_APIKEY)
            abort();
        sl_apikey_record_clear(&r);
    } else if (rc != SL_ETOKEN || (strcmp(st.message, "malformed api key") != 0 &&
                                   strcmp(st.message, "unknown api key") != 0 &&
                                   strcmp(st.message, "api key expired") != 0)) {
        abort();
    } else if (!shape && strcmp(st.message, "malformed api key") != 0) {
        abort();
    }
    sl_identity_clear(&who);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *key = text;
    size_t len = size, klen = size;
    const char *nl = memchr(text, '\n', size);
    if (nl && sl_apikey_looks_like(text, (size_t)(nl - text))) {
        klen = (size_t)(nl - text);
        text = nl + 1;
        len = size - klen - 1;
    }
    sl_apikey_store *s;
    sl_status st;
    if (sl_apikey_store_open(&s, NULL, &st) != SL_OK)
        abort();
    int rc = sl_apikey_store_load_text(s, text, len, "fuzz.keys", &st);
    if (rc != SL_OK) {
        if (rc != SL_ECONFIG && rc != SL_ENOMEM)
            abort();
        check_message(text, len, st.message);
    }
    sl_apikey_record *recs;
    size_t n;
    if (sl_apikey_list(s, &recs, &n) != SL_OK)
        abort();
    if (rc != SL_OK && n != 0)
        abort(); /* a refused text loads nothing */
    for (size_t i = 0; i < n; i++) {
        const sl_apikey_record *r = &recs[i];
        if (!sl_apikey_id_valid(r->id) ||
            !sl__stored_principal_valid(r->principal, strlen(r->principal)))
            abort();
        if (i > 0 && strcmp(recs[i - 1].id, r->id) >= 0)
            abort();
        for (size_t k = 0; k < r->nchannels; k++)
            if (!sl_pattern_valid(r->channels[k], strlen(r->channels[k])))
                abort();
        sl_apikey_record g;
        if (sl_apikey_get(s, r->id, &g) != SL_OK || strcmp(g.principal, r->principal) != 0)
            abort();
        sl_apikey_record_clear(&g);
    }
    sl_apikey_records_free(recs, n);

    check_key(s, key, klen);

    /* A real key in this store, then a forged neighbour of it. */
    char *k = NULL, id[SL_APIKEY_ID_LEN + 1];
    const char *pats[] = {"jobs.*"};
    if (sl_apikey_create(s, "fuzz-svc", SL_ROLE_WRITE, pats, 1, 0, NOW, &k, id, &st) != SL_OK)
        abort();
    sl_identity who;
    sl_identity_init(&who);
    if (sl_apikey_authenticate(s, k, strlen(k), NOW, &who, &st) != SL_OK ||
        strcmp(who.principal, "fuzz-svc") != 0 || who.role != SL_ROLE_WRITE || !who.scoped ||
        who.nchannels != 1 || strcmp(who.token_id, id) != 0)
        abort();
    sl_identity_clear(&who);
    size_t at = 17 + (size ? data[size - 1] : 0) % SL_APIKEY_SECRET_LEN;
    k[at] = k[at] == 'a' ? 'b' : 'a';
    if (sl_apikey_authenticate(s, k, strlen(k), NOW, &who, &st) != SL_ETOKEN ||
        strcmp(st.message, "unknown api key") != 0)
        abort();
    sl_identity_clear(&who);
    sl_apikey_key_free(k);
    sl_apikey_store_close(s);
    return 0;
}
