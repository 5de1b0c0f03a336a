/* Fuzz target: the Centrifugo JSON command parser (src/net/centrifuge.c) on arbitrary frames. It
 * must never crash or leak, a frame it accepts must hold at most SL__CF_MAX_COMMANDS commands, and
 * every "data" it returns must be valid JSON on its own (the session stores it verbatim), so each
 * one is re-parsed with jansson; each command's reply and error encodings (centrifuge_encode.c) are
 * exercised too. A line the publish fast path (centrifuge_fast.c) takes must give exactly the
 * command the general parser gives. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/centrifuge.h"

/* Every line the publish fast path takes must give exactly the command the general parser
 * gives. */
static void same_as_general(const char *line, size_t len)
{
    sl__cf_command f, g;
    int rf = sl__cf_parse_publish_fast(line, len, &f);
    if (rf != 1)
        return;
    sl_status st;
    int rg = sl__cf_parse_line(line, len, &g, 1, &st);
    if (rg == SL_ENOMEM) {
        sl__cf_command_clear(&f);
        return;
    }
    if (rg != 0 || g.method != f.method || g.id != f.id || g.error != f.error ||
        g.channel == NULL || strcmp(g.channel, f.channel) != 0 || g.data == NULL ||
        g.data_len != f.data_len || memcmp(g.data, f.data, f.data_len) != 0 || g.token || g.name ||
        g.version || g.rpc_method || g.subs || g.epoch || g.since_epoch)
        abort();
    sl__cf_command_clear(&f);
    sl__cf_command_clear(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && memchr(data, '\n', size) == NULL)
        same_as_general((const char *)data, size);
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
