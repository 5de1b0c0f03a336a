/* Tests that need a program besides the build (redis-server, python3, openssl) decide here what a
 * missing one means. Under the project's test command (scripts/test exports SLUICE_REQUIRE_DEPS=1)
 * it is a failure: a suite that silently skipped its tests would report green without having run
 * them. A developer who runs a test binary by hand without the variable gets a skip instead.
 * Include after cmocka.h. */
#ifndef SLUICE_TESTS_DEPS_H
#define SLUICE_TESTS_DEPS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when a missing dependency must fail the test (SLUICE_REQUIRE_DEPS set and not "0"). */
static int deps_required(void)
{
    const char *v = getenv("SLUICE_REQUIRE_DEPS");
    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

/* In a test: fails (dependencies required) or skips when `have` is false; `what` names the missing
 * dependency and how to get it. */
#define NEED_DEP(have, what)                                                                       \
    do {                                                                                           \
        if (!(have)) {                                                                             \
            if (deps_required())                                                                   \
                fail_msg("%s is missing, and SLUICE_REQUIRE_DEPS is set: failing, not skipping",   \
                         (what));                                                                  \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

#endif
