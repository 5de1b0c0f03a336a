/* Built by tests/package/test_package.py against the installed package only (pkg-config sluice):
 * the README's in-process tutorial. An ACL context (in memory, or durable in argv[1]), a grant, a
 * queue, a write by the granted principal, a claim that returns it, a denial for anyone else.
 * Prints "ok" and exits 0 when all of that holds. */
#include <sluice/sluice.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, const sl_status *st)
{
    fprintf(stderr, "tutorial: %s: %s\n", what, st->message);
    return 1;
}

int main(int argc, char **argv)
{
    sl_ctx *ctx;
    sl_status st;
    sl_status_clear(&st);
    sl_ctx_options o = {.mode = SL_MODE_ACL, .data_dir = argc > 1 ? argv[1] : NULL};
    if (sl_ctx_open(&ctx, &o, &st) != SL_OK)
        return fail("sl_ctx_open", &st);
    int rc = 1;
    sl_identity who, rogue;
    sl_identity_local(&who, "scheduler");
    sl_identity_local(&rogue, "rogue-process");
    sl_write w = {.data = "{\"task\":\"compress\"}", .data_len = 19};
    sl_read r = {.limit = 5, .exclusive = 1};
    sl_message_list got = {0};
    char id[SL_ITEM_ID_SIZE];
    if (sl_acl_grant(ctx, NULL, "scheduler", SL_ROLE_WRITE, NULL, 0, &st) != SL_OK)
        fail("sl_acl_grant", &st);
    else if (sl_channel_create(ctx, NULL, "jobs", NULL, &st) != SL_OK)
        fail("sl_channel_create", &st);
    else if (sl_channel_write(ctx, &who, "jobs", &w, id, sizeof id, &st) != SL_OK)
        fail("sl_channel_write", &st);
    else if (sl_channel_write(ctx, &rogue, "jobs", &w, NULL, 0, &st) != SL_EFORBIDDEN)
        fprintf(stderr, "tutorial: the rogue process was not denied\n");
    else if (sl_channel_read(ctx, &who, "jobs", &r, &got, &st) != SL_OK)
        fail("sl_channel_read", &st);
    else if (got.len != 1 || strcmp(got.items[0].id, id) ||
             strcmp(got.items[0].data, "{\"task\":\"compress\"}"))
        fprintf(stderr, "tutorial: read back something else\n");
    else
        rc = 0;
    sl_message_list_free(&got);
    sl_identity_clear(&who);
    sl_identity_clear(&rogue);
    sl_ctx_free(ctx);
    if (rc == 0)
        puts("ok");
    return rc;
}
