/* Fuzz target: judging an RFC 7662 introspection answer (src/security/introspect.c), the body an
 * identity provider's endpoint returns with HTTP 200. Checked against jansson's reading of the
 * same body: the status is one of four, a reason is one of the fixed texts (nothing the endpoint
 * sent), a malformed answer is never cached, an accepted one names a valid subject that is exactly
 * the body's "sub" with its "exp" (if any) in the future, and nothing is cached past exp or the
 * ttl. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/introspect_internal.h"

#define NOW 1700000000.0
#define TTL 60.0

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const reasons[] = {"token inactive", "token has no valid subject",
                                          "token has malformed claims", "token expired",
                                          "introspection endpoint unavailable"};
    sl__introspect_result r;
    const char *why = NULL;
    sl__introspect_judge_body((const char *)data, size, NOW, TTL, &r, &why);

    if (r.status == SL_OK) {
        if (r.reason != NULL || !r.cacheable || why != NULL)
            abort();
    } else {
        size_t k = 0;
        while (k < sizeof reasons / sizeof reasons[0] &&
               (r.reason == NULL || strcmp(r.reason, reasons[k]) != 0))
            k++;
        if (k == sizeof reasons / sizeof reasons[0])
            abort();
        if ((r.status == SL_EUNAVAIL) != (r.cacheable == 0))
            abort();
        if (r.status != SL_EUNAVAIL && r.status != SL_ETOKEN && r.status != SL_EEXPIRED)
            abort();
        if (r.status == SL_EUNAVAIL && (why == NULL || *why == '\0'))
            abort();
    }
    if (r.cacheable && !(r.until <= NOW + TTL))
        abort();

    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *active = json_object_get(root, "active");
    if (!json_is_boolean(active) && r.status != SL_EUNAVAIL)
        abort(); /* only an answer that says active or not may be cached */
    if (json_is_false(active) && r.status != SL_ETOKEN)
        abort();
    if (r.status == SL_OK) {
        json_t *sub = json_object_get(root, "sub"), *exp = json_object_get(root, "exp");
        if (!json_is_true(active) || !json_is_string(sub) ||
            strcmp(json_string_value(sub), r.who.principal) != 0 ||
            json_string_length(sub) != strlen(r.who.principal) ||
            !sl_principal_valid(r.who.principal, strlen(r.who.principal)))
            abort();
        if (exp != NULL) {
            double e = json_number_value(exp);
            if (!json_is_number(exp) || !(e > NOW) || r.who.expires_at != e || r.until > e)
                abort();
        }
        for (const char *p = r.who.token_id; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
                abort();
        if (r.who.source != SL_SOURCE_INTROSPECTION)
            abort();
        /* A scope only narrows, and only with sluice's own values. */
        json_t *scope = json_object_get(root, "scope");
        if (scope == NULL && (r.who.role != SL_ROLE_NONE || r.who.scoped))
            abort();
        if (r.who.scoped && (scope == NULL || !strstr(json_string_value(scope), "sluice:channel:")))
            abort();
        if (r.who.role != SL_ROLE_NONE && !strstr(json_string_value(scope), "sluice:"))
            abort();
    }
    sl__introspect_result_clear(&r);
    json_decref(root);
    return 0;
}
