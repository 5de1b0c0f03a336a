/* What the WebSocket transport (ws.h) checks in what a peer sends, with no connection state: the
 * upgrade request (method, Upgrade and Connection tokens, version 13, a 16-byte base64 key) and the
 * Sec-WebSocket-Accept value answering it (SHA-1 through OpenSSL EVP), the UTF-8 of text messages
 * and close reasons, and a peer's close frame body. net/ws.c runs the connections that use them;
 * fuzz/fuzz_ws.c drives these alone. */
#include "net/ws.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include <sluice/error.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int sl_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m != NULL && EVP_DigestInit_ex(m, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(m, key, key_len) == 1 &&
             EVP_DigestUpdate(m, WS_GUID, sizeof WS_GUID - 1) == 1 &&
             EVP_DigestFinal_ex(m, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(m);
    if (!ok)
        return SL_EINTERNAL;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return SL_OK;
}

/* Whether the comma-separated header value lists token (case-insensitively). */
static int has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return 1;
    }
    return 0;
}

static int key_valid(const char *k, size_t len)
{
    /* base64 of 16 bytes: 22 significant characters and "==". */
    if (len != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        char ch = k[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return 0;
    }
    unsigned char raw[18];
    return EVP_DecodeBlock(raw, (const unsigned char *)k, 24) == 18;
}

int sl_ws_check_handshake(const sl_http_request *req, const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    size_t len;
    const char *v;
    if (strcmp(req->method, "GET") != 0) {
        *why = "WebSocket upgrade requires GET";
        return 400;
    }
    v = sl_http_header_get(req, "Upgrade", &len);
    if (v == NULL || !has_token(v, len, "websocket")) {
        *why = "missing Upgrade: websocket";
        return 400;
    }
    v = sl_http_header_get(req, "Connection", &len);
    if (v == NULL || !has_token(v, len, "upgrade")) {
        *why = "missing Connection: upgrade";
        return 400;
    }
    v = sl_http_header_get(req, "Sec-WebSocket-Version", &len);
    if (v == NULL) {
        *why = "missing Sec-WebSocket-Version";
        return 400;
    }
    if (len != 2 || memcmp(v, "13", 2) != 0) {
        *why = "unsupported WebSocket version";
        return 426;
    }
    v = sl_http_header_get(req, "Sec-WebSocket-Key", &len);
    if (v == NULL || !key_valid(v, len)) {
        *why = "missing or malformed Sec-WebSocket-Key";
        return 400;
    }
    return 0;
}

/* RFC 6455 §8.1: text must be UTF-8 (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF); the layer above hands text on to JSON parsers. ASCII, most of any JSON, is skipped
 * eight bytes at a time. */
int sl__ws_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned char b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned char lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            k = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            k = 2;
            if (b == 0xe0)
                lo = 0xa0;
            else if (b == 0xed)
                hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            k = 3;
            if (b == 0xf0)
                lo = 0x90;
            else if (b == 0xf4)
                hi = 0x8f;
        } else {
            return 0;
        }
        if (n - i <= k || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

/* Close codes a peer may send (RFC 6455 §7.4, and 1012-1014 registered with IANA since). */
static int close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

const char *sl__ws_close_check(const uint8_t *p, size_t n, int *code)
{
    *code = SL_WS_NO_STATUS;
    if (n == 0)
        return NULL;
    if (n == 1)
        return "close frame with a 1-byte body";
    *code = p[0] << 8 | p[1];
    if (!close_code_valid(*code))
        return "invalid close code";
    if (!sl__ws_utf8_valid(p + 2, n - 2))
        return "close reason is not UTF-8";
    return NULL;
}
