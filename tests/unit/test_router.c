/* Walks every HTTP route against a table pinned here, independently of the implementation: each
 * (method, path) has the least role and the resource shape written below, the router has exactly
 * these routes, the operation registry agrees with the table, and the pipeline behaves as the
 * table says - one role less is refused (403, handler not reached, the denial naming the
 * resource), the least role gets through, and nothing reaches a handler without passing
 * authentication and authorisation. Also the router's answers to hostile paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <sluice/jwt.h>
#include <sluice/sluice.h>

#include <sluice/apikey.h>
#include <sluice/broker.h>

#include "api/ctx.h"
#include "server/router.h"
#include "store/engine.h"

#define SECRET "0123456789abcdef0123456789abcdef"

typedef struct fixture {
    sl_ctx *ctx;
    sl_jwt_keyring *keys;
    sl__router router;
    sl_apikey_store *apikeys;
    sl_authenticator *apikey_auth;
    sl_broker *broker;
    char *admin_token, *nobody_token; /* sluice tokens */
    char *by_role[SL_ROLE_ADMIN + 1]; /* a sluice token whose ACL entry grants exactly that role */
    char *admin_key, *nobody_key;     /* API keys: for operations sluice tokens cannot do */
} fixture;

static char *mint(sl_jwt_keyring *kr, const char *sub, sl_role role)
{
    sl_jwt_claims c = {
        .sub = sub, .role = role, .iat = sl_wallclock(NULL), .exp = sl_wallclock(NULL) + 600};
    char *tok = NULL;
    assert_int_equal(sl_jwt_sign(kr, NULL, &c, &tok), SL_OK);
    return tok;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    sl_ctx_options o = {.mode = SL_MODE_ACL};
    assert_int_equal(sl_ctx_new(&f->ctx, &o), SL_OK);
    assert_int_equal(sl_jwt_keyring_new(&f->keys), SL_OK);
    assert_int_equal(sl_jwt_keyring_add_hs256(f->keys, NULL, SECRET, strlen(SECRET)), SL_OK);
    sl_status st;
    assert_int_equal(sl_acl_grant(f->ctx, NULL, "root", SL_ROLE_ADMIN, NULL, 0, &st), SL_OK);
    sl_channel_opts co;
    sl_channel_opts_init(&co);
    co.visibility = SL_VIS_PUBLIC;
    assert_int_equal(sl_channel_create(f->ctx, NULL, "jobs", &co, &st), SL_OK);
    f->router.ctx = f->ctx;
    f->router.authn.keys = f->keys;
    sl_jwt_verify_opts_init(&f->router.authn.jwt);
    f->admin_token = mint(f->keys, "root", SL_ROLE_ADMIN);
    f->nobody_token = mint(f->keys, "nobody", SL_ROLE_ADMIN);
    /* In ACL mode the ACL decides, whatever role a token claims: "reader" may read everywhere,
     * "writer" write, "root" administer, "nobody" nothing. */
    assert_int_equal(sl_acl_grant(f->ctx, NULL, "reader", SL_ROLE_READ, NULL, 0, &st), SL_OK);
    assert_int_equal(sl_acl_grant(f->ctx, NULL, "writer", SL_ROLE_WRITE, NULL, 0, &st), SL_OK);
    f->by_role[SL_ROLE_NONE] = f->nobody_token;
    f->by_role[SL_ROLE_READ] = mint(f->keys, "reader", SL_ROLE_ADMIN);
    f->by_role[SL_ROLE_WRITE] = mint(f->keys, "writer", SL_ROLE_ADMIN);
    f->by_role[SL_ROLE_ADMIN] = f->admin_token;
    /* API keys (an in-memory store) and a broker, so that every route has a working backend. */
    assert_int_equal(sl_apikey_store_open(&f->apikeys, NULL, &st), SL_OK);
    char id[SL_APIKEY_ID_LEN + 1];
    double now = sl_wallclock(NULL);
    assert_int_equal(sl_apikey_create(f->apikeys, "root", SL_ROLE_ADMIN, NULL, 0, 0, now,
                                      &f->admin_key, id, &st),
                     SL_OK);
    assert_int_equal(sl_apikey_create(f->apikeys, "nobody", SL_ROLE_ADMIN, NULL, 0, 0, now,
                                      &f->nobody_key, id, &st),
                     SL_OK);
    assert_int_equal(sl_apikey_authenticator_new(f->apikeys, &f->apikey_auth), SL_OK);
    f->router.authn.chain[f->router.authn.nchain++] = f->apikey_auth;
    f->router.apikeys = f->apikeys;
    assert_int_equal(sl_broker_new(&f->broker, NULL), SL_OK);
    const char *all[] = {"**"}, *ops[] = {"ops"};
    assert_int_equal(sl_broker_set_role(f->broker, "ops", SL_ROLE_ADMIN, all, 1), SL_OK);
    assert_int_equal(sl_broker_assign(f->broker, "root", ops, 1), SL_OK);
    assert_int_equal(sl_broker_assign(f->broker, "someone", ops, 1), SL_OK);
    const char *anyone[] = {"*"};
    assert_int_equal(sl_broker_allow_delegation(f->broker, "root", anyone, 1), SL_OK);
    f->router.broker = f->broker;
    sl_ctx_set_broker(f->ctx, f->broker);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sl__router_clear(&f->router);
    free(f->admin_token);
    free(f->nobody_token);
    free(f->by_role[SL_ROLE_READ]);
    free(f->by_role[SL_ROLE_WRITE]);
    sl_apikey_key_free(f->admin_key);
    sl_apikey_key_free(f->nobody_key);
    f->apikey_auth->free(f->apikey_auth);
    sl_apikey_store_close(f->apikeys);
    sl_broker_free(f->broker);
    sl_jwt_keyring_free(f->keys);
    sl_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* Builds a request for method + path (query split off) with an optional bearer token. */
typedef struct fake {
    sl_http_request req;
    sl_http_header hdr;
    char auth[1024];
    char target[512];
} fake;

static void make(fake *fk, const char *method, const char *target, const char *token,
                 const char *body)
{
    memset(fk, 0, sizeof *fk);
    snprintf(fk->target, sizeof fk->target, "%s", target);
    char *q = strchr(fk->target, '?');
    fk->req.method = method;
    fk->req.target = target;
    fk->req.target_len = strlen(target);
    fk->req.query = "";
    if (q) {
        *q = '\0';
        fk->req.query = q + 1;
        fk->req.query_len = strlen(q + 1);
    }
    fk->req.path = fk->target;
    fk->req.path_len = strlen(fk->target);
    fk->req.body = body ? body : "";
    fk->req.body_len = body ? strlen(body) : 0;
    if (token) {
        snprintf(fk->auth, sizeof fk->auth, "Bearer %s", token);
        fk->hdr.name = "Authorization";
        fk->hdr.name_len = 13;
        fk->hdr.value = fk->auth;
        fk->hdr.value_len = strlen(fk->auth);
        fk->req.headers = &fk->hdr;
        fk->req.nheaders = 1;
    }
}

/* How the pinned table says an operation is decided. */
typedef enum {
    OPEN,        /* no authentication at all */
    BY_ROLE,     /* the caller's role on the resource, at least the least role */
    PER_CHANNEL, /* authenticated; then every channel of the result on its own */
    DELEGATION,  /* authenticated; then the broker's delegation rules */
} decided_by;

/* The routes as the API promises them (README, docs/BROKER.md, docs/APIKEYS.md), written out here
 * rather than read from the router or the operation registry, so that a route registered with the
 * wrong operation, or an operation given the wrong role, fails this test. `denial` is how a 403
 * names the resource (the paths below fill {id} with "jobs" and {principal} with "someone"; the
 * revocation names its principal in the body); NULL when the denial names none. POST /revoke is
 * pinned as it is today for another principal's tokens: administrators only. */
static const struct expected_route {
    const char *method, *path;
    const char *op; /* the operation's name */
    sl_role role;
    sl_resource_kind resource;
    decided_by decided;
    int api_key_only; /* a sluice token cannot be the credential */
    const char *denial;
} expected[] = {
    {"GET", "/healthz", "health", SL_ROLE_NONE, SL_RES_NONE, OPEN, 0, NULL},
    {"HEAD", "/healthz", "health", SL_ROLE_NONE, SL_RES_NONE, OPEN, 0, NULL},
    {"GET", "/channels", "channel.list", SL_ROLE_READ, SL_RES_CHANNELS, PER_CHANNEL, 0, NULL},
    /* The new id is in the body, which the route does not read before authorising: the denial
     * names an empty channel. */
    {"POST", "/channels", "channel.create", SL_ROLE_ADMIN, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel ''"},
    {"GET", "/channels/{id}", "channel.read", SL_ROLE_READ, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"PUT", "/channels/{id}", "channel.write", SL_ROLE_WRITE, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"POST", "/channels/{id}", "channel.write", SL_ROLE_WRITE, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"DELETE", "/channels/{id}", "channel.delete", SL_ROLE_ADMIN, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"GET", "/channels/{id}/info", "channel.info", SL_ROLE_READ, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"POST", "/channels/{id}/acknowledge", "channel.acknowledge", SL_ROLE_WRITE, SL_RES_CHANNEL,
     BY_ROLE, 0, "channel 'jobs'"},
    {"POST", "/channels/{id}/nack", "channel.nack", SL_ROLE_WRITE, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"DELETE", "/channels/{id}/messages", "channel.clear", SL_ROLE_ADMIN, SL_RES_CHANNEL, BY_ROLE,
     0, "channel 'jobs'"},
    {"POST", "/channels/{id}/evict", "channel.evict", SL_ROLE_ADMIN, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"POST", "/channels/{id}/remove", "channel.remove", SL_ROLE_ADMIN, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"POST", "/channels/{id}/extend", "channel.extend", SL_ROLE_WRITE, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"POST", "/channels/{id}/terminate", "channel.terminate", SL_ROLE_WRITE, SL_RES_CHANNEL,
     BY_ROLE, 0, "channel 'jobs'"},
    {"POST", "/channels/{id}/messages", "channel.write", SL_ROLE_WRITE, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"POST", "/channels/{id}/batch", "channel.write", SL_ROLE_WRITE, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"GET", "/acl", "acl.list", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    {"PUT", "/acl/{principal}", "acl.grant", SL_ROLE_ADMIN, SL_RES_PRINCIPAL, BY_ROLE, 0, NULL},
    {"DELETE", "/acl/{principal}", "acl.revoke", SL_ROLE_ADMIN, SL_RES_PRINCIPAL, BY_ROLE, 0, NULL},
    {"POST", "/revoke", "token.revoke", SL_ROLE_ADMIN, SL_RES_PRINCIPAL, BY_ROLE, 0, "'someone'"},
    {"POST", "/token", "token.issue", SL_ROLE_READ, SL_RES_CHANNELS, PER_CHANNEL, 1, NULL},
    {"POST", "/token/delegate", "token.delegate", SL_ROLE_READ, SL_RES_PRINCIPAL, DELEGATION, 1,
     NULL},
    {"POST", "/apikeys", "apikey.create", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    {"GET", "/apikeys", "apikey.list", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    {"POST", "/apikeys/{id}/expire", "apikey.expire", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    {"DELETE", "/apikeys/{id}", "apikey.delete", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    {"GET", "/broker/principals/{principal}", "broker.get", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
     BY_ROLE, 0, NULL},
    {"PUT", "/broker/principals/{principal}", "broker.assign", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
     BY_ROLE, 0, NULL},
    {"DELETE", "/broker/principals/{principal}", "broker.assign", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
     BY_ROLE, 0, NULL},
    /* the invoke policy (docs/POLICY.md) */
    {"GET", "/policy/invoke", "policy.invoke.list", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    {"PUT", "/policy/invoke/{principal}", "policy.invoke.set", SL_ROLE_ADMIN, SL_RES_PRINCIPAL,
     BY_ROLE, 0, NULL},
    {"DELETE", "/policy/invoke/{principal}", "policy.invoke.delete", SL_ROLE_ADMIN,
     SL_RES_PRINCIPAL, BY_ROLE, 0, NULL},
    /* the authorise contract */
    {"POST", "/authz/invalidate", "authz.invalidate", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    /* the server API and the audit log (docs/OPERATIONS.md) */
    {"GET", "/server/connections", "server.connections", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0,
     NULL},
    {"POST", "/server/disconnect", "server.disconnect", SL_ROLE_ADMIN, SL_RES_PRINCIPAL, BY_ROLE, 0,
     NULL},
    {"POST", "/server/unsubscribe", "server.unsubscribe", SL_ROLE_ADMIN, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"GET", "/server/presence/{id}", "server.presence", SL_ROLE_ADMIN, SL_RES_CHANNEL, BY_ROLE, 0,
     "channel 'jobs'"},
    {"GET", "/server/presence/{id}/stats", "server.presence", SL_ROLE_ADMIN, SL_RES_CHANNEL,
     BY_ROLE, 0, "channel 'jobs'"},
    {"GET", "/server/channels", "server.channels", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    {"GET", "/audit", "audit.read", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    /* the admin console's static files: no credentials, the page asks the API */
    {"GET", "/admin", "console", SL_ROLE_NONE, SL_RES_NONE, OPEN, 0, NULL},
    {"HEAD", "/admin", "console", SL_ROLE_NONE, SL_RES_NONE, OPEN, 0, NULL},
    {"GET", "/admin/{file}", "console", SL_ROLE_NONE, SL_RES_NONE, OPEN, 0, NULL},
    {"HEAD", "/admin/{file}", "console", SL_ROLE_NONE, SL_RES_NONE, OPEN, 0, NULL},
    {"GET", "/metrics", "metrics.read", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
    {"HEAD", "/metrics", "metrics.read", SL_ROLE_ADMIN, SL_RES_NONE, BY_ROLE, 0, NULL},
};
enum { N_EXPECTED = sizeof expected / sizeof expected[0] };

static const struct expected_route *expected_for(const char *method, const char *path)
{
    for (size_t i = 0; i < N_EXPECTED; i++)
        if (strcmp(expected[i].method, method) == 0 && strcmp(expected[i].path, path) == 0)
            return &expected[i];
    return NULL;
}

/* Both directions: every route of the router is in the table, every row of the table is a route
 * of the router (once), and the registry's entry for the route's operation says what the table
 * says. */
static void test_routes_match_the_pinned_table(void **state)
{
    (void)state;
    size_t n;
    const sl__route *rt = sl__router_routes(&n);
    int seen[N_EXPECTED] = {0};
    for (size_t i = 0; i < n; i++) {
        const struct expected_route *e = expected_for(rt[i].method, rt[i].path);
        if (e == NULL)
            fail_msg("route %s %s is not in the pinned table", rt[i].method, rt[i].path);
        seen[e - expected]++;
        const sl_op_info *op = sl_op_lookup(rt[i].op);
        assert_non_null(op);
        if (strcmp(op->name, e->op) != 0)
            fail_msg("%s %s is routed to operation %s; the table says %s", rt[i].method, rt[i].path,
                     op->name, e->op);
        if (op->role != e->role || op->resource != e->resource)
            fail_msg("%s %s: operation %s needs role %d on resource kind %d; the table says %d on "
                     "%d",
                     rt[i].method, rt[i].path, op->name, op->role, op->resource, e->role,
                     e->resource);
        if (op->no_sluice_tokens != e->api_key_only || op->delegation != (e->decided == DELEGATION))
            fail_msg("%s %s: operation %s is decided otherwise than the table says", rt[i].method,
                     rt[i].path, op->name);
    }
    for (size_t i = 0; i < N_EXPECTED; i++)
        if (seen[i] != 1)
            fail_msg("%s %s is routed %d times (expected once)", expected[i].method,
                     expected[i].path, seen[i]);
}

/* The table's path with its capture filled in. */
static void concrete(const char *tmpl, char *out, size_t cap)
{
    const char *brace = strchr(tmpl, '{');
    if (brace == NULL) {
        snprintf(out, cap, "%s", tmpl);
        return;
    }
    const char *close = strchr(brace, '}');
    const char *val = strncmp(brace, "{principal}", 11) == 0 ? "someone" : "jobs";
    if (strncmp(brace, "{file}", 6) == 0)
        val = "app.js";
    snprintf(out, cap, "%.*s%s%s", (int)(brace - tmpl), tmpl, val, close + 1);
}

/* A body naming a resource for routes that take it from the body (another principal's tokens). */
static const char *body_for(const struct expected_route *e)
{
    if (strcmp(e->path, "/revoke") == 0)
        return "{\"user_id\":\"someone\"}";
    if (strcmp(e->path, "/token") == 0)
        return "{\"channels\":[\"jobs\"]}";
    if (strcmp(e->path, "/token/delegate") == 0)
        return "{\"on_behalf_of\":\"someone\",\"channels\":[\"jobs\"]}";
    if (strcmp(e->method, "POST") == 0 && strcmp(e->path, "/apikeys") == 0)
        return "{\"principal\":\"someone\"}";
    if (strcmp(e->method, "PUT") == 0 && strncmp(e->path, "/broker/", 8) == 0)
        return "{\"roles\":[]}";
    if (strcmp(e->path, "/server/disconnect") == 0)
        return "{\"principal\":\"someone\"}";
    if (strcmp(e->path, "/server/unsubscribe") == 0)
        return "{\"principal\":\"someone\",\"channel\":\"jobs\"}";
    return "{}";
}

static int run(fixture *f, const char *method, const char *target, const char *token,
               const char *body, sl__response *resp)
{
    fake fk;
    make(&fk, method, target, token, body);
    sl__router_handle(&f->router, &fk.req, resp);
    return resp->status;
}

/* A 403 that never reached the handler and names what the table says. */
static void assert_denied(fixture *f, const struct expected_route *e, const char *path,
                          const char *token, const char *who, unsigned long before)
{
    sl__response resp;
    int status = run(f, e->method, path, token, body_for(e), &resp);
    if (status != 403)
        fail_msg("%s %s as %s: %d %s (expected 403)", e->method, path, who, status, resp.body);
    assert_int_equal(f->router.handled, before);
    assert_non_null(strstr(resp.body, "\"error\":\"forbidden\""));
    /* The message ends "... to <verb> <resource>." or, without a resource, "... to <verb>." */
    const char *dot = strstr(resp.body, ".\"}");
    assert_non_null(dot);
    if (e->denial) {
        char tail[128];
        snprintf(tail, sizeof tail, " %s.\"}", e->denial);
        if (strstr(resp.body, tail) == NULL)
            fail_msg("%s %s as %s: the denial does not name %s: %s", e->method, path, who,
                     e->denial, resp.body);
    } else if (dot[-1] == '\'') {
        fail_msg("%s %s as %s: the denial names a resource: %s", e->method, path, who, resp.body);
    }
    sl__response_clear(&resp);
}

static void test_every_route_is_guarded_as_pinned(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < N_EXPECTED; i++) {
        const struct expected_route *e = &expected[i];
        char path[128];
        concrete(e->path, path, sizeof path);
        sl__response resp;
        unsigned long before = f->router.handled;
        if (e->decided == OPEN) {
            assert_int_equal(run(f, e->method, path, NULL, body_for(e), &resp), 200);
            assert_int_equal(f->router.handled, before + 1);
            sl__response_clear(&resp);
            continue;
        }
        /* No credential: 401 with a challenge, handler not reached. */
        assert_int_equal(run(f, e->method, path, NULL, body_for(e), &resp), 401);
        assert_non_null(strstr(resp.headers, "WWW-Authenticate: Bearer realm=\"sluice\""));
        sl__response_clear(&resp);
        /* A tampered credential: 401 invalid_token. */
        char bad[1024];
        snprintf(bad, sizeof bad, "%sx", f->admin_token);
        assert_int_equal(run(f, e->method, path, bad, body_for(e), &resp), 401);
        assert_non_null(strstr(resp.headers, "error=\"invalid_token\""));
        sl__response_clear(&resp);
        assert_int_equal(f->router.handled, before);
        /* Operations a sluice token cannot do (obtaining tokens) refuse one outright. */
        const char *nobody = f->nobody_token, *admin = f->admin_token;
        if (e->api_key_only) {
            assert_int_equal(run(f, e->method, path, f->admin_token, body_for(e), &resp), 401);
            sl__response_clear(&resp);
            assert_int_equal(f->router.handled, before);
            nobody = f->nobody_key;
            admin = f->admin_key;
        }
        switch (e->decided) {
        case BY_ROLE:
            /* Every role below the least one is refused; the least one gets to the handler. */
            for (sl_role r = SL_ROLE_NONE; r < e->role; r++)
                assert_denied(f, e, path, f->by_role[r], r ? sl_role_name(r) : "nobody", before);
            before = f->router.handled;
            int status = run(f, e->method, path, f->by_role[e->role], body_for(e), &resp);
            if (status == 401 || status == 403)
                fail_msg("%s %s as %s: %d %s", e->method, path, sl_role_name(e->role), status,
                         resp.body);
            assert_int_equal(f->router.handled, before + 1);
            sl__response_clear(&resp);
            break;
        case PER_CHANNEL:
            /* Authenticated but granted nothing: an answer with nothing granted. */
            if (strcmp(e->path, "/channels") == 0) {
                assert_int_equal(run(f, e->method, path, nobody, body_for(e), &resp), 200);
                assert_string_equal(resp.body, "{\"channels\":[]}");
                sl__response_clear(&resp);
                /* A reader sees the channel. */
                assert_int_equal(
                    run(f, e->method, path, f->by_role[SL_ROLE_READ], body_for(e), &resp), 200);
                assert_non_null(strstr(resp.body, "\"jobs\""));
            } else {
                assert_int_equal(run(f, e->method, path, nobody, body_for(e), &resp), 403);
                assert_non_null(strstr(resp.body, "\"channels_granted\":[]"));
            }
            sl__response_clear(&resp);
            break;
        case DELEGATION:
            /* Not allowed to delegate: 403, handler not reached. */
            assert_int_equal(run(f, e->method, path, nobody, body_for(e), &resp), 403);
            assert_int_equal(f->router.handled, before);
            sl__response_clear(&resp);
            break;
        case OPEN:
            break;
        }
        /* An administrator gets past the pipeline to the handler. */
        before = f->router.handled;
        int status = run(f, e->method, path, admin, body_for(e), &resp);
        if (status == 401 || status == 403)
            fail_msg("%s %s as admin: %d %s", e->method, path, status, resp.body);
        assert_int_equal(f->router.handled, before + 1);
        sl__response_clear(&resp);
    }
}

static void test_hostile_paths(void **state)
{
    fixture *f = *state;
    sl__response resp;
    const char *tok = f->admin_token;
    assert_int_equal(run(f, "GET", "/nope", tok, NULL, &resp), 404);
    sl__response_clear(&resp);
    assert_int_equal(run(f, "PATCH", "/channels/jobs", tok, NULL, &resp), 405);
    assert_non_null(strstr(resp.headers, "Allow: GET, PUT, POST, DELETE"));
    sl__response_clear(&resp);
    const char *bad_ids[] = {"/channels/a%2Fb", "/channels/..",    "/channels/%2e%2e",
                             "/channels/a%20b", "/channels/a%00b", "/channels/%zz",
                             "/channels/a%2",   "/channels/*",     "/channels/a..b/info"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        assert_int_equal(run(f, "GET", bad_ids[i], tok, NULL, &resp), 400);
        assert_non_null(strstr(resp.body, "invalid_channel_id"));
        sl__response_clear(&resp);
    }
    assert_int_equal(run(f, "GET", "/channels/jobs/extra/x", tok, NULL, &resp), 404);
    sl__response_clear(&resp);
    assert_int_equal(run(f, "PUT", "/acl/a%2Fb", tok, "{\"role\":\"read\"}", &resp), 400);
    sl__response_clear(&resp);
    /* Percent-encoded but valid ids decode. */
    assert_int_equal(run(f, "GET", "/channels/job%73/info", tok, NULL, &resp), 200);
    sl__response_clear(&resp);
}

/* Acknowledge bodies: the common shape is read without a JSON tree, everything else by the full
 * parser; both give the same ids and the same errors. */
static void test_ack_bodies(void **state)
{
    fixture *f = *state;
    sl__response resp;
    const char *tok = f->admin_token;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run(f, "PUT", "/channels/jobs", tok, "{\"n\":1}", &resp), 200);
        sl__response_clear(&resp);
    }
    assert_int_equal(run(f, "GET", "/channels/jobs?exclusive=true&limit=3", tok, NULL, &resp), 200);
    char ids[3][80];
    const char *p = resp.body;
    for (int i = 0; i < 3; i++) {
        p = strstr(p, "\"id\":\"");
        assert_non_null(p);
        p += 6;
        size_t n = strcspn(p, "\"");
        assert_true(n < sizeof ids[i]);
        memcpy(ids[i], p, n);
        ids[i][n] = '\0';
    }
    sl__response_clear(&resp);
    char body[512];
    snprintf(body, sizeof body, " { \"message_ids\" : [ \"%s\" ,\n\"%s\" ] } ", ids[0], ids[1]);
    assert_int_equal(run(f, "POST", "/channels/jobs/acknowledge", tok, body, &resp), 200);
    assert_non_null(strstr(resp.body, "\"acknowledged\":2"));
    sl__response_clear(&resp);
    /* another member: the full parser, same answer */
    snprintf(body, sizeof body, "{\"message_ids\":[\"%s\"],\"note\":1}", ids[2]);
    assert_int_equal(run(f, "POST", "/channels/jobs/acknowledge", tok, body, &resp), 200);
    assert_non_null(strstr(resp.body, "\"acknowledged\":1"));
    sl__response_clear(&resp);
    char longid[70];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    struct {
        const char *body;
        int status;
        const char *must;
    } cases[] = {
        {"{\"message_ids\":[]}", 200, "\"acknowledged\":0"},
        {"{\"message_ids\":[\"ABC\"]}", 200, "\"acknowledged\":0"},
        {"{\"message_ids\":[\"a\\u0062\"]}", 200, "\"acknowledged\":0"},
        {"{\"message_ids\":[\"a\",]}", 400, NULL},
        {"{\"message_ids\":[\"a\"", 400, NULL},
        {"{\"message_ids\":[\"a\"]}x", 400, NULL},
        {"{\"message_ids\":[\"a\"],\"message_ids\":[\"b\"]}", 400, NULL},
        {"{\"message_ids\":[\"a\" \"b\"]}", 400, NULL},
        {"{\"message_ids\":[\"\x01\"]}", 400, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int status = run(f, "POST", "/channels/jobs/acknowledge", tok, cases[i].body, &resp);
        if (status != cases[i].status || (cases[i].must && !strstr(resp.body, cases[i].must)))
            fail_msg("%s: %d %s", cases[i].body, status, resp.body);
        sl__response_clear(&resp);
    }
    snprintf(body, sizeof body, "{\"message_ids\":[\"%s\"]}", longid);
    assert_int_equal(run(f, "POST", "/channels/jobs/acknowledge", tok, body, &resp), 400);
    assert_non_null(strstr(resp.body, "message ids"));
    sl__response_clear(&resp);
}

static void test_bodies_and_params(void **state)
{
    fixture *f = *state;
    sl__response resp;
    const char *tok = f->admin_token;
    struct {
        const char *method, *target, *body;
        int status;
    } cases[] = {
        {"PUT", "/channels/jobs", "", 400},
        {"PUT", "/channels/jobs", "{\"a\":", 400},
        {"PUT", "/channels/jobs", "{\"a\":1}}", 400},
        {"PUT", "/channels/jobs", "[1,\"\\ud800\"]", 400},
        {"PUT", "/channels/jobs", "[1,2,3]", 200},
        {"GET", "/channels/jobs?limit=0&exclusive=true", NULL, 400},
        {"GET", "/channels/jobs?limit=abc&exclusive=true", NULL, 400},
        {"GET", "/channels/jobs?limit=1001&exclusive=true", NULL, 400},
        {"GET", "/channels/jobs?exclusive=maybe", NULL, 400},
        {"GET", "/channels/jobs", NULL, 400}, /* shared read of a queue */
        {"GET", "/channels/jobs?exclusive=true&limit=5", NULL, 200},
        {"POST", "/channels/jobs/acknowledge", "{\"message_ids\":\"x\"}", 400},
        {"POST", "/channels/jobs/acknowledge", "{\"message_ids\":[1]}", 400},
        {"POST", "/channels/jobs/acknowledge", "{\"message_ids\":[\"x\"]}", 200},
        {"POST", "/channels/jobs/nack", "{\"message_ids\":[],\"delay\":\"soon\"}", 400},
        {"POST", "/channels/jobs/nack", "{\"message_ids\":[],\"delay\":-1}", 400},
        {"POST", "/channels/jobs/evict", "{}", 400},
        {"POST", "/channels/jobs/evict", "{\"max_count\":-1}", 400},
        {"POST", "/channels/jobs/evict", "{\"max_count\":0}", 200},
        {"POST", "/channels", "{\"id\":\"new\",\"kind\":\"stream\"}", 400},
        {"POST", "/channels", "{\"id\":\"new\",\"bogus\":1}", 400},
        {"POST", "/channels", "{\"id\":\"new\",\"max_messages\":\"10\"}", 400},
        {"POST", "/channels", "{\"id\":\"a/b\"}", 400},
        {"POST", "/channels", "{\"kind\":\"queue\"}", 400},
        {"POST", "/channels", "{\"id\":\"new\",\"kind\":\"topic\"}", 201},
        {"POST", "/channels", "{\"id\":\"new\",\"kind\":\"topic\"}", 409},
        {"PUT", "/acl/bob", "{\"role\":\"superuser\"}", 400},
        {"PUT", "/acl/bob", "{\"role\":\"read\",\"channels\":[\"a.**.b\"]}", 400},
        {"PUT", "/acl/bob", "{\"role\":\"read\",\"channels\":\"jobs\"}", 400},
        {"PUT", "/acl/bob", "{\"role\":\"read\",\"channels\":[\"jobs\"]}", 200},
        {"DELETE", "/acl/bob", NULL, 200},
        {"DELETE", "/acl/bob", NULL, 404},
        {"GET", "/channels/missing/info", NULL, 404},
        {"POST", "/channels/jobs/extend", "{\"message_ids\":[\"x\"],\"seconds\":-1}", 400},
        {"POST", "/channels/jobs/extend", "{\"message_ids\":[\"x\"],\"seconds\":1e300}", 400},
        {"POST", "/channels/jobs/extend", "{\"message_ids\":[\"x\"]}", 200},
        {"POST", "/channels/jobs/terminate", "{\"message_ids\":[\"x\"],\"reason\":[]}", 400},
        {"POST", "/channels/jobs/terminate", "{\"message_ids\":[\"x\"],\"reason\":\"\"}", 400},
        {"POST", "/channels/jobs/terminate", "{\"message_ids\":[\"x\"],\"reason\":\"r\"}", 200},
        {"POST", "/channels/jobs/messages", "{\"data\":1,\"ttl\":\"1\"}", 400},
        {"POST", "/channels/jobs/messages", "{\"metadata\":{}}", 400},
        {"POST", "/channels/jobs/messages", "{\"data\":1,\"metadata\":{},\"delay\":5}", 200},
        {"POST", "/channels/new/messages", "{\"data\":1,\"delay\":5}", 400}, /* a topic */
        {"POST", "/channels/jobs/batch", "{\"messages\":[{\"data\":1},{}]}", 400},
        {"POST", "/channels/jobs/batch", "{\"messages\":[{\"data\":1},{\"data\":[2]}]}", 200},
        {"POST", "/channels", "{\"id\":\"q2\",\"backoff\":[1,\"2\"]}", 400},
        {"POST", "/channels", "{\"id\":\"q2\",\"dedup_window\":1e9}", 400},
        {"POST", "/channels", "{\"id\":\"q2\",\"backoff\":[1,2],\"dedup_window\":60}", 201},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int status = run(f, cases[i].method, cases[i].target, tok, cases[i].body, &resp);
        if (status != cases[i].status)
            fail_msg("%s %s %s: %d %s", cases[i].method, cases[i].target,
                     cases[i].body ? cases[i].body : "", status, resp.body);
        assert_non_null(resp.body);
        sl__response_clear(&resp);
    }
}

/* GET /channels/{id} renders the stored text and obeys max_bytes and the context's cap. */
static void test_read_renders_stored_text_within_bounds(void **state)
{
    fixture *f = *state;
    sl__response resp;
    const char *tok = f->admin_token;
    static const char *const datas[] = {"{\"a\":1,\"a\":2}", "0.1", " [1e2, -0] ",
                                        "\"\\u00e9\\/\""};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(run(f, "PUT", "/channels/jobs", tok, datas[i], &resp), 200);
        sl__response_clear(&resp);
    }
    /* Each data as written, in one valid document. */
    assert_int_equal(
        run(f, "GET", "/channels/jobs?exclusive=true&limit=2&max_bytes=1000000", tok, NULL, &resp),
        200);
    assert_non_null(strstr(resp.body, "\"content\":{\"data\":{\"a\":1,\"a\":2}}"));
    assert_non_null(strstr(resp.body, "\"content\":{\"data\":0.1}"));
    assert_non_null(strstr(resp.body, "\"attempt\":1,\"claim_expires_at\":"));
    assert_non_null(strstr(resp.body, "],\"more\":true}"));
    json_error_t e;
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, &e);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "messages")), 2);
    json_decref(doc);
    sl__response_clear(&resp);
    /* sender "root" (4) + data (11): 15 bytes each; max_bytes 15 lets one through. */
    assert_int_equal(
        run(f, "GET", "/channels/jobs?exclusive=true&limit=5&max_bytes=15", tok, NULL, &resp), 200);
    assert_non_null(strstr(resp.body, "\"content\":{\"data\": [1e2, -0] }"));
    assert_non_null(strstr(resp.body, "],\"more\":true}"));
    assert_null(strstr(resp.body, "u00e9"));
    sl__response_clear(&resp);
    /* The context's cap lowers any max_bytes; the last message then comes alone. */
    sl_ctx_set_read_max_bytes(f->ctx, 1);
    assert_int_equal(sl_ctx_read_max_bytes(f->ctx), 1);
    assert_int_equal(
        run(f, "GET", "/channels/jobs?exclusive=true&limit=5&max_bytes=99999", tok, NULL, &resp),
        200);
    assert_non_null(strstr(resp.body, "\"content\":{\"data\":\"\\u00e9\\/\"}"));
    assert_non_null(strstr(resp.body, "],\"more\":false}"));
    sl__response_clear(&resp);
    static const char *const bad[] = {"0", "-1", "x", "", "1e3", "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char target[128];
        snprintf(target, sizeof target, "/channels/jobs?exclusive=true&max_bytes=%s", bad[i]);
        assert_int_equal(run(f, "GET", target, tok, NULL, &resp), 400);
        assert_non_null(strstr(resp.body, "max_bytes must be a positive integer"));
        sl__response_clear(&resp);
    }
}

/* A clock that counts its reads, a second apart. */
typedef struct counting_clock {
    double t;
    unsigned reads;
} counting_clock;

static double count_read(void *ud)
{
    counting_clock *c = ud;
    c->reads++;
    return c->t += 1;
}

/* One synchronous request reads the clock once: authentication, authorisation, the channel API
 * and the engine all see that time (sl__ctx_hold_now), and the next request reads it again. */
static void test_one_clock_read_per_request(void **state)
{
    fixture *f = *state;
    counting_clock clk = {.t = sl_wallclock(NULL)};
    sl_ctx_set_clock(f->ctx, count_read, &clk);
    sl__response resp;
    assert_int_equal(run(f, "PUT", "/channels/jobs", f->admin_token, "{\"n\":1}", &resp), 200);
    sl__response_clear(&resp);
    assert_int_equal(clk.reads, 1);
    assert_int_equal(run(f, "GET", "/channels/jobs/info", f->admin_token, NULL, &resp), 200);
    sl__response_clear(&resp);
    assert_int_equal(clk.reads, 2);
    /* outside a request nothing is held: each call reads */
    double a = sl_ctx_now(f->ctx), b = sl_ctx_now(f->ctx);
    assert_true(b > a);
    assert_int_equal(clk.reads, 4);
    sl_ctx_set_clock(f->ctx, NULL, NULL);
}

/* A finished job is kept for the next request and handed out wiped: a denial's message, a
 * resource and an identity left by one request are not seen by the next. */
static void test_finished_jobs_are_reused_wiped(void **state)
{
    fixture *f = *state;
    sl__response resp;
    assert_int_equal(run(f, "PUT", "/channels/jobs", f->admin_token, "{\"n\":1}", &resp), 200);
    sl__response_clear(&resp);
    assert_int_equal(f->router.nspare, 1);
    const void *kept = f->router.spare;
    assert_int_equal(run(f, "DELETE", "/channels/jobs", f->nobody_token, NULL, &resp), 403);
    assert_non_null(strstr(resp.body, "forbidden"));
    sl__response_clear(&resp);
    assert_int_equal(f->router.nspare, 1);
    assert_ptr_equal(f->router.spare, kept); /* the same memory, not a second job */
    assert_int_equal(run(f, "GET", "/channels/jobs/info", f->admin_token, NULL, &resp), 200);
    assert_null(strstr(resp.body, "forbidden"));
    assert_string_equal(resp.principal, "root");
    sl__response_clear(&resp);
    assert_int_equal(f->router.nspare, 1);
}

typedef struct nested {
    sl_ctx *ctx;
    double seen;
    int done;
} nested;

static void nested_request(uv_idle_t *h)
{
    nested *n = h->data;
    n->seen = sl_ctx_now(n->ctx); /* what a request served inside the wait would read */
    n->done = 1;
    uv_idle_stop(h);
}

/* A synchronous call that turns the loop while a request holds the clock (an ACL route waiting
 * for the durable store's commit) does not lend that request's time to the requests the loop
 * serves meanwhile; the holder gets its own time back afterwards. */
static void test_clock_hold_suspended_while_waiting(void **state)
{
    fixture *f = *state;
    counting_clock clk = {.t = 1000};
    sl_ctx_set_clock(f->ctx, count_read, &clk);
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_idle_t idle;
    uv_idle_init(&loop, &idle);
    nested n = {.ctx = f->ctx};
    idle.data = &n;
    uv_idle_start(&idle, nested_request);
    uv_loop_t *own = f->ctx->engine->loop;
    f->ctx->engine->loop = &loop; /* as the durable engine's */
    double held = sl__ctx_hold_now(f->ctx);
    sl__ctx_wait(f->ctx, &n.done);
    assert_true(n.done);
    assert_true(n.seen > held);
    assert_true(sl_ctx_now(f->ctx) == held);
    sl__ctx_release_now(f->ctx);
    f->ctx->engine->loop = own;
    uv_close((uv_handle_t *)&idle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sl_ctx_set_clock(f->ctx, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_match_the_pinned_table),
        cmocka_unit_test_setup_teardown(test_every_route_is_guarded_as_pinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodies_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_renders_stored_text_within_bounds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_one_clock_read_per_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finished_jobs_are_reused_wiped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_hold_suspended_while_waiting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
