/* Fuzz target: percent-decoding and query strings of the HTTP API (src/server/params.c), which turn
 * request targets into resources and parameters. Checked against independent rules: a decoded
 * string never holds a NUL and never outgrows its buffer; encoding the result again and decoding
 * that gives the same bytes (nothing depends on which of two spellings was sent); a byte string
 * without NUL survives encoding then decoding; and a parameter that sl__http_query_get finds is
 * the decoded value of the first pair whose decoded key is the name. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/params.h"
#include "server/router.h"

static size_t encode(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = '%';
        out[o++] = hex[c >> 4];
        out[o++] = hex[c & 15];
    }
    return o;
}

/* The value of name in query (q, n bytes), decoded the obvious way: 1 found, 0 absent, -1 bad. */
static int naive_get(const char *q, size_t n, const char *name, char *buf, size_t cap)
{
    size_t i = 0;
    while (i <= n && n > 0) {
        size_t e = i;
        while (e < n && q[e] != '&')
            e++;
        size_t eq = i;
        while (eq < e && q[eq] != '=')
            eq++;
        char key[64];
        long kl = sl__pct_decode(q + i, eq - i, key, sizeof key, 1);
        if (kl >= 0 && (size_t)kl == strlen(name) && memcmp(key, name, (size_t)kl) == 0) {
            size_t v = eq < e ? eq + 1 : e;
            return sl__pct_decode(q + v, e - v, buf, cap, 1) < 0 ? -1 : 1;
        }
        if (e == n)
            break;
        i = e + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t cap = size + 1;
    char *dec = malloc(cap), *enc = malloc(3 * size + 1), *again = malloc(cap);
    if (dec == NULL || enc == NULL || again == NULL)
        abort();
    for (int plus = 0; plus <= 1; plus++) {
        long n = sl__pct_decode(in, size, dec, cap, plus);
        if (n < -1 || n > (long)size)
            abort();
        if (n >= 0) {
            if (dec[n] != '\0' || memchr(dec, '\0', (size_t)n) != NULL)
                abort();
            size_t el = encode(dec, (size_t)n, enc);
            if (sl__pct_decode(enc, el, again, cap, plus) != n || memcmp(again, dec, (size_t)n))
                abort();
            /* One byte less room than the output needs must refuse, not truncate. */
            if (n > 0 && sl__pct_decode(in, size, again, (size_t)n, plus) != -1)
                abort();
        }
    }
    /* Raw bytes, when they hold no NUL, survive the round trip. */
    if (memchr(in, '\0', size) == NULL) {
        size_t el = encode(in, size, enc);
        if (sl__pct_decode(enc, el, dec, cap, 0) != (long)size || memcmp(dec, in, size) != 0)
            abort();
    }

    /* The input as a query string, asked for a few names. */
    char *q = malloc(size + 1);
    if (q == NULL)
        abort();
    memcpy(q, in, size);
    q[size] = '\0';
    sl_http_request req;
    memset(&req, 0, sizeof req);
    req.query = q;
    req.query_len = size;
    static const char *const names[] = {"limit", "ack", "wait", "a"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char b1[128], b2[128];
        int r1 = sl__http_query_get(&req, names[k], b1, sizeof b1);
        int r2 = naive_get(q, size, names[k], b2, sizeof b2);
        if (r1 != r2 || (r1 == 1 && strcmp(b1, b2) != 0))
            abort();
    }
    free(q);
    free(dec);
    free(enc);
    free(again);
    return 0;
}
