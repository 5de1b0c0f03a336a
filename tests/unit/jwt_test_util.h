/* Shared by the JWT tests: a refusal's message must be one of the verifier's fixed descriptions and
 * must contain no part of the token (no 6-byte window of it). Include after cmocka.h. */
#ifndef SLUICE_TESTS_JWT_TEST_UTIL_H
#define SLUICE_TESTS_JWT_TEST_UTIL_H

#include <string.h>

#include <sluice/error.h>

static void expect_clean_refusal(const char *token, const sl_status *st)
{
    static const char *const fixed_messages[] = {
        "malformed token",  "bad signature",  "algorithm not allowed",
        "unknown key id",   "token expired",  "token not yet valid",
        "invalid audience", "invalid issuer", "invalid claims",
    };
    int fixed = 0;
    for (size_t i = 0; i < sizeof fixed_messages / sizeof *fixed_messages; i++)
        fixed |= strcmp(st->message, fixed_messages[i]) == 0;
    if (!fixed)
        fail_msg("'%s' is not one of the fixed messages", st->message);
    size_t n = strlen(token);
    for (size_t i = 0; i + 6 <= n; i++) {
        char w[7];
        memcpy(w, token + i, 6);
        w[6] = '\0';
        if (strstr(st->message, w) != NULL)
            fail_msg("message '%s' contains token text '%s'", st->message, w);
    }
}

#endif
