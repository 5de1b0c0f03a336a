/* Bearer-credential authentication for network transports (step 1 of the pipeline): sluice tokens
 * verified here, then the configured chain of authenticators, one after another, each possibly
 * asynchronous. */
#include <sluice/authn.h>

#include <jansson.h>

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

int sl_authn_bearer(const sl_authn *a, const char *header, size_t len, double now, sl_identity *out,
                    sl_status *st)
{
    if (a == NULL || a->keys == NULL) {
        sl_identity_init(out);
        out->source = SL_SOURCE_NONE;
        strcpy(out->principal, "anonymous");
        return SL_OK;
    }
    if (header == NULL)
        return sl_status_set(st, SL_EUNAUTH, "authentication required");
    size_t tlen;
    const char *tok = sl_authn_bearer_token(header, len, &tlen);
    if (tok == NULL)
        return sl_status_set(st, SL_EUNAUTH, "a Bearer token is required");
    return sl_jwt_verify(a->keys, tok, tlen, &a->jwt, now, out, st);
}

int sl_authn_enabled(const sl_authn *a)
{
    return a != NULL && (a->keys != NULL || a->nchain > 0);
}

/* One run of the chain: which authenticator is next, and what the failures so far say. */
typedef struct run {
    const sl_authn *a;
    char *cred;
    size_t len;
    double now;
    size_t next;
    int first_status; /* first rejection (0: none yet) */
    char first_reason[sizeof(((sl_status *)0)->message)];
    int unavailable;
    sl_authn_cb cb;
    void *ud;
} run;

static void step(run *r);

static void finish(run *r, int status, const sl_identity *who, const char *reason)
{
    r->cb(r->ud, status, who, reason);
    if (r->cred) {
        memset(r->cred, 0, r->len);
        free(r->cred);
    }
    free(r);
}

static void on_answer(void *ud, int status, const sl_identity *who, const char *reason)
{
    run *r = ud;
    if (status == SL_OK) {
        finish(r, SL_OK, who, NULL);
        return;
    }
    if (status == SL_EUNAVAIL) {
        r->unavailable = 1;
    } else if (r->first_status == 0) {
        r->first_status = status;
        snprintf(r->first_reason, sizeof r->first_reason, "%s", reason ? reason : "invalid token");
    }
    step(r);
}

static void step(run *r)
{
    if (r->next < r->a->nchain) {
        sl_authenticator *au = r->a->chain[r->next++];
        au->authenticate(au, r->cred, r->len, r->now, on_answer, r);
        return;
    }
    if (r->unavailable)
        finish(r, SL_EUNAVAIL, NULL, "authentication service unavailable");
    else
        finish(r, r->first_status ? r->first_status : SL_ETOKEN, NULL,
               r->first_status ? r->first_reason : "invalid token");
}

void sl_authn_run(const sl_authn *a, const char *header, size_t len, double now, sl_authn_cb cb,
                  void *ud)
{
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_status_clear(&st);
    if (!sl_authn_enabled(a)) {
        sl_authn_bearer(NULL, NULL, 0, now, &id, &st); /* the anonymous identity */
        cb(ud, SL_OK, &id, NULL);
        return;
    }
    size_t tlen;
    const char *tok = header ? sl_authn_bearer_token(header, len, &tlen) : NULL;
    if (tok == NULL) {
        cb(ud, SL_EUNAUTH, NULL, header ? "a Bearer token is required" : "authentication required");
        return;
    }
    run *r = calloc(1, sizeof *r);
    if (r == NULL) {
        cb(ud, SL_EUNAVAIL, NULL, "out of memory");
        return;
    }
    r->a = a;
    r->now = now;
    r->cb = cb;
    r->ud = ud;
    /* Only a JWT-shaped credential (two dots) is tried as a sluice token, so that an API key or an
     * opaque token reports its own authenticator's reason. */
    const char *dot = memchr(tok, '.', tlen);
    int jwt_shaped = dot && memchr(dot + 1, '.', tlen - (size_t)(dot + 1 - tok)) != NULL;
    if (a->keys && (jwt_shaped || a->nchain == 0)) {
        int rc = sl_jwt_verify(a->keys, tok, tlen, &a->jwt, now, &id, &st);
        if (rc == SL_OK || a->nchain == 0) {
            cb(ud, rc, rc == SL_OK ? &id : NULL, rc == SL_OK ? NULL : st.message);
            sl_identity_clear(&id);
            free(r);
            return;
        }
        r->first_status = rc;
        snprintf(r->first_reason, sizeof r->first_reason, "%s", st.message);
    }
    /* The chain may outlive the request buffer (asynchronous authenticators): keep a copy. */
    if ((r->cred = malloc(tlen + 1)) == NULL) {
        free(r);
        cb(ud, SL_EUNAVAIL, NULL, "out of memory");
        return;
    }
    memcpy(r->cred, tok, tlen);
    r->cred[tlen] = '\0';
    r->len = tlen;
    step(r);
}

int sl_authn_subscription(const sl_authn *a, const char *token, const char *user,
                          const char *channel, double now, double *exp)
{
    *exp = 0;
    if (a == NULL || a->keys == NULL || token == NULL || user == NULL || channel == NULL)
        return SL_ETOKEN;
    sl_identity id;
    sl_identity_init(&id);
    sl_status st = {0};
    size_t len = strlen(token);
    int rc = sl_jwt_verify(a->keys, token, len, &a->jwt, now, &id, &st);
    if (rc != SL_OK) {
        sl_identity_clear(&id);
        return rc == SL_EEXPIRED ? SL_EEXPIRED : SL_ETOKEN;
    }
    double expires = id.expires_at;
    int same_user = strcmp(id.principal, user) == 0;
    sl_identity_clear(&id);
    if (expires <= 0) /* a subscription token must expire, whatever jwt_exp_optional says */
        return SL_ETOKEN;
    /* The signature is good, so the payload can be read for the one claim the verifier skips. */
    char *header = NULL, *payload = NULL;
    if (sl_jwt_decode_unverified(token, len, &header, &payload) != SL_OK)
        return SL_ETOKEN;
    json_t *claims = json_loads(payload, 0, NULL);
    const char *ch = json_string_value(json_object_get(claims, "channel"));
    int same_channel = ch && strcmp(ch, channel) == 0;
    json_decref(claims);
    free(header);
    free(payload);
    if (!same_user || !same_channel)
        return SL_EFORBIDDEN;
    *exp = expires;
    return SL_OK;
}
