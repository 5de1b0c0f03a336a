/* The authorise contract and its decision cache (security/authz_cache.c), with a fake regime that
 * answers later (when the test says) or at once: the contract answers exactly once, asynchronously;
 * decisions are cached for the regime's TTL clamped to the maximum, re-asked after it, bounded
 * (LRU), dropped by invalidation (the admin call, an ACL change), never cached when they are
 * errors; the per-pattern override sits between a channel's own mode and the server-wide one; the
 * pipeline (sl_authorize, the synchronous channel API, listings) asks the regime once per question
 * and fails closed (SL_EUNAVAIL) when it errs. Also the HTTP regime's reply parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/authz.h>
#include <sluice/sluice.h>

#include "api/ctx.h"

/* ---- a fake regime --------------------------------------------------------------------------- */

typedef struct pending {
    sl_authz_done_fn done;
    void *ud;
    size_t n;
    char res[8][64];
} pending;

typedef struct fake {
    sl_regime base;
    int at_once;        /* 1: answers inside authorise */
    sl_verdict verdict; /* what it answers (allow for resources not named in deny) */
    const char *deny;   /* a resource it denies, or NULL */
    double ttl;
    int asked;        /* authorise calls */
    size_t questions; /* resources asked in all */
    pending pend[8];
    size_t npend;
    int freed;
    char last_capability[64];
    char last_workspace[64];
} fake;

static void decide_all(fake *f, pending *p)
{
    sl_decision d[8];
    memset(d, 0, sizeof d);
    for (size_t i = 0; i < p->n; i++) {
        d[i].verdict = f->verdict;
        if (f->deny && strcmp(p->res[i], f->deny) == 0)
            d[i].verdict = SL_VERDICT_DENY;
        d[i].ttl = f->ttl;
        snprintf(d[i].reason, sizeof d[i].reason, "fake says so");
    }
    p->done(p->ud, d, p->n);
}

static void fake_authorise(sl_regime *self, const sl_authz_query *q, sl_authz_done_fn done,
                           void *ud)
{
    fake *f = (fake *)self;
    f->asked++;
    f->questions += q->n;
    snprintf(f->last_capability, sizeof f->last_capability, "%s", q->capability);
    snprintf(f->last_workspace, sizeof f->last_workspace, "%s", q->who ? q->who->workspace : "");
    assert_true(q->n <= 8);
    pending p = {done, ud, q->n, {{0}}};
    for (size_t i = 0; i < q->n; i++)
        snprintf(p.res[i], sizeof p.res[i], "%s", q->resources[i] ? q->resources[i] : "(null)");
    if (f->at_once) {
        decide_all(f, &p);
        return;
    }
    assert_true(f->npend < 8);
    f->pend[f->npend++] = p;
}

/* Answers everything pending (as the loop would, later). */
static void fake_answer(fake *f)
{
    while (f->npend) {
        pending p = f->pend[0];
        memmove(f->pend, f->pend + 1, (f->npend - 1) * sizeof *f->pend);
        f->npend--;
        decide_all(f, &p);
    }
}

static void fake_free(sl_regime *self)
{
    fake *f = (fake *)self;
    f->verdict = SL_VERDICT_ERROR; /* what is outstanding is answered with errors */
    fake_answer(f);
    f->freed = 1;
}

static void fake_init(fake *f, int at_once, double ttl)
{
    memset(f, 0, sizeof *f);
    f->base.name = "fake";
    f->base.authorise = fake_authorise;
    f->base.free = fake_free;
    f->at_once = at_once;
    f->ttl = ttl;
    f->verdict = SL_VERDICT_ALLOW;
}

/* ---- a pinned clock, a context, identities ------------------------------------------------- */

static double now_s = 1000;
static double pinned(void *ud)
{
    (void)ud;
    return now_s;
}

static sl_ctx *policy_ctx(fake *f)
{
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_POLICY, .clock = pinned};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl_ctx_set_regime(ctx, &f->base);
    return ctx;
}

