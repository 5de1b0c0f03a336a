/* Fuzz target: the HTTP API's router (src/server/router.c) through its synchronous entry point,
 * sl__router_handle: route matching, the percent-decoded resource of the path, query parameters and
 * every handler's JSON body, on a fresh context (ACL mode, a public channel "jobs", an in-memory
 * API key store and a broker, as sluiced has them) per input. The input is "METHOD\nTARGET\nBODY";
 * the request carries an admin's sluice token unless TARGET starts with '~' (then it has none, and
 * the
 * '~' is dropped). Checked: every answer is a status from 200 to 599 with a JSON object body (an
 * error's with "error" and "message" strings); without the token no handler runs but that of a
 * route that needs no role; and no answer or header ever contains the bearer token's signature
 * (unless the input does). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/apikey.h>
#include <sluice/broker.h>
#include <sluice/jwt.h>
#include <sluice/sluice.h>

#include "server/console.h"
#include "server/params.h"
#include "server/router.h"

#define NOW 1700000000.0
#define SECRET "0123456789abcdef0123456789abcdef"

static double fixed_clock(void *ud)
{
    return NOW;
}

/* Whether path matches a route template with at most one {capture} segment. */
static int tmpl_matches(const char *tmpl, const char *path)
{
    const char *b = strchr(tmpl, '{');
    if (b == NULL)
        return strcmp(tmpl, path) == 0;
    size_t pre = (size_t)(b - tmpl);
    const char *after = strchr(b, '}') + 1;
    if (strncmp(tmpl, path, pre) != 0)
        return 0;
    const char *seg = path + pre, *slash = strchr(seg, '/');
    size_t seglen = slash ? (size_t)(slash - seg) : strlen(seg);
    return seglen > 0 && strcmp(seg + seglen, after) == 0;
}

static sl_jwt_keyring *keys;
static char *token, auth[1024];

/* A NUL-terminated copy of p[0..n). */
static char *copy(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void once(void)
{
    if (keys != NULL)
        return;
    sl_jwt_claims c = {.sub = "root", .role = SL_ROLE_ADMIN, .iat = NOW, .exp = NOW + 3600};
    if (sl_jwt_keyring_new(&keys) != SL_OK ||
        sl_jwt_keyring_add_hs256(keys, NULL, SECRET, strlen(SECRET)) != SL_OK ||
        sl_jwt_sign(keys, NULL, &c, &token) != SL_OK)
        abort();
    snprintf(auth, sizeof auth, "Bearer %s", token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    once();
    /* method \n target \n body, each NUL-terminated in a copy of its own */
    const char *in = (const char *)data, *end = in + size;
    const char *nl1 = memchr(in, '\n', size);
    if (nl1 == NULL)
        return 0;
    const char *nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
    if (nl2 == NULL)
        nl2 = end;
    char *method = copy(in, (size_t)(nl1 - in));
    const char *t = nl1 + 1;
    int with_token = !(t < nl2 && *t == '~');
    if (!with_token)
        t++;
    char *target = copy(t, (size_t)(nl2 - t));
    size_t blen = nl2 < end ? (size_t)(end - nl2 - 1) : 0;
    char *body = malloc(blen + 1);
    if (body == NULL)
        abort();
    memcpy(body, nl2 < end ? nl2 + 1 : "", blen);
    body[blen] = '\0';
    size_t tlen = (size_t)(nl2 - t);
    char *path = copy(target, tlen);
    char *q = memchr(path, '?', tlen);
    if (q)
        *q = '\0';

    sl_http_header h = {"Authorization", 13, auth, strlen(auth)};
    sl_http_request req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.target = target;
    req.target_len = tlen;
    req.path = path;
    req.path_len = q ? (size_t)(q - path) : tlen;
    req.query = q ? q + 1 : "";
    req.query_len = q ? tlen - req.path_len - 1 : 0;
    req.headers = &h;
    req.nheaders = with_token;
    req.body = body;
    req.body_len = blen;

    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_ACL, .clock = fixed_clock};
    sl_status st;
    sl_channel_opts co;
    sl_channel_opts_init(&co);
    co.visibility = SL_VIS_PUBLIC;
    sl_apikey_store *apikeys;
    sl_broker *broker;
    const char *all[] = {"**"}, *ops[] = {"ops"}, *anyone[] = {"*"};
    if (sl_ctx_new(&ctx, &o) != SL_OK ||
        sl_acl_grant(ctx, NULL, "root", SL_ROLE_ADMIN, NULL, 0, &st) != SL_OK ||
        sl_channel_create(ctx, NULL, "jobs", &co, &st) != SL_OK ||
        sl_apikey_store_open(&apikeys, NULL, &st) != SL_OK ||
        sl_broker_new(&broker, NULL) != SL_OK ||
        sl_broker_set_role(broker, "ops", SL_ROLE_ADMIN, all, 1) != SL_OK ||
        sl_broker_assign(broker, "root", ops, 1) != SL_OK ||
        sl_broker_allow_delegation(broker, "root", anyone, 1) != SL_OK)
        abort();
    sl_ctx_set_broker(ctx, broker);
    sl__router r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    r.authn.keys = keys;
    sl_jwt_verify_opts_init(&r.authn.jwt);
    r.apikeys = apikeys;
    r.broker = broker;

    sl__response resp;
    sl__router_handle(&r, &req, &resp);
    if (resp.status < 200 || resp.status > 599 || resp.body == NULL)
        abort();
    if (resp.content_type != NULL) {
        /* Not JSON: only a console file, whole, under its own type. */
        char name[256] = "index.html"; /* the capture as the router decodes it */
        int admin = strncmp(path, "/admin", 6) == 0;
        if (admin && path[6] == '/' &&
            sl__pct_decode(path + 7, strlen(path + 7), name, sizeof name, 0) < 0)
            abort();
        const sl__console_file *f = admin ? sl__console_find(name) : NULL;
        if (f == NULL || resp.status != 200 || strcmp(resp.content_type, f->type) != 0 ||
            resp.body_len != f->len || memcmp(resp.body, f->data, f->len) != 0)
            abort();
    } else {
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (!json_is_object(j))
            abort();
        if (resp.status >= 400 && (!json_is_string(json_object_get(j, "error")) ||
                                   !json_is_string(json_object_get(j, "message"))))
            abort();
        json_decref(j);
    }
    if (!with_token && r.handled > 0) {
        size_t n;
        const sl__route *rt = sl__router_routes(&n);
        size_t i = 0;
        while (i < n && !(sl_op_lookup(rt[i].op)->role == SL_ROLE_NONE &&
                          strcmp(rt[i].method, method) == 0 && tmpl_matches(rt[i].path, path)))
            i++;
        if (i == n)
            abort(); /* a handler ran for an unauthenticated caller */
    }
    /* The token must never come back: not whole, not its signature (unless the input itself
     * holds those bytes, which an error message may name as a bad resource). */
    const char *sig = strrchr(token, '.') + 1;
    if (memmem(data, size, sig, strlen(sig)) == NULL &&
        (strstr(resp.body, sig) != NULL || strstr(resp.headers, sig) != NULL))
        abort();

    sl__response_clear(&resp);
    sl__router_clear(&r);
    sl_ctx_free(ctx);
    sl_broker_free(broker);
    sl_apikey_store_close(apikeys);
    free(method);
    free(target);
    free(path);
    free(body);
    return 0;
}
