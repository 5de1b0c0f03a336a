/* Fuzz target: JWT verification (src/security/jwt.c) with a fixed key. Any input must be rejected
 * or accepted without crashing, and a status message must never contain input bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/jwt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_jwt_keyring *kr;
    if (kr == NULL) {
        sl_jwt_keyring_new(&kr);
        sl_jwt_keyring_add_hs256(kr, NULL, "0123456789abcdef0123456789abcdef", 32);
        sl_jwt_keyring_add_hs256(kr, "k2", "fedcba9876543210fedcba9876543210", 32);
    }
    sl_jwt_verify_opts o;
    sl_jwt_verify_opts_init(&o);
    sl_identity id;
    sl_identity_init(&id);
    sl_status st;
    sl_status_clear(&st);
    sl_jwt_verify(kr, (const char *)data, size, &o, 1700000000.0, &id, &st);
    sl_identity_clear(&id);
    char *h = NULL, *p = NULL;
    if (sl_jwt_decode_unverified((const char *)data, size, &h, &p) == SL_OK) {
        free(h);
        free(p);
    }
    return 0;
}