static void jwt_identity(sl_identity *id, const char *principal, const char *workspace)
{
    sl_identity_init(id);
    snprintf(id->principal, sizeof id->principal, "%s", principal);
    id->source = SL_SOURCE_JWT;
    id->role = SL_ROLE_WRITE;
    snprintf(id->workspace, sizeof id->workspace, "%s", workspace);
}

typedef struct answer {
    int calls;
    size_t n;
    sl_decision d[8];
} answer;

static void got(void *ud, const sl_decision *d, size_t n)
{
    answer *a = ud;
    a->calls++;
    a->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        a->d[i] = d[i];
}

/* One question through the contract, answered by the regime at once or when fake_answer runs. */
static void ask(sl_ctx *ctx, fake *f, const sl_identity *who, const char *cap, const char *res,
                answer *a)
{
    memset(a, 0, sizeof *a);
    sl_authorise(ctx, who, cap, res, NULL, got, a);
    fake_answer(f);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->n, 1);
}

static int write1(sl_ctx *ctx, const sl_identity *who, const char *id, sl_status *st)
{
    sl_write w;
    memset(&w, 0, sizeof w);
    w.data = "1";
    w.data_len = 1;
    return sl_channel_write(ctx, who, id, &w, NULL, 0, st);
}

/* ---- the contract ---------------------------------------------------------------------------- */

static void test_contract_is_asynchronous_and_answers_once(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 0, 10);
    f.deny = "b";
    sl_ctx *ctx = policy_ctx(&f);
    sl_identity who;
    jwt_identity(&who, "alice", "ws1");
    const char *res[] = {"a", "b", "c"};
    sl_authz_query q = {&who, "channel.write", res, 3, NULL};
    answer a = {0};
    sl_authorise_many(ctx, &q, got, &a);
    assert_int_equal(a.calls, 0); /* not yet: the regime answers later */
    assert_int_equal(f.asked, 1);
    assert_int_equal(f.questions, 3); /* one fan-out, three resources */
    assert_string_equal(f.last_capability, "channel.write");
    assert_string_equal(f.last_workspace, "ws1"); /* the identity carries its workspace */
    fake_answer(&f);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_ALLOW);
    assert_int_equal(a.d[1].verdict, SL_VERDICT_DENY);
    assert_int_equal(a.d[2].verdict, SL_VERDICT_ALLOW);
    assert_string_equal(a.d[1].reason, "fake says so");
    assert_true(a.d[0].ttl == 10);
    /* The same questions again: all three from the cache, at once. */
    memset(&a, 0, sizeof a);
    sl_authorise_many(ctx, &q, got, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(f.asked, 1);
    assert_int_equal(a.d[1].verdict, SL_VERDICT_DENY);
    /* An unknown capability is an error decision, still exactly one call. */
    memset(&a, 0, sizeof a);
    sl_authorise(ctx, &who, "channel.fly", "a", NULL, got, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_ERROR);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
    assert_true(f.freed);
}

static void test_builtin_regimes_through_the_contract(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 1, 10);
    sl_ctx *ctx = policy_ctx(&f);
    sl_ctx_set_mode(ctx, SL_MODE_ACL);
    sl_identity who;
    jwt_identity(&who, "bob", "");
    const char *const pats[] = {"jobs.**"};
    assert_int_equal(sl_acl_grant(ctx, NULL, "bob", SL_ROLE_WRITE, pats, 1, NULL), SL_OK);
    answer a;
    ask(ctx, &f, &who, "channel.write", "jobs.x", &a);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_ALLOW);
    ask(ctx, &f, &who, "channel.write", "other", &a);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_DENY);
    ask(ctx, &f, &who, "channel.clear", "jobs.x", &a);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_DENY); /* write < admin */
    assert_int_equal(f.asked, 0);                      /* the ACL regime decided alone */
    sl_ctx_set_mode(ctx, SL_MODE_OPEN);
    ask(ctx, &f, NULL, "channel.clear", "jobs.x", &a);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_ALLOW);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
}

