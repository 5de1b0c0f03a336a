/* Fuzz target: the Centrifugo JSON command parser (src/net/centrifuge.c) on arbitrary frames. It
 * must never crash or leak, a frame it accepts must hold at most SL__CF_MAX_COMMANDS commands, and
 * every "data" it returns must be valid JSON on its own (the session stores it verbatim), so each
 * one is re-parsed with jansson; each command's reply and error encodings (centrifuge_encode.c) are
 * exercised too. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "net/centrifuge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl__cf_command cmds[SL__CF_MAX_COMMANDS];
    size_t n = 0;
    sl_status st;
    int rc = sl__cf_parse_frame((const char *)data, size, cmds, SL__CF_MAX_COMMANDS, &n, &st);
    if (rc != SL_OK && n != 0)
        abort();
    if (n > SL__CF_MAX_COMMANDS)
        abort();
    sl__cf_buf b;
    sl__cf_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        sl__cf_command *c = &cmds[i];
        if (c->data) {
            json_t *j = json_loadb(c->data, c->data_len, JSON_DECODE_ANY, NULL);
            if (j == NULL)
                abort();
            json_decref(j);
        }
        if (c->error)
            sl__cf_reply_error(&b, c->id, c->error, c->error_message);
        else if (c->method == SL__CF_RPC)
            sl__cf_reply_rpc(&b, c->id, c->data, c->data_len);
        else if (c->method == SL__CF_PUBLISH) {
            sl__cf_pub p = {c->data, c->data_len, 1, NULL};
            sl__cf_push_pub(&b, c->channel, &p);
        }
    }
    /* The batch the encoder built must be newline-separated JSON objects. */
    if (b.len) {
        const char *p = b.data, *e = b.data + b.len;
        while (p < e) {
            const char *nl = p;
            while (nl < e && *nl != '\n')
                nl++;
            json_t *j = json_loadb(p, (size_t)(nl - p), 0, NULL);
            if (j == NULL)
                abort();
            json_decref(j);
            p = nl + 1;
        }
    }
    sl__cf_buf_free(&b);
    sl__cf_commands_clear(cmds, n);
    return 0;
}
