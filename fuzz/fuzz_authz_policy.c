/* Fuzz target: the HTTP policy regime's reply parser (sl_authz_http_parse in
 * src/security/policy_http.c), the body a policy service returns with HTTP 200. Checked against
 * jansson's reading of the same bytes: a decision is allow or deny only when the body is an object
 * with a "result" object whose "allow" is a boolean (and its ttl, when present, a finite number
 * >= 0), and then says what "allow" says; everything else is an error with a reason and no TTL (so
 * it is never cached); a reason never holds a byte outside printable ASCII. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/authz.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_decision d;
    int rc = sl_authz_http_parse((const char *)data, size, &d);
    size_t rlen = strnlen(d.reason, sizeof d.reason);
    if (rlen > SL_AUTHZ_REASON_MAX)
        abort();
    for (size_t i = 0; i < rlen; i++)
        if ((unsigned char)d.reason[i] < 0x20 || (unsigned char)d.reason[i] > 0x7e)
            abort();
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *res = json_object_get(root, "result");
    json_t *allow = json_object_get(res, "allow");
    json_t *ttl = json_object_get(res, "ttl");
    json_t *reason = json_object_get(res, "reason");
    int ttl_ok = ttl == NULL || (json_is_number(ttl) && isfinite(json_number_value(ttl)) &&
                                 json_number_value(ttl) >= 0);
    int valid = json_is_object(res) && json_is_boolean(allow) && ttl_ok &&
                (reason == NULL || json_is_string(reason));
    if (valid) {
        if (rc != SL_OK || d.verdict != (json_is_true(allow) ? SL_VERDICT_ALLOW : SL_VERDICT_DENY))
            abort();
        if (d.ttl != (ttl ? json_number_value(ttl) : 0))
            abort();
    } else {
        if (rc != SL_EFORMAT || d.verdict != SL_VERDICT_ERROR || d.ttl != 0 || rlen == 0)
            abort();
    }
    json_decref(root);
    return 0;
}