/* A built-in model as the pluggable regime: the ACL's answers through the policy mode. */
static void test_builtin_regime_objects(void **state)
{
    (void)state;
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_POLICY, .clock = pinned};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl_regime *r = NULL;
    assert_int_equal(sl_regime_builtin_new(&r, ctx, SL_MODE_POLICY), SL_EINVAL);
    assert_int_equal(sl_regime_builtin_new(&r, ctx, SL_MODE_ACL), SL_OK);
    assert_string_equal(r->name, "acl");
    sl_ctx_set_regime(ctx, r);
    const char *const pats[] = {"jobs.**"};
    assert_int_equal(sl_acl_grant(ctx, NULL, "bob", SL_ROLE_WRITE, pats, 1, NULL), SL_OK);
    sl_identity who;
    jwt_identity(&who, "bob", "");
    const char *res[] = {"jobs.a", "other", NULL};
    sl_authz_query q = {&who, "channel.write", res, 2, NULL};
    answer a = {0};
    sl_authorise_many(ctx, &q, got, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_ALLOW);
    assert_int_equal(a.d[1].verdict, SL_VERDICT_DENY);
    memset(&a, 0, sizeof a);
    sl_authorise(ctx, &who, "acl.list", NULL, NULL, got, &a); /* global: needs admin on all */
    assert_int_equal(a.d[0].verdict, SL_VERDICT_DENY);
    /* Called directly, as a regime of one's own would fall back on it. */
    sl_regime *open_r;
    assert_int_equal(sl_regime_builtin_new(&open_r, ctx, SL_MODE_OPEN), SL_OK);
    memset(&a, 0, sizeof a);
    open_r->authorise(open_r, &q, got, &a);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.d[1].verdict, SL_VERDICT_ALLOW);
    open_r->free(open_r);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
}

/* ---- the cache ------------------------------------------------------------------------------- */

static void test_ttl_and_clamp(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 0, 10);
    sl_ctx *ctx = policy_ctx(&f);
    sl_ctx_set_authz_cache(ctx, 100, 60);
    sl_identity who;
    jwt_identity(&who, "alice", "");
    answer a;
    now_s = 1000;
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 1);
    now_s = 1009.5; /* within the TTL: cached */
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 1);
    now_s = 1010.5; /* past it: asked again */
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 2);
    /* Another identity (a scope, a workspace, a role) is another question. */
    who.scoped = 1;
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 3);
    who.scoped = 0;
    snprintf(who.workspace, sizeof who.workspace, "other");
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 4);
    who.workspace[0] = '\0';
    ask(ctx, &f, &who, "channel.write", "news", &a); /* another capability */
    assert_int_equal(f.asked, 5);

    /* The clamp: the regime says an hour, the cache keeps 5 s. */
    sl_ctx_set_authz_cache(ctx, 100, 5);
    f.ttl = 3600;
    now_s = 2000;
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 6);
    assert_true(a.d[0].ttl == 5);
    now_s = 2004.9;
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 6);
    now_s = 2005.1;
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 7);

    /* TTL 0: never cached. */
    f.ttl = 0;
    sl_authz_invalidate(ctx, "test");
    ask(ctx, &f, &who, "channel.read", "news", &a);
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 9);
    /* A ttl_max of 0 turns caching off. */
    f.ttl = 100;
    sl_ctx_set_authz_cache(ctx, 100, 0);
    ask(ctx, &f, &who, "channel.read", "news", &a);
    ask(ctx, &f, &who, "channel.read", "news", &a);
    assert_int_equal(f.asked, 11);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
}

