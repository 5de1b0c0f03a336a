/* Fuzz target: secret files (src/security/secretfile.c) and what sluiced does with their contents:
 * the secret must be a prefix of the file without trailing CR/LF; it then goes into a keyring as
 * an HS256 key (jwt_secret_file, jwt_key, upstream_jwt_key hs256:) and, when accepted, must sign a
 * token that verifies with it; the same bytes are parsed as the PEM public key an upstream_jwt_key
 * es256:/eddsa: file holds. Violations abort. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/jwt.h>
#include <sluice/sluice.h>

#include "security/secretfile.h"

static void fail(const char *what)
{
    fprintf(stderr, "secret file invariant broken: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t n = 12345;
    int rc = sl__secret_file_parse(text, size, &n);
    if (size > SL__SECRET_FILE_MAX) {
        if (rc != SL_ETOOBIG || n != 0)
            fail("an oversized file was not refused");
        return 0;
    }
    if (rc != SL_OK || n > size)
        fail("a file within the limit was refused or grew");
    if (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        fail("a trailing line ending was kept");
    for (size_t i = n; i < size; i++)
        if (text[i] != '\n' && text[i] != '\r')
            fail("a byte other than a line ending was dropped");

    sl_jwt_keyring *kr;
    if (sl_jwt_keyring_new(&kr) != SL_OK)
        return 0;
    rc = sl_jwt_keyring_add_hs256(kr, NULL, text, n);
    if ((rc == SL_EWEAKKEY) != (n < SL_JWT_SECRET_MIN) || (rc != SL_OK && rc != SL_EWEAKKEY))
        fail("HS256 key accepted or refused for the wrong reason");
    if (rc == SL_OK) {
        sl_jwt_claims c = {.sub = "fuzz", .role = SL_ROLE_READ, .exp = 1700000600};
        char *tok = NULL;
        if (sl_jwt_sign(kr, NULL, &c, &tok) != SL_OK)
            fail("cannot sign with an accepted key");
        sl_jwt_verify_opts o;
        sl_jwt_verify_opts_init(&o);
        sl_identity id;
        sl_identity_init(&id);
        sl_status st;
        if (sl_jwt_verify(kr, tok, strlen(tok), &o, 1700000000.0, &id, &st) != SL_OK)
            fail("a token signed with the key does not verify");
        sl_identity_clear(&id);
        free(tok);
    }
    sl_jwt_keyring_free(kr);

    /* upstream_jwt_key es256:FILE / eddsa:FILE: the file's bytes as they are read. */
    for (int alg = 0; alg < 2; alg++) {
        if (sl_jwt_keyring_new(&kr) != SL_OK)
            return 0;
        rc = alg ? sl_jwt_keyring_add_eddsa_pem(kr, NULL, text, n)
                 : sl_jwt_keyring_add_es256_pem(kr, NULL, text, n);
        if (rc != SL_OK && rc != SL_EINVAL && rc != SL_ENOMEM)
            fail("unexpected error from a PEM key");
        sl_jwt_keyring_free(kr);
    }
    return 0;
}
