/* Fuzz target: the parts of the WebSocket transport (src/net/ws_check.c) that read what a peer
 * sends, other than framing (fuzz_wsframe): the upgrade handshake, the UTF-8 check of text messages
 * and close reasons, and the close frame check. The input is a request ("METHOD\nName: value\n...")
 * for the handshake, and raw bytes for the rest. Checked against independent rules: an accepted
 * handshake is a GET with the tokens, version and a 16-byte base64 key RFC 6455 requires, and its
 * accept value is 28 base64 characters; sl__ws_utf8_valid agrees with a decoder of RFC 3629 written
 * the slow way; an accepted close body has no 1-byte length, a code a peer may send and a UTF-8
 * reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/ws.h"

#define MAX_HEADERS 32

/* RFC 3629 the slow way: decode each scalar value, then judge it. */
static int naive_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int code_ok(int c)
{
    /* RFC 6455 section 7.4: 1004-1006 and 1015 are never sent; 1012-1014 registered since. */
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* A comma-separated header value lists token (case-insensitively, spaces around items). */
static int lists(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i <= len;) {
        size_t e = i;
        while (e < len && v[e] != ',')
            e++;
        size_t a = i, b = e;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b - a == tl && strncasecmp(v + a, token, tl) == 0)
            return 1;
        i = e + 1;
    }
    return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void check_handshake(const char *text, size_t size)
{
    char *t = malloc(size + 1);
    if (t == NULL)
        abort();
    memcpy(t, text, size);
    t[size] = '\0';
    sl_http_header h[MAX_HEADERS];
    size_t nh = 0;
    char *nl = memchr(t, '\n', size);
    if (nl)
        *nl = '\0';
    char *p = nl ? nl + 1 : t + size;
    while (nh < MAX_HEADERS && p < t + size) {
        char *e = memchr(p, '\n', (size_t)(t + size - p));
        size_t ll = e ? (size_t)(e - p) : (size_t)(t + size - p);
        char *colon = memchr(p, ':', ll);
        if (colon) {
            char *v = colon + 1, *ve = p + ll;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            h[nh++] = (sl_http_header){p, (size_t)(colon - p), v, (size_t)(ve - v)};
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    sl_http_request req;
    memset(&req, 0, sizeof req);
    req.method = t;
    req.target = req.path = "/connection/websocket";
    req.query = "";
    req.headers = h;
    req.nheaders = nh;
    const char *why = NULL;
    int rc = sl_ws_check_handshake(&req, &why);
    if (rc != 0 && rc != 400 && rc != 426)
        abort();
    if (rc != 0 && (why == NULL || *why == '\0'))
        abort();
    if (rc == 0) {
        size_t len;
        const char *v;
        if (strcmp(req.method, "GET") != 0)
            abort();
        if ((v = sl_http_header_get(&req, "upgrade", &len)) == NULL || !lists(v, len, "websocket"))
            abort();
        if ((v = sl_http_header_get(&req, "connection", &len)) == NULL || !lists(v, len, "Upgrade"))
            abort();
        if ((v = sl_http_header_get(&req, "sec-websocket-version", &len)) == NULL || len != 2 ||
            memcmp(v, "13", 2) != 0)
            abort();
        /* 16 bytes in base64: 22 characters and "==". (The unused low bits of the last character
         * are not checked: the accept value is computed from the text as sent.) */
        if ((v = sl_http_header_get(&req, "sec-websocket-key", &len)) == NULL || len != 24 ||
            v[22] != '=' || v[23] != '=')
            abort();
        for (size_t i = 0; i < 22; i++)
            if (strchr(b64, v[i]) == NULL || v[i] == '\0')
                abort();
        char acc[29];
        if (sl_ws_accept_key(v, len, acc) != 0 || strlen(acc) != 28 || acc[27] != '=')
            abort();
        for (size_t i = 0; i < 27; i++)
            if (strchr(b64, acc[i]) == NULL)
                abort();
    }
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sl__ws_utf8_valid(data, size) != naive_utf8(data, size))
        abort();

    int code = 0;
    const char *why = sl__ws_close_check(data, size, &code);
    int acceptable = size == 0 || (size >= 2 && code_ok(data[0] << 8 | data[1]) &&
                                   naive_utf8(data + 2, size - 2));
    if ((why == NULL) != acceptable || (why != NULL && *why == '\0'))
        abort();
    if (why == NULL && code != (size == 0 ? SL_WS_NO_STATUS : data[0] << 8 | data[1]))
        abort();

    check_handshake((const char *)data, size);
    return 0;
}