static void test_lru_bound(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 1, 100);
    sl_ctx *ctx = policy_ctx(&f);
    sl_ctx_set_authz_cache(ctx, 2, 60);
    sl_identity who;
    jwt_identity(&who, "alice", "");
    answer a;
    now_s = 1000;
    ask(ctx, &f, &who, "channel.read", "a", &a);
    ask(ctx, &f, &who, "channel.read", "b", &a);
    assert_int_equal(f.asked, 2);
    ask(ctx, &f, &who, "channel.read", "a", &a); /* a is the most recent now */
    assert_int_equal(f.asked, 2);
    ask(ctx, &f, &who, "channel.read", "c", &a); /* evicts b, the least recent */
    assert_int_equal(f.asked, 3);
    size_t entries;
    unsigned long hits, misses;
    sl__authz_stats(ctx, &entries, &hits, &misses);
    assert_int_equal(entries, 2);
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(f.asked, 3);
    ask(ctx, &f, &who, "channel.read", "b", &a);
    assert_int_equal(f.asked, 4);
    sl__authz_stats(ctx, &entries, &hits, &misses);
    assert_int_equal(entries, 2);
    /* Size 0: nothing is kept. */
    sl_ctx_set_authz_cache(ctx, 0, 60);
    ask(ctx, &f, &who, "channel.read", "a", &a);
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(f.asked, 6);
    sl__authz_stats(ctx, &entries, &hits, &misses);
    assert_int_equal(entries, 0);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
}

static void test_invalidation(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 0, 100);
    sl_ctx *ctx = policy_ctx(&f);
    sl_identity who;
    jwt_identity(&who, "alice", "");
    answer a;
    now_s = 1000;
    ask(ctx, &f, &who, "channel.read", "a", &a);
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(f.asked, 1);
    sl_authz_invalidate(ctx, "admin");
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(f.asked, 2);
    /* An ACL change drops everything too. */
    assert_int_equal(sl_acl_grant(ctx, NULL, "carol", SL_ROLE_READ, NULL, 0, NULL), SL_OK);
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(f.asked, 3);
    assert_int_equal(sl_acl_revoke(ctx, NULL, "carol", NULL), SL_OK);
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(f.asked, 4);
    /* An answer under way while the rules changed is used once but not cached. */
    memset(&a, 0, sizeof a);
    sl_authz_invalidate(ctx, "admin");
    sl_authorise(ctx, &who, "channel.read", "a", NULL, got, &a);
    sl_authz_invalidate(ctx, "admin");
    fake_answer(&f);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_ALLOW);
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(f.asked, 6);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
}

static void test_errors_are_never_cached_and_fail_closed(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 1, 100);
    f.verdict = SL_VERDICT_ERROR;
    sl_ctx *ctx = policy_ctx(&f);
    sl_identity who;
    jwt_identity(&who, "alice", "");
    answer a;
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(a.d[0].verdict, SL_VERDICT_ERROR);
    ask(ctx, &f, &who, "channel.read", "a", &a);
    assert_int_equal(f.asked, 2);
    size_t entries;
    unsigned long hits, misses;
    sl__authz_stats(ctx, &entries, &hits, &misses);
    assert_int_equal(entries, 0);
    /* Through the pipeline: 503 (SL_EUNAVAIL), not 403, and not a success. */
    sl_channel_opts pub;
    sl_channel_opts_init(&pub);
    pub.visibility = SL_VIS_PUBLIC;
    assert_int_equal(sl_channel_create(ctx, NULL, "q", &pub, NULL), SL_OK);
    sl_status st;
    sl_status_clear(&st);
    assert_int_equal(write1(ctx, &who, "q", &st), SL_EUNAVAIL);
    assert_int_equal(st.code, SL_EUNAVAIL);
    assert_null(strstr(st.message, "fake")); /* the regime's words stay in the audit log */
    /* A denial is a 403 and is cached. */
    f.verdict = SL_VERDICT_DENY;
    int before = f.asked;
    assert_int_equal(write1(ctx, &who, "q", &st), SL_EFORBIDDEN);
    assert_int_equal(write1(ctx, &who, "q", &st), SL_EFORBIDDEN);
    assert_int_equal(f.asked, before + 1);
    /* No regime at all: every policy decision is an error. */
    sl_ctx_set_regime(ctx, NULL);
    assert_true(f.freed);
    assert_int_equal(write1(ctx, &who, "q", &st), SL_EUNAVAIL);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
}

