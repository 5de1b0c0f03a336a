/* Authentication for network transports (step 1 of the pipeline): sluice tokens
 * verified here, then the configured chain of authenticators, one after another, each possibly
 * asynchronous. */
#include <sluice/authn.h>

#include "core/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *sl_authn_bearer_token(const char *header, size_t len, size_t *tlen)
{
    if (header == NULL || len < 7 || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    const char *t = header + 7;
    size_t n = len - 7;
    while (n && *t == ' ') {
        t++;
        n--;
    }
    while (n && t[n - 1] == ' ')
        n--;
    if (n == 0)
        return NULL;
    *tlen = n;
    return t;
}

int sl_authn_mode_parse(const char *s)
{
    static const struct {
        const char *name;
        int mask;
    } kinds[] = {{"bearer", SL_AUTHN_KIND_BEARER},
                 {"signed", SL_AUTHN_KIND_SIGNED},
                 {"cert", SL_AUTHN_KIND_CERT}};
    if (s == NULL)
        return -1;
    if (!strcmp(s, "any"))
        return 0;
    if (!strcmp(s, "none"))
        return SL_AUTHN_ANONYMOUS;
    int mask = 0;
    while (*s) {
        size_t n = strcspn(s, "+");
        int found = 0;
        for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
            if (strlen(kinds[i].name) == n && !strncmp(s, kinds[i].name, n))
                found = kinds[i].mask;
        if (!found)
            return -1;
        mask |= found;
        s += n;
        if (*s == '+' && *++s == '\0')
            return -1;
    }
    return mask ? mask : -1;
}

int sl_authn_enabled(const sl_authn *a)
{
    return a != NULL && (a->keys != NULL || a->nchain > 0);
}

/* One run of the pipeline's first step: which authenticator is next, what the failures so far
 * say, and the identity being checked against the revocation store. */
typedef struct run {
    const sl_authn *a;
    const sl_authn_request *req; /* NULL: a bearer credential only */
    unsigned accept;             /* SL_AUTHN_KIND_* allowed */
    char *cred;                  /* the bearer token, NULL when none was presented */
    size_t len;
    double now;
    size_t next;
    int first_status; /* first rejection (0: none yet) */
    char first_reason[sizeof(((sl_status *)0)->message)];
    int unavailable;
    sl_identity who; /* accepted, awaiting the revocation check */
    sl_authn_cb cb;
    void *ud;
} run;

static void step(run *r);

static void finish(run *r, int status, const sl_identity *who, const char *reason)
{
    sl__metrics_authn(r->a->metrics, status, who, reason);
    r->cb(r->ud, status, who, reason);
    if (r->cred) {
        memset(r->cred, 0, r->len);
        free(r->cred);
    }
    sl_identity_clear(&r->who);
    free(r);
}

/* The revocation store answered about r->who. */
static void on_checked(void *ud, int status, const char *reason)
{
    run *r = ud;
    sl__metrics_revocation(r->a->metrics, status == SL_OK         ? SL__M_REV_OK
                                          : status == SL_EUNAVAIL ? SL__M_REV_ERROR
                                                                  : SL__M_REV_REVOKED);
    if (status == SL_OK)
        finish(r, SL_OK, &r->who, NULL);
    else if (status == SL_EUNAVAIL) /* fail closed */
        finish(r, SL_EUNAVAIL, NULL, "revocation store unavailable");
    else /* revoked, or an id the store cannot hold: refused either way */
        finish(r, SL_ETOKEN, NULL, "token revoked");
}

/* An authenticator accepted r->who: revocation belongs to authentication, so whatever the
 * credential would be allowed, a revoked one is refused here. */
static void accepted(run *r)
{
    if (r->a->revocation == NULL || r->who.source == SL_SOURCE_NONE) {
        finish(r, SL_OK, &r->who, NULL);
        return;
    }
    sl_revocation_check_identity(r->a->revocation, &r->who, on_checked, r);
}

static void rejected(run *r, int status, const char *reason)
{
    if (r->first_status == 0) {
        r->first_status = status;
        snprintf(r->first_reason, sizeof r->first_reason, "%s", reason ? reason : "invalid token");
    }
}

static void on_answer(void *ud, int status, const sl_identity *who, const char *reason)
{
    run *r = ud;
    if (status == SL_OK) {
        if (sl_identity_copy(&r->who, who) != SL_OK)
            finish(r, SL_EUNAVAIL, NULL, "out of memory");
        else
            accepted(r);
        return;
    }
    if (status == SL_EUNAVAIL)
        r->unavailable = 1;
    else if (status != SL_EUNAUTH) /* SL_EUNAUTH: nothing of this authenticator's was presented */
        rejected(r, status, reason);
    step(r);
}

static unsigned kind_of(const sl_authenticator *au)
{
    return au->kind ? au->kind : (unsigned)SL_AUTHN_KIND_BEARER;
}

static void step(run *r)
{
    while (r->next < r->a->nchain) {
        sl_authenticator *au = r->a->chain[r->next++];
        unsigned kind = kind_of(au);
        if (!(r->accept & kind))
            continue;
        if (kind == SL_AUTHN_KIND_BEARER) {
            if (r->cred == NULL)
                continue;
            au->authenticate(au, r->cred, r->len, r->now, on_answer, r);
            return;
        }
        if (r->req == NULL || au->authenticate_request == NULL)
            continue;
        au->authenticate_request(au, r->req, r->now, on_answer, r);
        return;
    }
    if (r->unavailable)
        finish(r, SL_EUNAVAIL, NULL, "authentication service unavailable");
    else if (r->first_status)
        finish(r, r->first_status, NULL, r->first_reason);
    else if (r->cred)
        finish(r, SL_ETOKEN, NULL, "invalid token");
    else
        finish(r, SL_EUNAUTH, NULL, "authentication required");
}

static run *run_new(const sl_authn *a, double now, sl_authn_cb cb, void *ud)
{
    run *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->a = a;
    r->accept = ~0u;
    r->now = now;
    r->cb = cb;
    r->ud = ud;
    sl_identity_init(&r->who);
    return r;
}

static void anonymous(sl_authn_cb cb, void *ud)
{
    sl_identity id;
    sl_identity_init(&id);
    id.source = SL_SOURCE_NONE;
    strcpy(id.principal, "anonymous");
    cb(ud, SL_OK, &id, NULL);
}

/* Tries tok (NULL: none) as a sluice token, then runs the chain. */
static void start(run *r, const char *tok, size_t tlen)
{
    const sl_authn *a = r->a;
    if (tok && (r->accept & SL_AUTHN_KIND_BEARER)) {
        /* Only a JWT-shaped credential (two dots) is tried as a sluice token, so that an API key
         * or an opaque token reports its own authenticator's reason. */
        const char *dot = memchr(tok, '.', tlen);
        int jwt_shaped = dot && memchr(dot + 1, '.', tlen - (size_t)(dot + 1 - tok)) != NULL;
        if (a->keys && (jwt_shaped || a->nchain == 0)) {
            sl_status st;
            sl_status_clear(&st);
            int rc = sl_jwt_verify(a->keys, tok, tlen, &a->jwt, r->now, &r->who, &st);
            if (rc == SL_OK) {
                accepted(r);
                return;
            }
            rejected(r, rc, st.message);
        }
        /* The chain may outlive the request buffer (asynchronous authenticators): keep a copy. */
        if ((r->cred = malloc(tlen + 1)) == NULL) {
            finish(r, SL_EUNAVAIL, NULL, "out of memory");
            return;
        }
        memcpy(r->cred, tok, tlen);
        r->cred[tlen] = '\0';
        r->len = tlen;
    }
    step(r);
}

void sl_authn_run(const sl_authn *a, const char *header, size_t len, double now, sl_authn_cb cb,
                  void *ud)
{
    if (!sl_authn_enabled(a)) {
        anonymous(cb, ud);
        return;
    }
    size_t tlen;
    const char *tok = header ? sl_authn_bearer_token(header, len, &tlen) : NULL;
    if (tok == NULL) {
        sl__metrics_authn(a->metrics, SL_EUNAUTH, NULL, NULL);
        cb(ud, SL_EUNAUTH, NULL, header ? "a Bearer token is required" : "authentication required");
        return;
    }
    run *r = run_new(a, now, cb, ud);
    if (r == NULL) {
        cb(ud, SL_EUNAVAIL, NULL, "out of memory");
        return;
    }
    r->accept = SL_AUTHN_KIND_BEARER;
    start(r, tok, tlen);
}

void sl_authn_run_request(const sl_authn *a, const sl_authn_request *req, double now,
                          sl_authn_cb cb, void *ud)
{
    if (!sl_authn_enabled(a) || req->accept == SL_AUTHN_ANONYMOUS) {
        anonymous(cb, ud);
        return;
    }
    run *r = run_new(a, now, cb, ud);
    if (r == NULL) {
        cb(ud, SL_EUNAVAIL, NULL, "out of memory");
        return;
    }
    r->req = req;
    if (req->accept)
        r->accept = req->accept;
    size_t hlen = 0, tlen = 0;
    const char *header = req->header ? req->header(req, "authorization", 0, &hlen) : NULL;
    const char *tok = header ? sl_authn_bearer_token(header, hlen, &tlen) : NULL;
    if (header && tok == NULL && (r->accept & SL_AUTHN_KIND_BEARER))
        rejected(r, SL_EUNAUTH, "a Bearer token is required");
    start(r, tok, tlen);
}

void sl_authn_subscription_run(const sl_authn *a, const char *token, const char *user,
                               const char *channel, double now, sl_authn_cb cb, void *ud)
{
    if (a == NULL || a->keys == NULL || token == NULL || user == NULL || channel == NULL) {
        cb(ud, SL_ETOKEN, NULL, "invalid token");
        return;
    }
    run *r = run_new(a, now, cb, ud);
    if (r == NULL) {
        cb(ud, SL_EUNAVAIL, NULL, "out of memory");
        return;
    }
    sl_status st;
    sl_status_clear(&st);
    char claimed[SL_CHANNEL_ID_MAX + 1];
    int rc = sl_jwt_verify_subscription(a->keys, token, strlen(token), &a->jwt, now, &r->who,
                                        claimed, &st);
    if (rc != SL_OK) {
        finish(r, rc == SL_EEXPIRED ? SL_EEXPIRED : SL_ETOKEN, NULL, st.message);
        return;
    }
    /* A good token for another user or channel is not a mistake a client makes. */
    if (strcmp(r->who.principal, user) != 0 || strcmp(claimed, channel) != 0) {
        finish(r, SL_EFORBIDDEN, NULL, "token issued for another user or channel");
        return;
    }
    accepted(r);
}
