/* RFC 6455 framing without I/O: a header parser, a header writer and the masking transform, for
 * both ends of a connection. The server transport (net/ws.c) and the load tool (`sluice bench`)
 * drive it over sockets; unit tests and a fuzz target drive it directly. It knows frames, not
 * messages: fragment reassembly, control-frame rules that span frames and UTF-8 checks belong to
 * the caller. */
#ifndef SLUICE_NET_WS_FRAME_H
#define SLUICE_NET_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    SL__WSF_CONT = 0x0,
    SL__WSF_TEXT = 0x1,
    SL__WSF_BINARY = 0x2,
    SL__WSF_CLOSE = 0x8,
    SL__WSF_PING = 0x9,
    SL__WSF_PONG = 0xA,
};

#define SL__WSF_MAX_HEADER 14 /* 2 + 8 (64-bit length) + 4 (mask) */

typedef struct sl__wsf_header {
    unsigned fin : 1;
    unsigned rsv : 3; /* RSV1..3; no extension is negotiated, so the parser refuses non-zero */
    unsigned opcode : 4;
    unsigned masked : 1;
    uint8_t mask[4];   /* valid when masked */
    uint64_t len;      /* payload length */
    size_t header_len; /* bytes of the header, 2..14 */
} sl__wsf_header;

/* Parses the header at buf[0..n). Returns the header length (> 0) with *h filled, 0 when more
 * bytes are needed, or a negative sl_errno (SL_EINVAL) with *why (if not NULL) a static text for a
 * header that is malformed on its own: reserved bits set, an unknown opcode, a control frame that
 * is fragmented or longer than 125 bytes, a length not in its minimal encoding, or a 64-bit length
 * with the top bit set. The error comes as soon as the bytes present prove it (the reserved bits
 * and opcode from one byte), so a reader can drop a hostile peer without waiting for more. Whether
 * the frame must be masked is the caller's rule (clients mask, servers do not). */
int sl__wsf_parse_header(const uint8_t *buf, size_t n, sl__wsf_header *h, const char **why);

/* Writes a frame header into out (at least SL__WSF_MAX_HEADER bytes) and returns its length.
 * mask NULL: unmasked (server to client); else the 4-byte key the payload will be masked with. */
size_t sl__wsf_write_header(uint8_t *out, int fin, int opcode, uint64_t len, const uint8_t *mask);

/* XORs data[0..n) with the key, as if data started at byte `offset` of the payload (so a payload
 * can be unmasked in pieces as it arrives). Masking and unmasking are the same operation. data
 * needs no alignment; the work is done eight bytes at a time. */
void sl__wsf_mask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset);

#endif