/* ---- the pipeline ---------------------------------------------------------------------------- */

static void test_pipeline_asks_once_per_question(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 1, 0); /* TTL 0: nothing cached, so every request asks */
    f.deny = "secret";
    sl_ctx *ctx = policy_ctx(&f);
    sl_identity who;
    jwt_identity(&who, "alice", "");
    sl_status st;
    sl_channel_opts pub;
    sl_channel_opts_init(&pub);
    pub.visibility = SL_VIS_PUBLIC; /* network callers see only public channels */
    assert_int_equal(sl_channel_create(ctx, NULL, "q", &pub, NULL), SL_OK);
    assert_int_equal(sl_channel_create(ctx, NULL, "secret", &pub, NULL), SL_OK);
    assert_int_equal(f.asked, 0); /* the system asks nobody */
    assert_int_equal(write1(ctx, &who, "q", &st), SL_OK);
    /* One question although the channel API decides more than once on the way. */
    assert_int_equal(f.asked, 1);
    assert_string_equal(f.last_capability, "channel.write");
    assert_int_equal(write1(ctx, &who, "secret", &st), SL_EFORBIDDEN);
    assert_int_equal(f.asked, 2);
    /* The synchronous decision alone, without a prepare step, cannot ask: fail closed. */
    assert_int_equal(sl_authorize(ctx, &who, SL_OP_CHANNEL_WRITE, "q", &st), SL_EUNAVAIL);
    /* A listing asks once for all the channels (authorise_many) and keeps the allowed. Local
     * callers see private channels; a network caller would see only public ones. */
    sl_identity local;
    sl_identity_local(&local, "alice");
    sl_channel_info *infos;
    size_t n;
    int asked = f.asked;
    assert_int_equal(sl_channel_list(ctx, &local, &infos, &n, &st), SL_OK);
    assert_int_equal(f.asked, asked + 1);
    assert_int_equal(n, 1);
    assert_string_equal(infos[0].id, "q");
    assert_string_equal(f.last_capability, "channel.read");
    sl_channel_infos_free(infos, n);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
}

static void test_override_order(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 1, 10);
    f.verdict = SL_VERDICT_DENY;
    sl_ctx *ctx;
    sl_ctx_options o = {.mode = SL_MODE_OPEN, .clock = pinned};
    assert_int_equal(sl_ctx_new(&ctx, &o), SL_OK);
    sl_ctx_set_regime(ctx, &f.base);
    assert_int_equal(sl_ctx_authz_override(ctx, "jobs.**", SL_MODE_POLICY), SL_OK);
    assert_int_equal(sl_ctx_authz_override(ctx, "jobs.open.*", SL_MODE_OPEN), SL_OK);
    assert_int_equal(sl_ctx_authz_override(ctx, "bad pattern", SL_MODE_ACL), SL_EINVAL);
    assert_int_equal(sl_ctx_authz_override(ctx, "x", SL_MODE_INHERIT), SL_EINVAL);
    assert_int_equal(sl__authz_mode(ctx, "other", "other"), SL_MODE_OPEN);     /* server-wide */
    assert_int_equal(sl__authz_mode(ctx, "jobs.a", "jobs.a"), SL_MODE_POLICY); /* the override */
    assert_int_equal(sl__authz_mode(ctx, "jobs.open.a", "jobs.open.a"),
                     SL_MODE_OPEN);                                  /* the longer one */
    assert_int_equal(sl__authz_mode(ctx, NULL, NULL), SL_MODE_OPEN); /* global operations */
    sl_channel_opts co;
    sl_channel_opts_init(&co);
    co.mode = SL_MODE_ACL; /* a channel's own setting beats the override */
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs.own", &co, NULL), SL_OK);
    assert_int_equal(sl__authz_mode(ctx, "jobs.own", "jobs.own"), SL_MODE_ACL);
    /* another workspace's "jobs.own" is not that channel: the override decides there */
    assert_int_equal(sl__authz_mode(ctx, "acme/jobs.own", "jobs.own"), SL_MODE_POLICY);
    co.mode = SL_MODE_INHERIT;
    co.visibility = SL_VIS_PUBLIC;
    assert_int_equal(sl_channel_create(ctx, NULL, "jobs.a", &co, NULL), SL_OK);
    sl_identity who;
    jwt_identity(&who, "alice", "");
    sl_status st;
    assert_int_equal(write1(ctx, &who, "jobs.a", &st), SL_EFORBIDDEN);
    assert_int_equal(f.asked, 1);
    sl_identity_clear(&who);
    sl_ctx_free(ctx);
}

