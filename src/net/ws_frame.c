/* RFC 6455 §5.2 frame headers and §5.3 masking for ws_frame.h. The parser rejects a header as soon
 * as the bytes it has prove it malformed (reserved bits and opcode are in the first byte), so a
 * stream reader can fail a hostile peer before waiting for more; it never reads past n. Masking
 * works eight bytes at a time through memcpy, which compilers turn into plain (often vector) loads
 * and stores without the alignment and aliasing undefined behaviour of casting the buffer. */
#include "net/ws_frame.h"

#include <string.h>

#include <sluice/error.h>

static int bad(const char **why, const char *text)
{
    if (why != NULL)
        *why = text;
    return SL_EINVAL;
}

int sl__wsf_parse_header(const uint8_t *buf, size_t n, sl__wsf_header *h, const char **why)
{
    if (n < 1)
        return 0;
    unsigned b0 = buf[0], op = b0 & 0x0f;
    if (b0 & 0x70)
        return bad(why, "reserved bits set");
    if ((op > SL__WSF_BINARY && op < SL__WSF_CLOSE) || op > SL__WSF_PONG)
        return bad(why, "unknown opcode");
    int control = (op & 0x8) != 0;
    if (control && !(b0 & 0x80))
        return bad(why, "fragmented control frame");
    if (n < 2)
        return 0;
    unsigned b1 = buf[1], len7 = b1 & 0x7f;
    if (control && len7 > 125)
        return bad(why, "control frame longer than 125 bytes");
    size_t hl = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
    uint64_t len = len7;
    if (len7 == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)buf[2] << 8 | buf[3];
        if (len < 126)
            return bad(why, "length not in its minimal encoding");
    } else if (len7 == 127) {
        if (n < 3)
            return 0;
        if (buf[2] & 0x80) /* checked before the rest arrives: nothing below can make it valid */
            return bad(why, "64-bit length with the most significant bit set");
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | buf[i];
        if (len <= 0xffff)
            return bad(why, "length not in its minimal encoding");
    }
    if (n < hl)
        return 0;
    memset(h, 0, sizeof *h);
    h->fin = (b0 >> 7) & 1;
    h->rsv = 0;
    h->opcode = op;
    h->masked = (b1 >> 7) & 1;
    if (h->masked)
        memcpy(h->mask, buf + hl - 4, 4);
    h->len = len;
    h->header_len = hl;
    return (int)hl;
}

size_t sl__wsf_write_header(uint8_t *out, int fin, int opcode, uint64_t len, const uint8_t *mask)
{
    size_t i = 0;
    out[i++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t m = mask != NULL ? 0x80 : 0;
    if (len < 126) {
        out[i++] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        out[i++] = m | 126;
        out[i++] = (uint8_t)(len >> 8);
        out[i++] = (uint8_t)len;
    } else {
        out[i++] = m | 127;
        for (int s = 56; s >= 0; s -= 8)
            out[i++] = (uint8_t)(len >> s);
    }
    if (mask != NULL) {
        memcpy(out + i, mask, 4);
        i += 4;
    }
    return i;
}

void sl__wsf_mask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset)
{
    /* The key rotated to the payload's phase, twice over: a 64-bit word in memory order, so the
     * same code is right on either endianness. */
    uint8_t k[8];
    for (int i = 0; i < 8; i++)
        k[i] = mask[(offset + (unsigned)i) & 3];
    uint64_t kw;
    memcpy(&kw, k, 8);
    size_t i = 0;
    for (; n - i >= 32; i += 32) {
        uint64_t w[4];
        memcpy(w, data + i, 32);
        w[0] ^= kw;
        w[1] ^= kw;
        w[2] ^= kw;
        w[3] ^= kw;
        memcpy(data + i, w, 32);
    }
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= kw;
        memcpy(data + i, &w, 8);
    }
    for (; i < n; i++) /* k has period 4 and the loops above step by multiples of it */
        data[i] ^= k[i & 3];
}
