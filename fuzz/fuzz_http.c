/* Fuzz target: the HTTP request assembler (src/net/http_parser.c). The input is fed whole, then
 * split at a position taken from its first byte, and both feeds must yield the same requests. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_parser.h"

/* Feeds data in slices of `step` bytes; returns the number of requests, or -1 after an error. */
static int drive(const char *data, size_t size, size_t step, size_t *total_body)
{
    sl__http_parser p;
    sl__http_parser_init(&p, 4096, 2048);
    int requests = 0;
    size_t off = 0;
    *total_body = 0;
    while (off < size) {
        size_t len = size - off < step ? size - off : step, used = 0;
        int rc = sl__http_parser_feed(&p, data + off, len, &used);
        off += used;
        if (rc < 0) {
            requests = -1;
            break;
        }
        if (rc == 1) {
            sl_http_request req;
            sl__http_parser_request(&p, &req);
            *total_body += req.body_len;
            requests++;
            sl__http_parser_next(&p);
        } else if (used < len) {
            abort(); /* NEED_MORE must consume everything it was given */
        }
    }
    sl__http_parser_free(&p);
    return requests;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t b1, b2;
    int whole = drive((const char *)data, size, size ? size : 1, &b1);
    size_t step = size ? 1 + data[0] % 16 : 1;
    int sliced = drive((const char *)data, size, step, &b2);
    /* Splitting the stream must not change complete requests seen before any error. */
    if (whole >= 0 && sliced >= 0 && (whole != sliced || b1 != b2))
        abort();
    return 0;
}