/* ---- the HTTP regime's reply ------------------------------------------------------------------
 */

static void test_http_reply_parser(void **state)
{
    (void)state;
    sl_decision d;
#define PARSE(s) sl_authz_http_parse(s, strlen(s), &d)
    assert_int_equal(PARSE("{\"result\":{\"allow\":true,\"ttl\":30,\"reason\":\"ok\"}}"), SL_OK);
    assert_int_equal(d.verdict, SL_VERDICT_ALLOW);
    assert_true(d.ttl == 30);
    assert_string_equal(d.reason, "ok");
    assert_int_equal(PARSE("{\"result\":{\"allow\":false}}"), SL_OK);
    assert_int_equal(d.verdict, SL_VERDICT_DENY);
    assert_true(d.ttl == 0);
    assert_int_equal(PARSE("{\"result\":{\"allow\":true,\"reason\":\"a\\nb\\u0001\"}}"), SL_OK);
    assert_string_equal(d.reason, "a?b?"); /* nothing unprintable reaches a log */
    static const char *const bad[] = {
        "",
        "not json",
        "{}", /* OPA's answer for an undefined rule */
        "{\"result\":true}",
        "{\"result\":{}}",
        "{\"result\":{\"allow\":\"yes\"}}",
        "{\"result\":{\"allow\":1}}",
        "{\"result\":{\"allow\":true,\"ttl\":-1}}",
        "{\"result\":{\"allow\":true,\"ttl\":\"5\"}}",
        "{\"result\":{\"allow\":true,\"reason\":5}}",
        "{\"result\":{\"allow\":true},\"result\":{\"allow\":false}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(PARSE(bad[i]), SL_EFORMAT);
        assert_int_equal(d.verdict, SL_VERDICT_ERROR);
        assert_true(d.reason[0] != '\0');
    }
    assert_int_equal(sl_authz_http_parse(NULL, 0, &d), SL_EFORMAT);
#undef PARSE
}

static void test_http_regime_options(void **state)
{
    (void)state;
    sl_regime *r = NULL;
    sl_status st;
    sl_regime_http_opts o = {.url = "http://user:pw@127.0.0.1:1/x"};
    assert_int_equal(sl_regime_http_new(&r, &o, &st), SL_EINVAL); /* credentials in the URL */
    assert_null(strstr(st.message, "pw"));
    o.url = "http://policy.example/v1/data/x"; /* plain http off loopback */
    assert_int_equal(sl_regime_http_new(&r, &o, &st), SL_EINVAL);
    o.url = "http://127.0.0.1:1/v1/data/x"; /* no loop */
    assert_int_equal(sl_regime_http_new(&r, &o, &st), SL_EINVAL);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_is_asynchronous_and_answers_once),
        cmocka_unit_test(test_builtin_regimes_through_the_contract),
        cmocka_unit_test(test_builtin_regime_objects),
        cmocka_unit_test(test_ttl_and_clamp),
        cmocka_unit_test(test_lru_bound),
        cmocka_unit_test(test_invalidation),
        cmocka_unit_test(test_errors_are_never_cached_and_fail_closed),
        cmocka_unit_test(test_pipeline_asks_once_per_question),
        cmocka_unit_test(test_override_order),
        cmocka_unit_test(test_http_reply_parser),
        cmocka_unit_test(test_http_regime_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
